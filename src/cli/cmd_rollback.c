/*
 * cmd_rollback.c - `cutover rollback [--reason TEXT]` and `cutover resume`.
 *
 * Rollback pulls the kill switch: every operation goes to git, as in
 * shadow, at once (running routers pick the file change up within 100 ms).
 * DESIGN §4 asks that it take effect only after git holds every write etcd
 * acknowledged, so the git-bound outbox is drained first, as far as it
 * goes in a bounded time, and what is left is reported.  Entries still
 * pending are not lost: routers apply an ID's git-bound entries before git
 * serves it, and every router drains.  Nothing here needs etcd: the router
 * opens the etcd store without contacting it, and a git-bound entry that
 * needs etcd (a crash intent) just stays pending.  Pulling the switch never
 * fails on a bad flags file either: the last good flags are used then.
 *
 * Resume turns the switch off; the configured modes apply again.
 */
#include "cli.h"

#include "../core/error.h"
#include "../core/outbox.h"
#include "flags/trip.h"
#include "flags/watcher.h"
#include "router/fleet.h"
#include "router/router.h"
#include "../server/server.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long rollback drains the git-bound outbox before pulling the switch. */
#define ROLLBACK_DRAIN_MS 5000

#define U_ROLLBACK "cutover rollback [--reason TEXT] [--force] [--fleet]"
#define U_RESUME "cutover resume [--reason TEXT]"

static const char h_rollback[] =
    "usage: " U_ROLLBACK "\n\n"
    "Pull the kill switch: every operation goes to git (etcd still mirrors, as in\n"
    "shadow), whatever the stage says.  First the outbox entries owed to git are\n"
    "applied for up to 5 s and what is left is reported (routers apply the rest\n"
    "before git serves those IDs).  Works while etcd is down, and does not wait\n"
    "more than 2 s for another writer of the flags: if one is stuck holding\n"
    "their lock, it says which process and pulls the switch anyway (that writer\n"
    "cannot save over it).  Recorded in the audit trail with the reason.\n"
    "`cutover resume` lifts it.  After `cutover complete` git is stale and it is\n"
    "refused (exit 3) unless --force (recorded in the audit trail).\n\n"
    "  --reason TEXT  why (default \"manual rollback\")\n"
    "  --force        pull it even after `cutover complete`\n"
    "  --fleet        also POST /v1/admin/rollback to every registered router\n"
    "                 (config fleet:) at once, with the admin token, and report\n"
    "                 which answered; the routers come from etcd, or when etcd\n"
    "                 does not answer from the list a serve here last cached\n"
    "                 (<state dir>/" CO_FLEET_CACHE_FILE "). Exit 2 if one did not\n"
    "                 answer (the others, and this host, are rolled back).\n\n"
    "In fleet mode the switch also goes into the fleet's flags in etcd when etcd\n"
    "answers (every router applies it); --fleet reaches them when it does not.\n\n"
    "Example:\n  cutover rollback --reason 'etcd latency p99 over 50 ms'\n"
    "  cutover rollback --fleet --reason 'etcd down'\n";
static const char h_resume[] =
    "usage: " U_RESUME "\n\n"
    "Turn the kill switch off: the configured modes apply again.  Recorded in the\n"
    "audit trail.\n\n"
    "Example:\n  cutover resume --reason 'etcd healthy again'\n";

static void print_result_with(co_cli *ctx, const char *action, const co_flags *f,
			      int drained, int64_t left, cJSON *fleet)
{
	if (ctx->json) {
		cJSON *o = cJSON_CreateObject();
		char *s;

		if (fleet)
			cJSON_AddItemToObject(o, "fleet", fleet);
		cJSON_AddStringToObject(o, "action", action);
		cJSON_AddBoolToObject(o, "kill_switch", f->kill_switch);
		cJSON_AddStringToObject(o, "kill_reason", f->kill_reason);
		if (drained)
			cJSON_AddNumberToObject(o, "outbox_git_left", (double)left);
		if ((s = cJSON_PrintUnformatted(o)) != NULL)
			puts(s);
		free(s);
		cJSON_Delete(o);
	} else if (f->kill_switch) {
		cJSON_Delete(fleet);
		printf("kill switch on: %s\n", f->kill_reason);
	} else {
		cJSON_Delete(fleet);
		printf("kill switch off\n");
	}
	fflush(stdout);
}

