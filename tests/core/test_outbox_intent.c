/*
 * test_outbox_intent.c - intents: pushed and retired cheaply, fulfilled by
 * the record in place, still there after a crash, and made durable by a
 * group commit (co_state_sync) on another connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/outbox.h"
#include "core/state.h"
#include "core/state_internal.h" /* co_state__sync_fault */
#include "harness/harness.h"
#include "harness/state_fixture.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef co_test_state_fixture fx;

static void fulfilled_intent_keeps_its_place_in_key_order(void **state)
{
	fx *f = *state;
	co_outbox_list l = {0};
	int64_t a = 0, b = 0;

	assert_int_equal(co_outbox_push_intent(&a, f->st, "git", "task", "T1", "@sync:x"),
			 0);
	assert_int_equal(co_outbox_push(&b, f->st, "git", "task", "T1", "{\"later\":1}"),
			 0);
	assert_int_equal(
	    co_outbox_fulfil_intent(f->st, a, "git", "task", "T1", "{\"rec\":1}", 1), 0);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "T1"), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.items[0]->seq, a);
	assert_string_equal(l.items[0]->payload, "{\"rec\":1}");
	assert_int_equal(l.items[1]->seq, b);
	co_outbox_list_clear(&l);
}

static void fulfilling_a_resolved_intent_pushes_the_record(void **state)
{
	fx *f = *state;
	co_outbox_list l = {0};
	int64_t a = 0, depth = -1;

	assert_int_equal(
	    co_outbox_push_intent(&a, f->st, "etcd", "task", "T2", "@sync:x"), 0);
	assert_int_equal(co_outbox_ack(f->st, a), 0); /* a drain resolved it */
	assert_int_equal(
	    co_outbox_fulfil_intent(f->st, a, "etcd", "task", "T2", "{\"r\":2}", 1), 0);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "etcd", "task", "T2"), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0]->payload, "{\"r\":2}");
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_depth(&depth, f->st, "etcd"), 0);
	assert_int_equal(depth, 1);
}

static void acked_intent_is_gone(void **state)
{
	fx *f = *state;
	int64_t a = 0, depth = -1;

	assert_int_equal(
	    co_outbox_push_intent(&a, f->st, "git", "swarm", "S1", "@sync:x"), 0);
	assert_int_equal(co_outbox_ack_intent(f->st, a), 0);
	assert_int_equal(co_outbox_depth(&depth, f->st, NULL), 0);
	assert_int_equal(depth, 0);
}

static void intent_survives_a_process_crash(void **state)
{
	fx *f = *state;
	co_outbox_list l = {0};
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		co_state *st = NULL;

		if (co_state_open(&st, f->dir) < 0 ||
		    co_outbox_push_intent(NULL, st, "git", "task", "CRASH", "@sync:c") <
			0)
			_exit(1);
		_exit(0); /* no close: the process dies with the db open */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "CRASH"), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0]->payload, "@sync:c");
	co_outbox_list_clear(&l);
}

static void unsynced_fulfil_of_a_resolved_intent_pushes_the_record(void **state)
{
	fx *f = *state;
	co_outbox_list l = {0};
	int64_t a = 0;

	assert_int_equal(co_outbox_push_intent(&a, f->st, "git", "task", "T3", "@sync:x"),
			 0);
	assert_int_equal(co_outbox_ack(f->st, a), 0);
	assert_int_equal(
	    co_outbox_fulfil_intent(f->st, a, "git", "task", "T3", "{\"r\":3}", 0), 0);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "T3"), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0]->payload, "{\"r\":3}");
	co_outbox_list_clear(&l);
}

