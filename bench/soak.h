/*
 * soak.h - what the three files of the soak (bench_soak.c: the run and its
 * verdict; soak_load.c: the workers' HTTP load; soak_check.c: the check of
 * every acknowledged write) share: the workers and their events, and the
 * load's state (soak_load.c's, set by main).  Private to bench_soak, one
 * program.
 */
#ifndef CO_BENCH_SOAK_H
#define CO_BENCH_SOAK_H

#include "core/record.h"
#include "store/store.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HANG_MS 15000	 /* a call slower than this is counted as a hang */

enum { OP_CREATE, OP_CLAIM, OP_RENEW, OP_RELEASE, N_OPS };


/* One acknowledged write: task index (>= 0) or -1 - n for a worker's n-th
 * create; rev, updated_at and claim_expires_at (s) from the answer. */
typedef struct ev {
	int task, worker;
	int64_t rev, at, expires;
	char type; /* 'n' create, 'c' claim, 'w' renew, 'r' release */
} ev;

typedef struct lat {
	double *v;
	size_t n, cap;
} lat;

typedef struct worker {
	int idx;
	CURL *c;
	ev *evs;
	size_t n, cap;
	lat l[N_OPS];
	int creates, lost_claims, unknown, refused, other, hangs, inferred;
	double slowest_ms;
	unsigned char *stuck; /* per task: 1 when a claim was left undecided */
	char last_error[256];
	pthread_t th;
} worker;

typedef enum { RS_OK, RS_CONFLICT, RS_UNKNOWN, RS_REFUSED, RS_OTHER } result;

typedef struct verdicts {
	size_t acked, checked;
	int lost, doubles, stuck_ok, stray;
} verdicts;

/* soak_load.c's, set by bench_soak.c's main before the workers start. */
extern char serve_url[64]; /* serve's URL */
extern int n_tasks, n_workers;
extern atomic_int stop_load; /* 1: workers stop */
extern worker *ws;	     /* n_workers of them */

/* ---- soak_load.c ---- */

extern int create_pct; /* SOAK_CREATE_PCT: creates per 100 ops */

/* One request; on 2xx the answered record into *out (may be NULL, else the
 * caller's).  Counts the outcome and its latency in w. */
result call(worker *w, int op, const char *method, const char *path,
	    const char *body, co_record **out);
/* A pause between retries of an undecided call (a backoff, not a wait). */
void backoff(void);
double ms_since(double t0);
/* A worker's thread: creates and claim cycles until stop_load. */
void *worker_main(void *arg);

/* ---- soak_check.c ---- */

/* Per task, by rev: no claim while another worker held an unexpired one, no
 * rev acknowledged twice, releases by the holder; every acknowledged rev in
 * both stores.  Counts into v; prints each fault found. */
void check(verdicts *v, co_store *g, co_store *e);

#endif
