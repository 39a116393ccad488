/*
 * config_file.c - cutover.yaml: the document is loaded whole with libyaml's
 * loader, so every node keeps its line; each key is looked up in the key
 * table (config_keys.c) and read by the typed getter its type names
 * (string, bool, duration, bounded number, ...), whose error names
 * FILE:LINE and the dotted key.  Unknown keys are refused with the keys
 * the section knows.
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

/* A section: a mapping of its own keys, or nothing ("git:"). */

static int load_section(file_ctx *fc, const yaml_node_t *v, const char *name)
{
	if (v->type == YAML_SCALAR_NODE && co_config__scalar_is_null(v))
		return 0; /* "git:" with nothing under it */
	if (v->type != YAML_MAPPING_NODE)
		return co_config__key_error(fc, v, name, "expected a mapping, got %s",
					    co_config__node_type_name(v));
	return walk_mapping(fc, v, name);
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

/* A number key into its int or double field, once it is in bounds. */
static int get_num(void *field, int is_int, file_ctx *fc, const yaml_node_t *n,
		   const char *key, const co_config__num *num)
{
	double v;
	int error;

	if ((error = co_config__get_num(&v, fc, n, key, num)) < 0)
		return error;
	if (is_int)
		*(int *)field = (int)v;
	else
		*(double *)field = v;
	return 0;
}

/* One key of a mapping section, read as its line of the key table says. */
static int apply_key(file_ctx *fc, const char *sec, const char *name, const char *full,
		     const yaml_node_t *k, const yaml_node_t *v)
{
	const co_config__key *key = co_config__key_find(sec, name);
	char known[512];
	void *field;

	if (key == NULL) {
		co_config__keys_of(known, sizeof(known), sec);
		return co_config__key_error(fc, k, full, "unknown key (known here: %s)",
					    known);
	}
	field = (char *)fc->c + key->offset;
	switch (key->type) {
	case CO_CONFIG__SECTION:
		return load_section(fc, v, name);
	case CO_CONFIG__STRING:
	case CO_CONFIG__STRING_OPT:
		return co_config__get_string(field, fc, v, full,
					     key->type == CO_CONFIG__STRING_OPT);
	case CO_CONFIG__BOOL:
		return co_config__get_bool(field, fc, v, full);
	case CO_CONFIG__DURATION:
	case CO_CONFIG__DURATION_POS:
		return co_config__get_duration(field, fc, v, full,
					       key->type == CO_CONFIG__DURATION_POS);
	case CO_CONFIG__WINDOW:
		return co_config__get_window(field, fc, v, full);
	case CO_CONFIG__INT:
	case CO_CONFIG__DOUBLE:
		return get_num(field, key->type == CO_CONFIG__INT, fc, v, full, &key->num);
	case CO_CONFIG__SWARM_AUTH:
		return get_swarm_auth(field, fc, v, full);
	case CO_CONFIG__ENDPOINTS:
		return co_config__get_endpoints(fc, v, full);
	case CO_CONFIG__SHAPED:
		return key->get(fc, v, full);
	}
	return co_config__key_error(fc, k, full, "no reader for this key");
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
