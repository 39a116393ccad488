/*
 * test_cluster.c - the router against a real 3-member etcd cluster (issue
 * 16 point 1): under a load of concurrent creates, claims and releases, in
 * dual 50 and in etcd mode, with the router given all three client
 * endpoints, the cluster loses its leader (SIGKILL), has it back with its
 * data dir, has a leader hang (SIGSTOP past the election timeout, then
 * SIGCONT) and loses a follower.
 *
 * The sequence runs twice per mode; at the end one member (the first
 * endpoint) stays down while the outbox drains and the reconciler reads.
 * After each fault the router must serve again once the cluster has a
 * leader (endpoint failover: it is never left talking to the lost member).
 * Afterwards: every acknowledged write is in both stores once the outbox
 * has drained and a reconciliation passes; a watch through the router,
 * opened before the load, saw every task's last write (a watch that ends
 * is opened again and counted); no claim has two winners (every
 * acknowledged claim and release is logged with task, rev and worker, and
 * per task no claim is acknowledged while another worker holds it); no
 * call hangs (each returns within HANG_MS: a hang check, not a speed
 * assertion).
 *
 * Outcomes a fault leaves unknown (CO_EUNAVAIL after the txn may have been
 * applied) are resolved by the worker, not guessed: a claim is retried
 * until it is decided (claiming again what one holds succeeds), a release
 * until it is acknowledged or refused.  A release refused after an
 * unknown attempt was applied by that attempt, and since nobody else can
 * change a task its worker holds, at the rev right after the claim's: it
 * is logged there, so a second winner at that rev is still caught (the
 * same rev acknowledged twice).
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
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/cluster.h"
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
#include <time.h>
#include <unistd.h>

#define TASKS 100
#define WORKERS 8
#define HANG_MS 15000	  /* no call may take longer: a hang, not a speed bound */
#define PROGRESS 25	  /* acknowledged ops that show the router serves again */
#define FAILOVER_MS 15000 /* bound on a new leader, and on progress after a fault */
#define ROUNDS 2	  /* of the fault sequence, in each mode */

typedef struct fx {
	char repo[256], dir[256], flags_path[320];
	co_test_cluster c;
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
} fx;

/* ---- the fixture: a router over a bare git repo and the cluster ---- */

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

static void fx_open(fx *f, const char *stage)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_flags fl;

	memset(f, 0, sizeof(*f));
	assert_int_equal(co_test_cluster_start(&f->c), 0);
	assert_int_equal(co_test_git_repo_new(f->repo, sizeof(f->repo)), 0);
	assert_int_equal(co_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	snprintf(f->flags_path, sizeof(f->flags_path), "%s/flags.yaml", f->dir);
	go.repo = f->repo;
	go.poll_interval_ms = 50;
	eo.endpoints = f->c.endpoints;
	eo.n_endpoints = CO_TEST_CLUSTER_N;
	eo.prefix = "/cl/";
	eo.connect_timeout_ms = 500;
	eo.request_timeout_ms = 2000;
	assert_int_equal(co_git_store_open(&f->git, &go), 0);
	assert_int_equal(co_etcd_store_open(&f->etcd, &eo), 0);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	co_flags_init(&fl);
	assert_int_equal(co_flags_save(&fl, f->flags_path), 0);
	assert_int_equal(co_flags_watcher_open(&f->fw, f->flags_path), 0);
	set_stage(f, stage);
	ro.git = f->git;
	ro.etcd = f->etcd;
	ro.state = f->st;
	ro.flags = f->fw;
	ro.background_drain = 1;
	assert_int_equal(co_router_open(&f->r, &ro), 0);
}

