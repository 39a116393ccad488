/*
 * test_webhook_cli.c - webhook events (webhook.h) from real commands.
 *
 * The receiver is a thread of this test on a free loopback port: it either
 * answers 204 and keeps each request, or accepts and never answers (a hung
 * receiver).  A refused port is one bound and closed again.  The binary
 * runs rollback, resume and stage against a real bare repository and etcd
 * with a config file naming the receivers; the test checks each event's
 * HMAC-SHA256 signature with the secret, that a dead receiver leaves the
 * kill switch on when rollback returns and its event queued, and that the
 * queued event is delivered later (in this process, the clock moved past
 * the backoff with CUTOVER_CLOCK_OFFSET: never a sleep) or dropped with an
 * audit row once its attempts are spent.
 */
#include "cli_fixture.h"

#include "core/audit.h"
#include "core/config.h"
#include "core/error.h"
#include "core/runs.h"
#include "core/state.h"
#include "core/webhook.h"
#include "flags/flags.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define SECRET "hook-secret-0123456789"
#define MAX_REQ 32

/* ---- the receiver ---- */

typedef struct rx {
	int fd, port;
	pthread_t th;
	atomic_int silent; /* 1: accept and never answer */
	atomic_int stop;
	pthread_mutex_t lock;
	char *req[MAX_REQ]; /* raw requests, headers and body */
	int n;
	int held[MAX_REQ]; /* connections left unanswered */
	int n_held;
} rx;

/* Read one request (headers, then Content-Length bytes); NULL on failure. */
static char *read_request(int c)
{
	char *buf = calloc(1, 65536), *end;
	size_t have = 0, want = 0;

	while (buf && have < 65535) {
		struct pollfd p = {c, POLLIN, 0};
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0 ||
		    (r = read(c, buf + have, 65535 - have)) <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");

			want = (size_t)(end + 4 - buf) +
			       (cl ? strtoul(cl + 17, NULL, 10) : 0);
			if (have >= want)
				return buf;
		}
	}
	free(buf);
	return NULL;
}

static void *rx_main(void *arg)
{
	rx *x = arg;

	while (!atomic_load(&x->stop)) {
		struct pollfd p = {x->fd, POLLIN, 0};
		char *req;
		int c;

		if (poll(&p, 1, 50) <= 0 || (c = accept(x->fd, NULL, NULL)) < 0)
			continue;
		if (atomic_load(&x->silent)) {
			pthread_mutex_lock(&x->lock);
			if (x->n_held < MAX_REQ)
				x->held[x->n_held++] = c;
			else
				close(c);
			pthread_mutex_unlock(&x->lock);
			continue;
		}
		if ((req = read_request(c)) != NULL) {
			static const char ok[] =
			    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";

			pthread_mutex_lock(&x->lock);
			if (x->n < MAX_REQ)
				x->req[x->n++] = req;
			else
				free(req);
			pthread_mutex_unlock(&x->lock);
			if (write(c, ok, sizeof(ok) - 1) < 0) {
				/* the sender gave up: it retries */
			}
		}
		close(c);
	}
	return NULL;
}

