/*
 * test_migrate.c - `cutover migrate` against a real etcd and real bare repos.
 *
 * Each test starts its own etcd (harness), makes fresh bare repos and a
 * fresh state dir, and drives the cutover binary as an operator would.
 * Bulk data is written straight into git with the batch writer; the etcd
 * revision is read from the gateway's header.revision; "no git commit" is
 * "the branch head did not move".  The legacy client of the --follow test
 * uses plain git: clone, edit, commit as someone else, push.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "core/state.h"
#include "harness/harness.h"
#include "migrate/migrate.h"
#include "migrate/migrate_internal.h"
#include "store/etcd_store.h"
#include "store/store.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
	co_test_etcd etcd;
	char repo[256], repo2[256], state[256];
	char env_repo[300], env_etcd[128], env_state[300];
	const char *env[5];
	const char *ep[1];
	co_etcd_opts eo;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(co_test_etcd_start(&f->etcd), 0);
	assert_int_equal(co_test_git_repo_new(f->repo, sizeof(f->repo)), 0);
	assert_int_equal(co_test_git_repo_new(f->repo2, sizeof(f->repo2)), 0);
	assert_int_equal(co_test_tmpdir(f->state, sizeof(f->state)), 0);
	snprintf(f->env_repo, sizeof(f->env_repo), "CUTOVER_GIT_REPO=%s", f->repo);
	snprintf(f->env_etcd, sizeof(f->env_etcd), "CUTOVER_ETCD_ENDPOINTS=%s",
		 f->etcd.endpoint);
	snprintf(f->env_state, sizeof(f->env_state), "CUTOVER_STATE_DIR=%s", f->state);
	f->env[0] = f->env_repo;
	f->env[1] = f->env_etcd;
	f->env[2] = f->env_state;
	f->env[3] = NULL;
	f->ep[0] = f->etcd.endpoint;
	f->eo = (co_etcd_opts)CO_ETCD_OPTS_INIT;
	f->eo.endpoints = f->ep;
	f->eo.n_endpoints = 1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	co_test_etcd_stop(&f->etcd);
	co_test_rmrf(f->repo);
	co_test_rmrf(f->repo2);
	co_test_rmrf(f->state);
	free(f);
	return 0;
}

static int run(char **out, fx *f, const char *const *argv)
{
	char *err = NULL;
	int rc = co_test_cutover(out, &err, f->env, argv);

	if (rc != 0)
		fprintf(stderr, "cutover exited %d: %s\n", rc, err ? err : "");
	free(err);
	return rc;
}

static int64_t etcd_rev(fx *f)
{
	co_etcd_batch *b = NULL;
	int64_t rev = 0;

	assert_int_equal(co_etcd_batch_open(&b, &f->eo), 0);
	assert_int_equal(co_etcd_batch_revision(&rev, b), 0);
	co_etcd_batch_free(b);
	return rev;
}

static void git_head(char *hex, const char *repo)
{
	co_git_batch *g = NULL;

	assert_int_equal(co_git_batch_open(&g, repo, "main"), 0);
	assert_int_equal(co_git_batch_head(hex, g), 0);
	co_git_batch_free(g);
}

/* n tasks R<i> written straight into git in one commit. */
static void seed_git(const char *repo, size_t n)
{
	co_git_batch *g = NULL;
	co_git_batch_item *items = calloc(n, sizeof(*items));
	co_record **recs = calloc(n, sizeof(*recs));
	size_t i, w;

	assert_non_null(items);
	assert_non_null(recs);
	for (i = 0; i < n; i++) {
		char id[32];

		snprintf(id, sizeof(id), "R%06zu", i);
		assert_int_equal(co_record_new(&recs[i], CO_KIND_TASK, id), 0);
		recs[i]->rev = 1 + (int64_t)(i % 3);
		recs[i]->created_at = recs[i]->updated_at = 1790000000;
		items[i].r = recs[i];
	}
	assert_int_equal(co_git_batch_open(&g, repo, "main"), 0);
	assert_int_equal(co_git_batch_write(&w, g, items, n, "test-seed"), 0);
	assert_int_equal(w, n);
	co_git_batch_free(g);
	for (i = 0; i < n; i++)
		co_record_free(recs[i]);
	free(recs);
	free(items);
}

