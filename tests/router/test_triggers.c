/*
 * test_triggers.c - the live-signal triggers against a real etcd and real
 * bare git repos: each trigger pulls the kill switch when its signal goes
 * bad (etcd killed under load in dual 50, etcd slowed by SIGSTOP/SIGCONT
 * pulses, etcd down past the grace, an outbox entry owed too long), the
 * trip is audited with its figures and shown by `cutover status`, a single
 * slow operation pulls nothing, and no acknowledged write is lost.
 *
 * Time to trip is printed (bench/README.md records it), never asserted:
 * each wait polls its condition with a generous bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "router/router.h"
#include "router/triggers.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TASKS 100

typedef struct fx {
	co_test_etcd etcd;
	char repo[256], dir[256], flags_path[320], prefix[64];
	co_store *git, *etcd_store;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
} fx;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
	struct timespec q = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&q, NULL);
}

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

/* A router with the triggers on `cfg`, on a fresh etcd, repo and state. */
static void fx_open(fx *f, const char *stage, const co_trigger_cfg *cfg)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	const char *eps[1];
	co_flags fl;
	char id[32];

	memset(f, 0, sizeof(*f));
	assert_int_equal(co_test_etcd_start(&f->etcd), 0);
	assert_int_equal(co_test_git_repo_new(f->repo, sizeof(f->repo)), 0);
	assert_int_equal(co_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	snprintf(f->flags_path, sizeof(f->flags_path), "%s/flags.yaml", f->dir);
	snprintf(f->prefix, sizeof(f->prefix), "/trg%d/", (int)getpid());
	eps[0] = f->etcd.endpoint;
	go.repo = f->repo;
	go.poll_interval_ms = 50;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = f->prefix;
	eo.request_timeout_ms = 2000;
	assert_int_equal(co_git_store_open(&f->git, &go), 0);
	assert_int_equal(co_etcd_store_open(&f->etcd_store, &eo), 0);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	co_flags_init(&fl);
	assert_int_equal(co_flags_save(&fl, f->flags_path), 0);
	assert_int_equal(co_flags_watcher_open(&f->fw, f->flags_path), 0);
	ro.git = f->git;
	ro.etcd = f->etcd_store;
	ro.state = f->st;
	ro.flags = f->fw;
	ro.triggers = cfg;
	assert_int_equal(co_router_open(&f->r, &ro), 0);
	/* the tasks exist in both stores before the stage under test */
	set_stage(f, "shadow");
	for (int t = 0; t < TASKS; t++) {
		co_record *rec = NULL, *out = NULL;

		snprintf(id, sizeof(id), "t-%d", t);
		assert_int_equal(co_record_new(&rec, CO_KIND_TASK, id), 0);
		rec->type = strdup("build");
		assert_int_equal(co_router_task_create(&out, f->r, rec), 0);
		co_record_free(rec);
		co_record_free(out);
	}
	set_stage(f, stage);
}

static void fx_close(fx *f)
{
	co_router_close(f->r);
	co_flags_watcher_close(f->fw);
	co_state_close(f->st);
	co_store_free(f->git);
	co_store_free(f->etcd_store);
	co_test_etcd_stop(&f->etcd);
	co_test_rmrf(f->repo);
	co_test_rmrf(f->dir);
}

/* Poll (bounded) until the kill switch is on; ms it took, or fail. */
static int64_t wait_kill(fx *f, int64_t since, int bound_ms)
{
	co_flags fl;

	for (;;) {
		co_flags_watcher_get(&fl, f->fw);
		if (fl.kill_switch)
			return now_ms() - since;
		if (now_ms() - since > bound_ms)
			fail_msg("kill switch not tripped after %d ms", bound_ms);
		pause_ms(20);
	}
}

/* Drain (bounded, 60 s) until the outbox is empty. */
static void drain_all(fx *f)
{
	int64_t left = -1;

	for (int i = 0; i < 600 && left != 0; i++) {
		co_router_drain(f->r, NULL, 1000, &left);
		if (left != 0)
			pause_ms(100);
	}
	co_error_clear();
	assert_int_equal(left, 0);
}