static rx *rx_start(int silent)
{
	rx *x = calloc(1, sizeof(*x));
	struct sockaddr_in a = {0};
	socklen_t len = sizeof(a);

	assert_non_null(x);
	pthread_mutex_init(&x->lock, NULL);
	atomic_init(&x->silent, silent);
	atomic_init(&x->stop, 0);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((x->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	assert_int_equal(bind(x->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(x->fd, 16), 0);
	assert_int_equal(getsockname(x->fd, (struct sockaddr *)&a, &len), 0);
	x->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&x->th, NULL, rx_main, x), 0);
	return x;
}

static void rx_stop(rx *x)
{
	int i;

	atomic_store(&x->stop, 1);
	pthread_join(x->th, NULL);
	close(x->fd);
	for (i = 0; i < x->n; i++)
		free(x->req[i]);
	for (i = 0; i < x->n_held; i++)
		close(x->held[i]);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

/* Requests received so far, waiting (bounded, 30 s) until there are `n`. */
static int rx_wait(rx *x, int n)
{
	int i, have = 0;

	for (i = 0; i < 3000; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		pthread_mutex_lock(&x->lock);
		have = x->n;
		pthread_mutex_unlock(&x->lock);
		if (have >= n)
			break;
		nanosleep(&ts, NULL);
	}
	return have;
}

/* A port nothing listens on (bound, then closed). */
static int refused_port(void)
{
	struct sockaddr_in a = {0};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* ---- reading a request ---- */

/* The value of header `name` in req (static buffer), "" if absent. */
static const char *header(const char *req, const char *name)
{
	static char v[256];
	char pat[80];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "\r\n%s:", name);
	v[0] = '\0';
	if ((p = strcasestr(req, pat)) == NULL)
		return v;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	n = strcspn(p, "\r\n");
	snprintf(v, sizeof(v), "%.*s", (int)n, p);
	return v;
}

static const char *body_of(const char *req)
{
	const char *b = strstr(req, "\r\n\r\n");

	assert_non_null(b);
	return b + 4;
}

/* Check the signature of req with SECRET; its body, parsed. */
static cJSON *verified(const char *req)
{
	const char *body = body_of(req);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;
	char want[80] = "sha256=";
	cJSON *j;

	assert_non_null(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET),
			     (const unsigned char *)body, strlen(body), mac, &len));
	for (i = 0; i < len; i++)
		snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
	assert_string_equal(header(req, "X-Cutover-Signature"), want);
	assert_true(strtoll(header(req, "X-Cutover-Timestamp"), NULL, 10) > 1700000000);
	assert_non_null(strstr(req, "Content-Type: application/json"));
	assert_non_null(j = cJSON_Parse(body));
	assert_string_equal(header(req, "X-Cutover-Delivery"),
			    cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring);
	assert_int_equal(strlen(cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring),
			 32);
	return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

/* ---- configuration ---- */

static char cfg_path[280];

/* Write f's config file: `yaml` below "webhooks:", the secret file beside. */
static void write_config(fx *f, const char *yaml)
{
	char path[400], env[300];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/hook.key", f->state);
	assert_non_null(fp = fopen(path, "w"));
	fputs(SECRET "\n", fp);
	fclose(fp);
	snprintf(cfg_path, sizeof(cfg_path), "%s/cutover.yaml", f->state);
	assert_non_null(fp = fopen(cfg_path, "w"));
	fprintf(fp, "webhooks:\n%s", yaml);
	fclose(fp);
	snprintf(env, sizeof(env), "CUTOVER_CONFIG=%s", cfg_path);
	fx_setenv(f, 1, env);
}

static void one_hook(fx *f, int port, const char *extra)
{
	char y[1024];

	snprintf(y, sizeof(y),
		 "  - url: http://127.0.0.1:%d/hook\n    secret_file: %s/hook.key\n%s",
		 port, f->state, extra ? extra : "");
	write_config(f, y);
}

static int64_t pending(fx *f, int64_t *attempts)
{
	co_state *st = NULL;
	int64_t n = 0;

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_webhook_pending(&n, attempts, NULL, 0, st), 0);
	co_state_close(st);
	return n;
}

static int kill_switch_on(fx *f)
{
	char path[400];
	co_flags fl;

	snprintf(path, sizeof(path), "%s/flags.yaml", f->state);
	assert_int_equal(co_flags_load(&fl, path), 0);
	return fl.kill_switch;
}

static void insert_passing_run(fx *f)
{
	co_state *st = NULL;
	co_run run = {0};

	run.started_at = co_state_now_ms() - 1000;
	run.duration_ms = 10;
	run.consistency = 1.0;
	run.verdict = "pass";
	run.action = "none";
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_runs_insert(NULL, st, &run), 0);
	co_state_close(st);
}

/* ---- tests ---- */

static void rollback_resume_and_stage_send_signed_events(void **state)
{
	fx *f = *state;
	rx *x = rx_start(0), *y = rx_start(0);
	char extra[512];
	cJSON *j;

	/* y only wants resumes. */
	snprintf(extra, sizeof(extra),
		 "  - url: http://127.0.0.1:%d/resumes\n    secret: " SECRET
		 "\n    events: [kill_switch.resumed]\n",
		 y->port);
	one_hook(f, x->port, extra);

	fx_expect(0, f, "rollback", "--reason", "etcd p95 doubled");
	assert_int_equal(rx_wait(x, 1), 1);
	j = verified(x->req[0]);
	assert_string_equal(header(x->req[0], "X-Cutover-Event"), "kill_switch.tripped");
	assert_string_equal(jstr(j, "event"), "kill_switch.tripped");
	assert_string_equal(jstr(j, "who"), "tester");
	assert_string_equal(jstr(j, "action"), "rollback");
	assert_string_equal(jstr(j, "reason"), "etcd p95 doubled");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(j, "flags"), "kill_switch")));
	cJSON_Delete(j);

	fx_expect(0, f, "resume", "--reason", "fixed");
	assert_int_equal(rx_wait(x, 2), 2);
	assert_int_equal(rx_wait(y, 1), 1);
	j = verified(y->req[0]);
	assert_string_equal(jstr(j, "event"), "kill_switch.resumed");
	assert_string_equal(jstr(j, "reason"), "fixed");
	cJSON_Delete(j);

	insert_passing_run(f);
	fx_expect(0, f, "stage", "shadow", "--reason", "start");
	assert_int_equal(rx_wait(x, 3), 3);
	j = verified(x->req[2]);
	assert_string_equal(jstr(j, "event"), "stage.changed");
	assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(j, "flags"), "stage"),
			    "shadow");
	assert_non_null(strstr(jstr(j, "detail"), "task_claim git -> shadow"));
	cJSON_Delete(j);

	/* Everything delivered, nothing else sent to y. */
	assert_true(pending(f, NULL) == 0);
	assert_int_equal(y->n, 1);
	rx_stop(x);
	rx_stop(y);
}

