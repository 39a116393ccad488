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
 * The schema's migrations are in state_schema.c, the SQLite helpers every
 * module of the state uses in state_sql.c (both state_internal.h).
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

/* One pause of a waiter that began at `since`: 0.2 to 1.2 ms early on,
 * up to 5 ms after a second of waiting. */
static void busy_pause(co_state *st, int64_t since, int64_t now)
{
	struct timespec ts = {0, 0};

	ts.tv_nsec = 200000 + (long)(rand_r(&st->busy_seed) % 1000000);
	if (now - since > 1000)
		ts.tv_nsec *= 4;
	nanosleep(&ts, NULL);
}

static int busy_wait(void *arg, int count)
{
	co_state *st = arg;
	int64_t now = mono_ms();

	if (count == 0)
		st->busy_since = now;
	else if (now - st->busy_since >= CO_STATE_BUSY_TIMEOUT_MS)
		return 0;
	busy_pause(st, st->busy_since, now);
	return 1;
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
	int64_t since;
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

	/*
	 * A file that is not a database is only noticed at the first read.
	 * When several processes open a new state at once, SQLite can answer
	 * the switch to WAL with SQLITE_BUSY without calling the busy handler
	 * (seen once in about 150 runs of sixteen racing first opens on two
	 * busy cores): the switch is tried again, under the same deadline.
	 */
	since = mono_ms();
	while ((error = set_wal(st)) == CO_EUNAVAIL &&
	       mono_ms() - since < CO_STATE_BUSY_TIMEOUT_MS)
		busy_pause(st, since, mono_ms());
	if (error < 0)
		goto done;
	if ((error = co_state__exec(st, "PRAGMA synchronous = FULL;"
					"PRAGMA foreign_keys = ON;")) < 0)
		goto done;
	if ((error = co_state__migrate_schema(st->db, st->path)) < 0)
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
	error = co_state__read_version(&v, st->db, st->path);
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

long long co_state_memory_used(void)
{
	return (long long)sqlite3_memory_used();
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
