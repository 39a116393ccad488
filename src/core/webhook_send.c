/*
 * webhook_send.c - deliver the queued webhook events (webhook.h).
 *
 * One row at a time: a short write transaction leases the oldest due row
 * (moves its next attempt past the request's timeout, so that another
 * sender, serve's thread or a CLI command, does not take it meanwhile),
 * then the POST runs with no lock held, then a second transaction deletes
 * the row (2xx) or books the failure: attempts + 1, the next attempt after
 * an exponential backoff, the error; or, attempts spent, deletes it and
 * records "webhook dropped" in the audit trail.  A sender that dies
 * mid-request leaves a lease that simply expires: the event is sent again
 * (at least once; receivers dedupe by id).
 *
 * Nothing here runs on the path of a change: the trip is on disk and
 * audited before any of this begins.  This file is libcurl's adapter for
 * the webhooks as etcd_store.c is for etcd: no curl type leaves it.
 */
#include "webhook.h"

#include "audit.h"
#include "error.h"
#include "log.h"
#include "state_internal.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a leased row is left alone: a request's whole timeout and then some. */
#define LEASE_MS (CO_WEBHOOK_TIMEOUT_MS + 5000)
/* The serve thread's pass: at most this long before it looks at stop again. */
#define PASS_MS 60000
/* Below this much budget no request starts. */
#define MIN_REQUEST_MS 50

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One leased row. */
typedef struct row {
	int64_t seq, attempts;
	char *event_id, *event, *url, *body;
} row;

static void row_clear(row *r)
{
	free(r->event_id);
	free(r->event);
	free(r->url);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Lease the oldest due row into *r: 1 leased, 0 none due, < 0 error. */
static int lease(row *r, co_state *st)
{
	sqlite3_stmt *sel = NULL, *upd = NULL;
	int64_t now = co_state_now_ms();
	int rc, error, got = 0;

	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &sel,
		 "SELECT seq, attempts, event_id, event, url, body FROM webhook_outbox"
		 " WHERE next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT 1")) <
		0 ||
	    (error = co_state__prepare(
		 st, &upd,
		 "UPDATE webhook_outbox SET next_attempt_at = ? WHERE seq = ?")) < 0 ||
	    (error = co_state__begin(st, 0)) < 0)
		goto done;
	sqlite3_bind_int64(sel, 1, now);
	rc = sqlite3_step(sel);
	if (rc == SQLITE_DONE)
		goto commit;
	if (rc != SQLITE_ROW) {
		error = co_state__error(st, rc, "read the webhook outbox");
		goto done;
	}
	r->seq = sqlite3_column_int64(sel, 0);
	r->attempts = sqlite3_column_int64(sel, 1);
	if ((error = co_state__column_text(&r->event_id, sel, 2)) < 0 ||
	    (error = co_state__column_text(&r->event, sel, 3)) < 0 ||
	    (error = co_state__column_text(&r->url, sel, 4)) < 0 ||
	    (error = co_state__column_text(&r->body, sel, 5)) < 0)
		goto done;
	sqlite3_reset(sel);
	sqlite3_bind_int64(upd, 1, now + LEASE_MS);
	sqlite3_bind_int64(upd, 2, r->seq);
	if ((error = co_state__step_done(st, upd, "lease a webhook event")) < 0)
		goto done;
	got = 1;
commit:
	error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__finish(st, sel);
	co_state__finish(st, upd);
	co_state__unlock(st);
	if (error < 0 || !got)
		row_clear(r);
	return error < 0 ? error : got;
}

/* Delivered or given up: the row goes. */
static int forget(co_state *st, int64_t seq)
{
	sqlite3_stmt *s = NULL;
	int error;

	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s, "DELETE FROM webhook_outbox WHERE seq = ?")) == 0) {
		sqlite3_bind_int64(s, 1, seq);
		error = co_state__step_commit(st, s, 1, "forget a webhook event");
	}
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

