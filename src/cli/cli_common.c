/*
 * cli_common.c - what every `cutover` command needs: the configuration, the
 * store selected by --backend, a small option parser, record printing, and
 * the mapping of error codes to exit statuses.
 *
 * The option parser is hand-written rather than getopt_long: commands have
 * two levels ("task claim"), options follow positional arguments ("task
 * claim ID --swarm S") and getopt's global state would have to be reset
 * between levels.  It accepts --json and --backend anywhere, since people
 * type them after the command whatever the synopsis says.
 *
 * Data commands go through the router unless --backend names one store:
 * co_cli_data_* hide which, so that each command is written once.  A routed
 * one-shot command drains the outbox for a bounded moment before it exits
 * (DESIGN §4: every router process drains).  Flag changes share one path
 * (co_cli_flags_commit: stamp, save atomically, audit) and one gate
 * (co_cli_gate), so that `flags set`, `stage`, `rollback` and `resume`
 * cannot differ in what they record.
 *
 * The configuration is loaded in one place (co_cli_config), which is also
 * where a first run creates the state dir and a loose state dir is warned
 * about, so that no command depends on another having run before it.
 *
 * Nothing here decides anything about records: the store does, and this
 * module only reports.  It also never calls exit(): main() does.
 */
#include "cli.h"

#include "../core/audit.h"
#include "../core/error.h"
#include "../core/log.h"
#include "../core/runs.h"
#include "../core/state.h"
#include "../core/webhook.h"
#include "../store/etcd_store.h"
#include "../store/git_log.h"
#include "../store/git_store.h"
#include "flags/gate.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "router/fleet.h"
#include "router/router.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * A command that queued webhook events tries to deliver them before it
 * exits, within CO_WEBHOOK_CLI_BUDGET_MS in all: the change is made and
 * recorded already, a dead receiver only costs this wait, and what is not
 * delivered stays queued for `cutover serve` (or the next command) to
 * retry.  Not in a process whose sender thread did the work.
 */
static void deliver_webhooks(const co_config *c)
{
	co_webhook_stats ws = {0};
	co_state *st = NULL;
	int64_t left = 0;

	if (c == NULL || c->n_webhooks == 0 || co_webhook_queued() == 0 ||
	    co_webhook_sender_ran())
		return;
	if (co_state_open(&st, c->state_dir) == 0 &&
	    co_webhook_deliver(&ws, st, c, CO_WEBHOOK_CLI_BUDGET_MS, NULL) == 0 &&
	    co_webhook_pending(&left, NULL, NULL, 0, st) == 0 && left > 0)
		fprintf(stderr,
			"cutover: note: %lld webhook event%s not delivered yet: `cutover "
			"serve` retries them\n",
			(long long)left, left == 1 ? "" : "s");
	co_state_close(st);
	co_error_clear();
}

void co_cli_cleanup(co_cli *ctx)
{
	deliver_webhooks(ctx->config);
	co_webhook_unconfigure();
	co_config_free(ctx->config);
	ctx->config = NULL;
}

/* Print a warning the state module wrote into `warn`, if any. */
static void warn_if(const char *warn)
{
	if (warn[0])
		fprintf(stderr, "cutover: warning: %s\n", warn);
}

/* CO_EINVAL naming `what` and `path` unless `path` is missing or allows `mode`. */
static int usable(const char *what, const char *path, int mode)
{
	if (access(path, F_OK) < 0 || access(path, mode) == 0)
		return 0;
	return co_error_set(CO_EINVAL, "%s %s: %s", what, path, strerror(errno));
}

/*
 * First run: the one place where a command's state dir and flags file are
 * made ready, once per process, before anything touches them (issue 22:
 * `cutover stage shadow` on a fresh host failed on the flags lock because
 * only the state database created the directory).  The state dir is
 * created 0700 with its parents, and must be a directory this user can
 * write; the flags file's directory likewise (it is the state dir unless
 * CUTOVER_FLAGS says otherwise, and every router process must be able to
 * pull the kill switch there).  Existing files of ours are made 0600;
 * other users' loose ones and a state dir open to others are warned
 * about.  A path that cannot work is exit 1 naming it.  Nothing else is
 * created here: the database appears when a command first opens it, the
 * flags file and its lock when one first changes the flags.
 */
