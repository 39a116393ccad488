/*
 * test_reconcile.c - the reconciler against a real etcd and real bare git
 * repositories, with divergences made by writers other than cutover: puts
 * and deletes sent straight to etcd (etcdctl, and curl to the JSON
 * gateway), and commits made with the plain git command line (clone, edit
 * the JSON file, commit, push).
 *
 * One etcd serves the program; each test has its own git repo, key prefix,
 * state dir and flags file, and removes them.
 */
/* clang-format off: cmocka needs these first, in this order */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/audit.h"
#include "core/error.h"
#include "core/outbox.h"
#include "core/record.h"
#include "core/runs.h"
#include "core/state.h"
#include "flags/flags.h"
#include "harness/harness.h"
#include "reconcile/reconcile.h"
#include "store/etcd_store.h"
#include "store/git_store.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int prefix_seq;

typedef struct env {
	char dir[256];	 /* temp dir: state, flags, clones */
	char repo[256];	 /* bare git repo */
	char prefix[64]; /* etcd key prefix of this test */
	char flags[300];
	co_store *git, *etcd;
	co_state *st;
} env;

static int setup(void **state)
{
	env *e = calloc(1, sizeof(*e));
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	const char *eps[1];
	char sdir[300];

	if (e == NULL || co_test_tmpdir(e->dir, sizeof(e->dir)) < 0 ||
	    co_test_git_repo_new(e->repo, sizeof(e->repo)) < 0)
		return -1;
	snprintf(e->prefix, sizeof(e->prefix), "/rt%d-%d/", (int)getpid(), ++prefix_seq);
	snprintf(e->flags, sizeof(e->flags), "%s/flags.yaml", e->dir);
	snprintf(sdir, sizeof(sdir), "%s/state", e->dir);
	go.repo = e->repo;
	go.fsync = 0;
	eps[0] = co_test_group_etcd.endpoint;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = e->prefix;
	if (co_git_store_open(&e->git, &go) < 0 ||
	    co_etcd_store_open(&e->etcd, &eo) < 0 || co_state_open(&e->st, sdir) < 0) {
		fprintf(stderr, "setup: %s\n", co_error_last());
		return -1;
	}
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;

	co_store_free(e->git);
	co_store_free(e->etcd);
	co_state_close(e->st);
	co_test_rmrf(e->repo);
	co_test_rmrf(e->dir);
	free(e);
	return 0;
}

/* ---- seeding through cutover's own stores (identical in both) ---- */

static void seed_task(env *e, const char *id)
{
	co_record *t = NULL, *out = NULL;

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
	t->type = strdup("build");
	if (co_store_task_create(&out, e->git, t) < 0)
		fail_msg("create %s: %s", id, co_error_last());
	if (co_store_put(e->etcd, out) < 0)
		fail_msg("put %s: %s", id, co_error_last());
	co_record_free(out);
	co_record_free(t);
}

static void seed_swarm(env *e, const char *id, const char *caps)
{
	co_record *s = NULL, *out = NULL;

	assert_int_equal(co_record_new(&s, CO_KIND_SWARM, id), 0);
	assert_int_equal(co_strv_split(&s->capabilities, caps), 0);
	if (co_store_swarm_register(&out, e->git, s) < 0)
		fail_msg("register %s: %s", id, co_error_last());
	assert_int_equal(co_store_put(e->etcd, out), 0);
	co_record_free(out);
	co_record_free(s);
}

static void seed(env *e, int tasks, int swarms)
{
	char id[32];
	int i;

	for (i = 0; i < tasks; i++) {
		snprintf(id, sizeof(id), "T%02d", i);
		seed_task(e, id);
	}
	for (i = 0; i < swarms; i++) {
		snprintf(id, sizeof(id), "S%d", i);
		seed_swarm(e, id, "build,test");
	}
}

static co_record *get(co_store *s, co_kind kind, const char *id)
{
	co_record *r = NULL;

	if (co_store_get(&r, s, kind, id) < 0)
		fail_msg("get %s: %s", id, co_error_last());
	return r;
}

/* ---- foreign writers ---- */

static void sh(const char *cmd)
{
	char *out = NULL, *err = NULL;
	int rc = co_test_sh(&out, &err, "%s", cmd);

	if (rc != 0)
		fail_msg("`%s` exited %d: %s%s", cmd, rc, out ? out : "", err ? err : "");
	free(out);
	free(err);
}

/* etcdctl put KEY VALUE (the value must not hold a single quote). */
static void etcdctl_put(env *e, const char *kind_dir, const char *id, const char *json)
{
	char cmd[8192];

	snprintf(cmd, sizeof(cmd),
		 "ETCDCTL_API=3 etcdctl --endpoints=%s put '%s%s/%s' '%s'",
		 co_test_group_etcd.endpoint, e->prefix, kind_dir, id, json);
	sh(cmd);
}

static void etcdctl_del(env *e, const char *kind_dir, const char *id)
{
	char cmd[1024], *out = NULL;

	snprintf(cmd, sizeof(cmd), "ETCDCTL_API=3 etcdctl --endpoints=%s del '%s%s/%s'",
		 co_test_group_etcd.endpoint, e->prefix, kind_dir, id);
	assert_int_equal(co_test_sh(&out, NULL, "%s", cmd), 0);
	assert_string_equal(out, "1\n"); /* one key deleted */
	free(out);
}

/* A put sent to the v3 JSON gateway with curl. */
static void gateway_put(env *e, const char *kind_dir, const char *id, const char *json)
{
	char cmd[8192], *out = NULL;

	snprintf(
	    cmd, sizeof(cmd),
	    "k=$(printf '%%s' '%s%s/%s' | base64 -w0); v=$(printf '%%s' '%s' | base64 "
	    "-w0);"
	    " curl -sS -X POST %s/v3/kv/put -d \"{\\\"key\\\":\\\"$k\\\",\\\"value\\\":"
	    "\\\"$v\\\"}\"",
	    e->prefix, kind_dir, id, json, co_test_group_etcd.endpoint);
	assert_int_equal(co_test_sh(&out, NULL, "%s", cmd), 0);
	assert_non_null(strstr(out, "\"header\""));
	free(out);
}

