/*
 * git_tail.c - the commits on the branch after a given one, and what each
 * changed, for `cutover migrate --follow`.
 *
 * Legacy clients keep committing task files with plain git during the `git`
 * and `shadow` stages.  The follower must see every one of those commits,
 * not just the net effect between two polls (as the store's watch does), so
 * that it can tell foreign commits from cutover's own and say which commit
 * it mirrored.  A revision walk from the head, hiding the last commit
 * handled, in topological order reversed, gives them oldest first; each is
 * diffed against its first parent (a merge's other side was already walked
 * as its own commits).
 *
 * A commit is cutover's when its author is "cutover <cutover@localhost>"
 * and its message carries the "Cutover-Op:" trailer (git_store.h): both,
 * so that neither a human borrowing the name nor a copied message counts.
 */
#include "migrate_internal.h"

#include "../src/core/error.h"
#include "../src/core/id.h"

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void co_git_commits_free(co_git_commit_info *c, size_t n)
{
	size_t i, k;

	if (!c)
		return;
	for (i = 0; i < n; i++) {
		for (k = 0; k < c[i].n_changes; k++) {
			co_record_free(c[i].changes[k].r);
			free(c[i].changes[k].problem);
		}
		free(c[i].changes);
	}
	free(c);
}

static int is_ours(const git_commit *c)
{
	const git_signature *a = git_commit_author(c);
	const char *msg = git_commit_message(c);
	char trailer[64];

	snprintf(trailer, sizeof(trailer), "\n%s:", CO_GIT_TRAILER);
	return a && a->name && a->email && strcmp(a->name, CO_GIT_AUTHOR_NAME) == 0 &&
	       strcmp(a->email, CO_GIT_AUTHOR_EMAIL) == 0 && msg && strstr(msg, trailer);
}

/* "tasks/<id>.json" or "swarms/<id>.json": 1 and kind/id; 0 for other paths. */
static int record_path(co_kind *kind, char *id, size_t idlen, const char *path)
{
	const char *slash = strchr(path, '/'), *name;
	size_t n;

	if (!slash || strchr(slash + 1, '/'))
		return 0;
	if ((size_t)(slash - path) == 5 && strncmp(path, "tasks", 5) == 0)
		*kind = CO_KIND_TASK;
	else if ((size_t)(slash - path) == 6 && strncmp(path, "swarms", 6) == 0)
		*kind = CO_KIND_SWARM;
	else
		return 0;
	name = slash + 1;
	n = strlen(name);
	if (n <= 5 || strcmp(name + n - 5, ".json") != 0 || n - 5 >= idlen)
		return 0;
	memcpy(id, name, n - 5);
	id[n - 5] = '\0';
	return 1;
}

