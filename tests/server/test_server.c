/*
 * test_server.c - the HTTP API of `cutover serve` (src/server) against a
 * real etcd and a real bare git repo: the server runs in-process on a free
 * loopback port (127.0.0.1:0) and is spoken to with libcurl, as a swarm in
 * any language would.  Divergences for the admin reconcile endpoint are made
 * behind cutover's back: etcdctl, or a store written directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/audit.h"
#include "core/error.h"
#include "core/record.h"
#include "core/runs.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "router/router.h"
#include "server/server.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ASan: gcc says so with __SANITIZE_ADDRESS__, clang with __has_feature */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#define TOKEN "s3cret-admin-token"
#define AUTH "Bearer " TOKEN
#define N_CLAIMERS 16

static co_test_etcd etcd;
static int prefix_seq;

/* Holds an admin reconcile run open at its drain phase until released. */
typedef struct hold {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int started, released;
} hold;

typedef struct fx {
	char repo[256], dir[256], flags_path[300], prefix[64];
	const char *endpoint; /* etcd's */
	hold *hold;	      /* NULL: reconcile runs are not held */
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
	co_server *srv;
	char base[64]; /* "http://127.0.0.1:PORT" */
} fx;

typedef co_test_resp resp;

/* One request; `body` NULL for none; `auth` a whole header value or NULL. */
static void http(resp *out, const fx *f, const char *method, const char *path,
		 const char *body, size_t body_len, const char *auth)
{
	co_test_http(out, f->base, method, path, body, body_len, auth);
}

static long req_status(const fx *f, const char *method, const char *path,
		       const char *body, const char *auth)
{
	resp r;

	http(&r, f, method, path, body, body ? strlen(body) : 0, auth);
	free(r.body);
	return r.status;
}

