/*
 * rollout_driver.c - what a guarded rollout does at each tick (the
 * decisions are flags/rollout.c's; this file acts on them): change the
 * stage through the go/no-go gate, analyse a finished soak (a passing
 * reconciliation within it, run here if none, shadow mismatches and the
 * outbox within the gate's bounds), roll back to the last safe stage or
 * pause, and audit every step as "rollout".
 *
 * Ticks come from `cutover serve` (a thread, every second) or from
 * `cutover rollout start --foreground`; each runs under the rollout's file
 * lock, so two drivers never act at once.  The process that ticks is the
 * rollout's driver; another one takes over only when the driver has not
 * ticked for DRIVER_STALE_MS (or at once when it was a process of this host
 * that is gone), and then the soak in progress starts again:
 * nobody watched the stores meanwhile, so that time is not counted.
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/outbox.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "flags/rollout.h"
#include "flags/stage.h"
#include "reconcile/reconcile.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A driver that has not ticked for this long is gone. */
#define DRIVER_STALE_MS 5000

static void me(char *buf, size_t len)
{
	char host[64] = "?";

	gethostname(host, sizeof(host) - 1);
	snprintf(buf, len, "%.60s:%ld", host, (long)getpid());
}

/*
 * 1 if the driver named "host:pid" is gone: a process of this host that no
 * longer exists, or any driver silent for DRIVER_STALE_MS.
 */
static int driver_gone(const co_rollout *r, const char *self, int64_t now)
{
	const char *colon = strrchr(r->driver, ':');
	size_t hl = (size_t)(strrchr(self, ':') - self);
	long pid;

	if (now - r->driver_seen_ms >= DRIVER_STALE_MS)
		return 1;
	if (colon && (size_t)(colon - r->driver) == hl &&
	    strncmp(r->driver, self, hl) == 0) {
		pid = strtol(colon + 1, NULL, 10);
		if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			return 1;
	}
	return 0;
}

static void audit(co_state *st, const char *action, const char *detail, const char *why)
{
	if (co_audit_change_add(st, "rollout", action, detail, why && *why ? why : NULL) <
	    0)
		fprintf(stderr, "cutover: warning: rollout: audit row not written: %s\n",
			co_error_last());
	co_error_clear();
}

int co_cli_rollout_apply(char *why, size_t len, co_cli *ctx, co_state *st, co_stage stage,
			 int gated, const char *reason)
{
	const co_config *c;
	co_flags from, to;
	char note[1024];
	int error, lock = -1;

	why[0] = '\0';
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = lock = co_flags_lock(c->flags_path)) < 0 ||
	    (error = co_flags_load(&from, c->flags_path)) < 0)
		goto done;
	to = from;
	if ((error = co_stage_apply(&to, stage)) < 0 || co_flags_equal(&from, &to))
		goto done;
	if (gated &&
	    (error = co_cli_gate(note, sizeof(note), ctx, st, &from, &to, 0)) < 0)
		goto done;
	error =
	    co_cli_flags_commit(ctx, st, "rollout: stage", &from, &to, NULL, reason, 0);
done:
	if (error < 0)
		snprintf(why, len, "%s", co_error_last());
	co_flags_unlock(lock);
	return error;
}

/*
 * The analysis at the end of a soak.  1 if it passes, 0 if not; why says
 * what was found either way.  A reconciliation is run when none passed
 * since the soak began.
 */
