/*
 * git_write.c - writing the git store: a tree with one file changed (or
 * many, for a drain's batch), committed with cutover's author and a
 * Cutover-Op trailer, published by compare-and-swap on the branch ref (and
 * pushed, for a URL), retried when another writer moved the branch
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

/* ---- writing ---- */

/*
 * Tree `root` with only dir/file changed: set to `blob`, or removed when
 * blob is NULL (and dir dropped when that empties it).  root may be NULL.
 */
static int gs_build_tree(git_oid *out, co_git_store *gs, git_repository *repo,
			 git_tree *root, const char *dname, const char *file,
			 const git_oid *blob)
{
	git_treebuilder *db = NULL, *rb = NULL;
	const git_tree_entry *e;
	git_tree *sub = NULL;
	git_oid sub_id;
	int error = 0;

	if (root && (e = git_tree_entry_byname(root, dname)) != NULL &&
	    git_tree_entry_type(e) == GIT_OBJECT_TREE &&
	    git_tree_lookup(&sub, repo, git_tree_entry_id(e)) < 0)
		goto fail;
	if (git_treebuilder_new(&db, repo, sub) < 0)
		goto fail;
	if (blob ? git_treebuilder_insert(NULL, db, file, blob, GIT_FILEMODE_BLOB) < 0
		 : git_treebuilder_remove(db, file) < 0)
		goto fail;
	if (git_treebuilder_new(&rb, repo, root) < 0)
		goto fail;
	if (git_treebuilder_entrycount(db) == 0) {
		if (git_treebuilder_get(rb, dname) &&
		    git_treebuilder_remove(rb, dname) < 0)
			goto fail;
	} else if (git_treebuilder_write(&sub_id, db) < 0 ||
		   git_treebuilder_insert(NULL, rb, dname, &sub_id, GIT_FILEMODE_TREE) <
		       0) {
		goto fail;
	}
	if (git_treebuilder_write(out, rb) < 0)
		goto fail;
	goto done;
fail:
	error = co_git__fail(CO_EUNAVAIL, "git repo %s: build tree for %s/%s", gs->repo,
			     dname, file);
done:
	git_treebuilder_free(rb);
	git_treebuilder_free(db);
	git_tree_free(sub);
	return error;
}

/*
 * "<subject>\n\nCutover-Op: <why>\n", newlines in `why` flattened.  The
 * subject is `why`, with the file's path appended when `why` does not name
 * the record ("create" -> "create tasks/P0.1"), so that `git log --oneline`
 * says what changed; the trailer keeps `why` as given.
 */
static char *gs_message(const char *why, const char *path, const char *id)
{
	char *w = strdup(why && *why ? why : "update"), *m, *p;

	if (!w)
		return NULL;
	for (p = w; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (strstr(w, id))
		m = co_git__printf("%s\n\n%s: %s\n", w, CO_GIT_TRAILER, w);
	else
		m = co_git__printf("%s %s\n\n%s: %s\n", w, path, CO_GIT_TRAILER, w);
	free(w);
	return m;
}

/*
 * Commit `tree_id` on `parent` (NULL: the branch is unborn) and move the
 * branch to it if it still holds `head` (zero id: still unborn), checked
 * under the ref's lock file; with a remote, push instead.  0 published, 1
 * when the branch moved under us (repeat the attempt), or an error.
 * `what` names the change in error messages.
 */
static int gs_publish(co_git_store *gs, git_repository *repo, git_commit *parent,
		      const git_oid *head, const git_oid *tree_id, const char *msg,
		      const char *what)
{
	git_tree *ntree = NULL;
	git_signature *sig = NULL;
	git_reference *ref = NULL;
	const git_commit *parents[1] = {parent};
	git_oid commit_id;
	int rc, error = 0;

	if (git_tree_lookup(&ntree, repo, tree_id) < 0 ||
	    git_signature_now(&sig, CO_GIT_AUTHOR_NAME, CO_GIT_AUTHOR_EMAIL) < 0 ||
	    git_commit_create(&commit_id, repo, NULL, sig, sig, NULL, msg, ntree,
			      parent ? 1 : 0, parents) < 0) {
		error =
		    co_git__fail(CO_EUNAVAIL, "git repo %s: commit %s", gs->repo, what);
		goto done;
	}
	if (gs->url) {
		if ((error = co_git__push_locked(gs, repo, &commit_id)) == CO_ERETRY)
			error = 1;
		else if (error == 0)
			atomic_fetch_add(&gs->commits, 1);
		goto done;
	}
	rc = git_reference_create_matching(&ref, repo, gs->refname, &commit_id, 1, head,
					   msg);
	if (rc == 0)
		atomic_fetch_add(&gs->commits, 1);
	if (rc == GIT_EMODIFIED || rc == GIT_ELOCKED)
		error = 1;
	else if (rc < 0)
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: update %s", gs->repo,
				     gs->refname);
done:
	git_reference_free(ref);
	git_signature_free(sig);
	git_tree_free(ntree);
	return error;
}

