/*
 * server_admin.c - what operators call: /healthz, /metrics and /v1/admin.
 *
 * Health and metrics answer from memory (the background probe's last
 * result, the watcher's flags): they never wait on a store.
 *
 * Admin changes (rollback, resume, stage) are routed from here to
 * server_flags_admin.c, which writes the flags.
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
 */
#include "server_flags_admin.h"
#include "server_internal.h"
#include "server_fleet.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/runs.h"
#include "core/state.h"
#include "core/webhook.h"
#include "flags/rollout.h"
#include "flags/stage.h"
#include "reconcile/report.h"
#include "router/triggers.h"
#include "store/git_store.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- health and metrics --- */

/*
 * Liveness and what an operator needs first: the stage, the kill switch,
 * each store's last probe and breaker, and whether the state dir's fsync
 * is stalled.  From memory only: answers at once whatever the stores and
 * the disk do.  "degraded" when a store is down or the state dir stalled.
 */
void co_server__healthz(reply *rp, co_server *s)
{
	cJSON *o = cJSON_CreateObject(), *stores;
	co_health_store g = {0}, e = {0};
	co_flags f;
	int stalled;

	co_flags_watcher_get(&f, s->flags);
	if (s->health) {
		co_health_get(&g, s->health, 0);
		co_health_get(&e, s->health, 1);
	}
	cJSON_AddStringToObject(o, "stage", co_stage_name(co_stage_of(&f)));
	cJSON_AddBoolToObject(o, "kill_switch", f.kill_switch);
	if ((stores = cJSON_AddObjectToObject(o, "stores")) != NULL && s->health)
		co_health_json(stores, s->health);
	stalled = co_health_state_dir_json(o, co_router_sync_in_flight_ms(s->router),
					   co_router_sync_stall_ms());
	cJSON_AddStringToObject(o, "status",
				(s->git && !g.up) || (s->etcd && !e.up) || stalled
				    ? "degraded"
				    : "ok");
	co_server__reply_json(rp, 200, o);
}


/*
 * glibc's heap: what malloc has handed out and not had back, and what it
 * keeps free, so that a growing RSS says whether it is memory in use or
 * memory the allocator holds, and SQLite's and libgit2's caches' shares
 * of what is in use (bench_soak prints them).  Nothing without glibc 2.33's mallinfo2.
 */
static int heap_metrics(char **buf, size_t *len, size_t *cap)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 mi = mallinfo2();

	return co_metrics_appendf(
	    buf, len, cap,
	    "# HELP cutover_heap_in_use_bytes Bytes malloc has handed out and not "
	    "had back.\n# TYPE cutover_heap_in_use_bytes gauge\n"
	    "cutover_heap_in_use_bytes %zu\n"
	    "# HELP cutover_heap_free_bytes Bytes free inside malloc's heap and "
	    "arenas, kept from the system.\n# TYPE cutover_heap_free_bytes gauge\n"
	    "cutover_heap_free_bytes %zu\n"
	    "# HELP cutover_sqlite_memory_bytes Bytes of the heap in use that "
	    "SQLite holds (its page caches among them).\n"
	    "# TYPE cutover_sqlite_memory_bytes gauge\n"
	    "cutover_sqlite_memory_bytes %lld\n"
	    "# HELP cutover_git_cache_bytes Bytes of the heap in use that "
	    "libgit2's object caches hold, every repository together.\n"
	    "# TYPE cutover_git_cache_bytes gauge\n"
	    "cutover_git_cache_bytes %zu\n",
	    mi.uordblks + mi.hblkhd, mi.fordblks, co_state_memory_used(),
	    co_git_cached_bytes());
#else
	(void)buf;
	(void)len;
	(void)cap;
	return 0;
#endif
}

