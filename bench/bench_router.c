/*
 * bench_router.c - what the router costs on a claim, and how fast the kill
 * switch reaches a running router.
 *
 * Issue 3 asks for two figures, measured side by side in one run:
 *
 * (a) claim latency through the router in stage `etcd` against the bare
 *     etcd store (goal: router p95 at most 1.10x the bare store's).  Router
 *     and bare claims are interleaved, one at a time, each on a fresh task,
 *     in three configurations: background drain off with the witness log
 *     on, drain off with the witness off, drain on with the witness on,
 *     beside an A/A control (the bare store again, interleaved too: the
 *     ratio that noise alone gives in the same run).  Each
 *     configuration has its own state dir, so that one's outbox backlog does
 *     not become the next one's drain work.  Then the router's claim path in
 *     etcd mode is taken apart and its pieces timed on their own, in the
 *     order router.c runs them: flags route, outbox push of the "sync"
 *     intent (no sync), settle (pending entries for the ID), the store
 *     claim, the record owed to git queued for the syncer (which writes
 *     the queue later, off the path; its cost per record is shown apart), the
 *     wait for the group commit's WAL fsync that covers the intent (asked
 *     for right after the intent's push, run by a syncer thread on its own
 *     connection while steps 3-5 go on; its own duration is shown on a
 *     separate line), and the witness log's batched insert (per op).
 *     Last, throughput: 8 threads claiming distinct tasks through the
 *     router and through the bare store.
 *
 * (a0) the floor: the bare store's claim with what the issue's own
 *     durability asks of any router in etcd mode and nothing else (an
 *     outbox row pushed before the claim; that row and a WAL fsync run in
 *     parallel with the claim, waited for), interleaved with the bare store
 *     and the router: how far above the bare store the floor sits on this
 *     machine, and how far the router sits above the floor.
 *
 * (b) kill-switch propagation: a router runs with a thread calling
 *     co_router_route() in a tight loop; the main thread flips kill_switch
 *     in the flags file with co_flags_save() 50 times and takes the time
 *     from the start of the save until the spinning thread sees the new
 *     value.  Nothing calls co_flags_watcher_reload(): the change must come
 *     in through the watcher (inotify, or its 50 ms stat poll).
 *
 * (c) the live-signal triggers (issue 14.1): claims through a router with
 *     the triggers on (every op recorded in the window, the evaluator
 *     thread running once a second) and through one with them off, plus a
 *     second "off" router as the A/A control, interleaved one claim at a
 *     time in a rotating order, each router on its own state dir, stage
 *     etcd.  Goal: p50 on / off < 1.02x.
 *
 * Usage: bench_router [N_claims_per_config [N_breakdown [flips [triggers]]]]
 *        (defaults 1000, 500, 50; a fourth argument "triggers" runs (c) only)
 *
 * The breakdown of (a) and the floor (a0) are router_breakdown.c's; the
 * shared setup and helpers router_util.c's (router_bench.h).
 */
#include "bench_util.h"
#include "router_bench.h"

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

/* ---- (a) router against bare store ---- */

typedef struct config {
	const char *name;
	int drain, witness;
} config;

