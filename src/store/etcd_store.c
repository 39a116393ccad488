/*
 * etcd_store.c - the new store: etcd v3 through its JSON gateway (DESIGN §2).
 *
 * Every operation is one HTTP POST of a JSON body to /v3/... with libcurl,
 * parsed with cJSON.  The store only provides the backend primitives of
 * store_backend.h (get, compare-and-swap, list, watch); the rules live in
 * store_cas.c.  The compare-and-swap is an etcd txn comparing the key's
 * mod_revision as read before (create_revision 0 for "must be absent"), so
 * etcd itself picks the single winner of a race.  A claimed task with a TTL
 * also gets <prefix>claims/<id> under an etcd lease in the same txn, so that
 * etcd-native tooling sees the claim expire; the record's claim_expires_at
 * stays the truth (store_cas.c applies the expiry rule) and the claims key is
 * removed by any write of the task that does not carry such a claim.
 *
 * Quirks of the 3.4 gateway this code relies on (DESIGN appendix): keys and
 * values are padded base64; int64 fields come as JSON strings (lease IDs
 * exceed a double's precision, so they are kept as strings); fields at
 * their default value are omitted (a failed txn has no "succeeded", an empty
 * range no "kvs", a PUT event no "type"); errors come as {"error","code",
 * "message"} with the gRPC code.
 *
 * Connections are reused: curl easy handles sit in a small pool guarded by
 * the store's mutex, one handle per request in flight.  With several
 * endpoints a request that fails at the connection level moves on to the
 * next one, and the store remembers which endpoint answered last.  Re-sending
 * a txn after an unknown outcome is safe: its compare fails if the first copy
 * was applied; the txn then reads the key back, and finding it exactly as the
 * txn would have left it, reports the write as done (applied_before);
 * otherwise store_cas.c re-reads and decides again.

 *
 * A renew or release revokes the claim's previous lease (read back in the
 * same txn), so leases do not pile up.  Not done here: lease keep-alive
 * (a renew grants a new lease instead), and etcd's own lock API (unsafe per
 * Jepsen; plain txns are strict serializable).
 *
 * The other parts of the store: etcd_http.c (the transport), etcd_batch.c,
 * etcd_range.c and etcd_watch.c (etcd_private.h).
 */
#include "etcd_store.h"

#include "etcd_grpc.h"
#include "etcd_private.h"

#include "store_backend.h"

#include "../core/config.h"
#include "../core/error.h"
#include "../core/id.h"
#include "../core/record.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/rand.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- records ---- */

/* Parse a stored value into a record; errors name the key. */
int co_etcd__record_from_value(co_record **out, const struct etcd *e, const char *val,
			       size_t len, const char *key)
{
	co_record *r = NULL;
	int error;

	if ((error = co_record_from_json(&r, val, len)) < 0)
		return co_error_set(error, "etcd %s: key %s: %s", e->describe, key,
				    co_error_last());
	*out = r;
	return 0;
}

int co_etcd__key_parse(const struct etcd *e, const char *key, co_kind *kind,
		       const char **id)
{
	size_t plen = strlen(e->prefix);
	const char *rest = key + plen;

	if (strncmp(key, e->prefix, plen) != 0)
		return -1;
	if (strncmp(rest, "tasks/", 6) == 0) {
		*kind = CO_KIND_TASK;
		*id = rest + 6;
	} else if (strncmp(rest, "swarms/", 7) == 0) {
		*kind = CO_KIND_SWARM;
		*id = rest + 7;
	} else {
		return -1;
	}
	if (co_id_validate(*id) < 0) {
		co_error_clear();
		return -1;
	}
	return 0;
}

/* The same for a gateway kv, whose value is base64. */
int co_etcd__record_from_kv(co_record **out, const struct etcd *e, const cJSON *kv,
			    const char *key)
{
	size_t len = 0;
	char *val = co_b64_decode(co_etcd__json_str(kv, "value"), &len);
	int error;

	if (val == NULL)
		return co_error_set(CO_EINVAL, "etcd %s: key %s: value is not base64",
				    e->describe, key);
	error = co_etcd__record_from_value(out, e, val, len, key);
	free(val);
	return error;
}

