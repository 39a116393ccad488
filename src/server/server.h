/*
 * server.h - `cutover serve`: the operations of DESIGN §3 over HTTP/JSON
 * (DESIGN §7), Prometheus metrics and the admin endpoints.
 *
 * The server borrows everything it works on (router, state, flags watcher,
 * both stores) from its caller, who opens them before co_server_start()
 * and closes them after co_server_stop().  Requests run in one thread per
 * connection (libmicrohttpd); the router is thread-safe, so nothing here
 * serialises operations: the store's compare-and-swap picks a claim's
 * winner, the server only reports it.  The one exception is
 * POST /v1/admin/reconcile: one reconciliation at a time per server (a
 * second request meanwhile gets 409), since two runs would only race each
 * other's kill-switch trip and double the load on both stores.
 *
 * Only the .c files of src/server include microhttpd.h; nothing in this header exposes
 * a libmicrohttpd type.
 */
#ifndef CO_SERVER_H
#define CO_SERVER_H

#include "flags/flags.h"
#include "reconcile/reconcile.h"
#include "swarm_auth.h"

#include <stddef.h>
#include <stdint.h>

typedef struct co_server co_server;
typedef struct co_router co_router;
typedef struct co_state co_state;
typedef struct co_store co_store;
typedef struct co_flags_watcher co_flags_watcher;

/* Largest request body accepted; larger ones get 413. */
#define CO_SERVER_BODY_MAX (1024 * 1024)

/* Default listen address (DESIGN §7, $CUTOVER_LISTEN): loopback only. */
#define CO_SERVER_LISTEN_DEFAULT "127.0.0.1:7480"

/*
 * Limits on what clients may hold (issue 16; server_guard.c).  Defaults for
 * the co_server_opts fields left at 0:
 *   - a whole request (headers and body) must arrive within the request
 *     timeout, however slowly it trickles in, and a connection idle that
 *     long is closed (a watch stream excepted: CO_SERVER_WATCH_IDLE_S);
 *   - at most MAX_CONNECTIONS connections (each costs a thread), at most
 *     MAX_CONNECTIONS_PER_IP from one client address (over either, the
 *     connection is closed at accept);
 *   - at most MAX_INFLIGHT requests being handled at once (watch streams,
 *     /healthz and /metrics not counted): over it, 429 with Retry-After at
 *     once, before the body is read; or, with a queue deadline (off by
 *     default), the request waits for a slot up to that long and past it
 *     gets 503 with Retry-After without reaching a store (a client that
 *     waited that long may have given up: its claim must not be won for
 *     nobody).  A write whose client is seen gone (the connection closed)
 *     before its store call is not run either.
 * Request headers larger than CO_SERVER_HEADER_MAX are refused by
 * libmicrohttpd (431).
 */
#define CO_SERVER_REQUEST_TIMEOUT_MS 10000
#define CO_SERVER_MAX_CONNECTIONS 512
#define CO_SERVER_MAX_CONNECTIONS_PER_IP 128
#define CO_SERVER_MAX_INFLIGHT 128
#define CO_SERVER_HEADER_MAX (32 * 1024)
/* A watch stream's idle bound: it sends a keep-alive every 15 s. */
#define CO_SERVER_WATCH_IDLE_S 120

/*
 * The go/no-go gate for POST /v1/admin/stage: 0 when moving from `from` to
 * `to` may go ahead (with `force`, an overridden refusal is 0 too and its
 * text goes into note, note[0] NUL otherwise); CO_ECONFLICT with the
 * refusal as the last error message otherwise.  Called from a request
 * thread.
 */
typedef int (*co_server_gate_fn)(char *note, size_t note_len, void *ctx,
				 const co_flags *from, const co_flags *to, int force);

