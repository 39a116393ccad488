/*
 * test_git_store.c - the git store against real bare repositories.
 *
 * Every test gets a fresh `git init --bare` repo (empty: the first write
 * creates the branch) and a store on it; plain `git` commands check what the
 * store wrote and play the legacy client that commits task files by hand.
 * Races are made real with threads released together by a barrier, and with
 * forked processes that each open their own store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "harness/scanned.h"
#include "store/git_store.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fixture {
	char repo[256];
	co_store *s;
} fixture;

static int open_store(co_store **out, const char *repo, int poll_ms)
{
	co_git_opts o = CO_GIT_OPTS_INIT;

	o.repo = repo;
	o.poll_interval_ms = poll_ms;
	return co_git_store_open(out, &o);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	if (!f || co_test_git_repo_new(f->repo, sizeof(f->repo)) < 0)
		return -1;
	if (open_store(&f->s, f->repo, 50) < 0) {
		fprintf(stderr, "open: %s\n", co_error_last());
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	unsetenv("CUTOVER_CLOCK_OFFSET"); /* even if a test failed midway */
	co_store_free(f->s);
	co_test_rmrf(f->repo);
	free(f);
	return 0;
}

static co_record *new_task(const char *id, const char *type)
{
	co_record *r = NULL;

	assert_int_equal(co_record_new(&r, CO_KIND_TASK, id), 0);
	r->type = strdup(type);
	assert_non_null(r->type);
	return r;
}

static void create_task(co_store *s, const char *id)
{
	co_record *t = new_task(id, "build"), *out = NULL;

	assert_int_equal(co_store_task_create(&out, s, t), 0);
	co_record_free(out);
	co_record_free(t);
}

/* Number of commits on main (0 for an unborn branch). */
static int commit_count(const char *repo)
{
	char *out = NULL;
	int n = 0;

	if (co_test_sh(&out, NULL, "git --git-dir='%s' rev-list --count main 2>/dev/null",
		       repo) == 0)
		n = atoi(out);
	free(out);
	return n;
}

/* ---- tests ---- */

static void create_get_list_round_trip(void **state)
{
	fixture *f = *state;
	co_record *t = new_task("P0.1.2", "build"), *out = NULL, *got = NULL;
	co_record *sw = NULL, *swout = NULL;
	co_record_list l = {0};

	assert_int_equal(co_store_ping(f->s), 0); /* empty repo, unborn branch */
	assert_int_equal(co_record_set_metadata(t, "{\"b\":1,\"a\":[2]}"), 0);
	assert_int_equal(co_store_task_create(&out, f->s, t), 0);
	assert_int_equal(out->rev, 1);
	assert_int_equal(co_store_get(&got, f->s, CO_KIND_TASK, "P0.1.2"), 0);
	assert_true(co_record_equal(got, out));
	assert_string_equal(got->metadata, "{\"a\":[2],\"b\":1}");

	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, "swarm-sip"), 0);
	assert_int_equal(co_strv_push(&sw->capabilities, "integration:sip"), 0);
	assert_int_equal(co_store_swarm_register(&swout, f->s, sw), 0);
	create_task(f->s, "P0.1.1");

	assert_int_equal(co_store_list(&l, f->s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0]->id, "P0.1.1");
	assert_true(co_record_equal(l.items[1], out));
	co_record_list_clear(&l);
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_SWARM), 0);
	assert_int_equal(l.n, 1);
	assert_true(co_record_equal(l.items[0], swout));
	co_record_list_clear(&l);
	assert_string_equal(co_store_describe(f->s), f->repo);
	assert_string_equal(co_store_name(f->s), "git");

	co_record_free(sw);
	co_record_free(swout);
	co_record_free(got);
	co_record_free(out);
	co_record_free(t);
}

static void create_identical_is_ok_different_conflicts(void **state)
{
	fixture *f = *state;
	co_record *t = new_task("T1", "build"), *a = NULL, *b = NULL, *c = NULL;

	assert_int_equal(co_store_task_create(&a, f->s, t), 0);
	assert_int_equal(co_store_task_create(&b, f->s, t), 0);
	assert_true(co_record_equal(a, b));
	free(t->type);
	t->type = strdup("test");
	assert_int_equal(co_store_task_create(&c, f->s, t), CO_ECONFLICT);
	assert_null(c);
	assert_int_equal(commit_count(f->repo), 1); /* the re-create wrote nothing */
	co_record_free(a);
	co_record_free(b);
	co_record_free(t);
}

static void missing_record_is_not_found(void **state)
{
	fixture *f = *state;
	co_record *r = NULL;
	co_record_list l = {0};

	/* unborn branch first, then a branch that lacks the file */
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "nope"), CO_ENOTFOUND);
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, 0);
	create_task(f->s, "other");
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "nope"), CO_ENOTFOUND);
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_SWARM, "other"), CO_ENOTFOUND);
	assert_int_equal(co_store_remove(f->s, CO_KIND_TASK, "nope"), CO_ENOTFOUND);
	assert_null(r);
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_SWARM), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(co_store_remove(f->s, CO_KIND_TASK, "other"), 0);
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "other"), CO_ENOTFOUND);
}

static void open_of_missing_repo_is_unavailable(void **state)
{
	co_store *s = NULL;
	char path[300];

	(void)state;
	assert_int_equal(co_test_tmpdir(path, sizeof(path)), 0);
	co_test_rmrf(path);
	assert_int_equal(open_store(&s, path, 50), CO_EUNAVAIL);
	assert_null(s);
	assert_non_null(strstr(co_error_last(), path));
}

/* ---- 32 threads, one task ---- */

#define NTHREADS 32

typedef struct claimer {
	co_store *s;
	pthread_barrier_t *go;
	const char *id;
	char swarm[32];
	int rc;
	co_record *out;
	char err[256];
} claimer;

