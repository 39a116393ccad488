/*
 * etcd_store_internal.h - test hooks of etcd_store.c; not part of the API.
 *
 * The decoder of a watch stream (the bytes of a streaming POST /v3/watch,
 * cut anywhere, split on newlines, each line a JSON message) without a
 * connection or a thread, so that tests and tests/fuzz/fuzz_watch can feed
 * it bytes as curl would.  It is the very code a watch runs: the same
 * write callback, the same line handler, the same end-of-stream rule.
 */
#ifndef CO_STORE_ETCD_STORE_INTERNAL_H
#define CO_STORE_ETCD_STORE_INTERNAL_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct co_etcd__watch_decoder co_etcd__watch_decoder;

/* A decoder for a store whose key prefix is `prefix` ("/" by default).
 * CO_ENOMEM.  Free with co_etcd__watch_decoder_free(). */
int co_etcd__watch_decoder_new(co_etcd__watch_decoder **out, const char *prefix);

void co_etcd__watch_decoder_free(co_etcd__watch_decoder *d);

/* The next len bytes of the stream.  0, or -1 when the stream asked for
 * the transfer to end (an error message, a cancelled watch, no memory). */
int co_etcd__watch_decoder_feed(co_etcd__watch_decoder *d, const char *p, size_t len);

/* The transfer ended: what an unterminated last line says is taken too. */
void co_etcd__watch_decoder_end(co_etcd__watch_decoder *d);

/* The next decoded event, without waiting: 0 with *out NULL when none. */
int co_etcd__watch_decoder_next(co_event **out, co_etcd__watch_decoder *d);

/* What the stream said besides events. */
typedef struct co_etcd__watch_state {
	int created;	   /* "created" was seen */
	int fatal;	   /* cancelled or compacted: a watch would not resume */
	int64_t next_rev;  /* the revision a resumed watch would start from */
	const char *error; /* "" or why the stream ended; valid until the next call */
} co_etcd__watch_state;

void co_etcd__watch_decoder_state(co_etcd__watch_state *out, co_etcd__watch_decoder *d);

/*
 * Test hooks of the record cache (etcd_cache.c) of etcd store s; no-ops
 * when s has no cache.
 *
 * hold 1: the cache drops what its watch says (its entries go stale while
 * it still counts as live: a deliberately stale cache); 0: it applies
 * events again.  pause 1: the cache closes its watch and waits; 0: it
 * reopens the watch from the revision after the last one it saw (which
 * etcd may have compacted meanwhile).
 */
void co_etcd__cache_hold(co_store *s, int on);
void co_etcd__cache_pause(co_store *s, int on);

/* The mod_revision the cache holds for kind/id, 0 when none; *owner (may
 * be NULL) gets a copy of the cached record's owner ("" when none). */
int64_t co_etcd__cache_peek(co_store *s, co_kind kind, const char *id, char **owner);

#endif
