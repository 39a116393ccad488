/*
 * git_log.c - foreign commits in the recent history of the git branch.
 *
 * A revision walk from the branch head sorted by time, newest first.  Walking
 * by time rather than topologically lets the walk end at the first commit
 * older than the window: a clock skewed client could hide a commit behind an
 * older one, but the gate errs on the side of refusing, and a skewed commit
 * that looks older than the window is also one that no operator would call
 * "recent".  Commits are classified as in migrate/git_tail.c: author and
 * trailer both, so that neither a human borrowing the name nor a copied
 * message counts as cutover's.
 *
 * Not here: what the gate decides with the list (flags/gate.c).
 */
#include "git_log.h"

#include "git_store.h"

#include "../core/error.h"

#include <git2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t git_once = PTHREAD_ONCE_INIT;

static void git_init(void)
{
	git_libgit2_init();
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

static int is_url(const char *repo)
{
	const char *colon = strchr(repo, ':');
	const char *slash = strchr(repo, '/');

	if (strstr(repo, "://") != NULL)
		return 1;
	return colon != NULL && (slash == NULL || colon < slash);
}

static int git_fail(const char *repo, const char *what)
{
	const git_error *e = git_error_last();

	return co_error_set(CO_EUNAVAIL, "git repo %s: %s: %s", repo, what,
			    e && e->message ? e->message : "failed");
}

int co_git_log_foreign(co_git_foreign **out, size_t *n, const char *repo,
		       const char *branch, int64_t since_ms, size_t max)
{
	git_repository *r = NULL;
	git_revwalk *walk = NULL;
	git_commit *c = NULL;
	co_git_foreign *v = NULL;
	size_t cnt = 0;
	char refname[300];
	git_oid oid;
	int error = 0, rc;

	if (repo == NULL || *repo == '\0')
		return co_error_set(CO_EINVAL, "no git repository configured");
	if (is_url(repo))
		return co_error_set(CO_EINVAL,
				    "git repo %s: the legacy-writer check needs a local "
				    "repository path",
				    repo);
	pthread_once(&git_once, git_init);
	snprintf(refname, sizeof(refname), "refs/heads/%s", branch ? branch : "main");
	if (git_repository_open_bare(&r, repo) < 0) {
		error = git_fail(repo, "open");
		goto done;
	}
	rc = git_reference_name_to_id(&oid, r, refname);
	if (rc == GIT_ENOTFOUND)
		goto found; /* unborn branch: no commits at all */
	if (rc < 0 || git_revwalk_new(&walk, r) < 0 || git_revwalk_push(walk, &oid) < 0) {
		error = git_fail(repo, "walk");
		goto done;
	}
	git_revwalk_sorting(walk, GIT_SORT_TIME);
	while (cnt < max && (rc = git_revwalk_next(&oid, walk)) == 0) {
		const git_signature *a;
		int64_t t;

		if (git_commit_lookup(&c, r, &oid) < 0) {
			error = git_fail(repo, "read commit");
			goto done;
		}
		t = (int64_t)git_commit_time(c) * 1000;
		if (t < since_ms)
			break;
		if (!is_ours(c)) {
			co_git_foreign *nv = realloc(v, (cnt + 1) * sizeof(*nv));
			const char *summary = git_commit_summary(c);

			if (nv == NULL) {
				error = co_error_set(CO_ENOMEM, "out of memory");
				goto done;
			}
			v = nv;
			memset(&v[cnt], 0, sizeof(v[cnt]));
			a = git_commit_author(c);
			git_oid_tostr(v[cnt].id, sizeof(v[cnt].id), &oid);
			snprintf(v[cnt].short_id, sizeof(v[cnt].short_id), "%.10s", v[cnt].id);
			snprintf(v[cnt].author, sizeof(v[cnt].author), "%s <%s>",
				 a && a->name ? a->name : "?", a && a->email ? a->email : "?");
			snprintf(v[cnt].summary, sizeof(v[cnt].summary), "%s",
				 summary ? summary : "");
			v[cnt].time_ms = t;
			cnt++;
		}
		git_commit_free(c);
		c = NULL;
	}
	if (rc < 0 && rc != GIT_ITEROVER) {
		error = git_fail(repo, "walk");
		goto done;
	}
found:
	*out = v;
	*n = cnt;
	v = NULL;
done:
	git_commit_free(c);
	git_revwalk_free(walk);
	git_repository_free(r);
	free(v);
	return error;
}
