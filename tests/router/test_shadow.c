/*
 * test_shadow.c - shadow read quality through the router against a real
 * etcd and a real bare git repo (core/shadow.h, issue 14.5): sample 0
 * compares nothing and never reads etcd, 100 compares every read, 50 and
 * 10 compare exactly the reads the deterministic rule names, a difference
 * only in an ignored field is not a mismatch while one elsewhere is
 * (recorded with both values), and the router's counters match what
 * happened, in a running serve's /metrics too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/audit.h"
#include "core/config.h"
#include "core/error.h"
#include "core/record.h"
#include "core/shadow.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "router/router.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TASKS 4
#define GIT_META "{\"build\":{\"host\":\"git-1\"},\"note\":\"same\"}"

static int prefix_seq;

typedef struct fx {
	char repo[256], dir[256], flags_path[320], prefix[64];
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
	co_shadow_cfg cfg;
} fx;

static void set_stage(fx *f, const char *stage)
{
	co_flags fl;
	co_stage s;

	co_flags_init(&fl);
	assert_int_equal(co_stage_parse(&s, stage), 0);
	assert_int_equal(co_stage_apply(&fl, s), 0);
	assert_int_equal(co_flags_save(&fl, f->flags_path), 0);
	assert_int_equal(co_flags_watcher_reload(f->fw), 0);
}

/* Put etcd's copy of task `id` back with `meta` as its metadata: a record
 * the two stores disagree on, as a buggy writer would leave it. */
static void etcd_set_meta(fx *f, const char *id, const char *meta)
{
	co_record *rec = NULL;

	assert_int_equal(co_store_get(&rec, f->etcd, CO_KIND_TASK, id), 0);
	assert_int_equal(co_record_set_metadata(rec, meta), 0);
	assert_int_equal(co_store_put(f->etcd, rec), 0);
	co_record_free(rec);
}

/*
 * A router at shadow over fresh stores holding TASKS tasks t-0.. in both,
 * the same in both; then t-1 differs only in metadata.build.host and t-2
 * also in metadata.note.  `ignore` (may be NULL) is shadow.ignore.
 */
static void fx_open(fx *f, int sample, int list_sample, const char *ignore)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	const char *eps[1] = {co_test_group_etcd.endpoint};
	co_flags fl;
	char id[32];

	memset(f, 0, sizeof(*f));
	co_shadow_cfg_init(&f->cfg);
	f->cfg.sample = sample;
	f->cfg.sample_op[CO_OP_TASK_LIST] = list_sample;
	if (ignore)
		assert_int_equal(co_shadow_cfg_set_ignore(&f->cfg, &ignore, 1), 0);
	assert_int_equal(co_test_git_repo_new(f->repo, sizeof(f->repo)), 0);
	assert_int_equal(co_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	snprintf(f->flags_path, sizeof(f->flags_path), "%s/flags.yaml", f->dir);
	snprintf(f->prefix, sizeof(f->prefix), "/sq%d-%d/", (int)getpid(), ++prefix_seq);
	go.repo = f->repo;
	go.poll_interval_ms = 50;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = f->prefix;
	eo.request_timeout_ms = 2000;
	assert_int_equal(co_git_store_open(&f->git, &go), 0);
	assert_int_equal(co_etcd_store_open(&f->etcd, &eo), 0);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	co_flags_init(&fl);
	assert_int_equal(co_flags_save(&fl, f->flags_path), 0);
	assert_int_equal(co_flags_watcher_open(&f->fw, f->flags_path), 0);
	/* the tasks are written at shadow, so both stores hold them */
	set_stage(f, "shadow");
	ro.git = f->git;
	ro.etcd = f->etcd;
	ro.state = f->st;
	ro.flags = f->fw;
	ro.shadow = &f->cfg;
	assert_int_equal(co_router_open(&f->r, &ro), 0);
	for (int t = 0; t < TASKS; t++) {
		co_record *rec = NULL, *out = NULL, *e = NULL;

		snprintf(id, sizeof(id), "t-%d", t);
		assert_int_equal(co_record_new(&rec, CO_KIND_TASK, id), 0);
		rec->type = strdup("build");
		assert_int_equal(co_record_set_metadata(rec, GIT_META), 0);
		assert_int_equal(co_router_task_create(&out, f->r, rec), 0);
		/* mirrored synchronously at shadow: etcd has it already */
		assert_int_equal(co_store_get(&e, f->etcd, CO_KIND_TASK, id), 0);
		assert_true(co_record_equal(out, e));
		co_record_free(rec);
		co_record_free(out);
		co_record_free(e);
	}
	etcd_set_meta(f, "t-1", "{\"build\":{\"host\":\"etcd-7\"},\"note\":\"same\"}");
	etcd_set_meta(f, "t-2",
		      "{\"build\":{\"host\":\"etcd-7\"},\"note\":\"etcd says\"}");
}