/* A legacy client's commit: clone, run `edit` in the work tree, commit, push. */
static void git_commit(env *e, const char *edit)
{
	char cmd[16384];

	snprintf(cmd, sizeof(cmd),
		 "set -e; cd '%s'; rm -rf w; git clone -q '%s' w; cd w; %s;"
		 " git add -A; git -c user.name=legacy -c user.email=legacy@example.org"
		 " commit -qm 'legacy edit'; git push -q origin main; cd ..; rm -rf w",
		 e->dir, e->repo, edit);
	sh(cmd);
}

static char *json_of(const co_record *r, int pretty)
{
	char *s = co_record_to_json(r, pretty);

	assert_non_null(s);
	return s;
}

/* ---- running ---- */

static co_reconcile_opts opts_for(env *e)
{
	co_reconcile_opts o = CO_RECONCILE_OPTS_INIT;

	o.git = e->git;
	o.etcd = e->etcd;
	o.state = e->st;
	o.flags_path = e->flags;
	o.grace_ms = 20;
	return o;
}

static co_reconcile_result *run(const co_reconcile_opts *o)
{
	co_reconcile_result *res = NULL;

	if (co_reconcile_run(&res, o) < 0)
		fail_msg("reconcile: %s", co_error_last());
	return res;
}

static const co_divergence *find_div(const co_reconcile_result *r, const char *kind,
				     const char *id)
{
	size_t i;

	for (i = 0; i < r->divergences.n; i++)
		if (strcmp(r->divergences.items[i]->kind, kind) == 0 &&
		    strcmp(r->divergences.items[i]->id, id) == 0)
			return r->divergences.items[i];
	fail_msg("no divergence for %s %s", kind, id);
	return NULL;
}

static void expect_div(const co_reconcile_result *r, const char *kind, const char *id,
		       const char *cls, const char *fields)
{
	const co_divergence *d = find_div(r, kind, id);

	assert_string_equal(d->cls, cls);
	assert_string_equal(d->fields, fields);
	assert_true(strcmp(cls, "missing_in_git") == 0 ? d->git_value == NULL
						       : d->git_value != NULL);
	assert_true(strcmp(cls, "missing_in_etcd") == 0 ? d->etcd_value == NULL
							: d->etcd_value != NULL);
}

static void clean_stores_pass_with_every_id_equal(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_flags f;

	seed(e, 10, 2);
	r = run(&o);
	assert_int_equal(r->run.total, 12);
	assert_int_equal(r->run.equal, 12);
	assert_int_equal(r->divergences.n, 0);
	assert_true(r->run.consistency == 1.0);
	assert_string_equal(r->run.verdict, "pass");
	assert_string_equal(r->run.action, "none");
	assert_true(r->run.id > 0);
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 0);
	co_reconcile_result_free(r);
}

static void foreign_writes_are_found_and_classified_with_fields(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *rec;
	co_run *stored = NULL;
	co_divergence_list stored_divs = {0};
	co_audit_change_list changes = {0};
	char *j, *j2, edit[8192];
	co_flags f;

	seed(e, 20, 2);

	/* etcd, through the gateway: T01 blocked behind cutover's back. */
	rec = get(e->etcd, CO_KIND_TASK, "T01");
	rec->status = CO_STATUS_BLOCKED;
	j = json_of(rec, 0);
	gateway_put(e, "tasks", "T01", j);
	free(j);
	co_record_free(rec);
	/* etcd, etcdctl: T02 deleted, E1 created. */
	etcdctl_del(e, "tasks", "T02");
	rec = get(e->git, CO_KIND_TASK, "T05");
	free(rec->id);
	rec->id = strdup("E1");
	j = json_of(rec, 0);
	etcdctl_put(e, "tasks", "E1", j);
	free(j);
	co_record_free(rec);

	/* git, plain commands: T03 claimed by a legacy swarm, T04 deleted,
	 * G1 added, swarm S1 given another capability. */
	rec = get(e->git, CO_KIND_TASK, "T03");
	rec->status = CO_STATUS_CLAIMED;
	rec->owner = strdup("legacy-swarm");
	j = json_of(rec, 1);
	co_record_free(rec);
	rec = get(e->git, CO_KIND_TASK, "T06");
	free(rec->id);
	rec->id = strdup("G1");
	j2 = json_of(rec, 1);
	co_record_free(rec);
	snprintf(edit, sizeof(edit),
		 "printf '%%s' '%s' > tasks/T03.json; git rm -q tasks/T04.json;"
		 " printf '%%s' '%s' > tasks/G1.json",
		 j, j2);
	free(j);
	free(j2);
	git_commit(e, edit);
	rec = get(e->git, CO_KIND_SWARM, "S1");
	co_strv_push(&rec->capabilities, "deploy");
	j = json_of(rec, 1);
	co_record_free(rec);
	snprintf(edit, sizeof(edit), "printf '%%s' '%s' > swarms/S1.json", j);
	free(j);
	git_commit(e, edit);

	r = run(&o);
	assert_int_equal(r->run.total, 24); /* 22 seeded + E1 + G1 */
	assert_int_equal(r->run.equal, 17);
	assert_int_equal(r->run.missing_in_etcd, 2);
	assert_int_equal(r->run.missing_in_git, 2);
	assert_int_equal(r->run.mismatch, 3);
	assert_int_equal(r->divergences.n, 7);
	expect_div(r, "task", "T01", "mismatch", "status");
	expect_div(r, "task", "T02", "missing_in_etcd", "");
	expect_div(r, "task", "E1", "missing_in_git", "");
	expect_div(r, "task", "T03", "mismatch", "owner,status");
	expect_div(r, "task", "T04", "missing_in_git", "");
	expect_div(r, "task", "G1", "missing_in_etcd", "");
	expect_div(r, "swarm", "S1", "mismatch", "capabilities");
	assert_int_equal(r->in_flight, 0);
	assert_string_equal(r->run.verdict, "fail");
	assert_string_equal(r->run.action, "kill_switch");

	/* The kill switch is on with the run in its reason... */
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 1);
	snprintf(edit, sizeof(edit), "reconcile run %lld: ", (long long)r->run.id);
	assert_true(strncmp(f.kill_reason, edit, strlen(edit)) == 0);
	/* ...the trip is in the audit trail... */
	assert_int_equal(co_audit_changes_latest(&changes, e->st, 1), 0);
	assert_int_equal(changes.n, 1);
	assert_string_equal(changes.items[0]->action, "auto-rollback");
	assert_string_equal(changes.items[0]->who, "reconcile");
	assert_string_equal(changes.items[0]->why, f.kill_reason);
	/* ...and the run and its divergences are in the database. */
	assert_int_equal(co_runs_get(&stored, e->st, r->run.id), 0);
	assert_string_equal(stored->verdict, "fail");
	assert_string_equal(stored->action, "kill_switch");
	assert_int_equal(stored->mismatch, 3);
	assert_int_equal(co_runs_divergences(&stored_divs, e->st, r->run.id), 0);
	assert_int_equal(stored_divs.n, 7);
	co_audit_change_list_clear(&changes);
	co_divergence_list_clear(&stored_divs);
	co_run_free(stored);
	co_reconcile_result_free(r);
}

