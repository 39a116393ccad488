/*
 * test_first_run.c - every documented command on a fresh host (issue 22).
 *
 * An operator's first command of a migration used to fail on a state dir
 * nobody had created yet ("./.cutover/flags.yaml.lock: No such file or
 * directory", exit 2, as if a store were down).  Here each command shown
 * in README.md and in the runbooks (runbooks/<name>.md) runs against a
 * state dir that does not exist yet (nor does its parent), with a real
 * etcd and a real bare git repo: it must exit as the contract says for an
 * empty system (0; 3 for a stage change the go/no-go gate refuses before
 * any reconciliation; 4 for a record or run that does not exist yet),
 * never 2, and never with "No such file".  Everything it leaves in the
 * state dir must be private (the dir 0700, every file 0600), which the
 * table checks under umask 000.
 *
 * Then the modes under umask 022 and 000 of the files cutover keeps
 * (cutover.db with its -wal and -shm, held open by a running `watch`,
 * flags.yaml and its lock), an operator's pre-existing 0755 dir (warned
 * about, left as it is), and paths that cannot be a state dir (exit 1
 * naming the path).  No test waits on time: long-running commands are
 * stopped once they have said they are up.
 */
#include "cli_fixture.h"

#include "core/state.h"
#include "flags/flags.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Where a long-running command says it is up. */
enum { ON_NONE = 0, ON_STDOUT, ON_STDERR };

typedef struct doc_cmd {
	const char *doc;      /* where the command is shown */
	const char *args[12]; /* after `cutover`; @OUT@, @BOARD@, @SWARMS@ expanded */
	int want;	      /* exit status on an empty system */
	const char *says;     /* the message a nonzero exit must carry */
	int ready_on;	      /* long-running: the stream that says it is up */
	const char *ready;    /* ... and what it says */
} doc_cmd;

/*
 * The commands of README.md ("Command line") and of the runbooks, with
 * concrete arguments where the docs show placeholders.  A command shown in
 * several docs is listed once, with every doc that shows it.  `cutover
 * demo` (README) is left out: it works in a temp dir of its own and never
 * reads the configured state dir (tests/cli/test_demo.c runs it).  Laid
 * out by hand: one command a line or two reads better than a field a line.
 */
