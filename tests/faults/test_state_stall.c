/*
 * test_state_stall.c - a stalled state-dir disk (issue 20 point 5): an
 * fsync that neither returns nor fails (a dead NFS server, a SAN path
 * failing over), injected with sync=STALL of faults.h.
 *
 * In-process: a whole `cutover serve` (serve_fixture) over a real etcd and
 * a real bare git repo, in etcd mode, where every write's intent is made
 * durable by the router's group commit before it is acknowledged.  What
 * must hold while the state's fsync is stalled:
 *  - /healthz answers (from memory) and says "state dir stalled: fsync in
 *    flight N s", status "degraded";
 *  - new writes are refused with 503 and Retry-After, not queued behind
 *    the fsync, and a refused create is in neither store;
 *  - the write caught in the stalled fsync is acknowledged only after it
 *    returns, and nothing acknowledged is lost once the stall clears.
 * The stall bound is lowered (co_router__sync_stall_ms) so the test need
 * not wait seconds; no timing is asserted.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "faults/faults.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "router/internal.h" /* co_router__sync_stall_ms */
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_BEFORE 10
#define N_REFUSED 10
#define N_AFTER 10

static co_test_etcd etcd;
static char ctl_dir[256];

typedef struct run {
	co_test_serve f;
	char acked[N_BEFORE + N_AFTER + 1][48];
	int n_ack;
} run;

static long create(run *r, const char *id, co_test_resp *resp)
{
	char body[128];

	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"build\"}", id);
	co_test_http(resp, r->f.base, "POST", "/v1/tasks", body, strlen(body), NULL);
	return resp->status;
}

static void create_acked(run *r, const char *id)
{
	co_test_resp resp;

	if (create(r, id, &resp) != 201)
		fail_msg("create %s not acknowledged: %ld %s", id, resp.status,
			 resp.body);
	free(resp.body);
	snprintf(r->acked[r->n_ack++], sizeof(r->acked[0]), "%s", id);
}

static void healthz(run *r, co_test_resp *resp)
{
	co_test_http(resp, r->f.base, "GET", "/healthz", NULL, 0, NULL);
	assert_int_equal(resp->status, 200);
}

/* The write caught in the stall: its answer, when it comes. */
typedef struct stuck {
	run *r;
	long status;
	char body[512];
} stuck;

static void *stuck_create(void *arg)
{
	stuck *s = arg;
	co_test_resp resp;

	create(s->r, "caught", &resp);
	s->status = resp.status;
	snprintf(s->body, sizeof(s->body), "%s", resp.body);
	free(resp.body);
	return NULL;
}

static void wait_drained(run *r)
{
	struct timespec q = {0, 20 * 1000000L};
	int64_t d = -1;

	for (int i = 0; i < 3000; i++) {
		if (co_outbox_depth(&d, r->f.st, NULL) == 0 && d == 0)
			return;
		nanosleep(&q, NULL); /* polls what the drain thread moves */
	}
	fail_msg("outbox still holds %lld entries after 60 s", (long long)d);
}