/* The server's reconcile progress hook: parks a run at "drain" when asked. */
static void on_progress(void *ctx, const char *phase, size_t done, size_t total)
{
	fx *f = ctx;
	hold *h = f->hold;

	(void)done;
	(void)total;
	if (h == NULL || strcmp(phase, "drain") != 0)
		return;
	pthread_mutex_lock(&h->lock);
	h->started = 1;
	pthread_cond_broadcast(&h->cond);
	while (!h->released)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

/* A fixture whose etcd store talks to `endpoint`. */
static void fx_open_on(fx *f, int with_token, const char *endpoint)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_server_opts so = CO_SERVER_OPTS_INIT;
	const char *eps[1] = {endpoint};
	co_flags fl;
	co_stage stage;

	memset(f, 0, sizeof(*f));
	f->endpoint = endpoint;
	assert_int_equal(co_test_git_repo_new(f->repo, sizeof(f->repo)), 0);
	assert_int_equal(co_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	snprintf(f->flags_path, sizeof(f->flags_path), "%s/flags.yaml", f->dir);
	snprintf(f->prefix, sizeof(f->prefix), "/srv%d-%d/", (int)getpid(), ++prefix_seq);
	go.repo = f->repo;
	go.poll_interval_ms = 50;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = f->prefix;
	eo.request_timeout_ms = 2000;
	assert_int_equal(co_git_store_open(&f->git, &go), 0);
	assert_int_equal(co_etcd_store_open(&f->etcd, &eo), 0);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	/* Shadow: git decides, etcd mirrors, so both stores are exercised. */
	co_flags_init(&fl);
	assert_int_equal(co_stage_parse(&stage, "shadow"), 0);
	assert_int_equal(co_stage_apply(&fl, stage), 0);
	assert_int_equal(co_flags_save(&fl, f->flags_path), 0);
	assert_int_equal(co_flags_watcher_open(&f->fw, f->flags_path), 0);
	ro.git = f->git;
	ro.etcd = f->etcd;
	ro.state = f->st;
	ro.flags = f->fw;
	ro.background_drain = 1;
	assert_int_equal(co_router_open(&f->r, &ro), 0);

	so.listen = "127.0.0.1:0";
	so.router = f->r;
	so.state = f->st;
	so.flags = f->fw;
	so.flags_path = f->flags_path;
	so.git = f->git;
	so.etcd = f->etcd;
	so.admin_token = with_token ? TOKEN : NULL;
	so.reconcile_progress = on_progress;
	so.reconcile_progress_ctx = f;
	assert_int_equal(co_server_start(&f->srv, &so), 0);
	assert_true(co_server_port(f->srv) > 0);
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", co_server_port(f->srv));
}

static void fx_open(fx *f, int with_token)
{
	fx_open_on(f, with_token, etcd.endpoint);
}

static void fx_close(fx *f)
{
	co_server_stop(f->srv);
	co_router_drain(f->r, NULL, 2000, NULL);
	co_router_close(f->r);
	co_flags_watcher_close(f->fw);
	co_state_close(f->st);
	co_store_free(f->git);
	co_store_free(f->etcd);
	co_test_rmrf(f->repo);
	co_test_rmrf(f->dir);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	fx_open(f, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	fx_close(f);
	free(f);
	return 0;
}

/* Neither store holds task `id`, and the API says 404. */
static void assert_absent(fx *f, const char *id)
{
	co_record *r = NULL;
	char path[256];

	assert_int_equal(co_store_get(&r, f->git, CO_KIND_TASK, id), CO_ENOTFOUND);
	assert_int_equal(co_store_get(&r, f->etcd, CO_KIND_TASK, id), CO_ENOTFOUND);
	snprintf(path, sizeof(path), "/v1/tasks/%s", id);
	assert_int_equal(req_status(f, "GET", path, NULL, NULL), 404);
}

static void task_lifecycle_over_http_gives_the_right_statuses(void **state)
{
	fx *f = *state;
	resp r;

	/* A create needs a body. */
	assert_int_equal(req_status(f, "POST", "/v1/tasks", "", NULL), 400);

	assert_int_equal(req_status(f, "POST", "/v1/tasks",
				    "{\"id\":\"T1\",\"type\":\"build\",\"metadata\":"
				    "{\"area\":\"sip\"},\"blocked_by\":[]}",
				    NULL),
			 201);
	http(&r, f, "GET", "/v1/tasks/T1", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"id\":\"T1\""));
	assert_non_null(strstr(r.body, "\"status\":\"available\""));
	assert_non_null(strstr(r.body, "\"area\":\"sip\""));
	free(r.body);

	http(&r, f, "POST", "/v1/tasks/T1/claim", "{\"swarm\":\"s1\",\"ttl\":60}",
	     strlen("{\"swarm\":\"s1\",\"ttl\":60}"), NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"owner\":\"s1\""));
	assert_non_null(strstr(r.body, "\"status\":\"claimed\""));
	free(r.body);

	/* The loser learns the owner. */
	http(&r, f, "POST", "/v1/tasks/T1/claim", "{\"swarm\":\"s2\"}",
	     strlen("{\"swarm\":\"s2\"}"), NULL);
	assert_int_equal(r.status, 409);
	assert_non_null(strstr(r.body, "\"code\":\"conflict\""));
	assert_non_null(strstr(r.body, "\"owner\":\"s1\""));
	free(r.body);

	assert_int_equal(req_status(f, "POST", "/v1/tasks/T1/renew",
				    "{\"swarm\":\"s1\",\"ttl\":120}", NULL),
			 200);
	assert_int_equal(req_status(f, "POST", "/v1/tasks/T1/renew",
				    "{\"swarm\":\"s1\",\"ttl\":0}", NULL),
			 400);
	assert_int_equal(req_status(f, "POST", "/v1/tasks/T1/release",
				    "{\"swarm\":\"s2\",\"status\":\"complete\"}", NULL),
			 409);
	assert_int_equal(req_status(f, "POST", "/v1/tasks/T1/release",
				    "{\"swarm\":\"s1\",\"status\":\"claimed\"}", NULL),
			 400);
	http(&r, f, "POST", "/v1/tasks/T1/release",
	     "{\"swarm\":\"s1\",\"status\":\"complete\"}",
	     strlen("{\"swarm\":\"s1\",\"status\":\"complete\"}"), NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"status\":\"complete\""));
	free(r.body);

	assert_int_equal(req_status(f, "POST", "/v1/tasks", "{\"id\":\"T2\"}", NULL),
			 201);
	http(&r, f, "GET", "/v1/tasks?status=complete", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"id\":\"T1\""));
	assert_null(strstr(r.body, "\"id\":\"T2\""));
	free(r.body);
	http(&r, f, "GET", "/v1/tasks", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"id\":\"T1\""));
	assert_non_null(strstr(r.body, "\"id\":\"T2\""));
	free(r.body);
	assert_int_equal(req_status(f, "GET", "/v1/tasks?status=bogus", NULL, NULL), 400);

	/* A create that differs from the stored task is a conflict. */
	assert_int_equal(req_status(f, "POST", "/v1/tasks",
				    "{\"id\":\"T2\",\"type\":\"other\"}", NULL),
			 409);

	assert_int_equal(
	    req_status(f, "POST", "/v1/swarms",
		       "{\"id\":\"s1\",\"capabilities\":[\"build\",\"test\"],"
		       "\"metadata\":{\"zone\":\"a\"}}",
		       NULL),
	    200);
	http(&r, f, "GET", "/v1/swarms/s1", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"build\""));
	free(r.body);
	http(&r, f, "GET", "/v1/swarms", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"id\":\"s1\""));
	free(r.body);
	assert_int_equal(req_status(f, "GET", "/v1/swarms/nobody", NULL, NULL), 404);
}

typedef struct claimer {
	fx *f;
	int idx;
	long status;
} claimer;

static pthread_barrier_t start_line;

static void *claim_thread(void *p)
{
	claimer *c = p;
	char body[64];
	resp r;

	snprintf(body, sizeof(body), "{\"swarm\":\"w%d\",\"ttl\":300}", c->idx);
	pthread_barrier_wait(&start_line);
	http(&r, c->f, "POST", "/v1/tasks/RACE/claim", body, strlen(body), NULL);
	c->status = r.status;
	free(r.body);
	return NULL;
}

