/*
 * redact.c - one redaction policy for everything cutover writes outside
 * the stores, and the field-level diff that reports show (issue 22).
 *
 * The idea: a secret's value never leaves this module, but whether it
 * changed does.  Two versions of a record are redacted together: at every
 * field the policy names, both values are digested with HMAC-SHA256 under a
 * key drawn at random when the policy is made, and both are replaced by a
 * marker that says "equal" or "differs".  A keyed hash rather than a plain
 * one: a short secret (a PIN, a four-word password) cannot be found again
 * from a digest by trying candidates, since nobody outside this process
 * holds the key.  The digests themselves are never written anywhere; the
 * key dies with the policy.
 *
 * Redaction works on parsed copies (cJSON) and gives JSON text back, so
 * that callers never hold a half-redacted tree.  It is idempotent: markers
 * found in the input are kept with their verdict, which lets a report
 * redact rows read back from the database (redacted when written, or
 * written by an older cutover that did not redact) with the same call.
 *
 * The field-level diff lives here too, because it must see redaction: a
 * redacted field is always listed (equal or not) and its values are
 * markers.  This module does not render anything (report_diff.c does) and
 * does not know records as structs: JSON objects in, JSON text out.
 */
#include "redact.h"

#include "error.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LEN 32
#define MAX_DEPTH 64 /* deeper paths are redacted whole: no stack exhaustion */

static const char *const default_patterns[] = {
    "token",   "secret", "password",   "passwd",
    "api_key", "apikey", "credential", "private_key",
};

typedef struct entry {
	int is_path;
	char *pattern; /* lower case (key-name pattern) */
	char **seg;    /* path segments; "*" matches any key */
	size_t nseg;
} entry;

struct co_redact {
	entry *e;
	size_t n;
	unsigned char key[KEY_LEN];
};

/* ---- the policy ---- */

static void entry_clear(entry *e)
{
	size_t i;

	free(e->pattern);
	for (i = 0; i < e->nseg; i++)
		free(e->seg[i]);
	free(e->seg);
}

void co_redact_free(co_redact *rd)
{
	size_t i;

	if (rd == NULL)
		return;
	for (i = 0; i < rd->n; i++)
		entry_clear(&rd->e[i]);
	free(rd->e);
	OPENSSL_cleanse(rd->key, sizeof(rd->key));
	free(rd);
}

size_t co_redact_count(const co_redact *rd)
{
	return rd ? rd->n : 0;
}

static int add_pattern(co_redact *rd, const char *s)
{
	entry *e = &rd->e[rd->n];
	size_t i;

	if (*s == '\0')
		return co_error_set(CO_EINVAL, "redact: an entry is empty");
	for (i = 0; s[i]; i++)
		if (iscntrl((unsigned char)s[i]))
			return co_error_set(CO_EINVAL,
					    "redact: \"%s\": control character in a "
					    "key-name pattern",
					    s);
	memset(e, 0, sizeof(*e));
	if ((e->pattern = strdup(s)) == NULL)
		return co_error_set(CO_ENOMEM, "redact: out of memory");
	for (i = 0; e->pattern[i]; i++)
		e->pattern[i] = (char)tolower((unsigned char)e->pattern[i]);
	rd->n++;
	return 0;
}

static int add_path(co_redact *rd, const char *s)
{
	entry *e = &rd->e[rd->n];
	const char *p = s, *dot;

	if (strncmp(p, "$.", 2) == 0)
		p += 2;
	memset(e, 0, sizeof(*e));
	e->is_path = 1;
	for (;; p = dot + 1) {
		size_t len;
		char **grown;

		dot = strchr(p, '.');
		len = dot ? (size_t)(dot - p) : strlen(p);
		if (len == 0) {
			entry_clear(e);
			return co_error_set(CO_EINVAL,
					    "redact: \"%s\": empty segment in a path "
					    "(write metadata.auth.key)",
					    s);
		}
		if ((grown = realloc(e->seg, (e->nseg + 1) * sizeof(*grown))) == NULL ||
		    (grown[e->nseg] = strndup(p, len)) == NULL) {
			if (grown)
				e->seg = grown;
			entry_clear(e);
			return co_error_set(CO_ENOMEM, "redact: out of memory");
		}
		e->seg = grown;
		e->nseg++;
		if (dot == NULL)
			break;
	}
	rd->n++;
	return 0;
}

