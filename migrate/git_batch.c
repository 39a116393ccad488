/*
 * git_batch.c - read a whole branch, write many record files in one commit.
 *
 * The git store makes one commit per mutation, as the router needs.  A
 * backfill of thousands of records into git (etcd-to-git, the board and
 * swarm importers) would make thousands of commits, so this file builds one
 * commit for a batch of files, directly on the bare repository with
 * libgit2, the way git_store.c builds its single-file commits: tree builders
 * on the root and on the touched subtrees, the author "cutover
 * <cutover@localhost>" and a "Cutover-Op: <why>" trailer (git_store.h), so
 * that the follower and the legacy-writer gate know the commit is ours.
 *
 * Publishing is a compare-and-swap of the branch ref with
 * git_reference_create_matching() (DESIGN appendix: never libgit2's local
 * push).  Each file's own check (newer by rev, or still the blob read) is
 * made against the head the commit is built on, so when the ref moved the
 * whole batch is rebuilt on the new head and checked again: nothing a
 * concurrent writer committed is overwritten with older data.
 *
 * Not here: remote URLs (batches need a local bare repository; for a URL
 * use the store, one commit per record), and any decision about what to
 * write (migrate.c).
 */
#include "migrate_internal.h"

#include "../src/core/error.h"

#include <git2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ATTEMPTS 100

struct co_git_batch {
	git_repository *repo;
	char *path;
	char *refname;
};

git_repository *co_git_batch__repo(co_git_batch *g)
{
	return g->repo;
}

const char *co_git_batch__path(const co_git_batch *g)
{
	return g->path;
}

const char *co_git_batch__refname(const co_git_batch *g)
{
	return g->refname;
}

static int gfail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Set `code` with the message and libgit2's last error text, copied now
 * (the next libgit2 call overwrites it). */
static int gfail(int code, const char *fmt, ...)
{
	const git_error *e = git_error_last();
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return co_error_set(code, "%s: %s", what, e && e->message ? e->message : "failed");
}

void co_git_batch_free(co_git_batch *g)
{
	if (!g)
		return;
	if (g->repo) {
		git_repository_free(g->repo);
		git_libgit2_shutdown();
	}
	free(g->path);
	free(g->refname);
	free(g);
}

int co_git_batch_open(co_git_batch **out, const char *path, const char *branch)
{
	co_git_batch *g = calloc(1, sizeof(*g));
	int error = 0;

	if (!g)
		return co_error_set(CO_ENOMEM, "out of memory");
	if (!path || strstr(path, "://") || (strchr(path, '@') && strchr(path, ':'))) {
		error = co_error_set(CO_EINVAL, "git repo %s: batch writes need a local bare "
						"repository path", path ? path : "(none)");
		goto done;
	}
	if ((g->path = strdup(path)) == NULL ||
	    (g->refname = malloc(strlen(branch ? branch : "main") + 12)) == NULL) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	sprintf(g->refname, "refs/heads/%s", branch ? branch : "main");
	git_libgit2_init();
	if (git_repository_open_bare(&g->repo, path) < 0) {
		error = gfail(CO_EUNAVAIL, "git repo %s: cannot open", path);
		git_libgit2_shutdown();
		goto done;
	}
	*out = g;
	g = NULL;
done:
	co_git_batch_free(g);
	return error;
}

static int head_oid(git_oid *out, int *exists, co_git_batch *g)
{
	int rc = git_reference_name_to_id(out, g->repo, g->refname);

	*exists = rc == 0;
	if (rc == GIT_ENOTFOUND) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	if (rc < 0)
		return gfail(CO_EUNAVAIL, "git repo %s: read %s", g->path, g->refname);
	return 0;
}

int co_git_batch_head(char *hex, co_git_batch *g)
{
	git_oid oid;
	int exists, error;

	hex[0] = '\0';
	if ((error = head_oid(&oid, &exists, g)) < 0)
		return error;
	if (exists)
		git_oid_tostr(hex, GIT_OID_HEXSZ + 1, &oid);
	return 0;
}

/* A record's blob: straight from its loose file when `loose` can, else
 * through libgit2 (packed, or anything git_loose.c leaves to it). */
static int parse_blob(co_record **out, git_repository *repo, co_git_loose *loose,
		      const char *path, const git_oid *id)
{
	git_blob *blob = NULL;
	const char *data;
	size_t len;
	int error;

	if (co_git_loose_blob(&data, &len, loose, id) == 1)
		return co_record_from_json(out, data, len);
	if (git_blob_lookup(&blob, repo, id) < 0)
		return gfail(CO_EUNAVAIL, "git repo %s: read blob", path);
	error = co_record_from_json(out, git_blob_rawcontent(blob),
				    (size_t)git_blob_rawsize(blob));
	git_blob_free(blob);
	return error;
}

