/*
 * http.c - the test client of http.h.
 */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "harness/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	co_test_resp *r = ud;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (nb == NULL)
		return 0;
	memcpy(nb + r->len, p, size * n);
	r->body = nb;
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	static const char name[] = "Retry-After:";
	co_test_resp *r = ud;
	size_t len = size * n, k = sizeof(name) - 1, j = 0;

	if (len > k && strncasecmp(p, name, k) == 0) {
		while (k < len && p[k] == ' ')
			k++;
		while (k < len && p[k] != '\r' && p[k] != '\n' &&
		       j + 1 < sizeof(r->retry_after))
			r->retry_after[j++] = p[k++];
		r->retry_after[j] = '\0';
	}
	return len;
}

long co_test_http_on(void *curl, co_test_resp *out, const char *base, const char *method,
		     const char *path, const char *body, size_t body_len,
		     const char *auth)
{
	return co_test_http_on_within(curl, out, base, method, path, body, body_len, auth,
				      60);
}

long co_test_http_on_within(void *curl, co_test_resp *out, const char *base,
			    const char *method, const char *path, const char *body,
			    size_t body_len, const char *auth, long timeout_s)
{
	struct curl_slist *h = NULL;
	char url[512], hdr[256];
	CURL *c = curl;
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	out->body = strdup("");
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	if (auth) {
		snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
		h = curl_slist_append(h, hdr);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else {
		/* a reused handle forgets the last request's body */
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	return rc == CURLE_OK ? out->status : -1;
}

void co_test_http(co_test_resp *out, const char *base, const char *method,
		  const char *path, const char *body, size_t body_len, const char *auth)
{
	CURL *c = curl_easy_init();

	assert_non_null(c);
	if (co_test_http_on(c, out, base, method, path, body, body_len, auth) < 0)
		fail_msg("%s %s: no answer", method, path);
	curl_easy_cleanup(c);
}
