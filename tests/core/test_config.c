/*
 * test_config.c - cutover.yaml and the CUTOVER_* environment: defaults, file
 * values, environment over file, durations, and every kind of bad file
 * named by file, line and key.
 *
 * Each test writes its YAML to a fresh temp file and clears every CUTOVER_*
 * variable it may set, before and after, so that tests neither see the
 * caller's environment nor leak into each other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/config_internal.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const env_vars[] = {
    "CUTOVER_CONFIG",
    "CUTOVER_GIT_REPO",
    "CUTOVER_GIT_BRANCH",
    "CUTOVER_GIT_POLL_INTERVAL",
    "CUTOVER_GIT_REMOTE_TIMEOUT",
    "CUTOVER_ETCD_ENDPOINTS",
    "CUTOVER_ETCD_PREFIX",
    "CUTOVER_ETCD_USER",
    "CUTOVER_ETCD_PASSWORD",
    "CUTOVER_ETCD_CONNECT_TIMEOUT",
    "CUTOVER_ETCD_REQUEST_TIMEOUT",
    "CUTOVER_FLAGS",
    "CUTOVER_STATE_DIR",
    "CUTOVER_LISTEN",
    "CUTOVER_ADMIN_TOKEN_FILE",
    "CUTOVER_MIRROR_TIMEOUT",
    "CUTOVER_SWARM_AUTH",
    "CUTOVER_QUEUE_DEADLINE",
    "CUTOVER_RECONCILE_INTERVAL",
};

typedef struct fixture {
	char dir[64];
	char path[128];
} fixture;

static void clear_env(void)
{
	size_t i;

	for (i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
		unsetenv(env_vars[i]);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/cutover-test-config-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/cutover.yaml", f->dir);
	clear_env();
	/* co_config_load looks for ./cutover.yaml: work where there is none. */
	if (chdir(f->dir) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	clear_env();
	if (chdir("/tmp") < 0)
		return -1;
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_file(const fixture *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Load `text` and expect CO_EINVAL whose message contains every `want`. */
static void expect_error(const fixture *f, const char *text, const char *line,
			 const char *key, const char *what)
{
	co_config *c = NULL;
	char prefix[256];

	write_file(f, text);
	assert_int_equal(co_config_load(&c, f->path), CO_EINVAL);
	assert_null(c);
	snprintf(prefix, sizeof(prefix), "%s:%s: ", f->path, line);
	if (strncmp(co_error_last(), prefix, strlen(prefix)) != 0)
		fail_msg("message \"%s\" does not start with \"%s\"", co_error_last(),
			 prefix);
	if (key) {
		char k[128];

		snprintf(k, sizeof(k), "key \"%s\"", key);
		if (strstr(co_error_last(), k) == NULL)
			fail_msg("message \"%s\" does not name %s", co_error_last(), k);
	}
	if (strstr(co_error_last(), what) == NULL)
		fail_msg("message \"%s\" does not say \"%s\"", co_error_last(), what);
}

static void defaults_match_the_design(void **state)
{
	co_config *c = NULL;

	(void)state;
	assert_int_equal(co_config_load(&c, NULL), 0);
	assert_null(c->path);
	assert_null(c->git_repo);
	assert_string_equal(c->git_branch, "main");
	assert_int_equal(c->git_poll_interval_ms, 30000);
	assert_int_equal(c->git_fsync, 1);
	assert_int_equal(c->git_remote_timeout_ms, 3000);
	assert_int_equal(c->n_etcd_endpoints, 1);
	assert_string_equal(c->etcd_endpoints[0], "http://127.0.0.1:2379");
	assert_string_equal(c->etcd_prefix, "/");
	assert_null(c->etcd_user);
	assert_int_equal(c->etcd_connect_timeout_ms, 1000);
	assert_int_equal(c->etcd_request_timeout_ms, 5000);
	assert_string_equal(c->state_dir, "./.cutover");
	assert_string_equal(c->flags_path, "./.cutover/flags.yaml");
	assert_string_equal(c->listen, "127.0.0.1:7480");
	assert_null(c->admin_token_file);
	assert_true(c->reconcile_min_consistency == 0.9999);
	assert_true(c->reconcile_max_mismatch_ratio == 0.001);
	assert_int_equal(c->reconcile_grace_ms, 2000);
	assert_int_equal(c->go_no_go_window_ms, 3600 * 1000);
	co_config_free(c);

	assert_int_equal(co_config_defaults(&c), 0);
	assert_string_equal(c->flags_path, "./.cutover/flags.yaml");
	co_config_free(c);
}

static void file_values_are_read(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	write_file(f, "# a full file\n"
		      "git:\n"
		      "  repo: /srv/tasks.git\n"
		      "  branch: trunk\n"
		      "  poll_interval: 250ms\n"
		      "  fsync: false\n"
		      "  remote_timeout: 1500ms\n"
		      "etcd:\n"
		      "  endpoints: [http://10.0.0.1:2379, \"https://10.0.0.2:2379\"]\n"
		      "  prefix: /cutover/\n"
		      "  user: root\n"
		      "  password: secret\n"
		      "  ca_file: /etc/ca.pem\n"
		      "  connect_timeout: 2s\n"
		      "  request_timeout: 1m\n"
		      "state_dir: /var/lib/cutover\n"
		      "listen: 0.0.0.0:9000\n"
		      "admin_token_file: /etc/cutover/token\n"
		      "reconcile:\n"
		      "  min_consistency: 0.99\n"
		      "  max_mismatch_ratio: 0.01\n"
		      "  grace: 0\n"
		      "  go_no_go_window: 2h\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_string_equal(c->path, f->path);
	assert_string_equal(c->git_repo, "/srv/tasks.git");
	assert_string_equal(c->git_branch, "trunk");
	assert_int_equal(c->git_poll_interval_ms, 250);
	assert_int_equal(c->git_fsync, 0);
	assert_int_equal(c->git_remote_timeout_ms, 1500);
	assert_int_equal(c->n_etcd_endpoints, 2);
	assert_string_equal(c->etcd_endpoints[0], "http://10.0.0.1:2379");
	assert_string_equal(c->etcd_endpoints[1], "https://10.0.0.2:2379");
	assert_string_equal(c->etcd_prefix, "/cutover/");
	assert_string_equal(c->etcd_user, "root");
	assert_string_equal(c->etcd_password, "secret");
	assert_string_equal(c->etcd_ca_file, "/etc/ca.pem");
	assert_int_equal(c->etcd_connect_timeout_ms, 2000);
	assert_int_equal(c->etcd_request_timeout_ms, 60000);
	assert_string_equal(c->state_dir, "/var/lib/cutover");
	/* The flags file follows the state dir when not given. */
	assert_string_equal(c->flags_path, "/var/lib/cutover/flags.yaml");
	assert_string_equal(c->listen, "0.0.0.0:9000");
	assert_string_equal(c->admin_token_file, "/etc/cutover/token");
	assert_true(c->reconcile_min_consistency == 0.99);
	assert_true(c->reconcile_max_mismatch_ratio == 0.01);
	assert_int_equal(c->reconcile_grace_ms, 0);
	assert_int_equal(c->go_no_go_window_ms, 2 * 3600 * 1000);
	co_config_free(c);
}

static void empty_file_gives_defaults(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	write_file(f, "# nothing configured yet\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_string_equal(c->git_branch, "main");
	assert_int_equal(c->n_etcd_endpoints, 1);
	co_config_free(c);
}

static void endpoints_may_be_one_comma_separated_string(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	write_file(f, "etcd:\n  endpoints: http://a:1,http://b:2\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(c->n_etcd_endpoints, 2);
	assert_string_equal(c->etcd_endpoints[1], "http://b:2");
	co_config_free(c);
}

static void environment_overrides_file(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	write_file(f, "git: { repo: /from/file.git, branch: filebranch }\n"
		      "etcd: { endpoints: [http://file:2379], prefix: /file/ }\n"
		      "state_dir: /file/state\n"
		      "flags: /file/flags.yaml\n"
		      "listen: 127.0.0.1:1\n");
	setenv("CUTOVER_GIT_REPO", "/from/env.git", 1);
	setenv("CUTOVER_GIT_BRANCH", "envbranch", 1);
	setenv("CUTOVER_ETCD_ENDPOINTS", "http://e1:2379,https://e2:2379,http://e3:2379",
	       1);
	setenv("CUTOVER_ETCD_PREFIX", "/env/", 1);
	setenv("CUTOVER_ETCD_USER", "envuser", 1);
	setenv("CUTOVER_ETCD_PASSWORD", "envpass", 1);
	setenv("CUTOVER_FLAGS", "/env/flags.yaml", 1);
	setenv("CUTOVER_STATE_DIR", "/env/state", 1);
	setenv("CUTOVER_LISTEN", "127.0.0.1:2", 1);
	setenv("CUTOVER_ADMIN_TOKEN_FILE", "/env/token", 1);
	setenv("CUTOVER_GIT_POLL_INTERVAL", "100ms", 1);
	setenv("CUTOVER_GIT_REMOTE_TIMEOUT", "7s", 1);
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_string_equal(c->git_repo, "/from/env.git");
	assert_string_equal(c->git_branch, "envbranch");
	assert_int_equal(c->n_etcd_endpoints, 3);
	assert_string_equal(c->etcd_endpoints[0], "http://e1:2379");
	assert_string_equal(c->etcd_endpoints[1], "https://e2:2379");
	assert_string_equal(c->etcd_endpoints[2], "http://e3:2379");
	assert_string_equal(c->etcd_prefix, "/env/");
	assert_string_equal(c->etcd_user, "envuser");
	assert_string_equal(c->etcd_password, "envpass");
	assert_string_equal(c->flags_path, "/env/flags.yaml");
	assert_string_equal(c->state_dir, "/env/state");
	assert_string_equal(c->listen, "127.0.0.1:2");
	assert_string_equal(c->admin_token_file, "/env/token");
	assert_int_equal(c->git_poll_interval_ms, 100);
	assert_int_equal(c->git_remote_timeout_ms, 7000);
	co_config_free(c);
}

static void environment_alone_works_and_flags_follow_state_dir(void **state)
{
	co_config *c = NULL;

	(void)state;
	setenv("CUTOVER_GIT_REPO", "/env/only.git", 1);
	setenv("CUTOVER_STATE_DIR", "/env/state/", 1);
	assert_int_equal(co_config_load(&c, NULL), 0);
	assert_null(c->path);
	assert_string_equal(c->git_repo, "/env/only.git");
	assert_string_equal(c->flags_path, "/env/state/flags.yaml");
	co_config_free(c);
}

static void cutover_config_variable_names_the_file(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	write_file(f, "listen: 127.0.0.1:4242\n");
	setenv("CUTOVER_CONFIG", f->path, 1);
	assert_int_equal(co_config_load(&c, NULL), 0);
	assert_string_equal(c->listen, "127.0.0.1:4242");
	co_config_free(c);
}

static void cutover_yaml_in_working_directory_is_read(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	/* setup() made the fixture dir the working directory. */
	write_file(f, "listen: 127.0.0.1:4343\n");
	assert_int_equal(co_config_load(&c, NULL), 0);
	assert_string_equal(c->listen, "127.0.0.1:4343");
	assert_string_equal(c->path, "cutover.yaml");
	co_config_free(c);
}

static void bad_endpoint_in_environment_is_refused(void **state)
{
	co_config *c = NULL;

	(void)state;
	setenv("CUTOVER_ETCD_ENDPOINTS", "http://ok:2379,127.0.0.1:2379", 1);
	assert_int_equal(co_config_load(&c, NULL), CO_EINVAL);
	assert_null(c);
	assert_non_null(strstr(co_error_last(), "CUTOVER_ETCD_ENDPOINTS"));
	assert_non_null(strstr(co_error_last(), "\"127.0.0.1:2379\""));
	assert_non_null(strstr(co_error_last(), "http:// or https://"));
}

/* serve.swarm_auth: none by default, token from the file, the env wins,
 * anything else refused naming the key or the variable (issue 22). */
static void swarm_auth_from_file_and_environment(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	write_file(f, "serve:\n  swarm_auth: token\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(c->swarm_auth, CO_SWARM_AUTH_TOKEN);
	co_config_free(c);
	setenv("CUTOVER_SWARM_AUTH", "none", 1);
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(c->swarm_auth, CO_SWARM_AUTH_NONE);
	co_config_free(c);
	c = NULL;
	setenv("CUTOVER_SWARM_AUTH", "tokens", 1);
	assert_int_equal(co_config_load(&c, f->path), CO_EINVAL);
	assert_null(c);
	assert_non_null(strstr(co_error_last(), "CUTOVER_SWARM_AUTH: \"tokens\""));
	unsetenv("CUTOVER_SWARM_AUTH");
	expect_error(f, "serve:\n  swarm_auth: open\n", "2", "serve.swarm_auth",
		     "is not none or token");
}

/* serve's limits and TLS files (issue 16): 0 / NULL until set, bad values
 * refused naming the key. */
static void serve_limits_and_tls_from_file(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	assert_int_equal(co_config_defaults(&c), 0);
	assert_null(c->serve_tls_cert);
	assert_int_equal(c->serve_max_inflight, 0);
	co_config_free(c);
	write_file(f, "serve:\n  tls_cert: /etc/c.pem\n  tls_key: /etc/k.pem\n"
		      "  request_timeout: 3s\n  max_connections: 100\n"
		      "  max_connections_per_ip: 10\n  max_inflight: 20\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_string_equal(c->serve_tls_cert, "/etc/c.pem");
	assert_string_equal(c->serve_tls_key, "/etc/k.pem");
	assert_int_equal(c->serve_request_timeout_ms, 3000);
	assert_int_equal(c->serve_max_connections, 100);
	assert_int_equal(c->serve_max_connections_per_ip, 10);
	assert_int_equal(c->serve_max_inflight, 20);
	co_config_free(c);
	expect_error(f, "serve:\n  max_inflight: 0\n", "2", "serve.max_inflight",
		     "out of range");
	expect_error(f, "serve:\n  request_timeout: 0s\n", "2", "serve.request_timeout",
		     "must be more than 0");
}

/* serve.queue_deadline: off (0) by default, from the file, from the
 * environment over the file, "0"/"off" turning it off; a bad value named. */
static void serve_queue_deadline_from_file_and_env(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	assert_int_equal(co_config_defaults(&c), 0);
	assert_int_equal(c->serve_queue_deadline_ms, 0);
	co_config_free(c);
	write_file(f, "serve:\n  queue_deadline: 2s\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(c->serve_queue_deadline_ms, 2000);
	co_config_free(c);
	setenv("CUTOVER_QUEUE_DEADLINE", "250ms", 1);
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(c->serve_queue_deadline_ms, 250);
	co_config_free(c);
	setenv("CUTOVER_QUEUE_DEADLINE", "off", 1);
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(c->serve_queue_deadline_ms, 0);
	co_config_free(c);
	setenv("CUTOVER_QUEUE_DEADLINE", "soon", 1);
	c = NULL;
	assert_int_equal(co_config_load(&c, f->path), CO_EINVAL);
	assert_null(c);
	assert_non_null(strstr(co_error_last(), "CUTOVER_QUEUE_DEADLINE"));
	unsetenv("CUTOVER_QUEUE_DEADLINE");
	expect_error(f, "serve:\n  queue_deadline: soon\n", "2", "serve.queue_deadline",
		     "");
}

static void named_file_must_exist(void **state)
{
	fixture *f = *state;
	co_config *c = NULL;

	assert_int_equal(co_config_load(&c, f->path), CO_EINVAL);
	assert_null(c);
	assert_non_null(strstr(co_error_last(), f->path));
	assert_non_null(strstr(co_error_last(), "no such config file"));
}

static void unknown_key_names_file_line_and_key(void **state)
{
	expect_error(*state, "git:\n  repo: /x\n  polling: 5s\n", "3", "git.polling",
		     "unknown key");
	expect_error(*state, "listen: x\netcd_endpoint: http://x:1\n", "2",
		     "etcd_endpoint", "unknown key");
}

static void wrong_type_names_file_line_and_key(void **state)
{
	expect_error(*state, "etcd:\n  prefix: [a, b]\n", "2", "etcd.prefix",
		     "expected a string");
	expect_error(*state, "git: main\n", "1", "git", "expected a mapping");
	expect_error(*state, "git:\n  fsync: maybe\n", "2", "git.fsync", "true or false");
	expect_error(*state, "etcd:\n  endpoints: {a: b}\n", "2", "etcd.endpoints",
		     "expected a string");
}

static void bad_duration_names_file_line_and_key(void **state)
{
	expect_error(*state, "# c\n\ngit:\n  poll_interval: 5 minutes\n", "4",
		     "git.poll_interval", "bad duration \"5 minutes\"");
	expect_error(*state, "reconcile:\n  grace: -2s\n", "2", "reconcile.grace",
		     "bad duration");
	expect_error(*state, "etcd:\n  request_timeout: 0\n", "2", "etcd.request_timeout",
		     "more than 0");
}

static void bad_number_names_file_line_and_key(void **state)
{
	expect_error(*state, "reconcile:\n  min_consistency: high\n", "2",
		     "reconcile.min_consistency", "bad number \"high\"");
	expect_error(*state, "reconcile:\n  max_mismatch_ratio: 1.5\n", "2",
		     "reconcile.max_mismatch_ratio", "between 0 and 1");
}

/* The mirror deadline and the breaker: defaults, file, environment, and
 * bad values named with their line and key. */
static void router_and_breaker_keys_are_read_and_checked(void **state)
{
	const fixture *f = *state;
	co_config *c = NULL;

	assert_int_equal(co_config_load(&c, NULL), 0);
	assert_int_equal(c->mirror_timeout_ms, 250);
	assert_int_equal(c->breaker_failures, 3);
	assert_int_equal(c->breaker_probe_ms, 1000);
	assert_int_equal(c->breaker_probe_max_ms, 2000);
	co_config_free(c);
	write_file(f, "router:\n  mirror_timeout: 100ms\nbreaker:\n  failures: 5\n"
		      "  probe: 500ms\n  probe_max: 10s\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(c->mirror_timeout_ms, 100);
	assert_int_equal(c->breaker_failures, 5);
	assert_int_equal(c->breaker_probe_ms, 500);
	assert_int_equal(c->breaker_probe_max_ms, 10000);
	co_config_free(c);
	setenv("CUTOVER_MIRROR_TIMEOUT", "40ms", 1);
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(c->mirror_timeout_ms, 40);
	co_config_free(c);
	expect_error(f, "breaker:\n  failures: 0\n", "2", "breaker.failures",
		     "must be from 1 to 1000");
	expect_error(f, "breaker:\n  failures: three\n", "2", "breaker.failures",
		     "bad whole number");
	expect_error(f, "router:\n  mirror_timeout: 0\n", "2", "router.mirror_timeout",
		     "more than 0");
	expect_error(f, "router:\n  deadline: 1s\n", "2", "router.deadline",
		     "known here: mirror_timeout");
}

/* A value each type of key refuses, and what its error says (numbers:
 * set by bad_value_of from the key's kind and bounds). */
static const struct {
	co_config__type type;
	const char *value, *what;
} bad_values[] = {
    {CO_CONFIG__STRING, "[a, b]", "expected a string, got a list"},
    {CO_CONFIG__STRING_OPT, "[a, b]", "expected a string, got a list"},
    {CO_CONFIG__BOOL, "maybe", "expected true or false, got \"maybe\""},
    {CO_CONFIG__DURATION, "5x", "bad duration \"5x\""},
    {CO_CONFIG__DURATION_POS, "0", "must be more than 0"},
    {CO_CONFIG__WINDOW, "1500ms", "must be whole seconds from 1s to 1h"},
    {CO_CONFIG__SWARM_AUTH, "maybe", "\"maybe\" is not none or token"},
    {CO_CONFIG__ENDPOINTS, "ftp://x", "must start with http:// or https://"},
    /* each shape words the rest its own way */
    {CO_CONFIG__SHAPED, "42", "got a scalar"},
    {CO_CONFIG__SECTION, "[1]", "expected a mapping, got a list"},
};

static int bad_value_of(char *val, size_t len, const char **what,
			const co_config__key *k, int out_of_bounds)
{
	size_t i;

	if (k->type == CO_CONFIG__INT || k->type == CO_CONFIG__DOUBLE) {
		if (out_of_bounds) {
			snprintf(val, len, "%.0f", k->num.max + 1);
			*what = k->num.kind == CO_CONFIG__PERCENT ? "bad percent" : "out of range";
			return 1;
		}
		snprintf(val, len, "x1");
		*what = k->num.kind == CO_CONFIG__PERCENT ? "bad percent \"x1\""
			: k->num.kind == CO_CONFIG__COUNT ? "bad whole number \"x1\""
							  : "bad number \"x1\"";
		return 1;
	}
	for (i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
		if (bad_values[i].type == k->type) {
			snprintf(val, len, "%s", bad_values[i].value);
			*what = bad_values[i].what;
			return 1;
		}
	}
	return 0; /* a type this test does not know: add it above */
}

/* Every line of the key table: a bad value of its type (and, for a number,
 * one out of its bounds) is refused naming the file, the line and the
 * dotted key, and nothing is loaded. */
static void every_key_refuses_a_bad_value_by_file_line_and_key(void **state)
{
	const co_config__key *k;
	size_t keys = 0;
	int oob;

	for (k = co_config__keys; k->name; k++) {
		for (oob = 0; oob < 2; oob++) {
			char val[64], text[256], full[128];
			const char *what = NULL;

			if (oob && k->type != CO_CONFIG__INT && k->type != CO_CONFIG__DOUBLE)
				continue;
			assert_true(bad_value_of(val, sizeof(val), &what, k, oob));
			if (*k->section)
				snprintf(text, sizeof(text), "# a\n%s:\n  %s: %s\n", k->section,
					 k->name, val);
			else
				snprintf(text, sizeof(text), "# a\n%s: %s\n", k->name, val);
			snprintf(full, sizeof(full), "%s%s%s", k->section,
				 *k->section ? "." : "", k->name);
			expect_error(*state, text, *k->section ? "3" : "2", full, what);
		}
		keys++;
	}
	assert_true(keys > 50);
}

/* Every variable the table names is cleared by these tests, and a bad
 * duration in one is refused naming the variable. */
static void every_variable_of_the_table_is_known_and_checked(void **state)
{
	const co_config__key *k;
	co_config *c = NULL;
	size_t i;

	(void)state;
	for (k = co_config__keys; k->name; k++) {
		int known = 0;

		if (k->env == NULL)
			continue;
		for (i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
			known |= strcmp(env_vars[i], k->env) == 0;
		if (!known)
			fail_msg("%s is not in this test's env_vars", k->env);
		if (k->type != CO_CONFIG__DURATION && k->type != CO_CONFIG__DURATION_POS)
			continue;
		setenv(k->env, "5x", 1);
		assert_int_equal(co_config_load(&c, NULL), CO_EINVAL);
		assert_null(c);
		if (strncmp(co_error_last(), k->env, strlen(k->env)) != 0 ||
		    strstr(co_error_last(), "bad duration \"5x\"") == NULL)
			fail_msg("%s=5x: \"%s\"", k->env, co_error_last());
		unsetenv(k->env);
	}
}

static void bad_endpoint_names_file_line_and_key(void **state)
{
	expect_error(*state, "etcd:\n  endpoints:\n    - http://ok:1\n    - ok:2\n", "4",
		     "etcd.endpoints", "must start with http:// or https://");
}

static void duplicate_key_is_refused(void **state)
{
	expect_error(*state, "listen: a:1\nlisten: b:2\n", "2", "listen",
		     "duplicate key");
}

static void empty_required_value_is_refused(void **state)
{
	expect_error(*state, "git:\n  branch:\n", "2", "git.branch", "must not be empty");
}

static void malformed_yaml_names_file_and_line(void **state)
{
	expect_error(*state, "git:\n  repo: /x\n branch: [unclosed\n", "3", NULL,
		     "malformed YAML");
	expect_error(*state, "listen: \"unterminated\n", "2", NULL, "malformed YAML");
}

static void top_level_must_be_a_mapping(void **state)
{
	expect_error(*state, "- a\n- b\n", "1", NULL, "expected a mapping at the top");
}

/* redact: absent gives the default patterns; a list replaces them. */
static void redact_list_is_read_and_replaces_the_defaults(void **state)
{
	const fixture *f = *state;
	co_config *c = NULL;

	write_file(f, "listen: 127.0.0.1:1\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_non_null(c->redact);
	assert_int_equal(co_redact_matches(c->redact, "metadata.api_token", NULL), 1);
	assert_int_equal(co_redact_matches(c->redact, "metadata.Password", NULL), 1);
	assert_int_equal(co_redact_matches(c->redact, "metadata.colour", NULL), 0);
	co_config_free(c);
	c = NULL;

	write_file(f, "redact:\n  - metadata.auth.key\n  - session\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(co_redact_count(c->redact), 2);
	assert_int_equal(co_redact_matches(c->redact, "metadata.auth.key", NULL), 1);
	assert_int_equal(co_redact_matches(c->redact, "metadata.x.SessionId", NULL), 1);
	/* The defaults were replaced, not extended. */
	assert_int_equal(co_redact_matches(c->redact, "metadata.api_token", NULL), 0);
	co_config_free(c);
	c = NULL;

	write_file(f, "redact: [metadata.auth.key, \"@defaults\"]\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(co_redact_matches(c->redact, "metadata.auth.key", NULL), 1);
	assert_int_equal(co_redact_matches(c->redact, "metadata.api_token", NULL), 1);
	co_config_free(c);
	c = NULL;

	write_file(f, "redact: []\n");
	assert_int_equal(co_config_load(&c, f->path), 0);
	assert_int_equal(co_redact_count(c->redact), 0);
	co_config_free(c);
}

static void malformed_redact_names_file_line_and_key(void **state)
{
	expect_error(*state, "listen: a:1\nredact: token\n", "2", "redact",
		     "expected a list");
	expect_error(*state, "redact:\n  auth: key\n", "2", "redact", "expected a list");
	expect_error(*state, "redact:\n  - token\n  - [a, b]\n", "3", "redact",
		     "expected a string");
	expect_error(*state, "redact:\n  - metadata..key\n", "2", "redact",
		     "empty segment");
	expect_error(*state, "redact:\n  - token\n  - \"@all\"\n", "3", "redact",
		     "unknown");
	expect_error(*state, "redact:\n  - token\n - [oops\n", "3", NULL,
		     "malformed YAML");
}

static void durations_parse(void **state)
{
	int ms = -1;

	(void)state;
	assert_int_equal(co_config_parse_duration(&ms, "250ms"), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(co_config_parse_duration(&ms, "2s"), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(co_config_parse_duration(&ms, "5m"), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(co_config_parse_duration(&ms, "1h"), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(co_config_parse_duration(&ms, "3"), 0);
	assert_int_equal(ms, 3000);
	assert_int_equal(co_config_parse_duration(&ms, "1.5s"), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(co_config_parse_duration(&ms, "0"), 0);
	assert_int_equal(ms, 0);
}

static void bad_durations_are_refused(void **state)
{
	static const char *bad[] = {"",	   "s",	  "5x",	  "-1s", "1.2.3s", " 5s",   "5 s",
				    "inf", "nan", "0x10", "1e3", "5sec",   "10000h"};
	size_t i;
	int ms = 42;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (co_config_parse_duration(&ms, bad[i]) != CO_EINVAL)
			fail_msg("duration \"%s\" was accepted", bad[i]);
		assert_int_equal(ms, 42);
	}
	assert_int_equal(co_config_parse_duration(&ms, NULL), CO_EINVAL);
}

static void free_accepts_null(void **state)
{
	(void)state;
	co_config_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(defaults_match_the_design, setup, teardown),
	    cmocka_unit_test_setup_teardown(file_values_are_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(empty_file_gives_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(endpoints_may_be_one_comma_separated_string,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(environment_overrides_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		environment_alone_works_and_flags_follow_state_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(cutover_config_variable_names_the_file, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(cutover_yaml_in_working_directory_is_read,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_endpoint_in_environment_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(swarm_auth_from_file_and_environment, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(serve_queue_deadline_from_file_and_env, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(serve_limits_and_tls_from_file, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(named_file_must_exist, setup, teardown),
	    cmocka_unit_test_setup_teardown(unknown_key_names_file_line_and_key, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(wrong_type_names_file_line_and_key, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(bad_duration_names_file_line_and_key, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(bad_number_names_file_line_and_key, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(router_and_breaker_keys_are_read_and_checked,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(every_key_refuses_a_bad_value_by_file_line_and_key,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(every_variable_of_the_table_is_known_and_checked,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(bad_endpoint_names_file_line_and_key, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(duplicate_key_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(empty_required_value_is_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(malformed_yaml_names_file_and_line, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(top_level_must_be_a_mapping, setup, teardown),
	    cmocka_unit_test_setup_teardown(redact_list_is_read_and_replaces_the_defaults,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(malformed_redact_names_file_line_and_key,
					    setup, teardown),
	    cmocka_unit_test(durations_parse),
	    cmocka_unit_test(bad_durations_are_refused),
	    cmocka_unit_test(free_accepts_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
