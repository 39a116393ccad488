/*
 * cmd_drill.c - `cutover drill`: a game day on a scratch stack (issue 14,
 * point 10).
 *
 * On a stack of its own (scratch_stack.h: temp dir, local etcd, bare git
 * repo, state, router with the live-signal triggers on tight drill
 * thresholds) the drill backfills a few tasks, goes shadow (until the git
 * latency baseline is recorded) and then dual 50, each forward move through
 * the go/no-go gate, with worker threads claiming and releasing through the
 * router and every acknowledged write remembered.  Then it injects one
 * fault into etcd -- SIGSTOP held (etcd-stop), SIGKILL (etcd-kill), or
 * SIGSTOP/SIGCONT pulses (latency) --, waits (bounded) for a trigger to
 * pull the kill switch and measures how long that took, restores etcd, lets
 * the outbox drain, reconciles, and checks that every acknowledged write is
 * in both stores and that no claim was won twice.
 *
 * The report (text, or --json; also <out>/drill.json with --out) names the
 * fault, the trigger that fired with the figures it was audited with, the
 * time to trip, the acknowledged writes, lost (0), double winners (0), the
 * reconciliation's verdict and the audit rows of the drill.  The user's
 * configuration and stores are never read or touched.
 */
#include "cli.h"

#include "drill.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/state.h"
#include "flags/flags.h"
#include "flags/watcher.h"
#include "router/router.h"
#include "router/triggers.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define U_DRILL                                                                          \
	"cutover drill [--fault etcd-stop|etcd-kill|latency] [--seconds N] [--keep] "    \
	"[--out DIR] [--json]"

/* Drill thresholds: tight, so that a drill takes seconds. */
#define DRILL_WINDOW_MS 5000
#define DRILL_MIN_SAMPLES 20
#define DRILL_ERROR_RATE 0.05
#define DRILL_LATENCY_RATIO 2.0
/* the highest ratio the triggers take: latency in effect off */
#define DRILL_LATENCY_OFF 1000.0
#define DRILL_HEALTH_GRACE_MS 1000
#define DRILL_OUTBOX_AGE_MS 20000
/* etcd's request timeout: longer than a latency pulse, so a pulse slows
 * operations down without failing them */
#define DRILL_REQUEST_TIMEOUT_MS 2000
/* a latency pulse: etcd stopped 3x the git baseline p95, within these
 * bounds (below the request timeout), then running PULSE_RUN_MS */
#define PULSE_STOP_MIN_MS 700
#define PULSE_STOP_MAX_MS 1000
#define PULSE_RUN_MS 100
/* The baseline is recorded under the same load as the dual 50 traffic
 * it is compared with: with fewer workers (it was 3) git's p95 came out
 * lower than the etcd path's under 6, and the latency drill tripped
 * before its fault about every other run. */
#define BASELINE_WORKERS WORKERS

#define BASELINE_BOUND_MS 40000
#define DRAIN_BOUND_MS 60000
#define TASKS 60
#define CLAIM_TTL 60
#define DEFAULT_SECONDS 1.0
#define EXIT_INTERRUPTED 130
#define EXIT_VERDICT 3

