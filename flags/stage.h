/*
 * stage.h - the rollout stages (DESIGN §4): shorthands that set every
 * operation at once.
 *
 *	stage    every operation            order
 *	git      git                        0
 *	shadow   shadow                     1
 *	10       dual, etcd_percent 10      2
 *	50       dual, etcd_percent 50      3
 *	100      dual, etcd_percent 100     4
 *	etcd     etcd                       5
 *
 * Applying a stage sets `default` and clears every per-operation override;
 * it does not touch the kill switch (rollback/resume do).  The go/no-go
 * gate ("moving forward needs a recent passing reconciliation") is the
 * caller's; co_stage_order() and co_stage_is_forward() tell it which way a
 * change goes.  Everything here is pure: thread-safe on distinct objects.
 */
#ifndef CO_FLAGS_STAGE_H
#define CO_FLAGS_STAGE_H

#include "flags/flags.h"

typedef enum co_stage {
	CO_STAGE_GIT = 0,
	CO_STAGE_SHADOW,
	CO_STAGE_10,
	CO_STAGE_50,
	CO_STAGE_100,
	CO_STAGE_ETCD,
	CO_STAGE_CUSTOM /* flags that are no stage (per-operation overrides differ) */
} co_stage;

/* "git", "shadow", "10", "50", "100", "etcd", "custom"; "?" out of range. */
const char *co_stage_name(co_stage stage);

/*
 * Parse a stage name as given to `cutover stage`: git, shadow, 10, 50, 100,
 * etcd.  "custom" is not a stage one can move to.  0, or CO_EINVAL
 * "unknown stage \"x\" (git, shadow, 10, 50, 100, etcd)".
 */
int co_stage_parse(co_stage *out, const char *name);

/*
 * Set every operation of `f` to `stage` (default set, overrides cleared);
 * percent 0 for git and shadow, 100 for etcd.  Kill switch and metadata
 * untouched.  CO_EINVAL for CO_STAGE_CUSTOM or a value out of range
 * (then `f` is unchanged).
 */
int co_stage_apply(co_flags *f, co_stage stage);

/*
 * The stage `f` is at: the one whose setting every operation has
 * (the percent is compared only in dual mode), or CO_STAGE_CUSTOM.  The kill
 * switch is not considered (it is reported separately).
 */
co_stage co_stage_of(const co_flags *f);

/*
 * Position in the rollout, git 0 < shadow 1 < 10 2 < 50 3 < 100 4 < etcd 5;
 * -1 for CO_STAGE_CUSTOM or a value out of range.
 */
int co_stage_order(co_stage stage);

/*
 * Rank of one operation's setting on the way from git to etcd:
 * git 0, shadow 1, dual N 2+N (2..102), etcd 103.  Works for custom flags.
 */
int co_stage_rank(co_op_flags setting);

/*
 * 1 if going from `from` to `to` moves some operation forward (a higher
 * co_stage_rank), else 0.  This is the test for the go/no-go gate, and it
 * also covers `flags set` and custom flags.  The kill switch is ignored.
 */
int co_stage_is_forward(const co_flags *from, const co_flags *to);

#endif
