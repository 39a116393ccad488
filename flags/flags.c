/*
 * flags.c - the flag model, its YAML file, and the routing decision.
 *
 * The flags are a small plain value (co_flags) so that the router can copy
 * or consult them under a lock without allocating.  The YAML side uses
 * libyaml's document API: the whole file becomes a node tree whose nodes
 * carry their line numbers, so every validation error can name its line
 * ("flags.yaml:7: unknown mode \"dule\" ...").  Validation is strict:
 * an unknown key is an error rather than ignored, because a typo in a flag
 * file silently routing traffic to the wrong store is worse than a refused
 * reload (the watcher keeps the last good flags).
 *
 * Saving goes through libyaml's emitter with a fixed key order and is
 * atomic (temp file, fsync, rename, fsync of the directory), so that a
 * reader or the watcher never sees half a file.
 *
 * Not here: reload (watcher.c), stages (stage.c), bucketing (bucket.c), the
 * audit trail of changes (the state module; co_flags_diff helps it).
 */
#include "flags/flags.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <yaml.h>

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

static int check_setting(co_mode mode, int etcd_percent)
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
	if ((error = check_setting(mode, etcd_percent)) < 0)
		return error;
	f->ops[op].mode = mode;
	f->ops[op].etcd_percent = etcd_percent;
	f->has_op[op] = 1;
	return 0;
}

int co_flags_set_default(co_flags *f, co_mode mode, int etcd_percent)
{
	int error;

	if ((error = check_setting(mode, etcd_percent)) < 0)
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
	    strcmp(a->completed.reason, b->completed.reason) != 0)
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
		/* etcd decides: git follows through the outbox, unless told
		 * to keep up synchronously; a git-decided write mirrors to
		 * etcd directly (a few ms, docs/design-changes.md) */
		r.secondary_async = etcd_primary && !f->mirror_sync;
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

/* ---- YAML loading ---- */

typedef struct parse_ctx {
	yaml_document_t *doc;
	const char *name;
} parse_ctx;

static unsigned long node_line(const yaml_node_t *n)
{
	return (unsigned long)n->start_mark.line + 1;
}

/*
 * The scalar's text, or NULL if the node is no scalar or holds a NUL byte
 * (a "\0" escape) that would make C string comparisons lie.
 */
static const char *scalar(const yaml_node_t *n)
{
	const char *s = NULL;

	if (n->type != YAML_SCALAR_NODE)
		return NULL;
	s = (const char *)n->data.scalar.value;
	if (strlen(s) != n->data.scalar.length)
		return NULL;
	return s;
}

static int is_null(const yaml_node_t *n)
{
	const char *s = NULL;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	s = (const char *)n->data.scalar.value;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int expect_scalar(const char **out, parse_ctx *c, const yaml_node_t *n,
			 const char *what)
{
	const char *s = scalar(n);

	if (!s)
		return co_error_set(CO_EINVAL, "%s:%lu: %s: expected a plain value",
				    c->name, node_line(n), what);
	*out = s;
	return 0;
}

static int parse_bool(int *out, parse_ctx *c, const yaml_node_t *n, const char *what)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	const char *s = NULL;
	size_t i;
	int error;

	if ((error = expect_scalar(&s, c, n, what)) < 0)
		return error;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return co_error_set(CO_EINVAL, "%s:%lu: %s: expected true or false, got \"%s\"",
			    c->name, node_line(n), what, s);
}

static int parse_string(char *dst, size_t max, parse_ctx *c, const yaml_node_t *n,
			const char *what)
{
	const char *s = NULL;
	int error;

	if (is_null(n)) {
		dst[0] = '\0';
		return 0;
	}
	if ((error = expect_scalar(&s, c, n, what)) < 0)
		return error;
	if (strlen(s) > max)
		return co_error_set(CO_ETOOBIG, "%s:%lu: %s: longer than %zu bytes",
				    c->name, node_line(n), what, max);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int parse_percent(int *out, parse_ctx *c, const yaml_node_t *n)
{
	const char *s = NULL, *p;
	long v = 0;
	int neg = 0, error;

	if ((error = expect_scalar(&s, c, n, "etcd_percent")) < 0)
		return error;
	p = s;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (*p == '\0')
		goto not_int;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			goto not_int;
		if (v <= 1000)
			v = v * 10 + (*p - '0');
	}
	if (neg)
		v = -v;
	if (v < 0 || v > 100)
		return co_error_set(CO_EINVAL, "%s:%lu: etcd_percent %s outside 0..100",
				    c->name, node_line(n), s);
	*out = (int)v;
	return 0;
not_int:
	return co_error_set(CO_EINVAL, "%s:%lu: etcd_percent \"%s\" is not an integer",
			    c->name, node_line(n), s);
}

