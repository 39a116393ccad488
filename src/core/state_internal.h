/*
 * state_internal.h - what state.c shares with outbox.c, audit.c, runs.c,
 * tokens.c, webhook.c and webhook_send.c.
 *
 * Private to the state module: include it only from those seven files (and
 * from their tests).  It names SQLite's connection and statement types as
 * incomplete structs so that it need not include sqlite3.h itself; no public
 * header of cutover mentions them.
 *
 * Locking discipline: every public function of the module takes st->lock
 * with co_state__lock() for its whole duration and does its SQL through the
 * helpers below while holding it.  Write transactions go through
 * co_state__begin(), which takes SQLite's write lock up front (BEGIN
 * IMMEDIATE) so that a transaction never has to upgrade a read lock (an
 * upgrade can fail with SQLITE_BUSY at once, without waiting).
 */
#ifndef CO_STATE_INTERNAL_H
#define CO_STATE_INTERNAL_H

#include "state.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct sqlite3_stmt;

/* The bounded audit tables (audit.c); indexes into co_state.audit_keep. */
enum { CO_AUDIT__OPS = 0, CO_AUDIT__MISMATCHES = 1, CO_AUDIT__NTABLES = 2 };

#define CO_STATE__CACHE_MAX 48

struct co_state {
	pthread_mutex_t lock;
	struct sqlite3 *db;
	char *dir;
	char *path;
	int sync_full; /* the connection's PRAGMA synchronous is FULL (1) or NORMAL (0) */
	int64_t busy_since;	/* monotonic ms of the first busy retry of this wait */
	unsigned int busy_seed; /* rand_r() state for the busy jitter */

	/* audit.c: keep the newest audit_keep[t] rows, trim every audit_batch[t] */
	int64_t audit_keep[CO_AUDIT__NTABLES];
	int64_t audit_batch[CO_AUDIT__NTABLES];

	/* co_state__prepare's statement cache, keyed by the SQL text's address */
	struct co_state__cached {
		const char *sql;
		struct sqlite3_stmt *stmt;
		int busy; /* handed out and not yet given back by co_state__finish */
	} cache[CO_STATE__CACHE_MAX];
	size_t n_cache;
};

/* One forward migration: SQL that takes the schema from version-1 to version. */
typedef struct co_state_migration {
	int version;
	const char *sql;
} co_state_migration;

/*
 * Tests only: while nonzero, co_state_sync() fails with CO_EIO without
 * syncing, as it would if the fsync failed.  (No other way to make a
 * healthy disk refuse an fsync.)
 */
extern _Atomic int co_state__sync_fault;

void co_state__lock(co_state *st);
void co_state__unlock(co_state *st);

/*
 * Turn SQLite result `rc` into a cutover error, copying the connection's
 * message at once: "state <path>: <what>: <sqlite message>".  Busy/locked
 * give CO_EUNAVAIL, out-of-memory CO_ENOMEM, everything else CO_EIO.
 * Returns the code (co_error_set).  Caller holds st->lock.
 */
int co_state__error(co_state *st, int rc, const char *what);

/*
 * Prepare `sql` into *out; error via co_state__error.  Caller holds the lock.
 * `sql` should be a string literal: statements are cached by the text's
 * address and kept prepared for the connection's life (parsing the SQL
 * cost as much as running it on the router's claim path).  Give *out back
 * with co_state__finish(), never sqlite3_finalize().  A statement already
 * handed out is not handed out twice: the second caller gets a fresh one.
 */
int co_state__prepare(co_state *st, struct sqlite3_stmt **out, const char *sql);

/* Give back a statement from co_state__prepare: a cached one is reset and its
 * bindings cleared, any other finalized.  NULL is ignored. */
void co_state__finish(co_state *st, struct sqlite3_stmt *s);

/* Run statements without results.  Caller holds the lock. */
int co_state__exec(co_state *st, const char *sql);

/*
 * BEGIN IMMEDIATE, after setting PRAGMA synchronous to FULL (durable = 1:
 * the commit is on disk when it returns) or NORMAL (durable = 0: survives a
 * process crash but maybe not a power loss; for the bounded audit logs).
 * Caller holds the lock; pair with co_state__commit or co_state__rollback.
 */
int co_state__begin(co_state *st, int durable);
int co_state__commit(co_state *st);
/* Roll back if a transaction is open; never fails (keeps the first error). */
void co_state__rollback(co_state *st);

