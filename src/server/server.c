/*
 * server.c - the HTTP/JSON face of the router (DESIGN §7): requests in,
 * dispatch, and the daemon's lifecycle.  The handlers live by job in
 * server_tasks.c, server_admin.c and server_watch.c (server_internal.h).
 *
 * libmicrohttpd runs one thread per connection; each request's body is
 * gathered (at most CO_SERVER_BODY_MAX bytes: the rest is read and thrown
 * away, then 413) and dispatched once complete, by path and method, to a
 * handler that fills a reply; this file then sends it.  GET /v1/watch
 * alone answers with a stream of its own (server_watch.c).
 */
#include "server_internal.h"

#include "core/error.h"
#include "core/id.h"
#include "core/outbox.h"
#include "core/state.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* --- dispatch --- */

/*
 * An admin request refused (401/403): one row in the ops audit log and a
 * line in the serve log, as a refused swarm write (swarm_auth.h); never
 * the presented token.  `what` is the client's path: cut short, made
 * printable.
 */
static void admin_refused(co_server *s, struct MHD_Connection *c, int status,
			  const char *what)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	char id[CO_ID_MAX + 1];
	size_t i;

	/* Printable ASCII only: a newline in the path must not forge a line
	 * of the serve log, nor odd bytes reach the audit database. */
	snprintf(id, sizeof(id), "%s", what);
	for (i = 0; id[i]; i++)
		if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
			id[i] = '?';
	co_swarm_auth_refused(s->state, s->log, s->log_ctx, "admin", id, status,
			      status == 403 ? "admin endpoints are disabled"
			      : h	    ? "wrong admin token"
					    : "no bearer token",
			      ci ? (const void *)ci->client_addr : NULL);
}

/* url is the decoded path; a copy is cut into segments here. */
static void dispatch(reply *rp, co_server *s, struct MHD_Connection *c,
		     const char *method, const char *url, const req *rq)
{
	int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	char buf[CO_ID_MAX + 32], *path = NULL, *id, *act;

	if (rq->too_big) {
		co_server__reply_err(rp, 413, "too_large", "request body over 1 MiB",
				     NULL);
		return;
	}
	if (strcmp(url, "/healthz") == 0) {
		get ? co_server__healthz(rp, s) : co_server__bad_method(rp);
		return;
	}
	if (strcmp(url, "/metrics") == 0) {
		get ? co_server__metrics(rp, s) : co_server__bad_method(rp);
		return;
	}
	if (strcmp(url, "/v1/watch") == 0) {
		co_server__bad_method(rp); /* GET was taken by on_request() */
		return;
	}
	if (strncmp(url, "/v1/admin/", 10) == 0) {
		if (co_server__admin_auth(rp, s, c) == 0)
			co_server__admin(rp, s, c, rq, url + 10, post);
		else
			admin_refused(s, c, rp->status, url + 10);
		return;
	}
	if (strcmp(url, "/v1/tasks") == 0) {
		if (post)
			co_server__task_create(rp, s, c, rq);
		else if (get)
			co_server__list(rp, s, CO_KIND_TASK,
					MHD_lookup_connection_value(
					    c, MHD_GET_ARGUMENT_KIND, "status"));
		else
			co_server__bad_method(rp);
		return;
	}
	if (strcmp(url, "/v1/swarms") == 0) {
		if (post)
			co_server__swarm_register(rp, s, c, rq);
		else if (get)
			co_server__list(rp, s, CO_KIND_SWARM, NULL);
		else
			co_server__bad_method(rp);
		return;
	}
	/* A copy to cut into segments: on the stack for any path an ID fits. */
	if (strlen(url) < sizeof(buf))
		path = memcpy(buf, url, strlen(url) + 1);
	else if ((path = strdup(url)) == NULL) {
		co_error_set(CO_ENOMEM, "out of memory");
		co_server__reply_code(rp, CO_ENOMEM, NULL);
		return;
	}
	if (strncmp(path, "/v1/tasks/", 10) == 0) {
		id = path + 10;
		act = strchr(id, '/');
		if (act)
			*act++ = '\0';
		if (!co_server__id_ok(rp, id))
			goto done;
		if (act == NULL)
			get ? co_server__get(rp, s, CO_KIND_TASK, id)
			    : co_server__bad_method(rp);
		else if (!post)
			strcmp(act, "claim") && strcmp(act, "release") &&
				strcmp(act, "renew")
			    ? co_server__not_found(rp)
			    : co_server__bad_method(rp);
		else if (strcmp(act, "claim") == 0)
			co_server__task_act(rp, s, c, rq, id, ACT_CLAIM);
		else if (strcmp(act, "release") == 0)
			co_server__task_act(rp, s, c, rq, id, ACT_RELEASE);
		else if (strcmp(act, "renew") == 0)
			co_server__task_act(rp, s, c, rq, id, ACT_RENEW);
		else
			co_server__not_found(rp);
	} else if (strncmp(path, "/v1/swarms/", 11) == 0) {
		id = path + 11;
		if (strchr(id, '/'))
			co_server__not_found(rp);
		else if (co_server__id_ok(rp, id))
			get ? co_server__get(rp, s, CO_KIND_SWARM, id)
			    : co_server__bad_method(rp);
	} else {
		co_server__not_found(rp);
	}
done:
	if (path != buf)
		free(path);
}