/* The revision of a response's header: what etcd held when it answered. */
int64_t co_etcd__header_rev(const cJSON *resp)
{
	return co_etcd__json_i64(cJSON_GetObjectItemCaseSensitive(resp, "header"),
				 "revision");
}

int co_etcd__get(co_record **out, co_version *ver, void *impl, co_kind kind,
		 const char *id)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *kvs;
	co_record *r = NULL;
	char *key = co_etcd__key_for(e, co_kind_dir(kind), id);
	int error;

	ver->v[0] = '\0';
	if (req == NULL || key == NULL ||
	    co_etcd__json_add_b64(req, "key", key, strlen(key)) < 0) {
		error = co_etcd__oom();
		goto done;
	}
	if ((error = co_etcd__call(&resp, e, "/v3/kv/range", req)) < 0)
		goto done;
	kvs = cJSON_GetObjectItemCaseSensitive(resp, "kvs");
	if (!cJSON_IsArray(kvs) || cJSON_GetArraySize(kvs) == 0) {
		co_etcd__cache_note(e->cache, kind, id, NULL, co_etcd__header_rev(resp));
		error =
		    co_error_set(CO_ENOTFOUND, "%s %s not found", co_kind_name(kind), id);
		goto done;
	}
	if ((error = co_etcd__record_from_kv(&r, e, cJSON_GetArrayItem(kvs, 0), key)) < 0)
		goto done;
	if (r->kind != kind || strcmp(r->id, id) != 0) {
		error = co_error_set(CO_EINVAL, "etcd %s: key %s holds %s %s",
				     e->describe, key, co_kind_name(r->kind), r->id);
		goto done;
	}
	snprintf(ver->v, sizeof(ver->v), "%s",
		 co_etcd__json_str(cJSON_GetArrayItem(kvs, 0), "mod_revision"));
	co_etcd__cache_note(e->cache, kind, id, r,
			    co_etcd__json_i64(cJSON_GetArrayItem(kvs, 0), "mod_revision"));
	*out = r;
	r = NULL;
done:
	co_record_free(r);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	free(key);
	return error;
}

/* Grant a lease of ttl seconds; its ID (a string: it exceeds a double). */
static int lease_grant(char *id, size_t len, struct etcd *e, int64_t ttl)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL;
	int error;

	if (req == NULL || co_etcd__json_add_i64(req, "TTL", ttl) < 0) {
		error = co_etcd__oom();
		goto done;
	}
	if ((error = co_etcd__call(&resp, e, "/v3/lease/grant", req)) < 0)
		goto done;
	if (!co_etcd__json_str(resp, "ID")[0]) {
		error = co_error_set(CO_EUNAVAIL, "etcd %s: lease grant: %s", e->describe,
				     co_etcd__json_str(resp, "error")[0]
					 ? co_etcd__json_str(resp, "error")
					 : "no lease ID");
		goto done;
	}
	snprintf(id, len, "%s", co_etcd__json_str(resp, "ID"));
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* Best effort: a lease nobody uses would expire on its own anyway. */
void co_etcd__lease_revoke(struct etcd *e, const char *id)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL;

	if (req && cJSON_AddStringToObject(req, "ID", id))
		co_etcd__call(&resp, e, "/v3/lease/revoke", req);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	co_error_clear();
}

/* Whether writing r puts <prefix>claims/<id> under a lease (co_etcd__cas). */
int co_etcd__wants_lease(const co_record *r)
{
	return r && r->kind == CO_KIND_TASK && r->status == CO_STATUS_CLAIMED &&
	       r->owner && r->claim_expires_at > 0;
}

/*
 * A batch's claims share leases: one per distinct claim_expires_at, with
 * that claim's TTL, so a claims key still goes when its claim runs out.
 * Their IDs are chosen here (etcd takes a requested ID) and carry a mark
 * in the top 16 bits, so that co_etcd__cas, which revokes the lease a claims
 * key held before it is replaced, leaves a shared one alone: revoking it
 * would drop the other claims keys under it.  A lease etcd itself numbered
 * can carry the mark only where a member's ID ends in those 16 bits; it is
 * then left to run out at its TTL, which is all that costs.
 */

