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
 * The change trail is also read back, filtered and paged, for `cutover
 * audit` and GET /v1/admin/audit (co_audit_changes_query): paging is by row
 * number, so a walk returns every row once however many are added meanwhile.
 *
 * This module records; it does not decide what to record (the router and
 * the flags do) and it does not format reports beyond one row's JSON.
 */
#include "audit.h"

#include "error.h"
#include "flags/flags.h"
#include "list.h"
#include "state_internal.h"
#include "webhook.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	free(c->kind);
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

	co_webhook__event ev;
	int64_t now = co_state_now_ms();

	if (who == NULL || who[0] == '\0' || action == NULL || action[0] == '\0')
		return co_error_set(CO_EINVAL, "audit: a change needs who and action");
	/* The webhook event of this change (if any endpoint wants it) is
	 * committed with the row: both or neither (webhook.h). */
	co_webhook__event_make(&ev, co_webhook_event_of_action(action), who, action,
			       detail, why, now);
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s,
		 "INSERT INTO audit_changes (ts, who, action, detail, why)"
		 " VALUES (?, ?, ?, ?, ?)")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, now);
	if ((error = co_state__bind_text(st, s, 2, who)) < 0 ||
	    (error = co_state__bind_text(st, s, 3, action)) < 0 ||
	    (error = co_state__bind_text(st, s, 4, detail)) < 0 ||
	    (error = co_state__bind_text(st, s, 5, why)) < 0)
		goto done;
	if ((error = co_state__begin(st, 1)) < 0 ||
	    (error = co_state__step_done(st, s, "audit change")) < 0 ||
	    (error = co_webhook__event_queue(st, &ev)) < 0)
		goto done;
	error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__finish(st, s);
	co_state__unlock(st);
	if (error == 0 && ev.body)
		co_webhook__kick();
	co_webhook__event_clear(&ev);
	return error;
}

void co_audit_gate_refused(co_state *st, const char *who, const char *what)
{
	char refusal[1024];
	int code = co_error_last_code();

	snprintf(refusal, sizeof(refusal), "%s", co_error_last());
	if (st && co_audit_change_add(st, who, "gate refused", what, refusal) < 0)
		fprintf(stderr, "cutover: warning: the refusal was not audited: %s\n",
			co_error_last());
	co_error_set(code, "%s", refusal);
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
	    (error = co_state__column_text(&c->why, s, 5)) < 0 ||
	    (sqlite3_column_count(s) > 6 &&
	     (error = co_state__column_text(&c->kind, s, 6)) < 0)) {
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
int co_audit_shadow_reads_by_op(int64_t reads[], size_t n_ops, co_state *st,
				int64_t since_ms)
{
	sqlite3_stmt *s = NULL;
	int rc, error;
	co_op op;

	memset(reads, 0, n_ops * sizeof(*reads));
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s,
		 "SELECT op, count(*) FROM audit_ops WHERE ts >= ?1 AND mode = 'shadow' "
		 "AND op IN ('task_get', 'task_list', 'swarm_get', 'swarm_list') "
		 "GROUP BY op")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, since_ms);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (co_op_parse(&op, (const char *)sqlite3_column_text(s, 0)) == 0 &&
		    (size_t)op < n_ops)
			reads[op] = sqlite3_column_int64(s, 1);
	co_error_clear();
	if (rc != SQLITE_DONE)
		error = co_state__error(st, rc, "read the audit logs");
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

/* ---- reading the change trail back ---- */

/*
 * A row's kind from its action, in SQL so that filters and paging stay in
 * the query.  Keep in step with CO_AUDIT_KINDS and kinds[] below.
 */
#define KIND_SQL                                                                         \
	"CASE WHEN action IN ('rollback', 'auto-rollback') THEN 'trip'"                  \
	" WHEN action = 'resume' THEN 'resume'"                                          \
	" WHEN action LIKE 'gate%' THEN 'gate'"                                          \
	" WHEN action IN ('stage', 'flags set') THEN 'flags'"                            \
	" WHEN action LIKE 'rollout%' THEN 'rollout'"                                    \
	" WHEN action IN ('reconcile', 'repair') THEN 'reconcile'"                       \
	" WHEN action LIKE 'circuit%' THEN 'store'"                                      \
	" WHEN action LIKE 'swarm%' THEN 'swarm'"                                        \
	" WHEN action LIKE 'webhook%' THEN 'webhook'"                                    \
	" ELSE 'other' END"

