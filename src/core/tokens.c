/*
 * tokens.c - swarm bearer tokens in the state database (tokens.h).
 *
 * The idea: a token is a random secret with the swarm's ID in front, and the
 * database holds only HMAC-SHA256(salt, token) with a per-token random salt,
 * so a copy of cutover.db (a backup, a support bundle) does not let anyone
 * act as a swarm.  A plain unsalted hash would do against guessing (the
 * secret has 256 bits), but the salt costs nothing and keeps two databases
 * from ever sharing a hash.  No key stretching (PBKDF2): that protects
 * low-entropy passwords and would cost milliseconds on every request.
 *
 * Every primitive is OpenSSL's (RAND_bytes, HMAC, CRYPTO_memcmp,
 * EVP_EncodeBlock); nothing cryptographic is written here.
 *
 * What it does not do: decide whether a swarm is registered (the stores
 * know that, and core does not use them), or cache anything: the check is
 * one indexed SELECT on the state connection per request, which keeps a
 * rotation effective at once in every process on the state dir.
 *
 * Part of the state module: it shares state_internal.h with state.c,
 * outbox.c, audit.c and runs.c.
 */
#include "tokens.h"

#include "error.h"
#include "id.h"
#include "state_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SALT_LEN 16
#define SECRET_BYTES 32
#define HASH_LEN 32 /* SHA-256 */

/* HMAC-SHA256(key = salt, message = token) into out.  0 / CO_EIO. */
static int token_hash(unsigned char out[HASH_LEN], const unsigned char *salt,
		      const char *token)
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), salt, SALT_LEN, (const unsigned char *)token,
		 strlen(token), out, &len) == NULL ||
	    len != HASH_LEN)
		return co_error_set(CO_EIO, "tokens: HMAC-SHA256 failed");
	return 0;
}

/* 32 random bytes as 43 characters of unpadded base64url, NUL terminated. */
static int make_secret(char out[CO_TOKEN_SECRET_LEN + 1])
{
	unsigned char raw[SECRET_BYTES];
	char b64[4 * ((SECRET_BYTES + 2) / 3) + 1];
	int i;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return co_error_set(CO_EIO, "tokens: no random bytes (RAND_bytes)");
	/* 44 characters ending in one '=' */
	EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	for (i = 0; i < CO_TOKEN_SECRET_LEN; i++)
		out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	out[CO_TOKEN_SECRET_LEN] = '\0';
	OPENSSL_cleanse(b64, sizeof(b64));
	return 0;
}

static int is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * The swarm ID a token names, into swarm (swarm_len bytes).  The secret has
 * a fixed length, so the ID is what lies between the prefix and the "_"
 * before it, whatever "_" the ID itself holds.  CO_ENOTFOUND if malformed.
 */
static int token_swarm(char *swarm, size_t swarm_len, const char *token)
{
	size_t pre = sizeof(CO_TOKEN_PREFIX) - 1, len = strlen(token), idlen, i;

	if (len > CO_TOKEN_MAX || len < pre + 2 + CO_TOKEN_SECRET_LEN ||
	    strncmp(token, CO_TOKEN_PREFIX, pre) != 0 ||
	    token[len - CO_TOKEN_SECRET_LEN - 1] != '_')
		return co_error_set(CO_ENOTFOUND, "not a cutover swarm token");
	for (i = len - CO_TOKEN_SECRET_LEN; i < len; i++)
		if (!is_b64url(token[i]))
			return co_error_set(CO_ENOTFOUND, "not a cutover swarm token");
	idlen = len - CO_TOKEN_SECRET_LEN - 1 - pre;
	if (idlen + 1 > swarm_len)
		return co_error_set(CO_ENOTFOUND, "not a cutover swarm token");
	memcpy(swarm, token + pre, idlen);
	swarm[idlen] = '\0';
	if (co_id_validate(swarm) < 0)
		return co_error_set(CO_ENOTFOUND, "not a cutover swarm token");
	return 0;
}

void co_tokens_wipe(char *token)
{
	if (token == NULL)
		return;
	OPENSSL_cleanse(token, strlen(token));
	free(token);
}

