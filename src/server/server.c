/*
 * server.c - the HTTP/JSON face of the router (DESIGN §7).
 *
 * libmicrohttpd runs one thread per connection; each request's body is
 * gathered (at most CO_SERVER_BODY_MAX bytes: the rest is read and thrown
 * away, then 413) and dispatched once complete.  A handler validates the
 * whole request before it calls the router, so that a bad request changes
 * nothing; the router's code then becomes the HTTP status through
 * co_error_http_status(), the one mapping, and its message goes into
 * {"error":{"code","message"}}.  This file decides nothing about records:
 * a claim's winner is picked by the primary store's compare-and-swap.
 *
 * Admin changes (rollback, resume, stage) are read-modify-write of the
 * flags file, serialised by one mutex within this process and saved
 * atomically, audited as "serve:admin", and reloaded into the watcher at
 * once so that the next request (and /metrics) sees them.
 *
 * The admin reconcile endpoint runs the reconciler (reconcile.h) in the
 * request's thread, as `cutover reconcile` does: the same drain hook through
 * the router, the same thresholds, and the reconciler itself trips the kill
 * switch and records the run.  One run at a time: a flag taken with a
 * compare-and-swap, not a lock to wait on, so that a second request is told
 * 409 at once instead of queueing behind a run that may take minutes.  The
 * run does not hold the admin mutex either: a rollback must not wait for a
 * reconciliation.  The reconciler's trip is therefore not serialised with
 * a stage or resume arriving in the same milliseconds (each save is atomic;
 * the last rename wins), as with a `cutover reconcile` in another process.
 *
 * GET /v1/watch streams the router's watch as server-sent events from the
 * connection's own thread.
 *
 * Swarm auth (server.h) is decided here, per handler, on what
 * swarm_auth.c says a request's token is: which write needs which swarm
 * sits next to the handler that does the write.
 */
#include "server.h"
#include "health.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/id.h"
#include "core/outbox.h"
#include "core/record.h"
#include "core/runs.h"
#include "core/state.h"
#include "flags/gate.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "reconcile/reconcile.h"
#include "reconcile/report.h"
#include "router/router.h"
#include "router/triggers.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

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

/* --- replies --- */

static void reply_json(reply *rp, int status, cJSON *o)
{
	rp->status = status;
	rp->body = o ? cJSON_PrintUnformatted(o) : NULL;
	rp->ctype = "application/json";
	if (rp->body == NULL)
		rp->status = 503;
	cJSON_Delete(o);
}

/* {"error":{"code","message"}} plus the current record when there is one. */
static void reply_err(reply *rp, int status, const char *code, const char *msg,
		      const co_record *current)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	char *js;

	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	if (current && (js = co_record_to_json(current, 0)) != NULL) {
		cJSON_AddItemToObject(o, "record", cJSON_Parse(js));
		free(js);
	}
	reply_json(rp, status, o);
}

/* The error of a CO_E* code, with this thread's last message. */
static void reply_code(reply *rp, int code, const co_record *current)
{
	const char *msg = co_error_last();

	reply_err(rp, co_error_http_status(code), co_error_name(code),
		  *msg ? msg : co_error_name(code), current);
}

static void reply_record(reply *rp, int status, const co_record *r)
{
	char *js = co_record_to_json(r, 0);

	if (js == NULL) {
		co_error_set(CO_ENOMEM, "out of memory");
		reply_code(rp, CO_ENOMEM, NULL);
		return;
	}
	rp->status = status;
	rp->body = js;
	rp->ctype = "application/json";
}

/* --- request bodies --- */

/*
 * Parse the body as a JSON object whose keys are all in `allowed` (NULL
 * terminated).  An empty body is {} when `empty_ok`.  CO_EINVAL naming the
 * problem otherwise.
 */
static int parse_body(cJSON **out, const req *rq, const char *const *allowed,
		      int empty_ok)
{
	const char *end = NULL;
	cJSON *o, *it;
	size_t i;

	if (rq->len == 0 && empty_ok) {
		*out = cJSON_CreateObject();
		return *out ? 0 : co_error_set(CO_ENOMEM, "out of memory");
	}
	/* Not cJSON's require_null_terminated: with a length it wants the
	 * NUL inside that length.  Trailing bytes are checked here instead. */
	o = rq->len ? cJSON_ParseWithLengthOpts(rq->body, rq->len, &end, 0) : NULL;
	while (o && end < rq->body + rq->len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (o && end != rq->body + rq->len) {
		cJSON_Delete(o);
		o = NULL;
	}
	if (o == NULL)
		return co_error_set(CO_EINVAL, "malformed JSON body near byte %zu",
				    end && rq->body ? (size_t)(end - rq->body)
						    : (size_t)0);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return co_error_set(CO_EINVAL, "the body must be a JSON object");
	}
	cJSON_ArrayForEach(it, o)
	{
		for (i = 0; allowed[i]; i++)
			if (strcmp(allowed[i], it->string) == 0)
				break;
		if (allowed[i] == NULL) {
			co_error_set(CO_EINVAL, "unknown field \"%s\"", it->string);
			cJSON_Delete(o);
			return CO_EINVAL;
		}
	}
	*out = o;
	return 0;
}

/* A string field: *out NULL when absent; CO_EINVAL when not a string. */
static int get_str(const char **out, const cJSON *o, const char *name, int required)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = NULL;
	if (v == NULL || cJSON_IsNull(v)) {
		if (required)
			return co_error_set(CO_EINVAL, "\"%s\" is required", name);
		return 0;
	}
	if (!cJSON_IsString(v))
		return co_error_set(CO_EINVAL, "\"%s\" must be a string", name);
	*out = v->valuestring;
	return 0;
}

/* A TTL in whole seconds: 0..TTL_MAX (positive when `positive`). */
static int get_ttl(int64_t *out, const cJSON *o, int required, int positive)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "ttl");
	double d;

	if (v == NULL || cJSON_IsNull(v)) {
		if (required)
			return co_error_set(CO_EINVAL, "\"ttl\" is required");
		*out = 0;
		return 0;
	}
	d = cJSON_IsNumber(v) ? v->valuedouble : -1;
	if (d != floor(d) || d < (positive ? 1 : 0) || d > (double)TTL_MAX)
		return co_error_set(CO_EINVAL,
				    "\"ttl\" must be a whole number of seconds, %s..%lld",
				    positive ? "1" : "0", (long long)TTL_MAX);
	*out = (int64_t)d;
	return 0;
}

