/*
 * cluster.h - a real 3-member etcd cluster on loopback for reliability
 * tests: find its leader, SIGKILL, SIGSTOP/SIGCONT and restart members.
 *
 * Ownership: the caller owns the co_test_cluster struct (it must stay at
 * one address from start to stop: an atexit handler reaches it to kill
 * what is still running when a test fails midway).  The cluster owns its
 * processes and its temp dir; co_test_cluster_stop() kills only the pids
 * it started and removes only that dir.  Ports are free loopback ports
 * (bind 127.0.0.1:0), never fixed.  Not thread-safe: drive a cluster
 * from one thread, the one that started it (etcd dies with the *thread*
 * that forked it, PR_SET_PDEATHSIG).
 *
 * Errors: functions returning int give 0 on success and -1 on failure
 * after printing why to stderr (a test's diagnostics, not a library's).
 */
#ifndef CO_TEST_CLUSTER_H
#define CO_TEST_CLUSTER_H

#include <stddef.h>
#include <sys/types.h>

#define CO_TEST_CLUSTER_N 3

typedef struct co_test_member {
	pid_t pid;  /* 0 when not running (killed) */
	int frozen; /* 1 between co_test_cluster_freeze and _thaw */
	int client_port, peer_port;
	char name[8];	   /* "m0".."m2" */
	char endpoint[64]; /* "http://127.0.0.1:PORT" */
	char data[320];	   /* <dir>/<name>.data, kept across a kill */
	char log[320];	   /* <dir>/<name>.log */
} co_test_member;

typedef struct co_test_cluster {
	co_test_member m[CO_TEST_CLUSTER_N];
	char dir[64]; /* "/tmp/cutover-test-XXXXXX" */
	char initial_cluster[512];
	const char *endpoints[CO_TEST_CLUSTER_N]; /* point into m[i].endpoint */
	int heartbeat_ms, election_ms;		  /* 50 and 500 */
} co_test_cluster;

/*
 * Start three members on distinct free ports with fresh data dirs and wait
 * (bounded, 20 s) until all three agree on a leader.  A start that fails
 * (a port taken between probe and bind) is retried on new ports.
 */
int co_test_cluster_start(co_test_cluster *c);

/* SIGKILL every member still running, reap, remove the dir.  Idempotent. */
void co_test_cluster_stop(co_test_cluster *c);

/*
 * The index of the member that the running, unfrozen members agree leads
 * (a majority of them name it and it is itself running and unfrozen),
 * waiting for one at most timeout_ms; -1 if none in time.  `not` (-1 for
 * none) is a member that must not be the answer: the one just killed or
 * frozen, whose stale view may linger.
 */
int co_test_cluster_leader(co_test_cluster *c, int not, int timeout_ms);

/* SIGKILL member i and reap it; its data dir stays for a restart. */
void co_test_cluster_kill(co_test_cluster *c, int i);

/* SIGSTOP member i and wait until the kernel says it is stopped. */
int co_test_cluster_freeze(co_test_cluster *c, int i);
/* SIGCONT member i. */
void co_test_cluster_thaw(co_test_cluster *c, int i);

/*
 * Start killed member i again on its ports with its data dir and wait
 * (bounded, 20 s) until it answers and follows the cluster's leader.
 */
int co_test_cluster_restart(co_test_cluster *c, int i);

/*
 * Wait (bounded) until member i answers and names the same leader as
 * a majority: a member back from a freeze or a restart has caught up.
 */
int co_test_cluster_wait_member(co_test_cluster *c, int i, int timeout_ms);

#endif
