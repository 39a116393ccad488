/*
 * git_form.c - cJSON_Print's layout from JSON text, token by token.
 *
 * The reconciler hashes etcd's compact value of every record into the blob
 * id git would give that record's file, so that the git side of a run
 * needs only its tree (git_form.h says why this is exact).  A million
 * records go through here in one run, so the layout is done in one pass
 * over the bytes with a stack of open containers and no parse tree: the
 * whitespace cJSON_Print puts between two tokens depends only on the two
 * tokens and on what encloses them.
 *
 * Not here: hashing (co_git_blob_id, the git store's), and any judgement of
 * what the tokens mean.
 */
#include "git_form.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

void co_git_form_init(co_git_form *f)
{
	memset(f, 0, sizeof(*f));
}

void co_git_form_clear(co_git_form *f)
{
	if (f == NULL)
		return;
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

/* Room for n more bytes and the NUL. */
static int reserve(co_git_form *f, size_t n)
{
	size_t cap;
	char *p;

	if (f->len + n + 1 <= f->cap)
		return 0;
	cap = f->cap ? f->cap : 512;
	while (cap < f->len + n + 1)
		cap *= 2;
	if ((p = realloc(f->buf, cap)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory (git form of %zu bytes)",
				    f->len + n);
	f->buf = p;
	f->cap = cap;
	return 0;
}

static int put(co_git_form *f, const char *s, size_t n)
{
	int error = reserve(f, n);

	if (error == 0) {
		memcpy(f->buf + f->len, s, n);
		f->len += n;
	}
	return error;
}

/* `lead` (0 to 2 bytes), then `tabs` tabs. */
static int put_indent(co_git_form *f, const char *lead, size_t tabs)
{
	size_t n = strlen(lead);
	int error = reserve(f, n + tabs);

	if (error == 0) {
		memcpy(f->buf + f->len, lead, n);
		memset(f->buf + f->len + n, '\t', tabs);
		f->len += n + tabs;
	}
	return error;
}

static int is_space(unsigned char c)
{
	/* The whitespace co_snapshot_text_hash() skips, and JSON's. */
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_scalar(unsigned char c)
{
	/* The bytes of cJSON's numbers and of true, false, null. */
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || c == '-' || c == '+' || c == '.';
}

/* Where the string starting at p (a quote) ends, just past its closing
 * quote; NULL if it does not end before `end`. */
static const unsigned char *string_end(const unsigned char *p, const unsigned char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++; /* the escaped byte is never the closing quote */
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* What the next token may be. */
enum expect {
	VALUE,		/* any value */
	VALUE_OR_CLOSE, /* just after '[': a value or ']' */
	KEY,		/* after ',' in an object */
	KEY_OR_CLOSE,	/* just after '{': a key or '}' */
	COLON,		/* after a key */
	NEXT,		/* after a value inside a container: ',' or the close */
	END,		/* after the top value: nothing */
};

int co_git_form_build(co_git_form *f, const char *json, size_t len)
{
	const unsigned char *p = (const unsigned char *)json, *end = p + len, *q;
	unsigned char open[CO_GIT_FORM_DEPTH_MAX]; /* '{' or '[' per level */
	enum expect want = VALUE;
	size_t depth = 0;
	int error = 0;

	f->len = 0;
	while (error == 0) {
		unsigned char c;

		while (p < end && is_space(*p))
			p++;
		if (p == end)
			break;
		c = *p;
		switch (want) {
		case KEY_OR_CLOSE:
			if (c == '}') {
				/* An empty object: cJSON_Print still breaks the line. */
				error = put_indent(f, "\n", depth - 1);
				goto close;
			}
			/* fall through */
		case KEY:
			if (c != '"' || (q = string_end(p, end)) == NULL)
				return 1;
			if ((error = put_indent(f, want == KEY ? ",\n" : "\n", depth)) <
				0 ||
			    (error = put(f, (const char *)p, (size_t)(q - p))) < 0)
				break;
			p = q;
			want = COLON;
			continue;
		case COLON:
			if (c != ':')
				return 1;
			error = put(f, ":\t", 2);
			p++;
			want = VALUE;
			continue;
		case NEXT:
			if (c == ',') {
				p++;
				if (open[depth - 1] == '{') {
					want = KEY;
				} else {
					error = put(f, ", ", 2);
					want = VALUE;
				}
				continue;
			}
			if (c != (open[depth - 1] == '{' ? '}' : ']'))
				return 1;
			if (c == '}')
				error = put_indent(f, "\n", depth - 1);
			goto close;
		case END:
			return 1;
		case VALUE_OR_CLOSE:
			if (c == ']')
				goto close;
			/* fall through */
		case VALUE:
			break;
		}
		if (error < 0)
			break;
		/* A value. */
		if (c == '{' || c == '[') {
			if (depth == CO_GIT_FORM_DEPTH_MAX)
				return 1;
			open[depth++] = c;
			error = put(f, (const char *)p, 1);
			p++;
			want = c == '{' ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
			continue;
		}
		if (c == '"') {
			if ((q = string_end(p, end)) == NULL)
				return 1;
		} else if (is_scalar(c)) {
			for (q = p + 1; q < end && is_scalar(*q); q++)
				;
		} else {
			return 1;
		}
		error = put(f, (const char *)p, (size_t)(q - p));
		p = q;
		want = depth ? NEXT : END;
		continue;
close:
		/* c closes the innermost container: ']' or '}' */
		if (error == 0)
			error = put(f, (const char *)p, 1);
		p++;
		depth--;
		want = depth ? NEXT : END;
	}
	if (error < 0)
		return error;
	if (want != END)
		return 1;
	if ((error = put(f, "\n", 1)) < 0)
		return error;
	f->buf[f->len] = '\0';
	return 0;
}
