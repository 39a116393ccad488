/*
 * reconcile.c - one reconciliation run: drain, snapshot, diff, re-check what
 * was in flight, decide, act, record (DESIGN §5).
 *
 * The two snapshots cannot be taken at the same instant, and writes keep
 * arriving through the router while they are taken: a record written to
 * git's snapshot before the write and to etcd's after it looks divergent
 * without being so.  So the merge only nominates candidates.  Each one is
 * read again from both stores (with the claim-expiry rule applied at that
 * moment) and counts only if it is settled: nothing pending for it in the
 * outbox, and both stores still hold what the previous look saw.  Anything
 * else is "in flight" and looked at again after the grace period, up to
 * max_rechecks times; an ID that never settles counts with its last values
 * (and is reported as unsettled) rather than being hidden.
 *
 * Except one that still differs at the last look because the outbox owes
 * it an acknowledged write (a record or delete row, or an intent older
 * than the in-flight window: co_outbox_debt).  That is not consistency and
 * not a divergence either: the write is durable and the drain will apply
 * it.  Such IDs are counted apart as `owed` (by store, with the oldest
 * row's age) and give the run the verdict pending_drain when nothing
 * diverged enough to fail it: no kill switch, and no pass for the gate.
 *
 * Only divergent IDs are read one by one, so a healthy run costs two
 * listings and a merge, and its memory is 48 bytes and the ID per record
 * and store (snapshot.h).  git's listing is its tree alone: a record whose
 * etcd value, laid out as git's file, has the blob id the tree gives is
 * equal without its file being read; the files whose ids differ are read
 * back by id and digested the same way before anything is nominated.
 *
 * This module does not know the router: the outbox is drained through a
 * hook.  It never decides a claim; repair writes the truth's records with
 * co_store_put / co_store_remove and nothing else.
 */
#include "reconcile.h"

#include "snapshot.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/redact.h"
#include "flags/flags.h"
#include "flags/trip.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Divergences go to the database in batches of this many rows. */
#define DIVERGENCE_BATCH 2000

/* A divergent ID under examination. */
typedef struct candidate {
	co_kind kind;
	char *id;
	uint64_t git_ver; /* version hash the last look saw; 0 = absent */
	uint64_t etcd_ver;
	int settled; /* 1: decided (equal, owed or a divergence) */
	int owed;    /* 1: settled as owed by the outbox */
} candidate;

typedef struct cand_list {
	candidate *v;
	size_t n, cap;
} cand_list;

