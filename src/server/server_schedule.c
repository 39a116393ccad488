/*
 * server_schedule.c - reconciliation on a schedule inside `cutover serve`
 * (issue 14 point 8; seed 003: every 5 minutes during dual-write).
 *
 * One thread wakes every serve.reconcile_interval (default 5 min) and, if
 * any operation routes through both stores (shadow or dual, or the kill
 * switch, which routes as shadow) runs one reconciliation exactly as POST
 * /v1/admin/reconcile does (co_server__reconcile): the outbox drained
 * first, the run recorded in SQLite, the kill switch tripped on a failed
 * verdict, an audit row by "serve:schedule".  In `git` (nothing reaches
 * etcd: nothing to compare) and in `etcd` (git is fed by the outbox only)
 * it does nothing.  One run at a time with the admin endpoint: a tick that
 * finds a run going counts as busy and waits for the next.
 *
 * The wait is a condition variable with a deadline, so stopping the server
 * wakes the thread at once.
 */
#include "server_internal.h"

#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* 1 if some operation now goes to both stores: a run has something to do. */
static int both_stores(co_server *s)
{
	co_flags f;
	int op;

	co_flags_watcher_get(&f, s->flags);
	if (f.kill_switch)
		return 1;
	for (op = 0; op < CO_OP__COUNT; op++) {
		co_mode m = co_flags_get(&f, (co_op)op).mode;

		if (m == CO_MODE_SHADOW || m == CO_MODE_DUAL)
			return 1;
	}
	return 0;
}

/* "scheduled reconciliation: WHAT" into the serve log, if any. */
static void log_line(co_server *s, const char *what)
{
	char line[1400];

	if (s->log == NULL)
		return;
	snprintf(line, sizeof(line), "scheduled reconciliation: %.1300s", what);
	s->log(s->log_ctx, line);
}

static void tick(co_server *s)
{
	co_reconcile_result *res = NULL, *verify = NULL;
	int error;

	atomic_fetch_add(&s->sched_ticks, 1);
	if (!both_stores(s))
		return;
	error = co_server__reconcile(&res, &verify, s, CO_REPAIR_NONE, 0, "serve:schedule");
	if (error == CO_ECONFLICT) {
		atomic_fetch_add(&s->sched_busy, 1);
	} else if (error < 0) {
		atomic_fetch_add(&s->sched_failed, 1);
		log_line(s, co_error_last());
	} else {
		atomic_fetch_add(&s->sched_runs, 1);
		if (res->run.verdict && strcmp(res->run.verdict, "fail") == 0) {
			char what[256];

			snprintf(what, sizeof(what), "verdict fail, action %s",
				 res->run.action ? res->run.action : "none");
			log_line(s, what);
		}
	}
	co_error_clear();
	co_reconcile_result_free(verify);
	co_reconcile_result_free(res);
}

static void *loop(void *arg)
{
	co_server *s = arg;
	struct timespec at;

	pthread_mutex_lock(&s->sched_lock);
	while (!s->sched_stop) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += s->reconcile_every_ms / 1000;
		at.tv_nsec += (long)(s->reconcile_every_ms % 1000) * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		while (!s->sched_stop &&
		       pthread_cond_timedwait(&s->sched_cond, &s->sched_lock, &at) !=
			   ETIMEDOUT)
			;
		if (s->sched_stop)
			break;
		pthread_mutex_unlock(&s->sched_lock);
		tick(s);
		pthread_mutex_lock(&s->sched_lock);
	}
	pthread_mutex_unlock(&s->sched_lock);
	return NULL;
}

int co_server__schedule_start(co_server *s)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&s->sched_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->sched_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->sched_inited = 1;
	if (s->reconcile_every_ms <= 0)
		return 0;
	if (pthread_create(&s->sched_thread, NULL, loop, s) != 0)
		return co_error_set(CO_ENOMEM, "cannot start the reconcile schedule");
	s->sched_started = 1;
	return 0;
}

void co_server__schedule_stop(co_server *s)
{
	if (!s->sched_inited)
		return;
	pthread_mutex_lock(&s->sched_lock);
	s->sched_stop = 1;
	pthread_cond_broadcast(&s->sched_cond);
	pthread_mutex_unlock(&s->sched_lock);
	if (s->sched_started)
		pthread_join(s->sched_thread, NULL);
	s->sched_started = 0;
	pthread_cond_destroy(&s->sched_cond);
	pthread_mutex_destroy(&s->sched_lock);
	s->sched_inited = 0;
}
