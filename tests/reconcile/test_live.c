/*
 * test_live.c - reconciliation under live traffic raises no false alarm.
 *
 * 8 threads create, claim, release and register through the router in
 * dual 50 (each ID's primary picked by its bucket, the other store
 * mirroring, a background thread draining the outbox) while the main
 * thread runs 20 reconciliations against the same stores and state, each
 * draining the outbox first as `cutover reconcile` does.  Every write goes
 * through the router, so the stores only ever differ while a write is in
 * flight: every run must find zero divergences and pass.
 *
 * A last check shows the same setup is not blind: a put sent straight to
 * etcd behind the router's back is found by the next run.
 */
/* clang-format off: cmocka needs these first, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/error.h"
#include "core/record.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "reconcile/reconcile.h"
#include "router/router.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define TASKS 120
#define RUNS 20

typedef struct live {
	char dir[256], repo[256], flags[320], prefix[64];
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
	atomic_int stop;
	atomic_long ops, won;
} live;

static int drain(void *ctx)
{
	int64_t left;

	return co_router_drain(ctx, NULL, 500, &left);
}

typedef struct worker {
	live *l;
	int n;
	unsigned seed;
} worker;

static void *work(void *arg)
{
	worker *w = arg;
	live *l = w->l;
	char swarm[32], id[32];
	int created = 0;

	snprintf(swarm, sizeof(swarm), "swarm-%d", w->n);
	while (!atomic_load(&l->stop)) {
		co_record *out = NULL, *rec = NULL;
		unsigned pick = (unsigned)rand_r(&w->seed);

		snprintf(id, sizeof(id), "L%03u", pick % TASKS);
		if (pick % 10 == 0) {
			/* New tasks and swarm updates keep creation in the mix. */
			snprintf(id, sizeof(id), "N%d-%d", w->n, created++);
			if (co_record_new(&rec, CO_KIND_TASK, id) == 0) {
				rec->type = strdup("build");
				co_router_task_create(&out, l->r, rec);
			}
		} else if (pick % 10 == 1) {
			if (co_record_new(&rec, CO_KIND_SWARM, swarm) == 0) {
				char cap[32];

				snprintf(cap, sizeof(cap), "cap%u", pick % 5);
				co_strv_push(&rec->capabilities, cap);
				co_router_swarm_register(&out, l->r, rec);
			}
		} else if (co_router_claim(&out, l->r, id, swarm, pick % 2 ? 300 : 0) ==
			   0) {
			atomic_fetch_add(&l->won, 1);
			co_record_free(out);
			out = NULL;
			co_router_release(&out, l->r, id, swarm,
					  pick % 7 == 0 ? CO_STATUS_COMPLETE
							: CO_STATUS_AVAILABLE);
		}
		co_record_free(rec);
		co_record_free(out);
		atomic_fetch_add(&l->ops, 1);
	}
	return NULL;
}

