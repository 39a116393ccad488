/*
 * git_store.c - the legacy store: one JSON file per record in a bare git repo.
 *
 * Each record lives in tasks/<id>.json or swarms/<id>.json on one branch, as
 * pretty canonical JSON.  A record's version token is its blob id, so a
 * compare-and-swap is "the file still has the blob I read" plus "the branch
 * still points at the commit I built on": every mutation builds a new tree
 * that changes exactly that one file (treebuilders on the root and on the
 * one subtree), commits it with cutover's author and a Cutover-Op trailer,
 * and publishes it with git_reference_create_matching(), whose current_id
 * check happens under the ref's lock file.  A writer that lost the ref race
 * (GIT_EMODIFIED, or GIT_ELOCKED while another holds the lock) re-reads the
 * head and tries again; only when the file itself changed does the caller
 * see CO_ERETRY.  Writers of different files therefore never fail each
 * other, they only retry.
 *
 * libgit2's local-path push is never used: its fast-forward check runs on
 * the client against the refs listed at connect time and then force-writes
 * the ref (DESIGN appendix).  A remote URL is served through a bare mirror
 * under the cache dir: fetch before every read and before building a
 * commit, then push, and the server rejects a non-fast-forward update, after
 * which we fetch and try again.
 *
 * A git_repository must not be used by two threads at once, so opened
 * repositories sit in a small pool; a call takes one out and puts it back.
 * Opening costs far more than a read (~0.1 ms), hence the pool.
 *
 * Watching is polling: remember the head tree, diff trees at each poll and
 * turn added/modified/deleted *.json files into events.  Several commits
 * between two polls collapse into their net effect, as for the legacy
 * pollers.  A poll comes at once, not after the interval, when this store
 * committed or (inotify, local repos) the branch's ref changed.
 *
 * A reconciliation reads the store by tree alone (CO_SCAN_NO_DATA: blob
 * ids, no blob) and then the few blobs it could not match, by id
 * (co_store_read_blob); co_git_blob_id() names bytes as git would.
 *
 * Not here: deciding anything about records (store.c), or any cleanup of
 * the repository (objects of lost races stay dangling until `git gc`).
 */
#include "git_store.h"

#include "store_backend.h"

#include "../core/error.h"
#include "../core/id.h"

#include <git2.h>
#include <openssl/evp.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GS_POOL_MAX 16
#define GS_SLICE_MS 20
/* libgit2's object caches, all repositories together (gs_init_once). */
#define CO_GIT_CACHE_MAX (2 << 20)

typedef struct co_git_store {
	char *repo; /* as given: path or URL (co_store_describe) */
	char *path; /* the bare repo opened: the repo, or the mirror of a URL */
	char *url;  /* NULL for a local path */
	char *branch;
	char *refname; /* refs/heads/<branch> */
	char *readref; /* ref read for the head: refname, or the mirror's copy */
	char *pushref; /* URL: temp ref naming the commit to push */
	int poll_interval_ms;
	int max_retries;

	pthread_mutex_t pool_mu;
	git_repository *pool[GS_POOL_MAX];
	size_t npool;

	/* URL only: fetch and fetch+commit+push are serialised per process;
	 * other processes are kept honest by the server's ref check. */
	pthread_mutex_t remote_mu;

	atomic_ullong blobs_read; /* co_git_store_blobs_read() */
	atomic_ullong commits;	  /* commits this store made: wakes its watches */
} co_git_store;

typedef struct gs_watch {
	co_git_store *gs;
	git_repository *repo;
	char *prefix;
	git_oid tree;
	int have_tree;
	int64_t next_poll_ms;
	unsigned long long seen_commits; /* gs->commits at the last poll */
	int ino;			 /* inotify on the branch ref, or -1 */
	co_event **q;
	size_t qhead, qn, qcap;
} gs_watch;

/* ---- errors, time, small helpers ---- */

/* Set `code` with a message and libgit2's last error text, copied at once. */
__attribute__((format(printf, 2, 3))) static int gs_fail(int code, const char *fmt, ...)
{
	const git_error *ge = git_error_last();
	char what[512];
	char why[512];
	va_list ap;

	snprintf(why, sizeof(why), "%s",
		 ge && ge->message ? ge->message : "unknown error");
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return co_error_set(code, "%s: %s", what, why);
}

