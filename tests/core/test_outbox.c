/*
 * test_outbox.c - the durable outbox: per-key order, backoff, leases,
 * durability across a crashed process, and many writers in threads and
 * processes at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/error.h"
#include "core/outbox.h"
#include "core/state.h"
#include "harness/harness.h"
#include "harness/state_fixture.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Far enough in the future that every entry is due. */
#define LATER (co_state_now_ms() + 24LL * 3600 * 1000 * 365)

typedef co_test_state_fixture fixture;

static int64_t push(co_state *st, const char *target, const char *id, const char *payload)
{
	int64_t seq = -1;

	assert_int_equal(co_outbox_push(&seq, st, target, "task", id, payload), 0);
	assert_true(seq > 0);
	return seq;
}

static void push_round_trips_every_field_and_counts_depth_by_target(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t before = co_state_now_ms(), s1, s2, s3, depth = -1;

	s1 = push(f->st, "etcd", "T1", "{\"id\":\"T1\"}");
	s2 = push(f->st, "git", "T1", NULL); /* a delete */
	assert_int_equal(co_outbox_push(&s3, f->st, "git", "swarm", "S1", "{}"), 0);
	assert_true(s1 < s2 && s2 < s3);

	assert_int_equal(co_outbox_depth(&depth, f->st, NULL), 0);
	assert_int_equal(depth, 3);
	assert_int_equal(co_outbox_depth(&depth, f->st, "git"), 0);
	assert_int_equal(depth, 2);
	assert_int_equal(co_outbox_depth(&depth, f->st, "etcd"), 0);
	assert_int_equal(depth, 1);

	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "T1"), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0]->seq, s2);
	assert_string_equal(l.items[0]->target, "git");
	assert_string_equal(l.items[0]->kind, "task");
	assert_string_equal(l.items[0]->id, "T1");
	assert_null(l.items[0]->payload);
	assert_int_equal(l.items[0]->attempts, 0);
	assert_null(l.items[0]->last_error);
	assert_true(l.items[0]->created_at >= before);
	assert_true(l.items[0]->next_attempt_at == l.items[0]->created_at);

	/* pending_for appends. */
	assert_int_equal(co_outbox_pending_for(&l, f->st, "etcd", "task", "T1"), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[1]->payload, "{\"id\":\"T1\"}");
	co_outbox_list_clear(&l);
	co_outbox_list_clear(&l);
}

static void next_batch_gives_only_the_oldest_entry_of_each_key(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t a1, b2, a3, now;

	a1 = push(f->st, "etcd", "A", "{\"v\":1}");
	b2 = push(f->st, "etcd", "B", "{\"v\":2}");
	a3 = push(f->st, "etcd", "A", "{\"v\":3}");
	now = LATER;

	assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 100, now), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.items[0]->seq, a1);
	assert_int_equal(l.items[1]->seq, b2);
	co_outbox_list_clear(&l);

	/* Acking B does not release A's second entry ... */
	assert_int_equal(co_outbox_ack(f->st, b2), 0);
	assert_int_equal(co_outbox_next_batch(&l, f->st, "etcd", 100, now), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0]->seq, a1);
	co_outbox_list_clear(&l);

	/* ... acking A's first does. */
	assert_int_equal(co_outbox_ack(f->st, a1), 0);
	assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 100, now), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0]->seq, a3);
	assert_string_equal(l.items[0]->payload, "{\"v\":3}");
	co_outbox_list_clear(&l);
}

static void targets_of_one_id_are_separate_keys(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t g, e;

	g = push(f->st, "git", "X", "{\"g\":1}");
	e = push(f->st, "etcd", "X", "{\"e\":1}");
	assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 10, LATER), 0);
	assert_int_equal(l.n, 2);
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_next_batch(&l, f->st, "git", 10, LATER), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0]->seq, g);
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_next_batch(&l, f->st, "etcd", 10, LATER), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0]->seq, e);
	co_outbox_list_clear(&l);
}

