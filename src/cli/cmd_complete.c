/*
 * cmd_complete.c - the finish line (issue 14 point 9): `cutover complete`
 * and `cutover cancel`.
 *
 * complete: every operation in etcd mode, the kill switch off, no rollout
 * going, the outbox empty both ways (after a bounded drain, as `stage
 * --wait-drain` waits), and a reconciliation run now that passes.  Then
 * `completed` is saved in the flags file (who, when, why; routers pick it
 * up with the file, as they do the kill switch) and audited as "complete".
 * From then on an etcd-decided write mirrors and queues nothing to git
 * (co_flags_route), and moves back are refused: the gate's "completed"
 * rule (stage, flags set, the rollout, the admin stage endpoint) and
 * co_flags_trip (rollback, reconcile's and the triggers' automatic trips),
 * unless an operator forces them.  --force skips the checks that only wait
 * or judge (rollout, outbox, reconciliation; a going rollout is ended), never
 * what "complete" means (every operation in etcd, the kill switch off), and
 * the audit row says what was skipped.
 *
 * cancel: back to git by the safe path: end a going rollout, pull the kill
 * switch (git decides at once, etcd mirrors), drain what the outbox owes
 * git (bounded; refused with the count and the oldest age if it does not
 * drain: the switch then stays on, nothing lost), then every operation to
 * git and the switch off, audited as "cancel".  Refused after complete
 * (unless --force, which also clears the completion) and when git does not
 * take writes.
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/outbox.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "flags/rollout.h"
#include "flags/stage.h"
#include "flags/trip.h"
#include "flags/watcher.h"
#include "reconcile/reconcile.h"
#include "router/router.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define U_COMPLETE                                                                       \
	"cutover complete [--reason TEXT] [--wait-drain SECONDS] [--force] [--dry-run] " \
	"[--json]"
#define U_CANCEL "cutover cancel [--reason TEXT] [--wait-drain SECONDS] [--force]"

/* How long both wait for the outbox by default. */
#define WAIT_DRAIN_DEFAULT_S 30
/* Polling the outbox between drain attempts: from this, doubling, to the cap. */
#define POLL_FIRST_MS 50
#define POLL_MAX_MS 1000

static const char h_complete[] =
    "usage: " U_COMPLETE "\n\n"
    "Finish the migration: etcd becomes the only store cutover writes.  Checks,\n"
    "each with its own reason when it fails (all of them are told together, exit\n"
    "3, nothing changed):\n"
    "  modes          every operation is in etcd mode (`cutover stage etcd`)\n"
    "  kill switch    off\n"
    "  rollout        none going or paused (`cutover rollout status`)\n"
    "  outbox         nothing owed to either store, after draining for up to\n"
    "                 --wait-drain SECONDS (default 30)\n"
    "  reconciliation a run made now, through the router, passes (it is\n"
    "                 recorded; it does not trip the kill switch)\n"
    "Then `completed` (who, when, why) is saved in the flags file and audited as\n"
    "\"complete\".  From then on cutover never writes git: etcd-decided writes are\n"
    "no longer mirrored or queued to git, and moves back (stage, flags set,\n"
    "rollback, the rollout, the automatic kill-switch trips) are refused, since\n"
    "git is stale; an operator may force them after `cutover migrate --direction\n"
    "etcd-to-git`.\n\n"
    "  --reason TEXT        why, for the flags file and the audit trail\n"
    "  --wait-drain SECONDS how long to drain the outbox (0: do not wait)\n"
    "  --force              skip the rollout (a going one is ended), outbox and\n"
    "                       reconciliation checks; never the modes or the kill\n"
    "                       switch.  What was skipped is in the audit row\n"
    "  --dry-run            print the checks (the latest run stands in for the\n"
    "                       reconciliation, the outbox is read, not drained) and\n"
    "                       change nothing; exit 3 if one fails\n"
    "  --json               the checks as one JSON object\n\n"
    "Examples:\n"
    "  cutover complete --dry-run\n"
    "  cutover complete --reason 'etcd primary for 2 weeks, no divergence'\n\n"
    "Exit status: 0 completed (or already), 1 bad usage, 2 state unavailable,\n"
    "3 a check failed (or the flags changed while it ran).\n";

