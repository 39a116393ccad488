/*
 * test_runs.c - reconciliation runs and divergences, and the go/no-go gate
 * that `cutover stage` reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/runs.h"
#include "core/state.h"
#include "harness/harness.h"
#include "harness/state_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS (3600LL * 1000)

typedef co_test_state_fixture fixture;

/* Record a finished run started at `at` with `verdict`; returns its id. */
static int64_t add_run(co_state *st, int64_t at, const char *verdict, double consistency)
{
	co_run r = {.started_at = at, .duration_ms = 100, .total = 100,
		    .equal = (int64_t)(consistency * 100), .consistency = consistency,
		    .verdict = (char *)verdict,
		    .action = (char *)(strcmp(verdict, "pass") ? "kill_switch" : "none")};
	int64_t id = 0;

	assert_int_equal(co_runs_insert(&id, st, &r), 0);
	assert_true(id > 0);
	return id;
}

static void run_round_trips_with_its_divergences(void **state)
{
	fixture *f = *state;
	co_divergence d[3] = {
		{.id = "R5", .kind = "task", .cls = "mismatch", .fields = "owner,status",
		 .git_value = "{\"owner\":\"a\"}", .etcd_value = "{\"owner\":\"b\"}"},
		{.id = "R1", .kind = "task", .cls = "missing_in_etcd",
		 .git_value = "{\"id\":\"R1\"}"},
		{.id = "S1", .kind = "swarm", .cls = "missing_in_git", .fields = "",
		 .etcd_value = "{\"id\":\"S1\"}"},
	};
	co_run fin = {0}, *r = NULL;
	co_divergence_list dl = {0};
	int64_t id = 0;

	assert_int_equal(co_runs_begin(&id, f->st, 1700000000000LL), 0);
	assert_int_equal(co_runs_add_divergences(f->st, id, d, 2), 0);
	assert_int_equal(co_runs_add_divergences(f->st, id, &d[2], 1), 0);

	/* In progress: get sees it, latest does not. */
	assert_int_equal(co_runs_get(&r, f->st, id), 0);
	assert_null(r->verdict);
	assert_int_equal(r->started_at, 1700000000000LL);
	co_run_free(r);
	r = NULL;
	assert_int_equal(co_runs_latest(&r, f->st), CO_ENOTFOUND);
	assert_null(r);

	fin.id = id;
	fin.duration_ms = 812;
	fin.total = 200;
	fin.equal = 195;
	fin.missing_in_etcd = 1;
	fin.missing_in_git = 2;
	fin.mismatch = 2;
	fin.consistency = 0.975;
	fin.verdict = "fail";
	fin.action = "kill_switch";
	assert_int_equal(co_runs_finish(f->st, &fin), 0);

	assert_int_equal(co_runs_latest(&r, f->st), 0);
	assert_int_equal(r->id, id);
	assert_int_equal(r->started_at, 1700000000000LL);
	assert_int_equal(r->duration_ms, 812);
	assert_int_equal(r->total, 200);
	assert_int_equal(r->equal, 195);
	assert_int_equal(r->missing_in_etcd, 1);
	assert_int_equal(r->missing_in_git, 2);
	assert_int_equal(r->mismatch, 2);
	assert_true(r->consistency > 0.97499 && r->consistency < 0.97501);
	assert_string_equal(r->verdict, "fail");
	assert_string_equal(r->action, "kill_switch");
	assert_null(r->error);
	co_run_free(r);

	/* Ordered by kind, then id; values and fields kept. */
	assert_int_equal(co_runs_divergences(&dl, f->st, id), 0);
	assert_int_equal(dl.n, 3);
	assert_string_equal(dl.items[0]->id, "R1");
	assert_string_equal(dl.items[0]->cls, "missing_in_etcd");
	assert_string_equal(dl.items[0]->fields, "");
	assert_null(dl.items[0]->etcd_value);
	assert_string_equal(dl.items[1]->id, "R5");
	assert_string_equal(dl.items[1]->fields, "owner,status");
	assert_string_equal(dl.items[1]->git_value, "{\"owner\":\"a\"}");
	assert_string_equal(dl.items[1]->etcd_value, "{\"owner\":\"b\"}");
	assert_int_equal(dl.items[1]->run, id);
	assert_string_equal(dl.items[2]->kind, "swarm");
	assert_null(dl.items[2]->git_value);
	co_divergence_list_clear(&dl);

	/* An unknown run has no divergences. */
	assert_int_equal(co_runs_divergences(&dl, f->st, id + 100), 0);
	assert_int_equal(dl.n, 0);
}

static void finishing_errors_are_distinguished(void **state)
{
	fixture *f = *state;
	co_run fin = {.verdict = "pass", .action = "none"};
	int64_t id = 0;

	assert_int_equal(co_runs_begin(&id, f->st, 0), 0);
	fin.id = id + 1;
	assert_int_equal(co_runs_finish(f->st, &fin), CO_ENOTFOUND);
	fin.id = id;
	fin.verdict = "maybe";
	assert_int_equal(co_runs_finish(f->st, &fin), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "maybe"));
	fin.verdict = "pass";
	fin.action = NULL;
	assert_int_equal(co_runs_finish(f->st, &fin), CO_EINVAL);
	fin.action = "none";
	assert_int_equal(co_runs_finish(f->st, &fin), 0);
	assert_int_equal(co_runs_finish(f->st, &fin), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "already finished"));
}

