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

#include <sqlite3.h>
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

static co_owed *owed_item(const char *target, const char *kind, const char *id,
			  int64_t since)
{
	co_owed *o = calloc(1, sizeof(*o));

	assert_non_null(o);
	o->target = strdup(target);
	o->kind = strdup(kind);
	o->id = strdup(id);
	o->since = since;
	return o;
}

static void owed_push(co_run *r, co_owed *o)
{
	if (r->owed_list.n == r->owed_list.cap) {
		r->owed_list.cap = r->owed_list.cap ? 2 * r->owed_list.cap : 4;
		r->owed_list.items =
		    realloc(r->owed_list.items, r->owed_list.cap * sizeof(co_owed *));
		assert_non_null(r->owed_list.items);
	}
	r->owed_list.items[r->owed_list.n++] = o;
}

static void pending_drain_run_round_trips_with_what_it_owed(void **state)
{
	fixture *f = *state;
	co_run fin = {0}, *r = NULL;
	const co_owed *old;
	int64_t id = 0;

	assert_int_equal(co_runs_begin(&id, f->st, 1000), 0);
	fin.id = id;
	fin.total = 10;
	fin.equal = 7;
	fin.consistency = 0.7;
	fin.verdict = "pending_drain";
	fin.action = "none";
	/* pending_drain without anything owed is a contradiction. */
	assert_int_equal(co_runs_finish(f->st, &fin), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "pending_drain"));

	fin.owed = 3;
	fin.owed_etcd = 3;
	fin.owed_git = 1;
	fin.owed_oldest_ms = 4100;
	owed_push(&fin, owed_item("etcd", "task", "T9", 500));
	owed_push(&fin, owed_item("etcd", "task", "T1", 200));
	owed_push(&fin, owed_item("git", "swarm", "S1", 900));
	owed_push(&fin, owed_item("etcd", "swarm", "S1", 300));
	/* A bad item refuses the finish as a whole: the run stays open. */
	owed_push(&fin, owed_item("etcd", "task", "T1", 1));
	assert_int_equal(co_runs_finish(f->st, &fin), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "twice"));
	assert_int_equal(co_runs_latest(&r, f->st), CO_ENOTFOUND);
	co_owed_free(fin.owed_list.items[--fin.owed_list.n]);
	owed_push(&fin, owed_item("nowhere", "task", "T2", 1));
	assert_int_equal(co_runs_finish(f->st, &fin), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "nowhere"));
	co_owed_free(fin.owed_list.items[--fin.owed_list.n]);
	assert_int_equal(co_runs_finish(f->st, &fin), 0);
	co_owed_list_clear(&fin.owed_list);

	assert_int_equal(co_runs_latest(&r, f->st), 0);
	assert_string_equal(r->verdict, "pending_drain");
	assert_int_equal(r->owed, 3);
	assert_int_equal(r->owed_etcd, 3);
	assert_int_equal(r->owed_git, 1);
	assert_int_equal(r->owed_oldest_ms, 4100);
	/* Tasks then swarms, by id, then store. */
	assert_int_equal(r->owed_list.n, 4);
	assert_string_equal(r->owed_list.items[0]->id, "T1");
	assert_string_equal(r->owed_list.items[1]->id, "T9");
	assert_string_equal(r->owed_list.items[2]->id, "S1");
	assert_string_equal(r->owed_list.items[2]->target, "etcd");
	assert_string_equal(r->owed_list.items[3]->target, "git");
	assert_int_equal(r->owed_list.items[3]->since, 900);
	old = co_run_oldest_owed(r);
	assert_non_null(old);
	assert_string_equal(old->id, "T1");
	co_run_free(r);
	r = NULL;
	assert_int_equal(co_runs_get(&r, f->st, id), 0);
	assert_int_equal(r->owed_list.n, 4);
	co_run_free(r);
	assert_null(co_run_oldest_owed(NULL));
}

static void go_no_go_refuses_a_pending_drain_run_naming_the_oldest_owed(void **state)
{
	fixture *f = *state;
	int64_t now = co_state_now_ms();
	co_run fin = {.started_at = now - 1000, .duration_ms = 100, .total = 4,
		      .equal = 3, .consistency = 0.75, .verdict = "pending_drain",
		      .action = "none", .owed = 1, .owed_etcd = 1,
		      .owed_oldest_ms = 4100};
	co_run *r = NULL;

	add_run(f->st, now - 5000, "pass", 1.0);
	owed_push(&fin, owed_item("etcd", "task", "T7", now - 5000));
	assert_int_equal(co_runs_insert(NULL, f->st, &fin), 0);
	co_owed_list_clear(&fin.owed_list);
	assert_int_equal(co_runs_latest_passed_within(&r, f->st, HOUR_MS, now),
			 CO_ECONFLICT);
	assert_null(r);
	assert_non_null(strstr(co_error_last(), "pending_drain"));
	assert_non_null(strstr(co_error_last(), "owed 1 acknowledged write "));
	assert_non_null(strstr(co_error_last(), "task T7"));
}

/* The schema of version 2's reconciliation tables exactly as state.c created
 * them (on top of version 1's, which test_state.c checks). */
