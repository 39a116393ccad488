/*
 * test_etcd_cache.c - one-round-trip writes on etcd (issue 15 point 1) and
 * the watch's stall detector (issue 16), against real etcd (harness).
 *
 * The etcd store keeps a record cache fed by a watch; a write sends one
 * txn comparing the cached mod_revision, and a lost compare reads the key
 * back in the same txn.  Shown here: a warm cache makes a claim, a release
 * and a swarm register one gateway round trip each (the store counts them)
 * and a cache that is off makes a claim two; a deliberately stale cache
 * (its watch's events dropped) never gives two winners, 32 stores racing
 * for one task round after round; the cache's watch resumes after etcd
 * compacted the revision it would have resumed from, and the cache is
 * right afterwards; a frozen (SIGSTOPped) member's silent watch is torn
 * down, the cache stops trusting it, and it recovers after the thaw or,
 * on a 3-member cluster, through another member.
 *
 * No timing assertions: conditions are polled under a bound.
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
#include "harness/cluster.h"
#include "harness/harness.h"
#include "store/etcd_store.h"
#include "store/etcd_store_internal.h"
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A store on eps under prefix; cache: 0 default (on), -1 off. */
static co_store *open_on(const char *const *eps, size_t n, const char *prefix, long cache,
			 int idle_ms)
{
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;

	o.endpoints = eps;
	o.n_endpoints = n;
	o.prefix = prefix;
	o.connect_timeout_ms = 500;
	o.request_timeout_ms = 2000;
	o.cache_entries = cache;
	o.watch_idle_ms = idle_ms;
	if (co_etcd_store_open(&s, &o) != 0)
		fail_msg("open: %s", co_error_last());
	co_etcd_store_cache_start(s);
	return s;
}

static co_store *open_store(const char *prefix, long cache)
{
	const char *eps[] = {co_test_group_etcd.endpoint};

	return open_on(eps, 1, prefix, cache, 0);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
	struct timespec ts = {0, 5 * 1000000L};

	nanosleep(&ts, NULL);
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
}

/* The mod_revision etcd holds for task id (0: absent). */
static int64_t version_of(co_store *s, const char *id)
{
	char ver[CO_VERSION_MAX];
	co_record *r = NULL;
	int rc = co_store_get_versioned(&r, ver, s, CO_KIND_TASK, id);

	co_record_free(r);
	if (rc == CO_ENOTFOUND)
		return 0;
	if (rc != 0)
		fail_msg("get %s: %s", id, co_error_last());
	return strtoll(ver, NULL, 10);
}

/* Wait (bounded) until s's cache is live and holds task id at mod. */
static int cache_reaches(co_store *s, const char *id, int64_t mod, int bound_ms)
{
	int64_t until = mono_ms() + bound_ms;
	co_etcd_cache_stats st;

	for (;;) {
		co_etcd_store_cache_stats(&st, s);
		if (st.live && co_etcd__cache_peek(s, CO_KIND_TASK, id, NULL) == mod)
			return 1;
		if (mono_ms() > until)
			return 0;
		nap();
	}
}

static void claim_ok(co_store *s, const char *id, const char *swarm)
{
	co_record *out = NULL;

	if (co_store_claim(&out, s, id, swarm, 0) != 0)
		fail_msg("claim %s by %s: %s", id, swarm, co_error_last());
	co_record_free(out);
}

static void release_ok(co_store *s, const char *id, const char *swarm)
{
	co_record *out = NULL;

	if (co_store_release(&out, s, id, swarm, CO_STATUS_AVAILABLE) != 0)
		fail_msg("release %s by %s: %s", id, swarm, co_error_last());
	co_record_free(out);
}

/* ---- round trips ---- */

