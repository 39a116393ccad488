/*
 * test_stage_checks.c - the go/no-go gate's pre-switch checks and the way
 * back (flags/gate.h rules 4 and 5), and `--dry-run` of `stage` and
 * `flags set` (issue 14 points 3 and 4): first the pure rules with plain
 * values, then the real binary against a real bare repository, a real etcd
 * and the state database.
 *
 * Passing runs are inserted with co_runs_insert; outbox entries owed to a
 * store with co_outbox_push (and co_outbox_fail for a failing drain), as a
 * router leaves them.
 */
#include "cli_fixture.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/runs.h"
#include "core/state.h"
#include "flags/gate.h"
#include "flags/stage.h"

#include <sys/stat.h>
#include <time.h>

#define HOUR_MS (3600LL * 1000)

/* ---- the pure rules ---- */

static co_flags at(co_stage s)
{
	co_flags f;

	co_flags_init(&f);
	assert_int_equal(co_stage_apply(&f, s), 0);
	return f;
}

/* Healthy stores, an empty outbox, no shadow reads. */
static co_gate_checks healthy(void)
{
	co_gate_checks k = {0};

	k.etcd_leader = 42;
	k.etcd_alarms = "";
	k.max_outbox_depth = 100;
	k.max_outbox_age_ms = 120 * 1000;
	k.max_mismatch_ratio = 0.01;
	return k;
}

static void rules_4_and_5_refuse_each_with_its_own_text(void **state)
{
	co_flags shadow = at(CO_STAGE_SHADOW), ten = at(CO_STAGE_10),
		 fifty = at(CO_STAGE_50);
	co_run run = {.id = 1, .duration_ms = 10, .total = 5, .equal = 5,
		      .consistency = 1.0, .verdict = "pass", .action = "none"};
	co_gate_checks k = healthy();
	co_gate_verdict v[CO_GATE__COUNT];
	co_gate_input in = {0};

	(void)state;
	in.now_ms = 100 * HOUR_MS;
	in.window_ms = HOUR_MS;
	run.started_at = in.now_ms - 1000;
	in.latest = &run;
	in.from = &ten;
	in.to = &fifty;
	in.checks = &k;
	assert_true(co_gate_raises_etcd(&ten, &fifty));
	assert_true(co_gate_raises_etcd(&shadow, &ten));
	assert_false(co_gate_raises_etcd(&fifty, &ten));
	assert_int_equal(co_gate_check(&in), 0);

	/* The outbox: depth, then age (naming the last error). */
	k.owed_etcd.depth = 101;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	fx_contains(co_error_last(), "owes etcd 101 entries, over the bound of 100");
	k.owed_etcd.depth = 3;
	k.owed_etcd.oldest_ms = in.now_ms - 600 * 1000;
	snprintf(k.owed_etcd.last_error, sizeof(k.owed_etcd.last_error), "timeout");
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	fx_contains(co_error_last(), "oldest entry owed to etcd is 10m old");
	fx_contains(co_error_last(), "last error: timeout");
	k = healthy();

	/* etcd: down, an alarm, no leader. */
	k.etcd_error = "etcd http://127.0.0.1:1: connection refused";
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	fx_contains(co_error_last(), "etcd is not healthy: etcd http://127.0.0.1:1");
	fx_contains(co_error_last(), "cannot read etcd's status");
	k = healthy();
	k.etcd_alarms = "NOSPACE";
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	fx_contains(co_error_last(), "etcd raises an alarm: NOSPACE");
	k = healthy();
	k.etcd_leader = 0;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	fx_contains(co_error_last(), "etcd has no leader");
	k = healthy();

	/* Shadow mismatches over the bound; none read is no refusal. */
	k.shadow_reads = 1000;
	k.shadow_mismatches = 50;
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	fx_contains(co_error_last(), "shadow reads disagreed 50 times in 1000");
	k.shadow_mismatches = 5;
	assert_int_equal(co_gate_check(&in), 0);
	k = healthy();

	/* The way back: git not writable, the git-bound drain failing. */
	k.git_error = "/srv/tasks.git/objects is not writable: Permission denied";
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	fx_contains(co_error_last(), "git is not healthy");
	fx_contains(co_error_last(), "no way back: git does not take writes");
	k = healthy();
	k.owed_git.depth = 4;
	k.owed_git.failing = 2;
	k.owed_git.oldest_ms = in.now_ms - 1000;
	snprintf(k.owed_git.last_error, sizeof(k.owed_git.last_error), "disk full");
	assert_int_equal(co_gate_check(&in), CO_ECONFLICT);
	fx_contains(co_error_last(), "no way back: the drain to git is failing (2 of 4");
	fx_contains(co_error_last(), "last error: disk full");

	/* All refusals are listed, each with its rule's verdict. */
	k.etcd_leader = 0;
	assert_int_equal(co_gate_evaluate(v, &in), 2);
	assert_false(v[CO_GATE_ETCD].ok);
	assert_false(v[CO_GATE_DRAIN_BACK].ok);
	assert_true(v[CO_GATE_RUN].ok);
	assert_string_equal(v[CO_GATE_DRAIN_BACK].rule, "way back: git drain");

	/* Moving back: rules 4 and 5 do not apply, whatever the stores do. */
	in.from = &fifty;
	in.to = &ten;
	assert_int_equal(co_gate_evaluate(v, &in), 0);
	assert_false(v[CO_GATE_OUTBOX].applies);
	assert_int_equal(co_gate_check(&in), 0);

	/* Without the checks read, they are reported as not checked. */
	in.from = &ten;
	in.to = &fifty;
	in.checks = NULL;
	assert_int_equal(co_gate_evaluate(v, &in), 0);
	assert_true(v[CO_GATE_STORES].applies);
	assert_false(v[CO_GATE_STORES].checked);
}