int co_redact_new(co_redact **out, const char *const *entries, size_t n, int defaults)
{
	size_t ndef = sizeof(default_patterns) / sizeof(*default_patterns), i, cap;
	co_redact *rd = calloc(1, sizeof(*rd));
	int error = 0;

	if (rd == NULL)
		return co_error_set(CO_ENOMEM, "redact: out of memory");
	/* Room for every entry and, at most once, the defaults. */
	cap = n + ndef;
	if ((rd->e = calloc(cap ? cap : 1, sizeof(*rd->e))) == NULL) {
		error = co_error_set(CO_ENOMEM, "redact: out of memory");
		goto done;
	}
	for (i = 0; i < n && error == 0; i++) {
		const char *s = entries[i] ? entries[i] : "";

		if (strcmp(s, "@defaults") == 0)
			defaults = 1;
		else if (strchr(s, '.'))
			error = add_path(rd, s);
		else if (*s == '@')
			error = co_error_set(CO_EINVAL,
					     "redact: \"%s\": unknown (the only @ entry "
					     "is @defaults)",
					     s);
		else
			error = add_pattern(rd, s);
	}
	for (i = 0; defaults && i < ndef && error == 0; i++)
		error = add_pattern(rd, default_patterns[i]);
	if (error < 0)
		goto done;
	if (RAND_bytes(rd->key, sizeof(rd->key)) != 1) {
		error = co_error_set(CO_EIO, "redact: no random bytes for the hash key");
		goto done;
	}
	*out = rd;
	rd = NULL;
done:
	co_redact_free(rd);
	return error;
}

int co_redact_default(co_redact **out)
{
	return co_redact_new(out, NULL, 0, 1);
}

/* Case-insensitive substring; `pat` is lower case already. */
static int icontains(const char *s, const char *pat)
{
	size_t n = strlen(pat), i;

	for (; *s; s++) {
		for (i = 0; i < n && s[i]; i++)
			if (tolower((unsigned char)s[i]) != pat[i])
				break;
		if (i == n)
			return 1;
	}
	return 0;
}

/* seg[0..depth] is the path of the key being looked at, seg[depth] its name. */
static int matches(const co_redact *rd, const char *const *seg, size_t depth)
{
	size_t i, j;

	for (i = 0; rd && i < rd->n; i++) {
		const entry *e = &rd->e[i];

		if (!e->is_path) {
			/* Patterns apply inside metadata only, never to the
			 * container itself nor to the record's own fields. */
			if (depth >= 1 && strcmp(seg[0], "metadata") == 0 &&
			    icontains(seg[depth], e->pattern))
				return 1;
			continue;
		}
		if (e->nseg != depth + 1)
			continue;
		for (j = 0; j <= depth; j++)
			if (strcmp(e->seg[j], "*") != 0 && strcmp(e->seg[j], seg[j]) != 0)
				break;
		if (j > depth)
			return 1;
	}
	return 0;
}

int co_redact_matches(const co_redact *rd, const char *path, const char *key)
{
	const char *seg[MAX_DEPTH];
	char *copy = path ? strdup(path) : NULL, *p, *save = NULL;
	size_t n = 0;
	int m;

	if (path && copy == NULL)
		return 1; /* out of memory: err on the side of hiding */
	for (p = copy ? strtok_r(copy, ".", &save) : NULL; p && n < MAX_DEPTH - 1;
	     p = strtok_r(NULL, ".", &save))
		seg[n++] = p;
	/* The key is the path's last segment; add it when not already there. */
	if (key && (n == 0 || strcmp(seg[n - 1], key) != 0))
		seg[n++] = key;
	m = n > 0 && matches(rd, seg, n - 1);
	free(copy);
	return m;
}

