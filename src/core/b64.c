/*
 * b64.c - base64 by OpenSSL (b64.h).
 *
 * EVP_DecodeBlock is lenient where etcd never is: it takes a '=' in the
 * middle ("YQ==YQ==") and counts the padding in its length; so the shape
 * is checked here (a multiple of 4, '=' only as the last one or two) and
 * the padding taken off.
 */
#include "b64.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

char *co_b64_encode(const void *data, size_t len)
{
	char *out;

	if (len > (size_t)INT_MAX / 4 * 3 || (out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
	return out;
}

size_t co_b64_encode_into(char *out, const void *data, size_t len)
{
	return (size_t)EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data,
				       (int)len);
}

char *co_b64_decode(const char *in, size_t *len)
{
	size_t n = strlen(in), pad = 0, i;
	char *out;
	int got;

	if (n % 4 != 0 || n > (size_t)INT_MAX)
		return NULL;
	if (n > 0 && in[n - 1] == '=')
		pad = n > 1 && in[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n - pad; i++)
		if (in[i] == '=')
			return NULL;
	if ((out = malloc(n / 4 * 3 + 1)) == NULL)
		return NULL;
	/* Short of n / 4 * 3: it skipped blanks at an end, which etcd never sends. */
	got = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
	if (got < 0 || (size_t)got != n / 4 * 3) {
		free(out);
		return NULL;
	}
	got -= (int)pad;
	out[got] = '\0';
	if (len)
		*len = (size_t)got;
	return out;
}
