/*
 * audit.c - flag changes, the routed-operation witness log, shadow mismatches.
 *
 * Three append-only tables with a "newest first" reader each.  The flag
 * change trail is small and precious, so it is written durably and never
 * trimmed.  The witness log and the mismatch log grow with traffic, so they
 * are bounded: rows are numbered by AUTOINCREMENT (one sequence shared by
 * every process), and the insert that lands on a multiple of `batch` deletes
 * everything older than the newest `keep` rows.  That is one range delete on
 * the primary key every `batch` inserts, whichever process makes it, with no
 * counting query on the hot path.  They are written with synchronous=NORMAL:
 * a witness log is worth a WAL append, not an fsync per routed operation.
 *
 * This module records; it does not decide what to record (the router and
 * the flags do) and it does not format reports.
 */
#include "audit.h"

#include "error.h"
#include "list.h"
#include "state_internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)CO_AUDIT_OPS == (int)CO_AUDIT__OPS &&
		   (int)CO_AUDIT_MISMATCHES == (int)CO_AUDIT__MISMATCHES,
	       "audit log numbering shared with state_internal.h");

static const char *const trim_sql[CO_AUDIT__NTABLES] = {
    "DELETE FROM audit_ops WHERE seq <= ?",
    "DELETE FROM audit_mismatches WHERE seq <= ?",
};

void co_audit_change_free(co_audit_change *c)
{
	if (c == NULL)
		return;
	free(c->who);
	free(c->action);
	free(c->detail);
	free(c->why);
	free(c);
}

void co_audit_op_free(co_audit_op *o)
{
	if (o == NULL)
		return;
	free(o->op);
	free(o->id);
	free(o->mode);
	free(o->primary);
	free(o->outcome);
	free(o->error);
	free(o);
}

void co_audit_mismatch_free(co_audit_mismatch *m)
{
	if (m == NULL)
		return;
	free(m->op);
	free(m->id);
	free(m->git_value);
	free(m->etcd_value);
	free(m);
}

void co_audit_change_list_clear(co_audit_change_list *l)
{
	CO_LIST_CLEAR(l, co_audit_change_free);
}

void co_audit_op_list_clear(co_audit_op_list *l)
{
	CO_LIST_CLEAR(l, co_audit_op_free);
}

void co_audit_mismatch_list_clear(co_audit_mismatch_list *l)
{
	CO_LIST_CLEAR(l, co_audit_mismatch_free);
}

/* After rows up to `last` (first inserted: `first`): trim if a multiple of
 * the batch size was crossed.  Caller holds the lock, inside the txn. */
static int maybe_trim(co_state *st, int log, int64_t first, int64_t last)
{
	int64_t keep = st->audit_keep[log], batch = st->audit_batch[log];
	sqlite3_stmt *s = NULL;
	int error;

	if (last / batch == (first - 1) / batch || last - keep <= 0)
		return 0;
	if ((error = co_state__prepare(st, &s, trim_sql[log])) < 0)
		return error;
	sqlite3_bind_int64(s, 1, last - keep);
	error = co_state__step_done(st, s, "audit trim");
	co_state__finish(st, s);
	return error;
}

int co_audit_set_limit(co_state *st, co_audit_log log, int64_t keep, int64_t batch)
{
	if ((int)log < 0 || (int)log >= CO_AUDIT__NTABLES)
		return co_error_set(CO_EINVAL, "audit: unknown log %d", (int)log);
	if (keep < 1 || batch < 1)
		return co_error_set(CO_EINVAL,
				    "audit: limits must be >= 1 (keep %lld, batch %lld)",
				    (long long)keep, (long long)batch);
	co_state__lock(st);
	st->audit_keep[log] = keep;
	st->audit_batch[log] = batch;
	co_state__unlock(st);
	return 0;
}

int co_audit_change_add(co_state *st, const char *who, const char *action,
			const char *detail, const char *why)
{
	sqlite3_stmt *s = NULL;
	int error;

	if (who == NULL || who[0] == '\0' || action == NULL || action[0] == '\0')
		return co_error_set(CO_EINVAL, "audit: a change needs who and action");
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s,
		 "INSERT INTO audit_changes (ts, who, action, detail, why)"
		 " VALUES (?, ?, ?, ?, ?)")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, co_state_now_ms());
	if ((error = co_state__bind_text(st, s, 2, who)) < 0 ||
	    (error = co_state__bind_text(st, s, 3, action)) < 0 ||
	    (error = co_state__bind_text(st, s, 4, detail)) < 0 ||
	    (error = co_state__bind_text(st, s, 5, why)) < 0)
		goto done;
	error = co_state__step_commit(st, s, 1, "audit change");
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

