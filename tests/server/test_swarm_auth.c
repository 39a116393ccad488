/*
 * test_swarm_auth.c - swarm identity on serve's data plane (issue 22 point
 * 2), against a real etcd and a real bare git repo: a whole serve in-process
 * (serve_fixture.h) at stage shadow with swarm auth on, spoken to over HTTP.
 *
 * What it pins: the owner's token works for claim, release and renew; no
 * token or a forged one is 401, another swarm's 403, each with the usual
 * error body, audited, and the task read back unchanged; a rotated token
 * stops working at the very next request; create needs some swarm's token
 * and reads stay open; registering needs the swarm's own token or the
 * admin token; and no token's secret ever reaches the serve log, the audit
 * tables or the database files.
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
#include "core/tokens.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "router/router.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ADMIN "adm1n-t0ken"

static co_test_etcd etcd;
static int prefix_seq;

/* The serve log, gathered from the server's request threads. */
typedef struct logbuf {
	pthread_mutex_t lock;
	char text[1 << 16];
	size_t len;
} logbuf;

typedef struct fx {
	co_test_serve sv;
	logbuf log;
	char prefix[64];
	char *tok_a, *tok_b; /* tokens of swarm-a and swarm-b */
} fx;

static void on_log(void *ctx, const char *line)
{
	logbuf *l = ctx;

	pthread_mutex_lock(&l->lock);
	l->len +=
	    (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s\n", line);
	if (l->len >= sizeof(l->text))
		l->len = sizeof(l->text) - 1;
	pthread_mutex_unlock(&l->lock);
}

static void register_swarm(fx *f, const char *id)
{
	co_record *sw = NULL, *out = NULL;

	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, id), 0);
	assert_int_equal(co_router_swarm_register(&out, f->sv.r, sw), 0);
	co_record_free(out);
	co_record_free(sw);
}

