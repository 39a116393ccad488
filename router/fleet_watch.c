/*
 * fleet_watch.c - every router's watch of the fleet's flags document: a
 * streaming POST /v3/watch on <prefix>flags in a thread (curl multi, so
 * that close wakes it at once), each event parsed and handed on; a broken
 * stream reads the key again and watches from the revision after.
 */
#include "router/fleet_private.h"

#include "core/b64.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "core/error.h"

/* Between two attempts while etcd does not answer. */
#define RETRY_MS 200

struct co_fleet_watch {
	co_fleet *f;
	co_fleet_flags_cb cb;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	co_flags flags; /* under lock */
	int64_t epoch;	/* under lock */
	atomic_int stop, connected;
	CURLM *multi; /* under lock: curl_multi_wakeup from close */
	char *line;   /* the stream's unfinished line */
	size_t line_len;
	int64_t next_rev; /* where a resumed watch starts */
	size_t endpoint;
};

static void apply(co_fleet_watch *w, const co_flags *flags, int64_t epoch)
{
	pthread_mutex_lock(&w->lock);
	if (epoch <= w->epoch && w->epoch != 0) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	w->flags = *flags;
	w->epoch = epoch;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	if (w->cb)
		w->cb(w->ctx, flags, epoch);
}

/* One line of the stream: "created", events, or an error. */
static int on_line(co_fleet_watch *w, const char *text)
{
	cJSON *msg = cJSON_Parse(text), *res, *ev;
	int rc = 0;

	if (!msg)
		return 0;
	res = cJSON_GetObjectItemCaseSensitive(msg, "result");
	if (!res || cJSON_GetObjectItemCaseSensitive(msg, "error") ||
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"))) {
		rc = -1;
		goto done;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created")))
		atomic_store(&w->connected, 1);
	cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(res, "events"))
	{
		const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
		int64_t rev = co_fleet__i64(kv, "mod_revision");
		co_flags flags;
		int64_t epoch;

		if (rev >= w->next_rev)
			w->next_rev = rev + 1;
		if (strcmp(co_fleet__str(ev, "type"), "DELETE") == 0) {
			co_flags_init(&flags);
			apply(w, &flags, rev);
		} else if (co_fleet__flags_from_kv(&flags, &epoch, w->f, kv) == 0) {
			apply(w, &flags, epoch);
		}
	}
done:
	cJSON_Delete(msg);
	return rc;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *ctx)
{
	co_fleet_watch *w = ctx;
	size_t n = size * nmemb, i, start = 0;

	for (i = 0; i < n; i++) {
		if (data[i] != '\n')
			continue;
		{
			char *p = realloc(w->line, w->line_len + (i - start) + 1);

			if (!p)
				return 0;
			memcpy(p + w->line_len, data + start, i - start);
			p[w->line_len + (i - start)] = '\0';
			w->line = p;
			w->line_len = 0;
			if (on_line(w, p) < 0)
				return 0;
		}
		start = i + 1;
	}
	if (start < n) {
		char *p = realloc(w->line, w->line_len + (n - start) + 1);

		if (!p)
			return 0;
		memcpy(p + w->line_len, data + start, n - start);
		w->line_len += n - start;
		w->line = p;
	}
	return n;
}

