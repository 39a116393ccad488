/*
 * cli_fixture.h - what the flag/stage CLI tests share: a bare git repo, a
 * state dir and an etcd prefix per test, configured by CUTOVER_* variables,
 * and a way to run the real binary with them; the one etcd of the suite
 * (fx_group_setup/fx_group_teardown, also used by test_cli.c, whose
 * per-backend fixture is its own), and reading a child's output line by
 * line.  Header-only (static functions) so that each test program stays one
 * file plus this.
 */
#ifndef CO_TEST_CLI_FIXTURE_H
#define CO_TEST_CLI_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/audit.h"
#include "core/state.h"
#include "harness/harness.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define FX_MAX_ARGS 32
#define FX_MAX_ENV 12

typedef struct fx {
	char repo[256];
	char state[256];
	char e_repo[300], e_state[300], e_etcd[128], e_prefix[64], e_extra[2][320];
	const char *env[FX_MAX_ENV];
} fx;

static int fx_counter;

/* The suite's etcd: one per test program, a fresh key prefix per test. */
static co_test_etcd fx_etcd;

/* cmocka group setup: start the suite's etcd (and ignore SIGPIPE). */
static inline int fx_group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	return co_test_etcd_start(&fx_etcd);
}

/* cmocka group teardown: stop the suite's etcd. */
static inline int fx_group_teardown(void **state)
{
	(void)state;
	co_test_etcd_stop(&fx_etcd);
	return 0;
}

static inline int fx_setup(fx **out, const char *endpoint)
{
	fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (co_test_git_repo_new(f->repo, sizeof(f->repo)) < 0 ||
	    co_test_tmpdir(f->state, sizeof(f->state)) < 0) {
		co_test_rmrf(f->repo);
		free(f);
		return -1;
	}
	snprintf(f->e_repo, sizeof(f->e_repo), "CUTOVER_GIT_REPO=%s", f->repo);
	snprintf(f->e_state, sizeof(f->e_state), "CUTOVER_STATE_DIR=%s", f->state);
	snprintf(f->e_etcd, sizeof(f->e_etcd), "CUTOVER_ETCD_ENDPOINTS=%s", endpoint);
	snprintf(f->e_prefix, sizeof(f->e_prefix), "CUTOVER_ETCD_PREFIX=/fl-%d-%d/",
		 (int)getpid(), ++fx_counter);
	f->env[0] = f->e_repo;
	f->env[1] = f->e_state;
	f->env[2] = f->e_etcd;
	f->env[3] = f->e_prefix;
	f->env[4] = "CUTOVER_CONFIG"; /* unset */
	f->env[5] = "CUTOVER_FLAGS";  /* unset: <state dir>/flags.yaml */
	f->env[6] = "CUTOVER_CLOCK_OFFSET";
	f->env[7] = "CUTOVER_GIT_POLL_INTERVAL=100ms";
	f->env[8] = "USER=tester";
	f->env[9] = NULL;
	*out = f;
	return 0;
}

static inline void fx_teardown(fx *f)
{
	if (f == NULL)
		return;
	co_test_rmrf(f->repo);
	co_test_rmrf(f->state);
	free(f);
}

/* cmocka per-test setup and teardown: an fx on the suite's etcd in *state. */
static inline int fx_test_setup(void **state)
{
	return fx_setup((fx **)state, fx_etcd.endpoint);
}

static inline int fx_test_teardown(void **state)
{
	fx_teardown(*state);
	return 0;
}

/* Set an extra "K=V" (slot 0 or 1), replacing the unset entry of K if any. */
static inline void fx_setenv(fx *f, int slot, const char *kv)
{
	size_t klen = strcspn(kv, "=");
	int i;

	snprintf(f->e_extra[slot], sizeof(f->e_extra[slot]), "%s", kv);
	for (i = 0; f->env[i]; i++) {
		if (strncmp(f->env[i], kv, klen) == 0 &&
		    (f->env[i][klen] == '\0' || f->env[i][klen] == '=')) {
			f->env[i] = f->e_extra[slot];
			return;
		}
	}
	f->env[i] = f->e_extra[slot];
	f->env[i + 1] = NULL;
}

/*
 * Run cutover ARGS (NULL-terminated) with the variables `env`; out and err
 * (may be NULL) get malloc copies.
 */
static inline int fx_run_env(const char *const *env, char **out, char **err,
			     const char *const *args)
{
	char *o = NULL, *e = NULL;
	int rc = co_test_cutover(&o, &e, env, args);

	assert_non_null(o);
	assert_non_null(e);
	if (out)
		*out = o;
	else
		free(o);
	if (err)
		*err = e;
	else
		free(e);
	return rc;
}

/* Run cutover ARGS (NULL-terminated) with f's variables; see fx_run_env. */
static inline int fx_run_a(fx *f, char **out, char **err, const char *const *args)
{
	return fx_run_env(f->env, out, err, args);
}

