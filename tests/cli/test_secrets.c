/*
 * test_secrets.c - secrets never leave the stores (issue 22, point 3),
 * end to end with the real binary, a real etcd and a real bare git repo.
 *
 * A task carries a token in its metadata; git and etcd are made to
 * disagree on it (different tokens, a different note, the same password)
 * and on a second task that only git holds.  Then everything that writes
 * outside the stores runs: a shadow read (the mismatch log), `cutover
 * reconcile` (stdout, stderr, the divergences table), `cutover report` in
 * every format, the audit reader, and `cutover serve` (its stderr log, the
 * admin reconcile's answer, /metrics).  The secret's bytes must be in none
 * of them, nor in any table of the state database but the outbox, while
 * the reports still say that the token differs ("[redacted, differs]") and
 * that the password is equal ("[redacted, equal]").
 *
 * Reads of a record (`task get`, GET /v1/tasks/ID) return the record with
 * its metadata: they are the stores' own answer to their clients, not
 * something cutover writes about them, and are not scanned.
 *
 * Also: a custom `redact:` list in cutover.yaml is what applies, and a
 * malformed one stops every command with exit 1 and the file and line.
 */
#include "cli_fixture.h"

#include "core/runs.h"
#include "harness/http.h"

#include <dirent.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SECRET_GIT "ghp_SECRETBYTES123"
#define SECRET_ETCD "ghp_OTHERSECRET999"
#define SECRET_SAME "pw-EQUAL-SECRET-77"
#define SECRET_ONLY "only-git-SECRET-55"
#define TOKEN "tok-admin-123"

static int group_setup(void **state)
{
	return fx_group_setup(state);
}

static int group_teardown(void **state)
{
	return fx_group_teardown(state);
}

/* Fail if any secret's bytes are in `text`; `what` names the output. */
static void assert_clean(const char *what, const char *text)
{
	static const char *const secrets[] = {SECRET_GIT,  SECRET_ETCD,	  SECRET_SAME,
					      SECRET_ONLY, "SECRETBYTES", "OTHERSECRET"};
	size_t i;

	assert_non_null(text);
	for (i = 0; i < sizeof(secrets) / sizeof(*secrets); i++)
		if (strstr(text, secrets[i]))
			fail_msg("%s holds the secret \"%s\":\n%s", what, secrets[i],
				 text);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		fail_msg("%s: cannot open", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* Every row of every table of the database at `path` but the outbox, as
 * text (one "table: v|v|v" line per row); caller frees. */
static char *dump_db(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *tables = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	assert_non_null(m);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT name FROM sqlite_master WHERE type = "
					    "'table' ORDER BY name",
					    -1, &tables, NULL),
			 SQLITE_OK);
	while (sqlite3_step(tables) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(tables, 0);
		sqlite3_stmt *rows = NULL;
		char sql[300];
		int i;

		if (strcmp(name, "outbox") == 0)
			continue; /* the one place a record travels whole */
		snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\"", name);
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &rows, NULL), SQLITE_OK);
		while (sqlite3_step(rows) == SQLITE_ROW) {
			fprintf(m, "%s:", name);
			for (i = 0; i < sqlite3_column_count(rows); i++) {
				const unsigned char *v = sqlite3_column_text(rows, i);

				fprintf(m, " %s |", v ? (const char *)v : "NULL");
			}
			fputc('\n', m);
		}
		sqlite3_finalize(rows);
	}
	sqlite3_finalize(tables);
	sqlite3_close(db);
	fclose(m);
	return buf;
}

/*
 * Every file of the state dir: databases dumped table by table (outbox
 * aside), WAL and shared-memory files left to their database, anything
 * else read whole.  Returns how many databases were dumped.
 */
