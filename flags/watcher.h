/*
 * watcher.h - hot reload of the flags file (DESIGN §4: a flag change, the
 * kill switch above all, reaches a running router in well under a second,
 * without a restart, while etcd is down).
 *
 * A watcher holds the current flags of one file and reloads them when the
 * file changes: inotify on the directory (the file is normally replaced by
 * rename, so the directory sees IN_MOVED_TO/IN_CLOSE_WRITE for the name) in
 * a background thread, plus a stat() poll every 50 ms (inode, size, mtime)
 * as a fallback where inotify is unavailable or misses the event.  A change
 * is picked up well within 100 ms.
 *
 * A reload that fails (malformed file, unknown mode, ...) keeps the last
 * good flags and records the error; so does removing the file while the
 * watcher runs (only a file missing at open time means the defaults).
 * All functions are thread-safe.
 */
#ifndef CO_FLAGS_WATCHER_H
#define CO_FLAGS_WATCHER_H

#include <stdint.h>

#include "flags/flags.h"

typedef struct co_flags_watcher co_flags_watcher;

/*
 * Called after each successful reload (from the watcher's thread, or from
 * the thread of co_flags_watcher_reload) with the old and new flags.  The
 * flags lock is not held, so route/get work; do not call
 * co_flags_watcher_reload or co_flags_watcher_close from it.
 */
typedef void (*co_flags_watcher_cb)(void *ctx, const co_flags *old_flags,
				    const co_flags *new_flags);

/*
 * Load `path` and start watching it.  The initial load must succeed (a
 * missing file gives the defaults).  Errors: those of co_flags_load,
 * CO_ENOMEM, CO_EIO if the thread cannot be started.  The caller owns *out
 * (co_flags_watcher_close).
 */
int co_flags_watcher_open(co_flags_watcher **out, const char *path);

/* The path watched (owned by the watcher). */
const char *co_flags_watcher_path(const co_flags_watcher *w);

/* Stop the thread, free everything.  Accepts NULL. */
void co_flags_watcher_close(co_flags_watcher *w);

/*
 * Copy the current flags into *out (a private snapshot: nothing to free,
 * later reloads do not change it).  Returns the generation of the snapshot.
 */
uint64_t co_flags_watcher_get(co_flags *out, co_flags_watcher *w);

/* co_flags_route() on the current flags, under the watcher's lock. */
int co_flags_watcher_route(co_route *out, co_flags_watcher *w, co_op op, const char *id);

/*
 * The generation of the current flags: 1 after open, +1 on every
 * successful reload.
 */
uint64_t co_flags_watcher_generation(co_flags_watcher *w);

/*
 * Wait until the generation is greater than `after`, at most `timeout_ms`
 * milliseconds (condition variable, no polling).  0 if it is (also if it
 * already was), CO_ERETRY on timeout.
 */
int co_flags_watcher_wait(co_flags_watcher *w, uint64_t after, int timeout_ms);

/*
 * The last failed reload: returns its code (0 if the latest reload
 * attempt succeeded) and copies its message into buf (if not NULL; "" if
 * none).  *count (if not NULL) receives the number of failed reloads so
 * far.
 */
int co_flags_watcher_error(char *buf, size_t len, uint64_t *count, co_flags_watcher *w);

/*
 * Wait until the number of failed reloads is greater than `after`, at most
 * `timeout_ms` ms.  0 if it is, CO_ERETRY on timeout.
 */
int co_flags_watcher_wait_error(co_flags_watcher *w, uint64_t after, int timeout_ms);

/*
 * Read the file now, in the caller's thread (e.g. right after this process
 * saved it), and make it current if it is good.  0 on success (the
 * generation grows unless the same version was already current); the
 * reload's error otherwise (the last good flags are kept and the error is
 * recorded as for a background reload).
 */
int co_flags_watcher_reload(co_flags_watcher *w);

/* Install (or remove, with fn NULL) the change callback. */
void co_flags_watcher_set_callback(co_flags_watcher *w, co_flags_watcher_cb fn,
				   void *ctx);

#endif
