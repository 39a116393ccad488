/*
 * bench_grpc_decode.c - the decoders of etcd's RangeResponse side by side
 * (issue 17 point 5): the hand-written one of src/store/etcd_grpc.c
 * against protobuf-c's generated code (proto/etcd_rpc_subset.proto).
 *
 *   bench_grpc_decode [N [ROUNDS]]     default: 100000 records, 20 rounds
 *
 * A real etcd (harness) gets N task records laid out as bench_reconcile's
 * (txns of 128 puts through the gateway, untimed); one gRPC Range of the
 * whole prefix is captured as it comes off the wire (libcurl, HTTP/2 with
 * prior knowledge).  Then each round decodes that same message once with
 * each decoder, in a rotating order:
 *
 *   hand     co_grpc_range_decode(): the hand-written streaming decoder
 *            the store uses (src/store/etcd_grpc.c)
 *   hand'    the same again: the A/A control, the spread of the figures
 *   pbc      protobuf-c's generated etcdserverpb__range_response__unpack()
 *            of the whole message, then each kv to the same callback
 *
 * (A third, each KeyValue unpacked by protobuf-c under a hand-written
 * field splitter, was measured at commit 6336229: docs/design-changes.md.)
 *
 * The callback hashes each kv's lengths, revision and last bytes (cheap:
 * the figure is the decoder's).  Prints each decoder's best, median and p95
 * time per decode, ns per kv at the best, and its best and median over
 * hand's; the hashes must agree.
 */
#include "bench_raw.h"
#include "bench_util.h"

#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "store/etcd_grpc.h"

#include "etcd_rpc_subset.pb-c.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXN_OPS 128
#define N_DEC 3

static void die(const char *what)
{
	fprintf(stderr, "bench_grpc_decode: %s: %s\n", what, co_error_last());
	exit(1);
}

/* The records of bench_reconcile (bench_task there). */
static char *task_json(size_t i, char *id, size_t id_len)
{
	co_record *r = NULL;
	char *json;

	snprintf(id, id_len, "B%07zu", i);
	if (co_record_new(&r, CO_KIND_TASK, id) < 0)
		die("record");
	r->rev = 1 + (int64_t)(i % 7);
	r->type = strdup(i % 3 ? "build" : "test");
	r->created_at = r->updated_at = 1795860000 + (int64_t)i;
	json = co_record_to_json(r, 0);
	co_record_free(r);
	if (json == NULL)
		die("json");
	return json;
}

