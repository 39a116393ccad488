/*
 * test_flags_cli.c - `cutover flags`, `rollback`, `resume`, `status` and the
 * data commands through the router, with the real binary, a real bare git
 * repository per test and one real etcd for the suite.
 *
 * Flag changes that would move an operation forward pass the go/no-go gate,
 * which these tests are not about: they use --force where needed (the gate
 * has its own tests in test_stage_gate.c).  The audit trail is read back
 * from the state database the binary wrote.
 */
#include "cli_fixture.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/record.h"
#include "core/state.h"
#include "flags/flags.h"

#include <cjson/cJSON.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static cJSON *json_of(const char *out)
{
	cJSON *j = cJSON_Parse(out);

	if (j == NULL)
		fail_msg("not JSON: %s", out);
	return j;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v))
		fail_msg("no string \"%s\"", key);
	return v->valuestring;
}

static void flags_set_show_explain_round_trip(void **state)
{
	fx *f = *state;
	co_audit_change *c;
	char *out, *err;
	cJSON *j, *op;
	co_flags fl;
	char path[300];

	/* No flags file: everything git. */
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	j = json_of(out);
	assert_string_equal(jstr(j, "stage"), "git");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "kill_switch")));
	cJSON_Delete(j);
	free(out);

	fx_expect(0, f, "flags", "set", "task_claim", "dual", "--etcd-percent", "37",
		  "--reason", "canary", "--force");
	c = fx_latest_change(f);
	assert_string_equal(c->who, "tester");
	assert_string_equal(c->action, "flags set");
	fx_contains(c->detail, "task_claim");
	fx_contains(c->detail, "dual 37");
	fx_contains(c->detail, "forced past");
	assert_string_equal(c->why, "canary");
	co_audit_change_free(c);

	/* The file on disk says the same, and show prints it back. */
	snprintf(path, sizeof(path), "%s/flags.yaml", f->state);
	assert_int_equal(co_flags_load(&fl, path), 0);
	assert_int_equal(co_flags_get(&fl, CO_OP_TASK_CLAIM).mode, CO_MODE_DUAL);
	assert_int_equal(co_flags_get(&fl, CO_OP_TASK_CLAIM).etcd_percent, 37);
	assert_int_equal(co_flags_get(&fl, CO_OP_TASK_GET).mode, CO_MODE_GIT);
	assert_string_equal(fl.updated_by, "tester");

	assert_int_equal(fx_run(f, &out, NULL, "flags", "show"), 0);
	fx_contains(out, "task_claim: {mode: dual, etcd_percent: 37}");
	free(out);
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	j = json_of(out);
	op = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "operations"), "task_claim");
	assert_string_equal(jstr(op, "mode"), "dual");
	assert_int_equal(cJSON_GetObjectItem(op, "etcd_percent")->valueint, 37);
	assert_string_equal(jstr(j, "stage"), "custom");
	cJSON_Delete(j);
	free(out);

	/* explain --json: exactly the six documented fields. */
	assert_int_equal(
	    fx_run(f, &out, &err, "--json", "flags", "explain", "task_claim", "P0.1.2"),
	    0);
	j = json_of(out);
	assert_int_equal(cJSON_GetArraySize(j), 6);
	assert_string_equal(jstr(j, "op"), "task_claim");
	assert_string_equal(jstr(j, "id"), "P0.1.2");
	assert_string_equal(jstr(j, "mode"), "dual");
	{
		co_route rt;

		assert_int_equal(co_flags_route(&rt, &fl, CO_OP_TASK_CLAIM, "P0.1.2"), 0);
		assert_string_equal(jstr(j, "primary"), co_side_name(rt.primary));
		assert_string_equal(jstr(j, "secondary"), co_side_name(rt.secondary));
	}
	assert_true(cJSON_IsBool(cJSON_GetObjectItem(j, "kill_switch")));
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "kill_switch")));
	cJSON_Delete(j);
	free(out);
	free(err);

	/* An operation left alone stays git, in text too. */
	assert_int_equal(fx_run(f, &out, NULL, "flags", "explain", "task_get", "P0.1.2"),
			 0);
	fx_contains(out, "primary git, secondary none");
	free(out);

	/* Back to git goes through shadow: straight from dual is refused. */
	assert_int_equal(fx_run(f, NULL, &err, "flags", "set", "task_claim", "git"), 3);
	fx_contains(err, "task_claim would go from dual 37 straight to git");
	free(err);
	assert_int_equal(co_flags_load(&fl, path), 0);
	assert_int_equal(co_flags_get(&fl, CO_OP_TASK_CLAIM).mode, CO_MODE_DUAL);
	fx_expect(0, f, "flags", "set", "task_claim", "shadow");
	fx_expect(0, f, "flags", "set", "task_claim", "git");
	assert_int_equal(co_flags_load(&fl, path), 0);
	assert_int_equal(co_flags_get(&fl, CO_OP_TASK_CLAIM).mode, CO_MODE_GIT);
}

