/*
 * etcd_txn.c - what the answer of a store's compare-and-swap txn says
 * (etcd_store.c builds and sends it): whether a failed compare found the
 * key as the txn would have left it (an earlier copy applied), what the
 * failure branch read back to decide again from, and whether the fence on
 * the fleet's flags epoch (co_store_fence) is the compare that failed; and
 * the pieces its request is written from as text.
 */
#include "etcd_private.h"
#include "store_backend.h"

#include "../core/error.h"
#include "../core/textbuf.h"
#include "../core/record.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the txn written as text (cas_txn in etcd_store.c) ---- */

/* A compare of key's `target` ("MOD", "CREATE") field against value. */
void co_etcd__txt_equal(co_textbuf *t, const char *key, const char *target,
			const char *field, const char *value)
{
	co_textbuf_puts(t, "{");
	co_textbuf_b64_field(t, "key", key, strlen(key));
	co_textbuf_puts(t, ",\"result\":\"EQUAL\",\"target\":\"");
	co_textbuf_puts(t, target);
	co_textbuf_puts(t, "\",\"");
	co_textbuf_puts(t, field);
	co_textbuf_puts(t, "\":\"");
	co_textbuf_puts(t, value);
	co_textbuf_puts(t, "\"}");
}

/* {"<op>":{"key":<b64 key>[,"value":<b64 value>][,"lease":"<lease>"]}} */
void co_etcd__txt_op(co_textbuf *t, const char *op, const char *key, const char *value,
		     const char *lease)
{
	co_textbuf_puts(t, "{\"");
	co_textbuf_puts(t, op);
	co_textbuf_puts(t, "\":{");
	co_textbuf_b64_field(t, "key", key, strlen(key));
	if (value) {
		co_textbuf_puts(t, ",");
		co_textbuf_b64_field(t, "value", value, strlen(value));
	}
	if (lease) {
		co_textbuf_puts(t, ",\"lease\":\"");
		co_textbuf_puts(t, lease);
		co_textbuf_puts(t, "\"");
	}
	co_textbuf_puts(t, "}}");
}

/* A version or lease we put in a request unescaped: digits (etcd's) or
 * other plain ASCII letters and digits, nothing JSON would need escaped. */
int co_etcd__plain(const char *s)
{
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}
