/*
 * test_hostile_http.c - `cutover serve` against clients that mean harm or
 * are broken (issue 16 point 3): slowloris, huge headers and bodies, JSON
 * bombs and huge numbers, invalid UTF-8, path traversal and odd IDs,
 * admin calls without the token, request floods, TLS, loopback by default.
 *
 * The server runs in-process (tests/harness/serve_fixture.h) over a real
 * etcd and a real bare git repo; hostile bytes go over raw sockets, since
 * libcurl would tidy them (dot segments, header syntax), normal clients
 * use libcurl.  Each case checks what the client gets and that nothing
 * reached a store.  What was sent and what came back is printed as
 * "case: ... -> ..." lines: the table of tests/server/README.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/audit.h"
#include "core/config.h"
#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "router/router.h"
#include "server/server.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADMIN "hostile-admin-token"

static co_test_etcd etcd;
static int prefix_seq;

typedef struct fx {
	co_test_serve sv;
	char prefix[64];
} fx;

/* Open a serve with `o`'s limits (endpoint, prefix, stage filled here). */
static void fx_open(fx *f, co_test_serve_opts *o)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->prefix, sizeof(f->prefix), "/ho%d-%d/", (int)getpid(), ++prefix_seq);
	o->endpoint = etcd.endpoint;
	o->prefix = f->prefix;
	o->stage = "shadow"; /* git decides, etcd mirrors: both stores written */
	if (o->token == NULL)
		o->token = ADMIN;
	assert_int_equal(co_test_serve_open(&f->sv, o), 0);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- raw sockets --- */

/* A TCP connection to 127.0.0.1:port from source address `src` (NULL: any). */
static int raw_connect(int port, const char *src)
{
	struct sockaddr_in a;
	struct timeval tv = {5, 0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (src) {
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	}
	/* A send the server stops reading fails after 5 s instead of hanging. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Send what the server takes; 0 if all went, -1 once it refused more. */
static int raw_send(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/*
 * Read until the server closes, `want` appears, or ms pass: what came, in
 * a malloc'd string; *closed set if the server closed (EOF or reset).
 */
static char *raw_read(int fd, int ms, const char *want, int *closed)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	int64_t end = now_ms() + ms;

	assert_non_null(buf);
	buf[0] = '\0';
	*closed = 0;
	while (!(want && strstr(buf, want))) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = end - now_ms();
		ssize_t k;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (len + 4096 + 1 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		k = recv(fd, buf + len, cap - len - 1, 0);
		if (k <= 0) {
			*closed = 1;
			break;
		}
		len += (size_t)k;
		buf[len] = '\0';
	}
	return buf;
}

/* The status of the HTTP answer at the start of buf; 0 if there is none. */
static int raw_status(const char *buf)
{
	int st = 0;

	if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1)
		return 0;
	return st;
}

/* One request as raw bytes on a new connection: the answer's status (0:
 * none), its text into *out (NULL: dropped). */
static int raw_req(const fx *f, const char *bytes, size_t n, char **out)
{
	int fd = raw_connect(f->sv.port, NULL), closed, st;
	char *buf;

	raw_send(fd, bytes, n);
	buf = raw_read(fd, 20000, NULL, &closed);
	close(fd);
	st = raw_status(buf);
	if (out)
		*out = buf;
	else
		free(buf);
	return st;
}

/* GET path over a raw connection (the path sent as is, not normalised). */
static int raw_get(const fx *f, const char *method, const char *path, const char *body)
{
	char req[2048];
	int n =
	    snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, body ? strlen(body) : 0, body ? body : "");

	assert_true(n > 0 && (size_t)n < sizeof(req));
	return raw_req(f, req, (size_t)n, NULL);
}

static long call(const fx *f, const char *method, const char *path, const char *body,
		 size_t len, const char *auth)
{
	co_test_resp r;

	co_test_http(&r, f->sv.base, method, path, body, len, auth);
	free(r.body);
	return r.status;
}

static long post(const fx *f, const char *path, const char *body)
{
	return call(f, "POST", path, body, strlen(body), NULL);
}

/* How many records of `kind` each store holds, summed. */
static size_t stored(const fx *f, co_kind kind)
{
	co_record_list g = {0}, e = {0};
	size_t n;

	assert_int_equal(co_store_list(&g, f->sv.git, kind), 0);
	assert_int_equal(co_store_list(&e, f->sv.etcd, kind), 0);
	n = g.n + e.n;
	co_record_list_clear(&g);
	co_record_list_clear(&e);
	return n;
}

