/*
 * state.h - cutover's local SQLite state: one database, one owner of its schema.
 *
 * <state_dir>/cutover.db holds the outbox (outbox.h), the audit trails
 * (audit.h), the reconciliation runs (runs.h), the swarm tokens' salted
 * hashes (tokens.h) and small named checkpoints (this file).  The router, `reconcile`, `migrate --follow` and one-shot
 * CLI commands open the same file at the same time, from several processes:
 * the database runs in WAL mode (readers never block the writer), every
 * write transaction takes the write lock up front (BEGIN IMMEDIATE) and
 * waits up to CO_STATE_BUSY_TIMEOUT_MS for it, and durable writes (outbox,
 * checkpoints, runs) are synced before they return (synchronous=FULL).
 *
 * The schema carries PRAGMA user_version and is migrated forward, one step
 * per version, each step in its own transaction, when a database is opened.
 *
 * Thread safety: a co_state is safe to share between threads; every call
 * takes the object's mutex for its whole duration (one SQLite connection per
 * co_state).  A co_state must not cross fork(): a child process opens its
 * own.  Separate processes and separate co_state objects on the same
 * directory are safe.
 *
 * Times in the state are Unix milliseconds (int64_t).
 */
#ifndef CO_STATE_H
#define CO_STATE_H

#include <stddef.h>
#include <stdint.h>

/* The schema version this build creates and understands. */
#define CO_STATE_SCHEMA_VERSION 5

/* How long a write waits for another process holding the write lock. */
#define CO_STATE_BUSY_TIMEOUT_MS 5000

/* File name of the database inside the state directory. */
#define CO_STATE_DB_NAME "cutover.db"

/*
 * The state directory and every file cutover creates in it are private:
 * the outbox, the audit trails and the divergences hold every record's
 * content.  Modes are set exactly (chmod after creation), whatever the
 * umask.
 */
#define CO_STATE_DIR_MODE 0700
#define CO_STATE_FILE_MODE 0600

typedef struct co_state co_state;

/*
 * Create `dir` and any missing parents, each with mode CO_STATE_DIR_MODE
 * exactly (whatever the umask).  A directory that exists is left as it is.
 * *created (may be NULL) is set to 1 if `dir` itself was created by this
 * call, else 0.  `what` names the directory in messages ("state dir").
 *
 * Errors, each naming `what`, the path and the reason ("state dir
 * /x/.cutover: cannot create /x: Permission denied"): CO_EINVAL when the
 * path cannot be a directory of ours (empty, a component or the path
 * itself is not a directory, permission denied, read-only file system,
 * name too long: the operator's input); CO_EIO for a failing disk (no
 * space, I/O error); CO_ENOMEM.  Thread-safe (concurrent creators agree).
 */
int co_state_mkdir(int *created, const char *what, const char *dir);

/*
 * Make `dir` ready to hold cutover's state: co_state_mkdir(), then check
 * that it is a directory this process can write into.  Never changes the
 * mode of a directory that existed: if it is open to group or other users,
 * `warn` (warn_len bytes; may be NULL) receives a one-line warning without
 * a trailing newline ("state dir /x is mode 0755; readable by other users;
 * chmod 700 it"), else "".  Errors as co_state_mkdir(); CO_EINVAL "state
 * dir /x: Permission denied" when it cannot be written.  Thread-safe.
 */
int co_state_dir_prepare(char *warn, size_t warn_len, const char *dir);

/*
 * Make the file at `path`, if it exists, private: a regular file owned by
 * this user with any group/other permission is chmod'ed to
 * CO_STATE_FILE_MODE; one owned by another user gets a warning in `warn`
 * ("/x/cutover.db is mode 0644 and owned by uid 0; readable by other users"),
 * else warn is "".  A missing file, or anything not a regular file, is left
 * alone (0).  It changes the mode by path after an lstat, never through a
 * descriptor of its own: opening and closing a descriptor on a SQLite file
 * would drop the POSIX locks the process's connections hold on it.
 * CO_EIO if the mode cannot be changed (the message names the path).
 */
int co_state_file_private(char *warn, size_t warn_len, const char *path);

