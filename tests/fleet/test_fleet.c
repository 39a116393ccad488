/*
 * test_fleet.c - the router fleet through a real etcd (router/fleet.h):
 * writers racing on the flags epoch both land, a router's watch applies a
 * fleet flag change (through its local flags file, as the router reads
 * it), a registered router is listed while its lease lives and goes when
 * it dies, and the fleet gate refuses while a router is on an old epoch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "router/fleet.h"

typedef struct fixture {
	co_test_etcd etcd;
	co_fleet *fleet;
	char dir[256];
} fixture;

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof *fx);
	const char *ep[1];
	co_fleet_opts o = {0};

	if (!fx || co_test_etcd_start(&fx->etcd) != 0 || co_test_tmpdir(fx->dir, sizeof fx->dir))
		return -1;
	ep[0] = fx->etcd.endpoint;
	o.endpoints = ep;
	o.n_endpoints = 1;
	if (co_fleet_open(&fx->fleet, &o) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;

	co_fleet_close(fx->fleet);
	co_test_etcd_stop(&fx->etcd);
	co_test_rmrf(fx->dir);
	free(fx);
	return 0;
}

/* ---- two writers racing on the epoch ---- */

/* One more percent on task_claim: a read-modify-write on one shared value,
 * so a lost update shows as a total short of the number of increments. */
static int increment(void *ctx, co_flags *f)
{
	co_op_flags cur = co_flags_get(f, CO_OP_TASK_CLAIM);

	(void)ctx;
	return co_flags_set(f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, cur.etcd_percent + 1);
}

typedef struct writer {
	co_fleet *fleet;
	int errors;
} writer;

static void *increment_50(void *arg)
{
	writer *w = arg;
	int i;

	for (i = 0; i < 50; i++)
		if (co_fleet_flags_update(NULL, NULL, w->fleet, increment, NULL) != 0)
			w->errors++;
	return NULL;
}

