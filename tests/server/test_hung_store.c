/*
 * test_hung_store.c - a hung etcd must not hold git hostage (issue 20).
 *
 * etcd is frozen with SIGSTOP by pid, the way a sick etcd usually looks
 * (the port accepts, nothing answers), under `cutover serve` in-process on
 * a free loopback port, against a real bare git repo.  What must hold:
 * after a rollback every claim is served at git's speed (none waits on
 * etcd once its breaker is open: the calls that reached etcd since are
 * only the breaker's probes); /metrics and /healthz answer and show the
 * breaker open; every acknowledged write reaches etcd after SIGCONT and a
 * reconciliation passes; a claim has exactly one winner; an etcd-primary
 * ID fails fast with 503 and Retry-After.  No timing is asserted: the
 * figures are bench/bench_hung.c's.
 */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "router/router.h"
#include "server/server.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "hung-admin-token"
#define AUTH "Bearer " TOKEN
#define N_TASKS 100

static int prefix_seq;

typedef co_test_serve fx;

static char prefix[64]; /* the current test's etcd prefix */

/* serve over both stores at `stage`, its etcd breaker probing every
 * 100-400 ms so that a thawed etcd is seen soon */
static void fx_open(fx *f, const char *stage_name)
{
	co_breaker_opts bo = CO_BREAKER_OPTS_INIT;
	co_test_serve_opts o = {0};

	snprintf(prefix, sizeof(prefix), "/hung%d-%d/", (int)getpid(), ++prefix_seq);
	bo.probe_ms = 100;
	bo.probe_max_ms = 400;
	o.endpoint = co_test_group_etcd.endpoint;
	o.prefix = prefix;
	o.stage = stage_name;
	o.token = TOKEN;
	o.etcd_timeout_ms = 2000;
	o.git_poll_ms = 50;
	o.probe_interval_ms = 100;
	o.probe_timeout_ms = 200;
	o.etcd_breaker = &bo;
	assert_int_equal(co_test_serve_open(f, &o), 0);
}

static void fx_close(fx *f)
{
	co_test_etcd_thaw(&co_test_group_etcd);
	co_test_serve_close(f);
}

static long post(const fx *f, const char *path, const char *body, const char *auth,
		 co_test_resp *keep)
{
	co_test_resp r;
	long status;

	co_test_http(&r, f->base, "POST", path, body, strlen(body), auth);
	status = r.status;
	if (keep)
		*keep = r;
	else
		free(r.body);
	return status;
}

static void create_tasks(const fx *f, int n)
{
	char body[128];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "{\"id\":\"H%03d\",\"type\":\"build\"}", i);
		assert_int_equal(post(f, "/v1/tasks", body, NULL, NULL), 201);
	}
}

static co_breaker_state etcd_breaker(const fx *f, co_breaker_info *out)
{
	co_breaker_info bi;

	co_store_breaker_get(out ? out : &bi, f->etcd);
	return out ? out->state : bi.state;
}

/* Bounded wait for the etcd breaker to reach `want` (the probe drives it;
 * there is no event to block on from outside the process). */
static int await_breaker(const fx *f, co_breaker_state want)
{
	struct timespec ts = {0, 10 * 1000000L};
	int i;

	for (i = 0; i < 3000; i++) {
		if (etcd_breaker(f, NULL) == want)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

/* Bounded wait for the outbox to empty (the background drain). */
static int64_t await_drained(const fx *f)
{
	struct timespec ts = {0, 10 * 1000000L};
	int64_t depth = -1;
	int i;

	for (i = 0; i < 3000; i++) {
		if (co_outbox_depth(&depth, f->st, NULL) == 0 && depth == 0)
			return 0;
		nanosleep(&ts, NULL);
	}
	return depth;
}

/* Transitions to half-open audited so far: the probes the breaker let out. */
static int count_probes(const fx *f)
{
	co_audit_change_list l = {0};
	size_t i;
	int n = 0;

	assert_int_equal(co_audit_changes_latest(&l, f->st, 100000), 0);
	for (i = 0; i < l.n; i++)
		if (strcmp(l.items[i]->action, "circuit_half_open") == 0)
			n++;
	co_audit_change_list_clear(&l);
	return n;
}

static int audited(const fx *f, const char *action)
{
	co_audit_change_list l = {0};
	size_t i;
	int n = 0;

	assert_int_equal(co_audit_changes_latest(&l, f->st, 100000), 0);
	for (i = 0; i < l.n; i++)
		if (strcmp(l.items[i]->action, action) == 0)
			n++;
	co_audit_change_list_clear(&l);
	return n;
}

/* Two swarms race for every task; each claim has one winner. */
typedef struct racer {
	const fx *f;
	const char *swarm;
	int won[N_TASKS];
	int other; /* answers that were neither 200 nor 409 */
} racer;

static void *race(void *p)
{
	racer *x = p;
	char path[64], body[64];
	int i;

	snprintf(body, sizeof(body), "{\"swarm\":\"%s\"}", x->swarm);
	for (i = 0; i < N_TASKS; i++) {
		long st;

		snprintf(path, sizeof(path), "/v1/tasks/H%03d/claim", i);
		st = post(x->f, path, body, NULL, NULL);
		x->won[i] = st == 200;
		if (st != 200 && st != 409)
			x->other++;
	}
	return NULL;
}

static char *metrics(const fx *f)
{
	co_test_resp r;

	co_test_http(&r, f->base, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	return r.body;
}

static void metrics_and_healthz_show_the_etcd_breaker_open(const fx *f)
{
	co_test_resp r;
	cJSON *o, *b;
	char *m = metrics(f);

	assert_non_null(strstr(m, "cutover_breaker_state{store=\"etcd\"} 1"));
	assert_non_null(strstr(m, "cutover_store_up{store=\"etcd\"} 0"));
	assert_non_null(strstr(m, "cutover_store_up{store=\"git\"} 1"));
	assert_non_null(strstr(m, "cutover_kill_switch 1"));
	free(m);
	co_test_http(&r, f->base, "GET", "/healthz", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(o = cJSON_Parse(r.body));
	assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring, "degraded");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "kill_switch")));
	b = cJSON_GetObjectItem(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(o, "stores"), "etcd"), "breaker");
	assert_non_null(b);
	assert_true(strcmp(cJSON_GetObjectItem(b, "state")->valuestring, "closed") != 0);
	assert_non_null(strstr(cJSON_GetObjectItem(b, "why")->valuestring, "in a row"));
	cJSON_Delete(o);
	free(r.body);
}

