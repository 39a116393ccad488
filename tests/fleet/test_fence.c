/*
 * test_fence.c - fencing in a router fleet (issue 18, point 3), through a
 * real router over a real etcd and a real bare git repo.
 *
 * A fleet router routes by its mirrored flags file, whose fleet_epoch is
 * the etcd revision of the fleet's document it last applied.  Here the
 * test is that router's mirror: it applies documents by hand, so a router
 * "that has not yet seen" a change is one the test has not told.  What
 * must hold:
 *  - a router that has not seen the fleet's rollback cannot decide in
 *    etcd: its write is refused (503 material, CO_EUNAVAIL, naming the
 *    moved epoch), nothing is written in either store, nothing is owed;
 *  - once the rollback reaches it, the same write is decided by git;
 *  - a write fenced because the document moved on while it was routed
 *    (an unrelated flag) is routed again by the new flags and lands once;
 *  - a router in file mode (no fence key) is not fenced at all.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/watcher.h"
#include "harness/harness.h"
#include "router/fleet.h"
#include "router/router.h"
#include "store/etcd_store.h"
#include "store/git_store.h"
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int seq;

typedef struct fx {
	char repo[256], dir[256], flags_path[512], prefix[64];
	co_fleet *fleet;
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_fleet_mirror *mirror;
	co_router *r;
} fx;

static int to_etcd(void *ctx, co_flags *f)
{
	(void)ctx;
	f->def.mode = CO_MODE_ETCD;
	f->def.etcd_percent = 100;
	return 0;
}

static int trip(void *ctx, co_flags *f)
{
	co_flags_set_kill(f, 1, ctx);
	return 0;
}

/* An unrelated change: task_list's own setting. */
static int touch_list(void *ctx, co_flags *f)
{
	(void)ctx;
	f->has_op[CO_OP_TASK_LIST] = 1;
	f->ops[CO_OP_TASK_LIST].mode = CO_MODE_ETCD;
	f->ops[CO_OP_TASK_LIST].etcd_percent =
	    f->ops[CO_OP_TASK_LIST].etcd_percent ? 0 : 100;
	return 0;
}

/* Change the fleet's document; returns it with its epoch. */
static co_flags fleet_change(fx *f, co_fleet_edit_fn edit, void *ctx)
{
	co_flags doc;
	int64_t epoch;

	if (co_fleet_flags_update(&doc, &epoch, f->fleet, edit, ctx) != 0)
		fail_msg("fleet update: %s", co_error_last());
	assert_int_equal(doc.fleet_epoch, epoch);
	return doc;
}

/* This router's mirror applies the document (as its watch would). */
static void router_sees(fx *f, const co_flags *doc)
{
	co_fleet_mirror_apply(f->mirror, doc, doc->fleet_epoch);
	assert_int_equal(co_fleet_mirror_epoch(f->mirror), doc->fleet_epoch);
}

static void fx_open(fx *f, int fenced)
{
	const char *eps[1] = {co_test_group_etcd.endpoint};
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_fleet_opts fo = {0};
	char fleet_prefix[64];
	co_flags doc;

	memset(f, 0, sizeof(*f));
	assert_int_equal(co_test_git_repo_new(f->repo, sizeof(f->repo)), 0);
	assert_int_equal(co_test_tmpdir(f->dir, sizeof(f->dir)), 0);
	snprintf(f->flags_path, sizeof(f->flags_path), "%s/flags.yaml", f->dir);
	snprintf(f->prefix, sizeof(f->prefix), "/fence%d/", ++seq);
	snprintf(fleet_prefix, sizeof(fleet_prefix), "/fence-fleet%d/", seq);
	fo.endpoints = eps;
	fo.n_endpoints = 1;
	fo.prefix = fleet_prefix;
	assert_int_equal(co_fleet_open(&f->fleet, &fo), 0);
	go.repo = f->repo;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = f->prefix;
	eo.request_timeout_ms = 5000;
	assert_int_equal(co_git_store_open(&f->git, &go), 0);
	assert_int_equal(co_etcd_store_open(&f->etcd, &eo), 0);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	assert_int_equal(co_flags_watcher_open(&f->fw, f->flags_path), 0);
	assert_int_equal(co_fleet_mirror_new(&f->mirror, f->flags_path, f->fw), 0);
	/* the fleet goes to etcd mode and this router has seen it */
	doc = fleet_change(f, to_etcd, NULL);
	router_sees(f, &doc);
	ro.git = f->git;
	ro.etcd = f->etcd;
	ro.state = f->st;
	ro.flags = f->fw;
	ro.fence_key = fenced ? co_fleet_flags_key(f->fleet) : NULL;
	assert_int_equal(co_router_open(&f->r, &ro), 0);
}

static void fx_close(fx *f)
{
	co_router_close(f->r);
	co_fleet_mirror_free(f->mirror);
	co_flags_watcher_close(f->fw);
	co_state_close(f->st);
	co_store_free(f->etcd);
	co_store_free(f->git);
	co_fleet_close(f->fleet);
	co_test_rmrf(f->dir);
	co_test_rmrf(f->repo);
}

