/*
 * watcher.c - keep a process's flags equal to the flags file, within
 * 100 ms, without a restart.
 *
 * A background thread waits on an inotify watch of the file's directory
 * (co_flags_save replaces the file by rename, which a watch on the file
 * itself would lose with the old inode) and, every 50 ms, stat()s the file
 * as a fallback: inotify may be unavailable, its queue may overflow, or the
 * directory may live on a file system that does not report changes.  The
 * version of the file last read is identified by (device, inode, size,
 * mtime) so that the poll does not reload the same file again and again.
 *
 * Partly written files: a rename brings a complete file, so a new inode is
 * read at once; a file rewritten in place (same inode, an editor's write) is
 * read on IN_CLOSE_WRITE, or by the poll once two polls in a row see the
 * same size and mtime.  An empty file on reload is refused as well: an
 * empty file means "defaults", and briefly routing everything to git
 * because an editor truncated the file first would be a real change of
 * routing.
 *
 * The current flags sit behind one mutex; readers copy them (a few hundred
 * bytes) or route under it.  A condition variable tells waiters about new
 * generations and failed reloads, so tests await events instead of
 * sleeping.  A reload that fails keeps the last good flags.
 *
 * Not here: what a change means for the router (draining the outbox before
 * obeying the kill switch is the router's, per ID) and auditing it.
 */
#include "flags/watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "flags/flags_private.h"

#define POLL_MS 50

/* Which version of the file: enough to notice a rename or a rewrite. */
typedef struct file_id {
	int exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
} file_id;

struct co_flags_watcher {
	char *path;
	char *base; /* the file's name inside its directory */

	pthread_mutex_t lock; /* guards everything below up to `reload_lock` */
	pthread_cond_t cond;
	co_flags flags;
	uint64_t generation;
	uint64_t errors;
	int last_error;
	char last_msg[1024];
	co_flags_watcher_cb cb;
	void *cb_ctx;

	/* Serialises reloads (thread and co_flags_watcher_reload). */
	pthread_mutex_t reload_lock;
	file_id seen;	 /* the version last read (good or bad) */
	int seen_failed; /* that version did not load */
	file_id pending; /* an in-place rewrite seen once by the poll */

	int inotify_fd; /* -1 without inotify */
	int wake[2];	/* close() writes to wake[1] */
	pthread_t thread;
	int have_thread;
};

static int same_id(const file_id *a, const file_id *b)
{
	if (a->exists != b->exists)
		return 0;
	if (!a->exists)
		return 1;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void id_of(file_id *id, const struct stat *st)
{
	memset(id, 0, sizeof(*id));
	id->exists = 1;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
}

static int stat_id(file_id *id, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		memset(id, 0, sizeof(*id));
		return errno == ENOENT ? 0 : -1;
	}
	id_of(id, &st);
	return 0;
}

