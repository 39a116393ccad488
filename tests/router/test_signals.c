/*
 * test_signals.c - the pure part of the live-signal triggers: the sliding
 * window (signals.h) and the evaluation, baselines and thresholds
 * (triggers.h), driven with a test clock, no store.  Plus the config
 * file's `triggers:` section: bad thresholds refused naming the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"
#include "harness/harness.h"
#include "router/signals.h"
#include "router/triggers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static co_trigger_cfg cfg(void)
{
	co_trigger_cfg c = CO_TRIGGER_CFG_INIT;

	return c;
}

/* Inputs with `mode` for every operation, the kill switch off. */
static co_trigger_inputs inputs(co_mode mode, int pct)
{
	co_trigger_inputs in;

	memset(&in, 0, sizeof(in));
	co_flags_init(&in.flags);
	assert_int_equal(co_flags_set_default(&in.flags, mode, pct), 0);
	return in;
}

static void window_keeps_only_its_seconds(void **state)
{
	co_signals *s = NULL;
	co_signal_snapshot snap;

	(void)state;
	assert_int_equal(co_signals_new(&s, 3), 0);
	co_signals_record_at(s, 100, CO_SIDE_ETCD, CO_OP_TASK_CLAIM, 0, 1000);
	co_signals_record_at(s, 101, CO_SIDE_ETCD, CO_OP_TASK_CLAIM, CO_EUNAVAIL, 1000);
	co_signals_record_at(s, 102, CO_SIDE_GIT, CO_OP_TASK_CLAIM, 0, 1000);
	co_signals_snapshot_at(&snap, s, 102);
	assert_int_equal(snap.window_s, 3);
	assert_int_equal(snap.cell[1][CO_OP_TASK_CLAIM].count, 2);
	assert_int_equal(snap.cell[1][CO_OP_TASK_CLAIM].errors, 1);
	assert_int_equal(snap.cell[0][CO_OP_TASK_CLAIM].count, 1);
	/* second 100 leaves the window at 103 */
	co_signals_snapshot_at(&snap, s, 103);
	assert_int_equal(snap.cell[1][CO_OP_TASK_CLAIM].count, 1);
	/* a slot reused for a new second starts empty (104 % 4 == 100 % 4) */
	co_signals_record_at(s, 104, CO_SIDE_ETCD, CO_OP_TASK_CLAIM, 0, 1000);
	co_signals_snapshot_at(&snap, s, 104);
	assert_int_equal(snap.cell[1][CO_OP_TASK_CLAIM].count, 1);
	assert_int_equal(snap.cell[1][CO_OP_TASK_CLAIM].errors, 0);
	/* another side or an out-of-range op is ignored, never a crash */
	co_signals_record_at(s, 104, CO_SIDE_NONE, CO_OP_TASK_CLAIM, 0, 1);
	co_signals_record_at(s, 104, CO_SIDE_GIT, CO_OP__COUNT, 0, 1);
	assert_int_equal(co_signals_new(&(co_signals *){NULL}, 0), CO_EINVAL);
	co_signals_free(s);
}

static void answers_are_not_failures(void **state)
{
	(void)state;
	assert_true(co_signals_is_failure(CO_EUNAVAIL));
	assert_true(co_signals_is_failure(CO_EIO));
	assert_false(co_signals_is_failure(0));
	assert_false(co_signals_is_failure(CO_ECONFLICT));
	assert_false(co_signals_is_failure(CO_ENOTFOUND));
	assert_false(co_signals_is_failure(CO_EINVAL));
}

