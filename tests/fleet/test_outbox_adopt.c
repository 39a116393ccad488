/*
 * test_outbox_adopt.c - issue 18 point 5 with the real binary: two `cutover
 * serve` routers in fleet mode (each its own state dir) sharing one etcd
 * and one git repo, stage etcd (git the asynchronous secondary).  One
 * router's git writes fail (the disk-fault injector in LD_PRELOAD), so
 * what it owes git piles up in its outbox; it is SIGKILLed mid-load of
 * claims.  `cutover outbox adopt --state-dir <its dir>` from another place
 * is refused while a live member says it owns that dir, then drains it;
 * `cutover reconcile` passes and every claim that was acknowledged is in
 * both stores.  Adopting a live router's dir is refused, fleet mode or
 * not, and changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka needs the headers above first. */
#include <cmocka.h>

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/outbox.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_child.h"
#include "router/fleet.h"

#define TOKEN "fleet-test-admin-token-0123456789"
#define N_TASKS 60
#define CLAIM "{\"swarm\":\"s-load\",\"ttl\":600}"

/* One place that runs cutover: a dir with its config (and state dir). */
typedef struct place {
	char dir[256];
	char e_config[480], e_path[1100], e_home[320], e_preload[400], e_ctl[400];
	const char *env[8];
} place;

typedef struct fixture {
	co_test_etcd etcd;
	char repo[256], ctl[320];
	place r1, r2, op, off, opf; /* opf: an operator whose git writes fail */
} fixture;

static int place_new(place *p, const fixture *fx, const char *id, int fleet, int faulty)
{
	char path[400];
	FILE *f;
	int n = 0;

	if (co_test_tmpdir(p->dir, sizeof p->dir) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/admin.token", p->dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(TOKEN "\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/cutover.yaml", p->dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f,
		"git: {repo: %s}\n"
		"etcd: {endpoints: [%s], prefix: /data/}\n"
		"state_dir: %s/state\n"
		"admin_token_file: %s/admin.token\n"
		"fleet: {enabled: %s, prefix: /fleet-test/, id: %s, ttl: 1s}\n",
		fx->repo, fx->etcd.endpoint, p->dir, p->dir, fleet ? "true" : "false",
		id);
	fclose(f);
	snprintf(p->e_config, sizeof p->e_config, "CUTOVER_CONFIG=%s", path);
	snprintf(p->e_path, sizeof p->e_path, "PATH=%s",
		 getenv("PATH") ? getenv("PATH") : "");
	snprintf(p->e_home, sizeof p->e_home, "HOME=%s", p->dir);
	p->env[n++] = p->e_config;
	p->env[n++] = p->e_path;
	p->env[n++] = p->e_home;
	if (faulty) { /* its writes fail while fx->ctl says so */
		snprintf(p->e_preload, sizeof p->e_preload, "LD_PRELOAD=%s",
			 CUTOVER_FAULTS_LIB);
		snprintf(p->e_ctl, sizeof p->e_ctl, "CUTOVER_FAULTS_CTL=%s", fx->ctl);
		p->env[n++] = p->e_preload;
		p->env[n++] = p->e_ctl;
		p->env[n++] = "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1";
	}
	p->env[n] = NULL;
	return 0;
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof *fx);
	char dir[256];

	signal(SIGPIPE, SIG_IGN);
	if (!fx || co_test_etcd_start(&fx->etcd) != 0 ||
	    co_test_git_repo_new(fx->repo, sizeof fx->repo) != 0 ||
	    co_test_tmpdir(dir, sizeof dir) != 0)
		return -1;
	snprintf(fx->ctl, sizeof fx->ctl, "%s/faults.ctl", dir);
	if (place_new(&fx->r1, fx, "r1", 1, 0) != 0 ||
	    place_new(&fx->r2, fx, "r2", 1, 1) != 0 ||
	    place_new(&fx->op, fx, "operator", 1, 0) != 0 ||
	    place_new(&fx->off, fx, "off", 0, 0) != 0 ||
	    place_new(&fx->opf, fx, "operator-f", 1, 1) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	char dir[320], *slash;

	co_test_etcd_stop(&fx->etcd);
	snprintf(dir, sizeof dir, "%s", fx->ctl);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	co_test_rmrf(dir);
	co_test_rmrf(fx->repo);
	co_test_rmrf(fx->r1.dir);
	co_test_rmrf(fx->r2.dir);
	co_test_rmrf(fx->op.dir);
	co_test_rmrf(fx->off.dir);
	co_test_rmrf(fx->opf.dir);
	free(fx);
	return 0;
}

