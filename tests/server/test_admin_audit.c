/*
 * test_admin_audit.c - GET /v1/admin/audit on a whole `cutover serve`
 * in-process (serve_fixture.h) over a real etcd and a real bare git repo.
 *
 * Rows are written through the admin API itself (a forward stage the
 * server's gate refuses, one forced, a rollback, a resume), then read back:
 * who and why, the filters, the cursor walk (every row once), the token,
 * and parameters refused with a 400 that names them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/audit.h"
#include "flags/flags.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN "audit-admin-token"
#define AUTH "Bearer " TOKEN

static co_test_etcd etcd;

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	return co_test_etcd_start(&etcd);
}

static int group_teardown(void **state)
{
	(void)state;
	co_test_etcd_stop(&etcd);
	return 0;
}

static int setup(void **state)
{
	static int n;
	co_test_serve *f = calloc(1, sizeof(*f));
	co_test_serve_opts o = {0};
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "/audit-%d-%d/", (int)getpid(), ++n);
	o.endpoint = etcd.endpoint;
	o.prefix = prefix;
	o.token = TOKEN;
	if (f == NULL || co_test_serve_open(f, &o) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	co_test_serve_close(*state);
	free(*state);
	return 0;
}

static long post(co_test_serve *f, const char *path, const char *body)
{
	co_test_resp r;
	long status;

	co_test_http(&r, f->base, "POST", path, body, strlen(body), AUTH);
	status = r.status;
	free(r.body);
	return status;
}

/* GET path: the status into *status, the parsed body (caller frees). */
static cJSON *get(co_test_serve *f, const char *path, long *status, const char *auth)
{
	co_test_resp r;
	cJSON *j;

	co_test_http(&r, f->base, "GET", path, NULL, 0, auth);
	*status = r.status;
	if ((j = cJSON_Parse(r.body)) == NULL)
		fail_msg("%s: not JSON: %s", path, r.body);
	free(r.body);
	return j;
}

static cJSON *rows(cJSON *p)
{
	cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "changes");

	assert_true(cJSON_IsArray(a));
	return a;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static void admin_changes_are_listed_filtered_and_paged(void **state)
{
	co_test_serve *f = *state;
	const cJSON *r;
	cJSON *p;
	long st;
	char path[128];
	int64_t seen[16], cursor = 0;
	int n = 0, i, pages = 0;

	/* This server has no go/no-go inputs: forward is refused unless forced. */
	assert_int_equal(
	    post(f, "/v1/admin/stage", "{\"stage\":\"shadow\",\"reason\":\"try\"}"), 409);
	assert_int_equal(
	    post(f, "/v1/admin/stage",
		 "{\"stage\":\"shadow\",\"force\":true,\"reason\":\"forced\"}"),
	    200);
	assert_int_equal(post(f, "/v1/admin/rollback", "{\"reason\":\"error burst\"}"),
			 200);
	assert_int_equal(post(f, "/v1/admin/resume", "{\"reason\":\"recovered\"}"), 200);

	p = get(f, "/v1/admin/audit", &st, AUTH);
	assert_int_equal(st, 200);
	assert_int_equal(cJSON_GetArraySize(rows(p)), 4);
	r = cJSON_GetArrayItem(rows(p), 0);
	assert_string_equal(str(r, "action"), "gate refused");
	assert_string_equal(str(r, "who"), "serve:admin");
	assert_non_null(strstr(str(r, "why"), "no go/no-go gate"));
	r = cJSON_GetArrayItem(rows(p), 2);
	assert_string_equal(str(r, "action"), "rollback");
	assert_string_equal(str(r, "kind"), "trip");
	assert_string_equal(str(r, "why"), "error burst");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "next_cursor")));
	cJSON_Delete(p);

	p = get(f, "/v1/admin/audit?kind=gate&since=1h&op=task_claim", &st, AUTH);
	assert_int_equal(st, 200);
	assert_int_equal(cJSON_GetArraySize(rows(p)), 2);
	cJSON_Delete(p);
	p = get(f, "/v1/admin/audit?order=newest&limit=1", &st, AUTH);
	assert_string_equal(str(cJSON_GetArrayItem(rows(p), 0), "action"), "resume");
	assert_string_equal(str(p, "order"), "newest_first");
	cJSON_Delete(p);

	/* Walk one row a page: each row once, in order. */
	for (;;) {
		const cJSON *next;

		snprintf(path, sizeof(path), "/v1/admin/audit?limit=1&cursor=%lld",
			 (long long)cursor);
		p = get(f, path, &st, AUTH);
		assert_int_equal(st, 200);
		cJSON_ArrayForEach(r, rows(p))
		{
			assert_true(n < 16);
			seen[n++] = (int64_t)cJSON_GetObjectItemCaseSensitive(r, "seq")
					->valuedouble;
		}
		pages++;
		next = cJSON_GetObjectItemCaseSensitive(p, "next_cursor");
		if (cJSON_IsNull(next)) {
			cJSON_Delete(p);
			break;
		}
		cursor = (int64_t)next->valuedouble;
		cJSON_Delete(p);
	}
	assert_int_equal(n, 4);
	assert_int_equal(pages, 4);
	for (i = 1; i < n; i++)
		assert_true(seen[i] > seen[i - 1]);

	/* No webhooks here: nothing owed, and /metrics says so. */
	{
		co_test_resp m;

		co_test_http(&m, f->base, "GET", "/metrics", NULL, 0, NULL);
		assert_int_equal(m.status, 200);
		assert_non_null(strstr(m.body, "cutover_webhook_outbox_depth 0\n"));
		free(m.body);
	}
}

