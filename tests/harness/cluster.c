/*
 * cluster.c - a real 3-member etcd cluster on loopback (cluster.h).
 *
 * The single etcd of harness.c is a co_etcd_local; that module deliberately
 * stops at one member, so the cluster is started here, the same way: free
 * loopback ports found by binding 127.0.0.1:0, a fresh temp dir, etcd
 * forked with PR_SET_PDEATHSIG so that a crashed test leaves nothing
 * behind, and an atexit handler that SIGKILLs what a failed test left
 * running.  Short election settings (heartbeat 50 ms, election 500 ms)
 * keep a failover well under a second while a loaded 2-core machine
 * does not elect spuriously.
 *
 * Readiness is polled with a bound, never slept for: each member's
 * /v3/maintenance/status names the leader ("leader") and the member
 * itself ("header.member_id"); the cluster has a leader when a majority
 * of the running, unfrozen members name the same one and that one is
 * itself running and unfrozen.  At the first start each member's member
 * list must also hold our three peer URLs, so that an etcd of another
 * test program that took one of "our" ports is not mistaken for ours.
 *
 * Not here: TLS, auth, membership changes (add/remove member).
 */
#include "harness/cluster.h"

#include "harness/harness.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_ATTEMPTS 3
#define READY_MS 20000
#define POLL_MS 20
#define STATUS_MS 300 /* a frozen member must not hold a poll up */

/* ---- registry of running clusters, emptied at exit ---- */

#define LIVE_MAX 8
static co_test_cluster *live[LIVE_MAX];
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;

static void kill_member(co_test_member *m)
{
	int status;

	if (m->pid <= 0)
		return;
	kill(m->pid, SIGKILL);
	while (waitpid(m->pid, &status, 0) < 0 && errno == EINTR)
		;
	m->pid = 0;
	m->frozen = 0;
}

static void live_cleanup(void)
{
	size_t i;
	int k;

	pthread_mutex_lock(&live_lock);
	for (i = 0; i < LIVE_MAX; i++) {
		if (live[i] == NULL)
			continue;
		for (k = 0; k < CO_TEST_CLUSTER_N; k++)
			kill_member(&live[i]->m[k]);
		if (live[i]->dir[0])
			co_test_rmrf(live[i]->dir);
		live[i] = NULL;
	}
	pthread_mutex_unlock(&live_lock);
}

static void live_init(void)
{
	atexit(live_cleanup);
}

static void live_set(co_test_cluster *c, int on)
{
	size_t i;

	pthread_once(&live_once, live_init);
	pthread_mutex_lock(&live_lock);
	for (i = 0; i < LIVE_MAX; i++)
		if (live[i] == c)
			live[i] = NULL;
	for (i = 0; on && i < LIVE_MAX; i++)
		if (live[i] == NULL) {
			live[i] = c;
			break;
		}
	pthread_mutex_unlock(&live_lock);
}

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};

	nanosleep(&ts, NULL); /* a poll's interval, not a synchronisation */
}

/* A port nobody listens on now: bind 127.0.0.1:0 (as etcd_local.c does). */
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

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
	char *buf = ud;
	size_t have = strlen(buf), add = size * n;

	if (have + add >= 4096)
		add = 4095 - have;
	memcpy(buf + have, p, add);
	buf[have + add] = '\0';
	return size * n;
}

/* POST {} to path on member m; its JSON answer, or NULL (no answer in time). */
static cJSON *post(const co_test_member *m, const char *path)
{
	char url[128], body[4096] = "";
	long http = 0;
	CURL *h = curl_easy_init();
	cJSON *j = NULL;

	if (h == NULL)
		return NULL;
	snprintf(url, sizeof(url), "%s%s", m->endpoint, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)STATUS_MS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	if (curl_easy_perform(h) == CURLE_OK &&
	    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http) == CURLE_OK &&
	    http == 200)
		j = cJSON_Parse(body);
	curl_easy_cleanup(h);
	return j;
}

static const char *str_of(const cJSON *o, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(it) ? it->valuestring : "";
}

/*
 * Member m's own ID and the leader it names (both "" if it does not answer
 * or knows no leader: the gateway omits a zero "leader").
 */
static void status_of(const co_test_member *m, char *self, char *leader, size_t len)
{
	cJSON *j = post(m, "/v3/maintenance/status");

	snprintf(self, len, "%s",
		 str_of(cJSON_GetObjectItemCaseSensitive(j, "header"), "member_id"));
	snprintf(leader, len, "%s", str_of(j, "leader"));
	cJSON_Delete(j);
}

/* 1 if member m's member list holds all of our peer URLs. */
static int ours(const co_test_cluster *c, const co_test_member *m)
{
	cJSON *j = post(m, "/v3/cluster/member/list");
	char *text = j ? cJSON_PrintUnformatted(j) : NULL, peer[64];
	int k, ok = text != NULL;

	for (k = 0; ok && k < CO_TEST_CLUSTER_N; k++) {
		snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", c->m[k].peer_port);
		ok = strstr(text, peer) != NULL;
	}
	free(text);
	cJSON_Delete(j);
	return ok;
}

