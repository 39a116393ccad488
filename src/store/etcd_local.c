/*
 * etcd_local.c - a single-node etcd of our own on free loopback ports
 * (etcd_local.h), shared by `cutover demo` and the test harness.
 *
 * Two loopback ports are found free by binding 127.0.0.1:0, then etcd is
 * started on them, logging to <dir>/etcd.log, and polled until it is ready.
 * A port can be taken by someone else between the probe and etcd's bind
 * (test programs run etcds side by side), so a start that dies early, or
 * that finds another etcd answering on "its" port, is tried again on new
 * ports with an empty data dir.  The default readiness probe is a tiny
 * HTTP client over a raw socket (POST /v3/cluster/member/list, looking for
 * our own peer URL, then /v3/maintenance/status for a leader), so that the
 * test harness does not depend on the store code it tests; the demo can
 * ask for a read through the etcd store instead.
 *
 * The child asks the kernel to SIGKILL it when its parent dies
 * (PR_SET_PDEATHSIG), so a demo or a test killed midway leaves no etcd
 * behind.  PDEATHSIG follows the forking *thread*.  Everything that
 * allocates is done before fork(), since the caller may be multithreaded;
 * the child only calls prctl/setpgid/open/dup2/execvp.
 *
 * Deliberately not here: clusters of several members, TLS, auth, or any
 * registry of running etcds (the harness keeps its own for atexit).
 */
#include "etcd_local.h"

#include "../core/error.h"
#include "etcd_store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdint.h>
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

#define POLL_MS 10
#define RESTART_PAUSE_MS 50

/* What wait_ready() saw. */
enum { GONE = 0, READY = 1, FOREIGN = 2 };

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

static int cancelled(const co_etcd_local *e)
{
	return e->opts.cancel != NULL && *e->opts.cancel != 0;
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

/* Send sig, then SIGKILL if it does not go away in time; reaps. */
static void terminate(pid_t pid, int sig, int timeout_ms)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	if (!wait_bounded(pid, timeout_ms)) {
		kill(pid, SIGKILL);
		wait_bounded(pid, timeout_ms);
	}
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rmrf(const char *path)
{
	/* Our paths are always <dir>/..., never empty or the root. */
	if (path[0] == '\0' || strcmp(path, "/") == 0)
		return;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- ports and a raw HTTP probe ---- */

/* A port nobody listens on now: bind 127.0.0.1:0 and read it back. */
static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
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
	if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n)
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
 * READY when the etcd answering on e->client_port is ours (its member list
 * holds our peer URL) and has a leader, GONE when nothing useful answers
 * yet, FOREIGN when someone else's etcd answers on that port.
 */
static int member_answers(const co_etcd_local *e)
{
	char buf[8192], peer[64];

	if (http_post(buf, sizeof(buf), e->client_port, "/v3/cluster/member/list", "{}") <
	    0)
		return GONE;
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strstr(buf, " 200 ") == NULL)
		return GONE;
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", e->peer_port);
	if (strstr(buf, peer) == NULL)
		return FOREIGN;
	/*
	 * The member list answers before a leader exists.  Status says who
	 * leads ("leader" is omitted while it is 0), and unlike a range it
	 * needs no credentials once a test has enabled auth.
	 */
	if (http_post(buf, sizeof(buf), e->client_port, "/v3/maintenance/status", "{}") <
	    0)
		return GONE;
	if (strstr(buf, " 200 ") == NULL || strstr(buf, "\"leader\":\"") == NULL)
		return GONE;
	return READY;
}

/* ---- the process ---- */

