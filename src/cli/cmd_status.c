/*
 * cmd_status.c - `cutover status`: where the cutover stands.
 *
 * The stage (derived from the flags, "custom" when operations differ), each
 * operation's mode, the kill switch and its reason, the outbox depth per
 * target store, each store's health and the latest reconciliation run.
 * Health comes from the background probe of a running `cutover serve`
 * (<state dir>/health.json, with its age and each store's circuit
 * breaker) when that is fresh, else from a ping of our own bounded to
 * STATUS_PING_MS: status must answer at once whatever the stores do.  Everything is read, nothing
 * changed.  A store that is down is reported, not an error: status is what
 * an operator runs when things are wrong.  A flags file that does not parse
 * is reported the same way (the routers keep their last good flags).
 * Then the live-signal triggers: thresholds, git baselines and the figures
 * a running serve's evaluator last wrote (router/triggers.h).
 */
#include "cli.h"

#include "../core/error.h"
#include "../core/outbox.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "flags/stage.h"
#include "router/fleet.h"
#include "router/triggers.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Our own ping's bound when no serve probes for us. */
#define STATUS_PING_MS 250
/* A serve's probe result older than this is not trusted. */
#define HEALTH_FRESH_MS 10000

#define U_STATUS "cutover status [--fleet] [--json]"

static const char h_status[] =
    "usage: " U_STATUS "\n\n"
    "Show the stage, every operation's mode and etcd percent, the kill switch and\n"
    "its reason, the outbox depth per target store, each store's health and the\n"
    "latest reconciliation run, and who holds the flags lock if anyone does (a\n"
    "writer stuck there is what makes `stage` wait).  Stores that are down are\n"
    "reported, not errors.\n\n"
    "Store health comes from a running `cutover serve` on the same state dir\n"
    "(its background probe, with its age and each store's circuit breaker:\n"
    "closed, open or half_open) when it is fresh; otherwise status pings each\n"
    "store itself, giving up after 250 ms.  Either way it answers at once,\n"
    "however hung a store is.\n\n"
    "Last, the live-signal triggers that pull the kill switch on their own\n"
    "(config `triggers:`): each threshold, the figures a running serve or demo\n"
    "last saw (etcd error rate, worst etcd p95 against the git baseline, how long\n"
    "etcd has been unhealthy, the oldest outbox entry's age), the git p95\n"
    "baselines (none yet: no latency trigger) and the last firing.\n\n"
    "And shadow reads (config `shadow:`): the percent of each read operation's\n"
    "shadow reads compared with etcd and the fields whose differences are\n"
    "ignored (the counters are in a running serve's /metrics:\n"
    "cutover_shadow_{reads,skipped,mismatches}_total).\n\n"
    "--fleet: instead, the router fleet (config `fleet:`): the flags epoch in\n"
    "etcd and every live router registered under its lease (host, pid, version,\n"
    "the mode and epoch it routes by, its outbox depth and oldest entry's age,\n"
    "its admin URL, its last heartbeat); a router behind the epoch is marked.\n"
    "A router that died goes from the list when its lease runs out (fleet.ttl).\n"
    "Exit 2 when etcd does not answer.\n\n"
    "Examples:\n  cutover status\n  cutover status --fleet\n  cutover --json status | jq .outbox\n"
    "  cutover --json status | jq .triggers\n  cutover --json status | jq .shadow\n";

typedef struct health {
	const char *name;
	int up;
	char detail[512];
	/* from a serve's probe: its pid, the probe's age, the breaker */
	long serve_pid; /* 0: our own ping */
	int64_t age_ms;
	char breaker[16], breaker_why[256];
} health;

