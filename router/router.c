/*
 * router.c - routing, dual-write through the outbox: the write path.
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
 * Here: the write path, open and close.  The group commit is
 * router_commit.c, settle and the drain router_drain.c, reads and the
 * shadow compare router_read.c, the witness log router_witness.c
 * (internal.h says what they share).  Not here: the
 * flag file (flags/), the stores' own CAS (src/store/), the outbox schema
 * (src/core/outbox.c), reconciliation (reconcile/).
 */
#include "router.h"
#include "internal.h"

#include "core/id.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

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

co_store *co_router_store(co_router *r, co_side side)
{
	return store_of(r, side);
}

int co_router_route(co_route *out, co_router *r, co_op op, const char *id)
{
	return co_flags_watcher_route(out, r->fw, op, id);
}

/* ---- writes ---- */

typedef int (*write_fn)(co_record **out, co_store *s, const void *arg);

/*
 * Mirror the primary's result into the secondary, or queue it.  Called after
 * the primary committed; the write is acknowledged only if this returns 0.
 */
static int mirror(co_router *r, const co_route *rt, co_kind kind, const char *id,
		  const co_record *rec, int64_t intent, uint64_t ticket, int64_t t0)
{
	co_store *sec = store_of(r, rt->secondary);
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
	    co_router__fulfil_defer(r, intent, rt->secondary, kind, id, json,
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
		error = co_router__wait_sync(r, ticket);
	if (error == 0) {
		co_router__wake_drain(r);
	}
	return error;
}

/* A git-decided write's intent, synced once git has its turn. */
struct turn_sync {
	co_router *r;
	uint64_t ticket; /* co_router__sync_ticket's; 0: synced at once instead */
};

static void sync_on_turn(void *arg)
{
	struct turn_sync *ts = arg;

	co_router__sync_upto(ts->r, ts->ticket);
}

/*
 * The primary's call, fenced on the route's flags epoch where etcd decides
 * in fleet mode (co_store_fence), and with ts->ticket's sync asked for when
 * the store is about to write (co_store_on_write), or after it answered.
 */
static int primary_call(co_record **rec, co_router *r, const co_route *rt, write_fn fn,
			const void *arg, struct turn_sync *ts)
{
	int fenced = r->fence_key[0] && rt->epoch > 0 && rt->primary == CO_SIDE_ETCD;
	int error;

	if (fenced)
		co_store_fence(r->fence_key, rt->epoch);
	if (ts->ticket)
		co_store_on_write(sync_on_turn, ts);
	error = fn(rec, store_of(r, rt->primary), arg);
	if (ts->ticket) {
		co_store_on_write(NULL, NULL);
		/* An answer to acknowledge waits on this sync (if the store
		 * wrote without the hook, or kept what it held); a refusal
		 * retires its intent and needs none. */
		if (error == 0)
			co_router__sync_upto(r, ts->ticket);
	}
	if (fenced)
		co_store_fence(NULL, 0);
	return error;
}

/*
 * A fenced write found the fleet's flags moved on from `epoch` (to `seen`,
 * 0 if unknown): wait, bounded, for this router's flags (the mirrored
 * file) to carry a newer epoch.  0 when they do, else CO_EUNAVAIL saying
 * so; nothing was written either way.
 */
static int await_epoch(co_router *r, int64_t epoch, int64_t seen)
{
	int64_t until = mono_us() + (int64_t)CO_ROUTER_FENCE_WAIT_MS * 1000;

	for (;;) {
		co_flags fl;
		uint64_t gen = co_flags_watcher_get(&fl, r->fw);
		int64_t left = (until - mono_us()) / 1000;

		if (fl.fleet_epoch != epoch && fl.fleet_epoch >= seen)
			return 0;
		if (left <= 0 || co_flags_watcher_wait(r->fw, gen, (int)left) < 0)
			return co_error_set(
			    CO_EUNAVAIL,
			    "the fleet's flags moved on in etcd (%s at revision %lld) "
			    "and this router still routes by epoch %lld after %d ms; "
			    "nothing written, retry",
			    r->fence_key, (long long)seen, (long long)epoch,
			    CO_ROUTER_FENCE_WAIT_MS);
	}
}

static int routed_write(co_record **out, co_router *r, co_op op, co_kind kind,
			const char *id, write_fn fn, const void *arg, int is_remove)
{
	co_route rt;
	co_record *rec = NULL;
	struct turn_sync ts = {r, 0};
	pthread_mutex_t *mu;
	int64_t intent = 0, t0 = mono_us();
	uint64_t ticket = 0;
	int error, merr, fenced_once = 0;

	if ((error = co_id_validate(id)) < 0)
		return error;
	/* One operation per ID at a time in this router: the route is taken,
	 * the ID settled, the primary written and the secondary mirrored
	 * without another thread's flip-straddling write in between. */
	mu = stripe(r, id);
	pthread_mutex_lock(mu);
again:
	if ((error = co_router_route(&rt, r, op, id)) < 0)
		goto unlock;
	/* an intent would wait on a stalled fsync: refuse now, unwritten */
	if (rt.secondary != CO_SIDE_NONE && r->syncer_started &&
	    (error = co_router__refuse_if_stalled(r)) < 0)
		goto done;
	if (rt.secondary != CO_SIDE_NONE &&
	    (error = co_outbox_push_intent(&intent, r->st, side_name(rt.secondary),
					   co_kind_name(kind), id, r->sync_mark)) < 0)
		goto done;
	if (intent)
		crash_point(r, CRASH_AFTER_INTENT);
	/* Asynchronous secondary (etcd mode), or one behind an open breaker:
	 * the record will be queued, not mirrored, so start making the intent
	 * durable now, while the primary works (group commit, above), rather
	 * than fsync the record after it.  Where git decides, "now" is when
	 * git gives the write its turn (co_router__sync_ticket says why). */
	ts.ticket = 0;
	if (intent && r->syncer_started &&
	    (rt.secondary_async || !store_closed(store_of(r, rt.secondary)))) {
		if (rt.primary == CO_SIDE_GIT)
			ticket = ts.ticket = co_router__sync_ticket(r);
		else
			ticket = co_router__request_sync(r);
	}
	if ((error = co_router__settle(r, rt.primary, kind, id, intent)) < 0) {
		if (intent)
			co_outbox_ack_intent(r->st, intent);
		goto done;
	}

	error = primary_call(&rec, r, &rt, fn, arg, &ts);
	if (error == CO_EFENCED) {
		/* Nothing written: the fleet moved on (a rollback, a stage)
		 * while this router routed by older flags.  Route again by
		 * the new ones, once. */
		int64_t seen = co_store_fenced_at();

		if (intent)
			co_outbox_ack_intent(r->st, intent);
		intent = 0;
		ticket = 0;
		if (!fenced_once++ && (error = await_epoch(r, rt.epoch, seen)) == 0)
			goto again;
		if (error == CO_EFENCED)
			error = co_error_set(CO_EUNAVAIL,
					     "fenced twice in a row: %s; nothing written",
					     co_error_last());
		goto done;
	}
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
	co_router__witness(r, &rt, id, error, t0);
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

/* ---- lifecycle ---- */

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
	if (opts->fence_key && strlen(opts->fence_key) >= sizeof(r->fence_key)) {
		free(r);
		return co_error_set(CO_EINVAL, "router: fence key too long: %s",
				    opts->fence_key);
	}
	snprintf(r->fence_key, sizeof(r->fence_key), "%s",
		 opts->fence_key ? opts->fence_key : "");
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
	{
		/* the drain's waits are timed on the monotonic clock: a wall
		 * clock stepped back must not stall it (router_drain.c) */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&r->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	for (int i = 0; i < ROUTER_STRIPES; i++)
		pthread_mutex_init(&r->stripes[i], NULL);
	make_sync_mark(r->sync_mark, sizeof(r->sync_mark), r);
	pthread_mutex_init(&r->sync_mu, NULL);
	pthread_mutex_init(&r->fq_flush_mu, NULL);
	pthread_cond_init(&r->sync_cv, NULL);
	/* Without a syncer (no second connection), writes fall back to one
	 * synced transaction each: slower, as safe. */
	if (co_state_open(&r->sync_st, co_state_dir(r->st)) == 0 &&
	    pthread_create(&r->syncer, NULL, co_router__syncer_main, r) == 0)
		r->syncer_started = 1;
	co_store_breaker_set_hook(r->git, co_router__on_breaker, r);
	co_store_breaker_set_hook(r->etcd, co_router__on_breaker, r);
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
		if (pthread_create(&r->drainer, NULL, co_router__drainer_main, r) != 0) {
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
	co_router__fulfil_flush(r); /* the syncer flushed before it ended; to be sure */
	co_state_close(r->sync_st);
	pthread_cond_destroy(&r->sync_cv);
	pthread_mutex_destroy(&r->sync_mu);
	pthread_mutex_destroy(&r->fq_flush_mu);
	co_router__witness_flush(r);
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

