/*
 * config_sections.c - the configuration's sections with a shape of their
 * own: etcd endpoints (a list or a comma string), redaction rules,
 * webhooks (each with a URL, events and a secret read from a file) and
 * shadow sampling (percent per read operation, ignored paths).
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

static int check_endpoint(file_ctx *fc, const yaml_node_t *n, const char *key,
			  const char *s)
{
	if (!co_config__endpoint_ok(s))
		return co_config__key_error(
		    fc, n, key, "endpoint \"%s\" must start with http:// or https://", s);
	return 0;
}

/* etcd.endpoints: a list of URLs, or one string (comma-separated). */
int co_config__get_endpoints(file_ctx *fc, const yaml_node_t *n, const char *key)
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

			if ((error = co_config__get_scalar(&s, fc, item, key, 0)) < 0 ||
			    (error = check_endpoint(fc, item, key, s)) < 0 ||
			    (error = co_config__push_endpoint(&v, &nv, s, strlen(s))) < 0)
				goto done;
		}
	} else {
		const char *s, *p, *comma;

		if ((error = co_config__get_scalar(&s, fc, n, key, 0)) < 0)
			goto done;
		for (p = s;; p = comma + 1) {
			char one[1024];
			size_t len;

			comma = strchr(p, ',');
			len = comma ? (size_t)(comma - p) : strlen(p);
			if (len >= sizeof(one)) {
				error =
				    co_config__key_error(fc, n, key, "endpoint too long");
				goto done;
			}
			memcpy(one, p, len);
			one[len] = '\0';
			if ((error = check_endpoint(fc, n, key, one)) < 0 ||
			    (error = co_config__push_endpoint(&v, &nv, one, len)) < 0)
				goto done;
			if (comma == NULL)
				break;
		}
	}
	if (nv == 0) {
		error = co_config__key_error(fc, n, key, "needs at least one endpoint");
		goto done;
	}
	co_config__take_endpoints(fc->c, v, nv);
	v = NULL;
	nv = 0;
done:
	co_config__free_strings(v, nv);
	return error;
}

/* redact: paths and key-name patterns (redact.h), replacing the defaults;
 * refused whole if one entry is bad: a half-loaded list would leak. */
