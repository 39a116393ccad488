/*
 * server_watch.c - GET /v1/watch: the router's merged watch streamed as
 * server-sent events from the connection's own thread, with keep-alive
 * comments while nothing happens, until the client goes or the server
 * stops.
 */
#include "server_internal.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- server-sent events --- */

/* How long one wait for an event lasts before a keep-alive comment. */
#define WATCH_WAIT_MS 500
/* Keep-alive comments at most every this many waits. */
#define WATCH_KEEPALIVE_EVERY 30

typedef struct sse {
	co_server *srv;
	co_router_watch *w;
	char *pending; /* text not yet handed to MHD */
	size_t len, off;
	int idle;
	int done;
} sse;

/* "event: put|delete\ndata: {...}\n\n" for one event, or NULL (OOM). */
static char *sse_format(const co_event *ev)
{
	cJSON *o = cJSON_CreateObject();
	char *data = NULL, *js, *out = NULL;
	size_t n;

	cJSON_AddStringToObject(o, "type", ev->type == CO_EVENT_PUT ? "put" : "delete");
	cJSON_AddStringToObject(o, "kind", co_kind_name(ev->kind));
	cJSON_AddStringToObject(o, "id", ev->id);
	cJSON_AddStringToObject(o, "store", ev->store ? ev->store : "");
	data = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	/* the record's JSON as it is: not parsed and printed again */
	if (data && ev->record && (js = co_record_to_json(ev->record, 0)) != NULL) {
		data = co_server__json_with(data, "record", js);
		free(js);
	}
	if (data == NULL)
		return NULL;
	n = strlen(data) + 32;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "event: %s\ndata: %s\n\n",
			 ev->type == CO_EVENT_PUT ? "put" : "delete", data);
	free(data);
	return out;
}

/*
 * MHD asks for more of the stream.  This runs in the connection's own
 * thread (thread per connection), so it may block: it waits for the next
 * event in slices of WATCH_WAIT_MS so that co_server_stop() is noticed,
 * and never returns 0 bytes (a keep-alive comment goes out instead).
 */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	sse *x = cls;
	size_t n;

	(void)pos;
	while (x->pending == NULL) {
		co_event *ev = NULL;
		int error, got;

		if (x->done || atomic_load(&x->srv->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		error = co_router_watch_next(&ev, x->w, WATCH_WAIT_MS);
		got = ev != NULL;
		if (error < 0) {
			char msg[600];

			snprintf(msg, sizeof(msg), "event: error\ndata: %s\n\n",
				 co_error_last());
			x->pending = strdup(msg);
			x->done = 1;
		} else if (ev) {
			x->pending = sse_format(ev);
			co_event_free(ev);
			x->idle = 0;
		} else if (++x->idle >= WATCH_KEEPALIVE_EVERY) {
			x->pending = strdup(": keep-alive\n\n");
			x->idle = 0;
		}
		if (x->pending) {
			x->len = strlen(x->pending);
			x->off = 0;
		} else if (error < 0 || got) {
			return MHD_CONTENT_READER_END_WITH_ERROR; /* out of memory */
		}
	}
	n = x->len - x->off < max ? x->len - x->off : max;
	memcpy(buf, x->pending + x->off, n);
	x->off += n;
	if (x->off == x->len) {
		free(x->pending);
		x->pending = NULL;
	}
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	sse *x = cls;

	co_router_watch_close(x->w);
	free(x->pending);
	free(x);
}

/*
 * GET /v1/watch[?prefix=tasks/]: the router's merged watch as server-sent
 * events.  Queues its own response (a stream); returns MHD_NO only when
 * nothing could be queued.  Errors before the stream starts are replies.
 */
int co_server__watch(reply *rp, co_server *s, struct MHD_Connection *c)
{
	const char *prefix =
	    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "prefix");
	struct MHD_Response *resp;
	sse *x;
	int error, ret;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		co_error_set(CO_ENOMEM, "out of memory");
		co_server__reply_code(rp, CO_ENOMEM, NULL);
		return 0;
	}
	x->srv = s;
	if ((error = co_router_watch_open(&x->w, s->router, prefix ? prefix : "")) < 0) {
		free(x);
		co_server__reply_code(rp, error, NULL);
		return 0;
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, x,
						 sse_free);
	if (resp == NULL) {
		sse_free(x);
		co_error_set(CO_ENOMEM, "out of memory");
		co_server__reply_code(rp, CO_ENOMEM, NULL);
		return 0;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp) == MHD_YES ? 1 : -1;
	MHD_destroy_response(resp);
	return ret;
}
