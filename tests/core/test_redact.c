/*
 * test_redact.c - the redaction policy and the field-level diff (redact.h):
 * which keys are hidden, that a hidden field still compares (equal or
 * differs) without its value, and the diff's paths for nested objects,
 * added and removed keys and arrays.  Pure logic: no store, no database.
 */
/* clang-format off: cmocka needs these first, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/error.h"
#include "core/redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_redact *policy(const char *const *entries, size_t n, int defaults)
{
	co_redact *rd = NULL;

	assert_int_equal(co_redact_new(&rd, entries, n, defaults), 0);
	assert_non_null(rd);
	return rd;
}

static void defaults_match_key_names_at_any_depth_of_metadata(void **state)
{
	co_redact *rd = policy(NULL, 0, 1);
	static const char *const hidden[] = {
	    "metadata.api_token",   "metadata.GITHUB_TOKEN", "metadata.x.client_secret",
	    "metadata.db.Password", "metadata.passwd",	     "metadata.stripe_api_key",
	    "metadata.ApiKey",	    "metadata.credentials",  "metadata.ssh.private_key",
	};
	size_t i;

	(void)state;
	assert_int_equal(co_redact_count(rd), 8);
	for (i = 0; i < sizeof(hidden) / sizeof(*hidden); i++)
		if (!co_redact_matches(rd, hidden[i], NULL))
			fail_msg("%s should be redacted", hidden[i]);
	assert_int_equal(co_redact_matches(rd, "metadata.model", NULL), 0);
	/* Patterns apply inside metadata only. */
	assert_int_equal(co_redact_matches(rd, "token", NULL), 0);
	assert_int_equal(co_redact_matches(rd, "owner", NULL), 0);
	co_redact_free(rd);
}

static void paths_and_wildcards_match_exactly(void **state)
{
	static const char *const e[] = {"metadata.auth.key", "$.owner", "metadata.*.pin"};
	co_redact *rd = policy(e, 3, 0);

	(void)state;
	assert_int_equal(co_redact_matches(rd, "metadata.auth.key", NULL), 1);
	assert_int_equal(co_redact_matches(rd, "metadata.auth.keys", NULL), 0);
	assert_int_equal(co_redact_matches(rd, "metadata.key", NULL), 0);
	assert_int_equal(co_redact_matches(rd, "owner", NULL), 1);
	assert_int_equal(co_redact_matches(rd, "metadata.bank.pin", NULL), 1);
	assert_int_equal(co_redact_matches(rd, "metadata.api_token", NULL), 0);
	co_redact_free(rd);
}

static void bad_entries_are_refused(void **state)
{
	static const char *const empty[] = {""};
	static const char *const dots[] = {"metadata..key"};
	static const char *const at[] = {"@everything"};
	co_redact *rd = NULL;

	(void)state;
	assert_int_equal(co_redact_new(&rd, empty, 1, 0), CO_EINVAL);
	assert_int_equal(co_redact_new(&rd, dots, 1, 0), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "empty segment"));
	assert_int_equal(co_redact_new(&rd, at, 1, 0), CO_EINVAL);
	assert_null(rd);
	co_redact_free(NULL);
}

#define SECRET_A "ghp_SECRETBYTES123"
#define SECRET_B "ghp_OTHERSECRET456"

