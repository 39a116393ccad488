/*
 * cli.h - what the `cutover` commands share (DESIGN §7).
 *
 * main.c parses the global options into a co_cli and dispatches to one
 * co_cli_<name>() per command (the table is cli_commands.h).  A command
 * returns 0 or a negative CO_E* code with the message set by co_error_set();
 * main.c turns that into "cutover: <message>" on stderr and an exit status
 * through co_cli_exit_code(), the one place where codes become statuses.  A
 * command may also return a positive exit status it has already explained.
 *
 * Output goes to stdout (text, or canonical JSON with --json); diagnostics
 * to stderr.  Nothing here is thread-safe: one command runs per process.
 */
#ifndef CO_CLI_H
#define CO_CLI_H

#include "../core/config.h"
#include "../core/record.h"
#include "../store/store.h"
#include "flags/flags.h"
#include "flags/stage.h"
#include "router/router.h"

#include <stdint.h>

#include <stddef.h>

/* The version printed by `cutover --version`; keep in step with CMakeLists. */
#define CO_CLI_VERSION "0.1.0"

/* What co_cli_open_store() opens when --backend is not given. */
#define CO_CLI_DEFAULT_BACKEND "git"

/* How long a one-shot command drains the outbox before it exits (DESIGN §4). */
#define CO_CLI_DRAIN_MS 2000

typedef struct co_cli {
	const char *config_path; /* --config, or NULL ($CUTOVER_CONFIG, ./cutover.yaml) */
	const char *backend;	 /* --backend "git" or "etcd", or NULL for the default */
	int json;		 /* --json */
	co_config *config;	 /* loaded on first use by co_cli_config() */
} co_cli;

/* One prototype per line of cli_commands.h: argv[0] is the command name. */
#define CO_CLI_COMMAND(name, summary)                                                    \
	int co_cli_##name(int argc, char **argv, co_cli *ctx);
#include "cli_commands.h"
#undef CO_CLI_COMMAND

/* Free what the context loaded (the config).  Does not free ctx itself. */
void co_cli_cleanup(co_cli *ctx);

/*
 * The configuration, loaded once from ctx->config_path and the environment.
 * The pointer is owned by ctx.  Every command asks for it before it uses
 * the state dir or the flags file, so this is also where both are made
 * ready, once (first run): the state dir and the flags file's directory
 * are created (0700, parents too) and checked writable, cutover's existing
 * files there are made 0600 (co_state_file_private), and a state dir open
 * to other users or another user's loose file gets a one-line warning on
 * stderr.  CO_EINVAL ("FILE:LINE: key ...", or a path that cannot be used,
 * naming it and why: "state dir /x: Permission denied"), CO_EIO (a failing
 * disk), CO_ENOMEM.
 */
int co_cli_config(const co_config **out, co_cli *ctx);

/*
 * Open one store: --backend, else CO_CLI_DEFAULT_BACKEND.  (Data commands
 * use co_cli_data_open(), which takes the router without --backend.)  *out is owned by
 * the caller (co_store_free).  CO_EINVAL for a bad --backend or a missing setting (no git
 * repo configured), CO_EUNAVAIL if the store cannot open.
 */
int co_cli_open_store(co_store **out, co_cli *ctx);

/* Open one store by name ("git" or "etcd") from the configuration. */
int co_cli_open_backend(co_store **out, co_cli *ctx, const char *name);

/* --- the router --- */

typedef struct co_state co_state;
typedef struct co_flags_watcher co_flags_watcher;
typedef struct co_router co_router;

/* Everything a routed command holds; all owned by this struct. */
typedef struct co_cli_router {
	co_store *git, *etcd;
	co_state *state;	 /* <state_dir>/cutover.db */
	co_flags_watcher *flags; /* the flags file, hot-reloaded */
	co_router *router;
	char fence_key[256]; /* fleet mode: the flags key its writes fence on */
} co_cli_router;

