/*
 * bench_reconcile.c - how fast and how big a reconciliation is, beside the
 * same diff done by a shell pipeline.
 *
 *   bench_reconcile [N ...]        default: 10000 100000
 *
 * For each N: a real etcd (harness) gets N task records under its own
 * prefix, written with txns of 128 puts each through the JSON gateway; a
 * fresh bare git repo gets the same N records in one commit built by
 * `git fast-import` and `git mktree`.  A few divergences are injected (N/10000 + 1
 * records left out of etcd) so that both methods have something to find and their counts
 * can be checked against each other.
 *
 * Then, in a child process (so that its peak RSS, from wait4's rusage, is
 * the run's alone): co_reconcile_run() with a state database and no flags
 * file.  And the pipeline: `etcdctl get --prefix --print-value-only`,
 * `git ls-tree | git cat-file --batch` with awk turning the pretty JSON
 * compact, `sort`, `comm -3`.  Both times, records/s, the reconciler's peak
 * RSS and the speed ratio are printed.
 *
 * BENCH_LOW_MEMORY=1 snapshots one store after the other (the reconciler's
 * low_memory option); BENCH_PHASES=1 prints the phases' times, and how
 * many IDs the reconciler found equal by blob id alone and how many git
 * files it read back.
 *
 * libcurl is used directly here only to seed etcd fast; the bench measures
 * the reconciler through the public stores like any caller.
 */
#include "core/error.h"
#include "core/record.h"
#include "core/state.h"
#include "harness/harness.h"
#include "reconcile/reconcile.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TXN_OPS 128

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_reconcile: %s: %s\n", what, co_error_last());
	exit(1);
}

static co_record *bench_task(size_t i)
{
	co_record *r = NULL;
	char id[32];

	snprintf(id, sizeof(id), "B%07zu", i);
	if (co_record_new(&r, CO_KIND_TASK, id) < 0)
		die("record");
	r->rev = 1 + (int64_t)(i % 7);
	r->type = strdup(i % 3 ? "build" : "test");
	r->created_at = r->updated_at = 1795860000 + (int64_t)i;
	return r;
}

/* Records left out of etcd: the divergences both methods must find. */
static int left_out(size_t i, size_t n)
{
	size_t step = n / (n / 10000 + 1);

	return i % step == step / 2;
}

/* ---- seeding ---- */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];

		fputc(b64chars[v >> 18], f);
		fputc(b64chars[(v >> 12) & 63], f);
		fputc(b64chars[(v >> 6) & 63], f);
		fputc(b64chars[v & 63], f);
	}
	if (len - i == 1) {
		unsigned v = (unsigned)p[i] << 16;

		fprintf(f, "%c%c==", b64chars[v >> 18], b64chars[(v >> 12) & 63]);
	} else if (len - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;

		fprintf(f, "%c%c%c=", b64chars[v >> 18], b64chars[(v >> 12) & 63],
			b64chars[(v >> 6) & 63]);
	}
}