static void next_batch_honours_max_oldest_first(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t first = 0, seq;
	char id[16];
	int i;

	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "K%d", i);
		seq = push(f->st, "etcd", id, "{}");
		if (i == 0)
			first = seq;
	}
	assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 3, LATER), 0);
	assert_int_equal(l.n, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(l.items[i]->seq, first + i);
	co_outbox_list_clear(&l);
	assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 0, LATER), 0);
	assert_int_equal(l.n, 0);
	co_outbox_list_clear(&l);
}

static void failed_head_is_postponed_with_doubling_backoff_and_blocks_its_key(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t a1, b, t0, t1, t2, t3;

	a1 = push(f->st, "etcd", "A", "{\"v\":1}");
	push(f->st, "etcd", "A", "{\"v\":2}");
	b = push(f->st, "etcd", "B", "{}");

	t0 = co_state_now_ms();
	assert_int_equal(co_outbox_fail(f->st, a1, "etcd: connection refused", 1000), 0);
	t1 = co_state_now_ms();

	/* Not due before its backoff: A contributes nothing, not even A2. */
	assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 10, t0 + 999), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.items[0]->seq, b);
	co_outbox_list_clear(&l);

	assert_int_equal(co_outbox_pending_for(&l, f->st, "etcd", "task", "A"), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.items[0]->attempts, 1);
	assert_string_equal(l.items[0]->last_error, "etcd: connection refused");
	assert_true(l.items[0]->next_attempt_at >= t0 + 1000);
	assert_true(l.items[0]->next_attempt_at <= t1 + 1000);
	co_outbox_list_clear(&l);

	/* Due after it: A's head comes back (and still only the head). */
	assert_int_equal(co_outbox_next_batch(&l, f->st, "etcd", 10, t1 + 1000), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.items[0]->seq, a1);
	co_outbox_list_clear(&l);

	/* Second failure: twice the delay. */
	t2 = co_state_now_ms();
	assert_int_equal(co_outbox_fail(f->st, a1, "timeout", 1000), 0);
	t3 = co_state_now_ms();
	assert_int_equal(co_outbox_pending_for(&l, f->st, "etcd", "task", "A"), 0);
	assert_int_equal(l.items[0]->attempts, 2);
	assert_string_equal(l.items[0]->last_error, "timeout");
	assert_true(l.items[0]->next_attempt_at >= t2 + 2000);
	assert_true(l.items[0]->next_attempt_at <= t3 + 2000);
	co_outbox_list_clear(&l);
}

static void backoff_is_capped(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t a, t;
	int i;

	a = push(f->st, "git", "A", "{}");
	for (i = 0; i < 40; i++)
		assert_int_equal(co_outbox_fail(f->st, a, NULL, 1000), 0);
	t = co_state_now_ms();
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "A"), 0);
	assert_int_equal(l.items[0]->attempts, 40);
	assert_null(l.items[0]->last_error);
	assert_true(l.items[0]->next_attempt_at <= t + CO_OUTBOX_BACKOFF_MAX_MS);
	assert_true(l.items[0]->next_attempt_at > t + CO_OUTBOX_BACKOFF_MAX_MS - 1000);
	co_outbox_list_clear(&l);
}

static void lease_hides_entries_from_other_drainers_until_it_ends(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t now;

	push(f->st, "etcd", "A", "{}");
	push(f->st, "etcd", "B", "{}");
	now = co_state_now_ms(); /* after the pushes: both are due */
	assert_int_equal(co_outbox_lease_batch(&l, f->st, "etcd", 10, now, 30000), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.items[0]->next_attempt_at, now + 30000);
	co_outbox_list_clear(&l);

	assert_int_equal(co_outbox_lease_batch(&l, f->st, NULL, 10, now, 30000), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 10, now + 29999), 0);
	assert_int_equal(l.n, 0);
	/* Serving an ID still sees leased entries. */
	assert_int_equal(co_outbox_pending_for(&l, f->st, "etcd", "task", "A"), 0);
	assert_int_equal(l.n, 1);
	co_outbox_list_clear(&l);
	/* The holder died: the entries are due again when the lease ends. */
	assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 10, now + 30000), 0);
	assert_int_equal(l.n, 2);
	co_outbox_list_clear(&l);
}

