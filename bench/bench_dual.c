/*
 * bench_dual.c - dual-write at etcd's speed, through `cutover serve`
 * (issue 19).
 *
 * A swarm on a hot queue: 8 HTTP clients (each its own keep-alive
 * connection) claim and release 16 shared tasks; and 8 clients creating and
 * claiming fresh tasks.  Both run in stages git, dual 10, dual 100 and
 * etcd, in rounds that rotate through the stages, so that every stage sees
 * the same moments of the machine.  In dual 10 the claims are split by the
 * store that decided them.  Then, in dual 100: how long after the ack a
 * legacy reader polling git sees an etcd-decided claim.
 *
 * Two things keep the git-side ratio honest.  Every hot round of every
 * stage runs before any fresh round: fresh tasks grow git's tasks/ tree,
 * which every commit rewrites, so interleaved they made each stage's
 * commits dearer than the stage's before it in the same round.  And a
 * fifth stage runs git again (its own hot tasks, in the same rotation): the
 * ratio of the two git stages is an A/A control, the same code measured
 * twice, which shows how far a ratio moves by noise alone in that run.
 * A round before the measured ones warms serve, its caches and etcd up.
 *
 * Prints per stage: wall time, claim p50/p95 and the state's fsyncs
 * (hot queue: the group commit's, co_router_state_syncs), create+claim
 * throughput (fresh), and the ratios of issue 19's targets.
 */
#include "bench_util.h"

#include "core/error.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "router/router.h"
#include "server/server.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define CLIENTS 8
#define HOT_TASKS 16
#define N_STAGES 5
#define AA 4 /* the A/A control: git again */

/* The stage each runs at, its label, and the tag in its tasks' IDs. */
static const char *const stage_flags[N_STAGES] = {"git", "10", "100", "etcd", "git"};
static const char *const stage_names[N_STAGES] = {"git", "10", "100", "etcd",
						  "git again"};
static const char *const stage_tags[N_STAGES] = {"git", "10", "100", "etcd", "gitaa"};

static co_test_etcd etcd;
static co_test_serve sv; /* serve in-process: its stores, router, state */
static const char *base;
static co_store *gs;
static co_router *rt;

static long req(CURL *c, const char *path, const char *data)
{
	co_test_resp r;
	long status =
	    co_test_http_on(c, &r, base, "POST", path, data, strlen(data), NULL);

	free(r.body);
	return status;
}

static int set_stage(const char *name)
{
	return co_test_serve_stage(&sv, name);
}

/* Results of one stage, summed over its rounds. */
typedef struct stage_res {
	co_bench_series hot, hot_etcd, hot_git; /* claim latency, and by decider */
	double hot_wall_us;
	uint64_t hot_syncs; /* the state's fsyncs during the hot blocks */
	size_t fresh_ops;
	double fresh_wall_us;
} stage_res;

typedef struct client {
	int idx, stage;
	size_t ops;
	stage_res *res;
	pthread_mutex_t *mu;
	pthread_barrier_t *go;
	int fresh; /* 0: hot queue; 1: create + claim fresh tasks */
	int round;
} client;

