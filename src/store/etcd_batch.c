/*
 * etcd_batch.c - many keys in one round trip: the reads and the
 * compare-and-swaps of an outbox drain's batch, each one etcd txn (sent
 * by co_etcd__txn_call: gRPC where the endpoints speak it), with the
 * claims keys' leases shared per expiry second (etcd_private.h); and a
 * backfill's batches of puts (co_etcd_store_put_batch, etcd_store.h).
 */
#include "etcd_private.h"
#include "etcd_store.h"

#include "../core/error.h"
#include "../core/record.h"

#include <cjson/cJSON.h>
#include <openssl/rand.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- many keys in one round trip (an outbox drain's batches) ---- */

/* etcd's default --max-txn-ops: the most operations of one txn branch. */

int co_etcd__get_many(void *impl, co_store__read *rd, size_t n)
{
	struct etcd *e = impl;
	cJSON *resp = NULL, *rs;
	char **keys = calloc(n ? n : 1, sizeof(*keys));
	co_grpc_op *ops = calloc(n ? n : 1, sizeof(*ops));
	co_grpc_txn txn = {NULL, 0, ops, NULL, n, 0};
	size_t i;
	int error = 0;

	if (n > TXN_OPS_MAX) {
		error = co_error_set(CO_EINVAL, "etcd get_many: %zu keys, at most %d", n,
				     TXN_OPS_MAX);
		goto done;
	}
	if (keys == NULL || ops == NULL) {
		error = co_etcd__oom();
		goto done;
	}
	/* A txn without compares runs its success branch: every range at
	 * one revision, in one round trip. */
	for (i = 0; i < n; i++) {
		if ((keys[i] = co_etcd__key_for(e, co_kind_dir(rd[i].kind), rd[i].id)) ==
		    NULL) {
			error = co_etcd__oom();
			goto done;
		}
		ops[i].type = CO_GRPC_OP_RANGE;
		ops[i].key = keys[i];
		ops[i].key_len = strlen(keys[i]);
	}
	if ((error = co_etcd__txn_call(&resp, e, &txn)) < 0)
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
	free(ops);
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
/* What a cas_many txn's description holds: per write its key, claims
 * key, value and lease, which the txn's compares and ops point into. */
struct many {
	co_grpc_compare *cmp;
	co_grpc_op *ops;
	char **keys, **ckeys, **vals;
	int64_t *lease_ids;
};

static void many_free(struct many *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (m->keys)
			free(m->keys[i]);
		if (m->ckeys)
			free(m->ckeys[i]);
		if (m->vals)
			free(m->vals[i]);
	}
	free(m->cmp);
	free(m->ops);
	free(m->keys);
	free(m->ckeys);
	free(m->vals);
	free(m->lease_ids);
}

/* Room for n writes and nops operations, txn pointing into it (many_free
 * frees it).  0 or CO_ENOMEM. */
static int many_init(struct many *m, co_grpc_txn *txn, size_t n, size_t nops)
{
	size_t k = n ? n : 1;

	memset(m, 0, sizeof(*m));
	memset(txn, 0, sizeof(*txn));
	if ((m->cmp = calloc(k, sizeof(*m->cmp))) == NULL ||
	    (m->ops = calloc(nops ? nops : 1, sizeof(*m->ops))) == NULL ||
	    (m->keys = calloc(k, sizeof(*m->keys))) == NULL ||
	    (m->ckeys = calloc(k, sizeof(*m->ckeys))) == NULL ||
	    (m->vals = calloc(k, sizeof(*m->vals))) == NULL ||
	    (m->lease_ids = calloc(k, sizeof(*m->lease_ids))) == NULL)
		return co_etcd__oom();
	txn->compare = m->cmp;
	txn->success = m->ops;
	return 0;
}

/*
 * Write i of a batch: r's key compared to `ver` (the mod_revision read;
 * "": absent then, still absent), and r put.  m->keys[i] and m->vals[i]
 * are filled.  0, CO_ENOMEM, or CO_EINVAL for a bad revision.
 */
static int many_put(struct many *m, co_grpc_txn *txn, struct etcd *e, size_t i,
		    const co_record *r, const char *ver)
{
	co_grpc_compare *c = &m->cmp[txn->n_compare++];
	co_grpc_op *op = &m->ops[txn->n_success++];

	if ((m->keys[i] = co_etcd__key_for(e, co_kind_dir(r->kind), r->id)) == NULL ||
	    (m->vals[i] = co_record_to_json(r, 0)) == NULL)
		return co_etcd__oom();
	c->result = CO_GRPC_EQUAL;
	c->key = m->keys[i];
	c->key_len = strlen(m->keys[i]);
	c->target = ver[0] ? CO_GRPC_CMP_MOD : CO_GRPC_CMP_CREATE;
	if (ver[0] && co_etcd__parse_i64(&c->number, ver) < 0)
		return co_error_set(CO_EINVAL, "etcd %s: bad mod_revision \"%s\"", m->keys[i],
				    ver);
	op->type = CO_GRPC_OP_PUT;
	op->key = m->keys[i];
	op->key_len = strlen(m->keys[i]);
	op->value = m->vals[i];
	op->value_len = strlen(m->vals[i]);
	return 0;
}