static void cand_list_clear(cand_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].id);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int collect(void *ctx, const co_diff_item *item)
{
	cand_list *l = ctx;
	candidate *c;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		candidate *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return co_error_set(CO_ENOMEM,
					    "out of memory (%zu divergent IDs)", l->n);
		l->v = v;
		l->cap = cap;
	}
	c = &l->v[l->n];
	memset(c, 0, sizeof(*c));
	if ((c->id = strdup(item->id)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	c->kind = item->kind;
	c->git_ver = item->git_ver;
	c->etcd_ver = item->etcd_ver;
	l->n++;
	return 0;
}

static void progress(const co_reconcile_opts *o, const char *phase, size_t done,
		     size_t total)
{
	if (o->progress)
		o->progress(o->progress_ctx, phase, done, total);
}

static void snapshot_progress(void *ctx, const char *store, size_t done, size_t total)
{
	const co_reconcile_opts *o = ctx;
	char phase[32];

	snprintf(phase, sizeof(phase), "snapshot %s", store);
	progress(o, phase, done, total);
}

static void read_back_progress(void *ctx, const char *store, size_t done, size_t total)
{
	(void)store;
	progress(ctx, "read back", done, total);
}

static void sleep_ms(int ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Read one record and the hash of its version; absent gives 0, *out NULL
 * and *ver 0. */
static int read_one(co_record **out, uint64_t *ver, co_store *s, co_kind kind,
		    const char *id)
{
	char version[CO_VERSION_MAX];
	int error = co_store_get_versioned(out, version, s, kind, id);

	*ver = co_snapshot_version_hash(version);
	if (error == CO_ENOTFOUND) {
		co_error_clear();
		*out = NULL;
		return 0;
	}
	return error;
}

/* Put "WHAT: " in front of the last error message, keeping its code. */
static int prefix_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int prefix_error(int code, const char *fmt, ...)
{
	char what[256], msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s", co_error_last());
	return co_error_set(code, "%s: %s", what, msg);
}

static int hash_of(uint64_t *out, const co_record *r)
{
	if (r == NULL) {
		*out = 0;
		return 0;
	}
	return co_snapshot_hash(out, r);
}

static int divergence_push(co_divergence_list *l, co_divergence *d)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		co_divergence **items = realloc(l->items, cap * sizeof(*items));

		if (items == NULL)
			return co_error_set(CO_ENOMEM, "out of memory");
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = d;
	return 0;
}

/*
 * Build the divergence row for two differing reads (at least one present).
 * The values it keeps are redacted copies (redact.h): the row goes to the
 * database, the reports and the HTTP answer, none of which may hold a
 * secret; each hidden field says there whether it was equal or differed.
 * `fields` names top-level fields only, never a value.
 */
static int make_divergence(co_divergence **out, const co_redact *rd, co_kind kind,
			   const char *id, const co_record *g, const co_record *e)
{
	co_divergence *d = calloc(1, sizeof(*d));
	char *gj = NULL, *ej = NULL;
	const char *cls = g == NULL   ? "missing_in_git"
			  : e == NULL ? "missing_in_etcd"
				      : "mismatch";
	int error = CO_ENOMEM;

	if (d == NULL)
		goto done;
	if ((d->id = strdup(id)) == NULL ||
	    (d->kind = strdup(co_kind_name(kind))) == NULL ||
	    (d->cls = strdup(cls)) == NULL)
		goto done;
	if (g && e)
		d->fields = co_record_diff(g, e);
	else
		d->fields = strdup("");
	if (d->fields == NULL)
		goto done;
	if (g && (gj = co_record_to_json(g, 0)) == NULL)
		goto done;
	if (e && (ej = co_record_to_json(e, 0)) == NULL)
		goto done;
	if (co_redact_pair(&d->git_value, &d->etcd_value, rd, gj, ej) < 0)
		goto done;
	*out = d;
	d = NULL;
	error = 0;
done:
	free(gj);
	free(ej);
	co_divergence_free(d);
	if (error < 0)
		co_error_set(error, "out of memory");
	return error;
}

static int owed_push(co_owed_list *l, const char *target, co_kind kind, const char *id,
		     int64_t since)
{
	co_owed *w = calloc(1, sizeof(*w));

	if (w == NULL)
		goto oom;
	w->since = since;
	if ((w->target = strdup(target)) == NULL ||
	    (w->kind = strdup(co_kind_name(kind))) == NULL ||
	    (w->id = strdup(id)) == NULL)
		goto oom;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		co_owed **items = realloc(l->items, cap * sizeof(*items));

		if (items == NULL)
			goto oom;
		l->items = items;
		l->cap = cap;
	}
	l->items[l->n++] = w;
	return 0;
oom:
	co_owed_free(w);
	return co_error_set(CO_ENOMEM, "out of memory");
}

/*
 * At the last look, an ID that still differs with rows pending: if the
 * outbox owes it an acknowledged write (outbox.h, co_outbox_debt), note it
 * in `owed` (one item per store owed) and return 1; 0 if every pending row
 * is an operation in flight.
 */
static int owed_by_outbox(co_owed_list *owed, const co_reconcile_opts *o,
			  const candidate *c)
{
	co_outbox_debt debt;
	int error;

	if ((error = co_outbox_debt_of(&debt, o->state, co_kind_name(c->kind), c->id,
				       co_state_now_ms())) < 0)
		return error;
	if (debt.etcd_since &&
	    (error = owed_push(owed, "etcd", c->kind, c->id, debt.etcd_since)) < 0)
		return error;
	if (debt.git_since &&
	    (error = owed_push(owed, "git", c->kind, c->id, debt.git_since)) < 0)
		return error;
	return debt.etcd_since || debt.git_since;
}

