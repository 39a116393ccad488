/*
 * test_complete.c - the finish line (issue 14 point 9), the real binary
 * against a real bare repository and a real etcd: `cutover complete` is
 * refused for each unmet precondition (modes, kill switch, a rollout
 * going, the outbox, a failing reconciliation) with the flags file and the
 * audit trail unchanged; on a healthy etcd-stage stack it completes, after
 * which a task written through the CLI lands in etcd while git's branch
 * does not move, and moves back (stage, rollback, cancel) are refused
 * unless forced; `cutover cancel` from dual 50 with a write owed to git
 * ends at git with that write in git and nothing lost; bad options exit 1.
 */
#include "cli_fixture.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/state.h"
#include "flags/rollout.h"

#define N_TASKS 6

static void backfilled(fx *f, int n)
{
	char id[16];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "R%d", i);
		fx_expect(0, f, "task", "create", id);
	}
	fx_expect(0, f, "migrate");
}

/* git -> shadow -> STAGE through the gate, on a passing run. */
static void staged(fx *f, const char *stage)
{
	backfilled(f, N_TASKS);
	fx_expect(0, f, "reconcile");
	fx_expect(0, f, "stage", "shadow");
	fx_expect(0, f, "stage", stage);
}

/* The flags file's bytes ("" when there is none); malloc'd. */
static char *flags_bytes(fx *f)
{
	char path[400], *buf = calloc(1, 65536);
	FILE *fp;

	assert_non_null(buf);
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

static int audited(fx *f, const char *action, const char *detail_has)
{
	co_state *st = NULL;
	co_audit_change_list l = {0};
	size_t i;
	int n = 0;

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_audit_changes_latest(&l, st, 100000), 0);
	for (i = 0; i < l.n; i++)
		n += strcmp(l.items[i]->action, action) == 0 &&
		     (detail_has == NULL ||
		      (l.items[i]->detail && strstr(l.items[i]->detail, detail_has)));
	co_audit_change_list_clear(&l);
	co_state_close(st);
	return n;
}

/*
 * `cutover ARGS` must exit 3 saying `says` on stderr, and leave the flags
 * file's bytes as they were and the audit trail `rows` longer (a gate
 * refusal of stage/flags set is recorded as "gate refused"; the finish
 * line's own refusals record nothing).
 */
#define refused_unchanged(f, says, ...) refused_audited(f, 0, says, __VA_ARGS__)
#define refused_audited(f, rows, says, ...)                                              \
	do {                                                                             \
		char *b0_ = flags_bytes(f), *b1_, *err_ = NULL;                          \
		size_t a0_ = audit_rows(f);                                              \
		int rc_ = fx_run((f), NULL, &err_, __VA_ARGS__);                         \
		if (rc_ != 3)                                                            \
			fail_msg("line %d: exit %d, wanted 3: %s", __LINE__, rc_, err_); \
		fx_contains(err_, says);                                                 \
		b1_ = flags_bytes(f);                                                    \
		assert_string_equal(b0_, b1_);                                           \
		assert_int_equal(audit_rows(f), a0_ + (rows));                           \
		free(b0_);                                                               \
		free(b1_);                                                               \
		free(err_);                                                              \
	} while (0)

/* The commit the git branch points at. */
static char *git_head(fx *f)
{
	char *out = NULL, *err = NULL;

	if (co_test_sh(
		&out, &err,
		"git --git-dir='%s' for-each-ref --format='%%(objectname)' refs/heads",
		f->repo) != 0)
		fail_msg("git for-each-ref: %s", err ? err : "");
	free(err);
	assert_non_null(out);
	assert_true(strlen(out) >= 40);
	return out;
}

/* A write owed to `target` for task `id`, as a router queues one. */
static void owe(fx *f, const char *target, const char *id, const char *json)
{
	co_state *st = NULL;

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_outbox_push(NULL, st, target, "task", id, json), 0);
	co_state_close(st);
}

static void etcd_loses(fx *f, const char *id)
{
	char *err = NULL;

	if (co_test_sh(
		NULL, &err, "ETCDCTL_API=3 etcdctl --endpoints=%s del '%stasks/%s'",
		fx_etcd.endpoint, f->e_prefix + strlen("CUTOVER_ETCD_PREFIX="), id) != 0)
		fail_msg("etcdctl del: %s", err ? err : "");
	free(err);
}