static void claim_has_one_winner_among_16_http_clients(void **state)
{
	fx *f = *state;
	claimer c[N_CLAIMERS];
	pthread_t th[N_CLAIMERS];
	int i, ok = 0, conflict = 0;
	co_record *rec = NULL;

	assert_int_equal(req_status(f, "POST", "/v1/tasks", "{\"id\":\"RACE\"}", NULL),
			 201);
	pthread_barrier_init(&start_line, NULL, N_CLAIMERS);
	for (i = 0; i < N_CLAIMERS; i++) {
		c[i].f = f;
		c[i].idx = i;
		c[i].status = 0;
		assert_int_equal(pthread_create(&th[i], NULL, claim_thread, &c[i]), 0);
	}
	for (i = 0; i < N_CLAIMERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start_line);
	for (i = 0; i < N_CLAIMERS; i++) {
		ok += c[i].status == 200;
		conflict += c[i].status == 409;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(conflict, N_CLAIMERS - 1);
	/* The winner is the one the store holds. */
	assert_int_equal(co_store_get(&rec, f->git, CO_KIND_TASK, "RACE"), 0);
	for (i = 0; i < N_CLAIMERS; i++)
		if (c[i].status == 200) {
			char want[16];

			snprintf(want, sizeof(want), "w%d", i);
			assert_string_equal(rec->owner, want);
		}
	co_record_free(rec);
}

static void malformed_json_is_400_and_writes_nothing(void **state)
{
	fx *f = *state;
	resp r;

	http(&r, f, "POST", "/v1/tasks", "{\"id\":\"T9\",", strlen("{\"id\":\"T9\","),
	     NULL);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.body, "\"error\":{\"code\":\"invalid\""));
	free(r.body);
	assert_int_equal(req_status(f, "POST", "/v1/tasks", "[\"T9\"]", NULL), 400);
	assert_int_equal(
	    req_status(f, "POST", "/v1/tasks", "{\"id\":\"T9\",\"bogus\":1}", NULL), 400);
	assert_int_equal(req_status(f, "POST", "/v1/tasks",
				    "{\"id\":\"T9\",\"metadata\":\"not an object\"}",
				    NULL),
			 400);
	assert_int_equal(req_status(f, "POST", "/v1/tasks",
				    "{\"id\":\"T9\",\"blocked_by\":[1]}", NULL),
			 400);
	assert_absent(f, "T9");

	/* A bad claim body leaves the task as it was. */
	assert_int_equal(req_status(f, "POST", "/v1/tasks", "{\"id\":\"T10\"}", NULL),
			 201);
	assert_int_equal(
	    req_status(f, "POST", "/v1/tasks/T10/claim", "{\"swarm\":", NULL), 400);
	assert_int_equal(req_status(f, "POST", "/v1/tasks/T10/claim",
				    "{\"swarm\":\"s1\",\"ttl\":-5}", NULL),
			 400);
	http(&r, f, "GET", "/v1/tasks/T10", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"status\":\"available\""));
	assert_non_null(strstr(r.body, "\"rev\":1"));
	free(r.body);
}

/* curl's write callback: append to the resp's body. */
static size_t grow_body(char *p, size_t size, size_t n, void *ud)
{
	resp *r = ud;
	size_t old = r->body ? strlen(r->body) : 0;
	char *b = realloc(r->body, old + size * n + 1);

	if (b == NULL)
		return 0;
	memcpy(b + old, p, size * n);
	b[old + size * n] = '\0';
	r->body = b;
	return size * n;
}

static void oversized_body_is_413_and_writes_nothing(void **state)
{
	fx *f = *state;
	size_t n = CO_SERVER_BODY_MAX + 64, i;
	char *body = malloc(n + 1);
	resp r;

	assert_non_null(body);
	i = (size_t)snprintf(body, n, "{\"id\":\"T8\",\"metadata\":{\"x\":\"");
	for (; i < n - 3; i++)
		body[i] = 'a';
	memcpy(body + i, "\"}}", 3);
	body[n] = '\0';
	/* As curl sends a large body by default: `Expect: 100-continue`, so
	 * the 413 comes before the body.  Without it the server answers at
	 * once and closes while the client may still be sending, and the
	 * client can lose the answer to the reset. */
	{
		CURL *c = curl_easy_init();
		struct curl_slist *h = curl_slist_append(NULL, "Expect: 100-continue");
		char url[128];
		long status = 0;

		memset(&r, 0, sizeof(r));
		snprintf(url, sizeof(url), "%s/v1/tasks", f->base);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_PROXY, "");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, grow_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
		if (curl_easy_perform(c) != CURLE_OK)
			fail_msg("POST /v1/tasks (oversized): no answer");
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		r.status = status;
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
	}
	assert_int_equal(r.status, 413);
	assert_non_null(strstr(r.body, "\"code\":\"too_large\""));
	free(r.body);
	free(body);
	assert_absent(f, "T8");
}

static void bad_id_is_400_and_missing_is_404(void **state)
{
	fx *f = *state;
	resp r;

	assert_int_equal(req_status(f, "GET", "/v1/tasks/.hidden", NULL, NULL), 400);
	assert_int_equal(req_status(f, "GET", "/v1/tasks/a%20b", NULL, NULL), 400);
	assert_int_equal(
	    req_status(f, "POST", "/v1/tasks/-x/claim", "{\"swarm\":\"s\"}", NULL), 400);
	assert_int_equal(req_status(f, "POST", "/v1/tasks", "{\"id\":\"bad id\"}", NULL),
			 400);
	assert_int_equal(req_status(f, "POST", "/v1/tasks/T1/claim",
				    "{\"swarm\":\"bad swarm\"}", NULL),
			 400);
	assert_int_equal(req_status(f, "GET", "/v1/swarms/bad!", NULL, NULL), 400);

	http(&r, f, "GET", "/v1/tasks/NOPE", NULL, 0, NULL);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "\"code\":\"not_found\""));
	free(r.body);
	assert_int_equal(
	    req_status(f, "POST", "/v1/tasks/NOPE/claim", "{\"swarm\":\"s1\"}", NULL),
	    404);
	assert_int_equal(req_status(f, "GET", "/v1/nothing", NULL, NULL), 404);
}

