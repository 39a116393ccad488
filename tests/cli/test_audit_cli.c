/*
 * test_audit_cli.c - `cutover audit`: the change trail read back.
 *
 * The rows are written by the real binary (stage refused by the gate,
 * stage forced past it, stage through it after a passing run, rollback,
 * resume) against a real bare repository and etcd, then read back through
 * `cutover --json audit` with filters and pages.  "Two hours ago" is made
 * with CUTOVER_CLOCK_OFFSET (the clock the audit stamps), never a sleep.
 */
#include "cli_fixture.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/runs.h"
#include "core/state.h"

#include <cjson/cJSON.h>

/* `cutover --json audit ARGS`: the parsed page (exit 0 asserted). */
static cJSON *audit_page(fx *f, const char *const *args)
{
	const char *argv[24] = {"--json", "audit"};
	char *out = NULL, *err = NULL;
	size_t i;
	int rc;
	cJSON *j;

	for (i = 0; args[i]; i++)
		argv[i + 2] = args[i];
	argv[i + 2] = NULL;
	rc = fx_run_a(f, &out, &err, argv);
	if (rc != 0)
		fail_msg("audit exit %d: %s", rc, err);
	if ((j = cJSON_Parse(out)) == NULL)
		fail_msg("not JSON: %s", out);
	free(out);
	free(err);
	return j;
}

#define page(f, ...) audit_page((f), (const char *[]){__VA_ARGS__, NULL})

static cJSON *rows_of(cJSON *p)
{
	cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "changes");

	assert_true(cJSON_IsArray(a));
	return a;
}

static const char *field(const cJSON *row, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The first row whose action is `action`, or fail. */
static const cJSON *row_with_action(cJSON *p, const char *action)
{
	const cJSON *r;

	cJSON_ArrayForEach(r, rows_of(p)) if (field(r, "action") &&
					      strcmp(field(r, "action"), action) ==
						  0) return r;
	fail_msg("no row with action %s", action);
	return NULL;
}

static void insert_passing_run(fx *f)
{
	co_state *st = NULL;
	co_run run = {0};

	run.started_at = co_state_now_ms() - 1000;
	run.duration_ms = 10;
	run.consistency = 1.0;
	run.verdict = "pass";
	run.action = "none";
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_runs_insert(NULL, st, &run), 0);
	co_state_close(st);
}

static int64_t count_rows(fx *f)
{
	co_audit_change_list l = {0};
	co_state *st = NULL;
	int64_t n;

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_audit_changes_latest(&l, st, 100000), 0);
	n = (int64_t)l.n;
	co_audit_change_list_clear(&l);
	co_state_close(st);
	return n;
}

