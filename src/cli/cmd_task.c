/*
 * cmd_task.c - `cutover task create|get|list|claim|release|renew`.
 *
 * Each subcommand checks everything it can (IDs, the swarm name, --meta
 * JSON, --ttl, statuses) before it opens a store, so that bad input never
 * reaches a store and never waits on one.  The store decides who wins a
 * claim; this file only reports the outcome: the record on success, and on
 * a refused claim, release or renew the holder's name on stderr (and the
 * current record on stdout with --json, so scripts learn it too).
 */
#include "cmd_records.h"

#include "../core/error.h"
#include "../core/id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_CREATE "cutover task create ID [--type T] [--meta JSON] [--blocked-by A,B]"
#define U_GET "cutover task get ID"
#define U_LIST "cutover task list [--status S]"
#define U_CLAIM "cutover task claim ID --swarm S [--ttl SECONDS]"
#define U_RELEASE "cutover task release ID --swarm S [--status available|complete|failed]"
#define U_RENEW "cutover task renew ID --swarm S --ttl SECONDS"

static const char h_create[] =
    "usage: " U_CREATE "\n\n"
    "Create a task at rev 1.  Creating an existing task again succeeds when it is\n"
    "identical (type, metadata, blockers) and is a conflict (exit 3) otherwise.\n"
    "A task with --blocked-by starts as `blocked`, any other as `available`.\n\n"
    "  --type T          free-form type (\"build\", \"test\", ...)\n"
    "  --meta JSON       a JSON object of at most 64 KiB\n"
    "  --blocked-by A,B  IDs of the tasks this one waits for\n\n"
    "Examples:\n"
    "  cutover task create P0.1.2 --type build --meta '{\"area\":\"sip\"}'\n"
    "  cutover --backend etcd task create P0.2 --blocked-by P0.1.2\n";
static const char h_get[] =
    "usage: " U_GET "\n\n"
    "Print one task (an expired claim shows as available).  Exit 4 if absent.\n\n"
    "Example:\n  cutover --json task get P0.1.2\n";
static const char h_list[] =
    "usage: " U_LIST "\n\n"
    "List tasks sorted by ID, optionally only those with status S\n"
    "(available, claimed, blocked, complete, failed).  --json prints an array.\n\n"
    "Example:\n  cutover task list --status available\n";
static const char h_claim[] =
    "usage: " U_CLAIM "\n\n"
    "Claim a task for swarm S, optionally for SECONDS only.  Exactly one of many\n"
    "concurrent claimers wins (exit 0); the others exit 3 and learn the owner.\n"
    "Claiming a task one already holds renews it.\n\n"
    "Examples:\n"
    "  cutover task claim P0.1.2 --swarm swarm-a --ttl 300\n"
    "  cutover --json --backend etcd task claim P0.1.2 --swarm swarm-b\n";
static const char h_release[] =
    "usage: " U_RELEASE "\n\n"
    "Release a task held by swarm S, back to available (the default) or as\n"
    "complete or failed.  Only the owner may release (exit 3 otherwise).\n\n"
    "Example:\n  cutover task release P0.1.2 --swarm swarm-a --status complete\n";
static const char h_renew[] =
    "usage: " U_RENEW "\n\n"
    "Extend the claim held by swarm S to now + SECONDS.  Exit 3 if S does not\n"
    "hold the task.\n\n"
    "Example:\n  cutover task renew P0.1.2 --swarm swarm-a --ttl 300\n";

static int check_swarm(const char *swarm, const char *usage)
{
	if (swarm == NULL)
		return co_cli_usage_error(usage, "--swarm is required");
	if (co_id_validate(swarm) < 0)
		return co_cli_error_prefix(CO_EINVAL, "--swarm");
	return 0;
}

/*
 * A claim, release or renew that the store refused as a conflict: say why
 * in the operator's words, and with --json print the record as it is now.
 */
