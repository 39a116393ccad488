/*
 * harness.c - real servers and child processes for tests (harness.h).
 *
 * etcd: a co_etcd_local (store/etcd_local.h) on free loopback ports, with
 * fast election settings, in a fresh /tmp/cutover-test-XXXXXX that stop
 * removes; it is ready when its member list holds our own peer URL and it
 * has a leader, checked over a raw socket so that the harness does not
 * depend on the store code under test.  A start that dies early, or finds
 * another etcd on "its" port (other test programs run etcd at the same
 * time), is retried on new ports.
 *
 * Every started etcd lives in a registry that an atexit handler empties,
 * and the child asks the kernel to SIGKILL it when its parent dies
 * (PR_SET_PDEATHSIG), so a failing or crashing test leaves no etcd behind.
 * PDEATHSIG follows the forking *thread*: start etcd from the main thread
 * or a thread that outlives it.
 *
 * Child processes (co_test_sh, co_test_cutover) write stdout and stderr to
 * unlinked temp files that are read after the child exits: no pipe can fill
 * up and deadlock.  Everything that allocates is done before fork(), since
 * the test process may be multithreaded; the child only calls dup2/execve.
 */
#include "harness/harness.h"

#include "store/etcd_local.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- etcd: co_etcd_local, and a registry of running ones emptied at exit ---- */

#define REGISTRY_MAX 64

/*
 * Each started co_test_etcd has a slot here, claimed for its address, that
 * holds the co_etcd_local the functions below work on; they copy what tests
 * read (pid, ports, endpoint, dir) into the caller's struct.  Only the thread
 * working on e touches its slot's etcd, and the atexit handler.
 */
static struct reg_entry {
	const co_test_etcd *key;
	co_etcd_local local;
} registry[REGISTRY_MAX];
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void registry_cleanup(void)
{
	size_t i;

	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < REGISTRY_MAX; i++) {
		if (registry[i].key == NULL)
			continue;
		/* SIGKILL: at exit nobody needs a clean shutdown; then rm the dir. */
		co_etcd_local_kill(&registry[i].local);
		co_etcd_local_stop(&registry[i].local);
		registry[i].key = NULL;
	}
	pthread_mutex_unlock(&registry_lock);
}

static void registry_init(void)
{
	atexit(registry_cleanup);
}

/* e's etcd; with claim, a fresh slot for e if it has none.  NULL if none/full. */
static co_etcd_local *registry_find(const co_test_etcd *e, int claim)
{
	co_etcd_local *l = NULL;
	size_t i, slot = REGISTRY_MAX;

	pthread_once(&registry_once, registry_init);
	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < REGISTRY_MAX; i++) {
		if (registry[i].key == e) {
			slot = i;
			break;
		}
		if (claim && registry[i].key == NULL && slot == REGISTRY_MAX)
			slot = i;
	}
	if (slot < REGISTRY_MAX) {
		if (registry[slot].key == NULL)
			memset(&registry[slot].local, 0, sizeof(registry[slot].local));
		registry[slot].key = e;
		l = &registry[slot].local;
	}
	pthread_mutex_unlock(&registry_lock);
	return l;
}

/* Forget e's slot (its etcd must be stopped). */
static void registry_release(const co_test_etcd *e)
{
	size_t i;

	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < REGISTRY_MAX; i++)
		if (registry[i].key == e)
			registry[i].key = NULL;
	pthread_mutex_unlock(&registry_lock);
}

/* What tests read of l, into e. */
static void mirror(co_test_etcd *e, const co_etcd_local *l)
{
	e->pid = l->pid;
	e->client_port = l->client_port;
	e->peer_port = l->peer_port;
	snprintf(e->endpoint, sizeof(e->endpoint), "%s", l->endpoint);
	/* Our temp dirs are short: "/tmp/cutover-test-XXXXXX". */
	snprintf(e->dir, sizeof(e->dir), "%.*s", (int)sizeof(e->dir) - 1, l->dir);
}

int co_test_etcd_start(co_test_etcd *e)
{
	co_etcd_local_opts o = CO_ETCD_LOCAL_OPTS_INIT;
	co_etcd_local *l;
	char dir[sizeof(e->dir)];

	memset(e, 0, sizeof(*e));
	if ((l = registry_find(e, 1)) == NULL) {
		fprintf(stderr, "harness: more than %d etcds at once\n", REGISTRY_MAX);
		return -1;
	}
	/* A struct started twice: its first etcd is unreachable now. */
	co_etcd_local_stop(l);
	if (co_test_tmpdir(dir, sizeof(dir)) < 0) {
		registry_release(e);
		return -1;
	}
	o.dir = dir;
	o.remove_dir_on_stop = 1;
	o.name = "t";
	o.logger = "zap";
	if (co_etcd_local_start(l, &o) < 0) {
		fprintf(stderr, "harness: etcd did not start; see %s/etcd.log\n", dir);
		co_etcd_local_stop(l);
		co_test_rmrf(dir);
		registry_release(e);
		return -1;
	}
	mirror(e, l);
	return 0;
}