/* Record a failed reload (lock not held). */
static void record_error(co_flags_watcher *w, int code, const char *msg)
{
	pthread_mutex_lock(&w->lock);
	w->errors++;
	w->last_error = code;
	snprintf(w->last_msg, sizeof(w->last_msg), "%s", msg);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/*
 * Read the file and, if it is good, make it current.  Called with
 * reload_lock held.  `initial`: a missing file means the defaults.
 */
static int reload_locked(co_flags_watcher *w, int initial)
{
	co_flags nf, old;
	file_id prev = w->seen;
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	co_flags_watcher_cb cb;
	void *ctx;
	int error;

	error = co_flags__read(&text, &len, &st, w->path);
	if (error == CO_ENOTFOUND) {
		if (initial) {
			co_error_clear();
			co_flags_init(&nf);
			memset(&w->seen, 0, sizeof(w->seen));
			goto good;
		}
		if (!w->seen.exists)
			return 0; /* still missing, already reported */
		memset(&w->seen, 0, sizeof(w->seen));
		error = co_error_set(CO_ENOTFOUND,
				     "%s: removed; keeping the last good flags", w->path);
		goto bad;
	}
	if (error < 0) {
		/* Unreadable: report once per version, retry on the next change. */
		stat_id(&w->seen, w->path);
		goto bad;
	}
	id_of(&w->seen, &st);
	if (len == 0 && !initial) {
		error = co_error_set(
		    CO_EINVAL, "%s: empty file; keeping the last good flags", w->path);
		goto bad;
	}
	if ((error = co_flags_parse(&nf, text, len, w->path)) < 0)
		goto bad;
good:
	free(text);
	w->seen_failed = 0;
	pthread_mutex_lock(&w->lock);
	/*
	 * inotify and the poll can both notice one rename: the second read
	 * of the same version with the same content is not a new generation.
	 */
	if (!initial && same_id(&prev, &w->seen) && w->last_error == 0 &&
	    co_flags_equal(&nf, &w->flags)) {
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	old = w->flags;
	w->flags = nf;
	w->generation++;
	w->last_error = 0;
	w->last_msg[0] = '\0';
	cb = w->cb;
	ctx = w->cb_ctx;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (cb && !initial)
		cb(ctx, &old, &nf);
	return 0;
bad:
	free(text);
	/* Count a bad version once, however many times it is noticed. */
	if (!(w->seen_failed && same_id(&prev, &w->seen)))
		record_error(w, error, co_error_last());
	w->seen_failed = 1;
	return error;
}

/*
 * The poll's view: reload if the file is a new inode (renamed in: complete)
 * or appeared/disappeared; for an in-place rewrite, once it has been stable
 * for one poll interval.
 */
static void poll_check(co_flags_watcher *w)
{
	file_id cur;

	if (stat_id(&cur, w->path) < 0)
		return;
	pthread_mutex_lock(&w->reload_lock);
	if (!same_id(&cur, &w->seen)) {
		if (!cur.exists || !w->seen.exists || cur.dev != w->seen.dev ||
		    cur.ino != w->seen.ino || same_id(&cur, &w->pending)) {
			reload_locked(w, 0);
			memset(&w->pending, 0, sizeof(w->pending));
		} else {
			w->pending = cur;
		}
	}
	pthread_mutex_unlock(&w->reload_lock);
}

/* Drain inotify; 1 if an event concerns our file (or events were lost). */
static int inotify_relevant(co_flags_watcher *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n;
	char *p;
	int relevant = 0;

	for (;;) {
		n = read(w->inotify_fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF))
				relevant = 1;
			else if (ev->len > 0 && strcmp(ev->name, w->base) == 0)
				relevant = 1;
		}
	}
	return relevant;
}

static void *watch_thread(void *arg)
{
	co_flags_watcher *w = arg;
	struct pollfd p[2];
	int n;

	for (;;) {
		p[0].fd = w->wake[0];
		p[0].events = POLLIN;
		p[1].fd = w->inotify_fd;
		p[1].events = POLLIN;
		n = poll(p, w->inotify_fd >= 0 ? 2 : 1, POLL_MS);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (p[0].revents & POLLIN))
			break;
		if (n > 0 && w->inotify_fd >= 0 && (p[1].revents & POLLIN) &&
		    inotify_relevant(w)) {
			/*
			 * IN_MOVED_TO / IN_CLOSE_WRITE: the writer is done,
			 * read now even if size and mtime look the same.
			 */
			pthread_mutex_lock(&w->reload_lock);
			reload_locked(w, 0);
			memset(&w->pending, 0, sizeof(w->pending));
			pthread_mutex_unlock(&w->reload_lock);
			continue;
		}
		poll_check(w);
	}
	return NULL;
}

const char *co_flags_watcher_path(const co_flags_watcher *w)
{
	return w->path;
}

void co_flags_watcher_close(co_flags_watcher *w)
{
	char c = 'x';
	ssize_t r;

	if (!w)
		return;
	if (w->have_thread) {
		r = write(w->wake[1], &c, 1);
		(void)r;
		pthread_join(w->thread, NULL);
	}
	if (w->inotify_fd >= 0)
		close(w->inotify_fd);
	if (w->wake[0] >= 0)
		close(w->wake[0]);
	if (w->wake[1] >= 0)
		close(w->wake[1]);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->reload_lock);
	free(w->path);
	free(w->base);
	free(w);
}

