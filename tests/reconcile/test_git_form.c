/*
 * test_git_form.c - co_git_form_build() against cJSON_Print itself: every
 * kind of record cutover writes, thousands of random documents (nested
 * objects and arrays, empty ones, escapes, unicode, numbers of every
 * shape), text with other whitespace, and text that has no form.
 */
/* clang-format off: cmocka needs these first, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/record.h"
#include "reconcile/git_form.h"
#include "reconcile/snapshot.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cJSON_Print and the "\n" that git's files end with. */
static char *print_pretty(const cJSON *j)
{
	char *p = cJSON_Print(j), *s;
	size_t n;

	assert_non_null(p);
	n = strlen(p);
	s = malloc(n + 2);
	assert_non_null(s);
	memcpy(s, p, n);
	memcpy(s + n, "\n", 2);
	free(p);
	return s;
}

/* co_git_form_build(compact) must be exactly `pretty`. */
static void expect_form(co_git_form *f, const char *compact, const char *pretty)
{
	int rc = co_git_form_build(f, compact, strlen(compact));

	if (rc != 0)
		fail_msg("no form (%d) for %s", rc, compact);
	if (f->len != strlen(pretty) || memcmp(f->buf, pretty, f->len) != 0)
		fail_msg("form of %s\n--- got ---\n%s--- want ---\n%s", compact, f->buf,
			 pretty);
	assert_int_equal(f->buf[f->len], '\0');
}

/* ---- records ---- */

static co_record *task(const char *id, const char *meta)
{
	co_record *r = NULL;

	assert_int_equal(co_record_new(&r, CO_KIND_TASK, id), 0);
	r->type = strdup("build");
	r->rev = 7;
	r->created_at = 1795860000;
	r->updated_at = 1795860042;
	if (meta)
		assert_int_equal(co_record_set_metadata(r, meta), 0);
	return r;
}

static void expect_record(co_git_form *f, const co_record *r)
{
	char *compact = co_record_to_json(r, 0), *pretty = co_record_to_json(r, 1);

	assert_non_null(compact);
	assert_non_null(pretty);
	expect_form(f, compact, pretty);
	free(compact);
	free(pretty);
}

static void records_of_every_shape_match_their_git_files(void **state)
{
	static const char *const metas[] = {
	    NULL,
	    "{}",
	    "{\"a\":1}",
	    "{\"prio\":3,\"tags\":[\"x\",\"y\"],\"owner\":{\"team\":\"core\"}}",
	    "{\"deep\":{\"er\":{\"est\":{\"x\":[1,[2,[3,{}]],{\"k\":[]}]}}}}",
	    "{\"empty_array\":[],\"empty_object\":{},\"null\":null,\"t\":true,"
	    "\"f\":false}",
	    "{\"list\":[{\"a\":1},{\"b\":{}},{}],\"n\":-0.5,\"big\":1e300}",
	    "{\"esc\":\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r\","
	    "\"ctl\":\"\\u0001\\u001f\"}",
	    "{\"unicode\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80\","
	    "\"escaped\":\"\\u00e9\\u65e5\"}",
	    "{\"\":\"empty key\",\"k\\\"q\":\"key with a quote\"}",
	    "{\"nums\":[0,-1,2147483648,0.1,1.5e-7,123456789012,3.141592653589793]}",
	};
	co_git_form f = {0};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(metas) / sizeof(metas[0]); i++) {
		co_record *r = task("T1", metas[i]), *s = NULL;

		expect_record(&f, r);
		/* A claimed one, blocked by others. */
		r->status = CO_STATUS_CLAIMED;
		r->owner = strdup("swarm-a");
		r->claim_expires_at = 1795861000;
		assert_int_equal(co_strv_split(&r->blocked_by, "A,B.c,d-9"), 0);
		expect_record(&f, r);
		co_record_free(r);

		assert_int_equal(co_record_new(&s, CO_KIND_SWARM, "S-1"), 0);
		s->registered_at = s->updated_at = 1795860000;
		if (metas[i])
			assert_int_equal(co_record_set_metadata(s, metas[i]), 0);
		expect_record(&f, s);
		assert_int_equal(co_strv_split(&s->capabilities, "build,test,gpu"), 0);
		expect_record(&f, s);
		co_record_free(s);
	}
	co_git_form_clear(&f);
}

