/*
 * test_etcd_resend.c - the etcd store re-sends a txn whose answer was lost,
 * and reports what happened, not a conflict with itself.
 *
 * A member can apply a txn and never answer (it dies or hangs after the
 * commit, or answers 503 "request timed out" for a proposal that commits
 * after all).  The store then sends the same txn to the next endpoint,
 * whose compare fails because the first copy was applied.  Found by the
 * cluster tests (tests/cluster): a release reported "not claimed", and the
 * router dropped the mirror of a write etcd held.  Here the lossy member is
 * a proxy in front of a real etcd that forwards every request and, when
 * armed, drops the answer of the next txn: each test runs once with the
 * gateway's txns (an HTTP/1 proxy) and once with gRPC txns on a kept
 * HTTP/2 connection (a byte pump that reads the frames going by).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "store/etcd_store.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static co_test_etcd etcd;

struct proxy {
	int fd, port;
	const char *upstream;
	int h2; /* a byte pump that reads HTTP/2 frames (gRPC), not HTTP/1 */
	int silent; /* HTTP/1: close on HTTP/2's preface rather than answer 400 */
	atomic_int stop, armed, dropped, forwarded, prefaces;
	pthread_t thread;
	pthread_t pumps[64]; /* h2: one per connection, joined at stop */
	size_t n_pumps;
};

struct body {
	char *p;
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	struct body *b = ud;
	char *q = realloc(b->p, b->len + size * n + 1);

	if (q == NULL)
		return 0;
	memcpy(q + b->len, p, size * n);
	b->p = q;
	b->len += size * n;
	b->p[b->len] = '\0';
	return size * n;
}

/* Read one HTTP request from c: its path and body (malloc'd).  0 / -1;
 * *pri set when it opened with HTTP/2's preface. */
