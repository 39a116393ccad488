/*
 * test_drain_restart.c - the outbox pays back a restarted etcd at once, in
 * batches (issue 15, "drain catches up at once").
 *
 * A whole `cutover serve` in-process (serve_fixture: the router with its
 * background drain and the health probe) at dual 50 over a real etcd and a
 * real bare git repo.  etcd is SIGKILLed; git-decided writes (creates,
 * claims with a lease, releases) are acknowledged and owed to etcd, each
 * ID counted; etcd restarts with its data dir.  What must hold: the outbox
 * owes etcd exactly the acknowledged IDs while it is down; after the
 * restart the background drain alone (nobody calls co_router_drain) empties
 * it; every acknowledged record is in etcd as git holds it, at the rev
 * that was acknowledged; and the drain made far fewer etcd calls
 * than records (batches, not one round trip each).  No timing is asserted:
 * bench/bench_drain.c measures how fast.
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
#include "core/outbox.h"
#include "core/record.h"
#include "harness/harness.h"
#include "harness/serve_fixture.h"
#include "router/router.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_TASKS 300

static int64_t owed_to_etcd(co_test_serve *f)
{
	int64_t d = -1;

	assert_int_equal(co_outbox_depth(&d, f->st, "etcd"), 0);
	return d;
}

/* Wait (bounded, 60 s) until the outbox owes etcd nothing. */
static int wait_drained(co_test_serve *f)
{
	struct timespec q = {0, 10 * 1000000L};
	int i;

	for (i = 0; i < 6000; i++) {
		if (owed_to_etcd(f) == 0)
			return 1;
		nanosleep(&q, NULL); /* polls a figure the drain thread moves */
	}
	return 0;
}

static void background_drain_pays_back_a_restarted_etcd_in_batches(void **state)
{
	co_test_etcd own;
	co_test_serve f;
	co_test_serve_opts o = {0};
	char (*acked)[32] = calloc(N_TASKS, sizeof(*acked));
	int64_t *revs = calloc(N_TASKS, sizeof(*revs));
	int n_acked = 0, n_claims = 0, i;
	uint64_t calls;
	co_outbox_list l = {0};

	(void)state;
	assert_non_null(acked);
	assert_non_null(revs);
	assert_int_equal(co_test_etcd_start(&own), 0);
	o.endpoint = own.endpoint;
	o.prefix = "/drain-restart/";
	o.stage = "50";
	o.probe_interval_ms = 100;
	assert_int_equal(co_test_serve_open(&f, &o), 0);

	co_test_etcd_kill(&own);
	for (i = 0; i < N_TASKS; i++) {
		co_record *t = NULL, *out = NULL;
		co_route rt;
		char id[32];

		snprintf(id, sizeof(id), "DR-%03d", i);
		assert_int_equal(co_router_route(&rt, f.r, CO_OP_TASK_CREATE, id), 0);
		if (rt.primary != CO_SIDE_GIT)
			continue; /* etcd decides it, and etcd is down */
		assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
		t->type = strdup("build");
		if (co_router_task_create(&out, f.r, t) != 0)
			fail_msg("create %s with etcd down: %s", id, co_error_last());
		co_record_free(t);
		/* a third claimed (a lease in etcd), a third claimed and released */
		if (i % 3 != 2) {
			co_record_free(out);
			out = NULL;
			if (co_router_claim(&out, f.r, id, "swarm-a", 600) != 0)
				fail_msg("claim %s: %s", id, co_error_last());
			n_claims += i % 3 == 0;
		}
		if (i % 3 == 1) {
			co_record_free(out);
			out = NULL;
			if (co_router_release(&out, f.r, id, "swarm-a", CO_STATUS_AVAILABLE) != 0)
				fail_msg("release %s: %s", id, co_error_last());
		}
		snprintf(acked[n_acked], sizeof(acked[n_acked]), "%s", id);
		revs[n_acked++] = out->rev;
		co_record_free(out);
	}
	assert_true(n_acked > N_TASKS / 4);

	/* the outbox owes etcd each acknowledged ID, and nothing else */
	assert_int_equal(co_outbox_next_batch(&l, f.st, "etcd", 100000, INT64_MAX), 0);
	assert_int_equal((int)l.n, n_acked);
	for (i = 0; i < n_acked; i++) {
		size_t k;

		for (k = 0; k < l.n && strcmp(l.items[k]->id, acked[i]) != 0; k++)
			;
		if (k == l.n)
			fail_msg("%s acknowledged but not owed to etcd", acked[i]);
	}
	co_outbox_list_clear(&l);
	print_message("%d acknowledged IDs owed to etcd (%d claimed)\n", n_acked, n_claims);

	calls = co_store_calls(f.etcd);
	assert_int_equal(co_test_etcd_restart(&own), 0);
	if (!wait_drained(&f))
		fail_msg("the outbox still owes etcd %lld after 60 s",
			 (long long)owed_to_etcd(&f));
	calls = co_store_calls(f.etcd) - calls;
	print_message("drained with %llu etcd calls (probes included)\n",
		      (unsigned long long)calls);
	/* batches: a read txn and a write txn per 64 records, and the probes */
	assert_true(calls < (uint64_t)n_acked / 4);

	for (i = 0; i < n_acked; i++) {
		co_record *e = NULL, *g = NULL;

		assert_int_equal(co_store_get(&e, f.etcd, CO_KIND_TASK, acked[i]), 0);
		assert_int_equal(co_store_get(&g, f.git, CO_KIND_TASK, acked[i]), 0);
		assert_int_equal(e->rev, revs[i]);
		assert_true(co_record_equal(e, g));
		co_record_free(e);
		co_record_free(g);
	}
	co_test_serve_close(&f);
	co_test_etcd_stop(&own);
	free(acked);
	free(revs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(background_drain_pays_back_a_restarted_etcd_in_batches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
