/*
 * cmd_audit.c - `cutover audit`: read back the trail of changes.
 *
 * Every flag change, stage move, go/no-go refusal and forced change,
 * kill-switch trip (by hand, by reconciliation, by a trigger) and resume,
 * rollout step and store breaker transition is a row of the change trail
 * (audit.h) with who, what and why.  This command lists them, filtered and
 * paged, oldest first by default (as a log reads), newest first with
 * --newest.  It reads only the state database: it works while both stores
 * are down.  The rows hold flag settings and reasons, never record values.
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/state.h"
#include "flags/flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_AUDIT                                                                          \
	"cutover audit [--since T] [--until T] [--op OP] [--kind KIND] [--limit N]\n"    \
	"              [--cursor C] [--newest] [--json]"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 10000

static const char h_audit[] =
    "usage: " U_AUDIT "\n\n"
    "List the audit trail of changes: every flag change and stage move, every\n"
    "go/no-go refusal and change forced past the gate, every kill-switch trip (by\n"
    "hand, by a failing reconciliation or by a trigger) and resume, rollout steps,\n"
    "store breaker transitions, with when, who, what changed and why.  Oldest\n"
    "first (row order), or newest first with --newest.  Reads only the state\n"
    "database; record values are never in it.\n\n"
    "  --since T     rows at or after T     T: RFC 3339 (2026-12-05T18:00:00Z,\n"
    "  --until T     rows at or before T       2026-12-05T19:00:00+01:00) or a\n"
    "                                          duration ago: 30s, 10m, 2h, 1d, 1h30m\n"
    "  --op OP       rows that change operation OP (task_claim, ...), and every\n"
    "                kill-switch trip and resume (they move all operations)\n"
    "  --kind KIND   " CO_AUDIT_KINDS "\n"
    "                (gate also lists the changes forced past the gate)\n"
    "  --limit N     rows per page (default 100, at most 10000)\n"
    "  --cursor C    the next page: C is what the previous page printed\n"
    "  --newest      newest first\n"
    "  --json        "
    "{\"changes\":[{\"seq\",\"time\",\"ts_ms\",\"who\",\"action\",\"kind\",\n"
    "                \"detail\",\"why\"}],\"next_cursor\":C|null,\"order\":...}\n\n"
    "When more rows match than a page holds, the text output ends with the\n"
    "command for the next page (on stderr) and --json gives next_cursor.\n\n"
    "Exit status: 0 ok (also when nothing matches), 1 bad usage or value,\n"
    "2 the state database cannot be read.\n\n"
    "Examples:\n"
    "  cutover audit --since 2h\n"
    "  cutover audit --kind trip --newest --limit 5\n"
    "  cutover --json audit --op task_claim --since 2026-12-05T00:00:00Z\n";

static int parse_int(int64_t *out, const char *opt, const char *s, int64_t min,
		     int64_t max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return co_cli_usage_error(
		    U_AUDIT, "--%s \"%s\": expected a number from %lld to %lld", opt, s,
		    (long long)min, (long long)max);
	*out = v;
	return 0;
}

static int parse_when(int64_t *out, const char *opt, const char *s)
{
	if (co_audit_parse_time(out, s, co_state_now_ms()) < 0)
		return co_cli_error_prefix(CO_EINVAL, opt);
	return 0;
}

static int print_json(const co_audit_change_list *l, int64_t next, int newest)
{
	char *s = NULL;
	int error = co_audit_page_json(&s, l, next, newest);

	if (error == 0)
		puts(s);
	free(s);
	return error;
}

static void print_text(const co_audit_change_list *l)
{
	char when[40];
	size_t i;

	for (i = 0; i < l->n; i++) {
		const co_audit_change *c = l->items[i];

		co_audit_format_time(when, sizeof(when), c->ts);
		printf("%s  #%lld  %-9s %s  %s: %s", when, (long long)c->seq, c->kind,
		       c->who, c->action, c->detail ? c->detail : "-");
		if (c->why)
			printf("  (why: %s)", c->why);
		putchar('\n');
	}
}

int co_cli_audit(int argc, char **argv, co_cli *ctx)
{
	const char *since = NULL, *until = NULL, *op = NULL, *kind = NULL, *limit = NULL,
		   *cursor = NULL;
	int newest = 0;
	co_cli_opt opts[] = {{"since", &since, NULL},	{"until", &until, NULL},
			     {"op", &op, NULL},		{"kind", &kind, NULL},
			     {"limit", &limit, NULL},	{"cursor", &cursor, NULL},
			     {"newest", NULL, &newest}, {NULL, NULL, NULL}};
	co_audit_filter f = {0};
	co_audit_change_list l = {0};
	const co_config *c;
	co_state *st = NULL;
	co_op parsed_op;
	int64_t v = 0, next = 0;
	size_t n;
	int error;

	if ((error =
		 co_cli_parse(NULL, 0, &n, ctx, argc, argv, opts, U_AUDIT, h_audit)) != 0)
		return error < 0 ? error : 0;
	f.limit = LIMIT_DEFAULT;
	f.newest_first = newest;
	if (since && (error = parse_when(&f.since_ms, "--since", since)) < 0)
		return error;
	if (until && (error = parse_when(&f.until_ms, "--until", until)) < 0)
		return error;
	if (since && until && f.until_ms < f.since_ms)
		return co_cli_usage_error(
		    U_AUDIT, "--until \"%s\" is before --since \"%s\"", until, since);
	if (op && co_op_parse(&parsed_op, op) < 0)
		return co_cli_error_prefix(CO_EINVAL, "--op");
	f.op = op;
	if (kind && !co_audit_kind_valid(kind))
		return co_cli_usage_error(U_AUDIT, "--kind \"%s\": expected one of %s",
					  kind, CO_AUDIT_KINDS);
	f.kind = kind;
	if (limit) {
		if ((error = parse_int(&v, "limit", limit, 1, LIMIT_MAX)) < 0)
			return error;
		f.limit = (size_t)v;
	}
	if (cursor && (error = parse_int(&f.cursor, "cursor", cursor, 0, INT64_MAX)) < 0)
		return error;

	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_state_open(&st, c->state_dir)) < 0 ||
	    (error = co_audit_changes_query(&l, &next, st, &f)) < 0)
		goto done;
	if (ctx->json) {
		error = print_json(&l, next, newest);
	} else {
		print_text(&l);
		if (l.n == 0)
			fprintf(stderr, "cutover: no audit rows match\n");
		if (next)
			fprintf(stderr, "cutover: more rows: repeat with --cursor %lld\n",
				(long long)next);
	}
	if (error == 0 && (fflush(stdout) != 0 || ferror(stdout)))
		error = co_error_set(CO_EIO, "writing to stdout: %s", strerror(errno));
done:
	co_audit_change_list_clear(&l);
	co_state_close(st);
	return error;
}
