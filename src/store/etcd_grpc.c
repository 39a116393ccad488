/*
 * etcd_grpc.c - the KV.Range RPC over gRPC, and the KV.Txn messages, by
 * hand (etcd_grpc.h).
 *
 * Protobuf: a message is a sequence of (tag, value) with tag = field << 3 |
 * wire type; wire type 0 is a varint, 2 a length-prefixed byte string
 * (also embedded messages), 1 and 5 fixed 64 and 32 bits.  From etcd's
 * rpc.proto and kv.proto, only these fields are used:
 *
 *   RangeRequest   1 key (bytes), 2 range_end (bytes), 3 limit, 4 revision
 *   RangeResponse  1 header (ResponseHeader), 2 kvs (repeated KeyValue),
 *                  3 more (bool), 4 count
 *   ResponseHeader 3 revision
 *   KeyValue       1 key, 3 mod_revision, 5 value
 *   TxnRequest     1 compare (repeated Compare), 2 success and 3 failure
 *                  (repeated RequestOp)
 *   Compare        1 result, 2 target, 3 key, then one of 4 version,
 *                  5 create_revision, 6 mod_revision, 7 value, 8 lease
 *   RequestOp      one of 1 RangeRequest, 2 PutRequest (1 key, 2 value,
 *                  3 lease), 3 DeleteRangeRequest (1 key)
 *   TxnResponse    1 header, 2 succeeded (bool), 3 responses (repeated
 *                  ResponseOp: one of 1 RangeResponse, 2 put's, 3 delete's)
 *
 * Unknown fields are skipped by wire type, as protobuf requires, so newer
 * etcd versions that add fields still decode.
 *
 * gRPC over HTTP/2: POST /etcdserverpb.KV/Range with content-type
 * application/grpc and "te: trailers"; the body is one frame (a zero
 * compression byte, a 4-byte big-endian length, the message).  The status
 * comes as the grpc-status header in the trailers, or in the headers of a
 * trailers-only answer; libcurl passes both to the header callback.
 */
#include "etcd_grpc.h"

#include "../core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

static int grow(co_grpc_buf *b, size_t need)
{
	size_t cap;
	unsigned char *p;

	if (b->len + need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + need)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	b->p = p;
	b->cap = cap;
	return 0;
}

int co_grpc_buf_put(co_grpc_buf *b, const void *p, size_t len)
{
	int error;

	if ((error = grow(b, len)) < 0)
		return error;
	if (len)
		memcpy(b->p + b->len, p, len);
	b->len += len;
	return 0;
}

static int put_varint(co_grpc_buf *b, uint64_t v)
{
	unsigned char tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return co_grpc_buf_put(b, tmp, n);
}

static int put_field_bytes(co_grpc_buf *b, unsigned field, const char *p, size_t len)
{
	int error;

	if ((error = put_varint(b, (uint64_t)field << 3 | WIRE_LEN)) < 0 ||
	    (error = put_varint(b, len)) < 0)
		return error;
	return co_grpc_buf_put(b, p, len);
}

static int put_field_varint(co_grpc_buf *b, unsigned field, int64_t v)
{
	int error;

	if (v == 0) /* proto3: a zero scalar is not sent */
		return 0;
	if ((error = put_varint(b, (uint64_t)field << 3 | WIRE_VARINT)) < 0)
		return error;
	return put_varint(b, (uint64_t)v);
}

/* Write the frame header's length (b starts with the 5 bytes of it). */
static int put_frame_len(co_grpc_buf *b)
{
	size_t n = b->len - 5;

	if ((uint64_t)n > UINT32_MAX)
		return co_error_set(CO_EINVAL, "etcd gRPC: message of %zu bytes", n);
	b->p[1] = (unsigned char)(n >> 24);
	b->p[2] = (unsigned char)(n >> 16);
	b->p[3] = (unsigned char)(n >> 8);
	b->p[4] = (unsigned char)n;
	return 0;
}

int co_grpc_range_encode(co_grpc_buf *out, const co_grpc_range *req)
{
	co_grpc_buf b = {0};
	unsigned char frame[5] = {0};
	int error;

	if ((error = co_grpc_buf_put(&b, frame, sizeof(frame))) < 0 ||
	    (error = put_field_bytes(&b, 1, req->key, req->key_len)) < 0 ||
	    (req->range_end_len &&
	     (error = put_field_bytes(&b, 2, req->range_end, req->range_end_len)) < 0) ||
	    (error = put_field_varint(&b, 3, req->limit)) < 0 ||
	    (error = put_field_varint(&b, 4, req->revision)) < 0 ||
	    (error = put_frame_len(&b)) < 0) {
		free(b.p);
		return error;
	}
	*out = b;
	return 0;
}