/* Records equal on both stores, and how many there are in each. */
static size_t stores_equal(fx *f, const char *repo, size_t *n_git, size_t *n_etcd)
{
	co_mig_set gs = {NULL, 0, 0}, es = {NULL, 0, 0};
	co_git_batch *g = NULL;
	co_etcd_batch *e = NULL;
	size_t i, eq = 0, bad;

	assert_int_equal(co_git_batch_open(&g, repo, "main"), 0);
	assert_int_equal(co_etcd_batch_open(&e, &f->eo), 0);
	assert_int_equal(co_git_batch_list(&gs, &bad, g, CO_KIND_TASK), 0);
	assert_int_equal(co_git_batch_list(&gs, &bad, g, CO_KIND_SWARM), 0);
	assert_int_equal(co_etcd_batch_list(&es, NULL, e, CO_KIND_TASK), 0);
	assert_int_equal(co_etcd_batch_list(&es, NULL, e, CO_KIND_SWARM), 0);
	co_mig__set_sort(&es);
	for (i = 0; i < gs.n; i++) {
		co_mig_rec *t = co_mig__set_find(&es, gs.v[i].r->kind, gs.v[i].r->id);

		eq += t && co_record_equal(t->r, gs.v[i].r);
	}
	*n_git = gs.n;
	*n_etcd = es.n;
	co_mig__set_clear(&gs);
	co_mig__set_clear(&es);
	co_git_batch_free(g);
	co_etcd_batch_free(e);
	return eq;
}

static void rerun_and_dry_run_write_nothing(void **state)
{
	fx *f = *state;
	char board[512], h1[48], h2[48], *out = NULL;
	const char *imp[] = {"migrate", "--from-board", board, NULL};
	const char *dry[] = {"migrate", "--dry-run", NULL};
	const char *mig[] = {"migrate", NULL};
	int64_t r0, r1, r2;
	size_t ng, ne;

	snprintf(board, sizeof(board), "%s/tests/migrate/boards/seeds.md", CUTOVER_SOURCE_DIR);
	assert_int_equal(run(NULL, f, imp), 0);
	seed_git(f->repo, 0 + 1); /* one more record, in its own commit */
	git_head(h1, f->repo);
	r0 = etcd_rev(f);

	assert_int_equal(run(&out, f, dry), 0);
	assert_non_null(strstr(out, "would write 6"));
	free(out);
	assert_int_equal(etcd_rev(f), r0);
	git_head(h2, f->repo);
	assert_string_equal(h1, h2);

	assert_int_equal(run(&out, f, mig), 0);
	assert_non_null(strstr(out, "wrote 6"));
	assert_non_null(strstr(out, "verified: 6/6"));
	free(out);
	r1 = etcd_rev(f);
	assert_true(r1 > r0);

	assert_int_equal(run(&out, f, mig), 0);
	assert_non_null(strstr(out, "wrote 0"));
	assert_non_null(strstr(out, "verified: 6/6"));
	free(out);
	r2 = etcd_rev(f);
	assert_int_equal(r2, r1);
	git_head(h2, f->repo);
	assert_string_equal(h1, h2);

	/* the other way round finds everything equal too: no commit */
	{
		const char *back[] = {"migrate", "--direction", "etcd-to-git", NULL};

		assert_int_equal(run(&out, f, back), 0);
		assert_non_null(strstr(out, "wrote 0"));
		free(out);
	}
	git_head(h2, f->repo);
	assert_string_equal(h1, h2);
	assert_int_equal(stores_equal(f, f->repo, &ng, &ne), 6);
	assert_int_equal(ng, 6);
	assert_int_equal(ne, 6);
}

static void etcd_to_git_rebuilds_every_record_in_empty_repo(void **state)
{
	fx *f = *state;
	const char *mig[] = {"migrate", NULL};
	const char *back[] = {"migrate", "--direction", "etcd-to-git", NULL};
	char *out = NULL;
	size_t ng, ne;

	seed_git(f->repo, 500);
	assert_int_equal(run(NULL, f, mig), 0);
	/* now point at the empty repo and rebuild it from etcd */
	snprintf(f->env_repo, sizeof(f->env_repo), "CUTOVER_GIT_REPO=%s", f->repo2);
	assert_int_equal(run(&out, f, back), 0);
	assert_non_null(strstr(out, "wrote 500"));
	assert_non_null(strstr(out, "verified: 500/500"));
	free(out);
	assert_int_equal(stores_equal(f, f->repo2, &ng, &ne), 500);
	assert_int_equal(ng, 500);
	assert_int_equal(ne, 500);
}

