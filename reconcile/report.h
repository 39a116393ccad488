/*
 * report.h - reconciliation reports: text, JSON, Markdown, HTML (DESIGN §5).
 *
 * A report shows one run (counts, consistency, verdict, action) and its
 * divergences, and, in Markdown and HTML, the history of runs; the HTML
 * page draws consistency over the runs as an inline SVG chart.  Inputs are
 * the rows of runs.h, so a report can be made by any process from the
 * state database at any time.
 *
 * Every value shown is redacted first with the policy given (redact.h;
 * NULL: the default one): a hidden field reads "[redacted, equal]" or
 * "[redacted, differs]", never its value, in every format.
 *
 * A divergence is shown as its field-level diff: the JSON paths that
 * differ, git's value → etcd's ("status": "available" → "claimed"),
 * nested objects by key, arrays by index ("blocked_by[1]"), a key on one
 * side only as added or removed.  Text and Markdown show a missing
 * record's one value on a line; HTML and JSON diff it against nothing.
 *
 * JSON shape (the DESIGN §5 fields, plus both stored values of each
 * divergence, redacted, its diff, and the run's error when it has one):
 *
 *   {"run":7,"started_at":"2026-11-22T10:00:00Z","duration_ms":812,
 *    "total":200,"equal":195,"missing_in_etcd":1,"missing_in_git":2,
 *    "mismatch":2,"consistency":0.975,"verdict":"fail","action":"kill_switch",
 *    "owed":{"count":0,"etcd":0,"git":0,"oldest_age_ms":0,"ids":[],
 *            "entries":[]},
 *    "divergences":[{"id":"R5","kind":"task","class":"mismatch",
 *                    "fields":["status"],"git":{...},"etcd":{...},
 *                    "diff":[{"path":"status","change":"changed",
 *                             "git":"available","etcd":"claimed"},
 *                            {"path":"metadata.api_token","change":"redacted",
 *                             "redacted":"differs","git":"[redacted, differs]",
 *                             "etcd":"[redacted, differs]"}]}]}
 *
 * "change" is changed, added (etcd only), removed (git only) or redacted;
 * a side that does not hold the path has no "git" / "etcd" member.
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

#include "core/redact.h"
#include "core/runs.h"

#include "core/audit.h"
#include "core/state.h"

#include <cjson/cJSON.h>
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
 * draws the threshold line in the chart (<= 0: none).  `rd` (borrowed; NULL:
 * the default policy) redacts every value shown.  Errors: CO_EIO when
 * writing fails, CO_ENOMEM, and CO_EIO from redact.h when no policy can be
 * made (then nothing is written).
 */
int co_report_write(FILE *f, co_report_format fmt, const co_run *run,
		    const co_divergence_list *divs, const co_run_list *history,
		    double min_consistency, const co_redact *rd);

/*
 * co_report_write with the rollout timeline: `timeline` (may be NULL)
 * holds audit rows oldest first (co_report_timeline_load), drawn as a
 * section of the HTML page; the other formats ignore it.  Same errors.
 */
int co_report_write_with_timeline(FILE *f, co_report_format fmt, const co_run *run,
				  const co_divergence_list *divs,
				  const co_run_list *history, double min_consistency,
				  const co_redact *rd,
				  const co_audit_change_list *timeline);

/*
 * The rollout timeline from the state database into *out (which must be
 * empty; co_audit_change_list_clear): at most `limit` of the newest rows
 * of kind rollout, flags, trip, resume and gate (audit.h), oldest first.
 * CO_EIO, CO_ENOMEM.
 */
int co_report_timeline_load(co_audit_change_list *out, co_state *st, size_t limit);

/*
 * The JSON report as a malloc'd compact string (caller frees), for the HTTP
 * API, redacted with `rd` (NULL: the default policy).  NULL on OOM or when
 * no policy can be made.
 */
char *co_report_json(const co_run *run, const co_divergence_list *divs,
		     const co_redact *rd);

/*
 * The same JSON as a cJSON object (caller owns it; cJSON_Delete), for a
 * caller that puts runs into a document of its own (GET /v1/admin/runs).
 * `rd` redacts the divergences' values: it must not be NULL when `divs`
 * holds any.  NULL on OOM.
 */
cJSON *co_report_run_json(const co_run *run, const co_divergence_list *divs,
			  const co_redact *rd);

#endif