/*
 * The snapshot compares stored text; a record written in another key order
 * or layout by a foreign writer differs as text but not as a record: it is
 * re-read, normalized, and counts as equal -- no false divergence.
 */
static void same_record_in_another_format_is_equal(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *rec;
	char *j, edit[8192];
	cJSON *obj;
	char *reordered;

	seed(e, 3, 1);
	/* etcd: T00 with its keys reversed and spaces (not canonical). */
	rec = get(e->etcd, CO_KIND_TASK, "T00");
	j = json_of(rec, 0);
	obj = cJSON_Parse(j);
	assert_non_null(obj);
	{
		cJSON *rev = cJSON_CreateObject(), *it;
		int n = cJSON_GetArraySize(obj), i;

		for (i = n - 1; i >= 0; i--) {
			it = cJSON_GetArrayItem(obj, i);
			cJSON_AddItemReferenceToObject(rev, it->string, it);
		}
		reordered = cJSON_Print(rev);
		cJSON_Delete(rev);
	}
	etcdctl_put(e, "tasks", "T00", reordered);
	free(reordered);
	cJSON_Delete(obj);
	free(j);
	co_record_free(rec);
	/* git: T01 rewritten compact on one line by a legacy client. */
	rec = get(e->git, CO_KIND_TASK, "T01");
	j = json_of(rec, 0);
	snprintf(edit, sizeof(edit), "printf '%%s' '%s' > tasks/T01.json", j);
	git_commit(e, edit);
	free(j);
	co_record_free(rec);

	r = run(&o);
	assert_int_equal(r->run.total, 4);
	assert_int_equal(r->run.equal, 4);
	assert_int_equal(r->divergences.n, 0);
	assert_string_equal(r->run.verdict, "pass");
	co_reconcile_result_free(r);
}

/* ---- the blob-id fast path ---- */

/* A task with every shape of field, written by cutover to both stores. */
static void seed_rich_task(env *e, const char *id)
{
	co_record *t = NULL, *out = NULL;

	assert_int_equal(co_record_new(&t, CO_KIND_TASK, id), 0);
	t->type = strdup("deploy");
	assert_int_equal(co_strv_split(&t->blocked_by, "T00,T01"), 0);
	assert_int_equal(
	    co_record_set_metadata(t, "{\"z\":[1,{\"a\":{}},[]],\"u\":\"caf\\u00e9 "
				      "\\\"q\\\" \xe6\x97\xa5\",\"e\":{},\"n\":-1.5e-7}"),
	    0);
	if (co_store_task_create(&out, e->git, t) < 0)
		fail_msg("create %s: %s", id, co_error_last());
	if (co_store_put(e->etcd, out) < 0)
		fail_msg("put %s: %s", id, co_error_last());
	co_record_free(out);
	co_record_free(t);
}

/*
 * Records equal in both stores are found equal by blob id: etcd's value laid
 * out as git's file hashes to the id in git's tree, and not one git file is
 * read in the whole run.
 */
static void equal_records_are_equal_by_blob_id_without_reading_git(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	uint64_t reads;

	seed(e, 10, 2);
	seed_rich_task(e, "R1");
	reads = co_git_store_blobs_read(e->git);
	r = run(&o);
	assert_int_equal(r->run.total, 13);
	assert_int_equal(r->run.equal, 13);
	assert_int_equal(r->divergences.n, 0);
	assert_int_equal(r->same_blob, 13);
	assert_int_equal(r->read_back, 0);
	assert_int_equal(co_git_store_blobs_read(e->git), reads);
	assert_string_equal(r->run.verdict, "pass");
	co_reconcile_result_free(r);
}

/* A copy of s with every ":" and "," outside strings followed by a space. */
static char *spaced(const char *s)
{
	char *out = malloc(2 * strlen(s) + 1), *p = out;
	int in_string = 0;

	assert_non_null(out);
	for (; *s; s++) {
		*p++ = *s;
		if (in_string && *s == '\\')
			*p++ = *++s;
		else if (*s == '"')
			in_string = !in_string;
		else if (!in_string && (*s == ':' || *s == ','))
			*p++ = ' ';
	}
	*p = '\0';
	return out;
}

/*
 * An etcd value that differs from cutover's only in the whitespace between
 * tokens (pretty-printed by one writer, spaced by another) has the same git
 * form: still equal, still without reading git.
 */
static void etcd_value_differing_only_in_whitespace_is_equal(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *rec;
	char *j, *sp;
	uint64_t reads;

	seed(e, 3, 1);
	seed_rich_task(e, "R1");
	rec = get(e->etcd, CO_KIND_TASK, "T00");
	j = json_of(rec, 1);
	etcdctl_put(e, "tasks", "T00", j);
	free(j);
	co_record_free(rec);
	rec = get(e->etcd, CO_KIND_TASK, "R1");
	j = json_of(rec, 0);
	sp = spaced(j);
	assert_string_not_equal(sp, j);
	gateway_put(e, "tasks", "R1", sp);
	free(sp);
	free(j);
	co_record_free(rec);

	reads = co_git_store_blobs_read(e->git);
	r = run(&o);
	assert_int_equal(r->run.total, 5);
	assert_int_equal(r->run.equal, 5);
	assert_int_equal(r->divergences.n, 0);
	assert_int_equal(r->same_blob, 5);
	assert_int_equal(r->read_back, 0);
	assert_int_equal(co_git_store_blobs_read(e->git), reads);
	co_reconcile_result_free(r);
}

/*
 * A git file a legacy client wrote in another layout (compact, or indented
 * with spaces) has another blob id: it alone is read back, by id, and found
 * equal from its text -- no divergence, and no record re-read.
 */
