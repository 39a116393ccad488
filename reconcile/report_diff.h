/*
 * report_diff.h - the field-level diff of one divergence in each report
 * format (internal to the report module: report.c is its only user).
 *
 * A divergence row holds both stored values (redacted when recorded,
 * runs.h); these helpers diff them field by field with co_redact_diff,
 * which redacts again (rows written before redaction existed are hidden
 * too), and render the paths that differ, git's value → etcd's.  Nothing
 * here keeps state; the lists are the caller's.
 */
#ifndef CO_RECONCILE_REPORT_DIFF_H
#define CO_RECONCILE_REPORT_DIFF_H

#include "core/redact.h"
#include "core/runs.h"

#include <cjson/cJSON.h>
#include <stdio.h>

/*
 * The diff of divergence `d` appended to *out (co_field_diff_list_clear).
 * A value that is not a JSON object is diffed as absent, so that a report
 * of an odd row still renders.  CO_ENOMEM.
 */
int co_report__diff(co_field_diff_list *out, const co_redact *rd, const co_divergence *d);

/* d's stored values, redacted with rd, into *git / *etcd (NULL when absent). */
int co_report__values(char **git, char **etcd, const co_redact *rd,
		      const co_divergence *d);

/*
 * The diff as a JSON array: {"path","change":"changed|added|removed|redacted",
 * "git":value,"etcd":value} (a side absent is left out) plus "redacted":
 * "equal|differs|unknown" for a hidden field.  NULL on OOM.
 */
cJSON *co_report__diff_json(const co_field_diff_list *l);

/* One entry as text: `status: "available" → "claimed"`,
 * `metadata.api_token: [redacted, differs]`, `x: (absent) → 1`. */
void co_report__diff_text(FILE *f, const co_field_diff *d);

/*
 * The lines of d, each after `prefix`, joined by `sep`: for a mismatch one
 * per differing path (co_report__diff_text), for a missing record its one
 * value ("only in git: {...}").  Returns how many lines (>= 0) or a
 * negative CO_E* code.
 */
int co_report__diff_lines(FILE *f, const co_redact *rd, const co_divergence *d,
			  const char *prefix, const char *sep);

/* The diff as an HTML table (class "diff"), every value escaped. */
void co_report__diff_html(FILE *f, const co_field_diff_list *l);

/* The five HTML special characters of s escaped; NULL prints nothing. */
void co_report__html(FILE *f, const char *s);

#endif
