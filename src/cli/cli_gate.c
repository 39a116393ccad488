/*
 * cli_gate.c - what the go/no-go gate (flags/gate.h) judges, read for the
 * commands that change the flags: the latest reconciliation run, the
 * foreign commits of the git branch, and, for a change that raises etcd's
 * share as a primary, the pre-switch checks: both stores asked (git pinged
 * and its repository writable, etcd's status and alarms), the outbox
 * towards each store, and the shadow mismatch rate.
 *
 * The gate decides; this file only reads, and only what the change needs:
 * a move back reads nothing but the flags.  `--dry-run` gets every rule's
 * verdict (co_cli_gate_verdicts); a real change gets the refusals joined
 * (co_cli_gate), exactly the same reads.
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/outbox.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "../store/etcd_store.h"
#include "../store/git_log.h"
#include "flags/gate.h"
#include "router/fleet.h"

#include <errno.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Most foreign commits the gate reads: one names the writer. */
#define GATE_MAX_COMMITS 16

/* What the reads hold for the gate's input (which borrows from it). */
typedef struct gate_read {
	co_gate_input in;
	co_gate_commit gc[GATE_MAX_COMMITS];
	co_git_foreign *fc;
	co_run *run;
	co_gate_checks checks;
	co_etcd_status etcd;
	char ferr[512], git_err[512], etcd_err[512], outbox_err[512], fleet_err[600];
} gate_read;

/*
 * "" if this process can write git's objects and refs (a local repository),
 * else why not.  A URL repository is written through its mirror by push:
 * the ping (a fetch) is all that is asked of it here.
 */
static void git_writable(char *why, size_t len, const char *repo_path)
{
	static const char *const dirs[] = {"objects", "refs/heads"};
	git_repository *repo = NULL;
	char path[4200];
	size_t i;

	why[0] = '\0';
	if (access(repo_path, F_OK) < 0)
		return; /* a URL */
	git_libgit2_init();
	if (git_repository_open_ext(&repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH,
				    NULL) < 0) {
		const git_error *e = git_error_last();

		snprintf(why, len, "%s: %s", repo_path, e ? e->message : "cannot open");
		goto done;
	}
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", git_repository_path(repo), dirs[i]);
		if (access(path, W_OK) < 0) {
			int e = errno;

			/* cut the path, never the reason */
			snprintf(why, len, "%.300s is not writable: %s", path,
				 strerror(e));
			break;
		}
	}
done:
	git_repository_free(repo);
	git_libgit2_shutdown();
}

/*
 * Shadow reads sampled out (core/shadow.h) were never compared, so they
 * cannot disagree: the mismatch ratio is over the reads that were.
 */
int co_cli_shadow_compared_reads(int64_t *reads, const co_config *c, co_state *st,
				 int64_t since)
{
	int64_t by_op[CO_OP__COUNT];
	int op, error;

	for (op = 0; op < CO_OP__COUNT; op++)
		if (co_shadow_percent(&c->shadow, (co_op)op) < 100)
			break;
	if (op == CO_OP__COUNT)
		return 0; /* every read compared: the count stands */
	if ((error = co_audit_shadow_reads_by_op(by_op, CO_OP__COUNT, st, since)) < 0)
		return error;
	*reads = co_shadow_compared(&c->shadow, by_op);
	return 0;
}

int co_cli_git_way_back(char *why, size_t len, co_cli *ctx)
{
	const co_config *c;
	co_store *git = NULL;
	int error;

	why[0] = '\0';
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if (co_cli_open_backend(&git, ctx, "git") < 0 || co_store_ping(git) < 0)
		snprintf(why, len, "%s", co_error_last());
	else
		git_writable(why, len, c->git_repo);
	co_error_clear();
	co_store_free(git);
	return why[0] ? 1 : 0;
}

