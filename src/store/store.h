/*
 * store.h - one interface over the two stores (DESIGN §2, §3).
 *
 * A co_store is a handle on git (git_store.h) or etcd (etcd_store.h).  Every
 * operation of DESIGN §3 is implemented once, here, as read -> decide ->
 * compare-and-swap against the backend: the decision that picks a claim's
 * winner lives in exactly one place, and the backend's CAS (a ref update in
 * git, a txn on mod_revision in etcd) makes it atomic.  Losing a CAS race
 * means re-reading and deciding again, bounded.
 *
 * Thread safety: a co_store may be used from many threads at once; the
 * backends guarantee it.  Records returned are owned by the caller.
 *
 * Errors: CO_EINVAL (bad ID or argument), CO_ENOTFOUND, CO_ECONFLICT (claim
 * lost, not owner, exists differently, wrong status), CO_EUNAVAIL (store
 * unreachable or too much contention), CO_ENOMEM.
 */
#ifndef CO_STORE_H
#define CO_STORE_H

#include "../core/record.h"
#include "breaker.h"

#include <stdint.h>

typedef struct co_store co_store;
typedef struct co_watch co_watch;

/* Close a store; NULL is fine.  Not while other threads still use it. */
void co_store_free(co_store *s);

/* "git" or "etcd". */
const char *co_store_name(const co_store *s);

/* A short description for messages: the repo path or the endpoints. */
const char *co_store_describe(const co_store *s);

/* 0 if the store answers now; CO_EUNAVAIL with the reason if not. */
int co_store_ping(co_store *s);

/*
 * --- the circuit breaker (breaker.h) ---
 *
 * Every call a store makes to its backend (reads, writes, lists, scans,
 * pings, opening a watch) goes through one breaker per store.  After
 * consecutive calls that failed as unavailable (the store did not answer:
 * a timeout, a refused connection, no leader), it opens and every call
 * fails at once with CO_EUNAVAIL, "etcd circuit open since 12:01:03: 3
 * failures in a row; next probe in 1.0 s", instead of waiting out a
 * timeout each; one probe at a time closes it when the store answers.
 */

/* Calls let through to the backend (the network, the repo) so far, counted
 * as they start; calls an open breaker refused are not among them.
 * Thread-safe. */
uint64_t co_store_calls(co_store *s);

/*
 * 1 if this thread's last call to any store's backend was refused by an
 * open breaker, so that nothing of it reached the store.  An operation that
 * failed with CO_EUNAVAIL on such a refusal wrote nothing (a compare-and-
 * swap loop stops at its first unavailable answer): the router then knows
 * the primary did not commit.
 */
int co_store_last_call_refused(void);

/* A snapshot of the store's breaker.  Thread-safe. */
void co_store_breaker_get(co_breaker_info *out, co_store *s);

/* Call fn on each transition of the store's breaker (audit, metrics,
 * waking a drain); NULL clears it.  co_store_breaker_clear_hook() clears
 * it only if it is still the one set with ctx.  Thread-safe. */
void co_store_breaker_set_hook(co_store *s, co_breaker_hook fn, void *ctx);
void co_store_breaker_clear_hook(co_store *s, void *ctx);

/* Replace the breaker with a new, closed one of options `opts` (NULL:
 * defaults), with no hook and zero counts.  Before calls run and before a
 * hook is set.  CO_ENOMEM. */
int co_store_breaker_configure(co_store *s, const co_breaker_opts *opts);

/*
 * Bound every request this thread's store calls send from now on to `ms`
 * milliseconds (0: the stores' own timeouts), below the store's request
 * timeout, and return the bound it replaces so that the caller can put it
 * back.  The bound is per request (a read-then-swap mirror makes two, each
 * with its own bound), every endpoint tried included.  A mirror to a secondary runs under a short bound: a hung
 * secondary must never hold the primary's answer for a whole request
 * timeout.  Honoured by the etcd store; a git store on a local path does
 * not block on a network and ignores it.
 */
int co_store_call_timeout(int ms);

/*
 * Fencing (router fleet, issue 18 point 3).  Until cleared, every decision
 * this thread writes into an etcd store (a compare-and-swap: create,
 * claim, renew, release, register, remove) carries, in the same txn, one
 * more compare: the key `key` (an absolute etcd key, the fleet's flags
 * document) still has mod_revision `epoch`.  If it moved on, nothing is
 * written and the call fails with CO_EFENCED; co_store_fenced_at() then
 * gives the key's mod_revision the failed txn saw (0: the key is gone).
 * Not fenced: copies of records already decided (put_if_newer, batches;
 * the drain's and a mirror's) and every read.  A git store ignores it.
 * `key` is borrowed and must outlive the fence; NULL or epoch <= 0 clears.
 */
void co_store_fence(const char *key, int64_t epoch);
int64_t co_store_fenced_at(void);

