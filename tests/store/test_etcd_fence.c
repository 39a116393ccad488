/*
 * test_etcd_fence.c - the fence of an etcd store's decisions (store.h,
 * co_store_fence; issue 18, point 3) against a real etcd.
 *
 * A fenced write carries, in its own txn, a compare that the fence key
 * (the fleet's flags document) still has the epoch the write was routed
 * under.  What must hold:
 *  - while the key stays at the epoch, fenced writes land as unfenced ones
 *    do, in one txn (the cached path included);
 *  - once the key moved on, every fenced decision fails with CO_EFENCED,
 *    writes nothing (the record and its claims key are as before), and
 *    co_store_fenced_at() names the key's new mod_revision (0: deleted);
 *  - a lost race on the record itself is still an ordinary lost race
 *    (decided again), not a fence;
 *  - under many threads writing while the key moves, no write fenced on
 *    the old epoch commits at a revision after the move: the guarantee.
 *  - copies (put_if_newer) are not fenced.
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
#include "core/record.h"
#include "harness/harness.h"
#include "store/etcd_store.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FENCE "/fence-test/flags"

static int clear_fence(void **state)
{
	(void)state;
	co_store_fence(NULL, 0); /* a failed test leaves none behind */
	return 0;
}

static co_store *open_store(const char *prefix)
{
	const char *eps[] = {co_test_group_etcd.endpoint};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;

	o.endpoints = eps;
	o.n_endpoints = 1;
	o.prefix = prefix;
	o.request_timeout_ms = 5000;
	if (co_etcd_store_open(&s, &o) != 0)
		fail_msg("open: %s", co_error_last());
	co_etcd_store_cache_start(s);
	return s;
}

/* etcdctl put/del of the fence key; the revision it made. */
static int64_t fence_set(const char *verb)
{
	char *out = NULL, *err = NULL;
	cJSON *j;
	int64_t rev;

	if (co_test_sh(&out, &err,
		       "ETCDCTL_API=3 etcdctl --endpoints=%s -w json %s %s %s",
		       co_test_group_etcd.endpoint, verb, FENCE,
		       strcmp(verb, "put") == 0 ? "'kill_switch: true'" : "") != 0)
		fail_msg("etcdctl %s: %s", verb, err ? err : "");
	if ((j = cJSON_Parse(out)) == NULL)
		fail_msg("etcdctl output: %s", out);
	rev = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(j, "header"), "revision"));
	cJSON_Delete(j);
	free(out);
	free(err);
	return rev;
}

static void create(co_store *s, const char *id)
{
	co_record *t = NULL, *out = NULL;

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
	t->type = strdup("build");
	if (co_store_task_create(&out, s, t) != 0)
		fail_msg("create %s: %s", id, co_error_last());
	co_record_free(t);
	co_record_free(out);
	out = NULL;
}

/* The record's JSON and version as etcd holds them, for "unchanged". */
static char *snapshot(co_store *s, const char *id)
{
	char ver[CO_VERSION_MAX], *json, *both;
	co_record *r = NULL;

	if (co_store_get_versioned(&r, ver, s, CO_KIND_TASK, id) != 0)
		fail_msg("get %s: %s", id, co_error_last());
	json = co_record_to_json(r, 0);
	assert_non_null(json);
	assert_int_not_equal(asprintf(&both, "%s@%s", json, ver), -1);
	free(json);
	co_record_free(r);
	return both;
}

