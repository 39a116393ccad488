/*
 * bench_serve.c - `cutover serve` close to the wire, and SSE delivery
 * (issue 15 points 2 and 5).
 *
 * (1) Claim latency at stage etcd, side by side in one run, each iteration
 *     in a rotating order so that drift in the machine's load hits all
 *     alike: an HTTP claim through serve (in-process, over its own etcd and
 *     bare repo, background drain on) by one libcurl handle kept alive; the
 *     same claim by co_router_claim() in-process (serve's router, no HTTP);
 *     one raw gateway txn (create-if-absent) and a raw range + CAS pair
 *     (what a claim does on the wire today) on one reused libcurl handle
 *     (bench_raw.h); and the floor the ack rule sets: an outbox entry
 *     pushed, then the bare etcd store's claim while a syncer thread
 *     fsyncs the entry's WAL (bench_sync.h), no router.  Prints the five
 *     series and the breakdown: serve / raw txn (target p95 <= 1.25x),
 *     serve / floor (what serve and the router cost over the durability
 *     the ack rule asks for: the project's measure of its own cost), serve
 *     / router (the HTTP layer's own share: parse, JSON, reply) and router
 *     / raw pair (the router and the store: intent fsync, record JSON,
 *     curl).
 * (2) SSE delivery per stage (git, shadow, dual 50, etcd): a GET /v1/watch
 *     client on a raw socket, and a writer creating tasks one at a time;
 *     from each create's ack (the 201 read) to its event read by the
 *     watcher (negative when the event came before the ack: counted as 0).
 *     git is polled at the store's default (30 s): only the commit's own
 *     wake-up can be that fast.  Goal p95 <= 50 ms.
 *
 * Usage: bench_serve [N_claims [N_events]]   (defaults 1000, 100)
 */
#include "bench_raw.h"
#include "bench_sync.h"
#include "bench_util.h"

#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "router/router.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

static co_test_etcd etcd;

static void ratio_line(const char *what, co_bench_stats a, co_bench_stats b)
{
	printf("%-40s p50 %5.2fx   p95 %5.2fx   p99 %5.2fx\n", what, a.p50 / b.p50,
	       a.p95 / b.p95, a.p99 / b.p99);
}

static const char *loadavg(void)
{
	static char buf[64];
	FILE *f = fopen("/proc/loadavg", "r");

	buf[0] = '\0';
	if (f) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	return buf;
}

static int open_serve(co_test_serve *sv, const char *stage, int n)
{
	co_test_serve_opts o = {0};
	static char prefix[64];

	snprintf(prefix, sizeof(prefix), "/bserve%d-%d/", (int)getpid(), n);
	o.endpoint = etcd.endpoint;
	o.prefix = prefix;
	o.stage = stage;
	return co_test_serve_open(sv, &o);
}

/* Create tasks <c>000000.. through the router. */
static int create_tasks(co_router *r, char c, size_t n)
{
	char id[32];
	size_t i;

	for (i = 0; i < n; i++) {
		co_record *t = NULL, *out = NULL;
		int error;

		snprintf(id, sizeof(id), "%c%06zu", c, i);
		if ((error = co_record_new(&t, CO_KIND_TASK, id)) == 0 &&
		    (t->type = strdup("build")) != NULL)
			error = co_router_task_create(&out, r, t);
		co_record_free(t);
		co_record_free(out);
		if (error < 0) {
			fprintf(stderr, "bench: create %s: %s\n", id, co_error_last());
			return -1;
		}
	}
	return 0;
}

/* ---- (1) claims ---- */

