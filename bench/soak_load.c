/*
 * soak_load.c - the soak's load (bench_soak.c): each worker's HTTP calls
 * to serve, and its loop of creates and claim, renew, release cycles, each
 * call retried until its outcome is decided; every acknowledged write is
 * noted as an event for soak_check.c.
 */
#include "bench_util.h"
#include "soak.h"

#include "harness/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TTL 600		 /* a claim's TTL: longer than any hold */
#define DECIDE_MS 120000 /* bound on settling a renew or a release */

/* The load's state (soak.h), set by main before the workers start. */
char serve_url[64];
int n_tasks, n_workers;
atomic_int stop_load;
worker *ws;

/* ---- HTTP ---- */

/* One request; on 2xx the answered record into *out (may be NULL). */
result call(worker *w, int op, const char *method, const char *path,
	    const char *body, co_record **out)
{
	co_test_resp r;
	double t0 = co_bench_now_us(), ms;
	long st = co_test_http_on(w->c, &r, serve_url, method, path, body,
				  body ? strlen(body) : 0, NULL);
	result res;

	ms = (co_bench_now_us() - t0) / 1e3;
	if (ms > w->slowest_ms)
		w->slowest_ms = ms;
	if (ms > HANG_MS)
		w->hangs++;
	if (st >= 200 && st < 300) {
		res = RS_OK;
		if (out && co_record_from_json(out, r.body, r.len) < 0)
			res = RS_OTHER;
		if (w->l[op].n == w->l[op].cap) {
			size_t cap = w->l[op].cap ? 2 * w->l[op].cap : 4096;
			double *v = realloc(w->l[op].v, cap * sizeof(double));

			if (v) {
				w->l[op].v = v;
				w->l[op].cap = cap;
			}
		}
		if (w->l[op].n < w->l[op].cap)
			w->l[op].v[w->l[op].n++] = ms * 1e3;
	} else if (st == 409)
		res = RS_CONFLICT;
	else if (st == 429)
		res = RS_REFUSED; /* refused before anything ran */
	else if (st < 0 || st >= 500)
		res = RS_UNKNOWN;
	else
		res = RS_OTHER;
	if (res == RS_UNKNOWN)
		w->unknown++;
	if (res == RS_REFUSED)
		w->refused++;
	if (res == RS_OTHER) {
		w->other++;
		snprintf(w->last_error, sizeof(w->last_error), "%s %s: %ld %.150s",
			 method, path, st, r.body);
	}
	free(r.body);
	return res;
}

/* A pause between retries of an undecided call (a backoff, not a wait). */
void backoff(void)
{
	struct timespec p = {0, 50 * 1000000L};

	nanosleep(&p, NULL);
}

static void note(worker *w, int task, const co_record *r, char type)
{
	ev e = {task, w->idx, r->rev, r->updated_at, r->claim_expires_at, type};

	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 8192;
		ev *v = realloc(w->evs, cap * sizeof(ev));

		if (v == NULL)
			return;
		w->evs = v;
		w->cap = cap;
	}
	w->evs[w->n++] = e;
}

double ms_since(double t0)
{
	return (co_bench_now_us() - t0) / 1e3;
}

/* ---- the workers ---- */

static void create_one(worker *w)
{
	char body[128];
	co_record *out = NULL;
	result res;
	int k = w->creates++;

	/* A create of an identical record succeeds: retrying is safe. */
	snprintf(body, sizeof(body), "{\"id\":\"n-%d-%d\",\"type\":\"build\"}", w->idx,
		 k);
	do {
		co_record_free(out);
		out = NULL;
		if ((res = call(w, OP_CREATE, "POST", "/v1/tasks", body, &out)) !=
			RS_OK &&
		    res != RS_OTHER && res != RS_CONFLICT)
			backoff();
	} while ((res == RS_UNKNOWN || res == RS_REFUSED) && !atomic_load(&stop_load));
	if (res == RS_OK)
		note(w, -1 - k, out, 'n');
	else if (res == RS_CONFLICT) {
		w->other++;
		snprintf(w->last_error, sizeof(w->last_error), "create n-%d-%d: 409",
			 w->idx, k);
	}
	co_record_free(out);
}