/*
 * Look at candidate c again.  It settles as equal when nothing is pending
 * for it and its normalized records are equal now.  Otherwise it settles
 * when nothing is pending and both stores hold what the last look (first:
 * the snapshot) saw -- the same versions, a divergence read twice -- or
 * when `final` is set: the last round, where it counts as it is now,
 * except for an ID with rows still pending.  Of those, one the outbox owes
 * an acknowledged write is owed (appended to `owed`, c->owed set: neither
 * equal nor divergent); one with only operations in flight is lag, counted
 * as found (equal) and in *unsettled.  A settled candidate whose normalized
 * records are equal adds to *equal (the snapshot's text hashes only said
 * "look closer"); a divergent one is appended to `out`.
 */
static int look(candidate *c, const co_reconcile_opts *o, int final, size_t *equal,
		co_divergence_list *out, co_owed_list *owed, int64_t *unsettled)
{
	co_record *g = NULL, *e = NULL;
	co_divergence *d = NULL;
	uint64_t gh, eh, gv, ev;
	int pending = 0, moved, error;

	if (o->state &&
	    (pending = co_outbox_has_pending(o->state, co_kind_name(c->kind), c->id)) < 0)
		return pending;
	if ((error = read_one(&g, &gv, o->git, c->kind, c->id)) < 0 ||
	    (error = read_one(&e, &ev, o->etcd, c->kind, c->id)) < 0 ||
	    (error = hash_of(&gh, g)) < 0 || (error = hash_of(&eh, e)) < 0)
		goto done;
	moved = pending || gv != c->git_ver || ev != c->etcd_ver;
	if (!pending && gh == eh) {
		/* Equal now with nothing in flight: no divergence to confirm,
		 * whether or not it moved since the last look (a hot ID that
		 * must read the same twice could run out of rounds). */
		c->settled = 1;
		(*equal)++;
		goto done;
	}
	if (!final && moved) {
		/* In flight: remember what we saw, look again after the grace. */
		c->git_ver = gv;
		c->etcd_ver = ev;
		goto done;
	}
	if (final && pending && gh != eh) {
		/* An acknowledged write still owed is not consistency: it is
		 * counted apart, whatever the rest of the run finds. */
		if ((error = owed_by_outbox(owed, o, c)) < 0)
			goto done;
		if (error == 1) {
			error = 0;
			c->settled = 1;
			c->owed = 1;
			goto done;
		}
	}
	if (final && moved)
		(*unsettled)++;
	c->settled = 1;
	if (gh == eh || (final && pending)) {
		/* Still in flight after every round (intents of operations not
		 * yet answered): lag, not a divergence; counted in `unsettled`,
		 * and checked again by the next run. */
		(*equal)++;
		goto done;
	}
	if ((error = make_divergence(&d, o->redact, c->kind, c->id, g, e)) < 0 ||
	    (error = divergence_push(out, d)) < 0)
		goto done;
	d = NULL;
done:
	co_divergence_free(d);
	co_record_free(g);
	co_record_free(e);
	return error;
}

static int div_cmp(const void *a, const void *b)
{
	const co_divergence *x = *(co_divergence *const *)a,
			    *y = *(co_divergence *const *)b;
	int c = strcmp(x->kind, y->kind);

	/* "swarm" < "task" alphabetically, but runs.h orders tasks first as
	 * the stores do (co_kind order): compare the kinds by that. */
	if (c != 0)
		return strcmp(x->kind, "task") == 0 ? -1 : 1;
	return strcmp(x->id, y->id);
}

/*
 * Make the other store equal to the truth for every divergence.  The truth
 * is read again now rather than taken from the diagnosis, so that a write
 * that reached the truth since is not undone by an older copy.
 */
