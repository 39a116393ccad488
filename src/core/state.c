/*
 * state.c - open cutover's SQLite database and own its schema.
 *
 * One file, <state_dir>/cutover.db, serves every process of a deployment at
 * once: the router that pushes to the outbox, the reconciler that records
 * runs, the CLI that reads them.  SQLite's WAL mode gives readers that never
 * block the single writer; the busy timeout makes a writer wait for another
 * process's transaction instead of failing; BEGIN IMMEDIATE takes the write
 * lock before reading so that no transaction ever needs the lock upgrade that
 * SQLite refuses at once under contention.  synchronous=FULL is the default
 * of the connection because an acknowledged write must survive a crash; the
 * bounded audit logs opt down to NORMAL per transaction (co_state__begin).
 *
 * The schema is a list of forward migrations, one per PRAGMA user_version.
 * Adding version 3 means appending one entry to `migrations` and bumping
 * CO_STATE_SCHEMA_VERSION; an old database is then brought forward when it is
 * next opened, one version per transaction, and several processes opening an
 * old database at once agree because each step re-reads the version under
 * the write lock.  There are no backward migrations: a database newer than
 * the binary is refused rather than guessed at.
 *
 * The state is private: the outbox, the audit trails and the divergences
 * hold every record's content.  The directory is created 0700 and the
 * database (hence its -wal and -shm, which SQLite creates with the main
 * file's mode) 0600, whatever the umask; a directory that already existed
 * is the operator's and is only reported (co_state_dir_prepare's warning),
 * files of ours that are looser are tightened.  A path that cannot be a
 * state dir is the operator's input (CO_EINVAL, exit 1), not a store that
 * is down.
 *
 * This file also holds the small checkpoint table, which is too small to be a
 * module of its own.  The outbox, the audit logs, the runs, the swarm
 * tokens and the webhook outbox live in outbox.c, audit.c, runs.c, tokens.c
 * and webhook*.c on the helpers of state_internal.h.
 */
#include "state.h"

#include "audit.h"
#include "error.h"
#include "state_internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Version 1 is what the router needs (issue 3: the outbox and the audit
 * trails); version 2 added what reconciliation and migration need (issues 4
 * and 5: runs, divergences, checkpoints).  Never edit a released step:
 * append a new one.
 */