static void *claim_thread(void *arg)
{
	claimer *c = arg;

	pthread_barrier_wait(c->go);
	c->rc = co_store_claim(&c->out, c->s, c->id, c->swarm, 0);
	snprintf(c->err, sizeof(c->err), "%s", c->rc ? co_error_last() : "");
	return NULL;
}

static void claim_has_one_winner_under_32_threads(void **state)
{
	fixture *f = *state;
	pthread_t th[NTHREADS];
	claimer c[NTHREADS];
	pthread_barrier_t go;
	const char *winner = NULL;
	int i, wins = 0, commits;

	create_task(f->s, "RACE");
	commits = commit_count(f->repo);
	pthread_barrier_init(&go, NULL, NTHREADS);
	for (i = 0; i < NTHREADS; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].s = f->s;
		c[i].id = "RACE";
		c[i].go = &go;
		snprintf(c[i].swarm, sizeof(c[i].swarm), "swarm-%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, claim_thread, &c[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < NTHREADS; i++) {
		if (c[i].rc == 0) {
			wins++;
			winner = c[i].swarm;
		}
	}
	assert_int_equal(wins, 1);
	for (i = 0; i < NTHREADS; i++) {
		assert_non_null(c[i].out);
		assert_non_null(c[i].out->owner);
		assert_string_equal(c[i].out->owner, winner);
		if (c[i].rc != 0)
			assert_int_equal(c[i].rc, CO_ECONFLICT);
		co_record_free(c[i].out);
	}
	assert_int_equal(commit_count(f->repo), commits + 1); /* one claim commit */
}

/* Writers of different files in one process take turns on the ref: all
 * of them get in, and none builds a commit only to lose the ref update. */
typedef struct writer {
	co_store *s;
	pthread_barrier_t *go;
	int n, failures;
} writer;

static void *write_thread(void *arg)
{
	writer *w = arg;
	int k;

	pthread_barrier_wait(w->go);
	for (k = 0; k < 10; k++) {
		co_record *t = NULL, *o = NULL;
		char id[32];

		snprintf(id, sizeof(id), "w%d-%d", w->n, k);
		if (co_record_new(&t, CO_KIND_TASK, id) < 0 ||
		    co_store_task_create(&o, w->s, t) < 0)
			w->failures++;
		co_record_free(t);
		co_record_free(o);
	}
	return NULL;
}

static void concurrent_writers_of_different_files_lose_nothing(void **state)
{
	fixture *f = *state;
	pthread_t th[8];
	writer w[8];
	pthread_barrier_t go;
	co_record_list l = {0};
	int i;

	pthread_barrier_init(&go, NULL, 8);
	for (i = 0; i < 8; i++) {
		w[i] = (writer){f->s, &go, i, 0};
		assert_int_equal(pthread_create(&th[i], NULL, write_thread, &w[i]), 0);
	}
	for (i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < 8; i++)
		assert_int_equal(w[i].failures, 0);
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, 80);
	co_record_list_clear(&l);
	assert_int_equal(commit_count(f->repo), 80);
	assert_int_equal(co_git_store_ref_races(f->s), 0);
}

/* ---- many records in one commit ---- */

static co_record *task_at_rev(const char *id, int64_t rev, const char *type)
{
	co_record *r = new_task(id, type);

	r->rev = rev;
	r->created_at = r->updated_at = 1700000000LL + rev;
	return r;
}

static void put_batch_is_one_commit_and_never_goes_backwards(void **state)
{
	fixture *f = *state;
	const co_record *recs[12];
	co_record *own[12], *got = NULL;
	int applied[12], i, before;

	/* an unborn branch: the first batch creates it */
	for (i = 0; i < 10; i++) {
		char id[16];

		snprintf(id, sizeof(id), "B%02d", i);
		recs[i] = own[i] = task_at_rev(id, 5, "first");
	}
	assert_int_equal(co_store_put_batch_if_newer(f->s, recs, 10, applied), 0);
	assert_int_equal(commit_count(f->repo), 1);
	for (i = 0; i < 10; i++) {
		assert_int_equal(applied[i], 1);
		co_record_free(own[i]);
	}
	/* newer, older, equal and new records together */
	recs[0] = own[0] = task_at_rev("B00", 6, "newer");
	recs[1] = own[1] = task_at_rev("B01", 4, "older");
	recs[2] = own[2] = task_at_rev("B02", 5, "same-rev");
	recs[3] = own[3] = task_at_rev("N00", 1, "new");
	before = commit_count(f->repo);
	assert_int_equal(co_store_put_batch_if_newer(f->s, recs, 4, applied), 0);
	assert_int_equal(commit_count(f->repo), before + 1);
	assert_int_equal(applied[0], 1);
	assert_int_equal(applied[1], 0);
	assert_int_equal(applied[2], 0);
	assert_int_equal(applied[3], 1);
	assert_int_equal(co_store_get(&got, f->s, CO_KIND_TASK, "B00"), 0);
	assert_string_equal(got->type, "newer");
	co_record_free(got);
	assert_int_equal(co_store_get(&got, f->s, CO_KIND_TASK, "B01"), 0);
	assert_string_equal(got->type, "first");
	co_record_free(got);
	/* nothing newer: no commit at all */
	assert_int_equal(co_store_put_batch_if_newer(f->s, recs, 4, applied), 0);
	assert_int_equal(commit_count(f->repo), before + 1);
	/* an ID twice is bad input, and writes nothing */
	recs[1] = recs[0];
	assert_int_equal(co_store_put_batch_if_newer(f->s, recs, 2, NULL), CO_EINVAL);
	assert_int_equal(commit_count(f->repo), before + 1);
	for (i = 0; i < 4; i++)
		co_record_free(own[i]);
}

typedef struct batcher {
	co_store *s;
	pthread_barrier_t *go;
	int t, failures;
} batcher;

