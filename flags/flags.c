/*
 * flags.c - the flag model and the routing decision.
 *
 * The flags are a small plain value (co_flags) so that the router can copy
 * or consult them under a lock without allocating.  The YAML text of the
 * flags is in flags_yaml.c (parse, validate, format); the file (load,
 * atomic save, the writers' lock) in flags_file.c.
 *
 * Not here: reload (watcher.c), stages (stage.c), bucketing (bucket.c), the
 * audit trail of changes (the state module; co_flags_diff helps it).
 */
#include "flags/flags.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "flags/bucket.h"
#include "flags/flags_private.h"

static const char *const op_names[CO_OP__COUNT] = {
    "task_create",  "task_get",	    "task_list",      "task_claim",
    "task_release", "task_renew",   "swarm_register", "swarm_get",
    "swarm_list",   "swarm_remove", "watch",
};

static const char *const mode_names[CO_MODE__COUNT] = {"git", "shadow", "dual", "etcd"};

const char *co_op_name(co_op op)
{
	if ((int)op < 0 || op >= CO_OP__COUNT)
		return "?";
	return op_names[op];
}

int co_op_parse(co_op *out, const char *name)
{
	int i;

	for (i = 0; name && i < CO_OP__COUNT; i++) {
		if (strcmp(name, op_names[i]) == 0) {
			*out = (co_op)i;
			return 0;
		}
	}
	return co_error_set(CO_EINVAL, "unknown operation \"%s\"",
			    name ? name : "(null)");
}

const char *co_mode_name(co_mode mode)
{
	if ((int)mode < 0 || mode >= CO_MODE__COUNT)
		return "?";
	return mode_names[mode];
}

int co_mode_parse(co_mode *out, const char *name)
{
	int i;

	for (i = 0; name && i < CO_MODE__COUNT; i++) {
		if (strcmp(name, mode_names[i]) == 0) {
			*out = (co_mode)i;
			return 0;
		}
	}
	return co_error_set(CO_EINVAL, "unknown mode \"%s\" (git, shadow, dual, etcd)",
			    name ? name : "(null)");
}

const char *co_side_name(co_side side)
{
	switch (side) {
	case CO_SIDE_GIT:
		return "git";
	case CO_SIDE_ETCD:
		return "etcd";
	default:
		return "none";
	}
}

void co_flags_init(co_flags *f)
{
	memset(f, 0, sizeof(*f));
	f->def.mode = CO_MODE_GIT;
	f->def.etcd_percent = 0;
}

