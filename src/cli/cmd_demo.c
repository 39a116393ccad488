/*
 * cmd_demo.c - `cutover demo`: the whole migration on a laptop, in under a
 * minute (DESIGN §7, last paragraph).
 *
 * In a fresh temp directory the demo starts its own etcd (the `etcd` of
 * PATH, on a free loopback port, fast election settings), creates a bare
 * git repository with `git init`, imports the embedded sample task board
 * (demo_board.h) into git and backfills etcd.  Then simulated swarms --
 * threads that create, claim, release and complete tasks through the router
 * -- run for a few seconds at each stage, git -> shadow -> 10 -> 50 -> 100.
 * Stages change the flags file exactly as `cutover stage` does (stage.h,
 * co_flags_save) and the router picks the change up through its flags
 * watcher; each forward move passes the go/no-go gate (runs.h) and each
 * stage ends with a reconciliation.  Finally a write straight to etcd,
 * behind the router's back, makes the stores disagree: the next
 * reconciliation fails and trips the kill switch, the router sends every
 * operation to git within milliseconds, a repair from git makes the stores
 * equal again, and the report (HTML with the consistency chart, Markdown)
 * is written to --out.
 *
 * Output is for a human: one section per step, one line per fact, with
 * figures.  Everything the demo starts it stops, and everything it creates
 * in the temp directory it removes (unless --keep), also after an error or
 * SIGINT/SIGTERM; etcd (store/etcd_local.h) runs in its own process group
 * (so ^C reaches only the demo, which then shuts down in order) and dies
 * with the demo even if the demo is killed (PR_SET_PDEATHSIG).  The stack
 * itself (temp dir, etcd, repo, router, the gated stage move) is
 * scratch_stack.h, shared with `cutover drill`.
 */
#include "cli.h"

#include "demo_board.h"
#include "demo_swarms.h"
#include "scratch_stack.h"

#include "../../migrate/board.h"
#include "../../migrate/migrate.h"
#include "../core/audit.h"
#include "../core/error.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "reconcile/reconcile.h"
#include "reconcile/report.h"
#include "router/router.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define U_DEMO                                                                            \
	"cutover demo [--out DIR] [--swarms N] [--seconds-per-stage S] [--keep]"

static const char h_demo[] =
	"usage: " U_DEMO "\n\n"
	"Run the whole migration on an embedded sample, in a temp directory:\n"
	"  1. start a local etcd (the `etcd` in PATH) on a free loopback port and\n"
	"     create a bare git repository;\n"
	"  2. import the sample legacy task board into git, backfill etcd;\n"
	"  3. drive simulated swarms (threads claiming, releasing, completing and\n"
	"     creating tasks through the router) through the stages\n"
	"     git -> shadow -> 10 -> 50 -> 100, each forward move through the\n"
	"     go/no-go gate, with a reconciliation after each stage;\n"
	"  4. write a task straight to etcd, behind the router's back: the next\n"
	"     reconciliation fails and trips the kill switch (automatic rollback),\n"
	"     the router sends everything to git, a repair from git restores\n"
	"     consistency;\n"
	"  5. write the reconciliation report (report.html, report.md) to --out.\n"
	"etcd is stopped and the temp directory removed at the end, also on error\n"
	"or ^C.  No configuration is read: the demo touches nothing outside its\n"
	"temp directory and --out.\n\n"
	"Options:\n"
	"  --out DIR              where the report goes (default ./cutover-demo-report)\n"
	"  --swarms N             simulated swarms, one thread each (default 4, 1..64)\n"
	"  --seconds-per-stage S  traffic per stage in seconds (default 1.5)\n"
	"  --keep                 keep the temp directory (repo, etcd data, state db)\n\n"
	"Exit status: 0 the demo went as planned; 3 a reconciliation failed where it\n"
	"should have passed (or the injected divergence was not caught); 2 etcd or\n"
	"git could not be started; 1 bad usage; 130 interrupted.\n";

#define DEFAULT_OUT "./cutover-demo-report"
#define DEFAULT_SWARMS 4
#define DEFAULT_SECONDS 1.5
#define EXIT_INTERRUPTED 130
#define EXIT_VERDICT 3

/* The task whose status the demo changes in etcd alone. */
#define DIVERGE_ID "P1.3.4"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* ---- small helpers ---- */

static void section(const char *title)
{
	printf("\n== %s\n", title);
	fflush(stdout);
}

