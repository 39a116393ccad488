/*
 * cmd_stage.c - `cutover stage git|shadow|10|50|100|etcd [--force]`.
 *
 * A stage sets every operation at once (flags/stage.h).  Moving forward is
 * the risky direction, so it passes the go/no-go gate: a recent passing
 * reconciliation, and no legacy git writer when etcd could become a
 * primary (co_cli_gate).  Moving back needs no passing run (it is how an
 * operator gets out of trouble) but, like moving forward, goes between git
 * and a stage where etcd can be primary only through shadow (flags/gate.h,
 * rule 3); the kill switch is the instant way out.  The kill switch is left alone
 * (rollback and resume own it); if it is on, the new stage takes effect on resume, and
 * the command says so.
 *
 * Waiting for the drain (--wait-drain): a latest run that is pending_drain
 * found nothing divergent, only acknowledged writes the outbox still owed.
 * Instead of refusing at once, a forward move drives the drain itself for
 * up to the bound (the owed entries are retried at once, even those in a
 * failure backoff, then drained as `reconcile` drains before it snapshots;
 * between attempts it polls the outbox with a short backoff, since SQLite
 * has no event to wait on), and once nothing of that run is owed it runs a
 * fresh reconciliation, recorded like any other.  The gate then judges the
 * latest run as always: the gate itself stays pure (flags/gate.h), and
 * `flags` does not depend on `reconcile` (DESIGN §8): the orchestration is
 * here, on top.  --force skips the wait, as it skips the gate.
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/outbox.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "flags/gate.h"
#include "flags/stage.h"
#include "reconcile/reconcile.h"
#include "router/router.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define U_STAGE                                                                          \
	"cutover stage git|shadow|10|50|100|etcd [--reason TEXT] [--wait-drain "         \
	"SECONDS] "                                                                      \
	"[--force] [--dry-run]"

/* How long a forward move waits for a pending_drain run's debts by default. */
#define WAIT_DRAIN_DEFAULT_S 30

/* Polling the outbox between drain attempts: from this, doubling, to the cap. */
#define POLL_FIRST_MS 50
#define POLL_MAX_MS 1000

static const char h_stage[] =
    "usage: " U_STAGE "\n\n"
    "Move every operation to a rollout stage:\n"
    "  git     git only               shadow  git serves, etcd mirrors and is compared\n"
    "  10|50|100  dual: etcd is primary for that percent of IDs, the other mirrors\n"
    "  etcd    etcd serves, git is kept current through the outbox\n\n"
    "Moving forward passes the go/no-go gate: the latest reconciliation run must\n"
    "have passed within reconcile.go_no_go_window (default 1h), and leaving\n"
    "git/shadow for a stage where etcd can be primary is refused while the git\n"
    "branch holds a commit not made by cutover within that window (the refusal\n"
    "names the commit and its author).  A refusal exits 3 (conflict); --force\n"
    "overrides it and the override is recorded in the audit trail.  Between git\n"
    "and a stage where etcd can be primary (10, 50, 100, etcd) there is always\n"
    "shadow, both ways: from git go to shadow first; from 10 or above go to\n"
    "shadow (or pull the kill switch: `cutover rollback`) before git.  Moving\n"
    "back needs no reconciliation.  The kill switch is left as it is.\n\n"
    "A latest run that is pending_drain (nothing diverged, but the outbox still\n"
    "owed acknowledged writes) is not a pass.  Moving forward on one waits up to\n"
    "--wait-drain SECONDS (default 30) for those writes to drain, driving the\n"
    "drain itself (entries waiting out a retry backoff are retried at once), then\n"
    "runs a fresh reconciliation (recorded, and tripping the kill switch if it\n"
    "fails, as `cutover reconcile` would) and goes on only if that one passes.\n"
    "If they do not drain in time it refuses (exit 3), naming how many writes are\n"
    "still owed and the oldest ID.\n\n"
    "  --reason TEXT        why, for the audit trail\n"
    "  --wait-drain SECONDS wait for a pending_drain run's owed writes (default\n"
    "                       30; 0: do not wait, refuse at once)\n"
    "  --force              go ahead despite the go/no-go gate (no waiting)\n"
    "  --dry-run            change nothing: print, per operation, the old and new\n"
    "                       mode and how many of today's IDs would change primary,\n"
    "                       and every go/no-go rule's verdict and why (exit 3 if\n"
    "                       the gate would refuse; no drain wait, no audit row)\n\n"
    "Examples:\n"
    "  cutover reconcile && cutover stage 10 --reason 'canary'\n"
    "  cutover stage shadow --reason 'back off'\n"
    "  cutover stage 50 --wait-drain 120   # after an etcd restart\n"
    "  cutover stage 100 --dry-run          # what would move, and would it pass?\n\n"
    "Exit status: 0 moved (or already there), 1 bad usage, 2 state unavailable\n"
    "(or the flags lock held by another writer for 10 s: it names the writer),\n"
    "3 refused by the go/no-go gate, or the flags changed while it ran.\n";

