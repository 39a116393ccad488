/*
 * bench_drain.c - how fast the outbox pays back what a dead etcd is owed
 * (issue 15, "drain catches up at once").
 *
 * One run, one machine, a whole `cutover serve` in-process (serve_fixture:
 * the router with its background drain, the health probe, the breakers):
 *   (1) the floor: the same N records written straight to etcd with
 *       co_store_put_batch_if_newer (a read txn and a write txn per 64),
 *       and a sample of them one put_if_newer at a time (the old drain);
 *   (2) etcd is SIGKILLed; N acknowledged git-decided writes are owed to it
 *       (the records in git, their entries in the outbox, as a dual-50
 *       router leaves them when its mirror fails), a third of them claims
 *       with a lease;
 *   (3) etcd restarts with its data dir: the time from its answering to
 *       the outbox owing it nothing, the etcd calls that took, and the
 *       ratio to the floor.
 * Goal (issue 15): N = 10,000 drained within 2 s of etcd answering.
 *
 *   build-bench/bench_drain [N]      (default 10000)
 *   BENCH_NO_CLAIMS=1 build-bench/bench_drain   no claims: no leases to grant
 */
#include "bench_util.h"

#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "core/state.h"
#include "harness/harness.h"
#include "harness/serve_fixture.h"
#include "router/router.h"
#include "store/etcd_store.h"
#include "store/store.h"

#include <stdint.h>
#include <unistd.h>

static co_test_etcd etcd;
static co_test_serve sv;

/* Record i of the owed set: every third a claim with a ten-minute lease. */
static co_record *owed_record(const char *tag, size_t i)
{
	co_record *r = NULL;
	char id[64];

	snprintf(id, sizeof(id), "%s-%05zu", tag, i);
	if (co_record_new(&r, CO_KIND_TASK, id) < 0)
		return NULL;
	r->type = strdup("build");
	r->rev = 2 + (int64_t)(i % 3);
	r->created_at = co_time_now() - 60;
	r->updated_at = co_time_now();
	if (i % 3 == 0 && getenv("BENCH_NO_CLAIMS") == NULL) {
		char owner[32];

		snprintf(owner, sizeof(owner), "swarm-%zu", i % 64);
		r->status = CO_STATUS_CLAIMED;
		r->owner = strdup(owner);
		r->claim_expires_at = co_time_now() + 600;
	}
	return r;
}

static void free_records(co_record **recs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		co_record_free(recs[i]);
	free(recs);
}

static co_record **make_records(const char *tag, size_t n)
{
	co_record **recs = calloc(n, sizeof(*recs));
	size_t i;

	for (i = 0; recs && i < n; i++)
		if ((recs[i] = owed_record(tag, i)) == NULL) {
			free_records(recs, i);
			return NULL;
		}
	return recs;
}

/* (1) the floor: a fresh prefix, batched, then a sample one at a time. */
static int floor_figures(size_t n, double *batched_ms, double *single_per_rec_ms)
{
	const char *eps[] = {etcd.endpoint};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;
	co_record **recs = make_records("F", n);
	size_t i, sample = n < 1000 ? n : 1000;
	double t0;
	int error;

	o.endpoints = eps;
	o.n_endpoints = 1;
	o.prefix = "/bench-drain-floor/";
	if (recs == NULL || co_etcd_store_open(&s, &o) < 0) {
		free_records(recs, recs ? n : 0);
		return -1;
	}
	t0 = co_bench_now_us();
	error = co_store_put_batch_if_newer(s, (const co_record *const *)recs, n, NULL);
	*batched_ms = (co_bench_now_us() - t0) / 1e3;
	for (i = 0; i < sample && error == 0; i++)
		recs[i]->rev += 10; /* newer, so each is written */
	t0 = co_bench_now_us();
	for (i = 0; i < sample && error == 0; i++)
		error = co_store_put_if_newer(s, recs[i], NULL);
	*single_per_rec_ms = (co_bench_now_us() - t0) / 1e3 / (double)sample;
	if (error < 0)
		fprintf(stderr, "bench_drain: floor: %s\n", co_error_last());
	co_store_free(s);
	free_records(recs, n);
	return error;
}