static int bench_claims(size_t n)
{
	co_bench_series s_serve, s_router, s_txn, s_pair, s_floor;
	co_bench_stats st_serve, st_router, st_txn, st_pair, st_floor;
	co_state *fst = NULL;
	bsyncer bs;
	pthread_t bth;
	int bstarted = 0;
	char fdir[256] = "";
	co_test_serve sv;
	co_test_resp resp;
	CURL *c = NULL;
	raw rc;
	char key[96], path[64], id[32], *value = NULL;
	const char *body = "{\"swarm\":\"swarm-bench\"}";
	double range_us = 0, t0;
	size_t i, k;
	int error = -1;

	memset(&rc, 0, sizeof(rc));
	memset(&bs, 0, sizeof(bs));
	pthread_mutex_init(&bs.mu, NULL);
	pthread_cond_init(&bs.cv, NULL);
	if (co_bench_series_init(&s_floor, "floor: push, bare claim || WAL fsync", n) < 0 ||
	    co_bench_series_init(&s_serve, "serve HTTP claim", n) < 0 ||
	    co_bench_series_init(&s_router, "router claim in-process", n) < 0 ||
	    co_bench_series_init(&s_txn, "raw gateway txn create-if-absent", n) < 0 ||
	    co_bench_series_init(&s_pair, "raw gateway range + CAS txn", n) < 0)
		return -1;
	if (open_serve(&sv, "etcd", 0) < 0)
		return -1;
	if (raw_open(&rc, etcd.endpoint) < 0 || (c = curl_easy_init()) == NULL ||
	    (value = strdup("{\"id\":\"R000000\",\"kind\":\"task\",\"status\":\"claimed\","
			    "\"owner\":\"swarm-bench\",\"rev\":2}")) == NULL)
		goto done;
	if (create_tasks(sv.r, 'S', n) < 0 || create_tasks(sv.r, 'R', n) < 0 ||
	    create_tasks(sv.r, 'F', n) < 0)
		goto done;
	/* the floor's outbox: a state of its own, its own syncer connection */
	if (co_test_tmpdir(fdir, sizeof(fdir)) < 0 || co_state_open(&fst, fdir) < 0 ||
	    co_state_open(&bs.st, fdir) < 0 ||
	    pthread_create(&bth, NULL, bsyncer_main, &bs) != 0) {
		fprintf(stderr, "bench: floor: no state or syncer: %s\n", co_error_last());
		goto done;
	}
	bstarted = 1;
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "/bench-raw-serve%d/pair/%06zu", (int)getpid(), i);
		if (raw_put(&rc, key, value) < 0)
			goto done;
	}
	/* warm serve's connection and the handle */
	co_test_http_on(c, &resp, sv.base, "GET", "/healthz", NULL, 0, NULL);
	free(resp.body);
	printf("(1) claims at stage etcd: %zu per series, interleaved; load: %s", n,
	       loadavg());
	for (i = 0; i < n; i++) {
		for (k = 0; k < 5; k++) {
			switch ((i + k) % 5) {
			case 0:
				snprintf(path, sizeof(path), "/v1/tasks/S%06zu/claim", i);
				t0 = co_bench_now_us();
				if (co_test_http_on(c, &resp, sv.base, "POST", path, body,
						    strlen(body), NULL) != 200) {
					fprintf(stderr, "bench: %s: %s\n", path, resp.body);
					free(resp.body);
					goto done;
				}
				co_bench_series_add(&s_serve, co_bench_now_us() - t0);
				free(resp.body);
				break;
			case 1: {
				co_record *out = NULL;

				snprintf(id, sizeof(id), "R%06zu", i);
				t0 = co_bench_now_us();
				if (co_router_claim(&out, sv.r, id, "swarm-bench", 0) < 0) {
					fprintf(stderr, "bench: claim %s: %s\n", id,
						co_error_last());
					goto done;
				}
				co_bench_series_add(&s_router, co_bench_now_us() - t0);
				co_record_free(out);
				break;
			}
			case 4: {
				co_record *out = NULL;
				int64_t intent = 0;
				int e;

				snprintf(id, sizeof(id), "F%06zu", i);
				t0 = co_bench_now_us();
				e = co_outbox_push_intent(&intent, fst, "git", "task", id,
							  "@sync:bench");
				if (e == 0)
					bsyncer_request(&bs);
				if (e == 0)
					e = co_store_claim(&out, co_router_store(sv.r, CO_SIDE_ETCD),
							   id, "swarm-bench", 0);
				if (e == 0)
					e = bsyncer_wait(&bs);
				co_bench_series_add(&s_floor, co_bench_now_us() - t0);
				co_record_free(out);
				if (intent)
					co_outbox_ack_intent(fst, intent);
				if (e < 0) {
					fprintf(stderr, "bench: floor %s: %s\n", id, co_error_last());
					goto done;
				}
				break;
			}
			case 2:
				snprintf(key, sizeof(key), "/bench-raw-serve%d/txn/%06zu",
					 (int)getpid(), i);
				t0 = co_bench_now_us();
				if (raw_txn_create(&rc, key, value) < 0)
					goto done;
				co_bench_series_add(&s_txn, co_bench_now_us() - t0);
				break;
			default:
				snprintf(key, sizeof(key), "/bench-raw-serve%d/pair/%06zu",
					 (int)getpid(), i);
				t0 = co_bench_now_us();
				if (raw_range_cas(&rc, key, value, &range_us) < 0)
					goto done;
				co_bench_series_add(&s_pair, co_bench_now_us() - t0);
				break;
			}
		}
	}
	co_bench_header();
	st_serve = co_bench_row(&s_serve);
	st_router = co_bench_row(&s_router);
	st_txn = co_bench_row(&s_txn);
	st_pair = co_bench_row(&s_pair);
	st_floor = co_bench_row(&s_floor);
	printf("\nbreakdown (same run):\n");
	ratio_line("serve claim / raw txn (target p95 1.25x)", st_serve, st_txn);
	ratio_line("serve claim / durability floor", st_serve, st_floor);
	ratio_line("durability floor / raw txn", st_floor, st_txn);
	ratio_line("serve claim / router claim (HTTP layer)", st_serve, st_router);
	ratio_line("router claim / raw range + CAS pair", st_router, st_pair);
	ratio_line("raw range + CAS pair / raw txn", st_pair, st_txn);
	printf("serve's HTTP layer p50 %.0f us; router+store over the raw pair p50 "
	       "%.0f us; the pair over one txn p50 %.0f us\n",
	       st_serve.p50 - st_router.p50, st_router.p50 - st_pair.p50,
	       st_pair.p50 - st_txn.p50);
	printf("target serve p95 <= 1.25x raw txn: %s (%.2fx)\n\n",
	       st_serve.p95 <= 1.25 * st_txn.p95 ? "met" : "NOT met",
	       st_serve.p95 / st_txn.p95);
	error = 0;
