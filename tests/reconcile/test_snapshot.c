/*
 * test_snapshot.c - the compact snapshot and its sorted-merge diff (pure
 * logic: snapshots are built from records in memory, no store).
 */
/* clang-format off: cmocka needs these first, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/error.h"
#include "core/record.h"
#include "reconcile/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_record *task(const char *id, co_status st)
{
	co_record *r = NULL;

	assert_int_equal(co_record_new(&r, CO_KIND_TASK, id), 0);
	r->rev = 1;
	r->status = st;
	r->created_at = r->updated_at = 1700000000;
	return r;
}

static co_record *swarm(const char *id)
{
	co_record *r = NULL;

	assert_int_equal(co_record_new(&r, CO_KIND_SWARM, id), 0);
	r->rev = 1;
	r->registered_at = r->updated_at = 1700000000;
	return r;
}

static void add(co_snapshot *s, co_record *r)
{
	assert_int_equal(co_snapshot_add(s, r), 0);
	co_record_free(r);
}

typedef struct seen {
	char line[64][80];
	size_t n;
} seen;

static int record_item(void *ctx, const co_diff_item *it)
{
	seen *s = ctx;

	assert_true(s->n < 64);
	snprintf(s->line[s->n++], 80, "%s %s %s", co_kind_name(it->kind), it->id,
		 co_diff_class_name(it->cls));
	return 0;
}

static void diff_classifies_each_id_in_kind_then_id_order(void **state)
{
	co_snapshot g = {0}, e = {0};
	seen s = {0};
	size_t equal = 99, total = 99;

	(void)state;
	/* Added out of order on purpose: the snapshot sorts. */
	add(&g, task("b", CO_STATUS_AVAILABLE));
	add(&g, task("a", CO_STATUS_AVAILABLE));
	add(&g, swarm("s1"));
	add(&g, task("c", CO_STATUS_AVAILABLE));
	add(&g, task("d", CO_STATUS_AVAILABLE));
	co_snapshot_sort(&g);

	add(&e, task("a", CO_STATUS_AVAILABLE));
	add(&e, task("b", CO_STATUS_BLOCKED)); /* mismatch */
	/* c missing in etcd */
	add(&e, task("d", CO_STATUS_AVAILABLE));
	add(&e, task("e", CO_STATUS_AVAILABLE)); /* missing in git */
	add(&e, swarm("s1"));
	add(&e, swarm("s2")); /* missing in git */
	co_snapshot_sort(&e);

	assert_int_equal(co_snapshot_diff(&equal, &total, &g, &e, record_item, &s), 0);
	assert_int_equal(total, 7);
	assert_int_equal(equal, 3);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.line[0], "task b mismatch");
	assert_string_equal(s.line[1], "task c missing_in_etcd");
	assert_string_equal(s.line[2], "task e missing_in_git");
	assert_string_equal(s.line[3], "swarm s2 missing_in_git");
	co_snapshot_clear(&g);
	co_snapshot_clear(&e);
}

static void same_id_of_two_kinds_are_two_ids(void **state)
{
	co_snapshot g = {0}, e = {0};
	seen s = {0};
	size_t equal, total;

	(void)state;
	add(&g, task("x", CO_STATUS_AVAILABLE));
	add(&e, swarm("x"));
	assert_int_equal(co_snapshot_diff(&equal, &total, &g, &e, record_item, &s), 0);
	assert_int_equal(total, 2);
	assert_int_equal(equal, 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.line[0], "task x missing_in_etcd");
	assert_string_equal(s.line[1], "swarm x missing_in_git");
	co_snapshot_clear(&g);
	co_snapshot_clear(&e);
}

