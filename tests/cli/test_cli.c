/*
 * test_cli.c - the `cutover` binary end to end, on each store: a real bare
 * git repository per test and one real etcd for the suite (a fresh key
 * prefix per test), configured through CUTOVER_* variables only.
 *
 * Every data test runs twice, once per backend (--backend git, --backend
 * etcd): exit codes and canonical JSON output must not depend on the store.
 * The race test forks sixteen processes that block on a pipe before exec
 * and are released together by closing it.  The watch test runs `cutover
 * watch` with pipes and stops it with SIGINT.  The etcd-down test starts
 * its own etcd, so that killing it does not disturb the others.
 */
#include "cli_fixture.h"

#include "core/error.h"
#include "core/record.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_RACERS 16
#define MAX_ARGS 32

static int prefix_counter;

typedef struct cli_fx {
	const char *backend;
	char repo[256];
	char state[256];
	char e_repo[300], e_state[300], e_etcd[128], e_prefix[64];
	const char *env[8];
} cli_fx;

static const char *const git_backend = "git";
static const char *const etcd_backend = "etcd";

/* ---- fixtures ---- */

/* Fill f->env from f's fields and an etcd endpoint. */
static void fill_env(cli_fx *f, const char *endpoint)
{
	snprintf(f->e_repo, sizeof(f->e_repo), "CUTOVER_GIT_REPO=%s", f->repo);
	snprintf(f->e_state, sizeof(f->e_state), "CUTOVER_STATE_DIR=%s", f->state);
	snprintf(f->e_etcd, sizeof(f->e_etcd), "CUTOVER_ETCD_ENDPOINTS=%s", endpoint);
	snprintf(f->e_prefix, sizeof(f->e_prefix), "CUTOVER_ETCD_PREFIX=/cli-%d-%d/",
		 (int)getpid(), ++prefix_counter);
	f->env[0] = f->e_repo;
	f->env[1] = f->e_state;
	f->env[2] = f->e_etcd;
	f->env[3] = f->e_prefix;
	f->env[4] = "CUTOVER_CONFIG"; /* unset: the caller's file must not leak in */
	f->env[5] = "CUTOVER_GIT_POLL_INTERVAL=100ms";
	f->env[6] = NULL;
}

static int setup(void **state)
{
	cli_fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->backend = *state ? (const char *)*state : git_backend;
	if (co_test_git_repo_new(f->repo, sizeof(f->repo)) < 0 ||
	    co_test_tmpdir(f->state, sizeof(f->state)) < 0) {
		co_test_rmrf(f->repo);
		free(f);
		return -1;
	}
	fill_env(f, fx_etcd.endpoint);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	cli_fx *f = *state;

	co_test_rmrf(f->repo);
	co_test_rmrf(f->state);
	free(f);
	return 0;
}

/*
 * Run `cutover --backend B ARGS...` (args NULL-terminated); stdout and
 * stderr into *out / *err (may be NULL).  Returns the exit status.
 */