static void flags_errors_are_exit_1_with_a_message(void **state)
{
	fx *f = *state;
	char *err, path[300];

	assert_int_equal(fx_run(f, NULL, &err, "flags", "set", "task_clam", "git"), 1);
	fx_contains(err, "unknown operation \"task_clam\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "set", "task_claim", "dule"), 1);
	fx_contains(err, "unknown mode \"dule\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "set", "task_claim", "dual",
				"--etcd-percent", "101"),
			 1);
	fx_contains(err, "--etcd-percent \"101\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "set", "task_claim", "dual",
				"--etcd-percent", "ten"),
			 1);
	fx_contains(err, "--etcd-percent \"ten\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "set", "task_claim", "dual"), 1);
	fx_contains(err, "--etcd-percent");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "explain", "nope", "X1"), 1);
	fx_contains(err, "unknown operation \"nope\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "explain", "task_get", "../x"),
			 1);
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "frobnicate"), 1);
	fx_contains(err, "unknown subcommand");
	free(err);

	/* Nothing was written by any of them. */
	snprintf(path, sizeof(path), "%s/flags.yaml", f->state);
	assert_int_equal(access(path, F_OK), -1);
}

/* `cutover rollback` while another writer is stuck holding the flags lock. */
static void rollback_is_not_held_up_by_a_stuck_flags_writer(void **state)
{
	fx *f = *state;
	co_flags fl;
	char path[300], want[80], *err, *out;
	int lock;

	snprintf(path, sizeof(path), "%s/flags.yaml", f->state);
	fx_expect(0, f, "stage", "100", "--force");
	lock = co_flags_lock(path); /* this test process: the stuck writer */
	assert_true(lock >= 0);
	assert_int_equal(fx_run(f, NULL, &err, "rollback", "--reason", "drill"), 0);
	snprintf(want, sizeof(want), "held by pid %d (", (int)getpid());
	fx_contains(err, want);
	fx_contains(err, "pulling the kill switch without the lock");
	free(err);
	assert_int_equal(co_flags_load(&fl, path), 0);
	assert_true(fl.kill_switch);
	assert_string_equal(fl.kill_reason, "drill");
	/* `cutover status` names the stuck writer. */
	assert_int_equal(fx_run(f, &out, NULL, "status"), 0);
	snprintf(want, sizeof(want), "flags lock:   held by pid %d (", (int)getpid());
	fx_contains(out, want);
	free(out);
	co_flags_unlock(lock);
}

static void rollback_sets_kill_switch_with_reason_and_resume_clears_it(void **state)
{
	fx *f = *state;
	co_audit_change *c;
	char *out, *err;
	cJSON *j;

	fx_expect(0, f, "stage", "100", "--force");
	assert_int_equal(
	    fx_run(f, &out, &err, "--json", "rollback", "--reason", "etcd p99 too high"),
	    0);
	j = json_of(out);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "kill_switch")));
	assert_string_equal(jstr(j, "kill_reason"), "etcd p99 too high");
	assert_int_equal(cJSON_GetObjectItem(j, "outbox_git_left")->valueint, 0);
	cJSON_Delete(j);
	fx_contains(err, "drained");
	free(out);
	free(err);
	c = fx_latest_change(f);
	assert_string_equal(c->action, "rollback");
	assert_string_equal(c->why, "etcd p99 too high");
	fx_contains(c->detail, "kill_switch");
	co_audit_change_free(c);

	/* Every operation now goes to git, whatever the stage says. */
	assert_int_equal(
	    fx_run(f, &out, NULL, "--json", "flags", "explain", "task_claim", "ANY1"), 0);
	j = json_of(out);
	assert_string_equal(jstr(j, "primary"), "git");
	assert_string_equal(jstr(j, "secondary"), "etcd");
	assert_string_equal(jstr(j, "mode"), "shadow");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "kill_switch")));
	cJSON_Delete(j);
	free(out);

	fx_expect(0, f, "resume", "--reason", "healthy");
	c = fx_latest_change(f);
	assert_string_equal(c->action, "resume");
	co_audit_change_free(c);
	assert_int_equal(
	    fx_run(f, &out, NULL, "--json", "flags", "explain", "task_claim", "ANY1"), 0);
	j = json_of(out);
	assert_string_equal(jstr(j, "primary"), "etcd");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "kill_switch")));
	cJSON_Delete(j);
	free(out);
}

