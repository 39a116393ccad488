/*
 * fleet_private.h - what the files of the fleet (fleet.c, fleet_gw.c)
 * share: the handle, with the etcd store whose gateway transport it uses
 * (endpoints, failover, kept-alive handles, TLS, auth), and JSON helpers.
 */
#ifndef CO_ROUTER_FLEET_PRIVATE_H
#define CO_ROUTER_FLEET_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "router/fleet.h"
#include "store/etcd_store.h"

struct co_fleet {
	co_store *gw; /* an etcd store (no cache): its transport only */
	char *prefix;
	char *flags_key; /* <prefix>flags */
};

/* CLOCK_REALTIME now + ms, for pthread_cond_timedwait. */
void co_fleet__deadline(struct timespec *ts, int ms);


/* A string field (int64s come as strings): "" when absent. */
const char *co_fleet__str(const cJSON *o, const char *name);

/* An int64 field printed as a string or a number; 0 when absent. */
int64_t co_fleet__i64(const cJSON *o, const char *name);

/* The flags and epoch of a range answer's kv (NULL: absent, the defaults). */
int co_fleet__flags_from_kv(co_flags *out, int64_t *epoch, const co_fleet *f,
			    const cJSON *kv);

/* A member from its JSON object (missing fields empty). */
void co_fleet__member_from_json(co_fleet_member *m, const cJSON *o);

/* Add "key" (base64) to o.  0, or CO_ENOMEM. */
int co_fleet__add_key(cJSON *o, const char *name, const char *key);

#endif
