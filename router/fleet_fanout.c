/*
 * fleet_fanout.c - the kill switch without etcd: the routers last seen,
 * cached in a file, and one admin call to each of them in parallel (curl
 * multi): a POST for `cutover rollback --fleet`, a GET whose whole answers
 * are kept for `cutover audit --fleet` (fleet.h).
 */
#include "router/fleet_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/error.h"

int co_fleet_members_save(const char *path, const co_fleet_member *m, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	char *text = NULL, tmp[4200];
	size_t i;
	FILE *f;
	int error = 0;

	for (i = 0; arr && i < n; i++) {
		char *one = co_fleet_member_json(&m[i]);
		cJSON *o = one ? cJSON_Parse(one) : NULL;

		free(one);
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			cJSON_Delete(arr);
			arr = NULL;
		}
	}
	if (!arr || !(text = cJSON_Print(arr))) {
		cJSON_Delete(arr);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	cJSON_Delete(arr);
	/* written aside and renamed: a reader never sees half a list */
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL || fputs(text, f) < 0 || fclose(f) != 0 ||
	    rename(tmp, path) != 0)
		error = co_error_set(CO_EIO, "%s: cannot write the routers' cache", path);
	free(text);
	return error;
}

int co_fleet_members_load(co_fleet_member **out, size_t *n, const char *path)
{
	char *text = NULL;
	size_t len = 0, count = 0;
	cJSON *arr, *o;
	co_fleet_member *m;
	FILE *f = fopen(path, "r");

	if (!f)
		return co_error_set(CO_ENOTFOUND, "%s: no routers cached", path);
	text = malloc(1 << 20);
	if (text)
		len = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	if (!text)
		return co_error_set(CO_ENOMEM, "out of memory");
	text[len] = '\0';
	arr = cJSON_Parse(text);
	free(text);
	if (!cJSON_IsArray(arr)) {
		cJSON_Delete(arr);
		return co_error_set(CO_EINVAL, "%s: not a list of routers", path);
	}
	if ((m = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *m)) == NULL) {
		cJSON_Delete(arr);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	cJSON_ArrayForEach(o, arr) co_fleet__member_from_json(&m[count++], o);
	cJSON_Delete(arr);
	*out = m;
	*n = count;
	return 0;
}

struct body {
	char *p;
	size_t len;
};

/* The answer's start, into call->answer (512 bytes). */
static size_t keep(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct body *b = ctx;
	size_t n = size * nmemb, room = b->len < 511 ? 511 - b->len : 0;

	if (n < room)
		room = n;
	memcpy(b->p + b->len, data, room);
	b->len += room;
	b->p[b->len] = '\0';
	return n;
}

/* The whole answer (up to CO_FLEET_ANSWER_MAX), malloc'd. */
struct whole {
	char *p;
	size_t len;
	co_fleet_call *call;
};

static size_t keep_whole(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct whole *w = ctx;
	size_t n = size * nmemb;
	char *grown;

	if (w->len + n > CO_FLEET_ANSWER_MAX ||
	    (grown = realloc(w->p, w->len + n + 1)) == NULL)
		return 0; /* curl fails the transfer: said in the call's error */
	w->p = grown;
	memcpy(w->p + w->len, data, n);
	w->len += n;
	w->p[w->len] = '\0';
	keep(data, size, nmemb, &(struct body){w->call->answer, strlen(w->call->answer)});
	return n;
}

static int fanout(co_fleet_call *calls, size_t n, const char *path, const char *body,
		  const char *token, int timeout_ms, char **answers);

int co_fleet_fanout(co_fleet_call *calls, size_t n, const char *path, const char *body,
		    const char *token, int timeout_ms)
{
	return fanout(calls, n, path, body, token, timeout_ms, NULL);
}

int co_fleet_fanout_get(co_fleet_call *calls, size_t n, const char *path, const char *token,
			int timeout_ms, char **answers)
{
	return fanout(calls, n, path, NULL, token, timeout_ms, answers);
}

/* body NULL: a GET whose whole answers go into answers[i] (NULL where
 * none came), else a POST of body keeping each answer's start. */
static int fanout(co_fleet_call *calls, size_t n, const char *path, const char *body,
		  const char *token, int timeout_ms, char **answers)
{
	CURLM *multi = curl_multi_init();
	CURL **h = calloc(n + 1, sizeof *h);
	struct curl_slist *hdr = NULL;
	struct body *bodies = calloc(n + 1, sizeof *bodies);
	struct whole *wholes = calloc(n + 1, sizeof *wholes);
	char auth[600];
	size_t i;
	int running = 0, answered = 0;
	CURLMsg *msg;

	if (!multi || !h || !bodies || !wholes) {
		curl_multi_cleanup(multi);
		free(h);
		free(bodies);
		free(wholes);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	if (body)
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (token && *token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		hdr = curl_slist_append(hdr, auth);
	}
	for (i = 0; i < n; i++) {
		char url[400];

		calls[i].status = 0;
		calls[i].error[0] = '\0';
		calls[i].answer[0] = '\0';
		if (answers)
			answers[i] = NULL;
		if (!calls[i].url[0]) {
			snprintf(calls[i].error, sizeof calls[i].error, "no admin URL registered");
			continue;
		}
		snprintf(url, sizeof url, "%s%s", calls[i].url, path);
		bodies[i].p = calls[i].answer;
		if ((h[i] = curl_easy_init()) == NULL) {
			snprintf(calls[i].error, sizeof calls[i].error, "cannot start curl");
			continue;
		}
		curl_easy_setopt(h[i], CURLOPT_URL, url);
		curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdr);
		if (body)
			curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h[i], CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(h[i], CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
		if (answers) {
			wholes[i].call = &calls[i];
			curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, keep_whole);
			curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &wholes[i]);
		} else {
			curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, keep);
			curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &bodies[i]);
		}
		curl_easy_setopt(h[i], CURLOPT_PRIVATE, (char *)&calls[i]);
		curl_multi_add_handle(multi, h[i]);
	}
	do {
		int left;

		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			co_fleet_call *c = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
			if (msg->data.result == CURLE_OK) {
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
						  &c->status);
				answered += c->status >= 200 && c->status < 300;
			} else {
				snprintf(c->error, sizeof c->error, "%s",
					 curl_easy_strerror(msg->data.result));
			}
		}
		if (running)
			curl_multi_poll(multi, NULL, 0, 200, NULL);
	} while (running);
	for (i = 0; i < n; i++) {
		if (h[i]) {
			curl_multi_remove_handle(multi, h[i]);
			curl_easy_cleanup(h[i]);
		}
		if (calls[i].status && (calls[i].status < 200 || calls[i].status >= 300))
			snprintf(calls[i].error, sizeof calls[i].error, "HTTP %ld: %.200s",
				 calls[i].status, calls[i].answer);
		if (answers && !calls[i].error[0])
			answers[i] = wholes[i].p;
		else
			free(wholes[i].p);
	}
	curl_slist_free_all(hdr);
	curl_multi_cleanup(multi);
	free(h);
	free(bodies);
	free(wholes);
	return answered;
}
