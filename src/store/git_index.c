/*
 * git_index.c - the branch head's file index, shared by every reader of a
 * git store: for the head commit, each record file's name and blob id, in
 * one sorted array per directory (tasks/, swarms/) (git_private.h).
 *
 * Why: a get looked its file up in the head's tasks/ tree, which libgit2
 * parses and caches per repository, and serve's pool holds 16 of them.
 * Each held its own copy of the tree (it grows with every task), and once
 * the copies together passed the cache's total (CO_GIT_CACHE_MAX), every
 * store evicted the others' trees, so the next read parsed its tree again:
 * at 100k tasks, 16 readers and a writer on one store, the heap held 108
 * MB and reads fell to 81 a second (bench/bench_git_mem.c).  Now the head's
 * trees are parsed once per head, in one repository of the index's own,
 * and copied into plain arrays that any thread may search.
 *
 * A snapshot is immutable once published and counted: a reader keeps the
 * one it took however often the head moves meanwhile.
 */
#include "git_private.h"

#include "../core/error.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/*
 * A build whose directories held more entries than this closes the index's
 * repository after it: libgit2 would otherwise keep the parsed tree cached
 * beside the snapshot's copy (evicted only when that repository stores an
 * object, which it never does), ~40 MB at 1M tasks.  Reopening costs far
 * less than such a build.
 */
#define IX_REPO_KEEP_MAX 4096

struct gs_ixent {
	const char *name; /* "<id>.json", in the snapshot's names */
	git_oid id;
	git_object_t type;
};

struct gs_ixdir {
	struct gs_ixent *e;
	size_t n;
	char *names;
};

struct co_git__index {
	git_oid head; /* zero with exists = 0: the branch is unborn */
	int exists;
	atomic_int refs;	 /* the store's, and each reader's */
	struct gs_ixdir dirs[2]; /* [0] tasks/, [1] swarms/ */
};

static void ix_free(struct co_git__index *ix)
{
	int d;

	if (!ix)
		return;
	for (d = 0; d < 2; d++) {
		free(ix->dirs[d].e);
		free(ix->dirs[d].names);
	}
	free(ix);
}

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gs_ixent *)a)->name,
		      ((const struct gs_ixent *)b)->name);
}

