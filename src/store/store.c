/*
 * store.c - the operations of DESIGN §3, written once over both stores.
 *
 * Each mutation is: read the record and its version, decide (the rules of
 * §1 and §3 live here and only here), then ask the backend to write the new
 * record only if the version is unchanged.  A lost compare-and-swap means
 * another writer got there first: read again and decide again, so a claim
 * that loses the race sees the winner's record and reports its owner.
 *
 * The retry bound is generous because on git every writer to the same file
 * contends for one blob; after a lost race the re-read normally settles the
 * outcome at once (the task is now claimed), so real loops are short.
 *
 * One round trip (issue 15): where the backend keeps a cache (etcd), the
 * first round decides from its guess of the record, or from "absent" when
 * it knows nothing, and sends the compare-and-swap at once; where the
 * backend's cas reads the key back when the compare fails (cas_read), the
 * next round decides from that, without a read.  The compare still picks
 * the single winner; a guess that leads to a refusal or to "nothing to
 * do" is never the answer: the record is read and the decision made again.
 */
#include "store_backend.h"

#include "../core/error.h"
#include "../core/id.h"
#include "breaker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUNDS 64

struct co_store {
	const co_store_backend *be;
	void *impl;
	co_breaker *brk; /* every call to the backend goes through it */
	atomic_uint_fast64_t calls; /* calls let through to the backend */
};

struct co_watch {
	const co_store_backend *be;
	void *impl;
};

