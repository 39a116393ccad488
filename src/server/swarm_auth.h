/*
 * swarm_auth.h - who may write on serve's data plane (issue 22).
 *
 * With serve.swarm_auth = token, a request that acts as a swarm (claim,
 * release, renew as that swarm; register that swarm) must carry
 * `Authorization: Bearer <token>` of that very swarm (tokens.h), and a
 * create must carry the token of some swarm.  Reads stay open.  The
 * answer to a refusal is 401 (no token, or one that is not any swarm's
 * current token) or 403 (a valid token of another swarm); the server
 * replies with its usual error body, and co_swarm_auth_refused() records
 * the refusal in the bounded ops audit log and the serve log, never with
 * the token.
 *
 * With swarm_auth = none nothing is checked, which is only safe when no
 * one else can reach the port: co_swarm_auth_listen_check() refuses a
 * non-loopback listen address then, unless the operator said
 * --insecure-data-plane.
 *
 * Nothing is cached: each request looks its token up in the state
 * database, so a rotation takes effect at the next request.
 *
 * Thread-safe (the state is); called from request threads.
 */
#ifndef CO_SWARM_AUTH_H
#define CO_SWARM_AUTH_H

#include "core/config.h"

#include <stddef.h>

typedef struct co_state co_state;

/* A line for the serve log (no newline); may be NULL: nothing is logged. */
typedef void (*co_server_log_fn)(void *ctx, const char *line);

/*
 * Who a request is, from its Authorization header value `authorization`
 * (NULL when absent): 0 with the ID of the swarm whose current token it
 * carries in `who` (who_len >= 129).  401 with the reason in `why`
 * (why_len bytes) when there is no bearer token or it is no swarm's
 * current token (malformed, forged, rotated out).  A negative CO_E* code
 * when the state cannot be read (the request then gets 503).
 */
int co_swarm_auth_identify(char *who, size_t who_len, char *why, size_t why_len,
			   co_state *st, const char *authorization);

/*
 * Record a refused request: one row in the ops audit log (op, id, outcome
 * "unauthorized" for 401 or "forbidden" for 403, the reason and the
 * client's address as its error) and one line through `log`.  `peer` is the
 * client's struct sockaddr (may be NULL).  The reason must not hold the
 * token; nothing else of the request is recorded.  A failing audit write is
 * reported through `log` only: the refusal stands either way.
 */
void co_swarm_auth_refused(co_state *st, co_server_log_fn log, void *log_ctx,
			   const char *op, const char *id, int status, const char *why,
			   const void *peer);

/*
 * 0 if serve may listen on `sa` (a struct sockaddr of the address to bind)
 * with this auth mode: always with token auth, and with none only on a
 * loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) or when
 * `insecure` (--insecure-data-plane).  CO_EINVAL with the reason and what
 * to do, naming `listen`, otherwise.
 */
int co_swarm_auth_listen_check(const void *sa, const char *listen, co_swarm_auth mode,
			       int insecure);

#endif
