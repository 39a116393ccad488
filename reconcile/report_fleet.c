/*
 * report_fleet.c - the "owed per router" section of a reconciliation
 * report in fleet mode (report_fleet.h): the report is written as usual
 * into memory, then the section goes into it (a JSON field, lines at the
 * end of text and Markdown, a table before </body> in HTML).
 */
#include "reconcile/report_fleet.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static long long total_owed(const co_fleet_member *m, size_t n)
{
	long long t = 0;
	size_t i;

	for (i = 0; i < n; i++)
		t += m[i].outbox_depth;
	return t;
}

static int add_json(FILE *f, const char *text, const co_fleet_member *m, size_t n)
{
	cJSON *o = cJSON_Parse(text), *arr;
	char *s = NULL;
	size_t i;

	if (!o)
		return co_error_set(CO_ENOMEM, "out of memory building the JSON report");
	if (!m)
		arr = cJSON_AddNullToObject(o, "owed_by_router");
	else
		arr = cJSON_AddArrayToObject(o, "owed_by_router");
	for (i = 0; m && arr && i < n; i++) {
		cJSON *r = cJSON_CreateObject();

		if (!r || !cJSON_AddStringToObject(r, "router", m[i].id) ||
		    !cJSON_AddStringToObject(r, "host", m[i].host) ||
		    !cJSON_AddStringToObject(r, "state_dir", m[i].state_dir) ||
		    !cJSON_AddNumberToObject(r, "outbox_depth",
					     (double)m[i].outbox_depth) ||
		    !cJSON_AddNumberToObject(r, "outbox_age_ms",
					     (double)m[i].outbox_age_ms) ||
		    !cJSON_AddItemToArray(arr, r)) {
			cJSON_Delete(r);
			arr = NULL;
		}
	}
	if (arr)
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return co_error_set(CO_ENOMEM, "out of memory building the JSON report");
	fprintf(f, "%s\n", s);
	free(s);
	return 0;
}

static void html_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '"')
			fputs("&quot;", f);
		else
			fputc(*s, f);
	}
}

static void write_section(FILE *f, co_report_format fmt, const co_fleet_member *m,
			  size_t n)
{
	size_t i;

	if (fmt == CO_REPORT_MARKDOWN) {
		if (!m) {
			fputs(
			    "\n## Owed per router\n\nThe fleet's membership could not be "
			    "read (etcd did not answer).\n",
			    f);
			return;
		}
		fprintf(f,
			"\n## Owed per router (%lld in %zu live routers)\n\n"
			"| Router | Host | Outbox depth | Oldest (s) | State dir |\n"
			"|---|---|---:|---:|---|\n",
			total_owed(m, n), n);
		for (i = 0; i < n; i++)
			fprintf(f, "| %s | %s | %ld | %.1f | %s |\n", m[i].id, m[i].host,
				m[i].outbox_depth, m[i].outbox_age_ms / 1000.0,
				m[i].state_dir);
		return;
	}
	if (fmt == CO_REPORT_HTML) {
		if (!m) {
			fputs("<h2>Owed per router</h2>\n<p>The fleet's membership could "
			      "not "
			      "be read (etcd did not answer).</p>\n",
			      f);
			return;
		}
		fprintf(f,
			"<h2>Owed per router (%lld in %zu live routers)</h2>\n<table>\n"
			"<tr><th>Router</th><th>Host</th><th>Outbox depth</th>"
			"<th>Oldest (s)</th><th>State dir</th></tr>\n",
			total_owed(m, n), n);
		for (i = 0; i < n; i++) {
			fputs("<tr><td>", f);
			html_text(f, m[i].id);
			fputs("</td><td>", f);
			html_text(f, m[i].host);
			fprintf(f, "</td><td>%ld</td><td>%.1f</td><td>",
				m[i].outbox_depth, m[i].outbox_age_ms / 1000.0);
			html_text(f, m[i].state_dir);
			fputs("</td></tr>\n", f);
		}
		fputs("</table>\n", f);
		return;
	}
	if (!m) {
		fputs("owed per router: unknown (the fleet's membership could not be "
		      "read)\n",
		      f);
		return;
	}
	fprintf(f, "owed per router: %lld in %zu live routers\n", total_owed(m, n), n);
	for (i = 0; i < n; i++)
		fprintf(f, "  %s (%s): %ld owed, oldest %.1f s\n", m[i].id, m[i].host,
			m[i].outbox_depth, m[i].outbox_age_ms / 1000.0);
}

int co_report_write_fleet(FILE *f, co_report_format fmt, const co_run *run,
			  const co_divergence_list *divs, const co_run_list *history,
			  double min_consistency, const co_redact *rd,
			  const co_audit_change_list *timeline,
			  const co_fleet_member *members, size_t n_members)
{
	char *text = NULL, *end;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	int error;

	if (!mem)
		return co_error_set(CO_ENOMEM, "out of memory building the report");
	error = co_report_write_with_timeline(mem, fmt, run, divs, history,
					      min_consistency, rd, timeline);
	if (fclose(mem) != 0 && error == 0)
		error = co_error_set(CO_ENOMEM, "out of memory building the report");
	if (error < 0 || !text) {
		free(text);
		return error < 0 ? error : co_error_set(CO_ENOMEM, "out of memory");
	}
	if (fmt == CO_REPORT_JSON) {
		error = add_json(f, text, members, n_members);
	} else if (fmt == CO_REPORT_HTML && (end = strstr(text, "</body>")) != NULL) {
		fwrite(text, 1, (size_t)(end - text), f);
		write_section(f, fmt, members, n_members);
		fputs(end, f);
	} else {
		fputs(text, f);
		write_section(f, fmt, members, n_members);
	}
	free(text);
	if (error == 0 && (fflush(f) != 0 || ferror(f)))
		error = co_error_set(CO_EIO, "writing the report failed");
	return error;
}
