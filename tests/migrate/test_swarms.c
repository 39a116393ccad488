/*
 * test_swarms.c - legacy swarm registrations (migrate/swarms.c), read from
 * files in a temp dir: no store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "migrate/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void json_and_yaml_registrations_are_read(void **state)
{
	co_record_list out = {0};
	co_strv bad = {0};
	char dir[256];

	(void)state;
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	write_file(dir, "a.json",
		   "{\"id\":\"swarm-a\",\"capabilities\":[\"x\"],\"model\":\"opus\"}");
	write_file(dir, "b.yaml", "swarm_id: swarm-b\ncapabilities: x, y\n");
	assert_int_equal(co_migrate_read_swarms(&out, &bad, dir), 0);
	assert_int_equal(bad.n, 0);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.items[0]->id, "swarm-a");
	assert_string_equal(out.items[0]->metadata, "{\"model\":\"opus\"}");
	assert_string_equal(out.items[1]->id, "swarm-b");
	assert_int_equal(out.items[1]->capabilities.n, 2);
	co_record_list_clear(&out);
	co_strv_clear(&bad);
	co_test_rmrf(dir);
}

/*
 * Found by review for tests/fuzz/fuzz_swarms: YAML aliases let 550 bytes
 * expand to 10^9 nodes ("billion laughs"), and the import ran out of time
 * and memory building them.  Now the file is reported as bad, at once.
 */
static void yaml_alias_bomb_is_reported_not_expanded(void **state)
{
	co_record_list out = {0};
	co_strv bad = {0};
	char dir[256], text[2048];
	size_t n = 0;
	double t0;
	int i, k;

	(void)state;
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	n += (size_t)snprintf(text + n, sizeof(text) - n,
			      "id: swarm-bomb\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (i = 1; i < 9; i++) {
		n += (size_t)snprintf(text + n, sizeof(text) - n, "a%d: &a%d [", i, i);
		for (k = 0; k < 10; k++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s*a%d",
					      k ? ", " : "", i - 1);
		n += (size_t)snprintf(text + n, sizeof(text) - n, "]\n");
	}
	write_file(dir, "bomb.yaml", text);
	t0 = now_s();
	assert_int_equal(co_migrate_read_swarms(&out, &bad, dir), 0);
	assert_true(now_s() - t0 < 2.0);
	assert_int_equal(out.n, 0);
	assert_int_equal(bad.n, 1);
	assert_non_null(strstr(bad.v[0], "bomb.yaml: more than"));
	co_strv_clear(&bad);
	co_test_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(json_and_yaml_registrations_are_read),
	    cmocka_unit_test(yaml_alias_bomb_is_reported_not_expanded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
