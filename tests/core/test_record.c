/*
 * test_record.c - records, canonical JSON and the claim-expiry rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *TASK_JSON =
    "{\"blocked_by\":[\"P0.1.1\"],\"claim_expires_at\":null,"
    "\"created_at\":\"2026-11-22T10:00:00Z\",\"id\":\"P0.1.2\",\"kind\":\"task\","
    "\"metadata\":{\"a\":{\"y\":1,\"x\":[2,{\"d\":1,\"c\":2}]},\"Z\":true},\"owner\":"
    "null,"
    "\"rev\":1,\"status\":\"blocked\",\"type\":\"build\","
    "\"updated_at\":\"2026-11-22T10:00:00Z\"}";

static void task_round_trips_to_canonical_json(void **state)
{
	co_record *r = NULL, *back = NULL;
	char *j, *j2;

	(void)state;
	assert_int_equal(co_record_from_json(&r, TASK_JSON, strlen(TASK_JSON)), 0);
	assert_string_equal(r->id, "P0.1.2");
	assert_int_equal(r->status, CO_STATUS_BLOCKED);
	assert_int_equal(r->blocked_by.n, 1);
	j = co_record_to_json(r, 0);
	/* metadata keys sorted recursively, top-level keys sorted */
	assert_string_equal(
	    j,
	    "{\"blocked_by\":[\"P0.1.1\"],\"claim_expires_at\":null,"
	    "\"created_at\":\"2026-11-22T10:00:00Z\",\"id\":\"P0.1.2\",\"kind\":\"task\","
	    "\"metadata\":{\"Z\":true,\"a\":{\"x\":[2,{\"c\":2,\"d\":1}],\"y\":1}},"
	    "\"owner\":null,\"rev\":1,\"status\":\"blocked\",\"type\":\"build\","
	    "\"updated_at\":\"2026-11-22T10:00:00Z\"}");
	assert_int_equal(co_record_from_json(&back, j, strlen(j)), 0);
	j2 = co_record_to_json(back, 0);
	assert_string_equal(j, j2);
	assert_true(co_record_equal(r, back));
	free(j);
	free(j2);
	co_record_free(r);
	co_record_free(back);
}

static void pretty_form_parses_to_the_same_record(void **state)
{
	co_record *r = NULL, *back = NULL;
	char *p;

	(void)state;
	assert_int_equal(co_record_from_json(&r, TASK_JSON, strlen(TASK_JSON)), 0);
	p = co_record_to_json(r, 1);
	assert_non_null(strchr(p, '\n'));
	assert_int_equal(p[strlen(p) - 1], '\n');
	assert_int_equal(co_record_from_json(&back, p, strlen(p)), 0);
	assert_true(co_record_equal(r, back));
	free(p);
	co_record_free(r);
	co_record_free(back);
}

static void swarm_round_trips(void **state)
{
	const char *js = "{\"capabilities\":[\"integration:sip\"],\"id\":\"swarm-sip\","
			 "\"kind\":\"swarm\",\"metadata\":{\"model\":\"sonnet\"},"
			 "\"registered_at\":\"2026-11-22T10:00:00Z\",\"rev\":1,"
			 "\"updated_at\":\"2026-11-22T10:00:00Z\"}";
	co_record *r = NULL;
	char *j;

	(void)state;
	assert_int_equal(co_record_from_json(&r, js, strlen(js)), 0);
	assert_int_equal(r->kind, CO_KIND_SWARM);
	j = co_record_to_json(r, 0);
	assert_string_equal(j, js);
	free(j);
	co_record_free(r);
}

