/*
 * config_internal.h - what the parts of the configuration reader share:
 * config_parse.c (text and YAML nodes into typed values, the floor),
 * config_sections.c (the sections with a shape of their own: endpoints,
 * redaction, webhooks, shadow sampling), config_file.c (the YAML document
 * and its key table) and config.c (defaults, the environment, the load),
 * each calling only those before it.  Not part of the API.
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
int co_config__get_percent(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key);
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
int co_config__get_count(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key,
			 int max);
int co_config__get_ratio(double *dst, file_ctx *fc, const yaml_node_t *n,
			 const char *key);
int co_config__get_window(int *dst, file_ctx *fc, const yaml_node_t *n, const char *key);
int co_config__get_number(double *dst, file_ctx *fc, const yaml_node_t *n,
			  const char *key, double min, double max);

void co_config__free_endpoints(co_config *c);
int co_config__line_of(const yaml_node_t *n);

#endif