/*
 * Open the router as the configuration describes it: both stores (etcd
 * need not be reachable: opening it does not contact it, and in git mode
 * it is never asked), the state database in state_dir, and a flags watcher
 * on flags_path (a missing file means every operation in git mode).  No
 * background drain: a one-shot command drains in co_cli_router_close().
 * *out is owned by the caller.  CO_EINVAL (no git repo configured, a bad
 * flags file naming its line), CO_EUNAVAIL, CO_EIO, CO_ENOMEM.
 */
int co_cli_open_router(co_cli_router **out, co_cli *ctx);

/*
 * The router options for cr's stores, state and flags as the
 * configuration says (mirror bound, redaction, shadow sampling, and in
 * fleet mode the flags key its etcd decisions are fenced on, kept in
 * cr).  No background drain, no triggers: serve adds those.  0 or
 * CO_EINVAL.
 */
int co_cli_router_opts(co_router_opts *o, const co_config *c, co_cli_router *cr);

/*
 * Fleet commands (cli_fleet.c).  The live routers, from etcd (and the
 * cache in the state dir rewritten), or when etcd does not answer from
 * that cache, saying so on stderr as `cmd`: *out malloc'd (caller frees).
 * CO_EINVAL when the configuration is not in fleet mode, CO_ENOTFOUND
 * when etcd does not answer and nothing is cached.
 */
struct co_fleet_member;
int co_cli_fleet_routers(struct co_fleet_member **out, size_t *n, const co_config *c,
			 const char *cmd);

/* The admin token to call routers with (NULL: none, or unreadable, said
 * on stderr).  Free with co_cli_fleet_token_free (it is wiped). */
char *co_cli_fleet_token(const co_config *c, const char *cmd);
void co_cli_fleet_token_free(char *token);

/* How long a fleet command waits for each router's admin API. */
#define CO_CLI_FLEET_CALL_MS 15000

/*
 * Every live router's answer to one admin GET (co_cli_fleet_merge_get).
 * m, calls and answers have n items: answers[i] is router i's 2xx body
 * (NULL when it did not answer: calls[i].error says why).
 */
struct co_fleet_call;
struct cJSON;
typedef struct co_cli_fleet_answers {
	const char *cmd; /* "audit --fleet": names the command in messages */
	struct co_fleet_member *m;
	size_t n;
	struct co_fleet_call *calls;
	char **answers;
	int answered;	  /* how many answered */
	char missed[1024]; /* "r2, r3": who did not */
} co_cli_fleet_answers;


/*
 * One admin GET merged over the fleet (`audit --fleet`, `report --fleet`):
 * co_cli_fleet_get, then every answering router's rows (the objects of
 * array `member` of its JSON answer) copied into `all` with "router" added
 * (a router whose answer holds no such array is refused as "its answer is
 * not `what`"), and `out` = {"routers":[...]} for the command to add its
 * own members to.  rows: n pointers into all, for sorting.  Errors as
 * co_cli_fleet_get, CO_ENOMEM.  Clear with co_cli_fleet_merge_clear in
 * every case.
 */
typedef struct co_cli_fleet_merge {
	co_cli_fleet_answers g;
	struct cJSON *out, *all, **rows;
	size_t n;
} co_cli_fleet_merge;

int co_cli_fleet_merge_get(co_cli_fleet_merge *mg, co_cli *ctx, const char *cmd,
			   const char *path, const char *member, const char *what);
/* Print mg->out as one line of JSON.  CO_ENOMEM. */
int co_cli_fleet_merge_print(const co_cli_fleet_merge *mg);
/* 0 when every router answered, else CO_EUNAVAIL "CMD: K of N routers
 * answered; not: r2, r3 (HINT)". */
int co_cli_fleet_merge_result(const co_cli_fleet_merge *mg, const char *hint);
void co_cli_fleet_merge_clear(co_cli_fleet_merge *mg);