/* What a pending_drain run still owes now: distinct IDs, and the oldest. */
typedef struct still_owed {
	int64_t ids;
	const co_owed *oldest; /* borrowed from the run */
	int64_t oldest_since;
} still_owed;

/*
 * Retry the run's owed entries now (expedite), drain as reconcile does, and
 * count what is still owed.  *drain_error gets the drain's message when it
 * failed ("" otherwise).
 */
static int drive_drain(still_owed *out, co_cli_router *cr, const co_run *run,
		       int64_t budget_ms, char *drain_error, size_t len)
{
	still_owed so = {0, NULL, 0};
	const co_owed *prev = NULL;
	int64_t now = co_state_now_ms();
	size_t i;
	int error;

	drain_error[0] = '\0';
	for (i = 0; i < run->owed_list.n; i++) {
		const co_owed *o = run->owed_list.items[i];

		if (i > 0 && strcmp(o->kind, run->owed_list.items[i - 1]->kind) == 0 &&
		    strcmp(o->id, run->owed_list.items[i - 1]->id) == 0)
			continue; /* sorted: one ID owed to both stores */
		if ((error = co_outbox_expedite(NULL, cr->state, o->kind, o->id, now)) <
		    0)
			return error;
	}
	if (co_router_drain(
		cr->router, NULL,
		(int)(budget_ms < CO_CLI_DRAIN_MS ? budget_ms : CO_CLI_DRAIN_MS),
		NULL) < 0) {
		snprintf(drain_error, len, "%s", co_error_last());
		co_error_clear();
	}
	now = co_state_now_ms();
	for (i = 0; i < run->owed_list.n; i++) {
		const co_owed *o = run->owed_list.items[i];
		co_outbox_debt d;
		int64_t since;

		if ((error = co_outbox_debt_of(&d, cr->state, o->kind, o->id, now)) < 0)
			return error;
		since = strcmp(o->target, "etcd") == 0 ? d.etcd_since : d.git_since;
		if (since == 0)
			continue;
		/* The list is sorted by kind and ID: count each ID once. */
		if (prev == NULL || strcmp(prev->id, o->id) != 0 ||
		    strcmp(prev->kind, o->kind) != 0)
			so.ids++;
		prev = o;
		if (so.oldest == NULL || since < so.oldest_since) {
			so.oldest = o;
			so.oldest_since = since;
		}
	}
	*out = so;
	return 0;
}

/*
 * The latest run is pending_drain and the move is forward: wait up to
 * wait_s for its owed writes to drain, then reconcile afresh; again while
 * the fresh run is pending_drain and time is left.  0 when a fresh run
 * completed (the gate then judges it); CO_ECONFLICT naming what is still
 * owed when the time ran out; a store's or the state's error otherwise.
 */
