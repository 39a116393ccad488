/*
 * server_internal.h - what the files of the HTTP server share; not an API.
 *
 * The server (server.h) is cut by job: server.c receives requests,
 * dispatches them and runs the daemon; server_request.c holds the replies
 * and the request-body readers every handler uses; server_tasks.c the data
 * plane (tasks and swarms, with swarm auth and the per-operation timing);
 * server_admin.c what operators call (health, metrics, admin); and
 * server_watch.c the server-sent event stream; server_guard.c the limits
 * that keep hostile clients from starving the others.  A handler fills a `reply`;
 * it never writes to the connection itself (but for the watch stream).
 *
 * Errors: the co_server__get_* and parse_body readers return 0 or
 * CO_EINVAL/CO_ENOMEM with co_error_set()'s message; the handlers return
 * nothing and put every error into the reply.  A reply's body is malloc'd
 * and owned by the reply (server.c frees it once sent).
 */
#ifndef CO_SERVER_INTERNAL_H
#define CO_SERVER_INTERNAL_H

#include "server.h"
#include "health.h"

#include "core/record.h"
#include "flags/watcher.h"
#include "reconcile/reconcile.h"
#include "router/router.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Which of a task's three actions POST /v1/tasks/{id}/{act} asks for. */
typedef enum { ACT_CLAIM, ACT_RELEASE, ACT_RENEW } task_act;

/* How long rollback drains the git-bound outbox before pulling the switch. */
#define ADMIN_ROLLBACK_DRAIN_MS 2000

/* How long the reconcile endpoint drains the outbox before a run: what is
 * left is in flight for the reconciler (as cmd_reconcile.c's budget). */
#define ADMIN_RECONCILE_DRAIN_MS 2000

/* Longest TTL accepted, as the CLI: ten years in seconds. */
#define TTL_MAX (10LL * 366 * 24 * 3600)

struct co_server {
	struct MHD_Daemon *daemon;
	co_router *router;
	co_state *state;
	co_flags_watcher *flags;
	co_store *git, *etcd;
	char *flags_path;
	char *token;
	co_server_gate_fn gate;
	void *gate_ctx;
	co_metrics *metrics;
	co_health *health; /* the stores' last probe: health never waits on one */
	pthread_mutex_t admin_lock;
	atomic_int reconciling;			    /* 1 while an admin reconcile runs */
	double min_consistency, max_mismatch_ratio; /* < 0: reconciler default */
	int grace_ms;				    /* < 0: reconciler default */
	co_reconcile_progress_fn progress;
	void *progress_ctx;
	atomic_int stopping; /* set by co_server_stop: watch streams end */
	int port;
	co_swarm_auth swarm_auth;
	co_server_log_fn log;
	void *log_ctx;
	/* the reconcile schedule (server_schedule.c) */
	int reconcile_every_ms; /* <= 0: off */
	pthread_t sched_thread;
	int sched_inited, sched_started;
	pthread_mutex_t sched_lock;
	pthread_cond_t sched_cond;
	int sched_stop;			      /* under sched_lock */
	atomic_llong sched_ticks, sched_runs; /* for /metrics and the tests */
	atomic_llong sched_failed, sched_busy;
	/* server_guard.c: the read deadline, the in-flight limit and its queue */
	int request_timeout_ms, max_inflight, queue_deadline_ms;
	atomic_int inflight; /* changed under slots_lock, read without */
	pthread_mutex_t slots_lock;
	pthread_cond_t slots_cond; /* a slot was given back */
	atomic_int queued;	   /* requests waiting for a slot */
	atomic_llong refused_full, refused_deadline, refused_gone; /* /metrics */
	pthread_mutex_t conns_lock;
	pthread_cond_t conns_cond; /* the reaper's wake-up (stop) */
	struct conn_slot *conns;   /* open connections, under conns_lock */
	pthread_t reaper;
	int reaper_started, reaper_stop; /* reaper_stop under conns_lock */
	char *tls_cert, *tls_key;	 /* PEM text, NULL without TLS */
};