static int run_config(const config *c, int idx, size_t n, co_bench_stats *router_st,
		      co_bench_stats *bare_st, co_bench_stats *bare2_st,
		      int64_t *depth_after)
{
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_router *r = NULL;
	co_state *st = NULL;
	char dir[256] = "", rtag[8], btag[8], ctag[8], rname[96], bname[96];
	co_bench_series sr, sb, sc;
	size_t i;
	int error = -1;

	snprintf(rtag, sizeof(rtag), "R%d_", idx);
	snprintf(btag, sizeof(btag), "B%d_", idx);
	snprintf(ctag, sizeof(ctag), "C%d_", idx);
	snprintf(rname, sizeof(rname), "router claim, %s", c->name);
	snprintf(bname, sizeof(bname), "bare etcd store claim (same run)");
	if (co_bench_series_init(&sr, rname, n) < 0 ||
	    co_bench_series_init(&sb, bname, n) < 0 ||
	    co_bench_series_init(&sc, "bare etcd store claim again (A/A control)", n) < 0)
		return -1;
	if (co_test_tmpdir(dir, sizeof(dir)) < 0 || co_state_open(&st, dir) < 0) {
		fprintf(stderr, "bench: state: %s\n", co_error_last());
		goto done;
	}
	if (create_tasks(rtag, n) < 0 || create_tasks(btag, n) < 0 ||
	    create_tasks(ctag, n) < 0)
		goto done;
	ro.git = gs;
	ro.etcd = es;
	ro.state = st;
	ro.flags = fw;
	ro.background_drain = c->drain;
	ro.witness = c->witness;
	if (co_router_open(&r, &ro) < 0) {
		fprintf(stderr, "bench: router: %s\n", co_error_last());
		goto done;
	}
	for (i = 0; i < n; i++) {
		int k;

		/* router, bare, bare again: in a rotating order */
		for (k = 0; k < 3; k++) {
			int which = (int)((i + (size_t)k) % 3);
			co_bench_series *into = which == 0 ? &sr : which == 1 ? &sb : &sc;
			co_record *out = NULL;
			char id[64];
			double t0;
			int e;

			snprintf(id, sizeof(id), "%s%06zu",
				 which == 0   ? rtag
				 : which == 1 ? btag
					      : ctag,
				 i);
			t0 = co_bench_now_us();
			e = which == 0 ? co_router_claim(&out, r, id, "swarm-bench", 0)
				       : co_store_claim(&out, es, id, "swarm-bench", 0);
			co_bench_series_add(into, co_bench_now_us() - t0);
			co_record_free(out);
			if (e < 0) {
				fprintf(stderr, "bench: claim %s: %s\n", id,
					co_error_last());
				goto done;
			}
		}
	}
	co_outbox_depth(depth_after, st, "git");
	*router_st = co_bench_row(&sr);
	*bare_st = co_bench_row(&sb);
	*bare2_st = co_bench_row(&sc);
	error = 0;
done:
	co_router_close(r);
	co_state_close(st);
	if (dir[0])
		co_test_rmrf(dir);
	co_bench_series_free(&sr);
	co_bench_series_free(&sb);
	co_bench_series_free(&sc);
	return error;
}

/* ---- (c) triggers on vs off ---- */

static int triggers_run(size_t n)
{
	static const char *names[3] = {"router claim, triggers on",
				       "router claim, triggers off",
				       "router claim, triggers off again (A/A)"};
	co_trigger_cfg tc = CO_TRIGGER_CFG_INIT;
	co_router *r[3] = {NULL, NULL, NULL};
	co_state *st[3] = {NULL, NULL, NULL};
	char dir[3][256] = {"", "", ""}, tag[3][8];
	co_bench_series ser[3];
	co_bench_stats row[3];
	size_t i;
	int error = -1, k, inited = 0;

	for (k = 0; k < 3; k++, inited++) {
		co_router_opts ro = CO_ROUTER_OPTS_INIT;

		snprintf(tag[k], sizeof(tag[k]), "T%d_", k);
		if (co_bench_series_init(&ser[k], names[k], n) < 0)
			goto done;
		if (co_test_tmpdir(dir[k], sizeof(dir[k])) < 0 ||
		    co_state_open(&st[k], dir[k]) < 0 || create_tasks(tag[k], n) < 0) {
			fprintf(stderr, "bench: setup: %s\n", co_error_last());
			inited++;
			goto done;
		}
		ro.git = gs;
		ro.etcd = es;
		ro.state = st[k];
		ro.flags = fw;
		ro.background_drain = 1; /* as serve runs */
		ro.triggers = k == 0 ? &tc : NULL;
		if (co_router_open(&r[k], &ro) < 0) {
			fprintf(stderr, "bench: router: %s\n", co_error_last());
			inited++;
			goto done;
		}
	}
	for (i = 0; i < n; i++)
		for (k = 0; k < 3; k++) {
			int which = (int)((i + (size_t)k) % 3);
			co_record *out = NULL;
			char id[64];
			double t0;
			int e;

			snprintf(id, sizeof(id), "%s%06zu", tag[which], i);
			t0 = co_bench_now_us();
			e = co_router_claim(&out, r[which], id, "swarm-bench", 0);
			co_bench_series_add(&ser[which], co_bench_now_us() - t0);
			co_record_free(out);
			if (e < 0) {
				fprintf(stderr, "bench: claim %s: %s\n", id, co_error_last());
				goto done;
			}
		}
	for (k = 0; k < 3; k++)
		row[k] = co_bench_row(&ser[k]);
	printf("\ntriggers on / off (goal: p50 < 1.02x):\n");
	ratio_line("on / off", row[0], row[1]);
	ratio_line("A/A control, off again / off", row[2], row[1]);
	{
		/* what the hot path adds, alone: one window record per op */
		co_signals *sig = NULL;
		const int calls = 1000000;
		double t0, per_ns;

		if (co_signals_new(&sig, 60) < 0)
			goto done;
		t0 = co_bench_now_us();
		for (int c = 0; c < calls; c++)
			co_signals_record(sig, CO_SIDE_ETCD, CO_OP_TASK_CLAIM, 0, 1000 + c % 5000);
		per_ns = (co_bench_now_us() - t0) * 1000.0 / calls;
		co_signals_free(sig);
		printf("co_signals_record alone: %.0f ns a call (%d calls) = %.4f%% of the "
		       "\"off\" claim p50\n",
		       per_ns, calls, 100.0 * per_ns / (row[1].p50 * 1000.0));
	}
	error = 0;
done:
	for (k = 0; k < 3; k++) {
		co_router_close(r[k]);
		co_state_close(st[k]);
		if (dir[k][0])
			co_test_rmrf(dir[k]);
		if (k < inited)
			co_bench_series_free(&ser[k]);
	}
	return error;
}
/* ---- (a'') throughput with concurrent claimers ---- */

