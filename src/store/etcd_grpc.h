/*
 * etcd_grpc.h - etcd's Range RPC spoken as gRPC over HTTP/2 (internal).
 *
 * Every operation of the etcd store goes through the v3 JSON gateway
 * except the bulk read of a scan (co_store_scan, reconciliation), which
 * calls the KV.Range RPC directly: etcd marshals a range to protobuf about
 * four times faster than its gateway marshals it to JSON (measured in
 * bench/bench_reconcile, docs/design-changes.md).  Only what Range needs
 * is here: RangeRequest encoding, RangeResponse decoding, and one unary
 * call through libcurl (HTTP/2 with prior knowledge on http://, ALPN on
 * https://).  The store falls back to the gateway when an endpoint does
 * not speak gRPC.
 */
#ifndef CO_STORE_ETCD_GRPC_H
#define CO_STORE_ETCD_GRPC_H

#include <curl/curl.h>

#include <stddef.h>
#include <stdint.h>

/* A RangeRequest: keys in [key, range_end) at `revision` (0 = current),
 * at most `limit` (0 = all). */
typedef struct co_grpc_range {
	const char *key;
	size_t key_len;
	const char *range_end;
	size_t range_end_len;
	int64_t limit;
	int64_t revision;
} co_grpc_range;

/* One KeyValue of a RangeResponse; pointers into the response buffer. */
typedef struct co_grpc_kv {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
	int64_t mod_revision;
	int64_t lease;	 /* 0: none */
	size_t response; /* in a TxnResponse: the index of its ResponseOp */
} co_grpc_kv;

/* Called for each kv in order; a negative return stops the decoding. */
typedef int (*co_grpc_kv_fn)(void *ctx, const co_grpc_kv *kv);

/* A growing byte buffer; free with free(b->p). */
typedef struct co_grpc_buf {
	unsigned char *p;
	size_t len, cap;
} co_grpc_buf;

/* Append len bytes.  CO_ENOMEM (b unchanged). */
int co_grpc_buf_put(co_grpc_buf *b, const void *p, size_t len);

/*
 * The request as a gRPC message: the 5-byte frame header (uncompressed,
 * big-endian length) then the protobuf.  CO_ENOMEM.
 */
int co_grpc_range_encode(co_grpc_buf *out, const co_grpc_range *req);

/* What a RangeResponse says besides its kvs. */
typedef struct co_grpc_range_info {
	int64_t revision; /* of its header: the revision read */
	int more;	  /* 1: keys remain past the limit */
	int64_t count;	  /* keys in the whole range, whatever the limit */
} co_grpc_range_info;

/*
 * Decode a whole RangeResponse protobuf (no frame header): *info, and fn
 * for each kv (co_grpc_stream over one buffer).  CO_EINVAL on malformed input (a
 * truncated field, a wrong wire type), or what fn returned.
 */
int co_grpc_range_decode(const unsigned char *msg, size_t len, co_grpc_range_info *info,
			 co_grpc_kv_fn fn, void *ctx);

/*
 * A RangeResponse decoded as its bytes arrive (frame header included), so
 * that a page of any size costs the memory of one kv: fn is called for
 * each kv as soon as it is whole.  A value used by one thread.
 */
typedef struct co_grpc_stream {
	co_grpc_kv_fn fn;
	void *ctx;
	co_grpc_range_info info; /* complete after co_grpc_stream_end() */
	int error;		 /* the first error, kept: later feeds return it */
	unsigned char frame[5];
	size_t frame_len;
	size_t msg_left; /* bytes of the message still to come */
	int frames;
	co_grpc_buf pending; /* received, not yet a whole field */
} co_grpc_stream;

void co_grpc_stream_init(co_grpc_stream *st, co_grpc_kv_fn fn, void *ctx);

/* Feed the next bytes.  CO_EINVAL (compressed, a second message, bytes
 * after it, malformed protobuf), CO_ENOMEM, or what fn returned. */
int co_grpc_stream_feed(co_grpc_stream *st, const unsigned char *p, size_t len);

/* After the last bytes: CO_EINVAL if the message is missing or cut. */
int co_grpc_stream_end(co_grpc_stream *st);

