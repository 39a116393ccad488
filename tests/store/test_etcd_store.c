/*
 * test_etcd_store.c - the etcd store against a real etcd (harness).
 *
 * One etcd serves the whole program (group setup); each test opens its own
 * store under its own key prefix so that tests do not see each other's keys.
 * etcdctl is the independent witness of what is really in etcd.
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
#include "harness/scanned.h"
#include "store/etcd_store.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A store on the test etcd under `prefix`, with short timeouts. */
static co_store *open_store(const char *prefix)
{
	const char *eps[] = {co_test_group_etcd.endpoint};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;
	int rc;

	o.endpoints = eps;
	o.n_endpoints = 1;
	o.prefix = prefix;
	o.connect_timeout_ms = 500;
	o.request_timeout_ms = 2000;
	rc = co_etcd_store_open(&s, &o);
	if (rc != 0)
		fail_msg("open: %s", co_error_last());
	return s;
}

static co_record *new_task(const char *id, const char *type)
{
	co_record *r = NULL;

	assert_int_equal(co_record_new(&r, CO_KIND_TASK, id), 0);
	r->type = strdup(type);
	return r;
}

/* Create a task and drop the result. */
static void create_task(co_store *s, const char *id)
{
	co_record *t = new_task(id, "build"), *out = NULL;
	int rc = co_store_task_create(&out, s, t);

	if (rc != 0)
		fail_msg("create %s: %s", id, co_error_last());
	co_record_free(out);
	co_record_free(t);
}

/* etcdctl's view of a key's value ("" when absent); caller frees. */
static char *etcdctl_get(const char *key)
{
	char *out = NULL, *err = NULL;
	int rc =
	    co_test_sh(&out, &err,
		       "ETCDCTL_API=3 etcdctl --endpoints=%s get '%s' --print-value-only",
		       co_test_group_etcd.endpoint, key);

	if (rc != 0)
		fail_msg("etcdctl get %s: %s", key, err ? err : "");
	free(err);
	/* etcdctl adds a newline after the value. */
	if (out && out[0] && out[strlen(out) - 1] == '\n')
		out[strlen(out) - 1] = '\0';
	return out;
}

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* ---- tests ---- */

#define FILLERS 8

struct filler {
	co_store *s;
	int from, to, step;
	int rc; /* first failure; cmocka must not fail from another thread */
};

static void *fill_tasks(void *arg)
{
	struct filler *f = arg;
	co_record *t = NULL, *out = NULL;
	char id[32];
	int i;

	for (i = f->from; i < f->to && f->rc == 0; i += f->step) {
		snprintf(id, sizeof(id), "R%04d", i);
		if ((f->rc = co_record_new(&t, CO_KIND_TASK, id)) == 0)
			f->rc = co_store_task_create(&out, f->s, t);
		if (f->rc)
			fprintf(stderr, "create %s: %s\n", id, co_error_last());
		co_record_free(t);
		co_record_free(out);
		t = out = NULL;
	}
	return NULL;
}

