/*
 * harness.c - real servers and child processes for tests (harness.h).
 *
 * etcd: two loopback ports are found free by binding 127.0.0.1:0, then etcd
 * is started on them with fast election settings, logging to <dir>/etcd.log,
 * and polled until it answers.  A port can be taken by someone else between
 * the probe and etcd's bind (other test programs run etcd at the same time),
 * so a start that dies early, or that finds another etcd answering on "its"
 * port, is retried with new ports.  Readiness is checked with a tiny HTTP
 * client over a raw socket (POST /v3/cluster/member/list, looking for our
 * own peer URL), so that the harness does not depend on the code under test.
 *
 * Every started etcd is also recorded in a registry that an atexit handler
 * empties, and the child asks the kernel to SIGKILL it when its parent dies
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

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ETCD_READY_TIMEOUT_MS 10000
#define ETCD_START_ATTEMPTS 5
#define ETCD_STOP_TIMEOUT_MS 5000

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wait for pid for at most timeout_ms; 1 if it was reaped, 0 if not. */
static int wait_bounded(pid_t pid, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD))
			return 1;
		if (now_ms() >= end)
			return 0;
		sleep_ms(5);
	}
}

/* SIGTERM, then SIGKILL if it does not go away; always reaps. */
static void terminate(pid_t pid, int sig)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	if (!wait_bounded(pid, ETCD_STOP_TIMEOUT_MS)) {
		kill(pid, SIGKILL);
		wait_bounded(pid, ETCD_STOP_TIMEOUT_MS);
	}
}

/* ---- registry of running etcds, emptied at exit ---- */

#define REGISTRY_MAX 64

static struct reg_entry {
	const co_test_etcd *key;
	pid_t pid;
	char dir[256];
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
		terminate(registry[i].pid, SIGKILL);
		if (registry[i].dir[0])
			co_test_rmrf(registry[i].dir);
		registry[i].key = NULL;
	}
	pthread_mutex_unlock(&registry_lock);
}

static void registry_init(void)
{
	atexit(registry_cleanup);
}