/* The subtree `dir` of the head's tree, or NULL (no head, or no such dir). */
static int head_subtree(git_tree **out, git_commit **commit, co_git_batch *g,
			const git_oid *head, int exists, const char *dir)
{
	git_tree *root = NULL;
	const git_tree_entry *e;
	int error = 0;

	*out = NULL;
	*commit = NULL;
	if (!exists)
		return 0;
	if (git_commit_lookup(commit, g->repo, head) < 0 ||
	    git_commit_tree(&root, *commit) < 0) {
		error = gfail(CO_EUNAVAIL, "git repo %s: read head %s", g->path, g->refname);
		goto done;
	}
	e = git_tree_entry_byname(root, dir);
	if (e && git_tree_entry_type(e) == GIT_OBJECT_TREE &&
	    git_tree_lookup(out, g->repo, git_tree_entry_id(e)) < 0)
		error = gfail(CO_EUNAVAIL, "git repo %s: read %s/", g->path, dir);
done:
	git_tree_free(root);
	return error;
}

/*
 * The listing's blobs are read by LIST_READERS threads, each on a slice of
 * the directory, once it holds LIST_PARALLEL_MIN files: a backfill of 100k
 * loose objects spent most of its read phase in the kernel opening and
 * reading them one by one, while etcd, not yet written to, left the other
 * core idle.  Reader 0 is the caller on the batch's repository; the others
 * get their own, opened by the caller (a git_repository is not shared
 * between threads; the parsed tree they read names from is only read).
 * Each reads loose blobs straight from their files (git_loose.c) and the
 * rest through libgit2.
 */
#define LIST_READERS 2
#define LIST_PARALLEL_MIN 4096

typedef struct list_part {
	git_repository *repo; /* reader 0: the batch's; else its own */
	co_git_loose *loose;  /* its own; NULL: libgit2 reads every blob */
	const char *path;
	co_kind kind;
	const git_tree *sub;
	const size_t *idx; /* tree entry indexes: this part's are [from, to) */
	size_t from, to;
	co_record **recs; /* per index: the record, NULL if it was not one */
	size_t nbad;
	char problem[512];
	int error;
	char msg[1024];
} list_part;

static void list_slice(list_part *p)
{
	size_t i;

	for (i = p->from; i < p->to; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(p->sub, p->idx[i]);
		const char *name = git_tree_entry_name(e);
		size_t len = strlen(name) - 5;
		co_record *r = NULL;
		int error = parse_blob(&r, p->repo, p->loose, p->path, git_tree_entry_id(e));

		if (error == CO_EUNAVAIL || error == CO_ENOMEM) {
			p->error = error;
			snprintf(p->msg, sizeof(p->msg), "%s", co_error_last());
			return;
		}
		if (error < 0 || r->kind != p->kind || strlen(r->id) != len ||
		    strncmp(r->id, name, len) != 0) {
			snprintf(p->problem, sizeof(p->problem), "%s/%s: %s",
				 co_kind_dir(p->kind), name,
				 error < 0 ? co_error_last() : "holds another record");
			co_record_free(r);
			p->nbad++;
			continue;
		}
		p->recs[i] = r;
	}
}

static void *list_main(void *arg)
{
	list_slice(arg);
	return NULL;
}