static const co_state_migration migrations[] = {
    {1, "CREATE TABLE outbox ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" target TEXT NOT NULL CHECK (target IN ('git', 'etcd')),"
	" kind TEXT NOT NULL CHECK (kind IN ('task', 'swarm')),"
	" id TEXT NOT NULL,"
	" payload TEXT,"
	" created_at INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt_at INTEGER NOT NULL,"
	" last_error TEXT);"
	"CREATE INDEX outbox_key ON outbox (target, kind, id, seq);"
	"CREATE TABLE audit_changes ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ts INTEGER NOT NULL,"
	" who TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" detail TEXT,"
	" why TEXT);"
	"CREATE TABLE audit_ops ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ts INTEGER NOT NULL,"
	" op TEXT NOT NULL,"
	" id TEXT,"
	" mode TEXT,"
	" primary_store TEXT,"
	" outcome TEXT NOT NULL,"
	" latency_us INTEGER NOT NULL,"
	" error TEXT);"
	"CREATE TABLE audit_mismatches ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ts INTEGER NOT NULL,"
	" op TEXT NOT NULL,"
	" id TEXT,"
	" git_value TEXT,"
	" etcd_value TEXT);"},
    {2, "CREATE TABLE runs ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" started_at INTEGER NOT NULL,"
	" duration_ms INTEGER NOT NULL DEFAULT 0,"
	" total INTEGER NOT NULL DEFAULT 0,"
	" equal INTEGER NOT NULL DEFAULT 0,"
	" missing_in_etcd INTEGER NOT NULL DEFAULT 0,"
	" missing_in_git INTEGER NOT NULL DEFAULT 0,"
	" mismatch INTEGER NOT NULL DEFAULT 0,"
	" consistency REAL NOT NULL DEFAULT 0,"
	" verdict TEXT CHECK (verdict IS NULL OR verdict IN ('pass', 'fail')),"
	" action TEXT,"
	" error TEXT);"
	"CREATE TABLE divergences ("
	" run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
	" id TEXT NOT NULL,"
	" kind TEXT NOT NULL CHECK (kind IN ('task', 'swarm')),"
	" class TEXT NOT NULL"
	"  CHECK (class IN ('missing_in_etcd', 'missing_in_git', 'mismatch')),"
	" fields TEXT NOT NULL DEFAULT '',"
	" git_value TEXT,"
	" etcd_value TEXT,"
	" PRIMARY KEY (run, kind, id)) WITHOUT ROWID;"
	"CREATE TABLE checkpoints ("
	" name TEXT PRIMARY KEY,"
	" value TEXT NOT NULL,"
	" updated_at INTEGER NOT NULL);"},
    /* Version 3 (issue 15): the verdict pending_drain and what the outbox
     * still owed at the end of a run.  A CHECK cannot be altered, so runs
     * is rebuilt; divergences is rebuilt with it, because with foreign
     * keys on, dropping the old runs would cascade into its rows.  Ids and
     * the AUTOINCREMENT counter carry over (run numbers are never reused). */
    {3, "CREATE TABLE runs_v3 ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" started_at INTEGER NOT NULL,"
	" duration_ms INTEGER NOT NULL DEFAULT 0,"
	" total INTEGER NOT NULL DEFAULT 0,"
	" equal INTEGER NOT NULL DEFAULT 0,"
	" missing_in_etcd INTEGER NOT NULL DEFAULT 0,"
	" missing_in_git INTEGER NOT NULL DEFAULT 0,"
	" mismatch INTEGER NOT NULL DEFAULT 0,"
	" consistency REAL NOT NULL DEFAULT 0,"
	" verdict TEXT CHECK (verdict IS NULL OR"
	"  verdict IN ('pass', 'fail', 'pending_drain')),"
	" action TEXT,"
	" error TEXT,"
	" owed INTEGER NOT NULL DEFAULT 0,"
	" owed_etcd INTEGER NOT NULL DEFAULT 0,"
	" owed_git INTEGER NOT NULL DEFAULT 0,"
	" owed_oldest_ms INTEGER NOT NULL DEFAULT 0);"
	"INSERT INTO runs_v3 (id, started_at, duration_ms, total, equal,"
	" missing_in_etcd, missing_in_git, mismatch, consistency, verdict, action,"
	" error) SELECT id, started_at, duration_ms, total, equal, missing_in_etcd,"
	" missing_in_git, mismatch, consistency, verdict, action, error FROM runs;"
	"DELETE FROM sqlite_sequence WHERE name = 'runs_v3';"
	"INSERT INTO sqlite_sequence (name, seq)"
	" SELECT 'runs_v3', seq FROM sqlite_sequence WHERE name = 'runs';"
	"CREATE TABLE divergences_v3 ("
	" run INTEGER NOT NULL REFERENCES runs_v3 (id) ON DELETE CASCADE,"
	" id TEXT NOT NULL,"
	" kind TEXT NOT NULL CHECK (kind IN ('task', 'swarm')),"
	" class TEXT NOT NULL"
	"  CHECK (class IN ('missing_in_etcd', 'missing_in_git', 'mismatch')),"
	" fields TEXT NOT NULL DEFAULT '',"
	" git_value TEXT,"
	" etcd_value TEXT,"
	" PRIMARY KEY (run, kind, id)) WITHOUT ROWID;"
	"INSERT INTO divergences_v3 SELECT run, id, kind, class, fields, git_value,"
	" etcd_value FROM divergences;"
	"DROP TABLE divergences;"
	"DROP TABLE runs;"
	"ALTER TABLE runs_v3 RENAME TO runs;"
	"ALTER TABLE divergences_v3 RENAME TO divergences;"
	"CREATE TABLE run_owed ("
	" run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
	" target TEXT NOT NULL CHECK (target IN ('git', 'etcd')),"
	" kind TEXT NOT NULL CHECK (kind IN ('task', 'swarm')),"
	" id TEXT NOT NULL,"
	" since INTEGER NOT NULL,"
	" PRIMARY KEY (run, target, kind, id)) WITHOUT ROWID;"},
    /* Version 4 (issue 22): swarm bearer tokens (tokens.c), kept only as a
     * per-token random salt and HMAC-SHA256(salt, token). */
    {4, "CREATE TABLE swarm_tokens ("
	" swarm TEXT PRIMARY KEY,"
	" salt BLOB NOT NULL,"
	" hash BLOB NOT NULL,"
	" issued_at INTEGER NOT NULL) WITHOUT ROWID;"},
    /* Version 5 (issue 14): webhook events owed to their endpoints
     * (webhook.h), one row per event and endpoint; no secret in it. */
    {5, "CREATE TABLE webhook_outbox ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" event_id TEXT NOT NULL,"
	" event TEXT NOT NULL,"
	" url TEXT NOT NULL,"
	" body TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt_at INTEGER NOT NULL,"
	" last_error TEXT);"
	"CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at);"},
};