static int assert_state_dir_clean(const char *dir, int want_redacted)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int dbs = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[600], *text;
		size_t n = strlen(e->d_name);
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if ((n > 4 && strcmp(e->d_name + n - 4, "-wal") == 0) ||
		    (n > 4 && strcmp(e->d_name + n - 4, "-shm") == 0))
			continue;
		if (n > 3 && strcmp(e->d_name + n - 3, ".db") == 0) {
			text = dump_db(path);
			dbs++;
			if (want_redacted && strstr(text, "divergences:"))
				fx_contains(text, "[redacted, differs]");
		} else {
			text = slurp(path);
		}
		assert_clean(path, text);
		free(text);
	}
	closedir(d);
	return dbs;
}

/* git and etcd disagree on T1 (token, note; the password is equal), and
 * only git holds T2. */
static void make_divergence(fx *f)
{
	fx_expect(0, f, "--backend", "git", "task", "create", "T1", "--meta",
		  "{\"api_token\":\"" SECRET_GIT "\",\"db\":{\"password\":\"" SECRET_SAME
		  "\"},\"note\":\"git side\"}");
	fx_expect(0, f, "--backend", "etcd", "task", "create", "T1", "--meta",
		  "{\"api_token\":\"" SECRET_ETCD "\",\"db\":{\"password\":\"" SECRET_SAME
		  "\"},\"note\":\"etcd side\"}");
	fx_expect(0, f, "--backend", "git", "task", "create", "T2", "--meta",
		  "{\"client_secret\":\"" SECRET_ONLY "\"}");
	fx_expect(0, f, "stage", "shadow", "--force");
}

/* The one stderr a test may check and must not hold a secret. */
static void run_clean(fx *f, int want_rc, const char *const *args, char **out)
{
	char *o = NULL, *e = NULL;
	int rc = fx_run_a(f, &o, &e, args);

	if (rc != want_rc)
		fail_msg("`%s %s`: exit %d, wanted %d; stdout: %s stderr: %s", args[0],
			 args[1] ? args[1] : "", rc, want_rc, o, e);
	assert_clean("stderr", e);
	free(e);
	if (out)
		*out = o;
	else
		free(o);
}

static void reports_in_every_format(fx *f)
{
	static const char *const fmts[] = {"text", "json", "markdown", "html"};
	char out[400], *text;
	size_t i;

	for (i = 0; i < 4; i++) {
		snprintf(out, sizeof(out), "%s/report.%s", f->state, fmts[i]);
		run_clean(
		    f, 0,
		    (const char *[]){"report", "--format", fmts[i], "-o", out, NULL},
		    NULL);
		text = slurp(out);
		assert_clean(out, text);
		fx_contains(text, "metadata.api_token");
		fx_contains(text, "[redacted, differs]");
		fx_contains(text, "[redacted, equal]");
		fx_contains(text, "metadata.note");
		free(text);
		unlink(out); /* the state dir scan below sees only cutover's files */
		run_clean(f, 0, (const char *[]){"report", "--format", fmts[i], NULL},
			  &text);
		assert_clean("report on stdout", text);
		free(text);
	}
}

static void audit_readers_hold_no_secret(fx *f)
{
	co_audit_mismatch_list ml = {0};
	co_divergence_list dl = {0};
	co_run *run = NULL;
	co_state *st = NULL;
	size_t i;
	int differs = 0;

	assert_int_equal(co_state_open(&st, f->state), 0);
	assert_int_equal(co_audit_mismatches_latest(&ml, st, 100), 0);
	assert_true(ml.n >= 1); /* the shadow read of T1 */
	for (i = 0; i < ml.n; i++) {
		const co_audit_mismatch *m = ml.items[i];

		assert_clean("audit mismatch git_value",
			     m->git_value ? m->git_value : "");
		assert_clean("audit mismatch etcd_value",
			     m->etcd_value ? m->etcd_value : "");
		differs |=
		    m->git_value &&
		    strstr(m->git_value, "\"api_token\":\"[redacted, differs]\"") &&
		    strstr(m->git_value, "\"password\":\"[redacted, equal]\"");
	}
	assert_true(differs);
	assert_int_equal(co_runs_latest(&run, st), 0);
	assert_int_equal(co_runs_divergences(&dl, st, run->id), 0);
	assert_int_equal(dl.n, 2);
	for (i = 0; i < dl.n; i++) {
		assert_clean("divergence git_value", dl.items[i]->git_value ?: "");
		assert_clean("divergence etcd_value", dl.items[i]->etcd_value ?: "");
	}
	co_divergence_list_clear(&dl);
	co_run_free(run);
	co_audit_mismatch_list_clear(&ml);
	co_state_close(st);
}

