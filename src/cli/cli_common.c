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
 * Nothing here decides anything about records: the store does, and this
 * module only reports.  It also never calls exit(): main() does.
 */
#include "cli.h"

#include "../core/error.h"
#include "../store/etcd_store.h"
#include "../store/git_store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void co_cli_cleanup(co_cli *ctx)
{
	co_config_free(ctx->config);
	ctx->config = NULL;
}

int co_cli_config(const co_config **out, co_cli *ctx)
{
	int error;

	if (ctx->config == NULL &&
	    (error = co_config_load(&ctx->config, ctx->config_path)) < 0)
		return error;
	*out = ctx->config;
	return 0;
}

/* A repository given as a URL (or scp-like user@host:path), not a path. */
static int repo_is_url(const char *repo)
{
	const char *colon = strchr(repo, ':');
	const char *slash = strchr(repo, '/');

	if (strstr(repo, "://") != NULL)
		return 1;
	return colon != NULL && (slash == NULL || colon < slash);
}

/* mkdir -p for the state directory (only needed for a URL's mirror). */
static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t i, len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return co_error_set(CO_EINVAL, "state dir \"%s\": bad path", path);
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0777) < 0 && errno != EEXIST)
			return co_error_set(CO_EIO, "state dir %s: %s", buf,
					    strerror(errno));
		buf[i] = i < len ? '/' : '\0';
	}
	return 0;
}

static int open_git(co_store **out, const co_config *c)
{
	co_git_opts o = CO_GIT_OPTS_INIT;
	char cache[4096];
	int error;

	if (c->git_repo == NULL)
		return co_error_set(CO_EINVAL,
				    "no git repository configured: set "
				    "CUTOVER_GIT_REPO or git.repo in cutover.yaml");
	snprintf(cache, sizeof(cache), "%s/git-cache", c->state_dir);
	if (repo_is_url(c->git_repo) && (error = mkdir_p(c->state_dir)) < 0)
		return error;
	o.repo = c->git_repo;
	o.branch = c->git_branch;
	o.cache_dir = cache;
	o.poll_interval_ms = c->git_poll_interval_ms;
	o.fsync = c->git_fsync;
	return co_git_store_open(out, &o);
}

static int open_etcd(co_store **out, const co_config *c)
{
	co_etcd_opts o = CO_ETCD_OPTS_INIT;

	o.endpoints = (const char *const *)c->etcd_endpoints;
	o.n_endpoints = c->n_etcd_endpoints;
	o.prefix = c->etcd_prefix;
	o.user = c->etcd_user;
	o.password = c->etcd_password;
	o.ca_file = c->etcd_ca_file;
	o.cert_file = c->etcd_cert_file;
	o.key_file = c->etcd_key_file;
	o.connect_timeout_ms = c->etcd_connect_timeout_ms;
	o.request_timeout_ms = c->etcd_request_timeout_ms;
	return co_etcd_store_open(out, &o);
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
	/* Until the router exists, a data command without --backend talks to
	 * the legacy store, which is where the data lives before a cutover. */
	return co_cli_open_backend(out, ctx,
				   ctx->backend ? ctx->backend : CO_CLI_DEFAULT_BACKEND);
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
	fprintf(stderr, "cutover: %s\n",
		*co_error_last() ? co_error_last() : co_error_name(code));
	return co_error_exit_code(code);
}