static void p95_is_the_tail_not_the_outlier(void **state)
{
	co_signals *s = NULL;
	co_signal_snapshot snap;
	int64_t p;
	int i;

	(void)state;
	assert_int_equal(co_signals_new(&s, 60), 0);
	for (i = 0; i < 99; i++)
		co_signals_record_at(s, 10, CO_SIDE_GIT, CO_OP_TASK_GET, 0, 2000);
	co_signals_record_at(s, 10, CO_SIDE_GIT, CO_OP_TASK_GET, 0, 5000000);
	co_signals_snapshot_at(&snap, s, 10);
	p = co_signal_p95_us(&snap.cell[0][CO_OP_TASK_GET]);
	/* within a bucket (2^(1/4)) of 2 ms: one 5 s op does not move it */
	assert_true(p > 2000 * 100 / 119 && p <= 2000 * 119 / 100);
	/* 10% slow: the p95 is the slow ones */
	for (i = 0; i < 12; i++)
		co_signals_record_at(s, 11, CO_SIDE_GIT, CO_OP_TASK_GET, 0, 100000);
	co_signals_snapshot_at(&snap, s, 11);
	p = co_signal_p95_us(&snap.cell[0][CO_OP_TASK_GET]);
	assert_true(p > 100000 * 100 / 119 && p <= 100000 * 119 / 100);
	memset(&snap, 0, sizeof(snap));
	assert_int_equal(co_signal_p95_us(&snap.cell[0][0]), 0);
	co_signals_free(s);
}

/* n etcd claims in second 5, `bad` of them failed, each `us` long. */
static void etcd_ops(co_signal_snapshot *snap, co_op op, int n, int bad, int64_t us)
{
	co_signals *s = NULL;

	assert_int_equal(co_signals_new(&s, 60), 0);
	for (int i = 0; i < n; i++)
		co_signals_record_at(s, 5, CO_SIDE_ETCD, op, i < bad ? CO_EUNAVAIL : 0,
				     us);
	co_signals_snapshot_at(snap, s, 5);
	co_signals_free(s);
}

static void error_rate_needs_its_samples_and_its_rate(void **state)
{
	co_trigger_cfg c = cfg();
	co_trigger_inputs in = inputs(CO_MODE_DUAL, 50);
	co_signal_snapshot snap;
	co_trigger_eval ev;

	(void)state;
	/* one failure in three ops is not a rollback */
	etcd_ops(&snap, CO_OP_TASK_CLAIM, 3, 1, 1000);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_true(ev.armed);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	/* exactly 5% does not pass 5% */
	etcd_ops(&snap, CO_OP_TASK_CLAIM, 100, 5, 1000);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	/* 6 of 100 does, and says so with its figures */
	etcd_ops(&snap, CO_OP_TASK_CLAIM, 100, 6, 1000);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_ERROR_RATE);
	assert_non_null(strstr(ev.reason, "6.0% (6 of 100 ops) over 60 s > 5.0%"));
	assert_non_null(strstr(ev.figures, "errors=6 samples=100 window_s=60"));
	/* not in git mode, not with the kill switch on */
	in = inputs(CO_MODE_GIT, 0);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_false(ev.armed);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	assert_string_equal(ev.disarmed_why, "every operation in git mode");
	in = inputs(CO_MODE_DUAL, 50);
	co_flags_set_kill(&in.flags, 1, "earlier");
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	assert_string_equal(ev.disarmed_why, "kill switch on");
	/* nor after `cutover complete`: there is no way back to trip to */
	in = inputs(CO_MODE_ETCD, 0);
	co_flags_set_completed(&in.flags, 1, "tester", "done");
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_false(ev.armed);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	assert_non_null(strstr(ev.disarmed_why, "completed"));
}

static void latency_needs_a_baseline_and_a_slow_tail(void **state)
{
	co_trigger_cfg c = cfg();
	co_trigger_inputs in = inputs(CO_MODE_DUAL, 100);
	co_signals *s = NULL;
	co_signal_snapshot snap;
	co_trigger_eval ev;
	int i;

	(void)state;
	etcd_ops(&snap, CO_OP_TASK_CLAIM, 100, 0, 50000);
	/* no baseline: no latency trigger, however slow */
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	assert_int_equal(ev.baselines, 0);
	/* a baseline of 10 ms: 50 ms is 5x */
	in.baseline_us[CO_OP_TASK_CLAIM] = 10000;
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_LATENCY);
	assert_int_equal(ev.latency_op, CO_OP_TASK_CLAIM);
	assert_non_null(strstr(ev.reason, "task_claim etcd-path p95"));
	assert_non_null(strstr(ev.figures, "baseline_us=10000"));
	/* a single slow op among fast ones does not */
	assert_int_equal(co_signals_new(&s, 60), 0);
	for (i = 0; i < 99; i++)
		co_signals_record_at(s, 5, CO_SIDE_ETCD, CO_OP_TASK_CLAIM, 0, 8000);
	co_signals_record_at(s, 5, CO_SIDE_ETCD, CO_OP_TASK_CLAIM, 0, 3000000);
	co_signals_snapshot_at(&snap, s, 5);
	co_signals_free(s);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	assert_true(ev.latency_ratio < 2.0);
	/* nor a slow op with too few samples */
	etcd_ops(&snap, CO_OP_TASK_CLAIM, 10, 0, 3000000);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
}

