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
 * are relative to the working directory, as on the command line.  Only this
 * file includes yaml.h.
 */
#include "config.h"

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

static int set_str(char **dst, const char *s)
{
	char *copy = NULL;

	if (s && (copy = strdup(s)) == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	free(*dst);
	*dst = copy;
	return 0;
}

static void free_endpoints(co_config *c)
{
	size_t i;

	for (i = 0; i < c->n_etcd_endpoints; i++)
		free(c->etcd_endpoints[i]);
	free(c->etcd_endpoints);
	c->etcd_endpoints = NULL;
	c->n_etcd_endpoints = 0;
}

static void free_webhooks(co_config_webhook *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(w[i].url);
		if (w[i].secret)
			memset(w[i].secret, 0, strlen(w[i].secret));
		free(w[i].secret);
	}
	free(w);
}

void co_config_free(co_config *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->git_repo);
	free(c->git_branch);
	free_endpoints(c);
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
	free_webhooks(c->webhooks, c->n_webhooks);
	free(c);
}

/* Append one endpoint to a list being built; the caller swaps it in. */
static int push_endpoint(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv;
	char *copy;

	if ((copy = strndup(s, len)) == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	if ((nv = realloc(*v, (*n + 1) * sizeof(*nv))) == NULL) {
		free(copy);
		return co_error_set(CO_ENOMEM, "config: out of memory");
	}
	nv[(*n)++] = copy;
	*v = nv;
	return 0;
}

static void free_strings(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Replace the endpoint list of c with v (taken). */
static void take_endpoints(co_config *c, char **v, size_t n)
{
	free_endpoints(c);
	c->etcd_endpoints = v;
	c->n_etcd_endpoints = n;
}

/* 1 if s looks like an endpoint the etcd store can talk to. */
static int endpoint_ok(const char *s)
{
	if (strncmp(s, "http://", 7) == 0)
		return s[7] != '\0';
	if (strncmp(s, "https://", 8) == 0)
		return s[8] != '\0';
	return 0;
}

int co_config_defaults(co_config **out)
{
	co_config *c;
	int error = 0;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	c->git_poll_interval_ms = 30000;
	c->git_fsync = 1;
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
	if ((error = set_str(&c->git_branch, "main")) < 0 ||
	    (error = set_str(&c->etcd_prefix, "/")) < 0 ||
	    (error = set_str(&c->state_dir, DEFAULT_STATE_DIR)) < 0 ||
	    (error = set_str(&c->flags_path, DEFAULT_STATE_DIR "/" FLAGS_FILE)) < 0 ||
	    (error = set_str(&c->listen, "127.0.0.1:7480")) < 0 ||
	    (error = set_str(&c->fleet_prefix, "/cutover/")) < 0 ||
	    (error = co_redact_default(&c->redact)) < 0)
		goto done;
	if ((error = push_endpoint(&c->etcd_endpoints, &c->n_etcd_endpoints,
				   "http://127.0.0.1:2379", 21)) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	co_config_free(c);
	return error;
}

int co_config_parse_swarm_auth(co_swarm_auth *out, const char *s)
{
	if (strcmp(s, "none") == 0)
		*out = CO_SWARM_AUTH_NONE;
	else if (strcmp(s, "token") == 0)
		*out = CO_SWARM_AUTH_TOKEN;
	else
		return CO_EINVAL;
	return 0;
}

int co_config_parse_duration(int *out_ms, const char *s)
{
	const char *p;
	char *end;
	double v, scale;

	if (s == NULL || *s == '\0')
		return co_error_set(CO_EINVAL, "empty duration");
	/* strtod would accept "inf", "nan", hex and leading blanks: insist on
	 * a plain decimal number first. */
	for (p = s; (*p >= '0' && *p <= '9') || *p == '.'; p++)
		;
	if (p == s)
		return co_error_set(CO_EINVAL,
				    "bad duration \"%s\" (use 250ms, 2s, 5m, 1h)", s);
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end != p)
		return co_error_set(CO_EINVAL,
				    "bad duration \"%s\" (use 250ms, 2s, 5m, 1h)", s);
	if (strcmp(p, "") == 0 || strcmp(p, "s") == 0)
		scale = 1000.0;
	else if (strcmp(p, "ms") == 0)
		scale = 1.0;
	else if (strcmp(p, "m") == 0)
		scale = 60000.0;
	else if (strcmp(p, "h") == 0)
		scale = 3600000.0;
	else
		return co_error_set(CO_EINVAL,
				    "bad duration \"%s\" (use 250ms, 2s, 5m, 1h)", s);
	v *= scale;
	if (!isfinite(v) || v > (double)INT_MAX)
		return co_error_set(CO_EINVAL, "duration \"%s\" is too long", s);
	*out_ms = (int)llround(v);
	return 0;
}

/* --- YAML file --- */

typedef struct file_ctx {
	yaml_document_t *doc;
	const char *file;
	co_config *c;
} file_ctx;

static int line_of(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

/* The standard error of this module: FILE:LINE: key "k": what. */
static int key_error(file_ctx *fc, const yaml_node_t *n, const char *key, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));

static int key_error(file_ctx *fc, const yaml_node_t *n, const char *key, const char *fmt,
		     ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return co_error_set(CO_EINVAL, "%s:%d: key \"%s\": %s", fc->file, line_of(n), key,
			    what);
}

static const char *node_type_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

/* A plain (unquoted) ~, null or empty scalar: YAML's null. */
static int scalar_is_null(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/*
 * The text of a scalar.  `optional` strings may be null (returned as NULL);
 * others must be a non-empty scalar.
 */
static int get_scalar(const char **out, file_ctx *fc, const yaml_node_t *n,
		      const char *key, int optional)
{
	if (n->type != YAML_SCALAR_NODE)
		return key_error(fc, n, key, "expected a string, got %s",
				 node_type_name(n));
	if (scalar_is_null(n)) {
		if (!optional)
			return key_error(fc, n, key, "must not be empty");
		*out = NULL;
		return 0;
	}
	if (memchr(n->data.scalar.value, '\0', n->data.scalar.length) != NULL)
		return key_error(fc, n, key, "contains a NUL byte");
	*out = (const char *)n->data.scalar.value;
	return 0;
}

static int get_string(char **dst, file_ctx *fc, const yaml_node_t *n, const char *key,
		      int optional)
{
	const char *s = NULL;
	int error;

	if ((error = get_scalar(&s, fc, n, key, optional)) < 0)
		return error;
	return set_str(dst, s);
}

static int get_bool(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes",
					  "Yes",  "on",	  "On"};
	static const char *const no[] = {"false", "False", "FALSE", "no",
					 "No",	  "off",   "Off"};
	const char *s = NULL;
	size_t i;
	int error;

	if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*dst = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*dst = 0;
			return 0;
		}
	}
	return key_error(fc, n, key, "expected true or false, got \"%s\"", s);
}

