/*
 * bench_raw.h - the raw etcd JSON-gateway client the benchmarks time the
 * stores against: one reused libcurl easy handle (connection kept alive)
 * POSTing hand-built JSON with the options the etcd store uses
 * (TCP_NODELAY, no proxy).  Header-only, as bench_util.h.
 *
 * raw_open/raw_close own the handle and the reply buffer (r->resp, valid
 * until the next call).  The calls return 0, or -1 on a transport error,
 * a non-200 status or (txns) a compare that failed.
 */
#ifndef CO_BENCH_RAW_H
#define CO_BENCH_RAW_H

#include "bench_util.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct raw {
	CURL *h;
	struct curl_slist *hdrs;
	char base[96];
	char *resp;
	size_t len, cap;
} raw;

static inline size_t raw_write_cb(char *p, size_t sz, size_t nm, void *ud)
{
	raw *r = ud;
	size_t n = sz * nm;

	if (r->len + n + 1 > r->cap) {
		size_t cap = (r->len + n + 1) * 2;
		char *q = realloc(r->resp, cap);

		if (q == NULL)
			return 0;
		r->resp = q;
		r->cap = cap;
	}
	memcpy(r->resp + r->len, p, n);
	r->len += n;
	r->resp[r->len] = '\0';
	return n;
}

static inline int raw_open(raw *r, const char *endpoint)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->base, sizeof(r->base), "%s", endpoint);
	if ((r->h = curl_easy_init()) == NULL)
		return -1;
	r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->h, CURLOPT_POST, 1L);
	curl_easy_setopt(r->h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(r->h, CURLOPT_PROXY, "");
	curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, raw_write_cb);
	curl_easy_setopt(r->h, CURLOPT_WRITEDATA, r);
	return 0;
}

static inline void raw_close(raw *r)
{
	if (r->h)
		curl_easy_cleanup(r->h);
	curl_slist_free_all(r->hdrs);
	free(r->resp);
}

/* POST body to base+path; the reply is in r->resp.  0, or -1 on a transport
 * error or a non-200 status. */
static inline int raw_post(raw *r, const char *path, const char *body)
{
	char url[160];
	long status = 0;

	snprintf(url, sizeof(url), "%s%s", r->base, path);
	r->len = 0;
	if (r->resp)
		r->resp[0] = '\0';
	curl_easy_setopt(r->h, CURLOPT_URL, url);
	curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(r->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	if (curl_easy_perform(r->h) != CURLE_OK)
		return -1;
	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
	return status == 200 ? 0 : -1;
}

static inline char *b64(const char *s)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), i, o = 0;
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		out[o++] = tbl[p[i] >> 2];
		out[o++] = tbl[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[o++] = tbl[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		out[o++] = tbl[p[i + 2] & 63];
	}
	if (n - i == 1) {
		out[o++] = tbl[p[i] >> 2];
		out[o++] = tbl[(p[i] & 3) << 4];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		out[o++] = tbl[p[i] >> 2];
		out[o++] = tbl[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[o++] = tbl[(p[i + 1] & 15) << 2];
		out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

/* 1 if the reply of a txn says it succeeded (a failed txn has no field). */
static inline int txn_succeeded(const raw *r)
{
	cJSON *j = cJSON_Parse(r->resp ? r->resp : "");
	int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "succeeded"));

	cJSON_Delete(j);
	return ok;
}

/* The create-if-absent txn a store sends for a create: CREATE == 0, put. */
static inline int raw_txn_create(raw *r, const char *key, const char *value)
{
	char *k = b64(key), *v = b64(value), *body = NULL;
	int error = -1;

	if (!k || !v ||
	    asprintf(&body,
		     "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\","
		     "\"result\":\"EQUAL\",\"create_revision\":\"0\"}],"
		     "\"success\":[{\"requestPut\":{\"key\":\"%s\",\"value\":\"%s\"}}]}",
		     k, k, v) < 0) {
		body = NULL;
		goto done;
	}
	if (raw_post(r, "/v3/kv/txn", body) == 0 && txn_succeeded(r))
		error = 0;
done:
	free(k);
	free(v);
	free(body);
	return error;
}

/*
 * What a claim does on the wire, without the store: range the key, take its
 * mod_revision, txn "MOD == that -> put".  *range_us gets the range's share.
 */
static inline int raw_range_cas(raw *r, const char *key, const char *value, double *range_us)
{
	char *k = b64(key), *v = b64(value), *body = NULL;
	cJSON *j = NULL, *kvs, *mr;
	const char *modrev;
	double t0 = co_bench_now_us();
	int error = -1;

	if (!k || !v || asprintf(&body, "{\"key\":\"%s\"}", k) < 0) {
		body = NULL;
		goto done;
	}
	if (raw_post(r, "/v3/kv/range", body) < 0)
		goto done;
	j = cJSON_Parse(r->resp);
	kvs = cJSON_GetObjectItemCaseSensitive(j, "kvs");
	mr = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(kvs, 0), "mod_revision");
	if ((modrev = cJSON_GetStringValue(mr)) == NULL)
		goto done;
	*range_us = co_bench_now_us() - t0;
	free(body);
	if (asprintf(
		&body,
		"{\"compare\":[{\"key\":\"%s\",\"target\":\"MOD\",\"result\":\"EQUAL\","
		"\"mod_revision\":\"%s\"}],"
		"\"success\":[{\"requestPut\":{\"key\":\"%s\",\"value\":\"%s\"}}]}",
		k, modrev, k, v) < 0) {
		body = NULL;
		goto done;
	}
	if (raw_post(r, "/v3/kv/txn", body) == 0 && txn_succeeded(r))
		error = 0;
done:
	cJSON_Delete(j);
	free(k);
	free(v);
	free(body);
	return error;
}

static inline int raw_put(raw *r, const char *key, const char *value)
{
	char *k = b64(key), *v = b64(value), *body = NULL;
	int error = -1;

	if (k && v && asprintf(&body, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v) >= 0)
		error = raw_post(r, "/v3/kv/put", body);
	else
		body = NULL;
	free(k);
	free(v);
	free(body);
	return error;
}

#endif
