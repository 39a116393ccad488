/*
 * test_router.c - the router against a real etcd and real bare git repos:
 * one winner in every mode, a chaos run flipping stages and the kill switch,
 * etcd killed under load, and the router itself killed mid-load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "core/state.h"
#include "core/state_internal.h" /* co_state__sync_fault */
#include "core/audit.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "router/router.h"
#include "router/internal.h" /* co_router__hold_fulfils, stripe */
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int prefix_seq;

typedef struct fx {
	char repo[256], dir[256], flags_path[320], prefix[64];
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
} fx;

static void set_stage(fx *f, const char *stage, int kill)
{
	co_flags fl;
	co_stage s;

	co_flags_init(&fl);
	assert_int_equal(co_stage_parse(&s, stage), 0);
	assert_int_equal(co_stage_apply(&fl, s), 0);
	co_flags_set_kill(&fl, kill, kill ? "test" : "");
	assert_int_equal(co_flags_save(&fl, f->flags_path), 0);
	assert_int_equal(co_flags_watcher_reload(f->fw), 0);
}

static void open_stores(fx *f, const co_test_etcd *e)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	const char *eps[1] = {e->endpoint};

	go.repo = f->repo;
	go.poll_interval_ms = 50;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = f->prefix;
	eo.request_timeout_ms = 2000;
	assert_int_equal(co_git_store_open(&f->git, &go), 0);
	assert_int_equal(co_etcd_store_open(&f->etcd, &eo), 0);
}

static void fx_open_on(fx *f, const co_test_etcd *e, const char *stage, int drain_thread)
{
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_flags fl;

	memset(f, 0, sizeof(*f));
	assert_int_equal(co_test_git_repo_new(f->repo, sizeof(f->repo)), 0);
	assert_int_equal(co_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	snprintf(f->flags_path, sizeof(f->flags_path), "%s/flags.yaml", f->dir);
	snprintf(f->prefix, sizeof(f->prefix), "/rt%d-%d/", (int)getpid(), ++prefix_seq);
	open_stores(f, e);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	co_flags_init(&fl);
	assert_int_equal(co_flags_save(&fl, f->flags_path), 0);
	assert_int_equal(co_flags_watcher_open(&f->fw, f->flags_path), 0);
	set_stage(f, stage, 0);
	ro.git = f->git;
	ro.etcd = f->etcd;
	ro.state = f->st;
	ro.flags = f->fw;
	ro.background_drain = drain_thread;
	assert_int_equal(co_router_open(&f->r, &ro), 0);
}

static void fx_close(fx *f)
{
	co_router_close(f->r);
	co_flags_watcher_close(f->fw);
	co_state_close(f->st);
	co_store_free(f->git);
	co_store_free(f->etcd);
	co_test_rmrf(f->repo);
	co_test_rmrf(f->dir);
}

static void create_task(fx *f, const char *id)
{
	co_record *t = NULL, *out = NULL;

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
	t->type = strdup("build");
	assert_int_equal(co_router_task_create(&out, f->r, t), 0);
	co_record_free(t);
	co_record_free(out);
}

/*
 * Drain until the outbox is empty.  Entries can be due later (backoff, or
 * another router's intents that must age before they are resolved), so this
 * polls for the condition, bounded at 60 s.
 */
static void drain_all(fx *f)
{
	int64_t left = -1;
	int i;
	struct timespec pause = {0, 100 * 1000000L};

	for (i = 0; i < 600; i++) {
		co_router_drain(f->r, NULL, 1000, &left);
		if (left == 0)
			break;
		nanosleep(&pause, NULL);
	}
	if (left != 0) {
		co_outbox_list l = {0};

		co_outbox_next_batch(&l, f->st, NULL, 5, INT64_MAX);
		for (size_t k = 0; k < l.n; k++)
			print_message(
			    "pending: %s %s [%s] len=%zu attempts=%d: %s\n",
			    l.items[k]->target, l.items[k]->id,
			    l.items[k]->payload ? l.items[k]->payload : "NULL",
			    l.items[k]->payload ? strlen(l.items[k]->payload) : 0,
			    l.items[k]->attempts,
			    l.items[k]->last_error ? l.items[k]->last_error : "");
		co_outbox_list_clear(&l);
		fail_msg("outbox still holds %lld entries after 60 s", (long long)left);
	}
}

/* Both stores hold the same records, byte for byte in canonical form. */
static void assert_stores_equal(fx *f, co_kind kind)
{
	co_record_list g = {0}, e = {0};
	size_t i;

	assert_int_equal(co_store_list(&g, f->git, kind), 0);
	assert_int_equal(co_store_list(&e, f->etcd, kind), 0);
	if (g.n != e.n)
		fail_msg("git has %zu %ss, etcd %zu", g.n, co_kind_name(kind), e.n);
	for (i = 0; i < g.n; i++) {
		if (!co_record_equal(g.items[i], e.items[i])) {
			char *a = co_record_to_json(g.items[i], 0),
			     *b = co_record_to_json(e.items[i], 0);

			fail_msg("differ:\n git  %s\n etcd %s", a, b);
		}
	}
	co_record_list_clear(&g);
	co_record_list_clear(&e);
}

/* ---- one winner in every mode ---- */

struct race {
	fx *f;
	const char *id;
	int idx;
	int rc;
	char owner[64];
	pthread_barrier_t *go;
};

static void *race_main(void *arg)
{
	struct race *a = arg;
	co_record *out = NULL;
	char swarm[32];

	snprintf(swarm, sizeof(swarm), "swarm-%d", a->idx);
	pthread_barrier_wait(a->go);
	a->rc = co_router_claim(&out, a->f->r, a->id, swarm, 0);
	if (out && out->owner)
		snprintf(a->owner, sizeof(a->owner), "%s", out->owner);
	co_record_free(out);
	return NULL;
}

static void claim_has_one_winner_through_the_router_in_every_mode(void **state)
{
	static const char *stages[] = {"git", "shadow", "10", "50", "100", "etcd"};
	size_t s;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "shadow", 0);
	for (s = 0; s < sizeof(stages) / sizeof(stages[0]); s++) {
		int k;

		set_stage(&f, stages[s], 0);
		/* four IDs per stage, so that at 10% and 50% both stores decide some */
		for (k = 0; k < 4; k++) {
			struct race a[32];
			pthread_t th[32];
			pthread_barrier_t go;
			char id[64];
			int i, winners = 0, w = -1;

			snprintf(id, sizeof(id), "race-%s-%d", stages[s], k);
			create_task(&f, id);
			pthread_barrier_init(&go, NULL, 32);
			for (i = 0; i < 32; i++) {
				a[i] =
				    (struct race){.f = &f, .id = id, .idx = i, .go = &go};
				pthread_create(&th[i], NULL, race_main, &a[i]);
			}
			for (i = 0; i < 32; i++)
				pthread_join(th[i], NULL);
			pthread_barrier_destroy(&go);
			for (i = 0; i < 32; i++) {
				if (a[i].rc == 0) {
					winners++;
					w = i;
				} else if (a[i].rc != CO_ECONFLICT) {
					fail_msg("stage %s: claim returned %d", stages[s],
						 a[i].rc);
				}
			}
			if (winners != 1)
				fail_msg("stage %s id %s: %d winners", stages[s], id,
					 winners);
			for (i = 0; i < 32; i++)
				assert_string_equal(a[i].owner, a[w].owner);
			if (strcmp(stages[s], "git") != 0) {
				co_record *g = NULL, *e = NULL;

				drain_all(&f);
				assert_int_equal(
				    co_store_get(&g, f.git, CO_KIND_TASK, id), 0);
				assert_int_equal(
				    co_store_get(&e, f.etcd, CO_KIND_TASK, id), 0);
				assert_string_equal(g->owner, a[w].owner);
				assert_string_equal(e->owner, a[w].owner);
				co_record_free(g);
				co_record_free(e);
			}
		}
	}
	fx_close(&f);
}

/* ---- two routers whose flags disagree ---- */

#define DUO_TASKS 24
#define DUO_THREADS 16

struct duo {
	co_router *r;
	const char *id;
	int idx, rc;
	pthread_barrier_t *go;
};