static void fx_close(fx *f)
{
	co_router_close(f->r);
	co_flags_watcher_close(f->fw);
	co_state_close(f->st);
	co_store_free(f->git);
	co_store_free(f->etcd);
	co_shadow_cfg_clear(&f->cfg);
	co_test_rmrf(f->repo);
	co_test_rmrf(f->dir);
}

/* Calls the etcd store let through so far (its breaker's count). */
static uint64_t etcd_calls(fx *f)
{
	co_breaker_info bi;

	co_store_breaker_get(&bi, f->etcd);
	return bi.calls_total;
}

static void get_n(fx *f, const char *id, int n)
{
	for (int i = 0; i < n; i++) {
		co_record *rec = NULL;

		assert_int_equal(co_router_get(&rec, f->r, CO_KIND_TASK, id), 0);
		/* git serves, whatever etcd holds */
		assert_string_equal(rec->metadata, GIT_META);
		co_record_free(rec);
	}
}

static void list_n(fx *f, int n)
{
	for (int i = 0; i < n; i++) {
		co_record_list l = {0};

		assert_int_equal(co_router_list(&l, f->r, CO_KIND_TASK), 0);
		assert_int_equal(l.n, TASKS);
		co_record_list_clear(&l);
	}
}

/* Mismatch rows recorded for op (and id, when not NULL). */
static size_t rows(fx *f, const char *op, const char *id)
{
	co_audit_mismatch_list l = {0};
	size_t n = 0;

	assert_int_equal(co_audit_mismatches_latest(&l, f->st, 100000), 0);
	for (size_t i = 0; i < l.n; i++)
		if (strcmp(l.items[i]->op, op) == 0 &&
		    (!id || strcmp(l.items[i]->id, id) == 0))
			n++;
	co_audit_mismatch_list_clear(&l);
	return n;
}

/* How many of n reads the rule compares at percent p. */
static uint64_t compared_of(int n, int p)
{
	uint64_t c = 0;

	for (int k = 0; k < n; k++)
		c += (uint64_t)co_shadow_sampled((uint64_t)k, p);
	return c;
}

static void sample_0_compares_nothing_and_never_reads_etcd(void **state)
{
	co_shadow_stats st;
	uint64_t before;
	fx f;

	(void)state;
	fx_open(&f, 0, -1, NULL);
	before = etcd_calls(&f);
	get_n(&f, "t-2", 20);
	get_n(&f, "t-0", 5);
	list_n(&f, 6);
	/* not one call reached etcd, and nothing was recorded */
	assert_int_equal(etcd_calls(&f), before);
	assert_int_equal(rows(&f, "task_get", NULL), 0);
	assert_int_equal(rows(&f, "task_list", NULL), 0);
	co_router_shadow_stats(&st, f.r);
	assert_int_equal(st.reads[CO_OP_TASK_GET], 0);
	assert_int_equal(st.skipped[CO_OP_TASK_GET], 25);
	assert_int_equal(st.reads[CO_OP_TASK_LIST], 0);
	assert_int_equal(st.skipped[CO_OP_TASK_LIST], 6);
	assert_int_equal(st.mismatches[CO_OP_TASK_GET], 0);
	fx_close(&f);
}

