/*
 * git_read.c - reading the git store: the branch's head, and through the
 * head's shared file index (git_index.c) one record by path, the whole
 * list and the blob-id scan a reconciliation streams; blobs by id
 * (git_private.h).
 */
#include "git_private.h"

#include "../core/error.h"
#include "../core/id.h"

#include <git2.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ---- */

/* Head commit of the branch; *exists = 0 (and a zero id) when it is unborn. */
int co_git__head(git_oid *out, int *exists, co_git_store *gs, git_repository *repo)
{
	int rc = git_reference_name_to_id(out, repo, gs->readref);

	if (rc == GIT_ENOTFOUND) {
		memset(out, 0, sizeof(*out));
		*exists = 0;
		return 0;
	}
	if (rc < 0)
		return co_git__fail(CO_EUNAVAIL, "git repo %s: read %s", gs->repo,
				    gs->refname);
	*exists = 1;
	return 0;
}

int co_git__commit_tree(git_commit **commit, git_tree **tree, const git_oid *id,
			co_git_store *gs, git_repository *repo)
{
	char hex[GIT_OID_HEXSZ + 1];
	int error;

	*commit = NULL;
	*tree = NULL;
	if (git_commit_lookup(commit, repo, id) < 0 ||
	    git_commit_tree(tree, *commit) < 0) {
		git_oid_tostr(hex, sizeof(hex), id);
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: read commit %s", gs->repo,
				     hex);
		git_commit_free(*commit);
		*commit = NULL;
		return error;
	}
	return 0;
}

/* Head commit and its tree (both NULL on an unborn branch). */
int co_git__head_tree(git_commit **commit, git_tree **tree, git_oid *head, int *exists,
		      co_git_store *gs, git_repository *repo)
{
	int error;

	*commit = NULL;
	*tree = NULL;
	if ((error = co_git__head(head, exists, gs, repo)) < 0 || !*exists)
		return error;
	return co_git__commit_tree(commit, tree, head, gs, repo);
}

/* Parse a blob as the record of kind/id (id NULL: any id); CO_EINVAL names
 * the path and the commit. */
int co_git__parse_blob(co_record **out, co_git_store *gs, git_repository *repo,
		       const git_oid *blob_id, const char *path, const git_oid *commit,
		       co_kind kind, const char *id)
{
	char hex[GIT_OID_HEXSZ + 1];
	char why[512];
	git_blob *blob = NULL;
	co_record *r = NULL;
	int error = 0;

	git_oid_tostr(hex, sizeof(hex), commit);
	atomic_fetch_add_explicit(&gs->blobs_read, 1, memory_order_relaxed);
	if (git_blob_lookup(&blob, repo, blob_id) < 0) {
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: read %s at commit %s",
				     gs->repo, path, hex);
		goto done;
	}
	if ((error = co_record_from_json(&r, git_blob_rawcontent(blob),
					 (size_t)git_blob_rawsize(blob))) < 0) {
		snprintf(why, sizeof(why), "%s", co_error_last());
		error = co_error_set(CO_EINVAL, "git repo %s: %s at commit %s: %s",
				     gs->repo, path, hex, why);
		goto done;
	}
	if (r->kind != kind || (id && strcmp(r->id, id) != 0)) {
		error =
		    co_error_set(CO_EINVAL,
				 "git repo %s: %s at commit %s holds %s \"%s\", not a %s "
				 "of that name",
				 gs->repo, path, hex, co_kind_name(r->kind), r->id,
				 co_kind_name(kind));
		goto done;
	}
	*out = r;
	r = NULL;
done:
	co_record_free(r);
	git_blob_free(blob);
	return error;
}

/*
 * The blob id at `path` in `tree` into *blob (*found = 0 when absent).  A
 * path that is not a regular file is malformed: CO_EINVAL.
 */
int co_git__lookup_file(git_oid *blob, int *found, co_git_store *gs, git_tree *tree,
			const char *path)
{
	git_tree_entry *te = NULL;
	int rc;

	*found = 0;
	if (!tree)
		return 0;
	rc = git_tree_entry_bypath(&te, tree, path);
	if (rc == GIT_ENOTFOUND)
		return 0;
	if (rc < 0)
		return co_git__fail(CO_EUNAVAIL, "git repo %s: look up %s", gs->repo,
				    path);
	if (git_tree_entry_type(te) != GIT_OBJECT_BLOB) {
		git_tree_entry_free(te);
		return co_error_set(CO_EINVAL, "git repo %s: %s is not a file", gs->repo,
				    path);
	}
	git_oid_cpy(blob, git_tree_entry_id(te));
	git_tree_entry_free(te);
	*found = 1;
	return 0;
}

