/*
 * server_guard.c - what keeps hostile or broken clients from starving the
 * others (issue 16): the read deadline that cuts a slowloris, the bound on
 * requests in flight (429 rather than an unbounded pile of threads), the
 * URL unescaper that keeps "%00" out of paths, and the TLS files; and
 * what keeps serve from running a request nobody waits for any more: the
 * queue deadline on a wait for an in-flight slot, and the look at the
 * client's socket before a write reaches a store.
 *
 * libmicrohttpd's own connection timeout is an idle timeout: a client that
 * sends one header byte every few seconds never trips it, and with a thread
 * per connection each such client holds a thread.  So every connection is
 * tracked here from its accept, and a reaper thread shuts down the socket
 * of one that has spent more than request_timeout_ms receiving a request.
 * The connection's own thread then sees the end of its input and
 * libmicrohttpd closes it as it would any other; the socket itself is
 * never closed here.  The slot of a connection leaves the list (under the
 * lock) when libmicrohttpd says it closed, before it closes the socket, so
 * the reaper never shuts down a descriptor that was reused.
 *
 * The reaper also hands freed heap back to the system every 30 s
 * (malloc_trim).  glibc keeps what each malloc arena once held: in the
 * soak the live heap peaked at 14 MB while the arenas held 47 MB, and
 * their total kept climbing as the task set grew (issue 16).  `cutover
 * serve` also caps the arenas (cmd_serve.c); the trim is here so that a
 * server embedded in another program gets it too.
 */
#include "server_internal.h"

#include "core/error.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* How often the reaper looks, at most (less when the timeout is short). */
#define REAPER_TICK_MS 250
/* How often it hands freed heap back to the system. */
#define TRIM_EVERY_MS 30000

typedef struct conn_slot {
	struct conn_slot *prev, *next;
	co_server *srv;
	int fd;
	int busy;	  /* a complete request is being handled or answered */
	int cut;	  /* shut down by the reaper already */
	int64_t since_ms; /* when the clock started (accept, last answer) */
} conn_slot;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void co_server__on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			      enum MHD_ConnectionNotificationCode toe)
{
	co_server *s = cls;
	conn_slot *x = *socket_context;
	const union MHD_ConnectionInfo *ci;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		/* Out of memory: untracked, left to the idle timeout. */
		if (ci == NULL || (x = calloc(1, sizeof(*x))) == NULL)
			return;
		x->srv = s;
		x->fd = ci->connect_fd;
		x->since_ms = now_ms();
		pthread_mutex_lock(&s->conns_lock);
		x->next = s->conns;
		if (s->conns)
			s->conns->prev = x;
		s->conns = x;
		pthread_mutex_unlock(&s->conns_lock);
		*socket_context = x;
		return;
	}
	if (x == NULL)
		return;
	pthread_mutex_lock(&s->conns_lock);
	if (x->prev)
		x->prev->next = x->next;
	else
		s->conns = x->next;
	if (x->next)
		x->next->prev = x->prev;
	pthread_mutex_unlock(&s->conns_lock);
	free(x);
	*socket_context = NULL;
}

void co_server__conn_busy(struct MHD_Connection *c, int busy)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	conn_slot *x = ci ? ci->socket_context : NULL;

	if (x == NULL)
		return;
	pthread_mutex_lock(&x->srv->conns_lock);
	x->busy = busy;
	if (!busy)
		x->since_ms = now_ms();
	pthread_mutex_unlock(&x->srv->conns_lock);
}

