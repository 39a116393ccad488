/*
 * fuzz_server.c - `cutover serve` as a client on the network sees it:
 * each input is raw bytes written to a TCP connection (path, query,
 * headers, body, several pipelined requests, or garbage), then the write
 * side is shut and every answer read until the server closes.
 *
 * LLVMFuzzerInitialize starts the server once, in-process, on 127.0.0.1:0
 * over a real bare git repo in a temp dir and an etcd endpoint where
 * nothing listens (calls fail at once), with flags at `git` and an admin
 * token, so that the admin endpoints are reachable by inputs that carry it
 * (the seeds and the dictionary do).  Flags an input changed (a stage, a
 * rollback) are put back before the next one.
 *
 * Invariants, besides not crashing:
 *   - every answer is a well-formed HTTP/1.x status line with a status
 *     this server (or libmicrohttpd for a malformed request) gives;
 *   - a JSON answer parses, and an error answer has error.code and
 *     error.message; a 503 has Retry-After, a 401 WWW-Authenticate;
 *   - when every answer was a 4xx (or none came), nothing changed: the
 *     git branch, the flags file and the outbox are as before (DESIGN §7:
 *     "a bad request changes nothing").
 *
 * FUZZ_SERVER_SHOW=1 in the environment prints every answer (to see what
 * a seed or a crash input gets).
 */
#include "fuzz_util.h"

#include "core/error.h"
#include "core/outbox.h"
#include "core/state.h"
#include "flags/flags.h"
#include "flags/watcher.h"
#include "router/router.h"
#include "server/server.h"
#include "store/etcd_store.h"
#include "store/git_store.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "fuzz-token"
/* Longest wait for the server's answers to one input (libFuzzer's
 * -timeout is 5 s in scripts/fuzz). */
#define READ_MS 3000

static struct {
	char dir[128], repo[300], flags_path[300], endpoint[64];
	co_store *git, *etcd;
	co_state *st;
	co_flags_watcher *fw;
	co_router *r;
	co_server *srv;
	co_flags initial;
	int port;
} fx;

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		fuzz_fail("no free port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd); /* and nothing listens there: etcd is "down" */
	return port;
}

static void must(int error, const char *what)
{
	if (error < 0)
		fuzz_fail("%s: %s", what, co_error_last());
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	co_git_opts go = CO_GIT_OPTS_INIT;
	co_etcd_opts eo = CO_ETCD_OPTS_INIT;
	co_router_opts ro = CO_ROUTER_OPTS_INIT;
	co_server_opts so = CO_SERVER_OPTS_INIT;
	const char *eps[1];
	char cmd[512];

	(void)argc;
	(void)argv;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/cutover-fuzz-server-XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		fuzz_fail("mkdtemp: %s", strerror(errno));
	snprintf(fx.repo, sizeof(fx.repo), "%s/repo.git", fx.dir);
	snprintf(fx.flags_path, sizeof(fx.flags_path), "%s/flags.yaml", fx.dir);
	snprintf(cmd, sizeof(cmd), "git init --bare -q -b main '%s'", fx.repo);
	if (system(cmd) != 0)
		fuzz_fail("%s failed", cmd);
	snprintf(fx.endpoint, sizeof(fx.endpoint), "http://127.0.0.1:%d", free_port());
	eps[0] = fx.endpoint;

	go.repo = fx.repo;
	go.poll_interval_ms = 100;
	go.fsync = 0; /* speed; durability is not what is fuzzed */
	eo.endpoints = eps;
	eo.n_endpoints = 1;
	eo.connect_timeout_ms = 200;
	eo.request_timeout_ms = 500;
	must(co_git_store_open(&fx.git, &go), "git store");
	must(co_etcd_store_open(&fx.etcd, &eo), "etcd store");
	must(co_state_open(&fx.st, fx.dir), "state");
	co_flags_init(&fx.initial);
	must(co_flags_save(&fx.initial, fx.flags_path), "flags");
	must(co_flags_watcher_open(&fx.fw, fx.flags_path), "flags watcher");
	ro.git = fx.git;
	ro.etcd = fx.etcd;
	ro.state = fx.st;
	ro.flags = fx.fw;
	ro.background_drain = 1;
	must(co_router_open(&fx.r, &ro), "router");
	so.listen = "127.0.0.1:0";
	so.router = fx.r;
	so.state = fx.st;
	so.flags = fx.fw;
	so.flags_path = fx.flags_path;
	so.git = fx.git;
	so.etcd = fx.etcd;
	so.admin_token = TOKEN;
	must(co_server_start(&fx.srv, &so), "server");
	fx.port = co_server_port(fx.srv);
	/* The server lives as long as the process: libFuzzer exits without
	 * a hook, and the temp dir is left for the OS to clean. */
	return 0;
}

