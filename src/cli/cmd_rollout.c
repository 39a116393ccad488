/*
 * cmd_rollout.c - `cutover rollout start|plan|status|pause|resume|abort`:
 * the guarded rollout an operator starts and walks away from (issue 14
 * point 2).
 *
 * `start` writes the rollout's state (flags/rollout.h) and returns; a
 * running `cutover serve` drives it (a tick a second), so it survives the
 * CLI exiting.  With --foreground this process drives it until it ends.
 * Each step changes the stage through the go/no-go gate and its
 * pre-switch checks, soaks, then analyses; a failed analysis rolls back to
 * the last safe stage, or pauses with --on-fail pause.  One rollout at a
 * time: a second `start` is refused naming the first.
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/state.h"
#include "flags/rollout.h"
#include "flags/stage.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define U_START                                                                          \
	"cutover rollout start [--steps LIST] [--soak DURATION] [--window SPEC]\n"       \
	"                      [--on-fail rollback|pause] [--reason TEXT] "              \
	"[--foreground]"
#define U_PLAN "cutover rollout plan [--steps LIST] [--soak DURATION] [--window SPEC]"
#define U_ROLLOUT "cutover rollout start|plan|status|pause|resume|abort ..."

static const char h_rollout[] =
    "usage: " U_ROLLOUT "\n\n"
    "A guarded rollout walks the stages on its own: at each step it changes the\n"
    "stage through the go/no-go gate (with its pre-switch checks: stores healthy,\n"
    "etcd leader and no alarm, outbox within bounds, and the way back to git\n"
    "open), soaks, then analyses: a reconciliation that passed within the soak\n"
    "(it runs one if none did), the kill switch never pulled, shadow mismatches\n"
    "and the outbox within the gate's bounds.  A pass advances; a failure rolls\n"
    "back to the last safe stage and ends the rollout (or, with --on-fail pause,\n"
    "stays and pauses).  The kill switch pulled by anyone or anything fails it.\n\n"
    "  " U_START "\n"
    "      --steps LIST   stages in order (default shadow,10,50,100,etcd, from\n"
    "                     the current stage on)\n"
    "      --soak D       how long each step soaks (default 10m; 30s, 2h ...)\n"
    "      --window SPEC  take steps only then: \"Mon-Fri 09:00-17:00 UTC\"\n"
    "      --on-fail X    rollback (default) or pause when an analysis fails\n"
    "      --foreground   drive it from this process until it ends (else a\n"
    "                     running `cutover serve` drives it)\n"
    "  " U_PLAN "\n"
    "      print the whole schedule; changes nothing\n"
    "  cutover rollout status [--json]   step, phase, soak left, last analysis\n"
    "  cutover rollout drive             drive the current rollout from this\n"
    "      process until it ends (when no serve does, or its driver died)\n"
    "  cutover rollout pause|resume|abort [--reason TEXT]\n"
    "      abort rolls back to the last safe stage; resume restarts the soak\n\n"
    "Examples:\n"
    "  cutover rollout plan --soak 30m\n"
    "  cutover rollout start --soak 30m --window 'Mon-Fri 09:00-17:00 UTC'\n"
    "  cutover rollout status\n\n"
    "Exit status: 0 done, 1 bad input, 2 state unavailable, 3 refused (another\n"
    "rollout going, nothing to pause or resume) or, in the foreground, the\n"
    "rollout failed or was aborted.\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int64_t left_ms(const co_rollout *r, int64_t now)
{
	int64_t left = r->soak_ms - (now - r->soak_started_ms);

	return r->phase == CO_RO_SOAKING && left > 0 ? left : 0;
}

static int print_status(co_cli *ctx, const co_rollout *r)
{
	int64_t now = co_state_now_ms();
	size_t i;

	if (ctx->json)
		return co_cli_print_json(co_rollout_status_json(r, now));
	printf("rollout %lld: %s, step %zu of %zu (stage %s)\n", (long long)r->id,
	       co_rollout_phase_name(r->phase), r->step + 1, r->n_steps,
	       co_stage_name(r->steps[r->step]));
	printf("steps:");
	for (i = 0; i < r->n_steps; i++)
		printf(" %s%s", co_stage_name(r->steps[i]), i == r->step ? "*" : "");
	printf("\n");
	if (r->phase == CO_RO_SOAKING)
		printf("soak: %lld s left of %lld s\n",
		       (long long)(left_ms(r, now) / 1000),
		       (long long)(r->soak_ms / 1000));
	if (r->window.set)
		printf("window: %s%s\n", r->window.text,
		       r->phase == CO_RO_WAITING ? " (waiting for it)" : "");
	printf("on a failed analysis: %s\n",
	       r->on_fail == CO_ON_FAIL_PAUSE ? "pause" : "roll back");
	if (r->driver[0])
		printf("driven by: %s\n", r->driver);
	if (r->analysis[0])
		printf("last: %s\n", r->analysis);
	return 0;
}

/* The options `start` and `plan` share, parsed into r. */
static int build(co_rollout *r, co_cli *ctx, const char *steps, const char *soak,
		 const char *window, const char *on_fail, const char *usage)
{
	const co_config *c;
	co_flags f;
	int ms, error;

	memset(r, 0, sizeof(*r));
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_flags_load(&f, c->flags_path)) < 0)
		return error;
	r->initial = co_stage_of(&f);
	if (r->initial == CO_STAGE_CUSTOM)
		return co_error_set(
		    CO_EINVAL, "rollout: the flags are not at a stage (some operation "
			       "has its own setting): `cutover stage STAGE` first");
	if ((error = co_rollout_parse_steps(r, steps, r->initial)) < 0)
		return error;
	r->soak_ms = CO_ROLLOUT_DEFAULT_SOAK_MS;
	if (soak) {
		if (co_config_parse_duration(&ms, soak) < 0 || ms <= 0)
			return co_cli_usage_error(usage,
						  "--soak \"%s\": expected a duration "
						  "(30s, 10m, 2h)",
						  soak);
		r->soak_ms = ms;
	}
	if ((error = co_window_parse(&r->window, window)) < 0)
		return error;
	if (on_fail && strcmp(on_fail, "pause") == 0)
		r->on_fail = CO_ON_FAIL_PAUSE;
	else if (on_fail && strcmp(on_fail, "rollback") != 0)
		return co_cli_usage_error(usage, "--on-fail \"%s\": rollback or pause",
					  on_fail);
	return 0;
}

