/*
 * test_api.c - the public C API (include/cutover) does what its headers
 * promise: error codes and messages, record building and reading, the
 * router on a real bare git repository (create, get, list, claim, a lost
 * claim handing back the owner, release, renew), a store on a real etcd,
 * options and config files refused with a message naming the field, and a
 * store that does not answer reported as unavailable.
 *
 * It links the API's objects (src/api) with the static core, as the tests
 * do; what the shared library exports is checked by test_install.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness/harness.h"

#include <cutover/cutover.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char dir[256], repo[256], state_dir[300];

static int setup(void **state)
{
	(void)state;
	if (co_test_tmpdir(dir, sizeof(dir)) < 0 ||
	    co_test_git_repo_new(repo, sizeof(repo)) < 0)
		return -1;
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	co_test_rmrf(dir);
	co_test_rmrf(repo);
	return 0;
}

static void codes_have_messages(void **state)
{
	static const int codes[] = {
	    CUTOVER_EINVAL, CUTOVER_EUNAVAIL, CUTOVER_ECONFLICT, CUTOVER_ENOTFOUND,
	    CUTOVER_EIO,    CUTOVER_ENOMEM,   CUTOVER_ETOOBIG};
	cutover_record *r = (cutover_record *)1;

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_string_not_equal(cutover_strerror(codes[i]), "unknown error");
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(cutover_strerror(codes[i]),
						cutover_strerror(codes[j]));
	}
	assert_string_equal(cutover_strerror(-7), "unknown error");
	assert_string_equal(cutover_strerror(42), "unknown error");
	assert_string_equal(cutover_version(), CUTOVER_VERSION_STRING);

	/* A bad ID: CUTOVER_EINVAL, *out NULL, and a message naming it. */
	assert_int_equal(cutover_task_new(&r, "-bad"), CUTOVER_EINVAL);
	assert_null(r);
	assert_non_null(strstr(cutover_last_error(), "-bad"));
}

static void records_are_built_and_read(void **state)
{
	cutover_record *t = NULL, *back = NULL, *copy = NULL;
	char *json;

	(void)state;
	assert_int_equal(cutover_task_new(&t, "P0.1"), 0);
	assert_int_equal(cutover_record_kind(t), CUTOVER_KIND_TASK);
	assert_string_equal(cutover_record_id(t), "P0.1");
	assert_null(cutover_record_type(t));
	assert_string_equal(cutover_record_metadata(t), "{}");
	assert_int_equal(cutover_record_status(t), CUTOVER_STATUS_AVAILABLE);

	assert_int_equal(cutover_record_set_type(t, "build"), 0);
	assert_string_equal(cutover_record_type(t), "build");
	/* Metadata must be an object; a refusal leaves the record as it was. */
	assert_int_equal(cutover_record_set_metadata(t, "[1]"), CUTOVER_EINVAL);
	assert_string_equal(cutover_record_metadata(t), "{}");
	assert_int_equal(cutover_record_set_metadata(t, "{\"b\": 1, \"a\": 2}"), 0);
	assert_string_equal(cutover_record_metadata(t), "{\"a\":2,\"b\":1}");

	assert_int_equal(cutover_task_add_blocked_by(t, "bad id"), CUTOVER_EINVAL);
	assert_non_null(strstr(cutover_last_error(), "blocked_by"));
	assert_int_equal(cutover_record_blocked_by_count(t), 0);
	assert_int_equal(cutover_task_add_blocked_by(t, "P0.0"), 0);
	assert_int_equal(cutover_record_status(t), CUTOVER_STATUS_BLOCKED);
	assert_int_equal(cutover_record_blocked_by_count(t), 1);
	assert_string_equal(cutover_record_blocked_by(t, 0), "P0.0");
	assert_null(cutover_record_blocked_by(t, 1));
	assert_string_equal(cutover_status_name(cutover_record_status(t)), "blocked");
	assert_string_equal(cutover_status_name((cutover_status)99), "unknown");

	/* The canonical JSON goes both ways (rev 0 is refused: not stored). */
	assert_int_equal(cutover_record_dup(&copy, t), 0);
	assert_non_null(json = cutover_record_to_json(copy, 0));
	assert_int_equal(cutover_record_from_json(&back, json, strlen(json)),
			 CUTOVER_EINVAL);
	assert_null(back);
	assert_non_null(strstr(cutover_last_error(), "rev"));
	cutover_free(json);
	assert_int_equal(cutover_record_from_json(&back, "{\"kind\":\"task\"", 14),
			 CUTOVER_EINVAL);
	cutover_record_free(copy);
	cutover_record_free(t);
	cutover_record_free(NULL);
	cutover_record_list_free(NULL);
}