static void
stalled_state_fsync_answers_health_refuses_fast_and_loses_nothing(void **state)
{
	run *r = calloc(1, sizeof(*r));
	co_test_serve_opts o = {0};
	co_test_resp resp;
	pthread_t th;
	stuck s;
	char dir[300], id[48], prefix[64];
	int i, seen = 0;
	long stalls;

	(void)state;
	assert_non_null(r);
	snprintf(prefix, sizeof(prefix), "/stall-%d/", (int)getpid());
	o.endpoint = etcd.endpoint;
	o.prefix = prefix;
	o.stage = "etcd";
	o.git_poll_ms = 100;
	o.etcd_timeout_ms = 1000;
	assert_int_equal(co_test_serve_open(&r->f, &o), 0);
	for (i = 0; i < N_BEFORE; i++) {
		snprintf(id, sizeof(id), "pre-%d", i);
		create_acked(r, id);
	}
	healthz(r, &resp);
	assert_non_null(strstr(resp.body, "\"stalled\":false"));
	free(resp.body);

	/* the drain idle (its durable acks share the syncer's fsync), then the
	 * disk stalls: the next write's fsync never returns */
	wait_drained(r);
	atomic_store(&co_router__sync_stall_ms, 300);
	snprintf(dir, sizeof(dir), "%s/", r->f.dir);
	stalls = co_faults_stalled_total();
	assert_int_equal(co_faults_set(dir, 0, CO_FAULT_STALL), 0);
	s.r = r;
	s.status = 0;
	assert_int_equal(pthread_create(&th, NULL, stuck_create, &s), 0);
	assert_int_equal(co_faults_wait_stalled(stalls + 1, 30000), 0);

	/* /healthz answers and, once the fsync is past the bound, says so
	 * (bounded polling: the bound is a span of time to pass) */
	for (i = 0; i < 1000 && !seen; i++) {
		struct timespec q = {0, 10 * 1000000L};

		healthz(r, &resp);
		seen = strstr(resp.body, "\"stalled\":true") != NULL;
		if (seen) {
			assert_non_null(
			    strstr(resp.body, "state dir stalled: fsync in flight"));
			assert_non_null(strstr(resp.body, "\"status\":\"degraded\""));
		}
		free(resp.body);
		if (!seen)
			nanosleep(&q, NULL);
	}
	assert_true(seen);

	/* /metrics answers too, with the fsync's age */
	co_test_http(&resp, r->f.base, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(resp.status, 200);
	{
		const char *g = strstr(resp.body, "\ncutover_state_fsync_in_flight_seconds ");

		assert_non_null(g);
		assert_true(strtod(g + 39, NULL) > 0);
	}
	free(resp.body);

	/* new writes: 503 with Retry-After, at once, and nowhere */
	for (i = 0; i < N_REFUSED; i++) {
		snprintf(id, sizeof(id), "refused-%d", i);
		if (create(r, id, &resp) != 503)
			fail_msg("create %s with the state stalled: %ld %s", id,
				 resp.status, resp.body);
		assert_non_null(strstr(resp.body, "state dir stalled"));
		assert_true(resp.retry_after[0] != '\0');
		free(resp.body);
	}
	assert_int_equal(s.status, 0); /* the caught write is not acknowledged */

	/* the disk comes back: the caught write is acknowledged, after its
	 * fsync returned, and the next writes go through */
	co_faults_clear();
	pthread_join(th, NULL);
	atomic_store(&co_router__sync_stall_ms, CO_ROUTER_SYNC_STALL_MS);
	if (s.status != 201)
		fail_msg("the write caught in the stall: %ld %s", s.status, s.body);
	snprintf(r->acked[r->n_ack++], sizeof(r->acked[0]), "caught");
	for (i = 0; i < N_AFTER; i++) {
		snprintf(id, sizeof(id), "post-%d", i);
		create_acked(r, id);
	}
	healthz(r, &resp);
	assert_non_null(strstr(resp.body, "\"stalled\":false"));
	free(resp.body);

	/* nothing acknowledged is lost; nothing refused is anywhere */
	wait_drained(r);
	for (i = 0; i < r->n_ack; i++) {
		co_record *a = NULL, *b = NULL;

		if (co_store_get(&a, r->f.git, CO_KIND_TASK, r->acked[i]) != 0 ||
		    co_store_get(&b, r->f.etcd, CO_KIND_TASK, r->acked[i]) != 0)
			fail_msg("acknowledged %s: git %s, etcd %s", r->acked[i],
				 a ? "has" : "lacks", b ? "has" : "lacks");
		co_record_free(a);
		co_record_free(b);
	}
	for (i = 0; i < N_REFUSED; i++) {
		co_record *a = NULL;

		snprintf(id, sizeof(id), "refused-%d", i);
		assert_int_equal(co_store_get(&a, r->f.git, CO_KIND_TASK, id),
				 CO_ENOTFOUND);
		assert_int_equal(co_store_get(&a, r->f.etcd, CO_KIND_TASK, id),
				 CO_ENOTFOUND);
	}
	print_message("state stall: %ld syncs stalled, %d writes refused, %d "
		      "acknowledged, 0 lost\n",
		      co_faults_stalled_total() - stalls, N_REFUSED, r->n_ack);
	co_test_serve_close(&r->f);
	free(r);
}

static int group_setup(void **state)
{
	(void)state;
	return co_test_etcd_start(&etcd);
}

static int group_teardown(void **state)
{
	(void)state;
	co_faults_clear();
	co_test_etcd_stop(&etcd);
	return 0;
}

int main(void)
{
	char ctl[300];
	int rc;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		stalled_state_fsync_answers_health_refuses_fast_and_loses_nothing),
	};

	if (co_test_tmpdir(ctl_dir, sizeof(ctl_dir)) < 0)
		return 1;
	snprintf(ctl, sizeof(ctl), "%s/faults.ctl", ctl_dir);
	setenv("CUTOVER_FAULTS_CTL", ctl, 1);
	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	co_faults_clear();
	co_test_rmrf(ctl_dir);
	return rc;
}
