/*
 * cmd_stage.c - `cutover stage git|shadow|10|50|100|etcd [--force]`.
 *
 * A stage sets every operation at once (flags/stage.h).  Moving forward is
 * the risky direction, so it passes the go/no-go gate: a recent passing
 * reconciliation, and no legacy git writer when etcd could become a
 * primary (co_cli_gate).  Moving back needs no passing run (it is how an
 * operator gets out of trouble) but, like moving forward, goes between git
 * and a stage where etcd can be primary only through shadow (flags/gate.h,
 * rule 3); the kill switch is the instant way out.  The kill switch is left alone
 * (rollback and resume own it); if it is on, the new stage takes effect on resume, and
 * the command says so.
 */
#include "cli.h"

#include "../core/error.h"
#include "../core/state.h"
#include "flags/stage.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_STAGE "cutover stage git|shadow|10|50|100|etcd [--reason TEXT] [--force]"

static const char h_stage[] =
    "usage: " U_STAGE "\n\n"
    "Move every operation to a rollout stage:\n"
    "  git     git only               shadow  git serves, etcd mirrors and is compared\n"
    "  10|50|100  dual: etcd is primary for that percent of IDs, the other mirrors\n"
    "  etcd    etcd serves, git is kept current through the outbox\n\n"
    "Moving forward passes the go/no-go gate: the latest reconciliation run must\n"
    "have passed within reconcile.go_no_go_window (default 1h), and leaving\n"
    "git/shadow for a stage where etcd can be primary is refused while the git\n"
    "branch holds a commit not made by cutover within that window (the refusal\n"
    "names the commit and its author).  A refusal exits 3 (conflict); --force\n"
    "overrides it and the override is recorded in the audit trail.  Between git\n"
    "and a stage where etcd can be primary (10, 50, 100, etcd) there is always\n"
    "shadow, both ways: from git go to shadow first; from 10 or above go to\n"
    "shadow (or pull the kill switch: `cutover rollback`) before git.  Moving\n"
    "back needs no reconciliation.  The kill switch is left as it is.\n\n"
    "  --reason TEXT  why, for the audit trail\n"
    "  --force        go ahead despite the go/no-go gate\n\n"
    "Examples:\n"
    "  cutover reconcile && cutover stage 10 --reason 'canary'\n"
    "  cutover stage shadow --reason 'back off'\n\n"
    "Exit status: 0 moved (or already there), 1 bad usage, 2 state unavailable\n"
    "(or the flags lock held by another writer for 10 s: it names the writer),\n"
    "3 refused by the go/no-go gate, or the flags changed while it ran.\n";

int co_cli_stage(int argc, char **argv, co_cli *ctx)
{
	const char *reason = NULL, *pos[1];
	int force = 0;
	co_cli_opt opts[] = {
	    {"reason", &reason, NULL}, {"force", NULL, &force}, {NULL, NULL, NULL}};
	const co_config *c;
	co_state *st = NULL;
	co_flags from, to;
	co_stage stage, was;
	char note[1024];
	size_t n;
	int error, lock = -1;

	if ((error = co_cli_parse(pos, 1, &n, ctx, argc, argv, opts, U_STAGE, h_stage)) !=
	    0)
		return error < 0 ? error : 0;
	if (n == 0)
		return co_cli_usage_error(U_STAGE, "stage: missing the stage");
	if (co_stage_parse(&stage, pos[0]) < 0)
		return co_cli_error_prefix(CO_EINVAL, "stage");
	/* From the load to the save no other writer changes the flags. */
	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = lock = co_flags_lock(c->flags_path)) < 0 ||
	    (error = co_flags_load(&from, c->flags_path)) < 0)
		goto done;
	to = from;
	if ((error = co_stage_apply(&to, stage)) < 0)
		goto done;
	was = co_stage_of(&from);
	if (co_flags_equal(&from, &to)) {
		if (ctx->json)
			printf("{\"from\":\"%s\",\"to\":\"%s\",\"changed\":false}\n",
			       co_stage_name(was), co_stage_name(stage));
		else
			printf("already at stage %s\n", co_stage_name(stage));
		goto done;
	}
	if ((error = co_state_open(&st, c->state_dir)) < 0 ||
	    (error = co_cli_gate(note, sizeof(note), ctx, st, &from, &to, force)) < 0 ||
	    (error = co_cli_flags_commit(ctx, st, "stage", &from, &to, note, reason, 0)) <
		0)
		goto done;
	if (ctx->json) {
		cJSON *o = cJSON_CreateObject();
		char *s;

		cJSON_AddStringToObject(o, "from", co_stage_name(was));
		cJSON_AddStringToObject(o, "to", co_stage_name(stage));
		cJSON_AddBoolToObject(o, "changed", 1);
		cJSON_AddBoolToObject(o, "forced", note[0] != '\0');
		cJSON_AddBoolToObject(o, "kill_switch", to.kill_switch);
		if ((s = cJSON_PrintUnformatted(o)) != NULL)
			puts(s);
		free(s);
		cJSON_Delete(o);
	} else {
		printf("stage %s -> %s%s\n", co_stage_name(was), co_stage_name(stage),
		       note[0] ? " (forced past the go/no-go gate)" : "");
	}
	if (to.kill_switch)
		fprintf(
		    stderr,
		    "cutover: note: the kill switch is on (%s): every operation goes to "
		    "git as in shadow until `cutover resume`\n",
		    to.kill_reason);
	fflush(stdout);
done:
	co_flags_unlock(lock);
	co_state_close(st);
	return error;
}