/*
 * Drain the outbox for at most `drain_ms` (0: not at all), then close
 * everything.  Pending entries stay in the outbox for the next router.
 * Accepts NULL.
 */
void co_cli_router_close(co_cli_router *cr, int drain_ms);

/*
 * Where a data command's operations go: one store with --backend, else the
 * router.  Zero-initialise, co_cli_data_open(), use, co_cli_data_close().
 */
typedef struct co_cli_data {
	co_store *store;   /* --backend given */
	co_cli_router *rt; /* otherwise */
} co_cli_data;

/* Open the store named by --backend, or the router.  Errors as above. */
int co_cli_data_open(co_cli_data *d, co_cli *ctx);
/* Drain (router: CO_CLI_DRAIN_MS) and close.  Accepts a zeroed struct. */
void co_cli_data_close(co_cli_data *d);
/* "git /srv/tasks.git", "etcd http://...", or "router (stage shadow)". */
void co_cli_data_describe(char *buf, size_t len, co_cli_data *d);

/* The operations of store.h / router.h on whichever d holds. */
int co_cli_data_task_create(co_record **out, co_cli_data *d, const co_record *task);
int co_cli_data_get(co_record **out, co_cli_data *d, co_kind kind, const char *id);
int co_cli_data_list(co_record_list *out, co_cli_data *d, co_kind kind);
int co_cli_data_claim(co_record **out, co_cli_data *d, const char *id, const char *swarm,
		      int64_t ttl);
int co_cli_data_release(co_record **out, co_cli_data *d, const char *id,
			const char *swarm, co_status to);
int co_cli_data_renew(co_record **out, co_cli_data *d, const char *id, const char *swarm,
		      int64_t ttl);
int co_cli_data_swarm_register(co_record **out, co_cli_data *d, const co_record *s);
int co_cli_data_remove(co_cli_data *d, co_kind kind, const char *id);

/* --- flag changes --- */

/* Who changes flags: $USER, or "cutover" when it is unset. */
const char *co_cli_who(void);

/*
 * Save `to` (stamped with co_cli_who() and now) atomically over the flags
 * file, then append a row to the audit trail: who, `action` ("flags set",
 * "stage", "rollback", "resume"), what (co_flags_diff of from -> to, with
 * `note` appended when not NULL, e.g. "forced past go/no-go: ...") and
 * `why` (may be NULL).  `st` is the state database (opened from the
 * configuration when NULL).  `kill` is for the kill switch: saved whatever
 * the file holds now; any other change is saved only if the file still
 * holds `from` (co_flags_save_if: a kill switch pulled meanwhile is never
 * undone), else CO_ECONFLICT.  CO_EIO/CO_EINVAL from the save (nothing
 * recorded then), CO_EUNAVAIL/CO_EIO from the audit (the flags are saved
 * then, and the message says so).
 */
int co_cli_flags_commit(co_cli *ctx, co_state *st, const char *action,
			const co_flags *from, co_flags *to, const char *note,
			const char *why, int kill);

/*
 * The go/no-go gate (flags/gate.h) for a change from `from` to `to`: reads
 * the latest reconciliation run from `st`; when etcd could become a
 * primary, the foreign commits of the git branch within the configured
 * window; when etcd's share as a primary grows, both stores, the outbox
 * and the shadow mismatch logs (cli_gate.c).  0 when the change may go ahead; with `force`, a refusal is
 * turned into 0 and its message copied into note (for the audit trail;
 * note[0] is NUL when nothing was overridden) and printed as a warning.
 * CO_ECONFLICT (exit 3) with the refusal otherwise; CO_EIO from the state.
 */
int co_cli_gate(char *note, size_t note_len, co_cli *ctx, co_state *st,
		const co_flags *from, const co_flags *to, int force);

