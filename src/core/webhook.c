/*
 * webhook.c - which events exist, which endpoints want them, and queueing
 * them in the state database next to their audit row (webhook.h).
 *
 * The endpoints are process-wide, set from the configuration once
 * (co_webhook_configure), because a change is audited from many places
 * (the CLI's commands, serve's admin API, the reconciler, the router's
 * triggers) that all hold a co_state but not the configuration.  An event
 * is built before the state lock is taken (it reads the flags file for the
 * "flags" of the body), then queued inside the caller's transaction: one
 * row per endpoint, the same id for all.  Delivery is webhook_send.c's.
 *
 * This file reads the flags file (flags/), the one place the core looks at
 * the flags: the body says what the flags were right after the change.
 */
#include "webhook.h"

#include "audit.h"
#include "error.h"
#include "state_internal.h"
#include "flags/flags.h"
#include "flags/stage.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	unsigned bit;
} events[] = {
    {"kill_switch.tripped", CO_WEBHOOK_EV_TRIPPED},
    {"kill_switch.resumed", CO_WEBHOOK_EV_RESUMED},
    {"stage.changed", CO_WEBHOOK_EV_STAGE},
    {"flags.changed", CO_WEBHOOK_EV_FLAGS},
    {"rollout.step", CO_WEBHOOK_EV_ROLLOUT},
    {"reconcile.failed", CO_WEBHOOK_EV_RECONCILE},
};

#define N_EVENTS (sizeof(events) / sizeof(events[0]))

unsigned co_webhook_event_bit(const char *name)
{
	size_t i;

	for (i = 0; name && i < N_EVENTS; i++)
		if (strcmp(name, events[i].name) == 0)
			return events[i].bit;
	return 0;
}

const char *co_webhook_event_of_action(const char *action)
{
	if (action == NULL)
		return NULL;
	/* auto-rollback: a failing reconciliation's trip, and a trigger's */
	if (strcmp(action, "rollback") == 0 || strcmp(action, "auto-rollback") == 0)
		return "kill_switch.tripped";
	if (strcmp(action, "resume") == 0)
		return "kill_switch.resumed";
	if (strcmp(action, "stage") == 0)
		return "stage.changed";
	if (strcmp(action, "flags set") == 0)
		return "flags.changed";
	if (strncmp(action, "rollout", 7) == 0)
		return "rollout.step";
	return NULL;
}

int co_webhook_url_check(char *why, size_t why_len, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int error = 0;

	if (u == NULL) {
		snprintf(why, why_len, "out of memory");
		return CO_ENOMEM;
	}
	if (url == NULL || *url == '\0') {
		snprintf(why, why_len, "empty URL");
		error = CO_EINVAL;
	} else if (strpbrk(url, " \t\r\n") != NULL) {
		snprintf(why, why_len, "\"%s\" has white space in it", url);
		error = CO_EINVAL;
	} else if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(why, why_len, "\"%s\" is not a URL (http://host[:port]/path)",
			 url);
		error = CO_EINVAL;
	} else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		   (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		snprintf(why, why_len, "\"%s\": only http:// and https:// URLs", url);
		error = CO_EINVAL;
	} else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		   host[0] == '\0') {
		snprintf(why, why_len, "\"%s\" has no host", url);
		error = CO_EINVAL;
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return error;
}

/* ---- the process's endpoints ---- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char **urls;
	unsigned *events;
	size_t n;
	char *flags_path;
} reg;
static atomic_llong queued;

static void reg_clear(void)
{
	size_t i;

	for (i = 0; i < reg.n; i++)
		free(reg.urls[i]);
	free(reg.urls);
	free(reg.events);
	free(reg.flags_path);
	memset(&reg, 0, sizeof(reg));
}

void co_webhook_unconfigure(void)
{
	pthread_mutex_lock(&reg_lock);
	reg_clear();
	pthread_mutex_unlock(&reg_lock);
}

int co_webhook_configure(const co_config *c)
{
	size_t i, n = c->n_webhooks;
	int error = 0;

	pthread_mutex_lock(&reg_lock);
	reg_clear();
	if (n == 0)
		goto done;
	reg.urls = calloc(n, sizeof(*reg.urls));
	reg.events = calloc(n, sizeof(*reg.events));
	reg.flags_path = c->flags_path ? strdup(c->flags_path) : NULL;
	if (reg.urls == NULL || reg.events == NULL ||
	    (c->flags_path && !reg.flags_path)) {
		error = co_error_set(CO_ENOMEM, "webhooks: out of memory");
		goto done;
	}
	for (i = 0; i < n; i++, reg.n++) {
		if ((reg.urls[i] = strdup(c->webhooks[i].url)) == NULL) {
			error = co_error_set(CO_ENOMEM, "webhooks: out of memory");
			goto done;
		}
		reg.events[i] = c->webhooks[i].events;
	}
done:
	if (error < 0)
		reg_clear();
	pthread_mutex_unlock(&reg_lock);
	return error;
}

int64_t co_webhook_queued(void)
{
	return atomic_load(&queued);
}

/* ---- events ---- */

void co_webhook__event_clear(co_webhook__event *ev)
{
	size_t i;

	for (i = 0; i < ev->n_urls; i++)
		free(ev->urls[i]);
	free(ev->urls);
	free(ev->body);
	free(ev->name);
	free(ev->id);
	memset(ev, 0, sizeof(*ev));
}