/* A value in etcd that is not a record stops the backfill, naming its key. */
static void malformed_etcd_value_stops_the_backfill_and_writes_nothing(void **state)
{
	fx *f = *state;
	const char *mig[] = {"migrate", NULL};
	const char *back[] = {"migrate", "--direction", "etcd-to-git", NULL};
	char *out = NULL, *err = NULL, head[48];

	seed_git(f->repo, 20);
	assert_int_equal(run(NULL, f, mig), 0);
	assert_int_equal(co_test_sh(NULL, NULL,
				    "ETCDCTL_API=3 etcdctl --endpoints=%s put /tasks/BAD1 "
				    "'{\"id\": not json'",
				    f->etcd.endpoint),
			 0);
	snprintf(f->env_repo, sizeof(f->env_repo), "CUTOVER_GIT_REPO=%s", f->repo2);
	assert_int_equal(co_test_cutover(&out, &err, f->env, back), 1);
	assert_non_null(strstr(err, "etcd key /tasks/BAD1"));
	free(out);
	free(err);
	git_head(head, f->repo2);
	assert_string_equal(head, ""); /* nothing was committed */
}

static pid_t spawn(fx *f, const char *const *args, const char *outfile)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[16];
		int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600), i;

		for (i = 0; f->env[i]; i++)
			putenv((char *)f->env[i]);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		argv[0] = (char *)CUTOVER_BIN;
		for (i = 0; args[i] && i < 14; i++)
			argv[i + 1] = (char *)args[i];
		argv[i + 1] = NULL;
		execv(CUTOVER_BIN, argv);
		_exit(127);
	}
	return pid;
}

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void killed_run_resumes_from_checkpoint_and_ends_equal(void **state)
{
	fx *f = *state;
	const char *mig[] = {"migrate", NULL};
	char outfile[300], *out = NULL, *ck = NULL;
	co_state *st = NULL;
	size_t ng, ne, i;
	int status;
	pid_t pid;

	seed_git(f->repo, 40000);
	snprintf(outfile, sizeof(outfile), "%s/run1.log", f->state);
	pid = spawn(f, mig, outfile);
	/* Await the checkpoint moving (bounded), then kill the run hard. */
	for (i = 0; i < 6000 && !ck; i++) {
		if (!st && co_state_open(&st, f->state) < 0)
			st = NULL;
		if (st && co_state_checkpoint_get(&ck, st, CO_MIGRATE_CKPT_GIT_TO_ETCD) < 0)
			ck = NULL;
		if (!ck)
			nap_ms(5);
	}
	assert_non_null(ck);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	free(ck);
	ck = NULL;
	assert_int_equal(co_state_checkpoint_get(&ck, st, CO_MIGRATE_CKPT_GIT_TO_ETCD), 0);
	co_state_close(st);
	assert_true(stores_equal(f, f->repo, &ng, &ne) < 40000); /* really midway */

	assert_int_equal(run(&out, f, mig), 0);
	assert_non_null(strstr(out, "resumed after task/R"));
	assert_non_null(strstr(out, "verified: 40000/40000"));
	free(out);
	free(ck);
	assert_int_equal(stores_equal(f, f->repo, &ng, &ne), 40000);
	assert_int_equal(ne, 40000);
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return strdup("");
	buf = calloc(1, 1 << 20);
	if (buf)
		len = fread(buf, 1, (1 << 20) - 1, f);
	(void)len;
	fclose(f);
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay++;
	}
	return n;
}

/* Await, by polling etcd (bounded), task id having owner (NULL: absent). */
static void await_etcd(fx *f, const char *id, const char *owner, int absent)
{
	co_store *s = NULL;
	int i, ok = 0;

	assert_int_equal(co_etcd_store_open(&s, &f->eo), 0);
	for (i = 0; i < 500 && !ok; i++) {
		co_record *r = NULL;
		int rc = co_store_get(&r, s, CO_KIND_TASK, id);

		if (absent)
			ok = rc == CO_ENOTFOUND;
		else
			ok = rc == 0 && (!owner || (r->owner && strcmp(r->owner, owner) == 0));
		co_record_free(r);
		if (!ok)
			nap_ms(20);
	}
	co_store_free(s);
	if (!ok)
		fail_msg("task %s did not reach etcd as expected", id);
}

static void legacy_commit(const char *work, const char *script)
{
	assert_int_equal(co_test_sh(NULL, NULL,
				    "cd %s && git pull -q origin main && %s && git add -A && "
				    "git -c user.name=legacy -c user.email=legacy@old commit -q "
				    "-m 'legacy edit' && git push -q origin main",
				    work, script),
			 0);
}

/*
 * A listing of more than LIST_PARALLEL_MIN (4096) files is read by two
 * threads, each on half the directory (git_batch.c): the set must be the
 * same as one reader's, in order, each record with its own blob id, and a
 * bad file in either half counted and named.
 */