/* A duration; `positive` refuses zero. */
static int get_duration(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key,
			int positive)
{
	const char *s = NULL;
	int error, ms;

	if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	if (co_config_parse_duration(&ms, s) < 0)
		return key_error(fc, n, key, "%s", co_error_last());
	if (positive && ms <= 0)
		return key_error(fc, n, key, "duration \"%s\" must be more than 0", s);
	*dst = ms;
	return 0;
}

/* A whole number from 1 to max. */
static int get_count(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key,
		     int max)
{
	const char *s = NULL;
	char *end;
	long v;
	int error;

	if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == ' ')
		return key_error(fc, n, key, "bad whole number \"%s\"", s);
	if (v < 1 || v > max)
		return key_error(fc, n, key, "%s is out of range: must be from 1 to %d", s,
				 max);
	*dst = (int)v;
	return 0;
}

/* A ratio between 0 and 1 inclusive. */
static int get_ratio(double *dst, file_ctx *fc, const yaml_node_t *n, const char *key)
{
	const char *s = NULL;
	char *end;
	double v;
	int error;

	if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || s[0] == ' ')
		return key_error(fc, n, key, "bad number \"%s\"", s);
	if (v < 0.0 || v > 1.0)
		return key_error(fc, n, key,
				 "%s is out of range: must be between 0 and 1", s);
	*dst = v;
	return 0;
}

static int check_endpoint(file_ctx *fc, const yaml_node_t *n, const char *key,
			  const char *s)
{
	if (!endpoint_ok(s))
		return key_error(
		    fc, n, key, "endpoint \"%s\" must start with http:// or https://", s);
	return 0;
}

