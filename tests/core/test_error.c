/*
 * test_error.c - the thread-local last error (pure logic).
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

#include <string.h>

/* Wrapping the last message in a new one, the usual way to add context,
 * keeps the old text intact. */
static void a_message_may_quote_the_last_one(void **state)
{
	(void)state;
	assert_int_equal(co_error_set(CO_EIO, "disk full"), CO_EIO);
	assert_int_equal(
	    co_error_set(CO_EUNAVAIL, "write tasks/T1.json: %s", co_error_last()),
	    CO_EUNAVAIL);
	assert_string_equal(co_error_last(), "write tasks/T1.json: disk full");
	assert_int_equal(
	    co_error_set(CO_EUNAVAIL, "%s; then %s", co_error_last(), "gave up"),
	    CO_EUNAVAIL);
	assert_string_equal(co_error_last(),
			    "write tasks/T1.json: disk full; then gave up");
	assert_int_equal(co_error_last_code(), CO_EUNAVAIL);
}

static void long_messages_are_truncated_not_overrun(void **state)
{
	char big[4096];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	co_error_set(CO_EINVAL, "%s", big);
	assert_true(strlen(co_error_last()) < sizeof(big) - 1);
	assert_true(strlen(co_error_last()) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_message_may_quote_the_last_one),
	    cmocka_unit_test(long_messages_are_truncated_not_overrun),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