typedef struct co_server_opts {
	const char *listen;	 /* "HOST:PORT"; port 0 picks a free one */
	co_router *router;	 /* required; borrowed */
	co_state *state;	 /* required; borrowed (outbox depth, runs, audit) */
	co_flags_watcher *flags; /* required; borrowed */
	const char *flags_path;	 /* required for admin changes: the flags file */
	co_store *git, *etcd;	 /* borrowed; for cutover_store_up, and both
				  * required by /v1/admin/reconcile (else 503) */
	const char *admin_token; /* NULL or "": admin endpoints disabled (403) */
	co_server_gate_fn gate;	 /* NULL: forward stage moves need "force" */
	void *gate_ctx;
	/* POST /v1/admin/reconcile, as `cutover reconcile` from the config
	 * (reconcile.*): negative means the reconciler's default (reconcile.h). */
	double reconcile_min_consistency;
	double reconcile_max_mismatch_ratio;
	int reconcile_grace_ms;
	/* Progress of a reconciliation run (reconcile.h), called from the
	 * request's thread and the run's snapshot thread; may be NULL. */
	co_reconcile_progress_fn reconcile_progress;
	void *reconcile_progress_ctx;
	/* The background probe of git and etcd (health.h) behind /healthz,
	 * /metrics and health.json: its period and the bound on one ping
	 * (0: CO_HEALTH_INTERVAL_MS, CO_HEALTH_TIMEOUT_MS). */
	int probe_interval_ms;
	int probe_timeout_ms;
	/* Swarm identity on the data plane (swarm_auth.h): with
	 * CO_SWARM_AUTH_TOKEN, writes need a swarm's bearer token.  With
	 * CO_SWARM_AUTH_NONE a non-loopback `listen` is refused unless
	 * insecure_data_plane. */
	co_swarm_auth swarm_auth;
	int insecure_data_plane;
	/* The serve log: refused requests, one line each (may be NULL). */
	co_server_log_fn log;
	void *log_ctx;
	/* Reconciliation on a schedule (server_schedule.c): every this many
	 * ms while some operation goes to both stores; <= 0: off. */
	int reconcile_every_ms;
	/* TLS (libmicrohttpd with GnuTLS): PEM files of the certificate chain
	 * and its private key, both or neither.  NULL: plain HTTP. */
	const char *tls_cert_file;
	const char *tls_key_file;
	/* The limits above; 0: the CO_SERVER_* default. */
	int request_timeout_ms;
	int max_connections;
	int max_connections_per_ip;
	int max_inflight;
	/* How long a request may wait for an in-flight slot before it is
	 * refused (503); 0: no waiting, 429 at once over max_inflight. */
	int queue_deadline_ms;
} co_server_opts;

#define CO_SERVER_OPTS_INIT                                                              \
	{                                                                                \
		NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1, -1,  \
		    NULL, NULL, 0, 0, CO_SWARM_AUTH_NONE, 0, NULL, NULL, 0, NULL, NULL,  \
		    0, 0, 0, 0, 0                                                        \
	}

/*
 * Endpoints (DESIGN §7).  Errors are {"error":{"code","message"}}, and a
 * request answered 400 changed nothing.
 *
 *   POST /v1/tasks, GET /v1/tasks[?status=S], GET /v1/tasks/{id},
 *   POST /v1/tasks/{id}/claim|release|renew, POST /v1/swarms,
 *   GET /v1/swarms[/{id}], GET /v1/watch[?prefix=P] (server-sent events),
 *   GET /metrics, GET /healthz.
 *
 * /healthz and /metrics answer from memory (the flags watcher, the stores'
 * breakers, the background probe's last result): never waiting on a
 * store.  A 503 carries Retry-After (until the next probe of an open
 * breaker, at least 1 s).
 *
 * Admin, behind `Authorization: Bearer <token>` (401 without it, 403 when
 * the server has no token), audited as "serve:admin":
 *
 *   GET  /v1/admin/flags      the current flags.
 *   POST /v1/admin/rollback   {"reason"}: drain the git-bound outbox briefly,
 *                             then trip the kill switch.
 *   POST /v1/admin/resume     {"reason"}: clear the kill switch.
 *   POST /v1/admin/stage      {"stage","force","reason"}: through the gate
 *                             (a refusal is audited as "gate refused").
 *   GET  /v1/admin/audit?since=&until=&op=&kind=&limit=&cursor=&order=
 *       one page of the change trail (audit.h co_audit_changes_query),
 *       all parameters optional: since/until RFC 3339 or "10m" ago, op an
 *       operation, kind one of CO_AUDIT_KINDS, limit 1..1000 (100),
 *       cursor the previous page's next_cursor, order oldest (default) or
 *       newest.  200 {"changes":[...],"next_cursor":N|null,"order":...};
 *       400 naming a bad or unknown parameter.
 *   GET  /v1/admin/runs?limit=N
 *       this router's latest N (1..1000, default 100) finished
 *       reconciliation runs, newest first: 200 {"runs":[...]}, each run as
 *       `cutover --json report` prints it without "divergences", with
 *       "started_at_ms" (Unix ms) added;
 *       400 naming a bad or unknown parameter.
 *   POST /v1/admin/reconcile  {"no_rollback":bool,"repair":"git"|"etcd"},
 *       all optional, an empty body too: one run of co_reconcile_run() as
 *       `cutover reconcile` does it (outbox drained through the router
 *       first, the thresholds of the options above; a failing verdict trips
 *       the kill switch unless no_rollback), recorded in the state database.
 *       200 with the JSON report of DESIGN §5 (report.h), whatever the
 *       verdict, plus "in_flight", "unsettled" and, when there is one, the
 *       "reason" of a failing verdict and a "warning".  With "repair" the first run
 *       diagnoses and repairs, a second verifies: the answer is the
 *       verifying run's report, with {"from","written","removed",
 *       "diagnosis":{the first run's report}} under "repair".  409 while
 *       another reconciliation of this server runs; 503 with the error's
 *       message when a store or the state database cannot be reached (the
 *       run is recorded as failed).
 *
 * Swarm auth (opts.swarm_auth == CO_SWARM_AUTH_TOKEN, swarm_auth.h): reads
 * (GET) stay open.  POST /v1/tasks/{id}/claim|release|renew need the
 * bearer token of the body's "swarm"; POST /v1/tasks needs the token of any
 * swarm; POST /v1/swarms needs the token of the swarm it registers, or the
 * admin token (a new swarm has no token yet: it is registered by an
 * operator).  No token or one that is no swarm's current token: 401
 * before the body is looked at; another swarm's token: 403.  Both with the
 * usual error body, audited (swarm_auth.h), nothing changed.
 *
 * Wrong methods get 405, unknown paths 404, bodies over
 * CO_SERVER_BODY_MAX 413 (at once when Content-Length says so, before
 * reading the body), too many requests in flight 429 (Retry-After: 1).
 * Admin refusals (401/403) are audited in the ops log as data-plane auth
 * refusals are (op "admin:<what>").  A path's "%00" is never decoded, so
 * it fails the ID rule like any other byte outside it; a request body must
 * be valid UTF-8 without NUL, its numbers finite.
 */

