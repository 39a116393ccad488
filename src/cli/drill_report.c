/*
 * drill_report.c - the report of `cutover drill` (drill.h): which trigger
 * fired with its audited figures, the verdict, the audit rows of the
 * drill, as a cJSON object, printed or written to <out>/drill.json.
 */
#include "drill.h"

#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Which trigger fired (kill_reason is "trigger NAME: ..."), and the figures
 * its audit row carries ("...; trigger=NAME rate=... samples=..."): the
 * row is written just after the flags file, so read it once the traffic
 * has stopped.
 */
void co_drill_trip_details(drill *d)
{
	co_audit_change_list l = {0};

	d->fired = CO_TRIGGER_NONE;
	for (int k = CO_TRIGGER_NONE + 1; k < CO_TRIGGER__COUNT; k++) {
		const char *name = co_trigger_name((co_trigger_kind)k);
		size_t len = strlen(name);

		if (strncmp(d->kill_reason, "trigger ", 8) == 0 &&
		    strncmp(d->kill_reason + 8, name, len) == 0 &&
		    d->kill_reason[8 + len] == ':')
			d->fired = (co_trigger_kind)k;
	}
	if (co_audit_changes_latest(&l, d->sc.st, 100) == 0) {
		for (size_t i = 0; i < l.n; i++) { /* newest first: the latest trip */
			const char *fig;

			if (strcmp(l.items[i]->action, "auto-rollback") != 0 ||
			    !l.items[i]->detail)
				continue;
			fig = strstr(l.items[i]->detail, "trigger=");
			snprintf(d->figures, sizeof(d->figures), "%s",
				 fig ? fig : l.items[i]->detail);
			break;
		}
	}
	co_audit_change_list_clear(&l);
	co_error_clear();
}

/* Run the drill on the open stack; its outcome lands in `d`. */
static cJSON *audit_json(drill *d, int print)
{
	co_audit_change_list l = {0};
	cJSON *a = cJSON_CreateArray();

	if (!a || co_audit_changes_latest(&l, d->sc.st, 1000) < 0) {
		co_error_clear();
		return a;
	}
	if (print)
		printf("\n== Audit rows of the drill (oldest first)\n");
	for (size_t i = l.n; i-- > 0;) {
		const co_audit_change *c = l.items[i];
		cJSON *o = cJSON_CreateObject();
		char when[64];

		co_audit_format_time(when, sizeof(when), c->ts);
		if (print)
			printf("  %lld %s %s %s: %s%s%s\n", (long long)c->seq, when,
			       c->who, c->action, c->detail ? c->detail : "",
			       c->why ? " -- " : "", c->why ? c->why : "");
		if (!o)
			continue;
		cJSON_AddNumberToObject(o, "seq", (double)c->seq);
		cJSON_AddStringToObject(o, "time", when);
		cJSON_AddStringToObject(o, "who", c->who);
		cJSON_AddStringToObject(o, "action", c->action);
		if (c->detail)
			cJSON_AddStringToObject(o, "detail", c->detail);
		if (c->why)
			cJSON_AddStringToObject(o, "why", c->why);
		cJSON_AddItemToArray(a, o);
	}
	co_audit_change_list_clear(&l);
	return a;
}

int co_drill_ok(const drill *d)
{
	return d->tripped && !d->tripped_early && d->lost == 0 &&
	       d->double_winners == 0 && d->passed && d->outbox_left == 0;
}

cJSON *co_drill_report_json(drill *d, int print_audit)
{
	cJSON *o = cJSON_CreateObject(), *th, *rc;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "fault", co_drill_faults[d->f].name);
	cJSON_AddStringToObject(o, "injected", co_drill_faults[d->f].how);
	th = cJSON_AddObjectToObject(o, "thresholds");
	if (th) {
		cJSON_AddNumberToObject(th, "window_s", d->cfg.window_ms / 1000.0);
		cJSON_AddNumberToObject(th, "min_samples", d->cfg.min_samples);
		cJSON_AddNumberToObject(th, "error_rate", d->cfg.error_rate);
		cJSON_AddNumberToObject(th, "latency_ratio", d->cfg.latency_ratio);
		cJSON_AddNumberToObject(th, "health_grace_s",
					d->cfg.health_grace_ms / 1000.0);
		cJSON_AddNumberToObject(th, "outbox_age_s",
					d->cfg.outbox_age_ms / 1000.0);
		cJSON_AddNumberToObject(th, "trip_bound_s", TRIP_BOUND_MS / 1000.0);
	}
	cJSON_AddNumberToObject(o, "baseline_claim_p95_ms",
				d->baseline_claim_us / 1000.0);
	cJSON_AddNumberToObject(o, "baseline_release_p95_ms",
				d->baseline_release_us / 1000.0);
	cJSON_AddBoolToObject(o, "tripped", d->tripped);
	cJSON_AddBoolToObject(o, "tripped_before_fault", d->tripped_early);
	cJSON_AddStringToObject(o, "trigger", co_trigger_name(d->fired));
	cJSON_AddStringToObject(o, "expected_trigger",
				co_trigger_name(co_drill_faults[d->f].expect));
	cJSON_AddStringToObject(o, "kill_reason", d->kill_reason);
	cJSON_AddStringToObject(o, "figures", d->figures);
	if (d->tripped)
		cJSON_AddNumberToObject(o, "time_to_trip_ms", (double)d->trip_ms);
	else
		cJSON_AddNullToObject(o, "time_to_trip_ms");
	if (d->f == FAULT_LATENCY) {
		cJSON_AddNumberToObject(o, "pulses", d->pulses);
		cJSON_AddNumberToObject(o, "pulse_stop_ms", d->pulse_stop_ms);
	}
	cJSON_AddNumberToObject(o, "acked_writes", (double)d->n_acked);
	cJSON_AddNumberToObject(o, "lost", (double)d->lost);
	if (d->lost)
		cJSON_AddStringToObject(o, "first_lost", d->first_lost);
	cJSON_AddNumberToObject(o, "double_winners", (double)d->double_winners);
	cJSON_AddNumberToObject(o, "refused", (double)d->refused);
	cJSON_AddNumberToObject(o, "errors", (double)d->errors);
	cJSON_AddNumberToObject(o, "outbox_left", (double)d->outbox_left);
	rc = cJSON_AddObjectToObject(o, "reconcile");
	if (rc) {
		cJSON_AddNumberToObject(rc, "run", (double)d->run_id);
		cJSON_AddStringToObject(rc, "verdict", d->verdict);
		cJSON_AddNumberToObject(rc, "ids", (double)d->total);
		cJSON_AddNumberToObject(rc, "equal", (double)d->equal);
		cJSON_AddNumberToObject(rc, "consistency", d->consistency);
	}
	cJSON_AddItemToObject(o, "audit", audit_json(d, print_audit));
	cJSON_AddBoolToObject(o, "ok", co_drill_ok(d));
	return o;
}

int co_drill_write_out(drill *d, cJSON *o)
{
	char path[4200], *text;
	FILE *f;
	int error = 0;

	if ((error = co_scratch_mkdirs(d->out_dir)) < 0)
		return error;
	snprintf(path, sizeof(path), "%s/drill.json", d->out_dir);
	if ((text = cJSON_Print(o)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((f = fopen(path, "w")) == NULL)
		error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	else {
		fputs(text, f);
		fputc('\n', f);
		if (fclose(f) != 0)
			error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	}
	free(text);
	if (error == 0)
		co_drill_say(d, "report", "%s", path);
	return error;
}
