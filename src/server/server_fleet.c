/*
 * server_fleet.c - a `cutover serve` as one router of the fleet: the
 * agent (watch + registration) and GET /v1/admin/fleet (server_fleet.h).
 */
#include "server_fleet.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/log.h"
#include "core/outbox.h"
#include "flags/stage.h"
#include "server_internal.h"

struct co_server_fleet {
	co_fleet *fleet;
	co_flags_watcher *flags;
	co_state *state;
	co_fleet_mirror *mirror;
	co_fleet_watch *watch;
	co_fleet_reg *reg;
	pthread_mutex_t lock;
	co_fleet_member self; /* under lock */
	unsigned beats;
};

/* Every this many heartbeats the live routers are cached in the state dir
 * (CO_FLEET_CACHE_FILE): whom `rollback --fleet` here reaches without etcd. */
#define CACHE_EVERY 5

/* The agent of this process, for the admin handler. */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static co_server_fleet *current;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A kill switch pulled here (the admin API, a live-signal trigger, the
 * reconciler, `rollback` on this host) goes to the whole fleet: written
 * into etcd's document, only over the epoch this router has applied (a
 * resume it has not seen yet is never undone), else judged again at the
 * next beat.  With etcd down it stays local, which is the guarantee.
 */
static void push_local_trip(co_server_fleet *sf, const char *id)
{
	co_flags doc, local;
	int64_t epoch = co_fleet_watch_get(&doc, sf->watch);

	if (doc.kill_switch || co_fleet_mirror_epoch(sf->mirror) != epoch ||
	    !co_fleet_mirror_local_trip(sf->mirror, &local))
		return;
	co_flags_set_kill(&doc, 1, local.kill_reason);
	co_flags_stamp(&doc, id, NULL);
	if (co_fleet_flags_put_if(NULL, sf->fleet, &doc, epoch) == 0)
		co_log(CO_LOG_WARN, "serve", "fleet: kill switch pulled here (%s) sent to "
		       "the fleet", local.kill_reason);
	co_error_clear();
}

/* Before each heartbeat: what this router routes by, what it owes. */
static void fill(void *ctx, co_fleet_member *m)
{
	co_server_fleet *sf = ctx;
	co_outbox_stats g, e;
	co_flags f;
	int64_t oldest = 0;

	push_local_trip(sf, m->id);
	if (sf->beats++ % CACHE_EVERY == 0) {
		co_fleet_member *all = NULL;
		size_t n = 0;
		char path[4200];

		snprintf(path, sizeof path, "%s/%s", co_state_dir(sf->state), CO_FLEET_CACHE_FILE);
		if (co_fleet_members(&all, &n, sf->fleet) == 0)
			co_fleet_members_save(path, all, n);
		free(all);
		co_error_clear();
	}
	co_flags_watcher_get(&f, sf->flags);
	snprintf(m->mode, sizeof m->mode, "%s",
		 f.kill_switch ? "killed" : co_stage_name(co_stage_of(&f)));
	m->epoch = co_fleet_mirror_epoch(sf->mirror);
	memset(&g, 0, sizeof g);
	memset(&e, 0, sizeof e);
	if (co_outbox_stats_of(&g, sf->state, "git") == 0 &&
	    co_outbox_stats_of(&e, sf->state, "etcd") == 0) {
		m->outbox_depth = (long)(g.depth + e.depth);
		oldest = g.oldest_ms && (!e.oldest_ms || g.oldest_ms < e.oldest_ms)
			     ? g.oldest_ms
			     : e.oldest_ms;
		m->outbox_age_ms = oldest ? (long)(now_ms() - oldest) : 0;
	}
	co_error_clear();
	pthread_mutex_lock(&sf->lock);
	sf->self = *m;
	pthread_mutex_unlock(&sf->lock);
}

