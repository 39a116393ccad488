/*
 * test_runbooks.c - every runbook runs (issue 17 point 4).
 *
 * Each runbooks/<name>.md is compiled by runbook.h into a bash script of
 * its shell blocks, in order, and run against a scratch stack: the suite's
 * etcd (a fresh key prefix per runbook), a fresh bare git repo and state
 * dir (tests/cli/cli_fixture.h), the CUTOVER_* variables pointing at them,
 * the built `cutover` first in PATH, a free loopback port in RB_PORT and a
 * scratch working dir in RB_WORK.  A command whose exit is not the one its
 * block expects fails the runbook, naming file:line; so does a runbook of
 * which nothing runs.  RUNBOOK=<name> runs that one alone and shows all
 * its output.
 *
 * The convention (runbooks/README.md) is checked on small documents made
 * here, and drift is shown by doctored copies of a real runbook: an
 * unknown flag, a renamed command.
 */
#include "cli/cli_fixture.h"
#include "runbooks/runbook.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* A whole runbook must end within this (a safety net: a command that never
 * returns, e.g. a long-running one that lost its `background`). */
#define RB_TIMEOUT_S 420

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	rb_buf b = {0};
	char chunk[4096];
	size_t r;

	if (f == NULL)
		return NULL;
	while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rb_put(&b, chunk, r);
	fclose(f);
	if (b.p == NULL)
		rb_puts(&b, "");
	return b.p;
}

static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* A loopback port nobody listens on now. */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* The result of one runbook's run. */
typedef struct rb_run {
	int rc;	   /* the script's exit status; -1: it did not compile */
	char *log; /* its output (stdout and stderr); malloc'd */
	rb_stats st;
	char err[512]; /* the compile error */
} rb_run;

/* Wait for pid at most RB_TIMEOUT_S (polled), else kill its group. */
static int wait_bounded(pid_t pid)
{
	struct timespec t0, t;
	int status;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > RB_TIMEOUT_S) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			return 124;
		}
		poll(NULL, 0, 50);
	}
}

/*
 * Compile the Markdown text md (named `name`) and run it on a fresh scratch
 * stack.  The caller frees r->log.
 */
static void run_md(const char *md, const char *name, rb_run *r)
{
	char work[256], script[300], logp[300], e_path[4200], e_work[300], e_port[32];
	const char *bin_dir_end = strrchr(CUTOVER_BIN, '/');
	const char *extra[FX_MAX_ENV + 4];
	rb_buf sh = {0};
	char **envp;
	fx *f = NULL;
	pid_t pid;
	int i, fd;

	memset(r, 0, sizeof(*r));
	if (rb_compile(md, name, &sh, &r->st, r->err, sizeof(r->err)) < 0) {
		rb_buf_free(&sh);
		r->rc = -1;
		r->log = strdup("");
		return;
	}
	assert_int_equal(fx_setup(&f, fx_etcd.endpoint), 0);
	assert_int_equal(co_test_tmpdir(work, sizeof(work)), 0);
	snprintf(script, sizeof(script), "%s/runbook.sh", work);
	snprintf(logp, sizeof(logp), "%s/runbook.log", work);
	spit(script, sh.p);
	rb_buf_free(&sh);

	assert_non_null(bin_dir_end);
	snprintf(e_path, sizeof(e_path), "PATH=%.*s:%s", (int)(bin_dir_end - CUTOVER_BIN),
		 CUTOVER_BIN, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	snprintf(e_work, sizeof(e_work), "RB_WORK=%s", work);
	snprintf(e_port, sizeof(e_port), "RB_PORT=%d", free_port());
	for (i = 0; f->env[i]; i++)
		extra[i] = f->env[i];
	extra[i++] = e_path;
	extra[i++] = e_work;
	extra[i++] = e_port;
	extra[i] = NULL;
	envp = fx_make_envp(extra);

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *argv[] = {"bash", "--noprofile", "--norc", script, NULL};

		setpgid(0, 0);
		fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		fd = open("/dev/null", O_RDONLY);
		dup2(fd, 0);
		execve("/bin/bash", (char *const *)argv, envp);
		_exit(127);
	}
	free(envp);
	r->rc = wait_bounded(pid);
	r->log = slurp(logp);
	assert_non_null(r->log);
	co_test_rmrf(work);
	fx_teardown(f);
}

