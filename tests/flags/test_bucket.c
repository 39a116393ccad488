/*
 * test_bucket.c - the bucketing hash is pinned: MurmurHash3 x86_32 known
 * answers, bucket vectors for ASCII and non-ASCII IDs, monotone rollout and
 * an even spread.  The expected values come from an independent Python
 * implementation of the reference algorithm, cross-checked against the
 * published murmur3 test vectors listed first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags/bucket.h"

static void murmur3_matches_published_known_answers(void **state)
{
	static const char quick[] = "The quick brown fox jumps over the lazy dog";
	static const unsigned char zeros[4] = {0, 0, 0, 0};

	(void)state;
	assert_int_equal(co_bucket_murmur3_32("", 0, 0), 0u);
	assert_int_equal(co_bucket_murmur3_32(NULL, 0, 0), 0u);
	assert_int_equal(co_bucket_murmur3_32("", 0, 1), 0x514e28b7u);
	assert_int_equal(co_bucket_murmur3_32("", 0, 0xffffffffu), 0x81f16f39u);
	assert_int_equal(co_bucket_murmur3_32(zeros, 4, 0), 0x2362f9deu);
	assert_int_equal(co_bucket_murmur3_32("aaaa", 4, 0x9747b28cu), 0x5a97808au);
	assert_int_equal(co_bucket_murmur3_32("Hello, world!", 13, 0x9747b28cu),
			 0x24884cbau);
	assert_int_equal(co_bucket_murmur3_32("hello", 5, 0), 0x248bfa47u);
	assert_int_equal(co_bucket_murmur3_32(quick, strlen(quick), 0), 0x2e4ff723u);
	assert_int_equal(co_bucket_murmur3_32(quick, strlen(quick), 0x9747b28cu),
			 0x2fa826cdu);
	/* Tails of 1, 2 and 3 bytes. */
	assert_int_equal(co_bucket_murmur3_32("abc", 3, 0), 0xb3dd93fau);
	assert_int_equal(co_bucket_murmur3_32("a", 1, 0x9747b28cu), 0x7fa09ea6u);
}

static void bucket_vectors_for_ascii_ids_are_pinned(void **state)
{
	(void)state;
	/* murmur3("cutover:" id, 0): the hash itself, then the bucket. */
	assert_int_equal(co_bucket_murmur3_32("cutover:P0.1.1", 14, 0), 0xd224db5du);
	assert_int_equal(co_bucket_of("P0.1.1"), 13);
	assert_int_equal(co_bucket_murmur3_32("cutover:task-42", 15, 0), 0x3f84b591u);
	assert_int_equal(co_bucket_of("task-42"), 41);
	assert_int_equal(co_bucket_murmur3_32("cutover:swarm-sip", 17, 0), 0x9cfaa6ccu);
	assert_int_equal(co_bucket_of("swarm-sip"), 96);
	assert_int_equal(co_bucket_of("x"), 58);
	/* The empty ID (and NULL, treated as "") hash the salt alone. */
	assert_int_equal(co_bucket_of(""), 37);
	assert_int_equal(co_bucket_of(NULL), 37);
}

static void bucket_vectors_for_non_ascii_ids_hash_utf8_bytes(void **state)
{
	/* "tâche-1" and "日本語-7" as UTF-8 bytes, spelled out. */
	static const char tache[] = "t\xc3\xa2"
				    "che-1";
	static const char nihongo[] = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e-7";

	(void)state;
	assert_int_equal(co_bucket_murmur3_32("cutover:t\xc3\xa2"
					      "che-1",
					      16, 0),
			 0x27023ae3u);
	assert_int_equal(co_bucket_of(tache), 71);
	assert_int_equal(co_bucket_of(nihongo), 53);
}

/* The salt is streamed, not concatenated: check every split position. */
static void bucket_equals_hash_of_salted_id_for_all_lengths(void **state)
{
	char id[64], salted[80];
	size_t len;
	uint32_t h;

	(void)state;
	for (len = 0; len < 40; len++) {
		memset(id, 0, sizeof(id));
		for (size_t i = 0; i < len; i++)
			id[i] = (char)('a' + (i * 7 + len) % 26);
		snprintf(salted, sizeof(salted), "%s%s", CO_BUCKET_SALT, id);
		h = co_bucket_murmur3_32(salted, strlen(salted), 0);
		assert_int_equal(co_bucket_of(id), (int)(h % 100));
	}
}

static void etcd_primary_is_bucket_below_percent(void **state)
{
	(void)state;
	/* "P0.1.1" is in bucket 13. */
	assert_false(co_bucket_etcd_primary("P0.1.1", 0));
	assert_false(co_bucket_etcd_primary("P0.1.1", 13));
	assert_true(co_bucket_etcd_primary("P0.1.1", 14));
	assert_true(co_bucket_etcd_primary("P0.1.1", 100));
	/* Out-of-range percentages clamp. */
	assert_false(co_bucket_etcd_primary("P0.1.1", -5));
	assert_true(co_bucket_etcd_primary("P0.1.1", 250));
}

#define NIDS 10000

static void raising_percent_only_moves_ids_to_etcd_and_share_tracks_percent(void **state)
{
	static const int steps[] = {0, 1, 5, 10, 25, 50, 75, 90, 99, 100};
	char id[32];
	unsigned char *prev;
	size_t s, i;

	(void)state;
	prev = calloc(NIDS, 1);
	assert_non_null(prev);
	for (s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		int n = steps[s], count = 0;

		for (i = 0; i < NIDS; i++) {
			int etcd;

			snprintf(id, sizeof(id), "task-%zu", i);
			etcd = co_bucket_etcd_primary(id, n);
			/* Subset: once on etcd at a lower percent, still on etcd. */
			if (prev[i])
				assert_true(etcd);
			prev[i] = (unsigned char)etcd;
			count += etcd;
		}
		/* Within 3 points of the percentage (measured: < 1). */
		assert_true(abs(count - n * NIDS / 100) <= 300);
		if (n == 0)
			assert_int_equal(count, 0);
		if (n == 100)
			assert_int_equal(count, NIDS);
	}
	free(prev);
}

static void every_bucket_is_used(void **state)
{
	int seen[CO_BUCKET_COUNT] = {0};
	char id[32];
	int i;

	(void)state;
	for (i = 0; i < NIDS; i++) {
		int b;

		snprintf(id, sizeof(id), "P%d.%d", i / 100, i % 100);
		b = co_bucket_of(id);
		assert_in_range(b, 0, CO_BUCKET_COUNT - 1);
		seen[b]++;
	}
	for (i = 0; i < CO_BUCKET_COUNT; i++)
		assert_true(seen[i] > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(murmur3_matches_published_known_answers),
	    cmocka_unit_test(bucket_vectors_for_ascii_ids_are_pinned),
	    cmocka_unit_test(bucket_vectors_for_non_ascii_ids_hash_utf8_bytes),
	    cmocka_unit_test(bucket_equals_hash_of_salted_id_for_all_lengths),
	    cmocka_unit_test(etcd_primary_is_bucket_below_percent),
	    cmocka_unit_test(
		raising_percent_only_moves_ids_to_etcd_and_share_tracks_percent),
	    cmocka_unit_test(every_bucket_is_used),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
