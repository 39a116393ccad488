/*
 * etcd_writers.c - the backfill's etcd batches on several connections at
 * once, retired in order for the checkpoint.
 *
 * One txn of 64 puts waits for etcd's raft round and fsync; with one
 * connection the next batch waits for it too.  etcd commits the txns of
 * several connections together, so a few batches in flight nearly double
 * what it takes a second on this machine (bench_migrate's floor: 14k
 * records/s on one connection, 23-27k on two or four).
 *
 * Each writer thread has its own gateway client (co_etcd_batch) and, for a
 * batch whose compare failed, its own etcd store, through which the batch
 * is redone one record at a time (co_store_put_if_newer re-reads: never
 * backwards).  Batches are numbered as they are handed in and retired in
 * that order, on the caller's thread, through its callback: the caller
 * checkpoints there, so a checkpoint never covers a batch not yet written,
 * whatever order the writers finish in.  A failure (a batch's, or the
 * callback's) is seen when its batch comes up for retirement: from then on
 * no batch is taken in and nothing after it is retired.  Batches handed in
 * after it, up to one per writer, may still be written without being
 * counted: they are compare-and-swaps, and a rerun compares again.
 */
#include "migrate_internal.h"

#include "../src/core/error.h"
#include "../src/store/etcd_store.h"
#include "../src/store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_FREE, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

typedef struct slot {
	co_mig_job job;
	int state;
	size_t seq;
	size_t written; /* records the batch wrote (a redone batch: fewer) */
	int error;
	char msg[1024];
} slot;

typedef struct writer {
	struct co_mig_writers *w;
	co_etcd_batch *eb;
	co_store *es; /* opened on the first failed compare */
	pthread_t thread;
	int started;
} writer;

struct co_mig_writers {
	const co_etcd_opts *etcd;
	co_mig_retired_fn retired;
	void *ud;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* any slot changed state, or stop */
	slot slots[CO_MIG_WRITERS_MAX];
	writer writers[CO_MIG_WRITERS_MAX];
	size_t n;
	size_t next_seq;   /* the number the next batch handed in gets */
	size_t retire_seq; /* the batch to retire next */
	int error;	   /* the first failure, 0 while none */
	char msg[1024];
	int stop;
};

/* One batch; on a lost compare, one record at a time through the store. */
static int write_batch(size_t *written, writer *wr, const co_mig_job *j)
{
	size_t i;
	int error, applied;

	*written = 0;
	error = co_etcd_batch_put(wr->eb, j->recs, j->vers, j->drop, j->n);
	if (error == 0) {
		*written = j->n;
		return 0;
	}
	if (error != CO_ERETRY)
		return error;
	if (!wr->es && (error = co_etcd_store_open(&wr->es, wr->w->etcd)) < 0)
		return error;
	for (i = 0; i < j->n; i++) {
		if ((error = co_store_put_if_newer(wr->es, j->recs[i], &applied)) < 0)
			return error;
		*written += applied ? 1 : 0;
	}
	return 0;
}

/* The queued slot handed in first, or NULL. */
static slot *first_queued(struct co_mig_writers *w)
{
	slot *best = NULL;
	size_t i;

	for (i = 0; i < w->n; i++)
		if (w->slots[i].state == SLOT_QUEUED &&
		    (!best || w->slots[i].seq < best->seq))
			best = &w->slots[i];
	return best;
}

static void *writer_main(void *arg)
{
	writer *wr = arg;
	struct co_mig_writers *w = wr->w;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		slot *s;

		while (!w->stop && (s = first_queued(w)) == NULL)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stop)
			break;
		s->state = SLOT_RUNNING;
		pthread_mutex_unlock(&w->lock);
		s->error = write_batch(&s->written, wr, &s->job);
		if (s->error < 0)
			snprintf(s->msg, sizeof(s->msg), "%s", co_error_last());
		pthread_mutex_lock(&w->lock);
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/*
 * Retire the finished batches that come next in order; w->lock held, and
 * dropped around the callback (a checkpoint is a synced SQLite write).
 */