static int read_request(int c, char *path, size_t path_len, char **body, size_t *len,
			int *pri)
{
	char buf[65536], *end, *cl;
	size_t got = 0, want = 0, head;

	*body = NULL;
	while ((end = memmem(buf, got, "\r\n\r\n", 4)) == NULL) {
		ssize_t r = got < sizeof(buf) - 1
				? read(c, buf + got, sizeof(buf) - 1 - got)
				: -1;

		if (r <= 0)
			return -1;
		got += (size_t)r;
		buf[got] = '\0';
	}
	head = (size_t)(end - buf) + 4;
	*pri = strncmp(buf, "PRI * HTTP/2.0", 14) == 0;
	if (sscanf(buf, "POST %255s", path) != 1 || strlen(path) >= path_len)
		return -1;
	for (cl = buf; cl < end; cl++)
		if (strncasecmp(cl, "\r\ncontent-length:", 17) == 0)
			want = strtoul(cl + 17, NULL, 10);
	while (got < head + want && got < sizeof(buf) - 1) {
		ssize_t r = read(c, buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	if (got < head + want || (*body = malloc(want + 1)) == NULL)
		return -1;
	memcpy(*body, buf + head, want);
	(*body)[want] = '\0';
	*len = want;
	return 0;
}

/* Forward one connection's request upstream; answer it, or not when armed. */
static void serve_one(struct proxy *px, int c)
{
	char path[256], url[512], head[256];
	struct body resp = {0};
	char *req = NULL;
	size_t len = 0;
	long http = 0;
	int pri = 0;
	CURL *h;

	if (read_request(c, path, sizeof(path), &req, &len, &pri) < 0 ||
	    (h = curl_easy_init()) == NULL) {
		static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
					  "Connection: close\r\n\r\n";

		/* An HTTP/1 server answers HTTP/2's preface with a 400 (Go's
		 * net/http does), or closes (silent). */
		if (pri && (atomic_fetch_add(&px->prefaces, 1), !px->silent)) {
			struct pollfd p = {c, POLLIN, 0};
			char sink[4096];

			if (write(c, bad, sizeof(bad) - 1) != (ssize_t)(sizeof(bad) - 1))
				print_message("proxy: short write\n");
			/* A lingering close, as a real server's: closing with the
			 * rest of the request unread would reset the connection
			 * and the client could lose the 400. */
			shutdown(c, SHUT_WR);
			while (poll(&p, 1, 2000) > 0 && read(c, sink, sizeof(sink)) > 0)
				;
		}
		free(req);
		return;
	}
	snprintf(url, sizeof(url), "%s%s", px->upstream, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
	curl_easy_cleanup(h);
	free(req);
	atomic_fetch_add(&px->forwarded, 1);
	if (strcmp(path, "/v3/kv/txn") == 0 && atomic_exchange(&px->armed, 0)) {
		/* Applied upstream; the answer is lost: close without one. */
		atomic_fetch_add(&px->dropped, 1);
	} else if (http > 0) {
		int n = snprintf(head, sizeof(head),
				 "HTTP/1.1 %ld X\r\nContent-Type: application/json\r\n"
				 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
				 http, resp.len);

		if (write(c, head, (size_t)n) != n ||
		    (resp.len && write(c, resp.p, resp.len) != (ssize_t)resp.len))
			print_message("proxy: short write\n");
	}
	free(resp.p);
}

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;

	while (!atomic_load(&px->stop)) {
		struct pollfd p = {px->fd, POLLIN, 0};
		int c;

		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((c = accept(px->fd, NULL, NULL)) < 0)
			continue;
		serve_one(px, c);
		close(c);
	}
	return NULL;
}

/* ---- the HTTP/2 proxy: every byte passed on, frames read on the way ---- */

/* Where a direction stands in its frames: the client's 24-byte preface,
 * the 9 bytes of a frame header, its payload to pass by. */
struct frames {
	size_t preface_left, skip, have;
	unsigned char hdr[9];
};

/* At each whole frame header: fn(ctx, type, flags, stream). */
static void frames_feed(struct frames *f, const unsigned char *p, size_t n,
			void (*fn)(void *, int, int, uint32_t), void *ctx)
{
	while (n > 0) {
		size_t k;

		if (f->preface_left || f->skip) {
			size_t *left = f->preface_left ? &f->preface_left : &f->skip;

			k = n < *left ? n : *left;
			*left -= k;
			p += k;
			n -= k;
			continue;
		}
		f->hdr[f->have++] = *p++;
		n--;
		if (f->have == 9) {
			f->have = 0;
			f->skip = (size_t)f->hdr[0] << 16 | (size_t)f->hdr[1] << 8 | f->hdr[2];
			fn(ctx, f->hdr[3], f->hdr[4],
			   ((uint32_t)f->hdr[5] << 24 | (uint32_t)f->hdr[6] << 16 |
			    (uint32_t)f->hdr[7] << 8 | f->hdr[8]) &
			       0x7fffffffu);
		}
	}
}

enum { H2_HEADERS = 1, H2_END_STREAM = 1 };

/* One client connection and its upstream one. */
struct pair {
	struct proxy *px;
	int client, up;
	int h2;		 /* the client sent HTTP/2's preface */
	uint32_t victim; /* the stream whose answer is dropped (0: none) */
	int answered;	 /* etcd ended the victim's stream */
	struct frames in, out;
};

static void on_client_frame(void *ctx, int type, int flags, uint32_t stream)
{
	struct pair *pr = ctx;

	(void)flags;
	if (type == H2_HEADERS && stream > 0 && pr->victim == 0 &&
	    atomic_exchange(&pr->px->armed, 0))
		pr->victim = stream;
}

static void on_upstream_frame(void *ctx, int type, int flags, uint32_t stream)
{
	struct pair *pr = ctx;

	if (type == H2_HEADERS && stream == pr->victim && (flags & H2_END_STREAM))
		pr->answered = 1;
}

static int dial_upstream(const char *endpoint)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)atoi(strrchr(endpoint, ':') + 1));
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Pass bytes both ways until either side closes; armed, the next request
 * goes through to etcd and, once etcd has answered it whole, the client's
 * connection is closed with none of that answer. */
static void *pump_main(void *arg)
{
	struct pair *pr = arg;
	unsigned char buf[65536];

	while (!atomic_load(&pr->px->stop)) {
		struct pollfd p[2] = {{pr->client, POLLIN, 0}, {pr->up, POLLIN, 0}};
		ssize_t n;
		int i;

		if (poll(p, 2, 100) <= 0)
			continue;
		for (i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if ((n = read(p[i].fd, buf, sizeof(buf))) <= 0)
				goto done;
			if (i == 0) {
				if (!pr->h2 && pr->in.have == 0 && n >= 3 &&
				    memcmp(buf, "PRI", 3) == 0) {
					pr->h2 = 1;
					pr->in.preface_left = 24;
				}
				if (pr->h2)
					frames_feed(&pr->in, buf, (size_t)n, on_client_frame, pr);
				if (write(pr->up, buf, (size_t)n) != n)
					goto done;
				continue;
			}
			if (pr->h2)
				frames_feed(&pr->out, buf, (size_t)n, on_upstream_frame, pr);
			if (pr->answered) {
				atomic_fetch_add(&pr->px->dropped, 1);
				goto done; /* applied upstream; the answer is lost */
			}
			if (pr->victim == 0 && write(pr->client, buf, (size_t)n) != n)
				goto done;
		}
	}
done:
	close(pr->client);
	close(pr->up);
	free(pr);
	return NULL;
}