static void warm_cache_writes_cost_one_round_trip_and_no_cache_two(void **state)
{
	co_store *s = open_store("/t-rtt/", 0), *off = open_store("/t-rtt/", -1);
	co_record *sw = NULL, *out = NULL;
	uint64_t n;

	(void)state;
	/* create-if-absent: one txn, whatever the cache knows */
	n = co_etcd_store_round_trips(s);
	create(s, "A");
	assert_int_equal(co_etcd_store_round_trips(s) - n, 1);
	assert_true(cache_reaches(s, "A", version_of(off, "A"), 10000));

	n = co_etcd_store_round_trips(s);
	claim_ok(s, "A", "swarm-a");
	assert_int_equal(co_etcd_store_round_trips(s) - n, 1);
	n = co_etcd_store_round_trips(s);
	release_ok(s, "A", "swarm-a");
	assert_int_equal(co_etcd_store_round_trips(s) - n, 1);

	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, "swarm-a"), 0);
	n = co_etcd_store_round_trips(s);
	assert_int_equal(co_store_swarm_register(&out, s, sw), 0);
	co_record_free(out);
	assert_int_equal(co_etcd_store_round_trips(s) - n, 1);
	co_record_free(sw);

	/* A cache another writer made stale: the failed txn reads the key
	 * back, the second txn wins: two round trips, no read. */
	assert_true(cache_reaches(s, "A", version_of(off, "A"), 10000));
	co_etcd__cache_hold(s, 1);
	claim_ok(off, "A", "swarm-b");
	release_ok(off, "A", "swarm-b");
	n = co_etcd_store_round_trips(s);
	claim_ok(s, "A", "swarm-a");
	assert_int_equal(co_etcd_store_round_trips(s) - n, 2);
	co_etcd__cache_hold(s, 0);

	/* The cache off: read, then txn, as before. */
	release_ok(off, "A", "swarm-a");
	n = co_etcd_store_round_trips(off);
	claim_ok(off, "A", "swarm-c");
	assert_int_equal(co_etcd_store_round_trips(off) - n, 2);
	{
		co_etcd_cache_stats st;

		co_etcd_store_cache_stats(&st, off);
		assert_int_equal(st.enabled, 0);
		co_etcd_store_cache_stats(&st, s);
		assert_int_equal(st.enabled, 1);
		assert_true(st.hits >= 3);
	}
	co_store_free(off);
	co_store_free(s);
}

