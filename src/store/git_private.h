/*
 * git_private.h - what the parts of the git store share, and nothing else
 * may use: the store's state (co_git_store), a watch's (gs_watch), and
 * each part's functions, named co_git__*.  The parts:
 *
 *   git_store.c   libgit2's lifetime, the repository pool, remotes (fetch
 *                 into the mirror, push from it), the backend table
 *   git_read.c    head, get, list, scan, blobs by id
 *   git_index.c   the head's file index, shared by every get
 *   git_write.c   one-file and many-file commits published by CAS
 *   git_watch.c   the polling watch
 *   git_stream.c  the socket stream with a bound on every network call
 *
 * Errors are the store's (core/error.h), with libgit2's text appended
 * (co_git__fail); returned strings and records are the caller's to free.
 */
#ifndef CO_STORE_GIT_PRIVATE_H
#define CO_STORE_GIT_PRIVATE_H

#include "git_store.h"
#include "store.h"
#include "store_backend.h"

#include <git2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define GS_POOL_MAX 16
#define GS_SLICE_MS 20
/* libgit2's object caches, all repositories together (git_store.c). */
#define CO_GIT_CACHE_MAX (2 << 20)

typedef struct co_git_store {
	char *repo; /* as given: path or URL (co_store_describe) */
	char *path; /* the bare repo opened: the repo, or the mirror of a URL */
	char *url;  /* NULL for a local path */
	char *branch;
	char *refname; /* refs/heads/<branch> */
	char *readref; /* ref read for the head: refname, or the mirror's copy */
	char *pushref; /* URL: temp ref naming the commit to push */
	int poll_interval_ms;
	int max_retries;
	int remote_timeout_ms; /* silence bound on the remote (git_stream.c) */

	pthread_mutex_t pool_mu;
	git_repository *pool[GS_POOL_MAX];
	size_t npool;

	/* URL only: fetch and fetch+commit+push are serialised per process
	 * (the remote "lock": remote_busy, taken and given back with
	 * co_git__remote_lock/unlock); other processes are kept honest by the
	 * server's ref check.  remote_mu guards the fields below it and is
	 * held only for a few assignments, never across the network. */
	pthread_mutex_t remote_mu;
	pthread_cond_t remote_cv; /* the lock was given back, or a call failed */
	int remote_busy;
	/* Fetches and pushes that found the server silent, and what the last
	 * said: callers that queued behind one fail at once instead of
	 * waiting out a bound each, one after another. */
	unsigned long long net_fails;
	char net_fail_msg[384];

	/* Path only: this process's writers take turns, first come first
	 * served (co_git__write_turn/_done), rather than each building a
	 * commit on the same head and all but one losing the ref update:
	 * under contention the losers' blobs, trees (the whole tasks/ tree,
	 * rebuilt per attempt) and their zlib states were wasted work and,
	 * held by many threads at once, memory that grew with the task set.
	 * Other processes are still kept honest by the ref's compare. */
	pthread_mutex_t turn_mu;
	pthread_cond_t turn_cv;
	unsigned long long turn_next, turn_now;
	/* The writers' one repository, used only by the writer whose turn
	 * (or, for a URL, the remote lock) it is: the trees a write parses
	 * and builds are cached once, not in every repository of the pool. */
	git_repository *write_repo;

	/* The head's file index (git_index.c): ix, built through ix_repo,
	 * both guarded by ix_mu (a snapshot's count is atomic: readers give
	 * theirs back without the lock). */
	pthread_mutex_t ix_mu;
	struct co_git__index *ix;
	git_repository *ix_repo;

	atomic_ullong blobs_read; /* co_git_store_blobs_read() */
	atomic_ullong ref_races;  /* co_git_store_ref_races() */
	atomic_ullong commits;	  /* commits this store made: wakes its watches */
} co_git_store;

typedef struct gs_watch {
	co_git_store *gs;
	git_repository *repo;
	char *prefix;
	git_oid tree;
	int have_tree;
	int64_t next_poll_ms;
	unsigned long long seen_commits; /* gs->commits at the last poll */
	int ino;			 /* inotify on the branch ref, or -1 */
	co_event **q;
	size_t qhead, qn, qcap;
} gs_watch;

/* ---- git_store.c ---- */

/* Set `code` with a message and libgit2's last error text, copied at once. */
__attribute__((format(printf, 2, 3))) int co_git__fail(int code, const char *fmt, ...);

int64_t co_git__mono_ms(void);

void co_git__sleep_us(long us);

/* Lost a ref race: wait a little, more as the races pile up. */
void co_git__backoff(int attempt);

char *co_git__printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "tasks/<id>.json" into buf; CO_EINVAL for a bad ID. */
int co_git__path(char *buf, size_t len, co_kind kind, const char *id);

int co_git__repo_open(git_repository **out, co_git_store *gs);

int co_git__repo_take(git_repository **out, co_git_store *gs);

void co_git__repo_give(co_git_store *gs, git_repository *repo);

/*
 * Take the remote lock.  CO_EUNAVAIL, not holding it, when while this
 * thread waited for it a fetch or push found the server silent: with a
 * hung server, the callers queued on the lock fail together with the one
 * that timed out, rather than one bound after another.
 */
int co_git__remote_lock(co_git_store *gs);
void co_git__remote_unlock(co_git_store *gs);

/* Wait for this thread's turn to write (FIFO), and give it back. */
void co_git__write_turn(co_git_store *gs);
void co_git__write_done(co_git_store *gs);

int co_git__fetch_locked(co_git_store *gs, git_repository *repo);