/* The message of a Txn.  Nested messages are written into their own
 * buffer first (protobuf prefixes them with their length). */

/* A nested message `inner` as field `field` of b; inner is emptied. */
static int put_nested(co_grpc_buf *b, unsigned field, co_grpc_buf *inner)
{
	int error = put_field_bytes(b, field, (const char *)inner->p, inner->len);

	inner->len = 0;
	return error;
}

static int put_compare(co_grpc_buf *b, const co_grpc_compare *c)
{
	int error;

	if (c->target < CO_GRPC_CMP_VERSION || c->target > CO_GRPC_CMP_LEASE ||
	    c->result < CO_GRPC_EQUAL || c->result > CO_GRPC_NOT_EQUAL)
		return co_error_set(CO_EINVAL, "etcd gRPC: unknown compare %d/%d", c->target,
				    c->result);

	if ((error = put_field_varint(b, 1, c->result)) < 0 ||
	    (error = put_field_varint(b, 2, c->target)) < 0 ||
	    (error = put_field_bytes(b, 3, c->key, c->key_len)) < 0)
		return error;
	/* one of target_union, sent even when zero: it says which one */
	if (c->target == CO_GRPC_CMP_VALUE)
		return put_field_bytes(b, 7, c->value, c->value_len);
	if ((error = put_varint(b, (uint64_t)(c->target == CO_GRPC_CMP_VERSION  ? 4
					      : c->target == CO_GRPC_CMP_CREATE ? 5
					      : c->target == CO_GRPC_CMP_MOD	? 6
										: 8)
					   << 3 |
				       WIRE_VARINT)) < 0)
		return error;
	return put_varint(b, (uint64_t)c->number);
}

/* A RequestOp: its one request as a nested message of field op->type. */
static int put_op(co_grpc_buf *b, co_grpc_buf *req, const co_grpc_op *op)
{
	int error;

	if (op->type != CO_GRPC_OP_RANGE && op->type != CO_GRPC_OP_PUT &&
	    op->type != CO_GRPC_OP_DELETE)
		return co_error_set(CO_EINVAL, "etcd gRPC: unknown txn op %d", op->type);
	req->len = 0;
	if ((error = put_field_bytes(req, 1, op->key, op->key_len)) < 0)
		return error;
	if (op->type == CO_GRPC_OP_PUT &&
	    ((error = put_field_bytes(req, 2, op->value, op->value_len)) < 0 ||
	     (error = put_field_varint(req, 3, op->lease)) < 0))
		return error;
	if (op->type == CO_GRPC_OP_RANGE && op->keys_only &&
	    (error = put_field_varint(req, 8, 1)) < 0)
		return error;
	return put_nested(b, (unsigned)op->type, req);
}

int co_grpc_txn_encode(co_grpc_buf *out, const co_grpc_txn *t)
{
	co_grpc_buf b = {0}, msg = {0}, req = {0};
	unsigned char frame[5] = {0};
	const co_grpc_op *ops[2] = {t->success, t->failure};
	size_t nops[2] = {t->n_success, t->n_failure}, i, k;
	int error;

	if ((error = co_grpc_buf_put(&b, frame, sizeof(frame))) < 0)
		goto done;
	for (i = 0; i < t->n_compare; i++)
		if ((error = put_compare(&msg, &t->compare[i])) < 0 ||
		    (error = put_nested(&b, 1, &msg)) < 0)
			goto done;
	for (k = 0; k < 2; k++)
		for (i = 0; i < nops[k]; i++)
			if ((error = put_op(&msg, &req, &ops[k][i])) < 0 ||
			    (error = put_nested(&b, (unsigned)k + 2, &msg)) < 0)
				goto done;
	error = put_frame_len(&b);
done:
	free(msg.p);
	free(req.p);
	if (error < 0) {
		free(b.p);
		return error;
	}
	*out = b;
	return 0;
}

/* ---- decoding ---- */

typedef struct reader {
	const unsigned char *p, *end;
} reader;

static int malformed(const char *what)
{
	return co_error_set(CO_EINVAL, "etcd gRPC: malformed RangeResponse (%s)", what);
}

/* What the readers below return when the input ends inside a field: the
 * stream waits for more bytes; inside a whole message it is malformed. */
#define TRUNCATED 1

