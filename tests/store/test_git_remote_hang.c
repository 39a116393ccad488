/*
 * test_git_remote_hang.c - a URL repo whose server stops answering fails
 * fast (issue 20 point 5): every fetch and push of the git store is bounded
 * by its remote timeout (src/store/git_stream.c), a call that ran out is
 * CO_EUNAVAIL saying so, the store's breaker counts it and opens, and its
 * probe closes it again once the server answers.
 *
 * Real parts: `git daemon` serving a bare repo on a free loopback port,
 * SIGSTOPped and SIGCONTed by its pid (its process group: the daemon and
 * its per-connection children), and a socket that listens and never
 * answers.  No timing assertions: each case asserts the error, the
 * breaker's state and what the server's repo holds; the bound only keeps
 * the test short.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "router/router.h"
#include "store/breaker.h"
#include "store/etcd_store.h"
#include "store/git_store.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 2000 /* the store's remote timeout in these tests */

/* ---- a real `git daemon` (as in test_git_store.c) ---- */

typedef struct git_daemon {
	pid_t pid;
	int port;
	int stopped;
	char base[256];
	char repo[300];
	char url[320];
} git_daemon;

/*
 * A socket listening on a free loopback port that never accepts: the
 * kernel completes the handshake for its backlog, so the port accepts and
 * nothing ever answers.  Its fd (port into *port), or -1.
 */
static int listen_any(int *port)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 &&
	    (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0 ||
	     getsockname(fd, (struct sockaddr *)&a, &len) != 0)) {
		close(fd);
		fd = -1;
	}
	*port = fd >= 0 ? ntohs(a.sin_port) : -1;
	return fd;
}

static int free_port(void)
{
	int port, fd = listen_any(&port);

	if (fd >= 0)
		close(fd);
	return port;
}

