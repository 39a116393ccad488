/*
 * rollout.h - a guarded rollout's plan, state and decisions (issue 14
 * point 2): the stages it walks, the soak at each, the allowed window, what
 * happens when an analysis fails, and where it stands.  Pure logic plus
 * the state file; the side effects (changing the stage, reconciling) are
 * the driver's (src/cli/rollout_driver.c), which calls co_rollout_decide()
 * once a tick under the state file's lock and acts on the answer.
 *
 * The state lives in <state dir>/rollout.json (0600, written whole by
 * rename), one rollout at a time: a finished one stays there, for
 * `cutover rollout status`, until the next starts.
 *
 * A window is "[DAYS ]HH:MM-HH:MM[ UTC]": DAYS a day ("Mon"), a range
 * ("Mon-Fri") or a list ("Mon,Wed,Fri"); times in UTC, the end exclusive;
 * an end before the start wraps past midnight ("22:00-06:00").  No window
 * means always.
 *
 * Thread-safe: no globals.  Errors: CO_EINVAL naming the bad value.
 */
#ifndef CO_FLAGS_ROLLOUT_H
#define CO_FLAGS_ROLLOUT_H

#include "flags/stage.h"

#include <stddef.h>
#include <stdint.h>

#define CO_ROLLOUT_MAX_STEPS 8
#define CO_ROLLOUT_DEFAULT_SOAK_MS (10 * 60 * 1000)

typedef struct co_window {
	int set;       /* 0: always open */
	unsigned days; /* bit d for weekday d (0 Sunday .. 6 Saturday) */
	int start_min; /* minutes after 00:00 UTC */
	int end_min;   /* exclusive; < start_min wraps past midnight */
	char text[64]; /* as given */
} co_window;

/* Parse a window; "" or NULL is always open.  CO_EINVAL naming it. */
int co_window_parse(co_window *out, const char *text);

/* 1 if the Unix ms instant is inside the window. */
int co_window_contains(const co_window *w, int64_t unix_ms);

/* What a failed analysis does. */
typedef enum co_on_fail {
	CO_ON_FAIL_ROLLBACK = 0, /* back to the last safe stage, rollout ends */
	CO_ON_FAIL_PAUSE	 /* stay at this stage, rollout paused */
} co_on_fail;

typedef enum co_rollout_phase {
	CO_RO_STARTING = 0, /* the current step is not applied yet */
	CO_RO_WAITING,	    /* outside the window: not applied yet */
	CO_RO_SOAKING,	    /* applied; soaking */
	CO_RO_PAUSED,	    /* by the operator, or by a failed analysis */
	CO_RO_DONE,	    /* the last step passed its analysis */
	CO_RO_ABORTED,	    /* by the operator: back at the safe stage */
	CO_RO_FAILED	    /* an analysis failed: back at the safe stage */
} co_rollout_phase;

/* 1 for phases in which the rollout is still going (or paused). */
int co_rollout_active(co_rollout_phase p);
const char *co_rollout_phase_name(co_rollout_phase p);

typedef struct co_rollout {
	int64_t id; /* its start time, Unix ms: names it */
	co_stage steps[CO_ROLLOUT_MAX_STEPS];
	size_t n_steps;
	co_stage initial; /* the stage before the rollout began */
	int64_t soak_ms;
	co_window window;
	co_on_fail on_fail;
	char who[64]; /* who started it */
	char reason[256];

	size_t step; /* index into steps: the one applied or next */
	co_rollout_phase phase;
	int64_t soak_started_ms; /* 0 until the step is applied */
	char driver[96];	 /* "host:pid" of the process driving it */
	int64_t driver_seen_ms;	 /* its last tick */
	int64_t updated_ms;
	/* the last analysis (or why it stopped) */
	int64_t analysis_ms;
	int analysis_ok;
	char analysis[1024];
} co_rollout;

/* "shadow,10,50,100,etcd" (the default when NULL or "") into r->steps.
 * Each must move forward of the one before, and of `from`.  CO_EINVAL. */
int co_rollout_parse_steps(co_rollout *r, const char *text, co_stage from);

/* The last stage known safe: the step before the current one, or the
 * stage before the rollout. */
co_stage co_rollout_safe_stage(const co_rollout *r);

/* Load <state dir>/rollout.json: CO_ENOTFOUND when there is none;
 * CO_EINVAL naming the file when it is not one of ours. */
int co_rollout_load(co_rollout *out, const char *state_dir);
int co_rollout_save(const co_rollout *r, const char *state_dir);

/* An exclusive lock on the rollout (flock on rollout.json.lock): the fd,
 * or CO_EIO.  co_rollout_unlock(fd) releases; -1 is fine. */
int co_rollout_lock(const char *state_dir);
void co_rollout_unlock(int fd);

/* --- what to do at a tick --- */

/* What the driver saw, read fresh at every tick. */
typedef struct co_rollout_view {
	int64_t now_ms;
	int kill_switch;
	char kill_reason[CO_FLAGS_REASON_MAX + 1];
	int soak_restart; /* 1: this driver just took over: restart the soak */
} co_rollout_view;

typedef enum co_rollout_action {
	CO_RA_NOTHING = 0, /* wait */
	CO_RA_APPLY,	   /* apply steps[step] (the gate decides), then soak */
	CO_RA_ANALYSE,	   /* the soak is over: analyse, then advance or fail */
	CO_RA_FAIL	   /* stop: the kill switch was pulled (r->analysis says) */
} co_rollout_action;

/*
 * The next action for `r` at this tick; may update r (phase waiting, the
 * soak restarted, the failure text) which the driver then saves.
 */
co_rollout_action co_rollout_decide(co_rollout *r, const co_rollout_view *v);

/*
 * The analysis came back: advance (next step, or done) or fail (pause or
 * roll back, per on_fail; the driver applies the safe stage when the
 * phase becomes CO_RO_FAILED).  `why` says what was found.
 */
void co_rollout_analysed(co_rollout *r, int ok, const char *why, int64_t now_ms);

/*
 * What `cutover --json rollout status` prints and GET /v1/admin/rollout
 * answers: {"id","steps":[...],"step" (1-based),"stage","phase","soak_ms",
 * "soak_left_ms","window","on_fail","driver","analysis_ok","analysis"} at
 * `now_ms`; r NULL: {"phase":"none"}.  The caller owns the result
 * (cJSON_Delete); NULL when out of memory.
 */
struct cJSON;
struct cJSON *co_rollout_status_json(const co_rollout *r, int64_t now_ms);

/* A one-paragraph plan: the steps, soak, window and checks. */
void co_rollout_plan(char *buf, size_t len, const co_rollout *r);

#endif
