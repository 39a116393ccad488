/*
 * test_etcd_batch.c - many records per round trip in the etcd store: the
 * batched reads and writes an outbox drain uses (co_store_put_batch_if_newer),
 * against a real etcd (harness), with etcdctl as the witness.
 *
 * What is shown: a batch is read in one txn of ranges and written in txns
 * of up to 64 records (two store calls per 64, counted); a record is never
 * moved backwards; a claimed task's claims key is written under a lease of
 * its own, and a later unclaimed record removes it; racing batches keep the
 * highest rev of every ID.
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

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	return s;
}

/* A task at `rev`; claimed by `owner` for ten minutes when owner is set. */
static co_record *task_at_rev(const char *id, int64_t rev, const char *type,
			      const char *owner)
{
	co_record *r = NULL;

	assert_int_equal(co_record_new(&r, CO_KIND_TASK, id), 0);
	r->type = strdup(type);
	r->rev = rev;
	r->created_at = 1700000000LL;
	r->updated_at = 1700000000LL + rev;
	if (owner) {
		r->status = CO_STATUS_CLAIMED;
		r->owner = strdup(owner);
		r->claim_expires_at = co_time_now() + 600;
	}
	return r;
}

/* How many keys etcd holds under `prefix`, and (leased) how many of them
 * carry a lease, as etcdctl sees them. */
static int etcdctl_count(const char *prefix, int *leased)
{
	char *out = NULL, *p;
	int n = 0;

	if (co_test_sh(&out, NULL,
		       "ETCDCTL_API=3 etcdctl --endpoints=%s get --prefix '%s' -w json",
		       co_test_group_etcd.endpoint, prefix) != 0)
		fail_msg("etcdctl get --prefix %s failed", prefix);
	for (p = out; (p = strstr(p, "\"key\":")) != NULL; p++)
		n++;
	if (leased) {
		*leased = 0;
		for (p = out; (p = strstr(p, "\"lease\":")) != NULL; p++)
			*leased += strncmp(p, "\"lease\":0", 9) != 0;
	}
	free(out);
	return n;
}

static void batch_goes_in_two_calls_per_64_records_and_never_backwards(void **state)
{
	co_store *s = open_store("/t-batch/");
	const co_record *recs[150];
	co_record *own[150], *got = NULL;
	int applied[150], i, leased = 0;
	uint64_t calls;

	(void)state;
	for (i = 0; i < 150; i++) {
		char id[16];

		snprintf(id, sizeof(id), "B%03d", i);
		recs[i] = own[i] =
		    task_at_rev(id, 5, "first", i % 3 == 0 ? "alice" : NULL);
	}
	calls = co_store_calls(s);
	assert_int_equal(co_store_put_batch_if_newer(s, recs, 150, applied), 0);
	/* 64 + 64 + 22: a read txn and a write txn each */
	assert_int_equal(co_store_calls(s) - calls, 6);
	for (i = 0; i < 150; i++) {
		assert_int_equal(applied[i], 1);
		co_record_free(own[i]);
	}
	assert_int_equal(etcdctl_count("/t-batch/tasks/", NULL), 150);
	assert_int_equal(etcdctl_count("/t-batch/claims/", &leased), 50);
	assert_int_equal(leased, 50);

	/* newer (B000 released), older, equal and new records together */
	recs[0] = own[0] = task_at_rev("B000", 6, "newer", NULL);
	recs[1] = own[1] = task_at_rev("B001", 4, "older", NULL);
	recs[2] = own[2] = task_at_rev("B002", 5, "same-rev", NULL);
	recs[3] = own[3] = task_at_rev("N000", 1, "new", "bob");
	assert_int_equal(co_store_put_batch_if_newer(s, recs, 4, applied), 0);
	assert_int_equal(applied[0], 1);
	assert_int_equal(applied[1], 0);
	assert_int_equal(applied[2], 0);
	assert_int_equal(applied[3], 1);
	assert_int_equal(co_store_get(&got, s, CO_KIND_TASK, "B000"), 0);
	assert_string_equal(got->type, "newer");
	assert_int_equal(got->status, CO_STATUS_AVAILABLE);
	co_record_free(got);
	assert_int_equal(co_store_get(&got, s, CO_KIND_TASK, "B001"), 0);
	assert_string_equal(got->type, "first");
	co_record_free(got);
	/* B000's claims key went with its claim; N000's came with bob's */
	assert_int_equal(etcdctl_count("/t-batch/claims/B000", NULL), 0);
	assert_int_equal(etcdctl_count("/t-batch/claims/N000", &leased), 1);
	assert_int_equal(leased, 1);
	/* nothing newer: one read, no write */
	calls = co_store_calls(s);
	assert_int_equal(co_store_put_batch_if_newer(s, recs, 4, applied), 0);
	assert_int_equal(co_store_calls(s) - calls, 1);
	/* an ID twice is bad input and writes nothing */
	recs[1] = recs[0];
	calls = co_store_calls(s);
	assert_int_equal(co_store_put_batch_if_newer(s, recs, 2, NULL), CO_EINVAL);
	assert_int_equal(co_store_calls(s) - calls, 0);
	for (i = 0; i < 4; i++)
		co_record_free(own[i]);
	co_store_free(s);
}

