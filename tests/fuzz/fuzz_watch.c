/*
 * fuzz_watch.c - the etcd watch stream as the store's watch thread decodes
 * it (etcd_store_internal.h): bytes of a streaming POST /v3/watch, split
 * on newlines, each line {"result":{...}} or {"error":{...}}.
 *
 * The seeds are streams captured from a real etcd 3.4 with curl: created,
 * PUTs of a task and a swarm, a DELETE, a key outside tasks/ and swarms/;
 * a watch cancelled by compaction; an error without a final newline.
 *
 * DESIGN's appendix: "HTTP chunk boundaries are not message boundaries".
 * So the stream fed whole, one byte at a time and in 5-byte pieces must
 * give the same events and the same state.  And every event must be one
 * the router can use: an ID that validates, a PUT with the record of that
 * kind and ID, a DELETE without one.
 */
#include "fuzz_util.h"

#include "core/error.h"
#include "core/id.h"
#include "core/record.h"
#include "store/etcd_store_internal.h"

#include <stdint.h>

typedef struct outcome {
	int ended; /* the stream asked to end the transfer */
	size_t n;
	uint64_t hash;
	int created, fatal;
	int64_t next_rev;
	char error[512];
} outcome;

static uint64_t mix(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (h ^ 0xff) * 0x100000001b3ULL;
}

static void check_event(const co_event *ev)
{
	if (ev->id == NULL || co_id_validate(ev->id) < 0)
		fuzz_fail("event with an invalid id");
	if (ev->kind != CO_KIND_TASK && ev->kind != CO_KIND_SWARM)
		fuzz_fail("event %s of kind %d", ev->id, (int)ev->kind);
	if (ev->store == NULL || strcmp(ev->store, "etcd") != 0)
		fuzz_fail("event %s not from etcd", ev->id);
	if (ev->type == CO_EVENT_DELETE) {
		if (ev->record != NULL)
			fuzz_fail("DELETE of %s carries a record", ev->id);
	} else if (ev->type == CO_EVENT_PUT) {
		if (ev->record == NULL)
			fuzz_fail("PUT of %s without a record", ev->id);
		if (ev->record->kind != ev->kind || strcmp(ev->record->id, ev->id) != 0)
			fuzz_fail("PUT of %s %s carries %s %s", co_kind_name(ev->kind),
				  ev->id, co_kind_name(ev->record->kind), ev->record->id);
	} else {
		fuzz_fail("event %s of type %d", ev->id, (int)ev->type);
	}
}

static void run(outcome *o, const uint8_t *data, size_t size, size_t step)
{
	co_etcd__watch_decoder *d = NULL;
	co_etcd__watch_state st;
	co_event *ev;
	size_t off = 0;

	memset(o, 0, sizeof(*o));
	if (co_etcd__watch_decoder_new(&d, "/") < 0)
		fuzz_fail("decoder_new: %s", co_error_last());
	while (off < size && !o->ended) {
		size_t n = step && size - off > step ? step : size - off;

		o->ended = co_etcd__watch_decoder_feed(d, (const char *)data + off, n) < 0;
		off += n;
	}
	/* curl stops calling back once the callback refused bytes. */
	if (!o->ended)
		co_etcd__watch_decoder_end(d);
	while (co_etcd__watch_decoder_next(&ev, d) == 0 && ev) {
		check_event(ev);
		o->hash = mix(o->hash, ev->id);
		o->hash = mix(o->hash, ev->type == CO_EVENT_PUT ? "put" : "delete");
		if (ev->record) {
			char *js = co_record_to_json(ev->record, 0);

			if (js == NULL)
				fuzz_fail("record of %s does not print", ev->id);
			o->hash = mix(o->hash, js);
			free(js);
		}
		o->n++;
		co_event_free(ev);
	}
	co_etcd__watch_decoder_state(&st, d);
	o->created = st.created;
	o->fatal = st.fatal;
	o->next_rev = st.next_rev;
	snprintf(o->error, sizeof(o->error), "%s", st.error);
	co_etcd__watch_decoder_free(d);
	co_error_clear();
}

static void same(const outcome *a, const outcome *b, const char *how)
{
	if (a->n != b->n || a->hash != b->hash)
		fuzz_fail("%s: %zu events, whole: %zu (or other ones)", how, b->n, a->n);
	if (a->ended != b->ended || a->created != b->created || a->fatal != b->fatal ||
	    a->next_rev != b->next_rev || strcmp(a->error, b->error) != 0)
		fuzz_fail("%s: state differs (ended %d/%d, rev %lld/%lld, \"%s\"/\"%s\")",
			  how, b->ended, a->ended, (long long)b->next_rev,
			  (long long)a->next_rev, b->error, a->error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	outcome whole, bytes, pieces;

	run(&whole, data, size, 0);
	run(&bytes, data, size, 1);
	same(&whole, &bytes, "byte by byte");
	run(&pieces, data, size, 5);
	same(&whole, &pieces, "in 5-byte pieces");
	return 0;
}
