/*
 * rollout.c - a guarded rollout's plan, state and decisions (rollout.h).
 */
#include "rollout.h"

#include "core/error.h"
#include "core/file.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define STATE_FILE "rollout.json"
#define STATE_MAX (64 * 1024)

static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

static int day_of(const char *p, size_t n)
{
	int d;

	if (n != 3)
		return -1;
	for (d = 0; d < 7; d++)
		if (strncasecmp(p, day_names[d], 3) == 0)
			return d;
	return -1;
}

/* "HH:MM" at p: minutes, or -1. */
static int hhmm(const char *p, const char **end)
{
	int h, m;

	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    p[2] != ':' || !isdigit((unsigned char)p[3]) || !isdigit((unsigned char)p[4]))
		return -1;
	h = (p[0] - '0') * 10 + (p[1] - '0');
	m = (p[3] - '0') * 10 + (p[4] - '0');
	if (h > 24 || m > 59 || (h == 24 && m != 0))
		return -1;
	*end = p + 5;
	return h * 60 + m;
}

static int days_parse(unsigned *out, const char *p, size_t n)
{
	unsigned days = 0;
	const char *q = p, *e = p + n;

	while (q < e) {
		const char *c = memchr(q, ',', (size_t)(e - q)), *dash;
		size_t len = (size_t)((c ? c : e) - q);
		int a, b;

		dash = memchr(q, '-', len);
		if (dash) {
			a = day_of(q, (size_t)(dash - q));
			b = day_of(dash + 1, len - (size_t)(dash - q) - 1);
		} else {
			a = b = day_of(q, len);
		}
		if (a < 0 || b < 0)
			return -1;
		for (;;) {
			days |= 1u << a;
			if (a == b)
				break;
			a = (a + 1) % 7;
		}
		q = c ? c + 1 : e;
	}
	*out = days;
	return days ? 0 : -1;
}

int co_window_parse(co_window *out, const char *text)
{
	const char *p, *sp, *end;
	int a, b;

	memset(out, 0, sizeof(*out));
	if (text == NULL || *text == '\0')
		return 0;
	if (strlen(text) >= sizeof(out->text))
		return co_error_set(CO_EINVAL, "window \"%.60s...\": too long", text);
	snprintf(out->text, sizeof(out->text), "%s", text);
	p = text;
	out->days = 0x7f;
	/* days, if the first word is not a time */
	if (!isdigit((unsigned char)*p)) {
		sp = strchr(p, ' ');
		if (sp == NULL || days_parse(&out->days, p, (size_t)(sp - p)) < 0)
			goto bad;
		p = sp + 1;
	}
	if ((a = hhmm(p, &end)) < 0 || *end != '-' || (b = hhmm(end + 1, &end)) < 0)
		goto bad;
	if (*end != '\0' && strcmp(end, " UTC") != 0)
		goto bad;
	if (a == b)
		goto bad;
	out->start_min = a;
	out->end_min = b;
	out->set = 1;
	return 0;
bad:
	return co_error_set(CO_EINVAL,
			    "window \"%s\": expected \"[DAYS ]HH:MM-HH:MM[ UTC]\", e.g. "
			    "\"Mon-Fri 09:00-17:00 UTC\" (days Sun..Sat, a range or a "
			    "list; times UTC, start and end different)",
			    text);
}

int co_window_contains(const co_window *w, int64_t unix_ms)
{
	time_t t = (time_t)(unix_ms / 1000);
	struct tm tm;
	int min, day;

	if (!w->set)
		return 1;
	gmtime_r(&t, &tm);
	min = tm.tm_hour * 60 + tm.tm_min;
	day = tm.tm_wday;
	if (w->start_min < w->end_min)
		return (w->days >> day & 1) && min >= w->start_min && min < w->end_min;
	/* past midnight: the evening belongs to its day, the morning to the day
	 * before */
	if (min >= w->start_min)
		return w->days >> day & 1;
	return min < w->end_min && (w->days >> ((day + 6) % 7) & 1);
}

int co_rollout_active(co_rollout_phase p)
{
	return p == CO_RO_STARTING || p == CO_RO_WAITING || p == CO_RO_SOAKING ||
	       p == CO_RO_PAUSED;
}

static const char *const phase_names[] = {
    "starting", "waiting_window", "soaking", "paused", "done", "aborted", "failed"};

