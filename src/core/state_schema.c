/*
 * state_schema.c - the state database's schema: a list of forward
 * migrations, one per PRAGMA user_version, and the code that applies them.
 *
 * Adding a version means appending one entry to `migrations` and bumping
 * CO_STATE_SCHEMA_VERSION; an old database is then brought forward when it is
 * next opened, one version per transaction, and several processes opening an
 * old database at once agree because each step re-reads the version under
 * the write lock.  There are no backward migrations: a database newer than
 * the binary is refused rather than guessed at.
 */
#include "error.h"
#include "state_internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

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

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == CO_STATE_SCHEMA_VERSION,
	       "CO_STATE_SCHEMA_VERSION must be the number of migrations");

/* ---- migrations ---- */

int co_state__read_version(int *out, struct sqlite3 *db, const char *path)
{
	sqlite3_stmt *s = NULL;
	int rc, error = 0;

	if ((rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL)) !=
	    SQLITE_OK) {
		error = co_state__db_error(db, path, rc, "read schema version");
		goto done;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		error = co_state__db_error(db, path, rc, "read schema version");
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

	return rc == SQLITE_OK ? 0 : co_state__db_error(db, path, rc, what);
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
	if ((error = co_state__read_version(&version, db, path)) < 0)
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
		if ((error = co_state__read_version(&version, db, path)) < 0)
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

int co_state__migrate_schema(struct sqlite3 *db, const char *path)
{
	return co_state__migrate(db, path, migrations,
				 sizeof(migrations) / sizeof(migrations[0]));
}
