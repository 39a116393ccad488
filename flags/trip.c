/*
 * trip.c - the one automatic kill-switch trip (see trip.h): lock, load
 * (keeping a copy of a broken file), pull, save over whatever is there,
 * audit.
 */
#include "trip.h"

#include "core/audit.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Prefix the current message with `what`: "what: message". */
static int prefixed(int code, const char *what)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s", co_error_last());
	return co_error_set(code, "%s: %s", what, msg);
}

/* Copy a malformed flags file to FLAGS.malformed (replacing an older one). */
static int keep_malformed(char *copy, size_t len, const char *path)
{
	char buf[8192];
	FILE *in, *out = NULL;
	size_t n;
	int error = 0, fd = -1;

	snprintf(copy, len, "%s.malformed", path);
	if ((in = fopen(path, "rb")) == NULL)
		return co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	/* 0600, as the flags file itself. */
	if ((fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    fchmod(fd, 0600) < 0 || (out = fdopen(fd, "wb")) == NULL) {
		error = co_error_set(CO_EIO, "%s: %s", copy, strerror(errno));
		if (fd >= 0)
			close(fd);
		fclose(in);
		return error;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n) {
			error = co_error_set(CO_EIO, "%s: %s", copy, strerror(errno));
			break;
		}
	if (error == 0 && ferror(in))
		error = co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	fclose(in);
	if (fclose(out) != 0 && error == 0)
		error = co_error_set(CO_EIO, "%s: %s", copy, strerror(errno));
	return error;
}

int co_flags_trip(const char *path, const char *who, const char *action,
		  const char *reason, const char *figures, co_state *st,
		  const co_flags *fallback, int *was_on)
{
	return co_flags_trip_forced(path, who, action, reason, figures, st, fallback,
				    was_on, 0);
}

int co_flags_trip_forced(const char *path, const char *who, const char *action,
			 const char *reason, const char *figures, co_state *st,
			 const co_flags *fallback, int *was_on, int force)
{
	const char *nt = "kill switch not tripped";
	co_flags before, after;
	char detail[CO_FLAGS_REASON_MAX + 1024];
	size_t n;
	int error, lock;

	/* No other writer between the load and the save: an operator's
	 * `stage` at the same moment must not put the switch back (and does
	 * not: it saves only over what it read, and the switch is saved over
	 * its change, not instead of it).  A writer stuck holding the lock
	 * does not hold up the trip. */
	if ((error = co_flags_lock_for_kill(&lock, path)) < 0)
		return prefixed(error, nt);
	if (lock < 0) {
		fprintf(stderr,
			"cutover: warning: %s; pulling the kill switch without the lock "
			"(that writer cannot save over it)\n",
			co_error_last());
		co_error_clear();
	}
	error = co_flags_load(&before, path);
	if (error == CO_EINVAL || error == CO_ETOOBIG) {
		/* A file broken by hand must not stop the switch: keep a copy,
		 * then start from the last good flags, or the defaults (every
		 * operation git; with the switch on, routers act as in shadow
		 * until someone fixes it). */
		char why[1024], copy[4096];

		snprintf(why, sizeof(why), "%s", co_error_last());
		if ((error = keep_malformed(copy, sizeof(copy), path)) < 0) {
			co_flags_unlock(lock);
			return prefixed(error, nt);
		}
		fprintf(stderr,
			"cutover: warning: %s; pulling the kill switch over it (the "
			"file as it was is in %s)\n",
			why, copy);
		if (fallback)
			before = *fallback;
		else
			co_flags_init(&before);
	} else if (error < 0) {
		co_flags_unlock(lock);
		return prefixed(error, nt);
	}
	if (before.completed.on && !before.kill_switch && !force) {
		co_flags_unlock(lock);
		return co_error_set(
		    CO_ECONFLICT,
		    "%s: the cutover was completed at %s by %s: git is no longer written "
		    "and is stale, so it cannot take the decisions back (an operator "
		    "may force it: `cutover rollback --force`, after `cutover migrate "
		    "--direction etcd-to-git`)",
		    nt, before.completed.at,
		    before.completed.by[0] ? before.completed.by : "?");
	}
	after = before;
	if (was_on)
		*was_on = before.kill_switch;
	if (!before.kill_switch) {
		co_flags_set_kill(&after, 1, reason);
		co_flags_stamp(&after, who, NULL);
		error = co_flags_save_kill(&after, &before, path);
		co_flags_unlock(lock);
		if (error < 0)
			return prefixed(error, nt);
		co_flags_diff(detail, sizeof(detail), &before, &after);
	} else {
		co_flags_unlock(lock);
		snprintf(detail, sizeof(detail), "kill_switch already true (%s)",
			 before.kill_reason);
	}
	n = strlen(detail);
	if (before.completed.on && !before.kill_switch && n + 40 < sizeof(detail))
		n += (size_t)snprintf(detail + n, sizeof(detail) - n,
				      "; forced past the completion");
	if (figures && *figures && n + 3 < sizeof(detail))
		snprintf(detail + n, sizeof(detail) - n, "; %s", figures);
	if (st && (error = co_audit_change_add(st, who, action, detail, reason)) < 0)
		return prefixed(error, "kill switch tripped, audit not written");
	return 0;
}
