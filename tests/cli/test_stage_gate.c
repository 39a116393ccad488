/*
 * test_stage_gate.c - the go/no-go gate of `cutover stage` (DESIGN §4):
 * the pure decision (flags/gate.c) with plain values, then the real binary
 * against a real bare repository, a real etcd and the state database.
 *
 * Passing runs are inserted with co_runs_insert into the state database the
 * binary reads.  A legacy client is plain `git`: clone, write
 * tasks/X.json, commit as "Legacy Bot <legacy@example.com>", push.  "The
 * window passes" is simulated with CUTOVER_CLOCK_OFFSET (seconds added to
 * the clock the gate reads), never with a sleep.
 */
#include "cli_fixture.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/runs.h"
#include "core/state.h"
#include "flags/gate.h"
#include "flags/stage.h"

#include <signal.h>
#include <time.h>

#define HOUR_MS (3600LL * 1000)

/* ---- the pure gate ---- */

static co_flags at(co_stage s)
{
	co_flags f;

	co_flags_init(&f);
	assert_int_equal(co_stage_apply(&f, s), 0);
	return f;
}

static void gate_refuses_forward_without_a_recent_passing_run(void **state)
{
	co_flags git = at(CO_STAGE_GIT), shadow = at(CO_STAGE_SHADOW);
	co_run run = {0};
	co_gate_input in = {0};

	(void)state;
	in.from = &git;
	in.to = &shadow;
	in.now_ms = 100 * HOUR_MS;
	in.window_ms = HOUR_MS;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "no reconciliation run"));

	run.id = 7;
	run.started_at = in.now_ms - 10 * 60 * 1000;
	run.duration_ms = 800;
	run.consistency = 0.95;
	run.verdict = "fail";
	in.latest = &run;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "run 7 failed"));

	/* pending_drain is not a pass: the message names what was owed. */
	{
		co_owed t9 = {"etcd", "task", "T9", 0}, t7 = {"etcd", "task", "T7", 0};
		co_owed *items[2] = {&t9, &t7};

		t9.since = in.now_ms - 3000;
		t7.since = in.now_ms - 5000;
		run.verdict = "pending_drain";
		run.consistency = 0.99;
		run.owed = run.owed_etcd = 2;
		run.owed_oldest_ms = 5000;
		run.owed_list.items = items;
		run.owed_list.n = run.owed_list.cap = 2;
		assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
		assert_non_null(strstr(co_error_last(), "run 7 is pending_drain"));
		assert_non_null(strstr(co_error_last(), "owed 2 acknowledged writes"));
		assert_non_null(
		    strstr(co_error_last(), "oldest task T7, owed to etcd, 5s"));
		assert_non_null(strstr(co_error_last(), "--force"));
		run.owed_list = (co_owed_list){0};
		run.owed = run.owed_etcd = 0;
	}

	run.verdict = "pass";
	run.consistency = 1.0;
	assert_int_equal(co_gate_check(&in), 0);

	run.started_at = in.now_ms - 2 * HOUR_MS;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "older than the go/no-go window"));

	/* Backwards needs nothing. */
	in.from = &shadow;
	in.to = &git;
	in.latest = NULL;
	assert_int_equal(co_gate_check(&in), 0);
}

static void gate_refuses_etcd_primary_while_a_legacy_commit_is_recent(void **state)
{
	co_flags shadow = at(CO_STAGE_SHADOW), ten = at(CO_STAGE_10),
		 fifty = at(CO_STAGE_50);
	co_run run = {.id = 1,
		      .duration_ms = 10,
		      .total = 5,
		      .equal = 5,
		      .consistency = 1.0,
		      .verdict = "pass",
		      .action = "none"};
	co_gate_commit c = {"0123456789", "Legacy Bot <legacy@example.com>", 0};
	co_gate_input in = {0};

	(void)state;
	in.now_ms = 100 * HOUR_MS;
	in.window_ms = HOUR_MS;
	run.started_at = in.now_ms - 1000;
	in.latest = &run;
	in.from = &shadow;
	in.to = &ten;
	c.time_ms = in.now_ms - 5 * 60 * 1000;
	in.foreign = &c;
	in.n_foreign = 1;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "0123456789"));
	assert_non_null(strstr(co_error_last(), "Legacy Bot <legacy@example.com>"));

	/* Outside the window it no longer counts. */
	c.time_ms = in.now_ms - 2 * HOUR_MS;
	assert_int_equal(co_gate_check(&in), 0);

	/* 10 -> 50: etcd could already be primary; the legacy rule is about
	 * leaving git/shadow. */
	c.time_ms = in.now_ms - 1000;
	in.from = &ten;
	in.to = &fifty;
	assert_int_equal(co_gate_check(&in), 0);

	/* Commits that could not be read refuse rather than guess. */
	in.from = &shadow;
	in.to = &ten;
	in.n_foreign = 0;
	in.foreign_error = "git repo x: open: nope";
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "cannot check for legacy writers"));
}