/* Thread t writes the same 20 IDs 10 times, at revs round * 4 + t. */
static void *batch_thread(void *arg)
{
	batcher *b = arg;
	int round, i;

	pthread_barrier_wait(b->go);
	for (round = 1; round <= 10; round++) {
		const co_record *recs[20];
		co_record *own[20];
		char type[16];

		snprintf(type, sizeof(type), "t%d", b->t);
		for (i = 0; i < 20; i++) {
			char id[16];

			snprintf(id, sizeof(id), "R%02d", i);
			recs[i] = own[i] = task_at_rev(id, round * 4 + b->t, type);
		}
		if (co_store_put_batch_if_newer(b->s, recs, 20, NULL) < 0)
			b->failures++;
		for (i = 0; i < 20; i++)
			co_record_free(own[i]);
	}
	return NULL;
}

/* Four threads racing batches over the same IDs: the highest rev wins for
 * every ID, whatever the interleaving. */
static void racing_batches_keep_the_highest_rev_of_every_id(void **state)
{
	fixture *f = *state;
	pthread_t th[4];
	batcher b[4];
	pthread_barrier_t go;
	co_record_list l = {0};
	size_t k;
	int i;

	pthread_barrier_init(&go, NULL, 4);
	for (i = 0; i < 4; i++) {
		b[i] = (batcher){f->s, &go, i, 0};
		assert_int_equal(pthread_create(&th[i], NULL, batch_thread, &b[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < 4; i++)
		assert_int_equal(b[i].failures, 0);
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, 20);
	for (k = 0; k < l.n; k++) {
		assert_int_equal(l.items[k]->rev, 10 * 4 + 3);
		assert_string_equal(l.items[k]->type, "t3");
	}
	co_record_list_clear(&l);
}

/* The same race between processes, each with its own store and libgit2. */
static void claim_has_one_winner_across_4_processes(void **state)
{
	fixture *f = *state;
	pid_t pid[4];
	int i, wins = 0, losses = 0;
	char *out = NULL;

	create_task(f->s, "XPROC");
	for (i = 0; i < 4; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			co_store *s = NULL;
			co_record *r = NULL;
			char swarm[32];
			int rc, k;

			snprintf(swarm, sizeof(swarm), "proc-%d", i);
			if (open_store(&s, f->repo, 50) < 0)
				_exit(10);
			/* each process also writes other files, to make ref races */
			for (k = 0; k < 5; k++) {
				co_record *t = NULL, *o = NULL;
				char id[32];

				snprintf(id, sizeof(id), "p%d-%d", i, k);
				if (co_record_new(&t, CO_KIND_TASK, id) < 0 ||
				    co_store_task_create(&o, s, t) < 0)
					_exit(11);
				co_record_free(t);
				co_record_free(o);
			}
			rc = co_store_claim(&r, s, "XPROC", swarm, 0);
			co_record_free(r);
			co_store_free(s);
			_exit(rc == 0 ? 0 : rc == CO_ECONFLICT ? 3 : 12);
		}
	}
	for (i = 0; i < 4; i++) {
		int st = 0;

		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st));
		if (WEXITSTATUS(st) == 0)
			wins++;
		else if (WEXITSTATUS(st) == 3)
			losses++;
		else
			fail_msg("child %d exited %d", i, WEXITSTATUS(st));
	}
	assert_int_equal(wins, 1);
	assert_int_equal(losses, 3);
	/* no write lost: 1 + 20 creates + 1 claim */
	assert_int_equal(commit_count(f->repo), 22);
	assert_int_equal(
	    co_test_sh(&out, NULL,
		       "git --git-dir='%s' ls-tree --name-only main tasks/ | wc -l",
		       f->repo),
	    0);
	assert_int_equal(atoi(out), 21);
	free(out);
}

/* With the legacy 30 s poll interval, a watch still sees a commit at once:
 * the store's own (its commit counter) and another process's (inotify on
 * the branch ref).  A watch that waited for the poll would time out. */
static void watch_sees_commits_without_waiting_for_the_poll(void **state)
{
	fixture *f = *state;
	co_store *slow = NULL, *other = NULL;
	co_watch *w = NULL;
	co_event *ev = NULL;

	assert_int_equal(open_store(&slow, f->repo, 30000), 0);
	assert_int_equal(open_store(&other, f->repo, 30000), 0);
	assert_int_equal(co_store_watch(&w, slow, "tasks/"), 0);
	create_task(slow, "WAKE1"); /* the watching store's own commit */
	assert_int_equal(co_watch_next(&ev, w, 10000), 0);
	assert_non_null(ev);
	assert_string_equal(ev->id, "WAKE1");
	co_event_free(ev);
	ev = NULL;
	create_task(other, "WAKE2"); /* another store's: only the ref moved */
	assert_int_equal(co_watch_next(&ev, w, 10000), 0);
	assert_non_null(ev);
	assert_string_equal(ev->id, "WAKE2");
	co_event_free(ev);
	co_watch_close(w);
	co_store_free(other);
	co_store_free(slow);
}

static void release_by_non_owner_conflicts(void **state)
{
	fixture *f = *state;
	co_record *r = NULL;

	create_task(f->s, "T2");
	assert_int_equal(co_store_claim(&r, f->s, "T2", "alice", 0), 0);
	co_record_free(r);
	r = NULL;
	assert_int_equal(co_store_release(&r, f->s, "T2", "bob", CO_STATUS_COMPLETE),
			 CO_ECONFLICT);
	assert_non_null(r);
	assert_string_equal(r->owner, "alice");
	co_record_free(r);
	r = NULL;
	assert_int_equal(co_store_release(&r, f->s, "T2", "alice", CO_STATUS_COMPLETE),
			 0);
	assert_int_equal(r->status, CO_STATUS_COMPLETE);
	assert_null(r->owner);
	co_record_free(r);
}