/* Accept, and give each connection a pump (each ends when its connection
 * does, or at stop). */
static void *h2_proxy_main(void *arg)
{
	struct proxy *px = arg;

	while (!atomic_load(&px->stop)) {
		struct pollfd p = {px->fd, POLLIN, 0};
		struct pair *pr;
		pthread_t t;
		int c;

		if (poll(&p, 1, 100) <= 0 || (c = accept(px->fd, NULL, NULL)) < 0)
			continue;
		if ((pr = calloc(1, sizeof(*pr))) == NULL ||
		    (pr->up = dial_upstream(px->upstream)) < 0) {
			free(pr);
			close(c);
			continue;
		}
		pr->px = px;
		pr->client = c;
		atomic_fetch_add(&px->forwarded, 1);
		if (px->n_pumps == sizeof(px->pumps) / sizeof(px->pumps[0]) ||
		    pthread_create(&t, NULL, pump_main, pr) != 0) {
			close(pr->up);
			close(c);
			free(pr);
			continue;
		}
		px->pumps[px->n_pumps++] = t;
	}
	return NULL;
}

static void proxy_start(struct proxy *px, const char *upstream)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int h2 = px->h2, silent = px->silent;

	memset(px, 0, sizeof(*px));
	px->h2 = h2;
	px->silent = silent;
	px->upstream = upstream;
	px->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(px->fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(px->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(px->fd, (struct sockaddr *)&a, &alen), 0);
	assert_int_equal(listen(px->fd, 16), 0);
	px->port = ntohs(a.sin_port);
	assert_int_equal(
	    pthread_create(&px->thread, NULL, px->h2 ? h2_proxy_main : proxy_main, px), 0);
}

static void proxy_stop(struct proxy *px)
{
	size_t i;

	atomic_store(&px->stop, 1);
	pthread_join(px->thread, NULL);
	for (i = 0; i < px->n_pumps; i++)
		pthread_join(px->pumps[i], NULL);
	close(px->fd);
}

/* A store whose first endpoint is the proxy, the second the real etcd. */
static co_store *open_via(const struct proxy *px, char *first, size_t len,
			  const char *prefix)
{
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	const char *eps[2];
	co_store *s = NULL;

	snprintf(first, len, "http://127.0.0.1:%d", px->port);
	eps[0] = first;
	eps[1] = etcd.endpoint;
	o.endpoints = eps;
	o.n_endpoints = 2;
	o.prefix = prefix;
	/* The proxy forwards one request at a time, not a watch's stream:
	 * no record cache (whose watch would hold it), as the test counts
	 * on every txn passing through it. */
	o.cache_entries = -1;
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	return s;
}

/* The test's transport: the gateway's HTTP/1 (state 0) or gRPC on a kept
 * HTTP/2 connection (state 1), the proxy speaking it. */
static void transport(struct proxy *px, void **state)
{
	px->h2 = *(int *)*state;
#ifndef CO_HAVE_NGHTTP2
	if (px->h2) {
		print_message("skipped: built without libnghttp2 (scripts/setup installs "
			      "libnghttp2-dev): every txn takes the gateway\n");
		skip();
	}
#endif
	if (px->h2)
		unsetenv("CUTOVER_ETCD_GRPC");
	else
		setenv("CUTOVER_ETCD_GRPC", "0", 1);
}

static void new_task(co_store *s, const char *id)
{
	co_record *t = NULL, *out = NULL;

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
	assert_int_equal(co_store_task_create(&out, s, t), 0);
	co_record_free(t);
	co_record_free(out);
}

static void release_whose_answer_was_lost_is_not_reported_as_a_conflict(void **state)
{
	struct proxy px;
	co_record *out = NULL, *now = NULL;
	char first[64];
	co_store *s;

	transport(&px, state);
	proxy_start(&px, etcd.endpoint);
	s = open_via(&px, first, sizeof(first), px.h2 ? "/resend-release-grpc/" : "/resend-release/");
	new_task(s, "T1");
	assert_int_equal(co_store_claim(&out, s, "T1", "s1", 0), 0);
	assert_int_equal(out->rev, 2);
	co_record_free(out);
	out = NULL;

	atomic_store(&px.armed, 1);
	if (co_store_release(&out, s, "T1", "s1", CO_STATUS_AVAILABLE) != 0)
		fail_msg("release applied by the first member, answer lost: %s",
			 co_error_last());
	assert_int_equal(atomic_load(&px.dropped), 1);
	assert_int_equal(out->rev, 3);
	assert_int_equal(out->status, CO_STATUS_AVAILABLE);
	/* Once, not twice: the store holds the release itself. */
	assert_int_equal(co_store_get(&now, s, CO_KIND_TASK, "T1"), 0);
	assert_true(co_record_equal(now, out));
	co_record_free(out);
	co_record_free(now);
	co_store_free(s);
	proxy_stop(&px);
}

