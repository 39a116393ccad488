/*
 * fleet.c - the fleet's flags document in etcd (read, update by txn on the
 * epoch, mirror to the local file) and the fleet's part of the go/no-go
 * gate.  Membership is in fleet_members.c, the watch in fleet_watch.c, the
 * gateway client in fleet_gw.c.
 */
#include "router/fleet_private.h"

#include "core/b64.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/config.h"
#include "core/error.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
	curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int co_fleet_open(co_fleet **out, const co_fleet_opts *o)
{
	const char *prefix = o->prefix && *o->prefix ? o->prefix : "/cutover/";
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_fleet *f;
	char msg[512];
	int error;

	pthread_once(&curl_once, curl_init);
	if (curl_rc != CURLE_OK)
		return co_error_set(CO_EIO, "fleet: libcurl does not start");
	if (o->n_endpoints == 0 || !o->endpoints)
		return co_error_set(CO_EINVAL, "fleet: no etcd endpoint configured");
	if ((f = calloc(1, sizeof *f)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if (o->etcd)
		eo = *o->etcd;
	eo.endpoints = o->endpoints;
	eo.n_endpoints = o->n_endpoints;
	eo.prefix = NULL; /* the fleet's keys carry their own prefix */
	eo.request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 2000;
	eo.cache_entries = -1; /* the fleet's keys are not records */
	if ((error = co_etcd_store_open(&f->gw, &eo)) < 0) {
		snprintf(msg, sizeof msg, "%s", co_error_last());
		co_fleet_close(f);
		return co_error_set(error, "fleet: %s", msg);
	}
	if ((f->prefix = malloc(strlen(prefix) + 2)) == NULL ||
	    (f->flags_key = malloc(strlen(prefix) + 8)) == NULL) {
		co_fleet_close(f);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	/* the prefix ends with '/' so that keys read as paths */
	sprintf(f->prefix, "%s%s", prefix, prefix[strlen(prefix) - 1] == '/' ? "" : "/");
	sprintf(f->flags_key, "%sflags", f->prefix);
	*out = f;
	return 0;
}

void co_fleet_close(co_fleet *f)
{
	if (!f)
		return;
	co_store_free(f->gw);
	free(f->prefix);
	free(f->flags_key);
	free(f);
}

const char *co_fleet_flags_key(const co_fleet *f)
{
	return f->flags_key;
}

int co_fleet_flags_key_for(char *buf, size_t len, const char *prefix)
{
	size_t n;
	int w;

	if (!prefix || !*prefix)
		prefix = "/cutover/";
	n = strlen(prefix);
	w = snprintf(buf, len, "%s%sflags", prefix, prefix[n - 1] == '/' ? "" : "/");
	if (w < 0 || (size_t)w >= len)
		return co_error_set(CO_EINVAL, "fleet: prefix too long: %s", prefix);
	return 0;
}

int co_fleet__flags_from_kv(co_flags *out, int64_t *epoch, const co_fleet *f,
			    const cJSON *kv)
{
	char *text;
	size_t len;
	int error;

	if (!kv) {
		co_flags_init(out);
		*epoch = 0;
		return 0;
	}
	if ((text = co_b64_decode(co_fleet__str(kv, "value"), &len)) == NULL)
		return co_error_set(CO_EINVAL, "%s: value is not base64", f->flags_key);
	error = co_flags_parse(out, text, len, f->flags_key);
	free(text);
	if (error == 0)
		*epoch = out->fleet_epoch = co_fleet__i64(kv, "mod_revision");
	return error;
}

int co_fleet_flags_get(co_flags *out, int64_t *epoch, co_fleet *f)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL;
	co_flags got;
	int64_t ep = 0;
	int error;

	if (!req)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((error = co_fleet__add_key(req, "key", f->flags_key)) < 0 ||
	    (error = co_etcd_store_call(&resp, f->gw, "/v3/kv/range", req)) < 0)
		goto done;
	error = co_fleet__flags_from_kv(
	    &got, &ep, f, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "kvs"), 0));
	if (error == 0) {
		*out = got;
		if (epoch)
			*epoch = ep;
	}
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* The txn: put `text` if the key's mod_revision is still `epoch` (0: absent).
 * 0 with *now the new epoch, CO_ERETRY if the compare failed. */
static int put_if_epoch(int64_t *now, co_fleet *f, const char *text, int64_t epoch)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *cmp, *c, *succ, *op, *put;
	char rev[32], *val = co_b64_encode(text, strlen(text));
	int error = CO_ENOMEM;

	snprintf(rev, sizeof rev, "%lld", (long long)epoch);
	if (!req || !val || !(cmp = cJSON_AddArrayToObject(req, "compare")) ||
	    !(c = cJSON_CreateObject()) || !cJSON_AddItemToArray(cmp, c) ||
	    co_fleet__add_key(c, "key", f->flags_key) < 0 ||
	    !cJSON_AddStringToObject(c, "result", "EQUAL") ||
	    !cJSON_AddStringToObject(c, "target", epoch ? "MOD" : "CREATE") ||
	    !cJSON_AddStringToObject(c, epoch ? "mod_revision" : "create_revision", rev) ||
	    !(succ = cJSON_AddArrayToObject(req, "success")) ||
	    !(op = cJSON_CreateObject()) || !cJSON_AddItemToArray(succ, op) ||
	    !(put = cJSON_AddObjectToObject(op, "request_put")) ||
	    co_fleet__add_key(put, "key", f->flags_key) < 0 ||
	    !cJSON_AddStringToObject(put, "value", val)) {
		co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = co_etcd_store_call(&resp, f->gw, "/v3/kv/txn", req)) < 0)
		goto done;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "succeeded"))) {
		error = co_error_set(CO_ERETRY, "%s: epoch %lld moved on", f->flags_key,
				     (long long)epoch);
		goto done;
	}
	*now = co_fleet__i64(cJSON_GetObjectItemCaseSensitive(resp, "header"), "revision");
	error = 0;
