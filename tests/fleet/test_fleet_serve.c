/*
 * test_fleet_serve.c - fleet mode end to end with the real binary: two
 * `cutover serve` routers (each its own state dir and flags file) sharing
 * one etcd and one git repo; `cutover stage` from a third place reaches
 * both, `status --fleet` and GET /v1/admin/fleet list them and drop one
 * that dies, and the gate refuses a stage change while a router is on an
 * old epoch, naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/audit.h"
#include "core/error.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_child.h"
#include "router/fleet.h"

#define TOKEN "fleet-test-admin-token-0123456789"

/* One place that runs cutover: a dir with its config (and state dir). */
typedef struct place {
	char dir[256];
	char e_config[480], e_path[1100], e_home[320];
	const char *env[4];
} place;

typedef struct fixture {
	co_test_etcd etcd;
	char repo[256];
	place r1, r2, r3, op, off;
} fixture;

static int place_new(place *p, const fixture *fx, const char *id, int fleet)
{
	char path[400];
	FILE *f;

	if (co_test_tmpdir(p->dir, sizeof p->dir) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/admin.token", p->dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(TOKEN "\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/cutover.yaml", p->dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f,
		"git: {repo: %s}\n"
		"etcd: {endpoints: [%s], prefix: /data/}\n"
		"state_dir: %s/state\n"
		"admin_token_file: %s/admin.token\n"
		"fleet: {enabled: %s, prefix: /fleet-test/, id: %s, ttl: 1s}\n",
		fx->repo, fx->etcd.endpoint, p->dir, p->dir, fleet ? "true" : "false", id);
	fclose(f);
	snprintf(p->e_config, sizeof p->e_config, "CUTOVER_CONFIG=%s", path);
	snprintf(p->e_path, sizeof p->e_path, "PATH=%s", getenv("PATH") ? getenv("PATH") : "");
	snprintf(p->e_home, sizeof p->e_home, "HOME=%s", p->dir);
	p->env[0] = p->e_config;
	p->env[1] = p->e_path;
	p->env[2] = p->e_home;
	p->env[3] = NULL;
	return 0;
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof *fx);

	signal(SIGPIPE, SIG_IGN);
	if (!fx || co_test_etcd_start(&fx->etcd) != 0 ||
	    co_test_git_repo_new(fx->repo, sizeof fx->repo) != 0 ||
	    place_new(&fx->r1, fx, "r1", 1) != 0 || place_new(&fx->r2, fx, "r2", 1) != 0 ||
	    place_new(&fx->r3, fx, "r3", 1) != 0 ||
	    place_new(&fx->op, fx, "operator", 1) != 0 ||
	    place_new(&fx->off, fx, "off", 0) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;

	co_test_etcd_stop(&fx->etcd);
	co_test_rmrf(fx->repo);
	co_test_rmrf(fx->r1.dir);
	co_test_rmrf(fx->r2.dir);
	co_test_rmrf(fx->r3.dir);
	co_test_rmrf(fx->op.dir);
	co_test_rmrf(fx->off.dir);
	free(fx);
	return 0;
}

/* Run cutover in place p; exit status, stdout/stderr into out/err. */
static int run(char **out, char **err, const place *p, const char *a1, const char *a2,
	       const char *a3, const char *a4)
{
	const char *argv[] = {a1, a2, a3, a4, NULL};
	int rc = co_test_cutover(out, err, p->env, argv);

	if (rc != 0 && err && *err) /* what a failing step said, for the log */
		fprintf(stderr, "cutover %s %s: exit %d: %s", a1, a2 ? a2 : "", rc, *err);
	return rc;
}

/* `status --fleet --json` as a cJSON object (NULL if it failed). */
static cJSON *fleet_json(const place *p)
{
	char *out = NULL, *err = NULL;
	cJSON *o = NULL;

	if (run(&out, &err, p, "--json", "status", "--fleet", NULL) == 0)
		o = cJSON_Parse(out);
	free(out);
	free(err);
	return o;
}

/* The router `id` in a fleet JSON, or NULL. */
static const cJSON *router_in(const cJSON *o, const char *id)
{
	const cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(o, "routers"))
	{
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "id");

		if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
			return r;
	}
	return NULL;
}

