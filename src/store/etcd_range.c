/*
 * etcd_range.c - reading everything under a prefix at one revision: paged
 * gateway ranges for `list`, and the scan a reconciliation streams (gRPC
 * Range pages decoded as they arrive, the gateway when an endpoint does
 * not speak gRPC) (etcd_private.h).
 */
#include "etcd_private.h"

#include "../core/error.h"
#include "etcd_grpc.h"

#include "../core/id.h"
#include "../core/record.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_PAGE 1000

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
		return co_etcd__oom();
	start_len = strlen(start);
	while (more) {
		cJSON_Delete(req);
		cJSON_Delete(resp);
		req = cJSON_CreateObject();
		resp = NULL;
		if (req == NULL || co_etcd__json_add_prefix_range(req, dir) < 0 ||
		    co_etcd__json_add_i64(req, "limit", limit) < 0 ||
		    (*rev > 0 && co_etcd__json_add_i64(req, "revision", *rev) < 0)) {
			error = co_etcd__oom();
			goto done;
		}
		/* Replace the key by where this page starts. */
		cJSON_DeleteItemFromObjectCaseSensitive(req, "key");
		if (co_etcd__json_add_b64(req, "key", start, start_len) < 0) {
			error = co_etcd__oom();
			goto done;
		}
		error = co_etcd__call(&resp, e, "/v3/kv/range", req);
		if (error == CO_ETOOBIG && limit > 1) {
			limit /= 2;
			continue;
		}
		if (error < 0)
			goto done;
		if (*rev == 0)
			*rev = co_etcd__json_i64(
			    cJSON_GetObjectItemCaseSensitive(resp, "header"), "revision");
		more = co_etcd__json_true(resp, "more");
		limit = page_limit(limit, co_etcd__json_i64(resp, "count"),
				   GATEWAY_PAGE_PARTS, GATEWAY_PAGE_MAX);
		kvs = cJSON_GetObjectItemCaseSensitive(resp, "kvs");
		cJSON_ArrayForEach(kv, kvs)
		{
			co_grpc_kv one;
			size_t klen = 0, vlen = 0;
			char *k =
			    co_b64_decode(co_etcd__json_str(kv, "key"), &klen);

			free(val);
			val = co_b64_decode(co_etcd__json_str(kv, "value"), &vlen);
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
			one.mod_revision = co_etcd__json_i64(kv, "mod_revision");
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

	if ((error = co_etcd__record_from_value(&r, c->e, kv->value, kv->value_len,
						kv->key)) < 0)
		return error;
	if (co_record_list_push(&c->l, r) < 0) {
		co_record_free(r);
		return co_etcd__oom();
	}
	return 0;
}

int co_etcd__list_at(co_record_list *out, int64_t *revision, struct etcd *e, co_kind kind)
{
	struct list_ctx c = {e, {0}};
	char *dir = co_etcd__key_for(e, co_kind_dir(kind), "");
	int64_t rev = 0;
	int error;

	if (dir == NULL)
		return co_etcd__oom();
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

int co_etcd__list(co_record_list *out, void *impl, co_kind kind)
{
	return co_etcd__list_at(out, NULL, impl, kind);
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
			return co_etcd__oom();
		c->last = p;
	}
	memcpy(c->last, kv->key, kv->key_len);
	c->last[kv->key_len] = '\0';
	c->last_len = kv->key_len + 1; /* key + "\0": just after it */
	return scan_one(ctx, kv);
}

/*
 * The keys under dir at *rev over gRPC, from the endpoint that answered
 * last, with one easy handle kept for the whole scan.  A page that cannot
 * reach its member moves on to the next endpoint and asks again from the
 * key after the last one passed on, at the same revision (a revision is
 * the cluster's, so no record is repeated or skipped); only when no member
 * answers does the scan fail.  *no_grpc is set when an endpoint answered
 * but not as a gRPC server (an HTTP/1 proxy, say): the caller then uses
 * the gateway.
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
	size_t at, moved = 0;

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
		return co_etcd__oom();
	c->last_len = n;
	if (*h == NULL) {
		if ((*h = curl_easy_init()) == NULL)
			return co_etcd__oom();
		co_etcd__handle_setup(*h, e);
		curl_easy_setopt(*h, CURLOPT_TIMEOUT_MS, (long)e->request_timeout_ms * 4);
	}
	pthread_mutex_lock(&e->lock);
	at = e->current;
	pthread_mutex_unlock(&e->lock);
	snprintf(endpoint, sizeof(endpoint), "%s", e->endpoints[at]);
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
		if ((error = co_etcd__token_get(&token, e)) < 0 ||
		    (error = co_grpc_range_encode(&req, &r)) < 0)
			goto done;
		if ((error = co_grpc_range_call(&reply, *h, endpoint, token, &req)) < 0) {
			/* This member is out of reach: the next one, from where
			 * the stream stopped (records already passed on are
			 * behind c->last). */
			if (error != CO_EUNAVAIL || ++moved >= e->n_endpoints)
				goto done;
			at = (at + 1) % e->n_endpoints;
			snprintf(endpoint, sizeof(endpoint), "%s", e->endpoints[at]);
			co_error_clear();
			continue;
		}
		if (reply.grpc_status < 0 || !reply.http2) {
			*no_grpc = 1;
			error = co_error_set(CO_EUNAVAIL,
					     "etcd %s: no gRPC answer (HTTP %ld)",
					     endpoint, reply.http);
			goto done;
		}
		if (reply.grpc_status == GRPC_UNAUTHENTICATED && e->user &&
		    attempt++ == 0) {
			co_etcd__token_drop(e, token);
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
		atomic_fetch_add(&e->grpc_pages, 1);
		moved = 0;
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
int co_etcd__scan(void *impl, unsigned flags, co_scan_fn fn, void *ctx)
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
		if ((dir = co_etcd__key_for(e, co_kind_dir(kinds[k]), "")) == NULL) {
			error = co_etcd__oom();
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