/*
 * Every rule's verdict on the change (flags/gate.h co_gate_evaluate), from
 * the same reads as co_cli_gate(), for `--dry-run`: v has CO_GATE__COUNT
 * entries.  0 (whatever the verdicts), or CO_EIO/CO_EINVAL when what the
 * gate needs could not be read.
 */
typedef struct co_gate_verdict co_gate_verdict;
int co_cli_gate_verdicts(co_gate_verdict *v, co_cli *ctx, co_state *st,
			 const co_flags *from, const co_flags *to);

/*
 * `--dry-run` of a flags change (cli_plan.c): print what would change from
 * `from` to `to` (per operation, and how many of today's IDs change
 * primary) and every go/no-go rule's verdict, as text or with --json, for
 * `command` ("stage 10").  Changes nothing.  0 if the gate would let the
 * change through; CO_ECONFLICT (exit 3) if it would refuse it; CO_EIO /
 * CO_EINVAL when what the gate needs could not be read.
 */
int co_cli_plan(co_cli *ctx, co_state *st, const char *command, const co_flags *from,
		const co_flags *to);

/*
 * Of the *reads shadow reads logged since `since` (co_audit_shadow_counts),
 * how many were compared with etcd: sampled-out reads (config shadow:,
 * core/shadow.h) cannot disagree, so mismatch ratios are over these.  *reads
 * is left as it is when every read op is compared.  CO_EIO.
 */
int co_cli_shadow_compared_reads(int64_t *reads, const co_config *c, co_state *st,
				 int64_t since);

/* CLOCK_MONOTONIC in ms, for a command's own deadlines. */
int64_t co_cli_mono_ms(void);

/* Sleep ms (<= 0: not at all), through signals. */
void co_cli_sleep_ms(int64_t ms);

/* --- the guarded rollout (rollout_driver.c) --- */

/*
 * One tick of the rollout in the state dir, if any (flags/rollout.h):
 * apply its next stage through the gate, analyse a finished soak (running
 * a reconciliation through `cr` when none passed within it; `cr` may be
 * NULL: then the analysis fails for want of one), roll back or pause on a
 * failure, all audited as "rollout".  *active is 1 while a rollout
 * needs a driver (0 once it ends or pauses: a paused one waits for
 * `rollout resume`); said gets one line when something happened ("" if
 * not).  Under the rollout's lock; a tick while another live process
 * drives it does nothing.  CO_EIO/CO_EINVAL when the state cannot be
 * read or saved.
 */
int co_cli_rollout_tick(int *active, char *said, size_t said_len, co_cli *ctx,
			co_cli_router *cr, co_state *st);

/*
 * Set every operation to `stage` under the flags lock, through the
 * go/no-go gate when `gated` (never forced), audited as "rollout: stage"
 * with `reason`.  0 also when already there; else why gets the refusal.
 */
int co_cli_rollout_apply(char *why, size_t len, co_cli *ctx, co_state *st,
			 co_stage stage, int gated, const char *reason);

/*
 * co_cli_gate for a command that makes the change itself (`stage`, `flags
 * set`): a refusal is also recorded in the audit trail (action "gate
 * refused", who co_cli_who(), detail "ACTION: <diff>", why the refusal) and
 * returned unchanged.
 */
int co_cli_gate_audited(char *note, size_t note_len, co_cli *ctx, co_state *st,
			const char *action, const co_flags *from, const co_flags *to,
			int force);

/*
 * The way back (gate rule 5, and `cutover cancel`): 0 if git answers a
 * ping and its repository is writable by this process; 1 with why filled
 * if not; CO_EINVAL/CO_EIO when the configuration cannot be read.
 */
int co_cli_git_way_back(char *why, size_t len, co_cli *ctx);

/* --- the finish line (cmd_complete.c) --- */

/*
 * End a going (or paused) rollout without moving the stage: marked
 * aborted with `why`, saved, audited as "rollout abort" by co_cli_who(),
 * under the rollout's lock (a driver then has nothing to do).  *ended
 * (may be NULL) says whether there was one.  0, or CO_EIO/CO_EINVAL from
 * the state file.
 */