/* `{ mode: M, etcd_percent: N }` for `what` ("default" or an operation). */
static int parse_setting(co_op_flags *out, parse_ctx *c, const yaml_node_t *n,
			 const char *what)
{
	yaml_node_pair_t *pair;
	co_op_flags s = {CO_MODE_GIT, 0};
	int seen_mode = 0, seen_percent = 0, error;

	if (n->type != YAML_MAPPING_NODE)
		return co_error_set(
		    CO_EINVAL,
		    "%s:%lu: %s: expected a mapping {mode: ..., etcd_percent: ...}",
		    c->name, node_line(n), what);
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
	     pair++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, pair->value);
		const char *key = scalar(k), *m = NULL;

		if (key && strcmp(key, "mode") == 0) {
			if (seen_mode++)
				goto dup;
			if ((error = expect_scalar(&m, c, v, "mode")) < 0)
				return error;
			if (co_mode_parse(&s.mode, m) < 0)
				return co_error_set(CO_EINVAL,
						    "%s:%lu: unknown mode \"%s\" (git, "
						    "shadow, dual, etcd)",
						    c->name, node_line(v), m);
		} else if (key && strcmp(key, "etcd_percent") == 0) {
			if (seen_percent++)
				goto dup;
			if ((error = parse_percent(&s.etcd_percent, c, v)) < 0)
				return error;
		} else {
			return co_error_set(
			    CO_EINVAL,
			    "%s:%lu: %s: unknown key \"%s\" (mode, etcd_percent)",
			    c->name, node_line(k), what, key ? key : "?");
		}
		continue;
dup:
		return co_error_set(CO_EINVAL, "%s:%lu: %s: duplicate key \"%s\"",
				    c->name, node_line(k), what, key);
	}
	if (!seen_mode)
		return co_error_set(CO_EINVAL, "%s:%lu: %s: missing mode", c->name,
				    node_line(n), what);
	*out = s;
	return 0;
}

static int parse_operations(co_flags *f, parse_ctx *c, const yaml_node_t *n)
{
	yaml_node_pair_t *pair;
	int error;

	if (is_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return co_error_set(CO_EINVAL, "%s:%lu: operations: expected a mapping",
				    c->name, node_line(n));
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
	     pair++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, pair->value);
		const char *key = scalar(k);
		co_op op = CO_OP_TASK_CREATE;

		if (!key || co_op_parse(&op, key) < 0)
			return co_error_set(CO_EINVAL, "%s:%lu: unknown operation \"%s\"",
					    c->name, node_line(k), key ? key : "?");
		if (f->has_op[op])
			return co_error_set(CO_EINVAL,
					    "%s:%lu: operations: duplicate key \"%s\"",
					    c->name, node_line(k), key);
		if ((error = parse_setting(&f->ops[op], c, v, key)) < 0)
			return error;
		f->has_op[op] = 1;
	}
	return 0;
}

enum { K_KILL, K_REASON, K_AT, K_BY, K_DEFAULT, K_OPS, K_MIRROR, K_COMPLETED, K__COUNT };
static const char *const top_keys[K__COUNT] = {
    "kill_switch", "kill_reason", "updated_at", "updated_by", "default", "operations",
    "mirror",	   "completed",
};