static void *duo_main(void *arg)
{
	struct duo *a = arg;
	co_record *out = NULL;
	char swarm[32];

	snprintf(swarm, sizeof(swarm), "swarm-%d", a->idx);
	pthread_barrier_wait(a->go);
	a->rc = co_router_claim(&out, a->r, a->id, swarm, 0);
	co_record_free(out);
	return NULL;
}

/*
 * Two routers over one state dir and the same stores, one at shadow (git
 * decides), the other at 100 (etcd decides): the moment of a flip that one
 * router has seen and the other not yet, held still.  Each pushes its
 * intent before it settles, so on every ID one of them backs off
 * (unavailable) while the other is writing: at most one claim is ever
 * acknowledged, and after both drain the stores agree on its owner.
 * Without the check of the other router's intents both would win.
 */
static void two_routers_with_different_primaries_never_both_win(void **state)
{
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_flags_watcher *fw_b = NULL;
	co_state *st_b = NULL;
	co_router *rb = NULL;
	co_flags fl;
	char flags_b[400];
	int k, backed_off = 0, decided[2] = {0, 0};
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "shadow", 0);
	snprintf(flags_b, sizeof(flags_b), "%s/flags-b.yaml", f.dir);
	co_flags_init(&fl);
	assert_int_equal(co_stage_apply(&fl, CO_STAGE_100), 0);
	assert_int_equal(co_flags_save(&fl, flags_b), 0);
	assert_int_equal(co_flags_watcher_open(&fw_b, flags_b), 0);
	assert_int_equal(co_state_open(&st_b, f.dir), 0);
	ro.git = f.git;
	ro.etcd = f.etcd;
	ro.state = st_b;
	ro.flags = fw_b;
	assert_int_equal(co_router_open(&rb, &ro), 0);

	for (k = 0; k < DUO_TASKS; k++) {
		struct duo a[DUO_THREADS];
		pthread_t th[DUO_THREADS];
		pthread_barrier_t go;
		co_record *g = NULL, *e = NULL;
		char id[64], want[32];
		int i, winners = 0, w = -1;

		snprintf(id, sizeof(id), "duo-%d", k);
		create_task(&f, id);
		pthread_barrier_init(&go, NULL, DUO_THREADS);
		for (i = 0; i < DUO_THREADS; i++) {
			a[i] = (struct duo){i % 2 ? rb : f.r, id, i, 0, &go};
			pthread_create(&th[i], NULL, duo_main, &a[i]);
		}
		for (i = 0; i < DUO_THREADS; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		for (i = 0; i < DUO_THREADS; i++) {
			if (a[i].rc == 0) {
				winners++;
				w = i;
			} else if (a[i].rc == CO_EUNAVAIL) {
				backed_off++;
			} else if (a[i].rc != CO_ECONFLICT) {
				fail_msg("%s: claim returned %d: %s", id, a[i].rc,
					 co_error_name(a[i].rc));
			}
		}
		if (winners > 1)
			fail_msg(
			    "%s: %d claims acknowledged by routers at shadow and 100", id,
			    winners);
		drain_all(&f);
		{
			fx fb = f;

			fb.r = rb;
			fb.st = st_b;
			drain_all(&fb);
		}
		assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, id), 0);
		assert_int_equal(co_store_get(&e, f.etcd, CO_KIND_TASK, id), 0);
		assert_true(co_record_equal(g, e));
		if (w >= 0) {
			snprintf(want, sizeof(want), "swarm-%d", w);
			assert_non_null(g->owner);
			assert_string_equal(g->owner, want);
			decided[w % 2]++;
		}
		co_record_free(g);
		co_record_free(e);
	}
	print_message("two routers: winners at shadow %d, at 100 %d; %d claims backed "
		      "off (unavailable)\n",
		      decided[0], decided[1], backed_off);
	/* Not a livelock, and the routers did meet: someone won most tasks,
	 * and some claims backed off because the other router was writing. */
	assert_true(decided[0] + decided[1] >= DUO_TASKS / 2);
	assert_true(backed_off > 0);
	co_router_close(rb);
	co_flags_watcher_close(fw_b);
	co_state_close(st_b);
	fx_close(&f);
}

/* ---- chaos ---- */

#define CHAOS_TASKS 1000
#define CHAOS_WORKERS 8

typedef struct ev {
	int task; /* index, or -1 for a create */
	int64_t rev;
	char type; /* 'c' claim, 'r' release, 'n' new task */
	int worker;
} ev;

struct worker {
	fx *f;
	int idx;
	atomic_int *stop;
	ev *evs;
	size_t n, cap;
	int unavailable, other_errors, creates;
	char last_error[256];
};

static void note(struct worker *w, int task, int64_t rev, char type)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4096;
		w->evs = realloc(w->evs, w->cap * sizeof(*w->evs));
	}
	w->evs[w->n++] = (ev){task, rev, type, w->idx};
}

static void count_error(struct worker *w, int rc)
{
	if (rc == CO_EUNAVAIL)
		w->unavailable++;
	else
		w->other_errors++;
	snprintf(w->last_error, sizeof(w->last_error), "%d %s", rc, co_error_last());
}

static void *chaos_worker(void *arg)
{
	struct worker *w = arg;
	unsigned seed = (unsigned)w->idx * 7919u + 1;
	char swarm[32], id[64];

	snprintf(swarm, sizeof(swarm), "worker-%d", w->idx);
	while (!atomic_load(w->stop)) {
		int t = (int)(rand_r(&seed) % CHAOS_TASKS);
		co_record *out = NULL;
		int rc;

		if (rand_r(&seed) % 20 == 0) {
			co_record *nt = NULL;

			snprintf(id, sizeof(id), "new-%d-%d", w->idx, w->creates++);
			co_record_new(&nt, CO_KIND_TASK, id);
			rc = co_router_task_create(&out, w->f->r, nt);
			co_record_free(nt);
			if (rc == 0)
				note(w, -1 - (w->creates - 1), 1, 'n');
			else
				count_error(w, rc);
			co_record_free(out);
			continue;
		}
		snprintf(id, sizeof(id), "chaos-%d", t);
		rc = co_router_claim(&out, w->f->r, id, swarm, 0);
		if (rc == CO_ECONFLICT) {
			co_record_free(out);
			continue;
		}
		if (rc < 0) {
			count_error(w, rc);
			continue;
		}
		note(w, t, out->rev, 'c');
		co_record_free(out);
		out = NULL;
		/* release until it is acknowledged: the worker must not leave a
		 * claim it holds behind, or the history walk would be ambiguous */
		for (;;) {
			rc = co_router_release(&out, w->f->r, id, swarm,
					       CO_STATUS_AVAILABLE);
			if (rc == 0) {
				note(w, t, out->rev, 'r');
				co_record_free(out);
				break;
			}
			co_record_free(out);
			out = NULL;
			count_error(w, rc);
			if (rc != CO_EUNAVAIL)
				break;
		}
	}
	return NULL;
}

struct flipper {
	fx *f;
	atomic_int *stop;
	int flips;
};

static void *chaos_flipper(void *arg)
{
	struct flipper *fl = arg;
	static const char *stages[] = {"shadow", "10", "50", "100"};
	unsigned seed = 42;
	struct timespec ts = {0, 50 * 1000000L};

	while (!atomic_load(fl->stop)) {
		co_flags f;
		co_stage s;

		co_flags_init(&f);
		co_stage_parse(&s, stages[rand_r(&seed) % 4]);
		co_stage_apply(&f, s);
		co_flags_set_kill(&f, rand_r(&seed) % 4 == 0, "chaos");
		/* through the file, as an operator would: the watcher reloads it */
		co_flags_save(&f, fl->f->flags_path);
		fl->flips++;
		nanosleep(&ts, NULL); /* the cadence under test, not a synchronisation */
	}
	return NULL;
}

static int ev_cmp(const void *a, const void *b)
{
	const ev *x = a, *y = b;

	if (x->task != y->task)
		return x->task < y->task ? -1 : 1;
	return x->rev < y->rev ? -1 : x->rev > y->rev;
}

