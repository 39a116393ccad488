/*
 * fleet_gw.c - the JSON and base64 helpers the fleet's files share.  Its
 * calls go straight through an etcd store's gateway transport
 * (co_etcd_store_call: endpoints, failover, kept-alive handles, TLS, auth;
 * the handle's `gw`); the streaming watch is in fleet_watch.c.
 */
#include "router/fleet_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "core/b64.h"
#include "core/error.h"

void co_fleet__deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

const char *co_fleet__str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

int64_t co_fleet__i64(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (cJSON_IsString(v))
		return strtoll(v->valuestring, NULL, 10);
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	return 0;
}

int co_fleet__add_key(cJSON *o, const char *name, const char *key)
{
	char *k = co_b64_encode(key, strlen(key));

	if (!k || !cJSON_AddStringToObject(o, name, k)) {
		free(k);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	free(k);
	return 0;
}
