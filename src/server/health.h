/*
 * health.h - a background probe of both stores, so that /healthz, /metrics
 * and `cutover status` never wait on a store.
 *
 * A thread per store pings it every interval under a short bound and keeps
 * the last answer in memory, with when it was taken; readers copy it under
 * a mutex and never touch a store.  Each ping goes through the store's
 * circuit breaker (store.h), so while a store is down the probe is also
 * what lets the breaker try again and close as soon as the store answers.
 * The last result is also written to <state dir>/health.json (mode 0600,
 * temp + rename) for `cutover status` in another process.
 *
 * Thread-safe.  Not here: what the metrics print (server.c).
 */
#ifndef CO_SERVER_HEALTH_H
#define CO_SERVER_HEALTH_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct co_health co_health;

/*
 * Default probe period and bound on one ping.  Three pings in a row that
 * time out open a store's breaker (store.h), so these bound how long a
 * frozen store goes unnoticed when no request calls it: about 750 ms.  A
 * healthy store answers a ping in a millisecond or two; it takes three
 * pings in a row over 250 ms, with no successful call of anyone's in
 * between, to open the breaker by mistake.
 */
#define CO_HEALTH_INTERVAL_MS 250
#define CO_HEALTH_TIMEOUT_MS 250

/* What the probe last saw of one store. */
typedef struct co_health_store {
	int probed;	       /* 0 until the first ping returned */
	int up;		       /* the last ping succeeded */
	int64_t checked_ms;    /* wall-clock ms of the last ping's answer */
	int64_t up_since_ms;   /* wall-clock ms since when it is up (0: down) */
	double ping_seconds;   /* how long the last ping took */
	char error[512];       /* the last ping's error, "" when up */
	co_breaker_info breaker; /* the store's breaker at that moment */
} co_health_store;

/*
 * Start probing `git` and `etcd` (borrowed; either may be NULL) every
 * interval_ms (0: default) with each ping bounded by timeout_ms (0:
 * default).  `state_dir` (may be NULL: no file) is where health.json goes.
 * The first round runs before this returns, so readers never see "not
 * probed yet" once started.  CO_ENOMEM.
 */
int co_health_start(co_health **out, co_store *git, co_store *etcd, int interval_ms,
		    int timeout_ms, const char *state_dir);

/* Stop the thread and free; NULL is fine. */
void co_health_stop(co_health *h);

/* The last result for git (side 0) or etcd (side 1); never blocks on a
 * store.  A store whose probe has not answered for four intervals (a
 * ping stuck past its bound) reads as down, with that as its error. */
void co_health_get(co_health_store *out, co_health *h, int side);

/*
 * Each probed store's last probe under `stores` (a cJSON object):
 * {"git":{"up","probe_age_ms","error"?,"breaker":{"state",...}},"etcd":...};
 * the breaker as it is now, from memory.
 */
struct cJSON;
void co_health_json(struct cJSON *stores, co_health *h);

/* The breakers' gauges and counters of both stores (either may be NULL) in
 * Prometheus text, appended as co_metrics_appendf() does.  CO_ENOMEM. */
int co_health_breaker_metrics(char **buf, size_t *len, size_t *cap, co_store *git,
			      co_store *etcd);

/*
 * The state dir's health under `o` (a cJSON object) as "state_dir":
 * {"stalled","fsync_in_flight_ms","error"?}, from what the caller read from
 * memory (co_router_sync_in_flight_ms): stalled once an fsync has been in
 * flight stall_ms or more, with the error "state dir stalled: fsync in
 * flight 4.2 s".  Returns 1 when stalled, else 0.
 */
int co_health_state_dir_json(struct cJSON *o, int64_t fsync_in_flight_ms, int stall_ms);

/* Seconds a client should wait after a 503: until the next probe of the
 * longest-open breaker of either store, at least 1. */
int co_health_retry_after(co_store *git, co_store *etcd);

/* File name of the probe's result in the state dir. */
#define CO_HEALTH_FILE "health.json"

#endif
