/*
 * migrate.h - backfill between the stores, following legacy commits, and
 * importing the legacy task board and swarm registrations (DESIGN §6).
 *
 * Backfill copies every record that is missing or older (by rev) on the
 * target and leaves the others alone, so it is idempotent: a second run
 * writes nothing (no etcd revision, no git commit).  Writes are batched
 * (etcd txns of up to 64 puts, one git commit per batch), each a
 * compare-and-swap on what was read, and progress is checkpointed in the
 * state database so that an interrupted run resumes after the last batch
 * done.  Records with the same rev but different content on both sides are
 * never overwritten: they are divergences, counted and left to reconcile.
 *
 * Nothing here prints: progress and the follower's events go to callbacks.
 * Objects are not shared between threads; one migration runs per call.
 */
#ifndef CO_MIGRATE_H
#define CO_MIGRATE_H

#include "../src/core/record.h"
#include "../src/store/etcd_store.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	CO_MIGRATE_GIT_TO_ETCD = 0,
	CO_MIGRATE_ETCD_TO_GIT = 1,
} co_migrate_direction;

/* Progress: `done` of `total` records handled in phase ("write", "verify"). */
typedef void (*co_migrate_progress_fn)(void *ud, const char *phase, size_t done,
				       size_t total);
/* One human-readable line (the follower's "mirrored ..." lines, notices). */
typedef void (*co_migrate_log_fn)(void *ud, const char *line);

typedef struct co_migrate_opts {
	co_migrate_direction direction;
	int dry_run;
	const char *git_repo;   /* local bare repository path */
	const char *git_branch; /* default "main" */
	const co_etcd_opts *etcd;
	const char *state_dir;  /* checkpoints; NULL: none (no resume) */
	size_t git_batch;       /* records per git commit; default 2000 */
	int follow_poll_ms;     /* follower's poll interval; default 200 */
	co_migrate_progress_fn progress;
	co_migrate_log_fn log;
	void *ud;
} co_migrate_opts;

#define CO_MIGRATE_OPTS_INIT                                                            \
	{ CO_MIGRATE_GIT_TO_ETCD, 0, NULL, "main", NULL, NULL, 2000, 200, NULL, NULL, NULL }

typedef struct co_migrate_stats {
	size_t source;       /* records read from the source */
	size_t target;       /* records on the target before the run */
	size_t to_write;     /* missing or older on the target */
	size_t written;      /* actually written (0 on a dry run) */
	size_t equal;        /* already equal: left untouched */
	size_t target_newer; /* the target holds a higher rev: left untouched */
	size_t conflicting;  /* same rev, different content: left for reconcile */
	size_t resumed;      /* skipped because the checkpoint covered them */
	size_t unreadable;   /* source files that are not records (git) */
	size_t batches;      /* txns or commits made */
	size_t verified_equal, verified_total; /* after the run: equal / source */
	char resumed_after[200]; /* "task/P0.1" when resuming, else "" */
} co_migrate_stats;

/* Checkpoint names in the state database. */
#define CO_MIGRATE_CKPT_GIT_TO_ETCD "migrate.git-to-etcd"
#define CO_MIGRATE_CKPT_ETCD_TO_GIT "migrate.etcd-to-git"
#define CO_MIGRATE_CKPT_FOLLOW "migrate.follow.commit"

/*
 * Backfill in o->direction.  Fills *stats (also on failure, as far as it
 * got).  On a dry run nothing is written anywhere, the checkpoint included.
 * Errors: CO_EINVAL (bad options, a stored value that is not a record),
 * CO_EUNAVAIL (a store or the state db), CO_ENOMEM.
 */
int co_migrate_backfill(co_migrate_stats *stats, const co_migrate_opts *o);

/*
 * Follow the git branch and mirror every commit not made by cutover into
 * etcd until *stop becomes non-zero.  For each changed record file of such
 * a commit the record is written to etcd with rev = max(git rev, etcd rev)
 * + 1 and written back to git with that rev (a cutover commit, only if the
 * file still holds what the legacy commit wrote), so that both stores agree
 * and hold a rev past both; a deleted file deletes the record in etcd.  A
 * commit whose content etcd already holds (after a restart) is not written
 * again.  The last commit handled is checkpointed (CO_MIGRATE_CKPT_FOLLOW);
 * without a checkpoint, following starts at the current head.  Every
 * mirrored change is reported through o->log.  Errors as above.
 */
int co_migrate_follow(const co_migrate_opts *o, volatile sig_atomic_t *stop);

/*
 * Import records (tasks from a board, swarms from registrations) into the
 * git store in one commit per o->git_batch records.  A record whose content
 * equals what git holds (ignoring rev and timestamps) is left alone; others
 * are written at rev + 1 (1 when new), created_at/registered_at kept from
 * the stored record or set to now.  stats->written says how many changed.
 * `recs` is not taken.  Errors as above.
 */
int co_migrate_import(co_migrate_stats *stats, const co_migrate_opts *o,
		      const co_record_list *recs);

/*
 * Read legacy swarm registrations: every *.json, *.yaml and *.yml file in
 * `dir` (sorted by name) holding an object with "id" (or "swarm_id"),
 * optional "capabilities" (a list, or a comma-separated string) and
 * "metadata" (an object); other keys go into metadata.  Good files go to
 * *out as swarm records (rev 1, no timestamps); each bad one adds a line
 * "FILE: reason" to *bad (caller frees with co_strv_clear).
 * Errors: CO_EIO if the directory cannot be read, CO_ENOMEM.
 */
int co_migrate_read_swarms(co_record_list *out, co_strv *bad, const char *dir);

#endif