/*
 * etcd so slow that no one kind of operation gathers min_samples: the
 * kinds with a baseline are judged as one pool, against the largest of
 * their baselines, so a stall is not hidden by its own slowness.
 */
static void latency_pools_the_kinds_when_each_is_too_few(void **state)
{
	co_trigger_cfg c = cfg();
	co_trigger_inputs in = inputs(CO_MODE_DUAL, 100);
	co_signals *s = NULL;
	co_signal_snapshot snap;
	co_trigger_eval ev;
	int i, half = c.min_samples / 2 + 1;

	(void)state;
	in.baseline_us[CO_OP_TASK_CLAIM] = 10000;
	in.baseline_us[CO_OP_TASK_RELEASE] = 20000;
	assert_int_equal(co_signals_new(&s, 60), 0);
	for (i = 0; i < half; i++) {
		co_signals_record_at(s, 5, CO_SIDE_ETCD, CO_OP_TASK_CLAIM, 0, 700000);
		co_signals_record_at(s, 5, CO_SIDE_ETCD, CO_OP_TASK_RELEASE, 0, 700000);
	}
	co_signals_snapshot_at(&snap, s, 5);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_LATENCY);
	assert_int_equal(ev.latency_pooled, 2);
	assert_int_equal(ev.latency_op, CO_OP_TASK_RELEASE); /* the 20 ms one */
	assert_int_equal(ev.baseline_us, 20000);
	assert_int_equal(ev.latency_samples, 2 * half);
	assert_non_null(strstr(ev.reason, "over 2 kinds of operation"));
	assert_non_null(strstr(ev.figures, "pooled=2"));
	/* the same pool, fast: judged, nothing fires */
	co_signals_free(s);
	assert_int_equal(co_signals_new(&s, 60), 0);
	for (i = 0; i < half; i++) {
		co_signals_record_at(s, 5, CO_SIDE_ETCD, CO_OP_TASK_CLAIM, 0, 9000);
		co_signals_record_at(s, 5, CO_SIDE_ETCD, CO_OP_TASK_RELEASE, 0, 25000);
	}
	co_signals_snapshot_at(&snap, s, 5);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	assert_true(ev.latency_op >= 0);
	assert_true(ev.latency_ratio < c.latency_ratio);
	/* one kind alone, under min_samples, is still not judged */
	co_signals_free(s);
	etcd_ops(&snap, CO_OP_TASK_CLAIM, half, 0, 700000);
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	assert_int_equal(ev.latency_op, -1);
}

static void health_and_outbox_age_fire_past_their_bounds(void **state)
{
	co_trigger_cfg c = cfg();
	co_trigger_inputs in = inputs(CO_MODE_SHADOW, 0);
	co_signal_snapshot snap;
	co_trigger_eval ev;

	(void)state;
	memset(&snap, 0, sizeof(snap));
	snap.window_s = 60;
	in.etcd_down_ms = 10000; /* at the grace, not past it */
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	in.etcd_down_ms = 10001;
	snprintf(in.etcd_why, sizeof(in.etcd_why), "breaker open: 3 failures in a row");
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_HEALTH);
	assert_non_null(strstr(ev.reason, "3 failures in a row"));
	in.etcd_down_ms = 0;
	in.outbox_age_ms = 120000;
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	in.outbox_age_ms = 121000;
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_OUTBOX_AGE);
	assert_non_null(strstr(ev.figures, "age_ms=121000 bound_ms=120000"));
}