static void create_get_list_round_trip_across_pages(void **state)
{
	co_store *s = open_store("/t-roundtrip/");
	co_record_list l = {0};
	co_record *got = NULL, *t = new_task("R0000", "build"), *created = NULL;
	int64_t rev = 0;
	char id[32];
	size_t i;
	int n = 1100; /* more than one page of 1000 */

	(void)state;
	assert_int_equal(co_store_task_create(&created, s, t), 0);
	assert_int_equal(created->rev, 1);
	{
		/* Several writers at once, to keep this quick. */
		struct filler f[FILLERS];
		pthread_t th[FILLERS];
		int k;

		for (k = 0; k < FILLERS; k++) {
			f[k] = (struct filler){s, 1 + k, n, FILLERS, 0};
			assert_int_equal(pthread_create(&th[k], NULL, fill_tasks, &f[k]),
					 0);
		}
		for (k = 0; k < FILLERS; k++)
			pthread_join(th[k], NULL);
		for (k = 0; k < FILLERS; k++)
			assert_int_equal(f[k].rc, 0);
	}
	assert_int_equal(co_store_get(&got, s, CO_KIND_TASK, "R0000"), 0);
	assert_true(co_record_equal(got, created));

	assert_int_equal(co_store_list(&l, s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, (size_t)n);
	for (i = 0; i < l.n; i++) {
		snprintf(id, sizeof(id), "R%04zu", i);
		assert_string_equal(l.items[i]->id, id);
	}
	assert_true(co_record_equal(l.items[0], created));
	co_record_list_clear(&l);

	/* The snapshot variant gives the same records and a revision. */
	assert_int_equal(co_etcd_store_list_at(&l, &rev, s, CO_KIND_TASK), 0);
	assert_int_equal(l.n, (size_t)n);
	assert_true(rev > 0);
	co_record_list_clear(&l);

	/* No swarms here. */
	assert_int_equal(co_store_list(&l, s, CO_KIND_SWARM), 0);
	assert_int_equal(l.n, 0);
	co_record_list_clear(&l);

	co_record_free(got);
	co_record_free(created);
	co_record_free(t);
	co_store_free(s);
}

static void recreate_identical_is_ok_and_different_is_conflict(void **state)
{
	co_store *s = open_store("/t-recreate/");
	co_record *t = new_task("C1", "build"), *other = new_task("C1", "test");
	co_record *a = NULL, *b = NULL, *c = NULL;

	(void)state;
	assert_int_equal(co_store_task_create(&a, s, t), 0);
	assert_int_equal(co_store_task_create(&b, s, t), 0);
	assert_true(co_record_equal(a, b));
	assert_int_equal(co_store_task_create(&c, s, other), CO_ECONFLICT);
	assert_null(c);
	co_record_free(a);
	co_record_free(b);
	co_record_free(t);
	co_record_free(other);
	co_store_free(s);
}

static void get_of_missing_record_is_not_found(void **state)
{
	co_store *s = open_store("/t-missing/");
	co_record *r = NULL;

	(void)state;
	assert_int_equal(co_store_get(&r, s, CO_KIND_TASK, "nope"), CO_ENOTFOUND);
	assert_null(r);
	assert_int_equal(co_store_get(&r, s, CO_KIND_SWARM, "nope"), CO_ENOTFOUND);
	assert_int_equal(co_store_remove(s, CO_KIND_TASK, "nope"), CO_ENOTFOUND);
	co_store_free(s);
}

#define RACERS 32

struct racer {
	co_store *s;
	pthread_barrier_t *go;
	char swarm[32];
	int rc;
	char *owner_seen;
};

static void *race_claim(void *arg)
{
	struct racer *r = arg;
	co_record *out = NULL;

	pthread_barrier_wait(r->go);
	r->rc = co_store_claim(&out, r->s, "RACE", r->swarm, 0);
	if (out && out->owner)
		r->owner_seen = strdup(out->owner);
	co_record_free(out);
	return NULL;
}

static void claim_has_one_winner_under_32_threads(void **state)
{
	co_store *s = open_store("/t-race/");
	struct racer r[RACERS];
	pthread_t th[RACERS];
	pthread_barrier_t go;
	co_record *now = NULL;
	int i, winners = 0, losers = 0, winner = -1;

	(void)state;
	create_task(s, "RACE");
	pthread_barrier_init(&go, NULL, RACERS);
	for (i = 0; i < RACERS; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].s = s;
		r[i].go = &go;
		snprintf(r[i].swarm, sizeof(r[i].swarm), "swarm-%d", i);
		assert_int_equal(pthread_create(&th[i], NULL, race_claim, &r[i]), 0);
	}
	for (i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < RACERS; i++) {
		if (r[i].rc == 0) {
			winners++;
			winner = i;
		} else if (r[i].rc == CO_ECONFLICT) {
			losers++;
		}
	}
	assert_int_equal(winners, 1);
	assert_int_equal(losers, RACERS - 1);
	for (i = 0; i < RACERS; i++) {
		assert_non_null(r[i].owner_seen);
		assert_string_equal(r[i].owner_seen, r[winner].swarm);
		free(r[i].owner_seen);
	}
	assert_int_equal(co_store_get(&now, s, CO_KIND_TASK, "RACE"), 0);
	assert_string_equal(now->owner, r[winner].swarm);
	assert_int_equal(now->rev, 2);
	co_record_free(now);
	co_store_free(s);
}

static void release_by_non_owner_is_conflict(void **state)
{
	co_store *s = open_store("/t-release/");
	co_record *out = NULL;

	(void)state;
	create_task(s, "REL");
	assert_int_equal(co_store_claim(&out, s, "REL", "alice", 0), 0);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_store_release(&out, s, "REL", "bob", CO_STATUS_COMPLETE),
			 CO_ECONFLICT);
	assert_non_null(out);
	assert_string_equal(out->owner, "alice");
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_store_release(&out, s, "REL", "alice", CO_STATUS_COMPLETE),
			 0);
	assert_int_equal(out->status, CO_STATUS_COMPLETE);
	co_record_free(out);
	co_store_free(s);
}

/* 1 if `etcdctl get KEY -w json` shows a kv with a non-zero lease. */
static int claims_key_has_lease(const char *key)
{
	char *out = NULL;
	int rc, leased;

	rc = co_test_sh(&out, NULL,
			"ETCDCTL_API=3 etcdctl --endpoints=%s get '%s' -w json",
			co_test_group_etcd.endpoint, key);
	assert_int_equal(rc, 0);
	leased = out && strstr(out, "\"lease\":") != NULL &&
		 strstr(out, "\"lease\":0") == NULL;
	free(out);
	return leased;
}

