/*
 * etcd_txn.c - a store's compare-and-swap txn sent, and what its answer
 * says (etcd_store.c builds it as a co_grpc_txn).  It goes as KV.Txn over
 * a kept HTTP/2 connection (etcd_h2.c) where the endpoints speak it, else
 * as JSON to the gateway; either way the answer comes back in the
 * gateway's JSON shape, which the readers here take apart: whether a
 * failed compare found the key as the txn would have left it (an earlier
 * copy applied), what the failure branch read back to decide again from,
 * and whether the fence on the fleet's flags epoch (co_store_fence) is the
 * compare that failed.
 */
#include "etcd_private.h"
#include "store_backend.h"

#include "../core/error.h"
#include "../core/textbuf.h"
#include "../core/record.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * 1 if a txn whose compare failed finds the key already as it would have
 * made it: `val` byte for byte (NULL: the key gone).  That happens when an
 * earlier copy of the same txn was applied but its answer was lost -- a
 * member that timed out, or answered 503 "request timed out" for a
 * proposal that committed after all -- and co_etcd__post_raw() sent it again to the
 * next member, whose compare then fails.  Deciding again would tell the
 * caller the opposite of what happened (a release applied, reported as
 * "not claimed"), and a router would drop the mirror of a write its
 * primary holds.  A record carries its rev, owner and times, so another
 * writer leaving these exact bytes made the very same transition.
 */
int co_etcd__applied_before(const cJSON *resp, const char *val)
{
	const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "responses"), 0),
	    "response_range");
	const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(rr, "kvs");
	const cJSON *kv = cJSON_GetArrayItem(kvs, 0);
	char *now;
	size_t len = 0;
	int same;

	if (rr == NULL)
		return 0;
	if (kv == NULL)
		return val == NULL;
	if (val == NULL ||
	    (now = co_b64_decode(co_etcd__json_str(kv, "value"), &len)) == NULL)
		return 0;
	same = len == strlen(val) && memcmp(now, val, len) == 0;
	free(now);
	return same;
}

/*
 * What a failed txn's failure branch read (responses[0]): the key's record
 * and version into *cur and *ver (NULL and "" when absent), noted in the
 * cache either way.  Errors: the value is not a record of kind/id.
 */
int co_etcd__failure_read(co_record **cur, co_version *ver, struct etcd *e,
			  const cJSON *resp, co_kind kind, const char *id,
			  const char *key)
{
	const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "responses"), 0),
	    "response_range");
	const cJSON *kv =
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0);
	co_record *r = NULL;
	int error;

	*cur = NULL;
	ver->v[0] = '\0';
	if (rr == NULL)
		return co_error_set(CO_EUNAVAIL,
				    "etcd %s: a failed txn on %s read nothing back",
				    e->describe, key);
	if (kv == NULL) {
		co_etcd__cache_note(e->cache, kind, id, NULL, co_etcd__header_rev(resp));
		return 0;
	}
	if ((error = co_etcd__record_from_kv(&r, e, kv, key)) < 0)
		return error;
	if (r->kind != kind || strcmp(r->id, id) != 0) {
		error = co_error_set(CO_EINVAL, "etcd %s: key %s holds %s %s",
				     e->describe, key, co_kind_name(r->kind), r->id);
		co_record_free(r);
		return error;
	}
	snprintf(ver->v, sizeof(ver->v), "%s", co_etcd__json_str(kv, "mod_revision"));
	co_etcd__cache_note(e->cache, kind, id, r, co_etcd__json_i64(kv, "mod_revision"));
	*cur = r;
	return 0;
}

/* Whether a failed txn's read of its key finds it still at `expected`. */
int co_etcd__key_unchanged(const cJSON *resp, const co_version *expected)
{
	const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "responses"), 0),
	    "response_range");
	const cJSON *kv =
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0);

	if (rr == NULL)
		return 0;
	if (kv == NULL)
		return expected->v[0] == '\0';
	return strcmp(co_etcd__json_str(kv, "mod_revision"), expected->v) == 0;
}

/*
 * A failed fenced txn: CO_EFENCED if the fence key (the failure branch's
 * responses[1]) is no longer at `epoch`, else 0 (the record's compare
 * failed, an ordinary lost race).
 */