/*
 * Poll (bounded) until router `id` is listed (want 1) on the fleet's
 * current epoch, or until it is not listed (want 0).
 */
static int wait_router(const place *p, const char *id, int want, int timeout_ms)
{
	struct timespec pause = {0, 100 * 1000000L};
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 100) {
		cJSON *o = fleet_json(p);
		const cJSON *r = o ? router_in(o, id) : NULL;
		int ok = o && (want ? r && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "behind"))
				    : r == NULL);

		cJSON_Delete(o);
		if (ok)
			return 0;
		nanosleep(&pause, NULL);
	}
	return -1;
}

/* Poll (bounded) until the flags file of place p is at `stage`. */
static int wait_stage(const place *p, co_stage stage, int timeout_ms)
{
	struct timespec pause = {0, 20 * 1000000L};
	char path[400];
	int waited;

	snprintf(path, sizeof path, "%s/state/flags.yaml", p->dir);
	for (waited = 0; waited <= timeout_ms; waited += 20) {
		co_flags f;

		if (co_flags_load(&f, path) == 0 && co_stage_of(&f) == stage)
			return 0;
		nanosleep(&pause, NULL);
	}
	return -1;
}

/* Start serve in r1 and r2; wait until the fleet lists both, up to date. */
static void start_both(fixture *fx, co_test_serve_child *s1, co_test_serve_child *s2)
{
	assert_int_equal(co_test_serve_child_start(s1, fx->r1.dir, fx->r1.env, NULL), 0);
	assert_int_equal(co_test_serve_child_start(s2, fx->r2.dir, fx->r2.env, NULL), 0);
	assert_int_equal(wait_router(&fx->op, "r1", 1, 10000), 0);
	assert_int_equal(wait_router(&fx->op, "r2", 1, 10000), 0);
}

/* SIGKILL a serve this test started, and reap it. */
static void kill_serve(co_test_serve_child *sv)
{
	kill(sv->pid, SIGKILL);
	waitpid(sv->pid, NULL, 0);
	sv->pid = 0;
}

static void a_stage_reaches_every_serve_and_the_fleet_is_listed(void **state)
{
	fixture *fx = *state;
	co_test_serve_child s1, s2, s3;
	co_test_resp resp;
	char *out = NULL, *err = NULL, auth[64];
	cJSON *o;

	start_both(fx, &s1, &s2);
	assert_int_equal(co_test_serve_child_start(&s3, fx->r3.dir, fx->r3.env, NULL), 0);
	assert_int_equal(wait_router(&fx->op, "r3", 1, 10000), 0);

	/* an operator elsewhere moves the fleet; all three routers get it */
	assert_int_equal(run(&out, &err, &fx->op, "stage", "shadow", "--force", NULL), 0);
	free(out);
	free(err);
	assert_int_equal(wait_stage(&fx->r1, CO_STAGE_SHADOW, 10000), 0);
	assert_int_equal(wait_stage(&fx->r2, CO_STAGE_SHADOW, 10000), 0);
	assert_int_equal(wait_stage(&fx->r3, CO_STAGE_SHADOW, 10000), 0);
	/* and register the new epoch */
	assert_int_equal(wait_router(&fx->op, "r1", 1, 10000), 0);
	assert_int_equal(wait_router(&fx->op, "r2", 1, 10000), 0);
	assert_int_equal(wait_router(&fx->op, "r3", 1, 10000), 0);
	o = fleet_json(&fx->op);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "stage")->valuestring, "shadow");
	assert_string_equal(
	    cJSON_GetObjectItemCaseSensitive(router_in(o, "r1"), "mode")->valuestring, "shadow");
	assert_non_null(
	    strstr(cJSON_GetObjectItemCaseSensitive(router_in(o, "r2"), "admin_url")->valuestring,
		   "http://127.0.0.1:"));
	cJSON_Delete(o);

	/* the human listing and the admin endpoint say the same */
	assert_int_equal(run(&out, &err, &fx->op, "status", "--fleet", NULL, NULL), 0);
	assert_non_null(strstr(out, "3 live routers"));
	assert_non_null(strstr(out, "r1"));
	free(out);
	free(err);
	snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
	co_test_http(&resp, s1.base, "GET", "/v1/admin/fleet", NULL, 0, auth);
	assert_int_equal(resp.status, 200);
	o = cJSON_Parse(resp.body);
	assert_non_null(router_in(o, "r2"));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "self")->valuestring, "r1");
	cJSON_Delete(o);
	free(resp.body);

	/* a router that dies leaves the list when its lease runs out */
	kill_serve(&s2);
	assert_int_equal(co_test_serve_child_stop(&s3), 0);
	assert_int_equal(wait_router(&fx->op, "r2", 0, 10000), 0);
	assert_int_equal(co_test_serve_child_stop(&s1), 0);
	/* a clean stop revokes at once */
	assert_int_equal(wait_router(&fx->op, "r1", 0, 0), 0);
}