static int up(const co_test_member *m)
{
	return m->pid > 0 && !m->frozen;
}

/*
 * One look: the leader's index if a majority of the running, unfrozen
 * members name it and it is itself up and not `not`; else -1.  With
 * `need`, member `need` must be among those naming it.
 */
static int leader_now(co_test_cluster *c, int not, int need)
{
	char self[CO_TEST_CLUSTER_N][32], lead[CO_TEST_CLUSTER_N][32];
	int k, j, votes, need_ok;

	for (k = 0; k < CO_TEST_CLUSTER_N; k++) {
		self[k][0] = lead[k][0] = '\0';
		if (up(&c->m[k]))
			status_of(&c->m[k], self[k], lead[k], sizeof(self[k]));
	}
	for (j = 0; j < CO_TEST_CLUSTER_N; j++) {
		if (j == not || !up(&c->m[j]) || !self[j][0])
			continue;
		votes = 0;
		need_ok = need < 0;
		for (k = 0; k < CO_TEST_CLUSTER_N; k++)
			if (lead[k][0] && strcmp(lead[k], self[j]) == 0) {
				votes++;
				if (k == need)
					need_ok = 1;
			}
		if (votes * 2 > CO_TEST_CLUSTER_N && need_ok)
			return j;
	}
	return -1;
}

/* ---- processes ---- */

