/*
 * config_internal.h - what the parts of the configuration reader share:
 * config_parse.c (text and YAML nodes into typed values, the floor),
 * config_sections.c (the sections with a shape of their own: endpoints,
 * redaction, webhooks, shadow sampling), config_keys.c (the key table:
 * every key as data), config_file.c (the YAML document, walked through the
 * table) and config.c (defaults, the environment through the table, the
 * load), each calling only those before it.  Not part of the API.
 */
#ifndef CO_CONFIG_INTERNAL_H
#define CO_CONFIG_INTERNAL_H

#include "config.h"

#include <yaml.h>

#include <stddef.h>

typedef struct file_ctx {
	yaml_document_t *doc;
	const char *file;
	co_config *c;
} file_ctx;

int co_config__endpoint_ok(const char *s);
void co_config__free_strings(char **v, size_t n);
void co_config__free_webhooks(co_config_webhook *w, size_t n);
int co_config__get_endpoints(file_ctx *fc, const yaml_node_t *n, const char *key);
int co_config__get_redact(file_ctx *fc, const yaml_node_t *n, const char *key);
int co_config__get_sample_by_op(file_ctx *fc, const yaml_node_t *n, const char *key);
int co_config__get_scalar(const char **out, file_ctx *fc, const yaml_node_t *n,
			  const char *key, int optional);
int co_config__get_shadow_ignore(file_ctx *fc, const yaml_node_t *n, const char *key);
int co_config__get_string(char **dst, file_ctx *fc, const yaml_node_t *n, const char *key,
			  int optional);
int co_config__get_webhooks(file_ctx *fc, const yaml_node_t *n, const char *key);
int co_config__key_error(file_ctx *fc, const yaml_node_t *n, const char *key,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int co_config__load_file(co_config *c, const char *path);
const char *co_config__node_type_name(const yaml_node_t *n);
int co_config__push_endpoint(char ***v, size_t *n, const char *s, size_t len);
int co_config__scalar_is_null(const yaml_node_t *n);
int co_config__set_str(char **dst, const char *s);
void co_config__take_endpoints(co_config *c, char **v, size_t n);

int co_config__get_bool(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key);
int co_config__get_duration(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key,
			    int positive);
int co_config__get_window(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key);

/*
 * The bounds of a number key, and how its errors are worded (as they have
 * always been for that kind of key):
 *   COUNT    whole, from min to max        "bad whole number", "must be from 1 to 1000"
 *   PERCENT  whole, from min to max        "bad percent ...: must be a whole number ..."
 *   RATIO    real, from min to max         "bad number", "must be between 0 and 1"
 *   NUMBER   real, over min, at most max   "bad number", "must be more than 1 and at most 1000"
 */
typedef enum co_config__num_kind {
	CO_CONFIG__COUNT,
	CO_CONFIG__PERCENT,
	CO_CONFIG__RATIO,
	CO_CONFIG__NUMBER
} co_config__num_kind;

typedef struct co_config__num {
	co_config__num_kind kind;
	double min, max;
} co_config__num;

/* The one bounded number getter: *dst only when the value is in bounds. */
int co_config__get_num(double *dst, file_ctx *fc, const yaml_node_t *n, const char *key,
		       const co_config__num *num);

/* --- the key table (config_keys.c) --- */

typedef enum co_config__type {
	CO_CONFIG__SECTION,	 /* a mapping of keys of its own (section = name) */
	CO_CONFIG__STRING,	 /* char *, must not be empty */
	CO_CONFIG__STRING_OPT,	 /* char *, may be null (NULL) */
	CO_CONFIG__BOOL,	 /* int, true/false, yes/no, on/off */
	CO_CONFIG__DURATION,	 /* int ms, 0 allowed ($ENV: also "0", "off") */
	CO_CONFIG__DURATION_POS, /* int ms, more than 0 */
	CO_CONFIG__WINDOW,	 /* int ms, whole seconds from 1s to 1h */
	CO_CONFIG__INT,		 /* int, bounded by `num` (COUNT, PERCENT) */
	CO_CONFIG__DOUBLE,	 /* double, bounded by `num` (RATIO, NUMBER) */
	CO_CONFIG__SWARM_AUTH,	 /* co_swarm_auth: none | token */
	CO_CONFIG__ENDPOINTS,	 /* the etcd endpoint list */
	CO_CONFIG__SHAPED	 /* a shape of its own: `get` reads it */
} co_config__type;

/*
 * One key of cutover.yaml.  `offset` is where its value lives in
 * co_config (offsetof); `env` the variable that overrides it, or NULL.
 */
typedef struct co_config__key {
	const char *section; /* "" at the top, else the section's name */
	const char *name;
	co_config__type type;
	size_t offset;
	co_config__num num; /* CO_CONFIG__INT, CO_CONFIG__DOUBLE */
	int (*get)(file_ctx *fc, const yaml_node_t *n, const char *key); /* SHAPED */
	const char *env;
} co_config__key;

/* Every key, sections' in the order the "unknown key" message lists them;
 * ends with a NULL name. */
extern const co_config__key co_config__keys[];

/* The key `name` of `section`, or NULL. */
const co_config__key *co_config__key_find(const char *section, const char *name);

/* "a, b, c": the keys of `section`, for the "unknown key" message. */
void co_config__keys_of(char *out, size_t len, const char *section);

void co_config__free_endpoints(co_config *c);
int co_config__line_of(const yaml_node_t *n);

#endif