static void claim_with_ttl_expires(void **state)
{
	fixture *f = *state;
	co_record *r = NULL;

	create_task(f->s, "T3");
	assert_int_equal(co_store_claim(&r, f->s, "T3", "alice", 1), 0);
	assert_int_equal(r->status, CO_STATUS_CLAIMED);
	assert_true(r->claim_expires_at > 0);
	co_record_free(r);
	r = NULL;
	setenv("CUTOVER_CLOCK_OFFSET", "5", 1);
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "T3"), 0);
	assert_int_equal(r->status, CO_STATUS_AVAILABLE);
	assert_null(r->owner);
	co_record_free(r);
	r = NULL;
	/* and an expired claim can be taken by another swarm */
	assert_int_equal(co_store_claim(&r, f->s, "T3", "bob", 0), 0);
	assert_string_equal(r->owner, "bob");
	unsetenv("CUTOVER_CLOCK_OFFSET");
	co_record_free(r);
}

/* A time the canonical form cannot hold is refused, and nothing changes. */
static void unwritable_timestamps_are_refused_and_change_nothing(void **state)
{
	fixture *f = *state;
	co_record *r = NULL, *t = NULL;
	const co_record *one[1];

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, "TS1"), 0);
	t->rev = 1;
	t->created_at = t->updated_at = 1763805600000LL; /* ms, not s */
	assert_int_equal(co_store_put_if_newer(f->s, t, NULL), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "task TS1: updated_at is 1763805600000"));
	one[0] = t;
	assert_int_equal(co_store_put_batch_if_newer(f->s, one, 1, NULL), CO_EINVAL);
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "TS1"), CO_ENOTFOUND);
	co_record_free(t);

	create_task(f->s, "TS2");
	assert_int_equal(co_store_claim(&r, f->s, "TS2", "alice", CO_TTL_MAX + 1),
			 CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "etcd's longest lease"));
	assert_int_equal(co_store_claim(&r, f->s, "TS2", "alice", INT64_MAX), CO_EINVAL);
	assert_int_equal(co_store_renew(&r, f->s, "TS2", "alice", INT64_MAX), CO_EINVAL);
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "TS2"), 0);
	assert_int_equal(r->status, CO_STATUS_AVAILABLE);
	assert_int_equal(r->rev, 1);
	co_record_free(r);
}

static void written_file_is_pretty_canonical_json(void **state)
{
	fixture *f = *state;
	co_record *t = new_task("P0.2", "build"), *out = NULL;
	char *shown = NULL, *want;

	assert_int_equal(
	    co_record_set_metadata(t, "{\"z\":{\"y\":1,\"x\":2},\"a\":\"\"}"), 0);
	assert_int_equal(co_strv_push(&t->blocked_by, "P0.1"), 0);
	assert_int_equal(co_store_task_create(&out, f->s, t), 0);
	assert_int_equal(co_test_sh(&shown, NULL,
				    "git --git-dir='%s' show main:tasks/P0.2.json",
				    f->repo),
			 0);
	want = co_record_to_json(out, 1);
	assert_non_null(want);
	assert_string_equal(shown, want);
	free(want);
	free(shown);
	co_record_free(out);
	co_record_free(t);
}

static void fsck_strict_passes_after_many_writes(void **state)
{
	fixture *f = *state;
	char *err = NULL;
	co_record *r = NULL;
	int i;

	for (i = 0; i < 20; i++) {
		char id[16];

		snprintf(id, sizeof(id), "F%d", i);
		create_task(f->s, id);
		assert_int_equal(co_store_claim(&r, f->s, id, "s", 30), 0);
		co_record_free(r);
		r = NULL;
		if (i % 2 == 0)
			assert_int_equal(co_store_remove(f->s, CO_KIND_TASK, id), 0);
	}
	assert_int_equal(
	    co_test_sh(NULL, &err, "git --git-dir='%s' fsck --strict 2>&1", f->repo), 0);
	free(err);
	assert_int_equal(commit_count(f->repo), 50);
}

/* A legacy client: clone, write a file by hand, commit, push. */
static int legacy_commit(const char *repo, const char *path, const char *content)
{
	char work[300], file[700], *err = NULL;
	FILE *fp;
	int rc;

	if (co_test_tmpdir(work, sizeof(work)) < 0)
		return -1;
	rc = co_test_sh(NULL, &err,
			"git clone -q '%s' '%s/w' 2>&1 && mkdir -p '%s/w/tasks'", repo,
			work, work);
	if (rc == 0) {
		snprintf(file, sizeof(file), "%s/w/%s", work, path);
		if ((fp = fopen(file, "w")) == NULL) {
			rc = -1;
		} else {
			fputs(content, fp);
			fclose(fp);
		}
	}
	if (rc == 0) {
		free(err);
		err = NULL;
		rc = co_test_sh(
		    NULL, &err,
		    "cd '%s/w' && git add -A && git -c user.name=legacy "
		    "-c user.email=legacy@example.com commit -qm 'legacy edit' && "
		    "git push -q origin HEAD:main 2>&1",
		    work);
	}
	if (rc != 0)
		fprintf(stderr, "legacy commit failed: %s\n", err ? err : "");
	free(err);
	co_test_rmrf(work);
	return rc;
}

static const char legacy_json[] = "{\n"
				  "    \"updated_at\": \"2026-11-22T10:00:00Z\",\n"
				  "    \"type\": \"build\",\n"
				  "    \"status\": \"available\",\n"
				  "    \"rev\": 3,\n"
				  "    \"owner\": null,\n"
				  "    \"metadata\": {\"note\": \"by hand\"},\n"
				  "    \"kind\": \"task\",\n"
				  "    \"id\": \"L1\",\n"
				  "    \"created_at\": \"2026-11-22T09:00:00Z\",\n"
				  "    \"claim_expires_at\": null,\n"
				  "    \"blocked_by\": [ ]\n"
				  "}\n";

