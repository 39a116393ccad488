/*
 * server_request.c - what every handler of the server uses: replies (a
 * status and a JSON body, errors as {"error":{"code","message"}} through
 * co_error_http_status(), the one mapping) and the readers of a request's
 * JSON body, strict about unknown fields and types so that a bad request is
 * refused whole before anything is called: and about what a hostile client
 * may slip past a JSON parser (NUL, invalid UTF-8, infinite numbers; a
 * nesting deeper than cJSON's limit of 1000 fails the parse).
 */
#include "server_internal.h"

#include "core/error.h"
#include "core/id.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- replies --- */

void co_server__reply_json(reply *rp, int status, cJSON *o)
{
	rp->status = status;
	rp->body = o ? cJSON_PrintUnformatted(o) : NULL;
	rp->ctype = "application/json";
	if (rp->body == NULL)
		rp->status = 503;
	cJSON_Delete(o);
}

char *co_server__json_with(char *obj, const char *key, const char *raw)
{
	size_t n = obj ? strlen(obj) : 0, kl = strlen(key), rl = strlen(raw);
	char *out;

	if (n < 2 || obj[n - 1] != '}' || (out = malloc(n + kl + rl + 5)) == NULL) {
		free(obj);
		return NULL;
	}
	memcpy(out, obj, n - 1);
	snprintf(out + n - 1, kl + rl + 6, "%s\"%s\":%s}", n > 2 ? "," : "", key, raw);
	free(obj);
	return out;
}

/* {"error":{"code","message"}} plus the current record when there is one. */
void co_server__reply_err(reply *rp, int status, const char *code, const char *msg,
			  const co_record *current)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	char *js;

	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	if (current == NULL || (js = co_record_to_json(current, 0)) == NULL) {
		co_server__reply_json(rp, status, o);
		return;
	}
	/* the record's JSON as it is: not parsed and printed again */
	rp->body = co_server__json_with(cJSON_PrintUnformatted(o), "record", js);
	rp->status = rp->body ? status : 503;
	rp->ctype = "application/json";
	cJSON_Delete(o);
	free(js);
}

/* The error of a CO_E* code, with this thread's last message. */
void co_server__reply_code(reply *rp, int code, const co_record *current)
{
	const char *msg = co_error_last();

	co_server__reply_err(rp, co_error_http_status(code), co_error_name(code),
			     *msg ? msg : co_error_name(code), current);
}

void co_server__reply_record(reply *rp, int status, const co_record *r)
{
	char *js = co_record_to_json(r, 0);

	if (js == NULL) {
		co_error_set(CO_ENOMEM, "out of memory");
		co_server__reply_code(rp, CO_ENOMEM, NULL);
		return;
	}
	rp->status = status;
	rp->body = js;
	rp->ctype = "application/json";
}

/* --- request bodies --- */

/* 1 if the NUL-terminated p is valid UTF-8: no overlong form, no
 * surrogate, nothing past U+10FFFF. */
static int utf8_ok(const unsigned char *p)
{
	while (*p) {
		unsigned int c = *p, n, cp, i;

		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return 0;
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		p += n + 1;
	}
	return 1;
}

/*
 * Every key and string of `it` valid UTF-8, every number finite (cJSON
 * reads 1e999999 as infinity, which would be stored as null).  0, or
 * CO_EINVAL naming `field`, the top-level field it is under.
 */
static int json_sane(const cJSON *it, const char *field)
{
	const cJSON *ch;

	if (it->string && !utf8_ok((const unsigned char *)it->string))
		return field == it->string
			   ? co_error_set(CO_EINVAL, "a field name is not valid UTF-8")
			   : co_error_set(CO_EINVAL, "\"%s\": a key is not valid UTF-8",
					  field);
	if (cJSON_IsString(it) && !utf8_ok((const unsigned char *)it->valuestring))
		return co_error_set(CO_EINVAL, "\"%s\": not valid UTF-8", field);
	if (cJSON_IsNumber(it) && !isfinite(it->valuedouble))
		return co_error_set(CO_EINVAL, "\"%s\": a number out of range", field);
	for (ch = it->child; ch; ch = ch->next)
		if (json_sane(ch, field) < 0)
			return CO_EINVAL;
	return 0;
}

/*
 * What the parser lets through and a C string cannot hold: a NUL byte, or
 * the escape \u0000 (an odd run of backslashes before "u0000"), which
 * would cut a value short ("T1\u0000x" read as T1).  0 or CO_EINVAL.
 */
static int no_nul(const char *b, size_t len)
{
	size_t i, run = 0;

	if (memchr(b, '\0', len))
		return co_error_set(CO_EINVAL, "a NUL byte in the body");
	for (i = 0; i < len; i++) {
		if (b[i] == '\\') {
			run++;
			continue;
		}
		if (run % 2 == 1 && len - i >= 5 && strncasecmp(b + i, "u0000", 5) == 0)
			return co_error_set(CO_EINVAL,
					    "\\u0000 (NUL) in a string of the body");
		run = 0;
	}
	return 0;
}

