/*
 * cmd_outbox.c - `cutover outbox adopt --state-dir DIR`: drain the outbox a
 * dead router left behind (issue 18, point 5).
 *
 * Every router keeps its own outbox in <its state dir>/cutover.db and
 * drains it itself.  When a router dies with entries owed (acknowledged
 * writes its secondary has not got yet, intents of writes in flight), its
 * outbox stays in its state dir; this command, run where that dir is
 * reachable, opens a router over it with this configuration's stores and
 * drains every entry: records are written to the store they are owed to,
 * intents resolved by copying what the primary holds (router_drain.c),
 * exactly as the owner's own drain would.
 *
 * It refuses (exit 1, nothing changed) while the owner may be alive: in
 * fleet mode a live router registered with that state dir (its lease has
 * not run out); on any host a process holding the database open (SQLite's
 * shared-memory lock, which every open connection holds, names its pid).
 * The adoption is audited in this configuration's own state.  A state dir
 * that cannot be reached is not covered here: reconciliation repairs it.
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/config.h"
#include "../core/error.h"
#include "../core/outbox.h"
#include "../core/state.h"
#include "flags/watcher.h"
#include "router/fleet.h"
#include "router/router.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define U_OUTBOX "cutover outbox adopt --state-dir DIR [--wait-drain 30s] [--json]"

static const char h_outbox[] =
    "usage: " U_OUTBOX "\n\n"
    "Adopt the outbox of a router that died: open DIR/cutover.db (another\n"
    "router's state dir, reachable from here) with this configuration's stores\n"
    "and drain every entry it owes: records go to the store they are owed to,\n"
    "intents of writes in flight are resolved by copying what the primary holds.\n"
    "An intent younger than 15 s may still be its router's: it is drained once\n"
    "older, within --wait-drain.  Prints what was drained and what is left.\n\n"
    "Refused (exit 1, nothing changed) while DIR's owner may be alive: in fleet\n"
    "mode a live router registered with DIR (its lease has not run out), and on\n"
    "any host a process holding DIR/cutover.db open.  Recorded in the audit\n"
    "trail of this configuration's state dir.\n\n"
    "  --state-dir DIR    the dead router's state dir (not this one's)\n"
    "  --wait-drain D     drain for at most D (default 30s)\n"
    "  --json             {\"state_dir\", \"before\", \"drained\", \"left\"}\n\n"
    "Exit status: 0 nothing left, 1 refused or bad usage, 2 a store did not\n"
    "take what is owed to it (entries left; run it again, or reconcile).\n\n"
    "Example:\n  cutover outbox adopt --state-dir /mnt/router-3/state --wait-drain 1m\n";

/* SQLite's unix VFS: every connection to a WAL database holds a read lock
 * on this byte of the -shm file while it is open (the "DMS" lock). */
#define SHM_DMS_OFFSET 128

/*
 * The pid of a process holding `db`'s shared memory open, 0 if none, -1 if
 * it cannot be told (no -shm file means no open connection: 0).
 */
