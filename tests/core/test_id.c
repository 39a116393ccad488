/*
 * test_id.c - record ID validation: what may become a path or a key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/id.h"

#include <string.h>

static void valid_ids_pass(void **state)
{
	(void)state;
	assert_int_equal(co_id_validate("P0.1.2"), 0);
	assert_int_equal(co_id_validate("swarm-sip"), 0);
	assert_int_equal(co_id_validate("a_b-c.d"), 0);
	assert_int_equal(co_id_validate("9"), 0);
}

static void max_length_is_128(void **state)
{
	char id[130];

	(void)state;
	memset(id, 'a', 128);
	id[128] = '\0';
	assert_int_equal(co_id_validate(id), 0);
	id[128] = 'a';
	id[129] = '\0';
	assert_int_equal(co_id_validate(id), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "longer than 128"));
}

static void traversal_and_separators_are_rejected(void **state)
{
	static const char *bad[] = {"..", "../etc/passwd", "a/b", "/abs", "a\\b", "a b",
				    "a:b", "tasks/x"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(co_id_validate(bad[i]), CO_EINVAL);
}

static void empty_and_null_are_rejected(void **state)
{
	(void)state;
	assert_int_equal(co_id_validate(""), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "empty"));
	assert_int_equal(co_id_validate(NULL), CO_EINVAL);
}

static void leading_dot_dash_underscore_are_rejected(void **state)
{
	(void)state;
	assert_int_equal(co_id_validate(".hidden"), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "start with"));
	assert_int_equal(co_id_validate("-x"), CO_EINVAL);
	assert_int_equal(co_id_validate("_x"), CO_EINVAL);
}

static void control_and_non_ascii_bytes_are_rejected(void **state)
{
	(void)state;
	assert_int_equal(co_id_validate("a\nb"), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "0x0a"));
	assert_int_equal(co_id_validate("a\x7f"), CO_EINVAL);
	assert_int_equal(co_id_validate("t\xc3\xa2" "che"), CO_EINVAL);
	assert_int_equal(co_id_validate("\x01x"), CO_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_ids_pass),
		cmocka_unit_test(max_length_is_128),
		cmocka_unit_test(traversal_and_separators_are_rejected),
		cmocka_unit_test(empty_and_null_are_rejected),
		cmocka_unit_test(leading_dot_dash_underscore_are_rejected),
		cmocka_unit_test(control_and_non_ascii_bytes_are_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