/*
 * The compare of a compare-and-swap: `path` in `tree` must still have
 * version `expected` ("" = absent); its blob id in *cur and *found.
 * CO_ERETRY when it changed meanwhile.
 */
static int gs_check_version(git_oid *cur, int *found, co_git_store *gs, git_tree *tree,
			    const char *path, const co_version *expected)
{
	char cur_hex[GIT_OID_HEXSZ + 1] = "";
	int error;

	if ((error = co_git__lookup_file(cur, found, gs, tree, path)) < 0)
		return error;
	if (*found)
		git_oid_tostr(cur_hex, sizeof(cur_hex), cur);
	if (strcmp(cur_hex, expected->v) != 0)
		return co_error_set(CO_ERETRY,
				    "git repo %s: %s changed meanwhile (%s, not %s)",
				    gs->repo, path, *found ? cur_hex : "absent",
				    expected->v[0] ? expected->v : "absent");
	return 0;
}

/*
 * One attempt: build on the current head and publish.  CO_ERETRY when the
 * file changed (the caller's CAS lost); 1 when the ref moved under us and
 * the attempt should simply be repeated; 0 when published.
 */
static int gs_try_write(co_git_store *gs, git_repository *repo, co_kind kind,
			const char *file, const char *path, const char *json,
			const co_version *expected, const char *msg)
{
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_oid head, cur, blob, tree_id;
	int exists, found, error;

	if ((error = co_git__head_tree(&commit, &tree, &head, &exists, gs, repo)) < 0 ||
	    (error = gs_check_version(&cur, &found, gs, tree, path, expected)) < 0)
		goto done;
	if (!json && !found)
		goto done; /* deleting what is not there: nothing to commit */
	co_store__about_to_write(); /* the compare held: objects come next */
	if (json && git_blob_create_from_buffer(&blob, repo, json, strlen(json)) < 0) {
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: write blob for %s",
				     gs->repo, path);
		goto done;
	}
	if (json && found && git_oid_equal(&blob, &cur))
		goto done; /* same bytes: a commit would touch no file */
	if ((error = gs_build_tree(&tree_id, gs, repo, tree, co_kind_dir(kind), file,
				   json ? &blob : NULL)) < 0)
		goto done;
	error = gs_publish(gs, repo, commit, &head, &tree_id, msg, path);
done:
	git_tree_free(tree);
	git_commit_free(commit);
	return error;
}

/* Open the writers' repository once (the caller's turn or remote lock
 * held); CO_EUNAVAIL if it cannot be opened. */
static int gs_write_repo(co_git_store *gs)
{
	return gs->write_repo ? 0 : co_git__repo_open(&gs->write_repo, gs);
}

/* One attempt at a write: 0, 1 (repeat: the branch moved) or an error. */
typedef int (*gs_attempt_fn)(co_git_store *gs, git_repository *repo, void *ctx);

/*
 * Run `attempt` until it publishes or fails, up to max_retries times after
 * the branch moved under it; with a remote, each attempt fetches first,
 * under the remote's lock.  `what` names the change in the give-up message.
 */
static int gs_attempts(co_git_store *gs, const char *what, gs_attempt_fn attempt,
		       void *ctx)
{
	int n, error;

	/* Writers take turns (or, for a URL, the remote lock), and the one
	 * whose turn it is writes through gs->write_repo: the head trees a
	 * write parses stay cached in one repository, not in every one of
	 * the pool's. */
	for (n = 0;; n++) {
		if (n > gs->max_retries) {
			error = co_error_set(
			    CO_EUNAVAIL,
			    "git repo %s: %s: gave up after %d lost ref updates",
			    gs->repo, what, gs->max_retries);
			break;
		}
		if (gs->url) {
			if ((error = co_git__remote_lock(gs)) < 0)
				break;
			if ((error = gs_write_repo(gs)) == 0 &&
			    (error = co_git__fetch_locked(gs, gs->write_repo)) == 0)
				error = attempt(gs, gs->write_repo, ctx);
			co_git__remote_unlock(gs);
		} else {
			co_git__write_turn(gs);
			if ((error = gs_write_repo(gs)) == 0)
				error = attempt(gs, gs->write_repo, ctx);
			co_git__write_done(gs);
		}
		if (error != 1)
			break;
		atomic_fetch_add_explicit(&gs->ref_races, 1, memory_order_relaxed);
		co_git__backoff(n);
	}
	return error;
}

struct gs_one {
	co_kind kind;
	const char *file, *path, *json, *msg;
	const co_version *expected;
};

static int gs_attempt_one(co_git_store *gs, git_repository *repo, void *ctx)
{
	const struct gs_one *o = ctx;

	return gs_try_write(gs, repo, o->kind, o->file, o->path, o->json, o->expected,
			    o->msg);
}