done:
	free(val);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* The document as etcd keeps it: its epoch is the key's mod_revision, so
 * a mirrored file's fleet_epoch is never written into it. */
static int format_doc(char **text, const co_flags *doc)
{
	co_flags d = *doc;

	d.fleet_epoch = 0;
	return co_flags_format(text, &d);
}

int co_fleet_flags_put_if(int64_t *now, co_fleet *f, const co_flags *doc, int64_t epoch)
{
	char *text = NULL;
	int64_t at = 0;
	int error;

	if ((error = format_doc(&text, doc)) < 0)
		return error;
	error = put_if_epoch(&at, f, text, epoch);
	free(text);
	if (error == 0 && now)
		*now = at;
	return error;
}

int co_fleet_flags_update(co_flags *out, int64_t *epoch, co_fleet *f,
			  co_fleet_edit_fn edit, void *ctx)
{
	int tries;

	for (tries = 0; tries < CO_FLEET_UPDATE_TRIES; tries++) {
		co_flags cur, next;
		int64_t ep, now = 0;
		char *text = NULL;
		int error;

		if ((error = co_fleet_flags_get(&cur, &ep, f)) < 0)
			return error;
		next = cur;
		if ((error = edit(ctx, &next)) < 0)
			return error;
		if (error == 1 || co_flags_equal(&cur, &next)) {
			if (out)
				*out = cur;
			if (epoch)
				*epoch = ep;
			return 0;
		}
		if ((error = format_doc(&text, &next)) < 0)
			return error;
		error = put_if_epoch(&now, f, text, ep);
		free(text);
		if (error == CO_ERETRY)
			continue; /* another writer landed first: re-apply on theirs */
		if (error < 0)
			return error;
		next.fleet_epoch = now;
		if (out)
			*out = next;
		if (epoch)
			*epoch = now;
		return 0;
	}
	return co_error_set(CO_ECONFLICT,
			    "%s: lost the epoch race %d times in a row; nothing written",
			    f->flags_key, CO_FLEET_UPDATE_TRIES);
}