/* The latest audit row of an automatic trip carries `want` in its detail. */
static void assert_trip_audited(fx *f, const char *want)
{
	co_audit_change_list l = {0};
	int found = 0;

	assert_int_equal(co_audit_changes_latest(&l, f->st, 10), 0);
	for (size_t i = 0; i < l.n; i++)
		if (strcmp(l.items[i]->action, "auto-rollback") == 0 &&
		    strcmp(l.items[i]->who, "cutover-triggers") == 0 &&
		    l.items[i]->detail && strstr(l.items[i]->detail, want) &&
		    l.items[i]->why && strncmp(l.items[i]->why, "trigger ", 8) == 0) {
			print_message("audited: %s (%s)\n", l.items[i]->detail,
				      l.items[i]->why);
			found = 1;
		}
	co_audit_change_list_clear(&l);
	if (!found)
		fail_msg("no auto-rollback audit row with \"%s\"", want);
}

/* ---- load: claims and releases, every acknowledged rev remembered ---- */

typedef struct acked {
	int task;
	int64_t rev;
} acked;

struct loader {
	fx *f;
	int idx;
	atomic_int *stop;
	acked *a;
	size_t n, cap;
	int ok, unavail;
	char bad[256];
};

static void remember(struct loader *l, int t, const co_record *rec)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		assert_non_null(l->a = realloc(l->a, l->cap * sizeof(*l->a)));
	}
	l->a[l->n++] = (acked){t, rec->rev};
}

static void *loader_main(void *arg)
{
	struct loader *l = arg;
	unsigned seed = (unsigned)l->idx * 7 + 1;
	char swarm[32], id[32];

	snprintf(swarm, sizeof(swarm), "s-%d", l->idx);
	while (!atomic_load(l->stop)) {
		int t = (int)(rand_r(&seed) % TASKS), rc;
		co_record *out = NULL;

		snprintf(id, sizeof(id), "t-%d", t);
		rc = co_router_claim(&out, l->f->r, id, swarm, 0);
		if (rc == 0) {
			remember(l, t, out);
			co_record_free(out);
			out = NULL;
			rc = co_router_release(&out, l->f->r, id, swarm,
					       CO_STATUS_AVAILABLE);
			if (rc == 0)
				remember(l, t, out);
		}
		if (rc == 0)
			l->ok++;
		else if (rc == CO_EUNAVAIL)
			l->unavail++;
		else if (rc != CO_ECONFLICT)
			snprintf(l->bad, sizeof(l->bad), "%d %s", rc, co_error_last());
		co_record_free(out);
	}
	return NULL;
}

#define LOADERS 3

typedef struct load {
	struct loader l[LOADERS];
	pthread_t th[LOADERS];
	atomic_int stop;
} load;

/* Start (or restart: what was acknowledged before is kept) the load. */
static void load_start(load *ld, fx *f, int again)
{
	if (!again)
		memset(ld, 0, sizeof(*ld));
	atomic_store(&ld->stop, 0);
	for (int i = 0; i < LOADERS; i++) {
		ld->l[i].f = f;
		ld->l[i].idx = i;
		ld->l[i].stop = &ld->stop;
		assert_int_equal(pthread_create(&ld->th[i], NULL, loader_main, &ld->l[i]),
				 0);
	}
}

static void load_stop(load *ld)
{
	atomic_store(&ld->stop, 1);
	for (int i = 0; i < LOADERS; i++)
		pthread_join(ld->th[i], NULL);
}

/* After a drain: every acknowledged rev is in git and in etcd, and the two
 * stores hold the same records. */
