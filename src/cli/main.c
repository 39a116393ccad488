/*
 * main.c - the `cutover` binary: global options, then dispatch.
 *
 * This file only parses `cutover [--config F] [--backend git|etcd] [--json]
 * COMMAND ...`, finds COMMAND in the table generated from cli_commands.h and
 * turns the command's result into an exit status (co_cli_exit_code).  All
 * the work lives in src/cli/cmd_*.c, inside the library, where tests can
 * reach it.  It is the only file of the CLI that may end the process.
 */
#include "cli/cli.h"

#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv, co_cli *ctx);
	const char *summary;
} command;

static const command commands[] = {
#define CO_CLI_COMMAND(name, summary) {#name, co_cli_##name, summary},
#include "cli/cli_commands.h"
#undef CO_CLI_COMMAND
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char usage[] =
    "cutover [--config FILE] [--backend git|etcd] [--json] COMMAND [ARGS...]";

static void help(void)
{
	size_t i;

	printf("usage: %s\n\n"
	       "cutover moves task coordination from a git repository to etcd.\n\n"
	       "Commands:\n",
	       usage);
	for (i = 0; i < N_COMMANDS; i++)
		printf("  %-10s %s\n", commands[i].name, commands[i].summary);
	printf(
	    "\nRun `cutover COMMAND --help` for a command's options and examples.\n\n"
	    "Global options (before the command):\n"
	    "  --config FILE      read FILE instead of $CUTOVER_CONFIG or "
	    "./cutover.yaml\n"
	    "  --backend git|etcd talk to one store directly; without it data commands\n"
	    "                     (task, swarm, watch) go through the router, which\n"
	    "                     the flags steer (see `cutover flags --help`)\n"
	    "  --json             machine-readable output (canonical record JSON)\n"
	    "  --log-format text|json  stderr as plain lines (default) or one JSON\n"
	    "                     object per line ($CUTOVER_LOG_FORMAT)\n"
	    "  -h, --help         this help;  --version  the version\n\n"
	    "Environment (overrides the config file):\n"
	    "  CUTOVER_GIT_REPO, CUTOVER_GIT_BRANCH, CUTOVER_ETCD_ENDPOINTS "
	    "(comma-separated),\n"
	    "  CUTOVER_ETCD_PREFIX, CUTOVER_ETCD_USER, CUTOVER_ETCD_PASSWORD, "
	    "CUTOVER_FLAGS,\n"
	    "  CUTOVER_STATE_DIR, CUTOVER_LISTEN, CUTOVER_ADMIN_TOKEN_FILE, "
	    "CUTOVER_CONFIG,\n"
	    "  CUTOVER_GIT_POLL_INTERVAL, CUTOVER_GIT_REMOTE_TIMEOUT,\n"
	    "  CUTOVER_ETCD_CONNECT_TIMEOUT,\n"
	    "  CUTOVER_ETCD_REQUEST_TIMEOUT (durations: 250ms, 2s, 5m, 1h)\n\n"
	    "Examples:\n"
	    "  CUTOVER_GIT_REPO=/srv/tasks.git cutover task create P0.1 --type build\n"
	    "  cutover --backend etcd task claim P0.1 --swarm swarm-a --ttl 300\n"
	    "  cutover --json task list --status available\n"
	    "  cutover swarm register swarm-a --cap build,test\n"
	    "  cutover --backend etcd watch --prefix tasks/\n"
	    "  cutover stage shadow && cutover status\n"
	    "  cutover rollback --reason 'etcd latency'\n\n"
	    "Exit status: 0 ok, 1 bad usage or input, 2 store unavailable,\n"
	    "3 conflict (claim lost, not owner, exists differently, or a flag change\n"
	    "refused by the go/no-go gate), 4 not found.\n");
}

/* A global option taking a value: "--name V" or "--name=V". */
static int global_value(const char **out, int argc, char **argv, int *i, const char *name)
{
	size_t len = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, len) != 0)
		return 0;
	if (a[len] == '=') {
		*out = a + len + 1;
		return 1;
	}
	if (a[len] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		co_error_set(CO_EINVAL, "option %s needs a value\nusage: %s", name,
			     usage);
		return -1;
	}
	*out = argv[++*i];
	return 1;
}

static int run(int argc, char **argv, co_cli *ctx)
{
	const char *log_format = getenv("CUTOVER_LOG_FORMAT");
	co_log_format lf = CO_LOG_TEXT;
	size_t c;
	int i, r;

	/* The environment's format first, so that a bad one is said plainly. */
	if (log_format && *log_format) {
		if (co_log_parse_format(&lf, log_format) < 0)
			return co_error_set(CO_EINVAL, "CUTOVER_LOG_FORMAT: \"%s\" is not text "
						       "or json",
					    log_format);
		co_log_set_format(lf);
	}

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			help();
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			printf("cutover %s\n", CO_CLI_VERSION);
			return 0;
		}
		if (strcmp(a, "--json") == 0) {
			ctx->json = 1;
			continue;
		}
		if ((r = global_value(&ctx->config_path, argc, argv, &i, "--config")) !=
			0 ||
		    (r = global_value(&ctx->backend, argc, argv, &i, "--backend")) != 0) {
			if (r < 0)
				return CO_EINVAL;
			continue;
		}
		if ((r = global_value(&log_format, argc, argv, &i, "--log-format")) != 0) {
			if (r < 0 || co_log_parse_format(&lf, log_format) < 0)
				return CO_EINVAL;
			co_log_set_format(lf);
			continue;
		}
		return co_error_set(CO_EINVAL, "unknown option \"%s\"\nusage: %s", a,
				    usage);
	}
	if (ctx->backend && strcmp(ctx->backend, "git") != 0 &&
	    strcmp(ctx->backend, "etcd") != 0)
		return co_error_set(CO_EINVAL,
				    "--backend: unknown backend \"%s\" (git or etcd)",
				    ctx->backend);
	if (i == argc)
		return co_error_set(CO_EINVAL,
				    "no command given\nusage: %s\n"
				    "Run `cutover --help` for the commands.",
				    usage);
	if (strcmp(argv[i], "help") == 0) {
		help();
		return 0;
	}
	for (c = 0; c < N_COMMANDS; c++)
		if (strcmp(argv[i], commands[c].name) == 0)
			return commands[c].run(argc - i, argv + i, ctx);
	return co_error_set(CO_EINVAL,
			    "unknown command \"%s\"\nRun `cutover --help` for the "
			    "commands.",
			    argv[i]);
}

int main(int argc, char **argv)
{
	co_cli ctx = {0};
	int code;

	code = run(argc, argv, &ctx);
	co_cli_cleanup(&ctx);
	return co_cli_exit_code(code);
}
