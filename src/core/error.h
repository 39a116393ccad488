/*
 * error.h - one error type for all of cutover, and a thread-local message.
 *
 * Functions that can fail return int: 0 on success, a negative CO_E* code on
 * failure (as curl has CURLcode).  The human message goes to a thread-local
 * buffer set with co_error_set() and read with co_error_last(), like
 * libgit2's git_error_last().  Only main() and the HTTP boundary turn codes
 * into exit statuses or HTTP statuses (co_error_exit_code()).
 */
#ifndef CO_ERROR_H
#define CO_ERROR_H

enum {
	CO_OK = 0,
	CO_EINVAL = -1,    /* bad usage or input: exit 1, HTTP 400 */
	CO_EUNAVAIL = -2,  /* a store or the state db cannot be reached: exit 2, 503 */
	CO_ECONFLICT = -3, /* claim lost, not owner, exists differently: exit 3, 409 */
	CO_ENOTFOUND = -4, /* no such record: exit 4, 404 */
	CO_EIO = -5,       /* local file or database error: exit 2, 503 */
	CO_ENOMEM = -6,    /* allocation failed: exit 2, 503 */
	CO_ERETRY = -7,    /* internal: a compare-and-swap lost a race; try again */
	CO_ETOOBIG = -8,   /* input over a size limit: exit 1, HTTP 413 */
	CO_EFENCED = -9,   /* internal: an etcd write's fence (the fleet's flags
			    * epoch) moved on; nothing was written (exit 2, 503) */
};

/*
 * Record `code` with a printf-style message as this thread's last error and
 * return `code`, so that callers can write `return co_error_set(...)`.
 */
int co_error_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* This thread's last message ("" if none).  Valid until the next set. */
const char *co_error_last(void);

/* The code given with the last co_error_set() on this thread (0 if none). */
int co_error_last_code(void);

/* Forget this thread's last error. */
void co_error_clear(void);

/* Short name of a code: "invalid", "unavailable", "conflict", ... */
const char *co_error_name(int code);

/* Exit status of DESIGN §7 for a code: 0, 1, 2, 3 or 4. */
int co_error_exit_code(int code);

/* HTTP status for a code: 200, 400, 404, 409, 413 or 503. */
int co_error_http_status(int code);

#endif