static void claim_with_ttl_holds_a_leased_claims_key_until_expiry(void **state)
{
	co_store *s = open_store("/t-ttl/");
	co_record *out = NULL;
	char *v;
	int i, gone = 0;

	(void)state;
	create_task(s, "TTL");
	assert_int_equal(co_store_claim(&out, s, "TTL", "alice", 30), 0);
	assert_true(out->claim_expires_at > 0);
	co_record_free(out);
	out = NULL;

	v = etcdctl_get("/t-ttl/claims/TTL");
	assert_string_equal(v, "alice");
	free(v);
	assert_true(claims_key_has_lease("/t-ttl/claims/TTL"));

	/* The claim-expiry rule: later, the task reads as available... */
	setenv("CUTOVER_CLOCK_OFFSET", "60", 1);
	assert_int_equal(co_store_get(&out, s, CO_KIND_TASK, "TTL"), 0);
	assert_int_equal(out->status, CO_STATUS_AVAILABLE);
	assert_null(out->owner);
	co_record_free(out);
	out = NULL;
	/* ...and someone else can claim it. */
	assert_int_equal(co_store_claim(&out, s, "TTL", "bob", 0), 0);
	unsetenv("CUTOVER_CLOCK_OFFSET");
	assert_string_equal(out->owner, "bob");
	co_record_free(out);
	out = NULL;

	/* etcd drops the claims key when a short lease runs out (bounded). */
	create_task(s, "SHORT");
	assert_int_equal(co_store_claim(&out, s, "SHORT", "alice", 1), 0);
	co_record_free(out);
	for (i = 0; i < 100 && !gone; i++) {
		struct timespec ts = {0, 100 * 1000000L};

		v = etcdctl_get("/t-ttl/claims/SHORT");
		gone = v[0] == '\0';
		free(v);
		if (!gone)
			nanosleep(&ts, NULL);
	}
	assert_true(gone);
	co_store_free(s);
}

static void release_removes_the_claims_key(void **state)
{
	co_store *s = open_store("/t-relkey/");
	co_record *out = NULL;
	char *v;

	(void)state;
	create_task(s, "RK");
	assert_int_equal(co_store_claim(&out, s, "RK", "alice", 60), 0);
	co_record_free(out);
	out = NULL;
	v = etcdctl_get("/t-relkey/claims/RK");
	assert_string_equal(v, "alice");
	free(v);
	assert_int_equal(co_store_release(&out, s, "RK", "alice", CO_STATUS_AVAILABLE),
			 0);
	co_record_free(out);
	v = etcdctl_get("/t-relkey/claims/RK");
	assert_string_equal(v, "");
	free(v);
	co_store_free(s);
}

/* How many leases etcd holds now. */
static int lease_count(void)
{
	char *out = NULL;
	int rc, n = -1;

	rc = co_test_sh(
	    &out, NULL,
	    "ETCDCTL_API=3 etcdctl --endpoints=%s lease list | grep -c '^[0-9a-f]'",
	    co_test_group_etcd.endpoint);
	if (rc == 0 || rc == 1)
		n = atoi(out);
	free(out);
	return n;
}

static void renew_and_release_do_not_leak_leases(void **state)
{
	co_store *s = open_store("/t-leases/");
	co_record *out = NULL;
	int before;

	(void)state;
	create_task(s, "L1");
	before = lease_count();
	assert_true(before >= 0);
	assert_int_equal(co_store_claim(&out, s, "L1", "alice", 600), 0);
	co_record_free(out);
	assert_int_equal(lease_count(), before + 1);
	assert_int_equal(co_store_renew(&out, s, "L1", "alice", 900), 0);
	co_record_free(out);
	assert_true(claims_key_has_lease("/t-leases/claims/L1"));
	assert_int_equal(lease_count(), before + 1);
	assert_int_equal(co_store_release(&out, s, "L1", "alice", CO_STATUS_AVAILABLE),
			 0);
	co_record_free(out);
	assert_int_equal(lease_count(), before);
	co_store_free(s);
}

static void value_seen_by_etcdctl_is_the_canonical_json(void **state)
{
	co_store *s = open_store("/");
	co_record *t = new_task("CANON-1", "build"), *out = NULL;
	char *want, *got;

	(void)state;
	assert_int_equal(co_record_set_metadata(t, "{\"b\":1,\"a\":[true,null]}"), 0);
	assert_int_equal(co_store_task_create(&out, s, t), 0);
	want = co_record_to_json(out, 0);
	got = etcdctl_get("/tasks/CANON-1");
	assert_string_equal(got, want);
	free(want);
	free(got);
	assert_int_equal(co_store_remove(s, CO_KIND_TASK, "CANON-1"), 0);
	got = etcdctl_get("/tasks/CANON-1");
	assert_string_equal(got, "");
	free(got);
	co_record_free(out);
	co_record_free(t);
	co_store_free(s);
}

static int ping_eventually(co_store *s);