/* `completed: {at: T, by: W, reason: R}`: `at` required. */
static int parse_completed(co_completion *out, parse_ctx *c, const yaml_node_t *n)
{
	static const char *const keys[] = {"at", "by", "reason"};
	const size_t max[] = {CO_FLAGS_WHEN_MAX, CO_FLAGS_WHO_MAX, CO_FLAGS_REASON_MAX};
	co_completion x;
	char *dst[3];
	int seen[3] = {0, 0, 0}, error;
	yaml_node_pair_t *pair;
	size_t i;

	memset(&x, 0, sizeof(x));
	dst[0] = x.at;
	dst[1] = x.by;
	dst[2] = x.reason;
	if (n->type != YAML_MAPPING_NODE)
		return co_error_set(
		    CO_EINVAL, "%s:%lu: completed: expected a mapping {at: ..., by: ..., "
		    "reason: ...}",
		    c->name, node_line(n));
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
	     pair++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, pair->value);
		const char *key = scalar(k);

		for (i = 0; key && i < 3; i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (!key || i == 3)
			return co_error_set(CO_EINVAL,
					    "%s:%lu: completed: unknown key \"%s\" (at, by, "
					    "reason)",
					    c->name, node_line(k), key ? key : "?");
		if (seen[i]++)
			return co_error_set(CO_EINVAL,
					    "%s:%lu: completed: duplicate key \"%s\"",
					    c->name, node_line(k), key);
		if ((error = parse_string(dst[i], max[i], c, v, key)) < 0)
			return error;
	}
	if (!x.at[0])
		return co_error_set(CO_EINVAL, "%s:%lu: completed: missing at", c->name,
				    node_line(n));
	x.on = 1;
	*out = x;
	return 0;
}

/* `mirror: async|sync`. */
static int parse_mirror(int *sync, parse_ctx *c, const yaml_node_t *n)
{
	const char *s = NULL;
	int error;

	if ((error = expect_scalar(&s, c, n, "mirror")) < 0)
		return error;
	if (strcmp(s, "async") == 0 || strcmp(s, "sync") == 0) {
		*sync = strcmp(s, "sync") == 0;
		return 0;
	}
	return co_error_set(CO_EINVAL, "%s:%lu: mirror: \"%s\" is not async or sync",
			    c->name, node_line(n), s);
}

static int parse_root(co_flags *f, parse_ctx *c, const yaml_node_t *root)
{
	yaml_node_pair_t *pair;
	int seen[K__COUNT] = {0};
	int error, i;

	if (is_null(root))
		return 0;
	if (root->type != YAML_MAPPING_NODE)
		return co_error_set(CO_EINVAL,
				    "%s:%lu: expected a mapping at the top level",
				    c->name, node_line(root));
	for (pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top;
	     pair++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, pair->value);
		const char *key = scalar(k);

		for (i = 0; key && i < K__COUNT; i++)
			if (strcmp(key, top_keys[i]) == 0)
				break;
		if (!key || i == K__COUNT)
			return co_error_set(
			    CO_EINVAL,
			    "%s:%lu: unknown key \"%s\" (kill_switch, "
			    "kill_reason, updated_at, updated_by, default, "
			    "operations, mirror, completed)",
			    c->name, node_line(k), key ? key : "?");
		if (seen[i]++)
			return co_error_set(CO_EINVAL, "%s:%lu: duplicate key \"%s\"",
					    c->name, node_line(k), key);
		switch (i) {
		case K_KILL:
			error = parse_bool(&f->kill_switch, c, v, key);
			break;
		case K_REASON:
			error =
			    parse_string(f->kill_reason, CO_FLAGS_REASON_MAX, c, v, key);
			break;
		case K_AT:
			error = parse_string(f->updated_at, CO_FLAGS_WHEN_MAX, c, v, key);
			break;
		case K_BY:
			error = parse_string(f->updated_by, CO_FLAGS_WHO_MAX, c, v, key);
			break;
		case K_DEFAULT:
			error = parse_setting(&f->def, c, v, key);
			break;
		case K_MIRROR:
			error = parse_mirror(&f->mirror_sync, c, v);
			break;
		case K_COMPLETED:
			error = is_null(v) ? 0 : parse_completed(&f->completed, c, v);
			break;
		default:
			error = parse_operations(f, c, v);
			break;
		}
		if (error < 0)
			return error;
	}
	return 0;
}

/* Copy libyaml's problem at once: the next parser call overwrites it. */
static int yaml_problem(const yaml_parser_t *p, const char *name)
{
	if (p->error == YAML_MEMORY_ERROR)
		return co_error_set(CO_ENOMEM, "%s: out of memory parsing YAML", name);
	return co_error_set(CO_EINVAL, "%s:%lu: %s%s%s", name,
			    (unsigned long)p->problem_mark.line + 1,
			    p->problem ? p->problem : "malformed YAML",
			    p->context ? " " : "", p->context ? p->context : "");
}