/* The router's shadow counters (core/shadow.h), by read op. */
static int shadow_metrics(char **buf, size_t *len, size_t *cap, co_router *r)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} fam[] = {
	    {"cutover_shadow_reads_total",
	     "Shadow reads compared with etcd (sampled in), by operation.",
	     offsetof(co_shadow_stats, reads)},
	    {"cutover_shadow_skipped_total",
	     "Shadow reads sampled out: served by git alone, etcd not read.",
	     offsetof(co_shadow_stats, skipped)},
	    {"cutover_shadow_mismatches_total",
	     "Compared shadow reads that found a difference outside the ignored "
	     "fields (a list counts once).",
	     offsetof(co_shadow_stats, mismatches)},
	    {"cutover_shadow_errors_total", "Compared shadow reads etcd did not answer.",
	     offsetof(co_shadow_stats, errors)},
	};
	co_shadow_stats st;
	size_t f;
	int op, error;

	co_router_shadow_stats(&st, r);
	for (f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		const uint64_t *v = (const uint64_t *)((const char *)&st + fam[f].off);

		if ((error = co_metrics_appendf(
			 buf, len, cap, "# HELP %s %s\n# TYPE %s counter\n", fam[f].name,
			 fam[f].help, fam[f].name)) < 0)
			return error;
		for (op = 0; op < CO_OP__COUNT; op++)
			if (co_shadow_is_read((co_op)op) &&
			    (error = co_metrics_appendf(
				 buf, len, cap, "%s{op=\"%s\"} %llu\n", fam[f].name,
				 co_op_name((co_op)op), (unsigned long long)v[op])) < 0)
				return error;
	}
	return 0;
}

void co_server__metrics(reply *rp, co_server *s)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int64_t depth = 0, hooks = 0;
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
	/* from memory, like /healthz's state_dir (issue 20 point 5) */
	if ((error = co_metrics_appendf(
		 &buf, &len, &cap,
		 "# HELP cutover_state_fsync_in_flight_seconds How long the group "
		 "commit's fsync of the state dir has been running (0: none); past "
		 "the stall bound writes are refused with 503.\n"
		 "# TYPE cutover_state_fsync_in_flight_seconds gauge\n"
		 "cutover_state_fsync_in_flight_seconds %.3f\n"
		 "# HELP cutover_state_fsyncs_total fsyncs of the state dir's log by "
		 "the group commit (each covers every write waiting on it).\n"
		 "# TYPE cutover_state_fsyncs_total counter\n"
		 "cutover_state_fsyncs_total %llu\n",
		 (double)co_router_sync_in_flight_ms(s->router) / 1000.0,
		 (unsigned long long)co_router_state_syncs(s->router))) < 0)
		goto done;
	if ((error = co_metrics_appendf(
		 &buf, &len, &cap,
		 "# HELP cutover_reconcile_schedule_ticks_total Wake-ups of serve's "
		 "reconcile schedule.\n# TYPE cutover_reconcile_schedule_ticks_total "
		 "counter\ncutover_reconcile_schedule_ticks_total %lld\n"
		 "# HELP cutover_reconcile_scheduled_runs_total Reconciliation runs "
		 "the schedule made, by result (busy: one was already running).\n"
		 "# TYPE cutover_reconcile_scheduled_runs_total counter\n"
		 "cutover_reconcile_scheduled_runs_total{result=\"done\"} %lld\n"
		 "cutover_reconcile_scheduled_runs_total{result=\"error\"} %lld\n"
		 "cutover_reconcile_scheduled_runs_total{result=\"busy\"} %lld\n",
		 (long long)atomic_load(&s->sched_ticks), (long long)atomic_load(&s->sched_runs),
		 (long long)atomic_load(&s->sched_failed),
		 (long long)atomic_load(&s->sched_busy))) < 0)
		goto done;
	if (co_webhook_pending(&hooks, NULL, NULL, 0, s->state) < 0) {
		hooks = -1;
		co_error_clear();
	}
	if ((error = co_metrics_appendf(
		 &buf, &len, &cap,
		 "# HELP cutover_webhook_outbox_depth Webhook events not yet delivered "
		 "(all endpoints; -1: the state database cannot be read).\n"
		 "# TYPE cutover_webhook_outbox_depth gauge\n"
		 "cutover_webhook_outbox_depth %lld\n",
		 (long long)hooks)) < 0)
		goto done;
	if ((error = co_health_breaker_metrics(&buf, &len, &cap, s->git, s->etcd)) < 0 ||
	    (error = co_metrics_appendf(&buf, &len, &cap, "%s",
					co_triggers_metrics(tm, sizeof(tm),
							    co_router_triggers(s->router)))) < 0)
		goto done;
	if ((error = heap_metrics(&buf, &len, &cap)) < 0)
		goto done;
	if ((error = shadow_metrics(&buf, &len, &cap, s->router)) < 0 ||
	    (error = co_server__guard_metrics(&buf, &len, &cap, s)) < 0)
		goto done;
	error = co_metrics_format(&buf, &len, &cap, s->metrics);
done:
	if (error < 0) {
		free(buf);
		co_server__reply_code(rp, error, NULL);
		return;
	}
	rp->status = 200;
	rp->body = buf;
	rp->ctype = "text/plain; version=0.0.4";
}

/* --- admin --- */

