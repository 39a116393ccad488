/*
 * etcd_h2.c - etcd's unary gRPC calls on kept HTTP/2 cleartext connections
 * (libnghttp2): the store's pool of connections, one call at a time on
 * each, every wait bounded by the call's time; and the loop over the
 * endpoints that moves on to the next member as co_etcd__post_raw() does
 * for the gateway.
 *
 * Why not libcurl, which speaks HTTP/2 too: Debian's libcurl 7.88 fails the
 * second request on a reused prior-knowledge HTTP/2 connection (curl#10634,
 * fixed in 8.0), and a txn on a new connection each time gains only ~5%
 * over the gateway, where one on a kept connection takes about half its
 * time (docs/design-changes.md).  https:// endpoints keep the gateway.
 *
 * Built only where libnghttp2's headers are (CO_HAVE_NGHTTP2, set by
 * CMakeLists.txt); without them co_etcd__h2_new() says "not available" and
 * the store uses the gateway for everything.
 */
#include "etcd_private.h"

#include "../core/error.h"

#include <stdlib.h>
#include <string.h>

#ifndef CO_HAVE_NGHTTP2

int co_etcd__h2_new(struct co_etcd__h2 **out, const struct etcd *e)
{
	(void)e;
	*out = NULL;
	return 0;
}

void co_etcd__h2_free(struct co_etcd__h2 *p)
{
	(void)p;
}

int co_etcd__h2_post(co_grpc_reply *reply, struct etcd *e, const char *method,
		     const char *token, const co_grpc_buf *request)
{
	(void)reply;
	(void)e;
	(void)method;
	(void)token;
	(void)request;
	return CO_ETCD_H2_NOT_GRPC;
}

#else

#include <nghttp2/nghttp2.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * What one call on a connection came to, besides 0 (a server answered).
 * A connection that fails before the server's SETTINGS arrived counts as
 * not HTTP/2: an HTTP/1 server answering the preface ("HTTP/1.1 400") or
 * closing on it.  etcd sends its SETTINGS first, before it serves any
 * request, so no request of ours was served there.  An answer in HTTP/1
 * says so for good; a close or a reset might also be a member going down,
 * so the caller tries the other members, then the gateway for this call.
 */
enum {
	H2_LOST = 1,	/* the connection failed before the answer was whole */
	H2_TIMEOUT = 2, /* the call's time ran out */
	H2_NOT_H2 = 3	/* what came back was not HTTP/2 */
};

struct h2conn {
	int fd;
	size_t endpoint;
	nghttp2_session *s;
	char authority[280];
	int settings_seen; /* the server's SETTINGS arrived: it speaks HTTP/2 */
	int heard;	   /* any byte arrived on it */
	int http1;	   /* its first bytes were an HTTP/1 answer */
	int calls;	   /* calls made on it before this one */

	/* the call in progress */
	int32_t stream;
	int closed;		  /* our stream closed */
	int reset;		  /* ... by RST_STREAM or GOAWAY, not at its end */
	int answered;		  /* a response header of ours arrived */
	int body_error;		  /* the reply's sink refused bytes */
	co_grpc_reply *reply;
	const co_grpc_buf *req;
	size_t req_off;
	char why[128]; /* what broke it, for the error */

	struct h2conn *next;
};

struct co_etcd__h2 {
	pthread_mutex_t lock;
	struct h2conn *idle;
	size_t n_idle;
};