/* clang-format off */
static const doc_cmd doc_cmds[] = {
    /* The first command of a migration: before any reconciliation the gate
     * refuses it, with a reason, as the runbook expects (reconcile first). */
    {"README.md; runbooks/cutover.md §2",
     {"stage", "shadow", "--reason", "start shadow"}, 3, "go/no-go", 0, NULL},
    {"README.md", {"stage", "shadow", "--force"}, 0, NULL, 0, NULL},
    {"README.md", {"task", "create", "P0.1", "--type", "build", "--meta", "{\"k\":1}",
		   "--blocked-by", "P0.0"}, 0, NULL, 0, NULL},
    {"README.md; runbooks/divergence.md", {"task", "get", "P0.1"}, 4, "not found", 0,
     NULL},
    {"README.md", {"task", "list", "--status", "available"}, 0, NULL, 0, NULL},
    {"README.md", {"task", "claim", "P0.1", "--swarm", "swarm-a", "--ttl", "300"}, 4,
     "not found", 0, NULL},
    {"README.md", {"task", "release", "P0.1", "--swarm", "swarm-a", "--status",
		   "complete"}, 4, "not found", 0, NULL},
    {"README.md", {"task", "renew", "P0.1", "--swarm", "swarm-a", "--ttl", "300"}, 4,
     "not found", 0, NULL},
    {"README.md", {"swarm", "register", "swarm-a", "--cap", "build,test", "--meta",
		   "{}"}, 0, NULL, 0, NULL},
    {"README.md", {"swarm", "get", "swarm-a"}, 4, "not found", 0, NULL},
    {"README.md", {"swarm", "list"}, 0, NULL, 0, NULL},
    {"README.md", {"swarm", "remove", "swarm-a"}, 4, "not found", 0, NULL},
    /* A token is only for a registered swarm: exit 1 on an empty system. */
    {"README.md; runbooks/serve.md", {"swarm", "token", "swarm-a"}, 1,
     "not registered", 0, NULL},
    {"runbooks/serve.md", {"swarm", "token", "swarm-a", "--rotate"}, 1,
     "not registered", 0, NULL},
    {"runbooks/serve.md", {"--json", "swarm", "get", "swarm-a"}, 4, "not found", 0,
     NULL},
    /* Without swarm auth serve stays on loopback (runbooks/serve.md). */
    {"runbooks/serve.md", {"serve", "--listen", "0.0.0.0:0"}, 1, "not a loopback", 0,
     NULL},
    {"README.md", {"watch", "--prefix", "tasks/"}, 0, NULL, ON_STDERR, "watching"},
    {"README.md", {"flags", "show"}, 0, NULL, 0, NULL},
    {"runbooks/cutover.md §3", {"flags", "set", "mirror", "sync", "--reason",
				"legacy readers need read-your-write"}, 0, NULL, 0, NULL},
    {"runbooks/cutover.md §3", {"flags", "set", "mirror", "async"}, 0, NULL, 0, NULL},
    {"runbooks/cutover.md §3", {"stage", "10", "--wait-drain", "0"}, 3, "go/no-go", 0,
     NULL},
    {"README.md", {"flags", "set", "task_claim", "dual", "--etcd-percent", "10"}, 3,
     "go/no-go", 0, NULL},
    {"README.md", {"flags", "set", "task_claim", "shadow", "--force"}, 0, NULL, 0,
     NULL},
    {"README.md; runbooks/cutover.md §3; runbooks/rollback.md; "
     "runbooks/divergence.md",
     {"flags", "explain", "task_claim", "P0.1.2"}, 0, NULL, 0, NULL},
    {"README.md; runbooks/rollback.md",
     {"rollback", "--reason", "etcd p99 over 50 ms"}, 0, NULL, 0, NULL},
    {"README.md", {"resume"}, 0, NULL, 0, NULL},
    {"runbooks/rollback.md; runbooks/divergence.md",
     {"resume", "--reason", "etcd healthy, run 42 passed"}, 0, NULL, 0, NULL},
    {"README.md; runbooks/cutover.md; runbooks/rollback.md; runbooks/divergence.md",
     {"status"}, 0, NULL, 0, NULL},
    {"README.md; runbooks/cutover.md §1", {"migrate", "--dry-run"}, 0, NULL, 0, NULL},
    {"runbooks/cutover.md §1", {"migrate"}, 0, NULL, 0, NULL},
    {"README.md", {"migrate", "--direction", "git-to-etcd"}, 0, NULL, 0, NULL},
    {"runbooks/rollback.md", {"migrate", "--direction", "etcd-to-git", "--dry-run"}, 0,
     NULL, 0, NULL},
    {"runbooks/rollback.md", {"migrate", "--direction", "etcd-to-git"}, 0, NULL, 0,
     NULL},
    {"README.md", {"migrate", "--from-board", "@BOARD@"}, 0, NULL, 0, NULL},
    {"README.md", {"migrate", "--from-swarms", "@SWARMS@"}, 0, NULL, 0, NULL},
    {"README.md; runbooks/cutover.md §1; runbooks/legacy-writers.md",
     {"migrate", "--follow"}, 0, NULL, ON_STDOUT, "following"},
    {"README.md; runbooks/cutover.md; runbooks/divergence.md", {"reconcile"}, 0, NULL,
     0, NULL},
    {"runbooks/cutover.md §1; runbooks/rollback.md", {"reconcile", "--no-rollback"}, 0,
     NULL, 0, NULL},
    {"runbooks/divergence.md", {"reconcile", "--repair", "git"}, 0, NULL, 0, NULL},
    {"runbooks/divergence.md", {"reconcile", "--repair", "etcd"}, 0, NULL, 0, NULL},
    {"README.md; runbooks/cutover.md §2", {"reconcile", "--every", "5m"}, 0, NULL,
     ON_STDOUT, "reconcile run 1"},
    {"runbooks/cutover.md §3; runbooks/legacy-writers.md",
     {"stage", "10", "--reason", "canary 10%"}, 3, "go/no-go", 0, NULL},
    {"runbooks/cutover.md §3", {"stage", "50", "--reason", "canary 50%"}, 3,
     "go/no-go", 0, NULL},
    {"runbooks/cutover.md §3", {"stage", "100", "--reason", "canary 100%"}, 3,
     "go/no-go", 0, NULL},
    {"runbooks/cutover.md §4", {"stage", "etcd", "--reason", "etcd primary"}, 3,
     "go/no-go", 0, NULL},
    {"runbooks/cutover.md (going back)", {"stage", "git"}, 0, NULL, 0, NULL},
    {"README.md; runbooks/cutover.md; runbooks/divergence.md", {"report"}, 4,
     "no reconciliation run", 0, NULL},
    {"runbooks/rollback.md", {"report", "--format", "html", "-o", "@OUT@/r.html"}, 4,
     "no reconciliation run", 0, NULL},
    {"runbooks/divergence.md", {"--json", "report", "--run", "1"}, 4,
     "no reconciliation run 1", 0, NULL},
    {"runbooks/divergence.md",
     {"report", "--run", "1", "--format", "html", "-o", "@OUT@/run-1.html"}, 4,
     "no reconciliation run 1", 0, NULL},
    {"runbooks/divergence.md", {"--backend", "etcd", "task", "get", "P0.1"}, 4,
     "not found", 0, NULL},
    {"runbooks/divergence.md", {"--backend", "git", "task", "release", "P0.1",
				"--swarm", "swarm-a", "--status", "available"}, 4,
     "not found", 0, NULL},
    {"README.md; runbooks/serve.md", {"serve", "--listen", "127.0.0.1:0"}, 0, NULL,
     ON_STDERR,
     "serving on"},
};
/* clang-format on */