struct co_fleet_mirror {
	const char *path;
	co_flags_watcher *w;
	pthread_mutex_t lock;
	co_flags last; /* the document last saved, under lock */
	int has_last;
	int64_t epoch;
};

int co_fleet_mirror_new(co_fleet_mirror **out, const char *path, co_flags_watcher *w)
{
	co_fleet_mirror *m = calloc(1, sizeof *m);

	if (!m)
		return co_error_set(CO_ENOMEM, "out of memory");
	m->path = path;
	m->w = w;
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return 0;
}

void co_fleet_mirror_free(co_fleet_mirror *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void co_fleet_mirror_apply(void *ctx, const co_flags *flags, int64_t epoch)
{
	co_fleet_mirror *m = ctx;
	co_flags local, next = *flags;
	int same = 0;

	next.fleet_epoch = epoch; /* what the router fences its etcd writes on */
	pthread_mutex_lock(&m->lock);
	if (co_flags_load(&local, m->path) == 0) {
		/* a local trip since the last document stays */
		if (local.kill_switch && !flags->kill_switch &&
		    !(m->has_last && co_flags_equal(&local, &m->last)))
			co_flags_set_kill(&next, 1, local.kill_reason);
		same = co_flags_equal(&local, &next);
	}
	if (same || co_flags_save(&next, m->path) == 0) {
		m->last = next;
		m->has_last = 1;
		if (m->w)
			co_flags_watcher_reload(m->w);
		m->epoch = epoch;
	}
	pthread_mutex_unlock(&m->lock);
}

int co_fleet_mirror_local_trip(co_fleet_mirror *m, co_flags *local)
{
	int trip;

	pthread_mutex_lock(&m->lock);
	trip = co_flags_load(local, m->path) == 0 && local->kill_switch &&
	       !(m->has_last && m->last.kill_switch);
	pthread_mutex_unlock(&m->lock);
	co_error_clear();
	return trip;
}

int64_t co_fleet_mirror_epoch(co_fleet_mirror *m)
{
	int64_t e;

	pthread_mutex_lock(&m->lock);
	e = m->epoch;
	pthread_mutex_unlock(&m->lock);
	return e;
}

int co_fleet_gate(const co_fleet_member *m, size_t n, int64_t epoch,
		  long max_outbox_age_ms)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (m[i].epoch < epoch)
			return co_error_set(CO_ECONFLICT,
					    "router %s (%s pid %ld) routes by flags epoch "
					    "%lld, the fleet is at %lld: wait until it "
					    "has the change (cutover status --fleet)",
					    m[i].id, m[i].host, m[i].pid,
					    (long long)m[i].epoch, (long long)epoch);
		if (max_outbox_age_ms > 0 && m[i].outbox_age_ms > max_outbox_age_ms)
			return co_error_set(CO_ECONFLICT,
					    "router %s (%s pid %ld) has an outbox %ld ms "
					    "old (%ld entries), over the bound of %ld ms",
					    m[i].id, m[i].host, m[i].pid, m[i].outbox_age_ms,
					    m[i].outbox_depth, max_outbox_age_ms);
	}
	return 0;
}