static void
dead_etcd_is_unavailable_naming_the_endpoint_and_nothing_half_written(void **state)
{
	co_store *s = open_store("/t-dead/");
	co_record *out = NULL, *t = new_task("NEW", "build");

	(void)state;
	create_task(s, "OLD");
	co_test_etcd_kill(&co_test_group_etcd);

	assert_int_equal(co_store_claim(&out, s, "OLD", "alice", 30), CO_EUNAVAIL);
	assert_null(out);
	assert_non_null(strstr(co_error_last(), co_test_group_etcd.endpoint));
	assert_int_equal(co_store_task_create(&out, s, t), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), co_test_group_etcd.endpoint));
	assert_int_equal(co_store_ping(s), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), co_test_group_etcd.endpoint));
	/* three failures in a row: the breaker answers at once, and says why */
	assert_int_equal(co_store_get(&out, s, CO_KIND_TASK, "OLD"), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), "etcd circuit open since "));
	assert_non_null(strstr(co_error_last(), co_test_group_etcd.endpoint));

	assert_int_equal(co_test_etcd_restart(&co_test_group_etcd), 0);
	assert_int_equal(ping_eventually(s), 0); /* the probe closes it */
	assert_int_equal(co_store_get(&out, s, CO_KIND_TASK, "OLD"), 0);
	assert_int_equal(out->rev, 1);
	assert_int_equal(out->status, CO_STATUS_AVAILABLE);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_store_get(&out, s, CO_KIND_TASK, "NEW"), CO_ENOTFOUND);
	{
		char *v = etcdctl_get("/t-dead/claims/OLD");

		assert_string_equal(v, "");
		free(v);
	}
	co_record_free(t);
	co_store_free(s);
}

static void watch_ends_unavailable_when_etcd_dies(void **state)
{
	co_store *s = open_store("/t-watchdead/");
	co_event *ev = NULL;
	co_watch *w = NULL;
	int rc;

	(void)state;
	assert_int_equal(co_store_watch(&w, s, "tasks/"), 0);
	co_test_etcd_kill(&co_test_group_etcd);
	rc = co_watch_next(&ev, w, 10000);
	assert_int_equal(co_test_etcd_restart(&co_test_group_etcd), 0);
	assert_int_equal(rc, CO_EUNAVAIL);
	assert_null(ev);
	assert_non_null(strstr(co_error_last(), co_test_group_etcd.endpoint));
	co_watch_close(w);
	co_store_free(s);
}

/* Ping until it answers, bounded: etcd may still be settling after a restart. */
static int ping_eventually(co_store *s)
{
	struct timespec ts = {0, 20 * 1000000L};
	int i, rc = -1;

	for (i = 0; i < 250 && rc != 0; i++) {
		if ((rc = co_store_ping(s)) != 0)
			nanosleep(&ts, NULL);
	}
	return rc;
}

static void hung_etcd_times_out_as_unavailable(void **state)
{
	const char *eps[] = {co_test_group_etcd.endpoint};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;
	int rc;

	(void)state;
	o.endpoints = eps;
	o.n_endpoints = 1;
	o.request_timeout_ms = 300;
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	assert_int_equal(ping_eventually(s), 0);
	/* A stopped process keeps its sockets: requests hang, not fail. */
	assert_int_equal(kill(co_test_group_etcd.pid, SIGSTOP), 0);
	if (co_test_wait_stopped(co_test_group_etcd.pid) < 0) {
		kill(co_test_group_etcd.pid, SIGCONT);
		fail_msg("etcd %d did not stop", (int)co_test_group_etcd.pid);
	}
	rc = co_store_ping(s);
	kill(co_test_group_etcd.pid, SIGCONT);
	assert_int_equal(rc, CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), co_test_group_etcd.endpoint));
	assert_non_null(strstr(co_error_last(), "timed out"));
	assert_int_equal(ping_eventually(s), 0);
	co_store_free(s);
}

static void requests_fail_over_from_a_dead_endpoint_to_a_live_one(void **state)
{
	char dead[64], dead2[64];
	const char *eps[] = {dead, co_test_group_etcd.endpoint};
	const char *all_dead[] = {dead, dead2};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;
	co_record *out = NULL;

	(void)state;
	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", free_port());
	snprintf(dead2, sizeof(dead2), "http://127.0.0.1:%d", free_port());
	o.endpoints = eps;
	o.n_endpoints = 2;
	o.prefix = "/t-failover/";
	o.connect_timeout_ms = 500;
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	assert_int_equal(co_store_ping(s), 0);
	create_task(s, "F1");
	assert_int_equal(co_store_claim(&out, s, "F1", "alice", 0), 0);
	co_record_free(out);
	co_store_free(s);

	/* None alive: the message names each endpoint tried. */
	o.endpoints = all_dead;
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	assert_int_equal(co_store_ping(s), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), dead));
	assert_non_null(strstr(co_error_last(), dead2));
	co_store_free(s);
}