int co_git_batch_list(co_mig_set *out, size_t *bad, co_git_batch *g, co_kind kind)
{
	git_commit *commit = NULL;
	git_tree *sub = NULL;
	git_oid head;
	list_part parts[LIST_READERS];
	pthread_t th[LIST_READERS];
	int started[LIST_READERS] = {0};
	char hex[GIT_OID_HEXSZ + 1], problem[512] = "";
	size_t *idx = NULL, i, k, n, m = 0, nparts, nbad = 0;
	co_record **recs = NULL;
	int exists, error;

	memset(parts, 0, sizeof(parts));
	if ((error = head_oid(&head, &exists, g)) < 0 ||
	    (error = head_subtree(&sub, &commit, g, &head, exists, co_kind_dir(kind))) < 0)
		goto done;
	n = sub ? git_tree_entrycount(sub) : 0;
	if (n && ((idx = malloc(n * sizeof(*idx))) == NULL ||
		  (recs = calloc(n, sizeof(*recs))) == NULL)) {
		error = co_error_set(CO_ENOMEM, "out of memory");
		goto done;
	}
	/* The entries that can be records: "<id>.json" blobs. */
	for (i = 0; i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(sub, i);
		const char *name = git_tree_entry_name(e);
		size_t len = strlen(name);

		if (git_tree_entry_type(e) != GIT_OBJECT_BLOB || len <= 5 ||
		    strcmp(name + len - 5, ".json") != 0 || len - 5 >= 256)
			continue;
		idx[m++] = i;
	}
	nparts = m >= LIST_PARALLEL_MIN ? LIST_READERS : 1;
	/* The other readers' repositories, opened here: where one cannot be
	 * (no file descriptor left, say), fewer readers share the work. */
	for (k = 1; k < nparts; k++)
		if (git_repository_open_bare(&parts[k].repo, g->path) < 0) {
			git_error_clear();
			break;
		}
	nparts = k;
	for (k = 0; k < nparts; k++) {
		git_repository *repo = k ? parts[k].repo : g->repo;


		parts[k] = (list_part){.repo = repo,
				       .path = g->path,
				       .kind = kind,
				       .sub = sub,
				       .idx = idx,
				       .from = m * k / nparts,
				       .to = m * (k + 1) / nparts,
				       .recs = recs};
		/* Out of memory for its buffers: libgit2 reads every blob. */
		if (co_git_loose_open(&parts[k].loose, repo) < 0)
			parts[k].loose = NULL;
		if (k && pthread_create(&th[k], NULL, list_main, &parts[k]) == 0)
			started[k] = 1;
		else if (k)
			list_slice(&parts[k]); /* no thread: read here, on its own repo */
	}
	list_slice(&parts[0]);
	for (k = 1; k < nparts; k++) {
		if (started[k])
			pthread_join(th[k], NULL);
		git_repository_free(parts[k].repo);
	}
	for (k = 0; k < nparts; k++)
		co_git_loose_free(parts[k].loose);
	for (k = 0; k < nparts; k++) {
		if (parts[k].error && !error)
			error = co_error_set(parts[k].error, "%s", parts[k].msg);
		nbad += parts[k].nbad;
		if (parts[k].nbad)
			memcpy(problem, parts[k].problem, sizeof(problem));
	}
	if (error < 0)
		goto done;
	for (i = 0; i < m; i++) {
		if (recs[i] == NULL)
			continue;
		git_oid_tostr(hex, sizeof(hex),
			      git_tree_entry_id(git_tree_entry_byindex(sub, idx[i])));
		error = co_mig__set_push(out, recs[i], hex);
		recs[i] = NULL; /* the set's now, or freed by the push */
		if (error < 0)
			goto done;
	}
	if (bad)
		*bad = nbad;
	if (nbad)
		co_error_set(CO_EINVAL, "git repo %s: %zu unreadable file(s), last %s", g->path,
			     nbad, problem);
done:
	for (i = 0; recs && i < m; i++)
		co_record_free(recs[i]);
	free(recs);
	free(idx);
	git_tree_free(sub);
	git_commit_free(commit);
	return error;
}

/*
 * Build the batch on the current head: 1 and the new commit in *commit_id
 * when files changed, 0 when nothing passed its check.
 */