static int cut_a(cli_fx *f, char **out, char **err, const char *const *args)
{
	const char *argv[MAX_ARGS];
	size_t n = 0;

	argv[n++] = "--backend";
	argv[n++] = f->backend;
	while (*args && n < MAX_ARGS - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	return fx_run_env(f->env, out, err, argv);
}

#define cut(f, out, err, ...)                                                            \
	cut_a((f), (out), (err), (const char *[]){__VA_ARGS__, NULL})

/* Expect exit `want`; on a mismatch show what the command said. */
#define expect_exit(want, f, ...)                                                        \
	do {                                                                             \
		char *eo_, *ee_;                                                         \
		int rc_ = cut((f), &eo_, &ee_, __VA_ARGS__);                             \
		if (rc_ != (want))                                                       \
			fail_msg("exit %d, wanted %d; stdout: %s stderr: %s", rc_,       \
				 (want), eo_, ee_);                                      \
		free(eo_);                                                               \
		free(ee_);                                                               \
	} while (0)

/*
 * Parse one line of --json output as a record and check that it is printed
 * in canonical form.  The caller frees the record.
 */
static co_record *record_of(const char *out)
{
	co_record *r = NULL;
	size_t len = strlen(out);
	char *again;

	if (len > 0 && out[len - 1] == '\n')
		len--;
	if (co_record_from_json(&r, out, len) < 0)
		fail_msg("not a record: %s (%s)", out, co_error_last());
	again = co_record_to_json(r, 0);
	assert_non_null(again);
	assert_int_equal(strlen(again), len);
	assert_memory_equal(again, out, len);
	free(again);
	return r;
}

/* Run with --json and parse the single record printed; asserts exit 0. */
static co_record *json_record_a(cli_fx *f, const char *const *args)
{
	const char *argv[MAX_ARGS];
	char *out = NULL, *err = NULL;
	co_record *r;
	size_t n = 0;
	int rc;

	argv[n++] = "--json";
	while (*args && n < MAX_ARGS - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	rc = cut_a(f, &out, &err, argv);
	if (rc != 0)
		fail_msg("%s %s %s: exit %d: %s", argv[1], argv[2],
			 argv[3] ? argv[3] : "", rc, err);
	r = record_of(out);
	free(out);
	free(err);
	return r;
}

#define json_record(f, ...) json_record_a((f), (const char *[]){__VA_ARGS__, NULL})

/* A JSON array printed by a list command. */
static cJSON *json_list(cli_fx *f, const char *kind, const char *opt, const char *val)
{
	char *out = NULL, *err = NULL;
	cJSON *a;
	int rc = cut(f, &out, &err, "--json", kind, "list", opt, val);

	if (rc != 0)
		fail_msg("%s list: exit %d: %s", kind, rc, err);
	a = cJSON_Parse(out);
	if (a == NULL || !cJSON_IsArray(a))
		fail_msg("%s list: not a JSON array: %s", kind, out);
	free(out);
	free(err);
	return a;
}

static const char *array_id(const cJSON *a, int i)
{
	const cJSON *id =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(a, i), "id");

	return cJSON_IsString(id) ? id->valuestring : "";
}

/* ---- data commands, on each backend ---- */

static void task_commands_give_exit_codes_and_canonical_json(void **state)
{
	cli_fx *f = *state;
	co_record *r;
	cJSON *a;
	char *out, *err;

	r = json_record(f, "task", "create", "P0.1.2", "--type", "build");
	assert_int_equal(r->kind, CO_KIND_TASK);
	assert_string_equal(r->id, "P0.1.2");
	assert_int_equal(r->rev, 1);
	assert_int_equal(r->status, CO_STATUS_AVAILABLE);
	assert_string_equal(r->type, "build");
	co_record_free(r);

	/* Options in any order, --meta canonicalized (keys sorted). */
	r = json_record(f, "task", "create", "--meta", "{\"b\": 2, \"a\": [1]}", "P0.2");
	assert_string_equal(r->metadata, "{\"a\":[1],\"b\":2}");
	co_record_free(r);
	r = json_record(f, "task", "create", "P0.3", "--blocked-by", "P0.1.2,P0.2");
	assert_int_equal(r->status, CO_STATUS_BLOCKED);
	assert_int_equal(r->blocked_by.n, 2);
	co_record_free(r);

	r = json_record(f, "task", "get", "P0.1.2");
	assert_int_equal(r->rev, 1);
	co_record_free(r);

	a = json_list(f, "task", NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(a), 3);
	assert_string_equal(array_id(a, 0), "P0.1.2");
	assert_string_equal(array_id(a, 2), "P0.3");
	cJSON_Delete(a);

	/* Options after the positional argument. */
	r = json_record(f, "task", "claim", "P0.1.2", "--swarm", "swarm-a", "--ttl",
			"600");
	assert_int_equal(r->status, CO_STATUS_CLAIMED);
	assert_string_equal(r->owner, "swarm-a");
	assert_int_equal(r->rev, 2);
	assert_true(r->claim_expires_at > 0);
	co_record_free(r);

	a = json_list(f, "task", "--status", "claimed");
	assert_int_equal(cJSON_GetArraySize(a), 1);
	assert_string_equal(array_id(a, 0), "P0.1.2");
	cJSON_Delete(a);
	a = json_list(f, "task", "--status", "blocked");
	assert_int_equal(cJSON_GetArraySize(a), 1);
	assert_string_equal(array_id(a, 0), "P0.3");
	cJSON_Delete(a);

	r = json_record(f, "task", "renew", "P0.1.2", "--swarm", "swarm-a", "--ttl",
			"1200");
	assert_int_equal(r->rev, 3);
	assert_string_equal(r->owner, "swarm-a");
	co_record_free(r);

	r = json_record(f, "task", "release", "P0.1.2", "--swarm", "swarm-a", "--status",
			"complete");
	assert_int_equal(r->status, CO_STATUS_COMPLETE);
	assert_null(r->owner);
	assert_int_equal(r->claim_expires_at, 0);
	assert_int_equal(r->rev, 4);
	co_record_free(r);

	/* A complete task cannot be claimed: conflict. */
	expect_exit(3, f, "task", "claim", "P0.1.2", "--swarm", "swarm-b");

	/* Text output: one line that says status, owner and rev. */
	expect_exit(0, f, "task", "claim", "P0.2", "--swarm", "swarm-b");
	assert_int_equal(cut(f, &out, &err, "task", "get", "P0.2"), 0);
	assert_non_null(strstr(out, "P0.2  claimed  owner=swarm-b  rev=2"));
	free(out);
	free(err);

	/* Renew by a swarm that does not hold it: conflict. */
	expect_exit(3, f, "task", "renew", "P0.2", "--swarm", "swarm-a", "--ttl", "5");
	/* Release to available by the owner. */
	r = json_record(f, "task", "release", "P0.2", "--swarm", "swarm-b");
	assert_int_equal(r->status, CO_STATUS_AVAILABLE);
	co_record_free(r);
}

static void swarm_commands_give_exit_codes_and_canonical_json(void **state)
{
	cli_fx *f = *state;
	co_record *r;
	cJSON *a;
	char *out, *err;

	r = json_record(f, "swarm", "register", "swarm-sip", "--cap",
			"integration:sip,build", "--meta", "{\"model\":\"sonnet\"}");
	assert_int_equal(r->kind, CO_KIND_SWARM);
	assert_int_equal(r->rev, 1);
	assert_int_equal(r->capabilities.n, 2);
	assert_string_equal(r->metadata, "{\"model\":\"sonnet\"}");
	co_record_free(r);

	/* The same registration again changes nothing; a different one bumps rev. */
	r = json_record(f, "swarm", "register", "swarm-sip", "--cap",
			"integration:sip,build", "--meta", "{\"model\":\"sonnet\"}");
	assert_int_equal(r->rev, 1);
	co_record_free(r);
	r = json_record(f, "swarm", "register", "swarm-sip", "--cap", "build");
	assert_int_equal(r->rev, 2);
	assert_int_equal(r->capabilities.n, 1);
	co_record_free(r);
	expect_exit(0, f, "swarm", "register", "swarm-b");

	r = json_record(f, "swarm", "get", "swarm-sip");
	assert_int_equal(r->rev, 2);
	co_record_free(r);

	a = json_list(f, "swarm", NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(a), 2);
	assert_string_equal(array_id(a, 0), "swarm-b");
	assert_string_equal(array_id(a, 1), "swarm-sip");
	cJSON_Delete(a);

	assert_int_equal(cut(f, &out, &err, "swarm", "list"), 0);
	assert_non_null(strstr(out, "swarm-sip  rev=2  caps=build"));
	free(out);
	free(err);

	expect_exit(0, f, "swarm", "remove", "swarm-sip");
	expect_exit(4, f, "swarm", "get", "swarm-sip");
	expect_exit(4, f, "swarm", "remove", "swarm-sip");
	a = json_list(f, "swarm", NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(a), 1);
	cJSON_Delete(a);
}

static char *read_fd(int fd)
{
	char *buf = calloc(1, 8192);
	ssize_t r;
	size_t len = 0;

	assert_non_null(buf);
	lseek(fd, 0, SEEK_SET);
	while (len < 8191 && (r = read(fd, buf + len, 8191 - len)) > 0)
		len += (size_t)r;
	return buf;
}

static void sixteen_processes_claiming_one_task_have_one_winner(void **state)
{
	cli_fx *f = *state;
	char swarms[N_RACERS][32];
	char *argv[N_RACERS][10];
	int errfd[N_RACERS], status[N_RACERS], gate[2], winners = 0, losers = 0, i;
	pid_t pid[N_RACERS];
	char **envp;
	int winner = -1;

	expect_exit(0, f, "task", "create", "RACE");
	envp = fx_make_envp(f->env);
	/* Everything the children need is built before the first fork. */
	for (i = 0; i < N_RACERS; i++) {
		char tmpl[] = "/tmp/cutover-test-race-XXXXXX";

		snprintf(swarms[i], sizeof(swarms[i]), "swarm-%02d", i);
		argv[i][0] = (char *)CUTOVER_BIN;
		argv[i][1] = "--backend";
		argv[i][2] = (char *)f->backend;
		argv[i][3] = "task";
		argv[i][4] = "claim";
		argv[i][5] = "RACE";
		argv[i][6] = "--swarm";
		argv[i][7] = swarms[i];
		argv[i][8] = NULL;
		errfd[i] = mkstemp(tmpl);
		assert_true(errfd[i] >= 0);
		unlink(tmpl);
	}
	assert_int_equal(pipe(gate), 0);
	fflush(stdout);
	fflush(stderr);
	for (i = 0; i < N_RACERS; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			char c;
			int devnull = open("/dev/null", O_RDWR);

			close(gate[1]);
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(errfd[i], 2);
			/* Block until the parent closes the gate: all start at once. */
			while (read(gate[0], &c, 1) < 0 && errno == EINTR)
				;
			execve(CUTOVER_BIN, argv[i], envp);
			_exit(127);
		}
	}
	close(gate[0]);
	close(gate[1]);
	for (i = 0; i < N_RACERS; i++) {
		while (waitpid(pid[i], &status[i], 0) < 0)
			assert_int_equal(errno, EINTR);
		assert_true(WIFEXITED(status[i]));
		if (WEXITSTATUS(status[i]) == 0) {
			winners++;
			winner = i;
		} else if (WEXITSTATUS(status[i]) == 3) {
			losers++;
		} else {
			char *e = read_fd(errfd[i]);

			fail_msg("racer %d exited %d: %s", i, WEXITSTATUS(status[i]), e);
		}
	}
	assert_int_equal(winners, 1);
	assert_int_equal(losers, N_RACERS - 1);
	/* Every loser was told who won. */
	for (i = 0; i < N_RACERS; i++) {
		char want[96], *e;

		if (i == winner) {
			close(errfd[i]);
			continue;
		}
		e = read_fd(errfd[i]);
		snprintf(want, sizeof(want), "claim RACE: lost: claimed by %s",
			 swarms[winner]);
		if (strstr(e, want) == NULL)
			fail_msg("racer %d: stderr \"%s\" lacks \"%s\"", i, e, want);
		free(e);
		close(errfd[i]);
	}
	free(envp);
	{
		co_record *r = json_record(f, "task", "get", "RACE");

		assert_string_equal(r->owner, swarms[winner]);
		assert_int_equal(r->rev, 2);
		co_record_free(r);
	}
}