#define fx_run(f, out, err, ...)                                                         \
	fx_run_a((f), (out), (err), (const char *[]){__VA_ARGS__, NULL})

/* Expect exit `want`, else fail showing what the command said. */
#define fx_expect(want, f, ...)                                                          \
	do {                                                                             \
		char *eo_, *ee_;                                                         \
		int rc_ = fx_run((f), &eo_, &ee_, __VA_ARGS__);                          \
		if (rc_ != (want))                                                       \
			fail_msg("line %d: exit %d, wanted %d; stdout: %s stderr: %s",   \
				 __LINE__, rc_, (want), eo_, ee_);                       \
		free(eo_);                                                               \
		free(ee_);                                                               \
	} while (0)

/* Fail unless `hay` contains `needle`. */
#define fx_contains(hay, needle)                                                         \
	do {                                                                             \
		if (strstr((hay), (needle)) == NULL)                                     \
			fail_msg("line %d: \"%s\" lacks \"%s\"", __LINE__, (hay),        \
				 (needle));                                              \
	} while (0)

/* One line from fd within timeout_ms; NULL on timeout or EOF. */
static inline char *fx_read_line(int fd, int timeout_ms)
{
	static char buf[65536];
	static size_t have;
	static int buf_fd = -1;
	struct timespec t0, t;
	char *nl, *line;

	if (buf_fd != fd) {
		buf_fd = fd;
		have = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		long left;
		ssize_t r;

		if ((nl = memchr(buf, '\n', have)) != NULL) {
			size_t len = (size_t)(nl - buf);

			line = strndup(buf, len);
			memmove(buf, nl + 1, have - len - 1);
			have -= len + 1;
			return line;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 +
				     (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || have == sizeof(buf))
			return NULL;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = read(fd, buf + have, sizeof(buf) - have);
		if (r <= 0)
			return NULL;
		have += (size_t)r;
	}
}

/*
 * environ without the keys of `extra` (f->env: "K=V" sets K, a bare "K"
 * unsets it), plus its "K=V" entries; for exec'ing a child by hand.  The
 * caller frees the array (not the strings).
 */
static inline char **fx_make_envp(const char *const *extra)
{
	size_t n = 0, k = 0, i, j;
	char **v;

	while (environ[n])
		n++;
	for (i = 0; extra[i]; i++)
		;
	v = calloc(n + i + 1, sizeof(*v));
	assert_non_null(v);
	for (i = 0; environ[i]; i++) {
		size_t klen = strcspn(environ[i], "=");
		int skip = 0;

		for (j = 0; extra[j]; j++)
			if (strncmp(extra[j], environ[i], klen) == 0 &&
			    (extra[j][klen] == '=' || extra[j][klen] == '\0'))
				skip = 1;
		if (!skip)
			v[k++] = environ[i];
	}
	for (j = 0; extra[j]; j++)
		if (strchr(extra[j], '='))
			v[k++] = (char *)extra[j];
	v[k] = NULL;
	return v;
}


/* The newest row of the flag-change audit trail in f's state dir; caller frees. */
static inline co_audit_change *fx_latest_change(fx *f)
{
	co_audit_change_list l = {0};
	co_audit_change *c;
	co_state *st = NULL;

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_audit_changes_latest(&l, st, 1), 0);
	assert_int_equal(l.n, 1);
	c = l.items[0];
	l.items[0] = NULL;
	l.n = 0;
	co_audit_change_list_clear(&l);
	co_state_close(st);
	return c;
}

/*
 * Start `cutover serve --listen 127.0.0.1:0` with f's environment as a
 * child; its stderr is read until it says where it listens.  *pid and
 * *err_fd (the read end of its stderr, the caller closes it) are set; the
 * port, or 0 if it never said (the child is then killed and reaped).
 */
static inline int fx_serve_start(fx *f, pid_t *pid, int *err_fd)
{
	const char *argv[] = {CUTOVER_BIN, "serve", "--listen", "127.0.0.1:0", NULL};
	char **envp = fx_make_envp(f->env), *line;
	int err[2], port = 0;

	assert_int_equal(pipe(err), 0);
	fflush(stdout);
	fflush(stderr);
	if ((*pid = fork()) == 0) {
		dup2(err[1], 2);
		close(err[0]);
		close(err[1]);
		execve(CUTOVER_BIN, (char *const *)argv, envp);
		_exit(127);
	}
	free(envp);
	close(err[1]);
	*err_fd = err[0];
	/* 60 s: a safety net only. */
	while (port == 0 && (line = fx_read_line(err[0], 60000)) != NULL) {
		const char *p = strstr(line, "(port ");

		if (strstr(line, "serving on") && p)
			port = atoi(p + 6);
		free(line);
	}
	if (port == 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	return port;
}

#endif