int co_store__new(co_store **out, const co_store_backend *be, void *impl)
{
	co_store *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		be->free(impl);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	if ((s->brk = co_breaker_new(be->name, NULL)) == NULL) {
		be->free(impl);
		free(s);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	s->be = be;
	s->impl = impl;
	*out = s;
	return 0;
}

void co_store_free(co_store *s)
{
	if (s == NULL)
		return;
	s->be->free(s->impl);
	co_breaker_free(s->brk);
	free(s);
}

const char *co_store_name(const co_store *s)
{
	return s->be->name;
}

const char *co_store_describe(const co_store *s)
{
	return s->be->describe(s->impl);
}

/* ---- the breaker around every backend call (store_guard.c) ---- */

/* 0: call the backend (*probe: as the breaker's probe); CO_EUNAVAIL: open. */
static int call_begin(co_store *s, int *probe)
{
	int error = co_store__guard_begin(s->brk, probe);

	if (error == 0)
		atomic_fetch_add(&s->calls, 1);
	return error;
}

static int call_end(co_store *s, int probe, int error)
{
	return co_store__guard_end(s->brk, probe, error);
}

uint64_t co_store_calls(co_store *s)
{
	return atomic_load(&s->calls);
}

void co_store_breaker_get(co_breaker_info *out, co_store *s)
{
	co_breaker_get(out, s->brk, co_store__mono_ms());
}

void co_store_breaker_set_hook(co_store *s, co_breaker_hook fn, void *ctx)
{
	co_breaker_set_hook(s->brk, fn, ctx);
}

void co_store_breaker_clear_hook(co_store *s, void *ctx)
{
	co_breaker_clear_hook(s->brk, ctx);
}

int co_store_breaker_configure(co_store *s, const co_breaker_opts *opts)
{
	co_breaker *b = co_breaker_new(s->be->name, opts);

	if (b == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	co_breaker_free(s->brk);
	s->brk = b;
	return 0;
}

static int be_get(co_store *s, co_record **out, co_version *ver, co_kind kind,
		  const char *id)
{
	int probe, error;

	if ((error = call_begin(s, &probe)) < 0)
		return error;
	return call_end(s, probe, s->be->get(out, ver, s->impl, kind, id));
}

static int be_cas(co_store *s, co_kind kind, const char *id, const co_record *r,
		  const co_version *expected, const char *why)
{
	int probe, error;

	if ((error = call_begin(s, &probe)) < 0)
		return error;
	return call_end(s, probe, s->be->cas(s->impl, kind, id, r, expected, why));
}

/* be_cas that, on CO_ERETRY, also gives what the key holds now where the
 * backend can read it back in the same call (*fresh 1). */
static int be_cas_read(co_store *s, co_kind kind, const char *id, const co_record *r,
		       const co_version *expected, const char *why, co_record **cur,
		       co_version *cur_ver, int *fresh)
{
	int probe, error;

	*fresh = 0;
	if (s->be->cas_read == NULL)
		return be_cas(s, kind, id, r, expected, why);
	if ((error = call_begin(s, &probe)) < 0)
		return error;
	return call_end(s, probe,
			s->be->cas_read(s->impl, kind, id, r, expected, why, cur, cur_ver,
					fresh));
}

/*
 * A health probe's ping of a store behind an open breaker that is not yet
 * due a probe: a quiet look, outside the breaker (no transition, no audit
 * row, no count) under the probe's bound.  If the store answers, the ping
 * that follows is the breaker's probe at once, so the store is known to be
 * back, and its outbox debt goes out, within one probe interval rather
 * than after up to probe_max of backoff.  1: probe now; 0: the ordinary
 * path; <0: the store still does not answer (its own error).
 */
static int quiet_look(co_store *s)
{
	co_breaker_info bi;
	int error;

	if (!co_store__is_health_probe())
		return 0;
	co_breaker_get(&bi, s->brk, co_store__mono_ms());
	if (bi.state != CO_BREAKER_OPEN || bi.next_probe_in_ms <= 0)
		return 0;
	if ((error = s->be->ping(s->impl)) < 0)
		return error;
	return 1;
}

int co_store_ping(co_store *s)
{
	int probe, error, look = quiet_look(s);

	if (look < 0)
		return look;
	if (look)
		error = co_store__guard_begin_probe(s->brk, &probe);
	else
		error = co_store__guard_begin(s->brk, &probe);
	if (error < 0)
		return error;
	atomic_fetch_add(&s->calls, 1);
	return call_end(s, probe, s->be->ping(s->impl));
}

static int too_busy(co_store *s, const char *what, const char *id)
{
	return co_error_set(CO_EUNAVAIL,
			    "%s %s: %s %s: gave up after %d compare-and-swap rounds",
			    s->be->name, co_store_describe(s), what, id, MAX_ROUNDS);
}

/* Read and apply the claim-expiry rule.  *ver is set even when absent. */
static int read_now(co_record **out, co_version *ver, co_store *s, co_kind kind,
		    const char *id)
{
	int error;

	memset(ver, 0, sizeof(*ver));
	if ((error = be_get(s, out, ver, kind, id)) < 0)
		return error;
	co_record_normalize(*out, co_time_now());
	return 0;
}

static int not_found(co_kind kind, const char *id)
{
	return co_error_set(CO_ENOTFOUND, "%s %s not found", co_kind_name(kind), id);
}

static int strv_equal(const co_strv *a, const co_strv *b)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return 0;
	return 1;
}

static int str_equal(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The fields a creator chooses; rev and timestamps are the store's. */
static int same_task_content(const co_record *a, const co_record *b)
{
	return str_equal(a->type, b->type) && str_equal(a->metadata, b->metadata) &&
	       strv_equal(&a->blocked_by, &b->blocked_by) && a->status == b->status;
}

/*
 * The one compare-and-swap loop.  Each round reads the record and its
 * version (normalized or, for `raw` callers that compare what is stored,
 * as stored; absent: cur NULL), asks `plan` what to do, and does it only
 * if the version is still the one read; a lost race goes round again.
 * `plan` returns a negative error to refuse, or one of:
 */
enum {
	PLAN_WRITE,  /* write *next (plan's, freed here) */
	PLAN_DELETE, /* remove the record */
	PLAN_KEEP,   /* write nothing: the answer is the current record */
};

typedef int (*plan_fn)(co_record **next, const co_record *cur, const void *arg);

typedef struct cas_op {
	co_kind kind;
	const char *id;
	const char *why;  /* for commit messages and errors */
	int raw;	  /* read as stored, no claim-expiry rule */
	int conflict_out; /* on CO_ECONFLICT hand the current record out */
	plan_fn plan;
	const void *arg;
} cas_op;

/* Where the record a round decides from came from. */
enum {
	CUR_NONE,  /* nothing yet: read it */
	CUR_READ,  /* read, or read back by a failed cas: the store's answer */
	CUR_GUESS, /* the backend's cache, or "absent" when it knows nothing */
};

/*
 * A guess of what op's key holds, for a first round without a read: 1
 * with *cur (NULL: absent) and *ver, 0 when the backend keeps no cache.
 */
static int guess(co_record **cur, co_version *ver, co_store *s, const cas_op *op)
{
	int rc;

	*cur = NULL;
	memset(ver, 0, sizeof(*ver));
	if (s->be->cached_get == NULL ||
	    (rc = s->be->cached_get(cur, ver, s->impl, op->kind, op->id)) < 0)
		return 0;
	if (rc == 0) {
		*cur = NULL; /* unknown: guess absent (a create needs no read) */
		memset(ver, 0, sizeof(*ver));
	} else if (!op->raw) {
		co_record_normalize(*cur, co_time_now());
	}
	return 1;
}

/*
 * Run op on s.  0: *out (may be NULL: not wanted) is what the store now
 * holds for the ID (the written record, or the current one on PLAN_KEEP;
 * NULL after a delete), *applied (may be NULL) says whether anything was
 * written.  Errors: the plan's, the backend's, CO_EUNAVAIL after
 * MAX_ROUNDS lost races.
 */
static int cas_loop(co_record **out, int *applied, co_store *s, const cas_op *op)
{
	co_record *cur = NULL, *next = NULL, *fresh_cur = NULL;
	co_version ver, fresh_ver;
	int error, round, what, src, fresh;

	if (applied)
		*applied = 0;
	if ((error = co_id_validate(op->id)) < 0)
		return error;
	src = guess(&cur, &ver, s, op) ? CUR_GUESS : CUR_NONE;
	for (round = 0; round < MAX_ROUNDS; round++) {
		co_record_free(next);
		next = NULL;
		if (src == CUR_NONE) {
			co_record_free(cur);
			cur = NULL;
			memset(&ver, 0, sizeof(ver));
			error = op->raw ? be_get(s, &cur, &ver, op->kind, op->id)
					: read_now(&cur, &ver, s, op->kind, op->id);
			if (error < 0 && error != CO_ENOTFOUND)
				goto done;
			if (error == CO_ENOTFOUND)
				co_error_clear();
			src = CUR_READ;
		}
		what = op->plan(&next, cur, op->arg);
		if (what == PLAN_WRITE && (error = co_record_check_times(next)) < 0)
			what = error;
		if (src == CUR_GUESS && (what < 0 || what == PLAN_KEEP)) {
			/* Never an answer from a guess: read, decide again. */
			co_error_clear();
			src = CUR_NONE;
			continue;
		}
		if (what < 0) {
			error = what;
			if (error == CO_ECONFLICT && op->conflict_out && cur && out) {
				*out = cur;
				cur = NULL;
			}
			goto done;
		}
		if (what == PLAN_KEEP) {
			if (out) {
				*out = cur;
				cur = NULL;
			}
			error = 0;
			goto done;
		}
		error = be_cas_read(s, op->kind, op->id, what == PLAN_WRITE ? next : NULL,
				    &ver, op->why, &fresh_cur, &fresh_ver, &fresh);
		if (error == CO_ERETRY) {
			/* Lost the compare: decide again from what the failed
			 * cas read back, or read. */
			co_record_free(cur);
			cur = NULL;
			src = CUR_NONE;
			if (fresh) {
				cur = fresh_cur;
				ver = fresh_ver;
				fresh_cur = NULL;
				if (cur && !op->raw)
					co_record_normalize(cur, co_time_now());
				src = CUR_READ;
			}
			continue;
		}
		if (error == 0) {
			if (applied)
				*applied = 1;
			if (out) {
				*out = next;
				next = NULL;
			}
		}
		goto done;
	}
	error = too_busy(s, op->why, op->id);
done:
	co_record_free(cur);
	co_record_free(next);
	co_record_free(fresh_cur);
	return error;
}

/* Create: write the prepared record if absent; keep an identical one. */
static int plan_create(co_record **next, const co_record *cur, const void *arg)
{
	const co_record *r = arg;

	if (cur == NULL)
		return co_record_dup(next, r) < 0 ? CO_ENOMEM : PLAN_WRITE;
	if (!same_task_content(cur, r))
		return co_error_set(CO_ECONFLICT,
				    "task %s exists with different content (rev %lld)",
				    r->id, (long long)cur->rev);
	return PLAN_KEEP;
}

int co_store_task_create(co_record **out, co_store *s, const co_record *task)
{
	co_record *r = NULL;
	cas_op op = {CO_KIND_TASK, task->id, "create", 0, 0, plan_create, NULL};
	int error;

	if ((error = co_id_validate(task->id)) < 0)
		return error;
	if (task->kind != CO_KIND_TASK)
		return co_error_set(CO_EINVAL, "task create: record %s is not a task",
				    task->id);
	if (task->status != CO_STATUS_AVAILABLE && task->status != CO_STATUS_BLOCKED)
		return co_error_set(CO_EINVAL,
				    "task create: a new task is available or blocked");
	if ((error = co_record_dup(&r, task)) < 0)
		return error;
	r->rev = 1;
	r->created_at = r->updated_at = co_time_now();
	free(r->owner);
	r->owner = NULL;
	r->claim_expires_at = 0;
	op.arg = r;
	error = cas_loop(out, NULL, s, &op);
	co_record_free(r);
	return error;
}

int co_store_get(co_record **out, co_store *s, co_kind kind, const char *id)
{
	char ver[CO_VERSION_MAX];

	return co_store_get_versioned(out, ver, s, kind, id);
}

int co_store_get_versioned(co_record **out, char *version, co_store *s, co_kind kind,
			   const char *id)
{
	co_version ver;
	int error;

	version[0] = '\0';
	if ((error = co_id_validate(id)) < 0)
		return error;
	error = read_now(out, &ver, s, kind, id);
	memcpy(version, ver.v, sizeof(ver.v));
	if (error == CO_ENOTFOUND)
		return not_found(kind, id);
	return error;
}

void *co_store__impl(const co_store *s, const co_store_backend *be)
{
	return s && s->be == be ? s->impl : NULL;
}

int co_store_scan(co_store *s, co_scan_fn fn, void *ctx)
{
	return co_store_scan_flags(s, 0, fn, ctx);
}

int co_store_scan_flags(co_store *s, unsigned flags, co_scan_fn fn, void *ctx)
{
	int probe, error;

	if ((error = call_begin(s, &probe)) < 0)
		return error;
	return call_end(s, probe, s->be->scan(s->impl, flags, fn, ctx));
}

int co_store_read_blob(char **out, size_t *len, co_store *s, const unsigned char *blob_id)
{
	int probe, error;

	if (s->be->read_blob == NULL)
		return co_error_set(CO_EINVAL, "%s %s keeps no blobs to read by id",
				    s->be->name, co_store_describe(s));
	if ((error = call_begin(s, &probe)) < 0)
		return error;
	return call_end(s, probe, s->be->read_blob(out, len, s->impl, blob_id));
}

int co_store_list(co_record_list *out, co_store *s, co_kind kind)
{
	co_record_list l = {0};
	int64_t now = co_time_now();
	size_t i;
	int probe, error;

	if ((error = call_begin(s, &probe)) < 0)
		return error;
	if ((error = call_end(s, probe, s->be->list(&l, s->impl, kind))) < 0) {
		co_record_list_clear(&l);
		return error;
	}
	for (i = 0; i < l.n; i++)
		co_record_normalize(l.items[i], now);
	co_record_list_sort(&l);
	*out = l;
	return 0;
}

/*
 * The shape of every task mutation: read, let `decide` build the new record
 * from the current one (or refuse), CAS, and on a lost race do it again.
 * On a refusal the current record is handed out too, so callers can say who
 * holds the task.
 */
typedef int (*decide_fn)(co_record *next, const co_record *cur, const void *arg);

struct mutate_arg {
	co_kind kind;
	decide_fn decide;
	const void *arg;
};

static int plan_mutate(co_record **next, const co_record *cur, const void *varg)
{
	const struct mutate_arg *m = varg;
	int error;

	if (cur == NULL)
		return not_found(m->kind, "");
	if ((error = co_record_dup(next, cur)) < 0 ||
	    (error = m->decide(*next, cur, m->arg)) < 0)
		return error;
	(*next)->rev = cur->rev + 1;
	(*next)->updated_at = co_time_now();
	return PLAN_WRITE;
}

static int mutate(co_record **out, co_store *s, co_kind kind, const char *id,
		  decide_fn decide, const void *arg, const char *why)
{
	struct mutate_arg m = {kind, decide, arg};
	cas_op op = {kind, id, why, 0, 1, plan_mutate, &m};
	int error = cas_loop(out, NULL, s, &op);

	if (error == CO_ENOTFOUND)
		return not_found(kind, id);
	return error;
}

struct claim_arg {
	const char *swarm;
	int64_t ttl;
	int renew_only;
};

static int decide_claim(co_record *next, const co_record *cur, const void *varg)
{
	const struct claim_arg *a = varg;

	if (cur->status == CO_STATUS_CLAIMED && strcmp(cur->owner, a->swarm) != 0)
		return co_error_set(CO_ECONFLICT, "task %s: claimed by %s", cur->id,
				    cur->owner);
	if (a->renew_only && cur->status != CO_STATUS_CLAIMED)
		return co_error_set(CO_ECONFLICT, "task %s: not claimed (status %s)",
				    cur->id, co_status_name(cur->status));
	if (cur->status != CO_STATUS_CLAIMED && cur->status != CO_STATUS_AVAILABLE)
		return co_error_set(CO_ECONFLICT, "task %s: cannot be claimed: status %s",
				    cur->id, co_status_name(cur->status));
	next->status = CO_STATUS_CLAIMED;
	if (next->owner == NULL && (next->owner = strdup(a->swarm)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	next->claim_expires_at = a->ttl > 0 ? co_time_now() + a->ttl : 0;
	return 0;
}

static int check_swarm(const char *swarm)
{
	if (co_id_validate(swarm) < 0)
		return co_error_set(CO_EINVAL, "swarm: %s", co_error_last());
	return 0;
}

int co_store_claim(co_record **out, co_store *s, const char *id, const char *swarm,
		   int64_t ttl)
{
	struct claim_arg a = {swarm, ttl, 0};
	char why[300];
	int error;

	if ((error = check_swarm(swarm)) < 0)
		return error;
	if (ttl < 0 || ttl > CO_TTL_MAX)
		return co_error_set(CO_EINVAL,
				    "ttl must be 0..%lld seconds (etcd's longest lease)",
				    CO_TTL_MAX);
	snprintf(why, sizeof(why), "claim %s by %s", id, swarm);
	return mutate(out, s, CO_KIND_TASK, id, decide_claim, &a, why);
}

int co_store_renew(co_record **out, co_store *s, const char *id, const char *swarm,
		   int64_t ttl)
{
	struct claim_arg a = {swarm, ttl, 1};
	char why[300];
	int error;

	if ((error = check_swarm(swarm)) < 0)
		return error;
	if (ttl <= 0 || ttl > CO_TTL_MAX)
		return co_error_set(CO_EINVAL,
				    "renew: ttl must be 1..%lld seconds (etcd's longest "
				    "lease)",
				    CO_TTL_MAX);
	snprintf(why, sizeof(why), "renew %s by %s", id, swarm);
	return mutate(out, s, CO_KIND_TASK, id, decide_claim, &a, why);
}

struct release_arg {
	const char *swarm;
	co_status to;
};

static int decide_release(co_record *next, const co_record *cur, const void *varg)
{
	const struct release_arg *a = varg;

	if (cur->status != CO_STATUS_CLAIMED)
		return co_error_set(CO_ECONFLICT, "task %s: not claimed (status %s)",
				    cur->id, co_status_name(cur->status));
	if (strcmp(cur->owner, a->swarm) != 0)
		return co_error_set(CO_ECONFLICT, "task %s: not owner: claimed by %s",
				    cur->id, cur->owner);
	next->status = a->to;
	free(next->owner);
	next->owner = NULL;
	next->claim_expires_at = 0;
	return 0;
}

int co_store_release(co_record **out, co_store *s, const char *id, const char *swarm,
		     co_status to)
{
	struct release_arg a = {swarm, to};
	char why[300];
	int error;

	if ((error = check_swarm(swarm)) < 0)
		return error;
	if (to != CO_STATUS_AVAILABLE && to != CO_STATUS_COMPLETE &&
	    to != CO_STATUS_FAILED)
		return co_error_set(
		    CO_EINVAL, "release: status must be available, complete or failed");
	snprintf(why, sizeof(why), "release %s by %s to %s", id, swarm,
		 co_status_name(to));
	return mutate(out, s, CO_KIND_TASK, id, decide_release, &a, why);
}

/* Register or update: keep a swarm that already says the same. */
static int plan_register(co_record **next, const co_record *cur, const void *arg)
{
	const co_record *swarm = arg;
	int64_t now = co_time_now();

	if (cur && str_equal(cur->metadata, swarm->metadata) &&
	    strv_equal(&cur->capabilities, &swarm->capabilities))
		return PLAN_KEEP;
	if (co_record_dup(next, swarm) < 0)
		return CO_ENOMEM;
	(*next)->rev = cur ? cur->rev + 1 : 1;
	(*next)->registered_at = cur ? cur->registered_at : now;
	(*next)->updated_at = now;
	return PLAN_WRITE;
}

int co_store_swarm_register(co_record **out, co_store *s, const co_record *swarm)
{
	cas_op op = {CO_KIND_SWARM, swarm->id, "register swarm", 0, 0,
		     plan_register, swarm};

	if (swarm->kind != CO_KIND_SWARM)
		return co_error_set(CO_EINVAL, "swarm register: %s is not a swarm",
				    swarm->id);
	return cas_loop(out, NULL, s, &op);
}

static int plan_remove(co_record **next, const co_record *cur, const void *arg)
{
	(void)next;
	(void)arg;
	return cur ? PLAN_DELETE : CO_ENOTFOUND;
}

int co_store_remove(co_store *s, co_kind kind, const char *id)
{
	cas_op op = {kind, id, "remove", 1, 0, plan_remove, NULL};
	int error = cas_loop(NULL, NULL, s, &op);

	if (error == CO_ENOTFOUND)
		return not_found(kind, id);
	return error;
}

/*
 * Write `r` over whatever the store holds, unless the store already holds
 * it (identical) or, with only_newer, holds a rev at least as high.  The
 * two writes that do not decide anything, mirroring and repair, share this.
 */
struct over_arg {
	const co_record *r;
	int only_newer;
};

/* Never backwards: a mirror keeps the rev it holds if it is as high. */
static int holds_as_new(const co_record *cur, const co_record *r)
{
	return cur && cur->rev >= r->rev;
}

static int plan_over(co_record **next, const co_record *cur, const void *varg)
{
	const struct over_arg *a = varg;

	if (a->only_newer ? holds_as_new(cur, a->r) : cur && co_record_equal(cur, a->r))
		return PLAN_KEEP;
	return co_record_dup(next, a->r) < 0 ? CO_ENOMEM : PLAN_WRITE;
}

static int write_over(co_store *s, const co_record *r, int only_newer, int *applied,
		      const char *why)
{
	struct over_arg a = {r, only_newer};
	cas_op op = {r->kind, r->id, why, 1, 0, plan_over, &a};
	const char *fkey = NULL;
	int64_t fepoch = 0;
	int fenced = co_store__fence(&fkey, &fepoch), error;

	/* A copy of a record already decided is never fenced (store.h). */
	if (fenced)
		co_store_fence(NULL, 0);
	error = cas_loop(NULL, applied, s, &op);
	if (fenced)
		co_store_fence(fkey, fepoch);
	return error;
}

int co_store_put_if_newer(co_store *s, const co_record *r, int *applied)
{
	return write_over(s, r, 1, applied, "mirror");
}

/*
 * Read what each of records[0..n) holds now, in one round trip where the
 * backend can (get_many).  cur[i] (owned by the caller) and ver[i]; absent
 * keys give NULL and "".
 */
static int read_many(co_store *s, const co_record *const *records, size_t n,
		     co_record **cur, co_version *ver)
{
	co_store__read *rd;
	size_t i;
	int probe, error = 0;

	memset(ver, 0, n * sizeof(*ver));
	if (s->be->get_many == NULL) {
		for (i = 0; i < n; i++) {
			error = be_get(s, &cur[i], &ver[i], records[i]->kind, records[i]->id);
			if (error < 0 && error != CO_ENOTFOUND)
				break;
			error = 0;
		}
		co_error_clear();
		if (error < 0)
			while (i-- > 0) {
				co_record_free(cur[i]);
				cur[i] = NULL;
			}
		return error;
	}
	if ((rd = calloc(n, sizeof(*rd))) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		rd[i].kind = records[i]->kind;
		rd[i].id = records[i]->id;
	}
	if ((error = call_begin(s, &probe)) == 0)
		error = call_end(s, probe, s->be->get_many(s->impl, rd, n));
	for (i = 0; i < n && error == 0; i++) {
		cur[i] = rd[i].out;
		ver[i] = rd[i].ver;
	}
	free(rd);
	return error;
}

/* co_store_put_batch_if_newer() of at most cas_many_max records. */
static int put_batch_chunk(co_store *s, const co_record *const *records, size_t n,
			   int *applied)
{
	co_store__write *w = calloc(n, sizeof(*w));
	co_record **cur = calloc(n, sizeof(*cur));
	co_version *ver = calloc(n, sizeof(*ver));
	size_t i, nw;
	int error = 0, round, write, probe;

	if (w == NULL || cur == NULL || ver == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	for (round = 0; round < MAX_ROUNDS; round++) {
		/* Read what each key holds now; keep the ones that must be
		 * written, with the version they must still have. */
		if ((error = read_many(s, records, n, cur, ver)) < 0)
			goto done;
		for (i = 0, nw = 0; i < n; i++) {
			write = !holds_as_new(cur[i], records[i]);
			if (write) {
				w[nw].r = records[i];
				w[nw++].expected = ver[i];
			}
			if (applied)
				applied[i] = write;
			co_record_free(cur[i]);
			cur[i] = NULL;
		}
		if (nw == 0)
			goto done;
		if ((error = call_begin(s, &probe)) < 0)
			goto done;
		error = call_end(s, probe, s->be->cas_many(s->impl, w, nw, "mirror"));
		if (error != CO_ERETRY)
			goto done;
	}
	error = too_busy(s, "mirror", records[0]->id);
done:
	if (error < 0 && applied)
		memset(applied, 0, n * sizeof(*applied));
	free(w);
	free(cur);
	free(ver);
	return error;
}

/* Chunks of one batch written at once: their keys are distinct, so the
 * calls are independent, and etcd commits concurrent txns together (one
 * raft round, one fsync) where one after another each waits for its own. */
#define BATCH_THREADS 4

struct chunk_job {
	co_store *s;
	const co_record *const *records;
	int *applied;
	size_t n, max, from, stride;
	int bound, error;
	char msg[512];
};

static void *chunk_main(void *arg)
{
	struct chunk_job *j = arg;
	int prev = co_store_call_timeout(j->bound);
	size_t i;

	for (i = j->from * j->max; i < j->n && j->error == 0; i += j->stride * j->max) {
		j->error = put_batch_chunk(j->s, j->records + i,
					   j->n - i < j->max ? j->n - i : j->max,
					   j->applied ? j->applied + i : NULL);
		if (j->error < 0)
			snprintf(j->msg, sizeof(j->msg), "%s", co_error_last());
	}
	co_store_call_timeout(prev);
	return NULL;
}

static int put_batch_parallel(co_store *s, const co_record *const *records, size_t n,
			      int *applied, size_t max)
{
	struct chunk_job jobs[BATCH_THREADS];
	pthread_t th[BATCH_THREADS];
	int started[BATCH_THREADS] = {0}, error = 0;
	size_t chunks = (n + max - 1) / max, nt = chunks < BATCH_THREADS ? chunks : BATCH_THREADS;
	size_t t;

	for (t = 0; t < nt; t++) {
		jobs[t] = (struct chunk_job){s, records, applied, n, max, t, nt,
					     co_store__call_timeout(), 0, ""};
		if (t > 0 && pthread_create(&th[t], NULL, chunk_main, &jobs[t]) == 0)
			started[t] = 1;
	}
	/* the caller's thread takes the first share, and any a thread
	 * could not be started for */
	for (t = 0; t < nt; t++)
		if (!started[t])
			chunk_main(&jobs[t]);
	for (t = 0; t < nt; t++) {
		if (started[t])
			pthread_join(th[t], NULL);
		if (jobs[t].error < 0 && error == 0)
			error = co_error_set(jobs[t].error, "%s", jobs[t].msg);
	}
	return error;
}

int co_store_put_batch_if_newer(co_store *s, const co_record *const *records, size_t n,
				int *applied)
{
	size_t i, j, max = s->be->cas_many_max ? s->be->cas_many_max : n;
	int error = 0;

	if (applied)
		memset(applied, 0, n * sizeof(*applied));
	for (i = 0; i < n; i++) {
		if ((error = co_id_validate(records[i]->id)) < 0 ||
		    (error = co_record_check_times(records[i])) < 0)
			return error;
		for (j = 0; j < i; j++)
			if (records[j]->kind == records[i]->kind &&
			    strcmp(records[j]->id, records[i]->id) == 0)
				return co_error_set(CO_EINVAL, "put batch: %s %s twice",
						    co_kind_name(records[i]->kind),
						    records[i]->id);
	}
	if (s->be->cas_many == NULL) {
		for (i = 0; i < n && error == 0; i++)
			error = co_store_put_if_newer(s, records[i],
						      applied ? &applied[i] : NULL);
		return error;
	}
	/* A batch larger than one backend call takes is written in calls of
	 * at most `max`: each is all or nothing, the whole is not. */
	if (n <= max)
		return put_batch_chunk(s, records, n, applied);
	return put_batch_parallel(s, records, n, applied, max);
}

int co_store_put(co_store *s, const co_record *r)
{
	return write_over(s, r, 0, NULL, "repair");
}

/* ---- watch ---- */

void co_event_free(co_event *e)
{
	if (e == NULL)
		return;
	free(e->id);
	co_record_free(e->record);
	free(e);
}

int co_store_watch(co_watch **out, co_store *s, const char *prefix)
{
	co_watch *w = calloc(1, sizeof(*w));
	int probe, error;

	if (w == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	w->be = s->be;
	if ((error = call_begin(s, &probe)) < 0 ||
	    (error = call_end(s, probe, s->be->watch_open(&w->impl, s->impl,
							    prefix ? prefix : ""))) < 0) {
		free(w);
		return error;
	}
	*out = w;
	return 0;
}

int co_watch_next(co_event **out, co_watch *w, int timeout_ms)
{
	return w->be->watch_next(out, w->impl, timeout_ms);
}

void co_watch_close(co_watch *w)
{
	if (w == NULL)
		return;
	w->be->watch_close(w->impl);
	free(w);
}
