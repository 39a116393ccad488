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
 * Not here: deciding anything about records (store_cas.c), or any cleanup of
 * the repository (objects of lost races stay dangling until `git gc`).
 *
 * The other parts of the store: git_read.c, git_write.c and git_watch.c
 * (git_private.h).
 */
#include "git_store.h"

#include "git_private.h"
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors, time, small helpers ---- */

/* Set `code` with a message and libgit2's last error text, copied at once. */
__attribute__((format(printf, 2, 3))) int co_git__fail(int code, const char *fmt, ...)
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

int64_t co_git__mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void co_git__sleep_us(long us)
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
void co_git__backoff(int attempt)
{
	long cap = 100L * (attempt < 20 ? attempt + 1 : 20); /* up to 2 ms */

	co_git__sleep_us((long)(gs_rand() % (unsigned)cap) + 10);
}

static char *gs_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *co_git__printf(const char *fmt, ...)
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
int co_git__path(char *buf, size_t len, co_kind kind, const char *id)
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
	/* every network call of every store gets a bound (git_stream.c) */
	if (co_git__stream_register() < 0)
		gs_init_error = 1;
}

/* ---- the repository pool ---- */

int co_git__repo_open(git_repository **out, co_git_store *gs)
{
	if (git_repository_open_bare(out, gs->path) < 0)
		return co_git__fail(CO_EUNAVAIL, "git repo %s: cannot open", gs->repo);
	return 0;
}

int co_git__repo_take(git_repository **out, co_git_store *gs)
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
	return co_git__repo_open(out, gs);
}

void co_git__repo_give(co_git_store *gs, git_repository *repo)
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

size_t co_git_cached_bytes(void)
{
	ssize_t current = 0, allowed = 0;

	if (git_libgit2_opts(GIT_OPT_GET_CACHED_MEMORY, &current, &allowed) < 0 ||
	    current < 0)
		return 0;
	return (size_t)current;
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
		return co_git__fail(CO_EUNAVAIL, "git %s: remote", gs->url);
	return 0;
}

/* Bounds for one fetch or push on this thread (git_stream.c). */
static void gs_net_begin(co_git_store *gs)
{
	co_git__net_begin(gs->remote_timeout_ms,
			  gs->remote_timeout_ms * CO_GIT_REMOTE_DEADLINE_FACTOR);
}

/*
 * CO_EUNAVAIL for a failed fetch or push: when a bound ran out, a message
 * that says which ("git <url>: fetch: no answer in 3.0 s"), so the breaker
 * and the on-call engineer see a hung server for what it is.
 */