static int rollout_plan(int argc, char **argv, co_cli *ctx)
{
	const char *steps = NULL, *soak = NULL, *window = NULL, *on_fail = NULL;
	co_cli_opt opts[] = {{"steps", &steps, NULL},
			     {"soak", &soak, NULL},
			     {"window", &window, NULL},
			     {"on-fail", &on_fail, NULL},
			     {NULL, NULL, NULL}};
	char plan[4096];
	co_rollout r;
	size_t n;
	int error;

	if ((error = co_cli_parse(NULL, 0, &n, ctx, argc, argv, opts, U_PLAN,
				  h_rollout)) != 0)
		return error < 0 ? error : 0;
	if ((error = build(&r, ctx, steps, soak, window, on_fail, U_PLAN)) < 0)
		return error;
	co_rollout_plan(plan, sizeof(plan), &r);
	printf("rollout plan %s\n", plan);
	return 0;
}

/* Drive the rollout from this process until it ends (or SIGINT/SIGTERM). */
static int foreground(co_cli *ctx, co_state *st)
{
	co_cli_router *cr = NULL;
	co_rollout r;
	const co_config *c;
	char said[2048];
	int active = 1, error;

	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_cli_open_router(&cr, ctx)) < 0)
		return error;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (active && !interrupted) {
		struct timespec ts = {0, 200 * 1000000L};

		if ((error = co_cli_rollout_tick(&active, said, sizeof(said), ctx, cr,
						 st)) < 0)
			break;
		if (said[0]) {
			printf("rollout: %s\n", said);
			fflush(stdout);
		}
		if (active)
			nanosleep(&ts, NULL); /* the soak's clock: nothing to wait on */
	}
	co_cli_router_close(cr, CO_CLI_DRAIN_MS);
	if (error < 0)
		return error;
	if (interrupted) {
		fprintf(stderr,
			"cutover: rollout left running: `cutover serve` or another "
			"`rollout start --foreground` can drive it on\n");
		return 0;
	}
	if ((error = co_rollout_load(&r, c->state_dir)) < 0)
		return error;
	if (r.phase == CO_RO_DONE)
		return 0;
	if (r.phase == CO_RO_PAUSED)
		return co_error_set(CO_ECONFLICT, "rollout %lld paused: %s",
				    (long long)r.id, r.analysis);
	return co_error_set(CO_ECONFLICT, "rollout %lld %s: %s", (long long)r.id,
			    co_rollout_phase_name(r.phase), r.analysis);
}

