/*
 * router_breakdown.c - bench_router's figure (a), taken apart: the
 * router's claim path in etcd mode timed piece by piece, and (a0) the
 * floor, the bare claim with only the durable outbox entry and fsync that
 * issue 3 asks for.  The head comment of bench_router.c says what each
 * figure is.
 */
#include "router_bench.h"
#include "bench_sync.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "router/router.h"
#include "router/signals.h"
#include "router/triggers.h"
#include "store/etcd_store.h"
#include "store/git_store.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- (a) breakdown of the claim path in etcd mode ---- */

enum { P_ROUTE, P_INTENT, P_SETTLE, P_CLAIM, P_QUEUE, P_ACK, P_WITNESS, P__N };

int breakdown(size_t n)
{
	static const char *const names[P__N] = {
	    "1 flags route (co_router_route)",
	    "2 outbox push: sync intent (no sync)",
	    "3 settle: pending_for(etcd, id)",
	    "4 etcd store claim (range + txn)",
	    "5 record queued for the syncer (JSON)",
	    "6 wait for the WAL fsync covering 2",
	    "7 witness insert (128-op batch, per op)",
	};
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_router *r = NULL;
	co_state *st = NULL;
	co_bench_series s[P__N], total, fsync_s, defer_s;
	co_outbox_fulfil fq[16];
	char *fq_json[16];
	size_t n_fq = 0;
	co_bench_stats stt[P__N], tot;
	bsyncer bs;
	pthread_t bth;
	int bstarted = 0;
	co_audit_op ops[128];
	char dir[256] = "", *json = NULL;
	double sum50 = 0;
	size_t i, j;
	int p, error = -1;

	for (p = 0; p < P__N; p++)
		if (co_bench_series_init(&s[p], names[p], n) < 0)
			return -1;
	if (co_bench_series_init(&total, "  sum of 1-7 per claim", n) < 0 ||
	    co_bench_series_init(&fsync_s, "  (the WAL fsync itself, during 3-5)", n) <
		0 ||
	    co_bench_series_init(&defer_s, "  (deferred fulfil, per record, 16 a txn)",
				 n) < 0)
		return -1;
	memset(&bs, 0, sizeof(bs));
	pthread_mutex_init(&bs.mu, NULL);
	pthread_cond_init(&bs.cv, NULL);
	if (co_test_tmpdir(dir, sizeof(dir)) < 0 || co_state_open(&st, dir) < 0 ||
	    co_state_open(&bs.st, dir) < 0 || create_tasks("D_", n) < 0)
		goto done;
	if (pthread_create(&bth, NULL, bsyncer_main, &bs) != 0)
		goto done;
	bstarted = 1;
	ro.git = gs;
	ro.etcd = es;
	ro.state = st;
	ro.flags = fw;
	ro.witness = 0;
	if (co_router_open(&r, &ro) < 0)
		goto done;
	memset(ops, 0, sizeof(ops));
	for (j = 0; j < 128; j++) {
		ops[j].op = "task_claim";
		ops[j].id = "D_000000";
		ops[j].mode = "etcd";
		ops[j].primary = "etcd";
		ops[j].outcome = "ok";
		ops[j].latency_us = 1000;
	}
	for (i = 0; i < n; i++) {
		co_outbox_list l = {0};
		co_record *out = NULL;
		co_route rt;
		int64_t intent = 0;
		char id[64];
		double t[P__N + 1], all = 0;

		snprintf(id, sizeof(id), "D_%06zu", i);
		t[0] = co_bench_now_us();
		if (co_router_route(&rt, r, CO_OP_TASK_CLAIM, id) < 0)
			goto fail;
		t[1] = co_bench_now_us();
		if (co_outbox_push_intent(&intent, st, "git", "task", id, "@sync:bench") <
		    0)
			goto fail;
		bsyncer_request(&bs);
		t[2] = co_bench_now_us();
		if (co_outbox_pending_for(&l, st, "etcd", "task", id) < 0)
			goto fail;
		co_outbox_list_clear(&l);
		t[3] = co_bench_now_us();
		if (co_store_claim(&out, es, id, "swarm-bench", 0) < 0)
			goto fail;
		t[4] = co_bench_now_us();
		json = co_record_to_json(out, 0);
		co_record_free(out);
		if (json == NULL)
			goto fail;
		fq_json[n_fq] = json;
		fq[n_fq++] = (co_outbox_fulfil){intent, "git", "task", strdup(id), json, 0};
		json = NULL;
		t[5] = co_bench_now_us();
		pthread_mutex_lock(&bs.mu);
		while (bs.done != bs.requested)
			pthread_cond_wait(&bs.cv, &bs.mu);
		co_bench_series_add(&fsync_s, bs.took_us);
		pthread_mutex_unlock(&bs.mu);
		if (bs.failed) {
			co_error_set(CO_EIO, "the group commit's fsync failed");
			goto fail;
		}
		t[6] = co_bench_now_us();
		/* The witness writes 128 ops in one transaction; one op pays
		 * 1/128 of it on average (and the unlucky 128th pays it all). */
		if (i % 128 == 0) {
			double w0 = co_bench_now_us();

			if (co_audit_ops_add(st, ops, 128) < 0)
				goto fail;
			t[7] = (co_bench_now_us() - w0) / 128.0;
		} else {
			t[7] = s[P_WITNESS].n ? s[P_WITNESS].v[s[P_WITNESS].n - 1] : 0;
		}
		for (p = 0; p < P_WITNESS; p++) {
			co_bench_series_add(&s[p], t[p + 1] - t[p]);
			all += t[p + 1] - t[p];
		}
		co_bench_series_add(&s[P_WITNESS], t[7]);
		co_bench_series_add(&total, all + t[7]);
		/* What the router's syncer does later, off the claim's path. */
		if (n_fq == 16 || i + 1 == n) {
			double f0 = co_bench_now_us();
			int fe = co_outbox_fulfil_intents(st, fq, n_fq, 0);
			double per = (co_bench_now_us() - f0) / (double)n_fq;

			for (j = 0; j < n_fq; j++) {
				co_bench_series_add(&defer_s, per);
				free((char *)fq[j].id);
				free(fq_json[j]);
			}
			n_fq = 0;
			if (fe < 0)
				goto fail;
		}
	}
	co_bench_header();
	for (p = 0; p < P__N; p++) {
		stt[p] = co_bench_row(&s[p]);
		sum50 += stt[p].p50;
	}
	tot = co_bench_row(&total);
	co_bench_row(&fsync_s);
	co_bench_row(&defer_s);
	printf("\nshare of the summed p50s (%.3f ms):\n", sum50 / 1e3);
	for (p = 0; p < P__N; p++)
		printf("  %-44s %5.1f%%\n", names[p], 100.0 * stt[p].p50 / sum50);
	printf(
	    "  SQLite outbox on the claim's path (2+3+5+6) p50 %.3f ms vs etcd claim"
	    " p50 %.3f ms\n",
	    (stt[P_INTENT].p50 + stt[P_SETTLE].p50 + stt[P_QUEUE].p50 + stt[P_ACK].p50) /
		1e3,
	    stt[P_CLAIM].p50 / 1e3);
	(void)tot;
	error = 0;
	goto done;
fail:
	fprintf(stderr, "bench: breakdown failed: %s\n", co_error_last());
done:
	free(json);
	for (j = 0; j < n_fq; j++) {
		free((char *)fq[j].id);
		free(fq_json[j]);
	}
	if (bstarted)
		bsyncer_stop(&bs, bth);
	co_state_close(bs.st);
	pthread_cond_destroy(&bs.cv);
	pthread_mutex_destroy(&bs.mu);
	co_router_close(r);
	co_state_close(st);
	if (dir[0])
		co_test_rmrf(dir);
	for (p = 0; p < P__N; p++)
		co_bench_series_free(&s[p]);
	co_bench_series_free(&total);
	co_bench_series_free(&fsync_s);
	co_bench_series_free(&defer_s);
	return error;
}

