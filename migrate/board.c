/*
 * board.c - the legacy markdown task board, parsed into task records.
 *
 * The board was written by people, so the parser reads it the way GitHub
 * renders it rather than the way the old Python one-liner did
 * (`line.split('|')[3]`): a table is a header row followed by an alignment
 * row (`|---|:--:|`), leading and trailing pipes are optional, `\|` is a
 * pipe inside a cell, and a table ends at the first line that is not a row.
 * Fenced code blocks are skipped, because the boards quote shell and Python
 * that contain pipes.  A table is a task table when its header names an ID
 * column and a Status column; everything else (the status legend, metrics
 * tables) is prose to us.
 *
 * Cells are cleaned of the decoration people put around values (bold,
 * italics, code spans, links, emoji) before they are interpreted, but the
 * title is kept as written.  A row that cannot be mapped is not guessed at:
 * it is reported with its line and the reason, and the caller decides.
 *
 * Deliberately not here: files, clocks, stores.  Pure text in, records out.
 */
#include "board.h"

#include "../src/core/error.h"
#include "../src/core/id.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 64

enum role {
	COL_OTHER = 0,
	COL_ID,
	COL_TASK,
	COL_STATUS,
	COL_OWNER,
	COL_BLOCKED,
	COL_TITLE,
	COL_TYPE,
};

typedef struct cells {
	char *v[MAX_COLS];
	size_t n;
} cells;

static void cells_clear(cells *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		free(c->v[i]);
	c->n = 0;
}

void co_board_free(co_board *b)
{
	size_t i;

	if (!b)
		return;
	co_record_list_clear(&b->tasks);
	free(b->lines);
	for (i = 0; i < b->n_bad; i++)
		free(b->bad[i].reason);
	free(b->bad);
	free(b);
}