static void a_bad_divergence_batch_writes_nothing(void **state)
{
	fixture *f = *state;
	co_divergence d[3] = {
		{.id = "A", .kind = "task", .cls = "mismatch", .fields = "rev"},
		{.id = "B", .kind = "task", .cls = "mismatch", .fields = "rev"},
		{.id = "A", .kind = "task", .cls = "missing_in_git"},
	};
	co_divergence bad = {.id = "C", .kind = "task", .cls = "equal"};
	co_divergence_list dl = {0};
	int64_t id = 0;

	assert_int_equal(co_runs_begin(&id, f->st, 0), 0);
	assert_int_equal(co_runs_add_divergences(f->st, id, d, 3), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "twice"));
	assert_int_equal(co_runs_add_divergences(f->st, id, &bad, 1), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "equal"));
	assert_int_equal(co_runs_add_divergences(f->st, id + 5, d, 1), CO_ENOTFOUND);
	assert_int_equal(co_runs_divergences(&dl, f->st, id), 0);
	assert_int_equal(dl.n, 0);
}

static void ten_thousand_divergences_in_batches(void **state)
{
	fixture *f = *state;
	co_divergence d[1000];
	co_divergence_list dl = {0};
	char ids[1000][16];
	int64_t id = 0;
	int b, i;

	assert_int_equal(co_runs_begin(&id, f->st, 0), 0);
	for (b = 0; b < 10; b++) {
		for (i = 0; i < 1000; i++) {
			snprintf(ids[i], sizeof(ids[i]), "T%05d", b * 1000 + i);
			memset(&d[i], 0, sizeof(d[i]));
			d[i].id = ids[i];
			d[i].kind = "task";
			d[i].cls = "missing_in_etcd";
		}
		assert_int_equal(co_runs_add_divergences(f->st, id, d, 1000), 0);
	}
	assert_int_equal(co_runs_divergences(&dl, f->st, id), 0);
	assert_int_equal(dl.n, 10000);
	assert_string_equal(dl.items[0]->id, "T00000");
	assert_string_equal(dl.items[9999]->id, "T09999");
	co_divergence_list_clear(&dl);
}

static void list_gives_the_latest_finished_runs_oldest_first(void **state)
{
	fixture *f = *state;
	co_run_list l = {0};
	int64_t ids[6], unfinished = 0;
	int i;

	for (i = 0; i < 6; i++)
		ids[i] = add_run(f->st, 1000 * (i + 1), i % 2 ? "fail" : "pass", 0.9 + i / 100.0);
	assert_int_equal(co_runs_begin(&unfinished, f->st, 0), 0);

	assert_int_equal(co_runs_list(&l, f->st, 4), 0);
	assert_int_equal(l.n, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(l.items[i]->id, ids[2 + i]);
	assert_string_equal(l.items[3]->verdict, "fail");
	/* Appends. */
	assert_int_equal(co_runs_list(&l, f->st, 100), 0);
	assert_int_equal(l.n, 10);
	assert_int_equal(l.items[4]->id, ids[0]);
	co_run_list_clear(&l);
	co_run_list_clear(&l);
}

static void latest_and_get_report_not_found(void **state)
{
	fixture *f = *state;
	co_run *r = NULL;

	assert_int_equal(co_runs_latest(&r, f->st), CO_ENOTFOUND);
	assert_int_equal(co_runs_get(&r, f->st, 3), CO_ENOTFOUND);
	assert_non_null(strstr(co_error_last(), "3"));
	assert_null(r);
}

static void go_no_go_needs_a_recent_passing_latest_run(void **state)
{
	fixture *f = *state;
	int64_t now = co_state_now_ms(), pass_id, fail_id;
	co_run *r = NULL;

	/* No run at all. */
	assert_int_equal(co_runs_latest_passed_within(&r, f->st, HOUR_MS, now), CO_ENOTFOUND);
	assert_non_null(strstr(co_error_last(), "no reconciliation run"));

	/* A pass ten minutes ago opens the gate for a one-hour window ... */
	pass_id = add_run(f->st, now - 10 * 60 * 1000, "pass", 1.0);
	assert_int_equal(co_runs_latest_passed_within(&r, f->st, HOUR_MS, now), 0);
	assert_non_null(r);
	assert_int_equal(r->id, pass_id);
	co_run_free(r);
	r = NULL;
	assert_int_equal(co_runs_latest_passed_within(NULL, f->st, HOUR_MS, now), 0);

	/* ... but not for a five-minute one. */
	assert_int_equal(co_runs_latest_passed_within(&r, f->st, 5 * 60 * 1000, now),
			 CO_ECONFLICT);
	assert_null(r);
	assert_non_null(strstr(co_error_last(), "older than the go/no-go window"));

	/* A newer failure closes it even though a pass is in the window. */
	fail_id = add_run(f->st, now - 60 * 1000, "fail", 0.5);
	assert_int_equal(co_runs_latest_passed_within(&r, f->st, HOUR_MS, now), CO_ECONFLICT);
	assert_null(r);
	{
		char want[64];

		snprintf(want, sizeof(want), "run %lld failed", (long long)fail_id);
		assert_non_null(strstr(co_error_last(), want));
	}

	/* An unfinished newer run does not count either way. */
	add_run(f->st, now - 30 * 1000, "pass", 1.0);
	assert_int_equal(co_runs_begin(&fail_id, f->st, now), 0);
	assert_int_equal(co_runs_latest_passed_within(NULL, f->st, HOUR_MS, now), 0);

	assert_int_equal(co_runs_latest_passed_within(NULL, f->st, -1, now), CO_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(run_round_trips_with_its_divergences,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(finishing_errors_are_distinguished,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(a_bad_divergence_batch_writes_nothing,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(ten_thousand_divergences_in_batches,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		list_gives_the_latest_finished_runs_oldest_first, co_test_state_setup,
		co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(latest_and_get_report_not_found,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(go_no_go_needs_a_recent_passing_latest_run,
					    co_test_state_setup, co_test_state_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