/* An array of strings into v.  Absent is fine. */
static int get_strv(co_strv *v, const cJSON *o, const char *name)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name), *it;
	int error;

	if (a == NULL || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsArray(a))
		return co_error_set(CO_EINVAL, "\"%s\" must be an array of strings",
				    name);
	cJSON_ArrayForEach(it, a)
	{
		if (!cJSON_IsString(it))
			return co_error_set(CO_EINVAL,
					    "\"%s\" must be an array of strings", name);
		if ((error = co_strv_push(v, it->valuestring)) < 0)
			return error;
	}
	return 0;
}

/* "metadata": an object, stored canonically.  Absent is {}. */
static int get_meta(co_record *r, const cJSON *o)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metadata");
	char *text;
	int error;

	if (m == NULL || cJSON_IsNull(m))
		return 0;
	if (!cJSON_IsObject(m))
		return co_error_set(CO_EINVAL, "\"metadata\" must be a JSON object");
	if ((text = cJSON_PrintUnformatted(m)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	error = co_record_set_metadata(r, text);
	free(text);
	return error;
}

/* --- timing of routed operations --- */

typedef struct op_timer {
	co_op op;
	co_side side;
	struct timespec t0;
} op_timer;

static void op_begin(op_timer *t, co_server *s, co_op op, const char *id)
{
	co_route rt;

	t->op = op;
	t->side = CO_SIDE_GIT;
	if (co_router_route(&rt, s->router, op, id) == 0)
		t->side = rt.primary;
	clock_gettime(CLOCK_MONOTONIC, &t->t0);
}

static void op_end(op_timer *t, co_server *s, int code)
{
	struct timespec t1;
	double sec;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	sec = (double)(t1.tv_sec - t->t0.tv_sec) +
	      (double)(t1.tv_nsec - t->t0.tv_nsec) / 1e9;
	co_metrics_observe(s->metrics, t->op, t->side, code, sec);
}

/* --- swarm auth (swarm_auth.h) --- */

/* Answer 401/403 with the usual body, audited and logged without the token. */
static void auth_refuse(reply *rp, co_server *s, struct MHD_Connection *c, co_op op,
			const char *id, int status, const char *why)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	co_swarm_auth_refused(s->state, s->log, s->log_ctx, co_op_name(op), id, status,
			      why, ci ? (const void *)ci->client_addr : NULL);
	reply_err(rp, status, status == 403 ? "forbidden" : "unauthorized", why, NULL);
}

/*
 * With swarm auth on, the swarm whose token the request carries into who:
 * 0, or -1 once the refusal (401, or 503 when the state cannot be read) is
 * the reply.  0 with who "" when auth is off.  `hint` (may be NULL) is
 * added to a 401's message.
 */
