/*
 * fleet_gw.c - the fleet's small etcd v3 JSON gateway client: one POST per
 * call over libcurl, failing over endpoint by endpoint, base64 for keys
 * and values.  The streaming watch is in fleet_watch.c.
 */
#include "router/fleet_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/b64.h"
#include "core/error.h"


void co_fleet__deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

const char *co_fleet__str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

int64_t co_fleet__i64(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (cJSON_IsString(v))
		return strtoll(v->valuestring, NULL, 10);
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	return 0;
}

int co_fleet__add_key(cJSON *o, const char *name, const char *key)
{
	char *k = co_b64_encode(key, strlen(key));

	if (!k || !cJSON_AddStringToObject(o, name, k)) {
		free(k);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	free(k);
	return 0;
}

struct body {
	char *p;
	size_t len;
	int oom;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct body *b = ctx;
	size_t n = size * nmemb;
	char *p = realloc(b->p, b->len + n + 1);

	if (!p) {
		b->oom = 1;
		return 0;
	}
	memcpy(p + b->len, data, n);
	b->len += n;
	p[b->len] = '\0';
	b->p = p;
	return n;
}

/* One POST to one endpoint: 0 with the HTTP answer's JSON, or -1 with why. */
static int post_one(cJSON **out, long *http, char *why, size_t why_len, const co_fleet *f,
		    const char *endpoint, const char *path, const char *body)
{
	char url[512], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	struct body b = {NULL, 0, 0};
	CURL *h = curl_easy_init();
	CURLcode rc;

	if (!h) {
		snprintf(why, why_len, "%s: cannot start curl", endpoint);
		return -1;
	}
	snprintf(url, sizeof url, "%s%s", endpoint, path);
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)f->timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)f->timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	if (rc != CURLE_OK || b.oom) {
		snprintf(why, why_len, "%s: %s", endpoint,
			 b.oom ? "out of memory" : errbuf[0] ? errbuf : curl_easy_strerror(rc));
		free(b.p);
		return -1;
	}
	*out = b.p ? cJSON_Parse(b.p) : NULL;
	free(b.p);
	return 0;
}

int co_fleet__call(cJSON **out, co_fleet *f, const char *path, const cJSON *req)
{
	char *body = cJSON_PrintUnformatted(req);
	char why[1024] = "", one[384];
	size_t i, used = 0;

	if (!body)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (i = 0; i < f->n_endpoints; i++) {
		cJSON *resp = NULL;
		long http = 0;
		const char *msg;

		if (post_one(&resp, &http, one, sizeof one, f, f->endpoints[i], path, body) < 0) {
			used += (size_t)snprintf(why + used, used < sizeof why ? sizeof why - used : 0,
						 "%s%s", used ? "; " : "", one);
			if (used >= sizeof why)
				used = sizeof why - 1;
			continue;
		}
		free(body);
		msg = co_fleet__str(resp, "error");
		if (!*msg)
			msg = co_fleet__str(resp, "message");
		if (http != 200 || !resp || *msg) {
			int error = co_error_set(http >= 500 ? CO_EUNAVAIL : CO_EINVAL,
						 "etcd %s%s: HTTP %ld: %s", f->endpoints[i],
						 path, http, *msg ? msg : "no JSON answer");

			cJSON_Delete(resp);
			return error;
		}
		*out = resp;
		return 0;
	}
	free(body);
	return co_error_set(CO_EUNAVAIL, "etcd unreachable: %s", why);
}
