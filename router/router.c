/*
 * router.c - routing, dual-write through the outbox, shadow compare.
 *
 * The idea in one paragraph: the flags name a primary and maybe a secondary
 * for each (operation, ID).  A write is made durable-before-acknowledged in
 * three steps: (1) a "sync" intent bound to the secondary goes into the
 * SQLite outbox, (2) the primary runs the operation and decides, (3) the
 * primary's resulting record is mirrored into the secondary (put if newer by
 * rev) and the intent retired — or, if the secondary is down or mirrored
 * asynchronously (wherever etcd decides: etcd mode, and etcd's IDs in dual,
 * unless `mirror: sync`), the record itself is queued and the intent
 * retired.  Whoever drains an intent left by a crash copies the record from
 * the other store.  Where the record will be queued (an asynchronous
 * secondary, or one behind an open circuit breaker) the intent's
 * durability is what the write's acknowledgement rests on: a syncer thread
 * fsyncs the outbox's WAL while the primary works, one fsync for every
 * writer waiting (group commit), and the record needs no fsync of its own.
 * Every call to a secondary runs under a short bound (mirror_timeout_ms);
 * the drain leaves a store behind an open breaker alone until a probe
 * closes it.  Before
 * any store serves an ID, that ID's entries bound to it are applied first
 * (settle), so that a store never acts on a state older than one already
 * acknowledged elsewhere.  Shadow reads that differ are recorded in the
 * audit's mismatch log redacted (redact.h): the outbox carries records
 * whole, the mismatch log is for people.
 *
 * Not here: the flag file (flags/), the stores' own CAS (src/store/), the
 * outbox schema (src/core/outbox.c), reconciliation (reconcile/).
 */