/* ---- redacting a pair ---- */

static int is_marker(const cJSON *v)
{
	return cJSON_IsString(v) && strncmp(v->valuestring, "[redacted", 9) == 0;
}

/* HMAC-SHA256 of v's compact JSON under rd's key into md; 0 / -1. */
static int digest(unsigned char *md, const co_redact *rd, const cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);
	unsigned int len = 0;
	int ok;

	if (s == NULL)
		return -1;
	ok = HMAC(EVP_sha256(), rd->key, KEY_LEN, (const unsigned char *)s, strlen(s), md,
		  &len) != NULL &&
	     len == 32;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
	return ok ? 0 : -1;
}

/*
 * The marker for field value `a` against `b` (NULL: the other record has
 * no such field; other_rec 0: there is no other record at all).
 */
static const char *verdict(const co_redact *rd, const cJSON *a, const cJSON *b,
			   int other_rec)
{
	unsigned char da[32], db[32];

	if (a && is_marker(a))
		return a->valuestring;
	if (!other_rec)
		return CO_REDACT_MARK;
	if (b == NULL)
		return CO_REDACT_MARK_DIFFERS;
	if (is_marker(b))
		return strcmp(b->valuestring, CO_REDACT_MARK) == 0
			   ? CO_REDACT_MARK_DIFFERS
			   : b->valuestring;
	if (digest(da, rd, a) < 0 || digest(db, rd, b) < 0)
		return CO_REDACT_MARK_DIFFERS; /* cannot tell: never claim equal */
	return CRYPTO_memcmp(da, db, sizeof(da)) == 0 ? CO_REDACT_MARK_EQUAL
						      : CO_REDACT_MARK_DIFFERS;
}

static int replace(cJSON *parent, const char *key, const char *mark)
{
	cJSON *m = cJSON_CreateString(mark);

	if (m == NULL)
		return -1;
	if (!cJSON_ReplaceItemInObjectCaseSensitive(parent, key, m)) {
		cJSON_Delete(m);
		return -1;
	}
	return 0;
}

static int walk(const co_redact *rd, cJSON *a, cJSON *b, int other_rec, const char **seg,
		size_t depth);

/* Recurse into a value that is not redacted itself (objects and arrays). */
static int descend(const co_redact *rd, cJSON *a, cJSON *b, int other_rec,
		   const char **seg, size_t depth)
{
	if (cJSON_IsObject(a))
		return walk(rd, a, cJSON_IsObject(b) ? b : NULL, other_rec, seg, depth);
	if (cJSON_IsArray(a)) {
		cJSON *x, *y = cJSON_IsArray(b) ? b->child : NULL;
		int error = 0;

		/* Arrays are looked through: elements pair up by index. */
		cJSON_ArrayForEach(x, a)
		{
			if ((error = descend(rd, x, y, other_rec, seg, depth)) < 0)
				break;
			y = y ? y->next : NULL;
		}
		return error;
	}
	return 0;
}

/*
 * Redact object `a` (a record, or a value inside one at path seg[0..depth-1])
 * against its counterpart `b` in the other version (NULL when it has none).
 * Keys of b that a lacks are handled by the caller's second pass.
 */