static void watch_sees_put_and_delete_made_by_etcdctl(void **state)
{
	co_store *s = open_store("/t-watch/");
	co_record *t = new_task("W1", "build");
	co_event *ev = NULL;
	co_watch *w = NULL;
	char *json, *err = NULL;
	int rc;

	(void)state;
	t->rev = 1;
	t->created_at = t->updated_at = 1790000000;
	json = co_record_to_json(t, 0);
	assert_int_equal(co_store_watch(&w, s, "tasks/"), 0);

	/* Not a record of ours, and outside the watched prefix: not seen. */
	rc = co_test_sh(
	    NULL, &err,
	    "ETCDCTL_API=3 etcdctl --endpoints=%s put /t-watch/swarms/x '{}' >/dev/null"
	    " && etcdctl --endpoints=%s put /t-watch/tasks/W1 '%s' >/dev/null"
	    " && etcdctl --endpoints=%s del /t-watch/tasks/W1 >/dev/null",
	    co_test_group_etcd.endpoint, co_test_group_etcd.endpoint, json,
	    co_test_group_etcd.endpoint);
	assert_int_equal(rc, 0);
	free(err);

	assert_int_equal(co_watch_next(&ev, w, 5000), 0);
	assert_non_null(ev);
	assert_int_equal(ev->type, CO_EVENT_PUT);
	assert_int_equal(ev->kind, CO_KIND_TASK);
	assert_string_equal(ev->id, "W1");
	assert_non_null(ev->record);
	assert_true(co_record_equal(ev->record, t));
	assert_string_equal(ev->store, "etcd");
	co_event_free(ev);

	assert_int_equal(co_watch_next(&ev, w, 5000), 0);
	assert_non_null(ev);
	assert_int_equal(ev->type, CO_EVENT_DELETE);
	assert_string_equal(ev->id, "W1");
	assert_null(ev->record);
	co_event_free(ev);

	/* Nothing else pending: a short wait times out with no event. */
	assert_int_equal(co_watch_next(&ev, w, 50), 0);
	assert_null(ev);

	co_watch_close(w);
	free(json);
	co_record_free(t);
	co_store_free(s);
}

static void watch_sees_the_stores_own_claim(void **state)
{
	co_store *s = open_store("/t-watch2/");
	co_event *ev = NULL;
	co_watch *w = NULL;
	co_record *out = NULL;

	(void)state;
	create_task(s, "W2");
	assert_int_equal(co_store_watch(&w, s, ""), 0);
	assert_int_equal(co_store_claim(&out, s, "W2", "alice", 30), 0);
	co_record_free(out);
	/* The claims key changes too, but only the task is an event. */
	assert_int_equal(co_watch_next(&ev, w, 5000), 0);
	assert_non_null(ev);
	assert_int_equal(ev->type, CO_EVENT_PUT);
	assert_string_equal(ev->id, "W2");
	assert_string_equal(ev->record->owner, "alice");
	co_event_free(ev);
	assert_int_equal(co_watch_next(&ev, w, 50), 0);
	assert_null(ev);
	co_watch_close(w);
	co_store_free(s);
}

static void watch_reassembles_an_event_split_across_chunks(void **state)
{
	co_store *s = open_store("/t-watchbig/");
	co_record *t = new_task("BIG", "build"), *out = NULL;
	co_event *ev = NULL;
	co_watch *w = NULL;
	size_t n = 60 * 1024, i;
	char *meta = malloc(n + 16);

	(void)state;
	/* ~80 KiB of base64 in one line: curl hands it over in pieces. */
	strcpy(meta, "{\"blob\":\"");
	for (i = strlen(meta); i < n; i++)
		meta[i] = (char)('a' + i % 26);
	strcpy(meta + n, "\"}");
	assert_int_equal(co_record_set_metadata(t, meta), 0);
	assert_int_equal(co_store_watch(&w, s, "tasks/"), 0);
	assert_int_equal(co_store_task_create(&out, s, t), 0);
	assert_int_equal(co_watch_next(&ev, w, 5000), 0);
	assert_non_null(ev);
	assert_string_equal(ev->id, "BIG");
	assert_true(co_record_equal(ev->record, out));
	co_event_free(ev);
	co_watch_close(w);
	co_record_free(out);
	co_record_free(t);
	free(meta);
	co_store_free(s);
}

static void custom_prefix_keeps_every_key_under_it(void **state)
{
	co_store *s = open_store("/cutover-x/");
	co_record *out = NULL, *sw = NULL;
	char *keys = NULL;
	int rc;

	(void)state;
	create_task(s, "P1");
	assert_int_equal(co_store_claim(&out, s, "P1", "alice", 60), 0);
	co_record_free(out);
	out = NULL;
	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, "alice"), 0);
	assert_int_equal(co_store_swarm_register(&out, s, sw), 0);
	co_record_free(out);
	co_record_free(sw);

	rc = co_test_sh(&keys, NULL,
			"ETCDCTL_API=3 etcdctl --endpoints=%s get --prefix / --keys-only"
			" | grep -e P1 -e alice | grep -v '^/t-'",
			co_test_group_etcd.endpoint);
	assert_int_equal(rc, 0);
	assert_string_equal(keys, "/cutover-x/claims/P1\n/cutover-x/swarms/alice\n"
				  "/cutover-x/tasks/P1\n");
	free(keys);
	co_store_free(s);
}

