/*
 * serve_fixture.h - a whole `cutover serve` in-process for tests and
 * benchmarks: a fresh bare git repo and state dir, both stores, the flags
 * file at a stage, a router with its background drain, and the HTTP server
 * on a free loopback port.  Everything it makes it removes on close.
 *
 * Returns -1 (with the reason on stderr) rather than failing a cmocka test,
 * so that benchmarks can use it too.
 */
#ifndef CO_TEST_SERVE_FIXTURE_H
#define CO_TEST_SERVE_FIXTURE_H

#include "server/swarm_auth.h"
#include "store/breaker.h"

typedef struct co_store co_store;
typedef struct co_state co_state;
typedef struct co_flags_watcher co_flags_watcher;
typedef struct co_router co_router;
typedef struct co_server co_server;

typedef struct co_test_serve_opts {
	const char *endpoint; /* etcd's, required */
	const char *prefix;   /* etcd key prefix, required ("/bench/") */
	const char *stage;    /* initial stage (default "git") */
	const char *token;    /* admin token; NULL: admin endpoints off */
	int etcd_timeout_ms;  /* request timeout; 0: the store's default */
	int git_poll_ms;      /* 0: the store's default */
	int probe_interval_ms, probe_timeout_ms; /* 0: serve's defaults */
	const co_breaker_opts *etcd_breaker;	 /* NULL: the defaults */
	co_swarm_auth swarm_auth;		 /* 0: none */
	co_server_log_fn log;			 /* the serve log; NULL: none */
	void *log_ctx;
	/* serve's limits and TLS (server.h; 0 / NULL: its defaults, HTTP) */
	int request_timeout_ms, max_connections, max_connections_per_ip, max_inflight;
	int queue_deadline_ms;
	const char *tls_cert_file, *tls_key_file;
	const struct co_trigger_cfg *triggers;	 /* live-signal triggers; NULL: off */
	const struct co_shadow_cfg *shadow;	 /* shadow sampling; NULL: every read */
} co_test_serve_opts;

typedef struct co_test_serve {
	char repo[256], dir[256], flags_path[320];
	char base[64]; /* "http://127.0.0.1:PORT" ("https://" with TLS) */
	int port;
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
	co_server *srv;
} co_test_serve;

/* Open everything; 0, or -1 with what failed on stderr (f is then closed). */
int co_test_serve_open(co_test_serve *f, const co_test_serve_opts *o);

/* Stop the server, drain the outbox (2 s at most), close and remove all. */
void co_test_serve_close(co_test_serve *f);

/* Save the flags file at `stage` (the kill switch off) and reload the
 * watcher.  0 / -1. */
int co_test_serve_stage(co_test_serve *f, const char *stage);

#endif