/* ---- the binary ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void insert_pass(fx *f)
{
	co_state *st = NULL;
	co_run r = {0};

	r.started_at = now_ms() - 1000;
	r.duration_ms = 100;
	r.total = r.equal = 3;
	r.consistency = 1.0;
	r.verdict = (char *)"pass";
	r.action = (char *)"none";
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_runs_insert(NULL, st, &r), 0);
	co_state_close(st);
}

/* Tasks T0..Tn-1 created, a passing run, and the stage at 10. */
static void at_ten(fx *f, int n)
{
	char id[16];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "T%d", i);
		fx_expect(0, f, "task", "create", id);
	}
	insert_pass(f);
	fx_expect(0, f, "stage", "shadow");
	fx_expect(0, f, "stage", "10");
}

static void stage_refuses_when_etcd_or_the_way_back_is_not_there(void **state)
{
	fx *f = *state;
	co_state *st = NULL;
	int64_t seq = 0;
	char *out, *err, moved[300];

	at_ten(f, 3);

	/* etcd unreachable: refused, naming etcd. */
	fx_setenv(f, 0, "CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:1");
	assert_int_equal(fx_run(f, NULL, &err, "stage", "50"), 3);
	fx_contains(err, "etcd is not healthy");
	fx_contains(err, "--force");
	free(err);
	fx_setenv(f, 0, f->e_etcd);

	/* git gone: refused twice over, the way back named. */
	snprintf(moved, sizeof(moved), "%s.away", f->repo);
	assert_int_equal(rename(f->repo, moved), 0);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "50"), 3);
	fx_contains(err, "git is not healthy");
	fx_contains(err, "no way back: git does not take writes");
	free(err);
	assert_int_equal(rename(moved, f->repo), 0);

	/* The drain to git failing: refused, with its last error. */
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_outbox_push(&seq, st, "git", "task", "T1", NULL), 0);
	assert_int_equal(co_outbox_fail(st, seq, "git: No space left on device", 600000),
			 0);
	co_state_close(st);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "50"), 3);
	fx_contains(err, "no way back: the drain to git is failing (1 of 1");
	fx_contains(err, "No space left on device");
	free(err);
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_outbox_ack(st, seq), 0);
	co_state_close(st);

	/* Nothing in the way: it moves; moving back needs none of it. */
	fx_expect(0, f, "stage", "50");
	fx_setenv(f, 0, "CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:1");
	assert_int_equal(fx_run(f, &out, NULL, "stage", "10"), 0);
	fx_contains(out, "stage 50 -> 10");
	free(out);
}

static void stage_refuses_an_outbox_over_its_bound(void **state)
{
	fx *f = *state;
	co_state *st = NULL;
	char cfg[300], env[320], *err;
	FILE *fp;

	at_ten(f, 2);
	snprintf(cfg, sizeof(cfg), "%s/cutover.yaml", f->state);
	assert_non_null(fp = fopen(cfg, "w"));
	fputs("gate:\n  outbox_max_depth: 1\n  outbox_max_age: 10m\n", fp);
	fclose(fp);
	snprintf(env, sizeof(env), "CUTOVER_CONFIG=%s", cfg);
	fx_setenv(f, 1, env);
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_outbox_push(NULL, st, "etcd", "task", "T0", NULL), 0);
	assert_int_equal(co_outbox_push(NULL, st, "etcd", "task", "T1", NULL), 0);
	co_state_close(st);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "etcd"), 3);
	fx_contains(err, "the outbox owes etcd 2 entries, over the bound of 1");
	free(err);

	/* A bad bound is bad input: exit 1, naming the key. */
	assert_non_null(fp = fopen(cfg, "w"));
	fputs("gate:\n  outbox_max_depth: lots\n", fp);
	fclose(fp);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "etcd"), 1);
	fx_contains(err, "gate.outbox_max_depth");
	free(err);
}

/*
 * Sampled-out shadow reads were never compared: the gate's mismatch ratio
 * is over the compared ones (core/shadow.h), so 5 mismatches in 100 reads
 * pass a 10% bound at sample 100 and fail it at sample 10 (10 compared).
 */
