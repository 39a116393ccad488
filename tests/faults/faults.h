/*
 * faults.h - a disk-fault injector for tests (issue 16, point 4): writes
 * and syncs that fail with ENOSPC or EIO for files under a path, switched
 * on and off while the process runs.  Tests only; never linked into the
 * cutover binary.
 *
 * faults.c defines write, pwrite, pwrite64, writev, fsync and fdatasync
 * (what SQLite's unix VFS and libgit2 call: strace of a routed write shows
 * pwrite64 + fdatasync for the state, write + fsync for git objects and
 * refs) in front of libc's.  It is used two ways:
 *  - linked into a test program (tests/faults/test_*.c): the program's own
 *    definitions come first in symbol lookup, ahead of libc and of the
 *    sanitizer's interceptors, for every shared library it loads;
 *  - as libcutover_faults.so in LD_PRELOAD of a child `cutover` (with an
 *    ASan build, ASAN_OPTIONS=verify_asan_link_order=0 in the child).
 *
 * Control, read on every write or sync so that a test can switch faults
 * while a server runs: $CUTOVER_FAULTS_CTL names a control file.  While it
 * does not exist, nothing fails (one failed open() per call).  While it
 * exists it holds whitespace-separated words:
 *     path=PREFIX       faults apply to files whose path starts with PREFIX
 *                       (required: without it nothing fails)
 *     write=ENOSPC|EIO  write/pwrite/pwrite64/writev fail with that errno
 *     sync=ENOSPC|EIO   fsync/fdatasync fail with that errno
 *     sync=STALL        fsync/fdatasync block until the control file no
 *                       longer says so (a stalled disk: a dead NFS server,
 *                       a SAN path failing over), then sync for real
 * Write it with co_faults_set() (atomically: temp file + rename) and remove
 * it with co_faults_clear().  Every fault injected is counted in this
 * process (co_faults_count) and, if $CUTOVER_FAULTS_LOG names a file, one
 * line "write ENOSPC /path" is appended to it (what a parent counts for a
 * child process).  The file named by the control file itself and the log
 * never fail.
 */
#ifndef CO_TEST_FAULTS_H
#define CO_TEST_FAULTS_H

enum { CO_FAULT_WRITE = 0, CO_FAULT_SYNC = 1 };

/* As co_faults_set()'s sync_errno: syncs stall instead of failing. */
#define CO_FAULT_STALL (-1)

/*
 * Turn faults on: write the control file $CUTOVER_FAULTS_CTL with `path`
 * and the errnos for writes and syncs (0: that kind does not fail).
 * 0, or -1 if the variable is unset or the file cannot be written.
 */
int co_faults_set(const char *path, int write_errno, int sync_errno);

/* Turn faults off (remove the control file).  Idempotent. */
void co_faults_clear(void);

/* Syncs of this process blocked by sync=STALL right now, and in all. */
long co_faults_stalled_now(void);
long co_faults_stalled_total(void);

/*
 * Wait until at least `n` syncs of this process have stalled in all
 * (co_faults_stalled_total), at most timeout_ms: 0, or -1 on timeout.
 */
int co_faults_wait_stalled(long n, int timeout_ms);

/* Faults injected so far in this process of kind CO_FAULT_* with errno err. */
long co_faults_count(int kind, int err);

/* Lines of a $CUTOVER_FAULTS_LOG file with kind and errno (as co_faults_count). */
long co_faults_log_count(const char *log_path, int kind, int err);

#endif
