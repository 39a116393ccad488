/*
 * cli.h - what the `cutover` commands share (DESIGN §7).
 *
 * main.c parses the global options into a co_cli and dispatches to one
 * co_cli_<name>() per command (the table is cli_commands.h).  A command
 * returns 0 or a negative CO_E* code with the message set by co_error_set();
 * main.c turns that into "cutover: <message>" on stderr and an exit status
 * through co_cli_exit_code(), the one place where codes become statuses.  A
 * command may also return a positive exit status it has already explained.
 *
 * Output goes to stdout (text, or canonical JSON with --json); diagnostics
 * to stderr.  Nothing here is thread-safe: one command runs per process.
 */
#ifndef CO_CLI_H
#define CO_CLI_H

#include "../core/config.h"
#include "../core/record.h"
#include "../store/store.h"

#include <stddef.h>

/* The version printed by `cutover --version`; keep in step with CMakeLists. */
#define CO_CLI_VERSION "0.1.0"

/* The backend data commands use when --backend is not given. */
#define CO_CLI_DEFAULT_BACKEND "git"

typedef struct co_cli {
	const char *config_path; /* --config, or NULL ($CUTOVER_CONFIG, ./cutover.yaml) */
	const char *backend;	 /* --backend "git" or "etcd", or NULL for the default */
	int json;		 /* --json */
	co_config *config;	 /* loaded on first use by co_cli_config() */
} co_cli;

/* One prototype per line of cli_commands.h: argv[0] is the command name. */
#define CO_CLI_COMMAND(name, summary)                                                    \
	int co_cli_##name(int argc, char **argv, co_cli *ctx);
#include "cli_commands.h"
#undef CO_CLI_COMMAND

/* Free what the context loaded (the config).  Does not free ctx itself. */
void co_cli_cleanup(co_cli *ctx);

/*
 * The configuration, loaded once from ctx->config_path and the environment.
 * The pointer is owned by ctx.  CO_EINVAL ("FILE:LINE: key ...") or CO_EIO.
 */
int co_cli_config(const co_config **out, co_cli *ctx);

/*
 * Open the store the data commands use: --backend, else the default
 * (CO_CLI_DEFAULT_BACKEND until the router exists).  *out is owned by the
 * caller (co_store_free).  CO_EINVAL for a bad --backend or a missing
 * setting (no git repo configured), CO_EUNAVAIL if the store cannot open.
 */
int co_cli_open_store(co_store **out, co_cli *ctx);

/* Open one store by name ("git" or "etcd") from the configuration. */
int co_cli_open_backend(co_store **out, co_cli *ctx, const char *name);

/* --- options --- */

/*
 * One option of a command: `--name VALUE` (or `--name=VALUE`) when `value`
 * is set, a flag `--name` setting *flag to 1 otherwise.
 */
typedef struct co_cli_opt {
	const char *name; /* without the dashes: "swarm" */
	const char **value;
	int *flag;
} co_cli_opt;

/*
 * Parse argv[1..argc-1] of a command: options may come before, between or
 * after positional arguments ("task claim ID --swarm S"); "--" ends them.
 * --json and --backend B are accepted here too and set ctx.  Positionals go
 * to pos[] (at most max_pos, count in *n_pos).  `opts` ends with a NULL
 * name.  Returns 0; 1 after printing `help` to stdout when -h/--help was
 * given (the command should then return 0); CO_EINVAL naming the problem,
 * followed by `usage`, for an unknown option, a missing value or too many
 * arguments.
 */
int co_cli_parse(const char **pos, size_t max_pos, size_t *n_pos, co_cli *ctx, int argc,
		 char **argv, const co_cli_opt *opts, const char *usage,
		 const char *help);

/*
 * Put "PREFIX: " in front of this thread's last error message and set it
 * again with `code`; returns `code`.  (Passing co_error_last() straight to
 * co_error_set() would read the buffer being written.)
 */
int co_cli_error_prefix(int code, const char *prefix);

/* CO_EINVAL "WHAT\nusage: USAGE" for a usage mistake; returns CO_EINVAL. */
int co_cli_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Parse a TTL in whole seconds: a positive decimal integer (at most ten
 * years).  CO_EINVAL naming `what` ("--ttl") otherwise.
 */
int co_cli_parse_ttl(long long *out, const char *what, const char *s);

/* --- output --- */

/*
 * Print a record: one human-readable line, or its canonical compact JSON
 * with --json.  Returns 0 or CO_ENOMEM/CO_EIO.
 */
int co_cli_print_record(co_cli *ctx, const co_record *r);

/* Print a list: one line per record, or a JSON array with --json. */
int co_cli_print_list(co_cli *ctx, const co_record_list *l);

/*
 * Turn a command's result into an exit status (0-4, DESIGN §7), printing
 * "cutover: <last error message>" to stderr for a failure.  The one place
 * where codes become statuses.  A positive `code` is returned as it is.
 */
int co_cli_exit_code(int code);

#endif