static void assert_nothing_acked_lost(fx *f, load *ld)
{
	co_record_list g = {0}, e = {0};
	size_t total = 0;

	drain_all(f);
	for (int i = 0; i < LOADERS; i++) {
		struct loader *l = &ld->l[i];

		if (l->bad[0])
			fail_msg("loader %d: unexpected error %s", i, l->bad);
		for (size_t k = 0; k < l->n; k++) {
			co_record *gr = NULL, *er = NULL;
			char id[32];

			snprintf(id, sizeof(id), "t-%d", l->a[k].task);
			assert_int_equal(co_store_get(&gr, f->git, CO_KIND_TASK, id), 0);
			assert_int_equal(
			    co_store_get(&er, f->etcd_store, CO_KIND_TASK, id), 0);
			if (gr->rev < l->a[k].rev || er->rev < l->a[k].rev)
				fail_msg("%s: acknowledged rev %lld lost (git %lld, etcd "
					 "%lld)",
					 id, (long long)l->a[k].rev, (long long)gr->rev,
					 (long long)er->rev);
			co_record_free(gr);
			co_record_free(er);
		}
		total += l->n;
		free(l->a);
		l->a = NULL;
	}
	print_message("%zu acknowledged writes, all in both stores\n", total);
	assert_int_equal(co_store_list(&g, f->git, CO_KIND_TASK), 0);
	assert_int_equal(co_store_list(&e, f->etcd_store, CO_KIND_TASK), 0);
	assert_int_equal(g.n, e.n);
	for (size_t i = 0; i < g.n; i++)
		assert_true(co_record_equal(g.items[i], e.items[i]));
	co_record_list_clear(&g);
	co_record_list_clear(&e);
}

/* Thresholds with every trigger but `keep` out of reach. */
static co_trigger_cfg only(co_trigger_kind keep)
{
	co_trigger_cfg c = CO_TRIGGER_CFG_INIT;

	c.window_ms = 3000;
	c.min_samples = keep == CO_TRIGGER_ERROR_RATE || keep == CO_TRIGGER_LATENCY
				? 20
				: 100000000;
	c.health_grace_ms = keep == CO_TRIGGER_HEALTH ? 1000 : 3600000;
	c.outbox_age_ms = keep == CO_TRIGGER_OUTBOX_AGE ? 2000 : 3600000;
	return c;
}

static void assert_reason(fx *f, const char *prefix)
{
	co_flags fl;

	co_flags_watcher_get(&fl, f->fw);
	assert_true(fl.kill_switch);
	if (strncmp(fl.kill_reason, prefix, strlen(prefix)) != 0)
		fail_msg("kill_reason \"%s\" is not \"%s...\"", fl.kill_reason, prefix);
	print_message("kill_reason: %s\n", fl.kill_reason);
}

/* `cutover status` with the test's thresholds in a config file. */
static void check_status(fx *f)
{
	char cfgp[400], env_cfg[420], env_state[300], env_flags[360], env_repo[300],
	    env_eps[120], env_prefix[120];
	char *out = NULL, *err = NULL;
	const char *env[] = {env_cfg, env_state,  env_flags, env_repo,
			     env_eps, env_prefix, NULL};
	const char *argv_json[] = {"--json", "status", NULL};
	const char *argv_text[] = {"status", NULL};
	FILE *fp;

	snprintf(cfgp, sizeof(cfgp), "%s/cutover.yaml", f->dir);
	assert_non_null(fp = fopen(cfgp, "w"));
	fputs("triggers: {window: 3s, min_samples: 20}\n", fp);
	fclose(fp);
	snprintf(env_cfg, sizeof(env_cfg), "CUTOVER_CONFIG=%s", cfgp);
	snprintf(env_state, sizeof(env_state), "CUTOVER_STATE_DIR=%s", f->dir);
	snprintf(env_flags, sizeof(env_flags), "CUTOVER_FLAGS=%s", f->flags_path);
	snprintf(env_repo, sizeof(env_repo), "CUTOVER_GIT_REPO=%s", f->repo);
	snprintf(env_eps, sizeof(env_eps), "CUTOVER_ETCD_ENDPOINTS=%s", f->etcd.endpoint);
	snprintf(env_prefix, sizeof(env_prefix), "CUTOVER_ETCD_PREFIX=%s", f->prefix);
	assert_int_equal(co_test_cutover(&out, &err, env, argv_json), 0);
	if (!strstr(out, "\"triggers\":{\"enabled\":true") ||
	    !strstr(out, "\"window_s\":3") || !strstr(out, "\"min_samples\":20") ||
	    !strstr(out, "\"kill_reason\":\"trigger error_rate") ||
	    !strstr(out, "\"fired_total\":{\"error_rate\":1"))
		fail_msg("status --json lacks the triggers: %s", out);
	free(out);
	free(err);
	assert_int_equal(co_test_cutover(&out, &err, env, argv_text), 0);
	if (!strstr(out, "triggers:  on; window 3 s, min 20 etcd ops") ||
	    !strstr(out, "error_rate  > 5.0%   now") ||
	    !strstr(out, "last fired: trigger error_rate"))
		fail_msg("status lacks the triggers: %s", out);
	print_message("%s", strstr(out, "triggers:"));
	free(out);
	free(err);
	/* a bad threshold: exit 1 naming the field and the value */
	assert_non_null(fp = fopen(cfgp, "w"));
	fputs("triggers: {error_rate: 7%}\n", fp);
	fclose(fp);
	assert_int_equal(co_test_cutover(&out, &err, env, argv_text), 1);
	if (!strstr(err, "triggers.error_rate") || !strstr(err, "\"7%\""))
		fail_msg("bad threshold not named: %s", err);
	free(out);
	free(err);
}

