/*
 * mig_set.c - records paired with the version they were read at.
 *
 * Backfill compares two snapshots by ID and writes with a compare-and-swap
 * on what it read, so it keeps each record next to its version (a blob id in
 * git, a mod_revision in etcd) in a sorted array that binary search walks.
 * A sorted array beats a hash table here: both snapshots are sorted once and
 * the writes go out in ID order, which is also the order of the checkpoint.
 */
#include "migrate_internal.h"

#include "../src/core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int co_mig__set_push(co_mig_set *s, co_record *r, const char *ver)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		co_mig_rec *v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			co_record_free(r);
			return co_error_set(CO_ENOMEM, "out of memory");
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n].r = r;
	snprintf(s->v[s->n].ver, sizeof(s->v[s->n].ver), "%s", ver ? ver : "");
	s->n++;
	return 0;
}

void co_mig__set_clear(co_mig_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		co_record_free(s->v[i].r);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

int co_mig__cmp(co_kind ka, const char *ia, co_kind kb, const char *ib)
{
	if (ka != kb)
		return ka < kb ? -1 : 1;
	return strcmp(ia, ib);
}

static int rec_cmp(const void *a, const void *b)
{
	const co_mig_rec *x = a, *y = b;

	return co_mig__cmp(x->r->kind, x->r->id, y->r->kind, y->r->id);
}

void co_mig__set_sort(co_mig_set *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), rec_cmp);
}

co_mig_rec *co_mig__set_find(const co_mig_set *s, co_kind kind, const char *id)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = co_mig__cmp(s->v[mid].r->kind, s->v[mid].r->id, kind, id);

		if (c == 0)
			return &s->v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
