/*
 * etcd_cache.c - the etcd store's record cache: what each task and swarm
 * key held when etcd last told us (value and mod_revision), so that a
 * mutation can send its one txn at once instead of reading first (issue
 * 15, store_cas.c's cas_loop).
 *
 * It is fed by a watch on the store's prefix, started from the revision of
 * a range (up to RANGE_MAX records), and by every answer of our own: reads,
 * successful txns (their header revision is the key's new mod_revision)
 * and failed ones (their failure branch reads the key back).  A newer
 * mod_revision always wins, so a late answer never overwrites a fresher
 * one.  When the watch ends for good (a compacted revision, no endpoint
 * left) the cache starts over: a fresh range, a watch from its revision.
 * At most `cap` entries, the least recently used go first.
 *
 * Consistency: an entry is a guess, never an answer.  store_cas.c uses it only
 * as the expected mod_revision of a compare-and-swap, which etcd decides;
 * a stale guess fails the compare and the txn's failure branch returns the
 * key as it is, from which the decision is made again.  A refusal or a
 * "nothing to do" reached from a guess is checked by a real read first.
 * While the watch is not known live (being set up, resynced, or suspect of
 * a stall, etcd_watch.c) no entry is handed out.
 */
#include "etcd_private.h"
#include "etcd_store.h"
#include "etcd_store_internal.h"

#include "../core/error.h"
#include "../core/record.h"

#include <cjson/cJSON.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * The most keys a fresh range reads: it is one answer held in memory and
 * under a short bound (RANGE_BOUND_MS, so that freeing the store never
 * waits long for it); the rest fills from the watch and our own answers.
 */
#define RANGE_MAX 2000
#define RANGE_BOUND_MS 2000

struct centry {
	co_kind kind;
	char *id;
	co_record *r;
	int64_t mod;
	struct centry *hnext;	    /* bucket chain */
	struct centry *prev, *next; /* LRU list, most recent first */
};

struct co_etcd__cache {
	struct etcd *e;
	size_t cap, n, nbuckets;
	struct centry **buckets;
	struct centry *head, *tail;

	pthread_mutex_t lock; /* guards everything below and the entries */
	pthread_cond_t cond;
	pthread_t thread;
	int started, stop, hold, pause;
	void *watch; /* the watch being followed, NULL between watches */
	int64_t rev; /* the last revision seen (range or event) */
	uint64_t hits, misses, resyncs;
};

/* ---- the table ---- */

static size_t bucket_of(const struct co_etcd__cache *c, co_kind kind, const char *id)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return (size_t)(h & (c->nbuckets - 1));
}

static struct centry *find(struct co_etcd__cache *c, co_kind kind, const char *id)
{
	struct centry *x = c->buckets[bucket_of(c, kind, id)];

	while (x && (x->kind != kind || strcmp(x->id, id) != 0))
		x = x->hnext;
	return x;
}

static void lru_unlink(struct co_etcd__cache *c, struct centry *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		c->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		c->tail = x->prev;
	x->prev = x->next = NULL;
}

static void lru_front(struct co_etcd__cache *c, struct centry *x)
{
	x->next = c->head;
	if (c->head)
		c->head->prev = x;
	c->head = x;
	if (c->tail == NULL)
		c->tail = x;
}

static void drop(struct co_etcd__cache *c, struct centry *x)
{
	struct centry **p = &c->buckets[bucket_of(c, x->kind, x->id)];

	while (*p != x)
		p = &(*p)->hnext;
	*p = x->hnext;
	lru_unlink(c, x);
	c->n--;
	co_record_free(x->r);
	free(x->id);
	free(x);
}

static void clear(struct co_etcd__cache *c)
{
	while (c->head)
		drop(c, c->head);
}

/* Insert or update under the lock; out of memory only loses a guess. */
static void note_locked(struct co_etcd__cache *c, co_kind kind, const char *id,
			const co_record *r, int64_t mod)
{
	struct centry *x = find(c, kind, id);
	co_record *copy = NULL;
	size_t b;

	if (x && x->mod >= mod)
		return;
	if (r == NULL) {
		if (x)
			drop(c, x);
		return;
	}
	if (co_record_dup(&copy, r) < 0) {
		co_error_clear();
		if (x)
			drop(c, x);
		return;
	}
	if (x) {
		co_record_free(x->r);
		x->r = copy;
		x->mod = mod;
		lru_unlink(c, x);
		lru_front(c, x);
		return;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL || (x->id = strdup(id)) == NULL) {
		free(x);
		co_record_free(copy);
		return;
	}
	x->kind = kind;
	x->r = copy;
	x->mod = mod;
	b = bucket_of(c, kind, id);
	x->hnext = c->buckets[b];
	c->buckets[b] = x;
	lru_front(c, x);
	if (++c->n > c->cap)
		drop(c, c->tail);
}