static size_t sink(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

static void seed_etcd(const char *endpoint, const char *prefix, size_t n)
{
	CURL *c = curl_easy_init();
	char url[256], key[128];
	size_t i = 0;

	snprintf(url, sizeof(url), "%s/v3/kv/txn", endpoint);
	while (i < n) {
		char *body = NULL;
		size_t len = 0, ops = 0;
		FILE *m = open_memstream(&body, &len);
		long code = 0;

		fputs("{\"success\":[", m);
		for (; i < n && ops < TXN_OPS; i++) {
			co_record *r;
			char *json;

			if (left_out(i, n))
				continue;
			r = bench_task(i);
			json = co_record_to_json(r, 0);
			snprintf(key, sizeof(key), "%stasks/%s", prefix, r->id);
			fprintf(m, "%s{\"requestPut\":{\"key\":\"", ops ? "," : "");
			b64(m, key, strlen(key));
			fputs("\",\"value\":\"", m);
			b64(m, json, strlen(json));
			fputs("\"}}", m);
			free(json);
			co_record_free(r);
			ops++;
		}
		fputs("]}", m);
		fclose(m);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
		if (curl_easy_perform(c) != CURLE_OK ||
		    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK ||
		    code != 200) {
			fprintf(stderr, "bench_reconcile: etcd txn failed (HTTP %ld)\n",
				code);
			exit(1);
		}
		free(body);
	}
	curl_easy_cleanup(c);
}

/*
 * The N pretty files as blobs through `git fast-import` (marks exported),
 * then the tasks/ tree with `git mktree` and one commit.  fast-import's
 * own tree building is quadratic in a directory's size (a million files
 * took over ten minutes); mktree sorts once.
 */
static void seed_git(const char *repo, size_t n)
{
	char cmd[1024], marks[600], line[256];
	FILE *p, *m;
	size_t i;
	char **sha = calloc(n, sizeof(*sha));

	snprintf(marks, sizeof(marks), "%s/bench-marks", repo);
	snprintf(cmd, sizeof(cmd),
		 "git --git-dir='%s' fast-import --quiet --export-marks='%s'", repo,
		 marks);
	if (sha == NULL || (p = popen(cmd, "w")) == NULL) {
		perror("popen fast-import");
		exit(1);
	}
	for (i = 0; i < n; i++) {
		co_record *r = bench_task(i);
		char *json = co_record_to_json(r, 1);

		fprintf(p, "blob\nmark :%zu\ndata %zu\n%s\n", i + 1, strlen(json), json);
		free(json);
		co_record_free(r);
	}
	if (pclose(p) != 0 || (m = fopen(marks, "r")) == NULL) {
		fprintf(stderr, "bench_reconcile: git fast-import failed\n");
		exit(1);
	}
	while (fgets(line, sizeof(line), m)) {
		size_t k;
		char hex[64];

		if (sscanf(line, ":%zu %63s", &k, hex) == 2 && k >= 1 && k <= n)
			sha[k - 1] = strdup(hex);
	}
	fclose(m);
	unlink(marks);
	snprintf(cmd, sizeof(cmd),
		 "set -e; G='%s'; T=$(git --git-dir=$G mktree);"
		 " R=$(printf '040000 tree %%s\\ttasks\\n' $T | git --git-dir=$G mktree);"
		 " C=$(GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost"
		 " GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost"
		 " git --git-dir=$G commit-tree $R -m seed);"
		 " git --git-dir=$G update-ref refs/heads/main $C",
		 repo);
	if ((p = popen(cmd, "w")) == NULL) {
		perror("popen mktree");
		exit(1);
	}
	for (i = 0; i < n; i++) {
		if (sha[i] == NULL) {
			fprintf(stderr, "bench_reconcile: no blob for record %zu\n", i);
			exit(1);
		}
		fprintf(p, "100644 blob %s\tB%07zu.json\n", sha[i], i);
		free(sha[i]);
	}
	free(sha);
	if (pclose(p) != 0) {
		fprintf(stderr, "bench_reconcile: git mktree failed\n");
		exit(1);
	}
}

/* ---- the reconciler, in a child ---- */

typedef struct result {
	double seconds;
	long long divergences, total;
	long long same_blob, read_back;
	long max_rss_kib;
} result;

/* Phase timings on stderr with BENCH_PHASES=1. */
static long status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = atol(line + strlen(field));
	if (f)
		fclose(f);
	return v;
}

static void phase_progress(void *ctx, const char *phase, size_t done, size_t total)
{
	double *t0 = ctx;

	fprintf(stderr, "  %8.3f s  rss %6.1f MiB  peak %6.1f MiB  %s %zu/%zu\n",
		now_s() - *t0, status_kib("VmRSS:") / 1024.0,
		status_kib("VmHWM:") / 1024.0, phase, done, total);
}

static void reconcile_child(int fd, const char *repo, const char *endpoint,
			    const char *prefix, const char *state_dir)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_reconcile_opts o = CO_RECONCILE_OPTS_INIT;
	co_reconcile_result *res = NULL;
	const char *eps[1] = {endpoint};
	co_store *git = NULL, *etcd = NULL;
	co_state *st = NULL;
	result out = {0};
	double t0;

	go.repo = repo;
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.prefix = prefix;
	eo.request_timeout_ms = 60000;
	if (co_git_store_open(&git, &go) < 0 || co_etcd_store_open(&etcd, &eo) < 0 ||
	    co_state_open(&st, state_dir) < 0)
		die("open");
	o.git = git;
	o.etcd = etcd;
	o.state = st;
	o.grace_ms = 0;
	o.no_rollback = 1;
	o.low_memory = getenv("BENCH_LOW_MEMORY") != NULL;
	t0 = now_s();
	if (getenv("BENCH_PHASES")) {
		o.progress = phase_progress;
		o.progress_ctx = &t0;
	}
	if (co_reconcile_run(&res, &o) < 0)
		die("reconcile");
	out.seconds = now_s() - t0;
	out.divergences = (long long)res->divergences.n;
	out.total = (long long)res->run.total;
	out.same_blob = (long long)res->same_blob;
	out.read_back = (long long)res->read_back;
	co_reconcile_result_free(res);
	co_state_close(st);
	co_store_free(etcd);
	co_store_free(git);
	if (write(fd, &out, sizeof(out)) != (ssize_t)sizeof(out))
		_exit(1);
	_exit(0);
}