/* 0 if the request carries the admin token; a reply (401/403) otherwise. */
int co_server__admin_auth(reply *rp, co_server *s, struct MHD_Connection *c)
{
	const char *h;

	if (s->token == NULL) {
		co_server__reply_err(
		    rp, 403, "forbidden",
		    "admin endpoints are disabled: no admin_token_file configured", NULL);
		return -1;
	}
	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0 ||
	    !co_server__token_equal(h + 7, s->token)) {
		co_server__reply_err(rp, 401, "unauthorized",
				     h ? "wrong admin token"
				       : "missing Authorization: Bearer <token>",
				     NULL);
		return -1;
	}
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
int co_server__reconcile(co_reconcile_result **res_out, co_reconcile_result **verify_out,
			 co_server *s, co_repair_from repair, int no_rollback, const char *who)
{
	co_reconcile_opts ro = CO_RECONCILE_OPTS_INIT;
	co_reconcile_result *res = NULL, *verify = NULL;
	char msg[1024] = "", detail[2048], first[256] = "", last[256] = "";
	int error, idle = 0;

	*res_out = *verify_out = NULL;
	if (s->flags_path == NULL)
		return co_error_set(CO_EUNAVAIL, "no flags file configured");
	if (s->git == NULL || s->etcd == NULL)
		return co_error_set(CO_EUNAVAIL,
				    "reconcile: this server was started without both "
				    "stores");
	if (!atomic_compare_exchange_strong(&s->reconciling, &idle, 1))
		return co_error_set(CO_ECONFLICT,
				    "a reconciliation is already running on this server "
				    "(one at a time): retry when it has finished");

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
	ro.no_rollback = no_rollback;
	ro.repair = repair;
	ro.drain = reconcile_drain;
	ro.drain_ctx = s;
	ro.progress = s->progress;
	ro.progress_ctx = s->progress_ctx;
	ro.who = who;
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
	if (co_audit_change_add(s->state, who, "reconcile", detail, NULL) < 0 &&
	    error == 0) {
		/* The run is recorded; failing the request would hide it. */
		char *w = verify ? verify->warning : res->warning;
		size_t n = strlen(w);

		snprintf(w + n, sizeof(res->warning) - n,
			 "%saudit row not written: %.300s", n ? "; " : "",
			 co_error_last());
	}
	co_error_clear();
	atomic_store(&s->reconciling, 0);
	if (error < 0) {
		co_reconcile_result_free(verify);
		co_reconcile_result_free(res);
		return co_error_set(error, "%s", msg);
	}
	*res_out = res;
	*verify_out = verify;
	return 0;
}

static void h_admin_reconcile(reply *rp, co_server *s, const req *rq)
{
	static const char *const allowed[] = {"no_rollback", "repair", NULL};
	co_reconcile_result *res = NULL, *verify = NULL;
	co_repair_from rep_from = CO_REPAIR_NONE;
	const char *repair = NULL;
	const cJSON *nr;
	cJSON *o = NULL, *out = NULL, *rep;
	int error;

	if ((error = co_server__parse_body(&o, rq, allowed, 1)) < 0 ||
	    (error = co_server__get_str(&repair, o, "repair", 0)) < 0)
		goto done;
	nr = cJSON_GetObjectItemCaseSensitive(o, "no_rollback");
	if (nr && !cJSON_IsBool(nr) && !cJSON_IsNull(nr)) {
		error = co_error_set(CO_EINVAL, "\"no_rollback\" must be true or false");
		goto done;
	}
	if (repair && co_reconcile_parse_repair(&rep_from, repair) < 0) {
		/* Not the reconciler's message: it names the CLI's --repair. */
		error = co_error_set(
		    CO_EINVAL, "\"repair\": \"%s\" is not a store (git or etcd)", repair);
		goto done;
	}
	if ((error = co_server__reconcile(&res, &verify, s, rep_from, cJSON_IsTrue(nr),
					  "serve:admin")) < 0)
		goto done;
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
	co_server__reply_json(rp, 200, out);
	out = NULL;
done:
	if (error < 0)
		co_server__reply_code(rp, error, NULL);
	cJSON_Delete(out);
	cJSON_Delete(o);
	co_reconcile_result_free(verify);
	co_reconcile_result_free(res);
}

/* --- admin: the audit trail --- */

/* Rows per page of GET /v1/admin/audit: default and most. */
#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000

static const char *const audit_params[] = {"since", "until",  "op",    "kind",
					   "limit", "cursor", "order", NULL};

static const char *const runs_params[] = {"limit", NULL};

