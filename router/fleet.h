/*
 * fleet.h - a router fleet coordinated through etcd (issue 18, points 1
 * and 4): the flags document at one etcd key, written by txn on its epoch
 * and watched by every router; and the membership of the routers, each
 * under a lease at <prefix>routers/<id>.
 *
 * Keys (prefix default "/cutover/"):
 *
 *	<prefix>flags            the flags YAML (co_flags_format); its
 *	                         mod_revision is the EPOCH (0: no key yet,
 *	                         the defaults)
 *	<prefix>routers/<id>     one JSON object per live router, under a
 *	                         lease of `ttl_s` seconds, refreshed every
 *	                         ttl/3 (at least every second)
 *
 * Every writer goes through co_fleet_flags_update(): read the document and
 * its epoch, apply the change, write by txn comparing the epoch read; on a
 * lost compare, read again and re-apply the change.  So two writers racing
 * both land, neither change is lost (the file lock's role in file mode).
 *
 * Talks to the etcd v3 JSON gateway over libcurl itself: the store's
 * transport (src/store/etcd_private.h) is private to the store and its
 * watch decodes records only, while the flags document is YAML.
 *
 * Errors (core/error.h): CO_EUNAVAIL when no endpoint answers (the message
 * names the endpoints), CO_EINVAL for bad options or a document that does
 * not parse (naming the key), CO_ECONFLICT when an update lost the epoch
 * race CO_FLEET_UPDATE_TRIES times, CO_ENOMEM.  All functions are
 * thread-safe on one co_fleet.
 */
#ifndef CO_ROUTER_FLEET_H
#define CO_ROUTER_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "flags/flags.h"
#include "store/etcd_store.h"
#include "flags/watcher.h"

typedef struct co_fleet co_fleet;

typedef struct co_fleet_opts {
	const char *const *endpoints; /* "http://127.0.0.1:2379", ... (required) */
	size_t n_endpoints;
	const char *prefix;	/* default "/cutover/" */
	int request_timeout_ms; /* default 2000 */
	/* etcd's auth, TLS files and connect timeout, as the data store's: the
	 * fleet talks to etcd through an etcd store's transport (its
	 * endpoints, prefix, cache and request timeout are the fleet's own,
	 * above).  NULL: none. */
	const co_etcd_opts *etcd;
} co_fleet_opts;

/* Tries of an update whose txn keeps losing the epoch race. */
#define CO_FLEET_UPDATE_TRIES 50

/* Open a fleet handle (does not contact etcd).  CO_EINVAL, CO_ENOMEM.
 * Like an etcd store, whose transport it uses, a handle keeps connections
 * alive: a process forked after using one opens its own. */
int co_fleet_open(co_fleet **out, const co_fleet_opts *opts);

/* Free it (every watch and registration must be closed first).  NULL ok. */
void co_fleet_close(co_fleet *f);

/* "<prefix>flags" (owned by f). */
const char *co_fleet_flags_key(const co_fleet *f);

/*
 * The same key for a prefix (NULL: the default), into buf: 0, or
 * CO_EINVAL when it does not fit.
 */
int co_fleet_flags_key_for(char *buf, size_t len, const char *prefix);

/*
 * The flags document and its epoch (0 and the defaults when the key does
 * not exist).  CO_EUNAVAIL, CO_EINVAL (does not parse; names the key).
 */
int co_fleet_flags_get(co_flags *out, int64_t *epoch, co_fleet *f);

/*
 * Change the flags: `edit` gets what etcd holds now and changes it in
 * place; returns < 0 to give up (that error is returned, nothing written),
 * 0 to write, 1 for "nothing to change" (nothing written).  Written by txn
 * comparing the epoch read; on a lost compare `edit` runs again on the new
 * document.  *out / *epoch (either may be NULL) get what etcd holds after.
 */
typedef int (*co_fleet_edit_fn)(void *ctx, co_flags *flags);
int co_fleet_flags_update(co_flags *out, int64_t *epoch, co_fleet *f,
			  co_fleet_edit_fn edit, void *ctx);

/*
 * The change from `from` to `to` (every field that differs: the kill
 * switch and its reason, the default, each operation's override, mirror,
 * completed; the stamp always) made on `cur`: what a writer that read
 * `from` (its local file, say) re-applies on what etcd holds.
 */
void co_fleet_flags_delta(co_flags *cur, const co_flags *from, const co_flags *to);

/* co_fleet_flags_update() of co_fleet_flags_delta(from, to). */
int co_fleet_flags_commit(co_flags *out, int64_t *epoch, co_fleet *f, const co_flags *from,
			  const co_flags *to);