static int auth_identify(char *who, size_t who_len, reply *rp, co_server *s,
			 struct MHD_Connection *c, co_op op, const char *id,
			 const char *hint)
{
	char why[512];
	int rc;

	who[0] = '\0';
	if (s->swarm_auth != CO_SWARM_AUTH_TOKEN)
		return 0;
	rc = co_swarm_auth_identify(
	    who, who_len, why, sizeof(why), s->state,
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
	if (rc == 0)
		return 0;
	if (rc < 0) {
		reply_code(rp, rc, NULL);
		return -1;
	}
	if (hint) {
		size_t n = strlen(why);

		snprintf(why + n, sizeof(why) - n, "; %s", hint);
	}
	auth_refuse(rp, s, c, op, id, 401, why);
	return -1;
}

/* 0 if the identified swarm `who` may act as `swarm`; else -1 and a 403. */
static int auth_as(reply *rp, co_server *s, struct MHD_Connection *c, co_op op,
		   const char *id, const char *who, const char *swarm)
{
	char why[400];

	if (s->swarm_auth != CO_SWARM_AUTH_TOKEN || strcmp(who, swarm) == 0)
		return 0;
	snprintf(why, sizeof(why),
		 "the token is swarm %s's; this request acts as swarm %s", who, swarm);
	auth_refuse(rp, s, c, op, id, 403, why);
	return -1;
}

static int token_equal(const char *a, const char *b);

/* --- tasks and swarms --- */

static void h_task_create(reply *rp, co_server *s, struct MHD_Connection *c,
			  const req *rq)
{
	static const char *const allowed[] = {"id", "type", "metadata", "blocked_by",
					      NULL};
	co_record *task = NULL, *out = NULL;
	const char *id, *type;
	char who[130];
	cJSON *o = NULL;
	op_timer t;
	int error;

	/* Any swarm may create; someone without a token may not. */
	if (auth_identify(who, sizeof(who), rp, s, c, CO_OP_TASK_CREATE, NULL, NULL) < 0)
		return;
	if ((error = parse_body(&o, rq, allowed, 0)) < 0 ||
	    (error = get_str(&id, o, "id", 1)) < 0 ||
	    (error = get_str(&type, o, "type", 0)) < 0 ||
	    (error = co_record_new(&task, CO_KIND_TASK, id)) < 0 ||
	    (error = get_meta(task, o)) < 0 ||
	    (error = get_strv(&task->blocked_by, o, "blocked_by")) < 0)
		goto done;
	if (type && (task->type = strdup(type)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	op_begin(&t, s, CO_OP_TASK_CREATE, id);
	error = co_router_task_create(&out, s->router, task);
	op_end(&t, s, error);
	if (error == 0)
		reply_record(rp, 201, out);
done:
	if (error < 0)
		reply_code(rp, error, NULL);
	co_record_free(out);
	co_record_free(task);
	cJSON_Delete(o);
}

static void h_get(reply *rp, co_server *s, co_kind kind, const char *id)
{
	co_record *out = NULL;
	op_timer t;
	int error;

	op_begin(&t, s, kind == CO_KIND_TASK ? CO_OP_TASK_GET : CO_OP_SWARM_GET, id);
	error = co_router_get(&out, s->router, kind, id);
	op_end(&t, s, error);
	if (error < 0)
		reply_code(rp, error, NULL);
	else
		reply_record(rp, 200, out);
	co_record_free(out);
}

static void h_list(reply *rp, co_server *s, co_kind kind, const char *status)
{
	co_record_list l = {0};
	co_status want = CO_STATUS_AVAILABLE;
	cJSON *a = NULL;
	op_timer t;
	size_t i;
	int error;

	if (status && (error = co_status_parse(&want, status)) < 0)
		goto done;
	op_begin(&t, s, kind == CO_KIND_TASK ? CO_OP_TASK_LIST : CO_OP_SWARM_LIST, NULL);
	error = co_router_list(&l, s->router, kind);
	op_end(&t, s, error);
	if (error < 0)
		goto done;
	a = cJSON_CreateArray();
	for (i = 0; a && i < l.n; i++) {
		char *js;

		if (status && l.items[i]->status != want)
			continue;
		if ((js = co_record_to_json(l.items[i], 0)) == NULL) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		cJSON_AddItemToArray(a, cJSON_Parse(js));
		free(js);
	}
	reply_json(rp, 200, a);
	a = NULL;
done:
	if (error < 0)
		reply_code(rp, error, NULL);
	cJSON_Delete(a);
	co_record_list_clear(&l);
}

typedef enum { ACT_CLAIM, ACT_RELEASE, ACT_RENEW } task_act;

static void h_task_act(reply *rp, co_server *s, struct MHD_Connection *c, const req *rq,
		       const char *id, task_act act)
{
	static const char *const a_claim[] = {"swarm", "ttl", NULL};
	static const char *const a_release[] = {"swarm", "status", NULL};
	co_record *out = NULL;
	const char *swarm, *status = NULL;
	co_status to = CO_STATUS_AVAILABLE;
	co_op op = act == ACT_CLAIM	? CO_OP_TASK_CLAIM
		   : act == ACT_RELEASE ? CO_OP_TASK_RELEASE
					: CO_OP_TASK_RENEW;
	int64_t ttl = 0;
	char who[130];
	cJSON *o = NULL;
	op_timer t;
	int error;

	/* Who it is first (401 before the body is read), then whether it
	 * may act as the body's swarm (403). */
	if (auth_identify(who, sizeof(who), rp, s, c, op, id, NULL) < 0)
		return;
	if ((error = parse_body(&o, rq, act == ACT_RELEASE ? a_release : a_claim, 0)) <
		0 ||
	    (error = get_str(&swarm, o, "swarm", 1)) < 0 ||
	    (error = co_id_validate(swarm)) < 0)
		goto done;
	if (auth_as(rp, s, c, op, id, who, swarm) < 0)
		goto done;
	switch (act) {
	case ACT_CLAIM:
		if ((error = get_ttl(&ttl, o, 0, 0)) < 0)
			goto done;
		op_begin(&t, s, CO_OP_TASK_CLAIM, id);
		error = co_router_claim(&out, s->router, id, swarm, ttl);
		break;
	case ACT_RELEASE:
		if ((error = get_str(&status, o, "status", 0)) < 0 ||
		    (status && (error = co_status_parse(&to, status)) < 0))
			goto done;
		if (to != CO_STATUS_AVAILABLE && to != CO_STATUS_COMPLETE &&
		    to != CO_STATUS_FAILED) {
			error = co_error_set(
			    CO_EINVAL,
			    "\"status\" must be available, complete or failed");
			goto done;
		}
		op_begin(&t, s, CO_OP_TASK_RELEASE, id);
		error = co_router_release(&out, s->router, id, swarm, to);
		break;
	default:
		if ((error = get_ttl(&ttl, o, 1, 1)) < 0)
			goto done;
		op_begin(&t, s, CO_OP_TASK_RENEW, id);
		error = co_router_renew(&out, s->router, id, swarm, ttl);
		break;
	}
	op_end(&t, s, error);
	if (error == 0)
		reply_record(rp, 200, out);
done:
	/* A lost claim carries the current record: the loser learns the owner. */
	if (error < 0)
		reply_code(rp, error, error == CO_ECONFLICT ? out : NULL);
	co_record_free(out);
	cJSON_Delete(o);
}

static void h_swarm_register(reply *rp, co_server *s, struct MHD_Connection *c,
			     const req *rq)
{
	static const char *const allowed[] = {"id", "capabilities", "metadata", NULL};
	co_record *sw = NULL, *out = NULL;
	const char *id, *h;
	char who[130] = "";
	cJSON *o = NULL;
	op_timer t;
	int error, admin = 0;

	/* A swarm (re-)registers itself with its own token; a new swarm has
	 * none yet, so the operator registers it: the CLI, or the admin token. */
	if (s->swarm_auth == CO_SWARM_AUTH_TOKEN && s->token &&
	    (h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					     MHD_HTTP_HEADER_AUTHORIZATION)) != NULL &&
	    strncmp(h, "Bearer ", 7) == 0 && token_equal(h + 7, s->token))
		admin = 1;
	if (!admin && auth_identify(who, sizeof(who), rp, s, c, CO_OP_SWARM_REGISTER, NULL,
				    "registering a swarm needs its own token or the "
				    "admin token") < 0)
		return;
	if ((error = parse_body(&o, rq, allowed, 0)) < 0 ||
	    (error = get_str(&id, o, "id", 1)) < 0 ||
	    (error = co_record_new(&sw, CO_KIND_SWARM, id)) < 0 ||
	    (error = get_meta(sw, o)) < 0 ||
	    (error = get_strv(&sw->capabilities, o, "capabilities")) < 0)
		goto done;
	if (!admin && auth_as(rp, s, c, CO_OP_SWARM_REGISTER, id, who, id) < 0)
		goto done;
	op_begin(&t, s, CO_OP_SWARM_REGISTER, id);
	error = co_router_swarm_register(&out, s->router, sw);
	op_end(&t, s, error);
	if (error == 0)
		reply_record(rp, 200, out);
done:
	if (error < 0)
		reply_code(rp, error, NULL);
	co_record_free(out);
	co_record_free(sw);
	cJSON_Delete(o);
}

/* --- health and metrics --- */

/*
 * Liveness and what an operator needs first: the stage, the kill switch,
 * each store's last probe and breaker.  From memory only: answers at once
 * whatever the stores do.  "degraded" when a store is down.
 */
static void h_healthz(reply *rp, co_server *s)
{
	cJSON *o = cJSON_CreateObject(), *stores;
	co_health_store g = {0}, e = {0};
	co_flags f;

	co_flags_watcher_get(&f, s->flags);
	if (s->health) {
		co_health_get(&g, s->health, 0);
		co_health_get(&e, s->health, 1);
	}
	cJSON_AddStringToObject(o, "status",
				(s->git && !g.up) || (s->etcd && !e.up) ? "degraded" : "ok");
	cJSON_AddStringToObject(o, "stage", co_stage_name(co_stage_of(&f)));
	cJSON_AddBoolToObject(o, "kill_switch", f.kill_switch);
	if ((stores = cJSON_AddObjectToObject(o, "stores")) != NULL && s->health)
		co_health_json(stores, s->health);
	reply_json(rp, 200, o);
}

static void h_metrics(reply *rp, co_server *s)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int64_t depth = 0;
	co_run *run = NULL;
	char ratio[32], tm[4096];
	co_flags f;
	co_health_store g = {0}, e = {0};
	int error;

	co_flags_watcher_get(&f, s->flags);
	if (co_outbox_depth(&depth, s->state, NULL) < 0)
		depth = -1;
	/* Prometheus spells it "NaN", not libc's "nan". */
	if (co_runs_latest(&run, s->state) == 0)
		snprintf(ratio, sizeof(ratio), "%.6f", run->consistency);
	else
		snprintf(ratio, sizeof(ratio), "NaN");
	co_run_free(run);
	/* the probe's last answer: a scrape never waits on a store */
	if (s->health) {
		co_health_get(&g, s->health, 0);
		co_health_get(&e, s->health, 1);
	}

	if ((error = co_metrics_appendf(
		 &buf, &len, &cap,
		 "# HELP cutover_kill_switch 1 while the kill switch routes everything "
		 "to "
		 "git.\n# TYPE cutover_kill_switch gauge\ncutover_kill_switch %d\n"
		 "# HELP cutover_outbox_depth Writes still owed to a store (-1: the "
		 "state "
		 "database cannot be read).\n# TYPE cutover_outbox_depth gauge\n"
		 "cutover_outbox_depth %lld\n"
		 "# HELP cutover_reconcile_consistency_ratio Consistency of the latest "
		 "finished reconciliation run (NaN: none yet).\n"
		 "# TYPE cutover_reconcile_consistency_ratio gauge\n"
		 "cutover_reconcile_consistency_ratio %s\n"
		 "# HELP cutover_store_up 1 if the store answered the background probe's "
		 "last ping.\n"
		 "# TYPE cutover_store_up gauge\n"
		 "cutover_store_up{store=\"git\"} %d\ncutover_store_up{store=\"etcd\"} "
		 "%d\n",
		 f.kill_switch, (long long)depth, ratio, s->git && g.up,
		 s->etcd && e.up)) < 0)
		goto done;
	if ((error = co_health_breaker_metrics(&buf, &len, &cap, s->git, s->etcd)) < 0 ||
	    (error = co_metrics_appendf(&buf, &len, &cap, "%s",
					co_triggers_metrics(tm, sizeof(tm),
							    co_router_triggers(s->router)))) < 0)
		goto done;
	error = co_metrics_format(&buf, &len, &cap, s->metrics);
done:
	if (error < 0) {
		free(buf);
		reply_code(rp, error, NULL);
		return;
	}
	rp->status = 200;
	rp->body = buf;
	rp->ctype = "text/plain; version=0.0.4";
}

/* --- admin --- */

/* Constant-time comparison: the token is a secret. */
static int token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = (unsigned char)(la != lb);

	for (i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return d == 0 && lb > 0;
}

/* 0 if the request carries the admin token; a reply (401/403) otherwise. */
static int admin_auth(reply *rp, co_server *s, struct MHD_Connection *c)
{
	const char *h;

	if (s->token == NULL) {
		reply_err(rp, 403, "forbidden",
			  "admin endpoints are disabled: no admin_token_file configured",
			  NULL);
		return -1;
	}
	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0 || !token_equal(h + 7, s->token)) {
		reply_err(rp, 401, "unauthorized",
			  h ? "wrong admin token"
			    : "missing Authorization: Bearer <token>",
			  NULL);
		return -1;
	}
	return 0;
}