/* (2) N writes owed to etcd: in git, and in the outbox. */
static int owe(size_t n)
{
	co_record **recs = make_records("D", n);
	size_t i;
	int error = recs ? 0 : -1;

	for (i = 0; i < n && error == 0; i += 500)
		error = co_store_put_batch_if_newer(sv.git, (const co_record *const *)recs + i,
						    n - i < 500 ? n - i : 500, NULL);
	for (i = 0; i < n && error == 0; i++) {
		char *json = co_record_to_json(recs[i], 0);

		error = json ? co_outbox_push(NULL, sv.st, "etcd", "task", recs[i]->id, json)
			     : -1;
		free(json);
	}
	if (error < 0)
		fprintf(stderr, "bench_drain: owing: %s\n", co_error_last());
	free_records(recs, recs ? n : 0);
	return error;
}

static int64_t depth(void)
{
	int64_t d = -1;

	co_outbox_depth(&d, sv.st, "etcd");
	return d;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 10000;
	co_test_serve_opts o = {0};
	double floor_ms = 0, single_ms = 0, t0, t_up, t_empty = 0, t_closed = 0;
	uint64_t calls0;
	int rc = 1;

	if (n == 0 || co_test_etcd_start(&etcd) < 0)
		return 1;
	o.endpoint = etcd.endpoint;
	o.prefix = "/bench-drain/";
	o.stage = "50";
	if (co_test_serve_open(&sv, &o) < 0) {
		co_test_etcd_stop(&etcd);
		return 1;
	}
	printf("bench_drain: %zu records owed to etcd, a third of them claims with a "
	       "lease\n",
	       n);
	if (floor_figures(n, &floor_ms, &single_ms) < 0)
		goto out;
	printf("floor: %zu records written straight to etcd in batches: %.0f ms "
	       "(%.0f records/s)\n",
	       n, floor_ms, (double)n / floor_ms * 1e3);
	printf("old drain, one put_if_newer per record: %.2f ms each, %.0f ms for %zu "
	       "(extrapolated from 1000)\n",
	       single_ms, single_ms * (double)n, n);

	co_test_etcd_kill(&etcd);
	t0 = co_bench_now_us();
	if (owe(n) < 0)
		goto out;
	printf("owed %zu writes (git batches + outbox pushes) in %.1f s; outbox owes etcd "
	       "%lld\n",
	       n, (co_bench_now_us() - t0) / 1e6, (long long)depth());

	calls0 = co_store_calls(sv.etcd);
	if (co_test_etcd_restart(&etcd) < 0)
		goto out;
	t_up = co_bench_now_us();
	while (co_bench_now_us() - t_up < 120e6) {
		co_breaker_info bi;

		co_store_breaker_get(&bi, sv.etcd);
		if (t_closed == 0 && bi.state == CO_BREAKER_CLOSED)
			t_closed = co_bench_now_us();
		if (depth() == 0) {
			t_empty = co_bench_now_us();
			break;
		}
		usleep(2000); /* a poll of the figure, not a synchronisation */
	}
	if (t_empty == 0) {
		printf("drain: %lld still owed after 120 s\n", (long long)depth());
		goto out;
	}
	printf("drain after restart: %zu owed records gone %.0f ms after etcd answered "
	       "(goal <= 2000 ms), %.0f records/s, %llu etcd calls (%.3f per record)\n",
	       n, (t_empty - t_up) / 1e3, (double)n / (t_empty - t_up) * 1e6,
	       (unsigned long long)(co_store_calls(sv.etcd) - calls0),
	       (double)(co_store_calls(sv.etcd) - calls0) / (double)n);
	printf("etcd's breaker closed %.0f ms after etcd answered; the drain then took "
	       "%.0f ms\n",
	       (t_closed - t_up) / 1e3, (t_empty - t_closed) / 1e3);
	printf("ratio: drain / floor = %.2fx; old one-at-a-time / drain = %.1fx\n",
	       (t_empty - t_up) / 1e3 / floor_ms, single_ms * (double)n / ((t_empty - t_up) / 1e3));
	rc = 0;
out:
	co_test_serve_close(&sv);
	co_test_etcd_stop(&etcd);
	return rc;
}
