/*
 * bench_sync.h - the durability floor's syncer, shared by bench_router and
 * bench_serve: a thread that fsyncs a state's WAL on its own connection
 * when asked (the router's group commit without the router), so that a
 * bench can time a bare claim with an outbox entry made durable beside
 * it, the floor the ack rule sets.
 */
#ifndef CO_BENCH_SYNC_H
#define CO_BENCH_SYNC_H

#include "bench_util.h"

#include "core/state.h"

#include <pthread.h>

/*
 * The router's group commit, reduced to what a floor needs: one
 * request at a time, a thread that runs co_state_sync() on its own
 * connection when asked and notes how long the fsync took.
 */
typedef struct bsyncer {
	co_state *st;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int requested, done, stop, failed;
	double took_us;
} bsyncer;

static inline void *bsyncer_main(void *v)
{
	bsyncer *b = v;
	double t0, took;
	int e;

	pthread_mutex_lock(&b->mu);
	while (!b->stop) {
		if (b->requested == b->done) {
			pthread_cond_wait(&b->cv, &b->mu);
			continue;
		}
		pthread_mutex_unlock(&b->mu);
		t0 = co_bench_now_us();
		e = co_state_sync(b->st);
		took = co_bench_now_us() - t0;
		pthread_mutex_lock(&b->mu);
		b->failed |= e < 0;
		b->took_us = took;
		b->done = b->requested;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static inline void bsyncer_request(bsyncer *b)
{
	pthread_mutex_lock(&b->mu);
	b->requested++;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static inline int bsyncer_wait(bsyncer *b)
{
	pthread_mutex_lock(&b->mu);
	while (b->done != b->requested)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	return b->failed ? -1 : 0;
}

/* Stop and join the syncer thread. */
static inline void bsyncer_stop(bsyncer *b, pthread_t th)
{
	pthread_mutex_lock(&b->mu);
	b->stop = 1;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(th, NULL);
}

#endif