int co_flags_parse(co_flags *out, const char *text, size_t len, const char *name)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	yaml_node_t *root;
	parse_ctx c;
	co_flags f;
	int have_parser = 0, have_doc = 0, error = 0;

	if (!name)
		name = "flags";
	if (!text) {
		/* libyaml asserts on a NULL input, even of length 0. */
		text = "";
		len = 0;
	}
	co_flags_init(&f);
	if (!yaml_parser_initialize(&parser)) {
		error = co_error_set(CO_ENOMEM, "%s: cannot initialise the YAML parser",
				     name);
		goto done;
	}
	have_parser = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		error = yaml_problem(&parser, name);
		goto done;
	}
	have_doc = 1;
	c.doc = &doc;
	c.name = name;
	if ((root = yaml_document_get_root_node(&doc)) != NULL &&
	    (error = parse_root(&f, &c, root)) < 0)
		goto done;
	/* A second document would be silently ignored by a reader: refuse it. */
	if (!yaml_parser_load(&parser, &extra)) {
		error = yaml_problem(&parser, name);
		goto done;
	}
	root = yaml_document_get_root_node(&extra);
	if (root) {
		error = co_error_set(CO_EINVAL, "%s:%lu: more than one YAML document",
				     name, node_line(root));
	}
	yaml_document_delete(&extra);
	if (error < 0)
		goto done;
	*out = f;
done:
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	return error;
}

int co_flags__read(char **out, size_t *out_len, struct stat *out_st, const char *path)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	ssize_t n;
	int fd = -1, error = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			error = co_error_set(CO_ENOTFOUND, "%s: no such file", path);
		else
			error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (fstat(fd, &st) < 0) {
		error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		error = co_error_set(CO_EIO, "%s: not a regular file", path);
		goto done;
	}
	if (st.st_size > CO_FLAGS_FILE_MAX) {
		error = co_error_set(CO_ETOOBIG, "%s: larger than %d bytes", path,
				     CO_FLAGS_FILE_MAX);
		goto done;
	}
	/* The size may change under us (an in-place writer): read to EOF. */
	cap = (size_t)st.st_size + 1;
	if ((buf = malloc(cap)) == NULL) {
		error = co_error_set(CO_ENOMEM, "%s: out of memory", path);
		goto done;
	}
	for (;;) {
		if (len + 1 >= cap) {
			char *nb;

			if (cap > CO_FLAGS_FILE_MAX) {
				error =
				    co_error_set(CO_ETOOBIG, "%s: larger than %d bytes",
						 path, CO_FLAGS_FILE_MAX);
				goto done;
			}
			if ((nb = realloc(buf, cap * 2)) == NULL) {
				error =
				    co_error_set(CO_ENOMEM, "%s: out of memory", path);
				goto done;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	if (out_st)
		*out_st = st;
	buf = NULL;
done:
	free(buf);
	if (fd >= 0)
		close(fd);
	return error;
}

int co_flags_load(co_flags *out, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	int error;

	if (!path || !*path)
		return co_error_set(CO_EINVAL, "flags: no file name");
	error = co_flags__read(&text, &len, NULL, path);
	if (error == CO_ENOTFOUND) {
		co_error_clear();
		co_flags_init(out);
		return 0;
	}
	if (error < 0)
		return error;
	error = co_flags_parse(out, text, len, path);
	free(text);
	return error;
}

/* ---- YAML emitting ---- */

typedef struct outbuf {
	char *data;
	size_t len, cap;
	int oom;
} outbuf;

static int outbuf_write(void *data, unsigned char *buffer, size_t size)
{
	outbuf *b = data;

	if (b->len + size + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		char *nd;

		while (b->len + size + 1 > cap)
			cap *= 2;
		if ((nd = realloc(b->data, cap)) == NULL) {
			b->oom = 1;
			return 0;
		}
		b->data = nd;
		b->cap = cap;
	}
	memcpy(b->data + b->len, buffer, size);
	b->len += size;
	b->data[b->len] = '\0';
	return 1;
}

static int emit_scalar(yaml_emitter_t *e, const char *s, int quoted)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(
		&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
		quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE))
		return 0;
	return yaml_emitter_emit(e, &ev);
}

