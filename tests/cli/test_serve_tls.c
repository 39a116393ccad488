/*
 * test_serve_tls.c - `cutover serve` over TLS as the operator runs it: the
 * binary as a child, its certificate and key from the config file
 * (serve.tls_cert, serve.tls_key) or from --tls-cert/--tls-key, spoken to
 * with libcurl trusting that certificate; and a half TLS setup refused
 * (exit 1) before anything opens.  The server side of TLS is tested
 * in-process by tests/server/test_hostile_http.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli/cli_fixture.h"
#include "harness/http.h"

#include <curl/curl.h>
#include <microhttpd.h>
#include <sys/wait.h>

typedef struct tls {
	char dir[256], cert[300], key[300], config[300], e_config[320];
} tls;

/* The certificate in t; 1 to skip (no TLS in libmicrohttpd, no openssl). */
static int tls_make(tls *t)
{
	int rc;

	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		print_message("SKIP: libmicrohttpd here is built without TLS\n");
		return 1;
	}
	assert_int_equal(co_test_tmpdir(t->dir, sizeof(t->dir)), 0);
	rc =
	    co_test_self_signed(t->dir, t->cert, sizeof(t->cert), t->key, sizeof(t->key));
	assert_true(rc >= 0);
	if (rc == 1)
		co_test_rmrf(t->dir);
	return rc;
}

/*
 * Run serve with `args` (after "serve") and f's environment until it says
 * it is serving; then GET /healthz over HTTPS trusting t's certificate,
 * SIGTERM it and expect exit 0.  The status of that GET.
 */
static long serve_and_get(fx *f, const tls *t, const char *const *args)
{
	const char *argv[FX_MAX_ARGS] = {CUTOVER_BIN, "serve", "--listen", "127.0.0.1:0"};
	char **envp, *line, all[4096] = "", base[64] = "";
	int errp[2], status, n = 4, port = 0, over_tls = 0;
	co_test_resp r = {0};
	CURL *c;
	pid_t pid;

	while (*args)
		argv[n++] = *args++;
	argv[n] = NULL;
	assert_int_equal(pipe(errp), 0);
	envp = fx_make_envp(f->env);
	if ((pid = fork()) == 0) {
		dup2(errp[1], 2);
		close(errp[0]);
		close(errp[1]);
		execve(CUTOVER_BIN, (char *const *)argv, envp);
		_exit(127);
	}
	free(envp);
	close(errp[1]);
	while (port == 0 && (line = fx_read_line(errp[0], 60000)) != NULL) {
		const char *p = strstr(line, "(port ");

		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s\n", line);
		if (strstr(line, "serving on") && p) {
			port = atoi(p + 6);
			over_tls = strstr(line, "over TLS") != NULL;
		}
		free(line);
	}
	if (port > 0) {
		snprintf(base, sizeof(base), "https://127.0.0.1:%d", port);
		c = curl_easy_init();
		curl_easy_setopt(c, CURLOPT_CAINFO, t->cert);
		co_test_http_on(c, &r, base, "GET", "/healthz", NULL, 0, NULL);
		free(r.body);
		curl_easy_cleanup(c);
	}
	kill(pid, port > 0 ? SIGTERM : SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(errp[0]);
	if (port == 0)
		fail_msg("serve never said it was serving: %s", all);
	if (!over_tls)
		fail_msg("serve did not say \"over TLS\": %s", all);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return r.status;
}

static void serve_takes_tls_from_the_config(void **state)
{
	fx *f = *state;
	const char *none[] = {NULL};
	FILE *cf;
	tls t;

	if (tls_make(&t) == 1)
		skip();
	snprintf(t.config, sizeof(t.config), "%s/cutover.yaml", t.dir);
	assert_non_null(cf = fopen(t.config, "w"));
	fprintf(cf, "serve:\n  tls_cert: %s\n  tls_key: %s\n", t.cert, t.key);
	fclose(cf);
	snprintf(t.e_config, sizeof(t.e_config), "CUTOVER_CONFIG=%s", t.config);
	fx_setenv(f, 0, t.e_config);
	assert_int_equal(serve_and_get(f, &t, none), 200);
	co_test_rmrf(t.dir);
}

static void serve_takes_tls_from_flags(void **state)
{
	fx *f = *state;
	tls t;

	if (tls_make(&t) == 1)
		skip();
	{
		const char *args[] = {"--tls-cert", t.cert, "--tls-key", t.key, NULL};

		assert_int_equal(serve_and_get(f, &t, args), 200);
	}
	co_test_rmrf(t.dir);
}

static void half_a_tls_setup_is_exit_1(void **state)
{
	fx *f = *state;
	char *out, *err, config[300], e_config[320], dir[256];
	FILE *cf;

	assert_int_equal(fx_run(f, &out, &err, "serve", "--tls-cert", "/tmp/c.pem"), 1);
	fx_contains(err, "--tls-key");
	free(out);
	free(err);
	/* A key missing from the file is refused the same way. */
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	snprintf(config, sizeof(config), "%s/cutover.yaml", dir);
	assert_non_null(cf = fopen(config, "w"));
	fprintf(cf, "serve:\n  tls_cert: /tmp/c.pem\n");
	fclose(cf);
	snprintf(e_config, sizeof(e_config), "CUTOVER_CONFIG=%s", config);
	fx_setenv(f, 0, e_config);
	assert_int_equal(fx_run(f, &out, &err, "serve"), 1);
	fx_contains(err, "serve.tls_key");
	free(out);
	free(err);
	/* Both, but the certificate file is not there: exit 1 naming it. */
	assert_int_equal(fx_run(f, &out, &err, "serve", "--listen", "127.0.0.1:0",
				"--tls-cert", "/tmp/no-such-cert.pem", "--tls-key",
				"/tmp/no-such-key.pem"),
			 1);
	fx_contains(err, "/tmp/no-such-cert.pem");
	free(out);
	free(err);
	co_test_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(serve_takes_tls_from_the_config,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(serve_takes_tls_from_flags, fx_test_setup,
					    fx_test_teardown),
	    cmocka_unit_test_setup_teardown(half_a_tls_setup_is_exit_1, fx_test_setup,
					    fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