/* Renew (type 'w') or release ('r') task t held since rev *held, until
 * decided.  0 when acknowledged (or inferred), -1 otherwise. */
static int settle(worker *w, int t, char type, int64_t *held)
{
	char path[96], body[96];
	double t0 = co_bench_now_us();
	int unknown = 0;

	snprintf(path, sizeof(path), "/v1/tasks/s-%d/%s", t,
		 type == 'w' ? "renew" : "release");
	if (type == 'w')
		snprintf(body, sizeof(body), "{\"swarm\":\"w-%d\",\"ttl\":%d}", w->idx,
			 TTL);
	else
		snprintf(body, sizeof(body), "{\"swarm\":\"w-%d\"}", w->idx);
	while (ms_since(t0) < DECIDE_MS) {
		co_record *out = NULL;
		result res = call(w, type == 'w' ? OP_RENEW : OP_RELEASE, "POST", path,
				  body, &out);

		if (res == RS_OK) {
			note(w, t, out, type);
			*held = out->rev;
			co_record_free(out);
			return 0;
		}
		co_record_free(out);
		if (res == RS_CONFLICT && unknown && type == 'r') {
			/* An earlier attempt was applied (see the head comment). */
			co_record r = {0};

			r.rev = *held + 1;
			note(w, t, &r, 'r');
			w->inferred++;
			return 0;
		}
		if (res == RS_CONFLICT || res == RS_OTHER) {
			w->other++;
			snprintf(w->last_error, sizeof(w->last_error),
				 "%s of s-%d held since rev %lld: refused", path, t,
				 (long long)*held);
			return -1;
		}
		unknown |= res == RS_UNKNOWN;
		backoff();
	}
	w->other++;
	snprintf(w->last_error, sizeof(w->last_error),
		 "%s of s-%d held since rev %lld undecided after %d s", path, t,
		 (long long)*held, DECIDE_MS / 1000);
	printf("w-%d: %s\n", w->idx, w->last_error);
	fflush(stdout);
	if (type == 'r') {
		/* Perhaps applied, at the next rev: who holds it is unknown. */
		co_record r = {0};

		r.rev = *held + 1;
		note(w, t, &r, 'u');
	}
	return -1;
}

static void claim_cycle(worker *w, int t)
{
	char path[96], body[96];
	co_record *out = NULL;
	result res;

	snprintf(path, sizeof(path), "/v1/tasks/s-%d/claim", t);
	snprintf(body, sizeof(body), "{\"swarm\":\"w-%d\",\"ttl\":%d}", w->idx, TTL);
	/* An undecided claim is claimed again: if it was applied, the task is
	 * this worker's and claiming it again wins. */
	for (;;) {
		co_record_free(out);
		out = NULL;
		res = call(w, OP_CLAIM, "POST", path, body, &out);
		if (res != RS_UNKNOWN && res != RS_REFUSED)
			break;
		w->stuck[t] |= res == RS_UNKNOWN;
		if (atomic_load(&stop_load))
			break;
		backoff();
	}
	if (res == RS_OK) {
		int64_t held = out->rev;

		w->stuck[t] = 0;
		note(w, t, out, 'c');
		if (settle(w, t, 'w', &held) == 0)
			settle(w, t, 'r', &held);
	} else if (res == RS_CONFLICT) {
		w->stuck[t] = 0; /* someone else holds it: ours was not applied */
		w->lost_claims++;
	}
	co_record_free(out);
}

int create_pct = 10; /* SOAK_CREATE_PCT: creates per 100 ops */

void *worker_main(void *arg)
{
	worker *w = arg;
	unsigned seed = (unsigned)w->idx * 7919u + 17;

	while (!atomic_load(&stop_load)) {
		if ((int)(rand_r(&seed) % 100) < create_pct)
			create_one(w);
		else
			claim_cycle(w, (int)(rand_r(&seed) % (unsigned)n_tasks));
	}
	return NULL;
}
