/*
 * test_flags.c - the flag model: YAML load/validate/save and the routing
 * decision of DESIGN §4 (flags/flags.c).  Pure logic and temp files only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "flags/bucket.h"
#include "flags/flags.h"
#include "flags/gate.h"
#include "harness/harness.h"

typedef struct fixture {
	char dir[256];
	char path[300];
} fixture;

static int setup_dir(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));

	if (!fx || co_test_tmpdir(fx->dir, sizeof(fx->dir)) < 0) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/flags.yaml", fx->dir);
	*state = fx;
	return 0;
}

static int teardown_dir(void **state)
{
	fixture *fx = *state;

	co_test_rmrf(fx->dir);
	free(fx);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Parse text and expect failure with `code` and a message containing `want`. */
static void expect_parse_error(const char *text, int code, const char *want)
{
	co_flags f;
	int error;

	co_error_clear();
	error = co_flags_parse(&f, text, strlen(text), "flags.yaml");
	if (error != code || strstr(co_error_last(), want) == NULL)
		fail_msg("expected %d containing \"%s\", got %d \"%s\"\n  for: %s", code,
			 want, error, co_error_last(), text);
}

/* ---- names ---- */

static void op_and_mode_names_round_trip_and_typos_are_rejected(void **state)
{
	co_op op;
	co_mode mode;
	int i;

	(void)state;
	for (i = 0; i < CO_OP__COUNT; i++) {
		assert_int_equal(co_op_parse(&op, co_op_name((co_op)i)), 0);
		assert_int_equal(op, i);
	}
	for (i = 0; i < CO_MODE__COUNT; i++) {
		assert_int_equal(co_mode_parse(&mode, co_mode_name((co_mode)i)), 0);
		assert_int_equal(mode, i);
	}
	assert_string_equal(co_op_name(CO_OP_TASK_CLAIM), "task_claim");
	assert_string_equal(co_op_name(CO_OP_WATCH), "watch");
	assert_int_equal(co_op_parse(&op, "task_clam"), CO_EINVAL);
	assert_string_equal(co_error_last(), "unknown operation \"task_clam\"");
	assert_int_equal(co_mode_parse(&mode, "dule"), CO_EINVAL);
	assert_string_equal(co_error_last(),
			    "unknown mode \"dule\" (git, shadow, dual, etcd)");
	assert_string_equal(co_side_name(CO_SIDE_ETCD), "etcd");
	assert_string_equal(co_side_name(CO_SIDE_NONE), "none");
}

/* ---- loading ---- */

static void missing_file_gives_defaults(void **state)
{
	fixture *fx = *state;
	co_flags f;
	int op;

	memset(&f, 0x5a, sizeof(f));
	assert_int_equal(co_flags_load(&f, fx->path), 0);
	assert_int_equal(f.kill_switch, 0);
	assert_string_equal(f.kill_reason, "");
	for (op = 0; op < CO_OP__COUNT; op++) {
		assert_int_equal(co_flags_get(&f, (co_op)op).mode, CO_MODE_GIT);
		assert_int_equal(co_flags_get(&f, (co_op)op).etcd_percent, 0);
	}
}

static void design_example_loads_in_flow_style(void **state)
{
	static const char text[] = "kill_switch: false\n"
				   "kill_reason: \"\"\n"
				   "default: { mode: git, etcd_percent: 0 }\n"
				   "operations:\n"
				   "  task_claim: { mode: dual, etcd_percent: 10 }\n";
	co_flags f;

	(void)state;
	assert_int_equal(co_flags_parse(&f, text, strlen(text), "flags.yaml"), 0);
	assert_int_equal(f.kill_switch, 0);
	assert_int_equal(f.def.mode, CO_MODE_GIT);
	assert_true(f.has_op[CO_OP_TASK_CLAIM]);
	assert_int_equal(co_flags_get(&f, CO_OP_TASK_CLAIM).mode, CO_MODE_DUAL);
	assert_int_equal(co_flags_get(&f, CO_OP_TASK_CLAIM).etcd_percent, 10);
	assert_int_equal(co_flags_get(&f, CO_OP_TASK_GET).mode, CO_MODE_GIT);
}

static void block_style_loads_like_flow_style(void **state)
{
	static const char block[] = "kill_switch: true\n"
				    "kill_reason: run 7 failed\n"
				    "default:\n"
				    "  mode: shadow\n"
				    "operations:\n"
				    "  task_get:\n"
				    "    etcd_percent: 50\n"
				    "    mode: dual\n";
	static const char flow[] =
	    "{kill_switch: true, kill_reason: \"run 7 failed\",\n"
	    " default: {mode: shadow, etcd_percent: 0},\n"
	    " operations: {task_get: {mode: dual, etcd_percent: 50}}}\n";
	co_flags a, b;

	(void)state;
	assert_int_equal(co_flags_parse(&a, block, strlen(block), "a"), 0);
	assert_int_equal(co_flags_parse(&b, flow, strlen(flow), "b"), 0);
	assert_true(co_flags_equal(&a, &b));
	assert_int_equal(a.kill_switch, 1);
	assert_string_equal(a.kill_reason, "run 7 failed");
	assert_int_equal(co_flags_get(&a, CO_OP_TASK_GET).etcd_percent, 50);
	assert_int_equal(co_flags_get(&a, CO_OP_TASK_CLAIM).mode, CO_MODE_SHADOW);
}