static int setup(void **state)
{
	co_test_serve_opts o = {0};
	fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	pthread_mutex_init(&f->log.lock, NULL);
	snprintf(f->prefix, sizeof(f->prefix), "/sa%d-%d/", (int)getpid(), ++prefix_seq);
	o.endpoint = etcd.endpoint;
	o.prefix = f->prefix;
	o.stage = "shadow"; /* git decides, etcd mirrors: both stores in play */
	o.token = ADMIN;
	o.swarm_auth = CO_SWARM_AUTH_TOKEN;
	o.log = on_log;
	o.log_ctx = &f->log;
	if (co_test_serve_open(&f->sv, &o) < 0) {
		free(f);
		return -1;
	}
	register_swarm(f, "swarm-a");
	register_swarm(f, "swarm-b");
	if (co_tokens_issue(&f->tok_a, f->sv.st, "swarm-a", 0) < 0 ||
	    co_tokens_issue(&f->tok_b, f->sv.st, "swarm-b", 0) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	co_test_serve_close(&f->sv);
	co_tokens_wipe(f->tok_a);
	co_tokens_wipe(f->tok_b);
	pthread_mutex_destroy(&f->log.lock);
	free(f);
	return 0;
}

/* One request with `token` as bearer (NULL: no header); the status. */
static long req(fx *f, const char *method, const char *path, const char *body,
		const char *token, char **out_body)
{
	char auth[512];
	co_test_resp r;

	if (token)
		snprintf(auth, sizeof(auth), "Bearer %s", token);
	co_test_http(&r, f->sv.base, method, path, body, body ? strlen(body) : 0,
		     token ? auth : NULL);
	if (out_body)
		*out_body = r.body;
	else
		free(r.body);
	return r.status;
}

/* A refusal: the status, and the API's error body with `code`. */
static void expect_refused(fx *f, const char *path, const char *body, const char *token,
			   long status, const char *code)
{
	char *b = NULL, want[64];

	assert_int_equal(req(f, "POST", path, body, token, &b), status);
	snprintf(want, sizeof(want), "{\"error\":{\"code\":\"%s\"", code);
	if (strncmp(b, want, strlen(want)) != 0)
		fail_msg("%s: body %s lacks %s", path, b, want);
	free(b);
}

/* The task as the API reads it back (reads stay open: no token). */
static char *task_json(fx *f, const char *id)
{
	char path[128], *b = NULL;

	snprintf(path, sizeof(path), "/v1/tasks/%s", id);
	assert_int_equal(req(f, "GET", path, NULL, NULL, &b), 200);
	return b;
}

/* A token of swarm-a's form whose secret is not swarm-a's. */
static void forge(char *out, size_t len, const char *real)
{
	size_t n = strlen(real);

	snprintf(out, len, "%s", real);
	out[n - 1] = out[n - 1] == 'A' ? 'B' : 'A';
	out[n - 2] = out[n - 2] == 'x' ? 'y' : 'x';
}

/* The ops audit rows with `outcome`. */
static size_t audited(fx *f, const char *outcome, const char *op)
{
	co_audit_op_list l = {0};
	size_t i, n = 0;

	assert_int_equal(co_audit_ops_latest(&l, f->sv.st, 10000), 0);
	for (i = 0; i < l.n; i++)
		if (strcmp(l.items[i]->outcome, outcome) == 0 &&
		    strcmp(l.items[i]->op, op) == 0)
			n++;
	co_audit_op_list_clear(&l);
	return n;
}

/* Fail if the secret part of `token` is in `hay` of len bytes. */
static void assert_no_secret(const char *hay, size_t len, const char *token,
			     const char *where)
{
	const char *secret = token + strlen(token) - CO_TOKEN_SECRET_LEN;

	if (len >= CO_TOKEN_SECRET_LEN &&
	    memmem(hay, len, secret, CO_TOKEN_SECRET_LEN) != NULL)
		fail_msg("a token's secret is in %s", where);
}

static void owner_token_claims_renews_and_releases(void **state)
{
	fx *f = *state;

	assert_int_equal(req(f, "POST", "/v1/tasks", "{\"id\":\"T1\"}", f->tok_a, NULL),
			 201);
	assert_int_equal(req(f, "POST", "/v1/tasks/T1/claim",
			     "{\"swarm\":\"swarm-a\",\"ttl\":60}", f->tok_a, NULL),
			 200);
	assert_int_equal(req(f, "POST", "/v1/tasks/T1/renew",
			     "{\"swarm\":\"swarm-a\",\"ttl\":120}", f->tok_a, NULL),
			 200);
	assert_int_equal(req(f, "POST", "/v1/tasks/T1/release",
			     "{\"swarm\":\"swarm-a\",\"status\":\"complete\"}", f->tok_a,
			     NULL),
			 200);
}

static void refusals_are_401_or_403_audited_and_change_nothing(void **state)
{
	static const char *const acts[][2] = {
	    {"/v1/tasks/T2/claim", "{\"swarm\":\"swarm-a\",\"ttl\":60}"},
	    {"/v1/tasks/T2/renew", "{\"swarm\":\"swarm-a\",\"ttl\":60}"},
	    {"/v1/tasks/T2/release", "{\"swarm\":\"swarm-a\",\"status\":\"failed\"}"},
	};
	fx *f = *state;
	char forged[256], *before, *after;
	size_t i;

	forge(forged, sizeof(forged), f->tok_a);
	assert_int_equal(req(f, "POST", "/v1/tasks", "{\"id\":\"T2\"}", f->tok_a, NULL),
			 201);
	/* A claimed task, so that release and renew would change it. */
	assert_int_equal(req(f, "POST", acts[0][0], acts[0][1], f->tok_a, NULL), 200);
	before = task_json(f, "T2");
	for (i = 0; i < 3; i++) {
		expect_refused(f, acts[i][0], acts[i][1], NULL, 401, "unauthorized");
		expect_refused(f, acts[i][0], acts[i][1], f->tok_b, 403, "forbidden");
		expect_refused(f, acts[i][0], acts[i][1], forged, 401, "unauthorized");
		expect_refused(f, acts[i][0], acts[i][1], "cos_garbage", 401,
			       "unauthorized");
		after = task_json(f, "T2");
		assert_string_equal(after, before); /* same owner, status, rev */
		free(after);
	}
	free(before);
	/* Each refusal is in the ops audit, by operation and outcome. */
	assert_int_equal(audited(f, "unauthorized", "task_claim"), 3);
	assert_int_equal(audited(f, "forbidden", "task_claim"), 1);
	assert_int_equal(audited(f, "unauthorized", "task_release"), 3);
	assert_int_equal(audited(f, "forbidden", "task_renew"), 1);
	/* ... and in the serve log, naming who the token was. */
	pthread_mutex_lock(&f->log.lock);
	if (strstr(f->log.text, "403 task_claim T2") == NULL ||
	    strstr(f->log.text, "swarm swarm-b's") == NULL ||
	    strstr(f->log.text, "401 task_renew T2") == NULL)
		fail_msg("serve log lacks the refusals: %s", f->log.text);
	pthread_mutex_unlock(&f->log.lock);
}

static void rotated_token_stops_working_at_once(void **state)
{
	fx *f = *state;
	char *fresh = NULL;

	assert_int_equal(req(f, "POST", "/v1/tasks", "{\"id\":\"T3\"}", f->tok_a, NULL),
			 201);
	assert_int_equal(co_tokens_issue(&fresh, f->sv.st, "swarm-a", 0), CO_ECONFLICT);
	assert_int_equal(co_tokens_issue(&fresh, f->sv.st, "swarm-a", 1), 0);
	assert_string_not_equal(fresh, f->tok_a);
	expect_refused(f, "/v1/tasks/T3/claim", "{\"swarm\":\"swarm-a\"}", f->tok_a, 401,
		       "unauthorized");
	assert_int_equal(
	    req(f, "POST", "/v1/tasks/T3/claim", "{\"swarm\":\"swarm-a\"}", fresh, NULL),
	    200);
	co_tokens_wipe(f->tok_a);
	f->tok_a = fresh;
}

static void create_needs_a_token_and_reads_stay_open(void **state)
{
	fx *f = *state;

	expect_refused(f, "/v1/tasks", "{\"id\":\"T4\"}", NULL, 401, "unauthorized");
	expect_refused(f, "/v1/tasks", "{\"id\":\"T4\"}", ADMIN, 401, "unauthorized");
	assert_int_equal(req(f, "GET", "/v1/tasks/T4", NULL, NULL, NULL), 404);
	assert_int_equal(req(f, "POST", "/v1/tasks", "{\"id\":\"T4\"}", f->tok_b, NULL),
			 201);
	assert_int_equal(req(f, "GET", "/v1/tasks", NULL, NULL, NULL), 200);
	assert_int_equal(req(f, "GET", "/v1/swarms/swarm-a", NULL, NULL, NULL), 200);
	assert_int_equal(req(f, "GET", "/healthz", NULL, NULL, NULL), 200);
}

static void register_needs_the_swarms_own_token_or_the_admin_token(void **state)
{
	fx *f = *state;
	const char *reg_c = "{\"id\":\"swarm-c\"}";

	/* A new swarm has no token: the operator registers it. */
	expect_refused(f, "/v1/swarms", reg_c, NULL, 401, "unauthorized");
	expect_refused(f, "/v1/swarms", reg_c, f->tok_a, 403, "forbidden");
	assert_int_equal(req(f, "GET", "/v1/swarms/swarm-c", NULL, NULL, NULL), 404);
	assert_int_equal(req(f, "POST", "/v1/swarms", reg_c, ADMIN, NULL), 200);
	/* A swarm re-registers itself with its own token. */
	assert_int_equal(req(f, "POST", "/v1/swarms",
			     "{\"id\":\"swarm-a\",\"capabilities\":[\"build\"]}",
			     f->tok_a, NULL),
			 200);
	expect_refused(f, "/v1/swarms", "{\"id\":\"swarm-a\"}", f->tok_b, 403,
		       "forbidden");
	assert_int_equal(audited(f, "forbidden", "swarm_register"), 2);
}

/* Read a whole file into a malloc'd buffer (NULL if absent). */
static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	long n;

	*len = 0;
	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) > 0 &&
	    fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL)
		*len = fread(buf, 1, (size_t)n, fp);
	fclose(fp);
	return buf;
}