static int walk(const co_redact *rd, cJSON *a, cJSON *b, int other_rec, const char **seg,
		size_t depth)
{
	cJSON *x, *next;

	if (depth >= MAX_DEPTH - 1) {
		/* Absurdly deep: hide the whole subtree rather than recurse. */
		for (x = a->child; x; x = next) {
			next = x->next;
			if (replace(a, x->string, CO_REDACT_MARK) < 0)
				return -1;
		}
		return 0;
	}
	for (x = a->child; x; x = next) {
		cJSON *y = b ? cJSON_GetObjectItemCaseSensitive(b, x->string) : NULL;

		next = x->next;
		seg[depth] = x->string;
		if (matches(rd, seg, depth)) {
			const char *mark = verdict(rd, x, y, other_rec);
			char *m = strdup(mark); /* mark may point into x or y */
			int bad;

			if (m == NULL)
				return -1;
			/* b first: replacing in a frees x, and x->string with it. */
			bad = (y && replace(b, x->string, m) < 0) ||
			      replace(a, x->string, m) < 0;
			free(m);
			if (bad)
				return -1;
			continue;
		}
		if (descend(rd, x, y, other_rec, seg, depth + 1) < 0)
			return -1;
	}
	/* Keys only b holds: redacted against nothing. */
	for (x = b ? b->child : NULL; x; x = next) {
		next = x->next;
		if (cJSON_GetObjectItemCaseSensitive(a, x->string))
			continue;
		seg[depth] = x->string;
		if (matches(rd, seg, depth)) {
			if (replace(b, x->string, verdict(rd, x, NULL, 1)) < 0)
				return -1;
		} else if (descend(rd, x, NULL, 1, seg, depth + 1) < 0) {
			return -1;
		}
	}
	return 0;
}

static char *print_or_mark(cJSON *v, int parsed)
{
	if (!parsed)
		return strdup("\"[redacted: not JSON]\"");
	return cJSON_PrintUnformatted(v);
}

int co_redact_pair(char **git_out, char **etcd_out, const co_redact *rd,
		   const char *git_json, const char *etcd_json)
{
	cJSON *g = git_json ? cJSON_Parse(git_json) : NULL;
	cJSON *e = etcd_json ? cJSON_Parse(etcd_json) : NULL;
	const char *seg[MAX_DEPTH];
	char *go = NULL, *eo = NULL;
	int error = 0;

	/* Both sides are walked from git's; etcd-only keys in the second pass.
	 * Something that is not a JSON object is never passed through. */
	if (cJSON_IsObject(g) &&
	    walk(rd, g, cJSON_IsObject(e) ? e : NULL, e != NULL, seg, 0) < 0)
		error = CO_ENOMEM;
	if (error == 0 && cJSON_IsObject(e) && !cJSON_IsObject(g) &&
	    walk(rd, e, NULL, 0, seg, 0) < 0)
		error = CO_ENOMEM;
	if (error == 0 && git_json && (go = print_or_mark(g, cJSON_IsObject(g))) == NULL)
		error = CO_ENOMEM;
	if (error == 0 && etcd_json && (eo = print_or_mark(e, cJSON_IsObject(e))) == NULL)
		error = CO_ENOMEM;
	cJSON_Delete(g);
	cJSON_Delete(e);
	if (error < 0) {
		free(go);
		free(eo);
		return co_error_set(error, "redact: out of memory");
	}
	if (git_out)
		*git_out = go;
	else
		free(go);
	if (etcd_out)
		*etcd_out = eo;
	else
		free(eo);
	return 0;
}

int co_redact_one(char **out, const co_redact *rd, const char *json)
{
	return co_redact_pair(out, NULL, rd, json, NULL);
}

/* ---- comparing without some fields (shadow ignore rules) ---- */

static void prune(const co_redact *rd, cJSON *v, const char **seg, size_t depth)
{
	cJSON *x, *next;

	if (depth >= MAX_DEPTH - 1)
		return; /* absurdly deep: compared as it is */
	if (cJSON_IsArray(v)) {
		/* Arrays are looked through, as when redacting. */
		cJSON_ArrayForEach(x, v) prune(rd, x, seg, depth);
		return;
	}
	if (!cJSON_IsObject(v))
		return;
	for (x = v->child; x; x = next) {
		next = x->next;
		seg[depth] = x->string;
		if (matches(rd, seg, depth))
			cJSON_Delete(cJSON_DetachItemViaPointer(v, x));
		else
			prune(rd, x, seg, depth + 1);
	}
}