static void gate_refuses_git_straight_to_an_etcd_primary_and_back(void **state)
{
	co_flags git = at(CO_STAGE_GIT), shadow = at(CO_STAGE_SHADOW),
		 ten = at(CO_STAGE_10), etcd = at(CO_STAGE_ETCD), one = at(CO_STAGE_GIT);
	co_run run = {.id = 1,
		      .duration_ms = 10,
		      .total = 5,
		      .equal = 5,
		      .consistency = 1.0,
		      .verdict = "pass",
		      .action = "none"};
	co_gate_input in = {0};
	int back = -1;

	(void)state;
	in.now_ms = 100 * HOUR_MS;
	in.window_ms = HOUR_MS;
	run.started_at = in.now_ms - 1000;
	in.latest = &run; /* a fresh passing run: only the new rule can refuse */
	in.from = &git;
	in.to = &ten;
	assert_int_equal(co_gate_skipped_shadow(&back, &git, &ten), 0);
	assert_int_equal(back, 0);
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "task_create would go from git straight "
						"to dual 10"));
	assert_non_null(strstr(co_error_last(), "go through shadow first"));
	assert_non_null(strstr(co_error_last(), "--force"));
	in.to = &etcd;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "straight to etcd:"));

	/* One operation is enough; dual 0 cannot make etcd primary. */
	assert_int_equal(co_flags_set(&one, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 0), 0);
	assert_int_equal(co_gate_skipped_shadow(&back, &git, &one), -1);
	assert_int_equal(co_flags_set(&one, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 5), 0);
	assert_int_equal(co_gate_skipped_shadow(&back, &git, &one), CO_OP_TASK_CLAIM);
	in.to = &one;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "task_claim would go from git straight "
						"to dual 5"));

	/* Going forward the kill switch is set aside: it does not make git a
	 * shadow for when it is lifted. */
	co_flags_set_kill(&git, 1, "drill");
	in.to = &ten;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	co_flags_set_kill(&git, 0, NULL);

	/* Through shadow is the way, both ways. */
	in.to = &shadow;
	assert_int_equal(co_gate_check(&in), 0);
	in.from = &shadow;
	in.to = &ten;
	assert_int_equal(co_gate_check(&in), 0);
	in.from = &shadow;
	in.to = &git;
	in.latest = NULL;
	assert_int_equal(co_gate_check(&in), 0);

	/* Back: dual or etcd straight to git is refused too. */
	in.from = &ten;
	in.to = &git;
	assert_int_equal(co_gate_skipped_shadow(&back, &ten, &git), 0);
	assert_int_equal(back, 1);
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "task_create would go from dual 10 "
						"straight to git"));
	assert_non_null(strstr(co_error_last(), "cutover rollback"));
	in.from = &etcd;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "from etcd straight to git"));
	/* ... but not under the kill switch, which routes as shadow: rollback
	 * first, then git, is a way back that is never refused. */
	co_flags_set_kill(&etcd, 1, "drill");
	assert_int_equal(co_gate_check(&in), 0);
	co_flags_set_kill(&etcd, 0, NULL);
	/* Stepping back while etcd stays a possible primary is fine. */
	in.from = &etcd;
	in.to = &ten;
	assert_int_equal(co_gate_check(&in), 0);
}

/* ---- the binary ---- */