/* A fleet router with the triggers turned off keeps the health trigger
 * alone (its fallback when etcd is lost); a file-mode router keeps what
 * it was configured with, and so does a fleet router with them on. */
static void a_fleet_router_keeps_the_health_trigger_when_triggers_are_off(void **state)
{
	co_trigger_cfg on = cfg(), off = cfg(), c;
	co_trigger_inputs in = inputs(CO_MODE_DUAL, 50);
	co_signal_snapshot snap;
	co_trigger_eval ev;

	(void)state;
	off.enabled = 0;
	co_trigger_cfg_for_router(&c, &off, 0);
	assert_false(c.enabled);
	co_trigger_cfg_for_router(&c, &on, 1);
	assert_memory_equal(&c, &on, sizeof(c));
	co_trigger_cfg_for_router(&c, &off, 1);
	assert_true(c.enabled);
	assert_int_equal(co_trigger_cfg_check(&c), 0);
	assert_int_equal(c.health_grace_ms, off.health_grace_ms);
	/* everything failing, the outbox old: only health may fire */
	etcd_ops(&snap, CO_OP_TASK_CLAIM, 1000, 1000, 900000);
	in.outbox_age_ms = 86400000;
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_NONE);
	in.etcd_down_ms = off.health_grace_ms + 1;
	co_triggers_eval(&ev, &c, &snap, &in);
	assert_int_equal(ev.fired, CO_TRIGGER_HEALTH);
}

static void baseline_is_git_p95_in_git_or_shadow_and_survives_a_restart(void **state)
{
	co_trigger_cfg c = cfg();
	co_signals *s = NULL;
	co_signal_snapshot snap;
	co_flags f;
	int64_t base[CO_OP__COUNT] = {0}, n[CO_OP__COUNT] = {0};
	int64_t base2[CO_OP__COUNT], n2[CO_OP__COUNT];
	char dir[256], path[400];
	struct stat sb;
	int i;

	(void)state;
	assert_int_equal(co_signals_new(&s, 60), 0);
	for (i = 0; i < 60; i++) {
		co_signals_record_at(s, 5, CO_SIDE_GIT, CO_OP_TASK_CLAIM, 0, 4000);
		co_signals_record_at(s, 5, CO_SIDE_GIT, CO_OP_TASK_GET, 0, 1000);
	}
	for (i = 0; i < 10; i++)
		co_signals_record_at(s, 5, CO_SIDE_GIT, CO_OP_TASK_CREATE, 0, 1000);
	co_signals_snapshot_at(&snap, s, 5);
	co_signals_free(s);
	co_flags_init(&f);
	assert_int_equal(co_flags_set_default(&f, CO_MODE_SHADOW, 0), 0);
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_GET, CO_MODE_DUAL, 10), 0);
	assert_int_equal(co_triggers_baseline_update(base, n, &c, &snap, &f), 1);
	assert_true(base[CO_OP_TASK_CLAIM] > 3000 &&
		    base[CO_OP_TASK_CLAIM] <= 4000 * 119 / 100);
	assert_int_equal(base[CO_OP_TASK_GET], 0);    /* in dual: not a baseline */
	assert_int_equal(base[CO_OP_TASK_CREATE], 0); /* under min_samples */
	assert_int_equal(co_triggers_baseline_update(base, n, &c, &snap, &f), 0);

	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	assert_int_equal(co_triggers_baseline_load(base2, n2, dir), 0); /* none yet */
	assert_int_equal(base2[CO_OP_TASK_CLAIM], 0);
	assert_int_equal(co_triggers_baseline_save(base, n, dir), 0);
	snprintf(path, sizeof(path), "%s/trigger-baseline.json", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(co_triggers_baseline_load(base2, n2, dir), 0);
	assert_int_equal(base2[CO_OP_TASK_CLAIM], base[CO_OP_TASK_CLAIM]);
	assert_int_equal(n2[CO_OP_TASK_CLAIM], 60);
	co_test_rmrf(dir);
}