static void print_result(co_cli *ctx, const char *action, const co_flags *f, int drained,
			 int64_t left)
{
	print_result_with(ctx, action, f, drained, left, NULL);
}

static int set_kill(void *ctx, co_flags *f)
{
	co_flags_set_kill(f, 1, ctx);
	co_flags_stamp(f, co_cli_who(), NULL);
	return 0;
}

/*
 * Fleet mode: the switch into etcd's document (every router applies it),
 * best effort: with etcd down this host's switch is pulled and --fleet
 * reaches the others.
 */
static void fleet_trip(const co_config *c, const char *reason)
{
	co_fleet *fleet = NULL;

	if (co_fleet_open_config(&fleet, c) < 0 ||
	    co_fleet_flags_update(NULL, NULL, fleet, set_kill, (void *)reason) < 0)
		fprintf(stderr, "cutover: rollback: warning: the fleet's flags in etcd were "
				"not changed: %s%s\n", co_error_last(),
			" (--fleet reaches the routers without etcd)");
	else
		fprintf(stderr, "cutover: rollback: kill switch on in the fleet's flags\n");
	co_error_clear();
	co_fleet_close(fleet);
}

/*
 * --fleet: POST /v1/admin/rollback to every registered router at once.
 * *report gets one entry per router; CO_EUNAVAIL naming those that did
 * not answer.
 */
static int fleet_fanout(cJSON **report, const co_config *c, const char *reason)
{
	co_fleet_member *m = NULL;
	co_fleet_call *calls = NULL;
	char *token = NULL, *body = NULL, missed[1024] = "";
	cJSON *b = cJSON_CreateObject();
	size_t n = 0, i, used = 0;
	int error, answered;

	*report = cJSON_CreateArray();
	if ((error = co_cli_fleet_routers(&m, &n, c, "rollback --fleet")) < 0)
		goto done;
	token = co_cli_fleet_token(c, "rollback --fleet");
	if (!b || !cJSON_AddStringToObject(b, "reason", reason) ||
	    !(body = cJSON_PrintUnformatted(b)) ||
	    !(calls = calloc(n + 1, sizeof *calls))) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++)
		snprintf(calls[i].url, sizeof calls[i].url, "%s", m[i].admin_url);
	if ((error = answered = co_fleet_fanout(calls, n, "/v1/admin/rollback", body, token,
						CO_CLI_FLEET_CALL_MS)) < 0)
		goto done;
	for (i = 0; i < n; i++) {
		cJSON *r = cJSON_CreateObject();
		int ok = calls[i].error[0] == '\0';

		cJSON_AddStringToObject(r, "id", m[i].id);
		cJSON_AddStringToObject(r, "admin_url", m[i].admin_url);
		cJSON_AddBoolToObject(r, "answered", ok);
		cJSON_AddNumberToObject(r, "status", (double)calls[i].status);
		cJSON_AddStringToObject(r, "error", calls[i].error);
		cJSON_AddItemToArray(*report, r);
		fprintf(stderr, "cutover: rollback --fleet: %s %s: %s\n", m[i].id,
			m[i].admin_url[0] ? m[i].admin_url : "-",
			ok ? "kill switch on" : calls[i].error);
		if (!ok && used < sizeof missed - 1)
			used += (size_t)snprintf(missed + used, sizeof missed - used, "%s%s",
						 used ? ", " : "", m[i].id);
	}
	error = (size_t)answered == n
		    ? 0
		    : co_error_set(CO_EUNAVAIL,
				   "rollback --fleet: %d of %zu routers answered; not: %s "
				   "(pull their kill switch on their host: `cutover rollback`)",
				   answered, n, missed);
done:
	co_cli_fleet_token_free(token);
	cJSON_Delete(b);
	free(body);
	free(calls);
	free(m);
	return error;
}