static void non_owner_release_is_conflict_with_current_record(void **state)
{
	cli_fx *f = *state;
	char *out, *err;
	co_record *r;

	expect_exit(0, f, "task", "create", "T1");
	expect_exit(0, f, "task", "claim", "T1", "--swarm", "swarm-a");
	assert_int_equal(
	    cut(f, &out, &err, "--json", "task", "release", "T1", "--swarm", "swarm-b"),
	    3);
	assert_non_null(
	    strstr(err, "cutover: release T1: not owner: claimed by swarm-a"));
	r = record_of(out);
	assert_string_equal(r->owner, "swarm-a");
	co_record_free(r);
	free(out);
	free(err);

	/* A lost claim: stderr names the owner, --json prints the record. */
	assert_int_equal(
	    cut(f, &out, &err, "--json", "task", "claim", "T1", "--swarm", "swarm-b"), 3);
	assert_non_null(strstr(err, "cutover: claim T1: lost: claimed by swarm-a"));
	r = record_of(out);
	assert_string_equal(r->owner, "swarm-a");
	assert_int_equal(r->rev, 2);
	co_record_free(r);
	free(out);
	free(err);

	/* Releasing an unclaimed task is a conflict too. */
	expect_exit(0, f, "task", "release", "T1", "--swarm", "swarm-a");
	expect_exit(3, f, "task", "release", "T1", "--swarm", "swarm-a");
}