/* ---- what "changed nothing" compares ---- */

typedef struct snapshot {
	char ref[256];	   /* refs/heads/main, loose or packed */
	char flags[4096];  /* the flags file */
	int64_t outbox;	   /* pending entries */
} snapshot;

static void read_small(char *out, size_t len, const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0;

	if (f) {
		n = fread(out, 1, len - 1, f);
		fclose(f);
	}
	out[n] = '\0';
}

static void take(snapshot *s)
{
	char path[400], packed[200];

	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "%s/refs/heads/main", fx.repo);
	read_small(s->ref, sizeof(s->ref) - sizeof(packed), path);
	snprintf(path, sizeof(path), "%s/packed-refs", fx.repo);
	read_small(packed, sizeof(packed), path);
	strcat(s->ref, packed);
	read_small(s->flags, sizeof(s->flags), fx.flags_path);
	if (co_outbox_depth(&s->outbox, fx.st, NULL) < 0)
		s->outbox = -1;
	co_error_clear();
}

/* Put back the flags an earlier input changed (a stage, a rollback). */
static void reset_flags(void)
{
	co_flags cur;

	co_flags_watcher_get(&cur, fx.fw);
	if (co_flags_equal(&cur, &fx.initial))
		return;
	must(co_flags_save(&fx.initial, fx.flags_path), "flags reset");
	co_flags_watcher_reload(fx.fw);
	co_error_clear();
}

/* ---- the connection ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct buf {
	char *p;
	size_t len, cap;
} buf;

static void buf_add(buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			abort();
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* How an exchange ended. */
enum { END_EOF, END_RESET, END_TIMEOUT, END_STREAM };
static const char *const end_names[] = {"EOF", "reset", "timeout", "event stream"};

/* Send the input, shut the write side, read until EOF, the deadline, or
 * the headers of an event stream (which never ends by itself). */
static int exchange(buf *in, const uint8_t *data, size_t size)
{
	struct sockaddr_in a;
	int64_t until = now_ms() + READ_MS;
	size_t off = 0;
	int fd, end;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)fx.port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/*
	 * libFuzzer's timer (SIGALRM, every second) interrupts system calls:
	 * each one is retried on EINTR.  Taking an interrupted poll() for the
	 * end of the answers once let a request finish during the next input,
	 * which then seemed to have changed state with a 4xx.
	 */
	for (;;) {
		if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			fuzz_fail("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		if (errno != EINTR)
			fuzz_fail("connect to the server: %s", strerror(errno));
		close(fd); /* an interrupted connect goes on alone: start over */
	}
	while (off < size) {
		ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the server may close on a bad request at once */
		off += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = until - now_ms();
		char chunk[4096];
		ssize_t n;

		int rc;

		if (left <= 0 || (rc = poll(&p, 1, (int)left)) == 0) {
			end = END_TIMEOUT;
			break;
		}
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			fuzz_fail("poll: %s", strerror(errno));
		}
		if ((n = recv(fd, chunk, sizeof(chunk), 0)) < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			end = n == 0 ? END_EOF : END_RESET;
			break;
		}
		buf_add(in, chunk, (size_t)n);
		if (strstr(in->p, "\r\n\r\n") &&
		    strstr(in->p, "Content-Type: text/event-stream\r\n")) {
			end = END_STREAM;
			break;
		}
	}
	close(fd);
	return end;
}

/* ---- the answers ---- */

static const char *header(const char *head, const char *end, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = head; p && p < end; p = strstr(p, "\r\n")) {
		p += p == head ? 0 : 2;
		if ((size_t)(end - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
			p += n + 1;
			while (*p == ' ')
				p++;
			return p;
		}
		if (p == head)
			p = strstr(p, "\r\n");
	}
	return NULL;
}

static int status_known(int status)
{
	static const int known[] = {200, 201, 400, 401, 403, 404, 405, 409, 413,
				    414, 417, 431, 501, 503, 505};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (status == known[i])
			return 1;
	return 0;
}

static void check_json(int status, const char *body, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(body, len), *e;

	if (j == NULL)
		fuzz_fail("status %d with a JSON body that does not parse: %.*s", status,
			  (int)len, body);
	if (status >= 400) {
		e = cJSON_GetObjectItemCaseSensitive(j, "error");
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "code")) ||
		    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")))
			fuzz_fail("status %d without error.code/message: %.*s", status,
				  (int)len, body);
	}
	cJSON_Delete(j);
}

