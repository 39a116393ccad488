/*
 * swarms.c - legacy swarm registrations (one JSON or YAML file per swarm)
 * read into swarm records for `cutover migrate --from-swarms DIR`.
 *
 * YAML is turned into the same JSON tree as a .json file (plain scalars
 * that look like numbers, booleans or null become those; everything else a
 * string), so that one function maps both.  The legacy files were written
 * by hand and by scripts, so the mapping is lenient about where things are
 * ("swarm_id" for "id", capabilities as a list or as "a,b") and strict
 * about what a record may hold (a valid ID, capability strings): a file
 * that cannot be mapped is reported, never guessed at.
 */
#include "migrate.h"

#include "../src/core/error.h"
#include "../src/core/id.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_FILE (1024 * 1024)

/*
 * Most nodes a YAML file may expand to.  Aliases let a few hundred bytes
 * name a billion nodes ("billion laughs"); whatever a swarm file holds
 * beyond its ID and capabilities ends up in metadata, which is at most
 * CO_META_MAX bytes, so more nodes than that could never make a record.
 */
#define MAX_NODES CO_META_MAX

/* The tree of `node`; NULL when unsupported, too deep or over *budget nodes. */
static cJSON *yaml_node_json(yaml_document_t *doc, yaml_node_t *node, int depth,
			     size_t *budget)
{
	cJSON *out = NULL;

	if (!node || depth > 64 || *budget == 0)
		return NULL;
	--*budget;
	switch (node->type) {
	case YAML_SCALAR_NODE: {
		const char *v = (const char *)node->data.scalar.value;
		char *end;
		double d;

		if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
			return cJSON_CreateString(v);
		if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
			return cJSON_CreateBool(v[0] == 't');
		if (strcmp(v, "null") == 0 || strcmp(v, "~") == 0 || *v == '\0')
			return cJSON_CreateNull();
		d = strtod(v, &end);
		if (*end == '\0' && end != v)
			return cJSON_CreateNumber(d);
		return cJSON_CreateString(v);
	}
	case YAML_SEQUENCE_NODE: {
		yaml_node_item_t *it;

		if ((out = cJSON_CreateArray()) == NULL)
			return NULL;
		for (it = node->data.sequence.items.start; it < node->data.sequence.items.top;
		     it++) {
			cJSON *c = yaml_node_json(doc, yaml_document_get_node(doc, *it),
						  depth + 1, budget);

			if (!c || !cJSON_AddItemToArray(out, c)) {
				cJSON_Delete(c);
				cJSON_Delete(out);
				return NULL;
			}
		}
		return out;
	}
	case YAML_MAPPING_NODE: {
		yaml_node_pair_t *p;

		if ((out = cJSON_CreateObject()) == NULL)
			return NULL;
		for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			cJSON *c;

			if (!k || k->type != YAML_SCALAR_NODE) {
				cJSON_Delete(out);
				return NULL;
			}
			c = yaml_node_json(doc, yaml_document_get_node(doc, p->value), depth + 1,
					   budget);
			if (!c || !cJSON_AddItemToObject(out, (const char *)k->data.scalar.value, c)) {
				cJSON_Delete(c);
				cJSON_Delete(out);
				return NULL;
			}
		}
		return out;
	}
	default:
		return NULL;
	}
}

/* Parse YAML text into a cJSON tree; NULL with *why on failure. */
static cJSON *yaml_to_json(const char *text, size_t len, char *why, size_t whylen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	cJSON *out = NULL;
	size_t budget = MAX_NODES;

	if (!yaml_parser_initialize(&parser)) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(why, whylen, "line %zu: %s", parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "invalid YAML");
		yaml_parser_delete(&parser);
		return NULL;
	}
	out = yaml_node_json(&doc, yaml_document_get_root_node(&doc), 0, &budget);
	if (!out && budget == 0)
		snprintf(why, whylen, "more than %d YAML nodes (aliases?)", MAX_NODES);
	else if (!out)
		snprintf(why, whylen, "empty or unsupported YAML document");
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return out;
}

