/*
 * test_git_index.c - the git store's reads through the head's shared file
 * index (src/store/git_index.c), against real bare repositories: a get
 * sees every new head, whoever moved the branch (this store, another store
 * on the repo, plain git); an entry that is not a file is refused, and a
 * list skips it; and 16
 * readers racing a writer never see a record go backwards and end on the
 * last write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "harness/harness.h"
#include "store/git_store.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
	char repo[256];
	co_store *s;
} fixture;

static int open_store(co_store **out, const char *repo)
{
	co_git_opts o = CO_GIT_OPTS_INIT;

	o.repo = repo;
	o.fsync = 0; /* what is read, not what survives a crash */
	return co_git_store_open(out, &o);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	if (!f || co_test_git_repo_new(f->repo, sizeof(f->repo)) < 0 ||
	    open_store(&f->s, f->repo) < 0) {
		fprintf(stderr, "setup: %s\n", co_error_last());
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	co_store_free(f->s);
	co_test_rmrf(f->repo);
	free(f);
	return 0;
}

/* Put task `id` with `rev` and metadata {"n": rev}. */
static void put_task(co_store *s, const char *id, int64_t rev)
{
	co_record *r = NULL;
	char meta[64];

	assert_int_equal(co_record_new(&r, CO_KIND_TASK, id), 0);
	snprintf(meta, sizeof(meta), "{\"n\":%lld}", (long long)rev);
	assert_int_equal(co_record_set_metadata(r, meta), 0);
	r->rev = rev;
	r->created_at = r->updated_at = 1790000000;
	assert_int_equal(co_store_put(s, r), 0);
	co_record_free(r);
}

static int64_t rev_of(co_store *s, co_kind kind, const char *id)
{
	co_record *r = NULL;
	int64_t rev;
	int rc = co_store_get(&r, s, kind, id);

	if (rc == CO_ENOTFOUND)
		return 0;
	assert_int_equal(rc, 0);
	rev = r->rev;
	co_record_free(r);
	return rev;
}

/* ---- tests ---- */

static void a_get_sees_every_head_whoever_moved_the_branch(void **state)
{
	fixture *f = *state;
	co_store *other = NULL;
	co_record *sw = NULL, *out = NULL;

	/* unborn branch: not found, and nothing cached that says so later */
	assert_int_equal(rev_of(f->s, CO_KIND_TASK, "T1"), 0);
	put_task(f->s, "T1", 1);
	assert_int_equal(rev_of(f->s, CO_KIND_TASK, "T1"), 1);
	/* another store (another process's view) moves the branch */
	assert_int_equal(open_store(&other, f->repo), 0);
	put_task(other, "T1", 2);
	put_task(other, "T2", 1);
	assert_int_equal(rev_of(f->s, CO_KIND_TASK, "T1"), 2);
	assert_int_equal(rev_of(f->s, CO_KIND_TASK, "T2"), 1);
	/* swarms have their own directory in the index */
	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, "T1"), 0);
	sw->rev = 1;
	sw->registered_at = sw->created_at = sw->updated_at = 1790000000;
	assert_int_equal(co_store_put(other, sw), 0);
	assert_int_equal(co_store_get(&out, f->s, CO_KIND_SWARM, "T1"), 0);
	assert_int_equal(out->kind, CO_KIND_SWARM);
	co_record_free(out);
	co_record_free(sw);
	/* a delete by the other store is seen too */
	assert_int_equal(co_store_remove(other, CO_KIND_TASK, "T1"), 0);
	assert_int_equal(rev_of(f->s, CO_KIND_TASK, "T1"), 0);
	assert_int_equal(rev_of(f->s, CO_KIND_TASK, "T2"), 1);
	co_store_free(other);
}