static void empty_and_comment_only_text_gives_defaults(void **state)
{
	co_flags f, d;

	(void)state;
	co_flags_init(&d);
	assert_int_equal(co_flags_parse(&f, "", 0, "e"), 0);
	assert_true(co_flags_equal(&f, &d));
	assert_int_equal(co_flags_parse(&f, NULL, 0, "e"), 0);
	assert_true(co_flags_equal(&f, &d));
	assert_int_equal(co_flags_parse(&f, "# nothing\n", 10, "e"), 0);
	assert_true(co_flags_equal(&f, &d));
	assert_int_equal(co_flags_parse(&f, "operations:\nkill_reason: ~\n", 27, "e"), 0);
	assert_true(co_flags_equal(&f, &d));
}

static void validation_errors_name_file_and_line(void **state)
{
	(void)state;
	expect_parse_error("kill_switch: false\n"
			   "operations:\n"
			   "  task_clam: { mode: dual, etcd_percent: 10 }\n",
			   CO_EINVAL, "flags.yaml:3: unknown operation \"task_clam\"");
	expect_parse_error(
	    "kill_switch: false\n"
	    "default: { mode: git, etcd_percent: 0 }\n"
	    "operations:\n"
	    "  task_claim: { mode: dule, etcd_percent: 10 }\n",
	    CO_EINVAL, "flags.yaml:4: unknown mode \"dule\" (git, shadow, dual, etcd)");
	expect_parse_error("operations:\n"
			   "  task_claim:\n"
			   "    mode: dual\n"
			   "    etcd_percent: 101\n",
			   CO_EINVAL, "flags.yaml:4: etcd_percent 101 outside 0..100");
	expect_parse_error("default: { mode: dual, etcd_percent: -1 }\n", CO_EINVAL,
			   "flags.yaml:1: etcd_percent -1 outside 0..100");
	expect_parse_error("\n\ndefault: { mode: dual, etcd_percent: 12.5 }\n", CO_EINVAL,
			   "flags.yaml:3: etcd_percent \"12.5\" is not an integer");
	expect_parse_error("default: { mode: dual, etcd_percent: ten }\n", CO_EINVAL,
			   "flags.yaml:1: etcd_percent \"ten\" is not an integer");
	expect_parse_error("kill_switch: false\nkill_swich: true\n", CO_EINVAL,
			   "flags.yaml:2: unknown key \"kill_swich\"");
	expect_parse_error("kill_switch: maybe\n", CO_EINVAL,
			   "flags.yaml:1: kill_switch: expected true or false");
	expect_parse_error("default: { etcd_percent: 5 }\n", CO_EINVAL,
			   "flags.yaml:1: default: missing mode");
	expect_parse_error("default: { mode: git, colour: blue }\n", CO_EINVAL,
			   "flags.yaml:1: default: unknown key \"colour\"");
	expect_parse_error("default: git\n", CO_EINVAL,
			   "flags.yaml:1: default: expected a mapping");
	expect_parse_error("kill_switch: false\nkill_switch: true\n", CO_EINVAL,
			   "flags.yaml:2: duplicate key \"kill_switch\"");
	expect_parse_error("operations:\n  watch: {mode: git}\n  watch: {mode: etcd}\n",
			   CO_EINVAL,
			   "flags.yaml:3: operations: duplicate key \"watch\"");
	expect_parse_error("- a\n- b\n", CO_EINVAL,
			   "flags.yaml:1: expected a mapping at the top level");
	expect_parse_error("kill_switch: false\n---\nkill_switch: true\n", CO_EINVAL,
			   "flags.yaml:3: more than one YAML document");
}

static void malformed_yaml_reports_libyaml_problem_and_line(void **state)
{
	(void)state;
	expect_parse_error("kill_switch: false\n"
			   "default: { mode: git, etcd_percent: 0\n"
			   "operations: {}\n",
			   CO_EINVAL, "flags.yaml:3: did not find expected ',' or '}'");
	expect_parse_error("kill_switch: false\nkill_reason: \"unterminated\n", CO_EINVAL,
			   "flags.yaml:3: found unexpected end of stream");
	expect_parse_error("kill_switch: false\n  bad: indent\n", CO_EINVAL,
			   "flags.yaml:2: mapping values are not allowed");
}

static void overlong_kill_reason_is_too_big(void **state)
{
	char *text = malloc(CO_FLAGS_REASON_MAX + 64);

	(void)state;
	assert_non_null(text);
	strcpy(text, "kill_switch: true\nkill_reason: ");
	memset(text + strlen(text), 'r', CO_FLAGS_REASON_MAX + 1);
	strcpy(text + strlen("kill_switch: true\nkill_reason: ") + CO_FLAGS_REASON_MAX +
		   1,
	       "\n");
	expect_parse_error(text, CO_ETOOBIG, "flags.yaml:2: kill_reason: longer than");
	free(text);
}