/* Read the key now: apply it and watch from the revision after. */
static int catch_up(co_fleet_watch *w)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL;
	co_flags flags;
	int64_t epoch;
	int error;

	if (!req)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((error = co_fleet__add_key(req, "key", w->f->flags_key)) < 0 ||
	    (error = co_etcd_store_call(&resp, w->f->gw, "/v3/kv/range", req)) < 0)
		goto done;
	w->next_rev = co_fleet__i64(cJSON_GetObjectItemCaseSensitive(resp, "header"),
				    "revision") + 1;
	error = co_fleet__flags_from_kv(
	    &flags, &epoch, w->f,
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "kvs"), 0));
	if (error == 0)
		apply(w, &flags, epoch);
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* One streaming watch until it breaks or close is asked. */
static void stream(co_fleet_watch *w)
{
	char rev[32], *body = NULL, *k = NULL;
	cJSON *req = cJSON_CreateObject(), *cr;
	struct curl_slist *hdr = NULL;
	CURL *h = curl_easy_init();
	int running = 1;

	snprintf(rev, sizeof rev, "%lld", (long long)w->next_rev);
	k = co_b64_encode(w->f->flags_key, strlen(w->f->flags_key));
	if (!req || !h || !k || !(cr = cJSON_AddObjectToObject(req, "create_request")) ||
	    !cJSON_AddStringToObject(cr, "key", k) ||
	    !cJSON_AddStringToObject(cr, "start_revision", rev) ||
	    !(body = cJSON_PrintUnformatted(req)))
		goto done;
	if (co_etcd_store_stream_setup(h, &hdr, w->f->gw, w->endpoint, "/v3/watch", body) <
	    0)
		goto done;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	/* a stopped etcd keeps the connection and says nothing: the stream is
	 * judged dead after 3 s without a byte (etcd sends progress rarely, so
	 * the stream is also re-made then, harmlessly) */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 3L);
	w->line_len = 0;
	if (curl_multi_add_handle(w->multi, h) != CURLM_OK)
		goto done;
	while (running && !atomic_load(&w->stop)) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		if (running)
			curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
	}
	curl_multi_remove_handle(w->multi, h);
done:
	atomic_store(&w->connected, 0);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	cJSON_Delete(req);
	free(body);
	free(k);
}

static void pause_ms(co_fleet_watch *w, int ms)
{
	struct timespec ts;

	co_fleet__deadline(&ts, ms);
	pthread_mutex_lock(&w->lock);
	while (!atomic_load(&w->stop) &&
	       pthread_cond_timedwait(&w->changed, &w->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&w->lock);
}

static void *run(void *arg)
{
	co_fleet_watch *w = arg;

	while (!atomic_load(&w->stop)) {
		if (catch_up(w) == 0)
			stream(w);
		if (atomic_load(&w->stop))
			break;
		w->endpoint = (w->endpoint + 1) % co_etcd_store_endpoints(w->f->gw);
		pause_ms(w, RETRY_MS);
	}
	return NULL;
}

int co_fleet_watch_open(co_fleet_watch **out, co_fleet *f, co_fleet_flags_cb cb,
			void *ctx)
{
	co_fleet_watch *w = calloc(1, sizeof *w);

	if (!w)
		return co_error_set(CO_ENOMEM, "out of memory");
	w->f = f;
	w->cb = cb;
	w->ctx = ctx;
	co_flags_init(&w->flags);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	if ((w->multi = curl_multi_init()) == NULL) {
		co_fleet_watch_close(w);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		curl_multi_cleanup(w->multi);
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->changed);
		free(w);
		return co_error_set(CO_EIO, "fleet watch: cannot start a thread");
	}
	*out = w;
	return 0;
}

int64_t co_fleet_watch_get(co_flags *out, co_fleet_watch *w)
{
	int64_t epoch;

	pthread_mutex_lock(&w->lock);
	if (out)
		*out = w->flags;
	epoch = w->epoch;
	pthread_mutex_unlock(&w->lock);
	return epoch;
}

int co_fleet_watch_wait(co_fleet_watch *w, int64_t after, int timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	co_fleet__deadline(&ts, timeout_ms);
	pthread_mutex_lock(&w->lock);
	while (w->epoch <= after && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&w->changed, &w->lock, &ts);
	rc = w->epoch > after ? 0 : CO_ERETRY;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int co_fleet_watch_connected(co_fleet_watch *w)
{
	return atomic_load(&w->connected);
}

void co_fleet_watch_close(co_fleet_watch *w)
{
	if (!w)
		return;
	if (w->multi) {
		atomic_store(&w->stop, 1);
		pthread_mutex_lock(&w->lock);
		pthread_cond_broadcast(&w->changed);
		pthread_mutex_unlock(&w->lock);
		curl_multi_wakeup(w->multi);
		pthread_join(w->thread, NULL);
		curl_multi_cleanup(w->multi);
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->changed);
	free(w->line);
	free(w);
}