int co_git__cas(void *impl, co_kind kind, const char *id, const co_record *r,
		const co_version *expected, const char *why)
{
	co_git_store *gs = impl;
	char path[CO_ID_MAX + 16], file[CO_ID_MAX + 8];
	char *json = NULL, *msg = NULL;
	int error;

	if ((error = co_git__path(path, sizeof(path), kind, id)) < 0)
		return error;
	if (r && (r->kind != kind || strcmp(r->id, id) != 0))
		return co_error_set(CO_EINVAL, "git store: record %s is not %s %s", r->id,
				    co_kind_name(kind), id);
	snprintf(file, sizeof(file), "%s.json", id);
	if ((r && (json = co_record_to_json(r, 1)) == NULL) ||
	    (msg = gs_message(why, path, id)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
	} else {
		struct gs_one o = {kind, file, path, json, msg, expected};

		error = gs_attempts(gs, path, gs_attempt_one, &o);
	}
	free(msg);
	free(json);
	return error;
}

/* ---- many files in one commit ---- */

struct gs_many {
	const co_store__write *w;
	size_t n;
	char **json;	      /* the files' text, w's order */
	git_tree_update *upd; /* paths point into `paths` */
	char (*paths)[CO_ID_MAX + 16];
	const char *msg;
};

static int gs_attempt_many(co_git_store *gs, git_repository *repo, void *ctx)
{
	struct gs_many *m = ctx;
	git_commit *commit = NULL;
	git_tree *tree = NULL, *empty = NULL;
	git_treebuilder *tb = NULL;
	git_oid head, cur, tree_id;
	size_t i, nu = 0;
	int exists, found, error;

	if ((error = co_git__head_tree(&commit, &tree, &head, &exists, gs, repo)) < 0)
		goto done;
	co_store__about_to_write();
	for (i = 0; i < m->n; i++) {
		if ((error = gs_check_version(&cur, &found, gs, tree, m->paths[i],
					      &m->w[i].expected)) < 0)
			goto done;
		if (git_blob_create_from_buffer(&m->upd[nu].id, repo, m->json[i],
						strlen(m->json[i])) < 0) {
			error =
			    co_git__fail(CO_EUNAVAIL, "git repo %s: write blob for %s",
					 gs->repo, m->paths[i]);
			goto done;
		}
		if (found && git_oid_equal(&m->upd[nu].id, &cur))
			continue; /* the same bytes already */
		m->upd[nu].action = GIT_TREE_UPDATE_UPSERT;
		m->upd[nu].filemode = GIT_FILEMODE_BLOB;
		m->upd[nu].path = m->paths[i];
		nu++;
	}
	if (nu == 0)
		goto done;
	if (tree == NULL) { /* unborn: build on the empty tree */
		if (git_treebuilder_new(&tb, repo, NULL) < 0 ||
		    git_treebuilder_write(&tree_id, tb) < 0 ||
		    git_tree_lookup(&empty, repo, &tree_id) < 0) {
			error = co_git__fail(CO_EUNAVAIL, "git repo %s: empty tree",
					     gs->repo);
			goto done;
		}
	}
	if (git_tree_create_updated(&tree_id, repo, tree ? tree : empty, nu, m->upd) <
	    0) {
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: build tree for %zu files",
				     gs->repo, nu);
		goto done;
	}
	error = gs_publish(gs, repo, commit, &head, &tree_id, m->msg, m->paths[0]);
done:
	git_treebuilder_free(tb);
	git_tree_free(empty);
	git_tree_free(tree);
	git_commit_free(commit);
	return error;
}

int co_git__cas_many(void *impl, const co_store__write *w, size_t n, const char *why)
{
	co_git_store *gs = impl;
	struct gs_many m;
	size_t i;
	int error = 0;

	memset(&m, 0, sizeof(m));
	m.w = w;
	m.n = n;
	if ((m.json = calloc(n, sizeof(*m.json))) == NULL ||
	    (m.upd = calloc(n, sizeof(*m.upd))) == NULL ||
	    (m.paths = calloc(n, sizeof(*m.paths))) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	for (i = 0; i < n && error == 0; i++) {
		error = co_git__path(m.paths[i], sizeof(m.paths[i]), w[i].r->kind,
				     w[i].r->id);
		if (error == 0 && (m.json[i] = co_record_to_json(w[i].r, 1)) == NULL)
			error = co_error_set(CO_ENOMEM, "out of memory");
	}
	if (error < 0)
		goto done;
	m.msg = n == 1 ? gs_message(why, m.paths[0], w[0].r->id)
		       : co_git__printf("%s %zu records\n\n%s: %s\n", why, n,
					CO_GIT_TRAILER, why);
	if (m.msg == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	error = gs_attempts(gs, m.paths[0], gs_attempt_many, &m);
done:
	for (i = 0; m.json && i < n; i++)
		free(m.json[i]);
	free(m.json);
	free(m.upd);
	free(m.paths);
	free((char *)m.msg);
	return error;
}
