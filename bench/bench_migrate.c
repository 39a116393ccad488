/*
 * bench_migrate.c - backfill of 100k records git -> etcd, and the rerun,
 * beside the floor of raw bulk puts.
 *
 * Starts its own etcd (harness) and bare repo, writes N task records into
 * git in one commit, then times co_migrate_backfill() (the work behind
 * `cutover migrate`) twice: the first copies everything, the second finds
 * everything equal and writes nothing.  Around the first, the floor (issue
 * 15 point 6): the same N records, as the same JSON, put into etcd under a
 * prefix of their own by raw gateway txns of CO_ETCD_BATCH_MAX puts each
 * (no compares, nothing read), on one connection and on as many as the
 * backfill writes on (CO_MIG_WRITERS), once before the backfill and once
 * after, so that a growing etcd favours neither.  Prints time, records/s, the
 * backfill's phases (read both stores and plan, write, verify: from its
 * progress callback), the ratios to the floor and the peak RSS of the
 * process.  Usage: bench_migrate [N] (default 100000).
 *
 * Since the backfill's batches go as gRPC on kept HTTP/2 connections
 * (co_etcd_store_put_batch), the floor is also measured that way: the
 * same txns of puts sent as KV.Txn on a store's own connections
 * (etcd_h2.c), CO_MIG_WRITERS at once, before and after.
 */
#include "bench_raw.h"
#include "bench_seed.h"
#include "core/error.h"
#include "harness/harness.h"
#include "migrate/migrate.h"
#include "store/etcd_private.h"
#include "store/etcd_store.h"

#include <pthread.h>
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

/*
 * The floor: N records as bench_seed.h writes them (co_bench_seed_record),
 * under `prefix`, in raw txns of `per` puts, on `conns` kept-alive
 * connections at once (thread t sends batches t, t + conns, ...).
 * Seconds, or -1.
 */
typedef struct floor_job {
	const char *endpoint, *prefix;
	size_t n, per, conns, t;
	int failed;
	struct etcd *grpc; /* set: KV.Txn on this store's kept connections */
} floor_job;

/* The gRPC floor's thread: the same batches as KV.Txn, no compares. */
static void *floor_grpc_main(void *arg)
{
	floor_job *j = arg;
	co_grpc_op ops[CO_ETCD_BATCH_MAX];
	char keys[CO_ETCD_BATCH_MAX][96], *vals[CO_ETCD_BATCH_MAX];
	size_t b, k;

	j->failed = 1;
	memset(vals, 0, sizeof(vals));
	for (b = j->t; b * j->per < j->n; b += j->conns) {
		size_t i = b * j->per, m = 0;
		co_grpc_txn txn = {NULL, 0, ops, NULL, 0, 0};
		co_grpc_buf req = {0}, body = {0};
		co_grpc_reply reply;
		int ok;

		for (k = 0; k < j->per && i < j->n; k++, i++) {
			co_record *rec = NULL;

			if (co_bench_seed_record(&rec, "B", i) < 0)
				goto fail;
			snprintf(keys[k], sizeof(keys[k]), "%stasks/%s", j->prefix, rec->id);
			vals[k] = co_record_to_json(rec, 0);
			co_record_free(rec);
			if (vals[k] == NULL)
				goto fail;
			memset(&ops[k], 0, sizeof(ops[k]));
			ops[k].type = CO_GRPC_OP_PUT;
			ops[k].key = keys[k];
			ops[k].key_len = strlen(keys[k]);
			ops[k].value = vals[k];
			ops[k].value_len = strlen(vals[k]);
			m++;
		}
		txn.n_success = m;
		memset(&reply, 0, sizeof(reply));
		reply.raw = &body;
		ok = co_grpc_txn_encode(&req, &txn) == 0 &&
		     co_etcd__h2_post(&reply, j->grpc, "Txn", NULL, &req) == 0 &&
		     reply.grpc_status == 0;
		free(req.p);
		free(body.p);
		for (k = 0; k < m; k++) {
			free(vals[k]);
			vals[k] = NULL;
		}
		if (!ok)
			goto fail;
	}
	j->failed = 0;
fail:
	for (k = 0; k < CO_ETCD_BATCH_MAX; k++)
		free(vals[k]);
	return NULL;
}

