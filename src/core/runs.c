/*
 * runs.c - reconciliation runs and divergences in the state database.
 *
 * A run is written twice: once when it begins (so that a run that dies
 * leaves a trace and its divergences have a row to belong to) and once when
 * it finishes.  Divergences go in batches inside one transaction each: a
 * million-record diff with many divergences must not pay one fsync per row.
 *
 * The go/no-go gate lives here rather than in reconcile/ because the
 * router's `stage` command needs it and must not depend on the reconciler
 * (DESIGN §8: the shared thing belongs lower).  It looks only at the latest
 * finished run: an older pass never excuses a newer failure.
 *
 * What the outbox still owed at the end of a run (co_owed) goes to its own
 * table, run_owed, written in the transaction that finishes the run, so
 * that a finished run and its owed IDs are never seen apart.
 *
 * This module stores and reads; it does not compute counts or verdicts.
 */
#include "runs.h"

#include "error.h"
#include "list.h"
#include "state_internal.h"
#include "webhook.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_COLUMNS                                                                      \
	"id, started_at, duration_ms, total, equal, missing_in_etcd, missing_in_git,"    \
	" mismatch, consistency, verdict, action, error, owed, owed_etcd, owed_git,"     \
	" owed_oldest_ms"

void co_owed_free(co_owed *o)
{
	if (o == NULL)
		return;
	free(o->target);
	free(o->kind);
	free(o->id);
	free(o);
}

void co_owed_list_clear(co_owed_list *l)
{
	CO_LIST_CLEAR(l, co_owed_free);
}

void co_run_free(co_run *r)
{
	if (r == NULL)
		return;
	free(r->verdict);
	free(r->action);
	free(r->error);
	co_owed_list_clear(&r->owed_list);
	free(r);
}

const co_owed *co_run_oldest_owed(const co_run *r)
{
	const co_owed *best = NULL;
	size_t i;

	for (i = 0; r && i < r->owed_list.n; i++)
		if (best == NULL || r->owed_list.items[i]->since < best->since)
			best = r->owed_list.items[i];
	return best;
}

void co_run_list_clear(co_run_list *l)
{
	CO_LIST_CLEAR(l, co_run_free);
}

void co_divergence_free(co_divergence *d)
{
	if (d == NULL)
		return;
	free(d->id);
	free(d->kind);
	free(d->cls);
	free(d->fields);
	free(d->git_value);
	free(d->etcd_value);
	free(d);
}

void co_divergence_list_clear(co_divergence_list *l)
{
	CO_LIST_CLEAR(l, co_divergence_free);
}

/* One run from a row of RUN_COLUMNS (void ** for co_state__row_type). */
static int read_run(void **out, sqlite3_stmt *s)
{
	co_run *r;
	int error;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return co_error_set(CO_ENOMEM, "runs: out of memory");
	r->id = sqlite3_column_int64(s, 0);
	r->started_at = sqlite3_column_int64(s, 1);
	r->duration_ms = sqlite3_column_int64(s, 2);
	r->total = sqlite3_column_int64(s, 3);
	r->equal = sqlite3_column_int64(s, 4);
	r->missing_in_etcd = sqlite3_column_int64(s, 5);
	r->missing_in_git = sqlite3_column_int64(s, 6);
	r->mismatch = sqlite3_column_int64(s, 7);
	r->consistency = sqlite3_column_double(s, 8);
	r->owed = sqlite3_column_int64(s, 12);
	r->owed_etcd = sqlite3_column_int64(s, 13);
	r->owed_git = sqlite3_column_int64(s, 14);
	r->owed_oldest_ms = sqlite3_column_int64(s, 15);
	if ((error = co_state__column_text(&r->verdict, s, 9)) < 0 ||
	    (error = co_state__column_text(&r->action, s, 10)) < 0 ||
	    (error = co_state__column_text(&r->error, s, 11)) < 0) {
		co_run_free(r);
		return error;
	}
	*out = r;
	return 0;
}

static int check_owed(const co_owed *o, size_t i)
{
	if (o == NULL || o->id == NULL || o->id[0] == '\0')
		return co_error_set(CO_EINVAL, "runs: owed item %zu has no id", i);
	if (o->target == NULL ||
	    (strcmp(o->target, "git") != 0 && strcmp(o->target, "etcd") != 0))
		return co_error_set(CO_EINVAL, "runs: owed %s: unknown store \"%s\"",
				    o->id, o->target ? o->target : "(null)");
	if (o->kind == NULL ||
	    (strcmp(o->kind, "task") != 0 && strcmp(o->kind, "swarm") != 0))
		return co_error_set(CO_EINVAL, "runs: owed %s: unknown kind \"%s\"",
				    o->id, o->kind ? o->kind : "(null)");
	return 0;
}