static void two_writers_racing_on_the_epoch_both_land(void **state)
{
	fixture *fx = *state;
	const char *ep[] = {fx->etcd.endpoint};
	co_fleet_opts o = {.endpoints = ep, .n_endpoints = 1};
	writer a = {NULL, 0}, b = {NULL, 0};
	pthread_t ta, tb;
	co_flags got;
	int64_t epoch = 0;

	/* two handles: two writers as two processes would be */
	assert_int_equal(co_fleet_open(&a.fleet, &o), 0);
	assert_int_equal(co_fleet_open(&b.fleet, &o), 0);
	assert_int_equal(pthread_create(&ta, NULL, increment_50, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, increment_50, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.errors, 0);
	assert_int_equal(b.errors, 0);
	assert_int_equal(co_fleet_flags_get(&got, &epoch, fx->fleet), 0);
	/* 100 increments, 100 in the document: none lost to the race */
	assert_int_equal(co_flags_get(&got, CO_OP_TASK_CLAIM).etcd_percent, 100);
	assert_true(epoch > 0);
	co_fleet_close(a.fleet);
	co_fleet_close(b.fleet);
}

/* ---- a router sees a fleet flag change ---- */

static int to_stage_50(void *ctx, co_flags *f)
{
	(void)ctx;
	return co_stage_apply(f, CO_STAGE_50);
}

static int to_stage_10(void *ctx, co_flags *f)
{
	(void)ctx;
	return co_stage_apply(f, CO_STAGE_10);
}

/* ctx: the reason to pull the kill switch with, or NULL to release it */
static int set_kill(void *ctx, co_flags *f)
{
	co_flags_set_kill(f, ctx != NULL, ctx);
	return 0;
}

static void a_router_applies_a_fleet_flag_change(void **state)
{
	fixture *fx = *state;
	char path[512];
	co_fleet_watch *w;
	co_flags_watcher *fw;
	co_fleet_mirror *mirror;
	co_flags seen;
	co_route r;
	int64_t epoch;
	uint64_t gen;

	snprintf(path, sizeof path, "%s/flags.yaml", fx->dir);
	assert_int_equal(co_flags_watcher_open(&fw, path), 0);
	assert_int_equal(co_fleet_mirror_new(&mirror, path, fw), 0);
	assert_int_equal(co_fleet_watch_open(&w, fx->fleet, co_fleet_mirror_apply, mirror), 0);
	gen = co_flags_watcher_generation(fw);

	assert_int_equal(co_fleet_flags_update(NULL, &epoch, fx->fleet, to_stage_50, NULL), 0);
	assert_int_equal(co_fleet_watch_wait(w, epoch - 1, 5000), 0);
	assert_int_equal(co_fleet_watch_get(&seen, w), epoch);
	assert_int_equal(co_stage_of(&seen), CO_STAGE_50);
	/* the router routes by its file: the watch saved it there */
	assert_int_equal(co_flags_watcher_wait(fw, gen, 5000), 0);
	assert_int_equal(co_flags_watcher_route(&r, fw, CO_OP_TASK_CLAIM, NULL), 0);
	assert_int_equal(r.configured, CO_MODE_DUAL);
	assert_int_equal(r.etcd_percent, 50);
	assert_int_equal(co_fleet_mirror_epoch(mirror), epoch);

	/* the fleet's trip and the fleet's resume both reach the router */
	gen = co_flags_watcher_generation(fw);
	assert_int_equal(co_fleet_flags_update(NULL, &epoch, fx->fleet, set_kill, "fleet"), 0);
	assert_int_equal(co_flags_watcher_wait(fw, gen, 5000), 0);
	assert_int_equal(co_flags_watcher_route(&r, fw, CO_OP_TASK_CLAIM, "t1"), 0);
	assert_true(r.kill_switch);
	gen = co_flags_watcher_generation(fw);
	assert_int_equal(co_fleet_flags_update(NULL, &epoch, fx->fleet, set_kill, NULL), 0);
	assert_int_equal(co_flags_watcher_wait(fw, gen, 5000), 0);
	assert_int_equal(co_flags_watcher_route(&r, fw, CO_OP_TASK_CLAIM, "t1"), 0);
	assert_false(r.kill_switch);

	/* a local trip (etcd down) is not undone by a later fleet change */
	{
		co_flags local;

		assert_int_equal(co_flags_load(&local, path), 0);
		co_flags_set_kill(&local, 1, "local trip");
		assert_int_equal(co_flags_save(&local, path), 0);
		assert_int_equal(co_flags_watcher_reload(fw), 0);
		gen = co_flags_watcher_generation(fw);
		assert_int_equal(co_fleet_flags_update(NULL, &epoch, fx->fleet, to_stage_10,
						       NULL), 0);
		assert_int_equal(co_flags_watcher_wait(fw, gen, 5000), 0);
		assert_int_equal(co_flags_load(&local, path), 0);
		assert_true(local.kill_switch);
		assert_string_equal(local.kill_reason, "local trip");
		assert_int_equal(co_stage_of(&local), CO_STAGE_10);
	}
	co_fleet_watch_close(w);
	co_fleet_mirror_free(mirror);
	co_flags_watcher_close(fw);
}

/* ---- membership ---- */

static void fill_member(co_fleet_member *m, const char *id, int64_t epoch)
{
	memset(m, 0, sizeof *m);
	snprintf(m->id, sizeof m->id, "%s", id);
	snprintf(m->host, sizeof m->host, "test-host");
	m->pid = (long)getpid();
	snprintf(m->version, sizeof m->version, "test");
	snprintf(m->mode, sizeof m->mode, "git");
	m->epoch = epoch;
}

/* Poll the member list (bounded) until `id` is (want 1) or is not listed. */
static int wait_listed(co_fleet *f, const char *id, int want, int timeout_ms)
{
	struct timespec pause = {0, 50 * 1000000L};
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 50) {
		co_fleet_member *m = NULL;
		size_t n = 0, i;
		int found = 0;

		if (co_fleet_members(&m, &n, f) == 0) {
			for (i = 0; i < n; i++)
				found |= strcmp(m[i].id, id) == 0;
			free(m);
			if (found == want)
				return 0;
		}
		nanosleep(&pause, NULL);
	}
	return -1;
}

/* A fleet on an etcd with auth on: it logs in with the configured user (as
 * the data store does), for its calls, its lease and its streaming watch;
 * without credentials, or with a wrong password, it is refused. */