#define N_DOC_CMDS (sizeof(doc_cmds) / sizeof(doc_cmds[0]))

/* ---- helpers ---- */

/* fx_setenv(f, slot, "NAME=value"), refusing a value too long for it. */
static void set_env(fx *f, int slot, char *kv, size_t len, const char *name,
		    const char *value)
{
	if (snprintf(kv, len, "%s=%s", name, value) >= (int)len)
		fail_msg("%s too long: %s", name, value);
	fx_setenv(f, slot, kv);
}

/* An fx whose state dir is <tmp>/fresh/.cutover: neither exists yet. */
static void use_fresh_state(fx *f, char *state, size_t len)
{
	char kv[320];

	snprintf(state, len, "%s/fresh/.cutover", f->state);
	set_env(f, 0, kv, sizeof(kv), "CUTOVER_STATE_DIR", state);
}

static mode_t mode_of(const char *path)
{
	struct stat sb;

	if (lstat(path, &sb) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	return sb.st_mode & 07777;
}

/* nftw has no user pointer: the first offence found by check_private. */
static char bad_mode[600];

static int check_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (bad_mode[0])
		return 0;
	if (flag == FTW_D && (sb->st_mode & 07777) != CO_STATE_DIR_MODE)
		snprintf(bad_mode, sizeof(bad_mode), "dir %s is %04o", path,
			 (unsigned)(sb->st_mode & 07777));
	else if (flag == FTW_F && (sb->st_mode & 07777) != CO_STATE_FILE_MODE)
		snprintf(bad_mode, sizeof(bad_mode), "file %s is %04o", path,
			 (unsigned)(sb->st_mode & 07777));
	return 0;
}

/* Everything under `dir` (itself included) is 0700 / 0600. */
static void check_private(const char *dir, const char *what)
{
	bad_mode[0] = '\0';
	assert_int_equal(nftw(dir, check_one, 16, FTW_PHYS), 0);
	if (bad_mode[0])
		fail_msg("after `%s`: %s", what, bad_mode);
}