/* ---- nghttp2's callbacks ---- */

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags,
		       void *ud)
{
	struct h2conn *c = ud;
	ssize_t n;

	(void)s;
	(void)flags;
	n = send(c->fd, data, len, MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return NGHTTP2_ERR_WOULDBLOCK;
	snprintf(c->why, sizeof(c->why), "send: %s", strerror(errno));
	return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int header_cb(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *ud)
{
	struct h2conn *c = ud;
	co_grpc_reply *r = c->reply;
	char v[256];

	(void)s;
	(void)flags;
	if (r == NULL || frame->hd.stream_id != c->stream)
		return 0;
	c->answered = 1;
	if (valuelen >= sizeof(v))
		valuelen = sizeof(v) - 1;
	memcpy(v, value, valuelen);
	v[valuelen] = '\0';
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		r->http = strtol(v, NULL, 10);
	else if (namelen == 12 && memcmp(name, "content-type", 12) == 0)
		r->grpc_body = strncasecmp(v, "application/grpc", 16) == 0;
	else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
		r->grpc_status = atoi(v);
	else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
		snprintf(r->grpc_message, sizeof(r->grpc_message), "%s", v);
	return 0;
}

static int data_cb(nghttp2_session *s, uint8_t flags, int32_t stream, const uint8_t *data,
		   size_t len, void *ud)
{
	struct h2conn *c = ud;
	co_grpc_reply *r = c->reply;

	(void)s;
	(void)flags;
	if (r == NULL || stream != c->stream || !r->grpc_body || c->body_error)
		return 0;
	if (r->raw) {
		if (co_grpc_buf_put(r->raw, data, len) < 0)
			c->body_error = CO_ENOMEM;
	} else if (r->stream && co_grpc_stream_feed(r->stream, data, len) < 0) {
		c->body_error = r->stream->error;
	}
	return 0;
}

static int frame_cb(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	struct h2conn *c = ud;

	(void)s;
	if (frame->hd.type == NGHTTP2_SETTINGS)
		c->settings_seen = 1;
	return 0;
}

static int close_cb(nghttp2_session *s, int32_t stream, uint32_t code, void *ud)
{
	struct h2conn *c = ud;

	(void)s;
	if (stream == c->stream) {
		c->closed = 1;
		c->reset = code != NGHTTP2_NO_ERROR;
		if (code != NGHTTP2_NO_ERROR && !c->why[0])
			snprintf(c->why, sizeof(c->why), "stream reset (%s)",
				 nghttp2_http2_strerror(code));
	}
	return 0;
}

static ssize_t body_read_cb(nghttp2_session *s, int32_t stream, uint8_t *buf, size_t len,
			    uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct h2conn *c = ud;
	size_t n = c->req->len - c->req_off;

	(void)s;
	(void)stream;
	(void)src;
	if (n > len)
		n = len;
	memcpy(buf, c->req->p + c->req_off, n);
	c->req_off += n;
	if (c->req_off == c->req->len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* ---- connections ---- */

static void conn_free(struct h2conn *c)
{
	if (c == NULL)
		return;
	nghttp2_session_del(c->s);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* "http://host:port[/...]" into host and port ("80" when absent). */
static int split_endpoint(char *host, size_t hlen, char *port, size_t plen, const char *ep)
{
	const char *h = ep + 7, *end, *colon;
	size_t n;

	if (strncmp(ep, "http://", 7) != 0)
		return -1;
	if (*h == '[') {
		if ((end = strchr(h, ']')) == NULL)
			return -1;
		n = (size_t)(end - h - 1);
		if (n >= hlen)
			return -1;
		memcpy(host, h + 1, n);
		host[n] = '\0';
		colon = end[1] == ':' ? end + 1 : NULL;
		end++;
	} else {
		end = h + strcspn(h, ":/");
		n = (size_t)(end - h);
		if (n == 0 || n >= hlen)
			return -1;
		memcpy(host, h, n);
		host[n] = '\0';
		colon = *end == ':' ? end : NULL;
	}
	if (colon) {
		n = strcspn(colon + 1, "/");
		if (n == 0 || n >= plen)
			return -1;
		memcpy(port, colon + 1, n);
		port[n] = '\0';
	} else {
		snprintf(port, plen, "80");
	}
	return 0;
}

/* A connected, non-blocking socket to host:port within timeout_ms, or -1
 * with why filled in. */
static int dial(const char *host, const char *port, int timeout_ms, char *why, size_t wlen)
{
	struct addrinfo hints, *res = NULL, *a;
	int64_t deadline = co_etcd__now_ms() + timeout_ms;
	int fd = -1, rc, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(why, wlen, "%s", gai_strerror(rc));
		return -1;
	}
	for (a = res; a; a = a->ai_next) {
		struct pollfd pfd;
		int err = 0;
		socklen_t elen = sizeof(err);
		int64_t left = deadline - co_etcd__now_ms();

		if (left <= 0) {
			snprintf(why, wlen, "connect timed out after %d ms", timeout_ms);
			break;
		}
		if ((fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				 a->ai_protocol)) < 0) {
			snprintf(why, wlen, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			snprintf(why, wlen, "%s", strerror(errno));
			close(fd);
			fd = -1;
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		while ((rc = poll(&pfd, 1, (int)left)) < 0 && errno == EINTR)
			;
		if (rc == 0) {
			snprintf(why, wlen, "connect timed out after %d ms", timeout_ms);
			close(fd);
			fd = -1;
			break;
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
			snprintf(why, wlen, "%s", strerror(err ? err : errno));
			close(fd);
			fd = -1;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		break;
	}
	freeaddrinfo(res);
	return fd;
}

static int conn_open(struct h2conn **out, const struct etcd *e, size_t endpoint,
		     int timeout_ms, char *why, size_t wlen)
{
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
	char host[256], port[16];
	struct h2conn *c;

	*out = NULL;
	if (split_endpoint(host, sizeof(host), port, sizeof(port),
			   e->endpoints[endpoint]) < 0) {
		snprintf(why, wlen, "not an http://host:port endpoint");
		return H2_NOT_H2;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return co_etcd__oom();
	c->endpoint = endpoint;
	snprintf(c->authority, sizeof(c->authority), strchr(host, ':') ? "[%s]:%s" : "%s:%s",
		 host, port);
	if ((c->fd = dial(host, port, timeout_ms, why, wlen)) < 0) {
		free(c);
		return H2_LOST;
	}
	if (nghttp2_session_callbacks_new(&cb) != 0) {
		conn_free(c);
		return co_etcd__oom();
	}
	nghttp2_session_callbacks_set_send_callback(cb, send_cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, header_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, data_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, frame_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, close_cb);
	if (nghttp2_session_client_new(&c->s, cb, c) != 0 ||
	    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, set, 1) != 0) {
		nghttp2_session_callbacks_del(cb);
		conn_free(c);
		return co_etcd__oom();
	}
	nghttp2_session_callbacks_del(cb);
	*out = c;
	return 0;
}

/*
 * Whether a pooled connection is still worth a call: nothing but frames
 * (a ping, settings) waiting on it, not its end.  A member that restarted
 * or closed an idle connection shows here, before a request is risked on
 * it.
 */
static int conn_alive(struct h2conn *c)
{
	struct pollfd pfd = {c->fd, POLLIN, 0};
	uint8_t buf[4096];
	ssize_t n;

	while (poll(&pfd, 1, 0) > 0) {
		if (pfd.revents & (POLLERR | POLLNVAL))
			return 0;
		if ((n = recv(c->fd, buf, sizeof(buf), 0)) <= 0)
			return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
		if (nghttp2_session_mem_recv(c->s, buf, (size_t)n) < 0)
			return 0;
	}
	return nghttp2_session_want_read(c->s) || nghttp2_session_want_write(c->s);
}

/* A connection-level failure: lost, or not HTTP/2 if no SETTINGS came. */
static int failed(const struct h2conn *c)
{
	return c->settings_seen ? H2_LOST : H2_NOT_H2;
}

/* One call on c, answered or not by `deadline`. */
static int conn_call(struct h2conn *c, co_grpc_reply *reply, const char *path,
		     const char *token, const co_grpc_buf *request, int64_t deadline)
{
	nghttp2_nv nv[7];
	nghttp2_data_provider dp;
	size_t n = 0;
	uint8_t buf[16384];

#define NV(k, v)                                                                        \
	do {                                                                            \
		nv[n].name = (uint8_t *)(k);                                            \
		nv[n].value = (uint8_t *)(v);                                           \
		nv[n].namelen = strlen(k);                                              \
		nv[n].valuelen = strlen(v);                                             \
		nv[n].flags = NGHTTP2_NV_FLAG_NONE;                                     \
		n++;                                                                    \
	} while (0)
	NV(":method", "POST");
	NV(":scheme", "http");
	NV(":authority", c->authority);
	NV(":path", path);
	NV("content-type", "application/grpc");
	NV("te", "trailers");
	if (token)
		NV("token", token);
#undef NV
	c->reply = reply;
	c->req = request;
	c->req_off = 0;
	c->closed = c->reset = c->answered = c->body_error = 0;
	c->why[0] = '\0';
	dp.source.ptr = NULL;
	dp.read_callback = body_read_cb;
	if ((c->stream = nghttp2_submit_request(c->s, NULL, nv, n, &dp, c)) < 0) {
		snprintf(c->why, sizeof(c->why), "%s", nghttp2_strerror(c->stream));
		return H2_LOST;
	}
	for (;;) {
		struct pollfd pfd;
		int64_t left;
		ssize_t got;
		int rc;

		if ((rc = nghttp2_session_send(c->s)) != 0) {
			if (!c->why[0])
				snprintf(c->why, sizeof(c->why), "%s", nghttp2_strerror(rc));
			return failed(c);
		}
		if (c->closed)
			break;
		if (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s)) {
			if (!c->why[0])
				snprintf(c->why, sizeof(c->why),
					 "the connection was closed (GOAWAY)");
			return failed(c);
		}
		if ((left = deadline - co_etcd__now_ms()) <= 0)
			return H2_TIMEOUT;
		pfd.fd = c->fd;
		pfd.events = POLLIN | (nghttp2_session_want_write(c->s) ? POLLOUT : 0);
		pfd.revents = 0;
		if ((rc = poll(&pfd, 1, (int)(left > INT32_MAX ? INT32_MAX : left))) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(c->why, sizeof(c->why), "poll: %s", strerror(errno));
			return H2_LOST;
		}
		if (rc == 0)
			return H2_TIMEOUT;
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if ((got = recv(c->fd, buf, sizeof(buf), 0)) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			snprintf(c->why, sizeof(c->why), "%s", strerror(errno));
			return failed(c);
		}
		if (got == 0) {
			snprintf(c->why, sizeof(c->why), "the server closed the connection");
			return failed(c);
		}
		if (!c->heard && got >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
			c->http1 = 1;
			snprintf(c->why, sizeof(c->why), "the answer is HTTP/1, not HTTP/2");
			return H2_NOT_H2;
		}
		c->heard = 1;
		if ((rc = (int)nghttp2_session_mem_recv(c->s, buf, (size_t)got)) < 0) {
			snprintf(c->why, sizeof(c->why), "%s", nghttp2_strerror(rc));
			return failed(c);
		}
	}
	nghttp2_session_send(c->s); /* window updates, acks: best effort */
	c->reply = NULL;
	if (c->body_error)
		return c->body_error;
	/* Reset part way (a member going down): no answer, not a server
	 * that does not speak gRPC. */
	if (!c->answered || c->reset) {
		if (!c->why[0])
			snprintf(c->why, sizeof(c->why), "the stream closed unanswered");
		return H2_LOST;
	}
	return 0;
}

static struct h2conn *pool_take(struct co_etcd__h2 *p, size_t endpoint)
{
	struct h2conn *c, *stale = NULL, **pp;

	pthread_mutex_lock(&p->lock);
	for (pp = &p->idle; (c = *pp) != NULL; pp = &c->next)
		if (c->endpoint == endpoint)
			break;
	if (c) {
		*pp = c->next;
		p->n_idle--;
	} else if (p->idle) {
		/* One to a member no longer in use: closed, so that fds do not
		 * pile up with failovers. */
		stale = p->idle;
		p->idle = stale->next;
		p->n_idle--;
	}
	pthread_mutex_unlock(&p->lock);
	conn_free(stale);
	if (c && !conn_alive(c)) {
		conn_free(c);
		c = NULL;
	}
	if (c)
		c->next = NULL;
	return c;
}

static void pool_put(struct co_etcd__h2 *p, struct h2conn *c)
{
	pthread_mutex_lock(&p->lock);
	if (p->n_idle < POOL_MAX) {
		c->next = p->idle;
		p->idle = c;
		p->n_idle++;
		c = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	conn_free(c);
}

int co_etcd__h2_new(struct co_etcd__h2 **out, const struct etcd *e)
{
	struct co_etcd__h2 *p;
	size_t i;

	*out = NULL;
	for (i = 0; i < e->n_endpoints; i++)
		if (strncmp(e->endpoints[i], "http://", 7) != 0)
			return 0; /* TLS: the gateway, through libcurl */
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return co_etcd__oom();
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

void co_etcd__h2_free(struct co_etcd__h2 *p)
{
	struct h2conn *c;

	if (p == NULL)
		return;
	while ((c = p->idle) != NULL) {
		p->idle = c->next;
		conn_free(c);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void note(char *why, size_t len, const char *endpoint, const char *what)
{
	size_t used = strlen(why);

	snprintf(why + used, len - used, "%s%s: %s", used ? "; " : "", endpoint, what);
}

/*
 * POST request to <endpoint>/etcdserverpb.KV/<method> on the endpoints,
 * starting with the one that answered last, moving on when one cannot be
 * reached, times out, answers UNAVAILABLE (no leader) or fails before it
 * said it speaks HTTP/2, while others are left.  A call on a kept
 * connection that dies before any answer is tried once more on a new one.
 * The caller's bound (co_store_call_timeout) covers every endpoint tried,
 * connecting included.  0 when a server answered (reply filled in);
 * CO_ETCD_H2_NOT_GRPC when an endpoint answered in HTTP/1 (e->no_grpc is
 * set: the gateway from now on) or when none answered and one of them
 * failed before its SETTINGS (the gateway, for this call); CO_EUNAVAIL
 * naming each endpoint tried; CO_ENOMEM; what the reply's sink returned.
 */
int co_etcd__h2_post(co_grpc_reply *reply, struct etcd *e, const char *method,
		     const char *token, const co_grpc_buf *request)
{
	struct co_etcd__h2 *p = e->h2;
	char path[64], why[1024] = "";
	int64_t start = co_etcd__now_ms(), limit = e->request_timeout_ms;
	int bound = co_store__call_timeout();
	size_t first, k;
	int retried = 0, not_h2 = 0;

	if (p == NULL)
		return CO_ETCD_H2_NOT_GRPC;
	snprintf(path, sizeof(path), "/etcdserverpb.KV/%s", method);
	if (bound > 0 && bound < e->request_timeout_ms)
		limit = bound;
	pthread_mutex_lock(&e->lock);
	first = e->current;
	pthread_mutex_unlock(&e->lock);
	for (k = 0; k < e->n_endpoints; k++) {
		size_t i = (first + k) % e->n_endpoints;
		/* With a bound, one deadline for the whole call; without, each
		 * endpoint gets the request timeout, connecting included. */
		int64_t deadline = bound > 0 ? start + limit : co_etcd__now_ms() + limit;
		int64_t left = deadline - co_etcd__now_ms();
		struct h2conn *c;
		char what[320];
		int rc, reused;

		if (left <= 0) {
			snprintf(what, sizeof(what), "no time left within %lld ms",
				 (long long)limit);
			note(why, sizeof(why), "", what);
			break;
		}
		reply->http = 0;
		reply->http2 = 1;
		reply->grpc_status = -1;
		reply->grpc_message[0] = '\0';
		reply->grpc_body = 0;
		if (reply->raw)
			reply->raw->len = 0;
		if ((c = pool_take(p, i)) == NULL) {
			rc = conn_open(&c, e, i,
				       (int)(left < e->connect_timeout_ms ? left
									 : e->connect_timeout_ms),
				       what, sizeof(what));
			if (rc < 0)
				return rc;
			if (rc == H2_NOT_H2) {
				atomic_store(&e->no_grpc, 1);
				return CO_ETCD_H2_NOT_GRPC;
			}
			if (rc == H2_LOST) {
				note(why, sizeof(why), e->endpoints[i], what);
				continue;
			}
		}
		reused = c->calls++ > 0;
		co_etcd__round_trip(e);
		rc = conn_call(c, reply, path, token, request, deadline);
		if (rc == 0) {
			pool_put(p, c);
			/* No leader on this member: another one may have one. */
			if (reply->grpc_status == 14 && k + 1 < e->n_endpoints) {
				snprintf(what, sizeof(what), "UNAVAILABLE: %s",
					 reply->grpc_message);
				note(why, sizeof(why), e->endpoints[i], what);
				continue;
			}
			pthread_mutex_lock(&e->lock);
			e->current = i;
			pthread_mutex_unlock(&e->lock);
			return 0;
		}
		snprintf(what, sizeof(what), "%s",
			 rc == H2_TIMEOUT ? "timed out" : c->why[0] ? c->why : "failed");
		if (rc == H2_NOT_H2 && c->http1) {
			conn_free(c);
			atomic_store(&e->no_grpc, 1);
			return CO_ETCD_H2_NOT_GRPC;
		}
		conn_free(c);
		if (rc < 0)
			return rc;
		if (rc == H2_LOST && reused && !retried) {
			/* The member closed a kept connection as the call went out:
			 * the same member, on a new one. */
			retried = 1;
			k--;
			continue;
		}
		if (rc == H2_NOT_H2)
			not_h2 = 1;
		if (rc == H2_TIMEOUT) {
			snprintf(what, sizeof(what), "timed out after %lld ms",
				 (long long)(co_etcd__now_ms() - start));
			if (bound > 0 && limit == bound)
				co_store__bound_ran_out();
			if (e->n_endpoints > 1) {
				pthread_mutex_lock(&e->lock);
				if (e->current == i)
					e->current = (i + 1) % e->n_endpoints;
				pthread_mutex_unlock(&e->lock);
			}
		}
		note(why, sizeof(why), e->endpoints[i], what);
	}
	if (not_h2)
		return CO_ETCD_H2_NOT_GRPC;
	return co_error_set(CO_EUNAVAIL, "etcd %s after %lld ms (gRPC %s)", why,
			    (long long)(co_etcd__now_ms() - start), method);
}

#endif /* CO_HAVE_NGHTTP2 */