static const char h_cancel[] =
    "usage: " U_CANCEL "\n\n"
    "Give up the migration and go back to git, by the safe path:\n"
    "  1. a going rollout is ended (audited);\n"
    "  2. the kill switch is pulled: git decides at once, etcd still mirrors;\n"
    "  3. the outbox entries owed to git are drained, for up to --wait-drain\n"
    "     SECONDS (default 30); if some are left it stops there (exit 3, with\n"
    "     the count and the oldest age): the switch stays on, nothing is lost,\n"
    "     run it again once git takes writes;\n"
    "  4. every operation is set to git and the kill switch lifted.\n"
    "Audited as \"cancel\".  Refused when git does not take writes (it answers and\n"
    "its repository is writable), and after `cutover complete` (git is stale)\n"
    "unless --force, which also clears the completion: bring git up to date first\n"
    "(`cutover migrate --direction etcd-to-git`).\n\n"
    "  --reason TEXT        why, for the audit trail\n"
    "  --wait-drain SECONDS how long to drain what git is owed (0: do not wait)\n"
    "  --force              cancel after complete\n\n"
    "Example:\n  cutover cancel --reason 'etcd cluster budget withdrawn'\n\n"
    "Exit status: 0 at git, 1 bad usage, 2 state unavailable, 3 refused (or the\n"
    "outbox owed to git did not drain in time).\n";

/*
 * Drain the outbox towards `target` ("git", or NULL for both) through cr
 * for up to wait_s, polling between attempts; og/oe get what is left.
 */
static int drain_wait(co_outbox_stats *og, co_outbox_stats *oe, co_cli_router *cr,
		      const char *target, int wait_s)
{
	int64_t deadline = co_cli_mono_ms() + (int64_t)wait_s * 1000, poll = POLL_FIRST_MS;
	int error;

	/* Entries waiting out a failure backoff are tried at once: the
	 * operator is waiting now (as `stage --wait-drain` does). */
	if (wait_s > 0 &&
	    ((error = co_outbox_retry_now(NULL, cr->state, "git")) < 0 ||
	     (!target && (error = co_outbox_retry_now(NULL, cr->state, "etcd")) < 0)))
		return error;
	for (;;) {
		int64_t left = deadline - co_cli_mono_ms();

		if (left > 0)
			co_router_drain(
			    cr->router, target,
			    (int)(left < CO_CLI_DRAIN_MS ? left : CO_CLI_DRAIN_MS), NULL);
		co_error_clear();
		if ((error = co_outbox_stats_of(og, cr->state, "git")) < 0 ||
		    (error = co_outbox_stats_of(oe, cr->state, "etcd")) < 0)
			return error;
		if (og->depth == 0 && (target || oe->depth == 0))
			return 0;
		if (co_cli_mono_ms() >= deadline)
			return 0;
		/* Nothing to wait on but the clock: poll, backing off. */
		co_cli_sleep_ms(poll < deadline - co_cli_mono_ms() ? poll : deadline - co_cli_mono_ms());
		poll = poll * 2 < POLL_MAX_MS ? poll * 2 : POLL_MAX_MS;
	}
}

/* "3 owed to git (oldest 4.2 s)" into buf, for one store's stats. */
static void owed_text(char *buf, size_t len, const char *store, const co_outbox_stats *s)
{
	int64_t now = co_state_now_ms();

	snprintf(buf, len, "%lld owed to %s (oldest %.1f s%s%s)", (long long)s->depth,
		 store,
		 s->oldest_ms && now > s->oldest_ms ? (now - s->oldest_ms) / 1000.0 : 0.0,
		 s->last_error[0] ? "; last error: " : "", s->last_error);
}