static int check_finished(const co_run *r)
{
	size_t i;
	int error;

	if (r->verdict == NULL ||
	    (strcmp(r->verdict, "pass") != 0 && strcmp(r->verdict, "fail") != 0 &&
	     strcmp(r->verdict, "pending_drain") != 0))
		return co_error_set(CO_EINVAL,
				    "runs: verdict must be \"pass\", \"fail\" or "
				    "\"pending_drain\", not \"%s\"",
				    r->verdict ? r->verdict : "(null)");
	if (strcmp(r->verdict, "pending_drain") == 0 && r->owed <= 0)
		return co_error_set(CO_EINVAL,
				    "runs: a pending_drain run needs the writes it owed");
	if (r->action == NULL || r->action[0] == '\0')
		return co_error_set(
		    CO_EINVAL, "runs: a finished run needs its action (\"none\", ...)");
	for (i = 0; i < r->owed_list.n; i++)
		if ((error = check_owed(r->owed_list.items[i], i)) < 0)
			return error;
	return 0;
}

/* Write r's owed items for run `id`; caller holds the lock inside a txn. */
static int insert_owed(co_state *st, int64_t id, const co_run *r)
{
	sqlite3_stmt *s = NULL;
	size_t i;
	int error = 0;

	if (r->owed_list.n == 0)
		return 0;
	if ((error =
		 co_state__prepare(st, &s,
				   "INSERT INTO run_owed (run, target, kind, id, since)"
				   " VALUES (?, ?, ?, ?, ?)")) < 0)
		return error;
	for (i = 0; i < r->owed_list.n; i++) {
		const co_owed *o = r->owed_list.items[i];

		sqlite3_bind_int64(s, 1, id);
		if ((error = co_state__bind_text(st, s, 2, o->target)) < 0 ||
		    (error = co_state__bind_text(st, s, 3, o->kind)) < 0 ||
		    (error = co_state__bind_text(st, s, 4, o->id)) < 0)
			goto done;
		sqlite3_bind_int64(s, 5, o->since);
		if ((error = co_state__step_done(st, s, "record owed")) < 0) {
			if (error == CO_EINVAL)
				error = co_error_set(
				    CO_EINVAL, "run %lld: owed %s %s to %s listed twice",
				    (long long)id, o->kind, o->id, o->target);
			goto done;
		}
	}
done:
	co_state__finish(st, s);
	return error;
}

/* Insert a new in-progress run; caller holds the lock inside a txn. */
static int insert_run(int64_t *out, co_state *st, int64_t started_at)
{
	sqlite3_stmt *s = NULL;
	int error;

	if ((error = co_state__prepare(st, &s,
				       "INSERT INTO runs (started_at) VALUES (?)")) < 0)
		return error;
	sqlite3_bind_int64(s, 1, started_at ? started_at : co_state_now_ms());
	if ((error = co_state__step_done(st, s, "begin run")) == 0)
		*out = sqlite3_last_insert_rowid(st->db);
	co_state__finish(st, s);
	return error;
}