#define STR_(x) #x
#define STR(x) STR_(x)
#define CO_STATE_BUSY_TIMEOUT_STR STR(CO_STATE_BUSY_TIMEOUT_MS)

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == CO_STATE_SCHEMA_VERSION,
	       "CO_STATE_SCHEMA_VERSION must be the number of migrations");

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
static int db_error(struct sqlite3 *db, const char *path, int rc, const char *what)
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
	return db_error(st->db, st->path, rc, what);
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

/*
 * Wait for another connection's write lock.  SQLite's own busy handler
 * sleeps 1, 2, 5, 10, ... up to 100 ms between tries, so under steady
 * traffic a waiter keeps waking up after the lock was taken again and can
 * starve until its timeout, while transactions last about a millisecond.
 * Short sleeps with jitter give every process a fair chance; the deadline
 * is the same CO_STATE_BUSY_TIMEOUT_MS.
 */
static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int busy_wait(void *arg, int count)
{
	co_state *st = arg;
	struct timespec ts = {0, 0};
	int64_t now = mono_ms();

	if (count == 0)
		st->busy_since = now;
	else if (now - st->busy_since >= CO_STATE_BUSY_TIMEOUT_MS)
		return 0;
	/* 0.2 to 1.2 ms early on, up to 5 ms after a second of waiting. */
	ts.tv_nsec = 200000 + (long)(rand_r(&st->busy_seed) % 1000000);
	if (now - st->busy_since > 1000)
		ts.tv_nsec *= 4;
	nanosleep(&ts, NULL);
	return 1;
}

/* ---- migrations ---- */

static int read_version(int *out, struct sqlite3 *db, const char *path)
{
	sqlite3_stmt *s = NULL;
	int rc, error = 0;

	if ((rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL)) !=
	    SQLITE_OK) {
		error = db_error(db, path, rc, "read schema version");
		goto done;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		error = db_error(db, path, rc, "read schema version");
		goto done;
	}
	*out = sqlite3_column_int(s, 0);
done:
	sqlite3_finalize(s);
	return error;
}

static int exec_db(struct sqlite3 *db, const char *path, const char *sql,
		   const char *what)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_error(db, path, rc, what);
}

int co_state__migrate(struct sqlite3 *db, const char *path,
		      const co_state_migration *steps, size_t n)
{
	int latest = n ? steps[n - 1].version : 0;
	int version, error;
	size_t i;
	char sql[64], what[64];

	/* Fast path without the write lock: the common case is "up to date",
	 * and a CLI one-shot should not queue behind the router's writes. */
	if ((error = read_version(&version, db, path)) < 0)
		return error;
	if (version > latest)
		return co_error_set(CO_EIO,
				    "state %s: schema version %d is newer than this "
				    "cutover understands (%d): upgrade cutover",
				    path, version, latest);
	for (i = 0; i < n; i++) {
		if (steps[i].version <= version)
			continue;
		if ((error = exec_db(db, path, "BEGIN IMMEDIATE", "migrate")) < 0)
			return error;
		/* Another process may have migrated while we waited for the lock. */
		if ((error = read_version(&version, db, path)) < 0)
			goto fail;
		if (steps[i].version <= version) {
			if ((error = exec_db(db, path, "COMMIT", "migrate")) < 0)
				goto fail;
			continue;
		}
		snprintf(what, sizeof(what), "migrate to schema version %d",
			 steps[i].version);
		if ((error = exec_db(db, path, steps[i].sql, what)) < 0)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", steps[i].version);
		if ((error = exec_db(db, path, sql, what)) < 0)
			goto fail;
		if ((error = exec_db(db, path, "COMMIT", what)) < 0)
			goto fail;
		version = steps[i].version;
	}
	return 0;
fail:
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return error;
}

