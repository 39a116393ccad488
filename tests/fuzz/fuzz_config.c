/*
 * fuzz_config.c - cutover.yaml (co_config_load on a file) and the
 * durations it and the environment hold (co_config_parse_duration).
 *
 * The environment is emptied of CUTOVER_* first, so that what is loaded
 * comes from the file alone.  A configuration that loads must be one the
 * rest of the program can use as it is: timeouts and intervals positive,
 * at least one etcd endpoint and each an http(s) URL, ratios in 0..1,
 * strings that are not NULL where the commands expect a value.
 */
#include "fuzz_tmpfile.h"

#include "core/config.h"
#include "core/error.h"

#include <stdint.h>

extern char **environ;

static char path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	/* unsetenv shifts environ: start over after each removal. */
	for (i = 0; environ[i];) {
		char name[256];
		const char *eq = strchr(environ[i], '=');
		size_t n = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);

		if (strncmp(environ[i], "CUTOVER_", 8) != 0 || n >= sizeof(name)) {
			i++;
			continue;
		}
		memcpy(name, environ[i], n);
		name[n] = '\0';
		unsetenv(name);
		i = 0;
	}
	fuzz_tmpfile_make(path, sizeof(path), ".yaml");
	return 0;
}

static void check_config(const co_config *c)
{
	size_t i;

	/* NULL for an empty file (nothing was taken from it). */
	if (c->path != NULL && strcmp(c->path, path) != 0)
		fuzz_fail("config path \"%s\" is not the file read", c->path);
	if (c->git_branch == NULL || c->etcd_prefix == NULL || c->state_dir == NULL ||
	    c->flags_path == NULL || c->listen == NULL)
		fuzz_fail("a required string is NULL");
	if (c->n_etcd_endpoints == 0 || c->etcd_endpoints == NULL)
		fuzz_fail("no etcd endpoint");
	for (i = 0; i < c->n_etcd_endpoints; i++)
		if (strncmp(c->etcd_endpoints[i], "http://", 7) != 0 &&
		    strncmp(c->etcd_endpoints[i], "https://", 8) != 0)
			fuzz_fail("endpoint \"%s\" is not a URL", c->etcd_endpoints[i]);
	if (c->git_poll_interval_ms <= 0 || c->etcd_connect_timeout_ms <= 0 ||
	    c->etcd_request_timeout_ms <= 0 || c->go_no_go_window_ms <= 0 ||
	    c->mirror_timeout_ms <= 0 || c->breaker_probe_ms <= 0 ||
	    c->breaker_probe_max_ms <= 0 || c->breaker_failures < 1 ||
	    c->reconcile_grace_ms < 0)
		fuzz_fail("a duration or count out of range");
	if (!(c->reconcile_min_consistency >= 0 && c->reconcile_min_consistency <= 1) ||
	    !(c->reconcile_max_mismatch_ratio >= 0 && c->reconcile_max_mismatch_ratio <= 1))
		fuzz_fail("a ratio out of 0..1");
	if (c->git_fsync != 0 && c->git_fsync != 1)
		fuzz_fail("fsync is %d", c->git_fsync);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	co_config *c = NULL;

	fuzz_tmpfile_write(path, data, size);
	if (co_config_load(&c, path) == 0) {
		check_config(c);
		co_config_free(c);
	} else if (c != NULL) {
		fuzz_fail("*out set on failure");
	}
	co_error_clear();

	/* A short input is also a duration, as on the command line. */
	if (size < 64) {
		char *s = fuzz_strndup(data, size);
		int ms = -1;

		if (co_config_parse_duration(&ms, s) == 0 && ms < 0)
			fuzz_fail("duration \"%s\" is %d ms", s, ms);
		co_error_clear();
		free(s);
	}
	return 0;
}
