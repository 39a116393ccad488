/*
 * outbox.h - the durable outbox of writes still owed to a store (DESIGN §4).
 *
 * When the router's primary has committed a write and the secondary could
 * not take it (or takes it asynchronously, as git does in `etcd` mode), the
 * record is pushed here before the write is acknowledged.  An entry names the
 * store it is owed to (`target`: "git" or "etcd"), the record (`kind`, `id`)
 * and what to write: the record's canonical JSON, or NULL for a delete.
 *
 * Order is per key, a key being (target, kind, id): entries of one key are
 * applied in `seq` order, and nothing later of a key is handed out while an
 * earlier one is pending.  Different keys, and the two targets of one ID,
 * are independent.  `seq` grows strictly across all processes and is never
 * reused, even after entries are acknowledged.
 *
 * Thread safety: all functions are safe on a co_state shared between
 * threads and between processes opening the same state dir (state.h).
 * Entries and lists are plain values owned by the caller.
 */
#ifndef CO_OUTBOX_H
#define CO_OUTBOX_H

#include "state.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Longest delay co_outbox_fail() sets from a short backoff, whatever the
 * attempt count.  Short on purpose: a store that is down is left alone by
 * its open breaker (its entries earn no backoff meanwhile), so what backs
 * off here is an entry that failed while its store answered others -- a
 * timeout under load -- and it should go out soon after the load drops,
 * not minutes later.
 */
#define CO_OUTBOX_BACKOFF_MAX_MS (10 * 1000)

typedef struct co_outbox_entry {
	int64_t seq;
	char *target; /* "git" | "etcd" */
	char *kind;   /* "task" | "swarm" */
	char *id;
	char *payload;		 /* canonical JSON of the record, NULL = delete */
	int64_t created_at;	 /* Unix ms */
	int attempts;		 /* failed attempts so far */
	int64_t next_attempt_at; /* Unix ms; not handed out by next_batch before */
	char *last_error;	 /* NULL until the first failure */
} co_outbox_entry;

/* A list of entries; owns them.  Zero-initialise before use. */
typedef struct co_outbox_list {
	co_outbox_entry **items;
	size_t n, cap;
} co_outbox_list;

/* Free one entry and its strings.  NULL is fine. */
void co_outbox_entry_free(co_outbox_entry *e);

/* Free every entry of l and reset it to empty (l itself is not freed). */
void co_outbox_list_clear(co_outbox_list *l);

/*
 * Append a write owed to `target` ("git" | "etcd") for record (`kind`:
 * "task" | "swarm", `id`): `payload` is the record's canonical JSON, or NULL
 * to delete it.  The entry is on disk when this returns (fsync'd), so the
 * caller may acknowledge the write.  It is due at once.  *out_seq (if not
 * NULL) receives its sequence number.
 *
 * Errors: CO_EINVAL (unknown target or kind, invalid id); CO_EUNAVAIL (the
 * write lock was not obtained within CO_STATE_BUSY_TIMEOUT_MS); CO_EIO.
 */
int co_outbox_push(int64_t *out_seq, co_state *st, const char *target, const char *kind,
		   const char *id, const char *payload);

/*
 * Every pending entry of key (target, kind, id) in seq order, due or not:
 * what a store must apply before it serves an operation on that ID.
 * Appends to *out (on success only).  CO_EINVAL, CO_EIO, CO_ENOMEM.
 */
int co_outbox_pending_for(co_outbox_list *out, co_state *st, const char *target,
			  const char *kind, const char *id);

/*
 * Up to `max` entries, oldest first, each the oldest pending entry of its
 * key and due (next_attempt_at <= now_ms); `target` NULL means both stores.
 * A key whose oldest entry is not yet due contributes nothing: later entries
 * of a key never overtake an earlier one.  Appends to *out (on success only).
 * CO_EINVAL, CO_EIO, CO_ENOMEM.
 *
 * Several drainers calling this at once may get the same entries; use
 * co_outbox_lease_batch() when that matters.
 */
int co_outbox_next_batch(co_outbox_list *out, co_state *st, const char *target,
			 size_t max, int64_t now_ms);

/*
 * As co_outbox_next_batch(), and in the same transaction postpone the
 * returned entries' next_attempt_at to now_ms + lease_ms, so that a drainer
 * in another thread or process does not take them meanwhile.  The holder
 * acks or fails them; if it dies, they are due again when the lease ends.
 * (co_outbox_pending_for ignores leases: serving an ID always sees them.)
 * CO_EINVAL, CO_EUNAVAIL, CO_EIO, CO_ENOMEM.
 */
