/*
 * examine.h - private to the reconcile module: the look at both stores
 * (examine.c) that one run (reconcile.c) decides from, and the small
 * helpers the two files share.
 */
#ifndef CO_RECONCILE_EXAMINE_H
#define CO_RECONCILE_EXAMINE_H

#include "reconcile.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Snapshot both stores, diff, and re-check each divergent ID until it
 * settles (or max_rechecks runs out): fills res's counts (run.total,
 * run.equal, the owed and class counts, in_flight, unsettled, same_blob,
 * read_back), its divergences and owed list, sorted.  res is the caller's;
 * on an error (prefixed "reconcile: ") what it holds is partial.
 */
int co_reconcile__examine(co_reconcile_result *res, const co_reconcile_opts *o);

/* Tell o's progress hook, if any, of `phase` at done of total. */
void co_reconcile__progress(const co_reconcile_opts *o, const char *phase, size_t done,
			    size_t total);

/* Read one record and the hash of its version; absent gives 0, *out NULL
 * (else the caller's) and *ver 0.  Errors: the store's. */
int co_reconcile__read_one(co_record **out, uint64_t *ver, co_store *s, co_kind kind,
			   const char *id);

/* Put "WHAT: " in front of the last error message, keeping its code;
 * returns code. */
int co_reconcile__prefix_error(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
