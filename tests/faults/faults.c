/*
 * faults.c - the disk-fault injector of faults.h: write and sync calls that
 * fail with ENOSPC or EIO for files under a path named in a control file.
 *
 * Each wrapped call asks whether a fault applies (control file present, the
 * kind named in it, the descriptor's path, from /proc/self/fd, under its
 * prefix) and otherwise calls the next definition (libc's, or a sanitizer's
 * interceptor) found with dlsym(RTLD_NEXT).  The injector's own file I/O
 * (reading the control file, appending to the log) goes through syscall()
 * so that it never re-enters a wrapper.  A failing call fails whole, before
 * any byte is written: what a full disk does to an allocating write.  A
 * stalled sync (sync=STALL) waits in 5 ms steps until the control file
 * stops asking for it, then syncs for real; it is counted and signalled
 * (co_faults_wait_stalled) when it starts.
 *
 * Not here: open() of new files (a full disk usually still creates them),
 * mmap'd writes (SQLite's -shm), rename.  Tests only.
 */
#include "faults.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static atomic_long counts[2][2]; /* [kind][0: ENOSPC, 1: EIO] */

static const char *const kind_names[2] = {"write", "sync"};

static atomic_long stalled_now, stalled_total;
static pthread_mutex_t stall_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stall_cv = PTHREAD_COND_INITIALIZER;