int co_tokens_issue(char **out, co_state *st, const char *swarm, int rotate)
{
	unsigned char salt[SALT_LEN], hash[HASH_LEN];
	char secret[CO_TOKEN_SECRET_LEN + 1];
	sqlite3_stmt *q = NULL, *w = NULL;
	char *token = NULL;
	size_t len;
	int error, rc, locked = 0;

	if ((error = co_id_validate(swarm)) < 0)
		return error;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return co_error_set(CO_EIO, "tokens: no random bytes (RAND_bytes)");
	if ((error = make_secret(secret)) < 0)
		return error;
	len = sizeof(CO_TOKEN_PREFIX) - 1 + strlen(swarm) + 1 + CO_TOKEN_SECRET_LEN;
	if ((token = malloc(len + 1)) == NULL) {
		error = co_error_set(CO_ENOMEM, "tokens: out of memory");
		goto done;
	}
	snprintf(token, len + 1, "%s%s_%s", CO_TOKEN_PREFIX, swarm, secret);
	if ((error = token_hash(hash, salt, token)) < 0)
		goto done;

	co_state__lock(st);
	locked = 1;
	if ((error = co_state__begin(st, 1)) < 0 ||
	    (error = co_state__prepare(
		 st, &q, "SELECT 1 FROM swarm_tokens WHERE swarm = ?")) < 0 ||
	    (error = co_state__bind_text(st, q, 1, swarm)) < 0)
		goto done;
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		error = co_state__error(st, rc, "read swarm token");
		goto done;
	}
	if (rc == SQLITE_ROW && !rotate) {
		error = co_error_set(CO_ECONFLICT, "swarm %s already has a token", swarm);
		goto done;
	}
	if ((error = co_state__prepare(
		 st, &w,
		 "INSERT OR REPLACE INTO swarm_tokens (swarm, salt, hash, issued_at)"
		 " VALUES (?, ?, ?, ?)")) < 0 ||
	    (error = co_state__bind_text(st, w, 1, swarm)) < 0)
		goto done;
	if ((rc = sqlite3_bind_blob(w, 2, salt, SALT_LEN, SQLITE_TRANSIENT)) !=
		SQLITE_OK ||
	    (rc = sqlite3_bind_blob(w, 3, hash, HASH_LEN, SQLITE_TRANSIENT)) !=
		SQLITE_OK ||
	    (rc = sqlite3_bind_int64(w, 4, co_state_now_ms())) != SQLITE_OK) {
		error = co_state__error(st, rc, "bind");
		goto done;
	}
	if ((error = co_state__step_done(st, w, "save swarm token")) < 0 ||
	    (error = co_state__commit(st)) < 0)
		goto done;
	*out = token;
	token = NULL;
done:
	if (locked) {
		co_state__rollback(st);
		co_state__finish(st, q);
		co_state__finish(st, w);
		co_state__unlock(st);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	co_tokens_wipe(token);
	return error;
}

int co_tokens_check(char *swarm, size_t swarm_len, co_state *st, const char *token)
{
	unsigned char hash[HASH_LEN], stored[HASH_LEN], salt[SALT_LEN];
	char id[129];
	sqlite3_stmt *q = NULL;
	int error, rc, found = 0;

	if (token == NULL || (error = token_swarm(id, sizeof(id), token)) < 0)
		return co_error_set(CO_ENOTFOUND, "not a cutover swarm token");
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &q, "SELECT salt, hash FROM swarm_tokens WHERE swarm = ?")) < 0 ||
	    (error = co_state__bind_text(st, q, 1, id)) < 0)
		goto done;
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(q, 0) == SALT_LEN &&
	    sqlite3_column_bytes(q, 1) == HASH_LEN) {
		memcpy(salt, sqlite3_column_blob(q, 0), SALT_LEN);
		memcpy(stored, sqlite3_column_blob(q, 1), HASH_LEN);
		found = 1;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		error = co_state__error(st, rc, "read swarm token");
		goto done;
	}
done:
	co_state__finish(st, q);
	co_state__unlock(st);
	if (error < 0)
		return error;
	if (!found) {
		/* The same work as a real check, so that the answer's timing
		 * does not say which swarms have a token. */
		memset(salt, 0, sizeof(salt));
		memset(stored, 0xff, sizeof(stored));
	}
	if ((error = token_hash(hash, salt, token)) < 0)
		return error;
	if (CRYPTO_memcmp(hash, stored, HASH_LEN) != 0 || !found)
		return co_error_set(CO_ENOTFOUND,
				    found ? "not the current token of swarm %s"
					  : "swarm %s has no token",
				    id);
	if (strlen(id) + 1 > swarm_len)
		return co_error_set(CO_EINVAL, "tokens: swarm buffer too small");
	memcpy(swarm, id, strlen(id) + 1);
	return 0;
}

int co_tokens_exists(co_state *st, const char *swarm)
{
	sqlite3_stmt *q = NULL;
	int error, rc;

	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &q, "SELECT 1 FROM swarm_tokens WHERE swarm = ?")) < 0 ||
	    (error = co_state__bind_text(st, q, 1, swarm)) < 0)
		goto done;
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		error = 1;
	else if (rc != SQLITE_DONE)
		error = co_state__error(st, rc, "read swarm token");
done:
	co_state__finish(st, q);
	co_state__unlock(st);
	return error;
}

int co_tokens_revoke(co_state *st, const char *swarm)
{
	sqlite3_stmt *s = NULL;
	int error;

	co_state__lock(st);
	if ((error = co_state__prepare(st, &s,
				       "DELETE FROM swarm_tokens WHERE swarm = ?")) < 0 ||
	    (error = co_state__bind_text(st, s, 1, swarm)) < 0)
		goto done;
	error = co_state__step_commit(st, s, 1, "revoke swarm token");
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}