static void missing_records_are_exit_4(void **state)
{
	cli_fx *f = *state;
	char *err;

	assert_int_equal(cut(f, NULL, &err, "task", "get", "NOPE"), 4);
	assert_non_null(strstr(err, "NOPE"));
	free(err);
	expect_exit(4, f, "task", "claim", "NOPE", "--swarm", "swarm-a");
	expect_exit(4, f, "task", "release", "NOPE", "--swarm", "swarm-a");
	expect_exit(4, f, "task", "renew", "NOPE", "--swarm", "swarm-a", "--ttl", "5");
	expect_exit(4, f, "swarm", "get", "NOPE");
	expect_exit(4, f, "swarm", "remove", "NOPE");
}

static void identical_recreate_succeeds_and_different_conflicts(void **state)
{
	cli_fx *f = *state;
	co_record *r;
	char *err;

	expect_exit(0, f, "task", "create", "T2", "--type", "build", "--meta",
		    "{\"x\":1}");
	r = json_record(f, "task", "create", "T2", "--type", "build", "--meta",
			"{ \"x\" : 1 }");
	assert_int_equal(r->rev, 1);
	co_record_free(r);
	assert_int_equal(cut(f, NULL, &err, "task", "create", "T2", "--type", "test",
			     (const char *)NULL),
			 3);
	assert_non_null(strstr(err, "cutover: "));
	assert_non_null(strstr(err, "T2"));
	free(err);
	expect_exit(3, f, "task", "create", "T2", "--type", "build", "--meta",
		    "{\"x\":2}");
	expect_exit(3, f, "task", "create", "T2", "--type", "build", "--meta",
		    "{\"x\":1}", "--blocked-by", "T1");
	r = json_record(f, "task", "get", "T2");
	assert_int_equal(r->rev, 1);
	assert_string_equal(r->type, "build");
	co_record_free(r);
}