/* ---- open / close ---- */

/*
 * What an errno from creating or opening a configured path says: the path
 * cannot work as given (the operator's input: exit 1, never "store
 * unavailable") or the disk failed under a path that could (CO_EIO).
 * Permission denied counts as input: the operator chose the path or the
 * user cutover runs as, and only the operator can fix either.
 */
static int path_code(int e)
{
	switch (e) {
	case EACCES:
	case EPERM:
	case EROFS:
	case ENOTDIR:
	case EEXIST:
	case EISDIR:
	case ELOOP:
	case ENAMETOOLONG:
	case ENOENT:
		return CO_EINVAL;
	case ENOMEM:
		return CO_ENOMEM;
	default:
		return CO_EIO;
	}
}

int co_state_mkdir(int *created, const char *what, const char *dir)
{
	char *p = NULL, *s, saved;
	struct stat sb;
	int error = 0, made = 0;

	if (created)
		*created = 0;
	if (dir == NULL || dir[0] == '\0')
		return co_error_set(CO_EINVAL, "%s: empty path", what);
	if ((p = strdup(dir)) == NULL)
		return co_error_set(CO_ENOMEM, "%s %s: out of memory", what, dir);
	for (s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		if (*s == '/' && (s[1] == '/' || s[1] == '\0'))
			continue; /* "a//b", "a/": one component */
		saved = *s;
		*s = '\0';
		made = 0;
		if (mkdir(p, CO_STATE_DIR_MODE) == 0) {
			made = 1;
			/* mkdir's mode goes through the umask: 0700 is meant
			 * exactly (umask 0200 would leave a dir we cannot write). */
			if (chmod(p, CO_STATE_DIR_MODE) < 0) {
				error =
				    co_error_set(path_code(errno), "%s %s: chmod %s: %s",
						 what, dir, p, strerror(errno));
				goto done;
			}
		} else if (errno != EEXIST) {
			if (saved == '\0')
				error = co_error_set(path_code(errno), "%s %s: %s", what,
						     dir, strerror(errno));
			else
				error = co_error_set(path_code(errno),
						     "%s %s: cannot create %s: %s", what,
						     dir, p, strerror(errno));
			goto done;
		}
		*s = saved;
		if (saved == '\0')
			break;
	}
	if (stat(dir, &sb) < 0) {
		error = co_error_set(path_code(errno), "%s %s: %s", what, dir,
				     strerror(errno));
		goto done;
	}
	if (!S_ISDIR(sb.st_mode)) {
		error = co_error_set(CO_EINVAL, "%s %s: not a directory", what, dir);
		goto done;
	}
	if (created)
		*created = made;
done:
	free(p);
	return error;
}

int co_state_dir_prepare(char *warn, size_t warn_len, const char *dir)
{
	struct stat sb;
	int created, error;

	if (warn && warn_len)
		warn[0] = '\0';
	if ((error = co_state_mkdir(&created, "state dir", dir)) < 0)
		return error;
	/* SQLite needs to create its -wal and -shm beside the database. */
	if (access(dir, W_OK | X_OK) < 0)
		return co_error_set(path_code(errno), "state dir %s: %s", dir,
				    strerror(errno));
	/* The operator's directory (or systemd's StateDirectory=) is theirs to
	 * fix: say so, change nothing.  One we created is 0700 already. */
	if (!created && warn && warn_len && stat(dir, &sb) == 0 && (sb.st_mode & 077))
		snprintf(warn, warn_len,
			 "state dir %s is mode %04o; %s by other users; chmod 700 it",
			 dir, (unsigned)(sb.st_mode & 07777),
			 (sb.st_mode & 044) ? "readable" : "open");
	return 0;
}

