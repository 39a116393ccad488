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

int co_cli_fleet_get(co_cli_fleet_answers *g, const co_config *c, const char *cmd,
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
		co_cli_fleet_answers_clear(g);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	for (i = 0; i < g->n; i++)
		snprintf(g->calls[i].url, sizeof g->calls[i].url, "%s", g->m[i].admin_url);
	token = co_cli_fleet_token(c, cmd);
	error = co_fleet_fanout_get(g->calls, g->n, path, token, CO_CLI_FLEET_CALL_MS,
				    g->answers);
	co_cli_fleet_token_free(token);
	if (error < 0) {
		co_cli_fleet_answers_clear(g);
		return error;
	}
	g->answered = error;
	return 0;
}

void co_cli_fleet_refuse(co_cli_fleet_answers *g, size_t i, const char *why)
{
	if (g->calls[i].error[0])
		return;
	snprintf(g->calls[i].error, sizeof g->calls[i].error, "%s", why);
	free(g->answers[i]);
	g->answers[i] = NULL;
	g->answered--;
}

int co_cli_fleet_add_routers(cJSON *o, co_cli_fleet_answers *g)
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

void co_cli_fleet_answers_clear(co_cli_fleet_answers *g)
{
	size_t i;

	for (i = 0; g->answers && i < g->n; i++)
		free(g->answers[i]);
	free(g->answers);
	free(g->calls);
	free(g->m);
	memset(g, 0, sizeof *g);
}