int co_etcd__fence_moved(const cJSON *resp, struct etcd *e, const char *key,
			 int64_t epoch)
{
	const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(resp, "responses"), 1),
	    "response_range");
	const cJSON *kv =
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0);
	int64_t now = kv ? co_etcd__json_i64(kv, "mod_revision") : 0;

	if (rr == NULL)
		return co_error_set(
		    CO_EUNAVAIL, "etcd %s: a failed txn read no fence back", e->describe);
	if (now == epoch)
		return 0;
	co_store__fenced(now);
	return co_error_set(CO_EFENCED,
			    "etcd %s: fenced: %s is at revision %lld, this write was "
			    "routed under %lld; nothing written",
			    e->describe, key, (long long)now, (long long)epoch);
}

/* ---- the txn sent: over gRPC on a kept connection, or as text ---- */

static const char *const result_names[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
static const char *const target_names[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
static const char *const target_fields[] = {"version", "create_revision", "mod_revision",
					    "value", "lease"};
static const char *const op_names[] = {"", "request_range", "request_put",
				       "request_delete_range"};
static const char *const resp_names[] = {"", "response_range", "response_put",
					 "response_delete_range"};

static void txt_i64(co_textbuf *t, const char *name, int64_t v)
{
	char n[24];

	snprintf(n, sizeof(n), "%lld", (long long)v);
	co_textbuf_puts(t, ",\"");
	co_textbuf_puts(t, name);
	co_textbuf_puts(t, "\":\"");
	co_textbuf_puts(t, n);
	co_textbuf_puts(t, "\"");
}

static void txt_ops(co_textbuf *t, const co_grpc_op *ops, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		co_textbuf_puts(t, i ? ",{\"" : "{\"");
		co_textbuf_puts(t, op_names[ops[i].type]);
		co_textbuf_puts(t, "\":{");
		co_textbuf_b64_field(t, "key", ops[i].key, ops[i].key_len);
		if (ops[i].type == CO_GRPC_OP_PUT) {
			co_textbuf_puts(t, ",");
			co_textbuf_b64_field(t, "value", ops[i].value, ops[i].value_len);
			if (ops[i].lease)
				txt_i64(t, "lease", ops[i].lease);
		}
		if (ops[i].type == CO_GRPC_OP_RANGE && ops[i].keys_only)
			co_textbuf_puts(t, ",\"keys_only\":true");
		co_textbuf_puts(t, "}}");
	}
}

/* The gateway's JSON of txn (an allocation failure is remembered in t). */
static void txn_text(co_textbuf *t, const co_grpc_txn *txn)
{
	size_t i;

	co_textbuf_puts(t, "{\"compare\":[");
	for (i = 0; i < txn->n_compare; i++) {
		const co_grpc_compare *c = &txn->compare[i];

		co_textbuf_puts(t, i ? ",{" : "{");
		co_textbuf_b64_field(t, "key", c->key, c->key_len);
		co_textbuf_puts(t, ",\"result\":\"");
		co_textbuf_puts(t, result_names[c->result]);
		co_textbuf_puts(t, "\",\"target\":\"");
		co_textbuf_puts(t, target_names[c->target]);
		co_textbuf_puts(t, "\"");
		if (c->target == CO_GRPC_CMP_VALUE) {
			co_textbuf_puts(t, ",");
			co_textbuf_b64_field(t, "value", c->value, c->value_len);
		} else {
			txt_i64(t, target_fields[c->target], c->number);
		}
		co_textbuf_puts(t, "}");
	}
	co_textbuf_puts(t, "],\"success\":[");
	txt_ops(t, txn->success, txn->n_success);
	co_textbuf_puts(t, "],\"failure\":[");
	txt_ops(t, txn->failure, txn->n_failure);
	co_textbuf_puts(t, "]}");
}

/* The gateway's form of a kv into `kvs`.  -1 on OOM. */
static int kv_json(cJSON *kvs, const co_grpc_kv *kv)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL || !cJSON_AddItemToArray(kvs, o) ||
	    co_etcd__json_add_b64(o, "key", kv->key, kv->key_len) < 0 ||
	    co_etcd__json_add_b64(o, "value", kv->value, kv->value_len) < 0 ||
	    co_etcd__json_add_i64(o, "mod_revision", kv->mod_revision) < 0 ||
	    (kv->lease && co_etcd__json_add_i64(o, "lease", kv->lease) < 0))
		return -1;
	return 0;
}

