/*
 * etcd_store.c - the new store: etcd v3 through its JSON gateway (DESIGN §2).
 *
 * Every operation is one HTTP POST of a JSON body to /v3/... with libcurl,
 * parsed with cJSON.  The store only provides the backend primitives of
 * store_backend.h (get, compare-and-swap, list, watch); the rules live in
 * store.c.  The compare-and-swap is an etcd txn comparing the key's
 * mod_revision as read before (create_revision 0 for "must be absent"), so
 * etcd itself picks the single winner of a race.  A claimed task with a TTL
 * also gets <prefix>claims/<id> under an etcd lease in the same txn, so that
 * etcd-native tooling sees the claim expire; the record's claim_expires_at
 * stays the truth (store.c applies the expiry rule) and the claims key is
 * removed by any write of the task that does not carry such a claim.
 *
 * Quirks of the 3.4 gateway this code relies on (DESIGN appendix): keys and
 * values are padded base64; int64 fields come as JSON strings (lease IDs
 * exceed a double's precision, so they are kept as strings); fields at
 * their default value are omitted (a failed txn has no "succeeded", an empty
 * range no "kvs", a PUT event no "type"); errors come as {"error","code",
 * "message"} with the gRPC code.
 *
 * Connections are reused: curl easy handles sit in a small pool guarded by
 * the store's mutex, one handle per request in flight.  With several
 * endpoints a request that fails at the connection level moves on to the
 * next one, and the store remembers which endpoint answered last.  Re-sending
 * a txn after an unknown outcome is safe: its compare fails if the first copy
 * was applied; the txn then reads the key back, and finding it exactly as the
 * txn would have left it, reports the write as done (applied_before);
 * otherwise store.c re-reads and decides again.
 *
 * A watch runs its own thread driving a streaming POST /v3/watch through a
 * curl multi handle, so that closing it can wake the thread at once
 * (curl_multi_wakeup).  The stream is split on newlines, not on chunks.  A
 * broken stream is resumed once on each endpoint from the next revision;
 * when that fails the watch ends with CO_EUNAVAIL.
 *
 * A renew or release revokes the claim's previous lease (read back in the
 * same txn), so leases do not pile up.  Not done here: lease keep-alive
 * (a renew grants a new lease instead), and etcd's own lock API (unsafe per
 * Jepsen; plain txns are strict serializable).
 */
#include "etcd_store.h"

#include "etcd_grpc.h"
#include "etcd_store_internal.h"

#include "store_backend.h"

#include "../core/error.h"
#include "../core/id.h"
#include "../core/record.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/rand.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_MAX 64
#define LIST_PAGE 1000

struct etcd {
	char **endpoints;
	size_t n_endpoints;
	char *prefix;
	char *user, *password;
	char *ca_file, *cert_file, *key_file;
	int connect_timeout_ms, request_timeout_ms;
	int scan_page;
	int64_t grpc_first_page; /* the gRPC scan's first limit */
	char *describe;

	pthread_mutex_t lock; /* guards the fields below */
	size_t current;	      /* the endpoint that answered last */
	CURL *pool[POOL_MAX];
	size_t n_pool;
	char *token;	    /* auth token, NULL until authenticated */
	atomic_int no_grpc; /* 1: an endpoint answered gRPC with HTTP/1 */
};