/* Record what e holds now (pid may be 0 for a killed one); dir "" forgets. */
static void registry_update(const co_test_etcd *e)
{
	size_t i, slot = REGISTRY_MAX;

	pthread_once(&registry_once, registry_init);
	pthread_mutex_lock(&registry_lock);
	for (i = 0; i < REGISTRY_MAX; i++) {
		if (registry[i].key == e) {
			slot = i;
			break;
		}
		if (registry[i].key == NULL && slot == REGISTRY_MAX)
			slot = i;
	}
	if (slot < REGISTRY_MAX) {
		if (e->dir[0] == '\0' && e->pid <= 0) {
			registry[slot].key = NULL;
		} else {
			registry[slot].key = e;
			registry[slot].pid = e->pid;
			snprintf(registry[slot].dir, sizeof(registry[slot].dir), "%s",
				 e->dir);
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* ---- ports and a raw HTTP probe ---- */

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/*
 * POST `path` with JSON `body` to 127.0.0.1:port and put up to len-1 bytes of
 * the whole answer (headers and body) into buf.  0 on a complete answer.
 */
static int http_post(char *buf, size_t len, int port, const char *path, const char *body)
{
	struct sockaddr_in a;
	struct timeval tv = {0, 500000};
	char req[256];
	size_t got = 0;
	int fd, n;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	n = snprintf(req, sizeof(req),
		     "POST %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n%s",
		     path, port, strlen(body), body);
	if (write(fd, req, (size_t)n) != n)
		goto fail;
	while (got + 1 < len) {
		ssize_t r = read(fd, buf + got, len - 1 - got);

		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/*
 * 1 when the etcd answering on e->client_port is ours (its member list
 * holds our peer URL), 0 when nothing useful answers yet, -1 when someone
 * else's etcd answers on that port.
 */
static int etcd_answers(const co_test_etcd *e)
{
	char buf[8192], peer[64];

	if (http_post(buf, sizeof(buf), e->client_port, "/v3/cluster/member/list", "{}") <
	    0)
		return 0;
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strstr(buf, " 200 ") == NULL)
		return 0;
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", e->peer_port);
	if (strstr(buf, peer) == NULL)
		return -1;
	/*
	 * The member list answers before a leader exists.  Status says who
	 * leads ("leader" is omitted while it is 0), and unlike a range it
	 * needs no credentials once a test has enabled auth.
	 */
	if (http_post(buf, sizeof(buf), e->client_port, "/v3/maintenance/status", "{}") <
	    0)
		return 0;
	if (strstr(buf, " 200 ") == NULL || strstr(buf, "\"leader\":\"") == NULL)
		return 0;
	return 1;
}

/* fork + exec etcd on e's ports and dir; sets e->pid.  0 / -1. */
static int spawn_etcd(co_test_etcd *e)
{
	char data[300], logp[300], name[] = "t";
	char client[64], peer[64], cluster[80];
	char *argv[32];
	int logfd, argc = 0;
	pid_t parent = getpid(), pid;

	snprintf(data, sizeof(data), "%s/data", e->dir);
	snprintf(logp, sizeof(logp), "%s/etcd.log", e->dir);
	snprintf(client, sizeof(client), "http://127.0.0.1:%d", e->client_port);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", e->peer_port);
	snprintf(cluster, sizeof(cluster), "t=%s", peer);
	if ((logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
		return -1;

	argv[argc++] = "etcd";
	argv[argc++] = "--name";
	argv[argc++] = name;
	argv[argc++] = "--data-dir";
	argv[argc++] = data;
	argv[argc++] = "--listen-client-urls";
	argv[argc++] = client;
	argv[argc++] = "--advertise-client-urls";
	argv[argc++] = client;
	argv[argc++] = "--listen-peer-urls";
	argv[argc++] = peer;
	argv[argc++] = "--initial-advertise-peer-urls";
	argv[argc++] = peer;
	argv[argc++] = "--initial-cluster";
	argv[argc++] = cluster;
	argv[argc++] = "--heartbeat-interval";
	argv[argc++] = "10";
	argv[argc++] = "--election-timeout";
	argv[argc++] = "100";
	argv[argc++] = "--logger";
	argv[argc++] = "zap";
	argv[argc++] = "--log-level";
	argv[argc++] = "error";
	argv[argc] = NULL;

	if ((pid = fork()) < 0) {
		close(logfd);
		return -1;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		/* Die with the test, even if it is SIGKILLed. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execvp("etcd", argv);
		_exit(127);
	}
	close(logfd);
	e->pid = pid;
	return 0;
}

/* Wait until e answers: 1 ours, 0 died/timed out, -1 port taken by another. */
static int wait_ready(co_test_etcd *e)
{
	int64_t end = now_ms() + ETCD_READY_TIMEOUT_MS;
	int status;

	for (;;) {
		int r = etcd_answers(e);

		if (r != 0)
			return r;
		if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
			e->pid = 0;
			return 0;
		}
		if (now_ms() >= end)
			return 0;
		sleep_ms(10);
	}
}

/* ---- etcd ---- */

int co_test_etcd_start(co_test_etcd *e)
{
	int attempt;

	memset(e, 0, sizeof(*e));
	if (co_test_tmpdir(e->dir, sizeof(e->dir)) < 0)
		return -1;
	registry_update(e);
	for (attempt = 0; attempt < ETCD_START_ATTEMPTS; attempt++) {
		char data[300];
		int r;

		e->client_port = free_port();
		e->peer_port = free_port();
		if (e->client_port <= 0 || e->peer_port <= 0 ||
		    e->client_port == e->peer_port)
			continue;
		snprintf(e->endpoint, sizeof(e->endpoint), "http://127.0.0.1:%d",
			 e->client_port);
		/* A failed attempt may have left a half-initialised data dir. */
		snprintf(data, sizeof(data), "%s/data", e->dir);
		co_test_rmrf(data);
		if (spawn_etcd(e) < 0)
			break;
		registry_update(e);
		r = wait_ready(e);
		if (r == 1)
			return 0;
		terminate(e->pid, SIGKILL);
		e->pid = 0;
		registry_update(e);
	}
	fprintf(stderr, "harness: etcd did not start; see %s/etcd.log\n", e->dir);
	co_test_etcd_stop(e);
	return -1;
}

void co_test_etcd_stop(co_test_etcd *e)
{
	if (e == NULL)
		return;
	terminate(e->pid, SIGTERM);
	e->pid = 0;
	if (e->dir[0])
		co_test_rmrf(e->dir);
	e->dir[0] = '\0';
	registry_update(e);
}

void co_test_etcd_kill(co_test_etcd *e)
{
	if (e == NULL)
		return;
	terminate(e->pid, SIGKILL);
	e->pid = 0;
	registry_update(e);
}

int co_test_etcd_restart(co_test_etcd *e)
{
	int64_t end = now_ms() + ETCD_READY_TIMEOUT_MS;

	if (e == NULL || e->dir[0] == '\0')
		return -1;
	co_test_etcd_kill(e);
	/*
	 * The old process released its ports when it died, but a fresh bind
	 * may briefly fail; retry the spawn (same ports, same data) while
	 * etcd exits early, bounded.
	 */
	while (now_ms() < end) {
		if (spawn_etcd(e) < 0)
			return -1;
		registry_update(e);
		if (wait_ready(e) == 1)
			return 0;
		terminate(e->pid, SIGKILL);
		e->pid = 0;
		registry_update(e);
		sleep_ms(50);
	}
	fprintf(stderr, "harness: etcd did not restart; see %s/etcd.log\n", e->dir);
	return -1;
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