/* The kvs of a TxnResponse as they are decoded, each with the index of
 * its response ("i"), placed once the branch that ran is known. */
static int answer_kv(void *ctx, const co_grpc_kv *kv)
{
	cJSON *pending = ctx;

	if (kv_json(pending, kv) < 0 ||
	    !cJSON_AddNumberToObject(cJSON_GetArrayItem(pending, cJSON_GetArraySize(pending) - 1),
				     "i", (double)kv->response))
		return co_etcd__oom();
	return 0;
}

/*
 * A TxnResponse (frame included) as the gateway would have written it:
 * header.revision, succeeded (only when true), and one response per op of
 * the branch that ran, ranges with their kvs.
 */
static int answer_json(cJSON **out, const co_grpc_txn *txn, const co_grpc_buf *raw)
{
	co_grpc_txn_info info;
	const co_grpc_op *ops;
	cJSON *j = cJSON_CreateObject(), *pending = cJSON_CreateArray(), *responses, *hdr, *kv;
	size_t i, n, len;
	int error;

	*out = NULL;
	if (j == NULL || pending == NULL)
		goto nomem;
	if (raw->len < 5 || raw->p[0] != 0) {
		error = co_error_set(CO_EINVAL, "etcd gRPC: a TxnResponse %s",
				     raw->len < 5 ? "with no message" : "compressed");
		goto fail;
	}
	len = (size_t)raw->p[1] << 24 | (size_t)raw->p[2] << 16 | (size_t)raw->p[3] << 8 |
	      raw->p[4];
	if (len != raw->len - 5) {
		error = co_error_set(CO_EINVAL, "etcd gRPC: a TxnResponse of %zu bytes "
						"framed as %zu",
				     raw->len - 5, len);
		goto fail;
	}
	if ((error = co_grpc_txn_decode(raw->p + 5, len, &info, answer_kv, pending)) < 0)
		goto fail;
	ops = info.succeeded ? txn->success : txn->failure;
	n = info.succeeded ? txn->n_success : txn->n_failure;
	if (info.responses != n) {
		error = co_error_set(CO_EINVAL, "etcd gRPC: a TxnResponse of %zu "
						"responses to %zu ops",
				     info.responses, n);
		goto fail;
	}
	if ((responses = cJSON_AddArrayToObject(j, "responses")) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		cJSON *r = cJSON_CreateObject();

		if (r == NULL || !cJSON_AddItemToArray(responses, r) ||
		    cJSON_AddObjectToObject(r, resp_names[ops[i].type]) == NULL)
			goto nomem;
	}
	while ((kv = cJSON_DetachItemFromArray(pending, 0)) != NULL) {
		size_t at = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(kv, "i"));
		cJSON *rr = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetArrayItem(responses, (int)at), "response_range");
		cJSON *kvs = cJSON_GetObjectItemCaseSensitive(rr, "kvs");

		cJSON_DeleteItemFromObjectCaseSensitive(kv, "i");
		if (at >= n || rr == NULL) {
			cJSON_Delete(kv);
			error = co_error_set(CO_EINVAL, "etcd gRPC: a kv in TxnResponse's "
							"response %zu, which is no range",
					     at);
			goto fail;
		}
		if ((kvs == NULL && (kvs = cJSON_AddArrayToObject(rr, "kvs")) == NULL) ||
		    !cJSON_AddItemToArray(kvs, kv)) {
			cJSON_Delete(kv);
			goto nomem;
		}
	}
	if ((hdr = cJSON_AddObjectToObject(j, "header")) == NULL ||
	    co_etcd__json_add_i64(hdr, "revision", info.revision) < 0 ||
	    (info.succeeded && !cJSON_AddTrueToObject(j, "succeeded")))
		goto nomem;
	cJSON_Delete(pending);
	*out = j;
	return 0;
nomem:
	error = co_etcd__oom();
fail:
	cJSON_Delete(pending);
	cJSON_Delete(j);
	return error;
}

static int grpc_wanted(const struct etcd *e)
{
	const char *v = getenv("CUTOVER_ETCD_GRPC");

	return e->h2 && !(v && strcmp(v, "0") == 0) && !atomic_load(&e->no_grpc);
}

