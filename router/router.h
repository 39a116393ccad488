/*
 * router.h - every operation goes through here (DESIGN §4).
 *
 * The router asks the flags where an operation on an ID goes, runs it on the
 * primary store (which alone decides: a claim is a CAS on the primary), and
 * mirrors the primary's resulting record into the secondary with
 * co_store_put_if_newer(), so two stores never pick two winners.
 *
 * Nothing acknowledged is lost: before a write touches its primary, a
 * "sync" intent for that ID bound to the secondary is put in the durable
 * outbox; after the primary committed, the router mirrors directly (shadow,
 * dual) and retires the intent, or leaves the record in the outbox (etcd
 * mode, or the secondary is down).  A crash anywhere in between leaves an
 * intent that any router's drain resolves by copying the record from the
 * primary.  In etcd mode the intent is made durable by a group commit (one
 * WAL fsync shared by concurrent writers, run while etcd works) and the
 * record then replaces it without a sync of its own: a durable intent is
 * enough to mend git.  Before a store serves an operation on an ID, that ID's pending
 * entries bound to that store are applied first; if they cannot be, the
 * operation fails with CO_EUNAVAIL rather than act on stale state.  This is
 * what makes moving percentages and the kill switch safe.
 *
 * A store that keeps failing is behind its circuit breaker (store.h): calls
 * to it fail at once.  The router audits every transition of both stores'
 * breakers, and when one closes it makes that store's outbox entries due
 * at once and wakes the drain, so the debt goes out as soon as the store
 * answers again.
 *
 * Thread safety: a co_router is safe to use from many threads at once.
 * Records returned are owned by the caller.  Errors are those of store.h,
 * plus CO_EUNAVAIL when per-ID order cannot be kept.
 */
#ifndef CO_ROUTER_H
#define CO_ROUTER_H

#include "core/config.h"
#include "core/record.h"
#include "core/redact.h"
#include "flags/flags.h"
#include "store/store.h"

typedef struct co_router co_router;
typedef struct co_state co_state;
typedef struct co_flags_watcher co_flags_watcher;

typedef struct co_router_opts {
	co_store *git;		 /* required; borrowed, outlives the router */
	co_store *etcd;		 /* required; borrowed */
	co_state *state;	 /* required; borrowed (outbox, audit) */
	co_flags_watcher *flags; /* required; borrowed (hot-reloaded flags) */
	int background_drain;	 /* 1: a thread drains the outbox continuously */
	int witness;		 /* 1 (default): log every routed op in the audit */
	/*
	 * Bound on each call to a secondary, in ms (0: CO_ROUTER_MIRROR_MS):
	 * mirrors, shadow reads, copies the drain makes.  Past it, the record
	 * goes to the durable outbox and the write is acknowledged on the
	 * primary's decision; a hung secondary never holds a write for a whole
	 * request timeout.
	 */
	int mirror_timeout_ms;
	/*
	 * What never leaves the stores (redact.h): shadow mismatches are
	 * recorded with these fields hidden.  Borrowed, outlives the router;
	 * NULL: the default policy.
	 */
	const co_redact *redact;
	/*
	 * Live-signal triggers (triggers.h): non-NULL with `enabled` set, the
	 * router records every operation's store, result and latency in a
	 * sliding window and a thread evaluates the triggers once a second,
	 * pulling the kill switch in the watcher's flags file when one fires.
	 * For long-lived routers (serve, demo); short CLI commands leave it
	 * NULL.  Copied at open.
	 */
	const co_trigger_cfg *triggers;
	/*
	 * Shadow read quality (core/shadow.h): the percent of each read op's
	 * shadow reads compared with etcd (the rest are served by git alone,
	 * etcd untouched) and the fields whose differences are ignored.
	 * Borrowed, outlives the router; NULL: compare every read, ignore
	 * nothing.
	 */
	const co_shadow_cfg *shadow;
	/*
	 * Fleet mode (router/fleet.h): the etcd key of the fleet's flags
	 * document, NULL in file mode.  Copied at open.  Every decision this
	 * router makes with etcd primary is fenced on the flags epoch it was
	 * routed under (co_route.epoch, from the mirrored file's fleet_epoch;
	 * co_store_fence): once the document in etcd has moved on, etcd
	 * refuses the write, and the router waits up to
	 * CO_ROUTER_FENCE_WAIT_MS for its flags to catch up, routes again
	 * once, and otherwise fails with CO_EUNAVAIL (nothing written).
	 */
	const char *fence_key;
} co_router_opts;