int co_state_file_private(char *warn, size_t warn_len, const char *path)
{
	struct stat sb;

	if (warn && warn_len)
		warn[0] = '\0';
	if (lstat(path, &sb) < 0) {
		if (errno == ENOENT)
			return 0;
		return co_error_set(path_code(errno), "%s: %s", path, strerror(errno));
	}
	if (!S_ISREG(sb.st_mode) || (sb.st_mode & 07777) == CO_STATE_FILE_MODE)
		return 0;
	if (sb.st_uid != geteuid()) {
		if ((sb.st_mode & 077) && warn && warn_len)
			snprintf(warn, warn_len,
				 "%s is mode %04o and owned by uid %u, not by this user; "
				 "%s by other users; chmod 600 it",
				 path, (unsigned)(sb.st_mode & 07777),
				 (unsigned)sb.st_uid,
				 (sb.st_mode & 044) ? "readable" : "open");
		return 0;
	}
	/*
	 * By path, not through a descriptor: a descriptor opened and closed
	 * here would release every POSIX lock this process's SQLite
	 * connections hold on the file (sqlite.org/howtocorrupt.html, 2.2).
	 * The path was lstat'ed as a regular file of ours in a directory
	 * only we can write (0700), so nothing can swap it meanwhile.
	 */
	if (chmod(path, CO_STATE_FILE_MODE) < 0 && errno != ENOENT)
		return co_error_set(path_code(errno), "%s: chmod 600: %s", path,
				    strerror(errno));
	return 0;
}

/* The database file and, when they exist, its -wal and -shm: ours are
 * made private; the warnings are the CLI's to print, at start. */
static int db_files_private(const char *path)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char buf[4200];
	size_t i;
	int error;

	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", path, suffix[i]);
		if ((error = co_state_file_private(NULL, 0, buf)) < 0)
			return error;
	}
	return 0;
}

/* Switch to WAL and check that it took: on a filesystem without shared
 * memory support SQLite silently stays in the old mode. */
static int set_wal(co_state *st)
{
	sqlite3_stmt *s = NULL;
	int rc, error;

	if ((error = co_state__prepare(st, &s, "PRAGMA journal_mode = WAL")) < 0)
		return error;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		error = co_state__error(st, rc, "enable WAL");
		goto done;
	}
	if (strcmp((const char *)sqlite3_column_text(s, 0), "wal") != 0)
		error =
		    co_error_set(CO_EIO, "state %s: cannot enable WAL (journal mode %s)",
				 st->path, (const char *)sqlite3_column_text(s, 0));
done:
	co_state__finish(st, s);
	return error;
}

