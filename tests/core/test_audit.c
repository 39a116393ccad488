/*
 * test_audit.c - flag-change trail, bounded witness log of routed
 * operations, shadow mismatches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/audit.h"
#include "core/error.h"
#include "core/state.h"
#include "harness/harness.h"
#include "harness/state_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef co_test_state_fixture fixture;

static void changes_are_listed_newest_first_with_every_field(void **state)
{
	fixture *f = *state;
	co_audit_change_list l = {0};
	int64_t before = co_state_now_ms();

	assert_int_equal(co_audit_change_add(f->st, "cli:alice", "flags set",
					     "task_claim: git -> dual 10", "canary"),
			 0);
	assert_int_equal(co_audit_change_add(f->st, "cli:alice", "stage", "shadow -> 10", NULL),
			 0);
	assert_int_equal(co_audit_change_add(f->st, "reconcile", "auto-rollback", NULL,
					     "reconcile run 7: consistency 97.5%"),
			 0);

	assert_int_equal(co_audit_changes_latest(&l, f->st, 2), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0]->who, "reconcile");
	assert_string_equal(l.items[0]->action, "auto-rollback");
	assert_null(l.items[0]->detail);
	assert_string_equal(l.items[0]->why, "reconcile run 7: consistency 97.5%");
	assert_true(l.items[0]->ts >= before);
	assert_string_equal(l.items[1]->action, "stage");
	assert_null(l.items[1]->why);
	assert_true(l.items[0]->seq > l.items[1]->seq);
	co_audit_change_list_clear(&l);

	/* Durable across a reopen. */
	co_state_close(f->st);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	assert_int_equal(co_audit_changes_latest(&l, f->st, 100), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[2]->detail, "task_claim: git -> dual 10");
	assert_string_equal(l.items[2]->why, "canary");
	co_audit_change_list_clear(&l);
}

static void change_without_who_or_action_is_refused(void **state)
{
	fixture *f = *state;
	co_audit_change_list l = {0};

	assert_int_equal(co_audit_change_add(f->st, NULL, "stage", NULL, NULL), CO_EINVAL);
	assert_int_equal(co_audit_change_add(f->st, "me", "", NULL, NULL), CO_EINVAL);
	assert_int_equal(co_audit_changes_latest(&l, f->st, 10), 0);
	assert_int_equal(l.n, 0);
}

static void ops_round_trip_in_batches(void **state)
{
	fixture *f = *state;
	co_audit_op ops[2] = {
		{.op = "task_claim", .id = "T1", .mode = "dual", .primary = "etcd",
		 .outcome = "ok", .latency_us = 812},
		{.ts = 42, .op = "task_list", .mode = "git", .primary = "git",
		 .outcome = "unavailable", .latency_us = 2000000,
		 .error = "git /srv/repo: no such file"},
	};
	co_audit_op_list l = {0};

	assert_int_equal(co_audit_ops_add(f->st, ops, 2), 0);
	assert_int_equal(co_audit_op_add(f->st, &ops[0]), 0);
	assert_int_equal(co_audit_ops_latest(&l, f->st, 10), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[1]->op, "task_list");
	assert_null(l.items[1]->id);
	assert_int_equal(l.items[1]->ts, 42);
	assert_string_equal(l.items[1]->outcome, "unavailable");
	assert_int_equal(l.items[1]->latency_us, 2000000);
	assert_string_equal(l.items[1]->error, "git /srv/repo: no such file");
	assert_string_equal(l.items[2]->id, "T1");
	assert_string_equal(l.items[2]->mode, "dual");
	assert_string_equal(l.items[2]->primary, "etcd");
	assert_null(l.items[2]->error);
	assert_true(l.items[2]->ts > 42);
	co_audit_op_list_clear(&l);

	/* A bad row refuses the whole batch. */
	ops[1].outcome = NULL;
	assert_int_equal(co_audit_ops_add(f->st, ops, 2), CO_EINVAL);
	assert_int_equal(co_audit_ops_latest(&l, f->st, 10), 0);
	assert_int_equal(l.n, 3);
	co_audit_op_list_clear(&l);
	assert_int_equal(co_audit_ops_add(f->st, NULL, 0), 0);
}

