/*
 * audit.h - the three audit trails kept in the state database.
 *
 *  - changes: every flag change and every automatic trip, with who, what and
 *    why (DESIGN §4: "every change and every automatic trip is recorded").
 *    Kept forever; written durably.
 *  - ops: the witness log of routed operations (operation, ID, mode,
 *    primary, outcome, latency, error).  Bounded: the newest `keep` rows are
 *    kept (default 100000), trimmed in batches (default every 1000 inserts),
 *    so the table holds at most keep + batch - 1 rows.  Written without
 *    fsync (it survives a process crash, perhaps not a power loss).
 *  - mismatches: what shadow reads found different (operation, ID, both
 *    values as the writer gives them: the router redacts them first,
 *    redact.h).  Bounded like ops.
 *
 * Listing returns the newest rows first.  Timestamps are Unix ms.
 *
 * Thread safety: like every state call, safe on a shared co_state and from
 * several processes.  Rows and lists are values owned by the caller.
 */
#ifndef CO_AUDIT_H
#define CO_AUDIT_H

#include "state.h"

#include <stddef.h>
#include <stdint.h>

#define CO_AUDIT_KEEP_DEFAULT 100000
#define CO_AUDIT_BATCH_DEFAULT 1000

/* The bounded logs, for co_audit_set_limit(). */
typedef enum { CO_AUDIT_OPS = 0, CO_AUDIT_MISMATCHES = 1 } co_audit_log;

typedef struct co_audit_change {
	int64_t seq;  /* row number, growing */
	int64_t ts;   /* Unix ms */
	char *who;    /* "cli:alice", "reconcile", "serve:admin", ... */
	char *action; /* "flags set", "stage", "rollback", "resume", "auto-rollback" */
	char *detail; /* what changed, e.g. "task_claim: dual 10 -> dual 50"; may be NULL */
	char *why;    /* the reason given; may be NULL */
	char *kind;   /* co_audit_changes_query only (else NULL): the row's kind,
		       * one of CO_AUDIT_KINDS */
} co_audit_change;

typedef struct co_audit_op {
	int64_t seq;
	int64_t ts;         /* 0 on input: now */
	char *op;           /* "task_claim", ... */
	char *id;           /* may be NULL (list operations) */
	char *mode;         /* "git", "shadow", "dual", "etcd" */
	char *primary;      /* "git" | "etcd" */
	char *outcome;      /* "ok", "conflict", "not_found", "unavailable", ... */
	int64_t latency_us;
	char *error;        /* NULL on success */
} co_audit_op;

typedef struct co_audit_mismatch {
	int64_t seq;
	int64_t ts;
	char *op;
	char *id;
	char *git_value;  /* JSON, NULL when git had no record */
	char *etcd_value; /* JSON, NULL when etcd had no record */
} co_audit_mismatch;

/* Lists own their rows.  Zero-initialise before use. */
typedef struct co_audit_change_list {
	co_audit_change **items;
	size_t n, cap;
} co_audit_change_list;

typedef struct co_audit_op_list {
	co_audit_op **items;
	size_t n, cap;
} co_audit_op_list;

typedef struct co_audit_mismatch_list {
	co_audit_mismatch **items;
	size_t n, cap;
} co_audit_mismatch_list;

/* Free one row (NULL is fine); free a list's rows and reset it to empty. */
void co_audit_change_free(co_audit_change *c);
void co_audit_op_free(co_audit_op *o);
void co_audit_mismatch_free(co_audit_mismatch *m);
void co_audit_change_list_clear(co_audit_change_list *l);
void co_audit_op_list_clear(co_audit_op_list *l);
void co_audit_mismatch_list_clear(co_audit_mismatch_list *l);

/*
 * Record a flag change or trip, durably, stamped now.  `who` and `action`
 * are required (CO_EINVAL); detail and why may be NULL.  CO_EUNAVAIL, CO_EIO.
 */
int co_audit_change_add(co_state *st, const char *who, const char *action,
			const char *detail, const char *why);

/*
 * Record that the go/no-go gate refused a change: action "gate refused",
 * who `who`, detail `what` (the change asked for), why this thread's last
 * error message (the refusal).  Call it right after the refusal; the
 * refusal's message is left as the thread's last error whatever happens
 * here, so the caller returns it unchanged.  A failed audit write is
 * reported on stderr only: the refusal is what the caller must answer.
 */
void co_audit_gate_refused(co_state *st, const char *who, const char *what);

/*
 * Record `n` routed operations in one transaction (batch them when you
 * can: one lock and one commit for all).  `op` and `outcome` of each are
 * required (CO_EINVAL, nothing written); ts 0 means now; seq is ignored.
 * Trims the log to its bound.  CO_EUNAVAIL, CO_EIO.
 */
int co_audit_ops_add(co_state *st, const co_audit_op *ops, size_t n);

/* One routed operation: co_audit_ops_add(st, op, 1). */
int co_audit_op_add(co_state *st, const co_audit_op *op);