static int connect_port(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int port_answers(int port)
{
	int fd = connect_port(port);

	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static void daemon_thaw(git_daemon *d)
{
	if (d->pid > 0 && d->stopped)
		kill(-d->pid, SIGCONT);
	d->stopped = 0;
}

/* SIGSTOP the daemon and its children; wait until the kernel says so. */
static int daemon_freeze(git_daemon *d)
{
	if (d->pid <= 0 || kill(-d->pid, SIGSTOP) != 0)
		return -1;
	d->stopped = 1;
	return co_test_wait_stopped(d->pid);
}

static void daemon_stop(git_daemon *d)
{
	daemon_thaw(d);
	if (d->pid > 0) {
		kill(-d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	if (d->base[0])
		co_test_rmrf(d->base);
	d->base[0] = '\0';
}

static int daemon_start(git_daemon *d)
{
	int attempt, i;

	memset(d, 0, sizeof(*d));
	if (co_test_tmpdir(d->base, sizeof(d->base)) < 0 ||
	    co_test_sh(NULL, NULL, "git init --bare -q -b main '%s/r.git'", d->base) != 0)
		return -1;
	snprintf(d->repo, sizeof(d->repo), "%s/r.git", d->base);
	for (attempt = 0; attempt < 5; attempt++) {
		char bp[300], pp[32];

		if ((d->port = free_port()) <= 0)
			continue;
		snprintf(bp, sizeof(bp), "--base-path=%s", d->base);
		snprintf(pp, sizeof(pp), "--port=%d", d->port);
		if ((d->pid = fork()) < 0)
			return -1;
		if (d->pid == 0) {
			int null = open("/dev/null", O_RDWR);

			if (null >= 0) {
				dup2(null, 1);
				dup2(null, 2);
			}
			setpgid(0, 0);
			execlp("git", "git", "daemon", "--enable=receive-pack",
			       "--export-all", "--reuseaddr", bp, pp,
			       "--listen=127.0.0.1", (char *)NULL);
			_exit(127);
		}
		setpgid(d->pid, d->pid);
		for (i = 0; i < 500; i++) {
			struct timespec ts = {0, 10 * 1000 * 1000};

			if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
				d->pid = 0;
				break;
			}
			if (port_answers(d->port)) {
				snprintf(d->url, sizeof(d->url),
					 "git://127.0.0.1:%d/r.git", d->port);
				return 0;
			}
			nanosleep(&ts, NULL);
		}
		if (d->pid > 0) {
			kill(-d->pid, SIGKILL);
			waitpid(d->pid, NULL, 0);
			d->pid = 0;
		}
	}
	daemon_stop(d);
	return -1;
}

/* ---- the store ---- */

static int open_remote(co_store **out, const char *url, const char *cache)
{
	co_git_opts o = CO_GIT_OPTS_INIT;
	co_breaker_opts bo = CO_BREAKER_OPTS_INIT;
	int error;

	o.repo = url;
	o.cache_dir = cache;
	o.poll_interval_ms = 50;
	o.remote_timeout_ms = TIMEOUT_MS;
	if ((error = co_git_store_open(out, &o)) < 0)
		return error;
	bo.probe_ms = 100; /* probes come quickly: the test waits for one */
	bo.probe_max_ms = 200;
	return co_store_breaker_configure(*out, &bo);
}

static co_record *new_task(const char *id)
{
	co_record *r = NULL;

	assert_int_equal(co_record_new(&r, CO_KIND_TASK, id), 0);
	r->type = strdup("build");
	assert_non_null(r->type);
	return r;
}

static int create_task(co_store *s, const char *id)
{
	co_record *t = new_task(id), *out = NULL;
	int error = co_store_task_create(&out, s, t);

	co_record_free(out);
	co_record_free(t);
	return error;
}

/* The branch head on the server's repo, into out (41 bytes). */
static void server_head(const char *repo, char *out)
{
	char *o = NULL;

	assert_int_equal(co_test_sh(&o, NULL, "git --git-dir='%s' rev-parse main", repo),
			 0);
	snprintf(out, 41, "%s", o);
	free(o);
}

static co_breaker_state breaker_state(co_store *s)
{
	co_breaker_info bi;

	co_store_breaker_get(&bi, s);
	return bi.state;
}

static void assert_error_has(const char *want)
{
	if (!strstr(co_error_last(), want))
		fail_msg("error \"%s\" lacks \"%s\"", co_error_last(), want);
}

/* Bounded wait for the breaker's probe to find the server back: calls are
 * refused at once until a probe is due, then the probe closes it. */
static int wait_until_answers(co_store *s)
{
	co_record *r = NULL;
	int i, error = CO_EUNAVAIL;

	for (i = 0; i < 400 && error == CO_EUNAVAIL; i++) {
		struct timespec ts = {0, 25 * 1000 * 1000};

		error = co_store_get(&r, s, CO_KIND_TASK, "T1");
		co_record_free(r);
		r = NULL;
		if (error == CO_EUNAVAIL)
			nanosleep(&ts, NULL);
	}
	return error;
}

typedef struct fixture {
	git_daemon d;
	char cache[256];
	co_store *s;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f || daemon_start(&f->d) < 0 ||
	    co_test_tmpdir(f->cache, sizeof(f->cache)) < 0)
		return -1;
	if (open_remote(&f->s, f->d.url, f->cache) < 0) {
		fprintf(stderr, "open remote: %s\n", co_error_last());
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	if (!f)
		return 0;
	co_store_free(f->s);
	if (f->cache[0])
		co_test_rmrf(f->cache);
	daemon_stop(&f->d);
	free(f);
	return 0;
}

/* ---- tests ---- */

static void stopped_daemon_fails_fast_opens_the_breaker_and_recovers(void **state)
{
	fixture *f = *state;
	co_store *s = f->s;
	co_record *r = NULL;
	char before[41], after[41];
	char *out = NULL;

	if (create_task(s, "T1") != 0)
		fail_msg("create with the daemon healthy: %s", co_error_last());
	server_head(f->d.repo, before);
	assert_int_equal(breaker_state(s), CO_BREAKER_CLOSED);

	assert_int_equal(daemon_freeze(&f->d), 0);

	/* a read: the fetch before it gets no answer */
	assert_int_equal(co_store_get(&r, s, CO_KIND_TASK, "T1"), CO_EUNAVAIL);
	assert_null(r);
	assert_error_has("fetch: no answer in 2.0 s");
	assert_error_has(f->d.url);
	assert_int_equal(co_store_last_call_refused(), 0); /* it went out */

	/* writes: refused, not acknowledged */
	assert_int_equal(create_task(s, "T2"), CO_EUNAVAIL);
	assert_error_has("no answer in 2.0 s");
	assert_int_equal(co_store_claim(&r, s, "T1", "swarm-a", 0), CO_EUNAVAIL);
	co_record_free(r);
	r = NULL;

	/* three failures in a row: open, and calls fail at once, unsent */
	assert_int_equal(breaker_state(s), CO_BREAKER_OPEN);
	assert_int_equal(create_task(s, "T3"), CO_EUNAVAIL);
	assert_int_equal(co_store_last_call_refused(), 1);
	assert_error_has("git circuit open since");
	assert_error_has("no answer in 2.0 s"); /* why it opened */

	/* nothing of the refused writes reached the server */
	daemon_thaw(&f->d);
	server_head(f->d.repo, after);
	assert_string_equal(before, after);
	assert_int_equal(co_test_sh(NULL, NULL,
				    "git --git-dir='%s' fsck --strict --no-progress",
				    f->d.repo),
			 0);

	/* the probe finds it back and closes the breaker; writes work */
	assert_int_equal(wait_until_answers(s), 0);
	assert_int_equal(breaker_state(s), CO_BREAKER_CLOSED);
	if (create_task(s, "T2") != 0)
		fail_msg("create after SIGCONT: %s", co_error_last());
	assert_int_equal(co_store_claim(&r, s, "T1", "swarm-a", 0), 0);
	co_record_free(r);
	assert_int_equal(co_test_sh(&out, NULL,
				    "git --git-dir='%s' ls-tree --name-only main tasks/",
				    f->d.repo),
			 0);
	assert_string_equal(out, "tasks/T1.json\ntasks/T2.json\n");
	free(out);
	assert_int_equal(co_test_sh(NULL, NULL,
				    "git --git-dir='%s' fsck --strict --no-progress",
				    f->d.repo),
			 0);
}

static void listener_that_never_answers_fails_within_the_bound(void **state)
{
	char cache[256], url[128];
	int port;
	co_store *s = NULL;
	co_record *r = NULL;
	int fd, i;

	(void)state;
	fd = listen_any(&port);
	assert_true(fd >= 0);
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/r.git", port);
	assert_int_equal(co_test_tmpdir(cache, sizeof(cache)), 0);
	assert_int_equal(open_remote(&s, url, cache), 0);

	assert_int_equal(co_store_ping(s), CO_EUNAVAIL);
	assert_error_has("fetch: no answer in 2.0 s");
	assert_int_equal(co_store_get(&r, s, CO_KIND_TASK, "T1"), CO_EUNAVAIL);
	assert_int_equal(create_task(s, "T1"), CO_EUNAVAIL);
	assert_error_has("no answer in 2.0 s");
	assert_int_equal(breaker_state(s), CO_BREAKER_OPEN);
	for (i = 0; i < 3; i++) {
		assert_int_equal(create_task(s, "T1"), CO_EUNAVAIL);
		assert_int_equal(co_store_last_call_refused(), 1);
	}
	co_store_free(s);
	co_test_rmrf(cache);
	close(fd);
}

/*
 * http:// and https:// go through the same bounded stream: libgit2 1.5's
 * HTTP client opens it for http, and its TLS stream (mbedTLS on Debian)
 * wraps it for https, so a handshake that gets no answer is bounded too.
 */
static void http_and_https_to_a_silent_listener_are_bounded(void **state)
{
	static const char *const schemes[] = {"http", "https"};
	char cache[256], url[128];
	int port;
	co_store *s = NULL;
	int fd;

	(void)state;
	fd = listen_any(&port);
	assert_true(fd >= 0);
	for (size_t i = 0; i < 2; i++) {
		snprintf(url, sizeof(url), "%s://127.0.0.1:%d/r.git", schemes[i], port);
		assert_int_equal(co_test_tmpdir(cache, sizeof(cache)), 0);
		assert_int_equal(open_remote(&s, url, cache), 0);
		assert_int_equal(co_store_ping(s), CO_EUNAVAIL);
		assert_error_has("fetch: no answer in 2.0 s");
		assert_error_has(url);
		co_store_free(s);
		co_test_rmrf(cache);
	}
	close(fd);
}

/* Callers queued behind a call that found the server silent fail with it,
 * not one bound after another: one connection for all of them. */
#define NQUEUED 8

typedef struct queued {
	co_store *s;
	pthread_barrier_t *go;
	int error;
	char msg[512];
} queued;

static void *queued_get(void *arg)
{
	queued *q = arg;
	co_record *r = NULL;

	pthread_barrier_wait(q->go);
	q->error = co_store_get(&r, q->s, CO_KIND_TASK, "T1");
	snprintf(q->msg, sizeof(q->msg), "%s", co_error_last());
	co_record_free(r);
	return NULL;
}

static void callers_queued_on_a_silent_server_fail_together(void **state)
{
	co_git_opts o = CO_GIT_OPTS_INIT;
	char cache[256], url[128];
	co_store *s = NULL;
	pthread_t th[NQUEUED];
	queued q[NQUEUED];
	pthread_barrier_t go;
	int fd, c, i, port, conns = 0, waited = 0;

	(void)state;
	fd = listen_any(&port);
	assert_true(fd >= 0);
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/r.git", port);
	assert_int_equal(co_test_tmpdir(cache, sizeof(cache)), 0);
	o.repo = url;
	o.cache_dir = cache;
	o.remote_timeout_ms = 3000; /* every thread is queued long before */
	assert_int_equal(co_git_store_open(&s, &o), 0);

	pthread_barrier_init(&go, NULL, NQUEUED);
	for (i = 0; i < NQUEUED; i++) {
		q[i].s = s;
		q[i].go = &go;
		assert_int_equal(pthread_create(&th[i], NULL, queued_get, &q[i]), 0);
	}
	for (i = 0; i < NQUEUED; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(q[i].error, CO_EUNAVAIL);
		waited += strstr(q[i].msg, "while this call waited its turn") != NULL;
	}
	pthread_barrier_destroy(&go);
	assert_true(waited > 0);

	/* the connections made, still in the listener's queue */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while ((c = accept(fd, NULL, NULL)) >= 0) {
		conns++;
		close(c);
	}
	assert_int_equal(conns, 1);
	co_store_free(s);
	co_test_rmrf(cache);
	close(fd);
}

/* ---- a proxy that passes fetches and holds pushes unanswered ---- */

/*
 * Between the store and the daemon: each connection's first pkt-line names
 * the service; git-upload-pack (a fetch) is passed through both ways,
 * git-receive-pack (a push) is held open and never answered while
 * hold_push is set.  So a write's fetch works and its push hangs.
 */
#define PROXY_MAX 64

typedef struct proxy {
	int lfd, port, daemon_port;
	atomic_int hold_push;
	pthread_t th;
	pthread_t fwd[PROXY_MAX];
	int nfwd;
	int held[PROXY_MAX];
	int nheld;
	atomic_int held_total;
} proxy;

typedef struct pipe_pair {
	int a, b;
	char first[1024];
	size_t nfirst;
} pipe_pair;

static void *pipe_main(void *arg)
{
	pipe_pair *p = arg;
	struct pollfd pf[2] = {{p->a, POLLIN, 0}, {p->b, POLLIN, 0}};
	char buf[16384];
	int i;

	if (write(p->b, p->first, p->nfirst) != (ssize_t)p->nfirst)
		goto done;
	for (;;) {
		if (poll(pf, 2, -1) < 0)
			break;
		for (i = 0; i < 2; i++) {
			ssize_t n;

			if (!pf[i].revents)
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n <= 0 || write(pf[1 - i].fd, buf, (size_t)n) != n)
				goto done;
		}
	}
done:
	close(p->a);
	close(p->b);
	free(p);
	return NULL;
}

static void *proxy_main(void *arg)
{
	proxy *x = arg;

	for (;;) {
		int c = accept(x->lfd, NULL, NULL);
		pipe_pair *p;
		ssize_t n;

		if (c < 0)
			break; /* shut down */
		if ((p = calloc(1, sizeof(*p))) == NULL) {
			close(c);
			continue;
		}
		/* the request line: git sends it in one write */
		n = read(c, p->first, sizeof(p->first));
		p->nfirst = n > 0 ? (size_t)n : 0;
		if (n > 0 && atomic_load(&x->hold_push) &&
		    memmem(p->first, p->nfirst, "git-receive-pack", 16) &&
		    x->nheld < PROXY_MAX) {
			x->held[x->nheld++] = c; /* never answered */
			atomic_fetch_add(&x->held_total, 1);
			free(p);
			continue;
		}
		p->a = c;
		if (n <= 0 || x->nfwd >= PROXY_MAX ||
		    (p->b = connect_port(x->daemon_port)) < 0) {
			close(c);
			free(p);
			continue;
		}
		if (pthread_create(&x->fwd[x->nfwd], NULL, pipe_main, p) != 0) {
			close(p->a);
			close(p->b);
			free(p);
			continue;
		}
		x->nfwd++;
	}
	return NULL;
}

static int proxy_start(proxy *x, int daemon_port)
{
	memset(x, 0, sizeof(*x));
	x->daemon_port = daemon_port;
	if ((x->lfd = listen_any(&x->port)) < 0)
		return -1;
	return pthread_create(&x->th, NULL, proxy_main, x) == 0 ? 0 : -1;
}

/* After every client of it is gone (the store freed). */
static void proxy_stop(proxy *x)
{
	int i;

	shutdown(x->lfd, SHUT_RDWR); /* accept() returns */
	pthread_join(x->th, NULL);
	close(x->lfd);
	for (i = 0; i < x->nheld; i++)
		close(x->held[i]);
	for (i = 0; i < x->nfwd; i++)
		pthread_join(x->fwd[i], NULL);
}

/* A push that gets no answer: CO_EUNAVAIL saying so, the server's branch
 * unchanged, and the write goes through once the server answers again. */
static void push_without_answer_fails_and_changes_nothing(void **state)
{
	fixture *f = *state;
	char cache[256], url[128], before[41], after[41];
	co_store *s = NULL;
	co_record *r = NULL;
	proxy x;

	assert_int_equal(proxy_start(&x, f->d.port), 0);
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/r.git", x.port);
	assert_int_equal(co_test_tmpdir(cache, sizeof(cache)), 0);
	assert_int_equal(open_remote(&s, url, cache), 0);
	assert_int_equal(create_task(s, "T1"), 0);
	server_head(f->d.repo, before);

	atomic_store(&x.hold_push, 1);
	assert_int_equal(create_task(s, "T2"), CO_EUNAVAIL);
	assert_error_has("push: no answer in 2.0 s");
	assert_int_equal(atomic_load(&x.held_total), 1);
	server_head(f->d.repo, after);
	assert_string_equal(before, after);
	assert_int_equal(co_store_get(&r, s, CO_KIND_TASK, "T2"), CO_ENOTFOUND);

	atomic_store(&x.hold_push, 0);
	assert_int_equal(create_task(s, "T2"), 0);
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "T2"),
			 0); /* another mirror */
	co_record_free(r);
	assert_int_equal(co_test_sh(NULL, NULL,
				    "git --git-dir='%s' fsck --strict --no-progress",
				    f->d.repo),
			 0);
	co_store_free(s);
	proxy_stop(&x);
	co_test_rmrf(cache);
}

