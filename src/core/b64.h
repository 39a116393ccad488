/*
 * b64.h - standard padded base64 (RFC 4648), by OpenSSL's EVP_EncodeBlock
 * and EVP_DecodeBlock, with the strictness etcd's gateway keeps: the one
 * base64 of the project (the etcd store, the fleet's gateway client and
 * the migration's batches use it).
 */
#ifndef CO_CORE_B64_H
#define CO_CORE_B64_H

#include <stddef.h>

/* Padded base64 of len bytes: malloc'd and NUL-terminated (caller frees);
 * NULL on OOM or over INT_MAX / 4 * 3 bytes. */
char *co_b64_encode(const void *data, size_t len);

/* The same into `out`, which has room for (len + 2) / 3 * 4 + 1 bytes;
 * returns the characters written (the NUL after them not counted).  len
 * at most INT_MAX / 4 * 3. */
size_t co_b64_encode_into(char *out, const void *data, size_t len);

/*
 * Decode padded standard base64 into a malloc'd buffer with a NUL after
 * the bytes (caller frees); *len (may be NULL) their count.  NULL on OOM
 * or when `in` is not padded standard base64: a length not a multiple of
 * 4, a '=' before the last two places, a byte outside the alphabet.
 */
char *co_b64_decode(const char *in, size_t *len);

#endif