int co_cli_rollout_end(int *ended, co_cli *ctx, co_state *st, const char *why)
{
	const co_config *c;
	co_rollout r;
	char detail[1400];
	int error, lock = -1;

	if (ended)
		*ended = 0;
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = lock = co_rollout_lock(c->state_dir)) < 0)
		goto done;
	if ((error = co_rollout_load(&r, c->state_dir)) == CO_ENOTFOUND) {
		co_error_clear();
		error = 0;
		goto done;
	}
	if (error < 0 || !co_rollout_active(r.phase))
		goto done;
	r.phase = CO_RO_ABORTED;
	snprintf(r.analysis, sizeof(r.analysis), "ended by %s: %s", co_cli_who(), why);
	r.updated_ms = co_state_now_ms();
	if ((error = co_rollout_save(&r, c->state_dir)) < 0)
		goto done;
	if (ended)
		*ended = 1;
	snprintf(detail, sizeof(detail), "rollout %lld aborted at step %zu (stage %s)",
		 (long long)r.id, r.step + 1, co_stage_name(r.steps[r.step]));
	if (co_audit_change_add(st, co_cli_who(), "rollout abort", detail, why) < 0)
		fprintf(stderr, "cutover: warning: audit row not written: %s\n",
			co_error_last());
	co_error_clear();
done:
	co_rollout_unlock(lock);
	return error;
}

/* ---- complete ---- */

enum { C_MODES, C_KILL, C_ROLLOUT, C_OUTBOX, C_RUN, C__COUNT };

typedef struct check {
	const char *name;
	const char *state; /* "ok", "fail", "skipped" */
	char why[700];
} check;

static void set_check(check *k, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_check(check *k, const char *state, const char *fmt, ...)
{
	va_list ap;

	k->state = state;
	va_start(ap, fmt);
	vsnprintf(k->why, sizeof(k->why), fmt, ap);
	va_end(ap);
}

static int failed(const check *k)
{
	return strcmp(k->state, "fail") == 0;
}

/* Modes and the kill switch: what "complete" means, never forced. */
static void check_flags(check *k, const co_flags *f)
{
	int op;

	set_check(&k[C_MODES], "ok", "every operation in etcd mode");
	for (op = 0; op < CO_OP__COUNT; op++) {
		co_op_flags s = co_flags_get(f, (co_op)op);

		if (s.mode == CO_MODE_ETCD)
			continue;
		char pct[16] = "";

		if (s.mode == CO_MODE_DUAL)
			snprintf(pct, sizeof(pct), " %d", s.etcd_percent);
		set_check(&k[C_MODES], "fail",
			  "%s is in %s%s, not etcd (`cutover stage etcd` first)",
			  co_op_name((co_op)op), co_mode_name(s.mode), pct);
		break;
	}
	if (f->kill_switch)
		set_check(&k[C_KILL], "fail",
			  "the kill switch is on (%s): git decides; find out why, then "
			  "`cutover resume`",
			  f->kill_reason);
	else
		set_check(&k[C_KILL], "ok", "off");
}

static void check_rollout(check *k, const char *state_dir, int force)
{
	co_rollout r;
	int error = co_rollout_load(&r, state_dir);

	if (error == CO_ENOTFOUND || (error == 0 && !co_rollout_active(r.phase)))
		set_check(k, "ok", "none going");
	else if (error < 0)
		set_check(
		    k, force ? "skipped" : "fail", "%s%s",
		    force ? "--force: " : "cannot read the rollout: ", co_error_last());
	else if (force)
		set_check(k, "skipped", "--force: rollout %lld (%s) is ended",
			  (long long)r.id, co_rollout_phase_name(r.phase));
	else
		set_check(
		    k, "fail",
		    "rollout %lld is %s at step %zu of %zu (stage %s): let it finish "
		    "or `cutover rollout abort`",
		    (long long)r.id, co_rollout_phase_name(r.phase), r.step + 1,
		    r.n_steps, co_stage_name(r.steps[r.step]));
	co_error_clear();
}

static void check_outbox(check *k, const co_outbox_stats *og, const co_outbox_stats *oe,
			 int force, int waited_s)
{
	char g[400], e[400];

	if (og->depth == 0 && oe->depth == 0) {
		set_check(k, "ok", "empty both ways");
		return;
	}
	owed_text(g, sizeof(g), "git", og);
	owed_text(e, sizeof(e), "etcd", oe);
	if (force)
		set_check(k, "skipped", "--force: %s, %s left to drain", g, e);
	else
		set_check(k, "fail", "not empty after %d s of draining: %s, %s", waited_s,
			  g, e);
}

/* The reconciliation: run now through cr (dry: the latest run reported). */
static int check_run(check *k, co_cli *ctx, co_cli_router *cr, co_state *st, int dry)
{
	co_reconcile_result *res = NULL;
	co_run *run = NULL;
	int error;

	if (dry) {
		error = co_runs_latest(&run, st);
		if (error == CO_ENOTFOUND)
			set_check(k, "fail", "would run one now; no run so far");
		else if (error < 0)
			return error;
		else
			set_check(k,
				  run->verdict && strcmp(run->verdict, "pass") == 0
				      ? "ok"
				      : "fail",
				  "would run one now; latest run %lld: %s (consistency "
				  "%.4f%%)",
				  (long long)run->id, run->verdict ? run->verdict : "?",
				  100.0 * run->consistency);
		co_run_free(run);
		co_error_clear();
		return 0;
	}
	if ((error = co_cli_reconcile_check(&res, ctx, cr, "complete")) < 0) {
		set_check(k, "fail", "the reconciliation could not run: %s",
			  co_error_last());
		co_error_clear();
		return 0;
	}
	set_check(
	    k, res->run.verdict && strcmp(res->run.verdict, "pass") == 0 ? "ok" : "fail",
	    "run %lld: %s (consistency %.4f%%)%s%s", (long long)res->run.id,
	    res->run.verdict ? res->run.verdict : "?", 100.0 * res->run.consistency,
	    res->reason[0] ? ": " : "", res->reason);
	co_reconcile_result_free(res);
	return 0;
}

static int print_checks(co_cli *ctx, const char *command, const check *k, int dry,
			const co_flags *f)
{
	int i;

	if (ctx->json) {
		cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "checks");

		cJSON_AddStringToObject(o, "command", command);
		cJSON_AddBoolToObject(o, "dry_run", dry);
		for (i = 0; i < C__COUNT; i++) {
			cJSON *x = cJSON_CreateObject();

			cJSON_AddStringToObject(x, "check", k[i].name);
			cJSON_AddStringToObject(x, "state", k[i].state);
			cJSON_AddStringToObject(x, "why", k[i].why);
			cJSON_AddItemToArray(a, x);
		}
		cJSON_AddBoolToObject(o, "completed", f && f->completed.on);
		if (f && f->completed.on) {
			cJSON_AddStringToObject(o, "completed_at", f->completed.at);
			cJSON_AddStringToObject(o, "completed_by", f->completed.by);
		}
		return co_cli_print_json(o);
	}
	printf("%s%s:\n", command, dry ? " (dry run: nothing changes)" : "");
	for (i = 0; i < C__COUNT; i++)
		printf("  %-7s %-14s %s\n", k[i].state, k[i].name, k[i].why);
	if (f && f->completed.on)
		printf("completed at %s by %s: git is no longer written\n",
		       f->completed.at, f->completed.by);
	fflush(stdout);
	return 0;
}

