/*
 * config.c - cutover.yaml and the CUTOVER_* environment (DESIGN §7).
 *
 * Three layers, each overriding the one before: built-in defaults, the YAML
 * file, then environment variables.  The file is read with libyaml's
 * document loader rather than its event stream: every node keeps its start
 * mark, so an error can name the file, the line and the dotted key
 * ("cutover.yaml:7: key \"git.poll_interval\": bad duration \"5x\"") - what
 * an operator needs to fix a file at once.  Unknown keys are refused, not
 * ignored: a misspelt "etcd_endpoint" silently falling back to the default
 * would point a migration at the wrong cluster.
 *
 * This module only reads configuration.  It does not check that the repo
 * or the endpoints answer (the stores do), nor resolve relative paths: they
 * are relative to the working directory, as on the command line.  The
 * YAML file is read in config_file.c, its shaped sections in
 * config_sections.c; every key, with the variable that overrides it, is a
 * line of the table in config_keys.c (config_internal.h says what they
 * share).
 */
#include "config.h"
#include "config_internal.h"

#include "error.h"
#include "webhook.h"

#include <yaml.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_STATE_DIR "./.cutover"
#define FLAGS_FILE "flags.yaml"

void co_config_free(co_config *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->git_repo);
	free(c->git_branch);
	co_config__free_endpoints(c);
	free(c->etcd_prefix);
	free(c->etcd_user);
	free(c->etcd_password);
	free(c->etcd_ca_file);
	free(c->etcd_cert_file);
	free(c->etcd_key_file);
	free(c->state_dir);
	free(c->flags_path);
	free(c->listen);
	free(c->admin_token_file);
	free(c->serve_tls_cert);
	free(c->serve_tls_key);
	free(c->fleet_prefix);
	free(c->fleet_id);
	free(c->fleet_admin_url);
	co_redact_free(c->redact);
	co_shadow_cfg_clear(&c->shadow);
	co_config__free_webhooks(c->webhooks, c->n_webhooks);
	free(c);
}

