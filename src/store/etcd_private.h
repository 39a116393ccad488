/*
 * etcd_private.h - what the parts of the etcd store share, and nothing
 * else may use: the store's state (struct etcd), the transport
 * (etcd_http.c), and each part's entry points for the backend table in
 * etcd_store.c.  The parts:
 *
 *   etcd_http.c    POSTs to the gateway, endpoints, auth; JSON helpers
 *   etcd_h2.c      gRPC calls on kept HTTP/2 connections (the txns)
 *   etcd_txn.c     a compare-and-swap txn sent, and what its answer says
 *   etcd_store.c   records, get, leases, compare-and-swap, the backend
 *   etcd_batch.c   many keys in one txn (an outbox drain's batches)
 *   etcd_range.c   list and scan at one revision (gateway and gRPC)
 *   etcd_watch.c   the streaming watch
 *   etcd_cache.c   the record cache fed by a watch (one-round-trip writes)
 *
 * Errors are the store's (core/error.h): CO_EUNAVAIL when no endpoint
 * answers, CO_ENOMEM, and the gateway's errors mapped to CO_E* codes.
 * Returned JSON and strings are the caller's to free.
 */
#ifndef CO_STORE_ETCD_PRIVATE_H
#define CO_STORE_ETCD_PRIVATE_H

#include "store.h"
#include "store_backend.h"
#include "etcd_grpc.h"
#include "../core/b64.h"

#include "../core/record.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Pooled curl easy handles at most (one per request in flight). */
#define POOL_MAX 64
/* A txn's operations at most (etcd's --max-txn-ops default). */
#define TXN_OPS_MAX 128
/* The most keys a gRPC scan page asks for (etcd_range.c says why). */
#define GRPC_PAGE_MAX 500000
/* The mark in the top 16 bits of a batch lease's ID (etcd_batch.c). */
#define BATCH_LEASE_MARK 0x4342ULL /* "CB" */

/* gRPC status codes the gateway reports in "code". */
enum {
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_NOT_FOUND = 5,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_UNAUTHENTICATED = 16
};

struct co_etcd__cache;
struct co_etcd__h2;

struct etcd {
	char **endpoints;
	size_t n_endpoints;
	char *prefix;
	char *user, *password;
	char *ca_file, *cert_file, *key_file;
	int connect_timeout_ms, request_timeout_ms;
	int scan_page;
	int watch_idle_ms; /* a silent stream is probed after this long */
	struct co_etcd__cache *cache; /* NULL: off (etcd_cache.c) */
	struct co_etcd__h2 *h2;	      /* kept gRPC connections; NULL: none (etcd_h2.c) */
	int64_t grpc_first_page; /* the gRPC scan's first limit */
	char *describe;

	pthread_mutex_t lock; /* guards the fields below */
	size_t current;	      /* the endpoint that answered last */
	CURL *pool[POOL_MAX];
	size_t n_pool;
	char *token;	    /* auth token, NULL until authenticated */
	atomic_int no_grpc; /* 1: an endpoint answered gRPC with HTTP/1 */
	atomic_ullong grpc_pages; /* gRPC Range pages read (co_etcd_store_grpc_pages) */
	atomic_ullong grpc_txns;    /* txns answered over gRPC (etcd_txn.c) */
	atomic_ullong round_trips;  /* requests sent, gateway and gRPC */
	atomic_ullong watch_stalls; /* streams torn down as stalled */
	atomic_ullong watch_probes; /* probes of silent streams' members */
};

/* A growing byte buffer (a response body, a stream's unfinished line). */
struct buf {
	char *p;
	size_t len, cap;
};

/* libcurl's global init, once per process: 0, or -1 if it failed. */
int co_etcd__curl_ready(void);

/* ---- etcd_http.c ---- */

/* on 1: the calling thread's requests are not counted in round_trips
 * (the cache's own thread: its requests are no operation's). */
void co_etcd__uncounted(int on);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t co_etcd__now_ms(void);

