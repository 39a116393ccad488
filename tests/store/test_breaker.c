/*
 * test_breaker.c - the circuit breaker's states and transitions (pure
 * logic: the test passes the clock, so nothing sleeps).
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/error.h"
#include "store/breaker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define WALL 1700000000000LL

/* One call at monotonic time t that fails (or not). */
static int call(co_breaker *b, int64_t t, int fail)
{
	int probe, error;

	if ((error = co_breaker_enter(b, &probe, t, WALL + t)) < 0)
		return error;
	co_breaker_leave(b, probe, fail, fail ? "etcd x: operation timed out" : NULL, t,
			 WALL + t);
	return 0;
}

static co_breaker_state state_of(co_breaker *b, int64_t t)
{
	co_breaker_info i;

	co_breaker_get(&i, b, t);
	return i.state;
}

static void opens_after_three_failures_in_a_row_and_then_refuses_at_once(void **state)
{
	co_breaker *b = co_breaker_new("etcd", NULL);
	co_breaker_info i;

	(void)state;
	assert_int_equal(call(b, 0, 1), 0);
	assert_int_equal(call(b, 1, 1), 0);
	assert_int_equal(state_of(b, 1), CO_BREAKER_CLOSED);
	assert_int_equal(call(b, 2, 1), 0);
	assert_int_equal(state_of(b, 2), CO_BREAKER_OPEN);
	/* refused without calling, and the message says since when and why */
	assert_int_equal(call(b, 3, 0), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), "etcd circuit open since "));
	assert_non_null(strstr(co_error_last(), "3 failures in a row"));
	assert_non_null(strstr(co_error_last(), "next probe in 1.0 s"));
	assert_non_null(strstr(co_error_last(), "operation timed out"));
	co_breaker_get(&i, b, 3);
	assert_int_equal(i.calls_total, 3);
	assert_int_equal(i.rejected_total, 1);
	assert_int_equal(i.opened_total, 1);
	assert_int_equal(i.next_probe_in_ms, 999);
	co_breaker_free(b);
}

/* The store answered: not found, conflict and the like never open it. */
static void a_success_between_failures_resets_the_count(void **state)
{
	co_breaker *b = co_breaker_new("etcd", NULL);
	int k;

	(void)state;
	/* never three in a row, but 2 of 3 calls fail: past the 50 % of a
	 * 10 s window once 20 calls are in it */
	for (k = 0; k < 6; k++) {
		assert_int_equal(call(b, k, 1), 0);
		assert_int_equal(call(b, k, 1), 0);
		assert_int_equal(call(b, k, 0), 0);
	}
	assert_int_equal(state_of(b, 6), CO_BREAKER_CLOSED);
	assert_int_equal(call(b, 6, 1), 0);
	assert_int_equal(call(b, 6, 1), 0);
	assert_int_equal(state_of(b, 6), CO_BREAKER_OPEN);
	assert_int_equal(call(b, 7, 0), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), "14 of 20 calls failed within 10 s"));
	co_breaker_free(b);

	b = co_breaker_new("etcd", NULL);
	for (k = 0; k < 100; k++) {
		assert_int_equal(call(b, k * 1000, 1), 0);
		assert_int_equal(call(b, k * 1000, 0), 0);
		assert_int_equal(call(b, k * 1000, 0), 0);
	}
	assert_int_equal(state_of(b, 100000), CO_BREAKER_CLOSED);
	co_breaker_free(b);
}

static void one_probe_at_a_time_and_its_success_closes(void **state)
{
	co_breaker *b = co_breaker_new("git", NULL);
	co_breaker_info i;
	int probe, probe2;

	(void)state;
	call(b, 0, 1);
	call(b, 0, 1);
	call(b, 0, 1);
	assert_int_equal(call(b, 999, 0), CO_EUNAVAIL);
	assert_int_equal(co_breaker_enter(b, &probe, 1000, WALL), 0);
	assert_true(probe);
	assert_int_equal(state_of(b, 1000), CO_BREAKER_HALF_OPEN);
	/* while the probe is out, everyone else is still refused */
	assert_int_equal(co_breaker_enter(b, &probe2, 1001, WALL), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), "a probe is running"));
	co_breaker_leave(b, probe, 0, NULL, 1002, WALL);
	co_breaker_get(&i, b, 1002);
	assert_int_equal(i.state, CO_BREAKER_CLOSED);
	assert_int_equal(i.closed_total, 1);
	assert_int_equal(i.consecutive, 0);
	assert_int_equal(call(b, 1003, 0), 0);
	co_breaker_free(b);
}

