/*
 * snapshot.h - a compact picture of one store, and the sorted-merge diff of
 * two of them (DESIGN §5).
 *
 * A snapshot keeps, for every record of a store, its kind, its ID, a hash
 * of its version (what the key held: etcd's mod_revision, git's blob id)
 * and a digest of its stored JSON text: the git blob id of its git form,
 * or, for text that has none, a 64-bit hash of the text with the
 * whitespace between tokens left out (co_snapshot_text_hash).  48 bytes
 * plus the ID, whatever the record's size.  A snapshot is taken with
 * co_store_scan_flags(), which streams: records are never parsed nor held,
 * so the memory of a run is the compact entries plus a few pages of the
 * scan.
 *
 * The blob id is how a healthy run avoids reading git's files.  git's scan
 * passes each file's blob id from the tree and no bytes (CO_SCAN_NO_DATA);
 * for etcd's values the snapshot computes the id of the file git would
 * hold: the value laid out as cJSON_Print would (git_form.h), hashed as git
 * hashes a blob.  Equal ids mean byte-identical files, hence the same
 * tokens, hence an equal record, with nothing of git's read.  Where the ids
 * differ (a divergence, or a file a legacy client wrote in another layout),
 * co_snapshot_resolve() reads that file back by its id and digests it the
 * same way: a file in another layout then gets the id of its own git form,
 * equal to etcd's when the tokens are the same.  The layout never decides
 * anything; it only decides what has to be read.
 *
 * Equal digests mean equal tokens, hence equal records (up to a collision
 * of SHA-1, or of the 64-bit hash for text with no git form, which would
 * hide one divergence for one run).  Different digests do not prove a
 * divergence (the same record in another key order, or a claim expired on
 * one side only): the caller re-reads those IDs, normalized (reconcile.c).
 *
 * Entries are sorted by kind (tasks, then swarms) and ID (strcmp), so the
 * diff of two snapshots is one linear merge.
 *
 * A snapshot is a plain value used by one thread at a time.
 */
#ifndef CO_RECONCILE_SNAPSHOT_H
#define CO_RECONCILE_SNAPSHOT_H

#include "core/record.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct co_snapshot_entry {
	uint64_t hash;	  /* co_snapshot_text_hash() of the stored JSON when it
			   * has no git form; 0 when not computed */
	uint64_t ver;	  /* co_snapshot_version_hash() of its version; 0 unknown */
	uint32_t id_off;  /* offset of the NUL-terminated ID in the snapshot's ids */
	uint8_t kind;	  /* co_kind */
	uint8_t has_blob; /* 1: blob is set */
	uint8_t unread;	  /* 1: scanned without its bytes: blob is the stored
			   * file's own id, and nothing else is known yet */
	unsigned char blob[CO_BLOB_ID_LEN]; /* git blob id of the git form */
} co_snapshot_entry;

typedef struct co_snapshot {
	co_snapshot_entry *v;
	size_t n, cap;
	char *ids; /* all IDs, NUL-terminated, back to back */
	size_t ids_len, ids_cap;
} co_snapshot;

/* Called as a store is scanned: `done` records so far, `total` 0 until the
 * end of the scan, then done == total. */
typedef void (*co_snapshot_progress_fn)(void *ctx, const char *store, size_t done,
					size_t total);

/* Zero-initialise a snapshot (same as `co_snapshot s = {0}`). */
void co_snapshot_init(co_snapshot *s);

/* Free what a snapshot holds and reset it to empty.  NULL is fine. */
void co_snapshot_clear(co_snapshot *s);

/* The ID of entry i. */
const char *co_snapshot_id(const co_snapshot *s, size_t i);

/*
 * The hash of JSON text: 64-bit FNV-1a of its bytes, leaving out spaces,
 * tabs and newlines outside strings, with a final avalanche mix.  Text
 * that differs only in that whitespace hashes alike (a record's pretty and
 * compact canonical forms do); any other difference, inside strings too,
 * changes the hash.  The text need not be valid JSON.  Never 0 (0 stands
 * for "absent").
 */
uint64_t co_snapshot_text_hash(const char *json, size_t len);

/* The hash of a version token (co_store_get_versioned); 0 for "" or NULL. */
uint64_t co_snapshot_version_hash(const char *version);

/*
 * The hash of a record: co_snapshot_text_hash() of its canonical compact
 * JSON.  CO_ENOMEM if the JSON cannot be built.
 */
int co_snapshot_hash(uint64_t *out, const co_record *r);

