/*
 * flags.h - the cutover feature flags (DESIGN §4): per-operation mode and
 * etcd percentage, a default, the kill switch; YAML load/validate/save, the
 * routing decision for one operation on one ID.  Hot reload: watcher.h.
 *
 * The file (written by co_flags_save, read in block or flow style):
 *
 *	kill_switch: false
 *	kill_reason: ""
 *	updated_at: "2026-11-22T10:00:00Z"     (optional metadata)
 *	updated_by: "alice"                    (optional metadata)
 *	default: {mode: git, etcd_percent: 0}
 *	operations:
 *	  task_claim: {mode: dual, etcd_percent: 10}
 *	mirror: sync                           (optional; default async)
 *	completed: {at: "2026-12-05T10:00:00Z", by: "alice", reason: "done"}
 *	                                       (optional: `cutover complete`)
 *
 * Operations not listed under `operations` follow `default`.  A missing
 * file means all defaults (every operation in mode git, kill switch off).
 *
 * Routing (co_flags_route), per DESIGN §4:
 *
 *	mode        primary                      secondary
 *	git         git                          none
 *	shadow      git                          etcd (mirror; reads compared)
 *	dual + N    etcd if bucket(id) < N,      the other store, through the
 *	            else git                     outbox (asynchronous)
 *	etcd        etcd                         git (asynchronous, via outbox);
 *	                                         none once `completed`
 *
 * In dual and etcd the secondary is mirrored through the durable outbox in
 * batches, so an etcd-decided write never waits for a git commit and a
 * git-decided one never waits for etcd; `mirror: sync` makes the mirror
 * synchronous instead, for operators whose legacy readers must see a write
 * in git before it is acknowledged (every write then waits for both
 * stores).  Shadow (and the kill switch) mirrors etcd synchronously: its
 * reads compare the two stores.
 *	kill switch every operation as shadow: git primary, etcd mirrored
 *
 * Operations without a single ID (task_list, swarm_list, watch; or any op
 * called with id NULL): in dual mode the primary is etcd only at N == 100
 * and git otherwise (N == 0 is plain git); for 0 < N < 100 the route has
 * `split` set: each store is primary for some IDs, so the router must read
 * both and keep, per ID, the record (or event) from the store that
 * co_flags_route(op, that id) names as primary.  Other modes are
 * ID-independent.
 *
 * co_flags is a plain value: copy it with `=`, no allocation inside, so
 * that a snapshot can be taken under a lock in a few hundred nanoseconds.
 * Functions on a co_flags are thread-safe as long as no other thread
 * modifies the same object; co_flags_watcher is thread-safe throughout.
 */
#ifndef CO_FLAGS_H
#define CO_FLAGS_H

#include <stddef.h>
#include <stdint.h>

/* The operations of DESIGN §3, in the order used for stable output. */
typedef enum co_op {
	CO_OP_TASK_CREATE = 0,
	CO_OP_TASK_GET,
	CO_OP_TASK_LIST,
	CO_OP_TASK_CLAIM,
	CO_OP_TASK_RELEASE,
	CO_OP_TASK_RENEW,
	CO_OP_SWARM_REGISTER,
	CO_OP_SWARM_GET,
	CO_OP_SWARM_LIST,
	CO_OP_SWARM_REMOVE,
	CO_OP_WATCH,
	CO_OP__COUNT
} co_op;

/* Where an operation goes.  Ordered from git towards etcd. */
typedef enum co_mode {
	CO_MODE_GIT = 0,
	CO_MODE_SHADOW,
	CO_MODE_DUAL,
	CO_MODE_ETCD,
	CO_MODE__COUNT
} co_mode;

/* A store in a route. */
typedef enum co_side { CO_SIDE_NONE = 0, CO_SIDE_GIT, CO_SIDE_ETCD } co_side;

/* Longest kill reason kept (bytes, without the NUL); longer ones are cut. */
#define CO_FLAGS_REASON_MAX 511
/* Longest updated_by / updated_at kept. */
#define CO_FLAGS_WHO_MAX 127
#define CO_FLAGS_WHEN_MAX 63
/* Largest flags file accepted by the loader. */
#define CO_FLAGS_FILE_MAX (1024 * 1024)