static void a_failed_probe_doubles_the_wait_up_to_the_cap(void **state)
{
	co_breaker_opts o = CO_BREAKER_OPTS_INIT;
	co_breaker *b;
	int64_t t = 0, waits[] = {1000, 2000, 4000, 4000};
	size_t k;

	(void)state;
	o.probe_max_ms = 4000;
	b = co_breaker_new("etcd", &o);
	call(b, t, 1);
	call(b, t, 1);
	call(b, t, 1);
	for (k = 0; k < sizeof(waits) / sizeof(waits[0]); k++) {
		assert_int_equal(call(b, t + waits[k] - 1, 0), CO_EUNAVAIL);
		t += waits[k];
		assert_int_equal(call(b, t, 1), 0); /* the probe, failing */
		assert_int_equal(state_of(b, t), CO_BREAKER_OPEN);
	}
	co_breaker_free(b);
}

/* A health probe need not wait out the backoff: a store that came back is
 * seen back within one probe interval.  Ordinary calls still wait. */
static void a_health_probe_probes_at_once_whatever_the_backoff(void **state)
{
	co_breaker *b = co_breaker_new("etcd", NULL);
	int probe = 0;

	(void)state;
	call(b, 0, 1);
	call(b, 0, 1);
	call(b, 0, 1);
	assert_int_equal(state_of(b, 10), CO_BREAKER_OPEN);
	assert_int_equal(call(b, 10, 0), CO_EUNAVAIL); /* next probe in 1 s */
	/* a failing health probe keeps it open; the next one goes at once */
	assert_int_equal(co_breaker_enter_probe(b, &probe, 20, WALL + 20), 0);
	assert_int_equal(probe, 1);
	assert_int_equal(co_breaker_enter_probe(b, &probe, 21, WALL + 21), CO_EUNAVAIL);
	co_breaker_leave(b, 1, 1, "etcd x: operation timed out", 30, WALL + 30);
	assert_int_equal(state_of(b, 30), CO_BREAKER_OPEN);
	assert_int_equal(call(b, 40, 0), CO_EUNAVAIL);
	assert_int_equal(co_breaker_enter_probe(b, &probe, 50, WALL + 50), 0);
	assert_int_equal(probe, 1);
	co_breaker_leave(b, 1, 0, NULL, 60, WALL + 60);
	assert_int_equal(state_of(b, 60), CO_BREAKER_CLOSED);
	assert_int_equal(call(b, 61, 0), 0);
	co_breaker_free(b);
}

typedef struct seen {
	int n;
	co_breaker_state from[8], to[8];
	char name[16];
} seen;

static void hook(void *ctx, const char *name, co_breaker_state from,
		 const co_breaker_info *info)
{
	seen *s = ctx;

	if (s->n < 8) {
		s->from[s->n] = from;
		s->to[s->n] = info->state;
		s->n++;
	}
	strncpy(s->name, name, sizeof(s->name) - 1);
}

static void every_transition_reaches_the_hook(void **state)
{
	co_breaker *b = co_breaker_new("etcd", NULL);
	seen s = {0};

	(void)state;
	co_breaker_set_hook(b, hook, &s);
	call(b, 0, 1);
	call(b, 0, 1);
	call(b, 0, 1);	  /* closed -> open */
	call(b, 1000, 1); /* -> half-open -> open */
	call(b, 3000, 0); /* -> half-open -> closed */
	assert_int_equal(s.n, 5);
	assert_string_equal(s.name, "etcd");
	assert_int_equal(s.to[0], CO_BREAKER_OPEN);
	assert_int_equal(s.to[1], CO_BREAKER_HALF_OPEN);
	assert_int_equal(s.to[2], CO_BREAKER_OPEN);
	assert_int_equal(s.to[3], CO_BREAKER_HALF_OPEN);
	assert_int_equal(s.from[4], CO_BREAKER_HALF_OPEN);
	assert_int_equal(s.to[4], CO_BREAKER_CLOSED);
	co_breaker_free(b);
}

