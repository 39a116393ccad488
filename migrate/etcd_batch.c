/*
 * etcd_batch.c - many records per etcd txn, for backfill.
 *
 * The etcd store writes one record per txn, which is right for a router and
 * too slow for 100k records.  Backfill instead reads a snapshot of the
 * prefix with each key's mod_revision, decides what to write, and sends
 * txns of up to CO_ETCD_BATCH_MAX puts whose compares say "every key still
 * has the mod_revision I read (or is still absent)".  A txn whose compare
 * fails writes nothing; the caller then falls back to one record at a time
 * through co_store_put_if_newer(), which re-reads.  So a concurrent writer
 * (the router, a follower) is never overwritten by stale data.
 *
 * Limits (DESIGN appendix): 128 operations per txn by default, 1.5 MiB per
 * request.  A put of a record that replaces a claimed task with a TTL also
 * deletes <prefix>claims/<id>, as the store would, so each put may cost two
 * operations: hence 64 puts per txn, and a byte budget.
 *
 * Not here: leases.  A record that is claimed with a TTL is written through
 * the store (migrate.c does that), which attaches the lease.
 */
#include "migrate_internal.h"

#include "../src/core/b64.h"
#include "../src/core/error.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 1000

struct co_etcd_batch {
	char **endpoints;
	size_t n_endpoints, cur;
	char *prefix;
	char *user, *password, *token;
	char *ca_file, *cert_file, *key_file;
	long connect_ms, request_ms;
	CURL *curl;
	co_store *store; /* the batches' puts (co_etcd_batch_put) */
};

typedef struct buf {
	char *p;
	size_t n, cap;
} buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	buf *b = ud;
	size_t n = size * nmemb;

	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, ptr, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

void co_etcd_batch_free(co_etcd_batch *b)
{
	size_t i;

	if (!b)
		return;
	for (i = 0; i < b->n_endpoints; i++)
		free(b->endpoints[i]);
	free(b->endpoints);
	free(b->prefix);
	free(b->user);
	free(b->password);
	free(b->token);
	free(b->ca_file);
	free(b->cert_file);
	free(b->key_file);
	if (b->curl)
		curl_easy_cleanup(b->curl);
	co_store_free(b->store);
	free(b);
}

int co_etcd_batch_open(co_etcd_batch **out, const co_etcd_opts *o)
{
	co_etcd_batch *b = NULL;
	size_t i;
	int error = 0;

	if (!o || o->n_endpoints == 0)
		return co_error_set(CO_EINVAL, "etcd: no endpoints configured");
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->endpoints = calloc(o->n_endpoints, sizeof(char *))) == NULL)
		goto oom;
	for (i = 0; i < o->n_endpoints; i++) {
		if ((b->endpoints[i] = strdup(o->endpoints[i])) == NULL)
			goto oom;
		b->n_endpoints++;
	}
	if ((b->prefix = strdup(o->prefix ? o->prefix : "/")) == NULL)
		goto oom;
	if ((o->user && !(b->user = xstrdup(o->user))) ||
	    (o->password && !(b->password = xstrdup(o->password))) ||
	    (o->ca_file && !(b->ca_file = xstrdup(o->ca_file))) ||
	    (o->cert_file && !(b->cert_file = xstrdup(o->cert_file))) ||
	    (o->key_file && !(b->key_file = xstrdup(o->key_file))))
		goto oom;
	b->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 1000;
	/* A txn of 64 large records or a page of 1000 takes longer than one put. */
	b->request_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms * 6L : 30000;
	if ((b->curl = curl_easy_init()) == NULL)
		goto oom;
	{
		co_etcd_opts so = *o;

		so.cache_entries = -1;
		so.request_timeout_ms = (int)b->request_ms;
		if ((error = co_etcd_store_open(&b->store, &so)) < 0) {
			co_etcd_batch_free(b);
			return error;
		}
	}
	*out = b;
	return 0;
oom:
	error = co_error_set(CO_ENOMEM, "out of memory");
	co_etcd_batch_free(b);
	return error;
}

static int authenticate(co_etcd_batch *b);

/*
 * POST body to path; the parsed reply in *out.  Fails over between the
 * endpoints on a connection error.  An {"error"} reply is CO_EUNAVAIL with
 * etcd's message, except a compare-related one which callers see in the
 * body.
 */
