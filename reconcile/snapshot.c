/*
 * snapshot.c - compact store snapshots and their sorted-merge diff.
 *
 * The reconciler must compare a million records per store in well under
 * 512 MiB.  Keeping both stores' records as structs would cost about 250
 * bytes each, twice; instead each record is reduced, as soon as the store's
 * scan passes it, to a digest of its JSON text and its ID in a shared
 * string arena (48 bytes + the ID).
 *
 * The digest is the git blob id of the record's git form, which makes the
 * common case cheap: git's scan reads only the tree (reading a million
 * blobs was most of a run), etcd's values are laid out as git's files
 * (git_form.c) and hashed as blobs, and an ID whose ids match is equal
 * without a byte of git's file read.  Only the files whose ids differ are
 * read back (co_snapshot_resolve) and digested the same way, so that a
 * file a legacy client laid out otherwise still matches.  Text that has
 * no git form (not JSON) gets a 64-bit hash of its bytes instead, leaving
 * out the whitespace between tokens.
 *
 * Records are not parsed, and equal digests mean equal tokens, hence equal
 * records.  Different digests only say "look closer": the full records of
 * those IDs are read again later, parsed and normalized, which the
 * reconciler needs anyway to tell a write in flight from a real divergence
 * (and which absolves records that are equal but were written in another
 * key order).
 *
 * This module does not decide what counts: it only says which IDs differ
 * and how.  It does not read the outbox nor retry anything.
 */
#include "snapshot.h"

#include "git_form.h"

#include "core/error.h"
#include "store/git_store.h"

#include <stdlib.h>
#include <string.h>

void co_snapshot_init(co_snapshot *s)
{
	memset(s, 0, sizeof(*s));
}

void co_snapshot_clear(co_snapshot *s)
{
	if (s == NULL)
		return;
	free(s->v);
	free(s->ids);
	memset(s, 0, sizeof(*s));
}

const char *co_snapshot_id(const co_snapshot *s, size_t i)
{
	return s->ids + s->v[i].id_off;
}

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

/* FNV's low bits avalanche poorly; finish with splitmix64's mixer. */
static uint64_t finish(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h ? h : 1;
}

uint64_t co_snapshot_text_hash(const char *json, size_t len)
{
	const unsigned char *p = (const unsigned char *)json, *end = p + len;
	uint64_t h = FNV_OFFSET;
	int in_string = 0;

	for (; p < end; p++) {
		unsigned c = *p;

		if (in_string) {
			if (c == '\\' && p + 1 < end) {
				/* An escape: hash both bytes, the second is not a quote.
				 */
				h = (h ^ c) * FNV_PRIME;
				c = *++p;
			} else if (c == '"') {
				in_string = 0;
			}
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			continue; /* between tokens: not part of the value */
		} else if (c == '"') {
			in_string = 1;
		}
		h = (h ^ c) * FNV_PRIME;
	}
	return finish(h);
}

uint64_t co_snapshot_version_hash(const char *version)
{
	if (version == NULL || version[0] == '\0')
		return 0;
	return co_snapshot_text_hash(version, strlen(version));
}

int co_snapshot_hash(uint64_t *out, const co_record *r)
{
	char *json = co_record_to_json(r, 0);

	if (json == NULL)
		return co_error_set(CO_ENOMEM, "out of memory hashing %s %s",
				    co_kind_name(r->kind), r->id);
	*out = co_snapshot_text_hash(json, strlen(json));
	free(json);
	return 0;
}

int co_snapshot_add(co_snapshot *s, const co_record *r)
{
	uint64_t hash = 0;
	int error;

	if ((error = co_snapshot_hash(&hash, r)) < 0)
		return error;
	return co_snapshot_add_hashed(s, r->kind, r->id, hash, 0);
}

int co_snapshot_add_hashed(co_snapshot *s, co_kind kind, const char *id, uint64_t hash,
			   uint64_t ver)
{
	return co_snapshot_add_entry(s, kind, id, hash, ver, NULL, 0);
}

int co_snapshot_add_entry(co_snapshot *s, co_kind kind, const char *id, uint64_t hash,
			  uint64_t ver, const unsigned char *blob, int unread)
{
	co_snapshot_entry *en;
	size_t len = strlen(id) + 1;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		co_snapshot_entry *v = realloc(s->v, cap * sizeof(*v));

		if (v == NULL)
			return co_error_set(
			    CO_ENOMEM, "out of memory (snapshot of %zu records)", s->n);
		s->v = v;
		s->cap = cap;
	}
	if (s->ids_len + len > s->ids_cap) {
		size_t cap = s->ids_cap ? s->ids_cap * 2 : 16384;
		char *ids;

		while (cap < s->ids_len + len)
			cap *= 2;
		if (cap > UINT32_MAX)
			return co_error_set(CO_ETOOBIG,
					    "snapshot: over 4 GiB of record IDs");
		if ((ids = realloc(s->ids, cap)) == NULL)
			return co_error_set(
			    CO_ENOMEM, "out of memory (snapshot of %zu records)", s->n);
		s->ids = ids;
		s->ids_cap = cap;
	}
	memcpy(s->ids + s->ids_len, id, len);
	en = &s->v[s->n];
	en->hash = hash;
	en->ver = ver;
	en->id_off = (uint32_t)s->ids_len;
	en->kind = (uint8_t)kind;
	en->has_blob = blob != NULL;
	en->unread = unread && blob != NULL;
	if (blob)
		memcpy(en->blob, blob, CO_BLOB_ID_LEN);
	else
		memset(en->blob, 0, CO_BLOB_ID_LEN);
	s->n++;
	s->ids_len += len;
	return 0;
}