static void the_gate_refuses_while_a_router_is_behind(void **state)
{
	fixture *fx = *state;
	const char *ep[] = {fx->etcd.endpoint};
	co_fleet_opts fo = {.endpoints = ep, .n_endpoints = 1, .prefix = "/fleet-test/"};
	co_fleet *fleet;
	co_fleet_member m;
	co_fleet_reg *reg;
	char *out = NULL, *err = NULL;

	/* a router stuck on epoch 0 (never saw a flags document) */
	assert_int_equal(co_fleet_open(&fleet, &fo), 0);
	memset(&m, 0, sizeof m);
	snprintf(m.id, sizeof m.id, "r-stale");
	snprintf(m.host, sizeof m.host, "h");
	assert_int_equal(run(&out, &err, &fx->op, "stage", "shadow", "--force", NULL), 0);
	free(out);
	free(err);
	assert_int_equal(co_fleet_register(&reg, fleet, &m, 5, NULL, NULL), 0);

	assert_int_equal(run(&out, &err, &fx->op, "stage", "git", NULL, NULL), 3);
	assert_non_null(strstr(err, "router r-stale"));
	free(out);
	free(err);
	/* the dry run names the rule */
	assert_int_equal(run(&out, &err, &fx->op, "--json", "stage", "git", "--dry-run"), 3);
	assert_non_null(strstr(out, "\"rule\":\"fleet\",\"verdict\":\"REFUSED\""));
	free(out);
	free(err);

	/* gone (its lease revoked): the change goes ahead */
	co_fleet_unregister(reg);
	assert_int_equal(run(&out, &err, &fx->op, "stage", "git", NULL, NULL), 0);
	free(out);
	free(err);
	co_fleet_close(fleet);

	/* --fleet without fleet mode: a clear error, exit 1 */
	assert_int_equal(run(&out, &err, &fx->off, "status", "--fleet", NULL, NULL), 1);
	assert_non_null(strstr(err, "fleet.enabled"));
	free(out);
	free(err);
}

/* Poll (bounded) until the kill switch in place p's flags file is `on`. */
static int wait_kill(const place *p, int on, int timeout_ms)
{
	struct timespec pause = {0, 20 * 1000000L};
	char path[400];
	int waited;

	snprintf(path, sizeof path, "%s/state/flags.yaml", p->dir);
	for (waited = 0; waited <= timeout_ms; waited += 20) {
		co_flags f;

		if (co_flags_load(&f, path) == 0 && f.kill_switch == on)
			return 0;
		nanosleep(&pause, NULL);
	}
	return -1;
}

/* Poll (bounded) until place p's serve has cached `want` routers. */
static int wait_cached(const place *p, size_t want, int timeout_ms)
{
	struct timespec pause = {0, 100 * 1000000L};
	char path[400];
	int waited;

	snprintf(path, sizeof path, "%s/state/%s", p->dir, CO_FLEET_CACHE_FILE);
	for (waited = 0; waited <= timeout_ms; waited += 100) {
		co_fleet_member *m = NULL;
		size_t n = 0;

		if (co_fleet_members_load(&m, &n, path) == 0 && n == want) {
			free(m);
			return 0;
		}
		free(m);
		nanosleep(&pause, NULL);
	}
	return -1;
}