static void load_reports_path_and_line(void **state)
{
	fixture *fx = *state;
	char want[400];
	co_flags f;

	write_file(fx->path,
		   "kill_switch: false\noperations:\n  task_claim: {mode: dule}\n");
	assert_int_equal(co_flags_load(&f, fx->path), CO_EINVAL);
	snprintf(want, sizeof(want), "%s:3: unknown mode \"dule\"", fx->path);
	assert_non_null(strstr(co_error_last(), want));
}

static void unreadable_path_is_io_error(void **state)
{
	fixture *fx = *state;
	co_flags f;

	/* A directory where the file should be. */
	assert_int_equal(mkdir(fx->path, 0700), 0);
	assert_int_equal(co_flags_load(&f, fx->path), CO_EIO);
	assert_non_null(strstr(co_error_last(), fx->path));
	assert_int_equal(rmdir(fx->path), 0);
}

/* ---- saving ---- */

static void build_busy_flags(co_flags *f)
{
	co_flags_init(f);
	assert_int_equal(co_flags_set_default(f, CO_MODE_SHADOW, 0), 0);
	assert_int_equal(co_flags_set(f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 10), 0);
	assert_int_equal(co_flags_set(f, CO_OP_WATCH, CO_MODE_ETCD, 100), 0);
	assert_int_equal(co_flags_set(f, CO_OP_SWARM_LIST, CO_MODE_GIT, 0), 0);
	co_flags_set_kill(f, 1,
			  "run 7: consistency 97.5% < 99.99% \"quoted\" t\xc3\xa2"
			  "che\n2nd line");
	co_flags_stamp(f, "alice@example", "2026-11-22T10:00:00Z");
}

static void save_then_load_gives_the_same_flags(void **state)
{
	fixture *fx = *state;
	co_flags f, g;

	build_busy_flags(&f);
	assert_int_equal(co_flags_save(&f, fx->path), 0);
	assert_int_equal(co_flags_load(&g, fx->path), 0);
	assert_true(co_flags_equal(&f, &g));
	assert_string_equal(g.kill_reason, f.kill_reason);

	/* And the defaults, which list no operation. */
	co_flags_init(&f);
	assert_int_equal(co_flags_save(&f, fx->path), 0);
	assert_int_equal(co_flags_load(&g, fx->path), 0);
	assert_true(co_flags_equal(&f, &g));
}

static void saved_text_is_stable_and_readable(void **state)
{
	co_flags f;
	char *a = NULL, *b = NULL;

	(void)state;
	co_flags_init(&f);
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 10), 0);
	assert_int_equal(co_flags_format(&a, &f), 0);
	assert_string_equal(a, "kill_switch: false\n"
			       "kill_reason: \"\"\n"
			       "default: {mode: git, etcd_percent: 0}\n"
			       "operations:\n"
			       "  task_claim: {mode: dual, etcd_percent: 10}\n");
	/* Overrides come out in operation order, whatever order they were set in. */
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CREATE, CO_MODE_SHADOW, 0), 0);
	assert_int_equal(co_flags_format(&b, &f), 0);
	assert_non_null(
	    strstr(b, "operations:\n  task_create: {mode: shadow, etcd_percent: 0}\n"
		      "  task_claim: {mode: dual, etcd_percent: 10}\n"));
	free(a);
	free(b);
}

static void save_is_atomic_mode_0600_and_leaves_no_temp_file(void **state)
{
	fixture *fx = *state;
	struct dirent *de;
	struct stat st;
	co_flags f, g;
	mode_t old_umask;
	DIR *d;
	int n = 0;

	write_file(fx->path, "kill_switch: false\n");
	assert_int_equal(chmod(fx->path, 0644), 0);
	/* A permissive umask must not widen the mode. */
	old_umask = umask(0);
	build_busy_flags(&f);
	assert_int_equal(co_flags_save(&f, fx->path), 0);
	umask(old_umask);

	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(co_flags_load(&g, fx->path), 0);
	assert_true(co_flags_equal(&f, &g));

	d = opendir(fx->dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		assert_string_equal(de->d_name, "flags.yaml");
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
}

static void save_into_missing_directory_fails_and_creates_nothing(void **state)
{
	fixture *fx = *state;
	char path[400];
	co_flags f;

	snprintf(path, sizeof(path), "%s/no/such/flags.yaml", fx->dir);
	co_flags_init(&f);
	assert_int_equal(co_flags_save(&f, path), CO_EIO);
	assert_non_null(strstr(co_error_last(), "no/such/flags.yaml.tmp."));
}

/*
 * Four processes each add 1 to one operation's percent 25 times, load to
 * save under co_flags_lock: no increment is lost (without the lock, two
 * writers that load the same file lose one of their saves).
 */
static void locked_read_modify_writes_from_many_processes_lose_nothing(void **state)
{
	fixture *fx = *state;
	co_flags f;
	pid_t pids[4];
	int i, status;

	co_flags_init(&f);
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 0), 0);
	assert_int_equal(co_flags_save(&f, fx->path), 0);
	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			for (int k = 0; k < 25; k++) {
				co_flags g;
				int lock = co_flags_lock(fx->path);

				if (lock < 0 || co_flags_load(&g, fx->path) < 0 ||
				    co_flags_set(
					&g, CO_OP_TASK_CLAIM, CO_MODE_DUAL,
					co_flags_get(&g, CO_OP_TASK_CLAIM).etcd_percent +
					    1) < 0 ||
				    co_flags_save(&g, fx->path) < 0)
					_exit(1);
				co_flags_unlock(lock);
			}
			_exit(0);
		}
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(co_flags_load(&f, fx->path), 0);
	assert_int_equal(co_flags_get(&f, CO_OP_TASK_CLAIM).etcd_percent, 100);
}

