/*
 * test_rollout.c - the guarded rollout (issue 14 point 2): windows, steps
 * and decisions as pure logic; then the real binary against a real bare
 * repository and a real etcd: a healthy stack goes shadow -> etcd with
 * `--soak 1s`; a divergence injected during a soak rolls back to the last
 * safe stage (or pauses, --on-fail pause), audited; a rollout outside its
 * window does not advance; a driver killed -9 is taken over and the soak
 * starts again; two at once and bad options are refused, changing nothing.
 *
 * A foreground driver runs as a child process; the test follows it through
 * `cutover --json rollout status`, polled under a bound (there is no event
 * to wait on across processes).
 */
#include "cli_fixture.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/state.h"
#include "flags/rollout.h"
#include "harness/http.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define WAIT_MS 60000

/* ---- pure ---- */

/* 2026-12-01 was a Tuesday: Unix ms of that day at hh:mm UTC, + days. */
static int64_t at(int day_offset, int hh, int mm)
{
	return (1796083200LL + (int64_t)day_offset * 86400 + hh * 3600 + mm * 60) * 1000;
}

static void windows_parse_and_contain(void **state)
{
	co_window w;

	(void)state;
	assert_int_equal(co_window_parse(&w, "Mon-Fri 09:00-17:00 UTC"), 0);
	assert_true(co_window_contains(&w, at(0, 10, 0)));  /* Tue 10:00 */
	assert_false(co_window_contains(&w, at(0, 17, 0))); /* end exclusive */
	assert_false(co_window_contains(&w, at(0, 8, 59)));
	assert_false(co_window_contains(&w, at(4, 12, 0))); /* Sat */
	assert_int_equal(co_window_parse(&w, "Sat,Sun 22:00-06:00"), 0);
	assert_true(co_window_contains(&w, at(4, 23, 0)));  /* Sat night */
	assert_true(co_window_contains(&w, at(5, 5, 0)));   /* Sun morning */
	assert_true(co_window_contains(&w, at(6, 5, 0)));   /* Mon morning: Sun's */
	assert_false(co_window_contains(&w, at(6, 23, 0))); /* Mon night */
	assert_int_equal(co_window_parse(&w, ""), 0);
	assert_true(co_window_contains(&w, at(4, 3, 0)));
	assert_int_equal(co_window_parse(&w, "Mon-Fry 09:00-17:00"), CO_EINVAL);
	fx_contains(co_error_last(), "Mon-Fry 09:00-17:00");
	assert_int_equal(co_window_parse(&w, "09:00-25:00"), CO_EINVAL);
	assert_int_equal(co_window_parse(&w, "09:00-09:00"), CO_EINVAL);
	assert_int_equal(co_window_parse(&w, "Mon 09:00-17:00 CET"), CO_EINVAL);
}

static void steps_and_decisions(void **state)
{
	co_rollout r = {0};
	co_rollout_view v = {0};

	(void)state;
	assert_int_equal(co_rollout_parse_steps(&r, NULL, CO_STAGE_10), 0);
	assert_int_equal(r.n_steps, 3); /* 50, 100, etcd */
	assert_int_equal(r.steps[0], CO_STAGE_50);
	assert_int_equal(co_rollout_parse_steps(&r, "10,shadow", CO_STAGE_GIT),
			 CO_EINVAL);
	fx_contains(co_error_last(), "does not move forward");
	assert_int_equal(co_rollout_parse_steps(&r, "shadow,fifty", CO_STAGE_GIT),
			 CO_EINVAL);
	assert_int_equal(co_rollout_parse_steps(&r, NULL, CO_STAGE_ETCD), CO_EINVAL);

	assert_int_equal(co_rollout_parse_steps(&r, "shadow,10", CO_STAGE_GIT), 0);
	r.initial = CO_STAGE_GIT;
	r.soak_ms = 1000;
	v.now_ms = at(0, 10, 0);
	assert_int_equal(co_rollout_decide(&r, &v), CO_RA_APPLY);
	r.phase = CO_RO_SOAKING;
	r.soak_started_ms = v.now_ms;
	assert_int_equal(co_rollout_decide(&r, &v), CO_RA_NOTHING);
	v.now_ms += 1000;
	assert_int_equal(co_rollout_decide(&r, &v), CO_RA_ANALYSE);
	/* a new driver: the soak starts again, it is not done */
	v.soak_restart = 1;
	assert_int_equal(co_rollout_decide(&r, &v), CO_RA_NOTHING);
	assert_true(r.soak_started_ms == v.now_ms);
	v.soak_restart = 0;
	v.kill_switch = 1;
	snprintf(v.kill_reason, sizeof(v.kill_reason), "trigger: error rate");
	assert_int_equal(co_rollout_decide(&r, &v), CO_RA_FAIL);
	fx_contains(r.analysis, "trigger: error rate");
	v.kill_switch = 0;
	co_rollout_analysed(&r, 1, "ok", v.now_ms);
	assert_int_equal(r.phase, CO_RO_STARTING);
	assert_int_equal(r.step, 1);
	assert_int_equal(co_rollout_safe_stage(&r), CO_STAGE_SHADOW);
	co_rollout_analysed(&r, 0, "reconciliation failed", v.now_ms);
	assert_int_equal(r.phase, CO_RO_FAILED);
	r.phase = CO_RO_SOAKING;
	r.on_fail = CO_ON_FAIL_PAUSE;
	co_rollout_analysed(&r, 0, "reconciliation failed", v.now_ms);
	assert_int_equal(r.phase, CO_RO_PAUSED);
	/* outside the window: wait, never apply */
	assert_int_equal(co_window_parse(&r.window, "Sat 09:00-10:00"), 0);
	r.phase = CO_RO_STARTING;
	assert_int_equal(co_rollout_decide(&r, &v), CO_RA_NOTHING);
	assert_int_equal(r.phase, CO_RO_WAITING);
}

