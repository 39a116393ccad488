/*
 * cli_fixture.h - what the flag/stage CLI tests share: a bare git repo, a
 * state dir and an etcd prefix per test, configured by CUTOVER_* variables,
 * and a way to run the real binary with them.  Header-only (static
 * functions) so that each test program stays one file plus this.
 */
#ifndef CO_TEST_CLI_FIXTURE_H
#define CO_TEST_CLI_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FX_MAX_ARGS 32
#define FX_MAX_ENV 12

typedef struct fx {
	char repo[256];
	char state[256];
	char e_repo[300], e_state[300], e_etcd[128], e_prefix[64], e_extra[2][320];
	const char *env[FX_MAX_ENV];
} fx;

static int fx_counter;

static inline int fx_setup(fx **out, const char *endpoint)
{
	fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	if (co_test_git_repo_new(f->repo, sizeof(f->repo)) < 0 ||
	    co_test_tmpdir(f->state, sizeof(f->state)) < 0) {
		co_test_rmrf(f->repo);
		free(f);
		return -1;
	}
	snprintf(f->e_repo, sizeof(f->e_repo), "CUTOVER_GIT_REPO=%s", f->repo);
	snprintf(f->e_state, sizeof(f->e_state), "CUTOVER_STATE_DIR=%s", f->state);
	snprintf(f->e_etcd, sizeof(f->e_etcd), "CUTOVER_ETCD_ENDPOINTS=%s", endpoint);
	snprintf(f->e_prefix, sizeof(f->e_prefix), "CUTOVER_ETCD_PREFIX=/fl-%d-%d/",
		 (int)getpid(), ++fx_counter);
	f->env[0] = f->e_repo;
	f->env[1] = f->e_state;
	f->env[2] = f->e_etcd;
	f->env[3] = f->e_prefix;
	f->env[4] = "CUTOVER_CONFIG"; /* unset */
	f->env[5] = "CUTOVER_FLAGS";  /* unset: <state dir>/flags.yaml */
	f->env[6] = "CUTOVER_CLOCK_OFFSET";
	f->env[7] = "CUTOVER_GIT_POLL_INTERVAL=100ms";
	f->env[8] = "USER=tester";
	f->env[9] = NULL;
	*out = f;
	return 0;
}

static inline void fx_teardown(fx *f)
{
	if (f == NULL)
		return;
	co_test_rmrf(f->repo);
	co_test_rmrf(f->state);
	free(f);
}

/* Set an extra "K=V" (slot 0 or 1), replacing the unset entry of K if any. */
static inline void fx_setenv(fx *f, int slot, const char *kv)
{
	size_t klen = strcspn(kv, "=");
	int i;

	snprintf(f->e_extra[slot], sizeof(f->e_extra[slot]), "%s", kv);
	for (i = 0; f->env[i]; i++) {
		if (strncmp(f->env[i], kv, klen) == 0 &&
		    (f->env[i][klen] == '\0' || f->env[i][klen] == '=')) {
			f->env[i] = f->e_extra[slot];
			return;
		}
	}
	f->env[i] = f->e_extra[slot];
	f->env[i + 1] = NULL;
}

/* Run cutover ARGS (NULL-terminated); out and err (may be NULL) get malloc copies. */
static inline int fx_run_a(fx *f, char **out, char **err, const char *const *args)
{
	char *o = NULL, *e = NULL;
	int rc = co_test_cutover(&o, &e, f->env, args);

	assert_non_null(o);
	assert_non_null(e);
	if (out)
		*out = o;
	else
		free(o);
	if (err)
		*err = e;
	else
		free(e);
	return rc;
}

#define fx_run(f, out, err, ...)                                                         \
	fx_run_a((f), (out), (err), (const char *[]){__VA_ARGS__, NULL})

/* Expect exit `want`, else fail showing what the command said. */
#define fx_expect(want, f, ...)                                                          \
	do {                                                                             \
		char *eo_, *ee_;                                                         \
		int rc_ = fx_run((f), &eo_, &ee_, __VA_ARGS__);                          \
		if (rc_ != (want))                                                       \
			fail_msg("line %d: exit %d, wanted %d; stdout: %s stderr: %s",   \
				 __LINE__, rc_, (want), eo_, ee_);                       \
		free(eo_);                                                               \
		free(ee_);                                                               \
	} while (0)

/* Fail unless `hay` contains `needle`. */
#define fx_contains(hay, needle)                                                         \
	do {                                                                             \
		if (strstr((hay), (needle)) == NULL)                                     \
			fail_msg("line %d: \"%s\" lacks \"%s\"", __LINE__, (hay),        \
				 (needle));                                              \
	} while (0)

#endif