static int get_varint(uint64_t *out, reader *r)
{
	uint64_t v = 0;
	unsigned shift;

	for (shift = 0; shift < 64; shift += 7) {
		unsigned char c;

		if (r->p == r->end)
			return TRUNCATED;
		c = *r->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return malformed("varint too long");
}

/* One field as read: its number, wire type and value. */
typedef struct field {
	unsigned num;
	int wire;
	uint64_t varint;	  /* WIRE_VARINT */
	const unsigned char *val; /* WIRE_LEN: the bytes, `len` of them */
	size_t len;
} field;

static int next_field(field *f, reader *r)
{
	uint64_t tag = 0, n = 0;
	int error;

	memset(f, 0, sizeof(*f));
	if ((error = get_varint(&tag, r)) != 0)
		return error;
	f->num = (unsigned)(tag >> 3);
	f->wire = (int)(tag & 7);
	switch (f->wire) {
	case WIRE_VARINT:
		return get_varint(&f->varint, r);
	case WIRE_I64:
	case WIRE_I32:
		n = f->wire == WIRE_I64 ? 8 : 4;
		if ((size_t)(r->end - r->p) < n)
			return TRUNCATED;
		r->p += n;
		return 0;
	case WIRE_LEN:
		if ((error = get_varint(&n, r)) != 0)
			return error;
		if ((size_t)(r->end - r->p) < n)
			return TRUNCATED;
		f->val = r->p;
		f->len = (size_t)n;
		r->p += n;
		return 0;
	default:
		return malformed("unknown wire type");
	}
}

static int decode_header(int64_t *revision, const unsigned char *p, size_t len)
{
	reader r = {p, p + len};
	field f;
	int error;

	while (r.p < r.end) {
		if ((error = next_field(&f, &r)) != 0)
			return error < 0 ? error : malformed("truncated header");
		if (f.num == 3 && f.wire == WIRE_VARINT)
			*revision = (int64_t)f.varint;
	}
	return 0;
}

static int decode_kv(co_grpc_kv *kv, const unsigned char *p, size_t len)
{
	reader r = {p, p + len};
	field f;
	int error;

	memset(kv, 0, sizeof(*kv));
	kv->key = kv->value = "";
	while (r.p < r.end) {
		if ((error = next_field(&f, &r)) != 0)
			return error < 0 ? error : malformed("truncated kv");
		if (f.num == 1 && f.wire == WIRE_LEN) {
			kv->key = (const char *)f.val;
			kv->key_len = f.len;
		} else if (f.num == 3 && f.wire == WIRE_VARINT) {
			kv->mod_revision = (int64_t)f.varint;
		} else if (f.num == 5 && f.wire == WIRE_LEN) {
			kv->value = (const char *)f.val;
			kv->value_len = f.len;
		} else if (f.num == 6 && f.wire == WIRE_VARINT) {
			kv->lease = (int64_t)f.varint;
		}
	}
	return 0;
}

/* One top-level field of a RangeResponse. */
static int range_field(co_grpc_stream *st, const field *f)
{
	co_grpc_kv kv;
	int error;

	if (f->num == 1 && f->wire == WIRE_LEN)
		return decode_header(&st->info.revision, f->val, f->len);
	if (f->num == 2 && f->wire == WIRE_LEN) {
		if ((error = decode_kv(&kv, f->val, f->len)) < 0)
			return error;
		return st->fn ? st->fn(st->ctx, &kv) : 0;
	}
	if (f->num == 3 && f->wire == WIRE_VARINT)
		st->info.more = f->varint != 0;
	else if (f->num == 4 && f->wire == WIRE_VARINT)
		st->info.count = (int64_t)f->varint;
	return 0;
}

void co_grpc_stream_init(co_grpc_stream *st, co_grpc_kv_fn fn, void *ctx)
{
	memset(st, 0, sizeof(*st));
	st->fn = fn;
	st->ctx = ctx;
}

void co_grpc_stream_free(co_grpc_stream *st)
{
	free(st->pending.p);
	memset(&st->pending, 0, sizeof(st->pending));
}

/* Decode the whole fields at the front of st->pending and drop them. */
static int stream_drain(co_grpc_stream *st)
{
	reader r = {st->pending.p, st->pending.p + st->pending.len};
	const unsigned char *start;
	field f;
	int error = 0;

	while (r.p < r.end) {
		start = r.p;
		if ((error = next_field(&f, &r)) == TRUNCATED) {
			r.p = start; /* wait for the rest of this field */
			error = 0;
			break;
		}
		if (error < 0 || (error = range_field(st, &f)) < 0)
			break;
	}
	if (r.p > st->pending.p) {
		st->pending.len = (size_t)(r.end - r.p);
		memmove(st->pending.p, r.p, st->pending.len);
	}
	return error;
}

int co_grpc_stream_feed(co_grpc_stream *st, const unsigned char *p, size_t len)
{
	size_t k;
	int error;

	if (st->error)
		return st->error;
	while (len > 0) {
		if (st->frame_len < 5) {
			st->frame[st->frame_len++] = *p++;
			len--;
			if (st->frame_len < 5)
				continue;
			if (st->frame[0] != 0)
				return st->error = co_error_set(CO_EINVAL,
								"etcd gRPC: compressed "
								"response not asked for");
			if (st->frames++ > 0)
				return st->error = co_error_set(
					   CO_EINVAL,
					   "etcd gRPC: more than one response message");
			st->msg_left = (size_t)st->frame[1] << 24 |
				       (size_t)st->frame[2] << 16 |
				       (size_t)st->frame[3] << 8 | (size_t)st->frame[4];
			continue;
		}
		if (st->msg_left == 0)
			return st->error = co_error_set(
				   CO_EINVAL,
				   "etcd gRPC: bytes after the response message");
		k = len < st->msg_left ? len : st->msg_left;
		if ((error = co_grpc_buf_put(&st->pending, p, k)) < 0 ||
		    (error = stream_drain(st)) < 0)
			return st->error = error;
		st->msg_left -= k;
		p += k;
		len -= k;
		if (st->msg_left == 0)
			st->frame_len = 5; /* done; a second frame is refused above */
	}
	return 0;
}

int co_grpc_stream_end(co_grpc_stream *st)
{
	if (st->error)
		return st->error;
	if (st->frames == 0)
		return st->error =
			   co_error_set(CO_EINVAL, "etcd gRPC: response has no message");
	if (st->msg_left > 0 || st->pending.len > 0)
		return st->error = malformed("truncated");
	return 0;
}

int co_grpc_range_decode(const unsigned char *msg, size_t len, co_grpc_range_info *info,
			 co_grpc_kv_fn fn, void *ctx)
{
	co_grpc_stream st;
	int error;

	co_grpc_stream_init(&st, fn, ctx);
	st.frame_len = 5;
	st.frames = 1;
	st.msg_left = len;
	if ((error = co_grpc_stream_feed(&st, msg, len)) == 0)
		error = co_grpc_stream_end(&st);
	*info = st.info;
	co_grpc_stream_free(&st);
	return error;
}

/* A kv of the ResponseOp at `index`: passed on with its index. */
struct txn_kv_ctx {
	co_grpc_kv_fn fn;
	void *ctx;
	size_t index;
};

static int txn_kv(void *ctx, const co_grpc_kv *kv)
{
	struct txn_kv_ctx *t = ctx;
	co_grpc_kv k = *kv;

	k.response = t->index;
	return t->fn ? t->fn(t->ctx, &k) : 0;
}

/*
 * A TxnResponse: its header's revision, succeeded, and the kvs of every
 * range response among its responses, in order, each with the index of
 * its ResponseOp.  Puts' and deletes' responses carry nothing the store
 * reads.
 */
int co_grpc_txn_decode(const unsigned char *msg, size_t len, co_grpc_txn_info *info,
		       co_grpc_kv_fn fn, void *ctx)
{
	reader r = {msg, msg + len};
	field f;
	int error;

	memset(info, 0, sizeof(*info));
	while (r.p < r.end) {
		if ((error = next_field(&f, &r)) != 0)
			return error < 0 ? error
					 : co_error_set(CO_EINVAL, "etcd gRPC: malformed "
								   "TxnResponse (truncated)");
		if (f.num == 1 && f.wire == WIRE_LEN) {
			if ((error = decode_header(&info->revision, f.val, f.len)) < 0)
				return error;
		} else if (f.num == 2 && f.wire == WIRE_VARINT) {
			info->succeeded = f.varint != 0;
		} else if (f.num == 3 && f.wire == WIRE_LEN) {
			reader op = {f.val, f.val + f.len};
			struct txn_kv_ctx tk = {fn, ctx, info->responses};
			field g;

			info->responses++;
			while (op.p < op.end) {
				co_grpc_range_info ri;

				if ((error = next_field(&g, &op)) != 0)
					return error < 0 ? error
							 : co_error_set(CO_EINVAL,
									"etcd gRPC: malformed "
									"TxnResponse (truncated "
									"ResponseOp)");
				if (g.num == 1 && g.wire == WIRE_LEN &&
				    (error = co_grpc_range_decode(g.val, g.len, &ri, txn_kv,
								  &tk)) < 0)
					return error;
			}
		}
	}
	return 0;
}

/* ---- the call ---- */

static size_t body_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	co_grpc_reply *reply = ud;

	if (!reply->grpc_body)
		return size * nmemb; /* not a gRPC answer: the status says so */
	if (reply->raw)
		return co_grpc_buf_put(reply->raw, ptr, size * nmemb) < 0 ? 0 : size * nmemb;
	if (reply->stream == NULL)
		return size * nmemb; /* nobody wants the body */
	if (co_grpc_stream_feed(reply->stream, (const unsigned char *)ptr, size * nmemb) <
	    0)
		return 0; /* CURLE_WRITE_ERROR: the stream keeps the error */
	return size * nmemb;
}

