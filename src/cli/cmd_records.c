/*
 * cmd_records.c - the parts of `cutover task` and `cutover swarm` that do
 * not depend on the kind of record: dispatching a subcommand from a table
 * (with the group's help), checking a subcommand's single ID argument, and
 * `get`.  What differs between tasks and swarms (create/register, claims,
 * list filters, remove) stays in cmd_task.c and cmd_swarm.c.
 */
#include "cmd_records.h"

#include "../core/error.h"
#include "../core/id.h"

#include <stdio.h>
#include <string.h>

int co_cli_subcommand_dispatch(int argc, char **argv, co_cli *ctx, const char *group,
			       const char *usage, const co_cli_subcommand *subs, size_t n,
			       const char *about)
{
	size_t i;

	if (argc < 2)
		return co_cli_usage_error(usage, "%s: missing subcommand", group);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		printf(
		    "usage: cutover [--backend git|etcd] [--json] %s SUBCOMMAND ...\n\n",
		    group);
		for (i = 0; i < n; i++)
			printf("  %s\n", subs[i].usage);
		fputs(about, stdout);
		return 0;
	}
	for (i = 0; i < n; i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].run(argc - 1, argv + 1, ctx);
	return co_cli_usage_error(usage, "%s: unknown subcommand \"%s\"", group, argv[1]);
}

int co_cli_one_id(const char **id, co_cli *ctx, int argc, char **argv, co_kind kind,
		  const co_cli_opt *opts, const char *usage, const char *help)
{
	const char *pos[1];
	size_t n;
	int r;

	if ((r = co_cli_parse(pos, 1, &n, ctx, argc, argv, opts, usage, help)) != 0)
		return r;
	if (n == 0)
		return co_cli_usage_error(usage, "missing %s ID", co_kind_name(kind));
	if (co_id_validate(pos[0]) < 0)
		return co_cli_error_prefix(CO_EINVAL, co_kind_name(kind));
	*id = pos[0];
	return 0;
}

int co_cli_record_get(int argc, char **argv, co_cli *ctx, co_kind kind, const char *usage,
		      const char *help)
{
	co_cli_opt opts[] = {{NULL, NULL, NULL}};
	co_record *r = NULL;
	co_cli_data d = {0};
	const char *id = NULL;
	int error;

	if ((error = co_cli_one_id(&id, ctx, argc, argv, kind, opts, usage, help)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_data_open(&d, ctx)) < 0 ||
	    (error = co_cli_data_get(&r, &d, kind, id)) < 0 ||
	    (error = co_cli_print_record(ctx, r)) < 0)
		goto done;
done:
	co_record_free(r);
	co_cli_data_close(&d);
	return error;
}