static int refused(co_cli *ctx, const char *op, const char *id, const char *swarm,
		   const co_record *cur)
{
	char why[512];

	snprintf(why, sizeof(why), "%s", co_error_last());
	if (cur == NULL)
		return co_error_set(CO_ECONFLICT, "%s %s: %s", op, id, why);
	if (ctx->json)
		co_cli_print_record(ctx, cur);
	if (cur->status == CO_STATUS_CLAIMED && cur->owner &&
	    strcmp(cur->owner, swarm) != 0)
		return co_error_set(CO_ECONFLICT, "%s %s: %s: claimed by %s", op, id,
				    strcmp(op, "claim") == 0 ? "lost" : "not owner",
				    cur->owner);
	if (strcmp(op, "claim") == 0)
		return co_error_set(CO_ECONFLICT, "claim %s: not claimable: status %s",
				    id, co_status_name(cur->status));
	return co_error_set(CO_ECONFLICT, "%s %s: not claimed by %s (status %s)", op, id,
			    swarm, co_status_name(cur->status));
}

static int task_create(int argc, char **argv, co_cli *ctx)
{
	const char *type = NULL, *meta = NULL, *blocked = NULL, *id = NULL;
	co_cli_opt opts[] = {{"type", &type, NULL},
			     {"meta", &meta, NULL},
			     {"blocked-by", &blocked, NULL},
			     {NULL, NULL, NULL}};
	co_record *task = NULL, *out = NULL;
	co_cli_data d = {0};
	size_t i;
	int error;

	if ((error = co_cli_one_id(&id, ctx, argc, argv, CO_KIND_TASK, opts, U_CREATE,
				   h_create)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_record_new(&task, CO_KIND_TASK, id)) < 0)
		goto done;
	if (type && (task->type = strdup(type)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	if (meta && (error = co_record_set_metadata(task, meta)) < 0) {
		error = co_cli_error_prefix(error, "--meta");
		goto done;
	}
	if (blocked) {
		if ((error = co_strv_split(&task->blocked_by, blocked)) < 0)
			goto done;
		for (i = 0; i < task->blocked_by.n; i++) {
			if (co_id_validate(task->blocked_by.v[i]) < 0) {
				error = co_cli_error_prefix(CO_EINVAL, "--blocked-by");
				goto done;
			}
		}
		if (task->blocked_by.n > 0)
			task->status = CO_STATUS_BLOCKED;
	}
	if ((error = co_cli_data_open(&d, ctx)) < 0 ||
	    (error = co_cli_data_task_create(&out, &d, task)) < 0 ||
	    (error = co_cli_print_record(ctx, out)) < 0)
		goto done;
done:
	co_record_free(out);
	co_record_free(task);
	co_cli_data_close(&d);
	return error;
}

static int task_get(int argc, char **argv, co_cli *ctx)
{
	return co_cli_record_get(argc, argv, ctx, CO_KIND_TASK, U_GET, h_get);
}

static int task_list(int argc, char **argv, co_cli *ctx)
{
	const char *status = NULL, *pos[1];
	co_cli_opt opts[] = {{"status", &status, NULL}, {NULL, NULL, NULL}};
	co_record_list all = {0}, some = {0};
	co_status want = CO_STATUS_AVAILABLE;
	co_cli_data d = {0};
	co_record *r;
	size_t n, i;
	int error;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_LIST, h_list)) !=
	    0)
		return error < 0 ? error : 0;
	if (status && (error = co_status_parse(&want, status)) < 0)
		return co_cli_error_prefix(CO_EINVAL, "--status");
	if ((error = co_cli_data_open(&d, ctx)) < 0 ||
	    (error = co_cli_data_list(&all, &d, CO_KIND_TASK)) < 0)
		goto done;
	for (i = 0; i < all.n; i++) {
		if (status && all.items[i]->status != want)
			continue;
		r = all.items[i];
		all.items[i] = NULL; /* `some` owns it now (or freed it on failure) */
		if ((error = co_record_list_push(&some, r)) < 0)
			goto done;
	}
	error = co_cli_print_list(ctx, &some);
done:
	co_record_list_clear(&some);
	co_record_list_clear(&all);
	co_cli_data_close(&d);
	return error;
}

/* claim, release and renew share their shape. */
enum op { OP_CLAIM, OP_RELEASE, OP_RENEW };