/* One fact: "  label         text". */
static void fact(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fact(const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("  %-14s", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	/* Nobody reads us any more (`| head`): stop, and clean up. */
	if (fflush(stdout) != 0 && errno == EPIPE)
		interrupted = 1;
}

/* The sorted latencies `lat` (decider in the low bit) of one decider. */
static void latency_by_decider(const int64_t *lat, size_t n, int etcd)
{
	size_t i, k = 0, m = 0;
	int64_t p50 = 0, p95 = 0;

	for (i = 0; i < n; i++)
		m += (size_t)((lat[i] & 1) == etcd);
	if (m == 0)
		return;
	for (i = 0; i < n; i++) {
		if ((lat[i] & 1) != etcd)
			continue;
		if (k == m / 2)
			p50 = lat[i];
		if (k <= (m * 95) / 100)
			p95 = lat[i];
		k++;
	}
	fact(etcd ? "etcd-decided" : "git-decided", "p50 %.2f ms, p95 %.2f ms (%zu claims)",
	     (double)p50 / 1000.0, (double)p95 / 1000.0, m);
}

/* ---- the demo ---- */

typedef struct demo {
	/* options */
	const char *out_dir;
	int n_swarms;
	int stage_ms;
	int keep;

	co_scratch sc; /* what it started: etcd, repo, state, router */

	co_demo_swarms *swarms;
	co_demo_pool open;

	int64_t divergence_run;
	int unexpected; /* a reconciliation failed that should have passed */
} demo;

/* Print one reconciliation result: counts, consistency, verdict, divergences. */
static void print_run(const co_reconcile_result *res)
{
	const co_run *r = &res->run;
	size_t i;

	fact("reconcile", "run %lld: %lld IDs, %lld equal, %lld missing_in_etcd, "
			  "%lld missing_in_git, %lld mismatch (%lld ms)",
	     (long long)r->id, (long long)r->total, (long long)r->equal,
	     (long long)r->missing_in_etcd, (long long)r->missing_in_git,
	     (long long)r->mismatch, (long long)r->duration_ms);
	fact("consistency", "%.2f%% -> %s (action: %s)", r->consistency * 100.0,
	     co_reconcile_passed(res)		? "PASS"
	     : co_reconcile_pending_drain(res) ? "PENDING_DRAIN"
					       : "FAIL",
	     r->action ? r->action : "none");
	if (r->owed)
		fact("owed", "%lld ID(s) still owed by the outbox (etcd %lld, git %lld)",
		     (long long)r->owed, (long long)r->owed_etcd, (long long)r->owed_git);
	if (res->in_flight)
		fact("in flight", "%lld ID(s) re-checked after the grace period",
		     (long long)res->in_flight);
	for (i = 0; i < res->divergences.n && i < 10; i++) {
		const co_divergence *dv = res->divergences.items[i];

		fact("divergence", "%s %s: %s%s%s", dv->kind, dv->id, dv->cls,
		     dv->fields && dv->fields[0] ? " of " : "", dv->fields ? dv->fields : "");
	}
	if (res->divergences.n > 10)
		fact("", "... and %zu more", res->divergences.n - 10);
	if (res->repaired_put || res->repaired_removed)
		fact("repaired", "%lld written, %lld removed", (long long)res->repaired_put,
		     (long long)res->repaired_removed);
	if (res->warning[0])
		fact("warning", "%s", res->warning);
}

/* One reconciliation; *passed set.  *run_id (may be NULL) gets the run number. */
static int reconcile(demo *d, co_repair_from repair, int *passed, int64_t *run_id)
{
	co_reconcile_result *res = NULL;
	int error;

	if ((error = co_scratch_reconcile(&res, &d->sc, repair, "demo")) < 0)
		return error;
	print_run(res);
	*passed = co_reconcile_passed(res);
	if (run_id)
		*run_id = res->run.id;
	co_reconcile_result_free(res);
	return 0;
}

/* Run the swarms for stage_ms and print what they did. */
static int traffic(demo *d, const char *stage)
{
	co_demo_tally sum;
	int64_t *lat = NULL, elapsed;
	size_t n_lat = 0;
	int error;
	double secs;

	if ((error = co_demo_swarms_run(&sum, &lat, &n_lat, &elapsed, d->swarms, stage,
					d->stage_ms, &interrupted)) < 0)
		return error;
	secs = (double)elapsed / 1e6;
	fact("traffic", "%.1f s, %d swarms: %ld ops (%.0f/s), %ld errors", secs,
	     d->n_swarms, sum.ops, secs > 0 ? (double)sum.ops / secs : 0.0, sum.errors);
	fact("claims", "%ld won, %ld lost to another swarm; %ld completed, %ld handed "
		       "back, %ld tasks created",
	     sum.won, sum.lost, sum.completed, sum.released, sum.created);
	if (sum.primary_git + sum.primary_etcd > 0)
		fact("primaries", "claims decided by git %.0f%%, by etcd %.0f%%",
		     100.0 * (double)sum.primary_git /
			     (double)(sum.primary_git + sum.primary_etcd),
		     100.0 * (double)sum.primary_etcd /
			     (double)(sum.primary_git + sum.primary_etcd));
	if (lat) {
		fact("claim latency", "p50 %.2f ms, p95 %.2f ms, max %.2f ms",
		     (double)lat[n_lat / 2] / 1000.0,
		     (double)lat[(n_lat * 95) / 100 < n_lat ? (n_lat * 95) / 100 : n_lat - 1] /
			     1000.0,
		     (double)lat[n_lat - 1] / 1000.0);
		/* which store decided: etcd's speed arrives with each stage */
		latency_by_decider(lat, n_lat, 0);
		latency_by_decider(lat, n_lat, 1);
	}
	if (sum.errors)
		fact("last error", "%s", sum.last_error);
	free(lat);
	return 0;
}

/*
 * Move to `stage` as `cutover stage` does (scratch_stack.h): go/no-go
 * first, then the flags file saved and audited; the router's watcher
 * picks it up.
 */
static int move_to(demo *d, co_stage stage, int *go)
{
	co_scratch_move m;
	int error;

	*go = 0;
	if ((error = co_scratch_stage(&m, &d->sc, stage, "demo")) < 0)
		return error;
	if (m.gate[0])
		fact("go/no-go", "%s", m.gate);
	if (m.go)
		fact("flags", "%s", m.flags);
	*go = m.go;
	return 0;
}

static int setup(demo *d)
{
	co_scratch_opts so = {"cutover-demo", "demo", NULL, 0, &interrupted};
	co_trigger_cfg triggers = CO_TRIGGER_CFG_INIT;
	int error;

	section("Setup: a local etcd and a bare git repository in a temp directory");
	so.triggers = &triggers; /* live-signal rollback, default thresholds */
	error = co_scratch_open(&d->sc, &so);
	if (d->sc.tmp[0])
		fact("temp dir", "%s", d->sc.tmp);
	if (d->sc.etcd.pid > 0)
		fact("etcd", "pid %ld on %s, ready in %.0f ms (log %s)", (long)d->sc.etcd.pid,
		     d->sc.etcd.endpoint, (double)d->sc.etcd_ready_us / 1000.0,
		     d->sc.etcd.log);
	if (error < 0)
		return error;
	fact("git repo", "%s (bare, branch main)", d->sc.repo);
	fact("state", "%s (outbox, audit, runs); flags %s", d->sc.state_dir,
	     d->sc.flags_path);
	return 0;
}

static int seed(demo *d)
{
	co_migrate_opts mo = CO_MIGRATE_OPTS_INIT;
	co_migrate_stats ms;
	co_board *b = NULL;
	size_t i, n_avail = 0;
	int error;

	section("Seed: import the legacy task board into git");
	if ((error = co_board_parse(&b, co_demo_board, strlen(co_demo_board))) < 0)
		return co_cli_error_prefix(error, "embedded board");
	if (b->n_bad) {
		error = co_error_set(CO_EINVAL, "embedded board line %zu: %s", b->bad[0].line,
				     b->bad[0].reason);
		goto done;
	}
	for (i = 0; i < b->tasks.n; i++) {
		if (b->tasks.items[i]->status != CO_STATUS_AVAILABLE)
			continue;
		n_avail++;
		if ((error = co_demo_pool_add(&d->open, b->tasks.items[i]->id)) < 0)
			goto done;
	}
	fact("board", "%zu tasks in %zu tables, %zu available, 0 bad rows", b->tasks.n,
	     b->n_tables, n_avail);
	co_scratch_migrate_opts(&mo, &d->sc);
	if ((error = co_migrate_import(&ms, &mo, &b->tasks)) < 0)
		goto done;
	fact("import", "%zu written to git in %zu commit(s)", ms.written, ms.batches);
done:
	co_board_free(b);
	return error;
}

static int backfill(demo *d, const char *label)
{
	co_migrate_opts mo = CO_MIGRATE_OPTS_INIT;
	co_migrate_stats ms;
	int error;

	co_scratch_migrate_opts(&mo, &d->sc);
	memset(&ms, 0, sizeof(ms));
	if ((error = co_migrate_backfill(&ms, &mo)) < 0)
		return co_cli_error_prefix(error, "backfill");
	fact(label, "%zu records in git, %zu in etcd; wrote %zu in %zu batch(es), %zu "
		    "already equal; verified %zu/%zu equal",
	     ms.source, ms.target, ms.written, ms.batches, ms.equal, ms.verified_equal,
	     ms.verified_total);
	return 0;
}

static int register_swarms(demo *d)
{
	int i, error = 0;

	for (i = 0; i < d->n_swarms; i++) {
		co_record *s = NULL, *got = NULL;

		if ((error = co_record_new(&s, CO_KIND_SWARM, co_demo_swarm_name(d->swarms, i))) < 0)
			return error;
		s->rev = 1;
		if ((error = co_strv_push(&s->capabilities, "build")) == 0)
			error = co_router_swarm_register(&got, d->sc.router, s);
		co_record_free(s);
		co_record_free(got);
		if (error < 0)
			return co_cli_error_prefix(error, co_demo_swarm_name(d->swarms, i));
	}
	fact("swarms", "%d registered through the router: swarm-1 .. swarm-%d", d->n_swarms,
	     d->n_swarms);
	return 0;
}

static const char *stage_title(co_stage s)
{
	switch (s) {
	case CO_STAGE_GIT:
		return "Stage git: every operation on git alone (the legacy setup)";
	case CO_STAGE_SHADOW:
		return "Stage shadow: git decides, etcd mirrors, reads compared";
	case CO_STAGE_10:
		return "Stage 10: etcd decides for 10% of the IDs, git mirrors";
	case CO_STAGE_50:
		return "Stage 50: etcd decides for 50% of the IDs";
	case CO_STAGE_100:
		return "Stage 100: etcd decides for every ID, git still mirrors";
	default:
		return "Stage";
	}
}

/* Drive the stages; 0 with *ok 1 when every reconciliation passed. */
static int stages(demo *d, int *ok)
{
	static const co_stage order[] = {CO_STAGE_GIT, CO_STAGE_SHADOW, CO_STAGE_10,
					 CO_STAGE_50, CO_STAGE_100};
	size_t i;
	int error, passed, go;

	*ok = 0;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (interrupted)
			return 0;
		section(stage_title(order[i]));
		if ((error = move_to(d, order[i], &go)) < 0)
			return error;
		if (!go)
			return 0;
		if ((error = traffic(d, co_stage_name(order[i]))) < 0)
			return error;
		if (interrupted)
			return 0;
		if (order[i] == CO_STAGE_GIT) {
			/* Nothing mirrors in stage git: etcd fell behind. */
			if ((error = backfill(d, "catch-up")) < 0)
				return error;
		}
		if ((error = reconcile(d, CO_REPAIR_NONE, &passed, NULL)) < 0)
			return error;
		if (!passed) {
			fact("verdict", "the stores disagree: the cutover stops here");
			return 0;
		}
	}
	*ok = 1;
	return 0;
}

static void print_routes(demo *d, const char *const *ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		co_route rt;

		if (co_router_route(&rt, d->sc.router, CO_OP_TASK_CLAIM, ids[i]) < 0)
			continue;
		fact("route", "task_claim %-8s bucket %2d: mode %s, primary %s, secondary "
			      "%s%s",
		     ids[i], rt.bucket, co_mode_name(rt.mode), co_side_name(rt.primary),
		     co_side_name(rt.secondary), rt.kill_switch ? " (kill switch)" : "");
	}
}