static int rollout_start(int argc, char **argv, co_cli *ctx)
{
	const char *steps = NULL, *soak = NULL, *window = NULL, *on_fail = NULL,
		   *reason = NULL;
	int fg = 0, plan = 0;
	co_cli_opt opts[] = {{"steps", &steps, NULL},	{"soak", &soak, NULL},
			     {"window", &window, NULL}, {"on-fail", &on_fail, NULL},
			     {"reason", &reason, NULL}, {"foreground", NULL, &fg},
			     {"plan", NULL, &plan},	{NULL, NULL, NULL}};
	const co_config *c;
	co_state *st = NULL;
	co_rollout r, old;
	char detail[4096];
	size_t n;
	int error, lock = -1;

	if ((error = co_cli_parse(NULL, 0, &n, ctx, argc, argv, opts, U_START,
				  h_rollout)) != 0)
		return error < 0 ? error : 0;
	if (plan)
		return rollout_plan(argc, argv, ctx);
	if ((error = build(&r, ctx, steps, soak, window, on_fail, U_START)) < 0 ||
	    (error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_state_open(&st, c->state_dir)) < 0 ||
	    (error = lock = co_rollout_lock(c->state_dir)) < 0)
		goto done;
	error = co_rollout_load(&old, c->state_dir);
	if (error == 0 && co_rollout_active(old.phase)) {
		error = co_error_set(CO_ECONFLICT,
				     "rollout %lld is already %s at step %zu of %zu "
				     "(stage %s): one at a time; `cutover rollout abort` "
				     "first",
				     (long long)old.id, co_rollout_phase_name(old.phase),
				     old.step + 1, old.n_steps,
				     co_stage_name(old.steps[old.step]));
		goto done;
	}
	if (error < 0 && error != CO_ENOTFOUND)
		goto done;
	co_error_clear();
	r.id = co_state_now_ms();
	r.phase = CO_RO_STARTING;
	r.updated_ms = r.id;
	snprintf(r.who, sizeof(r.who), "%s", co_cli_who());
	snprintf(r.reason, sizeof(r.reason), "%s", reason ? reason : "");
	if ((error = co_rollout_save(&r, c->state_dir)) < 0)
		goto done;
	co_rollout_plan(detail, sizeof(detail), &r);
	co_audit_change_add(st, co_cli_who(), "rollout start", detail, reason);
	co_error_clear();
	co_rollout_unlock(lock);
	lock = -1;
	if (ctx->json) {
		error = print_status(ctx, &r);
	} else {
		printf("rollout %lld started %s\n", (long long)r.id, detail);
		if (!fg)
			printf("a running `cutover serve` drives it; follow it with "
			       "`cutover "
			       "rollout status`\n");
	}
	fflush(stdout);
	if (error == 0 && fg)
		error = foreground(ctx, st);
done:
	co_rollout_unlock(lock);
	co_state_close(st);
	return error;
}