static void bad_records_are_refused_naming_the_field(void **state)
{
	static const struct {
		const char *json, *needle;
	} cases[] = {
	    {"{", "not valid JSON"},
	    {"[]", "JSON object"},
	    {"{\"kind\":\"job\",\"id\":\"a\",\"rev\":1}", "kind"},
	    {"{\"kind\":\"task\",\"id\":\"../x\",\"rev\":1}", "invalid id"},
	    {"{\"kind\":\"task\",\"id\":\"a\"}", "rev"},
	    {"{\"kind\":\"task\",\"id\":\"a\",\"rev\":0}", "rev"},
	    {"{\"kind\":\"task\",\"id\":\"a\",\"rev\":1.5}", "rev"},
	    {"{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"status\":\"done\"}", "status"},
	    {"{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"metadata\":[]}", "metadata"},
	    {"{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"bogus\":1}", "bogus"},
	    {"{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"created_at\":\"yesterday\"}",
	     "created_at"},
	    {"{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"status\":\"claimed\"}",
	     "owner"},
	    {"{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"owner\":\"a/b\"}", "owner"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		co_record *r = NULL;
		int e = co_record_from_json(&r, cases[i].json, strlen(cases[i].json));

		assert_int_equal(e, CO_EINVAL);
		assert_null(r);
		if (strstr(co_error_last(), cases[i].needle) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, co_error_last(),
				 cases[i].needle);
	}
}

/* Found by tests/fuzz/fuzz_record: a second "owner" leaked the first. */
static void record_with_a_field_twice_is_refused(void **state)
{
	static const char *const cases[] = {
	    "{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"owner\":\"x\",\"owner\":\"y\"}",
	    "{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"type\":\"x\",\"type\":\"y\"}",
	    "{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"rev\":2}",
	    "{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,\"kind\":\"swarm\"}",
	    "{\"kind\":\"swarm\",\"id\":\"a\",\"rev\":1,\"capabilities\":[\"x\"],"
	    "\"capabilities\":[\"y\"]}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		co_record *r = NULL;

		assert_int_equal(co_record_from_json(&r, cases[i], strlen(cases[i])),
				 CO_EINVAL);
		assert_null(r);
		assert_non_null(strstr(co_error_last(), "appears twice"));
	}
}

static void metadata_over_64k_is_too_big(void **state)
{
	co_record *r = NULL;
	size_t n = 70 * 1024;
	char *big = malloc(n + 16);

	(void)state;
	memcpy(big, "{\"x\":\"", 6);
	memset(big + 6, 'a', n);
	memcpy(big + 6 + n, "\"}", 3);
	assert_int_equal(co_record_new(&r, CO_KIND_TASK, "t1"), 0);
	assert_int_equal(co_record_set_metadata(r, big), CO_ETOOBIG);
	assert_string_equal(r->metadata, "{}");
	assert_int_equal(co_record_set_metadata(r, "{\"b\":1,\"a\":2}"), 0);
	assert_string_equal(r->metadata, "{\"a\":2,\"b\":1}");
	assert_int_equal(co_record_set_metadata(r, "[1]"), CO_EINVAL);
	assert_int_equal(co_record_set_metadata(r, "{nope"), CO_EINVAL);
	free(big);
	co_record_free(r);
}

static void expired_claim_normalizes_to_available(void **state)
{
	co_record *r = NULL;

	(void)state;
	assert_int_equal(co_record_new(&r, CO_KIND_TASK, "t1"), 0);
	r->rev = 3;
	r->status = CO_STATUS_CLAIMED;
	r->owner = strdup("swarm-a");
	r->claim_expires_at = 1000;
	assert_int_equal(co_record_normalize(r, 999), 0);
	assert_int_equal(r->status, CO_STATUS_CLAIMED);
	assert_int_equal(co_record_normalize(r, 1000), 1);
	assert_int_equal(r->status, CO_STATUS_AVAILABLE);
	assert_null(r->owner);
	assert_int_equal(r->claim_expires_at, 0);
	assert_int_equal(r->rev, 3); /* expiry is not a mutation */
	co_record_free(r);
}

static void claim_without_ttl_never_expires(void **state)
{
	co_record *r = NULL;

	(void)state;
	assert_int_equal(co_record_new(&r, CO_KIND_TASK, "t1"), 0);
	r->status = CO_STATUS_CLAIMED;
	r->owner = strdup("swarm-a");
	assert_int_equal(co_record_normalize(r, INT64_MAX), 0);
	assert_int_equal(r->status, CO_STATUS_CLAIMED);
	co_record_free(r);
}

static void diff_names_the_differing_fields(void **state)
{
	co_record *a = NULL, *b = NULL;
	char *d;

	(void)state;
	assert_int_equal(co_record_from_json(&a, TASK_JSON, strlen(TASK_JSON)), 0);
	assert_int_equal(co_record_dup(&b, a), 0);
	d = co_record_diff(a, b);
	assert_string_equal(d, "");
	free(d);
	b->status = CO_STATUS_AVAILABLE;
	b->rev = 2;
	d = co_record_diff(a, b);
	assert_string_equal(d, "rev,status");
	free(d);
	co_record_free(a);
	co_record_free(b);
}

static void time_round_trips_and_rejects_non_utc(void **state)
{
	int64_t t;
	char buf[32];

	(void)state;
	assert_int_equal(co_time_parse(&t, "2026-11-22T10:00:00Z"), 0);
	co_time_format(buf, sizeof(buf), t);
	assert_string_equal(buf, "2026-11-22T10:00:00Z");
	assert_int_equal(co_time_parse(&t, "2026-11-22T10:00:00.123Z"), 0);
	assert_int_equal(co_time_parse(&t, "2026-11-22T10:00:00+01:00"), CO_EINVAL);
	assert_int_equal(co_time_parse(&t, "tomorrow"), CO_EINVAL);
}

/* Found by tests/fuzz/fuzz_record: a leap second at the end of 9999 was
 * read as the year 10000, whose canonical form no reader accepts. */
static void timestamp_read_is_one_the_canonical_form_writes_back(void **state)
{
	static const char *const refused[] = {
	    "9999-12-31T23:59:60Z", "0999-12-31T23:59:59Z", "1-01-01T00:00:00Z",
	    "10000-01-01T00:00:00Z"};
	const char *json = "{\"kind\":\"task\",\"id\":\"a\",\"rev\":1,"
			   "\"created_at\":\"9999-12-31T23:59:60Z\"}";
	co_record *r = NULL;
	int64_t t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (co_time_parse(&t, refused[i]) != CO_EINVAL)
			fail_msg("\"%s\" was accepted", refused[i]);
	assert_int_equal(co_time_parse(&t, "1000-01-01T00:00:00Z"), 0);
	assert_int_equal(t, CO_TIME_MIN);
	assert_int_equal(co_time_parse(&t, "9999-12-31T23:59:59Z"), 0);
	assert_int_equal(t, CO_TIME_MAX);
	assert_int_equal(co_record_from_json(&r, json, strlen(json)), CO_EINVAL);
	assert_null(r);
	assert_non_null(strstr(co_error_last(), "created_at"));
}

static void timestamps_outside_what_the_form_holds_are_refused(void **state)
{
	co_record *r = NULL, *back = NULL;
	char *json;

	(void)state;
	assert_int_equal(co_record_new(&r, CO_KIND_TASK, "T1"), 0);
	assert_int_equal(co_record_check_times(r), 0); /* all null */
	r->rev = 1;
	r->created_at = r->updated_at = CO_TIME_MAX;
	assert_int_equal(co_record_check_times(r), 0);
	/* The last second that fits is written and read back. */
	json = co_record_to_json(r, 0);
	assert_non_null(strstr(json, "9999-12-31T23:59:59Z"));
	assert_int_equal(co_record_from_json(&back, json, strlen(json)), 0);
	assert_int_equal(back->created_at, CO_TIME_MAX);
	free(json);
	co_record_free(back);
	/* Milliseconds given as seconds: the year 55,000-odd. */
	r->updated_at = 1763805600000LL;
	assert_int_equal(co_record_check_times(r), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "task T1: updated_at is 1763805600000"));
	r->updated_at = CO_TIME_MAX + 1;
	assert_int_equal(co_record_check_times(r), CO_EINVAL);
	r->updated_at = 0;
	r->claim_expires_at = -1; /* 1969-12-31T23:59:59Z: written and read back */
	assert_int_equal(co_record_check_times(r), 0);
	r->claim_expires_at = CO_TIME_MIN;
	assert_int_equal(co_record_check_times(r), 0);
	json = co_record_to_json(r, 0);
	assert_non_null(strstr(json, "1000-01-01T00:00:00Z"));
	assert_int_equal(co_record_from_json(&back, json, strlen(json)), 0);
	assert_int_equal(back->claim_expires_at, CO_TIME_MIN);
	free(json);
	co_record_free(back);
	r->claim_expires_at = CO_TIME_MIN - 1;
	assert_int_equal(co_record_check_times(r), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "claim_expires_at"));
	co_record_free(r);
}