static void has_pending_sees_either_target_until_acked(void **state)
{
	fixture *f = *state;
	int64_t g, e;

	assert_int_equal(co_outbox_has_pending(f->st, "task", "T"), 0);
	g = push(f->st, "git", "T", "{}");
	e = push(f->st, "etcd", "T", "{}");
	assert_int_equal(co_outbox_has_pending(f->st, "task", "T"), 1);
	assert_int_equal(co_outbox_has_pending(f->st, "swarm", "T"), 0);
	assert_int_equal(co_outbox_ack(f->st, g), 0);
	assert_int_equal(co_outbox_has_pending(f->st, "task", "T"), 1);
	assert_int_equal(co_outbox_ack(f->st, e), 0);
	assert_int_equal(co_outbox_has_pending(f->st, "task", "T"), 0);
	/* Acking twice is not an error: another drainer may have. */
	assert_int_equal(co_outbox_ack(f->st, e), 0);
}

static void seq_is_never_reused_after_ack(void **state)
{
	fixture *f = *state;
	int64_t a, b;

	a = push(f->st, "etcd", "A", "{}");
	assert_int_equal(co_outbox_ack(f->st, a), 0);
	co_state_close(f->st);
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	b = push(f->st, "etcd", "A", "{}");
	assert_true(b > a);
}

static void bad_arguments_are_refused(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t depth = 0;

	assert_int_equal(co_outbox_push(NULL, f->st, "svn", "task", "A", "{}"), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "svn"));
	assert_int_equal(co_outbox_push(NULL, f->st, NULL, "task", "A", "{}"), CO_EINVAL);
	assert_int_equal(co_outbox_push(NULL, f->st, "git", "bug", "A", "{}"), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "bug"));
	assert_int_equal(co_outbox_push(NULL, f->st, "git", "task", "../x", "{}"), CO_EINVAL);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", ""), CO_EINVAL);
	assert_int_equal(co_outbox_next_batch(&l, f->st, "svn", 1, 0), CO_EINVAL);
	assert_int_equal(co_outbox_depth(&depth, f->st, "svn"), CO_EINVAL);
	assert_int_equal(co_outbox_has_pending(f->st, "task", "a/b"), CO_EINVAL);
	assert_int_equal(co_outbox_fail(f->st, 12345, "x", 10), CO_ENOTFOUND);
	assert_non_null(strstr(co_error_last(), "12345"));
	assert_int_equal(co_outbox_fail(f->st, 1, "x", -1), CO_EINVAL);
	assert_int_equal(co_outbox_lease_batch(&l, f->st, NULL, 1, 0, -5), CO_EINVAL);
	assert_int_equal(co_outbox_depth(&depth, f->st, NULL), 0);
	assert_int_equal(depth, 0);
	assert_int_equal(l.n, 0);
}

static void entry_pushed_by_a_process_that_exits_without_closing_survives(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int status = 0;
	pid_t pid;

	/* SQLite connections must not cross fork(): close ours first. */
	co_state_close(f->st);
	f->st = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		co_state *st = NULL;

		if (co_state_open(&st, f->dir) < 0 ||
		    co_outbox_push(NULL, st, "git", "task", "CRASH", "{\"n\":1}") < 0)
			_exit(1);
		_exit(0); /* no close, no atexit, no flush */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "git", "task", "CRASH"), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0]->payload, "{\"n\":1}");
	co_outbox_list_clear(&l);
}