static int prepare_state(const co_config *c)
{
	static const char *const db_files[] = {CO_STATE_DB_NAME, CO_STATE_DB_NAME "-wal",
					       CO_STATE_DB_NAME "-shm"};
	char warn[1024], path[4200], *fdir = NULL, *slash;
	size_t i;
	int error;

	if ((error = co_state_dir_prepare(warn, sizeof(warn), c->state_dir)) < 0)
		return error;
	warn_if(warn);
	if ((fdir = strdup(c->flags_path)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((slash = strrchr(fdir, '/')) != NULL && slash != fdir)
		*slash = '\0';
	else if (slash == fdir)
		fdir[1] = '\0';
	else
		snprintf(fdir, strlen(fdir) + 1, ".");
	if ((error = co_state_mkdir(NULL, "flags dir", fdir)) < 0)
		goto done;
	if (access(fdir, W_OK | X_OK) < 0) {
		error =
		    co_error_set(CO_EINVAL, "flags dir %s: %s (cutover writes %s there)",
				 fdir, strerror(errno), c->flags_path);
		goto done;
	}
	for (i = 0; i < sizeof(db_files) / sizeof(db_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", c->state_dir, db_files[i]);
		if ((error = co_state_file_private(warn, sizeof(warn), path)) < 0)
			goto done;
		warn_if(warn);
	}
	if ((error = co_state_file_private(warn, sizeof(warn), c->flags_path)) < 0 ||
	    (error = usable("flags file", c->flags_path, R_OK)) < 0)
		goto done;
	warn_if(warn);
	snprintf(path, sizeof(path), "%s" CO_FLAGS_LOCK_SUFFIX, c->flags_path);
	if ((error = co_state_file_private(warn, sizeof(warn), path)) < 0 ||
	    (error = usable("flags lock", path, R_OK | W_OK)) < 0)
		goto done;
	warn_if(warn);
done:
	free(fdir);
	return error;
}

int co_cli_config(const co_config **out, co_cli *ctx)
{
	co_config *c = NULL;
	int error;

	if (ctx->config == NULL) {
		if ((error = co_config_load(&c, ctx->config_path)) < 0)
			return error;
		if ((error = prepare_state(c)) < 0 ||
		    (error = co_webhook_configure(c)) < 0) {
			co_config_free(c);
			return error;
		}
		ctx->config = c;
	}
	*out = ctx->config;
	return 0;
}

/* After a store opened (error: how the open went): its circuit breaker
 * as the config says (breaker.*).  On failure *out is freed. */
static int with_breaker(co_store **out, const co_config *c, int error)
{
	co_breaker_opts b = CO_BREAKER_OPTS_INIT;

	if (error < 0)
		return error;
	b.failures = c->breaker_failures;
	b.probe_ms = c->breaker_probe_ms;
	b.probe_max_ms = c->breaker_probe_max_ms;
	if ((error = co_store_breaker_configure(*out, &b)) < 0) {
		co_store_free(*out);
		*out = NULL;
	}
	return error;
}

static int open_git(co_store **out, const co_config *c)
{
	co_git_opts o = CO_GIT_OPTS_INIT;
	char cache[4096];

	if (c->git_repo == NULL)
		return co_error_set(CO_EINVAL,
				    "no git repository configured: set "
				    "CUTOVER_GIT_REPO or git.repo in cutover.yaml");
	/* A URL's local mirror lives in the state dir, which co_cli_config()
	 * has made ready. */
	snprintf(cache, sizeof(cache), "%s/git-cache", c->state_dir);
	o.repo = c->git_repo;
	o.branch = c->git_branch;
	o.cache_dir = cache;
	o.poll_interval_ms = c->git_poll_interval_ms;
	o.fsync = c->git_fsync;
	o.remote_timeout_ms = c->git_remote_timeout_ms;
	return with_breaker(out, c, co_git_store_open(out, &o));
}

static int open_etcd(co_store **out, const co_config *c)
{
	co_etcd_opts o;

	co_etcd_opts_from_config(&o, c);
	return with_breaker(out, c, co_etcd_store_open(out, &o));
}

int co_cli_open_backend(co_store **out, co_cli *ctx, const char *name)
{
	const co_config *c;
	int error;

	if (strcmp(name, "git") != 0 && strcmp(name, "etcd") != 0)
		return co_error_set(
		    CO_EINVAL, "--backend: unknown backend \"%s\" (git or etcd)", name);
	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	return strcmp(name, "git") == 0 ? open_git(out, c) : open_etcd(out, c);
}

int co_cli_open_store(co_store **out, co_cli *ctx)
{
	/* For callers that need one store: without --backend, the legacy
	 * one, where the data lives before a cutover. */
	return co_cli_open_backend(out, ctx,
				   ctx->backend ? ctx->backend : CO_CLI_DEFAULT_BACKEND);
}

/* --- the router --- */

int co_cli_router_opts(co_router_opts *o, const co_config *c, co_cli_router *cr)
{
	int error;

	o->git = cr->git;
	o->etcd = cr->etcd;
	o->state = cr->state;
	o->flags = cr->flags;
	o->background_drain = 0;
	o->mirror_timeout_ms = c->mirror_timeout_ms;
	o->redact = c->redact;
	o->shadow = &c->shadow; /* sampling, ignore rules (core/shadow.h) */
	o->fence_key = NULL;
	if (c->fleet_enabled) {
		if ((error = co_fleet_flags_key_for(cr->fence_key, sizeof(cr->fence_key),
						    c->fleet_prefix)) < 0)
			return error;
		o->fence_key = cr->fence_key;
	}
	return 0;
}

int co_cli_open_router(co_cli_router **out, co_cli *ctx)
{
	co_router_opts o = CO_ROUTER_OPTS_INIT;
	co_cli_router *cr;
	const co_config *c;
	int error;

	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	if ((cr = calloc(1, sizeof(*cr))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((error = open_git(&cr->git, c)) < 0 ||
	    (error = open_etcd(&cr->etcd, c)) < 0 ||
	    (error = co_state_open(&cr->state, c->state_dir)) < 0 ||
	    (error = co_flags_watcher_open(&cr->flags, c->flags_path)) < 0)
		goto done;
	if ((error = co_cli_router_opts(&o, c, cr)) < 0)
		goto done;
	if ((error = co_router_open(&cr->router, &o)) < 0)
		goto done;
	*out = cr;
	cr = NULL;
done:
	co_cli_router_close(cr, 0);
	return error;
}

void co_cli_router_close(co_cli_router *cr, int drain_ms)
{
	if (cr == NULL)
		return;
	if (cr->router && drain_ms > 0) {
		/* Keep the command's own error message: a failed drain is not
		 * the command's failure, the entries stay for the next one. */
		char saved[1024];
		int code = co_error_last_code();

		snprintf(saved, sizeof(saved), "%s", co_error_last());
		co_router_drain(cr->router, NULL, drain_ms, NULL);
		if (code)
			co_error_set(code, "%s", saved);
		else
			co_error_clear();
	}
	co_router_close(cr->router);
	co_flags_watcher_close(cr->flags);
	co_state_close(cr->state);
	co_store_free(cr->etcd);
	co_store_free(cr->git);
	free(cr);
}

int co_cli_data_open(co_cli_data *d, co_cli *ctx)
{
	if (ctx->backend)
		return co_cli_open_backend(&d->store, ctx, ctx->backend);
	return co_cli_open_router(&d->rt, ctx);
}

void co_cli_data_close(co_cli_data *d)
{
	co_store_free(d->store);
	co_cli_router_close(d->rt, CO_CLI_DRAIN_MS);
	d->store = NULL;
	d->rt = NULL;
}

void co_cli_data_describe(char *buf, size_t len, co_cli_data *d)
{
	co_flags f;

	if (d->store) {
		snprintf(buf, len, "%s %s", co_store_name(d->store),
			 co_store_describe(d->store));
		return;
	}
	co_flags_watcher_get(&f, d->rt->flags);
	snprintf(buf, len, "the router (stage %s%s)", co_stage_name(co_stage_of(&f)),
		 f.kill_switch ? ", kill switch on" : "");
}

int co_cli_data_task_create(co_record **out, co_cli_data *d, const co_record *task)
{
	return d->store ? co_store_task_create(out, d->store, task)
			: co_router_task_create(out, d->rt->router, task);
}

int co_cli_data_get(co_record **out, co_cli_data *d, co_kind kind, const char *id)
{
	return d->store ? co_store_get(out, d->store, kind, id)
			: co_router_get(out, d->rt->router, kind, id);
}

int co_cli_data_list(co_record_list *out, co_cli_data *d, co_kind kind)
{
	return d->store ? co_store_list(out, d->store, kind)
			: co_router_list(out, d->rt->router, kind);
}

int co_cli_data_claim(co_record **out, co_cli_data *d, const char *id, const char *swarm,
		      int64_t ttl)
{
	return d->store ? co_store_claim(out, d->store, id, swarm, ttl)
			: co_router_claim(out, d->rt->router, id, swarm, ttl);
}

int co_cli_data_release(co_record **out, co_cli_data *d, const char *id,
			const char *swarm, co_status to)
{
	return d->store ? co_store_release(out, d->store, id, swarm, to)
			: co_router_release(out, d->rt->router, id, swarm, to);
}

int co_cli_data_renew(co_record **out, co_cli_data *d, const char *id, const char *swarm,
		      int64_t ttl)
{
	return d->store ? co_store_renew(out, d->store, id, swarm, ttl)
			: co_router_renew(out, d->rt->router, id, swarm, ttl);
}

int co_cli_data_swarm_register(co_record **out, co_cli_data *d, const co_record *s)
{
	return d->store ? co_store_swarm_register(out, d->store, s)
			: co_router_swarm_register(out, d->rt->router, s);
}

int co_cli_data_remove(co_cli_data *d, co_kind kind, const char *id)
{
	return d->store ? co_store_remove(d->store, kind, id)
			: co_router_remove(d->rt->router, kind, id);
}

/* --- flag changes --- */

const char *co_cli_who(void)
{
	const char *u = getenv("USER");

	return u && *u ? u : "cutover";
}

/*
 * Fleet mode (router/fleet.h): the flags in etcd are the fleet's.  A change
 * is written there by txn on the epoch (the change re-applied on what etcd
 * holds), then the local file gets the result (a kill switch on in it and
 * not touched by the change stays); nothing is changed when etcd does not
 * answer.  The kill switch lands in the local file first,
 * always, and in etcd if it answers (else a warning: `rollback --fleet`
 * reaches the routers without etcd).  *to becomes what was saved.
 */
static int fleet_commit(const co_config *c, const co_flags *from, co_flags *to, int kill)
{
	co_fleet *fleet = NULL;
	char warn[1024];
	int error;

	if ((error = co_fleet_open_config(&fleet, c)) < 0 && !kill)
		return co_cli_error_prefix(error, "fleet flags not changed");
	error = co_fleet_flags_commit_file(fleet, c->flags_path, from, to, kill, warn,
					   sizeof(warn));
	co_fleet_close(fleet);
	if (error == 0 && warn[0])
		fprintf(stderr, "cutover: warning: %s\n", warn);
	return error;
}

int co_cli_flags_commit(co_cli *ctx, co_state *st, const char *action,
			const co_flags *from, co_flags *to, const char *note,
			const char *why, int kill)
{
	const co_config *c;
	co_state *own = NULL;
	char what[2048];
	size_t n;
	int error;

	if ((error = co_cli_config(&c, ctx)) < 0)
		return error;
	co_flags_stamp(to, co_cli_who(), NULL);
	co_flags_diff(what, sizeof(what), from, to);
	n = strlen(what);
	if (note && *note && n + 3 < sizeof(what))
		snprintf(what + n, sizeof(what) - n, "; %s", note);
	if (c->fleet_enabled) {
		if ((error = fleet_commit(c, from, to, kill)) < 0)
			return error;
	} else if ((error = kill ? co_flags_save_kill(to, from, c->flags_path)
				 : co_flags_save_if(from, to, c->flags_path)) < 0) {
		/* The kill switch always lands; any other change only over what it read. */
		return error;
	}
	if (st == NULL && (error = co_state_open(&own, c->state_dir)) < 0)
		goto audit_failed;
	if ((error = co_audit_change_add(st ? st : own, co_cli_who(), action, what,
					 why && *why ? why : NULL)) < 0)
		goto audit_failed;
	co_state_close(own);
	return 0;
audit_failed:
	co_state_close(own);
	return co_cli_error_prefix(error, "flags saved, but the audit trail was not "
					  "written");
}

/* --- output --- */

int co_cli_print_json(cJSON *o)
{
	char *s;

	if (o == NULL || (s = cJSON_PrintUnformatted(o)) == NULL) {
		cJSON_Delete(o);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	puts(s);
	free(s);
	cJSON_Delete(o);
	if (fflush(stdout) != 0 || ferror(stdout))
		return co_error_set(CO_EIO, "writing to stdout: %s", strerror(errno));
	return 0;
}

int co_cli_gate_audited(char *note, size_t note_len, co_cli *ctx, co_state *st,
			const char *action, const co_flags *from, const co_flags *to,
			int force)
{
	char what[2048];
	int error = co_cli_gate(note, note_len, ctx, st, from, to, force);
	size_t n;

	if (error != CO_ECONFLICT)
		return error;
	n = (size_t)snprintf(what, sizeof(what), "%s: ", action);
	co_flags_diff(what + n, sizeof(what) - n, from, to);
	co_audit_gate_refused(st, co_cli_who(), what);
	return error;
}

/* --- options --- */

int co_cli_usage_error(const char *usage, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return co_error_set(CO_EINVAL, "%s\nusage: %s", what, usage);
}

int co_cli_error_prefix(int code, const char *prefix)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s", co_error_last());
	return co_error_set(code, "%s: %s", prefix, msg);
}

static const co_cli_opt *find_opt(const co_cli_opt *opts, const char *name, size_t len)
{
	for (; opts && opts->name; opts++)
		if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
			return opts;
	return NULL;
}

int co_cli_parse(const char **pos, size_t max_pos, size_t *n_pos, co_cli *ctx, int argc,
		 char **argv, const co_cli_opt *opts, const char *usage, const char *help)
{
	static const co_cli_opt global_opts[] = {{"backend", NULL, NULL},
						 {NULL, NULL, NULL}};
	size_t n = 0;
	int i, only_pos = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *val = NULL;
		const co_cli_opt *o;
		size_t len;

		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (n == max_pos)
				return co_cli_usage_error(
				    usage, "unexpected argument \"%s\"", a);
			pos[n++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(help, stdout);
			return 1;
		}
		if (a[1] != '-')
			return co_cli_usage_error(usage, "unknown option \"%s\"", a);
		name = a + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		if (len == 4 && strncmp(name, "json", 4) == 0 && eq == NULL) {
			ctx->json = 1;
			continue;
		}
		o = find_opt(opts, name, len);
		if (o == NULL && find_opt(global_opts, name, len) == NULL)
			return co_cli_usage_error(usage, "unknown option \"--%.*s\"",
						  (int)len, name);
		if (o && o->flag) {
			if (eq)
				return co_cli_usage_error(
				    usage, "option --%s takes no value", o->name);
			*o->flag = 1;
			continue;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return co_cli_usage_error(usage, "option --%.*s needs a value",
						  (int)len, name);
		if (o)
			*o->value = val;
		else
			ctx->backend = val;
	}
	*n_pos = n;
	return 0;
}

int co_cli_parse_ttl(long long *out, const char *what, const char *s)
{
	const long long max = 10LL * 366 * 24 * 3600;
	long long v = 0;
	const char *p;

	if (s == NULL || *s == '\0')
		return co_error_set(CO_EINVAL,
				    "%s: expected a positive number of seconds", what);
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return co_error_set(
			    CO_EINVAL,
			    "%s \"%s\": expected a positive whole number of seconds",
			    what, s);
		v = v * 10 + (*p - '0');
		if (v > max)
			return co_error_set(CO_EINVAL, "%s \"%s\": more than ten years",
					    what, s);
	}
	if (v <= 0)
		return co_error_set(CO_EINVAL, "%s \"%s\": must be more than 0 seconds",
				    what, s);
	*out = v;
	return 0;
}

/* --- output --- */

static void print_strv(const char *label, const co_strv *v)
{
	size_t i;

	if (v->n == 0)
		return;
	printf("  %s=", label);
	for (i = 0; i < v->n; i++)
		printf("%s%s", i ? "," : "", v->v[i]);
}

static void print_text(const co_record *r)
{
	char when[32];

	if (r->kind == CO_KIND_TASK) {
		printf("%s  %s", r->id, co_status_name(r->status));
		if (r->owner)
			printf("  owner=%s", r->owner);
		printf("  rev=%lld", (long long)r->rev);
		if (r->claim_expires_at) {
			co_time_format(when, sizeof(when), r->claim_expires_at);
			printf("  expires=%s", when);
		}
		if (r->type && *r->type)
			printf("  type=%s", r->type);
		print_strv("blocked_by", &r->blocked_by);
	} else {
		printf("%s  rev=%lld", r->id, (long long)r->rev);
		print_strv("caps", &r->capabilities);
		co_time_format(when, sizeof(when), r->registered_at);
		printf("  registered=%s", when);
	}
	if (r->metadata && strcmp(r->metadata, "{}") != 0)
		printf("  meta=%s", r->metadata);
	putchar('\n');
}

static int flush_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return co_error_set(CO_EIO, "writing to stdout: %s", strerror(errno));
	return 0;
}

int co_cli_print_record(co_cli *ctx, const co_record *r)
{
	char *json;

	if (!ctx->json) {
		print_text(r);
		return flush_stdout();
	}
	if ((json = co_record_to_json(r, 0)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	printf("%s\n", json);
	free(json);
	return flush_stdout();
}

int co_cli_print_list(co_cli *ctx, const co_record_list *l)
{
	size_t i;

	if (!ctx->json) {
		for (i = 0; i < l->n; i++)
			print_text(l->items[i]);
		return flush_stdout();
	}
	/* Records print as canonical JSON already: an array is their join. */
	putchar('[');
	for (i = 0; i < l->n; i++) {
		char *json = co_record_to_json(l->items[i], 0);

		if (json == NULL)
			return co_error_set(CO_ENOMEM, "out of memory");
		printf("%s%s", i ? "," : "", json);
		free(json);
	}
	puts("]");
	return flush_stdout();
}

int co_cli_exit_code(int code)
{
	if (code >= 0)
		return code;
	co_log(CO_LOG_ERROR, "cli", "%s", *co_error_last() ? co_error_last() : co_error_name(code));
	return co_error_exit_code(code);
}

int64_t co_cli_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void co_cli_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int co_cli_parse_wait(int *out_s, const char *s, const char *usage)
{
	char *end = NULL;
	long v;
	int ms;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end != s && *end == '\0' && errno == 0 && v >= 0 && v <= 24 * 3600) {
		*out_s = (int)v;
		return 0;
	}
	if (co_config_parse_duration(&ms, s) == 0 && ms >= 0 && ms <= 24 * 3600 * 1000) {
		*out_s = (ms + 999) / 1000;
		return 0;
	}
	return co_cli_usage_error(
	    usage, "--wait-drain \"%s\": expected seconds (0 to 86400) or a duration", s);
}
