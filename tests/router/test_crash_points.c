/*
 * test_crash_points.c - the router process SIGKILLed at every step of a
 * routed write, in every mode that has a secondary (issue 16, point 5).
 *
 * The matrix below is the whole test: for each mode (shadow; dual 50 with
 * an ID git decides and one etcd decides; etcd), each step of routed_write
 * (router.c's test-only crash points: after_intent, after_primary,
 * after_secondary, before_clear) and each operation (a create; a claim of
 * a task created and acknowledged before), the real `cutover` binary runs
 * the write with $CUTOVER_CRASH_AT set and dies there (kill -9 by itself).
 * A step a mode never reaches (an asynchronous secondary is never mirrored
 * directly, so in dual and etcd no write passes after_secondary; only
 * shadow's does) lets the write finish, and it is then acknowledged like
 * any other.
 *
 * Then the "restart": more `cutover` commands on the same state dir, with
 * the clock moved past the in-flight window so that the dead process's
 * intents count as left by a crash (CUTOVER_CLOCK_OFFSET): a second swarm
 * claims the task (it must lose exactly when the dead claim reached the
 * primary), and `cutover reconcile` drains the outbox and must pass.
 * Checked directly in both stores: every acknowledged write is present in
 * both, a create is in both or in neither (never in one only), and a claim
 * has one winner, the same in both stores.
 */
/* cmocka needs these first, in this order (cli_fixture.h includes them). */
#include "cli/cli_fixture.h"

#include "core/error.h"
#include "core/record.h"
#include "flags/bucket.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "store/etcd_store.h"
#include "store/git_store.h"
#include "store/store.h"

typedef enum { OP_CREATE, OP_CLAIM } crash_op;

typedef struct crash_case {
	const char *stage; /* "shadow", "50", "etcd" */
	int etcd_decides;  /* the ID's primary is etcd (picks the ID's bucket) */
	const char *step;  /* $CUTOVER_CRASH_AT */
	crash_op op;
	int reached; /* the write reaches the step (else it completes) */
} crash_case;

/* clang-format off */
#define STEPS(stage, etcd, async, op)                                            \
	{stage, etcd, "after_intent",    op, 1},                                   \
	{stage, etcd, "after_primary",   op, 1},                                   \
	{stage, etcd, "after_secondary", op, !(async)},                            \
	{stage, etcd, "before_clear",    op, 1}

static const crash_case matrix[] = {
	/*     stage     etcd decides  async secondary */
	STEPS("shadow",  0,            0, OP_CREATE),
	STEPS("shadow",  0,            0, OP_CLAIM),
	STEPS("50",      0,            1, OP_CREATE),
	STEPS("50",      0,            1, OP_CLAIM),
	STEPS("50",      1,            1, OP_CREATE),
	STEPS("50",      1,            1, OP_CLAIM),
	STEPS("etcd",    1,            1, OP_CREATE),
	STEPS("etcd",    1,            1, OP_CLAIM),
};
/* clang-format on */

#define N_CASES (sizeof(matrix) / sizeof(matrix[0]))

/* What the matrix found, for the report. */
static int n_crashed, n_completed, n_acked, n_acked_lost, n_double_winners;

/* An ID whose bucket puts it on etcd (or git) at 50%. */
static void pick_id(char *out, size_t len, int idx, int etcd_decides)
{
	for (int k = 0;; k++) {
		snprintf(out, len, "crash-%d-%d", idx, k);
		if (co_bucket_etcd_primary(out, 50) == etcd_decides)
			return;
	}
}

static void save_stage(fx *f, const char *stage)
{
	co_flags fl;
	co_stage s;
	char path[320];

	snprintf(path, sizeof(path), "%s/flags.yaml", f->state);
	co_flags_init(&fl);
	assert_int_equal(co_stage_parse(&s, stage), 0);
	assert_int_equal(co_stage_apply(&fl, s), 0);
	assert_int_equal(co_flags_save(&fl, path), 0);
}

/* The record `id` in each store (NULL where absent). */
static void read_both(fx *f, const char *id, co_record **g, co_record **e)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	const char *eps[1] = {fx_etcd.endpoint};
	co_store *gs = NULL, *es = NULL;
	int rc;

	go.repo = f->repo;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = f->e_prefix + strlen("CUTOVER_ETCD_PREFIX=");
	assert_int_equal(co_git_store_open(&gs, &go), 0);
	assert_int_equal(co_etcd_store_open(&es, &eo), 0);
	*g = *e = NULL;
	rc = co_store_get(g, gs, CO_KIND_TASK, id);
	assert_true(rc == 0 || rc == CO_ENOTFOUND);
	rc = co_store_get(e, es, CO_KIND_TASK, id);
	assert_true(rc == 0 || rc == CO_ENOTFOUND);
	co_store_free(gs);
	co_store_free(es);
}

static const char *owner_of(const co_record *r)
{
	return r && r->owner ? r->owner : "";
}

