/*
 * test_watcher.c - hot reload of the flags file (flags/watcher.c): changes
 * written by rename or in place are picked up without a restart, a bad file
 * keeps the last good flags and reports why, and routing stays consistent
 * while the file is rewritten under 8 reading threads.  Every wait is on the
 * watcher's condition variable with a bound (2 s), never a sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "flags/flags.h"
#include "flags/flags_private.h"
#include "flags/stage.h"
#include "flags/watcher.h"
#include "harness/harness.h"

#define WAIT_MS 2000

typedef struct fixture {
	char dir[256];
	char path[300];
	co_flags_watcher *w;
} fixture;

static int setup_dir(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));

	if (!fx || co_test_tmpdir(fx->dir, sizeof(fx->dir)) < 0) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/flags.yaml", fx->dir);
	*state = fx;
	return 0;
}

static int teardown_dir(void **state)
{
	fixture *fx = *state;

	co_flags_watcher_close(fx->w);
	co_test_rmrf(fx->dir);
	free(fx);
	return 0;
}

/* Replace the file by temp + rename, as an editor or another tool might. */
static void replace_file(const fixture *fx, const char *text)
{
	char tmp[400];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/.flags.yaml.new", fx->dir);
	f = fopen(tmp, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, fx->path), 0);
}

static void staged(co_flags *f, co_stage s)
{
	co_flags_init(f);
	assert_int_equal(co_stage_apply(f, s), 0);
}

static void open_on_missing_file_gives_defaults_then_sees_it_created(void **state)
{
	fixture *fx = *state;
	co_flags f, want;
	uint64_t gen;

	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), 0);
	gen = co_flags_watcher_get(&f, fx->w);
	assert_int_equal(gen, 1);
	co_flags_init(&want);
	assert_true(co_flags_equal(&f, &want));

	staged(&want, CO_STAGE_SHADOW);
	assert_int_equal(co_flags_save(&want, fx->path), 0);
	assert_int_equal(co_flags_watcher_wait(fx->w, gen, WAIT_MS), 0);
	co_flags_watcher_get(&f, fx->w);
	assert_true(co_flags_equal(&f, &want));
}

static void saved_file_is_picked_up_and_generation_grows(void **state)
{
	fixture *fx = *state;
	co_flags f, want;
	co_route r;
	uint64_t gen;

	staged(&want, CO_STAGE_GIT);
	assert_int_equal(co_flags_save(&want, fx->path), 0);
	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), 0);
	gen = co_flags_watcher_generation(fx->w);

	/* The kill switch reaches the running process without a restart. */
	staged(&want, CO_STAGE_ETCD);
	co_flags_set_kill(&want, 1, "run 9 failed");
	assert_int_equal(co_flags_save(&want, fx->path), 0);
	assert_int_equal(co_flags_watcher_wait(fx->w, gen, WAIT_MS), 0);
	assert_true(co_flags_watcher_generation(fx->w) > gen);
	co_flags_watcher_get(&f, fx->w);
	assert_true(co_flags_equal(&f, &want));
	assert_int_equal(co_flags_watcher_route(&r, fx->w, CO_OP_TASK_CLAIM, "P0.1.1"),
			 0);
	assert_true(r.kill_switch);
	assert_int_equal(r.primary, CO_SIDE_GIT);
	assert_int_equal(co_flags_watcher_error(NULL, 0, NULL, fx->w), 0);
}

static void file_rewritten_in_place_is_picked_up(void **state)
{
	fixture *fx = *state;
	co_flags f;
	uint64_t gen;
	FILE *fp;

	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), 0);
	gen = co_flags_watcher_generation(fx->w);
	fp = fopen(fx->path, "w");
	assert_non_null(fp);
	fputs("default: {mode: dual, etcd_percent: 50}\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(co_flags_watcher_wait(fx->w, gen, WAIT_MS), 0);
	co_flags_watcher_get(&f, fx->w);
	assert_int_equal(co_stage_of(&f), CO_STAGE_50);
}

