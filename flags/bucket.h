/*
 * bucket.h - sticky, deterministic percentage bucketing of record IDs
 * (DESIGN §4, "Bucketing").
 *
 * The hash, pinned by tests/flags/test_bucket.c and never to be changed
 * while a migration is under way (changing it would move IDs between the
 * stores):
 *
 *	h      = MurmurHash3_x86_32(bytes of "cutover:" + id, seed 0)
 *	bucket = h % 100                                  (0..99)
 *	etcd is primary for the ID at percent N  iff  bucket < N
 *
 * The salt "cutover:" is fixed and deliberately does not include the
 * operation name, so that every operation on one ID agrees on its primary.
 * Because the bucket of an ID does not depend on N, raising N only ever
 * moves IDs from git to etcd (monotone): the set of etcd-primary IDs at N
 * is a subset of the set at M for every N < M.  N = 0 means nobody, N = 100
 * means everybody.
 *
 * The hash works on the ID's bytes as given (UTF-8 or not); co_id_validate()
 * decides separately which IDs are acceptable.  Murmur3's block reads are
 * little-endian by definition, whatever the host byte order.  Everything
 * here is a pure function: thread-safe, no allocation.
 */
#ifndef CO_FLAGS_BUCKET_H
#define CO_FLAGS_BUCKET_H

#include <stddef.h>
#include <stdint.h>

/* The fixed salt prepended to every ID before hashing. */
#define CO_BUCKET_SALT "cutover:"

/* Number of buckets; percentages are 0..CO_BUCKET_COUNT. */
#define CO_BUCKET_COUNT 100

/*
 * MurmurHash3_x86_32 (Austin Appleby's reference algorithm) of `len` bytes
 * at `data` with `seed`.  `data` may be NULL when `len` is 0.  Thread-safe.
 */
uint32_t co_bucket_murmur3_32(const void *data, size_t len, uint32_t seed);

/*
 * The bucket (0..99) of the ID `id`: murmur3_32(CO_BUCKET_SALT id, 0) % 100.
 * `id` is a NUL-terminated byte string; NULL is treated as "".  Does not
 * allocate; IDs of any length are accepted.  Thread-safe.
 */
int co_bucket_of(const char *id);

/*
 * 1 if etcd is the primary for `id` at `etcd_percent` (bucket < percent),
 * else 0.  Percentages below 0 count as 0 and above 100 as 100.
 * Thread-safe.
 */
int co_bucket_etcd_primary(const char *id, int etcd_percent);

#endif