/*
 * Parse the body as a JSON object whose keys are all in `allowed` (NULL
 * terminated).  An empty body is {} when `empty_ok`.  CO_EINVAL naming the
 * problem otherwise.
 */
int co_server__parse_body(cJSON **out, const req *rq, const char *const *allowed,
			  int empty_ok)
{
	const char *end = NULL;
	cJSON *o, *it;
	size_t i;

	if (rq->len == 0 && empty_ok) {
		*out = cJSON_CreateObject();
		return *out ? 0 : co_error_set(CO_ENOMEM, "out of memory");
	}
	/* Not cJSON's require_null_terminated: with a length it wants the
	 * NUL inside that length.  Trailing bytes are checked here instead. */
	if (rq->len && no_nul(rq->body, rq->len) < 0)
		return CO_EINVAL;
	o = rq->len ? cJSON_ParseWithLengthOpts(rq->body, rq->len, &end, 0) : NULL;
	while (o && end < rq->body + rq->len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (o && end != rq->body + rq->len) {
		cJSON_Delete(o);
		o = NULL;
	}
	if (o == NULL)
		return co_error_set(CO_EINVAL, "malformed JSON body near byte %zu",
				    end && rq->body ? (size_t)(end - rq->body)
						    : (size_t)0);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return co_error_set(CO_EINVAL, "the body must be a JSON object");
	}
	cJSON_ArrayForEach(it, o)
	{
		if (json_sane(it, it->string) < 0) {
			cJSON_Delete(o);
			return CO_EINVAL;
		}
		for (i = 0; allowed[i]; i++)
			if (strcmp(allowed[i], it->string) == 0)
				break;
		if (allowed[i] == NULL) {
			co_error_set(CO_EINVAL, "unknown field \"%s\"", it->string);
			cJSON_Delete(o);
			return CO_EINVAL;
		}
	}
	*out = o;
	return 0;
}

/* A string field: *out NULL when absent; CO_EINVAL when not a string. */
int co_server__get_str(const char **out, const cJSON *o, const char *name, int required)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = NULL;
	if (v == NULL || cJSON_IsNull(v)) {
		if (required)
			return co_error_set(CO_EINVAL, "\"%s\" is required", name);
		return 0;
	}
	if (!cJSON_IsString(v))
		return co_error_set(CO_EINVAL, "\"%s\" must be a string", name);
	*out = v->valuestring;
	return 0;
}

/* A TTL in whole seconds: 0..TTL_MAX (positive when `positive`). */
int co_server__get_ttl(int64_t *out, const cJSON *o, int required, int positive)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "ttl");
	double d;

	if (v == NULL || cJSON_IsNull(v)) {
		if (required)
			return co_error_set(CO_EINVAL, "\"ttl\" is required");
		*out = 0;
		return 0;
	}
	d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	if (d != floor(d) || d < (positive ? 1 : 0) || d > (double)TTL_MAX)
		return co_error_set(CO_EINVAL,
				    "\"ttl\" must be a whole number of seconds, %s..%lld",
				    positive ? "1" : "0", (long long)TTL_MAX);
	*out = (int64_t)d;
	return 0;
}

/* An array of strings into v.  Absent is fine. */
int co_server__get_strv(co_strv *v, const cJSON *o, const char *name)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name), *it;
	int error;

	if (a == NULL || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a))
		return co_error_set(CO_EINVAL, "\"%s\" must be an array of strings",
				    name);
	cJSON_ArrayForEach(it, a)
	{
		if (!cJSON_IsString(it))
			return co_error_set(CO_EINVAL,
					    "\"%s\" must be an array of strings", name);
		if ((error = co_strv_push(v, it->valuestring)) < 0)
			return error;
	}
	return 0;
}

/* "metadata": an object, stored canonically.  Absent is {}. */
int co_server__get_meta(co_record *r, const cJSON *o)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metadata");
	char *text;
	int error;

	if (m == NULL || cJSON_IsNull(m))
		return 0;
	if (!cJSON_IsObject(m))
		return co_error_set(CO_EINVAL, "\"metadata\" must be a JSON object");
	if ((text = cJSON_PrintUnformatted(m)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	error = co_record_set_metadata(r, text);
	free(text);
	return error;
}

/* --- small answers --- */

/* Constant-time comparison: the token is a secret. */
int co_server__token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = (unsigned char)(la != lb);

	for (i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return d == 0 && lb > 0;
}

int co_server__id_ok(reply *rp, const char *id)
{
	int error;

	if ((error = co_id_validate(id)) < 0) {
		co_server__reply_code(rp, error, NULL);
		return 0;
	}
	return 1;
}

void co_server__not_found(reply *rp)
{
	co_server__reply_err(rp, 404, "not_found", "no such endpoint", NULL);
}

void co_server__bad_method(reply *rp)
{
	co_server__reply_err(rp, 405, "method_not_allowed", "method not allowed here",
			     NULL);
}