/*
 * A write hook for this thread: until cleared (fn NULL), a store that is
 * about to change what it holds calls fn(arg) first, on this thread: a git
 * store once it has its write turn and the compare held, before the
 * commit's objects are written (again on each retry after the branch
 * moved; a batch, before its compares).  A call refused on the store's
 * first read (a claim someone holds) never calls it; one whose compare is
 * lost in the turn, or that finds the same bytes there, may have.  The
 * router uses it to start the fsync that makes a write's intent durable
 * while git commits, not while the write waits for its turn
 * (router_commit.c).  A timing hint only: a store may not call it at all
 * (the etcd store does not), so nothing may rest on it having run.  `arg`
 * is borrowed.
 */
typedef void (*co_store_write_hook)(void *arg);
void co_store_on_write(co_store_write_hook fn, void *arg);

/*
 * A call that fails only because this thread's bound ran out does not
 * count against the store's breaker (a slow store is not a down one),
 * unless this thread is a health probe and said so with on = 1: a probe
 * thread is the one detector whose short bound may open the breaker.
 * Its pings of a store behind an open breaker look quietly (outside the
 * breaker) while no probe is due, and when the store answers, the next
 * ping is the breaker's probe at once: a store that came back is seen
 * back, and its outbox debt goes out, within one probe interval.
 */
void co_store_count_bounded_timeouts(int on);

/*
 * Create a task (rev 1).  If the ID exists: success with the stored record
 * in *out when type, metadata, blocked_by and status are the same;
 * CO_ECONFLICT otherwise.  `task` is not taken.
 */
int co_store_task_create(co_record **out, co_store *s, const co_record *task);

/* Read one record, with the claim-expiry rule applied.  CO_ENOTFOUND. */
int co_store_get(co_record **out, co_store *s, co_kind kind, const char *id);

/* All records of a kind, sorted by ID, claim-expiry rule applied. */
int co_store_list(co_record_list *out, co_store *s, co_kind kind);

/*
 * What a key held when it was read: etcd's mod_revision in decimal, git's
 * blob id in hex.  Two reads of a key with the same version saw the same
 * bytes.  "" means absent.
 */
#define CO_VERSION_MAX 48

/*
 * co_store_get(), and the version it read into `version` (CO_VERSION_MAX
 * bytes; "" when absent, with CO_ENOTFOUND).  This is how a caller tells
 * whether a key changed between two reads without comparing records.
 */
int co_store_get_versioned(co_record **out, char *version, co_store *s, co_kind kind,
			   const char *id);

/* Bytes in a blob id: git's object id (SHA-1). */
#define CO_BLOB_ID_LEN 20

/* One stored record as co_store_scan() passes it.  Every pointer is
 * borrowed for the duration of the call only. */
typedef struct co_scan_item {
	co_kind kind;
	const char *id;	     /* NUL-terminated; taken from the key or file name */
	const char *raw;     /* the stored bytes: not parsed, not normalized;
			      * NULL under CO_SCAN_NO_DATA when blob_id is set */
	size_t len;	     /* of raw; 0 when raw is NULL */
	const char *version; /* as co_store_get_versioned() gives it */
	/* CO_BLOB_ID_LEN bytes when the store names the record by content
	 * without hashing it (git: the blob id in the tree, the SHA-1 of
	 * "blob <len>\0" and the bytes); NULL otherwise (etcd). */
	const unsigned char *blob_id;
} co_scan_item;

/* Called once per record; a negative return stops the scan and is
 * returned by co_store_scan(). */
typedef int (*co_scan_fn)(void *ctx, const co_scan_item *item);

/*
 * Stream every task, then every swarm, as stored, at one point in time:
 * git reads one commit, etcd one revision (a paged range pinned to the
 * first page's revision), so a scan never mixes two moments.  Within a
 * kind the order is the store's own (etcd: key order; git: tree order).
 * Records are neither parsed nor checked: a malformed one is passed as it
 * is (the caller decides).  Memory: one page of records, whatever the
 * store's size.  This is the bulk read of reconciliation.
 * Errors: CO_EUNAVAIL (unreachable; etcd: the pinned revision was
 * compacted during the scan), CO_ENOMEM, or what fn returned.
 */
int co_store_scan(co_store *s, co_scan_fn fn, void *ctx);

/*
 * Flags of co_store_scan_flags().  CO_SCAN_NO_DATA: where the store can
 * name a record by its blob id without reading it (git: every record, from
 * the tree), pass raw NULL, len 0 and blob_id, and read nothing more; a
 * caller that needs the bytes of a few records reads them afterwards with
 * co_store_read_blob().  A store that cannot (etcd: its range returns the
 * values anyway) passes raw as usual.
 */
#define CO_SCAN_NO_DATA 0x1u