static void a_plain_git_commit_is_seen_and_a_directory_is_not_a_file(void **state)
{
	fixture *f = *state;
	co_record *r = NULL;
	co_record_list l = {0};
	char work[300], *err = NULL;

	put_task(f->s, "T1", 1);
	assert_int_equal(rev_of(f->s, CO_KIND_TASK, "T1"), 1); /* index built */
	assert_int_equal(co_test_tmpdir(work, sizeof(work)), 0);
	assert_int_equal(
	    co_test_sh(NULL, &err,
		       "git clone -q '%s' '%s/w' 2>&1 && cd '%s/w' && "
		       "sed -i 's/\"rev\":[[:space:]]*1,/\"rev\": 7,/' tasks/T1.json && "
		       "mkdir tasks/D.json tasks/T1 && echo x > tasks/D.json/f && "
		       "echo y > tasks/T1/f && git add -A && "
		       "git -c user.name=legacy -c user.email=legacy@example.com "
		       "commit -qm 'legacy edit' && git push -q origin HEAD:main 2>&1",
		       f->repo, work, work),
	    0);
	free(err);
	co_test_rmrf(work);
	assert_int_equal(rev_of(f->s, CO_KIND_TASK, "T1"), 7);
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "D"), CO_EINVAL);
	assert_null(r);
	assert_non_null(strstr(co_error_last(), "tasks/D.json is not a file"));
	/* an ID the index does not hold, beside one it does */
	assert_int_equal(co_store_get(&r, f->s, CO_KIND_TASK, "T0"), CO_ENOTFOUND);
	assert_null(r);
	/* a list skips what is not a record file: the directories D.json and
	 * T1 (which git orders after T1.json, so the index sorts its copy) */
	assert_int_equal(co_store_list(&l, f->s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0]->id, "T1");
	assert_int_equal(l.items[0]->rev, 7);
	co_record_list_clear(&l);
}

#define READERS 16
#define IDS 8
#define ROUNDS 40

struct race {
	co_store *s;
	atomic_int done;
	atomic_int backwards, failed;
	pthread_barrier_t go;
};

static void *reader(void *arg)
{
	struct race *rc = arg;
	int64_t seen[IDS] = {0};
	unsigned i = 0;

	pthread_barrier_wait(&rc->go);
	while (!atomic_load(&rc->done)) {
		char id[16];
		co_record *r = NULL;

		snprintf(id, sizeof(id), "R%u", i % IDS);
		if (co_store_get(&r, rc->s, CO_KIND_TASK, id) != 0) {
			atomic_fetch_add(&rc->failed, 1);
		} else {
			if (r->rev < seen[i % IDS])
				atomic_fetch_add(&rc->backwards, 1);
			seen[i % IDS] = r->rev;
		}
		co_record_free(r);
		co_error_clear();
		i++;
	}
	return NULL;
}

static void sixteen_readers_racing_a_writer_never_go_backwards(void **state)
{
	fixture *f = *state;
	struct race rc = {.s = f->s};
	pthread_t th[READERS];
	char id[16];
	int i, round;

	for (i = 0; i < IDS; i++) {
		snprintf(id, sizeof(id), "R%d", i);
		put_task(f->s, id, 1);
	}
	pthread_barrier_init(&rc.go, NULL, READERS + 1);
	for (i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &rc), 0);
	pthread_barrier_wait(&rc.go);
	for (round = 2; round <= ROUNDS; round++)
		for (i = 0; i < IDS; i++) {
			snprintf(id, sizeof(id), "R%d", i);
			put_task(f->s, id, round);
		}
	atomic_store(&rc.done, 1);
	for (i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&rc.go);
	assert_int_equal(atomic_load(&rc.failed), 0);
	assert_int_equal(atomic_load(&rc.backwards), 0);
	for (i = 0; i < IDS; i++) {
		snprintf(id, sizeof(id), "R%d", i);
		assert_int_equal(rev_of(f->s, CO_KIND_TASK, id), ROUNDS);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		a_get_sees_every_head_whoever_moved_the_branch, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_plain_git_commit_is_seen_and_a_directory_is_not_a_file, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		sixteen_readers_racing_a_writer_never_go_backwards, setup, teardown),
	};

	return cmocka_run_group_tests_name("store/git_index", tests, NULL, NULL);
}
