/*
 * state_sql.c - the SQLite helpers every module of the state shares
 * (outbox.c, audit.c, runs.c, tokens.c, webhook*.c; state_internal.h): the
 * connection's lock, cached prepared statements, transactions (BEGIN
 * IMMEDIATE, durable or not), errors mapped to CO_E* codes naming the
 * database, and reading rows into lists.
 */
#include "error.h"
#include "state_internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define CO_STATE_BUSY_TIMEOUT_STR STR(CO_STATE_BUSY_TIMEOUT_MS)

/* ---- helpers shared with outbox.c, audit.c, runs.c ---- */

void co_state__lock(co_state *st)
{
	pthread_mutex_lock(&st->lock);
}

void co_state__unlock(co_state *st)
{
	pthread_mutex_unlock(&st->lock);
}

static int code_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return CO_EUNAVAIL;
	case SQLITE_NOMEM:
		return CO_ENOMEM;
	case SQLITE_CONSTRAINT:
		return CO_EINVAL;
	default:
		return CO_EIO;
	}
}

/* The error of `db` as a message: SQLite's text, plus errno's when it has one. */
int co_state__db_error(struct sqlite3 *db, const char *path, int rc, const char *what)
{
	int sys = db ? sqlite3_system_errno(db) : 0;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

	if (sys != 0 && ((rc & 0xff) == SQLITE_CANTOPEN || (rc & 0xff) == SQLITE_IOERR ||
			 (rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_FULL))
		return co_error_set(code_of(rc), "state %s: %s: %s (%s)", path, what, msg,
				    strerror(sys));
	return co_error_set(code_of(rc), "state %s: %s: %s", path, what, msg);
}

int co_state__error(co_state *st, int rc, const char *what)
{
	return co_state__db_error(st->db, st->path, rc, what);
}

int co_state__prepare(co_state *st, struct sqlite3_stmt **out, const char *sql)
{
	struct co_state__cached *c = NULL;
	size_t i;
	int rc;

	for (i = 0; i < st->n_cache; i++) {
		if (st->cache[i].sql != sql)
			continue;
		if (st->cache[i].busy)
			break; /* in use further up the stack: a fresh one */
		st->cache[i].busy = 1;
		*out = st->cache[i].stmt;
		return 0;
	}
	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
	if (rc != SQLITE_OK) {
		*out = NULL;
		return co_state__error(st, rc, "prepare");
	}
	if (i == st->n_cache && st->n_cache < CO_STATE__CACHE_MAX) {
		c = &st->cache[st->n_cache++];
		c->sql = sql;
		c->stmt = *out;
		c->busy = 1;
	}
	return 0;
}

void co_state__finish(co_state *st, struct sqlite3_stmt *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < st->n_cache; i++) {
		if (st->cache[i].stmt == s) {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			st->cache[i].busy = 0;
			return;
		}
	}
	sqlite3_finalize(s);
}

/* Run a statement without parameters or rows through the cache. */
static int run_cached(co_state *st, const char *sql)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = co_state__prepare(st, &s, sql)) < 0)
		return SQLITE_ERROR;
	rc = sqlite3_step(s);
	co_state__finish(st, s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

int co_state__exec(co_state *st, const char *sql)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : co_state__error(st, rc, "exec");
}

int co_state__begin(co_state *st, int durable)
{
	int rc, error;

	/* synchronous is a property of the connection, not of a transaction,
	 * and may only change outside one: set it just before BEGIN. */
	if (durable != st->sync_full) {
		error = co_state__exec(st, durable ? "PRAGMA synchronous = FULL"
						   : "PRAGMA synchronous = NORMAL");
		if (error < 0)
			return error;
		st->sync_full = durable;
	}
	rc = run_cached(st, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		return co_state__error(
		    st, rc,
		    "take the write lock (waited up to " CO_STATE_BUSY_TIMEOUT_STR
		    " ms)");
	return 0;
}

int co_state__commit(co_state *st)
{
	int rc = run_cached(st, "COMMIT");

	if (rc != SQLITE_OK) {
		int error = co_state__error(st, rc, "commit");

		co_state__rollback(st);
		return error;
	}
	return 0;
}

void co_state__rollback(co_state *st)
{
	if (!sqlite3_get_autocommit(st->db))
		run_cached(st, "ROLLBACK");
}

int co_state__step_done(co_state *st, struct sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	int error = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		error = co_state__error(st, rc, what);
	sqlite3_reset(s);
	return error;
}

int co_state__bind_text(co_state *st, struct sqlite3_stmt *s, int i, const char *v)
{
	int rc = v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT)
		   : sqlite3_bind_null(s, i);

	return rc == SQLITE_OK ? 0 : co_state__error(st, rc, "bind");
}