/* A request body this size or less is kept in the request itself. */
#define REQ_INLINE_BODY 1024

/* One request being received. */
typedef struct req {
	char *body; /* `inline_body` or malloc'd */
	size_t len, cap;
	int too_big;
	int counted; /* 1 while it holds one of the server's in-flight slots */
	char inline_body[REQ_INLINE_BODY]; /* last: not zeroed */
} req;

/* What a handler answers: status and a malloc'd body (JSON or text). */
typedef struct reply {
	int status;
	char *body;
	const char *ctype;
} reply;

/* --- replies (server_request.c) --- */

/* Answer `status` with `o` as its body; takes `o` (may be NULL: 503). */
void co_server__reply_json(reply *rp, int status, cJSON *o);
/* {"error":{"code","message"}} plus the current record when there is one. */
void co_server__reply_err(reply *rp, int status, const char *code, const char *msg,
			  const co_record *current);
/* The error of a CO_E* code, with this thread's last message. */
void co_server__reply_code(reply *rp, int code, const co_record *current);
void co_server__reply_record(reply *rp, int status, const co_record *r);
/*
 * The JSON object text `obj` ("{...}", as cJSON prints it; taken) with one
 * member more, "key": raw, where raw is JSON text already made (a record's
 * co_record_to_json): a record is printed once, never parsed and printed
 * again.  Malloc'd; NULL when out of memory (or obj NULL).
 */
char *co_server__json_with(char *obj, const char *key, const char *raw);
void co_server__not_found(reply *rp);
void co_server__bad_method(reply *rp);
/* 1 if `id` passes the ID rule; 0 with the 400 reply made otherwise. */
int co_server__id_ok(reply *rp, const char *id);
/* Constant-time comparison of two NUL-terminated secrets; 1 if equal. */
int co_server__token_equal(const char *a, const char *b);

/* --- request bodies (server_request.c) --- */

/*
 * Parse the body as a JSON object whose keys are all in `allowed` (NULL
 * terminated); *out is the caller's to cJSON_Delete.  An empty body is {}
 * when `empty_ok`.  CO_EINVAL naming the problem otherwise.
 */
int co_server__parse_body(cJSON **out, const req *rq, const char *const *allowed,
			  int empty_ok);
/* A string field (borrowed from `o`): *out NULL when absent. */
int co_server__get_str(const char **out, const cJSON *o, const char *name, int required);
/* "ttl" in whole seconds: 0..TTL_MAX (positive when `positive`). */
int co_server__get_ttl(int64_t *out, const cJSON *o, int required, int positive);
/* An array of strings appended to v.  Absent is fine. */
int co_server__get_strv(co_strv *v, const cJSON *o, const char *name);
/* "metadata": an object, stored canonically into r.  Absent is {}. */
int co_server__get_meta(co_record *r, const cJSON *o);

/* --- the data plane (server_tasks.c) --- */

void co_server__task_create(reply *rp, co_server *s, struct MHD_Connection *c,
			    const req *rq);
void co_server__get(reply *rp, co_server *s, co_kind kind, const char *id);
void co_server__list(reply *rp, co_server *s, co_kind kind, const char *status);
void co_server__task_act(reply *rp, co_server *s, struct MHD_Connection *c, const req *rq,
			 const char *id, task_act act);
void co_server__swarm_register(reply *rp, co_server *s, struct MHD_Connection *c,
			       const req *rq);

/* --- operators (server_admin.c) --- */

void co_server__healthz(reply *rp, co_server *s);
void co_server__metrics(reply *rp, co_server *s);
/* 0 if the request carries the admin token; the 401/403 reply otherwise. */
int co_server__admin_auth(reply *rp, co_server *s, struct MHD_Connection *c);
/*
 * One reconciliation run for this server, as POST /v1/admin/reconcile
 * does it and as the schedule does: one at a time (CO_ECONFLICT at once
 * while one runs), the outbox drained first through the router, the
 * kill switch tripped by the reconciler on a failed verdict (unless
 * no_rollback), the flags reloaded, an audit row by `who`.  With `repair`
 * a plain run verifies after (*verify_out).  Both results are the
 * caller's (co_reconcile_result_free).  CO_EUNAVAIL without both stores
 * or a flags file; the reconciler's errors otherwise.
 */
