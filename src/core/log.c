/*
 * log.c - stderr lines as text or JSON (log.h).
 */
#include "log.h"

#include "error.h"

#include <cjson/cJSON.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int format = CO_LOG_TEXT;

int co_log_parse_format(co_log_format *out, const char *name)
{
	if (name && strcmp(name, "text") == 0)
		*out = CO_LOG_TEXT;
	else if (name && strcmp(name, "json") == 0)
		*out = CO_LOG_JSON;
	else
		return co_error_set(CO_EINVAL, "--log-format: \"%s\" is not text or json",
				    name ? name : "");
	return 0;
}

void co_log_set_format(co_log_format f)
{
	atomic_store(&format, f);
}

co_log_format co_log_get_format(void)
{
	return (co_log_format)atomic_load(&format);
}

static const char *level_name(co_log_level level)
{
	return level == CO_LOG_ERROR ? "error" : level == CO_LOG_WARN ? "warn" : "info";
}

static void write_line(const char *s)
{
	flockfile(stderr);
	fputs(s, stderr);
	fputc('\n', stderr);
	fflush(stderr);
	funlockfile(stderr);
}

static void emit(co_log_level level, const char *event, const char *msg, int made)
{
	char ts[40], day[24], *s;
	struct timeval tv;
	struct tm tm;
	cJSON *o;

	if (co_log_get_format() == CO_LOG_TEXT) {
		if (made) {
			write_line(msg);
			return;
		}
		if (asprintf(&s, "cutover: %s%s",
			     level == CO_LOG_ERROR  ? ""
			     : level == CO_LOG_WARN ? "warning: "
						    : "",
			     msg) >= 0) {
			write_line(s);
			free(s);
		}
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts, sizeof(ts), "%s.%03dZ", day, (int)(tv.tv_usec / 1000));
	if ((o = cJSON_CreateObject()) == NULL)
		return;
	cJSON_AddStringToObject(o, "ts", ts);
	cJSON_AddStringToObject(o, "level", level_name(level));
	cJSON_AddStringToObject(o, "event", event ? event : "cutover");
	cJSON_AddStringToObject(o, "msg", msg);
	cJSON_AddNumberToObject(o, "pid", (double)getpid());
	if ((s = cJSON_PrintUnformatted(o)) != NULL) {
		write_line(s);
		free(s);
	}
	cJSON_Delete(o);
}

void co_log(co_log_level level, const char *event, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	emit(level, event, buf, 0);
}

void co_log_line(co_log_level level, const char *event, const char *line)
{
	/* As JSON, a made line loses the "cutover: " it starts with. */
	if (co_log_get_format() == CO_LOG_JSON && strncmp(line, "cutover: ", 9) == 0)
		line += 9;
	emit(level, event, line, 1);
}