int co_state__column_text(char **out, struct sqlite3_stmt *s, int col)
{
	const unsigned char *t;
	char *copy;
	int len;

	if (sqlite3_column_type(s, col) == SQLITE_NULL) {
		*out = NULL;
		return 0;
	}
	t = sqlite3_column_text(s, col);
	len = sqlite3_column_bytes(s, col);
	if (t == NULL || (copy = malloc((size_t)len + 1)) == NULL)
		return co_error_set(CO_ENOMEM, "state: out of memory reading a row");
	memcpy(copy, t, (size_t)len);
	copy[len] = '\0';
	*out = copy;
	return 0;
}

int64_t co_state__changes(co_state *st)
{
	return sqlite3_changes64(st->db);
}

int co_state__step_commit(co_state *st, struct sqlite3_stmt *s, int durable,
			  const char *what)
{
	int error;

	if ((error = co_state__begin(st, durable)) < 0)
		return error;
	if ((error = co_state__step_done(st, s, what)) < 0) {
		co_state__rollback(st);
		return error;
	}
	return co_state__commit(st);
}

int co_state__reserve(void **items, size_t *cap, size_t n, size_t more, size_t elem,
		      const char *who)
{
	size_t want = n + more, c = *cap ? *cap : 16;
	void *p;

	if (want <= *cap)
		return 0;
	while (c < want)
		c *= 2;
	if ((p = realloc(*items, c * elem)) == NULL)
		return co_error_set(CO_ENOMEM, "%s: out of memory", who);
	*items = p;
	*cap = c;
	return 0;
}

int co_state__read_rows(co_state__rows *rows, co_state *st, struct sqlite3_stmt *s,
			const co_state__row_type *type, const char *what)
{
	void *row = NULL, *p;
	int rc, error;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((error = type->read(&row, s)) < 0)
			return error;
		p = rows->items;
		if ((error = co_state__reserve(&p, &rows->cap, rows->n, 1,
					       sizeof(*rows->items), type->who)) < 0) {
			type->free(row);
			return error;
		}
		rows->items = p;
		rows->items[rows->n++] = row;
	}
	if (rc != SQLITE_DONE)
		return co_state__error(st, rc, what);
	return 0;
}

int co_state__select_rows(co_state__rows *rows, co_state *st, const char *sql,
			  int64_t param, const co_state__row_type *type, const char *what)
{
	sqlite3_stmt *s = NULL;
	int error;

	co_state__lock(st);
	if ((error = co_state__prepare(st, &s, sql)) < 0)
		goto done;
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, param);
	error = co_state__read_rows(rows, st, s, type, what);
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

void co_state__rows_clear(co_state__rows *rows, const co_state__row_type *type)
{
	size_t i;

	if (rows == NULL)
		return;
	for (i = 0; i < rows->n; i++)
		type->free(rows->items[i]);
	free(rows->items);
	memset(rows, 0, sizeof(*rows));
}

int co_state__rows_take(void **items, size_t *n, size_t *cap, co_state__rows *rows,
			const char *who)
{
	int error;

	if ((error = co_state__reserve(items, cap, *n, rows->n, sizeof(void *), who)) < 0)
		return error;
	/* The caller's array holds T *, the same size and representation as
	 * void * on every platform we build for.  An empty list may be NULL,
	 * which memcpy must not see. */
	if (rows->n > 0)
		memcpy((char *)*items + *n * sizeof(void *), rows->items,
		       rows->n * sizeof(void *));
	*n += rows->n;
	rows->n = 0;
	return 0;
}

int co_state__select_append(void **items, size_t *n, size_t *cap, co_state *st,
			    const char *sql, int64_t param,
			    const co_state__row_type *type, const char *what)
{
	co_state__rows rows = {0};
	int error;

	if ((error = co_state__select_rows(&rows, st, sql, param, type, what)) == 0)
		error = co_state__rows_take(items, n, cap, &rows, type->who);
	co_state__rows_clear(&rows, type);
	return error;
}
