/*
 * test_disk_faults.c - full disks and failing fsyncs under the state dir and
 * the git repo (issue 16, point 4), with the injector of faults.h.
 *
 * In-process: a whole `cutover serve` (serve_fixture: router, background
 * drain, HTTP server) over a real etcd and a real bare git repo, in this
 * process, whose write/pwrite64/fsync/fdatasync the injector stands in
 * front of.  Faults are switched on and off while the server runs.  What
 * must hold:
 *  - a write whose intent cannot be written to the outbox (the state dir is
 *    full) is refused with 503 and never acknowledged, and its primary is
 *    never touched (a refused create is nowhere, a refused claim wins
 *    nothing);
 *  - nothing acknowledged before or after is lost (every acknowledged
 *    create and claim is in both stores once the outbox is drained);
 *  - when space returns, writes succeed at once and the background drain
 *    empties the outbox, with no restart;
 *  - the git repo failing writes or fsyncs (EIO): a git-decided write is
 *    refused, the branch does not move, nothing is left locked, `git fsck`
 *    passes, and the next write after recovery works.
 * Out of process: the `cutover` binary with libcutover_faults.so preloaded,
 * for the exit status and message a one-shot command gives.
 *
 * The figures (faults injected by kind, acknowledged writes lost) are
 * printed at the end.
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
#include "core/outbox.h"
#include "core/record.h"
#include "faults/faults.h"
#include "flags/bucket.h"
#include "harness/harness.h"
#include "harness/http.h"
#include "harness/serve_fixture.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_BEFORE 20 /* acknowledged before the fault */
#define N_DURING 20 /* tried while the fault is on */
#define N_AFTER 20  /* after it is cleared */
#define MAX_ACKED (N_BEFORE + N_DURING + N_AFTER)

static co_test_etcd etcd;
static char ctl_dir[256];
static int prefix_seq;
static long n_acked_total, n_acked_lost, n_refused;

typedef struct acked {
	char id[48];
	char owner[32]; /* "" unless a claim was acknowledged */
} acked;

typedef struct run {
	co_test_serve f;
	acked ack[MAX_ACKED];
	int n_ack;
} run;

static void open_run_on(run *r, const char *stage, const co_test_etcd *e)
{
	co_test_serve_opts o = {0};
	char prefix[64];

	memset(r, 0, sizeof(*r));
	snprintf(prefix, sizeof(prefix), "/faults-%d-%d/", (int)getpid(), ++prefix_seq);
	o.endpoint = e->endpoint;
	o.prefix = prefix;
	o.stage = stage;
	o.git_poll_ms = 100;
	o.etcd_timeout_ms = 1000;
	assert_int_equal(co_test_serve_open(&r->f, &o), 0);
}

static void open_run(run *r, const char *stage)
{
	open_run_on(r, stage, &etcd);
}

static long post(run *r, const char *path, const char *body, char **msg)
{
	co_test_resp resp;

	co_test_http(&resp, r->f.base, "POST", path, body, strlen(body), NULL);
	if (msg)
		*msg = resp.body;
	else
		free(resp.body);
	return resp.status;
}

static long create(run *r, const char *id, char **msg)
{
	char body[128];

	snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"build\"}", id);
	return post(r, "/v1/tasks", body, msg);
}

static long claim(run *r, const char *id, const char *swarm, char **msg)
{
	char path[128], body[128];

	snprintf(path, sizeof(path), "/v1/tasks/%s/claim", id);
	snprintf(body, sizeof(body), "{\"swarm\":\"%s\",\"ttl\":600}", swarm);
	return post(r, path, body, msg);
}

static void note_ack(run *r, const char *id, const char *owner)
{
	for (int i = 0; i < r->n_ack; i++) {
		if (strcmp(r->ack[i].id, id) == 0) {
			snprintf(r->ack[i].owner, sizeof(r->ack[i].owner), "%s", owner);
			return;
		}
	}
	assert_true(r->n_ack < MAX_ACKED);
	snprintf(r->ack[r->n_ack].id, sizeof(r->ack[0].id), "%s", id);
	snprintf(r->ack[r->n_ack].owner, sizeof(r->ack[0].owner), "%s", owner);
	r->n_ack++;
	n_acked_total++;
}

/* Creates id-0..n-1 and claims the even ones; each must be acknowledged. */
static void write_acked(run *r, const char *tag, int n)
{
	char id[48];

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%s-%d", tag, i);
		long st = create(r, id, NULL);

		if (st != 201 && st != 200)
			fail_msg("create %s not acknowledged: %ld", id, st);
		note_ack(r, id, "");
		if (i % 2 == 0) {
			assert_int_equal(claim(r, id, "swarm-a", NULL), 200);
			note_ack(r, id, "swarm-a");
		}
	}
}