static void admin_audit_needs_the_token_and_refuses_bad_parameters(void **state)
{
	static const char *const bad[][2] = {
	    {"/v1/admin/audit?since=tomorrow", "tomorrow"},
	    {"/v1/admin/audit?until=2026-99-01T00:00:00Z", "until"},
	    {"/v1/admin/audit?kind=everything", "everything"},
	    {"/v1/admin/audit?op=task_steal", "task_steal"},
	    {"/v1/admin/audit?limit=0", "limit"},
	    {"/v1/admin/audit?limit=5000", "limit"},
	    {"/v1/admin/audit?cursor=-4", "cursor"},
	    {"/v1/admin/audit?order=sideways", "sideways"},
	    {"/v1/admin/audit?colour=red", "colour"},
	};
	co_test_serve *f = *state;
	co_test_resp r;
	cJSON *p;
	long st;
	size_t i;

	co_test_http(&r, f->base, "GET", "/v1/admin/audit", NULL, 0, NULL);
	assert_int_equal(r.status, 401);
	free(r.body);
	co_test_http(&r, f->base, "POST", "/v1/admin/audit", "{}", 2, AUTH);
	assert_int_equal(r.status, 405);
	free(r.body);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *msg;

		p = get(f, bad[i][0], &st, AUTH);
		if (st != 400)
			fail_msg("%s: status %ld", bad[i][0], st);
		msg = cJSON_PrintUnformatted(p);
		if (strstr(msg, bad[i][1]) == NULL)
			fail_msg("%s: %s does not name %s", bad[i][0], msg, bad[i][1]);
		free(msg);
		cJSON_Delete(p);
	}
}

/* After `cutover complete` git is stale: the admin API does not pull the
 * kill switch (the CLI's `rollback --force` does, recorded). */
static void a_completed_cutover_refuses_the_admin_rollback(void **state)
{
	co_test_serve *f = *state;
	co_flags fl;

	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	co_flags_set_completed(&fl, 1, "tester", "done");
	assert_int_equal(co_flags_save(&fl, f->flags_path), 0);
	assert_int_equal(co_flags_watcher_reload(f->fw), 0);
	assert_int_equal(post(f, "/v1/admin/rollback", "{\"reason\":\"late\"}"), 409);
	assert_int_equal(co_flags_load(&fl, f->flags_path), 0);
	assert_int_equal(fl.kill_switch, 0);
	assert_true(fl.completed.on);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(a_completed_cutover_refuses_the_admin_rollback,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(admin_changes_are_listed_filtered_and_paged,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		admin_audit_needs_the_token_and_refuses_bad_parameters, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
