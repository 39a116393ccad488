/*
 * http.h - one HTTP request to a `cutover serve` under test, as a swarm in
 * any language would make it (libcurl, a fresh connection each time).
 */
#ifndef CO_TEST_HTTP_H
#define CO_TEST_HTTP_H

#include <stddef.h>

typedef struct co_test_resp {
	long status;
	char *body; /* malloc'd, NUL-terminated, never NULL after a request */
	size_t len;
	char retry_after[32]; /* the Retry-After header's value, "" if none */
} co_test_resp;

/*
 * `method` `base``path` with `body` (NULL: none) of body_len bytes and an
 * Authorization header value `auth` (NULL: none).  Fails the test (cmocka
 * fail_msg) if no HTTP answer comes within 60 s.  Free out->body.
 */
void co_test_http(co_test_resp *out, const char *base, const char *method,
		  const char *path, const char *body, size_t body_len, const char *auth);

/*
 * The same on the caller's libcurl easy handle `curl` (a CURL *), so that
 * its connection is kept alive between requests (a benchmark's client).
 * Returns the HTTP status, or -1 when no answer came (out->status 0);
 * fails nothing.  Free out->body.
 */
long co_test_http_on(void *curl, co_test_resp *out, const char *base, const char *method,
		     const char *path, const char *body, size_t body_len,
		     const char *auth);

/* co_test_http_on() with another bound than 60 s on the whole request (a
 * reconciliation under load through the admin API, say). */
long co_test_http_on_within(void *curl, co_test_resp *out, const char *base,
			    const char *method, const char *path, const char *body,
			    size_t body_len, const char *auth, long timeout_s);

#endif