static void commands_write_rows_that_audit_shows_with_who_and_why(void **state)
{
	fx *f = *state;
	const cJSON *r;
	cJSON *p;

	/* Refused by the gate: no run yet.  Exit 3, and the refusal is a row. */
	fx_expect(3, f, "stage", "shadow", "--reason", "first try");
	fx_expect(0, f, "stage", "shadow", "--force", "--reason", "canary now");
	fx_expect(0, f, "stage", "git", "--reason", "back");
	insert_passing_run(f);
	fx_expect(0, f, "stage", "shadow", "--reason", "through the gate");
	fx_expect(0, f, "rollback", "--reason", "etcd p95 doubled");
	fx_expect(0, f, "resume", "--reason", "etcd fixed");

	p = page(f, "--limit", "100");
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 6);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "next_cursor")));
	assert_string_equal(field(p, "order"), "oldest_first");

	r = row_with_action(p, "gate refused");
	assert_string_equal(field(r, "who"), "tester");
	assert_string_equal(field(r, "kind"), "gate");
	fx_contains(field(r, "detail"), "stage: default git -> shadow");
	fx_contains(field(r, "why"), "no reconciliation run");

	r = cJSON_GetArrayItem(rows_of(p), 1); /* the forced stage */
	assert_string_equal(field(r, "action"), "stage");
	assert_string_equal(field(r, "kind"), "flags");
	assert_string_equal(field(r, "why"), "canary now");
	fx_contains(field(r, "detail"), "forced past");

	r = row_with_action(p, "rollback");
	assert_string_equal(field(r, "who"), "tester");
	assert_string_equal(field(r, "kind"), "trip");
	assert_string_equal(field(r, "why"), "etcd p95 doubled");
	fx_contains(field(r, "detail"), "kill_switch false -> true");
	r = row_with_action(p, "resume");
	assert_string_equal(field(r, "kind"), "resume");
	assert_string_equal(field(r, "why"), "etcd fixed");
	cJSON_Delete(p);

	/* Filters. */
	p = page(f, "--kind", "trip");
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 1);
	assert_string_equal(field(cJSON_GetArrayItem(rows_of(p), 0), "action"),
			    "rollback");
	cJSON_Delete(p);
	p = page(f, "--kind", "gate"); /* the refusal and the forced change */
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 2);
	assert_string_equal(field(cJSON_GetArrayItem(rows_of(p), 0), "action"),
			    "gate refused");
	assert_string_equal(field(cJSON_GetArrayItem(rows_of(p), 1), "why"),
			    "canary now");
	cJSON_Delete(p);
	p = page(f, "--kind", "flags", "--newest");
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 3);
	assert_string_equal(field(cJSON_GetArrayItem(rows_of(p), 0), "why"),
			    "through the gate");
	assert_string_equal(field(p, "order"), "newest_first");
	cJSON_Delete(p);
	/* --op: the changes naming it, and the trip and resume (all ops). */
	p = page(f, "--op", "task_claim", "--kind", "trip");
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 1);
	cJSON_Delete(p);
	p = page(f, "--op", "watch");
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 6);
	cJSON_Delete(p);

	/* The text form says who, what and why on one line per row. */
	{
		char *out = NULL;

		assert_int_equal(fx_run(f, &out, NULL, "audit", "--kind", "trip"), 0);
		fx_contains(out, "trip");
		fx_contains(out, "tester  rollback: kill_switch false -> true");
		fx_contains(out, "(why: etcd p95 doubled)");
		free(out);
	}
}

static void since_and_until_take_rfc3339_and_durations(void **state)
{
	fx *f = *state;
	char when[40], *err = NULL;
	cJSON *p;

	/* One change two hours ago, one now. */
	fx_setenv(f, 0, "CUTOVER_CLOCK_OFFSET=-7200");
	fx_expect(0, f, "rollback", "--reason", "old trip");
	fx_setenv(f, 0, "CUTOVER_CLOCK_OFFSET");
	fx_expect(0, f, "resume", "--reason", "new resume");

	p = page(f, "--since", "1h");
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 1);
	assert_string_equal(field(cJSON_GetArrayItem(rows_of(p), 0), "why"),
			    "new resume");
	cJSON_Delete(p);
	p = page(f, "--until", "90m");
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 1);
	assert_string_equal(field(cJSON_GetArrayItem(rows_of(p), 0), "why"), "old trip");
	cJSON_Delete(p);
	p = page(f, "--since", "1d", "--until", "1h30m");
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 1);
	cJSON_Delete(p);

	/* RFC 3339, in UTC and with an offset: the same instant. */
	co_audit_format_time(when, sizeof(when), co_state_now_ms() - 3600 * 1000);
	p = page(f, "--since", when);
	assert_int_equal(cJSON_GetArraySize(rows_of(p)), 1);
	cJSON_Delete(p);
	{
		int64_t a = 0, b = 0;

		assert_int_equal(co_audit_parse_time(&a, "2026-12-05T18:00:00Z", 0), 0);
		assert_int_equal(
		    co_audit_parse_time(&b, "2026-12-05T19:30:00.000+01:30", 0), 0);
		assert_true(a == b);
		assert_int_equal(co_audit_parse_time(&b, "2026-02-30T00:00:00Z", 0),
				 CO_EINVAL);
	}

	/* A bad time: exit 1 naming the value. */
	assert_int_equal(fx_run(f, NULL, &err, "audit", "--since", "yesterday"), 1);
	fx_contains(err, "--since");
	fx_contains(err, "\"yesterday\"");
	free(err);
}

