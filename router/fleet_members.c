/*
 * fleet_members.c - the fleet's membership: each router's key
 * <prefix>routers/<id> under a lease, refreshed by a thread; the list of
 * live routers.  A router that dies stops refreshing, its lease runs out
 * and its key goes: nothing to clean up.
 */
#include "router/fleet_private.h"

#include "core/b64.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "flags/stage.h"

struct co_fleet_reg {
	co_fleet *f;
	co_fleet_member m; /* under lock */
	co_fleet_member_fn fill;
	void *ctx;
	int ttl_s, every_ms;
	char lease[32]; /* "" until granted */
	char *key;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop; /* under lock */
	pthread_t thread;
};

static void copy_cut(char *dst, size_t max, const char *src)
{
	snprintf(dst, max, "%s", src ? src : "");
}

char *co_fleet_member_json(const co_fleet_member *m)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;

	if (o && cJSON_AddStringToObject(o, "id", m->id) &&
	    cJSON_AddStringToObject(o, "host", m->host) &&
	    cJSON_AddNumberToObject(o, "pid", (double)m->pid) &&
	    cJSON_AddStringToObject(o, "version", m->version) &&
	    cJSON_AddStringToObject(o, "mode", m->mode) &&
	    cJSON_AddNumberToObject(o, "epoch", (double)m->epoch) &&
	    cJSON_AddNumberToObject(o, "outbox_depth", (double)m->outbox_depth) &&
	    cJSON_AddNumberToObject(o, "outbox_age_ms", (double)m->outbox_age_ms) &&
	    cJSON_AddStringToObject(o, "admin_url", m->admin_url) &&
	    cJSON_AddStringToObject(o, "heartbeat", m->heartbeat) &&
	    cJSON_AddStringToObject(o, "state_dir", m->state_dir))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

void co_fleet__member_from_json(co_fleet_member *m, const cJSON *o)
{
	memset(m, 0, sizeof *m);
	copy_cut(m->id, sizeof m->id, co_fleet__str(o, "id"));
	copy_cut(m->host, sizeof m->host, co_fleet__str(o, "host"));
	m->pid = (long)co_fleet__i64(o, "pid");
	copy_cut(m->version, sizeof m->version, co_fleet__str(o, "version"));
	copy_cut(m->mode, sizeof m->mode, co_fleet__str(o, "mode"));
	m->epoch = co_fleet__i64(o, "epoch");
	m->outbox_depth = (long)co_fleet__i64(o, "outbox_depth");
	m->outbox_age_ms = (long)co_fleet__i64(o, "outbox_age_ms");
	copy_cut(m->admin_url, sizeof m->admin_url, co_fleet__str(o, "admin_url"));
	copy_cut(m->heartbeat, sizeof m->heartbeat, co_fleet__str(o, "heartbeat"));
	copy_cut(m->state_dir, sizeof m->state_dir, co_fleet__str(o, "state_dir"));
}

static int valid_id(const char *id)
{
	size_t n = strlen(id), i;

	if (n == 0 || n > CO_FLEET_ID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
		      (id[i] >= '0' && id[i] <= '9') || strchr("._-", id[i])))
			return 0;
	return 1;
}