static void insert_run(fx *f, const char *verdict, int64_t started_at)
{
	co_state *st = NULL;
	co_run r = {0};

	r.started_at = started_at;
	r.duration_ms = 100;
	r.total = r.equal = 3;
	r.consistency = strcmp(verdict, "pass") == 0 ? 1.0 : 0.5;
	r.verdict = (char *)verdict;
	r.action = (char *)"none";
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_runs_insert(NULL, st, &r), 0);
	co_state_close(st);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void stage_forward_needs_a_passing_run_and_force_is_recorded(void **state)
{
	fx *f = *state;
	co_audit_change *c;
	char *out, *err;

	assert_int_equal(fx_run(f, &out, &err, "stage", "shadow"), 3);
	fx_contains(err, "no reconciliation run");
	free(out);
	free(err);

	insert_run(f, "fail", now_ms() - 1000);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "shadow"), 3);
	fx_contains(err, "failed");
	free(err);

	/* --force goes ahead and the audit trail says it was forced. */
	fx_expect(0, f, "stage", "shadow", "--force", "--reason", "drill");
	c = fx_latest_change(f);
	assert_string_equal(c->action, "stage");
	fx_contains(c->detail, "forced past");
	fx_contains(c->detail, "failed");
	assert_string_equal(c->why, "drill");
	co_audit_change_free(c);

	/* Backwards is never refused. */
	fx_expect(0, f, "stage", "git");

	insert_run(f, "pass", now_ms() - 1000);
	/* Not even a fresh passing run lets git skip shadow. */
	assert_int_equal(fx_run(f, NULL, &err, "stage", "10"), 3);
	fx_contains(err, "would go from git straight to dual 10");
	fx_contains(err, "go through shadow first");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "set", "task_claim", "etcd"), 3);
	fx_contains(err, "task_claim would go from git straight to etcd");
	free(err);
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	fx_contains(out, "\"stage\":\"git\"");
	free(out);
	fx_expect(0, f, "stage", "shadow");
	c = fx_latest_change(f);
	assert_null(strstr(c->detail, "forced"));
	co_audit_change_free(c);
	assert_int_equal(fx_run(f, &out, NULL, "stage", "shadow"), 0);
	fx_contains(out, "already at stage shadow");
	free(out);

	/* Stage shorthands change every operation. */
	fx_expect(0, f, "stage", "50");
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	fx_contains(out, "\"stage\":\"50\"");
	fx_contains(out, "\"task_create\":{\"mode\":\"dual\",\"etcd_percent\":50");
	fx_contains(out, "\"watch\":{\"mode\":\"dual\",\"etcd_percent\":50");
	free(out);
	fx_expect(0, f, "stage", "etcd");
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	fx_contains(out, "\"swarm_remove\":{\"mode\":\"etcd\"");
	free(out);

	/* The window passes: the same run is now too old. */
	fx_expect(0, f, "stage", "shadow");
	fx_setenv(f, 0, "CUTOVER_CLOCK_OFFSET=7200");
	assert_int_equal(fx_run(f, NULL, &err, "stage", "10"), 3);
	fx_contains(err, "older than the go/no-go window");
	free(err);

	assert_int_equal(fx_run(f, NULL, &err, "stage", "nine"), 1);
	fx_contains(err, "unknown stage");
	free(err);
}

/* Commit tasks/ID.json with plain git as a legacy client; its short id. */
static void legacy_commit(fx *f, const char *id, char *short_id, size_t len)
{
	char *out = NULL, *err = NULL, dir[256];

	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	if (co_test_sh(&out, &err,
		       "set -e; cd %s && git clone -q %s w && cd w && mkdir -p tasks && "
		       "printf '{\"blocked_by\":[],\"claim_expires_at\":null,"
		       "\"created_at\":\"2026-11-22T10:00:00Z\",\"id\":\"%s\","
		       "\"kind\":\"task\",\"metadata\":{},\"owner\":null,\"rev\":1,"
		       "\"status\":\"available\",\"type\":\"build\","
		       "\"updated_at\":\"2026-11-22T10:00:00Z\"}\\n' > tasks/%s.json && "
		       "git add tasks/%s.json && "
		       "git -c user.name='Legacy Bot' -c user.email=legacy@example.com "
		       "commit -q -m 'add %s' && git push -q origin HEAD:main && "
		       "git rev-parse --short=10 HEAD",
		       dir, f->repo, id, id, id, id) != 0)
		fail_msg("legacy commit failed: %s %s", out, err);
	snprintf(short_id, len, "%.10s", out);
	free(out);
	free(err);
	co_test_rmrf(dir);
}