/* One operation's setting.  etcd_percent (0..100) matters in dual mode. */
typedef struct co_op_flags {
	co_mode mode;
	int etcd_percent;
} co_op_flags;

/*
 * The finish line (`cutover complete`): once set, git is no longer kept
 * current.  co_flags_route() then gives an etcd-decided operation no git
 * secondary (nothing is mirrored or queued to git), the go/no-go gate
 * refuses moves back (flags/gate.h) and an automatic kill-switch trip is
 * refused (flags/trip.h), unless forced.  `cutover cancel --force` clears it.
 */
typedef struct co_completion {
	int on;						/* 0: not completed */
	char at[CO_FLAGS_WHEN_MAX + 1];			/* RFC 3339 UTC */
	char by[CO_FLAGS_WHO_MAX + 1];			/* who */
	char reason[CO_FLAGS_REASON_MAX + 1];		/* why ("" if none) */
} co_completion;

typedef struct co_flags {
	int kill_switch; /* 0 or 1 */
	char kill_reason[CO_FLAGS_REASON_MAX + 1];
	char updated_at[CO_FLAGS_WHEN_MAX + 1]; /* "" if absent */
	char updated_by[CO_FLAGS_WHO_MAX + 1];	/* "" if absent */
	co_op_flags def;			/* `default` */
	co_op_flags ops[CO_OP__COUNT];		/* valid where has_op[op] */
	unsigned char has_op[CO_OP__COUNT];	/* listed under `operations` */
	int mirror_sync; /* `mirror: sync`: git mirrored synchronously (default 0) */
	co_completion completed; /* `completed:`: the cutover is finished */
	/*
	 * `fleet_epoch:` (fleet mode only): the etcd mod_revision of the
	 * fleet's flags document this file mirrors (router/fleet.h), 0 in
	 * file mode.  A router fences its etcd decisions on it
	 * (co_store_fence); never written into etcd's document itself.
	 */
	int64_t fleet_epoch;
} co_flags;

/* The decision for one operation (on one ID). */
typedef struct co_route {
	co_op op;
	co_mode mode;	     /* effective: CO_MODE_SHADOW while the kill switch is on */
	co_mode configured;  /* what the flags say for op, kill switch aside */
	int etcd_percent;    /* configured percent (0..100) */
	co_side primary;     /* decides: CAS, reads served from it */
	co_side secondary;   /* mirrors the primary's outcome, or CO_SIDE_NONE */
	int secondary_async; /* 1 in dual and etcd: the secondary is fed via the outbox */
	int compare_reads;   /* 1 in shadow (and kill switch): read both, compare */
	int kill_switch;     /* 1 if the kill switch forced this route */
	int bucket;	     /* the ID's bucket 0..99, or -1 without an ID */
	int split;	     /* no ID and 0<N<100 in dual: merge both stores */
	int64_t epoch;	     /* the flags' fleet_epoch (0: file mode, no fence) */
} co_route;

/* "task_claim", ... ; "?" for a value out of range. */
const char *co_op_name(co_op op);

/* Parse an operation name.  0, or CO_EINVAL "unknown operation \"x\"". */
int co_op_parse(co_op *out, const char *name);

/* "git", "shadow", "dual", "etcd"; "?" out of range. */
const char *co_mode_name(co_mode mode);

/* Parse a mode.  0, or CO_EINVAL "unknown mode \"x\" (git, shadow, dual, etcd)". */
int co_mode_parse(co_mode *out, const char *name);

/* "none", "git", "etcd". */
const char *co_side_name(co_side side);

/* Set `f` to the defaults: every operation git, percent 0, kill switch off. */
void co_flags_init(co_flags *f);

/*
 * Parse flags from YAML text (`len` bytes; block or flow style).  `name`
 * (e.g. the file name) prefixes messages.  Empty (or NULL) text gives the defaults.
 * Errors, all CO_EINVAL with "NAME:LINE: ...": malformed YAML (libyaml's
 * problem), top level not a mapping, unknown top-level key, duplicate key,
 * unknown operation, unknown mode, missing mode, etcd_percent not an
 * integer or outside 0..100, kill_switch not true/false, a string where a
 * mapping belongs (or vice versa); CO_ETOOBIG for a kill_reason/updated_*
 * over its maximum.  *out is written only on success.  Thread-safe.
 */
