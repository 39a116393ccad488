/*
 * server_fleet.h - a `cutover serve` as one router of a fleet (issue 18,
 * router/fleet.h): it watches the fleet's flags in etcd and applies them
 * (through its flags file, reloaded at once), registers itself under a
 * lease with what it routes by and what its outbox owes, and answers
 * GET /v1/admin/fleet with the live routers.
 *
 * One agent per process (a serve runs one server); the admin handler finds
 * it there.  Started after the server (its admin URL names the port),
 * stopped before it.
 */
#ifndef CO_SERVER_FLEET_H
#define CO_SERVER_FLEET_H

#include <stdint.h>

#include "core/state.h"
#include "flags/watcher.h"
#include "router/fleet.h"

typedef struct co_server_fleet co_server_fleet;

typedef struct co_server_fleet_opts {
	co_fleet *fleet;	 /* taken: closed by co_server_fleet_stop */
	const char *flags_path;	 /* the router's flags file */
	co_flags_watcher *flags; /* its watcher (borrowed), reloaded on a change */
	co_state *state;	 /* outbox depth and age (borrowed) */
	const char *id;		 /* NULL: "<host>-<pid>" */
	const char *admin_url;	 /* "" or NULL: none registered */
	const char *version;
	int ttl_ms; /* the lease; rounded up to whole seconds (at least 1) */
} co_server_fleet_opts;

/*
 * Start watching and register (the first registration is made before
 * returning).  CO_EUNAVAIL if etcd does not answer (the caller decides
 * whether a serve starts without its fleet), CO_EINVAL for a bad ID,
 * CO_ENOMEM.  On failure the fleet is closed too.
 */
int co_server_fleet_start(co_server_fleet **out, const co_server_fleet_opts *o);

/* Unregister (revoke the lease), stop the watch, close the fleet.  NULL ok. */
void co_server_fleet_stop(co_server_fleet *sf);

/* The member this router registers now (for tests and logs). */
void co_server_fleet_self(co_fleet_member *out, co_server_fleet *sf);

/*
 * GET /v1/admin/fleet (admin token, as every admin endpoint): the epoch in
 * etcd and the live routers, as `cutover --json status --fleet` prints
 * them.  404 when this serve is not in fleet mode, 405 for POST, 503 when
 * etcd does not answer.
 */
struct reply;
void co_server__fleet_admin(struct reply *rp, int is_post);

/*
 * The admin API's flag writers (stage, resume, rollback) in fleet mode:
 * when this process runs a fleet agent, the change goes through
 * co_fleet_flags_commit_file (etcd by txn on the epoch, then the local
 * file `path`) and *in_fleet is 1; otherwise nothing is done, *in_fleet is
 * 0 and the caller saves its file as in file mode.  Errors as
 * co_fleet_flags_commit_file; a kill switch that reached only the local
 * file is logged as a warning and succeeds.
 */
int co_server__fleet_commit(const char *path, const co_flags *from, co_flags *to,
			    int kill, int *in_fleet);

#endif
