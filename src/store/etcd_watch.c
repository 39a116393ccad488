/*
 * etcd_watch.c - the etcd store's watch: a thread of its own drives a
 * streaming POST /v3/watch through a curl multi handle, so that closing
 * it can wake the thread at once (curl_multi_wakeup).  The stream is split
 * on newlines, not on chunks.  A broken stream is resumed once on each
 * endpoint from the next revision; when that fails the watch ends with
 * CO_EUNAVAIL.  The decoder alone (etcd_store_internal.h) is the same code
 * without a connection, for tests and the fuzzer.
 *
 * A stalled stream (issue 16: a SIGSTOPped member keeps the TCP connection
 * open and says nothing, forever) is found by an idle bound: when the
 * stream has been silent for watch_idle_ms, the watch thread sends the
 * same member a cheap linearizable range (one key, keys only) under a
 * short timeout.  A member that answers is alive and in the quorum, so
 * its silence only means nothing changed; one that does not is stalled:
 * the stream is torn down and resumed on the next endpoint from the next
 * revision, so no event is lost.  A stream that is not created within the
 * connect and request timeouts counts as stalled too.  While a stream is
 * not known live (being created, or under a probe) co_etcd__watch_live()
 * says so, and the record cache (etcd_cache.c) trusts none of its entries.
 */
#include "etcd_private.h"

#include "../core/error.h"
#include "etcd_store_internal.h"

#include "../core/id.h"
#include "../core/record.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	atomic_int live; /* the current stream is created and not suspect */

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
	int stream_stalled; /* torn down as stalled: resume on the next endpoint */
	int64_t last_data_ms; /* when the stream last said anything */
	char stream_err[512];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
	const char *id;
	co_event *ev = NULL;
	char *key = NULL;
	size_t len = 0;
	co_kind kind;

	if (kv == NULL ||
	    (key = co_b64_decode(co_etcd__json_str(kv, "key"), &len)) == NULL)
		goto fail;
	if (co_etcd__key_parse(w->e, key, &kind, &id) < 0 ||
	    (ev = calloc(1, sizeof(*ev))) == NULL || (ev->id = strdup(id)) == NULL)
		goto fail;
	ev->kind = kind;
	ev->store = "etcd";
	ev->mod_revision = co_etcd__json_i64(kv, "mod_revision");
	/* type is an enum whose default (PUT) is omitted. */
	if (strcmp(co_etcd__json_str(jev, "type"), "DELETE") == 0) {
		ev->type = CO_EVENT_DELETE;
	} else {
		ev->type = CO_EVENT_PUT;
		if (co_etcd__record_from_kv(&ev->record, w->e, kv, key) < 0)
			goto fail;
		/* A value naming another record is refused, as co_etcd__get refuses
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
		const char *msg = co_etcd__json_str(res, "message");

		snprintf(w->stream_err, sizeof(w->stream_err), "%s",
			 msg[0] ? msg
				: (cJSON_IsString(res) ? res->valuestring : "error"));
		rc = -1;
		goto done;
	}
	if ((res = cJSON_GetObjectItemCaseSensitive(j, "result")) == NULL)
		goto done;
	if (co_etcd__json_true(res, "created")) {
		int64_t hrev = co_etcd__json_i64(
		    cJSON_GetObjectItemCaseSensitive(res, "header"), "revision");

		/* INT64_MAX + 1 would overflow; no etcd gets there. */
		if (w->next_rev == 0 && hrev < INT64_MAX)
			w->next_rev = hrev + 1;
		w->stream_created = 1;
		atomic_store(&w->live, 1);
		pthread_mutex_lock(&w->lock);
		w->created = 1;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
	}
	if (co_etcd__json_true(res, "canceled")) {
		int64_t compact = co_etcd__json_i64(res, "compact_revision");

		if (compact)
			snprintf(w->stream_err, sizeof(w->stream_err),
				 "watch canceled: revision %lld compacted",
				 (long long)compact);
		else
			snprintf(w->stream_err, sizeof(w->stream_err),
				 "watch canceled: %s",
				 co_etcd__json_str(res, "cancel_reason"));
		w->stream_fatal = 1;
		rc = -1;
		goto done;
	}
	evs = cJSON_GetObjectItemCaseSensitive(res, "events");
	cJSON_ArrayForEach(jev, evs)
	{
		const cJSON *kv = cJSON_GetObjectItemCaseSensitive(jev, "kv");
		int64_t mod = co_etcd__json_i64(kv, "mod_revision");
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

	w->last_data_ms = mono_ms();
	if (co_etcd__buf_add(&w->line, ptr, n) < 0)
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
 * The cheap probe of endpoint i: a linearizable range of one key, keys
 * only, under a short bound.  0 if the member answered HTTP 200.
 */
static int probe_member(struct etcd_watch *w, size_t i)
{
	struct etcd *e = w->e;
	struct curl_slist *hdrs = co_etcd__make_headers(w->token);
	cJSON *req = cJSON_CreateObject();
	char url[512], *body = NULL;
	CURL *h = curl_easy_init();
	struct buf sink = {0};
	long http = 0, bound = e->request_timeout_ms < 2000 ? e->request_timeout_ms : 2000;
	int rc = -1;

	if (hdrs == NULL || req == NULL || h == NULL ||
	    co_etcd__json_add_prefix_range(req, w->range_key) < 0 ||
	    co_etcd__json_add_i64(req, "limit", 1) < 0 ||
	    !cJSON_AddTrueToObject(req, "keys_only") ||
	    (body = cJSON_PrintUnformatted(req)) == NULL)
		goto done;
	snprintf(url, sizeof(url), "%s/v3/kv/range", e->endpoints[i]);
	co_etcd__handle_setup(h, e);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, bound);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, bound);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	atomic_fetch_add(&e->watch_probes, 1);
	if (curl_easy_perform(h) == CURLE_OK &&
	    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http) == CURLE_OK && http == 200)
		rc = 0;