/* Count one request in round_trips, unless the thread is uncounted. */
void co_etcd__round_trip(struct etcd *e);

/* A gateway error answer (`j`: its JSON, NULL if none) as a CO_E* code
 * with its message; gRPC status codes map the same way. */
int co_etcd__gateway_error(const struct etcd *e, size_t endpoint, long http,
			   const cJSON *j, const char *path);

/* 1 if a gateway or gRPC error says the auth token is invalid. */
int co_etcd__is_auth_error(int code, const char *msg);

int co_etcd__buf_add(struct buf *b, const char *data, size_t len);

void co_etcd__buf_free(struct buf *b);


/* A string field of a JSON object ("" when absent); int64s come as strings. */
const char *co_etcd__json_str(const cJSON *obj, const char *name);

/* An int64 field that the gateway prints as a string (or a number). */
int64_t co_etcd__json_i64(const cJSON *obj, const char *name);

int co_etcd__json_true(const cJSON *obj, const char *name);

/* A revision or lease ID as etcd writes it: digits that fit an int64.
 * 0, or -1 for anything else. */
int co_etcd__parse_i64(int64_t *out, const char *s);

/* Add a base64 field for the len bytes at data.  0 / -1 on OOM. */
int co_etcd__json_add_b64(cJSON *obj, const char *name, const char *data, size_t len);

int co_etcd__json_add_i64(cJSON *obj, const char *name, int64_t v);

int co_etcd__oom(void);

/* "<prefix><dir>/<id>" (id may be "" for the directory itself). */
char *co_etcd__key_for(const struct etcd *e, const char *dir, const char *id);

/*
 * Add key and range_end for "every key starting with prefix" to obj: the
 * range end is the prefix with its last byte below 0xff incremented (and
 * what follows dropped); "\0" means "to the end of the keyspace", which is
 * also what the empty prefix needs (etcd refuses an empty key).
 */
int co_etcd__json_add_prefix_range(cJSON *obj, const char *prefix);

void co_etcd__handle_setup(CURL *h, const struct etcd *e);

/* Headers for a request: JSON, no Expect: 100-continue, the auth token. */
struct curl_slist *co_etcd__make_headers(const char *token);

/* What went wrong with a transfer, as a person would say it. */
void co_etcd__describe_curl_error(char *out, size_t len, CURL *h, CURLcode rc,
				  const char *errbuf);

/*
 * POST body to path on the endpoints, starting with the one that answered
 * last and moving on when one cannot be reached.  On an HTTP answer: 0,
 * *out the parsed JSON (NULL if the body was not JSON), *http the status,
 * *endpoint the index that answered.  CO_EUNAVAIL naming every endpoint
 * tried when none answered.
 */
int co_etcd__post_raw(cJSON **out, long *http, size_t *endpoint, struct etcd *e,
		      const char *path, const char *body, const char *token);

/* A copy of the current token, authenticating first if needed.  *out may
 * be NULL (no auth configured). */
int co_etcd__token_get(char **out, struct etcd *e);

void co_etcd__token_drop(struct etcd *e, const char *stale);

/*
 * One gateway call: POST req to path and give back the JSON answer in *out
 * (owned by the caller).  A gateway error becomes a CO_E* code; an invalid
 * token is renewed once.
 */
int co_etcd__call(cJSON **out, struct etcd *e, const char *path, const cJSON *req);

/* The same with the request's JSON text already written. */
int co_etcd__call_body(cJSON **out, struct etcd *e, const char *path, const char *body);

/* ---- etcd_store.c ---- */

/* Parse a stored value into a record; errors name the key. */
int co_etcd__record_from_value(co_record **out, const struct etcd *e, const char *val,
			       size_t len, const char *key);

/* The same for a gateway kv, whose value is base64. */
int co_etcd__record_from_kv(co_record **out, const struct etcd *e, const cJSON *kv,
			    const char *key);