static void legacy_commit_blocks_stage_10_until_force_or_window(void **state)
{
	fx *f = *state;
	co_audit_change *c;
	char *err, sid[16], want[64];

	/* cutover's own commits (author + trailer) do not count. */
	fx_expect(0, f, "task", "create", "OWN1");
	fx_expect(0, f, "task", "claim", "OWN1", "--swarm", "s1");
	insert_run(f, "pass", now_ms() - 1000);
	fx_expect(0, f, "stage", "shadow");
	fx_expect(0, f, "stage", "10");
	fx_expect(0, f, "stage", "shadow");

	legacy_commit(f, "LEG1", sid, sizeof(sid));
	assert_int_equal(strlen(sid), 10);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "10"), 3);
	snprintf(want, sizeof(want), "commit %s", sid);
	fx_contains(err, want);
	fx_contains(err, "Legacy Bot <legacy@example.com>");
	fx_contains(err, "--force");
	free(err);
	/* Any stage where etcd can be primary, and flags set too. */
	fx_expect(3, f, "stage", "etcd");
	fx_expect(3, f, "flags", "set", "task_claim", "dual", "--etcd-percent", "5");
	/* shadow -> shadow for one operation is not etcd-primary: allowed. */
	fx_expect(0, f, "flags", "set", "task_get", "shadow");

	/* The window passes (and a fresh passing run exists then). */
	fx_setenv(f, 0, "CUTOVER_CLOCK_OFFSET=7200");
	insert_run(f, "pass", now_ms() + 7200 * 1000 - 1000);
	fx_expect(0, f, "stage", "10");
	c = fx_latest_change(f);
	assert_null(strstr(c->detail, "forced"));
	co_audit_change_free(c);

	/* Back in the window: --force overrides, and is recorded. */
	fx_setenv(f, 0, "CUTOVER_CLOCK_OFFSET=0");
	fx_expect(0, f, "stage", "shadow");
	fx_expect(3, f, "stage", "10");
	fx_expect(0, f, "stage", "10", "--force", "--reason", "legacy client drained");
	c = fx_latest_change(f);
	fx_contains(c->detail, "forced past");
	fx_contains(c->detail, sid);
	fx_contains(c->detail, "Legacy Bot");
	assert_string_equal(c->why, "legacy client drained");
	co_audit_change_free(c);
}

/* Put the outbox entry owed to etcd for task `id` into a long retry
 * backoff, as after an outage: the drain will not retry it on its own. */
static void backoff_owed(fx *f, const char *id)
{
	co_state *st = NULL;
	co_outbox_list l = {0};

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_outbox_pending_for(&l, st, "etcd", "task", id), 0);
	assert_int_equal(l.n, 1);
	assert_false(co_outbox_is_intent(l.items[0]));
	assert_int_equal(
	    co_outbox_fail(st, l.items[0]->seq, "etcd: connection refused", 600 * 1000),
	    0);
	co_outbox_list_clear(&l);
	co_state_close(st);
}

/*
 * Issue 15: a claim acknowledged while etcd was down leaves the record
 * owed to etcd; the reconciliation is pending_drain (exit 5, no kill
 * switch) and the gate refuses to move forward on it.  `stage` then waits
 * for the drain: it refuses, naming what is still owed, while etcd cannot
 * take the write, and moves once the drain has caught up and a fresh run
 * passed.
 */
static void stage_waits_for_a_pending_drain_run_and_refuses_if_it_cannot(void **state)
{
	fx *f = *state;
	char *out, *err, down[64], up[128];
	co_run *r = NULL;
	co_state *st = NULL;

	snprintf(down, sizeof(down), "CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:1");
	snprintf(up, sizeof(up), "CUTOVER_ETCD_ENDPOINTS=%s", fx_etcd.endpoint);
	insert_run(f, "pass", now_ms() - 1000);
	fx_expect(0, f, "stage", "shadow");
	fx_expect(0, f, "task", "create", "W1");
	fx_expect(0, f, "task", "create", "W2");
	/* etcd unreachable: git decides, the write is acknowledged, and the
	 * record is owed to etcd in the outbox. */
	fx_setenv(f, 0, down);
	fx_expect(0, f, "task", "claim", "W1", "--swarm", "s1");
	fx_setenv(f, 0, up);
	backoff_owed(f, "W1");

	assert_int_equal(fx_run(f, &out, &err, "reconcile", "--grace", "10ms"), 5);
	fx_contains(out, "verdict pending_drain");
	fx_contains(out, "owed to etcd: 1 (outbox, oldest ");
	fx_contains(out, ": W1\n");
	free(out);
	free(err);
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	fx_contains(out, "\"kill_switch\":false");
	free(out);

	/* No waiting: refused at once, naming what is owed. */
	assert_int_equal(fx_run(f, NULL, &err, "stage", "10", "--wait-drain", "0"), 3);
	fx_contains(err, "is pending_drain");
	fx_contains(err, "owed 1 acknowledged write ");
	fx_contains(err, "task W1, owed to etcd");
	free(err);

	/* Waiting while etcd still cannot take the write: refused, naming
	 * the count and the oldest ID. */
	fx_setenv(f, 0, down);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "10", "--wait-drain", "1"), 3);
	fx_contains(err, "still owes 1 acknowledged write after 1 s of draining");
	fx_contains(err, "oldest: task W1, owed to etcd");
	fx_contains(err, "the drain failed");
	free(err);
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	fx_contains(out, "\"stage\":\"shadow\"");
	free(out);
	{
		/* The refusal is in the audit trail (cutover audit --kind gate). */
		co_audit_change *c = fx_latest_change(f);

		assert_string_equal(c->action, "gate refused");
		fx_contains(c->detail, "stage: ");
		fx_contains(c->why, "pending_drain");
		co_audit_change_free(c);
	}

	/* etcd back: the wait drives the drain (the entry is retried at once,
	 * backoff or not), runs a fresh reconciliation, and the stage moves. */
	fx_setenv(f, 0, up);
	assert_int_equal(fx_run(f, &out, &err, "stage", "10"), 0);
	fx_contains(err, "draining for up to 30 s");
	fx_contains(err, ": pass (consistency 100.0000%)");
	fx_contains(out, "stage shadow -> 10");
	assert_null(strstr(out, "forced"));
	free(out);
	free(err);
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_runs_latest(&r, st), 0);
	assert_string_equal(r->verdict, "pass");
	assert_int_equal(r->owed, 0);
	co_run_free(r);
	co_state_close(st);
	assert_int_equal(fx_run(f, &out, NULL, "--backend", "etcd", "task", "get", "W1"),
			 0);
	fx_contains(out, "s1");
	free(out);
}