/* ---- small helpers ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const char *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static size_t buf_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	return buf_add(ud, ptr, size * nmemb) < 0 ? 0 : size * nmemb;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard padded base64 of len bytes; malloc'd, NULL on OOM. */
static char *b64_encode(const char *data, size_t len)
{
	const unsigned char *s = (const unsigned char *)data;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		*o++ = b64chars[s[i] >> 2];
		*o++ = b64chars[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		*o++ = b64chars[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		*o++ = b64chars[s[i + 2] & 63];
	}
	if (i < len) {
		*o++ = b64chars[s[i] >> 2];
		if (i + 1 < len) {
			*o++ = b64chars[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
			*o++ = b64chars[(s[i + 1] & 15) << 2];
		} else {
			*o++ = b64chars[(s[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(int c)
{
	const char *p;

	if (c == 0 || (p = strchr(b64chars, c)) == NULL)
		return -1;
	return (int)(p - b64chars);
}

/* Decode base64 into a malloc'd NUL-terminated buffer; *len its length. */
static char *b64_decode(const char *in, size_t *len)
{
	size_t n = strlen(in), o = 0;
	char *out = malloc(n / 4 * 3 + 4);
	unsigned acc = 0;
	int bits = 0;

	if (out == NULL)
		return NULL;
	for (; *in && *in != '='; in++) {
		int v = b64_value((unsigned char)*in);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	if (len)
		*len = o;
	return out;
}

/* A string field of a JSON object ("" when absent); int64s come as strings. */
static const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(it) && it->valuestring ? it->valuestring : "";
}

/* An int64 field that the gateway prints as a string (or a number). */
static int64_t json_i64(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (cJSON_IsString(it) && it->valuestring)
		return strtoll(it->valuestring, NULL, 10);
	/* A double past int64 (1e300) would be undefined to convert: as absent. */
	if (cJSON_IsNumber(it) && it->valuedouble > -9.2e18 && it->valuedouble < 9.2e18)
		return (int64_t)it->valuedouble;
	return 0;
}

static int json_true(const cJSON *obj, const char *name)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

/* Add a base64 field for the len bytes at data.  0 / -1 on OOM. */
static int json_add_b64(cJSON *obj, const char *name, const char *data, size_t len)
{
	char *b = b64_encode(data, len);
	int rc = -1;

	if (b && cJSON_AddStringToObject(obj, name, b))
		rc = 0;
	free(b);
	return rc;
}

static int json_add_i64(cJSON *obj, const char *name, int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return cJSON_AddStringToObject(obj, name, s) ? 0 : -1;
}

static int oom(void)
{
	return co_error_set(CO_ENOMEM, "out of memory");
}

/* "<prefix><dir>/<id>" (id may be "" for the directory itself). */
static char *key_for(const struct etcd *e, const char *dir, const char *id)
{
	char *k = NULL;

	if (asprintf(&k, "%s%s/%s", e->prefix, dir, id) < 0)
		return NULL;
	return k;
}

/*
 * Add key and range_end for "every key starting with prefix" to obj: the
 * range end is the prefix with its last byte below 0xff incremented (and
 * what follows dropped); "\0" means "to the end of the keyspace", which is
 * also what the empty prefix needs (etcd refuses an empty key).
 */
static int json_add_prefix_range(cJSON *obj, const char *prefix)
{
	size_t n = strlen(prefix);
	char *end;
	int rc;

	if (n == 0) {
		if (json_add_b64(obj, "key", "", 1) < 0)
			return -1;
		return json_add_b64(obj, "range_end", "", 1);
	}
	if (json_add_b64(obj, "key", prefix, n) < 0 || (end = strdup(prefix)) == NULL)
		return -1;
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0)
		rc = json_add_b64(obj, "range_end", "", 1);
	else {
		end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
		rc = json_add_b64(obj, "range_end", end, n);
	}
	free(end);
	return rc;
}

/* ---- HTTP ---- */

static void handle_setup(CURL *h, const struct etcd *e)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)e->request_timeout_ms);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write_cb);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	/*
	 * One kept-alive connection per handle: the one to the endpoint in
	 * use.  With curl's default (5), every failover left each pooled
	 * handle holding an idle connection to the member it had left, so
	 * serve's fds grew with each member restart up to 3 per handle
	 * (bench/bench_soak.c).
	 */
	curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L);
	/*
	 * etcd is talked to directly: an http_proxy in the environment (set
	 * for package downloads, say) must not capture cluster traffic.
	 */
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	if (e->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
	if (e->cert_file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert_file);
	if (e->key_file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, e->key_file);
}

static CURL *handle_get(struct etcd *e)
{
	CURL *h = NULL;

	pthread_mutex_lock(&e->lock);
	if (e->n_pool > 0)
		h = e->pool[--e->n_pool];
	pthread_mutex_unlock(&e->lock);
	if (h == NULL && (h = curl_easy_init()) != NULL)
		handle_setup(h, e);
	return h;
}

/* Back into the pool, with its keep-alive connections, or away if full. */
static void handle_put(struct etcd *e, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
	pthread_mutex_lock(&e->lock);
	if (e->n_pool < POOL_MAX) {
		e->pool[e->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	if (h)
		curl_easy_cleanup(h);
}

/* Headers for a request: JSON, no Expect: 100-continue, the auth token. */
static struct curl_slist *make_headers(const char *token)
{
	struct curl_slist *l = NULL, *t;
	char *auth = NULL;

	if ((t = curl_slist_append(l, "Content-Type: application/json")) == NULL)
		goto fail;
	l = t;
	if ((t = curl_slist_append(l, "Expect:")) == NULL)
		goto fail;
	l = t;
	if (token) {
		if (asprintf(&auth, "Authorization: %s", token) < 0)
			goto fail;
		if ((t = curl_slist_append(l, auth)) == NULL)
			goto fail;
		l = t;
		free(auth);
	}
	return l;
fail:
	free(auth);
	curl_slist_free_all(l);
	return NULL;
}

/* What went wrong with a transfer, as a person would say it. */
static void describe_curl_error(char *out, size_t len, CURL *h, CURLcode rc,
				const char *errbuf)
{
	long os_errno = 0;

	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
	if (rc == CURLE_COULDNT_CONNECT && os_errno != 0)
		snprintf(out, len, "%s", strerror((int)os_errno));
	else
		snprintf(out, len, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
	/* "Connection refused" reads better in the middle of a sentence. */
	if (out[0] >= 'A' && out[0] <= 'Z' && out[1] >= 'a' && out[1] <= 'z')
		out[0] = (char)(out[0] - 'A' + 'a');
}

/*
 * POST body to path on the endpoints, starting with the one that answered
 * last and moving on when one cannot be reached.  On an HTTP answer: 0,
 * *out the parsed JSON (NULL if the body was not JSON), *http the status,
 * *endpoint the index that answered.  CO_EUNAVAIL naming every endpoint
 * tried when none answered.
 */
static int post_raw(cJSON **out, long *http, size_t *endpoint, struct etcd *e,
		    const char *path, const char *body, const char *token)
{
	struct curl_slist *hdrs = NULL;
	struct buf resp = {0};
	char errbuf[CURL_ERROR_SIZE], why[1024] = "", what[CURL_ERROR_SIZE + 32];
	char one[sizeof(what) + 512];
	int64_t start = now_ms(), limit = e->request_timeout_ms;
	int bound = co_store__call_timeout();
	size_t first, k;
	CURL *h = NULL;
	int error;

	if ((hdrs = make_headers(token)) == NULL || (h = handle_get(e)) == NULL) {
		error = oom();
		goto done;
	}
	pthread_mutex_lock(&e->lock);
	first = e->current;
	pthread_mutex_unlock(&e->lock);
	/* A caller's bound (a mirror's short deadline) covers the whole
	 * request, every endpoint tried included; without one each endpoint
	 * gets the request timeout, so a member that accepts and never
	 * answers cannot starve the others.  The handle is pooled, so the
	 * timeouts are set on every request. */
	if (bound > 0 && bound < e->request_timeout_ms)
		limit = bound;
	for (k = 0; k < e->n_endpoints; k++) {
		size_t i = (first + k) % e->n_endpoints;
		int64_t left = bound > 0 ? limit - (now_ms() - start) : limit;
		char url[512];
		CURLcode rc;

		if (left <= 0) {
			snprintf(one, sizeof(one), "%sno time left within %lld ms",
				 why[0] ? "; " : "", (long long)limit);
			strncat(why, one, sizeof(why) - strlen(why) - 1);
			break;
		}
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
				 (long)(left < e->connect_timeout_ms ? left
								     : e->connect_timeout_ms));
		snprintf(url, sizeof(url), "%s%s", e->endpoints[i], path);
		errbuf[0] = '\0';
		resp.len = 0;
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		rc = curl_easy_perform(h);
		if (rc == CURLE_WRITE_ERROR && resp.p == NULL) {
			error = oom();
			goto done;
		}
		if (rc == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
			/* No leader on this member: another one may have one. */
			if (*http == 503 && k + 1 < e->n_endpoints) {
				snprintf(one, sizeof(one), "%s%s: HTTP 503",
					 why[0] ? "; " : "", e->endpoints[i]);
				strncat(why, one, sizeof(why) - strlen(why) - 1);
				continue;
			}
			pthread_mutex_lock(&e->lock);
			e->current = i;
			pthread_mutex_unlock(&e->lock);
			*out = resp.p ? cJSON_ParseWithLength(resp.p, resp.len) : NULL;
			*endpoint = i;
			error = 0;
			goto done;
		}
		/* A member that timed out is not where the next request starts:
		 * it may be hung, and a bounded request would spend its whole
		 * bound on it again. */
		if (rc == CURLE_OPERATION_TIMEDOUT && bound > 0 && limit == bound)
			co_store__bound_ran_out();
		if (rc == CURLE_OPERATION_TIMEDOUT && e->n_endpoints > 1) {
			pthread_mutex_lock(&e->lock);
			if (e->current == i)
				e->current = (i + 1) % e->n_endpoints;
			pthread_mutex_unlock(&e->lock);
		}
		describe_curl_error(what, sizeof(what), h, rc, errbuf);
		snprintf(one, sizeof(one), "%s%s: %s", why[0] ? "; " : "",
			 e->endpoints[i], what);
		strncat(why, one, sizeof(why) - strlen(why) - 1);
	}
	error = co_error_set(CO_EUNAVAIL, "etcd %s after %lld ms", why,
			     (long long)(now_ms() - start));
done:
	if (h)
		handle_put(e, h);
	curl_slist_free_all(hdrs);
	buf_free(&resp);
	return error;
}

/* gRPC status codes the gateway reports in "code". */
enum {
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_NOT_FOUND = 5,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_UNAUTHENTICATED = 16
};

static int is_auth_error(int code, const char *msg)
{
	return code == GRPC_UNAUTHENTICATED || strstr(msg, "auth token") != NULL ||
	       strstr(msg, "user name is empty") != NULL;
}

/* Turn a gateway error answer into a CO_E* code with its message. */
static int gateway_error(const struct etcd *e, size_t endpoint, long http, const cJSON *j,
			 const char *path)
{
	const char *msg = json_str(j, "message");
	int code = (int)json_i64(j, "code"), co;

	if (!msg[0])
		msg = json_str(j, "error");
	if (j == NULL)
		return co_error_set(CO_EUNAVAIL,
				    "etcd %s: %s: HTTP %ld with a body that is not JSON",
				    e->endpoints[endpoint], path, http);
	switch (is_auth_error(code, msg) ? GRPC_UNAUTHENTICATED : code) {
	case GRPC_INVALID_ARGUMENT:
		co = strstr(msg, "too large") ? CO_ETOOBIG : CO_EINVAL;
		break;
	case GRPC_RESOURCE_EXHAUSTED:
		co = CO_ETOOBIG;
		break;
	case GRPC_NOT_FOUND:
		co = CO_ENOTFOUND;
		break;
	default:
		co = CO_EUNAVAIL;
	}
	return co_error_set(co, "etcd %s: %s: %s (code %d, HTTP %ld)",
			    e->endpoints[endpoint], path, msg[0] ? msg : "error", code,
			    http);
}

/* Log in: POST /v3/auth/authenticate and keep the token. */
static int authenticate(struct etcd *e)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL;
	char *body = NULL, *tok = NULL;
	size_t ep = 0;
	long http = 0;
	int error;

	if (req == NULL || !cJSON_AddStringToObject(req, "name", e->user) ||
	    !cJSON_AddStringToObject(req, "password", e->password ? e->password : "") ||
	    (body = cJSON_PrintUnformatted(req)) == NULL) {
		error = oom();
		goto done;
	}
	if ((error =
		 post_raw(&resp, &http, &ep, e, "/v3/auth/authenticate", body, NULL)) < 0)
		goto done;
	if (http != 200 || resp == NULL || !json_str(resp, "token")[0]) {
		gateway_error(e, ep, http, resp, "/v3/auth/authenticate");
		error = co_error_set(CO_EUNAVAIL, "etcd: authenticating as %s failed: %s",
				     e->user, co_error_last());
		goto done;
	}
	if ((tok = strdup(json_str(resp, "token"))) == NULL) {
		error = oom();
		goto done;
	}
	pthread_mutex_lock(&e->lock);
	free(e->token);
	e->token = tok;
	pthread_mutex_unlock(&e->lock);
	error = 0;
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	free(body);
	return error;
}

/* A copy of the current token, authenticating first if needed.  *out may
 * be NULL (no auth configured). */
static int token_get(char **out, struct etcd *e)
{
	char *t = NULL;
	int error;

	*out = NULL;
	if (e->user == NULL)
		return 0;
	pthread_mutex_lock(&e->lock);
	if (e->token && (t = strdup(e->token)) == NULL) {
		pthread_mutex_unlock(&e->lock);
		return oom();
	}
	pthread_mutex_unlock(&e->lock);
	if (t == NULL) {
		if ((error = authenticate(e)) < 0)
			return error;
		pthread_mutex_lock(&e->lock);
		t = e->token ? strdup(e->token) : NULL;
		pthread_mutex_unlock(&e->lock);
		if (t == NULL)
			return oom();
	}
	*out = t;
	return 0;
}

static void token_drop(struct etcd *e, const char *stale)
{
	pthread_mutex_lock(&e->lock);
	if (e->token && stale && strcmp(e->token, stale) == 0) {
		free(e->token);
		e->token = NULL;
	}
	pthread_mutex_unlock(&e->lock);
}

/*
 * One gateway call: POST req to path and give back the JSON answer in *out
 * (owned by the caller).  A gateway error becomes a CO_E* code; an invalid
 * token is renewed once.
 */
static int etcd_call(cJSON **out, struct etcd *e, const char *path, const cJSON *req)
{
	cJSON *resp = NULL;
	char *body = NULL, *token = NULL;
	size_t ep = 0;
	long http = 0;
	int error, attempt;

	if ((body = cJSON_PrintUnformatted(req)) == NULL)
		return oom();
	for (attempt = 0; attempt < 2; attempt++) {
		free(token);
		cJSON_Delete(resp);
		token = NULL;
		resp = NULL;
		if ((error = token_get(&token, e)) < 0)
			goto done;
		if ((error = post_raw(&resp, &http, &ep, e, path, body, token)) < 0)
			goto done;
		if (http == 200 && resp != NULL &&
		    !cJSON_GetObjectItemCaseSensitive(resp, "error")) {
			*out = resp;
			resp = NULL;
			error = 0;
			goto done;
		}
		if (e->user && attempt == 0 &&
		    is_auth_error((int)json_i64(resp, "code"),
				  json_str(resp, "message"))) {
			token_drop(e, token);
			continue;
		}
		break;
	}
	error = gateway_error(e, ep, http, resp, path);
done:
	cJSON_Delete(resp);
	free(body);
	free(token);
	return error;
}

/* ---- records ---- */

/* Parse a stored value into a record; errors name the key. */
static int record_from_value(co_record **out, const struct etcd *e, const char *val,
			     size_t len, const char *key)
{
	co_record *r = NULL;
	int error;

	if ((error = co_record_from_json(&r, val, len)) < 0)
		return co_error_set(error, "etcd %s: key %s: %s", e->describe, key,
				    co_error_last());
	*out = r;
	return 0;
}

/* The same for a gateway kv, whose value is base64. */
static int record_from_kv(co_record **out, const struct etcd *e, const cJSON *kv,
			  const char *key)
{
	size_t len = 0;
	char *val = b64_decode(json_str(kv, "value"), &len);
	int error;

	if (val == NULL)
		return co_error_set(CO_EINVAL, "etcd %s: key %s: value is not base64",
				    e->describe, key);
	error = record_from_value(out, e, val, len, key);
	free(val);
	return error;
}

static int etcd_get(co_record **out, co_version *ver, void *impl, co_kind kind,
		    const char *id)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *kvs;
	co_record *r = NULL;
	char *key = key_for(e, co_kind_dir(kind), id);
	int error;

	ver->v[0] = '\0';
	if (req == NULL || key == NULL ||
	    json_add_b64(req, "key", key, strlen(key)) < 0) {
		error = oom();
		goto done;
	}
	if ((error = etcd_call(&resp, e, "/v3/kv/range", req)) < 0)
		goto done;
	kvs = cJSON_GetObjectItemCaseSensitive(resp, "kvs");
	if (!cJSON_IsArray(kvs) || cJSON_GetArraySize(kvs) == 0) {
		error =
		    co_error_set(CO_ENOTFOUND, "%s %s not found", co_kind_name(kind), id);
		goto done;
	}
	if ((error = record_from_kv(&r, e, cJSON_GetArrayItem(kvs, 0), key)) < 0)
		goto done;
	if (r->kind != kind || strcmp(r->id, id) != 0) {
		error = co_error_set(CO_EINVAL, "etcd %s: key %s holds %s %s",
				     e->describe, key, co_kind_name(r->kind), r->id);
		goto done;
	}
	snprintf(ver->v, sizeof(ver->v), "%s",
		 json_str(cJSON_GetArrayItem(kvs, 0), "mod_revision"));
	*out = r;
	r = NULL;
done:
	co_record_free(r);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	free(key);
	return error;
}

/* Grant a lease of ttl seconds; its ID (a string: it exceeds a double). */
static int lease_grant(char *id, size_t len, struct etcd *e, int64_t ttl)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL;
	int error;

	if (req == NULL || json_add_i64(req, "TTL", ttl) < 0) {
		error = oom();
		goto done;
	}
	if ((error = etcd_call(&resp, e, "/v3/lease/grant", req)) < 0)
		goto done;
	if (!json_str(resp, "ID")[0]) {
		error = co_error_set(CO_EUNAVAIL, "etcd %s: lease grant: %s", e->describe,
				     json_str(resp, "error")[0] ? json_str(resp, "error")
								: "no lease ID");
		goto done;
	}
	snprintf(id, len, "%s", json_str(resp, "ID"));
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* Best effort: a lease nobody uses would expire on its own anyway. */
static void lease_revoke(struct etcd *e, const char *id)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL;

	if (req && cJSON_AddStringToObject(req, "ID", id))
		etcd_call(&resp, e, "/v3/lease/revoke", req);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	co_error_clear();
}

static cJSON *txn_op(cJSON *ops, const char *type)
{
	cJSON *op = cJSON_CreateObject(), *inner;

	if (op == NULL)
		return NULL;
	if ((inner = cJSON_AddObjectToObject(op, type)) == NULL ||
	    !cJSON_AddItemToArray(ops, op)) {
		cJSON_Delete(op);
		return NULL;
	}
	return inner;
}

/* Whether writing r puts <prefix>claims/<id> under a lease (etcd_cas). */
static int wants_lease(const co_record *r)
{
	return r && r->kind == CO_KIND_TASK && r->status == CO_STATUS_CLAIMED && r->owner &&
	       r->claim_expires_at > 0;
}

/*
 * A batch's claims share leases: one per distinct claim_expires_at, with
 * that claim's TTL, so a claims key still goes when its claim runs out.
 * Their IDs are chosen here (etcd takes a requested ID) and carry a mark
 * in the top 16 bits, so that etcd_cas, which revokes the lease a claims
 * key held before it is replaced, leaves a shared one alone: revoking it
 * would drop the other claims keys under it.  A lease etcd itself numbered
 * can carry the mark only where a member's ID ends in those 16 bits; it is
 * then left to run out at its TTL, which is all that costs.
 */
#define BATCH_LEASE_MARK 0x4342ULL /* "CB" */

static int is_batch_lease(const char *id)
{
	char *end;
	unsigned long long v = strtoull(id, &end, 10);

	return *end == '\0' && (v >> 48) == BATCH_LEASE_MARK;
}

/*
 * 1 if a txn whose compare failed finds the key already as it would have
 * made it: `val` byte for byte (NULL: the key gone).  That happens when an
 * earlier copy of the same txn was applied but its answer was lost -- a
 * member that timed out, or answered 503 "request timed out" for a
 * proposal that committed after all -- and post_raw() sent it again to the
 * next member, whose compare then fails.  Deciding again would tell the
 * caller the opposite of what happened (a release applied, reported as
 * "not claimed"), and a router would drop the mirror of a write its
 * primary holds.  A record carries its rev, owner and times, so another
 * writer leaving these exact bytes made the very same transition.
 */
static int applied_before(const cJSON *resp, const char *val)
{
	const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "responses"), 0),
	    "response_range");
	const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(rr, "kvs");
	const cJSON *kv = cJSON_GetArrayItem(kvs, 0);
	char *now;
	size_t len = 0;
	int same;

	if (rr == NULL)
		return 0;
	if (kv == NULL)
		return val == NULL;
	if (val == NULL || (now = b64_decode(json_str(kv, "value"), &len)) == NULL)
		return 0;
	same = len == strlen(val) && memcmp(now, val, len) == 0;
	free(now);
	return same;
}

