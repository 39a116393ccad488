/*
 * server_request.c - what every handler of the server uses: replies (a
 * status and a JSON body, errors as {"error":{"code","message"}} through
 * co_error_http_status(), the one mapping) and the readers of a request's
 * JSON body, strict about unknown fields and types so that a bad request is
 * refused whole before anything is called.
 */
#include "server_internal.h"

#include "core/error.h"
#include "core/id.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* {"error":{"code","message"}} plus the current record when there is one. */
void co_server__reply_err(reply *rp, int status, const char *code, const char *msg,
			  const co_record *current)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	char *js;

	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	if (current && (js = co_record_to_json(current, 0)) != NULL) {
		cJSON_AddItemToObject(o, "record", cJSON_Parse(js));
		free(js);
	}
	co_server__reply_json(rp, status, o);
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
