/*
 * etcd_store.h - the new store: etcd v3 through its JSON gateway.
 *
 * Keys <prefix>tasks/<id>, <prefix>swarms/<id>, value = compact canonical
 * JSON; a claimed task with a TTL also holds <prefix>claims/<id> under an
 * etcd lease.  Mutations are txns comparing the mod_revision read before
 * (create_revision 0 for create).  Several endpoints: requests fail over to
 * the next one on a connection error.
 */
#ifndef CO_ETCD_STORE_H
#define CO_ETCD_STORE_H

#include "store.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdint.h>

typedef struct co_etcd_opts {
	const char *const *endpoints; /* "http://127.0.0.1:2379", ... */
	size_t n_endpoints;
	const char *prefix; /* default "/" */
	const char *user;   /* NULL: no auth */
	const char *password;
	const char *ca_file; /* TLS options, NULL for defaults */
	const char *cert_file;
	const char *key_file;
	int connect_timeout_ms; /* default 1000 */
	int request_timeout_ms; /* default 5000 */
	int scan_page; /* keys per page of co_store_scan(); default: 10000 over the
			* gateway, up to 500000 over gRPC */
	/*
	 * The record cache (one-round-trip writes, etcd_cache.c): at most this
	 * many records, LRU by ID.  0: the environment's CUTOVER_ETCD_CACHE
	 * ("off" or "0": no cache; a number: that many), else 50000; <0: off.
	 */
	long cache_entries;
	/* A watch stream silent this long has its member probed; one that does
	 * not answer is torn down as stalled and resumed on the next endpoint.
	 * 0: default 2000. */
	int watch_idle_ms;
} co_etcd_opts;

#define CO_ETCD_OPTS_INIT                                                                \
	{                                                                                \
		NULL, 0, "/", NULL, NULL, NULL, NULL, NULL, 1000, 5000, 10000, 0, 0      \
	}

/*
 * Open the etcd store.  Does not contact etcd (co_store_ping() does), so
 * that a router can start while etcd is down.  CO_EINVAL for bad options
 * (no endpoint, an endpoint that is not http(s)://).  Thread-safe once open;
 * every watch must be closed before the store is freed.  Transport errors
 * and timeouts give CO_EUNAVAIL naming the endpoints tried and the elapsed
 * time; HTTP proxies from the environment are not used.
 */
int co_etcd_store_open(co_store **out, const co_etcd_opts *opts);

/*
 * The options of a configuration's `etcd:` section (endpoints, prefix,
 * auth, TLS files, timeouts) into *o, the rest at their defaults.  The
 * strings are c's (borrowed: c must outlive *o's use).
 */
struct co_config;
void co_etcd_opts_from_config(co_etcd_opts *o, const struct co_config *c);

/*
 * All records of `kind` as stored (no expiry rule applied, any order), read
 * page by page at one etcd revision, which goes to *revision (may be NULL):
 * a consistent snapshot, and the point from which to watch for what came
 * after it.  `s` must come from co_etcd_store_open() (CO_EINVAL if not).
 * *out is owned by the caller.  CO_EUNAVAIL, CO_EINVAL (a stored value is
 * not a valid record), CO_ENOMEM.  Thread-safe.
 */
int co_etcd_store_list_at(co_record_list *out, int64_t *revision, co_store *s,
			  co_kind kind);

/* What etcd says of its own health (co_etcd_store_status). */
/*
 * How many gRPC Range pages this store's scans have read (a scan that fell
 * back to the gateway reads none): for tests and benchmarks.  0 when `s`
 * is not an etcd store.
 */
uint64_t co_etcd_store_grpc_pages(co_store *s);

/*
 * A backfill's batch (migrate/etcd_batch.c): one txn of n puts of recs,
 * each compared to the mod_revision read before (vers[i]; "" = absent
 * then, still absent), with <prefix>claims/<id> deleted where
 * drop_claim[i] (drop_claim may be NULL).  No leases: a claim with a TTL
 * goes through co_store_put_if_newer().  Sent as gRPC where the endpoints
 * speak it.  0; CO_ERETRY when a compare failed (nothing written);
 * CO_EINVAL for more than etcd's 128 operations, a bad revision, or a
 * store that is not etcd's; the store's transport errors.
 */
int co_etcd_store_put_batch(co_store *s, const co_record *const *recs,
			    const char *const *vers, const int *drop_claim, size_t n);

