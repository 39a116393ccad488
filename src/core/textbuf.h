/*
 * textbuf.h - a growing NUL-terminated text buffer that remembers running
 * out of memory, for output written straight into one allocation (a
 * record's compact JSON, an etcd txn's request body) rather than built as
 * a cJSON tree and printed.
 *
 * Nothing here escapes: callers put text that needs none (JSON punctuation,
 * fixed names, digits, base64) or escape it themselves.  After a failed
 * allocation every call does nothing and co_textbuf_take() gives NULL, so
 * a writer checks once at the end.
 */
#ifndef CO_CORE_TEXTBUF_H
#define CO_CORE_TEXTBUF_H

#include <stddef.h>

typedef struct co_textbuf {
	char *p;  /* NUL-terminated once anything was put; owned */
	size_t n; /* bytes before the NUL */
	size_t cap;
	int oom;
} co_textbuf;

#define CO_TEXTBUF_INIT {NULL, 0, 0, 0}

/* Room for `more` bytes and the NUL at p + n: 0, or -1 (oom set). */
int co_textbuf_room(co_textbuf *t, size_t more);

void co_textbuf_put(co_textbuf *t, const char *s, size_t len);
void co_textbuf_puts(co_textbuf *t, const char *s);

/* Padded standard base64 of len bytes (len at most INT_MAX / 4 * 3). */
void co_textbuf_b64(co_textbuf *t, const void *data, size_t len);

/* "name":"<padded base64 of len bytes>" (a JSON member; name unescaped). */
void co_textbuf_b64_field(co_textbuf *t, const char *name, const void *data, size_t len);

/* The text, now the caller's to free; NULL (and the buffer freed) after a
 * failed allocation.  The buffer is empty afterwards. */
char *co_textbuf_take(co_textbuf *t);

/* Free the buffer; it is empty afterwards. */
void co_textbuf_clear(co_textbuf *t);

#endif
