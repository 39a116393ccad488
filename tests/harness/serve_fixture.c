/*
 * serve_fixture.c - the in-process serve of serve_fixture.h.
 */
#include "harness/serve_fixture.h"
#include "harness/harness.h"

#include "core/error.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "router/router.h"
#include "server/server.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <stdio.h>
#include <string.h>

static int save_stage(const char *path, const char *stage)
{
	co_flags f;
	co_stage s;

	co_flags_init(&f);
	if (co_stage_parse(&s, stage) < 0 || co_stage_apply(&f, s) < 0)
		return -1;
	return co_flags_save(&f, path) < 0 ? -1 : 0;
}

int co_test_serve_stage(co_test_serve *f, const char *stage)
{
	if (save_stage(f->flags_path, stage) < 0 || co_flags_watcher_reload(f->fw) < 0)
		return -1;
	return 0;
}

int co_test_serve_open(co_test_serve *f, const co_test_serve_opts *o)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_server_opts so = CO_SERVER_OPTS_INIT;
	const char *eps[1] = {o->endpoint};

	memset(f, 0, sizeof(*f));
	if (co_test_git_repo_new(f->repo, sizeof(f->repo)) < 0 ||
	    co_test_tmpdir(f->dir, sizeof(f->dir)) < 0) {
		fprintf(stderr, "serve fixture: no temp repo or dir\n");
		goto fail;
	}
	snprintf(f->flags_path, sizeof(f->flags_path), "%s/flags.yaml", f->dir);
	go.repo = f->repo;
	if (o->git_poll_ms > 0)
		go.poll_interval_ms = o->git_poll_ms;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = o->prefix;
	if (o->etcd_timeout_ms > 0)
		eo.request_timeout_ms = o->etcd_timeout_ms;
	if (co_git_store_open(&f->git, &go) < 0 || co_etcd_store_open(&f->etcd, &eo) < 0 ||
	    (o->etcd_breaker && co_store_breaker_configure(f->etcd, o->etcd_breaker) < 0) ||
	    co_state_open(&f->st, f->dir) < 0 ||
	    save_stage(f->flags_path, o->stage ? o->stage : "git") < 0 ||
	    co_flags_watcher_open(&f->fw, f->flags_path) < 0)
		goto fail_msg;
	ro.git = f->git;
	ro.etcd = f->etcd;
	ro.state = f->st;
	ro.flags = f->fw;
	ro.background_drain = 1;
	ro.triggers = o->triggers;
	ro.shadow = o->shadow;
	if (co_router_open(&f->r, &ro) < 0)
		goto fail_msg;
	so.listen = "127.0.0.1:0";
	so.router = f->r;
	so.state = f->st;
	so.flags = f->fw;
	so.flags_path = f->flags_path;
	so.git = f->git;
	so.etcd = f->etcd;
	so.admin_token = o->token;
	so.probe_interval_ms = o->probe_interval_ms;
	so.probe_timeout_ms = o->probe_timeout_ms;
	so.swarm_auth = o->swarm_auth;
	so.log = o->log;
	so.log_ctx = o->log_ctx;
	so.request_timeout_ms = o->request_timeout_ms;
	so.max_connections = o->max_connections;
	so.max_connections_per_ip = o->max_connections_per_ip;
	so.max_inflight = o->max_inflight;
	so.queue_deadline_ms = o->queue_deadline_ms;
	so.tls_cert_file = o->tls_cert_file;
	so.tls_key_file = o->tls_key_file;
	if (co_server_start(&f->srv, &so) < 0)
		goto fail_msg;
	f->port = co_server_port(f->srv);
	snprintf(f->base, sizeof(f->base), "%s://127.0.0.1:%d",
		 o->tls_cert_file ? "https" : "http", f->port);
	return 0;
fail_msg:
	fprintf(stderr, "serve fixture: %s\n", co_error_last());
fail:
	co_test_serve_close(f);
	return -1;
}

void co_test_serve_close(co_test_serve *f)
{
	co_server_stop(f->srv);
	if (f->r)
		co_router_drain(f->r, NULL, 2000, NULL);
	co_router_close(f->r);
	co_flags_watcher_close(f->fw);
	co_state_close(f->st);
	co_store_free(f->git);
	co_store_free(f->etcd);
	if (f->repo[0])
		co_test_rmrf(f->repo);
	if (f->dir[0])
		co_test_rmrf(f->dir);
	memset(f, 0, sizeof(*f));
}