static void chaos_flips_stages_and_kill_switch_without_double_claims(void **state)
{
	struct worker w[CHAOS_WORKERS];
	struct flipper fl;
	pthread_t th[CHAOS_WORKERS], ft;
	atomic_int stop = 0;
	const char *secs = getenv("CUTOVER_CHAOS_SECONDS");
	int seconds = secs ? atoi(secs) : 30, i, t, unavailable = 0;
	ev *all = NULL;
	size_t n = 0, k;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "shadow", 1);
	for (t = 0; t < CHAOS_TASKS; t++) {
		char id[32];

		snprintf(id, sizeof(id), "chaos-%d", t);
		create_task(&f, id);
	}
	fl = (struct flipper){&f, &stop, 0};
	for (i = 0; i < CHAOS_WORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].f = &f;
		w[i].idx = i;
		w[i].stop = &stop;
		pthread_create(&th[i], NULL, chaos_worker, &w[i]);
	}
	pthread_create(&ft, NULL, chaos_flipper, &fl);
	sleep((unsigned)seconds); /* the length of the run, not a synchronisation */
	atomic_store(&stop, 1);
	pthread_join(ft, NULL);
	for (i = 0; i < CHAOS_WORKERS; i++)
		pthread_join(th[i], NULL);

	/* Settle: end in plain shadow, drain, then compare. */
	set_stage(&f, "shadow", 0);
	drain_all(&f);

	for (i = 0; i < CHAOS_WORKERS; i++) {
		unavailable += w[i].unavailable;
		if (w[i].other_errors)
			fail_msg("worker %d: %d unexpected errors, last: %s", i,
				 w[i].other_errors, w[i].last_error);
		all = realloc(all, (n + w[i].n) * sizeof(*all));
		memcpy(all + n, w[i].evs, w[i].n * sizeof(*all));
		n += w[i].n;
		free(w[i].evs);
	}
	print_message("chaos: %d s, %d flips, %zu acknowledged writes, %d unavailable\n",
		      seconds, fl.flips, n, unavailable);
	assert_true(fl.flips > seconds * 5);
	assert_true(n >= 20); /* the run did real work, however slow the machine */
	qsort(all, n, sizeof(*all), ev_cmp);

	/* History: per task, acknowledged revs are unique and claims and
	 * releases alternate: no claim is acknowledged while another holds. */
	for (k = 0; k < n;) {
		size_t j = k;
		int holder = -1;
		int64_t last_rev = 0;

		while (j < n && all[j].task == all[k].task) {
			if (all[k].task >= 0) {
				if (all[j].rev == last_rev)
					fail_msg(
					    "task chaos-%d: rev %lld acknowledged twice",
					    all[k].task, (long long)last_rev);
				if (all[j].type == 'c') {
					if (holder != -1 && holder != all[j].worker)
						fail_msg(
						    "task chaos-%d: double claim at rev "
						    "%lld "
						    "(worker-%d holds, worker-%d won)",
						    all[k].task, (long long)all[j].rev,
						    holder, all[j].worker);
					holder = all[j].worker;
				} else if (all[j].type == 'r') {
					if (holder != all[j].worker)
						fail_msg("task chaos-%d: release at rev "
							 "%lld by "
							 "worker-%d who does not hold it",
							 all[k].task,
							 (long long)all[j].rev,
							 all[j].worker);
					holder = -1;
				}
				last_rev = all[j].rev;
			}
			j++;
		}
		/* Nothing acknowledged lost: both stores hold the last rev. */
		if (all[k].task >= 0) {
			co_record *g = NULL, *e = NULL;
			char id[32];

			snprintf(id, sizeof(id), "chaos-%d", all[k].task);
			assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, id), 0);
			assert_int_equal(co_store_get(&e, f.etcd, CO_KIND_TASK, id), 0);
			if (g->rev < last_rev || e->rev < last_rev)
				fail_msg(
				    "%s: acknowledged rev %lld, git has %lld, etcd %lld",
				    id, (long long)last_rev, (long long)g->rev,
				    (long long)e->rev);
			assert_null(g->owner);
			co_record_free(g);
			co_record_free(e);
		}
		k = j;
	}
	/* Every acknowledged create is in both stores. */
	for (i = 0; i < CHAOS_WORKERS; i++) {
		int c;

		for (c = 0; c < w[i].creates; c++) {
			co_record *g = NULL, *e = NULL;
			char id[64];
			int acked = 0;

			for (k = 0; k < n; k++)
				if (all[k].type == 'n' && all[k].worker == i &&
				    all[k].task == -1 - c)
					acked = 1;
			if (!acked)
				continue;
			snprintf(id, sizeof(id), "new-%d-%d", i, c);
			assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, id), 0);
			assert_int_equal(co_store_get(&e, f.etcd, CO_KIND_TASK, id), 0);
			co_record_free(g);
			co_record_free(e);
		}
	}
	assert_stores_equal(&f, CO_KIND_TASK);
	free(all);
	fx_close(&f);
}

/* ---- etcd killed under load in dual 50 ---- */

struct loader {
	fx *f;
	int idx;
	atomic_int *stop, *phase; /* phase: 0 up, 1 killed (etcd down), 2 restarted */
	int acked_down_etcd_primary, failed_unavail, acked;
	ev *evs;
	size_t n, cap;
	char bad[256];
};

static void *loader_main(void *arg)
{
	struct loader *l = arg;
	unsigned seed = (unsigned)l->idx + 99;
	char swarm[32], id[32];

	snprintf(swarm, sizeof(swarm), "load-%d", l->idx);
	while (!atomic_load(l->stop)) {
		int t = (int)(rand_r(&seed) % 200), before, after, rc;
		co_record *out = NULL;
		co_route rt;

		snprintf(id, sizeof(id), "kill-%d", t);
		co_router_route(&rt, l->f->r, CO_OP_TASK_CLAIM, id);
		before = atomic_load(l->phase);
		rc = co_router_claim(&out, l->f->r, id, swarm, 0);
		after = atomic_load(l->phase);
		if (rc == 0) {
			if (before == 1 && after == 1 && rt.primary == CO_SIDE_ETCD)
				l->acked_down_etcd_primary++;
			if (l->n + 2 > l->cap) {
				l->cap = l->cap ? l->cap * 2 : 1024;
				l->evs = realloc(l->evs, l->cap * sizeof(*l->evs));
			}
			l->evs[l->n++] = (ev){t, out->rev, 'c', l->idx};
			l->acked++;
			co_record_free(out);
			out = NULL;
			rc = co_router_release(&out, l->f->r, id, swarm,
					       CO_STATUS_AVAILABLE);
			if (rc == 0)
				l->evs[l->n++] = (ev){t, out->rev, 'r', l->idx};
		} else if (rc == CO_EUNAVAIL) {
			l->failed_unavail++;
		} else if (rc != CO_ECONFLICT) {
			snprintf(l->bad, sizeof(l->bad), "%d %s", rc, co_error_last());
		}
		co_record_free(out);
	}
	return NULL;
}

static void etcd_killed_in_dual_50_loses_no_acknowledged_write(void **state)
{
	co_test_etcd own;
	struct loader l[4];
	pthread_t th[4];
	atomic_int stop = 0, phase = 0;
	struct timespec q = {0, 500 * 1000000L};
	int i, t;
	fx f;

	(void)state;
	assert_int_equal(co_test_etcd_start(&own), 0);
	fx_open_on(&f, &own, "50", 1);
	for (t = 0; t < 200; t++) {
		char id[32];

		snprintf(id, sizeof(id), "kill-%d", t);
		create_task(&f, id);
	}
	for (i = 0; i < 4; i++) {
		memset(&l[i], 0, sizeof(l[i]));
		l[i] = (struct loader){.f = &f, .idx = i, .stop = &stop, .phase = &phase};
		pthread_create(&th[i], NULL, loader_main, &l[i]);
	}
	nanosleep(&q, NULL); /* load runs with etcd up for a while */
	co_test_etcd_kill(&own);
	atomic_store(&phase, 1);
	nanosleep(&q, NULL);
	nanosleep(&q, NULL);
	atomic_store(&phase, 2);
	assert_int_equal(co_test_etcd_restart(&own), 0);
	nanosleep(&q, NULL);
	atomic_store(&stop, 1);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	drain_all(&f);
	for (i = 0; i < 4; i++) {
		size_t k;

		if (l[i].bad[0])
			fail_msg("loader %d: unexpected error %s", i, l[i].bad);
		/* writes whose primary was etcd could not be acknowledged */
		assert_int_equal(l[i].acked_down_etcd_primary, 0);
		for (k = 0; k < l[i].n; k++) {
			co_record *g = NULL, *e = NULL;
			char id[32];

			snprintf(id, sizeof(id), "kill-%d", l[i].evs[k].task);
			assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, id), 0);
			assert_int_equal(co_store_get(&e, f.etcd, CO_KIND_TASK, id), 0);
			if (g->rev < l[i].evs[k].rev || e->rev < l[i].evs[k].rev)
				fail_msg("%s: acknowledged rev %lld lost (git %lld, etcd "
					 "%lld)",
					 id, (long long)l[i].evs[k].rev,
					 (long long)g->rev, (long long)e->rev);
			co_record_free(g);
			co_record_free(e);
		}
		print_message("loader %d: %d acknowledged claims, %d unavailable\n", i,
			      l[i].acked, l[i].failed_unavail);
		free(l[i].evs);
	}
	assert_stores_equal(&f, CO_KIND_TASK);
	fx_close(&f);
	co_test_etcd_stop(&own);
}