/*
 * Write a task into etcd alone, as a stray script or a bug would, and show
 * that the next reconciliation catches it and rolls back by itself.
 */
static int divergence(demo *d, int *ok)
{
	static const char *const probe[] = {"P0.1.3", "P0.2.2", DIVERGE_ID, "P1.1.1"};
	co_record *r = NULL;
	co_flags now;
	co_status old;
	uint64_t gen;
	int64_t t0, run_id = 0;
	int error, passed = 1;

	*ok = 0;
	section("Divergence: a write straight to etcd, behind the router's back");
	print_routes(d, probe, sizeof(probe) / sizeof(probe[0]));
	if ((error = co_store_get(&r, d->sc.etcd_store, CO_KIND_TASK, DIVERGE_ID)) < 0)
		return co_cli_error_prefix(error, "read " DIVERGE_ID " from etcd");
	old = r->status;
	r->status = old == CO_STATUS_FAILED ? CO_STATUS_COMPLETE : CO_STATUS_FAILED;
	free(r->owner);
	r->owner = NULL;
	r->claim_expires_at = 0;
	r->rev++;
	r->updated_at = co_time_now();
	if ((error = co_store_put(d->sc.etcd_store, r)) < 0) {
		co_record_free(r);
		return co_cli_error_prefix(error, "put " DIVERGE_ID " to etcd");
	}
	fact("inject", "task %s: status %s -> %s, rev %lld, put to etcd only (git "
		       "untouched)",
	     DIVERGE_ID, co_status_name(old), co_status_name(r->status), (long long)r->rev);
	co_record_free(r);

	gen = co_flags_watcher_generation(d->sc.fw);
	t0 = co_scratch_mono_us();
	if ((error = reconcile(d, CO_REPAIR_NONE, &passed, &run_id)) < 0)
		return error;
	d->divergence_run = run_id;
	if (passed) {
		fact("verdict", "the injected divergence was NOT caught");
		return 0;
	}
	if (co_flags_watcher_wait(d->sc.fw, gen, 2000) < 0)
		co_flags_watcher_reload(d->sc.fw);
	co_flags_watcher_get(&now, d->sc.fw);
	if (!now.kill_switch) {
		fact("kill switch", "NOT tripped");
		return 0;
	}

	section("Automatic rollback: the kill switch");
	fact("kill switch", "tripped by the reconciler: \"%s\"", now.kill_reason);
	fact("router", "saw it %.0f ms after the run began; every operation now goes to "
		       "git first:",
	     (double)(co_scratch_mono_us() - t0) / 1000.0);
	print_routes(d, probe, sizeof(probe) / sizeof(probe[0]));
	if ((error = traffic(d, "rollback")) < 0)
		return error;
	if (interrupted)
		return 0;

	section("Repair: git is the truth after a rollback; make etcd equal to it");
	if ((error = reconcile(d, CO_REPAIR_FROM_GIT, &passed, NULL)) < 0)
		return error;
	if ((error = reconcile(d, CO_REPAIR_NONE, &passed, NULL)) < 0)
		return error;
	if (!passed) {
		fact("verdict", "still diverged after the repair");
		return 0;
	}
	fact("next", "the kill switch stays on until an operator runs `cutover resume`");
	*ok = 1;
	return 0;
}