static void gate_counts_only_compared_shadow_reads(void **state)
{
	fx *f = *state;
	co_state *st = NULL;
	co_audit_op op = {0};
	char cfg[300], env[320], *err, *out;
	FILE *fp;
	int i;

	at_ten(f, 2);
	assert_int_equal(co_state_open(&st, f->state), 0);
	op.op = (char *)"task_get";
	op.id = (char *)"T0";
	op.mode = (char *)"shadow";
	op.primary = (char *)"git";
	op.outcome = (char *)"ok";
	for (i = 0; i < 100; i++)
		assert_int_equal(co_audit_op_add(st, &op), 0);
	for (i = 0; i < 5; i++)
		assert_int_equal(
		    co_audit_mismatch_add(st, "task_get", "T0", "{}", "{\"x\":1}"), 0);
	co_state_close(st);
	snprintf(cfg, sizeof(cfg), "%s/cutover.yaml", f->state);
	snprintf(env, sizeof(env), "CUTOVER_CONFIG=%s", cfg);
	fx_setenv(f, 1, env);
	assert_non_null(fp = fopen(cfg, "w"));
	fputs("gate: { max_shadow_mismatch_ratio: 0.1 }\nshadow: { sample: 10 }\n", fp);
	fclose(fp);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "50"), 3);
	fx_contains(err, "shadow reads disagreed 5 times in 10 ");
	free(err);
	assert_non_null(fp = fopen(cfg, "w"));
	fputs("gate: { max_shadow_mismatch_ratio: 0.1 }\nshadow: { sample: 100 }\n", fp);
	fclose(fp);
	assert_int_equal(fx_run(f, &out, NULL, "stage", "50"), 0);
	fx_contains(out, "stage 10 -> 50");
	free(out);
}

/* The flags file's bytes ("" if none) and the audit trail's row count. */
static char *flags_bytes(fx *f)
{
	char path[300], *buf = calloc(1, 65536);
	FILE *fp;

	snprintf(path, sizeof(path), "%s/flags.yaml", f->state);
	if ((fp = fopen(path, "rb")) != NULL) {
		size_t n = fread(buf, 1, 65535, fp);

		buf[n] = '\0';
		fclose(fp);
	}
	return buf;
}

static size_t audit_rows(fx *f)
{
	co_state *st = NULL;
	co_audit_change_list l = {0};
	size_t n;

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_audit_changes_latest(&l, st, 100000), 0);
	n = l.n;
	co_audit_change_list_clear(&l);
	co_state_close(st);
	return n;
}

static void dry_run_prints_the_plan_and_changes_nothing(void **state)
{
	fx *f = *state;
	char *before, *after, *out, *err;
	size_t rows;

	at_ten(f, 40);
	before = flags_bytes(f);
	rows = audit_rows(f);

	/* A change the gate lets through: exit 0, every rule told. */
	assert_int_equal(fx_run(f, &out, NULL, "stage", "50", "--dry-run"), 0);
	fx_contains(out, "dry run of `cutover stage 50`: nothing was changed");
	fx_contains(out, "stage 10 -> 50");
	fx_contains(out, "task_claim      dual 10  -> dual 50");
	fx_contains(out, "of 40 tasks to etcd, 0 to git");
	fx_contains(out, "ok        reconciliation");
	fx_contains(out, "ok        way back: git writable");
	fx_contains(out, "result: the change would go ahead");
	free(out);

	/* JSON: the same plan, the IDs counted exactly. */
	assert_int_equal(fx_run(f, &out, NULL, "--json", "stage", "100", "--dry-run"), 0);
	fx_contains(out, "\"dry_run\":true");
	fx_contains(out, "\"op\":\"task_claim\",\"from\":\"dual 10\",\"to\":\"dual 100\","
			 "\"ids\":40");
	fx_contains(out, "\"would_pass\":true");
	free(out);

	/* A change it would refuse: exit 3, the refusal named, and still
	 * nothing written. */
	fx_setenv(f, 0, "CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:1");
	assert_int_equal(fx_run(f, &out, &err, "stage", "etcd", "--dry-run"), 3);
	fx_contains(out, "REFUSED   store health: go/no-go: etcd is not healthy");
	fx_contains(out, "result: refused by 2 rules");
	fx_contains(err, "dry run: the go/no-go gate would refuse this change");
	free(out);
	free(err);
	fx_setenv(f, 0, f->e_etcd);
	assert_int_equal(fx_run(f, &out, NULL, "flags", "set", "task_claim", "dual",
				"--etcd-percent", "30", "--dry-run"),
			 0);
	fx_contains(out, "`cutover flags set task_claim dual --etcd-percent 30`");
	fx_contains(out, "task_claim      dual 10  -> dual 30");
	free(out);

	after = flags_bytes(f);
	assert_string_equal(before, after);
	assert_int_equal(audit_rows(f), rows);
	free(before);
	free(after);

	/* And the real change still works after all that. */
	fx_expect(0, f, "stage", "50");
	assert_int_equal(audit_rows(f), rows + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rules_4_and_5_refuse_each_with_its_own_text),
	    cmocka_unit_test_setup_teardown(
		stage_refuses_when_etcd_or_the_way_back_is_not_there, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(gate_counts_only_compared_shadow_reads,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(stage_refuses_an_outbox_over_its_bound,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(dry_run_prints_the_plan_and_changes_nothing,
					    fx_test_setup, fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
