/*
 * cmd_flags.c - `cutover flags show|set|explain`.
 *
 * show prints the flag file as the router reads it (YAML, or JSON with
 * --json, with the effective setting of every operation spelled out), set
 * changes one operation (or the default) and explain answers "where does
 * this operation on this ID go right now?" with the same co_flags_route()
 * the router calls, so the answer cannot drift from what happens.
 *
 * A change passes the go/no-go gate (co_cli_gate) like `cutover stage`
 * does (towards etcd: a passing run, no legacy writer; between git and an
 * etcd primary, either way: through shadow); every change is saved atomically
 * and recorded in the audit trail (co_cli_flags_commit).  Nothing here
 * opens a store: flags are a local file.
 */
#include "cli.h"

#include "../core/error.h"
#include "../core/id.h"
#include "../core/state.h"
#include "flags/stage.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_SHOW "cutover flags show [--json]"
#define U_SET                                                                            \
	"cutover flags set OP|default MODE [--etcd-percent N] [--reason TEXT] [--force]\n" \
	"                  [--dry-run]\n"                                                   \
	"       cutover flags set mirror async|sync [--reason TEXT]"
#define U_EXPLAIN "cutover flags explain OP ID [--json]"
#define U_FLAGS "cutover flags show|set|explain ..."

static const char h_show[] =
    "usage: " U_SHOW "\n\n"
    "Print the flags file (CUTOVER_FLAGS, default <state dir>/flags.yaml) as YAML,\n"
    "or with --json as an object with the kill switch, the stage, the default and\n"
    "every operation's effective mode and percent.  A missing file means every\n"
    "operation in mode git.\n\n"
    "Example:\n  cutover --json flags show | jq .operations.task_claim\n";
static const char h_set[] =
    "usage: " U_SET "\n\n"
    "Set the mode of one operation (task_create, task_get, task_list, task_claim,\n"
    "task_release, task_renew, swarm_register, swarm_get, swarm_list, swarm_remove,\n"
    "watch), or of `default` (operations without their own setting).  MODE is git,\n"
    "shadow, dual or etcd; dual needs --etcd-percent N (0..100): etcd is primary\n"
    "for IDs whose bucket is below N.\n\n"
    "Moving an operation towards etcd passes the go/no-go gate: it needs a\n"
    "reconciliation run that passed within reconcile.go_no_go_window, and, if etcd\n"
    "could become a primary, no commit by a legacy git client within that window.\n"
    "An operation goes between git and a setting where etcd can be primary (dual\n"
    "above 0, or etcd), either way, only through shadow.\n"
    "A refusal exits 3 (conflict) and says why; --force overrides it, and the\n"
    "override is recorded in the audit trail with the change.\n\n"
    "`flags set mirror async|sync` chooses how the other store follows the one that\n"
    "decides, in dual and etcd.  async (the default): the record goes there through\n"
    "the durable outbox, many records per commit or txn, so a claim etcd decides is\n"
    "acknowledged at etcd's speed, one git decides at git's, and legacy readers\n"
    "polling git see an etcd-decided write a little later (about 0.1 s while serve\n"
    "drains: it gathers 100 ms of writes a batch).  sync: the write waits for both\n"
    "stores before it is acknowledged, for legacy readers that must see every\n"
    "write in git at once; every etcd-decided write then costs a git commit.\n"
    "Shadow always mirrors etcd synchronously.\n\n"
    "  --etcd-percent N  share of IDs whose primary is etcd (dual only)\n"
    "  --reason TEXT     why, for the audit trail\n"
    "  --force           go ahead despite the go/no-go gate\n"
    "  --dry-run         change nothing: print the old and new setting, how many of\n"
    "                    today's IDs would change primary, and every go/no-go\n"
    "                    rule's verdict (exit 3 if the gate would refuse)\n\n"
    "Examples:\n"
    "  cutover flags set task_claim dual --etcd-percent 10 --reason 'canary'\n"
    "  cutover flags set default shadow\n\n"
    "Exit status: 0 changed (or already so), 1 bad input, 2 the flags lock held\n"
    "by another writer for 10 s (it names the writer), 3 refused by the gate or\n"
    "the flags changed while it ran.\n";
