/*
 * test_tokens.c - swarm tokens in the state database (src/core/tokens.c):
 * the format, one token per swarm unless rotated, every way a check fails,
 * revocation, and that only a salted hash is stored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/state.h"
#include "core/tokens.h"
#include "harness/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx {
	char dir[256];
	co_state *st;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));

	if (f == NULL || co_test_tmpdir(f->dir, sizeof(f->dir)) < 0 ||
	    co_state_open(&f->st, f->dir) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	co_state_close(f->st);
	co_test_rmrf(f->dir);
	free(f);
	return 0;
}

static void issued_token_has_the_format_and_checks_as_its_swarm(void **state)
{
	fx *f = *state;
	char *tok = NULL, who[130];
	size_t i, n;

	/* An ID with "_" and "." too: the secret's fixed length delimits it. */
	assert_int_equal(co_tokens_issue(&tok, f->st, "swarm_a.v2", 0), 0);
	n = strlen(tok);
	assert_int_equal(strncmp(tok, "cos_swarm_a.v2_", 15), 0);
	assert_int_equal(n, 15 + CO_TOKEN_SECRET_LEN);
	for (i = 15; i < n; i++)
		assert_non_null(
		    strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			   "0123456789-_",
			   tok[i]));
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, tok), 0);
	assert_string_equal(who, "swarm_a.v2");
	assert_int_equal(co_tokens_exists(f->st, "swarm_a.v2"), 1);
	co_tokens_wipe(tok);
}

static void second_issue_is_conflict_and_rotate_replaces(void **state)
{
	fx *f = *state;
	char *a = NULL, *b = NULL, *c = NULL, who[130];

	assert_int_equal(co_tokens_issue(&a, f->st, "s1", 0), 0);
	assert_int_equal(co_tokens_issue(&b, f->st, "s1", 0), CO_ECONFLICT);
	assert_null(b);
	assert_int_equal(co_tokens_issue(&c, f->st, "s1", 1), 0);
	assert_string_not_equal(a, c);
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, a), CO_ENOTFOUND);
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, c), 0);
	co_tokens_wipe(a);
	co_tokens_wipe(c);
}

static void bad_swarm_id_is_invalid(void **state)
{
	fx *f = *state;
	char *t = NULL;

	assert_int_equal(co_tokens_issue(&t, f->st, "../x", 0), CO_EINVAL);
	assert_int_equal(co_tokens_issue(&t, f->st, "", 0), CO_EINVAL);
	assert_null(t);
}

static void malformed_forged_and_unknown_tokens_are_not_found(void **state)
{
	fx *f = *state;
	char *t = NULL, who[130], forged[256], other[256];

	assert_int_equal(co_tokens_issue(&t, f->st, "s2", 0), 0);
	snprintf(forged, sizeof(forged), "%s", t);
	forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == 'A' ? 'B' : 'A';
	snprintf(other, sizeof(other), "cos_nobody_%s",
		 t + strlen(t) - CO_TOKEN_SECRET_LEN);
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, forged), CO_ENOTFOUND);
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, other), CO_ENOTFOUND);
	assert_non_null(strstr(co_error_last(), "has no token"));
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, ""), CO_ENOTFOUND);
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, "cos_s2_short"),
			 CO_ENOTFOUND);
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, t + 1), CO_ENOTFOUND);
	/* The message never quotes the secret. */
	assert_null(strstr(co_error_last(), t + strlen(t) - CO_TOKEN_SECRET_LEN));
	co_tokens_wipe(t);
}

static void revoked_token_stops_working(void **state)
{
	fx *f = *state;
	char *t = NULL, who[130];

	assert_int_equal(co_tokens_issue(&t, f->st, "s3", 0), 0);
	assert_int_equal(co_tokens_revoke(f->st, "s3"), 0);
	assert_int_equal(co_tokens_check(who, sizeof(who), f->st, t), CO_ENOTFOUND);
	assert_int_equal(co_tokens_exists(f->st, "s3"), 0);
	assert_int_equal(co_tokens_revoke(f->st, "s3"), 0); /* absent: fine */
	co_tokens_wipe(t);
}

static void only_a_salted_hash_is_stored(void **state)
{
	fx *f = *state;
	char *t = NULL, *out = NULL;

	assert_int_equal(co_tokens_issue(&t, f->st, "s4", 0), 0);
	/* One row: the ID, a 16-byte salt, a 32-byte hash; no token text. */
	assert_int_equal(
	    co_test_sh(&out, NULL,
		       "sqlite3 %s/cutover.db \"SELECT swarm, length(salt), length(hash)"
		       " FROM swarm_tokens\"",
		       f->dir),
	    0);
	assert_string_equal(out, "s4|16|32\n");
	free(out);
	out = NULL;
	assert_int_equal(co_test_sh(&out, NULL,
				    "cat %s/cutover.db %s/cutover.db-wal "
				    "2>/dev/null | grep -c -a -F -e '%s' || true",
				    f->dir, f->dir, t + strlen(t) - CO_TOKEN_SECRET_LEN),
			 0);
	assert_string_equal(out, "0\n");
	free(out);
	co_tokens_wipe(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		issued_token_has_the_format_and_checks_as_its_swarm, setup, teardown),
	    cmocka_unit_test_setup_teardown(second_issue_is_conflict_and_rotate_replaces,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_swarm_id_is_invalid, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		malformed_forged_and_unknown_tokens_are_not_found, setup, teardown),
	    cmocka_unit_test_setup_teardown(revoked_token_stops_working, setup, teardown),
	    cmocka_unit_test_setup_teardown(only_a_salted_hash_is_stored, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