static void dead_receivers_do_not_hold_up_the_trip_and_are_retried(void **state)
{
	fx *f = *state;
	rx *hung = rx_start(1);
	int refused = refused_port();
	char extra[512];
	co_webhook_stats ws;
	co_config *c = NULL;
	co_state *st = NULL;
	co_audit_change_list l = {0};
	int64_t attempts = 0;
	int i;

	/* The refused one first: both are attempted within the CLI's budget. */
	snprintf(extra, sizeof(extra),
		 "  - url: http://127.0.0.1:%d/hung\n    secret: " SECRET "\n",
		 hung->port);
	one_hook(f, refused, extra);

	fx_expect(0, f, "rollback", "--reason", "trip with dead hooks");
	assert_true(kill_switch_on(f));
	assert_true(pending(f, &attempts) == 2);
	assert_true(attempts == 1);

	/* Later the hung receiver answers: the retry delivers its event. */
	atomic_store(&hung->silent, 0);
	assert_int_equal(co_config_load(&c, cfg_path), 0);
	assert_int_equal(co_state_open(&st, f->state), 0);
	setenv("CUTOVER_CLOCK_OFFSET", "3600", 1); /* past the backoff */
	assert_int_equal(co_webhook_deliver(&ws, st, c, 10000, NULL), 0);
	assert_int_equal(ws.delivered, 1);
	assert_int_equal(ws.failed, 1);
	assert_int_equal(rx_wait(hung, 1), 1);
	{
		cJSON *j = verified(hung->req[0]);

		assert_string_equal(jstr(j, "reason"), "trip with dead hooks");
		cJSON_Delete(j);
	}

	/* The refused one is given up after its attempts, with an audit row. */
	for (i = 2; i < 40 && pending(f, NULL) > 0; i++) {
		char off[32];

		snprintf(off, sizeof(off), "%d", 3600 * i);
		setenv("CUTOVER_CLOCK_OFFSET", off, 1);
		assert_int_equal(co_webhook_deliver(&ws, st, c, 10000, NULL), 0);
	}
	unsetenv("CUTOVER_CLOCK_OFFSET");
	assert_true(pending(f, NULL) == 0);
	assert_int_equal(co_audit_changes_latest(&l, st, 1), 0);
	assert_string_equal(l.items[0]->action, "webhook dropped");
	assert_non_null(strstr(l.items[0]->detail, "given up after 10 attempts"));
	/* The origin only: a URL's path may be the receiver's secret. */
	{
		char origin[64];

		snprintf(origin, sizeof(origin), "to http://127.0.0.1:%d: ", refused);
		fx_contains(l.items[0]->detail, origin);
		assert_null(strstr(l.items[0]->detail, "/hook"));
	}
	co_audit_change_list_clear(&l);
	co_state_close(st);
	co_config_free(c);
	rx_stop(hung);
}