static int repair(co_reconcile_result *res, const co_reconcile_opts *o)
{
	co_store *truth = o->repair == CO_REPAIR_FROM_GIT ? o->git : o->etcd;
	co_store *other = o->repair == CO_REPAIR_FROM_GIT ? o->etcd : o->git;
	size_t i;
	int error = 0;

	for (i = 0; i < res->divergences.n; i++) {
		const co_divergence *d = res->divergences.items[i];
		co_kind kind =
		    strcmp(d->kind, "task") == 0 ? CO_KIND_TASK : CO_KIND_SWARM;
		co_record *r = NULL;
		uint64_t ver;

		progress(o, "repair", i, res->divergences.n);
		if ((error = read_one(&r, &ver, truth, kind, d->id)) == 0 && r == NULL) {
			error = co_store_remove(other, kind, d->id);
			if (error == CO_ENOTFOUND) {
				co_error_clear();
				error = 0;
			} else if (error == 0) {
				res->repaired_removed++;
			}
		} else if (error == 0 && (error = co_store_put(other, r)) == 0) {
			res->repaired_put++;
		}
		co_record_free(r);
		if (error < 0)
			return prefix_error(error, "repair %s %s from %s", d->kind, d->id,
					    co_store_name(truth));
	}
	progress(o, "repair", res->divergences.n, res->divergences.n);
	return 0;
}

/*
 * Pull the kill switch with `reason` and record the trip (flags/trip.h: a
 * switch already on keeps its first reason; the trip is audited either way).
 */
static int trip(const co_reconcile_opts *o, const char *reason)
{
	return co_flags_trip(o->flags_path, o->who, "auto-rollback", reason, NULL,
			     o->state, NULL, NULL);
}

