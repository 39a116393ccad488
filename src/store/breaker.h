/*
 * breaker.h - a circuit breaker: stop calling a store that keeps failing.
 *
 * A sick store rarely refuses connections; it accepts them and answers
 * nothing (overload, a stalled disk, a partition, a SIGSTOPped process).
 * Every call then waits out its whole timeout.  The breaker counts calls
 * that failed as unavailable and, after `failures` in a row (or a failure
 * ratio over a window), opens: calls fail at once with CO_EUNAVAIL and a
 * message that says since when and why.  After `probe_ms` one call at a
 * time is let through as a probe (half-open); its success closes the
 * breaker, its failure opens it again with the wait doubled, up to
 * `probe_max_ms`.
 *
 * Pure logic: the caller passes the clock (monotonic ms for decisions,
 * wall-clock ms for what a person reads), so tests drive it without
 * sleeping.  Thread-safe: one mutex per breaker, held for a few
 * assignments.  The transition hook runs outside that mutex.
 */
#ifndef CO_BREAKER_H
#define CO_BREAKER_H

#include <stdint.h>

typedef struct co_breaker co_breaker;

typedef enum {
	CO_BREAKER_CLOSED = 0,
	CO_BREAKER_OPEN = 1,
	CO_BREAKER_HALF_OPEN = 2
} co_breaker_state;

/* "closed", "open", "half_open". */
const char *co_breaker_state_name(co_breaker_state st);

typedef struct co_breaker_opts {
	int failures;	      /* consecutive failures that open it (3) */
	int window_ms;	      /* the failure-ratio window (10000) */
	int window_min_calls; /* calls in a window before its ratio counts (20) */
	double window_ratio;  /* failed/calls in a window that opens it (0.5) */
	int probe_ms;	      /* first wait before a probe (1000) */
	int probe_max_ms;     /* longest wait between probes (2000) */
} co_breaker_opts;

#define CO_BREAKER_OPTS_INIT                                                             \
	{                                                                                \
		3, 10000, 20, 0.5, 1000, 2000                                            \
	}

/* What a breaker is doing, as /metrics and `cutover status` show it. */
typedef struct co_breaker_info {
	co_breaker_state state;
	int64_t since_wall_ms;	   /* wall-clock ms of the last transition (0: never) */
	int64_t next_probe_in_ms;  /* while open: how long until a probe may run */
	int consecutive;	   /* failures in a row now */
	uint64_t calls_total;	   /* calls let through */
	uint64_t failures_total;   /* of those, failed as unavailable */
	uint64_t rejected_total;   /* calls refused at once while open */
	uint64_t opened_total;	   /* times it opened from closed (a failed
				    * probe re-opening it is not counted) */
	uint64_t closed_total;	   /* transitions back to closed */
	uint64_t probes_total;	   /* probes let through (open -> half-open);
				    * with calls_total, counted together */
	char why[256];		   /* why it last opened ("3 failures in a row") */
	char last_error[512];	   /* the last failure's message */
} co_breaker_info;

/*
 * Called after a transition, outside the breaker's lock, from the thread
 * whose call caused it.  `info` is a snapshot taken at the transition.
 */
typedef void (*co_breaker_hook)(void *ctx, const char *name, co_breaker_state from,
				const co_breaker_info *info);

/*
 * A new breaker named `name` ("etcd", "git": used in its messages), with
 * `opts` (NULL: the defaults; zero fields take their default).  Returns
 * NULL when out of memory.  Free with co_breaker_free (NULL is fine).
 */
co_breaker *co_breaker_new(const char *name, const co_breaker_opts *opts);
void co_breaker_free(co_breaker *b);

/* Set the transition hook (NULL: none).  Thread-safe. */
void co_breaker_set_hook(co_breaker *b, co_breaker_hook fn, void *ctx);

/* Clear the hook only if it is still the one set with `ctx`: an owner
 * going away must not take a later owner's hook with it.  Thread-safe. */
void co_breaker_clear_hook(co_breaker *b, void *ctx);

/*
 * Before a call, at monotonic time `now_ms` (wall-clock `wall_ms`).
 * 0: go ahead; *probe says whether this call is the half-open probe (pass
 * it back to co_breaker_leave).  CO_EUNAVAIL: the breaker is open, do not
 * call; the thread's last error says "etcd circuit open since 12:01:03: 3
 * failures in a row; next probe in 0.8 s".
 */
int co_breaker_enter(co_breaker *b, int *probe, int64_t now_ms, int64_t wall_ms);

/*
 * co_breaker_enter() for a health probe (a ping under a short bound, on a
 * thread of its own): an open breaker lets it through as the probe at
 * once, whatever the backoff says, so a store that came back is known to
 * be back within one probe interval, not after up to probe_max.  The
 * backoff still spaces out the probes that ordinary calls make.
 */
int co_breaker_enter_probe(co_breaker *b, int *probe, int64_t now_ms, int64_t wall_ms);

/*
 * After a call that co_breaker_enter() let through: `failed` 1 if it
 * failed as unavailable (the store did not answer), with its message
 * `error` (may be NULL); 0 if the store answered ("not found" and
 * "conflict" are answers); CO_BREAKER_INCONCLUSIVE if the call only ran
 * out of a caller's short bound: a slow store is not a down one, so that
 * neither counts against it nor resets its count (a probe that ends so
 * still failed).
 */
#define CO_BREAKER_INCONCLUSIVE (-1)
void co_breaker_leave(co_breaker *b, int probe, int failed, const char *error,
		      int64_t now_ms, int64_t wall_ms);

/* A snapshot of the breaker at monotonic time `now_ms`. */
void co_breaker_get(co_breaker_info *out, co_breaker *b, int64_t now_ms);

#endif