/* ---- group commit of intents (etcd mode) ---- */

/* A router over f's state and flags with `etcd_store` as its etcd. */
static void reopen_router(fx *f, co_store *etcd_store)
{
	co_router_opts ro = CO_ROUTER_OPTS_INIT;

	co_router_close(f->r);
	f->r = NULL;
	ro.git = f->git;
	ro.etcd = etcd_store;
	ro.state = f->st;
	ro.flags = f->fw;
	assert_int_equal(co_router_open(&f->r, &ro), 0);
}

static void failed_group_commit_fails_the_write_and_keeps_what_git_is_owed(void **state)
{
	co_record *out = NULL, *e = NULL;
	co_outbox_list l = {0};
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	create_task(&f, "gc-1");
	create_task(&f, "gc-2");
	create_task(&f, "gc-3");
	drain_all(&f);

	atomic_store(&co_state__sync_fault, 1);
	assert_int_equal(co_router_claim(&out, f.r, "gc-1", "swarm-a", 0), CO_EUNAVAIL);
	assert_null(out);
	assert_non_null(strstr(co_error_last(), "could not be made durable"));
	/* etcd, the primary, took the claim; git is still owed it */
	assert_int_equal(co_store_get(&e, f.etcd, CO_KIND_TASK, "gc-1"), 0);
	assert_string_equal(e->owner, "swarm-a");
	co_record_free(e);
	assert_int_equal(co_outbox_pending_for(&l, f.st, "git", "task", "gc-1"), 0);
	assert_int_equal(l.n, 1);
	co_outbox_list_clear(&l);

	/* While the disk keeps failing, so does every later write: healing
	 * (a checkpoint of the whole log into the synced database) fails too. */
	assert_int_equal(co_router_claim(&out, f.r, "gc-2", "swarm-a", 0), CO_EUNAVAIL);
	assert_null(out);

	/* Once it works again the syncer heals the log first, and the same
	 * router acknowledges again, with no restart; git catches up. */
	atomic_store(&co_state__sync_fault, 0);
	assert_int_equal(co_router_claim(&out, f.r, "gc-3", "swarm-a", 0), 0);
	co_record_free(out);
	drain_all(&f);
	assert_stores_equal(&f, CO_KIND_TASK);
	fx_close(&f);
}

/*
 * What a power cut leaves after an acknowledged etcd-mode write whose
 * record was not synced: the durable intent only.  Git must then never
 * serve the ID from before the write, whether etcd is reachable or not;
 * once etcd is, the intent brings the record over.
 */
static void
lost_record_falls_back_to_its_intent_and_git_serves_nothing_stale(void **state)
{
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	const char *dead[1] = {"http://127.0.0.1:1"};
	co_store *down = NULL;
	co_record *out = NULL;
	co_outbox_list l = {0};
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	create_task(&f, "pl-1");
	drain_all(&f); /* git holds pl-1 unclaimed */
	assert_int_equal(co_router_claim(&out, f.r, "pl-1", "swarm-a", 0), 0);
	co_record_free(out);
	out = NULL;
	reopen_router(&f, f.etcd); /* what the syncer deferred is written */

	/* The power cut: the record owed to git is lost, its intent (written
	 * by the router that died, so with another nonce) is on disk. */
	assert_int_equal(co_outbox_pending_for(&l, f.st, "git", "task", "pl-1"), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(co_outbox_ack(f.st, l.items[0]->seq), 0);
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_push_intent(NULL, f.st, "git", "task", "pl-1",
					       "@sync:00000000dead"),
			 0);

	/* Restarted with the kill switch on (git serves) and etcd down. */
	eo.endpoints = dead;
	eo.n_endpoints = 1;
	eo.prefix = f.prefix;
	eo.connect_timeout_ms = 200;
	eo.request_timeout_ms = 500;
	assert_int_equal(co_etcd_store_open(&down, &eo), 0);
	set_stage(&f, "etcd", 1);
	reopen_router(&f, down);
	/* young: the dead router's operation might still be in flight */
	assert_int_equal(co_router_get(&out, f.r, CO_KIND_TASK, "pl-1"), CO_EUNAVAIL);
	assert_int_equal(co_router_claim(&out, f.r, "pl-1", "swarm-b", 0), CO_EUNAVAIL);
	/* old enough to resolve, but etcd cannot be read: still nothing */
	setenv("CUTOVER_CLOCK_OFFSET", "60", 1);
	assert_int_equal(co_router_get(&out, f.r, CO_KIND_TASK, "pl-1"), CO_EUNAVAIL);
	assert_int_equal(co_router_claim(&out, f.r, "pl-1", "swarm-b", 0), CO_EUNAVAIL);
	assert_null(out);

	/* etcd back: git is mended from it before it serves the ID */
	reopen_router(&f, f.etcd);
	assert_int_equal(co_router_get(&out, f.r, CO_KIND_TASK, "pl-1"), 0);
	unsetenv("CUTOVER_CLOCK_OFFSET");
	assert_string_equal(out->owner, "swarm-a");
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_router_claim(&out, f.r, "pl-1", "swarm-b", 0), CO_ECONFLICT);
	co_record_free(out);
	co_router_close(f.r);
	f.r = NULL;
	co_store_free(down);
	fx_close(&f);
}

/*
 * In etcd mode the record owed to git replaces its intent after the write
 * is acknowledged (the syncer does it, batched).  Until then git's debt is
 * the intent alone, which needs etcd to be resolved: the kill switch,
 * pulled while etcd is down, must still find the record in memory.
 */
static void deferred_record_is_served_by_git_at_kill_switch_with_etcd_down(void **state)
{
	co_test_etcd own;
	co_record *out = NULL;
	co_outbox_list l = {0};
	fx f;

	(void)state;
	assert_int_equal(co_test_etcd_start(&own), 0);
	fx_open_on(&f, &own, "etcd", 0);
	create_task(&f, "df-1");
	drain_all(&f); /* git holds df-1 unclaimed */
	atomic_store(&co_router__hold_fulfils, 1);
	assert_int_equal(co_router_claim(&out, f.r, "df-1", "swarm-a", 0), 0);
	co_record_free(out);
	out = NULL;
	/* acknowledged, and on disk git is owed only the intent */
	assert_int_equal(co_outbox_pending_for(&l, f.st, "git", "task", "df-1"), 0);
	assert_int_equal(l.n, 1);
	assert_non_null(l.items[0]->payload);
	assert_memory_equal(l.items[0]->payload, "@sync:", 6);
	co_outbox_list_clear(&l);

	co_test_etcd_kill(&own);
	set_stage(&f, "etcd", 1); /* kill switch: git serves everything */
	assert_int_equal(co_router_get(&out, f.r, CO_KIND_TASK, "df-1"), 0);
	assert_string_equal(out->owner, "swarm-a");
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_router_claim(&out, f.r, "df-1", "swarm-b", 0), CO_ECONFLICT);
	assert_string_equal(out->owner, "swarm-a");
	co_record_free(out);
	atomic_store(&co_router__hold_fulfils, 0);
	fx_close(&f);
	co_test_etcd_stop(&own);
}

/* In etcd mode every write leaves git a record to catch up on; the drain
 * writes a batch of them in one commit, not one commit each. */
