/*
 * test_shadow.c - shadow read quality without stores (core/shadow.h): the
 * sampling rule counts exactly, cutover.yaml `shadow:` is read and every
 * bad value refused naming its key and value (by the library and by the
 * CLI, exit 1), ignore rules drop exactly the fields they name, and
 * `cutover status` shows the settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"
#include "core/shadow.h"
#include "harness/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sampling ---- */

static void sampling_rule_compares_an_exact_evenly_spread_share(void **state)
{
	int p;
	uint64_t k;

	(void)state;
	for (p = 0; p <= 100; p++) {
		uint64_t n = 1000, got = 0,
			 want = p == 0 ? 0 : 1 + (n - 1) * (uint64_t)p / 100;

		for (k = 0; k < n; k++)
			got += (uint64_t)co_shadow_sampled(k, p);
		if (got != want)
			fail_msg("percent %d: %llu of %llu compared, want %llu", p,
				 (unsigned long long)got, (unsigned long long)n,
				 (unsigned long long)want);
	}
	/* 50: every other read, the first one always; 10: one in ten. */
	for (k = 0; k < 20; k++) {
		assert_int_equal(co_shadow_sampled(k, 50), k % 2 == 0);
		assert_int_equal(co_shadow_sampled(k, 10), k % 10 == 0);
		assert_int_equal(co_shadow_sampled(k, 0), 0);
		assert_int_equal(co_shadow_sampled(k, 100), 1);
	}
	/* Far along the counter the share holds (no overflow). */
	{
		uint64_t base = UINT64_MAX - 1000, c = 0;

		for (k = 0; k < 1000; k++)
			c += (uint64_t)co_shadow_sampled(base + k, 25);
		assert_true(c >= 249 && c <= 251);
	}
}

static void only_read_ops_have_a_percent_and_overrides_win(void **state)
{
	co_shadow_cfg c;

	(void)state;
	co_shadow_cfg_init(&c);
	assert_int_equal(co_shadow_percent(NULL, CO_OP_TASK_GET), 100);
	assert_int_equal(co_shadow_percent(&c, CO_OP_TASK_LIST), 100);
	c.sample = 40;
	c.sample_op[CO_OP_TASK_LIST] = 0;
	assert_int_equal(co_shadow_percent(&c, CO_OP_TASK_GET), 40);
	assert_int_equal(co_shadow_percent(&c, CO_OP_TASK_LIST), 0);
	assert_true(co_shadow_is_read(CO_OP_TASK_GET));
	assert_true(co_shadow_is_read(CO_OP_SWARM_LIST));
	assert_false(co_shadow_is_read(CO_OP_TASK_CLAIM));
	assert_false(co_shadow_is_read(CO_OP_WATCH));
	co_shadow_cfg_clear(&c);
}

static void compared_reads_follow_each_ops_percent(void **state)
{
	int64_t reads[CO_OP__COUNT] = {0};
	co_shadow_cfg c;

	(void)state;
	co_shadow_cfg_init(&c);
	reads[CO_OP_TASK_GET] = 100;
	reads[CO_OP_TASK_LIST] = 21;
	reads[CO_OP_TASK_CLAIM] = 50; /* not a read: never counted */
	assert_int_equal(co_shadow_compared(&c, reads), 121);
	c.sample = 10;
	c.sample_op[CO_OP_TASK_LIST] = 50;
	/* 1 + 99*10/100 = 10 gets, 1 + 20*50/100 = 11 lists */
	assert_int_equal(co_shadow_compared(&c, reads), 21);
	c.sample = 0;
	c.sample_op[CO_OP_TASK_LIST] = 0;
	assert_int_equal(co_shadow_compared(&c, reads), 0);
	co_shadow_cfg_clear(&c);
}

/* ---- ignore rules ---- */

