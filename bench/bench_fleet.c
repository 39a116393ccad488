/*
 * bench_fleet.c - how fast a fleet flag change reaches every router
 * (issue 18 point 1: goal p95 < 100 ms).
 *
 *	bench_fleet [N_routers [changes]]     defaults 20 and 50
 *
 * N in-process routers, each with its own fleet handle, its own streaming
 * watch of <prefix>flags (its own connection) and its own flags file with
 * a file watcher (flags/watcher.h) fed by co_fleet_mirror_apply, as a
 * router runs it.  Each change is one co_fleet_flags_update() (read + txn
 * on the epoch); timed from before that call until the LAST router's
 * watch has the new epoch, then until the last router's file watcher has
 * reloaded it (what its routing uses).  "txn answered -> every router's
 * watch" leaves out the write itself (etcd's fsync, which a loaded disk
 * makes the largest part): the fan-out alone.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "core/error.h"
#include "flags/flags.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "router/fleet.h"

typedef struct router {
	co_fleet *fleet;
	co_fleet_watch *watch;
	co_flags_watcher *file;
	co_fleet_mirror *mirror;
	char path[512];
} router;

static int stamp(void *ctx, co_flags *f)
{
	co_flags_stamp(f, ctx, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20, changes = argc > 2 ? atoi(argv[2]) : 50;
	co_bench_series write_s, watch_s, prop_s, file_s;
	co_test_etcd etcd;
	co_fleet_opts o = {0};
	const char *ep[1];
	co_fleet *writer;
	router *r;
	char dir[256];
	double load[3] = {0, 0, 0};
	int i, c, rc = 1;

	if (n < 1 || changes < 1 || (r = calloc((size_t)n, sizeof *r)) == NULL)
		return 1;
	if (co_test_etcd_start(&etcd) != 0 || co_test_tmpdir(dir, sizeof dir) != 0) {
		fprintf(stderr, "bench_fleet: cannot start etcd\n");
		return 1;
	}
	ep[0] = etcd.endpoint;
	o.endpoints = ep;
	o.n_endpoints = 1;
	if (co_fleet_open(&writer, &o) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		snprintf(r[i].path, sizeof r[i].path, "%s/flags-%d.yaml", dir, i);
		if (co_fleet_open(&r[i].fleet, &o) != 0 ||
		    co_flags_watcher_open(&r[i].file, r[i].path) != 0 ||
		    co_fleet_mirror_new(&r[i].mirror, r[i].path, r[i].file) != 0 ||
		    co_fleet_watch_open(&r[i].watch, r[i].fleet, co_fleet_mirror_apply,
					r[i].mirror) != 0) {
			fprintf(stderr, "bench_fleet: router %d: %s\n", i, co_error_last());
			goto out;
		}
	}
	for (i = 0; i < n; i++) { /* every watch stream is up (bounded: 10 s) */
		int tries;

		for (tries = 0; tries < 1000 && !co_fleet_watch_connected(r[i].watch); tries++)
			co_fleet_watch_wait(r[i].watch, INT64_MAX, 10);
	}
	co_bench_series_init(&write_s, "  of which the write (range + txn)", (size_t)changes);
	co_bench_series_init(&prop_s, "txn answered -> every router's watch", (size_t)changes);
	co_bench_series_init(&watch_s, "write -> every router's watch", (size_t)changes);
	co_bench_series_init(&file_s, "write -> every router's flags applied", (size_t)changes);
	for (c = 0; c < changes; c++) {
		uint64_t *gen = calloc((size_t)n, sizeof *gen);
		char who[32];
		int64_t epoch = 0;
		double t0, t1;

		snprintf(who, sizeof who, "bench-%d", c);
		for (i = 0; i < n; i++)
			gen[i] = co_flags_watcher_generation(r[i].file);
		t0 = co_bench_now_us();
		if (co_fleet_flags_update(NULL, &epoch, writer, stamp, who) != 0) {
			fprintf(stderr, "bench_fleet: update: %s\n", co_error_last());
			free(gen);
			goto out;
		}
		t1 = co_bench_now_us();
		co_bench_series_add(&write_s, t1 - t0);
		for (i = 0; i < n; i++)
			if (co_fleet_watch_wait(r[i].watch, epoch - 1, 5000) != 0)
				fprintf(stderr, "router %d missed epoch %lld\n", i, (long long)epoch);
		co_bench_series_add(&watch_s, co_bench_now_us() - t0);
		co_bench_series_add(&prop_s, co_bench_now_us() - t1);
		for (i = 0; i < n; i++)
			if (co_flags_watcher_wait(r[i].file, gen[i], 5000) != 0)
				fprintf(stderr, "router %d: file not reloaded\n", i);
		co_bench_series_add(&file_s, co_bench_now_us() - t0);
		free(gen);
	}
	if (getloadavg(load, 3) < 0)
		load[0] = -1;
	printf("bench_fleet: %d routers, %d changes, loadavg %.2f\n", n, changes, load[0]);
	co_bench_header();
	co_bench_row(&write_s);
	co_bench_row(&watch_s);
	co_bench_row(&prop_s);
	co_bench_row(&file_s);
	co_bench_series_free(&write_s);
	co_bench_series_free(&watch_s);
	co_bench_series_free(&prop_s);
	co_bench_series_free(&file_s);
	rc = 0;
out:
	for (i = 0; i < n; i++) {
		co_fleet_watch_close(r[i].watch);
		co_flags_watcher_close(r[i].file);
		co_fleet_mirror_free(r[i].mirror);
		co_fleet_close(r[i].fleet);
	}
	free(r);
	co_fleet_close(writer);
	co_test_etcd_stop(&etcd);
	co_test_rmrf(dir);
	return rc;
}