static void etcd_mode_backlog_reaches_git_in_a_few_commits(void **state)
{
	char *out = NULL;
	int before, after, i;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	assert_int_equal(
	    co_test_sh(&out, NULL,
		       "git --git-dir='%s' rev-list --count main 2>/dev/null "
		       "|| echo 0",
		       f.repo),
	    0);
	before = atoi(out);
	free(out);
	for (i = 0; i < 100; i++) {
		char id[32];

		snprintf(id, sizeof(id), "bk-%03d", i);
		create_task(&f, id);
	}
	drain_all(&f);
	assert_int_equal(
	    co_test_sh(&out, NULL, "git --git-dir='%s' rev-list --count main", f.repo),
	    0);
	after = atoi(out);
	free(out);
	/* batches of at most 64: two commits, a few more if a batch raced */
	if (after - before > 6)
		fail_msg("100 records took %d commits", after - before);
	assert_stores_equal(&f, CO_KIND_TASK);
	fx_close(&f);
}

/*
 * A writer holding one ID's stripe lock (a claim in flight on a hot task)
 * does not hold up the drain of every other ID: the drain leaves the busy
 * ID for its next round (issue 16: the outbox to git fell behind under a
 * hot set while the drain queued on each writer's lock in turn).  The lock
 * is held by another thread for as long as the drain runs; a drain that
 * waited for it would never return and the test would time out.
 */
struct holder {
	pthread_mutex_t *mu;
	pthread_mutex_t m;
	pthread_cond_t cv;
	int held, release;
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;

	pthread_mutex_lock(h->mu);
	pthread_mutex_lock(&h->m);
	h->held = 1;
	pthread_cond_broadcast(&h->cv);
	while (!h->release)
		pthread_cond_wait(&h->cv, &h->m);
	pthread_mutex_unlock(&h->m);
	pthread_mutex_unlock(h->mu);
	return NULL;
}

static void drain_passes_an_id_a_writer_holds_and_takes_it_next_round(void **state)
{
	struct holder h = {0};
	pthread_t th;
	int64_t left = -1;
	char id[32];
	int i;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	for (i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "hot-%03d", i);
		create_task(&f, id);
	}
	pthread_mutex_init(&h.m, NULL);
	pthread_cond_init(&h.cv, NULL);
	h.mu = stripe(f.r, "hot-007");
	assert_int_equal(pthread_create(&th, NULL, holder_main, &h), 0);
	pthread_mutex_lock(&h.m);
	while (!h.held)
		pthread_cond_wait(&h.cv, &h.m);
	pthread_mutex_unlock(&h.m);

	/* Every ID but those sharing hot-007's stripe reaches git now. */
	co_router_drain(f.r, "git", 5000, &left);
	for (i = 0; i < 40; i++) {
		co_record *g = NULL;
		int rc;

		snprintf(id, sizeof(id), "hot-%03d", i);
		rc = co_store_get(&g, f.git, CO_KIND_TASK, id);
		if (stripe(f.r, id) == h.mu)
			assert_int_equal(rc, CO_ENOTFOUND);
		else
			assert_int_equal(rc, 0);
		co_record_free(g);
	}
	assert_true(left >= 1);

	pthread_mutex_lock(&h.m);
	h.release = 1;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.m);
	pthread_join(th, NULL);
	drain_all(&f);
	assert_stores_equal(&f, CO_KIND_TASK);
	pthread_cond_destroy(&h.cv);
	pthread_mutex_destroy(&h.m);
	fx_close(&f);
}

static int git_has_claim(fx *f, const char *id, const char *swarm);

/*
 * A hot task written twenty times while git was not drained owes git
 * twenty entries; one round of the drain retires them all, writing only
 * the newest record (puts are "if newer": the older ones change nothing
 * after it).  Each round once took one entry per ID, so under the soak's
 * load the outbox to git grew to 18,000 entries.
 */
static void one_round_retires_a_hot_ids_whole_run(void **state)
{
	co_record *e = NULL, *g = NULL, *out = NULL;
	int64_t left = -1;
	char *ej, *gj;
	int i;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	create_task(&f, "run-1");
	create_task(&f, "run-2");
	for (i = 0; i < 10; i++) {
		assert_int_equal(co_router_claim(&out, f.r, "run-1", "s1", 0), 0);
		co_record_free(out);
		assert_int_equal(co_router_release(&out, f.r, "run-1", "s1", CO_STATUS_AVAILABLE), 0);
		co_record_free(out);
	}
	assert_int_equal(co_router_claim(&out, f.r, "run-2", "s2", 0), 0);
	co_record_free(out);
	co_router_drain(f.r, "git", 0, &left); /* budget 0: one round */
	assert_int_equal(left, 0);
	assert_int_equal(co_store_get(&e, f.etcd, CO_KIND_TASK, "run-1"), 0);
	assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, "run-1"), 0);
	ej = co_record_to_json(e, 0);
	gj = co_record_to_json(g, 0);
	assert_string_equal(gj, ej);
	free(ej);
	free(gj);
	co_record_free(e);
	co_record_free(g);
	assert_true(git_has_claim(&f, "run-2", "s2"));
	fx_close(&f);
}

/*
 * Seq order is not rev order: two routers' intents on one ID are filled in
 * the order their primaries committed, and a record whose intent a drain
 * resolved first goes back in with a new seq.  Here the outbox owes git
 * rev 2 and rev 3 (the router's own claim and release), then rev 3 and
 * rev 2 again: putting each "if newer" in turn leaves rev 3, so the run
 * must write rev 3, not its last row.  Both by the drain and by settle.
 */
static void run_owing_revs_out_of_order(fx *f, const char *id, char **j2, char **j3)
{
	co_record *out = NULL;
	int64_t seq;

	create_task(f, id);
	drain_all(f);
	assert_int_equal(co_router_claim(&out, f->r, id, "s1", 0), 0);
	*j2 = co_record_to_json(out, 0);
	co_record_free(out);
	assert_int_equal(co_router_release(&out, f->r, id, "s1", CO_STATUS_AVAILABLE), 0);
	*j3 = co_record_to_json(out, 0);
	assert_int_equal(out->rev, 3);
	co_record_free(out);
	assert_int_equal(co_outbox_push(&seq, f->st, "git", "task", id, *j3), 0);
	assert_int_equal(co_outbox_push(&seq, f->st, "git", "task", id, *j2), 0);
}

static void a_run_writes_its_highest_rev_not_its_last_row(void **state)
{
	co_record *g = NULL, *out = NULL;
	char *j2 = NULL, *j3 = NULL;
	int64_t left = -1;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	/* the drain */
	run_owing_revs_out_of_order(&f, "ro-1", &j2, &j3);
	co_router_drain(f.r, "git", 0, &left);
	assert_int_equal(left, 0);
	assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, "ro-1"), 0);
	assert_int_equal(g->rev, 3);
	co_record_free(g);
	free(j2);
	free(j3);
	/* settle, after the kill switch */
	run_owing_revs_out_of_order(&f, "ro-2", &j2, &j3);
	set_stage(&f, "git", 1);
	assert_int_equal(co_router_get(&out, f.r, CO_KIND_TASK, "ro-2"), 0);
	assert_int_equal(out->rev, 3);
	assert_int_equal(out->status, CO_STATUS_AVAILABLE);
	co_record_free(out);
	assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, "ro-2"), 0);
	assert_int_equal(g->rev, 3);
	co_record_free(g);
	free(j2);
	free(j3);
	fx_close(&f);
}

/* How many commits git's repo holds, on every ref. */
static long git_commits(fx *f)
{
	char *out = NULL;
	long n = -1;

	if (co_test_sh(&out, NULL, "git --git-dir='%s' rev-list --count --all", f->repo) ==
	    0)
		n = strtol(out, NULL, 10);
	free(out);
	return n;
}

/*
 * Serving an ID from git first applies what git is owed for it (settle):
 * twenty-one records written through etcd go to git as one commit of the
 * newest, not one commit each, after the kill switch as on any flip.
 */
