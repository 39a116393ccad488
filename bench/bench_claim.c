/*
 * bench_claim.c - claim latency on each store, against the bare etcd gateway.
 *
 * Issue 2 asks for claim p50/p95/p99 on each store and, in the same run, the
 * same create-if-absent txn sent straight to etcd's JSON gateway, so that the
 * store code's overhead is a ratio rather than a number from another day.
 *
 * The idea: start a private etcd (harness) and bare repos, create N fresh
 * tasks per store, then claim each once, one at a time, and time every call.
 * The raw client is one reused libcurl easy handle POSTing hand-built JSON,
 * with the options the etcd store uses (TCP_NODELAY, no proxy).  A store
 * claim is a read then a compare-and-swap (range + txn: two round trips), so
 * besides the single create-if-absent txn the bench also times a raw
 * "range + CAS txn" pair on a key that holds a record of the same size:
 * that pair is the fair floor for a claim, the single txn the absolute one.
 * The etcd samples (store claim, raw txn, raw pair) are interleaved, each
 * iteration in a rotating order, so that drift in the machine's load hits
 * all three alike.  git is timed with fsync on, as configured by default,
 * and, for reference, with fsync off in a series run first (libgit2's
 * fsync switch is process-global and stays on once a store set it).
 *
 * Issue 15 point 1 adds the record cache (etcd_cache.c): a claim on a
 * warm cache is one txn.  Two etcd stores run side by side, one with the
 * cache on (the default) and one with it off (the old range + txn), each
 * on its own tasks, interleaved with the raw calls in the same rotating
 * order; the store counts its gateway round trips, printed per claim.
 *
 * The cache is fed by a watch on the store's prefix: etcd sends every
 * put of a cached claim down that stream as JSON, and the store's watch
 * thread decodes it, on the same two cores.  So the claim-shaped txn runs
 * twice, on keys nobody watches and on keys under a prefix another store's
 * record cache watches (a store opened only for that), which splits the
 * cached claim's cost into etcd's extra work, the watch's and the client's.
 *
 * Since stop 35 the store sends its txns as gRPC on a kept HTTP/2
 * connection (etcd_h2.c): a seventh series times the same create-if-absent
 * txn sent that way on the store's own connection, with none of the
 * store's work -- the floor over the transport a claim now uses -- beside
 * the gateway's, which issue 15's target names.
 *
 * Not measured here: the router (bench_router.c), concurrency (the race
 * tests), TTL claims (they add a lease grant).
 *
 * Usage: bench_claim [N_etcd [N_git]]   (defaults 2000 and 500)
 */
#include "bench_raw.h"
#include "bench_util.h"
#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "store/etcd_private.h"
#include "store/etcd_store.h"
#include "store/git_store.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * The txn a cached store claim of an unleased task sends, built by hand:
 * compare the key's mod_revision and that claims/<id> is absent, put the
 * record, and read the key back on failure.  Against raw_txn_create it is
 * etcd's extra work; against the store claim, the client's own (JSON,
 * record, cache).
 */
static int raw_txn_claim_shaped(raw *r, const char *key, const char *ckey,
				const char *value, long long modrev)
{
	char *k = b64(key), *c = b64(ckey), *v = b64(value), *body = NULL;
	int error = -1;

	if (!k || !c || !v ||
	    asprintf(&body,
		     "{\"compare\":[{\"key\":\"%s\",\"target\":\"MOD\",\"result\":"
		     "\"EQUAL\",\"mod_revision\":\"%lld\"},"
		     "{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
		     "\"create_revision\":\"0\"}],"
		     "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}],"
		     "\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}",
		     k, modrev, c, k, v, k) < 0) {
		body = NULL;
		goto done;
	}
	if (raw_post(r, "/v3/kv/txn", body) == 0 && txn_succeeded(r))
		error = 0;
done:
	free(k);
	free(c);
	free(v);
	free(body);
	return error;
}

/* One claim-shaped txn on task i under /bench-raw/<dir>/, timed into s. */
static int timed_shaped(co_bench_series *s, raw *r, const char *dir, size_t i,
			const char *value, long long modrev)
{
	char key[96], ckey[96];
	double t0;
	int error;

	snprintf(key, sizeof(key), "/bench-raw/%s/tasks/%06zu", dir, i);
	snprintf(ckey, sizeof(ckey), "/bench-raw/%s/claims/%06zu", dir, i);
	t0 = co_bench_now_us();
	error = raw_txn_claim_shaped(r, key, ckey, value, modrev);
	co_bench_series_add(s, co_bench_now_us() - t0);
	return error;
}

