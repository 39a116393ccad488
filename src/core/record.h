/*
 * record.h - tasks and swarms, and their canonical JSON (DESIGN §1).
 *
 * A co_record is a plain struct owned by whoever holds the pointer; strings
 * and arrays inside it are owned by the record and freed by co_record_free().
 * Timestamps are Unix seconds (0 = null), printed as RFC 3339 UTC
 * ("2026-11-22T10:00:00Z").  `metadata` is kept as canonical JSON text of an
 * object (never NULL in a valid record: "{}" when empty).
 *
 * Canonical JSON: keys sorted (recursively, metadata included), compact for
 * etcd; pretty-printed with sorted keys and a final newline for git.  Two
 * records are equal exactly when their canonical compact forms are equal.
 *
 * Nothing here is shared between threads; records are values.
 */
#ifndef CO_RECORD_H
#define CO_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define CO_META_MAX (64 * 1024)

typedef enum { CO_KIND_TASK = 0, CO_KIND_SWARM = 1 } co_kind;

typedef enum {
	CO_STATUS_AVAILABLE = 0,
	CO_STATUS_CLAIMED,
	CO_STATUS_BLOCKED,
	CO_STATUS_COMPLETE,
	CO_STATUS_FAILED,
} co_status;

typedef struct co_strv {
	char **v;
	size_t n;
} co_strv;

typedef struct co_record {
	co_kind kind;
	char *id;
	int64_t rev;
	int64_t updated_at;
	char *metadata; /* canonical JSON object text */

	/* task */
	char *type; /* may be NULL: printed as "" */
	co_status status;
	char *owner;		  /* NULL when not claimed */
	int64_t claim_expires_at; /* 0 = no TTL */
	co_strv blocked_by;
	int64_t created_at;

	/* swarm */
	co_strv capabilities;
	int64_t registered_at;
} co_record;

/* A growable list of records; owns them. */
typedef struct co_record_list {
	co_record **items;
	size_t n, cap;
} co_record_list;

/* Names used in JSON and on the command line. */
const char *co_kind_name(co_kind kind);	 /* "task", "swarm" */
const char *co_kind_dir(co_kind kind);	 /* "tasks", "swarms" */
const char *co_status_name(co_status s); /* "available", ... */
/* Parse a status name; CO_EINVAL naming the allowed values. */
int co_status_parse(co_status *out, const char *name);

/*
 * New empty record of `kind` with `id` (validated: CO_EINVAL), rev 0,
 * metadata "{}", status available.  *out owned by the caller.
 */
int co_record_new(co_record **out, co_kind kind, const char *id);

/* Deep copy; CO_ENOMEM. */
int co_record_dup(co_record **out, const co_record *r);

/* Free a record; NULL is fine. */
void co_record_free(co_record *r);

/*
 * Parse a record from JSON text of `len` bytes.  Validates everything
 * (kind, id, status, rev >= 1 unless allow_rev0, metadata an object of at
 * most 64 KiB, timestamps) and returns CO_EINVAL naming the field on any
 * problem.  Unknown keys are refused too: a record is a contract.
 */
int co_record_from_json(co_record **out, const char *json, size_t len);

/*
 * Canonical JSON of `r`: compact (pretty = 0) or pretty with a final newline
 * (pretty = 1).  Returns a malloc'd string owned by the caller, NULL on OOM.
 */
char *co_record_to_json(const co_record *r, int pretty);

/*
 * Set metadata from JSON text; it must be an object no larger than 64 KiB.
 * Stores its canonical form.  CO_EINVAL / CO_ETOOBIG.
 */
int co_record_set_metadata(co_record *r, const char *json);

/*
 * Apply the claim-expiry rule at time `now`: a claimed task whose
 * claim_expires_at is set and <= now becomes available, owner NULL,
 * claim_expires_at 0.  `rev` and `updated_at` are left alone, so that
 * expiry is never a divergence.  Returns 1 if it changed r, 0 if not.
 */
int co_record_normalize(co_record *r, int64_t now);

/* 1 if a and b have the same canonical form, 0 otherwise. */
int co_record_equal(const co_record *a, const co_record *b);

/*
 * Names of the top-level fields whose values differ between a and b, as a
 * malloc'd comma-separated string ("owner,status"); "" when equal.  Caller
 * frees.  NULL on OOM.
 */
char *co_record_diff(const co_record *a, const co_record *b);

/*
 * The range of seconds the canonical form writes with a four-digit year
 * and reads back: 1000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.  0 is
 * written as null.
 */
#define CO_TIME_MIN (-30610224000LL)
#define CO_TIME_MAX 253402300799LL

/*
 * Every timestamp of r is in CO_TIME_MIN..CO_TIME_MAX seconds: anything
 * else would be written in a form no reader accepts (a time in
 * milliseconds passed as seconds lands near the year 55,000).  0, or
 * CO_EINVAL naming the record and the field.  Stores call it before every
 * write.
 */
int co_record_check_times(const co_record *r);

/* Format Unix seconds as RFC 3339 UTC into buf (at least 21 bytes). */
void co_time_format(char *buf, size_t len, int64_t t);
/* Parse RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ" (fraction allowed, ignored).
 * CO_EINVAL for anything else, and for a time outside CO_TIME_MIN..
 * CO_TIME_MAX (also one that only gets there by normalisation, as
 * "9999-12-31T23:59:60Z"): what it accepts, co_time_format writes back. */
int co_time_parse(int64_t *out, const char *s);
/* Current time in Unix seconds.  $CUTOVER_CLOCK_OFFSET (seconds) is added:
 * tests and drills use it to move time forward without sleeping. */
int64_t co_time_now(void);

/* String vector helpers; all own their strings. */
int co_strv_push(co_strv *v, const char *s);
int co_strv_split(co_strv *out, const char *csv); /* "a,b" -> {a,b}; "" -> {} */
void co_strv_clear(co_strv *v);

/* Record lists. */
int co_record_list_push(co_record_list *l, co_record *r); /* takes r */
void co_record_list_clear(co_record_list *l);
void co_record_list_sort(co_record_list *l); /* by kind, then id */

#endif
