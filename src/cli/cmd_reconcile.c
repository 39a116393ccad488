/*
 * cmd_reconcile.c - `cutover reconcile`: prove both stores agree (DESIGN §5).
 *
 * One run, or one every DURATION until interrupted.  Before each run the
 * outbox is drained through the router, so that writes the router already
 * owes a store are not mistaken for divergences; what stays pending is
 * treated as in flight by the reconciler.  The verdict is the exit status:
 * 0 pass, 3 fail (the "conflict" status of DESIGN §7: the stores disagree),
 * 5 pending_drain (nothing diverged, but the outbox still owes acknowledged
 * writes: not a pass, so that `cutover reconcile && cutover stage 50` does
 * not move on it), 2 when a store or the state database cannot be reached,
 * 1 bad usage.
 *
 * With --repair FROM the run diagnoses, makes the other store equal to FROM,
 * then runs again to verify; the exit status is the verifying run's.
 *
 * Progress goes to stderr: a bar redrawn in place on a terminal, one plain
 * line per phase otherwise.  The result goes to stdout (text, or the JSON
 * report of DESIGN §5 with --json).
 *
 * co_cli_reconcile_once() is the same run for another command: `cutover
 * stage --wait-drain` runs a fresh one once the outbox has drained.
 */
#include "cli.h"

#include "../core/error.h"
#include "../core/webhook.h"
#include "../core/state.h"
#include "flags/watcher.h"
#include "reconcile/reconcile.h"
#include "reconcile/report.h"
#include "router/router.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define U_RECONCILE                                                                      \
	"cutover reconcile [--every DURATION] [--repair git|etcd] [--no-rollback] "      \
	"[--grace DURATION]"

/* The exit status of a failing verdict (DESIGN §7's "conflict"). */
#define EXIT_VERDICT_FAIL 3

/* The exit status of pending_drain: none of DESIGN §7's, on purpose. */
#define EXIT_VERDICT_PENDING_DRAIN 5

/* How long the drain before a run may take: under live traffic the outbox
 * never empties, and what is left is treated as in flight anyway. */
#define DRAIN_BUDGET_MS 2000

static const char h_reconcile[] =
    "usage: " U_RECONCILE "\n\n"
    "Snapshot both stores, classify every record ID as equal, missing_in_etcd,\n"
    "missing_in_git or mismatch (naming the differing fields), and record the run\n"
    "and its divergences in the state database (see `cutover report`).  The outbox\n"
    "is drained first; IDs with writes in flight (pending in the outbox, or changed\n"
    "during the run) are re-checked after the grace period before they count.\n\n"
    "The run fails when consistency (equal IDs / all IDs) is below\n"
    "reconcile.min_consistency (default 0.9999) or mismatches exceed\n"
    "reconcile.max_mismatch_ratio (default 0.001) of all IDs.  A failing run trips\n"
    "the kill switch with the reason \"reconcile run N: ...\" and records the trip\n"
    "in the audit trail.\n\n"
    "An ID that still differs at the last re-check because the outbox owes it an\n"
    "acknowledged write (a record or delete not yet applied, or an intent older\n"
    "than the 15 s in-flight window) is counted apart as owed, by store, with the\n"
    "oldest entry's age and the IDs (\"owed to etcd: 3 (outbox, oldest 4.1 s): T1,\n"
    "T7, T9\").  A run whose only differences are owed gets the verdict\n"
    "pending_drain: it does not trip the kill switch (nothing diverged; the writes\n"
    "are in the durable outbox) and it is not a pass for the go/no-go gate.  Run\n"
    "again once the outbox drains (`cutover status` shows its depth), or let\n"
    "`cutover stage N` wait for it (--wait-drain).  A divergence that fails the\n"
    "run fails it whatever is owed.\n\n"
    "Options:\n"
    "  --every DURATION   run again every DURATION (30s, 5m, 1h) until interrupted\n"
    "  --repair git|etcd  that store is the truth: make the other equal to it,\n"
    "                     deletions included, then run again to verify (a repairing\n"
    "                     run does not trip the kill switch)\n"
    "  --no-rollback      report a failing verdict but do not trip the kill switch\n"
    "  --grace DURATION   wait before re-checking in-flight IDs (default\n"
    "                     reconcile.grace, 2s)\n"
    "  --json             print the run as the JSON report of `cutover report`\n\n"
    "Exit status: 0 pass; 3 fail (the stores disagree); 5 pending_drain (no\n"
    "divergence, but acknowledged writes are still owed in the outbox: not a\n"
    "pass); 1 bad usage; 2 a store or the state database is unavailable.  With\n"
    "--every, the status of the last run; with --repair, of the verifying run.\n\n"
    "Examples:\n"
    "  cutover reconcile && cutover stage 50   # moves only on a pass\n"
    "  cutover reconcile --no-rollback --json | jq .consistency\n"
    "  cutover reconcile --every 5m\n"
    "  cutover reconcile --repair git\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ---- progress ---- */