int co_etcd__is_batch_lease(const char *id)
{
	char *end;
	unsigned long long v = strtoull(id, &end, 10);

	return *end == '\0' && (v >> 48) == BATCH_LEASE_MARK;
}

int co_etcd__cas(void *impl, co_kind kind, const char *id, const co_record *r,
		 const co_version *expected, const char *why)
{
	return co_etcd__cas_read(impl, kind, id, r, expected, why, NULL, NULL, NULL,
				 NULL);
}

/* cas_txn's answer when a lean txn found a claims key after all. */
#define CLAIMS_KEY_FOUND 1

/*
 * One compare-and-swap txn.  `lean`: the claims key is believed absent, so
 * instead of reading it (for its old lease) and deleting it, the txn
 * compares that it is absent; CLAIMS_KEY_FOUND when only that compare
 * failed, for the caller to send the full txn.
 */
/*
 * The txn of one write, described once (co_grpc_txn) and sent over gRPC
 * or as the gateway's JSON by co_etcd__txn_call(): a cJSON tree of it was
 * a visible part of a cached claim's client CPU (bench_claim).
 */
static int cas_txn(struct etcd *e, co_kind kind, const char *id, const co_record *r,
		   const co_version *expected, int lean, co_record **cur,
		   co_version *cur_ver, int *fresh)
{
	cJSON *resp = NULL;
	char *key = co_etcd__key_for(e, co_kind_dir(kind), id),
	     *ckey = co_etcd__key_for(e, "claims", id);
	char *val = NULL, lease[32] = "";
	const char *fkey = NULL;
	int64_t fepoch = 0, exp_rev = 0, lease_id = 0;
	int error, fenced = co_store__fence(&fkey, &fepoch);
	int with_lease = kind == CO_KIND_TASK && co_etcd__wants_lease(r);
	co_grpc_compare cmp[3];
	co_grpc_op ok[4], bad[2];
	co_grpc_txn txn = {cmp, 0, ok, bad, 0, 0};

	lean = lean && kind == CO_KIND_TASK;
	if (fresh)
		*fresh = 0;
	if (key == NULL || ckey == NULL || (r && (val = co_record_to_json(r, 0)) == NULL)) {
		error = co_etcd__oom();
		goto done;
	}
	if (expected->v[0] && co_etcd__parse_i64(&exp_rev, expected->v) < 0) {
		error = co_error_set(CO_EINVAL, "etcd %s: bad version \"%s\"", key, expected->v);
		goto done;
	}
	if (with_lease) {
		int64_t ttl = r->claim_expires_at - co_time_now();

		if ((error = lease_grant(lease, sizeof(lease), e, ttl < 1 ? 1 : ttl)) < 0)
			goto done;
		if (co_etcd__parse_i64(&lease_id, lease) < 0) {
			error = co_error_set(CO_EUNAVAIL, "etcd %s: odd lease id \"%s\"",
					     e->describe, lease);
			goto done;
		}
	}
	memset(cmp, 0, sizeof(cmp));
	memset(ok, 0, sizeof(ok));
	memset(bad, 0, sizeof(bad));
#define CMP(k, tgt, n)                                                                  \
	(cmp[txn.n_compare].result = CO_GRPC_EQUAL, cmp[txn.n_compare].target = (tgt),  \
	 cmp[txn.n_compare].key = (k), cmp[txn.n_compare].key_len = strlen(k),          \
	 cmp[txn.n_compare++].number = (n))
#define OP(list, cnt, t, k)                                                             \
	(list[cnt].type = (t), list[cnt].key = (k), list[cnt].key_len = strlen(k), cnt++)

	/* Compare: the key is as we read it, or absent (never created); the
	 * fence's key is at its epoch; (lean) no claims key was left. */
	if (expected->v[0])
		CMP(key, CO_GRPC_CMP_MOD, exp_rev);
	else
		CMP(key, CO_GRPC_CMP_CREATE, 0);
	if (fenced)
		CMP(fkey, CO_GRPC_CMP_MOD, fepoch);
	if (lean)
		CMP(ckey, CO_GRPC_CMP_CREATE, 0);

	/* Success: the record, and the claims key following it. */
	if (r) {
		ok[txn.n_success].value = val;
		ok[txn.n_success].value_len = strlen(val);
		OP(ok, txn.n_success, CO_GRPC_OP_PUT, key);
	} else {
		OP(ok, txn.n_success, CO_GRPC_OP_DELETE, key);
	}
	if (kind == CO_KIND_TASK) {
		/*
		 * Read the claims key before replacing it: its old lease (a
		 * renewed or released claim) has no further use and is revoked
		 * after the txn, rather than lingering until its TTL.  Ops in a
		 * txn run in order, so this range sees the state before.
		 */
		if (!lean)
			OP(ok, txn.n_success, CO_GRPC_OP_RANGE, ckey);
		if (with_lease) {
			ok[txn.n_success].value = r->owner;
			ok[txn.n_success].value_len = strlen(r->owner);
			ok[txn.n_success].lease = lease_id;
			OP(ok, txn.n_success, CO_GRPC_OP_PUT, ckey);
		} else if (!lean) {
			OP(ok, txn.n_success, CO_GRPC_OP_DELETE, ckey);
		}
	}

	/* Failure: read the key back, for co_etcd__applied_before() and for the
	 * caller to decide again from (cas_read) without another read; and the
	 * fence's key: which of the compares failed. */
	OP(bad, txn.n_failure, CO_GRPC_OP_RANGE, key);
	if (fenced) {
		bad[txn.n_failure].keys_only = 1;
		OP(bad, txn.n_failure, CO_GRPC_OP_RANGE, fkey);
	}
#undef CMP
#undef OP

	if ((error = co_etcd__txn_call(&resp, e, &txn)) < 0) {
		/*
		 * Without an answer the txn may have been applied with the
		 * lease attached: keep the lease, it runs out by itself.
		 */
		if (error == CO_EUNAVAIL)
			lease[0] = '\0';
		goto done;
	}
	/* A failed txn has no "succeeded" field at all (default false). */
	if (!co_etcd__json_true(resp, "succeeded")) {
		if (fenced && !co_etcd__applied_before(resp, val) &&
		    (error = co_etcd__fence_moved(resp, e, fkey, fepoch)) < 0)
			goto done;
		if (lean && !co_etcd__applied_before(resp, val) &&
		    co_etcd__key_unchanged(resp, expected)) {
			error = CLAIMS_KEY_FOUND; /* lease[0] is revoked below */
			goto done;
		}
		if (!co_etcd__applied_before(resp, val)) {
			if (cur && (error = co_etcd__failure_read(cur, cur_ver, e, resp, kind, id,
							 key)) < 0)
				goto done;
			if (cur)
				*fresh = 1;
			else
				co_etcd__cache_note(e->cache, kind, id, NULL, INT64_MAX);
			error = CO_ERETRY;
			co_error_set(CO_ERETRY, "etcd %s: %s changed meanwhile",
				     e->describe, key);
			goto done;
		}
		co_etcd__cache_note(e->cache, kind, id, NULL, INT64_MAX); /* forget */
		/* An earlier copy of this txn did it; its old lease, if any,
		 * runs out by itself. */
		lease[0] = '\0';
		error = 0;
		goto done;
	}
	lease[0] = '\0'; /* now in use */
	/* The txn's revision is the written key's mod_revision. */
	co_etcd__cache_note(e->cache, kind, id, r, co_etcd__header_rev(resp));
	if (kind == CO_KIND_TASK && !lean) {
		/* responses[1] is the range of the claims key, as it was. */
		const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetArrayItem(
			cJSON_GetObjectItemCaseSensitive(resp, "responses"), 1),
		    "response_range");
		const char *old = co_etcd__json_str(
		    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0),
		    "lease");

		if (old[0] && strcmp(old, "0") != 0 && !co_etcd__is_batch_lease(old))
			co_etcd__lease_revoke(e, old);
	}
	error = 0;
