/*
 * store_internal.h - what store.c, store_cas.c and store_batch.c share,
 * private to them: the co_store object itself and the helpers one of them
 * defines for the others.  Not for the backends (they see store_backend.h).
 *
 * Ownership and errors are as in store.h: every helper returns 0 or a
 * negative CO_E... code with the message set; records handed out through
 * `co_record **` belong to the caller.
 */
#ifndef CO_STORE_INTERNAL_H
#define CO_STORE_INTERNAL_H

#include "store_backend.h"

#include "breaker.h"

#include <stdatomic.h>

/* Compare-and-swap rounds before a mutation gives up (CO_EUNAVAIL). */
#define MAX_ROUNDS 64

struct co_store {
	const co_store_backend *be;
	void *impl;
	co_breaker *brk; /* every call to the backend goes through it */
	atomic_uint_fast64_t calls; /* calls let through to the backend */
};

/* ---- store.c: the breaker around every backend call ---- */

/* 0: call the backend (*probe: as the breaker's probe); CO_EUNAVAIL: open. */
int co_store__call_begin(co_store *s, int *probe);
/* The backend's answer `error`, as the breaker passes it on. */
int co_store__call_end(co_store *s, int probe, int error);

/* The backend's get through the breaker; *out as stored. */
int co_store__be_get(co_store *s, co_record **out, co_version *ver, co_kind kind,
		     const char *id);

/* The backend's cas through the breaker; on CO_ERETRY also what the key
 * holds now (*cur, *cur_ver; *fresh 1) where the backend reads it back.
 * prev: the record expected at `expected`, a hint (store_backend.h). */
int co_store__be_cas_read(co_store *s, co_kind kind, const char *id, const co_record *r,
			  const co_version *expected, const char *why, const co_record *prev,
			  co_record **cur, co_version *cur_ver, int *fresh);

/* Read and apply the claim-expiry rule.  *ver is set even when absent. */
int co_store__read_now(co_record **out, co_version *ver, co_store *s, co_kind kind,
		       const char *id);

/* CO_ENOTFOUND with "<kind> <id> not found". */
int co_store__not_found(co_kind kind, const char *id);

/* CO_EUNAVAIL: `what` on `id` lost MAX_ROUNDS compare-and-swap races. */
int co_store__too_busy(co_store *s, const char *what, const char *id);

/* ---- store_cas.c: the mirror's rule ---- */

/* 1 if cur (NULL: absent) holds a rev at least as high as r's: a mirror
 * never writes backwards. */
int co_store__holds_as_new(const co_record *cur, const co_record *r);

#endif