done:
	if (h)
		curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	cJSON_Delete(req);
	free(body);
	co_etcd__buf_free(&sink);
	return rc;
}

/*
 * 1 if the stream to endpoint i is stalled: not created within the
 * connect and request timeouts, or silent for watch_idle_ms and its member
 * does not answer a probe.  A probe that answers restarts the idle clock.
 */
static int stream_stalled(struct etcd_watch *w, size_t i)
{
	struct etcd *e = w->e;
	int64_t idle = mono_ms() - w->last_data_ms;

	if (!w->stream_created) {
		if (idle < (int64_t)e->connect_timeout_ms + e->request_timeout_ms)
			return 0;
		snprintf(w->stream_err, sizeof(w->stream_err),
			 "not created within %d ms",
			 e->connect_timeout_ms + e->request_timeout_ms);
		return 1;
	}
	if (idle < e->watch_idle_ms)
		return 0;
	atomic_store(&w->live, 0); /* suspect until the member answers */
	if (probe_member(w, i) == 0) {
		w->last_data_ms = mono_ms();
		atomic_store(&w->live, 1);
		return 0;
	}
	snprintf(w->stream_err, sizeof(w->stream_err),
		 "silent for %" PRId64 " ms and the member does not answer a probe",
		 idle);
	return 1;
}

/*
 * Run one streaming request to endpoint i until it ends or we are told to
 * stop.  Leaves a description of why it ended in errmsg.
 */
