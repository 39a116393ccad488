/*
 * router_drain.c - applying the outbox: an ID's owed entries before a store
 * serves it (settle), and the drain, which writes records owed to a store in
 * batches (one git commit, etcd txns of 64), resolves intents from the other
 * store and backs each failure off; the background thread that runs it; and
 * the breaker hook that makes a returning store's entries due at once.
 */
#include "internal.h"

#include <stdlib.h>

/* The first retry of an entry the drain could not apply; doubled per
 * attempt by co_outbox_fail, up to CO_OUTBOX_BACKOFF_MAX_MS. */
#define DRAIN_BACKOFF_MS 50

/*
 * When a write wakes an idle drain, the drain first waits this long for
 * the writes around it, so that they go out as one batch: one txn, one
 * commit and one fsync of the acks instead of one each.  Woken at once,
 * a drain of a steady load wrote a record or two a round, and its txns,
 * commits and fsyncs slowed the primary's own (bench_dual: dual 10's
 * git-decided claims, 1.21-1.37x git mode's p50; 1.19-1.30x after a 10 ms
 * gather, 0.96-1.16x after a 100 ms one).  What it costs: an owed record
 * reaches the other store up to 100 ms later (a legacy git reader sees an
 * etcd-decided write about 110 ms after its ack; issue 19 bounds that at
 * 250 ms).  A drain with work left goes on at once, and an explicit drain
 * (co_router_drain: rollback, the gate, settle) never waits.
 */
#define DRAIN_GATHER_MS 100

/* ---- applying outbox entries: per ID (settle) and in batches (drain) ---- */

/*
 * Apply one entry to its target store.  Puts are "if newer", so applying an
 * entry twice, or after a newer direct mirror, changes nothing: drains may
 * race each other and the router's own direct mirrors safely.
 */