/* etcd.endpoints: a list of URLs, or one string (comma-separated). */
static int get_endpoints(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	char **v = NULL;
	size_t nv = 0;
	int error = 0;

	if (n->type == YAML_SEQUENCE_NODE) {
		yaml_node_item_t *it;

		for (it = n->data.sequence.items.start; it < n->data.sequence.items.top;
		     it++) {
			yaml_node_t *item = yaml_document_get_node(fc->doc, *it);
			const char *s = NULL;

			if ((error = get_scalar(&s, fc, item, key, 0)) < 0 ||
			    (error = check_endpoint(fc, item, key, s)) < 0 ||
			    (error = push_endpoint(&v, &nv, s, strlen(s))) < 0)
				goto done;
		}
	} else {
		const char *s, *p, *comma;

		if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
			goto done;
		for (p = s;; p = comma + 1) {
			char one[1024];
			size_t len;

			comma = strchr(p, ',');
			len = comma ? (size_t)(comma - p) : strlen(p);
			if (len >= sizeof(one)) {
				error = key_error(fc, n, key, "endpoint too long");
				goto done;
			}
			memcpy(one, p, len);
			one[len] = '\0';
			if ((error = check_endpoint(fc, n, key, one)) < 0 ||
			    (error = push_endpoint(&v, &nv, one, len)) < 0)
				goto done;
			if (comma == NULL)
				break;
		}
	}
	if (nv == 0) {
		error = key_error(fc, n, key, "needs at least one endpoint");
		goto done;
	}
	take_endpoints(fc->c, v, nv);
	v = NULL;
	nv = 0;
done:
	free_strings(v, nv);
	return error;
}

/* redact: paths and key-name patterns (redact.h), replacing the defaults;
 * refused whole if one entry is bad: a half-loaded list would leak. */
