/*
 * internal.h - what the router's files share: its state, small
 * helpers, the calls one of them makes into another, and test hooks.  Not
 * part of the API: only the router's files and tests include it.
 *
 * The router is five files, one job each:
 *   router.c         the write path (route, primary, mirror), open, close;
 *   router_commit.c  the group commit: the syncer's shared fsync, deferred
 *                    fulfils, durable acks;
 *   router_drain.c   applying the outbox: an ID's entries before a store
 *                    serves it (settle), the drain, the breaker hook;
 *   router_read.c    reads: get, list, the shadow compare, watch;
 *   router_witness.c the witness log of routed operations.
 */
#ifndef CO_ROUTER_SHARED_INTERNAL_H
#define CO_ROUTER_SHARED_INTERNAL_H

#include "router.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/state.h"
#include "flags/watcher.h"
#include "signals.h"
#include "triggers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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
	char fence_key[256]; /* fleet's flags key ("": file mode, no fence) */
	pthread_t drainer;
	int drainer_started;
	atomic_int stop;
	pthread_mutex_t wake_mu;
	pthread_cond_t wake;
	pthread_mutex_t stripes[ROUTER_STRIPES];
	char sync_mark[40]; /* "@sync:<nonce>": this router's intents */
	/* group commit of intents (etcd mode): router_commit.c */
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
	_Atomic int64_t sync_started_ms; /* mono ms the syncer's fsync began; 0: idle */
	_Atomic uint64_t syncs;		 /* fsyncs the syncer made (co_router_state_syncs) */
	/* deferred fulfils (etcd mode): router_commit.c */
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

static inline const char *side_name(co_side s)
{
	return s == CO_SIDE_ETCD ? "etcd" : "git";
}

static inline co_side side_of(const char *name)
{
	return strcmp(name, "etcd") == 0 ? CO_SIDE_ETCD : CO_SIDE_GIT;
}

static inline co_side other_side(co_side s)
{
	return s == CO_SIDE_ETCD ? CO_SIDE_GIT : CO_SIDE_ETCD;
}

/* The router's store on `side` (co_router_store, without a call). */
static inline co_store *store_of(co_router *r, co_side side)
{
	return side == CO_SIDE_ETCD ? r->etcd : r->git;
}

/* The store's breaker lets calls through now (closed). */
static inline int store_closed(co_store *s)
{
	co_breaker_info bi;

	co_store_breaker_get(&bi, s);
	return bi.state == CO_BREAKER_CLOSED;
}

static inline int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline pthread_mutex_t *stripe(co_router *r, const char *id)
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

static inline const char *last_error(char cause[CAUSE_MAX])
{
	snprintf(cause, CAUSE_MAX, "%s", co_error_last());
	return cause;
}

static inline int is_intent(const co_outbox_entry *e)
{
	return co_outbox_is_intent(e);
}

/* An intent another router may still be acting on. */
static inline int foreign_in_flight(co_router *r, const co_outbox_entry *e)
{
	return is_intent(e) && strcmp(e->payload, r->sync_mark) != 0 &&
	       co_state_now_ms() - e->created_at < IN_FLIGHT_MS;
}

/* router_drain.c */
int co_router__settle(co_router *r, co_side side, co_kind kind, const char *id,
		      int64_t mine);
int co_router__apply_entry(co_router *r, const co_outbox_entry *e);

/* router_witness.c */
void co_router__witness(co_router *r, const co_route *rt, const char *id, int error,
			int64_t t0);
void co_router__witness_flush(co_router *r);

/* router_commit.c */
void *co_router__syncer_main(void *arg);
uint64_t co_router__request_sync(co_router *r);
uint64_t co_router__sync_ticket(co_router *r);
void co_router__sync_upto(co_router *r, uint64_t ticket);
int co_router__wait_sync(co_router *r, uint64_t ticket);
int co_router__ack_durably(co_router *r, int64_t seq);
int co_router__ack_many_durably(co_router *r, const int64_t *seqs, size_t n);
void co_router__fulfil_flush(co_router *r);
int co_router__refuse_if_stalled(co_router *r);
size_t co_router__fulfil_pending(co_router *r, co_kind kind, const char *id);
int co_router__fulfil_defer(co_router *r, int64_t seq, co_side target, co_kind kind,
			    const char *id, char *payload, int mirror_failed);

/* router_drain.c */
void *co_router__drainer_main(void *arg);
void co_router__wake_drain(co_router *r);
void co_router__on_breaker(void *ctx, const char *name, co_breaker_state from,
			   const co_breaker_info *info);

/*
 * TEST hook.  Non-zero: the syncer leaves deferred fulfils queued (until
 * the router closes), so a test can see what an ID's next operation does
 * while a record owed to git is still only in memory.
 */
extern _Atomic int co_router__hold_fulfils;

/* TEST hook: the fsync age that counts as a stall (CO_ROUTER_SYNC_STALL_MS),
 * so a test need not wait seconds for one. */
extern _Atomic int co_router__sync_stall_ms;

#endif
