/*
 * cmd_serve.c - `cutover serve [--listen HOST:PORT]`: the HTTP API of
 * src/server in the foreground until SIGINT or SIGTERM.
 *
 * It opens what every routed command opens (co_cli_open_router), but with
 * the router's background drain thread on: a long-running process should
 * not leave the outbox to the next one-shot command.  The admin token is
 * read once from admin_token_file; without one the admin endpoints answer
 * 403.  The stage endpoint goes through the same go/no-go gate as `cutover
 * stage` (co_cli_gate); the reconcile endpoint uses the config's reconcile
 * thresholds and grace, as `cutover reconcile` does, and logs each phase of
 * a run to stderr.
 *
 * Swarm auth (serve.swarm_auth, $CUTOVER_SWARM_AUTH) is passed to the
 * server, which refuses a non-loopback address without it unless
 * --insecure-data-plane; refused requests are logged to stderr, one line
 * each, never with a token.
 *
 * glibc's malloc is held to SERVE_ARENAS arenas (mallopt M_ARENA_MAX)
 * unless $MALLOC_ARENA_MAX says otherwise: with a thread per connection it
 * would make one per core times eight, each keeping the free memory it
 * once held.  In a 300 s soak with the task set growing sixfold the heap
 * and arenas ended at 28 MB with 2 arenas against 46 MB with the default,
 * RSS growth after the warm-up +9.0% against +17.8% (bench/README).
 *
 * Signals are blocked before the server's threads start (they inherit the
 * mask) and taken synchronously with sigwait() here, so no handler runs
 * inside a request.  On the way out the server stops accepting and waits
 * for requests in flight, the outbox is drained briefly, and the router is
 * closed.
 */
#include "cli.h"

#include "../core/error.h"
#include "../core/log.h"
#include "../core/webhook.h"
#include "../server/server.h"
#include "../server/server_fleet.h"
#include "flags/watcher.h"
#include "router/router.h"
#include "router/triggers.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define U_SERVE                                                                          \
	"cutover serve [--listen HOST:PORT] [--insecure-data-plane] [--tls-cert FILE "   \
	"--tls-key FILE]"

static const char h_serve[] =
    "usage: " U_SERVE "\n\n"
    "Serve the task and swarm operations over HTTP/JSON (DESIGN §7) until SIGINT or\n"
    "SIGTERM: /v1/tasks, /v1/swarms, /healthz, /metrics (Prometheus) and, with\n"
    "admin_token_file configured, /v1/admin/{flags,stage,rollback,resume,reconcile,\n"
    "audit} behind `Authorization: Bearer <token>`.  POST /v1/admin/reconcile runs one\n"
    "reconciliation as `cutover reconcile` does (body: {\"no_rollback\": true},\n"
    "{\"repair\": \"git\"|\"etcd\"}) and answers its JSON report.  GET\n"
    "/v1/admin/audit?since=&until=&op=&kind=&limit=&cursor= pages the audit trail\n"
    "as `cutover --json audit` prints it.  With `webhooks:` configured, serve\n"
    "delivers and retries the signed events (runbooks/webhooks.md).\n\n"
    "While some operation goes to both stores (shadow, dual, or the kill switch),\n"
    "serve also reconciles on its own every serve.reconcile_interval (default 5m,\n"
    "$CUTOVER_RECONCILE_INTERVAL; 0 turns it off), one run at a time, recorded and\n"
    "tripping the kill switch on a failed verdict as `cutover reconcile` would.\n"
    "A guarded rollout (`cutover rollout start`) is driven from here, a tick a\n"
    "second, so it survives the command that started it.\n\n"
    "With swarm auth on (CUTOVER_SWARM_AUTH=token, config serve.swarm_auth: token),\n"
    "claim, release and renew need `Authorization: Bearer <token>` of the swarm they\n"
    "act as, a create any swarm's token, a registration the swarm's own token or\n"
    "the admin token (tokens: `cutover swarm token ID`); reads stay open.  Without\n"
    "it (the default, none) serve listens only on a loopback address.\n\n"
    "  --listen HOST:PORT     address (default: config `listen`, $CUTOVER_LISTEN,\n"
    "                         127.0.0.1:7480; port 0 picks a free one)\n"
    "  --insecure-data-plane  allow a non-loopback address with swarm auth none\n"
    "  --tls-cert FILE        serve HTTPS with this PEM certificate (chain); needs\n"
    "                         --tls-key (default: config serve.tls_cert)\n"
    "  --tls-key FILE         the certificate's PEM private key (serve.tls_key)\n\n"
    "Limits against hostile or broken clients (config serve.*, runbooks/serve.md):\n"
    "request_timeout (10s: a whole request must arrive within it), max_connections\n"
    "(512), max_connections_per_ip (128), max_inflight (128 requests handled at\n"
    "once; more get 429 with Retry-After), queue_deadline (off; or\n"
    "$CUTOVER_QUEUE_DEADLINE, e.g. 2s: over max_inflight a request waits up to that\n"
    "long for a slot, then gets 503 with Retry-After and never reaches a store, so\n"
    "no claim is won for a client that gave up).  A write whose client closed its\n"
    "connection before the store call is not run.  Refusals are counted in\n"
    "/metrics (cutover_http_refused_total).  Request headers over 32 KiB get 431,\n"
    "bodies over 1 MiB 413.\n\n"
    "Examples:\n  CUTOVER_LISTEN=127.0.0.1:8080 cutover serve\n"
    "  CUTOVER_SWARM_AUTH=token cutover serve --listen 0.0.0.0:7480\n"
    "  cutover serve --tls-cert /etc/cutover/cert.pem --tls-key /etc/cutover/key.pem\n";