static void witness_log_keeps_the_newest_rows_within_its_bound(void **state)
{
	fixture *f = *state;
	co_audit_op_list l = {0};
	co_audit_op op = {.op = "task_get", .outcome = "ok", .mode = "git", .primary = "git"};
	co_audit_op batch[55];
	char id[32];
	int i;

	assert_int_equal(co_audit_set_limit(f->st, CO_AUDIT_OPS, 100, 10), 0);
	for (i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "T%d", i);
		op.id = id;
		op.latency_us = i;
		assert_int_equal(co_audit_op_add(f->st, &op), 0);
	}
	assert_int_equal(co_audit_ops_latest(&l, f->st, 1000000), 0);
	/* Trimmed on the last insert (seq 1000 is a multiple of 10). */
	assert_int_equal(l.n, 100);
	for (i = 0; i < 100; i++)
		assert_int_equal(l.items[i]->latency_us, 999 - i);
	co_audit_op_list_clear(&l);

	/* A batch that crosses a multiple trims too; bound keep + batch - 1. */
	for (i = 0; i < 55; i++) {
		memset(&batch[i], 0, sizeof(batch[i]));
		batch[i].op = "task_claim";
		batch[i].outcome = "conflict";
		batch[i].latency_us = 1000 + i;
	}
	assert_int_equal(co_audit_ops_add(f->st, batch, 55), 0);
	assert_int_equal(co_audit_ops_latest(&l, f->st, 1000000), 0);
	assert_true(l.n >= 100 && l.n <= 109);
	assert_int_equal(l.items[0]->latency_us, 1054);
	for (i = 1; i < (int)l.n; i++)
		assert_int_equal(l.items[i]->seq, l.items[i - 1]->seq - 1);
	co_audit_op_list_clear(&l);
	for (i = 0; i < 3; i++)
		assert_int_equal(co_audit_op_add(f->st, &op), 0);
	assert_int_equal(co_audit_ops_latest(&l, f->st, 1000000), 0);
	assert_true(l.n >= 100 && l.n <= 109);
	co_audit_op_list_clear(&l);
}

static void mismatches_round_trip_and_are_bounded(void **state)
{
	fixture *f = *state;
	co_audit_mismatch_list l = {0};
	int i;

	assert_int_equal(co_audit_mismatch_add(f->st, "task_get", "T1",
					       "{\"owner\":\"a\"}", "{\"owner\":\"b\"}"),
			 0);
	assert_int_equal(co_audit_mismatch_add(f->st, "task_get", "T2", "{}", NULL), 0);
	assert_int_equal(co_audit_mismatches_latest(&l, f->st, 10), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0]->id, "T2");
	assert_null(l.items[0]->etcd_value);
	assert_string_equal(l.items[1]->git_value, "{\"owner\":\"a\"}");
	assert_string_equal(l.items[1]->etcd_value, "{\"owner\":\"b\"}");
	co_audit_mismatch_list_clear(&l);
	assert_int_equal(co_audit_mismatch_add(f->st, NULL, "T", NULL, NULL), CO_EINVAL);

	assert_int_equal(co_audit_set_limit(f->st, CO_AUDIT_MISMATCHES, 5, 5), 0);
	for (i = 0; i < 48; i++)
		assert_int_equal(co_audit_mismatch_add(f->st, "task_list", "T", NULL, NULL), 0);
	/* 50 rows, last trim at row 50: the newest 5 remain. */
	assert_int_equal(co_audit_mismatches_latest(&l, f->st, 1000), 0);
	assert_int_equal(l.n, 5);
	assert_int_equal(l.items[0]->seq, 50);
	assert_int_equal(l.items[4]->seq, 46);
	co_audit_mismatch_list_clear(&l);
}

static void set_limit_refuses_nonsense(void **state)
{
	fixture *f = *state;

	assert_int_equal(co_audit_set_limit(f->st, CO_AUDIT_OPS, 0, 10), CO_EINVAL);
	assert_int_equal(co_audit_set_limit(f->st, CO_AUDIT_OPS, 10, 0), CO_EINVAL);
	assert_int_equal(co_audit_set_limit(f->st, (co_audit_log)7, 10, 10), CO_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		changes_are_listed_newest_first_with_every_field, co_test_state_setup,
		co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(change_without_who_or_action_is_refused,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(ops_round_trip_in_batches,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		witness_log_keeps_the_newest_rows_within_its_bound, co_test_state_setup,
		co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(mismatches_round_trip_and_are_bounded,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(set_limit_refuses_nonsense,
					    co_test_state_setup, co_test_state_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
