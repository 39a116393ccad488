/*
 * test_drill.c - `cutover drill` end to end: the binary starts its own
 * scratch stack (real etcd, real bare git repo, in a temp dir), and for
 * each fault kind (etcd-kill, etcd-stop, latency) a trigger pulls the kill
 * switch, the trip is audited with its figures, every acknowledged write
 * is in both stores afterwards (0 lost, 0 double winners, the final
 * reconciliation passes), the report parses as JSON (stdout with --json,
 * <out>/drill.json with --out) with the documented fields, and nothing is
 * left running or lying around.  Bad options exit 1 and start nothing.
 *
 * The drill never reads the user's configuration: each run is given a
 * CUTOVER_CONFIG that does not exist and a CUTOVER_STATE_DIR that must stay
 * empty.  Time to trip is printed, never asserted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness/harness.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Entries of `dir` whose name starts with `prefix`; -1 if unreadable. */
static int entries_in(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* The environment of a drill: its own TMPDIR, a user config that must not
 * be read and a user state dir that must not be written. */
typedef struct drill_env {
	char tmp[256], state[300];
	char e_tmp[300], e_cfg[320], e_state[320];
	const char *env[4];
} drill_env;

static void env_open(drill_env *e)
{
	assert_int_equal(co_test_tmpdir(e->tmp, sizeof(e->tmp)), 0);
	snprintf(e->state, sizeof(e->state), "%s/user-state", e->tmp);
	assert_int_equal(mkdir(e->state, 0700), 0);
	snprintf(e->e_tmp, sizeof(e->e_tmp), "TMPDIR=%s", e->tmp);
	snprintf(e->e_cfg, sizeof(e->e_cfg), "CUTOVER_CONFIG=%s/no-such-cutover.yaml",
		 e->tmp);
	snprintf(e->e_state, sizeof(e->e_state), "CUTOVER_STATE_DIR=%s", e->state);
	e->env[0] = e->e_tmp;
	e->env[1] = e->e_cfg;
	e->env[2] = e->e_state;
	e->env[3] = NULL;
}

/* Nothing left: no scratch dir, the user's state dir untouched. */
static void env_close(drill_env *e)
{
	assert_int_equal(entries_in(e->tmp, "cutover-drill-"), 0);
	assert_int_equal(entries_in(e->state, ""), 2); /* "." and ".." */
	co_test_rmrf(e->tmp);
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsString(v))
		fail_msg("report field \"%s\" is not a string", k);
	return v->valuestring;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v))
		fail_msg("report field \"%s\" is not a number", k);
	return v->valuedouble;
}

/* The report of a passing drill of `fault`: every field, and the verdict. */
static void check_report(const char *json, const char *fault)
{
	cJSON *o = cJSON_Parse(json), *th, *rc, *audit, *row;
	int trips = 0;

	if (!o)
		fail_msg("report is not JSON: %s", json);
	assert_string_equal(str(o, "fault"), fault);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "tripped")));
	assert_true(
	    cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "tripped_before_fault")));
	assert_string_not_equal(str(o, "trigger"), "none");
	assert_non_null(str(o, "expected_trigger"));
	if (strncmp(str(o, "kill_reason"), "trigger ", 8) != 0)
		fail_msg("kill_reason: %s", str(o, "kill_reason"));
	/* the figures audited with the trip name the trigger that fired */
	{
		char want[64];

		snprintf(want, sizeof(want), "trigger=%s", str(o, "trigger"));
		if (strncmp(str(o, "figures"), want, strlen(want)) != 0)
			fail_msg("figures \"%s\" do not start with %s", str(o, "figures"),
				 want);
	}
	assert_true(num(o, "time_to_trip_ms") >= 0);
	assert_true(num(o, "acked_writes") > 0);
	assert_true(num(o, "lost") == 0);
	assert_true(num(o, "double_winners") == 0);
	assert_true(num(o, "outbox_left") == 0);
	th = cJSON_GetObjectItemCaseSensitive(o, "thresholds");
	assert_true(num(th, "window_s") == 5);
	assert_true(num(th, "min_samples") == 20);
	assert_true(num(th, "health_grace_s") == 1);
	rc = cJSON_GetObjectItemCaseSensitive(o, "reconcile");
	assert_string_equal(str(rc, "verdict"), "pass");
	assert_true(num(rc, "run") > 0);
	audit = cJSON_GetObjectItemCaseSensitive(o, "audit");
	assert_true(cJSON_IsArray(audit));
	cJSON_ArrayForEach(row, audit)
	{
		if (strcmp(str(row, "action"), "auto-rollback") == 0 &&
		    strcmp(str(row, "who"), "cutover-triggers") == 0)
			trips++;
	}
	assert_int_equal(trips, 1);
	if (strcmp(fault, "latency") == 0) { /* pulses of 3x the git p95, bounded */
		assert_true(num(o, "pulses") >= 1);
		assert_true(num(o, "pulse_stop_ms") >= 700 &&
			    num(o, "pulse_stop_ms") <= 1000);
	}
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok")));
	print_message(
	    "drill %s: trigger %s (expected %s) after %.0f ms; %.0f acked, 0 lost\n",
	    fault, str(o, "trigger"), str(o, "expected_trigger"),
	    num(o, "time_to_trip_ms"), num(o, "acked_writes"));
	cJSON_Delete(o);
}