static void error_rate_trips_in_dual_50_and_loses_no_acked_write(void **state)
{
	co_trigger_cfg c = only(CO_TRIGGER_ERROR_RATE);
	load ld;
	int64_t t0, took;
	fx f;

	(void)state;
	fx_open(&f, "50", &c);
	load_start(&ld, &f, 0);
	pause_ms(1500); /* healthy load: nothing fires */
	{
		co_flags fl;

		co_flags_watcher_get(&fl, f.fw);
		assert_false(fl.kill_switch);
	}
	co_test_etcd_kill(&f.etcd);
	t0 = now_ms();
	took = wait_kill(&f, t0, 30000);
	print_message("error_rate: tripped %lld ms after etcd was killed (window 3 s)\n",
		      (long long)took);
	pause_ms(300); /* load goes on, git-primary now */
	load_stop(&ld);
	assert_reason(&f, "trigger error_rate: etcd-path error rate");
	assert_trip_audited(&f, "trigger=error_rate");
	assert_int_equal(
	    co_triggers_fired(co_router_triggers(f.r), CO_TRIGGER_ERROR_RATE), 1);
	check_status(&f);
	assert_int_equal(co_test_etcd_restart(&f.etcd), 0);
	assert_nothing_acked_lost(&f, &ld);
	fx_close(&f);
}

struct one_claim {
	fx *f;
	int rc;
};

static void *one_claim_main(void *arg)
{
	struct one_claim *o = arg;
	co_record *out = NULL;

	o->rc = co_router_claim(&out, o->f->r, "t-0", "slow", 0);
	co_record_free(out);
	out = NULL;
	if (o->rc == 0)
		co_router_release(&out, o->f->r, "t-0", "slow", CO_STATUS_AVAILABLE);
	co_record_free(out);
	return NULL;
}

/* etcd stopped this long out of every STOP+RUN ms: none times out (the
 * request timeout is 2 s).  The run is short on purpose: each loader's
 * op that waited out the stall finishes in it, with only a few fast ones
 * after, so the slow ones are well over 5% of the ops and the p95 is the
 * stall.  (With 100 ms runs a fast machine fits ~30 ms ops of 3 ms in
 * each and the 3 slow ones stay under the p95: the trigger rightly calls
 * that a tail, not a slow etcd.) */
#define PULSE_STOP_MS 700
#define PULSE_RUN_MS 15

struct pulses {
	fx *f;
	atomic_int stop;
	int n;
};

static void *pulses_main(void *arg)
{
	struct pulses *p = arg;

	while (!atomic_load(&p->stop)) {
		if (co_test_etcd_freeze(&p->f->etcd) == 0) {
			pause_ms(PULSE_STOP_MS);
			co_test_etcd_thaw(&p->f->etcd);
			p->n++;
		}
		pause_ms(PULSE_RUN_MS);
	}
	return NULL;
}