static int get_redact(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	yaml_node_item_t *it = n->data.sequence.items.start;
	const char **v = NULL;
	co_redact *rd = NULL;
	size_t nv = 0;
	int error = 0;

	if (n->type == YAML_SCALAR_NODE && scalar_is_null(n))
		return 0; /* "redact:" with nothing under it: the defaults */
	if (n->type != YAML_SEQUENCE_NODE)
		return key_error(fc, n, key,
				 "expected a list of paths and key-name patterns, got %s",
				 node_type_name(n));
	v = calloc((size_t)(n->data.sequence.items.top - it) + 1, sizeof(*v));
	if (v == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	for (; error == 0 && it < n->data.sequence.items.top; it++, nv++) {
		yaml_node_t *item = yaml_document_get_node(fc->doc, *it);

		/* Each entry alone first, so that an error names its line. */
		if ((error = get_scalar(&v[nv], fc, item, key, 0)) == 0 &&
		    (error = co_redact_new(&rd, &v[nv], 1, 0)) < 0)
			error = key_error(fc, item, key, "%s", co_error_last() + 8);
		co_redact_free(rd); /* messages start "redact: " (redact.h) */
		rd = NULL;
	}
	if (error == 0 && (error = co_redact_new(&rd, v, nv, 0)) == 0) {
		co_redact_free(fc->c->redact);
		fc->c->redact = rd;
	}
	free(v);
	return error;
}

/* --- webhooks: a list of {url, secret | secret_file, events} --- */

/* The key in `path`, trailing white space cut; refused if empty. */
static int read_secret_file(char **out, file_ctx *fc, const yaml_node_t *n,
			    const char *key, const char *path)
{
	char buf[4097];
	size_t len;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return key_error(fc, n, key, "cannot read \"%s\": %s", path,
				 strerror(errno));
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	while (len > 0 && strchr(" \t\r\n", buf[len - 1]))
		buf[--len] = '\0';
	if (len == 0 || strlen(buf) != len)
		return key_error(fc, n, key, "\"%s\" holds no key (empty, or a NUL byte)",
				 path);
	*out = strdup(buf);
	memset(buf, 0, sizeof(buf));
	return *out ? 0 : co_error_set(CO_ENOMEM, "config: out of memory");
}

/* events: a list of names (or one name); 0 bits would mean "all". */
static int get_webhook_events(unsigned *out, file_ctx *fc, const yaml_node_t *n,
			      const char *key)
{
	yaml_node_item_t *it;
	const char *s = NULL;
	unsigned bit;
	int error;

	*out = 0;
	if (n->type == YAML_SCALAR_NODE) {
		if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
			return error;
		if ((*out = co_webhook_event_bit(s)) == 0)
			return key_error(fc, n, key, "unknown event \"%s\" (%s)", s,
					 CO_WEBHOOK_EVENTS);
		return 0;
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return key_error(fc, n, key, "expected a list of events, got %s",
				 node_type_name(n));
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(fc->doc, *it);

		if ((error = get_scalar(&s, fc, item, key, 0)) < 0)
			return error;
		if ((bit = co_webhook_event_bit(s)) == 0)
			return key_error(fc, item, key, "unknown event \"%s\" (%s)", s,
					 CO_WEBHOOK_EVENTS);
		*out |= bit;
	}
	if (*out == 0)
		return key_error(fc, n, key, "empty list: leave events out for all");
	return 0;
}

/* One entry of webhooks: into *w (zeroed by the caller; freed by it). */
static int get_webhook(co_config_webhook *w, file_ctx *fc, const yaml_node_t *map,
		       size_t idx)
{
	yaml_node_pair_t *p;
	const yaml_node_t *secret_node = NULL;
	char key[64], why[512];
	const char *secret = NULL, *secret_file = NULL;
	int error;

	snprintf(key, sizeof(key), "webhooks[%zu]", idx);
	if (map->type != YAML_MAPPING_NODE)
		return key_error(fc, map, key,
				 "expected a mapping {url, secret_file, "
				 "events}, got %s",
				 node_type_name(map));
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(fc->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(fc->doc, p->value);
		const char *name =
		    k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
		char full[128];

		snprintf(full, sizeof(full), "%s.%s", key, name);
		if (strcmp(name, "url") == 0) {
			if ((error = get_string(&w->url, fc, v, full, 0)) < 0)
				return error;
			if (co_webhook_url_check(why, sizeof(why), w->url) < 0)
				return key_error(fc, v, full, "%s", why);
		} else if (strcmp(name, "secret") == 0) {
			if ((error = get_scalar(&secret, fc, v, full, 0)) < 0)
				return error;
			secret_node = v;
		} else if (strcmp(name, "secret_file") == 0) {
			if ((error = get_scalar(&secret_file, fc, v, full, 0)) < 0)
				return error;
			secret_node = v;
		} else if (strcmp(name, "events") == 0) {
			if ((error = get_webhook_events(&w->events, fc, v, full)) < 0)
				return error;
		} else {
			return key_error(fc, k, full,
					 "unknown key (known here: url, secret, "
					 "secret_file, events)");
		}
	}
	if (w->url == NULL)
		return key_error(fc, map, key, "needs a url");
	if (secret && secret_file)
		return key_error(fc, secret_node, key,
				 "give secret or secret_file, not both");
	if (secret == NULL && secret_file == NULL)
		return key_error(fc, map, key,
				 "needs a secret_file (or secret) to sign its events");
	snprintf(key + strlen(key), sizeof(key) - strlen(key), ".secret%s",
		 secret_file ? "_file" : "");
	if (secret_file)
		return read_secret_file(&w->secret, fc, secret_node, key, secret_file);
	return set_str(&w->secret, secret);
}

/* webhooks: refused whole if one entry is bad. */
static int get_webhooks(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	yaml_node_item_t *it;
	co_config_webhook *w;
	size_t nw, i = 0;
	int error = 0;

	if (n->type == YAML_SCALAR_NODE && scalar_is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return key_error(fc, n, key,
				 "expected a list of {url, secret_file, events}, "
				 "got %s",
				 node_type_name(n));
	nw = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (nw == 0)
		return 0;
	if ((w = calloc(nw, sizeof(*w))) == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	for (it = n->data.sequence.items.start;
	     error == 0 && it < n->data.sequence.items.top; it++, i++)
		error = get_webhook(&w[i], fc, yaml_document_get_node(fc->doc, *it), i);
	if (error < 0) {
		free_webhooks(w, nw);
		return error;
	}
	free_webhooks(fc->c->webhooks, fc->c->n_webhooks);
	fc->c->webhooks = w;
	fc->c->n_webhooks = nw;
	return 0;
}

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
			return co_error_set(CO_EINVAL,
					    "%s:%d: key must be a string, got %s",
					    fc->file, line_of(k), node_type_name(k));
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%s%s%s", section, *section ? "." : "",
			 name);
		/* libyaml accepts duplicate keys; the second would silently win. */
		for (other = map->data.mapping.pairs.start; other < pair; other++) {
			yaml_node_t *ok = yaml_document_get_node(fc->doc, other->key);

			if (ok->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)ok->data.scalar.value, name) == 0)
				return key_error(fc, k, full,
						 "duplicate key (first on line %d)",
						 line_of(ok));
		}
		if ((error = apply_key(fc, section, name, full, k, v)) < 0)
			return error;
	}
	return 0;
}

