/*
 * etcd_local.h - a single-node etcd of our own on free loopback ports, for
 * the demo and the test harness.
 *
 * Start it (co_etcd_local_start), use e->endpoint, stop it
 * (co_etcd_local_stop).  Tests can also SIGKILL it keeping its data
 * (co_etcd_local_kill) and start it again on the same ports and data
 * (co_etcd_local_restart).  The ports are found free by binding
 * 127.0.0.1:0, never fixed, and etcd listens on loopback only.  etcd is the
 * `etcd` of PATH; it logs to <dir>/etcd.log.
 *
 * A co_etcd_local is owned by one thread at a time: the functions here are
 * not thread-safe on the same object.  The thread that starts etcd should
 * outlive it (see co_etcd_local_start).
 */
#ifndef CO_ETCD_LOCAL_H
#define CO_ETCD_LOCAL_H

#include <signal.h>
#include <sys/types.h>

/* How co_etcd_local_start() decides that etcd is ready. */
typedef enum co_etcd_local_ready {
	/*
	 * Its member list holds our peer URL (so the etcd answering on the
	 * port is ours, not one that took the port first: then we retry on
	 * other ports) and its status names a leader.  Plain HTTP over a raw
	 * socket: does not depend on the etcd store module.
	 */
	CO_ETCD_LOCAL_READY_MEMBER = 0,
	/* co_store_ping() through the etcd store succeeds (a linearizable read). */
	CO_ETCD_LOCAL_READY_STORE_PING,
} co_etcd_local_ready;

typedef struct co_etcd_local_opts {
	/*
	 * Required: an existing directory for the data dir (<dir>/<data_name>,
	 * emptied before each fresh start) and the log (<dir>/etcd.log).
	 */
	const char *dir;
	const char *data_name; /* default "data"; a plain name, no '/' */
	/* co_etcd_local_stop() removes all of `dir` (default 0: only etcd) */
	int remove_dir_on_stop;
	const char *name;      /* --name; default "default" */
	int heartbeat_ms;      /* --heartbeat-interval; default 10 (fast) */
	int election_ms;       /* --election-timeout; default 100 (fast) */
	const char *logger;    /* --logger ("zap"); NULL: etcd's default */
	const char *log_level; /* --log-level; default "error"; NULL: etcd's */
	co_etcd_local_ready ready;
	int ready_timeout_ms; /* per attempt (also bounds a restart); default 10000 */
	int attempts;	      /* fresh starts on new ports; default 5 */
	int stop_timeout_ms;  /* SIGTERM -> SIGKILL; default 5000 */
	/*
	 * Put etcd in its own process group, so that a ^C at the terminal
	 * reaches only us and we stop etcd in order (default 0).
	 */
	int own_process_group;
	/* If not NULL: give up starting once *cancel is non-zero (a signal). */
	volatile sig_atomic_t *cancel;
} co_etcd_local_opts;

#define CO_ETCD_LOCAL_OPTS_INIT                                                          \
	{                                                                                \
		NULL, "data", 0, "default", 10, 100, NULL, "error",                      \
		    CO_ETCD_LOCAL_READY_MEMBER, 10000, 5, 5000, 0, NULL                  \
	}

/* A running (or killed, or stopped) local etcd.  Read the fields, do not set them. */
typedef struct co_etcd_local {
	pid_t pid; /* 0 when not running */
	int client_port, peer_port;
	char endpoint[64];	 /* "http://127.0.0.1:PORT" */
	char dir[1024];		 /* opts.dir; "" once stop removed it */
	char data[1024];	 /* <dir>/<data_name> */
	char log[1024];		 /* <dir>/etcd.log */
	co_etcd_local_opts opts; /* as given (dir copied); other strings must outlive e */
} co_etcd_local;

/*
 * Start etcd on two free loopback ports with the options `o` and wait until
 * it is ready (o->ready), trying again on new ports when it exits early or
 * another etcd answers on its port (a port can be taken between our probe
 * and etcd's bind).  `e` is overwritten.  etcd dies with the *thread* that
 * started it, even when the process is SIGKILLed (PR_SET_PDEATHSIG): start
 * it from the main thread or one that outlives it.  On failure no etcd runs
 * and `e` still names the dir and the log (for the message); call
 * co_etcd_local_stop() to remove the dir if it should be.  CO_EINVAL (bad
 * options, a path too long), CO_EIO (the log cannot be opened), CO_EUNAVAIL
 * (fork failed, etcd did not start or answer in time -- the message names
 * the log --, or o->cancel was set).
 */
int co_etcd_local_start(co_etcd_local *e, const co_etcd_local_opts *o);

/*
 * SIGTERM, wait up to opts.stop_timeout_ms, then SIGKILL; reaps etcd.  Then
 * removes the dir if opts.remove_dir_on_stop.  Idempotent; NULL is fine.
 */
void co_etcd_local_stop(co_etcd_local *e);

/* SIGKILL and reap, keeping the data for co_etcd_local_restart().  NULL is fine. */
void co_etcd_local_kill(co_etcd_local *e);

/*
 * Kill etcd if it runs, then start it again on the same ports and data dir
 * and wait until it is ready, retrying while the ports are not free yet, for
 * at most opts.ready_timeout_ms.  CO_EINVAL if `e` was never started or
 * its dir was removed by co_etcd_local_stop(); CO_EIO, CO_EUNAVAIL as
 * co_etcd_local_start().
 */
int co_etcd_local_restart(co_etcd_local *e);

#endif