int co_redact_equal_without(const co_redact *rd, const char *a_json, const char *b_json)
{
	const char *seg[MAX_DEPTH];
	cJSON *a, *b;
	int eq;

	if (a_json == NULL || b_json == NULL)
		return a_json == b_json;
	a = cJSON_Parse(a_json);
	b = cJSON_Parse(b_json);
	if (!cJSON_IsObject(a) || !cJSON_IsObject(b)) {
		/* Not records (or no memory to parse them): as text. */
		eq = strcmp(a_json, b_json) == 0;
	} else {
		prune(rd, a, seg, 0);
		prune(rd, b, seg, 0);
		eq = cJSON_Compare(a, b, 1) ? 1 : 0;
	}
	cJSON_Delete(a);
	cJSON_Delete(b);
	return eq;
}

/* ---- the field-level diff ---- */

void co_field_diff_free(co_field_diff *d)
{
	if (d == NULL)
		return;
	free(d->path);
	free(d->git);
	free(d->etcd);
	free(d);
}

void co_field_diff_list_clear(co_field_diff_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		co_field_diff_free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = l->cap = 0;
}

/* "equal" / "differs" / "unknown" from the markers of a redacted field. */
static const char *redacted_verdict(const cJSON *g, const cJSON *e)
{
	const char *mg = g && is_marker(g) ? g->valuestring : "";
	const char *me = e && is_marker(e) ? e->valuestring : "";

	if (g == NULL || e == NULL || strcmp(mg, CO_REDACT_MARK_DIFFERS) == 0 ||
	    strcmp(me, CO_REDACT_MARK_DIFFERS) == 0)
		return "differs"; /* only one side holds it, or a marker says so */
	if (strcmp(mg, CO_REDACT_MARK_EQUAL) == 0 &&
	    strcmp(me, CO_REDACT_MARK_EQUAL) == 0)
		return "equal";
	return "unknown"; /* e.g. two bare "[redacted]": nothing to go by */
}

static int push_diff(co_field_diff_list *l, const char *path, co_field_change change,
		     const cJSON *g, const cJSON *e)
{
	co_field_diff *d = calloc(1, sizeof(*d));

	if (d == NULL || (d->path = strdup(path)) == NULL ||
	    (g && (d->git = cJSON_PrintUnformatted(g)) == NULL) ||
	    (e && (d->etcd = cJSON_PrintUnformatted(e)) == NULL))
		goto oom;
	d->change = change;
	if (change == CO_FIELD_REDACTED)
		d->redacted = redacted_verdict(g, e);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		co_field_diff **items = realloc(l->items, cap * sizeof(*items));

		if (items == NULL)
			goto oom;
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = d;
	return 0;
oom:
	co_field_diff_free(d);
	return -1;
}