/* fork + exec etcd on e's ports and data dir; sets e->pid. */
static int spawn(co_etcd_local *e)
{
	const co_etcd_local_opts *o = &e->opts;
	char client[64], peer[64], cluster[160], hb[16], el[16];
	char *argv[32];
	int logfd, argc = 0;
	pid_t parent = getpid(), pid;

	snprintf(client, sizeof(client), "http://127.0.0.1:%d", e->client_port);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", e->peer_port);
	snprintf(cluster, sizeof(cluster), "%s=%s", o->name, peer);
	snprintf(hb, sizeof(hb), "%d", o->heartbeat_ms);
	snprintf(el, sizeof(el), "%d", o->election_ms);
	if ((logfd = open(e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
		return co_error_set(CO_EIO, "%s: %s", e->log, strerror(errno));

	argv[argc++] = "etcd";
	argv[argc++] = "--name";
	argv[argc++] = (char *)o->name;
	argv[argc++] = "--data-dir";
	argv[argc++] = e->data;
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
	argv[argc++] = hb;
	argv[argc++] = "--election-timeout";
	argv[argc++] = el;
	if (o->logger) {
		argv[argc++] = "--logger";
		argv[argc++] = (char *)o->logger;
	}
	if (o->log_level) {
		argv[argc++] = "--log-level";
		argv[argc++] = (char *)o->log_level;
	}
	argv[argc] = NULL;

	if ((pid = fork()) < 0) {
		close(logfd);
		return co_error_set(CO_EUNAVAIL, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		/* Die with our parent even if it is SIGKILLed ... */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		/* ... but, if asked, not with a ^C meant for it (it stops us in order).
		 */
		if (o->own_process_group)
			setpgid(0, 0);
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

/* Poll e until it is ready; *out READY, GONE (died, timed out, cancelled) or FOREIGN. */
static int wait_ready(int *out, co_etcd_local *e)
{
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	const char *eps[1];
	co_store *s = NULL;
	int64_t end = now_ms() + e->opts.ready_timeout_ms;
	int status, r = GONE, error = 0;

	if (e->opts.ready == CO_ETCD_LOCAL_READY_STORE_PING) {
		eps[0] = e->endpoint;
		eo.endpoints = eps;
		eo.n_endpoints = 1;
		eo.connect_timeout_ms = 200;
		eo.request_timeout_ms = 1000;
		if ((error = co_etcd_store_open(&s, &eo)) < 0)
			goto done;
	}
	while (!cancelled(e)) {
		if (s != NULL)
			r = co_store_ping(s) == 0 ? READY : GONE;
		else
			r = member_answers(e);
		if (r != GONE)
			break;
		if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
			e->pid = 0;
			break;
		}
		if (now_ms() >= end)
			break;
		sleep_ms(POLL_MS);
	}
	*out = r;
done:
	co_store_free(s);
	return error;
}

/* Copy o into e and derive the paths; CO_EINVAL for bad options. */
static int setup(co_etcd_local *e, const co_etcd_local_opts *o)
{
	size_t n;

	memset(e, 0, sizeof(*e));
	if (o == NULL || o->dir == NULL || o->dir[0] == '\0')
		return co_error_set(CO_EINVAL, "local etcd: no directory given");
	if (o->data_name == NULL || o->data_name[0] == '\0' ||
	    strchr(o->data_name, '/') != NULL || strcmp(o->data_name, ".") == 0 ||
	    strcmp(o->data_name, "..") == 0)
		return co_error_set(CO_EINVAL, "local etcd: bad data dir name \"%s\"",
				    o->data_name ? o->data_name : "(null)");
	if (o->name == NULL || o->name[0] == '\0' || strlen(o->name) > 64)
		return co_error_set(CO_EINVAL, "local etcd: bad member name");
	if (o->heartbeat_ms <= 0 || o->election_ms <= 0 || o->ready_timeout_ms <= 0 ||
	    o->attempts <= 0 || o->stop_timeout_ms <= 0)
		return co_error_set(CO_EINVAL,
				    "local etcd: timeouts and attempts must be "
				    "positive");
	e->opts = *o;
	n = (size_t)snprintf(e->dir, sizeof(e->dir), "%s", o->dir);
	if (n >= sizeof(e->dir) ||
	    (size_t)snprintf(e->data, sizeof(e->data), "%s/%s", o->dir, o->data_name) >=
		sizeof(e->data) ||
	    (size_t)snprintf(e->log, sizeof(e->log), "%s/etcd.log", o->dir) >=
		sizeof(e->log)) {
		e->dir[0] = e->data[0] = e->log[0] = '\0';
		return co_error_set(CO_EINVAL, "local etcd: %s: path too long", o->dir);
	}
	/* The caller's dir string may be on its stack: keep our copy. */
	e->opts.dir = e->dir;
	return 0;
}

/* ---- public ---- */

int co_etcd_local_start(co_etcd_local *e, const co_etcd_local_opts *o)
{
	int attempt, seen, error;

	if ((error = setup(e, o)) < 0)
		return error;
	for (attempt = 0; attempt < o->attempts && !cancelled(e); attempt++) {
		e->client_port = free_port();
		e->peer_port = free_port();
		if (e->client_port <= 0 || e->peer_port <= 0 ||
		    e->client_port == e->peer_port)
			continue;
		snprintf(e->endpoint, sizeof(e->endpoint), "http://127.0.0.1:%d",
			 e->client_port);
		/* A failed attempt may have left a half-initialised data dir. */
		rmrf(e->data);
		if ((error = spawn(e)) < 0 || (error = wait_ready(&seen, e)) < 0)
			goto done;
		if (seen == READY)
			return 0;
		terminate(e->pid, SIGKILL, e->opts.stop_timeout_ms);
		e->pid = 0;
	}
	if (cancelled(e))
		error = co_error_set(CO_EUNAVAIL, "interrupted while starting etcd");
	else
		error = co_error_set(CO_EUNAVAIL,
				     "etcd did not start on 127.0.0.1 (is `etcd` in "
				     "PATH?); see %s",
				     e->log);
done:
	terminate(e->pid, SIGKILL, e->opts.stop_timeout_ms);
	e->pid = 0;
	return error;
}

void co_etcd_local_stop(co_etcd_local *e)
{
	if (e == NULL)
		return;
	terminate(e->pid, SIGTERM, e->opts.stop_timeout_ms);
	e->pid = 0;
	if (e->opts.remove_dir_on_stop && e->dir[0]) {
		rmrf(e->dir);
		e->dir[0] = e->data[0] = e->log[0] = '\0';
	}
}

void co_etcd_local_kill(co_etcd_local *e)
{
	if (e == NULL)
		return;
	terminate(e->pid, SIGKILL, e->opts.stop_timeout_ms);
	e->pid = 0;
}

int co_etcd_local_restart(co_etcd_local *e)
{
	int64_t end;
	int seen, error;

	if (e == NULL || e->data[0] == '\0' || e->client_port <= 0)
		return co_error_set(CO_EINVAL, "local etcd: restart of an etcd never "
					       "started or already removed");
	co_etcd_local_kill(e);
	/*
	 * The old process released its ports when it died, but a fresh bind
	 * may briefly fail; retry the spawn (same ports, same data) while
	 * etcd exits early, bounded.
	 */
	end = now_ms() + e->opts.ready_timeout_ms;
	while (now_ms() < end && !cancelled(e)) {
		if ((error = spawn(e)) < 0 || (error = wait_ready(&seen, e)) < 0) {
			co_etcd_local_kill(e);
			return error;
		}
		if (seen == READY)
			return 0;
		co_etcd_local_kill(e);
		sleep_ms(RESTART_PAUSE_MS);
	}
	return co_error_set(CO_EUNAVAIL, "etcd did not restart on %s; see %s",
			    e->endpoint, e->log);
}