static void legacy_commit_by_plain_git_is_read(void **state)
{
	fixture *f = *state;
	co_record *r = NULL;
	co_record_list l = {0};

	create_task(f->s, "C1"); /* the legacy commit builds on ours */
	assert_int_equal(legacy_commit(f->repo, "tasks/L1.json", legacy_json), 0);
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "L1"), 0);
	assert_int_equal(r->rev, 3);
	assert_string_equal(r->type, "build");
	assert_string_equal(r->metadata, "{\"note\":\"by hand\"}");
	assert_int_equal(r->status, CO_STATUS_AVAILABLE);
	co_record_free(r);
	r = NULL;
	/* and cutover keeps writing on top of the legacy commit */
	assert_int_equal(co_store_claim(&r, f->s, "L1", "alice", 0), 0);
	assert_int_equal(r->rev, 4);
	co_record_free(r);
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, 2);
	co_record_list_clear(&l);
	assert_int_equal(commit_count(f->repo), 3);
}

static void malformed_file_is_invalid_naming_path_and_commit(void **state)
{
	fixture *f = *state;
	co_record *r = NULL;
	co_record_list l = {0};
	char *head = NULL;

	create_task(f->s, "OK1");
	assert_int_equal(legacy_commit(f->repo, "tasks/README.md", "not a record\n"), 0);
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_TASK), 0); /* skipped */
	assert_int_equal(l.n, 1);
	co_record_list_clear(&l);
	assert_int_equal(legacy_commit(f->repo, "tasks/BAD.json", "{\"id\": \"BAD\",\n"),
			 0);
	assert_int_equal(
	    co_test_sh(&head, NULL, "git --git-dir='%s' rev-parse main", f->repo), 0);
	head[12] = '\0';
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "BAD"), CO_EINVAL);
	assert_null(r);
	assert_non_null(strstr(co_error_last(), "tasks/BAD.json"));
	assert_non_null(strstr(co_error_last(), head));
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_TASK), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "tasks/BAD.json"));
	assert_int_equal(l.n, 0);
	/* the good record is still readable */
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "OK1"), 0);
	co_record_free(r);
	free(head);
}

/* Next event within 10 s that is not filtered out; fails on timeout. */
static co_event *next_event(co_watch *w)
{
	co_event *e = NULL;
	int i;

	for (i = 0; i < 100 && !e; i++)
		assert_int_equal(co_watch_next(&e, w, 100), 0);
	assert_non_null(e);
	return e;
}

static void watch_reports_put_and_delete_by_another_writer(void **state)
{
	fixture *f = *state;
	co_store *other = NULL;
	co_watch *w = NULL;
	co_event *e = NULL;
	co_record *sw = NULL, *out = NULL;

	create_task(f->s, "BEFORE"); /* not an event: it precedes the watch */
	assert_int_equal(co_store_watch(&w, f->s, "tasks/"), 0);
	assert_int_equal(open_store(&other, f->repo, 50), 0);

	/* a swarm first: outside the prefix, it must not show up */
	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, "sw1"), 0);
	assert_int_equal(co_store_swarm_register(&out, other, sw), 0);
	create_task(other, "W1");
	e = next_event(w);
	assert_int_equal(e->type, CO_EVENT_PUT);
	assert_int_equal(e->kind, CO_KIND_TASK);
	assert_string_equal(e->id, "W1");
	assert_non_null(e->record);
	assert_string_equal(e->record->id, "W1");
	co_event_free(e);

	assert_int_equal(co_store_remove(other, CO_KIND_TASK, "W1"), 0);
	e = next_event(w);
	assert_int_equal(e->type, CO_EVENT_DELETE);
	assert_string_equal(e->id, "W1");
	assert_null(e->record);
	co_event_free(e);

	/* a legacy writer's commit is seen too */
	assert_int_equal(legacy_commit(f->repo, "tasks/L1.json", legacy_json), 0);
	e = next_event(w);
	assert_int_equal(e->type, CO_EVENT_PUT);
	assert_string_equal(e->id, "L1");
	co_event_free(e);

	/* nothing else is pending */
	assert_int_equal(co_watch_next(&e, w, 200), 0);
	assert_null(e);

	co_watch_close(w);
	co_record_free(out);
	co_record_free(sw);
	co_store_free(other);
}

static void watch_queues_several_changes_of_one_poll(void **state)
{
	fixture *f = *state;
	co_store *slow = NULL;
	co_watch *w = NULL;
	co_event *e = NULL;
	int seen[3] = {0, 0, 0}, i;

	/*
	 * A longer poll interval, so that the commits usually land in one poll
	 * and its diff yields several events to queue; if they straddle polls
	 * the expectations are the same.
	 */
	assert_int_equal(open_store(&slow, f->repo, 300), 0);
	assert_int_equal(co_store_watch(&w, slow, "tasks/Q"), 0);
	create_task(f->s, "Q0");
	create_task(f->s, "Q1");
	create_task(f->s, "Q2");
	create_task(f->s, "R0"); /* outside the prefix */
	for (i = 0; i < 3; i++) {
		e = next_event(w);
		assert_int_equal(e->type, CO_EVENT_PUT);
		assert_true(e->id[0] == 'Q' && e->id[1] >= '0' && e->id[1] <= '2');
		seen[e->id[1] - '0']++;
		co_event_free(e);
	}
	assert_int_equal(seen[0] + seen[1] + seen[2], 3);
	assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
	assert_int_equal(co_watch_next(&e, w, 400), 0);
	assert_null(e);
	co_watch_close(w);
	co_store_free(slow);
}