static int etcd_cas(void *impl, co_kind kind, const char *id, const co_record *r,
		    const co_version *expected, const char *why)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *cmp, *ops, *c, *op;
	char *key = key_for(e, co_kind_dir(kind), id), *ckey = key_for(e, "claims", id);
	char *val = NULL, lease[32] = "";
	int error;
	int with_lease = kind == CO_KIND_TASK && wants_lease(r);

	(void)why;
	if (req == NULL || key == NULL || ckey == NULL ||
	    (r && (val = co_record_to_json(r, 0)) == NULL)) {
		error = oom();
		goto done;
	}
	if (with_lease) {
		int64_t ttl = r->claim_expires_at - co_time_now();

		if ((error = lease_grant(lease, sizeof(lease), e, ttl < 1 ? 1 : ttl)) < 0)
			goto done;
	}

	/* Compare: the key is as we read it, or absent (never created). */
	if ((cmp = cJSON_AddArrayToObject(req, "compare")) == NULL ||
	    (c = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(cmp, c) ||
	    json_add_b64(c, "key", key, strlen(key)) < 0 ||
	    !cJSON_AddStringToObject(c, "result", "EQUAL")) {
		error = oom();
		goto done;
	}
	if (expected->v[0]) {
		if (!cJSON_AddStringToObject(c, "target", "MOD") ||
		    !cJSON_AddStringToObject(c, "mod_revision", expected->v)) {
			error = oom();
			goto done;
		}
	} else if (!cJSON_AddStringToObject(c, "target", "CREATE") ||
		   !cJSON_AddStringToObject(c, "create_revision", "0")) {
		error = oom();
		goto done;
	}

	/* Success: the record, and the claims key following it. */
	if ((ops = cJSON_AddArrayToObject(req, "success")) == NULL) {
		error = oom();
		goto done;
	}
	if (r) {
		if ((op = txn_op(ops, "request_put")) == NULL ||
		    json_add_b64(op, "key", key, strlen(key)) < 0 ||
		    json_add_b64(op, "value", val, strlen(val)) < 0) {
			error = oom();
			goto done;
		}
	} else if ((op = txn_op(ops, "request_delete_range")) == NULL ||
		   json_add_b64(op, "key", key, strlen(key)) < 0) {
		error = oom();
		goto done;
	}
	if (kind == CO_KIND_TASK) {
		/*
		 * Read the claims key before replacing it: its old lease (a
		 * renewed or released claim) has no further use and is revoked
		 * after the txn, rather than lingering until its TTL.  Ops in a
		 * txn run in order, so this range sees the state before.
		 */
		if ((op = txn_op(ops, "request_range")) == NULL ||
		    json_add_b64(op, "key", ckey, strlen(ckey)) < 0) {
			error = oom();
			goto done;
		}
		if (with_lease) {
			if ((op = txn_op(ops, "request_put")) == NULL ||
			    json_add_b64(op, "key", ckey, strlen(ckey)) < 0 ||
			    json_add_b64(op, "value", r->owner, strlen(r->owner)) < 0 ||
			    !cJSON_AddStringToObject(op, "lease", lease)) {
				error = oom();
				goto done;
			}
		} else if ((op = txn_op(ops, "request_delete_range")) == NULL ||
			   json_add_b64(op, "key", ckey, strlen(ckey)) < 0) {
			error = oom();
			goto done;
		}
	}

	/* Failure: read the key back, for applied_before(). */
	if ((ops = cJSON_AddArrayToObject(req, "failure")) == NULL ||
	    (op = txn_op(ops, "request_range")) == NULL ||
	    json_add_b64(op, "key", key, strlen(key)) < 0) {
		error = oom();
		goto done;
	}

	if ((error = etcd_call(&resp, e, "/v3/kv/txn", req)) < 0) {
		/*
		 * Without an answer the txn may have been applied with the
		 * lease attached: keep the lease, it runs out by itself.
		 */
		if (error == CO_EUNAVAIL)
			lease[0] = '\0';
		goto done;
	}
	/* A failed txn has no "succeeded" field at all (default false). */
	if (!json_true(resp, "succeeded")) {
		if (!applied_before(resp, val)) {
			error = CO_ERETRY;
			co_error_set(CO_ERETRY, "etcd %s: %s changed meanwhile",
				     e->describe, key);
			goto done;
		}
		/* An earlier copy of this txn did it; its old lease, if any,
		 * runs out by itself. */
		lease[0] = '\0';
		error = 0;
		goto done;
	}
	lease[0] = '\0'; /* now in use */
	if (kind == CO_KIND_TASK) {
		/* responses[1] is the range of the claims key, as it was. */
		const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetArrayItem(
			cJSON_GetObjectItemCaseSensitive(resp, "responses"), 1),
		    "response_range");
		const char *old = json_str(
		    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0),
		    "lease");

		if (old[0] && strcmp(old, "0") != 0 && !is_batch_lease(old))
			lease_revoke(e, old);
	}
	error = 0;
