/*
 * git_stream.c - a bound on every network call of the git store: libgit2's
 * plain socket stream replaced by one that never waits longer than the
 * store's remote timeout for a server to answer.
 *
 * libgit2 1.5 (Debian 12) has no server timeout (GIT_OPT_SET_SERVER_TIMEOUT
 * came in 1.7): a server that accepts and then answers nothing (a
 * SIGSTOPped daemon, a dead NFS under it, a partition) blocks a fetch or a
 * push in recv() forever, holding the store's remote lock, and the breaker never hears
 * of a failure.  So we register our own GIT_STREAM_STANDARD stream
 * (git_stream_register), which libgit2's git:// and http:// transports open
 * through git_socket_stream_new().  It connects non-blocking and does every
 * read and write through poll() with a wait of at most
 *   - the silence bound: no byte moved for `timeout_ms` ("no answer in 3.0 s"),
 *   - the whole call's deadline: `overall_ms` from co_git__net_begin (a
 *     server that trickles a byte just inside the silence bound).
 * A caller's short bound (co_store_call_timeout: a mirror's or the health
 * probe's 250 ms) is deliberately not applied: a fetch from a healthy
 * remote across a WAN takes several round trips, and the health probe's
 * bound counting as a failure would open the breaker of a slow but
 * healthy remote.
 *
 * What gets the bound (checked against libgit2 v1.5.1's source):
 *   git://  transports/git.c opens git_socket_stream_new(): yes.
 *   http:// transports/httpclient.c opens git_socket_stream_new(): yes.
 *   https:// git_tls_stream_new() -> git_mbedtls_stream_new() (Debian's
 *           build; OpenSSL's is the same) opens git_socket_stream_new() and
 *           wraps it, so TLS reads and writes come through here too: yes.
 *   ssh://  transports/ssh.c opens git_socket_stream_new() and connects it
 *           (bounded), then casts it to libgit2's private git_socket_stream
 *           and hands its fd to libssh2, which does its own blocking I/O:
 *           the connect is bounded, the session is NOT.  For that cast our
 *           stream starts with git_socket_stream's exact layout (parent,
 *           host, port, socket) and leaves the socket blocking between calls
 *           (our reads and writes use MSG_DONTWAIT).
 *   Name resolution (getaddrinfo) is not bounded.
 *
 * The bounds are per thread (set around one fetch or push by git_store.c);
 * a thread that set none gets CO_GIT_REMOTE_TIMEOUT_MS.  The stream
 * registration is process-wide and stays for the life of the process.
 */
#include "git_private.h"

#include "../core/error.h"

#include <git2/sys/stream.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Must stay layout-compatible with libgit2 1.5's git_socket_stream
 * (src/libgit2/streams/socket.h): the ssh transport reads `s`. */
typedef struct gs_sock {
	git_stream parent;
	char *host;
	char *port;
	int s;
} gs_sock;

static _Thread_local int tl_timeout_ms;	  /* silence bound; 0: the default */
static _Thread_local int64_t tl_deadline; /* mono ms the call must end by; 0: none */
static _Thread_local int tl_ran_out;	  /* CO_GIT__NET_* of the last miss */

void co_git__net_begin(int timeout_ms, int overall_ms)
{
	tl_timeout_ms = timeout_ms > 0 ? timeout_ms : CO_GIT_REMOTE_TIMEOUT_MS;
	tl_deadline = overall_ms > 0 ? co_git__mono_ms() + overall_ms : 0;
	tl_ran_out = 0;
}

int co_git__net_end(void)
{
	int r = tl_ran_out;

	tl_timeout_ms = 0;
	tl_deadline = 0;
	tl_ran_out = 0;
	return r;
}

int co_git__net_ran_out(void)
{
	return tl_ran_out;
}

int co_git__net_timeout_ms(void)
{
	return tl_timeout_ms > 0 ? tl_timeout_ms : CO_GIT_REMOTE_TIMEOUT_MS;
}

/* What the bound that ran out was, for libgit2's error text (the store
 * writes its own message from co_git__net_ran_out()). */
static void gs_net_miss(int why, const char *host, const char *what)
{
	char msg[200];

	tl_ran_out = why;
	if (why == CO_GIT__NET_SILENT)
		snprintf(msg, sizeof(msg), "%s: %s: no answer in %.1f s", host, what,
			 co_git__net_timeout_ms() / 1000.0);
	else
		snprintf(msg, sizeof(msg), "%s: %s: not done within the call's deadline",
			 host, what);
	git_error_set_str(GIT_ERROR_NET, msg);
}

/*
 * Wait for `events` on fd within the bounds: 1 ready, 0 a bound ran out
 * (libgit2's error set), -1 poll failed.
 */