int co_router__apply_entry(co_router *r, const co_outbox_entry *e)
{
	co_side target = side_of(e->target);
	co_store *ts = store_of(r, target);
	co_kind kind = strcmp(e->kind, "swarm") == 0 ? CO_KIND_SWARM : CO_KIND_TASK;
	co_record *rec = NULL;
	int error;

	if (e->payload == NULL) {
		error = co_store_remove(ts, kind, e->id);
		return error == CO_ENOTFOUND ? 0 : error;
	}
	if (is_intent(e)) {
		co_store *src = store_of(r, other_side(target));
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

/* An entry that is a record to put (not a remove, not an intent). */
static int is_record(const co_outbox_entry *e)
{
	return e->payload != NULL && !is_intent(e);
}

/* CO_EUNAVAIL: n of id's writes are still owed to side, which failed. */
static int not_applied(co_kind kind, const char *id, size_t n, co_side side)
{
	char cause[CAUSE_MAX];

	return co_error_set(CO_EUNAVAIL,
			    "%s %s: %zu earlier write(s) not yet applied to %s "
			    "and it cannot take them now: %s",
			    co_kind_name(kind), id, n, side_name(side), last_error(cause));
}

/*
 * Of the record rows v[0..n), the record that putting each "if newer" in
 * turn would leave: the highest rev, the earliest of equals.  Seq order is
 * not rev order: two routers' intents on one ID are filled in the order
 * their primaries committed, not the order they were pushed, and a record
 * whose intent a drain resolved first goes back in with a new seq
 * (co_outbox_fulfil_intents).  Owned by the caller; NULL if a row does
 * not parse.
 */
static co_record *newest_of(const co_outbox_entry *const *v, size_t n)
{
	co_record *best = NULL;
	size_t i;

	for (i = 0; i < n; i++) {
		co_record *rec = NULL;

		if (co_record_from_json(&rec, v[i]->payload, strlen(v[i]->payload)) < 0) {
			co_record_free(best);
			return NULL;
		}
		if (best == NULL || rec->rev > best->rev) {
			co_record_free(best);
			best = rec;
		} else {
			co_record_free(rec);
		}
	}
	return best;
}

/* Apply entries [from, last] of l, all records, by newest_of(); ack them. */
static int settle_run(co_router *r, const co_outbox_list *l, size_t from, size_t last,
		      co_side side, co_kind kind, const char *id)
{
	size_t j, n = last - from + 1;
	const co_outbox_entry *const *v = (const co_outbox_entry *const *)l->items + from;
	co_record *newest = newest_of(v, n);
	int64_t *seqs = calloc(n, sizeof(*seqs));
	int error = 0;

	if (seqs == NULL)
		error = co_error_set(CO_ENOMEM, "out of memory");
	else if (newest == NULL ||
		 co_store_put_if_newer(store_of(r, side), newest, NULL) < 0)
		error = not_applied(kind, id, l->n - from, side);
	for (j = 0; error == 0 && j < n; j++)
		seqs[j] = v[j]->seq;
	if (error == 0)
		error = co_router__ack_many_durably(r, seqs, n);
	co_record_free(newest);
	free(seqs);
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
int co_router__settle(co_router *r, co_side side, co_kind kind, const char *id, int64_t mine)
{
	co_outbox_list l = {0};
	size_t i;
	int error;

	/* A deferred fulfil may hold this ID's record: written, it is applied
	 * below without asking the other store (which may be down).  Only
	 * then: other IDs' fulfils are the syncer's to write, off this path. */
	if (co_router__fulfil_pending(r, kind, id) > 0)
		co_router__fulfil_flush(r);
	if ((error = co_outbox_pending_for(&l, r->st, side_name(side), co_kind_name(kind),
					   id)) < 0)
		return error;
	for (i = 0; i < l.n; i++) {
		const co_outbox_entry *e = l.items[i];
		size_t last = i;

		if (e->seq == mine)
			continue;
		/* A run of records: its newest (newest_of) stands for them
		 * all, as in drain_records(); each was once a commit. */
		if (is_record(e)) {
			while (last + 1 < l.n && is_record(l.items[last + 1]))
				last++;
			if ((error = settle_run(r, &l, i, last, side, kind, id)) < 0)
				goto done;
			i = last;
			continue;
		}
		if (foreign_in_flight(r, e)) {
			error = co_error_set(
			    CO_EUNAVAIL,
			    "%s %s: another router is writing it through the "
			    "other store right now; try again",
			    co_kind_name(kind), id);
			goto done;
		}
		if (co_router__apply_entry(r, e) < 0) {
			error = not_applied(kind, id, l.n - i, side);
			goto done;
		}
		if ((error = co_router__ack_durably(r, e->seq)) < 0)
			goto done;
	}
done:
	co_outbox_list_clear(&l);
	return error;
}

/* ---- the drain ---- */

/* Whether mu is among the first n of held. */
static int holds(pthread_mutex_t *const *held, size_t n, const pthread_mutex_t *mu)
{
	for (size_t i = 0; i < n; i++)
		if (held[i] == mu)
			return 1;
	return 0;
}

/* What drain_records() did with an entry of the batch (the `done` array). */
enum { ENTRY_LEFT, ENTRY_APPLIED, ENTRY_BUSY, ENTRY_GONE };

/* Room for `need` seqs in *v. */
static int reserve(int64_t **v, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 256;
	int64_t *grown;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	if ((grown = realloc(*v, c * sizeof(*grown))) == NULL)
		return -1;
	*v = grown;
	*cap = c;
	return 0;
}

/*
 * The run of `head` (a record row): head and the rows after it for the
 * same key, up to the first that is not a record (a remove, an intent),
 * read again under the ID's lock.  0: *out is the run's record to write
 * (newest_of) and the rows' seqs are appended to *seqs.  1: head is gone
 * (a settle or another drain applied it since the batch was read: nothing
 * to do).  -1: the run cannot be read; head is left to the caller.
 */
static int run_of(co_record **out, int64_t **seqs, size_t *n_seqs, size_t *cap_seqs,
		  co_router *r, const co_outbox_entry *head)
{
	co_outbox_list run = {0};
	size_t i, start, m;
	int rc = -1;

	*out = NULL;
	if (co_outbox_pending_for(&run, r->st, head->target, head->kind, head->id) < 0) {
		co_error_clear();
		return -1;
	}
	for (start = 0; start < run.n && run.items[start]->seq != head->seq; start++)
		;
	if (start == run.n) {
		rc = 1;
		goto done;
	}
	for (m = 0; start + m < run.n && is_record(run.items[start + m]); m++)
		;
	if (m == 0 || reserve(seqs, cap_seqs, *n_seqs + m) < 0 ||
	    (*out = newest_of((const co_outbox_entry *const *)run.items + start, m)) ==
		NULL)
		goto done;
	for (i = 0; i < m; i++)
		(*seqs)[(*n_seqs)++] = run.items[start + i]->seq;
	rc = 0;
done:
	co_error_clear();
	co_outbox_list_clear(&run);
	return rc;
}

/*
 * The records of a batch bound to `target` (the heads of distinct IDs),
 * written in as few store calls as the store allows: one git commit, or
 * etcd txns of 64 (co_store_put_batch_if_newer).  One commit or one txn
 * per record could not keep up with the writes of a store that was down
 * a while, nor with etcd mode's writes.
 *
 * Each head stands for its ID's run (run_of): of the records queued from
 * it on, the one with the highest rev is written (newest_of), and the
 * whole run is retired.  A
 * batch holds one head per ID, so without this a hot task written twenty
 * times while its store was slow took twenty rounds to catch up: under
 * issue 16's soak (64 workers on 256 tasks) the outbox grew to 18,000
 * entries while every round retired one entry per ID.
 *
 * The drain never waits for an ID's stripe lock: an ID a writer holds now
 * (a hot task being claimed) is left for the next round, and the rest of
 * the batch goes out; the caller's loop leaves it too (ENTRY_BUSY): applied
 * one at a time, each git-bound entry waited for git's write turn behind
 * every writer, and a round that met 70 of them took seconds.  Trylock
 * also means two drains cannot deadlock.  Entries applied here are marked
 * ENTRY_APPLIED; on a failed write none is, and the caller applies them
 * one by one (each failure then gets its own backoff).
 */
static void drain_records(co_router *r, const co_outbox_list *l, const char *target,
			  char *done, size_t *applied)
{
	const co_record **recs = calloc(l->n, sizeof(*recs));
	size_t *idx = calloc(l->n, sizeof(*idx));
	pthread_mutex_t **held = calloc(l->n, sizeof(*held));
	int64_t *seqs = NULL;
	size_t i, k = 0, nheld = 0, n_seqs = 0, cap_seqs = 0;
	int error;

	if (recs == NULL || idx == NULL || held == NULL)
		goto out;
	for (i = 0; i < l->n; i++) {
		const co_outbox_entry *e = l->items[i];
		pthread_mutex_t *mu;
		co_record *rec = NULL;
		int rc;

		if (strcmp(e->target, target) != 0 || !is_record(e))
			continue;
		mu = stripe(r, e->id);
		if (!holds(held, nheld, mu)) {
			if (pthread_mutex_trylock(mu) != 0) {
				done[i] = ENTRY_BUSY; /* a writer has this ID now */
				continue;
			}
			held[nheld++] = mu;
		}
		/* Under the ID's lock: no write of ours adds to its run now. */
		if ((rc = run_of(&rec, &seqs, &n_seqs, &cap_seqs, r, e)) != 0) {
			if (rc == 1)
				done[i] = ENTRY_GONE;
			continue; /* -1: the caller's loop takes it alone */
		}
		recs[k] = rec;
		idx[k++] = i;
	}
	co_error_clear();
	if (k < 2 && n_seqs <= 1) {
		/* nothing to gain: the caller's loop takes it */
		for (i = 0; i < k; i++)
			done[idx[i]] = ENTRY_LEFT;
		goto unlock;
	}
	error = co_store_put_batch_if_newer(store_of(r, side_of(target)), recs, k,
					    NULL);
	if (error == 0) {
		for (i = 0; i < k; i++)
			done[idx[i]] = ENTRY_APPLIED;
		if (co_router__ack_many_durably(r, seqs, n_seqs) == 0)
			*applied += n_seqs;
	}
unlock:
	for (i = nheld; i-- > 0;)
		pthread_mutex_unlock(held[i]);
out:
	for (i = 0; recs && i < k; i++)
		co_record_free((co_record *)recs[i]);
	free(recs);
	free(idx);
	free(seqs);
	free(held);
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
		return breaker_refusal(store_of(r, side_of(target)));
	if (co_router__fulfil_pending(r, CO_KIND_TASK, NULL) > 0)
		co_router__fulfil_flush(r); /* records to copy, not intents to look up */
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

		if (done && done[i] != ENTRY_LEFT)
			continue; /* applied, or its ID busy: next round */
		if (pthread_mutex_trylock(mu) != 0)
			continue; /* a writer has this ID now: next round */
		if (foreign_in_flight(r, e)) {
			/* its router may still finish it: look again shortly */
			co_outbox_fail(r->st, e->seq, "in flight in another router", 200);
		} else if (co_router__apply_entry(r, e) == 0) {
			co_router__ack_durably(r, e->seq);
			(*applied)++;
		} else {
			/* co_outbox_fail doubles it per attempt, up to its cap.
			 * (It was doubled here too: 7 failures under load left
			 * an entry waiting 2 minutes, owed after the load.) */
			if (!first_error)
				first_error = co_error_last_code() ? co_error_last_code()
								   : CO_EUNAVAIL;
			co_outbox_fail(r->st, e->seq, co_error_last(), DRAIN_BACKOFF_MS);
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

/* `ms` from now for a timed wait on r->wake (its clock is CLOCK_MONOTONIC). */
static struct timespec wake_deadline(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	return ts;
}

void *co_router__drainer_main(void *arg)
{
	co_router *r = arg;

	while (!atomic_load(&r->stop)) {
		size_t applied = 0;
		struct timespec ts;
		int woken;

		drain_batch(r, NULL, &applied);
		co_router__witness_flush(r);
		if (applied > 0)
			continue;
		ts = wake_deadline(50);
		pthread_mutex_lock(&r->wake_mu);
		woken = !atomic_load(&r->stop) &&
			pthread_cond_timedwait(&r->wake, &r->wake_mu, &ts) == 0;
		if (woken) {
			/* gather the writes around this one (DRAIN_GATHER_MS);
			 * only close (co_router_close) ends the wait early */
			ts = wake_deadline(DRAIN_GATHER_MS);
			while (!atomic_load(&r->stop) &&
			       pthread_cond_timedwait(&r->wake, &r->wake_mu, &ts) == 0)
				;
		}
		pthread_mutex_unlock(&r->wake_mu);
	}
	return NULL;
}

/* Wake the drain thread: something is owed, or a store came back. */
void co_router__wake_drain(co_router *r)
{
	pthread_mutex_lock(&r->wake_mu);
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->wake_mu);
}

/*
 * A store's breaker moved: audit it, and when it closed, make the entries
 * owed to that store due now and wake the drain, so the debt goes out at
 * once (after the drain's DRAIN_GATHER_MS) rather than after the backoff
 * its failures earned.
 */
void co_router__on_breaker(void *ctx, const char *name, co_breaker_state from,
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
		co_router__wake_drain(r);
	}
}