static int analyse(char *why, size_t len, co_cli *ctx, co_cli_router *cr, co_state *st,
		   const co_rollout *r)
{
	const co_config *c;
	co_run *run = NULL;
	co_reconcile_result *res = NULL;
	co_outbox_stats og, oe;
	int64_t reads = 0, mism = 0, now = co_state_now_ms(), id = 0;
	int ok = 0;

	if (co_cli_config(&c, ctx) < 0) {
		snprintf(why, len, "cannot read the configuration: %s", co_error_last());
		return 0;
	}
	if (co_runs_latest(&run, st) == 0 && run->started_at >= r->soak_started_ms &&
	    run->verdict && strcmp(run->verdict, "pass") == 0) {
		id = run->id;
	} else if (cr == NULL) {
		snprintf(why, len,
			 "no reconciliation passed within the soak and this "
			 "driver cannot run one");
		goto done;
	} else if (co_cli_reconcile_once(&res, ctx, cr, "rollout") < 0) {
		snprintf(why, len, "the reconciliation failed to run: %s",
			 co_error_last());
		goto done;
	} else if (res->run.verdict == NULL || strcmp(res->run.verdict, "pass") != 0) {
		snprintf(why, len, "reconciliation run %lld: %s (consistency %.4f%%)",
			 (long long)res->run.id,
			 res->run.verdict ? res->run.verdict : "?",
			 100.0 * res->run.consistency);
		goto done;
	} else {
		id = res->run.id;
	}
	if (co_audit_shadow_counts(&reads, &mism, st, r->soak_started_ms) < 0 ||
	    co_cli_shadow_compared_reads(&reads, c, st, r->soak_started_ms) < 0 ||
	    co_outbox_stats_of(&og, st, "git") < 0 ||
	    co_outbox_stats_of(&oe, st, "etcd") < 0) {
		snprintf(why, len, "cannot read the state: %s", co_error_last());
		goto done;
	}
	if (reads > 0 &&
	    (double)mism > c->gate_max_shadow_mismatch_ratio * (double)reads) {
		snprintf(
		    why, len,
		    "shadow reads disagreed %lld times in %lld during the soak, over "
		    "%.2f%%",
		    (long long)mism, (long long)reads,
		    100.0 * c->gate_max_shadow_mismatch_ratio);
		goto done;
	}
	if (og.depth > c->gate_outbox_max_depth || oe.depth > c->gate_outbox_max_depth) {
		snprintf(
		    why, len, "the outbox owes git %lld and etcd %lld entries, over %d",
		    (long long)og.depth, (long long)oe.depth, c->gate_outbox_max_depth);
		goto done;
	}
	if ((og.depth && now - og.oldest_ms > c->gate_outbox_max_age_ms) ||
	    (oe.depth && now - oe.oldest_ms > c->gate_outbox_max_age_ms)) {
		snprintf(why, len, "an outbox entry is older than %d s",
			 c->gate_outbox_max_age_ms / 1000);
		goto done;
	}
	ok = 1;
	snprintf(why, len,
		 "reconciliation run %lld passed; shadow mismatches %lld of %lld; outbox "
		 "git %lld, etcd %lld",
		 (long long)id, (long long)mism, (long long)reads, (long long)og.depth,
		 (long long)oe.depth);
done:
	co_error_clear();
	co_run_free(run);
	co_reconcile_result_free(res);
	return ok;
}

/*
 * Before a forward step the gate wants a recent passing reconciliation:
 * the step before ended with one (its analysis), but the first step, or
 * one after a long wait for the window, may not have it.  Run one when the
 * latest is not a pass within the go/no-go window.  0, or -1 with why.
 */
static int fresh_run(char *why, size_t len, co_cli *ctx, co_cli_router *cr, co_state *st,
		     const co_rollout *r)
{
	const co_config *c;
	co_run *run = NULL;
	co_reconcile_result *res = NULL;
	int fresh, error = 0;

	(void)r;
	if (co_cli_config(&c, ctx) < 0)
		return -1;
	fresh = co_runs_latest(&run, st) == 0 && run->verdict &&
		strcmp(run->verdict, "pass") == 0 &&
		run->started_at + run->duration_ms >=
		    co_state_now_ms() - c->go_no_go_window_ms;
	co_run_free(run);
	co_error_clear();
	if (fresh || cr == NULL)
		return 0; /* the gate judges (and says why) */
	if (co_cli_reconcile_once(&res, ctx, cr, "rollout") < 0) {
		snprintf(why, len, "the reconciliation failed to run: %s",
			 co_error_last());
		error = -1;
	} else if (res->run.verdict == NULL || strcmp(res->run.verdict, "pass") != 0) {
		snprintf(why, len, "reconciliation run %lld: %s (consistency %.4f%%)",
			 (long long)res->run.id,
			 res->run.verdict ? res->run.verdict : "?",
			 100.0 * res->run.consistency);
		error = -1;
	}
	co_error_clear();
	co_reconcile_result_free(res);
	return error;
}

/* The rollout failed at r->step with r->analysis: pause or roll back. */
static void failed(co_cli *ctx, co_state *st, co_rollout *r, int64_t now)
{
	char why[1024], detail[1400];
	co_stage safe = co_rollout_safe_stage(r);

	co_rollout_analysed(r, 0, r->analysis, now);
	if (r->phase == CO_RO_PAUSED) {
		snprintf(detail, sizeof(detail), "paused at %s: %s",
			 co_stage_name(r->steps[r->step]), r->analysis);
		audit(st, "rollout pause", detail, "--on-fail pause");
		return;
	}
	/* Moving back passes no reconciliation rule; the path rule never
	 * refuses one step back. */
	if (co_cli_rollout_apply(why, sizeof(why), ctx, st, safe, 0,
				 "rollout: analysis failed") < 0) {
		r->phase = CO_RO_PAUSED;
		snprintf(detail, sizeof(detail),
			 "%.500s; rolling back to %s failed: %.400s: paused", r->analysis,
			 co_stage_name(safe), why);
		snprintf(r->analysis, sizeof(r->analysis), "%.1000s", detail);
		audit(st, "rollout pause", detail, NULL);
		return;
	}
	snprintf(detail, sizeof(detail), "failed at %s, back to %s: %s",
		 co_stage_name(r->steps[r->step]), co_stage_name(safe), r->analysis);
	audit(st, "rollout failed", detail, NULL);
}