/* ---- through the router: shadow, git primary, git hung ---- */

static int task_in(co_store *s, const char *id, const char *owner)
{
	co_record *r = NULL;
	int ok;

	if (co_store_get(&r, s, CO_KIND_TASK, id) != 0)
		return 0;
	ok = strcmp(r->owner ? r->owner : "", owner) == 0;
	co_record_free(r);
	return ok;
}

/*
 * In shadow git decides: with its server hung a write is refused (not
 * acknowledged), the intent it left resolves to nothing once git answers,
 * and neither store holds what was refused.
 */
static void shadow_write_with_git_hung_is_not_acknowledged(void **state)
{
	fixture *f = *state;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_test_etcd e;
	const char *eps[1];
	char dir[256], flags_path[320], prefix[64];
	co_store *etcd = NULL;
	co_state *st = NULL;
	co_flags_watcher *fw = NULL;
	co_router *r = NULL;
	co_record *t = NULL, *out = NULL;
	co_flags fl;
	co_stage stage;
	int64_t left = -1;
	int i;

	assert_int_equal(co_test_etcd_start(&e), 0);
	eps[0] = e.endpoint;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	snprintf(prefix, sizeof(prefix), "/hang-%d/", (int)getpid());
	eo.prefix = prefix;
	eo.request_timeout_ms = 2000;
	assert_int_equal(co_etcd_store_open(&etcd, &eo), 0);
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	assert_int_equal(co_state_open(&st, dir), 0);
	snprintf(flags_path, sizeof(flags_path), "%s/flags.yaml", dir);
	co_flags_init(&fl);
	assert_int_equal(co_stage_parse(&stage, "shadow"), 0);
	assert_int_equal(co_stage_apply(&fl, stage), 0);
	assert_int_equal(co_flags_save(&fl, flags_path), 0);
	assert_int_equal(co_flags_watcher_open(&fw, flags_path), 0);
	ro.git = f->s;
	ro.etcd = etcd;
	ro.state = st;
	ro.flags = fw;
	assert_int_equal(co_router_open(&r, &ro), 0);

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, "T1"), 0);
	t->type = strdup("build");
	assert_int_equal(co_router_task_create(&out, r, t), 0);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_router_drain(r, NULL, 5000, &left), 0);

	assert_int_equal(daemon_freeze(&f->d), 0);
	free(t->id);
	t->id = strdup("T2");
	assert_int_equal(co_router_task_create(&out, r, t), CO_EUNAVAIL);
	assert_null(out);
	assert_int_equal(co_router_claim(&out, r, "T1", "swarm-a", 0), CO_EUNAVAIL);
	co_record_free(out);
	out = NULL;
	co_record_free(t);

	daemon_thaw(&f->d);
	assert_int_equal(wait_until_answers(f->s), 0);
	for (i = 0; i < 100 && left != 0; i++)
		co_router_drain(r, NULL, 1000, &left); /* bounded: 100 s at most */
	assert_int_equal(left, 0);
	assert_true(task_in(f->s, "T1", ""));
	assert_true(task_in(etcd, "T1", ""));
	assert_false(task_in(f->s, "T2", ""));
	assert_false(task_in(etcd, "T2", ""));
	assert_int_equal(co_router_claim(&out, r, "T1", "swarm-a", 0), 0);
	co_record_free(out);
	assert_int_equal(co_router_drain(r, NULL, 5000, &left), 0);
	assert_true(task_in(f->s, "T1", "swarm-a"));
	assert_true(task_in(etcd, "T1", "swarm-a"));

	co_router_close(r);
	co_flags_watcher_close(fw);
	co_state_close(st);
	co_store_free(etcd);
	co_test_rmrf(dir);
	co_test_etcd_stop(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		stopped_daemon_fails_fast_opens_the_breaker_and_recovers, setup,
		teardown),
	    cmocka_unit_test(listener_that_never_answers_fails_within_the_bound),
	    cmocka_unit_test(http_and_https_to_a_silent_listener_are_bounded),
	    cmocka_unit_test(callers_queued_on_a_silent_server_fail_together),
	    cmocka_unit_test_setup_teardown(push_without_answer_fails_and_changes_nothing,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		shadow_write_with_git_hung_is_not_acknowledged, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