/* Once the owed write has drained, a plain `cutover reconcile` passes and
 * the gate lets the stage through without waiting. */
static void a_drained_pending_drain_run_is_followed_by_a_pass(void **state)
{
	fx *f = *state;
	char *out, *err, down[64], up[128];
	co_state *st = NULL;

	snprintf(down, sizeof(down), "CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:1");
	snprintf(up, sizeof(up), "CUTOVER_ETCD_ENDPOINTS=%s", fx_etcd.endpoint);
	insert_run(f, "pass", now_ms() - 1000);
	fx_expect(0, f, "stage", "shadow");
	fx_expect(0, f, "task", "create", "W1");
	fx_setenv(f, 0, down);
	fx_expect(0, f, "task", "claim", "W1", "--swarm", "s1");
	fx_setenv(f, 0, up);
	backoff_owed(f, "W1");
	fx_expect(5, f, "reconcile", "--grace", "10ms");
	fx_expect(3, f, "stage", "10", "--wait-drain", "0");

	/* The backoff ends (made so here); reconcile's own drain applies it. */
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_outbox_expedite(NULL, st, "task", "W1", co_state_now_ms()),
			 0);
	co_state_close(st);
	assert_int_equal(fx_run(f, &out, &err, "reconcile", "--grace", "10ms"), 0);
	fx_contains(out, "verdict pass");
	free(out);
	free(err);
	fx_expect(0, f, "stage", "10", "--wait-drain", "0");
}

static void help_says_a_refusal_is_exit_3(void **state)
{
	fx *f = *state;
	char *out;

	assert_int_equal(fx_run(f, &out, NULL, "stage", "--help"), 0);
	fx_contains(out, "usage");
	fx_contains(out, "exits 3");
	fx_contains(out, "--force");
	fx_contains(out, "--wait-drain SECONDS");
	fx_contains(out, "pending_drain");
	free(out);
	assert_int_equal(fx_run(f, NULL, &out, "stage", "10", "--wait-drain", "soon"), 1);
	fx_contains(out, "--wait-drain");
	free(out);
	assert_int_equal(fx_run(f, &out, NULL, "flags", "set", "--help"), 0);
	fx_contains(out, "exits 3");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(gate_refuses_forward_without_a_recent_passing_run),
	    cmocka_unit_test(gate_refuses_etcd_primary_while_a_legacy_commit_is_recent),
	    cmocka_unit_test(gate_refuses_git_straight_to_an_etcd_primary_and_back),
	    cmocka_unit_test_setup_teardown(
		stage_forward_needs_a_passing_run_and_force_is_recorded, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		legacy_commit_blocks_stage_10_until_force_or_window, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		stage_waits_for_a_pending_drain_run_and_refuses_if_it_cannot,
		fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		a_drained_pending_drain_run_is_followed_by_a_pass, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(help_says_a_refusal_is_exit_3, fx_test_setup,
					    fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