int co_server__reconcile(co_reconcile_result **res_out, co_reconcile_result **verify_out,
			 co_server *s, co_repair_from repair, int no_rollback,
			 const char *who);

/* /v1/admin/{what}; the caller checked the admin token.  `c` for the query. */
void co_server__admin(reply *rp, co_server *s, struct MHD_Connection *c, const req *rq,
		      const char *what, int is_post);

/* --- the reconcile schedule (server_schedule.c) --- */

/*
 * Start the schedule when s->reconcile_every_ms > 0 (else nothing).
 * CO_ENOMEM.  Stop joins the thread (a run in progress finishes first).
 */
int co_server__schedule_start(co_server *s);
void co_server__schedule_stop(co_server *s);

/* --- the event stream (server_watch.c) --- */

/*
 * GET /v1/watch: queue the SSE response on `c`.  1: queued (the stream
 * answers from here on); -1: nothing could be queued (MHD_NO); 0: an error
 * before the stream started, put into `rp`.
 */
int co_server__watch(reply *rp, co_server *s, struct MHD_Connection *c);

/* --- the guard (server_guard.c) --- */

/*
 * The read deadline: each connection is tracked from the moment it is
 * accepted (MHD_OPTION_NOTIFY_CONNECTION: co_server__on_connection), and a
 * reaper thread shuts down the socket of any connection that has spent more
 * than request_timeout_ms receiving one request (or waiting for the next
 * one on a kept-alive connection): a byte now and then does not extend it.
 * co_server__conn_busy(c, 1) stops the clock when the request is complete
 * (it is being handled, or answered); co_server__conn_busy(c, 0) restarts
 * it once the answer is sent.  guard_init cannot fail (right after the
 * server's allocation); guard_start starts the reaper: 0 or CO_EIO.
 */
void co_server__guard_init(co_server *s);
int co_server__guard_start(co_server *s);
/* Stop the reaper, forget every connection, destroy the lock (after
 * MHD_stop_daemon; fine after a failed or no guard_start). */
void co_server__guard_stop(co_server *s);
void co_server__on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			      enum MHD_ConnectionNotificationCode toe);
void co_server__conn_busy(struct MHD_Connection *c, int busy);

/*
 * Take one in-flight slot: 1.  When max_inflight are taken: 0 at once
 * without a queue deadline (429), else wait for a slot up to
 * queue_deadline_ms (the reaper's clock stopped meanwhile) and -1 past it
 * (503: the request never reaches a store).  Each refusal is counted.
 */
int co_server__inflight_enter(co_server *s, struct MHD_Connection *c);
void co_server__inflight_leave(co_server *s);

/*
 * Just before a write's store call: CO_EUNAVAIL (with the message, and
 * counted) if the client is seen gone (its side of the connection closed
 * or reset), so that no claim is won for a client that will never hear
 * of it; 0 otherwise (a client that went silently is not seen).
 */
int co_server__client_still_there(co_server *s, struct MHD_Connection *c);

/* The guard's gauges and counters in Prometheus text. 0 or CO_ENOMEM. */
int co_server__guard_metrics(char **buf, size_t *len, size_t *cap, co_server *s);

/* The URL unescaper (MHD_OPTION_UNESCAPE_CALLBACK): %HH decoded but %00. */
size_t co_server__unescape(void *cls, struct MHD_Connection *c, char *s);

/* Read a PEM file (`what` names it in errors) into *out, malloc'd.
 * CO_EINVAL naming the file if it is missing, unreadable or empty, CO_EIO
 * for another failure, CO_ENOMEM. */
int co_server__read_pem(char **out, const char *path, const char *what);

#endif