/* A query's parameters against the ones an endpoint knows. */
typedef struct param_check {
	const char *const *known;
	const char *unknown; /* the first one not known, or NULL */
} param_check;

/* MHD iterator: stop (MHD_NO) at the first query parameter not known. */
static enum MHD_Result param_known(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	param_check *pc = cls;
	size_t i;

	(void)kind;
	(void)value;
	for (i = 0; pc->known[i]; i++)
		if (strcmp(key, pc->known[i]) == 0)
			return MHD_YES;
	pc->unknown = key;
	return MHD_NO;
}

/* CO_EINVAL "NAME: <this thread's last message>". */
static int param_error(const char *name)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s", co_error_last());
	return co_error_set(CO_EINVAL, "%s: %s", name, msg);
}

static const char *audit_param(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	return v && *v ? v : NULL;
}

/* A whole number from min to max in query parameter `name`, or CO_EINVAL. */
static int audit_number(int64_t *out, const char *name, const char *v, int64_t min,
			int64_t max)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return co_error_set(CO_EINVAL,
				    "\"%s\": \"%s\" is not a number from %lld to %lld",
				    name, v, (long long)min, (long long)max);
	*out = n;
	return 0;
}

/*
 * GET /v1/admin/audit?since=&until=&op=&kind=&limit=&cursor=&order= (server.h):
 * one page of the change trail, as `cutover --json audit` prints it.  Every
 * parameter is checked before the state is read; a bad one is a 400 naming it.
 */
static void h_admin_audit(reply *rp, co_server *s, struct MHD_Connection *c)
{
	co_audit_filter f = {0};
	co_audit_change_list l = {0};
	param_check pc = {audit_params, NULL};
	const char *v;
	int64_t n = 0, next = 0, now = co_state_now_ms();
	co_op op;
	int error = 0;
	char *text = NULL;

	f.limit = AUDIT_PAGE_DEFAULT;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, param_known, &pc);
	if (pc.unknown) {
		error = co_error_set(CO_EINVAL,
				     "unknown parameter \"%s\" (since, until, op, kind, "
				     "limit, cursor, order)",
				     pc.unknown);
		goto done;
	}
	if ((v = audit_param(c, "since")) &&
	    co_audit_parse_time(&f.since_ms, v, now) < 0) {
		error = param_error("\"since\"");
		goto done;
	}
	if ((v = audit_param(c, "until")) &&
	    co_audit_parse_time(&f.until_ms, v, now) < 0) {
		error = param_error("\"until\"");
		goto done;
	}
	if ((v = f.op = audit_param(c, "op")) && co_op_parse(&op, v) < 0) {
		error = param_error("\"op\"");
		goto done;
	}
	if ((v = f.kind = audit_param(c, "kind")) && !co_audit_kind_valid(v)) {
		error = co_error_set(CO_EINVAL, "\"kind\": \"%s\" is not one of %s", v,
				     CO_AUDIT_KINDS);
		goto done;
	}
	if ((v = audit_param(c, "limit"))) {
		if ((error = audit_number(&n, "limit", v, 1, AUDIT_PAGE_MAX)) < 0)
			goto done;
		f.limit = (size_t)n;
	}
	if ((v = audit_param(c, "cursor")) &&
	    (error = audit_number(&f.cursor, "cursor", v, 0, INT64_MAX)) < 0)
		goto done;
	if ((v = audit_param(c, "order")) && strcmp(v, "oldest") != 0) {
		if (strcmp(v, "newest") != 0) {
			error = co_error_set(
			    CO_EINVAL, "\"order\": \"%s\" is not oldest or newest", v);
			goto done;
		}
		f.newest_first = 1;
	}
	if ((error = co_audit_changes_query(&l, &next, s->state, &f)) < 0)
		goto done;
	if ((error = co_audit_page_json(&text, &l, next, f.newest_first)) == 0) {
		rp->status = 200;
		rp->body = text;
		rp->ctype = "application/json";
	}
done:
	if (error < 0)
		co_server__reply_code(rp, error, NULL);
	co_audit_change_list_clear(&l);
}

/* Runs per answer of GET /v1/admin/runs: default and most. */
#define RUNS_DEFAULT 100
#define RUNS_MAX 1000

/*
 * GET /v1/admin/runs?limit=N (server.h): this router's latest N finished
 * reconciliation runs, newest first, each as `cutover --json report` prints
 * a run without its divergences (`cutover report --fleet` merges every
 * router's), plus "started_at_ms" (Unix ms: runs of one second apart
 * order by it).  A parameter other than limit, or a bad limit, is a 400.
 */
