/*
 * textbuf.c - a growing text buffer that remembers running out of memory
 * (textbuf.h).
 */
#include "textbuf.h"

#include "b64.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

int co_textbuf_room(co_textbuf *t, size_t more)
{
	size_t cap;
	char *p;

	if (t->oom)
		return -1;
	if (t->n + more + 1 <= t->cap)
		return 0;
	cap = t->cap ? t->cap : 256;
	while (cap < t->n + more + 1)
		cap *= 2;
	if ((p = realloc(t->p, cap)) == NULL) {
		t->oom = 1;
		return -1;
	}
	t->p = p;
	t->cap = cap;
	return 0;
}

void co_textbuf_put(co_textbuf *t, const char *s, size_t len)
{
	if (co_textbuf_room(t, len) < 0)
		return;
	memcpy(t->p + t->n, s, len);
	t->n += len;
	t->p[t->n] = '\0';
}

void co_textbuf_puts(co_textbuf *t, const char *s)
{
	co_textbuf_put(t, s, strlen(s));
}

void co_textbuf_b64(co_textbuf *t, const void *data, size_t len)
{
	if (len > (size_t)INT_MAX / 4 * 3) {
		t->oom = 1;
		return;
	}
	if (co_textbuf_room(t, (len + 2) / 3 * 4) < 0)
		return;
	t->n += co_b64_encode_into(t->p + t->n, data, len);
	t->p[t->n] = '\0';
}

void co_textbuf_b64_field(co_textbuf *t, const char *name, const void *data, size_t len)
{
	co_textbuf_puts(t, "\"");
	co_textbuf_puts(t, name);
	co_textbuf_puts(t, "\":\"");
	co_textbuf_b64(t, data, len);
	co_textbuf_puts(t, "\"");
}

char *co_textbuf_take(co_textbuf *t)
{
	char *p = t->oom ? NULL : t->p;

	if (t->oom)
		free(t->p);
	else if (p == NULL)
		p = calloc(1, 1);
	t->p = NULL;
	t->n = t->cap = 0;
	t->oom = 0;
	return p;
}

void co_textbuf_clear(co_textbuf *t)
{
	free(t->p);
	t->p = NULL;
	t->n = t->cap = 0;
	t->oom = 0;
}