/* The lock and a saved file are 0600 whatever the umask; a loose lock of
 * ours is tightened when it is taken. */
static void lock_and_saved_file_are_0600_whatever_the_umask(void **state)
{
	static const mode_t masks[] = {000, 022, 0277};
	fixture *fx = *state;
	char lock_path[320];
	struct stat sb;
	co_flags f;
	mode_t old;
	size_t i;
	int lock;

	co_flags_init(&f);
	snprintf(lock_path, sizeof(lock_path), "%s" CO_FLAGS_LOCK_SUFFIX, fx->path);
	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		unlink(lock_path);
		unlink(fx->path);
		old = umask(masks[i]);
		lock = co_flags_lock(fx->path);
		assert_true(lock >= 0);
		assert_int_equal(co_flags_save(&f, fx->path), 0);
		co_flags_unlock(lock);
		umask(old);
		assert_int_equal(stat(lock_path, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, 0600);
		assert_int_equal(stat(fx->path, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, 0600);
	}
	assert_int_equal(chmod(lock_path, 0644), 0);
	lock = co_flags_lock(fx->path);
	assert_true(lock >= 0);
	co_flags_unlock(lock);
	assert_int_equal(stat(lock_path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
}

/* A writer that dies holding the lock does not block the next one. */
static void lock_of_a_dead_holder_is_free(void **state)
{
	fixture *fx = *state;
	char lock_path[320];
	struct stat sb;
	pid_t pid;
	int status, lock;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(co_flags_lock(fx->path) >= 0 ? 0 : 1); /* never unlocks */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	lock = co_flags_lock(fx->path);
	assert_true(lock >= 0);
	snprintf(lock_path, sizeof(lock_path), "%s.lock", fx->path);
	assert_int_equal(stat(lock_path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	co_flags_unlock(lock);
	co_flags_unlock(-1);
	/* a directory that does not exist: a clear error naming the file */
	assert_int_equal(co_flags_lock("/nonexistent-dir/flags.yaml"), CO_EIO);
	assert_non_null(strstr(co_error_last(), "/nonexistent-dir/flags.yaml.lock"));
}

/* A held lock names its holder, and the kill switch does not wait on it. */
static void a_stuck_writer_is_named_and_does_not_hold_up_the_kill_switch(void **state)
{
	fixture *fx = *state;
	char want[64], holder[160];
	int lock, kill_fd = 0;

	lock = co_flags_lock(fx->path); /* another open file: flock conflicts */
	assert_true(lock >= 0);
	snprintf(want, sizeof(want), "held by pid %d (", (int)getpid());
	assert_int_equal(co_flags_lock_wait(fx->path, 20), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), want));
	assert_non_null(strstr(co_error_last(), ") since 20"));
	assert_int_equal(co_flags_lock_for_kill(&kill_fd, fx->path), 0);
	assert_int_equal(kill_fd, -1);
	assert_non_null(strstr(co_error_last(), want));
	/* `cutover status` can name it too. */
	assert_int_equal(co_flags_lock_holder(holder, sizeof(holder), fx->path), 1);
	assert_non_null(strstr(holder, want + strlen("held by ")));
	co_flags_unlock(lock);
	assert_int_equal(co_flags_lock_holder(holder, sizeof(holder), fx->path), 0);
	assert_string_equal(holder, "");
	assert_int_equal(co_flags_lock_for_kill(&kill_fd, fx->path), 0);
	assert_true(kill_fd >= 0);
	co_flags_unlock(kill_fd);
}

/* A writer saves only over what it read: a kill switch pulled meanwhile stays. */
static void save_if_never_saves_over_a_change_made_meanwhile(void **state)
{
	fixture *fx = *state;
	co_flags read, killed, mine, now;

	co_flags_init(&read);
	assert_int_equal(co_flags_set(&read, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 10), 0);
	assert_int_equal(co_flags_save(&read, fx->path), 0);
	assert_int_equal(co_flags_load(&read, fx->path), 0);
	/* The stuck writer wants 50; the kill switch goes on meanwhile. */
	mine = read;
	assert_int_equal(co_flags_set(&mine, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 50), 0);
	killed = read;
	co_flags_set_kill(&killed, 1, "etcd on fire");
	assert_int_equal(co_flags_save(&killed, fx->path), 0);
	assert_int_equal(co_flags_save_if(&read, &mine, fx->path), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "changed since this command read them"));
	assert_non_null(strstr(co_error_last(), "etcd on fire"));
	assert_int_equal(co_flags_load(&now, fx->path), 0);
	assert_true(now.kill_switch);
	assert_int_equal(co_flags_get(&now, CO_OP_TASK_CLAIM).etcd_percent, 10);
	/* Over what is there now, it goes through. */
	mine = now;
	assert_int_equal(co_flags_set(&mine, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 50), 0);
	assert_int_equal(co_flags_save_if(&now, &mine, fx->path), 0);
	assert_int_equal(co_flags_load(&now, fx->path), 0);
	assert_true(now.kill_switch);
	assert_int_equal(co_flags_get(&now, CO_OP_TASK_CLAIM).etcd_percent, 50);
}

/* The kill switch lands over a change made meanwhile, not instead of it. */
static void kill_switch_is_pulled_over_a_change_made_meanwhile(void **state)
{
	fixture *fx = *state;
	co_flags read, other, kill, now;
	FILE *f;

	co_flags_init(&read);
	assert_int_equal(co_flags_set(&read, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 10), 0);
	assert_int_equal(co_flags_save(&read, fx->path), 0);
	assert_int_equal(co_flags_load(&read, fx->path), 0);
	/* Another writer (a stuck `stage` waking up) saves 50 meanwhile. */
	other = read;
	assert_int_equal(co_flags_set(&other, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 50), 0);
	assert_int_equal(co_flags_save(&other, fx->path), 0);
	kill = read;
	co_flags_set_kill(&kill, 1, "drill");
	assert_int_equal(co_flags_save_kill(&kill, &read, fx->path), 0);
	assert_int_equal(co_flags_load(&now, fx->path), 0);
	assert_true(now.kill_switch);
	assert_string_equal(now.kill_reason, "drill");
	assert_int_equal(co_flags_get(&now, CO_OP_TASK_CLAIM).etcd_percent, 50);
	assert_true(co_flags_equal(&now, &kill)); /* *to says what was saved */
	/* Pulled already by someone else: that reason stays. */
	kill = read;
	co_flags_set_kill(&kill, 1, "second");
	assert_int_equal(co_flags_save_kill(&kill, &read, fx->path), 0);
	assert_int_equal(co_flags_load(&now, fx->path), 0);
	assert_string_equal(now.kill_reason, "drill");
	/* A file that does not parse: pulled over it. */
	f = fopen(fx->path, "w");
	assert_non_null(f);
	fputs("kill_switch: [\n", f);
	fclose(f);
	kill = read;
	co_flags_set_kill(&kill, 1, "over a broken file");
	assert_int_equal(co_flags_save_kill(&kill, &read, fx->path), 0);
	assert_int_equal(co_flags_load(&now, fx->path), 0);
	assert_true(now.kill_switch);
	assert_string_equal(now.kill_reason, "over a broken file");
}

static void setters_reject_bad_values_and_change_nothing(void **state)
{
	co_flags f, before;

	(void)state;
	co_flags_init(&f);
	before = f;
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 101),
			 CO_EINVAL);
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, -1), CO_EINVAL);
	assert_int_equal(co_flags_set(&f, (co_op)CO_OP__COUNT, CO_MODE_GIT, 0),
			 CO_EINVAL);
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_GET, (co_mode)7, 0), CO_EINVAL);
	assert_int_equal(co_flags_set_default(&f, CO_MODE_DUAL, 200), CO_EINVAL);
	assert_true(co_flags_equal(&f, &before));

	assert_int_equal(co_flags_set(&f, CO_OP_TASK_GET, CO_MODE_ETCD, 100), 0);
	assert_true(f.has_op[CO_OP_TASK_GET]);
	co_flags_clear(&f, CO_OP_TASK_GET);
	assert_true(co_flags_equal(&f, &before));
}

