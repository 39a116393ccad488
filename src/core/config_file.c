/*
 * config_file.c - cutover.yaml: the document is loaded whole with libyaml's
 * loader, so every node keeps its line; each key is looked up in one table
 * (apply_key) and read by a typed getter (string, bool, duration, count,
 * ratio, percent) whose error names FILE:LINE and the dotted key.
 * Unknown keys are refused with the keys the section knows.
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

/* --- YAML file --- */

/*
 * One key of a mapping section.  `section` is "" for the top level, else
 * "git", "etcd" or "reconcile"; `name` the key; `full` the dotted key.
 */
static int apply_key(file_ctx *fc, const char *section, const char *name,
		     const char *full, const yaml_node_t *k, const yaml_node_t *v);

static int walk_mapping(file_ctx *fc, const yaml_node_t *map, const char *section)
{
	yaml_node_pair_t *pair, *other;

	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
	     pair++) {
		yaml_node_t *k = yaml_document_get_node(fc->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(fc->doc, pair->value);
		char full[256];
		const char *name;
		int error;

		if (k->type != YAML_SCALAR_NODE)
			return co_error_set(
			    CO_EINVAL, "%s:%d: key must be a string, got %s", fc->file,
			    co_config__line_of(k), co_config__node_type_name(k));
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%s%s%s", section, *section ? "." : "",
			 name);
		/* libyaml accepts duplicate keys; the second would silently win. */
		for (other = map->data.mapping.pairs.start; other < pair; other++) {
			yaml_node_t *ok = yaml_document_get_node(fc->doc, other->key);

			if (ok->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)ok->data.scalar.value, name) == 0)
				return co_config__key_error(
				    fc, k, full, "duplicate key (first on line %d)",
				    co_config__line_of(ok));
		}
		if ((error = apply_key(fc, section, name, full, k, v)) < 0)
			return error;
	}
	return 0;
}

/* --- shadow: sampling percents and ignore rules (shadow.h) --- */

static int load_section(file_ctx *fc, const yaml_node_t *v, const char *name)
{
	if (v->type == YAML_SCALAR_NODE && co_config__scalar_is_null(v))
		return 0; /* "git:" with nothing under it */
	if (v->type != YAML_MAPPING_NODE)
		return co_config__key_error(fc, v, name, "expected a mapping, got %s",
					    co_config__node_type_name(v));
	return walk_mapping(fc, v, name);
}

/* For the "unknown key" message: what the operator may have meant. */
static const char *known_keys(const char *sec)
{
	if (strcmp(sec, "git") == 0)
		return "repo, branch, poll_interval, fsync, remote_timeout";
	if (strcmp(sec, "etcd") == 0)
		return "endpoints, prefix, user, password, ca_file, cert_file, key_file, "
		       "connect_timeout, request_timeout";
	if (strcmp(sec, "reconcile") == 0)
		return "min_consistency, max_mismatch_ratio, grace, go_no_go_window";
	if (strcmp(sec, "router") == 0)
		return "mirror_timeout";
	if (strcmp(sec, "gate") == 0)
		return "outbox_max_depth, outbox_max_age, max_shadow_mismatch_ratio";
	if (strcmp(sec, "breaker") == 0)
		return "failures, probe, probe_max";
	if (strcmp(sec, "serve") == 0)
		return "swarm_auth, reconcile_interval, tls_cert, tls_key, "
		       "request_timeout, "
		       "max_connections, max_connections_per_ip, max_inflight, "
		       "queue_deadline";
	if (strcmp(sec, "triggers") == 0)
		return "enabled, window, min_samples, error_rate, latency_ratio, "
		       "health_grace, outbox_age";
	if (strcmp(sec, "shadow") == 0)
		return "sample, sample_by_op, ignore";
	if (strcmp(sec, "fleet") == 0)
		return "enabled, prefix, id, ttl, admin_url";
	return "git, etcd, state_dir, flags, listen, admin_token_file, reconcile, gate, "
	       "router, breaker, serve, redact, triggers, shadow, webhooks, fleet";
}