static int entry_cmp(const void *a, const void *b, void *arg)
{
	const co_snapshot_entry *x = a, *y = b;
	const char *ids = arg;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(ids + x->id_off, ids + y->id_off);
}

void co_snapshot_sort(co_snapshot *s)
{
	size_t i;

	for (i = 1; i < s->n; i++)
		if (entry_cmp(&s->v[i - 1], &s->v[i], s->ids) > 0)
			break;
	if (i < s->n)
		qsort_r(s->v, s->n, sizeof(*s->v), entry_cmp, s->ids);
}

/* Progress every this many records of a scan. */
#define PROGRESS_EVERY 16384

struct take_ctx {
	co_snapshot *s;
	co_store *store;
	co_snapshot_progress_fn progress;
	void *progress_ctx;
	co_git_form form; /* reused for every record */
};

/*
 * What a snapshot keeps of a record's bytes: the blob id of their git form
 * when they have one (all that comparing needs: equal forms are equal
 * tokens), else their text hash (*has_blob 0).  The text hash is the
 * costlier of the two and is skipped when there is a form.
 */
static int digest(uint64_t *hash, unsigned char *blob, int *has_blob, co_git_form *form,
		  const char *raw, size_t len)
{
	int error = co_git_form_build(form, raw, len);

	if (error < 0)
		return error;
	*has_blob = error == 0;
	if (error == 0) {
		*hash = 0;
		return co_git_blob_id(blob, form->buf, form->len);
	}
	*hash = co_snapshot_text_hash(raw, len);
	return 0;
}

/* Digest one record (unless the store named it by blob id, unread) and add
 * it to the snapshot. */
static int add_one(struct take_ctx *c, co_kind kind, const char *id, const char *raw,
		   size_t len, const char *version, const unsigned char *blob_id)
{
	unsigned char blob[CO_BLOB_ID_LEN];
	const unsigned char *bp = blob_id;
	uint64_t hash = 0;
	int error, has_blob;

	if (raw) {
		if ((error = digest(&hash, blob, &has_blob, &c->form, raw, len)) < 0)
			return error;
		bp = has_blob ? blob : NULL;
	}
	error =
	    co_snapshot_add_entry(c->s, kind, id, hash, co_snapshot_version_hash(version),
				  bp, raw == NULL && blob_id != NULL);
	if (error == 0 && c->progress && c->s->n % PROGRESS_EVERY == 0)
		c->progress(c->progress_ctx, co_store_name(c->store), c->s->n, 0);
	return error;
}

static int take_one(void *ctx, const co_scan_item *it)
{
	return add_one(ctx, it->kind, it->id, it->raw, it->len, it->version, it->blob_id);
}

int co_snapshot_take(co_snapshot *out, co_store *store, co_snapshot_progress_fn progress,
		     void *progress_ctx)
{
	co_snapshot s = {0};
	struct take_ctx c = {&s, store, progress, progress_ctx, {0}};
	int error;

	error = co_store_scan_flags(store, CO_SCAN_NO_DATA, take_one, &c);
	co_git_form_clear(&c.form);
	if (error < 0) {
		co_snapshot_clear(&s);
		return error;
	}
	if (progress)
		progress(progress_ctx, co_store_name(store), s.n, s.n);
	co_snapshot_sort(&s);
	co_snapshot_clear(out);
	*out = s;
	return 0;
}

/* 1 when two entries' blob ids prove their records equal. */
static int same_blob(const co_snapshot_entry *x, const co_snapshot_entry *y)
{
	return x->has_blob && y->has_blob &&
	       memcmp(x->blob, y->blob, CO_BLOB_ID_LEN) == 0;
}

/*
 * Read unread entry x back from its store by blob id and digest its bytes
 * as a scan's would be: a file in another layout than cJSON_Print's (a
 * legacy writer's) then gets the blob id of its git form, which equals the
 * other store's when their tokens are the same.  1 when read, 0 when the
 * blob is gone.
 */
static int read_back(co_snapshot_entry *x, co_store *store, co_git_form *form)
{
	char *text = NULL;
	size_t len = 0;
	int error = co_store_read_blob(&text, &len, store, x->blob), has_blob = 0;

	if (error == CO_ENOTFOUND) {
		/* Gone (pruned): hash 0 diffs as a mismatch; the caller re-reads
		 * the ID from the store as it is now. */
		co_error_clear();
		return 0;
	}
	if (error < 0)
		return error;
	error = digest(&x->hash, x->blob, &has_blob, form, text, len);
	free(text);
	if (error < 0)
		return error;
	x->has_blob = (uint8_t)has_blob;
	x->unread = 0;
	return 1;
}