void co_etcd__cache_note(struct co_etcd__cache *c, co_kind kind, const char *id,
			 const co_record *r, int64_t mod)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	note_locked(c, kind, id, r, mod);
	pthread_mutex_unlock(&c->lock);
}

/* ---- the thread that follows etcd ---- */

/* Wait on the cache's condition at most ms (the lock held). */
static void wait_ms(struct co_etcd__cache *c, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

/*
 * A fresh range: up to cap keys under the prefix at one revision replace
 * every entry, and the watch will start after that revision.
 */
static int resync(struct co_etcd__cache *c)
{
	struct etcd *e = c->e;
	cJSON *req = cJSON_CreateObject(), *resp = NULL, *kv;
	int64_t rev;
	int error;

	if (req == NULL || co_etcd__json_add_prefix_range(req, e->prefix) < 0 ||
	    co_etcd__json_add_i64(req, "limit", (int64_t)(c->cap < RANGE_MAX ? c->cap
									   : RANGE_MAX)) < 0) {
		error = co_etcd__oom();
		goto done;
	}
	if ((error = co_etcd__call(&resp, e, "/v3/kv/range", req)) < 0)
		goto done;
	rev = co_etcd__json_i64(cJSON_GetObjectItemCaseSensitive(resp, "header"),
				"revision");
	pthread_mutex_lock(&c->lock);
	clear(c);
	cJSON_ArrayForEach(kv, cJSON_GetObjectItemCaseSensitive(resp, "kvs"))
	{
		size_t len = 0;
		char *key = co_b64_decode(co_etcd__json_str(kv, "key"), &len);
		co_record *r = NULL;
		const char *id;
		co_kind kind;

		if (key && co_etcd__key_parse(e, key, &kind, &id) == 0 &&
		    co_etcd__record_from_kv(&r, e, kv, key) == 0 && r->kind == kind &&
		    strcmp(r->id, id) == 0)
			note_locked(c, kind, id, r, co_etcd__json_i64(kv, "mod_revision"));
		co_record_free(r);
		free(key);
		co_error_clear();
	}
	c->rev = rev;
	c->resyncs++;
	pthread_mutex_unlock(&c->lock);
done:
	cJSON_Delete(req);
	cJSON_Delete(resp);
	return error;
}

static void set_watch(struct co_etcd__cache *c, void *w)
{
	void *old;

	pthread_mutex_lock(&c->lock);
	old = c->watch;
	c->watch = w;
	pthread_mutex_unlock(&c->lock);
	co_etcd__watch_close(old);
}

/*
 * Follow the watch from the revision after c->rev until it ends for good
 * (compaction, no endpoint left) or the cache stops.
 */
static void follow(struct co_etcd__cache *c)
{
	void *w = NULL;
	co_event *ev;
	int64_t from;

	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (c->pause && !c->stop) {
			pthread_mutex_unlock(&c->lock);
			set_watch(c, NULL);
			w = NULL;
			pthread_mutex_lock(&c->lock);
			while (c->pause && !c->stop)
				wait_ms(c, 1000);
		}
		from = c->rev + 1;
		if (c->stop) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		pthread_mutex_unlock(&c->lock);
		if (w == NULL) {
			/* not waiting for "created": a stop must not wait */
			if (co_etcd__watch_open_at(&w, c->e, "", from, 0) < 0) {
				co_error_clear();
				break;
			}
			set_watch(c, w);
		}
		if (co_etcd__watch_next(&ev, w, 100) < 0) {
			co_error_clear();
			break; /* ended for good: start over with a range */
		}
		if (ev == NULL)
			continue;
		pthread_mutex_lock(&c->lock);
		if (!c->hold)
			note_locked(c, ev->kind, ev->id,
				    ev->type == CO_EVENT_PUT ? ev->record : NULL,
				    ev->mod_revision);
		if (ev->mod_revision > c->rev)
			c->rev = ev->mod_revision;
		pthread_mutex_unlock(&c->lock);
		co_event_free(ev);
	}
	set_watch(c, NULL);
}