static int gs_wait(int fd, short events, const char *host, const char *what)
{
	int64_t now = co_git__mono_ms();
	int64_t until = now + co_git__net_timeout_ms();
	int why = CO_GIT__NET_SILENT;
	struct pollfd p;
	int n;

	if (tl_deadline && tl_deadline < until) {
		until = tl_deadline;
		why = CO_GIT__NET_DEADLINE;
	}
	for (;;) {
		int64_t left = until - co_git__mono_ms();

		if (left <= 0) {
			gs_net_miss(why, host, what);
			return 0;
		}
		p.fd = fd;
		p.events = events;
		p.revents = 0;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 1; /* ready, or an error/hangup the next call reports */
		if (n < 0 && errno != EINTR) {
			char msg[160];

			snprintf(msg, sizeof(msg), "%s: poll: %s", host, strerror(errno));
			git_error_set_str(GIT_ERROR_OS, msg);
			return -1;
		}
	}
}

static int gs_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* One address: 0 connected, 1 refused or unreachable (try the next),
 * -1 a bound ran out (give up: every address would wait as long). */
static int gs_connect_one(int *out, gs_sock *st, const struct addrinfo *ai)
{
	int fd, err = 0, r;
	socklen_t len = sizeof(err);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return 1;
	if (gs_set_nonblock(fd, 1) < 0)
		goto next;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			goto next;
		if ((r = gs_wait(fd, POLLOUT, st->host, "connect")) <= 0) {
			close(fd);
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
			goto next;
	}
	/* blocking again between calls: libssh2 takes this fd as it is */
	if (gs_set_nonblock(fd, 0) < 0)
		goto next;
	*out = fd;
	return 0;
next:
	close(fd);
	return 1;
}

static int gs_sock_connect(git_stream *stream)
{
	gs_sock *st = (gs_sock *)stream;
	struct addrinfo hints, *info = NULL, *p;
	int fd = -1, r = 1, ret;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	if ((ret = getaddrinfo(st->host, st->port, &hints, &info)) != 0) {
		char msg[300];

		snprintf(msg, sizeof(msg), "failed to resolve address for %s: %s",
			 st->host, gai_strerror(ret));
		git_error_set_str(GIT_ERROR_NET, msg);
		return -1;
	}
	for (p = info; p && r == 1; p = p->ai_next)
		r = gs_connect_one(&fd, st, p);
	freeaddrinfo(info);
	if (r == 0) {
		st->s = fd;
		return 0;
	}
	if (r == 1) {
		char msg[300];

		snprintf(msg, sizeof(msg), "failed to connect to %s", st->host);
		git_error_set_str(GIT_ERROR_OS, msg);
	}
	return -1;
}

static ssize_t gs_sock_read(git_stream *stream, void *data, size_t len)
{
	gs_sock *st = (gs_sock *)stream;

	for (;;) {
		ssize_t n;
		int r;

		if ((r = gs_wait(st->s, POLLIN, st->host, "read")) <= 0)
			return -1;
		n = recv(st->s, data, len, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			char msg[300];

			snprintf(msg, sizeof(msg), "error receiving socket data: %s",
				 strerror(errno));
			git_error_set_str(GIT_ERROR_NET, msg);
			return -1;
		}
	}
}

static ssize_t gs_sock_write(git_stream *stream, const char *data, size_t len, int flags)
{
	gs_sock *st = (gs_sock *)stream;

	for (;;) {
		ssize_t n;
		int r;

		if ((r = gs_wait(st->s, POLLOUT, st->host, "write")) <= 0)
			return -1;
		n = send(st->s, data, len, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0)
			return n; /* libgit2 writes the rest (git_stream__write_full) */
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			char msg[300];

			snprintf(msg, sizeof(msg), "error sending data: %s",
				 strerror(errno));
			git_error_set_str(GIT_ERROR_NET, msg);
			return -1;
		}
	}
}

static int gs_sock_close(git_stream *stream)
{
	gs_sock *st = (gs_sock *)stream;
	int r = 0;

	if (st->s >= 0)
		r = close(st->s);
	st->s = -1;
	return r;
}

static void gs_sock_free(git_stream *stream)
{
	gs_sock *st = (gs_sock *)stream;

	if (st->s >= 0)
		close(st->s);
	free(st->host);
	free(st->port);
	free(st);
}

static int gs_sock_new(git_stream **out, const char *host, const char *port)
{
	gs_sock *st = calloc(1, sizeof(*st));

	if (!st || !(st->host = strdup(host)) || !(st->port = strdup(port ? port : ""))) {
		if (st)
			free(st->host);
		free(st);
		git_error_set_oom();
		return -1;
	}
	st->s = -1;
	st->parent.version = GIT_STREAM_VERSION;
	st->parent.connect = gs_sock_connect;
	st->parent.read = gs_sock_read;
	st->parent.write = gs_sock_write;
	st->parent.close = gs_sock_close;
	st->parent.free = gs_sock_free;
	*out = &st->parent;
	return 0;
}

int co_git__stream_register(void)
{
	git_stream_registration reg;

	memset(&reg, 0, sizeof(reg));
	reg.version = GIT_STREAM_VERSION;
	reg.init = gs_sock_new;
	return git_stream_register(GIT_STREAM_STANDARD, &reg);
}