static void git_file_in_another_layout_is_read_back_and_equal(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *rec;
	char *compact, *pretty, *q, edit[8192];
	uint64_t reads;

	seed(e, 3, 1);
	rec = get(e->git, CO_KIND_TASK, "T01");
	compact = json_of(rec, 0);
	co_record_free(rec);
	rec = get(e->git, CO_KIND_TASK, "T02");
	pretty = json_of(rec, 1);
	co_record_free(rec);
	for (q = pretty; *q; q++)
		if (*q == '\t')
			*q = ' ';
	snprintf(edit, sizeof(edit),
		 "printf '%%s' '%s' > tasks/T01.json; printf '%%s' '%s' > tasks/T02.json",
		 compact, pretty);
	git_commit(e, edit);
	free(compact);
	free(pretty);

	reads = co_git_store_blobs_read(e->git);
	r = run(&o);
	assert_int_equal(r->run.total, 4);
	assert_int_equal(r->run.equal, 4);
	assert_int_equal(r->divergences.n, 0);
	assert_int_equal(r->same_blob, 2);
	assert_int_equal(r->read_back, 2);
	assert_int_equal(co_git_store_blobs_read(e->git), reads + 2);
	co_reconcile_result_free(r);
}

/*
 * A real difference on either side is read back, nominated, re-read and
 * classified with its fields, as before the fast path.
 */
static void real_mismatch_is_read_back_and_classified_with_fields(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *rec;
	char *j, edit[8192];

	seed(e, 3, 1);
	seed_rich_task(e, "R1");
	/* etcd: T00's type changed, compact canonical like cutover's. */
	rec = get(e->etcd, CO_KIND_TASK, "T00");
	free(rec->type);
	rec->type = strdup("deploy");
	j = json_of(rec, 0);
	etcdctl_put(e, "tasks", "T00", j);
	free(j);
	co_record_free(rec);
	/* git: R1's metadata changed by a legacy client, pretty like cutover's. */
	rec = get(e->git, CO_KIND_TASK, "R1");
	assert_int_equal(co_record_set_metadata(rec, "{\"z\":[2]}"), 0);
	j = json_of(rec, 1);
	snprintf(edit, sizeof(edit), "printf '%%s\\n' '%s' > tasks/R1.json", j);
	free(j);
	co_record_free(rec);
	git_commit(e, edit);

	r = run(&o);
	assert_int_equal(r->run.total, 5);
	assert_int_equal(r->run.equal, 3);
	assert_int_equal(r->run.mismatch, 2);
	assert_int_equal(r->same_blob, 3);
	assert_int_equal(r->read_back, 2);
	expect_div(r, "task", "T00", "mismatch", "type");
	expect_div(r, "task", "R1", "mismatch", "metadata");
	assert_non_null(strstr(find_div(r, "task", "T00")->etcd_value, "\"deploy\""));
	assert_string_equal(r->run.verdict, "fail");
	co_reconcile_result_free(r);
}

/* A flags file broken by hand does not stop the automatic trip. */
static void a_malformed_flags_file_does_not_stop_the_trip(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_flags f;
	char copy[600], *text = NULL;
	FILE *fp;

	seed(e, 5, 0);
	etcdctl_del(e, "tasks", "T00");
	fp = fopen(e->flags, "w");
	assert_non_null(fp);
	fputs("kill_switch: maybe\noperations: [\n", fp);
	fclose(fp);
	assert_int_equal(co_flags_load(&f, e->flags), CO_EINVAL);
	r = run(&o);
	assert_string_equal(r->run.verdict, "fail");
	assert_string_equal(r->run.action, "kill_switch");
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 1);
	assert_true(strncmp(f.kill_reason, "reconcile run", 13) == 0);
	/* The broken file is kept for whoever fixes it. */
	snprintf(copy, sizeof(copy), "%s.malformed", e->flags);
	assert_int_equal(co_test_sh(&text, NULL, "cat %s; stat -c %%a %s", copy, copy),
			 0);
	assert_non_null(strstr(text, "kill_switch: maybe"));
	assert_non_null(strstr(text, "\n600\n")); /* as private as the flags */
	free(text);
	co_reconcile_result_free(r);
	/* A file over the size limit is as broken: the switch goes on over it. */
	assert_int_equal(co_test_sh(NULL, NULL,
				    "yes '# padding padding padding padding' | "
				    "head -c 2000000 > %s",
				    e->flags),
			 0);
	assert_int_equal(co_flags_load(&f, e->flags), CO_ETOOBIG);
	r = run(&o);
	assert_string_equal(r->run.action, "kill_switch");
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 1);
	co_reconcile_result_free(r);
}

static void no_rollback_reports_failure_without_tripping(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_audit_change_list changes = {0};
	co_flags f;

	seed(e, 5, 0);
	etcdctl_del(e, "tasks", "T00");
	o.no_rollback = 1;
	r = run(&o);
	assert_string_equal(r->run.verdict, "fail");
	assert_string_equal(r->run.action, "none");
	assert_int_equal(r->run.missing_in_etcd, 1);
	assert_non_null(strstr(r->reason, "reconcile run"));
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 0);
	assert_int_equal(co_audit_changes_latest(&changes, e->st, 10), 0);
	assert_int_equal(changes.n, 0);
	co_reconcile_result_free(r);
}

static void mismatches_over_ratio_fail_even_above_min_consistency(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *rec;
	char *j;

	seed(e, 10, 0);
	rec = get(e->etcd, CO_KIND_TASK, "T07");
	rec->status = CO_STATUS_FAILED;
	j = json_of(rec, 0);
	etcdctl_put(e, "tasks", "T07", j);
	free(j);
	co_record_free(rec);
	o.min_consistency = 0.5;     /* 90% is fine by consistency... */
	o.max_mismatch_ratio = 0.05; /* ...but 1 mismatch in 10 is over 5% */
	o.no_rollback = 1;
	r = run(&o);
	assert_string_equal(r->run.verdict, "fail");
	assert_non_null(strstr(r->reason, "mismatches"));
	co_reconcile_result_free(r);
	o.max_mismatch_ratio = 0.2;
	r = run(&o);
	assert_string_equal(r->run.verdict, "pass");
	assert_int_equal(r->run.mismatch, 1);
	co_reconcile_result_free(r);
}