static void *cache_main(void *arg)
{
	struct co_etcd__cache *c = arg;
	int backoff = 50, stop;

	co_etcd__uncounted(1); /* the cache's own requests are no op's round trips */
	co_store_call_timeout(c->e->request_timeout_ms < RANGE_BOUND_MS
				  ? c->e->request_timeout_ms
				  : RANGE_BOUND_MS);
	for (;;) {
		pthread_mutex_lock(&c->lock);
		stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		if (resync(c) < 0) {
			co_error_clear();
			pthread_mutex_lock(&c->lock);
			if (!c->stop)
				wait_ms(c, backoff);
			pthread_mutex_unlock(&c->lock);
			backoff = backoff < 1000 ? backoff * 2 : 2000;
			continue;
		}
		backoff = 50;
		follow(c);
		pthread_mutex_lock(&c->lock);
		if (!c->stop)
			wait_ms(c, 50); /* a watch that will not open: not in a spin */
		pthread_mutex_unlock(&c->lock);
	}
	return NULL;
}

/* ---- the cache ---- */

int co_etcd__cache_new(struct co_etcd__cache **out, struct etcd *e, size_t cap)
{
	struct co_etcd__cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return co_etcd__oom();
	c->e = e;
	c->cap = cap ? cap : 1;
	for (c->nbuckets = 64; c->nbuckets < c->cap && c->nbuckets < (1u << 20);)
		c->nbuckets *= 2;
	if ((c->buckets = calloc(c->nbuckets, sizeof(*c->buckets))) == NULL) {
		free(c);
		return co_etcd__oom();
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	*out = c;
	return 0;
}

void co_etcd__cache_free(struct co_etcd__cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->started)
		pthread_join(c->thread, NULL);
	clear(c);
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Start the thread that follows etcd, once.  The first write starts it
 * (or co_etcd_store_cache_start()): a store opened for one read never
 * follows etcd. */
static void start_locked(struct co_etcd__cache *c)
{
	if (!c->started && !c->stop &&
	    pthread_create(&c->thread, NULL, cache_main, c) == 0)
		c->started = 1;
}

void co_etcd__cache_start(struct co_etcd__cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	start_locked(c);
	pthread_mutex_unlock(&c->lock);
}

int co_etcd__cache_get(co_record **out, co_version *ver, struct co_etcd__cache *c,
		       co_kind kind, const char *id)
{
	struct centry *x;
	int hit = 0;

	pthread_mutex_lock(&c->lock);
	start_locked(c);
	if (c->watch && !c->pause && co_etcd__watch_live(c->watch) &&
	    (x = find(c, kind, id)) != NULL && co_record_dup(out, x->r) == 0) {
		snprintf(ver->v, sizeof(ver->v), "%lld", (long long)x->mod);
		lru_unlink(c, x);
		lru_front(c, x);
		hit = 1;
	}
	if (hit)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->lock);
	co_error_clear();
	return hit;
}

void co_etcd__cache_stats(struct co_etcd_cache_stats *out, struct co_etcd__cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	out->enabled = 1;
	out->live = c->watch && !c->pause && co_etcd__watch_live(c->watch);
	out->entries = c->n;
	out->capacity = c->cap;
	out->hits = c->hits;
	out->misses = c->misses;
	out->resyncs = c->resyncs;
	out->revision = c->rev;
	pthread_mutex_unlock(&c->lock);
}

/* ---- test hooks (etcd_store_internal.h) ---- */

static struct co_etcd__cache *cache_of(co_store *s)
{
	struct etcd *e = co_etcd__from_store(s);

	return e ? e->cache : NULL;
}

void co_etcd__cache_hold(co_store *s, int on)
{
	struct co_etcd__cache *c = cache_of(s);

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->hold = on;
	pthread_mutex_unlock(&c->lock);
}

void co_etcd__cache_pause(co_store *s, int on)
{
	struct co_etcd__cache *c = cache_of(s);

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->pause = on;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

int64_t co_etcd__cache_peek(co_store *s, co_kind kind, const char *id, char **owner)
{
	struct co_etcd__cache *c = cache_of(s);
	struct centry *x;
	int64_t mod = 0;

	if (owner)
		*owner = NULL;
	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	if ((x = find(c, kind, id)) != NULL) {
		mod = x->mod;
		if (owner)
			*owner = strdup(x->r->owner ? x->r->owner : "");
	}
	pthread_mutex_unlock(&c->lock);
	return mod;
}
