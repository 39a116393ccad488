/*
 * cmd_records.h - what `cutover task` and `cutover swarm` share: a table of
 * subcommands and its dispatcher, the one-ID argument check, and `get`.
 *
 * Private to src/cli (cmd_task.c and cmd_swarm.c).
 */
#ifndef CO_CLI_CMD_RECORDS_H
#define CO_CLI_CMD_RECORDS_H

#include "cli.h"

#include <stddef.h>

/* One subcommand of a command group ("claim" of `cutover task`). */
typedef struct co_cli_subcommand {
	const char *name;
	int (*run)(int argc, char **argv, co_cli *ctx);
	const char *usage; /* one line, listed by the group's help */
} co_cli_subcommand;

/*
 * Run the subcommand argv[1] of `cutover GROUP` with argv[1..] (so that its
 * argv[0] is its name).  -h, --help and help print "usage: ... GROUP
 * SUBCOMMAND ...", each subcommand's usage line, then `about` (as is), and
 * return 0.  A missing or unknown subcommand is a usage error (CO_EINVAL)
 * naming `usage`, the group's one-line usage.
 */
int co_cli_subcommand_dispatch(int argc, char **argv, co_cli *ctx, const char *group,
			       const char *usage, const co_cli_subcommand *subs, size_t n,
			       const char *about);

/*
 * Parse the arguments of a subcommand that takes exactly one record ID of
 * `kind`, with options `opts`: 0 with *id set; 1 after printing `help`
 * (the caller returns 0); CO_EINVAL for a missing or malformed ID ("missing
 * task ID", "swarm: <why>") or any co_cli_parse() error.
 */
int co_cli_one_id(const char **id, co_cli *ctx, int argc, char **argv, co_kind kind,
		  const co_cli_opt *opts, const char *usage, const char *help);

/*
 * `cutover task|swarm get ID`: print the record of `kind` with that ID.
 * CO_ENOTFOUND (exit 4) if absent; 0 after -h/--help.
 */
int co_cli_record_get(int argc, char **argv, co_cli *ctx, co_kind kind, const char *usage,
		      const char *help);

#endif