static void retire_locked(struct co_mig_writers *w)
{
	for (;;) {
		slot *s = NULL;
		size_t i;

		for (i = 0; i < w->n; i++)
			if (w->slots[i].state == SLOT_DONE && w->slots[i].seq == w->retire_seq)
				s = &w->slots[i];
		if (s == NULL || w->error)
			return;
		if (s->error < 0) {
			w->error = s->error;
			snprintf(w->msg, sizeof(w->msg), "%s", s->msg);
			return;
		}
		pthread_mutex_unlock(&w->lock);
		if (w->retired) {
			int error = w->retired(w->ud, s->job.recs[s->job.n - 1], s->job.n, s->written);

			if (error < 0) {
				pthread_mutex_lock(&w->lock);
				w->error = error;
				snprintf(w->msg, sizeof(w->msg), "%s", co_error_last());
				return;
			}
		}
		pthread_mutex_lock(&w->lock);
		s->state = SLOT_FREE;
		w->retire_seq++;
		pthread_cond_broadcast(&w->cond);
	}
}

static int failed_locked(struct co_mig_writers *w)
{
	return co_error_set(w->error, "%s", w->msg);
}

int co_mig__writers_open(co_mig_writers **out, const co_etcd_opts *etcd, size_t n,
			 co_mig_retired_fn retired, void *ud)
{
	struct co_mig_writers *w;
	size_t i;
	int error;

	*out = NULL;
	if (n < 1)
		n = 1;
	if (n > CO_MIG_WRITERS_MAX)
		n = CO_MIG_WRITERS_MAX;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	w->etcd = etcd;
	w->retired = retired;
	w->ud = ud;
	w->n = n;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	for (i = 0; i < n; i++) {
		w->writers[i].w = w;
		if ((error = co_etcd_batch_open(&w->writers[i].eb, etcd)) < 0)
			goto fail;
	}
	for (i = 0; i < n; i++) {
		if (pthread_create(&w->writers[i].thread, NULL, writer_main, &w->writers[i]) != 0) {
			error = co_error_set(CO_EIO, "migrate: cannot start an etcd writer thread");
			goto fail;
		}
		w->writers[i].started = 1;
	}
	*out = w;
	return 0;
fail:
	co_mig__writers_free(w);
	return error;
}

int co_mig__writers_submit(co_mig_writers *w, const co_mig_job *job)
{
	slot *s = NULL;
	size_t i;
	int error;

	if (job->n == 0)
		return 0;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		retire_locked(w);
		if (w->error) {
			error = failed_locked(w);
			pthread_mutex_unlock(&w->lock);
			return error;
		}
		for (i = 0; i < w->n && !s; i++)
			if (w->slots[i].state == SLOT_FREE)
				s = &w->slots[i];
		if (s)
			break;
		pthread_cond_wait(&w->cond, &w->lock);
	}
	s->job = *job;
	s->seq = w->next_seq++;
	s->error = 0;
	s->written = 0;
	s->state = SLOT_QUEUED;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

int co_mig__writers_drain(co_mig_writers *w)
{
	int error = 0;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		retire_locked(w);
		if (w->retire_seq == w->next_seq)
			break;
		if (w->error) {
			/* Wait for the batches still running: nothing of theirs
			 * is retired, but none may outlive this call. */
			size_t i, busy = 0;

			for (i = 0; i < w->n; i++)
				busy += w->slots[i].state == SLOT_QUEUED ||
					w->slots[i].state == SLOT_RUNNING;
			if (busy == 0)
				break;
		}
		pthread_cond_wait(&w->cond, &w->lock);
	}
	if (w->error)
		error = failed_locked(w);
	pthread_mutex_unlock(&w->lock);
	return error;
}

void co_mig__writers_free(co_mig_writers *w)
{
	size_t i;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < w->n; i++) {
		if (w->writers[i].started)
			pthread_join(w->writers[i].thread, NULL);
		co_etcd_batch_free(w->writers[i].eb);
		co_store_free(w->writers[i].es);
	}
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