int co_flags_parse(co_flags *out, const char *text, size_t len, const char *name);

/*
 * Load the flags file at `path`.  A missing file gives the defaults (0).
 * Errors: as co_flags_parse with the path as NAME; CO_EIO if the file
 * exists but cannot be read; CO_ETOOBIG over CO_FLAGS_FILE_MAX.  *out is
 * written only on success.  Thread-safe.
 */
int co_flags_load(co_flags *out, const char *path);

/*
 * The YAML text of `f` (keys in a fixed order, operations in co_op order,
 * only overridden operations listed) in *out, malloc'd, owned by the caller
 * (free()).  co_flags_parse() of it gives back `f`.  CO_ENOMEM, or CO_EINVAL
 * if `f` holds an invalid mode/percent.  Thread-safe.
 */
int co_flags_format(char **out, const co_flags *f);

/*
 * Write `f` to `path` atomically: PATH.tmp.<pid>.<n> created with mode
 * 0600, written, fsync'd, renamed over PATH, then the directory fsync'd.
 * Readers (and the watcher) see the old file or the new one, never a
 * partial one.  On failure the temp file is removed and PATH is untouched.
 * Errors: CO_EIO (message names the path and errno text), CO_EINVAL for
 * invalid flags, CO_ENOMEM.  Thread-safe; concurrent saves to one path are
 * each atomic, the last rename wins.  Does not record an audit entry: the
 * caller (CLI, admin API) does, with co_flags_diff() for the "what".
 */
int co_flags_save(const co_flags *f, const char *path);

/*
 * co_flags_save() of `to` only if the file still holds `expect` (what the
 * caller loaded, under its lock): a kill switch pulled meanwhile without
 * the lock (co_flags_lock_for_kill) is never saved over.  CO_ECONFLICT,
 * naming what changed and nothing saved, if the file differs; the errors
 * of co_flags_load() and co_flags_save().
 */
int co_flags_save_if(const co_flags *expect, const co_flags *to, const char *path);

/*
 * Save the kill switch: `to` is `from` (what the caller loaded) with the
 * switch pulled.  It always lands, and it never undoes another writer's
 * change: saved with co_flags_save_if(from); if the file changed meanwhile,
 * the switch is pulled over what it holds now (a few tries, then over
 * whatever is there); if the file does not parse, over it.  If the switch
 * is already on, that is kept (its reason too).  *to becomes what the file
 * holds after.  CO_EIO / CO_ENOMEM from the save.
 */
int co_flags_save_kill(co_flags *to, const co_flags *from, const char *path);

/*
 * Writers of one flags file take turns.  co_flags_lock() takes an exclusive
 * lock (flock) on PATH.lock, created with mode 0600 beside the file (PATH
 * itself is replaced by every save, so it cannot carry the lock; a lock
 * file of this user's with another mode is fchmod'ed to 0600), waiting
 * up to CO_FLAGS_LOCK_WAIT_MS.  Hold it from the load to the save of a
 * read-modify-write: then two writers (an operator's `cutover stage`, the
 * reconciler pulling the kill switch, the admin API) never lose each
 * other's change.  Readers need no lock: saves are atomic.  Returns the
 * lock's descriptor (>= 0) for co_flags_unlock(); CO_EUNAVAIL if another
 * writer held the lock all that time, CO_EIO if the lock file cannot be
 * opened (the message names it).  The lock is released if the holder dies.
 */
#define CO_FLAGS_LOCK_WAIT_MS 10000
/* The lock file is PATH followed by this. */
#define CO_FLAGS_LOCK_SUFFIX ".lock"
int co_flags_lock(const char *path);

/*
 * co_flags_lock() waiting at most `wait_ms`.  The holder writes who it is
 * into the lock file ("pid 4242 (cutover) since 2026-11-23T17:59:02Z"), and
 * the CO_EUNAVAIL message quotes it, so a stuck writer can be named.
 */
int co_flags_lock_wait(const char *path, int wait_ms);