/* How many txns this store sent as gRPC KV.Txn on a kept HTTP/2
 * connection and etcd answered (the rest took the gateway).  0 when `s`
 * is not an etcd store. */
uint64_t co_etcd_store_grpc_txns(co_store *s);

/*
 * Requests this store has sent, gateway and gRPC (every endpoint tried counts, a
 * watch's stream and its probes do not): round trips, for tests and
 * benchmarks.  0 when `s` is not an etcd store.
 */
uint64_t co_etcd_store_round_trips(co_store *s);

/* What the record cache holds and has done (co_etcd_store_cache_stats). */
typedef struct co_etcd_cache_stats {
	int enabled;	    /* 0: the cache is off (the rest is 0) */
	int live;	    /* its watch is known live: entries are used */
	size_t entries, capacity;
	uint64_t hits;	    /* writes sent on a cached guess */
	uint64_t misses;    /* lookups that found nothing usable */
	uint64_t resyncs;   /* fresh ranges (start, compaction, broken watch) */
	int64_t revision;   /* the last revision the cache has seen */
	uint64_t watch_stalls; /* this store's watch streams torn down as stalled */
} co_etcd_cache_stats;

/*
 * Start the record cache's watch now (a range, then a watch from its
 * revision, in a thread of the store's) instead of at the first write, so
 * that the first claims already find it warm: for a long-running router
 * or server.  No-op when s is not an etcd store or its cache is off.
 */
void co_etcd_store_cache_start(co_store *s);

/* Fill *out for etcd store s (all zero when s is not one).  Thread-safe. */
void co_etcd_store_cache_stats(co_etcd_cache_stats *out, co_store *s);

typedef struct co_etcd_status {
	char version[32];  /* "3.4.30" */
	uint64_t leader;   /* member ID of the leader; 0: no leader */
	int64_t db_size;   /* bytes */
	char alarms[256];  /* "NOSPACE, CORRUPT" (each member's, deduplicated); "" */
	char errors[256];  /* the status call's own "errors" list joined; "" */
} co_etcd_status;

/*
 * Ask the endpoint that answers for its status (leader, version, size,
 * errors) and the cluster's alarms (NOSPACE, CORRUPT): the pre-switch
 * checks of the go/no-go gate (flags/gate.h).  Two gateway calls, each
 * under the request timeout; not through the circuit breaker, which is
 * the caller's to consult (co_store_breaker).  `s` must come from
 * co_etcd_store_open() (CO_EINVAL if not).  CO_EUNAVAIL when no endpoint
 * answers.  Thread-safe.
 */
int co_etcd_store_status(co_etcd_status *out, co_store *s);

/*
 * The store's gateway transport, for a client that keeps keys of its own
 * (the router fleet's flags document and membership, router/fleet.h):
 * POST `req` to `path` ("/v3/kv/range", "/v3/kv/txn", ...) with the
 * store's endpoints and failover, its kept-alive handles, TLS files and
 * auth (an expired token is renewed once).  Keys in `req` are the
 * caller's, base64 as the gateway wants them; the store's prefix is not
 * added.  Not through the circuit breaker.  *out: the gateway's JSON
 * answer (caller deletes).  CO_EUNAVAIL when no endpoint answers, the
 * gateway's error as a CO_E* code otherwise, CO_EINVAL when `s` is not
 * an etcd store.  Thread-safe.
 */
int co_etcd_store_call(cJSON **out, co_store *s, const char *path, const cJSON *req);

/* How many endpoints `s` has (0 if it is not an etcd store). */
size_t co_etcd_store_endpoints(co_store *s);

/*
 * Set up `h` for a streaming POST of `body` to `path` on endpoint
 * i % co_etcd_store_endpoints(s): the store's TLS files, connect timeout
 * and auth token, no overall timeout (a stream has no end).  The caller
 * sets the write callback and performs; `body` is not copied (it must
 * outlive the transfer) and *hdrs (the headers) must be freed with
 * curl_slist_free_all after it.  CO_EINVAL when `s` is not
 * an etcd store, CO_EUNAVAIL when authentication fails, CO_ENOMEM.
 */
int co_etcd_store_stream_setup(CURL *h, struct curl_slist **hdrs, co_store *s, size_t i,
			       const char *path, const char *body);

#endif