/* Git writes of the faulty place fail with EIO (on) or not (off). */
static void git_faults(const fixture *fx, int on)
{
	char tmp[400];
	FILE *f;

	if (!on) {
		unlink(fx->ctl);
		return;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", fx->ctl);
	assert_non_null(f = fopen(tmp, "w"));
	fprintf(f, "path=%s write=EIO sync=EIO\n", fx->repo);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, fx->ctl), 0);
}

/* Run cutover in place p with NULL-terminated args; exit status. */
static int run(char **out, char **err, const place *p, const char *const *argv)
{
	int rc = co_test_cutover(out, err, p->env, argv);

	if (rc != 0 && err && *err) /* what a failing step said, for the log */
		fprintf(stderr, "cutover %s %s: exit %d: %s", argv[0],
			argv[1] ? argv[1] : "", rc, *err);
	return rc;
}

#define RUN(out, err, p, ...) run(out, err, p, (const char *const[]){__VA_ARGS__, NULL})

/* 1 if router `id` is listed by `status --fleet` in place p (and, when
 * `current`, on the fleet's epoch). */
static int listed(const place *p, const char *id, int current)
{
	char *out = NULL, *err = NULL;
	const cJSON *r;
	cJSON *o = NULL;
	int found = 0;

	if (RUN(&out, &err, p, "--json", "status", "--fleet") == 0)
		o = cJSON_Parse(out);
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(o, "routers"))
	{
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "id");

		if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0 &&
		    !(current &&
		      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "behind"))))
			found = 1;
	}
	cJSON_Delete(o);
	free(out);
	free(err);
	return found;
}

/* Poll (bounded) until router `id` is listed (want 1) or gone (want 0). */
static int wait_router(const place *p, const char *id, int want, int timeout_ms)
{
	struct timespec pause = {0, 100 * 1000000L};
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 100) {
		if (listed(p, id, want) == want)
			return 0;
		nanosleep(&pause, NULL);
	}
	return -1;
}

/* Poll (bounded) until the flags file of place p is at `stage`. */
static int wait_stage(const place *p, co_stage stage, int timeout_ms)
{
	struct timespec pause = {0, 20 * 1000000L};
	char path[400];
	int waited;

	snprintf(path, sizeof path, "%s/state/flags.yaml", p->dir);
	for (waited = 0; waited <= timeout_ms; waited += 20) {
		co_flags f;

		if (co_flags_load(&f, path) == 0 && co_stage_of(&f) == stage)
			return 0;
		nanosleep(&pause, NULL);
	}
	return -1;
}

/* Entries pending in the outbox of state dir `dir` (closed again at once). */
static int64_t outbox_depth(const char *dir)
{
	co_state *st = NULL;
	int64_t depth = -1;

	if (co_state_open(&st, dir) == 0)
		co_outbox_depth(&depth, st, NULL);
	co_state_close(st);
	return depth;
}

/* The load: claims on one router, one after another, each logged if acked. */
typedef struct load {
	const char *base;
	int acked[N_TASKS];
	atomic_int n_acked;
} load;

static void *load_main(void *arg)
{
	load *l = arg;
	CURL *c = curl_easy_init();
	int i;

	for (i = 0; c && i < N_TASKS; i++) {
		char path[64];
		co_test_resp resp = {0};
		long status;

		snprintf(path, sizeof path, "/v1/tasks/T%02d/claim", i);
		status = co_test_http_on(c, &resp, l->base, "POST", path, CLAIM,
					 strlen(CLAIM), NULL);
		if (status != 200 && status > 0)
			print_message("claim T%02d: %ld %s\n", i, status, resp.body);
		free(resp.body);
		if (status < 0)
			break; /* its router is gone */
		if (status == 200) {
			l->acked[i] = 1;
			atomic_fetch_add(&l->n_acked, 1);
		}
	}
	curl_easy_cleanup(c);
	return NULL;
}

/* The tasks a store holds (--backend), as a cJSON array. */
static cJSON *tasks_in(const place *p, const char *backend)
{
	char *out = NULL, *err = NULL;
	cJSON *o = NULL;

	if (RUN(&out, &err, p, "--backend", backend, "--json", "task", "list") == 0)
		o = cJSON_Parse(out);
	free(out);
	free(err);
	return o;
}

/* 1 if `tasks` holds task `id` claimed by `owner`. */
static int claimed_in(const cJSON *tasks, const char *id, const char *owner)
{
	const cJSON *t;

	cJSON_ArrayForEach(t, tasks)
	{
		const cJSON *i = cJSON_GetObjectItemCaseSensitive(t, "id");
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(t, "owner");
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(t, "status");

		if (cJSON_IsString(i) && strcmp(i->valuestring, id) == 0)
			return cJSON_IsString(o) && strcmp(o->valuestring, owner) == 0 &&
			       cJSON_IsString(s) &&
			       strcmp(s->valuestring, "claimed") == 0;
	}
	return 0;
}