/* serve.swarm_auth: none | token. */
static int get_swarm_auth(co_swarm_auth *dst, file_ctx *fc, const yaml_node_t *n,
			  const char *key)
{
	const char *s = NULL;
	int error;

	if ((error = co_config__get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	if (co_config_parse_swarm_auth(dst, s) < 0)
		return co_config__key_error(fc, n, key, "\"%s\" is not none or token", s);
	return 0;
}

static int apply_key(file_ctx *fc, const char *sec, const char *name, const char *full,
		     const yaml_node_t *k, const yaml_node_t *v)
{
	co_config *c = fc->c;

	if (*sec == '\0') {
		if (strcmp(name, "git") == 0 || strcmp(name, "etcd") == 0 ||
		    strcmp(name, "reconcile") == 0 || strcmp(name, "router") == 0 ||
		    strcmp(name, "breaker") == 0 || strcmp(name, "serve") == 0 ||
		    strcmp(name, "gate") == 0 || strcmp(name, "triggers") == 0 ||
		    strcmp(name, "shadow") == 0 || strcmp(name, "fleet") == 0)
			return load_section(fc, v, name);
		if (strcmp(name, "state_dir") == 0)
			return co_config__get_string(&c->state_dir, fc, v, full, 0);
		if (strcmp(name, "flags") == 0)
			return co_config__get_string(&c->flags_path, fc, v, full, 1);
		if (strcmp(name, "listen") == 0)
			return co_config__get_string(&c->listen, fc, v, full, 0);
		if (strcmp(name, "admin_token_file") == 0)
			return co_config__get_string(&c->admin_token_file, fc, v, full,
						     1);
		if (strcmp(name, "redact") == 0)
			return co_config__get_redact(fc, v, full);
		if (strcmp(name, "webhooks") == 0)
			return co_config__get_webhooks(fc, v, full);
	} else if (strcmp(sec, "git") == 0) {
		if (strcmp(name, "repo") == 0)
			return co_config__get_string(&c->git_repo, fc, v, full, 1);
		if (strcmp(name, "branch") == 0)
			return co_config__get_string(&c->git_branch, fc, v, full, 0);
		if (strcmp(name, "poll_interval") == 0)
			return co_config__get_duration(&c->git_poll_interval_ms, fc, v,
						       full, 1);
		if (strcmp(name, "fsync") == 0)
			return co_config__get_bool(&c->git_fsync, fc, v, full);
		if (strcmp(name, "remote_timeout") == 0)
			return co_config__get_duration(&c->git_remote_timeout_ms, fc, v,
						       full, 1);
	} else if (strcmp(sec, "etcd") == 0) {
		if (strcmp(name, "endpoints") == 0)
			return co_config__get_endpoints(fc, v, full);
		if (strcmp(name, "prefix") == 0)
			return co_config__get_string(&c->etcd_prefix, fc, v, full, 0);
		if (strcmp(name, "user") == 0)
			return co_config__get_string(&c->etcd_user, fc, v, full, 1);
		if (strcmp(name, "password") == 0)
			return co_config__get_string(&c->etcd_password, fc, v, full, 1);
		if (strcmp(name, "ca_file") == 0)
			return co_config__get_string(&c->etcd_ca_file, fc, v, full, 1);
		if (strcmp(name, "cert_file") == 0)
			return co_config__get_string(&c->etcd_cert_file, fc, v, full, 1);
		if (strcmp(name, "key_file") == 0)
			return co_config__get_string(&c->etcd_key_file, fc, v, full, 1);
		if (strcmp(name, "connect_timeout") == 0)
			return co_config__get_duration(&c->etcd_connect_timeout_ms, fc, v,
						       full, 1);
		if (strcmp(name, "request_timeout") == 0)
			return co_config__get_duration(&c->etcd_request_timeout_ms, fc, v,
						       full, 1);
	} else if (strcmp(sec, "reconcile") == 0) {
		if (strcmp(name, "min_consistency") == 0)
			return co_config__get_ratio(&c->reconcile_min_consistency, fc, v,
						    full);
		if (strcmp(name, "max_mismatch_ratio") == 0)
			return co_config__get_ratio(&c->reconcile_max_mismatch_ratio, fc,
						    v, full);
		if (strcmp(name, "grace") == 0)
			return co_config__get_duration(&c->reconcile_grace_ms, fc, v,
						       full, 0);
		if (strcmp(name, "go_no_go_window") == 0)
			return co_config__get_duration(&c->go_no_go_window_ms, fc, v,
						       full, 1);
	} else if (strcmp(sec, "gate") == 0) {
		if (strcmp(name, "outbox_max_depth") == 0)
			return co_config__get_count(&c->gate_outbox_max_depth, fc, v,
						    full, 100000000);
		if (strcmp(name, "outbox_max_age") == 0)
			return co_config__get_duration(&c->gate_outbox_max_age_ms, fc, v,
						       full, 1);
		if (strcmp(name, "max_shadow_mismatch_ratio") == 0)
			return co_config__get_ratio(&c->gate_max_shadow_mismatch_ratio,
						    fc, v, full);
	} else if (strcmp(sec, "fleet") == 0) {
		if (strcmp(name, "enabled") == 0)
			return co_config__get_bool(&c->fleet_enabled, fc, v, full);
		if (strcmp(name, "prefix") == 0)
			return co_config__get_string(&c->fleet_prefix, fc, v, full, 0);
		if (strcmp(name, "id") == 0)
			return co_config__get_string(&c->fleet_id, fc, v, full, 1);
		if (strcmp(name, "ttl") == 0)
			return co_config__get_duration(&c->fleet_ttl_ms, fc, v, full, 1);
		if (strcmp(name, "admin_url") == 0)
			return co_config__get_string(&c->fleet_admin_url, fc, v, full, 1);
	} else if (strcmp(sec, "router") == 0) {
		if (strcmp(name, "mirror_timeout") == 0)
			return co_config__get_duration(&c->mirror_timeout_ms, fc, v, full,
						       1);
	} else if (strcmp(sec, "breaker") == 0) {
		if (strcmp(name, "failures") == 0)
			return co_config__get_count(&c->breaker_failures, fc, v, full,
						    1000);
		if (strcmp(name, "probe") == 0)
			return co_config__get_duration(&c->breaker_probe_ms, fc, v, full,
						       1);
		if (strcmp(name, "probe_max") == 0)
			return co_config__get_duration(&c->breaker_probe_max_ms, fc, v,
						       full, 1);
	} else if (strcmp(sec, "serve") == 0) {
		if (strcmp(name, "swarm_auth") == 0)
			return get_swarm_auth(&c->swarm_auth, fc, v, full);
		if (strcmp(name, "reconcile_interval") == 0)
			return co_config__get_duration(&c->serve_reconcile_interval_ms,
						       fc, v, full, 0);
		if (strcmp(name, "tls_cert") == 0)
			return co_config__get_string(&c->serve_tls_cert, fc, v, full, 1);
		if (strcmp(name, "tls_key") == 0)
			return co_config__get_string(&c->serve_tls_key, fc, v, full, 1);
		if (strcmp(name, "request_timeout") == 0)
			return co_config__get_duration(&c->serve_request_timeout_ms, fc,
						       v, full, 1);
		if (strcmp(name, "max_connections") == 0)
			return co_config__get_count(&c->serve_max_connections, fc, v,
						    full, 65536);
		if (strcmp(name, "max_connections_per_ip") == 0)
			return co_config__get_count(&c->serve_max_connections_per_ip, fc,
						    v, full, 65536);
		if (strcmp(name, "max_inflight") == 0)
			return co_config__get_count(&c->serve_max_inflight, fc, v, full,
						    65536);
		if (strcmp(name, "queue_deadline") == 0)
			return co_config__get_duration(&c->serve_queue_deadline_ms, fc, v,
						       full, 0);
	} else if (strcmp(sec, "triggers") == 0) {
		co_trigger_cfg *t = &c->triggers;

		if (strcmp(name, "enabled") == 0)
			return co_config__get_bool(&t->enabled, fc, v, full);
		if (strcmp(name, "window") == 0)
			return co_config__get_window(&t->window_ms, fc, v, full);
		if (strcmp(name, "min_samples") == 0)
			return co_config__get_count(&t->min_samples, fc, v, full,
						    1000000);
		if (strcmp(name, "error_rate") == 0)
			return co_config__get_number(&t->error_rate, fc, v, full, 0.0,
						     1.0);
		if (strcmp(name, "latency_ratio") == 0)
			return co_config__get_number(&t->latency_ratio, fc, v, full, 1.0,
						     1000.0);
		if (strcmp(name, "health_grace") == 0)
			return co_config__get_duration(&t->health_grace_ms, fc, v, full,
						       1);
		if (strcmp(name, "outbox_age") == 0)
			return co_config__get_duration(&t->outbox_age_ms, fc, v, full, 1);
	} else if (strcmp(sec, "shadow") == 0) {
		if (strcmp(name, "sample") == 0)
			return co_config__get_percent(&c->shadow.sample, fc, v, full);
		if (strcmp(name, "sample_by_op") == 0)
			return co_config__get_sample_by_op(fc, v, full);
		if (strcmp(name, "ignore") == 0)
			return co_config__get_shadow_ignore(fc, v, full);
	}
	return co_config__key_error(fc, k, full, "unknown key (known here: %s)",
				    known_keys(sec));
}

int co_config__load_file(co_config *c, const char *path)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	int have_parser = 0, have_doc = 0, error = 0;
	yaml_node_t *root;
	file_ctx fc;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		/* A missing file that was named explicitly is an operator's
		 * typo: bad input, not an I/O failure. */
		if (errno == ENOENT)
			return co_error_set(CO_EINVAL, "%s: no such config file", path);
		return co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	}
	if (!yaml_parser_initialize(&parser)) {
		error = co_error_set(CO_ENOMEM, "config: out of memory");
		goto done;
	}
	have_parser = 1;
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		/* Copy libyaml's problem now: the parser is deleted below. */
		error = co_error_set(CO_EINVAL, "%s:%d: malformed YAML: %s%s%s", path,
				     (int)parser.problem_mark.line + 1,
				     parser.problem ? parser.problem : "parse error",
				     parser.context ? " " : "",
				     parser.context ? parser.context : "");
		goto done;
	}
	have_doc = 1;
	if (ferror(f)) {
		error = co_error_set(CO_EIO, "%s: read error", path);
		goto done;
	}
	fc.doc = &doc;
	fc.file = path;
	fc.c = c;
	root = yaml_document_get_root_node(&doc);
	if (root == NULL ||
	    (root->type == YAML_SCALAR_NODE && co_config__scalar_is_null(root)))
		goto done; /* an empty file: defaults */
	if (root->type != YAML_MAPPING_NODE) {
		error = co_error_set(
		    CO_EINVAL, "%s:%d: expected a mapping at the top, got %s", path,
		    co_config__line_of(root), co_config__node_type_name(root));
		goto done;
	}
	if ((error = walk_mapping(&fc, root, "")) < 0)
		goto done;
	error = co_config__set_str(&c->path, path);
done:
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	fclose(f);
	return error;
}