#define CO_ROUTER_MIRROR_MS 250
#define CO_ROUTER_FENCE_WAIT_MS 2000

#define CO_ROUTER_OPTS_INIT                                                              \
	{                                                                                \
		NULL, NULL, NULL, NULL, 0, 1, 0, NULL, NULL, NULL, NULL                  \
	}

int co_router_open(co_router **out, const co_router_opts *opts);
/* Stops the drain thread; does not drain (call co_router_drain first). */
void co_router_close(co_router *r);

/* The operations of DESIGN §3, with the semantics of store.h. */
int co_router_task_create(co_record **out, co_router *r, const co_record *task);
int co_router_get(co_record **out, co_router *r, co_kind kind, const char *id);
int co_router_list(co_record_list *out, co_router *r, co_kind kind);
int co_router_claim(co_record **out, co_router *r, const char *id, const char *swarm,
		    int64_t ttl);
int co_router_release(co_record **out, co_router *r, const char *id, const char *swarm,
		      co_status to);
int co_router_renew(co_record **out, co_router *r, const char *id, const char *swarm,
		    int64_t ttl);
int co_router_swarm_register(co_record **out, co_router *r, const co_record *swarm);
int co_router_remove(co_router *r, co_kind kind, const char *id);

/*
 * Drain the outbox: apply pending entries (bound to `target`, or both when
 * NULL) until none is due or `budget_ms` has passed.  *left (may be NULL)
 * gets the depth still pending.  0, or the first store error when nothing
 * could be applied.
 */
int co_router_drain(co_router *r, const char *target, int budget_ms, int64_t *left);

/*
 * Route of `op` on `id` now (what `cutover flags explain` prints).
 */
int co_router_route(co_route *out, co_router *r, co_op op, const char *id);

/*
 * The router's trigger evaluator (triggers.h), NULL when triggers are off:
 * for /metrics (co_triggers_metrics).  Valid until co_router_close.
 */
typedef struct co_triggers co_triggers;
co_triggers *co_router_triggers(co_router *r);

/*
 * The router's shadow counters since it opened (core/shadow.h), for
 * /metrics: per read op, reads compared, reads sampled out, compared reads
 * that found a mismatch (a list counts once however many IDs differ; the
 * audit log has a row per ID), compared reads etcd could not answer.
 */
void co_router_shadow_stats(co_shadow_stats *out, co_router *r);

/*
 * A stalled state dir (issue 20): an fsync of the state's WAL by the group
 * commit that has been running CO_ROUTER_SYNC_STALL_MS or more.  Writes
 * that would wait on it (an intent owed to a secondary) are then refused
 * at once with CO_EUNAVAIL ("state dir stalled: fsync in flight 4.2 s"),
 * before anything is written; writes already waiting stay waiting, and are
 * acknowledged only once the fsync covering their intent returns.
 * co_router_sync_in_flight_ms() is how long the current fsync has run (0:
 * none), from memory: never blocks.  Not seen: a stall of a synced SQLite
 * commit outside the group commit, of git's own fsyncs, or of reads.
 */
#define CO_ROUTER_SYNC_STALL_MS 2000
int64_t co_router_sync_in_flight_ms(co_router *r);
/* The stall bound in force (CO_ROUTER_SYNC_STALL_MS unless a test set it). */
int co_router_sync_stall_ms(void);

/* How many fsyncs of the state's WAL the group commit has made since open:
 * one covers every intent and ack committed before it started.  Never
 * blocks. */
uint64_t co_router_state_syncs(co_router *r);

/* The store for a side (CO_SIDE_GIT / CO_SIDE_ETCD). */
co_store *co_router_store(co_router *r, co_side side);

/*
 * The redaction policy the router records mismatches with (opts.redact or
 * its own default), for the other writers of the same process (the HTTP
 * server's reports).  Owned by the router or its caller; valid until
 * co_router_close.
 */
const co_redact *co_router_redact(const co_router *r);

/*
 * Watch through the router: each ID's events come from the store that is
 * primary for it now; in split (dual) routes both streams are merged and
 * the other store's events dropped.
 */
typedef struct co_router_watch co_router_watch;
int co_router_watch_open(co_router_watch **out, co_router *r, const char *prefix);
int co_router_watch_next(co_event **out, co_router_watch *w, int timeout_ms);
void co_router_watch_close(co_router_watch *w);

#endif
