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
 *
 * With --fleet (fleet mode) the trail of every live router is read through
 * its admin API (GET /v1/admin/audit, the same filters) in parallel and
 * merged by time, each row naming its router: each router keeps its own
 * trail in its own state database (docs/design-changes.md says why).
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/state.h"
#include "flags/flags.h"
#include "router/fleet.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_AUDIT                                                                          \
	"cutover audit [--since T] [--until T] [--op OP] [--kind KIND] [--limit N]\n"    \
	"              [--cursor C] [--newest] [--fleet] [--json]"

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
    "  --fleet       every live router's trail (fleet mode), read through its\n"
    "                admin API with the admin token and merged by time; each row\n"
    "                names its router (no --cursor: narrow with --since/--until)\n"
    "  --json        "
    "{\"changes\":[{\"seq\",\"time\",\"ts_ms\",\"who\",\"action\",\"kind\",\n"
    "                \"detail\",\"why\"}],\"next_cursor\":C|null,\"order\":...}\n\n"
    "When more rows match than a page holds, the text output ends with the\n"
    "command for the next page (on stderr) and --json gives next_cursor.\n\n"
    "Exit status: 0 ok (also when nothing matches), 1 bad usage or value,\n"
    "2 the state database cannot be read (--fleet: a router did not answer;\n"
    "the others' rows are printed).\n\n"
    "Examples:\n"
    "  cutover audit --since 2h\n"
    "  cutover audit --kind trip --newest --limit 5\n"
    "  cutover --json audit --op task_claim --since 2026-12-05T00:00:00Z\n"
    "  cutover audit --fleet --kind trip --since 1d\n";

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

/* ---- --fleet ---- */

/* Append "&name=value" (value escaped) to q; 0 or CO_ENOMEM. */
static int add_param(char *q, size_t len, const char *name, const char *value)
{
	char *e;
	size_t used = strlen(q);

	if (!value)
		return 0;
	if ((e = curl_easy_escape(NULL, value, 0)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	snprintf(q + used, len - used, "%s%s=%s", used ? "&" : "", name, e);
	curl_free(e);
	return 0;
}

static double num(const cJSON *o, const char *k)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const char *str(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));

	return s ? s : "";
}

static int by_time(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	double tx = num(x, "ts_ms"), ty = num(y, "ts_ms");
	int r = strcmp(str(x, "router"), str(y, "router"));

	if (tx != ty)
		return tx < ty ? -1 : 1;
	if (r)
		return r;
	return num(x, "seq") < num(y, "seq") ? -1 : num(x, "seq") > num(y, "seq");
}

static void print_fleet_text(cJSON *const *rows, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const cJSON *r = rows[i];

		printf("%s  %s  #%lld  %-9s %s  %s: %s", str(r, "time"), str(r, "router"),
		       (long long)num(r, "seq"), str(r, "kind"), str(r, "who"),
		       str(r, "action"), *str(r, "detail") ? str(r, "detail") : "-");
		if (*str(r, "why"))
			printf("  (why: %s)", str(r, "why"));
		putchar('\n');
	}
}

/*
 * Every live router's page for the same filters, merged by time: the
 * first `limit` rows of the union (each router's own first `limit` rows
 * hold them all).  CO_EUNAVAIL, after printing, when a router did not
 * answer.
 */
static int audit_fleet(co_cli *ctx, const char *query, size_t limit, int newest)
{
	co_cli_fleet_merge mg;
	char path[2048];
	size_t i, nrows;
	int error;

	snprintf(path, sizeof path, "/v1/admin/audit?%s", query);
	if ((error = co_cli_fleet_merge_get(&mg, ctx, "audit --fleet", path, "changes",
					    "an audit page")) < 0)
		goto done;
	nrows = mg.n;
	qsort(mg.rows, nrows, sizeof *mg.rows, by_time);
	if (newest)
		for (i = 0; i < nrows / 2; i++) {
			cJSON *t = mg.rows[i];

			mg.rows[i] = mg.rows[nrows - 1 - i];
			mg.rows[nrows - 1 - i] = t;
		}
	if (nrows > limit)
		nrows = limit;
	if (ctx->json) {
		cJSON *changes = cJSON_AddArrayToObject(mg.out, "changes");

		for (i = 0; changes && i < nrows; i++)
			cJSON_AddItemReferenceToArray(changes, mg.rows[i]);
		cJSON_AddStringToObject(mg.out, "order", newest ? "newest" : "oldest");
		if ((error = co_cli_fleet_merge_print(&mg)) < 0)
			goto done;
	} else {
		print_fleet_text(mg.rows, nrows);
		if (nrows == 0)
			fprintf(stderr, "cutover: no audit rows match on %d of %zu routers\n",
				mg.g.answered, mg.g.n);
	}
	error = co_cli_fleet_merge_result(
	    &mg, "read their trail on their host: `cutover audit`");
done:
	co_cli_fleet_merge_clear(&mg);
	return error;
}

int co_cli_audit(int argc, char **argv, co_cli *ctx)
{
	const char *since = NULL, *until = NULL, *op = NULL, *kind = NULL, *limit = NULL,
		   *cursor = NULL;
	int newest = 0, fleet = 0;
	co_cli_opt opts[] = {{"since", &since, NULL},	{"until", &until, NULL},
			     {"op", &op, NULL},		{"kind", &kind, NULL},
			     {"limit", &limit, NULL},	{"cursor", &cursor, NULL},
			     {"newest", NULL, &newest}, {"fleet", NULL, &fleet},
			     {NULL, NULL, NULL}};
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
	if (fleet) {
		char q[1024] = "", lim[24];

		if (cursor)
			return co_cli_usage_error(U_AUDIT,
						  "--cursor pages one router's trail; with "
						  "--fleet narrow with --since and --until");
		snprintf(lim, sizeof lim, "%zu", f.limit);
		if ((error = add_param(q, sizeof q, "since", since)) < 0 ||
		    (error = add_param(q, sizeof q, "until", until)) < 0 ||
		    (error = add_param(q, sizeof q, "op", op)) < 0 ||
		    (error = add_param(q, sizeof q, "kind", kind)) < 0 ||
		    (error = add_param(q, sizeof q, "limit", lim)) < 0 ||
		    (error = add_param(q, sizeof q, "order", newest ? "newest" : "oldest")) <
			0)
			return error;
		return audit_fleet(ctx, q, f.limit, newest);
	}

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