/* `cutover status` in another process reads this serve's probe: etcd down
 * behind an open breaker, and says where it got that from. */
static void status_shows_the_serve_probe(const fx *f)
{
	char env[5][400], *out = NULL;
	const char *envp[6], *argv[] = {"--json", "status", NULL};
	cJSON *o, *e;
	int i;

	snprintf(env[0], sizeof(env[0]), "CUTOVER_GIT_REPO=%s", f->repo);
	snprintf(env[1], sizeof(env[1]), "CUTOVER_ETCD_ENDPOINTS=%s",
		 co_test_group_etcd.endpoint);
	snprintf(env[2], sizeof(env[2]), "CUTOVER_ETCD_PREFIX=%s", prefix);
	snprintf(env[3], sizeof(env[3]), "CUTOVER_STATE_DIR=%s", f->dir);
	snprintf(env[4], sizeof(env[4]), "CUTOVER_FLAGS=%s", f->flags_path);
	for (i = 0; i < 5; i++)
		envp[i] = env[i];
	envp[5] = NULL;
	assert_int_equal(co_test_cutover(&out, NULL, envp, argv), 0);
	assert_non_null(o = cJSON_Parse(out));
	e = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "stores"), "etcd");
	assert_non_null(e);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(e, "up")));
	assert_string_equal(cJSON_GetObjectItem(e, "source")->valuestring, "serve");
	assert_int_equal((long)cJSON_GetObjectItem(e, "serve_pid")->valuedouble,
			 (long)getpid());
	assert_true(strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "breaker"), "state")
			       ->valuestring,
			   "closed") != 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "kill_switch")));
	cJSON_Delete(o);
	free(out);
}

/* Both stores hold task i claimed by `owner`. */
static void assert_owner_in_both(const fx *f, int i, const char *owner)
{
	co_store *stores[2] = {f->git, f->etcd};
	char id[16];
	int k;

	snprintf(id, sizeof(id), "H%03d", i);
	for (k = 0; k < 2; k++) {
		co_record *rec = NULL;

		assert_int_equal(co_store_get(&rec, stores[k], CO_KIND_TASK, id), 0);
		assert_int_equal(rec->status, CO_STATUS_CLAIMED);
		assert_string_equal(rec->owner, owner);
		co_record_free(rec);
	}
}

