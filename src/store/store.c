/*
 * store.c - the co_store object over both backends: open and free, the
 * breaker around every backend call (the be_* wrappers, the health
 * probe's ping), the reads, lists and scans, and watches.
 *
 * The mutations, where the rules of DESIGN §1 and §3 decide, are in
 * store_cas.c; batch puts of mirrored records in store_batch.c.  What the
 * three share is in store_internal.h.
 */
#include "store_internal.h"

#include "../core/error.h"
#include "../core/id.h"
#include "breaker.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int co_store__call_begin(co_store *s, int *probe)
{
	int error = co_store__guard_begin(s->brk, probe);

	if (error == 0)
		atomic_fetch_add(&s->calls, 1);
	return error;
}

int co_store__call_end(co_store *s, int probe, int error)
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

int co_store__be_get(co_store *s, co_record **out, co_version *ver, co_kind kind,
		  const char *id)
{
	int probe, error;

	if ((error = co_store__call_begin(s, &probe)) < 0)
		return error;
	return co_store__call_end(s, probe, s->be->get(out, ver, s->impl, kind, id));
}

static int be_cas(co_store *s, co_kind kind, const char *id, const co_record *r,
		  const co_version *expected, const char *why)
{
	int probe, error;

	if ((error = co_store__call_begin(s, &probe)) < 0)
		return error;
	return co_store__call_end(s, probe,
				  s->be->cas(s->impl, kind, id, r, expected, why));
}

/* be_cas that, on CO_ERETRY, also gives what the key holds now where the
 * backend can read it back in the same call (*fresh 1). */
int co_store__be_cas_read(co_store *s, co_kind kind, const char *id, const co_record *r,
		       const co_version *expected, const char *why, const co_record *prev,
		       co_record **cur, co_version *cur_ver, int *fresh)
{
	int probe, error;

	*fresh = 0;
	if (s->be->cas_read == NULL)
		return be_cas(s, kind, id, r, expected, why);
	if ((error = co_store__call_begin(s, &probe)) < 0)
		return error;
	return co_store__call_end(s, probe,
			s->be->cas_read(s->impl, kind, id, r, expected, why, prev, cur, cur_ver,
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
	return co_store__call_end(s, probe, s->be->ping(s->impl));
}

int co_store__too_busy(co_store *s, const char *what, const char *id)
{
	return co_error_set(CO_EUNAVAIL,
			    "%s %s: %s %s: gave up after %d compare-and-swap rounds",
			    s->be->name, co_store_describe(s), what, id, MAX_ROUNDS);
}

/* Read and apply the claim-expiry rule.  *ver is set even when absent. */
int co_store__read_now(co_record **out, co_version *ver, co_store *s, co_kind kind,
		    const char *id)
{
	int error;

	memset(ver, 0, sizeof(*ver));
	if ((error = co_store__be_get(s, out, ver, kind, id)) < 0)
		return error;
	co_record_normalize(*out, co_time_now());
	return 0;
}

int co_store__not_found(co_kind kind, const char *id)
{
	return co_error_set(CO_ENOTFOUND, "%s %s not found", co_kind_name(kind), id);
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
	error = co_store__read_now(out, &ver, s, kind, id);
	memcpy(version, ver.v, sizeof(ver.v));
	if (error == CO_ENOTFOUND)
		return co_store__not_found(kind, id);
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

	if ((error = co_store__call_begin(s, &probe)) < 0)
		return error;
	return co_store__call_end(s, probe, s->be->scan(s->impl, flags, fn, ctx));
}

int co_store_read_blob(char **out, size_t *len, co_store *s, const unsigned char *blob_id)
{
	int probe, error;

	if (s->be->read_blob == NULL)
		return co_error_set(CO_EINVAL, "%s %s keeps no blobs to read by id",
				    s->be->name, co_store_describe(s));
	if ((error = co_store__call_begin(s, &probe)) < 0)
		return error;
	return co_store__call_end(s, probe, s->be->read_blob(out, len, s->impl, blob_id));
}

int co_store_list(co_record_list *out, co_store *s, co_kind kind)
{
	co_record_list l = {0};
	int64_t now = co_time_now();
	size_t i;
	int probe, error;

	if ((error = co_store__call_begin(s, &probe)) < 0)
		return error;
	if ((error = co_store__call_end(s, probe, s->be->list(&l, s->impl, kind))) < 0) {
		co_record_list_clear(&l);
		return error;
	}
	for (i = 0; i < l.n; i++)
		co_record_normalize(l.items[i], now);
	co_record_list_sort(&l);
	*out = l;
	return 0;
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
	if ((error = co_store__call_begin(s, &probe)) < 0 ||
	    (error = co_store__call_end(s, probe, s->be->watch_open(&w->impl, s->impl,
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