/* args with the placeholders expanded into bufs; argv NULL-terminated. */
static void expand(const char **argv, char bufs[][512], const doc_cmd *c, const char *out,
		   const char *swarms)
{
	size_t i;

	for (i = 0; c->args[i]; i++) {
		const char *a = c->args[i], *at = strchr(a, '@');

		if (at == NULL) {
			argv[i] = a;
			continue;
		}
		if (strncmp(at, "@OUT@", 5) == 0)
			snprintf(bufs[i], 512, "%.*s%s%s", (int)(at - a), a, out, at + 5);
		else if (strncmp(at, "@SWARMS@", 8) == 0)
			snprintf(bufs[i], 512, "%s", swarms);
		else if (strncmp(at, "@BOARD@", 7) == 0)
			snprintf(bufs[i], 512, "%s/tests/migrate/boards/seeds.md",
				 CUTOVER_SOURCE_DIR);
		else
			snprintf(bufs[i], 512, "%s", a);
		argv[i] = bufs[i];
	}
	argv[i] = NULL;
}

/* A child's output, gathered while it runs. */
typedef struct gathered {
	char buf[2][65536];
	size_t len[2];
} gathered;

/* Read what fds[0..1] have; 0 when both hit EOF. */
static int gather(gathered *g, int fds[2], int wait_ms)
{
	struct pollfd p[2];
	int i, open_ = 0;

	for (i = 0; i < 2; i++) {
		p[i].fd = fds[i];
		p[i].events = POLLIN;
		p[i].revents = 0;
		open_ += fds[i] >= 0;
	}
	if (open_ == 0)
		return 0;
	if (poll(p, 2, wait_ms) <= 0)
		return 1;
	for (i = 0; i < 2; i++) {
		ssize_t r;

		if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = read(fds[i], g->buf[i] + g->len[i],
			 sizeof(g->buf[i]) - 1 - g->len[i]);
		if (r <= 0) {
			close(fds[i]);
			fds[i] = -1;
			continue;
		}
		g->len[i] += (size_t)r;
		g->buf[i][g->len[i]] = '\0';
	}
	return 1;
}

/*
 * Start a long-running command, wait until stream `on` (1 stdout, 2 stderr)
 * says `ready` (or it exits: then its status is returned and it failed to
 * stay up), call `while_up` if not NULL, stop it with SIGTERM and return its
 * exit status.  g holds what it printed.  The 60 s bound is a safety net for
 * a hung child, not a timing assertion.
 */
static int run_until_ready(gathered *g, fx *f, const char *const *args, int on,
			   const char *ready, void (*while_up)(void *), void *arg)
{
	const char *argv[16];
	char **envp = fx_make_envp(f->env);
	int out[2], err[2], fds[2], status, up = 0, waited = 0;
	size_t i;
	pid_t pid;

	argv[0] = CUTOVER_BIN;
	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	memset(g, 0, sizeof(*g));
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(err), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(out[0]);
		close(err[0]);
		close(out[1]);
		close(err[1]);
		execve(CUTOVER_BIN, (char *const *)argv, envp);
		_exit(127);
	}
	free(envp);
	close(out[1]);
	close(err[1]);
	fds[0] = out[0];
	fds[1] = err[0];
	while (!up && waited < 60000) {
		if (!gather(g, fds, 100))
			break; /* both closed: it exited */
		up = strstr(g->buf[on - 1], ready) != NULL;
		waited += 100; /* an upper bound only: gather returns on output */
	}
	if (up && while_up)
		while_up(arg);
	kill(pid, up ? SIGTERM : SIGKILL);
	while (gather(g, fds, 1000))
		;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!up)
		fail_msg("`%s ...` never said \"%s\"; stdout: %s stderr: %s", args[0],
			 ready, g->buf[0], g->buf[1]);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- every documented command on a fresh state dir ---- */