static void complete_is_refused_for_each_unmet_precondition(void **state)
{
	fx *f = *state;
	co_rollout r;
	char *out = NULL, *json = NULL;

	backfilled(f, N_TASKS);
	/* git: every operation would have to be in etcd */
	refused_unchanged(f, "modes: task_create is in git, not etcd", "complete");
	fx_expect(0, f, "reconcile");
	fx_expect(0, f, "stage", "shadow");
	fx_expect(0, f, "stage", "etcd");

	/* the kill switch on */
	fx_expect(0, f, "rollback", "--reason", "drill");
	refused_unchanged(f, "kill switch: the kill switch is on (drill)", "complete");
	fx_expect(0, f, "resume");

	/* a rollout going (its state as a driver leaves it mid-soak) */
	memset(&r, 0, sizeof(r));
	assert_int_equal(co_rollout_parse_steps(&r, "etcd", CO_STAGE_100), 0);
	r.id = 1;
	r.initial = CO_STAGE_100;
	r.soak_ms = 3600000;
	r.phase = CO_RO_SOAKING;
	r.soak_started_ms = co_state_now_ms();
	assert_int_equal(co_rollout_save(&r, f->state), 0);
	refused_unchanged(f, "rollout: rollout 1 is soaking at step 1 of 1 (stage etcd)",
			  "complete");
	r.phase = CO_RO_DONE;
	assert_int_equal(co_rollout_save(&r, f->state), 0);

	/* the outbox owing git a write, not drained (no wait) */
	assert_int_equal(
	    fx_run(f, &json, NULL, "--json", "--backend", "etcd", "task", "get", "R1"),
	    0);
	json[strcspn(json, "\n")] = '\0';
	owe(f, "git", "R1", json);
	free(json);
	refused_unchanged(f, "outbox: not empty after 0 s of draining: 1 owed to git",
			  "complete", "--wait-drain", "0");
	/* the dry run tells the same, changing nothing */
	refused_unchanged(f, "complete would be refused", "complete", "--dry-run",
			  "--wait-drain", "0");

	/* a failing reconciliation (etcd lost a record): drained first, then
	 * the run made now fails; the kill switch is not tripped by it */
	etcd_loses(f, "R2");
	refused_unchanged(f, "reconciliation: run", "complete");
	assert_int_equal(fx_run(f, &out, NULL, "--json", "complete", "--dry-run"), 3);
	fx_contains(out, "\"check\":\"outbox\",\"state\":\"ok\"");
	fx_contains(out, "\"check\":\"reconciliation\",\"state\":\"fail\"");
	free(out);
	assert_int_equal(audited(f, "complete", NULL), 0);
}

static void complete_then_git_is_left_alone(void **state)
{
	fx *f = *state;
	char *before, *after, *out = NULL, *err = NULL, *bytes;
	int rc;

	staged(f, "etcd");
	fx_expect(0, f, "complete", "--dry-run");
	assert_int_equal(audited(f, "complete", NULL), 0);
	assert_int_equal(fx_run(f, &out, NULL, "complete", "--reason", "etcd for good"),
			 0);
	fx_contains(out, "completed at ");
	free(out);
	assert_int_equal(audited(f, "complete", "completed false -> true"), 1);
	bytes = flags_bytes(f);
	fx_contains(bytes, "completed:");
	fx_contains(bytes, "etcd for good");
	free(bytes);
	assert_int_equal(fx_run(f, &out, NULL, "status"), 0);
	fx_contains(out, "completed:    ");
	fx_contains(out, "by tester: etcd for good: git is no longer written");
	free(out);

	/* a write through the router: etcd has it, git's branch stays put */
	before = git_head(f);
	fx_expect(0, f, "task", "create", "AFTER1");
	fx_expect(0, f, "task", "claim", "R3", "--swarm", "s1", "--ttl", "300");
	after = git_head(f);
	assert_string_equal(before, after);
	fx_expect(0, f, "--backend", "etcd", "task", "get", "AFTER1");
	fx_expect(4, f, "--backend", "git", "task", "get", "AFTER1");
	free(after);

	/* moves back are refused, and change nothing */
	refused_audited(f, 1, "the cutover was completed at", "stage", "shadow");
	assert_int_equal(audited(f, "gate refused", NULL), 1);
	refused_audited(f, 1, "task_claim would go from etcd to dual", "flags", "set",
			"task_claim", "dual", "--etcd-percent", "50");
	refused_unchanged(f, "kill switch not tripped: the cutover was completed",
			  "rollback");
	refused_unchanged(f, "cancel refused: the cutover was completed", "cancel");
	/* a reconciliation finds git stale but cannot hand it the decisions */
	rc = fx_run(f, NULL, &err, "reconcile");
	if (rc != 3)
		fail_msg("reconcile: exit %d: %s", rc, err);
	fx_contains(err, "kill switch not tripped: the cutover was completed");
	free(err);
	bytes = flags_bytes(f);
	assert_null(strstr(bytes, "kill_switch: true"));
	free(bytes);
	assert_int_equal(fx_run(f, &out, NULL, "complete"), 0);
	fx_contains(out, "already completed");
	free(out);
	after = git_head(f);
	assert_string_equal(before, after);
	free(after);

	/* forced, a rollback goes through and says so in the audit trail */
	fx_expect(0, f, "rollback", "--force", "--reason", "forced drill");
	assert_int_equal(audited(f, "rollback", "forced past the completion"), 1);
	/* and a forced cancel goes back to git, clearing the completion */
	fx_expect(0, f, "cancel", "--force", "--reason", "back after all");
	assert_int_equal(audited(f, "cancel", "forced past the completion"), 1);
	bytes = flags_bytes(f);
	assert_null(strstr(bytes, "completed:"));
	free(bytes);
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	fx_contains(out, "\"stage\":\"git\"");
	free(out);
	free(before);
}