static int wait_drain(co_cli *ctx, co_run *run, int wait_s)
{
	co_cli_router *cr = NULL;
	co_reconcile_result *res = NULL;
	still_owed so;
	const co_owed *first = co_run_oldest_owed(run);
	int64_t start = co_cli_mono_ms(), deadline = start + (int64_t)wait_s * 1000, poll;
	char drain_error[512];
	int error;

	fprintf(stderr,
		"cutover: reconciliation run %lld is pending_drain: the outbox owed %lld "
		"acknowledged write%s (oldest %s %s); draining for up to %d s\n",
		(long long)run->id, (long long)run->owed, run->owed == 1 ? "" : "s",
		first ? first->kind : "", first ? first->id : "?", wait_s);
	if ((error = co_cli_open_router(&cr, ctx)) < 0)
		goto done;
	for (poll = POLL_FIRST_MS;;) {
		if ((error = drive_drain(&so, cr, run, deadline - co_cli_mono_ms(), drain_error,
					 sizeof(drain_error))) < 0)
			goto done;
		if (so.ids == 0) {
			co_reconcile_result_free(res);
			res = NULL;
			if ((error = co_cli_reconcile_once(&res, ctx, cr, "stage")) < 0)
				goto done;
			fprintf(stderr,
				"cutover: the owed writes drained; reconciliation run "
				"%lld: %s (consistency %.4f%%)\n",
				(long long)res->run.id, res->run.verdict,
				100.0 * res->run.consistency);
			if (!co_reconcile_pending_drain(res) || co_cli_mono_ms() >= deadline)
				goto done; /* the gate judges it */
			/* New debts: wait for those. */
			run = &res->run;
			poll = POLL_FIRST_MS;
			continue;
		}
		if (co_cli_mono_ms() >= deadline)
			break;
		/* Nothing to wait on but the clock: poll, backing off. */
		co_cli_sleep_ms(poll < deadline - co_cli_mono_ms() ? poll : deadline - co_cli_mono_ms());
		poll = poll * 2 < POLL_MAX_MS ? poll * 2 : POLL_MAX_MS;
	}
	error = co_error_set(
	    CO_ECONFLICT,
	    "go/no-go: latest reconciliation run %lld is pending_drain and the outbox "
	    "still owes %lld acknowledged write%s after %d s of draining (oldest: %s %s, "
	    "owed to %s for %.1f s)%s%s; when the store it is owed to takes writes "
	    "again, wait longer (--wait-drain SECONDS) or run `cutover reconcile` "
	    "(use --force to override)",
	    (long long)run->id, (long long)so.ids, so.ids == 1 ? "" : "s", wait_s,
	    so.oldest->kind, so.oldest->id, so.oldest->target,
	    (double)(co_state_now_ms() - so.oldest_since) / 1000.0,
	    drain_error[0] ? "; the drain failed: " : "", drain_error);
done:
	co_reconcile_result_free(res);
	co_cli_router_close(cr, 0);
	return error;
}

/*
 * Before the gate: if moving from `from` to `to` needs a passing run and
 * the latest one is pending_drain, wait for its drain (wait_drain).
 */
static int maybe_wait_drain(co_cli *ctx, const co_config *c, co_stage stage, int wait_s)
{
	co_flags from, to;
	co_state *st = NULL;
	co_run *run = NULL;
	int error;

	if ((error = co_flags_load(&from, c->flags_path)) < 0)
		return error;
	to = from;
	if ((error = co_stage_apply(&to, stage)) < 0 || !co_gate_needs_run(&from, &to))
		return error;
	if ((error = co_state_open(&st, c->state_dir)) < 0)
		return error;
	error = co_runs_latest(&run, st);
	co_state_close(st);
	if (error == CO_ENOTFOUND) {
		co_error_clear();
		return 0; /* the gate says what to do */
	}
	if (error == 0 && run->verdict && strcmp(run->verdict, "pending_drain") == 0)
		error = wait_drain(ctx, run, wait_s);
	co_run_free(run);
	if (error == CO_ECONFLICT) {
		/* A refusal of the gate like any other: recorded. */
		char what[2048], refusal[1024];
		size_t n = (size_t)snprintf(what, sizeof(what), "stage: ");

		snprintf(refusal, sizeof(refusal), "%s", co_error_last());
		co_flags_diff(what + n, sizeof(what) - n, &from, &to);
		if (co_state_open(&st, c->state_dir) == 0) {
			co_error_set(CO_ECONFLICT, "%s", refusal);
			co_audit_gate_refused(st, co_cli_who(), what);
			co_state_close(st);
		}
		co_error_set(CO_ECONFLICT, "%s", refusal);
	}
	return error;
}

