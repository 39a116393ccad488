/*
 * test_container.c - packaging/container (issue 17 point 6): what can be
 * checked of the Dockerfile and compose.yaml on a machine without a docker
 * daemon, and, where one answers, the image built and run.
 *
 * Without a daemon: every COPY source exists in the tree; the stages are
 * Debian 12 slim and the runtime one runs as a non-root user; the build
 * stage installs only packages scripts/setup installs; every package of the
 * other stages is a real Debian package (apt-cache knows it); the runtime
 * stage holds the package of every library the built binary links
 * directly; the entrypoint makes a bare repo on an empty volume and runs
 * the binary; compose.yaml starts etcd and serve with healthchecks, serve
 * after etcd is healthy, on the repo volume (and `docker compose config`
 * validates it where the compose plugin is present).  What needs a tool
 * that is absent is skipped with a message saying which.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_C CUTOVER_SOURCE_DIR "/packaging/container"
#define MAX_PKGS 64

static char *slurp(const char *path)
{
	char *out = NULL;

	if (co_test_sh(&out, NULL, "cat '%s'", path) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* One Dockerfile instruction a line: continuation lines joined. */
static char *joined_dockerfile(void)
{
	char *df = slurp(DIR_C "/Dockerfile"), *w, *r;

	assert_non_null(df);
	for (r = w = df; *r; r++) {
		if (r[0] == '\\' && r[1] == '\n') {
			r++;
			continue;
		}
		*w++ = *r;
	}
	*w = '\0';
	return df;
}

typedef struct stage {
	char name[32], from[64];
	char pkgs[MAX_PKGS][64];
	int npkgs;
	char user[32];
} stage;

typedef struct dockerfile {
	stage st[4];
	int n;
	char copies[32][128]; /* COPY sources from the context */
	int ncopies;
	char arg_debian[64];
} dockerfile;

/* Words after "apt-get install" up to && or the end, options left out. */
static void apt_packages(stage *s, const char *line)
{
	const char *p = strstr(line, "apt-get install");
	char word[64];
	int used;

	if (p == NULL)
		return;
	p += strlen("apt-get install");
	while (sscanf(p, " %63s%n", word, &used) == 1) {
		p += used;
		if (strcmp(word, "&&") == 0)
			break;
		if (word[0] != '-' && s->npkgs < MAX_PKGS)
			snprintf(s->pkgs[s->npkgs++], sizeof(s->pkgs[0]), "%s", word);
	}
}

static void parse(dockerfile *d)
{
	char *df = joined_dockerfile(), *line, *save = NULL;

	memset(d, 0, sizeof(*d));
	for (line = strtok_r(df, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char word[16] = "", a[128] = "", b[32] = "", c[32] = "";
		stage *s = d->n ? &d->st[d->n - 1] : NULL;

		sscanf(line, "%15s %127s %31s %31s", word, a, b, c);
		if (strcmp(word, "ARG") == 0 && strncmp(a, "DEBIAN=", 7) == 0) {
			snprintf(d->arg_debian, sizeof(d->arg_debian), "%.63s", a + 7);
		} else if (strcmp(word, "FROM") == 0) {
			assert_true(d->n < 4);
			s = &d->st[d->n++];
			snprintf(s->from, sizeof(s->from), "%.63s", a);
			snprintf(s->name, sizeof(s->name), "%s", c);
		} else if (strcmp(word, "RUN") == 0 && s) {
			apt_packages(s, line);
		} else if (strcmp(word, "USER") == 0 && s) {
			snprintf(s->user, sizeof(s->user), "%.31s", a);
		} else if (strcmp(word, "COPY") == 0 && strncmp(a, "--from", 6) != 0) {
			char *args = line + 4, *tok, *save2 = NULL, *srcs[16];
			int n = 0, i;

			for (tok = strtok_r(args, " \t", &save2); tok && n < 16;
			     tok = strtok_r(NULL, " \t", &save2))
				srcs[n++] = tok;
			for (i = 0; i < n - 1 && d->ncopies < 32; i++) /* the last is the dest */
				snprintf(d->copies[d->ncopies++], sizeof(d->copies[0]), "%s",
					 srcs[i]);
		}
	}
	free(df);
}

static stage *stage_named(dockerfile *d, const char *name)
{
	int i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->st[i].name, name) == 0)
			return &d->st[i];
	fail_msg("Dockerfile: no stage \"%s\"", name);
	return NULL;
}

