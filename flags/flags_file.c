/*
 * flags_file.c - the flags file: load, atomic save (temp file, fsync,
 * rename, fsync of the directory, so that a reader or the watcher never
 * sees half a file), compare-and-save, the kill switch's save, and the
 * writers' lock.
 */
#include "flags/flags.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "flags/flags_private.h"

int co_flags__read(char **out, size_t *out_len, struct stat *out_st, const char *path)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	ssize_t n;
	int fd = -1, error = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			error = co_error_set(CO_ENOTFOUND, "%s: no such file", path);
		else
			error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (fstat(fd, &st) < 0) {
		error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		error = co_error_set(CO_EIO, "%s: not a regular file", path);
		goto done;
	}
	if (st.st_size > CO_FLAGS_FILE_MAX) {
		error = co_error_set(CO_ETOOBIG, "%s: larger than %d bytes", path,
				     CO_FLAGS_FILE_MAX);
		goto done;
	}
	/* The size may change under us (an in-place writer): read to EOF. */
	cap = (size_t)st.st_size + 1;
	if ((buf = malloc(cap)) == NULL) {
		error = co_error_set(CO_ENOMEM, "%s: out of memory", path);
		goto done;
	}
	for (;;) {
		if (len + 1 >= cap) {
			char *nb;

			if (cap > CO_FLAGS_FILE_MAX) {
				error =
				    co_error_set(CO_ETOOBIG, "%s: larger than %d bytes",
						 path, CO_FLAGS_FILE_MAX);
				goto done;
			}
			if ((nb = realloc(buf, cap * 2)) == NULL) {
				error =
				    co_error_set(CO_ENOMEM, "%s: out of memory", path);
				goto done;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	if (out_st)
		*out_st = st;
	buf = NULL;
done:
	free(buf);
	if (fd >= 0)
		close(fd);
	return error;
}

int co_flags_load(co_flags *out, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	int error;

	if (!path || !*path)
		return co_error_set(CO_EINVAL, "flags: no file name");
	error = co_flags__read(&text, &len, NULL, path);
	if (error == CO_ENOTFOUND) {
		co_error_clear();
		co_flags_init(out);
		return 0;
	}
	if (error < 0)
		return error;
	error = co_flags_parse(out, text, len, path);
	free(text);
	return error;
}


static int write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync the directory holding path, so that the rename itself is durable. */
static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, error = 0;

	if (!copy)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(fd) < 0)
		error = co_error_set(CO_EIO, "%s: fsync of directory: %s", path,
				     strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return error;
}

/*
 * The lock file is private as the flags file is: 0600 exactly, past the
 * umask (which could have left it 0400, a lock nobody can reopen), and an
 * older looser one of ours is tightened.  Someone else's is left alone:
 * the CLI warns about it at start.
 */
static int private_mode(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_uid != geteuid() || (st.st_mode & 07777) == 0600)
		return 0;
	return fchmod(fd, 0600);
}

/* "pid 4242 (cutover) since 2026-11-23T17:59:02Z": who holds the lock. */
static void note_holder(int fd)
{
	char comm[64] = "?", line[160], when[32];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f = fopen("/proc/self/comm", "r");
	size_t n;

	if (f) {
		if (fgets(comm, sizeof(comm), f) == NULL)
			snprintf(comm, sizeof(comm), "?");
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
	}
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = (size_t)snprintf(line, sizeof(line), "pid %d (%s) since %s\n", (int)getpid(),
			     comm, when);
	/* Best effort: the note only helps an operator name a stuck writer. */
	if (ftruncate(fd, 0) == 0 && pwrite(fd, line, n, 0) < 0)
		return;
}

static void read_holder(char *buf, size_t len, int fd)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (buf[0] == '\0')
		snprintf(buf, len, "a writer that did not say who it is");
}

int co_flags_lock_wait(const char *path, int wait_ms)
{
	struct timespec pause = {0, 5 * 1000000L};
	char *lock_path, holder[160];
	int fd, waited_ms = 0;

	if (path == NULL || *path == '\0')
		return co_error_set(CO_EINVAL, "flags: no file to lock");
	if ((lock_path = malloc(strlen(path) + sizeof(CO_FLAGS_LOCK_SUFFIX))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	sprintf(lock_path, "%s" CO_FLAGS_LOCK_SUFFIX, path);
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int error = co_error_set(CO_EIO, "%s: %s", lock_path, strerror(errno));

		free(lock_path);
		return error;
	}
	if (private_mode(fd) < 0) {
		int error =
		    co_error_set(CO_EIO, "%s: chmod 600: %s", lock_path, strerror(errno));

		close(fd);
		free(lock_path);
		return error;
	}
	/* Polled rather than blocking, to give up with a clear message. */
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || waited_ms >= wait_ms) {
			int error;

			if (errno == EWOULDBLOCK) {
				read_holder(holder, sizeof(holder), fd);
				error = co_error_set(
				    CO_EUNAVAIL, "%s: held by %s; waited %d ms for it",
				    lock_path, holder, waited_ms);
			} else {
				error = co_error_set(CO_EIO, "%s: %s", lock_path,
						     strerror(errno));
			}
			close(fd);
			free(lock_path);
			return error;
		}
		nanosleep(&pause, NULL);
		waited_ms += 5;
	}
	note_holder(fd);
	free(lock_path);
	return fd;
}

