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
 * This module only formats; it reads nothing and decides nothing.
 */
#include "report.h"

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

static cJSON *run_json(const co_run *run, const co_divergence_list *divs)
{
	cJSON *o = cJSON_CreateObject(), *arr;
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
	    (arr = cJSON_AddArrayToObject(o, "divergences")) == NULL)
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
		if ((f = value_item(d->git_value)) == NULL ||
		    !cJSON_AddItemToObject(e, "git", f))
			goto fail_f;
		if ((f = value_item(d->etcd_value)) == NULL ||
		    !cJSON_AddItemToObject(e, "etcd", f))
			goto fail_f;
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

char *co_report_json(const co_run *run, const co_divergence_list *divs)
{
	cJSON *o = run_json(run, divs);
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	return s;
}

static int write_json(FILE *f, const co_run *run, const co_divergence_list *divs)
{
	char *s = co_report_json(run, divs);

	if (s == NULL)
		return co_error_set(CO_ENOMEM, "out of memory building the JSON report");
	fprintf(f, "%s\n", s);
	free(s);
	return 0;
}

/* ---- text ---- */

static int write_text(FILE *f, const co_run *run, const co_divergence_list *divs)
{
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
	if (n_divs(divs) == 0) {
		fprintf(f, "  no divergences\n");
		return 0;
	}
	fprintf(f, "  divergences:\n");
	for (i = 0; i < divs->n; i++) {
		const co_divergence *d = divs->items[i];

		fprintf(f, "    %-5s %-30s %-15s %s\n", d->kind, d->id, d->cls,
			d->fields && *d->fields ? d->fields : "-");
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
	fprintf(f, " %lld | %lld | %lld | %lld | %lld | %lld |",
		(long long)r->duration_ms, (long long)r->total, (long long)r->equal,
		(long long)r->missing_in_etcd, (long long)r->missing_in_git,
		(long long)r->mismatch);
	snprintf(num, sizeof(num), "%.4f%%", 100.0 * r->consistency);
	md_cell(f, num);
	md_cell(f, str_or(r->verdict, "in progress"));
	md_cell(f, str_or(r->action, ""));
	fputc('\n', f);
}

static const char md_run_header[] =
    "| run | started_at | duration_ms | total | equal | missing_in_etcd | "
    "missing_in_git | mismatch | consistency | verdict | action |\n"
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n";

static int write_markdown(FILE *f, const co_run *run, const co_divergence_list *divs,
			  const co_run_list *history)
{
	size_t i;

	fprintf(f, "# Reconciliation run %lld\n\n", (long long)run->id);
	fputs(md_run_header, f);
	md_run_row(f, run);
	if (run->error) {
		fputs("\nError:", f);
		md_cell(f, run->error);
		fputc('\n', f);
	}
	fprintf(f, "\n## Divergences (%zu)\n\n", n_divs(divs));
	if (n_divs(divs) == 0) {
		fputs("None: both stores hold the same records.\n", f);
	} else {
		fputs("| kind | id | class | fields | git | etcd |\n"
		      "| --- | --- | --- | --- | --- | --- |\n",
		      f);
		for (i = 0; i < divs->n; i++) {
			const co_divergence *d = divs->items[i];

			fputc('|', f);
			md_cell(f, d->kind);
			md_cell(f, d->id);
			md_cell(f, d->cls);
			md_cell(f, d->fields);
			md_cell(f, str_or(d->git_value, "(absent)"));
			md_cell(f, str_or(d->etcd_value, "(absent)"));
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
	for (s = s ? s : ""; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

/* A stored value, pretty-printed for reading side by side. */
static void html_value(FILE *f, const char *json)
{
	cJSON *v = json ? cJSON_Parse(json) : NULL;
	char *pretty = v ? cJSON_Print(v) : NULL;

	if (json == NULL)
		fputs("<em>absent</em>", f);
	else {
		fputs("<pre>", f);
		html(f, pretty ? pretty : json);
		fputs("</pre>", f);
	}
	free(pretty);
	cJSON_Delete(v);
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
		int fail = r->verdict && strcmp(r->verdict, "fail") == 0;

		fprintf(f,
			"<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>run "
			"%lld: ",
			x, y, fail ? "#c00" : "#080", (long long)r->id);
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
		      const co_run_list *history, double threshold)
{
	char buf[64], when[32];
	size_t i;
	int fail = run->verdict && strcmp(run->verdict, "fail") == 0;

	fmt_time(when, sizeof(when), run->started_at);
	fprintf(f,
		"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		"<title>cutover reconciliation run %lld</title>\n"
		"<style>\n"
		"body{font-family:sans-serif;margin:2em;color:#222}\n"
		"table{border-collapse:collapse;margin:1em 0}\n"
		"th,td{border:1px solid #ccc;padding:4px "
		"8px;text-align:left;vertical-align:top}\n"
		"pre{margin:0;font-size:12px;white-space:pre-wrap;max-width:40em}\n"
		".pass{color:#080;font-weight:bold}.fail{color:#c00;font-weight:bold}\n"
		"</style>\n</head>\n<body>\n",
		(long long)run->id);
	fprintf(f, "<h1>Reconciliation run %lld: <span class=\"%s\">", (long long)run->id,
		fail ? "fail" : "pass");
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
	snprintf(buf, sizeof(buf), "%.4f%%", 100.0 * run->consistency);
	html_summary_row(f, "consistency", buf);
	html_summary_row(f, "verdict", str_or(run->verdict, "in progress"));
	html_summary_row(f, "action", str_or(run->action, ""));
	if (run->error)
		html_summary_row(f, "error", run->error);
	fputs("</table>\n<h2>Consistency over runs</h2>\n", f);
	html_chart(f, history, run, threshold);
	fprintf(f, "<h2>Divergences (%zu)</h2>\n", n_divs(divs));
	if (n_divs(divs) == 0) {
		fputs("<p>None: both stores hold the same records.</p>\n", f);
	} else {
		fputs("<table "
		      "id=\"divergences\">\n<tr><th>kind</th><th>id</th><th>class</th>"
		      "<th>fields</th><th>git</th><th>etcd</th></tr>\n",
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
			html_value(f, d->git_value);
			fputs("</td><td>", f);
			html_value(f, d->etcd_value);
			fputs("</td></tr>\n", f);
		}
		fputs("</table>\n", f);
	}
	fputs("</body>\n</html>\n", f);
	return 0;
}

int co_report_write(FILE *f, co_report_format fmt, const co_run *run,
		    const co_divergence_list *divs, const co_run_list *history,
		    double min_consistency)
{
	int error;

	switch (fmt) {
	case CO_REPORT_JSON:
		error = write_json(f, run, divs);
		break;
	case CO_REPORT_MARKDOWN:
		error = write_markdown(f, run, divs, history);
		break;
	case CO_REPORT_HTML:
		error = write_html(f, run, divs, history, min_consistency);
		break;
	case CO_REPORT_TEXT:
	default:
		error = write_text(f, run, divs);
		break;
	}
	if (error == 0 && (fflush(f) != 0 || ferror(f)))
		error = co_error_set(CO_EIO, "writing the report failed");
	return error;
}