static int scan_count(void *ctx, const co_scan_item *it)
{
	(void)it;
	(*(int *)ctx)++;
	return 0;
}

static void store_with_auth_logs_in_and_survives_a_token_loss(void **state)
{
	co_test_etcd a;
	const char *eps[1];
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;
	co_record *out = NULL;
	int n;

	(void)state;
	assert_int_equal(co_test_etcd_start(&a), 0);
	if (co_test_etcd_enable_auth(&a, "pw") != 0)
		fail_msg("etcd auth could not be turned on");
	eps[0] = a.endpoint;
	o.endpoints = eps;
	o.n_endpoints = 1;

	/* Without credentials etcd refuses. */
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	assert_int_equal(co_store_ping(s), CO_EUNAVAIL);
	co_store_free(s);

	/* A wrong password: unavailable, saying so. */
	o.user = "root";
	o.password = "wrong";
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	assert_int_equal(co_store_ping(s), CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), "root"));
	co_store_free(s);

	o.password = "pw";
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	assert_int_equal(co_store_ping(s), 0);
	create_task(s, "A1");
	assert_int_equal(co_store_claim(&out, s, "A1", "alice", 30), 0);
	co_record_free(out);

	/* A scan (gRPC) sends the token as metadata. */
	n = 0;
	assert_int_equal(co_store_scan(s, scan_count, &n), 0);
	assert_int_equal(n, 1);

	/* Restarting etcd invalidates simple tokens: the store logs in again,
	 * on a scan as on a gateway call. */
	assert_int_equal(co_test_etcd_restart(&a), 0);
	n = 0;
	if (co_store_scan(s, scan_count, &n) != 0)
		fail_msg("scan after restart: %s", co_error_last());
	assert_int_equal(n, 1);
	assert_int_equal(co_store_get(&out, s, CO_KIND_TASK, "A1"), 0);
	assert_string_equal(out->owner, "alice");
	co_record_free(out);

	co_store_free(s);

	/* A txn goes as gRPC where libnghttp2 is built in, its token as
	 * metadata: after a restart too, the token renewed (by the create's
	 * read through the gateway).  No record cache, whose watch would send
	 * txns of its own. */
	o.cache_entries = -1;
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	assert_int_equal(co_store_ping(s), 0);
	assert_int_equal(co_test_etcd_restart(&a), 0);
	create_task(s, "A2"); /* a txn and nothing else */
#ifdef CO_HAVE_NGHTTP2
	assert_int_equal(co_etcd_store_grpc_txns(s), 1);
#endif
	co_store_free(s);
	co_test_etcd_stop(&a);
}

/* ---- scan ---- */

static void scan_reads_over_grpc_from_a_member_that_answers(void **state)
{
	char dead[64];
	const char *eps[] = {dead, co_test_group_etcd.endpoint};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;
	int n = 0;

	(void)state;
	snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", free_port());
	o.endpoints = eps + 1;
	o.n_endpoints = 1;
	o.prefix = "/t-grpc-failover/";
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	create_task(s, "G1");
	create_task(s, "G2");
	create_task(s, "G3");
	co_store_free(s);

	/* The first endpoint is gone: the scan asks the next member over
	 * gRPC, not the gateway, and passes every record once. */
	o.endpoints = eps;
	o.n_endpoints = 2;
	o.connect_timeout_ms = 500;
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	if (co_store_scan(s, scan_count, &n) != 0)
		fail_msg("scan: %s", co_error_last());
	assert_int_equal(n, 3);
	assert_true(co_etcd_store_grpc_pages(s) > 0);
	co_store_free(s);
}

/* Register a swarm and drop the result. */
static void register_swarm(co_store *s, const char *id)
{
	co_record *sw = NULL, *out = NULL;

	assert_int_equal(co_record_new(&sw, CO_KIND_SWARM, id), 0);
	if (co_store_swarm_register(&out, s, sw) != 0)
		fail_msg("register %s: %s", id, co_error_last());
	co_record_free(out);
	co_record_free(sw);
}

/* Record every item; at the first, change the store behind the scan's back:
 * claim T5, remove T4, create T6, register S2. */
