/*
 * etcd_batch.c - many keys in one round trip: the reads and the
 * compare-and-swaps of an outbox drain's batch, each one etcd txn, with
 * the claims keys' leases shared per expiry second (etcd_private.h).
 */
#include "etcd_private.h"

#include "../core/error.h"
#include "../core/record.h"

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- many keys in one round trip (an outbox drain's batches) ---- */

/* etcd's default --max-txn-ops: the most operations of one txn branch. */

int co_etcd__get_many(void *impl, co_store__read *rd, size_t n)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *ops, *op, *rs;
	char **keys = calloc(n ? n : 1, sizeof(*keys));
	size_t i;
	int error = 0;

	if (n > TXN_OPS_MAX) {
		error = co_error_set(CO_EINVAL, "etcd get_many: %zu keys, at most %d", n,
				     TXN_OPS_MAX);
		goto done;
	}
	if (req == NULL || keys == NULL ||
	    (ops = cJSON_AddArrayToObject(req, "success")) == NULL) {
		error = co_etcd__oom();
		goto done;
	}
	/* A txn without compares runs its success branch: every range at
	 * one revision, in one round trip. */
	for (i = 0; i < n; i++) {
		if ((keys[i] = co_etcd__key_for(e, co_kind_dir(rd[i].kind), rd[i].id)) ==
			NULL ||
		    (op = co_etcd__txn_op(ops, "request_range")) == NULL ||
		    co_etcd__json_add_b64(op, "key", keys[i], strlen(keys[i])) < 0) {
			error = co_etcd__oom();
			goto done;
		}
	}
	if ((error = co_etcd__call(&resp, e, "/v3/kv/txn", req)) < 0)
		goto done;
	rs = cJSON_GetObjectItemCaseSensitive(resp, "responses");
	if (!cJSON_IsArray(rs) || (size_t)cJSON_GetArraySize(rs) != n) {
		error =
		    co_error_set(CO_EUNAVAIL, "etcd %s: txn of %zu ranges: %d answers",
				 e->describe, n, cJSON_GetArraySize(rs));
		goto done;
	}
	for (i = 0; i < n; i++) {
		const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, (int)i),
						     "response_range"),
		    "kvs");
		const cJSON *kv = cJSON_GetArrayItem(kvs, 0);

		rd[i].out = NULL;
		rd[i].ver.v[0] = '\0';
		if (kv == NULL)
			continue; /* absent */
		if ((error = co_etcd__record_from_kv(&rd[i].out, e, kv, keys[i])) < 0)
			break;
		if (rd[i].out->kind != rd[i].kind ||
		    strcmp(rd[i].out->id, rd[i].id) != 0) {
			error = co_error_set(
			    CO_EINVAL, "etcd %s: key %s holds %s %s", e->describe,
			    keys[i], co_kind_name(rd[i].out->kind), rd[i].out->id);
			i++;
			break;
		}
		snprintf(rd[i].ver.v, sizeof(rd[i].ver.v), "%s",
			 co_etcd__json_str(kv, "mod_revision"));
	}
	if (error < 0)
		while (i-- > 0) {
			co_record_free(rd[i].out);
			rd[i].out = NULL;
		}