/* `cutover reconcile` until it no longer waits on the drain; its verdict. */
static void reconcile_passes(fx *f, const crash_case *c)
{
	char *out = NULL, *err = NULL;
	int rc = -1;

	for (int i = 0; i < 20; i++) {
		free(out);
		free(err);
		rc = fx_run(f, &out, &err, "reconcile", "--no-rollback");
		if (rc == 0 || rc == 1 || rc == 2 || rc == 3)
			break; /* a verdict, or an error: not "drain pending" */
	}
	if (rc != 0)
		fail_msg("%s/%s/%s: reconcile exit %d\n%s%s", c->stage, c->step,
			 c->op == OP_CLAIM ? "claim" : "create", rc, out, err);
	free(out);
	free(err);
}

static void run_case(fx *f, const crash_case *c, int idx)
{
	char id[64], at[64];
	co_record *g, *e;
	int rc, b_rc;

	pick_id(id, sizeof(id), idx, c->etcd_decides);
	save_stage(f, c->stage);
	if (c->op == OP_CLAIM) {
		fx_expect(0, f, "task", "create", id, "--type", "build");
		n_acked++; /* the create: acknowledged, must survive */
	}
	snprintf(at, sizeof(at), "CUTOVER_CRASH_AT=%s", c->step);
	fx_setenv(f, 0, at);
	if (c->op == OP_CLAIM)
		rc = fx_run(f, NULL, NULL, "task", "claim", id, "--swarm", "swarm-a",
			    "--ttl", "600");
	else
		rc = fx_run(f, NULL, NULL, "task", "create", id, "--type", "build");
	/* co_test_cutover gives -1 for a child that did not exit */
	if (c->reached && rc != -1)
		fail_msg("%s/%s: wanted a crash, the write exited %d", c->stage, c->step,
			 rc);
	if (!c->reached && rc != 0)
		fail_msg("%s/%s: step never reached, yet exit %d", c->stage, c->step, rc);
	c->reached ? n_crashed++ : (n_completed++, n_acked++);

	/* The restart: later commands, 20 s later for the outbox. */
	fx_setenv(f, 0, "CUTOVER_CRASH_AT");
	fx_setenv(f, 1, "CUTOVER_CLOCK_OFFSET=20");
	b_rc = 0;
	if (c->op == OP_CLAIM)
		b_rc = fx_run(f, NULL, NULL, "task", "claim", id, "--swarm", "swarm-b",
			      "--ttl", "600");
	reconcile_passes(f, c);
	fx_setenv(f, 1, "CUTOVER_CLOCK_OFFSET");

	read_both(f, id, &g, &e);
	if ((g == NULL) != (e == NULL))
		fail_msg("%s/%s: %s in one store only (git %s, etcd %s)", c->stage,
			 c->step, id, g ? "has it" : "lacks it",
			 e ? "has it" : "lacks it");
	if (c->op == OP_CREATE) {
		/* The primary committed from after_primary on (and a completed
		 * write was acknowledged): then it must be there. */
		int committed = !c->reached || strcmp(c->step, "after_intent") != 0;

		if (committed && g == NULL) {
			n_acked_lost += !c->reached;
			fail_msg("%s/%s: %s committed on the primary, lost", c->stage,
				 c->step, id);
		}
		if (!committed && g != NULL)
			fail_msg("%s/%s: %s appeared though the primary was never "
				 "written",
				 c->stage, c->step, id);
	} else {
		/* swarm-a's claim reached the primary unless it died at
		 * after_intent; then swarm-b must lose to it, else win. */
		int a_won = !c->reached || strcmp(c->step, "after_intent") != 0;
		const char *want = a_won ? "swarm-a" : "swarm-b";

		if (g == NULL) {
			n_acked_lost++;
			fail_msg("%s/%s: acknowledged create of %s lost", c->stage,
				 c->step, id);
		}
		if (strcmp(owner_of(g), owner_of(e)) != 0 ||
		    strcmp(owner_of(g), want) != 0 || b_rc != (a_won ? 3 : 0)) {
			n_double_winners++;
			fail_msg("%s/%s: claim of %s: git owner \"%s\", etcd \"%s\", "
				 "swarm-b exit %d; wanted one winner, %s",
				 c->stage, c->step, id, owner_of(g), owner_of(e), b_rc,
				 want);
		}
	}
	co_record_free(g);
	co_record_free(e);
}

static void router_killed_at_every_step_of_every_mode_is_mended(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_CASES; i++) {
		fx *f = NULL;

		assert_int_equal(fx_setup(&f, fx_etcd.endpoint), 0);
		run_case(f, &matrix[i], (int)i);
		fx_teardown(f);
	}
	print_message("crash points: %zu cases, %d crashed and mended, %d completed; "
		      "%d acknowledged writes, %d lost; %d double winners\n",
		      N_CASES, n_crashed, n_completed, n_acked, n_acked_lost,
		      n_double_winners);
	assert_int_equal(n_acked_lost, 0);
	assert_int_equal(n_double_winners, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(router_killed_at_every_step_of_every_mode_is_mended),
	};
	return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
