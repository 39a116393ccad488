/*
 * report_timeline.h - the rollout timeline of the HTML report (internal to
 * the report module): the audit rows that moved traffic, oldest first.
 */
#ifndef CO_RECONCILE_REPORT_TIMELINE_H
#define CO_RECONCILE_REPORT_TIMELINE_H

#include "core/audit.h"

#include <stdio.h>

/* The timeline section of the HTML page for rows `l` (NULL or empty: a
 * line saying there is none). */
void co_report__timeline_html(FILE *f, const co_audit_change_list *l);

#endif