/* "a.b", "a[\"x.y\"]", "a[3]": keys that are not plain names are quoted. */
static char *child_path(const char *path, const char *key, int index)
{
	char *out = NULL;
	const char *k;
	int plain = key && *key;

	for (k = key; plain && *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-')
			plain = 0;
	if (key == NULL) {
		if (asprintf(&out, "%s[%d]", path, index) < 0)
			out = NULL;
	} else if (plain) {
		if (asprintf(&out, "%s%s%s", path, *path ? "." : "", key) < 0)
			out = NULL;
	} else {
		cJSON *s = cJSON_CreateString(key);
		char *q = s ? cJSON_PrintUnformatted(s) : NULL;

		if (q && asprintf(&out, "%s[%s]", path, q) < 0)
			out = NULL;
		free(q);
		cJSON_Delete(s);
	}
	return out;
}

static int diff_value(co_field_diff_list *l, const char *path, const cJSON *g,
		      const cJSON *e, int depth);

static int diff_child(co_field_diff_list *l, const char *path, const char *key, int i,
		      const cJSON *g, const cJSON *e, int depth)
{
	char *p = child_path(path, key, i);
	int error;

	if (p == NULL)
		return -1;
	error = diff_value(l, p, g, e, depth + 1);
	free(p);
	return error;
}

static int diff_value(co_field_diff_list *l, const char *path, const cJSON *g,
		      const cJSON *e, int depth)
{
	const cJSON *x;
	int i;

	if ((g && is_marker(g)) || (e && is_marker(e)))
		return push_diff(l, path, CO_FIELD_REDACTED, g, e);
	if (g == NULL || e == NULL)
		return push_diff(l, path, g ? CO_FIELD_REMOVED : CO_FIELD_ADDED, g, e);
	if (depth < MAX_DEPTH && cJSON_IsObject(g) && cJSON_IsObject(e)) {
		cJSON_ArrayForEach(x, g)
		{
			if (diff_child(l, path, x->string, 0, x,
				       cJSON_GetObjectItemCaseSensitive(e, x->string),
				       depth) < 0)
				return -1;
		}
		cJSON_ArrayForEach(x, e)
		{
			if (cJSON_GetObjectItemCaseSensitive(g, x->string) == NULL &&
			    diff_child(l, path, x->string, 0, NULL, x, depth) < 0)
				return -1;
		}
		return 0;
	}
	if (depth < MAX_DEPTH && cJSON_IsArray(g) && cJSON_IsArray(e)) {
		int ng = cJSON_GetArraySize(g), ne = cJSON_GetArraySize(e);
		const cJSON *a = g->child, *b = e->child;

		for (i = 0; i < ng || i < ne; i++) {
			if (diff_child(l, path, NULL, i, a, b, depth) < 0)
				return -1;
			a = a ? a->next : NULL;
			b = b ? b->next : NULL;
		}
		return 0;
	}
	if (cJSON_Compare(g, e, 1))
		return 0;
	return push_diff(l, path, CO_FIELD_CHANGED, g, e);
}

int co_redact_diff(co_field_diff_list *out, const co_redact *rd, const char *git_json,
		   const char *etcd_json)
{
	char *gr = NULL, *er = NULL;
	cJSON *g = NULL, *e = NULL;
	co_field_diff_list l = {0};
	int error;

	/* An absent record is redacted as absent ("[redacted]" on the other
	 * side: nothing to compare with), then diffed as an empty object. */
	if ((error = co_redact_pair(&gr, &er, rd, git_json, etcd_json)) < 0)
		return error;
	g = cJSON_Parse(gr ? gr : "{}");
	e = cJSON_Parse(er ? er : "{}");
	if (!cJSON_IsObject(g) || !cJSON_IsObject(e)) {
		error = co_error_set(CO_EINVAL, "diff: a record is not a JSON object");
		goto done;
	}
	if (diff_value(&l, "", g, e, 0) < 0) {
		error = co_error_set(CO_ENOMEM, "diff: out of memory");
		goto done;
	}
	/* Append to the caller's list only on success. */
	if (l.n > 0) {
		co_field_diff **items =
		    realloc(out->items, (out->n + l.n) * sizeof(*items));

		if (items == NULL) {
			error = co_error_set(CO_ENOMEM, "diff: out of memory");
			goto done;
		}
		memcpy(items + out->n, l.items, l.n * sizeof(*items));
		out->items = items;
		out->n += l.n;
		out->cap = out->n;
		free(l.items);
		l.items = NULL;
		l.n = l.cap = 0;
	}
done:
	co_field_diff_list_clear(&l);
	cJSON_Delete(g);
	cJSON_Delete(e);
	free(gr);
	free(er);
	return error;
}
