/*
 * report.h - reconciliation reports: text, JSON, Markdown, HTML (DESIGN §5).
 *
 * A report shows one run (counts, consistency, verdict, action) and its
 * divergences, and, in Markdown and HTML, the history of runs; the HTML
 * page draws consistency over the runs as an inline SVG chart.  Inputs are
 * the rows of runs.h, so a report can be made by any process from the
 * state database at any time.
 *
 * JSON shape (the DESIGN §5 fields, plus both stored values of each
 * divergence and the run's error when it has one):
 *
 *   {"run":7,"started_at":"2026-11-22T10:00:00Z","duration_ms":812,
 *    "total":200,"equal":195,"missing_in_etcd":1,"missing_in_git":2,
 *    "mismatch":2,"consistency":0.975,"verdict":"fail","action":"kill_switch",
 *    "owed":{"count":0,"etcd":0,"git":0,"oldest_age_ms":0,"ids":[],
 *            "entries":[]},
 *    "divergences":[{"id":"R5","kind":"task","class":"mismatch",
 *                    "fields":["status"],"git":{...},"etcd":{...}}]}
 *
 * "owed" is what the outbox still owed at the end of the run (runs.h):
 * "count" IDs, per store counts, the oldest entry's age, the IDs once each
 * (tasks, then swarms, by ID) and one entry per store owed
 * ({"id","kind","store","age_ms"}).  Verdict "pending_drain" when those
 * are the run's only differences.
 *
 * The HTML page is self-contained (inline CSS and SVG, no script, no
 * external asset) and every value from the data is HTML-escaped.
 *
 * Functions write to a caller's FILE; they keep no state (thread-safe).
 */
#ifndef CO_RECONCILE_REPORT_H
#define CO_RECONCILE_REPORT_H

#include "core/runs.h"

#include <stdio.h>

typedef enum co_report_format {
	CO_REPORT_TEXT = 0,
	CO_REPORT_JSON,
	CO_REPORT_MARKDOWN,
	CO_REPORT_HTML,
} co_report_format;

/* "text", "json", "markdown" (or "md"), "html"; CO_EINVAL otherwise. */
int co_report_parse_format(co_report_format *out, const char *name);

/*
 * Write the report of `run` and its divergences `divs` (may be NULL: none)
 * in `fmt` to `f`.  `history` (may be NULL) holds finished runs oldest first
 * for the Markdown history table and the HTML chart; `min_consistency`
 * draws the threshold line in the chart (<= 0: none).  Errors: CO_EIO when
 * writing fails, CO_ENOMEM.
 */
int co_report_write(FILE *f, co_report_format fmt, const co_run *run,
		    const co_divergence_list *divs, const co_run_list *history,
		    double min_consistency);

/*
 * The JSON report as a malloc'd compact string (caller frees), for the HTTP
 * API.  NULL on OOM.
 */
char *co_report_json(const co_run *run, const co_divergence_list *divs);

#endif