static int emit_mapping_start(yaml_emitter_t *e, int flow)
{
	yaml_event_t ev;

	if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
						 flow ? YAML_FLOW_MAPPING_STYLE
						      : YAML_BLOCK_MAPPING_STYLE))
		return 0;
	return yaml_emitter_emit(e, &ev);
}

static int emit_mapping_end(yaml_emitter_t *e)
{
	yaml_event_t ev;

	if (!yaml_mapping_end_event_initialize(&ev))
		return 0;
	return yaml_emitter_emit(e, &ev);
}

static int emit_setting(yaml_emitter_t *e, const char *key, co_op_flags s)
{
	char pct[16];

	snprintf(pct, sizeof(pct), "%d", s.etcd_percent);
	return emit_scalar(e, key, 0) && emit_mapping_start(e, 1) &&
	       emit_scalar(e, "mode", 0) && emit_scalar(e, co_mode_name(s.mode), 0) &&
	       emit_scalar(e, "etcd_percent", 0) && emit_scalar(e, pct, 0) &&
	       emit_mapping_end(e);
}

static int emit_flags(yaml_emitter_t *e, const co_flags *f)
{
	yaml_event_t ev;
	int op, any = 0;

	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) ||
	    !yaml_emitter_emit(e, &ev))
		return 0;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
	    !yaml_emitter_emit(e, &ev))
		return 0;
	if (!emit_mapping_start(e, 0) || !emit_scalar(e, "kill_switch", 0) ||
	    !emit_scalar(e, f->kill_switch ? "true" : "false", 0) ||
	    !emit_scalar(e, "kill_reason", 0) || !emit_scalar(e, f->kill_reason, 1))
		return 0;
	if (f->updated_at[0] &&
	    (!emit_scalar(e, "updated_at", 0) || !emit_scalar(e, f->updated_at, 1)))
		return 0;
	if (f->updated_by[0] &&
	    (!emit_scalar(e, "updated_by", 0) || !emit_scalar(e, f->updated_by, 1)))
		return 0;
	if (!emit_setting(e, "default", f->def))
		return 0;
	for (op = 0; op < CO_OP__COUNT; op++)
		any |= f->has_op[op];
	if (!emit_scalar(e, "operations", 0) || !emit_mapping_start(e, !any))
		return 0;
	for (op = 0; op < CO_OP__COUNT; op++)
		if (f->has_op[op] && !emit_setting(e, op_names[op], f->ops[op]))
			return 0;
	if (!emit_mapping_end(e))
		return 0;
	/* only when it is not the default: files stay as they were */
	if (f->mirror_sync &&
	    (!emit_scalar(e, "mirror", 0) || !emit_scalar(e, "sync", 0)))
		return 0;
	if (f->completed.on &&
	    (!emit_scalar(e, "completed", 0) || !emit_mapping_start(e, 1) ||
	     !emit_scalar(e, "at", 0) || !emit_scalar(e, f->completed.at, 1) ||
	     !emit_scalar(e, "by", 0) || !emit_scalar(e, f->completed.by, 1) ||
	     !emit_scalar(e, "reason", 0) || !emit_scalar(e, f->completed.reason, 1) ||
	     !emit_mapping_end(e)))
		return 0;
	if (!emit_mapping_end(e))
		return 0;
	if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(e, &ev))
		return 0;
	if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
		return 0;
	return yaml_emitter_flush(e);
}

int co_flags_format(char **out, const co_flags *f)
{
	yaml_emitter_t e;
	outbuf b = {NULL, 0, 0, 0};
	int op, error = 0, have_emitter = 0;

	if ((error = check_setting(f->def.mode, f->def.etcd_percent)) < 0)
		goto done;
	for (op = 0; op < CO_OP__COUNT; op++)
		if (f->has_op[op] &&
		    (error = check_setting(f->ops[op].mode, f->ops[op].etcd_percent)) < 0)
			goto done;
	if (!yaml_emitter_initialize(&e)) {
		error = co_error_set(CO_ENOMEM, "cannot initialise the YAML emitter");
		goto done;
	}
	have_emitter = 1;
	yaml_emitter_set_output(&e, outbuf_write, &b);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	yaml_emitter_set_indent(&e, 2);
	if (!emit_flags(&e, f)) {
		if (b.oom || e.error == YAML_MEMORY_ERROR)
			error = co_error_set(CO_ENOMEM, "out of memory writing YAML");
		else
			error = co_error_set(CO_EINVAL, "cannot write YAML: %s",
					     e.problem ? e.problem : "emitter error");
		goto done;
	}
	*out = b.data;
	b.data = NULL;
done:
	if (have_emitter)
		yaml_emitter_delete(&e);
	free(b.data);
	return error;
}