static void admin_needs_the_token_and_rollback_sets_the_kill_switch(void **state)
{
	fx *f = *state;
	co_flags fl;
	resp r;

	assert_int_equal(req_status(f, "POST", "/v1/admin/rollback", "{}", NULL), 401);
	assert_int_equal(
	    req_status(f, "POST", "/v1/admin/rollback", "{}", "Bearer wrong"), 401);
	assert_int_equal(req_status(f, "POST", "/v1/admin/rollback", "{}", TOKEN), 401);
	assert_int_equal(req_status(f, "GET", "/v1/admin/flags", NULL, NULL), 401);
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(fl.kill_switch, 0);

	http(&r, f, "GET", "/metrics", NULL, 0, NULL);
	assert_non_null(strstr(r.body, "\ncutover_kill_switch 0\n"));
	free(r.body);

	http(&r, f, "POST", "/v1/admin/rollback", "{\"reason\":\"drill\"}",
	     strlen("{\"reason\":\"drill\"}"), "Bearer " TOKEN);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"kill_switch\":true"));
	free(r.body);
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(fl.kill_switch, 1);
	assert_string_equal(fl.kill_reason, "drill");
	{
		co_audit_change_list l = {0};

		assert_int_equal(co_audit_changes_latest(&l, f->st, 1), 0);
		assert_int_equal(l.n, 1);
		assert_string_equal(l.items[0]->who, "serve:admin");
		assert_string_equal(l.items[0]->action, "rollback");
		assert_string_equal(l.items[0]->why, "drill");
		co_audit_change_list_clear(&l);
	}

	http(&r, f, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\ncutover_kill_switch 1\n"));
	free(r.body);

	http(&r, f, "GET", "/v1/admin/flags", NULL, 0, "Bearer " TOKEN);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"kill_switch\":true"));
	assert_non_null(strstr(r.body, "\"stage\":\"shadow\""));
	free(r.body);

	assert_int_equal(req_status(f, "POST", "/v1/admin/resume", NULL, "Bearer " TOKEN),
			 200);
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(fl.kill_switch, 0);
}

static void admin_stage_refuses_forward_moves_without_force(void **state)
{
	fx *f = *state;
	co_flags fl;

	assert_int_equal(req_status(f, "POST", "/v1/admin/stage", "{\"stage\":\"10\"}",
				    "Bearer " TOKEN),
			 409);
	assert_int_equal(req_status(f, "POST", "/v1/admin/stage",
				    "{\"stage\":\"eleven\"}", "Bearer " TOKEN),
			 400);
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(co_stage_of(&fl), CO_STAGE_SHADOW);
	assert_int_equal(req_status(f, "POST", "/v1/admin/stage",
				    "{\"stage\":\"10\",\"force\":true}", "Bearer " TOKEN),
			 200);
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(co_stage_of(&fl), CO_STAGE_10);
	/* Backward needs no passing run, but goes through shadow. */
	assert_int_equal(req_status(f, "POST", "/v1/admin/stage", "{\"stage\":\"git\"}",
				    "Bearer " TOKEN),
			 409);
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(co_stage_of(&fl), CO_STAGE_10);
	assert_int_equal(req_status(f, "POST", "/v1/admin/stage",
				    "{\"stage\":\"shadow\"}", "Bearer " TOKEN),
			 200);
	assert_int_equal(req_status(f, "POST", "/v1/admin/stage", "{\"stage\":\"git\"}",
				    "Bearer " TOKEN),
			 200);
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(co_stage_of(&fl), CO_STAGE_GIT);
}

static void admin_without_a_token_is_disabled(void **state)
{
	fx f;

	(void)state;
	fx_open(&f, 0);
	assert_int_equal(
	    req_status(&f, "POST", "/v1/admin/rollback", "{}", "Bearer " TOKEN), 403);
	assert_int_equal(req_status(&f, "POST", "/v1/admin/rollback", "{}", "Bearer "),
			 403);
	fx_close(&f);
}