static int equal_ignoring(const char *const *ign, size_t n, const char *a, const char *b)
{
	co_shadow_cfg c;
	int eq;

	co_shadow_cfg_init(&c);
	assert_int_equal(co_shadow_cfg_set_ignore(&c, ign, n), 0);
	eq = co_shadow_equal(&c, a, b);
	co_shadow_cfg_clear(&c);
	return eq;
}

static void ignore_rules_drop_exactly_the_fields_they_name(void **state)
{
	static const char *top[] = {"$.updated_at"};
	static const char *path[] = {"metadata.build.host"};
	static const char *pattern[] = {"seen"};
	static const char *star[] = {"metadata.*.host"};
	static const char *arr[] = {"metadata.hooks.at"};
	const char *a =
	    "{\"id\":\"t1\",\"updated_at\":\"1\",\"metadata\":{\"build\":{\"host\":"
	    "\"a\",\"n\":1},\"last_seen\":5,\"hooks\":[{\"at\":1,\"u\":\"x\"}]}}";

	(void)state;
	/* Nothing ignored: any difference counts; NULLs. */
	assert_int_equal(co_shadow_equal(NULL, a, a), 1);
	assert_int_equal(co_shadow_equal(NULL, "{\"x\":1}", "{\"x\":2}"), 0);
	assert_int_equal(co_shadow_equal(NULL, NULL, NULL), 1);
	assert_int_equal(co_shadow_equal(NULL, a, NULL), 0);
	/* A top-level path. */
	assert_int_equal(equal_ignoring(top, 1, "{\"id\":\"t1\",\"updated_at\":\"1\"}",
					"{\"id\":\"t1\",\"updated_at\":\"2\"}"),
			 1);
	assert_int_equal(equal_ignoring(top, 1, "{\"id\":\"t1\",\"updated_at\":\"1\"}",
					"{\"id\":\"t2\",\"updated_at\":\"2\"}"),
			 0);
	/* Present on one side only is ignored too. */
	assert_int_equal(equal_ignoring(top, 1, "{\"id\":\"t1\",\"updated_at\":\"1\"}",
					"{\"id\":\"t1\"}"),
			 1);
	/* A nested path: its sibling still counts. */
	assert_int_equal(
	    equal_ignoring(path, 1, a,
			   "{\"id\":\"t1\",\"updated_at\":\"1\",\"metadata\":{"
			   "\"build\":{\"host\":\"b\",\"n\":1},\"last_seen\":5,"
			   "\"hooks\":[{\"at\":1,\"u\":\"x\"}]}}"),
	    1);
	assert_int_equal(
	    equal_ignoring(path, 1, a,
			   "{\"id\":\"t1\",\"updated_at\":\"1\",\"metadata\":{"
			   "\"build\":{\"host\":\"b\",\"n\":2},\"last_seen\":5,"
			   "\"hooks\":[{\"at\":1,\"u\":\"x\"}]}}"),
	    0);
	/* A key-name pattern inside metadata; a wildcard segment; arrays. */
	assert_int_equal(
	    equal_ignoring(pattern, 1, a,
			   "{\"id\":\"t1\",\"updated_at\":\"1\",\"metadata\":{"
			   "\"build\":{\"host\":\"a\",\"n\":1},\"last_seen\":9,"
			   "\"hooks\":[{\"at\":1,\"u\":\"x\"}]}}"),
	    1);
	assert_int_equal(
	    equal_ignoring(star, 1, a,
			   "{\"id\":\"t1\",\"updated_at\":\"1\",\"metadata\":{"
			   "\"build\":{\"host\":\"z\",\"n\":1},\"last_seen\":5,"
			   "\"hooks\":[{\"at\":1,\"u\":\"x\"}]}}"),
	    1);
	assert_int_equal(
	    equal_ignoring(arr, 1, a,
			   "{\"id\":\"t1\",\"updated_at\":\"1\",\"metadata\":{"
			   "\"build\":{\"host\":\"a\",\"n\":1},\"last_seen\":5,"
			   "\"hooks\":[{\"at\":7,\"u\":\"x\"}]}}"),
	    1);
	assert_int_equal(
	    equal_ignoring(arr, 1, a,
			   "{\"id\":\"t1\",\"updated_at\":\"1\",\"metadata\":{"
			   "\"build\":{\"host\":\"a\",\"n\":1},\"last_seen\":5,"
			   "\"hooks\":[{\"at\":7,\"u\":\"y\"}]}}"),
	    0);
	/* Key order does not matter. */
	assert_int_equal(equal_ignoring(top, 1, "{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"),
			 1);
}