/* Under the flags lock: save `completed`, audited with what was forced. */
static int commit_complete(co_flags *to, co_cli *ctx, co_state *st, const check *k,
			   const char *reason, int force)
{
	const co_config *c;
	co_flags from;
	check again[C__COUNT];
	char note[1600] = "";
	size_t n = 0;
	int error, lock = -1, i;

	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = lock = co_flags_lock(c->flags_path)) < 0 ||
	    (error = co_flags_load(&from, c->flags_path)) < 0)
		goto done;
	memset(again, 0, sizeof(again));
	check_flags(again, &from);
	if (failed(&again[C_MODES]) || failed(&again[C_KILL])) {
		error = co_error_set(
		    CO_ECONFLICT, "complete refused: the flags changed while it ran: %s",
		    failed(&again[C_MODES]) ? again[C_MODES].why : again[C_KILL].why);
		goto done;
	}
	*to = from;
	co_flags_set_completed(to, 1, co_cli_who(), reason);
	for (i = 0; force && i < C__COUNT; i++)
		if (strcmp(k[i].state, "skipped") == 0 && n < sizeof(note))
			n += (size_t)snprintf(note + n, sizeof(note) - n, "%s%s",
					      n ? "; " : "forced: ", k[i].why);
	error = co_cli_flags_commit(ctx, st, "complete", &from, to, note[0] ? note : NULL,
				    reason, 0);
done:
	co_flags_unlock(lock);
	return error;
}