typedef struct batcher {
	co_store *s;
	pthread_barrier_t *go;
	int t, failures;
	char error[256];
} batcher;

/* Thread t writes the same 80 IDs 10 times, at revs round * 4 + t; odd
 * threads as claims. */
static void *batch_thread(void *arg)
{
	batcher *b = arg;
	int round, i;

	pthread_barrier_wait(b->go);
	for (round = 1; round <= 10; round++) {
		const co_record *recs[80];
		co_record *own[80];
		char type[16];

		snprintf(type, sizeof(type), "t%d", b->t);
		for (i = 0; i < 80; i++) {
			char id[16];

			snprintf(id, sizeof(id), "R%02d", i);
			recs[i] = own[i] = task_at_rev(id, round * 4 + b->t, type,
						       b->t % 2 ? "alice" : NULL);
		}
		if (co_store_put_batch_if_newer(b->s, recs, 80, NULL) < 0) {
			b->failures++;
			snprintf(b->error, sizeof(b->error), "%s", co_error_last());
		}
		for (i = 0; i < 80; i++)
			co_record_free(own[i]);
	}
	return NULL;
}

static void racing_batches_keep_the_highest_rev_of_every_id(void **state)
{
	co_store *s = open_store("/t-race/");
	pthread_t th[4];
	batcher b[4];
	pthread_barrier_t go;
	co_record_list l = {0};
	size_t i;
	int t, leased = 0;

	(void)state;
	pthread_barrier_init(&go, NULL, 4);
	for (t = 0; t < 4; t++) {
		b[t] = (batcher){s, &go, t, 0, ""};
		pthread_create(&th[t], NULL, batch_thread, &b[t]);
	}
	for (t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&go);
	for (t = 0; t < 4; t++)
		if (b[t].failures)
			fail_msg("thread %d: %d failed batches: %s", t, b[t].failures,
				 b[t].error);
	assert_int_equal(co_store_list(&l, s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, 80);
	for (i = 0; i < l.n; i++) {
		assert_int_equal(l.items[i]->rev, 43);
		assert_string_equal(l.items[i]->type, "t3");
	}
	co_record_list_clear(&l);
	/* the winner, thread 3, claimed: each ID has its leased claims key */
	assert_int_equal(etcdctl_count("/t-race/claims/", &leased), 80);
	assert_int_equal(leased, 80);
	co_store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(batch_goes_in_two_calls_per_64_records_and_never_backwards),
	    cmocka_unit_test(racing_batches_keep_the_highest_rev_of_every_id),
	};

	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