static void live_under_dual_50_has_no_false_divergence(void **state)
{
	live l;
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_reconcile_opts o = CO_RECONCILE_OPTS_INIT;
	const char *eps[1] = {co_test_group_etcd.endpoint};
	char sdir[300], id[32];
	pthread_t t[THREADS];
	worker w[THREADS];
	co_flags f;
	long ops_before;
	int i, run;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(co_test_tmpdir(l.dir, sizeof(l.dir)), 0);
	assert_int_equal(co_test_git_repo_new(l.repo, sizeof(l.repo)), 0);
	snprintf(l.flags, sizeof(l.flags), "%s/flags.yaml", l.dir);
	snprintf(l.prefix, sizeof(l.prefix), "/live%d/", (int)getpid());
	snprintf(sdir, sizeof(sdir), "%s/state", l.dir);
	co_flags_init(&f);
	assert_int_equal(co_flags_set_default(&f, CO_MODE_DUAL, 50), 0);
	assert_int_equal(co_flags_save(&f, l.flags), 0);

	go.repo = l.repo;
	go.fsync = 0;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = l.prefix;
	assert_int_equal(co_git_store_open(&l.git, &go), 0);
	assert_int_equal(co_etcd_store_open(&l.etcd, &eo), 0);
	assert_int_equal(co_state_open(&l.st, sdir), 0);
	assert_int_equal(co_flags_watcher_open(&l.fw, l.flags), 0);
	ro.git = l.git;
	ro.etcd = l.etcd;
	ro.state = l.st;
	ro.flags = l.fw;
	ro.background_drain = 1;
	assert_int_equal(co_router_open(&l.r, &ro), 0);

	for (i = 0; i < TASKS; i++) {
		co_record *rec = NULL, *out = NULL;

		snprintf(id, sizeof(id), "L%03d", i);
		assert_int_equal(co_record_new(&rec, CO_KIND_TASK, id), 0);
		rec->type = strdup("build");
		if (co_router_task_create(&out, l.r, rec) < 0)
			fail_msg("create %s: %s", id, co_error_last());
		co_record_free(out);
		co_record_free(rec);
	}

	for (i = 0; i < THREADS; i++) {
		w[i].l = &l;
		w[i].n = i;
		w[i].seed = 1234u + (unsigned)i;
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	o.git = l.git;
	o.etcd = l.etcd;
	o.state = l.st;
	o.flags_path = l.flags;
	o.grace_ms = 100;
	o.drain = drain;
	o.drain_ctx = l.r;
	for (run = 0; run < RUNS; run++) {
		co_reconcile_result *res = NULL;
		size_t k;

		/* Each run sees traffic: wait for some operations to land. */
		ops_before = atomic_load(&l.ops);
		while (atomic_load(&l.ops) < ops_before + 20)
			usleep(1000);
		if (co_reconcile_run(&res, &o) < 0)
			fail_msg("run %d: %s", run, co_error_last());
		for (k = 0; k < res->divergences.n; k++)
			fprintf(stderr,
				"run %d: false divergence %s %s %s [%s]\n  git  %s\n  "
				"etcd %s\n",
				run, res->divergences.items[k]->kind,
				res->divergences.items[k]->id,
				res->divergences.items[k]->cls,
				res->divergences.items[k]->fields,
				res->divergences.items[k]->git_value
				    ? res->divergences.items[k]->git_value
				    : "-",
				res->divergences.items[k]->etcd_value
				    ? res->divergences.items[k]->etcd_value
				    : "-");
		assert_int_equal(res->divergences.n, 0);
		if (strcmp(res->run.verdict, "pass") != 0)
			fprintf(stderr,
				"run %d: %s, owed %lld (etcd %lld, git %lld), oldest "
				"%lld ms\n",
				run, res->run.verdict, (long long)res->run.owed,
				(long long)res->run.owed_etcd,
				(long long)res->run.owed_git,
				(long long)res->run.owed_oldest_ms);
		assert_string_equal(res->run.verdict, "pass");
		assert_true(res->run.total >= TASKS);
		co_reconcile_result_free(res);
	}
	atomic_store(&l.stop, 1);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	fprintf(stderr, "live: %ld operations, %ld claims won during %d runs\n",
		atomic_load(&l.ops), atomic_load(&l.won), RUNS);
	assert_true(atomic_load(&l.won) > 0);
	assert_int_equal(co_flags_load(&f, l.flags), 0);
	assert_int_equal(f.kill_switch, 0);

	/* Not blind: a write behind the router's back is found. */
	{
		co_record *g = NULL;
		co_reconcile_result *res = NULL;

		assert_int_equal(co_store_get(&g, l.git, CO_KIND_TASK, "L000"), 0);
		free(g->type);
		g->type = strdup("sabotaged");
		g->rev += 100;
		assert_int_equal(co_store_put(l.etcd, g), 0);
		co_record_free(g);
		o.no_rollback = 1;
		assert_int_equal(co_reconcile_run(&res, &o), 0);
		assert_int_equal(res->divergences.n, 1);
		assert_string_equal(res->divergences.items[0]->id, "L000");
		assert_non_null(strstr(res->divergences.items[0]->fields, "type"));
		co_reconcile_result_free(res);
	}

	co_router_drain(l.r, NULL, 5000, NULL);
	co_router_close(l.r);
	co_flags_watcher_close(l.fw);
	co_state_close(l.st);
	co_store_free(l.etcd);
	co_store_free(l.git);
	co_test_rmrf(l.repo);
	co_test_rmrf(l.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(live_under_dual_50_has_no_false_divergence),
	};

	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