/* Print the last part of a failed run's log (the command that failed). */
static void show_tail(const rb_run *r, const char *name)
{
	size_t n = strlen(r->log);
	const char *from = n > 6000 ? r->log + n - 6000 : r->log;

	/* Not print_message: cmocka cuts a message at 1 KiB. */
	fprintf(stderr, "---- %s: exit %d%s%s; the end of its output:\n", name, r->rc,
		r->err[0] ? ": " : "", r->err);
	fputs(from, stderr);
	fputs("\n----\n", stderr);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every runbooks/<name>.md but README.md runs; one failing does not hide another. */
static void test_every_runbook_runs(void **state)
{
	const char *only = getenv("RUNBOOK");
	char *names[64];
	int n = 0, i, failed = 0;
	DIR *d = opendir(CUTOVER_SOURCE_DIR "/runbooks");
	struct dirent *e;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL && n < 64) {
		size_t l = strlen(e->d_name);

		if (l > 3 && strcmp(e->d_name + l - 3, ".md") == 0 &&
		    strcmp(e->d_name, "README.md") != 0)
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof(*names), by_name);
	assert_true(n >= 7);
	for (i = 0; i < n; i++) {
		char path[512], name[128];
		char *md;
		rb_run r;

		if (only && strncmp(only, names[i], strlen(only)) != 0) {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/runbooks/%s", CUTOVER_SOURCE_DIR, names[i]);
		snprintf(name, sizeof(name), "runbooks/%s", names[i]);
		md = slurp(path);
		assert_non_null(md);
		run_md(md, name, &r);
		if (r.rc != 0 || r.st.commands == 0) {
			show_tail(&r, name);
			if (r.st.commands == 0)
				print_message("%s: no command of it runs\n", name);
			failed++;
		} else {
			if (only)
				fputs(r.log, stderr);
			print_message("%s: %d commands in %d blocks ran; %d blocks skipped, "
				      "%d shown only, %d hidden setups\n",
				      name, r.st.commands, r.st.blocks_run,
				      r.st.blocks_skipped, r.st.blocks_shown, r.st.setups);
		}
		free(r.log);
		free(md);
		free(names[i]);
	}
	if (failed)
		fail_msg("%d runbook(s) failed (above)", failed);
}

/* The real runbooks/cutover.md with `from` replaced by `to` (once). */
static char *doctored(const char *from, const char *to, int *line)
{
	char *md = slurp(CUTOVER_SOURCE_DIR "/runbooks/cutover.md"), *at;
	rb_buf b = {0};
	const char *c;

	assert_non_null(md);
	at = strstr(md, from);
	assert_non_null(at);
	*line = 1;
	for (c = md; c < at; c++)
		*line += *c == '\n';
	rb_put(&b, md, (size_t)(at - md));
	rb_puts(&b, to);
	rb_puts(&b, at + strlen(from));
	free(md);
	return b.p;
}

/* A flag the CLI no longer knows fails the runbook at its line. */
static void test_drift_unknown_flag_fails(void **state)
{
	char where[64];
	int line;
	char *md = doctored("cutover migrate --dry-run", "cutover migrate --dry-rnu", &line);
	rb_run r;

	(void)state;
	run_md(md, "doctored/cutover.md", &r);
	snprintf(where, sizeof(where), "doctored/cutover.md:%d: exit 1, wanted 0", line);
	if (r.rc == 0 || strstr(r.log, where) == NULL ||
	    strstr(r.log, "unknown option \"--dry-rnu\"") == NULL) {
		show_tail(&r, "doctored/cutover.md");
		fail_msg("the doctored runbook did not fail at line %d", line);
	}
	free(r.log);
	free(md);
}

/* A renamed command fails it too, though it sits in a `cmd && cmd` line. */
static void test_drift_renamed_command_fails(void **state)
{
	char where[64];
	int line;
	char *md = doctored("cutover reconcile                  # must exit 0",
			    "cutover reconcil                   # must exit 0", &line);
	rb_run r;

	(void)state;
	run_md(md, "doctored/cutover.md", &r);
	snprintf(where, sizeof(where), "doctored/cutover.md:%d: exit 1, wanted 0", line);
	if (r.rc == 0 || strstr(r.log, where) == NULL) {
		show_tail(&r, "doctored/cutover.md");
		fail_msg("the doctored runbook did not fail at line %d", line);
	}
	free(r.log);
	free(md);
}

/* What runs and what does not, on a document made for it (no store used). */
static void test_convention(void **state)
{
	static const char md[] =
		"# doc\n"
		"```text\nexit 7\n```\n"
		"```\nexit 7\n```\n"
		"```yaml\nexit: 7\n```\n"
		"```sh\n"
		"echo ran-plain   # a comment\n"
		"echo one \\\n"
		"  two\n"
		"# a comment line\n"
		"```\n"
		"<!-- runbook-test: skip operator-only -->\n"
		"```sh\nexit 7\n```\n"
		"<!-- runbook-test: setup\n"
		"echo hidden-setup > setup.txt\n"
		"-->\n"
		"- a list item:\n"
		"\n"
		"  <!-- runbook-test: for N in 10 50 -->\n"
		"  <!-- runbook-test: let /srv/x=here -->\n"
		"  ```sh\n"
		"  echo stage-N N% NN /srv/x/f\n"
		"  ```\n"
		"<!-- runbook-test: exit 3 -->\n"
		"```bash\n(exit 3)\n```\n"
		"<!-- runbook-test: needs no-such-tool-here -->\n"
		"```sh\nexit 7\n```\n"
		"<!-- runbook-test: background -->\n"
		"```sh\nsleep 30   # stopped at the end\n```\n"
		"```sh\ntest -s setup.txt\n```\n";
	rb_run r;

	(void)state;
	run_md(md, "made.md", &r);
	if (r.rc != 0)
		show_tail(&r, "made.md");
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.st.blocks_shown, 3);
	assert_int_equal(r.st.blocks_skipped, 1);
	assert_int_equal(r.st.blocks_run, 6);
	assert_int_equal(r.st.setups, 1);
	fx_contains(r.log, "ran-plain");
	fx_contains(r.log, "one two");
	fx_contains(r.log, "stage-10 10% NN here/f");
	fx_contains(r.log, "stage-50 50% NN here/f");
	fx_contains(r.log, "made.md:29 [N=10]");
	fx_contains(r.log, "made.md:18: not run: operator-only");
	fx_contains(r.log, "not run: no no-such-tool-here in PATH");
	fx_contains(r.log, "runbook-test: made.md: 8 commands ran");
	free(r.log);
}

