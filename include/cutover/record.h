/*
 * cutover/record.h - tasks and swarms as the cutover C API hands them out.
 *
 * A cutover_record is opaque: read it with the accessors below.  Every
 * record a cutover_ function returns through an `out` pointer belongs to
 * the caller, who frees it with cutover_record_free(); strings an accessor
 * returns are borrowed from their record and live as long as it does.
 * Timestamps are Unix seconds, 0 meaning "not set".  A record is a value:
 * not shared between threads unless the caller locks.
 *
 * The fields and their meaning are those of the canonical JSON form of
 * DESIGN §1 (cutover_record_to_json): a task has a type, metadata (a JSON
 * object, at most 64 KiB), a status, an owner while claimed, an optional
 * claim expiry and the IDs it is blocked by; `rev` counts its writes from 1.
 * IDs match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$.
 */
#ifndef CUTOVER_RECORD_H
#define CUTOVER_RECORD_H

#include "cutover/export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cutover_record cutover_record;
typedef struct cutover_record_list cutover_record_list;

typedef enum cutover_kind { CUTOVER_KIND_TASK = 0, CUTOVER_KIND_SWARM = 1 } cutover_kind;

typedef enum cutover_status {
	CUTOVER_STATUS_AVAILABLE = 0,
	CUTOVER_STATUS_CLAIMED,
	CUTOVER_STATUS_BLOCKED,
	CUTOVER_STATUS_COMPLETE,
	CUTOVER_STATUS_FAILED
} cutover_status;

/* "available", "claimed", ...; "unknown" for another value.  Static. */
CUTOVER_API const char *cutover_status_name(cutover_status status);

/*
 * A new task `id` to pass to cutover_*_task_create(): status available,
 * metadata {}, no type, rev 0.  Errors: CUTOVER_EINVAL (bad ID, naming the
 * offending character), CUTOVER_ENOMEM.  *out belongs to the caller.
 */
CUTOVER_API int cutover_task_new(cutover_record **out, const char *id);

/* Set a task's type (NULL: none).  CUTOVER_ENOMEM. */
CUTOVER_API int cutover_record_set_type(cutover_record *r, const char *type);

/*
 * Set metadata from JSON text: an object of at most 64 KiB, stored in its
 * canonical form (keys sorted).  CUTOVER_EINVAL (not an object),
 * CUTOVER_ETOOBIG, CUTOVER_ENOMEM; the record is unchanged on error.
 */
CUTOVER_API int cutover_record_set_metadata(cutover_record *r, const char *json);

/*
 * Make a new task blocked by task `id` (status blocked until the stores
 * see it otherwise).  CUTOVER_EINVAL (bad ID), CUTOVER_ENOMEM.
 */
CUTOVER_API int cutover_task_add_blocked_by(cutover_record *r, const char *id);

/* Free a record; NULL is fine. */
CUTOVER_API void cutover_record_free(cutover_record *r);

/* Deep copy into *out (the caller's).  CUTOVER_ENOMEM. */
CUTOVER_API int cutover_record_dup(cutover_record **out, const cutover_record *r);

/* --- reading a record (strings borrowed from r; NULL when unset) --- */

CUTOVER_API cutover_kind cutover_record_kind(const cutover_record *r);
CUTOVER_API const char *cutover_record_id(const cutover_record *r);
CUTOVER_API int64_t cutover_record_rev(const cutover_record *r);
CUTOVER_API int64_t cutover_record_updated_at(const cutover_record *r);
/* Canonical JSON text of the metadata object; "{}" when empty. */
CUTOVER_API const char *cutover_record_metadata(const cutover_record *r);
/* Task fields (a swarm reads as an available task with no owner). */
CUTOVER_API const char *cutover_record_type(const cutover_record *r);
CUTOVER_API cutover_status cutover_record_status(const cutover_record *r);
CUTOVER_API const char *cutover_record_owner(const cutover_record *r);
CUTOVER_API int64_t cutover_record_claim_expires_at(const cutover_record *r);
CUTOVER_API int64_t cutover_record_created_at(const cutover_record *r);
CUTOVER_API size_t cutover_record_blocked_by_count(const cutover_record *r);
/* The i-th blocking ID, NULL when i is out of range. */
CUTOVER_API const char *cutover_record_blocked_by(const cutover_record *r, size_t i);

/*
 * The canonical JSON form: compact (pretty 0, as etcd stores it) or
 * indented with a final newline (pretty 1, as git stores it).  A malloc'd
 * string the caller frees with cutover_free(); NULL when out of memory.
 */
CUTOVER_API char *cutover_record_to_json(const cutover_record *r, int pretty);

/*
 * Parse a record from `len` bytes of JSON, validating every field (unknown
 * keys are refused).  CUTOVER_EINVAL naming the field, CUTOVER_ENOMEM.
 * *out belongs to the caller.
 */
CUTOVER_API int cutover_record_from_json(cutover_record **out, const char *json,
					 size_t len);

/* --- lists (cutover_*_list) --- */

/* Records in the list, sorted by ID. */
CUTOVER_API size_t cutover_record_list_count(const cutover_record_list *l);
/* The i-th record, borrowed from the list (NULL when out of range). */
CUTOVER_API const cutover_record *cutover_record_list_at(const cutover_record_list *l,
							 size_t i);
/* Free a list and every record in it; NULL is fine. */
CUTOVER_API void cutover_record_list_free(cutover_record_list *l);

#ifdef __cplusplus
}
#endif

#endif