/* triggers.window: whole seconds from 1 s to 1 h (the window's buckets). */
static int get_window(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key)
{
	const char *s = NULL;
	int error, ms;

	if ((error = get_duration(&ms, fc, n, key, 1)) < 0)
		return error;
	get_scalar(&s, fc, n, key, 0);
	if (ms % 1000 != 0 || ms > 3600 * 1000)
		return key_error(fc, n, key,
				 "\"%s\" must be whole seconds from 1s to 1h", s);
	*dst = ms;
	return 0;
}

/* A number over `min` and at most `max` (triggers.latency_ratio). */
static int get_number(double *dst, file_ctx *fc, const yaml_node_t *n, const char *key,
		      double min, double max)
{
	const char *s = NULL;
	char *end;
	double v;
	int error;

	if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || s[0] == ' ')
		return key_error(fc, n, key, "bad number \"%s\"", s);
	if (v <= min || v > max)
		return key_error(fc, n, key,
				 "%s is out of range: must be more than %g and at most %g",
				 s, min, max);
	*dst = v;
	return 0;
}

/* --- shadow: sampling percents and ignore rules (shadow.h) --- */

/* A whole percent from 0 to 100. */
static int get_percent(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key)
{
	const char *s = NULL;
	char *end;
	long v;
	int error;

	if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == ' ' || v < 0 || v > 100)
		return key_error(
		    fc, n, key,
		    "bad percent \"%s\": must be a whole number from 0 to 100", s);
	*dst = (int)v;
	return 0;
}

/* shadow.sample_by_op: { read op: percent }, refused whole if one is bad. */
static int get_sample_by_op(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	int v[CO_OP__COUNT], op, error;
	unsigned char seen[CO_OP__COUNT] = {0};
	yaml_node_pair_t *p;

	if (n->type == YAML_SCALAR_NODE && scalar_is_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return key_error(fc, n, key,
				 "expected a mapping of operation: percent, got %s",
				 node_type_name(n));
	for (op = 0; op < CO_OP__COUNT; op++)
		v[op] = fc->c->shadow.sample_op[op];
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(fc->doc, p->key);
		yaml_node_t *val = yaml_document_get_node(fc->doc, p->value);
		const char *name;
		char full[512];
		co_op o;

		if (k->type != YAML_SCALAR_NODE)
			return key_error(fc, k, key,
					 "an operation name must be a string");
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%.200s.%.200s", key, name);
		if (co_op_parse(&o, name) < 0)
			return key_error(fc, k, full,
					 "unknown operation \"%s\" (sampled: %s)", name,
					 CO_SHADOW_READ_OPS);
		if (!co_shadow_is_read(o))
			return key_error(fc, k, full,
					 "\"%s\" is not a read: only reads are compared "
					 "(sampled: %s)",
					 name, CO_SHADOW_READ_OPS);
		if (seen[o])
			return key_error(fc, k, full, "duplicate operation");
		seen[o] = 1;
		if ((error = get_percent(&v[o], fc, val, full)) < 0)
			return error;
	}
	memcpy(fc->c->shadow.sample_op, v, sizeof(v));
	return 0;
}

