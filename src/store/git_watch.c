/*
 * git_watch.c - the git store's watch: polling the branch's tree, diffing
 * it against the last one seen, turning added, modified and deleted *.json
 * files into events; a poll comes at once when this store committed or
 * (inotify, local repos) the branch's ref changed (git_private.h).
 */
#include "git_private.h"

#include "../core/error.h"
#include "../core/id.h"

#include <git2.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

/* ---- watch ---- */

static int gs_watch_push(gs_watch *w, co_event *e)
{
	if (w->qhead + w->qn == w->qcap) {
		if (w->qhead > 0) {
			memmove(w->q, w->q + w->qhead, w->qn * sizeof(*w->q));
			w->qhead = 0;
		} else {
			size_t cap = w->qcap ? w->qcap * 2 : 16;
			co_event **q = realloc(w->q, cap * sizeof(*q));

			if (!q)
				return co_error_set(CO_ENOMEM, "out of memory");
			w->q = q;
			w->qcap = cap;
		}
	}
	w->q[w->qhead + w->qn++] = e;
	return 0;
}

/* Turn one delta into an event if it is a record file under the prefix. */
static int gs_watch_delta(gs_watch *w, const git_diff_delta *d, const git_oid *head)
{
	const git_diff_file *f =
	    d->status == GIT_DELTA_DELETED ? &d->old_file : &d->new_file;
	const char *path = f->path, *slash = strchr(path, '/');
	char key[512], id[512];
	co_event *e = NULL;
	co_kind kind;
	size_t dlen, len = strlen(path);
	int error;

	if (!slash || len <= 5 || strcmp(path + len - 5, ".json") != 0 ||
	    len - 5 >= sizeof(key))
		return 0;
	dlen = (size_t)(slash - path);
	if (dlen == 5 && strncmp(path, "tasks", 5) == 0)
		kind = CO_KIND_TASK;
	else if (dlen == 6 && strncmp(path, "swarms", 6) == 0)
		kind = CO_KIND_SWARM;
	else
		return 0;
	memcpy(key, path, len - 5);
	key[len - 5] = '\0';
	snprintf(id, sizeof(id), "%s", key + dlen + 1);
	if (strchr(id, '/') || co_id_validate(id) < 0 ||
	    strncmp(key, w->prefix, strlen(w->prefix)) != 0) {
		co_error_clear();
		return 0;
	}
	if (d->status != GIT_DELTA_ADDED && d->status != GIT_DELTA_MODIFIED &&
	    d->status != GIT_DELTA_DELETED && d->status != GIT_DELTA_TYPECHANGE)
		return 0;
	if ((e = calloc(1, sizeof(*e))) == NULL || (e->id = strdup(id)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	e->kind = kind;
	e->store = "git";
	if (d->status == GIT_DELTA_DELETED) {
		e->type = CO_EVENT_DELETE;
	} else {
		e->type = CO_EVENT_PUT;
		if ((error = co_git__parse_blob(&e->record, w->gs, w->repo,
						&d->new_file.id, path, head, kind, id)) <
		    0)
			goto done;
	}
	if ((error = gs_watch_push(w, e)) < 0)
		goto done;
	e = NULL;
done:
	co_event_free(e);
	return error;
}

/*
 * One poll: if the head tree moved, queue an event per changed record file.
 * A malformed file is reported (CO_EINVAL) after the other events of the
 * same poll are queued, and the watch moves past it.
 */
static int gs_watch_poll(gs_watch *w)
{
	git_diff_options dopts;
	git_commit *commit = NULL;
	git_tree *tree = NULL, *old = NULL;
	git_diff *diff = NULL;
	git_oid head, tree_id;
	char bad[1024] = "";
	int exists, error;
	size_t i, n;

	git_diff_options_init(&dopts, GIT_DIFF_OPTIONS_VERSION);
	if ((error = co_git__sync(w->gs, w->repo)) < 0 ||
	    (error = co_git__head_tree(&commit, &tree, &head, &exists, w->gs, w->repo)) <
		0)
		goto done;
	if (tree)
		git_oid_cpy(&tree_id, git_tree_id(tree));
	if (tree ? (w->have_tree && git_oid_equal(&tree_id, &w->tree)) : !w->have_tree)
		goto done;
	if (w->have_tree && git_tree_lookup(&old, w->repo, &w->tree) < 0) {
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: read tree", w->gs->repo);
		goto done;
	}
	if (git_diff_tree_to_tree(&diff, w->repo, old, tree, &dopts) < 0) {
		error = co_git__fail(CO_EUNAVAIL, "git repo %s: diff trees", w->gs->repo);
		goto done;
	}
	n = git_diff_num_deltas(diff);
	for (i = 0; i < n; i++) {
		error = gs_watch_delta(w, git_diff_get_delta(diff, i), &head);
		if (error == CO_EINVAL && !bad[0]) {
			snprintf(bad, sizeof(bad), "%s", co_error_last());
		} else if (error < 0 && error != CO_EINVAL) {
			goto done; /* state not advanced: the next poll redoes it */
		}
	}
	error = 0;
	w->have_tree = tree != NULL;
	if (tree)
		git_oid_cpy(&w->tree, &tree_id);
	if (bad[0])
		error = co_error_set(CO_EINVAL, "%s", bad);
done:
	git_diff_free(diff);
	git_tree_free(old);
	git_tree_free(tree);
	git_commit_free(commit);
	return error;
}

void co_git__watch_close(void *impl)
{
	gs_watch *w = impl;

	if (!w)
		return;
	while (w->qn > 0) {
		co_event_free(w->q[w->qhead++]);
		w->qn--;
	}
	free(w->q);
	free(w->prefix);
	git_repository_free(w->repo);
	if (w->ino >= 0)
		close(w->ino);
	free(w);
}

/*
 * Polling every poll_interval_ms is what legacy clients do; a watch of
 * cutover's own need not wait that long.  It polls at once when this
 * store committed (its counter moved: the router's own writes) or when the
 * branch's ref file or packed-refs changed (inotify on a local repo: any
 * process's commits, a legacy client's `git push`).  Where inotify is
 * missing the interval still applies to other processes' commits.
 */
static int gs_watch_refs(co_git_store *gs)
{
	const uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE;
	char *refdir = co_git__printf("%s/%s", gs->path, gs->refname);
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd >= 0 && refdir && strrchr(refdir, '/')) {
		*strrchr(refdir, '/') = '\0';
		/* the ref's directory (refs/heads) and the repo's (packed-refs) */
		if (inotify_add_watch(fd, refdir, mask) < 0 ||
		    inotify_add_watch(fd, gs->path, mask) < 0) {
			close(fd);
			fd = -1;
		}
	} else if (fd >= 0) {
		close(fd);
		fd = -1;
	}
	free(refdir);
	return fd;
}

/* Whether something may have moved the branch since the last poll. */
static int gs_watch_woken(gs_watch *w)
{
	unsigned long long c = atomic_load(&w->gs->commits);
	int woken = c != w->seen_commits;
	char buf[4096];

	w->seen_commits = c;
	if (w->ino >= 0)
		while (read(w->ino, buf, sizeof(buf)) > 0)
			woken = 1;
	return woken;
}

int co_git__watch_open(void **out, void *impl, const char *prefix)
{
	co_git_store *gs = impl;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	gs_watch *w = NULL;
	git_oid head;
	int exists, error;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	w->ino = -1;
	if ((w->prefix = strdup(prefix ? prefix : "")) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	w->gs = gs;
	/* Its own handle: a watch is used by one thread, never with the pool. */
	if ((error = co_git__repo_open(&w->repo, gs)) < 0 ||
	    (error = co_git__sync(gs, w->repo)) < 0 ||
	    (error = co_git__head_tree(&commit, &tree, &head, &exists, gs, w->repo)) < 0)
		goto done;
	if (tree) {
		git_oid_cpy(&w->tree, git_tree_id(tree));
		w->have_tree = 1;
	}
	w->next_poll_ms = co_git__mono_ms() + gs->poll_interval_ms;
	w->seen_commits = atomic_load(&gs->commits);
	w->ino = gs->url ? -1 : gs_watch_refs(gs);
	*out = w;
	w = NULL;
done:
	git_tree_free(tree);
	git_commit_free(commit);
	co_git__watch_close(w);
	return error;
}

int co_git__watch_next(co_event **out, void *impl, int timeout_ms)
{
	gs_watch *w = impl;
	int64_t now = co_git__mono_ms(),
		deadline = now + (timeout_ms < 0 ? 0 : timeout_ms);
	int error;

	for (;;) {
		if (w->qn > 0) {
			*out = w->q[w->qhead++];
			w->qn--;
			if (w->qn == 0)
				w->qhead = 0;
			return 0;
		}
		now = co_git__mono_ms();
		if (gs_watch_woken(w))
			w->next_poll_ms = now;
		if (now >= w->next_poll_ms) {
			w->next_poll_ms = now + w->gs->poll_interval_ms;
			if ((error = gs_watch_poll(w)) < 0)
				return error;
			continue;
		}
		if (timeout_ms >= 0 && now >= deadline) {
			*out = NULL;
			return 0;
		}
		{
			int64_t wake = w->next_poll_ms, nap;

			if (timeout_ms >= 0 && deadline < wake)
				wake = deadline;
			nap = wake - now;
			if (nap > GS_SLICE_MS)
				nap = GS_SLICE_MS;
			if (w->ino >= 0) {
				struct pollfd pfd = {w->ino, POLLIN, 0};

				poll(&pfd, 1, (int)nap); /* a ref change ends it early */
			} else {
				co_git__sleep_us((long)nap * 1000);
			}
		}
	}
}