static void a_killed_routers_outbox_is_adopted_and_nothing_acked_is_lost(void **state)
{
	fixture *fx = *state;
	const char *ep[] = {fx->etcd.endpoint};
	co_fleet_opts fo = {.endpoints = ep, .n_endpoints = 1, .prefix = "/fleet-test/"};
	co_test_serve_child s1, s2;
	char r2_state[320], *out = NULL, *err = NULL;
	struct timespec pause = {0, 20 * 1000000L};
	co_fleet *fleet;
	co_fleet_member m;
	co_fleet_reg *reg;
	co_test_resp resp;
	pthread_t th;
	load l;
	cJSON *git, *etcd, *o;
	int64_t owed;
	int i, waited, n_acked;

	snprintf(r2_state, sizeof r2_state, "%s/state", fx->r2.dir);
	assert_int_equal(co_test_serve_child_start(&s1, fx->r1.dir, fx->r1.env, NULL), 0);
	assert_int_equal(co_test_serve_child_start(&s2, fx->r2.dir, fx->r2.env, NULL), 0);
	assert_int_equal(wait_router(&fx->op, "r1", 1, 10000), 0);
	assert_int_equal(wait_router(&fx->op, "r2", 1, 10000), 0);
	assert_int_equal(RUN(&out, &err, &fx->op, "stage", "etcd", "--force"), 0);
	free(out);
	free(err);
	assert_int_equal(wait_stage(&fx->r1, CO_STAGE_ETCD, 10000), 0);
	assert_int_equal(wait_stage(&fx->r2, CO_STAGE_ETCD, 10000), 0);
	for (i = 0; i < N_TASKS; i++) {
		char body[64];

		snprintf(body, sizeof body, "{\"id\":\"T%02d\"}", i);
		co_test_http(&resp, s1.base, "POST", "/v1/tasks", body, strlen(body),
			     NULL);
		assert_int_equal(resp.status, 201);
		free(resp.body);
	}

	/* r2's git writes fail: what it owes git stays in its outbox */
	git_faults(fx, 1);
	memset(&l, 0, sizeof l);
	l.base = s2.base;
	atomic_init(&l.n_acked, 0);
	assert_int_equal(pthread_create(&th, NULL, load_main, &l), 0);
	for (waited = 0; atomic_load(&l.n_acked) < N_TASKS / 3 && waited < 60000;
	     waited += 20)
		nanosleep(&pause, NULL);
	kill(co_test_serve_child_serve_pid(&s2), SIGKILL); /* mid-load */
	waitpid(s2.pid, NULL, 0);
	s2.pid = 0;
	pthread_join(th, NULL);
	git_faults(fx, 0);
	n_acked = atomic_load(&l.n_acked);
	print_message("claims acknowledged by r2 before it died: %d of %d\n", n_acked,
		      N_TASKS);
	assert_true(n_acked >= N_TASKS / 3 && n_acked < N_TASKS);
	owed = outbox_depth(r2_state);
	print_message("entries in r2's outbox at its death: %lld\n", (long long)owed);
	assert_true(owed > 0);

	/* r2's own lease (ttl 1 s) runs out */
	assert_int_equal(wait_router(&fx->op, "r2", 0, 10000), 0);
	/* while a live member says it owns that dir (as r2 did until its
	 * lease ran out), adopt refuses and changes nothing */
	assert_int_equal(co_fleet_open(&fleet, &fo), 0);
	memset(&m, 0, sizeof m);
	snprintf(m.id, sizeof m.id, "r2-ghost");
	snprintf(m.host, sizeof m.host, "h");
	snprintf(m.state_dir, sizeof m.state_dir, "%.200s", r2_state);
	assert_int_equal(co_fleet_register(&reg, fleet, &m, 5, NULL, NULL), 0);
	assert_int_equal(
	    RUN(&out, &err, &fx->op, "outbox", "adopt", "--state-dir", r2_state), 1);
	assert_non_null(strstr(err, "live router r2-ghost"));
	free(out);
	free(err);
	assert_int_equal(outbox_depth(r2_state), owed);
	co_fleet_unregister(reg);
	co_fleet_close(fleet);

	/* adopted where git does not take writes: exit 2, every entry kept */
	git_faults(fx, 1);
	assert_int_equal(RUN(&out, &err, &fx->opf, "outbox", "adopt", "--state-dir",
			     r2_state, "--wait-drain", "1s"),
			 2);
	assert_non_null(strstr(err, "left"));
	free(out);
	free(err);
	git_faults(fx, 0);
	assert_int_equal(outbox_depth(r2_state), owed);

	/* adopted: every entry drained */
	assert_int_equal(RUN(&out, &err, &fx->op, "--json", "outbox", "adopt",
			     "--state-dir", r2_state, "--wait-drain", "40s"),
			 0);
	assert_non_null(o = cJSON_Parse(out));
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "left")->valueint, 0);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "before")->valueint,
			 (int)owed);
	cJSON_Delete(o);
	free(out);
	free(err);
	assert_int_equal(outbox_depth(r2_state), 0);
	assert_int_equal(RUN(&out, &err, &fx->op, "audit"), 0);
	assert_non_null(strstr(out, "outbox adopt"));
	free(out);
	free(err);

	/* the stores agree, and every acknowledged claim is in both */
	assert_int_equal(RUN(&out, &err, &fx->op, "reconcile"), 0);
	free(out);
	free(err);
	/* its report lists what each live router owes (r1: it is alive) */
	assert_int_equal(RUN(&out, &err, &fx->op, "--json", "report"), 0);
	assert_non_null(o = cJSON_Parse(out));
	{
		const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "owed_by_router"),
			    *r;
		int seen_r1 = 0;

		assert_true(cJSON_IsArray(rs));
		cJSON_ArrayForEach(r, rs)
		{
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "router");

			assert_false(strcmp(id->valuestring, "r2") == 0); /* dead */
			if (strcmp(id->valuestring, "r1") == 0) {
				seen_r1 = 1;
				assert_true(cJSON_IsNumber(
				    cJSON_GetObjectItemCaseSensitive(r, "outbox_depth")));
			}
		}
		assert_true(seen_r1);
	}
	cJSON_Delete(o);
	free(out);
	free(err);
	assert_int_equal(RUN(&out, &err, &fx->op, "report", "--format", "markdown"), 0);
	assert_non_null(strstr(out, "## Owed per router"));
	assert_non_null(strstr(out, "| r1 |"));
	free(out);
	free(err);
	assert_int_equal(RUN(&out, &err, &fx->op, "report", "--format", "html"), 0);
	assert_non_null(strstr(out, "<h2>Owed per router"));
	free(out);
	free(err);
	assert_non_null(git = tasks_in(&fx->op, "git"));
	assert_non_null(etcd = tasks_in(&fx->op, "etcd"));
	for (i = 0; i < N_TASKS; i++) {
		char id[8];

		if (!l.acked[i])
			continue;
		snprintf(id, sizeof id, "T%02d", i);
		if (!claimed_in(git, id, "s-load") || !claimed_in(etcd, id, "s-load"))
			fail_msg("acknowledged claim of %s lost (git %d, etcd %d)", id,
				 claimed_in(git, id, "s-load"),
				 claimed_in(etcd, id, "s-load"));
	}
	cJSON_Delete(git);
	cJSON_Delete(etcd);
	assert_int_equal(co_test_serve_child_stop(&s1), 0);
}