static enum MHD_Result send_reply(co_server *s, struct MHD_Connection *c, reply *rp);

/* Forget the body: its buffer freed unless it is the inline one. */
static void req_body_free(req *rq)
{
	if (rq->body != rq->inline_body)
		free(rq->body);
	rq->body = rq->inline_body;
	rq->cap = sizeof(rq->inline_body);
	rq->len = 0;
	rq->body[0] = '\0';
}

/* libmicrohttpd's idle timeout, in its unit: the request timeout, rounded up. */
static unsigned int idle_s(const co_server *s)
{
	return (unsigned int)((s->request_timeout_ms + 999) / 1000);
}

/* 1 if the request is not counted in flight: cheap answers from memory
 * that an orchestrator must get under load, and the long-lived stream. */
static int exempt(const char *url, const char *method)
{
	return strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0 ||
	       (strcmp(url, "/v1/watch") == 0 && strcmp(method, "GET") == 0);
}

/*
 * The headers are in, the body not yet: refuse now what would be refused
 * anyway, before a byte of the body is read (libmicrohttpd then closes
 * the connection rather than read the rest).  A declared body over the
 * limit is 413; one request more than max_inflight is 429.  MHD_YES to go
 * on (or with the refusal queued).
 */
static enum MHD_Result refuse_early(co_server *s, struct MHD_Connection *c,
				    const char *url, const char *method, req *rq)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	reply rp = {0, NULL, NULL};

	if (cl && strtoull(cl, NULL, 10) > (unsigned long long)CO_SERVER_BODY_MAX) {
		rq->too_big = 1;
		co_server__reply_err(&rp, 413, "too_large",
				     "request body over 1 MiB (Content-Length)", NULL);
	} else if (!exempt(url, method)) {
		int in = co_server__inflight_enter(s, c);

		if (in > 0) {
			rq->counted = 1;
			return MHD_YES;
		}
		if (in == 0)
			co_server__reply_err(&rp, 429, "too_many_requests",
					     "too many requests in flight: retry later",
					     NULL);
		else
			co_server__reply_err(&rp, 503, "queue_deadline",
					     "waited past the queue deadline for a slot: "
					     "not run, retry later",
					     NULL);
	} else {
		return MHD_YES;
	}
	co_server__conn_busy(c, 1);
	return send_reply(s, c, &rp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	co_server *s = cls;
	req *rq = *con_cls;
	reply rp = {0, NULL, NULL};

	(void)version;
	if (rq == NULL) {
		/* not calloc: the inline buffer needs no zeroing */
		if ((rq = malloc(sizeof(*rq))) == NULL)
			return MHD_NO;
		memset(rq, 0, offsetof(req, inline_body));
		rq->body = rq->inline_body;
		rq->cap = sizeof(rq->inline_body);
		rq->body[0] = '\0';
		*con_cls = rq;
		return refuse_early(s, c, url, method, rq);
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		/* Past the limit, keep reading (the client is still sending)
		 * but keep nothing: the answer will be 413. */
		if (!rq->too_big && rq->len + n > CO_SERVER_BODY_MAX) {
			rq->too_big = 1;
			req_body_free(rq);
		}
		if (!rq->too_big) {
			if (rq->len + n + 1 > rq->cap) {
				size_t ncap = rq->cap * 2;
				char *nb;

				while (ncap < rq->len + n + 1)
					ncap *= 2;
				if ((nb = malloc(ncap)) == NULL)
					return MHD_NO;
				memcpy(nb, rq->body, rq->len);
				req_body_free(rq);
				rq->body = nb;
				rq->cap = ncap;
			}
			memcpy(rq->body + rq->len, upload_data, n);
			rq->len += n;
			rq->body[rq->len] = '\0';
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	co_error_clear();
	/* The whole request is in: the read deadline no longer applies. */
	co_server__conn_busy(c, 1);
	if (strcmp(url, "/v1/watch") == 0 && strcmp(method, "GET") == 0 && !rq->too_big) {
		int queued;

		/* Long-lived by design: only a client that takes nothing for
		 * this long (it gets a keep-alive every 15 s) is dropped. */
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
					  (unsigned int)CO_SERVER_WATCH_IDLE_S);
		if ((queued = co_server__watch(&rp, s, c)) != 0)
			return queued > 0 ? MHD_YES : MHD_NO;
	} else {
		dispatch(&rp, s, c, method, url, rq);
	}
	/* A handler may take longer than the idle timeout (a reconcile, a
	 * hung store): setting it again restarts its clock, so the answer is
	 * still sent. */
	MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, idle_s(s));
	return send_reply(s, c, &rp);
}