/* co_store_scan() with flags (0: the same as co_store_scan). */
int co_store_scan_flags(co_store *s, unsigned flags, co_scan_fn fn, void *ctx);

/*
 * The bytes of the blob `blob_id` (CO_BLOB_ID_LEN bytes, as a scan passed
 * it), into *out (malloc'd, NUL-terminated, owned by the caller) and *len.
 * A blob stays readable after the branch moves on (until `git gc` prunes
 * it).  Errors: CO_ENOTFOUND (no such blob), CO_EINVAL (the store keeps no
 * blobs: etcd), CO_EUNAVAIL, CO_ENOMEM.  Thread-safe.
 */
int co_store_read_blob(char **out, size_t *len, co_store *s,
		       const unsigned char *blob_id);

/* The longest TTL a claim may have: etcd's longest lease (9e9 s). */
#define CO_TTL_MAX 9000000000LL

/*
 * Claim task `id` for `swarm`, with a TTL in seconds (0 = none, at most
 * CO_TTL_MAX, else CO_EINVAL).
 * Won: 0 and the new record.  Lost: CO_ECONFLICT and *out = the current
 * record, so the loser learns the owner (the one case where *out is set on
 * failure).  Blocked, complete or failed task: CO_ECONFLICT, *out set too.
 * Claiming a task one already holds renews it (with the new TTL).
 */
int co_store_claim(co_record **out, co_store *s, const char *id, const char *swarm,
		   int64_t ttl);

/*
 * Release a task held by `swarm` to `to` (available, complete or failed).
 * Not the owner (or not claimed): CO_ECONFLICT with *out = current record.
 */
int co_store_release(co_record **out, co_store *s, const char *id, const char *swarm,
		     co_status to);

/* Extend the claim held by `swarm` to now + ttl.  CO_ECONFLICT if not owner. */
int co_store_renew(co_record **out, co_store *s, const char *id, const char *swarm,
		   int64_t ttl);

/*
 * Register a swarm: created at rev 1, or updated (rev + 1) when its
 * capabilities or metadata differ; unchanged when identical.
 */
int co_store_swarm_register(co_record **out, co_store *s, const co_record *swarm);

/* Remove a record.  CO_ENOTFOUND if absent. */
int co_store_remove(co_store *s, co_kind kind, const char *id);

/*
 * Mirror: store `r` only if it is newer (by rev) than what the store holds,
 * or absent there.  0 whether or not it wrote; *applied (may be NULL) says
 * which.  This is how a secondary follows its primary and how backfill
 * copies: it never moves a record backwards.
 */
int co_store_put_if_newer(co_store *s, const co_record *r, int *applied);

/*
 * co_store_put_if_newer() for `n` records of distinct IDs at once: what
 * lets an outbox drain keep up.  A git store writes them all in one commit
 * (one tree update, one fsync).  etcd reads them in one txn of ranges and
 * writes them in txns of up to 64 records (etcd takes 128 operations per
 * txn; a task is its key and its claims key), one round trip each.  On 0,
 * applied[i] (when applied is not NULL) says whether records[i] was
 * written.  On an error nothing is written in git; etcd may have written
 * some of the txns (each write is "if newer", so doing it again is
 * harmless).  Errors as co_store_put_if_newer(), and CO_EINVAL for an ID
 * twice.
 */
int co_store_put_batch_if_newer(co_store *s, const co_record *const *records, size_t n,
				int *applied);

/*
 * Write `r` unconditionally (repair, which has decided who is right).
 * Still refuses nothing but invalid records.
 */
int co_store_put(co_store *s, const co_record *r);

/* --- watch --- */

typedef enum { CO_EVENT_PUT = 1, CO_EVENT_DELETE = 2 } co_event_type;

typedef struct co_event {
	co_event_type type;
	co_kind kind;
	char *id;
	co_record *record; /* the new record on PUT, NULL on DELETE */
	const char *store; /* "git" or "etcd" (static) */
	int64_t mod_revision; /* etcd: the event's revision; git: 0 */
} co_event;

void co_event_free(co_event *e);

/*
 * Watch records under `prefix` ("" = all, "tasks/", "swarms/", or
 * "tasks/P0." to narrow).  etcd streams; git polls every poll interval and
 * diffs trees.  Events start from now.
 */
int co_store_watch(co_watch **out, co_store *s, const char *prefix);

/*
 * Next event, waiting at most timeout_ms (-1 = forever).  On timeout: 0 and
 * *out = NULL.  CO_EUNAVAIL if the stream broke and could not resume.
 */
int co_watch_next(co_event **out, co_watch *w, int timeout_ms);

/* Stop and free a watch; NULL is fine.  Safe to call from another thread
 * than the one blocked in co_watch_next() only after that call returns. */
void co_watch_close(co_watch *w);

#endif