int co_outbox_lease_batch(co_outbox_list *out, co_state *st, const char *target,
			  size_t max, int64_t now_ms, int64_t lease_ms);

/*
 * The entry `seq` was applied: delete it (durably).  Acking an entry that
 * is no longer there is not an error (another drainer acked it).
 * CO_EUNAVAIL, CO_EIO.
 */
int co_outbox_ack(co_state *st, int64_t seq);

/*
 * As co_outbox_ack(), without the sync: the delete survives a process crash
 * at once, a power loss only once a co_state_sync() started after this
 * returned has returned 0.  For a caller that shares one fsync among many
 * writers (the router's group commit).  CO_EUNAVAIL, CO_EIO.
 */
int co_outbox_ack_unsynced(co_state *st, int64_t seq);

/*
 * co_outbox_ack() (durable 1) or co_outbox_ack_unsynced() (0) of n entries
 * in one transaction: what a drain that applied a batch acks with.  All or
 * none.  CO_EUNAVAIL, CO_EIO.
 */
int co_outbox_ack_many(co_state *st, const int64_t *seqs, size_t n, int durable);

/*
 * Applying entry `seq` failed with `error` (copied, may be NULL): count the
 * attempt and make it due again after backoff_ms * 2^(attempts before this
 * one), at most max(backoff_ms, CO_OUTBOX_BACKOFF_MAX_MS), from now
 * (co_state_now_ms()).  CO_ENOTFOUND if there is no entry `seq`;
 * CO_EINVAL (negative backoff), CO_EUNAVAIL, CO_EIO.
 */
int co_outbox_fail(co_state *st, int64_t seq, const char *error, int64_t backoff_ms);

/*
 * Make every entry bound to `target` due now: the store came back (its
 * circuit breaker closed), so the backoff its failures earned says nothing
 * any more.  The attempt counts stay (reconciliation reads a tried entry
 * as owed, not as lag).  *out (may be NULL) gets how
 * many entries were waiting out a backoff.  CO_EINVAL, CO_EUNAVAIL, CO_EIO.
 */
int co_outbox_retry_now(int64_t *out, co_state *st, const char *target);

/* Number of pending entries for `target` (NULL: both).  CO_EINVAL, CO_EIO. */
int co_outbox_depth(int64_t *out, co_state *st, const char *target);

/* How the entries owed to one store stand (co_outbox_stats). */
typedef struct co_outbox_stats {
	int64_t depth;	    /* pending entries */
	int64_t oldest_ms;  /* created_at of the oldest, Unix ms; 0 when empty */
	int64_t failing;    /* entries that failed at least once */
	char last_error[256]; /* the oldest failing entry's error; "" if none */
} co_outbox_stats;

/*
 * Depth, age and failures of what is owed to `target` ("git" or "etcd"):
 * whether the drain towards a store flows.  One read.  CO_EINVAL,
 * CO_EUNAVAIL, CO_EIO.
 */
int co_outbox_stats_of(co_outbox_stats *out, co_state *st, const char *target);

/*
 * Unix ms of the oldest pending entry (for either store) in *out, 0 when
 * the outbox is empty: the first row in insertion order, one probe of the
 * primary key whatever the depth, so that a once-a-second check costs
 * nothing (the live-signal triggers' outbox-age bound).  CO_EIO.
 */
int co_outbox_oldest(int64_t *out, co_state *st);

/*
 * 1 if record (kind, id) has any pending entry for either store, 0 if not,
 * or a negative error (CO_EINVAL, CO_EIO).  The reconciler uses it to set
 * aside IDs with writes in flight.
 */
int co_outbox_has_pending(co_state *st, const char *kind, const char *id);

/*
 * Intents (router/router.c): an entry whose replay is always harmless,
 * written before the primary is touched.  co_outbox_push_intent() and
 * co_outbox_ack_intent() commit without a sync (synchronous=NORMAL): they
 * survive a process crash, which is what intents guard against; after a
 * power loss the reconciler finds what one would have mended.  Errors as
 * co_outbox_push() / co_outbox_ack().
 */
int co_outbox_push_intent(int64_t *out_seq, co_state *st, const char *target,
			  const char *kind, const char *id, const char *payload);
int co_outbox_ack_intent(co_state *st, int64_t seq);