static void stages_are_debian_12_slim_and_runtime_is_not_root(void **state)
{
	dockerfile d;
	int i;

	(void)state;
	parse(&d);
	assert_string_equal(d.arg_debian, "debian:12-slim");
	assert_int_equal(d.n, 3);
	for (i = 0; i < d.n; i++)
		assert_string_equal(d.st[i].from, "${DEBIAN}");
	assert_string_equal(d.st[0].name, "build");
	assert_string_equal(stage_named(&d, "runtime")->user, "cutover");
	assert_string_equal(stage_named(&d, "etcd")->user, "etcd");
	/* The runtime stage has no compiler and no -dev package. */
	for (i = 0; i < stage_named(&d, "runtime")->npkgs; i++) {
		const char *p = stage_named(&d, "runtime")->pkgs[i];

		if (strstr(p, "-dev") || strcmp(p, "build-essential") == 0 ||
		    strcmp(p, "cmake") == 0)
			fail_msg("runtime stage installs %s", p);
	}
}

static void every_copy_source_exists(void **state)
{
	dockerfile d;
	int i;

	(void)state;
	parse(&d);
	assert_true(d.ncopies >= 10);
	for (i = 0; i < d.ncopies; i++) {
		char path[512];

		snprintf(path, sizeof(path), "%s/%s", CUTOVER_SOURCE_DIR, d.copies[i]);
		if (access(path, R_OK) != 0)
			fail_msg("Dockerfile COPYs %s, which is not in the tree", d.copies[i]);
	}
}

/* The build stage installs nothing scripts/setup does not (it builds what
 * the two commands of the README build). */
static void build_packages_are_setups(void **state)
{
	char *setup = slurp(CUTOVER_SOURCE_DIR "/scripts/setup");
	dockerfile d;
	stage *b;
	int i;

	(void)state;
	assert_non_null(setup);
	parse(&d);
	b = stage_named(&d, "build");
	assert_true(b->npkgs >= 8);
	for (i = 0; i < b->npkgs; i++) {
		char needle[80];
		const char *p = setup;
		int found = 0;

		snprintf(needle, sizeof(needle), "%s", b->pkgs[i]);
		while ((p = strstr(p, needle)) != NULL && !found) {
			char after = p[strlen(needle)];

			found = (p == setup || p[-1] == ' ' || p[-1] == '(' || p[-1] == '\t' ||
				 p[-1] == '\n') &&
				(after == ' ' || after == ')' || after == '\n');
			p++;
		}
		if (!found)
			fail_msg("build stage installs %s, not in scripts/setup's list",
				 b->pkgs[i]);
	}
	free(setup);
}

/* Every package of every stage is a Debian package apt knows. */
static void every_package_is_a_debian_package(void **state)
{
	dockerfile d;
	int i, k;

	(void)state;
	if (co_test_sh(NULL, NULL, "command -v apt-cache") != 0) {
		print_message("skipped: no apt-cache on this machine\n");
		skip();
	}
	parse(&d);
	{
		/* One apt-cache call for all (each costs a second): it exits 0
		 * if it knows any, so count the records; one a package only to
		 * name the one it does not know. */
		char all[4096] = "", *got = NULL;
		size_t used = 0;

		for (i = 0; i < d.n; i++)
			for (k = 0; k < d.st[i].npkgs; k++)
				used += (size_t)snprintf(all + used, sizeof(all) - used, "%s\n",
							 d.st[i].pkgs[k]);
		assert_true(used < sizeof(all));
		if (co_test_sh(&got, NULL,
			       "want=$(printf '%s' | sort -u); n=$(echo \"$want\" | wc -l); "
			       "m=$(apt-cache show --no-all-versions $want 2>/dev/null | "
			       "grep '^Package: ' | sort -u | wc -l); test \"$n\" -eq \"$m\"",
			       all) == 0) {
			free(got);
			return;
		}
		free(got);
	}
	for (i = 0; i < d.n; i++)
		for (k = 0; k < d.st[i].npkgs; k++)
			if (co_test_sh(NULL, NULL, "apt-cache show --no-all-versions '%s'",
				       d.st[i].pkgs[k]) != 0)
				fail_msg("stage %s installs %s: apt-cache does not know it",
					 d.st[i].name, d.st[i].pkgs[k]);
}