/* The flags right after the change, for the body; NULL if they do not load. */
static cJSON *flags_now(const char *path)
{
	co_flags f;
	cJSON *o;

	char saved[1024];
	int code = co_error_last_code();

	/* The caller's error message (a refusal being audited) survives. */
	snprintf(saved, sizeof(saved), "%s", co_error_last());
	if (path == NULL || co_flags_load(&f, path) < 0) {
		if (code)
			co_error_set(code, "%s", saved);
		else
			co_error_clear();
		return cJSON_CreateNull();
	}
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "stage", co_stage_name(co_stage_of(&f)));
	cJSON_AddBoolToObject(o, "kill_switch", f.kill_switch);
	if (f.kill_switch)
		cJSON_AddStringToObject(o, "kill_reason", f.kill_reason);
	else
		cJSON_AddNullToObject(o, "kill_reason");
	return o;
}

static cJSON *text_or_null(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* 32 hex digits from the system's CSPRNG. */
static int new_id(char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	int i;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[32] = '\0';
	return 0;
}

void co_webhook__event_make(co_webhook__event *ev, const char *name, const char *who,
			    const char *action, const char *detail, const char *why,
			    int64_t ts)
{
	unsigned bit = co_webhook_event_bit(name);
	char id[33], when[40], *path = NULL;
	cJSON *o = NULL;
	size_t i;

	memset(ev, 0, sizeof(*ev));
	if (bit == 0)
		return;
	pthread_mutex_lock(&reg_lock);
	if (reg.n && (ev->urls = calloc(reg.n, sizeof(*ev->urls))) == NULL)
		goto oom_locked;
	for (i = 0; i < reg.n; i++) {
		if (reg.events[i] && !(reg.events[i] & bit))
			continue;
		if ((ev->urls[ev->n_urls] = strdup(reg.urls[i])) == NULL)
			goto oom_locked;
		ev->n_urls++;
	}
	if (ev->n_urls && reg.flags_path && (path = strdup(reg.flags_path)) == NULL)
		goto oom_locked;
	pthread_mutex_unlock(&reg_lock);
	if (ev->n_urls == 0) {
		co_webhook__event_clear(ev);
		return;
	}

	co_audit_format_time(when, sizeof(when), ts);
	if (new_id(id) < 0 || (o = cJSON_CreateObject()) == NULL ||
	    !cJSON_AddStringToObject(o, "id", id) ||
	    !cJSON_AddStringToObject(o, "event", name) ||
	    !cJSON_AddStringToObject(o, "time", when) ||
	    !cJSON_AddItemToObject(o, "who", text_or_null(who)) ||
	    !cJSON_AddItemToObject(o, "action", text_or_null(action)) ||
	    !cJSON_AddItemToObject(o, "detail", text_or_null(detail)) ||
	    !cJSON_AddItemToObject(o, "reason", text_or_null(why)) ||
	    !cJSON_AddItemToObject(o, "flags", flags_now(path)) ||
	    (ev->body = cJSON_PrintUnformatted(o)) == NULL ||
	    (ev->name = strdup(name)) == NULL || (ev->id = strdup(id)) == NULL)
		goto oom;
	cJSON_Delete(o);
	free(path);
	return;
oom_locked:
	pthread_mutex_unlock(&reg_lock);
oom:
	fprintf(stderr, "cutover: warning: webhook event %s not queued: out of memory\n",
		name);
	cJSON_Delete(o);
	free(path);
	co_webhook__event_clear(ev);
}

int co_webhook__event_queue(co_state *st, const co_webhook__event *ev)
{
	sqlite3_stmt *s = NULL;
	int64_t now = co_state_now_ms();
	size_t i;
	int error = 0;

	if (ev->body == NULL || ev->n_urls == 0)
		return 0;
	if ((error = co_state__prepare(
		 st, &s,
		 "INSERT INTO webhook_outbox (event_id, event, url, body, created_at,"
		 " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)")) < 0)
		return error;
	for (i = 0; i < ev->n_urls; i++) {
		if ((error = co_state__bind_text(st, s, 1, ev->id)) < 0 ||
		    (error = co_state__bind_text(st, s, 2, ev->name)) < 0 ||
		    (error = co_state__bind_text(st, s, 3, ev->urls[i])) < 0 ||
		    (error = co_state__bind_text(st, s, 4, ev->body)) < 0)
			break;
		sqlite3_bind_int64(s, 5, now);
		sqlite3_bind_int64(s, 6, now);
		if ((error = co_state__step_done(st, s, "queue a webhook event")) < 0)
			break;
	}
	co_state__finish(st, s);
	if (error == 0)
		atomic_fetch_add(&queued, 1);
	return error;
}

int co_webhook_pending(int64_t *out, int64_t *attempts, char *last_error, size_t len,
		       co_state *st)
{
	sqlite3_stmt *s = NULL;
	int rc, error;

	*out = 0;
	if (attempts)
		*attempts = 0;
	if (last_error && len)
		last_error[0] = '\0';
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s,
		 "SELECT (SELECT count(*) FROM webhook_outbox), attempts, last_error"
		 " FROM webhook_outbox ORDER BY seq LIMIT 1")) < 0)
		goto done;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		if (attempts)
			*attempts = sqlite3_column_int64(s, 1);
		if (last_error && len && sqlite3_column_text(s, 2))
			snprintf(last_error, len, "%s",
				 (const char *)sqlite3_column_text(s, 2));
	} else if (rc != SQLITE_DONE) {
		error = co_state__error(st, rc, "read the webhook outbox");
	}
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}
