/*
 * demo_swarms.c - the demo's simulated swarms: one thread per swarm that
 * creates tasks (one op in ten) and claims a random open one through the
 * router, and when it wins completes a quarter of them and hands the rest
 * back, as a real swarm on a task board would.  A run lasts one stage;
 * what the swarms did comes back summed, with every won claim's latency
 * marked with the store that decided it.
 */
#include "demo_swarms.h"

#include "scratch_stack.h"

#include "../core/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLAIM_TTL 60

int co_demo_pool_add(co_demo_pool *p, const char *id)
{
	char *copy = strdup(id);
	int error = 0;

	if (!copy)
		return co_error_set(CO_ENOMEM, "out of memory");
	pthread_mutex_lock(&p->mu);
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		char **v = realloc(p->ids, cap * sizeof(*v));

		if (!v) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		p->ids = v;
		p->cap = cap;
	}
	p->ids[p->n++] = copy;
	copy = NULL;
done:
	pthread_mutex_unlock(&p->mu);
	free(copy);
	return error;
}

/* A random open ID copied into buf; 0, or -1 when the pool is empty. */
static int pool_pick(char *buf, size_t len, co_demo_pool *p, unsigned *seed)
{
	int r = -1;

	pthread_mutex_lock(&p->mu);
	if (p->n > 0) {
		snprintf(buf, len, "%s", p->ids[(size_t)rand_r(seed) % p->n]);
		r = 0;
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

static void pool_remove(co_demo_pool *p, const char *id)
{
	size_t i;

	pthread_mutex_lock(&p->mu);
	for (i = 0; i < p->n; i++) {
		if (strcmp(p->ids[i], id) == 0) {
			free(p->ids[i]);
			p->ids[i] = p->ids[--p->n];
			break;
		}
	}
	pthread_mutex_unlock(&p->mu);
}

void co_demo_pool_init(co_demo_pool *p)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
}

void co_demo_pool_clear(co_demo_pool *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->ids[i]);
	free(p->ids);
	p->ids = NULL;
	p->n = p->cap = 0;
	pthread_mutex_destroy(&p->mu);
}

struct swarm {
	pthread_t thread;
	int started;
	int idx;
	char name[32];
	const char *stage; /* for the IDs of created tasks */
	unsigned seed;
	co_router *router;
	co_demo_pool *open;
	atomic_int *stop;
	long n_created; /* over the whole demo: created IDs stay unique */
	co_demo_tally t;
};
typedef struct swarm swarm;

static void tally_error(co_demo_tally *t, int error)
{
	t->errors++;
	snprintf(t->last_error, sizeof(t->last_error), "%s (%s)", co_error_last(),
		 co_error_name(error));
}

static void tally_latency(co_demo_tally *t, int64_t us, int by_etcd)
{
	if (t->n_lat == t->cap_lat) {
		size_t cap = t->cap_lat ? t->cap_lat * 2 : 1024;
		int64_t *v = realloc(t->lat_us, cap * sizeof(*v));

		if (!v)
			return; /* a missing sample is no reason to stop a swarm */
		t->lat_us = v;
		t->cap_lat = cap;
	}
	/* a microsecond of precision buys the decider a place to live */
	t->lat_us[t->n_lat++] = (us & ~(int64_t)1) | (by_etcd ? 1 : 0);
}

/* Create a new task through the router, as a planner would. */
static void swarm_create(swarm *s)
{
	co_record *t = NULL, *got = NULL;
	char id[96];
	int error;

	snprintf(id, sizeof(id), "D%s.%d.%ld", s->stage, s->idx, ++s->n_created);
	if ((error = co_record_new(&t, CO_KIND_TASK, id)) < 0 ||
	    (t->type = strdup("demo")) == NULL) {
		tally_error(&s->t, error < 0 ? error : CO_ENOMEM);
		goto done;
	}
	t->rev = 1;
	if ((error = co_router_task_create(&got, s->router, t)) < 0) {
		tally_error(&s->t, error);
		goto done;
	}
	s->t.ops++;
	s->t.created++;
	if (co_demo_pool_add(s->open, id) < 0)
		tally_error(&s->t, CO_ENOMEM);
done:
	co_record_free(got);
	co_record_free(t);
}

/* Claim an open task; if won, work on it (not really) and release it. */
static void swarm_claim(swarm *s)
{
	co_record *got = NULL, *rel = NULL;
	co_route rt;
	co_status to;
	char id[160];
	int64_t t0;
	int error;

	if (pool_pick(id, sizeof(id), s->open, &s->seed) < 0) {
		swarm_create(s);
		return;
	}
	rt.primary = CO_SIDE_GIT;
	if (co_router_route(&rt, s->router, CO_OP_TASK_CLAIM, id) == 0) {
		if (rt.primary == CO_SIDE_ETCD)
			s->t.primary_etcd++;
		else
			s->t.primary_git++;
	}
	t0 = co_scratch_mono_us();
	error = co_router_claim(&got, s->router, id, s->name, CLAIM_TTL);
	s->t.ops++;
	co_record_free(got); /* a loser gets the current record too */
	got = NULL;
	if (error == CO_ECONFLICT || error == CO_ENOTFOUND) {
		/* Another swarm was faster: the store's CAS picked one winner. */
		s->t.lost++;
		return;
	}
	if (error < 0) {
		tally_error(&s->t, error);
		return;
	}
	tally_latency(&s->t, co_scratch_mono_us() - t0, rt.primary == CO_SIDE_ETCD);
	s->t.won++;

	/* A quarter of the work gets done; the rest is handed back. */
	to = rand_r(&s->seed) % 4 == 0 ? CO_STATUS_COMPLETE : CO_STATUS_AVAILABLE;
	if (to == CO_STATUS_COMPLETE)
		pool_remove(s->open, id);
	error = co_router_release(&rel, s->router, id, s->name, to);
	s->t.ops++;
	co_record_free(rel);
	if (error < 0) {
		tally_error(&s->t, error);
		return;
	}
	if (to == CO_STATUS_COMPLETE)
		s->t.completed++;
	else
		s->t.released++;
}