static int rollout_status(int argc, char **argv, co_cli *ctx)
{
	co_cli_opt opts[] = {{NULL, NULL, NULL}};
	const co_config *c;
	co_rollout r;
	size_t n;
	int error;

	if ((error = co_cli_parse(NULL, 0, &n, ctx, argc, argv, opts,
				  "cutover rollout status", h_rollout)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if ((error = co_rollout_load(&r, c->state_dir)) == CO_ENOTFOUND) {
		co_error_clear();
		if (ctx->json)
			return co_cli_print_json(co_rollout_status_json(NULL, 0));
		else
			printf("no rollout: start one with `cutover rollout start`\n");
		return 0;
	}
	return error < 0 ? error : print_status(ctx, &r);
}

static int rollout_drive(int argc, char **argv, co_cli *ctx)
{
	co_cli_opt opts[] = {{NULL, NULL, NULL}};
	const co_config *c;
	co_state *st = NULL;
	co_rollout r;
	size_t n;
	int error;

	if ((error = co_cli_parse(NULL, 0, &n, ctx, argc, argv, opts,
				  "cutover rollout drive", h_rollout)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if ((error = co_rollout_load(&r, c->state_dir)) == CO_ENOTFOUND ||
	    (error == 0 && !co_rollout_active(r.phase)))
		return co_error_set(CO_ECONFLICT, "no rollout going: nothing to drive");
	if (error < 0 || (error = co_state_open(&st, c->state_dir)) < 0)
		return error;
	error = foreground(ctx, st);
	co_state_close(st);
	return error;
}

/* pause, resume, abort: a change of phase under the lock, audited. */
static int rollout_change(int argc, char **argv, co_cli *ctx, const char *what)
{
	const char *reason = NULL;
	co_cli_opt opts[] = {{"reason", &reason, NULL}, {NULL, NULL, NULL}};
	const co_config *c;
	co_state *st = NULL;
	co_rollout r;
	char detail[1400], why[1024];
	size_t n;
	int error, lock = -1;

	if ((error = co_cli_parse(NULL, 0, &n, ctx, argc, argv, opts,
				  "cutover rollout pause|resume|abort [--reason TEXT]",
				  h_rollout)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_state_open(&st, c->state_dir)) < 0 ||
	    (error = lock = co_rollout_lock(c->state_dir)) < 0 ||
	    (error = co_rollout_load(&r, c->state_dir)) < 0) {
		if (error == CO_ENOTFOUND)
			error = co_error_set(CO_ECONFLICT, "no rollout to %s", what);
		goto done;
	}
	if (!co_rollout_active(r.phase)) {
		error =
		    co_error_set(CO_ECONFLICT, "rollout %lld is %s: nothing to %s",
				 (long long)r.id, co_rollout_phase_name(r.phase), what);
		goto done;
	}
	if (strcmp(what, "pause") == 0) {
		if (r.phase == CO_RO_PAUSED) {
			error =
			    co_error_set(CO_ECONFLICT, "rollout %lld is already paused",
					 (long long)r.id);
			goto done;
		}
		r.phase = CO_RO_PAUSED;
		snprintf(r.analysis, sizeof(r.analysis), "paused by %s%s%s", co_cli_who(),
			 reason ? ": " : "", reason ? reason : "");
	} else if (strcmp(what, "resume") == 0) {
		if (r.phase != CO_RO_PAUSED) {
			error =
			    co_error_set(CO_ECONFLICT, "rollout %lld is not paused (%s)",
					 (long long)r.id, co_rollout_phase_name(r.phase));
			goto done;
		}
		/* An applied step soaks again from now: the pause is not soak. */
		r.phase = r.soak_started_ms ? CO_RO_SOAKING : CO_RO_STARTING;
		if (r.soak_started_ms)
			r.soak_started_ms = co_state_now_ms();
	} else {
		co_stage safe = co_rollout_safe_stage(&r);

		if (co_cli_rollout_apply(why, sizeof(why), ctx, st, safe, 0,
					 reason ? reason : "rollout aborted") < 0) {
			error = co_error_set(CO_ECONFLICT,
					     "rollout abort: back to %s failed: %s (the "
					     "rollout is left as it was)",
					     co_stage_name(safe), why);
			goto done;
		}
		/* A step soaks once applied; before that the stage is the one
		 * before it. */
		co_stage at = r.soak_started_ms ? r.steps[r.step]
			      : r.step > 0	? r.steps[r.step - 1]
						: r.initial;

		r.phase = CO_RO_ABORTED;
		snprintf(r.analysis, sizeof(r.analysis),
			 "aborted by %s at %s, back to %s%s%s", co_cli_who(),
			 co_stage_name(at), co_stage_name(safe), reason ? ": " : "",
			 reason ? reason : "");
	}
	r.updated_ms = co_state_now_ms();
	if ((error = co_rollout_save(&r, c->state_dir)) < 0)
		goto done;
	snprintf(detail, sizeof(detail), "rollout %lld %s at step %zu (stage %s)",
		 (long long)r.id, co_rollout_phase_name(r.phase), r.step + 1,
		 co_stage_name(r.steps[r.step]));
	snprintf(why, sizeof(why), "rollout %s", what);
	co_audit_change_add(st, co_cli_who(), why, detail, reason);
	co_error_clear();
	error = print_status(ctx, &r);
done:
	co_rollout_unlock(lock);
	co_state_close(st);
	return error;
}

int co_cli_rollout(int argc, char **argv, co_cli *ctx)
{
	if (argc < 2)
		return co_cli_usage_error(U_ROLLOUT, "rollout: missing subcommand");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(h_rollout, stdout);
		return 0;
	}
	if (strcmp(argv[1], "start") == 0)
		return rollout_start(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "plan") == 0 || strcmp(argv[1], "--plan") == 0)
		return rollout_plan(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "status") == 0)
		return rollout_status(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "drive") == 0)
		return rollout_drive(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "pause") == 0 || strcmp(argv[1], "resume") == 0 ||
	    strcmp(argv[1], "abort") == 0)
		return rollout_change(argc - 1, argv + 1, ctx, argv[1]);
	return co_cli_usage_error(U_ROLLOUT, "rollout: unknown subcommand \"%s\"",
				  argv[1]);
}