/* What the old printer gave for r's compact form: cJSON's compact print of
 * the tree it builds for the pretty one. */
static char *cjson_compact(const co_record *r)
{
	char *pretty = co_record_to_json(r, 1), *out;
	cJSON *j = cJSON_Parse(pretty);

	assert_non_null(j);
	out = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	free(pretty);
	return out;
}

static void assert_compact_as_cjson(const co_record *r)
{
	char *mine = co_record_to_json(r, 0), *theirs = cjson_compact(r);

	assert_non_null(mine);
	assert_non_null(theirs);
	assert_string_equal(mine, theirs);
	free(mine);
	free(theirs);
}

/*
 * The compact form is written straight into a buffer (record_write.c); it
 * must be byte for byte what cJSON printed, or every stored value would
 * differ from what a store compared against.  Escapes, UTF-8, control
 * bytes, revs at int's edge and past it, times at the form's bounds and
 * before 1970, empty and null fields, swarms, metadata of every JSON type.
 */
static void compact_form_is_byte_for_byte_cjsons(void **state)
{
	static const char *const strs[] = {
	    "", "plain", "q\"uote", "back\\slash", "tab\tnl\ncr\rbs\bff\f",
	    "\x01\x1f\x7f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "</script>",
	};
	static const int64_t revs[] = {1, 2, 2147483646, 2147483647, 2147483648LL,
				       4294967296LL, 999999999999999LL, 1000000000000000LL,
				       9007199254740993LL};
	static const int64_t times[] = {0, 1, -1, 86399, 86400, -86400, 951782400 /* 2000-02-29 */,
					1790000000, CO_TIME_MIN, CO_TIME_MAX, 4102444800LL,
					CO_TIME_MAX + 1, CO_TIME_MIN - 1};
	static const char *const metas[] = {
	    "{}", "{\"b\":1,\"a\":[1,2.5,-0,1e300,true,false,null,\"x\\u00e9\\n\"]}",
	    "{\"n\":{\"z\":{},\"y\":[],\"x\":0.1}}", "{\"big\":12345678901234567890}",
	};
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		co_record *t = NULL, *sw = NULL;

		assert_int_equal(co_record_new(&t, CO_KIND_TASK, "P0.1"), 0);
		assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, "builders"), 0);
		t->rev = sw->rev = revs[i % (sizeof(revs) / sizeof(revs[0]))];
		free(t->type);
		t->type = i ? strdup(strs[i]) : NULL;
		t->owner = i % 2 ? strdup(strs[i]) : NULL;
		t->status = (co_status)(i % 5);
		assert_int_equal(co_strv_push(&t->blocked_by, strs[i]), 0);
		assert_int_equal(co_strv_push(&t->blocked_by, "P0.2"), 0);
		assert_int_equal(co_strv_push(&sw->capabilities, strs[i]), 0);
		assert_int_equal(co_record_set_metadata(t, metas[i % 4]), 0);
		assert_int_equal(co_record_set_metadata(sw, metas[(i + 1) % 4]), 0);
		assert_compact_as_cjson(t);
		assert_compact_as_cjson(sw);
		for (k = 0; k < sizeof(revs) / sizeof(revs[0]); k++) {
			t->rev = sw->rev = revs[k];
			assert_compact_as_cjson(t);
			assert_compact_as_cjson(sw);
		}
		for (k = 0; k < sizeof(times) / sizeof(times[0]); k++) {
			t->created_at = t->updated_at = sw->registered_at = times[k];
			t->claim_expires_at = times[(k + 3) % (sizeof(times) / sizeof(times[0]))];
			sw->updated_at = times[k];
			assert_compact_as_cjson(t);
			assert_compact_as_cjson(sw);
		}
		co_record_free(t);
		co_record_free(sw);
	}
}