static void a_large_listing_read_in_parallel_is_whole_and_in_order(void **state)
{
	fx *f = *state;
	char work[300], *out = NULL, want[64];
	co_git_batch *g = NULL;
	co_mig_set gs = {NULL, 0, 0};
	size_t i, bad = 0;

	seed_git(f->repo, 6000);
	snprintf(work, sizeof(work), "%s-work", f->repo);
	assert_int_equal(co_test_sh(NULL, NULL, "git clone -q %s %s", f->repo, work), 0);
	/* One file in each half that is not its record. */
	legacy_commit(work, "echo 'not json' > tasks/R000100.json && "
			    "cp tasks/R000001.json tasks/R005900.json");

	assert_int_equal(co_git_batch_open(&g, f->repo, "main"), 0);
	assert_int_equal(co_git_batch_list(&gs, &bad, g, CO_KIND_TASK), 0);
	assert_int_equal(bad, 2);
	assert_non_null(strstr(co_error_last(), "2 unreadable file(s)"));
	assert_int_equal(gs.n, 5998);
	for (i = 1; i < gs.n; i++)
		assert_true(strcmp(gs.v[i - 1].r->id, gs.v[i].r->id) < 0);
	assert_null(co_mig__set_find(&gs, CO_KIND_TASK, "R000100"));
	assert_null(co_mig__set_find(&gs, CO_KIND_TASK, "R005900"));
	for (i = 0; i < gs.n; i += 997) {
		assert_int_equal(co_test_sh(&out, NULL, "git -C %s rev-parse main:tasks/%s.json",
					    f->repo, gs.v[i].r->id),
				 0);
		snprintf(want, sizeof(want), "%.40s", out);
		assert_string_equal(gs.v[i].ver, want);
		free(out);
		out = NULL;
	}
	co_mig__set_clear(&gs);
	co_git_batch_free(g);
	co_test_rmrf(work);
}

/* Every task of the head: count, and a copy of the set for comparing. */
static size_t list_tasks(co_mig_set *out, const char *repo, int *rc)
{
	co_git_batch *g = NULL;
	size_t bad = 0;

	assert_int_equal(co_git_batch_open(&g, repo, "main"), 0);
	*rc = co_git_batch_list(out, &bad, g, CO_KIND_TASK);
	co_git_batch_free(g);
	return bad;
}

/*
 * The listing reads loose blobs straight from their files (git_loose.c)
 * and everything else through libgit2: a repository whose objects are
 * all packed lists the same records with the same blob ids, with no
 * loose read; and a loose file whose content is another object's (it
 * inflates and has a blob header, but its hash is not its name) is not
 * taken as the record: libgit2 is asked, and the listing fails naming
 * the repository rather than returning the other record.
 */