static void watch_stream(struct etcd_watch *w, size_t i, char *errmsg, size_t len)
{
	struct etcd *e = w->e;
	struct curl_slist *hdrs = co_etcd__make_headers(w->token);
	cJSON *req = cJSON_CreateObject(), *cr;
	char url[512], errbuf[CURL_ERROR_SIZE] = "", *body = NULL;
	CURL *h = curl_easy_init();
	CURLcode rc = CURLE_OK;
	int running = 1;

	w->stream_created = 0;
	w->stream_stalled = 0;
	w->stream_err[0] = '\0';
	w->line.len = 0;
	w->last_data_ms = mono_ms();
	if (hdrs == NULL || req == NULL || h == NULL ||
	    (cr = cJSON_AddObjectToObject(req, "create_request")) == NULL ||
	    co_etcd__json_add_prefix_range(cr, w->range_key) < 0 ||
	    !cJSON_AddTrueToObject(cr, "progress_notify") ||
	    (w->next_rev > 0 &&
	     co_etcd__json_add_i64(cr, "start_revision", w->next_rev) < 0) ||
	    (body = cJSON_PrintUnformatted(req)) == NULL) {
		snprintf(errmsg, len, "out of memory");
		goto done;
	}
	snprintf(url, sizeof(url), "%s/v3/watch", e->endpoints[i]);
	co_etcd__handle_setup(h, e);
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
			curl_multi_poll(w->multi, NULL, 0, 100, NULL);
		if (running && stream_stalled(w, i)) {
			w->stream_stalled = 1;
			atomic_fetch_add(&e->watch_stalls, 1);
			break;
		}
	}
	atomic_store(&w->live, 0);
	{
		CURLMsg *m;
		int left;

		while ((m = curl_multi_info_read(w->multi, &left)) != NULL)
			if (m->msg == CURLMSG_DONE)
				rc = m->data.result;
	}
	curl_multi_remove_handle(w->multi, h);
	watch_stream_end(w);
	if (w->stream_stalled)
		snprintf(errmsg, len, "%s: the watch stream stalled (%s)",
			 e->endpoints[i], w->stream_err);
	else if (w->stream_err[0])
		snprintf(errmsg, len, "%s: %s", e->endpoints[i], w->stream_err);
	else if (rc != CURLE_OK) {
		char what[CURL_ERROR_SIZE + 32];

		co_etcd__describe_curl_error(what, sizeof(what), h, rc, errbuf);
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
			if (w->stream_stalled && w->stream_created) {
				/* It worked, then went silent: resume on the
				 * next member, from where it stopped. */
				progressed = 1;
				first = (i + 1) % e->n_endpoints;
				break;
			}
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

void co_etcd__watch_close(void *impl)
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
	co_etcd__buf_free(&w->line);
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

int co_etcd__watch_live(void *impl)
{
	struct etcd_watch *w = impl;

	return w != NULL && atomic_load(&w->live);
}

int co_etcd__watch_open(void **out, void *impl, const char *prefix)
{
	return co_etcd__watch_open_at(out, impl, prefix, 0, 1);
}

int co_etcd__watch_open_at(void **out, void *impl, const char *prefix, int64_t start_rev,
			   int wait_created)
{
	struct etcd *e = impl;
	struct etcd_watch *w = calloc(1, sizeof(*w));
	struct timespec until;
	int error, rc = 0;

	if (w == NULL)
		return co_etcd__oom();
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->e = e;
	w->next_rev = start_rev > 0 ? start_rev : 0;
	if (asprintf(&w->range_key, "%s%s", e->prefix, prefix) < 0) {
		w->range_key = NULL;
		error = co_etcd__oom();
		goto done;
	}
	if ((error = co_etcd__token_get(&w->token, e)) < 0)
		goto done;
	if ((w->multi = curl_multi_init()) == NULL) {
		error = co_etcd__oom();
		goto done;
	}
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		error = co_error_set(CO_ENOMEM, "etcd watch: cannot start a thread");
		goto done;
	}
	w->thread_started = 1;
	if (!wait_created) {
		*out = w;
		return 0;
	}

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
	co_etcd__watch_close(w);
	return error;
}

int co_etcd__watch_next(co_event **out, void *impl, int timeout_ms)
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
		return co_etcd__oom();
	pthread_mutex_init(&d->w.lock, NULL);
	pthread_cond_init(&d->w.cond, NULL);
	d->w.e = &d->e;
	if ((d->e.prefix = strdup(prefix)) == NULL ||
	    (d->e.describe = strdup("(watch decoder)")) == NULL) {
		co_etcd__watch_decoder_free(d);
		return co_etcd__oom();
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
	co_etcd__buf_free(&d->w.line);
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