static int spawn(co_test_cluster *c, int i)
{
	co_test_member *m = &c->m[i];
	char client[64], peer[64], hb[16], el[16];
	char *argv[40];
	int logfd, argc = 0;
	pid_t parent = getpid(), pid;

	snprintf(client, sizeof(client), "http://127.0.0.1:%d", m->client_port);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer_port);
	snprintf(hb, sizeof(hb), "%d", c->heartbeat_ms);
	snprintf(el, sizeof(el), "%d", c->election_ms);
	if ((logfd = open(m->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
		fprintf(stderr, "cluster: %s: %s\n", m->log, strerror(errno));
		return -1;
	}
	argv[argc++] = "etcd";
	argv[argc++] = "--name";
	argv[argc++] = m->name;
	argv[argc++] = "--data-dir";
	argv[argc++] = m->data;
	argv[argc++] = "--listen-client-urls";
	argv[argc++] = client;
	argv[argc++] = "--advertise-client-urls";
	argv[argc++] = client;
	argv[argc++] = "--listen-peer-urls";
	argv[argc++] = peer;
	argv[argc++] = "--initial-advertise-peer-urls";
	argv[argc++] = peer;
	argv[argc++] = "--initial-cluster";
	argv[argc++] = c->initial_cluster;
	argv[argc++] = "--initial-cluster-state"; /* ignored once data exists */
	argv[argc++] = "new";
	argv[argc++] = "--initial-cluster-token";
	argv[argc++] = c->dir + 5; /* "cutover-test-XXXXXX": unique per cluster */
	argv[argc++] = "--heartbeat-interval";
	argv[argc++] = hb;
	argv[argc++] = "--election-timeout";
	argv[argc++] = el;
	argv[argc++] = "--logger";
	argv[argc++] = "zap";
	argv[argc++] = "--log-level";
	argv[argc++] = "warn";
	argv[argc] = NULL;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0) {
		close(logfd);
		fprintf(stderr, "cluster: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

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
	m->pid = pid;
	m->frozen = 0;
	return 0;
}

/* 1 if member i has exited (reaped: pid set to 0). */
static int exited(co_test_cluster *c, int i)
{
	int status;

	if (c->m[i].pid > 0 && waitpid(c->m[i].pid, &status, WNOHANG) == c->m[i].pid) {
		c->m[i].pid = 0;
		return 1;
	}
	return c->m[i].pid <= 0;
}

/* Fresh ports, paths and --initial-cluster for every member. */
static int plan(co_test_cluster *c)
{
	size_t off = 0;
	int k, j;

	for (k = 0; k < CO_TEST_CLUSTER_N; k++) {
		co_test_member *m = &c->m[k];

		m->client_port = free_port();
		m->peer_port = free_port();
		for (j = 0; j < k; j++)
			if (c->m[j].client_port == m->client_port ||
			    c->m[j].peer_port == m->client_port ||
			    c->m[j].client_port == m->peer_port ||
			    c->m[j].peer_port == m->peer_port)
				return -1;
		if (m->client_port <= 0 || m->peer_port <= 0 ||
		    m->client_port == m->peer_port)
			return -1;
		snprintf(m->name, sizeof(m->name), "m%d", k);
		snprintf(m->endpoint, sizeof(m->endpoint), "http://127.0.0.1:%d",
			 m->client_port);
		snprintf(m->data, sizeof(m->data), "%s/%s.data", c->dir, m->name);
		snprintf(m->log, sizeof(m->log), "%s/%s.log", c->dir, m->name);
		c->endpoints[k] = m->endpoint;
		off += (size_t)snprintf(
		    c->initial_cluster + off, sizeof(c->initial_cluster) - off,
		    "%s%s=http://127.0.0.1:%d", k ? "," : "", m->name, m->peer_port);
	}
	return 0;
}

/* Wait until all members are ours and agree on a leader; 0 / -1. */
static int wait_formed(co_test_cluster *c)
{
	int64_t end = now_ms() + READY_MS;
	int k, checked = 0;

	while (now_ms() < end) {
		for (k = 0; k < CO_TEST_CLUSTER_N; k++)
			if (exited(c, k))
				return -1; /* a port was taken: try new ones */
		if (!checked) {
			for (checked = 1, k = 0; k < CO_TEST_CLUSTER_N; k++)
				if (!ours(c, &c->m[k]))
					checked = 0;
		}
		if (checked && leader_now(c, -1, -1) >= 0) {
			/* all three, not only a majority, follow it */
			int l = leader_now(c, -1, -1), all = 1;

			for (k = 0; k < CO_TEST_CLUSTER_N; k++)
				if (l < 0 || leader_now(c, -1, k) != l)
					all = 0;
			if (all)
				return 0;
		}
		pause_ms(POLL_MS);
	}
	return -1;
}

/* ---- public ---- */

int co_test_cluster_start(co_test_cluster *c)
{
	int attempt, k;

	memset(c, 0, sizeof(*c));
	c->heartbeat_ms = 50;
	c->election_ms = 500;
	if (co_test_tmpdir(c->dir, sizeof(c->dir)) < 0)
		return -1;
	live_set(c, 1);
	for (attempt = 0; attempt < START_ATTEMPTS; attempt++) {
		int ok = plan(c) == 0;

		for (k = 0; ok && k < CO_TEST_CLUSTER_N; k++)
			ok = spawn(c, k) == 0;
		if (ok && wait_formed(c) == 0)
			return 0;
		for (k = 0; k < CO_TEST_CLUSTER_N; k++) {
			char *err = NULL;

			kill_member(&c->m[k]);
			co_test_sh(NULL, &err, "rm -rf '%s'", c->m[k].data);
			free(err);
		}
	}
	fprintf(stderr, "cluster: no 3-member etcd cluster formed; see %s/m*.log\n",
		c->dir);
	co_test_cluster_stop(c);
	return -1;
}

void co_test_cluster_stop(co_test_cluster *c)
{
	int k;

	if (c == NULL)
		return;
	for (k = 0; k < CO_TEST_CLUSTER_N; k++)
		kill_member(&c->m[k]); /* SIGKILL works on a stopped process too */
	if (c->dir[0])
		co_test_rmrf(c->dir);
	c->dir[0] = '\0';
	live_set(c, 0);
}

int co_test_cluster_leader(co_test_cluster *c, int not, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	int l;

	for (;;) {
		if ((l = leader_now(c, not, -1)) >= 0)
			return l;
		if (now_ms() >= end)
			return -1;
		pause_ms(POLL_MS);
	}
}

void co_test_cluster_kill(co_test_cluster *c, int i)
{
	kill_member(&c->m[i]);
}

int co_test_cluster_freeze(co_test_cluster *c, int i)
{
	co_test_member *m = &c->m[i];

	if (m->pid <= 0 || kill(m->pid, SIGSTOP) != 0)
		return -1;
	m->frozen = 1;
	if (co_test_wait_stopped(m->pid) < 0) {
		fprintf(stderr, "cluster: %s did not stop\n", m->name);
		return -1;
	}
	return 0;
}

void co_test_cluster_thaw(co_test_cluster *c, int i)
{
	co_test_member *m = &c->m[i];

	if (m->pid > 0)
		kill(m->pid, SIGCONT);
	m->frozen = 0;
}

int co_test_cluster_wait_member(co_test_cluster *c, int i, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (now_ms() < end) {
		if (exited(c, i))
			break;
		if (leader_now(c, -1, i) >= 0)
			return 0;
		pause_ms(POLL_MS);
	}
	fprintf(stderr, "cluster: %s does not follow a leader; see %s\n", c->m[i].name,
		c->m[i].log);
	return -1;
}

int co_test_cluster_restart(co_test_cluster *c, int i)
{
	int64_t end = now_ms() + READY_MS;

	kill_member(&c->m[i]);
	/* Its ports were released when it died, but a fresh bind may briefly
	 * fail: spawn again (same ports, same data) while it exits early. */
	while (now_ms() < end) {
		if (spawn(c, i) < 0)
			return -1;
		if (co_test_cluster_wait_member(c, i, (int)(end - now_ms())) == 0)
			return 0;
		kill_member(&c->m[i]);
		pause_ms(50);
	}
	return -1;
}