static void process_killed_mid_pushes_loses_no_acknowledged_entry(void **state)
{
	fixture *f = *state;
	co_outbox_list l = {0};
	int64_t acked[4096], seq;
	size_t n = 0, i, j;
	int fds[2], status;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	co_state_close(f->st);
	f->st = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		co_state *st = NULL;

		close(fds[0]);
		if (co_state_open(&st, f->dir) < 0)
			_exit(1);
		/* Report each seq only once push returned: "acknowledged". */
		for (;;) {
			if (co_outbox_push(&seq, st, "etcd", "task", "K", "{}") < 0)
				_exit(1);
			if (write(fds[1], &seq, sizeof(seq)) != (ssize_t)sizeof(seq))
				_exit(1);
		}
	}
	close(fds[1]);
	while (n < 200 && read(fds[0], &acked[n], sizeof(seq)) == (ssize_t)sizeof(seq))
		n++;
	kill(pid, SIGKILL);
	while (n < sizeof(acked) / sizeof(acked[0]) &&
	       read(fds[0], &acked[n], sizeof(seq)) == (ssize_t)sizeof(seq))
		n++;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_true(n >= 200);

	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	assert_int_equal(co_outbox_pending_for(&l, f->st, "etcd", "task", "K"), 0);
	assert_true(l.n >= n);
	for (i = 0, j = 0; i < n; i++) {
		while (j < l.n && l.items[j]->seq < acked[i])
			j++;
		assert_true(j < l.n);
		assert_int_equal(l.items[j]->seq, acked[i]);
	}
	co_outbox_list_clear(&l);
}

/* ---- many writers ---- */

#define WRITERS_THREADS 8
#define WRITERS_PROCS 4
#define PER_WRITER 500
#define NKEYS 10

typedef struct writer {
	co_state *st;
	int w;
	int rc;
} writer;

/* Writer w pushes PER_WRITER entries round-robin over NKEYS keys; each
 * payload says who wrote it and its position in that writer's stream. */
static int write_stream(co_state *st, int w)
{
	char id[16], payload[64];
	int n, rc;

	for (n = 0; n < PER_WRITER; n++) {
		snprintf(id, sizeof(id), "k%d", (n + w) % NKEYS);
		snprintf(payload, sizeof(payload), "{\"n\":%d,\"w\":%d}", n, w);
		if ((rc = co_outbox_push(NULL, st, "etcd", "task", id, payload)) < 0)
			return rc;
	}
	return 0;
}