static void two_operators_on_two_hosts_both_land(void **state)
{
	fixture *fx = *state;
	const char *ep[] = {fx->etcd.endpoint};
	co_fleet_opts fo = {.endpoints = ep, .n_endpoints = 1, .prefix = "/fleet-test/"};
	co_fleet *fleet;
	co_flags f;
	int round;

	/* r1 and r2 as two operators' hosts (no serve): each reads its own
	 * file, so only the txn on the epoch keeps the other's change */
	for (round = 0; round < 3; round++) {
		const char *mode = round % 2 ? "git" : "shadow";

		assert_int_equal(co_test_sh(NULL, NULL,
					    "CUTOVER_CONFIG=%s/cutover.yaml %s flags set task_claim "
					    "%s --force >/dev/null 2>&1 & "
					    "CUTOVER_CONFIG=%s/cutover.yaml %s flags set task_get "
					    "%s --force >/dev/null 2>&1 & wait",
					    fx->r1.dir, CUTOVER_BIN, mode, fx->r2.dir, CUTOVER_BIN,
					    mode),
				 0);
		assert_int_equal(co_fleet_open(&fleet, &fo), 0);
		assert_int_equal(co_fleet_flags_get(&f, NULL, fleet), 0);
		co_fleet_close(fleet);
		assert_string_equal(co_mode_name(co_flags_get(&f, CO_OP_TASK_CLAIM).mode), mode);
		assert_string_equal(co_mode_name(co_flags_get(&f, CO_OP_TASK_GET).mode), mode);
	}
}

static void the_kill_switch_reaches_every_router_with_etcd_down(void **state)
{
	fixture *fx = *state;
	co_test_serve_child s1, s2, s3;
	co_test_resp resp;
	char *out = NULL, *err = NULL, auth[64];

	start_both(fx, &s1, &s2);
	assert_int_equal(co_test_serve_child_start(&s3, fx->r3.dir, fx->r3.env, NULL), 0);
	assert_int_equal(wait_router(&fx->op, "r3", 1, 10000), 0);

	/* a trip on one router (its admin API) goes to the whole fleet */
	snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
	co_test_http(&resp, s1.base, "POST", "/v1/admin/rollback", "{\"reason\":\"r1 saw it\"}",
		     strlen("{\"reason\":\"r1 saw it\"}"), auth);
	assert_int_equal(resp.status, 200);
	free(resp.body);
	assert_int_equal(wait_kill(&fx->r2, 1, 10000), 0);
	assert_int_equal(wait_kill(&fx->r3, 1, 10000), 0);
	/* and the fleet's resume lifts it everywhere */
	assert_int_equal(run(&out, &err, &fx->op, "resume", NULL, NULL, NULL), 0);
	free(out);
	free(err);
	assert_int_equal(wait_kill(&fx->r1, 0, 10000), 0);
	assert_int_equal(wait_kill(&fx->r2, 0, 10000), 0);
	assert_int_equal(wait_kill(&fx->r3, 0, 10000), 0);

	/* etcd gone: rollback --fleet reaches every router over HTTP */
	assert_int_equal(wait_cached(&fx->r1, 3, 15000), 0);
	co_test_etcd_kill(&fx->etcd);
	assert_int_equal(run(&out, &err, &fx->r1, "rollback", "--fleet", "--reason", "etcd down"),
			 0);
	assert_non_null(strstr(err, "r2 http://127.0.0.1:"));
	assert_non_null(strstr(err, "r3 http://127.0.0.1:"));
	free(out);
	free(err);
	assert_int_equal(wait_kill(&fx->r1, 1, 0), 0);
	assert_int_equal(wait_kill(&fx->r2, 1, 0), 0);
	assert_int_equal(wait_kill(&fx->r3, 1, 0), 0);

	/* a router that does not answer is named, exit 2 */
	kill_serve(&s2);
	assert_int_equal(run(&out, &err, &fx->r1, "rollback", "--fleet", NULL, NULL), 2);
	assert_non_null(strstr(err, "2 of 3 routers answered; not: r2"));
	free(out);
	free(err);
	co_test_serve_child_stop(&s3);
	co_test_serve_child_stop(&s1);
}