/* Copy the entries of `root`'s directory `dname` into *dir (none: empty). */
static int ix_dir(struct gs_ixdir *dir, co_git_store *gs, git_repository *repo,
		  git_tree *root, const char *dname)
{
	const git_tree_entry *te = git_tree_entry_byname(root, dname);
	git_tree *sub = NULL;
	size_t i, n, bytes = 0;
	char *p;

	if (!te || git_tree_entry_type(te) != GIT_OBJECT_TREE)
		return 0; /* as a lookup by path finds nothing there */
	if (git_tree_lookup(&sub, repo, git_tree_entry_id(te)) < 0)
		return co_git__fail(CO_EUNAVAIL, "git repo %s: read %s/", gs->repo,
				    dname);
	n = git_tree_entrycount(sub);
	for (i = 0; i < n; i++)
		bytes += strlen(git_tree_entry_name(git_tree_entry_byindex(sub, i))) + 1;
	if ((dir->e = calloc(n ? n : 1, sizeof(*dir->e))) == NULL ||
	    (dir->names = malloc(bytes ? bytes : 1)) == NULL) {
		git_tree_free(sub);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	for (i = 0, p = dir->names; i < n; i++) {
		const git_tree_entry *x = git_tree_entry_byindex(sub, i);
		size_t len = strlen(git_tree_entry_name(x)) + 1;

		memcpy(p, git_tree_entry_name(x), len);
		dir->e[i].name = p;
		git_oid_cpy(&dir->e[i].id, git_tree_entry_id(x));
		dir->e[i].type = git_tree_entry_type(x);
		p += len;
	}
	dir->n = n;
	git_tree_free(sub);
	/* git orders a directory's entries as if a subdirectory's name ended
	 * in '/'; the searches below want plain strcmp order, which a
	 * directory of files already is (a 1M-entry sort costs ~0.3 s). */
	for (i = 1; i < n; i++)
		if (strcmp(dir->e[i - 1].name, dir->e[i].name) >= 0) {
			qsort(dir->e, n, sizeof(*dir->e), ent_cmp);
			break;
		}
	return 0;
}

/* A new snapshot of commit `head` (exists = 0: the branch is unborn), read
 * through gs->ix_repo (open). */
static int ix_build(struct co_git__index **out, co_git_store *gs, const git_oid *head,
		    int exists)
{
	struct co_git__index *ix = calloc(1, sizeof(*ix));
	git_commit *commit = NULL;
	git_tree *root = NULL;
	int error = 0;

	*out = NULL;
	if (!ix)
		return co_error_set(CO_ENOMEM, "out of memory");
	ix->exists = exists;
	if (exists) {
		git_oid_cpy(&ix->head, head);
		if ((error = co_git__commit_tree(&commit, &root, head, gs, gs->ix_repo)) <
			0 ||
		    (error = ix_dir(&ix->dirs[0], gs, gs->ix_repo, root,
				    co_kind_dir(CO_KIND_TASK))) < 0 ||
		    (error = ix_dir(&ix->dirs[1], gs, gs->ix_repo, root,
				    co_kind_dir(CO_KIND_SWARM))) < 0)
			goto fail;
	}
	git_tree_free(root);
	git_commit_free(commit);
	if (ix->dirs[0].n + ix->dirs[1].n > IX_REPO_KEEP_MAX) {
		git_repository_free(gs->ix_repo);
		gs->ix_repo = NULL;
	}
	atomic_init(&ix->refs, 1); /* the store's */
	*out = ix;
	return 0;
fail:
	git_tree_free(root);
	git_commit_free(commit);
	ix_free(ix);
	return error;
}

static int ix_is(const struct co_git__index *ix, const git_oid *head, int exists)
{
	return ix && ix->exists == exists && (!exists || git_oid_equal(&ix->head, head));
}

/* Drop one reference; the last frees the snapshot. */
static void ix_unref(struct co_git__index *ix)
{
	if (ix && atomic_fetch_sub(&ix->refs, 1) == 1)
		ix_free(ix);
}

int co_git__index_take(struct co_git__index **out, co_git_store *gs, const git_oid *head,
		       int exists)
{
	struct co_git__index *ix;
	git_oid now;
	int now_exists, error = 0;

	*out = NULL;
	pthread_mutex_lock(&gs->ix_mu);
	ix = gs->ix;
	if (!ix_is(ix, head, exists)) {
		/* Not the head the caller saw.  Most often the caller's is the
		 * older one (a writer moved the branch and another reader built
		 * its index first): the branch as it is now decides, so that
		 * readers racing a writer all move forward, and a head already
		 * indexed is not built again. */
		if ((!gs->ix_repo && (error = co_git__repo_open(&gs->ix_repo, gs)) < 0) ||
		    (error = co_git__head(&now, &now_exists, gs, gs->ix_repo)) < 0)
			goto done;
		if (!ix_is(ix, &now, now_exists)) {
			struct co_git__index *fresh = NULL;

			if ((error = ix_build(&fresh, gs, &now, now_exists)) < 0)
				goto done;
			ix_unref(ix);
			gs->ix = ix = fresh;
		}
	}
	atomic_fetch_add(&ix->refs, 1); /* gs->ix's own reference keeps it alive */
	*out = ix;
done:
	pthread_mutex_unlock(&gs->ix_mu);
	return error;
}

void co_git__index_give(co_git_store *gs, struct co_git__index *ix)
{
	(void)gs;
	ix_unref(ix);
}

void co_git__index_drop(co_git_store *gs)
{
	ix_unref(gs->ix);
	gs->ix = NULL;
	git_repository_free(gs->ix_repo);
	gs->ix_repo = NULL;
}

const git_oid *co_git__index_head(const struct co_git__index *ix)
{
	return &ix->head;
}

int co_git__index_lookup(git_oid *blob, int *found, co_git_store *gs,
			 const struct co_git__index *ix, co_kind kind, const char *file)
{
	const struct gs_ixdir *dir = &ix->dirs[kind == CO_KIND_SWARM];
	struct gs_ixent key, *e;

	*found = 0;
	key.name = file;
	e = dir->n ? bsearch(&key, dir->e, dir->n, sizeof(*dir->e), ent_cmp) : NULL;
	if (!e)
		return 0;
	if (e->type != GIT_OBJECT_BLOB)
		return co_error_set(CO_EINVAL, "git repo %s: %s/%s is not a file",
				    gs->repo, co_kind_dir(kind), file);
	git_oid_cpy(blob, &e->id);
	*found = 1;
	return 0;
}

size_t co_git__index_count(const struct co_git__index *ix, co_kind kind)
{
	return ix->dirs[kind == CO_KIND_SWARM].n;
}

const char *co_git__index_entry(const struct co_git__index *ix, co_kind kind, size_t i,
				const git_oid **id, int *is_file)
{
	const struct gs_ixent *e = &ix->dirs[kind == CO_KIND_SWARM].e[i];

	*id = &e->id;
	*is_file = e->type == GIT_OBJECT_BLOB;
	return e->name;
}