static void settle_writes_a_run_of_records_once(void **state)
{
	co_record *out = NULL;
	long before;
	int64_t left = -1;
	int i;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	create_task(&f, "st-1");
	for (i = 0; i < 10; i++) {
		assert_int_equal(co_router_claim(&out, f.r, "st-1", "s1", 0), 0);
		co_record_free(out);
		assert_int_equal(co_router_release(&out, f.r, "st-1", "s1",
						   CO_STATUS_AVAILABLE),
				 0);
		co_record_free(out);
	}
	before = git_commits(&f);
	assert_true(before >= 0);
	set_stage(&f, "git", 1);
	assert_int_equal(co_router_claim(&out, f.r, "st-1", "s2", 0), 0);
	assert_int_equal(out->status, CO_STATUS_CLAIMED);
	co_record_free(out);
	/* the run's one commit, then the claim's */
	assert_int_equal(git_commits(&f), before + 2);
	assert_true(git_has_claim(&f, "st-1", "s2"));
	assert_int_equal(co_outbox_depth(&left, f.st, "git"), 0);
	assert_int_equal(left, 0);
	fx_close(&f);
}

/*
 * A remove ends a run: what comes after it is applied after it.  git holds
 * rev 2; the outbox owes it rev 2 again, a remove, then the task created
 * anew at rev 1.  Writing only the newest (rev 1, "if newer" than rev 2)
 * would leave rev 2 in git; applied in order, git ends at the new rev 1.
 */
static void a_remove_ends_a_run(void **state)
{
	co_record *r1 = NULL, *r2 = NULL, *g = NULL;
	int64_t seq;
	char *j1, *j2;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	create_task(&f, "rm-1");
	assert_int_equal(co_store_get(&r1, f.etcd, CO_KIND_TASK, "rm-1"), 0);
	assert_int_equal(co_router_claim(&r2, f.r, "rm-1", "s1", 0), 0);
	assert_true(r2->rev > r1->rev);
	drain_all(&f);
	assert_true(git_has_claim(&f, "rm-1", "s1"));
	j1 = co_record_to_json(r1, 0);
	j2 = co_record_to_json(r2, 0);
	assert_int_equal(co_outbox_push(&seq, f.st, "git", "task", "rm-1", j2), 0);
	assert_int_equal(co_outbox_push(&seq, f.st, "git", "task", "rm-1", NULL), 0);
	assert_int_equal(co_outbox_push(&seq, f.st, "git", "task", "rm-1", j1), 0);
	drain_all(&f);
	assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, "rm-1"), 0);
	assert_int_equal(g->rev, r1->rev);
	assert_int_equal(g->status, CO_STATUS_AVAILABLE);
	free(j1);
	free(j2);
	co_record_free(r1);
	co_record_free(r2);
	co_record_free(g);
	fx_close(&f);
}

/*
 * An entry the drain cannot apply waits 50 ms, doubled per attempt up to
 * CO_OUTBOX_BACKOFF_MAX_MS, and no longer.  (The drain once doubled the
 * delay itself before the outbox doubled it again: seven failures under
 * load left an entry waiting two minutes after the load was gone.)  The
 * entry here fails because etcd refuses it: a task whose record is not
 * one, which no retry mends.
 */
static void a_failing_entry_backs_off_once_not_twice(void **state)
{
	co_outbox_list l = {0};
	int64_t seq, left = -1, before;
	int i;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "etcd", 0);
	assert_int_equal(co_outbox_push(&seq, f.st, "etcd", "task", "bad-1", "{\"id\":"), 0);
	for (i = 1; i <= 7; i++) {
		assert_int_equal(co_outbox_retry_now(NULL, f.st, "etcd"), 0);
		before = co_state_now_ms();
		co_router_drain(f.r, "etcd", 1000, &left);
		assert_int_equal(left, 1);
		assert_int_equal(co_outbox_pending_for(&l, f.st, "etcd", "task", "bad-1"), 0);
		assert_int_equal(l.n, 1);
		assert_int_equal(l.items[0]->attempts, i);
		/* due after 50 ms * 2^(i-1), never later */
		assert_true(l.items[0]->next_attempt_at - before <= (50LL << (i - 1)) + 1000);
		co_outbox_list_clear(&l);
	}
	fx_close(&f);
}

/* ---- the router killed mid-load ---- */

/* A router process SIGKILLed while it creates tasks at `stage`, between
 * etcd's acks and the git batches that follow them: a restarted router
 * brings git up to every acknowledged write. */
static void killed_mid_load_drains_after_restart(const char *stage)
{
	int pipefd[2], acks = 0;
	pid_t pid;
	fx f;
	FILE *in;
	char line[128];

	fx_open_on(&f, &co_test_group_etcd, stage, 0);
	/* etcd decides (every ID in etcd, half in dual 50): git is fed through
	 * the outbox, so it fills up */
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		/* A fresh router process.  exec, not just fork: a child of a
		 * threaded process may inherit a lock another thread held (the
		 * sanitizer's allocator did, and hung the child). */
		dup2(pipefd[1], STDOUT_FILENO);
		close(pipefd[0]);
		execl("/proc/self/exe", "router_test_router", "--router-child", f.repo,
		      f.dir, f.flags_path, co_test_group_etcd.endpoint, f.prefix,
		      (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	in = fdopen(pipefd[0], "r");
	while (acks < 200 && fgets(line, sizeof(line), in))
		acks++;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	while (fgets(line, sizeof(line), in))
		acks++;
	fclose(in);
	assert_true(acks >= 200);
	{
		int64_t depth = 0;

		co_outbox_depth(&depth, f.st, NULL);
		print_message(
		    "router killed after %d acknowledged creates, outbox %lld\n", acks,
		    (long long)depth);
		assert_true(depth > 0);
	}
	/* A restarted router (this process's) drains what the dead one left,
	 * its in-flight intents included once they are stale. */
	drain_all(&f);
	for (int i = 0; i < acks; i++) {
		co_record *g = NULL;
		char id[32];

		snprintf(id, sizeof(id), "crash-%d", i);
		assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, id), 0);
		co_record_free(g);
	}
	assert_stores_equal(&f, CO_KIND_TASK);
	fx_close(&f);
}

static void router_killed_mid_load_drains_after_restart(void **state)
{
	(void)state;
	killed_mid_load_drains_after_restart("etcd");
}

static void router_killed_mid_load_in_dual_50_drains_after_restart(void **state)
{
	(void)state;
	killed_mid_load_drains_after_restart("50");
}

/* ---- dual: git follows etcd's decisions through the outbox ---- */

/* Whether store s holds task id claimed by swarm. */
static int has_claim(co_store *s, const char *id, const char *swarm)
{
	co_record *r = NULL;
	int yes;

	if (co_store_get(&r, s, CO_KIND_TASK, id) < 0)
		return 0;
	yes = r->status == CO_STATUS_CLAIMED && r->owner && strcmp(r->owner, swarm) == 0;
	co_record_free(r);
	return yes;
}

static int git_has_claim(fx *f, const char *id, const char *swarm)
{
	return has_claim(f->git, id, swarm);
}

static int etcd_has_claim(fx *f, const char *id, const char *swarm)
{
	return has_claim(f->etcd, id, swarm);
}

/*
 * Where git decides in dual, the write's intent is synced when git gives
 * the write its turn (co_store_on_write), not when it queues: the ack
 * still waits for that sync (a failed one refuses the write, and etcd
 * stays owed what git took), and a claim git refuses on its first read
 * costs no fsync at all.
 */
static void git_decided_writes_sync_in_their_turn_and_refusals_not_at_all(void **state)
{
	co_record *out = NULL, *g = NULL;
	co_outbox_list l = {0};
	co_route rt;
	char id[32];
	uint64_t asked;
	int i;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "50", 0);
	for (i = 0;; i++) {
		snprintf(id, sizeof(id), "GT-%d", i);
		assert_int_equal(co_router_route(&rt, f.r, CO_OP_TASK_CLAIM, id), 0);
		if (rt.primary == CO_SIDE_GIT)
			break;
	}
	assert_true(rt.secondary_async);
	create_task(&f, id);
	assert_int_equal(co_router_claim(&out, f.r, id, "alice", 0), 0);
	co_record_free(out);
	out = NULL;

	assert_true(co_router_state_syncs(f.r) > 0); /* the create's, the claim's */
	pthread_mutex_lock(&f.r->sync_mu);
	asked = f.r->sync_requested;
	pthread_mutex_unlock(&f.r->sync_mu);
	assert_int_equal(co_router_claim(&out, f.r, id, "bob", 0), CO_ECONFLICT);
	co_record_free(out);
	out = NULL;
	pthread_mutex_lock(&f.r->sync_mu);
	assert_int_equal(f.r->sync_requested, asked); /* no fsync asked for */
	pthread_mutex_unlock(&f.r->sync_mu);

	drain_all(&f); /* etcd owes nothing before the release */
	atomic_store(&co_state__sync_fault, 1);
	assert_int_equal(co_router_release(&out, f.r, id, "alice", CO_STATUS_AVAILABLE),
			 CO_EUNAVAIL);
	assert_null(out);
	assert_non_null(strstr(co_error_last(), "could not be made durable"));
	atomic_store(&co_state__sync_fault, 0);
	/* git, the primary, took the release; etcd is still owed it */
	assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, id), 0);
	assert_null(g->owner);
	co_record_free(g);
	assert_int_equal(co_outbox_pending_for(&l, f.st, "etcd", "task", id), 0);
	assert_int_equal(l.n, 1);
	co_outbox_list_clear(&l);

	assert_int_equal(co_router_claim(&out, f.r, id, "bob", 0), 0);
	co_record_free(out);
	drain_all(&f);
	assert_stores_equal(&f, CO_KIND_TASK);
	fx_close(&f);
}

