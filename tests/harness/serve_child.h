/*
 * serve_child.h - the `cutover serve` binary as a child process, as an
 * operator runs it (bench/bench_soak.c): started with a given environment
 * on a free loopback port, its stdout and stderr in a log file, stopped by
 * its pid; and what the kernel says about a process (RSS, open fds).
 *
 * Ownership: the caller owns the co_test_serve_child struct; the child is
 * killed with SIGKILL if the thread that started it dies
 * (PR_SET_PDEATHSIG), and co_test_serve_child_stop() reaps it.  The
 * child leads its own process group, so a wrapper's children go with it.  Errors:
 * -1 with the reason on stderr (a test's diagnostics).
 */
#ifndef CO_TEST_SERVE_CHILD_H
#define CO_TEST_SERVE_CHILD_H

#include <sys/types.h>

typedef struct co_test_serve_child {
	pid_t pid; /* 0 when not running */
	int port;
	char base[64]; /* "http://127.0.0.1:PORT" */
	char log[320]; /* <dir>/serve.log */
	int wrapped;   /* started under a wrapper: serve is in pid's group */
} co_test_serve_child;

/*
 * Start CUTOVER_BIN serve --listen 127.0.0.1:0 in `dir` (also where its log
 * goes) with exactly the environment `env` ("K=V", NULL-terminated) and
 * wait (bounded, 60 s) until it says which port it serves on.  `wrap`
 * (NULL: none) runs it as `sh -c "exec WRAP cutover serve ..."`, for a
 * profiler.  0, or -1 with serve's log on stderr.
 */
int co_test_serve_child_start(co_test_serve_child *s, const char *dir,
			      const char *const *env, const char *wrap);

/* serve's own pid: s->pid, or under a wrapper the process of s->pid's
 * group running CUTOVER_BIN (0 if none is). */
pid_t co_test_serve_child_serve_pid(const co_test_serve_child *s);

/* SIGTERM to serve (a wrapper then ends by itself), then SIGKILL to the
 * whole process group if it has not exited within 30 s; its wait status
 * (-1 if it was not running). */
int co_test_serve_child_stop(co_test_serve_child *s);

/* VmRSS of process pid in KiB, -1 if unknown. */
long co_test_proc_rss_kb(pid_t pid);

/* Open file descriptors of process pid, -1 if unknown. */
int co_test_proc_fds(pid_t pid);

#endif