int co_test_wait_stopped(pid_t pid)
{
	struct timespec ts = {0, 5 * 1000000L};
	char path[64], buf[512], *p;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; i < 1000; i++) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = '\0';
		/* "pid (comm) S ...": the state follows the last ')'. */
		if ((p = strrchr(buf, ')')) != NULL && (p[2] == 'T' || p[2] == 't'))
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

int co_test_etcd_freeze(co_test_etcd *e)
{
	if (e->pid <= 0 || kill(e->pid, SIGSTOP) != 0)
		return -1;
	if (co_test_wait_stopped(e->pid) < 0) {
		kill(e->pid, SIGCONT);
		return -1;
	}
	return 0;
}

void co_test_etcd_thaw(co_test_etcd *e)
{
	if (e->pid > 0)
		kill(e->pid, SIGCONT);
}

void co_test_etcd_stop(co_test_etcd *e)
{
	co_etcd_local *l;

	if (e == NULL)
		return;
	co_test_etcd_thaw(e); /* a frozen etcd would wait out SIGTERM */
	if ((l = registry_find(e, 0)) != NULL) {
		co_etcd_local_stop(l);
		registry_release(e);
	}
	e->pid = 0;
	e->dir[0] = '\0';
}

void co_test_etcd_kill(co_test_etcd *e)
{
	co_etcd_local *l;

	if (e == NULL)
		return;
	if ((l = registry_find(e, 0)) != NULL)
		co_etcd_local_kill(l);
	e->pid = 0;
}

int co_test_etcd_enable_auth(const co_test_etcd *e, const char *password)
{
	char *err = NULL;
	int rc = co_test_sh(NULL, &err,
			    "export ETCDCTL_API=3; E=%s;"
			    " etcdctl --endpoints=$E user add root:%s >/dev/null &&"
			    " etcdctl --endpoints=$E auth enable >/dev/null",
			    e->endpoint, password);

	if (rc != 0)
		fprintf(stderr, "etcdctl: %s\n", err ? err : "");
	free(err);
	return rc == 0 ? 0 : -1;
}

int co_test_etcd_restart(co_test_etcd *e)
{
	co_etcd_local *l;
	int error;

	if (e == NULL || e->dir[0] == '\0' || (l = registry_find(e, 0)) == NULL)
		return -1;
	error = co_etcd_local_restart(l);
	mirror(e, l);
	if (error < 0) {
		fprintf(stderr, "harness: etcd did not restart; see %s/etcd.log\n",
			e->dir);
		return -1;
	}
	return 0;
}

/* ---- temp dirs and git ---- */

