/*
 * triggers.c - the evaluator thread of the live-signal triggers (see
 * triggers.h): once a second, take the window, refresh the git baselines,
 * read etcd's breaker and the outbox's oldest entry, evaluate, and pull
 * the kill switch when a trigger fires; the files it keeps in the state
 * dir (trigger-baseline.json, triggers.json); the figures for /metrics and
 * `cutover status`, and what status shows of them: the thresholds in force,
 * the baselines, and the figures a running evaluator last wrote, read
 * without touching a store.
 */
#include "triggers.h"

#include "core/error.h"
#include "core/log.h"
#include "core/outbox.h"
#include "core/state.h"
#include "flags/trip.h"
#include "flags/watcher.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BASELINE_FILE "trigger-baseline.json"
#define STATUS_FILE "triggers.json"
/* A changed baseline is written at most this often. */
#define BASELINE_SAVE_MS 10000
/* Who the audit and the flags' updated_by name. */
#define WHO "cutover-triggers"

struct co_triggers {
	co_triggers_opts o;
	char *flags_path, *state_dir;
	pthread_t thread;
	int started;
	pthread_mutex_t mu; /* guards everything below, and stop */
	pthread_cond_t cv;
	int stop;
	int64_t baseline_us[CO_OP__COUNT], samples[CO_OP__COUNT];
	int baseline_dirty;
	int64_t baseline_saved_ms;
	int64_t down_since_ms; /* etcd's breaker seen not closed since; 0: closed */
	uint64_t fired[CO_TRIGGER__COUNT];
	co_trigger_eval last;
	char last_fired[CO_FLAGS_REASON_MAX + 1];
	int64_t last_fired_ms;
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write `text` to DIR/NAME through a temp file (0600) and rename; fsync
 * both when `durable`.  CO_EIO naming the file. */
static int write_file(const char *dir, const char *name, const char *text, int durable)
{
	char path[4096], tmp[4200];
	size_t len = strlen(text);
	int fd, error = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
	if (write(fd, text, len) != (ssize_t)len || (durable && fsync(fd) < 0))
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
	if (close(fd) < 0 && error == 0)
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
	if (error == 0 && rename(tmp, path) < 0)
		error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	if (error < 0) {
		unlink(tmp);
		return error;
	}
	if (durable && (fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

/* DIR/NAME parsed, or NULL (missing, unreadable, not JSON). */
static cJSON *read_json(const char *dir, const char *name)
{
	char path[4096], buf[65536];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return cJSON_Parse(buf);
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int co_triggers_baseline_load(int64_t baseline_us[CO_OP__COUNT],
			      int64_t samples[CO_OP__COUNT], const char *state_dir)
{
	cJSON *o, *ops;

	memset(baseline_us, 0, sizeof(int64_t) * CO_OP__COUNT);
	memset(samples, 0, sizeof(int64_t) * CO_OP__COUNT);
	if ((o = read_json(state_dir, BASELINE_FILE)) == NULL)
		return 0; /* none yet (or unreadable): no latency trigger */
	ops = cJSON_GetObjectItemCaseSensitive(o, "ops");
	for (int op = 0; op < CO_OP__COUNT; op++) {
		const cJSON *x =
		    cJSON_GetObjectItemCaseSensitive(ops, co_op_name((co_op)op));

		if (!cJSON_IsObject(x) || jnum(x, "p95_us") <= 0)
			continue;
		baseline_us[op] = (int64_t)jnum(x, "p95_us");
		samples[op] = (int64_t)jnum(x, "samples");
	}
	cJSON_Delete(o);
	return 0;
}

int co_triggers_baseline_save(const int64_t baseline_us[CO_OP__COUNT],
			      const int64_t samples[CO_OP__COUNT], const char *state_dir)
{
	cJSON *o = cJSON_CreateObject(), *ops;
	char *text = NULL;
	int error;

	if (o == NULL || (ops = cJSON_AddObjectToObject(o, "ops")) == NULL)
		goto oom;
	cJSON_AddNumberToObject(o, "version", 1);
	cJSON_AddNumberToObject(o, "saved_at_ms", (double)wall_ms());
	for (int op = 0; op < CO_OP__COUNT; op++) {
		cJSON *x;

		if (baseline_us[op] <= 0)
			continue;
		if ((x = cJSON_AddObjectToObject(ops, co_op_name((co_op)op))) == NULL)
			goto oom;
		cJSON_AddNumberToObject(x, "p95_us", (double)baseline_us[op]);
		cJSON_AddNumberToObject(x, "samples", (double)samples[op]);
	}
	if ((text = cJSON_PrintUnformatted(o)) == NULL)
		goto oom;
	error = write_file(state_dir, BASELINE_FILE, text, 1);
	free(text);
	cJSON_Delete(o);
	return error;
oom:
	cJSON_Delete(o);
	return co_error_set(CO_ENOMEM, "out of memory");
}

/* What the status file says: thresholds aside, the live figures. */
static void write_status(co_triggers *t, const co_trigger_eval *ev)
{
	cJSON *o = cJSON_CreateObject(), *fired;
	char *text;

	if (o == NULL)
		return;
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	cJSON_AddNumberToObject(o, "written_at_ms", (double)wall_ms());
	cJSON_AddBoolToObject(o, "armed", ev->armed);
	if (!ev->armed)
		cJSON_AddStringToObject(o, "disarmed_why", ev->disarmed_why);
	cJSON_AddNumberToObject(o, "etcd_ops", (double)ev->etcd_ops);
	cJSON_AddNumberToObject(o, "etcd_errors", (double)ev->etcd_errors);
	cJSON_AddNumberToObject(o, "error_rate", ev->error_rate);
	if (ev->latency_op >= 0) {
		cJSON_AddStringToObject(o, "latency_op",
					co_op_name((co_op)ev->latency_op));
		cJSON_AddNumberToObject(o, "etcd_p95_us", (double)ev->etcd_p95_us);
		cJSON_AddNumberToObject(o, "baseline_us", (double)ev->baseline_us);
		cJSON_AddNumberToObject(o, "latency_ratio", ev->latency_ratio);
		cJSON_AddNumberToObject(o, "latency_pooled", ev->latency_pooled);
	}
	cJSON_AddNumberToObject(o, "etcd_down_ms", (double)ev->etcd_down_ms);
	cJSON_AddNumberToObject(o, "outbox_age_ms", (double)ev->outbox_age_ms);
	if ((fired = cJSON_AddObjectToObject(o, "fired_total")) != NULL)
		for (int k = 1; k < CO_TRIGGER__COUNT; k++)
			cJSON_AddNumberToObject(fired,
						co_trigger_name((co_trigger_kind)k),
						(double)t->fired[k]);
	if (t->last_fired[0]) {
		cJSON_AddStringToObject(o, "last_fired", t->last_fired);
		cJSON_AddNumberToObject(o, "last_fired_at_ms", (double)t->last_fired_ms);
	}
	if ((text = cJSON_PrintUnformatted(o)) != NULL)
		write_file(t->state_dir, STATUS_FILE, text, 0);
	free(text);
	cJSON_Delete(o);
}

int co_triggers_tick(co_triggers *t, co_trigger_eval *out)
{
	co_signal_snapshot *snap = malloc(sizeof(*snap));
	co_trigger_inputs in;
	co_trigger_eval ev;
	co_breaker_info bi;
	int64_t oldest = 0, now = wall_ms(), mnow = mono_ms();
	int error = 0;

	if (snap == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	memset(&in, 0, sizeof(in));
	co_flags_watcher_get(&in.flags, t->o.flags);
	co_signals_snapshot(snap, t->o.signals);
	co_store_breaker_get(&bi, t->o.etcd);
	if (co_outbox_oldest(&oldest, t->o.state) < 0)
		co_error_clear();

	pthread_mutex_lock(&t->mu);
	if (co_triggers_baseline_update(t->baseline_us, t->samples, &t->o.cfg, snap,
					&in.flags) > 0)
		t->baseline_dirty = 1;
	if (t->baseline_dirty && mnow - t->baseline_saved_ms >= BASELINE_SAVE_MS &&
	    co_triggers_baseline_save(t->baseline_us, t->samples, t->state_dir) == 0) {
		t->baseline_dirty = 0;
		t->baseline_saved_ms = mnow;
	}
	co_error_clear();
	if (bi.state == CO_BREAKER_CLOSED)
		t->down_since_ms = 0;
	else if (t->down_since_ms == 0)
		t->down_since_ms = mnow;
	memcpy(in.baseline_us, t->baseline_us, sizeof(in.baseline_us));
	in.etcd_down_ms = t->down_since_ms ? mnow - t->down_since_ms : 0;
	if (in.etcd_down_ms)
		snprintf(in.etcd_why, sizeof(in.etcd_why), "breaker %s: %.200s",
			 co_breaker_state_name(bi.state),
			 bi.why[0] ? bi.why : bi.last_error);
	in.outbox_age_ms = oldest > 0 && now > oldest ? now - oldest : 0;
	pthread_mutex_unlock(&t->mu);

	co_triggers_eval(&ev, &t->o.cfg, snap, &in);
	free(snap);
	if (ev.fired != CO_TRIGGER_NONE) {
		int was_on = 0;

		co_log(CO_LOG_WARN, "trigger", "%s; pulling the kill switch", ev.reason);
		error = co_flags_trip(t->flags_path, WHO, "auto-rollback", ev.reason,
				      ev.figures, t->o.state, NULL, &was_on);
		if (error < 0)
			co_log(CO_LOG_ERROR, "trigger", "%s", co_error_last());
		if (error == 0) {
			ev.armed = 0; /* as the next evaluation will see it */
			snprintf(ev.disarmed_why, sizeof(ev.disarmed_why),
				 "kill switch on");
		}
		/* counted before this process's routers are told, so a reader
		 * that sees the switch through them also sees the count */
		pthread_mutex_lock(&t->mu);
		if (error == 0 && !was_on) {
			t->fired[ev.fired]++;
			snprintf(t->last_fired, sizeof(t->last_fired), "%s", ev.reason);
			t->last_fired_ms = now;
		}
		pthread_mutex_unlock(&t->mu);
		if (error == 0) {
			/* every router of this process sees it now, not at the
			 * watcher's next look; others through their watchers */
			co_flags_watcher_reload(t->o.flags);
			co_error_clear();
		}
	}
	pthread_mutex_lock(&t->mu);
	t->last = ev;
	write_status(t, &ev);
	pthread_mutex_unlock(&t->mu);
	if (out)
		*out = ev;
	return error;
}

static void *thread_main(void *arg)
{
	co_triggers *t = arg;
	int interval = t->o.interval_ms > 0 ? t->o.interval_ms : 1000;

	pthread_mutex_lock(&t->mu);
	while (!t->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += interval / 1000;
		ts.tv_nsec += (long)(interval % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&t->cv, &t->mu, &ts);
		if (t->stop)
			break;
		pthread_mutex_unlock(&t->mu);
		co_triggers_tick(t, NULL);
		co_error_clear();
		pthread_mutex_lock(&t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

int co_triggers_start(co_triggers **out, const co_triggers_opts *opts)
{
	co_triggers *t;
	pthread_condattr_t ca;
	int error;

	if (!opts->signals || !opts->flags || !opts->flags_path || !opts->state ||
	    !opts->etcd)
		return co_error_set(CO_EINVAL, "triggers: signals, flags, flags_path, "
					       "state and etcd are required");
	if ((error = co_trigger_cfg_check(&opts->cfg)) < 0)
		return error;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	t->o = *opts;
	t->flags_path = strdup(opts->flags_path);
	t->state_dir = strdup(co_state_dir(opts->state));
	if (!t->flags_path || !t->state_dir) {
		co_triggers_stop(t);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	t->last.latency_op = -1;
	co_triggers_baseline_load(t->baseline_us, t->samples, t->state_dir);
	t->baseline_saved_ms = mono_ms() - BASELINE_SAVE_MS;
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!opts->no_thread) {
		if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
			co_triggers_stop(t);
			return co_error_set(CO_ENOMEM,
					    "triggers: cannot start the thread");
		}
		t->started = 1;
	}
	*out = t;
	return 0;
}

void co_triggers_stop(co_triggers *t)
{
	if (t == NULL)
		return;
	if (t->started) {
		pthread_mutex_lock(&t->mu);
		t->stop = 1;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->thread, NULL);
	}
	if (t->state_dir) {
		/* what was learnt since the last save is kept */
		if (t->baseline_dirty)
			co_triggers_baseline_save(t->baseline_us, t->samples,
						  t->state_dir);
		pthread_mutex_destroy(&t->mu);
		pthread_cond_destroy(&t->cv);
	}
	free(t->flags_path);
	free(t->state_dir);
	free(t);
}

uint64_t co_triggers_fired(co_triggers *t, co_trigger_kind k)
{
	uint64_t n;

	if (t == NULL || k <= CO_TRIGGER_NONE || k >= CO_TRIGGER__COUNT)
		return 0;
	pthread_mutex_lock(&t->mu);
	n = t->fired[k];
	pthread_mutex_unlock(&t->mu);
	return n;
}

const char *co_triggers_metrics(char *buf, size_t len, co_triggers *t)
{
	co_trigger_eval ev;
	uint64_t fired[CO_TRIGGER__COUNT];
	size_t n = 0;

	if (len)
		buf[0] = '\0';
	if (t == NULL || len == 0)
		return buf;
	pthread_mutex_lock(&t->mu);
	ev = t->last;
	memcpy(fired, t->fired, sizeof(fired));
	pthread_mutex_unlock(&t->mu);
#define APPEND(...)                                                                      \
	do {                                                                             \
		if (n < len)                                                             \
			n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__);            \
	} while (0)
	APPEND("# HELP cutover_trigger_fired_total Kill-switch trips by a live-signal "
	       "trigger in this process.\n# TYPE cutover_trigger_fired_total counter\n");
	for (int k = 1; k < CO_TRIGGER__COUNT; k++)
		APPEND("cutover_trigger_fired_total{trigger=\"%s\"} %llu\n",
		       co_trigger_name((co_trigger_kind)k), (unsigned long long)fired[k]);
	APPEND("# HELP cutover_trigger_armed 1 while the triggers may pull the kill "
	       "switch.\n# TYPE cutover_trigger_armed gauge\ncutover_trigger_armed %d\n",
	       ev.armed);
	APPEND("# HELP cutover_trigger_etcd_error_rate etcd-path failures / operations "
	       "over the window.\n# TYPE cutover_trigger_etcd_error_rate gauge\n"
	       "cutover_trigger_etcd_error_rate %g\n",
	       ev.error_rate);
	APPEND("# HELP cutover_trigger_latency_ratio Worst etcd p95 / git baseline "
	       "over the window (0: none).\n# TYPE cutover_trigger_latency_ratio "
	       "gauge\ncutover_trigger_latency_ratio %g\n",
	       ev.latency_ratio);
	APPEND("# HELP cutover_trigger_etcd_down_seconds How long etcd's breaker has "
	       "not been closed.\n# TYPE cutover_trigger_etcd_down_seconds gauge\n"
	       "cutover_trigger_etcd_down_seconds %g\n",
	       ev.etcd_down_ms / 1000.0);
	APPEND("# HELP cutover_trigger_outbox_age_seconds Age of the oldest pending "
	       "outbox entry.\n# TYPE cutover_trigger_outbox_age_seconds gauge\n"
	       "cutover_trigger_outbox_age_seconds %g\n",
	       ev.outbox_age_ms / 1000.0);
#undef APPEND
	if (n >= len)
		buf[len - 1] = '\0';
	return buf;
}

/* ---- `cutover status` ---- */

/* triggers.json older than this (or its writer gone) is not shown as live. */
#define STATUS_FRESH_MS 10000

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

cJSON *co_triggers_status_json(const co_trigger_cfg *cfg, const char *state_dir)
{
	cJSON *o = cJSON_CreateObject(), *th, *bl, *live;
	int64_t base[CO_OP__COUNT], samples[CO_OP__COUNT];
	struct timespec now;
	int64_t now_ms;

	if (o == NULL)
		return NULL;
	cJSON_AddBoolToObject(o, "enabled", cfg->enabled);
	if ((th = cJSON_AddObjectToObject(o, "thresholds")) != NULL) {
		cJSON_AddNumberToObject(th, "window_s", cfg->window_ms / 1000);
		cJSON_AddNumberToObject(th, "min_samples", cfg->min_samples);
		cJSON_AddNumberToObject(th, "error_rate", cfg->error_rate);
		cJSON_AddNumberToObject(th, "latency_ratio", cfg->latency_ratio);
		cJSON_AddNumberToObject(th, "health_grace_s",
					cfg->health_grace_ms / 1000.0);
		cJSON_AddNumberToObject(th, "outbox_age_s", cfg->outbox_age_ms / 1000.0);
	}
	co_triggers_baseline_load(base, samples, state_dir);
	if ((bl = cJSON_AddObjectToObject(o, "git_baseline_p95_us")) != NULL)
		for (int op = 0; op < CO_OP__COUNT; op++)
			if (base[op] > 0)
				cJSON_AddNumberToObject(bl, co_op_name((co_op)op),
							(double)base[op]);
	clock_gettime(CLOCK_REALTIME, &now);
	now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	live = read_json(state_dir, "triggers.json");
	if (live && now_ms - (int64_t)jnum(live, "written_at_ms") <= STATUS_FRESH_MS &&
	    jnum(live, "pid") > 0 && kill((pid_t)jnum(live, "pid"), 0) == 0) {
		cJSON_AddNumberToObject(
		    live, "age_ms",
		    (double)(now_ms - (int64_t)jnum(live, "written_at_ms")));
		cJSON_AddItemToObject(o, "live", live);
	} else {
		cJSON_Delete(live);
		cJSON_AddNullToObject(o, "live");
	}
	return o;
}

void co_triggers_status_print(void *fp, const cJSON *o)
{
	FILE *f = fp;
	const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "thresholds");
	const cJSON *bl = cJSON_GetObjectItemCaseSensitive(o, "git_baseline_p95_us");
	const cJSON *live = cJSON_GetObjectItemCaseSensitive(o, "live");
	const cJSON *x;

	fprintf(f, "triggers:  %s; window %.0f s, min %.0f etcd ops\n",
		cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enabled")) ? "on"
									     : "off",
		jnum(th, "window_s"), jnum(th, "min_samples"));
	if (!cJSON_IsObject(live)) {
		fprintf(f, "  (no running router evaluates them now: figures shown by a "
			   "running serve or demo)\n");
	} else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(live, "armed"))) {
		fprintf(f, "  not armed: %s (pid %.0f, %.1f s ago)\n",
			jstr(live, "disarmed_why"), jnum(live, "pid"),
			jnum(live, "age_ms") / 1000.0);
	} else {
		fprintf(f, "  armed (pid %.0f, %.1f s ago)\n", jnum(live, "pid"),
			jnum(live, "age_ms") / 1000.0);
	}
	fprintf(f, "  error_rate  > %.1f%%", 100.0 * jnum(th, "error_rate"));
	if (cJSON_IsObject(live))
		fprintf(f, "   now %.1f%% (%.0f of %.0f etcd ops)",
			100.0 * jnum(live, "error_rate"), jnum(live, "etcd_errors"),
			jnum(live, "etcd_ops"));
	fprintf(f, "\n  latency     > %gx git p95", jnum(th, "latency_ratio"));
	if (cJSON_GetArraySize(bl) == 0)
		fprintf(f, "   no git baseline yet: latency trigger off until one is "
			   "recorded in git/shadow");
	else if (cJSON_IsObject(live) && *jstr(live, "latency_op"))
		fprintf(f, "   now %.2fx (%s etcd p95 %.1f ms, baseline %.1f ms%s)",
			jnum(live, "latency_ratio"),
			jnum(live, "latency_pooled") > 0 ? "all ops"
							 : jstr(live, "latency_op"),
			jnum(live, "etcd_p95_us") / 1000.0,
			jnum(live, "baseline_us") / 1000.0,
			jnum(live, "latency_pooled") > 0 ? ", the largest" : "");
	else if (cJSON_IsObject(live))
		fprintf(f, "   now: no operation with a baseline has enough etcd ops");
	fprintf(f, "\n  health      etcd unhealthy > %.1f s", jnum(th, "health_grace_s"));
	if (cJSON_IsObject(live))
		fprintf(f, "   now %.1f s", jnum(live, "etcd_down_ms") / 1000.0);
	fprintf(f, "\n  outbox_age  > %.1f s", jnum(th, "outbox_age_s"));
	if (cJSON_IsObject(live))
		fprintf(f, "   now %.1f s", jnum(live, "outbox_age_ms") / 1000.0);
	fprintf(f, "\n");
	cJSON_ArrayForEach(x, bl)
	{
		fprintf(f, "  git baseline %s p95 %.1f ms\n", x->string,
			x->valuedouble / 1000.0);
	}
	if (cJSON_IsObject(live) && *jstr(live, "last_fired"))
		fprintf(f, "  last fired: %s\n", jstr(live, "last_fired"));
}