static void pair_hides_values_and_says_whether_they_differ(void **state)
{
	co_redact *rd = policy(NULL, 0, 1);
	char *g = NULL, *e = NULL;

	(void)state;
	assert_int_equal(
	    co_redact_pair(&g, &e, rd,
			   "{\"id\":\"T1\",\"metadata\":{\"api_token\":\"" SECRET_A
			   "\",\"db\":{\"password\":\"hunter2\"},\"hooks\":[{\"secret\":"
			   "\"s1\"}],\"model\":\"sonnet\"}}",
			   "{\"id\":\"T1\",\"metadata\":{\"api_token\":\"" SECRET_B
			   "\",\"db\":{\"password\":\"hunter2\"},\"hooks\":[{\"secret\":"
			   "\"s2\"}],\"model\":\"opus\",\"passwd\":\"x\"}}"),
	    0);
	assert_null(strstr(g, "ghp_"));
	assert_null(strstr(e, "ghp_"));
	assert_null(strstr(g, "hunter2"));
	assert_null(strstr(e, "hunter2"));
	assert_string_equal(g, "{\"id\":\"T1\",\"metadata\":{\"api_token\":\"[redacted, "
			       "differs]\",\"db\":{\"password\":\"[redacted, equal]\"},"
			       "\"hooks\":[{\"secret\":\"[redacted, differs]\"}],"
			       "\"model\":\"sonnet\"}}");
	assert_non_null(strstr(e, "\"passwd\":\"[redacted, differs]\""));
	assert_non_null(strstr(e, "\"model\":\"opus\""));
	free(g);
	free(e);

	/* One record alone: nothing to compare with. */
	assert_int_equal(
	    co_redact_one(&g, rd, "{\"metadata\":{\"token\":{\"a\":[1,2]}}}"), 0);
	assert_string_equal(g, "{\"metadata\":{\"token\":\"[redacted]\"}}");
	free(g);

	/* Idempotent: markers keep their verdict. */
	assert_int_equal(
	    co_redact_pair(&g, &e, rd,
			   "{\"metadata\":{\"token\":\"[redacted, differs]\"}}",
			   "{\"metadata\":{\"token\":\"[redacted, differs]\"}}"),
	    0);
	assert_string_equal(g, "{\"metadata\":{\"token\":\"[redacted, differs]\"}}");
	assert_string_equal(e, g);
	free(g);
	free(e);

	/* Not JSON: never passed through. */
	assert_int_equal(co_redact_one(&g, rd, "token=" SECRET_A), 0);
	assert_null(strstr(g, "SECRET"));
	free(g);
	co_redact_free(rd);
}

static const co_field_diff *find(const co_field_diff_list *l, const char *path)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->items[i]->path, path) == 0)
			return l->items[i];
	return NULL;
}

static const co_field_diff *expect(const co_field_diff_list *l, const char *path,
				   co_field_change change, const char *git,
				   const char *etcd)
{
	const co_field_diff *d = find(l, path);

	if (d == NULL)
		fail_msg("no diff entry for %s", path);
	assert_int_equal(d->change, change);
	if (git)
		assert_string_equal(d->git, git);
	else
		assert_null(d->git);
	if (etcd)
		assert_string_equal(d->etcd, etcd);
	else
		assert_null(d->etcd);
	return d;
}

static void diff_lists_nested_added_removed_and_array_paths(void **state)
{
	co_redact *rd = policy(NULL, 0, 1);
	co_field_diff_list l = {0};

	(void)state;
	assert_int_equal(
	    co_redact_diff(
		&l, rd,
		"{\"blocked_by\":[\"A\",\"B\",\"C\"],\"id\":\"T1\","
		"\"metadata\":{\"a\":{\"b\":{\"c\":1}},\"gone\":true,"
		"\"list\":[{\"x\":1},{\"x\":2}],\"same\":\"s\"},\"owner\":null,"
		"\"status\":\"available\"}",
		"{\"blocked_by\":[\"A\",\"X\"],\"id\":\"T1\","
		"\"metadata\":{\"a\":{\"b\":{\"c\":2}},\"list\":[{\"x\":1},"
		"{\"x\":3}],\"new key\":[1],\"same\":\"s\"},\"owner\":\"s1\","
		"\"status\":\"claimed\"}"),
	    0);
	expect(&l, "blocked_by[1]", CO_FIELD_CHANGED, "\"B\"", "\"X\"");
	expect(&l, "blocked_by[2]", CO_FIELD_REMOVED, "\"C\"", NULL);
	expect(&l, "metadata.a.b.c", CO_FIELD_CHANGED, "1", "2");
	expect(&l, "metadata.gone", CO_FIELD_REMOVED, "true", NULL);
	expect(&l, "metadata.list[1].x", CO_FIELD_CHANGED, "2", "3");
	expect(&l, "metadata[\"new key\"]", CO_FIELD_ADDED, NULL, "[1]");
	expect(&l, "owner", CO_FIELD_CHANGED, "null", "\"s1\"");
	expect(&l, "status", CO_FIELD_CHANGED, "\"available\"", "\"claimed\"");
	/* Equal fields are not listed. */
	assert_null(find(&l, "id"));
	assert_null(find(&l, "metadata.same"));
	assert_null(find(&l, "blocked_by[0]"));
	assert_null(find(&l, "metadata.list[0].x"));
	assert_int_equal(l.n, 8);
	/* Key order (canonical input): blocked_by first, status last. */
	assert_string_equal(l.items[0]->path, "blocked_by[1]");
	assert_string_equal(l.items[l.n - 1]->path, "status");
	co_field_diff_list_clear(&l);
	co_redact_free(rd);
}