static void latency_trips_on_slow_etcd_but_not_on_one_slow_op(void **state)
{
	co_trigger_cfg c = only(CO_TRIGGER_LATENCY);
	co_trigger_eval ev;
	struct one_claim one;
	struct pulses p;
	pthread_t th;
	load ld;
	int64_t t0, took, base[CO_OP__COUNT], n[CO_OP__COUNT];
	fx f;

	(void)state;
	fx_open(&f, "shadow", &c);
	/* the git baseline, recorded in shadow and kept in the state dir */
	load_start(&ld, &f, 0);
	t0 = now_ms();
	do {
		pause_ms(100);
		co_triggers_baseline_load(base, n, f.dir);
		if (now_ms() - t0 > 30000)
			fail_msg("no git baseline after 30 s");
	} while (base[CO_OP_TASK_CLAIM] == 0 || base[CO_OP_TASK_RELEASE] == 0);
	load_stop(&ld);
	print_message("git baseline: claim p95 %lld us, release p95 %lld us\n",
		      (long long)base[CO_OP_TASK_CLAIM],
		      (long long)base[CO_OP_TASK_RELEASE]);
	set_stage(&f, "100");

	/* one slow op (etcd stopped under it for 400 ms) among fast ones */
	one.f = &f;
	assert_int_equal(co_test_etcd_freeze(&f.etcd), 0);
	assert_int_equal(pthread_create(&th, NULL, one_claim_main, &one), 0);
	pause_ms(400);
	co_test_etcd_thaw(&f.etcd);
	pthread_join(th, NULL);
	assert_int_equal(one.rc, 0);
	load_start(&ld, &f, 1);
	t0 = now_ms();
	do { /* until the window holds enough etcd ops to judge */
		pause_ms(100);
		assert_int_equal(co_triggers_tick(co_router_triggers(f.r), &ev), 0);
		if (now_ms() - t0 > 30000)
			fail_msg("fewer than %d etcd claims in 30 s", c.min_samples);
	} while (ev.latency_op < 0);
	load_stop(&ld);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	print_message("one slow op: worst ratio %.2f (%s), nothing fired\n",
		      ev.latency_ratio, co_op_name(ev.latency_op));
	{
		co_flags fl;

		co_flags_watcher_get(&fl, f.fw);
		assert_false(fl.kill_switch);
	}

	/* etcd slowed for good: SIGSTOP / SIGCONT pulses */
	memset(&p, 0, sizeof(p));
	p.f = &f;
	load_start(&ld, &f, 1);
	assert_int_equal(pthread_create(&th, NULL, pulses_main, &p), 0);
	t0 = now_ms();
	/* The bound is a deadline for a hang, not a figure: the time is
	 * printed (1.5 s here). */
	took = wait_kill(&f, t0, 60000);
	atomic_store(&p.stop, 1);
	pthread_join(th, NULL);
	co_test_etcd_thaw(&f.etcd);
	load_stop(&ld);
	print_message("latency: tripped %lld ms after the pulses began (%d pulses, "
		      "window 3 s)\n",
		      (long long)took, p.n);
	assert_reason(&f, "trigger latency: ");
	assert_trip_audited(&f, "trigger=latency");
	assert_nothing_acked_lost(&f, &ld);
	fx_close(&f);
}

static void health_trips_after_its_grace_with_etcd_down(void **state)
{
	co_trigger_cfg c = only(CO_TRIGGER_HEALTH);
	load ld;
	int64_t t0, took;
	fx f;

	(void)state;
	fx_open(&f, "50", &c);
	load_start(&ld, &f, 0);
	pause_ms(500);
	co_test_etcd_kill(&f.etcd);
	t0 = now_ms();
	took = wait_kill(&f, t0, 30000);
	load_stop(&ld);
	print_message("health: tripped %lld ms after etcd was killed (grace 1 s)\n",
		      (long long)took);
	assert_reason(&f, "trigger health: etcd unhealthy for");
	assert_trip_audited(&f, "trigger=health");
	assert_int_equal(co_test_etcd_restart(&f.etcd), 0);
	assert_nothing_acked_lost(&f, &ld);
	fx_close(&f);
}