/* Failed: book it and set the next attempt after the backoff. */
static int book_failure(co_state *st, const row *r, const char *why)
{
	sqlite3_stmt *s = NULL;
	int64_t wait = CO_WEBHOOK_BACKOFF_MS;
	int64_t i;
	int error;

	for (i = 0; i < r->attempts && wait < CO_WEBHOOK_BACKOFF_MAX_MS; i++)
		wait *= 2;
	if (wait > CO_WEBHOOK_BACKOFF_MAX_MS)
		wait = CO_WEBHOOK_BACKOFF_MAX_MS;
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s,
		 "UPDATE webhook_outbox SET attempts = attempts + 1,"
		 " next_attempt_at = ?, last_error = ? WHERE seq = ?")) == 0) {
		sqlite3_bind_int64(s, 1, co_state_now_ms() + wait);
		sqlite3_bind_int64(s, 3, r->seq);
		if ((error = co_state__bind_text(st, s, 2, why)) == 0)
			error = co_state__step_commit(st, s, 1, "book a webhook failure");
	}
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

/*
 * "https://hooks.example.com" of a URL: its path, query and user info may
 * be the secret itself (chat webhooks put their token in the path), so the
 * audit trail, which the admin API serves, names only the origin.
 */
static void origin_of(char *buf, size_t len, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;

	snprintf(buf, len, "(unparseable URL)");
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
			port = NULL; /* the scheme's default */
		snprintf(buf, len, "%s://%s%s%s", scheme, host, port ? ":" : "",
			 port ? port : "");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

static int drop(co_state *st, const row *r, const char *why)
{
	char detail[1024], origin[300];
	int error;

	if ((error = forget(st, r->seq)) < 0)
		return error;
	origin_of(origin, sizeof(origin), r->url);
	snprintf(detail, sizeof(detail), "%s %s to %s: %s", r->event, r->event_id, origin,
		 why);
	return co_audit_change_add(st, "webhook", "webhook dropped", detail, NULL);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

static int on_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	const atomic_int *stop = ctx;

	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return stop && atomic_load(stop) ? 1 : 0;
}

/* "sha256=<hex>" of HMAC-SHA256(secret, body) into out (72 bytes). */
static int sign(char out[80], const char *secret, const char *body)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body,
		 strlen(body), mac, &len) == NULL)
		return -1;
	memcpy(out, "sha256=", 7);
	for (i = 0; i < len; i++) {
		out[7 + 2 * i] = hex[mac[i] >> 4];
		out[7 + 2 * i + 1] = hex[mac[i] & 15];
	}
	out[7 + 2 * len] = '\0';
	return 0;
}

/* POST one event; 0 on a 2xx, else -1 with why. */
static int post(char *why, size_t why_len, const row *r, const char *secret,
		int64_t timeout_ms, const atomic_int *stop)
{
	struct curl_slist *h = NULL, *t;
	char sig[80], line[256];
	CURL *e;
	CURLcode rc;
	long status = 0;
	int ok = 0;

	pthread_once(&curl_once, curl_init);
	if (sign(sig, secret, r->body) < 0) {
		snprintf(why, why_len, "HMAC-SHA256 failed");
		return -1;
	}
	if ((e = curl_easy_init()) == NULL) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	snprintf(line, sizeof(line), "X-Cutover-Event: %s", r->event);
	if (h && (t = curl_slist_append(h, line)) != NULL)
		h = t;
	snprintf(line, sizeof(line), "X-Cutover-Delivery: %s", r->event_id);
	if (h && (t = curl_slist_append(h, line)) != NULL)
		h = t;
	snprintf(line, sizeof(line), "X-Cutover-Timestamp: %lld",
		 (long long)(co_state_now_ms() / 1000));
	if (h && (t = curl_slist_append(h, line)) != NULL)
		h = t;
	snprintf(line, sizeof(line), "X-Cutover-Signature: %s", sig);
	if (h && (t = curl_slist_append(h, line)) != NULL)
		h = t;
	if (h && (t = curl_slist_append(h, "Expect:")) != NULL)
		h = t;
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(timeout_ms < CO_WEBHOOK_CONNECT_TIMEOUT_MS
				    ? timeout_ms
				    : CO_WEBHOOK_CONNECT_TIMEOUT_MS));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)stop);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "cutover-webhook/1");
	rc = h ? curl_easy_perform(e) : CURLE_OUT_OF_MEMORY;
	if (rc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK)
		snprintf(why, why_len, "%s", curl_easy_strerror(rc));
	else if (status < 200 || status > 299)
		snprintf(why, why_len, "HTTP %ld", status);
	else
		ok = 1;
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	return ok ? 0 : -1;
}

