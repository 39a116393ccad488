/*
 * gate.c - the go/no-go decision for a flag change (DESIGN §4).
 *
 * The rules are in gate.h.  Everything the gate needs is handed to it (the
 * latest run, the clock, the foreign commits), so that it is a function of
 * its input: the CLI and the admin API read the state and the repository,
 * tests feed it plain values.  The kill switch is set aside when comparing
 * routes: a stage change made while the switch is on takes effect when it
 * is lifted, so it must pass the same gate now.
 */
#include "gate.h"

#include "flags/stage.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

#define OVERRIDE " (use --force to override)"

/* "4m", "2h", "3d": a rough age for messages. */
static void fmt_age(char *buf, size_t len, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(buf, len, "%lldms", (long long)ms);
	else if (ms < 120 * 1000)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else if (ms < 120LL * 60 * 1000)
		snprintf(buf, len, "%lldm", (long long)(ms / 60000));
	else if (ms < 48LL * 3600 * 1000)
		snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
	else
		snprintf(buf, len, "%lldd", (long long)(ms / 86400000));
}

int co_gate_needs_run(const co_flags *from, const co_flags *to)
{
	return co_stage_is_forward(from, to);
}

int co_gate_needs_legacy_check(const co_flags *from, const co_flags *to)
{
	co_flags a = *from, b = *to;

	a.kill_switch = 0;
	b.kill_switch = 0;
	return !co_flags_etcd_primary_possible(&a) && co_flags_etcd_primary_possible(&b);
}

/* The mode routers follow for `op` under f: the kill switch routes as shadow. */
static co_op_flags effective(const co_flags *f, co_op op)
{
	co_op_flags s = co_flags_get(f, op);

	if (f->kill_switch)
		s.mode = CO_MODE_SHADOW;
	return s;
}

int co_gate_skipped_shadow(int *backward, const co_flags *from, const co_flags *to)
{
	int op;

	for (op = 0; op < CO_OP__COUNT; op++) {
		/* Forward: configured modes, the kill switch set aside. */
		if (co_flags_get(from, (co_op)op).mode == CO_MODE_GIT &&
		    co_op_flags_etcd_capable(co_flags_get(to, (co_op)op))) {
			*backward = 0;
			return op;
		}
		/* Back: what routers do now, and will do. */
		if (co_op_flags_etcd_capable(effective(from, (co_op)op)) &&
		    effective(to, (co_op)op).mode == CO_MODE_GIT) {
			*backward = 1;
			return op;
		}
	}
	return -1;
}

static void setting_name(char *buf, size_t len, co_op_flags s)
{
	if (s.mode == CO_MODE_DUAL)
		snprintf(buf, len, "dual %d", s.etcd_percent);
	else
		snprintf(buf, len, "%s", co_mode_name(s.mode));
}

int co_gate_check_path(const co_flags *from, const co_flags *to)
{
	int backward = 0, op = co_gate_skipped_shadow(&backward, from, to);
	char a[32], b[32];

	if (op < 0)
		return 0;
	setting_name(a, sizeof(a), co_flags_get(from, (co_op)op));
	setting_name(b, sizeof(b), co_flags_get(to, (co_op)op));
	if (backward)
		return co_error_set(
		    CO_ECONFLICT,
		    "go/no-go: %s would go from %s straight to git: a router that has "
		    "not seen the change yet still picks winners in etcd, which "
		    "git-mode writes never reach; go through shadow first (`cutover "
		    "stage shadow`), or pull the kill switch (`cutover rollback`) to "
		    "get out now" OVERRIDE,
		    co_op_name((co_op)op), a);
	return co_error_set(
	    CO_ECONFLICT,
	    "go/no-go: %s would go from git straight to %s: in git mode nothing "
	    "is mirrored to etcd, and a router that has not seen the change yet "
	    "still writes git alone while another picks winners in etcd; go "
	    "through shadow first (`cutover stage shadow`, then `cutover "
	    "reconcile`)" OVERRIDE,
	    co_op_name((co_op)op), b);
}