const char *co_rollout_phase_name(co_rollout_phase p)
{
	return (unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p]
									  : "?";
}

static int rank(co_stage s)
{
	return (int)s; /* git < shadow < 10 < 50 < 100 < etcd */
}

int co_rollout_parse_steps(co_rollout *r, const char *text, co_stage from)
{
	const char *def = "shadow,10,50,100,etcd", *p;
	char word[16];
	co_stage prev = from, s;

	r->n_steps = 0;
	p = text && *text ? text : def;
	while (*p) {
		size_t n = strcspn(p, ",");

		if (n == 0 || n >= sizeof(word))
			return co_error_set(CO_EINVAL,
					    "--steps \"%s\": empty or overlong "
					    "step",
					    text);
		memcpy(word, p, n);
		word[n] = '\0';
		if (co_stage_parse(&s, word) < 0)
			return co_error_set(CO_EINVAL, "--steps: %s", co_error_last());
		if (s == CO_STAGE_GIT || rank(s) <= rank(prev))
			/* the default list starts at shadow: skip what is behind */
			if (!(text == NULL || *text == '\0'))
				return co_error_set(
				    CO_EINVAL,
				    "--steps: \"%s\" does not move forward from %s (a "
				    "rollout goes forward: git < shadow < 10 < 50 < 100 "
				    "< etcd)",
				    word, co_stage_name(prev));
		if (rank(s) > rank(prev)) {
			if (r->n_steps == CO_ROLLOUT_MAX_STEPS)
				return co_error_set(CO_EINVAL,
						    "--steps: at most %d steps",
						    CO_ROLLOUT_MAX_STEPS);
			r->steps[r->n_steps++] = s;
			prev = s;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (r->n_steps == 0)
		return co_error_set(
		    CO_EINVAL, "--steps: nothing to do: already at %s, the last step",
		    co_stage_name(from));
	return 0;
}

co_stage co_rollout_safe_stage(const co_rollout *r)
{
	return r->step == 0 ? r->initial : r->steps[r->step - 1];
}

/* --- the state file --- */

static void path_of(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

int co_rollout_save(const co_rollout *r, const char *state_dir)
{
	cJSON *o = cJSON_CreateObject(), *steps, *a;
	char path[4200], *text;
	size_t i;
	int error;

	if (o == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	cJSON_AddNumberToObject(o, "id", (double)r->id);
	steps = cJSON_AddArrayToObject(o, "steps");
	for (i = 0; i < r->n_steps; i++)
		cJSON_AddItemToArray(steps,
				     cJSON_CreateString(co_stage_name(r->steps[i])));
	cJSON_AddStringToObject(o, "initial", co_stage_name(r->initial));
	cJSON_AddNumberToObject(o, "soak_ms", (double)r->soak_ms);
	cJSON_AddStringToObject(o, "window", r->window.text);
	cJSON_AddStringToObject(o, "on_fail",
				r->on_fail == CO_ON_FAIL_PAUSE ? "pause" : "rollback");
	cJSON_AddStringToObject(o, "who", r->who);
	cJSON_AddStringToObject(o, "reason", r->reason);
	cJSON_AddNumberToObject(o, "step", (double)r->step);
	cJSON_AddStringToObject(o, "phase", co_rollout_phase_name(r->phase));
	cJSON_AddNumberToObject(o, "soak_started_ms", (double)r->soak_started_ms);
	cJSON_AddStringToObject(o, "driver", r->driver);
	cJSON_AddNumberToObject(o, "driver_seen_ms", (double)r->driver_seen_ms);
	cJSON_AddNumberToObject(o, "updated_ms", (double)r->updated_ms);
	a = cJSON_AddObjectToObject(o, "analysis");
	cJSON_AddNumberToObject(a, "at_ms", (double)r->analysis_ms);
	cJSON_AddBoolToObject(a, "ok", r->analysis_ok);
	cJSON_AddStringToObject(a, "why", r->analysis);
	text = cJSON_Print(o);
	cJSON_Delete(o);
	if (text == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	path_of(path, sizeof(path), state_dir, STATE_FILE);
	error = co_file_write_atomic(path, text, strlen(text));
	free(text);
	return error;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

int co_rollout_load(co_rollout *out, const char *state_dir)
{
	char path[4200], *text = NULL;
	const cJSON *steps, *it, *a;
	cJSON *o = NULL;
	const char *s;
	int error, p;

	memset(out, 0, sizeof(*out));
	path_of(path, sizeof(path), state_dir, STATE_FILE);
	if ((error = co_file_read(&text, NULL, path, STATE_MAX)) < 0)
		return error;
	o = cJSON_Parse(text);
	free(text);
	steps = cJSON_GetObjectItemCaseSensitive(o, "steps");
	if (o == NULL || !cJSON_IsArray(steps) || jnum(o, "id") < 0)
		goto bad;
	cJSON_ArrayForEach(it, steps)
	{
		if (!cJSON_IsString(it) || out->n_steps == CO_ROLLOUT_MAX_STEPS ||
		    co_stage_parse(&out->steps[out->n_steps++], it->valuestring) < 0)
			goto bad;
	}
	out->id = jnum(o, "id");
	if ((s = jstr(o, "initial")) == NULL || co_stage_parse(&out->initial, s) < 0)
		goto bad;
	out->soak_ms = jnum(o, "soak_ms");
	if (co_window_parse(&out->window, jstr(o, "window")) < 0)
		goto bad;
	out->on_fail = (s = jstr(o, "on_fail")) && strcmp(s, "pause") == 0
			   ? CO_ON_FAIL_PAUSE
			   : CO_ON_FAIL_ROLLBACK;
	snprintf(out->who, sizeof(out->who), "%s", jstr(o, "who") ? jstr(o, "who") : "");
	snprintf(out->reason, sizeof(out->reason), "%s",
		 jstr(o, "reason") ? jstr(o, "reason") : "");
	if (jnum(o, "step") < 0 || (size_t)jnum(o, "step") >= out->n_steps)
		goto bad;
	out->step = (size_t)jnum(o, "step");
	s = jstr(o, "phase");
	for (p = 0; s && p < (int)(sizeof(phase_names) / sizeof(phase_names[0])); p++)
		if (strcmp(s, phase_names[p]) == 0)
			break;
	if (s == NULL || p == (int)(sizeof(phase_names) / sizeof(phase_names[0])))
		goto bad;
	out->phase = (co_rollout_phase)p;
	out->soak_started_ms = jnum(o, "soak_started_ms");
	snprintf(out->driver, sizeof(out->driver), "%s",
		 jstr(o, "driver") ? jstr(o, "driver") : "");
	out->driver_seen_ms = jnum(o, "driver_seen_ms");
	out->updated_ms = jnum(o, "updated_ms");
	a = cJSON_GetObjectItemCaseSensitive(o, "analysis");
	out->analysis_ms = jnum(a, "at_ms");
	out->analysis_ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "ok"));
	snprintf(out->analysis, sizeof(out->analysis), "%s",
		 jstr(a, "why") ? jstr(a, "why") : "");
	cJSON_Delete(o);
	co_error_clear();
	return 0;
bad:
	cJSON_Delete(o);
	return co_error_set(CO_EINVAL,
			    "%s: not a rollout state file cutover can read (move it "
			    "away to start a new rollout)",
			    path);
}

int co_rollout_lock(const char *state_dir)
{
	char path[4200];
	int fd;

	path_of(path, sizeof(path), state_dir, STATE_FILE ".lock");
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = errno;

			close(fd);
			return co_error_set(CO_EIO, "%s: lock: %s", path, strerror(e));
		}
	}
	return fd;
}

void co_rollout_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* --- status --- */

cJSON *co_rollout_status_json(const co_rollout *r, int64_t now_ms)
{
	cJSON *o = cJSON_CreateObject(), *s;
	int64_t left;
	size_t i;

	if (o == NULL || r == NULL) {
		if (o && !cJSON_AddStringToObject(o, "phase", "none")) {
			cJSON_Delete(o);
			o = NULL;
		}
		return o;
	}
	left = r->soak_ms - (now_ms - r->soak_started_ms);
	if (r->phase != CO_RO_SOAKING || left < 0)
		left = 0;
	cJSON_AddNumberToObject(o, "id", (double)r->id);
	if ((s = cJSON_AddArrayToObject(o, "steps")) != NULL)
		for (i = 0; i < r->n_steps; i++)
			cJSON_AddItemToArray(s, cJSON_CreateString(co_stage_name(r->steps[i])));
	cJSON_AddNumberToObject(o, "step", (double)r->step + 1);
	cJSON_AddStringToObject(o, "stage", co_stage_name(r->steps[r->step]));
	cJSON_AddStringToObject(o, "phase", co_rollout_phase_name(r->phase));
	cJSON_AddNumberToObject(o, "soak_ms", (double)r->soak_ms);
	cJSON_AddNumberToObject(o, "soak_left_ms", (double)left);
	cJSON_AddStringToObject(o, "window", r->window.text);
	cJSON_AddStringToObject(o, "on_fail",
				r->on_fail == CO_ON_FAIL_PAUSE ? "pause" : "rollback");
	cJSON_AddStringToObject(o, "driver", r->driver);
	cJSON_AddBoolToObject(o, "analysis_ok", r->analysis_ok);
	/* The last member: present only if every one before it was added. */
	if (cJSON_AddStringToObject(o, "analysis", r->analysis) == NULL || s == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* --- decisions --- */

co_rollout_action co_rollout_decide(co_rollout *r, const co_rollout_view *v)
{
	switch (r->phase) {
	case CO_RO_STARTING:
	case CO_RO_WAITING:
		if (v->kill_switch && r->step > 0) {
			snprintf(r->analysis, sizeof(r->analysis),
				 "the kill switch is on (%s): not advancing to %s",
				 v->kill_reason, co_stage_name(r->steps[r->step]));
			return CO_RA_FAIL;
		}
		if (!co_window_contains(&r->window, v->now_ms)) {
			r->phase = CO_RO_WAITING;
			return CO_RA_NOTHING;
		}
		return CO_RA_APPLY;
	case CO_RO_SOAKING:
		if (v->kill_switch) {
			snprintf(r->analysis, sizeof(r->analysis),
				 "the kill switch was pulled during the soak at %s: %s",
				 co_stage_name(r->steps[r->step]), v->kill_reason);
			return CO_RA_FAIL;
		}
		if (v->soak_restart) {
			/* Nobody watched while the driver was away: the soak
			 * starts again rather than being counted as done. */
			r->soak_started_ms = v->now_ms;
			return CO_RA_NOTHING;
		}
		if (v->now_ms - r->soak_started_ms < r->soak_ms)
			return CO_RA_NOTHING;
		return CO_RA_ANALYSE;
	default:
		return CO_RA_NOTHING;
	}
}

void co_rollout_analysed(co_rollout *r, int ok, const char *why, int64_t now_ms)
{
	r->analysis_ms = now_ms;
	r->analysis_ok = ok;
	if (why != r->analysis)
		snprintf(r->analysis, sizeof(r->analysis), "%s", why);
	if (ok) {
		if (r->step + 1 == r->n_steps) {
			r->phase = CO_RO_DONE;
		} else {
			r->step++;
			r->phase = CO_RO_STARTING;
			r->soak_started_ms = 0;
		}
		return;
	}
	r->phase = r->on_fail == CO_ON_FAIL_PAUSE ? CO_RO_PAUSED : CO_RO_FAILED;
}

static void fmt_dur(char *buf, size_t len, int64_t ms)
{
	if (ms % (3600 * 1000) == 0 && ms > 0)
		snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms > 0)
		snprintf(buf, len, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

void co_rollout_plan(char *buf, size_t len, const co_rollout *r)
{
	char soak[32];
	size_t i, n;

	fmt_dur(soak, sizeof(soak), r->soak_ms);
	n = (size_t)snprintf(buf, len, "from %s:", co_stage_name(r->initial));
	for (i = 0; i < r->n_steps && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, " %s%s", i ? "-> " : "",
				      co_stage_name(r->steps[i]));
	if (n < len)
		n += (size_t)snprintf(
		    buf + n, len - n,
		    "\neach step: the go/no-go gate with its pre-switch checks (a "
		    "reconciliation is run first if the gate needs one), then a soak of "
		    "%s, "
		    "then an analysis: a reconciliation passed within the soak (run if "
		    "none), the kill switch never pulled, shadow mismatches and the "
		    "outbox "
		    "within the gate's bounds\nsteps are taken %s%s\na failed analysis "
		    "%s",
		    soak, r->window.set ? "only inside the window " : "at any time",
		    r->window.set ? r->window.text : "",
		    r->on_fail == CO_ON_FAIL_PAUSE
			? "pauses the rollout at the failing stage (--on-fail pause)"
			: "rolls back to the last safe stage and ends the rollout");
}
