/*
 * health.c - the background store probe of health.h.
 *
 * One thread per store, one ping per interval (at a fixed rate: a ping
 * that times out does not push the next one back), each under a short
 * per-call bound (co_store_call_timeout); the result and the store's
 * breaker go into the shared snapshot, then health.json.  A hung store
 * costs its own thread one bound per round and nobody else anything:
 * /healthz and /metrics copy the snapshot.  With the defaults (250 ms
 * each) a frozen etcd fails three pings in a row, and so opens its
 * breaker, within about a second even when no request is calling it.
 *
 * The file is advisory (for `cutover status` in another process): written
 * without fsync, atomically by rename, and a failure to write it is
 * ignored (a full disk must not stop the probe).
 */
#include "health.h"
#include "server.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct co_health;

/* One thread per store: a hung etcd must not delay git's probe. */
typedef struct prober {
	struct co_health *h;
	int side;
	pthread_t thread;
	int started;
} prober;

struct co_health {
	co_store *stores[2];
	int interval_ms, timeout_ms;
	char *file, *tmp;
	prober probers[2];
	pthread_mutex_t lock; /* guards snap and stop */
	pthread_cond_t cv;
	int stop;
	co_health_store snap[2];
	pthread_mutex_t file_lock; /* one writer of health.json at a time */
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
	co_store_count_bounded_timeouts(1);
	rc = co_store_ping(s);
	co_store_count_bounded_timeouts(0);
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
	int fd, side;
	size_t len;