static void fx_close(fx *f)
{
	co_router_close(f->r);
	co_flags_watcher_close(f->fw);
	co_state_close(f->st);
	co_store_free(f->git);
	co_store_free(f->etcd);
	co_test_cluster_stop(&f->c);
	co_test_rmrf(f->repo);
	co_test_rmrf(f->dir);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the load ---- */

typedef struct op_ev {
	int task; /* index into the TASKS, or -1 - n for worker's n-th create */
	int64_t rev;
	char type; /* 'c' claim, 'r' release (acknowledged or inferred), 'n' create */
	int worker;
} op_ev;

/* What the workers share with the thread injecting faults. */
typedef struct load {
	fx *f;
	atomic_int stop;
	pthread_mutex_t lock; /* guards acked and running */
	pthread_cond_t cond;
	int64_t acked;
	int running;
} load;

struct worker {
	load *L;
	int idx;
	op_ev *evs;
	size_t n, cap;
	int creates, unavailable, inferred, hangs, other_errors;
	int64_t slowest_ms;
	int stuck[TASKS]; /* 1: an unknown claim of this task was left undecided */
	char last_error[256];
};

static void note(struct worker *w, int task, int64_t rev, char type)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4096;
		w->evs = realloc(w->evs, w->cap * sizeof(*w->evs));
		assert_non_null(w->evs);
	}
	w->evs[w->n++] = (op_ev){task, rev, type, w->idx};
	pthread_mutex_lock(&w->L->lock);
	w->L->acked++;
	pthread_cond_broadcast(&w->L->cond);
	pthread_mutex_unlock(&w->L->lock);
}

/* After a call that took `ms`: the hang check and the slowest call. */
static void timed(struct worker *w, int64_t start, int rc)
{
	int64_t ms = now_ms() - start;

	if (ms > w->slowest_ms)
		w->slowest_ms = ms;
	if (ms > HANG_MS)
		w->hangs++;
	if (rc == CO_EUNAVAIL)
		w->unavailable++;
	else if (rc < 0 && rc != CO_ECONFLICT) {
		w->other_errors++;
		snprintf(w->last_error, sizeof(w->last_error), "%d %s", rc,
			 co_error_last());
	}
}

static int claim(co_record **out, struct worker *w, const char *id, const char *swarm)
{
	int64_t t0 = now_ms();
	int rc = co_router_claim(out, w->L->f->r, id, swarm, 0);

	timed(w, t0, rc);
	return rc;
}

static int release(co_record **out, struct worker *w, const char *id, const char *swarm)
{
	int64_t t0 = now_ms();
	int rc = co_router_release(out, w->L->f->r, id, swarm, CO_STATUS_AVAILABLE);

	timed(w, t0, rc);
	return rc;
}

static void create_one(struct worker *w)
{
	co_record *t = NULL, *out = NULL;
	char id[64];
	int rc, n = w->creates++;

	snprintf(id, sizeof(id), "new-%d-%d", w->idx, n);
	assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
	t->type = strdup("build");
	/* A create of an identical record succeeds: retrying an unknown one is
	 * safe, and it is retried until decided or the run ends. */
	do {
		int64_t t0 = now_ms();

		co_record_free(out);
		out = NULL;
		rc = co_router_task_create(&out, w->L->f->r, t);
		timed(w, t0, rc);
	} while (rc == CO_EUNAVAIL && !atomic_load(&w->L->stop));
	if (rc == 0)
		note(w, -1 - n, out->rev, 'n');
	co_record_free(out);
	co_record_free(t);
}