static void every_documented_command_works_on_a_fresh_state_dir(void **state)
{
	fx *f = *state;
	mode_t old = umask(000); /* the harshest: nothing may rely on the umask */
	size_t i;

	for (i = 0; i < N_DOC_CMDS; i++) {
		const doc_cmd *c = &doc_cmds[i];
		char st[400], outdir[400], swarms[400], bufs[12][512], what[600];
		const char *argv[13];
		char *out = NULL, *err = NULL;
		gathered *g = NULL;
		fx *g_fx = NULL;
		size_t k;
		int rc;

		/* A fresh repo, etcd prefix and not-yet-existing state dir each. */
		assert_int_equal(fx_setup(&g_fx, fx_etcd.endpoint), 0);
		use_fresh_state(g_fx, st, sizeof(st));
		snprintf(outdir, sizeof(outdir), "%s/out", g_fx->state);
		snprintf(swarms, sizeof(swarms), "%s/swarms", g_fx->state);
		assert_int_equal(mkdir(outdir, 0755), 0);
		assert_int_equal(mkdir(swarms, 0755), 0);
		expand(argv, bufs, c, outdir, swarms);
		what[0] = '\0';
		for (k = 0; argv[k]; k++)
			snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s",
				 k ? " " : "", argv[k]);

		if (c->ready_on) {
			assert_non_null(g = calloc(1, sizeof(*g)));
			rc = run_until_ready(g, g_fx, argv, c->ready_on, c->ready, NULL,
					     NULL);
			out = strdup(g->buf[0]);
			err = strdup(g->buf[1]);
			free(g);
		} else {
			rc = fx_run_a(g_fx, &out, &err, argv);
		}
		if (rc == 2 || strstr(err, "No such file") != NULL)
			fail_msg("`cutover %s` (%s) on a fresh state dir: exit %d: %s",
				 what, c->doc, rc, err);
		if (rc != c->want)
			fail_msg("`cutover %s` (%s): exit %d, wanted %d; stdout: %s "
				 "stderr: %s",
				 what, c->doc, rc, c->want, out, err);
		if (c->says && strstr(err, c->says) == NULL)
			fail_msg("`cutover %s` (%s): exit %d without \"%s\": %s", what,
				 c->doc, rc, c->says, err);
		if (strstr(err, "warning: state dir") != NULL)
			fail_msg("`cutover %s`: warned about the dir it created: %s",
				 what, err);
		/* It made the state dir (every command that reads the
		 * configuration does), and all in it is private. */
		if (mode_of(st) != CO_STATE_DIR_MODE)
			fail_msg("`cutover %s`: state dir is %04o", what,
				 (unsigned)mode_of(st));
		check_private(st, what);
		assert_int_equal(mode_of(g_fx->state), 0700); /* mkdtemp's own */
		free(out);
		free(err);
		fx_teardown(g_fx);
	}
	umask(old);
	(void)f;
}

/* The forward path of runbooks/cutover.md from nothing: all exit 0. */
static void runbook_first_steps_in_order_on_a_fresh_host(void **state)
{
	fx *f = *state;
	char st[400];

	use_fresh_state(f, st, sizeof(st));
	fx_expect(0, f, "status");
	fx_expect(0, f, "migrate", "--dry-run");
	fx_expect(0, f, "migrate");
	fx_expect(0, f, "reconcile");
	fx_expect(0, f, "stage", "shadow", "--reason", "start shadow");
	fx_expect(0, f, "reconcile");
	fx_expect(0, f, "stage", "10", "--reason", "canary 10%");
	fx_expect(0, f, "flags", "explain", "task_claim", "P0.1.2");
	fx_expect(0, f, "rollback", "--reason", "drill");
	fx_expect(0, f, "resume", "--reason", "drill over");
	fx_expect(0, f, "report");
	check_private(st, "the runbook's first steps");
}

/* ---- modes ---- */

typedef struct mode_check {
	const char *state;
	const char *flags_dir; /* NULL: the flags file is in the state dir */
} mode_check;

/* While `watch` holds the database open: every file's mode. */
static void modes_while_up(void *arg)
{
	const mode_check *m = arg;
	static const char *const db_files[] = {CO_STATE_DB_NAME, CO_STATE_DB_NAME "-wal",
					       CO_STATE_DB_NAME "-shm"};
	const char *fd = m->flags_dir ? m->flags_dir : m->state;
	char path[600];
	size_t i;

	assert_int_equal(mode_of(m->state), 0700);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", m->state, db_files[i]);
		if (mode_of(path) != 0600)
			fail_msg("%s is %04o", path, (unsigned)mode_of(path));
	}
	snprintf(path, sizeof(path), "%s/flags.yaml", fd);
	assert_int_equal(mode_of(path), 0600);
	snprintf(path, sizeof(path), "%s/flags.yaml" CO_FLAGS_LOCK_SUFFIX, fd);
	assert_int_equal(mode_of(path), 0600);
	if (m->flags_dir)
		assert_int_equal(mode_of(m->flags_dir), 0700);
}

