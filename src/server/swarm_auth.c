/*
 * swarm_auth.c - swarm identity on serve's data plane (swarm_auth.h).
 *
 * The idea: the admin token guards the control plane; this guards the data
 * plane, per swarm.  A token names its swarm (cos_<swarm>_<secret>), the
 * state database holds its salted hash (core/tokens.c), and a request is
 * first *identified* (which swarm's current token is this? else 401), then
 * *authorised* by the server against the swarm it acts as (else 403).
 * Splitting the two lets an unauthenticated request be refused before its
 * body is even parsed, and keeps the decision about which operation needs
 * what in server.c, next to the handlers.
 *
 * Refusals are audited in the bounded ops log rather than the changes
 * trail, which is kept forever: a client hammering the port with bad
 * tokens must not grow the database without bound.  Neither the audit row
 * nor the log line ever holds the presented token, nor any part of it but
 * the swarm ID it claims to be for.
 *
 * It does not rate-limit or lock out: a 256-bit secret is not guessed, and
 * a lockout would let anyone lock a swarm out.
 */
#include "swarm_auth.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/tokens.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int co_swarm_auth_identify(char *who, size_t who_len, char *why, size_t why_len,
			   co_state *st, const char *authorization)
{
	const char *token;
	int error;

	if (authorization == NULL || *authorization == '\0') {
		snprintf(why, why_len, "missing Authorization: Bearer <swarm token>");
		return 401;
	}
	/* RFC 6750: the scheme is case-insensitive, then one or more spaces. */
	if (strncasecmp(authorization, "Bearer ", 7) != 0) {
		snprintf(why, why_len, "the Authorization header is not a bearer token");
		return 401;
	}
	for (token = authorization + 7; *token == ' '; token++)
		;
	error = co_tokens_check(who, who_len, st, token);
	if (error == CO_ENOTFOUND) {
		/* tokens.c's message names at most the swarm, never the secret. */
		snprintf(why, why_len, "%s", co_error_last());
		co_error_clear();
		return 401;
	}
	return error;
}

/* The client's address as text, "" if unknown. */
static void peer_text(char *buf, size_t len, const void *peer)
{
	const struct sockaddr *sa = peer;
	char host[NI_MAXHOST];
	socklen_t sl;

	buf[0] = '\0';
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		sl = sizeof(struct sockaddr_in);
	else if (sa->sa_family == AF_INET6)
		sl = sizeof(struct sockaddr_in6);
	else
		return;
	if (getnameinfo(sa, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST) == 0)
		snprintf(buf, len, "%s", host);
}

void co_swarm_auth_refused(co_state *st, co_server_log_fn log, void *log_ctx,
			   const char *op, const char *id, int status, const char *why,
			   const void *peer)
{
	co_audit_op row = {0};
	char from[NI_MAXHOST], detail[768], line[1024];
	int n;

	peer_text(from, sizeof(from), peer);
	/* A long peer name is cut: it comes last. */
	n = snprintf(detail, sizeof(detail), "%s auth: %s%s%s",
		 strcmp(op, "admin") == 0 ? "admin" : "swarm", why,
		 from[0] ? "; from " : "", from);
	(void)n;
	row.op = (char *)op;
	row.id = (char *)id;
	row.outcome = status == 403 ? "forbidden" : "unauthorized";
	row.error = detail;
	if (co_audit_op_add(st, &row) < 0 && log) {
		snprintf(line, sizeof(line),
			 "cutover: serve: warning: audit of a refusal "
			 "failed: %s",
			 co_error_last());
		log(log_ctx, line);
	}
	co_error_clear();
	if (log) {
		snprintf(line, sizeof(line), "cutover: serve: %d %s %s: %s", status, op,
			 id ? id : "-", detail);
		log(log_ctx, line);
	}
}

/* 1 if sa is a loopback address. */
static int is_loopback(const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0,	   0,
						 0, 0, 0, 0, 0xff, 0xff};

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const unsigned char *b = in6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return 1;
		return memcmp(b, mapped, sizeof(mapped)) == 0 && b[12] == 127;
	}
	return 0;
}

int co_swarm_auth_listen_check(const void *sa, const char *listen, co_swarm_auth mode,
			       int insecure)
{
	if (mode == CO_SWARM_AUTH_TOKEN || insecure || is_loopback(sa))
		return 0;
	return co_error_set(
	    CO_EINVAL,
	    "listen %s is not a loopback address and swarm auth is off "
	    "(serve.swarm_auth: none): anyone who can reach it could claim, release "
	    "and renew tasks as any swarm.  Turn swarm tokens on "
	    "(CUTOVER_SWARM_AUTH=token, "
	    "tokens from `cutover swarm token ID`), listen on 127.0.0.1, or pass "
	    "--insecure-data-plane if a network boundary of yours already guards the "
	    "port",
	    listen);
}