static void metrics_name_every_metric_and_healthz_is_ok(void **state)
{
	static const char *names[] = {
	    "cutover_kill_switch ",
	    "cutover_ops_total{op=\"task_create\",store=\"git\",result=\"ok\"} 1",
	    "cutover_ops_total{op=\"task_get\",store=\"git\",result=\"not_found\"} 1",
	    "cutover_op_latency_seconds_bucket{op=\"task_create\",store=\"git\",result="
	    "\"ok\","
	    "le=\"+Inf\"} 1",
	    "cutover_op_latency_seconds_count{",
	    "cutover_op_latency_seconds_sum{",
	    "cutover_outbox_depth ",
	    "cutover_reconcile_consistency_ratio ",
	    "cutover_store_up{store=\"git\"} 1",
	    "cutover_store_up{store=\"etcd\"} 1",
	    "\ncutover_state_fsyncs_total ",
	    NULL};
	fx *f = *state;
	resp r;
	int i;

	assert_int_equal(req_status(f, "POST", "/v1/tasks", "{\"id\":\"M1\"}", NULL),
			 201);
	assert_int_equal(req_status(f, "GET", "/v1/tasks/M0", NULL, NULL), 404);
	http(&r, f, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	for (i = 0; names[i]; i++)
		if (strstr(r.body, names[i]) == NULL)
			fail_msg("/metrics lacks %s:\n%s", names[i], r.body);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	{
		/* malloc's own account: serve has memory in use right now
		 * (under ASan its allocator is not glibc's, whose mallinfo2
		 * then says ~0: present, that is all) */
		const char *h = strstr(r.body, "\ncutover_heap_in_use_bytes ");

		assert_non_null(h);
		assert_non_null(strstr(r.body, "\ncutover_heap_free_bytes "));
		assert_non_null(strstr(r.body, "\ncutover_sqlite_memory_bytes "));
		assert_non_null(strstr(r.body, "\ncutover_git_cache_bytes "));
#ifndef TEST_ASAN
		assert_true(strtoll(h + 27, NULL, 10) > 0);
#endif
	}
#endif
	free(r.body);

	http(&r, f, "GET", "/healthz", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"status\":\"ok\""));
	free(r.body);
	assert_int_equal(req_status(f, "DELETE", "/healthz", NULL, NULL), 405);
}

typedef struct watcher_client {
	fx *f;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int headers; /* the stream's headers arrived: the watch is open */
	char buf[65536];
	size_t len;
	int seen; /* the event for W1 arrived */
	long status;
} watcher_client;

static size_t wc_header(char *p, size_t size, size_t n, void *ud)
{
	watcher_client *w = ud;

	/* The blank line ends the headers. */
	if (size * n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
		pthread_mutex_lock(&w->lock);
		w->headers = 1;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
	}
	return size * n;
}

static size_t wc_body(char *p, size_t size, size_t n, void *ud)
{
	watcher_client *w = ud;
	size_t k = size * n;

	if (k > sizeof(w->buf) - 1 - w->len)
		k = sizeof(w->buf) - 1 - w->len;
	memcpy(w->buf + w->len, p, k);
	w->len += k;
	w->buf[w->len] = '\0';
	if (strstr(w->buf, "event: put\ndata: ") && strstr(w->buf, "\"id\":\"W1\"")) {
		w->seen = 1;
		return 0; /* enough: abort the transfer */
	}
	return size * n;
}

static void *watch_thread(void *p)
{
	watcher_client *w = p;
	char url[128];
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "%s/v1/watch?prefix=tasks/", w->f->base);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, wc_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, w);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wc_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L); /* the bound if no event comes */
	curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &w->status);
	curl_easy_cleanup(c);
	pthread_mutex_lock(&w->lock);
	w->headers = 1; /* also on failure: do not leave the test waiting */
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void watch_streams_a_created_task_as_an_event(void **state)
{
	fx *f = *state;
	watcher_client *w = calloc(1, sizeof(*w));
	pthread_t th;

	assert_non_null(w);
	w->f = f;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	assert_int_equal(pthread_create(&th, NULL, watch_thread, w), 0);
	pthread_mutex_lock(&w->lock);
	while (!w->headers)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	assert_int_equal(req_status(f, "POST", "/v1/tasks", "{\"id\":\"W1\"}", NULL),
			 201);
	pthread_join(th, NULL);
	assert_int_equal(w->status, 200);
	if (!w->seen)
		fail_msg("no event for W1 in the stream:\n%s", w->buf);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

static void stop_ends_open_watch_streams(void **state)
{
	fx *f = *state;
	watcher_client *w = calloc(1, sizeof(*w));
	pthread_t th;

	assert_non_null(w);
	w->f = f;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	assert_int_equal(pthread_create(&th, NULL, watch_thread, w), 0);
	pthread_mutex_lock(&w->lock);
	while (!w->headers)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	/* Returns only once the stream's thread has finished. */
	co_server_stop(f->srv);
	f->srv = NULL;
	pthread_join(th, NULL);
	assert_int_equal(w->status, 200);
	assert_int_equal(w->seen, 0);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* --- admin reconcile --- */

/* POST /v1/admin/reconcile with `body` (NULL: none); want `status`; the
 * answer parsed (caller frees). */
static cJSON *reconcile(fx *f, const char *body, long status)
{
	cJSON *o;
	resp r;

	http(&r, f, "POST", "/v1/admin/reconcile", body, body ? strlen(body) : 0, AUTH);
	if (r.status != status)
		fail_msg("reconcile %s: %ld, want %ld: %s", body ? body : "(no body)",
			 r.status, status, r.body);
	if ((o = cJSON_Parse(r.body)) == NULL)
		fail_msg("reconcile %s: not JSON: %s", body ? body : "(no body)", r.body);
	free(r.body);
	return o;
}

static double jnum(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v))
		fail_msg("no number \"%s\"", name);
	return v->valuedouble;
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsString(v))
		fail_msg("no string \"%s\"", name);
	return v->valuestring;
}