/*
 * Replace intent `seq` by `payload` (a record, or NULL = delete) in one
 * transaction: the entry keeps its place in the per-key order.  If the
 * intent is gone (a drain resolved it), the payload is pushed as a new
 * entry for target/kind/id, always synced.  With `durable` the change is
 * synced before this returns; without, the caller makes the intent itself
 * durable (co_state_sync() after the intent's commit, before it
 * acknowledges): a payload lost in a power cut then falls back to the
 * intent, which copies the record from the primary.  Errors as
 * co_outbox_push().
 */
int co_outbox_fulfil_intent(co_state *st, int64_t seq, const char *target,
			    const char *kind, const char *id, const char *payload,
			    int durable);

/* One intent to fulfil; the strings are borrowed. */
typedef struct co_outbox_fulfil {
	int64_t seq;
	const char *target, *kind, *id;
	const char *payload; /* NULL = delete */
	/* 1: a direct mirror to target failed (a timeout, an open breaker):
	 * the row starts with one attempt counted, so that reconciliation
	 * reads it as owed at once, not as an asynchronous mirror's lag */
	int mirror_failed;
} co_outbox_fulfil;

/*
 * co_outbox_fulfil_intent() for `n` intents in one transaction (one more,
 * synced, for those a drain resolved meanwhile).  All or nothing: on an
 * error no intent was replaced, and each still copies its record from the
 * primary when drained.  Errors as co_outbox_push().
 */
int co_outbox_fulfil_intents(co_state *st, const co_outbox_fulfil *items, size_t n,
			     int durable);

/*
 * Payload prefix of an intent ("@sync:<nonce>": copy the record from the
 * other store; docs/design-changes.md).  Never valid JSON.
 */
#define CO_OUTBOX_INTENT_PREFIX "@sync:"

/*
 * An intent younger than this may belong to an operation still in flight
 * (its primary not yet answered); an older one was left by a crash, and
 * its write may have been acknowledged.  The router's window
 * (router.c, IN_FLIGHT_MS) is this one.
 */
#define CO_OUTBOX_IN_FLIGHT_MS 15000

/* 1 if e is an intent (its payload starts with CO_OUTBOX_INTENT_PREFIX). */
int co_outbox_is_intent(const co_outbox_entry *e);

/*
 * What the outbox still owes for one record, as reconciliation and the
 * go/no-go gate see it.  A row that holds a record or a delete is an
 * acknowledged write owed to its store: owed at once if applying it has
 * failed (the drain is in backoff, its store down), owed once older than
 * CO_OUTBOX_IN_FLIGHT_MS if no drain has tried it yet (before that it is
 * the ordinary lag of an asynchronous mirror, as in dual and etcd).  An
 * intent younger than CO_OUTBOX_IN_FLIGHT_MS is an operation in flight,
 * not a debt; an older one is owed (the write may have been acknowledged
 * before its router died).  `git_since` / `etcd_since` are the created_at of the oldest
 * owed row bound to that store, 0 when it is owed nothing.
 */
typedef struct co_outbox_debt {
	int pending;	    /* rows of this record for either store */
	int in_flight;	    /* of those, intents younger than the window */
	int64_t git_since;  /* Unix ms; 0: nothing owed to git */
	int64_t etcd_since; /* Unix ms; 0: nothing owed to etcd */
} co_outbox_debt;

/*
 * The debt of record (kind, id) at now_ms (co_state_now_ms()), leases and
 * backoff ignored.  *out is always filled on success.  CO_EINVAL (bad kind
 * or id), CO_EIO.
 */
int co_outbox_debt_of(co_outbox_debt *out, co_state *st, const char *kind, const char *id,
		      int64_t now_ms);

/*
 * Make the entries of record (kind, id) that wait out a failure backoff
 * (attempts > 0, next_attempt_at after now_ms) due at now_ms, for both
 * stores, so that the next drain retries them at once.  For an operator
 * who waits for a drain (`cutover stage --wait-drain`): after an outage
 * the backoff may be minutes.  Entries never tried are left alone.  The
 * drain hands out the head of a key to any drainer that asks (no lease),
 * so this changes when a head is retried, never the per-key order.
 * *out (may be NULL) gets the number of entries changed.  CO_EINVAL,
 * CO_EUNAVAIL, CO_EIO.
 */
int co_outbox_expedite(int64_t *out, co_state *st, const char *kind, const char *id,
		       int64_t now_ms);

#endif
