/*
 * bench_git_hang.c - a hung git remote (issue 20 point 5): how fast the git
 * store's breaker opens once the server stops answering, what a call costs
 * while it is open, and how fast it closes after the server is back.
 *
 * One run, one machine: a real `git daemon` on a free loopback port and a
 * git store on its git:// URL with the default remote timeout (3 s, or
 * argv[2] ms) and the default breaker (3 failures, probe after 1 s):
 *   (1) N reads with the daemon healthy (each one a fetch): the baseline;
 *   (2) the daemon SIGSTOPped (its process group) with C clients reading
 *       in a loop: time from the freeze until the breaker is open, and the
 *       longest any one call took meanwhile;
 *   (3) N reads while open: refused at once;
 *   (4) SIGCONT with the clients still reading: time until the breaker is
 *       closed again.
 * Prints the figures and the ratio (3)/(1).  Usage:
 *   bench_git_hang [N [timeout_ms [C]]]     defaults 200, 3000, 8
 */
#include "bench_util.h"

#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "store/breaker.h"
#include "store/git_store.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t daemon_pid;
static char daemon_base[256];

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int port_answers(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* A bare repo served read-write; its git:// URL into url.  0 / -1. */
static int daemon_start(char *url, size_t len)
{
	char bp[300], pp[32];
	int port, i;

	if (co_test_tmpdir(daemon_base, sizeof(daemon_base)) < 0 ||
	    co_test_sh(NULL, NULL, "git init --bare -q -b main '%s/r.git'",
		       daemon_base) != 0 ||
	    (port = free_port()) <= 0)
		return -1;
	snprintf(bp, sizeof(bp), "--base-path=%s", daemon_base);
	snprintf(pp, sizeof(pp), "--port=%d", port);
	if ((daemon_pid = fork()) < 0)
		return -1;
	if (daemon_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		setpgid(0, 0);
		execlp("git", "git", "daemon", "--enable=receive-pack", "--export-all",
		       "--reuseaddr", bp, pp, "--listen=127.0.0.1", (char *)NULL);
		_exit(127);
	}
	setpgid(daemon_pid, daemon_pid);
	for (i = 0; i < 500; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		if (port_answers(port)) {
			snprintf(url, len, "git://127.0.0.1:%d/r.git", port);
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void daemon_stop(void)
{
	if (daemon_pid > 0) {
		kill(-daemon_pid, SIGCONT);
		kill(-daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
	}
	if (daemon_base[0])
		co_test_rmrf(daemon_base);
}

static co_store *store;
static atomic_int clients_stop;
static _Atomic double longest_us;

static co_breaker_state breaker(void)
{
	co_breaker_info bi;

	co_store_breaker_get(&bi, store);
	return bi.state;
}

static void *client_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&clients_stop)) {
		co_record *r = NULL;
		double t0 = co_bench_now_us(), d;
		double cur = atomic_load(&longest_us);

		co_store_get(&r, store, CO_KIND_TASK, "T1");
		co_record_free(r);
		d = co_bench_now_us() - t0;
		while (d > cur && !atomic_compare_exchange_weak(&longest_us, &cur, d))
			;
		if (co_store_last_call_refused()) {
			struct timespec q = {0, 1000000L}; /* a client backing off */

			nanosleep(&q, NULL);
		}
	}
	return NULL;
}

/* Wait (bounded, 120 s) until the breaker is `want`; ms it took, or -1. */
static double wait_breaker(co_breaker_state want, double t0)
{
	struct timespec q = {0, 1000000L};

	while (breaker() != want) {
		if (co_bench_now_us() - t0 > 120e6)
			return -1;
		nanosleep(&q, NULL);
	}
	return (co_bench_now_us() - t0) / 1000.0;
}

static int reads(co_bench_series *s, size_t n, int expect)
{
	for (size_t i = 0; i < n; i++) {
		co_record *r = NULL;
		double t0 = co_bench_now_us();
		int error = co_store_get(&r, store, CO_KIND_TASK, "T1");

		co_bench_series_add(s, co_bench_now_us() - t0);
		co_record_free(r);
		if (error != expect) {
			fprintf(stderr, "bench_git_hang: read %zu: %d, not %d: %s\n", i,
				error, expect, co_error_last());
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)atol(argv[1]) : 200;
	int timeout_ms = argc > 2 ? atoi(argv[2]) : 3000;
	int nc = argc > 3 ? atoi(argv[3]) : 8;
	co_git_opts o = CO_GIT_OPTS_INIT;
	co_bench_series healthy, open;
	co_bench_stats h, op;
	char url[128], cache[256];
	co_record *t = NULL, *out = NULL;
	pthread_t th[64];
	double t0, opened, closed;
	int i, rc = 1;

	if (n == 0 || timeout_ms <= 0 || nc <= 0 || nc > 64) {
		fprintf(stderr, "usage: bench_git_hang [N [timeout_ms [C<=64]]]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (daemon_start(url, sizeof(url)) < 0 ||
	    co_test_tmpdir(cache, sizeof(cache)) < 0) {
		fprintf(stderr, "bench_git_hang: setup failed\n");
		daemon_stop();
		return 1;
	}
	o.repo = url;
	o.cache_dir = cache;
	o.remote_timeout_ms = timeout_ms;
	if (co_git_store_open(&store, &o) < 0 ||
	    co_record_new(&t, CO_KIND_TASK, "T1") < 0 ||
	    (t->type = strdup("build")) == NULL ||
	    co_store_task_create(&out, store, t) < 0) {
		fprintf(stderr, "bench_git_hang: open: %s\n", co_error_last());
		goto done;
	}
	co_bench_series_init(&healthy, "healthy read", n);
	co_bench_series_init(&open, "read, breaker open", n);
	printf("bench_git_hang: %s, remote timeout %d ms, %zu reads per series, %d "
	       "clients\n",
	       url, timeout_ms, n, nc);

	if (reads(&healthy, n, 0) < 0)
		goto series;
	for (i = 0; i < nc; i++)
		pthread_create(&th[i], NULL, client_main, NULL);
	t0 = co_bench_now_us();
	if (kill(-daemon_pid, SIGSTOP) != 0 || co_test_wait_stopped(daemon_pid) < 0)
		goto join;
	opened = wait_breaker(CO_BREAKER_OPEN, t0);
	atomic_store(&clients_stop, 1);
	for (i = 0; i < nc; i++)
		pthread_join(th[i], NULL);
	printf("\n(2) SIGSTOP, %d clients: breaker open %.0f ms after the freeze; the "
	       "longest call took %.0f ms\n",
	       nc, opened, atomic_load(&longest_us) / 1000.0);

	if (reads(&open, n, CO_EUNAVAIL) < 0)
		goto series;
	co_bench_header();
	h = co_bench_row(&healthy);
	op = co_bench_row(&open);
	printf("(3)/(1) open / healthy: p50 %.4fx, p95 %.4fx\n", op.p50 / h.p50,
	       op.p95 / h.p95);

	atomic_store(&clients_stop, 0);
	for (i = 0; i < nc; i++)
		pthread_create(&th[i], NULL, client_main, NULL);
	t0 = co_bench_now_us();
	kill(-daemon_pid, SIGCONT);
	closed = wait_breaker(CO_BREAKER_CLOSED, t0);
	printf("\n(4) SIGCONT: breaker closed after %.0f ms\n", closed);
	rc = opened >= 0 && closed >= 0 ? 0 : 1;
join:
	atomic_store(&clients_stop, 1);
	for (i = 0; i < nc; i++)
		pthread_join(th[i], NULL);
series:
	co_bench_series_free(&healthy);
	co_bench_series_free(&open);
done:
	co_record_free(t);
	co_record_free(out);
	co_store_free(store);
	daemon_stop();
	co_test_rmrf(cache);
	return rc;
}
