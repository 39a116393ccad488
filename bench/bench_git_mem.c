/*
 * bench_git_mem.c - what the git store's reads hold in memory as the task
 * set grows (issue 16: serve's RSS while the store grows).
 *
 * For each task count N: seeds N tasks in a fresh bare repo in one commit,
 * opens a git store, and runs 16 reader threads (serve's pool of
 * repositories is 16) getting random tasks while one writer claims and
 * releases tasks, so the branch's head, and its tasks/ tree, keeps moving.
 * Prints, per N: libgit2's cached bytes (co_git_cached_bytes), the heap in
 * use (mallinfo2) after the store is freed and while it is open, and the
 * reads and writes per second.
 *
 * Usage: bench_git_mem [seconds_per_n [n ...]]   default 5 s; 2500 20000 100000
 */
#include "bench_seed.h"
#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "store/git_store.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READERS 16

static co_store *gs;
static size_t n_tasks;
static atomic_int stop;
static atomic_ullong reads, writes, failures;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static void task_id(char *out, size_t len, unsigned *seedp)
{
	snprintf(out, len, "M%07zu", (size_t)rand_r(seedp) % n_tasks);
}

static void *reader(void *arg)
{
	unsigned s = (unsigned)(uintptr_t)arg;
	char id[32];

	while (!atomic_load(&stop)) {
		co_record *r = NULL;

		task_id(id, sizeof(id), &s);
		if (co_store_get(&r, gs, CO_KIND_TASK, id) == 0)
			atomic_fetch_add(&reads, 1);
		else
			atomic_fetch_add(&failures, 1);
		co_record_free(r);
		co_error_clear();
	}
	return NULL;
}

static void *writer(void *arg)
{
	unsigned s = (unsigned)(uintptr_t)arg;
	char id[32];

	while (!atomic_load(&stop)) {
		co_record *r = NULL;

		task_id(id, sizeof(id), &s);
		if (co_store_claim(&r, gs, id, "bench-mem", 0) == 0) {
			co_record_free(r);
			r = NULL;
			if (co_store_release(&r, gs, id, "bench-mem", 0) == 0)
				atomic_fetch_add(&writes, 2);
		} else {
			atomic_fetch_add(&failures, 1);
		}
		co_record_free(r);
		co_error_clear();
	}
	return NULL;
}

static int run_one(size_t n, double secs)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	pthread_t th[READERS + 1];
	char repo[256];
	size_t base, open_heap, cached = 0, peak_cached = 0, heap = 0, peak_heap = 0;
	double t0, t;
	int i, rc = -1;

	n_tasks = n;
	if (co_test_git_repo_new(repo, sizeof(repo)) < 0 ||
	    co_bench_seed_git(repo, n, "M") < 0) {
		fprintf(stderr, "bench_git_mem: seeding %zu tasks failed: %s\n", n,
			co_error_last());
		return -1;
	}
	malloc_trim(0);
	base = heap_in_use();
	go.repo = repo;
	go.fsync = 0; /* the disk is not what this measures */
	if (co_git_store_open(&gs, &go) < 0) {
		fprintf(stderr, "bench_git_mem: open: %s\n", co_error_last());
		goto done;
	}
	open_heap = heap_in_use();
	atomic_store(&stop, 0);
	atomic_store(&reads, 0);
	atomic_store(&writes, 0);
	atomic_store(&failures, 0);
	for (i = 0; i < READERS; i++)
		pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)(i + 1));
	pthread_create(&th[READERS], NULL, writer, (void *)(uintptr_t)99);
	t0 = now_s();
	while ((t = now_s()) - t0 < secs) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		nanosleep(&ts, NULL); /* a sampling period, not a synchronisation */
		cached = co_git_cached_bytes();
		heap = heap_in_use();
		if (cached > peak_cached)
			peak_cached = cached;
		if (heap > peak_heap)
			peak_heap = heap;
	}
	atomic_store(&stop, 1);
	for (i = 0; i <= READERS; i++)
		pthread_join(th[i], NULL);
	t = now_s() - t0;
	printf("%8zu %12.1f %12.1f %12.1f %12.1f %10.0f %10.0f %8llu\n", n,
	       (double)cached / 1048576, (double)peak_cached / 1048576,
	       (double)(heap - base) / 1048576, (double)(peak_heap - base) / 1048576,
	       (double)atomic_load(&reads) / t, (double)atomic_load(&writes) / t,
	       (unsigned long long)atomic_load(&failures));
	(void)open_heap;
	rc = 0;
done:
	co_store_free(gs);
	gs = NULL;
	co_test_rmrf(repo);
	return rc;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 5;
	size_t def[] = {2500, 20000, 100000};
	int i, rc = 0;

	printf("bench_git_mem: %d readers and 1 writer on one git store, %.0f s per task "
	       "count\n",
	       READERS, secs);
	printf("%8s %12s %12s %12s %12s %10s %10s %8s\n", "tasks", "git MiB", "git peak",
	       "heap MiB", "heap peak", "reads/s", "writes/s", "failed");
	if (argc > 2) {
		for (i = 2; i < argc; i++)
			if (run_one((size_t)strtoul(argv[i], NULL, 10), secs) < 0)
				rc = 1;
	} else {
		for (i = 0; i < (int)(sizeof(def) / sizeof(def[0])); i++)
			if (run_one(def[i], secs) < 0)
				rc = 1;
	}
	return rc;
}
