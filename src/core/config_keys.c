/*
 * config_keys.c - every key of cutover.yaml as data: its section, its
 * name, its type (and the bounds of a number), where its value lives in
 * co_config, and the CUTOVER_* variable that overrides it.  The YAML walk
 * (config_file.c) and the environment (config.c) read this one table; a
 * new key is one line here (and its field and default in config.h and
 * config.c).  The sections with a shape of their own (redact, webhooks,
 * shadow's sample_by_op and ignore) name their reader, in
 * config_sections.c.
 */
#include "config.h"
#include "config_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define AT(field) offsetof(co_config, field)

/* The table's columns, one macro per type of key. */
#define SECTION(sec, name)                                                               \
	{                                                                                \
		sec, name, CO_CONFIG__SECTION, 0, {0, 0, 0}, NULL, NULL                  \
	}
#define STR(sec, name, field, env)                                                       \
	{                                                                                \
		sec, name, CO_CONFIG__STRING, AT(field), {0, 0, 0}, NULL, env            \
	}
#define STR_OPT(sec, name, field, env)                                                   \
	{                                                                                \
		sec, name, CO_CONFIG__STRING_OPT, AT(field), {0, 0, 0}, NULL, env        \
	}
#define BOOL(sec, name, field)                                                           \
	{                                                                                \
		sec, name, CO_CONFIG__BOOL, AT(field), {0, 0, 0}, NULL, NULL             \
	}
#define DUR(sec, name, field, env)                                                       \
	{                                                                                \
		sec, name, CO_CONFIG__DURATION, AT(field), {0, 0, 0}, NULL, env          \
	}
#define DUR_POS(sec, name, field, env)                                                   \
	{                                                                                \
		sec, name, CO_CONFIG__DURATION_POS, AT(field), {0, 0, 0}, NULL, env      \
	}
#define INT(sec, name, field, kind, min, max)                                            \
	{                                                                                \
		sec, name, CO_CONFIG__INT, AT(field), {kind, min, max}, NULL, NULL       \
	}
#define DBL(sec, name, field, kind, min, max)                                            \
	{                                                                                \
		sec, name, CO_CONFIG__DOUBLE, AT(field), {kind, min, max}, NULL, NULL    \
	}
#define SHAPED(sec, name, fn)                                                            \
	{                                                                                \
		sec, name, CO_CONFIG__SHAPED, 0, {0, 0, 0}, fn, NULL                     \
	}

#define COUNT CO_CONFIG__COUNT
#define PERCENT CO_CONFIG__PERCENT
#define RATIO CO_CONFIG__RATIO
#define NUMBER CO_CONFIG__NUMBER

