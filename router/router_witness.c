/*
 * router_witness.c - the witness log: every routed operation (op, ID, mode,
 * the store that decided, outcome, latency) recorded in the audit's ops
 * table in batches, and fed to the live-signal window of the triggers.
 */
#include "internal.h"

#include <stdlib.h>

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

void co_router__witness_flush(co_router *r)
{
	pthread_mutex_lock(&r->wit_mu);
	witness_flush_locked(r);
	pthread_mutex_unlock(&r->wit_mu);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void co_router__witness(co_router *r, const co_route *rt, const char *id, int error,
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