/*
 * Send rp (its body taken, NULL meaning out of memory: 503).  Errors that
 * tell the client when to come back carry Retry-After.
 */
static enum MHD_Result send_reply(co_server *s, struct MHD_Connection *c, reply *rp0)
{
	reply rp = *rp0;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (rp.body == NULL) {
		rp.status = 503;
		rp.ctype = "application/json";
		rp.body =
		    strdup("{\"error\":{\"code\":\"no_memory\",\"message\":\"out of "
			   "memory\"}}");
		if (rp.body == NULL)
			return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(strlen(rp.body), rp.body,
					       MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(rp.body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rp.ctype);
	if (rp.status == 503 || rp.status == 429) {
		char after[16];

		snprintf(after, sizeof(after), "%d",
			 rp.status == 429 ? 1 : co_health_retry_after(s->git, s->etcd));
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, after);
	}
	if (rp.status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	ret = MHD_queue_response(c, (unsigned int)rp.status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	req *rq = *con_cls;

	(void)toe;
	/* The answer is out (or the connection is going): the clock of the
	 * next request on this connection starts now. */
	co_server__conn_busy(c, 0);
	if (rq) {
		if (rq->counted)
			co_server__inflight_leave(cls);
		req_body_free(rq);
		free(rq);
		*con_cls = NULL;
	}
}

/* --- lifecycle --- */

int co_server_read_token(char **out, const char *path)
{
	char line[4096], *p, *e;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	p = fgets(line, sizeof(line), f);
	fclose(f);
	if (p == NULL)
		return co_error_set(CO_EINVAL, "%s: no admin token in the file", path);
	while (*p == ' ' || *p == '\t')
		p++;
	e = p + strlen(p);
	while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (*p == '\0')
		return co_error_set(CO_EINVAL, "%s: no admin token in the file", path);
	if ((*out = strdup(p)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	return 0;
}

/* "HOST:PORT" or "[V6]:PORT" into an address. */
static int parse_listen(struct addrinfo **out, const char *listen)
{
	struct addrinfo hints, *ai = NULL;
	char host[256];
	const char *colon = strrchr(listen, ':'), *h = listen;
	size_t hl;
	int rc;

	if (colon == NULL || colon[1] == '\0')
		return co_error_set(CO_EINVAL, "listen \"%s\": expected HOST:PORT",
				    listen);
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && colon[-1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return co_error_set(CO_EINVAL, "listen \"%s\": bad host", listen);
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0)
		return co_error_set(CO_EINVAL, "listen \"%s\": %s", listen,
				    gai_strerror(rc));
	*out = ai;
	return 0;
}

/* An option of co_server_opts, or its default when 0. */
static intptr_t opt_or(int v, int def)
{
	return v > 0 ? v : def;
}

/* The limits and TLS options of `opts`, before anything starts. */
static int check_limits(const co_server_opts *opts)
{
	int have_cert = opts->tls_cert_file && *opts->tls_cert_file,
	    have_key = opts->tls_key_file && *opts->tls_key_file;

	if (opts->request_timeout_ms < 0 || opts->max_connections < 0 ||
	    opts->max_connections_per_ip < 0 || opts->max_inflight < 0 ||
	    opts->queue_deadline_ms < 0)
		return co_error_set(CO_EINVAL,
				    "server: request timeout %d ms, max connections %d, "
				    "per IP %d, in flight %d, queue deadline %d ms: none "
				    "may be negative",
				    opts->request_timeout_ms, opts->max_connections,
				    opts->max_connections_per_ip, opts->max_inflight,
				    opts->queue_deadline_ms);
	if (have_cert != have_key)
		return co_error_set(CO_EINVAL,
				    "TLS needs both a certificate and its key: %s given "
				    "without %s",
				    have_cert ? "a certificate" : "a key",
				    have_cert ? "a key (--tls-key, serve.tls_key)"
					      : "a certificate (--tls-cert, "
						"serve.tls_cert)");
	if (have_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return co_error_set(CO_EINVAL,
				    "TLS asked for, but this libmicrohttpd is built "
				    "without TLS (GnuTLS): serve plain HTTP behind a TLS "
				    "proxy, or install a libmicrohttpd with it");
	return 0;
}

int co_server_start(co_server **out, const co_server_opts *opts)
{
	const char *listen =
	    opts->listen && *opts->listen ? opts->listen : CO_SERVER_LISTEN_DEFAULT;
	struct addrinfo *ai = NULL;
	const union MHD_DaemonInfo *info;
	unsigned int flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
	co_server *s = NULL;
	int error;

	if (opts->router == NULL || opts->state == NULL || opts->flags == NULL)
		return co_error_set(CO_EINVAL,
				    "server: router, state and flags are required");
	if (opts->reconcile_min_consistency > 1 || opts->reconcile_max_mismatch_ratio > 1)
		return co_error_set(
		    CO_EINVAL, "server: reconcile thresholds %g, %g not in 0..1",
		    opts->reconcile_min_consistency, opts->reconcile_max_mismatch_ratio);
	if ((error = check_limits(opts)) < 0)
		return error;
	if ((error = parse_listen(&ai, listen)) < 0)
		return error;
	/* Before anything starts: an open data plane only on loopback. */
	if ((error = co_swarm_auth_listen_check(ai->ai_addr, listen, opts->swarm_auth,
						opts->insecure_data_plane)) < 0)
		goto done;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	pthread_mutex_init(&s->admin_lock, NULL);
	co_server__guard_init(s);
	s->request_timeout_ms =
	    (int)opt_or(opts->request_timeout_ms, CO_SERVER_REQUEST_TIMEOUT_MS);
	s->max_inflight = (int)opt_or(opts->max_inflight, CO_SERVER_MAX_INFLIGHT);
	s->queue_deadline_ms = opts->queue_deadline_ms;
	if (opts->tls_cert_file &&
	    ((error = co_server__read_pem(&s->tls_cert, opts->tls_cert_file,
					  "TLS certificate")) < 0 ||
	     (error = co_server__read_pem(&s->tls_key, opts->tls_key_file, "TLS key")) <
		 0))
		goto done;
	s->router = opts->router;
	s->state = opts->state;
	s->flags = opts->flags;
	s->git = opts->git;
	s->etcd = opts->etcd;
	s->gate = opts->gate;
	s->gate_ctx = opts->gate_ctx;
	s->min_consistency = opts->reconcile_min_consistency;
	s->max_mismatch_ratio = opts->reconcile_max_mismatch_ratio;
	s->grace_ms = opts->reconcile_grace_ms;
	s->progress = opts->reconcile_progress;
	s->progress_ctx = opts->reconcile_progress_ctx;
	s->swarm_auth = opts->swarm_auth;
	s->log = opts->log;
	s->log_ctx = opts->log_ctx;
	s->reconcile_every_ms = opts->reconcile_every_ms;
	if ((error = co_server__schedule_start(s)) < 0)
		goto done;
	if ((opts->flags_path && (s->flags_path = strdup(opts->flags_path)) == NULL) ||
	    (opts->admin_token && *opts->admin_token &&
	     (s->token = strdup(opts->admin_token)) == NULL)) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = co_metrics_new(&s->metrics)) < 0)
		goto done;
	if ((s->git || s->etcd) &&
	    (error = co_health_start(&s->health, s->git, s->etcd, opts->probe_interval_ms,
				     opts->probe_timeout_ms, co_state_dir(s->state))) < 0)
		goto done;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (s->tls_cert)
		flags |= MHD_USE_TLS;
	/* poll(), not select(): a descriptor past FD_SETSIZE (1024) would
	 * otherwise be refused, and max_connections may go past it. */
	if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
		flags |= MHD_USE_POLL;
	if ((error = co_server__guard_start(s)) < 0)
		goto done;
	{
		struct MHD_OptionItem o[] = {
		    {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
		    {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
		    {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)co_server__on_connection, s},
		    {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)co_server__unescape, s},
		    {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)idle_s(s), NULL},
		    {MHD_OPTION_CONNECTION_LIMIT,
		     opt_or(opts->max_connections, CO_SERVER_MAX_CONNECTIONS), NULL},
		    {MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		     opt_or(opts->max_connections_per_ip,
			    CO_SERVER_MAX_CONNECTIONS_PER_IP),
		     NULL},
		    {MHD_OPTION_CONNECTION_MEMORY_LIMIT, CO_SERVER_HEADER_MAX, NULL},
		    {s->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0,
		     s->tls_cert},
		    {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
		    {MHD_OPTION_END, 0, NULL}};

		errno = 0;
		s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
					     MHD_OPTION_ARRAY, o, MHD_OPTION_END);
	}
	if (s->daemon == NULL) {
		error = co_error_set(CO_EUNAVAIL, "cannot listen on %s%s: %s", listen,
				     s->tls_cert ? " with TLS (are the certificate "
						   "and key a pair, in PEM?)"
						 : "",
				     errno ? strerror(errno) : "refused");
		goto done;
	}
	if ((info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT)) != NULL)
		s->port = info->port;
	*out = s;
	s = NULL;
done:
	if (ai)
		freeaddrinfo(ai);
	co_server_stop(s);
	return error;
}

int co_server_port(const co_server *s)
{
	return s->port;
}

int co_server_inflight(co_server *s)
{
	return atomic_load(&s->inflight);
}

void co_server_stop(co_server *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->stopping, 1);
	/* requests waiting for a slot give up now */
	pthread_mutex_lock(&s->slots_lock);
	pthread_cond_broadcast(&s->slots_cond);
	pthread_mutex_unlock(&s->slots_lock);
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	co_server__schedule_stop(s);
	co_server__guard_stop(s);
	co_health_stop(s->health);
	co_metrics_free(s->metrics);
	pthread_mutex_destroy(&s->admin_lock);
	free(s->flags_path);
	free(s->token);
	free(s->tls_cert);
	if (s->tls_key) {
		memset(s->tls_key, 0, strlen(s->tls_key));
		free(s->tls_key);
	}
	free(s);
}