static void loose_and_packed_blobs_list_the_same_and_a_wrong_file_is_refused(void **state)
{
	fx *f = *state;
	co_mig_set loose = {NULL, 0, 0}, packed = {NULL, 0, 0}, bad = {NULL, 0, 0};
	char *a = NULL, *b = NULL;
	size_t i, reads;
	int rc;

	seed_git(f->repo, 300);
	reads = co_git_loose_reads();
	assert_int_equal(list_tasks(&loose, f->repo, &rc), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(loose.n, 300);
	assert_int_equal(co_git_loose_reads() - reads, 300);

	assert_int_equal(co_test_sh(NULL, NULL, "git -C %s repack -a -d -q && git -C %s prune-packed",
				    f->repo, f->repo),
			 0);
	reads = co_git_loose_reads();
	assert_int_equal(list_tasks(&packed, f->repo, &rc), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(co_git_loose_reads(), reads);
	assert_int_equal(packed.n, loose.n);
	for (i = 0; i < loose.n; i++) {
		assert_string_equal(packed.v[i].r->id, loose.v[i].r->id);
		assert_string_equal(packed.v[i].ver, loose.v[i].ver);
		assert_true(co_record_equal(packed.v[i].r, loose.v[i].r));
	}

	/* Loose objects again (another repo); R000001's file then holds R000002's. */
	seed_git(f->repo2, 3);
	assert_int_equal(
	    co_test_sh(&a, NULL, "git -C %s rev-parse main:tasks/R000001.json", f->repo2), 0);
	assert_int_equal(
	    co_test_sh(&b, NULL, "git -C %s rev-parse main:tasks/R000002.json", f->repo2), 0);
	a[40] = b[40] = '\0';
	assert_int_equal(co_test_sh(NULL, NULL,
				    "cd %s/objects && rm -f %.2s/%s && cp %.2s/%s %.2s/%s",
				    f->repo2, a, a + 2, b, b + 2, a, a + 2),
			 0);
	list_tasks(&bad, f->repo2, &rc);
	assert_int_equal(rc, CO_EUNAVAIL);
	assert_non_null(strstr(co_error_last(), f->repo2));
	assert_int_equal(bad.n, 0);
	free(a);
	free(b);
	co_mig__set_clear(&loose);
	co_mig__set_clear(&packed);
	co_mig__set_clear(&bad);
}

static void follow_mirrors_legacy_commits_and_restart_mirrors_nothing_twice(void **state)
{
	fx *f = *state;
	char board[512], outfile[300], work[300], *log = NULL;
	const char *imp[] = {"migrate", "--from-board", board, NULL};
	const char *fol[] = {"migrate", "--follow", NULL};
	size_t ng, ne, i;
	int status;
	pid_t pid;

	snprintf(board, sizeof(board), "%s/tests/migrate/boards/seeds.md", CUTOVER_SOURCE_DIR);
	assert_int_equal(run(NULL, f, imp), 0);
	snprintf(work, sizeof(work), "%s/work", f->state);
	assert_int_equal(co_test_sh(NULL, NULL, "git clone -q %s %s", f->repo, work), 0);

	snprintf(outfile, sizeof(outfile), "%s/follow1.log", f->state);
	pid = spawn(f, fol, outfile);
	for (i = 0; i < 1000; i++) { /* await "following" (bounded) */
		free(log);
		log = slurp(outfile);
		if (strstr(log, "following"))
			break;
		nap_ms(10);
	}
	assert_non_null(strstr(log, "following"));
	free(log);

	/* a claim by rewriting owner and status, a create and a delete */
	legacy_commit(work, "python3 -c \"import json;d=json.load(open('tasks/P0.1.3.json'));"
			    "d['owner']='swarm-legacy';d['status']='claimed';"
			    "json.dump(d,open('tasks/P0.1.3.json','w'),indent=1)\"");
	await_etcd(f, "P0.1.3", "swarm-legacy", 0);
	legacy_commit(work, "cp tasks/P0.2.2.json tasks/NEW.1.json && "
			    "sed -i 's/P0.2.2/NEW.1/' tasks/NEW.1.json && git rm -q tasks/P0.2.2.json");
	await_etcd(f, "NEW.1", NULL, 0);
	await_etcd(f, "P0.2.2", NULL, 1);

	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	log = slurp(outfile);
	assert_int_equal(count(log, "P0.1.3 rev 1 -> etcd rev 2"), 1);
	assert_int_equal(count(log, "delete tasks/P0.2.2 -> etcd"), 1);
	free(log);
	/* rev bumped and written back: both stores hold the same records */
	assert_int_equal(stores_equal(f, f->repo, &ng, &ne), 5);
	assert_int_equal(ng, 5);
	assert_int_equal(ne, 5);

	/* while the follower is down, the legacy client edits once more */
	legacy_commit(work, "python3 -c \"import json;d=json.load(open('tasks/NEW.1.json'));"
			    "d['owner']='swarm-late';d['status']='claimed';"
			    "json.dump(d,open('tasks/NEW.1.json','w'),indent=1)\"");
	snprintf(outfile, sizeof(outfile), "%s/follow2.log", f->state);
	pid = spawn(f, fol, outfile);
	await_etcd(f, "NEW.1", "swarm-late", 0);
	for (i = 0; i < 1000; i++) { /* its write-back reaches git too */
		if (stores_equal(f, f->repo, &ng, &ne) == 5)
			break;
		nap_ms(10);
	}
	kill(pid, SIGINT);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	log = slurp(outfile);
	assert_non_null(strstr(log, "resuming after"));
	/* exactly the one commit made while it was down, nothing twice */
	assert_int_equal(count(log, "-> etcd"), 1);
	assert_int_equal(count(log, "NEW.1 rev"), 1);
	free(log);
	assert_int_equal(stores_equal(f, f->repo, &ng, &ne), 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(rerun_and_dry_run_write_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(etcd_to_git_rebuilds_every_record_in_empty_repo,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			malformed_etcd_value_stops_the_backfill_and_writes_nothing, setup,
			teardown),
		cmocka_unit_test_setup_teardown(a_large_listing_read_in_parallel_is_whole_and_in_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(killed_run_resumes_from_checkpoint_and_ends_equal,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			loose_and_packed_blobs_list_the_same_and_a_wrong_file_is_refused, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			follow_mirrors_legacy_commits_and_restart_mirrors_nothing_twice, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