static cJSON *flags_json(const co_flags *f)
{
	cJSON *o = cJSON_CreateObject(), *d, *ops;
	int op;

	cJSON_AddStringToObject(o, "stage", co_stage_name(co_stage_of(f)));
	cJSON_AddBoolToObject(o, "kill_switch", f->kill_switch);
	cJSON_AddStringToObject(o, "kill_reason", f->kill_reason);
	cJSON_AddStringToObject(o, "updated_at", f->updated_at);
	cJSON_AddStringToObject(o, "updated_by", f->updated_by);
	d = cJSON_AddObjectToObject(o, "default");
	cJSON_AddStringToObject(d, "mode", co_mode_name(f->def.mode));
	cJSON_AddNumberToObject(d, "etcd_percent", f->def.etcd_percent);
	ops = cJSON_AddObjectToObject(o, "operations");
	for (op = 0; op < CO_OP__COUNT; op++) {
		co_op_flags of = co_flags_get(f, (co_op)op);
		cJSON *x = cJSON_AddObjectToObject(ops, co_op_name((co_op)op));

		cJSON_AddStringToObject(x, "mode", co_mode_name(of.mode));
		cJSON_AddNumberToObject(x, "etcd_percent", of.etcd_percent);
	}
	return o;
}

/*
 * The flags as the file says, for a change other than the kill switch: a
 * file that does not load is refused with a message that says what to do
 * (a change is saved only over what was read, co_flags_save_if).
 */