static void no_token_reaches_the_log_the_audit_or_the_database(void **state)
{
	static const char *const files[] = {"cutover.db", "cutover.db-wal"};
	fx *f = *state;
	co_audit_op_list ops = {0};
	co_audit_change_list ch = {0};
	char forged[256], path[400], *buf;
	size_t i, len;

	forge(forged, sizeof(forged), f->tok_a);
	/* Every way a token travels: accepted, refused, another's, forged. */
	assert_int_equal(req(f, "POST", "/v1/tasks", "{\"id\":\"T5\"}", f->tok_a, NULL),
			 201);
	req(f, "POST", "/v1/tasks/T5/claim", "{\"swarm\":\"swarm-a\"}", f->tok_b, NULL);
	req(f, "POST", "/v1/tasks/T5/claim", "{\"swarm\":\"swarm-a\"}", forged, NULL);
	assert_int_equal(req(f, "POST", "/v1/tasks/T5/claim", "{\"swarm\":\"swarm-a\"}",
			     f->tok_a, NULL),
			 200);

	pthread_mutex_lock(&f->log.lock);
	assert_true(f->log.len > 0);
	assert_no_secret(f->log.text, f->log.len, f->tok_a, "the serve log");
	assert_no_secret(f->log.text, f->log.len, f->tok_b, "the serve log");
	assert_no_secret(f->log.text, f->log.len, forged, "the serve log");
	pthread_mutex_unlock(&f->log.lock);

	assert_int_equal(co_audit_ops_latest(&ops, f->sv.st, 10000), 0);
	assert_true(ops.n > 0);
	for (i = 0; i < ops.n; i++) {
		const char *e = ops.items[i]->error ? ops.items[i]->error : "";

		assert_no_secret(e, strlen(e), f->tok_a, "the ops audit");
		assert_no_secret(e, strlen(e), f->tok_b, "the ops audit");
		assert_no_secret(e, strlen(e), forged, "the ops audit");
	}
	co_audit_op_list_clear(&ops);
	assert_int_equal(co_audit_changes_latest(&ch, f->sv.st, 10000), 0);
	for (i = 0; i < ch.n; i++) {
		const char *d = ch.items[i]->detail ? ch.items[i]->detail : "";

		assert_no_secret(d, strlen(d), f->tok_a, "the changes audit");
	}
	co_audit_change_list_clear(&ch);
	/* Nor anywhere in the database's bytes: only the salted hash is kept. */
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->sv.dir, files[i]);
		if ((buf = slurp(path, &len)) == NULL)
			continue;
		assert_no_secret(buf, len, f->tok_a, path);
		assert_no_secret(buf, len, f->tok_b, path);
		free(buf);
	}
}

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
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
	    cmocka_unit_test_setup_teardown(owner_token_claims_renews_and_releases, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		refusals_are_401_or_403_audited_and_change_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(rotated_token_stops_working_at_once, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(create_needs_a_token_and_reads_stay_open,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		register_needs_the_swarms_own_token_or_the_admin_token, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		no_token_reaches_the_log_the_audit_or_the_database, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