static void *swarm_main(void *arg)
{
	swarm *s = arg;

	/* At least one claim per stage, however short: every stage has figures. */
	swarm_claim(s);
	while (!atomic_load(s->stop)) {
		if (rand_r(&s->seed) % 10 == 0)
			swarm_create(s);
		else
			swarm_claim(s);
	}
	return NULL;
}


struct co_demo_swarms {
	swarm *s;
	int n;
	atomic_int stop;
};

int co_demo_swarms_new(co_demo_swarms **out, int n, co_router *router,
		       co_demo_pool *open)
{
	co_demo_swarms *sw = calloc(1, sizeof(*sw));
	int i;

	if (sw == NULL || (sw->s = calloc((size_t)n, sizeof(*sw->s))) == NULL) {
		free(sw);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	sw->n = n;
	for (i = 0; i < n; i++) {
		swarm *s = &sw->s[i];

		s->idx = i + 1;
		snprintf(s->name, sizeof(s->name), "swarm-%d", i + 1);
		s->seed = (unsigned)(0x5eed + 7919 * i);
		s->router = router;
		s->open = open;
		s->stop = &sw->stop;
	}
	*out = sw;
	return 0;
}

void co_demo_swarms_free(co_demo_swarms *sw)
{
	if (sw == NULL)
		return;
	for (int i = 0; i < sw->n; i++)
		free(sw->s[i].t.lat_us);
	free(sw->s);
	free(sw);
}

const char *co_demo_swarm_name(const co_demo_swarms *sw, int i)
{
	return sw->s[i].name;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

int co_demo_swarms_run(co_demo_tally *sum, int64_t **lat_out, size_t *n_lat_out,
		       int64_t *elapsed_us, co_demo_swarms *sw, const char *stage, int ms,
		       volatile sig_atomic_t *interrupted)
{
	int64_t *lat = NULL, t0;
	size_t n_lat = 0, k;
	int i, error = 0;

	memset(sum, 0, sizeof(*sum));
	*lat_out = NULL;
	*n_lat_out = 0;
	atomic_store(&sw->stop, 0);
	for (i = 0; i < sw->n; i++) {
		swarm *s = &sw->s[i];

		free(s->t.lat_us);
		memset(&s->t, 0, sizeof(s->t));
		s->stage = stage;
		s->started = 0;
	}
	t0 = co_scratch_mono_us();
	for (i = 0; i < sw->n; i++) {
		if (pthread_create(&sw->s[i].thread, NULL, swarm_main, &sw->s[i]) != 0) {
			error = co_error_set(CO_EIO, "cannot start swarm thread %d", i + 1);
			break;
		}
		sw->s[i].started = 1;
	}
	/* Sleep `ms` in slices, returning early on SIGINT/SIGTERM. */
	while (error == 0 && ms > 0 && !*interrupted) {
		int slice = ms < 50 ? ms : 50;

		co_scratch_sleep_ms(slice);
		ms -= slice;
	}
	atomic_store(&sw->stop, 1);
	for (i = 0; i < sw->n; i++)
		if (sw->s[i].started)
			pthread_join(sw->s[i].thread, NULL);
	*elapsed_us = co_scratch_mono_us() - t0;
	if (error < 0)
		return error;

	for (i = 0; i < sw->n; i++) {
		co_demo_tally *t = &sw->s[i].t;

		sum->ops += t->ops;
		sum->won += t->won;
		sum->lost += t->lost;
		sum->completed += t->completed;
		sum->released += t->released;
		sum->created += t->created;
		sum->errors += t->errors;
		sum->primary_git += t->primary_git;
		sum->primary_etcd += t->primary_etcd;
		n_lat += t->n_lat;
		if (t->last_error[0])
			memcpy(sum->last_error, t->last_error, sizeof(sum->last_error));
	}
	if (n_lat && (lat = malloc(n_lat * sizeof(*lat))) != NULL) {
		for (i = 0, k = 0; i < sw->n; i++) {
			memcpy(lat + k, sw->s[i].t.lat_us, sw->s[i].t.n_lat * sizeof(*lat));
			k += sw->s[i].t.n_lat;
		}
		qsort(lat, n_lat, sizeof(*lat), cmp_i64);
		*lat_out = lat;
		*n_lat_out = n_lat;
	}
	return 0;
}