static int scan_collect(void *ctx, const co_scan_item *it)
{
	co_test_scanned *c = ctx;
	co_record *out = NULL;
	int error;

	if ((error = co_test_scanned_add(c, it)) < 0)
		return error;
	if (c->n == 1 && c->writer) {
		co_record *t = new_task("T6", "build"), *sw = NULL;

		if (co_store_claim(&out, c->writer, "T5", "alice", 0) != 0 ||
		    co_store_remove(c->writer, CO_KIND_TASK, "T4") != 0)
			c->rc = -1;
		co_record_free(out);
		out = NULL;
		if (co_store_task_create(&out, c->writer, t) != 0)
			c->rc = -1;
		co_record_free(out);
		out = NULL;
		co_record_free(t);
		if (co_record_new(&sw, CO_KIND_SWARM, "S2") != 0 ||
		    co_store_swarm_register(&out, c->writer, sw) != 0)
			c->rc = -1;
		co_record_free(out);
		co_record_free(sw);
	}
	return 0;
}

static co_store *open_scanning_store(const char *prefix, int page)
{
	const char *eps[] = {co_test_group_etcd.endpoint};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;

	o.endpoints = eps;
	o.n_endpoints = 1;
	o.prefix = prefix;
	o.scan_page = page;
	if (co_etcd_store_open(&s, &o) != 0)
		fail_msg("open: %s", co_error_last());
	return s;
}

/*
 * Over gRPC and over the gateway alike: a scan passes every record raw, as
 * etcd holds it (canonical compact JSON), with the version a get sees, and
 * all of it at the revision of its first page -- writes made while it runs
 * (pages of 2 keys, so they land between pages) are not seen.
 */
static void scan_passes_raw_records_at_the_first_pages_revision(void **state)
{
	static const char *const modes[] = {"1", "0"};
	size_t m;

	(void)state;
	for (m = 0; m < 2; m++) {
		char prefix[64], ver[CO_VERSION_MAX];
		co_test_scanned c;
		co_store *s, *w;
		co_record *t5 = NULL, *t1 = NULL;
		char *json;
		int i;

		setenv("CUTOVER_ETCD_GRPC", modes[m], 1);
		snprintf(prefix, sizeof(prefix), "/scan%s/", modes[m]);
		s = open_scanning_store(prefix, 2);
		w = open_store(prefix);
		for (i = 1; i <= 5; i++) {
			char id[8];

			snprintf(id, sizeof(id), "T%d", i);
			create_task(w, id);
		}
		register_swarm(w, "S1");
		assert_int_equal(co_store_get_versioned(&t5, ver, s, CO_KIND_TASK, "T5"),
				 0);
		assert_true(ver[0] != '\0');

		memset(&c, 0, sizeof(c));
		c.writer = w;
		if (co_store_scan(s, scan_collect, &c) != 0)
			fail_msg("scan (grpc=%s): %s", modes[m], co_error_last());
		assert_int_equal(c.rc, 0);
		/* What the store held when the scan began, tasks then swarms. */
		assert_int_equal(c.n, 6);
		for (i = 0; i < 5; i++) {
			char id[8];

			snprintf(id, sizeof(id), "T%d", i + 1);
			assert_int_equal(c.kind[i], CO_KIND_TASK);
			assert_string_equal(c.id[i], id);
		}
		assert_int_equal(c.kind[5], CO_KIND_SWARM);
		assert_string_equal(c.id[5], "S1");
		/* T5 unclaimed, at the version a get saw before the claim. */
		assert_string_equal(c.ver[4], ver);
		json = co_record_to_json(t5, 0);
		assert_string_equal(c.raw[4], json);
		free(json);
		/* Raw means as stored: the canonical compact form. */
		assert_int_equal(co_store_get(&t1, s, CO_KIND_TASK, "T1"), 0);
		json = co_record_to_json(t1, 0);
		assert_string_equal(c.raw[0], json);
		free(json);

		/* A new scan sees the writes. */
		memset(&c, 0, sizeof(c));
		assert_int_equal(co_store_scan(s, scan_collect, &c), 0);
		assert_int_equal(c.n, 7);
		assert_string_equal(c.id[3], "T5");
		assert_non_null(strstr(c.raw[3], "\"owner\":\"alice\""));
		assert_string_not_equal(c.ver[3], ver);
		assert_string_equal(c.id[4], "T6");
		assert_string_equal(c.id[6], "S2");

		co_record_free(t5);
		co_record_free(t1);
		co_store_free(w);
		co_store_free(s);
	}
	unsetenv("CUTOVER_ETCD_GRPC");
}

struct compactor {
	int done;
	int rc;
};

/* At the first record: a write, then compact etcd up to it. */
static int scan_compact(void *ctx, const co_scan_item *it)
{
	struct compactor *c = ctx;

	(void)it;
	if (c->done++)
		return 0;
	c->rc = co_test_sh(NULL, NULL,
			   "export ETCDCTL_API=3; E=%s;"
			   " etcdctl --endpoints=$E put /compact/x y >/dev/null &&"
			   " R=$(etcdctl --endpoints=$E get /compact/x -w fields |"
			   " sed -n 's/^\"Revision\" : //p') &&"
			   " etcdctl --endpoints=$E compact $R >/dev/null",
			   co_test_group_etcd.endpoint);
	return 0;
}

/* A scan whose pinned revision is compacted away midway fails, saying so,
 * rather than mixing two moments. */
