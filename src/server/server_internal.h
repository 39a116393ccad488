/*
 * server_internal.h - what the files of the HTTP server share; not an API.
 *
 * The server (server.h) is cut by job: server.c receives requests,
 * dispatches them and runs the daemon; server_request.c holds the replies
 * and the request-body readers every handler uses; server_tasks.c the data
 * plane (tasks and swarms, with swarm auth and the per-operation timing);
 * server_admin.c what operators call (health, metrics, admin); and
 * server_watch.c the server-sent event stream.  A handler fills a `reply`;
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
};

/* One request being received. */
typedef struct req {
	char *body;
	size_t len, cap;
	int too_big;
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
/* /v1/admin/{what}; the caller checked the admin token.  `c` for the query. */
void co_server__admin(reply *rp, co_server *s, struct MHD_Connection *c, const req *rq,
		      const char *what, int is_post);

/* --- the event stream (server_watch.c) --- */

/*
 * GET /v1/watch: queue the SSE response on `c`.  1: queued (the stream
 * answers from here on); -1: nothing could be queued (MHD_NO); 0: an error
 * before the stream started, put into `rp`.
 */
int co_server__watch(reply *rp, co_server *s, struct MHD_Connection *c);

#endif
