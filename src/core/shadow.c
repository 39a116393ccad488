/*
 * shadow.c - shadow read quality: the sampling rule, the ignore rules and
 * the config value that holds them (shadow.h).  The router applies them
 * (router.c: shadow_take, shadow_compare); config.c parses `shadow:`.
 * Matching paths is redact.c's job: an ignore list is a redaction policy
 * whose matches are dropped instead of hidden.
 */
#include "shadow.h"

#include "error.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void co_shadow_cfg_init(co_shadow_cfg *c)
{
	int op;

	memset(c, 0, sizeof(*c));
	c->sample = 100;
	for (op = 0; op < CO_OP__COUNT; op++)
		c->sample_op[op] = -1;
}

static void free_ignore(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void co_shadow_cfg_clear(co_shadow_cfg *c)
{
	free_ignore(c->ignore, c->n_ignore);
	co_redact_free(c->ignore_rd);
	co_shadow_cfg_init(c);
}

int co_shadow_cfg_set_ignore(co_shadow_cfg *c, const char *const *entries, size_t n)
{
	co_redact *rd = NULL;
	char **copy = NULL;
	size_t i;
	int error;

	for (i = 0; i < n; i++)
		if (entries[i] && entries[i][0] == '@')
			return co_error_set(CO_EINVAL,
					    "shadow.ignore: \"%s\": no @ words here "
					    "(list the paths to ignore)",
					    entries[i]);
	/* redact's checks name the entry; keep its words after "redact: ". */
	if (n > 0 && (error = co_redact_new(&rd, entries, n, 0)) < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", co_error_last() + 8);
		return co_error_set(error, "shadow.ignore: %s", why);
	}
	if (n > 0 && (copy = calloc(n, sizeof(*copy))) == NULL)
		goto oom;
	for (i = 0; i < n; i++)
		if ((copy[i] = strdup(entries[i])) == NULL)
			goto oom;
	free_ignore(c->ignore, c->n_ignore);
	co_redact_free(c->ignore_rd);
	c->ignore = copy;
	c->n_ignore = n;
	c->ignore_rd = rd;
	return 0;
oom:
	free_ignore(copy, copy ? n : 0);
	co_redact_free(rd);
	return co_error_set(CO_ENOMEM, "shadow.ignore: out of memory");
}

int co_shadow_is_read(co_op op)
{
	return op == CO_OP_TASK_GET || op == CO_OP_TASK_LIST || op == CO_OP_SWARM_GET ||
	       op == CO_OP_SWARM_LIST;
}

int co_shadow_percent(const co_shadow_cfg *c, co_op op)
{
	if (c == NULL)
		return 100;
	if ((int)op >= 0 && op < CO_OP__COUNT && c->sample_op[op] >= 0)
		return c->sample_op[op];
	return c->sample;
}

int co_shadow_sampled(uint64_t k, int percent)
{
	if (percent >= 100)
		return 1;
	if (percent <= 0)
		return 0;
	return (int)((k % 100) * (uint64_t)percent % 100) < percent;
}

int64_t co_shadow_compared(const co_shadow_cfg *c, const int64_t reads[CO_OP__COUNT])
{
	int64_t sum = 0;
	int op;

	for (op = 0; op < CO_OP__COUNT; op++) {
		int p = co_shadow_percent(c, (co_op)op);

		if (co_shadow_is_read((co_op)op) && reads[op] > 0 && p > 0)
			sum += 1 + (reads[op] - 1) * p / 100;
	}
	return sum;
}

int co_shadow_equal(const co_shadow_cfg *c, const char *git_json, const char *etcd_json)
{
	if (c == NULL || c->ignore_rd == NULL) {
		if (git_json == NULL || etcd_json == NULL)
			return git_json == etcd_json;
		return strcmp(git_json, etcd_json) == 0;
	}
	return co_redact_equal_without(c->ignore_rd, git_json, etcd_json);
}

cJSON *co_shadow_status_json(const co_shadow_cfg *c)
{
	cJSON *o = cJSON_CreateObject(), *smp, *ign;
	size_t i;
	int op;

	if (o == NULL || (smp = cJSON_AddObjectToObject(o, "sample")) == NULL ||
	    (ign = cJSON_AddArrayToObject(o, "ignore")) == NULL)
		goto oom;
	for (op = 0; op < CO_OP__COUNT; op++)
		if (co_shadow_is_read((co_op)op) &&
		    cJSON_AddNumberToObject(smp, co_op_name((co_op)op),
					    co_shadow_percent(c, (co_op)op)) == NULL)
			goto oom;
	for (i = 0; c && i < c->n_ignore; i++) {
		cJSON *s = cJSON_CreateString(c->ignore[i]);

		if (s == NULL || !cJSON_AddItemToArray(ign, s)) {
			cJSON_Delete(s);
			goto oom;
		}
	}
	return o;
oom:
	cJSON_Delete(o);
	return NULL;
}

void co_shadow_status_print(FILE *out, const co_shadow_cfg *c)
{
	const char *sep = "";
	size_t i;
	int op;

	fprintf(out, "shadow:       compared");
	for (op = 0; op < CO_OP__COUNT; op++)
		if (co_shadow_is_read((co_op)op)) {
			fprintf(out, "%s %s %d%%", sep, co_op_name((co_op)op),
				co_shadow_percent(c, (co_op)op));
			sep = ",";
		}
	fprintf(out, "\nshadow ignore: ");
	if (c == NULL || c->n_ignore == 0)
		fprintf(out, "nothing");
	for (i = 0; c && i < c->n_ignore; i++)
		fprintf(out, "%s%s", i ? ", " : "", c->ignore[i]);
	fputc('\n', out);
}
