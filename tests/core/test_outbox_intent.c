/*
 * test_outbox_intent.c - intents: pushed and retired cheaply, fulfilled by
 * the record in place, and still there after a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/outbox.h"
#include "core/state.h"
#include "harness/harness.h"
#include "harness/state_fixture.h"

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

static void bad_target_is_refused(void **state)
{
	fx *f = *state;

	assert_int_equal(
	    co_outbox_push_intent(NULL, f->st, "svn", "task", "T", "@sync:x"), CO_EINVAL);
	assert_int_equal(co_outbox_fulfil_intent(f->st, 1, "svn", "task", "T", "{}", 1),
			 CO_EINVAL);
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
	    cmocka_unit_test_setup_teardown(bad_target_is_refused, co_test_state_setup,
					    co_test_state_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