static void bad_input_is_exit_1_and_writes_nothing(void **state)
{
	cli_fx *f = *state;
	char long_id[130];
	const char *bad[] = {"../x", "a/b", "", long_id, ".hidden", "a b", "-x"};
	size_t i;
	cJSON *a;

	memset(long_id, 'a', 129);
	long_id[129] = '\0';
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err;

		/* "--" so that "-x" is an ID, not an option. */
		assert_int_equal(cut(f, NULL, &err, "task", "create", "--", bad[i],
				     (const char *)NULL),
				 1);
		if (strstr(err, "invalid id") == NULL)
			fail_msg("create \"%s\": stderr \"%s\" gives no reason", bad[i],
				 err);
		free(err);
		expect_exit(1, f, "task", "get", "--", bad[i]);
		expect_exit(1, f, "swarm", "register", "--", bad[i]);
		expect_exit(1, f, "task", "claim", "--swarm", "swarm-a", "--", bad[i]);
	}
	expect_exit(1, f, "task", "create", "OK1", "--blocked-by", "A,../b");
	expect_exit(1, f, "task", "create", "OK1", "--meta", "{not json");
	expect_exit(1, f, "task", "create", "OK1", "--meta", "[1,2]");
	expect_exit(1, f, "swarm", "register", "OK1", "--meta", "\"str\"");
	expect_exit(1, f, "task", "claim", "OK1", "--swarm", "../s");
	expect_exit(1, f, "task", "claim", "OK1");
	expect_exit(1, f, "task", "claim", "OK1", "--swarm", "s", "--ttl", "0");
	expect_exit(1, f, "task", "claim", "OK1", "--swarm", "s", "--ttl", "-5");
	expect_exit(1, f, "task", "claim", "OK1", "--swarm", "s", "--ttl", "ten");
	expect_exit(1, f, "task", "renew", "OK1", "--swarm", "s");
	expect_exit(1, f, "task", "release", "OK1", "--swarm", "s", "--status",
		    "claimed");
	expect_exit(1, f, "task", "list", "--status", "nope");
	expect_exit(1, f, "task", "frobnicate");
	expect_exit(1, f, "task", "get", "A", "B");
	expect_exit(1, f, "task", "get", "A", "--bogus");

	a = json_list(f, "task", NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(a), 0);
	cJSON_Delete(a);
	a = json_list(f, "swarm", NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(a), 0);
	cJSON_Delete(a);
	if (strcmp(f->backend, "git") == 0) {
		/* Not a single commit: the branch was never created. */
		assert_int_not_equal(co_test_sh(NULL, NULL,
						"git --git-dir='%s' rev-parse "
						"--verify -q refs/heads/main",
						f->repo),
				     0);
	}
}