static void strv_split_trims_and_skips_empty(void **state)
{
	co_strv v = {0};

	(void)state;
	assert_int_equal(co_strv_split(&v, " a, b ,,c"), 0);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.v[1], "b");
	co_strv_clear(&v);
	assert_int_equal(co_strv_split(&v, ""), 0);
	assert_int_equal(v.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(task_round_trips_to_canonical_json),
	    cmocka_unit_test(pretty_form_parses_to_the_same_record),
	    cmocka_unit_test(swarm_round_trips),
	    cmocka_unit_test(bad_records_are_refused_naming_the_field),
	    cmocka_unit_test(record_with_a_field_twice_is_refused),
	    cmocka_unit_test(metadata_over_64k_is_too_big),
	    cmocka_unit_test(expired_claim_normalizes_to_available),
	    cmocka_unit_test(claim_without_ttl_never_expires),
	    cmocka_unit_test(diff_names_the_differing_fields),
	    cmocka_unit_test(time_round_trips_and_rejects_non_utc),
	    cmocka_unit_test(timestamps_outside_what_the_form_holds_are_refused),
	    cmocka_unit_test(timestamp_read_is_one_the_canonical_form_writes_back),
	    cmocka_unit_test(strv_split_trims_and_skips_empty),
	    cmocka_unit_test(compact_form_is_byte_for_byte_cjsons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