/*
 * The file `name` of kind's directory as a record ID into id (len bytes):
 * 0 when it is no record (not *.json, or too long), which lists and scans
 * skip as they skip what is not a file.
 */
static int record_id(char *id, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (n <= 5 || strcmp(name + n - 5, ".json") != 0 || n - 5 >= len)
		return 0;
	memcpy(id, name, n - 5);
	id[n - 5] = '\0';
	return 1;
}

/* The head's index (git_index.c), read through `repo` after a fetch. */
static int head_index(co_git__index **ix, co_git_store *gs, git_repository *repo)
{
	git_oid head;
	int exists, error;

	*ix = NULL;
	if ((error = co_git__sync(gs, repo)) < 0 ||
	    (error = co_git__head(&head, &exists, gs, repo)) < 0)
		return error;
	return co_git__index_take(ix, gs, &head, exists);
}

int co_git__get(co_record **out, co_version *ver, void *impl, co_kind kind,
		const char *id)
{
	co_git_store *gs = impl;
	git_repository *repo = NULL;
	co_git__index *ix = NULL;
	co_record *r = NULL;
	git_oid blob;
	char path[CO_ID_MAX + 16];
	const char *file = path + strlen(co_kind_dir(kind)) + 1; /* "<id>.json" */
	int found, error;

	ver->v[0] = '\0';
	if ((error = co_git__path(path, sizeof(path), kind, id)) < 0)
		return error;
	if ((error = co_git__repo_take(&repo, gs)) < 0)
		return error;
	/* The file's blob id from the head's shared index (git_index.c), not
	 * from a tree this repository would parse and cache for itself. */
	if ((error = head_index(&ix, gs, repo)) < 0 ||
	    (error = co_git__index_lookup(&blob, &found, gs, ix, kind, file)) < 0)
		goto done;
	if (!found) {
		error = co_error_set(CO_ENOTFOUND, "%s %s not found in %s",
				     co_kind_name(kind), id, gs->repo);
		goto done;
	}
	if ((error = co_git__parse_blob(&r, gs, repo, &blob, path, co_git__index_head(ix),
					kind, id)) < 0)
		goto done;
	git_oid_tostr(ver->v, sizeof(ver->v), &blob);
	*out = r;
	r = NULL;
done:
	co_record_free(r);
	co_git__index_give(gs, ix);
	co_git__repo_give(gs, repo);
	return error;
}

