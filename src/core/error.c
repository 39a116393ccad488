/*
 * error.c - thread-local last error.
 *
 * The message lives in a fixed thread-local buffer so that setting an error
 * can never itself fail for want of memory; long messages are truncated.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_msg[1024];
static _Thread_local int last_code;

int co_error_set(int code, const char *fmt, ...)
{
	/* Formatted aside first: callers often quote co_error_last() in the
	 * new message, and vsnprintf into the buffer it reads from would
	 * garble it. */
	char msg[sizeof(last_msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(last_msg, msg, sizeof(msg));
	last_code = code;
	return code;
}

const char *co_error_last(void)
{
	return last_msg;
}

int co_error_last_code(void)
{
	return last_code;
}

void co_error_clear(void)
{
	last_msg[0] = '\0';
	last_code = 0;
}

const char *co_error_name(int code)
{
	switch (code) {
	case CO_OK:
		return "ok";
	case CO_EINVAL:
		return "invalid";
	case CO_EUNAVAIL:
		return "unavailable";
	case CO_ECONFLICT:
		return "conflict";
	case CO_ENOTFOUND:
		return "not_found";
	case CO_EIO:
		return "io";
	case CO_ENOMEM:
		return "no_memory";
	case CO_ERETRY:
		return "retry";
	case CO_ETOOBIG:
		return "too_large";
	case CO_EFENCED:
		return "fenced";
	default:
		return "error";
	}
}

int co_error_exit_code(int code)
{
	switch (code) {
	case CO_OK:
		return 0;
	case CO_EINVAL:
	case CO_ETOOBIG:
		return 1;
	case CO_ECONFLICT:
		return 3;
	case CO_ENOTFOUND:
		return 4;
	default:
		return 2;
	}
}

int co_error_http_status(int code)
{
	switch (code) {
	case CO_OK:
		return 200;
	case CO_EINVAL:
		return 400;
	case CO_ETOOBIG:
		return 413;
	case CO_ECONFLICT:
		return 409;
	case CO_ENOTFOUND:
		return 404;
	default:
		return 503;
	}
}
