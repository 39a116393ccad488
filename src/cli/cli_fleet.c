/*
 * cli_fleet.c - what the fleet commands share (`rollback --fleet`,
 * `audit --fleet`, `report --fleet`): the list of routers (from etcd, else
 * the cache every serve keeps in the state dir), the admin token they are
 * called with, and one GET asked of every router at once.
 */
#include "cli.h"

#include "../core/error.h"
#include "../server/server.h"
#include "router/fleet.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int co_cli_fleet_routers(co_fleet_member **out, size_t *n, const co_config *c,
			 const char *cmd)
{
	co_fleet *fleet = NULL;
	char cache[4200];
	int error;

	*out = NULL;
	*n = 0;
	snprintf(cache, sizeof cache, "%s/%s", c->state_dir, CO_FLEET_CACHE_FILE);
	if ((error = co_fleet_open_config(&fleet, c)) < 0)
		return error;
	if (fleet == NULL)
		return co_error_set(CO_EINVAL, "%s: this configuration is not in fleet "
					       "mode (fleet: {enabled: true})", cmd);
	if (co_fleet_members(out, n, fleet) == 0) {
		co_fleet_members_save(cache, *out, *n);
	} else {
		fprintf(stderr, "cutover: %s: etcd: %s; using the routers cached in %s\n", cmd,
			co_error_last(), cache);
		error = co_fleet_members_load(out, n, cache);
	}
	co_fleet_close(fleet);
	if (error == 0)
		co_error_clear();
	return error;
}

char *co_cli_fleet_token(const co_config *c, const char *cmd)
{
	char *token = NULL;

	if (c->admin_token_file && *c->admin_token_file &&
	    co_server_read_token(&token, c->admin_token_file) < 0) {
		fprintf(stderr, "cutover: %s: %s; calling without a token\n", cmd,
			co_error_last());
		co_error_clear();
		return NULL;
	}
	return token;
}

void co_cli_fleet_token_free(char *token)
{
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
}

static void answers_clear(co_cli_fleet_answers *g);

/*
 * GET `path` (with the admin token) from every live router at once, each
 * bounded by CO_CLI_FLEET_CALL_MS.  Errors as co_cli_fleet_routers, and
 * CO_ENOMEM; a router that does not answer is not an error here.
 */