/* Free what the stream holds (not the stream).  Init again to reuse. */
void co_grpc_stream_free(co_grpc_stream *st);

/* The outcome of a call that reached a server. */
typedef struct co_grpc_reply {
	long http;		/* HTTP status */
	int http2;		/* 1 if the answer came over HTTP/2 */
	int grpc_status;	/* -1 when the server sent none: not gRPC */
	char grpc_message[256]; /* percent-decoding not applied */
	int grpc_body;		/* 1 once content-type said application/grpc */
	co_grpc_stream *stream; /* set by the caller: fed a gRPC response body */
	co_grpc_buf *raw;	/* or this: the body as it came, frame included;
				 * neither: the body is dropped */
} co_grpc_reply;

/*
 * POST one framed request to <endpoint>/etcdserverpb.KV/Range on `h` (an
 * easy handle set up for the store: timeouts, TLS files, no proxy), with
 * the auth token as gRPC metadata when not NULL, feeding the body to
 * reply->stream.  0 when a server answered (look at reply->grpc_status,
 * then call co_grpc_stream_end); the stream's error when decoding or its
 * fn failed; CO_EUNAVAIL with the transfer's error when no server
 * answered; CO_ENOMEM.
 */
int co_grpc_range_call(co_grpc_reply *reply, CURL *h, const char *endpoint,
		       const char *token, const co_grpc_buf *request);

/* The same for <endpoint>/etcdserverpb.KV/<method> ("Range", "Txn"), the
 * body fed to reply->stream or appended to reply->raw. */
int co_grpc_call(co_grpc_reply *reply, CURL *h, const char *endpoint, const char *method,
		 const char *token, const co_grpc_buf *request);

/*
 * KV.Txn's messages, checked against etcd's schema and against etcd itself
 * by tests/store/test_etcd_grpc.c.  The store sends its compare-and-swap
 * txns with them over a kept HTTP/2 connection (etcd_h2.c).  A compare of `target` by `result`: `number` for VERSION,
 * CREATE, MOD and LEASE, `value` for VALUE.
 */
enum { CO_GRPC_EQUAL = 0, CO_GRPC_GREATER = 1, CO_GRPC_LESS = 2, CO_GRPC_NOT_EQUAL = 3 };
enum {
	CO_GRPC_CMP_VERSION = 0,
	CO_GRPC_CMP_CREATE = 1,
	CO_GRPC_CMP_MOD = 2,
	CO_GRPC_CMP_VALUE = 3,
	CO_GRPC_CMP_LEASE = 4
};
typedef struct co_grpc_compare {
	int result, target;
	const char *key;
	size_t key_len;
	int64_t number;
	const char *value;
	size_t value_len;
} co_grpc_compare;

/* One request of a branch: a range (get) of, a put to (with a lease, 0:
 * none) or a delete of one key.  keys_only: a range without the values. */
enum { CO_GRPC_OP_RANGE = 1, CO_GRPC_OP_PUT = 2, CO_GRPC_OP_DELETE = 3 };
typedef struct co_grpc_op {
	int type;
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
	int64_t lease;
	int keys_only;
} co_grpc_op;

typedef struct co_grpc_txn {
	const co_grpc_compare *compare;
	size_t n_compare;
	const co_grpc_op *success, *failure;
	size_t n_success, n_failure;
} co_grpc_txn;

/* The TxnRequest as a gRPC message (frame header, then the protobuf).
 * CO_ENOMEM; CO_EINVAL for an unknown op type, compare target or result. */
int co_grpc_txn_encode(co_grpc_buf *out, const co_grpc_txn *t);

typedef struct co_grpc_txn_info {
	int64_t revision; /* of its header: the revision after the txn */
	int succeeded;	  /* 1: the compares held, the success branch ran */
	size_t responses; /* how many ResponseOps it carried */
} co_grpc_txn_info;

/*
 * Decode a whole TxnResponse protobuf (no frame header): *info, and fn for
 * each kv of each range response, in order.  CO_EINVAL on malformed input,
 * or what fn returned.
 */
int co_grpc_txn_decode(const unsigned char *msg, size_t len, co_grpc_txn_info *info,
		       co_grpc_kv_fn fn, void *ctx);

#endif