int co_audit_ops_add(co_state *st, const co_audit_op *ops, size_t n)
{
	sqlite3_stmt *s = NULL;
	int64_t now = co_state_now_ms(), first = 0, last = 0;
	size_t i;
	int error;

	for (i = 0; i < n; i++)
		if (ops[i].op == NULL || ops[i].outcome == NULL)
			return co_error_set(CO_EINVAL,
					    "audit: op %zu needs op and outcome", i);
	if (n == 0)
		return 0;
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s,
		 "INSERT INTO audit_ops (ts, op, id, mode, primary_store,"
		 " outcome, latency_us, error)"
		 " VALUES (?, ?, ?, ?, ?, ?, ?, ?)")) < 0)
		goto done;
	if ((error = co_state__begin(st, 0)) < 0)
		goto done;
	for (i = 0; i < n; i++) {
		const co_audit_op *o = &ops[i];

		sqlite3_bind_int64(s, 1, o->ts ? o->ts : now);
		if ((error = co_state__bind_text(st, s, 2, o->op)) < 0 ||
		    (error = co_state__bind_text(st, s, 3, o->id)) < 0 ||
		    (error = co_state__bind_text(st, s, 4, o->mode)) < 0 ||
		    (error = co_state__bind_text(st, s, 5, o->primary)) < 0 ||
		    (error = co_state__bind_text(st, s, 6, o->outcome)) < 0 ||
		    (error = co_state__bind_text(st, s, 8, o->error)) < 0)
			goto done;
		sqlite3_bind_int64(s, 7, o->latency_us);
		if ((error = co_state__step_done(st, s, "audit op")) < 0)
			goto done;
		last = sqlite3_last_insert_rowid(st->db);
		if (i == 0)
			first = last;
	}
	if ((error = maybe_trim(st, CO_AUDIT__OPS, first, last)) < 0)
		goto done;
	error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

int co_audit_op_add(co_state *st, const co_audit_op *op)
{
	return co_audit_ops_add(st, op, 1);
}

