/*
 * metrics.c - operation counters and latency histograms for GET /metrics.
 *
 * One fixed table indexed by operation, serving store and result (the
 * error code), each cell a count and a cumulative histogram with fixed
 * buckets, under one mutex: an observation is a handful of additions, so a
 * lock held for nanoseconds beats anything clever.  Only cells that have
 * been observed are printed, which keeps the text short.  The gauges
 * (kill switch, outbox depth, consistency, store health) are read at
 * scrape time by server.c, not kept here.
 */
#include "server.h"

#include "core/error.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Result index: -code for the CO_E* codes 0..-8. */
#define N_RESULTS 9
#define N_STORES 2

static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				   0.1,	  0.25,	  0.5,	 1,    2.5,   5};
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

typedef struct cell {
	uint64_t count;
	double sum;
	uint64_t buckets[N_BUCKETS]; /* non-cumulative; summed when printed */
} cell;

struct co_metrics {
	pthread_mutex_t lock;
	cell cells[CO_OP__COUNT][N_STORES][N_RESULTS];
};

int co_metrics_new(co_metrics **out)
{
	co_metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return 0;
}

void co_metrics_free(co_metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const char *result_name(int idx)
{
	return idx == 0 ? "ok" : co_error_name(-idx);
}

void co_metrics_observe(co_metrics *m, co_op op, co_side store, int code, double seconds)
{
	int r = code <= 0 && code > -N_RESULTS ? -code : CO_EIO * -1;
	int s = store == CO_SIDE_ETCD ? 1 : 0;
	size_t b;
	cell *c;

	if ((int)op < 0 || op >= CO_OP__COUNT)
		return;
	pthread_mutex_lock(&m->lock);
	c = &m->cells[op][s][r];
	c->count++;
	c->sum += seconds;
	for (b = 0; b < N_BUCKETS; b++) {
		if (seconds <= bucket_le[b]) {
			c->buckets[b]++;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

int co_metrics_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = *cap - *len;

		va_start(ap, fmt);
		n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return co_error_set(CO_ENOMEM, "format failed");
		if (*buf && (size_t)n < room) {
			*len += (size_t)n;
			return 0;
		}
		{
			size_t ncap = *cap ? *cap * 2 : 4096;
			char *nb;

			while (ncap < *len + (size_t)n + 1)
				ncap *= 2;
			if ((nb = realloc(*buf, ncap)) == NULL)
				return co_error_set(CO_ENOMEM, "out of memory");
			*buf = nb;
			*cap = ncap;
		}
	}
}

int co_metrics_format(char **buf, size_t *len, size_t *cap, co_metrics *m)
{
	static const char *stores[N_STORES] = {"git", "etcd"};
	cell(*snap)[N_STORES][N_RESULTS];
	int op, s, r, error = 0;
	size_t b;

	/* Copy under the lock, print without it: a slow scrape must not
	 * stall the request threads. */
	if ((snap = malloc(sizeof(m->cells))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	pthread_mutex_lock(&m->lock);
	memcpy(snap, m->cells, sizeof(m->cells));
	pthread_mutex_unlock(&m->lock);

	if ((error = co_metrics_appendf(
		 buf, len, cap,
		 "# HELP cutover_ops_total Operations served, by operation, primary "
		 "store and result.\n# TYPE cutover_ops_total counter\n")) < 0)
		goto done;
	for (op = 0; op < CO_OP__COUNT; op++)
		for (s = 0; s < N_STORES; s++)
			for (r = 0; r < N_RESULTS; r++) {
				if (snap[op][s][r].count == 0)
					continue;
				if ((error = co_metrics_appendf(
					 buf, len, cap,
					 "cutover_ops_total{op=\"%s\",store=\"%s\","
					 "result=\"%s\"} %llu\n",
					 co_op_name((co_op)op), stores[s], result_name(r),
					 (unsigned long long)snap[op][s][r].count)) < 0)
					goto done;
			}
	if ((error = co_metrics_appendf(
		 buf, len, cap,
		 "# HELP cutover_op_latency_seconds Latency of operations, by "
		 "operation, primary store and result.\n"
		 "# TYPE cutover_op_latency_seconds histogram\n")) < 0)
		goto done;
	for (op = 0; op < CO_OP__COUNT; op++)
		for (s = 0; s < N_STORES; s++)
			for (r = 0; r < N_RESULTS; r++) {
				const cell *c = &snap[op][s][r];
				char labels[160];
				uint64_t cum = 0;

				if (c->count == 0)
					continue;
				snprintf(labels, sizeof(labels),
					 "op=\"%s\",store=\"%s\",result=\"%s\"",
					 co_op_name((co_op)op), stores[s],
					 result_name(r));
				for (b = 0; b < N_BUCKETS; b++) {
					cum += c->buckets[b];
					if ((error = co_metrics_appendf(
						 buf, len, cap,
						 "cutover_op_latency_seconds_bucket{%s,"
						 "le=\"%g\"} %llu\n",
						 labels, bucket_le[b],
						 (unsigned long long)cum)) < 0)
						goto done;
				}
				if ((error = co_metrics_appendf(
					 buf, len, cap,
					 "cutover_op_latency_seconds_bucket{%s,le=\"+"
					 "Inf\"} "
					 "%llu\n"
					 "cutover_op_latency_seconds_sum{%s} %.6f\n"
					 "cutover_op_latency_seconds_count{%s} %llu\n",
					 labels, (unsigned long long)c->count, labels,
					 c->sum, labels, (unsigned long long)c->count)) <
				    0)
					goto done;
			}
done:
	free(snap);
	return error;
}