int co_cli_rollback(int argc, char **argv, co_cli *ctx)
{
	const char *reason = NULL, *pos[1];
	int force = 0, fleet = 0, fleet_error = 0;
	cJSON *report = NULL;
	co_cli_opt opts[] = {{"reason", &reason, NULL},
			     {"force", NULL, &force},
			     {"fleet", NULL, &fleet},
			     {NULL, NULL, NULL}};
	co_cli_router *cr = NULL;
	const co_config *c;
	co_flags from, to;
	int64_t left = 0;
	size_t n;
	int error;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_ROLLBACK,
				  h_rollback)) != 0)
		return error < 0 ? error : 0;
	if (reason == NULL || *reason == '\0')
		reason = "manual rollback";
	if ((error = co_cli_config(&c, ctx)) < 0)
		goto done;
	if (fleet && !c->fleet_enabled) { /* before anything is changed */
		error = co_error_set(CO_EINVAL, "rollback --fleet: fleet mode is off (config "
						"fleet.enabled: true)");
		goto done;
	}
	if ((error = co_cli_open_router(&cr, ctx)) < 0)
		goto done;

	/* Git first holds everything acknowledged elsewhere, as far as it can. */
	if (co_router_drain(cr->router, "git", ROLLBACK_DRAIN_MS, &left) < 0 || left > 0)
		fprintf(
		    stderr,
		    "cutover: rollback: %lld outbox entr%s owed to git still pending%s%s "
		    "(routers apply them before git serves those IDs)\n",
		    (long long)left, left == 1 ? "y" : "ies",
		    *co_error_last() ? ": " : "", co_error_last());
	else
		fprintf(stderr, "cutover: rollback: git-bound outbox drained\n");
	co_error_clear();

	/* The one trip (flags/trip.h): under the flags lock, but a writer
	 * stuck holding it does not hold up the kill switch; a file that does
	 * not parse is kept aside and the switch pulled over the last good
	 * flags the router runs on. */
	co_flags_watcher_get(&from, cr->flags);
	if ((error = co_flags_trip_forced(c->flags_path, co_cli_who(), "rollback", reason,
					  NULL, cr->state, &from, NULL, force)) < 0)
		goto done;
	if (co_flags_load(&to, c->flags_path) < 0) {
		to = from;
		co_flags_set_kill(&to, 1, reason);
		co_error_clear();
	}
	if (c->fleet_enabled)
		fleet_trip(c, reason);
	if (fleet)
		fleet_error = fleet_fanout(&report, c, reason);
	print_result_with(ctx, "rollback", &to, 1, left, report);
	if (fleet_error < 0)
		error = fleet_error;
done:
	co_cli_router_close(cr, 0);
	return error;
}

int co_cli_resume(int argc, char **argv, co_cli *ctx)
{
	const char *reason = NULL, *pos[1];
	co_cli_opt opts[] = {{"reason", &reason, NULL}, {NULL, NULL, NULL}};
	const co_config *c;
	co_flags from, to;
	size_t n;
	int error, lock = -1;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_RESUME,
				  h_resume)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = lock = co_flags_lock(c->flags_path)) < 0 ||
	    (error = co_flags_load(&from, c->flags_path)) < 0)
		goto done;
	if (!from.kill_switch && c->fleet_enabled) {
		/* the switch may be on in the fleet and not (yet) here */
		co_fleet *fleet = NULL;
		co_flags doc;

		if ((error = co_fleet_open_config(&fleet, c)) == 0 &&
		    (error = co_fleet_flags_get(&doc, NULL, fleet)) == 0 && doc.kill_switch)
			co_flags_set_kill(&from, 1, doc.kill_reason);
		co_fleet_close(fleet);
		if (error < 0)
			goto done;
	}
	if (!from.kill_switch) {
		print_result(ctx, "resume", &from, 0, 0);
		goto done;
	}
	to = from;
	co_flags_set_kill(&to, 0, NULL);
	if ((error = co_cli_flags_commit(ctx, NULL, "resume", &from, &to, NULL, reason,
					 0)) < 0)
		goto done;
	print_result(ctx, "resume", &to, 0, 0);
done:
	co_flags_unlock(lock);
	return error;
}