static void adopting_a_live_routers_dir_is_refused_and_changes_nothing(void **state)
{
	fixture *fx = *state;
	co_test_serve_child s1;
	char r1_state[320], *out = NULL, *err = NULL;

	snprintf(r1_state, sizeof r1_state, "%s/state", fx->r1.dir);
	assert_int_equal(co_test_serve_child_start(&s1, fx->r1.dir, fx->r1.env, NULL), 0);
	assert_int_equal(wait_router(&fx->op, "r1", 1, 10000), 0);

	/* fleet mode: its membership record names the dir */
	assert_int_equal(
	    RUN(&out, &err, &fx->op, "outbox", "adopt", "--state-dir", r1_state), 1);
	assert_non_null(strstr(err, "live router r1"));
	free(out);
	free(err);
	/* one host, no fleet: the database is open in its process */
	assert_int_equal(
	    RUN(&out, &err, &fx->off, "outbox", "adopt", "--state-dir", r1_state), 1);
	assert_non_null(strstr(err, "is open in process"));
	free(out);
	free(err);
	/* nothing adopted, nothing audited */
	assert_int_equal(RUN(&out, &err, &fx->op, "audit"), 0);
	assert_null(strstr(out, "outbox adopt"));
	free(out);
	free(err);
	/* its own dir, and bad usage: exit 1 */
	assert_int_equal(
	    RUN(&out, &err, &fx->r1, "outbox", "adopt", "--state-dir", r1_state), 1);
	assert_non_null(strstr(err, "own state dir"));
	free(out);
	free(err);
	assert_int_equal(RUN(&out, &err, &fx->op, "outbox", "adopt"), 1);
	assert_non_null(strstr(err, "--state-dir"));
	free(out);
	free(err);
	assert_int_equal(co_test_serve_child_stop(&s1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		a_killed_routers_outbox_is_adopted_and_nothing_acked_is_lost, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		adopting_a_live_routers_dir_is_refused_and_changes_nothing, setup,
		teardown),
	};

	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
