/*
 * test_wire.c - requests nobody waits for, and watch delivery (issues 15.5
 * and 16's soak finding), against `cutover serve` in-process over a real
 * etcd (frozen with SIGSTOP by pid for a hung store) and a real bare repo.
 *
 * - With a queue deadline, a request that waited for an in-flight slot past
 *   it gets 503 with Retry-After and never reaches a store (the router is
 *   never called for it, the task stays available), counted in /metrics.
 * - A claim whose client closed its connection while it waited is not run.
 * - A lost claim's 409, a list and an SSE event carry whole records (their
 *   JSON is spliced in as printed, not parsed and printed again); a body
 *   past the request's inline buffer arrives whole.
 * - In shadow, a GET /v1/watch client gets a created task's event although
 *   git is polled only every 30 s (the store's own commit wakes its watch);
 *   the bound on the wait is far under the poll interval, no timing else.
 */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "server/server.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int prefix_seq;
static char prefix[64];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* serve at `stage`, one request in flight at most, queue deadline `qd_ms`;
 * no background probe to call etcd behind the test's back. */
static void fx_open(co_test_serve *f, const char *stage, int max_inflight, int qd_ms,
		    int git_poll_ms)
{
	co_test_serve_opts o = {0};

	snprintf(prefix, sizeof(prefix), "/wire%d-%d/", (int)getpid(), ++prefix_seq);
	o.endpoint = co_test_group_etcd.endpoint;
	o.prefix = prefix;
	o.stage = stage;
	o.etcd_timeout_ms = 3000;
	o.git_poll_ms = git_poll_ms;
	o.probe_interval_ms = 600000;
	o.probe_timeout_ms = 1000;
	o.max_inflight = max_inflight;
	o.queue_deadline_ms = qd_ms;
	assert_int_equal(co_test_serve_open(f, &o), 0);
}

static void fx_close(co_test_serve *f)
{
	co_test_etcd_thaw(&co_test_group_etcd);
	co_test_serve_close(f);
}

static long call(const co_test_serve *f, const char *method, const char *path,
		 const char *body, co_test_resp *keep)
{
	co_test_resp r;
	long st;

	co_test_http(&r, f->base, method, path, body, body ? strlen(body) : 0, NULL);
	st = r.status;
	if (keep)
		*keep = r;
	else
		free(r.body);
	return st;
}

/* The sum of the /metrics lines starting with `series` (labels and all). */
static long long metric_sum(const co_test_serve *f, const char *series)
{
	co_test_resp r;
	long long sum = 0;
	const char *p;

	assert_int_equal(call(f, "GET", "/metrics", NULL, &r), 200);
	for (p = r.body; (p = strstr(p, series)) != NULL; p++) {
		const char *sp = strchr(p, ' ');

		/* a sample line (not # HELP), this series exactly */
		if (sp && (p == r.body || p[-1] == '\n') &&
		    strchr(" ,{", p[strlen(series)]))
			sum += strtoll(sp + 1, NULL, 10);
	}
	free(r.body);
	return sum;
}

/* 1 if task `id` is available (nobody holds it). */
static int available(const co_test_serve *f, const char *id)
{
	char path[64];
	co_test_resp r;
	int yes;

	snprintf(path, sizeof(path), "/v1/tasks/%s", id);
	assert_int_equal(call(f, "GET", path, NULL, &r), 200);
	yes = strstr(r.body, "\"status\":\"available\"") != NULL;
	if (!yes)
		print_message("%s: %s\n", id, r.body);
	free(r.body);
	return yes;
}

typedef struct claimer {
	const co_test_serve *f;
	const char *id;
	long status;
	char retry_after[32];
	char code[64];
} claimer;

static void *claim_main(void *p)
{
	claimer *c = p;
	char path[64];
	co_test_resp r;
	const char *k;

	snprintf(path, sizeof(path), "/v1/tasks/%s/claim", c->id);
	c->status = call(c->f, "POST", path, "{\"swarm\":\"S1\",\"ttl\":60}", &r);
	snprintf(c->retry_after, sizeof(c->retry_after), "%s", r.retry_after);
	if ((k = strstr(r.body, "\"code\":\"")) != NULL)
		sscanf(k + 8, "%63[^\"]", c->code);
	free(r.body);
	return NULL;
}

/* Bounded wait for `n` requests in flight. */
static void await_inflight(co_test_serve *f, int n)
{
	int64_t end = now_ms() + 10000;

	while (co_server_inflight(f->srv) != n && now_ms() < end)
		nap_ms(5);
	assert_int_equal(co_server_inflight(f->srv), n);
}

/* Bounded wait for an etcd call to start beyond `calls`. */
static void await_etcd_call(co_test_serve *f, uint64_t calls)
{
	int64_t end = now_ms() + 10000;

	while (co_store_calls(f->etcd) <= calls && now_ms() < end)
		nap_ms(5);
	assert_true(co_store_calls(f->etcd) > calls);
}

static void create(const co_test_serve *f, const char *id)
{
	char body[64];

	snprintf(body, sizeof(body), "{\"id\":\"%s\"}", id);
	assert_int_equal(call(f, "POST", "/v1/tasks", body, NULL), 201);
}