done:
	if (bstarted)
		bsyncer_stop(&bs, bth);
	co_state_close(bs.st);
	co_state_close(fst);
	if (fdir[0])
		co_test_rmrf(fdir);
	pthread_cond_destroy(&bs.cv);
	pthread_mutex_destroy(&bs.mu);
	if (c)
		curl_easy_cleanup(c);
	raw_close(&rc);
	free(value);
	co_test_serve_close(&sv);
	co_bench_series_free(&s_serve);
	co_bench_series_free(&s_router);
	co_bench_series_free(&s_txn);
	co_bench_series_free(&s_pair);
	co_bench_series_free(&s_floor);
	return error;
}

/* ---- (2) SSE delivery ---- */

typedef struct watcher {
	int fd;
	size_t n;
	double *seen_us; /* arrival of E<i>'s event, 0 until seen */
	atomic_int stop;
} watcher;

/* Read the stream, noting when each "id":"E<i>" first arrives. */
static void *watch_main(void *p)
{
	watcher *w = p;
	char buf[1 << 16];
	size_t len = 0;

	while (!atomic_load(&w->stop)) {
		struct pollfd pf = {w->fd, POLLIN, 0};
		char *q, *last = buf;
		ssize_t k;
		double now;

		if (poll(&pf, 1, 50) <= 0)
			continue;
		if ((k = recv(w->fd, buf + len, sizeof(buf) - 1 - len, 0)) <= 0)
			break;
		now = co_bench_now_us();
		len += (size_t)k;
		buf[len] = '\0';
		for (q = buf; (q = strstr(q, "\"id\":\"E")) != NULL; q += 7) {
			size_t i = strtoul(q + 7, NULL, 10);

			if (i < w->n && w->seen_us[i] == 0)
				w->seen_us[i] = now;
			last = q + 7;
		}
		/* keep the tail in case an ID was cut */
		if (last == buf && len > 256)
			last = buf + len - 256;
		memmove(buf, last, len - (size_t)(last - buf));
		len -= (size_t)(last - buf);
	}
	return NULL;
}

