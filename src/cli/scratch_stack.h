/*
 * scratch_stack.h - a throw-away cutover stack for `cutover demo` and
 * `cutover drill`: a temp directory holding a local etcd (the `etcd` of
 * PATH, free loopback ports, fast elections, own process group, dies with
 * us), a bare git repository made with `git init`, a state database, a
 * flags file with its watcher, and a router over both stores (background
 * drain, live-signal triggers as the caller asks).  Nothing here reads the
 * user's configuration or touches their stores.
 *
 * Also the two steps both commands take on it: moving every operation to
 * a stage through the go/no-go gate as `cutover stage` does (flags file
 * saved atomically, audited, picked up by the router's watcher), and a
 * reconciliation with the outbox drained through the router first.
 *
 * Ownership: a co_scratch is owned by the thread that opened it (it
 * started etcd, which dies with that thread); co_scratch_close() frees and
 * removes everything, also after a partial co_scratch_open().  Errors are
 * CO_E* codes with the message set (core/error.h).
 */
#ifndef CO_CLI_SCRATCH_STACK_H
#define CO_CLI_SCRATCH_STACK_H

#include "../../migrate/migrate.h"
#include "../core/config.h"
#include "../store/etcd_local.h"
#include "../store/etcd_store.h"
#include "flags/stage.h"
#include "reconcile/reconcile.h"

#include <signal.h>
#include <stdint.h>

typedef struct co_store co_store;
typedef struct co_state co_state;
typedef struct co_flags_watcher co_flags_watcher;
typedef struct co_router co_router;

typedef struct co_scratch_opts {
	const char *tmp_prefix;		/* mkdtemp $TMPDIR/<prefix>-XXXXXX */
	const char *etcd_name;		/* etcd --name */
	const co_trigger_cfg *triggers; /* the router's triggers (copied); NULL: off */
	int etcd_request_timeout_ms;	/* 0: the etcd store's default */
	volatile sig_atomic_t *cancel;	/* non-zero: give up starting etcd */
} co_scratch_opts;

typedef struct co_scratch {
	char tmp[1024]; /* "" until made */
	char repo[4096], state_dir[4096], flags_path[4096], git_log[4096];
	co_etcd_local etcd;
	int64_t etcd_ready_us; /* how long etcd took to serve */
	co_etcd_opts eo;       /* what the etcd store was opened with */
	const char *eps[1];
	co_store *git, *etcd_store;
	co_state *st;
	co_flags_watcher *fw;
	co_router *router;
} co_scratch;

/*
 * Make the temp dir, start etcd, create the repo, open the stores, the
 * state, the watcher and the router.  `s` is overwritten.  On failure, what
 * was made stays in `s` (call co_scratch_close).  CO_EIO (temp dir),
 * CO_EUNAVAIL (etcd or git could not start; the message names the log),
 * CO_EINVAL, CO_ENOMEM.
 */
int co_scratch_open(co_scratch *s, const co_scratch_opts *o);

/*
 * Drain the outbox (2 s at most), close the router and everything under
 * it, stop etcd (SIGCONT first: a stopped etcd would wait out SIGTERM),
 * and remove the temp dir unless `keep`.  Safe after a partial open and
 * on a zeroed struct; idempotent.
 */
void co_scratch_close(co_scratch *s, int keep);

/* Migration options for the scratch repo, etcd and state (for backfill). */
void co_scratch_migrate_opts(co_migrate_opts *mo, const co_scratch *s);

/* What co_scratch_stage() did. */
typedef struct co_scratch_move {
	int go;		 /* 1: the flags now hold the stage */
	char gate[512];	 /* "go: run N passed ...", "NO-GO: ...", "" (not forward) */
	char flags[640]; /* "stage a -> b (every operation), file saved; ..." */
} co_scratch_move;

/*
 * Move every operation to `stage` as `cutover stage` does: a forward move
 * needs a reconciliation passed within the last minute (else m->go is 0
 * and m->gate says why), then the flags file is saved, audited as `who`,
 * and the router's watcher waited for (2 s, then reloaded by hand).
 * CO_EIO/CO_EINVAL from the flags file or the audit.
 */
int co_scratch_stage(co_scratch_move *m, co_scratch *s, co_stage stage, const char *who);

/*
 * One reconciliation run (recorded in the state, the kill switch tripped
 * on a failing verdict), the outbox drained through the router first.
 * *out as co_reconcile_run (the caller frees it).
 */
int co_scratch_reconcile(co_reconcile_result **out, co_scratch *s, co_repair_from repair,
			 const char *who);

/* ---- small helpers both commands use ---- */

int64_t co_scratch_mono_us(void);
void co_scratch_sleep_ms(int ms);
/* mkdir -p; CO_EINVAL (name too long), CO_EIO naming the directory. */
int co_scratch_mkdirs(const char *path);

#endif
