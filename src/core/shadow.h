/*
 * shadow.h - shadow read quality: sampling, ignore rules, counters (issue 14.5).
 *
 * In shadow mode every read is served by git and, for comparison, read
 * from etcd too; a difference is recorded in the audit log's mismatches
 * (audit.h), both values kept (redacted, redact.h).  cutover.yaml
 * `shadow:` tunes that:
 *
 *   shadow:
 *     sample: 100                  percent of shadow reads compared, every op
 *     sample_by_op: { task_list: 10 }   per read op, wins over `sample`
 *     ignore: ["$.updated_at", metadata.last_seen, etag]
 *
 * Sampling.  A read op's k-th shadow read in a router (k from 0, one
 * counter per op per router) is compared iff (k mod 100) * p mod 100 < p,
 * p the op's percent.  So 0 compares none (etcd is never read), 100 every
 * one, and over N reads exactly 1 + floor((N - 1) * p / 100) are compared
 * (p > 0), spread evenly: at 50 every other one, the first always.  A
 * read that is not compared is served by git alone, without touching
 * etcd.  Deterministic (tests count exactly) and one atomic add per read.
 * Only the read ops are sampled: task_get, task_list, swarm_get,
 * swarm_list (writes are never shadow-compared).
 *
 * Ignore rules.  Entries in the syntax of `redact:` (redact.h), matched by
 * the same code: a dotted path from the record's root ("$.updated_at" for a
 * top-level field, "metadata.build.host"; "*" matches any key; arrays are
 * looked through) or a bare key-name pattern (a key anywhere inside
 * metadata whose name contains it).  The fields they match are removed
 * from both versions before comparing, so a difference only there is not a
 * mismatch.  A real mismatch is still recorded whole (both values,
 * ignored fields included).
 *
 * Thread safety: a co_shadow_cfg is immutable once loaded; share it.
 */
#ifndef CO_SHADOW_H
#define CO_SHADOW_H

#include "flags/flags.h"
#include "redact.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct co_shadow_cfg {
	int sample;		     /* shadow.sample: percent 0..100 (100) */
	int sample_op[CO_OP__COUNT]; /* shadow.sample_by_op; -1: `sample` */
	char **ignore;		     /* shadow.ignore, as written (owned) */
	size_t n_ignore;
	co_redact *ignore_rd; /* compiled ignore; NULL when there is none */
} co_shadow_cfg;

/* Defaults: sample 100 for every op, nothing ignored.  Never fails. */
void co_shadow_cfg_init(co_shadow_cfg *c);

/* Frees what `c` owns and sets it back to the defaults. */
void co_shadow_cfg_clear(co_shadow_cfg *c);

/*
 * Replace c's ignore rules by `n` entries (copied).  CO_EINVAL naming the
 * bad entry (messages start "shadow.ignore: "), "@" words included (no
 * defaults here); CO_ENOMEM.  On error `c` is unchanged.
 */
int co_shadow_cfg_set_ignore(co_shadow_cfg *c, const char *const *entries, size_t n);

/* 1 for the read ops shadow mode compares (task_get, task_list, ...). */
int co_shadow_is_read(co_op op);

/* The ops co_shadow_is_read accepts, for messages: "task_get, ...". */
#define CO_SHADOW_READ_OPS "task_get, task_list, swarm_get, swarm_list"

/* The percent of op's shadow reads compared (NULL cfg: 100). */
int co_shadow_percent(const co_shadow_cfg *c, co_op op);

/* The sampling rule above: 1 if the k-th read is compared at `percent`. */
int co_shadow_sampled(uint64_t k, int percent);

/*
 * Whether two versions of a record (canonical JSON, either may be NULL
 * for an absent record) are equal once c's ignored fields are removed from
 * both: 1 equal, 0 not.  Two absent records are equal, one absent is not.
 * Text that is not a JSON object is compared as text.  Never fails.
 */
int co_shadow_equal(const co_shadow_cfg *c, const char *git_json, const char *etcd_json);

/*
 * How many of reads[op] shadow reads (indexed by co_op) were compared at
 * c's percents, summed over the read ops: exact for one router (the rule
 * above), an estimate within one per op and router for several.  The
 * go/no-go gate divides mismatches by this, not by every shadow read.
 */
int64_t co_shadow_compared(const co_shadow_cfg *c, const int64_t reads[CO_OP__COUNT]);

/*
 * For `cutover status`: {"sample": {"task_get": 100, ...}, "ignore": [...]}
 * (NULL on no memory; the caller owns it), and the same as two text lines.
 */
typedef struct cJSON cJSON;
cJSON *co_shadow_status_json(const co_shadow_cfg *c);
void co_shadow_status_print(FILE *out, const co_shadow_cfg *c);

/* A router's shadow counters since it opened (co_router_shadow_stats). */
typedef struct co_shadow_stats {
	uint64_t reads[CO_OP__COUNT];	   /* compared with etcd */
	uint64_t skipped[CO_OP__COUNT];	   /* sampled out: git alone */
	uint64_t mismatches[CO_OP__COUNT]; /* compared reads that found a difference */
	uint64_t errors[CO_OP__COUNT];	   /* compared reads etcd failed to answer */
} co_shadow_stats;

#endif
