/*
 * reconcile.h - the reconciliation worker (DESIGN §5).
 *
 * One run: drain the outbox (through a hook, so that this module needs no
 * router), snapshot both stores (snapshot.h), merge the snapshots, and set
 * aside the IDs with writes in flight -- pending in the outbox, or changed
 * since their snapshot -- to re-check them after a grace period.  An ID
 * that reads equal with nothing pending is equal at once; only an ID that
 * reads different twice in a row with nothing pending counts as a
 * divergence.  After max_rechecks rounds an ID counts as it reads then,
 * except one with outbox rows still pending.  If the outbox owes it an
 * acknowledged write (a record or delete row, or an intent older than the
 * in-flight window; outbox.h, co_outbox_debt) it is *owed*: neither equal
 * nor divergent, listed in run.owed_list and counted by store in run.owed*.
 * If its rows are only operations in flight (young intents) it is lag,
 * counted as found and in `unsettled`.  The run and its
 * divergences go to the state database (runs.h); a failing verdict trips the kill switch
 * in the flags file with the reason "reconcile run N: ..." and records the trip in the
 * audit trail (audit.h), unless told not to.
 *
 * Verdict: fail when the IDs not divergent ((equal + owed) / all distinct
 * IDs; 1 when there are none) are below min_consistency, or when
 * mismatches exceed max_mismatch_ratio of all IDs: divergence wins over
 * anything owed.  Otherwise pending_drain when some ID is owed (no kill
 * switch: nothing diverged and the writes are in the durable outbox; not a
 * pass for the go/no-go gate either), else pass.  The recorded consistency
 * is equal / all: owed IDs are not counted as consistent.
 *
 * Divergences keep redacted copies of both values (opts.redact, redact.h):
 * what the run records and returns holds no secret.  Repair reads the
 * truth again from its store, never from a divergence.
 *
 * Repair: with `repair` set, the run diagnoses as usual, then makes the
 * other store equal to the chosen one for every divergent ID (co_store_put
 * of the truth's record, co_store_remove where the truth has none).  A
 * repairing run does not trip the kill switch (the operator chose a
 * remedy); its action says what was written.  Run again to verify.
 *
 * Thread safety: one run at a time per co_reconcile_opts; the stores and
 * the state are shared objects (thread-safe themselves).  The two stores
 * are snapshotted in parallel (a second thread lists git) unless
 * low_memory is set; the progress callback is then called from both
 * threads, never at the same time.
 */
#ifndef CO_RECONCILE_H
#define CO_RECONCILE_H

#include "core/redact.h"
#include "core/runs.h"
#include "core/state.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

typedef enum co_repair_from {
	CO_REPAIR_NONE = 0,
	CO_REPAIR_FROM_GIT,  /* git is the truth: etcd is made equal to it */
	CO_REPAIR_FROM_ETCD, /* etcd is the truth: git is made equal to it */
} co_repair_from;

/*
 * Progress of a run: `phase` is "drain", "snapshot git", "snapshot etcd",
 * "read back" (git files whose blob ids did not match, read for their
 * text), "diff", "recheck", "repair" or "record"; `done` of `total` steps
 * of it (total 0 when unknown).  Called from the run's thread.
 */
typedef void (*co_reconcile_progress_fn)(void *ctx, const char *phase, size_t done,
					 size_t total);

/*
 * Drain the outbox before snapshotting (the router's co_router_drain).
 * Returns 0 or a negative CO_E* code; a failure is recorded as a warning
 * in the result and the run goes on (pending entries are in-flight IDs).
 */
typedef int (*co_reconcile_drain_fn)(void *ctx);

typedef struct co_reconcile_opts {
	co_store *git;		/* required; borrowed */
	co_store *etcd;		/* required; borrowed */
	co_state *state;	/* outbox, runs, audit; NULL: nothing recorded,
				 * no outbox check, no kill switch */
	const char *flags_path; /* flags file; NULL: the kill switch is never tripped */
	double min_consistency; /* default 0.9999 */
	double max_mismatch_ratio; /* default 0.001 */
	int grace_ms;	  /* wait before re-checking in-flight IDs; default 2000 */
	int max_rechecks; /* rounds before an unsettled ID counts; default 5 */
	int no_rollback;  /* 1: never trip the kill switch */
	co_repair_from repair;
	co_reconcile_drain_fn drain; /* may be NULL */
	void *drain_ctx;
	co_reconcile_progress_fn progress; /* may be NULL */
	void *progress_ctx;
	const char *who; /* audit "who"; default "reconcile" */
	int low_memory;	 /* 1: snapshot one store after the other (half
			  * the peak memory, the sum of both times) */
	/* What never leaves the stores (redact.h): the values a divergence
	 * keeps are redacted with it.  Borrowed; NULL: the default policy. */
	const co_redact *redact;
} co_reconcile_opts;

#define CO_RECONCILE_OPTS_INIT                                                           \
	{                                                                                \
		NULL, NULL, NULL, NULL, 0.9999, 0.001, 2000, 5, 0, CO_REPAIR_NONE, NULL, \
		    NULL, NULL, NULL, "reconcile", 0, NULL                               \
	}

/* What a run found and did. */
typedef struct co_reconcile_result {
	co_run run;			/* id 0 when not recorded (no state) */
	co_divergence_list divergences; /* kind/ID order; run field = run.id */
	int64_t in_flight;		/* IDs set aside and re-checked */
	int64_t unsettled;		/* of those, still changing after max_rechecks
					 * and not owed (they count with their last
					 * values); owed IDs are in run.owed */
	int64_t repaired_put, repaired_removed;
	int64_t same_blob; /* IDs found equal by blob id, no git file read */
	int64_t read_back; /* git files read back by blob id (ids differed) */
	char reason[512];  /* "reconcile run N: ..." on fail, else "" */
	char warning[512]; /* e.g. the drain failed; "" if none */
} co_reconcile_result;

/*
 * Run one reconciliation.  *out (owned by the caller, co_reconcile_result_free)
 * is set when the run completed, whatever its verdict: check
 * out->run.verdict ("pass" / "pending_drain" / "fail").  A run that could not complete (a
 * store unreachable) is recorded with verdict "fail", action "none" and its
 * error, and returns that error (CO_EUNAVAIL, ...) without *out.
 * Errors: CO_EINVAL (no stores, thresholds out of range), those of the
 * stores, of the state database, CO_ENOMEM.
 */
int co_reconcile_run(co_reconcile_result **out, const co_reconcile_opts *opts);

/* Free a result; NULL is fine. */
void co_reconcile_result_free(co_reconcile_result *r);

/* 1 if the result's verdict is "pass". */
int co_reconcile_passed(const co_reconcile_result *r);

/* 1 if the result's verdict is "pending_drain". */
int co_reconcile_pending_drain(const co_reconcile_result *r);

/* "git" / "etcd" to a repair source; CO_EINVAL otherwise. */
int co_reconcile_parse_repair(co_repair_from *out, const char *name);

#endif