static int add_change(co_git_commit_info *ci, git_repository *repo,
		      const git_diff_delta *d)
{
	const char *path = d->status == GIT_DELTA_DELETED ? d->old_file.path : d->new_file.path;
	co_git_change *ch, *nv;
	git_blob *blob = NULL;
	char why[600];

	if ((nv = realloc(ci->changes, (ci->n_changes + 1) * sizeof(*nv))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	ci->changes = nv;
	ch = &nv[ci->n_changes];
	memset(ch, 0, sizeof(*ch));
	if (!record_path(&ch->kind, ch->id, sizeof(ch->id), path))
		return 0; /* not a record file: README edits and the like */
	ci->n_changes++;
	if (d->status == GIT_DELTA_DELETED) {
		ch->deleted = 1;
		return 0;
	}
	git_oid_tostr(ch->blob, sizeof(ch->blob), &d->new_file.id);
	if (co_id_validate(ch->id) < 0) {
		snprintf(why, sizeof(why), "%s: %s", path, co_error_last());
	} else if (git_blob_lookup(&blob, repo, &d->new_file.id) < 0) {
		snprintf(why, sizeof(why), "%s: blob cannot be read", path);
	} else if (co_record_from_json(&ch->r, git_blob_rawcontent(blob),
				       (size_t)git_blob_rawsize(blob)) < 0) {
		snprintf(why, sizeof(why), "%s: %s", path, co_error_last());
	} else if (ch->r->kind != ch->kind || strcmp(ch->r->id, ch->id) != 0) {
		snprintf(why, sizeof(why), "%s: holds %s \"%s\"", path, co_kind_name(ch->r->kind),
			 ch->r->id);
		co_record_free(ch->r);
		ch->r = NULL;
	} else {
		why[0] = '\0';
	}
	git_blob_free(blob);
	if (why[0] && (ch->problem = strdup(why)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	return 0;
}

static int describe(co_git_commit_info *ci, co_git_batch *g, git_commit *c)
{
	const git_signature *a = git_commit_author(c);
	const char *summary = git_commit_summary(c);
	git_commit *parent = NULL;
	git_tree *pt = NULL, *ct = NULL;
	git_diff *diff = NULL;
	size_t i, n;
	int error = 0;

	git_oid_tostr(ci->id, sizeof(ci->id), git_commit_id(c));
	snprintf(ci->author, sizeof(ci->author), "%s <%s>", a && a->name ? a->name : "?",
		 a && a->email ? a->email : "?");
	snprintf(ci->summary, sizeof(ci->summary), "%s", summary ? summary : "");
	ci->ours = is_ours(c);
	if (ci->ours)
		return 0; /* cutover's own: nothing to mirror, no need to diff */
	if ((git_commit_parentcount(c) > 0 &&
	     (git_commit_parent(&parent, c, 0) < 0 || git_commit_tree(&pt, parent) < 0)) ||
	    git_commit_tree(&ct, c) < 0 ||
	    git_diff_tree_to_tree(&diff, co_git_batch__repo(g), pt, ct, NULL) < 0) {
		const git_error *e = git_error_last();

		error = co_error_set(CO_EUNAVAIL, "git repo %s: diff commit %s: %s", co_git_batch__path(g),
				     ci->id, e && e->message ? e->message : "failed");
		goto done;
	}
	n = git_diff_num_deltas(diff);
	for (i = 0; i < n; i++)
		if ((error = add_change(ci, co_git_batch__repo(g), git_diff_get_delta(diff, i))) < 0)
			goto done;
done:
	git_diff_free(diff);
	git_tree_free(ct);
	git_tree_free(pt);
	git_commit_free(parent);
	return error;
}

int co_git_batch_commits_since(co_git_commit_info **out, size_t *n, co_git_batch *g,
			       const char *from, size_t max)
{
	co_git_commit_info *v = NULL;
	git_revwalk *walk = NULL;
	git_commit *c = NULL;
	git_oid oid;
	size_t cnt = 0;
	int error = 0, rc;

	*out = NULL;
	*n = 0;
	rc = git_reference_name_to_id(&oid, co_git_batch__repo(g), co_git_batch__refname(g));
	if (rc == GIT_ENOTFOUND)
		return 0; /* unborn branch: no commits */
	if (rc < 0 || git_revwalk_new(&walk, co_git_batch__repo(g)) < 0 || git_revwalk_push(walk, &oid) < 0)
		goto fail;
	git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
	if (from && *from) {
		git_oid f;

		if (git_oid_fromstr(&f, from) < 0 || git_revwalk_hide(walk, &f) < 0) {
			error = co_error_set(CO_ENOTFOUND, "git repo %s: commit %s not found",
					     co_git_batch__path(g), from);
			goto done;
		}
	}
	while (cnt < max && (rc = git_revwalk_next(&oid, walk)) == 0) {
		co_git_commit_info *nv = realloc(v, (cnt + 1) * sizeof(*nv));

		if (!nv) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		v = nv;
		memset(&v[cnt], 0, sizeof(v[cnt]));
		cnt++;
		if (git_commit_lookup(&c, co_git_batch__repo(g), &oid) < 0)
			goto fail;
		if ((error = describe(&v[cnt - 1], g, c)) < 0)
			goto done;
		git_commit_free(c);
		c = NULL;
	}
	if (rc < 0 && rc != GIT_ITEROVER && cnt < max)
		goto fail;
	*out = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
	goto done;
fail:
	{
		const git_error *e = git_error_last();

		error = co_error_set(CO_EUNAVAIL, "git repo %s: walk %s: %s", co_git_batch__path(g),
				     co_git_batch__refname(g), e && e->message ? e->message : "failed");
	}
done:
	git_commit_free(c);
	git_revwalk_free(walk);
	co_git_commits_free(v, cnt);
	return error;
}