/* The router's syncer fulfils deferred intents many at a time. */
static void intents_fulfilled_in_one_batch_resolved_ones_pushed_anew(void **state)
{
	fx *f = *state;
	co_outbox_list l = {0};
	int64_t a = 0, b = 0, c = 0;

	assert_int_equal(co_outbox_push_intent(&a, f->st, "git", "task", "B1", "@sync:x"),
			 0);
	assert_int_equal(co_outbox_push_intent(&b, f->st, "git", "task", "B2", "@sync:x"),
			 0);
	assert_int_equal(
	    co_outbox_push_intent(&c, f->st, "git", "swarm", "B3", "@sync:x"), 0);
	assert_int_equal(co_outbox_ack(f->st, b), 0); /* a drain resolved B2 */
	{
		const co_outbox_fulfil items[] = {
		    /* B1's direct mirror failed: one attempt counted */
		    {a, "git", "task", "B1", "{\"r\":1}", 1},
		    {b, "git", "task", "B2", "{\"r\":2}", 0},
		    {c, "git", "swarm", "B3", NULL, 0},
		};

		assert_int_equal(co_outbox_fulfil_intents(f->st, items, 3, 0), 0);
	}
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "B1"), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0]->seq, a); /* in place */
	assert_string_equal(l.items[0]->payload, "{\"r\":1}");
	assert_int_equal(l.items[0]->attempts, 1); /* owed, not lag */
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "B2"), 0);
	assert_int_equal(l.n, 1);
	assert_true(l.items[0]->seq > c); /* anew, after every other */
	assert_string_equal(l.items[0]->payload, "{\"r\":2}");
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "swarm", "B3"), 0);
	assert_int_equal(l.n, 1);
	assert_null(l.items[0]->payload); /* a delete owed */
	assert_int_equal(l.items[0]->attempts, 0); /* an asynchronous mirror's */
	co_outbox_list_clear(&l);
}

static void batch_with_a_bad_entry_changes_nothing(void **state)
{
	fx *f = *state;
	co_outbox_list l = {0};
	int64_t a = 0;
	const co_outbox_fulfil items[] = {
	    {0, "git", "task", "C1", "{}", 0}, {0, "git", "task", "", "{}", 0}, /* no ID */
	};
	co_outbox_fulfil ok[2];

	assert_int_equal(co_outbox_push_intent(&a, f->st, "git", "task", "C1", "@sync:x"),
			 0);
	memcpy(ok, items, sizeof(ok));
	ok[0].seq = a;
	assert_int_equal(co_outbox_fulfil_intents(f->st, ok, 2, 0), CO_EINVAL);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "C1"), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0]->payload, "@sync:x");
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_fulfil_intents(f->st, NULL, 0, 0), 0);
}

static void sync_on_another_connection_succeeds_and_changes_nothing(void **state)
{
	fx *f = *state;
	co_state *syncer = NULL;
	co_outbox_list l = {0};

	assert_int_equal(co_state_open(&syncer, f->dir), 0);
	assert_string_equal(co_state_dir(syncer), f->dir);
	assert_int_equal(
	    co_outbox_push_intent(NULL, f->st, "git", "task", "GC", "@sync:g"), 0);
	assert_int_equal(co_state_sync(syncer), 0);
	assert_int_equal(co_state_sync(f->st), 0); /* on the writer's own, too */
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "GC"), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0]->payload, "@sync:g");
	co_outbox_list_clear(&l);
	co_state_close(syncer);
}

static void failed_sync_is_an_io_error_naming_the_file(void **state)
{
	fx *f = *state;

	atomic_store(&co_state__sync_fault, 1);
	assert_int_equal(co_state_sync(f->st), CO_EIO);
	atomic_store(&co_state__sync_fault, 0);
	assert_non_null(strstr(co_error_last(), co_state_path(f->st)));
	assert_int_equal(co_state_sync(f->st), 0);
}

static void bad_target_is_refused(void **state)
{
	fx *f = *state;

	assert_int_equal(
	    co_outbox_push_intent(NULL, f->st, "svn", "task", "T", "@sync:x"), CO_EINVAL);
	assert_int_equal(co_outbox_fulfil_intent(f->st, 1, "svn", "task", "T", "{}", 1),
			 CO_EINVAL);
}