static int write_report_file(const char *path, co_report_format fmt, const co_run *run,
			     const co_divergence_list *divs, const co_run_list *hist)
{
	FILE *f;
	int error;

	if ((f = fopen(path, "w")) == NULL)
		return co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	error = co_report_write(f, fmt, run, divs, hist, 0.9999, NULL);
	if (fclose(f) != 0 && error == 0)
		error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	return error;
}

static int report(demo *d)
{
	co_run *run = NULL;
	co_run_list hist = {NULL, 0, 0};
	co_divergence_list divs = {NULL, 0, 0};
	char html[4200], md[4200], js[4200];
	int error;

	section("Report");
	if ((error = co_scratch_mkdirs(d->out_dir)) < 0)
		return error;
	if (d->divergence_run > 0)
		error = co_runs_get(&run, d->sc.st, d->divergence_run);
	else
		error = co_runs_latest(&run, d->sc.st);
	if (error < 0)
		return co_cli_error_prefix(error, "report");
	if ((error = co_runs_divergences(&divs, d->sc.st, run->id)) < 0 ||
	    (error = co_runs_list(&hist, d->sc.st, 100)) < 0)
		goto done;
	snprintf(html, sizeof(html), "%s/report.html", d->out_dir);
	snprintf(md, sizeof(md), "%s/report.md", d->out_dir);
	snprintf(js, sizeof(js), "%s/report.json", d->out_dir);
	if ((error = write_report_file(html, CO_REPORT_HTML, run, &divs, &hist)) < 0 ||
	    (error = write_report_file(md, CO_REPORT_MARKDOWN, run, &divs, &hist)) < 0 ||
	    (error = write_report_file(js, CO_REPORT_JSON, run, &divs, &hist)) < 0)
		goto done;
	fact("run", "%lld (%s), with the history of %zu runs", (long long)run->id,
	     run->verdict ? run->verdict : "?", hist.n);
	fact("html", "%s", html);
	fact("markdown", "%s", md);
	fact("json", "%s", js);
done:
	co_run_free(run);
	co_run_list_clear(&hist);
	co_divergence_list_clear(&divs);
	return error;
}