/* A hung claim of Q0 holds serve's only in-flight slot. */
static void hold_the_slot(co_test_serve *f, claimer *a, pthread_t *th)
{
	uint64_t calls = co_store_calls(f->etcd);

	assert_int_equal(co_test_etcd_freeze(&co_test_group_etcd), 0);
	a->f = f;
	a->id = "Q0";
	assert_int_equal(pthread_create(th, NULL, claim_main, a), 0);
	await_inflight(f, 1);
	await_etcd_call(f, calls); /* it reached the (frozen) store */
}

static void queued_past_the_deadline_get_503_and_never_reach_the_store(void **state)
{
	enum { N = 3 };
	static const char *const ids[N] = {"Q1", "Q2", "Q3"};
	co_test_serve f;
	claimer a = {0}, b[N];
	pthread_t tha, th[N];
	int i;

	(void)state;
	fx_open(&f, "etcd", 1, 200, 0);
	create(&f, "Q0");
	for (i = 0; i < N; i++)
		create(&f, ids[i]);
	hold_the_slot(&f, &a, &tha);
	memset(b, 0, sizeof(b));
	for (i = 0; i < N; i++) {
		b[i].f = &f;
		b[i].id = ids[i];
		assert_int_equal(pthread_create(&th[i], NULL, claim_main, &b[i]), 0);
	}
	for (i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(b[i].status, 503);
		assert_string_equal(b[i].code, "queue_deadline");
		assert_true(b[i].retry_after[0] != '\0');
	}
	/* The slot is still the hung one's: they never had it. */
	assert_int_equal(co_server_inflight(f.srv), 1);
	assert_int_equal(
	    metric_sum(&f, "cutover_http_refused_total{reason=\"queue_deadline\"}"), N);
	co_test_etcd_thaw(&co_test_group_etcd);
	pthread_join(tha, NULL);
	for (i = 0; i < N; i++)
		assert_true(available(&f, ids[i]));
	/* Only the hung claim reached the router and so a store (each call
	 * to the router is counted once it returns). */
	assert_int_equal(metric_sum(&f, "cutover_ops_total{op=\"task_claim\""), 1);
	/* The slot is back: a claim now goes through. */
	assert_int_equal(
	    call(&f, "POST", "/v1/tasks/Q1/claim", "{\"swarm\":\"S1\",\"ttl\":60}", NULL),
	    200);
	print_message("case: max_inflight 1 held by a claim on a frozen etcd, queue "
		      "deadline 200 ms -> %d claims 503 queue_deadline with Retry-After "
		      "%s, never routed, tasks still available\n",
		      N, b[0].retry_after);
	fx_close(&f);
}

/* A TCP connection to serve on loopback. */
static int raw_connect(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void raw_send(int fd, const char *p)
{
	size_t n = strlen(p);

	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		assert_true(k > 0);
		p += k;
		n -= (size_t)k;
	}
}

static void a_claim_whose_client_left_while_queued_is_not_run(void **state)
{
	static const char req[] = "POST /v1/tasks/G1/claim HTTP/1.1\r\nHost: x\r\n"
				  "Content-Type: application/json\r\n"
				  "Content-Length: 25\r\n\r\n"
				  "{\"swarm\":\"S1\",\"ttl\":60}\r\n";
	co_test_serve f;
	claimer a = {0};
	pthread_t tha;
	int64_t end;
	int fd;

	(void)state;
	fx_open(&f, "etcd", 1, 60000, 0);
	create(&f, "Q0");
	create(&f, "G1");
	hold_the_slot(&f, &a, &tha);
	/* A whole claim, then the client gives up and closes. */
	fd = raw_connect(f.port);
	raw_send(fd, req);
	end = now_ms() + 10000;
	while (metric_sum(&f, "cutover_http_queued") != 1 && now_ms() < end)
		nap_ms(5);
	assert_int_equal(metric_sum(&f, "cutover_http_queued"), 1);
	close(fd);
	/* The store answers again: the hung claim ends, the queued one gets
	 * the slot and finds its client gone. */
	co_test_etcd_thaw(&co_test_group_etcd);
	pthread_join(tha, NULL);
	end = now_ms() + 10000;
	while ((metric_sum(&f, "cutover_http_queued") != 0 ||
		co_server_inflight(f.srv) != 0) &&
	       now_ms() < end)
		nap_ms(5);
	assert_int_equal(metric_sum(&f, "cutover_http_queued"), 0);
	assert_int_equal(co_server_inflight(f.srv), 0);
	assert_true(available(&f, "G1"));
	assert_int_equal(
	    metric_sum(&f, "cutover_http_refused_total{reason=\"client_gone\"}"), 1);
	/* Q0's hung claim was the only one routed. */
	assert_int_equal(metric_sum(&f, "cutover_ops_total{op=\"task_claim\""), 1);
	print_message("case: a queued claim whose client closed -> not run (G1 still "
		      "available), counted as client_gone\n");
	fx_close(&f);
}

/* --- replies that carry records (each record's JSON spliced in once) --- */