/*
 * The same create-if-absent txn as gRPC KV.Txn on the store's own kept
 * HTTP/2 connection (etcd_h2.c), with none of the store's work: the floor
 * of a store claim over the transport it uses.  -1 unless it succeeded.
 */
static int grpc_txn_create(struct etcd *e, const char *key, const char *value)
{
	const co_grpc_compare cmp = {CO_GRPC_EQUAL, CO_GRPC_CMP_CREATE, key, strlen(key),
				     0, NULL, 0};
	const co_grpc_op put = {CO_GRPC_OP_PUT, key, strlen(key), value, strlen(value),
				0, 0};
	const co_grpc_op get = {CO_GRPC_OP_RANGE, key, strlen(key), NULL, 0, 0, 0};
	const co_grpc_txn t = {&cmp, 1, &put, &get, 1, 1};
	co_grpc_buf req = {0}, body = {0};
	co_grpc_reply reply;
	co_grpc_txn_info info;
	int ok;

	memset(&reply, 0, sizeof(reply));
	reply.raw = &body;
	ok = co_grpc_txn_encode(&req, &t) == 0 &&
	     co_etcd__h2_post(&reply, e, "Txn", NULL, &req) == 0 && reply.grpc_status == 0 &&
	     body.len > 5 && co_grpc_txn_decode(body.p + 5, body.len - 5, &info, NULL, NULL) == 0 &&
	     info.succeeded;
	free(req.p);
	free(body.p);
	return ok ? 0 : -1;
}

/* The revision in a reply's header (a put's: the key's mod_revision). */
static long long header_revision(const raw *r)
{
	cJSON *j = cJSON_Parse(r->resp ? r->resp : "");
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(j, "header"), "revision"));
	long long v = s ? strtoll(s, NULL, 10) : 0;

	cJSON_Delete(j);
	return v;
}

/* ---- store helpers ---- */

static int create_tasks(co_store *s, char letter, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		co_record *t = NULL, *out = NULL;
		char id[64];
		int error;

		snprintf(id, sizeof(id), "%c%06zu", letter, i);
		if ((error = co_record_new(&t, CO_KIND_TASK, id)) == 0) {
			t->type = strdup("build");
			error = co_store_task_create(&out, s, t);
		}
		co_record_free(t);
		co_record_free(out);
		if (error < 0) {
			fprintf(stderr, "bench: create %s on %s: %s\n", id,
				co_store_name(s), co_error_last());
			return -1;
		}
	}
	return 0;
}

/* Claim task <letter><i> and add the call's latency to `s`.  0 only if won. */
static int timed_claim(co_bench_series *ser, co_store *s, char letter, size_t i)
{
	co_record *out = NULL;
	char id[64];
	double t0;
	int error;

	snprintf(id, sizeof(id), "%c%06zu", letter, i);
	t0 = co_bench_now_us();
	error = co_store_claim(&out, s, id, "swarm-bench", 0);
	co_bench_series_add(ser, co_bench_now_us() - t0);
	co_record_free(out);
	if (error < 0)
		fprintf(stderr, "bench: claim %s on %s: %s\n", id, co_store_name(s),
			co_error_last());
	return error;
}

/* A claimed task's compact JSON: the size of what a claim writes. */
static char *sample_value(void)
{
	co_record *t = NULL;
	char *json = NULL;

	if (co_record_new(&t, CO_KIND_TASK, "R000000") < 0)
		return NULL;
	t->type = strdup("build");
	t->status = CO_STATUS_CLAIMED;
	t->owner = strdup("swarm-bench");
	t->rev = 2;
	t->created_at = t->updated_at = 1790000000;
	json = co_record_to_json(t, 0);
	co_record_free(t);
	return json;
}

/* /proc/loadavg's first three fields and a newline: other work on the
 * machine moves every figure here, so the bench says how busy it was. */
