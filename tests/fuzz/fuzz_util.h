/*
 * fuzz_util.h - what the libFuzzer harnesses of tests/fuzz share.
 *
 * A harness checks invariants as well as surviving its input: when one
 * does not hold, fuzz_fail() prints what and aborts, and libFuzzer keeps
 * the input as a crash.  Header-only: each harness is one program.
 */
#ifndef CO_FUZZ_UTIL_H
#define CO_FUZZ_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static inline void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz invariant broken: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* A NUL-terminated copy of the input (parsers that want C strings). */
static inline char *fuzz_strndup(const unsigned char *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