static void h_admin_runs(reply *rp, co_server *s, struct MHD_Connection *c)
{
	co_run_list l = {0};
	param_check pc = {runs_params, NULL};
	const char *v;
	cJSON *o = NULL, *arr;
	int64_t n = RUNS_DEFAULT;
	size_t i;
	int error = 0;

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, param_known, &pc);
	if (pc.unknown) {
		error = co_error_set(CO_EINVAL, "unknown parameter \"%s\" (limit)",
				     pc.unknown);
		goto done;
	}
	if ((v = audit_param(c, "limit")) &&
	    (error = audit_number(&n, "limit", v, 1, RUNS_MAX)) < 0)
		goto done;
	if ((error = co_runs_list(&l, s->state, (size_t)n)) < 0)
		goto done;
	if ((o = cJSON_CreateObject()) == NULL ||
	    (arr = cJSON_AddArrayToObject(o, "runs")) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	for (i = l.n; i-- > 0;) { /* the list is oldest first */
		cJSON *r = co_report_run_json(l.items[i], NULL, NULL);

		cJSON_DeleteItemFromObjectCaseSensitive(r, "divergences");
		if (r == NULL ||
		    !cJSON_AddNumberToObject(r, "started_at_ms",
					     (double)l.items[i]->started_at) ||
		    !cJSON_AddItemToArray(arr, r)) {
			cJSON_Delete(r);
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
	}
	co_server__reply_json(rp, 200, o);
	o = NULL;
done:
	if (error < 0)
		co_server__reply_code(rp, error, NULL);
	cJSON_Delete(o);
	co_run_list_clear(&l);
}

/* GET /v1/admin/rollout: the guarded rollout's state, as `rollout status
 * --json` prints it ({"phase":"none"} when there is none). */
static void h_admin_rollout(reply *rp, co_server *s)
{
	co_rollout r;
	int error = co_rollout_load(&r, co_state_dir(s->state));
	cJSON *o;

	if (error < 0 && error != CO_ENOTFOUND) {
		co_server__reply_code(rp, error, NULL);
		return;
	}
	co_error_clear();
	if ((o = co_rollout_status_json(error == 0 ? &r : NULL, co_state_now_ms())) == NULL) {
		co_server__reply_code(rp, co_error_set(CO_ENOMEM, "out of memory"), NULL);
		return;
	}
	co_server__reply_json(rp, 200, o);
}

void co_server__admin(reply *rp, co_server *s, struct MHD_Connection *c, const req *rq,
		      const char *what, int is_post)
{
	co_flags from;

	if (strcmp(what, "flags") == 0) {
		if (is_post) {
			co_server__reply_err(rp, 405, "method_not_allowed", "use GET",
					     NULL);
			return;
		}
		co_flags_watcher_get(&from, s->flags);
		co_server__reply_json(rp, 200, co_server__flags_json(&from));
		return;
	}
	if (strcmp(what, "fleet") == 0) { /* router fleet (server_fleet.c) */
		co_server__fleet_admin(rp, is_post);
		return;
	}
	if (strcmp(what, "audit") == 0) {
		if (is_post)
			co_server__reply_err(rp, 405, "method_not_allowed", "use GET",
					     NULL);
		else
			h_admin_audit(rp, s, c);
		return;
	}
	if (strcmp(what, "runs") == 0) {
		if (is_post)
			co_server__reply_err(rp, 405, "method_not_allowed", "use GET",
					     NULL);
		else
			h_admin_runs(rp, s, c);
		return;
	}
	if (strcmp(what, "rollout") == 0) {
		if (is_post)
			co_server__reply_err(rp, 405, "method_not_allowed",
					     "use GET (start and steer a rollout with `cutover "
					     "rollout`)",
					     NULL);
		else
			h_admin_rollout(rp, s);
		return;
	}
	if (strcmp(what, "reconcile") == 0) {
		if (is_post)
			h_admin_reconcile(rp, s, rq);
		else
			co_server__reply_err(rp, 405, "method_not_allowed", "use POST",
					     NULL);
		return;
	}
	if (strcmp(what, "rollback") != 0 && strcmp(what, "resume") != 0 &&
	    strcmp(what, "stage") != 0) {
		co_server__reply_err(rp, 404, "not_found", "no such admin endpoint",
				     NULL);
		return;
	}
	if (!is_post) {
		co_server__reply_err(rp, 405, "method_not_allowed", "use POST", NULL);
		return;
	}
	co_server__flags_admin(rp, s, rq, what);
}