static void a_fleet_on_an_etcd_with_auth_logs_in(void **state)
{
	co_test_etcd a;
	const char *ep[1];
	co_fleet_opts o = {0};
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_fleet *f = NULL;
	co_fleet_watch *w = NULL;
	co_fleet_reg *reg = NULL;
	co_fleet_member me;
	co_flags seen;
	int64_t epoch = 0;
	struct timespec pause = {0, 20 * 1000000L};
	int waited;

	(void)state;
	assert_int_equal(co_test_etcd_start(&a), 0);
	if (co_test_etcd_enable_auth(&a, "pw") != 0)
		fail_msg("etcd auth could not be turned on");
	ep[0] = a.endpoint;
	o.endpoints = ep;
	o.n_endpoints = 1;

	/* no credentials, then a wrong password: refused, nothing written */
	assert_int_equal(co_fleet_open(&f, &o), 0);
	assert_int_not_equal(co_fleet_flags_update(NULL, NULL, f, to_stage_50, NULL), 0);
	co_fleet_close(f);
	eo.user = "root";
	eo.password = "wrong";
	o.etcd = &eo;
	assert_int_equal(co_fleet_open(&f, &o), 0);
	assert_int_equal(co_fleet_flags_get(&seen, &epoch, f), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), "root"));
	co_fleet_close(f);

	eo.password = "pw";
	assert_int_equal(co_fleet_open(&f, &o), 0);
	assert_int_equal(co_fleet_flags_get(&seen, &epoch, f), 0);
	assert_int_equal(epoch, 0); /* nothing was written by the refused ones */
	assert_int_equal(co_fleet_watch_open(&w, f, NULL, NULL), 0);
	/* the stream itself is up ("created" comes only once etcd took the
	 * token): the change below comes over it, not by a re-read */
	for (waited = 0; !co_fleet_watch_connected(w) && waited < 10000; waited += 20)
		nanosleep(&pause, NULL);
	assert_true(co_fleet_watch_connected(w));
	assert_int_equal(co_fleet_flags_update(NULL, &epoch, f, to_stage_50, NULL), 0);
	assert_int_equal(co_fleet_watch_wait(w, epoch - 1, 10000), 0);
	assert_int_equal(co_fleet_watch_get(&seen, w), epoch);
	assert_int_equal(co_stage_of(&seen), CO_STAGE_50);
	fill_member(&me, "auth-r1", epoch);
	assert_int_equal(co_fleet_register(&reg, f, &me, 2, NULL, NULL), 0);
	assert_int_equal(wait_listed(f, "auth-r1", 1, 5000), 0);
	co_fleet_unregister(reg);
	co_fleet_watch_close(w);
	co_fleet_close(f);
	co_test_etcd_stop(&a);
}

static void a_router_is_listed_while_its_lease_lives(void **state)
{
	fixture *fx = *state;
	co_fleet_member me;
	co_fleet_reg *reg;
	pid_t child;
	int status;

	/* this process: listed at once, gone at once when it unregisters */
	fill_member(&me, "r-self", 0);
	assert_int_equal(co_fleet_register(&reg, fx->fleet, &me, 2, NULL, NULL), 0);
	assert_int_equal(wait_listed(fx->fleet, "r-self", 1, 0), 0);
	co_fleet_unregister(reg);
	assert_int_equal(wait_listed(fx->fleet, "r-self", 0, 0), 0);

	/* a router that dies (SIGKILL: no revoke) goes when its lease runs out */
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* its own handle: the parent's kept-alive connections to etcd
		 * are not the child's to talk on (as for any etcd store) */
		const char *ep[] = {fx->etcd.endpoint};
		co_fleet_opts o = {.endpoints = ep, .n_endpoints = 1};
		co_fleet *cf;
		co_fleet_reg *r;

		fill_member(&me, "r-child", 0);
		if (co_fleet_open(&cf, &o) != 0 ||
		    co_fleet_register(&r, cf, &me, 1, NULL, NULL) != 0)
			_exit(1);
		for (;;)
			pause();
	}
	assert_int_equal(wait_listed(fx->fleet, "r-child", 1, 5000), 0);
	/* alive: the heartbeats keep it listed beyond its 1 s TTL */
	{
		struct timespec two = {2, 0};

		nanosleep(&two, NULL); /* outlive the TTL, not a synchronisation */
	}
	assert_int_equal(wait_listed(fx->fleet, "r-child", 1, 0), 0);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	assert_int_equal(wait_listed(fx->fleet, "r-child", 0, 10000), 0);

	assert_int_equal(co_fleet_register(&reg, fx->fleet, &me, 0, NULL, NULL), CO_EINVAL);
	fill_member(&me, "bad/id", 0);
	assert_int_equal(co_fleet_register(&reg, fx->fleet, &me, 2, NULL, NULL), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "\"bad/id\""));
}

