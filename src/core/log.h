/*
 * log.h - what a cutover process says on stderr: plain lines for a person
 * ("cutover: warning: ..."), or one JSON object per line for a log
 * pipeline (`--log-format json`, $CUTOVER_LOG_FORMAT):
 *
 *   {"ts":"2026-12-05T18:00:00.250Z","level":"warn","event":"serve",
 *    "msg":"...","pid":1234}
 *
 * The format is process-wide, set once at start (co_log_set_format) before
 * threads log; every line is written with one call under stdio's stream
 * lock, so lines of several threads never interleave.  Nothing here fails:
 * a line that cannot be written is dropped.
 */
#ifndef CO_CORE_LOG_H
#define CO_CORE_LOG_H

typedef enum co_log_format {
	CO_LOG_TEXT = 0, /* the default */
	CO_LOG_JSON,
} co_log_format;

typedef enum co_log_level {
	CO_LOG_INFO = 0,
	CO_LOG_WARN,
	CO_LOG_ERROR,
} co_log_level;

/* "text" or "json" into *out; CO_EINVAL naming the value otherwise. */
int co_log_parse_format(co_log_format *out, const char *name);

void co_log_set_format(co_log_format f);
co_log_format co_log_get_format(void);

/*
 * One line: as text "cutover: " [+ "warning: " for a warning] + message; as
 * JSON the object above, `event` naming what speaks ("serve", "rollout",
 * "reconcile", "trigger", "webhook", "cli", ...).
 */
void co_log(co_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line already made for a person (the serve log's request lines): as
 * text written as it is; as JSON its text is the "msg". */
void co_log_line(co_log_level level, const char *event, const char *line);

#endif