static void create(fx *f, const char *id)
{
	co_record *t = NULL, *out = NULL;

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
	t->type = strdup("build");
	if (co_router_task_create(&out, f->r, t) != 0)
		fail_msg("create %s: %s", id, co_error_last());
	co_record_free(t);
	co_record_free(out);
}

/* A store's copy of task id as JSON ("" when absent). */
static char *json_in(co_store *s, const char *id)
{
	co_record *r = NULL;
	char *j;

	if (co_store_get(&r, s, CO_KIND_TASK, id) == CO_ENOTFOUND)
		return strdup("");
	assert_non_null(r);
	j = co_record_to_json(r, 0);
	co_record_free(r);
	return j;
}

static void a_router_behind_a_rollback_cannot_decide_in_etcd(void **state)
{
	co_record *out = NULL;
	char *etcd_before, *git_before, *now;
	int64_t depth = -1;
	co_flags doc;
	fx f;

	(void)state;
	fx_open(&f, 1);
	create(&f, "T1");
	assert_int_equal(co_router_claim(&out, f.r, "T1", "alice", 60), 0);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_router_drain(f.r, NULL, 5000, NULL), 0); /* git has it too */
	etcd_before = json_in(f.etcd, "T1");
	git_before = json_in(f.git, "T1");

	/* the fleet rolls back; this router has not heard */
	doc = fleet_change(&f, trip, "fleet rollback");
	assert_int_equal(co_router_release(&out, f.r, "T1", "alice", CO_STATUS_COMPLETE),
			 CO_EUNAVAIL);
	assert_null(out);
	print_message("refused: %s\n", co_error_last());
	assert_non_null(strstr(co_error_last(), "moved on"));
	now = json_in(f.etcd, "T1");
	assert_string_equal(now, etcd_before); /* etcd decided nothing */
	free(now);
	now = json_in(f.git, "T1");
	assert_string_equal(now, git_before);
	free(now);
	assert_int_equal(co_outbox_depth(&depth, f.st, NULL), 0);
	assert_int_equal(depth, 0); /* nothing owed to anyone */

	/* the rollback reaches it: git decides the same release */
	router_sees(&f, &doc);
	assert_int_equal(co_router_release(&out, f.r, "T1", "alice", CO_STATUS_COMPLETE),
			 0);
	assert_int_equal(out->status, CO_STATUS_COMPLETE);
	co_record_free(out);
	out = NULL;
	now = json_in(f.git, "T1");
	assert_non_null(strstr(now, "\"complete\""));
	free(now);
	free(etcd_before);
	free(git_before);
	fx_close(&f);
}

typedef struct racer {
	fx *f;
	int rc;
	int64_t fenced_at;
	char err[512];
} racer;

static void *claim_t2(void *arg)
{
	racer *x = arg;
	co_record *out = NULL;

	x->rc = co_router_claim(&out, x->f->r, "T2", "bob", 60);
	x->fenced_at = co_store_fenced_at(); /* this thread's */
	snprintf(x->err, sizeof(x->err), "%s", co_error_last());
	co_record_free(out);
	return NULL;
}

static void a_write_fenced_by_an_unrelated_change_is_routed_again(void **state)
{
	struct timespec nap = {0, 1000000L};
	racer x = {0};
	pthread_t t;
	uint64_t calls;
	co_record *r = NULL;
	co_flags doc;
	fx f;

	(void)state;
	fx_open(&f, 1);
	create(&f, "T2");
	/* the document moves on (task_list only) before the claim is routed */
	doc = fleet_change(&f, touch_list, NULL);
	calls = co_store_calls(f.etcd);
	x.f = &f;
	assert_int_equal(pthread_create(&t, NULL, claim_t2, &x), 0);
	/* once the claim has gone to etcd under the old epoch, the router
	 * hears of the change */
	while (co_store_calls(f.etcd) == calls)
		nanosleep(&nap, NULL);
	router_sees(&f, &doc);
	pthread_join(t, NULL);
	if (x.rc != 0)
		fail_msg("claim: %s", x.err);
	assert_int_equal(x.fenced_at, doc.fleet_epoch); /* it was fenced once */
	assert_int_equal(co_store_get(&r, f.etcd, CO_KIND_TASK, "T2"), 0);
	assert_string_equal(r->owner, "bob");
	assert_int_equal(r->rev, 2); /* created, claimed: once */
	co_record_free(r);
	fx_close(&f);
}

static void a_router_in_file_mode_is_not_fenced(void **state)
{
	co_record *out = NULL;
	fx f;

	(void)state;
	fx_open(&f, 0);
	create(&f, "T3");
	fleet_change(&f, touch_list, NULL); /* etcd's document moves on */
	assert_int_equal(co_router_claim(&out, f.r, "T3", "carol", 60), 0);
	assert_string_equal(out->owner, "carol");
	co_record_free(out);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_router_behind_a_rollback_cannot_decide_in_etcd),
	    cmocka_unit_test(a_write_fenced_by_an_unrelated_change_is_routed_again),
	    cmocka_unit_test(a_router_in_file_mode_is_not_fenced),
	};
	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