static void sample_100_compares_every_read(void **state)
{
	co_shadow_stats st;
	uint64_t before;
	fx f;

	(void)state;
	fx_open(&f, 100, -1, NULL);
	before = etcd_calls(&f);
	get_n(&f, "t-2", 20);
	get_n(&f, "t-0", 5);
	list_n(&f, 3);
	/* each get read etcd once; each list at least once */
	assert_true(etcd_calls(&f) - before >= 25 + 3);
	co_router_shadow_stats(&st, f.r);
	assert_int_equal(st.reads[CO_OP_TASK_GET], 25);
	assert_int_equal(st.skipped[CO_OP_TASK_GET], 0);
	/* t-2 differs on every read, t-0 never (nothing is ignored here) */
	assert_int_equal(st.mismatches[CO_OP_TASK_GET], 20);
	assert_int_equal(rows(&f, "task_get", "t-2"), 20);
	assert_int_equal(rows(&f, "task_get", "t-0"), 0);
	/* a list: one mismatching read, a row per differing ID (t-1, t-2) */
	assert_int_equal(st.reads[CO_OP_TASK_LIST], 3);
	assert_int_equal(st.mismatches[CO_OP_TASK_LIST], 3);
	assert_int_equal(rows(&f, "task_list", NULL), 6);
	assert_int_equal(st.errors[CO_OP_TASK_GET] + st.errors[CO_OP_TASK_LIST], 0);
	fx_close(&f);
}

static void sample_50_compares_exactly_the_reads_the_rule_names(void **state)
{
	co_shadow_stats st;
	uint64_t before, want_get = compared_of(21, 50), want_list = compared_of(25, 10);
	fx f;

	(void)state;
	/* 50 for every read op, 10 for task_list */
	fx_open(&f, 50, 10, NULL);
	assert_int_equal(want_get, 11); /* reads 0, 2, ... 20 */
	assert_int_equal(want_list, 3); /* reads 0, 10, 20 */
	before = etcd_calls(&f);
	get_n(&f, "t-2", 21);
	co_router_shadow_stats(&st, f.r);
	assert_int_equal(st.reads[CO_OP_TASK_GET], want_get);
	assert_int_equal(st.skipped[CO_OP_TASK_GET], 21 - want_get);
	assert_int_equal(st.mismatches[CO_OP_TASK_GET], want_get);
	assert_int_equal(rows(&f, "task_get", "t-2"), want_get);
	/* only the compared reads touched etcd, once each */
	assert_int_equal(etcd_calls(&f) - before, want_get);
	list_n(&f, 25);
	co_router_shadow_stats(&st, f.r);
	assert_int_equal(st.reads[CO_OP_TASK_LIST], want_list);
	assert_int_equal(st.skipped[CO_OP_TASK_LIST], 25 - want_list);
	assert_int_equal(st.mismatches[CO_OP_TASK_LIST], want_list);
	assert_int_equal(rows(&f, "task_list", NULL), 2 * want_list);
	fx_close(&f);
}