int co_state_open(co_state **out, const char *state_dir)
{
	co_state *st = NULL;
	size_t len;
	int rc, error;

	if (state_dir == NULL || state_dir[0] == '\0')
		return co_error_set(CO_EINVAL, "state dir: empty path");
	if ((error = co_state_dir_prepare(NULL, 0, state_dir)) < 0)
		return error;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return co_error_set(CO_ENOMEM, "state %s: out of memory", state_dir);
	pthread_mutex_init(&st->lock, NULL);
	st->sync_full = 1; /* what we set below, and SQLite's own default */
	st->audit_keep[CO_AUDIT__OPS] = CO_AUDIT_KEEP_DEFAULT;
	st->audit_batch[CO_AUDIT__OPS] = CO_AUDIT_BATCH_DEFAULT;
	st->audit_keep[CO_AUDIT__MISMATCHES] = CO_AUDIT_KEEP_DEFAULT;
	st->audit_batch[CO_AUDIT__MISMATCHES] = CO_AUDIT_BATCH_DEFAULT;
	len = strlen(state_dir) + sizeof("/" CO_STATE_DB_NAME);
	st->dir = strdup(state_dir);
	st->path = malloc(len);
	if (st->dir == NULL || st->path == NULL) {
		error = co_error_set(CO_ENOMEM, "state %s: out of memory", state_dir);
		goto done;
	}
	snprintf(st->path, len, "%s/%s", state_dir, CO_STATE_DB_NAME);

	/* SQLite would open a database it may not write read-only, and fail
	 * later as an I/O error: say what is wrong with the file instead. */
	if (access(st->path, F_OK) == 0 && access(st->path, R_OK | W_OK) < 0) {
		error = co_error_set(path_code(errno), "state %s: %s", st->path,
				     strerror(errno));
		goto done;
	}
	rc = sqlite3_open_v2(
	    st->path, &st->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		error = co_state__error(st, rc, "open");
		goto done;
	}
	sqlite3_extended_result_codes(st->db, 1);
	/*
	 * SQLite creates a new database with 0644 less the umask, and gives
	 * the -wal and -shm it creates later the main file's mode exactly
	 * (its unix VFS fchmods them to it).  So the file is made 0600 here,
	 * before this connection's first read can create either; as every
	 * cutover connection does the same, whichever creates a -wal or -shm
	 * finds the database 0600 already.  Existing ones left loose by an
	 * older cutover (or by hand) are tightened too.
	 */
	if ((error = db_files_private(st->path)) < 0)
		goto done;
	st->busy_seed = (unsigned int)getpid() ^ (unsigned int)(uintptr_t)st ^
			(unsigned int)mono_ms();
	sqlite3_busy_handler(st->db, busy_wait, st);

	/* A file that is not a database is only noticed at the first read. */
	if ((error = set_wal(st)) < 0)
		goto done;
	if ((error = co_state__exec(st, "PRAGMA synchronous = FULL;"
					"PRAGMA foreign_keys = ON;")) < 0)
		goto done;
	if ((error = co_state__migrate(st->db, st->path, migrations,
				       sizeof(migrations) / sizeof(migrations[0]))) < 0)
		goto done;
	*out = st;
	st = NULL;
done:
	co_state_close(st);
	return error;
}

void co_state_close(co_state *st)
{
	if (st == NULL)
		return;
	while (st->n_cache > 0)
		sqlite3_finalize(st->cache[--st->n_cache].stmt);
	/* sqlite3_close_v2 tolerates NULL and defers if statements leaked. */
	sqlite3_close_v2(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st->dir);
	free(st->path);
	free(st);
}

const char *co_state_path(const co_state *st)
{
	return st->path;
}

const char *co_state_dir(const co_state *st)
{
	return st->dir;
}

int co_state_version(int *out, co_state *st)
{
	int error, v = 0;

	co_state__lock(st);
	error = read_version(&v, st->db, st->path);
	co_state__unlock(st);
	if (error == 0)
		*out = v;
	return error;
}

_Atomic int co_state__sync_fault;

/*
 * Why an fsync of the WAL through one connection makes other connections'
 * unsynced commits durable: a commit appends its frames to the one WAL
 * file with write(), and fsync flushes the file, whatever descriptor wrote
 * it.  Recovery replays the WAL's frames up to the first one whose
 * checksum chain breaks, so once a commit's frames are on disk, it and
 * everything before it survive.  A frame no longer in the WAL was copied
 * into the database file by a checkpoint, and SQLite syncs the database
 * file (even at synchronous=NORMAL) before it lets the WAL be reused, so
 * nothing committed can be waiting unsynced anywhere else.  SQLite's own
 * handle on the WAL (SQLITE_FCNTL_JOURNAL_POINTER) is used rather than a
 * path, so that this is the very file SQLite writes, synced the way its
 * VFS syncs (fdatasync here, F_FULLFSYNC where the platform has it).
 */
