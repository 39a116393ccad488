/*
 * bench_util.h - timing and percentile helpers shared by the benchmarks.
 *
 * Header-only (static inline) so that each bench_*.c stays one program.
 * Times are monotonic, in microseconds as doubles; percentiles are
 * nearest-rank on a sorted copy (no interpolation: the figure printed is
 * a latency that was actually observed).
 */
#ifndef CO_BENCH_UTIL_H
#define CO_BENCH_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic time in microseconds. */
static inline double co_bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A series of samples (microseconds). */
typedef struct co_bench_series {
	const char *name;
	double *v;
	size_t n, cap;
} co_bench_series;

/* Allocate room for `cap` samples.  0 / -1. */
static inline int co_bench_series_init(co_bench_series *s, const char *name, size_t cap)
{
	s->name = name;
	s->n = 0;
	s->cap = cap ? cap : 1;
	s->v = calloc(s->cap, sizeof(double));
	return s->v ? 0 : -1;
}

static inline void co_bench_series_free(co_bench_series *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

/* Add a sample; silently dropped when full (never happens: sized up front). */
static inline void co_bench_series_add(co_bench_series *s, double us)
{
	if (s->n < s->cap)
		s->v[s->n++] = us;
}

static inline int co_bench__cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Summary of a series, in microseconds. */
typedef struct co_bench_stats {
	size_t n;
	double p50, p95, p99, max, mean;
} co_bench_stats;

/* Nearest-rank percentile of a sorted array. */
static inline double co_bench__rank(const double *v, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)ceil(p * (double)n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static inline co_bench_stats co_bench_stats_of(const co_bench_series *s)
{
	co_bench_stats st = {0};
	double *v, sum = 0;
	size_t i;

	st.n = s->n;
	if (s->n == 0 || (v = malloc(s->n * sizeof(double))) == NULL)
		return st;
	memcpy(v, s->v, s->n * sizeof(double));
	qsort(v, s->n, sizeof(double), co_bench__cmp);
	for (i = 0; i < s->n; i++)
		sum += v[i];
	st.p50 = co_bench__rank(v, s->n, 0.50);
	st.p95 = co_bench__rank(v, s->n, 0.95);
	st.p99 = co_bench__rank(v, s->n, 0.99);
	st.max = v[s->n - 1];
	st.mean = sum / (double)s->n;
	free(v);
	return st;
}

/* Header of the table printed by co_bench_row(). */
static inline void co_bench_header(void)
{
	printf("%-44s %6s %9s %9s %9s %9s %9s\n", "latency (ms)", "n", "p50", "p95",
	       "p99", "max", "mean");
}

/* One table row for a series, in milliseconds. */
static inline co_bench_stats co_bench_row(const co_bench_series *s)
{
	co_bench_stats st = co_bench_stats_of(s);

	printf("%-44s %6zu %9.3f %9.3f %9.3f %9.3f %9.3f\n", s->name, st.n, st.p50 / 1e3,
	       st.p95 / 1e3, st.p99 / 1e3, st.max / 1e3, st.mean / 1e3);
	return st;
}

#endif
