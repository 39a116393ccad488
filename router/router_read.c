/*
 * router_read.c - reads through the router: get and list from the ID's
 * primary (after settling the ID), the shadow compare with etcd at no user
 * risk (sampled, redacted in the mismatch log), and watch, which keeps an
 * event only from the store that is the ID's primary for watch.
 */
#include "internal.h"

#include "core/id.h"

#include <stdlib.h>

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
	if ((error = co_router__settle(r, rt.primary, kind, id, 0)) < 0)
		goto done;
	error = co_store_get(&rec, store_of(r, rt.primary), kind, id);
	if (rt.compare_reads && (error == 0 || error == CO_ENOTFOUND) &&
	    shadow_take(r, op))
		shadow_count(r, op, shadow_compare(r, op, kind, id, rec));
	if (error == 0) {
		*out = rec;
		rec = NULL;
	}
done:
	co_router__witness(r, &rt, id, error, t0);
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
		error = co_store_list(out, store_of(r, rt.primary), kind);
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
	co_router__witness(r, &rt, NULL, error, t0);
	co_record_list_clear(&g);
	co_record_list_clear(&e);
	co_record_list_clear(&res);
	return error;
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

/*
 * One event from etcd's watch (is_etcd) or git's within wait_ms: 1 with
 * *out when it is the ID's primary's; 0 when none came or it was the
 * secondary's, dropped (*got says whether one came); git's watch failing
 * is the caller's error, etcd's is closed here and reopened later.
 */
static int next_of(co_event **out, co_router_watch *w, int is_etcd, int wait_ms, int *got)
{
	co_watch *cw = is_etcd ? w->etcd : w->git;
	co_event *ev = NULL;
	int error;

	*got = 0;
	if (cw == NULL)
		return 0;
	if ((error = co_watch_next(&ev, cw, wait_ms)) < 0) {
		if (!is_etcd)
			return error;
		co_watch_close(w->etcd);
		w->etcd = NULL;
		w->etcd_retry_at = mono_us() + 1000000;
		return 0;
	}
	if (ev == NULL)
		return 0;
	*got = 1;
	if (from_primary(w->r, ev)) {
		*out = ev;
		return 1;
	}
	co_event_free(ev);
	return 0;
}

int co_router_watch_next(co_event **out, co_router_watch *w, int timeout_ms)
{
	int64_t deadline =
	    timeout_ms < 0 ? INT64_MAX : mono_us() + (int64_t)timeout_ms * 1000;
	int rc, got_etcd, got_git;

	*out = NULL;
	for (;;) {
		int64_t now = mono_us();

		if (w->etcd == NULL && now >= w->etcd_retry_at &&
		    co_store_watch(&w->etcd, w->r->etcd, w->prefix) < 0)
			w->etcd_retry_at = now + 1000000;
		/*
		 * First what either watch holds already, without waiting: each
		 * event dropped as the secondary's (the drain's batch commit
		 * brings several to git's watch at once) used to cost a wait
		 * on the other watch, so a primary's event queued behind five
		 * of them came 100 ms late (bench_serve, SSE in dual 50).
		 */
		do {
			if ((rc = next_of(out, w, 1, 0, &got_etcd)) != 0 ||
			    (rc = next_of(out, w, 0, 0, &got_git)) != 0)
				return rc < 0 ? rc : 0;
		} while (got_etcd || got_git);
		if (mono_us() >= deadline)
			return 0;
		/* Nothing held: wait on one, briefly when the other is open. */
		if (w->etcd)
			rc = next_of(out, w, 1, w->git ? 20 : 100, &got_etcd);
		else
			rc = next_of(out, w, 0, 20, &got_git);
		if (rc != 0)
			return rc < 0 ? rc : 0;
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