static void diff_lists_redacted_fields_equal_or_not_without_values(void **state)
{
	co_redact *rd = policy(NULL, 0, 1);
	co_field_diff_list l = {0};
	const co_field_diff *d;
	size_t i;

	(void)state;
	assert_int_equal(co_redact_diff(&l, rd,
					"{\"metadata\":{\"api_token\":\"" SECRET_A
					"\",\"password\":\"p\",\"secret_old\":\"o\"}}",
					"{\"metadata\":{\"api_token\":\"" SECRET_B
					"\",\"password\":\"p\",\"secret_new\":\"n\"}}"),
			 0);
	d = find(&l, "metadata.api_token");
	assert_non_null(d);
	assert_int_equal(d->change, CO_FIELD_REDACTED);
	assert_string_equal(d->redacted, "differs");
	d = find(&l, "metadata.password");
	assert_non_null(d);
	assert_int_equal(d->change, CO_FIELD_REDACTED);
	assert_string_equal(d->redacted, "equal");
	d = find(&l, "metadata.secret_old");
	assert_non_null(d);
	assert_string_equal(d->redacted, "differs");
	assert_null(d->etcd);
	d = find(&l, "metadata.secret_new");
	assert_non_null(d);
	assert_string_equal(d->redacted, "differs");
	for (i = 0; i < l.n; i++) {
		assert_true(l.items[i]->git == NULL ||
			    strstr(l.items[i]->git, "ghp_") == NULL);
		assert_true(l.items[i]->etcd == NULL ||
			    strstr(l.items[i]->etcd, "ghp_") == NULL);
	}
	co_field_diff_list_clear(&l);

	/* A missing record diffs against nothing: every field removed. */
	assert_int_equal(
	    co_redact_diff(&l, rd, "{\"id\":\"T\",\"metadata\":{\"token\":\"t\"}}", NULL),
	    0);
	expect(&l, "id", CO_FIELD_REMOVED, "\"T\"", NULL);
	d = find(&l, "metadata");
	assert_non_null(d);
	assert_string_equal(d->git, "{\"token\":\"[redacted]\"}");
	co_field_diff_list_clear(&l);

	assert_int_equal(co_redact_diff(&l, rd, "[1]", "{}"), CO_EINVAL);
	assert_int_equal(l.n, 0);
	co_redact_free(rd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_match_key_names_at_any_depth_of_metadata),
	    cmocka_unit_test(paths_and_wildcards_match_exactly),
	    cmocka_unit_test(bad_entries_are_refused),
	    cmocka_unit_test(pair_hides_values_and_says_whether_they_differ),
	    cmocka_unit_test(diff_lists_nested_added_removed_and_array_paths),
	    cmocka_unit_test(diff_lists_redacted_fields_equal_or_not_without_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
