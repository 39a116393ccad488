/*
 * git_store.h - the legacy store: task files in a bare git repository.
 *
 * Layout: branch `main` (configurable), files tasks/<id>.json and
 * swarms/<id>.json holding pretty canonical JSON.  Every mutation is one
 * commit touching one file, authored by "cutover <cutover@localhost>" with a
 * "Cutover-Op: <why>" trailer so that cutover's own commits are recognisable.
 * Publishing is a compare-and-swap on the branch ref (local path) or a push
 * that the server may reject as non-fast-forward (URL).
 */
#ifndef CO_GIT_STORE_H
#define CO_GIT_STORE_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct co_git_opts {
	const char *repo;      /* path of a bare repo, or a URL */
	const char *branch;    /* default "main" */
	const char *cache_dir; /* for URLs: where the local mirror lives */
	int poll_interval_ms;  /* watch polling; default 30000 */
	int fsync;	       /* 1 (default): acknowledged commits survive a crash */
	int max_retries;       /* ref CAS retries before CO_EUNAVAIL; default 200 */
	/* URL repos: a fetch or push fails with CO_EUNAVAIL ("git <url>: fetch:
	 * no answer in 3.0 s") once the server sent nothing for this long, or
	 * the whole call took 20 times as long; 0: 3000.  Bounds git://,
	 * http:// and https://; for ssh:// only the connect (git_stream.c). */
	int remote_timeout_ms;
} co_git_opts;

#define CO_GIT_OPTS_INIT                                                                 \
	{                                                                                \
		NULL, "main", NULL, 30000, 1, 200, 3000                                  \
	}

/* The author name and trailer that mark cutover's own commits. */
#define CO_GIT_AUTHOR_NAME "cutover"
#define CO_GIT_AUTHOR_EMAIL "cutover@localhost"
#define CO_GIT_TRAILER "Cutover-Op"

/*
 * Open the git store.  A path must be an existing bare repository (an empty
 * `git init --bare` is fine: the first write creates the branch).
 * CO_EUNAVAIL naming the repo if it cannot be opened.
 */
int co_git_store_open(co_store **out, const co_git_opts *opts);

/*
 * The blob id git gives `len` bytes (the SHA-1 of "blob <len>\0" and the
 * bytes, as `git hash-object` computes it) into out (CO_BLOB_ID_LEN
 * bytes).  Needs no store.  CO_EUNAVAIL if libcrypto offers no SHA-1,
 * CO_ENOMEM.  Thread-safe.
 */
int co_git_blob_id(unsigned char *out, const void *data, size_t len);

/*
 * How many blobs `s` has read since it was opened (scans without
 * CO_SCAN_NO_DATA, gets, lists, co_store_read_blob); 0 for a store that
 * is not git.  A counter for tests and statistics; thread-safe.
 */
uint64_t co_git_store_blobs_read(const co_store *s);

/*
 * How many of `s`'s commits lost the branch's ref update to another
 * writer and were built again; 0 for a store that is not git.  Writers in
 * one process take turns, so only another process (or, for a URL, the
 * server's other clients) can cause one.  For tests; thread-safe.
 */
uint64_t co_git_store_ref_races(const co_store *s);

/*
 * Bytes of git objects libgit2 holds in its caches now, every repository
 * of every store together (GIT_OPT_GET_CACHED_MEMORY); 0 before any store
 * was opened.  For serve's /metrics; thread-safe.
 */
size_t co_git_cached_bytes(void);

#endif
