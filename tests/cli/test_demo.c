/*
 * test_demo.c - `cutover demo` end to end: the binary starts its own etcd
 * and git repo, runs every stage, catches the injected divergence, rolls
 * back, writes the report, and leaves nothing running or lying around --
 * also when it is interrupted with SIGINT half-way.
 *
 * Each test points TMPDIR at a temp dir of its own, so the demo's mkdtemp
 * directory lands inside it and the test can check that it was removed.
 * The etcd pid is read from the demo's own output ("etcd  pid N on ...").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness/harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The pid printed on the "etcd" line of the setup section, or 0. */
static pid_t etcd_pid_in(const char *out)
{
	const char *p = strstr(out, "\n  etcd ");
	long pid = 0;

	if (p && (p = strstr(p, "pid ")) != NULL)
		pid = strtol(p + 4, NULL, 10);
	return (pid_t)pid;
}

/* 1 if no process `pid` exists (or it is a zombie nobody should leave). */
static int process_gone(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	int gone = 1;

	if (kill(pid, 0) < 0)
		return errno == ESRCH;
	/* It exists: only acceptable if it is not our etcd any more. */
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if ((f = fopen(path, "r")) != NULL) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		if (strcmp(buf, "etcd") == 0)
			gone = 0;
		fclose(f);
	}
	return gone;
}

/* Number of entries named cutover-demo-* in dir. */
static int demo_dirs_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "cutover-demo-", 13) == 0)
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

static void demo_runs_every_stage_rolls_back_writes_report_and_cleans_up(void **state)
{
	char tmp[256], outdir[300], tmpenv[300], path[400];
	const char *env[] = {tmpenv, NULL};
	const char *argv[] = {"demo", "--out", outdir, "--swarms", "3",
			      "--seconds-per-stage", "0.4", NULL};
	char *out = NULL, *err = NULL, *html, *md;
	pid_t pid;
	int rc;

	(void)state;
	assert_int_equal(co_test_tmpdir(tmp, sizeof(tmp)), 0);
	snprintf(outdir, sizeof(outdir), "%s/report", tmp);
	snprintf(tmpenv, sizeof(tmpenv), "TMPDIR=%s", tmp);

	rc = co_test_cutover(&out, &err, env, argv);
	if (rc != 0)
		fprintf(stderr, "stdout:\n%s\nstderr:\n%s\n", out ? out : "", err ? err : "");
	assert_int_equal(rc, 0);
	assert_non_null(out);

	/* Every stage, each with a passing reconciliation. */
	assert_non_null(strstr(out, "Stage git"));
	assert_non_null(strstr(out, "Stage shadow"));
	assert_non_null(strstr(out, "Stage 10"));
	assert_non_null(strstr(out, "Stage 50"));
	assert_non_null(strstr(out, "Stage 100"));
	assert_non_null(strstr(out, "100.00% -> PASS"));
	assert_non_null(strstr(out, "go/no-go      go: run"));
	/* The divergence, caught, and the automatic rollback. */
	assert_non_null(strstr(out, "-> FAIL (action: kill_switch)"));
	assert_non_null(strstr(out, "Automatic rollback"));
	assert_non_null(strstr(out, "tripped by the reconciler: \"reconcile run "));
	assert_non_null(strstr(out, "primary git, secondary etcd (kill switch)"));
	assert_non_null(strstr(out, "claims decided by git 100%, by etcd 0%"));
	assert_non_null(strstr(out, "Demo complete"));

	/* The report files. */
	snprintf(path, sizeof(path), "%s/report.html", outdir);
	html = slurp(path);
	assert_non_null(html);
	assert_non_null(strstr(html, "<svg"));
	snprintf(path, sizeof(path), "%s/report.md", outdir);
	md = slurp(path);
	assert_non_null(md);
	assert_non_null(strstr(md, "mismatch"));
	free(html);
	free(md);

	/* Nothing left behind: etcd stopped, temp dir removed. */
	pid = etcd_pid_in(out);
	assert_true(pid > 0);
	assert_true(process_gone(pid));
	assert_int_equal(demo_dirs_in(tmp), 0);

	free(out);
	free(err);
	co_test_rmrf(tmp);
}

static void demo_rejects_bad_options_with_usage(void **state)
{
	const char *a1[] = {"demo", "--swarms", "0", NULL};
	const char *a2[] = {"demo", "--seconds-per-stage", "soon", NULL};
	const char *a3[] = {"demo", "--bogus", NULL};
	const char *const *cases[] = {a1, a2, a3};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL, *err = NULL;

		assert_int_equal(co_test_cutover(&out, &err, NULL, cases[i]), 1);
		assert_non_null(err);
		assert_non_null(strstr(err, "usage: cutover demo"));
		free(out);
		free(err);
	}
}

/*
 * SIGINT while the swarms run: the demo stops, stops its etcd and removes
 * its temp dir, and says so.  Output is read through a pipe until the git
 * stage's traffic starts (bounded by a deadline), then ^C is sent.
 */
static void demo_interrupted_by_sigint_stops_etcd_and_removes_temp_dir(void **state)
{
	char tmp[256], outdir[300], tmpenv[300];
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fds[2], status, seen = 0;
	pid_t child, etcd;
	time_t deadline;

	(void)state;
	assert_int_equal(co_test_tmpdir(tmp, sizeof(tmp)), 0);
	snprintf(outdir, sizeof(outdir), "%s/report", tmp);
	snprintf(tmpenv, sizeof(tmpenv), "%s", tmp);
	assert_int_equal(pipe(fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		setenv("TMPDIR", tmpenv, 1);
		execl(CUTOVER_BIN, CUTOVER_BIN, "demo", "--out", outdir,
		      "--seconds-per-stage", "30", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	deadline = time(NULL) + 60;
	for (;;) {
		struct pollfd p = {fds[0], POLLIN, 0};
		ssize_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		if (poll(&p, 1, 1000) <= 0) {
			if (time(NULL) > deadline)
				break;
			continue;
		}
		if ((n = read(fds[0], buf + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "Stage git") && strstr(buf, "\n  flags ")) {
			seen = 1;
			break;
		}
	}
	assert_true(seen);
	kill(child, SIGINT);
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		if ((n = read(fds[0], buf + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
	}
	close(fds[0]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 130);
	assert_non_null(strstr(buf, "interrupted"));
	etcd = etcd_pid_in(buf);
	assert_true(etcd > 0);
	assert_true(process_gone(etcd));
	assert_int_equal(demo_dirs_in(tmp), 0);
	free(buf);
	co_test_rmrf(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(demo_runs_every_stage_rolls_back_writes_report_and_cleans_up),
		cmocka_unit_test(demo_rejects_bad_options_with_usage),
		cmocka_unit_test(demo_interrupted_by_sigint_stops_etcd_and_removes_temp_dir),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
