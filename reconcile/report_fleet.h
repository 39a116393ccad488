/*
 * report_fleet.h - the reconciliation report's "owed per router" section
 * (issue 18 point 5): in fleet mode every router keeps its own outbox, so
 * what the run's own outbox owed is only this host's part; the membership
 * records (router/fleet.h: outbox depth and oldest entry's age per live
 * router) say what each router of the fleet still owes.  A router that
 * died is not listed (its lease ran out): `cutover outbox adopt` drains
 * its state dir, or reconciliation repairs what it owed.
 *
 * co_report_write_fleet() writes the report as co_report_write_with_timeline()
 * does, with the section added: JSON gets "owed_by_router": [{"router",
 * "host","state_dir","outbox_depth","outbox_age_ms"}...] (null when the
 * membership could not be read: `members` NULL), text and Markdown a
 * section at the end, HTML one before </body>.  Errors as
 * co_report_write_with_timeline(), CO_ENOMEM.  Keeps no state.
 */
#ifndef CO_RECONCILE_REPORT_FLEET_H
#define CO_RECONCILE_REPORT_FLEET_H

#include "reconcile/report.h"
#include "router/fleet.h"

#include <stddef.h>
#include <stdio.h>

int co_report_write_fleet(FILE *f, co_report_format fmt, const co_run *run,
			  const co_divergence_list *divs, const co_run_list *history,
			  double min_consistency, const co_redact *rd,
			  const co_audit_change_list *timeline,
			  const co_fleet_member *members, size_t n_members);

#endif
