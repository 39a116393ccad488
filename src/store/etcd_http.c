/*
 * etcd_http.c - the etcd store's transport: one POST of a JSON body to the
 * v3 gateway (/v3/...) with libcurl, on a pooled easy handle, moving on to
 * the next endpoint when one fails at the connection level; authentication
 * and its token; and the small JSON, base64 and buffer helpers every part
 * of the store shares (etcd_private.h).
 */
#include "etcd_private.h"
#include "etcd_store.h"

#include "../core/b64.h"
#include "../core/error.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- small helpers ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int co_etcd__curl_ready(void)
{
	pthread_once(&curl_once, curl_init);
	return curl_init_rc;
}

int64_t co_etcd__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static _Thread_local int uncounted;

void co_etcd__uncounted(int on)
{
	uncounted = on;
}

void co_etcd__round_trip(struct etcd *e)
{
	if (!uncounted)
		atomic_fetch_add(&e->round_trips, 1);
}

int co_etcd__buf_add(struct buf *b, const char *data, size_t len)
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

void co_etcd__buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static size_t buf_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	return co_etcd__buf_add(ud, ptr, size * nmemb) < 0 ? 0 : size * nmemb;
}

/* A string field of a JSON object ("" when absent); int64s come as strings. */
const char *co_etcd__json_str(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(it) && it->valuestring ? it->valuestring : "";
}

/* An int64 field that the gateway prints as a string (or a number). */
int64_t co_etcd__json_i64(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (cJSON_IsString(it) && it->valuestring)
		return strtoll(it->valuestring, NULL, 10);
	/* A double past int64 (1e300) would be undefined to convert: as absent. */
	if (cJSON_IsNumber(it) && it->valuedouble > -9.2e18 && it->valuedouble < 9.2e18)
		return (int64_t)it->valuedouble;
	return 0;
}

int co_etcd__parse_i64(int64_t *out, const char *s)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0 ? 0 : -1;
}

int co_etcd__json_true(const cJSON *obj, const char *name)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

/* Add a base64 field for the len bytes at data.  0 / -1 on OOM. */
int co_etcd__json_add_b64(cJSON *obj, const char *name, const char *data, size_t len)
{
	char *b = co_b64_encode(data, len);
	int rc = -1;

	if (b && cJSON_AddStringToObject(obj, name, b))
		rc = 0;
	free(b);
	return rc;
}

int co_etcd__json_add_i64(cJSON *obj, const char *name, int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return cJSON_AddStringToObject(obj, name, s) ? 0 : -1;
}

int co_etcd__oom(void)
{
	return co_error_set(CO_ENOMEM, "out of memory");
}

/* "<prefix><dir>/<id>" (id may be "" for the directory itself). */
char *co_etcd__key_for(const struct etcd *e, const char *dir, const char *id)
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
int co_etcd__json_add_prefix_range(cJSON *obj, const char *prefix)
{
	size_t n = strlen(prefix);
	char *end;
	int rc;

	if (n == 0) {
		if (co_etcd__json_add_b64(obj, "key", "", 1) < 0)
			return -1;
		return co_etcd__json_add_b64(obj, "range_end", "", 1);
	}
	if (co_etcd__json_add_b64(obj, "key", prefix, n) < 0 ||
	    (end = strdup(prefix)) == NULL)
		return -1;
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0)
		rc = co_etcd__json_add_b64(obj, "range_end", "", 1);
	else {
		end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
		rc = co_etcd__json_add_b64(obj, "range_end", end, n);
	}
	free(end);
	return rc;
}

/* ---- HTTP ---- */

