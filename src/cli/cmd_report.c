/*
 * cmd_report.c - `cutover report`: a reconciliation run as text, JSON,
 * Markdown or a self-contained HTML page (DESIGN §5).
 *
 * Reads only the state database (runs.h): the latest finished run, or run
 * N, its divergences, and the recent runs for the history table and the
 * chart.  It touches neither store, so a report can be made while they are
 * down.  With -o FILE the report is written to FILE.tmp and renamed, so a
 * reader (a web server publishing the page) never sees half a report.
 * A report written into the state dir is 0600, as the state is.
 *
 * --fleet (fleet mode) reads no state dir: every live router's runs come
 * through its admin API (GET /v1/admin/runs) and are merged newest first.
 */
#include "cli.h"

#include "../core/error.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "reconcile/report.h"
#include "reconcile/report_fleet.h"
#include "router/fleet.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rows of the rollout timeline an HTML report shows at most. */
#define TIMELINE_ROWS 200

#define U_REPORT                                                                         \
	"cutover report [--run N] [--format text|json|markdown|html] [-o FILE] "         \
	"[--history N] [--fleet]"

/* Runs drawn in the chart and listed in the history by default. */
#define HISTORY_DEFAULT 100

static const char h_report[] =
    "usage: " U_REPORT "\n\n"
    "Show a reconciliation run recorded by `cutover reconcile`: the latest finished\n"
    "run, or run N.  Formats:\n"
    "  text      a summary and one line per divergence (the default)\n"
    "  json      {\"run\",\"started_at\",\"duration_ms\",\"total\",\"equal\",\n"
    "             \"missing_in_etcd\",\"missing_in_git\",\"mismatch\",\"consistency\",\n"
    "             \"verdict\",\"action\",\"divergences\":[{\"id\",\"kind\",\"class\",\n"
    "             \"fields\":[...],\"git\",\"etcd\"}]} (also with --json)\n"
    "  markdown  tables: the run, its divergences, the recent runs\n"
    "  html      one self-contained page: summary, consistency over runs as an\n"
    "            SVG chart, divergences with both stores' values side by side\n"
    "In fleet mode every format also lists what each live router's outbox owes\n"
    "now, from its membership record (JSON \"owed_by_router\": [{\"router\",\"host\",\n"
    "\"state_dir\",\"outbox_depth\",\"outbox_age_ms\"}], null if etcd does not\n"
    "answer); a dead router's is drained by `cutover outbox adopt`.\n\n"
    "--fleet: instead, the runs of every live router (fleet mode: each serve\n"
    "records the runs its schedule or admin API makes in its own state), read\n"
    "through each router's GET /v1/admin/runs with the admin token, merged newest\n"
    "first, each naming its router; the newest is the fleet's latest verdict.\n"
    "Text or JSON ({\"latest\",\"runs\":[{...,\"router\"}],\"routers\":[{\"id\",\n"
    "\"admin_url\",\"answered\",\"error\"}]}); --history N runs (default 100).\n"
    "A run's divergences are on its router: `cutover report --run N` there.\n\n"
    "Options:\n"
    "  --run N            that run instead of the latest finished one\n"
    "  --format F         text, json, markdown or html\n"
    "  -o, --output FILE  write to FILE (atomically) instead of stdout\n"
    "  --history N        runs in the chart and history table (default 100)\n"
    "  --fleet            every live router's runs (see above)\n\n"
    "Exit status: 0 ok; 4 no such run (or none has finished yet); 1 bad usage;\n"
    "2 the state database cannot be read (--fleet: a router did not answer; the\n"
    "others' runs are printed).\n\n"
    "Examples:\n"
    "  cutover report\n"
    "  cutover --json report --run 7 | jq '.divergences[].id'\n"
    "  cutover report --format html -o reconcile.html\n"
    "  cutover report --fleet\n";

static int parse_count(int64_t *out, const char *what, const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v <= 0)
		return co_cli_usage_error(
		    U_REPORT, "%s \"%s\": expected a positive number", what, s);
	*out = v;
	return 0;
}