done:
	if (lease[0]) {
		int saved = co_error_last_code();
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s", co_error_last());
		lease_revoke(e, lease);
		co_error_set(saved, "%s", msg);
	}
	cJSON_Delete(req);
	cJSON_Delete(resp);
	free(key);
	free(ckey);
	free(val);
	return error;
}

/* ---- many keys in one round trip (an outbox drain's batches) ---- */

/* etcd's default --max-txn-ops: the most operations of one txn branch. */
#define TXN_OPS_MAX 128

static int etcd_get_many(void *impl, co_store__read *rd, size_t n)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *ops, *op, *rs;
	char **keys = calloc(n ? n : 1, sizeof(*keys));
	size_t i;
	int error = 0;

	if (n > TXN_OPS_MAX) {
		error = co_error_set(CO_EINVAL, "etcd get_many: %zu keys, at most %d", n,
				     TXN_OPS_MAX);
		goto done;
	}
	if (req == NULL || keys == NULL ||
	    (ops = cJSON_AddArrayToObject(req, "success")) == NULL) {
		error = oom();
		goto done;
	}
	/* A txn without compares runs its success branch: every range at
	 * one revision, in one round trip. */
	for (i = 0; i < n; i++) {
		if ((keys[i] = key_for(e, co_kind_dir(rd[i].kind), rd[i].id)) == NULL ||
		    (op = txn_op(ops, "request_range")) == NULL ||
		    json_add_b64(op, "key", keys[i], strlen(keys[i])) < 0) {
			error = oom();
			goto done;
		}
	}
	if ((error = etcd_call(&resp, e, "/v3/kv/txn", req)) < 0)
		goto done;
	rs = cJSON_GetObjectItemCaseSensitive(resp, "responses");
	if (!cJSON_IsArray(rs) || (size_t)cJSON_GetArraySize(rs) != n) {
		error = co_error_set(CO_EUNAVAIL, "etcd %s: txn of %zu ranges: %d answers",
				     e->describe, n, cJSON_GetArraySize(rs));
		goto done;
	}
	for (i = 0; i < n; i++) {
		const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, (int)i),
						     "response_range"),
		    "kvs");
		const cJSON *kv = cJSON_GetArrayItem(kvs, 0);

		rd[i].out = NULL;
		rd[i].ver.v[0] = '\0';
		if (kv == NULL)
			continue; /* absent */
		if ((error = record_from_kv(&rd[i].out, e, kv, keys[i])) < 0)
			break;
		if (rd[i].out->kind != rd[i].kind || strcmp(rd[i].out->id, rd[i].id) != 0) {
			error = co_error_set(CO_EINVAL, "etcd %s: key %s holds %s %s",
					     e->describe, keys[i],
					     co_kind_name(rd[i].out->kind), rd[i].out->id);
			i++;
			break;
		}
		snprintf(rd[i].ver.v, sizeof(rd[i].ver.v), "%s", json_str(kv, "mod_revision"));
	}
	if (error < 0)
		while (i-- > 0) {
			co_record_free(rd[i].out);
			rd[i].out = NULL;
		}