/* The rollout driver thread: a tick a second until serve stops. */
typedef struct driver {
	co_cli *ctx;
	co_cli_router *cr;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop, started;
} driver;

static void *drive(void *arg)
{
	driver *d = arg;
	char said[2048];
	struct timespec at;
	int active;

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		pthread_mutex_unlock(&d->lock);
		if (co_cli_rollout_tick(&active, said, sizeof(said), d->ctx, d->cr,
					d->cr->state) < 0)
			co_log(CO_LOG_ERROR, "rollout", "rollout: %s", co_error_last());
		else if (said[0])
			co_log(CO_LOG_INFO, "rollout", "rollout: %s", said);
		co_error_clear();
		pthread_mutex_lock(&d->lock);
		clock_gettime(CLOCK_REALTIME, &at);
		at.tv_sec += 1;
		while (!d->stop &&
		       pthread_cond_timedwait(&d->cond, &d->lock, &at) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static void driver_stop(driver *d)
{
	if (!d->started)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = 1;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	d->started = 0;
}

typedef struct gate_ctx {
	co_cli *ctx;
	co_state *state;
} gate_ctx;

static int serve_gate(char *note, size_t note_len, void *p, const co_flags *from,
		      const co_flags *to, int force)
{
	gate_ctx *g = p;

	return co_cli_gate(note, note_len, g->ctx, g->state, from, to, force);
}

/* One line per phase of an admin reconcile run.  Runs are one at a time
 * per server, and the reconciler never calls this from two threads at once. */
typedef struct serve_progress {
	char phase[32];
} serve_progress;

static void on_reconcile_progress(void *ctx, const char *phase, size_t done, size_t total)
{
	serve_progress *p = ctx;

	(void)done;
	(void)total;
	if (strcmp(p->phase, phase) == 0)
		return;
	snprintf(p->phase, sizeof(p->phase), "%s", phase);
	co_log(CO_LOG_INFO, "reconcile", "reconcile: %s", phase);
}

/* The serve log: stderr, one line at a time (request threads share it). */
static void serve_log(void *ctx, const char *line)
{
	(void)ctx;
	co_log_line(CO_LOG_INFO, "serve", line);
}

/* Replace the router co_cli_open_router() made by one that drains itself. */
static int reopen_with_drain(co_cli_router *cr, const co_config *c)
{
	co_router_opts o = CO_ROUTER_OPTS_INIT;
	co_trigger_cfg trg;
	co_router *r = NULL;
	int error;

	if ((error = co_cli_router_opts(&o, c, cr)) < 0)
		return error;
	o.background_drain = 1;
	/* live-signal rollback (router/triggers.h); in a fleet the health
	 * trigger is the fallback when etcd is lost, so it stays armed */
	co_trigger_cfg_for_router(&trg, &c->triggers, c->fleet_enabled);
	o.triggers = &trg;
	if ((error = co_router_open(&r, &o)) < 0)
		return error;
	co_router_close(cr->router);
	cr->router = r;
	return 0;
}

/*
 * Fleet mode (config fleet:): watch the fleet's flags, register this
 * router with the admin URL `rollback --fleet` calls (fleet.admin_url, or
 * this listener's port on 127.0.0.1 for a loopback listener, else on this
 * host's name).  etcd must answer at start: a router that cannot see the
 * fleet's flags does not join it silently.
 */
static int start_fleet(co_server_fleet **out, const co_config *c, co_cli_router *cr,
		       const char *listen, int port, int tls)
{
	co_server_fleet_opts fo = {0};
	char url[160], host[100] = "127.0.0.1";
	int error;

	*out = NULL;
	if (!c->fleet_enabled)
		return 0;
	if (listen && strncmp(listen, "127.", 4) != 0 && strncmp(listen, "localhost", 9) != 0 &&
	    gethostname(host, sizeof host - 1) < 0)
		snprintf(host, sizeof host, "127.0.0.1");
	snprintf(url, sizeof url, "%s://%s:%d", tls ? "https" : "http", host, port);
	if ((error = co_fleet_open_config(&fo.fleet, c)) < 0)
		return error;
	fo.flags_path = c->flags_path;
	fo.flags = cr->flags;
	fo.state = cr->state;
	fo.id = c->fleet_id;
	fo.admin_url = c->fleet_admin_url ? c->fleet_admin_url : url;
	fo.version = CO_CLI_VERSION;
	fo.ttl_ms = c->fleet_ttl_ms;
	if ((error = co_server_fleet_start(out, &fo)) < 0)
		return co_cli_error_prefix(error, "fleet: cannot join");
	{
		co_fleet_member self;

		co_server_fleet_self(&self, *out);
		co_log(CO_LOG_INFO, "serve", "fleet: registered as %s (admin %s)", self.id,
		       self.admin_url);
	}
	return 0;
}

/* Arenas for serve's malloc: see the head comment. */
#define SERVE_ARENAS 2

static void cap_arenas(void)
{
#ifdef __GLIBC__
	const char *env = getenv("MALLOC_ARENA_MAX");

	if (env == NULL || *env == '\0')
		mallopt(M_ARENA_MAX, SERVE_ARENAS);
#endif
}

int co_cli_serve(int argc, char **argv, co_cli *ctx)
{
	const char *listen = NULL, *pos[1], *tls_cert = NULL, *tls_key = NULL;
	int insecure = 0;
	co_cli_opt opts[] = {{"listen", &listen, NULL},
			     {"insecure-data-plane", NULL, &insecure},
			     {"tls-cert", &tls_cert, NULL},
			     {"tls-key", &tls_key, NULL},
			     {NULL, NULL, NULL}};
	co_server_opts so = CO_SERVER_OPTS_INIT;
	co_cli_router *cr = NULL;
	co_server *srv = NULL;
	co_webhook_sender *hooks = NULL;
	co_server_fleet *fleet = NULL;
	const co_config *c;
	char *token = NULL;
	gate_ctx g;
	serve_progress prog = {""};
	driver drv = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	sigset_t set, old;
	int error, sig = 0, masked = 0;
	size_t n;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_SERVE, h_serve)) !=
	    0)
		return error < 0 ? error : 0;
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if (listen == NULL)
		listen = c->listen;
	/* A flag replaces the config's pair whole: no mixing of the two. */
	if (tls_cert == NULL && tls_key == NULL) {
		tls_cert = c->serve_tls_cert;
		tls_key = c->serve_tls_key;
	}
	/* Before anything opens: a half TLS setup is the operator's to fix. */
	if ((tls_cert && *tls_cert) != (tls_key && *tls_key)) {
		co_log(CO_LOG_ERROR, "serve",
		       "serve: TLS needs both --tls-cert and --tls-key "
		       "(serve.tls_cert and serve.tls_key): %s given alone",
		       tls_cert && *tls_cert ? "the certificate" : "the key");
		return CO_EINVAL;
	}
	if (c->admin_token_file && *c->admin_token_file &&
	    co_server_read_token(&token, c->admin_token_file) < 0) {
		co_log(CO_LOG_WARN, "serve", "%s; admin endpoints disabled", co_error_last());
		co_error_clear();
	}
	/* Blocked before any thread starts (the router's drain and syncer,
	 * the flags watcher, the server's): threads inherit the mask, and a
	 * SIGTERM delivered to one that had not blocked it killed the
	 * process with the default action, skipping the final drain. */
	cap_arenas(); /* before the threads too: each may make an arena */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	masked = 1;
	if ((error = co_cli_open_router(&cr, ctx)) < 0 ||
	    (error = reopen_with_drain(cr, c)) < 0)
		goto done;

	g.ctx = ctx;
	g.state = cr->state;
	so.listen = listen;
	so.router = cr->router;
	so.state = cr->state;
	so.flags = cr->flags;
	so.flags_path = c->flags_path;
	so.git = cr->git;
	so.etcd = cr->etcd;
	so.admin_token = token;
	so.gate = serve_gate;
	so.gate_ctx = &g;
	so.reconcile_every_ms = c->serve_reconcile_interval_ms;
	so.reconcile_min_consistency = c->reconcile_min_consistency;
	so.reconcile_max_mismatch_ratio = c->reconcile_max_mismatch_ratio;
	so.reconcile_grace_ms = c->reconcile_grace_ms;
	so.reconcile_progress = on_reconcile_progress;
	so.reconcile_progress_ctx = &prog;
	so.swarm_auth = c->swarm_auth;
	so.insecure_data_plane = insecure;
	so.log = serve_log;
	so.tls_cert_file = tls_cert;
	so.tls_key_file = tls_key;
	so.request_timeout_ms = c->serve_request_timeout_ms;
	so.max_connections = c->serve_max_connections;
	so.max_connections_per_ip = c->serve_max_connections_per_ip;
	so.max_inflight = c->serve_max_inflight;
	so.queue_deadline_ms = c->serve_queue_deadline_ms;
	if ((error = co_server_start(&srv, &so)) < 0 ||
	    (error = start_fleet(&fleet, c, cr, listen, co_server_port(srv),
				 tls_cert && *tls_cert)) < 0)
		goto done;
	/* Webhook events (webhook.h): delivered by a thread of their own, so
	 * that a dead receiver never holds up a request or a trip. */
	if (c->n_webhooks && (error = co_webhook_sender_start(&hooks, cr->state, c)) < 0)
		goto done;
	co_log(CO_LOG_INFO, "serve", "serving on %s (port %d)%s%s; swarm auth %s",
	       listen ? listen : "", co_server_port(srv), tls_cert && *tls_cert ? " over TLS" : "",
	       token ? "" : "; admin endpoints disabled",
	       c->swarm_auth == CO_SWARM_AUTH_TOKEN ? "token" : "none");
	if (insecure && c->swarm_auth != CO_SWARM_AUTH_TOKEN)
		co_log(CO_LOG_WARN, "serve",
		       "--insecure-data-plane: any client that reaches %s may act as any "
		       "swarm",
		       listen ? listen : "");
	fflush(stderr);
	/* A guarded rollout (`cutover rollout start`) is driven from here. */
	drv.ctx = ctx;
	drv.cr = cr;
	if (pthread_create(&drv.thread, NULL, drive, &drv) == 0)
		drv.started = 1;
	else
		co_log(CO_LOG_WARN, "serve", "cannot start the rollout driver");
	sigwait(&set, &sig);
	co_log(CO_LOG_INFO, "serve", "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
done:
	driver_stop(&drv);
	co_server_fleet_stop(fleet);
	co_webhook_sender_stop(hooks);
	co_server_stop(srv);
	co_cli_router_close(cr, error < 0 ? 0 : CO_CLI_DRAIN_MS);
	if (masked)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	return error;
}
