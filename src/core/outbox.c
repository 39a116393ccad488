/*
 * outbox.c - durable, per-key ordered queue of writes owed to a store.
 *
 * The idea is the transactional outbox: the router never acknowledges a
 * write that only one store holds unless the debt to the other store is on
 * disk here first.  A row is the whole debt (the record's JSON, or NULL for
 * a delete), so that applying it needs nothing but the row.
 *
 * Ordering is what makes the outbox safe to drain while flags change: for
 * one key (target, kind, id) only the oldest row is ever handed out, so a
 * stale write can never land after a newer one, even across retries and
 * backoff (a failing head blocks its key, not the whole queue).  The
 * "oldest of its key" test is a NOT EXISTS probe on the (target, kind, id,
 * seq) index.  seq is AUTOINCREMENT so that it is never reused: an ack for
 * an old seq can never delete a newer entry.
 *
 * What this does not do: apply entries (the router's drain does, through the
 * stores) or decide whether a store is newer (the secondary's rev check).
 */
#include "outbox.h"

#include "error.h"
#include "id.h"
#include "list.h"
#include "state_internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_COLUMNS                                                                    \
	"seq, target, kind, id, payload, created_at, attempts, next_attempt_at, "        \
	"last_error"

/* Keep stored error texts bounded: a store may return a whole HTML page. */
#define LAST_ERROR_MAX 1000

void co_outbox_entry_free(co_outbox_entry *e)
{
	if (e == NULL)
		return;
	free(e->target);
	free(e->kind);
	free(e->id);
	free(e->payload);
	free(e->last_error);
	free(e);
}

void co_outbox_list_clear(co_outbox_list *l)
{
	CO_LIST_CLEAR(l, co_outbox_entry_free);
}

/* Append every entry of rows to *out, all or nothing; rows gives them up. */
static int take_entries(co_outbox_list *out, co_state__rows *rows)
{
	void *p = out->items;
	int error = co_state__rows_take(&p, &out->n, &out->cap, rows, "outbox");

	out->items = p;
	return error;
}

static int check_target(const char *target, int allow_null)
{
	if (target == NULL && allow_null)
		return 0;
	if (target != NULL && (strcmp(target, "git") == 0 || strcmp(target, "etcd") == 0))
		return 0;
	return co_error_set(CO_EINVAL, "outbox: unknown target \"%s\" (git or etcd)",
			    target ? target : "(null)");
}

static int check_key(const char *kind, const char *id)
{
	if (kind == NULL || (strcmp(kind, "task") != 0 && strcmp(kind, "swarm") != 0))
		return co_error_set(CO_EINVAL,
				    "outbox: unknown kind \"%s\" (task or swarm)",
				    kind ? kind : "(null)");
	return co_id_validate(id);
}

/* One entry from a row of ENTRY_COLUMNS. */
static int read_entry(void **out, sqlite3_stmt *s)
{
	co_outbox_entry *e;
	int error;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return co_error_set(CO_ENOMEM, "outbox: out of memory");
	e->seq = sqlite3_column_int64(s, 0);
	e->created_at = sqlite3_column_int64(s, 5);
	e->attempts = sqlite3_column_int(s, 6);
	e->next_attempt_at = sqlite3_column_int64(s, 7);
	if ((error = co_state__column_text(&e->target, s, 1)) < 0 ||
	    (error = co_state__column_text(&e->kind, s, 2)) < 0 ||
	    (error = co_state__column_text(&e->id, s, 3)) < 0 ||
	    (error = co_state__column_text(&e->payload, s, 4)) < 0 ||
	    (error = co_state__column_text(&e->last_error, s, 8)) < 0) {
		co_outbox_entry_free(e);
		return error;
	}
	*out = e;
	return 0;
}

static void free_entry(void *e)
{
	co_outbox_entry_free(e);
}

static const co_state__row_type entry_rows = {"outbox", read_entry, free_entry};

#define INSERT_ENTRY                                                                     \
	"INSERT INTO outbox (target, kind, id, payload, created_at,"                     \
	" next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"