static void *floor_main(void *arg)
{
	floor_job *j = arg;
	raw r;
	size_t b, cap = 1 << 20, len;
	char *body;

	if (j->grpc)
		return floor_grpc_main(arg);
	body = malloc(cap);
	j->failed = 1;
	if (body == NULL || raw_open(&r, j->endpoint) < 0) {
		free(body);
		return NULL;
	}
	for (b = j->t; b * j->per < j->n; b += j->conns) {
		size_t i = b * j->per, k;

		len = (size_t)snprintf(body, cap, "{\"success\":[");
		for (k = 0; k < j->per && i < j->n; k++, i++) {
			co_record *rec = NULL;
			char key[96], *json = NULL, *bk = NULL, *bv = NULL;

			if (co_bench_seed_record(&rec, "B", i) < 0)
				goto fail;
			snprintf(key, sizeof(key), "%stasks/%s", j->prefix, rec->id);
			json = co_record_to_json(rec, 0);
			co_record_free(rec);
			bk = b64(key);
			bv = json ? b64(json) : NULL;
			if (bk && bv && len + strlen(bk) + strlen(bv) + 64 < cap)
				len += (size_t)snprintf(
				    body + len, cap - len,
				    "%s{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}",
				    k ? "," : "", bk, bv);
			else
				len = 0;
			free(json);
			free(bk);
			free(bv);
			if (len == 0)
				goto fail;
		}
		snprintf(body + len, cap - len, "]}");
		if (raw_post(&r, "/v3/kv/txn", body) < 0)
			goto fail;
	}
	j->failed = 0;
fail:
	raw_close(&r);
	free(body);
	return NULL;
}

static double floor_put(const char *endpoint, const char *prefix, size_t n, size_t per,
			size_t conns, struct etcd *grpc)
{
	floor_job jobs[8];
	pthread_t th[8];
	size_t t, started = 0;
	double t0 = now_s();
	int failed = 0;

	if (conns > 8)
		conns = 8;
	for (t = 0; t < conns; t++) {
		jobs[t] = (floor_job){endpoint, prefix, n, per, conns, t, 1, grpc};
		if (pthread_create(&th[t], NULL, floor_main, &jobs[t]) != 0)
			break;
		started++;
	}
	for (t = 0; t < started; t++) {
		pthread_join(th[t], NULL);
		failed |= jobs[t].failed;
	}
	return failed || started < conns ? -1 : now_s() - t0;
}

/* The backfill's phases, from its progress callback. */
typedef struct phases {
	double start, write, verify;
} phases;