static void expired_claim_hashes_like_available_after_normalize(void **state)
{
	co_record *a = task("t", CO_STATUS_AVAILABLE), *b = task("t", CO_STATUS_CLAIMED);
	uint64_t ha, hb;

	(void)state;
	b->owner = strdup("swarm-a");
	b->claim_expires_at = 1700000100;
	assert_int_equal(co_snapshot_hash(&ha, a), 0);
	assert_int_equal(co_snapshot_hash(&hb, b), 0);
	assert_true(ha != hb);
	assert_int_equal(co_record_normalize(b, 1700000200), 1);
	assert_int_equal(co_snapshot_hash(&hb, b), 0);
	assert_true(ha == hb);
	assert_true(ha != 0);
	co_record_free(a);
	co_record_free(b);
}

/* git's pretty file and etcd's compact value of one record hash alike: the
 * whitespace between tokens is not part of the text hashed. */
static void pretty_and_compact_forms_hash_alike(void **state)
{
	co_record *t = task("t", CO_STATUS_CLAIMED);
	char *pretty, *compact;
	uint64_t h;

	(void)state;
	t->owner = strdup("swarm a");
	assert_int_equal(
	    co_record_set_metadata(t, "{\"note\":\"two  spaces\\t\\\"q\\\"\"}"), 0);
	pretty = co_record_to_json(t, 1);
	compact = co_record_to_json(t, 0);
	assert_string_not_equal(pretty, compact);
	assert_int_equal(co_snapshot_hash(&h, t), 0);
	assert_true(co_snapshot_text_hash(pretty, strlen(pretty)) == h);
	assert_true(co_snapshot_text_hash(compact, strlen(compact)) == h);
	free(pretty);
	free(compact);
	co_record_free(t);
}