static int record_divergences(const co_reconcile_opts *o, co_reconcile_result *res)
{
	co_divergence *batch = NULL;
	size_t i, j, n;
	int error = 0;

	if (!o->state || res->run.id == 0 || res->divergences.n == 0)
		return 0;
	n = res->divergences.n < DIVERGENCE_BATCH ? res->divergences.n : DIVERGENCE_BATCH;
	if ((batch = calloc(n, sizeof(*batch))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (i = 0; i < res->divergences.n; i += n) {
		size_t m = res->divergences.n - i < n ? res->divergences.n - i : n;

		for (j = 0; j < m; j++)
			batch[j] = *res->divergences.items[i + j];
		progress(o, "record", i, res->divergences.n);
		if ((error = co_runs_add_divergences(o->state, res->run.id, batch, m)) <
		    0)
			break;
	}
	free(batch);
	return error;
}

static int check_opts(const co_reconcile_opts *o)
{
	if (o == NULL || o->git == NULL || o->etcd == NULL)
		return co_error_set(CO_EINVAL, "reconcile: both stores are required");
	if (!(o->min_consistency >= 0 && o->min_consistency <= 1))
		return co_error_set(CO_EINVAL,
				    "reconcile: min_consistency %g not in 0..1",
				    o->min_consistency);
	if (!(o->max_mismatch_ratio >= 0 && o->max_mismatch_ratio <= 1))
		return co_error_set(CO_EINVAL,
				    "reconcile: max_mismatch_ratio %g not in 0..1",
				    o->max_mismatch_ratio);
	if (o->grace_ms < 0 || o->max_rechecks < 0)
		return co_error_set(CO_EINVAL,
				    "reconcile: negative grace or recheck count");
	if (o->repair != CO_REPAIR_NONE && o->repair != CO_REPAIR_FROM_GIT &&
	    o->repair != CO_REPAIR_FROM_ETCD)
		return co_error_set(CO_EINVAL, "reconcile: unknown repair source");
	return 0;
}

/*
 * Decide the verdict: "fail" (reason written: "reconcile run N: ..."),
 * "pending_drain" or "pass".  The thresholds judge the divergences: owed
 * IDs count against neither (they are not divergent, and the recorded
 * consistency already leaves them out of `equal`).  A failing run fails
 * whatever it owed: divergence wins over pending.
 */
static const char *decide(co_reconcile_result *res, const co_reconcile_opts *o)
{
	co_run *r = &res->run;
	double settled;
	int low, many;
	char why[256] = "";

	r->consistency = r->total ? (double)r->equal / (double)r->total : 1.0;
	settled = r->total ? (double)(r->equal + r->owed) / (double)r->total : 1.0;
	low = settled < o->min_consistency;
	many = (double)r->mismatch > o->max_mismatch_ratio * (double)r->total;
	if (!low && !many)
		return r->owed > 0 ? "pending_drain" : "pass";
	if (low)
		snprintf(why, sizeof(why), "consistency %.4f%% below %.4f%%",
			 100.0 * settled, 100.0 * o->min_consistency);
	if (many)
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "%s%lld mismatches over %g%% of %lld records", low ? "; " : "",
			 (long long)r->mismatch, 100.0 * o->max_mismatch_ratio,
			 (long long)r->total);
	snprintf(res->reason, sizeof(res->reason),
		 "reconcile run %lld: %s (%lld missing_in_etcd, %lld missing_in_git, "
		 "%lld mismatch)",
		 (long long)r->id, why, (long long)r->missing_in_etcd,
		 (long long)r->missing_in_git, (long long)r->mismatch);
	return "fail";
}

/* The git snapshot, taken in its own thread while etcd's is taken. */
typedef struct snap_job {
	const co_reconcile_opts *o;
	co_snapshot snap;
	int error;
	char msg[1024];
} snap_job;

static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;

static void locked_snapshot_progress(void *ctx, const char *store, size_t done,
				     size_t total)
{
	pthread_mutex_lock(&progress_lock);
	snapshot_progress(ctx, store, done, total);
	pthread_mutex_unlock(&progress_lock);
}

static void *snap_git_main(void *arg)
{
	snap_job *j = arg;

	if ((j->error = co_snapshot_take(&j->snap, j->o->git, locked_snapshot_progress,
					 (void *)j->o)) < 0)
		snprintf(j->msg, sizeof(j->msg), "%s",
			 co_error_last()); /* thread-local */
	return NULL;
}

/*
 * Both snapshots: at once in two threads (the run then takes as long as the
 * slower store), or one after the other with low_memory (the peak is then
 * one store's listing instead of two).
 */
static int take_snapshots(co_snapshot *gs, co_snapshot *es, const co_reconcile_opts *o)
{
	snap_job job;
	pthread_t t;
	int error, started = 0;

	memset(&job, 0, sizeof(job));
	job.o = o;
	if (!o->low_memory && pthread_create(&t, NULL, snap_git_main, &job) == 0)
		started = 1;
	else
		snap_git_main(&job);
	error = co_snapshot_take(es, o->etcd, locked_snapshot_progress, (void *)o);
	if (error < 0)
		prefix_error(error, "snapshot of etcd %s", co_store_describe(o->etcd));
	if (started)
		pthread_join(t, NULL);
	if (job.error < 0) {
		co_snapshot_clear(&job.snap);
		if (error == 0)
			error = co_error_set(job.error, "snapshot of git %s: %s",
					     co_store_describe(o->git), job.msg);
	}
	if (error < 0) {
		co_snapshot_clear(&job.snap);
		return error;
	}
	*gs = job.snap;
	return 0;
}

/* The owed counts and the oldest owed row's age, now, from the candidates. */
static void count_owed(co_run *r, const cand_list *cands)
{
	int64_t now = co_state_now_ms(), oldest = 0;
	size_t i;

	for (i = 0; i < cands->n; i++)
		r->owed += cands->v[i].owed;
	for (i = 0; i < r->owed_list.n; i++) {
		const co_owed *w = r->owed_list.items[i];

		if (strcmp(w->target, "etcd") == 0)
			r->owed_etcd++;
		else
			r->owed_git++;
		if (oldest == 0 || w->since < oldest)
			oldest = w->since;
	}
	r->owed_oldest_ms = oldest && now > oldest ? now - oldest : 0;
}

static int owed_cmp(const void *a, const void *b)
{
	const co_owed *x = *(co_owed *const *)a, *y = *(co_owed *const *)b;
	int c = strcmp(x->kind, y->kind);

	/* Tasks first, as the divergences. */
	if (c != 0)
		return strcmp(x->kind, "task") == 0 ? -1 : 1;
	if ((c = strcmp(x->id, y->id)) != 0)
		return c;
	return strcmp(x->target, y->target);
}

/* Snapshot, diff and re-check: fill res's counts and divergences. */
static int examine(co_reconcile_result *res, const co_reconcile_opts *o)
{
	co_snapshot gs = {0}, es = {0};
	co_snapshot_stats stats = {0, 0};
	cand_list cands = {0};
	size_t equal = 0, total = 0, i, left, round;
	int error;

	if ((error = take_snapshots(&gs, &es, o)) < 0)
		goto done;
	if ((error = co_snapshot_resolve(&stats, &gs, o->git, &es, o->etcd,
					 read_back_progress, (void *)o)) < 0)
		goto done;
	res->same_blob = (int64_t)stats.same_blob;
	res->read_back = (int64_t)stats.read_back;
	progress(o, "diff", 0, gs.n + es.n);
	if ((error = co_snapshot_diff(&equal, &total, &gs, &es, collect, &cands)) < 0)
		goto done;
	progress(o, "diff", gs.n + es.n, gs.n + es.n);
	co_snapshot_clear(&gs);
	co_snapshot_clear(&es);

	/* First look: what is already settled counts now. */
	for (i = 0; i < cands.n; i++) {
		if ((error = look(&cands.v[i], o, 0, &equal, &res->divergences,
				  &res->run.owed_list, &res->unsettled)) < 0)
			goto done;
		if (!cands.v[i].settled)
			res->in_flight++;
	}
	for (round = 1, left = (size_t)res->in_flight; left > 0; round++) {
		int final = round > (size_t)o->max_rechecks;

		sleep_ms(o->grace_ms);
		progress(o, "recheck", 0, left);
		for (i = 0, left = 0; i < cands.n; i++) {
			if (cands.v[i].settled)
				continue;
			if ((error =
				 look(&cands.v[i], o, final, &equal, &res->divergences,
				      &res->run.owed_list, &res->unsettled)) < 0)
				goto done;
			left += !cands.v[i].settled;
		}
	}
	if (res->divergences.n > 1)
		qsort(res->divergences.items, res->divergences.n,
		      sizeof(*res->divergences.items), div_cmp);
	if (res->run.owed_list.n > 1)
		qsort(res->run.owed_list.items, res->run.owed_list.n,
		      sizeof(*res->run.owed_list.items), owed_cmp);
	res->run.total = (int64_t)total;
	res->run.equal = (int64_t)equal;
	count_owed(&res->run, &cands);
	for (i = 0; i < res->divergences.n; i++) {
		const char *cls = res->divergences.items[i]->cls;

		res->divergences.items[i]->run = res->run.id;
		if (strcmp(cls, "missing_in_etcd") == 0)
			res->run.missing_in_etcd++;
		else if (strcmp(cls, "missing_in_git") == 0)
			res->run.missing_in_git++;
		else
			res->run.mismatch++;
	}
done:
	if (error < 0)
		prefix_error(error, "reconcile");
	co_snapshot_clear(&gs);
	co_snapshot_clear(&es);
	cand_list_clear(&cands);
	return error;
}

static int set_str(char **dst, const char *s)
{
	char *c = strdup(s);

	if (c == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	free(*dst);
	*dst = c;
	return 0;
}

void co_reconcile_result_free(co_reconcile_result *r)
{
	if (r == NULL)
		return;
	free(r->run.verdict);
	free(r->run.action);
	free(r->run.error);
	co_owed_list_clear(&r->run.owed_list);
	co_divergence_list_clear(&r->divergences);
	free(r);
}

int co_reconcile_passed(const co_reconcile_result *r)
{
	return r && r->run.verdict && strcmp(r->run.verdict, "pass") == 0;
}

int co_reconcile_pending_drain(const co_reconcile_result *r)
{
	return r && r->run.verdict && strcmp(r->run.verdict, "pending_drain") == 0;
}

int co_reconcile_parse_repair(co_repair_from *out, const char *name)
{
	if (name && strcmp(name, "git") == 0)
		*out = CO_REPAIR_FROM_GIT;
	else if (name && strcmp(name, "etcd") == 0)
		*out = CO_REPAIR_FROM_ETCD;
	else
		return co_error_set(CO_EINVAL,
				    "--repair: \"%s\" is not a store (git or etcd)",
				    name ? name : "");
	return 0;
}

int co_reconcile_run(co_reconcile_result **out, const co_reconcile_opts *opts)
{
	co_reconcile_opts o;
	co_reconcile_result *res = NULL;
	co_redact *own_redact = NULL;
	const char *verdict;
	int error, pass, dead;
	char msg[1024];

	if ((error = check_opts(opts)) < 0)
		return error;
	o = *opts;
	if (o.who == NULL)
		o.who = "reconcile";
	/* No policy given: the default one, never none (redact.h). */
	if (o.redact == NULL && (error = co_redact_default(&own_redact)) < 0)
		return error;
	if (o.redact == NULL)
		o.redact = own_redact;
	if ((res = calloc(1, sizeof(*res))) == NULL) {
		co_redact_free(own_redact);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	res->run.started_at = co_state_now_ms();
	if (o.state &&
	    (error = co_runs_begin(&res->run.id, o.state, res->run.started_at)) < 0)
		goto done;

	if (o.drain) {
		progress(&o, "drain", 0, 0);
		if ((error = o.drain(o.drain_ctx)) < 0) {
			/* What could not be drained is pending, hence in flight. */
			snprintf(res->warning, sizeof(res->warning), "outbox drain: %s",
				 co_error_last());
			co_error_clear();
		}
	}
	if ((error = examine(res, &o)) < 0) {
		/* Leave a finished, failed row behind so that the go/no-go gate
		 * does not wave a stage through on an older pass. */
		snprintf(msg, sizeof(msg), "%s", co_error_last());
		dead = error;
		/* Counts of a run that did not complete mean nothing. */
		co_owed_list_clear(&res->run.owed_list);
		res->run.owed = res->run.owed_etcd = res->run.owed_git = 0;
		res->run.owed_oldest_ms = 0;
		res->run.duration_ms = co_state_now_ms() - res->run.started_at;
		if (o.state && res->run.id && set_str(&res->run.verdict, "fail") == 0 &&
		    set_str(&res->run.action, "none") == 0 &&
		    set_str(&res->run.error, msg) == 0)
			co_runs_finish(o.state, &res->run);
		error = co_error_set(dead, "%s", msg);
		goto done;
	}

	verdict = decide(res, &o);
	/* pending_drain never trips the kill switch: nothing diverged, and
	 * what is owed is in the durable outbox. */
	pass = strcmp(verdict, "fail") != 0;
	if ((error = set_str(&res->run.verdict, verdict)) < 0 ||
	    (error = set_str(&res->run.action, "none")) < 0)
		goto done;
	if (o.repair != CO_REPAIR_NONE && res->divergences.n > 0) {
		/* The diagnosis is recorded as it was; the action says what was
		 * done about it. */
		error = repair(res, &o);
		if (set_str(&res->run.action, o.repair == CO_REPAIR_FROM_GIT
						  ? "repair:git"
						  : "repair:etcd") < 0)
			error = error < 0 ? error : CO_ENOMEM;
		if (error < 0) {
			snprintf(msg, sizeof(msg), "%s", co_error_last());
			set_str(&res->run.error, msg);
		}
		if (o.state) {
			char detail[160], why[64];

			/* Repair rewrites data: operators find it beside the trips. */
			snprintf(detail, sizeof(detail),
				 "%s: %lld written, %lld removed%s",
				 res->run.action ? res->run.action : "repair",
				 (long long)res->repaired_put,
				 (long long)res->repaired_removed,
				 error < 0 ? " (incomplete)" : "");
			snprintf(why, sizeof(why), "reconcile run %lld",
				 (long long)res->run.id);
			co_audit_change_add(o.state, o.who, "repair", detail, why);
		}
	} else if (!pass && !o.no_rollback && o.flags_path) {
		if ((error = trip(&o, res->reason)) < 0) {
			snprintf(msg, sizeof(msg), "%s", co_error_last());
			set_str(&res->run.error, msg);
		} else {
			error = set_str(&res->run.action, "kill_switch");
		}
	}
	res->run.duration_ms = co_state_now_ms() - res->run.started_at;
	if (o.state && res->run.id) {
		int e2;

		if ((e2 = record_divergences(&o, res)) < 0 ||
		    (e2 = co_runs_finish(o.state, &res->run)) < 0)
			error = error < 0 ? error : e2;
	}
	if (error < 0)
		goto done;
	*out = res;
	res = NULL;
done:
	co_reconcile_result_free(res);
	co_redact_free(own_redact);
	return error;
}