/* ---- watch ---- */

/* waitpid with a bound; SIGKILL and fail if it does not end. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	int status, waited = 0;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("process %d did not exit within %d ms", (int)pid,
				 timeout_ms);
		}
		usleep(10000);
		waited += 10;
	}
}

static void watch_prints_ndjson_and_stops_on_sigint(void **state)
{
	cli_fx *f = *state;
	char *argv[] = {(char *)CUTOVER_BIN,
			"--backend",
			(char *)f->backend,
			"watch",
			"--prefix",
			"tasks/",
			NULL};
	int out[2], err[2];
	char **envp = fx_make_envp(f->env);
	char *line, *ready = NULL;
	cJSON *ev;
	pid_t pid;

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
		execve(CUTOVER_BIN, argv, envp);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	free(envp);

	/* The watch says on stderr when it is established; events start then. */
	ready = fx_read_line(err[0], 15000);
	if (ready == NULL || strstr(ready, "watching") == NULL) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("watch did not start: %s", ready ? ready : "(nothing)");
	}
	free(ready);

	expect_exit(0, f, "swarm", "register", "not-watched");
	expect_exit(0, f, "task", "create", "W1", "--type", "build");
	line = fx_read_line(out[0], 15000);
	if (line == NULL) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("no event within 15 s");
	}
	ev = cJSON_Parse(line);
	assert_non_null(ev);
	assert_string_equal(cJSON_GetObjectItem(ev, "type")->valuestring, "put");
	assert_string_equal(cJSON_GetObjectItem(ev, "kind")->valuestring, "task");
	assert_string_equal(cJSON_GetObjectItem(ev, "id")->valuestring, "W1");
	assert_string_equal(cJSON_GetObjectItem(ev, "store")->valuestring, f->backend);
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(ev, "record")));
	{
		char *rec = cJSON_PrintUnformatted(cJSON_GetObjectItem(ev, "record"));
		co_record *r = NULL;

		assert_int_equal(co_record_from_json(&r, rec, strlen(rec)), 0);
		assert_int_equal(r->rev, 1);
		co_record_free(r);
		free(rec);
	}
	cJSON_Delete(ev);
	free(line);

	assert_int_equal(kill(pid, SIGINT), 0);
	assert_int_equal(wait_exit(pid, 10000), 0);
	close(out[0]);
	close(err[0]);
}

