/*
 * flags_yaml.c - the YAML text of the flags: parse and validate, format.
 *
 * The YAML side uses libyaml's document API: the whole text becomes a node
 * tree whose nodes carry their line numbers, so every validation error can
 * name its line ("flags.yaml:7: unknown mode \"dule\" ...").  Validation is
 * strict: an unknown key is an error rather than ignored, because a typo in
 * a flag file silently routing traffic to the wrong store is worse than a
 * refused reload (the watcher keeps the last good flags).  Formatting goes
 * through libyaml's emitter with a fixed key order.
 */
#include "flags/flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "core/error.h"
#include "flags/flags_private.h"

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

enum {
	K_KILL,
	K_REASON,
	K_AT,
	K_BY,
	K_DEFAULT,
	K_OPS,
	K_MIRROR,
	K_COMPLETED,
	K_EPOCH,
	K__COUNT
};
static const char *const top_keys[K__COUNT] = {
    "kill_switch", "kill_reason", "updated_at", "updated_by",  "default",
    "operations",  "mirror",	  "completed",	"fleet_epoch",
};

/* `fleet_epoch: N`, N > 0: an etcd revision. */
static int parse_epoch(int64_t *out, parse_ctx *c, const yaml_node_t *v, const char *key)
{
	const char *s = scalar(v);
	char *end;
	long long n;

	errno = 0;
	n = s ? strtoll(s, &end, 10) : 0;
	if (!s || !*s || *end || errno || n <= 0)
		return co_error_set(CO_EINVAL,
				    "%s:%lu: \"%s\" must be an etcd revision (a whole "
				    "number > 0), not \"%s\"",
				    c->name, node_line(v), key, s ? s : "?");
	*out = n;
	return 0;
}

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
			    "operations, mirror, completed, fleet_epoch)",
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
		case K_EPOCH:
			error = parse_epoch(&f->fleet_epoch, c, v, key);
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
		if (f->has_op[op] && !emit_setting(e, co_op_name(op), f->ops[op]))
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
	if (f->fleet_epoch > 0) {
		char rev[24];

		snprintf(rev, sizeof(rev), "%lld", (long long)f->fleet_epoch);
		if (!emit_scalar(e, "fleet_epoch", 0) || !emit_scalar(e, rev, 0))
			return 0;
	}
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

	if ((error = co_flags__check_setting(f->def.mode, f->def.etcd_percent)) < 0)
		goto done;
	for (op = 0; op < CO_OP__COUNT; op++)
		if (f->has_op[op] &&
		    (error = co_flags__check_setting(f->ops[op].mode, f->ops[op].etcd_percent)) < 0)
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