/* Release task t (held since rev `held`) until it is decided. */
static void release_held(struct worker *w, int t, const char *id, const char *swarm,
			 int64_t held)
{
	int64_t start = now_ms();
	int unknown = 0;

	for (;;) {
		co_record *out = NULL;
		int rc = release(&out, w, id, swarm);

		if (rc == 0) {
			note(w, t, out->rev, 'r');
			co_record_free(out);
			return;
		}
		co_record_free(out);
		if (rc == CO_ECONFLICT && unknown) {
			/* An earlier attempt was applied; see the head comment. */
			note(w, t, held + 1, 'r');
			w->inferred++;
			return;
		}
		if (rc != CO_EUNAVAIL || now_ms() - start > 4 * HANG_MS) {
			w->other_errors++;
			snprintf(w->last_error, sizeof(w->last_error),
				 "release of %s held since rev %lld: %d %s", id,
				 (long long)held, rc, co_error_last());
			return;
		}
		unknown = 1;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned seed = (unsigned)w->idx * 7919u + 17;
	char swarm[32], id[32];

	snprintf(swarm, sizeof(swarm), "worker-%d", w->idx);
	while (!atomic_load(&w->L->stop)) {
		int t = (int)(rand_r(&seed) % TASKS), rc;
		co_record *out = NULL;

		if (rand_r(&seed) % 10 == 0) {
			create_one(w);
			continue;
		}
		snprintf(id, sizeof(id), "cl-%d", t);
		/* An unknown claim is claimed again until decided: if it was
		 * applied, the task is ours and claiming it again wins. */
		do {
			co_record_free(out);
			out = NULL;
			rc = claim(&out, w, id, swarm);
		} while (rc == CO_EUNAVAIL && !atomic_load(&w->L->stop));
		if (rc == CO_EUNAVAIL)
			w->stuck[t] = 1;
		if (rc == 0) {
			int64_t held = out->rev;

			w->stuck[t] = 0;
			note(w, t, held, 'c');
			release_held(w, t, id, swarm, held);
		}
		co_record_free(out);
	}
	pthread_mutex_lock(&w->L->lock);
	w->L->running--;
	pthread_cond_broadcast(&w->L->cond);
	pthread_mutex_unlock(&w->L->lock);
	return NULL;
}

/*
 * A watch through the router, opened before the load: it must follow the
 * failovers and deliver every task's last rev.  Records the highest rev
 * seen per task; if the watch ends (CO_EUNAVAIL) it is counted and opened
 * again, as a client would.
 */
struct watcher {
	fx *f;
	atomic_int stop;
	pthread_mutex_t lock; /* guards seen and events */
	pthread_cond_t cond;  /* broadcast on each event */
	int64_t seen[TASKS];
	int opened, events, ended;
	char why[256];
};

static void *watcher_main(void *arg)
{
	struct watcher *wa = arg;
	co_router_watch *w = NULL;

	while (!atomic_load(&wa->stop)) {
		co_event *ev = NULL;
		int t, rc;

		if (w == NULL && co_router_watch_open(&w, wa->f->r, "tasks/") == 0) {
			pthread_mutex_lock(&wa->lock);
			wa->opened = 1;
			pthread_cond_broadcast(&wa->cond);
			pthread_mutex_unlock(&wa->lock);
		}
		if (w == NULL) {
			struct timespec pause = {0, 50 * 1000000L};

			nanosleep(&pause, NULL); /* a retry's interval */
			continue;
		}
		if ((rc = co_router_watch_next(&ev, w, 200)) < 0) {
			wa->ended++;
			snprintf(wa->why, sizeof(wa->why), "%d %s", rc, co_error_last());
			co_router_watch_close(w);
			w = NULL;
			continue;
		}
		if (ev && ev->record && sscanf(ev->id, "cl-%d", &t) == 1 && t >= 0 &&
		    t < TASKS) {
			pthread_mutex_lock(&wa->lock);
			if (ev->record->rev > wa->seen[t])
				wa->seen[t] = ev->record->rev;
			wa->events++;
			pthread_cond_broadcast(&wa->cond);
			pthread_mutex_unlock(&wa->lock);
		}
		co_event_free(ev);
	}
	co_router_watch_close(w);
	return NULL;
}

/*
 * Wait until `n` more operations were acknowledged, at most FAILOVER_MS:
 * the router serves.  Fails the test naming `after` otherwise.
 */
static void await_progress(load *L, int n, const char *after)
{
	struct timespec until;
	int64_t want;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += FAILOVER_MS / 1000;
	pthread_mutex_lock(&L->lock);
	want = L->acked + n;
	while (L->acked < want && rc == 0)
		rc = pthread_cond_timedwait(&L->cond, &L->lock, &until);
	want -= L->acked;
	pthread_mutex_unlock(&L->lock);
	if (want > 0)
		fail_msg("the router did not serve %d operations within %d s %s", n,
			 FAILOVER_MS / 1000, after);
}

/* ---- the faults ---- */

struct faults {
	int kill_leader, stop_leader, kill_follower, kill_at_end, restart;
};

static int leader(fx *f, int not )
{
	int l = co_test_cluster_leader(&f->c, not, FAILOVER_MS);

	if (l < 0)
		fail_msg("the cluster has no leader within %d s", FAILOVER_MS / 1000);
	return l;
}

static void inject_round(fx *f, load *L, struct faults *n)
{
	int l, k;

	/* The leader dies mid-load; the others elect one; the router follows. */
	l = leader(f, -1);
	co_test_cluster_kill(&f->c, l);
	n->kill_leader++;
	leader(f, l);
	await_progress(L, PROGRESS, "after the leader was killed");

	/* It comes back with its data dir and catches up. */
	assert_int_equal(co_test_cluster_restart(&f->c, l), 0);
	n->restart++;
	await_progress(L, PROGRESS, "after the killed leader restarted");

	/* The leader hangs: a new one is elected, so the hang outlasted the
	 * election timeout, and the router serves while it still hangs. */
	l = leader(f, -1);
	assert_int_equal(co_test_cluster_freeze(&f->c, l), 0);
	n->stop_leader++;
	leader(f, l);
	await_progress(L, PROGRESS, "while the old leader hangs (SIGSTOP)");
	co_test_cluster_thaw(&f->c, l);
	assert_int_equal(co_test_cluster_wait_member(&f->c, l, FAILOVER_MS), 0);
	await_progress(L, PROGRESS, "after the old leader resumed (SIGCONT)");

	/* A follower is lost, then comes back. */
	l = leader(f, -1);
	k = (l + 1) % CO_TEST_CLUSTER_N;
	co_test_cluster_kill(&f->c, k);
	n->kill_follower++;
	await_progress(L, PROGRESS, "after a follower was killed");
	assert_int_equal(co_test_cluster_restart(&f->c, k), 0);
	n->restart++;
	await_progress(L, PROGRESS, "after the follower restarted");
}

static void inject(fx *f, load *L, struct faults *n)
{
	int round;

	await_progress(L, 2 * PROGRESS, "before any fault");
	for (round = 0; round < ROUNDS; round++)
		inject_round(f, L, n);
}

/* ---- the checks ---- */

static int ev_cmp(const void *a, const void *b)
{
	const op_ev *x = a, *y = b;

	if (x->task != y->task)
		return x->task < y->task ? -1 : 1;
	return x->rev < y->rev ? -1 : x->rev > y->rev;
}

static int drain_hook(void *ctx)
{
	int64_t left;

	return co_router_drain(ctx, NULL, 1000, &left);
}

/* Drain until the outbox is empty, bounded at 60 s (entries may be due later). */
static void drain_all(fx *f)
{
	struct timespec pause = {0, 100 * 1000000L};
	int64_t left = -1;
	int i;

	for (i = 0; i < 600 && left != 0; i++) {
		co_router_drain(f->r, NULL, 1000, &left);
		if (left != 0)
			nanosleep(&pause, NULL); /* a poll's interval */
	}
	if (left != 0)
		fail_msg("outbox still holds %lld entries after 60 s", (long long)left);
}

/* Both stores' rev of task `id` (-1 when absent). */
static void revs_of(fx *f, const char *id, int64_t *g, int64_t *e, const char **owner)
{
	static char own[64];
	co_record *rg = NULL, *re = NULL;

	*g = co_store_get(&rg, f->git, CO_KIND_TASK, id) == 0 ? rg->rev : -1;
	*e = co_store_get(&re, f->etcd, CO_KIND_TASK, id) == 0 ? re->rev : -1;
	snprintf(own, sizeof(own), "%s", re && re->owner ? re->owner : "");
	*owner = own;
	co_record_free(rg);
	co_record_free(re);
}

static void run_mode(const char *stage)
{
	struct worker w[WORKERS];
	pthread_t th[WORKERS];
	struct faults faults = {0};
	struct watcher wa;
	pthread_t wt;
	int64_t last_rev[TASKS] = {0};
	int watched = 0;
	co_reconcile_opts ro = CO_RECONCILE_OPTS_INIT;
	co_reconcile_result *res = NULL;
	load L;
	op_ev *all = NULL;
	size_t n = 0, k;
	int i, t, doubles = 0, lost = 0, checked = 0, hangs = 0, unavailable = 0;
	int inferred = 0, stuck_ok = 0;
	int64_t slowest = 0, t0 = now_ms();
	fx f;

	fx_open(&f, stage);
	for (t = 0; t < TASKS; t++) {
		co_record *task = NULL, *out = NULL;
		char id[32];

		snprintf(id, sizeof(id), "cl-%d", t);
		assert_int_equal(co_record_new(&task, CO_KIND_TASK, id), 0);
		task->type = strdup("build");
		assert_int_equal(co_router_task_create(&out, f.r, task), 0);
		co_record_free(task);
		co_record_free(out);
	}

	memset(&wa, 0, sizeof(wa));
	wa.f = &f;
	pthread_mutex_init(&wa.lock, NULL);
	pthread_cond_init(&wa.cond, NULL);
	pthread_create(&wt, NULL, watcher_main, &wa);
	{
		/* The watch is open before the first write it must see. */
		struct timespec until;
		int rc = 0;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += FAILOVER_MS / 1000;
		pthread_mutex_lock(&wa.lock);
		while (!wa.opened && rc == 0)
			rc = pthread_cond_timedwait(&wa.cond, &wa.lock, &until);
		pthread_mutex_unlock(&wa.lock);
		assert_true(wa.opened);
	}
	memset(&L, 0, sizeof(L));
	L.f = &f;
	pthread_mutex_init(&L.lock, NULL);
	pthread_cond_init(&L.cond, NULL);
	L.running = WORKERS;
	for (i = 0; i < WORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].L = &L;
		w[i].idx = i;
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	inject(&f, &L, &faults);
	atomic_store(&L.stop, 1);
	{
		/* The workers finish their calls in time: no client hangs. */
		struct timespec until;
		int rc = 0;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 4 * HANG_MS / 1000;
		pthread_mutex_lock(&L.lock);
		while (L.running > 0 && rc == 0)
			rc = pthread_cond_timedwait(&L.cond, &L.lock, &until);
		pthread_mutex_unlock(&L.lock);
		if (L.running > 0)
			fail_msg("%d workers still in a call %d s after the end",
				 L.running, 4 * HANG_MS / 1000);
	}
	for (i = 0; i < WORKERS; i++)
		pthread_join(th[i], NULL);

	/* One member (the first endpoint) is lost while the outbox drains and
	 * the reconciler reads: both must fail over too. */
	co_test_cluster_kill(&f.c, 0);
	faults.kill_at_end++;
	leader(&f, 0);
	drain_all(&f);
	ro.git = f.git;
	ro.etcd = f.etcd;
	ro.state = f.st;
	ro.no_rollback = 1;
	ro.grace_ms = 300;
	ro.drain = drain_hook;
	ro.drain_ctx = f.r;
	ro.who = "test_cluster";
	if (co_reconcile_run(&res, &ro) < 0)
		fail_msg("%s: reconcile did not run: %s", stage, co_error_last());
	if (!co_reconcile_passed(res)) {
		for (k = 0; k < res->divergences.n; k++) {
			co_record *g = NULL, *e = NULL;
			co_route rt;
			const char *id = res->divergences.items[k]->id;
			char *gj, *ej;

			co_store_get(&g, f.git, CO_KIND_TASK, id);
			co_store_get(&e, f.etcd, CO_KIND_TASK, id);
			co_router_route(&rt, f.r, CO_OP_TASK_CLAIM, id);
			gj = g ? co_record_to_json(g, 0) : NULL;
			ej = e ? co_record_to_json(e, 0) : NULL;
			print_message("divergence %s %s [%s] primary %s\n git  %s\n etcd "
				      "%s\n",
				      id, res->divergences.items[k]->cls,
				      res->divergences.items[k]->fields,
				      rt.primary == CO_SIDE_ETCD ? "etcd" : "git",
				      gj ? gj : "-", ej ? ej : "-");
			free(gj);
			free(ej);
			co_record_free(g);
			co_record_free(e);
		}
		fail_msg("%s: reconcile verdict %s", stage, res->run.verdict);
	}
	co_reconcile_result_free(res);

	for (i = 0; i < WORKERS; i++) {
		if (w[i].other_errors)
			fail_msg("%s: worker %d: %d unexpected errors, last: %s", stage,
				 i, w[i].other_errors, w[i].last_error);
		hangs += w[i].hangs;
		unavailable += w[i].unavailable;
		inferred += w[i].inferred;
		if (w[i].slowest_ms > slowest)
			slowest = w[i].slowest_ms;
		all = realloc(all, (n + w[i].n) * sizeof(*all));
		assert_non_null(all);
		memcpy(all + n, w[i].evs, w[i].n * sizeof(*all));
		n += w[i].n;
	}
	qsort(all, n, sizeof(*all), ev_cmp);

	/* Per task: revs unique, claims and releases alternate, nothing lost. */
	for (k = 0; k < n;) {
		size_t j = k;
		int holder = -1;
		int64_t last = 0, g, e;
		const char *owner;
		char id[64];

		for (; j < n && all[j].task == all[k].task; j++) {
			if (all[k].task < 0)
				continue;
			if (all[j].rev == last) {
				print_message("cl-%d: rev %lld acknowledged twice\n",
					      all[k].task, (long long)last);
				doubles++;
			} else if (all[j].type == 'c' && holder != -1 &&
				   holder != all[j].worker) {
				print_message("cl-%d: worker-%d won at rev %lld while "
					      "worker-%d held it\n",
					      all[k].task, all[j].worker,
					      (long long)all[j].rev, holder);
				doubles++;
			} else if (all[j].type == 'r' && holder != all[j].worker) {
				print_message("cl-%d: release at rev %lld by worker-%d, "
					      "who does not hold it\n",
					      all[k].task, (long long)all[j].rev,
					      all[j].worker);
				doubles++;
			}
			holder = all[j].type == 'c' ? all[j].worker : -1;
			last = all[j].rev;
		}
		if (all[k].task >= 0)
			snprintf(id, sizeof(id), "cl-%d", all[k].task);
		else
			snprintf(id, sizeof(id), "new-%d-%d", all[k].worker,
				 -1 - all[k].task);
		/* creates: one event per ID; a worker's create IDs never repeat */
		if (all[k].task < 0) {
			for (; k < j; k++) {
				snprintf(id, sizeof(id), "new-%d-%d", all[k].worker,
					 -1 - all[k].task);
				revs_of(&f, id, &g, &e, &owner);
				checked++;
				if (g < 1 || e < 1) {
					print_message("%s: acknowledged create lost (git "
						      "%lld, etcd %lld)\n",
						      id, (long long)g, (long long)e);
					lost++;
				}
			}
			continue;
		}
		revs_of(&f, id, &g, &e, &owner);
		last_rev[all[k].task] = last;
		checked += (int)(j - k);
		if (g < last || e < last) {
			print_message("%s: acknowledged rev %lld lost (git %lld, etcd "
				      "%lld)\n",
				      id, (long long)last, (long long)g, (long long)e);
			lost++;
		}
		/* Still claimed only by a worker whose claim was left unknown. */
		if (owner[0]) {
			int wi = -1;

			if (sscanf(owner, "worker-%d", &wi) != 1 || wi < 0 ||
			    wi >= WORKERS || !w[wi].stuck[all[k].task])
				fail_msg("%s: ends claimed by %s, who was never told "
					 "it won",
					 id, owner);
			stuck_ok++;
		}
		k = j;
	}
	for (i = 0; i < WORKERS; i++)
		free(w[i].evs);
	free(all);

	/* The watch saw every task's last acknowledged rev (bounded wait). */
	{
		struct timespec until;
		int rc = 0, missing = 1;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += FAILOVER_MS / 1000;
		pthread_mutex_lock(&wa.lock);
		while (missing && rc == 0) {
			for (missing = 0, t = 0; t < TASKS; t++)
				if (wa.seen[t] < last_rev[t])
					missing++;
			if (missing)
				rc = pthread_cond_timedwait(&wa.cond, &wa.lock, &until);
		}
		for (t = 0; t < TASKS; t++) {
			if (last_rev[t] > 0)
				watched++;
			if (wa.seen[t] < last_rev[t])
				print_message("watch: cl-%d: last acknowledged rev %lld, "
					      "watched %lld\n",
					      t, (long long)last_rev[t],
					      (long long)wa.seen[t]);
		}
		pthread_mutex_unlock(&wa.lock);
		atomic_store(&wa.stop, 1);
		pthread_join(wt, NULL);
		if (wa.ended)
			print_message("watch: ended %d times, last: %s\n", wa.ended,
				      wa.why);
		if (missing)
			fail_msg("%s: the watch missed the last rev of %d tasks", stage,
				 missing);
		pthread_cond_destroy(&wa.cond);
		pthread_mutex_destroy(&wa.lock);
	}

	print_message("%s: %lld s; faults: %d leader SIGKILL, %d leader SIGSTOP, %d "
		      "follower SIGKILL, %d member SIGKILL before the drain, %d "
		      "restarts; %zu acknowledged writes, %d "
		      "checked in both stores; %d double winners, %d lost writes; %d "
		      "releases inferred after an unknown outcome, %d claims left "
		      "unknown; %d unavailable answers; slowest call %lld ms, %d over "
		      "%d s; watch: %d events, ended %d times, last revs of %d "
		      "tasks seen\n",
		      stage, (long long)(now_ms() - t0) / 1000, faults.kill_leader,
		      faults.stop_leader, faults.kill_follower, faults.kill_at_end,
		      faults.restart, n, checked, doubles, lost, inferred, stuck_ok,
		      unavailable, (long long)slowest, hangs, HANG_MS / 1000, wa.events,
		      wa.ended, watched);
	assert_int_equal(doubles, 0);
	assert_int_equal(lost, 0);
	assert_int_equal(hangs, 0);
	assert_true(faults.kill_leader == ROUNDS && faults.stop_leader == ROUNDS);
	pthread_cond_destroy(&L.cond);
	pthread_mutex_destroy(&L.lock);
	fx_close(&f);
}

static void cluster_faults_in_dual_50_lose_nothing_and_pick_one_winner(void **state)
{
	(void)state;
	run_mode("50");
}

static void cluster_faults_in_etcd_mode_lose_nothing_and_pick_one_winner(void **state)
{
	(void)state;
	run_mode("etcd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cluster_faults_in_dual_50_lose_nothing_and_pick_one_winner),
	    cmocka_unit_test(
		cluster_faults_in_etcd_mode_lose_nothing_and_pick_one_winner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
