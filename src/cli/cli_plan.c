/*
 * cli_plan.c - `--dry-run` of the commands that change the flags (`stage`,
 * `flags set`): what would change, per operation (old -> new mode and
 * percent, and how many of today's IDs would change primary), and every
 * go/no-go rule's verdict, from exactly the reads the real command makes.
 * Nothing is written: no flags, no audit row, no drain, no reconciliation.
 *
 * The IDs are today's records in git (the store every stage keeps whole):
 * an ID changes primary when its bucket lies between the old and the new
 * etcd share (flags/bucket.h), so the counts are exact for the records
 * that exist now.
 */
#include "cli.h"

#include "../core/error.h"
#include "../core/record.h"
#include "../store/store.h"
#include "flags/bucket.h"
#include "flags/gate.h"
#include "flags/stage.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* etcd's share of an operation's IDs as a primary, kill switch aside. */
static int share(co_op_flags s)
{
	return s.mode == CO_MODE_ETCD ? 100 : s.mode == CO_MODE_DUAL ? s.etcd_percent : 0;
}

static void setting(char *buf, size_t len, co_op_flags s)
{
	if (s.mode == CO_MODE_DUAL)
		snprintf(buf, len, "dual %d", s.etcd_percent);
	else
		snprintf(buf, len, "%s", co_mode_name(s.mode));
}

/* The kind of record an operation acts on; -1 for watch (no ID). */
static int kind_of(co_op op)
{
	if (op == CO_OP_WATCH)
		return -1;
	return op >= CO_OP_SWARM_REGISTER ? CO_KIND_SWARM : CO_KIND_TASK;
}

/* Today's IDs in git, per kind; *why says why not when they can't be read. */
typedef struct ids {
	co_record_list l[2];
	int ok;
	char why[512];
} ids;

static void read_ids(ids *x, co_cli *ctx)
{
	co_store *git = NULL;

	memset(x, 0, sizeof(*x));
	if (co_cli_open_backend(&git, ctx, "git") < 0 ||
	    co_store_list(&x->l[CO_KIND_TASK], git, CO_KIND_TASK) < 0 ||
	    co_store_list(&x->l[CO_KIND_SWARM], git, CO_KIND_SWARM) < 0)
		snprintf(x->why, sizeof(x->why), "%s", co_error_last());
	else
		x->ok = 1;
	co_error_clear();
	co_store_free(git);
}

/* IDs of `l` whose primary moves to etcd (*up) or back to git (*down). */
static void moving(int64_t *up, int64_t *down, const co_record_list *l, int a, int b)
{
	size_t i;

	*up = *down = 0;
	for (i = 0; i < l->n; i++) {
		int bk = co_bucket_of(l->items[i]->id);

		if (bk >= a && bk < b)
			(*up)++;
		else if (bk >= b && bk < a)
			(*down)++;
	}
}

static const char *verdict_word(const co_gate_verdict *v)
{
	if (!v->applies)
		return "-";
	if (!v->checked)
		return "unchecked";
	return v->ok ? "ok" : "REFUSED";
}

