/*
 * store_batch.c - co_store_put_batch_if_newer(): many mirrored records
 * written in few round trips.  Each chunk of at most the backend's
 * cas_many_max is read in one call (get_many) and written in one
 * all-or-nothing call (cas_many); chunks go out in parallel.  The rule of
 * what is written is the mirror's (co_store__holds_as_new, store_cas.c).
 */
#include "store_internal.h"

#include "../core/error.h"
#include "../core/id.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
			error = co_store__be_get(s, &cur[i], &ver[i], records[i]->kind,
						 records[i]->id);
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
	if ((error = co_store__call_begin(s, &probe)) == 0)
		error = co_store__call_end(s, probe, s->be->get_many(s->impl, rd, n));
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
			write = !co_store__holds_as_new(cur[i], records[i]);
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
		if ((error = co_store__call_begin(s, &probe)) < 0)
			goto done;
		error = co_store__call_end(s, probe,
					   s->be->cas_many(s->impl, w, nw, "mirror"));
		if (error != CO_ERETRY)
			goto done;
	}
	error = co_store__too_busy(s, "mirror", records[0]->id);
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