void co_fleet_flags_delta(co_flags *cur, const co_flags *from, const co_flags *to)
{
	int op;

	if (from->kill_switch != to->kill_switch ||
	    strcmp(from->kill_reason, to->kill_reason) != 0)
		co_flags_set_kill(cur, to->kill_switch, to->kill_reason);
	if (from->def.mode != to->def.mode || from->def.etcd_percent != to->def.etcd_percent)
		cur->def = to->def;
	for (op = 0; op < CO_OP__COUNT; op++) {
		if (from->has_op[op] == to->has_op[op] &&
		    (!to->has_op[op] || (from->ops[op].mode == to->ops[op].mode &&
					 from->ops[op].etcd_percent == to->ops[op].etcd_percent)))
			continue;
		cur->has_op[op] = to->has_op[op];
		cur->ops[op] = to->ops[op];
	}
	if (from->mirror_sync != to->mirror_sync)
		cur->mirror_sync = to->mirror_sync;
	if (memcmp(&from->completed, &to->completed, sizeof to->completed) != 0)
		cur->completed = to->completed;
	memcpy(cur->updated_at, to->updated_at, sizeof cur->updated_at);
	memcpy(cur->updated_by, to->updated_by, sizeof cur->updated_by);
}

typedef struct delta {
	const co_flags *from, *to;
} delta;

static int apply_delta(void *ctx, co_flags *cur)
{
	const delta *d = ctx;

	co_fleet_flags_delta(cur, d->from, d->to);
	return 0;
}

int co_fleet_flags_commit(co_flags *out, int64_t *epoch, co_fleet *f, const co_flags *from,
			  const co_flags *to)
{
	delta d = {from, to};

	return co_fleet_flags_update(out, epoch, f, apply_delta, &d);
}

int co_fleet_flags_commit_file(co_fleet *f, const char *path, const co_flags *from,
			       co_flags *to, int kill, char *warn, size_t warn_len)
{
	co_flags after;
	int64_t epoch = 0;
	int error;

	if (warn && warn_len)
		warn[0] = '\0';
	if (kill && (error = co_flags_save_kill(to, from, path)) < 0)
		return error;
	error = f ? co_fleet_flags_commit(&after, &epoch, f, from, to)
		  : co_error_set(CO_EUNAVAIL, "fleet: no etcd handle");
	if (error < 0 && kill) {
		if (warn && warn_len)
			snprintf(warn, warn_len,
				 "kill switch pulled in %s, but not in the fleet's flags "
				 "in etcd: %s (`cutover rollback --fleet` reaches every "
				 "registered router without etcd)",
				 path, co_error_last());
		co_error_clear();
		return 0;
	}
	if (error < 0)
		return co_error_set(error, "fleet flags not changed: %s", co_error_last());
	/* a kill switch on here and left alone by the change stays on here */
	if (from->kill_switch && to->kill_switch && !after.kill_switch)
		co_flags_set_kill(&after, 1, from->kill_reason);
	if ((error = co_flags_save(&after, path)) < 0)
		return co_error_set(error,
				    "fleet flags changed in etcd (the routers get them), "
				    "but not in the local file: %s",
				    co_error_last());
	*to = after;
	return 0;
}

int co_fleet_open_config(co_fleet **out, const co_config *c)
{
	co_fleet_opts o = {0};
	co_etcd_opts eo;

	*out = NULL;
	if (!c->fleet_enabled)
		return 0;
	co_etcd_opts_from_config(&eo, c);
	o.endpoints = eo.endpoints;
	o.n_endpoints = eo.n_endpoints;
	o.prefix = c->fleet_prefix;
	o.request_timeout_ms = c->etcd_request_timeout_ms;
	o.etcd = &eo;
	return co_fleet_open(out, &o);
}

void co_fleet_gate_read(char *why, size_t len, co_fleet *f, long max_outbox_age_ms)
{
	co_fleet_member *m = NULL;
	co_flags cur;
	int64_t epoch = 0;
	size_t n = 0;

	why[0] = '\0';
	if (co_fleet_flags_get(&cur, &epoch, f) < 0 || co_fleet_members(&m, &n, f) < 0) {
		snprintf(why, len, "fleet: cannot read the routers' epochs: %s",
			 co_error_last());
		return;
	}
	if (co_fleet_gate(m, n, epoch, max_outbox_age_ms) < 0)
		snprintf(why, len, "%s", co_error_last());
	free(m);
	co_error_clear();
}