int co_git__list(co_record_list *out, void *impl, co_kind kind)
{
	co_git_store *gs = impl;
	co_record_list l = {NULL, 0, 0};
	git_repository *repo = NULL;
	co_git__index *ix = NULL;
	const char *dname = co_kind_dir(kind);
	int error;
	size_t i, n;

	if ((error = co_git__repo_take(&repo, gs)) < 0)
		return error;
	if ((error = head_index(&ix, gs, repo)) < 0)
		goto done;
	n = co_git__index_count(ix, kind);
	for (i = 0; i < n; i++) {
		const git_oid *blob;
		int is_file;
		const char *name = co_git__index_entry(ix, kind, i, &blob, &is_file);
		char path[512], id[512];
		co_record *r = NULL;

		if (!is_file || !record_id(id, sizeof(id), name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dname, name);
		if ((error = co_git__parse_blob(&r, gs, repo, blob, path,
						co_git__index_head(ix), kind, id)) < 0)
			goto done;
		if ((error = co_record_list_push(&l, r)) < 0) {
			co_record_free(r);
			goto done;
		}
	}
	for (i = 0; i < l.n; i++) {
		if ((error = co_record_list_push(out, l.items[i])) < 0) {
			/* out keeps what it took; the rest is freed below */
			memmove(l.items, l.items + i, (l.n - i) * sizeof(*l.items));
			l.n -= i;
			goto done;
		}
	}
	l.n = 0;
done:
	co_record_list_clear(&l);
	co_git__index_give(gs, ix);
	co_git__repo_give(gs, repo);
	return error;
}

/*
 * Pass every <dir>/<id>.json blob of the head to fn, raw, in tree order,
 * with its blob id; with CO_SCAN_NO_DATA only the index is read (the blob
 * ids are in it), which is what makes a reconciliation's git side cheap:
 * reading a blob costs a pack index search and an inflate (~3-5 us), an
 * index entry nothing.  The other entries of a kind's directory (not a
 * blob, not *.json) are not records and are skipped, as co_git__list does.
 */
static int gs_scan_kind(co_git_store *gs, git_odb *odb, const co_git__index *ix,
			co_kind kind, unsigned flags, co_scan_fn fn, void *ctx)
{
	const char *dname = co_kind_dir(kind);
	git_odb_object *obj = NULL;
	size_t i, n = co_git__index_count(ix, kind);
	int error = 0;

	for (i = 0; i < n; i++) {
		const git_oid *blob;
		int is_file;
		const char *name = co_git__index_entry(ix, kind, i, &blob, &is_file);
		char id[CO_ID_MAX + 8], ver[GIT_OID_HEXSZ + 1];
		co_scan_item item;

		if (!is_file || !record_id(id, sizeof(id), name))
			continue;
		item.raw = NULL;
		item.len = 0;
		if (!(flags & CO_SCAN_NO_DATA)) {
			atomic_fetch_add_explicit(&gs->blobs_read, 1,
						  memory_order_relaxed);
			if (git_odb_read(&obj, odb, blob) < 0) {
				error =
				    co_git__fail(CO_EUNAVAIL, "git repo %s: read %s/%s",
						 gs->repo, dname, name);
				break;
			}
			item.raw = git_odb_object_data(obj);
			item.len = git_odb_object_size(obj);
		}
		git_oid_tostr(ver, sizeof(ver), blob);
		item.kind = kind;
		item.id = id;
		item.version = ver;
		item.blob_id = blob->id;
		error = fn(ctx, &item);
		git_odb_object_free(obj);
		obj = NULL;
		if (error < 0)
			break;
	}
	return error;
}

/* Tasks then swarms, both from the one head commit read at the start. */
int co_git__scan(void *impl, unsigned flags, co_scan_fn fn, void *ctx)
{
	co_git_store *gs = impl;
	git_repository *repo = NULL;
	co_git__index *ix = NULL;
	git_odb *odb = NULL;
	int error;

	if ((error = co_git__repo_take(&repo, gs)) < 0)
		return error;
	if ((error = head_index(&ix, gs, repo)) < 0)
		goto done;
	if (git_repository_odb(&odb, repo) < 0) {
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: open the object database",
				     gs->repo);
		goto done;
	}
	error = gs_scan_kind(gs, odb, ix, CO_KIND_TASK, flags, fn, ctx);
	if (error == 0)
		error = gs_scan_kind(gs, odb, ix, CO_KIND_SWARM, flags, fn, ctx);
done:
	git_odb_free(odb);
	co_git__index_give(gs, ix);
	co_git__repo_give(gs, repo);
	return error;
}

/*
 * One blob by id, from the object database: no ref, no tree, so it is found
 * whatever the branch holds now (the reconciler reads back the few files
 * whose ids its snapshot could not match).  For a URL the mirror holds
 * every blob a scan of it passed, so no fetch is needed.
 */
int co_git__read_blob(char **out, size_t *len, void *impl, const unsigned char *blob_id)
{
	co_git_store *gs = impl;
	git_repository *repo = NULL;
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;
	git_oid oid;
	char hex[GIT_OID_HEXSZ + 1];
	char *buf = NULL;
	size_t n;
	int rc, error = 0;

	git_oid_fromraw(&oid, blob_id);
	git_oid_tostr(hex, sizeof(hex), &oid);
	if ((error = co_git__repo_take(&repo, gs)) < 0)
		return error;
	if (git_repository_odb(&odb, repo) < 0) {
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: open the object database",
				     gs->repo);
		goto done;
	}
	atomic_fetch_add_explicit(&gs->blobs_read, 1, memory_order_relaxed);
	if ((rc = git_odb_read(&obj, odb, &oid)) < 0) {
		error = rc == GIT_ENOTFOUND
			    ? co_error_set(CO_ENOTFOUND, "git repo %s: no object %s",
					   gs->repo, hex)
			    : co_git__fail(CO_EUNAVAIL, "git repo %s: read blob %s",
					   gs->repo, hex);
		goto done;
	}
	if (git_odb_object_type(obj) != GIT_OBJECT_BLOB) {
		error = co_error_set(CO_ENOTFOUND, "git repo %s: %s is not a blob",
				     gs->repo, hex);
		goto done;
	}
	n = git_odb_object_size(obj);
	if ((buf = malloc(n + 1)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory (blob of %zu bytes)", n);
		goto done;
	}
	memcpy(buf, git_odb_object_data(obj), n);
	buf[n] = '\0';
	*out = buf;
	*len = n;
done:
	git_odb_object_free(obj);
	git_odb_free(odb);
	co_git__repo_give(gs, repo);
	return error;
}
