/*
 * tokens.h - swarm bearer tokens: issued once, kept only as a salted hash.
 *
 * A swarm that talks to `cutover serve` with swarm auth on proves who it is
 * with `Authorization: Bearer <token>`.  A token is
 *
 *     cos_<swarm ID>_<43 base64url characters>
 *
 * the last part being 32 bytes from OpenSSL's RAND_bytes.  The swarm ID in
 * it is not a secret: it only says which row to check, so that a token of
 * another swarm can be told apart from a forged one (403 vs 401).  The
 * state database (table swarm_tokens, schema version 4) keeps, per swarm,
 * a 16-byte random salt and HMAC-SHA256(key = salt, message = the whole
 * token): never the token.  Checking recomputes the HMAC and compares it
 * with CRYPTO_memcmp (constant time).  There is no cache: every check reads
 * the row, so a rotated or revoked token stops working at once, in every
 * process sharing the state dir.
 *
 * Ownership: the token returned by co_tokens_issue() is the caller's, to
 * show once and wipe (co_tokens_wipe).  Nothing here logs or stores it.
 *
 * Thread safety: as every state call (state.h): safe on a shared co_state
 * and from several processes.
 */
#ifndef CO_TOKENS_H
#define CO_TOKENS_H

#include "state.h"

#include <stddef.h>

/* Every token starts with this. */
#define CO_TOKEN_PREFIX "cos_"
/* Characters of the secret part: 32 random bytes in unpadded base64url. */
#define CO_TOKEN_SECRET_LEN 43
/* Longest token: prefix, a 128-byte swarm ID, "_", the secret. */
#define CO_TOKEN_MAX (sizeof(CO_TOKEN_PREFIX) - 1 + 128 + 1 + CO_TOKEN_SECRET_LEN)

/*
 * Make a new token for `swarm` (an ID, co_id_validate) and keep its salted
 * hash, durably.  Whether the swarm is registered is the caller's question
 * (the stores are not this module's).  With `rotate` an existing token is
 * replaced and stops working when this returns; without it a swarm that
 * has a token is refused with CO_ECONFLICT.  *out (malloc'd, NUL
 * terminated) is set only on success and owned by the caller.  CO_EINVAL
 * for a bad ID; CO_EIO if no random bytes could be had or the database
 * failed; CO_EUNAVAIL (the database busy), CO_ENOMEM.
 */
int co_tokens_issue(char **out, co_state *st, const char *swarm, int rotate);

/*
 * Check a presented token.  0 if it is the current token of a swarm: that
 * swarm's ID is copied into `swarm` (swarm_len bytes, at least 129).
 * CO_ENOTFOUND for anything else: malformed, a swarm without a token, a
 * wrong secret, a rotated-out token (the message says which, never
 * quoting the token).  CO_EIO, CO_EUNAVAIL from the database.  The
 * comparison of hashes is constant time.
 */
int co_tokens_check(char *swarm, size_t swarm_len, co_state *st, const char *token);

/* 1 if `swarm` has a token, 0 if not, a negative CO_E* code on error. */
int co_tokens_exists(co_state *st, const char *swarm);

/* Forget the token of `swarm` (if any): it stops working.  CO_EIO, CO_EUNAVAIL. */
int co_tokens_revoke(co_state *st, const char *swarm);

/* Overwrite and free a token string; NULL is fine. */
void co_tokens_wipe(char *token);

#endif