static int post(cJSON **out, co_etcd_batch *b, const char *path, const char *body)
{
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "", url[512], auth[1024];
	buf reply = {NULL, 0, 0};
	cJSON *j = NULL, *err;
	long status = 0;
	size_t tries;
	CURLcode rc = CURLE_OK;
	int error = 0, reauth = 0;

again:
	for (tries = 0; tries < b->n_endpoints; tries++) {
		const char *ep = b->endpoints[b->cur];

		reply.n = 0;
		snprintf(url, sizeof(url), "%s%s", ep, path);
		curl_easy_reset(b->curl);
		curl_slist_free_all(hdrs);
		hdrs = curl_slist_append(NULL, "Content-Type: application/json");
		if (b->token) {
			snprintf(auth, sizeof(auth), "Authorization: %s", b->token);
			hdrs = curl_slist_append(hdrs, auth);
		}
		curl_easy_setopt(b->curl, CURLOPT_URL, url);
		curl_easy_setopt(b->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(b->curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(b->curl, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(b->curl, CURLOPT_WRITEDATA, &reply);
		curl_easy_setopt(b->curl, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(b->curl, CURLOPT_CONNECTTIMEOUT_MS, b->connect_ms);
		curl_easy_setopt(b->curl, CURLOPT_TIMEOUT_MS, b->request_ms);
		curl_easy_setopt(b->curl, CURLOPT_NOSIGNAL, 1L);
		if (b->ca_file)
			curl_easy_setopt(b->curl, CURLOPT_CAINFO, b->ca_file);
		if (b->cert_file)
			curl_easy_setopt(b->curl, CURLOPT_SSLCERT, b->cert_file);
		if (b->key_file)
			curl_easy_setopt(b->curl, CURLOPT_SSLKEY, b->key_file);
		errbuf[0] = '\0';
		rc = curl_easy_perform(b->curl);
		if (rc == CURLE_OK)
			break;
		b->cur = (b->cur + 1) % b->n_endpoints;
	}
	if (rc != CURLE_OK) {
		error = co_error_set(CO_EUNAVAIL, "etcd %s: %s", b->endpoints[b->cur],
				     errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto done;
	}
	curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);
	if ((j = cJSON_Parse(reply.p ? reply.p : "")) == NULL) {
		error = co_error_set(CO_EUNAVAIL, "etcd %s%s: HTTP %ld, reply is not JSON",
				     b->endpoints[b->cur], path, status);
		goto done;
	}
	if ((err = cJSON_GetObjectItemCaseSensitive(j, "error")) != NULL || status != 200) {
		cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
		const char *m = cJSON_IsString(msg) ? msg->valuestring
						    : cJSON_IsString(err) ? err->valuestring : "";

		/* An expired token: authenticate again, once. */
		if (b->user && !reauth && strstr(m, "token")) {
			reauth = 1;
			cJSON_Delete(j);
			j = NULL;
			if ((error = authenticate(b)) < 0)
				goto done;
			goto again;
		}
		error = co_error_set(CO_EUNAVAIL, "etcd %s%s: HTTP %ld: %s",
				     b->endpoints[b->cur], path, status, m);
		goto done;
	}
	*out = j;
	j = NULL;
done:
	curl_slist_free_all(hdrs);
	cJSON_Delete(j);
	free(reply.p);
	return error;
}

static int authenticate(co_etcd_batch *b)
{
	cJSON *req = cJSON_CreateObject(), *rep = NULL, *tok;
	char *body = NULL, *user = b->user;
	int error;

	if (!req || !cJSON_AddStringToObject(req, "name", b->user) ||
	    !cJSON_AddStringToObject(req, "password", b->password ? b->password : "") ||
	    (body = cJSON_PrintUnformatted(req)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	free(b->token);
	b->token = NULL;
	b->user = NULL; /* no re-authentication loop inside this call */
	error = post(&rep, b, "/v3/auth/authenticate", body);
	b->user = user;
	if (error < 0)
		goto done;
	tok = cJSON_GetObjectItemCaseSensitive(rep, "token");
	if (!cJSON_IsString(tok) || (b->token = strdup(tok->valuestring)) == NULL)
		error = co_error_set(CO_EUNAVAIL, "etcd: authentication gave no token");
done:
	free(body);
	cJSON_Delete(req);
	cJSON_Delete(rep);
	return error;
}

/* POST a request already written as text, authenticating first if needed. */
static int call_body(cJSON **out, co_etcd_batch *b, const char *path, const char *body)
{
	int error;

	if (b->user && !b->token && (error = authenticate(b)) < 0)
		return error;
	return post(out, b, path, body);
}

static int call(cJSON **out, co_etcd_batch *b, const char *path, cJSON *req)
{
	char *body = cJSON_PrintUnformatted(req);
	int error;

	if (!body)
		return co_error_set(CO_ENOMEM, "out of memory");
	error = call_body(out, b, path, body);
	free(body);
	return error;
}

static int64_t int_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (cJSON_IsString(v))
		return strtoll(v->valuestring, NULL, 10);
	/* A double past int64 (1e300) would be undefined to convert: as absent. */
	if (cJSON_IsNumber(v) && v->valuedouble > -9.2e18 && v->valuedouble < 9.2e18)
		return (int64_t)v->valuedouble;
	return 0;
}

static int add_b64(cJSON *o, const char *name, const char *s, size_t n)
{
	char *e = co_b64_encode(s, n);
	int ok = e && cJSON_AddStringToObject(o, name, e) != NULL;

	free(e);
	return ok ? 0 : co_error_set(CO_ENOMEM, "out of memory");
}

int co_etcd_batch_list(co_mig_set *out, int64_t *revision, co_etcd_batch *b,
		       co_kind kind)
{
	co_mig_set s = {NULL, 0, 0};
	char key[512], end[512], *start = NULL;
	size_t klen, plen;
	int64_t rev = 0;
	cJSON *req = NULL, *rep = NULL;
	int error = 0, more = 1;

	snprintf(key, sizeof(key), "%s%s/", b->prefix, co_kind_dir(kind));
	klen = strlen(key);
	memcpy(end, key, klen + 1);
	end[klen - 1]++; /* '/' + 1: the range end of the prefix */
	plen = klen;
	if ((start = malloc(klen + 1)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	memcpy(start, key, klen);
	while (more) {
		cJSON *kvs, *kv, *hdr;
		char ver[32];

		cJSON_Delete(req);
		cJSON_Delete(rep);
		rep = NULL;
		if ((req = cJSON_CreateObject()) == NULL ||
		    (error = add_b64(req, "key", start, klen)) < 0 ||
		    (error = add_b64(req, "range_end", end, strlen(end))) < 0 ||
		    !cJSON_AddNumberToObject(req, "limit", PAGE)) {
			error = error < 0 ? error : co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		if (rev > 0) {
			snprintf(ver, sizeof(ver), "%" PRId64, rev);
			if (!cJSON_AddStringToObject(req, "revision", ver)) {
				error = co_error_set(CO_ENOMEM, "out of memory");
				goto done;
			}
		}
		if ((error = call(&rep, b, "/v3/kv/range", req)) < 0)
			goto done;
		hdr = cJSON_GetObjectItemCaseSensitive(rep, "header");
		if (rev == 0)
			rev = int_field(hdr, "revision");
		more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "more"));
		kvs = cJSON_GetObjectItemCaseSensitive(rep, "kvs");
		kv = NULL;
		cJSON_ArrayForEach(kv, kvs)
		{
			cJSON *k = cJSON_GetObjectItemCaseSensitive(kv, "key");
			cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
			char *kd = NULL, *vd = NULL;
			size_t kn = 0, vn = 0;
			co_record *r = NULL;

			if (!cJSON_IsString(k) || (kd = co_b64_decode(k->valuestring, &kn)) == NULL) {
				error = co_error_set(CO_EUNAVAIL, "etcd: bad key in range reply");
				goto done;
			}
			/* the next page starts just after the last key: key + "\0" */
			if (kn + 1 > plen) {
				char *ns = realloc(start, kn + 1);

				if (!ns) {
					free(kd);
					error = co_error_set(CO_ENOMEM, "out of memory");
					goto done;
				}
				start = ns;
				plen = kn + 1;
			}
			memcpy(start, kd, kn);
			start[kn] = '\0';
			klen = kn + 1;
			vd = cJSON_IsString(v) ? co_b64_decode(v->valuestring, &vn) : strdup("");
			if (!vd || co_record_from_json(&r, vd, vn) < 0) {
				char why[512];

				snprintf(why, sizeof(why), "%s", co_error_last());
				error = co_error_set(CO_EINVAL, "etcd key %s: %s", kd,
						     vd ? why : "bad value");
				free(kd);
				free(vd);
				goto done;
			}
			free(kd);
			free(vd);
			snprintf(ver, sizeof(ver), "%" PRId64, int_field(kv, "mod_revision"));
			if ((error = co_mig__set_push(&s, r, ver)) < 0)
				goto done;
		}
	}
	for (size_t i = 0; i < s.n; i++) {
		if ((error = co_mig__set_push(out, s.v[i].r, s.v[i].ver)) < 0) {
			s.v[i].r = NULL;
			for (size_t k = i + 1; k < s.n; k++)
				co_record_free(s.v[k].r);
			s.n = 0;
			goto done;
		}
	}
	free(s.v);
	s.v = NULL;
	s.n = 0;
	if (revision)
		*revision = rev;
done:
	co_mig__set_clear(&s);
	cJSON_Delete(req);
	cJSON_Delete(rep);
	free(start);
	return error;
}

int co_etcd_batch_revision(int64_t *out, co_etcd_batch *b)
{
	cJSON *req = cJSON_CreateObject(), *rep = NULL;
	int error;

	if (!req)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((error = add_b64(req, "key", b->prefix, strlen(b->prefix))) == 0 &&
	    !cJSON_AddNumberToObject(req, "limit", 1))
		error = co_error_set(CO_ENOMEM, "out of memory");
	if (error == 0 && (error = call(&rep, b, "/v3/kv/range", req)) == 0)
		*out = int_field(cJSON_GetObjectItemCaseSensitive(rep, "header"), "revision");
	cJSON_Delete(req);
	cJSON_Delete(rep);
	return error;
}

/*
 * The batch goes through an etcd store of its own (no record cache): its
 * txn is sent as gRPC on a kept HTTP/2 connection where the endpoints
 * speak it, at about 0.6x the gateway's time per txn (bench_claim), and
 * written into one buffer either way (co_etcd_store_put_batch).
 */
int co_etcd_batch_put(co_etcd_batch *b, const co_record *const *recs,
		      const char *const *vers, const int *drop_claim, size_t n)
{
	if (n > CO_ETCD_BATCH_MAX)
		return co_error_set(CO_EINVAL, "etcd batch of %zu puts (at most %d)", n,
				    CO_ETCD_BATCH_MAX);
	return co_etcd_store_put_batch(b->store, recs, vers, drop_claim, n);
}
