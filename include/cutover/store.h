/*
 * cutover/store.h - one task store, git or etcd, opened directly.
 *
 * A cutover_store talks to one backend: a bare git repository (tasks are
 * files tasks/<id>.json on a branch, each write one commit) or etcd (keys
 * under a prefix, each write one transaction).  Every operation decides by
 * compare-and-swap on that backend, so two processes never both win a
 * claim.  Most programs want the router (cutover/router.h), which sends
 * each operation to the store the rollout flags name and keeps the other
 * in step; a store alone is for tools that must read or write one side.
 *
 * Settings come from cutover_options, or from a cutover.yaml read exactly
 * as the `cutover` CLI reads it (its CUTOVER_* environment variables win
 * over the file).  Opening does not contact the store: the first operation
 * does (cutover_store_ping to check early).
 *
 * Thread safety: a store may be used from many threads at once; close it
 * once no call is running.  Records returned belong to the caller.
 *
 * Errors common to every call: CUTOVER_EINVAL (a bad ID or argument,
 * naming it), CUTOVER_EUNAVAIL (the store does not answer, or its circuit
 * breaker is open after repeated failures), CUTOVER_ENOMEM; the message is
 * in cutover_last_error().  Each call lists the others.
 */
#ifndef CUTOVER_STORE_H
#define CUTOVER_STORE_H

#include "cutover/error.h"
#include "cutover/export.h"
#include "cutover/record.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cutover_store cutover_store;

/*
 * Where the stores and the router's state live.  Zero-initialise (or use
 * CUTOVER_OPTIONS_INIT) and set what you need; every NULL or 0 field takes
 * the default shown.  The library copies what it needs at open: the
 * strings may be freed afterwards.  Settings this struct lacks (etcd
 * authentication and TLS, timeouts, breaker) are read from a config file
 * with the *_open_config functions.
 */
typedef struct cutover_options {
	const char *git_repo;	/* path of a bare repository, or a URL (required
				 * for git and for the router) */
	const char *git_branch; /* NULL: "main" */
	const char *const *etcd_endpoints; /* "http://127.0.0.1:2379", ... */
	size_t n_etcd_endpoints;	   /* 0: http://127.0.0.1:2379 */
	const char *etcd_prefix;	   /* NULL: "/" */
	const char *state_dir;		   /* NULL: ./.cutover (the router's outbox and
					    * audit database, a URL's git mirror) */
	const char *flags_path;		   /* NULL: <state_dir>/flags.yaml (the router's
					    * rollout flags; a missing file: all on git) */
} cutover_options;

#define CUTOVER_OPTIONS_INIT                                                             \
	{                                                                                \
		NULL, NULL, NULL, 0, NULL, NULL, NULL                                    \
	}

/*
 * Open the store `backend` ("git" or "etcd") with `opts`.  *out belongs to
 * the caller (cutover_store_close).  CUTOVER_EINVAL (unknown backend, no
 * git_repo for git, a malformed endpoint), CUTOVER_EUNAVAIL (git: the
 * repository cannot be opened), CUTOVER_ENOMEM.
 */
CUTOVER_API int cutover_store_open(cutover_store **out, const char *backend,
				   const cutover_options *opts);

/*
 * Open the store `backend` as a cutover.yaml describes it: `config_path`,
 * or NULL for $CUTOVER_CONFIG, else ./cutover.yaml when present, else the
 * CUTOVER_* environment alone, exactly as the CLI reads it (its first-run
 * checks too: the state dir is created 0700, a loose one is warned about on
 * stderr).  Errors as cutover_store_open(), and CUTOVER_EINVAL
 * "FILE:LINE: key ..." for a bad file, CUTOVER_EIO when it cannot be read.
 */
CUTOVER_API int cutover_store_open_config(cutover_store **out, const char *backend,
					  const char *config_path);

/* Close a store; NULL is fine.  Not while another thread uses it. */
CUTOVER_API void cutover_store_close(cutover_store *s);

/* 0 when the store answers now; CUTOVER_EUNAVAIL with the reason if not. */
CUTOVER_API int cutover_store_ping(cutover_store *s);

/*
 * Create `task` (built with cutover_task_new; not taken) at rev 1; *out
 * gets the stored record.  Creating an ID that exists succeeds with the
 * stored record when type, metadata, blocked_by and status are the same,
 * and fails with CUTOVER_ECONFLICT otherwise.
 */
CUTOVER_API int cutover_store_task_create(cutover_record **out, cutover_store *s,
					  const cutover_record *task);

/* Read record `id` of `kind` (an expired claim reads as available).
 * CUTOVER_ENOTFOUND. */
CUTOVER_API int cutover_store_get(cutover_record **out, cutover_store *s,
				  cutover_kind kind, const char *id);

/* Every record of `kind`, sorted by ID, into *out (the caller frees it
 * with cutover_record_list_free). */
CUTOVER_API int cutover_store_list(cutover_record_list **out, cutover_store *s,
				   cutover_kind kind);

/*
 * Claim task `id` for swarm `swarm`, for `ttl_s` seconds (0: no expiry).
 * Won: 0 and the claimed record.  Lost to another swarm, or the task is
 * blocked, complete or failed: CUTOVER_ECONFLICT, and *out is set to the
 * current record so that the loser learns the owner (the one failure that
 * sets *out: free it).  Claiming a task one already holds renews it.
 * CUTOVER_ENOTFOUND.
 */
CUTOVER_API int cutover_store_claim(cutover_record **out, cutover_store *s,
				    const char *id, const char *swarm, int64_t ttl_s);

/*
 * Release task `id` held by `swarm`, to `to` (available, complete or
 * failed).  Not the owner: CUTOVER_ECONFLICT with *out set to the current
 * record (free it).  CUTOVER_ENOTFOUND.
 */
CUTOVER_API int cutover_store_release(cutover_record **out, cutover_store *s,
				      const char *id, const char *swarm,
				      cutover_status to);

/* Extend the claim `swarm` holds on `id` to now + ttl_s.  Not the owner:
 * CUTOVER_ECONFLICT.  CUTOVER_ENOTFOUND. */
CUTOVER_API int cutover_store_renew(cutover_record **out, cutover_store *s,
				    const char *id, const char *swarm, int64_t ttl_s);

#ifdef __cplusplus
}
#endif

#endif
