/*
 * test_install.c - what `cmake --install` lays down, used as an operator
 * would: the binary runs from the prefix, the bash completion completes
 * commands, subcommands and options from the binary's own help, and the
 * systemd unit passes `systemd-analyze verify` (skipped, saying so, where
 * systemd-analyze is absent).  The library as a program using it would:
 * libcutover.so and libcutover.a export the cutover_ names alone, each
 * public header compiles on its own, and examples/claim.c, as installed in
 * share/doc/cutover/examples, builds against the prefix with pkg-config,
 * with find_package(cutover) and with the static archive, and claims a
 * task in a real bare git repository.  The man page is installed when
 * scdoc is (tests/packaging/test_man.c checks what it says).
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

/* ---- the library ---- */

/* Compiler flags the library was built with that a program linking it
 * needs too (the sanitizers' in a CUTOVER_SANITIZE build). */
#ifndef CUTOVER_EXAMPLE_CFLAGS
#define CUTOVER_EXAMPLE_CFLAGS ""
#endif

static void the_shared_library_exports_cutover_names_alone(void **state)
{
	char *out = NULL, *err = NULL;

	(void)state;
	/* Every defined dynamic symbol (its version @@CUTOVER_0 cut off) but
	 * the version node CUTOVER_0 itself. */
	if (co_test_sh(&out, &err,
		       "nm -D --defined-only '%s/lib/libcutover.so' | "
		       "awk '{sub(/@.*/, \"\", $3); print $3}' | "
		       "grep -v '^CUTOVER_0$'",
		       prefix) != 0)
		fail_msg("nm -D: %s", err ? err : "");
	assert_non_null(strstr(out, "cutover_router_open\n"));
	assert_non_null(strstr(out, "cutover_strerror\n"));
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, "cutover_", 8) != 0)
			fail_msg("libcutover.so exports \"%s\", not a cutover_ name",
				 line);
	free(out);
	free(err);
	out = NULL;
	assert_int_equal(
	    co_test_sh(&out, NULL,
		       "objdump -p '%s/lib/libcutover.so' | awk '/SONAME/{print $2}'",
		       prefix),
	    0);
	assert_string_equal(out, "libcutover.so.0\n");
	free(out);
}

static void the_static_library_defines_cutover_names_alone(void **state)
{
	char *out = NULL, *err = NULL;

	(void)state;
	/* Global definitions in libcutover.a: the core's are made local. */
	if (co_test_sh(
		&out, &err,
		"nm -g --defined-only '%s/lib/libcutover.a' | awk 'NF == 3 {print $3}'",
		prefix) != 0)
		fail_msg("nm -g: %s", err ? err : "");
	assert_non_null(strstr(out, "cutover_router_open\n"));
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, "cutover_", 8) != 0)
			fail_msg(
			    "libcutover.a defines \"%s\" globally, not a cutover_ name",
			    line);
	free(out);
	free(err);
}

static void each_header_compiles_on_its_own(void **state)
{
	static const char *const headers[] = {"cutover.h", "error.h",  "export.h",
					      "record.h",  "router.h", "store.h",
					      "version.h"};
	char *err = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		if (co_test_sh(
			NULL, &err,
			"printf '#include <cutover/%s>\\nint x;\\n' | cc -std=c11 "
			"-pedantic -Wall -Wextra -Werror -fsyntax-only -I'%s/include' "
			"-x c -",
			headers[i], prefix) != 0)
			fail_msg("<cutover/%s> alone: %s", headers[i], err ? err : "");
		free(err);
		err = NULL;
	}
}

/* Run the example `bin` against a new bare git repository and check what
 * it says and what the repository then holds. */
static void example_claims_in_git(const char *bin)
{
	char repo[256], stdir[256], *out = NULL, *err = NULL;

	assert_int_equal(co_test_git_repo_new(repo, sizeof(repo)), 0);
	assert_int_equal(co_test_tmpdir(stdir, sizeof(stdir)), 0);
	if (co_test_sh(&out, &err, "'%s' '%s' '%s/state'", bin, repo, stdir) != 0)
		fail_msg("%s: %s%s", bin, out ? out : "", err ? err : "");
	assert_non_null(strstr(out, "libcutover 0."));
	assert_non_null(strstr(out, "created example.1 (rev 1)\n"));
	assert_non_null(strstr(out, "claimed example.1 by example-swarm (rev 2)\n"));
	assert_non_null(strstr(out, "released example.1: complete (rev 3)\n"));
	assert_non_null(strstr(out, "1 task(s)\n"));
	free(out);
	out = NULL;
	/* The router wrote it to git (no flags file: git mode), as a commit. */
	assert_int_equal(
	    co_test_sh(NULL, NULL,
		       "git --git-dir='%s' show main:tasks/example.1.json | "
		       "tr -d ' \\t\\n' | grep -F '\"rev\":3,\"status\":\"complete\"'",
		       repo),
	    0);
	/* A second run finds it done: the claim's conflict, reported, exit 0. */
	assert_int_equal(co_test_sh(&out, NULL, "'%s' '%s' '%s/state'", bin, repo, stdir),
			 0);
	assert_non_null(strstr(out, "not claimed: example.1 is complete\n"));
	free(out);
	free(err);
	co_test_rmrf(repo);
	co_test_rmrf(stdir);
}

