/*
 * serve_child.c - the `cutover serve` binary as a child (serve_child.h).
 */
#include "harness/serve_child.h"

#include "harness/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pause_50ms(void)
{
	struct timespec p = {0, 50 * 1000000L};

	nanosleep(&p, NULL); /* a poll's interval */
}

/* In the child: log, directory, then exec (never returns). */
static void exec_serve(const char *dir, const char *log, const char *const *env,
		       const char *wrap)
{
	const char *argv[] = {CUTOVER_BIN, "serve", "--listen", "127.0.0.1:0", NULL};
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Its own process group: a wrapper (heaptrack is a shell script that
	 * runs serve as its child) is found and stopped with serve. */
	setpgid(0, 0);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || chdir(dir) < 0)
		_exit(127);
	if (wrap) {
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "exec %s %s serve --listen 127.0.0.1:0", wrap,
			 CUTOVER_BIN);
		execle("/bin/sh", "sh", "-c", cmd, (char *)NULL, (char *const *)env);
	}
	execve(CUTOVER_BIN, (char *const *)argv, (char *const *)env);
	_exit(127);
}

int co_test_serve_child_start(co_test_serve_child *s, const char *dir,
			      const char *const *env, const char *wrap)
{
	char *buf = NULL;
	int i;

	memset(s, 0, sizeof(*s));
	snprintf(s->log, sizeof(s->log), "%s/serve.log", dir);
	fflush(stdout);
	fflush(stderr);
	if ((s->pid = fork()) < 0) {
		s->pid = 0;
		return -1;
	}
	if (s->pid == 0)
		exec_serve(dir, s->log, env, wrap);
	setpgid(s->pid, s->pid); /* also here: no window before the child's own */
	s->wrapped = wrap != NULL;
	/* Poll its log for the port (bounded: 60 s), or its exit. */
	for (i = 0; i < 1200 && s->port == 0; i++) {
		const char *p;

		free(buf);
		buf = NULL;
		if (co_test_sh(&buf, NULL, "cat '%s'", s->log) == 0 && buf &&
		    strstr(buf, "serving on") && (p = strstr(buf, "(port ")) != NULL)
			s->port = atoi(p + 6);
		else if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			break;
		} else
			pause_50ms();
	}
	if (s->port == 0) {
		fprintf(stderr, "serve did not start; its log:\n%s\n", buf ? buf : "");
		co_test_serve_child_stop(s);
	}
	free(buf);
	snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
	return s->port ? 0 : -1;
}

pid_t co_test_serve_child_serve_pid(const co_test_serve_child *s)
{
	char path[64], exe[4096], line[512];
	struct dirent *d;
	pid_t found = 0;
	DIR *dp;

	if (s->pid <= 0 || !s->wrapped)
		return s->pid > 0 ? s->pid : 0;
	if ((dp = opendir("/proc")) == NULL)
		return 0;
	while (found == 0 && (d = readdir(dp)) != NULL) {
		pid_t p = (pid_t)atoi(d->d_name);
		const char *rp;
		ssize_t n;
		int pgrp = 0;
		FILE *f;

		if (p <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)p);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		/* pid (comm) state ppid pgrp: comm may hold spaces, so after ')' */
		if (fgets(line, sizeof(line), f) && (rp = strrchr(line, ')')) != NULL)
			sscanf(rp + 1, " %*c %*d %d", &pgrp);
		fclose(f);
		if (pgrp != (int)s->pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)p);
		if ((n = readlink(path, exe, sizeof(exe) - 1)) > 0) {
			exe[n] = '\0';
			if (strcmp(exe, CUTOVER_BIN) == 0)
				found = p;
		}
	}
	closedir(dp);
	return found;
}

int co_test_serve_child_stop(co_test_serve_child *s)
{
	int status = -1, i;
	pid_t serve;

	if (s->pid <= 0)
		return -1;
	/* SIGTERM to serve itself; a wrapper (a profiler) then ends on its own
	 * and writes out what it gathered.  Killing only the wrapper would
	 * leave serve orphaned. */
	serve = co_test_serve_child_serve_pid(s);
	kill(serve > 0 ? serve : s->pid, SIGTERM);
	for (i = 0; i < 600; i++) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid)
			break;
		pause_50ms();
	}
	if (i == 600) {
		kill(-s->pid, SIGKILL); /* the group: the wrapper and serve */
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &status, 0);
	}
	kill(-s->pid, SIGKILL); /* whatever of the group outlived its leader */
	s->pid = 0;
	return status;
}

long co_test_proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int co_test_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	int n = 0;
	DIR *dp;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((dp = opendir(path)) == NULL)
		return -1;
	while ((d = readdir(dp)) != NULL)
		n += d->d_name[0] != '.';
	closedir(dp);
	return n;
}