static void a_lost_claim_and_a_list_carry_whole_records(void **state)
{
	co_test_serve f;
	co_test_resp r;
	cJSON *o;
	const cJSON *rec, *it;
	int n = 0;

	(void)state;
	fx_open(&f, "shadow", 0, 0, 0);
	create(&f, "T1");
	create(&f, "T2");
	assert_int_equal(
	    call(&f, "POST", "/v1/tasks/T1/claim", "{\"swarm\":\"S1\"}", NULL), 200);
	assert_int_equal(call(&f, "POST", "/v1/tasks/T1/claim", "{\"swarm\":\"S2\"}", &r),
			 409);
	o = cJSON_Parse(r.body);
	assert_non_null(o);
	rec = cJSON_GetObjectItemCaseSensitive(o, "record");
	assert_string_equal(
	    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "owner")), "S1");
	assert_non_null(cJSON_GetObjectItemCaseSensitive(o, "error"));
	cJSON_Delete(o);
	free(r.body);
	assert_int_equal(call(&f, "GET", "/v1/tasks", NULL, &r), 200);
	o = cJSON_Parse(r.body);
	assert_true(cJSON_IsArray(o));
	cJSON_ArrayForEach(it, o)
	{
		assert_non_null(
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id")));
		n++;
	}
	assert_int_equal(n, 2);
	cJSON_Delete(o);
	free(r.body);
	assert_int_equal(call(&f, "GET", "/v1/tasks?status=claimed", NULL, &r), 200);
	o = cJSON_Parse(r.body);
	assert_int_equal(cJSON_GetArraySize(o), 1);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
				cJSON_GetArrayItem(o, 0), "id")),
			    "T1");
	cJSON_Delete(o);
	free(r.body);
	assert_int_equal(call(&f, "GET", "/v1/tasks?status=failed", NULL, &r), 200);
	assert_string_equal(r.body, "[]");
	free(r.body);
	{
		/* a body past the request's inline buffer (1 KiB) arrives whole */
		char big[8192], *p = big;
		int i;

		p += sprintf(p, "{\"id\":\"T3\",\"metadata\":{\"notes\":\"");
		for (i = 0; i < 6000; i++)
			*p++ = (char)('a' + i % 26);
		sprintf(p, "\"}}");
		assert_int_equal(call(&f, "POST", "/v1/tasks", big, &r), 201);
		o = cJSON_Parse(r.body);
		rec = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(o, "metadata"), "notes");
		assert_int_equal(strlen(cJSON_GetStringValue(rec)), 6000);
		cJSON_Delete(o);
		free(r.body);
	}
	fx_close(&f);
}

/* --- watch delivery --- */

static void sse_in_shadow_delivers_without_waiting_for_the_poll(void **state)
{
	static const char watch[] =
	    "GET /v1/watch?prefix=tasks/ HTTP/1.1\r\nHost: x\r\n\r\n";
	char buf[65536];
	size_t len = 0;
	co_test_serve f;
	int64_t end;
	int fd, seen = 0;

	(void)state;
	/* git polled every 30 s: an event within the bound below is not the poll's */
	fx_open(&f, "shadow", 0, 0, 30000);
	fd = raw_connect(f.port);
	raw_send(fd, watch);
	/* The stream's headers: the watch is open on the server. */
	end = now_ms() + 10000;
	buf[0] = '\0';
	while (!strstr(buf, "\r\n\r\n") && now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t k;

		if (poll(&p, 1, 100) <= 0)
			continue;
		k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		assert_true(k > 0);
		len += (size_t)k;
		buf[len] = '\0';
	}
	assert_non_null(strstr(buf, "200"));
	create(&f, "W1");
	/* A generous bound, far under the 30 s poll. */
	end = now_ms() + 10000;
	while (!(seen = strstr(buf, "\"id\":\"W1\"") != NULL) && now_ms() < end &&
	       len < sizeof(buf) - 1) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t k;

		if (poll(&p, 1, 100) <= 0)
			continue;
		k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (k <= 0)
			break;
		len += (size_t)k;
		buf[len] = '\0';
	}
	close(fd);
	if (!seen)
		fail_msg("no event for W1 within 10 s (git polls every 30 s):\n%s", buf);
	assert_non_null(strstr(buf, "event: put"));
	{
		/* the event's data is one JSON object holding the whole record */
		char *d = strstr(buf, "data: "), *e;
		cJSON *o;

		assert_non_null(d);
		d += 6;
		assert_non_null(e = strchr(d, '\n'));
		*e = '\0';
		assert_non_null(o = cJSON_Parse(d));
		assert_string_equal(
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(o, "record"), "id")),
		    "W1");
		assert_string_equal(
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type")),
		    "put");
		cJSON_Delete(o);
	}
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(queued_past_the_deadline_get_503_and_never_reach_the_store),
	    cmocka_unit_test(a_claim_whose_client_left_while_queued_is_not_run),
	    cmocka_unit_test(a_lost_claim_and_a_list_carry_whole_records),
	    cmocka_unit_test(sse_in_shadow_delivers_without_waiting_for_the_poll),
	};

	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
