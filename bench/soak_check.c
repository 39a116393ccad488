/*
 * soak_check.c - the soak's check of what the workers were told
 * (bench_soak.c): every acknowledged write read back from both stores, and
 * per task no claim won while another worker held an unexpired one.
 */
#include "soak.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ev_cmp(const void *a, const void *b)
{
	const ev *x = a, *y = b;

	if (x->task != y->task)
		return x->task < y->task ? -1 : 1;
	if (x->task < 0 && x->worker != y->worker)
		return x->worker < y->worker ? -1 : 1;
	return x->rev < y->rev ? -1 : x->rev > y->rev;
}

/* Rev of `id` in store s (-1 absent or unreadable), its owner into own. */
static int64_t rev_in(co_store *s, const char *id, char *own, size_t len)
{
	co_record *r = NULL;
	int64_t rev = -1;
	int i;

	/* A read may meet a member just lost; a few tries. */
	for (i = 0; i < 20; i++) {
		int rc = co_store_get(&r, s, CO_KIND_TASK, id);

		if (rc == 0 || rc == CO_ENOTFOUND)
			break;
		backoff();
	}
	if (r) {
		rev = r->rev;
		if (own)
			snprintf(own, len, "%s",
				 r->owner && r->claim_expires_at > co_time_now()
				     ? r->owner
				     : "");
	}
	co_record_free(r);
	return rev;
}

/* Per task, by rev: no claim while another worker held an unexpired one, no
 * rev acknowledged twice, releases by the holder; every acknowledged rev in
 * both stores. */
void check(verdicts *v, co_store *g, co_store *e)
{
	ev *all = NULL;
	size_t n = 0, k, i;

	for (i = 0; i < (size_t)n_workers; i++) {
		ev *a = realloc(all, (n + ws[i].n + 1) * sizeof(ev));

		if (a == NULL)
			break;
		all = a;
		memcpy(all + n, ws[i].evs, ws[i].n * sizeof(ev));
		n += ws[i].n;
	}
	qsort(all, n, sizeof(ev), ev_cmp);
	v->acked = n;
	for (k = 0; k < n;) {
		size_t j = k;
		int holder = -1, gave_up = -1;
		int64_t last = 0, expires = 0, gr, er;
		char id[64], own[64];

		if (all[k].task < 0) { /* a create: one event, its ID never repeats */
			snprintf(id, sizeof(id), "n-%d-%d", all[k].worker,
				 -1 - all[k].task);
			gr = rev_in(g, id, NULL, 0);
			er = rev_in(e, id, NULL, 0);
			v->checked++;
			if (gr < all[k].rev || er < all[k].rev) {
				printf("%s: acknowledged create lost (git %lld, etcd "
				       "%lld)\n",
				       id, (long long)gr, (long long)er);
				v->lost++;
			}
			k++;
			continue;
		}
		for (; j < n && all[j].task == all[k].task; j++) {
			const ev *x = &all[j];

			if (x->type == 'u') { /* a release left undecided */
				holder = -2;
				gave_up = x->worker;
				continue;
			}
			if (x->rev == last) {
				printf("s-%d: rev %lld acknowledged twice\n", x->task,
				       (long long)last);
				v->doubles++;
			} else if (x->type == 'c' && holder >= 0 && holder != x->worker &&
				   x->at < expires) {
				printf(
				    "s-%d: w-%d won at rev %lld while w-%d held it until "
				    "%lld\n",
				    x->task, x->worker, (long long)x->rev, holder,
				    (long long)expires);
				v->doubles++;
			} else if (x->type != 'c' && holder != x->worker &&
				   holder != -2) {
				printf("s-%d: %c at rev %lld by w-%d, who does not hold "
				       "it\n",
				       x->task, x->type, (long long)x->rev, x->worker);
				v->doubles++;
			}
			holder = x->type == 'r' ? -1 : x->worker;
			if (x->type != 'r')
				expires = x->expires;
			last = x->rev;
		}
		snprintf(id, sizeof(id), "s-%d", all[k].task);
		gr = rev_in(g, id, NULL, 0);
		er = rev_in(e, id, own, sizeof(own));
		v->checked += j - k;
		if (gr < last || er < last) {
			printf("%s: acknowledged rev %lld lost (git %lld, etcd %lld)\n",
			       id, (long long)last, (long long)gr, (long long)er);
			v->lost++;
		}
		/* Still held only by a worker whose claim was left undecided. */
		if (own[0]) {
			int wi = -1;

			if (sscanf(own, "w-%d", &wi) == 1 && wi >= 0 && wi < n_workers &&
			    (ws[wi].stuck[all[k].task] || wi == holder || wi == gave_up))
				v->stuck_ok++; /* undecided, or gave up a renew/release */
			else {
				printf(
				    "%s: ends claimed by %s, who was never told it won\n",
				    id, own);
				v->stray++;
			}
		}
		k = j;
	}
	free(all);
}