static void outbox_age_trips_when_etcd_is_owed_too_long(void **state)
{
	co_trigger_cfg c = only(CO_TRIGGER_OUTBOX_AGE);
	load ld;
	int64_t t0, took, depth = 0;
	fx f;

	(void)state;
	fx_open(&f, "shadow", &c);
	co_test_etcd_kill(&f.etcd);
	load_start(&ld, &f, 0); /* git serves; etcd's copies wait in the outbox */
	t0 = now_ms();
	took = wait_kill(&f, t0, 30000);
	load_stop(&ld);
	assert_int_equal(co_outbox_depth(&depth, f.st, "etcd"), 0);
	print_message("outbox_age: tripped %lld ms after etcd was killed (bound 2 s), "
		      "%lld entries owed to etcd\n",
		      (long long)took, (long long)depth);
	assert_true(depth > 0);
	assert_reason(&f, "trigger outbox_age: oldest outbox entry");
	assert_trip_audited(&f, "trigger=outbox_age");
	assert_int_equal(co_test_etcd_restart(&f.etcd), 0);
	assert_nothing_acked_lost(&f, &ld);
	fx_close(&f);
}

/* A hung etcd (SIGSTOP) under a running serve with no traffic at all: its
 * health probe opens the breaker, the health trigger pulls the switch after
 * the grace, and /metrics counts the firing. */
static void health_trips_a_serve_on_a_hung_etcd_and_metrics_count_it(void **state)
{
	co_trigger_cfg c = only(CO_TRIGGER_HEALTH);
	co_test_serve_opts so = {0};
	co_test_serve sv;
	co_test_etcd e;
	co_test_resp rp;
	co_flags fl;
	int64_t t0;

	(void)state;
	assert_int_equal(co_test_etcd_start(&e), 0);
	so.endpoint = e.endpoint;
	so.prefix = "/trg-serve/";
	so.stage = "50";
	so.triggers = &c;
	assert_int_equal(co_test_serve_open(&sv, &so), 0);
	co_test_http(&rp, sv.base, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(rp.status, 200);
	assert_non_null(
	    strstr(rp.body, "cutover_trigger_fired_total{trigger=\"health\"} 0"));
	free(rp.body);
	assert_int_equal(co_test_etcd_freeze(&e), 0);
	t0 = now_ms();
	for (;;) {
		co_flags_watcher_get(&fl, sv.fw);
		if (fl.kill_switch)
			break;
		if (now_ms() - t0 > 30000)
			fail_msg("kill switch not tripped 30 s after etcd hung");
		pause_ms(20);
	}
	print_message(
	    "health (serve, etcd SIGSTOPped, no traffic): tripped %lld ms after "
	    "the freeze (grace 1 s)\n",
	    (long long)(now_ms() - t0));
	assert_non_null(strstr(fl.kill_reason, "trigger health: etcd unhealthy"));
	/* the serve's watcher may see the flags file before the trigger
	 * thread has counted its trip: await the count, bounded */
	t0 = now_ms();
	for (;;) {
		int seen;

		co_test_http(&rp, sv.base, "GET", "/metrics", NULL, 0, NULL);
		assert_int_equal(rp.status, 200);
		seen = strstr(rp.body, "cutover_trigger_fired_total{trigger=\"health\"} 1") &&
		       strstr(rp.body, "cutover_kill_switch 1");
		if (seen)
			break;
		if (now_ms() - t0 > 10000) {
			print_message("/metrics: %s\n", rp.body);
			free(rp.body);
			fail_msg("/metrics did not count the health trip in 10 s");
		}
		free(rp.body);
		pause_ms(20);
	}
	free(rp.body);
	co_test_etcd_thaw(&e);
	co_test_serve_close(&sv);
	co_test_etcd_stop(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(error_rate_trips_in_dual_50_and_loses_no_acked_write),
	    cmocka_unit_test(latency_trips_on_slow_etcd_but_not_on_one_slow_op),
	    cmocka_unit_test(health_trips_after_its_grace_with_etcd_down),
	    cmocka_unit_test(outbox_age_trips_when_etcd_is_owed_too_long),
	    cmocka_unit_test(health_trips_a_serve_on_a_hung_etcd_and_metrics_count_it),
	};
	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
