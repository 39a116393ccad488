/*
 * record.c - tasks and swarms, their validation and canonical JSON.
 *
 * The canonical form is what makes two stores comparable byte for byte: keys
 * sorted at every depth, no insignificant whitespace (etcd) or one fixed
 * pretty layout (git).  cJSON keeps object members in insertion order, so
 * the printer builds every object in sorted order, and metadata is re-sorted
 * recursively when it is set.
 *
 * Deliberately not here: any notion of a store, a clock policy beyond the
 * claim-expiry rule, or I/O.
 */
#include "record.h"

#include "error.h"
#include "id.h"
#include "list.h"
#include "record_write.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const status_names[] = {"available", "claimed", "blocked", "complete",
					   "failed"};

const char *co_kind_name(co_kind kind)
{
	return kind == CO_KIND_SWARM ? "swarm" : "task";
}

const char *co_kind_dir(co_kind kind)
{
	return kind == CO_KIND_SWARM ? "swarms" : "tasks";
}

const char *co_status_name(co_status s)
{
	if ((unsigned)s >= sizeof(status_names) / sizeof(status_names[0]))
		return "?";
	return status_names[s];
}

int co_status_parse(co_status *out, const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof(status_names) / sizeof(status_names[0]); i++) {
		if (strcmp(name, status_names[i]) == 0) {
			*out = (co_status)i;
			return 0;
		}
	}
	return co_error_set(
	    CO_EINVAL,
	    "unknown status \"%s\" (available, claimed, blocked, complete, failed)",
	    name ? name : "");
}

/* ---- time ---- */