static void overlong_kill_reason_is_cut_at_a_character_boundary(void **state)
{
	char reason[CO_FLAGS_REASON_MAX + 16];
	co_flags f;
	size_t i;

	(void)state;
	/* 2-byte characters, placed so that the limit falls inside one. */
	reason[0] = 'x';
	for (i = 1; i + 2 < sizeof(reason); i += 2) {
		reason[i] = '\xc3';
		reason[i + 1] = '\xa2';
	}
	reason[i] = '\0';
	co_flags_init(&f);
	co_flags_set_kill(&f, 1, reason);
	assert_int_equal(f.kill_switch, 1);
	assert_true(strlen(f.kill_reason) <= CO_FLAGS_REASON_MAX);
	assert_int_equal(strlen(f.kill_reason) % 2, 1); /* 'x' + whole characters */
	co_flags_set_kill(&f, 0, "ignored");
	assert_int_equal(f.kill_switch, 0);
	assert_string_equal(f.kill_reason, "");
}

static void diff_names_what_changed(void **state)
{
	co_flags a, b;
	char buf[512];

	(void)state;
	co_flags_init(&a);
	b = a;
	co_flags_diff(buf, sizeof(buf), &a, &b);
	assert_string_equal(buf, "no change");
	co_flags_set_kill(&b, 1, "run 7");
	assert_int_equal(co_flags_set(&b, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 50), 0);
	co_flags_diff(buf, sizeof(buf), &a, &b);
	assert_string_equal(buf, "kill_switch false -> true (run 7); "
				 "task_claim git -> dual 50");
	/* A short buffer is cut, never overrun. */
	co_flags_diff(buf, 12, &a, &b);
	assert_int_equal(strlen(buf), 11);
}

