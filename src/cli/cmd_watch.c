/*
 * cmd_watch.c - `cutover watch [--prefix tasks/]`: changes as NDJSON.
 *
 * One JSON object per line, flushed at once so that a pipe reader sees each
 * event when it happens:
 *
 *   {"type":"put","kind":"task","id":"P0.1","store":"etcd","record":{...}}
 *   {"type":"delete","kind":"swarm","id":"s1","store":"git","record":null}
 *
 * The record is its canonical compact JSON, and IDs are restricted to
 * [A-Za-z0-9._-] (DESIGN §1), so no escaping is needed to build the line.
 *
 * SIGINT and SIGTERM end the watch cleanly: the handler only sets a flag,
 * and the loop waits for events in short slices so that it notices the flag
 * promptly without interrupting the store in the middle of a read.  A
 * closed stdout (the reader went away) ends it too.  Output is NDJSON
 * whatever --json says.
 */
#include "cli.h"

#include "../core/error.h"
#include "router/router.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_WATCH "cutover watch [--prefix tasks/]"

/* How long one wait for an event may last before the stop flag is checked. */
#define SLICE_MS 200

static const char h_watch[] =
    "usage: " U_WATCH "\n\n"
    "Print every change to records under the prefix (\"\" = all, tasks/, swarms/,\n"
    "or narrower such as tasks/P0.) as one JSON object per line, until\n"
    "interrupted.  Events start from now.  etcd streams them; git finds them by\n"
    "polling every git.poll_interval (CUTOVER_GIT_POLL_INTERVAL, default 30s).\n"
    "Through the router (no --backend) each ID's events come from the store that\n"
    "is primary for it now; a flag change or the kill switch switches the source\n"
    "while the watch runs.\n\n"
    "  "
    "{\"type\":\"put\",\"kind\":\"task\",\"id\":\"P0.1\",\"store\":\"etcd\",\"record\":{."
    "..}}\n"
    "  "
    "{\"type\":\"delete\",\"kind\":\"swarm\",\"id\":\"s1\",\"store\":\"etcd\",\"record\":"
    "null}\n\n"
    "Examples:\n"
    "  cutover watch --prefix tasks/\n"
    "  cutover --backend etcd watch --prefix tasks/\n"
    "  cutover --backend etcd watch | jq -c 'select(.record.status == \"claimed\")'\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int print_event(const co_event *e)
{
	char *json = NULL;

	if (e->record && (json = co_record_to_json(e->record, 0)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	printf("{\"type\":\"%s\",\"kind\":\"%s\",\"id\":\"%s\",\"store\":\"%s\","
	       "\"record\":%s}\n",
	       e->type == CO_EVENT_PUT ? "put" : "delete", co_kind_name(e->kind), e->id,
	       e->store ? e->store : "", json ? json : "null");
	free(json);
	if (fflush(stdout) != 0 || ferror(stdout))
		return 1; /* the reader went away: stop, not an error */
	return 0;
}

int co_cli_watch(int argc, char **argv, co_cli *ctx)
{
	const char *prefix = "", *pos[1];
	co_cli_opt opts[] = {{"prefix", &prefix, NULL}, {NULL, NULL, NULL}};
	struct sigaction sa, old_int, old_term, old_pipe;
	co_watch *w = NULL;
	co_router_watch *rw = NULL;
	co_cli_data d = {0};
	co_event *e = NULL;
	char what[512];
	size_t n;
	int error;

	if ((error = co_cli_parse(pos, 0, &n, ctx, argc, argv, opts, U_WATCH, h_watch)) !=
	    0)
		return error < 0 ? error : 0;
	if (*prefix && strncmp(prefix, "tasks/", 6) != 0 &&
	    strncmp(prefix, "swarms/", 7) != 0 && strcmp(prefix, "tasks") != 0 &&
	    strcmp(prefix, "swarms") != 0)
		return co_cli_usage_error(U_WATCH,
					  "--prefix \"%s\": must start with tasks/ "
					  "or swarms/",
					  prefix);

	/* No SA_RESTART: a blocking wait inside the store returns early. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	stop_requested = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old_pipe);

	if ((error = co_cli_data_open(&d, ctx)) < 0)
		goto done;
	if (d.store)
		error = co_store_watch(&w, d.store, prefix);
	else
		error = co_router_watch_open(&rw, d.rt->router, prefix);
	if (error < 0)
		goto done;
	co_cli_data_describe(what, sizeof(what), &d);
	fprintf(stderr, "cutover: watching %s on %s\n", *prefix ? prefix : "everything",
		what);
	while (!stop_requested) {
		error = w ? co_watch_next(&e, w, SLICE_MS)
			  : co_router_watch_next(&e, rw, SLICE_MS);
		if (error < 0)
			goto done;
		if (e == NULL)
			continue;
		error = print_event(e);
		co_event_free(e);
		e = NULL;
		if (error != 0) {
			error = error < 0 ? error : 0;
			goto done;
		}
	}
	error = 0;
done:
	co_watch_close(w);
	co_router_watch_close(rw);
	co_cli_data_close(&d);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	return error;
}