static void bad_file_keeps_last_good_flags_and_reports_the_error(void **state)
{
	fixture *fx = *state;
	co_flags f, good;
	char msg[512], want[400];
	uint64_t gen, errors;

	staged(&good, CO_STAGE_10);
	assert_int_equal(co_flags_save(&good, fx->path), 0);
	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), 0);
	gen = co_flags_watcher_generation(fx->w);
	assert_int_equal(co_flags_watcher_error(msg, sizeof(msg), &errors, fx->w), 0);
	assert_int_equal(errors, 0);

	replace_file(fx, "kill_switch: true\n"
			 "operations:\n"
			 "  task_claim: {mode: dule, etcd_percent: 10}\n");
	assert_int_equal(co_flags_watcher_wait_error(fx->w, errors, WAIT_MS), 0);
	assert_int_equal(co_flags_watcher_error(msg, sizeof(msg), &errors, fx->w),
			 CO_EINVAL);
	assert_int_equal(errors, 1);
	snprintf(want, sizeof(want), "%s:3: unknown mode \"dule\"", fx->path);
	assert_non_null(strstr(msg, want));
	/* Last good flags kept, generation unchanged. */
	assert_int_equal(co_flags_watcher_get(&f, fx->w), gen);
	assert_true(co_flags_equal(&f, &good));

	/* Malformed YAML likewise. */
	replace_file(fx, "default: {mode: git\n");
	assert_int_equal(co_flags_watcher_wait_error(fx->w, errors, WAIT_MS), 0);
	co_flags_watcher_error(msg, sizeof(msg), &errors, fx->w);
	assert_int_equal(errors, 2);
	assert_non_null(strstr(msg, fx->path));
	co_flags_watcher_get(&f, fx->w);
	assert_true(co_flags_equal(&f, &good));

	/* A good file again: taken, and the error is cleared. */
	staged(&good, CO_STAGE_100);
	assert_int_equal(co_flags_save(&good, fx->path), 0);
	assert_int_equal(co_flags_watcher_wait(fx->w, gen, WAIT_MS), 0);
	co_flags_watcher_get(&f, fx->w);
	assert_true(co_flags_equal(&f, &good));
	assert_int_equal(co_flags_watcher_error(msg, sizeof(msg), NULL, fx->w), 0);
	assert_string_equal(msg, "");
}

static void removed_file_keeps_last_good_flags(void **state)
{
	fixture *fx = *state;
	co_flags f, good;
	uint64_t errors;

	staged(&good, CO_STAGE_SHADOW);
	assert_int_equal(co_flags_save(&good, fx->path), 0);
	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), 0);
	co_flags_watcher_error(NULL, 0, &errors, fx->w);
	assert_int_equal(unlink(fx->path), 0);
	assert_int_equal(co_flags_watcher_wait_error(fx->w, errors, WAIT_MS), 0);
	assert_int_equal(co_flags_watcher_error(NULL, 0, NULL, fx->w), CO_ENOTFOUND);
	co_flags_watcher_get(&f, fx->w);
	assert_true(co_flags_equal(&f, &good));
}

static void poll_alone_picks_up_renamed_and_rewritten_files(void **state)
{
	fixture *fx = *state;
	co_flags f, want;
	uint64_t gen;
	FILE *fp;

	assert_int_equal(co_flags__watcher_open_polling(&fx->w, fx->path), 0);
	gen = co_flags_watcher_generation(fx->w);
	staged(&want, CO_STAGE_100);
	assert_int_equal(co_flags_save(&want, fx->path), 0);
	assert_int_equal(co_flags_watcher_wait(fx->w, gen, WAIT_MS), 0);
	co_flags_watcher_get(&f, fx->w);
	assert_true(co_flags_equal(&f, &want));

	/* In place: read once size and mtime are stable for one poll. */
	gen = co_flags_watcher_generation(fx->w);
	fp = fopen(fx->path, "w");
	assert_non_null(fp);
	fputs("kill_switch: true\nkill_reason: by hand\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(co_flags_watcher_wait(fx->w, gen, WAIT_MS), 0);
	co_flags_watcher_get(&f, fx->w);
	assert_int_equal(f.kill_switch, 1);
	assert_string_equal(f.kill_reason, "by hand");
}

static void open_refuses_a_bad_file(void **state)
{
	fixture *fx = *state;
	co_flags_watcher *w = NULL;

	replace_file(fx, "operations:\n  task_clam: {mode: git}\n");
	assert_int_equal(co_flags_watcher_open(&w, fx->path), CO_EINVAL);
	assert_null(w);
	assert_non_null(strstr(co_error_last(), ":2: unknown operation \"task_clam\""));
}

static void wait_times_out_when_nothing_changes(void **state)
{
	fixture *fx = *state;
	uint64_t gen;

	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), 0);
	gen = co_flags_watcher_generation(fx->w);
	assert_int_equal(co_flags_watcher_wait(fx->w, gen, 100), CO_ERETRY);
	/* An older generation is already passed. */
	assert_int_equal(co_flags_watcher_wait(fx->w, gen - 1, 0), 0);
}

typedef struct cb_log {
	atomic_int calls;
	co_flags old_flags, new_flags;
} cb_log;

static void record_change(void *ctx, const co_flags *old_flags, const co_flags *new_flags)
{
	cb_log *log = ctx;

	log->old_flags = *old_flags;
	log->new_flags = *new_flags;
	atomic_fetch_add(&log->calls, 1);
}

