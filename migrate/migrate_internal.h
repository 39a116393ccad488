/*
 * migrate_internal.h - what the migrate module's files share (internal).
 *
 * Backfill needs each record together with the version it was read at, so
 * that a batched write can be a compare-and-swap on exactly what was read:
 * the blob id of the file in git, the key's mod_revision in etcd.  The two
 * batch writers (git_batch.c, etcd_batch.c) talk to the stores directly,
 * through libgit2 and the etcd gateway, because the store interface writes
 * one record per commit or txn; the tail of the git branch (git_tail.c) is
 * here for the same reason.  Nothing outside migrate/ includes this.
 */
#ifndef CO_MIGRATE_INTERNAL_H
#define CO_MIGRATE_INTERNAL_H

#include "../src/core/record.h"
#include "../src/store/etcd_store.h"
#include "../src/store/git_store.h"

#include <stddef.h>
#include <stdint.h>

/* A record and the version it was read at ("" = absent). */
typedef struct co_mig_rec {
	co_record *r;
	char ver[48]; /* git: blob id (hex); etcd: mod_revision (decimal) */
} co_mig_rec;

typedef struct co_mig_set {
	co_mig_rec *v;
	size_t n, cap;
} co_mig_set;

/* Append (takes r).  CO_ENOMEM (r is freed then). */
int co_mig__set_push(co_mig_set *s, co_record *r, const char *ver);
/* Free the records and the array; the set is empty afterwards. */
void co_mig__set_clear(co_mig_set *s);
/* Sort by kind, then ID. */
void co_mig__set_sort(co_mig_set *s);
/* Binary search in a sorted set: the entry for kind/id or NULL. */
co_mig_rec *co_mig__set_find(const co_mig_set *s, co_kind kind, const char *id);
/* Compare two records' kind/id as the sort does. */
int co_mig__cmp(co_kind ka, const char *ia, co_kind kb, const char *ib);

/* ---- etcd: range with mod_revisions, txns of many puts (etcd_batch.c) ---- */

typedef struct co_etcd_batch co_etcd_batch;

/* Most puts in one txn: the gateway's default --max-txn-ops is 128, and a
 * put may need a delete of the claims key next to it. */
#define CO_ETCD_BATCH_MAX 64
/* Bytes of values in one txn, under the 1.5 MiB request limit once base64'd. */
#define CO_ETCD_BATCH_BYTES (768 * 1024)

/* Open a client on the endpoints of `o` (authenticating if o->user).
 * Does not contact etcd.  CO_EINVAL, CO_ENOMEM. */
int co_etcd_batch_open(co_etcd_batch **out, const co_etcd_opts *o);
void co_etcd_batch_free(co_etcd_batch *b);

/* All records of `kind` as stored, with their mod_revision, read page by page
 * at one revision (into *revision, may be NULL), through the gateway.  The
 * backfill reads etcd with the store's bulk scan instead (co_store_scan,
 * gRPC); the tests read through this to check it by another path.
 * CO_EUNAVAIL, CO_EINVAL. */
int co_etcd_batch_list(co_mig_set *out, int64_t *revision, co_etcd_batch *b,
		       co_kind kind);

/* The store's current revision (header.revision of a range).  CO_EUNAVAIL. */
int co_etcd_batch_revision(int64_t *out, co_etcd_batch *b);

/*
 * One txn writing recs[i] if the key still has version vers[i] ("" = must
 * be absent), and deleting the claims key of those where drop_claim[i].
 * At most CO_ETCD_BATCH_MAX records.  CO_ERETRY when a compare failed
 * (nothing written), CO_EUNAVAIL, CO_ENOMEM.
 */
int co_etcd_batch_put(co_etcd_batch *b, const co_record *const *recs,
		      const char *const *vers, const int *drop_claim, size_t n);

/* ---- the backfill's etcd batches, several in flight (etcd_writers.c) ---- */

/* Connections a backfill writes etcd on; at most CO_MIG_WRITERS_MAX. */
#define CO_MIG_WRITERS 4
#define CO_MIG_WRITERS_MAX 8

/* One batch for co_etcd_batch_put(); the records are the caller's and must
 * outlive the batch's retirement. */
typedef struct co_mig_job {
	const co_record *recs[CO_ETCD_BATCH_MAX];
	const char *vers[CO_ETCD_BATCH_MAX];
	int drop[CO_ETCD_BATCH_MAX];
	size_t n;
} co_mig_job;

/* Called on the caller's thread (inside submit or drain) for each batch
 * written, in the order they were handed in: its last record, its size and
 * how many records it wrote (fewer when a lost compare had it redone one
 * record at a time).  A negative return stops the pool with that error. */
typedef int (*co_mig_retired_fn)(void *ud, const co_record *last, size_t n,
				 size_t written);

typedef struct co_mig_writers co_mig_writers;

/*
 * Start n writer threads (1..CO_MIG_WRITERS_MAX), each with its own client
 * on `etcd` (which must outlive the pool).  A batch whose compare fails is
 * redone one record at a time through an etcd store (put_if_newer).
 * CO_ENOMEM, CO_EINVAL (no endpoints), CO_EIO (no thread).
 */
