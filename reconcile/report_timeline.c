/*
 * report_timeline.c - the rollout timeline: the audit rows that moved
 * traffic between the stores (stage and flag changes, rollout steps and
 * analyses, kill-switch trips and resumes, gate refusals), read from the
 * state database and drawn as a table in the HTML report, each row marked
 * by its kind.
 */
#include "report.h"
#include "report_diff.h"
#include "report_timeline.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The kinds that belong on the timeline (CO_AUDIT_KINDS). */
static int on_timeline(const char *kind)
{
	static const char *const kinds[] = {"rollout", "flags", "trip", "resume", "gate"};
	size_t i;

	for (i = 0; kind && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i]) == 0)
			return 1;
	return 0;
}

int co_report_timeline_load(co_audit_change_list *out, co_state *st, size_t limit)
{
	co_audit_filter flt = {0};
	co_audit_change_list page = {0};
	int64_t next = 0;
	size_t i, kept = 0;
	int error;

	/* The newest rows of every kind, then only the timeline's, oldest
	 * first: one query, the kinds being several. */
	flt.limit = limit * 4 + 16;
	flt.newest_first = 1;
	if ((error = co_audit_changes_query(&page, &next, st, &flt)) < 0) {
		co_audit_change_list_clear(&page);
		return error;
	}
	for (i = 0; i < page.n; i++) {
		if (kept < limit && on_timeline(page.items[i]->kind))
			page.items[kept++] = page.items[i];
		else
			co_audit_change_free(page.items[i]);
	}
	page.n = kept;
	for (i = 0; i < kept / 2; i++) {
		co_audit_change *t = page.items[i];

		page.items[i] = page.items[kept - 1 - i];
		page.items[kept - 1 - i] = t;
	}
	*out = page;
	return 0;
}

void co_report__timeline_html(FILE *f, const co_audit_change_list *l)
{
	size_t i;

	fputs("<h2>Rollout timeline</h2>\n", f);
	if (l == NULL || l->n == 0) {
		fputs("<p>No stage change, rollout step or kill-switch trip recorded "
		      "yet.</p>\n",
		      f);
		return;
	}
	fputs("<table id=\"timeline\">\n<tr><th>time (UTC)</th><th>kind</th><th>who</th>"
	      "<th>action</th><th>detail</th><th>why</th></tr>\n",
	      f);
	for (i = 0; i < l->n; i++) {
		const co_audit_change *c = l->items[i];
		char when[40];

		co_audit_format_time(when, sizeof(when), c->ts);
		fprintf(f, "<tr class=\"tl-%s\"><td>", c->kind ? c->kind : "other");
		co_report__html(f, when);
		fputs("</td><td><span class=\"dot\"></span>", f);
		co_report__html(f, c->kind ? c->kind : "");
		fputs("</td><td>", f);
		co_report__html(f, c->who ? c->who : "");
		fputs("</td><td>", f);
		co_report__html(f, c->action ? c->action : "");
		fputs("</td><td>", f);
		co_report__html(f, c->detail ? c->detail : "");
		fputs("</td><td>", f);
		co_report__html(f, c->why ? c->why : "");
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n", f);
}