static int build(git_oid *commit_id, size_t *written, co_git_batch *g, const git_oid *head,
		 int exists, const co_git_batch_item *items, size_t n, const char *msg)
{
	git_commit *parent = NULL, *c2 = NULL;
	git_tree *root = NULL, *ntree = NULL;
	git_treebuilder *rb = NULL, *db[2] = {NULL, NULL};
	git_tree *sub[2] = {NULL, NULL};
	git_signature *sig = NULL;
	git_oid tid;
	size_t i, changed = 0;
	int error = 0, k;

	*written = 0;
	for (k = 0; k < 2; k++) {
		if ((error = head_subtree(&sub[k], &c2, g, head, exists,
					  co_kind_dir((co_kind)k))) < 0)
			goto done;
		git_commit_free(c2);
		c2 = NULL;
	}
	for (i = 0; i < n; i++) {
		const co_record *r = items[i].r;
		const git_tree_entry *cur;
		char file[300], hex[GIT_OID_HEXSZ + 1] = "";
		char *json = NULL;
		git_oid blob;

		k = r->kind == CO_KIND_SWARM ? 1 : 0;
		if (!db[k] && git_treebuilder_new(&db[k], g->repo, sub[k]) < 0) {
			error = gfail(CO_EUNAVAIL, "git repo %s: tree builder", g->path);
			goto done;
		}
		snprintf(file, sizeof(file), "%s.json", r->id);
		if ((cur = git_treebuilder_get(db[k], file)) != NULL)
			git_oid_tostr(hex, sizeof(hex), git_tree_entry_id(cur));
		if (items[i].expect) {
			if (strcmp(items[i].expect, hex) != 0)
				continue;
		} else if (cur) {
			co_record *old = NULL;
			int rc = parse_blob(&old, g->repo, NULL, g->path, git_tree_entry_id(cur));

			if (rc == CO_EUNAVAIL || rc == CO_ENOMEM) {
				error = rc;
				goto done;
			}
			/* An unreadable file is replaced; a newer or equal one kept. */
			if (rc == 0 && old->rev >= r->rev) {
				co_record_free(old);
				continue;
			}
			co_record_free(old);
		}
		if ((json = co_record_to_json(r, 1)) == NULL) {
			error = co_error_set(CO_ENOMEM, "out of memory");
			goto done;
		}
		if (git_blob_create_from_buffer(&blob, g->repo, json, strlen(json)) < 0) {
			free(json);
			error = gfail(CO_EUNAVAIL, "git repo %s: write blob for %s", g->path,
				      r->id);
			goto done;
		}
		free(json);
		if (cur && git_oid_equal(&blob, git_tree_entry_id(cur)))
			continue;
		if (git_treebuilder_insert(NULL, db[k], file, &blob, GIT_FILEMODE_BLOB) < 0) {
			error = gfail(CO_EUNAVAIL, "git repo %s: add %s", g->path, file);
			goto done;
		}
		changed++;
	}
	if (changed == 0)
		goto done;
	if (exists && (git_commit_lookup(&parent, g->repo, head) < 0 ||
		       git_commit_tree(&root, parent) < 0)) {
		error = gfail(CO_EUNAVAIL, "git repo %s: read head", g->path);
		goto done;
	}
	if (git_treebuilder_new(&rb, g->repo, root) < 0)
		goto fail;
	for (k = 0; k < 2; k++) {
		if (!db[k])
			continue;
		if (git_treebuilder_write(&tid, db[k]) < 0 ||
		    git_treebuilder_insert(NULL, rb, co_kind_dir((co_kind)k), &tid,
					   GIT_FILEMODE_TREE) < 0)
			goto fail;
	}
	if (git_treebuilder_write(&tid, rb) < 0 || git_tree_lookup(&ntree, g->repo, &tid) < 0 ||
	    git_signature_now(&sig, CO_GIT_AUTHOR_NAME, CO_GIT_AUTHOR_EMAIL) < 0)
		goto fail;
	{
		const git_commit *parents[1] = {parent};

		if (git_commit_create(commit_id, g->repo, NULL, sig, sig, NULL, msg, ntree,
				      parent ? 1 : 0, parents) < 0)
			goto fail;
	}
	*written = changed;
	error = 1;
	goto done;
fail:
	error = gfail(CO_EUNAVAIL, "git repo %s: build the batch commit", g->path);
done:
	git_signature_free(sig);
	git_tree_free(ntree);
	git_treebuilder_free(rb);
	for (k = 0; k < 2; k++) {
		git_treebuilder_free(db[k]);
		git_tree_free(sub[k]);
	}
	git_tree_free(root);
	git_commit_free(parent);
	git_commit_free(c2);
	return error;
}

int co_git_batch_write(size_t *written, co_git_batch *g, const co_git_batch_item *items,
		       size_t n, const char *why)
{
	char msg[512];
	git_oid head, cid;
	int attempt, exists, error = 0;

	*written = 0;
	snprintf(msg, sizeof(msg), "%s %zu record(s)\n\n%s: %s\n", why, n, CO_GIT_TRAILER,
		 why);
	for (attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
		git_reference *ref = NULL;
		size_t w = 0;
		int rc;

		if ((error = head_oid(&head, &exists, g)) < 0)
			return error;
		if ((error = build(&cid, &w, g, &head, exists, items, n, msg)) <= 0)
			return error;
		/* The compare-and-swap: move the ref only if it still holds the
		 * head we built on (all-zero id: the branch is still unborn). */
		rc = git_reference_create_matching(&ref, g->repo, g->refname, &cid, 1, &head,
						   msg);
		git_reference_free(ref);
		if (rc == 0) {
			*written = w;
			return 0;
		}
		if (rc != GIT_EMODIFIED && rc != GIT_ELOCKED)
			return gfail(CO_EUNAVAIL, "git repo %s: update %s", g->path, g->refname);
		{
			struct timespec ts = {0, (long)(1 + attempt % 10) * 1000000L};

			nanosleep(&ts, NULL);
		}
	}
	return co_error_set(CO_EUNAVAIL, "git repo %s: gave up after %d lost ref updates",
			    g->path, MAX_ATTEMPTS);
}