/* A call whose request is {"<name>": "<value>"} (or {"TTL": n}). */
static int call1(cJSON **out, co_fleet *f, const char *path, const char *name,
		 const char *value)
{
	cJSON *req = cJSON_CreateObject();
	int error;

	if (!req || !cJSON_AddStringToObject(req, name, value)) {
		cJSON_Delete(req);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	error = co_etcd_store_call(out, f->gw, path, req);
	cJSON_Delete(req);
	return error;
}

/* Keep the lease alive, or grant a new one if it ran out. */
static int keep_lease(co_fleet_reg *r)
{
	cJSON *resp = NULL;
	char ttl[16];
	int error;

	if (r->lease[0]) {
		error = call1(&resp, r->f, "/v3/lease/keepalive", "ID", r->lease);
		if (error < 0)
			return error;
		if (co_fleet__i64(cJSON_GetObjectItemCaseSensitive(resp, "result"), "TTL") > 0) {
			cJSON_Delete(resp);
			return 0;
		}
		cJSON_Delete(resp); /* ran out: the key went with it */
		resp = NULL;
		r->lease[0] = '\0';
	}
	snprintf(ttl, sizeof ttl, "%d", r->ttl_s);
	if ((error = call1(&resp, r->f, "/v3/lease/grant", "TTL", ttl)) < 0)
		return error;
	copy_cut(r->lease, sizeof r->lease, co_fleet__str(resp, "ID"));
	cJSON_Delete(resp);
	return r->lease[0] ? 0 : co_error_set(CO_EUNAVAIL, "etcd granted no lease");
}

static void stamp_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int co_fleet_reg_refresh(co_fleet_reg *r)
{
	cJSON *req = NULL, *resp = NULL;
	co_fleet_member m;
	char *text = NULL, *val = NULL;
	int error;

	pthread_mutex_lock(&r->lock);
	if (r->fill)
		r->fill(r->ctx, &r->m);
	stamp_now(r->m.heartbeat, sizeof r->m.heartbeat);
	m = r->m;
	pthread_mutex_unlock(&r->lock);
	if ((error = keep_lease(r)) < 0)
		return error;
	if (!(text = co_fleet_member_json(&m)) || !(val = co_b64_encode(text, strlen(text))) ||
	    !(req = cJSON_CreateObject()) || co_fleet__add_key(req, "key", r->key) < 0 ||
	    !cJSON_AddStringToObject(req, "value", val) ||
	    !cJSON_AddStringToObject(req, "lease", r->lease)) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	error = co_etcd_store_call(&resp, r->f->gw, "/v3/kv/put", req);
done:
	free(text);
	free(val);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

static void *run(void *arg)
{
	co_fleet_reg *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		struct timespec ts;

		co_fleet__deadline(&ts, r->every_ms);
		if (pthread_cond_timedwait(&r->wake, &r->lock, &ts) != ETIMEDOUT || r->stop)
			continue;
		pthread_mutex_unlock(&r->lock);
		co_fleet_reg_refresh(r); /* etcd down: the next beat tries again */
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void reg_free(co_fleet_reg *r)
{
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->wake);
	free(r->key);
	free(r);
}

int co_fleet_register(co_fleet_reg **out, co_fleet *f, const co_fleet_member *m,
		      int ttl_s, co_fleet_member_fn fill, void *ctx)
{
	co_fleet_reg *r;
	int error;

	if (!valid_id(m->id))
		return co_error_set(CO_EINVAL,
				    "fleet: router id \"%s\": 1 to %d of A-Z a-z 0-9 . _ -",
				    m->id, CO_FLEET_ID_MAX);
	if (ttl_s < 1)
		return co_error_set(CO_EINVAL, "fleet: ttl %d: at least 1 second", ttl_s);
	if ((r = calloc(1, sizeof *r)) == NULL ||
	    (r->key = malloc(strlen(f->prefix) + strlen(m->id) + 9)) == NULL) {
		free(r);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	sprintf(r->key, "%srouters/%s", f->prefix, m->id);
	r->f = f;
	r->m = *m;
	r->fill = fill;
	r->ctx = ctx;
	r->ttl_s = ttl_s;
	r->every_ms = ttl_s * 1000 / 3 < 1000 ? ttl_s * 1000 / 3 : 1000;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	if ((error = co_fleet_reg_refresh(r)) < 0) {
		reg_free(r);
		return error;
	}
	if (pthread_create(&r->thread, NULL, run, r) != 0) {
		co_fleet_unregister(r); /* thread not started: stop is harmless */
		return co_error_set(CO_EIO, "fleet: cannot start the heartbeat thread");
	}
	*out = r;
	return 0;
}

static void revoke(co_fleet_reg *r)
{
	cJSON *resp = NULL;

	if (r->lease[0] && call1(&resp, r->f, "/v3/lease/revoke", "ID", r->lease) == 0)
		cJSON_Delete(resp);
}

void co_fleet_unregister(co_fleet_reg *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = 1;
	pthread_cond_broadcast(&r->wake);
	pthread_mutex_unlock(&r->lock);
	if (r->thread)
		pthread_join(r->thread, NULL);
	revoke(r);
	reg_free(r);
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const co_fleet_member *)a)->id, ((const co_fleet_member *)b)->id);
}

int co_fleet_members(co_fleet_member **out, size_t *n, co_fleet *f)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *kv;
	char *dir = malloc(strlen(f->prefix) + 9), *end = NULL;
	co_fleet_member *list = NULL;
	size_t count = 0, len;
	int error = CO_ENOMEM;

	if (!req || !dir) {
		co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	sprintf(dir, "%srouters/", f->prefix);
	len = strlen(dir);
	if ((end = malloc(len + 1)) == NULL) {
		co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(end, dir, len + 1);
	end[len - 1]++; /* "routers/" -> "routers0": every key under it */
	if ((error = co_fleet__add_key(req, "key", dir)) < 0 ||
	    (error = co_fleet__add_key(req, "range_end", end)) < 0 ||
	    (error = co_etcd_store_call(&resp, f->gw, "/v3/kv/range", req)) < 0)
		goto done;
	list = calloc((size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(resp, "kvs")) + 1,
		      sizeof *list);
	if (!list) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	cJSON_ArrayForEach(kv, cJSON_GetObjectItemCaseSensitive(resp, "kvs"))
	{
		char *text = co_b64_decode(co_fleet__str(kv, "value"), NULL);
		cJSON *o = text ? cJSON_Parse(text) : NULL;

		if (o)
			co_fleet__member_from_json(&list[count++], o);
		cJSON_Delete(o);
		free(text);
	}
	qsort(list, count, sizeof *list, by_id);
	*out = list;
	*n = count;
	list = NULL;
	error = 0;
done:
	free(list);
	free(dir);
	free(end);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

int co_fleet_status_json(void **out, co_fleet *f)
{
	co_fleet_member *m = NULL;
	cJSON *o = NULL, *arr;
	co_flags flags;
	int64_t epoch = 0;
	size_t n = 0, i;
	int error;

	if ((error = co_fleet_flags_get(&flags, &epoch, f)) < 0 ||
	    (error = co_fleet_members(&m, &n, f)) < 0)
		return error;
	if (!(o = cJSON_CreateObject()) ||
	    !cJSON_AddStringToObject(o, "flags_key", f->flags_key) ||
	    !cJSON_AddNumberToObject(o, "epoch", (double)epoch) ||
	    !cJSON_AddStringToObject(o, "stage", co_stage_name(co_stage_of(&flags))) ||
	    !cJSON_AddBoolToObject(o, "kill_switch", flags.kill_switch) ||
	    !(arr = cJSON_AddArrayToObject(o, "routers")))
		goto oom;
	for (i = 0; i < n; i++) {
		char *text = co_fleet_member_json(&m[i]);
		cJSON *r = text ? cJSON_Parse(text) : NULL;

		free(text);
		if (!r || !cJSON_AddBoolToObject(r, "behind", m[i].epoch < epoch) ||
		    !cJSON_AddItemToArray(arr, r)) {
			cJSON_Delete(r);
			goto oom;
		}
	}
	free(m);
	*out = o;
	return 0;
oom:
	free(m);
	cJSON_Delete(o);
	return co_error_set(CO_ENOMEM, "out of memory");
}
