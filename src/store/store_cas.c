/*
 * store_cas.c - the mutations of DESIGN §3, written once over both stores.
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
 *
 * Batch puts (store_batch.c) go through co_store__holds_as_new() here, so
 * the mirror's rule stays in this one file.
 */
#include "store_internal.h"

#include "../core/error.h"
#include "../core/id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
			error = op->raw
				    ? co_store__be_get(s, &cur, &ver, op->kind, op->id)
				    : co_store__read_now(&cur, &ver, s, op->kind, op->id);
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
		error = co_store__be_cas_read(s, op->kind, op->id,
					      what == PLAN_WRITE ? next : NULL, &ver,
					      op->why, cur, &fresh_cur, &fresh_ver, &fresh);
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
	error = co_store__too_busy(s, op->why, op->id);
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
		return co_store__not_found(m->kind, "");
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
		return co_store__not_found(kind, id);
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
		return co_store__not_found(kind, id);
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
int co_store__holds_as_new(const co_record *cur, const co_record *r)
{
	return cur && cur->rev >= r->rev;
}

static int plan_over(co_record **next, const co_record *cur, const void *varg)
{
	const struct over_arg *a = varg;

	if (a->only_newer ? co_store__holds_as_new(cur, a->r)
			  : cur && co_record_equal(cur, a->r))
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

int co_store_put(co_store *s, const co_record *r)
{
	return write_over(s, r, 0, NULL, "repair");
}