int co_config_defaults(co_config **out)
{
	co_config *c;
	int error = 0;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	c->git_poll_interval_ms = 30000;
	c->git_fsync = 1;
	c->git_remote_timeout_ms = 3000;
	c->etcd_connect_timeout_ms = 1000;
	c->etcd_request_timeout_ms = 5000;
	c->reconcile_min_consistency = 0.9999;
	c->reconcile_max_mismatch_ratio = 0.001;
	c->reconcile_grace_ms = 2000;
	c->go_no_go_window_ms = 3600 * 1000;
	c->mirror_timeout_ms = 250;
	c->serve_reconcile_interval_ms = 5 * 60 * 1000;
	c->gate_outbox_max_depth = 1000;
	c->gate_outbox_max_age_ms = 120 * 1000;
	c->gate_max_shadow_mismatch_ratio = 0.01;
	c->breaker_failures = 3;
	c->fleet_ttl_ms = 3000;
	c->breaker_probe_ms = 1000;
	c->breaker_probe_max_ms = 2000;
	c->triggers = (co_trigger_cfg)CO_TRIGGER_CFG_INIT;
	co_shadow_cfg_init(&c->shadow);
	if ((error = co_config__set_str(&c->git_branch, "main")) < 0 ||
	    (error = co_config__set_str(&c->etcd_prefix, "/")) < 0 ||
	    (error = co_config__set_str(&c->state_dir, DEFAULT_STATE_DIR)) < 0 ||
	    (error = co_config__set_str(&c->flags_path,
					DEFAULT_STATE_DIR "/" FLAGS_FILE)) < 0 ||
	    (error = co_config__set_str(&c->listen, "127.0.0.1:7480")) < 0 ||
	    (error = co_config__set_str(&c->fleet_prefix, "/cutover/")) < 0 ||
	    (error = co_redact_default(&c->redact)) < 0)
		goto done;
	if ((error = co_config__push_endpoint(&c->etcd_endpoints, &c->n_etcd_endpoints,
					      "http://127.0.0.1:2379", 21)) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	co_config_free(c);
	return error;
}

/* --- environment --- */

/* An environment variable, with "" treated as unset. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int env_string(char **dst, const char *name)
{
	const char *v = env(name);

	return v ? co_config__set_str(dst, v) : 0;
}

static int env_duration(int *dst, const char *name)
{
	const char *v = env(name);
	int ms;

	if (v == NULL)
		return 0;
	if (co_config_parse_duration(&ms, v) < 0 || ms <= 0)
		return co_error_set(CO_EINVAL,
				    "%s: bad duration \"%s\" (use 250ms, 2s, 5m, 1h)",
				    name, v);
	*dst = ms;
	return 0;
}

/* A duration where "0" or "off" turns the thing off (0). */
static int env_interval(int *dst, const char *name)
{
	const char *v = env(name);

	if (v && (strcmp(v, "0") == 0 || strcmp(v, "off") == 0)) {
		*dst = 0;
		return 0;
	}
	return env_duration(dst, name);
}

static int env_endpoints(co_config *c)
{
	const char *v = env("CUTOVER_ETCD_ENDPOINTS"), *p, *comma;
	char **list = NULL;
	size_t n = 0;
	int error = 0;

	if (v == NULL)
		return 0;
	for (p = v;; p = comma + 1) {
		size_t len;

		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		if ((error = co_config__push_endpoint(&list, &n, p, len)) < 0)
			goto done;
		if (!co_config__endpoint_ok(list[n - 1])) {
			error =
			    co_error_set(CO_EINVAL,
					 "CUTOVER_ETCD_ENDPOINTS: endpoint \"%s\" must "
					 "start with http:// or https://",
					 list[n - 1]);
			goto done;
		}
		if (comma == NULL)
			break;
	}
	co_config__take_endpoints(c, list, n);
	list = NULL;
	n = 0;
done:
	co_config__free_strings(list, n);
	return error;
}

/* Every key of the table (config_keys.c) that names a variable, in the
 * table's order: strings as they are, durations as in the file (a key
 * that may be 0 also takes "0" or "off"), the endpoints and swarm_auth
 * by their own rules. */
static int apply_env(co_config *c)
{
	const co_config__key *k;
	void *field;
	int error = 0;

	for (k = co_config__keys; k->name && error == 0; k++) {
		if (k->env == NULL)
			continue;
		field = (char *)c + k->offset;
		switch (k->type) {
		case CO_CONFIG__STRING:
		case CO_CONFIG__STRING_OPT:
			error = env_string(field, k->env);
			break;
		case CO_CONFIG__DURATION:
			error = env_interval(field, k->env);
			break;
		case CO_CONFIG__DURATION_POS:
			error = env_duration(field, k->env);
			break;
		case CO_CONFIG__ENDPOINTS:
			error = env_endpoints(c);
			break;
		case CO_CONFIG__SWARM_AUTH:
			if (env(k->env) && co_config_parse_swarm_auth(field, env(k->env)) < 0)
				error = co_error_set(CO_EINVAL,
						     "%s: \"%s\" is not none or token", k->env,
						     env(k->env));
			break;
		default:
			error = co_error_set(CO_EINVAL, "%s: no reader for this variable",
					     k->env);
			break;
		}
	}
	return error;
}

int co_config_load(co_config **out, const char *path)
{
	co_config *c = NULL;
	int error, flags_given;

	if ((error = co_config_defaults(&c)) < 0)
		return error;
	/* The flags default follows state_dir, wherever that ends up; so
	 * forget the default now and fill it in at the end. */
	free(c->flags_path);
	c->flags_path = NULL;

	if (path == NULL)
		path = env("CUTOVER_CONFIG");
	if (path == NULL && access("cutover.yaml", F_OK) == 0)
		path = "cutover.yaml";
	if (path && (error = co_config__load_file(c, path)) < 0)
		goto done;
	if ((error = apply_env(c)) < 0)
		goto done;

	flags_given = c->flags_path != NULL;
	if (!flags_given) {
		size_t len = strlen(c->state_dir);
		int slash = len > 0 && c->state_dir[len - 1] == '/';

		if ((c->flags_path = malloc(len + sizeof(FLAGS_FILE) + 1)) == NULL) {
			error = co_error_set(CO_ENOMEM, "config: out of memory");
			goto done;
		}
		sprintf(c->flags_path, "%s%s%s", c->state_dir, slash ? "" : "/",
			FLAGS_FILE);
	}
	*out = c;
	c = NULL;
done:
	co_config_free(c);
	return error;
}