done:
	if (lease[0]) {
		int saved = co_error_last_code();
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s", co_error_last());
		co_etcd__lease_revoke(e, lease);
		co_error_set(saved, "%s", msg);
	}
	cJSON_Delete(resp);
	free(key);
	free(ckey);
	free(val);
	return error;
}

/*
 * The claims key is believed absent when the record replaced held no
 * lease (or there was none): every write of a task without a leased claim
 * removes it.  The txn's compare checks the belief rather than trusting
 * it -- a foreign writer, or a lease the record's normalised copy no longer
 * shows -- and a wrong belief costs one more txn, never a wrong write.
 */
int co_etcd__cas_read(void *impl, co_kind kind, const char *id, const co_record *r,
		      const co_version *expected, const char *why, const co_record *prev,
		      co_record **cur, co_version *cur_ver, int *fresh)
{
	struct etcd *e = impl;
	int lean = expected->v[0] == '\0' || (prev && !co_etcd__wants_lease(prev));
	int error;

	(void)why;
	error = cas_txn(e, kind, id, r, expected, lean, cur, cur_ver, fresh);
	if (error == CLAIMS_KEY_FOUND)
		error = cas_txn(e, kind, id, r, expected, 0, cur, cur_ver, fresh);
	return error;
}

static int etcd_ping(void *impl)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL;
	int error;

	if (req == NULL || co_etcd__json_add_prefix_range(req, e->prefix) < 0 ||
	    co_etcd__json_add_i64(req, "limit", 1) < 0 ||
	    !cJSON_AddTrueToObject(req, "keys_only")) {
		error = co_etcd__oom();
		goto done;
	}
	error = co_etcd__call(&resp, e, "/v3/kv/range", req);
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* ---- the store ---- */