/* A POST to one router's admin API, with the admin token: its status. */
static int admin_post(const co_test_serve_child *sv, const char *what, const char *body)
{
	co_test_resp resp;
	char auth[64], path[64];
	int status;

	snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
	snprintf(path, sizeof path, "/v1/admin/%s", what);
	co_test_http(&resp, sv->base, "POST", path, body, strlen(body), auth);
	status = resp.status;
	if (status != 200)
		fprintf(stderr, "POST %s: %d %s\n", path, status, resp.body ? resp.body : "");
	free(resp.body);
	return status;
}

/* The admin API is a flag writer like the CLI: in fleet mode its stage,
 * rollback and resume go into etcd's document by txn on the epoch, so
 * they reach every router, not only the one asked. */
static void the_admin_api_stages_and_resumes_the_whole_fleet(void **state)
{
	fixture *fx = *state;
	const char *ep[] = {fx->etcd.endpoint};
	co_fleet_opts fo = {.endpoints = ep, .n_endpoints = 1, .prefix = "/fleet-test/"};
	co_test_serve_child s1, s2;
	co_fleet *fleet;
	co_flags f;
	int64_t epoch = 0, before = 0;

	start_both(fx, &s1, &s2);
	assert_int_equal(co_fleet_open(&fleet, &fo), 0);
	assert_int_equal(co_fleet_flags_get(&f, &before, fleet), 0);

	/* stage through r1's admin API: etcd has it, r2 applies it */
	assert_int_equal(admin_post(&s1, "stage", "{\"stage\":\"shadow\",\"force\":true}"),
			 200);
	assert_int_equal(co_fleet_flags_get(&f, &epoch, fleet), 0);
	assert_int_equal(co_stage_of(&f), CO_STAGE_SHADOW);
	assert_true(epoch > before);
	assert_int_equal(wait_stage(&fx->r2, CO_STAGE_SHADOW, 10000), 0);

	/* rollback through r1, resume through r2: both reach both */
	assert_int_equal(admin_post(&s1, "rollback", "{\"reason\":\"admin r1\"}"), 200);
	assert_int_equal(co_fleet_flags_get(&f, NULL, fleet), 0);
	assert_true(f.kill_switch);
	assert_int_equal(wait_kill(&fx->r2, 1, 10000), 0);
	assert_int_equal(admin_post(&s2, "resume", "{\"reason\":\"admin r2\"}"), 200);
	assert_int_equal(co_fleet_flags_get(&f, NULL, fleet), 0);
	assert_false(f.kill_switch);
	assert_int_equal(wait_kill(&fx->r1, 0, 10000), 0);
	assert_int_equal(wait_kill(&fx->r2, 0, 10000), 0);
	assert_int_equal(co_stage_of(&f), CO_STAGE_SHADOW); /* the stage kept */

	co_fleet_close(fleet);
	assert_int_equal(co_test_serve_child_stop(&s1), 0);
	assert_int_equal(co_test_serve_child_stop(&s2), 0);
}

/* A fleet router that loses etcd falls back to git on its own after the
 * health grace, even with the live-signal triggers turned off. */
static void a_router_that_loses_etcd_falls_back_to_git_on_its_own(void **state)
{
	fixture *fx = *state;
	co_test_serve_child s1;
	char path[400], *out = NULL, *err = NULL;
	co_flags f;
	FILE *cf;

	snprintf(path, sizeof path, "%s/cutover.yaml", fx->r1.dir);
	assert_non_null(cf = fopen(path, "a"));
	fputs("triggers: {enabled: false, health_grace: 1s}\n", cf);
	fclose(cf);
	assert_int_equal(co_test_serve_child_start(&s1, fx->r1.dir, fx->r1.env, NULL), 0);
	assert_int_equal(wait_router(&fx->op, "r1", 1, 10000), 0);
	assert_int_equal(run(&out, &err, &fx->op, "stage", "shadow", "--force", NULL), 0);
	free(out);
	free(err);
	assert_int_equal(wait_stage(&fx->r1, CO_STAGE_SHADOW, 10000), 0);

	co_test_etcd_kill(&fx->etcd);
	assert_int_equal(wait_kill(&fx->r1, 1, 30000), 0);
	snprintf(path, sizeof path, "%s/state/flags.yaml", fx->r1.dir);
	assert_int_equal(co_flags_load(&f, path), 0);
	print_message("fallback: %s\n", f.kill_reason);
	assert_non_null(strstr(f.kill_reason, "trigger health: etcd unhealthy"));
	assert_int_equal(co_test_serve_child_stop(&s1), 0);
}

