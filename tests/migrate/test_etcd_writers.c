/*
 * test_etcd_writers.c - the backfill's etcd batches on several connections
 * (migrate/etcd_writers.c) against a real etcd.
 *
 * What the checkpoint rests on: batches are retired in the order they were
 * handed in, whichever writer finishes first, and only once written; a
 * batch whose compare fails is redone record by record on its writer's
 * thread; after a failed batch nothing later is retired.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "migrate/migrate_internal.h"
#include "store/etcd_store.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCHES 60
#define PER 17 /* not a divisor of anything: batches of odd sizes */

typedef struct fx {
	co_test_etcd etcd;
	const char *ep[1];
	co_etcd_opts eo;
	co_record *recs[BATCHES * PER];
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	size_t i;

	assert_non_null(f);
	assert_int_equal(co_test_etcd_start(&f->etcd), 0);
	f->ep[0] = f->etcd.endpoint;
	f->eo = (co_etcd_opts)CO_ETCD_OPTS_INIT;
	f->eo.endpoints = f->ep;
	f->eo.n_endpoints = 1;
	for (i = 0; i < BATCHES * PER; i++) {
		char id[32];

		snprintf(id, sizeof(id), "W%05zu", i);
		assert_int_equal(co_record_new(&f->recs[i], CO_KIND_TASK, id), 0);
		f->recs[i]->rev = 3;
		f->recs[i]->created_at = f->recs[i]->updated_at = 1790000000;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	size_t i;

	co_test_etcd_stop(&f->etcd);
	for (i = 0; i < BATCHES * PER; i++)
		co_record_free(f->recs[i]);
	free(f);
	return 0;
}

/* What the callback saw, in the order it saw it. */
typedef struct seen {
	const co_record *last[BATCHES];
	size_t n[BATCHES], written[BATCHES];
	size_t count;
	size_t fail_at; /* the callback fails on this batch (BATCHES: never) */
} seen;

static int on_retired(void *ud, const co_record *last, size_t n, size_t written)
{
	seen *s = ud;

	if (s->count == s->fail_at)
		return co_error_set(CO_EIO, "checkpoint store is full");
	s->last[s->count] = last;
	s->n[s->count] = n;
	s->written[s->count] = written;
	s->count++;
	return 0;
}

static void job_of(co_mig_job *j, fx *f, size_t b, const char *ver)
{
	size_t k;

	memset(j, 0, sizeof(*j));
	for (k = 0; k < PER; k++) {
		j->recs[k] = f->recs[b * PER + k];
		j->vers[k] = ver;
	}
	j->n = PER;
}

static void assert_in_etcd(fx *f, size_t from, size_t to)
{
	co_store *s = NULL;
	size_t i;

	assert_int_equal(co_etcd_store_open(&s, &f->eo), 0);
	for (i = from; i < to; i++) {
		co_record *r = NULL;

		assert_int_equal(co_store_get(&r, s, CO_KIND_TASK, f->recs[i]->id), 0);
		assert_int_equal(r->rev, 3);
		co_record_free(r);
	}
	co_store_free(s);
}

static void batches_retire_in_order_and_a_lost_compare_is_redone(void **state)
{
	fx *f = *state;
	co_mig_writers *w = NULL;
	seen s;
	co_mig_job j;
	size_t b;

	memset(&s, 0, sizeof(s));
	s.fail_at = BATCHES;
	assert_int_equal(co_mig__writers_open(&w, &f->eo, CO_MIG_WRITERS_MAX, on_retired, &s),
			 0);
	for (b = 0; b < BATCHES; b++) {
		/* Every fifth batch believes its keys exist at mod_revision 1:
		 * its compare fails, and its writer redoes it one record at a
		 * time (they are newer than nothing, so all are written). */
		job_of(&j, f, b, b % 5 == 4 ? "1" : "");
		assert_int_equal(co_mig__writers_submit(w, &j), 0);
	}
	assert_int_equal(co_mig__writers_drain(w), 0);
	co_mig__writers_free(w);

	assert_int_equal(s.count, BATCHES);
	for (b = 0; b < BATCHES; b++) {
		assert_ptr_equal(s.last[b], f->recs[b * PER + PER - 1]);
		assert_int_equal(s.n[b], PER);
		assert_int_equal(s.written[b], PER);
	}
	assert_in_etcd(f, 0, BATCHES * PER);
}

static void a_failed_batch_stops_retirement_and_is_reported(void **state)
{
	fx *f = *state;
	co_mig_writers *w = NULL;
	seen s;
	co_mig_job j;
	size_t b;
	int error = 0;

	memset(&s, 0, sizeof(s));
	s.fail_at = 7; /* the checkpoint of the eighth batch fails */
	assert_int_equal(co_mig__writers_open(&w, &f->eo, 3, on_retired, &s), 0);
	for (b = 0; b < BATCHES && error == 0; b++) {
		job_of(&j, f, b, "");
		error = co_mig__writers_submit(w, &j);
	}
	if (error == 0)
		error = co_mig__writers_drain(w);
	assert_int_equal(error, CO_EIO);
	assert_non_null(strstr(co_error_last(), "checkpoint store is full"));
	/* Asked again, the pool still says why, and takes nothing more. */
	job_of(&j, f, 0, "");
	assert_int_equal(co_mig__writers_submit(w, &j), CO_EIO);
	assert_int_equal(co_mig__writers_drain(w), CO_EIO);
	co_mig__writers_free(w);

	/* Retired: exactly the first seven, in order. */
	assert_int_equal(s.count, 7);
	for (b = 0; b < 7; b++)
		assert_ptr_equal(s.last[b], f->recs[b * PER + PER - 1]);
	assert_in_etcd(f, 0, 7 * PER);
}

static void an_unreachable_etcd_fails_the_batch_with_its_reason(void **state)
{
	fx *f = *state;
	const char *dead[1] = {"http://127.0.0.1:1"};
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_mig_writers *w = NULL;
	seen s;
	co_mig_job j;
	int error;

	memset(&s, 0, sizeof(s));
	s.fail_at = BATCHES;
	eo.endpoints = dead;
	eo.n_endpoints = 1;
	eo.connect_timeout_ms = 200;
	assert_int_equal(co_mig__writers_open(&w, &eo, 2, on_retired, &s), 0);
	job_of(&j, f, 0, "");
	error = co_mig__writers_submit(w, &j);
	if (error == 0)
		error = co_mig__writers_drain(w);
	assert_int_equal(error, CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), "127.0.0.1:1"));
	assert_int_equal(s.count, 0);
	co_mig__writers_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    batches_retire_in_order_and_a_lost_compare_is_redone, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    a_failed_batch_stops_retirement_and_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    an_unreachable_etcd_fails_the_batch_with_its_reason, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
