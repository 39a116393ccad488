/*
 * fuzz_grpc.c - the hand-written protobuf decoder of etcd's RangeResponse
 * (src/store/etcd_grpc.c), fed a gRPC response body as it comes off the
 * wire: the 5-byte frame header, then the message.
 *
 * The seeds are Range responses captured from a real etcd 3.4 (curl
 * --http2-prior-knowledge on /etcdserverpb.KV/Range): a page with "more",
 * a prefix of tasks, an empty range.
 *
 * HTTP/2 cuts a body wherever it likes, so the invariant is that the cut
 * does not matter: the body fed whole, one byte at a time and in 7-byte
 * pieces gives the same kvs, the same info and the same verdict; and when
 * the frame holds exactly the rest of the input, co_grpc_range_decode() of
 * the message agrees too.  Keys and values are copied out in the callback,
 * so ASan sees any pointer past the bytes received.  The same input also
 * goes to the TxnResponse decoder (co_grpc_txn_decode), unframed: a
 * verdict, no crash, the same kvs twice.
 */
#include "fuzz_util.h"

#include "core/error.h"
#include "store/etcd_grpc.h"

#include <stdint.h>

/* What one decoding saw: a running hash of every kv, and how many. */
typedef struct seen {
	uint64_t hash;
	size_t n;
} seen;

static uint64_t mix(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL; /* FNV-1a */
	return h ^ len;
}

static int on_kv(void *ctx, const co_grpc_kv *kv)
{
	seen *s = ctx;
	char *copy = malloc(kv->key_len + kv->value_len + 1);

	if (copy == NULL)
		abort();
	if (kv->key_len)
		memcpy(copy, kv->key, kv->key_len);
	if (kv->value_len)
		memcpy(copy + kv->key_len, kv->value, kv->value_len);
	s->hash = mix(s->hash, copy, kv->key_len + kv->value_len);
	s->hash = mix(s->hash, &kv->key_len, sizeof(kv->key_len));
	s->hash = mix(s->hash, &kv->mod_revision, sizeof(kv->mod_revision));
	s->n++;
	free(copy);
	return 0;
}

typedef struct outcome {
	int ok;
	seen s;
	co_grpc_range_info info;
} outcome;

/* Feed data in pieces of `step` bytes (0: all at once). */
static void feed(outcome *o, const uint8_t *data, size_t size, size_t step)
{
	co_grpc_stream st;
	size_t off = 0;
	int error = 0;

	memset(o, 0, sizeof(*o));
	co_grpc_stream_init(&st, on_kv, &o->s);
	while (off < size && error == 0) {
		size_t n = step && size - off > step ? step : size - off;

		error = co_grpc_stream_feed(&st, data + off, n);
		off += n;
	}
	if (error == 0)
		error = co_grpc_stream_end(&st);
	if (error > 0)
		fuzz_fail("stream returned %d", error);
	/* A later call repeats the first error. */
	if (error < 0 && co_grpc_stream_end(&st) != error)
		fuzz_fail("stream forgot its error");
	o->ok = error == 0;
	o->info = st.info;
	co_grpc_stream_free(&st);
	co_error_clear();
}

static void same(const outcome *a, const outcome *b, const char *how)
{
	if (a->ok != b->ok)
		fuzz_fail("%s: verdict %d, whole: %d", how, b->ok, a->ok);
	/* kvs before an error are delivered either way; after it, none. */
	if (a->s.n != b->s.n || a->s.hash != b->s.hash)
		fuzz_fail("%s: %zu kvs, whole: %zu (or other bytes)", how, b->s.n, a->s.n);
	if (a->ok && (a->info.revision != b->info.revision || a->info.more != b->info.more ||
		      a->info.count != b->info.count))
		fuzz_fail("%s: info differs", how);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	outcome whole, bytes, pieces, direct;

	feed(&whole, data, size, 0);
	feed(&bytes, data, size, 1);
	same(&whole, &bytes, "byte by byte");
	feed(&pieces, data, size, 7);
	same(&whole, &pieces, "in 7-byte pieces");

	if (size >= 5 && data[0] == 0 &&
	    ((size_t)data[1] << 24 | (size_t)data[2] << 16 | (size_t)data[3] << 8 |
	     (size_t)data[4]) == size - 5) {
		memset(&direct, 0, sizeof(direct));
		direct.ok = co_grpc_range_decode(data + 5, size - 5, &direct.info, on_kv,
						 &direct.s) == 0;
		co_error_clear();
		same(&whole, &direct, "co_grpc_range_decode");
	}

	/* The same bytes as a TxnResponse (whose range responses go through
	 * the decoder above): any input, a verdict, never a crash, and the
	 * kvs seen twice the same. */
	{
		co_grpc_txn_info ti[2];
		seen ts[2];
		int rc[2], k;

		for (k = 0; k < 2; k++) {
			memset(&ts[k], 0, sizeof(ts[k]));
			rc[k] = co_grpc_txn_decode(data, size, &ti[k], on_kv, &ts[k]);
			co_error_clear();
			if (rc[k] > 0)
				fuzz_fail("co_grpc_txn_decode returned %d", rc[k]);
		}
		if (rc[0] != rc[1] || ts[0].n != ts[1].n || ts[0].hash != ts[1].hash)
			fuzz_fail("co_grpc_txn_decode: two decodings differ");
	}
	return 0;
}