/* Create tasks through the API and wait for the mirror writes to land, so
 * that nothing pending can undo what a test then does behind its back. */
static void seed(fx *f, const char *const *ids)
{
	char body[128];
	int64_t left = -1;

	for (; *ids; ids++) {
		snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"build\"}", *ids);
		assert_int_equal(req_status(f, "POST", "/v1/tasks", body, NULL), 201);
	}
	assert_int_equal(co_router_drain(f->r, NULL, 10000, &left), 0);
	assert_int_equal(left, 0);
}

/* Delete task `id` from etcd with etcdctl: behind cutover's back. */
static void etcdctl_del_task(const fx *f, const char *id)
{
	char *err = NULL;

	if (co_test_sh(NULL, &err,
		       "ETCDCTL_API=3 etcdctl --endpoints=%s del '%stasks/%s'",
		       f->endpoint, f->prefix, id) != 0)
		fail_msg("etcdctl del: %s", err ? err : "");
	free(err);
}

static int metrics_have(fx *f, const char *text)
{
	resp r;
	int found;

	http(&r, f, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	found = strstr(r.body, text) != NULL;
	free(r.body);
	return found;
}

static int kill_switch_in_file(const fx *f)
{
	co_flags fl;

	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	return fl.kill_switch;
}

static void reconcile_of_equal_stores_passes_with_the_report_fields(void **state)
{
	static const char *const ids[] = {"C1", "C2", "C3", NULL};
	static const char *const fields[] = {
	    "run",	   "started_at",      "duration_ms",	"total",
	    "equal",	   "missing_in_etcd", "missing_in_git", "mismatch",
	    "consistency", "verdict",	      "action",		"divergences",
	    NULL};
	fx *f = *state;
	co_audit_change_list l = {0};
	co_run *run = NULL;
	cJSON *o;
	int i;

	seed(f, ids);
	/* An empty body is fine. */
	o = reconcile(f, NULL, 200);
	for (i = 0; fields[i]; i++)
		if (!cJSON_GetObjectItemCaseSensitive(o, fields[i]))
			fail_msg("the report lacks \"%s\"", fields[i]);
	assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "started_at")));
	assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "divergences")));
	assert_int_equal(
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "divergences")), 0);
	assert_string_equal(jstr(o, "verdict"), "pass");
	assert_string_equal(jstr(o, "action"), "none");
	assert_true(jnum(o, "total") == 3 && jnum(o, "equal") == 3);
	assert_true(jnum(o, "consistency") == 1.0);
	assert_true(jnum(o, "missing_in_etcd") == 0 && jnum(o, "missing_in_git") == 0 &&
		    jnum(o, "mismatch") == 0);

	/* Recorded: the state database's latest run is this one. */
	assert_int_equal(co_runs_latest(&run, f->st), 0);
	assert_true((double)run->id == jnum(o, "run"));
	assert_string_equal(run->verdict, "pass");
	co_run_free(run);
	cJSON_Delete(o);

	assert_int_equal(co_audit_changes_latest(&l, f->st, 1), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0]->who, "serve:admin");
	assert_string_equal(l.items[0]->action, "reconcile");
	assert_non_null(strstr(l.items[0]->detail, ": pass"));
	co_audit_change_list_clear(&l);

	assert_int_equal(kill_switch_in_file(f), 0);
	assert_true(metrics_have(f, "\ncutover_reconcile_consistency_ratio 1.000000\n"));
	assert_true(metrics_have(f, "\ncutover_kill_switch 0\n"));
}

static void reconcile_of_a_divergence_fails_and_trips_the_kill_switch(void **state)
{
	static const char *const ids[] = {"D1", "D2", NULL};
	fx *f = *state;
	co_audit_change_list l = {0};
	const cJSON *d;
	char want[64];
	co_flags fl;
	cJSON *o;

	seed(f, ids);
	etcdctl_del_task(f, "D2");
	o = reconcile(f, "{}", 200);
	assert_string_equal(jstr(o, "verdict"), "fail");
	assert_string_equal(jstr(o, "action"), "kill_switch");
	assert_true(jnum(o, "total") == 2 && jnum(o, "equal") == 1);
	assert_true(jnum(o, "missing_in_etcd") == 1);
	assert_true(jnum(o, "consistency") == 0.5);
	d = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "divergences"), 0);
	assert_non_null(d);
	assert_string_equal(jstr(d, "id"), "D2");
	assert_string_equal(jstr(d, "kind"), "task");
	assert_string_equal(jstr(d, "class"), "missing_in_etcd");
	snprintf(want, sizeof(want), "reconcile run %.0f: ", jnum(o, "run"));
	assert_true(strncmp(jstr(o, "reason"), want, strlen(want)) == 0);

	/* Tripped in the file, with the run as reason, and at once in /metrics. */
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(fl.kill_switch, 1);
	assert_true(strncmp(fl.kill_reason, want, strlen(want)) == 0);
	assert_true(metrics_have(f, "\ncutover_kill_switch 1\n"));
	assert_true(metrics_have(f, "\ncutover_reconcile_consistency_ratio 0.500000\n"));

	/* The trip and the request are both audited as the admin's. */
	assert_int_equal(co_audit_changes_latest(&l, f->st, 2), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0]->who, "serve:admin");
	assert_string_equal(l.items[0]->action, "reconcile");
	assert_string_equal(l.items[1]->who, "serve:admin");
	assert_string_equal(l.items[1]->action, "auto-rollback");
	co_audit_change_list_clear(&l);
	cJSON_Delete(o);
}