/* ---- git_index.c ---- */

typedef struct co_git__index co_git__index;

/*
 * The index of the head `head` (exists = 0: the branch was unborn) or, if
 * the branch moved since the caller read it, of the head as it is now.
 * Counted: give it back with co_git__index_give.  CO_EUNAVAIL when the
 * head cannot be read, CO_ENOMEM.
 */
int co_git__index_take(co_git__index **out, co_git_store *gs, const git_oid *head,
		       int exists);
void co_git__index_give(co_git_store *gs, co_git__index *ix);
/* The store's own snapshot and repository, at free (no reader left). */
void co_git__index_drop(co_git_store *gs);
/* The commit the index is of (a zero id for an unborn branch). */
const git_oid *co_git__index_head(const co_git__index *ix);
/* The blob id of <kind dir>/<file> (*found = 0 when absent); CO_EINVAL
 * when that path is not a regular file. */
int co_git__index_lookup(git_oid *blob, int *found, co_git_store *gs,
			 const co_git__index *ix, co_kind kind, const char *file);
/* The entries of kind's directory, in name order (for files, git's tree
 * order): how many, and entry i's name (owned by ix), blob id and whether
 * it is a file (a blob) at all. */
size_t co_git__index_count(const co_git__index *ix, co_kind kind);
const char *co_git__index_entry(const co_git__index *ix, co_kind kind, size_t i,
				const git_oid **id, int *is_file);

/* Bring the mirror's copy of the branch up to date (no-op for a path). */
int co_git__sync(co_git_store *gs, git_repository *repo);

/*
 * Push `commit` to the branch of the remote (the remote lock held).  The server
 * updates the ref only as a fast-forward from what it holds, which is our
 * compare-and-swap: CO_ERETRY when it (or libgit2's own pre-check) refuses.
 */
int co_git__push_locked(co_git_store *gs, git_repository *repo, const git_oid *commit);

/* ---- git_stream.c ---- */

/* The silence bound when a store gives none (co_git_opts.remote_timeout_ms). */
#define CO_GIT_REMOTE_TIMEOUT_MS 3000
/* A whole fetch or push may take this many silence bounds (a server that
 * trickles a byte just inside the bound); local work between network
 * calls (indexing a pack) counts too. */
#define CO_GIT_REMOTE_DEADLINE_FACTOR 20

/* Which bound ran out (co_git__net_ran_out); 0: none. */
#define CO_GIT__NET_SILENT 1   /* no byte in timeout_ms */
#define CO_GIT__NET_DEADLINE 2 /* the whole call's overall_ms */

/* Register the bounded stream as libgit2's GIT_STREAM_STANDARD (once per
 * process, before any network call); libgit2's error code. */
int co_git__stream_register(void);

/* The calling thread's bounds for the network calls that follow, until
 * co_git__net_end(), which returns co_git__net_ran_out() and clears them. */
void co_git__net_begin(int timeout_ms, int overall_ms);
int co_git__net_end(void);
int co_git__net_ran_out(void);
/* The silence bound in force on this thread. */
int co_git__net_timeout_ms(void);

/* ---- git_read.c ---- */

/* Head commit of the branch; *exists = 0 (and a zero id) when it is unborn. */
int co_git__head(git_oid *out, int *exists, co_git_store *gs, git_repository *repo);

/* Commit `id` and its tree (*commit owned by the caller, *tree too);
 * CO_EUNAVAIL naming the commit, both NULL, when either cannot be read. */
int co_git__commit_tree(git_commit **commit, git_tree **tree, const git_oid *id,
			co_git_store *gs, git_repository *repo);

/* Head commit and its tree (both NULL on an unborn branch). */
int co_git__head_tree(git_commit **commit, git_tree **tree, git_oid *head, int *exists,
		      co_git_store *gs, git_repository *repo);

/* Parse a blob as the record of kind/id (id NULL: any id); CO_EINVAL names
 * the path and the commit. */
int co_git__parse_blob(co_record **out, co_git_store *gs, git_repository *repo,
		       const git_oid *blob_id, const char *path, const git_oid *commit,
		       co_kind kind, const char *id);

/*
 * The blob id at `path` in `tree` into *blob (*found = 0 when absent).  A
 * path that is not a regular file is malformed: CO_EINVAL.
 */
int co_git__lookup_file(git_oid *blob, int *found, co_git_store *gs, git_tree *tree,
			const char *path);

int co_git__get(co_record **out, co_version *ver, void *impl, co_kind kind,
		const char *id);

int co_git__list(co_record_list *out, void *impl, co_kind kind);

/* Tasks then swarms, both from the one head commit read at the start. */
int co_git__scan(void *impl, unsigned flags, co_scan_fn fn, void *ctx);

/*
 * One blob by id, from the object database: no ref, no tree, so it is found
 * whatever the branch holds now (the reconciler reads back the few files
 * whose ids its snapshot could not match).  For a URL the mirror holds
 * every blob a scan of it passed, so no fetch is needed.
 */
int co_git__read_blob(char **out, size_t *len, void *impl, const unsigned char *blob_id);

/* ---- git_write.c ---- */

int co_git__cas(void *impl, co_kind kind, const char *id, const co_record *r,
		const co_version *expected, const char *why);

int co_git__cas_many(void *impl, const co_store__write *w, size_t n, const char *why);

/* ---- git_watch.c ---- */

void co_git__watch_close(void *impl);

int co_git__watch_open(void **out, void *impl, const char *prefix);

int co_git__watch_next(co_event **out, void *impl, int timeout_ms);

#endif