/*
 * KV.Txn over a kept connection: *out in the gateway's shape, or
 * CO_ETCD_H2_NOT_GRPC when the endpoint does not speak it.
 */
static int txn_grpc(cJSON **out, struct etcd *e, const co_grpc_txn *txn)
{
	co_grpc_buf req = {0}, raw = {0};
	co_grpc_reply reply;
	char *token = NULL;
	int error, attempt;

	if ((error = co_grpc_txn_encode(&req, txn)) < 0)
		return error;
	memset(&reply, 0, sizeof(reply));
	reply.raw = &raw;
	for (attempt = 0; attempt < 2; attempt++) {
		free(token);
		token = NULL;
		if ((error = co_etcd__token_get(&token, e)) < 0)
			goto done;
		if ((error = co_etcd__h2_post(&reply, e, "Txn", token, &req)) != 0) {
			/* Out of memory while the answer came in: the request
			 * went out, its outcome is unknown. */
			if (error == CO_ENOMEM)
				error = co_error_set(CO_EUNAVAIL,
						     "etcd %s: the answer to a txn could not "
						     "be read (%s); it may have been applied",
						     e->describe, co_error_last());
			goto done;
		}
		if (reply.grpc_status == 0) {
			atomic_fetch_add(&e->grpc_txns, 1);
			/* The txn ran: an answer that cannot be read leaves its
			 * outcome unknown, as a lost answer does. */
			if ((error = answer_json(out, txn, &raw)) < 0)
				error = co_error_set(CO_EUNAVAIL,
						     "etcd %s: the answer to a txn could not "
						     "be read (%s); it may have been applied",
						     e->describe, co_error_last());
			goto done;
		}
		if (reply.grpc_status < 0 && reply.grpc_body && reply.http == 200) {
			error = co_error_set(CO_EUNAVAIL, "etcd %s: a gRPC Txn answered "
							  "without its status",
					     e->describe);
			goto done;
		}
		if (reply.grpc_status < 0) {
			/* An HTTP/2 server, not etcd's gRPC: the gateway. */
			error = CO_ETCD_H2_NOT_GRPC;
			goto done;
		}
		if (e->user && attempt == 0 &&
		    co_etcd__is_auth_error(reply.grpc_status, reply.grpc_message)) {
			co_etcd__token_drop(e, token);
			continue;
		}
		break;
	}
	{
		cJSON *j = cJSON_CreateObject();
		size_t ep;

		if (j == NULL || !cJSON_AddNumberToObject(j, "code", reply.grpc_status) ||
		    !cJSON_AddStringToObject(j, "message", reply.grpc_message)) {
			cJSON_Delete(j);
			error = co_etcd__oom();
			goto done;
		}
		pthread_mutex_lock(&e->lock);
		ep = e->current;
		pthread_mutex_unlock(&e->lock);
		error = co_etcd__gateway_error(e, ep, reply.http, j,
					       "/etcdserverpb.KV/Txn");
		cJSON_Delete(j);
	}
done:
	free(token);
	free(req.p);
	free(raw.p);
	return error;
}

int co_etcd__txn_call(cJSON **out, struct etcd *e, const co_grpc_txn *txn)
{
	co_textbuf t = CO_TEXTBUF_INIT;
	char *body;
	int64_t start = co_etcd__now_ms();
	int error, bound = 0, prev = 0;

	*out = NULL;
	if (grpc_wanted(e)) {
		if ((error = txn_grpc(out, e, txn)) != CO_ETCD_H2_NOT_GRPC)
			return error;
		/* The gateway, within what is left of the caller's bound. */
		if ((bound = co_store__call_timeout()) > 0) {
			int64_t left = bound - (co_etcd__now_ms() - start);

			if (left <= 0)
				return co_error_set(CO_EUNAVAIL, "etcd %s: no time left within "
								 "%d ms for the gateway",
						    e->describe, bound);
			prev = co_store_call_timeout((int)left);
		}
	}
	txn_text(&t, txn);
	if ((body = co_textbuf_take(&t)) == NULL)
		error = co_etcd__oom();
	else
		error = co_etcd__call_body(out, e, "/v3/kv/txn", body);
	if (bound > 0)
		co_store_call_timeout(prev);
	co_textbuf_clear(&t);
	free(body);
	return error;
}