int co_cli_stage(int argc, char **argv, co_cli *ctx)
{
	const char *reason = NULL, *wait = NULL, *pos[1];
	int force = 0, dry = 0, wait_s = WAIT_DRAIN_DEFAULT_S;
	co_cli_opt opts[] = {{"reason", &reason, NULL},
			     {"wait-drain", &wait, NULL},
			     {"force", NULL, &force},
			     {"dry-run", NULL, &dry},
			     {NULL, NULL, NULL}};
	const co_config *c;
	co_state *st = NULL;
	co_flags from, to;
	co_stage stage, was;
	char note[1024];
	size_t n;
	int error, lock = -1;

	if ((error = co_cli_parse(pos, 1, &n, ctx, argc, argv, opts, U_STAGE, h_stage)) !=
	    0)
		return error < 0 ? error : 0;
	if (n == 0)
		return co_cli_usage_error(U_STAGE, "stage: missing the stage");
	if (co_stage_parse(&stage, pos[0]) < 0)
		return co_cli_error_prefix(CO_EINVAL, "stage");
	if (wait && (error = co_cli_parse_wait(&wait_s, wait, U_STAGE)) < 0)
		return error;
	if ((error = co_cli_config(&c, ctx)) < 0)
		goto done;
	if (dry) {
		char command[64];

		snprintf(command, sizeof(command), "stage %s", co_stage_name(stage));
		if ((error = co_flags_load(&from, c->flags_path)) < 0)
			goto done;
		to = from;
		if ((error = co_stage_apply(&to, stage)) < 0 ||
		    (error = co_state_open(&st, c->state_dir)) < 0)
			goto done;
		error = co_cli_plan(ctx, st, command, &from, &to);
		goto done;
	}
	/* Before the lock: the wait may be long, and a fresh run that fails
	 * trips the kill switch, which must not find the file locked. */
	if (!force && wait_s > 0 && (error = maybe_wait_drain(ctx, c, stage, wait_s)) < 0)
		goto done;
	/* From the load to the save no other writer changes the flags. */
	if ((error = lock = co_flags_lock(c->flags_path)) < 0 ||
	    (error = co_flags_load(&from, c->flags_path)) < 0)
		goto done;
	to = from;
	if ((error = co_stage_apply(&to, stage)) < 0)
		goto done;
	was = co_stage_of(&from);
	if (co_flags_equal(&from, &to)) {
		if (ctx->json)
			printf("{\"from\":\"%s\",\"to\":\"%s\",\"changed\":false}\n",
			       co_stage_name(was), co_stage_name(stage));
		else
			printf("already at stage %s\n", co_stage_name(stage));
		goto done;
	}
	if ((error = co_state_open(&st, c->state_dir)) < 0 ||
	    (error = co_cli_gate_audited(note, sizeof(note), ctx, st, "stage", &from, &to,
					 force)) < 0 ||
	    (error = co_cli_flags_commit(ctx, st, "stage", &from, &to, note, reason, 0)) <
		0)
		goto done;
	if (ctx->json) {
		cJSON *o = cJSON_CreateObject();
		char *s;

		cJSON_AddStringToObject(o, "from", co_stage_name(was));
		cJSON_AddStringToObject(o, "to", co_stage_name(stage));
		cJSON_AddBoolToObject(o, "changed", 1);
		cJSON_AddBoolToObject(o, "forced", note[0] != '\0');
		cJSON_AddBoolToObject(o, "kill_switch", to.kill_switch);
		if ((s = cJSON_PrintUnformatted(o)) != NULL)
			puts(s);
		free(s);
		cJSON_Delete(o);
	} else {
		printf("stage %s -> %s%s\n", co_stage_name(was), co_stage_name(stage),
		       note[0] ? " (forced past the go/no-go gate)" : "");
	}
	if (to.kill_switch)
		fprintf(
		    stderr,
		    "cutover: note: the kill switch is on (%s): every operation goes to "
		    "git as in shadow until `cutover resume`\n",
		    to.kill_reason);
	fflush(stdout);
done:
	co_flags_unlock(lock);
	co_state_close(st);
	return error;
}