int co_cli_plan(co_cli *ctx, co_state *st, const char *command, const co_flags *from,
		const co_flags *to)
{
	co_gate_verdict v[CO_GATE__COUNT];
	cJSON *o = NULL, *arr, *it;
	ids x;
	int error, op, i, refused = 0;

	if ((error = co_cli_gate_verdicts(v, ctx, st, from, to)) < 0)
		return error;
	for (i = 0; i < CO_GATE__COUNT; i++)
		refused += !v[i].ok;
	read_ids(&x, ctx);
	if (ctx->json) {
		o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "dry_run", 1);
		cJSON_AddStringToObject(o, "command", command);
		cJSON_AddStringToObject(o, "from_stage", co_stage_name(co_stage_of(from)));
		cJSON_AddStringToObject(o, "to_stage", co_stage_name(co_stage_of(to)));
		arr = cJSON_AddArrayToObject(o, "changes");
	} else {
		printf("dry run of `cutover %s`: nothing was changed\n", command);
		printf("stage %s -> %s\n", co_stage_name(co_stage_of(from)),
		       co_stage_name(co_stage_of(to)));
	}
	for (op = 0; op < CO_OP__COUNT; op++) {
		co_op_flags a = co_flags_get(from, (co_op)op), b = co_flags_get(to, (co_op)op);
		int k = kind_of((co_op)op);
		int64_t up = 0, down = 0;
		char sa[32], sb[32];

		if (a.mode == b.mode && share(a) == share(b))
			continue;
		setting(sa, sizeof(sa), a);
		setting(sb, sizeof(sb), b);
		if (x.ok && k >= 0)
			moving(&up, &down, &x.l[k], share(a), share(b));
		if (o) {
			it = cJSON_CreateObject();
			cJSON_AddStringToObject(it, "op", co_op_name((co_op)op));
			cJSON_AddStringToObject(it, "from", sa);
			cJSON_AddStringToObject(it, "to", sb);
			if (x.ok && k >= 0) {
				cJSON_AddNumberToObject(it, "ids", (double)x.l[k].n);
				cJSON_AddNumberToObject(it, "ids_to_etcd", (double)up);
				cJSON_AddNumberToObject(it, "ids_to_git", (double)down);
			}
			cJSON_AddItemToArray(arr, it);
			continue;
		}
		printf("  %-15s %-8s -> %-8s", co_op_name((co_op)op), sa, sb);
		if (x.ok && k >= 0)
			printf("  %lld of %zu %s%s to etcd, %lld to git", (long long)up,
			       x.l[k].n, co_kind_name((co_kind)k), x.l[k].n == 1 ? "" : "s",
			       (long long)down);
		printf("\n");
	}
	if (from->mirror_sync != to->mirror_sync) {
		if (o)
			cJSON_AddStringToObject(o, "mirror", to->mirror_sync ? "sync" : "async");
		else
			printf("  mirror          %s -> %s\n", from->mirror_sync ? "sync" : "async",
			       to->mirror_sync ? "sync" : "async");
	}
	if (!x.ok) {
		if (o)
			cJSON_AddStringToObject(o, "ids_error", x.why);
		else
			printf("  (which IDs move is unknown: %s)\n", x.why);
	}
	if (o) {
		arr = cJSON_AddArrayToObject(o, "gate");
		for (i = 0; i < CO_GATE__COUNT; i++) {
			it = cJSON_CreateObject();
			cJSON_AddStringToObject(it, "rule", v[i].rule);
			cJSON_AddStringToObject(it, "verdict", verdict_word(&v[i]));
			cJSON_AddStringToObject(it, "why", v[i].why);
			cJSON_AddItemToArray(arr, it);
		}
		cJSON_AddBoolToObject(o, "would_pass", refused == 0);
		cJSON_AddBoolToObject(o, "kill_switch", to->kill_switch);
		error = co_cli_print_json(o);
	} else {
		printf("go/no-go gate:\n");
		for (i = 0; i < CO_GATE__COUNT; i++)
			printf("  %-9s %s%s%s\n", verdict_word(&v[i]), v[i].rule,
			       v[i].ok && v[i].applies ? "" : ": ",
			       v[i].ok && v[i].applies ? "" : v[i].why);
		if (refused)
			printf("result: refused by %d rule%s (the change would exit 3; "
			       "--force would override and be recorded)\n",
			       refused, refused == 1 ? "" : "s");
		else
			printf("result: the change would go ahead\n");
		if (to->kill_switch)
			printf("note: the kill switch is on (%s): the change would take "
			       "effect at `cutover resume`\n",
			       to->kill_reason);
	}
	co_record_list_clear(&x.l[0]);
	co_record_list_clear(&x.l[1]);
	if (error == 0 && refused)
		error = co_error_set(CO_ECONFLICT,
				     "dry run: the go/no-go gate would refuse this change "
				     "(%d rule%s); nothing was changed",
				     refused, refused == 1 ? "" : "s");
	return error;
}