/* ---- the gate ---- */

static void route_by(void *ctx, co_fleet_member *m)
{
	m->epoch = *(int64_t *)ctx;
}

static void the_gate_refuses_while_a_router_is_on_an_old_epoch(void **state)
{
	fixture *fx = *state;
	co_fleet_member me, *m = NULL;
	co_fleet_reg *reg;
	int64_t epoch = 0, router_epoch = 0;
	size_t n = 0;

	assert_int_equal(co_fleet_flags_update(NULL, &epoch, fx->fleet, to_stage_50, NULL), 0);
	fill_member(&me, "r-old", 0);
	assert_int_equal(co_fleet_register(&reg, fx->fleet, &me, 5, route_by, &router_epoch), 0);
	assert_int_equal(co_fleet_members(&m, &n, fx->fleet), 0);
	assert_int_equal(co_fleet_gate(m, n, epoch, 0), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "router r-old"));
	free(m);

	router_epoch = epoch; /* the router caught up */
	assert_int_equal(co_fleet_reg_refresh(reg), 0);
	assert_int_equal(co_fleet_members(&m, &n, fx->fleet), 0);
	assert_int_equal(co_fleet_gate(m, n, epoch, 0), 0);
	/* an outbox older than the bound refuses too, naming the router */
	m[0].outbox_age_ms = 90000;
	m[0].outbox_depth = 12;
	assert_int_equal(co_fleet_gate(m, n, epoch, 60000), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "router r-old"));
	assert_non_null(strstr(co_error_last(), "90000 ms"));
	free(m);
	co_fleet_unregister(reg);
}

/* ---- the config's fleet: section ---- */

static int load_text(co_config **c, const char *dir, const char *text)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof path, "%s/cutover.yaml", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(text, f);
	fclose(f);
	return co_config_load(c, path);
}

static void the_fleet_section_is_opt_in_and_checked(void **state)
{
	fixture *fx = *state;
	co_config *c = NULL;
	co_fleet *f = NULL;

	assert_int_equal(load_text(&c, fx->dir, "state_dir: /tmp/x\n"), 0);
	assert_false(c->fleet_enabled);
	assert_int_equal(co_fleet_open_config(&f, c), 0);
	assert_null(f); /* file mode: no fleet */
	co_config_free(c);

	assert_int_equal(load_text(&c, fx->dir,
				   "etcd: {endpoints: [http://127.0.0.1:1]}\n"
				   "fleet: {enabled: true, prefix: /f/, id: a-1, ttl: 2s,\n"
				   "        admin_url: http://h:7480}\n"),
			 0);
	assert_true(c->fleet_enabled);
	assert_string_equal(c->fleet_prefix, "/f/");
	assert_string_equal(c->fleet_id, "a-1");
	assert_int_equal(c->fleet_ttl_ms, 2000);
	assert_string_equal(c->fleet_admin_url, "http://h:7480");
	assert_int_equal(co_fleet_open_config(&f, c), 0);
	assert_string_equal(co_fleet_flags_key(f), "/f/flags");
	co_fleet_close(f);
	co_config_free(c);

	assert_int_equal(load_text(&c, fx->dir, "fleet: {enabled: maybe}\n"), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "fleet.enabled"));
	assert_int_equal(load_text(&c, fx->dir, "fleet: {ttl: 0s}\n"), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "fleet.ttl"));
	assert_int_equal(load_text(&c, fx->dir, "fleet: {enable: true}\n"), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "enable"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(two_writers_racing_on_the_epoch_both_land, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(a_router_applies_a_fleet_flag_change, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(a_router_is_listed_while_its_lease_lives, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(the_gate_refuses_while_a_router_is_on_an_old_epoch,
					    setup, teardown),
	    cmocka_unit_test(a_fleet_on_an_etcd_with_auth_logs_in),
	    cmocka_unit_test_setup_teardown(the_fleet_section_is_opt_in_and_checked, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
