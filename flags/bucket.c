/*
 * bucket.c - which store is primary for an ID at a rollout percentage.
 *
 * The idea is Unleash's and flagd's: hash a fixed salt plus the ID with
 * MurmurHash3 (x86, 32-bit, seed 0), take it modulo 100, and compare the
 * bucket with the percentage.  The bucket of an ID never depends on the
 * percentage or the operation, so rollouts are sticky and monotone and all
 * operations on one ID agree (bucket.h states the exact rule).
 *
 * The salt is hashed as if concatenated with the ID without building the
 * concatenation: the hash consumes 4-byte blocks, so the few bytes that
 * straddle the salt/ID boundary are assembled in a small window.  That keeps
 * the function allocation-free for IDs of any length.
 *
 * Not here: deciding what a mode means (flags.c) or validating IDs (id.c).
 */
#include "bucket.h"

#include <string.h>

static uint32_t rotl32(uint32_t x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static uint32_t fmix32(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* Murmur3 streaming state: whole blocks are mixed as they complete. */
typedef struct murmur {
	uint32_t h;
	uint32_t len;
	unsigned char tail[4];
	size_t ntail;
} murmur;

static uint32_t mix_k(uint32_t k)
{
	k *= 0xcc9e2d51u;
	k = rotl32(k, 15);
	k *= 0x1b873593u;
	return k;
}

/* Little-endian load, independent of host byte order (the reference's getblock). */
static uint32_t load_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void murmur_block(murmur *m, const unsigned char *p)
{
	m->h ^= mix_k(load_le32(p));
	m->h = rotl32(m->h, 13);
	m->h = m->h * 5 + 0xe6546b64u;
}

static void murmur_update(murmur *m, const unsigned char *p, size_t len)
{
	/* The reference hashes a 32-bit length: wrap-around matches it. */
	m->len += (uint32_t)len;
	while (m->ntail > 0 && m->ntail < 4 && len > 0) {
		m->tail[m->ntail++] = *p++;
		len--;
	}
	if (m->ntail == 4) {
		murmur_block(m, m->tail);
		m->ntail = 0;
	}
	for (; len >= 4; len -= 4, p += 4)
		murmur_block(m, p);
	/* len < 4 and ntail == 0 here; the bound also tells the optimizer so */
	while (len > 0 && m->ntail < 4) {
		m->tail[m->ntail++] = *p++;
		len--;
	}
}

static uint32_t murmur_final(murmur *m)
{
	uint32_t k = 0;

	switch (m->ntail) {
	case 3:
		k ^= (uint32_t)m->tail[2] << 16;
		/* fall through */
	case 2:
		k ^= (uint32_t)m->tail[1] << 8;
		/* fall through */
	case 1:
		k ^= m->tail[0];
		m->h ^= mix_k(k);
		break;
	default:
		break;
	}
	m->h ^= m->len;
	return fmix32(m->h);
}

uint32_t co_bucket_murmur3_32(const void *data, size_t len, uint32_t seed)
{
	murmur m = {seed, 0, {0}, 0};

	if (len > 0)
		murmur_update(&m, data, len);
	return murmur_final(&m);
}

int co_bucket_of(const char *id)
{
	static const char salt[] = CO_BUCKET_SALT;
	murmur m = {0, 0, {0}, 0};

	murmur_update(&m, (const unsigned char *)salt, sizeof(salt) - 1);
	if (id)
		murmur_update(&m, (const unsigned char *)id, strlen(id));
	return (int)(murmur_final(&m) % CO_BUCKET_COUNT);
}

int co_bucket_etcd_primary(const char *id, int etcd_percent)
{
	if (etcd_percent <= 0)
		return 0;
	if (etcd_percent >= CO_BUCKET_COUNT)
		return 1;
	return co_bucket_of(id) < etcd_percent;
}