static void ping(health *h, co_cli *ctx, const char *name)
{
	co_store *s = NULL;
	int prev = co_store_call_timeout(STATUS_PING_MS);

	h->name = name;
	if (co_cli_open_backend(&s, ctx, name) == 0 && co_store_ping(s) == 0) {
		h->up = 1;
		snprintf(h->detail, sizeof(h->detail), "%s", co_store_describe(s));
	} else {
		h->up = 0;
		snprintf(h->detail, sizeof(h->detail), "%s", co_error_last());
	}
	co_store_call_timeout(prev);
	co_store_free(s);
	co_error_clear();
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/*
 * The stores' health as a running serve's probe last saw it: 1 when
 * <state_dir>/health.json is fresh and its writer still runs, else 0 (and
 * the caller pings for itself).
 */
static int health_from_serve(health hs[2], const char *state_dir)
{
	static const char *names[2] = {"git", "etcd"};
	char path[4096], buf[16384];
	struct timespec now;
	cJSON *o = NULL, *stores;
	int64_t now_ms, written;
	long pid;
	size_t n;
	FILE *f;
	int i, ok = 0;

	snprintf(path, sizeof(path), "%s/health.json", state_dir);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((o = cJSON_Parse(buf)) == NULL)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	written = (int64_t)jnum(o, "written_at_ms");
	pid = (long)jnum(o, "pid");
	stores = cJSON_GetObjectItemCaseSensitive(o, "stores");
	if (now_ms - written > HEALTH_FRESH_MS || pid <= 0 || kill((pid_t)pid, 0) != 0 ||
	    !cJSON_IsObject(stores))
		goto done;
	for (i = 0; i < 2; i++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(stores, names[i]);
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(x, "breaker");

		if (!cJSON_IsObject(x))
			goto done;
		hs[i].name = names[i];
		hs[i].up = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "up"));
		snprintf(hs[i].detail, sizeof(hs[i].detail), "%s",
			 hs[i].up ? "answers" : jstr(x, "error"));
		hs[i].serve_pid = pid;
		hs[i].age_ms = now_ms - (int64_t)jnum(x, "checked_at_ms");
		snprintf(hs[i].breaker, sizeof(hs[i].breaker), "%s", jstr(b, "state"));
		snprintf(hs[i].breaker_why, sizeof(hs[i].breaker_why), "%s", jstr(b, "why"));
	}
	ok = 1;
done:
	cJSON_Delete(o);
	return ok;
}

/* `status --fleet`: the epoch in etcd and every live router. */
static int fleet_status(co_cli *ctx, const co_config *c)
{
	co_fleet *fleet = NULL;
	co_fleet_member *m = NULL;
	co_flags f;
	int64_t epoch = 0;
	size_t n = 0, i;
	int error;

	if (!c->fleet_enabled)
		return co_error_set(CO_EINVAL, "status --fleet: fleet mode is off "
					       "(config fleet.enabled: true)");
	if ((error = co_fleet_open_config(&fleet, c)) < 0)
		goto done;
	if (ctx->json) {
		void *o = NULL;

		if ((error = co_fleet_status_json(&o, fleet)) == 0)
			error = co_cli_print_json(o);
		goto done;
	}
	if ((error = co_fleet_flags_get(&f, &epoch, fleet)) < 0 ||
	    (error = co_fleet_members(&m, &n, fleet)) < 0)
		goto done;
	printf("fleet flags %s: epoch %lld, stage %s%s\n", co_fleet_flags_key(fleet),
	       (long long)epoch, co_stage_name(co_stage_of(&f)),
	       f.kill_switch ? ", KILL SWITCH ON" : "");
	printf("%zu live router%s\n", n, n == 1 ? "" : "s");
	if (n)
		printf("  %-20s %-16s %7s %-8s %-7s %6s %7s %9s  %-20s %s\n", "id", "host",
		       "pid", "version", "mode", "epoch", "outbox", "oldest", "heartbeat",
		       "admin");
	for (i = 0; i < n; i++)
		printf("  %-20s %-16s %7ld %-8s %-7s %6lld %7ld %7ldms  %-20s %s%s\n", m[i].id,
		       m[i].host, m[i].pid, m[i].version, m[i].mode, (long long)m[i].epoch,
		       m[i].outbox_depth, m[i].outbox_age_ms, m[i].heartbeat,
		       m[i].admin_url[0] ? m[i].admin_url : "-",
		       m[i].epoch < epoch ? "  BEHIND" : "");
	error = 0;
done:
	free(m);
	co_fleet_close(fleet);
	return error;
}