static const char h_explain[] =
    "usage: " U_EXPLAIN "\n\n"
    "Say where operation OP on record ID goes now: the effective mode (shadow while\n"
    "the kill switch is on), the primary that decides and the secondary that\n"
    "mirrors.  --json prints {\"op\",\"id\",\"mode\",\"primary\",\"secondary\","
    "\"kill_switch\"}.\n\n"
    "Example:\n  cutover --json flags explain task_claim P0.1.2\n";

/* The flags file of the configuration, loaded (defaults if missing). */
static int load_flags(co_flags *out, const char **path, co_cli *ctx)
{
	const co_config *c;
	int error;

	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_flags_load(out, c->flags_path)) < 0)
		return error;
	if (path)
		*path = c->flags_path;
	return 0;
}

static cJSON *setting_json(co_op_flags s)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "mode", co_mode_name(s.mode));
	cJSON_AddNumberToObject(o, "etcd_percent", s.etcd_percent);
	return o;
}

static int flags_show(int argc, char **argv, co_cli *ctx)
{
	co_cli_opt opts[] = {{NULL, NULL, NULL}};
	const char *pos[1], *path;
	cJSON *o, *ops;
	co_flags f;
	char *yaml;
	size_t n;
	int error, op;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_SHOW, h_show)) !=
	    0)
		return error < 0 ? error : 0;
	if ((error = load_flags(&f, &path, ctx)) < 0)
		return error;
	if (!ctx->json) {
		if ((error = co_flags_format(&yaml, &f)) < 0)
			return error;
		printf("# %s (stage %s)\n%s", path, co_stage_name(co_stage_of(&f)), yaml);
		free(yaml);
		return fflush(stdout) == 0 ? 0
					   : co_error_set(CO_EIO, "writing to stdout");
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddBoolToObject(o, "kill_switch", f.kill_switch);
	cJSON_AddStringToObject(o, "kill_reason", f.kill_reason);
	cJSON_AddStringToObject(o, "stage", co_stage_name(co_stage_of(&f)));
	cJSON_AddStringToObject(o, "updated_at", f.updated_at);
	cJSON_AddStringToObject(o, "updated_by", f.updated_by);
	cJSON_AddItemToObject(o, "default", setting_json(f.def));
	ops = cJSON_AddObjectToObject(o, "operations");
	for (op = 0; op < CO_OP__COUNT; op++) {
		cJSON *s = setting_json(co_flags_get(&f, (co_op)op));

		cJSON_AddBoolToObject(s, "override", f.has_op[op] != 0);
		cJSON_AddItemToObject(ops, co_op_name((co_op)op), s);
	}
	return co_cli_print_json(o);
}

/* An integer 0..100, nothing else. */
static int parse_percent(int *out, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 0 || v > 100)
		return co_error_set(
		    CO_EINVAL,
		    "--etcd-percent \"%s\": expected a whole number from 0 "
		    "to 100",
		    s);
	*out = (int)v;
	return 0;
}

/* `flags set mirror async|sync`: under the flags lock, audited. */
static int set_mirror(const char *how, const char *percent_s, int force,
		      const char *reason, co_cli *ctx)
{
	const co_config *c;
	co_state *st = NULL;
	co_flags from, to;
	char what[256];
	int error, lock = -1;

	if (strcmp(how, "async") != 0 && strcmp(how, "sync") != 0)
		return co_cli_usage_error(U_SET, "flags set mirror: \"%s\" is not async or "
						 "sync", how);
	if (percent_s || force)
		return co_cli_usage_error(U_SET, "flags set mirror: takes no "
						 "--etcd-percent or --force");
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = lock = co_flags_lock(c->flags_path)) < 0 ||
	    (error = load_flags(&from, NULL, ctx)) < 0)
		goto done;
	to = from;
	to.mirror_sync = strcmp(how, "sync") == 0;
	if (co_flags_equal(&from, &to)) {
		printf("no change: mirror is already %s\n", how);
		goto done;
	}
	if ((error = co_state_open(&st, c->state_dir)) < 0 ||
	    (error = co_cli_flags_commit(ctx, st, "flags set", &from, &to, "", reason,
					 0)) < 0)
		goto done;
	co_flags_diff(what, sizeof(what), &from, &to);
	printf("%s\n", what);