/* Read the control file with raw syscalls; 0 when it is absent. */
static int read_ctl(char *buf, size_t len)
{
	const char *ctl = getenv("CUTOVER_FAULTS_CTL");
	long fd, n;

	if (ctl == NULL || *ctl == '\0')
		return 0;
	if ((fd = syscall(SYS_openat, AT_FDCWD, ctl, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = syscall(SYS_read, (int)fd, buf, len - 1);
	syscall(SYS_close, (int)fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return 1;
}

/* The value of word "key=" in the control text, copied into out; 0 if none. */
static int ctl_word(char *out, size_t len, const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while ((p = strstr(p, key)) != NULL) {
		if (p == text || p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\t') {
			size_t n = strcspn(p + klen, " \t\n");

			if (n >= len)
				n = len - 1;
			memcpy(out, p + klen, n);
			out[n] = '\0';
			return 1;
		}
		p += klen;
	}
	return 0;
}

static void log_fault(int kind, int err, const char *path)
{
	const char *log = getenv("CUTOVER_FAULTS_LOG");
	char line[4200];
	long fd;
	int n;

	atomic_fetch_add(&counts[kind][err == EIO], 1);
	if (log == NULL || *log == '\0')
		return;
	n = snprintf(line, sizeof(line), "%s %s %s\n", kind_names[kind],
		     err == EIO ? "EIO" : "ENOSPC", path);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	fd = syscall(SYS_openat, AT_FDCWD, log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		     0600);
	if (fd < 0)
		return;
	syscall(SYS_write, (int)fd, line, (size_t)n);
	syscall(SYS_close, (int)fd);
}

/* The errno a call of `kind` on fd must fail with now, or 0. */
static int fault_for(int fd, int kind)
{
	char ctl[4096], prefix[4096], err[16], link[64], path[4096];
	long n;

	if (!read_ctl(ctl, sizeof(ctl)) ||
	    !ctl_word(err, sizeof(err), ctl,
		      kind == CO_FAULT_WRITE ? "write=" : "sync=") ||
	    !ctl_word(prefix, sizeof(prefix), ctl, "path=") || prefix[0] == '\0')
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	if (strncmp(path, prefix, strlen(prefix)) != 0)
		return 0;
	if (strcmp(err, "STALL") == 0)
		return kind == CO_FAULT_SYNC ? CO_FAULT_STALL : 0;
	if (strcmp(err, "EIO") == 0) {
		log_fault(kind, EIO, path);
		return EIO;
	}
	if (strcmp(err, "ENOSPC") == 0) {
		log_fault(kind, ENOSPC, path);
		return ENOSPC;
	}
	return 0;
}

/* The next definition of `name` after ours, looked up once. */
#define NEXT(type, name)                                                                 \
	static _Atomic(type) next_;                                                      \
	type fn_ = atomic_load(&next_);                                                  \
	if (fn_ == NULL) {                                                               \
		fn_ = (type)dlsym(RTLD_NEXT, name);                                      \
		atomic_store(&next_, fn_);                                               \
	}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*sync_fn)(int);

/* A sync of fd under sync=STALL: block until the control file lets go. */
static void stall(int fd)
{
	struct timespec step = {0, 5 * 1000000L};
	const char *log = getenv("CUTOVER_FAULTS_LOG");

	atomic_fetch_add(&stalled_now, 1);
	pthread_mutex_lock(&stall_mu);
	atomic_fetch_add(&stalled_total, 1);
	pthread_cond_broadcast(&stall_cv);
	pthread_mutex_unlock(&stall_mu);
	if (log != NULL && *log != '\0') {
		char line[64];
		int n = snprintf(line, sizeof(line), "sync STALL fd %d\n", fd);
		long lfd = syscall(SYS_openat, AT_FDCWD, log,
				   O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

		if (lfd >= 0) {
			syscall(SYS_write, (int)lfd, line, (size_t)n);
			syscall(SYS_close, (int)lfd);
		}
	}
	while (fault_for(fd, CO_FAULT_SYNC) == CO_FAULT_STALL)
		nanosleep(&step, NULL); /* the injector's own wait, not a test's */
	atomic_fetch_sub(&stalled_now, 1);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	int e;
	NEXT(write_fn, "write");

	if ((e = fault_for(fd, CO_FAULT_WRITE)) != 0) {
		errno = e;
		return -1;
	}
	return fn_(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	int e;
	NEXT(pwrite_fn, "pwrite");

	if ((e = fault_for(fd, CO_FAULT_WRITE)) != 0) {
		errno = e;
		return -1;
	}
	return fn_(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	int e;
	NEXT(pwrite64_fn, "pwrite64");

	if ((e = fault_for(fd, CO_FAULT_WRITE)) != 0) {
		errno = e;
		return -1;
	}
	return fn_(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	int e;
	NEXT(writev_fn, "writev");

	if ((e = fault_for(fd, CO_FAULT_WRITE)) != 0) {
		errno = e;
		return -1;
	}
	return fn_(fd, iov, n);
}

int fsync(int fd)
{
	int e;
	NEXT(sync_fn, "fsync");

	if ((e = fault_for(fd, CO_FAULT_SYNC)) == CO_FAULT_STALL) {
		stall(fd);
	} else if (e != 0) {
		errno = e;
		return -1;
	}
	return fn_(fd);
}

int fdatasync(int fd)
{
	int e;
	NEXT(sync_fn, "fdatasync");

	if ((e = fault_for(fd, CO_FAULT_SYNC)) == CO_FAULT_STALL) {
		stall(fd);
	} else if (e != 0) {
		errno = e;
		return -1;
	}
	return fn_(fd);
}

static const char *errno_name(int e)
{
	return e == EIO ? "EIO" : e == ENOSPC ? "ENOSPC" : NULL;
}

int co_faults_set(const char *path, int write_errno, int sync_errno)
{
	const char *ctl = getenv("CUTOVER_FAULTS_CTL");
	char tmp[4200];
	FILE *f;
	int ok;

	if (ctl == NULL || *ctl == '\0' || path == NULL)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", ctl);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "path=%s", path);
	if (errno_name(write_errno))
		fprintf(f, " write=%s", errno_name(write_errno));
	if (sync_errno == CO_FAULT_STALL)
		fprintf(f, " sync=STALL");
	else if (errno_name(sync_errno))
		fprintf(f, " sync=%s", errno_name(sync_errno));
	ok = fprintf(f, "\n") > 0;
	ok = fclose(f) == 0 && ok;
	return ok && rename(tmp, ctl) == 0 ? 0 : -1;
}

void co_faults_clear(void)
{
	const char *ctl = getenv("CUTOVER_FAULTS_CTL");

	if (ctl != NULL && *ctl != '\0')
		unlink(ctl);
}

long co_faults_stalled_now(void)
{
	return atomic_load(&stalled_now);
}

long co_faults_stalled_total(void)
{
	return atomic_load(&stalled_total);
}

int co_faults_wait_stalled(long n, int timeout_ms)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&stall_mu);
	while (atomic_load(&stalled_total) < n && rc == 0)
		rc = pthread_cond_timedwait(&stall_cv, &stall_mu, &until);
	pthread_mutex_unlock(&stall_mu);
	return atomic_load(&stalled_total) >= n ? 0 : -1;
}

long co_faults_count(int kind, int err)
{
	return atomic_load(&counts[kind & 1][err == EIO]);
}

long co_faults_log_count(const char *log_path, int kind, int err)
{
	char line[4200], want[32];
	long n = 0;
	FILE *f = fopen(log_path, "r");

	if (f == NULL)
		return 0;
	snprintf(want, sizeof(want), "%s %s ", kind_names[kind & 1],
		 err == EIO ? "EIO" : "ENOSPC");
	while (fgets(line, sizeof(line), f))
		n += strncmp(line, want, strlen(want)) == 0;
	fclose(f);
	return n;
}