/* "grpc-status: 0\r\n" and "grpc-message: ...\r\n", in headers or trailers. */
static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	co_grpc_reply *reply = ud;
	size_t len = size * nmemb, vlen;
	const char *v;

	if (len > 13 && strncasecmp(ptr, "content-type:", 13) == 0) {
		v = ptr + 13;
		while (*v == ' ' || *v == '\t')
			v++;
		reply->grpc_body = strncasecmp(v, "application/grpc", 16) == 0;
	} else if (len > 12 && strncasecmp(ptr, "grpc-status:", 12) == 0) {
		reply->grpc_status = atoi(ptr + 12);
	} else if (len > 13 && strncasecmp(ptr, "grpc-message:", 13) == 0) {
		v = ptr + 13;
		vlen = len - 13;
		while (vlen && (*v == ' ' || *v == '\t'))
			v++, vlen--;
		while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
			vlen--;
		if (vlen >= sizeof(reply->grpc_message))
			vlen = sizeof(reply->grpc_message) - 1;
		memcpy(reply->grpc_message, v, vlen);
		reply->grpc_message[vlen] = '\0';
	}
	return len;
}

int co_grpc_range_call(co_grpc_reply *reply, CURL *h, const char *endpoint,
		       const char *token, const co_grpc_buf *request)
{
	return co_grpc_call(reply, h, endpoint, "Range", token, request);
}