/* Task `id` is in neither store. */
static void assert_absent(const fx *f, const char *id)
{
	co_record *r = NULL;

	assert_int_equal(co_store_get(&r, f->sv.git, CO_KIND_TASK, id), CO_ENOTFOUND);
	assert_int_equal(co_store_get(&r, f->sv.etcd, CO_KIND_TASK, id), CO_ENOTFOUND);
}

static size_t rss_kib(void)
{
	char line[256];
	size_t kib = 0;
	FILE *fp = fopen("/proc/self/status", "r");

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmRSS: %zu kB", &kib) == 1)
			break;
	fclose(fp);
	return kib;
}

/* --- slowloris --- */

#define SLOW_N 200

typedef struct trickle {
	int fds[SLOW_N];
	atomic_int stop;
} trickle;

/* One header byte to every slow connection each 50 ms, never the end of
 * the headers: a slowloris, which an idle timeout alone would never cut. */
static void *trickle_main(void *p)
{
	static const char head[] = "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	trickle *t = p;
	size_t at = 0;
	int i;

	while (!atomic_load(&t->stop)) {
		char c = at < sizeof(head) - 1 ? head[at] : 'a';

		for (i = 0; i < SLOW_N; i++)
			if (t->fds[i] >= 0)
				send(t->fds[i], &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		at++;
		usleep(50 * 1000); /* the attack's pace, not a synchronisation */
	}
	return NULL;
}

/* 1 if the server has closed fd (EOF or reset), reading what it sent. */
static int is_closed(int fd)
{
	char buf[4096];
	struct pollfd p = {fd, POLLIN, 0};

	while (poll(&p, 1, 0) > 0) {
		ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return 1;
		if (k < 0)
			return 0;
	}
	return 0;
}

static void slowloris_does_not_starve_others_and_is_cut(void **state)
{
	co_test_serve_opts o = {0};
	trickle t;
	pthread_t th;
	int i, closed_early = 0, open_left;
	int64_t bound;
	fx f;

	(void)state;
	o.request_timeout_ms = 1500;
	o.max_connections = 64;
	o.max_connections_per_ip = 16;
	fx_open(&f, &o);
	atomic_init(&t.stop, 0);
	/* The attacker: another loopback address than the normal client. */
	for (i = 0; i < SLOW_N; i++)
		t.fds[i] = raw_connect(f.sv.port, "127.0.0.2");
	assert_int_equal(pthread_create(&th, NULL, trickle_main, &t), 0);

	/* A normal client is answered while they hang on. */
	assert_int_equal(post(&f, "/v1/tasks", "{\"id\":\"S1\"}"), 201);
	assert_int_equal(post(&f, "/v1/tasks/S1/claim", "{\"swarm\":\"ok\",\"ttl\":60}"),
			 200);
	for (i = 0; i < SLOW_N; i++)
		closed_early += is_closed(t.fds[i]);

	/* Every slow connection is closed while it still trickles: those over
	 * the per-address limit at accept, the others at the read deadline. */
	bound = now_ms() + 30000;
	do {
		open_left = 0;
		for (i = 0; i < SLOW_N; i++) {
			if (t.fds[i] < 0)
				continue;
			if (is_closed(t.fds[i])) {
				close(t.fds[i]);
				t.fds[i] = -1;
			} else {
				open_left++;
			}
		}
		if (open_left) {
			struct pollfd p = {-1, 0, 0};

			poll(&p, 0, 50);
		}
	} while (open_left > 0 && now_ms() < bound);
	atomic_store(&t.stop, 1);
	pthread_join(th, NULL);
	print_message(
	    "case: %d connections from 127.0.0.2 sending a header byte / 50 ms "
	    "(per-IP limit 16, request timeout 1.5 s) -> %d closed by the time a "
	    "normal create+claim from 127.0.0.1 answered 201/200; %d still open "
	    "after 30 s\n",
	    SLOW_N, closed_early, open_left);
	assert_int_equal(open_left, 0);
	/* A slow client refused at the door still gets served when it behaves. */
	assert_int_equal(call(&f, "GET", "/v1/tasks/S1", NULL, 0, NULL), 200);
	for (i = 0; i < SLOW_N; i++)
		if (t.fds[i] >= 0)
			close(t.fds[i]);
	co_test_serve_close(&f.sv);
}

/* Await (bounded) the server closing a connection that sent half a header. */
static void await_cut(const fx *f, const char *partial)
{
	int fd = raw_connect(f->sv.port, NULL), closed;
	char *buf;

	raw_send(fd, partial, strlen(partial));
	buf = raw_read(fd, 20000, NULL, &closed);
	assert_true(closed);
	free(buf);
	close(fd);
}

static void a_watch_stream_outlives_the_request_timeout(void **state)
{
	static const char watch[] = "GET /v1/watch HTTP/1.1\r\nHost: x\r\n\r\n";
	co_test_serve_opts o = {0};
	int fd, closed;
	char *buf;
	fx f;

	(void)state;
	o.request_timeout_ms = 1000;
	fx_open(&f, &o);
	fd = raw_connect(f.sv.port, NULL);
	assert_int_equal(raw_send(fd, watch, strlen(watch)), 0);
	buf = raw_read(fd, 20000, "\r\n\r\n", &closed);
	assert_int_equal(raw_status(buf), 200);
	free(buf);
	/* The deadline has passed for a request idling as long. */
	await_cut(&f, "GET /healthz HTTP/1.1\r\nHo");
	assert_int_equal(post(&f, "/v1/tasks", "{\"id\":\"W1\"}"), 201);
	buf = raw_read(fd, 20000, "\"W1\"", &closed);
	assert_false(closed);
	assert_non_null(strstr(buf, "\"W1\""));
	free(buf);
	close(fd);
	print_message("case: GET /v1/watch with request timeout 1 s; a half header cut "
		      "meanwhile -> the stream stays open and delivers the next put\n");
	co_test_serve_close(&f.sv);
}

/* --- sizes --- */

static void huge_headers_get_431_and_memory_stays_bounded(void **state)
{
	enum { CONNS = 48, HDR = 1 << 20 };
	static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ";
	co_test_serve_opts o = {0};
	char *big = malloc(HDR), *buf;
	int fds[CONNS], i, n431 = 0, nreset = 0, closed, st;
	size_t before, peak = 0, now;
	fx f;

	(void)state;
	assert_non_null(big);
	memset(big, 'a', HDR);
	fx_open(&f, &o);
	before = rss_kib();
	for (i = 0; i < CONNS; i++) {
		fds[i] = raw_connect(f.sv.port, NULL);
		raw_send(fds[i], head, strlen(head));
		raw_send(fds[i], big, HDR); /* stops when the server stops reading */
		if ((now = rss_kib()) > peak)
			peak = now;
	}
	for (i = 0; i < CONNS; i++) {
		buf = raw_read(fds[i], 20000, NULL, &closed);
		st = raw_status(buf);
		n431 += st == 431;
		nreset += st == 0;
		assert_true(st == 431 || (st == 0 && closed));
		free(buf);
		close(fds[i]);
	}
	print_message(
	    "case: %d connections each sending a 1 MiB header -> %d got 431, "
	    "%d were closed (reset) before the answer was read; RSS grew by %zu "
	    "KiB at most\n",
	    CONNS, n431, nreset, peak > before ? peak - before : 0);
	assert_true(n431 > 0);
	/* Buffered, they would take 48 MiB; MHD keeps 32 KiB each at most. */
	assert_true(peak < before + 16 * 1024);
	/* A 100 KiB URL, and 5000 small header lines. */
	{
		size_t n = 0, i2;
		int st_url, st_lines;

		n += (size_t)sprintf(big, "GET /v1/tasks/");
		memset(big + n, 'a', 100 * 1024);
		n += 100 * 1024;
		n += (size_t)sprintf(big + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
		st_url = raw_req(&f, big, n, NULL);
		n = (size_t)sprintf(big, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
		for (i2 = 0; i2 < 5000; i2++)
			n += (size_t)sprintf(big + n, "X-%zu: v\r\n", i2);
		n += (size_t)sprintf(big + n, "\r\n");
		st_lines = raw_req(&f, big, n, NULL);
		print_message(
		    "case: GET with a 100 KiB URL -> %d; 5000 header lines (about "
		    "50 KiB) -> %d\n",
		    st_url, st_lines);
		assert_true(st_url == 414 || st_url == 431);
		assert_int_equal(st_lines, 431);
	}
	/* And the server still answers. */
	assert_int_equal(call(&f, "GET", "/healthz", NULL, 0, NULL), 200);
	free(big);
	co_test_serve_close(&f.sv);
}

static void huge_bodies_get_413_without_being_read(void **state)
{
	static const char declared[] =
	    "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	    "Content-Length: 10737418240\r\n\r\n";
	static const char chunked[] =
	    "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
	co_test_serve_opts o = {0};
	char chunk[65536 + 16], *buf;
	int fd, closed, i;
	fx f;

	(void)state;
	fx_open(&f, &o);
	/* 10 GiB declared, nothing sent: 413 at once. */
	fd = raw_connect(f.sv.port, NULL);
	assert_int_equal(raw_send(fd, declared, strlen(declared)), 0);
	buf = raw_read(fd, 20000, "too_large", &closed);
	assert_int_equal(raw_status(buf), 413);
	free(buf);
	close(fd);

	/* 2 MiB chunked (no length to judge by): read, dropped, 413. */
	fd = raw_connect(f.sv.port, NULL);
	assert_int_equal(raw_send(fd, chunked, strlen(chunked)), 0);
	for (i = 0; i < 32; i++) {
		int n = snprintf(chunk, sizeof(chunk), "10000\r\n");

		memset(chunk + n, ' ', 65536);
		memcpy(chunk + n + 65536, "\r\n", 2);
		assert_int_equal(raw_send(fd, chunk, (size_t)n + 65536 + 2), 0);
	}
	assert_int_equal(raw_send(fd, "0\r\n\r\n", 5), 0);
	buf = raw_read(fd, 20000, "too_large", &closed);
	assert_int_equal(raw_status(buf), 413);
	free(buf);
	close(fd);
	assert_int_equal(stored(&f, CO_KIND_TASK), 0);
	print_message("case: POST /v1/tasks Content-Length 10 GiB, no body sent -> 413 "
		      "at once\ncase: POST /v1/tasks chunked 2 MiB -> 413, nothing "
		      "stored\n");
	co_test_serve_close(&f.sv);
}

/* --- JSON --- */

/* `open` n times, then `mid`, then `close` n times. */
static char *nest(const char *pre, const char *open, const char *mid, const char *close_,
		  const char *post_, size_t n)
{
	size_t lo = strlen(open), lc = strlen(close_), i, at = 0;
	size_t len = strlen(pre) + n * (lo + lc) + strlen(mid) + strlen(post_) + 1;
	char *s = malloc(len);

	assert_non_null(s);
	at += (size_t)sprintf(s, "%s", pre);
	for (i = 0; i < n; i++, at += lo)
		memcpy(s + at, open, lo);
	at += (size_t)sprintf(s + at, "%s", mid);
	for (i = 0; i < n; i++, at += lc)
		memcpy(s + at, close_, lc);
	sprintf(s + at, "%s", post_);
	return s;
}

static void json_bombs_and_huge_numbers_are_400(void **state)
{
	co_test_serve_opts o = {0};
	char *b;
	fx f;

	(void)state;
	fx_open(&f, &o);
	b = nest("", "[", "", "]", "", 100000);
	assert_int_equal(post(&f, "/v1/tasks", b), 400);
	free(b);
	b = nest("{\"id\":\"D1\",\"metadata\":", "{\"a\":", "1", "}", "}", 100000);
	assert_int_equal(post(&f, "/v1/tasks", b), 400);
	free(b);
	b = nest("{\"id\":\"D2\",\"blocked_by\":", "[", "", "]", "}", 100000);
	assert_int_equal(post(&f, "/v1/tasks", b), 400);
	free(b);
	assert_int_equal(
	    post(&f, "/v1/tasks", "{\"id\":\"N1\",\"metadata\":{\"x\":1e999999}}"), 400);
	assert_int_equal(
	    post(&f, "/v1/tasks", "{\"id\":\"N2\",\"metadata\":{\"x\":[-1e999999]}}"),
	    400);

	assert_int_equal(post(&f, "/v1/tasks", "{\"id\":\"B1\"}"), 201);
	assert_int_equal(
	    post(&f, "/v1/tasks/B1/claim", "{\"swarm\":\"s\",\"ttl\":1e999999}"), 400);
	assert_int_equal(post(&f, "/v1/tasks/B1/claim",
			      "{\"swarm\":\"s\",\"ttl\":99999999999999999999}"),
			 400);
	assert_int_equal(
	    post(&f, "/v1/tasks/B1/claim", "{\"swarm\":\"s\",\"ttl\":-1e999999}"), 400);
	/* Nothing was claimed, nothing else stored. */
	{
		co_record *r = NULL;

		assert_int_equal(co_store_get(&r, f.sv.git, CO_KIND_TASK, "B1"), 0);
		assert_int_equal(r->status, CO_STATUS_AVAILABLE);
		co_record_free(r);
	}
	assert_absent(&f, "D1");
	assert_absent(&f, "D2");
	assert_absent(&f, "N1");
	assert_absent(&f, "N2");
	print_message(
	    "case: [[[...]]] 100k deep; metadata {\"a\":{...}} 100k deep; blocked_by "
	    "100k deep -> 400 each\ncase: metadata 1e999999, [-1e999999] -> 400\n"
	    "case: claim ttl 1e999999, 99999999999999999999, -1e999999 -> 400, "
	    "the task stays available\n");
	co_test_serve_close(&f.sv);
}

static void invalid_utf8_and_nul_are_400(void **state)
{
	static const char nul_body[] = "{\"id\":\"U6\",\"type\":\"a\0b\"}";
	static const char *const bodies[] = {
	    "{\"id\":\"U\xff"
	    "1\"}",
	    "{\"id\":\"U2\",\"type\":\"\xc0\xaf\"}",	      /* overlong "/" */
	    "{\"id\":\"U3\",\"metadata\":{\"k\xff\":\"v\"}}", /* in a key */
	    "{\"id\":\"U4\",\"type\":\"\xed\xa0\x80\"}",      /* a surrogate */
	    "{\"id\":\"U5\\u0000x\"}",			      /* cut to "U5" */
	    "{\"id\":\"U7\",\"type\":\"\\ud800\"}",	      /* a lone surrogate */
	    "{\"id\":\"U8\",\"metadata\":{\"k\":\"\xf4\x90\x80\x80\"}}", /* > U+10FFFF */
	    NULL};
	static const char *const ids[] = {"U2", "U3", "U4", "U5", "U6", "U7", "U8", NULL};
	co_test_serve_opts o = {0};
	size_t i;
	fx f;

	(void)state;
	fx_open(&f, &o);
	for (i = 0; bodies[i]; i++)
		if (post(&f, "/v1/tasks", bodies[i]) != 400)
			fail_msg("body %zu was not refused", i);
	assert_int_equal(
	    call(&f, "POST", "/v1/tasks", nul_body, sizeof(nul_body) - 1, NULL), 400);
	/* Valid UTF-8 and an escaped backslash before u0000 are fine. */
	assert_int_equal(
	    post(&f, "/v1/tasks", "{\"id\":\"U9\",\"type\":\"caf\xc3\xa9 \\\\u0000\"}"),
	    201);
	for (i = 0; ids[i]; i++)
		assert_absent(&f, ids[i]);
	assert_int_equal(stored(&f, CO_KIND_TASK), 2); /* U9 in git and etcd */
	print_message("case: id \"U\\xff1\"; type \\xc0\\xaf (overlong), \\xed\\xa0\\x80 "
		      "(surrogate), \\ud800, \\xf4\\x90\\x80\\x80 (> U+10FFFF); a key "
		      "\"k\\xff\"; id \"U5\\u0000x\"; a raw NUL in a string -> 400 each, "
		      "nothing stored\n");
	co_test_serve_close(&f.sv);
}

/* --- paths --- */

static void path_traversal_and_odd_ids_never_reach_a_store(void **state)
{
	static const char *const paths[] = {"GET /v1/tasks/..%2F..%2Fetc%2Fpasswd",
					    "GET /v1/tasks/../../etc/passwd",
					    "GET /v1/tasks/%2e%2e",
					    "GET /v1/tasks/a%00b",
					    "GET /v1/tasks/%00",
					    "GET /v1/tasks/%FF%FE",
					    "GET /v1/tasks/.hidden",
					    "GET /v1/tasks/a%20b",
					    "POST /v1/tasks/..%2F..%2Fetc%2Fpasswd/claim",
					    "POST /v1/tasks/a%00/claim",
					    "POST /v1/tasks/%2Ftmp%2Fx/release",
					    "GET /v1/swarms/..",
					    NULL};
	co_test_serve_opts o = {0};
	char line[512], longid[400], *rev = NULL;
	size_t i;
	fx f;

	(void)state;
	fx_open(&f, &o);
	for (i = 0; paths[i]; i++) {
		const char *sp = strchr(paths[i], ' ');
		int st;

		snprintf(line, sizeof(line), "%.*s", (int)(sp - paths[i]), paths[i]);
		st = raw_get(&f, line, sp + 1,
			     paths[i][0] == 'P' ? "{\"swarm\":\"s\",\"ttl\":60}" : NULL);
		print_message("case: %s -> %d\n", paths[i], st);
		if (st != 400)
			fail_msg("%s: %d, not 400", paths[i], st);
	}
	memset(longid, 'a', 300);
	memcpy(longid, "/v1/tasks/", 10);
	longid[300] = '\0';
	assert_int_equal(raw_get(&f, "GET", longid, NULL), 400);
	assert_int_equal(post(&f, "/v1/tasks", "{\"id\":\"../../etc/passwd\"}"), 400);
	assert_int_equal(post(&f, "/v1/tasks", "{\"id\":\"a/b\"}"), 400);
	assert_int_equal(post(&f, "/v1/swarms", "{\"id\":\"..\"}"), 400);
	print_message("case: GET /v1/tasks/a*290 -> 400; POST /v1/tasks {id: "
		      "../../etc/passwd | a/b}, POST /v1/swarms {id: ..} -> 400\n");
	/* Nothing reached a store: no record, no commit in the bare repo. */
	assert_int_equal(stored(&f, CO_KIND_TASK), 0);
	assert_int_equal(stored(&f, CO_KIND_SWARM), 0);
	assert_int_equal(co_test_sh(&rev, NULL,
				    "git --git-dir '%s' rev-list --all | wc -l",
				    f.sv.repo),
			 0);
	assert_int_equal(atoi(rev), 0);
	free(rev);
	co_test_serve_close(&f.sv);
}

/* --- admin --- */

/* Audit rows of op "admin" with `outcome`. */
static size_t admin_audited(const fx *f, const char *outcome)
{
	co_audit_op_list l = {0};
	size_t i, n = 0;

	assert_int_equal(co_audit_ops_latest(&l, f->sv.st, 10000), 0);
	for (i = 0; i < l.n; i++)
		if (strcmp(l.items[i]->op, "admin") == 0 &&
		    strcmp(l.items[i]->outcome, outcome) == 0) {
			assert_null(
			    strstr(l.items[i]->error ? l.items[i]->error : "", "nope"));
			n++;
		}
	co_audit_op_list_clear(&l);
	return n;
}

static void admin_without_the_token_is_401_or_403_and_audited(void **state)
{
	co_test_serve_opts o = {0}, off = {0};
	co_test_resp r;
	fx f, g;

	(void)state;
	fx_open(&f, &o);
	assert_int_equal(call(&f, "GET", "/v1/admin/flags", NULL, 0, NULL), 401);
	assert_int_equal(call(&f, "GET", "/v1/admin/flags", NULL, 0, "Bearer nope"), 401);
	assert_int_equal(call(&f, "GET", "/v1/admin/flags", NULL, 0, "Basic nope"), 401);
	assert_int_equal(call(&f, "GET", "/v1/admin/flags", NULL, 0, "Bearer " ADMIN "x"),
			 401);
	co_test_http(&r, f.sv.base, "POST", "/v1/admin/rollback", "{\"reason\":\"x\"}",
		     14, "Bearer hostile-admin-toke");
	assert_int_equal(r.status, 401);
	free(r.body);
	assert_int_equal(admin_audited(&f, "unauthorized"), 5);
	/* A forged log line in the path (%0A decoded to a newline) is audited
	 * made printable. */
	assert_int_equal(raw_get(&f, "GET", "/v1/admin/x%0Acutover:%20forged%FF", NULL),
			 401);
	assert_int_equal(admin_audited(&f, "unauthorized"), 6);
	{
		co_audit_op_list l = {0};

		assert_int_equal(co_audit_ops_latest(&l, f.sv.st, 1), 0);
		assert_int_equal(l.n, 1);
		assert_string_equal(l.items[0]->id, "x?cutover:?forged?");
		co_audit_op_list_clear(&l);
	}
	/* The right token still works, and is not audited as a refusal. */
	assert_int_equal(call(&f, "GET", "/v1/admin/flags", NULL, 0, "Bearer " ADMIN),
			 200);
	assert_int_equal(admin_audited(&f, "unauthorized"), 6);

	off.token = ""; /* no admin token configured: admin is off */
	fx_open(&g, &off);
	assert_int_equal(call(&g, "GET", "/v1/admin/flags", NULL, 0, "Bearer " ADMIN),
			 403);
	assert_int_equal(admin_audited(&g, "forbidden"), 1);
	print_message("case: /v1/admin/flags without Authorization, with Bearer nope, "
		      "Basic nope, the token plus a byte; rollback with the token less a "
		      "byte -> 401 each, 5 audit rows \"admin\" unauthorized; a server "
		      "without admin token -> 403, audited forbidden\ncase: GET "
		      "/v1/admin/x%%0Acutover:%%20forged%%FF -> 401, audited with id "
		      "\"x?cutover:?forged?\" (no forged log line)\n");
	co_test_serve_close(&g.sv);
	co_test_serve_close(&f.sv);
}

/* --- floods --- */

typedef struct burst {
	const fx *f;
	int id;
	long status;
} burst;

static void *burst_main(void *p)
{
	burst *b = p;
	char body[64];

	snprintf(body, sizeof(body), "{\"id\":\"F%d\"}", b->id);
	b->status = post(b->f, "/v1/tasks", body);
	return NULL;
}

static void a_flood_gets_429_with_retry_after(void **state)
{
	static const char held[] = "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: "
				   "application/json\r\nContent-Length: 100\r\n\r\n{";
	enum { BURST = 32 };
	co_test_serve_opts o = {0};
	co_test_resp r;
	burst b[BURST];
	pthread_t th[BURST];
	int fds[2], i, n201 = 0, n429 = 0;
	int64_t bound;
	fx f;

	(void)state;
	o.max_inflight = 2;
	o.request_timeout_ms = 30000;
	fx_open(&f, &o);
	/* Two requests held in flight: headers in, body not finished. */
	for (i = 0; i < 2; i++) {
		fds[i] = raw_connect(f.sv.port, NULL);
		assert_int_equal(raw_send(fds[i], held, strlen(held)), 0);
	}
	/* Await both counted (the server reads their headers in its time). */
	bound = now_ms() + 10000;
	while (co_server_inflight(f.sv.srv) < 2 && now_ms() < bound) {
		struct pollfd p = {-1, 0, 0};

		poll(&p, 0, 10);
	}
	assert_int_equal(co_server_inflight(f.sv.srv), 2);
	co_test_http(&r, f.sv.base, "GET", "/v1/tasks/F0", NULL, 0, NULL);
	free(r.body);
	assert_int_equal(r.status, 429);
	assert_string_equal(r.retry_after, "1");
	/* Health and metrics answer from memory and are not counted. */
	assert_int_equal(call(&f, "GET", "/healthz", NULL, 0, NULL), 200);
	assert_int_equal(call(&f, "GET", "/metrics", NULL, 0, NULL), 200);
	assert_int_equal(post(&f, "/v1/tasks", "{\"id\":\"F0\"}"), 429);
	assert_absent(&f, "F0");
	for (i = 0; i < 2; i++) {
		assert_false(is_closed(fds[i])); /* still held, never refused */
		close(fds[i]);
	}
	/* Slots come back when the held requests go. */
	bound = now_ms() + 10000;
	do {
		co_test_http(&r, f.sv.base, "GET", "/v1/tasks/F0", NULL, 0, NULL);
		free(r.body);
	} while (r.status == 429 && now_ms() < bound);
	assert_int_equal(r.status, 404);

	/* A burst: each answered at once, 201 or 429, never queued away. */
	for (i = 0; i < BURST; i++) {
		b[i].f = &f;
		b[i].id = i + 1;
		assert_int_equal(pthread_create(&th[i], NULL, burst_main, &b[i]), 0);
	}
	for (i = 0; i < BURST; i++) {
		pthread_join(th[i], NULL);
		if (b[i].status == 201)
			n201++;
		else if (b[i].status == 429)
			n429++;
		else
			fail_msg("burst: %ld", b[i].status);
	}
	/* Shadow: git holds each acked create; etcd's copy may still be owed. */
	co_router_drain(f.sv.r, NULL, 5000, NULL);
	assert_int_equal(stored(&f, CO_KIND_TASK), (size_t)n201 * 2);
	print_message(
	    "case: max_inflight 2, two requests held mid-body -> GET and POST "
	    "429 with Retry-After: 1, /healthz and /metrics 200; released -> "
	    "404 again\ncase: burst of %d creates, max_inflight 2 -> %d 201, %d "
	    "429, exactly the 201s stored\n",
	    BURST, n201, n429);
	co_test_serve_close(&f.sv);
}

/* --- TLS --- */

static void tls_serves_https_and_refuses_plain_http(void **state)
{
	co_test_serve_opts o = {0};
	char dir[256], cert[300], key[300], plain[64];
	co_test_resp r;
	CURL *c;
	int rc;
	fx f;

	(void)state;
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		print_message("SKIP: libmicrohttpd here is built without TLS\n");
		skip();
	}
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	if ((rc = co_test_self_signed(dir, cert, sizeof(cert), key, sizeof(key))) == 1) {
		co_test_rmrf(dir);
		skip();
	}
	assert_int_equal(rc, 0);
	o.tls_cert_file = cert;
	o.tls_key_file = key;
	fx_open(&f, &o);
	c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_CAINFO, cert);
	assert_int_equal(
	    co_test_http_on(c, &r, f.sv.base, "GET", "/healthz", NULL, 0, NULL), 200);
	free(r.body);
	assert_int_equal(co_test_http_on(c, &r, f.sv.base, "POST", "/v1/tasks",
					 "{\"id\":\"TLS1\"}", 13, NULL),
			 201);
	free(r.body);
	curl_easy_cleanup(c);
	/* Without the CA the client refuses the server. */
	c = curl_easy_init();
	assert_true(co_test_http_on(c, &r, f.sv.base, "GET", "/healthz", NULL, 0, NULL) <
		    0);
	free(r.body);
	/* Plain HTTP to the TLS port gets no HTTP answer. */
	snprintf(plain, sizeof(plain), "http://127.0.0.1:%d", f.sv.port);
	assert_true(co_test_http_on(c, &r, plain, "GET", "/healthz", NULL, 0, NULL) < 0);
	free(r.body);
	curl_easy_cleanup(c);
	print_message("case: HTTPS with the CA -> 200 /healthz, 201 create; HTTPS "
		      "without the CA -> refused by the client; plain HTTP to the TLS "
		      "port -> no HTTP answer\n");
	co_test_serve_close(&f.sv);
	co_test_rmrf(dir);
}

static void tls_needs_both_files(void **state)
{
	co_test_serve_opts o = {0};
	const char *cert_only[] = {"serve", "--tls-cert", "/tmp/no-such-cert.pem", NULL};
	const char *key_only[] = {"serve", "--tls-key", "/tmp/no-such-key.pem", NULL};
	char dir[256], env_state[300], *out = NULL, *err = NULL;
	const char *env[] = {env_state, NULL};
	co_server_opts so = CO_SERVER_OPTS_INIT;
	co_server *srv = NULL;
	fx f;

	(void)state;
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	snprintf(env_state, sizeof(env_state), "CUTOVER_STATE_DIR=%s", dir);
	assert_int_equal(co_test_cutover(&out, &err, env, cert_only), 1);
	assert_non_null(strstr(err, "--tls-key"));
	free(out);
	free(err);
	assert_int_equal(co_test_cutover(&out, &err, env, key_only), 1);
	assert_non_null(strstr(err, "--tls-cert"));
	free(out);
	free(err);
	/* The library says so too, and names a missing file. */
	fx_open(&f, &o);
	so.listen = "127.0.0.1:0";
	so.router = f.sv.r;
	so.state = f.sv.st;
	so.flags = f.sv.fw;
	so.tls_cert_file = "/tmp/no-such-cert.pem";
	assert_int_equal(co_server_start(&srv, &so), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "key"));
	so.tls_key_file = "/tmp/no-such-key.pem";
	assert_int_equal(co_server_start(&srv, &so), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "/tmp/no-such-cert.pem"));
	co_test_serve_close(&f.sv);
	co_test_rmrf(dir);
}