static void dual50_frozen_etcd_rollback_serves_every_claim_from_git(void **state)
{
	racer a = {0}, b = {0};
	pthread_t ta, tb;
	co_breaker_info at_open, at_end;
	co_test_resp r;
	uint64_t calls_at_open, calls_at_end;
	int probes_at_open, i;
	fx f;

	(void)state;
	fx_open(&f, "50");
	create_tasks(&f, N_TASKS);
	assert_int_equal(co_test_etcd_freeze(&co_test_group_etcd), 0);

	/* the kill switch, as an operator pulls it at 3 a.m. */
	assert_int_equal(
	    post(&f, "/v1/admin/rollback", "{\"reason\":\"etcd hung\"}", AUTH, NULL),
	    200);
	/* the background probe opens the breaker; wait for it */
	assert_int_equal(await_breaker(&f, CO_BREAKER_OPEN), 0);
	metrics_and_healthz_show_the_etcd_breaker_open(&f);
	status_shows_the_serve_probe(&f);
	assert_true(audited(&f, "circuit_open") >= 1);

	probes_at_open = count_probes(&f);
	etcd_breaker(&f, &at_open);
	calls_at_open = co_store_calls(f.etcd);
	a.f = b.f = &f;
	a.swarm = "alice";
	b.swarm = "bob";
	assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	etcd_breaker(&f, &at_end);
	calls_at_end = co_store_calls(f.etcd);

	/* every claim answered, with exactly one winner each */
	assert_int_equal(a.other, 0);
	assert_int_equal(b.other, 0);
	for (i = 0; i < N_TASKS; i++)
		assert_int_equal(a.won[i] + b.won[i], 1);
	/* while the breaker was open, the only calls that reached etcd were
	 * its probes (one at a time): no claim waited on etcd.  Counted by
	 * the breaker, calls and probes in one snapshot: a probe's audit row
	 * is written before the store counts its call, so the audit trail
	 * read beside co_store_calls() could miss one at the boundary. */
	assert_true(at_end.calls_total - at_open.calls_total <=
		    at_end.probes_total - at_open.probes_total);
	assert_true(calls_at_end - calls_at_open <=
		    (uint64_t)(count_probes(&f) - probes_at_open) + 1);
	assert_true(at_end.probes_total - at_open.probes_total <=
		    (uint64_t)(count_probes(&f) - probes_at_open) + 1);
	assert_true(at_end.rejected_total > at_open.rejected_total);

	/* etcd answers again: the breaker closes and the drain empties the
	 * outbox, so every acknowledged claim is in etcd too */
	co_test_etcd_thaw(&co_test_group_etcd);
	assert_int_equal(await_breaker(&f, CO_BREAKER_CLOSED), 0);
	assert_int_equal(await_drained(&f), 0);
	assert_true(audited(&f, "circuit_closed") >= 1);
	for (i = 0; i < N_TASKS; i++)
		assert_owner_in_both(&f, i, a.won[i] ? "alice" : "bob");
	/* and a reconciliation says so */
	assert_int_equal(post(&f, "/v1/admin/reconcile", "{}", AUTH, &r), 200);
	assert_non_null(strstr(r.body, "\"verdict\":\"pass\""));
	free(r.body);
	fx_close(&f);
}

/* Shadow: git decides; with etcd hung, writes are acknowledged from git and
 * the records owed to etcd wait in the outbox until it is back. */
static void shadow_with_etcd_hung_acks_from_git_and_drains_later(void **state)
{
	int64_t depth = 0;
	int i;
	fx f;

	(void)state;
	fx_open(&f, "shadow");
	assert_int_equal(co_test_etcd_freeze(&co_test_group_etcd), 0);
	create_tasks(&f, 20);
	for (i = 0; i < 20; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/v1/tasks/H%03d/claim", i);
		assert_int_equal(post(&f, path, "{\"swarm\":\"carol\"}", NULL, NULL),
				 200);
	}
	assert_int_equal(co_outbox_depth(&depth, f.st, "etcd"), 0);
	assert_true(depth > 0);
	co_test_etcd_thaw(&co_test_group_etcd);
	assert_int_equal(await_breaker(&f, CO_BREAKER_CLOSED), 0);
	assert_int_equal(await_drained(&f), 0);
	for (i = 0; i < 20; i++)
		assert_owner_in_both(&f, i, "carol");
	fx_close(&f);
}

/* etcd is the primary (stage etcd) and hung: once the breaker is open a
 * claim fails at once with 503, Retry-After and the breaker's reason, and
 * changes nothing; after a rollback git serves that same ID. */
static void etcd_primary_hung_fails_fast_with_503_and_retry_after(void **state)
{
	co_test_resp r;
	fx f;

	(void)state;
	fx_open(&f, "etcd");
	create_tasks(&f, 1);
	assert_int_equal(co_test_etcd_freeze(&co_test_group_etcd), 0);
	assert_int_equal(await_breaker(&f, CO_BREAKER_OPEN), 0);
	assert_int_equal(
	    post(&f, "/v1/tasks/H000/claim", "{\"swarm\":\"dave\"}", NULL, &r), 503);
	assert_true(atoi(r.retry_after) >= 1);
	assert_non_null(strstr(r.body, "etcd circuit open since"));
	free(r.body);
	/* The refused claim never reached etcd, so it leaves nothing that
	 * would hold the ID from git: after the rollback, with etcd still
	 * frozen, git serves that very task at once. */
	assert_int_equal(
	    post(&f, "/v1/admin/rollback", "{\"reason\":\"etcd hung\"}", AUTH, NULL),
	    200);
	assert_int_equal(
	    post(&f, "/v1/tasks/H000/claim", "{\"swarm\":\"dave\"}", NULL, NULL), 200);
	co_test_etcd_thaw(&co_test_group_etcd);
	assert_int_equal(await_breaker(&f, CO_BREAKER_CLOSED), 0);
	assert_int_equal(await_drained(&f), 0);
	assert_owner_in_both(&f, 0, "dave");
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dual50_frozen_etcd_rollback_serves_every_claim_from_git),
	    cmocka_unit_test(shadow_with_etcd_hung_acks_from_git_and_drains_later),
	    cmocka_unit_test(etcd_primary_hung_fails_fast_with_503_and_retry_after),
	};

	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