typedef struct progress_state {
	int tty;
	char phase[32];
} progress_state;

static void on_progress(void *ctx, const char *phase, size_t done, size_t total)
{
	progress_state *p = ctx;

	if (!p->tty) {
		/* Plain: one line when a phase starts. */
		if (strcmp(p->phase, phase) != 0)
			fprintf(stderr, "reconcile: %s\n", phase);
	} else if (total > 0) {
		int width = 30, fill = (int)((double)done / (double)total * width), i;

		fprintf(stderr, "\r\033[K%-14s [", phase);
		for (i = 0; i < width; i++)
			fputc(i < fill ? '#' : ' ', stderr);
		fprintf(stderr, "] %zu/%zu", done, total);
	} else if (done > 0) {
		fprintf(stderr, "\r\033[K%-14s %zu records...", phase, done);
	} else {
		fprintf(stderr, "\r\033[K%-14s ...", phase);
	}
	snprintf(p->phase, sizeof(p->phase), "%s", phase);
	fflush(stderr);
}

static void progress_end(progress_state *p)
{
	if (p->tty && p->phase[0])
		fputs("\r\033[K", stderr);
	p->phase[0] = '\0';
}

/* ---- drain ---- */

static int drain(void *ctx)
{
	int64_t left = 0;

	return co_router_drain(ctx, NULL, DRAIN_BUDGET_MS, &left);
}

/* ---- output ---- */

static int print_result(co_cli *ctx, const co_reconcile_result *res)
{
	/* The config was loaded to run; without it, the default policy. */
	const co_redact *rd = ctx->config ? ctx->config->redact : NULL;
	if (res->warning[0])
		fprintf(stderr, "cutover: warning: %s\n", res->warning);
	if (ctx->json)
		return co_report_write(stdout, CO_REPORT_JSON, &res->run,
				       &res->divergences, NULL, 0, rd);
	co_report_write(stdout, CO_REPORT_TEXT, &res->run, &res->divergences, NULL, 0, rd);
	if (res->in_flight)
		printf("  in flight: %lld re-checked (%lld still changing, counted as "
		       "found; %lld owed by the outbox)\n",
		       (long long)res->in_flight, (long long)res->unsettled,
		       (long long)res->run.owed);
	if (co_reconcile_pending_drain(res))
		printf("  pending_drain: nothing diverged, but the outbox still owes "
		       "acknowledged writes; not a pass (run again once it drains, or "
		       "`cutover stage N` waits for it)\n");
	if (res->repaired_put || res->repaired_removed)
		printf("  repaired: %lld written, %lld removed\n",
		       (long long)res->repaired_put, (long long)res->repaired_removed);
	if (res->reason[0])
		printf("  %s\n", res->reason);
	if (res->run.action && strcmp(res->run.action, "kill_switch") == 0)
		printf("  kill switch tripped: every operation now routes as shadow (git "
		       "primary)\n");
	return fflush(stdout) == 0 ? 0 : co_error_set(CO_EIO, "writing stdout failed");
}

/* The exit status of a completed run's verdict. */
static int verdict_status(const co_reconcile_result *res)
{
	if (co_reconcile_passed(res))
		return 0;
	return co_reconcile_pending_drain(res) ? EXIT_VERDICT_PENDING_DRAIN
					       : EXIT_VERDICT_FAIL;
}

/* A run as the configuration describes it, over cr's stores and state. */
static void opts_from_config(co_reconcile_opts *ro, const co_config *c, co_cli_router *cr,
			     progress_state *prog)
{
	ro->git = cr->git;
	ro->etcd = cr->etcd;
	ro->state = cr->state;
	ro->flags_path = c->flags_path;
	ro->min_consistency = c->reconcile_min_consistency;
	ro->max_mismatch_ratio = c->reconcile_max_mismatch_ratio;
	ro->grace_ms = c->reconcile_grace_ms;
	ro->drain = drain;
	ro->drain_ctx = cr->router;
	ro->progress = on_progress;
	ro->progress_ctx = prog;
	ro->who = "reconcile";
	ro->redact = c->redact;
	prog->tty = isatty(2);
}