done:
	for (i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

static int grant_batch_lease(char *id, size_t len, struct etcd *e, int64_t ttl)
{
	cJSON *req = NULL, *resp = NULL;
	int error = 0, tries;

	for (tries = 0; tries < 4; tries++) {
		unsigned char rnd[6];
		unsigned long long v = BATCH_LEASE_MARK << 48;
		char want[24];
		size_t i;

		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return co_error_set(CO_EIO, "etcd %s: no random lease ID", e->describe);
		for (i = 0; i < sizeof(rnd); i++)
			v |= (unsigned long long)rnd[i] << (8 * i);
		snprintf(want, sizeof(want), "%llu", v);
		cJSON_Delete(req);
		cJSON_Delete(resp);
		resp = NULL;
		if ((req = cJSON_CreateObject()) == NULL || json_add_i64(req, "TTL", ttl) < 0 ||
		    !cJSON_AddStringToObject(req, "ID", want)) {
			error = oom();
			break;
		}
		error = etcd_call(&resp, e, "/v3/lease/grant", req);
		if (error == 0 && strcmp(json_str(resp, "ID"), want) == 0) {
			snprintf(id, len, "%s", want);
			break;
		}
		/* an ID already in use (one in 2^48): draw another */
		if (error == 0)
			error = co_error_set(CO_EUNAVAIL, "etcd %s: lease grant: %s",
					     e->describe,
					     json_str(resp, "error")[0] ? json_str(resp, "error")
									: "no lease ID");
		else if (error != CO_EINVAL)
			break;
	}
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* lease[i]: the shared lease of w[i]'s claim, "" when it has none. */
static int grant_leases(struct etcd *e, const co_store__write *w, size_t n,
			char (*lease)[32])
{
	size_t i, j;
	int error;

	for (i = 0; i < n; i++) {
		int64_t ttl;

		if (!wants_lease(w[i].r) || lease[i][0])
			continue;
		ttl = w[i].r->claim_expires_at - co_time_now();
		if ((error = grant_batch_lease(lease[i], sizeof(lease[i]), e,
					       ttl < 1 ? 1 : ttl)) < 0)
			return error;
		for (j = i + 1; j < n; j++)
			if (wants_lease(w[j].r) &&
			    w[j].r->claim_expires_at == w[i].r->claim_expires_at)
				memcpy(lease[j], lease[i], sizeof(lease[i]));
	}
	return 0;
}

/*
 * All of w in one txn: each key compared to the version read before, and
 * written with its claims key (under its own lease, or removed), as
 * etcd_cas does one.  Unlike etcd_cas the claims key's previous lease is
 * not looked up and revoked: the put or delete detaches the key from it,
 * so it holds nothing and runs out at its TTL.
 */
static int etcd_cas_many(void *impl, const co_store__write *w, size_t n, const char *why)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *cmp, *ops, *c, *op;
	char(*lease)[32] = calloc(n ? n : 1, sizeof(*lease));
	size_t i, nops = 0;
	int error = 0;

	(void)why;
	for (i = 0; i < n; i++)
		nops += w[i].r->kind == CO_KIND_TASK ? 2 : 1;
	if (n > TXN_OPS_MAX || nops > TXN_OPS_MAX) {
		error = co_error_set(CO_EINVAL, "etcd cas_many: %zu operations, at most %d",
				     nops, TXN_OPS_MAX);
		goto done;
	}
	if (req == NULL || lease == NULL || (cmp = cJSON_AddArrayToObject(req, "compare")) == NULL ||
	    (ops = cJSON_AddArrayToObject(req, "success")) == NULL) {
		error = oom();
		goto done;
	}
	if ((error = grant_leases(e, w, n, lease)) < 0)
		goto done;
	for (i = 0; i < n && error == 0; i++) {
		const co_record *r = w[i].r;
		char *key = key_for(e, co_kind_dir(r->kind), r->id);
		char *ckey = r->kind == CO_KIND_TASK ? key_for(e, "claims", r->id) : NULL;
		char *val = co_record_to_json(r, 0);
		int ok = key && val && (r->kind != CO_KIND_TASK || ckey);

		ok = ok && (c = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(cmp, c) &&
		     json_add_b64(c, "key", key, strlen(key)) == 0 &&
		     cJSON_AddStringToObject(c, "result", "EQUAL") &&
		     (w[i].expected.v[0]
			  ? cJSON_AddStringToObject(c, "target", "MOD") &&
				cJSON_AddStringToObject(c, "mod_revision", w[i].expected.v)
			  : cJSON_AddStringToObject(c, "target", "CREATE") &&
				cJSON_AddStringToObject(c, "create_revision", "0"));
		ok = ok && (op = txn_op(ops, "request_put")) != NULL &&
		     json_add_b64(op, "key", key, strlen(key)) == 0 &&
		     json_add_b64(op, "value", val, strlen(val)) == 0;
		if (ok && ckey && lease[i][0])
			ok = (op = txn_op(ops, "request_put")) != NULL &&
			     json_add_b64(op, "key", ckey, strlen(ckey)) == 0 &&
			     json_add_b64(op, "value", r->owner, strlen(r->owner)) == 0 &&
			     cJSON_AddStringToObject(op, "lease", lease[i]);
		else if (ok && ckey)
			ok = (op = txn_op(ops, "request_delete_range")) != NULL &&
			     json_add_b64(op, "key", ckey, strlen(ckey)) == 0;
		if (!ok)
			error = oom();
		free(key);
		free(ckey);
		free(val);
	}
	if (error < 0)
		goto done;
	if ((error = etcd_call(&resp, e, "/v3/kv/txn", req)) < 0) {
		/* Without an answer the txn may have been applied with the
		 * leases attached: keep them, they run out by themselves. */
		if (error == CO_EUNAVAIL)
			memset(lease, 0, n * sizeof(*lease));
		goto done;
	}
	if (!json_true(resp, "succeeded")) {
		error = co_error_set(CO_ERETRY, "etcd %s: one of %zu keys changed meanwhile",
				     e->describe, n);
		goto done;
	}
	memset(lease, 0, n * sizeof(*lease)); /* now in use */
done:
	for (i = 0; lease && i < n; i++) {
		size_t j;

		for (j = 0; j < i && strcmp(lease[j], lease[i]) != 0; j++)
			;
		if (lease[i][0] && j == i) { /* each shared lease once */
			int saved = co_error_last_code();
			char msg[1024];

			snprintf(msg, sizeof(msg), "%s", co_error_last());
			lease_revoke(e, lease[i]);
			co_error_set(saved, "%s", msg);
		}
	}
	free(lease);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/*
 * Range over every key of kind, page by page, all pages at the revision of
 * the first (a consistent snapshot).  A page whose answer is too large for
 * the gateway is asked again with a smaller limit.
 */
/*
 * The limit of the next page, given the range's total key count: `parts`
 * pages, of at most `max` keys.  etcd 3.4 walks every key from a page's
 * start to the range's end before it applies the limit, so each page costs
 * about a walk of the rest of the range: a million keys in pages of 62,500
 * took 8-9.6 s to scan, in pages of 200,000 2.0-2.4 s.  For the same
 * reason the gRPC scan's first page is GRPC_PAGE_MAX too (unless the
 * caller set scan_page): a first page of 10,000 keys delayed the first
 * record of a million by a whole walk (2.05 s, against 1.38 s).  The gRPC scan
 * decodes as bytes arrive, so its pages are large: halves of the range,
 * up to 500,000 keys (a reconciliation of a million took 4.4-4.5 s so, 4.8-5.5 s
 * in quarters of up to 250,000).  What they cost is etcd's memory for one
 * response, about 150 MB for 500,000 task records; a caller that cannot
 * afford it sets scan_page.  The gateway's pages are parsed whole, so they
 * stay smaller.
 */
#define GRPC_PAGE_PARTS 2
#define GRPC_PAGE_MAX 500000
#define GATEWAY_PAGE_PARTS 16
#define GATEWAY_PAGE_MAX 50000

static int64_t page_limit(int64_t limit, int64_t count, int64_t parts, int64_t max)
{
	int64_t want = count / parts + 1;

	if (want > max)
		want = max;
	return want > limit ? want : limit;
}

/*
 * Every key under `dir` at one revision, `limit` keys per page through the
 * gateway: fn gets each kv (key and value decoded) in key order.  *rev: the
 * revision to read (0: the current one), set to the one read.
 */
static int range_gateway(struct etcd *e, const char *dir, int64_t *rev, int64_t limit,
			 co_grpc_kv_fn fn, void *ctx)
{
	cJSON *req = NULL, *resp = NULL, *kvs, *kv;
	char *start = NULL, *val = NULL;
	size_t start_len;
	int error, more = 1;

	if ((start = strdup(dir)) == NULL)
		return oom();
	start_len = strlen(start);
	while (more) {
		cJSON_Delete(req);
		cJSON_Delete(resp);
		req = cJSON_CreateObject();
		resp = NULL;
		if (req == NULL || json_add_prefix_range(req, dir) < 0 ||
		    json_add_i64(req, "limit", limit) < 0 ||
		    (*rev > 0 && json_add_i64(req, "revision", *rev) < 0)) {
			error = oom();
			goto done;
		}
		/* Replace the key by where this page starts. */
		cJSON_DeleteItemFromObjectCaseSensitive(req, "key");
		if (json_add_b64(req, "key", start, start_len) < 0) {
			error = oom();
			goto done;
		}
		error = etcd_call(&resp, e, "/v3/kv/range", req);
		if (error == CO_ETOOBIG && limit > 1) {
			limit /= 2;
			continue;
		}
		if (error < 0)
			goto done;
		if (*rev == 0)
			*rev = json_i64(cJSON_GetObjectItemCaseSensitive(resp, "header"),
					"revision");
		more = json_true(resp, "more");
		limit = page_limit(limit, json_i64(resp, "count"), GATEWAY_PAGE_PARTS,
				   GATEWAY_PAGE_MAX);
		kvs = cJSON_GetObjectItemCaseSensitive(resp, "kvs");
		cJSON_ArrayForEach(kv, kvs)
		{
			co_grpc_kv one;
			size_t klen = 0, vlen = 0;
			char *k = b64_decode(json_str(kv, "key"), &klen);

			free(val);
			val = b64_decode(json_str(kv, "value"), &vlen);
			if (k == NULL || val == NULL) {
				free(k);
				error = co_error_set(
				    CO_EINVAL, "etcd %s: key or value is not base64",
				    e->describe);
				goto done;
			}
			/* The next page starts just after the last key: key + "\0". */
			free(start);
			start = k;
			start_len = klen + 1;
			one.key = k;
			one.key_len = klen;
			one.value = val;
			one.value_len = vlen;
			one.mod_revision = json_i64(kv, "mod_revision");
			if ((error = fn(ctx, &one)) < 0)
				goto done;
		}
		if (more && !cJSON_IsArray(kvs)) {
			error = co_error_set(CO_EUNAVAIL,
					     "etcd %s: range says more but gave none",
					     e->describe);
			goto done;
		}
	}
	error = 0;
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	free(start);
	free(val);
	return error;
}

struct list_ctx {
	struct etcd *e;
	co_record_list l;
};

static int list_one(void *ctx, const co_grpc_kv *kv)
{
	struct list_ctx *c = ctx;
	co_record *r = NULL;
	int error;

	if ((error = record_from_value(&r, c->e, kv->value, kv->value_len, kv->key)) < 0)
		return error;
	if (co_record_list_push(&c->l, r) < 0) {
		co_record_free(r);
		return oom();
	}
	return 0;
}

static int list_at(co_record_list *out, int64_t *revision, struct etcd *e, co_kind kind)
{
	struct list_ctx c = {e, {0}};
	char *dir = key_for(e, co_kind_dir(kind), "");
	int64_t rev = 0;
	int error;

	if (dir == NULL)
		return oom();
	if ((error = range_gateway(e, dir, &rev, LIST_PAGE, list_one, &c)) == 0) {
		*out = c.l;
		memset(&c.l, 0, sizeof(c.l));
		if (revision)
			*revision = rev;
	}
	co_record_list_clear(&c.l);
	free(dir);
	return error;
}

static int etcd_list(co_record_list *out, void *impl, co_kind kind)
{
	return list_at(out, NULL, impl, kind);
}

/* ---- scan ---- */

struct scan_ctx {
	struct etcd *e;
	co_kind kind;
	size_t dir_len;
	co_scan_fn fn;
	void *ctx;
	size_t calls; /* fn calls made: a failed gRPC scan falls back only at 0 */
	char *last;   /* the last key seen (gRPC paging) */
	size_t last_len;
};

/* A kv under <prefix><dir>/ to a co_scan_item. */
static int scan_one(void *ctx, const co_grpc_kv *kv)
{
	struct scan_ctx *c = ctx;
	char id[CO_ID_MAX + 8], ver[24];
	co_scan_item item;
	size_t n;

	if (kv->key_len > c->dir_len && (n = kv->key_len - c->dir_len) < sizeof(id)) {
		memcpy(id, kv->key + c->dir_len, n);
		id[n] = '\0';
	} else {
		return co_error_set(CO_EINVAL,
				    "etcd %s: key of %zu bytes under the %s prefix",
				    c->e->describe, kv->key_len, co_kind_dir(c->kind));
	}
	snprintf(ver, sizeof(ver), "%" PRId64, kv->mod_revision);
	item.kind = c->kind;
	item.id = id;
	item.raw = kv->value;
	item.len = kv->value_len;
	item.version = ver;
	item.blob_id = NULL;
	c->calls++;
	return c->fn(c->ctx, &item);
}

/* scan_one, remembering the key where the next gRPC page starts. */
static int scan_one_grpc(void *ctx, const co_grpc_kv *kv)
{
	struct scan_ctx *c = ctx;

	if (kv->key_len + 1 > c->last_len || c->last == NULL) {
		char *p = realloc(c->last, kv->key_len + 1);

		if (p == NULL)
			return oom();
		c->last = p;
	}
	memcpy(c->last, kv->key, kv->key_len);
	c->last[kv->key_len] = '\0';
	c->last_len = kv->key_len + 1; /* key + "\0": just after it */
	return scan_one(ctx, kv);
}

/*
 * The keys under dir at *rev over gRPC on the current endpoint, with one
 * easy handle kept for the whole scan.  *no_grpc is set when the endpoint
 * answered but not as a gRPC server (an HTTP/1 proxy, say): the caller
 * then uses the gateway.
 */
static int range_grpc(struct etcd *e, CURL **h, const char *dir, int64_t *rev,
		      struct scan_ctx *c, int *no_grpc)
{
	co_grpc_reply reply;
	co_grpc_buf req = {0};
	co_grpc_range r;
	char end[512], *token = NULL, endpoint[512];
	size_t n = strlen(dir);
	co_grpc_stream st;
	int64_t limit = e->grpc_first_page;
	int error = 0, more = 1, attempt = 0;

	memset(&reply, 0, sizeof(reply));
	co_grpc_stream_init(&st, scan_one_grpc, c);
	reply.stream = &st;
	*no_grpc = 0;
	if (n == 0 || n >= sizeof(end))
		return co_error_set(CO_EINVAL, "etcd: scan prefix of %zu bytes", n);
	memcpy(end, dir, n);
	end[n - 1]++; /* dir ends in '/': no 0xff carry */
	free(c->last);
	if ((c->last = strdup(dir)) == NULL)
		return oom();
	c->last_len = n;
	if (*h == NULL) {
		if ((*h = curl_easy_init()) == NULL)
			return oom();
		handle_setup(*h, e);
		curl_easy_setopt(*h, CURLOPT_TIMEOUT_MS, (long)e->request_timeout_ms * 4);
	}
	pthread_mutex_lock(&e->lock);
	snprintf(endpoint, sizeof(endpoint), "%s", e->endpoints[e->current]);
	pthread_mutex_unlock(&e->lock);
	while (more) {
		free(req.p);
		co_grpc_stream_free(&st);
		co_grpc_stream_init(&st, scan_one_grpc, c);
		memset(&req, 0, sizeof(req));
		r.key = c->last;
		r.key_len = c->last_len;
		r.range_end = end;
		r.range_end_len = n;
		r.limit = limit;
		r.revision = *rev;
		free(token);
		if ((error = token_get(&token, e)) < 0 ||
		    (error = co_grpc_range_encode(&req, &r)) < 0 ||
		    (error = co_grpc_range_call(&reply, *h, endpoint, token, &req)) < 0)
			goto done;
		if (reply.grpc_status < 0 || !reply.http2) {
			*no_grpc = 1;
			error = co_error_set(CO_EUNAVAIL,
					     "etcd %s: no gRPC answer (HTTP %ld)",
					     endpoint, reply.http);
			goto done;
		}
		if (reply.grpc_status == GRPC_UNAUTHENTICATED && e->user &&
		    attempt++ == 0) {
			token_drop(e, token);
			continue;
		}
		if (reply.grpc_status == GRPC_RESOURCE_EXHAUSTED && limit > 1) {
			limit /= 2;
			continue;
		}
		if (reply.grpc_status != 0) {
			error = co_error_set(
			    reply.grpc_status == GRPC_INVALID_ARGUMENT ? CO_EINVAL
								       : CO_EUNAVAIL,
			    "etcd %s: Range at revision %" PRId64 ": gRPC status %d: %s",
			    endpoint, *rev, reply.grpc_status, reply.grpc_message);
			goto done;
		}
		if ((error = co_grpc_stream_end(&st)) < 0)
			goto done;
		if (*rev == 0)
			*rev = st.info.revision;
		more = st.info.more;
		limit = page_limit(limit, st.info.count, GRPC_PAGE_PARTS, GRPC_PAGE_MAX);
	}
done:
	free(req.p);
	co_grpc_stream_free(&st);
	free(token);
	return error;
}

/* Set CUTOVER_ETCD_GRPC=0 to make scans use the JSON gateway only. */
static int grpc_wanted(void)
{
	const char *v = getenv("CUTOVER_ETCD_GRPC");

	return !(v && strcmp(v, "0") == 0);
}

/*
 * Tasks then swarms at the revision of the first page.  Over gRPC when the
 * endpoint speaks it, else through the gateway; a gRPC failure falls back
 * to the gateway only before any record was passed on (a scan never
 * repeats a record).
 */
static int etcd_scan(void *impl, unsigned flags, co_scan_fn fn, void *ctx)
{
	static const co_kind kinds[] = {CO_KIND_TASK, CO_KIND_SWARM};
	struct etcd *e = impl;
	struct scan_ctx c;
	CURL *h = NULL;
	int64_t rev = 0;
	size_t k;
	int error = 0, no_grpc = 0, use_grpc = grpc_wanted() && !atomic_load(&e->no_grpc);
	char *dir = NULL;

	(void)flags; /* CO_SCAN_NO_DATA: a range returns the values anyway */
	memset(&c, 0, sizeof(c));
	c.e = e;
	c.fn = fn;
	c.ctx = ctx;
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		free(dir);
		if ((dir = key_for(e, co_kind_dir(kinds[k]), "")) == NULL) {
			error = oom();
			goto done;
		}
		c.kind = kinds[k];
		c.dir_len = strlen(dir);
		if (use_grpc) {
			error = range_grpc(e, &h, dir, &rev, &c, &no_grpc);
			if (error == 0)
				continue;
			if (c.calls > 0 || (!no_grpc && error != CO_EUNAVAIL))
				goto done;
			/* Nothing passed on yet: the gateway, from the start. */
			if (no_grpc)
				atomic_store(&e->no_grpc, 1);
			co_error_clear();
			use_grpc = 0;
			rev = 0;
			k = (size_t)-1;
			continue;
		}
		if ((error = range_gateway(e, dir, &rev, e->scan_page, scan_one, &c)) < 0)
			goto done;
	}
done:
	if (h)
		curl_easy_cleanup(h);
	free(c.last);
	free(dir);
	return error;
}

static int etcd_ping(void *impl)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL;
	int error;

	if (req == NULL || json_add_prefix_range(req, e->prefix) < 0 ||
	    json_add_i64(req, "limit", 1) < 0 ||
	    !cJSON_AddTrueToObject(req, "keys_only")) {
		error = oom();
		goto done;
	}
	error = etcd_call(&resp, e, "/v3/kv/range", req);
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* ---- watch ---- */

struct evnode {
	co_event *ev;
	struct evnode *next;
};

struct etcd_watch {
	struct etcd *e;
	char *range_key; /* <prefix><user prefix> */
	char *token;
	CURLM *multi;
	pthread_t thread;
	int thread_started;
	atomic_int stop;

	pthread_mutex_t lock; /* guards the queue and the state */
	pthread_cond_t cond;
	struct evnode *head, *tail;
	int created; /* the stream said "created" at least once */
	int ended;
	int error;
	char errmsg[1200];

	/* Used by the watch thread only. */
	struct buf line;
	int64_t next_rev; /* resume from here */
	int stream_created;
	int stream_fatal; /* canceled or compacted: do not resume */
	char stream_err[512];
};

static void watch_push(struct etcd_watch *w, co_event *ev)
{
	struct evnode *n = calloc(1, sizeof(*n));

	if (n == NULL) {
		co_event_free(ev);
		return;
	}
	n->ev = ev;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = n;
	else
		w->head = n;
	w->tail = n;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* One event of the stream into a co_event; NULL for keys that are not records. */
static co_event *event_from_json(struct etcd_watch *w, const cJSON *jev)
{
	const cJSON *kv = cJSON_GetObjectItemCaseSensitive(jev, "kv");
	const char *rest, *id;
	co_event *ev = NULL;
	char *key = NULL;
	size_t plen = strlen(w->e->prefix), len = 0;
	co_kind kind;

	if (kv == NULL || (key = b64_decode(json_str(kv, "key"), &len)) == NULL)
		goto fail;
	if (strncmp(key, w->e->prefix, plen) != 0)
		goto fail;
	rest = key + plen;
	if (strncmp(rest, "tasks/", 6) == 0) {
		kind = CO_KIND_TASK;
		id = rest + 6;
	} else if (strncmp(rest, "swarms/", 7) == 0) {
		kind = CO_KIND_SWARM;
		id = rest + 7;
	} else {
		goto fail;
	}
	if (co_id_validate(id) < 0 || (ev = calloc(1, sizeof(*ev))) == NULL ||
	    (ev->id = strdup(id)) == NULL)
		goto fail;
	ev->kind = kind;
	ev->store = "etcd";
	/* type is an enum whose default (PUT) is omitted. */
	if (strcmp(json_str(jev, "type"), "DELETE") == 0) {
		ev->type = CO_EVENT_DELETE;
	} else {
		ev->type = CO_EVENT_PUT;
		if (record_from_kv(&ev->record, w->e, kv, key) < 0)
			goto fail;
		/* A value naming another record is refused, as etcd_get refuses
		 * it: an event for one ID must not carry another's record. */
		if (ev->record->kind != kind || strcmp(ev->record->id, id) != 0)
			goto fail;
	}
	free(key);
	return ev;
fail:
	co_event_free(ev);
	free(key);
	co_error_clear();
	return NULL;
}

/* One line of the stream.  -1 ends the transfer. */
static int watch_line(struct etcd_watch *w, const char *line, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(line, len), *res, *evs, *jev;
	int rc = 0;

	if (j == NULL)
		return 0; /* blank or keep-alive noise */
	if ((res = cJSON_GetObjectItemCaseSensitive(j, "error")) != NULL) {
		const char *msg = json_str(res, "message");

		snprintf(w->stream_err, sizeof(w->stream_err), "%s",
			 msg[0] ? msg
				: (cJSON_IsString(res) ? res->valuestring : "error"));
		rc = -1;
		goto done;
	}
	if ((res = cJSON_GetObjectItemCaseSensitive(j, "result")) == NULL)
		goto done;
	if (json_true(res, "created")) {
		int64_t hrev =
		    json_i64(cJSON_GetObjectItemCaseSensitive(res, "header"), "revision");

		/* INT64_MAX + 1 would overflow; no etcd gets there. */
		if (w->next_rev == 0 && hrev < INT64_MAX)
			w->next_rev = hrev + 1;
		w->stream_created = 1;
		pthread_mutex_lock(&w->lock);
		w->created = 1;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
	}
	if (json_true(res, "canceled")) {
		int64_t compact = json_i64(res, "compact_revision");

		if (compact)
			snprintf(w->stream_err, sizeof(w->stream_err),
				 "watch canceled: revision %lld compacted",
				 (long long)compact);
		else
			snprintf(w->stream_err, sizeof(w->stream_err),
				 "watch canceled: %s", json_str(res, "cancel_reason"));
		w->stream_fatal = 1;
		rc = -1;
		goto done;
	}
	evs = cJSON_GetObjectItemCaseSensitive(res, "events");
	cJSON_ArrayForEach(jev, evs)
	{
		const cJSON *kv = cJSON_GetObjectItemCaseSensitive(jev, "kv");
		int64_t mod = json_i64(kv, "mod_revision");
		co_event *ev;

		if (mod >= w->next_rev && mod < INT64_MAX)
			w->next_rev = mod + 1;
		if ((ev = event_from_json(w, jev)) != NULL)
			watch_push(w, ev);
	}
done:
	cJSON_Delete(j);
	return rc;
}

/* Chunks are not messages: buffer, and handle every complete line. */
static size_t watch_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct etcd_watch *w = ud;
	size_t n = size * nmemb, used = 0;
	char *nl;

	if (buf_add(&w->line, ptr, n) < 0)
		return 0;
	while ((nl = memchr(w->line.p + used, '\n', w->line.len - used)) != NULL) {
		size_t len = (size_t)(nl - (w->line.p + used));

		if (watch_line(w, w->line.p + used, len) < 0)
			return 0;
		used += len + 1;
	}
	if (used) {
		memmove(w->line.p, w->line.p + used, w->line.len - used);
		w->line.len -= used;
		w->line.p[w->line.len] = '\0';
	}
	return n;
}

/* The transfer ended.  An error answer may lack the final newline. */
static void watch_stream_end(struct etcd_watch *w)
{
	if (w->line.len && !w->stream_err[0])
		watch_line(w, w->line.p, w->line.len);
}

/*
 * Run one streaming request to endpoint i until it ends or we are told to
 * stop.  Leaves a description of why it ended in errmsg.
 */
static void watch_stream(struct etcd_watch *w, size_t i, char *errmsg, size_t len)
{
	struct etcd *e = w->e;
	struct curl_slist *hdrs = make_headers(w->token);
	cJSON *req = cJSON_CreateObject(), *cr;
	char url[512], errbuf[CURL_ERROR_SIZE] = "", *body = NULL;
	CURL *h = curl_easy_init();
	CURLcode rc = CURLE_OK;
	int running = 1;

	w->stream_created = 0;
	w->stream_err[0] = '\0';
	w->line.len = 0;
	if (hdrs == NULL || req == NULL || h == NULL ||
	    (cr = cJSON_AddObjectToObject(req, "create_request")) == NULL ||
	    json_add_prefix_range(cr, w->range_key) < 0 ||
	    (w->next_rev > 0 && json_add_i64(cr, "start_revision", w->next_rev) < 0) ||
	    (body = cJSON_PrintUnformatted(req)) == NULL) {
		snprintf(errmsg, len, "out of memory");
		goto done;
	}
	snprintf(url, sizeof(url), "%s/v3/watch", e->endpoints[i]);
	handle_setup(h, e);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L); /* a stream has no end */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_multi_add_handle(w->multi, h);
	while (running && !atomic_load(&w->stop)) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		if (running)
			curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
	}
	{
		CURLMsg *m;
		int left;

		while ((m = curl_multi_info_read(w->multi, &left)) != NULL)
			if (m->msg == CURLMSG_DONE)
				rc = m->data.result;
	}
	curl_multi_remove_handle(w->multi, h);
	watch_stream_end(w);
	if (w->stream_err[0])
		snprintf(errmsg, len, "%s: %s", e->endpoints[i], w->stream_err);
	else if (rc != CURLE_OK) {
		char what[CURL_ERROR_SIZE + 32];

		describe_curl_error(what, sizeof(what), h, rc, errbuf);
		snprintf(errmsg, len, "%s: %s", e->endpoints[i], what);
	} else
		snprintf(errmsg, len, "%s: the watch stream ended", e->endpoints[i]);
done:
	if (h)
		curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	cJSON_Delete(req);
	free(body);
}

