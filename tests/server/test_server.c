/*
 * test_server.c - the HTTP API of `cutover serve` (src/server) against a
 * real etcd and a real bare git repo: the server runs in-process on a free
 * loopback port (127.0.0.1:0) and is spoken to with libcurl, as a swarm in
 * any language would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/audit.h"
#include "core/error.h"
#include "core/record.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "router/router.h"
#include "server/server.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN "s3cret-admin-token"
#define N_CLAIMERS 16

static co_test_etcd etcd;
static int prefix_seq;

typedef struct fx {
	char repo[256], dir[256], flags_path[300], prefix[64];
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
	co_server *srv;
	char base[64]; /* "http://127.0.0.1:PORT" */
} fx;

typedef struct resp {
	long status;
	char *body;
	size_t len;
} resp;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	resp *r = ud;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (nb == NULL)
		return 0;
	memcpy(nb + r->len, p, size * n);
	r->body = nb;
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

/* One request; `body` NULL for none; `auth` a whole header value or NULL. */
static void http(resp *out, const fx *f, const char *method, const char *path,
		 const char *body, size_t body_len, const char *auth)
{
	struct curl_slist *h = NULL;
	char url[512], hdr[256];
	CURL *c = curl_easy_init();
	CURLcode rc;

	assert_non_null(c);
	memset(out, 0, sizeof(*out));
	out->body = strdup("");
	snprintf(url, sizeof(url), "%s%s", f->base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	if (auth) {
		snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
		h = curl_slist_append(h, hdr);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static long req_status(const fx *f, const char *method, const char *path,
		       const char *body, const char *auth)
{
	resp r;

	http(&r, f, method, path, body, body ? strlen(body) : 0, auth);
	free(r.body);
	return r.status;
}

static void fx_open(fx *f, int with_token)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_server_opts so = CO_SERVER_OPTS_INIT;
	const char *eps[1] = {etcd.endpoint};
	co_flags fl;
	co_stage stage;

	memset(f, 0, sizeof(*f));
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
	assert_int_equal(co_server_start(&f->srv, &so), 0);
	assert_true(co_server_port(f->srv) > 0);
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", co_server_port(f->srv));
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
	http(&r, f, "POST", "/v1/tasks", body, n, NULL);
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
	/* Backward needs no gate. */
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
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