/*
 * dual 50, no drain running: a claim is acknowledged once the store that
 * decides it has it, before the other does (its record waits in the
 * outbox), whichever store decides; with `mirror: sync`, both stores have
 * every claim when it is acknowledged.  A drain brings the stores level
 * either way.
 */
static void dual_mirrors_through_the_outbox_unless_mirror_is_sync(void **state)
{
	int sync, i, etcd_decided, git_decided, in_git_at_ack, in_etcd_at_ack;
	fx f;

	(void)state;
	for (sync = 0; sync < 2; sync++) {
		fx_open_on(&f, &co_test_group_etcd, "50", 0);
		if (sync) {
			co_flags fl;

			assert_int_equal(co_flags_load(&fl, f.flags_path), 0);
			fl.mirror_sync = 1;
			assert_int_equal(co_flags_save(&fl, f.flags_path), 0);
			assert_int_equal(co_flags_watcher_reload(f.fw), 0);
		}
		etcd_decided = git_decided = in_git_at_ack = in_etcd_at_ack = 0;
		for (i = 0; i < 40; i++) {
			co_record *out = NULL;
			co_route rt;
			char id[32];

			snprintf(id, sizeof(id), "DA-%d", i);
			create_task(&f, id);
			assert_int_equal(co_router_claim(&out, f.r, id, "alice", 0), 0);
			co_record_free(out);
			assert_int_equal(co_router_route(&rt, f.r, CO_OP_TASK_CLAIM, id),
					 0);
			assert_int_equal(rt.secondary_async, !sync);
			/* the primary has it, whichever it is */
			if (rt.primary == CO_SIDE_GIT) {
				git_decided++;
				assert_true(git_has_claim(&f, id, "alice"));
				in_etcd_at_ack += etcd_has_claim(&f, id, "alice");
			} else {
				etcd_decided++;
				assert_true(etcd_has_claim(&f, id, "alice"));
				in_git_at_ack += git_has_claim(&f, id, "alice");
			}
		}
		assert_true(etcd_decided > 5);
		assert_true(git_decided > 5);
		if (sync) {
			assert_int_equal(in_git_at_ack, etcd_decided);
			assert_int_equal(in_etcd_at_ack, git_decided);
		} else {
			assert_true(in_git_at_ack < etcd_decided);
			assert_true(in_etcd_at_ack < git_decided);
		}
		drain_all(&f);
		for (i = 0; i < 40; i++) {
			char id[32];

			snprintf(id, sizeof(id), "DA-%d", i);
			assert_true(git_has_claim(&f, id, "alice"));
		}
		assert_stores_equal(&f, CO_KIND_TASK);
		fx_close(&f);
	}
}

/*
 * In dual 50 the router's watch gives each ID's change once, from the ID's
 * primary, though both stores see it: the secondary's copies (etcd's
 * synchronous mirror, git's batch commit from the drain, several IDs at
 * once) are dropped, and dropping them does not lose the primary's events
 * queued behind them.
 */
static void dual_watch_gives_each_change_once_from_its_primary(void **state)
{
	enum { N = 24 };
	co_router_watch *w = NULL;
	int seen[N] = {0}, n_seen = 0, k, i, git_decided = 0;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "50", 0);
	assert_int_equal(co_router_watch_open(&w, f.r, "tasks/"), 0);
	for (i = 0; i < N; i++) {
		char id[32];

		snprintf(id, sizeof(id), "WA-%d", i);
		create_task(&f, id);
	}
	drain_all(&f); /* git gets the etcd-decided ones, in batch commits */
	for (k = 0; k < 600 && n_seen < N; k++) {
		co_event *e = NULL;
		co_route rt;

		assert_int_equal(co_router_watch_next(&e, w, 100), 0);
		if (e == NULL)
			continue;
		assert_int_equal(sscanf(e->id, "WA-%d", &i), 1);
		assert_true(i >= 0 && i < N);
		assert_int_equal(co_router_route(&rt, f.r, CO_OP_WATCH, e->id), 0);
		assert_string_equal(e->store, rt.primary == CO_SIDE_GIT ? "git" : "etcd");
		git_decided += rt.primary == CO_SIDE_GIT;
		n_seen += seen[i]++ == 0;
		co_event_free(e);
	}
	assert_int_equal(n_seen, N);
	assert_true(git_decided > 0 && git_decided < N); /* both kinds were there */
	for (k = 0; k < 5; k++) { /* and nothing twice */
		co_event *e = NULL;

		assert_int_equal(co_router_watch_next(&e, w, 100), 0);
		if (e)
			fail_msg("a second event for %s from %s", e->id, e->store);
	}
	for (i = 0; i < N; i++)
		assert_int_equal(seen[i], 1);
	co_router_watch_close(w);
	fx_close(&f);
}

/* 32 threads claim one task for 32 swarms; how many won. */
struct contender {
	fx *f;
	const char *id;
	char swarm[32];
	pthread_barrier_t *go;
	int rc;
};

static void *contend_main(void *arg)
{
	struct contender *c = arg;
	co_record *out = NULL;

	pthread_barrier_wait(c->go);
	c->rc = co_router_claim(&out, c->f->r, c->id, c->swarm, 0);
	co_record_free(out);
	return NULL;
}

/*
 * dual 100: 1,000 claims decided by etcd, their git records still owed
 * (the drain held back), then the kill switch.  git decides now; before it
 * serves an owed ID it applies what that ID owes, so 32 swarms racing for
 * each task all lose to the acknowledged owner, and no acknowledged write
 * is lost.  Then the owner releases and exactly one of 32 racers wins.
 */
static void kill_switch_over_1000_owed_claims_serves_no_stale_git(void **state)
{
	enum { N = 1000, CHECK = 40, RACERS = 32 };
	int64_t owed = 0;
	int i, k;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "100", 0);
	atomic_store(&co_router__hold_fulfils, 1);
	for (i = 0; i < N; i++) {
		co_record *out = NULL;
		char id[32];

		snprintf(id, sizeof(id), "OW-%d", i);
		create_task(&f, id);
		assert_int_equal(co_router_claim(&out, f.r, id, "alice", 0), 0);
		co_record_free(out);
	}
	assert_int_equal(co_outbox_depth(&owed, f.st, "git"), 0);
	print_message("git owed %lld entries (records held in memory: the rest)\n",
		      (long long)owed);
	assert_false(git_has_claim(&f, "OW-0", "alice"));
	set_stage(&f, "100", 1); /* the kill switch: git decides from now */
	atomic_store(&co_router__hold_fulfils, 0);
	for (i = 0; i < CHECK; i++) {
		struct contender c[RACERS];
		pthread_t th[RACERS];
		pthread_barrier_t go;
		co_record *out = NULL;
		char id[32];
		int won = 0;

		snprintf(id, sizeof(id), "OW-%d", i * (N / CHECK));
		/* racers against the acknowledged owner: all lose */
		pthread_barrier_init(&go, NULL, RACERS);
		for (k = 0; k < RACERS; k++) {
			c[k].f = &f;
			c[k].id = id;
			c[k].go = &go;
			snprintf(c[k].swarm, sizeof(c[k].swarm), "racer-%d", k);
			assert_int_equal(
			    pthread_create(&th[k], NULL, contend_main, &c[k]), 0);
		}
		for (k = 0; k < RACERS; k++) {
			pthread_join(th[k], NULL);
			assert_int_equal(c[k].rc, CO_ECONFLICT);
		}
		pthread_barrier_destroy(&go);
		assert_true(git_has_claim(&f, id, "alice"));
		/* the owner lets go; then exactly one racer wins */
		assert_int_equal(
		    co_router_release(&out, f.r, id, "alice", CO_STATUS_AVAILABLE), 0);
		co_record_free(out);
		pthread_barrier_init(&go, NULL, RACERS);
		for (k = 0; k < RACERS; k++)
			assert_int_equal(
			    pthread_create(&th[k], NULL, contend_main, &c[k]), 0);
		for (k = 0; k < RACERS; k++) {
			pthread_join(th[k], NULL);
			won += c[k].rc == 0;
			assert_true(c[k].rc == 0 || c[k].rc == CO_ECONFLICT);
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(won, 1);
	}
	/* every acknowledged claim is in git once the debt is drained */
	drain_all(&f);
	for (i = 0; i < N; i++) {
		char id[32];

		snprintf(id, sizeof(id), "OW-%d", i);
		if (i % (N / CHECK) != 0)
			assert_true(git_has_claim(&f, id, "alice"));
	}
	assert_stores_equal(&f, CO_KIND_TASK);
	fx_close(&f);
}