int co_etcd__get(co_record **out, co_version *ver, void *impl, co_kind kind,
		 const char *id);

/* Best effort: a lease nobody uses would expire on its own anyway. */
void co_etcd__lease_revoke(struct etcd *e, const char *id);

/* Whether writing r puts <prefix>claims/<id> under a lease (co_etcd__cas). */
int co_etcd__wants_lease(const co_record *r);

int co_etcd__is_batch_lease(const char *id);

int co_etcd__cas(void *impl, co_kind kind, const char *id, const co_record *r,
		 const co_version *expected, const char *why);

/* co_etcd__cas that, on CO_ERETRY, hands out what the key holds now as
 * the txn's failure branch read it (the backend's cas_read).  `prev`: the
 * record expected at `expected` (NULL: not known), a hint for the claims
 * key's bookkeeping. */
int co_etcd__cas_read(void *impl, co_kind kind, const char *id, const co_record *r,
		      const co_version *expected, const char *why, const co_record *prev,
		      co_record **cur, co_version *cur_ver, int *fresh);

/* Parse "<prefix>tasks/<id>" or "<prefix>swarms/<id>": 0 with *kind and
 * *id (pointing into key), -1 for any other key or an invalid ID. */
int co_etcd__key_parse(const struct etcd *e, const char *key, co_kind *kind,
		       const char **id);

/* The state of s if it is an etcd store, else NULL (borrowed). */
struct etcd *co_etcd__from_store(co_store *s);

/* ---- etcd_batch.c ---- */

int co_etcd__get_many(void *impl, co_store__read *rd, size_t n);

/*
 * All of w in one txn: each key compared to the version read before, and
 * written with its claims key (under its own lease, or removed), as
 * co_etcd__cas does one.  Unlike co_etcd__cas the claims key's previous lease is
 * not looked up and revoked: the put or delete detaches the key from it,
 * so it holds nothing and runs out at its TTL.
 */
int co_etcd__cas_many(void *impl, const co_store__write *w, size_t n, const char *why);

/* A txn answer's header revision (0 if absent). */
int64_t co_etcd__header_rev(const cJSON *resp);

/*
 * What a compare-and-swap txn's answer says (etcd_txn.c).
 * co_etcd__applied_before: 1 if a txn whose compare failed finds the key
 * as it would have made it, `val` byte for byte (NULL: the key gone): an
 * earlier copy of the same txn was applied and its answer lost.
 * co_etcd__failure_read: what the failure branch read (responses[0]),
 * into *cur and *ver (NULL and "" when absent), noted in the cache;
 * CO_EINVAL when the value is not a record of kind/id, CO_EUNAVAIL when
 * the branch read nothing.
 * co_etcd__fence_moved: after a failed fenced txn whose failure branch
 * read the fence key second (responses[1]): CO_EFENCED (with
 * co_store__fenced) if the key left the epoch, else 0.
 * co_etcd__key_unchanged: 1 if the failure branch's read of the key
 * (responses[0]) finds it still at `expected` (absent for ""): the txn's
 * own compare on it held, so another compare failed.
 */
int co_etcd__applied_before(const cJSON *resp, const char *val);
int co_etcd__key_unchanged(const cJSON *resp, const co_version *expected);
int co_etcd__failure_read(co_record **cur, co_version *ver, struct etcd *e,
			  const cJSON *resp, co_kind kind, const char *id, const char *key);
int co_etcd__fence_moved(const cJSON *resp, struct etcd *e, const char *key, int64_t epoch);

/*
 * Send txn: KV.Txn over a kept HTTP/2 connection when the endpoints speak
 * it (CUTOVER_ETCD_GRPC=0: never), else the gateway's /v3/kv/txn.  *out:
 * the answer in the gateway's JSON shape either way, the caller's.  Errors
 * as co_etcd__call_body(); a gRPC status maps as the gateway's code would.
 */
int co_etcd__txn_call(cJSON **out, struct etcd *e, const co_grpc_txn *txn);