done:
	co_flags_unlock(lock);
	co_state_close(st);
	return error;
}

static int flags_set(int argc, char **argv, co_cli *ctx)
{
	const char *percent_s = NULL, *reason = NULL, *pos[2];
	int force = 0, dry = 0;
	co_cli_opt opts[] = {{"etcd-percent", &percent_s, NULL},
			     {"reason", &reason, NULL},
			     {"force", NULL, &force},
			     {"dry-run", NULL, &dry},
			     {NULL, NULL, NULL}};
	const co_config *c;
	co_state *st = NULL;
	co_flags from, to;
	co_mode mode;
	co_op op = CO_OP_TASK_CREATE;
	char note[1024];
	int error, percent = 0, is_default, lock = -1;
	size_t n;

	if ((error = co_cli_parse(pos, 2, &n, ctx, argc, argv, opts, U_SET, h_set)) != 0)
		return error < 0 ? error : 0;
	if (n < 2)
		return co_cli_usage_error(U_SET,
					  "flags set: needs an operation and a mode");
	if (strcmp(pos[0], "mirror") == 0 && dry)
		return co_cli_usage_error(U_SET, "flags set mirror: --dry-run is for "
						 "operations and default (a mirror change "
						 "passes no gate and moves no ID)");
	if (strcmp(pos[0], "mirror") == 0)
		return set_mirror(pos[1], percent_s, force, reason, ctx);
	is_default = strcmp(pos[0], "default") == 0;
	if (!is_default && co_op_parse(&op, pos[0]) < 0)
		return co_cli_error_prefix(CO_EINVAL, "flags set");
	if (co_mode_parse(&mode, pos[1]) < 0)
		return co_cli_error_prefix(CO_EINVAL, "flags set");
	if (percent_s && (error = parse_percent(&percent, percent_s)) < 0)
		return error;
	if (mode == CO_MODE_DUAL && percent_s == NULL)
		return co_cli_usage_error(U_SET,
					  "flags set: mode dual needs --etcd-percent N");
	if (mode != CO_MODE_DUAL && percent_s != NULL)
		return co_cli_usage_error(U_SET,
					  "flags set: --etcd-percent applies to mode "
					  "dual only");
	if (mode == CO_MODE_ETCD)
		percent = 100; /* as the `etcd` stage writes it */

	/* From the load to the save no other writer changes the flags (a dry
	 * run saves nothing: it takes no lock). */
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (!dry && (error = lock = co_flags_lock(c->flags_path)) < 0) ||
	    (error = load_flags(&from, NULL, ctx)) < 0)
		goto done;
	to = from;
	if (is_default)
		error = co_flags_set_default(&to, mode, percent);
	else
		error = co_flags_set(&to, op, mode, percent);
	if (error < 0)
		goto done;
	if (dry) {
		char command[128];

		snprintf(command, sizeof(command), "flags set %s %s%s%s", pos[0], pos[1],
			 percent_s ? " --etcd-percent " : "", percent_s ? percent_s : "");
		if ((error = co_state_open(&st, c->state_dir)) == 0)
			error = co_cli_plan(ctx, st, command, &from, &to);
		goto done;
	}
	if (co_flags_equal(&from, &to)) {
		printf("no change: %s is already %s\n", pos[0], co_mode_name(mode));
		goto done;
	}
	if ((error = co_state_open(&st, c->state_dir)) < 0 ||
	    (error = co_cli_gate_audited(note, sizeof(note), ctx, st, "flags set", &from,
					 &to, force)) < 0 ||
	    (error = co_cli_flags_commit(ctx, st, "flags set", &from, &to, note, reason,
					 0)) < 0)
		goto done;
	{
		char what[1024];

		co_flags_diff(what, sizeof(what), &from, &to);
		printf("%s\n", what);
	}
	if (to.kill_switch)
		fprintf(stderr,
			"cutover: note: the kill switch is on (%s): every operation "
			"goes to git as in shadow until `cutover resume`\n",
			to.kill_reason);
