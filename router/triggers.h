/*
 * triggers.h - live-signal triggers: automatic rollback on what the router
 * sees, not only on a failing reconciliation (issue 14, point 1).
 *
 * Four triggers, each with thresholds from the config file's `triggers:`
 * section (co_trigger_cfg, core/config.h):
 *   error_rate  etcd-path failures / etcd-path operations over the window
 *               > error_rate, with at least min_samples operations;
 *   latency     for one operation, etcd-path p95 > latency_ratio x the git
 *               baseline of that operation, with at least min_samples etcd
 *               operations (or, when etcd is so slow that no one
 *               operation gathers them, the p95 of every operation with
 *               a baseline pooled, against the largest of their
 *               baselines); the baseline is the git-path p95 recorded while
 *               the operation is in git or shadow mode (min_samples git
 *               operations in the window), kept in <state dir>/
 *               trigger-baseline.json so a restart keeps it.  No baseline,
 *               no latency trigger (status says so);
 *   health      etcd's circuit breaker not closed (unreachable, no leader,
 *               calls failing) for longer than health_grace;
 *   outbox_age  the oldest pending outbox entry older than outbox_age.
 * They are armed only while etcd is in play (some operation not in git
 * mode) and the kill switch is off.  The first that fires pulls the kill
 * switch (flags/trip.h: the same switch as reconciliation, seen by every
 * router through its flags watcher), audited with the figures, the reason
 * in kill_reason.
 *
 * Evaluation is pure (co_triggers_eval: a window snapshot and inputs in, a
 * verdict out) so it is tested without stores; co_triggers_start runs it
 * once a second in a thread of a long-lived router (router.h, opts.triggers)
 * and writes what it saw to <state dir>/triggers.json for `cutover status`.
 */
#ifndef CO_ROUTER_TRIGGERS_H
#define CO_ROUTER_TRIGGERS_H

#include "core/config.h"
#include "flags/flags.h"
#include "signals.h"

#include <stddef.h>
#include <stdint.h>

typedef struct co_state co_state;
typedef struct co_store co_store;
typedef struct co_flags_watcher co_flags_watcher;
struct cJSON;

typedef enum co_trigger_kind {
	CO_TRIGGER_NONE = 0,
	CO_TRIGGER_ERROR_RATE,
	CO_TRIGGER_LATENCY,
	CO_TRIGGER_HEALTH,
	CO_TRIGGER_OUTBOX_AGE,
	CO_TRIGGER__COUNT
} co_trigger_kind;

/* "none", "error_rate", "latency", "health", "outbox_age". */
const char *co_trigger_name(co_trigger_kind k);

/*
 * Check thresholds (for configs built in code; the config file's parser
 * checks the same).  CO_EINVAL naming the field and its value.
 */
int co_trigger_cfg_check(const co_trigger_cfg *cfg);

/*
 * The triggers a router runs: `cfg` as configured, except in fleet mode
 * (fleet = 1) with the triggers turned off, where the health trigger
 * alone stays armed, with its grace: a fleet router that loses etcd for
 * longer than that while etcd is in play falls back to git on its own
 * (docs/design-changes.md, "Router fleet").  Pure.
 */
void co_trigger_cfg_for_router(co_trigger_cfg *out, const co_trigger_cfg *cfg, int fleet);

/* What the evaluation needs besides the window. */
typedef struct co_trigger_inputs {
	co_flags flags;			   /* as the routers run them */
	int64_t baseline_us[CO_OP__COUNT]; /* git p95 per op; 0: none */
	int64_t etcd_down_ms;		   /* etcd unhealthy this long; 0: healthy */
	char etcd_why[256];		   /* why (the breaker's reason) */
	int64_t outbox_age_ms;		   /* oldest pending entry's age; 0: empty */
} co_trigger_inputs;