static const char v2_runs_schema[] =
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL,"
    " kind TEXT NOT NULL, id TEXT NOT NULL, payload TEXT, created_at INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,"
    " last_error TEXT);"
    "CREATE INDEX outbox_key ON outbox (target, kind, id, seq);"
    "CREATE TABLE audit_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts INTEGER NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL, detail TEXT,"
    " why TEXT);"
    "CREATE TABLE audit_ops (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts INTEGER NOT NULL, op TEXT NOT NULL, id TEXT, mode TEXT,"
    " primary_store TEXT, outcome TEXT NOT NULL, latency_us INTEGER NOT NULL,"
    " error TEXT);"
    "CREATE TABLE audit_mismatches (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts INTEGER NOT NULL, op TEXT NOT NULL, id TEXT, git_value TEXT,"
    " etcd_value TEXT);"
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " started_at INTEGER NOT NULL,"
    " duration_ms INTEGER NOT NULL DEFAULT 0,"
    " total INTEGER NOT NULL DEFAULT 0,"
    " equal INTEGER NOT NULL DEFAULT 0,"
    " missing_in_etcd INTEGER NOT NULL DEFAULT 0,"
    " missing_in_git INTEGER NOT NULL DEFAULT 0,"
    " mismatch INTEGER NOT NULL DEFAULT 0,"
    " consistency REAL NOT NULL DEFAULT 0,"
    " verdict TEXT CHECK (verdict IS NULL OR verdict IN ('pass', 'fail')),"
    " action TEXT,"
    " error TEXT);"
    "CREATE TABLE divergences ("
    " run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
    " id TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('task', 'swarm')),"
    " class TEXT NOT NULL"
    "  CHECK (class IN ('missing_in_etcd', 'missing_in_git', 'mismatch')),"
    " fields TEXT NOT NULL DEFAULT '',"
    " git_value TEXT,"
    " etcd_value TEXT,"
    " PRIMARY KEY (run, kind, id)) WITHOUT ROWID;"
    "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    /* Two finished runs and one in progress; run 4 was the last ever made
     * (say, removed by hand): numbers must not be reused. */
    "INSERT INTO runs VALUES (1, 1000, 10, 5, 5, 0, 0, 0, 1.0, 'pass', 'none', NULL);"
    "INSERT INTO runs VALUES (2, 2000, 20, 5, 4, 0, 0, 1, 0.8, 'fail',"
    " 'kill_switch', NULL);"
    "INSERT INTO runs (id, started_at) VALUES (3, 3000);"
    "UPDATE sqlite_sequence SET seq = 4 WHERE name = 'runs';"
    "INSERT INTO divergences VALUES (2, 'R5', 'task', 'mismatch', 'status',"
    " '{\"a\":1}', '{\"a\":2}');"
    "PRAGMA user_version = 2;";

static void version_2_runs_are_read_after_the_upgrade(void **state)
{
	char dir[256], path[300];
	sqlite3 *db = NULL;
	co_state *st = NULL;
	co_run *r = NULL;
	co_run_list l = {0};
	co_divergence_list dl = {0};
	co_run fin = {.started_at = 5000, .total = 2, .equal = 1, .consistency = 0.5,
		      .verdict = "pending_drain", .action = "none", .owed = 1,
		      .owed_git = 1};
	int64_t id = 0;
	int v = 0;

	(void)state;
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, CO_STATE_DB_NAME);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v2_runs_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(co_state_open(&st, dir), 0);
	assert_int_equal(co_state_version(&v, st), 0);
	assert_int_equal(v, CO_STATE_SCHEMA_VERSION);

	/* The old runs read as they were, owing nothing. */
	assert_int_equal(co_runs_latest(&r, st), 0);
	assert_int_equal(r->id, 2);
	assert_string_equal(r->verdict, "fail");
	assert_string_equal(r->action, "kill_switch");
	assert_int_equal(r->mismatch, 1);
	assert_int_equal(r->owed, 0);
	assert_int_equal(r->owed_list.n, 0);
	co_run_free(r);
	r = NULL;
	assert_int_equal(co_runs_get(&r, st, 3), 0);
	assert_null(r->verdict);
	co_run_free(r);
	assert_int_equal(co_runs_list(&l, st, 10), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0]->verdict, "pass");
	co_run_list_clear(&l);
	assert_int_equal(co_runs_divergences(&dl, st, 2), 0);
	assert_int_equal(dl.n, 1);
	assert_string_equal(dl.items[0]->id, "R5");
	assert_string_equal(dl.items[0]->etcd_value, "{\"a\":2}");
	co_divergence_list_clear(&dl);

	/* New runs take new numbers and the new verdict; divergences still
	 * need their run. */
	owed_push(&fin, owed_item("git", "task", "T3", 4000));
	assert_int_equal(co_runs_insert(&id, st, &fin), 0);
	co_owed_list_clear(&fin.owed_list);
	assert_int_equal(id, 5);
	assert_int_equal(co_runs_latest(&r, st), 0);
	assert_string_equal(r->verdict, "pending_drain");
	assert_int_equal(r->owed_list.n, 1);
	co_run_free(r);
	{
		co_divergence d = {.id = "X", .kind = "task", .cls = "mismatch"};

		assert_int_equal(co_runs_add_divergences(st, 99, &d, 1), CO_ENOTFOUND);
		assert_int_equal(co_runs_add_divergences(st, 3, &d, 1), 0);
	}
	co_state_close(st);

	/* And it opens again as it is. */
	assert_int_equal(co_state_open(&st, dir), 0);
	assert_int_equal(co_runs_get(&r, st, 2), 0);
	assert_string_equal(r->verdict, "fail");
	co_run_free(r);
	co_state_close(st);
	co_test_rmrf(dir);
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
	    cmocka_unit_test_setup_teardown(pending_drain_run_round_trips_with_what_it_owed,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		go_no_go_refuses_a_pending_drain_run_naming_the_oldest_owed,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test(version_2_runs_are_read_after_the_upgrade),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
