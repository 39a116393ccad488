/*
 * server_flags_admin.c - the admin calls that change the flags:
 * POST /v1/admin/rollback, /resume and /stage (server_admin.c routes them
 * here), and the flags as JSON that they and GET /v1/admin/flags answer.
 *
 * Admin changes (rollback, resume, stage) are read-modify-write of the
 * flags file, serialised by one mutex within this process and saved
 * atomically, audited as "serve:admin", and reloaded into the watcher at
 * once so that the next request (and /metrics) sees them.
 */
#include "server_flags_admin.h"
#include "server_fleet.h"

#include "core/audit.h"
#include "core/error.h"
#include "core/log.h"
#include "flags/gate.h"
#include "flags/stage.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *co_server__flags_json(const co_flags *f)
{
	cJSON *o = cJSON_CreateObject(), *d, *ops;
	int op;

	cJSON_AddStringToObject(o, "stage", co_stage_name(co_stage_of(f)));
	cJSON_AddBoolToObject(o, "kill_switch", f->kill_switch);
	cJSON_AddStringToObject(o, "kill_reason", f->kill_reason);
	cJSON_AddStringToObject(o, "updated_at", f->updated_at);
	cJSON_AddStringToObject(o, "updated_by", f->updated_by);
	d = cJSON_AddObjectToObject(o, "default");
	cJSON_AddStringToObject(d, "mode", co_mode_name(f->def.mode));
	cJSON_AddNumberToObject(d, "etcd_percent", f->def.etcd_percent);
	ops = cJSON_AddObjectToObject(o, "operations");
	for (op = 0; op < CO_OP__COUNT; op++) {
		co_op_flags of = co_flags_get(f, (co_op)op);
		cJSON *x = cJSON_AddObjectToObject(ops, co_op_name((co_op)op));

		cJSON_AddStringToObject(x, "mode", co_mode_name(of.mode));
		cJSON_AddNumberToObject(x, "etcd_percent", of.etcd_percent);
	}
	return o;
}

/*
 * The flags as the file says, for a change other than the kill switch: a
 * file that does not load is refused with a message that says what to do
 * (a change is saved only over what was read, co_flags_save_if).
 */
static int admin_load(co_flags *out, co_server *s)
{
	char why[768];
	int error;

	if ((error = co_flags_load(out, s->flags_path)) == 0)
		return 0;
	snprintf(why, sizeof(why), "%s", co_error_last());
	return co_error_set(error,
			    "the flags file does not load (%s): fix it first; the kill "
			    "switch (rollback) works over it",
			    why);
}

/* The flags as the file says, else (a bad file) the last good ones. */
static void admin_current(co_flags *out, co_server *s)
{
	if (co_flags_load(out, s->flags_path) < 0) {
		co_flags_watcher_get(out, s->flags);
		co_error_clear();
	}
}

/*
 * Save `to`, audit the change and make it current in this process.  The
 * flags are saved before the audit row: an unrecorded change is better
 * than a recorded change that did not happen, and the message says so.
 */
static int admin_commit(co_server *s, const char *action, const co_flags *from,
			co_flags *to, const char *note, const char *why, int kill)
{
	char detail[2048];
	int error;

	int in_fleet = 0;

	co_flags_stamp(to, "serve:admin", NULL);
	/* Fleet mode: etcd's document by txn on its epoch, then the file. */
	if ((error = co_server__fleet_commit(s->flags_path, from, to, kill, &in_fleet)) < 0)
		return error;
	/* The kill switch always lands; any other change only over what it read. */
	if (!in_fleet && (error = kill ? co_flags_save_kill(to, from, s->flags_path)
				       : co_flags_save_if(from, to, s->flags_path)) < 0)
		return error;
	co_flags_diff(detail, sizeof(detail), from, to);
	if (note && *note) {
		size_t n = strlen(detail);

		snprintf(detail + n, sizeof(detail) - n, " (%s)", note);
	}
	if ((error = co_audit_change_add(s->state, "serve:admin", action, detail, why)) <
	    0)
		return co_error_set(error, "flags saved, but the audit row failed: %s",
				    co_error_last());
	/* The watcher would see the file within 100 ms; reading it now makes
	 * the change visible to the very next request. */
	co_flags_watcher_reload(s->flags);
	co_error_clear();
	return 0;
}

