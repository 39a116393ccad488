/*
 * test_log_format.c - `--log-format json` and $CUTOVER_LOG_FORMAT: what a
 * command says on stderr comes as one JSON object per line (ts, level,
 * event, msg, pid), from a failing command and from a real `cutover serve`
 * (its start, a warning, its stop); the default stays plain text; a bad
 * format is refused (exit 1) before the command runs.
 */
#include "cli_fixture.h"

#include "core/error.h"

#include <cjson/cJSON.h>

/* `line` is a JSON log line of `level` and `event` whose msg holds `want`. */
static void json_line(const char *line, const char *level, const char *event,
		      const char *want)
{
	cJSON *o = cJSON_Parse(line);
	const cJSON *v;

	if (o == NULL)
		fail_msg("not a JSON line: %s", line);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "level")), level);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "event")), event);
	assert_non_null(
	    strstr(cJSON_GetStringValue(cJSON_GetObjectItem(o, "msg")), want));
	v = cJSON_GetObjectItem(o, "ts");
	assert_true(cJSON_IsString(v) && strlen(v->valuestring) == 24 &&
		    v->valuestring[23] == 'Z');
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "pid")));
	cJSON_Delete(o);
}

/* End s at its first newline. */
static void cut_line(char *s)
{
	size_t n = strcspn(s, "\n");

	assert_int_equal(s[n], '\n');
	s[n] = '\0';
}

static void a_failing_command_says_why_as_json(void **state)
{
	fx *f = *state;
	char *out = NULL, *err = NULL;

	assert_int_equal(
	    fx_run(f, &out, &err, "--log-format", "json", "task", "get", "bad id"), 1);
	cut_line(err);
	json_line(err, "error", "cli", "invalid id");
	free(out);
	free(err);
	out = err = NULL;
	/* the default is the plain line a person reads */
	assert_int_equal(fx_run(f, &out, &err, "task", "get", "bad id"), 1);
	fx_contains(err, "cutover: task: invalid id");
	free(out);
	free(err);
}

static void serve_logs_its_life_as_json(void **state)
{
	fx *f = *state;
	char *line;
	int port, err_fd, status, stopped = 0;
	pid_t pid;

	fx_setenv(f, 0, "CUTOVER_LOG_FORMAT=json");
	fx_setenv(f, 1, "CUTOVER_ADMIN_TOKEN_FILE=/nonexistent/admin.token");
	assert_true((port = fx_serve_start(f, &pid, &err_fd)) > 0);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Every line after "serving on" is JSON, the stop among them. */
	while ((line = fx_read_line(err_fd, 10000)) != NULL) {
		if (strstr(line, "stopping")) {
			json_line(line, "info", "serve", "SIGTERM: stopping");
			stopped = 1;
		} else {
			cJSON *o = cJSON_Parse(line);

			if (o == NULL)
				fail_msg("not a JSON line: %s", line);
			cJSON_Delete(o);
		}
		free(line);
	}
	close(err_fd);
	assert_true(stopped);
}

static void the_warning_before_serving_is_json_too(void **state)
{
	fx *f = *state;
	char *out = NULL, *err = NULL;

	/* An unreadable admin token file: a warning, then serve runs on;
	 * a bad --listen then ends it, both said as JSON lines. */
	fx_setenv(f, 0, "CUTOVER_ADMIN_TOKEN_FILE=/nonexistent/admin.token");
	assert_int_equal(fx_run(f, &out, &err, "--log-format", "json", "serve",
				"--listen", "no-port-here"),
			 1);
	cut_line(err);
	json_line(err, "warn", "serve", "admin endpoints disabled");
	free(out);
	free(err);
}

static void a_bad_format_is_refused_before_anything_runs(void **state)
{
	fx *f = *state;
	char *out = NULL, *err = NULL;

	assert_int_equal(
	    fx_run(f, &out, &err, "--log-format", "xml", "task", "create", "L1"), 1);
	fx_contains(err, "--log-format: \"xml\" is not text or json");
	free(out);
	free(err);
	out = err = NULL;
	fx_setenv(f, 0, "CUTOVER_LOG_FORMAT=yaml");
	assert_int_equal(fx_run(f, &out, &err, "task", "create", "L1"), 1);
	fx_contains(err, "CUTOVER_LOG_FORMAT");
	free(out);
	free(err);
	out = err = NULL;
	/* nothing was created by either */
	fx_setenv(f, 0, "CUTOVER_LOG_FORMAT=text");
	assert_int_equal(fx_run(f, &out, &err, "task", "get", "L1"), 4);
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(a_failing_command_says_why_as_json,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(serve_logs_its_life_as_json, fx_test_setup,
					    fx_test_teardown),
	    cmocka_unit_test_setup_teardown(the_warning_before_serving_is_json_too,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(a_bad_format_is_refused_before_anything_runs,
					    fx_test_setup, fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