static int watcher_open(co_flags_watcher **out, const char *path, int use_inotify)
{
	co_flags_watcher *w = NULL;
	pthread_condattr_t ca;
	char *copy = NULL;
	int error = 0, rc;

	if (!path || !*path)
		return co_error_set(CO_EINVAL, "flags watcher: no path");
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	w->inotify_fd = w->wake[0] = w->wake[1] = -1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->reload_lock, NULL);
	/* Timed waits on the monotonic clock: immune to wall-clock steps. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	co_flags_init(&w->flags);

	if ((w->path = strdup(path)) == NULL || (copy = strdup(path)) == NULL ||
	    (w->base = strdup(basename(copy))) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	free(copy);
	copy = NULL;

	if ((error = reload_locked(w, 1)) < 0)
		goto done;
	w->errors = 0;

	if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		error = co_error_set(CO_EIO, "flags watcher: pipe: %s", strerror(errno));
		goto done;
	}
	/* Without inotify the 50 ms poll alone still meets the 100 ms goal. */
	w->inotify_fd = use_inotify ? inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
	if (w->inotify_fd >= 0) {
		if ((copy = strdup(path)) == NULL) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		if (inotify_add_watch(w->inotify_fd, dirname(copy),
				      IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE |
					  IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF) <
		    0) {
			close(w->inotify_fd);
			w->inotify_fd = -1;
		}
	}
	if ((rc = pthread_create(&w->thread, NULL, watch_thread, w)) != 0) {
		error = co_error_set(CO_EIO, "flags watcher: thread: %s", strerror(rc));
		goto done;
	}
	w->have_thread = 1;
	*out = w;
	w = NULL;
done:
	free(copy);
	co_flags_watcher_close(w);
	return error;
}

int co_flags_watcher_open(co_flags_watcher **out, const char *path)
{
	return watcher_open(out, path, 1);
}

int co_flags__watcher_open_polling(co_flags_watcher **out, const char *path)
{
	return watcher_open(out, path, 0);
}

uint64_t co_flags_watcher_get(co_flags *out, co_flags_watcher *w)
{
	uint64_t gen;

	pthread_mutex_lock(&w->lock);
	*out = w->flags;
	gen = w->generation;
	pthread_mutex_unlock(&w->lock);
	return gen;
}

int co_flags_watcher_route(co_route *out, co_flags_watcher *w, co_op op, const char *id)
{
	int error;

	pthread_mutex_lock(&w->lock);
	error = co_flags_route(out, &w->flags, op, id);
	pthread_mutex_unlock(&w->lock);
	return error;
}

uint64_t co_flags_watcher_generation(co_flags_watcher *w)
{
	uint64_t gen;

	pthread_mutex_lock(&w->lock);
	gen = w->generation;
	pthread_mutex_unlock(&w->lock);
	return gen;
}

static void deadline_in(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Wait until *counter > after or the deadline; lock held by the caller. */
static int wait_counter(co_flags_watcher *w, const uint64_t *counter, uint64_t after,
			int timeout_ms)
{
	struct timespec deadline;

	deadline_in(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
	while (*counter <= after) {
		if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT)
			break;
	}
	return *counter > after ? 0 : CO_ERETRY;
}

int co_flags_watcher_wait(co_flags_watcher *w, uint64_t after, int timeout_ms)
{
	int error;

	pthread_mutex_lock(&w->lock);
	error = wait_counter(w, &w->generation, after, timeout_ms);
	pthread_mutex_unlock(&w->lock);
	if (error < 0)
		return co_error_set(error, "%s: no new flags within %d ms", w->path,
				    timeout_ms);
	return 0;
}

int co_flags_watcher_wait_error(co_flags_watcher *w, uint64_t after, int timeout_ms)
{
	int error;

	pthread_mutex_lock(&w->lock);
	error = wait_counter(w, &w->errors, after, timeout_ms);
	pthread_mutex_unlock(&w->lock);
	if (error < 0)
		return co_error_set(error, "%s: no failed reload within %d ms", w->path,
				    timeout_ms);
	return 0;
}

int co_flags_watcher_error(char *buf, size_t len, uint64_t *count, co_flags_watcher *w)
{
	int code;

	pthread_mutex_lock(&w->lock);
	code = w->last_error;
	if (buf && len > 0)
		snprintf(buf, len, "%s", w->last_msg);
	if (count)
		*count = w->errors;
	pthread_mutex_unlock(&w->lock);
	return code;
}

int co_flags_watcher_reload(co_flags_watcher *w)
{
	int error;

	pthread_mutex_lock(&w->reload_lock);
	error = reload_locked(w, 0);
	memset(&w->pending, 0, sizeof(w->pending));
	pthread_mutex_unlock(&w->reload_lock);
	return error;
}

void co_flags_watcher_set_callback(co_flags_watcher *w, co_flags_watcher_cb fn, void *ctx)
{
	pthread_mutex_lock(&w->lock);
	w->cb = fn;
	w->cb_ctx = ctx;
	pthread_mutex_unlock(&w->lock);
}