/* `audit --fleet`: each router keeps its own trail; one command reads them
 * all through their admin APIs, merged by time, naming each row's router,
 * and names a router that does not answer (exit 2) with the others' rows. */
static void the_audit_of_every_router_is_read_in_one_place(void **state)
{
	fixture *fx = *state;
	co_test_serve_child s1, s2;
	char *out = NULL, *err = NULL;
	const cJSON *row, *rt;
	int seen_r1 = 0, seen_r2 = 0, answered = 0;
	double last = 0;
	cJSON *o;

	start_both(fx, &s1, &s2);
	assert_int_equal(admin_post(&s1, "rollback", "{\"reason\":\"seen on r1\"}"), 200);
	/* r2 resumes what it has seen: a resume before r1's rollback reached
	 * it through etcd would change nothing, and record nothing */
	assert_int_equal(wait_kill(&fx->r2, 1, 10000), 0);
	assert_int_equal(admin_post(&s2, "resume", "{\"reason\":\"fixed, says r2\"}"), 200);

	assert_int_equal(run(&out, &err, &fx->op, "--json", "audit", "--fleet", NULL), 0);
	o = cJSON_Parse(out);
	assert_non_null(o);
	cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(o, "changes"))
	{
		const char *r = cJSON_GetStringValue(cJSON_GetObjectItem(row, "router"));
		const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(row, "why"));
		double ts = cJSON_GetNumberValue(cJSON_GetObjectItem(row, "ts_ms"));

		assert_non_null(r);
		assert_true(ts >= last); /* merged oldest first */
		last = ts;
		seen_r1 |= strcmp(r, "r1") == 0 && why && strcmp(why, "seen on r1") == 0;
		seen_r2 |= strcmp(r, "r2") == 0 && why && strcmp(why, "fixed, says r2") == 0;
	}
	cJSON_ArrayForEach(rt, cJSON_GetObjectItemCaseSensitive(o, "routers"))
		answered += cJSON_IsTrue(cJSON_GetObjectItem(rt, "answered"));
	if (!seen_r1 || !seen_r2)
		fail_msg("audit --fleet lacks a router's row: %s", out);
	assert_int_equal(answered, 2);
	cJSON_Delete(o);
	free(out);
	free(err);

	/* a router that does not answer is named; the others' rows still come.
	 * With etcd down the list is the one the call above cached here. */
	co_test_etcd_kill(&fx->etcd);
	kill_serve(&s2);
	assert_int_equal(run(&out, &err, &fx->op, "audit", "--fleet", "--newest", NULL), 2);
	assert_non_null(strstr(out, "r1"));
	assert_non_null(strstr(out, "seen on r1"));
	assert_non_null(strstr(err, "not: r2"));
	free(out);
	free(err);
	/* --cursor is one router's: refused with --fleet */
	assert_int_equal(run(&out, &err, &fx->op, "audit", "--fleet", "--cursor", "3"), 1);
	free(out);
	free(err);
	assert_int_equal(co_test_serve_child_stop(&s1), 0);
}

/* A GET of one router's admin API with `auth` ("" : none): its status,
 * its body into *body (caller frees; may be NULL). */
static int admin_get(const co_test_serve_child *sv, const char *path, const char *auth,
		     char **body)
{
	co_test_resp resp;
	int status;

	co_test_http(&resp, sv->base, "GET", path, NULL, 0, *auth ? auth : NULL);
	status = resp.status;
	if (body)
		*body = resp.body;
	else
		free(resp.body);
	return status;
}