/* ---- random documents ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static char *random_string(void)
{
	static const char *const pieces[] = {"a",
					     "Z",
					     "0",
					     "_",
					     "-",
					     " ",
					     "\"",
					     "\\",
					     "/",
					     "\n",
					     "\t",
					     "\r",
					     "\b",
					     "\f",
					     "\x01",
					     "\x1f",
					     "\xc3\xa9",
					     "\xe6\x97\xa5",
					     "\xf0\x9f\x9a\x80",
					     "{",
					     "}",
					     "[",
					     "]",
					     ":",
					     ",",
					     "true"};
	size_t n = rnd(8), i;
	char *s = calloc(1, 8 * 4 + 1);

	assert_non_null(s);
	for (i = 0; i < n; i++)
		strcat(s, pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))]);
	return s;
}

static cJSON *random_value(int depth)
{
	uint32_t k = rnd(depth > 5 ? 6 : 9);
	cJSON *v = NULL;
	char *s;
	int n, i;

	switch (k) {
	case 0:
		return cJSON_CreateNull();
	case 1:
		return cJSON_CreateBool(rnd(2));
	case 2: {
		static const double nums[] = {0,     -1,   42,	2147483648.0,	-0.5,
					      1e300, 1e-9, 0.1, 123456789012.0, 3.25,
					      -7e21};
		return cJSON_CreateNumber(nums[rnd(sizeof(nums) / sizeof(nums[0]))]);
	}
	case 3:
		return cJSON_CreateNumber((double)rnd(1000000) / (1 + rnd(1000)));
	case 4:
	case 5:
		s = random_string();
		v = cJSON_CreateString(s);
		free(s);
		return v;
	case 6:
		v = cJSON_CreateArray();
		for (n = (int)rnd(5), i = 0; i < n; i++)
			cJSON_AddItemToArray(v, random_value(depth + 1));
		return v;
	default:
		v = cJSON_CreateObject();
		for (n = (int)rnd(5), i = 0; i < n; i++) {
			s = random_string();
			cJSON_AddItemToObject(v, s, random_value(depth + 1));
			free(s);
		}
		return v;
	}
}

static void random_documents_match_cJSON_Print(void **state)
{
	co_git_form f = {0};
	int i;

	(void)state;
	for (i = 0; i < 5000; i++) {
		cJSON *doc = i % 2 ? random_value(0) : cJSON_CreateObject();
		char *compact, *pretty;

		if (i % 2 == 0) {
			/* An object at the top, as every record is. */
			int n = (int)rnd(6), k;

			for (k = 0; k < n; k++) {
				char key[16];

				snprintf(key, sizeof(key), "k%d", k);
				cJSON_AddItemToObject(doc, key, random_value(1));
			}
		}
		compact = cJSON_PrintUnformatted(doc);
		pretty = print_pretty(doc);
		expect_form(&f, compact, pretty);
		/* The form leaves every byte but whitespace as it was. */
		assert_true(co_snapshot_text_hash(f.buf, f.len) ==
			    co_snapshot_text_hash(compact, strlen(compact)));
		/* And the pretty text has its own form: itself. */
		expect_form(&f, pretty, pretty);
		free(compact);
		free(pretty);
		cJSON_Delete(doc);
	}
	co_git_form_clear(&f);
}