/* A call that began before the breaker opened and fails afterwards does
 * not move it; nor does one that succeeds: only the probe decides. */
static void late_calls_do_not_decide(void **state)
{
	co_breaker *b = co_breaker_new("etcd", NULL);
	int late;

	(void)state;
	assert_int_equal(co_breaker_enter(b, &late, 0, WALL), 0);
	call(b, 0, 1);
	call(b, 0, 1);
	call(b, 0, 1);
	co_breaker_leave(b, late, 0, NULL, 10, WALL);
	assert_int_equal(state_of(b, 10), CO_BREAKER_OPEN);
	assert_int_equal(call(b, 1000, 0), 0); /* the probe */
	assert_int_equal(state_of(b, 1000), CO_BREAKER_CLOSED);
	co_breaker_free(b);
}

/* A call that only ran out of a caller's bound neither counts against the
 * store nor resets its count; a probe that ends so still failed. */
static void a_bound_running_out_is_inconclusive(void **state)
{
	co_breaker *b = co_breaker_new("etcd", NULL);
	int probe, k;

	(void)state;
	for (k = 0; k < 50; k++) {
		assert_int_equal(co_breaker_enter(b, &probe, k, WALL), 0);
		co_breaker_leave(b, probe, CO_BREAKER_INCONCLUSIVE, "slow", k, WALL);
	}
	assert_int_equal(state_of(b, 50), CO_BREAKER_CLOSED);
	call(b, 51, 1);
	call(b, 52, 1);
	assert_int_equal(co_breaker_enter(b, &probe, 53, WALL), 0);
	co_breaker_leave(b, probe, CO_BREAKER_INCONCLUSIVE, "slow", 53, WALL);
	call(b, 54, 1); /* third real failure in a row: open */
	assert_int_equal(state_of(b, 54), CO_BREAKER_OPEN);
	assert_int_equal(co_breaker_enter(b, &probe, 1054, WALL), 0);
	assert_true(probe);
	co_breaker_leave(b, probe, CO_BREAKER_INCONCLUSIVE, "slow", 1054, WALL);
	assert_int_equal(state_of(b, 1054), CO_BREAKER_OPEN);
	co_breaker_free(b);
}

/* 32 threads hammer an open breaker at probe time: exactly one is let
 * through as the probe. */
typedef struct race {
	co_breaker *b;
	atomic_int probes, let_through;
	pthread_barrier_t go;
} race;

static void *racer(void *arg)
{
	race *r = arg;
	int probe = 0;

	pthread_barrier_wait(&r->go);
	if (co_breaker_enter(r->b, &probe, 5000, WALL) == 0) {
		atomic_fetch_add(&r->let_through, 1);
		if (probe)
			atomic_fetch_add(&r->probes, 1);
	}
	return NULL;
}

static void one_probe_among_32_racing_threads(void **state)
{
	pthread_t th[32];
	race r;
	int k, round;

	(void)state;
	for (round = 0; round < 50; round++) {
		memset(&r, 0, sizeof(r));
		r.b = co_breaker_new("etcd", NULL);
		call(r.b, 0, 1);
		call(r.b, 0, 1);
		call(r.b, 0, 1);
		pthread_barrier_init(&r.go, NULL, 32);
		for (k = 0; k < 32; k++)
			assert_int_equal(pthread_create(&th[k], NULL, racer, &r), 0);
		for (k = 0; k < 32; k++)
			pthread_join(th[k], NULL);
		assert_int_equal(atomic_load(&r.probes), 1);
		assert_int_equal(atomic_load(&r.let_through), 1);
		pthread_barrier_destroy(&r.go);
		co_breaker_free(r.b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(opens_after_three_failures_in_a_row_and_then_refuses_at_once),
	    cmocka_unit_test(a_success_between_failures_resets_the_count),
	    cmocka_unit_test(one_probe_at_a_time_and_its_success_closes),
	    cmocka_unit_test(a_failed_probe_doubles_the_wait_up_to_the_cap),
	    cmocka_unit_test(every_transition_reaches_the_hook),
	    cmocka_unit_test(late_calls_do_not_decide),
	    cmocka_unit_test(one_probe_among_32_racing_threads),
	    cmocka_unit_test(a_bound_running_out_is_inconclusive),
	    cmocka_unit_test(a_health_probe_probes_at_once_whatever_the_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