/* Divergences in both directions for the repair tests. */
static void diverge_both_ways(env *e)
{
	co_record *rec;
	char *j, edit[8192];

	etcdctl_del(e, "tasks", "T00");		/* missing in etcd */
	rec = get(e->git, CO_KIND_TASK, "T01"); /* extra in etcd: missing in git */
	free(rec->id);
	rec->id = strdup("X1");
	j = json_of(rec, 0);
	etcdctl_put(e, "tasks", "X1", j);
	free(j);
	co_record_free(rec);
	rec = get(e->git, CO_KIND_TASK, "T02"); /* mismatch made in git */
	free(rec->type);
	rec->type = strdup("deploy");
	j = json_of(rec, 1);
	co_record_free(rec);
	snprintf(edit, sizeof(edit),
		 "printf '%%s' '%s' > tasks/T02.json; git rm -q swarms/S0.json", j);
	free(j);
	git_commit(e, edit); /* and swarm S0 missing in git */
}

static void repair_from_git_makes_etcd_equal_deletions_included(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *g, *x = NULL;
	co_audit_change_list changes = {0};
	co_flags f;

	seed(e, 6, 2);
	diverge_both_ways(e);
	o.repair = CO_REPAIR_FROM_GIT;
	r = run(&o);
	assert_int_equal(r->divergences.n, 4);
	assert_string_equal(r->run.action, "repair:git");
	assert_int_equal(r->repaired_put, 2);	  /* T00 recreated, T02 overwritten */
	assert_int_equal(r->repaired_removed, 2); /* X1 and S0 deleted from etcd */
	co_reconcile_result_free(r);
	assert_int_equal(co_audit_changes_latest(&changes, e->st, 1), 0);
	assert_int_equal(changes.n, 1);
	assert_string_equal(changes.items[0]->action, "repair");
	assert_string_equal(changes.items[0]->detail, "repair:git: 2 written, 2 removed");
	co_audit_change_list_clear(&changes);
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 0); /* repairing is the remedy, not a trip */

	o.repair = CO_REPAIR_NONE;
	r = run(&o);
	assert_true(r->run.consistency == 1.0);
	assert_int_equal(r->run.total, 7); /* T00..T05 + S1 */
	assert_string_equal(r->run.verdict, "pass");
	co_reconcile_result_free(r);
	assert_int_equal(co_store_get(&x, e->etcd, CO_KIND_TASK, "X1"), CO_ENOTFOUND);
	assert_int_equal(co_store_get(&x, e->etcd, CO_KIND_SWARM, "S0"), CO_ENOTFOUND);
	g = get(e->etcd, CO_KIND_TASK, "T02");
	assert_string_equal(g->type, "deploy");
	co_record_free(g);
}

static void repair_from_etcd_makes_git_equal_deletions_included(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *g, *x = NULL;
	char *out = NULL;

	seed(e, 6, 2);
	diverge_both_ways(e);
	o.repair = CO_REPAIR_FROM_ETCD;
	r = run(&o);
	assert_int_equal(r->divergences.n, 4);
	assert_string_equal(r->run.action, "repair:etcd");
	assert_int_equal(r->repaired_put, 3);	  /* X1, T02 and S0 written to git */
	assert_int_equal(r->repaired_removed, 1); /* T00 deleted from git */
	co_reconcile_result_free(r);

	o.repair = CO_REPAIR_NONE;
	r = run(&o);
	assert_true(r->run.consistency == 1.0);
	assert_int_equal(r->run.total, 8); /* T01..T05 + X1 + S0 + S1 */
	co_reconcile_result_free(r);
	assert_int_equal(co_store_get(&x, e->git, CO_KIND_TASK, "T00"), CO_ENOTFOUND);
	g = get(e->git, CO_KIND_TASK, "T02");
	assert_string_equal(g->type, "build");
	co_record_free(g);
	/* The repo is still a plain git repo a legacy client can read. */
	assert_int_equal(
	    co_test_sh(&out, NULL, "git --git-dir='%s' show main:tasks/X1.json", e->repo),
	    0);
	assert_non_null(strstr(out, "\"X1\""));
	free(out);
}

/* In-flight: the test plays the writer from inside the run's phases. */
typedef struct inflight_ctx {
	env *e;
	int64_t seq; /* outbox entry for M2 */
	int fixed_m1, fixed_m2;
} inflight_ctx;

static void fix_in_etcd(env *e, const char *id)
{
	co_record *g = get(e->git, CO_KIND_TASK, id);

	assert_int_equal(co_store_put(e->etcd, g), 0);
	co_record_free(g);
}

static void inflight_progress(void *ctx, const char *phase, size_t done, size_t total)
{
	inflight_ctx *c = ctx;

	(void)done;
	(void)total;
	if (strcmp(phase, "diff") == 0 && !c->fixed_m1) {
		/* Both snapshots are taken: M1 changes after them. */
		fix_in_etcd(c->e, "T01");
		c->fixed_m1 = 1;
	}
	if (strcmp(phase, "recheck") == 0 && !c->fixed_m2) {
		/* The write the outbox held for M2 lands, and is acked. */
		fix_in_etcd(c->e, "T02");
		assert_int_equal(co_outbox_ack(c->e->st, c->seq), 0);
		c->fixed_m2 = 1;
	}
}

static void writes_in_flight_are_rechecked_not_counted(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	inflight_ctx c = {e, 0, 0, 0};

	seed(e, 5, 0);
	etcdctl_del(e, "tasks", "T01"); /* M1: will be written after the snapshot */
	etcdctl_del(e, "tasks", "T02"); /* M2: pending in the outbox */
	etcdctl_del(e, "tasks", "T03"); /* a real divergence */
	assert_int_equal(co_outbox_push(&c.seq, e->st, "etcd", "task", "T02", NULL), 0);
	o.progress = inflight_progress;
	o.progress_ctx = &c;
	o.no_rollback = 1;
	r = run(&o);
	assert_true(c.fixed_m1 && c.fixed_m2);
	/* M1 reads equal at its first look (nothing pending): equal at once;
	 * M2 is pending then, set aside, and equal at the recheck. */
	assert_int_equal(r->in_flight, 1);
	assert_int_equal(r->unsettled, 0);
	assert_int_equal(r->run.total, 5);
	assert_int_equal(r->run.equal, 4);
	assert_int_equal(r->divergences.n, 1);
	expect_div(r, "task", "T03", "missing_in_etcd", "");
	co_reconcile_result_free(r);
}

/*
 * After every recheck: an ID whose only pending row is an intent younger
 * than the in-flight window is lag (counted as found, and unsettled); one
 * the outbox owes an acknowledged write (here a delete) is owed, neither
 * equal nor divergent; and a real divergence beside them still fails the
 * run: divergence wins over pending.
 */
