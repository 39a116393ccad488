/*
 * api_record.c - the public record, list and error calls of libcutover
 * (include/cutover/record.h, error.h): thin wrappers over core/record.h
 * and core/error.h.
 *
 * A cutover_record is a co_record under another name (the public struct
 * is never defined: pointers are cast at this boundary), so records pass
 * between the API and the internals without copies.  The public enums
 * mirror the internal ones value for value; the static asserts below keep
 * them in step.  This file may touch record and error internals only.
 */
#include "cutover/cutover.h"

#include "api.h"
#include "core/error.h"
#include "core/id.h"
#include "core/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)CUTOVER_EINVAL == CO_EINVAL && (int)CUTOVER_EUNAVAIL == CO_EUNAVAIL &&
		   (int)CUTOVER_ECONFLICT == CO_ECONFLICT &&
		   (int)CUTOVER_ENOTFOUND == CO_ENOTFOUND && (int)CUTOVER_EIO == CO_EIO &&
		   (int)CUTOVER_ENOMEM == CO_ENOMEM && (int)CUTOVER_ETOOBIG == CO_ETOOBIG,
	       "cutover_error mirrors the CO_E* codes");
_Static_assert(CUTOVER_KIND_TASK == (int)CO_KIND_TASK &&
		   CUTOVER_KIND_SWARM == (int)CO_KIND_SWARM,
	       "cutover_kind mirrors co_kind");
_Static_assert(CUTOVER_STATUS_AVAILABLE == (int)CO_STATUS_AVAILABLE &&
		   CUTOVER_STATUS_CLAIMED == (int)CO_STATUS_CLAIMED &&
		   CUTOVER_STATUS_BLOCKED == (int)CO_STATUS_BLOCKED &&
		   CUTOVER_STATUS_COMPLETE == (int)CO_STATUS_COMPLETE &&
		   CUTOVER_STATUS_FAILED == (int)CO_STATUS_FAILED,
	       "cutover_status mirrors co_status");

struct cutover_record_list {
	co_record_list l;
};

#define REC(r) ((co_record *)(r))
#define CREC(r) ((const co_record *)(r))

const char *cutover_version(void)
{
	return CUTOVER_VERSION_STRING;
}

const char *cutover_strerror(int code)
{
	switch (code) {
	case CUTOVER_OK:
		return "success";
	case CUTOVER_EINVAL:
		return "invalid argument";
	case CUTOVER_EUNAVAIL:
		return "store unavailable";
	case CUTOVER_ECONFLICT:
		return "conflict";
	case CUTOVER_ENOTFOUND:
		return "record not found";
	case CUTOVER_EIO:
		return "local I/O error";
	case CUTOVER_ENOMEM:
		return "out of memory";
	case CUTOVER_ETOOBIG:
		return "input too big";
	default:
		return "unknown error";
	}
}

const char *cutover_last_error(void)
{
	return co_error_last();
}

void cutover_free(void *p)
{
	free(p);
}

int co_api_code(int error)
{
	/* A lost compare-and-swap is retried inside the stores; should one
	 * ever surface, it is contention: the store is too busy now. */
	return error == CO_ERETRY || error == CO_EFENCED ? CO_EUNAVAIL : error;
}

const char *cutover_status_name(cutover_status status)
{
	if ((int)status < CUTOVER_STATUS_AVAILABLE || status > CUTOVER_STATUS_FAILED)
		return "unknown";
	return co_status_name((co_status)status);
}

int cutover_task_new(cutover_record **out, const char *id)
{
	co_record *r = NULL;
	int error;

	if (out == NULL)
		return co_error_set(CO_EINVAL, "cutover_task_new: out is NULL");
	*out = NULL;
	if ((error = co_record_new(&r, CO_KIND_TASK, id)) < 0)
		return error;
	*out = (cutover_record *)r;
	return 0;
}

int cutover_record_set_type(cutover_record *r, const char *type)
{
	char *copy = NULL;

	if (type && (copy = strdup(type)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	free(REC(r)->type);
	REC(r)->type = copy;
	return 0;
}

int cutover_record_set_metadata(cutover_record *r, const char *json)
{
	if (json == NULL)
		return co_error_set(CO_EINVAL, "metadata: NULL (use \"{}\")");
	return co_record_set_metadata(REC(r), json);
}

int cutover_task_add_blocked_by(cutover_record *r, const char *id)
{
	char why[512];
	int error;

	if ((error = co_id_validate(id)) < 0) {
		snprintf(why, sizeof(why), "%s", co_error_last());
		return co_error_set(error, "blocked_by: %s", why);
	}
	if ((error = co_strv_push(&REC(r)->blocked_by, id)) < 0)
		return error;
	REC(r)->status = CO_STATUS_BLOCKED;
	return 0;
}

void cutover_record_free(cutover_record *r)
{
	co_record_free(REC(r));
}

int cutover_record_dup(cutover_record **out, const cutover_record *r)
{
	return co_record_dup((co_record **)out, CREC(r));
}

cutover_kind cutover_record_kind(const cutover_record *r)
{
	return (cutover_kind)CREC(r)->kind;
}

const char *cutover_record_id(const cutover_record *r)
{
	return CREC(r)->id;
}

int64_t cutover_record_rev(const cutover_record *r)
{
	return CREC(r)->rev;
}

int64_t cutover_record_updated_at(const cutover_record *r)
{
	return CREC(r)->updated_at;
}

const char *cutover_record_metadata(const cutover_record *r)
{
	return CREC(r)->metadata ? CREC(r)->metadata : "{}";
}

const char *cutover_record_type(const cutover_record *r)
{
	return CREC(r)->type;
}

cutover_status cutover_record_status(const cutover_record *r)
{
	return (cutover_status)CREC(r)->status;
}

const char *cutover_record_owner(const cutover_record *r)
{
	return CREC(r)->owner;
}

int64_t cutover_record_claim_expires_at(const cutover_record *r)
{
	return CREC(r)->claim_expires_at;
}

int64_t cutover_record_created_at(const cutover_record *r)
{
	return CREC(r)->created_at;
}

size_t cutover_record_blocked_by_count(const cutover_record *r)
{
	return CREC(r)->blocked_by.n;
}

const char *cutover_record_blocked_by(const cutover_record *r, size_t i)
{
	return i < CREC(r)->blocked_by.n ? CREC(r)->blocked_by.v[i] : NULL;
}

char *cutover_record_to_json(const cutover_record *r, int pretty)
{
	return co_record_to_json(CREC(r), pretty);
}

int cutover_record_from_json(cutover_record **out, const char *json, size_t len)
{
	if (out == NULL || json == NULL)
		return co_error_set(CO_EINVAL, "cutover_record_from_json: NULL argument");
	*out = NULL;
	return co_record_from_json((co_record **)out, json, len);
}

/* --- lists --- */

int co_api_list_wrap(cutover_record_list **out, co_record_list *l)
{
	cutover_record_list *pl;

	if ((pl = calloc(1, sizeof(*pl))) == NULL) {
		co_record_list_clear(l);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	pl->l = *l;
	memset(l, 0, sizeof(*l));
	*out = pl;
	return 0;
}

size_t cutover_record_list_count(const cutover_record_list *l)
{
	return l ? l->l.n : 0;
}

const cutover_record *cutover_record_list_at(const cutover_record_list *l, size_t i)
{
	return l && i < l->l.n ? (const cutover_record *)l->l.items[i] : NULL;
}

void cutover_record_list_free(cutover_record_list *l)
{
	if (l == NULL)
		return;
	co_record_list_clear(&l->l);
	free(l);
}