static int check_run(const co_gate_input *in)
{
	const co_run *r = in->latest;
	char age[32], win[32];
	int64_t ended;

	fmt_age(win, sizeof(win), in->window_ms);
	if (r == NULL)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: no reconciliation run has finished; run "
				    "`cutover reconcile` first" OVERRIDE);
	if (r->verdict && strcmp(r->verdict, "pending_drain") == 0) {
		/* Not a pass: acknowledged writes were still owed, so the stores
		 * were not shown to agree.  Name what an operator can look for. */
		const co_owed *o = co_run_oldest_owed(r);
		char oldest[192] = "";

		fmt_age(age, sizeof(age), r->owed_oldest_ms);
		if (o)
			snprintf(oldest, sizeof(oldest), "%s %s, owed to %s, ", o->kind,
				 o->id, o->target);
		return co_error_set(
		    CO_ECONFLICT,
		    "go/no-go: latest reconciliation run %lld is pending_drain: the "
		    "outbox still owed %lld acknowledged write%s (etcd %lld, git %lld; "
		    "oldest %s%s old); nothing diverged, but that is not a pass: let the "
		    "outbox drain and run `cutover reconcile` again, or `cutover stage "
		    "STAGE --wait-drain SECONDS`" OVERRIDE,
		    (long long)r->id, (long long)r->owed, r->owed == 1 ? "" : "s",
		    (long long)r->owed_etcd, (long long)r->owed_git, oldest, age);
	}
	if (r->verdict == NULL || strcmp(r->verdict, "pass") != 0)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: latest reconciliation run %lld %s "
				    "(consistency %.4f%%)" OVERRIDE,
				    (long long)r->id,
				    r->verdict ? "failed" : "did not finish",
				    r->consistency * 100.0);
	ended = r->started_at + r->duration_ms;
	fmt_age(age, sizeof(age), in->now_ms - ended);
	if (ended < in->now_ms - in->window_ms)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: latest reconciliation run %lld passed %s "
				    "ago, older than the go/no-go window of %s; run "
				    "`cutover reconcile` again" OVERRIDE,
				    (long long)r->id, age, win);
	return 0;
}

static int check_legacy(const co_gate_input *in)
{
	const co_gate_commit *c = NULL;
	char age[32], win[32];
	size_t i;

	fmt_age(win, sizeof(win), in->window_ms);
	if (in->foreign_error)
		return co_error_set(
		    CO_ECONFLICT,
		    "go/no-go: cannot check for legacy writers: %s" OVERRIDE,
		    in->foreign_error);
	/* The newest foreign commit inside the window names the writer. */
	for (i = 0; i < in->n_foreign; i++) {
		if (in->foreign[i].time_ms < in->now_ms - in->window_ms)
			continue;
		if (c == NULL || in->foreign[i].time_ms > c->time_ms)
			c = &in->foreign[i];
	}
	if (c == NULL)
		return 0;
	fmt_age(age, sizeof(age), in->now_ms - c->time_ms);
	return co_error_set(
	    CO_ECONFLICT,
	    "go/no-go: legacy writer on the git branch: commit %s by %s "
	    "%s ago, within the go/no-go window of %s; etcd cannot become "
	    "a primary while legacy clients commit with plain git (stop "
	    "them, or let `cutover migrate --follow` catch up and wait "
	    "out the window)" OVERRIDE,
	    c->short_id ? c->short_id : "?", c->author ? c->author : "?", age, win);
}

/* Append a rule's refusal (CO_ECONFLICT) to all[*n]; other errors return. */
static int told(char *all, size_t len, size_t *n, int error)
{
	if (error != CO_ECONFLICT)
		return error;
	*n +=
	    (size_t)snprintf(all + *n, len - *n, "%s%s", *n ? "; " : "", co_error_last());
	if (*n >= len)
		*n = len - 1;
	return 0;
}

int co_gate_check(const co_gate_input *in)
{
	char all[1024]; /* as long as an error message gets */
	size_t n = 0;
	int error;

	if (in == NULL || in->from == NULL || in->to == NULL || in->window_ms < 0)
		return co_error_set(CO_EINVAL, "go/no-go: bad input");
	/* Every refusal is told (and, forced, recorded), not only the first. */
	all[0] = '\0';
	if ((error = told(all, sizeof(all), &n, co_gate_check_path(in->from, in->to))) <
		0 ||
	    (co_gate_needs_run(in->from, in->to) &&
	     (error = told(all, sizeof(all), &n, check_run(in))) < 0) ||
	    (co_gate_needs_legacy_check(in->from, in->to) &&
	     (error = told(all, sizeof(all), &n, check_legacy(in))) < 0))
		return error;
	return n == 0 ? 0 : co_error_set(CO_ECONFLICT, "%s", all);
}
