/*
 * bench_seed.h - a bare repo seeded with N task records in one commit, for
 * the benchmarks that need a large git store (bench_migrate, bench_git_mem).
 *
 * Header-only (static inline) so that each bench_*.c stays one program.
 */
#ifndef CO_BENCH_SEED_H
#define CO_BENCH_SEED_H

#include "core/record.h"
#include "migrate/migrate_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* Task <prefix><i, 7 digits> as the seed writes it (rev 1, a fixed title
 * and timestamps); 0, or -1 (error set, *out NULL). */
static inline int co_bench_seed_record(co_record **out, const char *prefix, size_t i)
{
	char id[32];

	*out = NULL;
	snprintf(id, sizeof(id), "%s%07zu", prefix, i);
	if (co_record_new(out, CO_KIND_TASK, id) < 0 ||
	    co_record_set_metadata(*out, "{\"title\":\"benchmark task\"}") < 0) {
		co_record_free(*out);
		*out = NULL;
		return -1;
	}
	(*out)->rev = 1;
	(*out)->created_at = (*out)->updated_at = 1790000000;
	return 0;
}

/*
 * Write tasks <prefix>0000000 .. <prefix>(n-1) (rev 1, a fixed title and
 * timestamps) to branch main of the bare repo at `repo`, in one commit.
 * 0, or -1 with the store's error set (or out of memory).
 */
static inline int co_bench_seed_git(const char *repo, size_t n, const char *prefix)
{
	co_git_batch *g = NULL;
	co_git_batch_item *items = calloc(n, sizeof(*items));
	co_record **recs = calloc(n, sizeof(*recs));
	size_t i, w = 0;
	int error = -1;

	if (!items || !recs)
		goto done;
	for (i = 0; i < n; i++) {
		if (co_bench_seed_record(&recs[i], prefix, i) < 0)
			goto done;
		items[i].r = recs[i];
	}
	if (co_git_batch_open(&g, repo, "main") < 0 ||
	    co_git_batch_write(&w, g, items, n, "bench-seed") < 0 || w != n)
		goto done;
	error = 0;
done:
	co_git_batch_free(g);
	for (i = 0; recs && i < n; i++)
		co_record_free(recs[i]);
	free(recs);
	free(items);
	return error;
}

#endif
