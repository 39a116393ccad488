/*
 * bench_migrate.c - backfill of 100k records git -> etcd, and the rerun.
 *
 * Starts its own etcd (harness) and bare repo, writes N task records into
 * git in one commit, then times co_migrate_backfill() (the work behind
 * `cutover migrate`) twice: the first copies everything, the second finds
 * everything equal and writes nothing.  Prints time, records/s and the peak
 * RSS of the process.  Usage: bench_migrate [N] (default 100000).
 */
#include "bench_seed.h"
#include "core/error.h"
#include "harness/harness.h"
#include "migrate/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 100000;
	co_test_etcd etcd;
	char repo[256], st[256];
	const char *ep[1];
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_migrate_opts mo = CO_MIGRATE_OPTS_INIT;
	co_migrate_stats s;
	double t0, t1;
	int rc = 1;

	memset(&etcd, 0, sizeof(etcd));
	if (co_test_etcd_start(&etcd) < 0 || co_test_git_repo_new(repo, sizeof(repo)) < 0 ||
	    co_test_tmpdir(st, sizeof(st)) < 0) {
		fprintf(stderr, "bench: setup failed\n");
		return 1;
	}
	ep[0] = etcd.endpoint;
	eo.endpoints = ep;
	eo.n_endpoints = 1;
	mo.git_repo = repo;
	mo.etcd = &eo;
	mo.state_dir = st;
	t0 = now_s();
	if (co_bench_seed_git(repo, n, "B") < 0) {
		fprintf(stderr, "bench: seeding git failed: %s\n", co_error_last());
		goto done;
	}
	printf("seed: %zu records into git in one commit: %.2f s\n", n, now_s() - t0);

	t0 = now_s();
	if (co_migrate_backfill(&s, &mo) < 0) {
		fprintf(stderr, "bench: backfill failed: %s\n", co_error_last());
		goto done;
	}
	t1 = now_s();
	printf("backfill git->etcd: %zu records written in %zu txns, %.2f s, %.0f records/s, "
	       "verified %zu/%zu\n",
	       s.written, s.batches, t1 - t0, (double)s.written / (t1 - t0), s.verified_equal,
	       s.verified_total);
	printf("peak RSS after backfill: %ld MiB\n", peak_rss_kib() / 1024);

	t0 = now_s();
	if (co_migrate_backfill(&s, &mo) < 0) {
		fprintf(stderr, "bench: rerun failed: %s\n", co_error_last());
		goto done;
	}
	t1 = now_s();
	printf("rerun (nothing to do): %zu written, %zu equal, %.2f s, %.0f records/s compared\n",
	       s.written, s.equal, t1 - t0, (double)s.source / (t1 - t0));
	printf("peak RSS overall: %ld MiB\n", peak_rss_kib() / 1024);
	rc = 0;
done:
	co_test_etcd_stop(&etcd);
	co_test_rmrf(repo);
	co_test_rmrf(st);
	return rc;
}