/* `--json drill --fault F`: exit 0, the report on stdout. */
static void drill_json(const char *fault)
{
	const char *argv[] = {"--json",	   "drill", "--fault", fault,
			      "--seconds", "0.5",   NULL};
	char *out = NULL, *err = NULL;
	drill_env e;
	int rc;

	env_open(&e);
	rc = co_test_cutover(&out, &err, e.env, argv);
	if (rc != 0)
		fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", out ? out : "",
			err ? err : "");
	assert_int_equal(rc, 0);
	check_report(out, fault);
	free(out);
	free(err);
	env_close(&e);
}

static void etcd_stop_trips_a_trigger_and_loses_nothing(void **state)
{
	(void)state;
	drill_json("etcd-stop");
}

static void latency_pulses_trip_a_trigger_and_lose_nothing(void **state)
{
	(void)state;
	drill_json("latency");
}

/* The default fault in text mode, the report also in --out/drill.json. */
static void etcd_kill_text_and_out_file_trip_and_lose_nothing(void **state)
{
	char outdir[320], path[400], *json;
	const char *argv[] = {"drill", "--seconds", "0.5", "--out", outdir, NULL};
	char *out = NULL, *err = NULL;
	const char *p;
	drill_env e;
	long pid = 0;
	int rc;

	(void)state;
	env_open(&e);
	snprintf(outdir, sizeof(outdir), "%s/report", e.tmp);
	rc = co_test_cutover(&out, &err, e.env, argv);
	if (rc != 0)
		fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", out ? out : "",
			err ? err : "");
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "fault etcd-kill on a scratch stack (the configured "
				    "stores are not touched)"));
	assert_non_null(strstr(out, "thresholds    window 5 s, min_samples 20"));
	assert_non_null(strstr(out, "kill switch   tripped "));
	assert_non_null(strstr(out, "0 lost, 0 double winners"));
	assert_non_null(strstr(out, "== Audit rows of the drill"));
	assert_non_null(strstr(out, "cutover-triggers auto-rollback"));
	assert_non_null(strstr(out, "Drill passed: trigger "));
	snprintf(path, sizeof(path), "%s/drill.json", outdir);
	assert_non_null(json = slurp(path));
	check_report(json, "etcd-kill");
	free(json);
	/* its etcd, restarted after the kill, is gone */
	if ((p = strstr(out, "etcd restarted on its data (pid ")) != NULL)
		pid = strtol(p + strlen("etcd restarted on its data (pid "), NULL, 10);
	assert_true(pid > 0);
	assert_true(kill((pid_t)pid, 0) < 0 && errno == ESRCH);
	free(out);
	free(err);
	env_close(&e);
}

