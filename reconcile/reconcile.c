/*
 * reconcile.c - one reconciliation run: drain, snapshot, diff, re-check what
 * was in flight, decide, act, record (DESIGN §5).
 *
 * The snapshot, diff and re-check of what was in flight are examine.c's;
 * this file checks the options, decides the verdict, repairs or trips the
 * kill switch, and records the run.
 *
 * This module does not know the router: the outbox is drained through a
 * hook.  It never decides a claim; repair writes the truth's records with
 * co_store_put / co_store_remove and nothing else.
 */
#include "reconcile.h"

#include "examine.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/redact.h"
#include "flags/flags.h"
#include "flags/trip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Divergences go to the database in batches of this many rows. */
#define DIVERGENCE_BATCH 2000

/*
 * Make the other store equal to the truth for every divergence.  The truth
 * is read again now rather than taken from the diagnosis, so that a write
 * that reached the truth since is not undone by an older copy.
 */
static int repair(co_reconcile_result *res, const co_reconcile_opts *o)
{
	co_store *truth = o->repair == CO_REPAIR_FROM_GIT ? o->git : o->etcd;
	co_store *other = o->repair == CO_REPAIR_FROM_GIT ? o->etcd : o->git;
	size_t i;
	int error = 0;

	for (i = 0; i < res->divergences.n; i++) {
		const co_divergence *d = res->divergences.items[i];
		co_kind kind =
		    strcmp(d->kind, "task") == 0 ? CO_KIND_TASK : CO_KIND_SWARM;
		co_record *r = NULL;
		uint64_t ver;

		co_reconcile__progress(o, "repair", i, res->divergences.n);
		if ((error = co_reconcile__read_one(&r, &ver, truth, kind, d->id)) == 0 &&
		    r == NULL) {
			error = co_store_remove(other, kind, d->id);
			if (error == CO_ENOTFOUND) {
				co_error_clear();
				error = 0;
			} else if (error == 0) {
				res->repaired_removed++;
			}
		} else if (error == 0 && (error = co_store_put(other, r)) == 0) {
			res->repaired_put++;
		}
		co_record_free(r);
		if (error < 0)
			return co_reconcile__prefix_error(error, "repair %s %s from %s",
							  d->kind, d->id,
							  co_store_name(truth));
	}
	co_reconcile__progress(o, "repair", res->divergences.n, res->divergences.n);
	return 0;
}

/*
 * Pull the kill switch with `reason` and record the trip (flags/trip.h: a
 * switch already on keeps its first reason; the trip is audited either way).
 */
static int trip(const co_reconcile_opts *o, const char *reason)
{
	return co_flags_trip(o->flags_path, o->who, "auto-rollback", reason, NULL,
			     o->state, NULL, NULL);
}