static int write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync the directory holding path, so that the rename itself is durable. */
static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, error = 0;

	if (!copy)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(fd) < 0)
		error = co_error_set(CO_EIO, "%s: fsync of directory: %s", path,
				     strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return error;
}

/*
 * The lock file is private as the flags file is: 0600 exactly, past the
 * umask (which could have left it 0400, a lock nobody can reopen), and an
 * older looser one of ours is tightened.  Someone else's is left alone:
 * the CLI warns about it at start.
 */
static int private_mode(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_uid != geteuid() || (st.st_mode & 07777) == 0600)
		return 0;
	return fchmod(fd, 0600);
}

/* "pid 4242 (cutover) since 2026-11-23T17:59:02Z": who holds the lock. */
static void note_holder(int fd)
{
	char comm[64] = "?", line[160], when[32];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f = fopen("/proc/self/comm", "r");
	size_t n;

	if (f) {
		if (fgets(comm, sizeof(comm), f) == NULL)
			snprintf(comm, sizeof(comm), "?");
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
	}
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = (size_t)snprintf(line, sizeof(line), "pid %d (%s) since %s\n", (int)getpid(),
			     comm, when);
	/* Best effort: the note only helps an operator name a stuck writer. */
	if (ftruncate(fd, 0) == 0 && pwrite(fd, line, n, 0) < 0)
		return;
}

static void read_holder(char *buf, size_t len, int fd)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (buf[0] == '\0')
		snprintf(buf, len, "a writer that did not say who it is");
}

int co_flags_lock_wait(const char *path, int wait_ms)
{
	struct timespec pause = {0, 5 * 1000000L};
	char *lock_path, holder[160];
	int fd, waited_ms = 0;

	if (path == NULL || *path == '\0')
		return co_error_set(CO_EINVAL, "flags: no file to lock");
	if ((lock_path = malloc(strlen(path) + sizeof(CO_FLAGS_LOCK_SUFFIX))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	sprintf(lock_path, "%s" CO_FLAGS_LOCK_SUFFIX, path);
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int error = co_error_set(CO_EIO, "%s: %s", lock_path, strerror(errno));

		free(lock_path);
		return error;
	}
	if (private_mode(fd) < 0) {
		int error =
		    co_error_set(CO_EIO, "%s: chmod 600: %s", lock_path, strerror(errno));

		close(fd);
		free(lock_path);
		return error;
	}
	/* Polled rather than blocking, to give up with a clear message. */
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || waited_ms >= wait_ms) {
			int error;

			if (errno == EWOULDBLOCK) {
				read_holder(holder, sizeof(holder), fd);
				error = co_error_set(
				    CO_EUNAVAIL, "%s: held by %s; waited %d ms for it",
				    lock_path, holder, waited_ms);
			} else {
				error = co_error_set(CO_EIO, "%s: %s", lock_path,
						     strerror(errno));
			}
			close(fd);
			free(lock_path);
			return error;
		}
		nanosleep(&pause, NULL);
		waited_ms += 5;
	}
	note_holder(fd);
	free(lock_path);
	return fd;
}

