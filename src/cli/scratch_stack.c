/*
 * scratch_stack.c - the throw-away stack of `cutover demo` and `cutover
 * drill` (scratch_stack.h): temp dir, local etcd, bare git repo, state,
 * flags watcher and router; the gated stage move and the reconciliation
 * both commands run on it.
 */
#include "scratch_stack.h"

#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "../store/git_store.h"
#include "flags/flags.h"
#include "flags/watcher.h"
#include "router/router.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ETCD_READY_MS 15000
#define ETCD_ATTEMPTS 3
#define GO_NO_GO_WINDOW_MS 60000

int64_t co_scratch_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void co_scratch_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int co_scratch_mkdirs(const char *path)
{
	char buf[4096];
	size_t i, len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return co_error_set(CO_EINVAL, "%s: bad directory name", path);
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return co_error_set(CO_EIO, "%s: %s", buf, strerror(errno));
		buf[i] = i < len ? '/' : '\0';
	}
	return 0;
}

static int unlink_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rmrf(const char *path)
{
	if (path && path[0])
		nftw(path, unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Run argv (PATH lookup) with stdout/stderr appended to `log`; exit status or -1. */
static int run_program(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status = -1, rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND,
					 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Start etcd in the temp dir and wait until it serves a linearizable read
 * through the etcd store (a leader exists); *cancel gives up.  etcd runs in
 * its own process group, so that ^C reaches only us, and we stop it in order.
 */
static int etcd_start(co_scratch *s, const co_scratch_opts *so)
{
	co_etcd_local_opts o = CO_ETCD_LOCAL_OPTS_INIT;
	int64_t t0 = co_scratch_mono_us();
	int error;

	o.dir = s->tmp;
	o.data_name = "etcd-data";
	o.name = so->etcd_name ? so->etcd_name : "scratch";
	o.ready = CO_ETCD_LOCAL_READY_STORE_PING;
	o.ready_timeout_ms = ETCD_READY_MS;
	o.attempts = ETCD_ATTEMPTS;
	o.own_process_group = 1;
	o.cancel = so->cancel;
	if ((error = co_etcd_local_start(&s->etcd, &o)) < 0)
		return error;
	s->etcd_ready_us = co_scratch_mono_us() - t0;
	return 0;
}

int co_scratch_open(co_scratch *s, const co_scratch_opts *o)
{
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_router_opts rto = CO_ROUTER_OPTS_INIT;
	char *git_argv[] = {"git", "init", "--bare", "-q", "-b", "main", s->repo, NULL};
	const char *tmpbase = getenv("TMPDIR");
	int error;

	memset(s, 0, sizeof(*s));
	s->eo = eo;
	if (!tmpbase || !tmpbase[0] || strlen(tmpbase) > 900)
		tmpbase = "/tmp";
	snprintf(s->tmp, sizeof(s->tmp), "%s/%s-XXXXXX", tmpbase,
		 o->tmp_prefix ? o->tmp_prefix : "cutover-scratch");
	if (mkdtemp(s->tmp) == NULL) {
		error = co_error_set(CO_EIO, "mkdtemp %s: %s", s->tmp, strerror(errno));
		s->tmp[0] = '\0';
		return error;
	}
	snprintf(s->repo, sizeof(s->repo), "%s/tasks.git", s->tmp);
	snprintf(s->state_dir, sizeof(s->state_dir), "%s/state", s->tmp);
	snprintf(s->flags_path, sizeof(s->flags_path), "%s/state/flags.yaml", s->tmp);
	snprintf(s->git_log, sizeof(s->git_log), "%s/git.log", s->tmp);

	if ((error = etcd_start(s, o)) < 0)
		return error;
	if (run_program(git_argv, s->git_log) != 0)
		return co_error_set(CO_EUNAVAIL,
				    "git init --bare %s failed (is `git` in "
				    "PATH?); see %s",
				    s->repo, s->git_log);
	go.repo = s->repo;
	go.branch = "main";
	if ((error = co_git_store_open(&s->git, &go)) < 0)
		return error;
	s->eps[0] = s->etcd.endpoint;
	s->eo.endpoints = s->eps;
	s->eo.n_endpoints = 1;
	if (o->etcd_request_timeout_ms > 0)
		s->eo.request_timeout_ms = o->etcd_request_timeout_ms;
	if ((error = co_etcd_store_open(&s->etcd_store, &s->eo)) < 0)
		return error;
	if ((error = co_state_open(&s->st, s->state_dir)) < 0 ||
	    (error = co_flags_watcher_open(&s->fw, s->flags_path)) < 0)
		return error;
	rto.git = s->git;
	rto.etcd = s->etcd_store;
	rto.state = s->st;
	rto.flags = s->fw;
	rto.background_drain = 1;
	rto.triggers = o->triggers;
	return co_router_open(&s->router, &rto);
}

void co_scratch_close(co_scratch *s, int keep)
{
	int64_t left = 0;

	if (s->router) {
		co_router_drain(s->router, NULL, 2000, &left);
		co_router_close(s->router);
	}
	co_flags_watcher_close(s->fw);
	co_state_close(s->st);
	co_store_free(s->etcd_store);
	co_store_free(s->git);
	s->router = NULL;
	s->fw = NULL;
	s->st = NULL;
	s->etcd_store = s->git = NULL;
	if (s->etcd.pid > 0) {
		kill(s->etcd.pid, SIGCONT); /* our own etcd, maybe stopped by a drill */
		co_etcd_local_stop(&s->etcd);
	}
	if (s->tmp[0] && !keep) {
		rmrf(s->tmp);
		s->tmp[0] = '\0';
	}
}

void co_scratch_migrate_opts(co_migrate_opts *mo, const co_scratch *s)
{
	co_migrate_opts init = CO_MIGRATE_OPTS_INIT;

	*mo = init;
	mo->git_repo = s->repo;
	mo->etcd = &s->eo;
	mo->state_dir = s->state_dir;
}

int co_scratch_stage(co_scratch_move *m, co_scratch *s, co_stage stage, const char *who)
{
	co_flags before, after;
	co_run *run = NULL;
	char diff[512], why[96];
	uint64_t gen;
	int64_t t0;
	int error;

	memset(m, 0, sizeof(*m));
	if ((error = co_flags_load(&before, s->flags_path)) < 0)
		return error;
	after = before;
	if ((error = co_stage_apply(&after, stage)) < 0)
		return error;
	if (co_stage_is_forward(&before, &after)) {
		error = co_runs_latest_passed_within(&run, s->st, GO_NO_GO_WINDOW_MS,
						     co_state_now_ms());
		if (error == CO_ECONFLICT || error == CO_ENOTFOUND) {
			snprintf(m->gate, sizeof(m->gate), "NO-GO: %s", co_error_last());
			return 0;
		}
		if (error < 0)
			return error;
		snprintf(
		    m->gate, sizeof(m->gate),
		    "go: run %lld passed %.1f s ago (window %d s)", (long long)run->id,
		    (double)(co_state_now_ms() - run->started_at - run->duration_ms) /
			1000.0,
		    GO_NO_GO_WINDOW_MS / 1000);
		co_run_free(run);
	}
	co_flags_stamp(&after, who, NULL);
	gen = co_flags_watcher_generation(s->fw);
	t0 = co_scratch_mono_us();
	if ((error = co_flags_save(&after, s->flags_path)) < 0)
		return error;
	co_flags_diff(diff, sizeof(diff), &before, &after);
	snprintf(why, sizeof(why), "cutover %s", who);
	if ((error = co_audit_change_add(s->st, who, "stage", diff, why)) < 0)
		return error;
	/* The audit row has the full diff; a human wants the stage. */
	snprintf(diff, 128, "stage %s -> %s (every operation), file saved",
		 co_stage_name(co_stage_of(&before)), co_stage_name(stage));
	if (co_flags_watcher_wait(s->fw, gen, 2000) == 0)
		snprintf(m->flags, sizeof(m->flags),
			 "%s; the router reloaded it in %.1f ms", diff,
			 (double)(co_scratch_mono_us() - t0) / 1000.0);
	else if ((error = co_flags_watcher_reload(s->fw)) < 0)
		return error;
	else
		snprintf(m->flags, sizeof(m->flags),
			 "%s (reloaded by hand: the watcher was slow)", diff);
	m->go = 1;
	return 0;
}

static int drain_hook(void *ctx)
{
	int64_t left = 0;

	return co_router_drain(ctx, NULL, 10000, &left);
}

int co_scratch_reconcile(co_reconcile_result **out, co_scratch *s, co_repair_from repair,
			 const char *who)
{
	co_reconcile_opts ro = CO_RECONCILE_OPTS_INIT;
	int error;

	ro.git = s->git;
	ro.etcd = s->etcd_store;
	ro.state = s->st;
	ro.flags_path = s->flags_path;
	ro.grace_ms = 200;
	ro.max_rechecks = 3;
	ro.drain = drain_hook;
	ro.drain_ctx = s->router;
	ro.who = who;
	ro.repair = repair;
	if ((error = co_reconcile_run(out, &ro)) < 0)
		return co_cli_error_prefix(error, "reconcile");
	return 0;
}
