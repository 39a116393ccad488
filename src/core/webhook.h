/*
 * webhook.h - tell other systems what the cutover did: signed JSON events
 * POSTed to configured URLs (config `webhooks:`).
 *
 * Events: kill_switch.tripped (rollback by hand, by a failing
 * reconciliation or by a trigger), kill_switch.resumed, stage.changed,
 * flags.changed (flags set), rollout.step, reconcile.failed.  Each is born
 * where the change is audited: co_audit_change_add (audit.h) maps the
 * row's action to an event, and co_runs_finish a failing verdict, and both
 * append one row per matching endpoint to the state table webhook_outbox
 * in the same transaction as their own row.  So an event exists exactly
 * when its audit row does, and no caller can forget to send one.
 *
 * Delivery (webhook_send.c) is apart from the change: nothing on the path
 * of a change or a trip waits for a receiver.  `cutover serve` runs a
 * sender thread; a CLI command that made events tries once at its end
 * within CO_WEBHOOK_CLI_BUDGET_MS; what is not delivered stays in the
 * outbox for the next sender, retried with exponential backoff, and after
 * CO_WEBHOOK_MAX_ATTEMPTS is dropped with an audit row ("webhook dropped").
 * The guarantee is at least once: a receiver dedupes by the event's "id"
 * (also in the X-Cutover-Delivery header).
 *
 * Request: POST, Content-Type: application/json, body
 *   {"id","event","time","who","action","detail","reason","flags":{"stage",
 *    "kill_switch","kill_reason"}|null}
 * with headers X-Cutover-Event, X-Cutover-Delivery (the id),
 * X-Cutover-Timestamp (Unix seconds of the attempt) and
 * X-Cutover-Signature: sha256=<hex HMAC-SHA256(secret, body)>.  Any 2xx
 * is delivered.  Secrets are never written to the state database: the
 * sender signs with the secret of the configuration it runs with.
 *
 * Which endpoints exist is process-wide (co_webhook_configure): the CLI
 * sets it when it loads the configuration, so every change made by any
 * command or by serve finds it.  Thread-safe.
 */
#ifndef CO_WEBHOOK_H
#define CO_WEBHOOK_H

#include "config.h"
#include "state.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Event bits, for co_config_webhook.events. */
enum {
	CO_WEBHOOK_EV_TRIPPED = 1 << 0,	 /* kill_switch.tripped */
	CO_WEBHOOK_EV_RESUMED = 1 << 1,	 /* kill_switch.resumed */
	CO_WEBHOOK_EV_STAGE = 1 << 2,	 /* stage.changed */
	CO_WEBHOOK_EV_FLAGS = 1 << 3,	 /* flags.changed */
	CO_WEBHOOK_EV_ROLLOUT = 1 << 4,	 /* rollout.step */
	CO_WEBHOOK_EV_RECONCILE = 1 << 5 /* reconcile.failed */
};

#define CO_WEBHOOK_EVENTS                                                                \
	"kill_switch.tripped, kill_switch.resumed, stage.changed, flags.changed, "       \
	"rollout.step, reconcile.failed"

/* Delivery: per request, attempts, backoff (1 s doubling, at most 10 min). */
#define CO_WEBHOOK_TIMEOUT_MS 5000
#define CO_WEBHOOK_CONNECT_TIMEOUT_MS 2000
#define CO_WEBHOOK_MAX_ATTEMPTS 10
#define CO_WEBHOOK_BACKOFF_MS 1000
#define CO_WEBHOOK_BACKOFF_MAX_MS (10 * 60 * 1000)
/* What a CLI command spends delivering at its end, in all. */
#define CO_WEBHOOK_CLI_BUDGET_MS 2000

/* The bit of an event name; 0 if there is no such event. */
unsigned co_webhook_event_bit(const char *name);

/* The event an audited action makes ("rollback" -> "kill_switch.tripped"),
 * or NULL for actions that make none. */
const char *co_webhook_event_of_action(const char *action);

/*
 * 0 if `url` is an absolute http:// or https:// URL with a host, else
 * CO_EINVAL with why in `why` (no error message set: the caller names the
 * field).
 */
int co_webhook_url_check(char *why, size_t why_len, const char *url);

/*
 * Make the endpoints of `c` (c->webhooks; none is fine) the ones events are
 * queued for in this process, and c->flags_path where the event's "flags"
 * are read from.  Copies what it keeps.  CO_ENOMEM.
 */
int co_webhook_configure(const co_config *c);

/* Forget the configured endpoints (tests; process exit). */
void co_webhook_unconfigure(void);

/* Events queued by this process since it started (any state database). */
int64_t co_webhook_queued(void);

/*
 * Rows owed in webhook_outbox (all endpoints) into *out; the oldest
 * row's attempts and last error into *attempts / last_error (may be NULL;
 * 0 and "" when empty).  CO_EIO.
 */
int co_webhook_pending(int64_t *out, int64_t *attempts, char *last_error, size_t len,
		       co_state *st);

/* What one delivery pass did. */
typedef struct co_webhook_stats {
	int delivered; /* 2xx */
	int failed;    /* attempted and failed, kept for a retry */
	int dropped;   /* given up (attempts spent, or its URL no longer configured) */
} co_webhook_stats;

/*
 * Deliver the rows of st's outbox that are due, signed with the secrets of
 * `c`, until none is due or `budget_ms` (monotonic) is spent: each request
 * is cut at what is left of it.  Rows are leased while in flight, so two
 * senders (serve and a CLI command) seldom send the same row twice.
 * `stop`, if not NULL, aborts a request in flight when it becomes nonzero.
 * *stats may be NULL.  0, or CO_EIO from the state (a receiver's failure
 * is not an error: it is counted and retried).
 */
int co_webhook_deliver(co_webhook_stats *stats, co_state *st, const co_config *c,
		       int budget_ms, const atomic_int *stop);

/*
 * The sender of `cutover serve`: a thread that delivers what is due about
 * once a second (at once when this process queues an event) until
 * stopped.  `st` and `c` are borrowed and must outlive it.  CO_ENOMEM.
 * co_webhook_sender_stop() aborts a request in flight and joins; NULL is
 * fine.
 */
typedef struct co_webhook_sender co_webhook_sender;
int co_webhook_sender_start(co_webhook_sender **out, co_state *st, const co_config *c);
void co_webhook_sender_stop(co_webhook_sender *ws);

/* 1 once a sender thread has run in this process (the CLI then leaves
 * delivery to it rather than trying at exit). */
int co_webhook_sender_ran(void);

/* ---- for audit.c and runs.c (state_internal.h's callers) ---- */

/* An event ready to be queued: built before the state lock is taken. */
typedef struct co_webhook__event {
	char *body;  /* NULL: no endpoint wants it, nothing to queue */
	char *name;  /* "kill_switch.tripped", ... */
	char *id;    /* unique event id */
	char **urls; /* the endpoints it goes to */
	size_t n_urls;
} co_webhook__event;

/* Build event `name` (NULL: nothing) for the configured endpoints.  Never
 * fails: out of memory queues nothing (reported on stderr). */
void co_webhook__event_make(co_webhook__event *ev, const char *name, const char *who,
			    const char *action, const char *detail, const char *why,
			    int64_t ts);
/* Append its rows; the caller holds the state lock inside a transaction. */
int co_webhook__event_queue(co_state *st, const co_webhook__event *ev);
void co_webhook__event_clear(co_webhook__event *ev);
/* After the commit: wake this process's sender thread, if it runs. */
void co_webhook__kick(void);

#endif