/* ---- etcd down ---- */

static void etcd_down_is_exit_2_naming_the_endpoint(void **state)
{
	cli_fx *f = *state;
	co_test_etcd own = {0};
	struct timespec t0, t1;
	char *err;
	double secs;

	/* A private etcd: killing the suite's one would break other tests. */
	assert_int_equal(co_test_etcd_start(&own), 0);
	fill_env(f, own.endpoint);
	f->env[5] = "CUTOVER_ETCD_REQUEST_TIMEOUT=2s";
	expect_exit(0, f, "task", "create", "D1");
	co_test_etcd_kill(&own);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(
	    cut(f, NULL, &err, "task", "claim", "D1", "--swarm", "s", (const char *)NULL),
	    2);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (strstr(err, own.endpoint) == NULL)
		fail_msg("stderr \"%s\" does not name %s", err, own.endpoint);
	assert_non_null(strstr(err, "cutover: "));
	free(err);
	/* Within its timeout (connect 1 s + request 2 s), with slack for a busy
	 * machine: what matters is that it does not hang. */
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (secs > 15.0)
		fail_msg("took %.1f s to give up", secs);
	expect_exit(2, f, "task", "create", "D2");
	expect_exit(2, f, "swarm", "list");

	/* Nothing half-written: after a restart D1 is untouched, D2 absent. */
	assert_int_equal(co_test_etcd_restart(&own), 0);
	{
		co_record *r = json_record(f, "task", "get", "D1");

		assert_int_equal(r->rev, 1);
		assert_int_equal(r->status, CO_STATUS_AVAILABLE);
		co_record_free(r);
	}
	expect_exit(4, f, "task", "get", "D2");
	co_test_etcd_stop(&own);
}

/* ---- help and config ---- */

static void help_exits_0_and_mentions_every_command(void **state)
{
	cli_fx *f = *state;
	/* Every command of the dispatch table, present and future. */
	static const char *const commands[] = {
#define CO_CLI_COMMAND(name, summary) #name,
#include "cli/cli_commands.h"
#undef CO_CLI_COMMAND
	};
	static const char *const task_subs[] = {"create", "get",     "list",
						"claim",  "release", "renew"};
	static const char *const swarm_subs[] = {"register", "get", "list", "remove"};
	const char *argv[4] = {"--help", NULL, NULL, NULL};
	char *out, *err;
	size_t i;

	assert_int_equal(co_test_cutover(&out, &err, f->env, argv), 0);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strstr(out, commands[i]) == NULL)
			fail_msg("--help does not mention %s", commands[i]);
	assert_non_null(strstr(out, "--backend"));
	assert_non_null(strstr(out, "Examples"));
	free(out);
	free(err);

	/* Every command helps itself, with a usage line. */
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		argv[0] = commands[i];
		argv[1] = "--help";
		if (co_test_cutover(&out, &err, f->env, argv) != 0 || strstr(out, "usage") == NULL)
			fail_msg("cutover %s --help: stdout \"%.200s\" stderr \"%.200s\"",
				 commands[i], out, err);
		free(out);
		free(err);
	}

	argv[0] = "task";
	argv[1] = "--help";
	assert_int_equal(co_test_cutover(&out, &err, f->env, argv), 0);
	for (i = 0; i < sizeof(task_subs) / sizeof(task_subs[0]); i++)
		assert_non_null(strstr(out, task_subs[i]));
	free(out);
	free(err);

	argv[0] = "swarm";
	assert_int_equal(co_test_cutover(&out, &err, f->env, argv), 0);
	for (i = 0; i < sizeof(swarm_subs) / sizeof(swarm_subs[0]); i++)
		assert_non_null(strstr(out, swarm_subs[i]));
	free(out);
	free(err);

	argv[0] = "task";
	argv[1] = "claim";
	argv[2] = "-h";
	assert_int_equal(co_test_cutover(&out, &err, f->env, argv), 0);
	assert_non_null(strstr(out, "--swarm"));
	assert_non_null(strstr(out, "Example"));
	free(out);
	free(err);

	argv[0] = "watch";
	argv[1] = "--help";
	argv[2] = NULL;
	assert_int_equal(co_test_cutover(&out, &err, f->env, argv), 0);
	assert_non_null(strstr(out, "JSON"));
	free(out);
	free(err);

	argv[0] = "--version";
	argv[1] = NULL;
	assert_int_equal(co_test_cutover(&out, &err, f->env, argv), 0);
	assert_non_null(strstr(out, "cutover "));
	free(out);
	free(err);

	argv[0] = "no-such-command";
	assert_int_equal(co_test_cutover(&out, &err, f->env, argv), 1);
	assert_non_null(strstr(err, "unknown command"));
	free(out);
	free(err);
}