/* ---- the binary ---- */

static void backfilled(fx *f, int n)
{
	char id[16];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "R%d", i);
		fx_expect(0, f, "task", "create", id);
	}
	fx_expect(0, f, "migrate");
}

/* `cutover rollout start ARGS --foreground` as a child (extra NULL:
 * `cutover rollout drive`); its pid. */
static pid_t spawn(fx *f, const char *const *extra)
{
	const char *args[FX_MAX_ARGS] = {CUTOVER_BIN, "rollout", "start", "--foreground"};
	const char *const none[] = {NULL};
	char **envp = fx_make_envp(f->env);
	int i, n = 4, devnull;

	if (extra == NULL) {
		args[2] = "drive";
		n = 3;
		extra = none;
	}
	pid_t pid;

	for (i = 0; extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	if ((pid = fork()) == 0) {
		devnull = open("/dev/null", O_WRONLY);
		if (!getenv("FX_CHILD_OUT")) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execve(CUTOVER_BIN, (char *const *)args, envp);
		_exit(127);
	}
	free(envp);
	assert_true(pid > 0);
	return pid;
}

static int wait_exit(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll `rollout status --json` until it holds `want`; 1 if it did. */
static int status_has(fx *f, const char *want)
{
	int64_t deadline = mono_ms() + WAIT_MS;
	struct timespec ts = {0, 50 * 1000000L};
	char *out;
	int found = 0;

	while (!found && mono_ms() < deadline) {
		out = NULL;
		if (fx_run(f, &out, NULL, "--json", "rollout", "status") == 0 && out)
			found = strstr(out, want) != NULL;
		free(out);
		if (!found)
			nanosleep(&ts, NULL);
	}
	return found;
}

static int audited(fx *f, const char *action)
{
	co_state *st = NULL;
	co_audit_change_list l = {0};
	size_t i;
	int n = 0;

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_audit_changes_latest(&l, st, 1000), 0);
	for (i = 0; i < l.n; i++)
		n += strcmp(l.items[i]->action, action) == 0;
	co_audit_change_list_clear(&l);
	co_state_close(st);
	return n;
}

static void stage_is(fx *f, const char *stage)
{
	char *out = NULL, want[64];

	assert_int_equal(fx_run(f, &out, NULL, "--json", "flags", "show"), 0);
	snprintf(want, sizeof(want), "\"stage\":\"%s\"", stage);
	fx_contains(out, want);
	free(out);
}

static void a_healthy_stack_goes_from_shadow_to_etcd(void **state)
{
	fx *f = *state;
	char *out = NULL;

	backfilled(f, 5);
	assert_int_equal(fx_run(f, &out, NULL, "rollout", "plan", "--soak", "1s"), 0);
	fx_contains(out, "from git: shadow -> 10 -> 50 -> 100 -> etcd");
	free(out);
	fx_expect(0, f, "rollout", "start", "--soak", "1s", "--foreground");
	stage_is(f, "etcd");
	assert_true(status_has(f, "\"phase\":\"done\""));
	assert_int_equal(audited(f, "rollout step"), 5);
	assert_int_equal(audited(f, "rollout done"), 1);
	assert_int_equal(audited(f, "rollout: stage"), 5);
	/* The HTML report draws the timeline: each step, oldest first. */
	assert_int_equal(fx_run(f, &out, NULL, "report", "--format", "html"), 0);
	fx_contains(out, "<h2>Rollout timeline</h2>");
	fx_contains(out, "<tr class=\"tl-rollout\">");
	assert_true(strstr(out, "stage shadow (step 1 of 5)") <
		    strstr(out, "stage etcd (step 5 of 5)"));
	assert_non_null(strstr(out, "stage shadow (step 1 of 5)"));
	free(out);
	/* Done: a new one may start, and has nothing left to do. */
	fx_expect(1, f, "rollout", "start");
}

/* Delete task `id` from etcd behind cutover's back. */
static void etcd_loses(fx *f, const char *id)
{
	char *err = NULL;

	if (co_test_sh(
		NULL, &err, "ETCDCTL_API=3 etcdctl --endpoints=%s del '%stasks/%s'",
		fx_etcd.endpoint, f->e_prefix + strlen("CUTOVER_ETCD_PREFIX="), id) != 0)
		fail_msg("etcdctl del: %s", err ? err : "");
	free(err);
}

static void a_divergence_in_the_soak_rolls_back_or_pauses(void **state)
{
	fx *f = *state;
	const char *rollback[] = {"--soak", "3s", "--steps", "shadow,10,50", NULL};
	const char *pause[] = {"--soak", "3s", "--on-fail", "pause", NULL};
	pid_t pid;

	backfilled(f, 4);
	pid = spawn(f, rollback);
	assert_true(status_has(f, "\"step\":2,\"stage\":\"10\",\"phase\":\"soaking\""));
	etcd_loses(f, "R1");
	assert_int_equal(wait_exit(pid), 3);
	assert_true(status_has(f, "\"phase\":\"failed\""));
	assert_true(status_has(f, "analysis at 10 failed: reconciliation run"));
	/* The kill switch was pulled by the failing run; the stage is back at
	 * the last safe one. */
	stage_is(f, "shadow");
	assert_int_equal(audited(f, "rollout failed"), 1);

	/* --on-fail pause: it stays where it failed, paused. */
	fx_expect(0, f, "resume");
	fx_expect(0, f, "reconcile", "--repair", "git");
	pid = spawn(f, pause);
	assert_true(status_has(f, "\"stage\":\"10\",\"phase\":\"soaking\""));
	etcd_loses(f, "R2");
	assert_int_equal(wait_exit(pid), 3);
	assert_true(status_has(f, "\"phase\":\"paused\""));
	stage_is(f, "10");
	assert_int_equal(audited(f, "rollout pause"), 1);
	/* Another start is refused while it is paused, naming it. */
	fx_expect(3, f, "rollout", "start");
	fx_expect(0, f, "rollout", "abort", "--reason", "enough");
	stage_is(f, "shadow");
	assert_true(status_has(f, "\"phase\":\"aborted\""));
}

/* A window that is closed now: one hour, two hours from now, tomorrow's day. */
static void closed_window(char *buf, size_t len)
{
	static const char *const d[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	time_t t = time(NULL) + 2 * 86400;
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%s 10:00-11:00 UTC", d[tm.tm_wday]);
}

static void outside_its_window_it_waits_and_a_killed_driver_is_taken_over(void **state)
{
	fx *f = *state;
	char win[64];
	const char *waiting[] = {"--window", win, NULL};
	const char *soak[] = {"--soak", "2s", "--steps", "shadow", NULL};
	pid_t pid;

	backfilled(f, 2);
	closed_window(win, sizeof(win));
	pid = spawn(f, waiting);
	assert_true(status_has(f, "\"phase\":\"waiting_window\""));
	stage_is(f, "git");
	fx_expect(0, f, "rollout", "abort");
	assert_int_equal(wait_exit(pid), 3);
	stage_is(f, "git");
	assert_true(status_has(f, "at git, back to git"));

	/* A driver killed -9 mid-soak: a new one takes over at once (the old
	 * pid is gone), the soak starts again, and the rollout finishes. */
	pid = spawn(f, soak);
	assert_true(status_has(f, "\"phase\":\"soaking\""));
	kill(pid, SIGKILL);
	assert_int_equal(wait_exit(pid), 128 + SIGKILL);
	assert_true(status_has(f, "\"phase\":\"soaking\""));
	fx_expect(3, f, "rollout", "start"); /* still one going */
	pid = spawn(f, NULL);
	assert_int_equal(wait_exit(pid), 0);
	assert_true(status_has(f, "\"phase\":\"done\""));
	assert_int_equal(audited(f, "rollout soak restart"), 1);
	stage_is(f, "shadow");
}

/* GET /v1/admin/rollout until its body holds `want`; 1 if it did. */
static int admin_rollout_has(const char *base, const char *want)
{
	int64_t deadline = mono_ms() + WAIT_MS;
	struct timespec ts = {0, 50 * 1000000L};
	co_test_resp r;
	int found = 0;

	while (!found && mono_ms() < deadline) {
		memset(&r, 0, sizeof(r));
		co_test_http(&r, base, "GET", "/v1/admin/rollout", NULL, 0,
			     "Bearer rollout-admin-token");
		found = r.status == 200 && r.body && strstr(r.body, want) != NULL;
		free(r.body);
		if (!found)
			nanosleep(&ts, NULL);
	}
	return found;
}

static void serve_drives_it_after_the_command_exits_and_shows_it(void **state)
{
	fx *f = *state;
	char tokfile[280], kv[320], base[64];
	co_test_resp r = {0};
	int port, err_fd, status;
	FILE *t;
	pid_t pid;

	snprintf(tokfile, sizeof(tokfile), "%s/admin.token", f->state);
	assert_non_null(t = fopen(tokfile, "w"));
	fputs("rollout-admin-token\n", t);
	fclose(t);
	chmod(tokfile, 0600);
	snprintf(kv, sizeof(kv), "CUTOVER_ADMIN_TOKEN_FILE=%s", tokfile);
	fx_setenv(f, 0, kv);
	backfilled(f, 3);
	assert_true((port = fx_serve_start(f, &pid, &err_fd)) > 0);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
	assert_true(admin_rollout_has(base, "{\"phase\":\"none\"}"));

	/* Not --foreground: the command returns at once; serve drives. */
	fx_expect(0, f, "rollout", "start", "--soak", "1s", "--steps", "shadow,10");
	assert_true(admin_rollout_has(base, "\"phase\":\"done\""));
	stage_is(f, "10");
	assert_int_equal(audited(f, "rollout step"), 2);

	/* The admin token guards it; it is read-only. */
	co_test_http(&r, base, "GET", "/v1/admin/rollout", NULL, 0, NULL);
	assert_int_equal(r.status, 401);
	free(r.body);
	memset(&r, 0, sizeof(r));
	co_test_http(&r, base, "POST", "/v1/admin/rollout", "{}", 2,
		     "Bearer rollout-admin-token");
	assert_int_equal(r.status, 405);
	free(r.body);

	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(err_fd);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void bad_options_and_two_at_once_change_nothing(void **state)
{
	fx *f = *state;
	char *err = NULL, path[300];

	snprintf(path, sizeof(path), "%s/rollout.json", f->state);
	assert_int_equal(fx_run(f, NULL, &err, "rollout", "start", "--window", "Mon 9-5"),
			 1);
	fx_contains(err, "window \"Mon 9-5\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "rollout", "start", "--soak", "soon"), 1);
	fx_contains(err, "--soak \"soon\"");
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "rollout", "start", "--on-fail", "panic"),
			 1);
	free(err);
	assert_int_equal(
	    fx_run(f, NULL, &err, "rollout", "start", "--steps", "10,shadow"), 1);
	free(err);
	assert_int_equal(access(path, F_OK), -1);
	fx_expect(3, f, "rollout", "pause");

	fx_expect(0, f, "rollout", "start", "--soak", "1h");
	assert_int_equal(fx_run(f, NULL, &err, "rollout", "start"), 3);
	fx_contains(err, "is already starting at step 1 of 5 (stage shadow)");
	free(err);
	fx_expect(0, f, "rollout", "pause");
	fx_expect(3, f, "rollout", "pause");
	fx_expect(0, f, "rollout", "resume");
	fx_expect(0, f, "rollout", "abort");
	stage_is(f, "git");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(windows_parse_and_contain),
	    cmocka_unit_test(steps_and_decisions),
	    cmocka_unit_test_setup_teardown(a_healthy_stack_goes_from_shadow_to_etcd,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(a_divergence_in_the_soak_rolls_back_or_pauses,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		outside_its_window_it_waits_and_a_killed_driver_is_taken_over,
		fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(serve_drives_it_after_the_command_exits_and_shows_it,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(bad_options_and_two_at_once_change_nothing,
					    fx_test_setup, fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