static int watch_connect(int port)
{
	static const char req[] = "GET /v1/watch?prefix=tasks/ HTTP/1.1\r\nHost: x\r\n\r\n";
	struct sockaddr_in a;
	char buf[4096];
	size_t len = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	double end = co_bench_now_us() + 10e6;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		goto fail;
	/* the stream's headers: the watch is open */
	buf[0] = '\0';
	while (!strstr(buf, "\r\n\r\n") && co_bench_now_us() < end) {
		struct pollfd pf = {fd, POLLIN, 0};
		ssize_t k;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		if ((k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) <= 0)
			goto fail;
		len += (size_t)k;
		buf[len] = '\0';
	}
	if (strstr(buf, " 200 "))
		return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static int bench_sse_stage(const char *stage, int nth, size_t n)
{
	co_bench_series s;
	co_test_serve sv;
	co_test_resp resp;
	watcher w = {0};
	pthread_t th;
	CURL *c = NULL;
	char body[64];
	double *ack = NULL, end;
	size_t i, lost = 0;
	char name[64];
	int error = -1, started = 0;

	snprintf(name, sizeof(name), "SSE ack->event, %s", stage);
	if (co_bench_series_init(&s, name, n) < 0)
		return -1;
	if (open_serve(&sv, strcmp(stage, "dual 50") == 0 ? "50" : stage, 10 + nth) < 0) {
		co_bench_series_free(&s);
		return -1;
	}
	w.n = n;
	if ((w.seen_us = calloc(n, sizeof(double))) == NULL ||
	    (ack = calloc(n, sizeof(double))) == NULL || (c = curl_easy_init()) == NULL ||
	    (w.fd = watch_connect(sv.port)) < 0)
		goto done;
	if (pthread_create(&th, NULL, watch_main, &w) != 0)
		goto done;
	started = 1;
	for (i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "{\"id\":\"E%06zu\"}", i);
		if (co_test_http_on(c, &resp, sv.base, "POST", "/v1/tasks", body,
				    strlen(body), NULL) != 201) {
			fprintf(stderr, "bench: create: %s\n", resp.body);
			free(resp.body);
			goto done;
		}
		ack[i] = co_bench_now_us();
		free(resp.body);
		/* one at a time: the next write after this one's event (or 2 s) */
		end = ack[i] + 2e6;
		while (w.seen_us[i] == 0 && co_bench_now_us() < end)
			usleep(200);
	}
	for (i = 0; i < n; i++) {
		if (w.seen_us[i] == 0)
			lost++;
		else
			co_bench_series_add(&s, w.seen_us[i] > ack[i] ? w.seen_us[i] - ack[i]
								       : 0);
	}
	co_bench_row(&s);
	if (lost)
		printf("    %zu of %zu events not seen within 2 s of the ack\n", lost, n);
	error = 0;
done:
	atomic_store(&w.stop, 1);
	if (started)
		pthread_join(th, NULL);
	if (w.fd > 0)
		close(w.fd);
	if (c)
		curl_easy_cleanup(c);
	free(w.seen_us);
	free(ack);
	co_test_serve_close(&sv);
	co_bench_series_free(&s);
	return error;
}

int main(int argc, char **argv)
{
	static const char *const stages[] = {"git", "shadow", "dual 50", "etcd"};
	size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1000;
	size_t n_ev = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 100;
	int rc = 1;
	size_t i;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (co_test_etcd_start(&etcd) < 0) {
		fprintf(stderr, "bench: no etcd\n");
		return 1;
	}
	printf("bench_serve: etcd %s\n", etcd.endpoint);
	if (n > 0 && bench_claims(n) < 0)
		goto done;
	if (n_ev > 0) {
		printf("(2) SSE delivery, %zu creates per stage, git polled every 30 s "
		       "(the default); load: %s",
		       n_ev, loadavg());
		co_bench_header();
		for (i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
			if (bench_sse_stage(stages[i], (int)i, n_ev) < 0)
				goto done;
		printf("goal: p95 <= 50 ms in every stage\n");
	}
	rc = 0;
done:
	if (rc)
		fprintf(stderr, "bench: failed: %s\n", co_error_last());
	co_test_etcd_stop(&etcd);
	curl_global_cleanup();
	return rc;
}