static int reconcile_one(co_reconcile_result **out, co_cli *ctx, co_cli_router *cr,
			 const char *who, int no_rollback)
{
	co_reconcile_opts ro = CO_RECONCILE_OPTS_INIT;
	progress_state prog = {0};
	const co_config *c;
	int error;

	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	opts_from_config(&ro, c, cr, &prog);
	if (who)
		ro.who = who;
	if (no_rollback)
		ro.no_rollback = 1;
	error = co_reconcile_run(out, &ro);
	progress_end(&prog);
	return error;
}

int co_cli_reconcile_once(co_reconcile_result **out, co_cli *ctx, co_cli_router *cr,
			  const char *who)
{
	return reconcile_one(out, ctx, cr, who, 0);
}

int co_cli_reconcile_check(co_reconcile_result **out, co_cli *ctx, co_cli_router *cr,
			   const char *who)
{
	return reconcile_one(out, ctx, cr, who, 1);
}

/* Sleep up to ms, in slices, returning early when a signal asked to stop. */
static void wait_interval(int ms)
{
	while (ms > 0 && !stop_requested) {
		int slice = ms < 200 ? ms : 200;
		struct timespec ts = {0, (long)slice * 1000000L};

		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

int co_cli_reconcile(int argc, char **argv, co_cli *ctx)
{
	const char *every = NULL, *repair = NULL, *grace = NULL, *pos[1];
	int no_rollback = 0;
	co_cli_opt opts[] = {{"every", &every, NULL},
			     {"repair", &repair, NULL},
			     {"grace", &grace, NULL},
			     {"no-rollback", NULL, &no_rollback},
			     {NULL, NULL, NULL}};
	co_reconcile_opts ro = CO_RECONCILE_OPTS_INIT;
	const co_config *c;
	co_cli_router *cr = NULL;
	co_reconcile_result *res = NULL;
	progress_state prog = {0};
	struct sigaction sa, old_int, old_term;
	int every_ms = 0, grace_ms = -1, error, status = 0, signals = 0;
	co_webhook_sender *hooks = NULL;
	size_t n;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_RECONCILE,
				  h_reconcile)) != 0)
		return error < 0 ? error : 0;
	if (every &&
	    ((error = co_config_parse_duration(&every_ms, every)) < 0 || every_ms <= 0))
		return co_cli_usage_error(U_RECONCILE,
					  "--every \"%s\": expected a duration "
					  "such as 30s or 5m",
					  every);
	if (grace && (error = co_config_parse_duration(&grace_ms, grace)) < 0)
		return co_cli_usage_error(U_RECONCILE,
					  "--grace \"%s\": expected a duration "
					  "such as 500ms or 2s",
					  grace);
	if (repair && (error = co_reconcile_parse_repair(&ro.repair, repair)) < 0)
		return co_cli_usage_error(U_RECONCILE, "%s", co_error_last());
	if (repair && every)
		return co_cli_usage_error(U_RECONCILE,
					  "--repair is a one-shot: not with --every");

	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_cli_open_router(&cr, ctx)) < 0)
		goto done;
	opts_from_config(&ro, c, cr, &prog);
	if (grace_ms >= 0)
		ro.grace_ms = grace_ms;
	ro.no_rollback = no_rollback;

	/* A loop lives long: its events (a trip, a failing run) go out as
	 * they happen, as serve's do, not only when it is stopped. */
	if (every && c->n_webhooks &&
	    (error = co_webhook_sender_start(&hooks, cr->state, c)) < 0)
		goto done;
	if (every) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		stop_requested = 0;
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		signals = 1;
	}
	do {
		error = co_reconcile_run(&res, &ro);
		progress_end(&prog);
		if (error < 0) {
			if (!every)
				goto done;
			/* A loop outlives one unreachable store: say so, go on. */
			fprintf(stderr, "cutover: %s\n", co_error_last());
			status = co_error_exit_code(error);
		} else {
			if ((error = print_result(ctx, res)) < 0)
				goto done;
			status = verdict_status(res);
			if (ro.repair != CO_REPAIR_NONE) {
				/* Verify: a plain run over the repaired stores. */
				co_reconcile_result_free(res);
				res = NULL;
				ro.repair = CO_REPAIR_NONE;
				if ((error = co_reconcile_run(&res, &ro)) < 0)
					goto done;
				progress_end(&prog);
				if ((error = print_result(ctx, res)) < 0)
					goto done;
				status = verdict_status(res);
			}
			co_reconcile_result_free(res);
			res = NULL;
		}
		if (every)
			wait_interval(every_ms);
	} while (every && !stop_requested);
	error = status;
done:
	progress_end(&prog);
	co_reconcile_result_free(res);
	co_webhook_sender_stop(hooks);
	co_cli_router_close(cr, 0);
	if (signals) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	return error;
}