/* 1 if `path` would land in the directory `dir` (same inode), else 0. */
static int lands_in(const char *path, const char *dir)
{
	char parent[4096];
	struct stat a, b;
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == path)
		snprintf(parent, sizeof(parent), "/");
	else
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
	return stat(parent, &a) == 0 && stat(dir, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* Fleet mode: the live routers (NULL: membership not read), for the
 * report's "owed per router" section. */
typedef struct fleet_part {
	int on;
	co_fleet_member *m;
	size_t n;
} fleet_part;

static int emit(FILE *f, co_report_format fmt, const co_run *run,
		const co_divergence_list *divs, const co_run_list *hist, double threshold,
		const co_redact *rd, const co_audit_change_list *timeline,
		const fleet_part *fp)
{
	if (fp->on)
		return co_report_write_fleet(f, fmt, run, divs, hist, threshold, rd, timeline,
					     fp->m, fp->n);
	return co_report_write_with_timeline(f, fmt, run, divs, hist, threshold, rd,
					     timeline);
}

static void fleet_load(fleet_part *fp, const co_config *c)
{
	co_fleet *fleet = NULL;

	if (!c->fleet_enabled)
		return;
	fp->on = 1;
	if (co_fleet_open_config(&fleet, c) < 0 || !fleet ||
	    co_fleet_members(&fp->m, &fp->n, fleet) < 0) {
		fprintf(stderr, "cutover: warning: owed per router not shown: %s\n",
			co_error_last());
		fp->m = NULL;
		fp->n = 0;
	}
	co_fleet_close(fleet);
}

static int write_to_file(const char *path, const char *state_dir, co_report_format fmt,
			 const co_run *run, const co_divergence_list *divs,
			 const co_run_list *hist, double threshold, const co_redact *rd,
			 const co_audit_change_list *timeline, const fleet_part *fp)
{
	char tmp[4096];
	FILE *f;
	int error, fd, priv = lands_in(path, state_dir);

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp))
		return co_error_set(CO_EINVAL, "-o: path too long");
	/* A report shows both stores' values: in the state dir it is as
	 * private as the divergences it comes from (0600 whatever the umask);
	 * elsewhere it is meant to be published and follows the umask. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, priv ? 0600 : 0666);
	if (fd < 0 || (priv && fchmod(fd, 0600) < 0) || (f = fdopen(fd, "w")) == NULL) {
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return error;
	}
	error = emit(f, fmt, run, divs, hist, threshold, rd, timeline, fp);
	if (fclose(f) != 0 && error == 0)
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
	if (error == 0 && rename(tmp, path) < 0)
		error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	if (error < 0)
		unlink(tmp);
	return error;
}

/* ---- --fleet ---- */

/* The most runs one router is asked for (GET /v1/admin/runs's bound). */
#define FLEET_RUNS_MAX 1000

static const char *jstr(const cJSON *o, const char *k)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));

	return v ? v : "";
}

static double jnum(const cJSON *o, const char *k)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Newest first: by start time (Unix ms), then router, then run number. */
static int newest_first(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	double tx = jnum(x, "started_at_ms"), ty = jnum(y, "started_at_ms");
	int r = tx > ty ? -1 : tx < ty;

	if (r == 0)
		r = strcmp(jstr(x, "router"), jstr(y, "router"));
	if (r == 0)
		r = jnum(y, "run") < jnum(x, "run") ? -1 : jnum(y, "run") > jnum(x, "run");
	return r;
}

static void print_fleet_runs(cJSON *const *rows, size_t n, const co_cli_fleet_answers *g)
{
	size_t i;

	printf("fleet: %d of %zu routers answered\n", g->answered, g->n);
	if (n)
		printf("latest: %s run %lld at %s: %s, consistency %.4f%%, action %s\n",
		       jstr(rows[0], "router"), (long long)jnum(rows[0], "run"),
		       jstr(rows[0], "started_at"), jstr(rows[0], "verdict"),
		       100.0 * jnum(rows[0], "consistency"), jstr(rows[0], "action"));
	else
		printf("latest: none (no router has a finished run)\n");
	if (n)
		printf("%-24s %-16s %6s %11s %8s %6s %12s  %s\n", "started_at", "router",
		       "run", "duration_ms", "total", "owed", "consistency", "verdict/action");
	for (i = 0; i < n; i++) {
		const cJSON *r = rows[i];

		printf("%-24s %-16s %6lld %11lld %8lld %6lld %11.4f%%  %s/%s\n",
		       jstr(r, "started_at"), jstr(r, "router"), (long long)jnum(r, "run"),
		       (long long)jnum(r, "duration_ms"), (long long)jnum(r, "total"),
		       (long long)jnum(cJSON_GetObjectItemCaseSensitive(r, "owed"), "count"),
		       100.0 * jnum(r, "consistency"), jstr(r, "verdict"), jstr(r, "action"));
	}
}

/*
 * `report --fleet`: every live router's latest `limit` runs, merged
 * newest first (at most `limit` printed).  CO_EUNAVAIL after printing when
 * a router did not answer; CO_ENOTFOUND when all did and none has a run.
 */
