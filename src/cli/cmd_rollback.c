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
#include "router/router.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long rollback drains the git-bound outbox before pulling the switch. */
#define ROLLBACK_DRAIN_MS 5000

#define U_ROLLBACK "cutover rollback [--reason TEXT] [--force]"
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
    "  --force        pull it even after `cutover complete`\n\n"
    "Example:\n  cutover rollback --reason 'etcd latency p99 over 50 ms'\n";
static const char h_resume[] =
    "usage: " U_RESUME "\n\n"
    "Turn the kill switch off: the configured modes apply again.  Recorded in the\n"
    "audit trail.\n\n"
    "Example:\n  cutover resume --reason 'etcd healthy again'\n";

static void print_result(co_cli *ctx, const char *action, const co_flags *f, int drained,
			 int64_t left)
{
	if (ctx->json) {
		cJSON *o = cJSON_CreateObject();
		char *s;

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
		printf("kill switch on: %s\n", f->kill_reason);
	} else {
		printf("kill switch off\n");
	}
	fflush(stdout);
}

int co_cli_rollback(int argc, char **argv, co_cli *ctx)
{
	const char *reason = NULL, *pos[1];
	int force = 0;
	co_cli_opt opts[] = {
	    {"reason", &reason, NULL}, {"force", NULL, &force}, {NULL, NULL, NULL}};
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
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_cli_open_router(&cr, ctx)) < 0)
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
	print_result(ctx, "rollback", &to, 1, left);
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