/* ---- etcd_range.c ---- */

int co_etcd__list_at(co_record_list *out, int64_t *revision, struct etcd *e,
		     co_kind kind);

int co_etcd__list(co_record_list *out, void *impl, co_kind kind);

/*
 * Tasks then swarms at the revision of the first page.  Over gRPC when the
 * endpoint speaks it, else through the gateway; a gRPC failure falls back
 * to the gateway only before any record was passed on (a scan never
 * repeats a record).
 */
int co_etcd__scan(void *impl, unsigned flags, co_scan_fn fn, void *ctx);

/* ---- etcd_h2.c ---- */

/* What co_etcd__h2_post() returns when an endpoint does not speak HTTP/2
 * (or none is kept): the caller uses the gateway. */
#define CO_ETCD_H2_NOT_GRPC 1

/* The pool for e's endpoints: *out NULL (no error) when any endpoint is
 * https:// or libnghttp2 was not built in.  CO_ENOMEM. */
int co_etcd__h2_new(struct co_etcd__h2 **out, const struct etcd *e);

/* Close every kept connection.  NULL is fine. */
void co_etcd__h2_free(struct co_etcd__h2 *p);

/*
 * One unary call to etcdserverpb.KV/<method> over a kept connection, the
 * answer's body appended to reply->raw (or fed to reply->stream).  0 when
 * a server answered (reply->grpc_status says how); CO_ETCD_H2_NOT_GRPC;
 * CO_EUNAVAIL naming every endpoint tried; CO_ENOMEM.
 */
int co_etcd__h2_post(co_grpc_reply *reply, struct etcd *e, const char *method,
		     const char *token, const co_grpc_buf *request);

/* ---- etcd_watch.c ---- */

void co_etcd__watch_close(void *impl);

int co_etcd__watch_open(void **out, void *impl, const char *prefix);

int co_etcd__watch_next(co_event **out, void *impl, int timeout_ms);

/* co_etcd__watch_open() from revision start_rev (0: from now).  A start
 * below etcd's compacted revision opens, then ends with an error.  With
 * wait_created 0 it returns at once (the watch is live once created; a
 * watch that cannot be created ends, and co_etcd__watch_next says so). */
int co_etcd__watch_open_at(void **out, void *impl, const char *prefix, int64_t start_rev,
			   int wait_created);

/* 1 if the watch's current stream is created and not suspect of a stall. */
int co_etcd__watch_live(void *impl);

/* ---- etcd_cache.c ---- */

struct co_etcd_cache_stats;

/* The cache's part of co_etcd_store_cache_stats(); c may be NULL (off). */
void co_etcd__cache_stats(struct co_etcd_cache_stats *out, struct co_etcd__cache *c);

/*
 * The record cache of store e, holding at most cap entries (LRU by ID).
 * Its watch thread starts on the first co_etcd__cache_get().  CO_ENOMEM.
 */
int co_etcd__cache_new(struct co_etcd__cache **out, struct etcd *e, size_t cap);

/* Start following etcd now rather than at the first write.  NULL is fine. */
void co_etcd__cache_start(struct co_etcd__cache *c);

/* Stop the thread, close its watch, free every entry.  NULL is fine. */
void co_etcd__cache_free(struct co_etcd__cache *c);

/*
 * A guess of what kind/id holds: 1 with *out (a copy, the caller's) and
 * *ver when the entry is there and the cache's watch is known live; 0
 * otherwise (unknown).  Never an etcd round trip.
 */
int co_etcd__cache_get(co_record **out, co_version *ver, struct co_etcd__cache *c,
		       co_kind kind, const char *id);

/*
 * What etcd said kind/id holds at revision mod: r (copied; NULL: absent).
 * Kept only if newer than the entry (by mod_revision).  NULL c is fine.
 */
void co_etcd__cache_note(struct co_etcd__cache *c, co_kind kind, const char *id,
			 const co_record *r, int64_t mod);

#endif
