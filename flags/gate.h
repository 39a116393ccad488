/*
 * gate.h - the go/no-go gate of `cutover stage` and `cutover flags set`
 * (DESIGN §4).
 *
 * Three rules, all pure logic over what the caller read:
 *
 *  1. Moving forward (co_stage_is_forward: some operation gets a higher
 *     rank) needs a reconciliation run that passed and ended within the
 *     go/no-go window.  No run at all, a failed latest run, a pending_drain
 *     one (acknowledged writes still owed: not a pass) or a stale one
 *     refuses the change.  Waiting for a drain is the caller's
 *     (`cutover stage --wait-drain`): the gate only judges the latest run.
 *  2. A change that lets etcd be a primary where it could not be before
 *     (co_flags_etcd_primary_possible going from 0 to 1, kill switch set
 *     aside) is refused while the git branch holds a commit not made by
 *     cutover within the window: a legacy client and an etcd-primary claim
 *     on one task would make two winners.  The refusal names the commit
 *     (short id) and its author.
 *
 *  3. An operation may not go between `git` and a setting where etcd can
 *     be primary (dual above 0, or etcd) without `shadow` in between, in
 *     either direction.  In git mode nothing reaches etcd, and a router in
 *     git mode pushes no intent (it has no secondary), so while one router
 *     has seen the change and another has not, one can pick a winner in
 *     git and the other in etcd; going forward, etcd is also stale for
 *     every git-mode write.  Shadow mirrors every write and makes every
 *     router push intents.  Forward reads configured modes with the kill
 *     switch set aside (like rule 2); back reads what routers do (the kill
 *     switch routes as shadow, so `rollback`, and a move back made while it
 *     is on, are never refused by this rule).  Checked first: it is the
 *     structural mistake.
 *
 * Reading the runs (runs.h) and walking git (store/git_log.h) is the
 * caller's; this module only decides and explains.  `--force` is the
 * caller's too: it skips the check and records that it did.
 * Thread-safe: no state.
 */
#ifndef CO_FLAGS_GATE_H
#define CO_FLAGS_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/runs.h"
#include "flags/flags.h"

/* A commit on the git branch that cutover did not make. */
typedef struct co_gate_commit {
	const char *short_id; /* "3f2a9c1d0e" */
	const char *author;   /* "Legacy Bot <legacy@example.com>" */
	int64_t time_ms;      /* committer time, Unix ms */
} co_gate_commit;

typedef struct co_gate_input {
	const co_flags *from;	       /* the flags now */
	const co_flags *to;	       /* the flags asked for */
	const co_run *latest;	       /* the latest finished run, or NULL if none */
	int64_t now_ms;		       /* co_state_now_ms() */
	int64_t window_ms;	       /* config go_no_go_window_ms */
	const co_gate_commit *foreign; /* newest first; may be NULL if n_foreign 0 */
	size_t n_foreign;
	const char *foreign_error; /* non-NULL: the commits could not be read (why) */
} co_gate_input;

/* 1 if `to` moves some operation forward from `from` (rule 1 applies). */
int co_gate_needs_run(const co_flags *from, const co_flags *to);

/*
 * 1 if `to` lets etcd be a primary where `from` did not, the kill switch of
 * both set aside (rule 2 applies: the caller should then read the foreign
 * commits within the window).
 */
int co_gate_needs_legacy_check(const co_flags *from, const co_flags *to);

/*
 * The first operation (co_op) that `to` moves between git and a setting
 * where etcd can be primary without shadow in between (rule 3), or -1;
 * *backward says which way (1: towards git).
 */
int co_gate_skipped_shadow(int *backward, const co_flags *from, const co_flags *to);

/*
 * Rule 3 alone (it needs no inputs beyond the flags): 0, or CO_ECONFLICT
 * with the message co_gate_check() would give.  For callers without the
 * runs and the git log (a server started without a gate).
 */
int co_gate_check_path(const co_flags *from, const co_flags *to);

/*
 * Decide.  0 if the change may go ahead (also when no rule applies).
 * CO_ECONFLICT with a message an operator can act on otherwise (every rule
 * that refuses is told, joined by "; ", so that --force records them all):
 * "go/no-go: task_claim would go from git straight to dual 10: ... go
 * through shadow first ..." (or "from dual 10 straight to git"),
 * "go/no-go: no reconciliation run has finished ...", "... run 7 failed ...",
 * "... run 7 is pending_drain: the outbox still owed 3 acknowledged writes
 * (etcd 3, git 0; oldest task T1, owed to etcd, 4s old) ...",
 * "... run 7 passed 2h ago, older than the go/no-go window of 1h ...",
 * "go/no-go: legacy writer: commit 3f2a9c1d0e by Legacy Bot <...> 4m ago,
 * within the go/no-go window of 1h ...", or, when the commits could not
 * be read, "go/no-go: cannot check for legacy writers: WHY".  Every
 * refusal ends with "(use --force to override)".  CO_EINVAL for NULL
 * from/to or a negative window.
 */
int co_gate_check(const co_gate_input *in);

#endif