int co_mig__writers_open(co_mig_writers **out, const co_etcd_opts *etcd, size_t n,
			 co_mig_retired_fn retired, void *ud);

/* Hand in a copy of `job`, waiting while every writer has one.  Returns
 * the failure (with its message) of the first batch that failed and came
 * up for retirement, and from then on takes nothing more. */
int co_mig__writers_submit(co_mig_writers *w, const co_mig_job *job);

/* Wait until every batch handed in is written and retired; the first
 * failure, if any. */
int co_mig__writers_drain(co_mig_writers *w);

/* Stop the threads (a batch running is finished first) and free; NULL is
 * fine.  Batches still queued are dropped: drain first to keep them. */
void co_mig__writers_free(co_mig_writers *w);

/* ---- git: read a whole tree, write many files in one commit (git_batch.c) ---- */

typedef struct co_git_batch co_git_batch;

/* One file to write.  expect: NULL = only if r is newer by rev than the
 * file at the head (or the file is absent); otherwise the blob id the file
 * must still have ("" = must be absent). */
typedef struct co_git_batch_item {
	const co_record *r;
	const char *expect;
} co_git_batch_item;

/* Open the bare repo at `path` (a local path; URLs are not supported for
 * batches).  CO_EUNAVAIL naming the path. */
int co_git_batch_open(co_git_batch **out, const char *path, const char *branch);
void co_git_batch_free(co_git_batch *g);

/* The branch head as hex into hex (41 bytes), "" while unborn.  CO_EUNAVAIL. */
int co_git_batch_head(char *hex, co_git_batch *g);

/* All records of `kind` at the head, as stored, with blob ids.  A file that
 * does not parse as a record is skipped and counted in *bad (may be NULL),
 * with the last problem in co_error_last().  CO_EUNAVAIL. */
int co_git_batch_list(co_mig_set *out, size_t *bad, co_git_batch *g, co_kind kind);

/*
 * One commit writing the items that pass their check against the head
 * (authored by cutover with a "Cutover-Op: <why>" trailer), published by a
 * compare-and-swap of the branch ref; a lost race rebuilds on the new head
 * and checks again.  *written = files changed (0: no commit made).
 * CO_EUNAVAIL, CO_ENOMEM.
 */
int co_git_batch_write(size_t *written, co_git_batch *g, const co_git_batch_item *items,
		       size_t n, const char *why);

/* For git_tail.c, which shares git_batch.c's repository handle. */
struct git_repository;
struct git_repository *co_git_batch__repo(co_git_batch *g);
const char *co_git_batch__path(const co_git_batch *g);
const char *co_git_batch__refname(const co_git_batch *g);

/* ---- git: loose blobs read straight from their files (git_loose.c) ---- */

/*
 * One reader's zlib stream and buffers, for one thread.  Open on `repo`
 * (read only for its objects directory; not kept): 0, with *out NULL when
 * the repository names no objects directory (co_git_loose_blob then
 * always answers 0), or CO_ENOMEM.  Free with co_git_loose_free (NULL is
 * fine).
 */
typedef struct co_git_loose co_git_loose;
struct git_oid;
int co_git_loose_open(co_git_loose **out, struct git_repository *repo);
void co_git_loose_free(co_git_loose *l);

/*
 * The content of blob `id` if it is a loose object this reader can read
 * and check (its SHA-1 is `id`): 1, with *data and *len valid until the
 * next call on `l`.  0 when it cannot (packed, too large, not a blob,
 * damaged; or `l` is NULL): read it through libgit2, which says what is
 * wrong.  Never an error of its own.
 */
int co_git_loose_blob(const char **data, size_t *len, co_git_loose *l,
		      const struct git_oid *id);

/* Blobs read this way since the process started (tests, benches). */
size_t co_git_loose_reads(void);

/* ---- git: the commits after a given one (git_tail.c) ---- */

typedef struct co_git_change {
	co_kind kind;
	char id[160];
	int deleted;
	char blob[48];  /* new blob id, "" when deleted */
	co_record *r;   /* parsed new content, NULL when deleted or unparsable */
	char *problem;  /* why r could not be parsed, or NULL */
} co_git_change;

typedef struct co_git_commit_info {
	char id[48];
	char author[256]; /* "Name <email>" */
	char summary[256];
	int ours; /* made by cutover (author and trailer) */
	co_git_change *changes;
	size_t n_changes;
} co_git_commit_info;

/*
 * The commits reachable from the head but not from `from` ("" = none
 * excluded), oldest first, each with the record files it changed against
 * its first parent.  At most `max` commits (the oldest ones).  *out / *n
 * owned by the caller (co_git_commits_free).  CO_ENOTFOUND if `from` is not
 * in the repository; CO_EUNAVAIL.
 */
int co_git_batch_commits_since(co_git_commit_info **out, size_t *n, co_git_batch *g,
			       const char *from, size_t max);
void co_git_commits_free(co_git_commit_info *c, size_t n);

#endif