static void difference_only_in_an_ignored_path_is_not_a_mismatch(void **state)
{
	co_audit_mismatch_list l = {0};
	co_shadow_stats st;
	fx f;

	(void)state;
	fx_open(&f, 100, -1, "metadata.build.host");
	/* t-1 differs only in the ignored host: not a mismatch */
	get_n(&f, "t-1", 4);
	co_router_shadow_stats(&st, f.r);
	assert_int_equal(st.reads[CO_OP_TASK_GET], 4);
	assert_int_equal(st.mismatches[CO_OP_TASK_GET], 0);
	assert_int_equal(rows(&f, "task_get", NULL), 0);
	/* t-2 also differs in note: a mismatch, recorded with both values */
	get_n(&f, "t-2", 3);
	co_router_shadow_stats(&st, f.r);
	assert_int_equal(st.reads[CO_OP_TASK_GET], 7);
	assert_int_equal(st.mismatches[CO_OP_TASK_GET], 3);
	assert_int_equal(rows(&f, "task_get", "t-2"), 3);
	assert_int_equal(co_audit_mismatches_latest(&l, f.st, 1), 0);
	assert_int_equal(l.n, 1);
	assert_non_null(l.items[0]->git_value);
	assert_non_null(l.items[0]->etcd_value);
	assert_non_null(strstr(l.items[0]->git_value, "\"note\":\"same\""));
	assert_non_null(strstr(l.items[0]->etcd_value, "\"note\":\"etcd says\""));
	/* whole values: the ignored field is kept in the row */
	assert_non_null(strstr(l.items[0]->etcd_value, "etcd-7"));
	co_audit_mismatch_list_clear(&l);
	/* a list: only t-2 is recorded */
	list_n(&f, 2);
	co_router_shadow_stats(&st, f.r);
	assert_int_equal(st.mismatches[CO_OP_TASK_LIST], 2);
	assert_int_equal(rows(&f, "task_list", "t-2"), 2);
	assert_int_equal(rows(&f, "task_list", "t-1"), 0);
	fx_close(&f);
}

/* A running serve's /metrics carries the router's shadow counters. */
static void serve_metrics_count_compared_skipped_and_mismatched_reads(void **state)
{
	static const char *const want[] = {
	    "cutover_shadow_reads_total{op=\"task_get\"} 5\n",
	    "cutover_shadow_skipped_total{op=\"task_get\"} 5\n",
	    "cutover_shadow_mismatches_total{op=\"task_get\"} 5\n",
	    "cutover_shadow_errors_total{op=\"task_get\"} 0\n",
	    "cutover_shadow_reads_total{op=\"task_list\"} 0\n",
	    "cutover_shadow_skipped_total{op=\"swarm_get\"} 0\n",
	    "# TYPE cutover_shadow_mismatches_total counter\n",
	};
	co_test_serve_opts so = {0};
	co_shadow_cfg cfg;
	co_test_serve sv;
	co_test_resp rp;
	co_record *rec = NULL, *out = NULL;
	char prefix[64];

	(void)state;
	co_shadow_cfg_init(&cfg);
	cfg.sample = 50;
	snprintf(prefix, sizeof(prefix), "/sqm%d/", (int)getpid());
	so.endpoint = co_test_group_etcd.endpoint;
	so.prefix = prefix;
	so.stage = "shadow";
	so.shadow = &cfg;
	assert_int_equal(co_test_serve_open(&sv, &so), 0);
	assert_int_equal(co_record_new(&rec, CO_KIND_TASK, "m-1"), 0);
	rec->type = strdup("build");
	assert_int_equal(co_router_task_create(&out, sv.r, rec), 0);
	co_record_free(out);
	out = NULL;
	/* etcd's copy differs: every compared read is a mismatch */
	assert_int_equal(co_store_get(&out, sv.etcd, CO_KIND_TASK, "m-1"), 0);
	assert_int_equal(co_record_set_metadata(out, "{\"note\":\"etcd\"}"), 0);
	assert_int_equal(co_store_put(sv.etcd, out), 0);
	co_record_free(out);
	co_record_free(rec);
	for (int i = 0; i < 10; i++) {
		out = NULL;
		assert_int_equal(co_router_get(&out, sv.r, CO_KIND_TASK, "m-1"), 0);
		co_record_free(out);
	}
	co_test_http(&rp, sv.base, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(rp.status, 200);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(rp.body, want[i]) == NULL)
			fail_msg("/metrics lacks %s in:\n%s", want[i], rp.body);
	free(rp.body);
	co_test_serve_close(&sv);
	co_shadow_cfg_clear(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sample_0_compares_nothing_and_never_reads_etcd),
	    cmocka_unit_test(sample_100_compares_every_read),
	    cmocka_unit_test(sample_50_compares_exactly_the_reads_the_rule_names),
	    cmocka_unit_test(difference_only_in_an_ignored_path_is_not_a_mismatch),
	    cmocka_unit_test(serve_metrics_count_compared_skipped_and_mismatched_reads),
	};

	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