static void *client_main(void *arg)
{
	client *c = arg;
	CURL *h = curl_easy_init();
	char path[96], body[96], swarm[32];
	unsigned seed = (unsigned)(c->idx * 7919 + c->round);
	size_t k;

	snprintf(swarm, sizeof(swarm), "s%d", c->idx);
	snprintf(body, sizeof(body), "{\"swarm\":\"%s\"}", swarm);
	pthread_barrier_wait(c->go);
	for (k = 0; h && k < c->ops; k++) {
		if (c->fresh) {
			char create[128];

			snprintf(create, sizeof(create),
				 "{\"id\":\"F%s-%d-%d-%zu\",\"type\":\"build\"}",
				 stage_tags[c->stage], c->round, c->idx, k);
			snprintf(path, sizeof(path), "/v1/tasks/F%s-%d-%d-%zu/claim",
				 stage_tags[c->stage], c->round, c->idx, k);
			req(h, "/v1/tasks", create);
			req(h, path, body);
		} else {
			int t = (int)(rand_r(&seed) % HOT_TASKS);
			char id[32];
			double t0;
			long s;
			co_route r;

			snprintf(id, sizeof(id), "HOT-%s-%d", stage_tags[c->stage], t);
			snprintf(path, sizeof(path), "/v1/tasks/%s/claim", id);
			t0 = co_bench_now_us();
			s = req(h, path, body);
			t0 = co_bench_now_us() - t0;
			co_router_route(&r, rt, CO_OP_TASK_CLAIM, id);
			pthread_mutex_lock(c->mu);
			co_bench_series_add(&c->res->hot, t0);
			co_bench_series_add(r.primary == CO_SIDE_ETCD ? &c->res->hot_etcd
								      : &c->res->hot_git,
					    t0);
			pthread_mutex_unlock(c->mu);
			if (s == 200) {
				char rel[128];

				snprintf(path, sizeof(path), "/v1/tasks/%s/release", id);
				snprintf(rel, sizeof(rel), "{\"swarm\":\"%s\"}", swarm);
				req(h, path, rel);
			}
		}
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* One block: CLIENTS clients, `ops` operations each, at stage `si`. */
static void block(stage_res *res, int si, int fresh, size_t ops, int round)
{
	pthread_t th[CLIENTS];
	client c[CLIENTS];
	pthread_barrier_t go;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	double t0;
	int i;

	pthread_barrier_init(&go, NULL, CLIENTS + 1);
	for (i = 0; i < CLIENTS; i++) {
		c[i] = (client){i, si, ops, res, &mu, &go, fresh, round};
		pthread_create(&th[i], NULL, client_main, &c[i]);
	}
	pthread_barrier_wait(&go);
	t0 = co_bench_now_us();
	for (i = 0; i < CLIENTS; i++)
		pthread_join(th[i], NULL);
	if (fresh) {
		res->fresh_wall_us += co_bench_now_us() - t0;
		res->fresh_ops += (size_t)CLIENTS * ops;
	} else {
		res->hot_wall_us += co_bench_now_us() - t0;
	}
	pthread_barrier_destroy(&go);
}

/* p50 of the samples s took from index `from` on (one block's). */
static double slice_p50(const co_bench_series *s, size_t from)
{
	size_t n = s->n > from ? s->n - from : 0;
	double *v = n ? malloc(n * sizeof(*v)) : NULL, p;

	if (v == NULL)
		return 0;
	memcpy(v, s->v + from, n * sizeof(*v));
	qsort(v, n, sizeof(*v), co_bench__cmp);
	p = co_bench__rank(v, n, 0.50);
	free(v);
	return p;
}

static double median_of(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), co_bench__cmp);
	return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Drain what the previous stage left owed, so a stage starts clean. */
static void settle_outbox(void)
{
	int64_t left = 1;
	int i;

	for (i = 0; i < 100 && left > 0; i++)
		co_router_drain(rt, NULL, 1000, &left);
}

/* dual 100: ack of an etcd-decided claim -> the claim visible in git. */
static void visibility(size_t n)
{
	co_bench_series vis;
	CURL *h = curl_easy_init();
	char create[96], path[96];
	size_t i, late = 0;

	co_bench_series_init(&vis, "ack -> visible in git (dual 100)", n);
	set_stage("100");
	for (i = 0; h && i < n; i++) {
		double t0;

		snprintf(create, sizeof(create), "{\"id\":\"V-%zu\",\"type\":\"build\"}", i);
		snprintf(path, sizeof(path), "/v1/tasks/V-%zu/claim", i);
		req(h, "/v1/tasks", create);
		if (req(h, path, "{\"swarm\":\"reader\"}") != 200)
			continue;
		t0 = co_bench_now_us();
		for (;;) {
			co_record *g = NULL;
			char id[32];
			int seen;

			snprintf(id, sizeof(id), "V-%zu", i);
			seen = co_store_get(&g, gs, CO_KIND_TASK, id) == 0 && g->owner &&
			       strcmp(g->owner, "reader") == 0;
			co_record_free(g);
			if (seen)
				break;
			if (co_bench_now_us() - t0 > 5e6) {
				late++;
				break;
			}
			usleep(500);
		}
		co_bench_series_add(&vis, co_bench_now_us() - t0);
	}
	co_bench_header();
	co_bench_row(&vis);
	if (late)
		printf("%zu claims not in git after 5 s\n", late);
	printf("goal: p95 <= 250 ms (a reader polling git every 0.5 ms)\n");
	co_bench_series_free(&vis);
	curl_easy_cleanup(h);
}

static int open_all(void)
{
	co_test_serve_opts o = {0};

	o.endpoint = etcd.endpoint;
	o.prefix = "/bench-dual/";
	if (co_test_serve_open(&sv, &o) < 0)
		return -1;
	base = sv.base;
	gs = sv.git;
	rt = sv.r;
	return 0;
}

static void ratio(const char *what, double a, double b, const char *goal)
{
	printf("%-58s %6.2fx  (%s)\n", what, b > 0 ? a / b : 0, goal);
}

int main(int argc, char **argv)
{
	size_t rounds = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 3;
	size_t ops = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 40;
	stage_res res[N_STAGES], warm[N_STAGES];
	double p50s[N_STAGES], *paired, *aa;
	size_t from;
	co_bench_stats hs[N_STAGES], e10, g10;
	CURL *h = NULL;
	char create[96];
	size_t r;
	int si, i, rc = 1;

	memset(res, 0, sizeof(res));
	if (rounds == 0 || ops == 0) {
		fprintf(stderr, "usage: bench_dual [rounds [ops_per_client]]\n");
		return 1;
	}
	paired = calloc(rounds, sizeof(*paired));
	aa = calloc(rounds, sizeof(*aa));
	if (paired == NULL || aa == NULL)
		return 1;
	for (si = 0; si < N_STAGES; si++) {
		size_t cap = rounds * ops * CLIENTS;

		if (co_bench_series_init(&res[si].hot, "hot", cap) < 0 ||
		    co_bench_series_init(&res[si].hot_etcd, "etcd-decided", cap) < 0 ||
		    co_bench_series_init(&res[si].hot_git, "git-decided", cap) < 0)
			return 1;
	}
	if (co_test_etcd_start(&etcd) < 0) {
		fprintf(stderr, "bench_dual: setup failed\n");
		goto done;
	}
	if (open_all() < 0 || (h = curl_easy_init()) == NULL) {
		fprintf(stderr, "bench_dual: open failed: %s\n", co_error_last());
		goto done;
	}
	printf("bench_dual: serve %s, %d clients, %zu rounds of %zu ops per client per "
	       "stage\n",
	       base, CLIENTS, rounds, ops);
	/* each stage has its own hot tasks, made in that stage: going from
	 * etcd straight back to git (as no operator may: the gate wants
	 * shadow between) leaves etcd behind */
	for (si = 0; si < N_STAGES; si++) {
		set_stage(stage_flags[si]);
		settle_outbox();
		for (i = 0; i < HOT_TASKS; i++) {
			snprintf(create, sizeof(create),
				 "{\"id\":\"HOT-%s-%d\",\"type\":\"build\"}", stage_tags[si],
				 i);
			req(h, "/v1/tasks", create);
		}
	}
	/* a round to warm up (serve's threads, caches, etcd's), not recorded:
	 * the first stage of the first round paid for it alone */
	memset(&warm, 0, sizeof(warm));
	for (si = 0; si < N_STAGES; si++) {
		co_bench_series_init(&warm[si].hot, "warm", ops * CLIENTS);
		co_bench_series_init(&warm[si].hot_etcd, "warm", ops * CLIENTS);
		co_bench_series_init(&warm[si].hot_git, "warm", ops * CLIENTS);
		set_stage(stage_flags[si]);
		settle_outbox();
		block(&warm[si], si, 0, ops / 2 ? ops / 2 : 1, 0);
		co_bench_series_free(&warm[si].hot);
		co_bench_series_free(&warm[si].hot_etcd);
		co_bench_series_free(&warm[si].hot_git);
	}
	/* the hot rounds first: they add no task to git's tree */
	for (r = 0; r < rounds; r++) {
		for (si = 0; si < N_STAGES; si++) {
			uint64_t syncs;

			set_stage(stage_flags[si]);
			settle_outbox();
			syncs = co_router_state_syncs(rt);
			from = si == 1 ? res[si].hot_git.n : res[si].hot.n;
			block(&res[si], si, 0, ops, (int)r);
			res[si].hot_syncs += co_router_state_syncs(rt) - syncs;
			p50s[si] = slice_p50(si == 1 ? &res[si].hot_git : &res[si].hot, from);
		}
		/* this round's git-decided p50 against its own two git blocks' */
		paired[r] = p50s[0] + p50s[AA] > 0 ? p50s[1] / ((p50s[0] + p50s[AA]) / 2) : 0;
		aa[r] = p50s[0] > 0 ? p50s[AA] / p50s[0] : 0;
	}
	for (r = 0; r < rounds; r++) {
		for (si = 0; si < AA; si++) {
			set_stage(stage_flags[si]);
			settle_outbox();
			block(&res[si], si, 1, ops / 2 ? ops / 2 : 1, (int)r);
		}
	}
	printf("\nhot queue: %d clients claim (and release when won) %d shared tasks\n",
	       CLIENTS, HOT_TASKS);
	printf("%-10s %10s %10s %10s %8s %8s   fresh create+claim\n", "stage", "wall s",
	       "claim p50", "claim p95", "n", "fsyncs");
	for (si = 0; si < N_STAGES; si++) {
		hs[si] = co_bench_stats_of(&res[si].hot);
		printf("%-10s %10.2f %9.2fms %9.2fms %8zu %8llu", stage_names[si],
		       res[si].hot_wall_us / 1e6, hs[si].p50 / 1e3, hs[si].p95 / 1e3,
		       hs[si].n, (unsigned long long)res[si].hot_syncs);
		if (res[si].fresh_ops)
			printf("   %7.0f ops/s",
			       (double)res[si].fresh_ops * 2 / (res[si].fresh_wall_us / 1e6));
		printf("\n");
	}
	e10 = co_bench_stats_of(&res[1].hot_etcd);
	g10 = co_bench_stats_of(&res[1].hot_git);
	printf("dual 10 split: etcd-decided p50 %.2f ms (n %zu), git-decided p50 %.2f ms "
	       "(n %zu)\n",
	       e10.p50 / 1e3, e10.n, g10.p50 / 1e3, g10.n);
	printf("\nratios (issue 19 targets)\n");
	ratio("hot claims, dual 100 / etcd, p50", hs[2].p50, hs[3].p50, "goal <= 1.25x");
	ratio("hot claims, dual 100 / etcd, p95", hs[2].p95, hs[3].p95, "goal <= 1.25x");
	ratio("fresh create+claim throughput, dual 100 / etcd",
	      (double)res[2].fresh_ops / res[2].fresh_wall_us,
	      (double)res[3].fresh_ops / res[3].fresh_wall_us, "goal >= 0.8x");
	ratio("dual 10 etcd-decided claim p50 / etcd", e10.p50, hs[3].p50, "goal <= 1.25x");
	ratio("dual 10 git-decided claim p50 / git", g10.p50, hs[0].p50, "goal <= 1.10x");
	ratio("A/A control: git again / git, p50", hs[AA].p50, hs[0].p50,
	      "noise alone: 1.00x would be none");
	printf("paired by round (each round's dual 10 git-decided p50 over the mean of its "
	       "two git blocks' p50; A/A: its git again over its git):\n");
	for (r = 0; r < rounds; r++)
		printf("  round %zu: %.2fx   A/A %.2fx\n", r + 1, paired[r], aa[r]);
	printf("%-58s %6.2fx  (%s)\n", "dual 10 git-decided / git, median of rounds",
	       median_of(paired, rounds), "goal <= 1.10x");
	printf("%-58s %6.2fx  (%s)\n", "A/A control, median of rounds", median_of(aa, rounds),
	       "noise alone");
	printf("\n");
	visibility(rounds * 50);
	rc = 0;
done:
	curl_easy_cleanup(h);
	co_test_serve_close(&sv);
	co_test_etcd_stop(&etcd);
	free(paired);
	free(aa);
	for (si = 0; si < N_STAGES; si++) {
		co_bench_series_free(&res[si].hot);
		co_bench_series_free(&res[si].hot_etcd);
		co_bench_series_free(&res[si].hot_git);
	}
	return rc;
}
