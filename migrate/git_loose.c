/*
 * git_loose.c - a blob read straight from its loose object file, for the
 * backfill's listing of a whole branch (git_batch.c).
 *
 * libgit2's object database spends most of a loose read around the read
 * itself: it checks that the file exists (access), opens it, stats it,
 * reads it, allocates a new zlib stream (a 32 KiB window), and hashes the
 * result with its collision-detecting SHA-1.  Measured on 100,000 loose
 * task files, one thread: 2.0 s through git_blob_lookup, 1.3 s this way.
 * A listing reads every file of tasks/ once, so that is most of a
 * backfill's read phase.
 *
 * The format is git's own and fixed: the file objects/xx/yyyy... is a zlib
 * stream of "blob <size>\0<content>", and the object's id is the SHA-1 of
 * all of it.  Here the file is read in one read(), inflated with a stream
 * kept per reader, its header checked, and its SHA-1 (co_git_blob_id,
 * libcrypto's) compared with the id asked for.  Anything else (no such
 * file because the object is packed or in an alternate, a file too large
 * for the buffers, a header that is not a blob's, a stream that does not
 * inflate, a wrong hash) is not an error here: the caller reads the object
 * through libgit2, which finds packed objects and says what is wrong with
 * a broken one.
 */
#include "migrate_internal.h"

#include "../src/core/error.h"

#include <git2.h>
#include <zlib.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A record file is well under these; a larger object goes through libgit2. */
#define LOOSE_IN_MAX (32 * 1024)
#define LOOSE_OUT_MAX (256 * 1024)

struct co_git_loose {
	char *objdir; /* ".../objects", no trailing slash; never NULL */
	z_stream zs;
	int zs_ready;
	unsigned char in[LOOSE_IN_MAX];
	unsigned char *out; /* LOOSE_OUT_MAX */
};

static atomic_size_t loose_reads;

size_t co_git_loose_reads(void)
{
	return atomic_load(&loose_reads);
}

int co_git_loose_open(co_git_loose **out, git_repository *repo)
{
	git_buf dir = {NULL, 0, 0};
	co_git_loose *l;
	size_t n;

	*out = NULL;
	/* No objects directory to name: no reader, libgit2 reads them all. */
	if (git_repository_item_path(&dir, repo, GIT_REPOSITORY_ITEM_OBJECTS) < 0) {
		git_error_clear();
		return 0;
	}
	n = strlen(dir.ptr);
	while (n > 1 && dir.ptr[n - 1] == '/')
		n--;
	if ((l = calloc(1, sizeof(*l))) == NULL || (l->out = malloc(LOOSE_OUT_MAX)) == NULL ||
	    (l->objdir = strndup(dir.ptr, n)) == NULL) {
		git_buf_dispose(&dir);
		co_git_loose_free(l);
		return co_error_set(CO_ENOMEM, "out of memory");
	}
	git_buf_dispose(&dir);
	*out = l;
	return 0;
}

void co_git_loose_free(co_git_loose *l)
{
	if (l == NULL)
		return;
	if (l->zs_ready)
		inflateEnd(&l->zs);
	free(l->objdir);
	free(l->out);
	free(l);
}

/* The whole inflated object into l->out: its length, or 0 if it is not
 * there or not whole. */
static size_t inflate_file(co_git_loose *l, const git_oid *id)
{
	char hex[GIT_OID_HEXSZ + 1], path[4200];
	ssize_t n;
	int fd, rc;

	git_oid_tostr(hex, sizeof(hex), id);
	if ((size_t)snprintf(path, sizeof(path), "%s/%.2s/%s", l->objdir, hex, hex + 2) >=
	    sizeof(path))
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	do
		n = read(fd, l->in, sizeof(l->in));
	while (n < 0 && errno == EINTR);
	close(fd);
	/* A full buffer may be a larger file: libgit2 reads those. */
	if (n <= 0 || (size_t)n == sizeof(l->in))
		return 0;
	if (!l->zs_ready) {
		memset(&l->zs, 0, sizeof(l->zs));
		if (inflateInit(&l->zs) != Z_OK)
			return 0;
		l->zs_ready = 1;
	} else if (inflateReset(&l->zs) != Z_OK) {
		return 0;
	}
	l->zs.next_in = l->in;
	l->zs.avail_in = (uInt)n;
	l->zs.next_out = l->out;
	l->zs.avail_out = LOOSE_OUT_MAX;
	rc = inflate(&l->zs, Z_FINISH);
	if (rc != Z_STREAM_END || l->zs.avail_in != 0)
		return 0;
	return LOOSE_OUT_MAX - l->zs.avail_out;
}

int co_git_loose_blob(const char **data, size_t *len, co_git_loose *l,
		      const git_oid *id)
{
	unsigned char md[CO_BLOB_ID_LEN];
	size_t n, hdr, size = 0;
	const char *p;

	if (l == NULL || (n = inflate_file(l, id)) == 0)
		return 0;
	/* "blob <decimal size>\0" */
	if (n < 7 || memcmp(l->out, "blob ", 5) != 0)
		return 0;
	for (p = (const char *)l->out + 5; p < (const char *)l->out + n && *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || size > LOOSE_OUT_MAX)
			return 0;
		size = size * 10 + (size_t)(*p - '0');
	}
	if (p == (const char *)l->out + n || p == (const char *)l->out + 5)
		return 0;
	hdr = (size_t)(p - (const char *)l->out) + 1;
	if (hdr + size != n)
		return 0;
	/* The id of the content is the SHA-1 of the header and it. */
	if (co_git_blob_id(md, l->out + hdr, size) < 0 || memcmp(md, id->id, sizeof(md)) != 0)
		return 0;
	atomic_fetch_add_explicit(&loose_reads, 1, memory_order_relaxed);
	*data = (const char *)l->out + hdr;
	*len = size;
	return 1;
}