int co_cli_rollout_end(int *ended, co_cli *ctx, co_state *st, const char *why);

/* --- reconciliation --- */

typedef struct co_reconcile_result co_reconcile_result;

/*
 * One reconciliation run as `cutover reconcile` makes it (the
 * configuration's thresholds and grace, the outbox drained through
 * cr->router first, the kill switch tripped on a failing verdict, progress
 * on stderr), recorded in cr->state; `who` names the caller in the audit
 * trail (NULL: "reconcile").  *out as co_reconcile_run (reconcile.h).
 */
int co_cli_reconcile_once(co_reconcile_result **out, co_cli *ctx, co_cli_router *cr,
			  const char *who);

/* co_cli_reconcile_once() that never trips the kill switch: a check that
 * changes nothing but the run it records (`cutover complete`). */
int co_cli_reconcile_check(co_reconcile_result **out, co_cli *ctx, co_cli_router *cr,
			   const char *who);

/* --- options --- */

/*
 * One option of a command: `--name VALUE` (or `--name=VALUE`) when `value`
 * is set, a flag `--name` setting *flag to 1 otherwise.
 */
typedef struct co_cli_opt {
	const char *name; /* without the dashes: "swarm" */
	const char **value;
	int *flag;
} co_cli_opt;

/*
 * Parse argv[1..argc-1] of a command: options may come before, between or
 * after positional arguments ("task claim ID --swarm S"); "--" ends them.
 * --json and --backend B are accepted here too and set ctx.  Positionals go
 * to pos[] (at most max_pos, count in *n_pos).  `opts` ends with a NULL
 * name.  Returns 0; 1 after printing `help` to stdout when -h/--help was
 * given (the command should then return 0); CO_EINVAL naming the problem,
 * followed by `usage`, for an unknown option, a missing value or too many
 * arguments.
 */
int co_cli_parse(const char **pos, size_t max_pos, size_t *n_pos, co_cli *ctx, int argc,
		 char **argv, const co_cli_opt *opts, const char *usage,
		 const char *help);

/*
 * Put "PREFIX: " in front of this thread's last error message and set it
 * again with `code`; returns `code`.  (Passing co_error_last() straight to
 * co_error_set() would read the buffer being written.)
 */
int co_cli_error_prefix(int code, const char *prefix);

/* CO_EINVAL "WHAT\nusage: USAGE" for a usage mistake; returns CO_EINVAL. */
int co_cli_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * "--wait-drain SECONDS": whole seconds (0..86400) or a duration ("90s",
 * "2m"), rounded up to whole seconds, into *out_s.  Anything else is a usage
 * error naming the value, with `usage` (exit 1).
 */
int co_cli_parse_wait(int *out_s, const char *s, const char *usage);

/*
 * Parse a TTL in whole seconds: a positive decimal integer (at most ten
 * years).  CO_EINVAL naming `what` ("--ttl") otherwise.
 */
int co_cli_parse_ttl(long long *out, const char *what, const char *s);

/* --- output --- */

/*
 * Print a record: one human-readable line, or its canonical compact JSON
 * with --json.  Returns 0 or CO_ENOMEM/CO_EIO.
 */
/* Print `o` (taken, freed) as one line of JSON.  CO_ENOMEM, CO_EIO. */
typedef struct cJSON cJSON;
int co_cli_print_json(cJSON *o);

int co_cli_print_record(co_cli *ctx, const co_record *r);

/* Print a list: one line per record, or a JSON array with --json. */
int co_cli_print_list(co_cli *ctx, const co_record_list *l);

/*
 * Turn a command's result into an exit status (0-4, DESIGN §7), printing
 * "cutover: <last error message>" to stderr for a failure.  The one place
 * where codes become statuses.  A positive `code` is returned as it is.
 */
int co_cli_exit_code(int code);

#endif