/* Stop and remove everything; safe after a partial setup. */
static void teardown(demo *d)
{
	char tmp[sizeof(d->sc.tmp)];
	pid_t pid = d->sc.etcd.pid;

	memcpy(tmp, d->sc.tmp, sizeof(tmp));
	co_scratch_close(&d->sc, d->keep);
	co_demo_swarms_free(d->swarms);
	co_demo_pool_clear(&d->open);

	section("Cleanup");
	if (pid > 0)
		fact("etcd", "pid %ld stopped", (long)pid);
	if (tmp[0] && d->keep) {
		fact("temp dir", "kept: %s", tmp);
		fact("", "git --git-dir %s log --oneline | head", d->sc.repo);
	} else if (tmp[0]) {
		fact("temp dir", "%s removed", tmp);
	}
}

static int parse_int(int *out, const char *what, const char *s, int lo, int hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return co_cli_usage_error(U_DEMO, "%s \"%s\": expected a whole number from "
						  "%d to %d",
					  what, s, lo, hi);
	*out = (int)v;
	return 0;
}

int co_cli_demo(int argc, char **argv, co_cli *ctx)
{
	const char *out = DEFAULT_OUT, *swarms = NULL, *secs = NULL, *pos[1];
	int keep = 0;
	co_cli_opt opts[] = {{"out", &out, NULL},
			     {"swarms", &swarms, NULL},
			     {"seconds-per-stage", &secs, NULL},
			     {"keep", NULL, &keep},
			     {NULL, NULL, NULL}};
	struct sigaction sa, ign, old_int, old_term, old_pipe;
	demo d;
	size_t n;
	int error, ok_stages = 0, ok_div = 0;
	double stage_s = DEFAULT_SECONDS;
	int64_t t_start = co_scratch_mono_us();

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_DEMO, h_demo)) != 0)
		return error < 0 ? error : 0;
	memset(&d, 0, sizeof(d));
	d.n_swarms = DEFAULT_SWARMS;
	if (swarms && (error = parse_int(&d.n_swarms, "--swarms", swarms, 1, 64)) < 0)
		return error;
	if (secs) {
		char *end;

		errno = 0;
		stage_s = strtod(secs, &end);
		if (errno || end == secs || *end || !(stage_s >= 0.1 && stage_s <= 600))
			return co_cli_usage_error(U_DEMO, "--seconds-per-stage \"%s\": expected "
							  "seconds from 0.1 to 600",
						  secs);
	}
	if (!out[0])
		return co_cli_usage_error(U_DEMO, "--out needs a directory");
	d.out_dir = out;
	d.stage_ms = (int)(stage_s * 1000.0);
	d.keep = keep;
	co_demo_pool_init(&d.open);

	interrupted = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	/* A closed stdout must not kill us before etcd and the temp dir are gone. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old_pipe);

	printf("cutover demo: git -> shadow -> 10 -> 50 -> 100 with %d simulated swarms, "
	       "%.1f s per stage,\nthen a divergence and the automatic rollback.\n",
	       d.n_swarms, stage_s);
	if ((error = setup(&d)) < 0 || interrupted)
		goto done;
	if ((error = co_demo_swarms_new(&d.swarms, d.n_swarms, d.sc.router, &d.open)) < 0)
		goto done;
	if ((error = seed(&d)) < 0 || interrupted)
		goto done;
	section("Backfill: copy git into etcd");
	if ((error = backfill(&d, "backfill")) < 0 || (error = register_swarms(&d)) < 0 ||
	    interrupted)
		goto done;
	if ((error = stages(&d, &ok_stages)) < 0 || interrupted)
		goto done;
	if (ok_stages && (error = divergence(&d, &ok_div)) < 0)
		goto done;
	if (interrupted)
		goto done;
	error = report(&d);
done:
	if (error < 0)
		fprintf(stderr, "cutover: %s\n", co_error_last());
	teardown(&d);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	if (interrupted) {
		printf("\ninterrupted: everything the demo started is stopped\n");
		return EXIT_INTERRUPTED;
	}
	if (error < 0)
		return co_error_exit_code(error); /* the message is printed above */
	printf("\n%s in %.1f s.\n",
	       ok_stages && ok_div ? "Demo complete: every stage reconciled, the divergence "
				     "was caught and rolled back"
				   : "Demo ended early: see the FAIL above",
	       (double)(co_scratch_mono_us() - t_start) / 1e6);
	return ok_stages && ok_div ? 0 : EXIT_VERDICT;
}