static void every_mutation_is_one_commit_touching_one_file(void **state)
{
	fixture *f = *state;
	co_record *r = NULL, *sw = NULL;
	char *log = NULL, *line, *save = NULL;
	int commits = 0, files = 0, bad = 0, trailers = 0;

	create_task(f->s, "M1");				     /* 1 */
	create_task(f->s, "M1");				     /* no-op */
	assert_int_equal(co_store_claim(&r, f->s, "M1", "a", 0), 0); /* 2 */
	co_record_free(r);
	assert_int_equal(co_store_release(&r, f->s, "M1", "a", CO_STATUS_AVAILABLE),
			 0); /* 3 */
	co_record_free(r);
	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, "S1"), 0);
	assert_int_equal(co_store_swarm_register(&r, f->s, sw), 0); /* 4 */
	co_record_free(r);
	assert_int_equal(co_store_remove(f->s, CO_KIND_SWARM, "S1"), 0); /* 5 */
	co_record_free(sw);

	assert_int_equal(
	    co_test_sh(&log, NULL,
		       "git --git-dir='%s' log --format='COMMIT %%an <%%ae>%%n%%b' "
		       "--name-only main",
		       f->repo),
	    0);
	for (line = strtok_r(log, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "COMMIT ", 7) == 0) {
			if (commits > 0 && files != 1)
				bad++;
			commits++;
			files = 0;
			if (strcmp(line + 7, "cutover <cutover@localhost>") != 0)
				bad++;
		} else if (strncmp(line, "Cutover-Op: ", 12) == 0) {
			trailers++;
		} else if (line[0]) {
			files++;
		}
	}
	if (files != 1)
		bad++;
	free(log);
	assert_int_equal(commits, 5);
	assert_int_equal(trailers, 5);
	assert_int_equal(bad, 0);
}

static void fresh_repo_branch_is_created_by_first_write(void **state)
{
	fixture *f = *state;
	char *out = NULL;

	assert_int_equal(commit_count(f->repo), 0);
	create_task(f->s, "FIRST");
	assert_int_equal(commit_count(f->repo), 1);
	assert_int_equal(co_test_sh(&out, NULL,
				    "git --git-dir='%s' log -1 --format=%%B main",
				    f->repo),
			 0);
	assert_string_equal(out, "create tasks/FIRST.json\n\nCutover-Op: create\n\n");
	free(out);
}

/* ---- remote repositories, served by a real `git daemon` ---- */

typedef struct git_daemon {
	pid_t pid;
	int port;
	char base[256];
	char url[320];
} git_daemon;

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int port_answers(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void daemon_stop(git_daemon *d)
{
	if (d->pid > 0) {
		kill(-d->pid, SIGTERM); /* the daemon and its per-connection children */
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
	if (d->base[0])
		co_test_rmrf(d->base);
	d->base[0] = '\0';
}

/* A bare repo base/r.git served read-write on a free loopback port. */
static int daemon_start(git_daemon *d)
{
	int attempt, i;

	memset(d, 0, sizeof(*d));
	if (co_test_tmpdir(d->base, sizeof(d->base)) < 0 ||
	    co_test_sh(NULL, NULL, "git init --bare -q -b main '%s/r.git'", d->base) != 0)
		return -1;
	for (attempt = 0; attempt < 5; attempt++) {
		char bp[300], pp[32];

		if ((d->port = free_port()) <= 0)
			continue;
		snprintf(bp, sizeof(bp), "--base-path=%s", d->base);
		snprintf(pp, sizeof(pp), "--port=%d", d->port);
		if ((d->pid = fork()) < 0)
			return -1;
		if (d->pid == 0) {
			int null = open("/dev/null", O_RDWR);

			/* never hold the test's stdout open after the test is gone */
			if (null >= 0) {
				dup2(null, 1);
				dup2(null, 2);
			}
			setpgid(0, 0);
			execlp("git", "git", "daemon", "--enable=receive-pack",
			       "--export-all", "--reuseaddr", bp, pp,
			       "--listen=127.0.0.1", (char *)NULL);
			_exit(127);
		}
		setpgid(d->pid, d->pid);
		/* bounded wait until it accepts connections, or died (port taken) */
		for (i = 0; i < 500; i++) {
			struct timespec ts = {0, 10 * 1000 * 1000};

			if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
				d->pid = 0;
				break;
			}
			if (port_answers(d->port)) {
				snprintf(d->url, sizeof(d->url),
					 "git://127.0.0.1:%d/r.git", d->port);
				return 0;
			}
			nanosleep(&ts, NULL);
		}
		if (d->pid > 0) {
			kill(-d->pid, SIGKILL);
			waitpid(d->pid, NULL, 0);
			d->pid = 0;
		}
	}
	daemon_stop(d);
	return -1;
}

static int open_remote(co_store **out, const char *url, const char *cache)
{
	co_git_opts o = CO_GIT_OPTS_INIT;

	o.repo = url;
	o.cache_dir = cache;
	o.poll_interval_ms = 50;
	return co_git_store_open(out, &o);
}

#define NREMOTE 8

typedef struct remote_fixture {
	git_daemon d;
	char cache_a[256], cache_b[256], repo[300];
	co_store *a, *b;
} remote_fixture;

static int remote_setup(void **state)
{
	remote_fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f || daemon_start(&f->d) < 0 ||
	    co_test_tmpdir(f->cache_a, sizeof(f->cache_a)) < 0 ||
	    co_test_tmpdir(f->cache_b, sizeof(f->cache_b)) < 0)
		return -1;
	snprintf(f->repo, sizeof(f->repo), "%s/r.git", f->d.base);
	/* two mirrors, as on two machines */
	if (open_remote(&f->a, f->d.url, f->cache_a) < 0 ||
	    open_remote(&f->b, f->d.url, f->cache_b) < 0) {
		fprintf(stderr, "open remote: %s\n", co_error_last());
		return -1;
	}
	return 0;
}

static int remote_teardown(void **state)
{
	remote_fixture *f = *state;

	if (!f)
		return 0;
	co_store_free(f->a);
	co_store_free(f->b);
	if (f->cache_a[0])
		co_test_rmrf(f->cache_a);
	if (f->cache_b[0])
		co_test_rmrf(f->cache_b);
	daemon_stop(&f->d);
	free(f);
	return 0;
}