void co_etcd__handle_setup(CURL *h, const struct etcd *e)
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
		co_etcd__handle_setup(h, e);
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
struct curl_slist *co_etcd__make_headers(const char *token)
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
void co_etcd__describe_curl_error(char *out, size_t len, CURL *h, CURLcode rc,
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
int co_etcd__post_raw(cJSON **out, long *http, size_t *endpoint, struct etcd *e,
		      const char *path, const char *body, const char *token)
{
	struct curl_slist *hdrs = NULL;
	struct buf resp = {0};
	char errbuf[CURL_ERROR_SIZE], why[1024] = "", what[CURL_ERROR_SIZE + 32];
	char one[sizeof(what) + 512];
	int64_t start = co_etcd__now_ms(), limit = e->request_timeout_ms;
	int bound = co_store__call_timeout();
	size_t first, k;
	CURL *h = NULL;
	int error;

	if ((hdrs = co_etcd__make_headers(token)) == NULL ||
	    (h = handle_get(e)) == NULL) {
		error = co_etcd__oom();
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
		int64_t left = bound > 0 ? limit - (co_etcd__now_ms() - start) : limit;
		char url[512];
		CURLcode rc;

		if (left <= 0) {
			snprintf(one, sizeof(one), "%sno time left within %lld ms",
				 why[0] ? "; " : "", (long long)limit);
			strncat(why, one, sizeof(why) - strlen(why) - 1);
			break;
		}
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
		curl_easy_setopt(
		    h, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)(left < e->connect_timeout_ms ? left : e->connect_timeout_ms));
		snprintf(url, sizeof(url), "%s%s", e->endpoints[i], path);
		errbuf[0] = '\0';
		resp.len = 0;
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		co_etcd__round_trip(e);
		rc = curl_easy_perform(h);
		if (rc == CURLE_WRITE_ERROR && resp.p == NULL) {
			error = co_etcd__oom();
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
		co_etcd__describe_curl_error(what, sizeof(what), h, rc, errbuf);
		snprintf(one, sizeof(one), "%s%s: %s", why[0] ? "; " : "",
			 e->endpoints[i], what);
		strncat(why, one, sizeof(why) - strlen(why) - 1);
	}
	error = co_error_set(CO_EUNAVAIL, "etcd %s after %lld ms", why,
			     (long long)(co_etcd__now_ms() - start));
done:
	if (h)
		handle_put(e, h);
	curl_slist_free_all(hdrs);
	co_etcd__buf_free(&resp);
	return error;
}

int co_etcd__is_auth_error(int code, const char *msg)
{
	return code == GRPC_UNAUTHENTICATED || strstr(msg, "auth token") != NULL ||
	       strstr(msg, "user name is empty") != NULL;
}

/* Turn a gateway error answer into a CO_E* code with its message. */
int co_etcd__gateway_error(const struct etcd *e, size_t endpoint, long http, const cJSON *j,
			 const char *path)
{
	const char *msg = co_etcd__json_str(j, "message");
	int code = (int)co_etcd__json_i64(j, "code"), co;

	if (!msg[0])
		msg = co_etcd__json_str(j, "error");
	if (j == NULL)
		return co_error_set(CO_EUNAVAIL,
				    "etcd %s: %s: HTTP %ld with a body that is not JSON",
				    e->endpoints[endpoint], path, http);
	switch (co_etcd__is_auth_error(code, msg) ? GRPC_UNAUTHENTICATED : code) {
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
		error = co_etcd__oom();
		goto done;
	}
	if ((error = co_etcd__post_raw(&resp, &http, &ep, e, "/v3/auth/authenticate",
				       body, NULL)) < 0)
		goto done;
	if (http != 200 || resp == NULL || !co_etcd__json_str(resp, "token")[0]) {
		co_etcd__gateway_error(e, ep, http, resp, "/v3/auth/authenticate");
		error = co_error_set(CO_EUNAVAIL, "etcd: authenticating as %s failed: %s",
				     e->user, co_error_last());
		goto done;
	}
	if ((tok = strdup(co_etcd__json_str(resp, "token"))) == NULL) {
		error = co_etcd__oom();
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
int co_etcd__token_get(char **out, struct etcd *e)
{
	char *t = NULL;
	int error;

	*out = NULL;
	if (e->user == NULL)
		return 0;
	pthread_mutex_lock(&e->lock);
	if (e->token && (t = strdup(e->token)) == NULL) {
		pthread_mutex_unlock(&e->lock);
		return co_etcd__oom();
	}
	pthread_mutex_unlock(&e->lock);
	if (t == NULL) {
		if ((error = authenticate(e)) < 0)
			return error;
		pthread_mutex_lock(&e->lock);
		t = e->token ? strdup(e->token) : NULL;
		pthread_mutex_unlock(&e->lock);
		if (t == NULL)
			return co_etcd__oom();
	}
	*out = t;
	return 0;
}

void co_etcd__token_drop(struct etcd *e, const char *stale)
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
int co_etcd__call(cJSON **out, struct etcd *e, const char *path, const cJSON *req)
{
	char *body = cJSON_PrintUnformatted(req);
	int error;

	if (body == NULL)
		return co_etcd__oom();
	error = co_etcd__call_body(out, e, path, body);
	free(body);
	return error;
}

int co_etcd__call_body(cJSON **out, struct etcd *e, const char *path, const char *body)
{
	cJSON *resp = NULL;
	char *token = NULL;
	size_t ep = 0;
	long http = 0;
	int error, attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		free(token);
		cJSON_Delete(resp);
		token = NULL;
		resp = NULL;
		if ((error = co_etcd__token_get(&token, e)) < 0)
			goto done;
		if ((error = co_etcd__post_raw(&resp, &http, &ep, e, path, body, token)) <
		    0)
			goto done;
		if (http == 200 && resp != NULL &&
		    !cJSON_GetObjectItemCaseSensitive(resp, "error")) {
			*out = resp;
			resp = NULL;
			error = 0;
			goto done;
		}
		if (e->user && attempt == 0 &&
		    co_etcd__is_auth_error((int)co_etcd__json_i64(resp, "code"),
				  co_etcd__json_str(resp, "message"))) {
			co_etcd__token_drop(e, token);
			continue;
		}
		break;
	}
	error = co_etcd__gateway_error(e, ep, http, resp, path);
done:
	cJSON_Delete(resp);
	free(token);
	return error;
}

int co_etcd_store_call(cJSON **out, co_store *s, const char *path, const cJSON *req)
{
	struct etcd *e = co_etcd__from_store(s);

	*out = NULL;
	if (e == NULL)
		return co_error_set(CO_EINVAL, "not an etcd store");
	return co_etcd__call(out, e, path, req);
}

size_t co_etcd_store_endpoints(co_store *s)
{
	struct etcd *e = co_etcd__from_store(s);

	return e ? e->n_endpoints : 0;
}

int co_etcd_store_stream_setup(CURL *h, struct curl_slist **hdrs, co_store *s, size_t i,
			       const char *path, const char *body)
{
	struct etcd *e = co_etcd__from_store(s);
	char url[1024], *token = NULL;
	int error;

	*hdrs = NULL;
	if (e == NULL)
		return co_error_set(CO_EINVAL, "not an etcd store");
	if ((error = co_etcd__token_get(&token, e)) < 0)
		return error;
	*hdrs = co_etcd__make_headers(token);
	free(token);
	if (*hdrs == NULL)
		return co_etcd__oom();
	snprintf(url, sizeof url, "%s%s", e->endpoints[i % e->n_endpoints], path);
	co_etcd__handle_setup(h, e);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L); /* a stream has no end */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	return 0;
}