static result run_reconcile(const char *repo, const char *endpoint, const char *prefix,
			    const char *state_dir)
{
	result r = {0};
	struct rusage ru;
	int fds[2], status = 0;
	pid_t pid;

	if (pipe(fds) < 0 || (pid = fork()) < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		close(fds[0]);
		reconcile_child(fds[1], repo, endpoint, prefix, state_dir);
	}
	close(fds[1]);
	if (read(fds[0], &r, sizeof(r)) != (ssize_t)sizeof(r) ||
	    wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "bench_reconcile: reconcile child failed\n");
		exit(1);
	}
	close(fds[0]);
	r.max_rss_kib = ru.ru_maxrss;
	return r;
}

/* ---- the shell pipeline ---- */

static const char pipeline[] =
    "set -e; cd '%s';"
    " ETCDCTL_API=3 etcdctl --endpoints=%s --command-timeout=300s get --prefix '%stasks/'"
    "  --print-value-only | grep -v '^$' | sort > etcd.txt;"
    " git --git-dir='%s' ls-tree -r main tasks/ | awk '{print $3}'"
    "  | git --git-dir='%s' cat-file --batch"
    "  | awk '/^[0-9a-f]+ blob [0-9]+$/ {next}"
    "         {sub(/^\\t+/, \"\"); gsub(/\":\\t/, \"\\\":\"); buf = buf $0}"
    "         $0 == \"}\" {print buf; buf = \"\"}'"
    "  | sort > git.txt;"
    " comm -3 git.txt etcd.txt | wc -l";

static double run_pipeline(long long *diff_lines, const char *dir, const char *endpoint,
			   const char *prefix, const char *repo)
{
	char *out = NULL, *err = NULL;
	double t0 = now_s();
	int rc = co_test_sh(&out, &err, pipeline, dir, endpoint, prefix, repo, repo);
	double t = now_s() - t0;

	if (rc != 0) {
		fprintf(stderr, "bench_reconcile: pipeline failed: %s\n", err ? err : "");
		exit(1);
	}
	*diff_lines = atoll(out);
	free(out);
	free(err);
	return t;
}

int main(int argc, char **argv)
{
	size_t sizes[8] = {10000, 100000}, n_sizes = 2, k;
	co_test_etcd etcd;
	int i;

	if (argc > 1) {
		n_sizes = 0;
		for (i = 1; i < argc && n_sizes < 8; i++)
			sizes[n_sizes++] = (size_t)strtoull(argv[i], NULL, 10);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (co_test_etcd_start(&etcd) < 0) {
		fprintf(stderr, "bench_reconcile: cannot start etcd\n");
		return 1;
	}
	printf("%-9s %-10s %10s %12s %10s %10s %12s %8s\n", "records", "method",
	       "seconds", "records/s", "peak_MiB", "found", "", "speedup");
	for (k = 0; k < n_sizes; k++) {
		size_t n = sizes[k];
		char dir[256], repo[256], prefix[64], sdir[300];
		long long diff_lines = 0;
		double t_seed, t_pipe;
		result r;

		if (co_test_tmpdir(dir, sizeof(dir)) < 0 ||
		    co_test_git_repo_new(repo, sizeof(repo)) < 0) {
			fprintf(stderr, "bench_reconcile: temp dirs\n");
			return 1;
		}
		snprintf(prefix, sizeof(prefix), "/bench%zu/", n);
		snprintf(sdir, sizeof(sdir), "%s/state", dir);
		t_seed = now_s();
		seed_git(repo, n);
		seed_etcd(etcd.endpoint, prefix, n);
		fprintf(stderr, "seeded %zu records in %.1f s\n", n, now_s() - t_seed);

		r = run_reconcile(repo, etcd.endpoint, prefix, sdir);
		t_pipe = run_pipeline(&diff_lines, dir, etcd.endpoint, prefix, repo);
		printf("%-9zu %-10s %10.3f %12.0f %10.1f %10lld %12s %8s\n", n,
		       "reconcile", r.seconds, (double)n / r.seconds,
		       r.max_rss_kib / 1024.0, r.divergences, "divergences", "");
		printf("%-9zu %-10s %10.3f %12.0f %10s %10lld %12s %7.1fx\n", n,
		       "pipeline", t_pipe, (double)n / t_pipe, "-", diff_lines, "lines",
		       t_pipe / r.seconds);
		if (getenv("BENCH_PHASES"))
			fprintf(stderr,
				"  reconcile: %lld IDs equal by blob id alone, %lld git "
				"files read back\n",
				r.same_blob, r.read_back);
		fflush(stdout);
		if (r.divergences != diff_lines)
			fprintf(stderr,
				"bench_reconcile: warning: reconcile found %lld, the "
				"pipeline %lld\n",
				r.divergences, diff_lines);
		co_test_rmrf(repo);
		co_test_rmrf(dir);
	}
	co_test_etcd_stop(&etcd);
	curl_global_cleanup();
	return 0;
}
