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
 * Bound a log for this co_state's writes: keep the newest `keep` rows,
 * trimming whenever a row number is a multiple of `batch`.  Both >= 1
 * (CO_EINVAL).  Takes effect at the next insert.
 */
int co_audit_set_limit(co_state *st, co_audit_log log, int64_t keep, int64_t batch);

#endif
