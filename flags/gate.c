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

int co_gate_raises_etcd(const co_flags *from, const co_flags *to)
{
	int op;

	for (op = 0; op < CO_OP__COUNT; op++) {
		co_op_flags a = co_flags_get(from, (co_op)op), b = co_flags_get(to, (co_op)op);
		int sa = a.mode == CO_MODE_ETCD ? 100 : a.mode == CO_MODE_DUAL ? a.etcd_percent : 0;
		int sb = b.mode == CO_MODE_ETCD ? 100 : b.mode == CO_MODE_DUAL ? b.etcd_percent : 0;

		if (sb > sa)
			return 1;
	}
	return 0;
}

/* One store's owed entries against the bounds: 0, or CO_ECONFLICT. */
static int check_owed(const char *target, const co_outbox_stats *o,
		      const co_gate_checks *k, int64_t now_ms)
{
	char age[32], max[32];

	if (o->depth > k->max_outbox_depth)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: the outbox owes %s %lld entries, over the "
				    "bound of %lld (gate.outbox_max_depth); let it drain "
				    "first" OVERRIDE,
				    target, (long long)o->depth,
				    (long long)k->max_outbox_depth);
	if (o->depth > 0 && now_ms - o->oldest_ms > k->max_outbox_age_ms) {
		fmt_age(age, sizeof(age), now_ms - o->oldest_ms);
		fmt_age(max, sizeof(max), k->max_outbox_age_ms);
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: the oldest entry owed to %s is %s old, over "
				    "the bound of %s (gate.outbox_max_age)%s%s; let it "
				    "drain first" OVERRIDE,
				    target, age, max,
				    o->last_error[0] ? "; last error: " : "", o->last_error);
	}
	return 0;
}

static int check_outbox(const co_gate_input *in)
{
	const co_gate_checks *k = in->checks;
	int error;

	if (k->outbox_error)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: cannot read the outbox: %s" OVERRIDE,
				    k->outbox_error);
	if ((error = check_owed("etcd", &k->owed_etcd, k, in->now_ms)) < 0)
		return error;
	return check_owed("git", &k->owed_git, k, in->now_ms);
}

static int check_stores(const co_gate_input *in)
{
	const co_gate_checks *k = in->checks;

	if (k->git_error && k->etcd_error)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: neither store is healthy: git: %s; etcd: "
				    "%s" OVERRIDE,
				    k->git_error, k->etcd_error);
	if (k->etcd_error)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: etcd is not healthy: %s" OVERRIDE,
				    k->etcd_error);
	if (k->git_error)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: git is not healthy: %s" OVERRIDE,
				    k->git_error);
	return 0;
}

static int check_etcd(const co_gate_input *in)
{
	const co_gate_checks *k = in->checks;

	if (k->etcd_error)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: cannot read etcd's status: %s" OVERRIDE,
				    k->etcd_error);
	if (k->etcd_alarms && k->etcd_alarms[0])
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: etcd raises an alarm: %s (`etcdctl alarm "
				    "list`; disarm once fixed)" OVERRIDE,
				    k->etcd_alarms);
	if (k->etcd_leader == 0)
		return co_error_set(CO_ECONFLICT,
				    "go/no-go: etcd has no leader" OVERRIDE);
	return 0;
}

static int check_shadow(const co_gate_input *in)
{
	const co_gate_checks *k = in->checks;
	char win[32];
	double ratio;

	if (k->shadow_reads <= 0)
		return 0;
	ratio = (double)k->shadow_mismatches / (double)k->shadow_reads;
	if (ratio <= k->max_mismatch_ratio)
		return 0;
	fmt_age(win, sizeof(win), in->window_ms);
	return co_error_set(CO_ECONFLICT,
			    "go/no-go: shadow reads disagreed %lld times in %lld within "
			    "the last %s (%.2f%%, over the bound of %.2f%%, "
			    "reconcile.max_mismatch_ratio); see `cutover report`" OVERRIDE,
			    (long long)k->shadow_mismatches, (long long)k->shadow_reads,
			    win, 100.0 * ratio, 100.0 * k->max_mismatch_ratio);
}

static int check_git_back(const co_gate_input *in)
{
	if (in->checks->git_error == NULL)
		return 0;
	return co_error_set(CO_ECONFLICT,
			    "go/no-go: no way back: git does not take writes (%s), so the "
			    "kill switch could not hand these IDs back to git" OVERRIDE,
			    in->checks->git_error);
}

static int check_drain_back(const co_gate_input *in)
{
	const co_outbox_stats *o = &in->checks->owed_git;

	if (in->checks->outbox_error || o->failing == 0)
		return 0; /* an unreadable outbox is check_outbox's refusal */
	return co_error_set(CO_ECONFLICT,
			    "go/no-go: no way back: the drain to git is failing (%lld of "
			    "%lld entries owed to git failed%s%s); a rollback drains "
			    "to git before git decides, so fix git first" OVERRIDE,
			    (long long)o->failing, (long long)o->depth,
			    o->last_error[0] ? "; last error: " : "", o->last_error);
}