static const char *secret_of(const co_config *c, const char *url)
{
	size_t i;

	for (i = 0; i < c->n_webhooks; i++)
		if (strcmp(c->webhooks[i].url, url) == 0)
			return c->webhooks[i].secret;
	return NULL;
}

int co_webhook_deliver(co_webhook_stats *stats, co_state *st, const co_config *c,
		       int budget_ms, const atomic_int *stop)
{
	int64_t end = mono_ms() + budget_ms, left;
	co_webhook_stats none;
	char why[512];
	row r = {0};
	int error = 0, got;

	if (stats == NULL)
		stats = &none;
	memset(stats, 0, sizeof(*stats));
	while ((left = end - mono_ms()) >= MIN_REQUEST_MS &&
	       !(stop && atomic_load(stop))) {
		const char *secret;

		if ((got = lease(&r, st)) <= 0) {
			error = got;
			break;
		}
		if ((secret = secret_of(c, r.url)) == NULL) {
			error = drop(st, &r, "its URL is no longer configured");
			stats->dropped++;
		} else if (post(why, sizeof(why), &r, secret,
				left < CO_WEBHOOK_TIMEOUT_MS ? left
							     : CO_WEBHOOK_TIMEOUT_MS,
				stop) == 0) {
			error = forget(st, r.seq);
			stats->delivered++;
		} else if (r.attempts + 1 >= CO_WEBHOOK_MAX_ATTEMPTS) {
			char msg[600];

			snprintf(msg, sizeof(msg),
				 "given up after %lld attempts, last: %s",
				 (long long)r.attempts + 1, why);
			error = drop(st, &r, msg);
			stats->dropped++;
		} else {
			error = book_failure(st, &r, why);
			stats->failed++;
		}
		row_clear(&r);
		if (error < 0)
			break;
	}
	return error;
}

/* ---- serve's sender thread ---- */

static pthread_mutex_t kick_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t kick_cond = PTHREAD_COND_INITIALIZER;
static int kicked;
static atomic_int sender_ran;

void co_webhook__kick(void)
{
	pthread_mutex_lock(&kick_lock);
	kicked = 1;
	pthread_cond_broadcast(&kick_cond);
	pthread_mutex_unlock(&kick_lock);
}

int co_webhook_sender_ran(void)
{
	return atomic_load(&sender_ran);
}

struct co_webhook_sender {
	pthread_t thread;
	co_state *st;
	const co_config *c;
	atomic_int stop;
};

static void *sender_main(void *arg)
{
	co_webhook_sender *ws = arg;
	struct timespec until;

	while (!atomic_load(&ws->stop)) {
		if (co_webhook_deliver(NULL, ws->st, ws->c, PASS_MS, &ws->stop) < 0) {
			co_log(CO_LOG_WARN, "webhook", "webhooks: %s", co_error_last());
			co_error_clear();
		}
		/* About once a second, at once when this process queues one. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_mutex_lock(&kick_lock);
		while (!kicked && !atomic_load(&ws->stop) &&
		       pthread_cond_timedwait(&kick_cond, &kick_lock, &until) == 0)
			;
		kicked = 0;
		pthread_mutex_unlock(&kick_lock);
	}
	return NULL;
}

int co_webhook_sender_start(co_webhook_sender **out, co_state *st, const co_config *c)
{
	co_webhook_sender *ws = calloc(1, sizeof(*ws));
	sigset_t all, old;
	int rc;

	if (ws == NULL)
		return co_error_set(CO_ENOMEM, "webhooks: out of memory");
	ws->st = st;
	ws->c = c;
	atomic_init(&ws->stop, 0);
	atomic_store(&sender_ran, 1);
	/* The thread takes no signal: SIGINT/SIGTERM stay with the threads
	 * that wait for them (serve's sigwait, reconcile --every's handler). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&ws->thread, NULL, sender_main, ws);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		free(ws);
		return co_error_set(CO_ENOMEM,
				    "webhooks: cannot start the sender thread");
	}
	*out = ws;
	return 0;
}

void co_webhook_sender_stop(co_webhook_sender *ws)
{
	if (ws == NULL)
		return;
	atomic_store(&ws->stop, 1);
	co_webhook__kick();
	pthread_join(ws->thread, NULL);
	free(ws);
}