int co_test_tmpdir(char *out, size_t len)
{
	char tmpl[] = "/tmp/cutover-test-XXXXXX";

	if (len < sizeof(tmpl) || mkdtemp(tmpl) == NULL)
		return -1;
	memcpy(out, tmpl, sizeof(tmpl));
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void co_test_rmrf(const char *path)
{
	if (path == NULL || strncmp(path, "/tmp/", 5) != 0 || path[5] == '\0' ||
	    strstr(path, "/..") != NULL) {
		fprintf(stderr, "harness: refusing to remove \"%s\"\n",
			path ? path : "(null)");
		return;
	}
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int co_test_git_repo_new(char *out, size_t len)
{
	char dir[64];
	char *err = NULL;
	int rc;

	if (co_test_tmpdir(dir, sizeof(dir)) < 0)
		return -1;
	rc = co_test_sh(NULL, &err, "git init --bare -q -b main '%s'", dir);
	if (rc != 0 || strlen(dir) >= len) {
		fprintf(stderr, "harness: git init failed (%d): %s\n", rc,
			err ? err : "");
		free(err);
		co_test_rmrf(dir);
		return -1;
	}
	free(err);
	memcpy(out, dir, strlen(dir) + 1);
	return 0;
}

/* ---- child processes ---- */

/* An unlinked temp file for a child's output; -1 on failure. */
static int capture_file(void)
{
	char tmpl[] = "/tmp/cutover-capture-XXXXXX";
	int fd = mkstemp(tmpl);

	if (fd >= 0)
		unlink(tmpl);
	return fd;
}

/* Read all of fd from the start into a malloc'd string (NULL on OOM). */
static char *slurp(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	if (buf == NULL)
		return NULL;
	lseek(fd, 0, SEEK_SET);
	for (;;) {
		ssize_t r;

		if (cap - len < 2048) {
			char *nb = realloc(buf, cap * 2);

			if (nb == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	return buf;
}

/* fork/execve path with argv and envp, capture output; exit status or -1. */
static int run_captured(char **out, char **err, const char *path, char *const argv[],
			char *const envp[])
{
	int ofd = -1, efd = -1, status, rc = -1;
	pid_t pid;

	if (out)
		*out = NULL;
	if (err)
		*err = NULL;
	if ((ofd = capture_file()) < 0 || (efd = capture_file()) < 0)
		goto done;
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0)
		goto done;
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(ofd, 1);
		dup2(efd, 2);
		execve(path, argv, envp);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			goto done;
	}
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	if (out)
		*out = slurp(ofd);
	if (err)
		*err = slurp(efd);
done:
	if (ofd >= 0)
		close(ofd);
	if (efd >= 0)
		close(efd);
	return rc;
}

int co_test_sh(char **out, char **err, const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		if (out)
			*out = NULL;
		if (err)
			*err = NULL;
		return -1;
	}
	{
		char *argv[] = {"sh", "-c", cmd, NULL};

		rc = run_captured(out, err, "/bin/sh", argv, environ);
	}
	free(cmd);
	return rc;
}

/*
 * 1 if environment entry `have` ("K=V") is named by the caller's `want`:
 * "K=V2" overrides it, a bare "K" removes it.
 */
static int env_names(const char *have, const char *want)
{
	const char *eq = strchr(want, '=');
	size_t kl = eq ? (size_t)(eq - want) : strlen(want);

	return strncmp(have, want, kl) == 0 && have[kl] == '=';
}

int co_test_cutover(char **out, char **err, const char *const *env,
		    const char *const *argv)
{
	size_t n_env = 0, n_extra = 0, n_arg = 0, i, j, k = 0;
	char **envp = NULL, **args = NULL;
	int rc = -1;

	while (environ[n_env])
		n_env++;
	while (env && env[n_extra])
		n_extra++;
	while (argv && argv[n_arg])
		n_arg++;
	envp = calloc(n_env + n_extra + 1, sizeof(*envp));
	args = calloc(n_arg + 2, sizeof(*args));
	if (envp == NULL || args == NULL) {
		if (out)
			*out = NULL;
		if (err)
			*err = NULL;
		goto done;
	}
	/* The inherited environment, minus what the caller overrides. */
	for (i = 0; i < n_env; i++) {
		int overridden = 0;

		for (j = 0; j < n_extra; j++)
			if (env_names(environ[i], env[j]))
				overridden = 1;
		if (!overridden)
			envp[k++] = environ[i];
	}
	for (j = 0; j < n_extra; j++)
		if (strchr(env[j], '=') != NULL)
			envp[k++] = (char *)env[j];
	envp[k] = NULL;

	args[0] = (char *)CUTOVER_BIN;
	for (i = 0; i < n_arg; i++)
		args[i + 1] = (char *)argv[i];
	args[n_arg + 1] = NULL;
	rc = run_captured(out, err, CUTOVER_BIN, args, envp);
done:
	free(envp);
	free(args);
	return rc;
}

int co_test_self_signed(const char *dir, char *cert, size_t cert_len, char *key,
			size_t key_len)
{
	char *err = NULL;
	int rc;

	if (co_test_sh(NULL, NULL, "command -v openssl >/dev/null") != 0) {
		fprintf(stderr, "SKIP: no openssl CLI to make a test certificate\n");
		return 1;
	}
	snprintf(cert, cert_len, "%s/cert.pem", dir);
	snprintf(key, key_len, "%s/key.pem", dir);
	rc =
	    co_test_sh(NULL, &err,
		       "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' "
		       "-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1",
		       key, cert);
	if (rc != 0)
		fprintf(stderr, "openssl: %s\n", err ? err : "");
	free(err);
	return rc == 0 ? 0 : -1;
}

co_test_etcd co_test_group_etcd;

int co_test_etcd_group_setup(void **state)
{
	(void)state;
	return co_test_etcd_start(&co_test_group_etcd) == 0 ? 0 : -1;
}

int co_test_etcd_group_teardown(void **state)
{
	(void)state;
	co_test_etcd_stop(&co_test_group_etcd);
	return 0;
}
