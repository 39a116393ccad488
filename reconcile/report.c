/*
 * report.c - render reconciliation runs as text, JSON, Markdown and HTML.
 *
 * Everything comes from the rows of runs.h, so that a report reflects what
 * was recorded, not what one process happens to remember.  JSON is built
 * with cJSON so that strings are escaped by the book; Markdown escapes the
 * pipe and backslash inside cells; HTML escapes the five special characters
 * of every value, and the chart is computed here as plain SVG (no script,
 * no external asset), so the page can be mailed or archived as one file.
 *
 * Divergences are shown field by field, git's value → etcd's
 * (report_diff.c), never as two whole records side by side, and every
 * value is redacted first (redact.h): a report holds no secret, only
 * whether a hidden field was equal or differed.
 *
 * Every format shows what the outbox still owed at the end of the run
 * (run->owed*, run->owed_list) apart from the divergences: a pending_drain
 * run must not read like a pass.
 *
 * This module only formats; it reads nothing and decides nothing.
 */
#include "report.h"
#include "report_diff.h"
#include "report_timeline.h"

#include "core/error.h"
#include "core/record.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int co_report_parse_format(co_report_format *out, const char *name)
{
	if (name == NULL)
		name = "";
	if (strcmp(name, "text") == 0)
		*out = CO_REPORT_TEXT;
	else if (strcmp(name, "json") == 0)
		*out = CO_REPORT_JSON;
	else if (strcmp(name, "markdown") == 0 || strcmp(name, "md") == 0)
		*out = CO_REPORT_MARKDOWN;
	else if (strcmp(name, "html") == 0)
		*out = CO_REPORT_HTML;
	else
		return co_error_set(
		    CO_EINVAL,
		    "--format: unknown format \"%s\" (text, json, markdown, html)", name);
	return 0;
}

static void fmt_time(char *buf, size_t len, int64_t ms)
{
	co_time_format(buf, len, ms / 1000);
}

static const char *str_or(const char *s, const char *dflt)
{
	return s ? s : dflt;
}

static size_t n_divs(const co_divergence_list *divs)
{
	return divs ? divs->n : 0;
}

/* How long an owed item had been owed when the run ended. */
static int64_t owed_age_ms(const co_run *run, const co_owed *o)
{
	int64_t age = run->started_at + run->duration_ms - o->since;

	return age > 0 ? age : 0;
}

/* 1 if owed item i names the same record as the one before it (the list is
 * sorted by kind and ID, one item per store). */
static int same_as_previous(const co_owed_list *l, size_t i)
{
	return i > 0 && strcmp(l->items[i]->kind, l->items[i - 1]->kind) == 0 &&
	       strcmp(l->items[i]->id, l->items[i - 1]->id) == 0;
}

/* Oldest age among the items owed to `target`; the run's oldest if none is
 * listed (history rows carry counts only). */
static int64_t oldest_for(const co_run *run, const char *target)
{
	int64_t best = -1;
	size_t i;

	for (i = 0; i < run->owed_list.n; i++) {
		const co_owed *o = run->owed_list.items[i];

		if (strcmp(o->target, target) == 0 && owed_age_ms(run, o) > best)
			best = owed_age_ms(run, o);
	}
	return best >= 0 ? best : run->owed_oldest_ms;
}

static int is_verdict(const co_run *run, const char *v)
{
	return run->verdict && strcmp(run->verdict, v) == 0;
}

/* ---- JSON ---- */