int co_cli_complete(int argc, char **argv, co_cli *ctx)
{
	const char *reason = NULL, *wait = NULL, *pos[1];
	int force = 0, dry = 0, wait_s = WAIT_DRAIN_DEFAULT_S, i;
	co_cli_opt opts[] = {{"reason", &reason, NULL},
			     {"wait-drain", &wait, NULL},
			     {"force", NULL, &force},
			     {"dry-run", NULL, &dry},
			     {NULL, NULL, NULL}};
	static const char *const names[C__COUNT] = {"modes", "kill switch", "rollout",
						    "outbox", "reconciliation"};
	const co_config *c;
	co_cli_router *cr = NULL;
	co_state *st = NULL;
	co_outbox_stats og, oe;
	co_flags from, to;
	check k[C__COUNT];
	char refusal[4096];
	size_t n = 0;
	int error, ready;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_COMPLETE,
				  h_complete)) != 0)
		return error < 0 ? error : 0;
	if (wait && (error = co_cli_parse_wait(&wait_s, wait, U_COMPLETE)) < 0)
		return error;
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_flags_load(&from, c->flags_path)) < 0)
		goto done;
	if (from.completed.on) {
		if (ctx->json)
			error = co_cli_print_json(cJSON_Parse("{\"completed\":true}"));
		else
			printf("already completed at %s by %s\n", from.completed.at,
			       from.completed.by);
		goto done;
	}
	memset(k, 0, sizeof(k));
	for (i = 0; i < C__COUNT; i++) {
		k[i].name = names[i];
		k[i].state = "skipped";
	}
	check_flags(k, &from);
	check_rollout(&k[C_ROLLOUT], c->state_dir, force);
	/* Waiting and reconciling are only worth it when the rest holds. */
	ready = !failed(&k[C_MODES]) && !failed(&k[C_KILL]) && !failed(&k[C_ROLLOUT]);
	if ((error = co_cli_open_router(&cr, ctx)) < 0 ||
	    (error = drain_wait(&og, &oe, cr, NULL,
				ready && !dry && !force ? wait_s : 0)) < 0)
		goto done;
	check_outbox(&k[C_OUTBOX], &og, &oe, force, ready && !dry ? wait_s : 0);
	if (force)
		set_check(&k[C_RUN], "skipped", "--force: no reconciliation run");
	else if (!ready || failed(&k[C_OUTBOX]))
		set_check(&k[C_RUN], "skipped", "not run: another check failed");
	else if ((error = check_run(&k[C_RUN], ctx, cr, cr->state, dry)) < 0)
		goto done;
	st = cr->state;
	refusal[0] = '\0';
	for (i = 0, n = 0; i < C__COUNT; i++)
		if (failed(&k[i]) && n < sizeof(refusal))
			n +=
			    (size_t)snprintf(refusal + n, sizeof(refusal) - n, "%s%s: %s",
					     n ? "; " : "", k[i].name, k[i].why);
	if (dry || refusal[0]) {
		if ((error = print_checks(ctx, "complete", k, dry, NULL)) == 0 &&
		    refusal[0])
			error =
			    co_error_set(CO_ECONFLICT, "complete %s: %s",
					 dry ? "would be refused" : "refused", refusal);
		goto done;
	}
	if ((error = commit_complete(&to, ctx, st, k, reason, force)) < 0)
		goto done;
	if (force && strcmp(k[C_ROLLOUT].state, "skipped") == 0 &&
	    co_cli_rollout_end(NULL, ctx, st, "cutover complete --force") < 0) {
		fprintf(stderr, "cutover: warning: the rollout was not ended: %s\n",
			co_error_last());
		co_error_clear();
	}
	error = print_checks(ctx, "complete", k, 0, &to);
done:
	co_cli_router_close(cr, 0);
	return error;
}

/* ---- cancel ---- */

static int at_git(const co_flags *f)
{
	int op;

	if (f->kill_switch || f->completed.on)
		return 0;
	for (op = 0; op < CO_OP__COUNT; op++)
		if (co_flags_get(f, (co_op)op).mode != CO_MODE_GIT)
			return 0;
	return 1;
}

