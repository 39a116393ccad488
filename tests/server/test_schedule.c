/*
 * test_schedule.c - `cutover serve` reconciles on its own schedule
 * (issue 14 point 8): while an operation goes to both stores it runs the
 * reconciler every interval, records the run and trips the kill switch on
 * a divergence, audited as "serve:schedule"; in `git` it only ticks; and
 * stopping the server wakes the schedule at once (an hour-long interval
 * would otherwise hold the stop for an hour).  Real etcd, real git, the
 * server in-process.  Every wait polls a condition under a bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/audit.h"
#include "core/error.h"
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longest wait for a scheduled run to show (bounds a failing test only). */
#define WAIT_MS 30000

static int prefix_seq;

typedef struct fx {
	char repo[256], dir[256], flags_path[300], prefix[64];
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
	co_server *srv;
	char base[64];
} fx;

static void fx_open(fx *f, const char *stage_name, int every_ms)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_server_opts so = CO_SERVER_OPTS_INIT;
	const char *eps[1] = {co_test_group_etcd.endpoint};
	co_flags fl;
	co_stage stage;

	memset(f, 0, sizeof(*f));
	assert_int_equal(co_test_git_repo_new(f->repo, sizeof(f->repo)), 0);
	assert_int_equal(co_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	snprintf(f->flags_path, sizeof(f->flags_path), "%s/flags.yaml", f->dir);
	snprintf(f->prefix, sizeof(f->prefix), "/sch%d-%d/", (int)getpid(), ++prefix_seq);
	go.repo = f->repo;
	go.poll_interval_ms = 50;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = f->prefix;
	assert_int_equal(co_git_store_open(&f->git, &go), 0);
	assert_int_equal(co_etcd_store_open(&f->etcd, &eo), 0);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	co_flags_init(&fl);
	assert_int_equal(co_stage_parse(&stage, stage_name), 0);
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
	so.reconcile_grace_ms = 0; /* a fresh divergence counts at once */
	so.reconcile_every_ms = every_ms;
	assert_int_equal(co_server_start(&f->srv, &so), 0);
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

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};

	nanosleep(&ts, NULL);
}

/* The value of a metric line "NAME VALUE" in one scrape, or -1. */
static long long metric(fx *f, const char *name)
{
	co_test_resp r;
	char want[200];
	const char *p;
	long long v = -1;

	co_test_http(&r, f->base, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	snprintf(want, sizeof(want), "\n%s ", name);
	if ((p = strstr(r.body, want)) != NULL)
		v = strtoll(p + strlen(want), NULL, 10);
	free(r.body);
	return v;
}

static void create(fx *f, const char *id)
{
	co_record *t = NULL, *out = NULL;

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
	assert_int_equal(co_router_task_create(&out, f->r, t), 0);
	co_record_free(t);
	co_record_free(out);
}

/* Wait until the newest audit change is by `who` doing `action`. */
static int audited(fx *f, const char *who, const char *action)
{
	co_audit_change_list l = {0};
	size_t i;
	int found = 0;

	assert_int_equal(co_audit_changes_latest(&l, f->st, 20), 0);
	for (i = 0; i < l.n && !found; i++)
		found = strcmp(l.items[i]->who, who) == 0 &&
			strcmp(l.items[i]->action, action) == 0;
	co_audit_change_list_clear(&l);
	return found;
}

static void in_shadow_it_reconciles_and_trips_on_a_divergence(void **state)
{
	fx f;
	co_run *run = NULL;
	co_flags fl;
	int64_t deadline;

	(void)state;
	fx_open(&f, "shadow", 100);
	create(&f, "S1");
	create(&f, "S2");
	/* A scheduled run passes and is recorded. */
	for (deadline = mono_ms() + WAIT_MS; mono_ms() < deadline; pause_ms(20)) {
		co_run_free(run);
		run = NULL;
		if (co_runs_latest(&run, f.st) == 0 && run->verdict &&
		    strcmp(run->verdict, "pass") == 0 &&
		    audited(&f, "serve:schedule", "reconcile"))
			break;
	}
	assert_non_null(run);
	assert_string_equal(run->verdict, "pass");
	assert_true(audited(&f, "serve:schedule", "reconcile"));
	assert_true(
	    metric(&f, "cutover_reconcile_scheduled_runs_total{result=\"done\"}") >= 1);
	co_run_free(run);

	/* Behind cutover's back, etcd loses a record: the schedule notices
	 * and pulls the kill switch, with nobody calling anything. */
	assert_int_equal(co_store_remove(f.etcd, CO_KIND_TASK, "S2"), 0);
	/* The switch is saved before its audit row is written: wait for both. */
	for (deadline = mono_ms() + WAIT_MS; mono_ms() < deadline; pause_ms(20)) {
		assert_int_equal(co_flags_load(&fl, f.flags_path), 0);
		if (fl.kill_switch && audited(&f, "serve:schedule", "auto-rollback"))
			break;
	}
	assert_int_equal(fl.kill_switch, 1);
	assert_non_null(strstr(fl.kill_reason, "reconcile run"));
	assert_true(audited(&f, "serve:schedule", "auto-rollback"));
	fx_close(&f);
}

static void in_git_it_only_ticks(void **state)
{
	fx f;
	co_run *run = NULL;
	int64_t deadline;

	(void)state;
	fx_open(&f, "git", 50);
	create(&f, "G1");
	for (deadline = mono_ms() + WAIT_MS; mono_ms() < deadline; pause_ms(20))
		if (metric(&f, "cutover_reconcile_schedule_ticks_total") >= 3)
			break;
	assert_true(metric(&f, "cutover_reconcile_schedule_ticks_total") >= 3);
	assert_int_equal(co_runs_latest(&run, f.st), CO_ENOTFOUND);
	assert_int_equal(
	    metric(&f, "cutover_reconcile_scheduled_runs_total{result=\"done\"}"), 0);
	fx_close(&f);
}

static void stop_wakes_an_hour_long_wait(void **state)
{
	fx f;

	(void)state;
	fx_open(&f, "shadow", 3600 * 1000);
	assert_int_equal(metric(&f, "cutover_reconcile_schedule_ticks_total"), 0);
	fx_close(&f); /* returns: the stop woke the schedule's wait */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(in_shadow_it_reconciles_and_trips_on_a_divergence),
	    cmocka_unit_test(in_git_it_only_ticks),
	    cmocka_unit_test(stop_wakes_an_hour_long_wait),
	};

	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
