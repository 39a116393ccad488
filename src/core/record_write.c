/*
 * record_write.c - the compact canonical JSON of a record, written straight
 * into one buffer.
 *
 * Every etcd value, SSE event, HTTP answer and comparison of records goes
 * through the compact form, and building it as a cJSON tree cost a dozen
 * allocations, a parse of the metadata and a print per record (about a
 * fifth of a cached claim's client CPU, and of a backfill's batch
 * building).  This writer produces the very same bytes: keys in the order
 * record.c's printer adds them, strings escaped as cJSON escapes them, the
 * rev printed as cJSON prints a number, and the metadata spliced in as
 * stored (co_record_set_metadata keeps it as cJSON's compact print of its
 * sorted tree, which printing again would reproduce).  What it does not
 * format itself (a rev past 10^15, a time outside years 1000-9999) it
 * leaves to cJSON.  tests/core/test_record.c and tests/fuzz/fuzz_record.c
 * hold it to cJSON's output.
 */
#include "record_write.h"

#include "error.h"
#include "textbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUTS(b, lit) co_textbuf_put((b), (lit), sizeof(lit) - 1)

/* A JSON string as cJSON prints one: \" \\ \b \f \n \r \t, other bytes
 * below 0x20 as \u00xx, everything else (UTF-8 included) as it is. */
static void put_str(co_textbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i, extra = 0, len = strlen(s);
	char *o;

	for (i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\')
			extra += (p[i] == '"' || p[i] == '\\' || p[i] == '\b' || p[i] == '\f' ||
				  p[i] == '\n' || p[i] == '\r' || p[i] == '\t')
				     ? 1
				     : 5;
	if (co_textbuf_room(b, len + extra + 2) < 0)
		return;
	o = b->p + b->n;
	*o++ = '"';
	if (extra == 0) {
		memcpy(o, s, len);
		o += len;
	} else {
		for (i = 0; i < len; i++) {
			unsigned char c = p[i];

			if (c >= 0x20 && c != '"' && c != '\\') {
				*o++ = (char)c;
				continue;
			}
			*o++ = '\\';
			switch (c) {
			case '"': *o++ = '"'; break;
			case '\\': *o++ = '\\'; break;
			case '\b': *o++ = 'b'; break;
			case '\f': *o++ = 'f'; break;
			case '\n': *o++ = 'n'; break;
			case '\r': *o++ = 'r'; break;
			case '\t': *o++ = 't'; break;
			default:
				*o++ = 'u';
				*o++ = '0';
				*o++ = '0';
				*o++ = hex[c >> 4];
				*o++ = hex[c & 15];
			}
		}
	}
	*o++ = '"';
	b->n = (size_t)(o - b->p);
	b->p[b->n] = '\0';
}

static void put_strv(co_textbuf *b, const co_strv *v)
{
	size_t i;

	PUTS(b, "[");
	for (i = 0; i < v->n; i++) {
		if (i)
			PUTS(b, ",");
		put_str(b, v->v[i]);
	}
	PUTS(b, "]");
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil,
 * inverted), valid for every year this writer is given. */
static void civil(int64_t z, int *y, unsigned *m, unsigned *d)
{
	int64_t era, yy;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	yy = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yy + (*m <= 2));
}

static void two(char *o, unsigned v)
{
	o[0] = (char)('0' + v / 10);
	o[1] = (char)('0' + v % 10);
}

/* "2026-11-22T10:00:00Z" as co_time_format writes it, or null for 0.
 * The caller has checked the range (years 1000-9999). */
static void put_time(co_textbuf *b, int64_t t)
{
	char s[24];
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	int64_t secs = t - days * 86400;
	unsigned m, d;
	int y;

	if (t == 0) {
		PUTS(b, "null");
		return;
	}
	civil(days, &y, &m, &d);
	s[0] = '"';
	s[1] = (char)('0' + y / 1000);
	s[2] = (char)('0' + y / 100 % 10);
	s[3] = (char)('0' + y / 10 % 10);
	s[4] = (char)('0' + y % 10);
	s[5] = '-';
	two(s + 6, m);
	s[8] = '-';
	two(s + 9, d);
	s[11] = 'T';
	two(s + 12, (unsigned)(secs / 3600));
	s[14] = ':';
	two(s + 15, (unsigned)(secs / 60 % 60));
	s[17] = ':';
	two(s + 18, (unsigned)(secs % 60));
	s[20] = 'Z';
	s[21] = '"';
	co_textbuf_put(b, s, 22);
}

static int time_ok(int64_t t)
{
	return t == 0 || (t >= CO_TIME_MIN && t <= CO_TIME_MAX);
}

static void put_opt_str(co_textbuf *b, const char *s)
{
	if (s)
		put_str(b, s);
	else
		PUTS(b, "null");
}

/* The rev as cJSON prints a number holding it: "%d" within int's range,
 * else "%1.15g", exact for every integer below 10^15. */
static void put_rev(co_textbuf *b, int64_t rev)
{
	char s[32];
	int n = snprintf(s, sizeof(s), "%lld", (long long)rev);

	co_textbuf_put(b, s, (size_t)n);
}

int co_record__write_compact(char **out, const co_record *r)
{
	co_textbuf b = CO_TEXTBUF_INIT;
	const char *meta = r->metadata ? r->metadata : "{}";

	if (r->rev <= -1000000000000000LL || r->rev >= 1000000000000000LL ||
	    !time_ok(r->updated_at) ||
	    (r->kind == CO_KIND_TASK
		 ? !time_ok(r->claim_expires_at) || !time_ok(r->created_at)
		 : !time_ok(r->registered_at)))
		return 1;
	co_textbuf_room(&b, 200 + strlen(meta));
	if (r->kind == CO_KIND_TASK) {
		PUTS(&b, "{\"blocked_by\":");
		put_strv(&b, &r->blocked_by);
		PUTS(&b, ",\"claim_expires_at\":");
		put_time(&b, r->claim_expires_at);
		PUTS(&b, ",\"created_at\":");
		put_time(&b, r->created_at);
		PUTS(&b, ",\"id\":");
		put_str(&b, r->id);
		PUTS(&b, ",\"kind\":\"task\",\"metadata\":");
		co_textbuf_put(&b, meta, strlen(meta));
		PUTS(&b, ",\"owner\":");
		put_opt_str(&b, r->owner);
		PUTS(&b, ",\"rev\":");
		put_rev(&b, r->rev);
		PUTS(&b, ",\"status\":");
		put_str(&b, co_status_name(r->status));
		PUTS(&b, ",\"type\":");
		put_str(&b, r->type ? r->type : "");
		PUTS(&b, ",\"updated_at\":");
		put_time(&b, r->updated_at);
		PUTS(&b, "}");
	} else {
		PUTS(&b, "{\"capabilities\":");
		put_strv(&b, &r->capabilities);
		PUTS(&b, ",\"id\":");
		put_str(&b, r->id);
		PUTS(&b, ",\"kind\":\"swarm\",\"metadata\":");
		co_textbuf_put(&b, meta, strlen(meta));
		PUTS(&b, ",\"registered_at\":");
		put_time(&b, r->registered_at);
		PUTS(&b, ",\"rev\":");
		put_rev(&b, r->rev);
		PUTS(&b, ",\"updated_at\":");
		put_time(&b, r->updated_at);
		PUTS(&b, "}");
	}
	if ((*out = co_textbuf_take(&b)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	return 0;
}