/* Every operation to git, the switch off, the completion cleared. */
static int commit_cancel(co_cli *ctx, co_state *st, const char *reason)
{
	const co_config *c;
	co_flags from, to;
	char note[800] = "";
	int error, lock = -1;

	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = lock = co_flags_lock(c->flags_path)) < 0 ||
	    (error = co_flags_load(&from, c->flags_path)) < 0)
		goto done;
	to = from;
	if ((error = co_stage_apply(&to, CO_STAGE_GIT)) < 0)
		goto done;
	co_flags_set_kill(&to, 0, NULL);
	if (from.completed.on)
		snprintf(note, sizeof(note), "forced past the completion at %s by %s",
			 from.completed.at, from.completed.by);
	co_flags_set_completed(&to, 0, NULL, NULL);
	error = co_cli_flags_commit(ctx, st, "cancel", &from, &to, note[0] ? note : NULL,
				    reason, 0);
done:
	co_flags_unlock(lock);
	return error;
}

int co_cli_cancel(int argc, char **argv, co_cli *ctx)
{
	const char *reason = NULL, *wait = NULL, *pos[1];
	int force = 0, wait_s = WAIT_DRAIN_DEFAULT_S, ended = 0;
	co_cli_opt opts[] = {{"reason", &reason, NULL},
			     {"wait-drain", &wait, NULL},
			     {"force", NULL, &force},
			     {NULL, NULL, NULL}};
	const co_config *c;
	co_cli_router *cr = NULL;
	co_outbox_stats og, oe;
	co_flags from;
	char why[1024], owed[400];
	size_t n;
	int error;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_CANCEL,
				  h_cancel)) != 0)
		return error < 0 ? error : 0;
	if (wait && (error = co_cli_parse_wait(&wait_s, wait, U_CANCEL)) < 0)
		return error;
	if (reason == NULL || *reason == '\0')
		reason = "cancel: back to git";
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_flags_load(&from, c->flags_path)) < 0)
		goto done;
	if (from.completed.on && !force) {
		error = co_error_set(
		    CO_ECONFLICT,
		    "cancel refused: the cutover was completed at %s by %s: git is no "
		    "longer "
		    "written and is stale; bring it up to date (`cutover migrate "
		    "--direction etcd-to-git`), then `cutover cancel --force`",
		    from.completed.at, from.completed.by[0] ? from.completed.by : "?");
		goto done;
	}
	if (at_git(&from)) {
		if (ctx->json)
			error = co_cli_print_json(
			    cJSON_Parse("{\"stage\":\"git\",\"changed\":false}"));
		else
			printf("already at git\n");
		goto done;
	}
	if ((error = co_cli_git_way_back(why, sizeof(why), ctx)) != 0) {
		if (error > 0)
			error = co_error_set(
			    CO_ECONFLICT,
			    "cancel refused: git does not take writes (%s): "
			    "going back to it would lose them; fix git first",
			    why);
		goto done;
	}
	if ((error = co_cli_open_router(&cr, ctx)) < 0 ||
	    (error = co_cli_rollout_end(&ended, ctx, cr->state, reason)) < 0)
		goto done;
	if (ended)
		fprintf(stderr, "cutover: cancel: the rollout going is ended\n");
	/* Git decides from now on, in every router, while the outbox drains. */
	if ((error =
		 co_flags_trip_forced(c->flags_path, co_cli_who(), "cancel: kill switch",
				      reason, NULL, cr->state, &from, NULL, force)) < 0)
		goto done;
	co_flags_watcher_reload(cr->flags);
	if ((error = drain_wait(&og, &oe, cr, "git", wait_s)) < 0)
		goto done;
	if (og.depth > 0) {
		owed_text(owed, sizeof(owed), "git", &og);
		error = co_error_set(
		    CO_ECONFLICT,
		    "cancel stopped: %s after %d s of draining; the kill switch stays on "
		    "(git decides, etcd mirrors, nothing is lost): run `cutover cancel` "
		    "again once git takes writes",
		    owed, wait_s);
		goto done;
	}
	if ((error = commit_cancel(ctx, cr->state, reason)) < 0)
		goto done;
	if (ctx->json)
		error = co_cli_print_json(
		    cJSON_Parse("{\"stage\":\"git\",\"changed\":true}"));
	else
		printf("cancelled: every operation in git, kill switch off\n");
done:
	co_cli_router_close(cr, 0);
	return error;
}