static int bind_entry(co_state *st, sqlite3_stmt *s, const char *target, const char *kind,
		      const char *id, const char *payload)
{
	int error;

	if ((error = co_state__bind_text(st, s, 1, target)) < 0 ||
	    (error = co_state__bind_text(st, s, 2, kind)) < 0 ||
	    (error = co_state__bind_text(st, s, 3, id)) < 0 ||
	    (error = co_state__bind_text(st, s, 4, payload)) < 0)
		return error;
	sqlite3_bind_int64(s, 5, co_state_now_ms());
	return 0;
}

static int push(int64_t *out_seq, co_state *st, const char *target, const char *kind,
		const char *id, const char *payload, int durable)
{
	sqlite3_stmt *s = NULL;
	int64_t seq;
	int error;

	if ((error = check_target(target, 0)) < 0 || (error = check_key(kind, id)) < 0)
		return error;
	co_state__lock(st);
	if ((error = co_state__prepare(st, &s, INSERT_ENTRY)) < 0 ||
	    (error = bind_entry(st, s, target, kind, id, payload)) < 0)
		goto done;
	if ((error = co_state__begin(st, durable)) < 0)
		goto done;
	if ((error = co_state__step_done(st, s, "outbox push")) < 0)
		goto done;
	seq = sqlite3_last_insert_rowid(st->db);
	if ((error = co_state__commit(st)) < 0)
		goto done;
	if (out_seq)
		*out_seq = seq;
done:
	co_state__rollback(st);
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

int co_outbox_pending_for(co_outbox_list *out, co_state *st, const char *target,
			  const char *kind, const char *id)
{
	co_state__rows rows = {0};
	sqlite3_stmt *s = NULL;
	int error;

	if ((error = check_target(target, 0)) < 0 || (error = check_key(kind, id)) < 0)
		return error;
	co_state__lock(st);
	if ((error = co_state__prepare(st, &s,
				       "SELECT " ENTRY_COLUMNS " FROM outbox"
				       " WHERE target = ?1 AND kind = ?2 AND id = ?3"
				       " ORDER BY seq")) < 0)
		goto done;
	if ((error = co_state__bind_text(st, s, 1, target)) < 0 ||
	    (error = co_state__bind_text(st, s, 2, kind)) < 0 ||
	    (error = co_state__bind_text(st, s, 3, id)) < 0)
		goto done;
	if ((error = co_state__read_rows(&rows, st, s, &entry_rows, "read outbox")) < 0)
		goto done;
	error = take_entries(out, &rows);
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	co_state__rows_clear(&rows, &entry_rows);
	return error;
}

/* The heads of their keys that are due; caller holds the lock. */
static int select_batch(co_state__rows *rows, co_state *st, const char *target,
			size_t max, int64_t now_ms)
{
	sqlite3_stmt *s = NULL;
	int error;

	if ((error = co_state__prepare(
		 st, &s,
		 "SELECT " ENTRY_COLUMNS " FROM outbox AS o"
		 " WHERE (?1 IS NULL OR o.target = ?1) AND o.next_attempt_at <= ?2"
		 " AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.target = o.target"
		 "  AND e.kind = o.kind AND e.id = o.id AND e.seq < o.seq)"
		 " ORDER BY o.seq LIMIT ?3")) < 0)
		goto done;
	if ((error = co_state__bind_text(st, s, 1, target)) < 0)
		goto done;
	sqlite3_bind_int64(s, 2, now_ms);
	sqlite3_bind_int64(s, 3, max > INT64_MAX ? INT64_MAX : (int64_t)max);
	error = co_state__read_rows(rows, st, s, &entry_rows, "read outbox");
done:
	co_state__finish(st, s);
	return error;
}

int co_outbox_next_batch(co_outbox_list *out, co_state *st, const char *target,
			 size_t max, int64_t now_ms)
{
	co_state__rows rows = {0};
	int error;

	if ((error = check_target(target, 1)) < 0)
		return error;
	co_state__lock(st);
	if ((error = select_batch(&rows, st, target, max, now_ms)) == 0)
		error = take_entries(out, &rows);
	co_state__unlock(st);
	co_state__rows_clear(&rows, &entry_rows);
	return error;
}

int co_outbox_lease_batch(co_outbox_list *out, co_state *st, const char *target,
			  size_t max, int64_t now_ms, int64_t lease_ms)
{
	co_state__rows rows = {0};
	sqlite3_stmt *s = NULL;
	size_t i;
	int error;

	if ((error = check_target(target, 1)) < 0)
		return error;
	if (lease_ms < 0)
		return co_error_set(CO_EINVAL, "outbox: negative lease %lld ms",
				    (long long)lease_ms);
	co_state__lock(st);
	/* Select and postpone under one write lock, so that two drainers
	 * cannot both select the same heads. */
	if ((error = co_state__begin(st, 0)) < 0)
		goto done;
	if ((error = select_batch(&rows, st, target, max, now_ms)) < 0)
		goto done;
	if ((error = co_state__prepare(st, &s,
				       "UPDATE outbox SET next_attempt_at = ?1"
				       " WHERE seq = ?2")) < 0)
		goto done;
	for (i = 0; i < rows.n; i++) {
		co_outbox_entry *e = rows.items[i];

		e->next_attempt_at = now_ms + lease_ms;
		sqlite3_bind_int64(s, 1, now_ms + lease_ms);
		sqlite3_bind_int64(s, 2, e->seq);
		if ((error = co_state__step_done(st, s, "outbox lease")) < 0)
			goto done;
	}
	if ((error = co_state__commit(st)) < 0)
		goto done;
	error = take_entries(out, &rows);
done:
	co_state__rollback(st);
	co_state__finish(st, s);
	co_state__unlock(st);
	co_state__rows_clear(&rows, &entry_rows);
	return error;
}

int co_outbox_push(int64_t *out_seq, co_state *st, const char *target, const char *kind,
		   const char *id, const char *payload)
{
	/* durable: the caller acknowledges the write once we return. */
	return push(out_seq, st, target, kind, id, payload, 1);
}

int co_outbox_push_intent(int64_t *out_seq, co_state *st, const char *target,
			  const char *kind, const char *id, const char *payload)
{
	return push(out_seq, st, target, kind, id, payload, 0);
}

static int delete_seq(co_state *st, int64_t seq, int durable)
{
	sqlite3_stmt *s = NULL;
	int error;

	co_state__lock(st);
	if ((error = co_state__prepare(st, &s, "DELETE FROM outbox WHERE seq = ?")) < 0)
		goto done;
	sqlite3_bind_int64(s, 1, seq);
	error = co_state__step_commit(st, s, durable, "outbox ack");
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

int co_outbox_ack_many(co_state *st, const int64_t *seqs, size_t n, int durable)
{
	sqlite3_stmt *s = NULL;
	size_t i;
	int error;

	if (n == 0)
		return 0;
	co_state__lock(st);
	if ((error = co_state__prepare(st, &s, "DELETE FROM outbox WHERE seq = ?")) < 0 ||
	    (error = co_state__begin(st, durable)) < 0)
		goto done;
	for (i = 0; i < n && error == 0; i++) {
		sqlite3_bind_int64(s, 1, seqs[i]);
		error = co_state__step_done(st, s, "outbox ack");
	}
	if (error == 0)
		error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

int co_outbox_ack_intent(co_state *st, int64_t seq)
{
	/* Replaying an intent only copies a record again: no sync needed. */
	return delete_seq(st, seq, 0);
}

int co_outbox_fulfil_intent(co_state *st, int64_t seq, const char *target,
			    const char *kind, const char *id, const char *payload,
			    int durable)
{
	co_outbox_fulfil f = {seq, target, kind, id, payload, 0};

	return co_outbox_fulfil_intents(st, &f, 1, durable);
}

int co_outbox_fulfil_intents(co_state *st, const co_outbox_fulfil *items, size_t n,
			     int durable)
{
	sqlite3_stmt *s = NULL, *ins = NULL;
	unsigned char *gone = NULL;
	size_t i, n_gone = 0;
	int error = 0;

	for (i = 0; i < n; i++)
		if ((error = check_target(items[i].target, 0)) < 0 ||
		    (error = check_key(items[i].kind, items[i].id)) < 0)
			return error;
	if (n == 0)
		return 0;
	if ((gone = calloc(n, 1)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	co_state__lock(st);
	/* The intent keeps its place in the per-key order. */
	if ((error = co_state__prepare(st, &s,
				       "UPDATE outbox SET payload = ?1, attempts = ?4,"
				       " next_attempt_at = ?2, last_error = NULL"
				       " WHERE seq = ?3")) < 0)
		goto done;
	if ((error = co_state__begin(st, durable)) < 0)
		goto done;
	for (i = 0; i < n; i++) {
		if ((error = co_state__bind_text(st, s, 1, items[i].payload)) < 0)
			goto done;
		sqlite3_bind_int64(s, 2, co_state_now_ms());
		sqlite3_bind_int64(s, 3, items[i].seq);
		sqlite3_bind_int(s, 4, items[i].mirror_failed ? 1 : 0);
		if ((error = co_state__step_done(st, s, "outbox fulfil")) < 0)
			goto done;
		if (sqlite3_changes(st->db) == 0) {
			gone[i] = 1;
			n_gone++;
		}
	}
	if ((error = co_state__commit(st)) < 0 || n_gone == 0)
		goto done;
	/* A drain resolved these intents meanwhile: the records go in anew,
	 * which is what that drain would have seen had it come later.  Always
	 * synced: with the intent gone, a durable intent no longer stands in
	 * for the row after a power loss. */
	if ((error = co_state__prepare(st, &ins, INSERT_ENTRY)) < 0 ||
	    (error = co_state__begin(st, 1)) < 0)
		goto done;
	for (i = 0; i < n; i++) {
		if (!gone[i])
			continue;
		if ((error = bind_entry(st, ins, items[i].target, items[i].kind,
					items[i].id, items[i].payload)) < 0 ||
		    (error = co_state__step_done(st, ins, "outbox push")) < 0)
			goto done;
	}
	error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__finish(st, s);
	co_state__finish(st, ins);
	co_state__unlock(st);
	free(gone);
	return error;
}

int co_outbox_ack(co_state *st, int64_t seq)
{
	/* Durable: a lost ack would replay an applied entry, harmless for a
	 * rev-checked upsert but not for a delete followed by a re-create. */
	return delete_seq(st, seq, 1);
}

int co_outbox_ack_unsynced(co_state *st, int64_t seq)
{
	return delete_seq(st, seq, 0);
}

/* backoff * 2^attempts, capped; no overflow for any attempts. */
static int64_t backoff_delay(int64_t backoff_ms, int attempts)
{
	int64_t cap =
	    backoff_ms > CO_OUTBOX_BACKOFF_MAX_MS ? backoff_ms : CO_OUTBOX_BACKOFF_MAX_MS;
	int64_t d = backoff_ms;
	int i;

	for (i = 0; i < attempts && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

int co_outbox_fail(co_state *st, int64_t seq, const char *error_text, int64_t backoff_ms)
{
	sqlite3_stmt *sel = NULL, *upd = NULL;
	int64_t due;
	int rc, error, attempts;

	if (backoff_ms < 0)
		return co_error_set(CO_EINVAL, "outbox: negative backoff %lld ms",
				    (long long)backoff_ms);
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &sel, "SELECT attempts FROM outbox WHERE seq = ?")) < 0 ||
	    (error =
		 co_state__prepare(st, &upd,
				   "UPDATE outbox SET attempts = attempts + 1,"
				   " next_attempt_at = ?1, last_error = substr(?2, 1, ?3)"
				   " WHERE seq = ?4")) < 0)
		goto done;
	if ((error = co_state__begin(st, 1)) < 0)
		goto done;
	sqlite3_bind_int64(sel, 1, seq);
	rc = sqlite3_step(sel);
	if (rc == SQLITE_DONE) {
		error =
		    co_error_set(CO_ENOTFOUND, "outbox: no entry %lld", (long long)seq);
		goto done;
	}
	if (rc != SQLITE_ROW) {
		error = co_state__error(st, rc, "outbox fail");
		goto done;
	}
	attempts = sqlite3_column_int(sel, 0);
	due = co_state_now_ms() + backoff_delay(backoff_ms, attempts);
	sqlite3_bind_int64(upd, 1, due);
	if ((error = co_state__bind_text(st, upd, 2, error_text)) < 0)
		goto done;
	sqlite3_bind_int(upd, 3, LAST_ERROR_MAX);
	sqlite3_bind_int64(upd, 4, seq);
	if ((error = co_state__step_done(st, upd, "outbox fail")) < 0)
		goto done;
	error = co_state__commit(st);
done:
	co_state__rollback(st);
	co_state__finish(st, sel);
	co_state__finish(st, upd);
	co_state__unlock(st);
	return error;
}

int co_outbox_retry_now(int64_t *out, co_state *st, const char *target)
{
	sqlite3_stmt *upd = NULL;
	int error;

	if (target == NULL || (strcmp(target, "git") != 0 && strcmp(target, "etcd") != 0))
		return co_error_set(CO_EINVAL, "outbox: unknown target \"%s\"",
				    target ? target : "(null)");
	co_state__lock(st);
	if ((error = co_state__prepare(st, &upd,
				       "UPDATE outbox SET next_attempt_at = ?1"
				       " WHERE target = ?2 AND next_attempt_at > ?1")) < 0)
		goto done;
	sqlite3_bind_int64(upd, 1, co_state_now_ms());
	if ((error = co_state__bind_text(st, upd, 2, target)) < 0)
		goto done;
	/* Not synced: a lost change only means the entries wait their backoff. */
	if ((error = co_state__step_commit(st, upd, 0, "outbox retry")) < 0)
		goto done;
	if (out)
		*out = co_state__changes(st);
done:
	co_state__finish(st, upd);
	co_state__unlock(st);
	return error;
}

/* One integer from a one-row query with optional text parameters. */
static int query_int(int64_t *out, co_state *st, const char *sql, const char *p1,
		     const char *p2, int nparams)
{
	sqlite3_stmt *s = NULL;
	int rc, error;

	co_state__lock(st);
	if ((error = co_state__prepare(st, &s, sql)) < 0)
		goto done;
	if ((nparams >= 1 && (error = co_state__bind_text(st, s, 1, p1)) < 0) ||
	    (nparams >= 2 && (error = co_state__bind_text(st, s, 2, p2)) < 0))
		goto done;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		error = co_state__error(st, rc, "read outbox");
		goto done;
	}
	*out = sqlite3_column_int64(s, 0);
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

int co_outbox_depth(int64_t *out, co_state *st, const char *target)
{
	int error;

	if ((error = check_target(target, 1)) < 0)
		return error;
	return query_int(out, st,
			 "SELECT count(*) FROM outbox WHERE ?1 IS NULL OR target = ?1",
			 target, NULL, 1);
}

int co_outbox_oldest(int64_t *out, co_state *st)
{
	return query_int(out, st,
			 "SELECT coalesce((SELECT created_at FROM outbox ORDER BY seq"
			 " LIMIT 1), 0)",
			 NULL, NULL, 0);
}

int co_outbox_stats_of(co_outbox_stats *out, co_state *st, const char *target)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *le;
	int rc, error;

	memset(out, 0, sizeof(*out));
	if ((error = check_target(target, 0)) < 0)
		return error;
	co_state__lock(st);
	if ((error = co_state__prepare(
		 st, &s,
		 "SELECT count(*), coalesce(min(created_at), 0),"
		 " count(*) FILTER (WHERE attempts > 0),"
		 " (SELECT last_error FROM outbox WHERE target = ?1 AND attempts > 0"
		 "  ORDER BY seq LIMIT 1)"
		 " FROM outbox WHERE target = ?1")) < 0 ||
	    (error = co_state__bind_text(st, s, 1, target)) < 0)
		goto done;
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		error = co_state__error(st, rc, "read outbox");
		goto done;
	}
	out->depth = sqlite3_column_int64(s, 0);
	out->oldest_ms = sqlite3_column_int64(s, 1);
	out->failing = sqlite3_column_int64(s, 2);
	if ((le = sqlite3_column_text(s, 3)) != NULL)
		snprintf(out->last_error, sizeof(out->last_error), "%s", (const char *)le);
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

int co_outbox_has_pending(co_state *st, const char *kind, const char *id)
{
	int64_t n = 0;
	int error;

	if ((error = check_key(kind, id)) < 0)
		return error;
	/* Two probes of the key index rather than a scan on (kind, id). */
	error = query_int(&n, st,
			  "SELECT EXISTS (SELECT 1 FROM outbox WHERE target = 'git'"
			  " AND kind = ?1 AND id = ?2) OR EXISTS (SELECT 1 FROM outbox"
			  " WHERE target = 'etcd' AND kind = ?1 AND id = ?2)",
			  kind, id, 2);
	return error < 0 ? error : (n ? 1 : 0);
}

int co_outbox_is_intent(const co_outbox_entry *e)
{
	return e && e->payload &&
	       strncmp(e->payload, CO_OUTBOX_INTENT_PREFIX,
		       strlen(CO_OUTBOX_INTENT_PREFIX)) == 0;
}

int co_outbox_debt_of(co_outbox_debt *out, co_state *st, const char *kind, const char *id,
		      int64_t now_ms)
{
	co_outbox_debt d = {0, 0, 0, 0};
	sqlite3_stmt *s = NULL;
	int rc, error;

	if ((error = check_key(kind, id)) < 0)
		return error;
	co_state__lock(st);
	/* `target IN (...)` lets SQLite probe the key index once per store.
	 * Young (in flight, not owed): an intent within the in-flight window;
	 * a record the drain has not tried yet, within the same window (the
	 * ordinary lag of an asynchronous mirror).  A record whose apply
	 * failed (the drain is in backoff) is owed at once. */
	if ((error = co_state__prepare(
		 st, &s,
		 "SELECT target, count(*),"
		 " sum(young),"
		 " min(CASE WHEN young THEN NULL ELSE created_at END)"
		 " FROM (SELECT target, created_at,"
		 "  (created_at > ?3 - ?6 AND (attempts = 0 OR (payload IS NOT NULL"
		 "   AND substr(payload, 1, ?4) = ?5))) AS young"
		 "  FROM outbox WHERE target IN ('git', 'etcd') AND kind = ?1"
		 "  AND id = ?2)"
		 " GROUP BY target")) < 0)
		goto done;
	if ((error = co_state__bind_text(st, s, 1, kind)) < 0 ||
	    (error = co_state__bind_text(st, s, 2, id)) < 0 ||
	    (error = co_state__bind_text(st, s, 5, CO_OUTBOX_INTENT_PREFIX)) < 0)
		goto done;
	sqlite3_bind_int64(s, 3, now_ms);
	sqlite3_bind_int(s, 4, (int)strlen(CO_OUTBOX_INTENT_PREFIX));
	sqlite3_bind_int64(s, 6, CO_OUTBOX_IN_FLIGHT_MS);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *target = (const char *)sqlite3_column_text(s, 0);
		int64_t since = sqlite3_column_type(s, 3) == SQLITE_NULL
				    ? 0
				    : sqlite3_column_int64(s, 3);

		d.pending += sqlite3_column_int(s, 1);
		d.in_flight += sqlite3_column_int(s, 2);
		if (target && strcmp(target, "git") == 0)
			d.git_since = since;
		else
			d.etcd_since = since;
	}
	if (rc != SQLITE_DONE) {
		error = co_state__error(st, rc, "read outbox");
		goto done;
	}
	*out = d;
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}

int co_outbox_expedite(int64_t *out, co_state *st, const char *kind, const char *id,
		       int64_t now_ms)
{
	sqlite3_stmt *s = NULL;
	int64_t n = 0;
	int error;

	if ((error = check_key(kind, id)) < 0)
		return error;
	co_state__lock(st);
	if ((error = co_state__prepare(st, &s,
				       "UPDATE outbox SET next_attempt_at = ?3"
				       " WHERE target IN ('git', 'etcd') AND kind = ?1"
				       " AND id = ?2 AND attempts > 0"
				       " AND next_attempt_at > ?3")) < 0)
		goto done;
	if ((error = co_state__bind_text(st, s, 1, kind)) < 0 ||
	    (error = co_state__bind_text(st, s, 2, id)) < 0)
		goto done;
	sqlite3_bind_int64(s, 3, now_ms);
	/* Not synced: a lost change only means the entry waits its backoff. */
	if ((error = co_state__step_commit(st, s, 0, "outbox expedite")) < 0)
		goto done;
	n = co_state__changes(st);
	if (out)
		*out = n;
done:
	co_state__finish(st, s);
	co_state__unlock(st);
	return error;
}