/* Which struct etcd belongs to which co_store, for co_etcd_store_list_at(). */
static const char *etcd_describe(void *impl)
{
	return ((struct etcd *)impl)->describe;
}

static void etcd_free(void *impl)
{
	struct etcd *e = impl;
	size_t i;

	if (e == NULL)
		return;
	co_etcd__cache_free(e->cache); /* its thread uses the pool */
	co_etcd__h2_free(e->h2);
	for (i = 0; i < e->n_pool; i++)
		curl_easy_cleanup(e->pool[i]);
	for (i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	free(e->endpoints);
	free(e->prefix);
	free(e->user);
	free(e->password);
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	free(e->describe);
	free(e->token);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static int etcd_cached_get(co_record **out, co_version *ver, void *impl, co_kind kind,
			   const char *id)
{
	struct etcd *e = impl;

	if (e->cache == NULL)
		return -1;
	return co_etcd__cache_get(out, ver, e->cache, kind, id);
}

static const co_store_backend etcd_backend = {
    .name = "etcd",
    .get = co_etcd__get,
    .cas = co_etcd__cas,
    .cas_read = co_etcd__cas_read,
    .cached_get = etcd_cached_get,
    .cas_many = co_etcd__cas_many,
    .cas_many_max = TXN_OPS_MAX / 2,
    .get_many = co_etcd__get_many,
    .list = co_etcd__list,
    .scan = co_etcd__scan,
    .ping = etcd_ping,
    .watch_open = co_etcd__watch_open,
    .watch_next = co_etcd__watch_next,
    .watch_close = co_etcd__watch_close,
    .describe = etcd_describe,
    .free = etcd_free,
};

/*
 * The record cache as opts and the environment say (co_etcd_opts): its
 * size, or none.  CO_EINVAL names a CUTOVER_ETCD_CACHE that is neither
 * "off" nor a number.
 */
static int cache_open(struct etcd *e, long entries)
{
	const char *env = getenv("CUTOVER_ETCD_CACHE");
	char *end;

	if (entries == 0 && env && *env) {
		if (strcmp(env, "off") == 0)
			entries = -1;
		else {
			errno = 0;
			entries = strtol(env, &end, 10);
			if (errno || *end || entries < 0)
				return co_error_set(CO_EINVAL,
						    "CUTOVER_ETCD_CACHE=\"%s\": want \"off\" "
						    "or a number of records",
						    env);
			if (entries == 0)
				entries = -1;
		}
	}
	if (entries < 0)
		return 0;
	return co_etcd__cache_new(&e->cache, e, entries ? (size_t)entries : 50000);
}

static int dup_opt(char **out, const char *s)
{
	*out = NULL;
	if (s && (*out = strdup(s)) == NULL)
		return -1;
	return 0;
}

int co_etcd_store_open(co_store **out, const co_etcd_opts *opts)
{
	struct etcd *e = NULL;
	co_store *s = NULL;
	struct buf d = {0};
	size_t i;
	int error;

	if (co_etcd__curl_ready() < 0)
		return co_error_set(CO_EUNAVAIL, "etcd: libcurl did not initialise");
	if (opts == NULL || opts->n_endpoints == 0 || opts->endpoints == NULL)
		return co_error_set(CO_EINVAL, "etcd: no endpoints configured");
	for (i = 0; i < opts->n_endpoints; i++) {
		const char *ep = opts->endpoints[i];

		if (ep == NULL ||
		    (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) ||
		    strlen(ep) > 400)
			return co_error_set(
			    CO_EINVAL, "etcd: endpoint \"%s\" is not http(s)://host:port",
			    ep ? ep : "");
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return co_etcd__oom();
	pthread_mutex_init(&e->lock, NULL);
	if ((e->endpoints = calloc(opts->n_endpoints, sizeof(*e->endpoints))) == NULL)
		goto nomem;
	for (i = 0; i < opts->n_endpoints; i++) {
		size_t n;

		if ((e->endpoints[i] = strdup(opts->endpoints[i])) == NULL)
			goto nomem;
		e->n_endpoints++;
		n = strlen(e->endpoints[i]);
		while (n > 0 && e->endpoints[i][n - 1] == '/')
			e->endpoints[i][--n] = '\0';
		if (co_etcd__buf_add(&d, i ? "," : "", i ? 1 : 0) < 0 ||
		    co_etcd__buf_add(&d, e->endpoints[i], n) < 0)
			goto nomem;
	}
	e->describe = d.p;
	d.p = NULL;
	if (dup_opt(&e->prefix, opts->prefix ? opts->prefix : "/") < 0 ||
	    dup_opt(&e->user, opts->user) < 0 ||
	    dup_opt(&e->password, opts->password) < 0 ||
	    dup_opt(&e->ca_file, opts->ca_file) < 0 ||
	    dup_opt(&e->cert_file, opts->cert_file) < 0 ||
	    dup_opt(&e->key_file, opts->key_file) < 0)
		goto nomem;
	e->connect_timeout_ms =
	    opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 1000;
	e->request_timeout_ms =
	    opts->request_timeout_ms > 0 ? opts->request_timeout_ms : 5000;
	/* A page is held whole in memory: 10000 records are ~3 MB. */
	e->scan_page = opts->scan_page > 0 ? opts->scan_page : 10000;
	/* Over gRPC the first page is large too: the range's size is not
	 * known yet, and a small first page costs a walk of the whole range
	 * for a few keys (page_limit). */
	e->grpc_first_page = opts->scan_page > 0 ? opts->scan_page : GRPC_PAGE_MAX;
	e->watch_idle_ms = opts->watch_idle_ms > 0 ? opts->watch_idle_ms : 2000;
	if ((error = co_etcd__h2_new(&e->h2, e)) < 0 ||
	    (error = cache_open(e, opts->cache_entries)) < 0) {
		etcd_free(e);
		return error;
	}
	if ((error = co_store__new(&s, &etcd_backend, e)) < 0)
		return error; /* co_store__new freed e */
	*out = s;
	return 0;
nomem:
	co_etcd__buf_free(&d);
	etcd_free(e);
	return co_etcd__oom();
}

void co_etcd_opts_from_config(co_etcd_opts *o, const co_config *c)
{
	co_etcd_opts d = CO_ETCD_OPTS_INIT;

	*o = d;
	o->endpoints = (const char *const *)c->etcd_endpoints;
	o->n_endpoints = c->n_etcd_endpoints;
	o->prefix = c->etcd_prefix;
	o->user = c->etcd_user;
	o->password = c->etcd_password;
	o->ca_file = c->etcd_ca_file;
	o->cert_file = c->etcd_cert_file;
	o->key_file = c->etcd_key_file;
	o->connect_timeout_ms = c->etcd_connect_timeout_ms;
	o->request_timeout_ms = c->etcd_request_timeout_ms;
}

int co_etcd_store_list_at(co_record_list *out, int64_t *revision, co_store *s,
			  co_kind kind)
{
	struct etcd *e = co_store__impl(s, &etcd_backend);

	if (e == NULL)
		return co_error_set(CO_EINVAL, "not an etcd store");
	return co_etcd__list_at(out, revision, e, kind);
}

struct etcd *co_etcd__from_store(co_store *s)
{
	return co_store__impl(s, &etcd_backend);
}

void co_etcd_store_cache_stats(co_etcd_cache_stats *out, co_store *s)
{
	struct etcd *e = co_store__impl(s, &etcd_backend);

	memset(out, 0, sizeof(*out));
	if (e == NULL)
		return;
	co_etcd__cache_stats(out, e->cache);
	out->watch_stalls = atomic_load(&e->watch_stalls);
}

void co_etcd_store_cache_start(co_store *s)
{
	struct etcd *e = co_store__impl(s, &etcd_backend);

	if (e)
		co_etcd__cache_start(e->cache);
}

uint64_t co_etcd_store_round_trips(co_store *s)
{
	struct etcd *e = co_store__impl(s, &etcd_backend);

	return e ? atomic_load(&e->round_trips) : 0;
}

uint64_t co_etcd_store_grpc_txns(co_store *s)
{
	struct etcd *e = co_etcd__from_store(s);

	return e ? atomic_load(&e->grpc_txns) : 0;
}

uint64_t co_etcd_store_grpc_pages(co_store *s)
{
	struct etcd *e = co_store__impl(s, &etcd_backend);

	return e ? atomic_load(&e->grpc_pages) : 0;
}

/* Append `what` to the ", "-joined list `buf` unless it is there already. */
static void join_once(char *buf, size_t len, const char *what)
{
	size_t n = strlen(buf);

	if (what == NULL || *what == '\0' || strstr(buf, what) != NULL)
		return;
	snprintf(buf + n, len - n, "%s%s", n ? ", " : "", what);
}

int co_etcd_store_status(co_etcd_status *out, co_store *s)
{
	struct etcd *e = co_store__impl(s, &etcd_backend);
	cJSON *req = NULL, *resp = NULL;
	const cJSON *it, *list;
	const char *leader;
	int error;

	memset(out, 0, sizeof(*out));
	if (e == NULL)
		return co_error_set(CO_EINVAL, "not an etcd store");
	if ((req = cJSON_CreateObject()) == NULL)
		return co_etcd__oom();
	if ((error = co_etcd__call(&resp, e, "/v3/maintenance/status", req)) < 0)
		goto done;
	snprintf(out->version, sizeof(out->version), "%s",
		 co_etcd__json_str(resp, "version"));
	/* uint64 fields come as strings from the gateway */
	leader = co_etcd__json_str(resp, "leader");
	out->leader = strtoull(leader, NULL, 10);
	out->db_size = co_etcd__json_i64(resp, "dbSize");
	list = cJSON_GetObjectItemCaseSensitive(resp, "errors");
	cJSON_ArrayForEach(it, list)
	{
		if (cJSON_IsString(it))
			join_once(out->errors, sizeof(out->errors), it->valuestring);
	}
	cJSON_Delete(resp);
	resp = NULL;
	/* AlarmRequest: action GET (the default, 0), every member, every alarm */
	if (!cJSON_AddStringToObject(req, "action", "GET")) {
		error = co_etcd__oom();
		goto done;
	}
	if ((error = co_etcd__call(&resp, e, "/v3/maintenance/alarm", req)) < 0)
		goto done;
	list = cJSON_GetObjectItemCaseSensitive(resp, "alarms");
	cJSON_ArrayForEach(it, list)
	{
		const char *a = co_etcd__json_str(it, "alarm");

		/* NONE is the enum's zero: the gateway omits it, or spells it */
		if (strcmp(a, "NONE") != 0)
			join_once(out->alarms, sizeof(out->alarms), a);
	}
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}