void co_server__flags_admin(reply *rp, co_server *s, const req *rq, const char *what)
{
	static const char *const a_reason[] = {"reason", NULL};
	static const char *const a_stage[] = {"stage", "force", "reason", NULL};
	char note[1024] = "";
	const char *reason = NULL, *stage_name;
	co_flags from, to;
	co_stage stage;
	cJSON *o = NULL, *res;
	int error = 0, force = 0, locked = 0, flock_fd = -1;

	if (s->flags_path == NULL) {
		error = co_error_set(CO_EUNAVAIL, "no flags file configured");
		goto done;
	}
	if ((error = co_server__parse_body(
		 &o, rq, strcmp(what, "stage") == 0 ? a_stage : a_reason, 1)) < 0 ||
	    (error = co_server__get_str(&reason, o, "reason", 0)) < 0)
		goto done;
	pthread_mutex_lock(&s->admin_lock);
	locked = 1;
	if (strcmp(what, "rollback") == 0) {
		int64_t left = 0;

		if (reason == NULL || *reason == '\0')
			reason = "rollback via admin API";
		/* DESIGN §4: git first holds what etcd acknowledged, as far as
		 * it goes; routers apply the rest before git serves those IDs. */
		co_router_drain(s->router, "git", ADMIN_ROLLBACK_DRAIN_MS, &left);
		co_error_clear();
		/* Across processes: no other writer between load and save, but
		 * one stuck holding the lock does not hold up the switch. */
		if ((error = co_flags_lock_for_kill(&flock_fd, s->flags_path)) < 0)
			goto done;
		if (flock_fd < 0) {
			co_log(CO_LOG_WARN, "serve",
			       "%s; pulling the kill switch without the lock",
			       co_error_last());
			co_error_clear();
		}
		admin_current(&from, s);
		/* After `cutover complete` git is stale: going back is the CLI's
		 * `rollback --force`, recorded, never an HTTP call. */
		if (from.completed.on) {
			co_server__reply_err(rp, 409, "completed",
					     "the cutover is completed: git is no longer "
					     "written; use `cutover rollback --force` to go back",
					     NULL);
			goto done;
		}
		to = from;
		co_flags_set_kill(&to, 1, reason);
		if ((error = admin_commit(s, "rollback", &from, &to, NULL, reason, 1)) <
		    0)
			goto done;
		res = co_server__flags_json(&to);
		cJSON_AddNumberToObject(res, "outbox_git_left", (double)left);
		co_server__reply_json(rp, 200, res);
	} else if (strcmp(what, "resume") == 0) {
		if ((error = flock_fd = co_flags_lock(s->flags_path)) < 0)
			goto done;
		if ((error = admin_load(&from, s)) < 0)
			goto done;
		to = from;
		co_flags_set_kill(&to, 0, NULL);
		if (from.kill_switch &&
		    (error = admin_commit(s, "resume", &from, &to, NULL, reason, 0)) < 0)
			goto done;
		co_server__reply_json(rp, 200, co_server__flags_json(&to));
	} else {
		const cJSON *fv = cJSON_GetObjectItemCaseSensitive(o, "force");

		if (fv && !cJSON_IsBool(fv) && !cJSON_IsNull(fv)) {
			error =
			    co_error_set(CO_EINVAL, "\"force\" must be true or false");
			goto done;
		}
		force = cJSON_IsTrue(fv);
		if ((error = co_server__get_str(&stage_name, o, "stage", 1)) < 0 ||
		    (error = co_stage_parse(&stage, stage_name)) < 0 ||
		    (error = flock_fd = co_flags_lock(s->flags_path)) < 0)
			goto done;
		if ((error = admin_load(&from, s)) < 0)
			goto done;
		to = from;
		if ((error = co_stage_apply(&to, stage)) < 0)
			goto done;
		if (s->gate) {
			if ((error = s->gate(note, sizeof(note), s->gate_ctx, &from, &to,
					     force)) < 0)
				goto refused;
		} else {
			size_t nn = 0;

			/* The one rule that needs no inputs still holds. */
			if ((error = co_gate_check_path(&from, &to)) < 0) {
				if (!force)
					goto refused;
				nn = (size_t)snprintf(note, sizeof(note),
						      "forced past %s", co_error_last());
				error = 0;
			}
			/* Without the gate's inputs this server cannot say go:
			 * refuse forward moves unless forced, and record that. */
			if (co_stage_is_forward(&from, &to)) {
				if (!force) {
					error = co_error_set(
					    CO_ECONFLICT,
					    "go/no-go: this server has no go/no-go "
					    "gate; move forward with `cutover stage` "
					    "(use \"force\": true to override)");
					goto refused;
				}
				if (nn < sizeof(note))
					snprintf(note + nn, sizeof(note) - nn, "%s%s",
						 nn ? "; " : "",
						 "forced forward without go/no-go check");
			}
		}
		if (!co_flags_equal(&from, &to) &&
		    (error = admin_commit(s, "stage", &from, &to, note, reason, 0)) < 0)
			goto done;
		res = co_server__flags_json(&to);
		if (note[0])
			cJSON_AddStringToObject(res, "forced", note);
		co_server__reply_json(rp, 200, res);
	}
	goto done;
refused:
	if (error == CO_ECONFLICT) {
		char change[2048];
		size_t n = (size_t)snprintf(change, sizeof(change), "stage: ");

		co_flags_diff(change + n, sizeof(change) - n, &from, &to);
		co_audit_gate_refused(s->state, "serve:admin", change);
	}
done:
	co_flags_unlock(flock_fd);
	if (locked)
		pthread_mutex_unlock(&s->admin_lock);
	if (error < 0)
		co_server__reply_code(rp, error, NULL);
	cJSON_Delete(o);
}