static void the_example_builds_with_pkg_config(void **state)
{
	char bin[300], *out = NULL, *err = NULL;

	(void)state;
	snprintf(bin, sizeof(bin), "%s/claim-pc", prefix);
	if (co_test_sh(
		&out, &err,
		"export PKG_CONFIG_PATH='%s/lib/pkgconfig'; "
		"cc -std=c11 -Wall -Wextra -Werror %s "
		"'%s/share/doc/cutover/examples/claim.c' "
		"$(pkg-config --cflags --libs cutover) -Wl,-rpath,'%s/lib' -o '%s' && "
		"ldd '%s' | grep -F '%s/lib/libcutover.so.0'",
		prefix, CUTOVER_EXAMPLE_CFLAGS, prefix, prefix, bin, bin, prefix) != 0)
		fail_msg("pkg-config build: %s%s", out ? out : "", err ? err : "");
	free(out);
	free(err);
	example_claims_in_git(bin);
}

static void the_example_builds_with_find_package(void **state)
{
	char bin[300], *out = NULL, *err = NULL;

	(void)state;
	snprintf(bin, sizeof(bin), "%s/example-build/claim", prefix);
	if (co_test_sh(&out, &err,
		       "cmake -S '%s/share/doc/cutover/examples' -B '%s/example-build' "
		       "-DCMAKE_PREFIX_PATH='%s' -DCMAKE_C_FLAGS='%s' && "
		       "cmake --build '%s/example-build'",
		       prefix, prefix, prefix, CUTOVER_EXAMPLE_CFLAGS, prefix) != 0)
		fail_msg("find_package build: %s%s", out ? out : "", err ? err : "");
	free(out);
	free(err);
	example_claims_in_git(bin);
}

static void the_example_links_the_static_library(void **state)
{
	char bin[300], *out = NULL, *err = NULL;

	(void)state;
	snprintf(bin, sizeof(bin), "%s/claim-static", prefix);
	/* libcutover.a, its dependencies shared (Requires.private). */
	if (co_test_sh(
		&out, &err,
		"export PKG_CONFIG_PATH='%s/lib/pkgconfig'; "
		"cc -std=c11 %s '%s/share/doc/cutover/examples/claim.c' "
		"$(pkg-config --cflags cutover) "
		"'%s/lib/libcutover.a' $(pkg-config --libs $(pkg-config "
		"--print-requires-private cutover | awk '{print $1}')) -pthread -lm "
		"-o '%s' && ! ldd '%s' | grep -q libcutover",
		prefix, CUTOVER_EXAMPLE_CFLAGS, prefix, prefix, bin, bin) != 0)
		fail_msg("static build: %s%s", out ? out : "", err ? err : "");
	free(out);
	free(err);
	example_claims_in_git(bin);
}

static void the_man_page_is_installed(void **state)
{
	char *out = NULL;

	(void)state;
	if (co_test_sh(NULL, NULL, "command -v scdoc") != 0) {
		print_message("skipped: scdoc is not installed, no man pages built "
			      "(scripts/setup installs it)\n");
		skip();
	}
	if (co_test_sh(NULL, NULL, "command -v man") != 0) {
		print_message("skipped: man (man-db) is not installed\n");
		skip();
	}
	assert_int_equal(co_test_sh(&out, NULL,
				    "MANWIDTH=80 man -l '%s/share/man/man1/cutover.1'",
				    prefix),
			 0);
	assert_non_null(strstr(out, "NAME"));
	assert_non_null(strstr(out, "cutover"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_binary_and_the_docs_are_in_place),
	    cmocka_unit_test(bash_completes_from_the_binarys_help),
	    cmocka_unit_test(the_systemd_unit_verifies),
	    cmocka_unit_test(the_shared_library_exports_cutover_names_alone),
	    cmocka_unit_test(the_static_library_defines_cutover_names_alone),
	    cmocka_unit_test(each_header_compiles_on_its_own),
	    cmocka_unit_test(the_example_builds_with_pkg_config),
	    cmocka_unit_test(the_example_builds_with_find_package),
	    cmocka_unit_test(the_example_links_the_static_library),
	    cmocka_unit_test(the_man_page_is_installed),
	};

	return cmocka_run_group_tests(tests, installed, removed);
}