static cJSON *fields_array(const char *csv)
{
	cJSON *a = cJSON_CreateArray();
	const char *p = csv ? csv : "";

	while (a && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char *name = strndup(p, len);
		cJSON *s = name ? cJSON_CreateString(name) : NULL;

		free(name);
		if (s == NULL || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return a;
}

/* A stored value: the record's JSON as an object, or null. */
static cJSON *value_item(const char *json)
{
	cJSON *v = json ? cJSON_Parse(json) : NULL;

	if (v == NULL && json)
		v = cJSON_CreateString(json); /* not JSON after all: keep it as text */
	return v ? v : cJSON_CreateNull();
}

/*
 * "owed": {"count","etcd","git","oldest_age_ms","ids":[...],
 * "entries":[{"id","kind","store","age_ms"}]}: ids once each, entries one
 * per store owed.
 */
static cJSON *owed_json(const co_run *run)
{
	cJSON *o = cJSON_CreateObject(), *ids, *entries;
	size_t i;

	if (o == NULL || !cJSON_AddNumberToObject(o, "count", (double)run->owed) ||
	    !cJSON_AddNumberToObject(o, "etcd", (double)run->owed_etcd) ||
	    !cJSON_AddNumberToObject(o, "git", (double)run->owed_git) ||
	    !cJSON_AddNumberToObject(o, "oldest_age_ms", (double)run->owed_oldest_ms) ||
	    (ids = cJSON_AddArrayToObject(o, "ids")) == NULL ||
	    (entries = cJSON_AddArrayToObject(o, "entries")) == NULL)
		goto fail;
	for (i = 0; i < run->owed_list.n; i++) {
		const co_owed *w = run->owed_list.items[i];
		cJSON *e = cJSON_CreateObject(), *id;

		if (e == NULL || !cJSON_AddItemToArray(entries, e))
			goto fail_e;
		if (!cJSON_AddStringToObject(e, "id", w->id) ||
		    !cJSON_AddStringToObject(e, "kind", w->kind) ||
		    !cJSON_AddStringToObject(e, "store", w->target) ||
		    !cJSON_AddNumberToObject(e, "age_ms", (double)owed_age_ms(run, w)))
			goto fail;
		if (same_as_previous(&run->owed_list, i))
			continue;
		if ((id = cJSON_CreateString(w->id)) == NULL)
			goto fail;
		if (!cJSON_AddItemToArray(ids, id)) {
			cJSON_Delete(id);
			goto fail;
		}
		continue;
fail_e:
		cJSON_Delete(e);
		goto fail;
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

/* A divergence's redacted values and its field-level diff. */
static int div_json(cJSON *e, const co_redact *rd, const co_divergence *d)
{
	co_field_diff_list l = {0};
	char *g = NULL, *x = NULL;
	cJSON *v = NULL;
	int ok = co_report__values(&g, &x, rd, d) == 0 && (v = value_item(g)) != NULL &&
		 cJSON_AddItemToObject(e, "git", v) && ((v = value_item(x)) != NULL) &&
		 cJSON_AddItemToObject(e, "etcd", v) &&
		 (v = NULL, co_report__diff(&l, rd, d) == 0) &&
		 (v = co_report__diff_json(&l)) != NULL &&
		 cJSON_AddItemToObject(e, "diff", v);

	if (!ok)
		cJSON_Delete(v);
	co_field_diff_list_clear(&l);
	free(g);
	free(x);
	return ok ? 0 : -1;
}

cJSON *co_report_run_json(const co_run *run, const co_divergence_list *divs,
			  const co_redact *rd)
{
	cJSON *o = cJSON_CreateObject(), *arr, *owed;
	char when[32];
	size_t i;

	if (o == NULL)
		return NULL;
	fmt_time(when, sizeof(when), run->started_at);
	if (!cJSON_AddNumberToObject(o, "run", (double)run->id) ||
	    !cJSON_AddStringToObject(o, "started_at", when) ||
	    !cJSON_AddNumberToObject(o, "duration_ms", (double)run->duration_ms) ||
	    !cJSON_AddNumberToObject(o, "total", (double)run->total) ||
	    !cJSON_AddNumberToObject(o, "equal", (double)run->equal) ||
	    !cJSON_AddNumberToObject(o, "missing_in_etcd",
				     (double)run->missing_in_etcd) ||
	    !cJSON_AddNumberToObject(o, "missing_in_git", (double)run->missing_in_git) ||
	    !cJSON_AddNumberToObject(o, "mismatch", (double)run->mismatch) ||
	    !cJSON_AddNumberToObject(o, "consistency", run->consistency) ||
	    !(run->verdict ? cJSON_AddStringToObject(o, "verdict", run->verdict)
			   : cJSON_AddNullToObject(o, "verdict")) ||
	    !(run->action ? cJSON_AddStringToObject(o, "action", run->action)
			  : cJSON_AddNullToObject(o, "action")) ||
	    (run->error && !cJSON_AddStringToObject(o, "error", run->error)) ||
	    (owed = owed_json(run)) == NULL)
		goto fail;
	if (!cJSON_AddItemToObject(o, "owed", owed)) {
		cJSON_Delete(owed);
		goto fail;
	}
	if ((arr = cJSON_AddArrayToObject(o, "divergences")) == NULL)
		goto fail;
	for (i = 0; i < n_divs(divs); i++) {
		const co_divergence *d = divs->items[i];
		cJSON *e = cJSON_CreateObject(), *f = NULL;

		if (e == NULL || !cJSON_AddItemToArray(arr, e))
			goto fail_e;
		if (!cJSON_AddStringToObject(e, "id", d->id) ||
		    !cJSON_AddStringToObject(e, "kind", d->kind) ||
		    !cJSON_AddStringToObject(e, "class", d->cls) ||
		    (f = fields_array(d->fields)) == NULL ||
		    !cJSON_AddItemToObject(e, "fields", f))
			goto fail_f;
		if (div_json(e, rd, d) < 0)
			goto fail;
		continue;
fail_e:
		cJSON_Delete(e);
		goto fail;
fail_f:
		cJSON_Delete(f);
		goto fail;
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

/* The policy to render with: rd, or a default one made into *own. */
static const co_redact *policy(co_redact **own, const co_redact *rd)
{
	if (rd == NULL && co_redact_default(own) == 0)
		rd = *own;
	return rd;
}

char *co_report_json(const co_run *run, const co_divergence_list *divs,
		     const co_redact *rd)
{
	co_redact *own = NULL;
	cJSON *o = NULL;
	char *s;

	/* No policy at all (no random key): render nothing rather than
	 * render unredacted. */
	if ((rd = policy(&own, rd)) != NULL)
		o = co_report_run_json(run, divs, rd);
	s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	co_redact_free(own);
	return s;
}

static int write_json(FILE *f, const co_run *run, const co_divergence_list *divs,
		      const co_redact *rd)
{
	char *s = co_report_json(run, divs, rd);

	if (s == NULL)
		return co_error_set(CO_ENOMEM, "out of memory building the JSON report");
	fprintf(f, "%s\n", s);
	free(s);
	return 0;
}

/* ---- text ---- */

/* Owed IDs a text line lists before "and N more". */
#define TEXT_OWED_MAX 20

/* "  owed to etcd: 3 (outbox, oldest 4.1 s): T1, T7, T9" */
static void write_text_owed(FILE *f, const co_run *run, const char *target, int64_t n)
{
	size_t i, shown = 0;

	if (n <= 0)
		return;
	fprintf(f, "  owed to %s: %lld (outbox, oldest %.1f s)", target, (long long)n,
		(double)oldest_for(run, target) / 1000.0);
	for (i = 0; i < run->owed_list.n; i++) {
		const co_owed *o = run->owed_list.items[i];

		if (strcmp(o->target, target) != 0)
			continue;
		if (shown == TEXT_OWED_MAX) {
			fprintf(f, ", ... (%lld in all)", (long long)n);
			break;
		}
		fprintf(f, "%s%s%s", shown ? ", " : ": ", o->id,
			strcmp(o->kind, "swarm") == 0 ? " (swarm)" : "");
		shown++;
	}
	fputc('\n', f);
}

static int write_text(FILE *f, const co_run *run, const co_divergence_list *divs,
		      const co_redact *rd)
{
	int error;
	char when[32];
	size_t i;

	fmt_time(when, sizeof(when), run->started_at);
	fprintf(f, "reconcile run %lld  %s  %lld ms  verdict %s  action %s\n",
		(long long)run->id, when, (long long)run->duration_ms,
		str_or(run->verdict, "(in progress)"), str_or(run->action, "-"));
	fprintf(f,
		"  total %lld  equal %lld  missing_in_etcd %lld  missing_in_git %lld  "
		"mismatch %lld  consistency %.4f%%\n",
		(long long)run->total, (long long)run->equal,
		(long long)run->missing_in_etcd, (long long)run->missing_in_git,
		(long long)run->mismatch, 100.0 * run->consistency);
	if (run->error)
		fprintf(f, "  error: %s\n", run->error);
	write_text_owed(f, run, "etcd", run->owed_etcd);
	write_text_owed(f, run, "git", run->owed_git);
	if (n_divs(divs) == 0) {
		fprintf(f, "  no divergences\n");
		return 0;
	}
	fprintf(f, "  divergences:\n");
	for (i = 0; i < divs->n; i++) {
		const co_divergence *d = divs->items[i];

		fprintf(f, "    %-5s %-30s %-15s %s\n", d->kind, d->id, d->cls,
			d->fields && *d->fields ? d->fields : "-");
		/* One line per differing path under the divergence's line. */
		if ((error = co_report__diff_lines(f, rd, d, "          ", "\n")) < 0)
			return error;
		if (error > 0)
			fputc('\n', f);
	}
	return 0;
}

/* ---- Markdown ---- */

/* A table cell: pipes and backslashes escaped, newlines as spaces. */
static void md_cell(FILE *f, const char *s)
{
	fputc(' ', f);
	for (s = s ? s : ""; *s; s++) {
		if (*s == '|' || *s == '\\')
			fputc('\\', f);
		fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
	}
	fputs(" |", f);
}

static void md_run_row(FILE *f, const co_run *r)
{
	char when[32], num[64];

	fmt_time(when, sizeof(when), r->started_at);
	fprintf(f, "| %lld |", (long long)r->id);
	md_cell(f, when);
	fprintf(f, " %lld | %lld | %lld | %lld | %lld | %lld | %lld |",
		(long long)r->duration_ms, (long long)r->total, (long long)r->equal,
		(long long)r->missing_in_etcd, (long long)r->missing_in_git,
		(long long)r->mismatch, (long long)r->owed);
	snprintf(num, sizeof(num), "%.4f%%", 100.0 * r->consistency);
	md_cell(f, num);
	md_cell(f, str_or(r->verdict, "in progress"));
	md_cell(f, str_or(r->action, ""));
	fputc('\n', f);
}

static const char md_run_header[] =
    "| run | started_at | duration_ms | total | equal | missing_in_etcd | "
    "missing_in_git | mismatch | owed | consistency | verdict | action |\n"
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- "
    "|\n";

/* The changes cell: `path`: old → new, one per line (<br>). */
static int md_changes(FILE *f, const co_redact *rd, const co_divergence *d)
{
	char *cell = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&cell, &len);
	int n;

	if (m == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	n = co_report__diff_lines(m, rd, d, "", "<br>");
	fclose(m);
	if (n >= 0)
		md_cell(f, cell);
	free(cell);
	return n < 0 ? n : 0;
}

static int write_markdown(FILE *f, const co_run *run, const co_divergence_list *divs,
			  const co_run_list *history, const co_redact *rd)
{
	size_t i;
	int error;

	fprintf(f, "# Reconciliation run %lld\n\n", (long long)run->id);
	fputs(md_run_header, f);
	md_run_row(f, run);
	if (run->error) {
		fputs("\nError:", f);
		md_cell(f, run->error);
		fputc('\n', f);
	}
	if (run->owed > 0) {
		fprintf(f,
			"\n## Owed by the outbox (%lld: etcd %lld, git %lld)\n\n"
			"Acknowledged writes not yet applied when the run ended: neither "
			"equal nor divergent.\n\n",
			(long long)run->owed, (long long)run->owed_etcd,
			(long long)run->owed_git);
		fputs("| kind | id | owed to | age_ms |\n| --- | --- | --- | ---: |\n",
		      f);
		for (i = 0; i < run->owed_list.n; i++) {
			const co_owed *o = run->owed_list.items[i];

			fputc('|', f);
			md_cell(f, o->kind);
			md_cell(f, o->id);
			md_cell(f, o->target);
			fprintf(f, " %lld |\n", (long long)owed_age_ms(run, o));
		}
	}
	fprintf(f, "\n## Divergences (%zu)\n\n", n_divs(divs));
	if (n_divs(divs) == 0) {
		fputs("None: both stores hold the same records.\n", f);
	} else {
		fputs("| kind | id | class | fields | changes (git \u2192 etcd) |\n"
		      "| --- | --- | --- | --- | --- |\n",
		      f);
		for (i = 0; i < divs->n; i++) {
			const co_divergence *d = divs->items[i];

			fputc('|', f);
			md_cell(f, d->kind);
			md_cell(f, d->id);
			md_cell(f, d->cls);
			md_cell(f, d->fields);
			if ((error = md_changes(f, rd, d)) < 0)
				return error;
			fputc('\n', f);
		}
	}
	if (history && history->n > 0) {
		fprintf(f, "\n## History (%zu runs)\n\n", history->n);
		fputs(md_run_header, f);
		for (i = 0; i < history->n; i++)
			md_run_row(f, history->items[i]);
	}
	return 0;
}

/* ---- HTML ---- */

static void html(FILE *f, const char *s)
{
	co_report__html(f, s);
}

#define CH_W 720
#define CH_H 240
#define CH_L 70 /* left margin: axis labels */
#define CH_R 20
#define CH_T 20
#define CH_B 40

/* Consistency over runs as an inline SVG line chart with one dot per run. */
static void html_chart(FILE *f, const co_run_list *history, const co_run *current,
		       double threshold)
{
	const co_run *const one[1] = {current};
	const co_run *const *runs =
	    history && history->n ? (const co_run *const *)history->items : one;
	size_t n = history && history->n ? history->n : 1, i;
	double lo = 1.0, hi = 1.0, span;
	int k;

	for (i = 0; i < n; i++)
		if (runs[i]->consistency < lo)
			lo = runs[i]->consistency;
	if (threshold > 0 && threshold < lo)
		lo = threshold;
	/* Leave room below the lowest point; a flat 100% still gets a scale. */
	span = hi - lo;
	lo = span > 0 ? lo - span * 0.1 : lo - 0.001;
	if (lo < 0)
		lo = 0;
	span = hi - lo;

	fprintf(f,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"consistency-chart\" "
		"width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
		"aria-label=\"consistency over runs\">\n"
		"<title>Consistency over %zu run%s</title>\n"
		"<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n",
		CH_W, CH_H, CH_W, CH_H, n, n == 1 ? "" : "s", CH_W, CH_H);
	for (k = 0; k <= 4; k++) {
		double v = lo + span * k / 4.0;
		double y = CH_T + (CH_H - CH_T - CH_B) * (1.0 - (v - lo) / span);

		fprintf(
		    f,
		    "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
		    "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">"
		    "%.3f%%</text>\n",
		    CH_L, y, CH_W - CH_R, y, CH_L - 6, y + 4, 100.0 * v);
	}
	if (threshold > 0) {
		double y = CH_T + (CH_H - CH_T - CH_B) * (1.0 - (threshold - lo) / span);

		fprintf(f,
			"<line class=\"threshold\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" "
			"y2=\"%.1f\" "
			"stroke=\"#c00\" stroke-dasharray=\"4 3\"/>\n",
			CH_L, y, CH_W - CH_R, y);
	}
	fputs("<polyline fill=\"none\" stroke=\"#36c\" stroke-width=\"2\" points=\"", f);
	for (i = 0; i < n; i++) {
		double x = n > 1 ? CH_L + (double)(CH_W - CH_L - CH_R) * i / (n - 1)
				 : (CH_L + CH_W - CH_R) / 2.0;
		double y = CH_T + (CH_H - CH_T - CH_B) *
				      (1.0 - (runs[i]->consistency - lo) / span);

		fprintf(f, "%s%.1f,%.1f", i ? " " : "", x, y);
	}
	fputs("\"/>\n", f);
	for (i = 0; i < n; i++) {
		const co_run *r = runs[i];
		double x = n > 1 ? CH_L + (double)(CH_W - CH_L - CH_R) * i / (n - 1)
				 : (CH_L + CH_W - CH_R) / 2.0;
		double y =
		    CH_T + (CH_H - CH_T - CH_B) * (1.0 - (r->consistency - lo) / span);
		const char *color = is_verdict(r, "fail")	     ? "#c00"
				    : is_verdict(r, "pending_drain") ? "#b60"
								     : "#080";

		fprintf(f,
			"<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>run "
			"%lld: ",
			x, y, color, (long long)r->id);
		fprintf(f, "%.4f%% ", 100.0 * r->consistency);
		html(f, str_or(r->verdict, "in progress"));
		fputs("</title></circle>\n", f);
		if (n <= 30 || i == 0 || i == n - 1)
			fprintf(f,
				"<text x=\"%.1f\" y=\"%d\" font-size=\"10\" "
				"text-anchor=\"middle\">%lld</text>\n",
				x, CH_H - CH_B + 16, (long long)r->id);
	}
	fprintf(
	    f,
	    "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">run</text>\n"
	    "</svg>\n",
	    (CH_L + CH_W - CH_R) / 2, CH_H - 6);
}

static void html_summary_row(FILE *f, const char *name, const char *value)
{
	fputs("<tr><th>", f);
	html(f, name);
	fputs("</th><td>", f);
	html(f, value);
	fputs("</td></tr>\n", f);
}

static int write_html(FILE *f, const co_run *run, const co_divergence_list *divs,
		      const co_run_list *history, double threshold, const co_redact *rd,
		      const co_audit_change_list *timeline)
{
	co_field_diff_list l = {0};
	int error;
	char buf[128], when[32];
	size_t i;
	const char *cls = is_verdict(run, "fail")	     ? "fail"
			  : is_verdict(run, "pending_drain") ? "pending"
							     : "pass";

	fmt_time(when, sizeof(when), run->started_at);
	fprintf(
	    f,
	    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	    "<title>cutover reconciliation run %lld</title>\n"
	    "<style>\n"
	    "body{font-family:sans-serif;margin:2em;color:#222}\n"
	    "table{border-collapse:collapse;margin:1em 0}\n"
	    "th,td{border:1px solid #ccc;padding:4px "
	    "8px;text-align:left;vertical-align:top}\n"
	    "pre{margin:0;font-size:12px;white-space:pre-wrap;max-width:40em}\n"
	    ".pass{color:#080;font-weight:bold}.fail{color:#c00;font-weight:bold}\n"
	    ".pending{color:#b60;font-weight:bold}\n"
	    "table.diff{margin:0;font-size:12px}table.diff td,table.diff "
	    "th{border-color:#ddd}\n"
	    "del{background:#fdd;color:#900;text-decoration:line-through}\n"
	    "ins{background:#dfd;color:#060;text-decoration:none}\n"
	    "tr.changed td.path,tr.added td.path,tr.removed td.path{background:#ffc}\n"
	    ".redacted{font-style:italic;color:#555}.redacted.differs{color:#900;"
	    "font-weight:bold}\n"
	    ".dot{display:inline-block;width:.7em;height:.7em;border-radius:50%%;"
	    "margin-right:.4em;background:#888}\n"
	    "tr.tl-rollout .dot{background:#36c}tr.tl-flags .dot{background:#080}"
	    "tr.tl-trip .dot{background:#c00}tr.tl-resume .dot{background:#b60}"
	    "tr.tl-gate .dot{background:#939}\n"
	    "</style>\n</head>\n<body>\n",
	    (long long)run->id);
	fprintf(f, "<h1>Reconciliation run %lld: <span class=\"%s\">", (long long)run->id,
		cls);
	html(f, str_or(run->verdict, "in progress"));
	fputs("</span></h1>\n<h2>Summary</h2>\n<table id=\"summary\">\n", f);
	snprintf(buf, sizeof(buf), "%lld", (long long)run->id);
	html_summary_row(f, "run", buf);
	html_summary_row(f, "started_at", when);
	snprintf(buf, sizeof(buf), "%lld ms", (long long)run->duration_ms);
	html_summary_row(f, "duration", buf);
	snprintf(buf, sizeof(buf), "%lld", (long long)run->total);
	html_summary_row(f, "total", buf);
	snprintf(buf, sizeof(buf), "%lld", (long long)run->equal);
	html_summary_row(f, "equal", buf);
	snprintf(buf, sizeof(buf), "%lld", (long long)run->missing_in_etcd);
	html_summary_row(f, "missing_in_etcd", buf);
	snprintf(buf, sizeof(buf), "%lld", (long long)run->missing_in_git);
	html_summary_row(f, "missing_in_git", buf);
	snprintf(buf, sizeof(buf), "%lld", (long long)run->mismatch);
	html_summary_row(f, "mismatch", buf);
	snprintf(buf, sizeof(buf), "%lld (etcd %lld, git %lld; oldest %.1f s)",
		 (long long)run->owed, (long long)run->owed_etcd,
		 (long long)run->owed_git, (double)run->owed_oldest_ms / 1000.0);
	html_summary_row(f, "owed", run->owed ? buf : "0");
	snprintf(buf, sizeof(buf), "%.4f%%", 100.0 * run->consistency);
	html_summary_row(f, "consistency", buf);
	html_summary_row(f, "verdict", str_or(run->verdict, "in progress"));
	html_summary_row(f, "action", str_or(run->action, ""));
	if (run->error)
		html_summary_row(f, "error", run->error);
	fputs("</table>\n<h2>Consistency over runs</h2>\n", f);
	html_chart(f, history, run, threshold);
	if (run->owed > 0) {
		fprintf(
		    f,
		    "<h2>Owed by the outbox (%lld)</h2>\n<p>Acknowledged writes not "
		    "yet applied when the run ended: neither equal nor divergent; the "
		    "run is not a pass until they drain.</p>\n<table id=\"owed\">\n"
		    "<tr><th>kind</th><th>id</th><th>owed to</th><th>age</th></tr>\n",
		    (long long)run->owed);
		for (i = 0; i < run->owed_list.n; i++) {
			const co_owed *o = run->owed_list.items[i];

			fputs("<tr><td>", f);
			html(f, o->kind);
			fputs("</td><td>", f);
			html(f, o->id);
			fputs("</td><td>", f);
			html(f, o->target);
			fprintf(f, "</td><td>%.1f s</td></tr>\n",
				(double)owed_age_ms(run, o) / 1000.0);
		}
		fputs("</table>\n", f);
	}
	fprintf(f, "<h2>Divergences (%zu)</h2>\n", n_divs(divs));
	if (n_divs(divs) == 0) {
		fputs("<p>None: both stores hold the same records.</p>\n", f);
	} else {
		fputs("<table "
		      "id=\"divergences\">\n<tr><th>kind</th><th>id</th><th>class</th>"
		      "<th>fields</th><th>changes (git \u2192 etcd)</th></tr>\n",
		      f);
		for (i = 0; i < divs->n; i++) {
			const co_divergence *d = divs->items[i];

			fputs("<tr><td>", f);
			html(f, d->kind);
			fputs("</td><td>", f);
			html(f, d->id);
			fputs("</td><td>", f);
			html(f, d->cls);
			fputs("</td><td>", f);
			html(f, d->fields);
			fputs("</td><td>", f);
			if ((error = co_report__diff(&l, rd, d)) < 0)
				return error;
			co_report__diff_html(f, &l);
			co_field_diff_list_clear(&l);
			fputs("</td></tr>\n", f);
		}
		fputs("</table>\n", f);
	}
	co_report__timeline_html(f, timeline);
	fputs("</body>\n</html>\n", f);
	return 0;
}

int co_report_write(FILE *f, co_report_format fmt, const co_run *run,
		    const co_divergence_list *divs, const co_run_list *history,
		    double min_consistency, const co_redact *rd)
{
	return co_report_write_with_timeline(f, fmt, run, divs, history, min_consistency,
					     rd, NULL);
}

int co_report_write_with_timeline(FILE *f, co_report_format fmt, const co_run *run,
				  const co_divergence_list *divs,
				  const co_run_list *history, double min_consistency,
				  const co_redact *rd,
				  const co_audit_change_list *timeline)
{
	co_redact *own = NULL;
	int error;

	if ((rd = policy(&own, rd)) == NULL)
		return co_error_last_code() < 0 ? co_error_last_code() : CO_ENOMEM;
	switch (fmt) {
	case CO_REPORT_JSON:
		error = write_json(f, run, divs, rd);
		break;
	case CO_REPORT_MARKDOWN:
		error = write_markdown(f, run, divs, history, rd);
		break;
	case CO_REPORT_HTML:
		error = write_html(f, run, divs, history, min_consistency, rd, timeline);
		break;
	case CO_REPORT_TEXT:
	default:
		error = write_text(f, run, divs, rd);
		break;
	}
	co_redact_free(own);
	if (error == 0 && (fflush(f) != 0 || ferror(f)))
		error = co_error_set(CO_EIO, "writing the report failed");
	return error;
}
