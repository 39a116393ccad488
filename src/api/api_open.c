/*
 * api_open.c - the public store and router of libcutover
 * (include/cutover/store.h, router.h): thin wrappers over the CLI's own
 * opening code (cli/cli.h) and the co_cli_data_* operations, so that a
 * program linking the library opens and drives the stores exactly as the
 * `cutover` commands do (configuration, circuit breakers, outbox drain on
 * close).
 *
 * A store and a router are the same handle inside: a co_cli context whose
 * configuration comes from cutover_options or a cutover.yaml, and the
 * co_cli_data it opened (one store when a backend is named, else the
 * router).  This file may touch the configuration and the CLI's opening
 * and data calls, nothing else.
 */
#include "cutover/cutover.h"

#include "api.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct co_api_handle {
	co_cli cli;
	co_cli_data data;
} co_api_handle;

struct cutover_store {
	co_api_handle h;
};

struct cutover_router {
	co_api_handle h;
};

/* Replace *dst with a copy of src unless src is NULL. */
static int set_str(char **dst, const char *src)
{
	char *copy;

	if (src == NULL)
		return 0;
	if ((copy = strdup(src)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	free(*dst);
	*dst = copy;
	return 0;
}

static int set_endpoints(co_config *c, const cutover_options *o)
{
	char **v;
	size_t i;

	if (o->n_etcd_endpoints == 0)
		return 0;
	if (o->etcd_endpoints == NULL)
		return co_error_set(CO_EINVAL,
				    "etcd_endpoints: NULL with n_etcd_endpoints %zu",
				    o->n_etcd_endpoints);
	for (i = 0; i < o->n_etcd_endpoints; i++) {
		const char *e = o->etcd_endpoints[i];

		if (e == NULL ||
		    (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0))
			return co_error_set(CO_EINVAL,
					    "etcd_endpoints[%zu]: \"%s\" must start with "
					    "http:// or https://",
					    i, e ? e : "(null)");
	}
	if ((v = calloc(o->n_etcd_endpoints, sizeof(*v))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (i = 0; i < o->n_etcd_endpoints; i++) {
		if ((v[i] = strdup(o->etcd_endpoints[i])) == NULL) {
			while (i > 0)
				free(v[--i]);
			free(v);
			return co_error_set(CO_ENOMEM, "out of memory");
		}
	}
	for (i = 0; i < c->n_etcd_endpoints; i++)
		free(c->etcd_endpoints[i]);
	free(c->etcd_endpoints);
	c->etcd_endpoints = v;
	c->n_etcd_endpoints = o->n_etcd_endpoints;
	return 0;
}

/* A configuration from the built-in defaults and `o` (no file, no
 * environment).  *out is the caller's (co_config_free). */
static int config_from_options(co_config **out, const cutover_options *o)
{
	co_config *c = NULL;
	int error;

	if (o == NULL)
		return co_error_set(CO_EINVAL, "options: NULL");
	if ((error = co_config_defaults(&c)) < 0)
		return error;
	if ((error = set_str(&c->git_repo, o->git_repo)) < 0 ||
	    (error = set_str(&c->git_branch, o->git_branch)) < 0 ||
	    (error = set_str(&c->etcd_prefix, o->etcd_prefix)) < 0 ||
	    (error = set_str(&c->state_dir, o->state_dir)) < 0 ||
	    (error = set_endpoints(c, o)) < 0)
		goto done;
	if (o->flags_path) {
		error = set_str(&c->flags_path, o->flags_path);
	} else {
		char *p;
		size_t len = strlen(c->state_dir) + sizeof("/flags.yaml");

		if ((p = malloc(len)) == NULL) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		snprintf(p, len, "%s/flags.yaml", c->state_dir);
		free(c->flags_path);
		c->flags_path = p;
	}
done:
	if (error < 0)
		co_config_free(c);
	else
		*out = c;
	return error;
}

/*
 * Open h: one store (backend "git"/"etcd") or the router (backend NULL),
 * configured by `opts` or else by the config file `config_path`.
 */
static int handle_open(co_api_handle *h, const char *backend, const cutover_options *opts,
		       const char *config_path, int from_file)
{
	int error;

	memset(h, 0, sizeof(*h));
	co_error_clear();
	h->cli.backend = backend;
	h->cli.config_path = config_path;
	if (!from_file && (error = config_from_options(&h->cli.config, opts)) < 0)
		return error;
	if ((error = co_cli_data_open(&h->data, &h->cli)) < 0) {
		co_cli_data_close(&h->data);
		co_cli_cleanup(&h->cli);
	}
	return co_api_code(error);
}

static void handle_close(co_api_handle *h)
{
	co_cli_data_close(&h->data);
	co_cli_cleanup(&h->cli);
}

static int check_backend(const char *backend)
{
	if (backend == NULL ||
	    (strcmp(backend, "git") != 0 && strcmp(backend, "etcd") != 0))
		return co_error_set(CO_EINVAL, "backend: \"%s\" is not git or etcd",
				    backend ? backend : "(null)");
	return 0;
}

/*
 * A new handle of `size` bytes (a cutover_store or cutover_router, whose
 * first member is the co_api_handle): one store `backend` (checked) when
 * !routed, else the router; configured by `opts`, or by the config file
 * `config_path` when from_file.  NULL with *error set on failure.
 */
static void *open_handle(int *error, size_t size, int routed, const char *backend,
			 const cutover_options *opts, const char *config_path,
			 int from_file)
{
	co_api_handle *h;

	if (!routed && (*error = check_backend(backend)) < 0)
		return NULL;
	if ((h = calloc(1, size)) == NULL) {
		*error = co_error_set(CO_ENOMEM, "out of memory");
		return NULL;
	}
	if ((*error = handle_open(h, routed ? NULL : backend, opts, config_path,
				  from_file)) < 0) {
		free(h);
		return NULL;
	}
	return h;
}

#define OUT_NULL(out)                                                                    \
	do {                                                                             \
		if ((out) == NULL)                                                       \
			return co_error_set(CO_EINVAL, "out: NULL");                     \
	} while (0)

int cutover_store_open(cutover_store **out, const char *backend,
		       const cutover_options *opts)
{
	int error;

	OUT_NULL(out);
	*out = open_handle(&error, sizeof(cutover_store), 0, backend, opts, NULL, 0);
	return *out ? 0 : error;
}

int cutover_store_open_config(cutover_store **out, const char *backend,
			      const char *config_path)
{
	int error;

	OUT_NULL(out);
	*out =
	    open_handle(&error, sizeof(cutover_store), 0, backend, NULL, config_path, 1);
	return *out ? 0 : error;
}

void cutover_store_close(cutover_store *s)
{
	if (s == NULL)
		return;
	handle_close(&s->h);
	free(s);
}

int cutover_store_ping(cutover_store *s)
{
	return co_api_code(co_store_ping(s->h.data.store));
}

int cutover_router_open(cutover_router **out, const cutover_options *opts)
{
	int error;

	OUT_NULL(out);
	*out = open_handle(&error, sizeof(cutover_router), 1, NULL, opts, NULL, 0);
	return *out ? 0 : error;
}

int cutover_router_open_config(cutover_router **out, const char *config_path)
{
	int error;

	OUT_NULL(out);
	*out = open_handle(&error, sizeof(cutover_router), 1, NULL, NULL, config_path, 1);
	return *out ? 0 : error;
}

void cutover_router_close(cutover_router *r)
{
	if (r == NULL)
		return;
	handle_close(&r->h);
	free(r);
}

/* --- the operations, once for both handles --- */

static int op_task_create(cutover_record **out, co_api_handle *h, const cutover_record *t)
{
	if (out == NULL || t == NULL)
		return co_error_set(CO_EINVAL, "task create: NULL argument");
	*out = NULL;
	return co_api_code(
	    co_cli_data_task_create((co_record **)out, &h->data, (const co_record *)t));
}

static int op_get(cutover_record **out, co_api_handle *h, cutover_kind kind,
		  const char *id)
{
	if (out == NULL)
		return co_error_set(CO_EINVAL, "get: out is NULL");
	*out = NULL;
	if (kind != CUTOVER_KIND_TASK && kind != CUTOVER_KIND_SWARM)
		return co_error_set(CO_EINVAL, "kind: %d is not a task or a swarm",
				    (int)kind);
	return co_api_code(
	    co_cli_data_get((co_record **)out, &h->data, (co_kind)kind, id));
}

static int op_list(cutover_record_list **out, co_api_handle *h, cutover_kind kind)
{
	co_record_list l = {0};
	int error;

	if (out == NULL)
		return co_error_set(CO_EINVAL, "list: out is NULL");
	*out = NULL;
	if (kind != CUTOVER_KIND_TASK && kind != CUTOVER_KIND_SWARM)
		return co_error_set(CO_EINVAL, "kind: %d is not a task or a swarm",
				    (int)kind);
	if ((error = co_cli_data_list(&l, &h->data, (co_kind)kind)) < 0) {
		co_record_list_clear(&l);
		return co_api_code(error);
	}
	return co_api_list_wrap(out, &l);
}

/* claim, release and renew: *out may be set on CO_ECONFLICT (store.h). */
static int op_claim(cutover_record **out, co_api_handle *h, const char *id,
		    const char *swarm, int64_t ttl)
{
	if (out == NULL)
		return co_error_set(CO_EINVAL, "claim: out is NULL");
	*out = NULL;
	return co_api_code(
	    co_cli_data_claim((co_record **)out, &h->data, id, swarm, ttl));
}

static int op_release(cutover_record **out, co_api_handle *h, const char *id,
		      const char *swarm, cutover_status to)
{
	if (out == NULL)
		return co_error_set(CO_EINVAL, "release: out is NULL");
	*out = NULL;
	if (to != CUTOVER_STATUS_AVAILABLE && to != CUTOVER_STATUS_COMPLETE &&
	    to != CUTOVER_STATUS_FAILED)
		return co_error_set(CO_EINVAL,
				    "release: to %d is not available, complete or failed",
				    (int)to);
	return co_api_code(
	    co_cli_data_release((co_record **)out, &h->data, id, swarm, (co_status)to));
}

static int op_renew(cutover_record **out, co_api_handle *h, const char *id,
		    const char *swarm, int64_t ttl)
{
	if (out == NULL)
		return co_error_set(CO_EINVAL, "renew: out is NULL");
	*out = NULL;
	return co_api_code(
	    co_cli_data_renew((co_record **)out, &h->data, id, swarm, ttl));
}

int cutover_store_task_create(cutover_record **out, cutover_store *s,
			      const cutover_record *task)
{
	return op_task_create(out, &s->h, task);
}

int cutover_store_get(cutover_record **out, cutover_store *s, cutover_kind kind,
		      const char *id)
{
	return op_get(out, &s->h, kind, id);
}

int cutover_store_list(cutover_record_list **out, cutover_store *s, cutover_kind kind)
{
	return op_list(out, &s->h, kind);
}

int cutover_store_claim(cutover_record **out, cutover_store *s, const char *id,
			const char *swarm, int64_t ttl_s)
{
	return op_claim(out, &s->h, id, swarm, ttl_s);
}

int cutover_store_release(cutover_record **out, cutover_store *s, const char *id,
			  const char *swarm, cutover_status to)
{
	return op_release(out, &s->h, id, swarm, to);
}

int cutover_store_renew(cutover_record **out, cutover_store *s, const char *id,
			const char *swarm, int64_t ttl_s)
{
	return op_renew(out, &s->h, id, swarm, ttl_s);
}

int cutover_router_task_create(cutover_record **out, cutover_router *r,
			       const cutover_record *task)
{
	return op_task_create(out, &r->h, task);
}

int cutover_router_get(cutover_record **out, cutover_router *r, cutover_kind kind,
		       const char *id)
{
	return op_get(out, &r->h, kind, id);
}

int cutover_router_list(cutover_record_list **out, cutover_router *r, cutover_kind kind)
{
	return op_list(out, &r->h, kind);
}

int cutover_router_claim(cutover_record **out, cutover_router *r, const char *id,
			 const char *swarm, int64_t ttl_s)
{
	return op_claim(out, &r->h, id, swarm, ttl_s);
}

int cutover_router_release(cutover_record **out, cutover_router *r, const char *id,
			   const char *swarm, cutover_status to)
{
	return op_release(out, &r->h, id, swarm, to);
}

int cutover_router_renew(cutover_record **out, cutover_router *r, const char *id,
			 const char *swarm, int64_t ttl_s)
{
	return op_renew(out, &r->h, id, swarm, ttl_s);
}