const co_config__key co_config__keys[] = {
    /* the top level */
    SECTION("", "git"),
    SECTION("", "etcd"),
    STR("", "state_dir", state_dir, "CUTOVER_STATE_DIR"),
    STR_OPT("", "flags", flags_path, "CUTOVER_FLAGS"),
    STR("", "listen", listen, "CUTOVER_LISTEN"),
    STR_OPT("", "admin_token_file", admin_token_file, "CUTOVER_ADMIN_TOKEN_FILE"),
    SECTION("", "reconcile"),
    SECTION("", "gate"),
    SECTION("", "router"),
    SECTION("", "breaker"),
    SECTION("", "serve"),
    SHAPED("", "redact", co_config__get_redact),
    SECTION("", "triggers"),
    SECTION("", "shadow"),
    SHAPED("", "webhooks", co_config__get_webhooks),
    SECTION("", "fleet"),

    STR_OPT("git", "repo", git_repo, "CUTOVER_GIT_REPO"),
    STR("git", "branch", git_branch, "CUTOVER_GIT_BRANCH"),
    DUR_POS("git", "poll_interval", git_poll_interval_ms, "CUTOVER_GIT_POLL_INTERVAL"),
    BOOL("git", "fsync", git_fsync),
    DUR_POS("git", "remote_timeout", git_remote_timeout_ms, "CUTOVER_GIT_REMOTE_TIMEOUT"),

    {"etcd",
     "endpoints",
     CO_CONFIG__ENDPOINTS,
     0,
     {0, 0, 0},
     NULL,
     "CUTOVER_ETCD_ENDPOINTS"},
    STR("etcd", "prefix", etcd_prefix, "CUTOVER_ETCD_PREFIX"),
    STR_OPT("etcd", "user", etcd_user, "CUTOVER_ETCD_USER"),
    STR_OPT("etcd", "password", etcd_password, "CUTOVER_ETCD_PASSWORD"),
    STR_OPT("etcd", "ca_file", etcd_ca_file, NULL),
    STR_OPT("etcd", "cert_file", etcd_cert_file, NULL),
    STR_OPT("etcd", "key_file", etcd_key_file, NULL),
    DUR_POS("etcd", "connect_timeout", etcd_connect_timeout_ms,
	    "CUTOVER_ETCD_CONNECT_TIMEOUT"),
    DUR_POS("etcd", "request_timeout", etcd_request_timeout_ms,
	    "CUTOVER_ETCD_REQUEST_TIMEOUT"),

    DBL("reconcile", "min_consistency", reconcile_min_consistency, RATIO, 0, 1),
    DBL("reconcile", "max_mismatch_ratio", reconcile_max_mismatch_ratio, RATIO, 0, 1),
    DUR("reconcile", "grace", reconcile_grace_ms, NULL),
    DUR_POS("reconcile", "go_no_go_window", go_no_go_window_ms, NULL),

    DUR_POS("router", "mirror_timeout", mirror_timeout_ms, "CUTOVER_MIRROR_TIMEOUT"),

    INT("gate", "outbox_max_depth", gate_outbox_max_depth, COUNT, 1, 100000000),
    DUR_POS("gate", "outbox_max_age", gate_outbox_max_age_ms, NULL),
    DBL("gate", "max_shadow_mismatch_ratio", gate_max_shadow_mismatch_ratio, RATIO, 0, 1),

    INT("breaker", "failures", breaker_failures, COUNT, 1, 1000),
    DUR_POS("breaker", "probe", breaker_probe_ms, NULL),
    DUR_POS("breaker", "probe_max", breaker_probe_max_ms, NULL),

    {"serve",
     "swarm_auth",
     CO_CONFIG__SWARM_AUTH,
     AT(swarm_auth),
     {0, 0, 0},
     NULL,
     "CUTOVER_SWARM_AUTH"},
    DUR("serve", "reconcile_interval", serve_reconcile_interval_ms,
	"CUTOVER_RECONCILE_INTERVAL"),
    STR_OPT("serve", "tls_cert", serve_tls_cert, NULL),
    STR_OPT("serve", "tls_key", serve_tls_key, NULL),
    DUR_POS("serve", "request_timeout", serve_request_timeout_ms, NULL),
    INT("serve", "max_connections", serve_max_connections, COUNT, 1, 65536),
    INT("serve", "max_connections_per_ip", serve_max_connections_per_ip, COUNT, 1, 65536),
    INT("serve", "max_inflight", serve_max_inflight, COUNT, 1, 65536),
    DUR("serve", "queue_deadline", serve_queue_deadline_ms, "CUTOVER_QUEUE_DEADLINE"),

    BOOL("triggers", "enabled", triggers.enabled),
    {"triggers",
     "window",
     CO_CONFIG__WINDOW,
     AT(triggers.window_ms),
     {0, 0, 0},
     NULL,
     NULL},
    INT("triggers", "min_samples", triggers.min_samples, COUNT, 1, 1000000),
    DBL("triggers", "error_rate", triggers.error_rate, NUMBER, 0, 1),
    DBL("triggers", "latency_ratio", triggers.latency_ratio, NUMBER, 1, 1000),
    DUR_POS("triggers", "health_grace", triggers.health_grace_ms, NULL),
    DUR_POS("triggers", "outbox_age", triggers.outbox_age_ms, NULL),

    INT("shadow", "sample", shadow.sample, PERCENT, 0, 100),
    SHAPED("shadow", "sample_by_op", co_config__get_sample_by_op),
    SHAPED("shadow", "ignore", co_config__get_shadow_ignore),

    BOOL("fleet", "enabled", fleet_enabled),
    STR("fleet", "prefix", fleet_prefix, NULL),
    STR_OPT("fleet", "id", fleet_id, NULL),
    DUR_POS("fleet", "ttl", fleet_ttl_ms, NULL),
    STR_OPT("fleet", "admin_url", fleet_admin_url, NULL),

    {NULL, NULL, CO_CONFIG__SECTION, 0, {0, 0, 0}, NULL, NULL},
};

const co_config__key *co_config__key_find(const char *section, const char *name)
{
	const co_config__key *k;

	for (k = co_config__keys; k->name; k++)
		if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

void co_config__keys_of(char *out, size_t len, const char *section)
{
	const co_config__key *k;
	size_t used = 0;
	int n;

	if (len == 0)
		return;
	out[0] = '\0';
	for (k = co_config__keys; k->name; k++) {
		if (strcmp(k->section, section) != 0)
			continue;
		n = snprintf(out + used, len - used, "%s%s", used ? ", " : "", k->name);
		if (n < 0 || (size_t)n >= len - used)
			return; /* cut: the message stays a message */
		used += (size_t)n;
	}
}
