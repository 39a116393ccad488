/*
 * migrate.c - backfill both ways, the legacy-commit follower, and imports.
 *
 * Backfill is "snapshot both sides, diff by ID, write what is missing or
 * older".  Reading everything first costs memory (about 1 KiB per record)
 * but makes the plan exact, lets --dry-run print it, and makes a rerun
 * free: when the plan is empty no write is sent at all, so the etcd
 * revision does not move and no git commit is made.  Writes go out in ID
 * order in batches, each a compare-and-swap on the version read, and the
 * last ID of the last batch done is checkpointed together with the source's
 * position (git head or etcd revision).  A rerun with the source unchanged
 * skips what the checkpoint covers; with the source moved it compares
 * everything again, which is always correct, only slower.  A finished run
 * deletes its checkpoint.
 *
 * A batch that loses its compare (somebody wrote one of its keys since the
 * snapshot) is redone one record at a time through co_store_put_if_newer(),
 * which re-reads: backfill never moves a record backwards.  Tasks claimed
 * with a TTL go through the etcd store too, because the store attaches the
 * claim's lease.
 *
 * The follower and the rev bump: a legacy client rewrites a task file
 * (typically a claim: owner and status changed, rev untouched), so the
 * mirrored record gets rev = max(git rev, etcd rev) + 1, is written to etcd,
 * and written back to git with that rev as a cutover commit, guarded by
 * "the file still holds the legacy blob".  Both stores then hold the same
 * record at a rev past both, and reconcile sees them equal.  If the
 * write-back loses (the legacy client committed again), the next legacy
 * commit is mirrored in turn.
 *
 * Not here: printing (callbacks), argument parsing (src/cli/cmd_migrate.c),
 * the board's syntax (board.c).
 */
#include "migrate.h"

#include "migrate_internal.h"

#include "../src/core/error.h"
#include "../src/core/state.h"
#include "../src/store/store.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Checkpoint at most this often (each one is a synced SQLite write). */
#define CKPT_EVERY 1024

