/*
 * cutover/router.h - task operations routed between git and etcd.
 *
 * The router is what the `cutover` CLI and `cutover serve` use: for every
 * operation it reads the rollout flags (a YAML file, hot-reloaded) and runs
 * the operation on the store that is primary for that task ID now, the
 * one whose compare-and-swap alone picks a claim's winner, then mirrors
 * the result into the other store when the stage says so.  An intent is
 * put in a durable outbox (SQLite, in the state dir) before the primary is
 * written, so nothing acknowledged is lost if the mirror fails: the next
 * router drains it.  With no flags file every operation goes to git.
 * Change stages with the CLI (`cutover stage ...`), never from here.
 *
 * The router opens both stores (etcd is not contacted while nothing is
 * routed to it), the state database and the flags watcher; close it with
 * cutover_router_close(), which drains the outbox for up to two seconds.
 *
 * Thread safety: a router may be used from many threads at once; close it
 * once no call is running.  Records returned belong to the caller.
 *
 * Errors: those of cutover/store.h, with the same meaning per operation,
 * plus CUTOVER_EUNAVAIL when an ID's earlier writes still owed to the
 * store that must serve it cannot be applied first (per-ID order is kept
 * rather than act on stale state), and CUTOVER_EIO when the state database
 * fails.  The message is in cutover_last_error().
 */
#ifndef CUTOVER_ROUTER_H
#define CUTOVER_ROUTER_H

#include "cutover/error.h"
#include "cutover/export.h"
#include "cutover/record.h"
#include "cutover/store.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cutover_router cutover_router;

/*
 * Open a router with `opts` (git_repo required; state_dir is created 0700
 * when missing).  *out belongs to the caller (cutover_router_close).
 * CUTOVER_EINVAL (no git_repo, a bad flags file naming its line, a bad
 * endpoint), CUTOVER_EUNAVAIL, CUTOVER_EIO (the state database),
 * CUTOVER_ENOMEM.
 */
CUTOVER_API int cutover_router_open(cutover_router **out, const cutover_options *opts);

/*
 * Open a router as a cutover.yaml describes it (`config_path`, or NULL:
 * $CUTOVER_CONFIG, ./cutover.yaml, the environment), exactly as the CLI
 * does, first-run checks of the state dir included.  Errors as
 * cutover_router_open(), and "FILE:LINE: key ..." for a bad file.
 */
CUTOVER_API int cutover_router_open_config(cutover_router **out, const char *config_path);

/* Drain the outbox (at most 2 s; what is left waits for the next router)
 * and close.  NULL is fine.  Not while another thread uses it. */
CUTOVER_API void cutover_router_close(cutover_router *r);

/* The operations, as on one store (cutover/store.h). */
CUTOVER_API int cutover_router_task_create(cutover_record **out, cutover_router *r,
					   const cutover_record *task);
CUTOVER_API int cutover_router_get(cutover_record **out, cutover_router *r,
				   cutover_kind kind, const char *id);
CUTOVER_API int cutover_router_list(cutover_record_list **out, cutover_router *r,
				    cutover_kind kind);
/* Lost: CUTOVER_ECONFLICT with *out set to the current record (free it). */
CUTOVER_API int cutover_router_claim(cutover_record **out, cutover_router *r,
				     const char *id, const char *swarm, int64_t ttl_s);
/* Not the owner: CUTOVER_ECONFLICT with *out set to the current record. */
CUTOVER_API int cutover_router_release(cutover_record **out, cutover_router *r,
				       const char *id, const char *swarm,
				       cutover_status to);
CUTOVER_API int cutover_router_renew(cutover_record **out, cutover_router *r,
				     const char *id, const char *swarm, int64_t ttl_s);

#ifdef __cplusplus
}
#endif

#endif