static void scan_of_a_compacted_revision_is_unavailable(void **state)
{
	struct compactor c = {0, 0};
	co_store *s = open_scanning_store("/compact/", 2);
	int i, rc;

	(void)state;
	for (i = 1; i <= 5; i++) {
		char id[8];

		snprintf(id, sizeof(id), "T%d", i);
		create_task(s, id);
	}
	rc = co_store_scan(s, scan_compact, &c);
	assert_int_equal(c.rc, 0);
	assert_int_equal(rc, CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), "compacted"));
	co_store_free(s);
}

static int scan_stop_after_one(void *ctx, const co_scan_item *it)
{
	(void)ctx;
	(void)it;
	return CO_ETOOBIG;
}

static void scan_stops_at_a_callback_error(void **state)
{
	co_store *s = open_scanning_store("/scanstop/", 2);
	int n = 0;

	(void)state;
	create_task(s, "A");
	create_task(s, "B");
	create_task(s, "C");
	assert_int_equal(co_store_scan(s, scan_count, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(co_store_scan(s, scan_stop_after_one, &n), CO_ETOOBIG);
	co_store_free(s);
}

static void open_refuses_bad_options(void **state)
{
	const char *bad[] = {"127.0.0.1:2379"};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_store *s = NULL;

	(void)state;
	assert_int_equal(co_etcd_store_open(&s, &o), CO_EINVAL);
	o.endpoints = bad;
	o.n_endpoints = 1;
	assert_int_equal(co_etcd_store_open(&s, &o), CO_EINVAL);
	assert_non_null(strstr(co_error_last(), "127.0.0.1:2379"));
	assert_null(s);
}

/*
 * The first endpoint accepts and never answers (a SIGSTOPped member); the
 * second is healthy.  Every call still answers, unbounded or under a
 * mirror's short bound, and the breaker never opens on the healthy store.
 */
static void a_hung_first_endpoint_fails_over_to_a_healthy_one(void **state)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char hole[64];
	const char *eps[] = {hole, co_test_group_etcd.endpoint};
	co_etcd_opts o = CO_ETCD_OPTS_INIT;
	co_breaker_info bi;
	co_store *s = NULL;
	int i, prev;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	snprintf(hole, sizeof(hole), "http://127.0.0.1:%d", ntohs(a.sin_port));
	o.endpoints = eps;
	o.n_endpoints = 2;
	o.prefix = "/t-hole/";
	o.request_timeout_ms = 300;
	assert_int_equal(co_etcd_store_open(&s, &o), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(co_store_ping(s), 0);
	/* under a bound too: the hung member is no longer where calls start */
	prev = co_store_call_timeout(200);
	for (i = 0; i < 4; i++)
		assert_int_equal(co_store_ping(s), 0);
	co_store_call_timeout(prev);
	co_store_breaker_get(&bi, s);
	assert_int_equal(bi.state, CO_BREAKER_CLOSED);
	co_store_free(s);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_hung_first_endpoint_fails_over_to_a_healthy_one),
	    cmocka_unit_test(open_refuses_bad_options),
	    cmocka_unit_test(create_get_list_round_trip_across_pages),
	    cmocka_unit_test(recreate_identical_is_ok_and_different_is_conflict),
	    cmocka_unit_test(get_of_missing_record_is_not_found),
	    cmocka_unit_test(claim_has_one_winner_under_32_threads),
	    cmocka_unit_test(release_by_non_owner_is_conflict),
	    cmocka_unit_test(claim_with_ttl_holds_a_leased_claims_key_until_expiry),
	    cmocka_unit_test(release_removes_the_claims_key),
	    cmocka_unit_test(renew_and_release_do_not_leak_leases),
	    cmocka_unit_test(value_seen_by_etcdctl_is_the_canonical_json),
	    cmocka_unit_test(requests_fail_over_from_a_dead_endpoint_to_a_live_one),
	    cmocka_unit_test(watch_sees_put_and_delete_made_by_etcdctl),
	    cmocka_unit_test(watch_sees_the_stores_own_claim),
	    cmocka_unit_test(watch_reassembles_an_event_split_across_chunks),
	    cmocka_unit_test(custom_prefix_keeps_every_key_under_it),
	    cmocka_unit_test(
		dead_etcd_is_unavailable_naming_the_endpoint_and_nothing_half_written),
	    cmocka_unit_test(watch_ends_unavailable_when_etcd_dies),
	    cmocka_unit_test(hung_etcd_times_out_as_unavailable),
	    cmocka_unit_test(store_with_auth_logs_in_and_survives_a_token_loss),
	    cmocka_unit_test(scan_reads_over_grpc_from_a_member_that_answers),
	    cmocka_unit_test(scan_passes_raw_records_at_the_first_pages_revision),
	    cmocka_unit_test(scan_of_a_compacted_revision_is_unavailable),
	    cmocka_unit_test(scan_stops_at_a_callback_error),
	};

	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