static void *watch_main(void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd *e = w->e;
	char why[1024], one[600];
	size_t first, k;

	pthread_mutex_lock(&e->lock);
	first = e->current;
	pthread_mutex_unlock(&e->lock);
	/*
	 * One round over the endpoints to get a stream going; each time an
	 * established stream breaks, one more round from where it broke.
	 */
	for (;;) {
		int progressed = 0;

		why[0] = '\0';
		for (k = 0; k < e->n_endpoints && !atomic_load(&w->stop); k++) {
			size_t i = (first + k) % e->n_endpoints;

			watch_stream(w, i, one, sizeof(one));
			if (atomic_load(&w->stop))
				break;
			if (why[0])
				strncat(why, "; ", sizeof(why) - strlen(why) - 1);
			strncat(why, one, sizeof(why) - strlen(why) - 1);
			if (w->stream_fatal)
				break;
			if (w->stream_created) {
				/* It worked for a while: resume, starting here. */
				progressed = 1;
				first = i;
				break;
			}
		}
		if (!progressed || atomic_load(&w->stop) || w->stream_fatal)
			break;
	}
	pthread_mutex_lock(&w->lock);
	w->ended = 1;
	if (!atomic_load(&w->stop)) {
		w->error = CO_EUNAVAIL;
		snprintf(w->errmsg, sizeof(w->errmsg), "etcd watch: %s", why);
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void etcd_watch_close(void *impl)
{
	struct etcd_watch *w = impl;
	struct evnode *n;

	if (w == NULL)
		return;
	if (w->thread_started) {
		atomic_store(&w->stop, 1);
		curl_multi_wakeup(w->multi);
		pthread_join(w->thread, NULL);
	}
	while ((n = w->head) != NULL) {
		w->head = n->next;
		co_event_free(n->ev);
		free(n);
	}
	if (w->multi)
		curl_multi_cleanup(w->multi);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	buf_free(&w->line);
	free(w->range_key);
	free(w->token);
	free(w);
}

static void deadline_after(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int etcd_watch_open(void **out, void *impl, const char *prefix)
{
	struct etcd *e = impl;
	struct etcd_watch *w = calloc(1, sizeof(*w));
	struct timespec until;
	int error, rc = 0;

	if (w == NULL)
		return oom();
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->e = e;
	if (asprintf(&w->range_key, "%s%s", e->prefix, prefix) < 0) {
		w->range_key = NULL;
		error = oom();
		goto done;
	}
	if ((error = token_get(&w->token, e)) < 0)
		goto done;
	if ((w->multi = curl_multi_init()) == NULL) {
		error = oom();
		goto done;
	}
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		error = co_error_set(CO_ENOMEM, "etcd watch: cannot start a thread");
		goto done;
	}
	w->thread_started = 1;

	/* Events start from now: wait until etcd confirms the watch. */
	deadline_after(&until, (int64_t)(e->connect_timeout_ms + e->request_timeout_ms) *
				   (int64_t)e->n_endpoints);
	pthread_mutex_lock(&w->lock);
	while (!w->created && !w->ended && rc == 0)
		rc = pthread_cond_timedwait(&w->cond, &w->lock, &until);
	if (w->created)
		error = 0;
	else if (w->ended)
		error = co_error_set(CO_EUNAVAIL, "%s", w->errmsg);
	else
		error = co_error_set(CO_EUNAVAIL, "etcd %s: watch not created in time",
				     e->describe);
	pthread_mutex_unlock(&w->lock);
	if (error == 0) {
		*out = w;
		w = NULL;
	}
done:
	etcd_watch_close(w);
	return error;
}

static int etcd_watch_next(co_event **out, void *impl, int timeout_ms)
{
	struct etcd_watch *w = impl;
	struct timespec until;
	struct evnode *n;
	int error = 0, rc = 0;

	*out = NULL;
	if (timeout_ms >= 0)
		deadline_after(&until, timeout_ms);
	pthread_mutex_lock(&w->lock);
	while (w->head == NULL && !w->ended && rc == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&w->cond, &w->lock);
		else
			rc = pthread_cond_timedwait(&w->cond, &w->lock, &until);
	}
	if ((n = w->head) != NULL) {
		w->head = n->next;
		if (w->head == NULL)
			w->tail = NULL;
		*out = n->ev;
		free(n);
	} else if (w->ended) {
		error = co_error_set(w->error ? w->error : CO_EUNAVAIL, "%s",
				     w->errmsg[0] ? w->errmsg : "etcd watch closed");
	}
	pthread_mutex_unlock(&w->lock);
	return error;
}

/* ---- the watch decoder alone (etcd_store_internal.h) ---- */

struct co_etcd__watch_decoder {
	struct etcd e; /* only prefix and describe are used */
	struct etcd_watch w;
};

int co_etcd__watch_decoder_new(co_etcd__watch_decoder **out, const char *prefix)
{
	co_etcd__watch_decoder *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return oom();
	pthread_mutex_init(&d->w.lock, NULL);
	pthread_cond_init(&d->w.cond, NULL);
	d->w.e = &d->e;
	if ((d->e.prefix = strdup(prefix)) == NULL ||
	    (d->e.describe = strdup("(watch decoder)")) == NULL) {
		co_etcd__watch_decoder_free(d);
		return oom();
	}
	*out = d;
	return 0;
}

void co_etcd__watch_decoder_free(co_etcd__watch_decoder *d)
{
	co_event *ev;

	if (d == NULL)
		return;
	while (co_etcd__watch_decoder_next(&ev, d) == 0 && ev)
		co_event_free(ev);
	pthread_mutex_destroy(&d->w.lock);
	pthread_cond_destroy(&d->w.cond);
	buf_free(&d->w.line);
	free(d->e.prefix);
	free(d->e.describe);
	free(d);
}

int co_etcd__watch_decoder_feed(co_etcd__watch_decoder *d, const char *p, size_t len)
{
	if (len == 0)
		return 0;
	return watch_write_cb((char *)p, 1, len, &d->w) == len ? 0 : -1;
}

void co_etcd__watch_decoder_end(co_etcd__watch_decoder *d)
{
	watch_stream_end(&d->w);
}

int co_etcd__watch_decoder_next(co_event **out, co_etcd__watch_decoder *d)
{
	struct evnode *n;

	*out = NULL;
	pthread_mutex_lock(&d->w.lock);
	if ((n = d->w.head) != NULL) {
		d->w.head = n->next;
		if (d->w.head == NULL)
			d->w.tail = NULL;
		*out = n->ev;
		free(n);
	}
	pthread_mutex_unlock(&d->w.lock);
	return 0;
}

void co_etcd__watch_decoder_state(co_etcd__watch_state *out, co_etcd__watch_decoder *d)
{
	out->created = d->w.stream_created;
	out->fatal = d->w.stream_fatal;
	out->next_rev = d->w.next_rev;
	out->error = d->w.stream_err;
}

/* ---- the store ---- */

/* Which struct etcd belongs to which co_store, for co_etcd_store_list_at(). */
static const char *etcd_describe(void *impl)
{
	return ((struct etcd *)impl)->describe;
}

static void etcd_free(void *impl)
{
	struct etcd *e = impl;
	size_t i;

	if (e == NULL)
		return;
	for (i = 0; i < e->n_pool; i++)
		curl_easy_cleanup(e->pool[i]);
	for (i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	free(e->endpoints);
	free(e->prefix);
	free(e->user);
	free(e->password);
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	free(e->describe);
	free(e->token);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static const co_store_backend etcd_backend = {
    .name = "etcd",
    .get = etcd_get,
    .cas = etcd_cas,
    .cas_many = etcd_cas_many,
    .cas_many_max = TXN_OPS_MAX / 2,
    .get_many = etcd_get_many,
    .list = etcd_list,
    .scan = etcd_scan,
    .ping = etcd_ping,
    .watch_open = etcd_watch_open,
    .watch_next = etcd_watch_next,
    .watch_close = etcd_watch_close,
    .describe = etcd_describe,
    .free = etcd_free,
};

static int dup_opt(char **out, const char *s)
{
	*out = NULL;
	if (s && (*out = strdup(s)) == NULL)
		return -1;
	return 0;
}

int co_etcd_store_open(co_store **out, const co_etcd_opts *opts)
{
	struct etcd *e = NULL;
	co_store *s = NULL;
	struct buf d = {0};
	size_t i;
	int error;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc < 0)
		return co_error_set(CO_EUNAVAIL, "etcd: libcurl did not initialise");
	if (opts == NULL || opts->n_endpoints == 0 || opts->endpoints == NULL)
		return co_error_set(CO_EINVAL, "etcd: no endpoints configured");
	for (i = 0; i < opts->n_endpoints; i++) {
		const char *ep = opts->endpoints[i];

		if (ep == NULL ||
		    (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) ||
		    strlen(ep) > 400)
			return co_error_set(
			    CO_EINVAL, "etcd: endpoint \"%s\" is not http(s)://host:port",
			    ep ? ep : "");
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return oom();
	pthread_mutex_init(&e->lock, NULL);
	if ((e->endpoints = calloc(opts->n_endpoints, sizeof(*e->endpoints))) == NULL)
		goto nomem;
	for (i = 0; i < opts->n_endpoints; i++) {
		size_t n;

		if ((e->endpoints[i] = strdup(opts->endpoints[i])) == NULL)
			goto nomem;
		e->n_endpoints++;
		n = strlen(e->endpoints[i]);
		while (n > 0 && e->endpoints[i][n - 1] == '/')
			e->endpoints[i][--n] = '\0';
		if (buf_add(&d, i ? "," : "", i ? 1 : 0) < 0 ||
		    buf_add(&d, e->endpoints[i], n) < 0)
			goto nomem;
	}
	e->describe = d.p;
	d.p = NULL;
	if (dup_opt(&e->prefix, opts->prefix ? opts->prefix : "/") < 0 ||
	    dup_opt(&e->user, opts->user) < 0 ||
	    dup_opt(&e->password, opts->password) < 0 ||
	    dup_opt(&e->ca_file, opts->ca_file) < 0 ||
	    dup_opt(&e->cert_file, opts->cert_file) < 0 ||
	    dup_opt(&e->key_file, opts->key_file) < 0)
		goto nomem;
	e->connect_timeout_ms =
	    opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 1000;
	e->request_timeout_ms =
	    opts->request_timeout_ms > 0 ? opts->request_timeout_ms : 5000;
	/* A page is held whole in memory: 10000 records are ~3 MB. */
	e->scan_page = opts->scan_page > 0 ? opts->scan_page : 10000;
	/* Over gRPC the first page is large too: the range's size is not
	 * known yet, and a small first page costs a walk of the whole range
	 * for a few keys (page_limit). */
	e->grpc_first_page = opts->scan_page > 0 ? opts->scan_page : GRPC_PAGE_MAX;
	if ((error = co_store__new(&s, &etcd_backend, e)) < 0)
		return error; /* co_store__new freed e */
	*out = s;
	return 0;
nomem:
	buf_free(&d);
	etcd_free(e);
	return oom();
}

int co_etcd_store_list_at(co_record_list *out, int64_t *revision, co_store *s,
			  co_kind kind)
{
	struct etcd *e = co_store__impl(s, &etcd_backend);

	if (e == NULL)
		return co_error_set(CO_EINVAL, "not an etcd store");
	return list_at(out, revision, e, kind);
}

/* Append `what` to the ", "-joined list `buf` unless it is there already. */
static void join_once(char *buf, size_t len, const char *what)
{
	size_t n = strlen(buf);

	if (what == NULL || *what == '\0' || strstr(buf, what) != NULL)
		return;
	snprintf(buf + n, len - n, "%s%s", n ? ", " : "", what);
}

int co_etcd_store_status(co_etcd_status *out, co_store *s)
{
	struct etcd *e = co_store__impl(s, &etcd_backend);
	cJSON *req = NULL, *resp = NULL;
	const cJSON *it, *list;
	const char *leader;
	int error;

	memset(out, 0, sizeof(*out));
	if (e == NULL)
		return co_error_set(CO_EINVAL, "not an etcd store");
	if ((req = cJSON_CreateObject()) == NULL)
		return oom();
	if ((error = etcd_call(&resp, e, "/v3/maintenance/status", req)) < 0)
		goto done;
	snprintf(out->version, sizeof(out->version), "%s", json_str(resp, "version"));
	/* uint64 fields come as strings from the gateway */
	leader = json_str(resp, "leader");
	out->leader = strtoull(leader, NULL, 10);
	out->db_size = json_i64(resp, "dbSize");
	list = cJSON_GetObjectItemCaseSensitive(resp, "errors");
	cJSON_ArrayForEach(it, list)
	{
		if (cJSON_IsString(it))
			join_once(out->errors, sizeof(out->errors), it->valuestring);
	}
	cJSON_Delete(resp);
	resp = NULL;
	/* AlarmRequest: action GET (the default, 0), every member, every alarm */
	if (!cJSON_AddStringToObject(req, "action", "GET")) {
		error = oom();
		goto done;
	}
	if ((error = etcd_call(&resp, e, "/v3/maintenance/alarm", req)) < 0)
		goto done;
	list = cJSON_GetObjectItemCaseSensitive(resp, "alarms");
	cJSON_ArrayForEach(it, list)
	{
		const char *a = json_str(it, "alarm");

		/* NONE is the enum's zero: the gateway omits it, or spells it */
		if (strcmp(a, "NONE") != 0)
			join_once(out->alarms, sizeof(out->alarms), a);
	}
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}