static int64_t gs_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void gs_sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Cheap per-thread randomness for backoff jitter; not for anything else. */
static unsigned gs_rand(void)
{
	static _Thread_local uint64_t s;

	if (s == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&ts ^
		    (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
	}
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return (unsigned)(s >> 16);
}

/* Lost a ref race: wait a little, more as the races pile up. */
static void gs_backoff(int attempt)
{
	long cap = 100L * (attempt < 20 ? attempt + 1 : 20); /* up to 2 ms */

	gs_sleep_us((long)(gs_rand() % (unsigned)cap) + 10);
}

static char *gs_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static char *gs_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *gs_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* "tasks/<id>.json" into buf; CO_EINVAL for a bad ID. */
static int gs_path(char *buf, size_t len, co_kind kind, const char *id)
{
	int error;

	if ((error = co_id_validate(id)) < 0)
		return error;
	snprintf(buf, len, "%s/%s.json", co_kind_dir(kind), id);
	return 0;
}

/* True for URLs ("scheme://...") and scp-like "user@host:path". */
static int gs_is_url(const char *repo)
{
	const char *colon = strchr(repo, ':');
	const char *slash = strchr(repo, '/');

	if (strstr(repo, "://"))
		return 1;
	return colon && strchr(repo, '@') && (!slash || colon < slash);
}

/* ---- libgit2 lifetime and options ---- */

static pthread_once_t gs_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t gs_opts_mu = PTHREAD_MUTEX_INITIALIZER;
static int gs_init_error;

static void gs_init_once(void)
{
	/*
	 * The first initialisation stays for the life of the process, so that
	 * the fsync setting (a libgit2 global) and libgit2's thread-local state
	 * never flap as stores come and go; each store adds its own reference
	 * on top (git_libgit2_init is counted) and drops it when freed.
	 */
	if (git_libgit2_init() < 0)
		gs_init_error = 1;
	/*
	 * libgit2 caches trees only up to 4 KiB by default, so every read of
	 * a large store parsed its tasks/ tree again (4 MB, ~40 ms at 100k
	 * tasks).  Cache trees of any size (256 MiB each at most), but keep
	 * the cache's total small (CO_GIT_CACHE_MAX, not libgit2's 256 MiB):
	 * every write makes a new tasks/ tree, cached twice (raw and parsed)
	 * and never read again once the branch moves on, so under a steady
	 * write load serve's RSS climbed ~3 MB/s towards several hundred MB
	 * (bench/bench_soak.c).  libgit2 evicts only when it stores an object
	 * while over the total, so a large head tree read again and again
	 * (no new objects in between) stays cached however small the total.
	 */
	git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_TREE,
			 (size_t)256 << 20);
	git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)CO_GIT_CACHE_MAX);
}

/* ---- the repository pool ---- */

static int gs_repo_open(git_repository **out, co_git_store *gs)
{
	if (git_repository_open_bare(out, gs->path) < 0)
		return gs_fail(CO_EUNAVAIL, "git repo %s: cannot open", gs->repo);
	return 0;
}

static int gs_repo_take(git_repository **out, co_git_store *gs)
{
	git_repository *repo = NULL;

	pthread_mutex_lock(&gs->pool_mu);
	if (gs->npool > 0)
		repo = gs->pool[--gs->npool];
	pthread_mutex_unlock(&gs->pool_mu);
	if (repo) {
		*out = repo;
		return 0;
	}
	return gs_repo_open(out, gs);
}

static void gs_repo_give(co_git_store *gs, git_repository *repo)
{
	if (!repo)
		return;
	pthread_mutex_lock(&gs->pool_mu);
	if (gs->npool < GS_POOL_MAX) {
		gs->pool[gs->npool++] = repo;
		repo = NULL;
	}
	pthread_mutex_unlock(&gs->pool_mu);
	git_repository_free(repo);
}

/* ---- remotes (URL repos): fetch into the mirror, push from it ---- */

/*
 * An anonymous remote for the URL.  insteadOf rewriting is skipped: in
 * libgit2 1.5 it leaks the pcre2 match data of its config glob on every
 * call (seen with LeakSanitizer), and the mirror's config has none.
 */
static int gs_remote(git_remote **out, co_git_store *gs, git_repository *repo)
{
	git_remote_create_options ro;

	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = repo;
	ro.flags =
	    GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if (git_remote_create_with_opts(out, gs->url, &ro) < 0)
		return gs_fail(CO_EUNAVAIL, "git %s: remote", gs->url);
	return 0;
}

