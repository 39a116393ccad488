/*
 * router_commit.c - the router's group commit: one WAL fsync shared by every
 * writer waiting, deferred fulfils written off the write's path, and durable
 * acks of applied outbox entries (the long comment above syncer_main says
 * why this keeps the ack rule: the intent is durable before the primary is
 * touched), and the stall check: an fsync in flight too long refuses new
 * writes fast (co_router_sync_in_flight_ms).
 */
#include "internal.h"

#include <stdlib.h>
#include <time.h>

_Atomic int co_router__hold_fulfils;
_Atomic int co_router__sync_stall_ms = CO_ROUTER_SYNC_STALL_MS;

static int64_t commit_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int co_router_sync_stall_ms(void)
{
	return atomic_load(&co_router__sync_stall_ms);
}

uint64_t co_router_state_syncs(co_router *r)
{
	return r ? atomic_load(&r->syncs) : 0;
}

int64_t co_router_sync_in_flight_ms(co_router *r)
{
	int64_t t0 = r ? atomic_load(&r->sync_started_ms) : 0;
	int64_t d = t0 ? commit_mono_ms() - t0 : 0;

	return d > 0 ? d : (t0 ? 1 : 0);
}

/*
 * CO_EUNAVAIL when the group commit's fsync has run past the stall bound:
 * a new write would only queue behind it (its intent cannot become durable
 * before that fsync returns), so it is refused before anything is written,
 * and the client told to come back (503 + Retry-After).
 */
int co_router__refuse_if_stalled(co_router *r)
{
	int64_t d = co_router_sync_in_flight_ms(r);

	if (d < co_router_sync_stall_ms())
		return 0;
	return co_error_set(CO_EUNAVAIL, "state dir stalled: fsync in flight %.1f s",
			    (double)d / 1000.0);
}

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
void co_router__fulfil_flush(co_router *r)
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
 * (id NULL), or those of kind/id.  After a co_router__fulfil_flush() that follows a
 * non-zero answer, those are written (the flush waits for one in progress).
 */
size_t co_router__fulfil_pending(co_router *r, co_kind kind, const char *id)
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
int co_router__fulfil_defer(co_router *r, int64_t seq, co_side target, co_kind kind,
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
 * (co_router__fulfil_defer).  Whoever settles an ID or drains a batch writes the queue
 * first, so a record in memory is never passed over for the intent (which
 * needs the other store to resolve).
 *
 * A durable intent is enough: if a power cut loses the unsynced record
 * (WAL recovery keeps a prefix of the commits, so the intent is there),
 * draining the intent copies the record from etcd, and until that
 * succeeds co_router__settle() refuses to serve the ID from git (CO_EUNAVAIL), so git
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
void *co_router__syncer_main(void *arg)
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
				co_router__fulfil_flush(r);
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
		atomic_store(&r->sync_started_ms, commit_mono_ms());
		error = broken ? co_state_wal_reset(r->sync_st) : 0;
		if (error == 0) {
			error = co_state_sync(r->sync_st);
			atomic_fetch_add(&r->syncs, 1);
		}
		atomic_store(&r->sync_started_ms, 0);
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
uint64_t co_router__request_sync(co_router *r)
{
	uint64_t ticket;

	pthread_mutex_lock(&r->sync_mu);
	ticket = ++r->sync_requested;
	pthread_cond_signal(&r->sync_cv);
	pthread_mutex_unlock(&r->sync_mu);
	return ticket;
}

/*
 * A ticket for everything committed so far, without asking for its sync
 * yet: co_router__sync_upto(r, ticket) asks, when the write needs it.  Any
 * sync that covers the ticket starts after that ask, or after someone
 * else's for a later commit, so after everything committed before this
 * call.  Why wait to ask: a git-decided write waits for git's write turn
 * behind the others, and asked for at once, each intent cost an fsync of
 * its own; asked for when its turn comes (co_store_on_write), one fsync
 * covers every intent committed while the writers queued, and it still
 * runs beside the write's commit, not after it.
 */
uint64_t co_router__sync_ticket(co_router *r)
{
	uint64_t ticket;

	pthread_mutex_lock(&r->sync_mu);
	ticket = r->sync_requested + 1;
	pthread_mutex_unlock(&r->sync_mu);
	return ticket;
}

/* Ask for the sync of a co_router__sync_ticket() ticket, unless asked. */
void co_router__sync_upto(co_router *r, uint64_t ticket)
{
	pthread_mutex_lock(&r->sync_mu);
	if (r->sync_requested < ticket) {
		r->sync_requested = ticket;
		pthread_cond_signal(&r->sync_cv);
	}
	pthread_mutex_unlock(&r->sync_mu);
}

/*
 * Wait until the sync for `ticket` has returned.  CO_EIO if it failed (or,
 * conservatively, if a later one failed before this thread woke up: the
 * write is then refused though it may be durable, which is safe).
 */
int co_router__wait_sync(co_router *r, uint64_t ticket)
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
int co_router__ack_durably(co_router *r, int64_t seq)
{
	int error, broken;

	pthread_mutex_lock(&r->sync_mu);
	broken = r->sync_broken;
	pthread_mutex_unlock(&r->sync_mu);
	if (!r->syncer_started || broken)
		return co_outbox_ack(r->st, seq);
	if ((error = co_outbox_ack_unsynced(r->st, seq)) < 0)
		return error;
	return co_router__wait_sync(r, co_router__request_sync(r));
}

/* co_router__ack_durably() for many entries, with one shared sync. */
int co_router__ack_many_durably(co_router *r, const int64_t *seqs, size_t n)
{
	int error, broken;

	pthread_mutex_lock(&r->sync_mu);
	broken = r->sync_broken;
	pthread_mutex_unlock(&r->sync_mu);
	if (!r->syncer_started || broken || n == 0)
		return co_outbox_ack_many(r->st, seqs, n, 1);
	if ((error = co_outbox_ack_many(r->st, seqs, n, 0)) < 0)
		return error;
	return co_router__wait_sync(r, co_router__request_sync(r));
}