/* A conflict seen in the cache is never the answer: etcd is asked. */
/* What etcdctl finds at key ("" when absent); the caller frees. */
static char *etcdctl_value(const char *key)
{
	char *out = NULL;

	if (co_test_sh(&out, NULL,
		       "ETCDCTL_API=3 etcdctl --endpoints=%s get --print-value-only %s",
		       co_test_group_etcd.endpoint, key) != 0)
		fail_msg("etcdctl get %s failed", key);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

/* Another writer leaves a claims key for task id under /t-lean/. */
static void put_stray_claims_key(const char *id)
{
	assert_int_equal(co_test_sh(NULL, NULL,
				    "ETCDCTL_API=3 etcdctl --endpoints=%s put "
				    "/t-lean/claims/%s stranger >/dev/null",
				    co_test_group_etcd.endpoint, id),
			 0);
}

/* The claims key of task id under /t-lean/ is gone. */
static void assert_no_claims_key(const char *id)
{
	char key[64], *v;

	snprintf(key, sizeof(key), "/t-lean/claims/%s", id);
	v = etcdctl_value(key);
	assert_string_equal(v, "");
	free(v);
}

/*
 * A write of a task whose record held no leased claim leaves the claims
 * key's range and delete out of its txn and compares instead that the key
 * is absent.  A claims key put there by another writer fails that compare:
 * the write is sent again in full (one more round trip), the key goes, and
 * the write is made once.
 */
static void a_claims_key_left_by_another_writer_still_goes(void **state)
{
	co_store *s = open_store("/t-lean/", 0), *off = open_store("/t-lean/", -1);
	uint64_t n;

	(void)state;
	create(s, "F");
	assert_true(cache_reaches(s, "F", version_of(off, "F"), 10000));
	n = co_etcd_store_round_trips(s);
	claim_ok(s, "F", "swarm-a");
	assert_int_equal(co_etcd_store_round_trips(s) - n, 1);
	assert_true(cache_reaches(s, "F", version_of(off, "F"), 10000));

	put_stray_claims_key("F");
	n = co_etcd_store_round_trips(s);
	release_ok(s, "F", "swarm-a");
	assert_int_equal(co_etcd_store_round_trips(s) - n, 2);
	assert_no_claims_key("F");
	{
		co_record *r = NULL;

		assert_int_equal(co_store_get(&r, off, CO_KIND_TASK, "F"), 0);
		assert_int_equal(r->status, CO_STATUS_AVAILABLE);
		assert_int_equal(r->rev, 3); /* created, claimed, released: once each */
		co_record_free(r);
	}

	/* The same for a create over a stray claims key. */
	put_stray_claims_key("G");
	n = co_etcd_store_round_trips(s);
	create(s, "G");
	assert_int_equal(co_etcd_store_round_trips(s) - n, 2);
	assert_no_claims_key("G");
	co_store_free(off);
	co_store_free(s);
}

static void a_stale_claimed_entry_does_not_refuse_a_claim(void **state)
{
	co_store *s = open_store("/t-stale1/", 0), *off = open_store("/t-stale1/", -1);
	co_record *out = NULL;

	(void)state;
	create(off, "B");
	claim_ok(off, "B", "swarm-x");
	assert_true(cache_reaches(s, "B", version_of(off, "B"), 10000));
	co_etcd__cache_hold(s, 1);
	release_ok(off, "B", "swarm-x");
	/* the cache still says "claimed by swarm-x" */
	assert_int_equal(co_store_claim(&out, s, "B", "swarm-y", 0), 0);
	assert_string_equal(out->owner, "swarm-y");
	co_record_free(out);
	co_etcd__cache_hold(s, 0);
	co_store_free(off);
	co_store_free(s);
}

/* CUTOVER_ETCD_CACHE: "off" turns the cache off; a bad value is refused
 * naming it, and no store is opened. */
static void the_cache_knob_is_read_from_the_environment(void **state)
{
	const char *eps[] = {co_test_group_etcd.endpoint};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_etcd_cache_stats st;
	co_store *s = NULL;

	(void)state;
	o.endpoints = eps;
	o.n_endpoints = 1;
	setenv("CUTOVER_ETCD_CACHE", "off", 1);
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	co_etcd_store_cache_stats(&st, s);
	assert_int_equal(st.enabled, 0);
	co_store_free(s);
	s = NULL;
	setenv("CUTOVER_ETCD_CACHE", "123", 1);
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	co_etcd_store_cache_stats(&st, s);
	assert_int_equal(st.enabled, 1);
	assert_int_equal(st.capacity, 123);
	co_store_free(s);
	s = NULL;
	setenv("CUTOVER_ETCD_CACHE", "lots", 1);
	assert_int_equal(co_etcd_store_open(&s, &o), CO_EINVAL);
	assert_null(s);
	assert_non_null(strstr(co_error_last(), "CUTOVER_ETCD_CACHE=\"lots\""));
	unsetenv("CUTOVER_ETCD_CACHE");
}

/* ---- exactly one winner with stale caches ---- */

#define RACERS 32

struct race {
	co_store *s[RACERS];
	pthread_barrier_t go, done;
	char id[32];
	int quit;
	int rc[RACERS];
	char owner[RACERS][32];
};

struct racer {
	struct race *r;
	int i;
};

static void *racer_main(void *arg)
{
	struct racer *me = arg;
	struct race *r = me->r;
	char swarm[32];

	snprintf(swarm, sizeof(swarm), "swarm-%d", me->i);
	for (;;) {
		co_record *out = NULL;

		pthread_barrier_wait(&r->go);
		if (r->quit)
			break;
		r->rc[me->i] = co_store_claim(&out, r->s[me->i], r->id, swarm, 0);
		snprintf(r->owner[me->i], sizeof(r->owner[me->i]), "%s",
			 out && out->owner ? out->owner : "");
		co_record_free(out);
		pthread_barrier_wait(&r->done);
	}
	return NULL;
}

static int rounds(void)
{
	const char *env = getenv("CUTOVER_STALE_ROUNDS");

	return env && atoi(env) > 0 ? atoi(env) : 1000;
}

/*
 * 32 stores, each with its own cache; per round one task, and every cache
 * made stale before the race: even rounds they hold "available" at an old
 * mod_revision (the compare fails, the decision is made again from the
 * failure branch), odd rounds "claimed by swarm-x" while it is available
 * (the refusal must not be the answer).  Exactly one winner, every loser
 * told the winner's name, etcd holds the winner.
 */
static void stale_caches_give_exactly_one_winner(void **state)
{
	static struct race r;
	struct racer rs[RACERS];
	pthread_t th[RACERS];
	co_store *ctl = open_store("/t-stale/", -1);
	int i, round, n = rounds();

	(void)state;
	memset(&r, 0, sizeof(r));
	for (i = 0; i < RACERS; i++)
		r.s[i] = open_store("/t-stale/", 0);
	pthread_barrier_init(&r.go, NULL, RACERS + 1);
	pthread_barrier_init(&r.done, NULL, RACERS + 1);
	for (i = 0; i < RACERS; i++) {
		rs[i] = (struct racer){&r, i};
		assert_int_equal(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
	}
	for (round = 0; round < n; round++) {
		int winners = 0, losers = 0, winner = -1;
		uint64_t rtt[RACERS], hits[RACERS];
		co_etcd_cache_stats st;
		int64_t mod;
		co_record *now = NULL;

		snprintf(r.id, sizeof(r.id), "S%05d", round);
		create(ctl, r.id);
		if (round % 2)
			claim_ok(ctl, r.id, "swarm-x");
		mod = version_of(ctl, r.id);
		for (i = 0; i < RACERS; i++) {
			if (!cache_reaches(r.s[i], r.id, mod, 20000))
				fail_msg("round %d: cache %d never saw %s", round, i,
					 r.id);
			co_etcd__cache_hold(r.s[i], 1);
		}
		if (round % 2 == 0)
			claim_ok(ctl, r.id, "swarm-x");
		release_ok(ctl, r.id, "swarm-x");
		for (i = 0; i < RACERS; i++) {
			rtt[i] = co_etcd_store_round_trips(r.s[i]);
			co_etcd_store_cache_stats(&st, r.s[i]);
			hits[i] = st.hits;
		}
		pthread_barrier_wait(&r.go);
		pthread_barrier_wait(&r.done);
		for (i = 0; i < RACERS; i++) {
			rtt[i] = co_etcd_store_round_trips(r.s[i]) - rtt[i];
			co_etcd_store_cache_stats(&st, r.s[i]);
			/* each racer decided first from its (stale) entry */
			if (st.hits - hits[i] != 1)
				fail_msg("round %d: racer %d: %llu cache hits, not 1",
					 round, i,
					 (unsigned long long)(st.hits - hits[i]));
		}
		for (i = 0; i < RACERS; i++) {
			if (r.rc[i] == 0) {
				winners++;
				winner = i;
			} else if (r.rc[i] == CO_ECONFLICT) {
				losers++;
			}
			co_etcd__cache_hold(r.s[i], 0);
		}
		if (winners != 1 || losers != RACERS - 1)
			fail_msg("round %d: %d winners, %d losers", round, winners,
				 losers);
		/*
		 * The stale guess was used: the winner's first round trip was
		 * lost (even: a txn on the stale mod_revision; odd: the read a
		 * refusal from the guess calls for), its second won.  A loser
		 * needs one or two (its failed txn read back the winner's
		 * claim, or the still available task first), never more.
		 */
		if (rtt[winner] != 2)
			fail_msg("round %d: the winner took %llu round trips, not 2",
				 round, (unsigned long long)rtt[winner]);
		for (i = 0; i < RACERS; i++)
			if (rtt[i] < 1 || rtt[i] > 2)
				fail_msg("round %d: racer %d took %llu round trips",
					 round, i, (unsigned long long)rtt[i]);
		for (i = 0; i < RACERS; i++)
			assert_string_equal(r.owner[i], r.owner[winner]);
		assert_int_equal(co_store_get(&now, ctl, CO_KIND_TASK, r.id), 0);
		assert_string_equal(now->owner, r.owner[winner]);
		co_record_free(now);
	}
	printf("stale-cache race: %d rounds, %d stores, one winner each\n", n, RACERS);
	r.quit = 1;
	pthread_barrier_wait(&r.go);
	for (i = 0; i < RACERS; i++) {
		pthread_join(th[i], NULL);
		co_store_free(r.s[i]);
	}
	pthread_barrier_destroy(&r.go);
	pthread_barrier_destroy(&r.done);
	co_store_free(ctl);
}

/* ---- compaction ---- */

static void watch_resumes_after_compaction_and_cache_is_right(void **state)
{
	co_store *s = open_store("/t-compact/", 0), *off = open_store("/t-compact/", -1);
	co_etcd_cache_stats st;
	char *owner = NULL;
	int64_t until;
	uint64_t resyncs, n;

	(void)state;
	create(s, "C1");
	create(s, "C2");
	assert_true(cache_reaches(s, "C2", version_of(off, "C2"), 10000));
	co_etcd_store_cache_stats(&st, s);
	resyncs = st.resyncs;

	/* While the cache's watch is down: changes, then a compaction past
	 * the revision it would resume from. */
	co_etcd__cache_pause(s, 1);
	claim_ok(off, "C1", "swarm-y");
	assert_int_equal(co_store_remove(off, CO_KIND_TASK, "C2"), 0);
	create(off, "C3");
	assert_int_equal(co_test_sh(NULL, NULL,
				    "ETCDCTL_API=3 etcdctl --endpoints=%s compact %lld "
				    ">/dev/null",
				    co_test_group_etcd.endpoint,
				    (long long)version_of(off, "C3")),
			 0);
	co_etcd__cache_pause(s, 0);

	until = mono_ms() + 20000;
	do {
		co_etcd_store_cache_stats(&st, s);
		if (st.resyncs > resyncs && st.live)
			break;
		nap();
	} while (mono_ms() < until);
	assert_true(st.resyncs > resyncs);
	assert_true(st.live);
	assert_int_equal(co_etcd__cache_peek(s, CO_KIND_TASK, "C1", &owner),
			 version_of(off, "C1"));
	assert_string_equal(owner, "swarm-y");
	free(owner);
	assert_int_equal(co_etcd__cache_peek(s, CO_KIND_TASK, "C2", NULL), 0);
	assert_int_equal(co_etcd__cache_peek(s, CO_KIND_TASK, "C3", NULL),
			 version_of(off, "C3"));
	/* and it serves one-round-trip claims again */
	n = co_etcd_store_round_trips(s);
	claim_ok(s, "C3", "swarm-z");
	assert_int_equal(co_etcd_store_round_trips(s) - n, 1);
	/* events after the resync are followed */
	release_ok(off, "C3", "swarm-z");
	assert_true(cache_reaches(s, "C3", version_of(off, "C3"), 10000));
	co_store_free(off);
	co_store_free(s);
}

/* ---- stalls ---- */

static int wait_live(co_store *s, int want, int bound_ms)
{
	int64_t until = mono_ms() + bound_ms;
	co_etcd_cache_stats st;

	for (;;) {
		co_etcd_store_cache_stats(&st, s);
		if (st.live == want)
			return 1;
		if (mono_ms() > until)
			return 0;
		nap();
	}
}

/* One member, SIGSTOPped: the watch is found stalled, the cache stops
 * trusting it; after SIGCONT it follows etcd again. */
static void a_frozen_members_watch_is_found_stalled_and_recovers(void **state)
{
	const char *eps[] = {co_test_group_etcd.endpoint};
	co_store *s = open_on(eps, 1, "/t-freeze/", 0, 300),
		 *off = open_store("/t-freeze/", -1);
	co_etcd_cache_stats st;
	uint64_t stalls;

	(void)state;
	create(s, "F");
	assert_true(cache_reaches(s, "F", version_of(off, "F"), 10000));
	co_etcd_store_cache_stats(&st, s);
	stalls = st.watch_stalls;
	assert_int_equal(co_test_etcd_freeze(&co_test_group_etcd), 0);
	assert_true(wait_live(s, 0, 20000));
	{
		int64_t until = mono_ms() + 20000;

		do {
			co_etcd_store_cache_stats(&st, s);
			nap();
		} while (st.watch_stalls == stalls && mono_ms() < until);
	}
	co_test_etcd_thaw(&co_test_group_etcd);
	assert_true(st.watch_stalls > stalls);
	assert_true(wait_live(s, 1, 30000));
	claim_ok(off, "F", "swarm-f");
	assert_true(cache_reaches(s, "F", version_of(off, "F"), 10000));
	co_store_free(off);
	co_store_free(s);
}

/* Three members, the one the watch is on SIGSTOPped: the watch moves to
 * another member and the cache follows writes made meanwhile. */
static void a_stalled_watch_moves_to_another_member(void **state)
{
	static co_test_cluster c;
	co_store *s, *other;
	co_etcd_cache_stats st;
	int64_t until;

	(void)state;
	assert_int_equal(co_test_cluster_start(&c), 0);
	s = open_on(c.endpoints, 3, "/t-cl/", 0, 300);
	other = open_on(c.endpoints + 1, 2, "/t-cl/", -1, 0);
	create(s, "K");
	assert_true(cache_reaches(s, "K", version_of(other, "K"), 20000));
	co_etcd_store_cache_stats(&st, s);
	/* the cache's requests went to the first endpoint, and so did its watch */
	assert_int_equal(co_test_cluster_freeze(&c, 0), 0);
	assert_true(co_test_cluster_leader(&c, 0, 20000) >= 0);
	until = mono_ms() + 30000;
	for (;;) {
		co_record *out = NULL;
		int rc = co_store_claim(&out, other, "K", "swarm-k", 0);

		co_record_free(out);
		if (rc == 0)
			break;
		if (mono_ms() > until)
			fail_msg("claim through m1/m2: %s", co_error_last());
		nap();
	}
	assert_true(cache_reaches(s, "K", version_of(other, "K"), 30000));
	{
		co_etcd_cache_stats now;

		co_etcd_store_cache_stats(&now, s);
		assert_true(now.watch_stalls > st.watch_stalls);
	}
	co_test_cluster_thaw(&c, 0);
	co_store_free(other);
	co_store_free(s);
	co_test_cluster_stop(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(warm_cache_writes_cost_one_round_trip_and_no_cache_two),
	    cmocka_unit_test(a_claims_key_left_by_another_writer_still_goes),
	    cmocka_unit_test(a_stale_claimed_entry_does_not_refuse_a_claim),
	    cmocka_unit_test(the_cache_knob_is_read_from_the_environment),
	    cmocka_unit_test(watch_resumes_after_compaction_and_cache_is_right),
	    cmocka_unit_test(a_frozen_members_watch_is_found_stalled_and_recovers),
	    cmocka_unit_test(a_stalled_watch_moves_to_another_member),
	    cmocka_unit_test(stale_caches_give_exactly_one_winner),
	};

	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