static void bad_config_file_is_exit_1_naming_file_line_and_key(void **state)
{
	cli_fx *f = *state;
	char path[300], want[400], env_cfg[320];
	const char *argv[] = {"--config", path, "task", "list", NULL};
	const char *env[8];
	char *out, *err;
	FILE *fp;
	size_t i;

	snprintf(path, sizeof(path), "%s/cutover.yaml", f->state);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("git:\n  branch: main\n  polling: 5s\n", fp);
	assert_int_equal(fclose(fp), 0);

	assert_int_equal(co_test_cutover(&out, &err, f->env, argv), 1);
	snprintf(want, sizeof(want), "%s:3: key \"git.polling\"", path);
	if (strstr(err, want) == NULL)
		fail_msg("stderr \"%s\" lacks \"%s\"", err, want);
	free(out);
	free(err);

	/* The same through $CUTOVER_CONFIG, with a bad duration this time. */
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("etcd:\n  request_timeout: soon\n", fp);
	assert_int_equal(fclose(fp), 0);
	snprintf(env_cfg, sizeof(env_cfg), "CUTOVER_CONFIG=%s", path);
	for (i = 0; f->env[i]; i++)
		env[i] = strcmp(f->env[i], "CUTOVER_CONFIG") == 0 ? env_cfg : f->env[i];
	env[i] = NULL;
	assert_int_equal(co_test_cutover(&out, &err, env, argv + 2), 1);
	snprintf(want, sizeof(want), "%s:2: key \"etcd.request_timeout\"", path);
	if (strstr(err, want) == NULL)
		fail_msg("stderr \"%s\" lacks \"%s\"", err, want);
	free(out);
	free(err);
	unlink(path);
}

#define BOTH(test)                                                                       \
	{#test "_on_git", test, setup, teardown, (void *)git_backend},                   \
	{                                                                                \
#test "_on_etcd", test, setup, teardown, (void *)etcd_backend            \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(task_commands_give_exit_codes_and_canonical_json),
	    BOTH(swarm_commands_give_exit_codes_and_canonical_json),
	    BOTH(sixteen_processes_claiming_one_task_have_one_winner),
	    BOTH(non_owner_release_is_conflict_with_current_record),
	    BOTH(missing_records_are_exit_4),
	    BOTH(identical_recreate_succeeds_and_different_conflicts),
	    BOTH(bad_input_is_exit_1_and_writes_nothing),
	    BOTH(watch_prints_ndjson_and_stops_on_sigint),
	    {"etcd_down_is_exit_2_naming_the_endpoint",
	     etcd_down_is_exit_2_naming_the_endpoint, setup, teardown,
	     (void *)etcd_backend},
	    {"help_exits_0_and_mentions_every_command",
	     help_exits_0_and_mentions_every_command, setup, teardown, NULL},
	    {"bad_config_file_is_exit_1_naming_file_line_and_key",
	     bad_config_file_is_exit_1_naming_file_line_and_key, setup, teardown, NULL},
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
