/*
 * breaker.c - the circuit breaker of breaker.h.
 *
 * Three states.  Closed: calls go through; failures in a row, and the
 * failures of the current window, are counted.  Open: calls are refused at
 * once until the backoff has passed.  Half-open: exactly one call, the
 * probe, is in flight; everyone else is still refused.  The probe's answer
 * decides: success closes (and resets the backoff), failure opens again
 * with the backoff doubled, up to a cap.
 *
 * Only "unavailable" counts as a failure.  A store that says "not found"
 * or "conflict" has answered, and a conflict storm must never open the
 * breaker.  Calls that began before the breaker opened and end after it
 * change only the counters, never the state: the probe alone decides.
 *
 * Not here: what a call is, timeouts, the clock (the caller passes it).
 */
#include "breaker.h"

#include "../core/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct co_breaker {
	pthread_mutex_t lock;
	co_breaker_opts o;
	char name[32];
	co_breaker_hook hook;
	void *hook_ctx;
	/* guarded by lock */
	co_breaker_state state;
	int consecutive;
	int64_t backoff_ms, next_probe_ms;
	int64_t window_start_ms;
	int window_calls, window_failures;
	int64_t since_wall_ms;
	uint64_t calls, failures, rejected, opened, closed, probes;
	char why[256];
	char last_error[512];
};

void co_breaker_clear_hook(co_breaker *b, void *ctx)
{
	pthread_mutex_lock(&b->lock);
	if (b->hook_ctx == ctx) {
		b->hook = NULL;
		b->hook_ctx = NULL;
	}
	pthread_mutex_unlock(&b->lock);
}

const char *co_breaker_state_name(co_breaker_state st)
{
	switch (st) {
	case CO_BREAKER_OPEN:
		return "open";
	case CO_BREAKER_HALF_OPEN:
		return "half_open";
	default:
		return "closed";
	}
}

co_breaker *co_breaker_new(const char *name, const co_breaker_opts *opts)
{
	co_breaker_opts d = CO_BREAKER_OPTS_INIT;
	co_breaker *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->o = d;
	if (opts) {
		if (opts->failures > 0)
			b->o.failures = opts->failures;
		if (opts->window_ms > 0)
			b->o.window_ms = opts->window_ms;
		if (opts->window_min_calls > 0)
			b->o.window_min_calls = opts->window_min_calls;
		if (opts->window_ratio > 0)
			b->o.window_ratio = opts->window_ratio;
		if (opts->probe_ms > 0)
			b->o.probe_ms = opts->probe_ms;
		if (opts->probe_max_ms > 0)
			b->o.probe_max_ms = opts->probe_max_ms;
	}
	if (b->o.probe_max_ms < b->o.probe_ms)
		b->o.probe_max_ms = b->o.probe_ms;
	snprintf(b->name, sizeof(b->name), "%s", name ? name : "store");
	b->backoff_ms = b->o.probe_ms;
	pthread_mutex_init(&b->lock, NULL);
	return b;
}

void co_breaker_free(co_breaker *b)
{
	if (b == NULL)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void co_breaker_set_hook(co_breaker *b, co_breaker_hook fn, void *ctx)
{
	pthread_mutex_lock(&b->lock);
	b->hook = fn;
	b->hook_ctx = ctx;
	pthread_mutex_unlock(&b->lock);
}

static void snapshot_locked(co_breaker_info *out, const co_breaker *b, int64_t now_ms)
{
	memset(out, 0, sizeof(*out));
	out->state = b->state;
	out->since_wall_ms = b->since_wall_ms;
	if (b->state != CO_BREAKER_CLOSED)
		out->next_probe_in_ms =
		    b->next_probe_ms > now_ms ? b->next_probe_ms - now_ms : 0;
	out->consecutive = b->consecutive;
	out->calls_total = b->calls;
	out->failures_total = b->failures;
	out->rejected_total = b->rejected;
	out->opened_total = b->opened;
	out->closed_total = b->closed;
	out->probes_total = b->probes;
	memcpy(out->why, b->why, sizeof(out->why));
	memcpy(out->last_error, b->last_error, sizeof(out->last_error));
}

void co_breaker_get(co_breaker_info *out, co_breaker *b, int64_t now_ms)
{
	pthread_mutex_lock(&b->lock);
	snapshot_locked(out, b, now_ms);
	pthread_mutex_unlock(&b->lock);
}

/* A transition to report once the lock is dropped. */
typedef struct change {
	int happened;
	co_breaker_state from;
	co_breaker_info info;
	co_breaker_hook hook;
	void *ctx;
} change;

static void move_locked(change *c, co_breaker *b, co_breaker_state to, int64_t now_ms,
			int64_t wall_ms)
{
	c->happened = 1;
	c->from = b->state;
	b->state = to;
	b->since_wall_ms = wall_ms;
	if (to == CO_BREAKER_OPEN)
		b->next_probe_ms = now_ms + b->backoff_ms;
	snapshot_locked(&c->info, b, now_ms);
	c->hook = b->hook;
	c->ctx = b->hook_ctx;
}

static void report(const change *c, const co_breaker *b)
{
	if (c->happened && c->hook)
		c->hook(c->ctx, b->name, c->from, &c->info);
}

/* "12:01:03" in local time. */
static void clock_text(char *out, size_t len, int64_t wall_ms)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(out, len, "%H:%M:%S", &tm) == 0)
		snprintf(out, len, "?");
}