static int fleet_get(co_cli_fleet_answers *g, const co_config *c, const char *cmd,
		     const char *path)
{
	char *token = NULL;
	size_t i;
	int error;

	memset(g, 0, sizeof *g);
	g->cmd = cmd;
	if ((error = co_cli_fleet_routers(&g->m, &g->n, c, cmd)) < 0)
		return error;
	if ((g->calls = calloc(g->n + 1, sizeof *g->calls)) == NULL ||
	    (g->answers = calloc(g->n + 1, sizeof *g->answers)) == NULL) {
		answers_clear(g);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	for (i = 0; i < g->n; i++)
		snprintf(g->calls[i].url, sizeof g->calls[i].url, "%s", g->m[i].admin_url);
	token = co_cli_fleet_token(c, cmd);
	error = co_fleet_fanout_get(g->calls, g->n, path, token, CO_CLI_FLEET_CALL_MS,
				    g->answers);
	co_cli_fleet_token_free(token);
	if (error < 0) {
		answers_clear(g);
		return error;
	}
	g->answered = error;
	return 0;
}

/* Count router i as not answering, because its answer was `why`. */
static void refuse(co_cli_fleet_answers *g, size_t i, const char *why)
{
	if (g->calls[i].error[0])
		return;
	snprintf(g->calls[i].error, sizeof g->calls[i].error, "%s", why);
	free(g->answers[i]);
	g->answers[i] = NULL;
	g->answered--;
}

/*
 * Add "routers": [{"id","admin_url","answered","error"}] to o, name each
 * router that did not answer on stderr and fill g->missed.  CO_ENOMEM.
 */
static int add_routers(cJSON *o, co_cli_fleet_answers *g)
{
	cJSON *routers = cJSON_AddArrayToObject(o, "routers");
	size_t i, used = 0;

	if (routers == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	g->missed[0] = '\0';
	for (i = 0; i < g->n; i++) {
		cJSON *r = cJSON_CreateObject();

		if (r == NULL || !cJSON_AddItemToArray(routers, r) ||
		    !cJSON_AddStringToObject(r, "id", g->m[i].id) ||
		    !cJSON_AddStringToObject(r, "admin_url", g->m[i].admin_url) ||
		    !cJSON_AddBoolToObject(r, "answered", !g->calls[i].error[0]) ||
		    !cJSON_AddStringToObject(r, "error", g->calls[i].error))
			return co_error_set(CO_ENOMEM, "out of memory");
		if (!g->calls[i].error[0])
			continue;
		fprintf(stderr, "cutover: %s: %s %s: %s\n", g->cmd, g->m[i].id,
			g->m[i].admin_url[0] ? g->m[i].admin_url : "-", g->calls[i].error);
		if (used < sizeof g->missed - 1)
			used += (size_t)snprintf(g->missed + used, sizeof g->missed - used,
						 "%s%s", used ? ", " : "", g->m[i].id);
	}
	return 0;
}

static void answers_clear(co_cli_fleet_answers *g)
{
	size_t i;

	for (i = 0; g->answers && i < g->n; i++)
		free(g->answers[i]);
	free(g->answers);
	free(g->calls);
	free(g->m);
	memset(g, 0, sizeof *g);
}

/* The objects of array `member` of every answer into mg->all and mg->rows. */
static int fleet_rows(co_cli_fleet_merge *mg, const char *member, const char *what)
{
	co_cli_fleet_answers *g = &mg->g;
	cJSON *row;
	size_t i, k = 0;

	if ((mg->all = cJSON_CreateArray()) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (i = 0; i < g->n; i++) {
		cJSON *page = g->answers[i] ? cJSON_Parse(g->answers[i]) : NULL;
		const cJSON *items = cJSON_GetObjectItemCaseSensitive(page, member);
		char why[128];

		if (g->answers[i] && !cJSON_IsArray(items)) {
			snprintf(why, sizeof why, "its answer is not %s", what);
			refuse(g, i, why);
			items = NULL;
		}
		cJSON_ArrayForEach(row, items)
		{
			cJSON *copy = cJSON_Duplicate(row, 1);

			if (copy && cJSON_IsObject(copy) &&
			    cJSON_AddStringToObject(copy, "router", g->m[i].id))
				cJSON_AddItemToArray(mg->all, copy);
			else
				cJSON_Delete(copy);
		}
		cJSON_Delete(page);
	}
	if ((mg->rows = calloc((size_t)cJSON_GetArraySize(mg->all) + 1, sizeof *mg->rows)) ==
	    NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	cJSON_ArrayForEach(row, mg->all) mg->rows[k++] = row;
	mg->n = k;
	return 0;
}

int co_cli_fleet_merge_get(co_cli_fleet_merge *mg, co_cli *ctx, const char *cmd,
			   const char *path, const char *member, const char *what)
{
	const co_config *c;
	int error;

	memset(mg, 0, sizeof *mg);
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = fleet_get(&mg->g, c, cmd, path)) < 0)
		return error;
	if ((mg->out = cJSON_CreateObject()) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((error = fleet_rows(mg, member, what)) < 0)
		return error;
	return add_routers(mg->out, &mg->g);
}

int co_cli_fleet_merge_print(const co_cli_fleet_merge *mg)
{
	char *text = cJSON_PrintUnformatted(mg->out);

	if (text == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	puts(text);
	free(text);
	return 0;
}

int co_cli_fleet_merge_result(const co_cli_fleet_merge *mg, const char *hint)
{
	const co_cli_fleet_answers *g = &mg->g;

	if ((size_t)g->answered == g->n)
		return 0;
	return co_error_set(CO_EUNAVAIL, "%s: %d of %zu routers answered; not: %s (%s)",
			    g->cmd, g->answered, g->n, g->missed, hint);
}

void co_cli_fleet_merge_clear(co_cli_fleet_merge *mg)
{
	answers_clear(&mg->g);
	free(mg->rows);
	cJSON_Delete(mg->out); /* before `all`: it may hold references into it */
	cJSON_Delete(mg->all);
	memset(mg, 0, sizeof *mg);
}