/* A marker the extractor does not understand is an error, never a skip. */
static void test_bad_markers_refused(void **state)
{
	static const struct {
		const char *md, *says;
	} bad[] = {
		{"<!-- runbook-test: skip -->\n```sh\ntrue\n```\n", "t.md:1: `skip` needs"},
		{"<!-- runbook-test: skpi x -->\n```sh\ntrue\n```\n", "t.md:1: unknown"},
		{"<!-- runbook-test: skip x -->\ntext\n```sh\ntrue\n```\n",
		 "t.md:1: runbook-test directive not followed"},
		{"<!-- runbook-test: skip x -->\n```text\ntrue\n```\n", "never runs"},
		{"```sh\ntrue\n", "t.md:1: code block never closed"},
		{"<!-- runbook-test: setup\ntrue\n", "t.md:1: setup without"},
		{"<!-- runbook-test: exit x -->\n```sh\ntrue\n```\n", "`exit N`"},
		{"<!-- runbook-test: for N 1 -->\n```sh\ntrue\n```\n", "`for VAR in"},
		{"x\n<!-- runbook-test: exit 1 -->\n", "t.md:2: runbook-test directive at the end"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rb_buf sh = {0};
		rb_stats st;
		char err[512] = "";

		if (rb_compile(bad[i].md, "t.md", &sh, &st, err, sizeof(err)) != -1)
			fail_msg("case %zu compiled", i);
		fx_contains(err, bad[i].says);
		rb_buf_free(&sh);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_markers_refused),
		cmocka_unit_test(test_convention),
		cmocka_unit_test(test_drift_unknown_flag_fails),
		cmocka_unit_test(test_drift_renamed_command_fails),
		cmocka_unit_test(test_every_runbook_runs),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