static void *writer_thread(void *arg)
{
	writer *wr = arg;

	wr->rc = write_stream(wr->st, wr->w);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void eight_threads_and_four_processes_push_exactly_once_in_order(void **state)
{
	fixture *f = *state;
	const int total = (WRITERS_THREADS + WRITERS_PROCS) * PER_WRITER;
	pid_t pids[WRITERS_PROCS];
	pthread_t threads[WRITERS_THREADS];
	writer wr[WRITERS_THREADS];
	co_outbox_list l = {0};
	int64_t *seqs, depth = -1;
	int last_n[WRITERS_THREADS + WRITERS_PROCS];
	size_t next[NKEYS], drained = 0, nseq = 0, i;
	co_outbox_list keys[NKEYS];
	char id[16];
	int k, status;

	/* Children first (no thread may run across fork, no connection may
	 * cross it), each with its own connection; the threads share one
	 * co_state, opened while the children open theirs. */
	co_state_close(f->st);
	f->st = NULL;
	for (k = 0; k < WRITERS_PROCS; k++) {
		pids[k] = fork();
		assert_true(pids[k] >= 0);
		if (pids[k] == 0) {
			co_state *st = NULL;
			int rc = co_state_open(&st, f->dir);

			if (rc == 0)
				rc = write_stream(st, WRITERS_THREADS + k);
			if (rc < 0)
				fprintf(stderr, "writer process %d: %s\n", k, co_error_last());
			_exit(rc < 0 ? 1 : 0);
		}
	}
	assert_int_equal(co_state_open(&f->st, f->dir), 0);
	for (k = 0; k < WRITERS_THREADS; k++) {
		wr[k].st = f->st;
		wr[k].w = k;
		wr[k].rc = -100;
		assert_int_equal(pthread_create(&threads[k], NULL, writer_thread, &wr[k]), 0);
	}
	for (k = 0; k < WRITERS_THREADS; k++) {
		pthread_join(threads[k], NULL);
		assert_int_equal(wr[k].rc, 0);
	}
	for (k = 0; k < WRITERS_PROCS; k++) {
		assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}

	/* Depth exact. */
	assert_int_equal(co_outbox_depth(&depth, f->st, NULL), 0);
	assert_int_equal(depth, total);

	/* Each key's entries, in seq order, keep every writer's own order;
	 * seqs are unique overall. */
	assert_non_null(seqs = malloc(sizeof(*seqs) * (size_t)total));
	for (k = 0; k < NKEYS; k++) {
		memset(&keys[k], 0, sizeof(keys[k]));
		snprintf(id, sizeof(id), "k%d", k);
		assert_int_equal(co_outbox_pending_for(&keys[k], f->st, "etcd", "task", id), 0);
		for (i = 0; i < (size_t)(WRITERS_THREADS + WRITERS_PROCS); i++)
			last_n[i] = -1;
		for (i = 0; i < keys[k].n; i++) {
			int w = -1, n = -1;

			assert_int_equal(sscanf(keys[k].items[i]->payload, "{\"n\":%d,\"w\":%d}",
						&n, &w),
					 2);
			assert_true(w >= 0 && w < WRITERS_THREADS + WRITERS_PROCS);
			assert_true(n > last_n[w]);
			last_n[w] = n;
			if (i > 0)
				assert_true(keys[k].items[i]->seq > keys[k].items[i - 1]->seq);
			seqs[nseq++] = keys[k].items[i]->seq;
		}
		next[k] = 0;
	}
	assert_int_equal(nseq, (size_t)total);
	qsort(seqs, nseq, sizeof(*seqs), cmp_i64);
	for (i = 1; i < nseq; i++)
		assert_true(seqs[i] != seqs[i - 1]);
	free(seqs);

	/* Draining hands out each key's entries strictly in order: every
	 * entry of a batch is the current head of its key. */
	for (;;) {
		assert_int_equal(co_outbox_next_batch(&l, f->st, NULL, 64, LATER), 0);
		if (l.n == 0)
			break;
		for (i = 0; i < l.n; i++) {
			k = atoi(l.items[i]->id + 1);
			assert_true(next[k] < keys[k].n);
			assert_int_equal(l.items[i]->seq, keys[k].items[next[k]]->seq);
			next[k]++;
			assert_int_equal(co_outbox_ack(f->st, l.items[i]->seq), 0);
			drained++;
		}
		co_outbox_list_clear(&l);
	}
	co_outbox_list_clear(&l);
	assert_int_equal(drained, (size_t)total);
	for (k = 0; k < NKEYS; k++)
		co_outbox_list_clear(&keys[k]);
	assert_int_equal(co_outbox_depth(&depth, f->st, NULL), 0);
	assert_int_equal(depth, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		push_round_trips_every_field_and_counts_depth_by_target,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		next_batch_gives_only_the_oldest_entry_of_each_key, co_test_state_setup,
		co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(targets_of_one_id_are_separate_keys,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(next_batch_honours_max_oldest_first,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		failed_head_is_postponed_with_doubling_backoff_and_blocks_its_key,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(backoff_is_capped, co_test_state_setup,
					    co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		lease_hides_entries_from_other_drainers_until_it_ends,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(has_pending_sees_either_target_until_acked,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(seq_is_never_reused_after_ack,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(bad_arguments_are_refused,
					    co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		entry_pushed_by_a_process_that_exits_without_closing_survives,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		process_killed_mid_pushes_loses_no_acknowledged_entry,
		co_test_state_setup, co_test_state_teardown),
	    cmocka_unit_test_setup_teardown(
		eight_threads_and_four_processes_push_exactly_once_in_order,
		co_test_state_setup, co_test_state_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