/* Map one parsed file to a swarm record; NULL with *why if it cannot be. */
static co_record *swarm_from_json(cJSON *j, char *why, size_t whylen)
{
	static const char *const id_keys[] = {"id", "ID", "swarm_id", "swarm", NULL};
	co_record *r = NULL;
	cJSON *meta = NULL, *caps, *m, *item;
	const char *id = NULL;
	char *text = NULL;
	size_t i;

	if (!cJSON_IsObject(j)) {
		snprintf(why, whylen, "not an object");
		return NULL;
	}
	for (i = 0; id_keys[i] && !id; i++) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(j, id_keys[i]);

		if (cJSON_IsString(v))
			id = v->valuestring;
	}
	if (!id) {
		snprintf(why, whylen, "no \"id\"");
		return NULL;
	}
	if (co_record_new(&r, CO_KIND_SWARM, id) < 0) {
		snprintf(why, whylen, "%s", co_error_last());
		return NULL;
	}
	r->rev = 1;
	caps = cJSON_GetObjectItemCaseSensitive(j, "capabilities");
	if (cJSON_IsString(caps)) {
		if (co_strv_split(&r->capabilities, caps->valuestring) < 0)
			goto oom;
	} else if (cJSON_IsArray(caps)) {
		cJSON_ArrayForEach(item, caps)
		{
			if (!cJSON_IsString(item)) {
				snprintf(why, whylen, "capabilities: not a list of strings");
				goto fail;
			}
			if (co_strv_push(&r->capabilities, item->valuestring) < 0)
				goto oom;
		}
	} else if (caps && !cJSON_IsNull(caps)) {
		snprintf(why, whylen, "capabilities: not a list");
		goto fail;
	}
	m = cJSON_GetObjectItemCaseSensitive(j, "metadata");
	if (m && !cJSON_IsObject(m) && !cJSON_IsNull(m)) {
		snprintf(why, whylen, "metadata: not an object");
		goto fail;
	}
	if ((meta = cJSON_IsObject(m) ? cJSON_Duplicate(m, 1) : cJSON_CreateObject()) == NULL)
		goto oom;
	/* Anything else the legacy file said is kept, under its own name. */
	cJSON_ArrayForEach(item, j)
	{
		int known = strcmp(item->string, "capabilities") == 0 ||
			    strcmp(item->string, "metadata") == 0 ||
			    strcmp(item->string, "kind") == 0;

		for (i = 0; id_keys[i]; i++)
			known |= strcmp(item->string, id_keys[i]) == 0;
		if (known || cJSON_GetObjectItemCaseSensitive(meta, item->string))
			continue;
		if (!cJSON_AddItemToObject(meta, item->string, cJSON_Duplicate(item, 1)))
			goto oom;
	}
	if ((text = cJSON_PrintUnformatted(meta)) == NULL)
		goto oom;
	if (co_record_set_metadata(r, text) < 0) {
		snprintf(why, whylen, "%s", co_error_last());
		goto fail;
	}
	free(text);
	cJSON_Delete(meta);
	return r;
oom:
	snprintf(why, whylen, "out of memory");
fail:
	free(text);
	cJSON_Delete(meta);
	co_record_free(r);
	return NULL;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n > m && strcmp(s + n - m, suf) == 0;
}

static int add_bad(co_strv *bad, const char *file, const char *why)
{
	char line[1024];

	snprintf(line, sizeof(line), "%s: %s", file, why);
	return co_strv_push(bad, line) < 0 ? co_error_set(CO_ENOMEM, "out of memory") : 0;
}

int co_migrate_read_swarms(co_record_list *out, co_strv *bad, const char *dir)
{
	co_strv names = {NULL, 0};
	co_record_list l = {NULL, 0, 0};
	struct dirent *de;
	DIR *d = opendir(dir);
	size_t i, k;
	int error = 0;

	if (!d)
		return co_error_set(CO_EIO, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    !(ends_with(de->d_name, ".json") || ends_with(de->d_name, ".yaml") ||
		      ends_with(de->d_name, ".yml")))
			continue;
		if (co_strv_push(&names, de->d_name) < 0) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
	}
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(char *), name_cmp);
	for (i = 0; i < names.n; i++) {
		char path[4096], why[512] = "", *text = NULL;
		FILE *f;
		size_t len;
		cJSON *j = NULL;
		co_record *r = NULL;

		snprintf(path, sizeof(path), "%s/%s", dir, names.v[i]);
		if ((f = fopen(path, "rb")) == NULL) {
			snprintf(why, sizeof(why), "%s", strerror(errno));
		} else if ((text = malloc(MAX_FILE + 1)) == NULL) {
			fclose(f);
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		} else {
			len = fread(text, 1, MAX_FILE + 1, f);
			fclose(f);
			text[len > MAX_FILE ? MAX_FILE : len] = '\0';
			if (len > MAX_FILE)
				snprintf(why, sizeof(why), "larger than 1 MiB");
			else if (ends_with(names.v[i], ".json") &&
				 (j = cJSON_ParseWithLength(text, len)) == NULL)
				snprintf(why, sizeof(why), "invalid JSON");
			else if (!j && (j = yaml_to_json(text, len, why, sizeof(why))) == NULL)
				;
			else if ((r = swarm_from_json(j, why, sizeof(why))) != NULL) {
				for (k = 0; k < l.n; k++)
					if (strcmp(l.items[k]->id, r->id) == 0)
						break;
				if (k < l.n) {
					snprintf(why, sizeof(why), "duplicate swarm ID \"%s\"",
						 r->id);
					co_record_free(r);
					r = NULL;
				}
			}
		}
		free(text);
		cJSON_Delete(j);
		if (r && co_record_list_push(&l, r) < 0) { /* it freed r */
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		if (!r && (error = add_bad(bad, names.v[i], why[0] ? why : "unreadable")) < 0)
			goto done;
	}
	for (i = 0; i < l.n; i++) {
		if ((error = co_record_list_push(out, l.items[i])) < 0) {
			l.items[i] = NULL;
			for (k = i + 1; k < l.n; k++)
				co_record_free(l.items[k]);
			l.n = 0;
			goto done;
		}
	}
	l.n = 0;
done:
	co_record_list_clear(&l);
	co_strv_clear(&names);
	closedir(d);
	return error;
}