static int task_mutate(int argc, char **argv, co_cli *ctx, enum op op)
{
	static const char *const usages[] = {U_CLAIM, U_RELEASE, U_RENEW};
	static const char *const helps[] = {h_claim, h_release, h_renew};
	static const char *const names[] = {"claim", "release", "renew"};
	const char *swarm = NULL, *ttl_s = NULL, *status = NULL, *id = NULL;
	co_cli_opt claim_opts[] = {
	    {"swarm", &swarm, NULL}, {"ttl", &ttl_s, NULL}, {NULL, NULL, NULL}};
	co_cli_opt release_opts[] = {
	    {"swarm", &swarm, NULL}, {"status", &status, NULL}, {NULL, NULL, NULL}};
	co_status to = CO_STATUS_AVAILABLE;
	co_record *r = NULL;
	co_cli_data d = {0};
	long long ttl = 0;
	int error;

	if ((error = co_cli_one_id(&id, ctx, argc, argv, CO_KIND_TASK,
				   op == OP_RELEASE ? release_opts : claim_opts, usages[op],
				   helps[op])) != 0)
		return error < 0 ? error : 0;
	if ((error = check_swarm(swarm, usages[op])) < 0)
		return error;
	if (op == OP_RENEW && ttl_s == NULL)
		return co_cli_usage_error(usages[op], "--ttl is required");
	if (ttl_s && (error = co_cli_parse_ttl(&ttl, "--ttl", ttl_s)) < 0)
		return error;
	if (status) {
		if ((error = co_status_parse(&to, status)) < 0 ||
		    (to != CO_STATUS_AVAILABLE && to != CO_STATUS_COMPLETE &&
		     to != CO_STATUS_FAILED))
			return co_error_set(CO_EINVAL,
					    "--status \"%s\": expected available, "
					    "complete or failed",
					    status);
	}
	if ((error = co_cli_data_open(&d, ctx)) < 0)
		goto done;
	if (op == OP_CLAIM)
		error = co_cli_data_claim(&r, &d, id, swarm, ttl);
	else if (op == OP_RELEASE)
		error = co_cli_data_release(&r, &d, id, swarm, to);
	else
		error = co_cli_data_renew(&r, &d, id, swarm, ttl);
	if (error == CO_ECONFLICT) {
		error = refused(ctx, names[op], id, swarm, r);
		goto done;
	}
	if (error < 0)
		goto done;
	error = co_cli_print_record(ctx, r);
done:
	co_record_free(r);
	co_cli_data_close(&d);
	return error;
}

static int task_claim(int argc, char **argv, co_cli *ctx)
{
	return task_mutate(argc, argv, ctx, OP_CLAIM);
}

static int task_release(int argc, char **argv, co_cli *ctx)
{
	return task_mutate(argc, argv, ctx, OP_RELEASE);
}

static int task_renew(int argc, char **argv, co_cli *ctx)
{
	return task_mutate(argc, argv, ctx, OP_RENEW);
}

static const co_cli_subcommand subs[] = {
    {"create", task_create, U_CREATE},
    {"get", task_get, U_GET},
    {"list", task_list, U_LIST},
    {"claim", task_claim, U_CLAIM},
    {"release", task_release, U_RELEASE},
    {"renew", task_renew, U_RENEW},
};

int co_cli_task(int argc, char **argv, co_cli *ctx)
{
	return co_cli_subcommand_dispatch(
	    argc, argv, ctx, "task", "cutover task create|get|list|claim|release|renew ...",
	    subs, sizeof(subs) / sizeof(subs[0]),
	    "\nData commands go through the router (the flags decide which store is\n"
	    "primary for each ID); --backend git|etcd talks to one store directly.\n"
	    "Run `cutover task SUBCOMMAND --help` for details.\n\n"
	    "Examples:\n"
	    "  cutover task create P0.1.2 --type build\n"
	    "  cutover task claim P0.1.2 --swarm swarm-a --ttl 300\n"
	    "  cutover task release P0.1.2 --swarm swarm-a --status complete\n"
	    "  cutover --json --backend etcd task list --status claimed\n");
}
