/*
 * config_parse.c - text into configuration values: durations, swarm auth,
 * etcd endpoints, and each YAML node into a typed value (string, bool,
 * duration, window, and one bounded number for counts, percents, ratios
 * and numbers) whose error names
 * FILE:LINE and the dotted key.  The floor the rest of the configuration
 * reader stands on: it calls nothing of theirs.
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

void co_config__free_endpoints(co_config *c)
{
	size_t i;

	for (i = 0; i < c->n_etcd_endpoints; i++)
		free(c->etcd_endpoints[i]);
	free(c->etcd_endpoints);
	c->etcd_endpoints = NULL;
	c->n_etcd_endpoints = 0;
}

int co_config__set_str(char **dst, const char *s)
{
	char *copy = NULL;

	if (s && (copy = strdup(s)) == NULL)
		return co_error_set(CO_ENOMEM, "config: out of memory");
	free(*dst);
	*dst = copy;
	return 0;
}

/* 1 if s looks like an endpoint the etcd store can talk to. */
int co_config__endpoint_ok(const char *s)
{
	if (strncmp(s, "http://", 7) == 0)
		return s[7] != '\0';
	if (strncmp(s, "https://", 8) == 0)
		return s[8] != '\0';
	return 0;
}

/* Append one endpoint to a list being built; the caller swaps it in. */
int co_config__push_endpoint(char ***v, size_t *n, const char *s, size_t len)
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

void co_config__free_strings(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Replace the endpoint list of c with v (taken). */
void co_config__take_endpoints(co_config *c, char **v, size_t n)
{
	co_config__free_endpoints(c);
	c->etcd_endpoints = v;
	c->n_etcd_endpoints = n;
}

void co_config__free_webhooks(co_config_webhook *w, size_t n)
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

int co_config__line_of(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

/* The standard error of this module: FILE:LINE: key "k": what. */
int co_config__key_error(file_ctx *fc, const yaml_node_t *n, const char *key,
			 const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return co_error_set(CO_EINVAL, "%s:%d: key \"%s\": %s", fc->file,
			    co_config__line_of(n), key, what);
}

const char *co_config__node_type_name(const yaml_node_t *n)
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
int co_config__scalar_is_null(const yaml_node_t *n)
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
int co_config__get_scalar(const char **out, file_ctx *fc, const yaml_node_t *n,
			  const char *key, int optional)
{
	if (n->type != YAML_SCALAR_NODE)
		return co_config__key_error(fc, n, key, "expected a string, got %s",
					    co_config__node_type_name(n));
	if (co_config__scalar_is_null(n)) {
		if (!optional)
			return co_config__key_error(fc, n, key, "must not be empty");
		*out = NULL;
		return 0;
	}
	if (memchr(n->data.scalar.value, '\0', n->data.scalar.length) != NULL)
		return co_config__key_error(fc, n, key, "contains a NUL byte");
	*out = (const char *)n->data.scalar.value;
	return 0;
}

int co_config__get_string(char **dst, file_ctx *fc, const yaml_node_t *n, const char *key,
			  int optional)
{
	const char *s = NULL;
	int error;

	if ((error = co_config__get_scalar(&s, fc, n, key, optional)) < 0)
		return error;
	return co_config__set_str(dst, s);
}

int co_config__get_bool(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes",
					  "Yes",  "on",	  "On"};
	static const char *const no[] = {"false", "False", "FALSE", "no",
					 "No",	  "off",   "Off"};
	const char *s = NULL;
	size_t i;
	int error;

	if ((error = co_config__get_scalar(&s, fc, n, key, 0)) < 0)
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
	return co_config__key_error(fc, n, key, "expected true or false, got \"%s\"", s);
}

/* A duration; `positive` refuses zero. */
int co_config__get_duration(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key,
			    int positive)
{
	const char *s = NULL;
	int error, ms;

	if ((error = co_config__get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	if (co_config_parse_duration(&ms, s) < 0)
		return co_config__key_error(fc, n, key, "%s", co_error_last());
	if (positive && ms <= 0)
		return co_config__key_error(fc, n, key,
					    "duration \"%s\" must be more than 0", s);
	*dst = ms;
	return 0;
}

/*
 * A number within a key's bounds (config_internal.h: co_config__num): one
 * parse and one bounds check for every number key, each kind worded as it
 * always was.  strtol/strtod would take leading blanks, "inf" and "nan":
 * a value must be all number.
 */
int co_config__get_num(double *dst, file_ctx *fc, const yaml_node_t *n, const char *key,
		       const co_config__num *num)
{
	int whole = num->kind == CO_CONFIG__COUNT || num->kind == CO_CONFIG__PERCENT;
	const char *s = NULL, *bad;
	char *end;
	double v;
	int error, parsed, in_bounds;

	if ((error = co_config__get_scalar(&s, fc, n, key, 0)) < 0)
		return error;
	errno = 0;
	v = whole ? (double)strtol(s, &end, 10) : strtod(s, &end);
	parsed = errno == 0 && end != s && *end == '\0' && s[0] != ' ' && isfinite(v);
	in_bounds = (num->kind == CO_CONFIG__NUMBER ? v > num->min : v >= num->min) &&
		    v <= num->max;
	if (parsed && in_bounds) {
		*dst = v;
		return 0;
	}
	if (num->kind == CO_CONFIG__PERCENT)
		return co_config__key_error(
		    fc, n, key, "bad percent \"%s\": must be a whole number from %.0f to %.0f",
		    s, num->min, num->max);
	if (!parsed) {
		bad = whole ? "bad whole number" : "bad number";
		return co_config__key_error(fc, n, key, "%s \"%s\"", bad, s);
	}
	if (num->kind == CO_CONFIG__COUNT)
		return co_config__key_error(fc, n, key,
					    "%s is out of range: must be from %.0f to %.0f", s,
					    num->min, num->max);
	if (num->kind == CO_CONFIG__RATIO)
		return co_config__key_error(fc, n, key,
					    "%s is out of range: must be between %g and %g", s,
					    num->min, num->max);
	return co_config__key_error(
	    fc, n, key, "%s is out of range: must be more than %g and at most %g", s,
	    num->min, num->max);
}

/* triggers.window: whole seconds from 1 s to 1 h (the window's buckets). */
int co_config__get_window(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key)
{
	const char *s = NULL;
	int error, ms;

	if ((error = co_config__get_duration(&ms, fc, n, key, 1)) < 0)
		return error;
	co_config__get_scalar(&s, fc, n, key, 0);
	if (ms % 1000 != 0 || ms > 3600 * 1000)
		return co_config__key_error(
		    fc, n, key, "\"%s\" must be whole seconds from 1s to 1h", s);
	*dst = ms;
	return 0;
}