static long db_holder(const char *dir)
{
	char path[PATH_MAX];
	struct flock fl;
	int fd;

	snprintf(path, sizeof path, "%s/cutover.db-shm", dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1;
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = SHM_DMS_OFFSET;
	fl.l_len = 1;
	if (fcntl(fd, F_GETLK, &fl) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return fl.l_type == F_UNLCK ? 0 : (long)(fl.l_pid > 0 ? fl.l_pid : 1);
}

/* Fleet mode: CO_EINVAL naming a live router registered with `dir`. */
static int fleet_owner_alive(const co_config *c, const char *dir)
{
	co_fleet *fleet = NULL;
	co_fleet_member *m = NULL;
	size_t n = 0, i;
	int error;

	if ((error = co_fleet_open_config(&fleet, c)) < 0 || fleet == NULL)
		return error;
	error = co_fleet_members(&m, &n, fleet);
	co_fleet_close(fleet);
	if (error < 0)
		return co_cli_error_prefix(error,
					   "outbox not adopted: cannot tell whether "
					   "its router is alive");
	for (i = 0; i < n && error == 0; i++) {
		char *abs = m[i].state_dir[0] ? realpath(m[i].state_dir, NULL) : NULL;

		if (abs && strcmp(abs, dir) == 0)
			error = co_error_set(
			    CO_EINVAL,
			    "outbox not adopted: %s belongs to live router %s "
			    "(host %s, pid %ld, lease alive); it drains its own "
			    "outbox",
			    dir, m[i].id, m[i].host, m[i].pid);
		free(abs);
	}
	free(m);
	return error;
}

typedef struct adopt_result {
	int64_t before, left;
	int error; /* of the last drain round that applied nothing */
} adopt_result;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drain DIR's outbox for at most wait_ms with a router over c's stores. */
static int drain_dir(adopt_result *res, co_cli *ctx, const co_config *c, const char *dir,
		     int wait_ms)
{
	co_router_opts o = CO_ROUTER_OPTS_INIT;
	co_cli_router *cr = calloc(1, sizeof *cr);
	int64_t deadline = now_ms() + wait_ms;
	int error;

	if (!cr)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((error = co_cli_open_backend(&cr->git, ctx, "git")) < 0 ||
	    (error = co_cli_open_backend(&cr->etcd, ctx, "etcd")) < 0 ||
	    (error = co_state_open(&cr->state, dir)) < 0 ||
	    (error = co_flags_watcher_open(&cr->flags, c->flags_path)) < 0 ||
	    (error = co_cli_router_opts(&o, c, cr)) < 0 ||
	    (error = co_outbox_depth(&res->before, cr->state, NULL)) < 0 ||
	    (error = co_router_open(&cr->router, &o)) < 0)
		goto done;
	res->left = res->before;
	while (res->left > 0) {
		struct timespec pause = {0, 100 * 1000000L};

		/* the dead owner's backoffs say nothing about the stores now */
		co_outbox_retry_now(NULL, cr->state, NULL);
		res->error = co_router_drain(
		    cr->router, NULL,
		    (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0), &res->left);
		if (res->left == 0 || now_ms() >= deadline)
			break;
		/* intents inside the in-flight window: drained once older */
		nanosleep(&pause, NULL);
	}
	error = 0;
done:
	co_cli_router_close(cr, 0);
	return error;
}

static int adopt(co_cli *ctx, const char *dir_arg, int wait_ms)
{
	const co_config *c;
	char *dir = NULL, *own = NULL, what[PATH_MAX + 128], dbpath[PATH_MAX + 16];
	adopt_result res = {0, 0, 0};
	co_state *st = NULL;
	long holder;
	int error;

	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if ((dir = realpath(dir_arg, NULL)) == NULL)
		return co_error_set(CO_EINVAL, "--state-dir %s: %s", dir_arg,
				    strerror(errno));
	snprintf(dbpath, sizeof dbpath, "%s/cutover.db", dir);
	if (access(dbpath, F_OK) != 0) {
		error =
		    co_error_set(CO_EINVAL, "--state-dir %s: no outbox there (%s: %s)",
				 dir_arg, dbpath, strerror(errno));
		goto done;
	}
	own = realpath(c->state_dir, NULL);
	if (own && strcmp(own, dir) == 0) {
		error = co_error_set(
		    CO_EINVAL,
		    "outbox not adopted: %s is this configuration's own state "
		    "dir (its routers drain it)",
		    dir);
		goto done;
	}
	if (c->fleet_enabled && (error = fleet_owner_alive(c, dir)) < 0)
		goto done;
	if ((holder = db_holder(dir)) != 0) {
		error = holder > 0
			    ? co_error_set(CO_EINVAL,
					   "outbox not adopted: %s is open in process "
					   "%ld (its router is alive)",
					   dbpath, holder)
			    : co_error_set(CO_EINVAL,
					   "outbox not adopted: cannot tell whether %s "
					   "is open in another process",
					   dbpath);
		goto done;
	}
	if ((error = drain_dir(&res, ctx, c, dir, wait_ms)) < 0)
		goto done;
	snprintf(what, sizeof what, "adopted the outbox of %s: %lld drained, %lld left",
		 dir, (long long)(res.before - res.left), (long long)res.left);
	if ((error = co_state_open(&st, c->state_dir)) < 0 ||
	    (error = co_audit_change_add(st, co_cli_who(), "outbox adopt", what, NULL)) <
		0) {
		error =
		    co_cli_error_prefix(error, "outbox drained, but the audit trail was "
					       "not written");
		goto done;
	}
	if (ctx->json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "state_dir", dir);
		cJSON_AddNumberToObject(o, "before", (double)res.before);
		cJSON_AddNumberToObject(o, "drained", (double)(res.before - res.left));
		cJSON_AddNumberToObject(o, "left", (double)res.left);
		if ((error = co_cli_print_json(o)) < 0)
			goto done;
	} else {
		printf("%s\n", what);
		fflush(stdout);
	}
	if (res.left > 0)
		error =
		    co_error_set(CO_EUNAVAIL,
				 "%lld outbox entries of %s left: a store did not take "
				 "them%s%s; run it again when it answers, or reconcile",
				 (long long)res.left, dir, res.error ? ": " : "",
				 res.error ? co_error_last() : "");
done:
	co_state_close(st);
	free(own);
	free(dir);
	return error;
}

int co_cli_outbox(int argc, char **argv, co_cli *ctx)
{
	const char *pos[2], *state_dir = NULL, *wait = NULL;
	const co_cli_opt opts[] = {{"state-dir", &state_dir, NULL},
				   {"wait-drain", &wait, NULL},
				   {NULL, NULL, NULL}};
	size_t n_pos = 0;
	int r, wait_s = 30;

	if ((r = co_cli_parse(pos, 2, &n_pos, ctx, argc, argv, opts, U_OUTBOX,
			      h_outbox)) != 0)
		return r < 0 ? r : 0;
	if (n_pos != 1 || strcmp(pos[0], "adopt") != 0)
		return co_cli_usage_error(U_OUTBOX,
					  "outbox: the one subcommand is adopt");
	if (!state_dir || !*state_dir)
		return co_cli_usage_error(U_OUTBOX,
					  "outbox adopt: --state-dir DIR is needed");
	if (wait && (r = co_cli_parse_wait(&wait_s, wait, U_OUTBOX)) < 0)
		return r;
	return adopt(ctx, state_dir, wait_s * 1000);
}
