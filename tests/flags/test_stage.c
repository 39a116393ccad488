/*
 * test_stage.c - stage shorthands (flags/stage.c): each stage sets every
 * operation, the stage is read back from the flags, and stages are ordered
 * git < shadow < 10 < 50 < 100 < etcd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include <string.h>

#include "core/error.h"
#include "flags/flags.h"
#include "flags/stage.h"

static void stage_names_parse_and_typos_are_rejected(void **state)
{
	static const char *const names[] = {"git", "shadow", "10", "50", "100", "etcd"};
	co_stage s;
	int i;

	(void)state;
	for (i = 0; i < 6; i++) {
		assert_int_equal(co_stage_parse(&s, names[i]), 0);
		assert_int_equal(s, i);
		assert_string_equal(co_stage_name(s), names[i]);
	}
	assert_int_equal(co_stage_parse(&s, "20"), CO_EINVAL);
	assert_string_equal(co_error_last(),
			    "unknown stage \"20\" (git, shadow, 10, 50, 100, etcd)");
	assert_int_equal(co_stage_parse(&s, "custom"), CO_EINVAL);
	assert_int_equal(co_stage_parse(&s, "Git"), CO_EINVAL);
	assert_string_equal(co_stage_name(CO_STAGE_CUSTOM), "custom");
}

static void each_stage_sets_every_operation(void **state)
{
	static const co_op_flags want[] = {
	    {CO_MODE_GIT, 0},	{CO_MODE_SHADOW, 0}, {CO_MODE_DUAL, 10},
	    {CO_MODE_DUAL, 50}, {CO_MODE_DUAL, 100}, {CO_MODE_ETCD, 100},
	};
	co_flags f;
	int s, op;

	(void)state;
	for (s = CO_STAGE_GIT; s <= CO_STAGE_ETCD; s++) {
		co_flags_init(&f);
		/* Overrides from before are cleared by the stage. */
		assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_ETCD, 0), 0);
		assert_int_equal(co_flags_set(&f, CO_OP_WATCH, CO_MODE_DUAL, 37), 0);
		assert_int_equal(co_stage_apply(&f, (co_stage)s), 0);
		for (op = 0; op < CO_OP__COUNT; op++) {
			co_op_flags got = co_flags_get(&f, (co_op)op);

			assert_false(f.has_op[op]);
			assert_int_equal(got.mode, want[s].mode);
			assert_int_equal(got.etcd_percent, want[s].etcd_percent);
		}
		assert_int_equal(co_stage_of(&f), s);
	}
}

static void stage_keeps_kill_switch_and_rejects_custom(void **state)
{
	co_flags f, before;

	(void)state;
	co_flags_init(&f);
	co_flags_set_kill(&f, 1, "run 3");
	assert_int_equal(co_stage_apply(&f, CO_STAGE_50), 0);
	assert_int_equal(f.kill_switch, 1);
	assert_string_equal(f.kill_reason, "run 3");
	/* The stage is read from the modes, the kill switch aside. */
	assert_int_equal(co_stage_of(&f), CO_STAGE_50);

	before = f;
	assert_int_equal(co_stage_apply(&f, CO_STAGE_CUSTOM), CO_EINVAL);
	assert_int_equal(co_stage_apply(&f, (co_stage)42), CO_EINVAL);
	assert_true(co_flags_equal(&f, &before));
}

static void per_operation_overrides_make_a_custom_stage(void **state)
{
	co_flags f;

	(void)state;
	co_flags_init(&f);
	assert_int_equal(co_stage_of(&f), CO_STAGE_GIT);
	/* An override equal to the default changes nothing. */
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_GET, CO_MODE_GIT, 0), 0);
	assert_int_equal(co_stage_of(&f), CO_STAGE_GIT);
	/* The percent does not matter outside dual mode... */
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_GET, CO_MODE_GIT, 30), 0);
	assert_int_equal(co_stage_of(&f), CO_STAGE_GIT);
	/* ...but one operation elsewhere makes it custom. */
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 10), 0);
	assert_int_equal(co_stage_of(&f), CO_STAGE_CUSTOM);
	/* Dual at a percent that is no stage is custom too. */
	assert_int_equal(co_stage_apply(&f, CO_STAGE_10), 0);
	assert_int_equal(co_flags_set_default(&f, CO_MODE_DUAL, 20), 0);
	assert_int_equal(co_stage_of(&f), CO_STAGE_CUSTOM);
}

static void stages_are_ordered_from_git_to_etcd(void **state)
{
	int s;

	(void)state;
	for (s = CO_STAGE_GIT; s < CO_STAGE_ETCD; s++)
		assert_true(co_stage_order((co_stage)s) <
			    co_stage_order((co_stage)(s + 1)));
	assert_int_equal(co_stage_order(CO_STAGE_GIT), 0);
	assert_int_equal(co_stage_order(CO_STAGE_ETCD), 5);
	assert_int_equal(co_stage_order(CO_STAGE_CUSTOM), -1);
}

static void forward_and_backward_moves_are_told_apart(void **state)
{
	co_flags a, b;
	int s, t;

	(void)state;
	for (s = CO_STAGE_GIT; s <= CO_STAGE_ETCD; s++) {
		for (t = CO_STAGE_GIT; t <= CO_STAGE_ETCD; t++) {
			co_flags_init(&a);
			co_flags_init(&b);
			assert_int_equal(co_stage_apply(&a, (co_stage)s), 0);
			assert_int_equal(co_stage_apply(&b, (co_stage)t), 0);
			assert_int_equal(co_stage_is_forward(&a, &b), t > s);
		}
	}
	/* Custom: one operation raised is forward even if others went back. */
	co_flags_init(&a);
	assert_int_equal(co_stage_apply(&a, CO_STAGE_50), 0);
	b = a;
	assert_int_equal(co_flags_set(&b, CO_OP_TASK_GET, CO_MODE_DUAL, 10), 0);
	assert_false(co_stage_is_forward(&a, &b));
	assert_int_equal(co_flags_set(&b, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 51), 0);
	assert_true(co_stage_is_forward(&a, &b));
	/* The kill switch is not a stage move. */
	b = a;
	co_flags_set_kill(&b, 1, "x");
	assert_false(co_stage_is_forward(&a, &b));
	assert_false(co_stage_is_forward(&b, &a));
}

static void rank_orders_settings(void **state)
{
	co_op_flags git = {CO_MODE_GIT, 0}, shadow = {CO_MODE_SHADOW, 0};
	co_op_flags d0 = {CO_MODE_DUAL, 0}, d100 = {CO_MODE_DUAL, 100};
	co_op_flags etcd = {CO_MODE_ETCD, 0};

	(void)state;
	assert_true(co_stage_rank(git) < co_stage_rank(shadow));
	assert_true(co_stage_rank(shadow) < co_stage_rank(d0));
	assert_true(co_stage_rank(d0) < co_stage_rank(d100));
	assert_true(co_stage_rank(d100) < co_stage_rank(etcd));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(stage_names_parse_and_typos_are_rejected),
	    cmocka_unit_test(each_stage_sets_every_operation),
	    cmocka_unit_test(stage_keeps_kill_switch_and_rejects_custom),
	    cmocka_unit_test(per_operation_overrides_make_a_custom_stage),
	    cmocka_unit_test(stages_are_ordered_from_git_to_etcd),
	    cmocka_unit_test(forward_and_backward_moves_are_told_apart),
	    cmocka_unit_test(rank_orders_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