/* The runtime stage holds the package of each library `cutover` links. */
static void runtime_has_every_linked_library(void **state)
{
	char *libs = NULL, *line, *save = NULL;
	dockerfile d;
	stage *rt;

	(void)state;
	if (co_test_sh(NULL, NULL, "command -v objdump && command -v dpkg-query") != 0) {
		print_message("skipped: needs objdump and dpkg-query\n");
		skip();
	}
	parse(&d);
	rt = stage_named(&d, "runtime");
	assert_int_equal(co_test_sh(&libs, NULL,
				    "objdump -p '%s' | awk '/NEEDED/ {print $2}'", CUTOVER_BIN),
			 0);
	for (line = strtok_r(libs, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *pkg = NULL;
		int i, ok = 0;

		/* A -DCUTOVER_SANITIZE build links the sanitizers' runtimes. */
		if (strncmp(line, "libasan.", 8) == 0 || strncmp(line, "libubsan.", 9) == 0)
			continue;
		/* The dynamic loader (NEEDED by position-independent code with
		 * thread-locals: __tls_get_addr) is libc6's, in every image;
		 * ldd names it by its path, so the lookup below cannot. */
		if (strncmp(line, "ld-linux", 8) == 0)
			continue;

		if (co_test_sh(&pkg, NULL,
			       "p=$(ldd '%s' | awk '$1 == \"%s\" {print $3}'); "
			       "{ dpkg-query -S \"$p\" || dpkg-query -S \"$(readlink -f \"$p\")\"; }"
			       " 2>/dev/null | head -n 1 | cut -d: -f1",
			       CUTOVER_BIN, line) != 0 ||
		    pkg[0] == '\0')
			fail_msg("no Debian package holds %s", line);
		pkg[strcspn(pkg, "\n")] = '\0';
		ok = strcmp(pkg, "libc6") == 0; /* in every Debian image */
		for (i = 0; i < rt->npkgs && !ok; i++)
			ok = strcmp(rt->pkgs[i], pkg) == 0;
		if (!ok)
			fail_msg("cutover links %s (package %s), which the runtime stage "
				 "does not install",
				 line, pkg);
		free(pkg);
	}
	free(libs);
}

/* The entrypoint makes the repo on an empty volume, then runs cutover. */
static void entrypoint_makes_the_repo_then_runs_cutover(void **state)
{
	char dir[256], *out = NULL, *err = NULL;
	const char *slash = strrchr(CUTOVER_BIN, '/');
	int rc;

	(void)state;
	assert_int_equal(co_test_tmpdir(dir, sizeof(dir)), 0);
	rc = co_test_sh(&out, &err,
			"mkdir '%s/tasks.git' && PATH='%.*s':$PATH CUTOVER_GIT_REPO='%s/tasks.git' "
			"CUTOVER_STATE_DIR='%s/state' CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:9 "
			"sh '%s/entrypoint.sh' --backend git task create P0.1 --type build",
			dir, (int)(slash - CUTOVER_BIN), CUTOVER_BIN, dir, dir, DIR_C);
	if (rc != 0)
		fail_msg("entrypoint: exit %d: %s %s", rc, out, err);
	assert_non_null(strstr(err, "created an empty bare repo"));
	assert_non_null(strstr(out, "P0.1"));
	free(out);
	free(err);
	out = err = NULL;
	/* A second start leaves the repo as it is. */
	rc = co_test_sh(&out, &err,
			"PATH='%.*s':$PATH CUTOVER_GIT_REPO='%s/tasks.git' "
			"CUTOVER_STATE_DIR='%s/state' CUTOVER_ETCD_ENDPOINTS=http://127.0.0.1:9 "
			"sh '%s/entrypoint.sh' --backend git task get P0.1",
			(int)(slash - CUTOVER_BIN), CUTOVER_BIN, dir, dir, DIR_C);
	assert_int_equal(rc, 0);
	assert_null(strstr(err, "created"));
	free(out);
	free(err);
	co_test_rmrf(dir);
}

static void compose_starts_etcd_and_serve_healthy(void **state)
{
	char *y = slurp(DIR_C "/compose.yaml"), *out = NULL, *err = NULL;
	const char *svc_etcd, *svc_cut;

	(void)state;
	assert_non_null(y);
	svc_etcd = strstr(y, "\n  etcd:\n");
	svc_cut = strstr(y, "\n  cutover:\n");
	assert_non_null(svc_etcd);
	assert_non_null(svc_cut);
	assert_true(svc_etcd < svc_cut);
	/* Each service has a healthcheck; serve waits for a healthy etcd. */
	assert_non_null(strstr(svc_etcd, "healthcheck:"));
	assert_true(strstr(svc_etcd, "healthcheck:") < svc_cut);
	assert_non_null(strstr(svc_cut, "healthcheck:"));
	assert_non_null(strstr(svc_cut, "condition: service_healthy"));
	assert_non_null(strstr(svc_cut, "\"serve\""));
	assert_non_null(strstr(svc_cut, "CUTOVER_GIT_REPO: /srv/tasks.git"));
	assert_non_null(strstr(svc_cut, "- tasks:/srv/tasks.git"));
	assert_non_null(strstr(svc_cut, "CUTOVER_ETCD_ENDPOINTS: http://etcd:2379"));
	/* Swarm auth off: published on the host's loopback only. */
	assert_non_null(strstr(svc_cut, "\"127.0.0.1:7480:7480\""));
	if (co_test_sh(NULL, NULL, "docker compose version") == 0) {
		if (co_test_sh(&out, &err, "docker compose -f '%s/compose.yaml' config -q",
			       DIR_C) != 0)
			fail_msg("docker compose config: %s%s", out, err);
	} else if (co_test_sh(NULL, NULL, "docker-compose version") == 0) {
		if (co_test_sh(&out, &err, "docker-compose -f '%s/compose.yaml' config -q",
			       DIR_C) != 0)
			fail_msg("docker-compose config: %s%s", out, err);
	} else {
		print_message("note: no docker compose plugin nor docker-compose: "
			      "compose.yaml checked by its text only\n");
	}
	free(out);
	free(err);
	free(y);
}

/* Where a docker daemon answers: build the runtime image and run it. */
static void image_builds_and_runs(void **state)
{
	char *out = NULL, *err = NULL;

	(void)state;
	if (co_test_sh(NULL, NULL, "docker info") != 0) {
		print_message("skipped: no docker daemon answers (`docker info`)\n");
		skip();
	}
	if (co_test_sh(&out, &err,
		       "cd '%s' && docker build -q -f packaging/container/Dockerfile "
		       "--target runtime -t cutover-test:ci . && docker run --rm "
		       "cutover-test:ci --version",
		       CUTOVER_SOURCE_DIR) != 0)
		fail_msg("docker build/run: %s%s", out, err);
	assert_non_null(strstr(out, "cutover "));
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stages_are_debian_12_slim_and_runtime_is_not_root),
		cmocka_unit_test(every_copy_source_exists),
		cmocka_unit_test(build_packages_are_setups),
		cmocka_unit_test(every_package_is_a_debian_package),
		cmocka_unit_test(runtime_has_every_linked_library),
		cmocka_unit_test(entrypoint_makes_the_repo_then_runs_cutover),
		cmocka_unit_test(compose_starts_etcd_and_serve_healthy),
		cmocka_unit_test(image_builds_and_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