/* ---- routing ---- */

static co_route route_of(const co_flags *f, co_op op, const char *id)
{
	co_route r;

	assert_int_equal(co_flags_route(&r, f, op, id), 0);
	return r;
}

static void route_table_per_mode(void **state)
{
	co_flags f;
	co_route r;

	(void)state;
	co_flags_init(&f);
	r = route_of(&f, CO_OP_TASK_CLAIM, "P0.1.1");
	assert_int_equal(r.mode, CO_MODE_GIT);
	assert_int_equal(r.primary, CO_SIDE_GIT);
	assert_int_equal(r.secondary, CO_SIDE_NONE);
	assert_false(r.compare_reads);

	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_SHADOW, 0), 0);
	r = route_of(&f, CO_OP_TASK_CLAIM, "P0.1.1");
	assert_int_equal(r.mode, CO_MODE_SHADOW);
	assert_int_equal(r.primary, CO_SIDE_GIT);
	assert_int_equal(r.secondary, CO_SIDE_ETCD);
	assert_true(r.compare_reads);
	assert_false(r.secondary_async);

	/* "P0.1.1" is in bucket 13, "task-42" in 41. */
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 14), 0);
	r = route_of(&f, CO_OP_TASK_CLAIM, "P0.1.1");
	assert_int_equal(r.mode, CO_MODE_DUAL);
	assert_int_equal(r.bucket, 13);
	assert_int_equal(r.primary, CO_SIDE_ETCD);
	assert_int_equal(r.secondary, CO_SIDE_GIT);
	r = route_of(&f, CO_OP_TASK_CLAIM, "task-42");
	assert_int_equal(r.primary, CO_SIDE_GIT);
	assert_int_equal(r.secondary, CO_SIDE_ETCD);
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 13), 0);
	assert_int_equal(route_of(&f, CO_OP_TASK_CLAIM, "P0.1.1").primary, CO_SIDE_GIT);

	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_ETCD, 0), 0);
	r = route_of(&f, CO_OP_TASK_CLAIM, "task-42");
	assert_int_equal(r.mode, CO_MODE_ETCD);
	assert_int_equal(r.primary, CO_SIDE_ETCD);
	assert_int_equal(r.secondary, CO_SIDE_GIT);
	assert_true(r.secondary_async);
	assert_false(r.kill_switch);

	/* Other operations still follow the default. */
	assert_int_equal(route_of(&f, CO_OP_TASK_GET, "task-42").primary, CO_SIDE_GIT);
	assert_int_equal(route_of(&f, CO_OP_TASK_GET, "task-42").secondary, CO_SIDE_NONE);
}

static void kill_switch_makes_every_mode_shadow(void **state)
{
	static const co_op_flags settings[] = {
	    {CO_MODE_GIT, 0},	{CO_MODE_SHADOW, 0}, {CO_MODE_DUAL, 100},
	    {CO_MODE_DUAL, 50}, {CO_MODE_ETCD, 100},
	};
	static const char *const ids[] = {"P0.1.1", "task-42", "swarm-sip", NULL};
	co_flags f;
	size_t s, i;
	int op;

	(void)state;
	for (s = 0; s < sizeof(settings) / sizeof(settings[0]); s++) {
		co_flags_init(&f);
		assert_int_equal(
		    co_flags_set_default(&f, settings[s].mode, settings[s].etcd_percent),
		    0);
		co_flags_set_kill(&f, 1, "test");
		for (op = 0; op < CO_OP__COUNT; op++) {
			for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
				co_route r = route_of(&f, (co_op)op, ids[i]);

				assert_int_equal(r.mode, CO_MODE_SHADOW);
				assert_int_equal(r.configured, settings[s].mode);
				assert_int_equal(r.primary, CO_SIDE_GIT);
				assert_int_equal(r.secondary, CO_SIDE_ETCD);
				assert_true(r.kill_switch);
				assert_false(r.split);
				assert_false(r.secondary_async);
			}
		}
		/* Off again: the configured mode is back. */
		co_flags_set_kill(&f, 0, NULL);
		assert_int_equal(route_of(&f, CO_OP_TASK_CLAIM, "x").mode,
				 settings[s].mode);
	}
}

static void all_operations_agree_on_one_ids_primary(void **state)
{
	co_flags f;
	char id[32];
	int i, op, pct;

	(void)state;
	for (pct = 0; pct <= 100; pct += 25) {
		co_flags_init(&f);
		/* Set per operation (not via default) to prove no op-specific salt. */
		for (op = 0; op < CO_OP__COUNT; op++)
			assert_int_equal(co_flags_set(&f, (co_op)op, CO_MODE_DUAL, pct),
					 0);
		for (i = 0; i < 1000; i++) {
			co_side first;

			snprintf(id, sizeof(id), "T%d", i);
			first = route_of(&f, (co_op)0, id).primary;
			assert_int_equal(first, co_bucket_etcd_primary(id, pct)
						    ? CO_SIDE_ETCD
						    : CO_SIDE_GIT);
			for (op = 1; op < CO_OP__COUNT; op++)
				assert_int_equal(route_of(&f, (co_op)op, id).primary,
						 first);
		}
	}
}