static void reload_now_applies_the_file_and_calls_back(void **state)
{
	fixture *fx = *state;
	co_flags want, before, now;
	cb_log log;

	memset(&log, 0, sizeof(log));
	staged(&before, CO_STAGE_GIT);
	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), 0);
	co_flags_watcher_set_callback(fx->w, record_change, &log);
	staged(&want, CO_STAGE_50);
	assert_int_equal(co_flags_save(&want, fx->path), 0);
	/* Synchronous: no waiting needed, whoever (thread or we) saw it first. */
	assert_int_equal(co_flags_watcher_reload(fx->w), 0);
	co_flags_watcher_get(&now, fx->w);
	assert_true(co_flags_equal(&now, &want));
	co_flags_watcher_set_callback(fx->w, NULL, NULL);
	/* Once, however many of inotify, the poll and reload() saw it. */
	assert_int_equal(atomic_load(&log.calls), 1);
	assert_true(co_flags_equal(&log.old_flags, &before));
	assert_true(co_flags_equal(&log.new_flags, &want));

	/* A bad file: reload reports it and keeps the flags. */
	replace_file(fx, "default: {mode: etcd, etcd_percent: 1000}\n");
	co_flags_watcher_close(fx->w);
	fx->w = NULL;
	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "etcd_percent 1000 outside 0..100"));
}

/* ---- 8 threads routing while the file is rewritten ---- */

#define NREADERS 8
#define NWRITES 100

typedef struct race {
	co_flags_watcher *w;
	co_flags variants[3];
	atomic_int stop;
	atomic_int bad; /* a route or snapshot matching no variant */
	atomic_long routes;
} race;

static int matches_a_variant(race *rc, const co_route *r, const char *id)
{
	co_route want;
	int v;

	for (v = 0; v < 3; v++) {
		co_flags_route(&want, &rc->variants[v], r->op, id);
		if (memcmp(&want, r, sizeof(want)) == 0)
			return 1;
	}
	return 0;
}

static void *reader(void *arg)
{
	race *rc = arg;
	char id[32];
	co_route r;
	co_flags snap;
	long n = 0;

	while (!atomic_load(&rc->stop)) {
		int v, ok = 0;

		snprintf(id, sizeof(id), "task-%ld", n % 997);
		memset(&r, 0, sizeof(r));
		if (co_flags_watcher_route(&r, rc->w, (co_op)(n % CO_OP__COUNT), id) <
			0 ||
		    !matches_a_variant(rc, &r, id))
			atomic_fetch_add(&rc->bad, 1);
		if (n % 64 == 0) {
			co_flags_watcher_get(&snap, rc->w);
			for (v = 0; v < 3; v++)
				ok |= co_flags_equal(&snap, &rc->variants[v]);
			if (!ok)
				atomic_fetch_add(&rc->bad, 1);
		}
		n++;
	}
	atomic_fetch_add(&rc->routes, n);
	return NULL;
}

static void routing_is_consistent_from_8_threads_while_file_is_rewritten(void **state)
{
	fixture *fx = *state;
	pthread_t th[NREADERS];
	race rc;
	uint64_t gen;
	int i;

	memset(&rc, 0, sizeof(rc));
	staged(&rc.variants[0], CO_STAGE_10);
	staged(&rc.variants[1], CO_STAGE_ETCD);
	co_flags_set_kill(&rc.variants[1], 1, "flip");
	staged(&rc.variants[2], CO_STAGE_50);
	assert_int_equal(
	    co_flags_set(&rc.variants[2], CO_OP_TASK_CLAIM, CO_MODE_DUAL, 77), 0);
	assert_int_equal(co_flags_save(&rc.variants[0], fx->path), 0);
	assert_int_equal(co_flags_watcher_open(&fx->w, fx->path), 0);
	rc.w = fx->w;

	for (i = 0; i < NREADERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &rc), 0);
	for (i = 1; i <= NWRITES; i++) {
		gen = co_flags_watcher_generation(fx->w);
		assert_int_equal(co_flags_save(&rc.variants[i % 3], fx->path), 0);
		/* Every rewrite is seen: a new generation each time. */
		assert_int_equal(co_flags_watcher_wait(fx->w, gen, WAIT_MS), 0);
	}
	atomic_store(&rc.stop, 1);
	for (i = 0; i < NREADERS; i++)
		pthread_join(th[i], NULL);

	assert_int_equal(atomic_load(&rc.bad), 0);
	assert_true(atomic_load(&rc.routes) > 0);
	assert_true(co_flags_watcher_generation(fx->w) >= 1 + NWRITES);
	assert_int_equal(co_flags_watcher_error(NULL, 0, NULL, fx->w), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
	const struct CMUnitTest tests[] = {
	    T(open_on_missing_file_gives_defaults_then_sees_it_created),
	    T(saved_file_is_picked_up_and_generation_grows),
	    T(file_rewritten_in_place_is_picked_up),
	    T(bad_file_keeps_last_good_flags_and_reports_the_error),
	    T(removed_file_keeps_last_good_flags),
	    T(poll_alone_picks_up_renamed_and_rewritten_files),
	    T(open_refuses_a_bad_file),
	    T(wait_times_out_when_nothing_changes),
	    T(reload_now_applies_the_file_and_calls_back),
	    T(routing_is_consistent_from_8_threads_while_file_is_rewritten),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
