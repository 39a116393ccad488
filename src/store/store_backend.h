/*
 * store_backend.h - what a store implementation provides (internal).
 *
 * The generic operations in store.c and store_cas.c are built on these primitives.  A
 * version token identifies what a key held when it was read: etcd's
 * mod_revision, git's blob id.  The empty token means "absent".
 *
 * Every function must be safe to call from many threads at once.
 */
#ifndef CO_STORE_BACKEND_H
#define CO_STORE_BACKEND_H

#include "store.h"

typedef struct co_version {
	char v[CO_VERSION_MAX]; /* "" = absent */
} co_version;

/* One read of a get_many: kind and id in; out (owned by the caller once
 * set) and ver out, NULL and "" when the key is absent. */
typedef struct co_store__read {
	co_kind kind;
	const char *id;
	co_record *out;
	co_version ver;
} co_store__read;

/* One write of a cas_many. */
typedef struct co_store__write {
	const co_record *r;
	co_version expected;
} co_store__write;

typedef struct co_store_backend {
	const char *name; /* "git" or "etcd" */

	/*
	 * Read one record as stored (no normalization) and its version.
	 * Absent: CO_ENOTFOUND with ver->v[0] == '\0'.
	 */
	int (*get)(co_record **out, co_version *ver, void *impl, co_kind kind,
		   const char *id);

	/*
	 * Compare-and-swap: write `r` (or delete kind/id when r is NULL) only if
	 * the key still has version `expected` ("" = must be absent).
	 * CO_ERETRY when it changed meanwhile; CO_EUNAVAIL etc. otherwise.
	 * Backends derive side effects from the record (etcd attaches a lease
	 * to <prefix>claims/<id> for a claimed task with claim_expires_at, and
	 * removes it otherwise).  `why` is a short description of the change
	 * for commit messages ("claim P0.1 by swarm-a").
	 */
	int (*cas)(void *impl, co_kind kind, const char *id, const co_record *r,
		   const co_version *expected, const char *why);

	/*
	 * cas() that, when it returns CO_ERETRY, also hands out what the key
	 * holds now, read inside the same txn (etcd: a Range in the txn's
	 * failure branch): *cur (the caller's; NULL when absent) and *cur_ver,
	 * with *fresh set to 1.  *fresh 0: nothing was read back.  NULL for a
	 * store that cannot (git); store_cas.c then reads again.  `prev` is
	 * the record the caller expects at `expected` (NULL: not known, or
	 * absent), a hint only: etcd leaves out the claims key's bookkeeping
	 * when prev held no leased claim, and its compare checks the hint.
	 */
	int (*cas_read)(void *impl, co_kind kind, const char *id, const co_record *r,
			const co_version *expected, const char *why, const co_record *prev,
			co_record **cur, co_version *cur_ver, int *fresh);

	/*
	 * A guess of what kind/id holds, from a local cache, without a round
	 * trip: 1 with *out (the caller's) and *ver; 0 when the cache does not
	 * know; -1 when there is no cache (off, or NULL for git).  A guess is
	 * only ever used as the expected version of a cas, whose compare
	 * decides; an answer is never given from it.
	 */
	int (*cached_get)(co_record **out, co_version *ver, void *impl, co_kind kind,
			  const char *id);

	/*
	 * Compare-and-swap of many keys at once, all or nothing: every record
	 * w[i].r is written (never NULL here) only if every key still has its
	 * version.  CO_ERETRY when one changed (nothing written).  NULL for a
	 * store where one write per key costs no more (etcd).
	 */
	int (*cas_many)(void *impl, const struct co_store__write *w, size_t n,
			const char *why);
	/* The most writes one cas_many call takes (0: no limit); the caller
	 * splits a larger batch into calls of at most this many. */
	size_t cas_many_max;

	/*
	 * get() of many keys in one round trip, all read at one revision.
	 * Absent keys are not an error.  On failure no rd[i].out is set.
	 * NULL for a store where one read per key costs no more (git).  The
	 * caller passes at most cas_many_max reads when that is set.
	 */
	int (*get_many)(void *impl, co_store__read *rd, size_t n);

	/* All records of a kind, as stored, any order. */
	int (*list)(co_record_list *out, void *impl, co_kind kind);

	/* co_store_scan_flags(): every record, raw, at one commit or
	 * revision; flags: CO_SCAN_NO_DATA (may be ignored). */
	int (*scan)(void *impl, unsigned flags, co_scan_fn fn, void *ctx);

	/* co_store_read_blob(); NULL for a store that keeps no blobs. */
	int (*read_blob)(char **out, size_t *len, void *impl,
			 const unsigned char *blob_id);

	int (*ping)(void *impl);

	int (*watch_open)(void **out, void *impl, const char *prefix);
	int (*watch_next)(co_event **out, void *w, int timeout_ms);
	void (*watch_close)(void *w);

	const char *(*describe)(void *impl);
	void (*free)(void *impl);
} co_store_backend;

/* The calling thread's bound on one store call, in ms (0: none); see
 * co_store_call_timeout(). */
int co_store__call_timeout(void);

/* This thread's fence (co_store_fence): 1 with *key and *epoch set, or 0. */
int co_store__fence(const char **key, int64_t *epoch);

/* A fenced txn failed on the fence: the key's mod_revision it saw. */
void co_store__fenced(int64_t now);

/* A backend is about to change the store: run this thread's write hook
 * (co_store_on_write), if any. */
void co_store__about_to_write(void);

/* A backend says the current call failed because the caller's bound (not
 * the store's own timeout) ran out. */
void co_store__bound_ran_out(void);

/*
 * store_guard.c: before a backend call, ask breaker b (0: go, *probe says
 * whether it is the half-open probe; CO_EUNAVAIL: refused, the thread's
 * last error says why); after it, tell b how it went (returns `error`,
 * with the call's own message as the thread's last error).
 */
int co_store__guard_begin(struct co_breaker *b, int *probe);
int co_store__guard_end(struct co_breaker *b, int probe, int error);

/* co_store__guard_begin() that lets the call through as the probe at once
 * when the breaker is open, whatever the backoff (co_breaker_enter_probe). */
int co_store__guard_begin_probe(struct co_breaker *b, int *probe);

/* Whether the calling thread is a health probe
 * (co_store_count_bounded_timeouts). */
int co_store__is_health_probe(void);

/* Monotonic milliseconds, the breaker's clock. */
int64_t co_store__mono_ms(void);

/* Wrap a backend and its state into a co_store (takes impl).  CO_ENOMEM. */
int co_store__new(co_store **out, const co_store_backend *be, void *impl);

/* The state of `s` if it is a store of backend `be`, else NULL: how a
 * backend's own extra functions find their state (borrowed). */
void *co_store__impl(const co_store *s, const co_store_backend *be);

#endif