static char *trim_dup(const char *s, size_t len)
{
	char *out;

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if ((out = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

/*
 * 1 if the line is a table row (holds an unescaped pipe); its cells go to
 * *c.  GFM: the leading and trailing pipes are optional, `\|` is a literal
 * pipe (the backslash is dropped), other backslashes stay.  CO_ENOMEM.
 */
static int split_row(cells *c, const char *line, size_t len)
{
	char *buf = NULL;
	size_t i = 0, b = 0, end = len;
	int pipes = 0, error = 0;

	c->n = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	while (end > i && isspace((unsigned char)line[end - 1]))
		end--;
	for (size_t k = i; k < end; k++) {
		if (line[k] == '\\' && k + 1 < end) {
			k++;
			continue;
		}
		if (line[k] == '|')
			pipes++;
	}
	if (pipes == 0)
		return 0;
	if ((buf = malloc(end - i + 1)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if (i < end && line[i] == '|')
		i++;
	for (; i <= end; i++) {
		int last = i == end;

		if (!last && line[i] == '\\' && i + 1 < end && line[i + 1] == '|') {
			buf[b++] = '|';
			i++;
			continue;
		}
		if (!last && line[i] == '\\' && i + 1 < end) {
			buf[b++] = line[i++];
			buf[b++] = line[i];
			continue;
		}
		if (last || line[i] == '|') {
			/* A trailing pipe closes the row: no empty cell after it. */
			if (last && b == 0 && i > 0 && line[i - 1] == '|' &&
			    !(i >= 2 && line[i - 2] == '\\'))
				break;
			if (c->n == MAX_COLS)
				break;
			if ((c->v[c->n] = trim_dup(buf, b)) == NULL) {
				error = co_error_set(CO_ENOMEM, "out of memory");
				goto done;
			}
			c->n++;
			b = 0;
			continue;
		}
		buf[b++] = line[i];
	}
	error = 1;
done:
	free(buf);
	if (error < 0)
		cells_clear(c);
	return error;
}

/* 1 if every cell is an alignment cell: ":?-+:?". */
static int is_align_row(const cells *c)
{
	size_t i, k;

	if (c->n == 0)
		return 0;
	for (i = 0; i < c->n; i++) {
		const char *s = c->v[i];
		size_t n = strlen(s), dashes = 0;

		for (k = 0; k < n; k++) {
			if (s[k] == '-')
				dashes++;
			else if (!(s[k] == ':' && (k == 0 || k == n - 1)) && s[k] != ' ')
				return 0;
		}
		if (dashes == 0)
			return 0;
	}
	return 1;
}

/* Decode one UTF-8 code point at s (len bytes left); its length in *n. */
static unsigned utf8_decode(const unsigned char *s, size_t len, size_t *n)
{
	if (s[0] < 0x80 || len < 2) {
		*n = 1;
		return s[0];
	}
	if ((s[0] & 0xe0) == 0xc0) {
		*n = 2;
		return ((s[0] & 0x1fu) << 6) | (s[1] & 0x3fu);
	}
	if ((s[0] & 0xf0) == 0xe0 && len >= 3) {
		*n = 3;
		return ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
	}
	if ((s[0] & 0xf8) == 0xf0 && len >= 4) {
		*n = 4;
		return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) |
		       ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
	}
	*n = 1;
	return s[0];
}

/*
 * The plain text of a cell: markdown links become their text, emphasis and
 * code markers go, and non-ASCII characters (emoji, variation selectors)
 * are dropped; the first non-ASCII code point goes to *emoji (0 if none).
 * Leading/trailing underscores (italics) go too; inner ones stay, since
 * IDs may hold them.  Returns a malloc'd string or NULL.
 */
static char *plain(const char *s, unsigned *emoji)
{
	size_t len = strlen(s), i = 0, o = 0, n;
	char *out = malloc(len + 1), *t;
	unsigned cp;

	if (emoji)
		*emoji = 0;
	if (!out)
		return NULL;
	while (i < len) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x80) {
			cp = utf8_decode((const unsigned char *)s + i, len - i, &n);
			if (emoji && *emoji == 0 && cp != 0xfe0f)
				*emoji = cp;
			i += n;
			continue;
		}
		if (ch == '*' || ch == '`' || ch == '~' || ch == '[') {
			i++;
			continue;
		}
		if (ch == ']') {
			/* "[text](url)": skip the url */
			i++;
			if (i < len && s[i] == '(') {
				const char *close = strchr(s + i, ')');

				i = close ? (size_t)(close - s) + 1 : len;
			}
			continue;
		}
		out[o++] = (char)ch;
		i++;
	}
	out[o] = '\0';
	t = trim_dup(out, o);
	free(out);
	if (!t)
		return NULL;
	n = strlen(t);
	while (n > 0 && t[n - 1] == '_')
		t[--n] = '\0';
	for (i = 0; t[i] == '_'; i++)
		;
	memmove(t, t + i, n - i + 1);
	return t;
}

/* Lower-case, '_' and '-' as spaces, single spaces, decoration removed. */
static char *norm_header(const char *s)
{
	char *p = plain(s, NULL), *o, *q;
	int space = 0;

	if (!p)
		return NULL;
	for (q = o = p; *q; q++) {
		char ch = (char)tolower((unsigned char)*q);

		if (ch == '_' || ch == '-' || isspace((unsigned char)ch) || ch == ':') {
			space = o != p;
			continue;
		}
		if (space)
			*o++ = ' ';
		space = 0;
		*o++ = ch;
	}
	*o = '\0';
	return p;
}

static int in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

static enum role header_role(const char *h)
{
	static const char *const ids[] = {"id", "task id", "ticket", "key", NULL};
	static const char *const status[] = {"status", "state", NULL};
	static const char *const owner[] = {"owner", "claimed by", "assignee", "assigned to",
					    "claimed", "swarm", NULL};
	static const char *const blocked[] = {"blocked by", "depends on", "dependencies",
					      "blockers", "deps", "blocked", NULL};
	static const char *const title[] = {"title", "name", "description", "summary", NULL};

	if (in_list(h, ids))
		return COL_ID;
	if (strcmp(h, "task") == 0)
		return COL_TASK;
	if (in_list(h, status))
		return COL_STATUS;
	if (in_list(h, owner))
		return COL_OWNER;
	if (in_list(h, blocked))
		return COL_BLOCKED;
	if (in_list(h, title))
		return COL_TITLE;
	if (strcmp(h, "type") == 0)
		return COL_TYPE;
	return COL_OTHER;
}

typedef struct layout {
	int id, status, owner, blocked, title, type;
	enum role role[MAX_COLS];
	char *name[MAX_COLS]; /* normalized headers */
	size_t n;
} layout;

static void layout_clear(layout *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->name[i]);
	l->n = 0;
}

/* 1 if the header row is a task table's (an ID column and a Status column). */
static int layout_from_header(layout *l, const cells *h)
{
	int task = -1;
	size_t i;

	memset(l, 0, sizeof(*l));
	l->id = l->status = l->owner = l->blocked = l->title = l->type = -1;
	for (i = 0; i < h->n; i++) {
		if ((l->name[i] = norm_header(h->v[i])) == NULL) {
			l->n = i;
			layout_clear(l);
			return co_error_set(CO_ENOMEM, "out of memory");
		}
		l->n = i + 1;
		l->role[i] = header_role(l->name[i]);
		switch (l->role[i]) {
		case COL_ID: if (l->id < 0) l->id = (int)i; break;
		case COL_TASK: if (task < 0) task = (int)i; break;
		case COL_STATUS: if (l->status < 0) l->status = (int)i; break;
		case COL_OWNER: if (l->owner < 0) l->owner = (int)i; break;
		case COL_BLOCKED: if (l->blocked < 0) l->blocked = (int)i; break;
		case COL_TITLE: if (l->title < 0) l->title = (int)i; break;
		case COL_TYPE: if (l->type < 0) l->type = (int)i; break;
		default: break;
		}
	}
	/* "Task" is the ID when there is no ID column, the title otherwise. */
	if (task >= 0) {
		if (l->id < 0)
			l->id = task;
		else if (l->title < 0)
			l->title = task;
	}
	if (l->id < 0 || l->status < 0) {
		layout_clear(l);
		return 0;
	}
	return 1;
}

/* 1 for the ways people write "nobody": "", "-", "—", "none", "n/a", ... */
static int is_none(const char *raw, const char *plain_text)
{
	static const char *const none[] = {"",     "-",    "none",       "n/a", "na",
					   "null", "nobody", "unassigned", "tbd", NULL};
	char low[32];
	size_t i;

	if (strcmp(raw, "\xe2\x80\x94") == 0 || strcmp(raw, "\xe2\x80\x93") == 0)
		return 1;
	if (strlen(plain_text) >= sizeof(low))
		return 0;
	for (i = 0; plain_text[i]; i++)
		low[i] = (char)tolower((unsigned char)plain_text[i]);
	low[i] = '\0';
	return in_list(low, none);
}

/*
 * Map a status cell.  1 and *out on success, 0 if unknown.  The board's
 * emoji alone are enough; words win over emoji when both are there.
 */
static int map_status(co_status *out, const char *cell)
{
	unsigned emoji;
	char *p = plain(cell, &emoji), *q, *o;
	int space = 0, ok = 1;

	if (!p)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (q = o = p; *q; q++) {
		char ch = (char)toupper((unsigned char)*q);

		if (ch == '_' || ch == '-' || isspace((unsigned char)ch)) {
			space = o != p;
			continue;
		}
		if (space)
			*o++ = ' ';
		space = 0;
		*o++ = ch;
	}
	*o = '\0';
	if (strcmp(p, "AVAILABLE") == 0 || strcmp(p, "OPEN") == 0 || strcmp(p, "TODO") == 0)
		*out = CO_STATUS_AVAILABLE;
	else if (strcmp(p, "BLOCKED") == 0)
		*out = CO_STATUS_BLOCKED;
	else if (strcmp(p, "IN PROGRESS") == 0 || strcmp(p, "INPROGRESS") == 0 ||
		 strcmp(p, "CLAIMED") == 0)
		*out = CO_STATUS_CLAIMED;
	else if (strcmp(p, "DONE") == 0 || strcmp(p, "COMPLETE") == 0 ||
		 strcmp(p, "COMPLETED") == 0)
		*out = CO_STATUS_COMPLETE;
	else if (strcmp(p, "FAILED") == 0)
		*out = CO_STATUS_FAILED;
	else if (*p == '\0' && emoji == 0x1f535)
		*out = CO_STATUS_AVAILABLE;
	else if (*p == '\0' && emoji == 0x1f534)
		*out = CO_STATUS_BLOCKED;
	else if (*p == '\0' && emoji == 0x1f7e1)
		*out = CO_STATUS_CLAIMED;
	else if (*p == '\0' && emoji == 0x2705)
		*out = CO_STATUS_COMPLETE;
	else if (*p == '\0' && emoji == 0x274c)
		*out = CO_STATUS_FAILED;
	else
		ok = 0;
	free(p);
	return ok;
}

static int add_bad(co_board *b, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int add_bad(co_board *b, size_t line, const char *fmt, ...)
{
	co_board_bad_row *nb;
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if ((nb = realloc(b->bad, (b->n_bad + 1) * sizeof(*nb))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	b->bad = nb;
	if ((nb[b->n_bad].reason = strdup(buf)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	nb[b->n_bad++].line = line;
	return 0;
}

static const char *cell_at(const cells *c, int i)
{
	return i >= 0 && (size_t)i < c->n ? c->v[i] : "";
}

/* Split a blockers cell on commas, semicolons and spaces into r->blocked_by.
 * 0, or 1 with *bad naming the first invalid ID (caller frees). */
static int parse_blockers(co_record *r, const char *cell, char **bad)
{
	char *p = plain(cell, NULL), *tok, *save = NULL;
	int error = 0;

	*bad = NULL;
	if (!p)
		return co_error_set(CO_ENOMEM, "out of memory");
	if (is_none(cell, p))
		goto done;
	for (tok = strtok_r(p, ", ;\t", &save); tok; tok = strtok_r(NULL, ", ;\t", &save)) {
		if (strcmp(tok, "and") == 0 || strcmp(tok, "&") == 0)
			continue;
		if (co_id_validate(tok) < 0) {
			if ((*bad = strdup(tok)) == NULL)
				error = co_error_set(CO_ENOMEM, "out of memory");
			else
				error = 1;
			goto done;
		}
		if (co_strv_push(&r->blocked_by, tok) < 0) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
	}
done:
	free(p);
	return error;
}

/* Append r (taken, also on failure) and its line. */
static int push_task(co_board *b, co_record *r, size_t line)
{
	size_t *nl = realloc(b->lines, (b->tasks.n + 1) * sizeof(*nl));

	if (!nl) {
		co_record_free(r);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	b->lines = nl;
	nl[b->tasks.n] = line;
	return co_record_list_push(&b->tasks, r);
}

/* One data row of a task table: a task, a bad row, or CO_ENOMEM. */
static int parse_row(co_board *b, const layout *l, const cells *c, size_t line)
{
	co_record *r = NULL;
	cJSON *meta = NULL;
	char *id = NULL, *owner = NULL, *badid = NULL, *json = NULL, *msg = NULL;
	const char *scell = cell_at(c, l->status);
	co_status st = CO_STATUS_AVAILABLE;
	size_t i, k;
	int error = 0, rc;

	if ((id = plain(cell_at(c, l->id), NULL)) == NULL)
		goto oom;
	if (*id == '\0') {
		error = add_bad(b, line, "no task ID");
		goto done;
	}
	if (co_id_validate(id) < 0) {
		error = add_bad(b, line, "invalid task ID \"%s\": %s", id, co_error_last());
		goto done;
	}
	for (k = 0; k < b->tasks.n; k++) {
		if (strcmp(b->tasks.items[k]->id, id) == 0) {
			error = add_bad(b, line, "duplicate task ID \"%s\" (first on line %zu)",
					id, b->lines[k]);
			goto done;
		}
	}
	if ((rc = map_status(&st, scell)) < 0) {
		error = rc;
		goto done;
	}
	if (rc == 0) {
		error = add_bad(b, line,
				"%s: unknown status \"%s\" (expected AVAILABLE, BLOCKED, "
				"IN PROGRESS or DONE)",
				id, scell);
		goto done;
	}
	if ((owner = plain(cell_at(c, l->owner), NULL)) == NULL)
		goto oom;
	if (*owner == '@')
		memmove(owner, owner + 1, strlen(owner));
	if (is_none(cell_at(c, l->owner), owner))
		owner[0] = '\0';
	if (st == CO_STATUS_CLAIMED && *owner == '\0') {
		error = add_bad(b, line, "%s: IN PROGRESS without an owner", id);
		goto done;
	}
	if (*owner && co_id_validate(owner) < 0) {
		error = add_bad(b, line, "%s: invalid owner \"%s\": %s", id, owner,
				co_error_last());
		goto done;
	}
	if (co_record_new(&r, CO_KIND_TASK, id) < 0)
		goto oom;
	r->rev = 1;
	r->status = st;
	if (l->blocked >= 0) {
		if ((rc = parse_blockers(r, cell_at(c, l->blocked), &badid)) < 0) {
			error = rc;
			goto done;
		}
		if (rc == 1) {
			error = add_bad(b, line, "%s: invalid ID \"%s\" in Blocked by", id, badid);
			goto done;
		}
	}
	if ((meta = cJSON_CreateObject()) == NULL)
		goto oom;
	if (st == CO_STATUS_CLAIMED) {
		if ((r->owner = strdup(owner)) == NULL)
			goto oom;
	} else if (*owner && !cJSON_AddStringToObject(meta, "owner", owner)) {
		goto oom;
	}
	if (l->type >= 0 && *cell_at(c, l->type) &&
	    (r->type = plain(cell_at(c, l->type), NULL)) == NULL)
		goto oom;
	if (l->title >= 0 && *cell_at(c, l->title) &&
	    !cJSON_AddStringToObject(meta, "title", cell_at(c, l->title)))
		goto oom;
	for (i = 0; i < l->n; i++) {
		if (l->role[i] != COL_OTHER && (int)i != l->title)
			continue;
		if ((int)i == l->title || !*l->name[i] || !*cell_at(c, (int)i) ||
		    cJSON_GetObjectItemCaseSensitive(meta, l->name[i]))
			continue;
		if (!cJSON_AddStringToObject(meta, l->name[i], cell_at(c, (int)i)))
			goto oom;
	}
	if ((json = cJSON_PrintUnformatted(meta)) == NULL)
		goto oom;
	if (co_record_set_metadata(r, json) < 0) {
		error = add_bad(b, line, "%s: %s", id, co_error_last());
		goto done;
	}
	error = push_task(b, r, line);
	r = NULL;
	goto done;
oom:
	error = co_error_set(CO_ENOMEM, "out of memory");
done:
	free(msg);
	free(json);
	cJSON_Delete(meta);
	co_record_free(r);
	free(badid);
	free(owner);
	free(id);
	return error;
}

/* A fence line: ``` or ~~~ after at most three spaces. */
static int is_fence(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && i < 3 && s[i] == ' ')
		i++;
	return len - i >= 3 && (strncmp(s + i, "```", 3) == 0 || strncmp(s + i, "~~~", 3) == 0);
}

int co_board_parse(co_board **out, const char *text, size_t len)
{
	co_board *b = NULL;
	cells hdr = {{0}, 0}, row = {{0}, 0};
	layout l;
	const char *p = text, *end = text + len;
	const char *prev = NULL;
	size_t prev_len = 0, lineno = 0;
	int in_fence = 0, in_table = 0, error = 0, rc;

	memset(&l, 0, sizeof(l));
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *line = p;

		p = nl ? nl + 1 : end;
		lineno++;
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (is_fence(line, ll)) {
			in_fence = !in_fence;
			in_table = 0;
			layout_clear(&l);
			prev = NULL;
			continue;
		}
		if (in_fence)
			continue;
		if ((rc = split_row(&row, line, ll)) < 0) {
			error = rc;
			goto done;
		}
		if (rc == 0) { /* not a row: any table ends here */
			in_table = 0;
			layout_clear(&l);
			prev = NULL;
			continue;
		}
		if (in_table) {
			if ((error = parse_row(b, &l, &row, lineno)) < 0)
				goto done;
			cells_clear(&row);
			continue;
		}
		/* An alignment row makes the row before it a header. */
		if (prev && is_align_row(&row)) {
			if ((rc = split_row(&hdr, prev, prev_len)) < 0 ||
			    (rc > 0 && (rc = layout_from_header(&l, &hdr)) < 0)) {
				error = rc;
				goto done;
			}
			cells_clear(&hdr);
			if (rc == 1) {
				in_table = 1;
				b->n_tables++;
			}
			prev = NULL;
			cells_clear(&row);
			continue;
		}
		cells_clear(&row);
		prev = line;
		prev_len = ll;
	}
	if (b->n_tables == 0) {
		error = co_error_set(CO_EINVAL, "no task table found (a table whose header row "
						"names Task or ID and Status)");
		goto done;
	}
	*out = b;
	b = NULL;
done:
	cells_clear(&row);
	cells_clear(&hdr);
	layout_clear(&l);
	co_board_free(b);
	return error;
}