static void on_progress(void *ud, const char *phase, size_t done, size_t total)
{
	phases *p = ud;

	(void)total;
	if (strcmp(phase, "write") == 0 && done == 0 && p->write == 0)
		p->write = now_s();
	if (strcmp(phase, "verify") == 0 && done == 0 && p->verify == 0)
		p->verify = now_s();
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
	phases ph = {0, 0, 0};
	double t0, t1, f1, f2, fl, w1, w2, wl, g1, g2, gl;
	co_store *gs = NULL;
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

	/* The floor on one connection and on as many as the backfill writes
	 * on, before it and after it. */
	if (co_etcd_store_open(&gs, &eo) < 0 || co_etcd__from_store(gs)->h2 == NULL) {
		fprintf(stderr, "bench: no store with kept HTTP/2 connections: %s\n",
			co_error_last());
		goto done;
	}
	if ((f1 = floor_put(etcd.endpoint, "/floor1/", n, CO_ETCD_BATCH_MAX, 1, NULL)) < 0 ||
	    (w1 = floor_put(etcd.endpoint, "/floor2/", n, CO_ETCD_BATCH_MAX, CO_MIG_WRITERS,
			    NULL)) < 0 ||
	    (g1 = floor_put(etcd.endpoint, "/floor5/", n, CO_ETCD_BATCH_MAX, CO_MIG_WRITERS,
			    co_etcd__from_store(gs))) < 0) {
		fprintf(stderr, "bench: the floor's puts failed\n");
		goto done;
	}
	printf("floor, before: %zu records in raw txns of %d puts: one connection %.2f s "
	       "(%.0f records/s), %d connections %.2f s (%.0f records/s); as gRPC on %d kept "
	       "connections %.2f s (%.0f records/s)\n",
	       n, CO_ETCD_BATCH_MAX, f1, (double)n / f1, CO_MIG_WRITERS, w1, (double)n / w1,
	       CO_MIG_WRITERS, g1, (double)n / g1);

	mo.progress = on_progress;
	mo.ud = &ph;
	t0 = ph.start = now_s();
	if (co_migrate_backfill(&s, &mo) < 0) {
		fprintf(stderr, "bench: backfill failed: %s\n", co_error_last());
		goto done;
	}
	t1 = now_s();
	mo.progress = NULL;
	printf("backfill git->etcd: %zu records written in %zu txns, %.2f s, %.0f records/s, "
	       "verified %zu/%zu\n",
	       s.written, s.batches, t1 - t0, (double)s.written / (t1 - t0), s.verified_equal,
	       s.verified_total);
	if (ph.write > 0 && ph.verify > 0)
		printf("  phases: read both stores and plan %.2f s, write %.2f s, verify %.2f s\n",
		       ph.write - t0, ph.verify - ph.write, t1 - ph.verify);
	printf("peak RSS after backfill: %ld MiB\n", peak_rss_kib() / 1024);

	if ((f2 = floor_put(etcd.endpoint, "/floor3/", n, CO_ETCD_BATCH_MAX, 1, NULL)) < 0 ||
	    (w2 = floor_put(etcd.endpoint, "/floor4/", n, CO_ETCD_BATCH_MAX, CO_MIG_WRITERS,
			    NULL)) < 0 ||
	    (g2 = floor_put(etcd.endpoint, "/floor6/", n, CO_ETCD_BATCH_MAX, CO_MIG_WRITERS,
			    co_etcd__from_store(gs))) < 0) {
		fprintf(stderr, "bench: the floor's puts failed\n");
		goto done;
	}
	fl = (f1 + f2) / 2;
	wl = (w1 + w2) / 2;
	gl = (g1 + g2) / 2;
	printf("floor, after: one connection %.2f s, %d connections %.2f s, gRPC on %d %.2f s; "
	       "means %.2f s, %.2f s, %.2f s\n",
	       f2, CO_MIG_WRITERS, w2, CO_MIG_WRITERS, g2, fl, wl, gl);
	printf("backfill / floor on %d connections: %.2fx (issue 15 target <= 1.5x: %s); "
	       "/ floor on one: %.2fx\n",
	       CO_MIG_WRITERS, (t1 - t0) / wl, (t1 - t0) / wl <= 1.5 ? "met" : "NOT met",
	       (t1 - t0) / fl);
	printf("backfill / gRPC floor on %d kept connections (its own transport): %.2fx "
	       "(%s)\n",
	       CO_MIG_WRITERS, (t1 - t0) / gl, (t1 - t0) / gl <= 1.5 ? "met" : "NOT met");
	if (ph.write > 0 && ph.verify > 0)
		printf("  its write phase alone / floor on %d connections: %.2fx; / gRPC floor: "
		       "%.2fx\n",
		       CO_MIG_WRITERS, (ph.verify - ph.write) / wl, (ph.verify - ph.write) / gl);

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
	co_store_free(gs);
	co_test_etcd_stop(&etcd);
	co_test_rmrf(repo);
	co_test_rmrf(st);
	return rc;
}