static void remote_store_round_trip_and_one_winner_across_mirrors(void **state)
{
	remote_fixture *f = *state;
	co_store *a = f->a, *b = f->b;
	char *err = NULL;
	co_record *r = NULL;
	co_record_list l = {0};
	pthread_t th[NREMOTE];
	claimer c[NREMOTE];
	pthread_barrier_t go;
	const char *winner = NULL;
	int i, wins = 0;

	assert_int_equal(co_store_ping(a), 0);
	assert_string_equal(co_store_describe(a), f->d.url);
	assert_int_equal(co_store_list(&l, a, CO_KIND_TASK), 0); /* empty remote */
	assert_int_equal(l.n, 0);

	create_task(a, "R1");
	assert_int_equal(co_store_get(&r, b, CO_KIND_TASK, "R1"), 0);
	assert_int_equal(r->rev, 1);
	co_record_free(r);
	r = NULL;

	pthread_barrier_init(&go, NULL, NREMOTE);
	for (i = 0; i < NREMOTE; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].s = i % 2 ? b : a;
		c[i].id = "R1";
		c[i].go = &go;
		snprintf(c[i].swarm, sizeof(c[i].swarm), "remote-%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, claim_thread, &c[i]), 0);
	}
	for (i = 0; i < NREMOTE; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < NREMOTE; i++) {
		if (c[i].rc == 0) {
			wins++;
			winner = c[i].swarm;
		} else if (c[i].rc != CO_ECONFLICT) {
			fail_msg("claim %d: %d %s", i, c[i].rc, c[i].err);
		}
	}
	assert_int_equal(wins, 1);
	for (i = 0; i < NREMOTE; i++) {
		assert_non_null(c[i].out);
		assert_string_equal(c[i].out->owner, winner);
		co_record_free(c[i].out);
	}
	/* the server's repo holds exactly create + one claim, and is sound */
	assert_int_equal(commit_count(f->repo), 2);
	assert_int_equal(
	    co_test_sh(NULL, &err, "git --git-dir='%s' fsck --strict 2>&1", f->repo), 0);
	free(err);

	assert_int_equal(co_store_remove(b, CO_KIND_TASK, "R1"), 0);
	assert_int_equal(co_store_list(&l, a, CO_KIND_TASK), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(commit_count(f->repo), 3);
}

/* ---- scan ---- */

static int scan_collect(void *ctx, const co_scan_item *it)
{
	co_test_scanned *c = ctx;
	co_record *out = NULL;
	int error;

	if ((error = co_test_scanned_add(c, it)) < 0)
		return error;
	if (c->n == 1 && c->writer) {
		co_record *t = new_task("T4", "build");

		if (co_store_claim(&out, c->writer, "T2", "alice", 0) != 0 ||
		    co_store_remove(c->writer, CO_KIND_TASK, "T3") != 0)
			c->rc = -1;
		co_record_free(out);
		out = NULL;
		if (co_store_task_create(&out, c->writer, t) != 0)
			c->rc = -1;
		co_record_free(out);
		co_record_free(t);
	}
	return 0;
}

/*
 * A scan passes each file raw (git's pretty canonical JSON) with its blob
 * id as version, the one co_store_get_versioned() gives, all from the head
 * commit it started at: commits made while it runs are not seen.
 */
static void scan_passes_raw_files_of_one_commit(void **state)
{
	fixture *f = *state;
	co_test_scanned c;
	co_record *t2 = NULL, *sw = NULL, *out = NULL;
	char ver[CO_VERSION_MAX], *pretty;
	co_store *w;

	create_task(f->s, "T1");
	create_task(f->s, "T2");
	create_task(f->s, "T3");
	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, "S1"), 0);
	assert_int_equal(co_store_swarm_register(&out, f->s, sw), 0);
	co_record_free(out);
	co_record_free(sw);
	assert_int_equal(co_store_get_versioned(&t2, ver, f->s, CO_KIND_TASK, "T2"), 0);
	assert_int_equal((int)strlen(ver), 40);
	assert_int_equal(open_store(&w, f->repo, 50), 0);

	memset(&c, 0, sizeof(c));
	c.writer = w;
	if (co_store_scan(f->s, scan_collect, &c) != 0)
		fail_msg("scan: %s", co_error_last());
	assert_int_equal(c.rc, 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.id[0], "T1");
	assert_string_equal(c.id[1], "T2");
	assert_string_equal(c.id[2], "T3");
	assert_int_equal(c.kind[3], CO_KIND_SWARM);
	assert_string_equal(c.id[3], "S1");
	assert_string_equal(c.ver[1], ver);
	pretty = co_record_to_json(t2, 1);
	assert_string_equal(c.raw[1], pretty);
	free(pretty);

	memset(&c, 0, sizeof(c));
	assert_int_equal(co_store_scan(f->s, scan_collect, &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.id[1], "T2");
	assert_non_null(strstr(c.raw[1], "\"alice\""));
	assert_string_not_equal(c.ver[1], ver);
	assert_string_equal(c.id[2], "T4");
	co_record_free(t2);
	co_store_free(w);
}

struct named {
	size_t n, with_raw;
	char id[8][32];
	char ver[8][CO_VERSION_MAX];
	unsigned char blob[8][CO_BLOB_ID_LEN];
};

static int scan_names(void *ctx, const co_scan_item *it)
{
	struct named *c = ctx;

	if (c->n == 8 || it->blob_id == NULL)
		return CO_ETOOBIG;
	c->with_raw += it->raw != NULL || it->len != 0;
	snprintf(c->id[c->n], sizeof(c->id[0]), "%s", it->id);
	snprintf(c->ver[c->n], sizeof(c->ver[0]), "%s", it->version);
	memcpy(c->blob[c->n], it->blob_id, CO_BLOB_ID_LEN);
	c->n++;
	return 0;
}