/*
 * ^C while etcd is held stopped by the etcd-stop fault: the drill continues
 * etcd, stops it, removes its temp dir, and exits 130.  Output is read
 * through a pipe until the fault line (bounded), then SIGINT is sent.
 */
static void sigint_during_etcd_stop_leaves_nothing_stopped_or_running(void **state)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fds[2], status, seen = 0;
	const char *p;
	pid_t child;
	long etcd = 0;
	time_t deadline;
	drill_env e;

	(void)state;
	env_open(&e);
	assert_int_equal(pipe(fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		setenv("TMPDIR", e.tmp, 1);
		setenv("CUTOVER_CONFIG", e.e_cfg + strlen("CUTOVER_CONFIG="), 1);
		setenv("CUTOVER_STATE_DIR", e.state, 1);
		execl(CUTOVER_BIN, CUTOVER_BIN, "drill", "--fault", "etcd-stop",
		      "--seconds", "0.5", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	deadline = time(NULL) + 120;
	for (;;) {
		struct pollfd pf = {fds[0], POLLIN, 0};
		ssize_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			assert_non_null(buf = realloc(buf, cap));
		}
		if (!seen && time(NULL) > deadline)
			break;
		if (!seen && poll(&pf, 1, 1000) <= 0)
			continue;
		if ((n = read(fds[0], buf + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (!seen && strstr(buf, "\n  fault ")) {
			seen = 1;
			kill(child, SIGINT);
		}
	}
	close(fds[0]);
	assert_true(seen);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 130);
	if ((p = strstr(buf, "\n  etcd ")) != NULL && (p = strstr(p, "pid ")) != NULL)
		etcd = strtol(p + 4, NULL, 10);
	assert_true(etcd > 0);
	assert_true(kill((pid_t)etcd, 0) < 0 && errno == ESRCH);
	free(buf);
	env_close(&e);
}

static void bad_options_exit_1_and_start_nothing(void **state)
{
	const char *a1[] = {"drill", "--fault", "meteor", NULL};
	const char *a2[] = {"drill", "--seconds", "0", NULL};
	const char *a3[] = {"drill", "--seconds", "soon", NULL};
	const char *a4[] = {"drill", "--out", "", NULL};
	const char *a5[] = {"drill", "--bogus", NULL};
	const char *a6[] = {"drill", "extra", NULL};
	const char *const *cases[] = {a1, a2, a3, a4, a5, a6};
	const char *names[] = {"\"meteor\"", "\"0\"",	"\"soon\"",
			       "--out",	     "--bogus", "extra"};
	drill_env e;

	(void)state;
	env_open(&e);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL, *err = NULL;

		assert_int_equal(co_test_cutover(&out, &err, e.env, cases[i]), 1);
		assert_non_null(err);
		if (!strstr(err, names[i]) || !strstr(err, "usage: cutover drill"))
			fail_msg("case %zu: stderr does not name %s: %s", i, names[i],
				 err);
		free(out);
		free(err);
	}
	env_close(&e);
}

static void help_says_the_configured_stores_are_not_touched(void **state)
{
	const char *argv[] = {"drill", "--help", NULL};
	char *out = NULL, *err = NULL;

	(void)state;
	assert_int_equal(co_test_cutover(&out, &err, NULL, argv), 0);
	assert_non_null(strstr(out, "never touches the configured stores"));
	assert_non_null(strstr(out, "etcd-stop"));
	assert_non_null(strstr(out, "latency"));
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(help_says_the_configured_stores_are_not_touched),
	    cmocka_unit_test(bad_options_exit_1_and_start_nothing),
	    cmocka_unit_test(etcd_kill_text_and_out_file_trip_and_lose_nothing),
	    cmocka_unit_test(etcd_stop_trips_a_trigger_and_loses_nothing),
	    cmocka_unit_test(latency_pulses_trip_a_trigger_and_lose_nothing),
	    cmocka_unit_test(sigint_during_etcd_stop_leaves_nothing_stopped_or_running),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