static void the_router_runs_the_operations_on_git(void **state)
{
	cutover_options o = CUTOVER_OPTIONS_INIT;
	cutover_router *r = NULL;
	cutover_record *t = NULL, *got = NULL;
	cutover_record_list *l = NULL;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	o.git_repo = repo;
	o.state_dir = state_dir;
	assert_int_equal(cutover_router_open(&r, &o), 0);

	assert_int_equal(cutover_task_new(&t, "T1"), 0);
	assert_int_equal(cutover_record_set_type(t, "build"), 0);
	assert_int_equal(cutover_router_task_create(&got, r, t), 0);
	assert_int_equal(cutover_record_rev(got), 1);
	cutover_record_free(got);
	/* The same task again: success with the stored record. */
	assert_int_equal(cutover_router_task_create(&got, r, t), 0);
	assert_int_equal(cutover_record_rev(got), 1);
	cutover_record_free(got);

	assert_int_equal(cutover_router_claim(&got, r, "T1", "swarm-a", 300), 0);
	assert_string_equal(cutover_record_owner(got), "swarm-a");
	assert_int_equal(cutover_record_status(got), CUTOVER_STATUS_CLAIMED);
	assert_true(cutover_record_claim_expires_at(got) >= now + 300);
	cutover_record_free(got);

	/* A lost claim hands back the current record: the owner. */
	assert_int_equal(cutover_router_claim(&got, r, "T1", "swarm-b", 300),
			 CUTOVER_ECONFLICT);
	assert_non_null(got);
	assert_string_equal(cutover_record_owner(got), "swarm-a");
	cutover_record_free(got);
	got = NULL;
	assert_int_equal(
	    cutover_router_release(&got, r, "T1", "swarm-b", CUTOVER_STATUS_COMPLETE),
	    CUTOVER_ECONFLICT);
	assert_string_equal(cutover_record_owner(got), "swarm-a");
	cutover_record_free(got);
	got = NULL;
	assert_int_equal(cutover_router_renew(&got, r, "T1", "swarm-b", 60),
			 CUTOVER_ECONFLICT);
	cutover_record_free(got);
	got = NULL;
	/* Releasing to "claimed" is not a release. */
	assert_int_equal(
	    cutover_router_release(&got, r, "T1", "swarm-a", CUTOVER_STATUS_CLAIMED),
	    CUTOVER_EINVAL);
	assert_null(got);

	assert_int_equal(cutover_router_renew(&got, r, "T1", "swarm-a", 900), 0);
	assert_true(cutover_record_claim_expires_at(got) >= now + 900);
	cutover_record_free(got);
	assert_int_equal(
	    cutover_router_release(&got, r, "T1", "swarm-a", CUTOVER_STATUS_COMPLETE), 0);
	assert_int_equal(cutover_record_status(got), CUTOVER_STATUS_COMPLETE);
	assert_null(cutover_record_owner(got));
	cutover_record_free(got);

	assert_int_equal(cutover_router_get(&got, r, CUTOVER_KIND_TASK, "T1"), 0);
	assert_int_equal(cutover_record_rev(got), 4);
	cutover_record_free(got);
	assert_int_equal(cutover_router_get(&got, r, CUTOVER_KIND_TASK, "nope"),
			 CUTOVER_ENOTFOUND);
	assert_null(got);
	assert_int_equal(cutover_router_get(&got, r, (cutover_kind)7, "T1"),
			 CUTOVER_EINVAL);

	assert_int_equal(cutover_router_list(&l, r, CUTOVER_KIND_TASK), 0);
	assert_int_equal(cutover_record_list_count(l), 1);
	assert_string_equal(cutover_record_id(cutover_record_list_at(l, 0)), "T1");
	assert_null(cutover_record_list_at(l, 1));
	cutover_record_list_free(l);

	cutover_record_free(t);
	cutover_router_close(r);
	/* What the router wrote is in git, for the CLI to read. */
	assert_int_equal(
	    co_test_sh(NULL, NULL,
		       "git --git-dir='%s' show main:tasks/T1.json | grep -q complete",
		       repo),
	    0);
}