static void a_divergence_beside_an_owed_write_still_fails(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_run *stored = NULL;
	int64_t seq;

	seed(e, 4, 0);
	etcdctl_del(e, "tasks", "T01"); /* owed: the outbox holds it throughout */
	etcdctl_del(e, "tasks", "T02"); /* a real divergence */
	etcdctl_del(e, "tasks", "T03"); /* an operation in flight */
	assert_int_equal(co_outbox_push(&seq, e->st, "etcd", "task", "T01", NULL), 0);
	/* a drain tried it and failed: in backoff, owed */
	assert_int_equal(co_outbox_fail(e->st, seq, "etcd down", 60000), 0);
	assert_int_equal(co_outbox_push_intent(&seq, e->st, "etcd", "task", "T03",
					       CO_OUTBOX_INTENT_PREFIX "other-router"),
			 0);
	o.no_rollback = 1;
	o.max_rechecks = 2;
	o.grace_ms = 1;
	r = run(&o);
	assert_int_equal(r->in_flight, 2);
	assert_int_equal(r->unsettled, 1); /* T03 */
	assert_int_equal(r->divergences.n, 1);
	expect_div(r, "task", "T02", "missing_in_etcd", "");
	assert_int_equal(r->run.total, 4);
	assert_int_equal(r->run.equal, 2); /* T00, and T03 counted as found */
	assert_int_equal(r->run.owed, 1);
	assert_int_equal(r->run.owed_etcd, 1);
	assert_int_equal(r->run.owed_list.n, 1);
	assert_string_equal(r->run.owed_list.items[0]->id, "T01");
	assert_string_equal(r->run.verdict, "fail");
	assert_non_null(strstr(r->reason, "1 missing_in_etcd"));
	assert_int_equal(co_runs_latest(&stored, e->st), 0);
	assert_string_equal(stored->verdict, "fail");
	assert_int_equal(stored->owed, 1);
	assert_int_equal(stored->owed_list.n, 1);
	co_run_free(stored);
	co_reconcile_result_free(r);
}

/* T01 written to git (the primary) and owed to etcd by the outbox. */
static int64_t owe_etcd_a_newer_t01(env *e, co_record **out)
{
	co_record *g = get(e->git, CO_KIND_TASK, "T01");
	char *j;
	int64_t seq = 0;

	g->rev++;
	g->status = CO_STATUS_COMPLETE;
	assert_int_equal(co_store_put(e->git, g), 0);
	j = json_of(g, 0);
	assert_int_equal(co_outbox_push(&seq, e->st, "etcd", "task", "T01", j), 0);
	free(j);
	/* the drain sat in backoff (etcd was down): owed, not lag */
	assert_int_equal(co_outbox_fail(e->st, seq, "etcd down", 60000), 0);
	*out = g;
	return seq;
}

/*
 * The measured case of issue 15: acknowledged writes still owed to etcd at
 * the end of the run are not "equal".  The run is pending_drain: no kill
 * switch, no pass for the gate, the ID listed by store.  Once the entry is
 * applied and acked (the drain's work), the next run passes.
 */
static void owed_write_alone_is_pending_drain_not_a_pass(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *rec = NULL;
	co_run *stored = NULL;
	co_flags f;
	int64_t seq;

	seed(e, 4, 1);
	seq = owe_etcd_a_newer_t01(e, &rec);
	o.max_rechecks = 1;
	o.grace_ms = 1;
	r = run(&o);
	assert_string_equal(r->run.verdict, "pending_drain");
	assert_false(co_reconcile_passed(r));
	assert_true(co_reconcile_pending_drain(r));
	assert_string_equal(r->run.action, "none");
	assert_string_equal(r->reason, "");
	assert_int_equal(r->divergences.n, 0);
	assert_int_equal(r->unsettled, 0);
	assert_int_equal(r->run.total, 5);
	assert_int_equal(r->run.equal, 4);
	assert_true(r->run.consistency < 0.81 && r->run.consistency > 0.79);
	assert_int_equal(r->run.owed, 1);
	assert_int_equal(r->run.owed_etcd, 1);
	assert_int_equal(r->run.owed_git, 0);
	assert_int_equal(r->run.owed_list.n, 1);
	assert_string_equal(r->run.owed_list.items[0]->target, "etcd");
	assert_string_equal(r->run.owed_list.items[0]->kind, "task");
	assert_string_equal(r->run.owed_list.items[0]->id, "T01");
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 0);

	/* Recorded as such; the go/no-go check refuses it, naming the ID. */
	assert_int_equal(co_runs_latest(&stored, e->st), 0);
	assert_int_equal(stored->id, r->run.id);
	assert_string_equal(stored->verdict, "pending_drain");
	assert_int_equal(stored->owed_etcd, 1);
	assert_int_equal(stored->owed_list.n, 1);
	assert_string_equal(stored->owed_list.items[0]->id, "T01");
	co_run_free(stored);
	assert_int_equal(
	    co_runs_latest_passed_within(NULL, e->st, 3600 * 1000, co_state_now_ms()),
	    CO_ECONFLICT);
	assert_non_null(strstr(co_error_last(), "T01"));
	co_reconcile_result_free(r);

	/* The drain catches up: etcd takes the record, the entry is acked. */
	assert_int_equal(co_store_put(e->etcd, rec), 0);
	assert_int_equal(co_outbox_ack(e->st, seq), 0);
	r = run(&o);
	assert_string_equal(r->run.verdict, "pass");
	assert_int_equal(r->run.owed, 0);
	assert_int_equal(r->run.equal, 5);
	assert_int_equal(
	    co_runs_latest_passed_within(NULL, e->st, 3600 * 1000, co_state_now_ms()), 0);
	co_reconcile_result_free(r);
	co_record_free(rec);
}

static void expired_claim_in_one_store_is_not_a_divergence(void **state)
{
	env *e = *state;
	co_reconcile_opts o = opts_for(e);
	co_reconcile_result *r;
	co_record *rec;
	char *j;

	seed(e, 3, 0);
	/* etcd says T00 was claimed with a TTL that has run out: logically
	 * available, like git's copy. */
	rec = get(e->etcd, CO_KIND_TASK, "T00");
	rec->status = CO_STATUS_CLAIMED;
	rec->owner = strdup("gone-swarm");
	rec->claim_expires_at = co_time_now() - 60;
	j = json_of(rec, 0);
	etcdctl_put(e, "tasks", "T00", j);
	free(j);
	co_record_free(rec);
	r = run(&o);
	assert_int_equal(r->divergences.n, 0);
	assert_string_equal(r->run.verdict, "pass");
	co_reconcile_result_free(r);
}