/* shadow.ignore: paths and key-name patterns, refused whole if one is bad. */
static int get_shadow_ignore(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	yaml_node_item_t *it = n->data.sequence.items.start;
	co_shadow_cfg one;
	const char **v;
	size_t nv = 0;
	int error = 0;

	if (n->type == YAML_SCALAR_NODE && scalar_is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return key_error(fc, n, key,
				 "expected a list of paths and key-name patterns, got %s",
				 node_type_name(n));
	v = calloc((size_t)(n->data.sequence.items.top - it) + 1, sizeof(*v));
	if (v == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	co_shadow_cfg_init(&one);
	for (; error == 0 && it < n->data.sequence.items.top; it++, nv++) {
		yaml_node_t *item = yaml_document_get_node(fc->doc, *it);

		/* Each entry alone first, so that an error names its line;
		 * messages start "shadow.ignore: " (shadow.h). */
		if ((error = get_scalar(&v[nv], fc, item, key, 0)) == 0 &&
		    (error = co_shadow_cfg_set_ignore(&one, &v[nv], 1)) < 0)
			error = key_error(fc, item, key, "%s", co_error_last() + 15);
		co_shadow_cfg_clear(&one);
	}
	if (error == 0)
		error = co_shadow_cfg_set_ignore(&fc->c->shadow, v, nv);
	free(v);
	return error;
}

static int load_section(file_ctx *fc, const yaml_node_t *v, const char *name)
{
	if (v->type == YAML_SCALAR_NODE && scalar_is_null(v))
		return 0; /* "git:" with nothing under it */
	if (v->type != YAML_MAPPING_NODE)
		return key_error(fc, v, name, "expected a mapping, got %s",
				 node_type_name(v));
	return walk_mapping(fc, v, name);
}

/* For the "unknown key" message: what the operator may have meant. */
static const char *known_keys(const char *sec)
{
	if (strcmp(sec, "git") == 0)
		return "repo, branch, poll_interval, fsync";
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
		return "swarm_auth, reconcile_interval, tls_cert, tls_key, request_timeout, "
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

	if ((error = get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	if (co_config_parse_swarm_auth(dst, s) < 0)
		return key_error(fc, n, key, "\"%s\" is not none or token", s);
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
			return get_string(&c->state_dir, fc, v, full, 0);
		if (strcmp(name, "flags") == 0)
			return get_string(&c->flags_path, fc, v, full, 1);
		if (strcmp(name, "listen") == 0)
			return get_string(&c->listen, fc, v, full, 0);
		if (strcmp(name, "admin_token_file") == 0)
			return get_string(&c->admin_token_file, fc, v, full, 1);
		if (strcmp(name, "redact") == 0)
			return get_redact(fc, v, full);
		if (strcmp(name, "webhooks") == 0)
			return get_webhooks(fc, v, full);
	} else if (strcmp(sec, "git") == 0) {
		if (strcmp(name, "repo") == 0)
			return get_string(&c->git_repo, fc, v, full, 1);
		if (strcmp(name, "branch") == 0)
			return get_string(&c->git_branch, fc, v, full, 0);
		if (strcmp(name, "poll_interval") == 0)
			return get_duration(&c->git_poll_interval_ms, fc, v, full, 1);
		if (strcmp(name, "fsync") == 0)
			return get_bool(&c->git_fsync, fc, v, full);
	} else if (strcmp(sec, "etcd") == 0) {
		if (strcmp(name, "endpoints") == 0)
			return get_endpoints(fc, v, full);
		if (strcmp(name, "prefix") == 0)
			return get_string(&c->etcd_prefix, fc, v, full, 0);
		if (strcmp(name, "user") == 0)
			return get_string(&c->etcd_user, fc, v, full, 1);
		if (strcmp(name, "password") == 0)
			return get_string(&c->etcd_password, fc, v, full, 1);
		if (strcmp(name, "ca_file") == 0)
			return get_string(&c->etcd_ca_file, fc, v, full, 1);
		if (strcmp(name, "cert_file") == 0)
			return get_string(&c->etcd_cert_file, fc, v, full, 1);
		if (strcmp(name, "key_file") == 0)
			return get_string(&c->etcd_key_file, fc, v, full, 1);
		if (strcmp(name, "connect_timeout") == 0)
			return get_duration(&c->etcd_connect_timeout_ms, fc, v, full, 1);
		if (strcmp(name, "request_timeout") == 0)
			return get_duration(&c->etcd_request_timeout_ms, fc, v, full, 1);
	} else if (strcmp(sec, "reconcile") == 0) {
		if (strcmp(name, "min_consistency") == 0)
			return get_ratio(&c->reconcile_min_consistency, fc, v, full);
		if (strcmp(name, "max_mismatch_ratio") == 0)
			return get_ratio(&c->reconcile_max_mismatch_ratio, fc, v, full);
		if (strcmp(name, "grace") == 0)
			return get_duration(&c->reconcile_grace_ms, fc, v, full, 0);
		if (strcmp(name, "go_no_go_window") == 0)
			return get_duration(&c->go_no_go_window_ms, fc, v, full, 1);
	} else if (strcmp(sec, "gate") == 0) {
		if (strcmp(name, "outbox_max_depth") == 0)
			return get_count(&c->gate_outbox_max_depth, fc, v, full, 100000000);
		if (strcmp(name, "outbox_max_age") == 0)
			return get_duration(&c->gate_outbox_max_age_ms, fc, v, full, 1);
		if (strcmp(name, "max_shadow_mismatch_ratio") == 0)
			return get_ratio(&c->gate_max_shadow_mismatch_ratio, fc, v, full);
	} else if (strcmp(sec, "fleet") == 0) {
		if (strcmp(name, "enabled") == 0)
			return get_bool(&c->fleet_enabled, fc, v, full);
		if (strcmp(name, "prefix") == 0)
			return get_string(&c->fleet_prefix, fc, v, full, 0);
		if (strcmp(name, "id") == 0)
			return get_string(&c->fleet_id, fc, v, full, 1);
		if (strcmp(name, "ttl") == 0)
			return get_duration(&c->fleet_ttl_ms, fc, v, full, 1);
		if (strcmp(name, "admin_url") == 0)
			return get_string(&c->fleet_admin_url, fc, v, full, 1);
	} else if (strcmp(sec, "router") == 0) {
		if (strcmp(name, "mirror_timeout") == 0)
			return get_duration(&c->mirror_timeout_ms, fc, v, full, 1);
	} else if (strcmp(sec, "breaker") == 0) {
		if (strcmp(name, "failures") == 0)
			return get_count(&c->breaker_failures, fc, v, full, 1000);
		if (strcmp(name, "probe") == 0)
			return get_duration(&c->breaker_probe_ms, fc, v, full, 1);
		if (strcmp(name, "probe_max") == 0)
			return get_duration(&c->breaker_probe_max_ms, fc, v, full, 1);
	} else if (strcmp(sec, "serve") == 0) {
		if (strcmp(name, "swarm_auth") == 0)
			return get_swarm_auth(&c->swarm_auth, fc, v, full);
		if (strcmp(name, "reconcile_interval") == 0)
			return get_duration(&c->serve_reconcile_interval_ms, fc, v, full, 0);
		if (strcmp(name, "tls_cert") == 0)
			return get_string(&c->serve_tls_cert, fc, v, full, 1);
		if (strcmp(name, "tls_key") == 0)
			return get_string(&c->serve_tls_key, fc, v, full, 1);
		if (strcmp(name, "request_timeout") == 0)
			return get_duration(&c->serve_request_timeout_ms, fc, v, full, 1);
		if (strcmp(name, "max_connections") == 0)
			return get_count(&c->serve_max_connections, fc, v, full, 65536);
		if (strcmp(name, "max_connections_per_ip") == 0)
			return get_count(&c->serve_max_connections_per_ip, fc, v, full,
					 65536);
		if (strcmp(name, "max_inflight") == 0)
			return get_count(&c->serve_max_inflight, fc, v, full, 65536);
		if (strcmp(name, "queue_deadline") == 0)
			return get_duration(&c->serve_queue_deadline_ms, fc, v, full, 0);
	} else if (strcmp(sec, "triggers") == 0) {
		co_trigger_cfg *t = &c->triggers;

		if (strcmp(name, "enabled") == 0)
			return get_bool(&t->enabled, fc, v, full);
		if (strcmp(name, "window") == 0)
			return get_window(&t->window_ms, fc, v, full);
		if (strcmp(name, "min_samples") == 0)
			return get_count(&t->min_samples, fc, v, full, 1000000);
		if (strcmp(name, "error_rate") == 0)
			return get_number(&t->error_rate, fc, v, full, 0.0, 1.0);
		if (strcmp(name, "latency_ratio") == 0)
			return get_number(&t->latency_ratio, fc, v, full, 1.0, 1000.0);
		if (strcmp(name, "health_grace") == 0)
			return get_duration(&t->health_grace_ms, fc, v, full, 1);
		if (strcmp(name, "outbox_age") == 0)
			return get_duration(&t->outbox_age_ms, fc, v, full, 1);
	} else if (strcmp(sec, "shadow") == 0) {
		if (strcmp(name, "sample") == 0)
			return get_percent(&c->shadow.sample, fc, v, full);
		if (strcmp(name, "sample_by_op") == 0)
			return get_sample_by_op(fc, v, full);
		if (strcmp(name, "ignore") == 0)
			return get_shadow_ignore(fc, v, full);
	}
	return key_error(fc, k, full, "unknown key (known here: %s)", known_keys(sec));
}

static int load_file(co_config *c, const char *path)
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
	if (root == NULL || (root->type == YAML_SCALAR_NODE && scalar_is_null(root)))
		goto done; /* an empty file: defaults */
	if (root->type != YAML_MAPPING_NODE) {
		error = co_error_set(CO_EINVAL,
				     "%s:%d: expected a mapping at the top, got %s", path,
				     line_of(root), node_type_name(root));
		goto done;
	}
	if ((error = walk_mapping(&fc, root, "")) < 0)
		goto done;
	error = set_str(&c->path, path);
done:
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	fclose(f);
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

	return v ? set_str(dst, v) : 0;
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
		if ((error = push_endpoint(&list, &n, p, len)) < 0)
			goto done;
		if (!endpoint_ok(list[n - 1])) {
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
	take_endpoints(c, list, n);
	list = NULL;
	n = 0;
done:
	free_strings(list, n);
	return error;
}

static int apply_env(co_config *c)
{
	int error;

	if ((error = env_string(&c->git_repo, "CUTOVER_GIT_REPO")) < 0 ||
	    (error = env_string(&c->git_branch, "CUTOVER_GIT_BRANCH")) < 0 ||
	    (error = env_duration(&c->git_poll_interval_ms,
				  "CUTOVER_GIT_POLL_INTERVAL")) < 0 ||
	    (error = env_endpoints(c)) < 0 ||
	    (error = env_string(&c->etcd_prefix, "CUTOVER_ETCD_PREFIX")) < 0 ||
	    (error = env_string(&c->etcd_user, "CUTOVER_ETCD_USER")) < 0 ||
	    (error = env_string(&c->etcd_password, "CUTOVER_ETCD_PASSWORD")) < 0 ||
	    (error = env_duration(&c->etcd_connect_timeout_ms,
				  "CUTOVER_ETCD_CONNECT_TIMEOUT")) < 0 ||
	    (error = env_duration(&c->etcd_request_timeout_ms,
				  "CUTOVER_ETCD_REQUEST_TIMEOUT")) < 0 ||
	    (error = env_duration(&c->mirror_timeout_ms, "CUTOVER_MIRROR_TIMEOUT")) < 0 ||
	    (error = env_interval(&c->serve_reconcile_interval_ms,
				  "CUTOVER_RECONCILE_INTERVAL")) < 0 ||
	    (error = env_interval(&c->serve_queue_deadline_ms,
				  "CUTOVER_QUEUE_DEADLINE")) < 0 ||
	    (error = env_string(&c->flags_path, "CUTOVER_FLAGS")) < 0 ||
	    (error = env_string(&c->state_dir, "CUTOVER_STATE_DIR")) < 0 ||
	    (error = env_string(&c->listen, "CUTOVER_LISTEN")) < 0 ||
	    (error = env_string(&c->admin_token_file, "CUTOVER_ADMIN_TOKEN_FILE")) < 0)
		return error;
	if (env("CUTOVER_SWARM_AUTH") &&
	    co_config_parse_swarm_auth(&c->swarm_auth, env("CUTOVER_SWARM_AUTH")) < 0)
		return co_error_set(CO_EINVAL,
				    "CUTOVER_SWARM_AUTH: \"%s\" is not none or token",
				    env("CUTOVER_SWARM_AUTH"));
	return 0;
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
	if (path && (error = load_file(c, path)) < 0)
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
