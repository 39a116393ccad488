/*
 * router_bench.h - what the files of bench_router share (one program):
 * the stores, flags and helpers set up once (router_util.c), and the claim
 * path's breakdown and floor (router_breakdown.c) that bench_router.c
 * runs beside its other figures.  Private to bench_router.
 */
#ifndef CO_BENCH_ROUTER_H
#define CO_BENCH_ROUTER_H

#include "bench_util.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "store/store.h"

#include <stddef.h>

/* ---- router_util.c: set up by bench_router.c's main ---- */

extern co_test_etcd etcd;
extern char repo[256], flags_dir[256];
extern char flags_path[320];
extern co_store *es, *gs;
extern co_flags_watcher *fw;

/* /proc/loadavg's three figures, in a static buffer. */
const char *loadavg(void);
/* N fresh tasks "<tag><i>" created in etcd directly (setup, untimed);
 * -1 (printed) when one cannot be. */
int create_tasks(const char *tag, size_t n);
/* The flags file at stage etcd, kill switch `kill`; co_flags_save's error. */
int save_flags(int kill);
/* One line of p50/p95/p99 ratios a / b. */
void ratio_line(const char *what, co_bench_stats a, co_bench_stats b);

/* ---- router_breakdown.c: 0, or -1 with the failure printed ---- */

/* The router's claim path in etcd mode taken apart, its pieces timed. */
int breakdown(size_t n);
/* The floor: the bare claim with only the durability issue 3 asks for. */
int floor_run(size_t n);

#endif