/* ?1 since, ?2 until, ?3 kind, ?4 op, ?5 cursor, ?6 limit; NULL: no bound. */
#define QUERY_SQL(cmp, order)                                                            \
	"SELECT seq, ts, who, action, detail, why, kind FROM (SELECT seq, ts, who,"      \
	" action, detail, why, " KIND_SQL " AS kind FROM audit_changes"                  \
	" WHERE seq " cmp " ?5 AND (?1 IS NULL OR ts >= ?1)"                             \
	" AND (?2 IS NULL OR ts <= ?2))"                                                 \
	" WHERE (?3 IS NULL OR kind = ?3 OR (?3 = 'gate' AND kind = 'flags'"             \
	"  AND instr(detail, 'forced') > 0))"                                            \
	" AND (?4 IS NULL OR kind IN ('trip', 'resume')"                                 \
	"  OR instr(' ' || detail, ' ' || ?4 || ' ') > 0)"                               \
	" ORDER BY seq " order " LIMIT ?6"

static const char query_asc[] = QUERY_SQL(">", "ASC");
static const char query_desc[] = QUERY_SQL("<", "DESC");

static const char *const kinds[] = {"trip",	 "resume", "gate",  "flags",   "rollout",
				    "reconcile", "store",  "swarm", "webhook", "other"};

int co_audit_kind_valid(const char *kind)
{
	size_t i;

	for (i = 0; kind && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i]) == 0)
			return 1;
	return 0;
}

static void bind_bound(sqlite3_stmt *s, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

int co_audit_changes_query(co_audit_change_list *out, int64_t *next_cursor, co_state *st,
			   const co_audit_filter *f)
{
	co_state__rows rows = {0};
	sqlite3_stmt *s = NULL;
	int64_t cursor = f->cursor;
	int error;

	*next_cursor = 0;
	if (f->kind && !co_audit_kind_valid(f->kind))
		return co_error_set(CO_EINVAL, "audit: unknown kind \"%s\" (%s)", f->kind,
				    CO_AUDIT_KINDS);
	if (f->limit < 1 || f->limit > INT32_MAX)
		return co_error_set(CO_EINVAL, "audit: page size %zu out of range",
				    f->limit);
	if (cursor < 0)
		return co_error_set(CO_EINVAL, "audit: cursor %lld out of range",
				    (long long)cursor);
	if (cursor == 0)
		cursor = f->newest_first ? INT64_MAX : 0;
	co_state__lock(st);
	if ((error =
		 co_state__prepare(st, &s, f->newest_first ? query_desc : query_asc)) < 0)
		goto done;
	bind_bound(s, 1, f->since_ms);
	bind_bound(s, 2, f->until_ms);
	if ((error = co_state__bind_text(st, s, 3, f->kind)) < 0 ||
	    (error = co_state__bind_text(st, s, 4, f->op)) < 0)
		goto done;
	sqlite3_bind_int64(s, 5, cursor);
	/* One more than a page: whether there is a next page, without a count. */
	sqlite3_bind_int64(s, 6, (int64_t)f->limit + 1);
	error = co_state__read_rows(&rows, st, s, &change_rows, "read audit changes");
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	if (error == 0 && rows.n > f->limit) {
		rows.n--;
		change_rows.free(rows.items[rows.n]);
		*next_cursor = ((co_audit_change *)rows.items[rows.n - 1])->seq;
	}
	if (error == 0) {
		void *p = out->items;

		error = co_state__rows_take(&p, &out->n, &out->cap, &rows, "audit");
		out->items = p;
	}
	co_state__rows_clear(&rows, &change_rows);
	return error;
}

/* "10m", "2h", "1d", "1h30m", "45s", "500ms" into ms; -1 if not one. */
static int64_t relative_ms(const char *s)
{
	int64_t total = 0;
	int any = 0;

	while (*s) {
		int64_t n = 0, unit;

		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s)) {
			if (n > INT64_MAX / 100)
				return -1;
			n = n * 10 + (*s++ - '0');
		}
		if (strncmp(s, "ms", 2) == 0) {
			unit = 1;
			s += 2;
		} else if (*s == 's' || *s == 'm' || *s == 'h' || *s == 'd' ||
			   *s == 'w') {
			unit = *s == 's'   ? 1000
			       : *s == 'm' ? 60000
			       : *s == 'h' ? 3600000
			       : *s == 'd' ? 86400000
					   : 7 * 86400000LL;
			s++;
		} else {
			return -1;
		}
		if (n > (INT64_MAX - total) / unit)
			return -1;
		total += n * unit;
		any = 1;
	}
	return any ? total : -1;
}