int co_gate_check_completed(const co_flags *from, const co_flags *to)
{
	const co_completion *c = &from->completed;
	char what[160] = "";
	int op;

	if (!c->on)
		return 0;
	if (!to->completed.on)
		snprintf(what, sizeof(what), "the completion would be cleared");
	else if (to->kill_switch && !from->kill_switch)
		snprintf(what, sizeof(what), "the kill switch would hand every operation "
					     "back to git");
	for (op = 0; !what[0] && op < CO_OP__COUNT; op++) {
		co_op_flags a = co_flags_get(from, (co_op)op);
		co_op_flags b = co_flags_get(to, (co_op)op);

		if (b.mode != CO_MODE_ETCD &&
		    (a.mode != b.mode || a.etcd_percent != b.etcd_percent))
			snprintf(what, sizeof(what), "%s would go from %s to %s",
				 co_op_name((co_op)op), co_mode_name(a.mode),
				 co_mode_name(b.mode));
	}
	if (!what[0])
		return 0;
	return co_error_set(CO_ECONFLICT,
			    "go/no-go: the cutover was completed at %s by %s%s%s%s: git is "
			    "no longer written and is stale, and %s; a move back needs "
			    "git brought up to date first (`cutover migrate "
			    "--direction etcd-to-git`)" OVERRIDE,
			    c->at, c->by[0] ? c->by : "?", c->reason[0] ? " (" : "",
			    c->reason, c->reason[0] ? ")" : "", what);
}

static int check_completed(const co_gate_input *in)
{
	return co_gate_check_completed(in->from, in->to);
}

static int check_fleet(const co_gate_input *in)
{
	return in->fleet_error ? co_error_set(CO_ECONFLICT, "go/no-go: %s" OVERRIDE,
					      in->fleet_error)
			       : 0;
}

/* Rule 7 applies to a change of the routing, not to the kill switch. */
static int routing_changes(const co_flags *from, const co_flags *to)
{
	co_flags a = *from, b = *to;

	co_flags_set_kill(&a, 0, NULL);
	co_flags_set_kill(&b, 0, NULL);
	memcpy(b.updated_at, a.updated_at, sizeof b.updated_at);
	memcpy(b.updated_by, a.updated_by, sizeof b.updated_by);
	return !co_flags_equal(&a, &b);
}

int co_gate_evaluate(co_gate_verdict v[CO_GATE__COUNT], const co_gate_input *in)
{
	static const char *const names[CO_GATE__COUNT] = {
	    "completed",
	    "path",	       "reconciliation", "legacy writers",
	    "outbox",	       "store health",	 "etcd leader and alarms",
	    "shadow mismatches", "way back: git writable", "way back: git drain",
	    "fleet"};
	int (*const check[CO_GATE__COUNT])(const co_gate_input *) = {
	    check_completed, NULL,	  check_run,	check_legacy,	check_outbox,	  check_stores,
	    check_etcd, check_shadow, check_git_back, check_drain_back,
	    check_fleet};
	int applies[CO_GATE__COUNT], raises, refused = 0, i, error;

	if (in == NULL || in->from == NULL || in->to == NULL || in->window_ms < 0)
		return CO_EINVAL;
	raises = co_gate_raises_etcd(in->from, in->to);
	applies[CO_GATE_COMPLETED] = in->from->completed.on;
	applies[CO_GATE_PATH] = 1;
	applies[CO_GATE_RUN] = co_gate_needs_run(in->from, in->to);
	applies[CO_GATE_LEGACY] = co_gate_needs_legacy_check(in->from, in->to);
	for (i = CO_GATE_OUTBOX; i < CO_GATE_FLEET; i++)
		applies[i] = raises;
	applies[CO_GATE_FLEET] = in->fleet && routing_changes(in->from, in->to);
	for (i = 0; i < CO_GATE__COUNT; i++) {
		co_gate_verdict *x = &v[i];

		x->rule = names[i];
		x->applies = applies[i];
		x->checked = applies[i] && (i < CO_GATE_OUTBOX || i == CO_GATE_FLEET ||
					    in->checks != NULL);
		x->ok = 1;
		x->why[0] = '\0';
		if (!x->applies) {
			snprintf(x->why, sizeof(x->why), "does not apply to this change");
			continue;
		}
		if (!x->checked) {
			snprintf(x->why, sizeof(x->why), "not checked here");
			continue;
		}
		error = i == CO_GATE_PATH ? co_gate_check_path(in->from, in->to)
					  : check[i](in);
		if (error == 0)
			continue;
		x->ok = 0;
		refused++;
		snprintf(x->why, sizeof(x->why), "%s", co_error_last());
	}
	co_error_clear();
	return refused;
}

int co_gate_check(const co_gate_input *in)
{
	co_gate_verdict v[CO_GATE__COUNT];
	char all[1024]; /* as long as an error message gets */
	size_t n = 0;
	int i, refused;

	if ((refused = co_gate_evaluate(v, in)) < 0)
		return co_error_set(CO_EINVAL, "go/no-go: bad input");
	/* Every refusal is told (and, forced, recorded), not only the first. */
	all[0] = '\0';
	for (i = 0; i < CO_GATE__COUNT && n < sizeof(all) - 1; i++) {
		if (v[i].ok)
			continue;
		n += (size_t)snprintf(all + n, sizeof(all) - n, "%s%s", n ? "; " : "",
				      v[i].why);
	}
	return refused == 0 ? 0 : co_error_set(CO_ECONFLICT, "%s", all);
}