/* Rows of the change audit with `action`. */
static int audited(fx *f, const char *action)
{
	co_audit_change_list l = {0};
	size_t i;
	int n = 0;

	assert_int_equal(co_audit_changes_latest(&l, f->st, 100000), 0);
	for (i = 0; i < l.n; i++)
		n += strcmp(l.items[i]->action, action) == 0;
	co_audit_change_list_clear(&l);
	return n;
}

/*
 * shadow, etcd frozen, no drain thread: the mirrors time out (not
 * counted against etcd: slow is not down), the records wait in the
 * outbox, and a probe's pings open the breaker.  After SIGCONT the drain alone probes the
 * store, closes the breaker and empties the outbox.  The router in use replaced another
 * on the same stores (opened before the other closed, as serve reopens its router with a
 * drain): the old one's close leaves the new one's breaker hook in place, so both
 * transitions are audited.
 */
static void drain_alone_closes_the_breaker_and_catches_up(void **state)
{
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_router *other = NULL;
	co_breaker_info bi;
	int i;
	fx f;

	(void)state;
	fx_open_on(&f, &co_test_group_etcd, "shadow", 0);
	ro.git = f.git;
	ro.etcd = f.etcd;
	ro.state = f.st;
	ro.flags = f.fw;
	assert_int_equal(co_router_open(&other, &ro), 0);
	co_router_close(f.r); /* serve's order: the new one opens, the old closes */
	f.r = other;
	assert_int_equal(co_test_etcd_freeze(&co_test_group_etcd), 0);
	for (i = 0; i < 5; i++) {
		char id[32];

		snprintf(id, sizeof(id), "BR-%d", i);
		create_task(&f, id);
	}
	/* the mirrors' 250 ms running out only says etcd is slow; three
	 * pings of a health probe (counted) say it is down */
	co_store_breaker_get(&bi, f.etcd);
	assert_int_equal(bi.state, CO_BREAKER_CLOSED);
	{
		int prev = co_store_call_timeout(200);

		co_store_count_bounded_timeouts(1);
		for (i = 0; i < 3; i++)
			assert_int_equal(co_store_ping(f.etcd), CO_EUNAVAIL);
		co_store_count_bounded_timeouts(0);
		co_store_call_timeout(prev);
	}
	co_store_breaker_get(&bi, f.etcd);
	co_test_etcd_thaw(&co_test_group_etcd);
	assert_int_equal(bi.state, CO_BREAKER_OPEN);
	assert_true(audited(&f, "circuit_open") >= 1);
	drain_all(&f);
	co_store_breaker_get(&bi, f.etcd);
	assert_int_equal(bi.state, CO_BREAKER_CLOSED);
	assert_true(audited(&f, "circuit_closed") >= 1);
	assert_stores_equal(&f, CO_KIND_TASK);
	fx_close(&f);
}

/*
 * The child of router_killed_mid_load_drains_after_restart: a router that
 * creates tasks until it is killed, printing each acknowledged one.
 */
static int router_child(char **argv)
{
	co_test_etcd e;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	fx c;
	int n;

	memset(&c, 0, sizeof(c));
	memset(&e, 0, sizeof(e));
	snprintf(c.repo, sizeof(c.repo), "%s", argv[0]);
	snprintf(c.dir, sizeof(c.dir), "%s", argv[1]);
	snprintf(c.flags_path, sizeof(c.flags_path), "%s", argv[2]);
	snprintf(e.endpoint, sizeof(e.endpoint), "%s", argv[3]);
	snprintf(c.prefix, sizeof(c.prefix), "%s", argv[4]);
	{
		co_git_opts go = CO_GIT_OPTS_INIT;
		co_etcd_opts eo = CO_ETCD_OPTS_INIT;
		const char *eps[1] = {e.endpoint};

		go.repo = c.repo;
		eo.endpoints = eps;
		eo.n_endpoints = 1;
		eo.prefix = c.prefix;
		if (co_git_store_open(&c.git, &go) < 0 ||
		    co_etcd_store_open(&c.etcd, &eo) < 0)
			return 2;
	}
	if (co_state_open(&c.st, c.dir) < 0 ||
	    co_flags_watcher_open(&c.fw, c.flags_path) < 0)
		return 2;
	ro.git = c.git;
	ro.etcd = c.etcd;
	ro.state = c.st;
	ro.flags = c.fw;
	if (co_router_open(&c.r, &ro) < 0)
		return 2;
	for (n = 0;; n++) {
		co_record *t = NULL, *out = NULL;
		char id[32];

		snprintf(id, sizeof(id), "crash-%d", n);
		co_record_new(&t, CO_KIND_TASK, id);
		if (co_router_task_create(&out, c.r, t) == 0) {
			printf("%s %lld\n", id, (long long)out->rev);
			fflush(stdout);
		}
		co_record_free(t);
		co_record_free(out);
	}
}

int main(int argc, char **argv)
{
	if (argc == 7 && strcmp(argv[1], "--router-child") == 0)
		return router_child(argv + 2);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(claim_has_one_winner_through_the_router_in_every_mode),
	    cmocka_unit_test(a_failing_entry_backs_off_once_not_twice),
	    cmocka_unit_test(two_routers_with_different_primaries_never_both_win),
	    cmocka_unit_test(
		failed_group_commit_fails_the_write_and_keeps_what_git_is_owed),
	    cmocka_unit_test(
		lost_record_falls_back_to_its_intent_and_git_serves_nothing_stale),
	    cmocka_unit_test(
		deferred_record_is_served_by_git_at_kill_switch_with_etcd_down),
	    cmocka_unit_test(etcd_mode_backlog_reaches_git_in_a_few_commits),
	    cmocka_unit_test(drain_passes_an_id_a_writer_holds_and_takes_it_next_round),
	    cmocka_unit_test(router_killed_mid_load_drains_after_restart),
	    cmocka_unit_test(router_killed_mid_load_in_dual_50_drains_after_restart),
	    cmocka_unit_test(dual_watch_gives_each_change_once_from_its_primary),
	    cmocka_unit_test(dual_mirrors_through_the_outbox_unless_mirror_is_sync),
	    cmocka_unit_test(git_decided_writes_sync_in_their_turn_and_refusals_not_at_all),
	    cmocka_unit_test(kill_switch_over_1000_owed_claims_serves_no_stale_git),
	    cmocka_unit_test(drain_alone_closes_the_breaker_and_catches_up),
	    cmocka_unit_test(one_round_retires_a_hot_ids_whole_run),
	    cmocka_unit_test(a_remove_ends_a_run),
	    cmocka_unit_test(settle_writes_a_run_of_records_once),
	    cmocka_unit_test(a_run_writes_its_highest_rev_not_its_last_row),
	    cmocka_unit_test(etcd_killed_in_dual_50_loses_no_acknowledged_write),
	    cmocka_unit_test(chaos_flips_stages_and_kill_switch_without_double_claims),
	};
	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