static int admin_load(co_flags *out, co_server *s)
{
	char why[768];
	int error;

	if ((error = co_flags_load(out, s->flags_path)) == 0)
		return 0;
	snprintf(why, sizeof(why), "%s", co_error_last());
	return co_error_set(error,
			    "the flags file does not load (%s): fix it first; the kill "
			    "switch (rollback) works over it",
			    why);
}

/* The flags as the file says, else (a bad file) the last good ones. */
static void admin_current(co_flags *out, co_server *s)
{
	if (co_flags_load(out, s->flags_path) < 0) {
		co_flags_watcher_get(out, s->flags);
		co_error_clear();
	}
}

/*
 * Save `to`, audit the change and make it current in this process.  The
 * flags are saved before the audit row: an unrecorded change is better
 * than a recorded change that did not happen, and the message says so.
 */
static int admin_commit(co_server *s, const char *action, const co_flags *from,
			co_flags *to, const char *note, const char *why, int kill)
{
	char detail[2048];
	int error;

	co_flags_stamp(to, "serve:admin", NULL);
	/* The kill switch always lands; any other change only over what it read. */
	if ((error = kill ? co_flags_save_kill(to, from, s->flags_path)
			  : co_flags_save_if(from, to, s->flags_path)) < 0)
		return error;
	co_flags_diff(detail, sizeof(detail), from, to);
	if (note && *note) {
		size_t n = strlen(detail);

		snprintf(detail + n, sizeof(detail) - n, " (%s)", note);
	}
	if ((error = co_audit_change_add(s->state, "serve:admin", action, detail, why)) <
	    0)
		return co_error_set(error, "flags saved, but the audit row failed: %s",
				    co_error_last());
	/* The watcher would see the file within 100 ms; reading it now makes
	 * the change visible to the very next request. */
	co_flags_watcher_reload(s->flags);
	co_error_clear();
	return 0;
}

/* --- admin: reconcile --- */

/* The reconciler's drain hook: the router's drain, as cmd_reconcile.c's. */
static int reconcile_drain(void *ctx)
{
	co_server *s = ctx;
	int64_t left = 0;

	return co_router_drain(s->router, NULL, ADMIN_RECONCILE_DRAIN_MS, &left);
}

/*
 * The DESIGN §5 report of a run, from report.h's writer (one JSON shape for
 * `cutover report --format json` and this API), plus what only the live
 * result knows.  NULL on OOM.
 */
static cJSON *result_json(const co_reconcile_result *res, const co_redact *rd)
{
	char *text = co_report_json(&res->run, &res->divergences, rd);
	cJSON *o = text ? cJSON_Parse(text) : NULL;

	free(text);
	if (o == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "in_flight", (double)res->in_flight);
	cJSON_AddNumberToObject(o, "unsettled", (double)res->unsettled);
	if (res->reason[0])
		cJSON_AddStringToObject(o, "reason", res->reason);
	if (res->warning[0])
		cJSON_AddStringToObject(o, "warning", res->warning);
	return o;
}

/* "run 7: fail, consistency 97.5000%, action kill_switch" for the audit. */
static void result_summary(char *buf, size_t len, const co_reconcile_result *res)
{
	snprintf(buf, len, "run %lld: %s, consistency %.4f%%, action %s",
		 (long long)res->run.id, res->run.verdict ? res->run.verdict : "?",
		 100.0 * res->run.consistency, res->run.action ? res->run.action : "?");
}

/*
 * POST /v1/admin/reconcile (server.h).  Everything the body asks for is
 * checked before the one-at-a-time flag is taken and before the run
 * begins, so that a bad request records no run.
 */