static const char h_drill[] =
    "usage: " U_DRILL "\n\n"
    "A game day: prove that the live-signal triggers roll the cutover back by\n"
    "themselves, and that nothing acknowledged is lost, before it happens for\n"
    "real.  On a scratch stack the drill starts itself (a local etcd, the `etcd`\n"
    "in PATH, on free loopback ports, a bare git repository and a state dir, all\n"
    "in a temp directory) it:\n"
    "  1. creates 60 tasks in git and backfills them into etcd;\n"
    "  2. goes shadow until the git latency baseline is recorded (6 workers),\n"
    "     then dual 50, each forward move through the go/no-go gate (a passing\n"
    "     reconciliation);\n"
    "  3. runs 6 worker threads claiming and releasing through the router, the\n"
    "     triggers on, and remembers every acknowledged write;\n"
    "  4. injects the fault into etcd and waits (at most 30 s) for a trigger to\n"
    "     pull the kill switch, measuring the time to trip;\n"
    "  5. restores etcd, lets the outbox drain, reconciles, and checks every\n"
    "     acknowledged write is in both stores and no claim was won twice.\n"
    "Drill thresholds: window 5 s, min_samples 20, error_rate 5%, latency_ratio\n"
    "2x (armed for --fault latency only), health_grace 1 s, outbox_age 20 s; etcd\n"
    "request timeout 2 s.\n"
    "The drill reads no configuration and never touches the configured stores,\n"
    "state dir or flags file: everything it starts it stops, and it removes its\n"
    "temp directory (unless --keep), also on error or ^C.\n\n"
    "Options:\n"
    "  --fault F     etcd-kill (default): SIGKILL etcd, expect the error_rate\n"
    "                trigger; etcd-stop: SIGSTOP etcd and keep it stopped, expect\n"
    "                health; latency: SIGSTOP/SIGCONT pulses (stopped 3x the git\n"
    "                p95 baseline, 0.7 to 1 s, then 100 ms running), expect\n"
    "                latency\n"
    "  --seconds N   traffic in dual 50 before the fault (default 1, 0.2..600)\n"
    "  --keep        keep the temp directory (repo, etcd data, state db)\n"
    "  --out DIR     also write the report as DIR/drill.json\n"
    "  --json        print the report as one JSON object\n\n"
    "Exit status: 0 a trigger fired and nothing acknowledged was lost (no double\n"
    "winner, the reconciliation passed); 3 otherwise; 2 etcd or git could not be\n"
    "started; 1 bad usage; 130 interrupted.\n";

const co_drill_fault co_drill_faults[FAULT__COUNT] = {
    [FAULT_ETCD_KILL] = {"etcd-kill", CO_TRIGGER_ERROR_RATE, "SIGKILL etcd"},
    [FAULT_ETCD_STOP] = {"etcd-stop", CO_TRIGGER_HEALTH, "SIGSTOP etcd, held"},
    [FAULT_LATENCY] =
	{"latency", CO_TRIGGER_LATENCY,
	 "SIGSTOP/SIGCONT pulses on etcd (stopped 3x the git p95, 100 ms running)"},
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* ---- the workers: claim, release, remember every acknowledged write ---- */

static void task_id(char *buf, size_t len, int t)
{
	snprintf(buf, len, "drill-%03d", t);
}

static void remember(worker *w, int t, int claim, const co_record *r)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 1024;
		acked *v = realloc(w->a, cap * sizeof(*v));

		if (!v) { /* an unremembered ack cannot be checked: say so */
			w->errors++;
			snprintf(w->last_error, sizeof(w->last_error), "out of memory");
			return;
		}
		w->a = v;
		w->cap = cap;
	}
	w->a[w->n++] = (acked){t, claim, r->rev};
}

static void count(worker *w, int rc)
{
	if (rc == 0)
		w->ok++;
	else if (rc == CO_ECONFLICT || rc == CO_ENOTFOUND)
		w->conflicts++; /* another worker won: the store picked one */
	else if (rc == CO_EUNAVAIL)
		w->refused++; /* a store down: refused, never acknowledged */
	else {
		w->errors++;
		snprintf(w->last_error, sizeof(w->last_error), "%s (%s)", co_error_last(),
			 co_error_name(rc));
	}
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	unsigned seed = (unsigned)(0xd1 + 7919 * w->idx);
	char swarm[32], id[32];

	snprintf(swarm, sizeof(swarm), "drill-%d", w->idx + 1);
	while (!atomic_load(w->stop)) {
		int t = (int)(rand_r(&seed) % TASKS), rc;
		co_record *out = NULL;

		task_id(id, sizeof(id), t);
		rc = co_router_claim(&out, w->router, id, swarm, CLAIM_TTL);
		count(w, rc);
		if (rc == 0) {
			remember(w, t, 1, out);
			co_record_free(out);
			out = NULL;
			rc = co_router_release(&out, w->router, id, swarm,
					       CO_STATUS_AVAILABLE);
			count(w, rc);
			if (rc == 0)
				remember(w, t, 0, out);
		}
		co_record_free(out);
	}
	return NULL;
}

/* ---- the drill ---- */