static void bad_ignore_entries_are_refused_and_change_nothing(void **state)
{
	static const char *good[] = {"$.updated_at"};
	static const char *empty_seg[] = {"metadata..host"};
	static const char *at[] = {"@defaults"};
	co_shadow_cfg c;

	(void)state;
	co_shadow_cfg_init(&c);
	assert_int_equal(co_shadow_cfg_set_ignore(&c, good, 1), 0);
	assert_int_equal(co_shadow_cfg_set_ignore(&c, empty_seg, 1), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "shadow.ignore: \"metadata..host\""));
	assert_int_equal(co_shadow_cfg_set_ignore(&c, at, 1), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "\"@defaults\""));
	assert_int_equal(c.n_ignore, 1);
	assert_string_equal(c.ignore[0], "$.updated_at");
	co_shadow_cfg_clear(&c);
}

/* ---- cutover.yaml shadow: ---- */

typedef struct fixture {
	char dir[256];
	char path[320];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || co_test_tmpdir(f->dir, sizeof(f->dir)) < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/cutover.yaml", f->dir);
	unsetenv("CUTOVER_CONFIG");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	co_test_rmrf(f->dir);
	free(f);
	return 0;
}

static void write_file(const fixture *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
}

static void shadow_section_is_read(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	assert_int_equal(co_config_defaults(&c), 0);
	assert_int_equal(c->shadow.sample, 100);
	assert_int_equal(co_shadow_percent(&c->shadow, CO_OP_TASK_LIST), 100);
	assert_null(c->shadow.ignore_rd);
	co_config_free(c);
	c = NULL;

	write_file(f, "shadow:\n"
		      "  sample: 30\n"
		      "  sample_by_op: { task_list: 10, swarm_get: 0 }\n"
		      "  ignore: [\"$.updated_at\", metadata.build.host, seen]\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(co_shadow_percent(&c->shadow, CO_OP_TASK_GET), 30);
	assert_int_equal(co_shadow_percent(&c->shadow, CO_OP_TASK_LIST), 10);
	assert_int_equal(co_shadow_percent(&c->shadow, CO_OP_SWARM_GET), 0);
	assert_int_equal(co_shadow_percent(&c->shadow, CO_OP_SWARM_LIST), 30);
	assert_int_equal(c->shadow.n_ignore, 3);
	assert_string_equal(c->shadow.ignore[1], "metadata.build.host");
	assert_non_null(c->shadow.ignore_rd);
	co_config_free(c);
}

/* `text` is refused with CO_EINVAL naming `key` and saying `what`. */
static void expect_refused(const fixture *f, const char *text, const char *key,
			   const char *what)
{
	co_config *c = NULL;
	char k[160];

	write_file(f, text);
	assert_int_equal(co_config_load(&c, f->path), CO_EINVAL);
	assert_null(c);
	snprintf(k, sizeof(k), "key \"%s\"", key);
	if (strstr(co_error_last(), k) == NULL || strstr(co_error_last(), what) == NULL)
		fail_msg("message \"%s\" does not name %s and say \"%s\"",
			 co_error_last(), k, what);
}

static void bad_shadow_values_are_refused_naming_key_and_value(void **state)
{
	fixture *f = *state;

	expect_refused(f, "shadow: { sample: 150 }\n", "shadow.sample",
		       "bad percent \"150\"");
	expect_refused(f, "shadow: { sample: -1 }\n", "shadow.sample",
		       "bad percent \"-1\"");
	expect_refused(f, "shadow: { sample: 50% }\n", "shadow.sample",
		       "bad percent \"50%\"");
	expect_refused(f, "shadow: { sample_by_op: { task_list: 101 } }\n",
		       "shadow.sample_by_op.task_list", "bad percent \"101\"");
	expect_refused(f, "shadow: { sample_by_op: { tsk_list: 10 } }\n",
		       "shadow.sample_by_op.tsk_list", "unknown operation \"tsk_list\"");
	expect_refused(f, "shadow: { sample_by_op: { task_claim: 10 } }\n",
		       "shadow.sample_by_op.task_claim", "\"task_claim\" is not a read");
	expect_refused(f, "shadow: { sample_by_op: [task_list] }\n",
		       "shadow.sample_by_op", "expected a mapping");
	expect_refused(f, "shadow: { ignore: [\"metadata..host\"] }\n", "shadow.ignore",
		       "\"metadata..host\": empty segment");
	expect_refused(f, "shadow: { ignore: metadata.host }\n", "shadow.ignore",
		       "expected a list");
	expect_refused(f, "shadow: { sampel: 10 }\n", "shadow.sampel", "unknown key");
}

static void cli_refuses_a_bad_shadow_section_with_exit_1(void **state)
{
	fixture *f = *state;
	char *out = NULL, *err = NULL;
	const char *argv[] = {"--config", f->path, "status", NULL};
	int rc;

	write_file(f, "shadow:\n  sample_by_op:\n    task_list: 200\n");
	rc = co_test_cutover(&out, &err, NULL, argv);
	assert_int_equal(rc, 1);
	if (strstr(err, "key \"shadow.sample_by_op.task_list\"") == NULL ||
	    strstr(err, "\"200\"") == NULL)
		fail_msg("stderr does not name the key and value: %s", err);
	free(out);
	free(err);
}

static void cli_status_shows_the_shadow_settings(void **state)
{
	fixture *f = *state;
	char *out = NULL, *err = NULL, env_state[320];
	const char *env[] = {env_state, NULL};
	const char *json[] = {"--config", f->path, "--json", "status", NULL};
	const char *text[] = {"--config", f->path, "status", NULL};

	snprintf(env_state, sizeof(env_state), "CUTOVER_STATE_DIR=%s/state", f->dir);
	write_file(f, "shadow:\n  sample: 20\n  sample_by_op: { task_list: 5 }\n"
		      "  ignore: [\"$.updated_at\"]\n");
	assert_int_equal(co_test_cutover(&out, &err, env, json), 0);
	if (strstr(
		out,
		"\"shadow\":{\"sample\":{\"task_get\":20,\"task_list\":5,"
		"\"swarm_get\":20,\"swarm_list\":20},\"ignore\":[\"$.updated_at\"]}") ==
	    NULL)
		fail_msg("--json status: %s", out);
	free(out);
	free(err);
	assert_int_equal(co_test_cutover(&out, &err, env, text), 0);
	if (strstr(out,
		   "shadow:       compared task_get 20%, task_list 5%, swarm_get 20%, "
		   "swarm_list 20%\nshadow ignore: $.updated_at\n") == NULL)
		fail_msg("status: %s", out);
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sampling_rule_compares_an_exact_evenly_spread_share),
	    cmocka_unit_test(only_read_ops_have_a_percent_and_overrides_win),
	    cmocka_unit_test(compared_reads_follow_each_ops_percent),
	    cmocka_unit_test(ignore_rules_drop_exactly_the_fields_they_name),
	    cmocka_unit_test(bad_ignore_entries_are_refused_and_change_nothing),
	    cmocka_unit_test_setup_teardown(shadow_section_is_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		bad_shadow_values_are_refused_naming_key_and_value, setup, teardown),
	    cmocka_unit_test_setup_teardown(cli_refuses_a_bad_shadow_section_with_exit_1,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(cli_status_shows_the_shadow_settings, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