/*
 * Record a shadow-read mismatch, stamped now.  `op` required (CO_EINVAL);
 * the values may be NULL (absent in that store).  Trims to its bound.
 */
int co_audit_mismatch_add(co_state *st, const char *op, const char *id,
			  const char *git_value, const char *etcd_value);

/*
 * The newest `n` rows of a log, newest first, appended to *out on success.
 * CO_EIO, CO_ENOMEM.
 */
int co_audit_changes_latest(co_audit_change_list *out, co_state *st, size_t n);
int co_audit_ops_latest(co_audit_op_list *out, co_state *st, size_t n);
int co_audit_mismatches_latest(co_audit_mismatch_list *out, co_state *st, size_t n);

/*
 * Shadow quality since `since_ms` (Unix ms): how many reads were routed in
 * shadow (task_get, task_list, swarm_get, swarm_list: the ones compared)
 * and how many mismatches were recorded.  From the bounded logs, so over
 * a window longer than they keep it counts what they still hold.
 * CO_EIO.
 */
int co_audit_shadow_counts(int64_t *reads, int64_t *mismatches, co_state *st,
			   int64_t since_ms);

/*
 * The shadow reads of co_audit_shadow_counts split by operation (indexed
 * by co_op, flags.h; other ops 0), so that a caller can tell how many of
 * them were compared under sampling (co_shadow_compared, shadow.h).  CO_EIO.
 */
int co_audit_shadow_reads_by_op(int64_t reads[], size_t n_ops, co_state *st,
				int64_t since_ms);

/*
 * The kinds of change rows, from their action (what `cutover audit --kind`
 * takes): trip (rollback, auto-rollback: the kill switch pulled by hand, by
 * reconciliation or by a trigger), resume, gate (a change the go/no-go gate
 * refused; as a filter also the changes forced past it), flags (stage,
 * flags set), rollout, reconcile (admin runs, repairs), store (a store's
 * circuit breaker), swarm (tokens), webhook (deliveries given up), other.
 */
#define CO_AUDIT_KINDS                                                                   \
	"trip, resume, gate, flags, rollout, reconcile, store, swarm, webhook, other"

/* 1 if `kind` is one of CO_AUDIT_KINDS. */
int co_audit_kind_valid(const char *kind);

/* What co_audit_changes_query returns.  Zero fields mean "no bound". */
typedef struct co_audit_filter {
	int64_t since_ms; /* rows with ts >= since_ms (0: any) */
	int64_t until_ms; /* rows with ts <= until_ms (0: any) */
	const char *op;	  /* rows whose detail names this operation, and the
			   * kill switch's trips and resumes (they move every
			   * operation); NULL: any */
	const char *kind; /* one of CO_AUDIT_KINDS (CO_EINVAL otherwise); NULL: any */
	int64_t cursor;	  /* 0: from the first row in the order; else the
			   * next_cursor of the page before */
	size_t limit;	  /* rows per page, >= 1 (CO_EINVAL) */
	int newest_first; /* 0: oldest first (ascending seq), 1: newest first */
} co_audit_filter;

/*
 * One page of the flag-change trail matching *f, appended to *out with each
 * row's kind set.  *next_cursor is what to pass as f->cursor for the next
 * page, 0 when this page is the last.  Rows are ordered by seq, so paging
 * returns every matching row exactly once even while rows are added (new
 * rows land at the end of an oldest-first walk).  CO_EINVAL (bad kind or
 * limit), CO_EIO, CO_ENOMEM.
 */
int co_audit_changes_query(co_audit_change_list *out, int64_t *next_cursor, co_state *st,
			   const co_audit_filter *f);

/*
 * A point in time as an operator writes it, for --since/--until and the
 * admin API: RFC 3339 ("2026-12-05T18:00:00Z", "...T19:00:00.250+01:00"),
 * Unix ms digits, or a duration before `now_ms` ("30s", "10m", "2h", "1d").
 * Into *out_ms (Unix ms).  CO_EINVAL naming the value otherwise.
 */
int co_audit_parse_time(int64_t *out_ms, const char *s, int64_t now_ms);

/* "2026-12-05T18:00:00.250Z" (UTC, ms) of a Unix-ms time into buf. */
void co_audit_format_time(char *buf, size_t len, int64_t ms);

/*
 * A page as JSON text into *out (malloc'd, the caller frees):
 * {"changes":[{"seq","time","ts_ms","who","action","kind","detail","why"}],
 *  "next_cursor":N|null,"order":"oldest_first"|"newest_first"}, absent
 * fields null.  One shape for `cutover --json audit` and the admin API.
 * CO_ENOMEM.
 */
int co_audit_page_json(char **out, const co_audit_change_list *l, int64_t next_cursor,
		       int newest_first);

/*
 * Bound a log for this co_state's writes: keep the newest `keep` rows,
 * trimming whenever a row number is a multiple of `batch`.  Both >= 1
 * (CO_EINVAL).  Takes effect at the next insert.
 */
int co_audit_set_limit(co_state *st, co_audit_log log, int64_t keep, int64_t batch);

#endif