static void fenced_writes_land_while_the_epoch_holds_and_none_after(void **state)
{
	co_store *s = open_store("/fence-a/");
	co_record *out = NULL;
	char *before, *after;
	int64_t epoch, moved;

	(void)state;
	epoch = fence_set("put");
	create(s, "F1");
	create(s, "F2");

	co_store_fence(FENCE, epoch);
	/* the key at the epoch: decisions land (claim, renew, release) */
	assert_int_equal(co_store_claim(&out, s, "F1", "alice", 60), 0);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_store_renew(&out, s, "F1", "alice", 120), 0);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_store_claim(&out, s, "F2", "alice", 60), 0);
	co_record_free(out);
	out = NULL;

	moved = fence_set("put"); /* the fleet moved on (a rollback, say) */
	before = snapshot(s, "F1");
	assert_int_equal(co_store_release(&out, s, "F1", "alice", CO_STATUS_COMPLETE),
			 CO_EFENCED);
	assert_null(out);
	assert_int_equal(co_store_fenced_at(), moved);
	assert_non_null(strstr(co_error_last(), "fenced"));
	assert_int_equal(co_store_release(&out, s, "F2", "alice", CO_STATUS_FAILED),
			 CO_EFENCED);
	co_record_free(out);
	out = NULL;
	{
		co_record *t = NULL;

		assert_int_equal(co_record_new(&t, CO_KIND_TASK, "F3"), 0);
		t->type = strdup("build");
		assert_int_equal(co_store_task_create(&out, s, t), CO_EFENCED);
		co_record_free(t);
	}
	assert_int_equal(co_store_get(&out, s, CO_KIND_TASK, "F3"), CO_ENOTFOUND);
	after = snapshot(s, "F1");
	assert_string_equal(after, before); /* nothing written */
	free(after);
	free(before);

	/* under the new epoch they land again */
	co_store_fence(FENCE, moved);
	assert_int_equal(co_store_release(&out, s, "F1", "alice", CO_STATUS_COMPLETE), 0);
	co_record_free(out);
	out = NULL;

	/* the key deleted: fenced_at 0, still refused */
	fence_set("del");
	assert_int_equal(co_store_claim(&out, s, "F2", "alice", 60), CO_EFENCED);
	assert_int_equal(co_store_fenced_at(), 0);

	/* unfenced, as before */
	co_store_fence(NULL, 0);
	assert_int_equal(co_store_release(&out, s, "F2", "alice", CO_STATUS_COMPLETE), 0);
	co_record_free(out);
	out = NULL;
	co_store_free(s);
}

/* A record another store changed, with the fence holding: an ordinary
 * lost race, decided again from what the failed txn read back. */
static void a_lost_race_on_the_record_is_not_a_fence(void **state)
{
	co_store *a = open_store("/fence-b/"), *b = open_store("/fence-b/");
	co_record *out = NULL;
	int64_t epoch;

	(void)state;
	epoch = fence_set("put");
	create(a, "R1");
	/* a's cache learns R1 as pending; b claims it behind a's back */
	assert_int_equal(co_store_get(&out, a, CO_KIND_TASK, "R1"), 0);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_store_claim(&out, b, "R1", "bob", 60), 0);
	co_record_free(out);
	out = NULL;
	co_store_fence(FENCE, epoch);
	/* a decides from the record b left: bob holds it */
	assert_int_equal(co_store_claim(&out, a, "R1", "alice", 60), CO_ECONFLICT);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_store_release(&out, a, "R1", "bob", CO_STATUS_COMPLETE), 0);
	co_record_free(out);
	out = NULL;
	co_store_fence(NULL, 0);
	co_store_free(a);
	co_store_free(b);
}

/* Copies of decided records are not fenced. */
static void copies_are_not_fenced(void **state)
{
	co_store *s = open_store("/fence-c/");
	co_record *t = NULL;
	int applied = 0;

	(void)state;
	fence_set("put");
	assert_int_equal(co_record_new(&t, CO_KIND_TASK, "C1"), 0);
	t->type = strdup("build");
	t->rev = 3;
	co_store_fence(FENCE, 1); /* long gone */
	assert_int_equal(co_store_put_if_newer(s, t, &applied), 0);
	assert_int_equal(applied, 1);
	co_store_fence(NULL, 0);
	co_record_free(t);
	co_store_free(s);
}

/* ---- the guarantee, under racing writers ---- */

#define WRITERS 8
#define IDS_PER 4