static int record_divergences(const co_reconcile_opts *o, co_reconcile_result *res)
{
	co_divergence *batch = NULL;
	size_t i, j, n;
	int error = 0;

	if (!o->state || res->run.id == 0 || res->divergences.n == 0)
		return 0;
	n = res->divergences.n < DIVERGENCE_BATCH ? res->divergences.n : DIVERGENCE_BATCH;
	if ((batch = calloc(n, sizeof(*batch))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (i = 0; i < res->divergences.n; i += n) {
		size_t m = res->divergences.n - i < n ? res->divergences.n - i : n;

		for (j = 0; j < m; j++)
			batch[j] = *res->divergences.items[i + j];
		co_reconcile__progress(o, "record", i, res->divergences.n);
		if ((error = co_runs_add_divergences(o->state, res->run.id, batch, m)) <
		    0)
			break;
	}
	free(batch);
	return error;
}

static int check_opts(const co_reconcile_opts *o)
{
	if (o == NULL || o->git == NULL || o->etcd == NULL)
		return co_error_set(CO_EINVAL, "reconcile: both stores are required");
	if (!(o->min_consistency >= 0 && o->min_consistency <= 1))
		return co_error_set(CO_EINVAL,
				    "reconcile: min_consistency %g not in 0..1",
				    o->min_consistency);
	if (!(o->max_mismatch_ratio >= 0 && o->max_mismatch_ratio <= 1))
		return co_error_set(CO_EINVAL,
				    "reconcile: max_mismatch_ratio %g not in 0..1",
				    o->max_mismatch_ratio);
	if (o->grace_ms < 0 || o->max_rechecks < 0)
		return co_error_set(CO_EINVAL,
				    "reconcile: negative grace or recheck count");
	if (o->repair != CO_REPAIR_NONE && o->repair != CO_REPAIR_FROM_GIT &&
	    o->repair != CO_REPAIR_FROM_ETCD)
		return co_error_set(CO_EINVAL, "reconcile: unknown repair source");
	return 0;
}

/*
 * Decide the verdict: "fail" (reason written: "reconcile run N: ..."),
 * "pending_drain" or "pass".  The thresholds judge the divergences: owed
 * IDs count against neither (they are not divergent, and the recorded
 * consistency already leaves them out of `equal`).  A failing run fails
 * whatever it owed: divergence wins over pending.
 */
static const char *decide(co_reconcile_result *res, const co_reconcile_opts *o)
{
	co_run *r = &res->run;
	double settled;
	int low, many;
	char why[256] = "";

	r->consistency = r->total ? (double)r->equal / (double)r->total : 1.0;
	settled = r->total ? (double)(r->equal + r->owed) / (double)r->total : 1.0;
	low = settled < o->min_consistency;
	many = (double)r->mismatch > o->max_mismatch_ratio * (double)r->total;
	if (!low && !many)
		return r->owed > 0 ? "pending_drain" : "pass";
	if (low)
		snprintf(why, sizeof(why), "consistency %.4f%% below %.4f%%",
			 100.0 * settled, 100.0 * o->min_consistency);
	if (many)
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "%s%lld mismatches over %g%% of %lld records", low ? "; " : "",
			 (long long)r->mismatch, 100.0 * o->max_mismatch_ratio,
			 (long long)r->total);
	snprintf(res->reason, sizeof(res->reason),
		 "reconcile run %lld: %s (%lld missing_in_etcd, %lld missing_in_git, "
		 "%lld mismatch)",
		 (long long)r->id, why, (long long)r->missing_in_etcd,
		 (long long)r->missing_in_git, (long long)r->mismatch);
	return "fail";
}

static int set_str(char **dst, const char *s)
{
	char *c = strdup(s);

	if (c == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	free(*dst);
	*dst = c;
	return 0;
}

void co_reconcile_result_free(co_reconcile_result *r)
{
	if (r == NULL)
		return;
	free(r->run.verdict);
	free(r->run.action);
	free(r->run.error);
	co_owed_list_clear(&r->run.owed_list);
	co_divergence_list_clear(&r->divergences);
	free(r);
}

int co_reconcile_passed(const co_reconcile_result *r)
{
	return r && r->run.verdict && strcmp(r->run.verdict, "pass") == 0;
}

int co_reconcile_pending_drain(const co_reconcile_result *r)
{
	return r && r->run.verdict && strcmp(r->run.verdict, "pending_drain") == 0;
}

int co_reconcile_parse_repair(co_repair_from *out, const char *name)
{
	if (name && strcmp(name, "git") == 0)
		*out = CO_REPAIR_FROM_GIT;
	else if (name && strcmp(name, "etcd") == 0)
		*out = CO_REPAIR_FROM_ETCD;
	else
		return co_error_set(CO_EINVAL,
				    "--repair: \"%s\" is not a store (git or etcd)",
				    name ? name : "");
	return 0;
}

int co_reconcile_run(co_reconcile_result **out, const co_reconcile_opts *opts)
{
	co_reconcile_opts o;
	co_reconcile_result *res = NULL;
	co_redact *own_redact = NULL;
	const char *verdict;
	int error, pass, dead;
	char msg[1024];

	if ((error = check_opts(opts)) < 0)
		return error;
	o = *opts;
	if (o.who == NULL)
		o.who = "reconcile";
	/* No policy given: the default one, never none (redact.h). */
	if (o.redact == NULL && (error = co_redact_default(&own_redact)) < 0)
		return error;
	if (o.redact == NULL)
		o.redact = own_redact;
	if ((res = calloc(1, sizeof(*res))) == NULL) {
		co_redact_free(own_redact);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	res->run.started_at = co_state_now_ms();
	if (o.state &&
	    (error = co_runs_begin(&res->run.id, o.state, res->run.started_at)) < 0)
		goto done;

	if (o.drain) {
		co_reconcile__progress(&o, "drain", 0, 0);
		if ((error = o.drain(o.drain_ctx)) < 0) {
			/* What could not be drained is pending, hence in flight. */
			snprintf(res->warning, sizeof(res->warning), "outbox drain: %s",
				 co_error_last());
			co_error_clear();
		}
	}
	if ((error = co_reconcile__examine(res, &o)) < 0) {
		/* Leave a finished, failed row behind so that the go/no-go gate
		 * does not wave a stage through on an older pass. */
		snprintf(msg, sizeof(msg), "%s", co_error_last());
		dead = error;
		/* Counts of a run that did not complete mean nothing. */
		co_owed_list_clear(&res->run.owed_list);
		res->run.owed = res->run.owed_etcd = res->run.owed_git = 0;
		res->run.owed_oldest_ms = 0;
		res->run.duration_ms = co_state_now_ms() - res->run.started_at;
		if (o.state && res->run.id && set_str(&res->run.verdict, "fail") == 0 &&
		    set_str(&res->run.action, "none") == 0 &&
		    set_str(&res->run.error, msg) == 0)
			co_runs_finish(o.state, &res->run);
		error = co_error_set(dead, "%s", msg);
		goto done;
	}

	verdict = decide(res, &o);
	/* pending_drain never trips the kill switch: nothing diverged, and
	 * what is owed is in the durable outbox. */
	pass = strcmp(verdict, "fail") != 0;
	if ((error = set_str(&res->run.verdict, verdict)) < 0 ||
	    (error = set_str(&res->run.action, "none")) < 0)
		goto done;
	if (o.repair != CO_REPAIR_NONE && res->divergences.n > 0) {
		/* The diagnosis is recorded as it was; the action says what was
		 * done about it. */
		error = repair(res, &o);
		if (set_str(&res->run.action, o.repair == CO_REPAIR_FROM_GIT
						  ? "repair:git"
						  : "repair:etcd") < 0)
			error = error < 0 ? error : CO_ENOMEM;
		if (error < 0) {
			snprintf(msg, sizeof(msg), "%s", co_error_last());
			set_str(&res->run.error, msg);
		}
		if (o.state) {
			char detail[160], why[64];

			/* Repair rewrites data: operators find it beside the trips. */
			snprintf(detail, sizeof(detail),
				 "%s: %lld written, %lld removed%s",
				 res->run.action ? res->run.action : "repair",
				 (long long)res->repaired_put,
				 (long long)res->repaired_removed,
				 error < 0 ? " (incomplete)" : "");
			snprintf(why, sizeof(why), "reconcile run %lld",
				 (long long)res->run.id);
			co_audit_change_add(o.state, o.who, "repair", detail, why);
		}
	} else if (!pass && !o.no_rollback && o.flags_path) {
		if ((error = trip(&o, res->reason)) < 0) {
			snprintf(msg, sizeof(msg), "%s", co_error_last());
			set_str(&res->run.error, msg);
		} else {
			error = set_str(&res->run.action, "kill_switch");
		}
	}
	res->run.duration_ms = co_state_now_ms() - res->run.started_at;
	if (o.state && res->run.id) {
		int e2;

		if ((e2 = record_divergences(&o, res)) < 0 ||
		    (e2 = co_runs_finish(o.state, &res->run)) < 0)
			error = error < 0 ? error : e2;
	}
	if (error < 0)
		goto done;
	*out = res;
	res = NULL;
done:
	co_reconcile_result_free(res);
	co_redact_free(own_redact);
	return error;
}