static const char *loadavg(void)
{
	static char buf[64];
	FILE *f = fopen("/proc/loadavg", "r");
	double a = 0, b = 0, c = 0;

	if (f == NULL || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
		snprintf(buf, sizeof(buf), "unknown\n");
	else
		snprintf(buf, sizeof(buf), "%.2f %.2f %.2f\n", a, b, c);
	if (f)
		fclose(f);
	return buf;
}

static void nap_10ms(void)
{
	struct timespec ts = {0, 10 * 1000000L};

	nanosleep(&ts, NULL);
}

static void ratio_line(const char *what, co_bench_stats a, co_bench_stats b)
{
	printf("%-44s p50 %5.2fx   p95 %5.2fx   p99 %5.2fx\n", what, a.p50 / b.p50,
	       a.p95 / b.p95, a.p99 / b.p99);
}

int main(int argc, char **argv)
{
	size_t n_etcd = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 2000;
	size_t n_git = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 500;
	co_test_etcd etcd;
	char repo[256] = "", repo_nofsync[256] = "";
	const char *ep[1];
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_git_opts go = CO_GIT_OPTS_INIT, go2 = CO_GIT_OPTS_INIT;
	co_store *es = NULL, *es_off = NULL, *es_w = NULL, *gs = NULL, *gs2 = NULL;
	co_bench_series s_claim, s_off, s_txn, s_grpc, s_shape, s_wshape, s_pair, s_range, s_git,
	    s_git2;
	co_bench_stats st_claim, st_off, st_txn, st_grpc, st_shape, st_wshape, st_pair;
	long long *shape_rev = NULL, *wshape_rev = NULL;
	uint64_t rtt_on = 0, rtt_off = 0, rtt0;
	co_etcd_cache_stats cst;
	raw rc;
	char *value = NULL, key[96];
	size_t i;
	int rcode = 1, k;

	memset(&etcd, 0, sizeof(etcd));
	memset(&rc, 0, sizeof(rc));
	if (n_etcd == 0 || n_git == 0) {
		fprintf(stderr, "usage: bench_claim [N_etcd [N_git]]\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (co_bench_series_init(&s_claim, "etcd store claim, cache on (1 txn)",
				 n_etcd) < 0 ||
	    co_bench_series_init(&s_off, "etcd store claim, cache off (range+txn)",
				 n_etcd) < 0 ||
	    co_bench_series_init(&s_txn, "raw gateway txn create-if-absent", n_etcd) <
		0 ||
	    co_bench_series_init(&s_grpc, "raw gRPC txn create-if-absent, kept h2c",
				 n_etcd) < 0 ||
	    co_bench_series_init(&s_shape, "raw txn shaped like the store's claim",
				 n_etcd) < 0 ||
	    co_bench_series_init(&s_wshape, "  the same, its prefix watched by a cache",
				 n_etcd) < 0 ||
	    co_bench_series_init(&s_pair, "raw gateway range + CAS txn", n_etcd) < 0 ||
	    co_bench_series_init(&s_range, "  of which the range", n_etcd) < 0 ||
	    co_bench_series_init(&s_git, "git store claim (fsync on, default)", n_git) <
		0 ||
	    co_bench_series_init(&s_git2, "git store claim (fsync off, ran first)",
				 n_git) < 0)
		return 1;
	if (co_test_etcd_start(&etcd) < 0 ||
	    co_test_git_repo_new(repo, sizeof(repo)) < 0 ||
	    co_test_git_repo_new(repo_nofsync, sizeof(repo_nofsync)) < 0) {
		fprintf(stderr, "bench: setup failed (etcd or git repo)\n");
		goto done;
	}
	ep[0] = etcd.endpoint;
	eo.endpoints = ep;
	eo.n_endpoints = 1;
	eo.prefix = "/bench/";
	go.repo = repo;
	go2.repo = repo_nofsync;
	go2.fsync = 0;
	if (co_etcd_store_open(&es, &eo) < 0 || co_git_store_open(&gs2, &go2) < 0 ||
	    (eo.cache_entries = -1, co_etcd_store_open(&es_off, &eo)) < 0 ||
	    (eo.cache_entries = 0, eo.prefix = "/bench-raw/wshape/",
	     co_etcd_store_open(&es_w, &eo)) < 0 ||
	    raw_open(&rc, etcd.endpoint) < 0 || (value = sample_value()) == NULL) {
		fprintf(stderr, "bench: open failed: %s\n", co_error_last());
		goto done;
	}
	printf("bench_claim: etcd %s (etcd 3.4, fast election settings), "
	       "%zu etcd claims, %zu git claims per series\n",
	       etcd.endpoint, n_etcd, n_git);
	printf("record written by a claim: %zu bytes of JSON; load average at start: %s",
	       strlen(value), loadavg());

	/* git with fsync off first: libgit2's fsync switch is process-global
	 * and, once a store has turned it on, it stays on (git_store.c). */
	if (create_tasks(gs2, 'H', n_git) < 0)
		goto done;
	for (i = 0; i < n_git; i++)
		if (timed_claim(&s_git2, gs2, 'H', i) < 0)
			goto done;
	if (co_git_store_open(&gs, &go) < 0) {
		fprintf(stderr, "bench: open failed: %s\n", co_error_last());
		goto done;
	}

	/* Setup, untimed: N fresh tasks per store, N keys holding a record
	 * for the raw pair.  This also warms every connection. */
	co_etcd_store_cache_start(es);
	co_etcd_store_cache_start(es_w); /* only its watch: see the head comment */
	if (create_tasks(es, 'E', n_etcd) < 0 || create_tasks(es_off, 'F', n_etcd) < 0 ||
	    create_tasks(gs, 'G', n_git) < 0)
		goto done;
	/* The cache is warm: its watch is live and holds every E task. */
	for (k = 0; k < 2000; k++) {
		co_etcd_store_cache_stats(&cst, es);
		if (cst.live && cst.entries >= n_etcd)
			break;
		nap_10ms();
	}
	if (!cst.live || cst.entries < n_etcd) {
		fprintf(stderr, "bench: the cache did not warm up (live %d, %zu entries)\n",
			cst.live, cst.entries);
		goto done;
	}
	if ((shape_rev = calloc(n_etcd, sizeof(*shape_rev))) == NULL ||
	    (wshape_rev = calloc(n_etcd, sizeof(*wshape_rev))) == NULL)
		goto done;
	for (i = 0; i < n_etcd; i++) {
		snprintf(key, sizeof(key), "/bench-raw/pair/%06zu", i);
		if (raw_put(&rc, key, value) < 0) {
			fprintf(stderr, "bench: raw put %s failed\n", key);
			goto done;
		}
		snprintf(key, sizeof(key), "/bench-raw/shape/tasks/%06zu", i);
		if (raw_put(&rc, key, value) < 0 ||
		    (shape_rev[i] = header_revision(&rc)) <= 0) {
			fprintf(stderr, "bench: raw put %s failed\n", key);
			goto done;
		}
		snprintf(key, sizeof(key), "/bench-raw/wshape/tasks/%06zu", i);
		if (raw_put(&rc, key, value) < 0 ||
		    (wshape_rev[i] = header_revision(&rc)) <= 0) {
			fprintf(stderr, "bench: raw put %s failed\n", key);
			goto done;
		}
	}
	/* The watching cache is live before anything is timed. */
	for (k = 0; k < 2000; k++) {
		co_etcd_store_cache_stats(&cst, es_w);
		if (cst.live)
			break;
		nap_10ms();
	}
	if (!cst.live) {
		fprintf(stderr, "bench: the watching cache did not go live\n");
		goto done;
	}

	/* etcd: store claim (cache on, off), raw txn, raw shaped (unwatched,
	 * watched), raw pair; interleaved, rotating order. */
	for (i = 0; i < n_etcd; i++) {
		for (k = 0; k < 7; k++) {
			int which = (int)((i + (size_t)k) % 7);
			double t0, range_us = 0;
			int error = 0;

			if (which == 0) {
				rtt0 = co_etcd_store_round_trips(es);
				error = timed_claim(&s_claim, es, 'E', i);
				rtt_on += co_etcd_store_round_trips(es) - rtt0;
			} else if (which == 4) {
				error = timed_shaped(&s_shape, &rc, "shape", i, value,
						     shape_rev[i]);
			} else if (which == 5) {
				error = timed_shaped(&s_wshape, &rc, "wshape", i, value,
						     wshape_rev[i]);
			} else if (which == 3) {
				rtt0 = co_etcd_store_round_trips(es_off);
				error = timed_claim(&s_off, es_off, 'F', i);
				rtt_off += co_etcd_store_round_trips(es_off) - rtt0;
			} else if (which == 6) {
				snprintf(key, sizeof(key), "/bench-raw/grpc/%06zu", i);
				t0 = co_bench_now_us();
				error = grpc_txn_create(co_etcd__from_store(es_w), key, value);
				co_bench_series_add(&s_grpc, co_bench_now_us() - t0);
			} else if (which == 1) {
				snprintf(key, sizeof(key), "/bench-raw/txn/%06zu", i);
				t0 = co_bench_now_us();
				error = raw_txn_create(&rc, key, value);
				co_bench_series_add(&s_txn, co_bench_now_us() - t0);
			} else {
				snprintf(key, sizeof(key), "/bench-raw/pair/%06zu", i);
				t0 = co_bench_now_us();
				error = raw_range_cas(&rc, key, value, &range_us);
				co_bench_series_add(&s_pair, co_bench_now_us() - t0);
				co_bench_series_add(&s_range, range_us);
			}
			if (error < 0) {
				fprintf(stderr, "bench: etcd op %d failed at %zu\n",
					which, i);
				goto done;
			}
		}
	}
	/* git with fsync on, as configured by default. */
	for (i = 0; i < n_git; i++)
		if (timed_claim(&s_git, gs, 'G', i) < 0)
			goto done;
	printf("load average at end: %s", loadavg());

	printf("\n");
	co_bench_header();
	st_claim = co_bench_row(&s_claim);
	st_off = co_bench_row(&s_off);
	st_txn = co_bench_row(&s_txn);
	st_grpc = co_bench_row(&s_grpc);
	st_shape = co_bench_row(&s_shape);
	st_wshape = co_bench_row(&s_wshape);
	st_pair = co_bench_row(&s_pair);
	co_bench_row(&s_range);
	co_bench_row(&s_git);
	co_bench_row(&s_git2);
	printf("\nstore overhead (etcd store claim / raw gateway, same run):\n");
	ratio_line("claim / raw txn create-if-absent", st_claim, st_txn);
	ratio_line("claim / raw range + CAS txn (fair)", st_claim, st_pair);
	ratio_line("cache off claim / raw txn create-if-absent", st_off, st_txn);
	ratio_line("cache off claim / raw range + CAS txn", st_off, st_pair);
	ratio_line("cache on claim / cache off claim", st_claim, st_off);
	ratio_line("raw gRPC txn / raw gateway txn", st_grpc, st_txn);
	ratio_line("claim / raw gRPC txn (its own transport)", st_claim, st_grpc);
	printf("breakdown of cached claim / raw txn create-if-absent:\n");
	ratio_line("  etcd: claim-shaped txn / raw create txn", st_shape, st_txn);
	ratio_line("  watch: watched / unwatched shaped txn", st_wshape, st_shape);
	ratio_line("  client: store claim / watched shaped txn", st_claim, st_wshape);
	co_etcd_store_cache_stats(&cst, es);
	printf("\nround trips per claim: cache on %.3f, cache off %.3f "
	       "(requests counted by the store)\n",
	       (double)rtt_on / (double)n_etcd, (double)rtt_off / (double)n_etcd);
	printf("cache: %zu entries, %llu hits, %llu misses, %llu resyncs, %llu watch "
	       "stalls\n",
	       cst.entries, (unsigned long long)cst.hits, (unsigned long long)cst.misses,
	       (unsigned long long)cst.resyncs, (unsigned long long)cst.watch_stalls);
	printf("store txns sent as gRPC: %llu (cache on store), %llu (cache off store)\n",
	       (unsigned long long)co_etcd_store_grpc_txns(es),
	       (unsigned long long)co_etcd_store_grpc_txns(es_off));
	printf("issue 15 target: cached claim p50 <= 1.10x one raw gateway txn: %.2fx "
	       "(%s)\n",
	       st_claim.p50 / st_txn.p50, st_claim.p50 <= 1.10 * st_txn.p50 ? "met" : "NOT met");
	rcode = 0;
done:
	raw_close(&rc);
	free(value);
	co_store_free(es);
	co_store_free(es_off);
	co_store_free(es_w);
	co_store_free(gs);
	co_store_free(gs2);
	co_test_etcd_stop(&etcd);
	if (repo[0])
		co_test_rmrf(repo);
	if (repo_nofsync[0])
		co_test_rmrf(repo_nofsync);
	co_bench_series_free(&s_claim);
	co_bench_series_free(&s_off);
	co_bench_series_free(&s_txn);
	co_bench_series_free(&s_grpc);
	co_bench_series_free(&s_shape);
	co_bench_series_free(&s_wshape);
	free(shape_rev);
	free(wshape_rev);
	co_bench_series_free(&s_pair);
	co_bench_series_free(&s_range);
	co_bench_series_free(&s_git);
	co_bench_series_free(&s_git2);
	curl_global_cleanup();
	return rcode;
}