static void reconcile_with_no_rollback_fails_without_tripping(void **state)
{
	static const char *const ids[] = {"N1", "N2", NULL};
	fx *f = *state;
	cJSON *o;

	seed(f, ids);
	etcdctl_del_task(f, "N1");
	o = reconcile(f, "{\"no_rollback\":true}", 200);
	assert_string_equal(jstr(o, "verdict"), "fail");
	assert_string_equal(jstr(o, "action"), "none");
	assert_true(jnum(o, "missing_in_etcd") == 1);
	cJSON_Delete(o);
	assert_int_equal(kill_switch_in_file(f), 0);
	assert_true(metrics_have(f, "\ncutover_kill_switch 0\n"));
}

static void reconcile_repair_from_etcd_brings_consistency_back_to_1(void **state)
{
	static const char *const ids[] = {"P1", "P2", "P3", NULL};
	fx *f = *state;
	co_record *r = NULL;
	const cJSON *rep, *diag;
	cJSON *o;

	seed(f, ids);
	/* etcd is made the truth: P1 differs there, P2 is gone from it. */
	assert_int_equal(co_store_get(&r, f->etcd, CO_KIND_TASK, "P1"), 0);
	free(r->type);
	r->type = strdup("deploy");
	assert_non_null(r->type);
	assert_int_equal(co_store_put(f->etcd, r), 0);
	co_record_free(r);
	r = NULL;
	etcdctl_del_task(f, "P2");

	o = reconcile(f, "{\"repair\":\"etcd\"}", 200);
	/* The answer is the verifying run's; the diagnosis is under "repair". */
	assert_string_equal(jstr(o, "verdict"), "pass");
	assert_true(jnum(o, "consistency") == 1.0);
	assert_true(jnum(o, "total") == 2);
	rep = cJSON_GetObjectItemCaseSensitive(o, "repair");
	assert_non_null(rep);
	assert_string_equal(jstr(rep, "from"), "etcd");
	assert_true(jnum(rep, "written") == 1 && jnum(rep, "removed") == 1);
	diag = cJSON_GetObjectItemCaseSensitive(rep, "diagnosis");
	assert_non_null(diag);
	assert_string_equal(jstr(diag, "verdict"), "fail");
	assert_string_equal(jstr(diag, "action"), "repair:etcd");
	assert_true(jnum(diag, "mismatch") == 1 && jnum(diag, "missing_in_etcd") == 1);
	assert_true(jnum(diag, "run") < jnum(o, "run"));
	cJSON_Delete(o);

	/* git now holds what etcd holds, deletion included. */
	assert_int_equal(co_store_get(&r, f->git, CO_KIND_TASK, "P1"), 0);
	assert_string_equal(r->type, "deploy");
	co_record_free(r);
	r = NULL;
	assert_int_equal(co_store_get(&r, f->git, CO_KIND_TASK, "P2"), CO_ENOTFOUND);
	/* A repairing run does not trip the switch. */
	assert_int_equal(kill_switch_in_file(f), 0);

	/* And a plain run afterwards agrees. */
	o = reconcile(f, "{}", 200);
	assert_string_equal(jstr(o, "verdict"), "pass");
	assert_true(jnum(o, "consistency") == 1.0);
	cJSON_Delete(o);
	assert_true(metrics_have(f, "\ncutover_reconcile_consistency_ratio 1.000000\n"));
}