/*
 * A flag writer's change in fleet mode, for every writer (CLI, admin
 * API): the change from `from` (what the writer read in its local file
 * `path`) to *to is committed in etcd by co_fleet_flags_commit, then the
 * local file gets what etcd holds after (a kill switch on in it and left
 * alone by the change stays on); *to becomes what was saved.  Nothing is
 * changed when etcd does not answer, except the kill switch (kill = 1):
 * it lands in the local file first, always, and if etcd does not answer
 * the call still succeeds with `warn` (may be NULL) saying so, for the
 * routers `rollback --fleet` reaches without etcd (and this router's
 * heartbeat pushes it into etcd when it answers again).  f may be NULL:
 * the etcd part is then skipped as if etcd did not answer.  Errors: those
 * of co_fleet_flags_commit (CO_EUNAVAIL: etcd did not answer and this was
 * no kill), and the file's save (CO_EIO; the message says etcd has it).
 */
int co_fleet_flags_commit_file(co_fleet *f, const char *path, const co_flags *from,
			       co_flags *to, int kill, char *warn, size_t warn_len);

struct co_config;

/*
 * co_fleet_open() from the config (etcd.endpoints, etcd.request_timeout,
 * fleet.prefix): 0 with *out NULL when fleet.enabled is off.
 */
int co_fleet_open_config(co_fleet **out, const struct co_config *c);

/*
 * The fleet's gate as the CLI runs it: read the epoch and the live
 * routers, co_fleet_gate().  why gets "" when every router is current,
 * else the refusal (naming the router, or that etcd could not be read).
 */
void co_fleet_gate_read(char *why, size_t len, co_fleet *f, long max_outbox_age_ms);

/*
 * Write `doc` only if etcd is still at `epoch` (no retry): CO_ERETRY if
 * it moved on (the caller judged on what it no longer holds).  *now (may
 * be NULL) the new epoch.  For a router pushing its local trip.
 */
int co_fleet_flags_put_if(int64_t *now, co_fleet *f, const co_flags *doc, int64_t epoch);

/* ---- the watch: every router applies a change ---- */

typedef struct co_fleet_watch co_fleet_watch;

/*
 * Called from the watch's thread with each new document and its epoch
 * (first with what etcd holds when the watch starts).  A document that
 * does not parse is skipped (the last good one is kept) and counted.
 */
typedef void (*co_fleet_flags_cb)(void *ctx, const co_flags *flags, int64_t epoch);

/*
 * Start watching <prefix>flags in a thread (a streaming gateway watch; on
 * a broken stream it reads the key again and watches from there, every
 * 200 ms while etcd is down).  cb may be NULL.  CO_ENOMEM, CO_EIO (thread).
 */
int co_fleet_watch_open(co_fleet_watch **out, co_fleet *f, co_fleet_flags_cb cb,
			void *ctx);

/* The flags and epoch last seen (epoch 0 before the first read). */
int64_t co_fleet_watch_get(co_flags *out, co_fleet_watch *w);

/* Wait until the epoch seen is > after; 0, or CO_ERETRY after timeout_ms. */
int co_fleet_watch_wait(co_fleet_watch *w, int64_t after, int timeout_ms);

/* 1 while the watch stream is up (created and not broken), else 0. */
int co_fleet_watch_connected(co_fleet_watch *w);

/* Stop the thread and free.  NULL ok. */
void co_fleet_watch_close(co_fleet_watch *w);

/*
 * The router's side of the watch: each document is saved into the local
 * flags file (co_flags_save) and, if a file watcher is given, reloaded in
 * it at once (co_flags_watcher_reload), so the router routes by it; the
 * epoch so applied is what the router registers.  A kill switch pulled in
 * the local file since the last document was mirrored (a local trip: the
 * admin API, a trigger, `rollback` with etcd down) is kept over a document
 * without one: the kill switch that works with etcd down is never undone
 * by etcd; it is cleared where it was pulled (`resume` on that router).
 */
typedef struct co_fleet_mirror co_fleet_mirror;

/* path and w (may be NULL) are borrowed.  CO_ENOMEM. */
int co_fleet_mirror_new(co_fleet_mirror **out, const char *path, co_flags_watcher *w);

void co_fleet_mirror_free(co_fleet_mirror *m);

/* The co_fleet_flags_cb: ctx is the co_fleet_mirror. */
void co_fleet_mirror_apply(void *ctx, const co_flags *flags, int64_t epoch);

/* The epoch last applied (0: none yet). */
int64_t co_fleet_mirror_epoch(co_fleet_mirror *m);

/*
 * 1 with *local the file's flags if the local file holds a kill switch
 * the last document mirrored did not have (a local trip since), else 0.
 */
int co_fleet_mirror_local_trip(co_fleet_mirror *m, co_flags *local);

/* ---- membership ---- */

#define CO_FLEET_ID_MAX 63