typedef struct race {
	co_store *s;
	int64_t epoch;
	atomic_long landed, fenced, after;
	atomic_int moved;
} race;

typedef struct writer {
	race *r;
	int n;
} writer;

static void *write_loop(void *arg)
{
	writer *w = arg;
	race *r = w->r;
	char id[32];
	int i = 0, mine = 0;

	/* until the move has fenced this writer three times, or (were the
	 * fence not kept) 200 writes after the move */
	co_store_fence(FENCE, r->epoch);
	while (mine < 3 && atomic_load(&r->after) < 200) {
		co_record *out = NULL;
		int rc;

		snprintf(id, sizeof(id), "W%d-%d", w->n, i % IDS_PER);
		rc = (i / IDS_PER) % 2 == 0
			 ? co_store_claim(&out, r->s, id, "alice", 60)
			 : co_store_release(&out, r->s, id, "alice", CO_STATUS_AVAILABLE);
		co_record_free(out);
		out = NULL;
		if (rc == 0)
			atomic_fetch_add(&r->landed, 1);
		else if (rc == CO_EFENCED && ++mine)
			atomic_fetch_add(&r->fenced, 1);
		else if (rc != CO_ECONFLICT)
			fail_msg("%s: %s", id, co_error_last());
		if (atomic_load(&r->moved))
			atomic_fetch_add(&r->after, 1);
		i++;
	}
	co_store_fence(NULL, 0);
	return NULL;
}

/* The mod_revision etcd holds for task id. */
static int64_t mod_of(co_store *s, const char *id)
{
	char ver[CO_VERSION_MAX];
	co_record *r = NULL;

	if (co_store_get_versioned(&r, ver, s, CO_KIND_TASK, id) != 0)
		fail_msg("get %s: %s", id, co_error_last());
	co_record_free(r);
	return strtoll(ver, NULL, 10);
}

static void no_write_fenced_on_the_old_epoch_commits_after_the_move(void **state)
{
	pthread_t t[WRITERS];
	writer w[WRITERS];
	struct timespec nap = {0, 5 * 1000000L};
	race r = {0};
	int64_t moved;
	char id[32];
	int i, j;

	(void)state;
	r.s = open_store("/fence-d/");
	r.epoch = fence_set("put");
	for (i = 0; i < WRITERS; i++)
		for (j = 0; j < IDS_PER; j++) {
			snprintf(id, sizeof(id), "W%d-%d", i, j);
			create(r.s, id);
		}
	for (i = 0; i < WRITERS; i++) {
		w[i].r = &r;
		w[i].n = i;
		assert_int_equal(pthread_create(&t[i], NULL, write_loop, &w[i]), 0);
	}
	while (atomic_load(&r.landed) < 200)
		nanosleep(&nap, NULL); /* a count of landed writes, awaited */
	moved = fence_set("put");      /* mid-stream */
	atomic_store(&r.moved, 1);
	for (i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	print_message("fence race: %ld writes landed, %ld fenced, the key moved at "
		      "revision %lld\n",
		      atomic_load(&r.landed), atomic_load(&r.fenced), (long long)moved);
	assert_true(atomic_load(&r.fenced) > 0);
	for (i = 0; i < WRITERS; i++)
		for (j = 0; j < IDS_PER; j++) {
			snprintf(id, sizeof(id), "W%d-%d", i, j);
			if (mod_of(r.s, id) > moved)
				fail_msg("%s written at revision %lld, after the fence "
					 "moved at %lld",
					 id, (long long)mod_of(r.s, id),
					 (long long)moved);
		}
	co_store_free(r.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(
		fenced_writes_land_while_the_epoch_holds_and_none_after, clear_fence),
	    cmocka_unit_test_teardown(a_lost_race_on_the_record_is_not_a_fence,
				      clear_fence),
	    cmocka_unit_test_teardown(copies_are_not_fenced, clear_fence),
	    cmocka_unit_test_teardown(
		no_write_fenced_on_the_old_epoch_commits_after_the_move, clear_fence),
	};
	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
