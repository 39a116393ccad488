/*
 * signals.h - the router's sliding window of live signals: for each store
 * (git, etcd) and operation, per-second buckets of how many operations
 * ran, how many failed, and a small fixed latency histogram, so that the
 * triggers (triggers.h) can ask "error rate and p95 over the last N
 * seconds" without keeping every sample.
 *
 * Recording an operation is a clock read, a binary search over the
 * histogram's 72 bounds and three additions under one mutex: cheap enough
 * for every routed operation.  The p95 is computed at snapshot time from
 * the merged buckets, interpolated inside the bucket it falls in (the
 * buckets grow by 2^(1/4), so the estimate is within ~19% of the truth).
 *
 * Thread-safe.  A co_signals is owned by whoever made it (co_signals_free).
 * Not here: what the figures mean (triggers.h).
 */
#ifndef CO_ROUTER_SIGNALS_H
#define CO_ROUTER_SIGNALS_H

#include "flags/flags.h"

#include <stdint.h>

/* Latency histogram buckets: upper bounds 50 us * 2^(i/4), the last open. */
#define CO_SIGNALS_HIST 72
/* Longest window kept, in seconds. */
#define CO_SIGNALS_WINDOW_MAX 3600

typedef struct co_signals co_signals;

/* One (store, operation) over a window. */
typedef struct co_signal_cell {
	int64_t count;	/* operations that ended */
	int64_t errors; /* of those, failed (co_signals_is_failure) */
	uint32_t hist[CO_SIGNALS_HIST];
} co_signal_cell;

/* A window's figures: cell[0] git, cell[1] etcd; per co_op. */
typedef struct co_signal_snapshot {
	int window_s; /* seconds merged */
	co_signal_cell cell[2][CO_OP__COUNT];
} co_signal_snapshot;

/*
 * A window of `window_s` seconds (1..CO_SIGNALS_WINDOW_MAX).  CO_EINVAL
 * out of range, CO_ENOMEM.
 */
int co_signals_new(co_signals **out, int window_s);
void co_signals_free(co_signals *s);

/*
 * 1 if an operation's result `error` counts against its store: it could
 * not be served (CO_EUNAVAIL, CO_EIO, CO_ENOMEM, CO_ERETRY).  A lost claim,
 * a missing record or a bad request is an answer, not a failure.
 */
int co_signals_is_failure(int error);

/*
 * Record one operation on `side` (CO_SIDE_GIT / CO_SIDE_ETCD; others are
 * ignored) that ended with `error` after `latency_us`.  Never fails.
 */
void co_signals_record(co_signals *s, co_side side, co_op op, int error,
		       int64_t latency_us);

/* As co_signals_record at monotonic second `now_s` (tests drive the clock). */
void co_signals_record_at(co_signals *s, int64_t now_s, co_side side, co_op op, int error,
			  int64_t latency_us);

/* The window ending now (the current second included). */
void co_signals_snapshot(co_signal_snapshot *out, co_signals *s);
void co_signals_snapshot_at(co_signal_snapshot *out, co_signals *s, int64_t now_s);

/* Seconds on the monotonic clock (what _at takes). */
int64_t co_signals_now_s(void);

/* The p95 of a cell in microseconds (0 when it holds no operation). */
int64_t co_signal_p95_us(const co_signal_cell *c);

/* Add `b` into `a` (e.g. every operation of a store). */
void co_signal_cell_add(co_signal_cell *a, const co_signal_cell *b);

#endif