/* Wait (bounded, 60 s) until the outbox is empty. */
static void wait_drained(run *r)
{
	struct timespec q = {0, 20 * 1000000L};
	int64_t d = -1;

	for (int i = 0; i < 3000; i++) {
		if (co_outbox_depth(&d, r->f.st, NULL) == 0 && d == 0)
			return;
		nanosleep(&q, NULL); /* polls what the drain thread moves */
	}
	fail_msg("outbox still holds %lld entries after 60 s", (long long)d);
}

static const char *owner_of(const co_record *rec)
{
	return rec && rec->owner ? rec->owner : "";
}

/* Every acknowledged write is in both stores, and they hold the same tasks. */
static void assert_nothing_lost(run *r)
{
	co_record_list g = {0}, e = {0};

	for (int i = 0; i < r->n_ack; i++) {
		co_record *a = NULL, *b = NULL;

		co_store_get(&a, r->f.git, CO_KIND_TASK, r->ack[i].id);
		co_store_get(&b, r->f.etcd, CO_KIND_TASK, r->ack[i].id);
		if (a == NULL || b == NULL || strcmp(owner_of(a), r->ack[i].owner) != 0 ||
		    strcmp(owner_of(b), r->ack[i].owner) != 0) {
			n_acked_lost++;
			fail_msg("acknowledged %s (owner \"%s\"): git %s \"%s\", etcd %s "
				 "\"%s\"",
				 r->ack[i].id, r->ack[i].owner, a ? "has" : "lacks",
				 owner_of(a), b ? "has" : "lacks", owner_of(b));
		}
		co_record_free(a);
		co_record_free(b);
	}
	assert_int_equal(co_store_list(&g, r->f.git, CO_KIND_TASK), 0);
	assert_int_equal(co_store_list(&e, r->f.etcd, CO_KIND_TASK), 0);
	assert_int_equal(g.n, e.n);
	for (size_t i = 0; i < g.n; i++)
		assert_true(co_record_equal(g.items[i], e.items[i]));
	co_record_list_clear(&g);
	co_record_list_clear(&e);
}

/* The task is in neither store (a refused create touched no primary). */
static void assert_nowhere(run *r, const char *id)
{
	co_record *a = NULL, *b = NULL;

	if (co_store_get(&a, r->f.git, CO_KIND_TASK, id) != CO_ENOTFOUND ||
	    co_store_get(&b, r->f.etcd, CO_KIND_TASK, id) != CO_ENOTFOUND)
		fail_msg("refused create of %s left it in %s", id, a ? "git" : "etcd");
}

/* ---- the state dir full ---- */

static void full_state_dir(const char *stage)
{
	run *r = calloc(1, sizeof(*r));
	char dir[300], id[48], *msg;
	long before = co_faults_count(CO_FAULT_WRITE, ENOSPC), st;

	assert_non_null(r);
	open_run(r, stage);
	write_acked(r, "pre", N_BEFORE);

	snprintf(dir, sizeof(dir), "%s/", r->f.dir);
	assert_int_equal(co_faults_set(dir, ENOSPC, 0), 0);
	for (int i = 0; i < N_DURING; i++) {
		/* a new task, and a claim of an acknowledged, unclaimed one */
		snprintf(id, sizeof(id), "full-%d", i);
		if ((st = create(r, id, &msg)) != 503)
			fail_msg("%s: create %s on a full state dir: %ld %s", stage, id,
				 st, msg);
		if (strstr(msg, "outbox") == NULL && strstr(msg, "state") == NULL)
			fail_msg("%s: the refusal does not say what is full: %s", stage,
				 msg);
		free(msg);
		snprintf(id, sizeof(id), "pre-%d", 2 * (i % (N_BEFORE / 2)) + 1);
		if ((st = claim(r, id, "swarm-b", &msg)) != 503)
			fail_msg("%s: claim %s on a full state dir: %ld %s", stage, id,
				 st, msg);
		free(msg);
		n_refused += 2;
	}
	assert_true(co_faults_count(CO_FAULT_WRITE, ENOSPC) > before);

	/* Space returns: no restart, the next writes are acknowledged. */
	co_faults_clear();
	write_acked(r, "post", N_AFTER);
	wait_drained(r);
	assert_nothing_lost(r);
	for (int i = 0; i < N_DURING; i++) {
		snprintf(id, sizeof(id), "full-%d", i);
		assert_nowhere(r, id);
	}
	co_test_serve_close(&r->f);
	free(r);
}

