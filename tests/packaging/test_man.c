/*
 * test_man.c - the manual pages say what the CLI has: cutover(1), built
 * from man/cutover.1.scd by scdoc, exists and names every top-level command
 * that `cutover --help` lists (as a bold command entry), so a command added
 * to src/cli/cli_commands.h without its man entry fails here.  Each page
 * of a command (cutover-task(1), -stage(1), -rollout(1), cutover-serve(8))
 * names every subcommand its `--help` lists and every option anywhere in
 * the help of `cutover X [SUB] --help` (but --json, --backend).  The pages
 * render with `man -l`.  Skipped, saying so, where scdoc is absent (then
 * the build makes no man pages).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness/harness.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The generated roff of page `name` ("cutover.1") into *out; skips the
 * test when scdoc is not installed. */
static void read_page(char **out, const char *name)
{
	char build[512];

	if (co_test_sh(NULL, NULL, "command -v scdoc") != 0) {
		print_message("skipped: scdoc is not installed, so the build made no man "
			      "pages (scripts/setup installs it)\n");
		skip();
	}
	snprintf(build, sizeof(build), "%s", CUTOVER_BIN);
	if (co_test_sh(out, NULL, "cat '%s/man/%s'", dirname(build), name) != 0)
		fail_msg("%s was not built though scdoc is installed (re-run cmake?)",
			 name);
}

static void cutover_1_names_every_command_of_help(void **state)
{
	const char *const argv[] = {"--help", NULL};
	char *roff = NULL, *help = NULL, *p, *line, *save = NULL;
	int commands = 0;

	(void)state;
	read_page(&roff, "cutover.1");
	assert_int_equal(co_test_cutover(&help, NULL, NULL, argv), 0);
	/* The lines between "Commands:" and the next blank line: "  NAME  summary". */
	assert_non_null(p = strstr(help, "\nCommands:\n"));
	p += strlen("\nCommands:\n");
	for (line = strtok_r(p, "\n", &save); line && line[0] == ' ';
	     line = strtok_r(NULL, "\n", &save)) {
		char name[64], bold[96];

		if (sscanf(line, " %63s", name) != 1)
			break;
		/* scdoc writes *name* as \fBname\fR. */
		snprintf(bold, sizeof(bold), "\\fB%s\\fR", name);
		if (strstr(roff, bold) == NULL)
			fail_msg(
			    "cutover(1) does not name the command \"%s\" of `cutover "
			    "--help`: add it to man/cutover.1.scd",
			    name);
		commands++;
	}
	assert_true(commands >= 10);
	free(help);
	free(roff);
}

/* Fail unless `roff` (page `page`) has \fBword\fR for `word`. */
static void names(const char *roff, const char *page, const char *word, const char *from)
{
	char bold[128];

	snprintf(bold, sizeof(bold), "\\fB%s\\fR", word);
	if (strstr(roff, bold) == NULL)
		fail_msg("%s does not name \"%s\" of `%s --help`: add it to man/%s.scd",
			 page, word, from, page);
}

/* Every --option in `text` (from the help of `from`) is in roff, but the
 * global --json and --backend (cutover(1) has those). */
static void names_options(const char *roff, const char *page, const char *text,
			  const char *from)
{
	for (const char *p = text; (p = strstr(p, "--")) != NULL;) {
		char opt[64];
		size_t n = 2;

		while (n < sizeof(opt) - 1 &&
		       (p[n] == '-' || (p[n] >= 'a' && p[n] <= 'z')))
			n++;
		memcpy(opt, p, n);
		opt[n] = '\0';
		if (n > 2 && strcmp(opt, "--json") != 0 && strcmp(opt, "--backend") != 0)
			names(roff, page, opt, from);
		p += n;
	}
}

/* Every --option in `cutover ARGS --help` is in roff. */
static void names_help_options(const char *roff, const char *page, const char *args)
{
	char *help = NULL;
	char from[256];

	snprintf(from, sizeof(from), "cutover %s", args);
	if (co_test_sh(&help, NULL, "'%s' %s --help", CUTOVER_BIN, args) != 0)
		fail_msg("`%s --help` failed", from);
	names_options(roff, page, help, from);
	free(help);
}

static void each_command_page_names_its_subcommands_and_options(void **state)
{
	static const char *const pages[][2] = {
	    {"task", "1"}, {"stage", "1"}, {"rollout", "1"}, {"serve", "8"}};
	char *roff = NULL, *help = NULL, *line, *save = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		char page[64], prefix[64];
		int subs = 0;

		snprintf(page, sizeof(page), "cutover-%s.%s", pages[i][0], pages[i][1]);
		read_page(&roff, page);
		assert_int_equal(
		    co_test_sh(&help, NULL, "'%s' %s --help", CUTOVER_BIN, pages[i][0]),
		    0);
		/* Subcommands: the lines "  cutover X SUB ..." of the help. */
		snprintf(prefix, sizeof(prefix), "  cutover %s ", pages[i][0]);
		for (line = strtok_r(help, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			char sub[64], args[128];

			if (strncmp(line, prefix, strlen(prefix)) != 0 ||
			    sscanf(line + strlen(prefix), "%63[a-z]", sub) != 1)
				continue;
			names(roff, page, sub, pages[i][0]);
			names_options(roff, page, line, pages[i][0]);
			snprintf(args, sizeof(args), "%s %s", pages[i][0], sub);
			names_help_options(roff, page, args);
			subs++;
		}
		if (subs == 0)
			names_help_options(roff, page, pages[i][0]);
		free(help);
		free(roff);
		help = roff = NULL;
	}
}

static void cutover_1_renders_with_man(void **state)
{
	char build[512], *roff = NULL, *out = NULL, *err = NULL;

	(void)state;
	read_page(&roff, "cutover.1");
	free(roff);
	if (co_test_sh(NULL, NULL, "command -v man") != 0) {
		print_message("skipped: man (man-db) is not installed\n");
		skip();
	}
	snprintf(build, sizeof(build), "%s", CUTOVER_BIN);
	if (co_test_sh(&out, &err, "MANWIDTH=80 man -l '%s/man/cutover.1'",
		       dirname(build)) != 0)
		fail_msg("man -l: %s", err ? err : "");
	assert_non_null(strstr(out, "SYNOPSIS"));
	assert_non_null(strstr(out, "EXIT STATUS"));
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cutover_1_names_every_command_of_help),
	    cmocka_unit_test(each_command_page_names_its_subcommands_and_options),
	    cmocka_unit_test(cutover_1_renders_with_man),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