static void hex(char *out, const unsigned char *id)
{
	int i;

	for (i = 0; i < CO_BLOB_ID_LEN; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
}

/*
 * CO_SCAN_NO_DATA: every record named by its blob id (the version, in
 * bytes) from the tree, not one blob read; co_store_read_blob() then gives
 * the file's bytes by that id, and co_git_blob_id() of those bytes is the
 * id again.
 */
static void scan_without_data_reads_no_blob_and_names_each_by_id(void **state)
{
	fixture *f = *state;
	struct named c;
	co_record *t2 = NULL;
	char h[2 * CO_BLOB_ID_LEN + 1], *text = NULL, *pretty;
	unsigned char again[CO_BLOB_ID_LEN];
	uint64_t reads;
	size_t len = 0, i;

	create_task(f->s, "T1");
	create_task(f->s, "T2");
	create_task(f->s, "T3");
	reads = co_git_store_blobs_read(f->s);
	memset(&c, 0, sizeof(c));
	if (co_store_scan_flags(f->s, CO_SCAN_NO_DATA, scan_names, &c) != 0)
		fail_msg("scan: %s", co_error_last());
	assert_int_equal(co_git_store_blobs_read(f->s), reads);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.with_raw, 0);
	for (i = 0; i < c.n; i++) {
		hex(h, c.blob[i]);
		assert_string_equal(h, c.ver[i]);
	}
	assert_string_equal(c.id[1], "T2");

	if (co_store_read_blob(&text, &len, f->s, c.blob[1]) != 0)
		fail_msg("read_blob: %s", co_error_last());
	assert_int_equal(co_git_store_blobs_read(f->s), reads + 1);
	assert_int_equal(co_store_get(&t2, f->s, CO_KIND_TASK, "T2"), 0);
	pretty = co_record_to_json(t2, 1);
	assert_int_equal(len, strlen(pretty));
	assert_string_equal(text, pretty);
	assert_int_equal(co_git_blob_id(again, text, len), 0);
	assert_memory_equal(again, c.blob[1], CO_BLOB_ID_LEN);
	free(pretty);
	free(text);
	co_record_free(t2);

	/* Without the flag the bytes come too, still with their ids. */
	reads = co_git_store_blobs_read(f->s);
	memset(&c, 0, sizeof(c));
	assert_int_equal(co_store_scan(f->s, scan_names, &c), 0);
	assert_int_equal(c.with_raw, 3);
	assert_int_equal(co_git_store_blobs_read(f->s), reads + 3);
}

static void read_blob_of_an_unknown_id_is_not_found(void **state)
{
	fixture *f = *state;
	unsigned char id[CO_BLOB_ID_LEN];
	char *text = NULL;
	size_t len = 0;

	memset(id, 0x5a, sizeof(id));
	assert_int_equal(co_store_read_blob(&text, &len, f->s, id), CO_ENOTFOUND);
	assert_null(text);
	assert_non_null(strstr(co_error_last(), "5a5a5a"));
}

/* The ids `git hash-object` gives, and the one git gave a stored file. */
static void blob_id_is_what_git_hash_object_gives(void **state)
{
	fixture *f = *state;
	unsigned char id[CO_BLOB_ID_LEN];
	char h[2 * CO_BLOB_ID_LEN + 1], ver[CO_VERSION_MAX], *pretty;
	co_record *t = NULL;

	assert_int_equal(co_git_blob_id(id, "", 0), 0);
	hex(h, id);
	assert_string_equal(h, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
	assert_int_equal(co_git_blob_id(id, "hello\n", 6), 0);
	hex(h, id);
	assert_string_equal(h, "ce013625030ba8dba906f756967f9e9ca394464a");

	create_task(f->s, "T1");
	assert_int_equal(co_store_get_versioned(&t, ver, f->s, CO_KIND_TASK, "T1"), 0);
	pretty = co_record_to_json(t, 1);
	assert_int_equal(co_git_blob_id(id, pretty, strlen(pretty)), 0);
	hex(h, id);
	assert_string_equal(h, ver);
	free(pretty);
	co_record_free(t);
}

/* An empty repository (unborn branch) scans as nothing. */
static void scan_of_an_unborn_branch_passes_nothing(void **state)
{
	fixture *f = *state;
	co_test_scanned c;

	memset(&c, 0, sizeof(c));
	assert_int_equal(co_store_scan(f->s, scan_collect, &c), 0);
	assert_int_equal(c.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(create_get_list_round_trip),
	    T(create_identical_is_ok_different_conflicts),
	    T(missing_record_is_not_found),
	    cmocka_unit_test(open_of_missing_repo_is_unavailable),
	    T(fresh_repo_branch_is_created_by_first_write),
	    T(claim_has_one_winner_under_32_threads),
	    T(concurrent_writers_of_different_files_lose_nothing),
	    T(put_batch_is_one_commit_and_never_goes_backwards),
	    T(watch_sees_commits_without_waiting_for_the_poll),
	    T(racing_batches_keep_the_highest_rev_of_every_id),
	    T(claim_has_one_winner_across_4_processes),
	    T(release_by_non_owner_conflicts),
	    T(claim_with_ttl_expires),
	    T(unwritable_timestamps_are_refused_and_change_nothing),
	    T(written_file_is_pretty_canonical_json),
	    T(fsck_strict_passes_after_many_writes),
	    T(legacy_commit_by_plain_git_is_read),
	    T(malformed_file_is_invalid_naming_path_and_commit),
	    T(watch_reports_put_and_delete_by_another_writer),
	    T(watch_queues_several_changes_of_one_poll),
	    T(every_mutation_is_one_commit_touching_one_file),
	    T(scan_passes_raw_files_of_one_commit),
	    T(scan_of_an_unborn_branch_passes_nothing),
	    T(scan_without_data_reads_no_blob_and_names_each_by_id),
	    T(read_blob_of_an_unknown_id_is_not_found),
	    T(blob_id_is_what_git_hash_object_gives),
	    cmocka_unit_test_setup_teardown(
		remote_store_round_trip_and_one_winner_across_mirrors, remote_setup,
		remote_teardown),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