static void full_state_dir_in_shadow_refuses_and_resumes(void **state)
{
	(void)state;
	full_state_dir("shadow");
}

static void full_state_dir_in_dual_50_refuses_and_resumes(void **state)
{
	(void)state;
	full_state_dir("50");
}

static void full_state_dir_in_etcd_mode_refuses_and_resumes(void **state)
{
	(void)state;
	full_state_dir("etcd");
}

/* ---- fsync of the state failing ---- */

/*
 * etcd mode acknowledges once the group commit's fsync covers the intent:
 * that fsync failing (EIO, or ENOSPC from a thin-provisioned or network
 * disk) must refuse the waiting writes; once syncs succeed again, writes
 * are acknowledged again without a restart.
 */
static void state_fsync_failing(int err)
{
	run *r = calloc(1, sizeof(*r));
	char dir[300], id[48], *msg;
	long before = co_faults_count(CO_FAULT_SYNC, err), st;

	assert_non_null(r);
	open_run(r, "etcd");
	write_acked(r, "pre", N_BEFORE);

	snprintf(dir, sizeof(dir), "%s/", r->f.dir);
	assert_int_equal(co_faults_set(dir, 0, err), 0);
	for (int i = 0; i < N_DURING; i++) {
		snprintf(id, sizeof(id), "nosync-%d", i);
		if ((st = create(r, id, &msg)) == 201) {
			/* acknowledged: then it must survive like any other */
			note_ack(r, id, "");
		} else if (st != 503) {
			fail_msg("create %s with fsync failing: %ld %s", id, st, msg);
		} else {
			n_refused++;
		}
		free(msg);
	}
	assert_true(co_faults_count(CO_FAULT_SYNC, err) > before);

	co_faults_clear();
	write_acked(r, "post", N_AFTER);
	wait_drained(r);
	assert_nothing_lost(r);
	co_test_serve_close(&r->f);
	free(r);
}

static void state_fsync_eio_refuses_writes_and_resumes(void **state)
{
	(void)state;
	state_fsync_failing(EIO);
}

static void state_fsync_enospc_refuses_writes_and_resumes(void **state)
{
	(void)state;
	state_fsync_failing(ENOSPC);
}

/*
 * Shadow with etcd down: git decides, and the record owed to etcd must be
 * made durable in the outbox before the write is acknowledged.  With the
 * state's fsync failing too, git has committed but the write is refused
 * ("not yet safe"); once the disk and etcd are back, the outbox brings
 * etcd to what git holds, refused writes included, and nothing
 * acknowledged is missing.
 */
static void state_fsync_eio_with_etcd_down_refuses_then_converges(void **state)
{
	run *r = calloc(1, sizeof(*r));
	co_test_etcd own;
	char dir[300], id[48], *msg;
	long st;

	(void)state;
	assert_non_null(r);
	assert_int_equal(co_test_etcd_start(&own), 0);
	open_run_on(r, "shadow", &own);
	write_acked(r, "pre", N_BEFORE);
	co_test_etcd_kill(&own);

	snprintf(dir, sizeof(dir), "%s/", r->f.dir);
	assert_int_equal(co_faults_set(dir, 0, EIO), 0);
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "down-%d", i);
		if ((st = create(r, id, &msg)) != 503)
			fail_msg("create %s, etcd down, fsync failing: %ld %s", id, st,
				 msg);
		free(msg);
		n_refused++;
	}
	co_faults_clear();
	assert_int_equal(co_test_etcd_restart(&own), 0);
	write_acked(r, "post", N_AFTER);
	wait_drained(r);
	assert_nothing_lost(r);
	co_test_serve_close(&r->f);
	co_test_etcd_stop(&own);
	free(r);
}

/* ---- the git repo failing ---- */

static char *git_head(run *r)
{
	char *out = NULL;

	assert_int_equal(co_test_sh(&out, NULL, "git -C '%s' rev-parse main", r->f.repo),
			 0);
	return out;
}

/* The i-th ID that git decides at every stage (its bucket is >= 50). */
static void git_decided_id(char *out, size_t len, int i)
{
	for (int k = 0, n = 0;; k++) {
		snprintf(out, len, "gitfail-%d", k);
		if (!co_bucket_etcd_primary(out, 50) && n++ == i)
			return;
	}
}

/*
 * Creates with git's writes or fsyncs failing: refused where git decides;
 * acknowledged where etcd decides and git is only owed the record (etcd
 * mode), which the drain must then bring to git once it works again.
 */