int co_flags_lock_holder(char *buf, size_t len, const char *path)
{
	char lock_path[4096];
	int fd, held = 0;

	buf[0] = '\0';
	if (path == NULL || *path == '\0')
		return co_error_set(CO_EINVAL, "flags: no file to look at");
	snprintf(lock_path, sizeof(lock_path), "%s" CO_FLAGS_LOCK_SUFFIX, path);
	if ((fd = open(lock_path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0; /* never locked */
		return co_error_set(CO_EIO, "%s: %s", lock_path, strerror(errno));
	}
	/* Free if it can be taken; given back at once. */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
	} else if (errno == EWOULDBLOCK) {
		read_holder(buf, len, fd);
		held = 1;
	}
	close(fd);
	return held;
}

int co_flags_lock(const char *path)
{
	return co_flags_lock_wait(path, CO_FLAGS_LOCK_WAIT_MS);
}

int co_flags_lock_for_kill(int *fd, const char *path)
{
	int got = co_flags_lock_wait(path, CO_FLAGS_KILL_WAIT_MS);

	*fd = -1;
	if (got == CO_EUNAVAIL)
		return 0; /* co_error_last() names the holder */
	if (got < 0)
		return got;
	*fd = got;
	co_error_clear();
	return 0;
}

void co_flags_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* CO_ECONFLICT unless the file at `path` holds `expect`. */
static int still_holds(const co_flags *expect, const char *path)
{
	co_flags now;
	char what[512];
	int error;

	if ((error = co_flags_load(&now, path)) < 0)
		return error;
	if (co_flags_equal(&now, expect))
		return 0;
	co_flags_diff(what, sizeof(what), expect, &now);
	return co_error_set(CO_ECONFLICT,
			    "flags %s changed since this command read them (%s%s%s, "
			    "by %s); nothing saved: run it again",
			    path, what, now.kill_switch ? "; kill switch: " : "",
			    now.kill_switch ? now.kill_reason : "",
			    now.updated_by[0] ? now.updated_by : "?");
}

/*
 * Write `f` to a temp file, fsync it, and rename it over `path`; with
 * `expect`, only if the file still holds it, checked last thing before
 * the rename (the window a save without the lock can hit is the rename
 * itself, not the formatting and the fsync).
 */
static int save(const co_flags *f, const char *path, const co_flags *expect)
{
	/* Distinct temp names for concurrent saves from threads of one process. */
	static atomic_uint counter;
	char *text = NULL, *tmp = NULL;
	size_t tmplen;
	int fd = -1, error;

	if ((error = co_flags_format(&text, f)) < 0)
		goto done;
	tmplen = strlen(path) + 64;
	if ((tmp = malloc(tmplen)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	snprintf(tmp, tmplen, "%s.tmp.%ld.%u", path, (long)getpid(),
		 atomic_fetch_add(&counter, 1));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL; /* not ours: do not unlink */
		goto done;
	}
	/* The umask can only remove bits; fchmod makes 0600 explicit anyway. */
	if (fchmod(fd, 0600) < 0 || write_all(fd, text, strlen(text)) < 0 ||
	    fsync(fd) < 0) {
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	if (expect && (error = still_holds(expect, path)) < 0)
		goto done;
	if (rename(tmp, path) < 0) {
		error = co_error_set(CO_EIO, "%s: rename to %s: %s", tmp, path,
				     strerror(errno));
		goto done;
	}
	free(tmp);
	tmp = NULL;
	error = fsync_dir_of(path);
done:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(text);
	return error;
}

int co_flags_save(const co_flags *f, const char *path)
{
	return save(f, path, NULL);
}

int co_flags_save_if(const co_flags *expect, const co_flags *to, const char *path)
{
	return save(to, path, expect);
}

/* Tries of co_flags_save_kill() over changes made meanwhile. */
#define KILL_TRIES 8

int co_flags_save_kill(co_flags *to, const co_flags *from, const char *path)
{
	co_flags cur = *from, next = *to;
	int error, tries;

	for (tries = 0; tries < KILL_TRIES; tries++) {
		error = save(&next, path, &cur);
		if (error == 0)
			*to = next;
		if (error == CO_EINVAL || error == CO_ETOOBIG)
			break; /* the file does not parse: nothing in it to keep */
		if (error != CO_ECONFLICT)
			return error;
		/* Another writer saved meanwhile: pull the switch over its change
		 * rather than undo it. */
		if ((error = co_flags_load(&cur, path)) < 0)
			break;
		if (cur.kill_switch) {
			*to = cur; /* already pulled: keep that reason */
			return 0;
		}
		next = cur;
		co_flags_set_kill(&next, 1, to->kill_reason);
		memcpy(next.updated_at, to->updated_at, sizeof(next.updated_at));
		memcpy(next.updated_by, to->updated_by, sizeof(next.updated_by));
	}
	co_error_clear();
	if ((error = co_flags_save(&next, path)) == 0)
		*to = next;
	return error;
}