/* `report --fleet`: each serve records the runs its admin API makes in its
 * own state; one command reads every router's through GET /v1/admin/runs,
 * merged newest first, each naming its router, the newest the fleet's
 * latest; a router that does not answer is named (exit 2). */
static void the_runs_of_every_router_are_read_in_one_place(void **state)
{
	fixture *fx = *state;
	co_test_serve_child s1, s2;
	char *out = NULL, *err = NULL, auth[64];
	const cJSON *row, *rt, *latest;
	int r1 = 0, r2 = 0, answered = 0;
	double prev = 1e300;
	cJSON *o;

	start_both(fx, &s1, &s2);

	/* none yet anywhere: exit 4, both answered */
	assert_int_equal(run(&out, &err, &fx->op, "report", "--fleet", NULL, NULL), 4);
	assert_non_null(strstr(out, "fleet: 2 of 2 routers answered"));
	assert_non_null(strstr(err, "no reconciliation run has finished on any"));
	free(out);
	free(err);

	/* one run on r1, then two on r2 */
	assert_int_equal(admin_post(&s1, "reconcile", "{\"no_rollback\":true}"), 200);
	assert_int_equal(admin_post(&s2, "reconcile", "{\"no_rollback\":true}"), 200);
	assert_int_equal(admin_post(&s2, "reconcile", "{\"no_rollback\":true}"), 200);

	/* the endpoint: the admin token, a known parameter */
	snprintf(auth, sizeof auth, "Bearer %s", TOKEN);
	assert_int_equal(admin_get(&s1, "/v1/admin/runs", "", NULL), 401);
	assert_int_equal(admin_get(&s1, "/v1/admin/runs?limit=0", auth, NULL), 400);
	assert_int_equal(admin_get(&s1, "/v1/admin/runs?run=1", auth, NULL), 400);
	assert_int_equal(admin_get(&s2, "/v1/admin/runs?limit=1", auth, &out), 200);
	assert_non_null(o = cJSON_Parse(out));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "runs")), 1);
	assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "runs"), 0),
					"divergences"));
	cJSON_Delete(o);
	free(out);

	assert_int_equal(run(&out, &err, &fx->op, "--json", "report", "--fleet", NULL), 0);
	assert_non_null(o = cJSON_Parse(out));
	cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(o, "runs"))
	{
		const char *r = cJSON_GetStringValue(cJSON_GetObjectItem(row, "router"));
		double at = cJSON_GetNumberValue(cJSON_GetObjectItem(row, "started_at_ms"));

		assert_non_null(r);
		assert_true(at > 0);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(row, "verdict")),
				    "pass");
		assert_true(at <= prev); /* newest first */
		prev = at;
		r1 += strcmp(r, "r1") == 0;
		r2 += strcmp(r, "r2") == 0;
	}
	if (r1 != 1 || r2 != 2)
		fail_msg("report --fleet: want r1's 1 run and r2's 2: %s", out);
	latest = cJSON_GetObjectItem(o, "latest");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(latest, "router")), "r2");
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(latest, "run")), 2);
	cJSON_ArrayForEach(rt, cJSON_GetObjectItemCaseSensitive(o, "routers"))
		answered += cJSON_IsTrue(cJSON_GetObjectItem(rt, "answered"));
	assert_int_equal(answered, 2);
	cJSON_Delete(o);
	free(out);
	free(err);

	/* --history bounds the merged list; --run and html are refused */
	assert_int_equal(run(&out, &err, &fx->op, "report", "--fleet", "--history", "1"), 0);
	assert_non_null(strstr(out, "latest: r2 run 2"));
	assert_null(strstr(out, " r1 "));
	free(out);
	free(err);
	assert_int_equal(run(&out, &err, &fx->op, "report", "--fleet", "--run", "1"), 1);
	free(out);
	free(err);
	assert_int_equal(run(&out, &err, &fx->op, "report", "--fleet", "--format", "html"), 1);
	free(out);
	free(err);

	/* a router that does not answer is named; the other's runs still come */
	kill_serve(&s2);
	assert_int_equal(run(&out, &err, &fx->op, "report", "--fleet", NULL, NULL), 2);
	assert_non_null(strstr(out, "latest: r1 run 1"));
	assert_non_null(strstr(err, "1 of 2 routers answered; not: r2"));
	free(out);
	free(err);
	assert_int_equal(co_test_serve_child_stop(&s1), 0);
}