	if (h->file == NULL || o == NULL)
		goto done;
	pthread_mutex_lock(&h->file_lock);
	co_health_get(&snap[0], h, 0);
	co_health_get(&snap[1], h, 1);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddNumberToObject(o, "written_at_ms", (double)wall_ms());
	cJSON_AddNumberToObject(o, "interval_ms", h->interval_ms);
	if ((stores = cJSON_AddObjectToObject(o, "stores")) == NULL)
		goto unlock;
	for (side = 0; side < 2; side++)
		if (snap[side].probed)
			cJSON_AddItemToObject(stores, names[side], store_json(&snap[side]));
	if ((text = cJSON_PrintUnformatted(o)) == NULL)
		goto unlock;
	len = strlen(text);
	if ((fd = open(h->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		goto unlock;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		unlink(h->tmp);
		goto unlock;
	}
	close(fd);
	if (rename(h->tmp, h->file) != 0)
		unlink(h->tmp);
unlock:
	pthread_mutex_unlock(&h->file_lock);
done:
	free(text);
	cJSON_Delete(o);
}

static void *prober_main(void *arg)
{
	prober *p = arg;
	co_health *h = p->h;
	struct timespec next, now;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		next.tv_sec += h->interval_ms / 1000;
		next.tv_nsec += (long)(h->interval_ms % 1000) * 1000000L;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		/* a ping that ran late does not make the next ones late */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec ||
		    (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now;
		while (!h->stop && pthread_cond_timedwait(&h->cv, &h->lock, &next) == 0)
			;
		if (h->stop)
			break;
		pthread_mutex_unlock(&h->lock);
		probe_one(h, p->side);
		write_file(h);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

void co_health_stop(co_health *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
	for (int i = 0; i < 2; i++)
		if (h->probers[i].started)
			pthread_join(h->probers[i].thread, NULL);
	pthread_mutex_destroy(&h->file_lock);
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
	pthread_mutex_init(&h->file_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (state_dir) {
		if (asprintf(&h->file, "%s/%s", state_dir, CO_HEALTH_FILE) < 0)
			h->file = NULL;
		/* one temp name per process: two serves may share a state dir */
		if (asprintf(&h->tmp, "%s/.%s.%ld.tmp", state_dir, CO_HEALTH_FILE,
			     (long)getpid()) < 0)
			h->tmp = NULL;
		if (h->file == NULL || h->tmp == NULL) {
			co_health_stop(h);
			return co_error_set(CO_ENOMEM, "out of memory");
		}
	}
	probe_one(h, 0);
	probe_one(h, 1);
	write_file(h);
	for (int i = 0; i < 2; i++) {
		prober *p = &h->probers[i];

		if (h->stores[i] == NULL)
			continue;
		p->h = h;
		p->side = i;
		if (pthread_create(&p->thread, NULL, prober_main, p) != 0) {
			co_health_stop(h);
			return co_error_set(CO_ENOMEM, "health: cannot start a probe thread");
		}
		p->started = 1;
	}
	*out = h;
	return 0;
}

void co_health_get(co_health_store *out, co_health *h, int side)
{
	int64_t age;

	pthread_mutex_lock(&h->lock);
	*out = h->snap[side & 1];
	pthread_mutex_unlock(&h->lock);
	/* A probe that does not come back (libgit2 ignores the bound; a
	 * stalled disk) must not leave its last "up" standing. */
	age = wall_ms() - out->checked_ms;
	if (out->probed && out->up && age > 4LL * h->interval_ms + h->timeout_ms) {
		out->up = 0;
		snprintf(out->error, sizeof(out->error),
			 "no answer to the probe for %.1f s", (double)age / 1000.0);
	}
}

void co_health_json(cJSON *stores, co_health *h)
{
	static const char *names[2] = {"git", "etcd"};
	int64_t now = wall_ms();
	int side;

	for (side = 0; side < 2; side++) {
		co_health_store r;
		cJSON *x, *b;

		if (h->stores[side] == NULL ||
		    (x = cJSON_AddObjectToObject(stores, names[side])) == NULL)
			continue;
		co_health_get(&r, h, side);
		cJSON_AddBoolToObject(x, "up", r.up);
		cJSON_AddNumberToObject(x, "probe_age_ms", (double)(now - r.checked_ms));
		if (r.error[0])
			cJSON_AddStringToObject(x, "error", r.error);
		/* the breaker as it is now, not as the probe saw it */
		co_store_breaker_get(&r.breaker, h->stores[side]);
		if ((b = cJSON_AddObjectToObject(x, "breaker")) == NULL)
			continue;
		cJSON_AddStringToObject(b, "state", co_breaker_state_name(r.breaker.state));
		if (r.breaker.state == CO_BREAKER_CLOSED)
			continue;
		cJSON_AddStringToObject(b, "why", r.breaker.why);
		cJSON_AddNumberToObject(b, "since_ms", (double)r.breaker.since_wall_ms);
		cJSON_AddNumberToObject(b, "next_probe_in_ms",
					(double)r.breaker.next_probe_in_ms);
		cJSON_AddStringToObject(b, "last_error", r.breaker.last_error);
	}
}

int co_health_breaker_metrics(char **buf, size_t *len, size_t *cap, co_store *git,
			      co_store *etcd)
{
	static const struct {
		const char *name, *type, *help;
	} m[3] = {
	    {"cutover_breaker_state", "gauge",
	     "Circuit breaker of a store: 0 closed, 1 open (calls fail at once), 2 "
	     "half-open (one probe in flight)."},
	    {"cutover_breaker_opened_total", "counter",
	     "Times a store's breaker opened from closed."},
	    {"cutover_breaker_rejected_calls_total", "counter",
	     "Calls refused at once by an open breaker, never sent to the store."},
	};
	static const char *names[2] = {"git", "etcd"};
	co_store *stores[2] = {git, etcd};
	co_breaker_info bi[2];
	int i, k, error;

	for (i = 0; i < 2; i++)
		if (stores[i])
			co_store_breaker_get(&bi[i], stores[i]);
	for (k = 0; k < 3; k++) {
		if ((error = co_metrics_appendf(buf, len, cap, "# HELP %s %s\n# TYPE %s %s\n",
						m[k].name, m[k].help, m[k].name,
						m[k].type)) < 0)
			return error;
		for (i = 0; i < 2; i++) {
			unsigned long long v = k == 0   ? (unsigned long long)bi[i].state
					       : k == 1 ? bi[i].opened_total
							: bi[i].rejected_total;

			if (stores[i] &&
			    (error = co_metrics_appendf(buf, len, cap, "%s{store=\"%s\"} %llu\n",
							m[k].name, names[i], v)) < 0)
				return error;
		}
	}
	return 0;
}

int co_health_retry_after(co_store *git, co_store *etcd)
{
	co_store *stores[2] = {git, etcd};
	int64_t wait = 0;
	int i;

	for (i = 0; i < 2; i++) {
		co_breaker_info bi;

		if (stores[i] == NULL)
			continue;
		co_store_breaker_get(&bi, stores[i]);
		if (bi.state != CO_BREAKER_CLOSED && bi.next_probe_in_ms > wait)
			wait = bi.next_probe_in_ms;
	}
	return wait > 1000 ? (int)((wait + 999) / 1000) : 1;
}

int co_health_state_dir_json(cJSON *o, int64_t fsync_in_flight_ms, int stall_ms)
{
	int stalled = fsync_in_flight_ms > 0 && fsync_in_flight_ms >= stall_ms;
	cJSON *d = cJSON_AddObjectToObject(o, "state_dir");

	if (d != NULL) {
		cJSON_AddBoolToObject(d, "stalled", stalled);
		cJSON_AddNumberToObject(d, "fsync_in_flight_ms", (double)fsync_in_flight_ms);
		if (stalled) {
			char msg[96];

			snprintf(msg, sizeof(msg), "state dir stalled: fsync in flight %.1f s",
				 (double)fsync_in_flight_ms / 1000.0);
			cJSON_AddStringToObject(d, "error", msg);
		}
	}
	return stalled;
}