/*
 * Start listening on opts->listen and serving in background threads.  The
 * strings of `opts` are copied; the objects are borrowed and must outlive
 * the server.  *out is owned by the caller (co_server_stop).  CO_EINVAL
 * for a bad address, a missing required object, a reconcile threshold
 * over 1, or a non-loopback address without swarm auth nor
 * insecure_data_plane (co_swarm_auth_listen_check), a TLS certificate
 * without its key or the other way round, TLS asked of a libmicrohttpd
 * built without it, a limit below 0, a TLS file missing or unreadable;
 * CO_EIO if a TLS file cannot be read otherwise;
 * CO_EUNAVAIL if the address cannot be bound (or GnuTLS refuses the
 * certificate and key), CO_ENOMEM.
 */
int co_server_start(co_server **out, const co_server_opts *opts);

/* The TCP port the server listens on (useful after asking for port 0). */
int co_server_port(const co_server *s);

/* Requests counted against max_inflight right now (a gauge). */
int co_server_inflight(co_server *s);

/*
 * Stop accepting, wait for the requests in flight, free the server.
 * Does not touch the borrowed objects.  Accepts NULL.
 */
void co_server_stop(co_server *s);

/*
 * Read the admin bearer token from `path`: the file's first line, without
 * surrounding whitespace.  *out is malloc'd, owned by the caller.  CO_EIO
 * if the file cannot be read, CO_EINVAL if it holds no token.
 */
int co_server_read_token(char **out, const char *path);

/* --- metrics (metrics.c), thread-safe --- */

typedef struct co_metrics co_metrics;

/* New, zeroed metrics.  CO_ENOMEM. */
int co_metrics_new(co_metrics **out);

/* Free; accepts NULL. */
void co_metrics_free(co_metrics *m);

/*
 * Count one operation `op` served by `store` ("git" | "etcd") with result
 * `code` (0 or a CO_E* code), taking `seconds`.
 */
void co_metrics_observe(co_metrics *m, co_op op, co_side store, int code, double seconds);

/*
 * Append the Prometheus text of the counters and latency histograms to a
 * malloc'd buffer (*buf of *len bytes, *cap allocated; may start NULL).
 * CO_ENOMEM.
 */
int co_metrics_format(char **buf, size_t *len, size_t *cap, co_metrics *m);

/* printf-append to a growing buffer as co_metrics_format does.  CO_ENOMEM. */
int co_metrics_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