int co_grpc_call(co_grpc_reply *reply, CURL *h, const char *endpoint, const char *method,
		 const char *token, const co_grpc_buf *request)
{
	struct curl_slist *hdrs = NULL, *t;
	char url[512], auth[1024], errbuf[CURL_ERROR_SIZE] = "";
	const char *lines[4] = {"Content-Type: application/grpc", "TE: trailers",
				"Expect:", NULL};
	long version = 0;
	CURLcode rc;
	size_t i;
	int error = 0;

	reply->http = 0;
	reply->http2 = 0;
	reply->grpc_status = -1;
	reply->grpc_message[0] = '\0';
	reply->grpc_body = 0;
	if (token) {
		snprintf(auth, sizeof(auth), "token: %s", token);
		lines[3] = auth;
	}
	for (i = 0; i < 4 && lines[i]; i++) {
		if ((t = curl_slist_append(hdrs, lines[i])) == NULL) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		hdrs = t;
	}
	snprintf(url, sizeof(url), "%s/etcdserverpb.KV/%s", endpoint, method);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
			 strncmp(endpoint, "https:", 6) == 0
			     ? (long)CURL_HTTP_VERSION_2TLS
			     : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
	/*
	 * libcurl 7.88 fails the second request on a reused HTTP/2 connection
	 * after a response with trailers ("Error in the HTTP2 framing layer"):
	 * one connection per call; a call is a page of thousands of keys.
	 */
	curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	/*
	 * With libcurl's default 16 KiB receive buffer, an HTTP/2 response of
	 * megabytes stalled for 200 ms now and then (data left in nghttp2's
	 * hands until a timeout); a large buffer avoids it.
	 */
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)request->p);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)request->len);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, reply);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(h);
	if (rc == CURLE_WRITE_ERROR && reply->stream && reply->stream->error) {
		error = reply->stream->error; /* the decoder's or fn's, message kept */
		goto done;
	}
	if (rc != CURLE_OK) {
		error = co_error_set(rc == CURLE_WRITE_ERROR ? CO_ENOMEM : CO_EUNAVAIL,
				     "etcd %s: gRPC %s: %s", endpoint, method,
				     errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto done;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply->http);
	curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &version);
	reply->http2 = version == CURL_HTTP_VERSION_2_0;
done:
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(hdrs);
	return error;
}