/* ---- (a0) the floor: what a durable outbox entry alone costs here ---- */

enum { F_BARE, F_PUSH, F_DURABLE, F_ROUTER, F__N };

/*
 * Issue 3 asks both for the bound (p95 <= 1.10x the bare store) and for a
 * write in etcd mode to be acknowledged only once the record owed to git
 * sits in the durable outbox.  The second has a price that no router code
 * can avoid: one outbox row committed before the primary commits (so a
 * crash cannot lose it and another router sees it) and one WAL fsync
 * before the acknowledgement.  Here that minimum is built by hand around
 * the bare store's claim, with no router at all: the push, then the push
 * with its fsync run in parallel with the claim by a syncer thread on its
 * own connection (the group commit's shape), each interleaved with the
 * bare store and the router (drain off, witness on: the drain's git
 * commits would disturb every series).  "router / floor" is what the
 * router costs beyond the minimum the issue's own durability asks for.
 */
int floor_run(size_t n)
{
	static const char *const names[F__N] = {
	    "bare etcd store claim",
	    "floor 1: outbox push, then bare claim",
	    "floor 2: push, bare claim || WAL fsync",
	    "router claim, drain off, witness on",
	};
	static const char tags[F__N] = {'b', 'p', 'd', 'r'};
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_router *r = NULL;
	co_state *st = NULL, *rst = NULL;
	co_bench_series s[F__N];
	co_bench_stats row[F__N];
	bsyncer bs;
	pthread_t bth;
	int bstarted = 0, k, error = -1;
	char dir[256] = "", rdir[256] = "", tag[8];
	size_t i;

	memset(&bs, 0, sizeof(bs));
	pthread_mutex_init(&bs.mu, NULL);
	pthread_cond_init(&bs.cv, NULL);
	for (k = 0; k < F__N; k++)
		if (co_bench_series_init(&s[k], names[k], n) < 0)
			return -1;
	if (co_test_tmpdir(dir, sizeof(dir)) < 0 || co_state_open(&st, dir) < 0 ||
	    co_state_open(&bs.st, dir) < 0 || co_test_tmpdir(rdir, sizeof(rdir)) < 0 ||
	    co_state_open(&rst, rdir) < 0)
		goto fail;
	for (k = 0; k < F__N; k++) {
		snprintf(tag, sizeof(tag), "F%c_", tags[k]);
		if (create_tasks(tag, n) < 0)
			goto done;
	}
	if (pthread_create(&bth, NULL, bsyncer_main, &bs) != 0)
		goto done;
	bstarted = 1;
	ro.git = gs;
	ro.etcd = es;
	ro.state = rst;
	ro.flags = fw;
	ro.background_drain = 0; /* its git commits would disturb every series */
	ro.witness = 1;
	if (co_router_open(&r, &ro) < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		for (k = 0; k < F__N; k++) {
			int which = (int)((i + (size_t)k) % F__N);
			co_record *out = NULL;
			int64_t intent = 0;
			char id[64];
			double t0;
			int e = 0;

			snprintf(id, sizeof(id), "F%c_%06zu", tags[which], i);
			t0 = co_bench_now_us();
			if (which == F_PUSH || which == F_DURABLE)
				e = co_outbox_push_intent(&intent, st, "git", "task", id,
							  "@sync:bench");
			if (e == 0 && which == F_DURABLE)
				bsyncer_request(&bs);
			if (e == 0)
				e = which == F_ROUTER
					? co_router_claim(&out, r, id, "swarm-bench", 0)
					: co_store_claim(&out, es, id, "swarm-bench", 0);
			if (e == 0 && which == F_DURABLE)
				e = bsyncer_wait(&bs);
			co_bench_series_add(&s[which], co_bench_now_us() - t0);
			co_record_free(out);
			/* The router's drain retires its rows; retire these too. */
			if (intent)
				co_outbox_ack_intent(st, intent);
			if (e < 0)
				goto fail;
		}
	}
	co_bench_header();
	for (k = 0; k < F__N; k++)
		row[k] = co_bench_row(&s[k]);
	for (k = F_PUSH; k < F__N; k++)
		ratio_line(names[k], row[k], row[F_BARE]);
	ratio_line("router / floor 2 (the router beyond it)", row[F_ROUTER],
		   row[F_DURABLE]);
	error = 0;
	goto done;
fail:
	fprintf(stderr, "bench: floor: %s\n", co_error_last());
done:
	if (bstarted)
		bsyncer_stop(&bs, bth);
	co_router_close(r);
	co_state_close(bs.st);
	co_state_close(st);
	co_state_close(rst);
	pthread_cond_destroy(&bs.cv);
	pthread_mutex_destroy(&bs.mu);
	if (dir[0])
		co_test_rmrf(dir);
	if (rdir[0])
		co_test_rmrf(rdir);
	for (k = 0; k < F__N; k++)
		co_bench_series_free(&s[k]);
	return error;
}