#define CONC_THREADS 8

typedef struct conc_arg {
	co_router *r; /* NULL: the bare store */
	const char *tag;
	size_t from, to;
	int failed;
} conc_arg;

static void *conc_main(void *v)
{
	conc_arg *a = v;
	size_t i;

	for (i = a->from; i < a->to; i++) {
		co_record *out = NULL;
		char id[64];
		int e;

		snprintf(id, sizeof(id), "%s%06zu", a->tag, i);
		e = a->r ? co_router_claim(&out, a->r, id, "swarm-bench", 0)
			 : co_store_claim(&out, es, id, "swarm-bench", 0);
		co_record_free(out);
		if (e < 0)
			a->failed = 1;
	}
	return NULL;
}

/* n claims on distinct tasks by CONC_THREADS threads; claims per second. */
static double conc_run(co_router *r, const char *tag, size_t n)
{
	pthread_t th[CONC_THREADS];
	conc_arg a[CONC_THREADS];
	double t0 = co_bench_now_us();
	int t, failed = 0;

	for (t = 0; t < CONC_THREADS; t++) {
		a[t].r = r;
		a[t].tag = tag;
		a[t].from = n * (size_t)t / CONC_THREADS;
		a[t].to = n * (size_t)(t + 1) / CONC_THREADS;
		a[t].failed = 0;
		pthread_create(&th[t], NULL, conc_main, &a[t]);
	}
	for (t = 0; t < CONC_THREADS; t++) {
		pthread_join(th[t], NULL);
		failed |= a[t].failed;
	}
	if (failed)
		return -1;
	return (double)n / ((co_bench_now_us() - t0) / 1e6);
}

static int throughput(size_t n)
{
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_router *r = NULL;
	co_state *st = NULL;
	char dir[256] = "";
	double tr, tb;
	int error = -1;

	if (co_test_tmpdir(dir, sizeof(dir)) < 0 || co_state_open(&st, dir) < 0 ||
	    create_tasks("TR_", n) < 0 || create_tasks("TB_", n) < 0)
		goto done;
	ro.git = gs;
	ro.etcd = es;
	ro.state = st;
	ro.flags = fw;
	if (co_router_open(&r, &ro) < 0)
		goto done;
	tb = conc_run(NULL, "TB_", n);
	tr = conc_run(r, "TR_", n);
	if (tb < 0 || tr < 0) {
		fprintf(stderr, "bench: a concurrent claim failed: %s\n",
			co_error_last());
		goto done;
	}
	printf("%d threads, %zu claims on distinct tasks: bare etcd store %.0f claims/s, "
	       "router (drain off, witness on) %.0f claims/s (%.2fx)\n",
	       CONC_THREADS, n, tb, tr, tb / tr);
	error = 0;
done:
	co_router_close(r);
	co_state_close(st);
	if (dir[0])
		co_test_rmrf(dir);
	return error;
}

/* ---- (b) kill-switch propagation ---- */