static void *reaper_main(void *p)
{
	co_server *s = p;
	int tick = s->request_timeout_ms / 4;
	struct timespec until;
	conn_slot *x;
	int64_t now, trimmed = now_ms();

	if (tick > REAPER_TICK_MS)
		tick = REAPER_TICK_MS;
	if (tick < 10)
		tick = 10;
	pthread_mutex_lock(&s->conns_lock);
	while (!s->reaper_stop) {
		now = now_ms();
		for (x = s->conns; x; x = x->next)
			if (!x->busy && !x->cut &&
			    now - x->since_ms > (int64_t)s->request_timeout_ms) {
				/* Wakes the connection's thread with an end of
				 * input; libmicrohttpd closes it. */
				shutdown(x->fd, SHUT_RDWR);
				x->cut = 1;
			}
#ifdef __GLIBC__
		if (now - trimmed >= TRIM_EVERY_MS) {
			pthread_mutex_unlock(&s->conns_lock);
			malloc_trim(0);
			pthread_mutex_lock(&s->conns_lock);
			trimmed = now;
			continue; /* the list may have changed meanwhile */
		}
#endif
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)tick * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&s->conns_cond, &s->conns_lock, &until);
	}
	pthread_mutex_unlock(&s->conns_lock);
	return NULL;
}

void co_server__guard_init(co_server *s)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->conns_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&s->conns_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->slots_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&s->slots_lock, NULL);
}

int co_server__guard_start(co_server *s)
{
	int rc;

	if ((rc = pthread_create(&s->reaper, NULL, reaper_main, s)) != 0)
		return co_error_set(CO_EIO, "server: cannot start the reaper: %s",
				    strerror(rc));
	s->reaper_started = 1;
	return 0;
}

void co_server__guard_stop(co_server *s)
{
	conn_slot *x, *next;

	if (s->reaper_started) {
		pthread_mutex_lock(&s->conns_lock);
		s->reaper_stop = 1;
		pthread_cond_broadcast(&s->conns_cond);
		pthread_mutex_unlock(&s->conns_lock);
		pthread_join(s->reaper, NULL);
		s->reaper_started = 0;
	}
	/* libmicrohttpd has said every connection closed by now. */
	for (x = s->conns; x; x = next) {
		next = x->next;
		free(x);
	}
	s->conns = NULL;
	pthread_cond_destroy(&s->conns_cond);
	pthread_mutex_destroy(&s->conns_lock);
	pthread_cond_destroy(&s->slots_cond);
	pthread_mutex_destroy(&s->slots_lock);
}

/* --- in flight --- */

static int slot_free(co_server *s)
{
	return atomic_load(&s->inflight) < s->max_inflight;
}

int co_server__inflight_enter(co_server *s, struct MHD_Connection *c)
{
	struct timespec until;
	int64_t end;
	int got;

	pthread_mutex_lock(&s->slots_lock);
	if (slot_free(s) || s->queue_deadline_ms <= 0) {
		got = slot_free(s);
		if (got)
			atomic_fetch_add(&s->inflight, 1);
		pthread_mutex_unlock(&s->slots_lock);
		if (!got)
			atomic_fetch_add(&s->refused_full, 1);
		return got;
	}
	/* Queued: the read deadline does not run while serve makes it wait
	 * (it restarts, for the body, once a slot is taken). */
	co_server__conn_busy(c, 1);
	atomic_fetch_add(&s->queued, 1);
	end = now_ms() + s->queue_deadline_ms;
	until.tv_sec = (time_t)(end / 1000);
	until.tv_nsec = (long)(end % 1000) * 1000000L;
	while (!slot_free(s) && !atomic_load(&s->stopping) &&
	       pthread_cond_timedwait(&s->slots_cond, &s->slots_lock, &until) == 0)
		;
	got = slot_free(s) && !atomic_load(&s->stopping);
	if (got)
		atomic_fetch_add(&s->inflight, 1);
	atomic_fetch_sub(&s->queued, 1);
	pthread_mutex_unlock(&s->slots_lock);
	co_server__conn_busy(c, 0);
	if (!got) {
		atomic_fetch_add(&s->refused_deadline, 1);
		return -1;
	}
	return 1;
}

void co_server__inflight_leave(co_server *s)
{
	pthread_mutex_lock(&s->slots_lock);
	atomic_fetch_sub(&s->inflight, 1);
	if (atomic_load(&s->queued) > 0) /* all: one may be timing out */
		pthread_cond_broadcast(&s->slots_cond);
	pthread_mutex_unlock(&s->slots_lock);
}