/*
 * Add one record to a snapshot (kept in the order added; call
 * co_snapshot_sort() if that was not kind/ID order), with version 0.
 * CO_ENOMEM, CO_ETOOBIG past 4 GiB of IDs.
 */
int co_snapshot_add(co_snapshot *s, const co_record *r);

/* The same from what a scan gives: kind, ID, text hash, version hash. */
int co_snapshot_add_hashed(co_snapshot *s, co_kind kind, const char *id, uint64_t hash,
			   uint64_t ver);

/* The same with the git blob id of the record's git form (CO_BLOB_ID_LEN
 * bytes; NULL: not known); hash may be 0: not known.  `unread`: the store
 * passed blob (its own file's id) and no bytes; co_snapshot_resolve()
 * reads those back when needed. */
int co_snapshot_add_entry(co_snapshot *s, co_kind kind, const char *id, uint64_t hash,
			  uint64_t ver, const unsigned char *blob, int unread);

/* Sort entries by kind, then ID; a no-op when already sorted. */
void co_snapshot_sort(co_snapshot *s);

/*
 * Snapshot every task and swarm of `store` with co_store_scan_flags() and
 * CO_SCAN_NO_DATA (one commit or revision, streamed), then sort.  A record
 * passed with its bytes gets the blob id of their git form, or their text
 * hash when they have none; one passed without (git) is unread, with the
 * blob id the store gave.  *out is replaced on
 * success only.  Errors: those of co_store_scan (CO_EUNAVAIL, ...),
 * CO_ENOMEM.  `progress` may be NULL.
 */
int co_snapshot_take(co_snapshot *out, co_store *store, co_snapshot_progress_fn progress,
		     void *progress_ctx);

/* What co_snapshot_resolve() found. */
typedef struct co_snapshot_stats {
	size_t same_blob; /* IDs in both equal by blob id at once: nothing read */
	size_t read_back; /* unread records read back by blob id */
} co_snapshot_stats;

/*
 * Prepare two sorted snapshots of the same records for co_snapshot_diff():
 * for every ID in both whose blob ids do not prove it equal, read its
 * unread records back from their store by blob id (co_store_read_blob) and
 * digest them as co_snapshot_take() does (git form's blob id, or text
 * hash).  A blob that is gone (CO_ENOTFOUND) stays unread and the ID diffs
 * as a mismatch, for the caller to re-read.  *stats (may be NULL) gets the counts.
 * `progress` (may be NULL) is called with done/total reads every 4096
 * reads and at the end.  Errors: those of co_store_read_blob but
 * CO_ENOTFOUND.
 */
int co_snapshot_resolve(co_snapshot_stats *stats, co_snapshot *a, co_store *a_store,
			co_snapshot *b, co_store *b_store,
			co_snapshot_progress_fn progress, void *progress_ctx);

/* Classes of an ID in a diff (DESIGN §5). */
typedef enum co_diff_class {
	CO_DIFF_EQUAL = 0,
	CO_DIFF_MISSING_IN_ETCD,
	CO_DIFF_MISSING_IN_GIT,
	CO_DIFF_MISMATCH,
} co_diff_class;

/* "equal", "missing_in_etcd", "missing_in_git", "mismatch". */
const char *co_diff_class_name(co_diff_class c);

/* Parse a class name; CO_EINVAL for anything else. */
int co_diff_class_parse(co_diff_class *out, const char *name);

/* One ID that differs between the snapshots. */
typedef struct co_diff_item {
	co_kind kind;
	co_diff_class cls;
	const char *id;	   /* points into one of the snapshots */
	uint64_t git_hash; /* text hashes; 0 when absent or not computed */
	uint64_t etcd_hash;
	uint64_t git_ver; /* version hashes; 0 when absent (or unknown) */
	uint64_t etcd_ver;
} co_diff_item;

/* Called for each differing ID, in kind/ID order.  A negative return stops
 * the merge and is returned by co_snapshot_diff(). */
typedef int (*co_diff_fn)(void *ctx, const co_diff_item *item);

/*
 * Merge two sorted snapshots.  An ID in both is equal when its blob ids
 * are equal or its text hashes are (an unknown hash, 0, equals nothing):
 * the same tokens, however they were laid out.
 * *equal (may be NULL) gets the number of IDs with equal records, *total
 * (may be NULL) the number of distinct IDs in either; `fn` is called for
 * every other ID.  0, or what `fn` returned.
 */
int co_snapshot_diff(size_t *equal, size_t *total, const co_snapshot *git,
		     const co_snapshot *etcd, co_diff_fn fn, void *ctx);

#endif