int co_cli_status(int argc, char **argv, co_cli *ctx)
{
	int want_fleet = 0;
	co_cli_opt opts[] = {{"fleet", NULL, &want_fleet}, {NULL, NULL, NULL}};
	const co_config *c;
	const char *pos[1];
	co_state *st = NULL;
	co_run *run = NULL;
	co_flags f;
	cJSON *tj = NULL;
	health hs[2];
	char flags_error[512] = "", state_error[512] = "", lock_holder[160] = "";
	int64_t depth_git = -1, depth_etcd = -1;
	int error, op, i;
	size_t n;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_STATUS,
				  h_status)) != 0)
		return error < 0 ? error : 0;
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if (want_fleet)
		return fleet_status(ctx, c);
	if (co_flags_load(&f, c->flags_path) < 0) {
		snprintf(flags_error, sizeof(flags_error), "%s", co_error_last());
		co_flags_init(&f);
	}
	if (co_flags_lock_holder(lock_holder, sizeof(lock_holder), c->flags_path) < 0)
		lock_holder[0] = '\0';
	if (co_state_open(&st, c->state_dir) < 0 ||
	    co_outbox_depth(&depth_git, st, "git") < 0 ||
	    co_outbox_depth(&depth_etcd, st, "etcd") < 0) {
		snprintf(state_error, sizeof(state_error), "%s", co_error_last());
	} else if (co_runs_latest(&run, st) < 0) {
		run = NULL;
	}
	co_error_clear();
	memset(hs, 0, sizeof(hs));
	if (!health_from_serve(hs, c->state_dir)) {
		memset(hs, 0, sizeof(hs));
		ping(&hs[0], ctx, "git");
		ping(&hs[1], ctx, "etcd");
	}

	if (ctx->json) {
		cJSON *o = cJSON_CreateObject(), *ops, *ob, *stores;
		char *s;

		cJSON_AddStringToObject(o, "stage", co_stage_name(co_stage_of(&f)));
		cJSON_AddBoolToObject(o, "kill_switch", f.kill_switch);
		cJSON_AddStringToObject(o, "kill_reason", f.kill_reason);
		cJSON_AddBoolToObject(o, "completed", f.completed.on);
		if (f.completed.on) {
			cJSON_AddStringToObject(o, "completed_at", f.completed.at);
			cJSON_AddStringToObject(o, "completed_by", f.completed.by);
			cJSON_AddStringToObject(o, "completed_reason", f.completed.reason);
		}
		cJSON_AddStringToObject(o, "flags_path", c->flags_path);
		if (lock_holder[0])
			cJSON_AddStringToObject(o, "flags_lock_holder", lock_holder);
		else
			cJSON_AddNullToObject(o, "flags_lock_holder");
		if (flags_error[0])
			cJSON_AddStringToObject(o, "flags_error", flags_error);
		ops = cJSON_AddObjectToObject(o, "operations");
		for (op = 0; op < CO_OP__COUNT; op++) {
			co_op_flags s1 = co_flags_get(&f, (co_op)op);
			cJSON *x = cJSON_AddObjectToObject(ops, co_op_name((co_op)op));

			cJSON_AddStringToObject(x, "mode", co_mode_name(s1.mode));
			cJSON_AddNumberToObject(x, "etcd_percent", s1.etcd_percent);
		}
		ob = cJSON_AddObjectToObject(o, "outbox");
		if (state_error[0]) {
			cJSON_AddNullToObject(ob, "git");
			cJSON_AddNullToObject(ob, "etcd");
			cJSON_AddStringToObject(ob, "error", state_error);
		} else {
			cJSON_AddNumberToObject(ob, "git", (double)depth_git);
			cJSON_AddNumberToObject(ob, "etcd", (double)depth_etcd);
		}
		stores = cJSON_AddObjectToObject(o, "stores");
		for (i = 0; i < 2; i++) {
			cJSON *x = cJSON_AddObjectToObject(stores, hs[i].name);

			cJSON_AddBoolToObject(x, "up", hs[i].up);
			cJSON_AddStringToObject(x, hs[i].up ? "describe" : "error",
						hs[i].detail);
			cJSON_AddStringToObject(x, "source", hs[i].serve_pid ? "serve" : "ping");
			if (hs[i].serve_pid) {
				cJSON *b = cJSON_AddObjectToObject(x, "breaker");

				cJSON_AddNumberToObject(x, "serve_pid", (double)hs[i].serve_pid);
				cJSON_AddNumberToObject(x, "probe_age_ms", (double)hs[i].age_ms);
				cJSON_AddStringToObject(b, "state", hs[i].breaker);
				cJSON_AddStringToObject(b, "why", hs[i].breaker_why);
			}
		}
		if (run) {
			cJSON *x = cJSON_AddObjectToObject(o, "last_run");

			cJSON_AddNumberToObject(x, "run", (double)run->id);
			cJSON_AddStringToObject(x, "verdict",
						run->verdict ? run->verdict : "");
			cJSON_AddNumberToObject(x, "consistency", run->consistency);
			cJSON_AddNumberToObject(x, "started_at", (double)run->started_at);
		} else {
			cJSON_AddNullToObject(o, "last_run");
		}
		cJSON_AddItemToObject(o, "triggers",
				      co_triggers_status_json(&c->triggers, c->state_dir));
		cJSON_AddItemToObject(o, "shadow", co_shadow_status_json(&c->shadow));
		if ((s = cJSON_PrintUnformatted(o)) != NULL)
			puts(s);
		free(s);
		cJSON_Delete(o);
	} else {
		printf("stage:        %s\n", co_stage_name(co_stage_of(&f)));
		if (f.kill_switch)
			printf("kill switch:  ON (%s): every operation goes to git\n",
			       f.kill_reason);
		else
			printf("kill switch:  off\n");
		if (f.completed.on)
			printf("completed:    %s by %s%s%s: git is no longer written\n",
			       f.completed.at, f.completed.by, f.completed.reason[0] ? ": " : "",
			       f.completed.reason);
		if (flags_error[0])
			printf("flags:        %s (routers keep their last good flags)\n",
			       flags_error);
		if (lock_holder[0])
			printf("flags lock:   held by %s\n", lock_holder);
		printf("operations:\n");
		for (op = 0; op < CO_OP__COUNT; op++) {
			co_op_flags s1 = co_flags_get(&f, (co_op)op);

			printf("  %-15s %s", co_op_name((co_op)op),
			       co_mode_name(s1.mode));
			if (s1.mode == CO_MODE_DUAL)
				printf(" %d%%", s1.etcd_percent);
			putchar('\n');
		}
		if (state_error[0])
			printf("outbox:       unknown: %s\n", state_error);
		else
			printf("outbox:       %lld owed to git, %lld owed to etcd\n",
			       (long long)depth_git, (long long)depth_etcd);
		for (i = 0; i < 2; i++) {
			printf("%-4s store:   %s: %s", hs[i].name, hs[i].up ? "up" : "DOWN",
			       hs[i].detail);
			if (hs[i].serve_pid && strcmp(hs[i].breaker, "closed") != 0)
				printf(" [circuit %s: %s]", hs[i].breaker, hs[i].breaker_why);
			if (hs[i].serve_pid)
				printf(" (probed by serve pid %ld %.1f s ago)", hs[i].serve_pid,
				       (double)hs[i].age_ms / 1000.0);
			putchar('\n');
		}
		if (run)
			printf("last run:     %lld %s (consistency %.4f%%)\n",
			       (long long)run->id, run->verdict ? run->verdict : "?",
			       run->consistency * 100.0);
		else
			printf("last run:     none\n");
		co_shadow_status_print(stdout, &c->shadow);
		if ((tj = co_triggers_status_json(&c->triggers, c->state_dir)) != NULL)
			co_triggers_status_print(stdout, tj);
		cJSON_Delete(tj);
	}
	fflush(stdout);
	co_run_free(run);
	co_state_close(st);
	return 0;
}