static void serve_sender_thread_delivers_a_failed_run_and_a_trip(void **state)
{
	fx *f = *state;
	rx *x = rx_start(0);
	co_webhook_sender *ws = NULL;
	co_config *c = NULL;
	co_state *st = NULL;
	co_run run = {0};
	cJSON *j;

	one_hook(f, x->port, NULL);
	assert_int_equal(co_config_load(&c, cfg_path), 0);
	assert_int_equal(co_webhook_configure(c), 0);
	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_webhook_sender_start(&ws, st, c), 0);

	/* A failing reconciliation verdict is an event of its own. */
	assert_int_equal(co_runs_begin(&run.id, st, co_state_now_ms()), 0);
	run.total = 10;
	run.equal = 9;
	run.mismatch = 1;
	run.consistency = 0.9;
	run.verdict = "fail";
	run.action = "kill_switch";
	assert_int_equal(co_runs_finish(st, &run), 0);
	assert_int_equal(rx_wait(x, 1), 1);
	j = verified(x->req[0]);
	assert_string_equal(jstr(j, "event"), "reconcile.failed");
	assert_non_null(strstr(jstr(j, "detail"), "consistency 90.0000%"));
	cJSON_Delete(j);

	/* A trip audited by anyone in this process (here: a trigger's action). */
	assert_int_equal(co_audit_change_add(st, "trigger", "auto-rollback",
					     "kill_switch false -> true",
					     "error rate 7%"),
			 0);
	assert_int_equal(rx_wait(x, 2), 2);
	j = verified(x->req[1]);
	assert_string_equal(jstr(j, "event"), "kill_switch.tripped");
	assert_string_equal(jstr(j, "who"), "trigger");
	cJSON_Delete(j);

	co_webhook_sender_stop(ws);
	co_webhook_unconfigure();
	co_state_close(st);
	co_config_free(c);
	rx_stop(x);
}

/* The event names x received so far, joined by spaces (static buffer). */
static const char *events_seen(rx *x)
{
	static char buf[1024];
	int i;

	buf[0] = '\0';
	pthread_mutex_lock(&x->lock);
	for (i = 0; i < x->n; i++) {
		size_t n = strlen(buf);

		snprintf(buf + n, sizeof(buf) - n, "%s ",
			 header(x->req[i], "X-Cutover-Event"));
	}
	pthread_mutex_unlock(&x->lock);
	return buf;
}

static void reconcile_every_sends_its_events_while_it_runs(void **state)
{
	fx *f = *state;
	rx *x = rx_start(0);
	char *argv[] = {(char *)CUTOVER_BIN, "reconcile", "--every", "1h", NULL};
	char **envp, seen[1024];
	int status = 0, got, running;
	pid_t pid;

	one_hook(f, x->port, NULL);
	/* A task only git has: the run fails (missing_in_etcd). */
	fx_expect(0, f, "--backend", "git", "task", "create", "ONLY-GIT.1");
	envp = fx_make_envp(f->env);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execve(CUTOVER_BIN, argv, envp);
		_exit(127);
	}
	free(envp);
	/* The failing run's events arrive while the loop still runs (its next
	 * run is an hour away): from its sender thread, not from its exit. */
	got = rx_wait(x, 2);
	running = waitpid(pid, &status, WNOHANG) == 0;
	snprintf(seen, sizeof(seen), "%s", events_seen(x));
	/* Stopped before any assertion: a failure leaves no loop behind. */
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	rx_stop(x);
	assert_int_equal(got, 2);
	assert_true(running);
	fx_contains(seen, "reconcile.failed");
	fx_contains(seen, "kill_switch.tripped");
}

static void bad_webhook_config_is_refused_naming_field_and_value(void **state)
{
	static const char *const bad[][2] = {
	    {"  - url: ftp://127.0.0.1/x\n    secret: s\n", "ftp://127.0.0.1/x"},
	    {"  - url: \"http://exa mple/\"\n    secret: s\n", "webhooks[0].url"},
	    {"  - url: http://\n    secret: s\n", "webhooks[0].url"},
	    {"  - url: http://h/\n    secret: s\n    events: [kill_switch.exploded]\n",
	     "kill_switch.exploded"},
	    {"  - url: http://h/\n", "needs a secret_file"},
	    {"  - url: http://h/\n    secret: s\n    secret_file: /x\n", "not both"},
	    {"  - url: http://h/\n    secret_file: /nonexistent/key\n",
	     "/nonexistent/key"},
	    {"  - url: http://h/\n    secret: s\n    retries: 3\n",
	     "webhooks[0].retries"},
	    {"  - secret: s\n", "needs a url"},
	};
	fx *f = *state;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err = NULL;
		int rc;

		write_config(f, bad[i][0]);
		rc = fx_run(f, NULL, &err, "rollback", "--reason", "x");
		if (rc != 1)
			fail_msg("case %zu: exit %d: %s", i, rc, err);
		fx_contains(err, bad[i][1]);
		free(err);
	}
	/* Nothing was changed by any of them. */
	{
		char path[400];

		snprintf(path, sizeof(path), "%s/flags.yaml", f->state);
		assert_int_equal(access(path, F_OK), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(rollback_resume_and_stage_send_signed_events,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		dead_receivers_do_not_hold_up_the_trip_and_are_retried, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		serve_sender_thread_delivers_a_failed_run_and_a_trip, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		reconcile_every_sends_its_events_while_it_runs, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(
		bad_webhook_config_is_refused_naming_field_and_value, fx_test_setup,
		fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