static void reconcile_bad_body_is_400_and_records_no_run(void **state)
{
	static const char *const bad[] = {"{\"repair\":\"svn\"}",
					  "{\"repair\":5}",
					  "{\"no_rollback\":\"yes\"}",
					  "{\"bogus\":true}",
					  "{",
					  "[]",
					  "{} x",
					  NULL};
	static const char *const ids[] = {"B1", NULL};
	fx *f = *state;
	co_audit_change_list l = {0};
	co_run *run = NULL;
	cJSON *o;
	int i;

	/* A divergence waits: a run, had one started, would trip the switch. */
	seed(f, ids);
	etcdctl_del_task(f, "B1");
	for (i = 0; bad[i]; i++) {
		o = reconcile(f, bad[i], 400);
		assert_string_equal(
		    jstr(cJSON_GetObjectItemCaseSensitive(o, "error"), "code"),
		    "invalid");
		if (i == 0)
			assert_non_null(strstr(
			    jstr(cJSON_GetObjectItemCaseSensitive(o, "error"), "message"),
			    "\"svn\""));
		cJSON_Delete(o);
	}
	/* No run, not even one in progress; nothing audited. */
	assert_int_equal(co_runs_latest(&run, f->st), CO_ENOTFOUND);
	assert_int_equal(co_runs_get(&run, f->st, 1), CO_ENOTFOUND);
	assert_int_equal(co_audit_changes_latest(&l, f->st, 10), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(kill_switch_in_file(f), 0);
	co_error_clear();
}

static void reconcile_needs_the_token_and_post(void **state)
{
	fx *f = *state;
	co_run *run = NULL;

	assert_int_equal(req_status(f, "POST", "/v1/admin/reconcile", "{}", NULL), 401);
	assert_int_equal(
	    req_status(f, "POST", "/v1/admin/reconcile", "{}", "Bearer wrong"), 401);
	assert_int_equal(req_status(f, "GET", "/v1/admin/reconcile", NULL, NULL), 401);
	assert_int_equal(req_status(f, "GET", "/v1/admin/reconcile", NULL, AUTH), 405);
	assert_int_equal(co_runs_latest(&run, f->st), CO_ENOTFOUND);
	assert_int_equal(co_runs_get(&run, f->st, 1), CO_ENOTFOUND);
	co_error_clear();
}

typedef struct reconciler {
	fx *f;
	long status;
} reconciler;

static void *reconcile_thread(void *p)
{
	reconciler *c = p;

	c->status = req_status(c->f, "POST", "/v1/admin/reconcile", NULL, AUTH);
	return NULL;
}

static void reconcile_while_one_runs_is_409(void **state)
{
	static const char *const ids[] = {"Q1", NULL};
	fx *f = *state;
	hold h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
	reconciler c = {f, 0};
	pthread_t th;
	co_run *run = NULL;
	resp r;

	seed(f, ids);
	f->hold = &h;
	assert_int_equal(pthread_create(&th, NULL, reconcile_thread, &c), 0);
	/* The first run is parked in its drain phase: it began, it holds the
	 * server's one reconcile slot, and it cannot finish until released. */
	pthread_mutex_lock(&h.lock);
	while (!h.started)
		pthread_cond_wait(&h.cond, &h.lock);
	pthread_mutex_unlock(&h.lock);

	http(&r, f, "POST", "/v1/admin/reconcile", "{\"no_rollback\":true}",
	     strlen("{\"no_rollback\":true}"), AUTH);
	assert_int_equal(r.status, 409);
	assert_non_null(strstr(r.body, "\"code\":\"conflict\""));
	assert_non_null(strstr(r.body, "already running"));
	free(r.body);

	pthread_mutex_lock(&h.lock);
	h.released = 1;
	pthread_cond_broadcast(&h.cond);
	pthread_mutex_unlock(&h.lock);
	pthread_join(th, NULL);
	f->hold = NULL;
	assert_int_equal(c.status, 200);

	/* Only the first ran, and the slot is free again. */
	assert_int_equal(co_runs_latest(&run, f->st), 0);
	assert_int_equal(run->id, 1);
	co_run_free(run);
	run = NULL;
	cJSON_Delete(reconcile(f, NULL, 200));
	assert_int_equal(co_runs_latest(&run, f->st), 0);
	assert_int_equal(run->id, 2);
	co_run_free(run);
}

static void reconcile_with_etcd_down_is_503_and_recorded_as_failed(void **state)
{
	static const char *const ids[] = {"U1", NULL};
	co_test_etcd own;
	co_run *run = NULL;
	fx f;
	cJSON *o;

	(void)state;
	/* Its own etcd, killed: the shared one stays up for the others. */
	assert_int_equal(co_test_etcd_start(&own), 0);
	fx_open_on(&f, 1, own.endpoint);
	seed(&f, ids);
	co_test_etcd_kill(&own);

	o = reconcile(&f, "{}", 503);
	assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(o, "error"), "code"),
			    "unavailable");
	assert_non_null(strstr(
	    jstr(cJSON_GetObjectItemCaseSensitive(o, "error"), "message"), "etcd"));
	cJSON_Delete(o);

	assert_int_equal(co_runs_latest(&run, f.st), 0);
	assert_string_equal(run->verdict, "fail");
	assert_string_equal(run->action, "none");
	assert_non_null(run->error);
	co_run_free(run);
	/* A run that could not look at both stores decides nothing. */
	assert_int_equal(kill_switch_in_file(&f), 0);

	fx_close(&f);
	co_test_etcd_stop(&own);
}

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return co_test_etcd_start(&etcd);
}

static int group_teardown(void **state)
{
	(void)state;
	co_test_etcd_stop(&etcd);
	curl_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		task_lifecycle_over_http_gives_the_right_statuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(claim_has_one_winner_among_16_http_clients,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(malformed_json_is_400_and_writes_nothing,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(oversized_body_is_413_and_writes_nothing,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_id_is_400_and_missing_is_404, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		admin_needs_the_token_and_rollback_sets_the_kill_switch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		admin_stage_refuses_forward_moves_without_force, setup, teardown),
	    cmocka_unit_test(admin_without_a_token_is_disabled),
	    cmocka_unit_test_setup_teardown(metrics_name_every_metric_and_healthz_is_ok,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(watch_streams_a_created_task_as_an_event,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(stop_ends_open_watch_streams, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		reconcile_of_equal_stores_passes_with_the_report_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		reconcile_of_a_divergence_fails_and_trips_the_kill_switch, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		reconcile_with_no_rollback_fails_without_tripping, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		reconcile_repair_from_etcd_brings_consistency_back_to_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(reconcile_bad_body_is_400_and_records_no_run,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(reconcile_needs_the_token_and_post, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(reconcile_while_one_runs_is_409, setup,
					    teardown),
	    cmocka_unit_test(reconcile_with_etcd_down_is_503_and_recorded_as_failed),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