/* RFC 3339: date 'T' (or ' ') time [.frac] ('Z' | +hh:mm | -hh:mm); -1 if not. */
static int rfc3339_ms(int64_t *out, const char *s)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, scale = 1000;
	char t;
	time_t secs;

	if (sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%2d%n", &y, &mo, &d, &t, &h, &mi, &sec, &n) !=
		7 ||
	    n != 19 || (t != 'T' && t != 't' && t != ' '))
		return -1;
	s += n;
	if (*s == '.') {
		if (!isdigit((unsigned char)*++s))
			return -1;
		while (isdigit((unsigned char)*s)) {
			if (scale > 1) {
				scale /= 10;
				frac += (*s - '0') * scale;
			}
			s++;
		}
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '+' ? 1 : -1;
		if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 ||
		    om > 59)
			return -1;
		s += 6;
	} else {
		return -1;
	}
	if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60 || y < 1970)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((secs = timegm(&tm)) == (time_t)-1 || tm.tm_mday != d)
		return -1; /* 2026-02-30 normalises to March: refused */
	*out = ((int64_t)secs - sign * (oh * 3600 + om * 60)) * 1000 + frac;
	return 0;
}

int co_audit_parse_time(int64_t *out_ms, const char *s, int64_t now_ms)
{
	int64_t rel;

	if (s == NULL || *s == '\0')
		return co_error_set(CO_EINVAL, "empty time");
	if (rfc3339_ms(out_ms, s) == 0)
		return 0;
	if ((rel = relative_ms(s)) >= 0 && rel <= now_ms) {
		*out_ms = now_ms - rel;
		return 0;
	}
	return co_error_set(CO_EINVAL,
			    "bad time \"%s\": RFC 3339 (2026-12-05T18:00:00Z) or a "
			    "duration ago (30s, 10m, 2h, 1d)",
			    s);
}

void co_audit_format_time(char *buf, size_t len, int64_t ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	char day[32];

	gmtime_r(&secs, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", day, (int)(ms % 1000));
}

static void add_text(cJSON *o, const char *name, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, name, v);
	else
		cJSON_AddNullToObject(o, name);
}

static cJSON *change_json(const co_audit_change *c)
{
	cJSON *o = cJSON_CreateObject();
	char when[40];

	if (o == NULL)
		return NULL;
	co_audit_format_time(when, sizeof(when), c->ts);
	cJSON_AddNumberToObject(o, "seq", (double)c->seq);
	cJSON_AddStringToObject(o, "time", when);
	cJSON_AddNumberToObject(o, "ts_ms", (double)c->ts);
	add_text(o, "who", c->who);
	add_text(o, "action", c->action);
	add_text(o, "kind", c->kind);
	add_text(o, "detail", c->detail);
	if (cJSON_AddItemToObject(o, "why",
				  c->why ? cJSON_CreateString(c->why)
					 : cJSON_CreateNull()) == 0 ||
	    cJSON_GetObjectItemCaseSensitive(o, "detail") == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int co_audit_page_json(char **out, const co_audit_change_list *l, int64_t next_cursor,
		       int newest_first)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "changes");
	size_t i;

	*out = NULL;
	for (i = 0; a && i < l->n; i++)
		if (!cJSON_AddItemToArray(a, change_json(l->items[i])))
			a = NULL;
	if (a != NULL &&
	    (next_cursor ? cJSON_AddNumberToObject(o, "next_cursor", (double)next_cursor)
			 : cJSON_AddNullToObject(o, "next_cursor")) != NULL &&
	    cJSON_AddStringToObject(
		o, "order", newest_first ? "newest_first" : "oldest_first") != NULL)
		*out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return *out ? 0 : co_error_set(CO_ENOMEM, "audit: out of memory");
}