void co_time_format(char *buf, size_t len, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int co_time_parse(int64_t *out, const char *s)
{
	struct tm tm;
	const char *p;
	int64_t t;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || (p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return co_error_set(CO_EINVAL,
				    "bad timestamp \"%s\" (want 2026-11-22T10:00:00Z)",
				    s ? s : "");
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (strcmp(p, "Z") != 0)
		return co_error_set(CO_EINVAL,
				    "bad timestamp \"%s\": must be UTC ending in Z", s);
	t = (int64_t)timegm(&tm);
	/* timegm() normalises: "9999-12-31T23:59:60Z" is the year 10000, which
	 * the canonical form could write but never read back. */
	if (t < CO_TIME_MIN || t > CO_TIME_MAX)
		return co_error_set(CO_EINVAL,
				    "bad timestamp \"%s\": outside 1000-01-01T00:00:00Z.."
				    "9999-12-31T23:59:59Z",
				    s);
	*out = t;
	return 0;
}

int64_t co_time_now(void)
{
	const char *off = getenv("CUTOVER_CLOCK_OFFSET");

	return (int64_t)time(NULL) + (off ? strtoll(off, NULL, 10) : 0);
}

/* ---- string vectors and lists ---- */

int co_strv_push(co_strv *v, const char *s)
{
	char **nv = realloc(v->v, (v->n + 1) * sizeof(*nv));
	char *copy = strdup(s);

	if (nv)
		v->v = nv;
	if (nv == NULL || copy == NULL) {
		free(copy);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	v->v[v->n++] = copy;
	return 0;
}

int co_strv_split(co_strv *out, const char *csv)
{
	co_strv v = {NULL, 0};
	const char *p = csv, *q;
	int error = 0;

	while (p && *p) {
		char item[256];
		size_t n;

		q = strchr(p, ',');
		n = q ? (size_t)(q - p) : strlen(p);
		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n >= sizeof(item)) {
			error = co_error_set(CO_EINVAL, "list item longer than %zu bytes",
					     sizeof(item) - 1);
			goto done;
		}
		if (n > 0) {
			memcpy(item, p, n);
			item[n] = '\0';
			if ((error = co_strv_push(&v, item)) < 0)
				goto done;
		}
		p = q ? q + 1 : NULL;
	}
	*out = v;
	v.v = NULL;
	v.n = 0;
done:
	co_strv_clear(&v);
	return error;
}

void co_strv_clear(co_strv *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

static int strv_dup(co_strv *out, const co_strv *in)
{
	size_t i;

	out->v = NULL;
	out->n = 0;
	for (i = 0; i < in->n; i++) {
		if (co_strv_push(out, in->v[i]) < 0) {
			co_strv_clear(out);
			return CO_ENOMEM;
		}
	}
	return 0;
}

int co_record_list_push(co_record_list *l, co_record *r)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		co_record **items = realloc(l->items, cap * sizeof(*items));

		if (items == NULL) {
			co_record_free(r);
			return co_error_set(CO_ENOMEM, "out of memory");
		}
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = r;
	return 0;
}

void co_record_list_clear(co_record_list *l)
{
	CO_LIST_CLEAR(l, co_record_free);
}

static int record_cmp(const void *a, const void *b)
{
	const co_record *ra = *(co_record *const *)a, *rb = *(co_record *const *)b;

	if (ra->kind != rb->kind)
		return ra->kind < rb->kind ? -1 : 1;
	return strcmp(ra->id, rb->id);
}

void co_record_list_sort(co_record_list *l)
{
	if (l->n > 1)
		qsort(l->items, l->n, sizeof(*l->items), record_cmp);
}

/* ---- records ---- */

int co_record_new(co_record **out, co_kind kind, const char *id)
{
	co_record *r;
	int error;

	if ((error = co_id_validate(id)) < 0)
		return error;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	r->kind = kind;
	r->id = strdup(id);
	r->metadata = strdup("{}");
	if (r->id == NULL || r->metadata == NULL) {
		co_record_free(r);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	*out = r;
	return 0;
}

void co_record_free(co_record *r)
{
	if (r == NULL)
		return;
	free(r->id);
	free(r->metadata);
	free(r->type);
	free(r->owner);
	co_strv_clear(&r->blocked_by);
	co_strv_clear(&r->capabilities);
	free(r);
}

static int dup_str(char **out, const char *s)
{
	*out = NULL;
	if (s && (*out = strdup(s)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	return 0;
}

int co_record_dup(co_record **out, const co_record *r)
{
	co_record *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	*c = *r;
	c->id = c->metadata = c->type = c->owner = NULL;
	c->blocked_by.v = c->capabilities.v = NULL;
	c->blocked_by.n = c->capabilities.n = 0;
	if (dup_str(&c->id, r->id) < 0 || dup_str(&c->metadata, r->metadata) < 0 ||
	    dup_str(&c->type, r->type) < 0 || dup_str(&c->owner, r->owner) < 0 ||
	    strv_dup(&c->blocked_by, &r->blocked_by) < 0 ||
	    strv_dup(&c->capabilities, &r->capabilities) < 0) {
		co_record_free(c);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	*out = c;
	return 0;
}

/* Sort an object's members by key, recursively (insertion sort on the list:
 * metadata objects are small, and this keeps cJSON's linked list intact). */
static void json_sort(cJSON *j)
{
	cJSON *child, *sorted = NULL;

	if (j == NULL || !(cJSON_IsObject(j) || cJSON_IsArray(j)))
		return;
	for (child = j->child; child; child = child->next)
		json_sort(child);
	if (!cJSON_IsObject(j))
		return;
	child = j->child;
	while (child) {
		cJSON *next = child->next, **pp = &sorted, *prev = NULL;

		while (*pp && strcmp((*pp)->string, child->string) <= 0) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		child->next = *pp;
		child->prev = prev;
		if (*pp)
			(*pp)->prev = child;
		*pp = child;
		child = next;
	}
	/* cJSON keeps the list head's prev pointing at the tail. */
	if (sorted) {
		cJSON *tail = sorted;

		while (tail->next)
			tail = tail->next;
		sorted->prev = tail;
	}
	j->child = sorted;
}

int co_record_set_metadata(co_record *r, const char *json)
{
	cJSON *j;
	char *text;
	size_t len = json ? strlen(json) : 0;

	if (len > CO_META_MAX)
		return co_error_set(CO_ETOOBIG, "metadata is %zu bytes; the limit is %d",
				    len, CO_META_MAX);
	if ((j = cJSON_ParseWithLength(json ? json : "", len)) == NULL)
		return co_error_set(CO_EINVAL,
				    "metadata is not valid JSON near \"%.20s\"",
				    cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return co_error_set(CO_EINVAL, "metadata must be a JSON object");
	}
	json_sort(j);
	text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (text == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if (strlen(text) > CO_META_MAX) {
		free(text);
		return co_error_set(CO_ETOOBIG, "metadata is over %d bytes", CO_META_MAX);
	}
	free(r->metadata);
	r->metadata = text;
	return 0;
}

/* ---- JSON out ---- */

static cJSON *strv_json(const co_strv *v)
{
	cJSON *a = cJSON_CreateArray();
	size_t i;

	for (i = 0; a && i < v->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v->v[i]));
	return a;
}

static void add_time(cJSON *o, const char *key, int64_t t)
{
	char buf[32];

	if (t == 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	co_time_format(buf, sizeof(buf), t);
	cJSON_AddStringToObject(o, key, buf);
}

static void add_opt_str(cJSON *o, const char *key, const char *s)
{
	if (s)
		cJSON_AddStringToObject(o, key, s);
	else
		cJSON_AddNullToObject(o, key);
}

char *co_record_to_json(const co_record *r, int pretty)
{
	cJSON *o, *meta;
	char *text = NULL;
	int done;

	/* The compact form, straight into a buffer (record_write.c); cJSON
	 * below for the pretty one and for what that writer leaves to it. */
	if (!pretty && (done = co_record__write_compact(&text, r)) <= 0)
		return done == 0 ? text : NULL;
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	meta = cJSON_Parse(r->metadata ? r->metadata : "{}");
	if (meta == NULL)
		meta = cJSON_CreateObject();
	/* Keys in sorted order: the canonical form depends on it. */
	if (r->kind == CO_KIND_TASK) {
		cJSON_AddItemToObject(o, "blocked_by", strv_json(&r->blocked_by));
		add_time(o, "claim_expires_at", r->claim_expires_at);
		add_time(o, "created_at", r->created_at);
		cJSON_AddStringToObject(o, "id", r->id);
		cJSON_AddStringToObject(o, "kind", "task");
		cJSON_AddItemToObject(o, "metadata", meta);
		add_opt_str(o, "owner", r->owner);
		cJSON_AddNumberToObject(o, "rev", (double)r->rev);
		cJSON_AddStringToObject(o, "status", co_status_name(r->status));
		cJSON_AddStringToObject(o, "type", r->type ? r->type : "");
		add_time(o, "updated_at", r->updated_at);
	} else {
		cJSON_AddItemToObject(o, "capabilities", strv_json(&r->capabilities));
		cJSON_AddStringToObject(o, "id", r->id);
		cJSON_AddStringToObject(o, "kind", "swarm");
		cJSON_AddItemToObject(o, "metadata", meta);
		add_time(o, "registered_at", r->registered_at);
		cJSON_AddNumberToObject(o, "rev", (double)r->rev);
		add_time(o, "updated_at", r->updated_at);
	}
	if (pretty) {
		char *p = cJSON_Print(o);
		size_t n;

		if (p && (text = malloc((n = strlen(p)) + 2)) != NULL) {
			memcpy(text, p, n);
			text[n] = '\n';
			text[n + 1] = '\0';
		}
		free(p);
	} else {
		text = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(o);
	return text;
}

/* ---- JSON in ---- */

static int want_type(const cJSON *v, const char *key, int ok, const char *what)
{
	(void)v;
	if (!ok)
		return co_error_set(CO_EINVAL, "record field \"%s\" must be %s", key,
				    what);
	return 0;
}

static int parse_time_field(int64_t *out, const cJSON *v, const char *key)
{
	if (cJSON_IsNull(v)) {
		*out = 0;
		return 0;
	}
	if (!cJSON_IsString(v))
		return co_error_set(
		    CO_EINVAL, "record field \"%s\" must be a timestamp or null", key);
	if (co_time_parse(out, v->valuestring) < 0)
		return co_error_set(CO_EINVAL,
				    "record field \"%s\": bad timestamp \"%s\"", key,
				    v->valuestring);
	return 0;
}

static int parse_strv(co_strv *out, const cJSON *v, const char *key)
{
	const cJSON *e;

	if (!cJSON_IsArray(v))
		return co_error_set(
		    CO_EINVAL, "record field \"%s\" must be an array of strings", key);
	cJSON_ArrayForEach(e, v)
	{
		if (!cJSON_IsString(e))
			return co_error_set(
			    CO_EINVAL, "record field \"%s\" must be an array of strings",
			    key);
		if (co_strv_push(out, e->valuestring) < 0)
			return CO_ENOMEM;
	}
	return 0;
}

static int parse_field(co_record *r, const cJSON *v, int *seen_rev)
{
	const char *k = v->string;
	int error;

	if (strcmp(k, "id") == 0 || strcmp(k, "kind") == 0)
		return 0; /* handled first */
	if (strcmp(k, "rev") == 0) {
		if ((error =
			 want_type(v, k,
				   cJSON_IsNumber(v) && v->valuedouble >= 1 &&
				       v->valuedouble < 9.0e15 &&
				       v->valuedouble == (double)(int64_t)v->valuedouble,
				   "an integer >= 1")) < 0)
			return error;
		r->rev = (int64_t)v->valuedouble;
		*seen_rev = 1;
		return 0;
	}
	if (strcmp(k, "updated_at") == 0)
		return parse_time_field(&r->updated_at, v, k);
	if (strcmp(k, "metadata") == 0) {
		char *text;

		if (!cJSON_IsObject(v))
			return co_error_set(
			    CO_EINVAL, "record field \"metadata\" must be an object");
		if ((text = cJSON_PrintUnformatted(v)) == NULL)
			return co_error_set(CO_ENOMEM, "out of memory");
		error = co_record_set_metadata(r, text);
		free(text);
		return error;
	}
	if (r->kind == CO_KIND_TASK) {
		if (strcmp(k, "type") == 0) {
			if ((error = want_type(v, k, cJSON_IsString(v), "a string")) < 0)
				return error;
			return dup_str(&r->type, v->valuestring);
		}
		if (strcmp(k, "status") == 0) {
			if ((error = want_type(v, k, cJSON_IsString(v), "a string")) < 0)
				return error;
			return co_status_parse(&r->status, v->valuestring);
		}
		if (strcmp(k, "owner") == 0) {
			if (cJSON_IsNull(v))
				return 0;
			if ((error = want_type(v, k, cJSON_IsString(v),
					       "a string or null")) < 0)
				return error;
			if ((error = co_id_validate(v->valuestring)) < 0)
				return co_error_set(CO_EINVAL,
						    "record field \"owner\": %s",
						    co_error_last());
			return dup_str(&r->owner, v->valuestring);
		}
		if (strcmp(k, "claim_expires_at") == 0)
			return parse_time_field(&r->claim_expires_at, v, k);
		if (strcmp(k, "created_at") == 0)
			return parse_time_field(&r->created_at, v, k);
		if (strcmp(k, "blocked_by") == 0)
			return parse_strv(&r->blocked_by, v, k);
	} else {
		if (strcmp(k, "capabilities") == 0)
			return parse_strv(&r->capabilities, v, k);
		if (strcmp(k, "registered_at") == 0)
			return parse_time_field(&r->registered_at, v, k);
	}
	return co_error_set(CO_EINVAL, "unknown field \"%s\" in a %s record", k,
			    co_kind_name(r->kind));
}

int co_record_from_json(co_record **out, const char *json, size_t len)
{
	cJSON *j = NULL;
	const cJSON *kind, *id, *v;
	co_record *r = NULL;
	co_kind k;
	int error, seen_rev = 0;

	if (len > CO_META_MAX + 16 * 1024)
		return co_error_set(CO_ETOOBIG, "record is %zu bytes; too large", len);
	if ((j = cJSON_ParseWithLength(json, len)) == NULL) {
		error = co_error_set(CO_EINVAL, "record is not valid JSON");
		goto done;
	}
	if (!cJSON_IsObject(j)) {
		error = co_error_set(CO_EINVAL, "record must be a JSON object");
		goto done;
	}
	kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
	id = cJSON_GetObjectItemCaseSensitive(j, "id");
	if (!cJSON_IsString(kind) || (strcmp(kind->valuestring, "task") != 0 &&
				      strcmp(kind->valuestring, "swarm") != 0)) {
		error = co_error_set(
		    CO_EINVAL, "record field \"kind\" must be \"task\" or \"swarm\"");
		goto done;
	}
	k = strcmp(kind->valuestring, "task") == 0 ? CO_KIND_TASK : CO_KIND_SWARM;
	if (!cJSON_IsString(id)) {
		error = co_error_set(CO_EINVAL, "record field \"id\" must be a string");
		goto done;
	}
	if ((error = co_record_new(&r, k, id->valuestring)) < 0)
		goto done;
	cJSON_ArrayForEach(v, j)
	{
		const cJSON *w;

		/* cJSON keeps duplicate keys.  Refuse them: which one wins is a
		 * guess (cJSON_GetObjectItem finds the first, this loop would
		 * keep the last), and a record is a contract.  Unknown keys stop
		 * the loop, so this looks back over a dozen keys at most. */
		for (w = j->child; w != v; w = w->next)
			if (strcmp(w->string, v->string) == 0) {
				error = co_error_set(CO_EINVAL,
						     "record field \"%s\" appears twice",
						     v->string);
				goto done;
			}
		if ((error = parse_field(r, v, &seen_rev)) < 0)
			goto done;
	}
	if (!seen_rev) {
		error = co_error_set(CO_EINVAL, "record %s has no \"rev\"", r->id);
		goto done;
	}
	if (k == CO_KIND_TASK && r->status == CO_STATUS_CLAIMED && r->owner == NULL) {
		error = co_error_set(CO_EINVAL, "record %s is claimed but has no owner",
				     r->id);
		goto done;
	}
	*out = r;
	r = NULL;
	error = 0;
done:
	co_record_free(r);
	cJSON_Delete(j);
	return error;
}

/* ---- rules and comparison ---- */

int co_record_check_times(const co_record *r)
{
	const struct {
		const char *name;
		int64_t t;
	} f[] = {
	    {"updated_at", r->updated_at},
	    {"created_at", r->created_at},
	    {"claim_expires_at", r->claim_expires_at},
	    {"registered_at", r->registered_at},
	};
	size_t i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (f[i].t < CO_TIME_MIN || f[i].t > CO_TIME_MAX)
			return co_error_set(
			    CO_EINVAL,
			    "%s %s: %s is %lld, outside %lld..%lld seconds "
			    "(years 1000 to 9999; milliseconds given as seconds?)",
			    co_kind_name(r->kind), r->id ? r->id : "?", f[i].name,
			    (long long)f[i].t, CO_TIME_MIN, CO_TIME_MAX);
	return 0;
}

int co_record_normalize(co_record *r, int64_t now)
{
	if (r->kind != CO_KIND_TASK || r->status != CO_STATUS_CLAIMED ||
	    r->claim_expires_at == 0 || r->claim_expires_at > now)
		return 0;
	r->status = CO_STATUS_AVAILABLE;
	free(r->owner);
	r->owner = NULL;
	r->claim_expires_at = 0;
	return 1;
}

int co_record_equal(const co_record *a, const co_record *b)
{
	char *ja = co_record_to_json(a, 0), *jb = co_record_to_json(b, 0);
	int eq = ja && jb && strcmp(ja, jb) == 0;

	free(ja);
	free(jb);
	return eq;
}

char *co_record_diff(const co_record *a, const co_record *b)
{
	char *ja = co_record_to_json(a, 0), *jb = co_record_to_json(b, 0);
	cJSON *oa = ja ? cJSON_Parse(ja) : NULL, *ob = jb ? cJSON_Parse(jb) : NULL;
	const cJSON *f;
	char *out = NULL;
	size_t len = 0;

	out = calloc(1, 1);
	if (oa == NULL || ob == NULL || out == NULL) {
		free(out);
		out = NULL;
		goto done;
	}
	/* Both objects hold the same sorted key set unless the kinds differ. */
	cJSON_ArrayForEach(f, oa)
	{
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(ob, f->string);

		if (g == NULL || !cJSON_Compare(f, g, 1)) {
			size_t n = strlen(f->string);
			char *grown = realloc(out, len + n + 2);

			if (grown == NULL) {
				free(out);
				out = NULL;
				goto done;
			}
			out = grown;
			if (len)
				out[len++] = ',';
			memcpy(out + len, f->string, n + 1);
			len += n;
		}
	}
done:
	cJSON_Delete(oa);
	cJSON_Delete(ob);
	free(ja);
	free(jb);
	return out;
}