/* --- where it listens --- */

static void serve_binds_loopback_by_default(void **state)
{
	co_test_serve_opts o = {0};
	co_server_opts so = CO_SERVER_OPTS_INIT;
	co_server *srv = NULL;
	co_config *c = NULL;
	fx f;

	(void)state;
	assert_int_equal(co_config_defaults(&c), 0);
	assert_string_equal(c->listen, "127.0.0.1:7480");
	co_config_free(c);
	assert_string_equal(CO_SERVER_LISTEN_DEFAULT, "127.0.0.1:7480");
	/* Anything wider, without swarm auth, is refused. */
	fx_open(&f, &o);
	so.router = f.sv.r;
	so.state = f.sv.st;
	so.flags = f.sv.fw;
	so.listen = "0.0.0.0:0";
	assert_int_equal(co_server_start(&srv, &so), CO_EINVAL);
	co_test_serve_close(&f.sv);
}

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return co_test_etcd_start(&etcd);
}

static int group_teardown(void **state)
{
	(void)state;
	co_test_etcd_stop(&etcd);
	curl_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(slowloris_does_not_starve_others_and_is_cut),
	    cmocka_unit_test(a_watch_stream_outlives_the_request_timeout),
	    cmocka_unit_test(huge_headers_get_431_and_memory_stays_bounded),
	    cmocka_unit_test(huge_bodies_get_413_without_being_read),
	    cmocka_unit_test(json_bombs_and_huge_numbers_are_400),
	    cmocka_unit_test(invalid_utf8_and_nul_are_400),
	    cmocka_unit_test(path_traversal_and_odd_ids_never_reach_a_store),
	    cmocka_unit_test(admin_without_the_token_is_401_or_403_and_audited),
	    cmocka_unit_test(a_flood_gets_429_with_retry_after),
	    cmocka_unit_test(tls_serves_https_and_refuses_plain_http),
	    cmocka_unit_test(tls_needs_both_files),
	    cmocka_unit_test(serve_binds_loopback_by_default),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