static void seed(raw *rw, const char *prefix, size_t n)
{
	size_t i = 0;

	while (i < n) {
		char *body = NULL;
		size_t len = 0, ops;
		FILE *m = open_memstream(&body, &len);

		fputs("{\"success\":[", m);
		for (ops = 0; i < n && ops < TXN_OPS; i++, ops++) {
			char id[32], key[128], *json = task_json(i, id, sizeof(id));
			char *k, *v;

			snprintf(key, sizeof(key), "%stasks/%s", prefix, id);
			k = b64(key);
			v = b64(json);
			fprintf(m, "%s{\"requestPut\":{\"key\":\"%s\",\"value\":\"%s\"}}",
				ops ? "," : "", k, v);
			free(k);
			free(v);
			free(json);
		}
		fputs("]}", m);
		fclose(m);
		if (raw_post(rw, "/v3/kv/txn", body) < 0) {
			fprintf(stderr, "bench_grpc_decode: seeding txn failed\n");
			exit(1);
		}
		free(body);
	}
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	co_grpc_buf *b = ud;
	size_t len = size * n;

	if (b->len + len > b->cap) {
		size_t cap = (b->len + len) * 2;
		unsigned char *q = realloc(b->p, cap);

		if (q == NULL)
			return 0;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	return len;
}

/* One Range of every key under prefix, the response body as received. */
static co_grpc_buf capture(const char *endpoint, const char *prefix)
{
	co_grpc_buf req = {0}, body = {0};
	co_grpc_range r = {0};
	struct curl_slist *h = NULL;
	char url[256], end[128];
	CURL *c = curl_easy_init();
	size_t n = strlen(prefix);

	memcpy(end, prefix, n);
	end[n - 1]++; /* prefix ends in '/' */
	r.key = prefix;
	r.key_len = n;
	r.range_end = end;
	r.range_end_len = n;
	if (c == NULL || co_grpc_range_encode(&req, &r) < 0)
		die("encode");
	snprintf(url, sizeof(url), "%s/etcdserverpb.KV/Range", endpoint);
	h = curl_slist_append(h, "Content-Type: application/grpc");
	h = curl_slist_append(h, "TE: trailers");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
			 (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)req.p);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req.len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	if (curl_easy_perform(c) != CURLE_OK || body.len < 5) {
		fprintf(stderr, "bench_grpc_decode: gRPC Range failed\n");
		exit(1);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(req.p);
	return body;
}

typedef struct sum {
	uint64_t hash;
	size_t n;
} sum;

/* What the decoders saw: the kvs' lengths, revisions and end bytes, so
 * that each decoder hands over the same kvs while the figure stays the
 * decoder's (the reconciler's SHA-1 of each value is the same work for
 * all, and is in the end-to-end run of bench_reconcile). */
static int on_kv(void *ctx, const co_grpc_kv *kv)
{
	sum *s = ctx;
	uint64_t h = s->hash;

	h = (h ^ kv->key_len) * 0x100000001b3ULL;
	h = (h ^ kv->value_len) * 0x100000001b3ULL;
	h = (h ^ (uint64_t)kv->mod_revision) * 0x100000001b3ULL;
	if (kv->key_len)
		h = (h ^ (unsigned char)kv->key[kv->key_len - 1]) * 0x100000001b3ULL;
	if (kv->value_len)
		h = (h ^ (unsigned char)kv->value[kv->value_len - 1]) * 0x100000001b3ULL;
	s->hash = h;
	s->n++;
	return 0;
}

/* The protobuf-c decoder: the whole message unpacked, then each kv. */
static int pbc_decode(const unsigned char *msg, size_t len, co_grpc_range_info *info,
		      co_grpc_kv_fn fn, void *ctx)
{
	Etcdserverpb__RangeResponse *m;
	co_grpc_kv kv;
	size_t i;
	int error = 0;

	if ((m = etcdserverpb__range_response__unpack(NULL, len, msg)) == NULL)
		return co_error_set(CO_EINVAL, "protobuf-c: malformed RangeResponse");
	info->revision = m->header ? m->header->revision : 0;
	info->more = m->more;
	info->count = m->count;
	for (i = 0; i < m->n_kvs && error == 0; i++) {
		kv.key = m->kvs[i]->key.data ? (const char *)m->kvs[i]->key.data : "";
		kv.key_len = m->kvs[i]->key.len;
		kv.value =
		    m->kvs[i]->value.data ? (const char *)m->kvs[i]->value.data : "";
		kv.value_len = m->kvs[i]->value.len;
		kv.mod_revision = m->kvs[i]->mod_revision;
		error = fn(ctx, &kv);
	}
	etcdserverpb__range_response__free_unpacked(m, NULL);
	return error;
}

typedef int (*decoder)(const unsigned char *msg, size_t len, co_grpc_range_info *info,
		       co_grpc_kv_fn fn, void *ctx);

/* The best time: on a loaded machine the least disturbed decode. */
static double series_min(const co_bench_series *s)
{
	double m = s->n ? s->v[0] : 0;
	size_t i;

	for (i = 1; i < s->n; i++)
		if (s->v[i] < m)
			m = s->v[i];
	return m;
}

int main(int argc, char **argv)
{
	static const char *names[N_DEC] = {"hand", "hand'", "pbc"};
	static const decoder decs[N_DEC] = {co_grpc_range_decode, co_grpc_range_decode,
					    pbc_decode};
	size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 100000;
	size_t rounds = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 20, k, d;
	co_bench_series s[N_DEC];
	co_bench_stats st[N_DEC];
	double lo[N_DEC];
	uint64_t hashes[N_DEC] = {0};
	size_t kvs[N_DEC] = {0};
	co_grpc_range_info info;
	co_test_etcd etcd;
	co_grpc_buf body;
	double load[3] = {0};
	raw rw;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (co_test_etcd_start(&etcd) < 0 || raw_open(&rw, etcd.endpoint) < 0) {
		fprintf(stderr, "bench_grpc_decode: cannot start etcd\n");
		return 1;
	}
	curl_easy_setopt(rw.h, CURLOPT_TIMEOUT_MS, 60000L);
	seed(&rw, "/dec/", n);
	body = capture(etcd.endpoint, "/dec/");
	raw_close(&rw);
	co_test_etcd_stop(&etcd);
	printf("captured one RangeResponse: %zu records, %zu bytes\n", n, body.len);

	for (d = 0; d < N_DEC; d++)
		if (co_bench_series_init(&s[d], names[d], rounds) < 0)
			die("memory");
	for (k = 0; k < rounds; k++) {
		for (d = 0; d < N_DEC; d++) {
			size_t i = (d + k) % N_DEC; /* rotate who goes first */
			sum acc = {0xcbf29ce484222325ULL, 0};
			double t0;

			t0 = co_bench_now_us();
			if (decs[i](body.p + 5, body.len - 5, &info, on_kv, &acc) < 0)
				die(names[i]);
			co_bench_series_add(&s[i], co_bench_now_us() - t0);
			hashes[i] = acc.hash;
			kvs[i] = acc.n;
		}
	}
	printf("%zu rounds, each decoder once a round, rotating\n\n", rounds);
	printf("%-8s %10s %10s %10s %10s %10s %10s\n", "decoder", "min_ms", "p50_ms",
	       "p95_ms", "ns/kv_min", "min/hand", "p50/hand");
	for (d = 0; d < N_DEC; d++) {
		st[d] = co_bench_stats_of(&s[d]);
		lo[d] = series_min(&s[d]);
	}
	for (d = 0; d < N_DEC; d++) {
		printf("%-8s %10.3f %10.3f %10.3f %10.1f %9.2fx %9.2fx\n", names[d],
		       lo[d] / 1e3, st[d].p50 / 1e3, st[d].p95 / 1e3,
		       lo[d] * 1e3 / (double)kvs[d], lo[d] / lo[0],
		       st[d].p50 / st[0].p50);
		if (hashes[d] != hashes[0] || kvs[d] != kvs[0])
			fprintf(stderr, "bench_grpc_decode: %s saw other kvs\n",
				names[d]);
	}
	if (getloadavg(load, 3) == 3)
		printf("\nload average at end: %.2f %.2f %.2f\n", load[0], load[1],
		       load[2]);
	for (d = 0; d < N_DEC; d++)
		co_bench_series_free(&s[d]);
	free(body.p);
	curl_global_cleanup();
	return 0;
}
