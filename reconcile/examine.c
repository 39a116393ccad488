/*
 * examine.c - the look at both stores within one reconciliation run
 * (reconcile.c): snapshot both, diff, and re-check each divergent ID until
 * it settles, filling the run's counts, divergences and owed IDs.
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
 */
#include "examine.h"

#include "snapshot.h"

#include "core/error.h"
#include "core/outbox.h"
#include "core/redact.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void co_reconcile__progress(const co_reconcile_opts *o, const char *phase, size_t done,
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
	co_reconcile__progress(o, phase, done, total);
}

static void read_back_progress(void *ctx, const char *store, size_t done, size_t total)
{
	(void)store;
	co_reconcile__progress(ctx, "read back", done, total);
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
int co_reconcile__read_one(co_record **out, uint64_t *ver, co_store *s, co_kind kind,
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
int co_reconcile__prefix_error(int code, const char *fmt, ...)
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
	if ((error = co_reconcile__read_one(&g, &gv, o->git, c->kind, c->id)) < 0 ||
	    (error = co_reconcile__read_one(&e, &ev, o->etcd, c->kind, c->id)) < 0 ||
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
		co_reconcile__prefix_error(error, "snapshot of etcd %s",
					   co_store_describe(o->etcd));
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
int co_reconcile__examine(co_reconcile_result *res, const co_reconcile_opts *o)
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
	co_reconcile__progress(o, "diff", 0, gs.n + es.n);
	if ((error = co_snapshot_diff(&equal, &total, &gs, &es, collect, &cands)) < 0)
		goto done;
	co_reconcile__progress(o, "diff", gs.n + es.n, gs.n + es.n);
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
		co_reconcile__progress(o, "recheck", 0, left);
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
		co_reconcile__prefix_error(error, "reconcile");
	co_snapshot_clear(&gs);
	co_snapshot_clear(&es);
	cand_list_clear(&cands);
	return error;
}
