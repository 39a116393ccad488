/*
 * test_install.c - what `cmake --install` lays down, used as an operator
 * would: the binary runs from the prefix, the bash completion completes
 * commands, subcommands and options from the binary's own help, and the
 * systemd unit passes `systemd-analyze verify` (skipped, saying so, where
 * systemd-analyze is absent).
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
#include <unistd.h>

static char prefix[256];

static int installed(void **state)
{
	char build[512], *out = NULL, *err = NULL;

	(void)state;
	snprintf(build, sizeof(build), "%s", CUTOVER_BIN);
	assert_int_equal(co_test_tmpdir(prefix, sizeof(prefix)), 0);
	if (co_test_sh(&out, &err, "cmake --install '%s' --prefix '%s'", dirname(build),
		       prefix) != 0)
		fail_msg("cmake --install: %s%s", out ? out : "", err ? err : "");
	free(out);
	free(err);
	return 0;
}

static int removed(void **state)
{
	(void)state;
	co_test_sh(NULL, NULL, "rm -rf '%s'", prefix);
	return 0;
}

static void the_binary_and_the_docs_are_in_place(void **state)
{
	char *out = NULL;

	(void)state;
	assert_int_equal(co_test_sh(&out, NULL, "'%s/bin/cutover' --version", prefix), 0);
	assert_non_null(strstr(out, "cutover "));
	free(out);
	out = NULL;
	assert_int_equal(co_test_sh(&out, NULL,
				    "ls '%s/share/doc/cutover/runbooks/cutover.md' "
				    "'%s/share/doc/cutover/README.md'",
				    prefix, prefix),
			 0);
	free(out);
}

/* The completion's words for the command line `line` (the cursor at its
 * end), space-separated, into *out. */
static void complete(char **out, const char *line)
{
	char *err = NULL;

	if (co_test_sh(out, &err,
		       "bash -c 'source \"%s/share/bash-completion/completions/cutover\"; "
		       "COMP_WORDS=(\"%s/bin/cutover\" %s); "
		       "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _cutover; "
		       "echo \"${COMPREPLY[*]}\"'",
		       prefix, prefix, line) != 0)
		fail_msg("completion of \"%s\": %s", line, err ? err : "");
	free(err);
}

static void bash_completes_from_the_binarys_help(void **state)
{
	char *out = NULL;

	(void)state;
	complete(&out, "ro");
	assert_non_null(strstr(out, "rollout"));
	assert_non_null(strstr(out, "rollback"));
	assert_null(strstr(out, "task"));
	free(out);
	out = NULL;
	complete(&out, "rollout s");
	assert_non_null(strstr(out, "start"));
	assert_non_null(strstr(out, "status"));
	free(out);
	out = NULL;
	complete(&out, "stage --");
	assert_non_null(strstr(out, "--dry-run"));
	assert_non_null(strstr(out, "--force"));
	free(out);
}

static void the_systemd_unit_verifies(void **state)
{
	char *out = NULL, *err = NULL;
	int rc;

	(void)state;
	if (co_test_sh(NULL, NULL, "command -v systemd-analyze") != 0) {
		print_message("skipped: systemd-analyze is not installed\n");
		skip();
	}
	/* verify wants ExecStart's binary where the unit says: check the unit
	 * with the installed path put in its place. */
	rc = co_test_sh(&out, &err,
			"sed 's|/usr/bin/cutover|%s/bin/cutover|' "
			"'%s/lib/systemd/system/cutover-serve.service' > "
			"'%s/cutover-serve.service' && "
			"systemd-analyze verify '%s/cutover-serve.service'",
			prefix, prefix, prefix, prefix);
	if (rc != 0)
		fail_msg("systemd-analyze verify: %s%s", out ? out : "", err ? err : "");
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_binary_and_the_docs_are_in_place),
	    cmocka_unit_test(bash_completes_from_the_binarys_help),
	    cmocka_unit_test(the_systemd_unit_verifies),
	};

	return cmocka_run_group_tests(tests, installed, removed);
}