static void h_admin_reconcile(reply *rp, co_server *s, const req *rq)
{
	static const char *const allowed[] = {"no_rollback", "repair", NULL};
	co_reconcile_opts ro = CO_RECONCILE_OPTS_INIT;
	co_reconcile_result *res = NULL, *verify = NULL;
	const char *repair = NULL;
	const cJSON *nr;
	char msg[1024] = "", detail[2048], first[256] = "", last[256] = "";
	cJSON *o = NULL, *out = NULL, *rep;
	int error, idle = 0, running = 0;

	if ((error = parse_body(&o, rq, allowed, 1)) < 0 ||
	    (error = get_str(&repair, o, "repair", 0)) < 0)
		goto done;
	nr = cJSON_GetObjectItemCaseSensitive(o, "no_rollback");
	if (nr && !cJSON_IsBool(nr) && !cJSON_IsNull(nr)) {
		error = co_error_set(CO_EINVAL, "\"no_rollback\" must be true or false");
		goto done;
	}
	if (repair && co_reconcile_parse_repair(&ro.repair, repair) < 0) {
		/* Not the reconciler's message: it names the CLI's --repair. */
		error = co_error_set(
		    CO_EINVAL, "\"repair\": \"%s\" is not a store (git or etcd)", repair);
		goto done;
	}
	if (s->flags_path == NULL) {
		error = co_error_set(CO_EUNAVAIL, "no flags file configured");
		goto done;
	}
	if (s->git == NULL || s->etcd == NULL) {
		error = co_error_set(CO_EUNAVAIL,
				     "reconcile: this server was started without both "
				     "stores");
		goto done;
	}
	if (!atomic_compare_exchange_strong(&s->reconciling, &idle, 1)) {
		error = co_error_set(CO_ECONFLICT,
				     "a reconciliation is already running on this server "
				     "(one at a time): retry when it has finished");
		goto done;
	}
	running = 1;

	ro.git = s->git;
	ro.etcd = s->etcd;
	ro.state = s->state;
	ro.flags_path = s->flags_path;
	if (s->min_consistency >= 0)
		ro.min_consistency = s->min_consistency;
	if (s->max_mismatch_ratio >= 0)
		ro.max_mismatch_ratio = s->max_mismatch_ratio;
	if (s->grace_ms >= 0)
		ro.grace_ms = s->grace_ms;
	ro.no_rollback = cJSON_IsTrue(nr);
	ro.drain = reconcile_drain;
	ro.drain_ctx = s;
	ro.progress = s->progress;
	ro.progress_ctx = s->progress_ctx;
	ro.who = "serve:admin";
	/* The same policy as the shadow mismatches of this process. */
	ro.redact = co_router_redact(s->router);

	if ((error = co_reconcile_run(&res, &ro)) == 0) {
		result_summary(first, sizeof(first), res);
		if (ro.repair != CO_REPAIR_NONE) {
			/* As `cutover reconcile --repair`: a plain run verifies. */
			ro.repair = CO_REPAIR_NONE;
			if ((error = co_reconcile_run(&verify, &ro)) == 0)
				result_summary(last, sizeof(last), verify);
		}
	}
	if (error < 0)
		snprintf(msg, sizeof(msg), "%s", co_error_last());

	/* The reconciler saved any trip to the file; the watcher would see it
	 * within 100 ms, reading it now makes the very next request see it. */
	co_flags_watcher_reload(s->flags);
	if (error < 0)
		snprintf(detail, sizeof(detail), "%s%sfailed: %s", first,
			 first[0] ? "; verify run " : "", msg);
	else
		snprintf(detail, sizeof(detail), "%s%s%s", first,
			 last[0] ? "; verify " : "", last);
	if (co_audit_change_add(s->state, "serve:admin", "reconcile", detail, NULL) < 0 &&
	    error == 0) {
		/* The run is recorded; failing the request would hide it. */
		char *w = verify ? verify->warning : res->warning;
		size_t n = strlen(w);

		snprintf(w + n, sizeof(res->warning) - n,
			 "%saudit row not written: %.300s", n ? "; " : "",
			 co_error_last());
	}
	co_error_clear();
	if (error < 0) {
		co_error_set(error, "%s", msg);
		goto done;
	}

	if ((out = result_json(verify ? verify : res, co_router_redact(s->router))) ==
	    NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	if (verify) {
		rep = cJSON_AddObjectToObject(out, "repair");
		cJSON_AddStringToObject(rep, "from", repair);
		cJSON_AddNumberToObject(rep, "written", (double)res->repaired_put);
		cJSON_AddNumberToObject(rep, "removed", (double)res->repaired_removed);
		cJSON_AddItemToObject(rep, "diagnosis",
				      result_json(res, co_router_redact(s->router)));
	}
	reply_json(rp, 200, out);
	out = NULL;
done:
	if (running)
		atomic_store(&s->reconciling, 0);
	if (error < 0)
		reply_code(rp, error, NULL);
	cJSON_Delete(out);
	cJSON_Delete(o);
	co_reconcile_result_free(verify);
	co_reconcile_result_free(res);
}

static void h_admin(reply *rp, co_server *s, const req *rq, const char *what, int is_post)
{
	static const char *const a_reason[] = {"reason", NULL};
	static const char *const a_stage[] = {"stage", "force", "reason", NULL};
	char note[1024] = "";
	const char *reason = NULL, *stage_name;
	co_flags from, to;
	co_stage stage;
	cJSON *o = NULL, *res;
	int error = 0, force = 0, locked = 0, flock_fd = -1;

	if (strcmp(what, "flags") == 0) {
		if (is_post) {
			reply_err(rp, 405, "method_not_allowed", "use GET", NULL);
			return;
		}
		co_flags_watcher_get(&from, s->flags);
		reply_json(rp, 200, flags_json(&from));
		return;
	}
	if (strcmp(what, "reconcile") == 0) {
		if (is_post)
			h_admin_reconcile(rp, s, rq);
		else
			reply_err(rp, 405, "method_not_allowed", "use POST", NULL);
		return;
	}
	if (strcmp(what, "rollback") != 0 && strcmp(what, "resume") != 0 &&
	    strcmp(what, "stage") != 0) {
		reply_err(rp, 404, "not_found", "no such admin endpoint", NULL);
		return;
	}
	if (!is_post) {
		reply_err(rp, 405, "method_not_allowed", "use POST", NULL);
		return;
	}
	if (s->flags_path == NULL) {
		error = co_error_set(CO_EUNAVAIL, "no flags file configured");
		goto done;
	}
	if ((error = parse_body(&o, rq, strcmp(what, "stage") == 0 ? a_stage : a_reason,
				1)) < 0 ||
	    (error = get_str(&reason, o, "reason", 0)) < 0)
		goto done;
	pthread_mutex_lock(&s->admin_lock);
	locked = 1;
	if (strcmp(what, "rollback") == 0) {
		int64_t left = 0;

		if (reason == NULL || *reason == '\0')
			reason = "rollback via admin API";
		/* DESIGN §4: git first holds what etcd acknowledged, as far as
		 * it goes; routers apply the rest before git serves those IDs. */
		co_router_drain(s->router, "git", ADMIN_ROLLBACK_DRAIN_MS, &left);
		co_error_clear();
		/* Across processes: no other writer between load and save, but
		 * one stuck holding the lock does not hold up the switch. */
		if ((error = co_flags_lock_for_kill(&flock_fd, s->flags_path)) < 0)
			goto done;
		if (flock_fd < 0) {
			fprintf(stderr,
				"cutover serve: warning: %s; pulling the kill switch "
				"without the lock\n",
				co_error_last());
			co_error_clear();
		}
		admin_current(&from, s);
		to = from;
		co_flags_set_kill(&to, 1, reason);
		if ((error = admin_commit(s, "rollback", &from, &to, NULL, reason, 1)) <
		    0)
			goto done;
		res = flags_json(&to);
		cJSON_AddNumberToObject(res, "outbox_git_left", (double)left);
		reply_json(rp, 200, res);
	} else if (strcmp(what, "resume") == 0) {
		if ((error = flock_fd = co_flags_lock(s->flags_path)) < 0)
			goto done;
		if ((error = admin_load(&from, s)) < 0)
			goto done;
		to = from;
		co_flags_set_kill(&to, 0, NULL);
		if (from.kill_switch &&
		    (error = admin_commit(s, "resume", &from, &to, NULL, reason, 0)) < 0)
			goto done;
		reply_json(rp, 200, flags_json(&to));
	} else {
		const cJSON *fv = cJSON_GetObjectItemCaseSensitive(o, "force");

		if (fv && !cJSON_IsBool(fv) && !cJSON_IsNull(fv)) {
			error =
			    co_error_set(CO_EINVAL, "\"force\" must be true or false");
			goto done;
		}
		force = cJSON_IsTrue(fv);
		if ((error = get_str(&stage_name, o, "stage", 1)) < 0 ||
		    (error = co_stage_parse(&stage, stage_name)) < 0 ||
		    (error = flock_fd = co_flags_lock(s->flags_path)) < 0)
			goto done;
		if ((error = admin_load(&from, s)) < 0)
			goto done;
		to = from;
		if ((error = co_stage_apply(&to, stage)) < 0)
			goto done;
		if (s->gate) {
			if ((error = s->gate(note, sizeof(note), s->gate_ctx, &from, &to,
					     force)) < 0)
				goto done;
		} else {
			size_t nn = 0;

			/* The one rule that needs no inputs still holds. */
			if ((error = co_gate_check_path(&from, &to)) < 0) {
				if (!force)
					goto done;
				nn = (size_t)snprintf(note, sizeof(note),
						      "forced past %s", co_error_last());
				error = 0;
			}
			/* Without the gate's inputs this server cannot say go:
			 * refuse forward moves unless forced, and record that. */
			if (co_stage_is_forward(&from, &to)) {
				if (!force) {
					error = co_error_set(
					    CO_ECONFLICT,
					    "go/no-go: this server has no go/no-go "
					    "gate; move forward with `cutover stage` "
					    "(use \"force\": true to override)");
					goto done;
				}
				if (nn < sizeof(note))
					snprintf(note + nn, sizeof(note) - nn, "%s%s",
						 nn ? "; " : "",
						 "forced forward without go/no-go check");
			}
		}
		if (!co_flags_equal(&from, &to) &&
		    (error = admin_commit(s, "stage", &from, &to, note, reason, 0)) < 0)
			goto done;
		res = flags_json(&to);
		if (note[0])
			cJSON_AddStringToObject(res, "forced", note);
		reply_json(rp, 200, res);
	}
done:
	co_flags_unlock(flock_fd);
	if (locked)
		pthread_mutex_unlock(&s->admin_lock);
	if (error < 0)
		reply_code(rp, error, NULL);
	cJSON_Delete(o);
}

/* --- server-sent events --- */

/* How long one wait for an event lasts before a keep-alive comment. */
#define WATCH_WAIT_MS 500
/* Keep-alive comments at most every this many waits. */
#define WATCH_KEEPALIVE_EVERY 30

typedef struct sse {
	co_server *srv;
	co_router_watch *w;
	char *pending; /* text not yet handed to MHD */
	size_t len, off;
	int idle;
	int done;
} sse;

/* "event: put|delete\ndata: {...}\n\n" for one event, or NULL (OOM). */
static char *sse_format(const co_event *ev)
{
	cJSON *o = cJSON_CreateObject();
	char *data = NULL, *js, *out = NULL;
	size_t n;

	cJSON_AddStringToObject(o, "type", ev->type == CO_EVENT_PUT ? "put" : "delete");
	cJSON_AddStringToObject(o, "kind", co_kind_name(ev->kind));
	cJSON_AddStringToObject(o, "id", ev->id);
	cJSON_AddStringToObject(o, "store", ev->store ? ev->store : "");
	if (ev->record && (js = co_record_to_json(ev->record, 0)) != NULL) {
		cJSON_AddItemToObject(o, "record", cJSON_Parse(js));
		free(js);
	}
	data = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (data == NULL)
		return NULL;
	n = strlen(data) + 32;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "event: %s\ndata: %s\n\n",
			 ev->type == CO_EVENT_PUT ? "put" : "delete", data);
	free(data);
	return out;
}