int co_flags_lock_holder(char *buf, size_t len, const char *path)
{
	char lock_path[4096];
	int fd, held = 0;

	buf[0] = '\0';
	if (path == NULL || *path == '\0')
		return co_error_set(CO_EINVAL, "flags: no file to look at");
	snprintf(lock_path, sizeof(lock_path), "%s" CO_FLAGS_LOCK_SUFFIX, path);
	if ((fd = open(lock_path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0; /* never locked */
		return co_error_set(CO_EIO, "%s: %s", lock_path, strerror(errno));
	}
	/* Free if it can be taken; given back at once. */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
	} else if (errno == EWOULDBLOCK) {
		read_holder(buf, len, fd);
		held = 1;
	}
	close(fd);
	return held;
}

int co_flags_lock(const char *path)
{
	return co_flags_lock_wait(path, CO_FLAGS_LOCK_WAIT_MS);
}

int co_flags_lock_for_kill(int *fd, const char *path)
{
	int got = co_flags_lock_wait(path, CO_FLAGS_KILL_WAIT_MS);

	*fd = -1;
	if (got == CO_EUNAVAIL)
		return 0; /* co_error_last() names the holder */
	if (got < 0)
		return got;
	*fd = got;
	co_error_clear();
	return 0;
}

void co_flags_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* CO_ECONFLICT unless the file at `path` holds `expect`. */
static int still_holds(const co_flags *expect, const char *path)
{
	co_flags now;
	char what[512];
	int error;

	if ((error = co_flags_load(&now, path)) < 0)
		return error;
	if (co_flags_equal(&now, expect))
		return 0;
	co_flags_diff(what, sizeof(what), expect, &now);
	return co_error_set(CO_ECONFLICT,
			    "flags %s changed since this command read them (%s%s%s, "
			    "by %s); nothing saved: run it again",
			    path, what, now.kill_switch ? "; kill switch: " : "",
			    now.kill_switch ? now.kill_reason : "",
			    now.updated_by[0] ? now.updated_by : "?");
}

/*
 * Write `f` to a temp file, fsync it, and rename it over `path`; with
 * `expect`, only if the file still holds it, checked last thing before
 * the rename (the window a save without the lock can hit is the rename
 * itself, not the formatting and the fsync).
 */
static int save(const co_flags *f, const char *path, const co_flags *expect)
{
	/* Distinct temp names for concurrent saves from threads of one process. */
	static atomic_uint counter;
	char *text = NULL, *tmp = NULL;
	size_t tmplen;
	int fd = -1, error;

	if ((error = co_flags_format(&text, f)) < 0)
		goto done;
	tmplen = strlen(path) + 64;
	if ((tmp = malloc(tmplen)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	snprintf(tmp, tmplen, "%s.tmp.%ld.%u", path, (long)getpid(),
		 atomic_fetch_add(&counter, 1));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL; /* not ours: do not unlink */
		goto done;
	}
	/* The umask can only remove bits; fchmod makes 0600 explicit anyway. */
	if (fchmod(fd, 0600) < 0 || write_all(fd, text, strlen(text)) < 0 ||
	    fsync(fd) < 0) {
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	if (expect && (error = still_holds(expect, path)) < 0)
		goto done;
	if (rename(tmp, path) < 0) {
		error = co_error_set(CO_EIO, "%s: rename to %s: %s", tmp, path,
				     strerror(errno));
		goto done;
	}
	free(tmp);
	tmp = NULL;
	error = fsync_dir_of(path);
done:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(text);
	return error;
}

int co_flags_save(const co_flags *f, const char *path)
{
	return save(f, path, NULL);
}

int co_flags_save_if(const co_flags *expect, const co_flags *to, const char *path)
{
	return save(to, path, expect);
}

/* Tries of co_flags_save_kill() over changes made meanwhile. */
#define KILL_TRIES 8

int co_flags_save_kill(co_flags *to, const co_flags *from, const char *path)
{
	co_flags cur = *from, next = *to;
	int error, tries;

	for (tries = 0; tries < KILL_TRIES; tries++) {
		error = save(&next, path, &cur);
		if (error == 0)
			*to = next;
		if (error == CO_EINVAL || error == CO_ETOOBIG)
			break; /* the file does not parse: nothing in it to keep */
		if (error != CO_ECONFLICT)
			return error;
		/* Another writer saved meanwhile: pull the switch over its change
		 * rather than undo it. */
		if ((error = co_flags_load(&cur, path)) < 0)
			break;
		if (cur.kill_switch) {
			*to = cur; /* already pulled: keep that reason */
			return 0;
		}
		next = cur;
		co_flags_set_kill(&next, 1, to->kill_reason);
		memcpy(next.updated_at, to->updated_at, sizeof(next.updated_at));
		memcpy(next.updated_by, to->updated_by, sizeof(next.updated_by));
	}
	co_error_clear();
	if ((error = co_flags_save(&next, path)) == 0)
		*to = next;
	return error;
}