static void check_modes_under(fx *f, mode_t mask)
{
	mode_check m = {NULL, NULL};
	char st[400], report[500], *err = NULL;
	gathered *g;
	mode_t old = umask(mask);
	int rc;

	use_fresh_state(f, st, sizeof(st));
	m.state = st;
	/* The first command creates the dir, the database, the flags file
	 * and its lock. */
	fx_expect(0, f, "stage", "shadow", "--force");
	fx_expect(0, f, "reconcile");
	snprintf(report, sizeof(report), "%s/report.html", st);
	fx_expect(0, f, "report", "--format", "html", "-o", report);
	assert_int_equal(mode_of(report), 0600);
	/* A -wal and -shm exist while a connection is open: a running router's. */
	assert_non_null(g = calloc(1, sizeof(*g)));
	rc = run_until_ready(g, f, (const char *[]){"watch", NULL}, ON_STDERR, "watching",
			     modes_while_up, &m);
	if (rc != 0)
		fail_msg("watch: exit %d: %s", rc, g->buf[1]);
	free(g);
	check_private(st, "stage, reconcile, report, watch");
	assert_int_equal(fx_run(f, NULL, &err, "status"), 0);
	assert_null(strstr(err, "warning"));
	free(err);
	umask(old);
}

static void state_files_are_private_under_umask_022(void **state)
{
	check_modes_under(*state, 022);
}

static void state_files_are_private_under_umask_000(void **state)
{
	check_modes_under(*state, 000);
}

/* CUTOVER_FLAGS in a dir that does not exist yet: created 0700 as well. */
static void flags_file_elsewhere_gets_its_dir_made_private(void **state)
{
	fx *f = *state;
	mode_check m = {NULL, NULL};
	char st[400], fdir[280], fl[300], kv[320];
	gathered *g;
	mode_t old = umask(000);

	use_fresh_state(f, st, sizeof(st));
	snprintf(fdir, sizeof(fdir), "%s/etc/cutover", f->state);
	snprintf(fl, sizeof(fl), "%s/flags.yaml", fdir);
	set_env(f, 1, kv, sizeof(kv), "CUTOVER_FLAGS", fl);
	m.state = st;
	m.flags_dir = fdir;
	fx_expect(0, f, "rollback", "--reason", "first command of all");
	assert_non_null(g = calloc(1, sizeof(*g)));
	assert_int_equal(run_until_ready(g, f, (const char *[]){"watch", NULL}, ON_STDERR,
					 "watching", modes_while_up, &m),
			 0);
	free(g);
	umask(old);
}

/* An operator's dir (or systemd's StateDirectory=) open to others: a
 * warning on every command, and the mode is theirs to change. */
static void existing_0755_state_dir_is_warned_about_and_left_alone(void **state)
{
	fx *f = *state;
	char st[400], *err = NULL, want[500], db[500];
	mode_t old = umask(022);

	use_fresh_state(f, st, sizeof(st));
	assert_int_equal(
	    co_test_sh(NULL, NULL, "mkdir -p '%s' && chmod 755 '%s'", st, st), 0);
	assert_int_equal(fx_run(f, NULL, &err, "stage", "shadow", "--force"), 0);
	snprintf(want, sizeof(want),
		 "cutover: warning: state dir %s is mode 0755; readable by other users; "
		 "chmod 700 it\n",
		 st);
	fx_contains(err, want);
	free(err);
	assert_int_equal(fx_run(f, NULL, &err, "flags", "show"), 0);
	fx_contains(err, want);
	free(err);
	assert_int_equal(mode_of(st), 0755);
	/* What cutover creates inside is private all the same. */
	snprintf(db, sizeof(db), "%s/" CO_STATE_DB_NAME, st);
	assert_int_equal(mode_of(db), 0600);
	snprintf(db, sizeof(db), "%s/flags.yaml", st);
	assert_int_equal(mode_of(db), 0600);
	umask(old);
}