done:
	co_flags_unlock(lock);
	co_state_close(st);
	return error;
}

static int flags_explain(int argc, char **argv, co_cli *ctx)
{
	co_cli_opt opts[] = {{NULL, NULL, NULL}};
	const char *pos[2];
	co_route rt;
	co_flags f;
	co_op op;
	cJSON *o;
	size_t n;
	int error;

	if ((error = co_cli_parse(pos, 2, &n, ctx, argc, argv, opts, U_EXPLAIN,
				  h_explain)) != 0)
		return error < 0 ? error : 0;
	if (n < 2)
		return co_cli_usage_error(U_EXPLAIN,
					  "flags explain: needs an operation and "
					  "an ID");
	if (co_op_parse(&op, pos[0]) < 0)
		return co_cli_error_prefix(CO_EINVAL, "flags explain");
	if (co_id_validate(pos[1]) < 0)
		return co_cli_error_prefix(CO_EINVAL, "flags explain");
	if ((error = load_flags(&f, NULL, ctx)) < 0 ||
	    (error = co_flags_route(&rt, &f, op, pos[1])) < 0)
		return error;
	if (ctx->json) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "op", co_op_name(op));
		cJSON_AddStringToObject(o, "id", pos[1]);
		cJSON_AddStringToObject(o, "mode", co_mode_name(rt.mode));
		cJSON_AddStringToObject(o, "primary", co_side_name(rt.primary));
		cJSON_AddStringToObject(o, "secondary", co_side_name(rt.secondary));
		cJSON_AddBoolToObject(o, "kill_switch", f.kill_switch);
		return co_cli_print_json(o);
	}
	printf("%s %s: mode %s", co_op_name(op), pos[1], co_mode_name(rt.mode));
	if (rt.configured == CO_MODE_DUAL)
		printf(" (etcd_percent %d, bucket %d)", rt.etcd_percent, rt.bucket);
	printf(": primary %s, secondary %s%s\n", co_side_name(rt.primary),
	       co_side_name(rt.secondary),
	       rt.secondary_async ? " (asynchronous, through the outbox)" : "");
	if (rt.kill_switch)
		printf("kill switch on (%s): configured mode %s is suspended\n",
		       f.kill_reason, co_mode_name(rt.configured));
	return fflush(stdout) == 0 ? 0 : co_error_set(CO_EIO, "writing to stdout");
}

static void flags_help(void)
{
	printf("usage: %s\n\n  %s\n  %s\n  %s\n\n"
	       "Run `cutover flags SUBCOMMAND --help` for details.\n\n"
	       "Examples:\n"
	       "  cutover flags show\n"
	       "  cutover flags set task_claim dual --etcd-percent 10\n"
	       "  cutover --json flags explain task_claim P0.1.2\n\n"
	       "Exit status: 0 ok, 1 bad input, 3 refused by the go/no-go gate.\n",
	       U_FLAGS, U_SHOW, U_SET, U_EXPLAIN);
}

int co_cli_flags(int argc, char **argv, co_cli *ctx)
{
	if (argc < 2)
		return co_cli_usage_error(U_FLAGS, "flags: missing subcommand");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		flags_help();
		return 0;
	}
	if (strcmp(argv[1], "show") == 0)
		return flags_show(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "set") == 0)
		return flags_set(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "explain") == 0)
		return flags_explain(argc - 1, argv + 1, ctx);
	return co_cli_usage_error(U_FLAGS, "flags: unknown subcommand \"%s\"", argv[1]);
}