/* Report resolve progress every this many reads. */
#define RESOLVE_PROGRESS_EVERY 4096

int co_snapshot_resolve(co_snapshot_stats *stats, co_snapshot *a, co_store *a_store,
			co_snapshot *b, co_store *b_store,
			co_snapshot_progress_fn progress, void *progress_ctx)
{
	co_snapshot_stats st = {0, 0};
	co_git_form form = {0};
	size_t i = 0, j = 0, k;
	int error = 0;

	while (i < a->n && j < b->n) {
		co_snapshot_entry *x = &a->v[i], *y = &b->v[j];
		int c = x->kind != y->kind
			    ? (x->kind < y->kind ? -1 : 1)
			    : strcmp(co_snapshot_id(a, i), co_snapshot_id(b, j));

		if (c != 0) {
			/* In one snapshot only: missing, whatever its text. */
			i += c < 0;
			j += c > 0;
			continue;
		}
		i++;
		j++;
		if (same_blob(x, y)) {
			st.same_blob++;
			continue;
		}
		for (k = 0; k < 2; k++) {
			co_snapshot_entry *z = k ? y : x;

			if (!z->unread)
				continue;
			if ((error = read_back(z, k ? b_store : a_store, &form)) < 0)
				goto done;
			st.read_back += (size_t)error;
			if (progress && error &&
			    st.read_back % RESOLVE_PROGRESS_EVERY == 0)
				progress(progress_ctx,
					 co_store_name(k ? b_store : a_store),
					 st.read_back, 0);
		}
	}
	error = 0;
done:
	co_git_form_clear(&form);
	if (error < 0)
		return error;
	if (progress)
		progress(progress_ctx, co_store_name(a_store), st.read_back,
			 st.read_back);
	if (stats)
		*stats = st;
	return 0;
}

static const char *const class_names[] = {"equal", "missing_in_etcd", "missing_in_git",
					  "mismatch"};

const char *co_diff_class_name(co_diff_class c)
{
	if ((unsigned)c >= sizeof(class_names) / sizeof(class_names[0]))
		return "?";
	return class_names[c];
}

int co_diff_class_parse(co_diff_class *out, const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof(class_names) / sizeof(class_names[0]); i++) {
		if (strcmp(name, class_names[i]) == 0) {
			*out = (co_diff_class)i;
			return 0;
		}
	}
	return co_error_set(CO_EINVAL, "unknown divergence class \"%s\"",
			    name ? name : "");
}

int co_snapshot_diff(size_t *equal, size_t *total, const co_snapshot *git,
		     const co_snapshot *etcd, co_diff_fn fn, void *ctx)
{
	size_t i = 0, j = 0, n_equal = 0, n_total = 0;
	co_diff_item item;
	int error = 0;

	while (i < git->n || j < etcd->n) {
		int c;

		if (i == git->n)
			c = 1;
		else if (j == etcd->n)
			c = -1;
		else if (git->v[i].kind != etcd->v[j].kind)
			c = git->v[i].kind < etcd->v[j].kind ? -1 : 1;
		else
			c = strcmp(co_snapshot_id(git, i), co_snapshot_id(etcd, j));
		n_total++;
		memset(&item, 0, sizeof(item));
		if (c < 0) {
			item.kind = (co_kind)git->v[i].kind;
			item.id = co_snapshot_id(git, i);
			item.cls = CO_DIFF_MISSING_IN_ETCD;
			item.git_hash = git->v[i].hash;
			item.git_ver = git->v[i].ver;
			i++;
		} else if (c > 0) {
			item.kind = (co_kind)etcd->v[j].kind;
			item.id = co_snapshot_id(etcd, j);
			item.cls = CO_DIFF_MISSING_IN_GIT;
			item.etcd_hash = etcd->v[j].hash;
			item.etcd_ver = etcd->v[j].ver;
			j++;
		} else {
			item.kind = (co_kind)git->v[i].kind;
			item.id = co_snapshot_id(git, i);
			item.git_hash = git->v[i].hash;
			item.etcd_hash = etcd->v[j].hash;
			item.git_ver = git->v[i].ver;
			item.etcd_ver = etcd->v[j].ver;
			item.cls = same_blob(&git->v[i], &etcd->v[j]) ||
					   (item.git_hash != 0 &&
					    item.git_hash == item.etcd_hash)
				       ? CO_DIFF_EQUAL
				       : CO_DIFF_MISMATCH;
			i++;
			j++;
		}
		if (item.cls == CO_DIFF_EQUAL) {
			n_equal++;
			continue;
		}
		if (fn && (error = fn(ctx, &item)) < 0)
			break;
	}
	if (error == 0) {
		if (equal)
			*equal = n_equal;
		if (total)
			*total = n_total;
	}
	return error;
}
