/*
 * config.h - cutover.yaml and the CUTOVER_* environment (DESIGN §7).
 *
 * Order: built-in defaults, then the YAML file (--config, $CUTOVER_CONFIG,
 * or ./cutover.yaml if present), then environment variables, which win.
 * With environment variables alone (no file) every command works.
 *
 * YAML shape (every key optional):
 *
 *   git:    { repo: PATH|URL, branch: main, poll_interval: 30s, fsync: true,
 *             remote_timeout: 3s }   a URL repo's server silent that long:
 *             the fetch or push fails (CO_EUNAVAIL, git_store.h)
 *   etcd:   { endpoints: [http://127.0.0.1:2379], prefix: /, user: u,
 *             password: p, ca_file: F, cert_file: F, key_file: F,
 *             connect_timeout: 1s, request_timeout: 5s }
 *   state_dir: ./.cutover
 *   flags: PATH
 *   listen: 127.0.0.1:7480
 *   admin_token_file: PATH
 *   reconcile: { min_consistency: 0.9999, max_mismatch_ratio: 0.001,
 *                grace: 2s, go_no_go_window: 1h }
 *   router: { mirror_timeout: 250ms }       bound on each call to a secondary
 *   breaker: { failures: 3, probe: 1s, probe_max: 2s }   per store (store.h)
 *   redact: [metadata.auth.key, session, "@defaults"]   what never leaves
 *             the stores (redact.h); absent: the default key patterns
 *   serve:  { swarm_auth: none|token,      $CUTOVER_SWARM_AUTH; default none
 *             reconcile_interval: 5m,       while both stores are written
 *             tls_cert: F, tls_key: F,      PEM files; both or neither (TLS)
 *             request_timeout: 10s,         to receive one whole request
 *             max_connections: 512, max_connections_per_ip: 128,
 *             max_inflight: 128,            requests handled at once (429)
 *             queue_deadline: off }         or wait for a slot that long, then
 *                                           503 ($CUTOVER_QUEUE_DEADLINE)
 *   triggers: { enabled: true, window: 60s, min_samples: 50, error_rate: 0.05,
 *               latency_ratio: 2, health_grace: 10s, outbox_age: 120s }
 *             live-signal automatic rollback (router/triggers.h)
 *   shadow: { sample: 100, sample_by_op: { task_list: 10 },
 *             ignore: ["$.updated_at", metadata.build.host] }
 *             shadow reads compared (percent) and fields that may differ
 *             (shadow.h)
 *   fleet:  { enabled: false, prefix: /cutover/, id: NAME, ttl: 3s,
 *             admin_url: http://host:port }
 *             a router fleet through etcd (router/fleet.h): the flags at
 *             <prefix>flags, each router under <prefix>routers/<id>
 *   webhooks:                              signed event POSTs (webhook.h)
 *     - url: https://hooks.example/cutover  http:// or https:// only
 *       secret_file: /etc/cutover/hook.key   or secret: TEXT (one of both)
 *       events: [kill_switch.tripped, stage.changed]   optional: all
 *
 * Durations accept "250ms", "2s", "5m", "1h" or a bare number of seconds.
 */
#ifndef CO_CONFIG_H
#define CO_CONFIG_H

#include "redact.h"
#include "shadow.h"

#include <stddef.h>

/* serve.swarm_auth: who may write on the data plane of `cutover serve`. */
typedef enum {
	CO_SWARM_AUTH_NONE = 0, /* anyone who reaches the port (the default) */
	CO_SWARM_AUTH_TOKEN = 1 /* a swarm's bearer token (tokens.h) */
} co_swarm_auth;

/*
 * triggers: thresholds of the live-signal kill-switch triggers
 * (router/triggers.h), evaluated once a second by every long-lived router.
 */
typedef struct co_trigger_cfg {
	int enabled;	      /* triggers.enabled (true) */
	int window_ms;	      /* triggers.window: sliding window (60 s) */
	int min_samples;      /* triggers.min_samples: etcd ops in it (50) */
	double error_rate;    /* triggers.error_rate: etcd-path failures (0.05) */
	double latency_ratio; /* triggers.latency_ratio: etcd p95 / git p95 (2) */
	int health_grace_ms;  /* triggers.health_grace: etcd unhealthy (10 s) */
	int outbox_age_ms;    /* triggers.outbox_age: oldest owed entry (120 s) */
} co_trigger_cfg;

#define CO_TRIGGER_CFG_INIT                                                              \
	{                                                                                \
		1, 60000, 50, 0.05, 2.0, 10000, 120000                                   \
	}