typedef struct claim_call {
	const char *base;
	co_test_resp resp;
} claim_call;

static void *claim_p1(void *arg)
{
	claim_call *cc = arg;
	const char *body = "{\"swarm\":\"alice\",\"ttl\":60}";

	co_test_http(&cc->resp, cc->base, "POST", "/v1/tasks/P1/claim", body, strlen(body),
		     NULL);
	return NULL;
}

/* A router stopped (SIGSTOP: cut off) while the fleet rolls back, then
 * let go with a claim waiting for it: whichever it sees first, the
 * rollback or the claim, git decides the claim, never etcd on the stale
 * epoch (its witness log names the primary). */
static void a_router_cut_off_during_a_rollback_cannot_decide_in_etcd(void **state)
{
	fixture *fx = *state;
	co_test_serve_child s1;
	co_audit_op_list ops = {0};
	co_state *st = NULL;
	claim_call cc = {0};
	char *out = NULL, *err = NULL, path[400];
	const char *primary = NULL;
	pthread_t t;
	size_t i;

	assert_int_equal(co_test_serve_child_start(&s1, fx->r1.dir, fx->r1.env, NULL), 0);
	assert_int_equal(wait_router(&fx->op, "r1", 1, 10000), 0);
	assert_int_equal(run(&out, &err, &fx->op, "stage", "etcd", "--force", NULL), 0);
	free(out);
	free(err);
	assert_int_equal(wait_stage(&fx->r1, CO_STAGE_ETCD, 10000), 0);
	{
		co_test_resp r;

		co_test_http(&r, s1.base, "POST", "/v1/tasks", "{\"id\":\"P1\"}", 11, NULL);
		assert_int_equal(r.status, 201);
		free(r.body);
	}

	kill(s1.pid, SIGSTOP);
	assert_int_equal(run(&out, &err, &fx->op, "rollback", "--reason", "partition", NULL),
			 0);
	free(out);
	free(err);
	cc.base = s1.base;
	assert_int_equal(pthread_create(&t, NULL, claim_p1, &cc), 0);
	kill(s1.pid, SIGCONT);
	pthread_join(t, NULL);
	if (cc.resp.status != 200)
		fail_msg("claim after the rollback: %ld %s", (long)cc.resp.status,
			 cc.resp.body ? cc.resp.body : "");
	free(cc.resp.body);
	assert_int_equal(co_test_serve_child_stop(&s1), 0); /* flushes its witness log */

	snprintf(path, sizeof path, "%s/state", fx->r1.dir);
	assert_int_equal(co_state_open(&st, path), 0);
	assert_int_equal(co_audit_ops_latest(&ops, st, 50), 0);
	for (i = 0; i < ops.n; i++)
		if (strcmp(ops.items[i]->op, "task_claim") == 0 && ops.items[i]->id &&
		    strcmp(ops.items[i]->id, "P1") == 0 &&
		    strcmp(ops.items[i]->outcome, "ok") == 0)
			primary = ops.items[i]->primary;
	if (primary == NULL)
		fail_msg("no witness row of the claim");
	print_message("the claim was decided by %s\n", primary);
	assert_string_equal(primary, "git");
	co_audit_op_list_clear(&ops);
	co_state_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(a_stage_reaches_every_serve_and_the_fleet_is_listed,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(the_gate_refuses_while_a_router_is_behind, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(the_admin_api_stages_and_resumes_the_whole_fleet,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(a_router_that_loses_etcd_falls_back_to_git_on_its_own,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(the_runs_of_every_router_are_read_in_one_place,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(the_audit_of_every_router_is_read_in_one_place,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(a_router_cut_off_during_a_rollback_cannot_decide_in_etcd,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(two_operators_on_two_hosts_both_land, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(the_kill_switch_reaches_every_router_with_etcd_down,
					    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