static void rollback_works_while_etcd_is_down_and_drains_git_first(void **state)
{
	fx *f = *state;
	co_test_etcd own = {0};
	co_record *r = NULL;
	char *out, *err, ep[128];

	assert_int_equal(co_test_etcd_start(&own), 0);
	snprintf(ep, sizeof(ep), "CUTOVER_ETCD_ENDPOINTS=%s", own.endpoint);
	fx_setenv(f, 0, ep);
	fx_setenv(f, 1, "CUTOVER_ETCD_REQUEST_TIMEOUT=1s");
	/* etcd mode: git is fed through the outbox. */
	fx_expect(0, f, "stage", "etcd", "--force");
	fx_expect(0, f, "task", "create", "RB1");
	co_test_etcd_kill(&own);

	assert_int_equal(fx_run(f, &out, &err, "rollback", "--reason", "etcd died"), 0);
	fx_contains(out, "kill switch on: etcd died");
	free(out);
	free(err);
	/* Git holds what etcd acknowledged, and serves it. */
	assert_int_equal(
	    fx_run(f, &out, &err, "--json", "--backend", "git", "task", "get", "RB1"), 0);
	assert_int_equal(co_record_from_json(&r, out, strlen(out) - 1), 0);
	assert_string_equal(r->id, "RB1");
	co_record_free(r);
	free(out);
	free(err);
	fx_expect(0, f, "task", "get", "RB1");
	co_test_etcd_stop(&own);
}

static void status_shows_every_field(void **state)
{
	fx *f = *state;
	char *out;
	cJSON *j, *x;

	fx_expect(0, f, "stage", "shadow", "--force");
	fx_expect(0, f, "rollback", "--reason", "drill");
	assert_int_equal(fx_run(f, &out, NULL, "--json", "status"), 0);
	j = json_of(out);
	assert_string_equal(jstr(j, "stage"), "shadow");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "kill_switch")));
	assert_string_equal(jstr(j, "kill_reason"), "drill");
	x = cJSON_GetObjectItem(j, "operations");
	assert_int_equal(cJSON_GetArraySize(x), CO_OP__COUNT);
	assert_string_equal(jstr(cJSON_GetObjectItem(x, "watch"), "mode"), "shadow");
	x = cJSON_GetObjectItem(j, "outbox");
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(x, "git")));
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(x, "etcd")));
	x = cJSON_GetObjectItem(j, "stores");
	assert_true(
	    cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(x, "git"), "up")));
	assert_true(
	    cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(x, "etcd"), "up")));
	cJSON_Delete(j);
	free(out);

	assert_int_equal(fx_run(f, &out, NULL, "status"), 0);
	fx_contains(out, "stage:        shadow");
	fx_contains(out, "ON (drill)");
	fx_contains(out, "task_claim");
	fx_contains(out, "outbox:");
	fx_contains(out, "etcd store:   up");
	free(out);

	/* A store that is down is reported, not an error. */
	fx_setenv(f, 0, "CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:1");
	assert_int_equal(fx_run(f, &out, NULL, "--json", "status"), 0);
	j = json_of(out);
	x = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stores"), "etcd");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(x, "up")));
	fx_contains(jstr(x, "error"), "127.0.0.1:1");
	cJSON_Delete(j);
	free(out);
}

/* Get a task from one store, --json; NULL if absent. */
static co_record *get_from(fx *f, const char *backend, const char *id)
{
	co_record *r = NULL;
	char *out;
	int rc = fx_run(f, &out, NULL, "--json", "--backend", backend, "task", "get", id);

	if (rc == 0)
		assert_int_equal(co_record_from_json(&r, out, strlen(out) - 1), 0);
	else
		assert_int_equal(rc, 4);
	free(out);
	return r;
}

static void router_writes_reach_both_stores_in_dual_100(void **state)
{
	fx *f = *state;
	co_record *g, *e;

	fx_expect(0, f, "stage", "100", "--force");
	fx_expect(0, f, "task", "create", "RT1", "--type", "build");
	fx_expect(0, f, "task", "claim", "RT1", "--swarm", "swarm-a");
	fx_expect(3, f, "task", "claim", "RT1", "--swarm", "swarm-b");
	g = get_from(f, "git", "RT1");
	e = get_from(f, "etcd", "RT1");
	assert_non_null(g);
	assert_non_null(e);
	assert_string_equal(g->owner, "swarm-a");
	assert_string_equal(e->owner, "swarm-a");
	assert_int_equal(g->rev, e->rev);
	assert_true(co_record_equal(g, e));
	co_record_free(g);
	co_record_free(e);
	fx_expect(0, f, "swarm", "register", "sw1", "--cap", "build");
	fx_expect(0, f, "--backend", "git", "swarm", "get", "sw1");
	fx_expect(0, f, "--backend", "etcd", "swarm", "get", "sw1");
}

