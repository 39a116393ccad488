/*
 * server_tasks.c - the data plane of the server: tasks and swarms.
 *
 * A handler validates the whole request before it calls the router, so
 * that a bad request changes nothing; the router's code then becomes the
 * reply.  This file decides nothing about records: a claim's winner is
 * picked by the primary store's compare-and-swap.  Swarm auth (server.h)
 * is decided here, per handler, on what swarm_auth.c says a request's
 * token is: which write needs which swarm sits next to the handler that
 * does the write.  Each routed operation is timed into the metrics.
 */
#include "server_internal.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/*
 * op_begin() for a write, once the request is known good: CO_EUNAVAIL
 * instead if its client has closed the connection, so that nothing is won
 * or changed for a client that will never hear of it.
 */
static int write_begin(op_timer *t, co_server *s, struct MHD_Connection *c, co_op op,
		       const char *id)
{
	int error;

	if ((error = co_server__client_still_there(s, c)) < 0)
		return error;
	op_begin(t, s, op, id);
	return 0;
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
	co_server__reply_err(rp, status, status == 403 ? "forbidden" : "unauthorized",
			     why, NULL);
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
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION));
	if (rc == 0)
		return 0;
	if (rc < 0) {
		co_server__reply_code(rp, rc, NULL);
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

/* --- tasks and swarms --- */

void co_server__task_create(reply *rp, co_server *s, struct MHD_Connection *c,
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
	if ((error = co_server__parse_body(&o, rq, allowed, 0)) < 0 ||
	    (error = co_server__get_str(&id, o, "id", 1)) < 0 ||
	    (error = co_server__get_str(&type, o, "type", 0)) < 0 ||
	    (error = co_record_new(&task, CO_KIND_TASK, id)) < 0 ||
	    (error = co_server__get_meta(task, o)) < 0 ||
	    (error = co_server__get_strv(&task->blocked_by, o, "blocked_by")) < 0)
		goto done;
	if (type && (task->type = strdup(type)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	if ((error = write_begin(&t, s, c, CO_OP_TASK_CREATE, id)) < 0)
		goto done;
	error = co_router_task_create(&out, s->router, task);
	op_end(&t, s, error);
	if (error == 0)
		co_server__reply_record(rp, 201, out);
done:
	if (error < 0)
		co_server__reply_code(rp, error, NULL);
	co_record_free(out);
	co_record_free(task);
	cJSON_Delete(o);
}

void co_server__get(reply *rp, co_server *s, co_kind kind, const char *id)
{
	co_record *out = NULL;
	op_timer t;
	int error;

	op_begin(&t, s, kind == CO_KIND_TASK ? CO_OP_TASK_GET : CO_OP_SWARM_GET, id);
	error = co_router_get(&out, s->router, kind, id);
	op_end(&t, s, error);
	if (error < 0)
		co_server__reply_code(rp, error, NULL);
	else
		co_server__reply_record(rp, 200, out);
	co_record_free(out);
}

void co_server__list(reply *rp, co_server *s, co_kind kind, const char *status)
{
	co_record_list l = {0};
	co_status want = CO_STATUS_AVAILABLE;
	char *buf = NULL;
	size_t len = 0, cap = 0, i, n = 0;
	op_timer t;
	int error;

	if (status && (error = co_status_parse(&want, status)) < 0)
		goto done;
	op_begin(&t, s, kind == CO_KIND_TASK ? CO_OP_TASK_LIST : CO_OP_SWARM_LIST, NULL);
	error = co_router_list(&l, s->router, kind);
	op_end(&t, s, error);
	if (error < 0)
		goto done;
	/* Each record's JSON as it is, joined: not parsed and printed again. */
	if ((error = co_metrics_appendf(&buf, &len, &cap, "[")) < 0)
		goto done;
	for (i = 0; i < l.n; i++) {
		char *js;

		if (status && l.items[i]->status != want)
			continue;
		if ((js = co_record_to_json(l.items[i], 0)) == NULL) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		error = co_metrics_appendf(&buf, &len, &cap, "%s%s", n++ ? "," : "", js);
		free(js);
		if (error < 0)
			goto done;
	}
	if ((error = co_metrics_appendf(&buf, &len, &cap, "]")) < 0)
		goto done;
	rp->status = 200;
	rp->body = buf;
	rp->ctype = "application/json";
	buf = NULL;
done:
	if (error < 0)
		co_server__reply_code(rp, error, NULL);
	free(buf);
	co_record_list_clear(&l);
}

void co_server__task_act(reply *rp, co_server *s, struct MHD_Connection *c, const req *rq,
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
	if ((error = co_server__parse_body(
		 &o, rq, act == ACT_RELEASE ? a_release : a_claim, 0)) < 0 ||
	    (error = co_server__get_str(&swarm, o, "swarm", 1)) < 0 ||
	    (error = co_id_validate(swarm)) < 0)
		goto done;
	if (auth_as(rp, s, c, op, id, who, swarm) < 0)
		goto done;
	switch (act) {
	case ACT_CLAIM:
		if ((error = co_server__get_ttl(&ttl, o, 0, 0)) < 0)
			goto done;
		if ((error = write_begin(&t, s, c, CO_OP_TASK_CLAIM, id)) < 0)
			goto done;
		error = co_router_claim(&out, s->router, id, swarm, ttl);
		break;
	case ACT_RELEASE:
		if ((error = co_server__get_str(&status, o, "status", 0)) < 0 ||
		    (status && (error = co_status_parse(&to, status)) < 0))
			goto done;
		if (to != CO_STATUS_AVAILABLE && to != CO_STATUS_COMPLETE &&
		    to != CO_STATUS_FAILED) {
			error = co_error_set(
			    CO_EINVAL,
			    "\"status\" must be available, complete or failed");
			goto done;
		}
		if ((error = write_begin(&t, s, c, CO_OP_TASK_RELEASE, id)) < 0)
			goto done;
		error = co_router_release(&out, s->router, id, swarm, to);
		break;
	default:
		if ((error = co_server__get_ttl(&ttl, o, 1, 1)) < 0)
			goto done;
		if ((error = write_begin(&t, s, c, CO_OP_TASK_RENEW, id)) < 0)
			goto done;
		error = co_router_renew(&out, s->router, id, swarm, ttl);
		break;
	}
	op_end(&t, s, error);
	if (error == 0)
		co_server__reply_record(rp, 200, out);
done:
	/* A lost claim carries the current record: the loser learns the owner. */
	if (error < 0)
		co_server__reply_code(rp, error, error == CO_ECONFLICT ? out : NULL);
	co_record_free(out);
	cJSON_Delete(o);
}

void co_server__swarm_register(reply *rp, co_server *s, struct MHD_Connection *c,
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
	    strncmp(h, "Bearer ", 7) == 0 && co_server__token_equal(h + 7, s->token))
		admin = 1;
	if (!admin &&
	    auth_identify(who, sizeof(who), rp, s, c, CO_OP_SWARM_REGISTER, NULL,
			  "registering a swarm needs its own token or the "
			  "admin token") < 0)
		return;
	if ((error = co_server__parse_body(&o, rq, allowed, 0)) < 0 ||
	    (error = co_server__get_str(&id, o, "id", 1)) < 0 ||
	    (error = co_record_new(&sw, CO_KIND_SWARM, id)) < 0 ||
	    (error = co_server__get_meta(sw, o)) < 0 ||
	    (error = co_server__get_strv(&sw->capabilities, o, "capabilities")) < 0)
		goto done;
	if (!admin && auth_as(rp, s, c, CO_OP_SWARM_REGISTER, id, who, id) < 0)
		goto done;
	if ((error = write_begin(&t, s, c, CO_OP_SWARM_REGISTER, id)) < 0)
		goto done;
	error = co_router_swarm_register(&out, s->router, sw);
	op_end(&t, s, error);
	if (error == 0)
		co_server__reply_record(rp, 200, out);
done:
	if (error < 0)
		co_server__reply_code(rp, error, NULL);
	co_record_free(out);
	co_record_free(sw);
	cJSON_Delete(o);
}