static void operations_without_an_id_use_the_extremes_and_split_between(void **state)
{
	co_flags f;
	co_route r;

	(void)state;
	co_flags_init(&f);
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_LIST, CO_MODE_DUAL, 0), 0);
	r = route_of(&f, CO_OP_TASK_LIST, NULL);
	assert_int_equal(r.primary, CO_SIDE_GIT);
	assert_int_equal(r.secondary, CO_SIDE_ETCD);
	assert_false(r.split);
	assert_int_equal(r.bucket, -1);

	assert_int_equal(co_flags_set(&f, CO_OP_TASK_LIST, CO_MODE_DUAL, 50), 0);
	r = route_of(&f, CO_OP_TASK_LIST, NULL);
	assert_int_equal(r.primary, CO_SIDE_GIT);
	assert_true(r.split);

	assert_int_equal(co_flags_set(&f, CO_OP_WATCH, CO_MODE_DUAL, 100), 0);
	r = route_of(&f, CO_OP_WATCH, NULL);
	assert_int_equal(r.primary, CO_SIDE_ETCD);
	assert_int_equal(r.secondary, CO_SIDE_GIT);
	assert_false(r.split);

	assert_int_equal(co_flags_set(&f, CO_OP_SWARM_LIST, CO_MODE_ETCD, 0), 0);
	assert_int_equal(route_of(&f, CO_OP_SWARM_LIST, NULL).primary, CO_SIDE_ETCD);
}

static void route_rejects_unknown_operation(void **state)
{
	co_flags f;
	co_route r;

	(void)state;
	co_flags_init(&f);
	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(co_flags_route(&r, &f, (co_op)CO_OP__COUNT, "x"), CO_EINVAL);
	assert_int_equal(co_flags_route(&r, &f, (co_op)-1, "x"), CO_EINVAL);
	assert_int_equal(r.op, 0x5a5a5a5a); /* untouched */
}

static void etcd_primary_possible_tracks_modes_and_kill_switch(void **state)
{
	co_flags f;

	(void)state;
	co_flags_init(&f);
	assert_false(co_flags_etcd_primary_possible(&f));
	assert_int_equal(co_flags_set_default(&f, CO_MODE_SHADOW, 0), 0);
	assert_false(co_flags_etcd_primary_possible(&f));
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 0), 0);
	assert_false(co_flags_etcd_primary_possible(&f));
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 1), 0);
	assert_true(co_flags_etcd_primary_possible(&f));
	co_flags_set_kill(&f, 1, "stop");
	assert_false(co_flags_etcd_primary_possible(&f));
}

/* ---- the finish line (`cutover complete`) ---- */

/* fleet_epoch: absent in file mode, round-trips, reaches the route, and a
 * value that is not a revision is refused naming the key. */
static void fleet_epoch_round_trips_into_the_route_and_bad_values_are_refused(void **state)
{
	static const char *const bad[] = {"fleet_epoch: 0\n", "fleet_epoch: -3\n",
					  "fleet_epoch: 12x\n", "fleet_epoch: [1]\n",
					  "fleet_epoch: 99999999999999999999\n"};
	co_flags f, back;
	co_route r;
	char *text = NULL;
	size_t i;

	(void)state;
	co_flags_init(&f);
	assert_int_equal(co_flags_format(&text, &f), 0);
	assert_null(strstr(text, "fleet_epoch")); /* file mode: as before */
	free(text);
	assert_int_equal(co_flags_set_default(&f, CO_MODE_ETCD, 0), 0);
	f.fleet_epoch = 4242;
	assert_int_equal(co_flags_format(&text, &f), 0);
	assert_non_null(strstr(text, "fleet_epoch: 4242"));
	assert_int_equal(co_flags_parse(&back, text, strlen(text), "x"), 0);
	free(text);
	assert_true(co_flags_equal(&back, &f));
	assert_int_equal(back.fleet_epoch, 4242);
	r = route_of(&back, CO_OP_TASK_CLAIM, "P0.1.1");
	assert_int_equal(r.epoch, 4242);
	back.fleet_epoch = 4243; /* a new epoch alone is a change to save */
	assert_false(co_flags_equal(&back, &f));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (co_flags_parse(&back, bad[i], strlen(bad[i]), "flags.yaml") != CO_EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(co_error_last(), "fleet_epoch"));
	}
}