int co_state_sync(co_state *st)
{
	sqlite3_file *f = NULL;
	int rc, error = 0;

	co_state__lock(st);
	if (atomic_load(&co_state__sync_fault)) {
		error = co_error_set(CO_EIO, "state %s: sync the WAL: fault injected",
				     st->path);
		goto done;
	}
	rc = sqlite3_file_control(st->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
	if (rc == SQLITE_OK && (f == NULL || f->pMethods == NULL)) {
		/* The connection opens the WAL at its first read. */
		if ((error = co_state__exec(st, "SELECT count(*) FROM sqlite_master")) <
		    0)
			goto done;
		rc = sqlite3_file_control(st->db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
					  &f);
	}
	if (rc != SQLITE_OK) {
		error = co_state__error(st, rc, "find the WAL");
		goto done;
	}
	if (f == NULL || f->pMethods == NULL) {
		error =
		    co_error_set(CO_EIO, "state %s: sync the WAL: no WAL open", st->path);
		goto done;
	}
	errno = 0;
	if ((rc = f->pMethods->xSync(f, SQLITE_SYNC_FULL)) != SQLITE_OK) {
		int sys = errno; /* the VFS leaves fsync's errno in place */

		error = co_error_set(CO_EIO, "state %s-wal: fsync: %s%s%s", st->path,
				     sqlite3_errstr(rc), sys ? ": " : "",
				     sys ? strerror(sys) : "");
	}
done:
	co_state__unlock(st);
	return error;
}

int co_state_wal_reset(co_state *st)
{
	int rc, error = 0;

	co_state__lock(st);
	if (atomic_load(&co_state__sync_fault)) {
		error = co_error_set(CO_EIO, "state %s: reset the log: fault injected",
				     st->path);
		goto done;
	}
	/* synchronous is FULL or NORMAL here, never OFF: either way SQLite
	 * syncs the log before it copies it and the database file after. */
	rc = sqlite3_wal_checkpoint_v2(st->db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL,
				       NULL);
	if (rc == SQLITE_BUSY)
		error = co_error_set(CO_EUNAVAIL,
				     "state %s: reset the log: other connections kept it "
				     "busy",
				     st->path);
	else if (rc != SQLITE_OK)
		error = co_state__error(st, rc, "checkpoint the log");
done:
	co_state__unlock(st);
	return error;
}

int64_t co_state_now_ms(void)
{
	struct timespec ts;
	const char *off = getenv("CUTOVER_CLOCK_OFFSET");
	int64_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (off != NULL && off[0] != '\0') {
		char *end;
		long long s = strtoll(off, &end, 10);

		if (*end == '\0')
			now += (int64_t)s * 1000;
	}
	return now;
}

/* ---- checkpoints ---- */

static int check_name(const char *name)
{
	if (name == NULL || name[0] == '\0')
		return co_error_set(CO_EINVAL, "checkpoint: empty name");
	return 0;
}

int co_state_checkpoint_get(char **out, co_state *st, const char *name)
{
	sqlite3_stmt *s = NULL;
	char *value = NULL;
	int rc, error;

	if ((error = check_name(name)) < 0)
		return error;
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s, "SELECT value FROM checkpoints WHERE name = ?")) < 0)
		goto done;
	if ((error = co_state__bind_text(st, s, 1, name)) < 0)
		goto done;
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		error = co_error_set(CO_ENOTFOUND, "checkpoint \"%s\": not set", name);
		goto done;
	}
	if (rc != SQLITE_ROW) {
		error = co_state__error(st, rc, "read checkpoint");
		goto done;
	}
	if ((error = co_state__column_text(&value, s, 0)) < 0)
		goto done;
	*out = value;
	value = NULL;
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	free(value);
	return error;
}

int co_state_checkpoint_set(co_state *st, const char *name, const char *value)
{
	sqlite3_stmt *s = NULL;
	int error;

	if ((error = check_name(name)) < 0)
		return error;
	co_state__lock(st);
	if (value == NULL)
		error =
		    co_state__prepare(st, &s, "DELETE FROM checkpoints WHERE name = ?");
	else
		error = co_state__prepare(
		    st, &s,
		    "INSERT INTO checkpoints (name, value, updated_at) "
		    "VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE SET "
		    "value = excluded.value, updated_at = excluded.updated_at");
	if (error < 0)
		goto done;
	if ((error = co_state__bind_text(st, s, 1, name)) < 0)
		goto done;
	if (value != NULL) {
		if ((error = co_state__bind_text(st, s, 2, value)) < 0)
			goto done;
		sqlite3_bind_int64(s, 3, co_state_now_ms());
	}
	error = co_state__step_commit(st, s, 1, "write checkpoint");
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}