/* Spaces, tabs, newlines and CRs between tokens do not change the form. */
static void other_whitespace_between_tokens_gives_the_same_form(void **state)
{
	const char *compact = "{\"a\":[1,{\"b\":\"x y\"},[]],\"c\":{},\"d\":null}";
	const char *spaced = " \r\n{ \"a\" :\t[ 1 ,\n{\"b\"\r:\"x y\"} , [ ] ] ,"
			     "\"c\" : {\n\n} ,\"d\":null }\n\n";
	cJSON *j = cJSON_Parse(compact);
	char *pretty = print_pretty(j);
	co_git_form f = {0};

	(void)state;
	expect_form(&f, compact, pretty);
	expect_form(&f, spaced, pretty);
	free(pretty);
	cJSON_Delete(j);
	co_git_form_clear(&f);
}

/* Text in another key order keeps its order: a form, but another one. */
static void key_order_is_kept_not_fixed(void **state)
{
	co_git_form f = {0};

	(void)state;
	assert_int_equal(co_git_form_build(&f, "{\"b\":1,\"a\":2}", 13), 0);
	assert_string_equal(f.buf, "{\n\t\"b\":\t1,\n\t\"a\":\t2\n}\n");
	co_git_form_clear(&f);
}

static void text_that_is_not_json_has_no_form(void **state)
{
	static const char *const bad[] = {
	    "",
	    "   ",
	    "{",
	    "}",
	    "{\"a\":1",
	    "{\"a\":1}}",
	    "{\"a\":1} x",
	    "{\"a\" 1}",
	    "{\"a\":}",
	    "{a:1}",
	    "{\"a\":1,}",
	    "{,}",
	    "[1,]",
	    "[1 2]",
	    "[1:2]",
	    "{\"a\":[1}",
	    "{\"a\":{]}",
	    "{\"a\":\"unterminated}",
	    "{\"a\":\"ends in a backslash\\",
	    "{\"a\":'single'}",
	    "{\"a\":1}{}",
	    "\"a\":1",
	    "{\"a\":@}",
	};
	co_git_form f = {0};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (co_git_form_build(&f, bad[i], strlen(bad[i])) != 1)
			fail_msg("a form for \"%s\"", bad[i]);
	co_git_form_clear(&f);
}

/* cJSON's nesting limit is ours: 1000 levels have a form, 1001 none. */
static void nesting_beyond_cJSONs_limit_has_no_form(void **state)
{
	char *s = malloc(2 * 1001 + 1);
	co_git_form f = {0};

	(void)state;
	assert_non_null(s);
	memset(s, '[', 1000);
	memset(s + 1000, ']', 1000);
	assert_int_equal(co_git_form_build(&f, s, 2000), 0);
	assert_int_equal(f.len, 2001);
	memset(s, '[', 1001);
	memset(s + 1001, ']', 1001);
	assert_int_equal(co_git_form_build(&f, s, 2002), 1);
	free(s);
	co_git_form_clear(&f);
}

/* One buffer serves many builds; each result is NUL-terminated. */
static void the_buffer_is_reused_and_terminated(void **state)
{
	co_git_form f = {0};
	char *big = malloc(100003);
	size_t cap;

	(void)state;
	assert_non_null(big);
	big[0] = '"';
	memset(big + 1, 'x', 100000);
	big[100001] = '"';
	big[100002] = '\0';
	assert_int_equal(co_git_form_build(&f, big, 100002), 0);
	assert_int_equal(f.len, 100003);
	cap = f.cap;
	assert_int_equal(co_git_form_build(&f, "{}", 2), 0);
	assert_string_equal(f.buf, "{\n}\n");
	assert_int_equal(f.cap, cap);
	assert_int_equal(co_git_form_build(&f, "[]", 2), 0);
	assert_string_equal(f.buf, "[]\n");
	free(big);
	co_git_form_clear(&f);
	co_git_form_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(records_of_every_shape_match_their_git_files),
	    cmocka_unit_test(random_documents_match_cJSON_Print),
	    cmocka_unit_test(other_whitespace_between_tokens_gives_the_same_form),
	    cmocka_unit_test(key_order_is_kept_not_fixed),
	    cmocka_unit_test(text_that_is_not_json_has_no_form),
	    cmocka_unit_test(nesting_beyond_cJSONs_limit_has_no_form),
	    cmocka_unit_test(the_buffer_is_reused_and_terminated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