/* The config file's triggers: section. */
static int load_yaml(co_config **out, const char *dir, const char *yaml)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cutover.yaml", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(yaml, f);
	fclose(f);
	*out = NULL;
	return co_config_load(out, path);
}

static void bad_thresholds_are_refused_naming_field_and_value(void **state)
{
	static const struct {
		const char *yaml, *want;
	} bad[] = {
	    {"triggers: {error_rate: 1.5}\n", "triggers.error_rate"},
	    {"triggers: {error_rate: 0}\n", "error_rate\": 0 is out of range"},
	    {"triggers: {error_rate: lots}\n", "bad number \"lots\""},
	    {"triggers: {latency_ratio: 0.5}\n", "triggers.latency_ratio"},
	    {"triggers: {min_samples: -3}\n", "triggers.min_samples"},
	    {"triggers: {window: 1500ms}\n", "\"1500ms\" must be whole seconds"},
	    {"triggers: {window: 2h}\n", "triggers.window"},
	    {"triggers: {health_grace: 0s}\n", "triggers.health_grace"},
	    {"triggers: {outbox_age: soon}\n", "triggers.outbox_age"},
	    {"triggers: {enabled: maybe}\n", "triggers.enabled"},
	    {"triggers: {windw: 3s}\n", "unknown key"},
	};
	co_config *c = NULL;
	char dir[256];
	size_t i;

	(void)state;
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(load_yaml(&c, dir, bad[i].yaml), CO_EINVAL);
		assert_null(c);
		if (strstr(co_error_last(), bad[i].want) == NULL)
			fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].yaml,
				 co_error_last(), bad[i].want);
	}
	assert_int_equal(load_yaml(&c, dir,
				   "triggers:\n  enabled: false\n  window: 3s\n"
				   "  min_samples: 20\n  error_rate: 0.1\n"
				   "  latency_ratio: 3\n  health_grace: 2s\n"
				   "  outbox_age: 30s\n"),
			 0);
	assert_false(c->triggers.enabled);
	assert_int_equal(c->triggers.window_ms, 3000);
	assert_int_equal(c->triggers.min_samples, 20);
	assert_true(c->triggers.error_rate == 0.1);
	assert_true(c->triggers.latency_ratio == 3.0);
	assert_int_equal(c->triggers.health_grace_ms, 2000);
	assert_int_equal(c->triggers.outbox_age_ms, 30000);
	assert_int_equal(co_trigger_cfg_check(&c->triggers), 0);
	co_config_free(c);
	/* the defaults of the issue */
	assert_int_equal(co_config_defaults(&c), 0);
	assert_true(c->triggers.enabled);
	assert_int_equal(c->triggers.window_ms, 60000);
	assert_int_equal(c->triggers.min_samples, 50);
	assert_true(c->triggers.error_rate == 0.05);
	assert_true(c->triggers.latency_ratio == 2.0);
	assert_int_equal(c->triggers.health_grace_ms, 10000);
	assert_int_equal(c->triggers.outbox_age_ms, 120000);
	c->triggers.latency_ratio = 1.0;
	assert_int_equal(co_trigger_cfg_check(&c->triggers), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "triggers.latency_ratio: 1"));
	co_config_free(c);
	co_test_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(window_keeps_only_its_seconds),
	    cmocka_unit_test(answers_are_not_failures),
	    cmocka_unit_test(p95_is_the_tail_not_the_outlier),
	    cmocka_unit_test(error_rate_needs_its_samples_and_its_rate),
	    cmocka_unit_test(latency_needs_a_baseline_and_a_slow_tail),
	    cmocka_unit_test(latency_pools_the_kinds_when_each_is_too_few),
	    cmocka_unit_test(health_and_outbox_age_fire_past_their_bounds),
	    cmocka_unit_test(baseline_is_git_p95_in_git_or_shadow_and_survives_a_restart),
	    cmocka_unit_test(bad_thresholds_are_refused_naming_field_and_value),
	    cmocka_unit_test(a_fleet_router_keeps_the_health_trigger_when_triggers_are_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