/*
 * Walk the answers in `in`.  *all_4xx: every answer was a 4xx (true for
 * none); *whole: the walk understood every byte (else the verdict on
 * state is not drawn: a HEAD answer has a length and no body, say).
 */
static void check_answers(const buf *in, int *all_4xx, int *whole)
{
	const char *p = in->p, *end = in->p + in->len;

	*all_4xx = 1;
	*whole = 1;
	while (p < end) {
		const char *hend, *v, *body;
		int status = 0, n = 0;
		size_t blen = 0;

		if (sscanf(p, "HTTP/1.%*1[01] %3d%n", &status, &n) != 1 || n != 12) {
			if (p == in->p)
				fuzz_fail("not an HTTP status line: %.40s", p);
			*whole = 0; /* lost our place after a body we could not size */
			return;
		}
		if (!status_known(status))
			fuzz_fail("unexpected HTTP status %d", status);
		if (status < 400 || status > 499)
			*all_4xx = 0;
		if ((hend = strstr(p, "\r\n\r\n")) == NULL) {
			*whole = 0;
			return;
		}
		body = hend + 4;
		if (status == 503 && header(p, hend, "Retry-After") == NULL)
			fuzz_fail("503 without Retry-After");
		if (status == 401 && header(p, hend, "WWW-Authenticate") == NULL)
			fuzz_fail("401 without WWW-Authenticate");
		v = header(p, hend, "Content-Type");
		if (v && strncmp(v, "text/event-stream", 17) == 0)
			return; /* a watch: nothing after it is read */
		if ((v = header(p, hend, "Content-Length")) != NULL) {
			blen = strtoul(v, NULL, 10);
			/* The answer to a HEAD has a length and no body: the next
			 * answer starts right away. */
			if ((size_t)(end - body) >= 7 && strncmp(body, "HTTP/1.", 7) == 0)
				blen = 0;
		} else {
			*whole = 0; /* chunked or to EOF: not ours */
			return;
		}
		if ((size_t)(end - body) < blen) {
			*whole = 0;
			return;
		}
		v = header(p, hend, "Content-Type");
		if (v && strncmp(v, "application/json", 16) == 0 && blen > 0)
			check_json(status, body, blen);
		p = body + blen;
	}
}

/*
 * The server keeps state between inputs, so the input that broke an
 * invariant may only have finished what an earlier one began: the last
 * few are kept and printed with the failure.
 */
#define HISTORY 8
static struct {
	char *p[HISTORY];
	size_t len[HISTORY];
	unsigned next;
} history;

static void remember(const uint8_t *data, size_t size)
{
	unsigned i = history.next++ % HISTORY;

	free(history.p[i]);
	history.p[i] = fuzz_strndup(data, size);
	history.len[i] = size;
}

static int last_end;

static void changed(const char *what)
{
	unsigned k;

	fprintf(stderr, "this exchange ended with %s\n", end_names[last_end]);
	fprintf(stderr, "the inputs before this one, oldest first:\n");
	for (k = history.next > HISTORY ? history.next - HISTORY : 0;
	     k + 1 < history.next; k++) {
		unsigned i = k % HISTORY;

		fprintf(stderr, "---- input %u (%zu bytes) ----\n%.*s\n", k, history.len[i],
			(int)history.len[i], history.p[i]);
	}
	fuzz_fail("answered 4xx (or not at all), yet %s", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	snapshot before, after;
	buf in = {0};
	int all_4xx, whole;

	remember(data, size);
	reset_flags();
	take(&before);
	last_end = exchange(&in, data, size);
	/* Cut short, the answers say nothing about what the server did. */
	whole = last_end == END_EOF || last_end == END_STREAM;
	if (getenv("FUZZ_SERVER_SHOW"))
		fprintf(stderr, "---- answer ----\n%s\n", in.len ? in.p : "(none)");
	all_4xx = 1;
	if (in.len > 0) {
		int understood;

		check_answers(&in, &all_4xx, &understood);
		whole = whole && understood;
	}
	if (all_4xx && whole) {
		take(&after);
		if (strcmp(before.ref, after.ref) != 0)
			changed("git moved");
		if (strcmp(before.flags, after.flags) != 0) {
			fprintf(stderr, "flags before:\n%s\nflags after:\n%s\n", before.flags,
				after.flags);
			changed("the flags changed");
		}
		if (before.outbox != after.outbox) {
			fprintf(stderr, "outbox: %lld then %lld\n", (long long)before.outbox,
				(long long)after.outbox);
			changed("the outbox changed");
		}
	}
	free(in.p);
	return 0;
}