static int report_fleet(co_cli *ctx, int json, int64_t limit)
{
	co_cli_fleet_merge mg;
	char path[64];
	size_t i, nrows;
	int error;

	snprintf(path, sizeof path, "/v1/admin/runs?limit=%lld",
		 (long long)(limit < FLEET_RUNS_MAX ? limit : FLEET_RUNS_MAX));
	if ((error = co_cli_fleet_merge_get(&mg, ctx, "report --fleet", path, "runs",
					    "a list of runs")) < 0)
		goto done;
	nrows = mg.n;
	qsort(mg.rows, nrows, sizeof *mg.rows, newest_first);
	if (nrows > (size_t)limit)
		nrows = (size_t)limit;
	if (json) {
		cJSON *arr = cJSON_AddArrayToObject(mg.out, "runs");

		for (i = 0; arr && i < nrows; i++)
			cJSON_AddItemReferenceToArray(arr, mg.rows[i]);
		if (nrows)
			cJSON_AddItemReferenceToObject(mg.out, "latest", mg.rows[0]);
		else
			cJSON_AddNullToObject(mg.out, "latest");
		if ((error = co_cli_fleet_merge_print(&mg)) < 0)
			goto done;
	} else {
		print_fleet_runs(mg.rows, nrows, &mg.g);
	}
	if ((error = co_cli_fleet_merge_result(
		 &mg, "read their runs on their host: `cutover report`")) == 0 &&
	    nrows == 0)
		error = co_error_set(CO_ENOTFOUND,
				     "report --fleet: no reconciliation run has finished on "
				     "any of the %zu routers yet",
				     mg.g.n);
done:
	co_cli_fleet_merge_clear(&mg);
	return error;
}

int co_cli_report(int argc, char **argv, co_cli *ctx)
{
	const char *run_s = NULL, *format = NULL, *output = NULL, *history = NULL,
		   *pos[1];
	int fleet_flag = 0;
	co_cli_opt opts[] = {{"run", &run_s, NULL},
			     {"format", &format, NULL},
			     {"output", &output, NULL},
			     {"history", &history, NULL},
			     {"fleet", NULL, &fleet_flag},
			     {NULL, NULL, NULL}};
	co_report_format fmt = CO_REPORT_TEXT;
	const co_config *c;
	co_state *st = NULL;
	co_run *run = NULL;
	co_divergence_list divs = {0};
	co_run_list hist = {0};
	co_audit_change_list timeline = {0};
	fleet_part fleet = {0, NULL, 0};
	char **args = NULL;
	int64_t run_id = 0, n_hist = HISTORY_DEFAULT;
	int i, error;
	size_t n;

	/* The parser knows long options only: spell -o as --output. */
	if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (i = 0; i < argc; i++)
		args[i] = strcmp(argv[i], "-o") == 0 ? (char *)"--output" : argv[i];
	error = co_cli_parse(pos, 0, &n, ctx, argc, args, opts, U_REPORT, h_report);
	free(args);
	if (error != 0)
		return error < 0 ? error : 0;
	if (run_s && (error = parse_count(&run_id, "--run", run_s)) < 0)
		return error;
	if (history && (error = parse_count(&n_hist, "--history", history)) < 0)
		return error;
	if (format && (error = co_report_parse_format(&fmt, format)) < 0)
		return co_cli_usage_error(U_REPORT, "%s", co_error_last());
	if (!format && ctx->json)
		fmt = CO_REPORT_JSON;
	if (fleet_flag) {
		if (run_s)
			return co_cli_usage_error(U_REPORT,
						  "--run names one router's run: with --fleet, "
						  "see every router's; `cutover report --run N` "
						  "on that router's host shows one");
		if (output || (fmt != CO_REPORT_TEXT && fmt != CO_REPORT_JSON))
			return co_cli_usage_error(U_REPORT, "--fleet prints text or JSON "
							    "to stdout (no -o, markdown "
							    "or html)");
		return report_fleet(ctx, fmt == CO_REPORT_JSON, n_hist);
	}

	if ((error = co_cli_config(&c, ctx)) < 0 ||
	    (error = co_state_open(&st, c->state_dir)) < 0)
		goto done;
	if (run_id)
		error = co_runs_get(&run, st, run_id);
	else
		error = co_runs_latest(&run, st);
	if (error == CO_ENOTFOUND) {
		error = run_id ? co_error_set(CO_ENOTFOUND, "no reconciliation run %lld",
					      (long long)run_id)
			       : co_error_set(CO_ENOTFOUND,
					      "no reconciliation run has finished "
					      "yet: run `cutover reconcile`");
		goto done;
	}
	if (error < 0 || (error = co_runs_divergences(&divs, st, run->id)) < 0 ||
	    (error = co_runs_list(&hist, st, (size_t)n_hist)) < 0)
		goto done;
	/* The HTML page also draws the rollout's timeline. */
	if (fmt == CO_REPORT_HTML &&
	    (error = co_report_timeline_load(&timeline, st, TIMELINE_ROWS)) < 0)
		goto done;
	fleet_load(&fleet, c);
	if (output)
		error = write_to_file(output, c->state_dir, fmt, run, &divs, &hist,
				      c->reconcile_min_consistency, c->redact, &timeline,
				      &fleet);
	else
		error = emit(stdout, fmt, run, &divs, &hist, c->reconcile_min_consistency,
			     c->redact, &timeline, &fleet);
done:
	free(fleet.m);
	co_audit_change_list_clear(&timeline);
	co_run_list_clear(&hist);
	co_divergence_list_clear(&divs);
	co_run_free(run);
	co_state_close(st);
	return error;
}