int co_config__get_redact(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	yaml_node_item_t *it = n->data.sequence.items.start;
	const char **v = NULL;
	co_redact *rd = NULL;
	size_t nv = 0;
	int error = 0;

	if (n->type == YAML_SCALAR_NODE && co_config__scalar_is_null(n))
		return 0; /* "redact:" with nothing under it: the defaults */
	if (n->type != YAML_SEQUENCE_NODE)
		return co_config__key_error(
		    fc, n, key, "expected a list of paths and key-name patterns, got %s",
		    co_config__node_type_name(n));
	v = calloc((size_t)(n->data.sequence.items.top - it) + 1, sizeof(*v));
	if (v == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	for (; error == 0 && it < n->data.sequence.items.top; it++, nv++) {
		yaml_node_t *item = yaml_document_get_node(fc->doc, *it);

		/* Each entry alone first, so that an error names its line. */
		if ((error = co_config__get_scalar(&v[nv], fc, item, key, 0)) == 0 &&
		    (error = co_redact_new(&rd, &v[nv], 1, 0)) < 0)
			error = co_config__key_error(fc, item, key, "%s",
						     co_error_last() + 8);
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
		return co_config__key_error(fc, n, key, "cannot read \"%s\": %s", path,
					    strerror(errno));
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	while (len > 0 && strchr(" \t\r\n", buf[len - 1]))
		buf[--len] = '\0';
	if (len == 0 || strlen(buf) != len)
		return co_config__key_error(
		    fc, n, key, "\"%s\" holds no key (empty, or a NUL byte)", path);
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
		if ((error = co_config__get_scalar(&s, fc, n, key, 0)) < 0)
			return error;
		if ((*out = co_webhook_event_bit(s)) == 0)
			return co_config__key_error(fc, n, key,
						    "unknown event \"%s\" (%s)", s,
						    CO_WEBHOOK_EVENTS);
		return 0;
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return co_config__key_error(fc, n, key,
					    "expected a list of events, got %s",
					    co_config__node_type_name(n));
	for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(fc->doc, *it);

		if ((error = co_config__get_scalar(&s, fc, item, key, 0)) < 0)
			return error;
		if ((bit = co_webhook_event_bit(s)) == 0)
			return co_config__key_error(fc, item, key,
						    "unknown event \"%s\" (%s)", s,
						    CO_WEBHOOK_EVENTS);
		*out |= bit;
	}
	if (*out == 0)
		return co_config__key_error(fc, n, key,
					    "empty list: leave events out for all");
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
		return co_config__key_error(fc, map, key,
					    "expected a mapping {url, secret_file, "
					    "events}, got %s",
					    co_config__node_type_name(map));
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(fc->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(fc->doc, p->value);
		const char *name =
		    k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
		char full[128];

		snprintf(full, sizeof(full), "%s.%s", key, name);
		if (strcmp(name, "url") == 0) {
			if ((error = co_config__get_string(&w->url, fc, v, full, 0)) < 0)
				return error;
			if (co_webhook_url_check(why, sizeof(why), w->url) < 0)
				return co_config__key_error(fc, v, full, "%s", why);
		} else if (strcmp(name, "secret") == 0) {
			if ((error = co_config__get_scalar(&secret, fc, v, full, 0)) < 0)
				return error;
			secret_node = v;
		} else if (strcmp(name, "secret_file") == 0) {
			if ((error =
				 co_config__get_scalar(&secret_file, fc, v, full, 0)) < 0)
				return error;
			secret_node = v;
		} else if (strcmp(name, "events") == 0) {
			if ((error = get_webhook_events(&w->events, fc, v, full)) < 0)
				return error;
		} else {
			return co_config__key_error(
			    fc, k, full,
			    "unknown key (known here: url, secret, "
			    "secret_file, events)");
		}
	}
	if (w->url == NULL)
		return co_config__key_error(fc, map, key, "needs a url");
	if (secret && secret_file)
		return co_config__key_error(fc, secret_node, key,
					    "give secret or secret_file, not both");
	if (secret == NULL && secret_file == NULL)
		return co_config__key_error(
		    fc, map, key, "needs a secret_file (or secret) to sign its events");
	snprintf(key + strlen(key), sizeof(key) - strlen(key), ".secret%s",
		 secret_file ? "_file" : "");
	if (secret_file)
		return read_secret_file(&w->secret, fc, secret_node, key, secret_file);
	return co_config__set_str(&w->secret, secret);
}

/* webhooks: refused whole if one entry is bad. */
int co_config__get_webhooks(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	yaml_node_item_t *it;
	co_config_webhook *w;
	size_t nw, i = 0;
	int error = 0;

	if (n->type == YAML_SCALAR_NODE && co_config__scalar_is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return co_config__key_error(
		    fc, n, key,
		    "expected a list of {url, secret_file, events}, "
		    "got %s",
		    co_config__node_type_name(n));
	nw = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (nw == 0)
		return 0;
	if ((w = calloc(nw, sizeof(*w))) == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	for (it = n->data.sequence.items.start;
	     error == 0 && it < n->data.sequence.items.top; it++, i++)
		error = get_webhook(&w[i], fc, yaml_document_get_node(fc->doc, *it), i);
	if (error < 0) {
		co_config__free_webhooks(w, nw);
		return error;
	}
	co_config__free_webhooks(fc->c->webhooks, fc->c->n_webhooks);
	fc->c->webhooks = w;
	fc->c->n_webhooks = nw;
	return 0;
}

/* shadow.sample_by_op: { read op: percent }, refused whole if one is bad. */
int co_config__get_sample_by_op(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	static const co_config__num percent = {CO_CONFIG__PERCENT, 0, 100};
	int v[CO_OP__COUNT], op, error;
	unsigned char seen[CO_OP__COUNT] = {0};
	yaml_node_pair_t *p;
	double pct;

	if (n->type == YAML_SCALAR_NODE && co_config__scalar_is_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return co_config__key_error(
		    fc, n, key, "expected a mapping of operation: percent, got %s",
		    co_config__node_type_name(n));
	for (op = 0; op < CO_OP__COUNT; op++)
		v[op] = fc->c->shadow.sample_op[op];
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(fc->doc, p->key);
		yaml_node_t *val = yaml_document_get_node(fc->doc, p->value);
		const char *name;
		char full[512];
		co_op o;

		if (k->type != YAML_SCALAR_NODE)
			return co_config__key_error(fc, k, key,
						    "an operation name must be a string");
		name = (const char *)k->data.scalar.value;
		snprintf(full, sizeof(full), "%.200s.%.200s", key, name);
		if (co_op_parse(&o, name) < 0)
			return co_config__key_error(
			    fc, k, full, "unknown operation \"%s\" (sampled: %s)", name,
			    CO_SHADOW_READ_OPS);
		if (!co_shadow_is_read(o))
			return co_config__key_error(
			    fc, k, full,
			    "\"%s\" is not a read: only reads are compared "
			    "(sampled: %s)",
			    name, CO_SHADOW_READ_OPS);
		if (seen[o])
			return co_config__key_error(fc, k, full, "duplicate operation");
		seen[o] = 1;
		if ((error = co_config__get_num(&pct, fc, val, full, &percent)) < 0)
			return error;
		v[o] = (int)pct;
	}
	memcpy(fc->c->shadow.sample_op, v, sizeof(v));
	return 0;
}

/* shadow.ignore: paths and key-name patterns, refused whole if one is bad. */
int co_config__get_shadow_ignore(file_ctx *fc, const yaml_node_t *n, const char *key)
{
	yaml_node_item_t *it = n->data.sequence.items.start;
	co_shadow_cfg one;
	const char **v;
	size_t nv = 0;
	int error = 0;

	if (n->type == YAML_SCALAR_NODE && co_config__scalar_is_null(n))
		return 0;
	if (n->type != YAML_SEQUENCE_NODE)
		return co_config__key_error(
		    fc, n, key, "expected a list of paths and key-name patterns, got %s",
		    co_config__node_type_name(n));
	v = calloc((size_t)(n->data.sequence.items.top - it) + 1, sizeof(*v));
	if (v == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	co_shadow_cfg_init(&one);
	for (; error == 0 && it < n->data.sequence.items.top; it++, nv++) {
		yaml_node_t *item = yaml_document_get_node(fc->doc, *it);

		/* Each entry alone first, so that an error names its line;
		 * messages start "shadow.ignore: " (shadow.h). */
		if ((error = co_config__get_scalar(&v[nv], fc, item, key, 0)) == 0 &&
		    (error = co_shadow_cfg_set_ignore(&one, &v[nv], 1)) < 0)
			error = co_config__key_error(fc, item, key, "%s",
						     co_error_last() + 15);
		co_shadow_cfg_clear(&one);
	}
	if (error == 0)
		error = co_shadow_cfg_set_ignore(&fc->c->shadow, v, nv);
	free(v);
	return error;
}