#include "router.h"
#include "router_internal.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/id.h"
#include "core/outbox.h"
#include "core/state.h"
#include "flags/watcher.h"
#include "signals.h"
#include "triggers.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Outbox payload of an intent: "copy this ID from the other store".  Not
 * JSON, so it cannot be mistaken for a record.  It carries a nonce of the
 * router that wrote it, so that a router can tell its own intents (never in
 * flight while it holds the ID's stripe lock) from another process's.
 */
#define SYNC_PREFIX CO_OUTBOX_INTENT_PREFIX

/*
 * Another router's intent younger than this may belong to an operation still
 * in flight, so it is not resolved; older ones are left by a crash.  It must
 * exceed the longest a store call can take (the etcd request timeout).
 */
#define IN_FLIGHT_MS CO_OUTBOX_IN_FLIGHT_MS

/*
 * A write whose intent is younger than this when its primary returns may
 * leave the record to the syncer (deferred fulfil): no other router can
 * have resolved the intent before the primary committed.
 */
#define DEFER_FULFIL_US (IN_FLIGHT_MS * 1000LL / 3)

/* Operations on one ID are serialized inside a router (see routed_write). */
#define ROUTER_STRIPES 256

struct co_router {
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	int witness;
	int mirror_ms; /* bound on each call to a secondary */
	pthread_t drainer;
	int drainer_started;
	atomic_int stop;
	pthread_mutex_t wake_mu;
	pthread_cond_t wake;
	pthread_mutex_t stripes[ROUTER_STRIPES];
	char sync_mark[40]; /* "@sync:<nonce>": this router's intents */
	/* group commit of intents (etcd mode): see "group commit" below */
	co_state *sync_st; /* the syncer's own connection */
	pthread_t syncer;
	int syncer_started;
	pthread_mutex_t sync_mu; /* guards the six fields below */
	pthread_cond_t sync_cv;
	uint64_t sync_requested, sync_done;
	uint64_t sync_ok_from; /* tickets below it were covered by a failed sync */
	int sync_stop;	       /* set once no thread can ask for a sync any more */
	int sync_broken;       /* a sync failed and the log was not healed since */
	char sync_error[512];  /* its message */
	/* deferred fulfils (etcd mode): see "group commit" below */
	co_outbox_fulfil *fq; /* guarded by sync_mu; strings owned */
	size_t n_fq, cap_fq;
	const co_outbox_fulfil *fq_writing; /* a flush's, until written (sync_mu) */
	size_t n_fq_writing;
	pthread_mutex_t fq_flush_mu; /* one flush at a time, whole */
	pthread_mutex_t wit_mu;
	co_audit_op wit[128]; /* WITNESS_BATCH */
	size_t n_wit;
	const co_redact *redact; /* shadow mismatches are recorded redacted */
	co_redact *own_redact;	 /* the default policy when none was given */
	co_signals *signals;	 /* live-signal window, NULL: triggers off */
	co_triggers *triggers;	 /* their evaluator */
	int crash_at;		 /* tests only: see crash_point() */
	/* shadow quality (core/shadow.h): see shadow_take() */
	const co_shadow_cfg *shadow; /* borrowed; NULL: every read, nothing ignored */
	int shadow_pct[CO_OP__COUNT];
	atomic_uint_fast64_t shadow_seq[CO_OP__COUNT];
	atomic_uint_fast64_t shadow_reads[CO_OP__COUNT];
	atomic_uint_fast64_t shadow_skipped[CO_OP__COUNT];
	atomic_uint_fast64_t shadow_mismatches[CO_OP__COUNT];
	atomic_uint_fast64_t shadow_errors[CO_OP__COUNT];
};

/*
 * TEST-ONLY crash points (issue 16, tests/router/test_crash_points.c).
 * $CUTOVER_CRASH_AT names one step of a routed write; it is read once when
 * the router opens, and the process SIGKILLs itself when a write reaches
 * that step, as a power cut or kill -9 would stop it there.  Unset (every
 * deployment), crash_at is 0 and a step costs one compare of an int.
 * Never set it outside tests.
 */
enum {
	CRASH_NONE,
	CRASH_AFTER_INTENT,    /* the intent committed, the primary untouched */
	CRASH_AFTER_PRIMARY,   /* the primary committed, nothing mirrored */
	CRASH_AFTER_SECONDARY, /* the secondary holds the record, intent still set */
	CRASH_BEFORE_CLEAR,    /* about to retire the intent or queue the record */
};

static int crash_point_of(const char *name)
{
	static const char *const names[] = {"", "after_intent", "after_primary",
					    "after_secondary", "before_clear"};

	for (int i = 1; name && i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return CRASH_NONE;
}

static void crash_point(const co_router *r, int step)
{
	if (r->crash_at == step)
		kill(getpid(), SIGKILL);
}

static const char *side_name(co_side s)
{
	return s == CO_SIDE_ETCD ? "etcd" : "git";
}

static co_side side_of(const char *name)
{
	return strcmp(name, "etcd") == 0 ? CO_SIDE_ETCD : CO_SIDE_GIT;
}

static co_side other_side(co_side s)
{
	return s == CO_SIDE_ETCD ? CO_SIDE_GIT : CO_SIDE_ETCD;
}

co_store *co_router_store(co_router *r, co_side side)
{
	return side == CO_SIDE_ETCD ? r->etcd : r->git;
}

/* The store's breaker lets calls through now (closed). */
static int store_closed(co_store *s)
{
	co_breaker_info bi;

	co_store_breaker_get(&bi, s);
	return bi.state == CO_BREAKER_CLOSED;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static pthread_mutex_t *stripe(co_router *r, const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a: only spreads IDs over locks */

	while (*id)
		h = (h ^ (unsigned char)*id++) * 16777619u;
	return &r->stripes[h % ROUTER_STRIPES];
}

/*
 * A copy of the last error, to quote in a new one: co_error_set() formats
 * into the very buffer co_error_last() returns, so passing that straight in
 * garbles the message.
 */
#define CAUSE_MAX 1024

static const char *last_error(char cause[CAUSE_MAX])
{
	snprintf(cause, CAUSE_MAX, "%s", co_error_last());
	return cause;
}

static int is_intent(const co_outbox_entry *e)
{
	return co_outbox_is_intent(e);
}

/* An intent another router may still be acting on. */
static int foreign_in_flight(co_router *r, const co_outbox_entry *e)
{
	return is_intent(e) && strcmp(e->payload, r->sync_mark) != 0 &&
	       co_state_now_ms() - e->created_at < IN_FLIGHT_MS;
}

int co_router_route(co_route *out, co_router *r, co_op op, const char *id)
{
	return co_flags_watcher_route(out, r->fw, op, id);
}

/* ---- applying outbox entries ---- */

static int ack_durably(co_router *r, int64_t seq);
static void fulfil_flush(co_router *r);
static size_t fulfil_pending(co_router *r, co_kind kind, const char *id);

/*
 * Apply one entry to its target store.  Puts are "if newer", so applying an
 * entry twice, or after a newer direct mirror, changes nothing: drains may
 * race each other and the router's own direct mirrors safely.
 */
static int apply_entry(co_router *r, const co_outbox_entry *e)
{
	co_side target = side_of(e->target);
	co_store *ts = co_router_store(r, target);
	co_kind kind = strcmp(e->kind, "swarm") == 0 ? CO_KIND_SWARM : CO_KIND_TASK;
	co_record *rec = NULL;
	int error;

	if (e->payload == NULL) {
		error = co_store_remove(ts, kind, e->id);
		return error == CO_ENOTFOUND ? 0 : error;
	}
	if (is_intent(e)) {
		co_store *src = co_router_store(r, other_side(target));
		int prev = co_store_call_timeout(r->mirror_ms);

		/* A copy, never a decision: a hung source must not hold an ID's
		 * settle (or the drain) for a whole request timeout. */
		error = co_store_get(&rec, src, kind, e->id);
		co_store_call_timeout(prev);
		if (error == CO_ENOTFOUND)
			return 0; /* nothing was written there: nothing to copy */
	} else {
		error = co_record_from_json(&rec, e->payload, strlen(e->payload));
	}
	if (error == 0)
		error = co_store_put_if_newer(ts, rec, NULL);
	co_record_free(rec);
	return error;
}

/*
 * Per-ID order: apply the pending entries for `id` bound to `side`, oldest
 * first, except the caller's own fresh intent `mine`.  If one cannot be
 * applied, or another router is writing this ID with `side` as its
 * secondary right now, the store must not serve the ID now: CO_EUNAVAIL.
 *
 * The second case is what keeps two routers with different flags (one has
 * seen a flip, the other not yet) from picking two winners: each pushes
 * its intent before it settles, so whichever settles second sees the
 * other's intent and backs off.
 */
static int settle(co_router *r, co_side side, co_kind kind, const char *id, int64_t mine)
{
	co_outbox_list l = {0};
	size_t i;
	int error;

	/* A deferred fulfil may hold this ID's record: written, it is applied
	 * below without asking the other store (which may be down).  Only
	 * then: other IDs' fulfils are the syncer's to write, off this path. */
	if (fulfil_pending(r, kind, id) > 0)
		fulfil_flush(r);
	if ((error = co_outbox_pending_for(&l, r->st, side_name(side), co_kind_name(kind),
					   id)) < 0)
		return error;
	for (i = 0; i < l.n; i++) {
		const co_outbox_entry *e = l.items[i];

		if (e->seq == mine)
			continue;
		if (foreign_in_flight(r, e)) {
			error = co_error_set(
			    CO_EUNAVAIL,
			    "%s %s: another router is writing it through the "
			    "other store right now; try again",
			    co_kind_name(kind), id);
			goto done;
		}
		if ((error = apply_entry(r, e)) < 0) {
			char cause[CAUSE_MAX];

			error = co_error_set(
			    CO_EUNAVAIL,
			    "%s %s: %zu earlier write(s) not yet applied to %s "
			    "and it cannot take them now: %s",
			    co_kind_name(kind), id, l.n - i, side_name(side),
			    last_error(cause));
			goto done;
		}
		if ((error = ack_durably(r, e->seq)) < 0)
			goto done;
	}
done:
	co_outbox_list_clear(&l);
	return error;
}

/* ---- witness log ---- */

/*
 * Routed operations are logged in batches: one SQLite transaction per op
 * would cost more than the op itself.  The buffer is flushed when full, by
 * the drain thread, and on close; a crash loses at most one buffer of the
 * witness log, never a write.
 */
#define WITNESS_BATCH 128

static void witness_flush_locked(co_router *r)
{
	size_t i;

	if (r->n_wit == 0)
		return;
	co_audit_ops_add(r->st, r->wit, r->n_wit);
	for (i = 0; i < r->n_wit; i++) {
		free(r->wit[i].op);
		free(r->wit[i].id);
		free(r->wit[i].mode);
		free(r->wit[i].primary);
		free(r->wit[i].outcome);
		free(r->wit[i].error);
	}
	r->n_wit = 0;
}

static void witness_flush(co_router *r)
{
	pthread_mutex_lock(&r->wit_mu);
	witness_flush_locked(r);
	pthread_mutex_unlock(&r->wit_mu);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void witness(co_router *r, const co_route *rt, const char *id, int error,
		    int64_t t0)
{
	co_audit_op *o;
	int64_t us = mono_us() - t0;

	/* the triggers' window: which store decided, how it ended, how long */
	if (r->signals)
		co_signals_record(r->signals, rt->primary, rt->op, error, us);
	if (!r->witness)
		return;
	pthread_mutex_lock(&r->wit_mu);
	o = &r->wit[r->n_wit++];
	memset(o, 0, sizeof(*o));
	o->op = dup_or_null(co_op_name(rt->op));
	o->id = dup_or_null(id);
	o->mode = dup_or_null(co_mode_name(rt->mode));
	o->primary = dup_or_null(side_name(rt->primary));
	o->outcome = dup_or_null(error == 0 ? "ok" : co_error_name(error));
	o->latency_us = us;
	o->error = error == 0 ? NULL : dup_or_null(co_error_last());
	if (r->n_wit == WITNESS_BATCH)
		witness_flush_locked(r);
	pthread_mutex_unlock(&r->wit_mu);
}

/* ---- writes ---- */

typedef int (*write_fn)(co_record **out, co_store *s, const void *arg);

/* ---- group commit ---- */

_Atomic int co_router__hold_fulfils;

static void fulfil_items_free(co_outbox_fulfil *items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free((char *)items[i].id);
		free((char *)items[i].payload);
	}
	free(items);
}

/*
 * Write every deferred fulfil queued so far, in one transaction.  If that
 * fails the intents stay intents, which is safe: draining one copies the
 * record from the primary.  Whole flushes are serialized, so a caller that
 * returns from here knows every fulfil queued before it is written.
 */
static void fulfil_flush(co_router *r)
{
	co_outbox_fulfil *items;
	size_t n;

	pthread_mutex_lock(&r->fq_flush_mu);
	pthread_mutex_lock(&r->sync_mu);
	items = r->fq;
	n = r->n_fq;
	r->fq = NULL;
	r->n_fq = r->cap_fq = 0;
	r->fq_writing = items;
	r->n_fq_writing = n;
	pthread_mutex_unlock(&r->sync_mu);
	if (n > 0)
		co_outbox_fulfil_intents(r->st, items, n, 0);
	pthread_mutex_lock(&r->sync_mu);
	r->fq_writing = NULL;
	r->n_fq_writing = 0;
	pthread_mutex_unlock(&r->sync_mu);
	pthread_mutex_unlock(&r->fq_flush_mu);
	fulfil_items_free(items, n);
}

static size_t count_id(const co_outbox_fulfil *items, size_t n, co_kind kind,
		       const char *id)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (strcmp(items[i].id, id) == 0 &&
		    strcmp(items[i].kind, co_kind_name(kind)) == 0)
			c++;
	return c;
}

/*
 * Deferred fulfils not yet written, queued or being written: all of them
 * (id NULL), or those of kind/id.  After a fulfil_flush() that follows a
 * non-zero answer, those are written (the flush waits for one in progress).
 */
static size_t fulfil_pending(co_router *r, co_kind kind, const char *id)
{
	size_t n;

	pthread_mutex_lock(&r->sync_mu);
	if (id == NULL)
		n = r->n_fq + r->n_fq_writing;
	else
		n = count_id(r->fq, r->n_fq, kind, id) +
		    count_id(r->fq_writing, r->n_fq_writing, kind, id);
	pthread_mutex_unlock(&r->sync_mu);
	return n;
}

/* Queue a fulfil for the syncer; takes `payload`.  CO_ENOMEM: nothing queued. */
static int fulfil_defer(co_router *r, int64_t seq, co_side target, co_kind kind,
			const char *id, char *payload, int mirror_failed)
{
	char *id_copy = strdup(id);
	int error = 0;

	pthread_mutex_lock(&r->sync_mu);
	if (id_copy != NULL && r->n_fq == r->cap_fq) {
		size_t cap = r->cap_fq ? 2 * r->cap_fq : 64;
		co_outbox_fulfil *fq = realloc(r->fq, cap * sizeof(*fq));

		if (fq != NULL) {
			r->fq = fq;
			r->cap_fq = cap;
		}
	}
	if (id_copy == NULL || r->n_fq == r->cap_fq) {
		error = CO_ENOMEM;
	} else {
		r->fq[r->n_fq++] = (co_outbox_fulfil){
		    seq, side_name(target), co_kind_name(kind), id_copy, payload,
		    mirror_failed};
		pthread_cond_signal(&r->sync_cv);
	}
	pthread_mutex_unlock(&r->sync_mu);
	if (error) {
		free(id_copy);
		free(payload);
	}
	return error;
}

/*
 * In etcd mode every acknowledged write owes git a record, and what says so
 * in the outbox must survive a power loss before the write is acknowledged.
 * Syncing it after the etcd txn would add an fsync to every claim.  Instead
 * the intent is committed without a sync (so other routers see it at once,
 * and a process crash cannot lose it), a sync is requested, and the etcd
 * txn runs while the syncer fsyncs the state's WAL, which makes the intent
 * and every commit before it durable (co_state_sync); writers that ask
 * meanwhile share the next fsync.  After the primary committed, the record
 * replaces the intent without a sync of its own, and the write is
 * acknowledged once the sync that covers its intent has returned.  The
 * record does not even wait for that: it is queued and the syncer writes
 * the queue, many records a transaction, after the syncs writers wait on
 * (fulfil_defer).  Whoever settles an ID or drains a batch writes the queue
 * first, so a record in memory is never passed over for the intent (which
 * needs the other store to resolve).
 *
 * A durable intent is enough: if a power cut loses the unsynced record
 * (WAL recovery keeps a prefix of the commits, so the intent is there),
 * draining the intent copies the record from etcd, and until that
 * succeeds settle() refuses to serve the ID from git (CO_EUNAVAIL), so git
 * never answers with the state from before the write.  After a restart the
 * intent is another router's (the nonce changed): it is left alone for
 * IN_FLIGHT_MS after it was written, then resolved.
 *
 * A failed fsync fails every write waiting on it, and every later one
 * until the state is healed: after a failed fsync the kernel may have
 * dropped the unsynced pages, and a later fsync that succeeds says nothing
 * about them (nor, since WAL recovery stops at the first lost frame, about
 * the commits after them).  While broken, each round of the syncer first
 * checkpoints the whole log into the database file and empties it
 * (co_state_wal_reset), which rewrites what may have been lost; once that
 * and the round's fsync succeed, writes are acknowledged again.  A disk
 * that was full or failing for a while thus needs no restart of serve.
 */
static void *syncer_main(void *arg)
{
	co_router *r = arg;
	uint64_t target;
	int error, broken;

	pthread_mutex_lock(&r->sync_mu);
	for (;;) {
		if (r->sync_requested == r->sync_done) {
			if (r->n_fq > 0 &&
			    (!atomic_load(&co_router__hold_fulfils) || r->sync_stop)) {
				/* Syncs first: they are what writers wait on. */
				pthread_mutex_unlock(&r->sync_mu);
				fulfil_flush(r);
				pthread_mutex_lock(&r->sync_mu);
				continue;
			}
			if (r->sync_stop)
				break;
			pthread_cond_wait(&r->sync_cv, &r->sync_mu);
			continue;
		}
		/* Every ticket up to target was handed out after its intent was
		 * committed, so this fsync, which starts now, covers them all. */
		target = r->sync_requested;
		broken = r->sync_broken;
		pthread_mutex_unlock(&r->sync_mu);
		error = broken ? co_state_wal_reset(r->sync_st) : 0;
		if (error == 0)
			error = co_state_sync(r->sync_st);
		pthread_mutex_lock(&r->sync_mu);
		if (error < 0) {
			r->sync_broken = 1;
			r->sync_ok_from = target + 1;
			snprintf(r->sync_error, sizeof(r->sync_error), "%s",
				 co_error_last());
		} else {
			r->sync_broken = 0;
		}
		r->sync_done = target;
		pthread_cond_broadcast(&r->sync_cv);
	}
	pthread_mutex_unlock(&r->sync_mu);
	return NULL;
}

/* Ask for everything committed so far to be made durable; a ticket for it. */
static uint64_t request_sync(co_router *r)
{
	uint64_t ticket;

	pthread_mutex_lock(&r->sync_mu);
	ticket = ++r->sync_requested;
	pthread_cond_signal(&r->sync_cv);
	pthread_mutex_unlock(&r->sync_mu);
	return ticket;
}

/*
 * Wait until the sync for `ticket` has returned.  CO_EIO if it failed (or,
 * conservatively, if a later one failed before this thread woke up: the
 * write is then refused though it may be durable, which is safe).
 */
static int wait_sync(co_router *r, uint64_t ticket)
{
	char why[sizeof(r->sync_error)];
	int failed;

	pthread_mutex_lock(&r->sync_mu);
	while (r->sync_done < ticket)
		pthread_cond_wait(&r->sync_cv, &r->sync_mu);
	failed = ticket < r->sync_ok_from;
	if (failed) /* the syncer rewrites it on each failure */
		memcpy(why, r->sync_error, sizeof(why));
	pthread_mutex_unlock(&r->sync_mu);
	if (failed)
		return co_error_set(CO_EIO, "outbox: could not be made durable: %s", why);
	return 0;
}

/*
 * Retire an applied entry durably, as co_outbox_ack() does, but with the
 * fsync shared through the group commit: SQLite's own synced commit would
 * hold the state's mutex during the fsync, and every writer of every other
 * ID (the claims' intents) would wait behind the drain.  The caller holds
 * the ID's stripe lock until this returns, as before: nothing acts on the
 * ID until the ack is as durable as co_outbox_ack() makes it.
 */
static int ack_durably(co_router *r, int64_t seq)
{
	int error, broken;

	pthread_mutex_lock(&r->sync_mu);
	broken = r->sync_broken;
	pthread_mutex_unlock(&r->sync_mu);
	if (!r->syncer_started || broken)
		return co_outbox_ack(r->st, seq);
	if ((error = co_outbox_ack_unsynced(r->st, seq)) < 0)
		return error;
	return wait_sync(r, request_sync(r));
}

/* ack_durably() for many entries, with one shared sync. */
static int ack_many_durably(co_router *r, const int64_t *seqs, size_t n)
{
	int error, broken;

	pthread_mutex_lock(&r->sync_mu);
	broken = r->sync_broken;
	pthread_mutex_unlock(&r->sync_mu);
	if (!r->syncer_started || broken || n == 0)
		return co_outbox_ack_many(r->st, seqs, n, 1);
	if ((error = co_outbox_ack_many(r->st, seqs, n, 0)) < 0)
		return error;
	return wait_sync(r, request_sync(r));
}

/*
 * Mirror the primary's result into the secondary, or queue it.  Called after
 * the primary committed; the write is acknowledged only if this returns 0.
 */
static int mirror(co_router *r, const co_route *rt, co_kind kind, const char *id,
		  const co_record *rec, int64_t intent, uint64_t ticket, int64_t t0)
{
	co_store *sec = co_router_store(r, rt->secondary);
	char *json = NULL;
	int error;

	if (!rt->secondary_async) {
		/* The secondary gets a short deadline: past it (or with its
		 * breaker open, at once) the record goes to the outbox below. */
		int prev = co_store_call_timeout(r->mirror_ms);

		if (rec == NULL) {
			error = co_store_remove(sec, kind, id);
			if (error == CO_ENOTFOUND)
				error = 0;
		} else {
			error = co_store_put_if_newer(sec, rec, NULL);
		}
		co_store_call_timeout(prev);
		if (error == 0) {
			crash_point(r, CRASH_AFTER_SECONDARY);
			crash_point(r, CRASH_BEFORE_CLEAR);
			return co_outbox_ack_intent(r->st, intent), 0;
		}
	}
	crash_point(r, CRASH_BEFORE_CLEAR);
	if (rec && (json = co_record_to_json(rec, 0)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	/* The intent becomes the record owed.  With a ticket, the group commit
	 * makes the intent durable and that is enough (see above), so the
	 * syncer writes the record later, off the write's path, unless the
	 * write took so long that another router may resolve the intent
	 * meanwhile; without a ticket, one synced transaction does it. */
	if (ticket && mono_us() - t0 < DEFER_FULFIL_US &&
	    fulfil_defer(r, intent, rt->secondary, kind, id, json,
			 !rt->secondary_async) == 0) {
		json = NULL;
		error = 0;
	} else {
		/* a synchronous mirror that failed: owed at once, not lag */
		co_outbox_fulfil f = {intent, side_name(rt->secondary), co_kind_name(kind),
				      id, json, !rt->secondary_async};

		error = co_outbox_fulfil_intents(r->st, &f, 1, ticket == 0);
	}
	free(json);
	if (error == 0 && ticket)
		error = wait_sync(r, ticket);
	if (error == 0) {
		pthread_mutex_lock(&r->wake_mu);
		pthread_cond_signal(&r->wake);
		pthread_mutex_unlock(&r->wake_mu);
	}
	return error;
}

static int routed_write(co_record **out, co_router *r, co_op op, co_kind kind,
			const char *id, write_fn fn, const void *arg, int is_remove)
{
	co_route rt;
	co_record *rec = NULL;
	pthread_mutex_t *mu;
	int64_t intent = 0, t0 = mono_us();
	uint64_t ticket = 0;
	int error, merr;

	if ((error = co_id_validate(id)) < 0)
		return error;
	/* One operation per ID at a time in this router: the route is taken,
	 * the ID settled, the primary written and the secondary mirrored
	 * without another thread's flip-straddling write in between. */
	mu = stripe(r, id);
	pthread_mutex_lock(mu);
	if ((error = co_router_route(&rt, r, op, id)) < 0)
		goto unlock;
	if (rt.secondary != CO_SIDE_NONE &&
	    (error = co_outbox_push_intent(&intent, r->st, side_name(rt.secondary),
					   co_kind_name(kind), id, r->sync_mark)) < 0)
		goto done;
	if (intent)
		crash_point(r, CRASH_AFTER_INTENT);
	/* Asynchronous secondary (etcd mode), or one behind an open breaker:
	 * the record will be queued, not mirrored, so start making the intent
	 * durable now, while the primary works (group commit, above), rather
	 * than fsync the record after it. */
	if (intent && r->syncer_started &&
	    (rt.secondary_async || !store_closed(co_router_store(r, rt.secondary))))
		ticket = request_sync(r);
	if ((error = settle(r, rt.primary, kind, id, intent)) < 0) {
		if (intent)
			co_outbox_ack_intent(r->st, intent);
		goto done;
	}

	error = fn(&rec, co_router_store(r, rt.primary), arg);
	if (error == 0 && intent)
		crash_point(r, CRASH_AFTER_PRIMARY);

	if (rt.secondary == CO_SIDE_NONE)
		goto done;
	if (error == 0) {
		if ((merr = mirror(r, &rt, kind, id, is_remove ? NULL : rec, intent,
				   ticket, t0)) < 0) {
			/* The primary committed but neither the secondary nor the
			 * outbox took the record: the intent stays and any drain
			 * copies the record over later; do not acknowledge. */
			char cause[CAUSE_MAX];

			error = co_error_set(CO_EUNAVAIL,
					     "%s %s: written to %s but not yet safe: %s",
					     co_kind_name(kind), id,
					     side_name(rt.primary), last_error(cause));
			goto done;
		}
	} else if ((error != CO_EUNAVAIL && error != CO_EIO) || co_store_last_call_refused()) {
		/* A clear refusal, or the primary's breaker refused the call
		 * before it left: the primary changed nothing.  (An intent kept
		 * for a write that never left would block the ID from git
		 * after a rollback for as long as etcd stays hung.) */
		co_outbox_ack_intent(r->st, intent);
	}
	/* On CO_EUNAVAIL the primary may or may not have committed: the
	 * intent stays, and draining it copies whatever the primary holds. */
done:
	witness(r, &rt, id, error, t0);
unlock:
	pthread_mutex_unlock(mu);
	if (error == 0 || error == CO_ECONFLICT) {
		*out = rec;
		rec = NULL;
	}
	co_record_free(rec);
	return error;
}

struct op_arg {
	const co_record *rec;
	const char *id, *swarm;
	int64_t ttl;
	co_status to;
	co_kind kind;
};

static int do_create(co_record **out, co_store *s, const void *v)
{
	return co_store_task_create(out, s, ((const struct op_arg *)v)->rec);
}

static int do_claim(co_record **out, co_store *s, const void *v)
{
	const struct op_arg *a = v;

	return co_store_claim(out, s, a->id, a->swarm, a->ttl);
}

static int do_renew(co_record **out, co_store *s, const void *v)
{
	const struct op_arg *a = v;

	return co_store_renew(out, s, a->id, a->swarm, a->ttl);
}

static int do_release(co_record **out, co_store *s, const void *v)
{
	const struct op_arg *a = v;

	return co_store_release(out, s, a->id, a->swarm, a->to);
}

static int do_register(co_record **out, co_store *s, const void *v)
{
	return co_store_swarm_register(out, s, ((const struct op_arg *)v)->rec);
}

static int do_remove(co_record **out, co_store *s, const void *v)
{
	const struct op_arg *a = v;

	*out = NULL;
	return co_store_remove(s, a->kind, a->id);
}

int co_router_task_create(co_record **out, co_router *r, const co_record *task)
{
	struct op_arg a = {.rec = task};

	return routed_write(out, r, CO_OP_TASK_CREATE, CO_KIND_TASK, task->id, do_create,
			    &a, 0);
}

int co_router_claim(co_record **out, co_router *r, const char *id, const char *swarm,
		    int64_t ttl)
{
	struct op_arg a = {.id = id, .swarm = swarm, .ttl = ttl};

	return routed_write(out, r, CO_OP_TASK_CLAIM, CO_KIND_TASK, id, do_claim, &a, 0);
}

int co_router_renew(co_record **out, co_router *r, const char *id, const char *swarm,
		    int64_t ttl)
{
	struct op_arg a = {.id = id, .swarm = swarm, .ttl = ttl};

	return routed_write(out, r, CO_OP_TASK_RENEW, CO_KIND_TASK, id, do_renew, &a, 0);
}

int co_router_release(co_record **out, co_router *r, const char *id, const char *swarm,
		      co_status to)
{
	struct op_arg a = {.id = id, .swarm = swarm, .to = to};

	return routed_write(out, r, CO_OP_TASK_RELEASE, CO_KIND_TASK, id, do_release, &a,
			    0);
}

int co_router_swarm_register(co_record **out, co_router *r, const co_record *swarm)
{
	struct op_arg a = {.rec = swarm};

	return routed_write(out, r, CO_OP_SWARM_REGISTER, CO_KIND_SWARM, swarm->id,
			    do_register, &a, 0);
}

int co_router_remove(co_router *r, co_kind kind, const char *id)
{
	struct op_arg a = {.id = id, .kind = kind};
	co_record *none = NULL;
	co_op op = CO_OP_SWARM_REMOVE; /* the only removal the contract has */

	return routed_write(&none, r, op, kind, id, do_remove, &a, 1);
}

/* ---- reads ---- */

/*
 * Sampling (core/shadow.h): 1 if this shadow read of `op` is compared with
 * etcd, 0 if git alone serves it.  One atomic add per read; the rule is
 * deterministic, so a test counts exactly which reads are compared.
 */
static int shadow_take(co_router *r, co_op op)
{
	int pct = r->shadow_pct[op];
	uint64_t k;

	if (pct >= 100) {
		atomic_fetch_add_explicit(&r->shadow_reads[op], 1, memory_order_relaxed);
		return 1;
	}
	k = atomic_fetch_add_explicit(&r->shadow_seq[op], 1, memory_order_relaxed);
	if (co_shadow_sampled(k, pct)) {
		atomic_fetch_add_explicit(&r->shadow_reads[op], 1, memory_order_relaxed);
		return 1;
	}
	atomic_fetch_add_explicit(&r->shadow_skipped[op], 1, memory_order_relaxed);
	return 0;
}

/* A compared read's verdict, counted once per read (a list: worst of its IDs). */
enum { SHADOW_EQUAL = 0, SHADOW_MISMATCH = 1, SHADOW_ERROR = 2 };

static void shadow_count(co_router *r, co_op op, int verdict)
{
	if (verdict == SHADOW_MISMATCH)
		atomic_fetch_add_explicit(&r->shadow_mismatches[op], 1,
					  memory_order_relaxed);
	else if (verdict == SHADOW_ERROR)
		atomic_fetch_add_explicit(&r->shadow_errors[op], 1, memory_order_relaxed);
}

void co_router_shadow_stats(co_shadow_stats *out, co_router *r)
{
	memset(out, 0, sizeof(*out));
	for (int op = 0; r && op < CO_OP__COUNT; op++) {
		out->reads[op] = atomic_load(&r->shadow_reads[op]);
		out->skipped[op] = atomic_load(&r->shadow_skipped[op]);
		out->mismatches[op] = atomic_load(&r->shadow_mismatches[op]);
		out->errors[op] = atomic_load(&r->shadow_errors[op]);
	}
}

/* Compare git's record of `id` (NULL: absent) with etcd's; the verdict. */
static int shadow_compare(co_router *r, co_op op, co_kind kind, const char *id,
			  const co_record *git_rec)
{
	co_record *e = NULL;
	char *gj = NULL, *ej = NULL, *rg = NULL, *re = NULL;
	int error, prev, verdict = SHADOW_EQUAL;

	/* etcd behind an open breaker: nothing to compare, and one
	 * "<unavailable>" row per read would only bury the real mismatches. */
	if (!store_closed(r->etcd))
		return SHADOW_ERROR;
	prev = co_store_call_timeout(r->mirror_ms);
	error = co_store_get(&e, r->etcd, kind, id);
	co_store_call_timeout(prev);
	/* Shadow is at no user risk: an etcd failure is recorded, never returned. */
	if (error < 0 && error != CO_ENOTFOUND) {
		co_audit_mismatch_add(r->st, co_op_name(op), id, NULL, "<unavailable>");
		return SHADOW_ERROR;
	}
	if (git_rec && e && co_record_equal(git_rec, e))
		goto done;
	if (!git_rec && !e)
		goto done;
	gj = git_rec ? co_record_to_json(git_rec, 0) : NULL;
	ej = e ? co_record_to_json(e, 0) : NULL;
	if ((git_rec && gj == NULL) || (e && ej == NULL))
		goto done;
	/* A difference only in fields the ignore rules name is no mismatch. */
	if (r->shadow && r->shadow->ignore_rd && co_shadow_equal(r->shadow, gj, ej))
		goto done;
	verdict = SHADOW_MISMATCH;
	/* The mismatch log is read by operators, not a store: redacted, each
	 * hidden field saying whether the two values were equal. */
	if (co_redact_pair(&rg, &re, r->redact, gj, ej) < 0)
		goto done;
	co_audit_mismatch_add(r->st, co_op_name(op), id, rg, re);
done:
	free(gj);
	free(ej);
	free(rg);
	free(re);
	co_record_free(e);
	return verdict;
}

int co_router_get(co_record **out, co_router *r, co_kind kind, const char *id)
{
	co_op op = kind == CO_KIND_SWARM ? CO_OP_SWARM_GET : CO_OP_TASK_GET;
	co_record *rec = NULL;
	co_route rt;
	pthread_mutex_t *mu;
	int64_t t0 = mono_us();
	int error;

	if ((error = co_id_validate(id)) < 0)
		return error;
	mu = stripe(r, id);
	pthread_mutex_lock(mu);
	if ((error = co_router_route(&rt, r, op, id)) < 0) {
		pthread_mutex_unlock(mu);
		return error;
	}
	if ((error = settle(r, rt.primary, kind, id, 0)) < 0)
		goto done;
	error = co_store_get(&rec, co_router_store(r, rt.primary), kind, id);
	if (rt.compare_reads && (error == 0 || error == CO_ENOTFOUND) &&
	    shadow_take(r, op))
		shadow_count(r, op, shadow_compare(r, op, kind, id, rec));
	if (error == 0) {
		*out = rec;
		rec = NULL;
	}
done:
	witness(r, &rt, id, error, t0);
	pthread_mutex_unlock(mu);
	co_record_free(rec);
	return error;
}

/* Index of `id` in a sorted list, or -1. */
static long find_id(const co_record_list *l, const char *id)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(l->items[mid]->id, id);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int co_router_list(co_record_list *out, co_router *r, co_kind kind)
{
	co_op op = kind == CO_KIND_SWARM ? CO_OP_SWARM_LIST : CO_OP_TASK_LIST;
	co_record_list g = {0}, e = {0}, res = {0};
	co_route rt;
	int64_t t0 = mono_us();
	size_t i;
	int error;

	if ((error = co_router_route(&rt, r, op, NULL)) < 0)
		return error;
	/* shadow: a read sampled out is served by the primary (git) alone */
	if (rt.compare_reads && !shadow_take(r, op))
		rt.compare_reads = 0;
	if (!rt.split && !rt.compare_reads) {
		error = co_store_list(out, co_router_store(r, rt.primary), kind);
		goto done;
	}
	if ((error = co_store_list(&g, r->git, kind)) < 0 && !rt.compare_reads)
		goto done;
	if (rt.compare_reads) {
		/* shadow: git serves; etcd is read and compared, at no risk */
		if (error < 0)
			goto done;
		int prev = co_store_call_timeout(r->mirror_ms);
		int eerr = store_closed(r->etcd) ? co_store_list(&e, r->etcd, kind)
						 : CO_EUNAVAIL;

		co_store_call_timeout(prev);
		if (eerr == 0) {
			int worst = SHADOW_EQUAL, v;

			for (i = 0; i < g.n; i++) {
				long j = find_id(&e, g.items[i]->id);

				if (j < 0 || !co_record_equal(g.items[i], e.items[j])) {
					v = shadow_compare(r, op, kind, g.items[i]->id,
							   g.items[i]);
					worst = v > worst ? v : worst;
				}
			}
			for (i = 0; i < e.n; i++)
				if (find_id(&g, e.items[i]->id) < 0) {
					v = shadow_compare(r, op, kind, e.items[i]->id,
							   NULL);
					worst = v > worst ? v : worst;
				}
			shadow_count(r, op, worst);
		} else {
			shadow_count(r, op, SHADOW_ERROR);
		}
		*out = g;
		g = (co_record_list){0};
		goto done;
	}
	/* split: each ID from its primary; an ID one store lacks from the other */
	if ((error = co_store_list(&e, r->etcd, kind)) < 0)
		goto done;
	for (i = 0; i < g.n; i++) {
		co_route one;
		long j = find_id(&e, g.items[i]->id);

		co_router_route(&one, r, op, g.items[i]->id);
		if (j >= 0 && one.primary == CO_SIDE_ETCD)
			continue; /* taken from etcd below */
		if ((error = co_record_list_push(&res, g.items[i])) < 0)
			goto done;
		g.items[i] = NULL;
	}
	for (i = 0; i < e.n; i++) {
		co_route one;
		long j = find_id(&g, e.items[i]->id);

		co_router_route(&one, r, op, e.items[i]->id);
		if (j >= 0 && one.primary == CO_SIDE_GIT)
			continue;
		if ((error = co_record_list_push(&res, e.items[i])) < 0)
			goto done;
		e.items[i] = NULL;
	}
	co_record_list_sort(&res);
	*out = res;
	res = (co_record_list){0};
done:
	witness(r, &rt, NULL, error, t0);
	co_record_list_clear(&g);
	co_record_list_clear(&e);
	co_record_list_clear(&res);
	return error;
}

/* ---- draining ---- */

static int cmp_mutex_ptr(const void *a, const void *b)
{
	const pthread_mutex_t *x = *(pthread_mutex_t *const *)a,
			      *y = *(pthread_mutex_t *const *)b;

	return x < y ? -1 : x > y;
}

/*
 * The records of a batch bound to `target` (the heads of distinct IDs),
 * written in as few store calls as the store allows: one git commit, or
 * etcd txns of 64 (co_store_put_batch_if_newer).  One commit or one txn
 * per record could not keep up with the writes of a store that was down
 * a while, nor with etcd mode's writes.  Their stripe locks are taken in
 * address order, so two drains never deadlock.  Entries applied here are
 * marked in `done`; on any failure none is, and the caller applies them
 * one by one (each failure then gets its own backoff).
 */
static void drain_records(co_router *r, const co_outbox_list *l, const char *target,
			  char *done, size_t *applied)
{
	const co_record **recs = calloc(l->n, sizeof(*recs));
	size_t *idx = calloc(l->n, sizeof(*idx));
	int64_t *seqs = calloc(l->n, sizeof(*seqs));
	pthread_mutex_t **mus = calloc(l->n, sizeof(*mus));
	size_t i, k = 0, nmu = 0;
	int error;

	if (recs == NULL || idx == NULL || seqs == NULL || mus == NULL)
		goto out;
	for (i = 0; i < l->n; i++) {
		const co_outbox_entry *e = l->items[i];
		co_record *rec = NULL;

		if (strcmp(e->target, target) != 0 || e->payload == NULL || is_intent(e) ||
		    co_record_from_json(&rec, e->payload, strlen(e->payload)) < 0)
			continue;
		recs[k] = rec;
		idx[k++] = i;
		mus[nmu++] = stripe(r, e->id);
	}
	co_error_clear();
	if (k < 2)
		goto out; /* nothing to gain */
	qsort(mus, nmu, sizeof(*mus), cmp_mutex_ptr);
	for (i = 0; i < nmu; i++)
		if (i == 0 || mus[i] != mus[i - 1])
			pthread_mutex_lock(mus[i]);
	error = co_store_put_batch_if_newer(co_router_store(r, side_of(target)), recs, k,
					    NULL);
	if (error == 0) {
		for (i = 0; i < k; i++) {
			seqs[i] = l->items[idx[i]]->seq;
			done[idx[i]] = 1;
		}
		if (ack_many_durably(r, seqs, k) == 0)
			*applied += k;
	}
	for (i = nmu; i-- > 0;)
		if (i == 0 || mus[i] != mus[i - 1])
			pthread_mutex_unlock(mus[i]);
out:
	for (i = 0; recs && i < k; i++)
		co_record_free((co_record *)recs[i]);
	free(recs);
	free(idx);
	free(seqs);
	free(mus);
}

/*
 * Whether the drain may call store s now: its breaker is closed, or it is
 * open and due a probe, and a ping (under the secondary's bound) is that
 * probe and answers.  Without this a process with no probe thread of its
 * own (the CLI, the demo) would never close a breaker the drain alone
 * calls through.
 */
static int store_ready(co_router *r, co_store *s)
{
	co_breaker_info bi;
	int prev, ok;

	co_store_breaker_get(&bi, s);
	if (bi.state == CO_BREAKER_CLOSED)
		return 1;
	if (bi.state != CO_BREAKER_OPEN || bi.next_probe_in_ms > 0)
		return 0;
	prev = co_store_call_timeout(r->mirror_ms);
	ok = co_store_ping(s) == 0;
	co_store_call_timeout(prev);
	return ok;
}

/* CO_EUNAVAIL: the drain leaves store s alone while its breaker is open. */
static int breaker_refusal(co_store *s)
{
	co_breaker_info bi;

	co_store_breaker_get(&bi, s);
	return co_error_set(CO_EUNAVAIL,
			    "%s circuit %s: %s; its outbox entries wait for it to close "
			    "(last error: %s)",
			    co_store_name(s), co_breaker_state_name(bi.state), bi.why,
			    bi.last_error);
}

static int drain_batch(co_router *r, const char *target, size_t *applied)
{
	co_outbox_list l = {0};
	co_store *skipped = NULL;
	char *done = NULL;
	size_t i;
	int error, first_error = 0, prev, git_ok, etcd_ok;

	*applied = 0;
	/* A store behind an open breaker is not drained to: its entries stay
	 * due, earn no backoff and cost no write each round (its breaker's
	 * closing makes them due again anyway), and the other store's entries
	 * are not starved behind them. */
	git_ok = store_ready(r, r->git);
	etcd_ok = store_ready(r, r->etcd);
	if (target == NULL && git_ok != etcd_ok) {
		skipped = git_ok ? r->etcd : r->git;
		target = git_ok ? "git" : "etcd";
	}
	if (target == NULL && !git_ok)
		return breaker_refusal(r->git);
	if (target && !(strcmp(target, "git") == 0 ? git_ok : etcd_ok))
		return breaker_refusal(co_router_store(r, side_of(target)));
	if (fulfil_pending(r, CO_KIND_TASK, NULL) > 0)
		fulfil_flush(r); /* records to copy, not intents to look up */
	if ((error = co_outbox_next_batch(&l, r->st, target, 256, co_state_now_ms())) < 0)
		return error;

	/* Every drain call is a mirror: under the secondary's short bound. */
	prev = co_store_call_timeout(r->mirror_ms);
	if (l.n > 0 && (done = calloc(l.n, 1)) != NULL) {
		drain_records(r, &l, "git", done, applied);
		drain_records(r, &l, "etcd", done, applied);
	}
	for (i = 0; i < l.n; i++) {
		const co_outbox_entry *e = l.items[i];
		pthread_mutex_t *mu = stripe(r, e->id);

		if (done && done[i])
			continue;
		pthread_mutex_lock(mu);
		if (foreign_in_flight(r, e)) {
			/* its router may still finish it: look again shortly */
			co_outbox_fail(r->st, e->seq, "in flight in another router", 200);
		} else if (apply_entry(r, e) == 0) {
			ack_durably(r, e->seq);
			(*applied)++;
		} else {
			int attempts = e->attempts;
			int64_t backoff = 50LL << (attempts < 8 ? attempts : 8);

			if (!first_error)
				first_error = co_error_last_code() ? co_error_last_code()
								   : CO_EUNAVAIL;
			co_outbox_fail(r->st, e->seq, co_error_last(), backoff);
		}
		pthread_mutex_unlock(mu);
	}
	co_store_call_timeout(prev);
	error = l.n > 0 && *applied == 0 ? first_error : 0;
	/* nothing done, and a store was left out: say why it was */
	if (error == 0 && *applied == 0 && skipped)
		error = breaker_refusal(skipped);
	free(done);
	co_outbox_list_clear(&l);
	return error;
}

int co_router_drain(co_router *r, const char *target, int budget_ms, int64_t *left)
{
	int64_t deadline = mono_us() + (int64_t)budget_ms * 1000;
	int error = 0;

	for (;;) {
		size_t applied = 0;

		error = drain_batch(r, target, &applied);
		if (applied == 0 || mono_us() >= deadline)
			break;
	}
	if (left)
		co_outbox_depth(left, r->st, target);
	return error;
}

static void *drainer_main(void *arg)
{
	co_router *r = arg;

	while (!atomic_load(&r->stop)) {
		size_t applied = 0;
		struct timespec ts;

		drain_batch(r, NULL, &applied);
		witness_flush(r);
		if (applied > 0)
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&r->wake_mu);
		if (!atomic_load(&r->stop))
			pthread_cond_timedwait(&r->wake, &r->wake_mu, &ts);
		pthread_mutex_unlock(&r->wake_mu);
	}
	return NULL;
}

/* ---- lifecycle ---- */

/*
 * A store's breaker moved: audit it, and when it closed, make the entries
 * owed to that store due now and wake the drain, so the debt goes out at
 * once rather than after the backoff its failures earned.
 */
static void on_breaker(void *ctx, const char *name, co_breaker_state from,
		       const co_breaker_info *info)
{
	co_router *r = ctx;
	char action[64], detail[1024];

	snprintf(action, sizeof(action), "circuit_%s", co_breaker_state_name(info->state));
	if (info->state == CO_BREAKER_CLOSED)
		snprintf(detail, sizeof(detail), "%s: answers again (was %s)", name,
			 co_breaker_state_name(from));
	else
		snprintf(detail, sizeof(detail), "%s: %s (last error: %s)", name, info->why,
			 info->last_error);
	co_audit_change_add(r->st, "router", action, detail, NULL);
	if (info->state == CO_BREAKER_CLOSED) {
		co_outbox_retry_now(NULL, r->st, name);
		pthread_mutex_lock(&r->wake_mu);
		pthread_cond_signal(&r->wake);
		pthread_mutex_unlock(&r->wake_mu);
	}
}

/* A nonce per router instance: tells this router's intents from others'. */
static void make_sync_mark(char *buf, size_t len, const void *salt)
{
	struct timespec ts;
	uint64_t nonce;

	clock_gettime(CLOCK_REALTIME, &ts);
	nonce = ((uint64_t)getpid() << 40) ^ ((uint64_t)ts.tv_sec << 20) ^
		(uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)salt;
	snprintf(buf, len, SYNC_PREFIX "%016llx", (unsigned long long)nonce);
}

int co_router_open(co_router **out, const co_router_opts *opts)
{
	co_router *r;

	if (!opts || !opts->git || !opts->etcd || !opts->state || !opts->flags)
		return co_error_set(CO_EINVAL,
				    "router: git, etcd, state and flags are required");
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	r->git = opts->git;
	r->etcd = opts->etcd;
	r->st = opts->state;
	r->fw = opts->flags;
	r->witness = opts->witness;
	r->mirror_ms =
	    opts->mirror_timeout_ms > 0 ? opts->mirror_timeout_ms : CO_ROUTER_MIRROR_MS;
	r->redact = opts->redact;
	r->shadow = opts->shadow;
	for (int op = 0; op < CO_OP__COUNT; op++)
		r->shadow_pct[op] = co_shadow_percent(opts->shadow, (co_op)op);
	r->crash_at = crash_point_of(getenv("CUTOVER_CRASH_AT"));
	if (r->redact == NULL) {
		int error = co_redact_default(&r->own_redact);

		if (error < 0) {
			free(r);
			return error;
		}
		r->redact = r->own_redact;
	}
	pthread_mutex_init(&r->wake_mu, NULL);
	pthread_mutex_init(&r->wit_mu, NULL);
	pthread_cond_init(&r->wake, NULL);
	for (int i = 0; i < ROUTER_STRIPES; i++)
		pthread_mutex_init(&r->stripes[i], NULL);
	make_sync_mark(r->sync_mark, sizeof(r->sync_mark), r);
	pthread_mutex_init(&r->sync_mu, NULL);
	pthread_mutex_init(&r->fq_flush_mu, NULL);
	pthread_cond_init(&r->sync_cv, NULL);
	/* Without a syncer (no second connection), writes fall back to one
	 * synced transaction each: slower, as safe. */
	if (co_state_open(&r->sync_st, co_state_dir(r->st)) == 0 &&
	    pthread_create(&r->syncer, NULL, syncer_main, r) == 0)
		r->syncer_started = 1;
	co_store_breaker_set_hook(r->git, on_breaker, r);
	co_store_breaker_set_hook(r->etcd, on_breaker, r);
	if (opts->triggers && opts->triggers->enabled) {
		co_triggers_opts to = {0};
		int error;

		to.cfg = *opts->triggers;
		to.flags = r->fw;
		to.flags_path = co_flags_watcher_path(r->fw);
		to.state = r->st;
		to.etcd = r->etcd;
		if ((error = co_signals_new(&r->signals, opts->triggers->window_ms / 1000)) <
			0 ||
		    (to.signals = r->signals,
		     (error = co_triggers_start(&r->triggers, &to)) < 0)) {
			co_router_close(r);
			return error;
		}
	}
	if (opts->background_drain) {
		if (pthread_create(&r->drainer, NULL, drainer_main, r) != 0) {
			co_router_close(r);
			return co_error_set(CO_ENOMEM,
					    "router: cannot start the drain thread");
		}
		r->drainer_started = 1;
	}
	*out = r;
	return 0;
}

void co_router_close(co_router *r)
{
	if (r == NULL)
		return;
	/* only our own: serve opens its draining router before it closes
	 * the first one, and that one's hook must stay */
	co_store_breaker_clear_hook(r->git, r);
	co_store_breaker_clear_hook(r->etcd, r);
	co_triggers_stop(r->triggers); /* before the window it reads */
	co_signals_free(r->signals);
	r->signals = NULL;
	atomic_store(&r->stop, 1);
	if (r->drainer_started) {
		pthread_mutex_lock(&r->wake_mu);
		pthread_cond_broadcast(&r->wake);
		pthread_mutex_unlock(&r->wake_mu);
		pthread_join(r->drainer, NULL);
	}
	/* Only now: the drain thread acks through the syncer until it ends. */
	if (r->syncer_started) {
		pthread_mutex_lock(&r->sync_mu);
		r->sync_stop = 1;
		pthread_cond_broadcast(&r->sync_cv);
		pthread_mutex_unlock(&r->sync_mu);
		pthread_join(r->syncer, NULL);
	}
	fulfil_flush(r); /* the syncer flushed before it ended; to be sure */
	co_state_close(r->sync_st);
	pthread_cond_destroy(&r->sync_cv);
	pthread_mutex_destroy(&r->sync_mu);
	pthread_mutex_destroy(&r->fq_flush_mu);
	witness_flush(r);
	for (int i = 0; i < ROUTER_STRIPES; i++)
		pthread_mutex_destroy(&r->stripes[i]);
	pthread_mutex_destroy(&r->wit_mu);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->wake_mu);
	co_redact_free(r->own_redact);
	free(r);
}

co_triggers *co_router_triggers(co_router *r)
{
	return r->triggers;
}

const co_redact *co_router_redact(const co_router *r)
{
	return r->redact;
}

/* ---- watch ---- */

struct co_router_watch {
	co_router *r;
	co_watch *git, *etcd;
	char *prefix;
	int64_t etcd_retry_at; /* mono us; etcd's stream is reopened after a failure */
};

int co_router_watch_open(co_router_watch **out, co_router *r, const char *prefix)
{
	co_router_watch *w = calloc(1, sizeof(*w));
	int error;

	if (w == NULL || (w->prefix = strdup(prefix ? prefix : "")) == NULL) {
		free(w);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	w->r = r;
	if ((error = co_store_watch(&w->git, r->git, w->prefix)) < 0) {
		co_router_watch_close(w);
		return error;
	}
	/* etcd may be down (the kill switch must work then): watch git alone
	 * and try etcd again later. */
	if (co_store_watch(&w->etcd, r->etcd, w->prefix) < 0)
		w->etcd_retry_at = mono_us() + 1000000;
	*out = w;
	return 0;
}

/* Keep an event only if its store is the ID's primary for watch right now. */
static int from_primary(co_router *r, const co_event *ev)
{
	co_route rt;

	if (co_router_route(&rt, r, CO_OP_WATCH, ev->id) < 0)
		return 0;
	return strcmp(ev->store, side_name(rt.primary)) == 0;
}

int co_router_watch_next(co_event **out, co_router_watch *w, int timeout_ms)
{
	int64_t deadline =
	    timeout_ms < 0 ? INT64_MAX : mono_us() + (int64_t)timeout_ms * 1000;
	co_event *ev = NULL;
	int error;

	*out = NULL;
	for (;;) {
		int64_t now = mono_us();

		if (w->etcd == NULL && now >= w->etcd_retry_at &&
		    co_store_watch(&w->etcd, w->r->etcd, w->prefix) < 0)
			w->etcd_retry_at = now + 1000000;
		if (w->etcd) {
			error = co_watch_next(&ev, w->etcd, w->git ? 20 : 100);
			if (error < 0) {
				co_watch_close(w->etcd);
				w->etcd = NULL;
				w->etcd_retry_at = now + 1000000;
			} else if (ev && from_primary(w->r, ev)) {
				*out = ev;
				return 0;
			}
			co_event_free(ev);
			ev = NULL;
		}
		if ((error = co_watch_next(&ev, w->git, w->etcd ? 0 : 20)) < 0)
			return error;
		if (ev && from_primary(w->r, ev)) {
			*out = ev;
			return 0;
		}
		co_event_free(ev);
		ev = NULL;
		if (mono_us() >= deadline)
			return 0;
	}
}

void co_router_watch_close(co_router_watch *w)
{
	if (w == NULL)
		return;
	co_watch_close(w->git);
	co_watch_close(w->etcd);
	free(w->prefix);
	free(w);
}