int co_cli_rollout_tick(int *active, char *said, size_t said_len, co_cli *ctx,
			co_cli_router *cr, co_state *st)
{
	const co_config *c;
	co_rollout r;
	co_rollout_view v = {0};
	co_flags f;
	char self[96], why[1024], detail[1400];
	int lock, error;

	*active = 0;
	said[0] = '\0';
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if ((lock = co_rollout_lock(c->state_dir)) < 0)
		return lock;
	if ((error = co_rollout_load(&r, c->state_dir)) < 0) {
		co_rollout_unlock(lock);
		if (error == CO_ENOTFOUND) {
			co_error_clear();
			return 0;
		}
		return error;
	}
	if (!co_rollout_active(r.phase) || r.phase == CO_RO_PAUSED) {
		co_rollout_unlock(lock);
		return 0;
	}
	*active = 1;
	v.now_ms = co_state_now_ms();
	me(self, sizeof(self));
	if (strcmp(r.driver, self) != 0) {
		if (r.driver[0] && !driver_gone(&r, self, v.now_ms)) {
			co_rollout_unlock(lock); /* another driver is at it */
			return 0;
		}
		v.soak_restart = r.driver[0] != '\0' && r.phase == CO_RO_SOAKING;
		snprintf(r.driver, sizeof(r.driver), "%s", self);
	}
	r.driver_seen_ms = v.now_ms;
	if ((error = co_flags_load(&f, c->flags_path)) < 0)
		goto done;
	v.kill_switch = f.kill_switch;
	snprintf(v.kill_reason, sizeof(v.kill_reason), "%s", f.kill_reason);

	switch (co_rollout_decide(&r, &v)) {
	case CO_RA_NOTHING:
		if (v.soak_restart) {
			snprintf(said, said_len,
				 "soak at %s restarted: driver %s took over",
				 co_stage_name(r.steps[r.step]), self);
			audit(st, "rollout soak restart", said, NULL);
		}
		break;
	case CO_RA_APPLY:
		snprintf(detail, sizeof(detail), "rollout %lld step %zu of %zu",
			 (long long)r.id, r.step + 1, r.n_steps);
		if (fresh_run(why, sizeof(why), ctx, cr, st, &r) < 0) {
			snprintf(r.analysis, sizeof(r.analysis),
				 "before stage %s: %.900s",
				 co_stage_name(r.steps[r.step]), why);
			failed(ctx, st, &r, v.now_ms);
			snprintf(said, said_len, "%s", r.analysis);
			break;
		}
		if (co_cli_rollout_apply(why, sizeof(why), ctx, st, r.steps[r.step], 1,
					 detail) < 0) {
			snprintf(r.analysis, sizeof(r.analysis),
				 "stage %s refused: %.900s",
				 co_stage_name(r.steps[r.step]), why);
			failed(ctx, st, &r, v.now_ms);
			snprintf(said, said_len, "%s", r.analysis);
			break;
		}
		r.phase = CO_RO_SOAKING;
		r.soak_started_ms = v.now_ms;
		snprintf(said, said_len, "stage %s (step %zu of %zu); soaking",
			 co_stage_name(r.steps[r.step]), r.step + 1, r.n_steps);
		audit(st, "rollout step", said, NULL);
		break;
	case CO_RA_ANALYSE: {
		size_t at = r.step;
		int ok = analyse(why, sizeof(why), ctx, cr, st, &r);

		if (!ok) {
			snprintf(r.analysis, sizeof(r.analysis),
				 "analysis at %s failed: %.900s",
				 co_stage_name(r.steps[at]), why);
			failed(ctx, st, &r, co_state_now_ms());
			snprintf(said, said_len, "%s", r.analysis);
			break;
		}
		co_rollout_analysed(&r, 1, why, co_state_now_ms());
		snprintf(said, said_len, "analysis at %s passed: %s%s",
			 co_stage_name(r.steps[at]), why,
			 r.phase == CO_RO_DONE ? "; rollout done" : "");
		audit(st, r.phase == CO_RO_DONE ? "rollout done" : "rollout analysis",
		      said, NULL);
		break;
	}
	case CO_RA_FAIL:
		failed(ctx, st, &r, v.now_ms);
		snprintf(said, said_len, "%s", r.analysis);
		break;
	}
	*active = co_rollout_active(r.phase) && r.phase != CO_RO_PAUSED;
	r.updated_ms = co_state_now_ms();
	error = co_rollout_save(&r, c->state_dir);
done:
	co_rollout_unlock(lock);
	return error;
}