/* The claims key of write i: an op of `type` on <prefix>claims/<id>,
 * m->ckeys[i] filled.  The op, or NULL (out of memory). */
static co_grpc_op *many_claims_op(struct many *m, co_grpc_txn *txn, struct etcd *e,
				  size_t i, const co_record *r, int type)
{
	co_grpc_op *op = &m->ops[txn->n_success++];

	if ((m->ckeys[i] = co_etcd__key_for(e, "claims", r->id)) == NULL)
		return NULL;
	op->type = type;
	op->key = m->ckeys[i];
	op->key_len = strlen(m->ckeys[i]);
	return op;
}

int co_etcd__cas_many(void *impl, const co_store__write *w, size_t n, const char *why)
{
	struct etcd *e = impl;
	cJSON *resp = NULL;
	char(*lease)[32] = calloc(n ? n : 1, sizeof(*lease));
	struct many m;
	co_grpc_txn txn;
	size_t i, nops = 0;
	int error = 0;

	(void)why;
	for (i = 0; i < n; i++)
		nops += w[i].r->kind == CO_KIND_TASK ? 2 : 1;
	if ((error = many_init(&m, &txn, n, nops)) < 0)
		goto done;
	if (n > TXN_OPS_MAX || nops > TXN_OPS_MAX) {
		error =
		    co_error_set(CO_EINVAL, "etcd cas_many: %zu operations, at most %d",
				 nops, TXN_OPS_MAX);
		goto done;
	}
	if (lease == NULL) {
		error = co_etcd__oom();
		goto done;
	}
	if ((error = grant_leases(e, w, n, lease)) < 0)
		goto done;
	for (i = 0; i < n; i++) {
		const co_record *r = w[i].r;
		co_grpc_op *op;

		if (lease[i][0] && co_etcd__parse_i64(&m.lease_ids[i], lease[i]) < 0) {
			error = co_error_set(CO_EUNAVAIL, "etcd %s: odd lease id \"%s\"",
					     e->describe, lease[i]);
			goto done;
		}
		if ((error = many_put(&m, &txn, e, i, r, w[i].expected.v)) < 0)
			goto done;
		if (r->kind != CO_KIND_TASK)
			continue;
		if ((op = many_claims_op(&m, &txn, e, i, r,
					 lease[i][0] ? CO_GRPC_OP_PUT : CO_GRPC_OP_DELETE)) ==
		    NULL) {
			error = co_etcd__oom();
			goto done;
		}
		if (lease[i][0]) {
			op->value = r->owner;
			op->value_len = strlen(r->owner);
			op->lease = m.lease_ids[i];
		}
	}
	if ((error = co_etcd__txn_call(&resp, e, &txn)) < 0) {
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
	many_free(&m, n);
	cJSON_Delete(resp);
	return error;
}

/* ---- a backfill's batch of puts (migrate/etcd_batch.c) ---- */

int co_etcd_store_put_batch(co_store *s, const co_record *const *recs,
			    const char *const *vers, const int *drop_claim, size_t n)
{
	struct etcd *e = co_etcd__from_store(s);
	cJSON *resp = NULL;
	struct many m;
	co_grpc_txn txn;
	size_t i, nops = n;
	int error = 0;

	if (e == NULL)
		return co_error_set(CO_EINVAL, "not an etcd store");
	if (n == 0)
		return 0;
	for (i = 0; drop_claim && i < n; i++)
		nops += drop_claim[i] != 0;
	if (nops > TXN_OPS_MAX)
		return co_error_set(CO_EINVAL, "etcd batch of %zu operations (at most %d)",
				    nops, TXN_OPS_MAX);
	if ((error = many_init(&m, &txn, n, nops)) < 0)
		goto done;
	/* Compare: each key absent when read is still absent; each present
	 * one still has the mod_revision read.  Success: the puts, and the
	 * claims key of a replaced claim dropped. */
	for (i = 0; i < n; i++) {
		if ((error = many_put(&m, &txn, e, i, recs[i], vers[i])) < 0)
			goto done;
		if (drop_claim && drop_claim[i] &&
		    many_claims_op(&m, &txn, e, i, recs[i], CO_GRPC_OP_DELETE) == NULL) {
			error = co_etcd__oom();
			goto done;
		}
	}
	if ((error = co_etcd__txn_call(&resp, e, &txn)) < 0)
		goto done;
	/* A failed txn has no "succeeded" field at all (defaults are omitted). */
	if (!co_etcd__json_true(resp, "succeeded"))
		error = co_error_set(CO_ERETRY, "etcd: a key of the batch changed meanwhile");
done:
	many_free(&m, n);
	cJSON_Delete(resp);
	return error;
}