static void bad_options_are_refused_naming_the_field(void **state)
{
	cutover_options o = CUTOVER_OPTIONS_INIT;
	const char *bad[] = {"127.0.0.1:2379"};
	cutover_router *r = (cutover_router *)1;
	cutover_store *s = (cutover_store *)1;

	(void)state;
	o.state_dir = state_dir;
	assert_int_equal(cutover_router_open(&r, &o), CUTOVER_EINVAL);
	assert_null(r);
	assert_non_null(strstr(cutover_last_error(), "git"));

	assert_int_equal(cutover_store_open(&s, "svn", &o), CUTOVER_EINVAL);
	assert_null(s);
	assert_non_null(strstr(cutover_last_error(), "svn"));
	s = (cutover_store *)1;
	assert_int_equal(cutover_store_open(&s, NULL, &o), CUTOVER_EINVAL);
	assert_null(s);

	o.etcd_endpoints = bad;
	o.n_etcd_endpoints = 1;
	assert_int_equal(cutover_store_open(&s, "etcd", &o), CUTOVER_EINVAL);
	assert_non_null(strstr(cutover_last_error(), "etcd_endpoints[0]"));
	assert_int_equal(cutover_store_open(&s, "etcd", NULL), CUTOVER_EINVAL);
}

static void a_config_file_is_read_as_the_cli_reads_it(void **state)
{
	char path[400];
	cutover_router *r = NULL;
	cutover_record *got = NULL;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/cutover.yaml", dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "git: { repo: %s }\nstate_dir: %s\nno_such_key: 1\n", repo, state_dir);
	fclose(f);
	assert_int_equal(cutover_router_open_config(&r, path), CUTOVER_EINVAL);
	assert_null(r);
	assert_non_null(strstr(cutover_last_error(), path));
	assert_non_null(strstr(cutover_last_error(), "no_such_key"));

	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "git: { repo: %s }\nstate_dir: %s\n", repo, state_dir);
	fclose(f);
	assert_int_equal(cutover_router_open_config(&r, path), 0);
	assert_int_equal(cutover_router_get(&got, r, CUTOVER_KIND_TASK, "T1"),
			 CUTOVER_ENOTFOUND);
	cutover_router_close(r);
}

static void a_store_runs_on_etcd_and_a_dead_one_is_unavailable(void **state)
{
	co_test_etcd etcd = {0};
	cutover_options o = CUTOVER_OPTIONS_INIT;
	const char *ep[1];
	cutover_store *s = NULL;
	cutover_record *t = NULL, *got = NULL;
	cutover_record_list *l = NULL;

	(void)state;
	assert_int_equal(co_test_etcd_start(&etcd), 0);
	ep[0] = etcd.endpoint;
	o.etcd_endpoints = ep;
	o.n_etcd_endpoints = 1;
	o.etcd_prefix = "/api-test/";
	o.state_dir = state_dir;
	assert_int_equal(cutover_store_open(&s, "etcd", &o), 0);
	assert_int_equal(cutover_store_ping(s), 0);
	assert_int_equal(cutover_task_new(&t, "E1"), 0);
	assert_int_equal(cutover_store_task_create(&got, s, t), 0);
	cutover_record_free(got);
	assert_int_equal(cutover_store_claim(&got, s, "E1", "swarm-e", 0), 0);
	assert_int_equal(cutover_record_rev(got), 2);
	assert_int_equal(cutover_record_claim_expires_at(got), 0);
	cutover_record_free(got);
	assert_int_equal(cutover_store_list(&l, s, CUTOVER_KIND_TASK), 0);
	assert_int_equal(cutover_record_list_count(l), 1);
	cutover_record_list_free(l);
	cutover_store_close(s);
	s = NULL;
	{
		/* The same key, as the CLI reads it from etcd. */
		char env_ep[128], *out = NULL;
		const char *env[] = {env_ep, "CUTOVER_ETCD_PREFIX=/api-test/", NULL};
		const char *argv[] = {"--backend", "etcd", "task", "get", "E1", NULL};

		snprintf(env_ep, sizeof(env_ep), "CUTOVER_ETCD_ENDPOINTS=%s",
			 etcd.endpoint);
		assert_int_equal(co_test_cutover(&out, NULL, env, argv), 0);
		assert_non_null(strstr(out, "swarm-e"));
		free(out);
	}

	/* etcd gone: its store opens (no contact) and reports unavailable. */
	co_test_etcd_stop(&etcd);
	assert_int_equal(cutover_store_open(&s, "etcd", &o), 0);
	assert_int_equal(cutover_store_ping(s), CUTOVER_EUNAVAIL);
	assert_int_equal(cutover_store_get(&got, s, CUTOVER_KIND_TASK, "E1"),
			 CUTOVER_EUNAVAIL);
	assert_null(got);
	assert_string_not_equal(cutover_last_error(), "");
	cutover_store_close(s);
	cutover_record_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(codes_have_messages),
	    cmocka_unit_test(records_are_built_and_read),
	    cmocka_unit_test_setup_teardown(the_router_runs_the_operations_on_git, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(bad_options_are_refused_naming_the_field,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(a_config_file_is_read_as_the_cli_reads_it,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_store_runs_on_etcd_and_a_dead_one_is_unavailable, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