/*
 * Open (creating if needed) <state_dir>/cutover.db.  The directory is made
 * ready with co_state_dir_prepare() (its warning is not reported: the CLI
 * prepares the directory itself at start and prints it).  A new database
 * file is created with mode CO_STATE_FILE_MODE before SQLite opens it, so
 * that SQLite gives its -wal and -shm files the same mode (its unix VFS
 * copies the main file's permissions onto them, past the umask); an
 * existing database, -wal and -shm of ours are made private with
 * co_state_file_private().  The schema is created or migrated to
 * CO_STATE_SCHEMA_VERSION.
 *
 * Errors: CO_EINVAL (NULL or empty state_dir, a path that cannot be a
 * state dir, a database file this user may not read and write: see
 * co_state_mkdir); CO_EIO naming the path when the directory or file
 * cannot be created on a failing disk, the file is not a database, or its
 * schema is newer than this build; CO_EUNAVAIL when another process holds
 * the write lock longer than CO_STATE_BUSY_TIMEOUT_MS during migration;
 * CO_ENOMEM.  *out is owned by the caller (co_state_close).
 */
int co_state_open(co_state **out, const char *state_dir);

/* Close the database and free st.  NULL is fine.  Not concurrently with
 * other calls on st. */
void co_state_close(co_state *st);

/* Full path of the database file ("<state_dir>/cutover.db"); owned by st. */
const char *co_state_path(const co_state *st);

/* The state directory st was opened on; owned by st. */
const char *co_state_dir(const co_state *st);

/* The database's schema version (PRAGMA user_version).  CO_EIO. */
int co_state_version(int *out, co_state *st);

/*
 * Current time in Unix milliseconds, with $CUTOVER_CLOCK_OFFSET (seconds)
 * added as co_time_now() does, so that drills that move time forward see
 * the outbox and the go/no-go window move with it.  Thread-safe.
 */
int64_t co_state_now_ms(void);

/*
 * Make every transaction committed so far to this database durable, by
 * whichever connection or process committed it: fsync the write-ahead log.
 * A transaction committed without a sync (synchronous=NORMAL, as intents
 * and the audit logs are) survives a power loss once a co_state_sync()
 * that started after its commit has returned 0.  This is a group commit:
 * one fsync covers every writer before it.
 *
 * It takes no SQLite lock (writers go on while it syncs) but holds st's
 * mutex for the fsync, so give it a co_state of its own when other threads
 * use st.  CO_EIO if the fsync failed: then some earlier commits may be
 * lost, and later syncs prove nothing about them.  Thread-safe.
 */
int co_state_sync(co_state *st);

/* Bytes SQLite holds in this process, every connection's page cache
 * included (sqlite3_memory_used); for serve's /metrics. */
long long co_state_memory_used(void);

/*
 * Close the hole a failed co_state_sync() leaves: copy every page committed
 * so far from the write-ahead log into the database file, sync that file,
 * and empty the log (SQLite's wal_checkpoint(TRUNCATE)).  After a failed
 * fsync the log may have lost frames on disk while the page cache still
 * holds them, and recovery stops at the first lost frame, taking every
 * later commit with it; once this returned 0, everything committed is in
 * the synced database file and recovery has no old frames to walk.  As
 * safe as the page cache is: Linux keeps the pages whose writeback failed,
 * marked clean, until memory pressure evicts them.
 *
 * Waits (the busy timeout) for other connections' writers and readers to
 * let it finish: CO_EUNAVAIL if they did not; CO_EIO if a write or sync
 * failed.  Holds st's mutex throughout; thread-safe.
 */
int co_state_wal_reset(co_state *st);

/*
 * Named checkpoints: small durable key/value pairs for resumable work
 * (the backfill's position, the follower's last mirrored commit, ...).
 *
 * co_state_checkpoint_get: *out is a malloc'd copy of the value (caller
 * frees).  Errors: CO_ENOTFOUND if `name` was never set (or was deleted),
 * CO_EINVAL (NULL/empty name), CO_EIO, CO_ENOMEM.
 */
int co_state_checkpoint_get(char **out, co_state *st, const char *name);

/*
 * Set checkpoint `name` to `value` (replacing it), durable when this
 * returns; value NULL deletes it.  Errors: CO_EINVAL, CO_EIO, CO_EUNAVAIL
 * (write lock not obtained in time).
 */
int co_state_checkpoint_set(co_state *st, const char *name, const char *value);

#endif
