/*
 * stage.c - rollout stages as shorthands over the per-operation flags.
 *
 * A stage is nothing but a value for every operation; the flags stay the
 * single source of truth, and the stage is derived from them (co_stage_of)
 * rather than stored, so that a hand-edited file and `cutover stage` never
 * disagree.  Ordering is by how much of the traffic etcd decides, per
 * operation, which gives a meaningful "forward" even for custom flags.
 *
 * Not here: the go/no-go gate itself and its audit (they need the state
 * database), and the kill switch (rollback/resume).
 */
#include "flags/stage.h"

#include <string.h>

#include "core/error.h"

static const char *const stage_names[] = {"git", "shadow", "10",    "50",
					  "100", "etcd",   "custom"};

/* The setting every operation has at each stage (CO_STAGE_CUSTOM excluded). */
static const co_op_flags stage_settings[] = {
    {CO_MODE_GIT, 0},	{CO_MODE_SHADOW, 0}, {CO_MODE_DUAL, 10},
    {CO_MODE_DUAL, 50}, {CO_MODE_DUAL, 100}, {CO_MODE_ETCD, 100},
};

const char *co_stage_name(co_stage stage)
{
	if ((int)stage < 0 || stage > CO_STAGE_CUSTOM)
		return "?";
	return stage_names[stage];
}

int co_stage_parse(co_stage *out, const char *name)
{
	int i;

	for (i = 0; name && i < CO_STAGE_CUSTOM; i++) {
		if (strcmp(name, stage_names[i]) == 0) {
			*out = (co_stage)i;
			return 0;
		}
	}
	return co_error_set(CO_EINVAL,
			    "unknown stage \"%s\" (git, shadow, 10, 50, 100, etcd)",
			    name ? name : "(null)");
}

int co_stage_apply(co_flags *f, co_stage stage)
{
	int op;

	if ((int)stage < 0 || stage >= CO_STAGE_CUSTOM)
		return co_error_set(CO_EINVAL, "cannot apply stage %d", (int)stage);
	f->def = stage_settings[stage];
	for (op = 0; op < CO_OP__COUNT; op++)
		co_flags_clear(f, (co_op)op);
	return 0;
}

/* Same stage setting: the percent counts only where it changes routing. */
static int same_setting(co_op_flags a, co_op_flags b)
{
	if (a.mode != b.mode)
		return 0;
	return a.mode != CO_MODE_DUAL || a.etcd_percent == b.etcd_percent;
}

co_stage co_stage_of(const co_flags *f)
{
	co_op_flags first = co_flags_get(f, (co_op)0);
	int op, s;

	for (op = 1; op < CO_OP__COUNT; op++)
		if (!same_setting(first, co_flags_get(f, (co_op)op)))
			return CO_STAGE_CUSTOM;
	for (s = 0; s < CO_STAGE_CUSTOM; s++)
		if (same_setting(first, stage_settings[s]))
			return (co_stage)s;
	return CO_STAGE_CUSTOM;
}

int co_stage_order(co_stage stage)
{
	if ((int)stage < 0 || stage >= CO_STAGE_CUSTOM)
		return -1;
	return (int)stage;
}

int co_stage_rank(co_op_flags setting)
{
	switch (setting.mode) {
	case CO_MODE_GIT:
		return 0;
	case CO_MODE_SHADOW:
		return 1;
	case CO_MODE_DUAL:
		return 2 + setting.etcd_percent;
	case CO_MODE_ETCD:
		return 103;
	default:
		return 0;
	}
}

int co_stage_is_forward(const co_flags *from, const co_flags *to)
{
	int op;

	for (op = 0; op < CO_OP__COUNT; op++)
		if (co_stage_rank(co_flags_get(to, (co_op)op)) >
		    co_stage_rank(co_flags_get(from, (co_op)op)))
			return 1;
	return 0;
}