static void git_failing(const char *stage, int write_err, int sync_err)
{
	int git_decides = strcmp(stage, "etcd") != 0;
	run *r = calloc(1, sizeof(*r));
	char dir[300], id[48], *msg, *head0, *head1, *out = NULL;
	int lock_left, fsck;
	long st;

	assert_non_null(r);
	open_run(r, stage);
	write_acked(r, "pre", N_BEFORE);
	wait_drained(r); /* git owes nothing: only the faulted writes could move it */
	head0 = git_head(r);

	snprintf(dir, sizeof(dir), "%s/", r->f.repo);
	assert_int_equal(co_faults_set(dir, write_err, sync_err), 0);
	for (int i = 0; i < 5; i++) {
		git_decided_id(id, sizeof(id), i);
		st = create(r, id, &msg);
		if (st != (git_decides ? 503 : 201))
			fail_msg("%s: create %s with git failing: %ld %s", stage, id, st,
				 msg);
		free(msg);
		if (git_decides)
			n_refused++;
		else
			note_ack(r, id, "");
	}
	/* Nothing half-committed: the branch did not move, no lock is left,
	 * the repository is whole.  Checked while the faults still hold git
	 * still: once they clear, the drain commits what git is owed, and an
	 * fsck running beside that commit can list the objects before the
	 * commit's are written and read the ref after it moved ("missing
	 * commit"), a race of the check, not a broken repository. */
	head1 = git_head(r);
	lock_left = co_test_sh(NULL, NULL, "test ! -e '%s/refs/heads/main.lock'", r->f.repo);
	fsck = co_test_sh(&out, NULL, "git -C '%s' fsck --no-dangling 2>&1", r->f.repo);
	co_faults_clear();
	assert_string_equal(head0, head1);
	assert_int_equal(lock_left, 0);
	if (fsck != 0)
		fail_msg("git fsck after the faults: %s", out);
	free(out);

	write_acked(r, "post", N_AFTER);
	wait_drained(r);
	assert_nothing_lost(r);
	for (int i = 0; git_decides && i < 5; i++) {
		git_decided_id(id, sizeof(id), i);
		assert_nowhere(r, id);
	}
	free(head0);
	free(head1);
	co_test_serve_close(&r->f);
	free(r);
}

static void git_fsync_eio_fails_the_write_cleanly_in_shadow(void **state)
{
	(void)state;
	git_failing("shadow", 0, EIO);
}

static void git_write_eio_fails_the_write_cleanly_in_shadow(void **state)
{
	(void)state;
	git_failing("shadow", EIO, 0);
}

static void git_full_fails_the_write_cleanly_in_dual_50(void **state)
{
	(void)state;
	git_failing("50", ENOSPC, ENOSPC);
}

static void git_fsync_eio_in_etcd_mode_acks_and_git_catches_up(void **state)
{
	(void)state;
	git_failing("etcd", EIO, EIO);
}

/* ---- a one-shot command, out of process ---- */