done:
	for (i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

static int grant_batch_lease(char *id, size_t len, struct etcd *e, int64_t ttl)
{
	cJSON *req = NULL, *resp = NULL;
	int error = 0, tries;

	for (tries = 0; tries < 4; tries++) {
		unsigned char rnd[6];
		unsigned long long v = BATCH_LEASE_MARK << 48;
		char want[24];
		size_t i;

		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return co_error_set(CO_EIO, "etcd %s: no random lease ID",
					    e->describe);
		for (i = 0; i < sizeof(rnd); i++)
			v |= (unsigned long long)rnd[i] << (8 * i);
		snprintf(want, sizeof(want), "%llu", v);
		cJSON_Delete(req);
		cJSON_Delete(resp);
		resp = NULL;
		if ((req = cJSON_CreateObject()) == NULL ||
		    co_etcd__json_add_i64(req, "TTL", ttl) < 0 ||
		    !cJSON_AddStringToObject(req, "ID", want)) {
			error = co_etcd__oom();
			break;
		}
		error = co_etcd__call(&resp, e, "/v3/lease/grant", req);
		if (error == 0 && strcmp(co_etcd__json_str(resp, "ID"), want) == 0) {
			snprintf(id, len, "%s", want);
			break;
		}
		/* an ID already in use (one in 2^48): draw another */
		if (error == 0)
			error = co_error_set(CO_EUNAVAIL, "etcd %s: lease grant: %s",
					     e->describe,
					     co_etcd__json_str(resp, "error")[0]
						 ? co_etcd__json_str(resp, "error")
						 : "no lease ID");
		else if (error != CO_EINVAL)
			break;
	}
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

/* lease[i]: the shared lease of w[i]'s claim, "" when it has none. */
static int grant_leases(struct etcd *e, const co_store__write *w, size_t n,
			char (*lease)[32])
{
	size_t i, j;
	int error;

	for (i = 0; i < n; i++) {
		int64_t ttl;

		if (!co_etcd__wants_lease(w[i].r) || lease[i][0])
			continue;
		ttl = w[i].r->claim_expires_at - co_time_now();
		if ((error = grant_batch_lease(lease[i], sizeof(lease[i]), e,
					       ttl < 1 ? 1 : ttl)) < 0)
			return error;
		for (j = i + 1; j < n; j++)
			if (co_etcd__wants_lease(w[j].r) &&
			    w[j].r->claim_expires_at == w[i].r->claim_expires_at)
				memcpy(lease[j], lease[i], sizeof(lease[i]));
	}
	return 0;
}

/*
 * All of w in one txn: each key compared to the version read before, and
 * written with its claims key (under its own lease, or removed), as
 * co_etcd__cas does one.  Unlike co_etcd__cas the claims key's previous lease is
 * not looked up and revoked: the put or delete detaches the key from it,
 * so it holds nothing and runs out at its TTL.
 */
int co_etcd__cas_many(void *impl, const co_store__write *w, size_t n, const char *why)
{
	struct etcd *e = impl;
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *cmp, *ops, *c, *op;
	char(*lease)[32] = calloc(n ? n : 1, sizeof(*lease));
	size_t i, nops = 0;
	int error = 0;

	(void)why;
	for (i = 0; i < n; i++)
		nops += w[i].r->kind == CO_KIND_TASK ? 2 : 1;
	if (n > TXN_OPS_MAX || nops > TXN_OPS_MAX) {
		error =
		    co_error_set(CO_EINVAL, "etcd cas_many: %zu operations, at most %d",
				 nops, TXN_OPS_MAX);
		goto done;
	}
	if (req == NULL || lease == NULL ||
	    (cmp = cJSON_AddArrayToObject(req, "compare")) == NULL ||
	    (ops = cJSON_AddArrayToObject(req, "success")) == NULL) {
		error = co_etcd__oom();
		goto done;
	}
	if ((error = grant_leases(e, w, n, lease)) < 0)
		goto done;
	for (i = 0; i < n && error == 0; i++) {
		const co_record *r = w[i].r;
		char *key = co_etcd__key_for(e, co_kind_dir(r->kind), r->id);
		char *ckey =
		    r->kind == CO_KIND_TASK ? co_etcd__key_for(e, "claims", r->id) : NULL;
		char *val = co_record_to_json(r, 0);
		int ok = key && val && (r->kind != CO_KIND_TASK || ckey);

		ok =
		    ok && (c = cJSON_CreateObject()) != NULL &&
		    cJSON_AddItemToArray(cmp, c) &&
		    co_etcd__json_add_b64(c, "key", key, strlen(key)) == 0 &&
		    cJSON_AddStringToObject(c, "result", "EQUAL") &&
		    (w[i].expected.v[0]
			 ? cJSON_AddStringToObject(c, "target", "MOD") &&
			       cJSON_AddStringToObject(c, "mod_revision", w[i].expected.v)
			 : cJSON_AddStringToObject(c, "target", "CREATE") &&
			       cJSON_AddStringToObject(c, "create_revision", "0"));
		ok = ok && (op = co_etcd__txn_op(ops, "request_put")) != NULL &&
		     co_etcd__json_add_b64(op, "key", key, strlen(key)) == 0 &&
		     co_etcd__json_add_b64(op, "value", val, strlen(val)) == 0;
		if (ok && ckey && lease[i][0])
			ok = (op = co_etcd__txn_op(ops, "request_put")) != NULL &&
			     co_etcd__json_add_b64(op, "key", ckey, strlen(ckey)) == 0 &&
			     co_etcd__json_add_b64(op, "value", r->owner,
						   strlen(r->owner)) == 0 &&
			     cJSON_AddStringToObject(op, "lease", lease[i]);
		else if (ok && ckey)
			ok =
			    (op = co_etcd__txn_op(ops, "request_delete_range")) != NULL &&
			    co_etcd__json_add_b64(op, "key", ckey, strlen(ckey)) == 0;
		if (!ok)
			error = co_etcd__oom();
		free(key);
		free(ckey);
		free(val);
	}
	if (error < 0)
		goto done;
	if ((error = co_etcd__call(&resp, e, "/v3/kv/txn", req)) < 0) {
		/* Without an answer the txn may have been applied with the
		 * leases attached: keep them, they run out by themselves. */
		if (error == CO_EUNAVAIL)
			memset(lease, 0, n * sizeof(*lease));
		goto done;
	}
	if (!co_etcd__json_true(resp, "succeeded")) {
		error =
		    co_error_set(CO_ERETRY, "etcd %s: one of %zu keys changed meanwhile",
				 e->describe, n);
		goto done;
	}
	memset(lease, 0, n * sizeof(*lease)); /* now in use */
done:
	for (i = 0; lease && i < n; i++) {
		size_t j;

		for (j = 0; j < i && strcmp(lease[j], lease[i]) != 0; j++)
			;
		if (lease[i][0] && j == i) { /* each shared lease once */
			int saved = co_error_last_code();
			char msg[1024];

			snprintf(msg, sizeof(msg), "%s", co_error_last());
			co_etcd__lease_revoke(e, lease[i]);
			co_error_set(saved, "%s", msg);
		}
	}
	free(lease);
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}