/* Finish run `id` with r's fields; caller holds the lock inside a txn. */
static int update_run(co_state *st, int64_t id, const co_run *r)
{
	sqlite3_stmt *s = NULL;
	int rc, error;

	if ((error = co_state__prepare(
		 st, &s,
		 "UPDATE runs SET duration_ms = ?1, total = ?2, equal = ?3,"
		 " missing_in_etcd = ?4, missing_in_git = ?5, mismatch = ?6,"
		 " consistency = ?7, verdict = ?8, action = ?9, error = ?10,"
		 " owed = ?12, owed_etcd = ?13, owed_git = ?14, owed_oldest_ms = ?15"
		 " WHERE id = ?11 AND verdict IS NULL")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, r->duration_ms);
	sqlite3_bind_int64(s, 2, r->total);
	sqlite3_bind_int64(s, 3, r->equal);
	sqlite3_bind_int64(s, 4, r->missing_in_etcd);
	sqlite3_bind_int64(s, 5, r->missing_in_git);
	sqlite3_bind_int64(s, 6, r->mismatch);
	sqlite3_bind_double(s, 7, r->consistency);
	if ((error = co_state__bind_text(st, s, 8, r->verdict)) < 0 ||
	    (error = co_state__bind_text(st, s, 9, r->action)) < 0 ||
	    (error = co_state__bind_text(st, s, 10, r->error)) < 0)
		goto done;
	sqlite3_bind_int64(s, 11, id);
	sqlite3_bind_int64(s, 12, r->owed);
	sqlite3_bind_int64(s, 13, r->owed_etcd);
	sqlite3_bind_int64(s, 14, r->owed_git);
	sqlite3_bind_int64(s, 15, r->owed_oldest_ms);
	if ((error = co_state__step_done(st, s, "finish run")) < 0)
		goto done;
	if (co_state__changes(st) == 1) {
		error = insert_owed(st, id, r);
		goto done;
	}

	/* Nothing updated: tell "no such run" from "already finished". */
	co_state__finish(st, s);
	s = NULL;
	if ((error = co_state__prepare(st, &s, "SELECT 1 FROM runs WHERE id = ?")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		error = co_error_set(CO_ECONFLICT,
				     "reconciliation run %lld is already finished",
				     (long long)id);
	else if (rc == SQLITE_DONE)
		error = co_error_set(CO_ENOTFOUND, "no reconciliation run %lld",
				     (long long)id);
	else
		error = co_state__error(st, rc, "finish run");
done:
	co_state__finish(st, s);
	return error;
}

int co_runs_begin(int64_t *out, co_state *st, int64_t started_at)
{
	int64_t id = 0;
	int error;

	co_state__lock(st);
	if ((error = co_state__begin(st, 1)) < 0)
		goto done;
	if ((error = insert_run(&id, st, started_at)) < 0)
		goto done;
	if ((error = co_state__commit(st)) == 0)
		*out = id;
done:
	co_state__rollback(st);
	co_state__unlock(st);
	return error;
}

/* A failing verdict's webhook event (webhook.h), built before the lock. */
static void failed_event(co_webhook__event *ev, const co_run *r)
{
	char detail[512];

	memset(ev, 0, sizeof(*ev));
	if (r->verdict == NULL || strcmp(r->verdict, "fail") != 0)
		return;
	snprintf(
	    detail, sizeof(detail),
	    "run %lld: fail, consistency %.4f%%, %lld missing in etcd, %lld missing in "
	    "git, %lld mismatched, action %s",
	    (long long)r->id, 100.0 * r->consistency, (long long)r->missing_in_etcd,
	    (long long)r->missing_in_git, (long long)r->mismatch,
	    r->action ? r->action : "none");
	co_webhook__event_make(ev, "reconcile.failed", "reconcile", "reconcile", detail,
			       r->error, co_state_now_ms());
}

int co_runs_finish(co_state *st, const co_run *r)
{
	co_webhook__event ev;
	int error;

	if ((error = check_finished(r)) < 0)
		return error;
	failed_event(&ev, r);
	co_state__lock(st);
	if ((error = co_state__begin(st, 1)) < 0)
		goto done;
	if ((error = update_run(st, r->id, r)) < 0 ||
	    (error = co_webhook__event_queue(st, &ev)) < 0)
		goto done;
	error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__unlock(st);
	if (error == 0 && ev.body)
		co_webhook__kick();
	co_webhook__event_clear(&ev);
	return error;
}

int co_runs_insert(int64_t *out, co_state *st, const co_run *r)
{
	int64_t id = 0;
	int error;

	if ((error = check_finished(r)) < 0)
		return error;
	co_state__lock(st);
	if ((error = co_state__begin(st, 1)) < 0)
		goto done;
	if ((error = insert_run(&id, st, r->started_at)) < 0 ||
	    (error = update_run(st, id, r)) < 0)
		goto done;
	if ((error = co_state__commit(st)) == 0 && out)
		*out = id;
done:
	co_state__rollback(st);
	co_state__unlock(st);
	return error;
}

static int check_divergence(const co_divergence *d, size_t i)
{
	const char *c = d->cls;

	if (d->id == NULL || d->id[0] == '\0')
		return co_error_set(CO_EINVAL, "runs: divergence %zu has no id", i);
	if (d->kind == NULL ||
	    (strcmp(d->kind, "task") != 0 && strcmp(d->kind, "swarm") != 0))
		return co_error_set(CO_EINVAL, "runs: divergence %s: unknown kind \"%s\"",
				    d->id, d->kind ? d->kind : "(null)");
	if (c == NULL || (strcmp(c, "missing_in_etcd") != 0 &&
			  strcmp(c, "missing_in_git") != 0 && strcmp(c, "mismatch") != 0))
		return co_error_set(CO_EINVAL,
				    "runs: divergence %s: unknown class \"%s\"", d->id,
				    c ? c : "(null)");
	return 0;
}

int co_runs_add_divergences(co_state *st, int64_t run, const co_divergence *d, size_t n)
{
	sqlite3_stmt *s = NULL;
	size_t i;
	int rc, error;

	for (i = 0; i < n; i++)
		if ((error = check_divergence(&d[i], i)) < 0)
			return error;
	co_state__lock(st);
	if ((error = co_state__begin(st, 1)) < 0)
		goto done;
	/* Check the run here rather than rely on the foreign key, for a
	 * message that names it. */
	if ((error = co_state__prepare(st, &s, "SELECT 1 FROM runs WHERE id = ?")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, run);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		error = rc == SQLITE_DONE
			    ? co_error_set(CO_ENOTFOUND, "no reconciliation run %lld",
					   (long long)run)
			    : co_state__error(st, rc, "add divergences");
		goto done;
	}
	co_state__finish(st, s);
	s = NULL;
	if ((error = co_state__prepare(
		 st, &s,
		 "INSERT INTO divergences (run, id, kind, class, fields,"
		 " git_value, etcd_value) VALUES (?, ?, ?, ?, ?, ?, ?)")) < 0)
		goto done;
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(s, 1, run);
		if ((error = co_state__bind_text(st, s, 2, d[i].id)) < 0 ||
		    (error = co_state__bind_text(st, s, 3, d[i].kind)) < 0 ||
		    (error = co_state__bind_text(st, s, 4, d[i].cls)) < 0 ||
		    (error = co_state__bind_text(st, s, 5,
						 d[i].fields ? d[i].fields : "")) < 0 ||
		    (error = co_state__bind_text(st, s, 6, d[i].git_value)) < 0 ||
		    (error = co_state__bind_text(st, s, 7, d[i].etcd_value)) < 0)
			goto done;
		if ((error = co_state__step_done(st, s, "add divergence")) < 0) {
			if (error == CO_EINVAL)
				error = co_error_set(
				    CO_EINVAL,
				    "run %lld: divergence %s %s recorded twice",
				    (long long)run, d[i].kind, d[i].id);
			goto done;
		}
	}
	error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

/* One run from `sql` with one integer parameter; CO_ENOTFOUND with `none`. */
static int query_run(co_run **out, co_state *st, const char *sql, int64_t param,
		     const char *none)
{
	sqlite3_stmt *s = NULL;
	void *p = NULL;
	int rc, error;

	co_state__lock(st);
	if ((error = co_state__prepare(st, &s, sql)) < 0)
		goto done;
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, param);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		error = co_error_set(CO_ENOTFOUND, "%s", none);
		goto done;
	}
	if (rc != SQLITE_ROW) {
		error = co_state__error(st, rc, "read runs");
		goto done;
	}
	if ((error = read_run(&p, s)) < 0)
		goto done;
	*out = p;
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

static int read_owed(void **out, sqlite3_stmt *s)
{
	co_owed *o;
	int error;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return co_error_set(CO_ENOMEM, "runs: out of memory");
	o->since = sqlite3_column_int64(s, 3);
	if ((error = co_state__column_text(&o->target, s, 0)) < 0 ||
	    (error = co_state__column_text(&o->kind, s, 1)) < 0 ||
	    (error = co_state__column_text(&o->id, s, 2)) < 0) {
		co_owed_free(o);
		return error;
	}
	*out = o;
	return 0;
}

static void free_owed(void *o)
{
	co_owed_free(o);
}

static const co_state__row_type owed_rows = {"runs", read_owed, free_owed};

/*
 * A run by `sql`, then its owed items.  Two reads, not one transaction: the
 * items are written with the run's finish and never change after it.
 */
static int query_run_owed(co_run **out, co_state *st, const char *sql, int64_t param,
			  const char *none)
{
	co_run *r = NULL;
	void *p;
	int error;

	if ((error = query_run(&r, st, sql, param, none)) < 0)
		return error;
	p = r->owed_list.items;
	error = co_state__select_append(
	    &p, &r->owed_list.n, &r->owed_list.cap, st,
	    "SELECT target, kind, id, since FROM run_owed WHERE run = ?"
	    " ORDER BY kind = 'swarm', id, target",
	    r->id, &owed_rows, "read owed");
	r->owed_list.items = p;
	if (error < 0) {
		co_run_free(r);
		return error;
	}
	*out = r;
	return 0;
}

int co_runs_latest(co_run **out, co_state *st)
{
	return query_run_owed(out, st,
			      "SELECT " RUN_COLUMNS " FROM runs WHERE verdict IS NOT NULL"
			      " ORDER BY id DESC LIMIT 1",
			      0, "no reconciliation run has finished");
}

int co_runs_get(co_run **out, co_state *st, int64_t n)
{
	char none[64];

	snprintf(none, sizeof(none), "no reconciliation run %lld", (long long)n);
	return query_run_owed(out, st, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1",
			      n, none);
}

static int read_divergence(void **out, sqlite3_stmt *s)
{
	co_divergence *d;
	int error;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return co_error_set(CO_ENOMEM, "runs: out of memory");
	d->run = sqlite3_column_int64(s, 0);
	if ((error = co_state__column_text(&d->id, s, 1)) < 0 ||
	    (error = co_state__column_text(&d->kind, s, 2)) < 0 ||
	    (error = co_state__column_text(&d->cls, s, 3)) < 0 ||
	    (error = co_state__column_text(&d->fields, s, 4)) < 0 ||
	    (error = co_state__column_text(&d->git_value, s, 5)) < 0 ||
	    (error = co_state__column_text(&d->etcd_value, s, 6)) < 0) {
		co_divergence_free(d);
		return error;
	}
	*out = d;
	return 0;
}

static void free_run(void *r)
{
	co_run_free(r);
}

static void free_divergence(void *d)
{
	co_divergence_free(d);
}

static const co_state__row_type run_rows = {"runs", read_run, free_run};
static const co_state__row_type divergence_rows = {"runs", read_divergence,
						   free_divergence};

/* The two list readers: read the rows, then append them to *out all or nothing. */
int co_runs_list(co_run_list *out, co_state *st, size_t limit)
{
	void *p = out->items;
	int error = co_state__select_append(
	    &p, &out->n, &out->cap, st,
	    "SELECT * FROM (SELECT " RUN_COLUMNS " FROM runs"
	    " WHERE verdict IS NOT NULL ORDER BY id DESC LIMIT ?)"
	    " ORDER BY id",
	    limit > INT64_MAX ? INT64_MAX : (int64_t)limit, &run_rows, "read runs");

	out->items = p;
	return error;
}

int co_runs_divergences(co_divergence_list *out, co_state *st, int64_t run)
{
	void *p = out->items;
	int error = co_state__select_append(
	    &p, &out->n, &out->cap, st,
	    "SELECT run, id, kind, class, fields, git_value, etcd_value"
	    " FROM divergences WHERE run = ? ORDER BY kind = 'swarm', id",
	    run, &divergence_rows, "read divergences");

	out->items = p;
	return error;
}

int co_runs_latest_passed_within(co_run **out, co_state *st, int64_t window_ms,
				 int64_t now_ms)
{
	co_run *r = NULL;
	int64_t age;
	int error;

	if (window_ms < 0)
		return co_error_set(CO_EINVAL, "go/no-go: negative window %lld ms",
				    (long long)window_ms);
	if ((error = co_runs_latest(&r, st)) < 0) {
		if (error == CO_ENOTFOUND)
			co_error_set(CO_ENOTFOUND,
				     "go/no-go: no reconciliation run has finished; "
				     "run `cutover reconcile` first");
		goto done;
	}
	/* The verdict is as old as the end of the run, not its start. */
	age = now_ms - (r->started_at + r->duration_ms);
	if (strcmp(r->verdict, "pending_drain") == 0) {
		const co_owed *o = co_run_oldest_owed(r);

		error =
		    co_error_set(CO_ECONFLICT,
				 "go/no-go: latest reconciliation run %lld is "
				 "pending_drain: the outbox still owed %lld "
				 "acknowledged write%s (oldest %s%s%s, %lld ms)",
				 (long long)r->id, (long long)r->owed,
				 r->owed == 1 ? "" : "s", o ? o->kind : "", o ? " " : "",
				 o ? o->id : "?", (long long)r->owed_oldest_ms);
		goto done;
	}
	if (strcmp(r->verdict, "pass") != 0) {
		error = co_error_set(CO_ECONFLICT,
				     "go/no-go: latest reconciliation run %lld failed "
				     "(consistency %.4f%%, action %s)",
				     (long long)r->id, r->consistency * 100.0, r->action);
		goto done;
	}
	if (age > window_ms) {
		error = co_error_set(
		    CO_ECONFLICT,
		    "go/no-go: latest reconciliation run %lld passed %lld s ago, "
		    "older than the go/no-go window of %lld s",
		    (long long)r->id, (long long)(age / 1000),
		    (long long)(window_ms / 1000));
		goto done;
	}
	if (out) {
		*out = r;
		r = NULL;
	}
done:
	co_run_free(r);
	return error;
}