/* `cutover serve` with its stderr in a pipe: the log, the admin
 * reconcile's answer and /metrics hold no secret. */
static void serve_holds_no_secret(fx *f)
{
	const char *argv[] = {CUTOVER_BIN, "serve", NULL};
	char **envp = fx_make_envp(f->env), *line, *log = NULL, base[64], auth[64];
	size_t loglen = 0;
	FILE *logm = open_memstream(&log, &loglen);
	int err[2], port = 0, status;
	co_test_resp r;
	pid_t pid;

	assert_non_null(logm);
	assert_int_equal(pipe(err), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(err[1], 2);
		close(err[0]);
		close(err[1]);
		execve(CUTOVER_BIN, (char *const *)argv, envp);
		_exit(127);
	}
	free(envp);
	close(err[1]);
	/* Wait for the line that says it listens (60 s: a safety net only). */
	while (port == 0 && (line = fx_read_line(err[0], 60000)) != NULL) {
		const char *p = strstr(line, "(port ");

		fprintf(logm, "%s\n", line);
		if (strstr(line, "serving on") && p)
			port = atoi(p + 6);
		free(line);
	}
	if (port == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fclose(logm);
		fail_msg("serve never said it was serving: %s", log);
	}
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
	snprintf(auth, sizeof(auth), "Bearer %s", TOKEN);

	co_test_http(&r, base, "GET", "/v1/tasks/T1", NULL, 0, NULL);
	assert_int_equal(r.status, 200); /* a shadow read: one more mismatch row */
	free(r.body);
	co_test_http(&r, base, "POST", "/v1/admin/reconcile", "{\"no_rollback\":true}",
		     20, auth);
	if (r.status != 200)
		fail_msg("admin reconcile: %ld %s", r.status, r.body);
	assert_clean("POST /v1/admin/reconcile", r.body);
	fx_contains(r.body, "[redacted, differs]");
	fx_contains(r.body, "[redacted, equal]");
	free(r.body);
	co_test_http(&r, base, "GET", "/metrics", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_clean("/metrics", r.body);
	free(r.body);

	kill(pid, SIGTERM);
	while ((line = fx_read_line(err[0], 60000)) != NULL) {
		fprintf(logm, "%s\n", line);
		free(line);
	}
	close(err[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	fclose(logm);
	fx_contains(log, "serving on");
	fx_contains(log, "stopping");
	assert_clean("the serve log (stderr)", log);
	free(log);
}

static void secret_bytes_appear_in_no_output_but_the_verdict_does(void **state)
{
	fx *f = *state;
	char tokfile[280], kv[320], *out = NULL;
	FILE *t;

	snprintf(tokfile, sizeof(tokfile), "%s/admin.token", f->state);
	assert_non_null(t = fopen(tokfile, "w"));
	fputs(TOKEN "\n", t);
	fclose(t);
	chmod(tokfile, 0600);
	snprintf(kv, sizeof(kv), "CUTOVER_ADMIN_TOKEN_FILE=%s", tokfile);
	fx_setenv(f, 0, kv);
	fx_setenv(f, 1, "CUTOVER_LISTEN=127.0.0.1:0");

	make_divergence(f);
	/* A shadow read: git serves, etcd is read and compared. */
	run_clean(f, 0, (const char *[]){"task", "get", "T1", NULL}, NULL);

	/* Fails (a mismatch and a missing record), exit 5 or so: any status
	 * but success, and output that still says what differs. */
	{
		char *o = NULL, *e = NULL;
		int rc = fx_run(f, &o, &e, "--json", "reconcile", "--no-rollback");

		assert_true(rc != 0);
		assert_clean("reconcile --json stdout", o);
		assert_clean("reconcile stderr", e);
		fx_contains(o, "\"path\":\"metadata.api_token\"");
		fx_contains(o, "\"redacted\":\"differs\"");
		fx_contains(o, "\"redacted\":\"equal\"");
		free(o);
		free(e);
		rc = fx_run(f, &o, &e, "reconcile", "--no-rollback");
		assert_true(rc != 0);
		assert_clean("reconcile text stdout", o);
		assert_clean("reconcile stderr", e);
		fx_contains(o, "metadata.api_token: [redacted, differs]");
		fx_contains(o, "metadata.db.password: [redacted, equal]");
		fx_contains(o, "metadata.note: \"git side\" \u2192 \"etcd side\"");
		free(o);
		free(e);
	}
	reports_in_every_format(f);
	audit_readers_hold_no_secret(f);
	run_clean(f, 0, (const char *[]){"status", NULL}, &out);
	assert_clean("status", out);
	free(out);
	assert_true(assert_state_dir_clean(f->state, 1) >= 1);

	serve_holds_no_secret(f);
	assert_true(assert_state_dir_clean(f->state, 1) >= 1);
}

static void write_config(fx *f, char *path, size_t len, const char *text)
{
	FILE *c;
	char kv[320];

	assert_true(len <= 280);
	snprintf(path, len, "%s/cutover.yaml", f->state);
	assert_non_null(c = fopen(path, "w"));
	fputs(text, c);
	fclose(c);
	snprintf(kv, sizeof(kv), "CUTOVER_CONFIG=%s", path);
	fx_setenv(f, 0, kv);
}

static void custom_redact_list_is_what_applies(void **state)
{
	fx *f = *state;
	char path[280], *o = NULL;

	/* The note hidden, and the defaults replaced: the token shows. */
	write_config(f, path, sizeof(path), "redact:\n  - metadata.note\n");
	make_divergence(f);
	assert_true(fx_run(f, &o, NULL, "reconcile", "--no-rollback") != 0);
	fx_contains(o, "metadata.note: [redacted, differs]");
	fx_contains(o,
		    "metadata.api_token: \"" SECRET_GIT "\" \u2192 \"" SECRET_ETCD "\"");
	free(o);

	/* "@defaults" brings the default patterns back beside the path. */
	write_config(f, path, sizeof(path), "redact: [metadata.note, \"@defaults\"]\n");
	run_clean(f, 0, (const char *[]){"report", NULL}, &o);
	assert_clean("report under @defaults", o);
	fx_contains(o, "metadata.note: [redacted, differs]");
	fx_contains(o, "metadata.api_token: [redacted, differs]");
	free(o);
}

static void malformed_redact_list_stops_with_exit_1(void **state)
{
	fx *f = *state;
	char path[280], *e = NULL, want[450];

	write_config(f, path, sizeof(path), "redact:\n  api_token: yes\n");
	assert_int_equal(fx_run(f, NULL, &e, "report"), 1);
	snprintf(want, sizeof(want), "%s:2: key \"redact\": expected a list", path);
	fx_contains(e, want);
	free(e);

	write_config(f, path, sizeof(path), "redact:\n  - token\n  - metadata..key\n");
	assert_int_equal(fx_run(f, NULL, &e, "status"), 1);
	snprintf(want, sizeof(want), "%s:3: key \"redact\"", path);
	fx_contains(e, want);
	fx_contains(e, "empty segment");
	free(e);

	write_config(f, path, sizeof(path), "redact: [token\n");
	assert_int_equal(fx_run(f, NULL, &e, "reconcile"), 1);
	fx_contains(e, "malformed YAML");
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		secret_bytes_appear_in_no_output_but_the_verdict_does, fx_test_setup,
		fx_test_teardown),
	    cmocka_unit_test_setup_teardown(custom_redact_list_is_what_applies,
					    fx_test_setup, fx_test_teardown),
	    cmocka_unit_test_setup_teardown(malformed_redact_list_stops_with_exit_1,
					    fx_test_setup, fx_test_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
