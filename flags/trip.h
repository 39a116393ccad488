/*
 * trip.h - pull the kill switch from code that decides on its own: one
 * function for every automatic trip (the reconciler's failing run, the
 * live-signal triggers of router/triggers.h), so that they cannot differ in
 * how they lock, what they do with a broken flags file, and what they
 * record.
 *
 * `cutover rollback` trips through it too, after its drain.  Not here:
 * the admin API's rollback (server.c), which commits through the server's
 * own audit path with the same primitives (co_flags_lock_for_kill,
 * co_flags_save_kill).
 */
#ifndef CO_FLAGS_TRIP_H
#define CO_FLAGS_TRIP_H

#include "flags.h"

typedef struct co_state co_state;

/*
 * Pull the kill switch in the flags file at `path` with `reason` and audit
 * it (co_audit_change_add: who `who`, action `action`, what the switch
 * changed plus `figures` (may be NULL) as detail, why `reason`) in `st`
 * (may be NULL: no audit).
 *
 * Under the flags lock from load to save (co_flags_lock_for_kill: a writer
 * stuck holding it does not hold the trip up; a warning naming it goes to
 * stderr).  A file that does not parse does not stop the switch: it is
 * copied to PATH.malformed (0600) and the switch is pulled over
 * `fallback` (the last good flags a router runs on), or over the defaults
 * (every operation git) when `fallback` is NULL.  A switch already on keeps its first
 * reason (it explains the state); the trip is audited either way, and
 * *was_on (may be NULL) says which happened.
 *
 * 0 on success.  Errors (message prefixed "kill switch not tripped: " or,
 * when only the audit failed, "kill switch tripped, audit not written: "):
 * CO_EIO, CO_ENOMEM, CO_EINVAL.  Thread-safe.
 */
int co_flags_trip(const char *path, const char *who, const char *action,
		  const char *reason, const char *figures, co_state *st,
		  const co_flags *fallback, int *was_on);

/*
 * co_flags_trip() after `cutover complete` (flags completed.on): git is no
 * longer written and is stale, so handing it the decisions again is
 * refused, CO_ECONFLICT ("kill switch not tripped: the cutover was
 * completed at T by W ..."), nothing saved and nothing audited: every
 * automatic trip (reconciler, triggers) stops there.  With `force` (an
 * operator's `cutover rollback --force`) the switch is pulled anyway and
 * the audit detail says it was forced past the completion.
 */
int co_flags_trip_forced(const char *path, const char *who, const char *action,
			 const char *reason, const char *figures, co_state *st,
			 const co_flags *fallback, int *was_on, int force);

#endif
