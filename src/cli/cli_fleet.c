/*
 * cli_fleet.c - what the fleet commands share (`rollback --fleet`,
 * `audit --fleet`): the list of routers (from etcd, else the cache every
 * serve keeps in the state dir) and the admin token they are called with.
 */
#include "cli.h"

#include "../core/error.h"
#include "../server/server.h"
#include "router/fleet.h"

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