/* --- requests nobody waits for --- */

int co_server__client_still_there(co_server *s, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct pollfd p;
	char b;
	ssize_t n;

	if (ci == NULL)
		return 0;
	p.fd = ci->connect_fd;
	p.events = POLLIN;
	p.revents = 0;
	/* Readable with nothing to read is the client's end of stream (a
	 * reset is an error): the request was complete, so a client still
	 * there sends nothing more until it has its answer. */
	if (poll(&p, 1, 0) != 1)
		return 0;
	if (!(p.revents & (POLLHUP | POLLERR))) {
		n = recv(p.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
					errno == EINTR)))
			return 0;
	}
	atomic_fetch_add(&s->refused_gone, 1);
	return co_error_set(CO_EUNAVAIL,
			    "the client closed its connection before the store was "
			    "called: not run");
}

int co_server__guard_metrics(char **buf, size_t *len, size_t *cap, co_server *s)
{
	return co_metrics_appendf(
	    buf, len, cap,
	    "# HELP cutover_http_inflight Requests being handled (max_inflight bounds "
	    "it).\n# TYPE cutover_http_inflight gauge\ncutover_http_inflight %d\n"
	    "# HELP cutover_http_queued Requests waiting for an in-flight slot.\n"
	    "# TYPE cutover_http_queued gauge\ncutover_http_queued %d\n"
	    "# HELP cutover_http_refused_total Requests refused before any store was "
	    "called, by reason (inflight_full: 429; queue_deadline: waited past "
	    "serve.queue_deadline, 503; client_gone: the client closed first).\n"
	    "# TYPE cutover_http_refused_total counter\n"
	    "cutover_http_refused_total{reason=\"inflight_full\"} %lld\n"
	    "cutover_http_refused_total{reason=\"queue_deadline\"} %lld\n"
	    "cutover_http_refused_total{reason=\"client_gone\"} %lld\n",
	    atomic_load(&s->inflight), atomic_load(&s->queued),
	    (long long)atomic_load(&s->refused_full),
	    (long long)atomic_load(&s->refused_deadline),
	    (long long)atomic_load(&s->refused_gone));
}

/* --- URLs --- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * As libmicrohttpd's MHD_http_unescape, but "%00" stays as it is: decoded,
 * it would cut the path short ("/v1/tasks/T1%00/../x" read as T1), while
 * kept, its '%' fails the ID rule.
 */
size_t co_server__unescape(void *cls, struct MHD_Connection *c, char *s)
{
	char *r = s, *w = s;
	int hi, lo;

	(void)cls;
	(void)c;
	while (*r) {
		if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 &&
		    (hi | lo) != 0) {
			*w++ = (char)(hi * 16 + lo);
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

/* --- TLS --- */

/* Largest PEM file read: a certificate chain is a few KiB. */
#define PEM_MAX (1024 * 1024)

int co_server__read_pem(char **out, const char *path, const char *what)
{
	FILE *f;
	char *buf;
	size_t n;

	/* A missing or unreadable file is the operator's to fix: bad input. */
	if ((f = fopen(path, "rb")) == NULL)
		return co_error_set(errno == ENOENT || errno == EACCES ? CO_EINVAL
								       : CO_EIO,
				    "%s %s: %s", what, path, strerror(errno));
	if ((buf = malloc(PEM_MAX + 1)) == NULL) {
		fclose(f);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	n = fread(buf, 1, PEM_MAX + 1, f);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return co_error_set(CO_EIO, "%s %s: cannot read it", what, path);
	}
	fclose(f);
	if (n == 0 || n > PEM_MAX) {
		free(buf);
		return co_error_set(CO_EINVAL, "%s %s: %s", what, path,
				    n ? "over 1 MiB: not a PEM file" : "empty");
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}