/* Whitespace inside strings, escapes and any other byte count. */
static void text_hash_keeps_what_is_inside_strings(void **state)
{
	static const char *const differ[][2] = {
	    {"{\"a\":\"x y\"}", "{\"a\":\"xy\"}"},
	    {"{\"a\":\"x\\\" y\"}", "{\"a\":\"x\\\"y\"}"}, /* after an escaped quote */
	    {"{\"a\":1}", "{\"a\":2}"},
	    {"{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"}, /* order is text, not value */
	};
	static const char *const same[][2] = {
	    {"{\"a\": \"x\",\n\t\"b\": [1, 2]}", "{\"a\":\"x\",\"b\":[1,2]}"},
	    {"{\"a\":\"\\\\\" , \"b\":1}",
	     "{\"a\":\"\\\\\",\"b\":1}"}, /* escaped backslash */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(differ) / sizeof(differ[0]); i++)
		assert_true(co_snapshot_text_hash(differ[i][0], strlen(differ[i][0])) !=
			    co_snapshot_text_hash(differ[i][1], strlen(differ[i][1])));
	for (i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		assert_true(co_snapshot_text_hash(same[i][0], strlen(same[i][0])) ==
			    co_snapshot_text_hash(same[i][1], strlen(same[i][1])));
	assert_true(co_snapshot_text_hash("", 0) != 0);
	assert_true(co_snapshot_version_hash("") == 0);
	assert_true(co_snapshot_version_hash(NULL) == 0);
	assert_true(co_snapshot_version_hash("12") != co_snapshot_version_hash("13"));
}

static int stop_at_second(void *ctx, const co_diff_item *it)
{
	int *n = ctx;

	(void)it;
	return ++*n == 2 ? CO_ENOMEM : 0;
}

static void callback_error_stops_the_merge_and_is_returned(void **state)
{
	co_snapshot g = {0}, e = {0};
	size_t equal = 42, total = 42;
	int n = 0;

	(void)state;
	add(&g, task("a", CO_STATUS_AVAILABLE));
	add(&g, task("b", CO_STATUS_AVAILABLE));
	add(&g, task("c", CO_STATUS_AVAILABLE));
	assert_int_equal(co_snapshot_diff(&equal, &total, &g, &e, stop_at_second, &n),
			 CO_ENOMEM);
	assert_int_equal(n, 2);
	assert_int_equal(equal, 42); /* untouched on failure */
	assert_int_equal(total, 42);
	co_snapshot_clear(&g);
}

static void empty_snapshots_have_no_ids(void **state)
{
	co_snapshot g = {0}, e = {0};
	size_t equal = 1, total = 1;

	(void)state;
	assert_int_equal(co_snapshot_diff(&equal, &total, &g, &e, NULL, NULL), 0);
	assert_int_equal(equal, 0);
	assert_int_equal(total, 0);
}

/*
 * Equal blob ids decide at once; an unknown text hash (0) equals nothing;
 * without blob ids on both sides, text hashes decide.
 */
static void blob_ids_decide_before_text_hashes(void **state)
{
	unsigned char b1[CO_BLOB_ID_LEN], b2[CO_BLOB_ID_LEN];
	co_snapshot g = {0}, e = {0};
	size_t equal = 0, total = 0;
	seen s;

	(void)state;
	memset(b1, 1, sizeof(b1));
	memset(b2, 2, sizeof(b2));
	memset(&s, 0, sizeof(s));
	/* a: same id, git unread (hash unknown) -> equal */
	assert_int_equal(co_snapshot_add_entry(&g, CO_KIND_TASK, "a", 0, 1, b1, 1), 0);
	assert_int_equal(co_snapshot_add_entry(&e, CO_KIND_TASK, "a", 0, 2, b1, 0), 0);
	/* b: different ids, hashes unknown -> mismatch */
	assert_int_equal(co_snapshot_add_entry(&g, CO_KIND_TASK, "b", 0, 1, b1, 1), 0);
	assert_int_equal(co_snapshot_add_entry(&e, CO_KIND_TASK, "b", 0, 2, b2, 0), 0);
	/* c: no id on one side, equal text hashes -> equal */
	assert_int_equal(co_snapshot_add_entry(&g, CO_KIND_TASK, "c", 77, 1, b1, 0), 0);
	assert_int_equal(co_snapshot_add_entry(&e, CO_KIND_TASK, "c", 77, 2, NULL, 0), 0);
	/* d: both hashes unknown and no ids -> mismatch, never "0 == 0" */
	assert_int_equal(co_snapshot_add_entry(&g, CO_KIND_TASK, "d", 0, 1, NULL, 0), 0);
	assert_int_equal(co_snapshot_add_entry(&e, CO_KIND_TASK, "d", 0, 2, NULL, 0), 0);
	assert_int_equal(co_snapshot_diff(&equal, &total, &g, &e, record_item, &s), 0);
	assert_int_equal(total, 4);
	assert_int_equal(equal, 2);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.line[0], "task b mismatch");
	assert_string_equal(s.line[1], "task d mismatch");
	/* An unread entry keeps its flag only with a blob id. */
	assert_int_equal(g.v[0].unread, 1);
	assert_int_equal(g.v[2].unread, 0);
	co_snapshot_clear(&g);
	co_snapshot_clear(&e);
}

static void class_names_round_trip(void **state)
{
	co_diff_class c;

	(void)state;
	assert_int_equal(co_diff_class_parse(&c, "missing_in_git"), 0);
	assert_int_equal(c, CO_DIFF_MISSING_IN_GIT);
	assert_string_equal(co_diff_class_name(CO_DIFF_MISMATCH), "mismatch");
	assert_int_equal(co_diff_class_parse(&c, "different"), CO_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(diff_classifies_each_id_in_kind_then_id_order),
	    cmocka_unit_test(same_id_of_two_kinds_are_two_ids),
	    cmocka_unit_test(expired_claim_hashes_like_available_after_normalize),
	    cmocka_unit_test(pretty_and_compact_forms_hash_alike),
	    cmocka_unit_test(text_hash_keeps_what_is_inside_strings),
	    cmocka_unit_test(callback_error_stops_the_merge_and_is_returned),
	    cmocka_unit_test(empty_snapshots_have_no_ids),
	    cmocka_unit_test(blob_ids_decide_before_text_hashes),
	    cmocka_unit_test(class_names_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
