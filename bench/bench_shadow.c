/*
 * bench_shadow.c - what shadow sampling saves on a read (issue 14.5).
 *
 * One real etcd, one bare git repo, 50 tasks written at shadow (so both
 * stores hold them, equal), then three routers over the same stores and
 * state dir, at stage shadow, differing only in shadow.sample: 100, 10
 * and 0.  Reads are interleaved one at a time in a rotating order (so
 * load from elsewhere on the machine hits all three alike): N task gets
 * per router, each on a task picked round robin, then N/10 task lists.
 * Printed: p50/p95/p99 per router, and each p50 over sample 0's (git
 * alone: the floor).
 *
 * Usage: bench_shadow [N_gets]   (default 2000)
 */
#include "bench_util.h"
#include "core/error.h"
#include "core/record.h"
#include "core/shadow.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "router/router.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASKS 50
#define N_CFG 3

static const int samples[N_CFG] = {100, 10, 0};

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 2000, i;
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_test_etcd etcd = {0};
	co_store *git = NULL, *es = NULL;
	co_state *st = NULL;
	co_flags_watcher *fw = NULL;
	co_router *r[N_CFG] = {0};
	co_shadow_cfg cfg[N_CFG];
	co_bench_series get[N_CFG], list[N_CFG];
	char repo[256] = "", dir[256] = "", flags_path[320], names[2 * N_CFG][48], id[32];
	const char *eps[1];
	co_flags fl;
	co_stage stage;
	int c, rc = 1;

	if (n == 0)
		n = 1;
	for (c = 0; c < N_CFG; c++) {
		co_shadow_cfg_init(&cfg[c]);
		cfg[c].sample = samples[c];
		snprintf(names[c], sizeof(names[c]), "task_get, shadow sample %d",
			 samples[c]);
		snprintf(names[N_CFG + c], sizeof(names[0]),
			 "task_list (%d tasks), sample %d", TASKS, samples[c]);
		if (co_bench_series_init(&get[c], names[c], n) < 0 ||
		    co_bench_series_init(&list[c], names[N_CFG + c], n / 10 + 1) < 0)
			return 1;
	}
	if (co_test_etcd_start(&etcd) < 0 ||
	    co_test_git_repo_new(repo, sizeof(repo)) < 0 ||
	    co_test_tmpdir(dir, sizeof(dir)) < 0) {
		fprintf(stderr, "bench_shadow: setup failed\n");
		goto done;
	}
	snprintf(flags_path, sizeof(flags_path), "%s/flags.yaml", dir);
	eps[0] = etcd.endpoint;
	go.repo = repo;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = "/bench-shadow/";
	co_flags_init(&fl);
	if (co_git_store_open(&git, &go) < 0 || co_etcd_store_open(&es, &eo) < 0 ||
	    co_state_open(&st, dir) < 0 || co_stage_parse(&stage, "shadow") < 0 ||
	    co_stage_apply(&fl, stage) < 0 || co_flags_save(&fl, flags_path) < 0 ||
	    co_flags_watcher_open(&fw, flags_path) < 0)
		goto fail;
	for (c = 0; c < N_CFG; c++) {
		co_router_opts ro = CO_ROUTER_OPTS_INIT;

		ro.git = git;
		ro.etcd = es;
		ro.state = st;
		ro.flags = fw;
		ro.shadow = &cfg[c];
		if (co_router_open(&r[c], &ro) < 0)
			goto fail;
	}
	for (i = 0; i < TASKS; i++) {
		co_record *t = NULL, *out = NULL;
		int e;

		snprintf(id, sizeof(id), "b-%03zu", i);
		if (co_record_new(&t, CO_KIND_TASK, id) < 0)
			goto fail;
		t->type = strdup("build");
		e = co_router_task_create(&out, r[0], t);
		co_record_free(t);
		co_record_free(out);
		if (e < 0)
			goto fail;
	}
	printf("bench_shadow: stage shadow, %d tasks equal in both stores, %zu gets and "
	       "%zu lists per router, interleaved\n",
	       TASKS, n, n / 10);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "b-%03zu", i % TASKS);
		for (c = 0; c < N_CFG; c++) {
			int k =
			    (int)((i + (size_t)c) % N_CFG); /* rotate who goes first */
			co_record *rec = NULL;
			double t0 = co_bench_now_us();

			if (co_router_get(&rec, r[k], CO_KIND_TASK, id) < 0)
				goto fail;
			co_bench_series_add(&get[k], co_bench_now_us() - t0);
			co_record_free(rec);
		}
		if (i % 10 != 0)
			continue;
		for (c = 0; c < N_CFG; c++) {
			int k = (int)((i / 10 + (size_t)c) % N_CFG);
			co_record_list l = {0};
			double t0 = co_bench_now_us();

			if (co_router_list(&l, r[k], CO_KIND_TASK) < 0)
				goto fail;
			co_bench_series_add(&list[k], co_bench_now_us() - t0);
			co_record_list_clear(&l);
		}
	}
	co_bench_header();
	{
		co_bench_stats gs[N_CFG], ls[N_CFG];

		for (c = 0; c < N_CFG; c++)
			gs[c] = co_bench_row(&get[c]);
		for (c = 0; c < N_CFG; c++)
			ls[c] = co_bench_row(&list[c]);
		for (c = 0; c < N_CFG; c++)
			printf(
			    "sample %3d: get p50 %.2fx, list p50 %.2fx of sample 0's\n",
			    samples[c], gs[c].p50 / gs[N_CFG - 1].p50,
			    ls[c].p50 / ls[N_CFG - 1].p50);
	}
	for (c = 0; c < N_CFG; c++) {
		co_shadow_stats s;

		co_router_shadow_stats(&s, r[c]);
		printf(
		    "sample %3d: task_get compared %llu, skipped %llu, mismatches %llu\n",
		    samples[c], (unsigned long long)s.reads[CO_OP_TASK_GET],
		    (unsigned long long)s.skipped[CO_OP_TASK_GET],
		    (unsigned long long)s.mismatches[CO_OP_TASK_GET]);
	}
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "bench_shadow: %s\n", co_error_last());
done:
	for (c = 0; c < N_CFG; c++) {
		co_router_close(r[c]);
		co_shadow_cfg_clear(&cfg[c]);
		co_bench_series_free(&get[c]);
		co_bench_series_free(&list[c]);
	}
	co_flags_watcher_close(fw);
	co_state_close(st);
	co_store_free(git);
	co_store_free(es);
	co_test_etcd_stop(&etcd);
	if (repo[0])
		co_test_rmrf(repo);
	if (dir[0])
		co_test_rmrf(dir);
	return rc;
}
