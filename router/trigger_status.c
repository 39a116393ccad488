/*
 * trigger_status.c - what `cutover status` shows of the live-signal
 * triggers (triggers.h): the thresholds in force, the git baselines kept
 * in the state dir, and the figures the running evaluator last wrote
 * (<state dir>/triggers.json), read without touching a store.
 */
#include "triggers.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* triggers.json older than this (or its writer gone) is not shown as live. */
#define STATUS_FRESH_MS 10000

static cJSON *read_json(const char *dir, const char *name)
{
	char path[4096], buf[65536];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return cJSON_Parse(buf);
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

cJSON *co_triggers_status_json(const co_trigger_cfg *cfg, const char *state_dir)
{
	cJSON *o = cJSON_CreateObject(), *th, *bl, *live;
	int64_t base[CO_OP__COUNT], samples[CO_OP__COUNT];
	struct timespec now;
	int64_t now_ms;

	if (o == NULL)
		return NULL;
	cJSON_AddBoolToObject(o, "enabled", cfg->enabled);
	if ((th = cJSON_AddObjectToObject(o, "thresholds")) != NULL) {
		cJSON_AddNumberToObject(th, "window_s", cfg->window_ms / 1000);
		cJSON_AddNumberToObject(th, "min_samples", cfg->min_samples);
		cJSON_AddNumberToObject(th, "error_rate", cfg->error_rate);
		cJSON_AddNumberToObject(th, "latency_ratio", cfg->latency_ratio);
		cJSON_AddNumberToObject(th, "health_grace_s",
					cfg->health_grace_ms / 1000.0);
		cJSON_AddNumberToObject(th, "outbox_age_s", cfg->outbox_age_ms / 1000.0);
	}
	co_triggers_baseline_load(base, samples, state_dir);
	if ((bl = cJSON_AddObjectToObject(o, "git_baseline_p95_us")) != NULL)
		for (int op = 0; op < CO_OP__COUNT; op++)
			if (base[op] > 0)
				cJSON_AddNumberToObject(bl, co_op_name((co_op)op),
							(double)base[op]);
	clock_gettime(CLOCK_REALTIME, &now);
	now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	live = read_json(state_dir, "triggers.json");
	if (live && now_ms - (int64_t)jnum(live, "written_at_ms") <= STATUS_FRESH_MS &&
	    jnum(live, "pid") > 0 && kill((pid_t)jnum(live, "pid"), 0) == 0) {
		cJSON_AddNumberToObject(
		    live, "age_ms",
		    (double)(now_ms - (int64_t)jnum(live, "written_at_ms")));
		cJSON_AddItemToObject(o, "live", live);
	} else {
		cJSON_Delete(live);
		cJSON_AddNullToObject(o, "live");
	}
	return o;
}

void co_triggers_status_print(void *fp, const cJSON *o)
{
	FILE *f = fp;
	const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "thresholds");
	const cJSON *bl = cJSON_GetObjectItemCaseSensitive(o, "git_baseline_p95_us");
	const cJSON *live = cJSON_GetObjectItemCaseSensitive(o, "live");
	const cJSON *x;

	fprintf(f, "triggers:  %s; window %.0f s, min %.0f etcd ops\n",
		cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enabled")) ? "on"
									     : "off",
		jnum(th, "window_s"), jnum(th, "min_samples"));
	if (!cJSON_IsObject(live)) {
		fprintf(f, "  (no running router evaluates them now: figures shown by a "
			   "running serve or demo)\n");
	} else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(live, "armed"))) {
		fprintf(f, "  not armed: %s (pid %.0f, %.1f s ago)\n",
			jstr(live, "disarmed_why"), jnum(live, "pid"),
			jnum(live, "age_ms") / 1000.0);
	} else {
		fprintf(f, "  armed (pid %.0f, %.1f s ago)\n", jnum(live, "pid"),
			jnum(live, "age_ms") / 1000.0);
	}
	fprintf(f, "  error_rate  > %.1f%%", 100.0 * jnum(th, "error_rate"));
	if (cJSON_IsObject(live))
		fprintf(f, "   now %.1f%% (%.0f of %.0f etcd ops)",
			100.0 * jnum(live, "error_rate"), jnum(live, "etcd_errors"),
			jnum(live, "etcd_ops"));
	fprintf(f, "\n  latency     > %gx git p95", jnum(th, "latency_ratio"));
	if (cJSON_GetArraySize(bl) == 0)
		fprintf(f, "   no git baseline yet: latency trigger off until one is "
			   "recorded in git/shadow");
	else if (cJSON_IsObject(live) && *jstr(live, "latency_op"))
		fprintf(f, "   now %.2fx (%s etcd p95 %.1f ms, baseline %.1f ms)",
			jnum(live, "latency_ratio"), jstr(live, "latency_op"),
			jnum(live, "etcd_p95_us") / 1000.0,
			jnum(live, "baseline_us") / 1000.0);
	else if (cJSON_IsObject(live))
		fprintf(f, "   now: no operation with a baseline has enough etcd ops");
	fprintf(f, "\n  health      etcd unhealthy > %.1f s", jnum(th, "health_grace_s"));
	if (cJSON_IsObject(live))
		fprintf(f, "   now %.1f s", jnum(live, "etcd_down_ms") / 1000.0);
	fprintf(f, "\n  outbox_age  > %.1f s", jnum(th, "outbox_age_s"));
	if (cJSON_IsObject(live))
		fprintf(f, "   now %.1f s", jnum(live, "outbox_age_ms") / 1000.0);
	fprintf(f, "\n");
	cJSON_ArrayForEach(x, bl)
	{
		fprintf(f, "  git baseline %s p95 %.1f ms\n", x->string,
			x->valuedouble / 1000.0);
	}
	if (cJSON_IsObject(live) && *jstr(live, "last_fired"))
		fprintf(f, "  last fired: %s\n", jstr(live, "last_fired"));
}