int co_server_fleet_start(co_server_fleet **out, const co_server_fleet_opts *o)
{
	co_server_fleet *sf = calloc(1, sizeof *sf);
	co_fleet_member m;
	int error;

	if (!sf) {
		co_fleet_close(o->fleet);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	sf->fleet = o->fleet;
	sf->flags = o->flags;
	sf->state = o->state;
	pthread_mutex_init(&sf->lock, NULL);
	memset(&m, 0, sizeof m);
	if (gethostname(m.host, sizeof m.host - 1) < 0)
		snprintf(m.host, sizeof m.host, "?");
	m.pid = (long)getpid();
	if (o->id && *o->id)
		snprintf(m.id, sizeof m.id, "%s", o->id);
	else
		snprintf(m.id, sizeof m.id, "%.40s-%ld", m.host, m.pid);
	snprintf(m.version, sizeof m.version, "%s", o->version ? o->version : "");
	snprintf(m.admin_url, sizeof m.admin_url, "%s", o->admin_url ? o->admin_url : "");
	/* where its outbox is: `cutover outbox adopt` refuses a live owner's */
	if (o->state) {
		char *abs = realpath(co_state_dir(o->state), NULL);

		snprintf(m.state_dir, sizeof m.state_dir, "%s",
			 abs ? abs : co_state_dir(o->state));
		free(abs);
	}
	sf->self = m;
	if ((error = co_fleet_mirror_new(&sf->mirror, o->flags_path, o->flags)) < 0 ||
	    (error = co_fleet_watch_open(&sf->watch, sf->fleet, co_fleet_mirror_apply,
					 sf->mirror)) < 0)
		goto fail;
	/* register with the epoch the watch applies first (bounded: etcd down
	 * registers below with epoch 0 and fails there) */
	co_fleet_watch_wait(sf->watch, 0, 2000);
	fill(sf, &m);
	if ((error = co_fleet_register(&sf->reg, sf->fleet, &m,
				       o->ttl_ms < 1000 ? 1 : (o->ttl_ms + 999) / 1000, fill,
				       sf)) < 0)
		goto fail;
	pthread_mutex_lock(&current_lock);
	current = sf;
	pthread_mutex_unlock(&current_lock);
	*out = sf;
	return 0;
fail:
	co_server_fleet_stop(sf);
	return error;
}

void co_server_fleet_stop(co_server_fleet *sf)
{
	if (!sf)
		return;
	pthread_mutex_lock(&current_lock);
	if (current == sf)
		current = NULL;
	pthread_mutex_unlock(&current_lock);
	co_fleet_unregister(sf->reg);
	co_fleet_watch_close(sf->watch);
	co_fleet_mirror_free(sf->mirror);
	co_fleet_close(sf->fleet);
	pthread_mutex_destroy(&sf->lock);
	free(sf);
}

void co_server_fleet_self(co_fleet_member *out, co_server_fleet *sf)
{
	pthread_mutex_lock(&sf->lock);
	*out = sf->self;
	pthread_mutex_unlock(&sf->lock);
}

int co_server__fleet_commit(const char *path, const co_flags *from, co_flags *to,
			    int kill, int *in_fleet)
{
	char warn[1024];
	int error = 0;

	/* held across the call: stop waits for a change in progress */
	pthread_mutex_lock(&current_lock);
	*in_fleet = current != NULL;
	if (current)
		error = co_fleet_flags_commit_file(current->fleet, path, from, to, kill,
						   warn, sizeof(warn));
	pthread_mutex_unlock(&current_lock);
	if (*in_fleet && error == 0 && warn[0])
		co_log(CO_LOG_WARN, "serve", "%s", warn);
	return error;
}

void co_server__fleet_admin(struct reply *rp, int is_post)
{
	co_fleet_member self;
	void *o = NULL;
	int error;

	if (is_post) {
		co_server__reply_err(rp, 405, "method_not_allowed",
				     "use GET (change the flags with `cutover stage`)", NULL);
		return;
	}
	/* held across the reads: stop waits for an answer in progress */
	pthread_mutex_lock(&current_lock);
	if (!current) {
		pthread_mutex_unlock(&current_lock);
		co_server__reply_err(rp, 404, "not_found",
				     "this serve is not in fleet mode (config fleet.enabled)",
				     NULL);
		return;
	}
	co_server_fleet_self(&self, current);
	error = co_fleet_status_json(&o, current->fleet);
	pthread_mutex_unlock(&current_lock);
	if (error < 0) {
		co_server__reply_code(rp, error, NULL);
		return;
	}
	cJSON_AddStringToObject(o, "self", self.id);
	co_server__reply_json(rp, 200, o);
}