static int gs_net_silent(co_git_store *gs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* CO_EUNAVAIL for a server that did not answer (the remote lock held),
 * told to the callers waiting for the lock. */
static int gs_net_silent(co_git_store *gs, const char *fmt, ...)
{
	char msg[sizeof(gs->net_fail_msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&gs->remote_mu);
	memcpy(gs->net_fail_msg, msg, sizeof(msg));
	gs->net_fails++;
	pthread_cond_broadcast(&gs->remote_cv);
	pthread_mutex_unlock(&gs->remote_mu);
	return co_error_set(CO_EUNAVAIL, "%s", msg);
}

/*
 * A lock of our own rather than a mutex held across the network: every
 * waiter wakes when a call fails and sees it, where with a mutex the
 * failed caller's next call could take it again ahead of them, and they
 * would wait out its bound too.
 */
int co_git__remote_lock(co_git_store *gs)
{
	char msg[sizeof(gs->net_fail_msg)];
	unsigned long long seen;

	pthread_mutex_lock(&gs->remote_mu);
	seen = gs->net_fails;
	while (gs->remote_busy && gs->net_fails == seen)
		pthread_cond_wait(&gs->remote_cv, &gs->remote_mu);
	if (gs->net_fails == seen) {
		gs->remote_busy = 1;
		pthread_mutex_unlock(&gs->remote_mu);
		return 0;
	}
	memcpy(msg, gs->net_fail_msg, sizeof(msg));
	pthread_mutex_unlock(&gs->remote_mu);
	return co_error_set(CO_EUNAVAIL, "%s (while this call waited its turn)", msg);
}

/* A ticket lock: a mutex would let a thread that just wrote take the
 * next turn again ahead of those that waited. */
void co_git__write_turn(co_git_store *gs)
{
	unsigned long long mine;

	pthread_mutex_lock(&gs->turn_mu);
	mine = gs->turn_next++;
	while (gs->turn_now != mine)
		pthread_cond_wait(&gs->turn_cv, &gs->turn_mu);
	pthread_mutex_unlock(&gs->turn_mu);
}

void co_git__write_done(co_git_store *gs)
{
	pthread_mutex_lock(&gs->turn_mu);
	gs->turn_now++;
	pthread_cond_broadcast(&gs->turn_cv);
	pthread_mutex_unlock(&gs->turn_mu);
}

void co_git__remote_unlock(co_git_store *gs)
{
	pthread_mutex_lock(&gs->remote_mu);
	gs->remote_busy = 0;
	pthread_cond_broadcast(&gs->remote_cv);
	pthread_mutex_unlock(&gs->remote_mu);
}

static int gs_net_fail(co_git_store *gs, const char *what)
{
	double t = gs->remote_timeout_ms / 1000.0;

	switch (co_git__net_ran_out()) {
	case CO_GIT__NET_SILENT:
		return gs_net_silent(gs, "git %s: %s: no answer in %.1f s", gs->url, what,
				     t);
	case CO_GIT__NET_DEADLINE:
		return gs_net_silent(gs, "git %s: %s: not done in %.1f s", gs->url, what,
				     t * CO_GIT_REMOTE_DEADLINE_FACTOR);
	default:
		return co_git__fail(CO_EUNAVAIL, "git %s: %s", gs->url, what);
	}
}

int co_git__fetch_locked(co_git_store *gs, git_repository *repo)
{
	git_fetch_options fo;
	git_remote *remote = NULL;
	char *spec = NULL;
	git_strarray specs;
	int attempt, error = 0;

	if ((spec = co_git__printf("+%s:%s", gs->refname, gs->readref)) == NULL) {
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
	gs_net_begin(gs);
	for (attempt = 0;; attempt++) {
		if (git_remote_fetch(remote, &specs, &fo, NULL) == 0)
			break;
		/* a server that did not answer would not answer a retry either */
		if (attempt == 4 || co_git__net_ran_out()) {
			error = gs_net_fail(gs, "fetch");
			goto done;
		}
		co_git__backoff(attempt * 4);
	}
done:
	co_git__net_end();
	git_remote_free(remote);
	free(spec);
	return error;
}

/* Bring the mirror's copy of the branch up to date (no-op for a path). */
int co_git__sync(co_git_store *gs, git_repository *repo)
{
	int error;

	if (!gs->url)
		return 0;
	if ((error = co_git__remote_lock(gs)) < 0)
		return error;
	error = co_git__fetch_locked(gs, repo);
	co_git__remote_unlock(gs);
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
 * Push `commit` to the branch of the remote (the remote lock held).  The server
 * updates the ref only as a fast-forward from what it holds, which is our
 * compare-and-swap: CO_ERETRY when it (or libgit2's own pre-check) refuses.
 */
int co_git__push_locked(co_git_store *gs, git_repository *repo, const git_oid *commit)
{
	git_push_options po;
	gs_push_status ps = {0, ""};
	git_reference *tmp = NULL;
	git_remote *remote = NULL;
	char *spec = NULL;
	git_strarray specs;
	int rc, error = 0;

	if ((spec = co_git__printf("%s:%s", gs->pushref, gs->refname)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	if (git_reference_create(&tmp, repo, gs->pushref, commit, 1, NULL) < 0) {
		error = co_git__fail(CO_EUNAVAIL, "git mirror %s: write %s", gs->path,
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
	gs_net_begin(gs);
	rc = git_remote_push(remote, &specs, &po);
	if (rc < 0 && co_git__net_ran_out()) {
		/* The server may or may not have taken the update before it
		 * stopped answering: not acknowledged either way, and the next
		 * fetch shows which. */
		error = gs_net_fail(gs, "push");
		goto done;
	}
	if (rc == GIT_ENONFASTFORWARD || (rc == 0 && ps.rejected)) {
		error = co_error_set(CO_ERETRY, "git %s: push rejected: %s", gs->url,
				     ps.rejected ? ps.msg : "non-fast-forward");
		goto done;
	}
	if (rc < 0) {
		error = co_git__fail(CO_EUNAVAIL, "git %s: push", gs->url);
		goto done;
	}
done:
	co_git__net_end();
	if (tmp) {
		git_reference_delete(tmp);
		git_reference_free(tmp);
	}
	git_remote_free(remote);
	free(spec);
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
	if ((error = co_git__repo_open(&repo, gs)) < 0)
		return error;
	if ((error = co_git__sync(gs, repo)) == 0)
		error = co_git__head(&head, &exists, gs, repo);
	git_repository_free(repo);
	return error;
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
	git_repository_free(gs->write_repo);
	co_git__index_drop(gs);
	pthread_mutex_destroy(&gs->ix_mu);
	pthread_mutex_destroy(&gs->pool_mu);
	pthread_mutex_destroy(&gs->remote_mu);
	pthread_cond_destroy(&gs->remote_cv);
	pthread_mutex_destroy(&gs->turn_mu);
	pthread_cond_destroy(&gs->turn_cv);
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
    .get = co_git__get,
    .cas = co_git__cas,
    .cas_many = co_git__cas_many,
    .list = co_git__list,
    .scan = co_git__scan,
    .read_blob = co_git__read_blob,
    .ping = gs_ping,
    .watch_open = co_git__watch_open,
    .watch_next = co_git__watch_next,
    .watch_close = co_git__watch_close,
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
	gs->path = co_git__printf("%s/cutover-mirror-%016llx.git", dir,
				  (unsigned long long)gs_hash(gs->url));
	if (!gs->path)
		return co_error_set(CO_ENOMEM, "out of memory");
	if (git_repository_open_bare(&repo, gs->path) < 0 &&
	    git_repository_init(&repo, gs->path, 1) < 0)
		return co_git__fail(CO_EIO, "git mirror %s of %s", gs->path, gs->url);
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
		return co_git__fail(CO_EUNAVAIL, "git store: libgit2 init");
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
	pthread_cond_init(&gs->remote_cv, NULL);
	pthread_mutex_init(&gs->turn_mu, NULL);
	pthread_cond_init(&gs->turn_cv, NULL);
	pthread_mutex_init(&gs->ix_mu, NULL);
	inited = 0; /* gs_free drops the reference from here on */
	gs->poll_interval_ms =
	    opts->poll_interval_ms > 0 ? opts->poll_interval_ms : 30000;
	gs->max_retries = opts->max_retries > 0 ? opts->max_retries : 200;
	gs->remote_timeout_ms = opts->remote_timeout_ms > 0 ? opts->remote_timeout_ms
							    : CO_GIT_REMOTE_TIMEOUT_MS;
	gs->repo = gs_strdup(opts->repo);
	gs->branch = gs_strdup(branch);
	gs->refname = co_git__printf("refs/heads/%s", branch);
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
		gs->readref = co_git__printf("refs/cutover/remote/%s", branch);
		/* per process and store: several may share one mirror */
		gs->pushref = co_git__printf("refs/cutover/push/%ld-%llx", (long)getpid(),
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

		if ((error = co_git__repo_open(&repo, gs)) < 0)
			goto done;
		co_git__repo_give(gs, repo);
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

uint64_t co_git_store_ref_races(const co_store *s)
{
	co_git_store *gs = co_store__impl(s, &gs_backend);

	return gs ? (uint64_t)atomic_load(&gs->ref_races) : 0;
}
