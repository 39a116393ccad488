/*
 * gate.h - the go/no-go gate of `cutover stage` and `cutover flags set`
 * (DESIGN §4).
 *
 * Five rules, all pure logic over what the caller read:
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
 *  4. Pre-switch checks, for a change that raises etcd's share as a
 *     primary for some operation (co_gate_raises_etcd: dual N -> dual M
 *     with M > N, or to etcd; kill switch set aside): the outbox is within
 *     its bounds (depth and oldest age, each store), both stores answer,
 *     etcd has a leader and no alarm (NOSPACE, CORRUPT), and the shadow
 *     mismatch rate within the window is under its bound.
 *  5. The way back, for the same changes: git takes writes (it answered,
 *     and the repo is writable by this process) and the git-bound drain
 *     flows (no entry owed to git is failing).  A step that makes etcd
 *     primary for more IDs is only safe while the kill switch can hand
 *     them back to git.
 *
 *  7. In fleet mode (config fleet.enabled, router/fleet.h), a change of
 *     the routing (not the kill switch, never refused here) is refused
 *     while a live router routes by an older flags epoch than etcd holds,
 *     or has an outbox older than the bound: the change would stack on one
 *     not every router has.  The caller reads the routers (co_fleet_gate)
 *     and passes the refusal, naming the router, in fleet_error.
 *
 *  6. After `cutover complete` (from->completed.on), git is no longer kept
 *     current: a change that moves some operation away from etcd mode,
 *     pulls the kill switch, or clears the completion is refused (git
 *     would serve stale data).  Checked before everything else.
 *
 * Reading the runs (runs.h), walking git (store/git_log.h) and asking the
 * stores and the outbox for rules 4 and 5 is the caller's; this module only decides and explains.  `--force` is the
 * caller's too: it skips the check and records that it did.
 * Thread-safe: no state.
 */
#ifndef CO_FLAGS_GATE_H
#define CO_FLAGS_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/outbox.h"
#include "core/runs.h"
#include "flags/flags.h"

/* A commit on the git branch that cutover did not make. */
typedef struct co_gate_commit {
	const char *short_id; /* "3f2a9c1d0e" */
	const char *author;   /* "Legacy Bot <legacy@example.com>" */
	int64_t time_ms;      /* committer time, Unix ms */
} co_gate_commit;

/*
 * What the pre-switch checks (rules 4 and 5) judge, read by the caller
 * from the stores and the state database.  Strings are borrowed.
 */
typedef struct co_gate_checks {
	const char *git_error;	 /* NULL: git answered and is writable; else why not */
	const char *etcd_error;	 /* NULL: etcd answered its status; else why not */
	uint64_t etcd_leader;	 /* 0: no leader */
	const char *etcd_alarms; /* "" or NULL: none; "NOSPACE, ..." */
	co_outbox_stats owed_git, owed_etcd;
	const char *outbox_error;   /* NULL: owed_* were read; else why not */
	int64_t shadow_reads;	    /* shadow-compared reads within the window */
	int64_t shadow_mismatches;  /* mismatches recorded within the window */
	int64_t max_outbox_depth;   /* bounds (config gate.*) */
	int64_t max_outbox_age_ms;
	double max_mismatch_ratio;
} co_gate_checks;

typedef struct co_gate_input {
	const co_flags *from;	       /* the flags now */
	const co_flags *to;	       /* the flags asked for */
	const co_run *latest;	       /* the latest finished run, or NULL if none */
	int64_t now_ms;		       /* co_state_now_ms() */
	int64_t window_ms;	       /* config go_no_go_window_ms */
	const co_gate_commit *foreign; /* newest first; may be NULL if n_foreign 0 */
	size_t n_foreign;
	const char *foreign_error; /* non-NULL: the commits could not be read (why) */
	/* Rules 4 and 5; NULL: not checked (a caller without the stores says
	 * so: co_gate_evaluate() reports them as not checked). */
	const co_gate_checks *checks;
	/* Rule 7: 1 in fleet mode (the caller read the routers); fleet_error
	 * NULL when every live router is current, else why not (borrowed). */
	int fleet;
	const char *fleet_error;
} co_gate_input;

/* The rules co_gate_evaluate() reports on, in its order. */
enum {
	CO_GATE_COMPLETED, /* rule 6 */
	CO_GATE_PATH,	   /* rule 3 */
	CO_GATE_RUN,	   /* rule 1 */
	CO_GATE_LEGACY,	   /* rule 2 */
	CO_GATE_OUTBOX,	   /* rule 4 */
	CO_GATE_STORES,	   /* rule 4 */
	CO_GATE_ETCD,	   /* rule 4: leader, alarms */
	CO_GATE_SHADOW,	   /* rule 4: mismatch rate */
	CO_GATE_GIT_BACK,  /* rule 5: git writable */
	CO_GATE_DRAIN_BACK, /* rule 5: the git-bound drain */
	CO_GATE_FLEET,	    /* rule 7: every router on the current epoch */
	CO_GATE__COUNT
};

/* One rule's verdict on a change. */
typedef struct co_gate_verdict {
	const char *rule; /* "path", "reconciliation", ... (static) */
	int applies;	  /* 0: the change does not need this rule */
	int checked;	  /* 0: it applies but its input was not read */
	int ok;		  /* 1: passes (or does not apply) */
	char why[600];	  /* the refusal, or what was seen when it passes */
} co_gate_verdict;

/*
 * 1 if `to` makes etcd the primary for a larger share of some operation's
 * IDs than `from` (kill switch of both set aside): rules 4 and 5 apply.
 */
int co_gate_raises_etcd(const co_flags *from, const co_flags *to);

/*
 * Every rule's verdict on the change, for `--dry-run` and for
 * co_gate_check(): v[CO_GATE_PATH..CO_GATE__COUNT-1].  Returns how many
 * rules refuse (>= 0), or CO_EINVAL for NULL from/to or a negative
 * window.  Sets no error message.
 */
int co_gate_evaluate(co_gate_verdict v[CO_GATE__COUNT], const co_gate_input *in);

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
 * Rule 6 alone: 0, or CO_ECONFLICT "go/no-go: cutover completed at T by W
 * (why): git is no longer written and is stale; OP would go from etcd to
 * MODE ... (use --force to override)".
 */
int co_gate_check_completed(const co_flags *from, const co_flags *to);

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