/* Copy at most max bytes of src, cutting at a UTF-8 character boundary. */
static void copy_cut(char *dst, size_t max, const char *src)
{
	size_t n = strlen(src);

	if (n > max) {
		n = max;
		/* Back off over continuation bytes (10xxxxxx) to a lead byte. */
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

co_op_flags co_flags_get(const co_flags *f, co_op op)
{
	if ((int)op >= 0 && op < CO_OP__COUNT && f->has_op[op])
		return f->ops[op];
	return f->def;
}

int co_flags__check_setting(co_mode mode, int etcd_percent)
{
	if ((int)mode < 0 || mode >= CO_MODE__COUNT)
		return co_error_set(CO_EINVAL, "invalid mode %d", (int)mode);
	if (etcd_percent < 0 || etcd_percent > 100)
		return co_error_set(CO_EINVAL, "etcd_percent %d outside 0..100",
				    etcd_percent);
	return 0;
}

int co_flags_set(co_flags *f, co_op op, co_mode mode, int etcd_percent)
{
	int error;

	if ((int)op < 0 || op >= CO_OP__COUNT)
		return co_error_set(CO_EINVAL, "invalid operation %d", (int)op);
	if ((error = co_flags__check_setting(mode, etcd_percent)) < 0)
		return error;
	f->ops[op].mode = mode;
	f->ops[op].etcd_percent = etcd_percent;
	f->has_op[op] = 1;
	return 0;
}

int co_flags_set_default(co_flags *f, co_mode mode, int etcd_percent)
{
	int error;

	if ((error = co_flags__check_setting(mode, etcd_percent)) < 0)
		return error;
	f->def.mode = mode;
	f->def.etcd_percent = etcd_percent;
	return 0;
}

void co_flags_clear(co_flags *f, co_op op)
{
	if ((int)op < 0 || op >= CO_OP__COUNT)
		return;
	f->has_op[op] = 0;
	f->ops[op].mode = CO_MODE_GIT;
	f->ops[op].etcd_percent = 0;
}

void co_flags_set_kill(co_flags *f, int on, const char *reason)
{
	f->kill_switch = on ? 1 : 0;
	copy_cut(f->kill_reason, CO_FLAGS_REASON_MAX, on && reason ? reason : "");
}

void co_flags_set_completed(co_flags *f, int on, const char *who, const char *why)
{
	memset(&f->completed, 0, sizeof(f->completed));
	if (!on)
		return;
	f->completed.on = 1;
	co_flags_stamp(f, NULL, NULL); /* now, into updated_at */
	copy_cut(f->completed.at, CO_FLAGS_WHEN_MAX, f->updated_at);
	copy_cut(f->completed.by, CO_FLAGS_WHO_MAX, who ? who : "");
	copy_cut(f->completed.reason, CO_FLAGS_REASON_MAX, why ? why : "");
}

void co_flags_stamp(co_flags *f, const char *who, const char *when)
{
	char now[32];
	struct tm tm;
	time_t t;

	if (who)
		copy_cut(f->updated_by, CO_FLAGS_WHO_MAX, who);
	if (!when) {
		t = time(NULL);
		gmtime_r(&t, &tm);
		strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
		when = now;
	}
	copy_cut(f->updated_at, CO_FLAGS_WHEN_MAX, when);
}

int co_flags_equal(const co_flags *a, const co_flags *b)
{
	int op;

	if (a->kill_switch != b->kill_switch ||
	    strcmp(a->kill_reason, b->kill_reason) != 0 ||
	    strcmp(a->updated_at, b->updated_at) != 0 ||
	    strcmp(a->updated_by, b->updated_by) != 0 || a->def.mode != b->def.mode ||
	    a->def.etcd_percent != b->def.etcd_percent || a->mirror_sync != b->mirror_sync ||
	    a->completed.on != b->completed.on ||
	    strcmp(a->completed.at, b->completed.at) != 0 ||
	    strcmp(a->completed.by, b->completed.by) != 0 ||
	    strcmp(a->completed.reason, b->completed.reason) != 0 ||
	    a->fleet_epoch != b->fleet_epoch)
		return 0;
	for (op = 0; op < CO_OP__COUNT; op++) {
		if (a->has_op[op] != b->has_op[op])
			return 0;
		if (a->has_op[op] && (a->ops[op].mode != b->ops[op].mode ||
				      a->ops[op].etcd_percent != b->ops[op].etcd_percent))
			return 0;
	}
	return 1;
}

/* Append to buf at *pos, never overflowing; *pos saturates at len. */
static void appendf(char *buf, size_t len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void appendf(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*pos += (size_t)n;
	if (*pos >= len)
		*pos = len;
}

static void setting_text(char *buf, size_t len, co_op_flags s)
{
	if (s.mode == CO_MODE_DUAL)
		snprintf(buf, len, "dual %d", s.etcd_percent);
	else
		snprintf(buf, len, "%s", co_mode_name(s.mode));
}

void co_flags_diff(char *buf, size_t len, const co_flags *a, const co_flags *b)
{
	char x[32], y[32];
	size_t pos = 0;
	const char *sep = "";
	int op;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (a->kill_switch != b->kill_switch) {
		appendf(buf, len, &pos, "kill_switch %s -> %s",
			a->kill_switch ? "true" : "false",
			b->kill_switch ? "true" : "false");
		if (b->kill_switch && b->kill_reason[0])
			appendf(buf, len, &pos, " (%s)", b->kill_reason);
		sep = "; ";
	} else if (strcmp(a->kill_reason, b->kill_reason) != 0) {
		appendf(buf, len, &pos, "kill_reason \"%s\" -> \"%s\"", a->kill_reason,
			b->kill_reason);
		sep = "; ";
	}
	if (a->completed.on != b->completed.on) {
		appendf(buf, len, &pos, "%scompleted %s -> %s", sep,
			a->completed.on ? "true" : "false",
			b->completed.on ? "true" : "false");
		sep = "; ";
	}
	if (a->mirror_sync != b->mirror_sync) {
		appendf(buf, len, &pos, "%smirror %s -> %s", sep,
			a->mirror_sync ? "sync" : "async", b->mirror_sync ? "sync" : "async");
		sep = "; ";
	}
	if (a->def.mode != b->def.mode || a->def.etcd_percent != b->def.etcd_percent) {
		setting_text(x, sizeof(x), a->def);
		setting_text(y, sizeof(y), b->def);
		appendf(buf, len, &pos, "%sdefault %s -> %s", sep, x, y);
		sep = "; ";
	}
	for (op = 0; op < CO_OP__COUNT; op++) {
		co_op_flags sa = co_flags_get(a, (co_op)op);
		co_op_flags sb = co_flags_get(b, (co_op)op);

		if (sa.mode == sb.mode && sa.etcd_percent == sb.etcd_percent)
			continue;
		setting_text(x, sizeof(x), sa);
		setting_text(y, sizeof(y), sb);
		appendf(buf, len, &pos, "%s%s %s -> %s", sep, op_names[op], x, y);
		sep = "; ";
	}
	if (pos == 0)
		snprintf(buf, len, "no change");
	if (pos >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

int co_op_flags_etcd_capable(co_op_flags s)
{
	return s.mode == CO_MODE_ETCD || (s.mode == CO_MODE_DUAL && s.etcd_percent > 0);
}

int co_flags_etcd_primary_possible(const co_flags *f)
{
	int op;

	if (f->kill_switch)
		return 0;
	for (op = 0; op < CO_OP__COUNT; op++)
		if (co_op_flags_etcd_capable(co_flags_get(f, (co_op)op)))
			return 1;
	return 0;
}

int co_flags_route(co_route *out, const co_flags *f, co_op op, const char *id)
{
	co_op_flags s;
	co_route r;
	int etcd_primary;

	if ((int)op < 0 || op >= CO_OP__COUNT)
		return co_error_set(CO_EINVAL, "invalid operation %d", (int)op);
	s = co_flags_get(f, op);
	memset(&r, 0, sizeof(r));
	r.op = op;
	r.configured = s.mode;
	r.etcd_percent = s.etcd_percent;
	r.bucket = id ? co_bucket_of(id) : -1;
	r.kill_switch = f->kill_switch ? 1 : 0;
	r.epoch = f->fleet_epoch;
	/* The kill switch wins over every mode: git decides, etcd mirrors. */
	r.mode = r.kill_switch ? CO_MODE_SHADOW : s.mode;

	switch (r.mode) {
	case CO_MODE_SHADOW:
		r.primary = CO_SIDE_GIT;
		r.secondary = CO_SIDE_ETCD;
		r.compare_reads = 1;
		break;
	case CO_MODE_DUAL:
		if (id) {
			etcd_primary = r.bucket < s.etcd_percent;
		} else {
			/*
			 * No single ID: only the extremes have one primary
			 * for everything; in between the router merges.
			 */
			etcd_primary = s.etcd_percent >= 100;
			r.split = s.etcd_percent > 0 && s.etcd_percent < 100;
		}
		r.primary = etcd_primary ? CO_SIDE_ETCD : CO_SIDE_GIT;
		r.secondary = etcd_primary ? CO_SIDE_GIT : CO_SIDE_ETCD;
		/* Either store decides, the other follows through the outbox
		 * unless told to keep up synchronously: a git-decided write
		 * no longer waits for etcd's mirror either (measured,
		 * docs/design-changes.md) */
		r.secondary_async = !f->mirror_sync;
		break;
	case CO_MODE_ETCD:
		r.primary = CO_SIDE_ETCD;
		r.secondary = CO_SIDE_GIT;
		r.secondary_async = !f->mirror_sync;
		break;
	case CO_MODE_GIT:
	default:
		r.primary = CO_SIDE_GIT;
		r.secondary = CO_SIDE_NONE;
		break;
	}
	/* Completed: git is no longer kept current, so where etcd decides
	 * nothing is mirrored or queued to git (a forced move back still
	 * lets git decide where the flags say so: the operator's call). */
	if (f->completed.on && r.primary == CO_SIDE_ETCD && r.secondary == CO_SIDE_GIT) {
		r.secondary = CO_SIDE_NONE;
		r.secondary_async = 0;
	}
	*out = r;
	return 0;
}