/*
 * Step a statement that returns no row (INSERT/UPDATE/DELETE); SQLITE_DONE
 * gives 0, anything else an error naming `what`.  Resets the statement.
 */
int co_state__step_done(co_state *st, struct sqlite3_stmt *s, const char *what);

/* Bind text or NULL (s == NULL) at 1-based index i.  Caller checks rc. */
int co_state__bind_text(co_state *st, struct sqlite3_stmt *s, int i, const char *v);

/* malloc'd copy of a text column into *out (NULL for SQL NULL); CO_ENOMEM. */
int co_state__column_text(char **out, struct sqlite3_stmt *s, int col);

/* Rows changed by the last statement on st's connection. */
int64_t co_state__changes(co_state *st);

/*
 * begin(durable), step s (a statement returning no row, prepared and bound
 * by the caller) and commit: the body of every one-statement write.  On
 * failure the transaction is rolled back and the first error returned.
 * Caller holds the lock; s is reset but not finalized.
 */
int co_state__step_commit(co_state *st, struct sqlite3_stmt *s, int durable,
			  const char *what);

/*
 * Make room for `more` elements in the array *items of capacity *cap
 * holding n elements of `elem` bytes (callers pass their array through a
 * void * so that no pointer type is punned).  `who` names the module in the
 * out-of-memory message ("<who>: out of memory"); *items and *cap are left
 * as they were on failure.
 */
int co_state__reserve(void **items, size_t *cap, size_t n, size_t more, size_t elem,
		      const char *who);

/* How to make (and free) one list element from a result row. */
typedef struct co_state__row_type {
	const char *who; /* module, for out-of-memory messages */
	/* A new element from the current row of s into *out; an error leaves nothing. */
	int (*read)(void **out, struct sqlite3_stmt *s);
	void (*free)(void *row);
} co_state__row_type;

/* Elements read by co_state__read_rows, in row order. */
typedef struct co_state__rows {
	void **items;
	size_t n, cap;
} co_state__rows;

/*
 * Step s (prepared and bound by the caller) to its end, appending an element
 * per row to rows.  A step error names `what`.  On failure rows keeps what
 * was read: the caller empties it with co_state__rows_clear either way.
 * Caller holds the lock.
 */
int co_state__read_rows(co_state__rows *rows, co_state *st, struct sqlite3_stmt *s,
			const co_state__row_type *type, const char *what);

/*
 * Lock, prepare `sql`, bind `param` as its first parameter if it has one,
 * read its rows as co_state__read_rows does, finalize and unlock.
 */
int co_state__select_rows(co_state__rows *rows, co_state *st, const char *sql,
			  int64_t param, const co_state__row_type *type,
			  const char *what);

/* Free every element of rows with type->free and empty it; NULL is fine. */
void co_state__rows_clear(co_state__rows *rows, const co_state__row_type *type);

/*
 * Append rows' elements to the caller's list (*items holding *n pointers,
 * capacity *cap, passed through a void * as for co_state__reserve), all or
 * nothing; on success rows gives them up.  CO_ENOMEM naming `who`.
 */
int co_state__rows_take(void **items, size_t *n, size_t *cap, co_state__rows *rows,
			const char *who);

/* co_state__select_rows, then co_state__rows_take: what every list reader does. */
int co_state__select_append(void **items, size_t *n, size_t *cap, co_state *st,
			    const char *sql, int64_t param,
			    const co_state__row_type *type, const char *what);

/*
 * Migrate the database open on `db` from its user_version to the last
 * version in steps[0..n) (versions 1..n in order), each step in its own
 * BEGIN IMMEDIATE transaction that also sets the new user_version, so that
 * a failed step leaves the previous version intact.  A database newer than
 * steps[n-1].version is refused (CO_EIO).  `path` names the file in
 * messages.  Exposed for tests, which feed it a failing step.
 */
int co_state__migrate(struct sqlite3 *db, const char *path,
		      const co_state_migration *steps, size_t n);

/* co_state__migrate with cutover's own schema (state_schema.c). */
int co_state__migrate_schema(struct sqlite3 *db, const char *path);

/* PRAGMA user_version of db into *out.  CO_EIO naming path. */
int co_state__read_version(int *out, struct sqlite3 *db, const char *path);

/* Set an error for SQLite's rc on db (its message, the database path and
 * `what`), mapped to a CO_E* code, which is returned. */
int co_state__db_error(struct sqlite3 *db, const char *path, int rc, const char *what);

#endif