/* ---- the command line ---- */

static void cli_reconcile_exits_3_on_fail_and_reports_every_format(void **state)
{
	env *e = *state;
	char ev[5][512], *out = NULL, *err = NULL, path[400];
	const char *envp[6];
	cJSON *o;
	co_flags f;
	int rc, i;

	seed(e, 4, 1);
	snprintf(ev[0], sizeof(ev[0]), "CUTOVER_GIT_REPO=%s", e->repo);
	snprintf(ev[1], sizeof(ev[1]), "CUTOVER_ETCD_ENDPOINTS=%s",
		 co_test_group_etcd.endpoint);
	snprintf(ev[2], sizeof(ev[2]), "CUTOVER_ETCD_PREFIX=%s", e->prefix);
	snprintf(ev[3], sizeof(ev[3]), "CUTOVER_STATE_DIR=%s/cli-state", e->dir);
	snprintf(ev[4], sizeof(ev[4]), "CUTOVER_FLAGS=%s", e->flags);
	for (i = 0; i < 5; i++)
		envp[i] = ev[i];
	envp[5] = NULL;

	{
		const char *argv[] = {"reconcile", "--grace", "10ms", NULL};

		rc = co_test_cutover(&out, &err, envp, argv);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "verdict pass"));
		free(out);
		free(err);
	}
	etcdctl_del(e, "tasks", "T01");
	{
		const char *argv[] = {"--json", "reconcile", "--grace", "10ms", NULL};

		rc = co_test_cutover(&out, &err, envp, argv);
		assert_int_equal(rc, 3);
		o = cJSON_Parse(out);
		assert_non_null(o);
		assert_string_equal(
		    cJSON_GetObjectItemCaseSensitive(o, "verdict")->valuestring, "fail");
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "run")->valueint, 2);
		cJSON_Delete(o);
		free(out);
		free(err);
	}
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 1);
	assert_true(strncmp(f.kill_reason, "reconcile run 2: ", 17) == 0);
	{
		const char *argv[] = {"report", "--format", "json", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 0);
		o = cJSON_Parse(out);
		assert_non_null(o);
		assert_int_equal(
		    cJSON_GetObjectItemCaseSensitive(o, "missing_in_etcd")->valueint, 1);
		assert_string_equal(
		    cJSON_GetObjectItemCaseSensitive(
			cJSON_GetArrayItem(
			    cJSON_GetObjectItemCaseSensitive(o, "divergences"), 0),
			"id")
			->valuestring,
		    "T01");
		cJSON_Delete(o);
		free(out);
		free(err);
	}
	{
		const char *argv[] = {"report",	  "--run",    "1",
				      "--format", "markdown", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 0);
		assert_non_null(strstr(out, "# Reconciliation run 1"));
		assert_non_null(strstr(out, "| ---: |"));
		free(out);
		free(err);
	}
	snprintf(path, sizeof(path), "%s/report.html", e->dir);
	{
		const char *argv[] = {"report", "--format", "html", "-o", path, NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 0);
		free(out);
		free(err);
		assert_int_equal(co_test_sh(&out, NULL, "cat '%s'", path), 0);
		assert_non_null(strstr(out, "<svg"));
		assert_non_null(strstr(out, "T01"));
		free(out);
	}
	{
		const char *argv[] = {"report", "--run", "99", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 4);
		free(out);
		free(err);
	}
	{
		const char *argv[] = {"reconcile", "--repair", "svn", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 1);
		assert_non_null(strstr(err, "svn"));
		free(out);
		free(err);
	}
	{
		/* Repair from git, then the verifying run passes: exit 0. */
		const char *argv[] = {"reconcile", "--repair", "git",
				      "--grace",   "10ms",     NULL};

		rc = co_test_cutover(&out, &err, envp, argv);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "repair:git"));
		free(out);
		free(err);
	}
}

/*
 * The command line on an owed write that the drain cannot apply yet (its
 * entry waits out a retry backoff, as after an etcd restart): exit 5, not
 * 0, and every report shows what is owed; once the entry is due again the
 * command's own drain applies it and the run passes.
 */