static int gs_fetch_locked(co_git_store *gs, git_repository *repo)
{
	git_fetch_options fo;
	git_remote *remote = NULL;
	char *spec = NULL;
	git_strarray specs;
	int attempt, error = 0;

	if ((spec = gs_printf("+%s:%s", gs->refname, gs->readref)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	/* the _INIT macros trip -Wmissing-field-initializers */
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	specs.strings = &spec;
	specs.count = 1;
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	if ((error = gs_remote(&remote, gs, repo)) < 0)
		goto done;
	/*
	 * Another process sharing the mirror may hold the lock on the ref we
	 * update; a few quick retries get past it.
	 */
	for (attempt = 0;; attempt++) {
		if (git_remote_fetch(remote, &specs, &fo, NULL) == 0)
			break;
		if (attempt == 4) {
			error = gs_fail(CO_EUNAVAIL, "git %s: fetch", gs->url);
			goto done;
		}
		gs_backoff(attempt * 4);
	}
done:
	git_remote_free(remote);
	free(spec);
	return error;
}

/* Bring the mirror's copy of the branch up to date (no-op for a path). */
static int gs_sync(co_git_store *gs, git_repository *repo)
{
	int error;

	if (!gs->url)
		return 0;
	pthread_mutex_lock(&gs->remote_mu);
	error = gs_fetch_locked(gs, repo);
	pthread_mutex_unlock(&gs->remote_mu);
	return error;
}

typedef struct gs_push_status {
	int rejected;
	char msg[256];
} gs_push_status;

static int gs_push_update_cb(const char *refname, const char *status, void *data)
{
	gs_push_status *ps = data;

	if (status) {
		ps->rejected = 1;
		snprintf(ps->msg, sizeof(ps->msg), "%s: %s", refname, status);
	}
	return 0;
}

/*
 * Push `commit` to the branch of the remote (remote_mu held).  The server
 * updates the ref only as a fast-forward from what it holds, which is our
 * compare-and-swap: CO_ERETRY when it (or libgit2's own pre-check) refuses.
 */
static int gs_push_locked(co_git_store *gs, git_repository *repo, const git_oid *commit)
{
	git_push_options po;
	gs_push_status ps = {0, ""};
	git_reference *tmp = NULL;
	git_remote *remote = NULL;
	char *spec = NULL;
	git_strarray specs;
	int rc, error = 0;

	if ((spec = gs_printf("%s:%s", gs->pushref, gs->refname)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	if (git_reference_create(&tmp, repo, gs->pushref, commit, 1, NULL) < 0) {
		error = gs_fail(CO_EUNAVAIL, "git mirror %s: write %s", gs->path,
				gs->pushref);
		goto done;
	}
	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	specs.strings = &spec;
	specs.count = 1;
	po.callbacks.push_update_reference = gs_push_update_cb;
	po.callbacks.payload = &ps;
	if ((error = gs_remote(&remote, gs, repo)) < 0)
		goto done;
	rc = git_remote_push(remote, &specs, &po);
	if (rc == GIT_ENONFASTFORWARD || (rc == 0 && ps.rejected)) {
		error = co_error_set(CO_ERETRY, "git %s: push rejected: %s", gs->url,
				     ps.rejected ? ps.msg : "non-fast-forward");
		goto done;
	}
	if (rc < 0) {
		error = gs_fail(CO_EUNAVAIL, "git %s: push", gs->url);
		goto done;
	}
done:
	if (tmp) {
		git_reference_delete(tmp);
		git_reference_free(tmp);
	}
	git_remote_free(remote);
	free(spec);
	return error;
}

/* ---- reading ---- */

/* Head commit of the branch; *exists = 0 (and a zero id) when it is unborn. */
static int gs_head(git_oid *out, int *exists, co_git_store *gs, git_repository *repo)
{
	int rc = git_reference_name_to_id(out, repo, gs->readref);

	if (rc == GIT_ENOTFOUND) {
		memset(out, 0, sizeof(*out));
		*exists = 0;
		return 0;
	}
	if (rc < 0)
		return gs_fail(CO_EUNAVAIL, "git repo %s: read %s", gs->repo,
			       gs->refname);
	*exists = 1;
	return 0;
}

/* Head commit and its tree (both NULL on an unborn branch). */
static int gs_head_tree(git_commit **commit, git_tree **tree, git_oid *head, int *exists,
			co_git_store *gs, git_repository *repo)
{
	char hex[GIT_OID_HEXSZ + 1];
	int error;

	*commit = NULL;
	*tree = NULL;
	if ((error = gs_head(head, exists, gs, repo)) < 0 || !*exists)
		return error;
	if (git_commit_lookup(commit, repo, head) < 0 ||
	    git_commit_tree(tree, *commit) < 0) {
		git_oid_tostr(hex, sizeof(hex), head);
		error =
		    gs_fail(CO_EUNAVAIL, "git repo %s: read commit %s", gs->repo, hex);
		git_commit_free(*commit);
		*commit = NULL;
		return error;
	}
	return 0;
}

/* Parse a blob as the record of kind/id (id NULL: any id); CO_EINVAL names
 * the path and the commit. */
static int gs_parse_blob(co_record **out, co_git_store *gs, git_repository *repo,
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
		error = gs_fail(CO_EUNAVAIL, "git repo %s: read %s at commit %s",
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
static int gs_lookup_file(git_oid *blob, int *found, co_git_store *gs, git_tree *tree,
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
		return gs_fail(CO_EUNAVAIL, "git repo %s: look up %s", gs->repo, path);
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

static int gs_get(co_record **out, co_version *ver, void *impl, co_kind kind,
		  const char *id)
{
	co_git_store *gs = impl;
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	co_record *r = NULL;
	git_oid head, blob;
	char path[CO_ID_MAX + 16];
	int exists, found, error;

	ver->v[0] = '\0';
	if ((error = gs_path(path, sizeof(path), kind, id)) < 0)
		return error;
	if ((error = gs_repo_take(&repo, gs)) < 0)
		return error;
	if ((error = gs_sync(gs, repo)) < 0 ||
	    (error = gs_head_tree(&commit, &tree, &head, &exists, gs, repo)) < 0 ||
	    (error = gs_lookup_file(&blob, &found, gs, tree, path)) < 0)
		goto done;
	if (!found) {
		error = co_error_set(CO_ENOTFOUND, "%s %s not found in %s",
				     co_kind_name(kind), id, gs->repo);
		goto done;
	}
	if ((error = gs_parse_blob(&r, gs, repo, &blob, path, &head, kind, id)) < 0)
		goto done;
	git_oid_tostr(ver->v, sizeof(ver->v), &blob);
	*out = r;
	r = NULL;
done:
	co_record_free(r);
	git_tree_free(tree);
	git_commit_free(commit);
	gs_repo_give(gs, repo);
	return error;
}

static int gs_list(co_record_list *out, void *impl, co_kind kind)
{
	co_git_store *gs = impl;
	co_record_list l = {NULL, 0, 0};
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL, *sub = NULL;
	const git_tree_entry *dir;
	const char *dname = co_kind_dir(kind);
	git_oid head;
	int exists, error;
	size_t i, n;

	if ((error = gs_repo_take(&repo, gs)) < 0)
		return error;
	if ((error = gs_sync(gs, repo)) < 0 ||
	    (error = gs_head_tree(&commit, &tree, &head, &exists, gs, repo)) < 0)
		goto done;
	if (!tree || (dir = git_tree_entry_byname(tree, dname)) == NULL ||
	    git_tree_entry_type(dir) != GIT_OBJECT_TREE)
		goto move; /* nothing of this kind (yet) */
	if (git_tree_lookup(&sub, repo, git_tree_entry_id(dir)) < 0) {
		error = gs_fail(CO_EUNAVAIL, "git repo %s: read %s/", gs->repo, dname);
		goto done;
	}
	n = git_tree_entrycount(sub);
	for (i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(sub, i);
		const char *name = git_tree_entry_name(e);
		size_t len = strlen(name);
		char path[512], id[512];
		co_record *r = NULL;

		if (git_tree_entry_type(e) != GIT_OBJECT_BLOB || len <= 5 ||
		    strcmp(name + len - 5, ".json") != 0 || len - 5 >= sizeof(id))
			continue;
		memcpy(id, name, len - 5);
		id[len - 5] = '\0';
		snprintf(path, sizeof(path), "%s/%s", dname, name);
		if ((error = gs_parse_blob(&r, gs, repo, git_tree_entry_id(e), path,
					   &head, kind, id)) < 0)
			goto done;
		if ((error = co_record_list_push(&l, r)) < 0) {
			co_record_free(r);
			goto done;
		}
	}
move:
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
	git_tree_free(sub);
	git_tree_free(tree);
	git_commit_free(commit);
	gs_repo_give(gs, repo);
	return error;
}

/*
 * Pass every <dir>/<id>.json blob of `tree` to fn, raw, in tree order, with
 * its blob id; with CO_SCAN_NO_DATA only the tree is read (the blob ids are
 * in it), which is what makes a reconciliation's git side cheap: reading a
 * blob costs a pack index search and an inflate (~3-5 us), a tree entry
 * nothing.  The other entries of a kind's directory (not a blob, not
 * *.json) are not records and are skipped, as gs_list does.
 */
static int gs_scan_kind(co_git_store *gs, git_repository *repo, git_odb *odb,
			git_tree *tree, co_kind kind, unsigned flags, co_scan_fn fn,
			void *ctx)
{
	const char *dname = co_kind_dir(kind);
	const git_tree_entry *dir;
	git_tree *sub = NULL;
	git_odb_object *obj = NULL;
	size_t i, n;
	int error = 0;

	if (!tree || (dir = git_tree_entry_byname(tree, dname)) == NULL ||
	    git_tree_entry_type(dir) != GIT_OBJECT_TREE)
		return 0; /* nothing of this kind (yet) */
	if (git_tree_lookup(&sub, repo, git_tree_entry_id(dir)) < 0)
		return gs_fail(CO_EUNAVAIL, "git repo %s: read %s/", gs->repo, dname);
	n = git_tree_entrycount(sub);
	for (i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(sub, i);
		const char *name = git_tree_entry_name(e);
		size_t len = strlen(name);
		char id[CO_ID_MAX + 8], ver[GIT_OID_HEXSZ + 1];
		co_scan_item item;

		if (git_tree_entry_type(e) != GIT_OBJECT_BLOB || len <= 5 ||
		    strcmp(name + len - 5, ".json") != 0 || len - 5 >= sizeof(id))
			continue;
		memcpy(id, name, len - 5);
		id[len - 5] = '\0';
		item.raw = NULL;
		item.len = 0;
		if (!(flags & CO_SCAN_NO_DATA)) {
			atomic_fetch_add_explicit(&gs->blobs_read, 1,
						  memory_order_relaxed);
			if (git_odb_read(&obj, odb, git_tree_entry_id(e)) < 0) {
				error = gs_fail(CO_EUNAVAIL, "git repo %s: read %s/%s",
						gs->repo, dname, name);
				break;
			}
			item.raw = git_odb_object_data(obj);
			item.len = git_odb_object_size(obj);
		}
		git_oid_tostr(ver, sizeof(ver), git_tree_entry_id(e));
		item.kind = kind;
		item.id = id;
		item.version = ver;
		item.blob_id = git_tree_entry_id(e)->id;
		error = fn(ctx, &item);
		git_odb_object_free(obj);
		obj = NULL;
		if (error < 0)
			break;
	}
	git_tree_free(sub);
	return error;
}

/* Tasks then swarms, both from the one head commit read at the start. */
static int gs_scan(void *impl, unsigned flags, co_scan_fn fn, void *ctx)
{
	co_git_store *gs = impl;
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_odb *odb = NULL;
	git_oid head;
	int exists, error;

	if ((error = gs_repo_take(&repo, gs)) < 0)
		return error;
	if ((error = gs_sync(gs, repo)) < 0 ||
	    (error = gs_head_tree(&commit, &tree, &head, &exists, gs, repo)) < 0)
		goto done;
	if (git_repository_odb(&odb, repo) < 0) {
		error = gs_fail(CO_EUNAVAIL, "git repo %s: open the object database",
				gs->repo);
		goto done;
	}
	error = gs_scan_kind(gs, repo, odb, tree, CO_KIND_TASK, flags, fn, ctx);
	if (error == 0)
		error = gs_scan_kind(gs, repo, odb, tree, CO_KIND_SWARM, flags, fn, ctx);
done:
	git_odb_free(odb);
	git_tree_free(tree);
	git_commit_free(commit);
	gs_repo_give(gs, repo);
	return error;
}

/*
 * One blob by id, from the object database: no ref, no tree, so it is found
 * whatever the branch holds now (the reconciler reads back the few files
 * whose ids its snapshot could not match).  For a URL the mirror holds
 * every blob a scan of it passed, so no fetch is needed.
 */
static int gs_read_blob(char **out, size_t *len, void *impl, const unsigned char *blob_id)
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
	if ((error = gs_repo_take(&repo, gs)) < 0)
		return error;
	if (git_repository_odb(&odb, repo) < 0) {
		error = gs_fail(CO_EUNAVAIL, "git repo %s: open the object database",
				gs->repo);
		goto done;
	}
	atomic_fetch_add_explicit(&gs->blobs_read, 1, memory_order_relaxed);
	if ((rc = git_odb_read(&obj, odb, &oid)) < 0) {
		error = rc == GIT_ENOTFOUND
			    ? co_error_set(CO_ENOTFOUND, "git repo %s: no object %s",
					   gs->repo, hex)
			    : gs_fail(CO_EUNAVAIL, "git repo %s: read blob %s", gs->repo,
				      hex);
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
	gs_repo_give(gs, repo);
	return error;
}

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
	error = gs_fail(CO_EUNAVAIL, "git repo %s: build tree for %s/%s", gs->repo, dname,
			file);
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
		m = gs_printf("%s\n\n%s: %s\n", w, CO_GIT_TRAILER, w);
	else
		m = gs_printf("%s %s\n\n%s: %s\n", w, path, CO_GIT_TRAILER, w);
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
		error = gs_fail(CO_EUNAVAIL, "git repo %s: commit %s", gs->repo, what);
		goto done;
	}
	if (gs->url) {
		if ((error = gs_push_locked(gs, repo, &commit_id)) == CO_ERETRY)
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
		error =
		    gs_fail(CO_EUNAVAIL, "git repo %s: update %s", gs->repo, gs->refname);
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

	if ((error = gs_lookup_file(cur, found, gs, tree, path)) < 0)
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

	if ((error = gs_head_tree(&commit, &tree, &head, &exists, gs, repo)) < 0 ||
	    (error = gs_check_version(&cur, &found, gs, tree, path, expected)) < 0)
		goto done;
	if (!json && !found)
		goto done; /* deleting what is not there: nothing to commit */
	if (json && git_blob_create_from_buffer(&blob, repo, json, strlen(json)) < 0) {
		error = gs_fail(CO_EUNAVAIL, "git repo %s: write blob for %s", gs->repo,
				path);
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
	git_repository *repo = NULL;
	int n, error;

	if ((error = gs_repo_take(&repo, gs)) < 0)
		return error;
	for (n = 0;; n++) {
		if (n > gs->max_retries) {
			error = co_error_set(
			    CO_EUNAVAIL,
			    "git repo %s: %s: gave up after %d lost ref updates",
			    gs->repo, what, gs->max_retries);
			break;
		}
		if (gs->url) {
			pthread_mutex_lock(&gs->remote_mu);
			error = gs_fetch_locked(gs, repo);
			if (error == 0)
				error = attempt(gs, repo, ctx);
			pthread_mutex_unlock(&gs->remote_mu);
		} else {
			error = attempt(gs, repo, ctx);
		}
		if (error != 1)
			break;
		gs_backoff(n);
	}
	gs_repo_give(gs, repo);
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

static int gs_cas(void *impl, co_kind kind, const char *id, const co_record *r,
		  const co_version *expected, const char *why)
{
	co_git_store *gs = impl;
	char path[CO_ID_MAX + 16], file[CO_ID_MAX + 8];
	char *json = NULL, *msg = NULL;
	int error;

	if ((error = gs_path(path, sizeof(path), kind, id)) < 0)
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

	if ((error = gs_head_tree(&commit, &tree, &head, &exists, gs, repo)) < 0)
		goto done;
	for (i = 0; i < m->n; i++) {
		if ((error = gs_check_version(&cur, &found, gs, tree, m->paths[i],
					      &m->w[i].expected)) < 0)
			goto done;
		if (git_blob_create_from_buffer(&m->upd[nu].id, repo, m->json[i],
						strlen(m->json[i])) < 0) {
			error = gs_fail(CO_EUNAVAIL, "git repo %s: write blob for %s",
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
			error = gs_fail(CO_EUNAVAIL, "git repo %s: empty tree", gs->repo);
			goto done;
		}
	}
	if (git_tree_create_updated(&tree_id, repo, tree ? tree : empty, nu, m->upd) <
	    0) {
		error = gs_fail(CO_EUNAVAIL, "git repo %s: build tree for %zu files",
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

static int gs_cas_many(void *impl, const co_store__write *w, size_t n, const char *why)
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
		error = gs_path(m.paths[i], sizeof(m.paths[i]), w[i].r->kind, w[i].r->id);
		if (error == 0 && (m.json[i] = co_record_to_json(w[i].r, 1)) == NULL)
			error = co_error_set(CO_ENOMEM, "out of memory");
	}
	if (error < 0)
		goto done;
	m.msg =
	    n == 1 ? gs_message(why, m.paths[0], w[0].r->id)
		   : gs_printf("%s %zu records\n\n%s: %s\n", why, n, CO_GIT_TRAILER, why);
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

static int gs_ping(void *impl)
{
	co_git_store *gs = impl;
	git_repository *repo = NULL;
	git_oid head;
	int exists, error;

	/* A fresh handle: ping must notice a repo that went away since the
	 * pool's handles were opened. */
	if ((error = gs_repo_open(&repo, gs)) < 0)
		return error;
	if ((error = gs_sync(gs, repo)) == 0)
		error = gs_head(&head, &exists, gs, repo);
	git_repository_free(repo);
	return error;
}

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
		if ((error = gs_parse_blob(&e->record, w->gs, w->repo, &d->new_file.id,
					   path, head, kind, id)) < 0)
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
	if ((error = gs_sync(w->gs, w->repo)) < 0 ||
	    (error = gs_head_tree(&commit, &tree, &head, &exists, w->gs, w->repo)) < 0)
		goto done;
	if (tree)
		git_oid_cpy(&tree_id, git_tree_id(tree));
	if (tree ? (w->have_tree && git_oid_equal(&tree_id, &w->tree)) : !w->have_tree)
		goto done;
	if (w->have_tree && git_tree_lookup(&old, w->repo, &w->tree) < 0) {
		error = gs_fail(CO_EUNAVAIL, "git repo %s: read tree", w->gs->repo);
		goto done;
	}
	if (git_diff_tree_to_tree(&diff, w->repo, old, tree, &dopts) < 0) {
		error = gs_fail(CO_EUNAVAIL, "git repo %s: diff trees", w->gs->repo);
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

static void gs_watch_close(void *impl)
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
	char *refdir = gs_printf("%s/%s", gs->path, gs->refname);
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

static int gs_watch_open(void **out, void *impl, const char *prefix)
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
	if ((error = gs_repo_open(&w->repo, gs)) < 0 ||
	    (error = gs_sync(gs, w->repo)) < 0 ||
	    (error = gs_head_tree(&commit, &tree, &head, &exists, gs, w->repo)) < 0)
		goto done;
	if (tree) {
		git_oid_cpy(&w->tree, git_tree_id(tree));
		w->have_tree = 1;
	}
	w->next_poll_ms = gs_mono_ms() + gs->poll_interval_ms;
	w->seen_commits = atomic_load(&gs->commits);
	w->ino = gs->url ? -1 : gs_watch_refs(gs);
	*out = w;
	w = NULL;
done:
	git_tree_free(tree);
	git_commit_free(commit);
	gs_watch_close(w);
	return error;
}

static int gs_watch_next(co_event **out, void *impl, int timeout_ms)
{
	gs_watch *w = impl;
	int64_t now = gs_mono_ms(), deadline = now + (timeout_ms < 0 ? 0 : timeout_ms);
	int error;

	for (;;) {
		if (w->qn > 0) {
			*out = w->q[w->qhead++];
			w->qn--;
			if (w->qn == 0)
				w->qhead = 0;
			return 0;
		}
		now = gs_mono_ms();
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
				gs_sleep_us((long)nap * 1000);
			}
		}
	}
}

/* ---- lifetime ---- */

static const char *gs_describe(void *impl)
{
	return ((co_git_store *)impl)->repo;
}

static void gs_free(void *impl)
{
	co_git_store *gs = impl;
	size_t i;

	if (!gs)
		return;
	for (i = 0; i < gs->npool; i++)
		git_repository_free(gs->pool[i]);
	pthread_mutex_destroy(&gs->pool_mu);
	pthread_mutex_destroy(&gs->remote_mu);
	free(gs->repo);
	free(gs->path);
	free(gs->url);
	free(gs->branch);
	free(gs->refname);
	free(gs->readref);
	free(gs->pushref);
	free(gs);
	git_libgit2_shutdown();
}

static const co_store_backend gs_backend = {
    .name = "git",
    .get = gs_get,
    .cas = gs_cas,
    .cas_many = gs_cas_many,
    .list = gs_list,
    .scan = gs_scan,
    .read_blob = gs_read_blob,
    .ping = gs_ping,
    .watch_open = gs_watch_open,
    .watch_next = gs_watch_next,
    .watch_close = gs_watch_close,
    .describe = gs_describe,
    .free = gs_free,
};

/* FNV-1a of the URL, to name its mirror. */
static uint64_t gs_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* Create (or reuse) the bare mirror of gs->url; sets gs->path. */
static int gs_mirror_init(co_git_store *gs, const char *cache_dir)
{
	git_repository *repo = NULL;
	const char *dir = cache_dir;

	if (!dir || !*dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return co_error_set(CO_EIO, "git cache dir %s: %s", dir, strerror(errno));
	gs->path = gs_printf("%s/cutover-mirror-%016llx.git", dir,
			     (unsigned long long)gs_hash(gs->url));
	if (!gs->path)
		return co_error_set(CO_ENOMEM, "out of memory");
	if (git_repository_open_bare(&repo, gs->path) < 0 &&
	    git_repository_init(&repo, gs->path, 1) < 0)
		return gs_fail(CO_EIO, "git mirror %s of %s", gs->path, gs->url);
	git_repository_free(repo);
	return 0;
}

int co_git_store_open(co_store **out, const co_git_opts *opts)
{
	co_git_store *gs = NULL;
	const char *branch;
	int error, valid = 0, inited = 0;

	if (!opts || !opts->repo || !*opts->repo)
		return co_error_set(CO_EINVAL, "git store: no repository given");
	branch = opts->branch && *opts->branch ? opts->branch : "main";
	pthread_once(&gs_once, gs_init_once);
	if (gs_init_error)
		return co_error_set(CO_EUNAVAIL,
				    "git store: libgit2 failed to initialise");
	if (git_libgit2_init() < 0)
		return gs_fail(CO_EUNAVAIL, "git store: libgit2 init");
	inited = 1;
	if (opts->fsync) {
		/* Process-global; once on it stays on, which is the safe side. */
		pthread_mutex_lock(&gs_opts_mu);
		git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
		pthread_mutex_unlock(&gs_opts_mu);
	}
	if ((gs = calloc(1, sizeof(*gs))) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	pthread_mutex_init(&gs->pool_mu, NULL);
	pthread_mutex_init(&gs->remote_mu, NULL);
	inited = 0; /* gs_free drops the reference from here on */
	gs->poll_interval_ms =
	    opts->poll_interval_ms > 0 ? opts->poll_interval_ms : 30000;
	gs->max_retries = opts->max_retries > 0 ? opts->max_retries : 200;
	gs->repo = gs_strdup(opts->repo);
	gs->branch = gs_strdup(branch);
	gs->refname = gs_printf("refs/heads/%s", branch);
	if (!gs->repo || !gs->branch || !gs->refname) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	if (git_reference_name_is_valid(&valid, gs->refname) < 0 || !valid) {
		error =
		    co_error_set(CO_EINVAL, "git store: bad branch name \"%s\"", branch);
		goto done;
	}
	if (gs_is_url(opts->repo)) {
		gs->url = gs_strdup(opts->repo);
		gs->readref = gs_printf("refs/cutover/remote/%s", branch);
		/* per process and store: several may share one mirror */
		gs->pushref = gs_printf("refs/cutover/push/%ld-%llx", (long)getpid(),
					(unsigned long long)(uintptr_t)gs);
		if (!gs->url || !gs->readref || !gs->pushref) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		if ((error = gs_mirror_init(gs, opts->cache_dir)) < 0)
			goto done;
	} else {
		gs->path = gs_strdup(opts->repo);
		gs->readref = gs_strdup(gs->refname);
		if (!gs->path || !gs->readref) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
	}
	{
		git_repository *repo = NULL;

		if ((error = gs_repo_open(&repo, gs)) < 0)
			goto done;
		gs_repo_give(gs, repo);
	}
	/* co_store__new takes gs, even when it fails */
	error = co_store__new(out, &gs_backend, gs);
	gs = NULL;
done:
	gs_free(gs);
	if (inited)
		git_libgit2_shutdown();
	return error;
}

/*
 * SHA-1 from libcrypto rather than git_odb_hash(): the reconciler hashes
 * every etcd value of a store, and libgit2 1.5 as Debian builds it hashes
 * in software (0.6 us for a 250-byte record) where libcrypto uses the
 * CPU's SHA instructions (0.2 us).  The ids are the same: the test suite
 * checks them against git_odb_hash() and `git hash-object`.
 */
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha1_md; /* fetched once: EVP_sha1() looks it up per use */

static void sha1_init_once(void)
{
	sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
}

int co_git_blob_id(unsigned char *out, const void *data, size_t len)
{
	char head[32];
	int n = snprintf(head, sizeof(head), "blob %zu", len);
	EVP_MD_CTX *ctx;
	unsigned int mdlen = 0;
	int ok;

	pthread_once(&sha1_once, sha1_init_once);
	if (sha1_md == NULL)
		return co_error_set(CO_EUNAVAIL, "git: libcrypto has no SHA-1");
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory (SHA-1 context)");
	/* The header's NUL is part of what git hashes. */
	ok = EVP_DigestInit_ex(ctx, sha1_md, NULL) &&
	     EVP_DigestUpdate(ctx, head, (size_t)n + 1) &&
	     EVP_DigestUpdate(ctx, data, len) && EVP_DigestFinal_ex(ctx, out, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || mdlen != CO_BLOB_ID_LEN)
		return co_error_set(CO_EUNAVAIL,
				    "git: SHA-1 of a blob of %zu bytes failed", len);
	return 0;
}

uint64_t co_git_store_blobs_read(const co_store *s)
{
	co_git_store *gs = co_store__impl(s, &gs_backend);

	return gs ? (uint64_t)atomic_load(&gs->blobs_read) : 0;
}
