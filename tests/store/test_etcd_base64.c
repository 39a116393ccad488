/*
 * test_etcd_base64.c - the etcd store's base64 (src/store/etcd_http.c),
 * OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock under a check of the shape
 * etcd's gateway always sends (pure logic).
 *
 * RFC 4648's test vectors, every length round-trips (NUL and 0xff bytes
 * included), and what EVP_DecodeBlock alone would let through (a '=' in
 * the middle, blanks at an end, no padding) is refused.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "store/etcd_private.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

static const char *const vectors[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

/* base64 of len bytes at data through the store's JSON helper. */
static char *encode(const char *data, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	assert_non_null(o);
	assert_int_equal(co_etcd__json_add_b64(o, "k", data, len), 0);
	s = strdup(cJSON_GetObjectItemCaseSensitive(o, "k")->valuestring);
	cJSON_Delete(o);
	assert_non_null(s);
	return s;
}

static void rfc4648_vectors_encode_and_decode(void **state)
{
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		char *e = encode(vectors[i][0], strlen(vectors[i][0]));
		char *d = co_b64_decode(vectors[i][1], &len);

		assert_string_equal(e, vectors[i][1]);
		assert_non_null(d);
		assert_int_equal(len, strlen(vectors[i][0]));
		assert_string_equal(d, vectors[i][0]);
		free(e);
		free(d);
	}
}

static void every_length_round_trips(void **state)
{
	unsigned char data[80];
	size_t n, i, len;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 37 + (i % 3 ? 0 : 0xff));
	data[3] = 0;
	for (n = 0; n <= sizeof(data); n++) {
		char *e = encode((const char *)data, n);
		char *d = co_b64_decode(e, &len);

		assert_int_equal(strlen(e), (n + 2) / 3 * 4);
		assert_non_null(d);
		assert_int_equal(len, n);
		assert_memory_equal(d, data, n);
		assert_int_equal(d[len], '\0');
		free(e);
		free(d);
	}
}

static void malformed_base64_is_refused(void **state)
{
	static const char *const bad[] = {
	    "YQ",	    /* unpadded */
	    "YQ=",	    /* cut padding */
	    "YQ==YQ==",	    /* padding in the middle */
	    "YQ=a",	    /* a '=' before the end */
	    "Y===",	    /* three of them */
	    "====",	    /* nothing but padding */
	    "YWJj\n",	    /* a blank at the end */
	    " YWJ",	    /* a blank at the start */
	    "    ",	    /* only blanks */
	    "YW Jj",	    /* one inside */
	    "YW*j",	    /* not in the alphabet */
	    "YWJj\xc3\xa9", /* not ASCII */
	    "-_-_",	    /* the URL alphabet is not etcd's */
	};

	size_t i, len = 99;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *d = co_b64_decode(bad[i], &len);

		if (d != NULL)
			fail_msg("\"%s\" decoded (%zu bytes)", bad[i], len);
	}
	assert_int_equal(len, 99); /* untouched on refusal */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rfc4648_vectors_encode_and_decode),
	    cmocka_unit_test(every_length_round_trips),
	    cmocka_unit_test(malformed_base64_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