/*
 * For whoever pulls the kill switch (rollback, the reconciler's trip, the
 * admin API): the kill switch must never wait on another writer.  Waits
 * at most CO_FLAGS_KILL_WAIT_MS.  0 with *fd the lock, or 0 with *fd -1
 * if a writer still holds it (stuck, stopped): co_error_last() then names
 * that writer, for the caller to warn with, and the caller saves without
 * the lock, with co_flags_save_kill().  That writer does not undo the
 * switch afterwards: every other writer saves with co_flags_save_if(),
 * which checks the file last thing before its rename (one stopped between
 * that check and the rename, an instant, still could), and the switch is
 * pulled over a change that writer made, not instead of it.  Errors (*fd
 * -1): CO_EIO / CO_EINVAL / CO_ENOMEM as co_flags_lock().
 */
#define CO_FLAGS_KILL_WAIT_MS 2000
int co_flags_lock_for_kill(int *fd, const char *path);

/*
 * Who holds the flags lock now, for `cutover status`: 1 and buf filled
 * ("pid 4242 (cutover) since 2026-11-23T17:59:02Z"), 0 if nobody does (buf
 * ""), CO_EIO if the lock file cannot be read.  Takes the lock for an
 * instant when it is free.
 */
int co_flags_lock_holder(char *buf, size_t len, const char *path);

/* Release a lock from co_flags_lock(); a negative fd is ignored. */
void co_flags_unlock(int fd);

/* The effective setting of `op`: its override, or the default. */
co_op_flags co_flags_get(const co_flags *f, co_op op);

/*
 * Override `op` with `mode` and `etcd_percent`.  CO_EINVAL for an op or mode
 * out of range or a percent outside 0..100 (nothing changed then).
 */
int co_flags_set(co_flags *f, co_op op, co_mode mode, int etcd_percent);

/* Set the default (operations without an override).  Errors as co_flags_set. */
int co_flags_set_default(co_flags *f, co_mode mode, int etcd_percent);

/* Remove the override of `op` (it follows the default again). */
void co_flags_clear(co_flags *f, co_op op);

/*
 * Turn the kill switch on (with `reason`, NULL for "") or off (the reason
 * is cleared).  A reason over CO_FLAGS_REASON_MAX bytes is cut at a UTF-8
 * character boundary: pulling the kill switch never fails.
 */
void co_flags_set_kill(co_flags *f, int on, const char *reason);

/*
 * Record who changed the flags and when: `who` (NULL keeps the old value)
 * and `when` (an RFC 3339 string, or NULL for the current UTC time).
 * Values over their maximum are cut.
 */
void co_flags_stamp(co_flags *f, const char *who, const char *when);

/* 1 if `a` and `b` route identically and carry the same metadata, else 0. */
int co_flags_equal(const co_flags *a, const co_flags *b);

/*
 * A one-line human description of what changed from `a` to `b` ("kill_switch
 * false -> true (reason); task_claim dual 10 -> dual 50"), or "no change",
 * written into buf (always NUL-terminated, cut if short).  For audit rows.
 */
void co_flags_diff(char *buf, size_t len, const co_flags *a, const co_flags *b);

/*
 * Mark the cutover completed (`who`, `why` may be NULL; now, UTC) or, with
 * on 0, not completed (the fields cleared).  Values over their maximum are
 * cut.
 */
void co_flags_set_completed(co_flags *f, int on, const char *who, const char *why);

/* 1 if the setting can make etcd a primary (dual above 0, or etcd), else 0. */
int co_op_flags_etcd_capable(co_op_flags s);

/*
 * 1 if some operation can have etcd as its primary under `f` (a dual mode
 * with percent > 0, or etcd mode) and the kill switch is off, else 0.  The
 * legacy-writer gate (DESIGN §4) applies when moving from 0 to 1.
 */
int co_flags_etcd_primary_possible(const co_flags *f);

/*
 * Decide where `op` on `id` goes (see the table at the top).  `id` NULL
 * means an operation without a single ID.  CO_EINVAL if `op` is out of
 * range; then *out is untouched.  Thread-safe, no allocation, a hash of the
 * ID at most: meant to be called on every operation.
 */
int co_flags_route(co_route *out, const co_flags *f, co_op op, const char *id);

#endif