/*
 * MHD asks for more of the stream.  This runs in the connection's own
 * thread (thread per connection), so it may block: it waits for the next
 * event in slices of WATCH_WAIT_MS so that co_server_stop() is noticed,
 * and never returns 0 bytes (a keep-alive comment goes out instead).
 */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	sse *x = cls;
	size_t n;

	(void)pos;
	while (x->pending == NULL) {
		co_event *ev = NULL;
		int error, got;

		if (x->done || atomic_load(&x->srv->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		error = co_router_watch_next(&ev, x->w, WATCH_WAIT_MS);
		got = ev != NULL;
		if (error < 0) {
			char msg[600];

			snprintf(msg, sizeof(msg), "event: error\ndata: %s\n\n",
				 co_error_last());
			x->pending = strdup(msg);
			x->done = 1;
		} else if (ev) {
			x->pending = sse_format(ev);
			co_event_free(ev);
			x->idle = 0;
		} else if (++x->idle >= WATCH_KEEPALIVE_EVERY) {
			x->pending = strdup(": keep-alive\n\n");
			x->idle = 0;
		}
		if (x->pending) {
			x->len = strlen(x->pending);
			x->off = 0;
		} else if (error < 0 || got) {
			return MHD_CONTENT_READER_END_WITH_ERROR; /* out of memory */
		}
	}
	n = x->len - x->off < max ? x->len - x->off : max;
	memcpy(buf, x->pending + x->off, n);
	x->off += n;
	if (x->off == x->len) {
		free(x->pending);
		x->pending = NULL;
	}
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	sse *x = cls;

	co_router_watch_close(x->w);
	free(x->pending);
	free(x);
}

/*
 * GET /v1/watch[?prefix=tasks/]: the router's merged watch as server-sent
 * events.  Queues its own response (a stream); returns MHD_NO only when
 * nothing could be queued.  Errors before the stream starts are replies.
 */
static int h_watch(reply *rp, co_server *s, struct MHD_Connection *c)
{
	const char *prefix =
	    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "prefix");
	struct MHD_Response *resp;
	sse *x;
	int error, ret;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		co_error_set(CO_ENOMEM, "out of memory");
		reply_code(rp, CO_ENOMEM, NULL);
		return 0;
	}
	x->srv = s;
	if ((error = co_router_watch_open(&x->w, s->router, prefix ? prefix : "")) < 0) {
		free(x);
		reply_code(rp, error, NULL);
		return 0;
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, x,
						 sse_free);
	if (resp == NULL) {
		sse_free(x);
		co_error_set(CO_ENOMEM, "out of memory");
		reply_code(rp, CO_ENOMEM, NULL);
		return 0;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp) == MHD_YES ? 1 : -1;
	MHD_destroy_response(resp);
	return ret;
}