/* One entry of `webhooks:` (webhook.h). */
typedef struct co_config_webhook {
	char *url;	 /* checked: http(s), parseable, with a host */
	char *secret;	 /* HMAC key: `secret`, or the contents of `secret_file` */
	unsigned events; /* CO_WEBHOOK_EV_* bits; 0: every event */
} co_config_webhook;

typedef struct co_config {
	char *path; /* the file read, or NULL */

	char *git_repo;
	char *git_branch;
	int git_poll_interval_ms;
	int git_fsync;
	int git_remote_timeout_ms; /* git.remote_timeout, $CUTOVER_GIT_REMOTE_TIMEOUT */

	char **etcd_endpoints;
	size_t n_etcd_endpoints;
	char *etcd_prefix;
	char *etcd_user;
	char *etcd_password;
	char *etcd_ca_file;
	char *etcd_cert_file;
	char *etcd_key_file;
	int etcd_connect_timeout_ms;
	int etcd_request_timeout_ms;

	char *state_dir;
	char *flags_path; /* default <state_dir>/flags.yaml */
	char *listen;
	char *admin_token_file;

	double reconcile_min_consistency;
	double reconcile_max_mismatch_ratio;
	int reconcile_grace_ms;
	int go_no_go_window_ms;

	/* gate.*: the go/no-go gate's pre-switch bounds (flags/gate.h, rule 4) */
	int gate_outbox_max_depth;	  /* entries owed to one store */
	int gate_outbox_max_age_ms;	  /* age of the oldest owed entry */
	double gate_max_shadow_mismatch_ratio; /* shadow reads that disagree */

	int mirror_timeout_ms;	  /* router.mirror_timeout, $CUTOVER_MIRROR_TIMEOUT */
	int breaker_failures;	  /* breaker.failures: in a row, to open */
	int breaker_probe_ms;	  /* breaker.probe: first wait before a probe */
	int breaker_probe_max_ms; /* breaker.probe_max: longest wait */

	/* redact: the compiled policy (redact.h), never NULL after a load;
	 * owned by the config, immutable, shared by every writer. */
	co_redact *redact;
	co_swarm_auth swarm_auth; /* serve.swarm_auth, $CUTOVER_SWARM_AUTH */
	co_trigger_cfg triggers;  /* triggers: (no environment overrides) */
	co_shadow_cfg shadow;	  /* shadow: sampling and ignore rules (shadow.h) */
	/* serve.reconcile_interval: serve reconciles this often while some
	 * operation goes to both stores (default 5m; 0: off) */
	int serve_reconcile_interval_ms;
	/* serve.*: TLS files (NULL: plain HTTP) and the server's limits
	 * (server.h; 0: its default) */
	char *serve_tls_cert;
	char *serve_tls_key;
	int serve_request_timeout_ms;
	int serve_max_connections;
	int serve_max_connections_per_ip;
	int serve_max_inflight;
	int serve_queue_deadline_ms; /* 0: off (429 at once over max_inflight) */

	/* fleet.*: flags in etcd and membership (router/fleet.h); off by default */
	int fleet_enabled;
	char *fleet_prefix;	/* default "/cutover/" */
	char *fleet_id;		/* default "<host>-<pid>" (NULL here) */
	int fleet_ttl_ms;	/* the membership lease (default 3 s) */
	char *fleet_admin_url;	/* what `rollback --fleet` calls (NULL: none) */

	co_config_webhook *webhooks; /* webhooks: (none by default) */
	size_t n_webhooks;
} co_config;

/*
 * Load the configuration.  `path` is the --config value or NULL (then
 * $CUTOVER_CONFIG, then ./cutover.yaml if it exists, else no file).  A file
 * named explicitly must exist.  Errors: CO_EINVAL with "FILE:LINE: key
 * \"k\": what is wrong" for a bad file; CO_EIO if it cannot be read.
 * *out is owned by the caller (co_config_free).
 */
int co_config_load(co_config **out, const char *path);

/* Defaults only, no file or environment (for tests). */
int co_config_defaults(co_config **out);

void co_config_free(co_config *c);

/* "none" or "token" into *out; CO_EINVAL otherwise (no message set). */
int co_config_parse_swarm_auth(co_swarm_auth *out, const char *s);

/* Parse a duration ("250ms", "2s", "5m", "1h", "3"): milliseconds or CO_EINVAL. */
int co_config_parse_duration(int *out_ms, const char *s);

#endif