void co_drill_say(const drill *d, const char *label, const char *fmt, ...)
{
	va_list ap;

	if (d->json)
		return;
	printf("  %-14s", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (fflush(stdout) != 0 && errno == EPIPE)
		interrupted = 1;
}

/* Sleep `ms` in slices, returning early on SIGINT/SIGTERM. */
static void nap(int ms)
{
	while (ms > 0 && !interrupted) {
		int slice = ms < 20 ? ms : 20;

		co_scratch_sleep_ms(slice);
		ms -= slice;
	}
}

/* Start n (<= WORKERS) workers. */
static int workers_start(drill *d, int n)
{
	atomic_store(&d->stop, 0);
	d->running = 1; /* workers_stop joins whatever started */
	for (int i = 0; i < n; i++) {
		worker *w = &d->w[i];

		w->idx = i;
		w->router = d->sc.router;
		w->stop = &d->stop;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			return co_error_set(CO_EIO, "cannot start worker thread %d",
					    i + 1);
		w->started = 1;
	}
	return 0;
}

static void workers_stop(drill *d)
{
	atomic_store(&d->stop, 1);
	for (int i = 0; i < WORKERS; i++)
		if (d->w[i].started) {
			pthread_join(d->w[i].thread, NULL);
			d->w[i].started = 0;
		}
	d->running = 0;
}

static void *pulser_main(void *arg)
{
	drill *d = arg;

	while (!atomic_load(&d->pulses_stop)) {
		pid_t pid = d->sc.etcd.pid;

		if (pid > 0 && kill(pid, SIGSTOP) == 0) {
			co_scratch_sleep_ms(d->pulse_stop_ms);
			kill(pid, SIGCONT);
			d->pulses++;
		}
		co_scratch_sleep_ms(PULSE_RUN_MS);
	}
	return NULL;
}

static int kill_switch_on(drill *d)
{
	co_flags fl;

	co_flags_watcher_get(&fl, d->sc.fw);
	if (fl.kill_switch)
		snprintf(d->kill_reason, sizeof(d->kill_reason), "%s", fl.kill_reason);
	return fl.kill_switch;
}

static int reconcile(drill *d, const char *label)
{
	co_reconcile_result *res = NULL;
	int error;

	if ((error = co_scratch_reconcile(&res, &d->sc, CO_REPAIR_NONE, "drill")) < 0)
		return error;
	d->run_id = res->run.id;
	d->passed = co_reconcile_passed(res);
	snprintf(d->verdict, sizeof(d->verdict), "%s",
		 res->run.verdict ? res->run.verdict : "?");
	d->consistency = res->run.consistency;
	d->total = res->run.total;
	d->equal = res->run.equal;
	co_drill_say(d, label, "run %lld: %lld IDs, %lld equal (%.2f%%) -> %s",
		     (long long)d->run_id, (long long)d->total, (long long)d->equal,
		     d->consistency * 100.0, d->verdict);
	co_reconcile_result_free(res);
	return 0;
}

/* Stage through the gate; a refusal is the drill's failure. */
static int stage(drill *d, co_stage s)
{
	co_scratch_move m;
	int error;

	if ((error = co_scratch_stage(&m, &d->sc, s, "drill")) < 0)
		return error;
	if (m.gate[0])
		co_drill_say(d, "go/no-go", "%s", m.gate);
	if (!m.go)
		return co_error_set(CO_ECONFLICT, "stage %s refused by the gate: %s",
				    co_stage_name(s), m.gate);
	co_drill_say(d, "flags", "%s", m.flags);
	return 0;
}

/* Tasks into git, then backfilled into etcd as `cutover migrate` does. */
static int seed(drill *d)
{
	co_migrate_opts mo;
	co_migrate_stats ms;
	char id[32];
	int error;

	for (int t = 0; t < TASKS; t++) {
		co_record *r = NULL, *got = NULL;

		task_id(id, sizeof(id), t);
		if ((error = co_record_new(&r, CO_KIND_TASK, id)) < 0)
			return error;
		r->rev = 1;
		if ((r->type = strdup("drill")) == NULL)
			error = co_error_set(CO_ENOMEM, "out of memory");
		else
			error = co_store_task_create(&got, d->sc.git, r);
		co_record_free(r);
		co_record_free(got);
		if (error < 0)
			return co_cli_error_prefix(error, id);
	}
	co_scratch_migrate_opts(&mo, &d->sc);
	memset(&ms, 0, sizeof(ms));
	if ((error = co_migrate_backfill(&ms, &mo)) < 0)
		return co_cli_error_prefix(error, "backfill");
	co_drill_say(d, "backfill",
		     "%d tasks created in git; %zu written to etcd, verified %zu/%zu "
		     "equal",
		     TASKS, ms.written, ms.verified_equal, ms.verified_total);
	return 0;
}

/* In shadow until the triggers recorded a git baseline for claim and release. */
static int baseline(drill *d)
{
	int64_t base[CO_OP__COUNT], n[CO_OP__COUNT], t0 = co_scratch_mono_us();
	int error;

	if ((error = workers_start(d, BASELINE_WORKERS)) < 0)
		return error;
	for (;;) {
		nap(100);
		if (interrupted)
			break;
		if (co_triggers_baseline_load(base, n, d->sc.state_dir) == 0 &&
		    base[CO_OP_TASK_CLAIM] > 0 && base[CO_OP_TASK_RELEASE] > 0)
			break;
		if (co_scratch_mono_us() - t0 > (int64_t)BASELINE_BOUND_MS * 1000) {
			workers_stop(d);
			return co_error_set(
			    CO_EUNAVAIL,
			    "no git latency baseline after %d s of shadow "
			    "traffic",
			    BASELINE_BOUND_MS / 1000);
		}
	}
	workers_stop(d);
	if (interrupted)
		return 0;
	d->baseline_claim_us = base[CO_OP_TASK_CLAIM];
	d->baseline_release_us = base[CO_OP_TASK_RELEASE];
	co_drill_say(d, "baseline",
		     "git p95: claim %.2f ms, release %.2f ms (recorded in %.1f s)",
		     (double)d->baseline_claim_us / 1000.0,
		     (double)d->baseline_release_us / 1000.0,
		     (double)(co_scratch_mono_us() - t0) / 1e6);
	{
		/* the faster operation is the easier one to see slowed */
		int64_t best = d->baseline_claim_us < d->baseline_release_us
				   ? d->baseline_claim_us
				   : d->baseline_release_us;
		int64_t stop = 3 * best / 1000;

		d->pulse_stop_ms = stop < PULSE_STOP_MIN_MS   ? PULSE_STOP_MIN_MS
				   : stop > PULSE_STOP_MAX_MS ? PULSE_STOP_MAX_MS
							      : (int)stop;
	}
	return 0;
}

static void inject(drill *d)
{
	switch (d->f) {
	case FAULT_ETCD_KILL:
		co_etcd_local_kill(&d->sc.etcd);
		break;
	case FAULT_ETCD_STOP:
		kill(d->sc.etcd.pid, SIGSTOP);
		break;
	case FAULT_LATENCY:
		atomic_store(&d->pulses_stop, 0);
		if (pthread_create(&d->pulser, NULL, pulser_main, d) == 0)
			d->pulsing = 1;
		break;
	case FAULT__COUNT:
		break;
	}
}

static int restore(drill *d)
{
	int error;

	if (d->pulsing) {
		atomic_store(&d->pulses_stop, 1);
		pthread_join(d->pulser, NULL);
		d->pulsing = 0;
	}
	if (d->f == FAULT_ETCD_KILL) {
		if ((error = co_etcd_local_restart(&d->sc.etcd)) < 0)
			return co_cli_error_prefix(error, "restart etcd");
		co_drill_say(d, "restore", "etcd restarted on its data (pid %ld)",
			     (long)d->sc.etcd.pid);
	} else {
		kill(d->sc.etcd.pid, SIGCONT);
		co_drill_say(d, "restore", "etcd continued (SIGCONT%s)",
			     d->f == FAULT_LATENCY ? ", pulses stopped" : "");
	}
	return 0;
}

/* Drain (bounded) until nothing is owed. */
static void drain(drill *d)
{
	int64_t t0 = co_scratch_mono_us(), left = -1;

	while (!interrupted) {
		co_router_drain(d->sc.router, NULL, 1000, &left);
		if (left == 0 ||
		    co_scratch_mono_us() - t0 > (int64_t)DRAIN_BOUND_MS * 1000)
			break;
		nap(100);
	}
	co_error_clear();
	d->outbox_left = left;
	if (left == 0)
		co_drill_say(d, "outbox", "drained in %.1f s, nothing owed",
			     (double)(co_scratch_mono_us() - t0) / 1e6);
	else
		co_drill_say(d, "outbox", "still %lld owed after %d s", (long long)left,
			     DRAIN_BOUND_MS / 1000);
}

static int cmp_acked(const void *a, const void *b)
{
	const acked *x = a, *y = b;

	if (x->task != y->task)
		return x->task < y->task ? -1 : 1;
	if (x->rev != y->rev)
		return x->rev < y->rev ? -1 : 1;
	return y->claim - x->claim;
}

/*
 * Every acknowledged write in both stores (each store's rev of the task at
 * least the acknowledged one), and no two claims acknowledged at the same
 * rev of one task (two stores deciding one claim).
 */
static int audit_acks(drill *d)
{
	acked *all = NULL;
	int64_t git_rev[TASKS], etcd_rev[TASKS];
	size_t n = 0, k;
	char id[32];
	int error;

	for (int i = 0; i < WORKERS; i++)
		n += d->w[i].n;
	if (n && (all = malloc(n * sizeof(*all))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	k = 0;
	for (int i = 0; i < WORKERS; i++) {
		worker *w = &d->w[i];

		if (w->n)
			memcpy(all + k, w->a, w->n * sizeof(*all));
		k += w->n;
		d->ok += w->ok;
		d->conflicts += w->conflicts;
		d->refused += w->refused;
		d->errors += w->errors;
		if (w->last_error[0])
			memcpy(d->last_error, w->last_error, sizeof(d->last_error));
	}
	d->n_acked = n;
	for (int t = 0; t < TASKS; t++) {
		co_record *g = NULL, *e = NULL;

		task_id(id, sizeof(id), t);
		if ((error = co_store_get(&g, d->sc.git, CO_KIND_TASK, id)) < 0 ||
		    (error = co_store_get(&e, d->sc.etcd_store, CO_KIND_TASK, id)) < 0) {
			co_record_free(g);
			free(all);
			return co_cli_error_prefix(error, id);
		}
		git_rev[t] = g->rev;
		etcd_rev[t] = e->rev;
		co_record_free(g);
		co_record_free(e);
	}
	if (n)
		qsort(all, n, sizeof(*all), cmp_acked);
	for (k = 0; k < n; k++) {
		const acked *a = &all[k];

		if (git_rev[a->task] < a->rev || etcd_rev[a->task] < a->rev) {
			if (d->lost++ == 0) {
				task_id(id, sizeof(id), a->task);
				snprintf(
				    d->first_lost, sizeof(d->first_lost),
				    "%s: acknowledged rev %lld, git has %lld, etcd %lld",
				    id, (long long)a->rev, (long long)git_rev[a->task],
				    (long long)etcd_rev[a->task]);
			}
		}
		if (k > 0 && a->claim && all[k - 1].claim && all[k - 1].task == a->task &&
		    all[k - 1].rev == a->rev)
			d->double_winners++;
	}
	free(all);
	co_drill_say(d, "acked writes",
		     "%zu (claims and releases), %zu lost, %zu double winners",
		     d->n_acked, d->lost, d->double_winners);
	if (d->lost)
		co_drill_say(d, "LOST", "%s", d->first_lost);
	co_drill_say(d, "operations",
		     "%ld acknowledged, %ld lost the race to another worker, %ld "
		     "refused (store down), %ld other errors",
		     d->ok, d->conflicts, d->refused, d->errors);
	if (d->errors)
		co_drill_say(d, "last error", "%s", d->last_error);
	return 0;
}

static int run(drill *d)
{
	char lat[64];
	int64_t t0;
	int error;

	co_drill_say(d, "etcd", "pid %ld on %s, ready in %.0f ms", (long)d->sc.etcd.pid,
		     d->sc.etcd.endpoint, (double)d->sc.etcd_ready_us / 1000.0);
	co_drill_say(d, "temp dir", "%s", d->sc.tmp);
	if (d->cfg.latency_ratio < DRILL_LATENCY_OFF)
		snprintf(lat, sizeof(lat), "latency_ratio %.0fx", d->cfg.latency_ratio);
	else
		snprintf(lat, sizeof(lat), "latency off (%.0fx: --fault latency only)",
			 d->cfg.latency_ratio);
	co_drill_say(d, "thresholds",
		     "window %d s, min_samples %d, error_rate %.0f%%, %s, health_grace "
		     "%d s, outbox_age %d s",
		     d->cfg.window_ms / 1000, d->cfg.min_samples,
		     d->cfg.error_rate * 100.0, lat, d->cfg.health_grace_ms / 1000,
		     d->cfg.outbox_age_ms / 1000);
	if ((error = seed(d)) < 0 || (error = reconcile(d, "reconcile")) < 0 ||
	    (error = stage(d, CO_STAGE_SHADOW)) < 0 || (error = baseline(d)) < 0 ||
	    interrupted || (error = reconcile(d, "reconcile")) < 0 ||
	    (error = stage(d, CO_STAGE_50)) < 0)
		return error;

	if ((error = workers_start(d, WORKERS)) < 0)
		return error;
	nap(d->pre_ms);
	co_drill_say(d, "traffic",
		     "%d workers claiming and releasing in dual 50 for %.1f s", WORKERS,
		     (double)d->pre_ms / 1000.0);
	if (kill_switch_on(d)) {
		d->tripped_early = 1;
		co_drill_say(d, "FAIL", "the kill switch tripped before the fault: %s",
			     d->kill_reason);
	} else if (!interrupted) {
		co_drill_say(d, "fault", "%s: %s", co_drill_faults[d->f].name,
			     co_drill_faults[d->f].how);
		if (d->f == FAULT_LATENCY)
			co_drill_say(d, "pulses",
				     "etcd stopped %d ms, then running %d ms",
				     d->pulse_stop_ms, PULSE_RUN_MS);
		t0 = co_scratch_mono_us();
		inject(d);
		while (!interrupted) {
			if (kill_switch_on(d)) {
				d->tripped = 1;
				break;
			}
			if (co_scratch_mono_us() - t0 > (int64_t)TRIP_BOUND_MS * 1000)
				break;
			co_scratch_sleep_ms(5);
		}
		d->trip_ms = (co_scratch_mono_us() - t0) / 1000;
		if (d->tripped)
			nap(300); /* traffic goes on, git-primary now */
	}
	workers_stop(d);
	if (d->tripped || d->tripped_early)
		co_drill_trip_details(d);
	if (d->tripped) {
		co_drill_say(d, "kill switch",
			     "tripped %lld ms after the fault by trigger %s (expected "
			     "%s)",
			     (long long)d->trip_ms, co_trigger_name(d->fired),
			     co_trigger_name(co_drill_faults[d->f].expect));
		co_drill_say(d, "reason", "%s", d->kill_reason);
		co_drill_say(d, "figures", "%s",
			     d->figures[0] ? d->figures : "(no audit row)");
	} else if (!d->tripped_early && !interrupted) {
		co_drill_say(d, "FAIL", "no trigger pulled the kill switch within %d s",
			     TRIP_BOUND_MS / 1000);
	}
	if ((error = restore(d)) < 0 || interrupted)
		return error; /* ^C: no drain, no verdict; the stack is closed */
	drain(d);
	if ((error = reconcile(d, "reconcile")) < 0)
		return error;
	return audit_acks(d);
}

static int parse_fault(fault *out, const char *s)
{
	for (size_t i = 0; i < FAULT__COUNT; i++)
		if (strcmp(s, co_drill_faults[i].name) == 0) {
			*out = (fault)i;
			return 0;
		}
	return co_cli_usage_error(U_DRILL,
				  "--fault \"%s\": expected etcd-stop, etcd-kill or "
				  "latency",
				  s);
}

int co_cli_drill(int argc, char **argv, co_cli *ctx)
{
	const char *fault_s = NULL, *secs = NULL, *out = NULL, *pos[1];
	co_scratch_opts so = {"cutover-drill", "drill", NULL, DRILL_REQUEST_TIMEOUT_MS,
			      &interrupted};
	int keep = 0;
	co_cli_opt opts[] = {{"fault", &fault_s, NULL},
			     {"seconds", &secs, NULL},
			     {"out", &out, NULL},
			     {"keep", NULL, &keep},
			     {NULL, NULL, NULL}};
	struct sigaction sa, ign, old_int, old_term, old_pipe;
	double pre_s = DEFAULT_SECONDS;
	cJSON *rep = NULL;
	drill *d;
	size_t n;
	int error, ok;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_DRILL, h_drill)) !=
	    0)
		return error < 0 ? error : 0;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	d->f = FAULT_ETCD_KILL;
	if (fault_s && (error = parse_fault(&d->f, fault_s)) < 0)
		goto out_free;
	if (secs) {
		char *end;

		errno = 0;
		pre_s = strtod(secs, &end);
		if (errno || end == secs || *end || !(pre_s >= 0.2 && pre_s <= 600)) {
			error = co_cli_usage_error(U_DRILL,
						   "--seconds \"%s\": expected seconds "
						   "from 0.2 to 600",
						   secs);
			goto out_free;
		}
	}
	if (out && !out[0]) {
		error = co_cli_usage_error(U_DRILL, "--out needs a directory");
		goto out_free;
	}
	d->json = ctx->json;
	d->keep = keep;
	d->out_dir = out;
	d->pre_ms = (int)(pre_s * 1000.0);
	{
		co_trigger_cfg c = CO_TRIGGER_CFG_INIT;

		c.window_ms = DRILL_WINDOW_MS;
		c.min_samples = DRILL_MIN_SAMPLES;
		c.error_rate = DRILL_ERROR_RATE;
		/* The latency trigger is armed only where latency is the fault:
		 * an etcd-kill or etcd-stop drill proves error_rate or health,
		 * and a latency trip before the fault (a busy machine) would
		 * leave it proving nothing. */
		c.latency_ratio = d->f == FAULT_LATENCY ? DRILL_LATENCY_RATIO
							: DRILL_LATENCY_OFF;
		c.health_grace_ms = DRILL_HEALTH_GRACE_MS;
		c.outbox_age_ms = DRILL_OUTBOX_AGE_MS;
		d->cfg = c;
	}
	so.triggers = &d->cfg;

	interrupted = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old_pipe);

	if (!d->json)
		printf("cutover drill: fault %s on a scratch stack (the configured "
		       "stores are "
		       "not touched)\n",
		       co_drill_faults[d->f].name);
	if ((error = co_scratch_open(&d->sc, &so)) == 0 && !interrupted)
		error = run(d);
	if (error == 0 && !interrupted) {
		rep = co_drill_report_json(d, !d->json);
		if (!rep)
			error = co_error_set(CO_ENOMEM, "out of memory");
		else if (d->out_dir)
			error = co_drill_write_out(d, rep);
	}
	if (d->running)
		workers_stop(d);
	if (d->pulsing) {
		atomic_store(&d->pulses_stop, 1);
		pthread_join(d->pulser, NULL);
	}
	co_scratch_close(&d->sc, d->keep);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	ok = co_drill_ok(d);
	if (interrupted) {
		cJSON_Delete(rep);
		fprintf(stderr,
			"cutover drill: interrupted; everything it started is stopped\n");
		error = EXIT_INTERRUPTED;
	} else if (error == 0) {
		if (d->json) {
			error = co_cli_print_json(rep); /* frees rep */
			rep = NULL;
		} else {
			printf("\n%s: trigger %s, %zu acknowledged writes, %zu lost, %zu "
			       "double "
			       "winners, reconciliation %s%s\n",
			       ok ? "Drill passed" : "Drill FAILED",
			       co_trigger_name(d->fired), d->n_acked, d->lost,
			       d->double_winners, d->verdict,
			       d->keep ? "" : "; scratch stack removed");
			if (d->keep)
				printf("kept: %s\n", d->sc.tmp);
		}
		cJSON_Delete(rep);
		if (error == 0 && !ok)
			error = EXIT_VERDICT;
	}
	for (int i = 0; i < WORKERS; i++)
		free(d->w[i].a);
out_free:
	free(d);
	return error;
}
