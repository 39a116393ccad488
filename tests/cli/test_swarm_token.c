/*
 * test_swarm_token.c - `cutover swarm token` and serve's refusal to open an
 * unauthenticated data plane off loopback (issue 22 point 2), running the
 * real binary against a real etcd and a real bare git repo.
 *
 * No test waits on time: serve is stopped once it has said it is serving.
 */
#include "cli_fixture.h"

#include "core/error.h"
#include "core/tokens.h"

#include <sys/wait.h>

/* The last line of s (without its newline), into a static buffer. */
static const char *last_line(const char *s)
{
	static char line[512];
	size_t n = strlen(s);
	const char *p;

	while (n > 0 && s[n - 1] == '\n')
		n--;
	for (p = s + n; p > s && p[-1] != '\n'; p--)
		;
	snprintf(line, sizeof(line), "%.*s", (int)(s + n - p), p);
	return line;
}

static void token_for_an_unknown_swarm_is_exit_1(void **state)
{
	fx *f = *state;
	char *out, *err;

	assert_int_equal(fx_run(f, &out, &err, "swarm", "token", "ghost"), 1);
	fx_contains(err, "swarm ghost is not registered");
	assert_string_equal(out, "");
	free(out);
	free(err);
}

static void token_is_the_last_line_once_and_rotate_replaces_it(void **state)
{
	fx *f = *state;
	char *out, *err, first[600];
	co_state *st = NULL;
	char who[130];

	fx_expect(0, f, "swarm", "register", "swarm-a");
	assert_int_equal(fx_run(f, &out, &err, "swarm", "token", "swarm-a"), 0);
	snprintf(first, sizeof(first), "%s", last_line(out));
	assert_int_equal(strncmp(first, "cos_swarm-a_", 12), 0);
	assert_int_equal(strlen(first), 12 + CO_TOKEN_SECRET_LEN);
	free(out);
	free(err);

	/* Twice without --rotate: refused, saying what to do. */
	assert_int_equal(fx_run(f, &out, &err, "swarm", "token", "swarm-a"), 1);
	fx_contains(err, "already has a token");
	fx_contains(err, "--rotate");
	free(out);
	free(err);

	/* --json: an object holding the token; --rotate: a new one. */
	assert_int_equal(
	    fx_run(f, &out, &err, "--json", "swarm", "token", "swarm-a", "--rotate"), 0);
	fx_contains(out, "\"rotated\":true");
	fx_contains(out, "\"token\":\"cos_swarm-a_");
	assert_null(strstr(out, first));
	free(out);
	free(err);

	/* The old token no longer checks; the state holds the new one only. */
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_tokens_check(who, sizeof(who), st, first), CO_ENOTFOUND);
	assert_int_equal(co_tokens_exists(st, "swarm-a"), 1);
	co_state_close(st);

	/* Removing the swarm revokes its token. */
	fx_expect(0, f, "swarm", "remove", "swarm-a");
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_tokens_exists(st, "swarm-a"), 0);
	co_state_close(st);
}

static void a_bad_swarm_auth_value_is_exit_1(void **state)
{
	fx *f = *state;
	char *out, *err;

	fx_setenv(f, 0, "CUTOVER_SWARM_AUTH=tokens");
	assert_int_equal(fx_run(f, &out, &err, "serve", "--listen", "127.0.0.1:0"), 1);
	fx_contains(err, "CUTOVER_SWARM_AUTH");
	fx_contains(err, "none or token");
	free(out);
	free(err);
}

static void serve_off_loopback_without_auth_is_exit_1(void **state)
{
	fx *f = *state;
	char *out, *err;

	assert_int_equal(fx_run(f, &out, &err, "serve", "--listen", "0.0.0.0:0"), 1);
	fx_contains(err, "not a loopback address");
	fx_contains(err, "--insecure-data-plane");
	free(out);
	free(err);
}

/* Start serve with `extra` args; 0 once it said "serving on", then stop it. */
static int serve_starts(fx *f, const char *const *args, const char *expect_warning)
{
	int errp[2], status;
	char **envp, *line, all[4096] = "";
	int up = 0;
	pid_t pid;

	assert_int_equal(pipe(errp), 0);
	envp = fx_make_envp(f->env);
	if ((pid = fork()) == 0) {
		dup2(errp[1], 2);
		close(errp[0]);
		close(errp[1]);
		execve(CUTOVER_BIN, (char *const *)args, envp);
		_exit(127);
	}
	free(envp);
	close(errp[1]);
	while ((line = fx_read_line(errp[0], 60000)) != NULL) {
		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s\n", line);
		up = strstr(line, "serving on") != NULL;
		free(line);
		if (up)
			break;
	}
	if (up && expect_warning && (line = fx_read_line(errp[0], 60000)) != NULL) {
		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s\n", line);
		free(line);
	}
	kill(pid, up ? SIGTERM : SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(errp[0]);
	if (!up)
		fail_msg("serve never said it was serving: %s", all);
	if (expect_warning)
		fx_contains(all, expect_warning);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void serve_off_loopback_starts_with_insecure_or_token_auth(void **state)
{
	fx *f = *state;
	const char *insecure[] = {
	    CUTOVER_BIN, "serve", "--listen", "0.0.0.0:0", "--insecure-data-plane", NULL};
	const char *plain[] = {CUTOVER_BIN, "serve", "--listen", "0.0.0.0:0", NULL};

	assert_int_equal(serve_starts(f, insecure, "--insecure-data-plane"), 0);
	fx_setenv(f, 0, "CUTOVER_SWARM_AUTH=token");
	assert_int_equal(serve_starts(f, plain, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(token_for_an_unknown_swarm_is_exit_1,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		token_is_the_last_line_once_and_rotate_replaces_it, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(a_bad_swarm_auth_value_is_exit_1,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(serve_off_loopback_without_auth_is_exit_1,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		serve_off_loopback_starts_with_insecure_or_token_auth, fx_test_setup,
		fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