/* The verdict, and the current figures of every trigger. */
typedef struct co_trigger_eval {
	int armed;		       /* 1 if a trigger may fire now */
	char disarmed_why[128];	       /* why not, when armed is 0 */
	int64_t etcd_ops, etcd_errors; /* etcd path over the window */
	double error_rate;	       /* etcd_errors / etcd_ops, 0 without ops */
	int latency_op;		       /* the co_op with the worst ratio, or -1 */
	int latency_pooled; /* 0, or how many kinds were judged as one pool
			     * (latency_op then names the largest baseline) */
	int64_t etcd_p95_us, baseline_us, latency_samples;
	double latency_ratio; /* etcd_p95 / baseline of latency_op, 0: none */
	int baselines;	      /* operations with a baseline */
	int64_t etcd_down_ms, outbox_age_ms;
	co_trigger_kind fired;		      /* CO_TRIGGER_NONE if nothing fires */
	char reason[CO_FLAGS_REASON_MAX + 1]; /* for kill_reason */
	char figures[512];		      /* key=value, for the audit */
} co_trigger_eval;

/*
 * Evaluate the triggers over `snap` (its window_s) and `in`.  Pure, no
 * allocation, thread-safe.  The first trigger that fires, in the order
 * health, error_rate, latency, outbox_age, is the verdict.
 */
void co_triggers_eval(co_trigger_eval *out, const co_trigger_cfg *cfg,
		      const co_signal_snapshot *snap, const co_trigger_inputs *in);

/*
 * Update the git baselines from `snap`: for each operation whose
 * configured mode is git or shadow with at least min_samples git-path
 * operations in the window, baseline_us[op] becomes their p95 (and
 * samples[op] their count).  Returns how many changed.  Pure.
 */
int co_triggers_baseline_update(int64_t baseline_us[CO_OP__COUNT],
				int64_t samples[CO_OP__COUNT], const co_trigger_cfg *cfg,
				const co_signal_snapshot *snap, const co_flags *flags);

/* <state_dir>/trigger-baseline.json: load (missing: all 0) and save
 * (0600, temp + fsync + rename).  CO_EIO naming the file, CO_ENOMEM. */
int co_triggers_baseline_load(int64_t baseline_us[CO_OP__COUNT],
			      int64_t samples[CO_OP__COUNT], const char *state_dir);
int co_triggers_baseline_save(const int64_t baseline_us[CO_OP__COUNT],
			      const int64_t samples[CO_OP__COUNT], const char *state_dir);

/* ---- the evaluator thread ---- */

typedef struct co_triggers co_triggers;

typedef struct co_triggers_opts {
	co_trigger_cfg cfg;
	co_signals *signals;	 /* borrowed: the router's window */
	co_flags_watcher *flags; /* borrowed */
	const char *flags_path;	 /* the file the kill switch is pulled in */
	co_state *state;	 /* borrowed: audit, outbox age */
	co_store *etcd;		 /* borrowed: its breaker is the health signal */
	int interval_ms;	 /* between evaluations (0: 1000) */
	int no_thread;		 /* 1: no thread, the caller calls co_triggers_tick */
} co_triggers_opts;

/*
 * Start evaluating (a thread, unless opts->no_thread).  Loads the baseline
 * from the state dir.  CO_EINVAL (thresholds), CO_ENOMEM.  The caller owns
 * *out (co_triggers_stop, which joins the thread).
 */
int co_triggers_start(co_triggers **out, const co_triggers_opts *opts);
void co_triggers_stop(co_triggers *t);

/*
 * One evaluation now, tripping the kill switch if a trigger fires.  *out
 * (may be NULL) gets the verdict.  0, or the trip's error (also printed
 * to stderr by the thread).
 */
int co_triggers_tick(co_triggers *t, co_trigger_eval *out);

/* How many times each trigger fired in this process. */
uint64_t co_triggers_fired(co_triggers *t, co_trigger_kind k);

/*
 * Prometheus text (cutover_trigger_fired_total{trigger}, the current
 * figures as gauges) into buf, always NUL-terminated; "" for t NULL.
 * Returns buf.
 */
const char *co_triggers_metrics(char *buf, size_t len, co_triggers *t);

/*
 * For `cutover status`: the thresholds of `cfg`, the baselines in
 * `state_dir`, and the figures the running evaluator last wrote
 * (<state_dir>/triggers.json, if fresh and its writer alive), as a cJSON
 * object (caller frees), or NULL when out of memory.
 */
struct cJSON *co_triggers_status_json(const co_trigger_cfg *cfg, const char *state_dir);

/* The text form of co_triggers_status_json's object, to `f`. */
void co_triggers_status_print(void *f, const struct cJSON *o);

#endif