static void cli_with_full_state_dir_exits_2_and_changes_nothing(void **state)
{
	char repo[256], sdir[256], e_repo[300], e_state[300], e_etcd[128], e_prefix[64],
	    e_preload[600], e_ctl[340], e_log[340], log[300], dir[300], *out = NULL,
									*err = NULL;
	const char *env[12];
	int rc;

	(void)state;
	assert_int_equal(co_test_git_repo_new(repo, sizeof(repo)), 0);
	assert_int_equal(co_test_tmpdir(sdir, sizeof(sdir)), 0);
	snprintf(log, sizeof(log), "%s/faults.log", ctl_dir);
	snprintf(e_repo, sizeof(e_repo), "CUTOVER_GIT_REPO=%s", repo);
	snprintf(e_state, sizeof(e_state), "CUTOVER_STATE_DIR=%s", sdir);
	snprintf(e_etcd, sizeof(e_etcd), "CUTOVER_ETCD_ENDPOINTS=%s", etcd.endpoint);
	snprintf(e_prefix, sizeof(e_prefix), "CUTOVER_ETCD_PREFIX=/faults-cli-%d/",
		 (int)getpid());
	snprintf(e_preload, sizeof(e_preload), "LD_PRELOAD=%s", CUTOVER_FAULTS_LIB);
	snprintf(e_ctl, sizeof(e_ctl), "CUTOVER_FAULTS_CTL=%s",
		 getenv("CUTOVER_FAULTS_CTL"));
	snprintf(e_log, sizeof(e_log), "CUTOVER_FAULTS_LOG=%s", log);
	env[0] = e_repo;
	env[1] = e_state;
	env[2] = e_etcd;
	env[3] = e_prefix;
	env[4] = e_preload;
	env[5] = e_ctl;
	env[6] = e_log;
	env[7] = "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1";
	env[8] = "CUTOVER_CONFIG";
	env[9] = "CUTOVER_FLAGS";
	env[10] = NULL;

	/* shadow, so that the write has an intent to make durable */
	rc = co_test_cutover(&out, &err, env,
			     (const char *const[]){"stage", "shadow", "--force", NULL});
	if (rc != 0)
		fail_msg("stage shadow: %d %s", rc, err);
	free(out);
	free(err);

	snprintf(dir, sizeof(dir), "%s/", sdir);
	assert_int_equal(co_faults_set(dir, ENOSPC, ENOSPC), 0);
	rc = co_test_cutover(
	    &out, &err, env,
	    (const char *const[]){"task", "create", "CLI1", "--type", "build", NULL});
	co_faults_clear();
	if (rc != 2 || strstr(err, "No space left") == NULL)
		fail_msg("create on a full state dir: exit %d, stderr: %s", rc, err);
	free(out);
	free(err);
	assert_true(co_faults_log_count(log, CO_FAULT_WRITE, ENOSPC) > 0);
	n_refused++;
	rc = co_test_cutover(
	    &out, &err, env,
	    (const char *const[]){"--backend", "git", "task", "get", "CLI1", NULL});
	assert_int_equal(rc, 4); /* the primary was never touched */
	free(out);
	free(err);

	rc = co_test_cutover(
	    &out, &err, env,
	    (const char *const[]){"task", "create", "CLI1", "--type", "build", NULL});
	if (rc != 0)
		fail_msg("create once space returned: exit %d, stderr: %s", rc, err);
	free(out);
	free(err);
	n_acked_total++;
	print_message("cli: %ld write faults injected in the child\n",
		      co_faults_log_count(log, CO_FAULT_WRITE, ENOSPC));
	unlink(log);
	co_test_rmrf(repo);
	co_test_rmrf(sdir);
}

static int group_setup(void **state)
{
	(void)state;
	return co_test_etcd_start(&etcd);
}

static int group_teardown(void **state)
{
	(void)state;
	co_test_etcd_stop(&etcd);
	print_message(
	    "disk faults injected: write ENOSPC %ld, write EIO %ld, fsync ENOSPC "
	    "%ld, fsync EIO %ld; writes refused %ld; acknowledged %ld, lost %ld\n",
	    co_faults_count(CO_FAULT_WRITE, ENOSPC), co_faults_count(CO_FAULT_WRITE, EIO),
	    co_faults_count(CO_FAULT_SYNC, ENOSPC), co_faults_count(CO_FAULT_SYNC, EIO),
	    n_refused, n_acked_total, n_acked_lost);
	return n_acked_lost == 0 ? 0 : -1;
}

int main(void)
{
	char ctl[300];
	int rc;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(full_state_dir_in_shadow_refuses_and_resumes),
	    cmocka_unit_test(full_state_dir_in_dual_50_refuses_and_resumes),
	    cmocka_unit_test(full_state_dir_in_etcd_mode_refuses_and_resumes),
	    cmocka_unit_test(state_fsync_eio_refuses_writes_and_resumes),
	    cmocka_unit_test(state_fsync_enospc_refuses_writes_and_resumes),
	    cmocka_unit_test(state_fsync_eio_with_etcd_down_refuses_then_converges),
	    cmocka_unit_test(git_fsync_eio_fails_the_write_cleanly_in_shadow),
	    cmocka_unit_test(git_write_eio_fails_the_write_cleanly_in_shadow),
	    cmocka_unit_test(git_full_fails_the_write_cleanly_in_dual_50),
	    cmocka_unit_test(git_fsync_eio_in_etcd_mode_acks_and_git_catches_up),
	    cmocka_unit_test(cli_with_full_state_dir_exits_2_and_changes_nothing),
	};

	/* Before any thread starts: the injector reads it on every call. */
	if (co_test_tmpdir(ctl_dir, sizeof(ctl_dir)) < 0)
		return 1;
	snprintf(ctl, sizeof(ctl), "%s/faults.ctl", ctl_dir);
	setenv("CUTOVER_FAULTS_CTL", ctl, 1);
	if (getenv("CMOCKA_FILTER"))
		cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
	rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	co_faults_clear();
	co_test_rmrf(ctl_dir);
	return rc;
}
