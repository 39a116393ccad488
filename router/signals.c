/*
 * signals.c - the per-second ring of counts, failures and latency
 * histograms behind the live-signal triggers (see signals.h).
 *
 * The ring has window + 1 slots; a slot remembers which second it holds,
 * and the first record of a new second clears it.  A snapshot merges the
 * slots whose second lies inside the window.
 */
#include "signals.h"

#include "core/error.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
	int64_t sec; /* the second it holds, -1: none */
	co_signal_cell cell[2][CO_OP__COUNT];
};

struct co_signals {
	pthread_mutex_t mu;
	int window_s;
	int n_slots;
	struct slot *slots;
};

/* Upper bound of each bucket in us (the last is "anything longer"). */
static int64_t bounds[CO_SIGNALS_HIST];
static pthread_once_t bounds_once = PTHREAD_ONCE_INIT;

static void bounds_init(void)
{
	for (int i = 0; i < CO_SIGNALS_HIST; i++)
		bounds[i] = (int64_t)llround(50.0 * pow(2.0, i / 4.0));
	bounds[CO_SIGNALS_HIST - 1] = INT64_MAX;
}

static int bucket_of(int64_t us)
{
	int lo = 0, hi = CO_SIGNALS_HIST - 1;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (us <= bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

int64_t co_signals_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

int co_signals_new(co_signals **out, int window_s)
{
	co_signals *s;

	if (window_s < 1 || window_s > CO_SIGNALS_WINDOW_MAX)
		return co_error_set(CO_EINVAL,
				    "signal window %d s: must be from 1 to %d s",
				    window_s, CO_SIGNALS_WINDOW_MAX);
	pthread_once(&bounds_once, bounds_init);
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->slots = calloc((size_t)window_s + 1, sizeof(*s->slots))) == NULL) {
		free(s);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	s->window_s = window_s;
	s->n_slots = window_s + 1;
	for (int i = 0; i < s->n_slots; i++)
		s->slots[i].sec = -1;
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;
}

void co_signals_free(co_signals *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s->slots);
	free(s);
}

int co_signals_is_failure(int error)
{
	return error == CO_EUNAVAIL || error == CO_EIO || error == CO_ENOMEM ||
	       error == CO_ERETRY;
}

void co_signals_record_at(co_signals *s, int64_t now_s, co_side side, co_op op, int error,
			  int64_t latency_us)
{
	int b = bucket_of(latency_us < 0 ? 0 : latency_us), k;
	struct slot *sl;
	co_signal_cell *c;

	if (s == NULL || (side != CO_SIDE_GIT && side != CO_SIDE_ETCD) || op < 0 ||
	    op >= CO_OP__COUNT || now_s < 0)
		return;
	k = side == CO_SIDE_ETCD;
	pthread_mutex_lock(&s->mu);
	sl = &s->slots[now_s % s->n_slots];
	if (sl->sec != now_s) {
		memset(sl->cell, 0, sizeof(sl->cell));
		sl->sec = now_s;
	}
	c = &sl->cell[k][op];
	c->count++;
	c->errors += co_signals_is_failure(error);
	c->hist[b]++;
	pthread_mutex_unlock(&s->mu);
}

void co_signals_record(co_signals *s, co_side side, co_op op, int error,
		       int64_t latency_us)
{
	co_signals_record_at(s, co_signals_now_s(), side, op, error, latency_us);
}

void co_signal_cell_add(co_signal_cell *a, const co_signal_cell *b)
{
	a->count += b->count;
	a->errors += b->errors;
	for (int h = 0; h < CO_SIGNALS_HIST; h++)
		a->hist[h] += b->hist[h];
}

void co_signals_snapshot_at(co_signal_snapshot *out, co_signals *s, int64_t now_s)
{
	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return;
	out->window_s = s->window_s;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n_slots; i++) {
		const struct slot *sl = &s->slots[i];

		if (sl->sec < 0 || sl->sec > now_s || sl->sec <= now_s - s->window_s)
			continue;
		for (int k = 0; k < 2; k++)
			for (int op = 0; op < CO_OP__COUNT; op++)
				co_signal_cell_add(&out->cell[k][op], &sl->cell[k][op]);
	}
	pthread_mutex_unlock(&s->mu);
}

void co_signals_snapshot(co_signal_snapshot *out, co_signals *s)
{
	co_signals_snapshot_at(out, s, co_signals_now_s());
}

int64_t co_signal_p95_us(const co_signal_cell *c)
{
	int64_t n = 0, rank, seen = 0;

	pthread_once(&bounds_once, bounds_init);
	for (int h = 0; h < CO_SIGNALS_HIST; h++)
		n += c->hist[h];
	if (n == 0)
		return 0;
	/* the smallest value with at least 95% of the operations at or below */
	rank = (n * 95 + 99) / 100;
	for (int h = 0; h < CO_SIGNALS_HIST; h++) {
		int64_t lo = h ? bounds[h - 1] : 0, hi;

		if (seen + c->hist[h] < rank) {
			seen += c->hist[h];
			continue;
		}
		if (h == CO_SIGNALS_HIST - 1)
			return lo; /* open bucket: its lower edge */
		hi = bounds[h];
		/* linear inside the bucket */
		return lo + (hi - lo) * (rank - seen) / (int64_t)c->hist[h];
	}
	return bounds[CO_SIGNALS_HIST - 2];
}
