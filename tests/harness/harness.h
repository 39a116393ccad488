/*
 * harness.h - real servers for tests: etcd on a free loopback port, bare git
 * repos in temp dirs, and running the `cutover` binary as a child process.
 *
 * Everything a test starts it stops; everything it creates under /tmp it
 * removes (co_test_etcd_stop, co_test_rmrf).  Never a fixed port: the port
 * is found by binding 127.0.0.1:0.  Include after cmocka's prerequisites.
 */
#ifndef CO_TEST_HARNESS_H
#define CO_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct co_test_etcd {
	pid_t pid;
	int client_port, peer_port;
	char endpoint[64]; /* "http://127.0.0.1:PORT" */
	char dir[256];	   /* temp dir holding the data dir and the log */
} co_test_etcd;

/* Start etcd (fast election settings) and wait until it answers.  0 / -1. */
int co_test_etcd_start(co_test_etcd *e);
/* SIGTERM, wait, remove the temp dir.  Idempotent. */
void co_test_etcd_stop(co_test_etcd *e);
/* SIGKILL, wait; keeps the data dir so that co_test_etcd_restart() can. */
void co_test_etcd_kill(co_test_etcd *e);
/* Start again on the same ports and data dir; wait until it answers. */
int co_test_etcd_restart(co_test_etcd *e);
/* Add user `root` with `password` and turn etcd's auth on (etcdctl).
 * 0, or -1 with etcdctl's complaint on stderr. */
int co_test_etcd_enable_auth(const co_test_etcd *e, const char *password);

/*
 * SIGSTOP etcd and wait until the kernel says it is stopped (kill() only
 * queues): a hung store, whose port accepts and answers nothing.  0 / -1.
 * co_test_etcd_thaw() sends SIGCONT; co_test_etcd_stop() thaws first.
 */
int co_test_etcd_freeze(co_test_etcd *e);
void co_test_etcd_thaw(co_test_etcd *e);

/*
 * One etcd member for a whole cmocka group: pass these as the group's
 * setup and teardown, and use co_test_group_etcd (its endpoint) in the
 * tests.  Setup fails the group when etcd does not start.
 */
extern co_test_etcd co_test_group_etcd;
int co_test_etcd_group_setup(void **state);
int co_test_etcd_group_teardown(void **state);

/* Wait (bounded, 5 s) until process pid is stopped.  0 / -1. */
int co_test_wait_stopped(pid_t pid);

/* A fresh temp dir "/tmp/cutover-test-XXXXXX" into out.  0 / -1. */
int co_test_tmpdir(char *out, size_t len);
/* rm -rf path (refuses anything outside /tmp). */
void co_test_rmrf(const char *path);
/* `git init --bare -b main` a new repo in a fresh temp dir; path into out. */
int co_test_git_repo_new(char *out, size_t len);

/*
 * Run a shell command (sh -c), capture stdout (malloc'd into *out if out is
 * not NULL) and return its exit status (or -1).  stderr goes to *err likewise.
 */
int co_test_sh(char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Run the cutover binary built alongside the tests with the given
 * arguments (NULL-terminated) and extra environment "K=V" strings
 * (NULL-terminated, may be NULL); capture stdout/stderr as co_test_sh does.
 * Returns the exit status.
 */
int co_test_cutover(char **out, char **err, const char *const *env,
		    const char *const *argv);

/*
 * A self-signed certificate for 127.0.0.1 and its key, made by the openssl
 * CLI as DIR/cert.pem and DIR/key.pem (paths into cert and key).  0; 1 when
 * there is no openssl CLI (skip, with the reason printed); -1 if it failed.
 */
int co_test_self_signed(const char *dir, char *cert, size_t cert_len, char *key,
			size_t key_len);

#endif
