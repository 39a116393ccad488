/*
 * store_guard.c - what stands around every call a store makes to its
 * backend: the circuit breaker's enter and leave, and the per-thread
 * bounds of store.h (co_store_call_timeout, co_store_last_call_refused,
 * co_store_count_bounded_timeouts), its fence (co_store_fence) and its
 * write hook (co_store_on_write).
 *
 * The idea: a call's outcome is told to the breaker in one place, with
 * the rules of what counts.  Only a store that did not answer (unavailable,
 * I/O) is a failure; a call that only ran out of its caller's short bound
 * is inconclusive (a slow store is not a down one), unless the thread is
 * a health probe; and the caller always gets its own call's message back,
 * whatever a transition's hook wrote meanwhile.
 *
 * Not here: the breaker's states (breaker.c), which calls are wrapped
 * (store.c), timeouts on the wire (the backends read co_store__call_timeout).
 */
#include "store_backend.h"

#include "../core/error.h"
#include "breaker.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local int call_timeout_ms;
static _Thread_local int last_refused;	/* the thread's last call never left */
static _Thread_local int bound_ran_out; /* the last call hit the caller's bound */
static _Thread_local int bound_counts;	/* this thread is a health probe */
static _Thread_local const char *fence_key; /* co_store_fence */
static _Thread_local int64_t fence_epoch, fenced_at;
static _Thread_local co_store_write_hook write_hook; /* co_store_on_write */
static _Thread_local void *write_hook_arg;

void co_store_on_write(co_store_write_hook fn, void *arg)
{
	write_hook = fn;
	write_hook_arg = fn ? arg : NULL;
}

void co_store__about_to_write(void)
{
	if (write_hook)
		write_hook(write_hook_arg);
}

void co_store_fence(const char *key, int64_t epoch)
{
	fence_key = key && epoch > 0 ? key : NULL;
	fence_epoch = fence_key ? epoch : 0;
}

int64_t co_store_fenced_at(void)
{
	return fenced_at;
}

int co_store__fence(const char **key, int64_t *epoch)
{
	if (!fence_key)
		return 0;
	*key = fence_key;
	*epoch = fence_epoch;
	return 1;
}

void co_store__fenced(int64_t now)
{
	fenced_at = now;
}

void co_store__bound_ran_out(void)
{
	bound_ran_out = 1;
}

void co_store_count_bounded_timeouts(int on)
{
	bound_counts = on;
}

int co_store_last_call_refused(void)
{
	return last_refused;
}

int co_store_call_timeout(int ms)
{
	int prev = call_timeout_ms;

	call_timeout_ms = ms > 0 ? ms : 0;
	return prev;
}

int co_store__call_timeout(void)
{
	return call_timeout_ms;
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t co_store__mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int co_store__guard_begin(co_breaker *b, int *probe)
{
	int error = co_breaker_enter(b, probe, clock_ms(CLOCK_MONOTONIC),
				     clock_ms(CLOCK_REALTIME));

	last_refused = error != 0;
	bound_ran_out = 0;
	return error;
}

int co_store__guard_begin_probe(co_breaker *b, int *probe)
{
	int error = co_breaker_enter_probe(b, probe, clock_ms(CLOCK_MONOTONIC),
					   clock_ms(CLOCK_REALTIME));

	last_refused = error != 0;
	bound_ran_out = 0;
	return error;
}

int co_store__is_health_probe(void)
{
	return bound_counts;
}

int co_store__guard_end(co_breaker *b, int probe, int error)
{
	int failed = error == CO_EUNAVAIL || error == CO_EIO;
	char *msg = NULL;

	/* A mirror's 250 ms running out on a loaded store says it is slow,
	 * not down (a reconciliation under load opened the breaker over a
	 * healthy etcd that way): only a health probe's bound counts. */
	if (failed && bound_ran_out && !bound_counts)
		failed = CO_BREAKER_INCONCLUSIVE;

	/* A transition's hook (an audit row) may overwrite this thread's last
	 * error: the caller still gets the message of its own call. */
	if (error < 0)
		msg = strdup(co_error_last());
	co_breaker_leave(b, probe, failed, failed ? msg : NULL, clock_ms(CLOCK_MONOTONIC),
			 clock_ms(CLOCK_REALTIME));
	if (error < 0) {
		co_error_set(error, "%s", msg ? msg : "out of memory");
		free(msg);
	}
	return error;
}