/* Every seq of a walk with `limit` per page, in order; the count into *n. */
static void walk(fx *f, int64_t *seqs, int *n, const char *limit, int newest,
		 int add_midway)
{
	char cur[32] = "0";
	int pages = 0;

	*n = 0;
	for (;;) {
		cJSON *p = newest ? page(f, "--limit", limit, "--cursor", cur, "--newest")
				  : page(f, "--limit", limit, "--cursor", cur);
		const cJSON *r,
		    *next = cJSON_GetObjectItemCaseSensitive(p, "next_cursor");

		cJSON_ArrayForEach(r, rows_of(p))
		{
			assert_true(*n < 64);
			seqs[(*n)++] = (int64_t)cJSON_GetObjectItemCaseSensitive(r, "seq")
					   ->valuedouble;
		}
		pages++;
		if (add_midway && pages == 1)
			fx_expect(0, f, "rollback", "--reason", "during the walk");
		if (cJSON_IsNull(next)) {
			cJSON_Delete(p);
			break;
		}
		snprintf(cur, sizeof(cur), "%lld", (long long)next->valuedouble);
		cJSON_Delete(p);
	}
}

static void paging_returns_every_row_exactly_once(void **state)
{
	fx *f = *state;
	int64_t seqs[64];
	int n, i, k;

	for (i = 0; i < 4; i++) {
		fx_expect(0, f, "rollback", "--reason", "drill");
		fx_expect(0, f, "resume", "--reason", "drill over");
	}
	/* 8 rows, 3 per page: 3 pages, 1..8 in order, each once. */
	walk(f, seqs, &n, "3", 0, 0);
	assert_int_equal(n, 8);
	for (i = 0; i < n; i++)
		assert_true(seqs[i] == i + 1);
	walk(f, seqs, &n, "3", 1, 0);
	assert_int_equal(n, 8);
	for (i = 0; i < n; i++)
		assert_true(seqs[i] == 8 - i);
	/* A row added during an oldest-first walk lands on a later page, once. */
	walk(f, seqs, &n, "4", 0, 1);
	assert_int_equal(n, 9);
	for (i = 0; i < n; i++)
		for (k = i + 1; k < n; k++)
			assert_true(seqs[i] != seqs[k]);
	/* The last page exactly full: no empty page, no null cursor too early. */
	walk(f, seqs, &n, "9", 0, 0);
	assert_int_equal(n, 9);
}

static void bad_arguments_are_refused_and_change_nothing(void **state)
{
	static const char *const bad[][5] = {
	    {"audit", "--kind", "nonsense", NULL},
	    {"audit", "--op", "task_steal", NULL},
	    {"audit", "--limit", "0", NULL},
	    {"audit", "--limit", "ten", NULL},
	    {"audit", "--cursor", "-1", NULL},
	    {"audit", "--until", "2026-13-01T00:00:00Z", NULL},
	    {"audit", "--since", "1h", "--until", "2h"},
	    {"audit", "--since", NULL},
	    {"audit", "--frobnicate", NULL},
	    {"audit", "extra", NULL},
	};
	static const char *const named[] = {"nonsense",
					    "task_steal",
					    "\"0\"",
					    "\"ten\"",
					    "\"-1\"",
					    "2026-13-01",
					    "before --since \"1h\"",
					    "--since",
					    "--frobnicate",
					    "extra"};
	fx *f = *state;
	size_t i;
	int64_t before;

	fx_expect(0, f, "rollback", "--reason", "one row");
	before = count_rows(f);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[6] = {0};
		char *err = NULL;
		int rc, j;

		for (j = 0; j < 5 && bad[i][j]; j++)
			argv[j] = bad[i][j];
		rc = fx_run_a(f, NULL, &err, argv);
		if (rc != 1)
			fail_msg("case %zu: exit %d: %s", i, rc, err);
		fx_contains(err, named[i]);
		free(err);
	}
	assert_true(count_rows(f) == before);
	/* --help helps. */
	{
		char *out = NULL;

		assert_int_equal(fx_run(f, &out, NULL, "audit", "--help"), 0);
		fx_contains(out, "--since T");
		fx_contains(out, "--cursor C");
		fx_contains(out, "Exit status");
		free(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		commands_write_rows_that_audit_shows_with_who_and_why, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(since_and_until_take_rfc3339_and_durations,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(paging_returns_every_row_exactly_once,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(bad_arguments_are_refused_and_change_nothing,
					    fx_test_setup, fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