/* Files of ours left loose (by hand, an older build): tightened at start. */
static void loose_files_of_ours_are_tightened(void **state)
{
	fx *f = *state;
	char st[400], p[500];

	use_fresh_state(f, st, sizeof(st));
	fx_expect(0, f, "stage", "shadow", "--force");
	assert_int_equal(co_test_sh(NULL, NULL, "chmod 644 '%s'/*", st), 0);
	fx_expect(0, f, "flags", "show");
	snprintf(p, sizeof(p), "%s/" CO_STATE_DB_NAME, st);
	assert_int_equal(mode_of(p), 0600);
	snprintf(p, sizeof(p), "%s/flags.yaml", st);
	assert_int_equal(mode_of(p), 0600);
	snprintf(p, sizeof(p), "%s/flags.yaml" CO_FLAGS_LOCK_SUFFIX, st);
	assert_int_equal(mode_of(p), 0600);
}

/* ---- paths that cannot be a state dir: exit 1 naming them ---- */

static const char *const *const bad_path_cmds[] = {
    (const char *[]){"stage", "shadow", NULL},
    (const char *[]){"flags", "set", "task_claim", "shadow", "--force", NULL},
    (const char *[]){"rollback", NULL},
    (const char *[]){"resume", NULL},
    (const char *[]){"status", NULL},
    (const char *[]){"flags", "show", NULL},
    (const char *[]){"report", NULL},
    (const char *[]){"task", "list", NULL},
};

static void expect_bad_path(fx *f, const char *path, const char *reason)
{
	size_t i;

	for (i = 0; i < sizeof(bad_path_cmds) / sizeof(bad_path_cmds[0]); i++) {
		char *err = NULL;
		int rc = fx_run_a(f, NULL, &err, bad_path_cmds[i]);

		if (rc != 1 || strstr(err, path) == NULL || strstr(err, reason) == NULL)
			fail_msg("`%s %s`: exit %d, wanted 1 naming %s (%s): %s",
				 bad_path_cmds[i][0],
				 bad_path_cmds[i][1] ? bad_path_cmds[i][1] : "", rc, path,
				 reason, err);
		free(err);
	}
}

static void state_dir_that_is_a_file_is_exit_1_naming_it(void **state)
{
	fx *f = *state;
	char file[280], under[300], kv[320];

	snprintf(file, sizeof(file), "%s/not-a-dir", f->state);
	assert_int_equal(co_test_sh(NULL, NULL, "echo x > '%s'", file), 0);
	set_env(f, 0, kv, sizeof(kv), "CUTOVER_STATE_DIR", file);
	expect_bad_path(f, file, "not a directory");

	snprintf(under, sizeof(under), "%s/.cutover", file);
	set_env(f, 0, kv, sizeof(kv), "CUTOVER_STATE_DIR", under);
	expect_bad_path(f, under, "Not a directory");
}

static void state_dir_without_write_permission_is_exit_1_naming_it(void **state)
{
	fx *f = *state;
	char ro[280], inside[300], kv[320];

	if (geteuid() == 0) {
		fprintf(stderr, "[  SKIPPED ] running as root: permission bits do not "
				"bind root, so a read-only state dir proves nothing\n");
		skip();
		return;
	}
	snprintf(ro, sizeof(ro), "%s/ro", f->state);
	assert_int_equal(mkdir(ro, 0500), 0);
	set_env(f, 0, kv, sizeof(kv), "CUTOVER_STATE_DIR", ro);
	expect_bad_path(f, ro, "Permission denied");
	/* One to be created inside a dir we may not write. */
	snprintf(inside, sizeof(inside), "%s/.cutover", ro);
	set_env(f, 0, kv, sizeof(kv), "CUTOVER_STATE_DIR", inside);
	expect_bad_path(f, inside, "Permission denied");
	chmod(ro, 0700);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		every_documented_command_works_on_a_fresh_state_dir, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(runbook_first_steps_in_order_on_a_fresh_host,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(state_files_are_private_under_umask_022,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(state_files_are_private_under_umask_000,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		flags_file_elsewhere_gets_its_dir_made_private, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		existing_0755_state_dir_is_warned_about_and_left_alone, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(loose_files_of_ours_are_tightened,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(state_dir_that_is_a_file_is_exit_1_naming_it,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		state_dir_without_write_permission_is_exit_1_naming_it, fx_test_setup,
		fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
