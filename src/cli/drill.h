/*
 * drill.h - what the two files of `cutover drill` share (cmd_drill.c runs
 * the drill, drill_report.c reports it).  Internal to the command; not a
 * library interface.  A drill and everything in it is owned by the
 * command's thread; the workers only write their own `worker`.
 */
#ifndef CO_CLI_DRILL_H
#define CO_CLI_DRILL_H

#include "scratch_stack.h"

#include "flags/flags.h"
#include "router/triggers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TRIP_BOUND_MS 30000 /* the longest the drill waits for a trip */
#define WORKERS 6	    /* in dual 50; fewer record the baseline */

typedef enum fault {
	FAULT_ETCD_KILL,
	FAULT_ETCD_STOP,
	FAULT_LATENCY,
	FAULT__COUNT
} fault;

typedef struct co_drill_fault {
	const char *name;	/* --fault */
	co_trigger_kind expect; /* the trigger it should fire first */
	const char *how;	/* what is done to etcd */
} co_drill_fault;

extern const co_drill_fault co_drill_faults[FAULT__COUNT];

typedef struct acked {
	int task;
	int claim; /* 1: a claim, 0: a release */
	int64_t rev;
} acked;

typedef struct worker {
	pthread_t thread;
	int started, idx;
	co_router *router;
	atomic_int *stop;
	acked *a;
	size_t n, cap;
	long ok, conflicts, refused, errors;
	char last_error[256];
} worker;

typedef struct drill {
	fault f;
	int json, keep, pre_ms;
	const char *out_dir;
	co_scratch sc;
	co_trigger_cfg cfg;
	worker w[WORKERS];
	atomic_int stop;
	int running;

	/* the pulses of the latency fault */
	pthread_t pulser;
	int pulsing;
	atomic_int pulses_stop;
	int pulses, pulse_stop_ms;

	/* what happened */
	int tripped_early; /* the kill switch was on before the fault */
	int tripped;
	co_trigger_kind fired;
	char kill_reason[CO_FLAGS_REASON_MAX + 1];
	char figures[1024];
	int64_t trip_ms, baseline_claim_us, baseline_release_us;
	size_t n_acked, lost, double_winners;
	char first_lost[160];
	long ok, conflicts, refused, errors;
	char last_error[256];
	int64_t outbox_left;
	int64_t run_id;
	char verdict[32];
	double consistency;
	int64_t total, equal;
	int passed;
} drill;

/* One progress line ("  label   text") on stdout in text mode. */
void co_drill_say(const drill *d, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Which trigger fired (from kill_reason) and the figures of the trip's
 * audit row, into d->fired and d->figures.
 */
void co_drill_trip_details(drill *d);

/* 1 if the drill passed: tripped after the fault, nothing lost, no double
 * winner, the outbox drained, the last reconciliation passed. */
int co_drill_ok(const drill *d);

/*
 * The report as a cJSON object (the caller owns it; NULL when out of
 * memory); with print_audit, the audit rows are also printed as text.
 */
struct cJSON *co_drill_report_json(drill *d, int print_audit);

/* The report into <d->out_dir>/drill.json.  CO_EIO naming the file, CO_ENOMEM. */
int co_drill_write_out(drill *d, struct cJSON *o);

#endif