/* --- dispatch --- */

static int id_ok(reply *rp, const char *id)
{
	int error;

	if ((error = co_id_validate(id)) < 0) {
		reply_code(rp, error, NULL);
		return 0;
	}
	return 1;
}

static void not_found(reply *rp)
{
	reply_err(rp, 404, "not_found", "no such endpoint", NULL);
}

static void bad_method(reply *rp)
{
	reply_err(rp, 405, "method_not_allowed", "method not allowed here", NULL);
}

/* url is the decoded path; a copy is cut into segments here. */
static void dispatch(reply *rp, co_server *s, struct MHD_Connection *c,
		     const char *method, const char *url, const req *rq)
{
	int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	char *path = NULL, *id, *act;

	if (rq->too_big) {
		reply_err(rp, 413, "too_large", "request body over 1 MiB", NULL);
		return;
	}
	if (strcmp(url, "/healthz") == 0) {
		get ? h_healthz(rp, s) : bad_method(rp);
		return;
	}
	if (strcmp(url, "/metrics") == 0) {
		get ? h_metrics(rp, s) : bad_method(rp);
		return;
	}
	if (strcmp(url, "/v1/watch") == 0) {
		bad_method(rp); /* GET was taken by on_request() */
		return;
	}
	if (strncmp(url, "/v1/admin/", 10) == 0) {
		if (admin_auth(rp, s, c) == 0)
			h_admin(rp, s, rq, url + 10, post);
		return;
	}
	if (strcmp(url, "/v1/tasks") == 0) {
		if (post)
			h_task_create(rp, s, c, rq);
		else if (get)
			h_list(rp, s, CO_KIND_TASK,
			       MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
							   "status"));
		else
			bad_method(rp);
		return;
	}
	if (strcmp(url, "/v1/swarms") == 0) {
		if (post)
			h_swarm_register(rp, s, c, rq);
		else if (get)
			h_list(rp, s, CO_KIND_SWARM, NULL);
		else
			bad_method(rp);
		return;
	}
	if ((path = strdup(url)) == NULL) {
		co_error_set(CO_ENOMEM, "out of memory");
		reply_code(rp, CO_ENOMEM, NULL);
		return;
	}
	if (strncmp(path, "/v1/tasks/", 10) == 0) {
		id = path + 10;
		act = strchr(id, '/');
		if (act)
			*act++ = '\0';
		if (!id_ok(rp, id))
			goto done;
		if (act == NULL)
			get ? h_get(rp, s, CO_KIND_TASK, id) : bad_method(rp);
		else if (!post)
			strcmp(act, "claim") && strcmp(act, "release") &&
				strcmp(act, "renew")
			    ? not_found(rp)
			    : bad_method(rp);
		else if (strcmp(act, "claim") == 0)
			h_task_act(rp, s, c, rq, id, ACT_CLAIM);
		else if (strcmp(act, "release") == 0)
			h_task_act(rp, s, c, rq, id, ACT_RELEASE);
		else if (strcmp(act, "renew") == 0)
			h_task_act(rp, s, c, rq, id, ACT_RENEW);
		else
			not_found(rp);
	} else if (strncmp(path, "/v1/swarms/", 11) == 0) {
		id = path + 11;
		if (strchr(id, '/'))
			not_found(rp);
		else if (id_ok(rp, id))
			get ? h_get(rp, s, CO_KIND_SWARM, id) : bad_method(rp);
	} else {
		not_found(rp);
	}
done:
	free(path);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	co_server *s = cls;
	req *rq = *con_cls;
	reply rp = {0, NULL, NULL};
	struct MHD_Response *resp;
	enum MHD_Result ret;

	(void)version;
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		/* Past the limit, keep reading (the client is still sending)
		 * but keep nothing: the answer will be 413. */
		if (!rq->too_big && rq->len + n > CO_SERVER_BODY_MAX) {
			rq->too_big = 1;
			free(rq->body);
			rq->body = NULL;
			rq->len = rq->cap = 0;
		}
		if (!rq->too_big) {
			if (rq->len + n + 1 > rq->cap) {
				size_t ncap = rq->cap ? rq->cap : 4096;
				char *nb;

				while (ncap < rq->len + n + 1)
					ncap *= 2;
				if ((nb = realloc(rq->body, ncap)) == NULL)
					return MHD_NO;
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
	if (strcmp(url, "/v1/watch") == 0 && strcmp(method, "GET") == 0 && !rq->too_big) {
		int queued = h_watch(&rp, s, c);

		if (queued != 0)
			return queued > 0 ? MHD_YES : MHD_NO;
	} else {
		dispatch(&rp, s, c, method, url, rq);
	}
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
	if (rp.status == 503) {
		char after[16];

		snprintf(after, sizeof(after), "%d", co_health_retry_after(s->git, s->etcd));
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

	(void)cls;
	(void)c;
	(void)toe;
	if (rq) {
		free(rq->body);
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
	s->daemon = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)60, MHD_OPTION_END);
	if (s->daemon == NULL) {
		error = co_error_set(CO_EUNAVAIL, "cannot listen on %s: %s", listen,
				     strerror(errno));
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

void co_server_stop(co_server *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->stopping, 1);
	if (s->daemon)
		MHD_stop_daemon(s->daemon);
	co_health_stop(s->health);
	co_metrics_free(s->metrics);
	pthread_mutex_destroy(&s->admin_lock);
	free(s->flags_path);
	free(s->token);
	free(s);
}
