/*
 * demo_swarms.h - the simulated swarms of `cutover demo` (demo_swarms.c).
 *
 * Ownership: a pool is the caller's (co_demo_pool_init, co_demo_pool_clear);
 * the swarms borrow it and the router, which must outlive them.  Errors are
 * CO_E* codes with co_error_last() set (error.h).
 */
#ifndef CO_DEMO_SWARMS_H
#define CO_DEMO_SWARMS_H

#include "router/router.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* The open tasks the swarms pick from (available as far as they know). */
typedef struct co_demo_pool {
	pthread_mutex_t mu;
	char **ids;
	size_t n, cap;
} co_demo_pool;

void co_demo_pool_init(co_demo_pool *p);
/* Add a copy of id.  CO_ENOMEM: not added. */
int co_demo_pool_add(co_demo_pool *p, const char *id);
/* Free every ID and the lock; init again before reuse. */
void co_demo_pool_clear(co_demo_pool *p);

/* What one swarm did during one stage. */
typedef struct co_demo_tally {
	long ops, won, lost, completed, released, created, errors;
	long primary_git, primary_etcd;
	int64_t *lat_us; /* claim latencies: won claims, in microseconds, with
			  * the low bit set when etcd decided the claim */
	size_t n_lat, cap_lat;
	char last_error[256];
} co_demo_tally;


typedef struct co_demo_swarms co_demo_swarms;

/* n swarms named swarm-1 .. swarm-n.  CO_ENOMEM. */
int co_demo_swarms_new(co_demo_swarms **out, int n, co_router *router,
		       co_demo_pool *open);
void co_demo_swarms_free(co_demo_swarms *sw);
/* The name of swarm i (0-based), owned by sw. */
const char *co_demo_swarm_name(const co_demo_swarms *sw, int i);

/*
 * Run every swarm for ms milliseconds (less once *interrupted is set), then
 * sum what they did into *sum.  *lat (the caller frees it; NULL when no
 * claim was won) gets the won claims' latencies in microseconds, sorted,
 * with the low bit set where etcd decided the claim; *elapsed_us the wall
 * time.  CO_EIO: a thread could not be started (those started are joined).
 */
int co_demo_swarms_run(co_demo_tally *sum, int64_t **lat, size_t *n_lat,
		       int64_t *elapsed_us, co_demo_swarms *sw, const char *stage, int ms,
		       volatile sig_atomic_t *interrupted);

#endif