/* Rules 4 and 5: ask both stores, the outbox and the shadow logs. */
static void read_checks(gate_read *g, co_cli *ctx, const co_config *c, co_state *st)
{
	co_gate_checks *k = &g->checks;
	co_store *git = NULL, *etcd = NULL;

	k->max_outbox_depth = c->gate_outbox_max_depth;
	k->max_outbox_age_ms = c->gate_outbox_max_age_ms;
	k->max_mismatch_ratio = c->gate_max_shadow_mismatch_ratio;
	if (co_cli_open_backend(&git, ctx, "git") < 0 || co_store_ping(git) < 0)
		snprintf(g->git_err, sizeof(g->git_err), "%s", co_error_last());
	else
		git_writable(g->git_err, sizeof(g->git_err), c->git_repo);
	k->git_error = g->git_err[0] ? g->git_err : NULL;
	if (co_cli_open_backend(&etcd, ctx, "etcd") < 0 ||
	    co_etcd_store_status(&g->etcd, etcd) < 0)
		snprintf(g->etcd_err, sizeof(g->etcd_err), "%s", co_error_last());
	k->etcd_error = g->etcd_err[0] ? g->etcd_err : NULL;
	k->etcd_leader = g->etcd.leader;
	k->etcd_alarms = g->etcd.alarms;
	if (co_outbox_stats_of(&k->owed_git, st, "git") < 0 ||
	    co_outbox_stats_of(&k->owed_etcd, st, "etcd") < 0 ||
	    co_audit_shadow_counts(&k->shadow_reads, &k->shadow_mismatches, st,
				   g->in.now_ms - g->in.window_ms) < 0 ||
	    co_cli_shadow_compared_reads(&k->shadow_reads, c, st,
					 g->in.now_ms - g->in.window_ms) < 0)
		snprintf(g->outbox_err, sizeof(g->outbox_err), "%s", co_error_last());
	k->outbox_error = g->outbox_err[0] ? g->outbox_err : NULL;
	co_error_clear();
	co_store_free(git);
	co_store_free(etcd);
	g->in.checks = k;
}

/* Read what the gate needs for this change into g (gate_read_free after). */
static int gate_read_all(gate_read *g, co_cli *ctx, co_state *st, const co_flags *from,
			 const co_flags *to)
{
	const co_config *c;
	size_t nf = 0, i;
	int error;

	memset(g, 0, sizeof(*g));
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	g->in.from = from;
	g->in.to = to;
	g->in.now_ms = co_state_now_ms();
	g->in.window_ms = c->go_no_go_window_ms;
	if (co_gate_needs_run(from, to)) {
		error = co_runs_latest(&g->run, st);
		if (error < 0 && error != CO_ENOTFOUND)
			return error;
		co_error_clear();
		g->in.latest = g->run;
	}
	if (co_gate_needs_legacy_check(from, to)) {
		error =
		    co_git_log_foreign(&g->fc, &nf, c->git_repo, c->git_branch,
				       g->in.now_ms - g->in.window_ms, GATE_MAX_COMMITS);
		if (error < 0) {
			snprintf(g->ferr, sizeof(g->ferr), "%s", co_error_last());
			g->in.foreign_error = g->ferr;
		}
		for (i = 0; i < nf; i++) {
			g->gc[i].short_id = g->fc[i].short_id;
			g->gc[i].author = g->fc[i].author;
			g->gc[i].time_ms = g->fc[i].time_ms;
		}
		g->in.foreign = g->gc;
		g->in.n_foreign = nf;
	}
	if (co_gate_raises_etcd(from, to))
		read_checks(g, ctx, c, st);
	if (c->fleet_enabled) { /* rule 7: every router on the current epoch */
		co_fleet *fleet = NULL;

		if (co_fleet_open_config(&fleet, c) < 0)
			snprintf(g->fleet_err, sizeof(g->fleet_err), "%s", co_error_last());
		else
			co_fleet_gate_read(g->fleet_err, sizeof(g->fleet_err), fleet,
					   c->gate_outbox_max_age_ms);
		co_fleet_close(fleet);
		g->in.fleet = 1;
		g->in.fleet_error = g->fleet_err[0] ? g->fleet_err : NULL;
	}
	return 0;
}

static void gate_read_free(gate_read *g)
{
	free(g->fc);
	co_run_free(g->run);
}

int co_cli_gate_verdicts(co_gate_verdict *v, co_cli *ctx, co_state *st,
			 const co_flags *from, const co_flags *to)
{
	gate_read g;
	int error;

	if ((error = gate_read_all(&g, ctx, st, from, to)) == 0 &&
	    co_gate_evaluate(v, &g.in) < 0)
		error = co_error_set(CO_EINVAL, "go/no-go: bad input");
	gate_read_free(&g);
	return error;
}

int co_cli_gate(char *note, size_t note_len, co_cli *ctx, co_state *st,
		const co_flags *from, const co_flags *to, int force)
{
	gate_read g;
	int error;

	note[0] = '\0';
	if ((error = gate_read_all(&g, ctx, st, from, to)) < 0)
		goto done;
	error = co_gate_check(&g.in);
	if (error == CO_ECONFLICT && force) {
		snprintf(note, note_len, "forced past %s", co_error_last());
		fprintf(stderr, "cutover: warning: --force: %s\n", co_error_last());
		co_error_clear();
		error = 0;
	}
done:
	gate_read_free(&g);
	return error;
}