static void claim_whose_answer_was_lost_wins_once(void **state)
{
	struct proxy px;
	co_record *out = NULL, *now = NULL;
	char first[64];
	co_store *s;

	transport(&px, state);
	proxy_start(&px, etcd.endpoint);
	s = open_via(&px, first, sizeof(first), px.h2 ? "/resend-claim-grpc/" : "/resend-claim/");
	new_task(s, "T2");
	atomic_store(&px.armed, 1);
	assert_int_equal(co_store_claim(&out, s, "T2", "s1", 0), 0);
	assert_int_equal(atomic_load(&px.dropped), 1);
	/* rev 2, the applied copy; deciding again would have claimed twice (3) */
	assert_int_equal(out->rev, 2);
	assert_int_equal(co_store_get(&now, s, CO_KIND_TASK, "T2"), 0);
	assert_true(co_record_equal(now, out));
	co_record_free(out);
	co_record_free(now);
	/* A different swarm still loses: the identity check is not a pass. */
	assert_int_equal(co_store_claim(&out, s, "T2", "s2", 0), CO_ECONFLICT);
	co_record_free(out);
	/* The txns took the transport this run is about. */
	if (px.h2)
		assert_true(co_etcd_store_grpc_txns(s) >= 2); /* create, resent claim */
	else
		assert_int_equal(co_etcd_store_grpc_txns(s), 0);
	co_store_free(s);
	proxy_stop(&px);
}

/*
 * An endpoint that speaks HTTP/1 alone: txns take the gateway there.  One
 * that answers HTTP/2's preface in HTTP/1 (a 400) gets the gateway from
 * then on; one that only closes might be a member going down, so each txn
 * tries gRPC first again.
 */
static void txns_fall_back_to_the_gateway_where_http2_is_not_spoken(void **state)
{
	int silent;

	(void)state;
	unsetenv("CUTOVER_ETCD_GRPC");
	for (silent = 0; silent < 2; silent++) {
		struct proxy px;
		co_etcd_opts o = CO_ETCD_OPTS_INIT;
		const char *eps[1];
		char first[64], id[8];
		co_store *s = NULL;
		int k;

		px.h2 = 0;
		px.silent = silent;
		proxy_start(&px, etcd.endpoint);
		snprintf(first, sizeof(first), "http://127.0.0.1:%d", px.port);
		eps[0] = first;
		o.endpoints = eps;
		o.n_endpoints = 1;
		o.prefix = silent ? "/resend-http1-silent/" : "/resend-http1/";
		o.cache_entries = -1;
		assert_int_equal(co_etcd_store_open(&s, &o), 0);
		for (k = 0; k < 3; k++) {
			snprintf(id, sizeof(id), "T%d", 10 + k);
			new_task(s, id);
		}
		assert_int_equal(co_etcd_store_grpc_txns(s), 0);
#ifdef CO_HAVE_NGHTTP2
		/* gRPC was tried: once (a 400), or before every txn (a close) */
		assert_int_equal(atomic_load(&px.prefaces), silent ? 3 : 1);
#endif
		co_store_free(s);
		proxy_stop(&px);
	}
}

static int setup(void **state)
{
	(void)state;
	return co_test_etcd_start(&etcd);
}

static int teardown(void **state)
{
	(void)state;
	co_test_etcd_stop(&etcd);
	return 0;
}

int main(void)
{
	static int gateway = 0, grpc = 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_prestate(
		release_whose_answer_was_lost_is_not_reported_as_a_conflict, &gateway),
	    cmocka_unit_test_prestate(claim_whose_answer_was_lost_wins_once, &gateway),
	    cmocka_unit_test_prestate(
		release_whose_answer_was_lost_is_not_reported_as_a_conflict, &grpc),
	    cmocka_unit_test_prestate(claim_whose_answer_was_lost_wins_once, &grpc),
	    cmocka_unit_test(txns_fall_back_to_the_gateway_where_http2_is_not_spoken),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
