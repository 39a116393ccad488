/*
 * health.c - the background store probe of health.h.
 *
 * One thread, one round per interval: ping git, ping etcd, each under a
 * short per-call bound (co_store_call_timeout), copy the result and the
 * store's breaker into the shared snapshot, write health.json.  A hung
 * store therefore costs this thread one bound per round and nobody else
 * anything: /healthz and /metrics copy the snapshot.
 *
 * The file is advisory (for `cutover status` in another process): written
 * without fsync, atomically by rename, and a failure to write it is
 * ignored (a full disk must not stop the probe).
 */
#include "health.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct co_health {
	co_store *stores[2];
	int interval_ms, timeout_ms;
	char *file, *tmp;
	pthread_t thread;
	int started;
	pthread_mutex_t lock; /* guards snap and stop */
	pthread_cond_t cv;
	int stop;
	co_health_store snap[2];
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void probe_one(co_health *h, int side)
{
	co_store *s = h->stores[side];
	co_health_store r;
	double t0 = mono_s();
	int prev, rc;

	if (s == NULL)
		return;
	memset(&r, 0, sizeof(r));
	prev = co_store_call_timeout(h->timeout_ms);
	rc = co_store_ping(s);
	co_store_call_timeout(prev);
	r.probed = 1;
	r.up = rc == 0;
	r.checked_ms = wall_ms();
	r.ping_seconds = mono_s() - t0;
	if (rc < 0)
		snprintf(r.error, sizeof(r.error), "%s", co_error_last());
	co_error_clear();
	co_store_breaker_get(&r.breaker, s);
	pthread_mutex_lock(&h->lock);
	r.up_since_ms = !r.up ? 0 : h->snap[side].up ? h->snap[side].up_since_ms : r.checked_ms;
	h->snap[side] = r;
	pthread_mutex_unlock(&h->lock);
}

static cJSON *store_json(const co_health_store *r)
{
	cJSON *o = cJSON_CreateObject(), *b;

	if (o == NULL)
		return NULL;
	cJSON_AddBoolToObject(o, "up", r->up);
	cJSON_AddNumberToObject(o, "checked_at_ms", (double)r->checked_ms);
	cJSON_AddNumberToObject(o, "up_since_ms", (double)r->up_since_ms);
	cJSON_AddNumberToObject(o, "ping_seconds", r->ping_seconds);
	cJSON_AddStringToObject(o, "error", r->error);
	if ((b = cJSON_AddObjectToObject(o, "breaker")) != NULL) {
		cJSON_AddStringToObject(b, "state", co_breaker_state_name(r->breaker.state));
		cJSON_AddNumberToObject(b, "since_ms", (double)r->breaker.since_wall_ms);
		cJSON_AddNumberToObject(b, "next_probe_in_ms",
					(double)r->breaker.next_probe_in_ms);
		cJSON_AddStringToObject(b, "why", r->breaker.why);
		cJSON_AddStringToObject(b, "last_error", r->breaker.last_error);
		cJSON_AddNumberToObject(b, "opened_total", (double)r->breaker.opened_total);
		cJSON_AddNumberToObject(b, "rejected_total",
					(double)r->breaker.rejected_total);
	}
	return o;
}

/* health.json for `cutover status`; errors ignored (advisory file). */
static void write_file(co_health *h)
{
	static const char *names[2] = {"git", "etcd"};
	co_health_store snap[2];
	cJSON *o = cJSON_CreateObject(), *stores;
	char *text = NULL;
	int fd = -1, side;
	size_t len;

	if (h->file == NULL || o == NULL)
		goto done;
	pthread_mutex_lock(&h->lock);
	memcpy(snap, h->snap, sizeof(snap));
	pthread_mutex_unlock(&h->lock);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddNumberToObject(o, "written_at_ms", (double)wall_ms());
	cJSON_AddNumberToObject(o, "interval_ms", h->interval_ms);
	if ((stores = cJSON_AddObjectToObject(o, "stores")) == NULL)
		goto done;
	for (side = 0; side < 2; side++)
		if (snap[side].probed)
			cJSON_AddItemToObject(stores, names[side], store_json(&snap[side]));
	if ((text = cJSON_PrintUnformatted(o)) == NULL)
		goto done;
	len = strlen(text);
	if ((fd = open(h->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		goto done;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		fd = -1;
		unlink(h->tmp);
		goto done;
	}
	close(fd);
	fd = -1;
	if (rename(h->tmp, h->file) != 0)
		unlink(h->tmp);
done:
	free(text);
	cJSON_Delete(o);
}

static void round_once(co_health *h)
{
	probe_one(h, 0);
	probe_one(h, 1);
	write_file(h);
}

static void *health_main(void *arg)
{
	co_health *h = arg;
	struct timespec ts;

	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += h->interval_ms / 1000;
		ts.tv_nsec += (long)(h->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!h->stop && pthread_cond_timedwait(&h->cv, &h->lock, &ts) == 0)
			;
		if (h->stop)
			break;
		pthread_mutex_unlock(&h->lock);
		round_once(h);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

void co_health_stop(co_health *h)
{
	if (h == NULL)
		return;
	if (h->started) {
		pthread_mutex_lock(&h->lock);
		h->stop = 1;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->thread, NULL);
	}
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->lock);
	free(h->file);
	free(h->tmp);
	free(h);
}

int co_health_start(co_health **out, co_store *git, co_store *etcd, int interval_ms,
		    int timeout_ms, const char *state_dir)
{
	co_health *h = calloc(1, sizeof(*h));
	pthread_condattr_t ca;

	if (h == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	h->stores[0] = git;
	h->stores[1] = etcd;
	h->interval_ms = interval_ms > 0 ? interval_ms : CO_HEALTH_INTERVAL_MS;
	h->timeout_ms = timeout_ms > 0 ? timeout_ms : CO_HEALTH_TIMEOUT_MS;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (state_dir) {
		if (asprintf(&h->file, "%s/%s", state_dir, CO_HEALTH_FILE) < 0)
			h->file = NULL;
		if (asprintf(&h->tmp, "%s/.%s.tmp", state_dir, CO_HEALTH_FILE) < 0)
			h->tmp = NULL;
		if (h->file == NULL || h->tmp == NULL) {
			co_health_stop(h);
			return co_error_set(CO_ENOMEM, "out of memory");
		}
	}
	round_once(h);
	if (pthread_create(&h->thread, NULL, health_main, h) != 0) {
		co_health_stop(h);
		return co_error_set(CO_ENOMEM, "health: cannot start the probe thread");
	}
	h->started = 1;
	*out = h;
	return 0;
}

void co_health_get(co_health_store *out, co_health *h, int side)
{
	pthread_mutex_lock(&h->lock);
	*out = h->snap[side & 1];
	pthread_mutex_unlock(&h->lock);
}