static void debt_tells_owed_writes_from_operations_in_flight(void **state)
{
	fx *f = *state;
	co_outbox_debt d;
	co_outbox_list l = {0};
	int64_t now = co_state_now_ms(), seq = 0;

	/* Nothing pending. */
	assert_int_equal(co_outbox_debt_of(&d, f->st, "task", "T1", now), 0);
	assert_int_equal(d.pending, 0);
	assert_int_equal(d.etcd_since + d.git_since, 0);

	/* A young intent is an operation in flight, owing nothing yet ... */
	assert_int_equal(
	    co_outbox_push_intent(&seq, f->st, "etcd", "task", "T1", "@sync:abc"), 0);
	now = co_state_now_ms();
	assert_int_equal(co_outbox_debt_of(&d, f->st, "task", "T1", now), 0);
	assert_int_equal(d.pending, 1);
	assert_int_equal(d.in_flight, 1);
	assert_int_equal(d.etcd_since, 0);
	/* ... and owed once older than the in-flight window. */
	assert_int_equal(
	    co_outbox_debt_of(&d, f->st, "task", "T1", now + CO_OUTBOX_IN_FLIGHT_MS + 1),
	    0);
	assert_int_equal(d.in_flight, 0);
	assert_true(d.etcd_since > 0 && d.etcd_since <= now);
	assert_int_equal(d.git_since, 0);

	/* A record and a delete are acknowledged writes owed to their own
	 * stores: not yet tried by a drain, they are an asynchronous mirror's
	 * ordinary lag (in flight) within the window ... */
	assert_int_equal(
	    co_outbox_push(&seq, f->st, "git", "task", "T1", "{\"id\":\"T1\"}"), 0);
	assert_int_equal(co_outbox_push(NULL, f->st, "git", "swarm", "S1", NULL), 0);
	now = co_state_now_ms(); /* not before the rows were made */
	assert_int_equal(co_outbox_debt_of(&d, f->st, "task", "T1", now), 0);
	assert_int_equal(d.pending, 2);
	assert_int_equal(d.in_flight, 2);
	assert_int_equal(d.git_since, 0);
	assert_int_equal(co_outbox_debt_of(&d, f->st, "swarm", "S1", now), 0);
	assert_int_equal(d.git_since, 0);
	/* ... owed once older than it ... */
	assert_int_equal(
	    co_outbox_debt_of(&d, f->st, "swarm", "S1", now + CO_OUTBOX_IN_FLIGHT_MS + 1),
	    0);
	assert_true(d.git_since > 0);
	/* ... and owed at once when applying it failed (a drain in backoff). */
	assert_int_equal(co_outbox_fail(f->st, seq, "git down", 1000), 0);
	assert_int_equal(co_outbox_debt_of(&d, f->st, "task", "T1", now), 0);
	assert_int_equal(d.in_flight, 1);
	assert_int_equal(d.etcd_since, 0);
	assert_true(d.git_since > 0);
	assert_int_equal(co_outbox_debt_of(&d, f->st, "task", "../x", now), CO_EINVAL);

	assert_int_equal(co_outbox_pending_for(&l, f->st, "etcd", "task", "T1"), 0);
	assert_int_equal(l.n, 1);
	assert_true(co_outbox_is_intent(l.items[0]));
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "T1"), 0);
	assert_false(co_outbox_is_intent(l.items[0]));
	co_outbox_list_clear(&l);
}

static void expedite_makes_entries_in_backoff_due_now(void **state)
{
	fx *f = *state;
	co_outbox_list l = {0};
	int64_t seq = 0, fresh = 0, n = -1, now;

	assert_int_equal(co_outbox_push(&seq, f->st, "etcd", "task", "T1", "{}"), 0);
	assert_int_equal(co_outbox_push(&fresh, f->st, "git", "task", "T2", "{}"), 0);
	assert_int_equal(co_outbox_fail(f->st, seq, "etcd down", 60 * 1000), 0);
	now = co_state_now_ms();
	assert_int_equal(co_outbox_next_batch(&l, f->st, "etcd", 10, now), 0);
	assert_int_equal(l.n, 0);

	assert_int_equal(co_outbox_expedite(&n, f->st, "task", "T1", now), 0);
	assert_int_equal(n, 1);
	assert_int_equal(co_outbox_next_batch(&l, f->st, "etcd", 10, now), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0]->seq, seq);
	assert_int_equal(l.items[0]->attempts, 1);
	co_outbox_list_clear(&l);
	/* Never tried, or already due: nothing to change. */
	assert_int_equal(co_outbox_expedite(&n, f->st, "task", "T2", now), 0);
	assert_int_equal(n, 0);
	assert_int_equal(co_outbox_expedite(NULL, f->st, "task", "T1", now), 0);
	assert_int_equal(co_outbox_expedite(NULL, f->st, "nope", "T1", now), CO_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(fulfilled_intent_keeps_its_place_in_key_order,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		fulfilling_a_resolved_intent_pushes_the_record, co_test_state_setup,
		co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(acked_intent_is_gone, co_test_state_setup,
					    co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(intent_survives_a_process_crash,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		unsynced_fulfil_of_a_resolved_intent_pushes_the_record,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		intents_fulfilled_in_one_batch_resolved_ones_pushed_anew,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(batch_with_a_bad_entry_changes_nothing,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		sync_on_another_connection_succeeds_and_changes_nothing,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(failed_sync_is_an_io_error_naming_the_file,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(bad_target_is_refused, co_test_state_setup,
					    co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		debt_tells_owed_writes_from_operations_in_flight, co_test_state_setup,
		co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(expedite_makes_entries_in_backoff_due_now,
					    co_test_state_setup, co_test_state_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
