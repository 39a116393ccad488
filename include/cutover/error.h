/*
 * cutover/error.h - the error codes of the cutover C API and their messages.
 *
 * Every cutover_ function that can fail returns int: 0 (CUTOVER_OK) on
 * success or one negative CUTOVER_E* code.  The codes are those of the
 * `cutover` CLI and HTTP API (exit statuses 1-4, HTTP 400/404/409/413/503),
 * so a program can treat a failure the way an operator would.  Besides the
 * code, a failing call leaves a human message naming the field or value at
 * fault ("task id \"-x\": must start with a letter or digit") in a
 * thread-local buffer, read with cutover_last_error().
 *
 * Nothing here allocates; every string returned is owned by the library.
 */
#ifndef CUTOVER_ERROR_H
#define CUTOVER_ERROR_H

#include "cutover/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cutover_error {
	CUTOVER_OK = 0,
	CUTOVER_EINVAL = -1,	/* bad argument or input: fix the call (exit 1) */
	CUTOVER_EUNAVAIL = -2,	/* a store or the state database cannot be
				 * reached: retry later (exit 2) */
	CUTOVER_ECONFLICT = -3, /* claim lost, not the owner, exists differently,
				 * wrong status (exit 3) */
	CUTOVER_ENOTFOUND = -4, /* no such record (exit 4) */
	CUTOVER_EIO = -5,	/* a local file or database failed (exit 2) */
	CUTOVER_ENOMEM = -6,	/* out of memory (exit 2) */
	/* -7 is internal (a lost compare-and-swap, retried inside) and never
	 * returned by the API. */
	CUTOVER_ETOOBIG = -8 /* input over a size limit: metadata > 64 KiB (exit 1) */
} cutover_error;

/*
 * A short description of `code` ("record not found"), or "unknown error" for
 * a value that is not a CUTOVER_E* code.  Static storage: never free it.
 * Thread-safe.
 */
CUTOVER_API const char *cutover_strerror(int code);

/*
 * The message the last failing cutover_ call made on this thread, naming
 * what was wrong; "" when none.  Owned by the library, valid until the next
 * cutover_ call on the same thread.
 */
CUTOVER_API const char *cutover_last_error(void);

/*
 * Free memory the library handed over as `char *` (cutover_record_to_json).
 * NULL is fine.
 */
CUTOVER_API void cutover_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