/* What one router says of itself (<prefix>routers/<id>, JSON). */
typedef struct co_fleet_member {
	char id[CO_FLEET_ID_MAX + 1]; /* [A-Za-z0-9._-], 1..63 */
	char host[128];
	long pid;
	char version[32];
	char mode[16];	     /* the stage it routes by (co_stage_name) */
	int64_t epoch;	     /* the flags epoch it routes by */
	long outbox_depth;   /* entries owed to git */
	long outbox_age_ms;  /* age of the oldest; 0 when empty */
	char admin_url[128]; /* "http://127.0.0.1:8080" or "" */
	char heartbeat[40];  /* RFC 3339 UTC of the last refresh */
	char state_dir[256]; /* its state dir (outbox), "" if not said */
} co_fleet_member;

/*
 * Called before each refresh to update what the router says (epoch, mode,
 * outbox); may be NULL (the member is refreshed as it is).
 */
typedef void (*co_fleet_member_fn)(void *ctx, co_fleet_member *m);

typedef struct co_fleet_reg co_fleet_reg;

/*
 * Register `m` under a lease of ttl_s seconds (>= 1) and refresh it every
 * ttl_s/3 seconds (at most every second) in a thread; a lease lost (etcd
 * down longer than the TTL) is granted again.  The first registration is
 * made before returning: CO_EUNAVAIL if etcd does not answer, CO_EINVAL
 * for a bad ID or TTL (naming it).
 */
int co_fleet_register(co_fleet_reg **out, co_fleet *f, const co_fleet_member *m,
		      int ttl_s, co_fleet_member_fn fill, void *ctx);

/* Refresh now (also done by the thread).  0, CO_EUNAVAIL. */
int co_fleet_reg_refresh(co_fleet_reg *r);

/* Stop refreshing and revoke the lease (the key goes at once).  NULL ok. */
void co_fleet_unregister(co_fleet_reg *r);

/*
 * The live routers (their keys exist: the lease has not run out), sorted
 * by ID, in *out (malloc'd, free()) and *n.  CO_EUNAVAIL.
 */
int co_fleet_members(co_fleet_member **out, size_t *n, co_fleet *f);

/* One member as a JSON object text (malloc'd), as stored and as printed. */
char *co_fleet_member_json(const co_fleet_member *m);

/*
 * The fleet as `status --fleet --json` and GET /v1/admin/fleet show it:
 * {"flags_key", "epoch", "stage", "kill_switch", "routers": [member...,
 * each with "behind": epoch < the fleet's]} in *out (a cJSON object,
 * owned by the caller; declared void * to keep cJSON out of this header).
 * CO_EUNAVAIL, CO_ENOMEM.
 */
int co_fleet_status_json(void **out, co_fleet *f);

/*
 * The fleet's part of the go/no-go gate: CO_ECONFLICT naming the first
 * router that routes by an epoch older than `epoch`, or whose outbox's
 * oldest entry is older than max_outbox_age_ms (<= 0: not checked);
 * 0 if none does.
 */
int co_fleet_gate(const co_fleet_member *m, size_t n, int64_t epoch,
		  long max_outbox_age_ms);

/* ---- the kill switch without etcd (fleet_fanout.c) ---- */

/*
 * The routers last listed, cached in a file (JSON, written aside and
 * renamed): what `rollback --fleet` reaches when etcd does not answer.
 * save: CO_EIO, CO_ENOMEM.  load: *out malloc'd (free()); CO_ENOTFOUND
 * when there is no cache, CO_EINVAL when it does not parse.
 */
#define CO_FLEET_CACHE_FILE "fleet-routers.json" /* in the state dir */
int co_fleet_members_save(const char *path, const co_fleet_member *m, size_t n);
int co_fleet_members_load(co_fleet_member **out, size_t *n, const char *path);

/* One admin call of a fan-out: url in, the rest out. */
typedef struct co_fleet_call {
	char url[128];	  /* the router's admin URL ("" : not called) */
	long status;	  /* HTTP status, 0 when no answer */
	char error[300];  /* "" when it answered 2xx, else why not */
	char answer[512]; /* the start of its answer */
} co_fleet_call;

/*
 * POST `body` to url+path of every call at once, with "Authorization:
 * Bearer token" (token NULL: none), each bounded by timeout_ms.  Returns
 * how many answered 2xx (>= 0), or CO_ENOMEM.
 */
int co_fleet_fanout(co_fleet_call *calls, size_t n, const char *path, const char *body,
		    const char *token, int timeout_ms);

/* Largest answer co_fleet_fanout_get keeps (a bigger one fails that call). */
#define CO_FLEET_ANSWER_MAX (64u << 20)

/*
 * GET url+path of every call at once, as co_fleet_fanout; answers[i] (n
 * of them, caller's array) gets the whole 2xx answer, malloc'd (caller
 * frees), or NULL where the call failed (calls[i].error says why).
 * Returns how many answered 2xx, or CO_ENOMEM.
 */
int co_fleet_fanout_get(co_fleet_call *calls, size_t n, const char *path, const char *token,
			int timeout_ms, char **answers);

#endif