static void mlog(const co_migrate_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void mlog(const co_migrate_opts *o, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!o->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	o->log(o->ud, line);
}

static void progress(const co_migrate_opts *o, const char *phase, size_t done,
		     size_t total)
{
	if (o->progress)
		o->progress(o->ud, phase, done, total);
}

static int list_git(co_mig_set *out, size_t *bad, co_git_batch *g)
{
	size_t b1 = 0, b2 = 0;
	int error;

	if ((error = co_git_batch_list(out, &b1, g, CO_KIND_TASK)) < 0 ||
	    (error = co_git_batch_list(out, &b2, g, CO_KIND_SWARM)) < 0)
		return error;
	*bad = b1 + b2;
	co_mig__set_sort(out);
	return 0;
}

static int open_etcd_store(co_store **s, const co_migrate_opts *o);

struct scan_into {
	co_mig_set *out;
	const char *prefix;
};

static int scan_into_set(void *ctx, const co_scan_item *it)
{
	struct scan_into *si = ctx;
	co_record *r = NULL;

	if (co_record_from_json(&r, it->raw ? it->raw : "", it->len) < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", co_error_last());
		return co_error_set(CO_EINVAL, "etcd key %s%s/%s: %s", si->prefix,
				    co_kind_dir(it->kind), it->id, why);
	}
	return co_mig__set_push(si->out, r, it->version ? it->version : "");
}

/*
 * Every etcd record, with its mod_revision, through the store's bulk scan
 * (gRPC, as reconciliation reads it: the gateway's JSON and base64 cost
 * most of a backfill's rerun).  *rev (may be NULL) is the revision before
 * the scan: the checkpoint's marker, and a write during the scan only
 * makes the next run compare everything again.
 */
static int list_etcd(co_mig_set *out, int64_t *rev, co_etcd_batch *e, co_store **es,
		     const co_migrate_opts *o)
{
	struct scan_into si = {out, o->etcd->prefix ? o->etcd->prefix : "/"};
	int error;

	if ((rev && (error = co_etcd_batch_revision(rev, e)) < 0) ||
	    (error = open_etcd_store(es, o)) < 0 ||
	    (error = co_store_scan(*es, scan_into_set, &si)) < 0)
		return error;
	co_mig__set_sort(out);
	return 0;
}

/* 1 if a and b are the same record once rev and timestamps are ignored. */
static int same_content(const co_record *a, const co_record *b)
{
	co_record *x = NULL, *y = NULL;
	int eq = 0;

	if (co_record_dup(&x, a) < 0 || co_record_dup(&y, b) < 0)
		goto done;
	x->rev = y->rev = 0;
	x->updated_at = y->updated_at = 0;
	x->created_at = y->created_at = 0;
	x->registered_at = y->registered_at = 0;
	eq = co_record_equal(x, y);
done:
	co_record_free(x);
	co_record_free(y);
	return eq;
}

/* "task/P0.1" */
static void rec_key(char *buf, size_t len, const co_record *r)
{
	snprintf(buf, len, "%s/%s", co_kind_name(r->kind), r->id);
}

static int key_after(const co_record *r, const char *ckpt_key)
{
	const char *slash = strchr(ckpt_key, '/');
	co_kind k;

	if (!slash)
		return 1;
	k = strncmp(ckpt_key, "swarm/", 6) == 0 ? CO_KIND_SWARM : CO_KIND_TASK;
	return co_mig__cmp(r->kind, r->id, k, slash + 1) > 0;
}

static int open_etcd_store(co_store **s, const co_migrate_opts *o)
{
	if (*s)
		return 0;
	return co_etcd_store_open(s, o->etcd);
}

typedef struct plan {
	const co_mig_rec **src; /* what to write */
	const co_mig_rec **tgt; /* what the target held (NULL = absent) */
	size_t n;
} plan;

static int ckpt_set(co_state *st, const char *name, const char *marker,
		    const co_record *r)
{
	char key[300], val[400];

	if (!st)
		return 0;
	rec_key(key, sizeof(key), r);
	snprintf(val, sizeof(val), "%s %s", marker, key);
	return co_state_checkpoint_set(st, name, val);
}

/* What a retired batch moves: the counts, and every CKPT_EVERY records the
 * checkpoint (everything up to the batch's last record is written). */
typedef struct etcd_progress {
	co_migrate_stats *stats;
	co_state *st;
	const char *ckname, *marker;
	const co_migrate_opts *o;
	size_t since_ckpt, done, total;
} etcd_progress;

static int on_retired(void *ud, const co_record *last, size_t n, size_t written)
{
	etcd_progress *ep = ud;

	ep->stats->written += written;
	ep->stats->batches++;
	ep->since_ckpt += n;
	ep->done += n;
	if (ep->since_ckpt >= CKPT_EVERY) {
		int error = ckpt_set(ep->st, ep->ckname, ep->marker, last);

		if (error < 0)
			return error;
		ep->since_ckpt = 0;
	}
	progress(ep->o, "write", ep->done, ep->total);
	return 0;
}

/*
 * The plan's records in batches of at most CO_ETCD_BATCH_MAX (and a byte
 * budget), CO_MIG_WRITERS of them in flight (etcd_writers.c).  A live claim
 * with a TTL needs its lease, which the store attaches: the batches before
 * it are written first, then it goes through the store on its own.
 */
static int write_etcd(co_migrate_stats *stats, co_state *st, const char *ckname,
		      const char *marker, const co_migrate_opts *o, const plan *p)
{
	etcd_progress ep = {stats, st, ckname, marker, o, 0, 0, p->n};
	co_mig_writers *w = NULL;
	co_mig_job job;
	co_store *es = NULL;
	size_t i, bytes = 0;
	int64_t now = co_time_now();
	int error, applied;

	job.n = 0;
	if ((error = co_mig__writers_open(&w, o->etcd, CO_MIG_WRITERS, on_retired, &ep)) < 0)
		return error;
	for (i = 0; i < p->n; i++) {
		const co_record *r = p->src[i]->r, *old = p->tgt[i] ? p->tgt[i]->r : NULL;
		size_t sz = strlen(r->metadata) + 512;

		if (r->kind == CO_KIND_TASK && r->status == CO_STATUS_CLAIMED &&
		    r->claim_expires_at > now) {
			if ((error = co_mig__writers_submit(w, &job)) < 0 ||
			    (error = co_mig__writers_drain(w)) < 0 ||
			    (error = open_etcd_store(&es, o)) < 0 ||
			    (error = co_store_put_if_newer(es, r, &applied)) < 0)
				goto done;
			stats->batches++;
			stats->written += applied ? 1 : 0;
			job.n = bytes = 0;
			continue;
		}
		if (job.n == CO_ETCD_BATCH_MAX ||
		    (job.n > 0 && bytes + sz > CO_ETCD_BATCH_BYTES)) {
			if ((error = co_mig__writers_submit(w, &job)) < 0)
				goto done;
			job.n = bytes = 0;
		}
		job.recs[job.n] = r;
		job.vers[job.n] = p->tgt[i] ? p->tgt[i]->ver : "";
		job.drop[job.n] = old && old->kind == CO_KIND_TASK &&
				  old->status == CO_STATUS_CLAIMED && old->claim_expires_at > 0;
		job.n++;
		bytes += sz;
	}
	if ((error = co_mig__writers_submit(w, &job)) < 0 ||
	    (error = co_mig__writers_drain(w)) < 0)
		goto done;
	progress(o, "write", p->n, p->n);
done:
	co_mig__writers_free(w);
	co_store_free(es);
	return error;
}

static int write_git(co_migrate_stats *stats, co_git_batch *gb, co_state *st,
		     const char *ckname, const char *marker, const co_migrate_opts *o,
		     const plan *p, const char *why)
{
	size_t per = o->git_batch ? o->git_batch : 2000, i, k, w;
	co_git_batch_item *items = calloc(per, sizeof(*items));
	int error = 0;

	if (!items)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (i = 0; i < p->n; i += per) {
		size_t n = p->n - i < per ? p->n - i : per;

		for (k = 0; k < n; k++) {
			items[k].r = p->src[i + k]->r;
			items[k].expect = NULL; /* only if newer by rev than the head's */
		}
		if ((error = co_git_batch_write(&w, gb, items, n, why)) < 0)
			goto done;
		stats->written += w;
		stats->batches += w ? 1 : 0;
		if ((error = ckpt_set(st, ckname, marker, p->src[i + n - 1]->r)) < 0)
			goto done;
		progress(o, "write", i + n, p->n);
	}
done:
	free(items);
	return error;
}

static int verify(co_migrate_stats *stats, const co_mig_set *src, const co_mig_set *tgt)
{
	size_t i;

	stats->verified_total = src->n;
	stats->verified_equal = 0;
	for (i = 0; i < src->n; i++) {
		const co_mig_rec *t =
		    co_mig__set_find(tgt, src->v[i].r->kind, src->v[i].r->id);

		if (t && co_record_equal(t->r, src->v[i].r))
			stats->verified_equal++;
	}
	return 0;
}

struct verify_scan {
	co_migrate_stats *stats;
	const co_mig_set *src;
};

/* One etcd value against the source's record of its ID: equal when its
 * bytes are the record's compact form (what a backfill writes), else
 * parsed and compared; a value that does not parse is simply not equal. */
static int verify_value(void *ctx, const co_scan_item *it)
{
	struct verify_scan *vs = ctx;
	const co_mig_rec *s = co_mig__set_find(vs->src, it->kind, it->id);
	co_record *r = NULL;
	char *json;

	if (!s || !it->raw)
		return 0;
	if ((json = co_record_to_json(s->r, 0)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((strlen(json) == it->len && memcmp(json, it->raw, it->len) == 0) ||
	    (co_record_from_json(&r, it->raw, it->len) == 0 && co_record_equal(r, s->r)))
		vs->stats->verified_equal++;
	co_record_free(r);
	free(json);
	return 0;
}

/*
 * Verification of a backfill into etcd: one bulk scan, each value compared
 * as bytes with what was written, rather than every value parsed into a
 * set and compared record by record (a third of a 100k backfill's time).
 */
static int verify_etcd(co_migrate_stats *stats, const co_mig_set *src, co_store **es,
		       const co_migrate_opts *o)
{
	struct verify_scan vs = {stats, src};
	int error;

	stats->verified_total = src->n;
	stats->verified_equal = 0;
	if ((error = open_etcd_store(es, o)) < 0)
		return error;
	return co_store_scan(*es, verify_value, &vs);
}

int co_migrate_backfill(co_migrate_stats *stats, const co_migrate_opts *o)
{
	int to_etcd = o->direction == CO_MIGRATE_GIT_TO_ETCD;
	const char *ckname =
	    to_etcd ? CO_MIGRATE_CKPT_GIT_TO_ETCD : CO_MIGRATE_CKPT_ETCD_TO_GIT;
	co_git_batch *gb = NULL;
	co_etcd_batch *eb = NULL;
	co_store *scan_es = NULL; /* the bulk read of etcd (list_etcd) */
	co_state *st = NULL;
	co_mig_set gs = {NULL, 0, 0}, es = {NULL, 0, 0}, after = {NULL, 0, 0};
	co_mig_set *src, *tgt;
	plan p = {NULL, NULL, 0};
	char marker[64] = "", *ck = NULL, *ck_key = NULL;
	int64_t erev = 0;
	size_t i;
	int error;

	memset(stats, 0, sizeof(*stats));
	if (!o->git_repo || !o->etcd)
		return co_error_set(CO_EINVAL,
				    "migrate: a git repo and etcd endpoints are "
				    "both needed");
	if ((error = co_git_batch_open(&gb, o->git_repo, o->git_branch)) < 0 ||
	    (error = co_etcd_batch_open(&eb, o->etcd)) < 0)
		goto done;
	if (o->state_dir && !o->dry_run && (error = co_state_open(&st, o->state_dir)) < 0)
		goto done;

	/* The source's position first: a checkpoint is valid only for it. */
	if (to_etcd) {
		if ((error = co_git_batch_head(marker, gb)) < 0)
			goto done;
		if (!marker[0])
			snprintf(marker, sizeof(marker), "unborn");
	}
	if ((error = list_git(&gs, &stats->unreadable, gb)) < 0 ||
	    (error = list_etcd(&es, &erev, eb, &scan_es, o)) < 0)
		goto done;
	if (!to_etcd)
		snprintf(marker, sizeof(marker), "rev%" PRId64, erev);
	src = to_etcd ? &gs : &es;
	tgt = to_etcd ? &es : &gs;
	stats->source = src->n;
	stats->target = tgt->n;

	if (st) {
		error = co_state_checkpoint_get(&ck, st, ckname);
		if (error == CO_ENOTFOUND)
			error = 0;
		if (error < 0)
			goto done;
		if (ck) {
			char *sp = strchr(ck, ' ');

			if (sp && (size_t)(sp - ck) == strlen(marker) &&
			    strncmp(ck, marker, strlen(marker)) == 0) {
				ck_key = sp + 1;
				snprintf(stats->resumed_after,
					 sizeof(stats->resumed_after), "%s", ck_key);
			} else {
				mlog(o,
				     "source moved since the checkpoint (%s): "
				     "comparing every record again",
				     ck);
			}
		}
	}

	if ((p.src = calloc(src->n + 1, sizeof(*p.src))) == NULL ||
	    (p.tgt = calloc(src->n + 1, sizeof(*p.tgt))) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	for (i = 0; i < src->n; i++) {
		const co_mig_rec *s = &src->v[i];
		const co_mig_rec *t = co_mig__set_find(tgt, s->r->kind, s->r->id);

		if (ck_key && !key_after(s->r, ck_key)) {
			stats->resumed++;
			continue;
		}
		if (!t || t->r->rev < s->r->rev) {
			p.src[p.n] = s;
			p.tgt[p.n] = t;
			p.n++;
		} else if (t->r->rev > s->r->rev) {
			stats->target_newer++;
		} else if (co_record_equal(t->r, s->r)) {
			stats->equal++;
		} else {
			stats->conflicting++;
		}
	}
	stats->to_write = p.n;
	if (o->dry_run) {
		for (i = 0; i < p.n && i < 20; i++)
			mlog(o, "would %s %s %s in %s (rev %" PRId64 ")",
			     p.tgt[i] ? "update" : "create",
			     co_kind_name(p.src[i]->r->kind), p.src[i]->r->id,
			     to_etcd ? "etcd" : "git", p.src[i]->r->rev);
		if (p.n > 20)
			mlog(o, "... and %zu more", p.n - 20);
		verify(stats, src, tgt);
		goto done;
	}
	if (p.n > 0) {
		progress(o, "write", 0, p.n);
		if (to_etcd)
			error = write_etcd(stats, st, ckname, marker, o, &p);
		else
			error =
			    write_git(stats, gb, st, ckname, marker, o, &p, "migrate");
		if (error < 0)
			goto done;
	}
	/* Finished: the next run starts from a full comparison. */
	if (st && (ck || p.n > 0) &&
	    (error = co_state_checkpoint_set(st, ckname, NULL)) < 0)
		goto done;

	/* Verification: read the target again and count equal records. */
	progress(o, "verify", 0, src->n);
	if (p.n == 0) {
		verify(stats, src, tgt);
	} else if (to_etcd) {
		if ((error = verify_etcd(stats, src, &scan_es, o)) < 0)
			goto done;
	} else {
		if ((error = list_git(&after, &i, gb)) < 0)
			goto done;
		verify(stats, src, &after);
	}
	progress(o, "verify", src->n, src->n);
done:
	free(p.src);
	free(p.tgt);
	free(ck);
	co_mig__set_clear(&gs);
	co_mig__set_clear(&es);
	co_mig__set_clear(&after);
	co_state_close(st);
	co_store_free(scan_es);
	co_etcd_batch_free(eb);
	co_git_batch_free(gb);
	return error;
}

/* ---- follow ---- */

static int mirror_change(co_git_batch_item *wb, co_record **wb_rec, co_store *es,
			 const co_migrate_opts *o, const co_git_commit_info *c,
			 const co_git_change *ch)
{
	co_record *cur = NULL, *nr = NULL;
	char sha[12];
	int error, applied = 0;

	*wb_rec = NULL;
	snprintf(sha, sizeof(sha), "%.10s", c->id);
	if (ch->deleted) {
		error = co_store_remove(es, ch->kind, ch->id);
		if (error == CO_ENOTFOUND) {
			mlog(o, "%s %s: delete %s/%s (already absent in etcd)", sha,
			     c->author, co_kind_dir(ch->kind), ch->id);
			return 0;
		}
		if (error == 0)
			mlog(o, "%s %s: delete %s/%s -> etcd", sha, c->author,
			     co_kind_dir(ch->kind), ch->id);
		return error;
	}
	if (!ch->r) {
		mlog(o, "%s %s: skipped %s/%s: %s", sha, c->author, co_kind_dir(ch->kind),
		     ch->id, ch->problem ? ch->problem : "unreadable");
		return 0;
	}
	error = co_store_get(&cur, es, ch->kind, ch->id);
	if (error < 0 && error != CO_ENOTFOUND)
		goto done;
	error = 0;
	if (cur && co_record_equal(cur, ch->r))
		goto done; /* etcd already holds exactly this (the backfill copied it) */
	if (cur && cur->rev > ch->r->rev && same_content(cur, ch->r)) {
		/* Mirrored before a restart; only git still lacks the bumped rev. */
		*wb_rec = cur;
		cur = NULL;
		wb->r = *wb_rec;
		wb->expect = ch->blob;
		mlog(o, "%s %s: %s/%s already in etcd at rev %" PRId64, sha, c->author,
		     co_kind_dir(ch->kind), ch->id, (*wb_rec)->rev);
		goto done;
	}
	if ((error = co_record_dup(&nr, ch->r)) < 0)
		goto done;
	nr->rev = (cur && cur->rev > ch->r->rev ? cur->rev : ch->r->rev) + 1;
	nr->updated_at = co_time_now();
	if ((error = co_store_put_if_newer(es, nr, &applied)) < 0)
		goto done;
	mlog(o, "%s %s: %s/%s rev %" PRId64 " -> etcd rev %" PRId64 " (%s%s%s)%s", sha,
	     c->author, co_kind_dir(ch->kind), ch->id, ch->r->rev, nr->rev,
	     co_status_name(nr->status), nr->owner ? ", owner " : "",
	     nr->owner ? nr->owner : "",
	     applied ? "" : " [etcd moved meanwhile: not applied]");
	if (applied) {
		wb->r = nr;
		wb->expect = ch->blob;
		*wb_rec = nr;
		nr = NULL;
	}
done:
	co_record_free(cur);
	co_record_free(nr);
	return error;
}

static int follow_commit(co_git_batch *gb, co_store *es, const co_migrate_opts *o,
			 const co_git_commit_info *c)
{
	co_git_batch_item *items = NULL;
	co_record **owned = NULL;
	size_t i, n = 0, w;
	int error = 0;

	if (c->n_changes == 0)
		return 0;
	if ((items = calloc(c->n_changes, sizeof(*items))) == NULL ||
	    (owned = calloc(c->n_changes, sizeof(*owned))) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	for (i = 0; i < c->n_changes; i++) {
		if ((error = mirror_change(&items[n], &owned[n], es, o, c,
					   &c->changes[i])) < 0)
			goto done;
		if (owned[n])
			n++;
	}
	/* Write the bumped revs back to git, only over the legacy blobs. */
	if (n > 0 && (error = co_git_batch_write(&w, gb, items, n, "migrate-follow")) < 0)
		goto done;
done:
	for (i = 0; owned && i < c->n_changes; i++)
		co_record_free(owned[i]);
	free(owned);
	free(items);
	return error;
}

static void nap(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int co_migrate_follow(const co_migrate_opts *o, volatile sig_atomic_t *stop)
{
	co_git_batch *gb = NULL;
	co_store *es = NULL;
	co_state *st = NULL;
	co_git_commit_info *cs = NULL;
	size_t n = 0, i;
	char *last = NULL, head[48];
	int poll = o->follow_poll_ms > 0 ? o->follow_poll_ms : 200, error;

	if (!o->git_repo || !o->etcd || !o->state_dir)
		return co_error_set(CO_EINVAL,
				    "migrate --follow: a git repo, etcd endpoints "
				    "and a state dir are needed");
	if ((error = co_git_batch_open(&gb, o->git_repo, o->git_branch)) < 0 ||
	    (error = co_etcd_store_open(&es, o->etcd)) < 0 ||
	    (error = co_state_open(&st, o->state_dir)) < 0)
		goto done;
	error = co_state_checkpoint_get(&last, st, CO_MIGRATE_CKPT_FOLLOW);
	if (error == CO_ENOTFOUND) {
		/* First start: the backfill covered everything up to the head. */
		if ((error = co_git_batch_head(head, gb)) < 0 ||
		    (last = strdup(head)) == NULL ||
		    (head[0] && (error = co_state_checkpoint_set(
				     st, CO_MIGRATE_CKPT_FOLLOW, head)) < 0)) {
			error =
			    error < 0 ? error : co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		mlog(o, "following %s from %s", o->git_repo,
		     head[0] ? head : "the first commit");
	} else if (error < 0) {
		goto done;
	} else {
		mlog(o, "following %s, resuming after %s", o->git_repo, last);
	}
	error = 0;
	while (!*stop) {
		if ((error = co_git_batch_commits_since(&cs, &n, gb, last, 256)) < 0)
			goto done;
		for (i = 0; i < n && !*stop; i++) {
			if (!cs[i].ours && (error = follow_commit(gb, es, o, &cs[i])) < 0)
				goto done;
			free(last);
			if ((last = strdup(cs[i].id)) == NULL) {
				error = co_error_set(CO_ENOMEM, "out of memory");
				goto done;
			}
			if ((error = co_state_checkpoint_set(st, CO_MIGRATE_CKPT_FOLLOW,
							     last)) < 0)
				goto done;
		}
		co_git_commits_free(cs, n);
		cs = NULL;
		if (n == 0)
			for (i = 0; i < (size_t)poll / 50 + 1 && !*stop; i++)
				nap(poll < 50 ? poll : 50);
		n = 0;
	}
	mlog(o, "stopped after %s", last && *last ? last : "nothing");
done:
	co_git_commits_free(cs, n);
	free(last);
	co_state_close(st);
	co_store_free(es);
	co_git_batch_free(gb);
	return error;
}

/* ---- imports ---- */

int co_migrate_import(co_migrate_stats *stats, const co_migrate_opts *o,
		      const co_record_list *recs)
{
	co_git_batch *gb = NULL;
	co_mig_set cur = {NULL, 0, 0}, out = {NULL, 0, 0};
	co_git_batch_item *items = NULL;
	size_t i, per = o->git_batch ? o->git_batch : 2000, w;
	int64_t now = co_time_now();
	int error;

	memset(stats, 0, sizeof(*stats));
	stats->source = recs->n;
	if ((error = co_git_batch_open(&gb, o->git_repo, o->git_branch)) < 0 ||
	    (error = list_git(&cur, &stats->unreadable, gb)) < 0)
		goto done;
	stats->target = cur.n;
	for (i = 0; i < recs->n; i++) {
		const co_record *r = recs->items[i];
		const co_mig_rec *t = co_mig__set_find(&cur, r->kind, r->id);
		co_record *nr = NULL;

		if (t && same_content(t->r, r)) {
			stats->equal++;
			continue;
		}
		if ((error = co_record_dup(&nr, r)) < 0)
			goto done;
		nr->rev = t ? t->r->rev + 1 : 1;
		nr->updated_at = now;
		if (nr->kind == CO_KIND_TASK)
			nr->created_at = t ? t->r->created_at : now;
		else
			nr->registered_at = t ? t->r->registered_at : now;
		if (o->dry_run)
			mlog(o, "would %s %s %s", t ? "update" : "create",
			     co_kind_name(r->kind), r->id);
		if ((error = co_mig__set_push(&out, nr, t ? t->ver : "")) < 0)
			goto done;
	}
	stats->to_write = out.n;
	if (o->dry_run || out.n == 0)
		goto done;
	if ((items = calloc(per, sizeof(*items))) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	for (i = 0; i < out.n; i += per) {
		size_t n = out.n - i < per ? out.n - i : per, k;

		for (k = 0; k < n; k++) {
			items[k].r = out.v[i + k].r;
			/* Only over what was read: a concurrent change wins. */
			items[k].expect = out.v[i + k].ver;
		}
		if ((error = co_git_batch_write(&w, gb, items, n, "import")) < 0)
			goto done;
		stats->written += w;
		stats->batches += w ? 1 : 0;
		progress(o, "write", i + n, out.n);
	}
done:
	free(items);
	co_mig__set_clear(&cur);
	co_mig__set_clear(&out);
	co_git_batch_free(gb);
	return error;
}
