/*
 * runs.h - reconciliation runs and their divergences (DESIGN §5).
 *
 * The reconciler begins a run (a row with its start time and no verdict),
 * adds its divergences in batches as it finds them, and finishes the run
 * with its counts, consistency, verdict and the action it took.  Reports,
 * `status`, the HTML chart and the go/no-go gate of `cutover stage` read
 * them back.  A run that was begun but never finished (the reconciler died)
 * has verdict NULL and is "in progress": co_runs_latest, co_runs_list and
 * the gate skip it; co_runs_get returns it.
 *
 * Thread safety: like every state call, safe on a shared co_state and from
 * several processes.  Runs, divergences and lists are values owned by the
 * caller.
 */
#ifndef CO_RUNS_H
#define CO_RUNS_H

#include "state.h"

#include <stddef.h>
#include <stdint.h>

/*
 * One acknowledged write the outbox still owed at the end of a run, for an
 * ID the run found different (outbox.h, co_outbox_debt: a record or delete
 * row, or an intent older than the in-flight window).
 */
typedef struct co_owed {
	char *target; /* "etcd" | "git": the store it is owed to */
	char *kind;   /* "task" | "swarm" */
	char *id;
	int64_t since; /* Unix ms: created_at of the oldest owed outbox row */
} co_owed;

typedef struct co_owed_list {
	co_owed **items;
	size_t n, cap;
} co_owed_list;

typedef struct co_run {
	int64_t id;          /* run number, growing; "run N" in reasons */
	int64_t started_at;  /* Unix ms */
	int64_t duration_ms;
	int64_t total, equal, missing_in_etcd, missing_in_git, mismatch;
	double consistency;  /* 0..1: equal / total (owed IDs are not equal) */
	char *verdict;       /* "pass" | "fail" | "pending_drain"; NULL while in progress */
	char *action;        /* "none", "kill_switch", "repair:git", ...; NULL while in progress */
	char *error;         /* why the run failed to complete, or NULL */
	/*
	 * IDs that differed only because the outbox still owed them an
	 * acknowledged write at the end of the run: neither equal nor
	 * divergent (total = equal + owed + the three divergence classes).
	 * An ID owed to both stores counts once in `owed` and in each store's
	 * count.  owed_oldest_ms: age of the oldest owed row when the run
	 * ended (0 when nothing is owed).
	 */
	int64_t owed, owed_etcd, owed_git, owed_oldest_ms;
	/* One item per (store, ID), kind/ID order; read by co_runs_get and
	 * co_runs_latest, not by co_runs_list (counts only there). */
	co_owed_list owed_list;
} co_run;

typedef struct co_run_list {
	co_run **items;
	size_t n, cap;
} co_run_list;

typedef struct co_divergence {
	int64_t run;
	char *id;
	char *kind;       /* "task" | "swarm" */
	char *cls;        /* "missing_in_etcd" | "missing_in_git" | "mismatch" */
	char *fields;     /* differing field names, comma-separated; "" when missing */
	/* Canonical JSON as the reconciler recorded it, redacted (redact.h):
	 * hidden fields read "[redacted, equal|differs]".  Rows of runs before
	 * redaction existed hold values: readers redact again (report.h). */
	char *git_value;  /* NULL when missing in git */
	char *etcd_value; /* NULL when missing in etcd */
} co_divergence;

typedef struct co_divergence_list {
	co_divergence **items;
	size_t n, cap;
} co_divergence_list;

/* Free (NULL is fine); clear a list (its rows freed, the list reset). */
void co_run_free(co_run *r);
void co_owed_free(co_owed *o);
void co_owed_list_clear(co_owed_list *l);
void co_run_list_clear(co_run_list *l);
void co_divergence_free(co_divergence *d);
void co_divergence_list_clear(co_divergence_list *l);

/*
 * Start a run at `started_at` (Unix ms; 0 = now): a new row, in progress.
 * *out receives its id.  Durable.  CO_EUNAVAIL, CO_EIO.
 */
int co_runs_begin(int64_t *out, co_state *st, int64_t started_at);

/*
 * Add `n` divergences to run `run` in one transaction (each item's `run`
 * field is ignored).  Call it once per batch of a few thousand.  Errors,
 * with nothing written: CO_ENOTFOUND (no run `run`), CO_EINVAL (bad kind or
 * class, NULL id, or an ID already recorded for this run), CO_EUNAVAIL,
 * CO_EIO.
 */
int co_runs_add_divergences(co_state *st, int64_t run, const co_divergence *d, size_t n);

/*
 * Finish run r->id with every other field of `r`, its owed_list included,
 * in one transaction (verdict "pass", "fail" or "pending_drain" and action
 * required, and pending_drain needs owed > 0: CO_EINVAL; so does an owed
 * item with a bad store, kind or ID, or one listed twice).  Durable.
 * CO_ENOTFOUND if there is no such run; CO_ECONFLICT if it was already
 * finished; CO_EUNAVAIL, CO_EIO.
 */
int co_runs_finish(co_state *st, const co_run *r);

/*
 * Record a complete run in one step (begin + finish), for callers that
 * have everything at once.  r->id is ignored; *out (if not NULL) gets the
 * new id.  Errors as co_runs_finish.
 */
int co_runs_insert(int64_t *out, co_state *st, const co_run *r);

/*
 * The latest finished run, with its owed_list.  *out owned by the caller
 * (co_run_free).
 * CO_ENOTFOUND if no run has finished; CO_EIO, CO_ENOMEM.
 */
int co_runs_latest(co_run **out, co_state *st);

/* Run number n, finished or not, with its owed_list.  CO_ENOTFOUND, CO_EIO,
 * CO_ENOMEM. */
int co_runs_get(co_run **out, co_state *st, int64_t n);

/*
 * The latest `limit` finished runs, oldest first (the order a chart draws
 * them), appended to *out on success.  CO_EIO, CO_ENOMEM.
 */
int co_runs_list(co_run_list *out, co_state *st, size_t limit);

/*
 * Run `run`'s divergences, tasks then swarms, each by id (the order of
 * co_record_list_sort), appended to *out on success.  An unknown run has
 * none.  CO_EIO, CO_ENOMEM.
 */
int co_runs_divergences(co_divergence_list *out, co_state *st, int64_t run);

/*
 * The item of r->owed_list owed the longest (smallest `since`; on a tie
 * the first in list order), or NULL when the list is empty.
 */
const co_owed *co_run_oldest_owed(const co_run *r);

/*
 * The go/no-go gate: 0 and the run in *out (if out is not NULL) when the
 * latest finished run passed and ended (started_at + duration_ms) no
 * earlier than now_ms - window_ms.
 * Otherwise an error whose message an operator can act on:
 * CO_ENOTFOUND "no reconciliation run has finished"; CO_ECONFLICT "latest
 * reconciliation run N failed ...", "... is pending_drain: the outbox
 * still owed N acknowledged writes ..." or "... passed ... ago, older
 * than the go/no-go window ...".  CO_EINVAL (negative window), CO_EIO,
 * CO_ENOMEM.
 */
int co_runs_latest_passed_within(co_run **out, co_state *st, int64_t window_ms,
				 int64_t now_ms);

#endif