typedef struct spinner {
	co_router *r;
	atomic_int stop;
	atomic_int seen;   /* kill_switch as the router routes now */
	double seen_at_us; /* when `seen` last changed (written before `seen`) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t spins;
} spinner;

static void *spin_main(void *arg)
{
	spinner *sp = arg;
	int last = atomic_load(&sp->seen);

	while (!atomic_load(&sp->stop)) {
		co_route rt;

		if (co_router_route(&rt, sp->r, CO_OP_TASK_CLAIM, "K000001") < 0)
			continue;
		sp->spins++;
		if (rt.kill_switch != last) {
			double now = co_bench_now_us();

			last = rt.kill_switch;
			pthread_mutex_lock(&sp->mu);
			sp->seen_at_us = now;
			atomic_store(&sp->seen, last);
			pthread_cond_broadcast(&sp->cv);
			pthread_mutex_unlock(&sp->mu);
		}
	}
	return NULL;
}

static int kill_switch_flips(int flips)
{
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_router *r = NULL;
	co_state *st = NULL;
	spinner sp;
	pthread_t th;
	int started = 0, i, error = -1, kill = 0;
	char dir[256] = "";
	co_bench_series prop, save, after_save;
	co_bench_stats ps;

	memset(&sp, 0, sizeof(sp));
	pthread_mutex_init(&sp.mu, NULL);
	pthread_cond_init(&sp.cv, NULL);
	if (co_bench_series_init(&prop, "flip seen by route(), from save start",
				 (size_t)flips) < 0 ||
	    co_bench_series_init(&save, "co_flags_save itself (write+fsync+rename)",
				 (size_t)flips) < 0 ||
	    co_bench_series_init(&after_save, "seen after save returned (<=0: before)",
				 (size_t)flips) < 0)
		return -1;
	if (co_test_tmpdir(dir, sizeof(dir)) < 0 || co_state_open(&st, dir) < 0 ||
	    save_flags(0) < 0 || co_flags_watcher_reload(fw) < 0)
		goto done;
	ro.git = gs;
	ro.etcd = es;
	ro.state = st;
	ro.flags = fw;
	ro.background_drain = 1; /* as `serve` runs it */
	if (co_router_open(&r, &ro) < 0)
		goto done;
	sp.r = r;
	atomic_store(&sp.seen, 0);
	if (pthread_create(&th, NULL, spin_main, &sp) != 0)
		goto done;
	started = 1;
	for (i = 0; i < flips; i++) {
		struct timespec dl, pace = {0, 20 * 1000000L};
		double t0, t1;
		int seen;

		kill = !kill;
		t0 = co_bench_now_us();
		if (save_flags(kill) < 0) {
			fprintf(stderr, "bench: save: %s\n", co_error_last());
			goto done;
		}
		t1 = co_bench_now_us();
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 5;
		pthread_mutex_lock(&sp.mu);
		while ((seen = atomic_load(&sp.seen)) != kill &&
		       pthread_cond_timedwait(&sp.cv, &sp.mu, &dl) == 0)
			;
		seen = atomic_load(&sp.seen);
		pthread_mutex_unlock(&sp.mu);
		if (seen != kill) {
			fprintf(stderr, "bench: flip %d not seen within 5 s\n", i + 1);
			goto done;
		}
		co_bench_series_add(&prop, sp.seen_at_us - t0);
		co_bench_series_add(&save, t1 - t0);
		co_bench_series_add(&after_save, sp.seen_at_us - t1);
		/* pace the flips so that each is a separate change on disk */
		nanosleep(&pace, NULL);
	}
	co_bench_header();
	ps = co_bench_row(&prop);
	co_bench_row(&save);
	co_bench_row(&after_save);
	printf("\nkill switch over %d flips: median %.3f ms, max %.3f ms "
	       "(route() calls spun: %llu)\n",
	       flips, ps.p50 / 1e3, ps.max / 1e3, (unsigned long long)sp.spins);
	error = 0;
done:
	if (started) {
		atomic_store(&sp.stop, 1);
		pthread_join(th, NULL);
	}
	co_router_close(r);
	co_state_close(st);
	if (dir[0])
		co_test_rmrf(dir);
	save_flags(0);
	pthread_cond_destroy(&sp.cv);
	pthread_mutex_destroy(&sp.mu);
	co_bench_series_free(&prop);
	co_bench_series_free(&save);
	co_bench_series_free(&after_save);
	return error;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1000;
	size_t nb = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 500;
	int flips = argc > 3 ? atoi(argv[3]) : 50;
	int only_triggers = argc > 4 && strcmp(argv[4], "triggers") == 0;
	static const config configs[] = {
	    {"drain off, witness on", 0, 1},
	    {"drain off, witness off", 0, 0},
	    {"drain on, witness on", 1, 1},
	};
	co_bench_stats rs[3], bs[3], cs[3];
	int64_t depth[3] = {0, 0, 0};
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_git_opts go = CO_GIT_OPTS_INIT;
	const char *ep[1];
	int rc = 1, i;

	if (n == 0 || nb == 0 || flips <= 0) {
		fprintf(stderr, "usage: bench_router [N_claims [N_breakdown [flips]]]\n");
		return 1;
	}
	memset(&etcd, 0, sizeof(etcd));
	if (co_test_etcd_start(&etcd) < 0 ||
	    co_test_git_repo_new(repo, sizeof(repo)) < 0 ||
	    co_test_tmpdir(flags_dir, sizeof(flags_dir)) < 0) {
		fprintf(stderr, "bench: setup failed (etcd, repo or temp dir)\n");
		goto done;
	}
	snprintf(flags_path, sizeof(flags_path), "%s/flags.yaml", flags_dir);
	ep[0] = etcd.endpoint;
	eo.endpoints = ep;
	eo.n_endpoints = 1;
	eo.prefix = "/bench/";
	go.repo = repo; /* fsync on, the default */
	if (co_etcd_store_open(&es, &eo) < 0 || co_git_store_open(&gs, &go) < 0 ||
	    save_flags(0) < 0 || co_flags_watcher_open(&fw, flags_path) < 0) {
		fprintf(stderr, "bench: open failed: %s\n", co_error_last());
		goto done;
	}
	printf(
	    "bench_router: etcd %s, stage etcd, %zu claims per series, load average %s\n",
	    etcd.endpoint, n, loadavg());

	if (only_triggers)
		goto triggers;
	printf("\n(a) claim through the router (stage etcd) vs the bare etcd store, "
	       "interleaved\n");
	co_bench_header();
	for (i = 0; i < 3; i++)
		if (run_config(&configs[i], i, n, &rs[i], &bs[i], &cs[i], &depth[i]) < 0)
			goto done;
	printf("\nrouter / bare etcd store (goal: p95 <= 1.10x):\n");
	for (i = 0; i < 3; i++)
		ratio_line(configs[i].name, rs[i], bs[i]);
	printf("A/A control, bare again / bare (the same code twice: the noise):\n");
	for (i = 0; i < 3; i++)
		ratio_line(configs[i].name, cs[i], bs[i]);
	for (i = 0; i < 3; i++)
		printf("git-bound outbox depth after \"%s\": %lld\n", configs[i].name,
		       (long long)depth[i]);

	printf("\n(a0) the floor: a durable outbox entry alone, no router, around the "
	       "bare claim (interleaved, %zu claims each)\n",
	       n);
	if (floor_run(n) < 0)
		goto done;

	printf("\n(a') where the router's time goes: its etcd-mode claim path, "
	       "step by step (%zu claims)\n",
	       nb);
	if (breakdown(nb) < 0)
		goto done;

	printf("\n(a'') throughput, concurrent claimers (their intents share the group "
	       "commit's WAL fsyncs)\n");
	if (throughput(n) < 0)
		goto done;

	printf("\n(b) kill switch: co_flags_save -> co_router_route in a running router "
	       "(no reload call), load average %s\n",
	       loadavg());
	if (kill_switch_flips(flips) < 0)
		goto done;
triggers:
	printf("\n(c) live-signal triggers on vs off, interleaved (stage etcd, %zu claims "
	       "each), load average %s\n",
	       n, loadavg());
	co_bench_header();
	if (triggers_run(n) < 0)
		goto done;
	printf("\nload average at end: %s\n", loadavg());
	rc = 0;
done:
	co_flags_watcher_close(fw);
	co_store_free(es);
	co_store_free(gs);
	co_test_etcd_stop(&etcd);
	if (repo[0])
		co_test_rmrf(repo);
	if (flags_dir[0])
		co_test_rmrf(flags_dir);
	return rc;
}
