/*
 * test_etcd_watch.c - the decoding of etcd's watch stream (etcd_store.c,
 * through etcd_store_internal.h): pure logic, bytes in, events out.  The
 * stream against a real etcd is test_etcd_store.c's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "store/etcd_store_internal.h"

#include <stdlib.h>
#include <string.h>

/* base64 of "/tasks/a" and of the canonical task "a", and of a swarm "b". */
#define KEY_TASK_A "L3Rhc2tzL2E="
#define VAL_TASK_A                                                                       \
	"eyJibG9ja2VkX2J5IjpbXSwiY2xhaW1fZXhwaXJlc19hdCI6bnVsbCwiY3JlYXRlZF9hdCI6bnVsbCwi" \
	"aWQiOiJhIiwia2luZCI6InRhc2siLCJtZXRhZGF0YSI6e30sIm93bmVyIjpudWxsLCJyZXYiOjEsInN0" \
	"YXR1cyI6ImF2YWlsYWJsZSIsInR5cGUiOiIiLCJ1cGRhdGVkX2F0IjpudWxsfQ=="
#define VAL_SWARM_B                                                                      \
	"eyJjYXBhYmlsaXRpZXMiOltdLCJpZCI6ImIiLCJraW5kIjoic3dhcm0iLCJtZXRhZGF0YSI6e30sInJl" \
	"Z2lzdGVyZWRfYXQiOm51bGwsInJldiI6MSwidXBkYXRlZF9hdCI6bnVsbH0="

static co_etcd__watch_decoder *decode(const char *stream, size_t step)
{
	co_etcd__watch_decoder *d = NULL;
	size_t len = strlen(stream), off = 0;

	assert_int_equal(co_etcd__watch_decoder_new(&d, "/"), 0);
	while (off < len) {
		size_t n = step && len - off > step ? step : len - off;

		assert_int_equal(co_etcd__watch_decoder_feed(d, stream + off, n), 0);
		off += n;
	}
	co_etcd__watch_decoder_end(d);
	return d;
}

static void put_events_are_whole_however_the_stream_is_cut(void **state)
{
	const char *stream =
	    "{\"result\":{\"header\":{\"revision\":\"1\"},\"created\":true}}\n"
	    "{\"result\":{\"events\":[{\"kv\":{\"key\":\"" KEY_TASK_A "\","
	    "\"mod_revision\":\"2\",\"value\":\"" VAL_TASK_A "\"}}]}}\n";
	size_t step;

	(void)state;
	for (step = 0; step < 8; step++) {
		co_etcd__watch_decoder *d = decode(stream, step);
		co_etcd__watch_state st;
		co_event *ev = NULL;

		assert_int_equal(co_etcd__watch_decoder_next(&ev, d), 0);
		assert_non_null(ev);
		assert_int_equal(ev->type, CO_EVENT_PUT);
		assert_string_equal(ev->id, "a");
		assert_string_equal(ev->record->id, "a");
		co_event_free(ev);
		assert_int_equal(co_etcd__watch_decoder_next(&ev, d), 0);
		assert_null(ev);
		co_etcd__watch_decoder_state(&st, d);
		assert_true(st.created);
		assert_int_equal(st.next_rev, 3);
		co_etcd__watch_decoder_free(d);
	}
}

/* Found by tests/fuzz/fuzz_watch: a PUT of tasks/a whose value was swarm b
 * came out as an event for task a carrying swarm b (etcd_get refuses it). */
static void put_of_a_key_holding_another_record_is_dropped(void **state)
{
	const char *stream = "{\"result\":{\"events\":[{\"kv\":{\"key\":\"" KEY_TASK_A "\","
			     "\"mod_revision\":\"2\",\"value\":\"" VAL_SWARM_B "\"}}]}}\n";
	co_etcd__watch_decoder *d = decode(stream, 0);
	co_etcd__watch_state st;
	co_event *ev = NULL;

	(void)state;
	assert_int_equal(co_etcd__watch_decoder_next(&ev, d), 0);
	assert_null(ev);
	co_etcd__watch_decoder_state(&st, d);
	assert_int_equal(st.next_rev, 3); /* still resumes past it */
	co_etcd__watch_decoder_free(d);
}

/* Found with tests/fuzz/fuzz_watch under UBSan: revisions at or past
 * int64's end overflowed "next revision = this one + 1". */
static void revisions_past_int64_do_not_overflow(void **state)
{
	static const char *const streams[] = {
	    "{\"result\":{\"header\":{\"revision\":\"9223372036854775807\"},"
	    "\"created\":true}}\n",
	    "{\"result\":{\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"" KEY_TASK_A
	    "\",\"mod_revision\":\"9223372036854775807\"}}]}}\n",
	    "{\"result\":{\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"" KEY_TASK_A
	    "\",\"mod_revision\":1e300}}]}}\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		co_etcd__watch_decoder *d = decode(streams[i], 0);
		co_etcd__watch_state st;
		co_event *ev = NULL;

		co_etcd__watch_decoder_state(&st, d);
		assert_true(st.next_rev >= 0);
		while (co_etcd__watch_decoder_next(&ev, d) == 0 && ev)
			co_event_free(ev);
		co_etcd__watch_decoder_free(d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(put_events_are_whole_however_the_stream_is_cut),
	    cmocka_unit_test(put_of_a_key_holding_another_record_is_dropped),
	    cmocka_unit_test(revisions_past_int64_do_not_overflow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