static void cancel_from_dual_50_brings_the_owed_write_to_git(void **state)
{
	fx *f = *state;
	char *json = NULL, *out = NULL;
	char id[16];
	int i;

	staged(f, "50");
	/* acknowledged by etcd, still owed to git */
	fx_expect(0, f, "--backend", "etcd", "task", "create", "OWED1");
	assert_int_equal(
	    fx_run(f, &json, NULL, "--json", "--backend", "etcd", "task", "get", "OWED1"),
	    0);
	json[strcspn(json, "\n")] = '\0';
	owe(f, "git", "OWED1", json);
	free(json);
	fx_expect(4, f, "--backend", "git", "task", "get", "OWED1");

	assert_int_equal(fx_run(f, &out, NULL, "cancel", "--reason", "budget"), 0);
	fx_contains(out, "every operation in git");
	free(out);
	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	fx_contains(out, "\"stage\":\"git\"");
	free(out);
	fx_expect(0, f, "--backend", "git", "task", "get", "OWED1");
	for (i = 0; i < N_TASKS; i++) {
		snprintf(id, sizeof(id), "R%d", i);
		fx_expect(0, f, "--backend", "git", "task", "get", id);
	}
	assert_int_equal(audited(f, "cancel", "kill_switch true -> false"), 1);
	assert_int_equal(audited(f, "cancel: kill switch", NULL), 1);
	assert_int_equal(fx_run(f, &out, NULL, "cancel"), 0);
	fx_contains(out, "already at git");
	free(out);
}

static void bad_options_exit_1_and_change_nothing(void **state)
{
	fx *f = *state;
	char *err = NULL, *b0, *b1;

	staged(f, "etcd");
	b0 = flags_bytes(f);
	assert_int_equal(fx_run(f, NULL, &err, "complete", "--wait-drain", "soon"), 1);
	fx_contains(err, "--wait-drain \"soon\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "complete", "--frobnicate"), 1);
	fx_contains(err, "--frobnicate");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "complete", "now"), 1);
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "cancel", "--wait-drain", "-3"), 1);
	fx_contains(err, "--wait-drain \"-3\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "cancel", "--reason"), 1);
	free(err);
	/* stage parses --wait-drain with the same code (co_cli_parse_wait) */
	assert_int_equal(fx_run(f, NULL, &err, "stage", "50", "--wait-drain", "25h"), 1);
	fx_contains(err, "--wait-drain \"25h\"");
	free(err);
	b1 = flags_bytes(f);
	assert_string_equal(b0, b1);
	free(b0);
	free(b1);
	assert_int_equal(audited(f, "complete", NULL), 0);
	assert_int_equal(audited(f, "cancel", NULL), 0);
	fx_expect(0, f, "complete", "--help");
	fx_expect(0, f, "cancel", "--help");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		complete_is_refused_for_each_unmet_precondition, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(complete_then_git_is_left_alone,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		cancel_from_dual_50_brings_the_owed_write_to_git, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(bad_options_exit_1_and_change_nothing,
					    fx_test_setup, fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