int co_audit_mismatch_add(co_state *st, const char *op, const char *id,
			  const char *git_value, const char *etcd_value)
{
	sqlite3_stmt *s = NULL;
	int64_t seq;
	int error;

	if (op == NULL || op[0] == '\0')
		return co_error_set(CO_EINVAL, "audit: a mismatch needs its operation");
	co_state__lock(st);
	if ((error =
		 co_state__prepare(st, &s,
				   "INSERT INTO audit_mismatches (ts, op, id, git_value,"
				   " etcd_value) VALUES (?, ?, ?, ?, ?)")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, co_state_now_ms());
	if ((error = co_state__bind_text(st, s, 2, op)) < 0 ||
	    (error = co_state__bind_text(st, s, 3, id)) < 0 ||
	    (error = co_state__bind_text(st, s, 4, git_value)) < 0 ||
	    (error = co_state__bind_text(st, s, 5, etcd_value)) < 0)
		goto done;
	if ((error = co_state__begin(st, 0)) < 0)
		goto done;
	if ((error = co_state__step_done(st, s, "audit mismatch")) < 0)
		goto done;
	seq = sqlite3_last_insert_rowid(st->db);
	if ((error = maybe_trim(st, CO_AUDIT__MISMATCHES, seq, seq)) < 0)
		goto done;
	error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

/* The LIMIT of a "latest" query; SQLite takes a signed 64-bit count. */
static int64_t limit_of(size_t n)
{
	return n > INT64_MAX ? INT64_MAX : (int64_t)n;
}

static int read_change(void **out, sqlite3_stmt *s)
{
	co_audit_change *c;
	int error;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return co_error_set(CO_ENOMEM, "audit: out of memory");
	c->seq = sqlite3_column_int64(s, 0);
	c->ts = sqlite3_column_int64(s, 1);
	if ((error = co_state__column_text(&c->who, s, 2)) < 0 ||
	    (error = co_state__column_text(&c->action, s, 3)) < 0 ||
	    (error = co_state__column_text(&c->detail, s, 4)) < 0 ||
	    (error = co_state__column_text(&c->why, s, 5)) < 0) {
		co_audit_change_free(c);
		return error;
	}
	*out = c;
	return 0;
}

static int read_op(void **out, sqlite3_stmt *s)
{
	co_audit_op *o;
	int error;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return co_error_set(CO_ENOMEM, "audit: out of memory");
	o->seq = sqlite3_column_int64(s, 0);
	o->ts = sqlite3_column_int64(s, 1);
	o->latency_us = sqlite3_column_int64(s, 7);
	if ((error = co_state__column_text(&o->op, s, 2)) < 0 ||
	    (error = co_state__column_text(&o->id, s, 3)) < 0 ||
	    (error = co_state__column_text(&o->mode, s, 4)) < 0 ||
	    (error = co_state__column_text(&o->primary, s, 5)) < 0 ||
	    (error = co_state__column_text(&o->outcome, s, 6)) < 0 ||
	    (error = co_state__column_text(&o->error, s, 8)) < 0) {
		co_audit_op_free(o);
		return error;
	}
	*out = o;
	return 0;
}

static int read_mismatch(void **out, sqlite3_stmt *s)
{
	co_audit_mismatch *m;
	int error;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return co_error_set(CO_ENOMEM, "audit: out of memory");
	m->seq = sqlite3_column_int64(s, 0);
	m->ts = sqlite3_column_int64(s, 1);
	if ((error = co_state__column_text(&m->op, s, 2)) < 0 ||
	    (error = co_state__column_text(&m->id, s, 3)) < 0 ||
	    (error = co_state__column_text(&m->git_value, s, 4)) < 0 ||
	    (error = co_state__column_text(&m->etcd_value, s, 5)) < 0) {
		co_audit_mismatch_free(m);
		return error;
	}
	*out = m;
	return 0;
}

static void free_change(void *c)
{
	co_audit_change_free(c);
}

static void free_op(void *o)
{
	co_audit_op_free(o);
}

static void free_mismatch(void *m)
{
	co_audit_mismatch_free(m);
}

static const co_state__row_type change_rows = {"audit", read_change, free_change};
static const co_state__row_type op_rows = {"audit", read_op, free_op};
static const co_state__row_type mismatch_rows = {"audit", read_mismatch, free_mismatch};

/*
 * The three readers below differ in their query and element type only:
 * read the rows, then append them to *out all or nothing.
 */
int co_audit_changes_latest(co_audit_change_list *out, co_state *st, size_t n)
{
	void *p = out->items;
	int error = co_state__select_append(
	    &p, &out->n, &out->cap, st,
	    "SELECT seq, ts, who, action, detail, why FROM audit_changes"
	    " ORDER BY seq DESC LIMIT ?",
	    limit_of(n), &change_rows, "read audit changes");

	out->items = p;
	return error;
}

int co_audit_ops_latest(co_audit_op_list *out, co_state *st, size_t n)
{
	void *p = out->items;
	int error = co_state__select_append(
	    &p, &out->n, &out->cap, st,
	    "SELECT seq, ts, op, id, mode, primary_store, outcome,"
	    " latency_us, error FROM audit_ops"
	    " ORDER BY seq DESC LIMIT ?",
	    limit_of(n), &op_rows, "read audit ops");

	out->items = p;
	return error;
}

int co_audit_mismatches_latest(co_audit_mismatch_list *out, co_state *st, size_t n)
{
	void *p = out->items;
	int error =
	    co_state__select_append(&p, &out->n, &out->cap, st,
				    "SELECT seq, ts, op, id, git_value, etcd_value"
				    " FROM audit_mismatches ORDER BY seq DESC LIMIT ?",
				    limit_of(n), &mismatch_rows, "read audit mismatches");

	out->items = p;
	return error;
}

int co_audit_shadow_counts(int64_t *reads, int64_t *mismatches, co_state *st,
			   int64_t since_ms)
{
	sqlite3_stmt *s = NULL;
	int rc, error;

	*reads = *mismatches = 0;
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s,
		 "SELECT (SELECT count(*) FROM audit_ops WHERE ts >= ?1 AND mode = "
		 "'shadow' AND op IN ('task_get', 'task_list', 'swarm_get', "
		 "'swarm_list')), (SELECT count(*) FROM audit_mismatches WHERE ts >= "
		 "?1)")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, since_ms);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		error = co_state__error(st, rc, "read the audit logs");
		goto done;
	}
	*reads = sqlite3_column_int64(s, 0);
	*mismatches = sqlite3_column_int64(s, 1);
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}