static int enter(co_breaker *b, int *probe, int64_t now_ms, int64_t wall_ms, int eager)
{
	char since[16], msg[900];
	change c = {0};
	int64_t wait;

	*probe = 0;
	pthread_mutex_lock(&b->lock);
	if (b->state == CO_BREAKER_CLOSED) {
		b->calls++;
		pthread_mutex_unlock(&b->lock);
		return 0;
	}
	if (b->state == CO_BREAKER_OPEN && (eager || now_ms >= b->next_probe_ms)) {
		move_locked(&c, b, CO_BREAKER_HALF_OPEN, now_ms, wall_ms);
		b->calls++;
		b->probes++;
		*probe = 1;
		pthread_mutex_unlock(&b->lock);
		report(&c, b);
		return 0;
	}
	b->rejected++;
	clock_text(since, sizeof(since), b->since_wall_ms);
	wait = b->next_probe_ms > now_ms ? b->next_probe_ms - now_ms : 0;
	if (b->state == CO_BREAKER_HALF_OPEN)
		snprintf(msg, sizeof(msg), "%s circuit open since %s: %s; a probe is running",
			 b->name, since, b->why);
	else
		snprintf(msg, sizeof(msg),
			 "%s circuit open since %s: %s; next probe in %.1f s", b->name,
			 since, b->why, (double)wait / 1000.0);
	if (b->last_error[0])
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (last error: %s)",
			 b->last_error);
	pthread_mutex_unlock(&b->lock);
	return co_error_set(CO_EUNAVAIL, "%s", msg);
}

int co_breaker_enter(co_breaker *b, int *probe, int64_t now_ms, int64_t wall_ms)
{
	return enter(b, probe, now_ms, wall_ms, 0);
}

int co_breaker_enter_probe(co_breaker *b, int *probe, int64_t now_ms, int64_t wall_ms)
{
	return enter(b, probe, now_ms, wall_ms, 1);
}

void co_breaker_leave(co_breaker *b, int probe, int failed, const char *error,
		      int64_t now_ms, int64_t wall_ms)
{
	change c = {0};

	pthread_mutex_lock(&b->lock);
	if (failed == CO_BREAKER_INCONCLUSIVE) {
		if (!probe) {
			pthread_mutex_unlock(&b->lock);
			return;
		}
		failed = 1;
		snprintf(b->last_error, sizeof(b->last_error), "%s",
			 error && error[0] ? error : "no answer within the bound");
	}
	if (now_ms - b->window_start_ms > b->o.window_ms) {
		b->window_start_ms = now_ms;
		b->window_calls = b->window_failures = 0;
	}
	b->window_calls++;
	if (failed) {
		b->failures++;
		b->consecutive++;
		b->window_failures++;
		snprintf(b->last_error, sizeof(b->last_error), "%s",
			 error && error[0] ? error : "unavailable");
	} else {
		b->consecutive = 0;
	}
	if (probe) {
		if (failed) {
			b->backoff_ms *= 2;
			if (b->backoff_ms > b->o.probe_max_ms)
				b->backoff_ms = b->o.probe_max_ms;
			snprintf(b->why, sizeof(b->why), "%d failures in a row, the probe too",
				 b->consecutive);
			move_locked(&c, b, CO_BREAKER_OPEN, now_ms, wall_ms);
		} else {
			b->backoff_ms = b->o.probe_ms;
			b->closed++;
			b->window_start_ms = now_ms;
			b->window_calls = b->window_failures = 0;
			move_locked(&c, b, CO_BREAKER_CLOSED, now_ms, wall_ms);
		}
	} else if (failed && b->state == CO_BREAKER_CLOSED) {
		int in_a_row = b->consecutive >= b->o.failures;
		int ratio = b->window_calls >= b->o.window_min_calls &&
			    b->window_failures >= b->o.window_ratio * b->window_calls;

		if (in_a_row || ratio) {
			if (in_a_row)
				snprintf(b->why, sizeof(b->why), "%d failures in a row",
					 b->consecutive);
			else
				snprintf(b->why, sizeof(b->why),
					 "%d of %d calls failed within %.0f s",
					 b->window_failures, b->window_calls,
					 (double)b->o.window_ms / 1000.0);
			b->backoff_ms = b->o.probe_ms;
			b->opened++;
			move_locked(&c, b, CO_BREAKER_OPEN, now_ms, wall_ms);
		}
	}
	pthread_mutex_unlock(&b->lock);
	report(&c, b);
}