static void router_in_git_stage_leaves_etcd_alone_even_when_down(void **state)
{
	fx *f = *state;
	co_record *g;

	fx_setenv(f, 0, "CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:1");
	fx_expect(0, f, "task", "create", "GT1");
	fx_expect(0, f, "task", "claim", "GT1", "--swarm", "swarm-a");
	fx_expect(0, f, "task", "list");
	g = get_from(f, "git", "GT1");
	assert_non_null(g);
	assert_string_equal(g->owner, "swarm-a");
	co_record_free(g);
}

static void router_in_shadow_mirrors_into_etcd(void **state)
{
	fx *f = *state;
	co_record *g, *e;

	fx_expect(0, f, "stage", "shadow", "--force");
	fx_expect(0, f, "task", "create", "SH1");
	fx_expect(0, f, "task", "claim", "SH1", "--swarm", "swarm-c");
	g = get_from(f, "git", "SH1");
	e = get_from(f, "etcd", "SH1");
	assert_non_null(g);
	assert_non_null(e);
	assert_true(co_record_equal(g, e));
	co_record_free(g);
	co_record_free(e);
}

/* ---- watch through the router ---- */

static void stop_child(pid_t pid)
{
	int status, i;

	kill(pid, SIGINT);
	for (i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(10000);
	if (i == 1000) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
}

static void running_watch_switches_source_on_a_stage_change(void **state)
{
	fx *f = *state;
	char *argv[] = {(char *)CUTOVER_BIN, "watch", "--prefix", "tasks/", NULL};
	char **envp = fx_make_envp(f->env);
	int out[2], err[2], tries;
	char *line = NULL, id[32];
	cJSON *ev = NULL;
	pid_t pid;

	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(err), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		execve(CUTOVER_BIN, argv, envp);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	free(envp);
	line = fx_read_line(err[0], 15000);
	if (line == NULL || strstr(line, "watching") == NULL) {
		stop_child(pid);
		fail_msg("watch did not start: %s", line ? line : "(nothing)");
	}
	free(line);

	/* Stage git: etcd's events are not the primary's and are dropped; the
	 * first event is git's, although etcd's came first. */
	fx_expect(0, f, "--backend", "etcd", "task", "create", "W0");
	fx_expect(0, f, "--backend", "git", "task", "create", "W1");
	line = fx_read_line(out[0], 15000);
	if (line == NULL) {
		stop_child(pid);
		fail_msg("no event within 15 s");
	}
	ev = cJSON_Parse(line);
	assert_non_null(ev);
	assert_string_equal(cJSON_GetObjectItem(ev, "id")->valuestring, "W1");
	assert_string_equal(cJSON_GetObjectItem(ev, "store")->valuestring, "git");
	cJSON_Delete(ev);
	free(line);

	/* Stage 100: the running watch reloads its flags and now follows etcd.
	 * The reload lands within ~100 ms of the save; poll for it, bounded. */
	fx_expect(0, f, "stage", "100", "--force");
	for (tries = 0, line = NULL; tries < 20 && line == NULL; tries++) {
		snprintf(id, sizeof(id), "E%d", tries);
		fx_expect(0, f, "--backend", "etcd", "task", "create", id);
		line = fx_read_line(out[0], 1000);
	}
	if (line == NULL) {
		stop_child(pid);
		fail_msg("the watch never delivered an etcd event after the flip");
	}
	ev = cJSON_Parse(line);
	assert_non_null(ev);
	assert_string_equal(cJSON_GetObjectItem(ev, "store")->valuestring, "etcd");
	assert_int_equal(strncmp(cJSON_GetObjectItem(ev, "id")->valuestring, "E", 1), 0);
	cJSON_Delete(ev);
	free(line);
	/* Still running: it ends on SIGINT, cleanly. */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
	stop_child(pid);
	close(out[0]);
	close(err[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(flags_set_show_explain_round_trip,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(flags_errors_are_exit_1_with_a_message,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		rollback_is_not_held_up_by_a_stuck_flags_writer, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		rollback_sets_kill_switch_with_reason_and_resume_clears_it, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		rollback_works_while_etcd_is_down_and_drains_git_first, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(status_shows_every_field, fx_test_setup,
					    fx_test_teardown),
	    cmocka_unit_test_setup_teardown(router_writes_reach_both_stores_in_dual_100,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		router_in_git_stage_leaves_etcd_alone_even_when_down, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(router_in_shadow_mirrors_into_etcd,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		running_watch_switches_source_on_a_stage_change, fx_test_setup,
		fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