static void cli_reconcile_exits_5_on_pending_drain_and_reports_the_owed(void **state)
{
	env *e = *state;
	char ev[5][512], *out = NULL, *err = NULL;
	const char *envp[6];
	co_record *rec = NULL;
	cJSON *o, *owed;
	co_flags f;
	int64_t seq, n = 0;
	int i;

	seed(e, 4, 0);
	seq = owe_etcd_a_newer_t01(e, &rec);
	assert_int_equal(
	    co_outbox_fail(e->st, seq, "etcd: connection refused", 10 * 60 * 1000), 0);
	snprintf(ev[0], sizeof(ev[0]), "CUTOVER_GIT_REPO=%s", e->repo);
	snprintf(ev[1], sizeof(ev[1]), "CUTOVER_ETCD_ENDPOINTS=%s",
		 co_test_group_etcd.endpoint);
	snprintf(ev[2], sizeof(ev[2]), "CUTOVER_ETCD_PREFIX=%s", e->prefix);
	snprintf(ev[3], sizeof(ev[3]), "CUTOVER_STATE_DIR=%s/state", e->dir);
	snprintf(ev[4], sizeof(ev[4]), "CUTOVER_FLAGS=%s", e->flags);
	for (i = 0; i < 5; i++)
		envp[i] = ev[i];
	envp[5] = NULL;
	{
		const char *argv[] = {"--json", "reconcile", "--grace", "10ms", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 5);
		o = cJSON_Parse(out);
		assert_non_null(o);
		assert_string_equal(
		    cJSON_GetObjectItemCaseSensitive(o, "verdict")->valuestring,
		    "pending_drain");
		assert_string_equal(
		    cJSON_GetObjectItemCaseSensitive(o, "action")->valuestring, "none");
		owed = cJSON_GetObjectItemCaseSensitive(o, "owed");
		assert_non_null(owed);
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(owed, "etcd")->valueint,
				 1);
		assert_int_equal(cJSON_GetObjectItemCaseSensitive(owed, "git")->valueint,
				 0);
		assert_int_equal(
		    cJSON_GetObjectItemCaseSensitive(owed, "count")->valueint, 1);
		assert_non_null(cJSON_GetObjectItemCaseSensitive(owed, "oldest_age_ms"));
		assert_string_equal(
		    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(owed, "ids"), 0)
			->valuestring,
		    "T01");
		assert_int_equal(cJSON_GetArraySize(
				     cJSON_GetObjectItemCaseSensitive(o, "divergences")),
				 0);
		cJSON_Delete(o);
		free(out);
		free(err);
	}
	assert_int_equal(co_flags_load(&f, e->flags), 0);
	assert_int_equal(f.kill_switch, 0);
	{
		const char *argv[] = {"--json", "report", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 0);
		o = cJSON_Parse(out);
		assert_non_null(o);
		assert_string_equal(
		    cJSON_GetObjectItemCaseSensitive(o, "verdict")->valuestring,
		    "pending_drain");
		owed = cJSON_GetObjectItemCaseSensitive(o, "owed");
		assert_string_equal(
		    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(owed, "ids"), 0)
			->valuestring,
		    "T01");
		cJSON_Delete(o);
		free(out);
		free(err);
	}
	{
		const char *argv[] = {"reconcile", "--grace", "10ms", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 5);
		assert_non_null(strstr(out, "verdict pending_drain"));
		assert_non_null(strstr(out, "owed to etcd: 1 (outbox, oldest "));
		assert_non_null(strstr(out, " s): T01\n"));
		assert_null(strstr(out, "owed to git"));
		free(out);
		free(err);
	}
	{
		const char *argv[] = {"report", "--format", "markdown", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 0);
		assert_non_null(strstr(out, "## Owed by the outbox (1: etcd 1, git 0)"));
		assert_non_null(strstr(out, "| task | T01 | etcd |"));
		assert_non_null(strstr(out, "| pending_drain |"));
		free(out);
		free(err);
	}
	{
		const char *argv[] = {"report", "--format", "html", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 0);
		assert_non_null(strstr(out, "<span class=\"pending\">pending_drain"));
		assert_non_null(strstr(out, "<table id=\"owed\">"));
		assert_non_null(strstr(out, "<td>T01</td>"));
		free(out);
		free(err);
	}
	{
		/* The help says what 5 means. */
		const char *argv[] = {"reconcile", "--help", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 0);
		assert_non_null(strstr(out, "5 pending_drain"));
		free(out);
		free(err);
	}

	/* The backoff is over (made so, not waited for): the command's drain
	 * applies the entry before it snapshots, and the run passes. */
	assert_int_equal(co_outbox_expedite(&n, e->st, "task", "T01", co_state_now_ms()),
			 0);
	assert_int_equal(n, 1);
	{
		const char *argv[] = {"reconcile", "--grace", "10ms", NULL};

		assert_int_equal(co_test_cutover(&out, &err, envp, argv), 0);
		assert_non_null(strstr(out, "verdict pass"));
		assert_null(strstr(out, "owed to"));
		free(out);
		free(err);
	}
	co_record_free(rec);
	rec = get(e->etcd, CO_KIND_TASK, "T01");
	assert_int_equal(rec->status, CO_STATUS_COMPLETE);
	co_record_free(rec);
}

static void cli_every_runs_until_interrupted(void **state)
{
	env *e = *state;
	char *out = NULL, sdir[300];
	co_state *st = NULL;
	co_run_list runs = {0};
	long pid;
	int i, alive = 1;

	seed(e, 3, 0);
	snprintf(sdir, sizeof(sdir), "%s/every-state", e->dir);
	assert_int_equal(
	    co_test_sh(&out, NULL,
		       "CUTOVER_GIT_REPO='%s' CUTOVER_ETCD_ENDPOINTS='%s'"
		       " CUTOVER_ETCD_PREFIX='%s' CUTOVER_STATE_DIR='%s'"
		       " CUTOVER_FLAGS='%s' '%s' reconcile --every 50ms --grace 10ms"
		       " >'%s/every.out' 2>&1 & echo $!",
		       e->repo, co_test_group_etcd.endpoint, e->prefix, sdir, e->flags,
		       CUTOVER_BIN, e->dir),
	    0);
	pid = atol(out);
	free(out);
	assert_true(pid > 0);
	/* Bounded wait for three finished runs. */
	assert_int_equal(co_state_open(&st, sdir), 0);
	for (i = 0; i < 600; i++) {
		co_run_list_clear(&runs);
		assert_int_equal(co_runs_list(&runs, st, 10), 0);
		if (runs.n >= 3)
			break;
		usleep(100 * 1000);
	}
	assert_true(runs.n >= 3);
	assert_string_equal(runs.items[0]->verdict, "pass");
	co_run_list_clear(&runs);
	co_state_close(st);
	/* SIGINT ends the loop cleanly. */
	assert_int_equal(co_test_sh(NULL, NULL, "kill -INT %ld", pid), 0);
	for (i = 0; i < 300 && alive; i++) {
		alive = co_test_sh(NULL, NULL, "kill -0 %ld 2>/dev/null", pid) == 0;
		if (alive)
			usleep(100 * 1000);
	}
	assert_false(alive);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(clean_stores_pass_with_every_id_equal, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		foreign_writes_are_found_and_classified_with_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(same_record_in_another_format_is_equal, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		equal_records_are_equal_by_blob_id_without_reading_git, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		etcd_value_differing_only_in_whitespace_is_equal, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		git_file_in_another_layout_is_read_back_and_equal, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		real_mismatch_is_read_back_and_classified_with_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_malformed_flags_file_does_not_stop_the_trip,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(no_rollback_reports_failure_without_tripping,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		mismatches_over_ratio_fail_even_above_min_consistency, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		repair_from_git_makes_etcd_equal_deletions_included, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		repair_from_etcd_makes_git_equal_deletions_included, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_divergence_beside_an_owed_write_still_fails,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(owed_write_alone_is_pending_drain_not_a_pass,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(writes_in_flight_are_rechecked_not_counted,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		expired_claim_in_one_store_is_not_a_divergence, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		cli_reconcile_exits_3_on_fail_and_reports_every_format, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		cli_reconcile_exits_5_on_pending_drain_and_reports_the_owed, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(cli_every_runs_until_interrupted, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, co_test_etcd_group_setup,
				      co_test_etcd_group_teardown);
}