static void completion_round_trips_drops_the_git_mirror_and_bars_moves_back(void **state)
{
	co_flags f, back, to;
	co_route r;
	char *text = NULL, diff[256];

	(void)state;
	co_flags_init(&f);
	assert_int_equal(co_flags_set_default(&f, CO_MODE_ETCD, 0), 0);
	r = route_of(&f, CO_OP_TASK_CLAIM, "P0.1.1");
	assert_int_equal(r.secondary, CO_SIDE_GIT); /* git still kept current */
	to = f;
	co_flags_set_completed(&to, 1, "alice", "etcd for good");
	co_flags_diff(diff, sizeof(diff), &f, &to);
	assert_string_equal(diff, "completed false -> true");
	assert_false(co_flags_equal(&f, &to));
	assert_int_equal(co_flags_format(&text, &to), 0);
	assert_non_null(strstr(text, "completed: {at: \""));
	assert_int_equal(co_flags_parse(&back, text, strlen(text), "x"), 0);
	free(text);
	assert_true(co_flags_equal(&back, &to));
	assert_string_equal(back.completed.by, "alice");
	assert_string_equal(back.completed.reason, "etcd for good");

	/* etcd decides and nothing goes to git, not even through the outbox */
	r = route_of(&to, CO_OP_TASK_CLAIM, "P0.1.1");
	assert_int_equal(r.primary, CO_SIDE_ETCD);
	assert_int_equal(r.secondary, CO_SIDE_NONE);
	assert_false(r.secondary_async);

	/* moves back are the gate's "completed" refusal; staying is not */
	f = to;
	assert_int_equal(co_gate_check_completed(&to, &f), 0);
	assert_int_equal(co_flags_set(&f, CO_OP_TASK_CLAIM, CO_MODE_DUAL, 100), 0);
	assert_int_equal(co_gate_check_completed(&to, &f), CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "task_claim would go from etcd to dual"));
	assert_non_null(strstr(co_error_last(), "completed at"));
	f = to;
	co_flags_set_kill(&f, 1, "panic");
	assert_int_equal(co_gate_check_completed(&to, &f), CO_ECONFLICT);
	f = to;
	co_flags_set_completed(&f, 0, NULL, NULL);
	assert_int_equal(co_gate_check_completed(&to, &f), CO_ECONFLICT);

	expect_parse_error("completed: {by: x}\n", CO_EINVAL, "completed: missing at");
	expect_parse_error("completed: yes\n", CO_EINVAL, "completed: expected a mapping");
	expect_parse_error("completed: {at: t, when: x}\n", CO_EINVAL,
			   "completed: unknown key \"when\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(op_and_mode_names_round_trip_and_typos_are_rejected),
	    cmocka_unit_test_setup_teardown(missing_file_gives_defaults, setup_dir,
					    teardown_dir),
	    cmocka_unit_test(design_example_loads_in_flow_style),
	    cmocka_unit_test(block_style_loads_like_flow_style),
	    cmocka_unit_test(empty_and_comment_only_text_gives_defaults),
	    cmocka_unit_test(validation_errors_name_file_and_line),
	    cmocka_unit_test(malformed_yaml_reports_libyaml_problem_and_line),
	    cmocka_unit_test(overlong_kill_reason_is_too_big),
	    cmocka_unit_test_setup_teardown(load_reports_path_and_line, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(unreadable_path_is_io_error, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(save_then_load_gives_the_same_flags,
					    setup_dir, teardown_dir),
	    cmocka_unit_test(saved_text_is_stable_and_readable),
	    cmocka_unit_test_setup_teardown(
		save_is_atomic_mode_0600_and_leaves_no_temp_file, setup_dir,
		teardown_dir),
	    cmocka_unit_test_setup_teardown(
		save_into_missing_directory_fails_and_creates_nothing, setup_dir,
		teardown_dir),
	    cmocka_unit_test_setup_teardown(
		locked_read_modify_writes_from_many_processes_lose_nothing, setup_dir,
		teardown_dir),
	    cmocka_unit_test_setup_teardown(
		lock_and_saved_file_are_0600_whatever_the_umask, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(lock_of_a_dead_holder_is_free, setup_dir,
					    teardown_dir),
	    cmocka_unit_test_setup_teardown(
		a_stuck_writer_is_named_and_does_not_hold_up_the_kill_switch, setup_dir,
		teardown_dir),
	    cmocka_unit_test_setup_teardown(
		save_if_never_saves_over_a_change_made_meanwhile, setup_dir,
		teardown_dir),
	    cmocka_unit_test_setup_teardown(
		kill_switch_is_pulled_over_a_change_made_meanwhile, setup_dir,
		teardown_dir),
	    cmocka_unit_test(setters_reject_bad_values_and_change_nothing),
	    cmocka_unit_test(overlong_kill_reason_is_cut_at_a_character_boundary),
	    cmocka_unit_test(diff_names_what_changed),
	    cmocka_unit_test(route_table_per_mode),
	    cmocka_unit_test(completion_round_trips_drops_the_git_mirror_and_bars_moves_back),
	    cmocka_unit_test(fleet_epoch_round_trips_into_the_route_and_bad_values_are_refused),
	    cmocka_unit_test(kill_switch_makes_every_mode_shadow),
	    cmocka_unit_test(all_operations_agree_on_one_ids_primary),
	    cmocka_unit_test(operations_without_an_id_use_the_extremes_and_split_between),
	    cmocka_unit_test(route_rejects_unknown_operation),
	    cmocka_unit_test(etcd_primary_possible_tracks_modes_and_kill_switch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
