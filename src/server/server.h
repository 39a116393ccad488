/*
 * server.h - `cutover serve`: the operations of DESIGN §3 over HTTP/JSON
 * (DESIGN §7), Prometheus metrics and the admin endpoints.
 *
 * The server borrows everything it works on (router, state, flags watcher,
 * both stores) from its caller, who opens them before co_server_start()
 * and closes them after co_server_stop().  Requests run in one thread per
 * connection (libmicrohttpd); the router is thread-safe, so nothing here
 * serialises operations: the store's compare-and-swap picks a claim's
 * winner, the server only reports it.
 *
 * Only the .c files of src/server include microhttpd.h; nothing in this header exposes
 * a libmicrohttpd type.
 */
#ifndef CO_SERVER_H
#define CO_SERVER_H

#include "flags/flags.h"

#include <stddef.h>
#include <stdint.h>

typedef struct co_server co_server;
typedef struct co_router co_router;
typedef struct co_state co_state;
typedef struct co_store co_store;
typedef struct co_flags_watcher co_flags_watcher;

/* Largest request body accepted; larger ones get 413. */
#define CO_SERVER_BODY_MAX (1024 * 1024)

/* Default listen address (DESIGN §7, $CUTOVER_LISTEN). */
#define CO_SERVER_LISTEN_DEFAULT "127.0.0.1:7480"

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
	co_store *git, *etcd;	 /* optional; borrowed, for cutover_store_up */
	const char *admin_token; /* NULL or "": admin endpoints disabled (403) */
	co_server_gate_fn gate;	 /* NULL: forward stage moves need "force" */
	void *gate_ctx;
} co_server_opts;

#define CO_SERVER_OPTS_INIT                                                              \
	{                                                                                \
		NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL               \
	}

/*
 * Start listening on opts->listen and serving in background threads.  The
 * strings of `opts` are copied; the objects are borrowed and must outlive
 * the server.  *out is owned by the caller (co_server_stop).  CO_EINVAL
 * for a bad address or missing required object, CO_EUNAVAIL if the
 * address cannot be bound, CO_ENOMEM.
 */
int co_server_start(co_server **out, const co_server_opts *opts);

/* The TCP port the server listens on (useful after asking for port 0). */
int co_server_port(const co_server *s);

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
