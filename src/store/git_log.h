/*
 * git_log.h - recent commits on the git branch that cutover did not make.
 *
 * The go/no-go gate (flags/gate.h) refuses to let etcd become a primary
 * while a legacy client is still committing task files with plain git
 * (DESIGN §4, legacy writers).  This module finds those commits: it walks
 * the branch from its head, newest first, and stops at the first commit
 * older than a given time.  A commit is cutover's own when it carries both
 * the author CO_GIT_AUTHOR_NAME <CO_GIT_AUTHOR_EMAIL> and the
 * CO_GIT_TRAILER trailer (git_store.h); every other commit is foreign.
 *
 * Only this file and the stores include libgit2.  Thread-safe: every call
 * opens its own repository handle.
 */
#ifndef CO_GIT_LOG_H
#define CO_GIT_LOG_H

#include <stddef.h>
#include <stdint.h>

/* One foreign commit. */
typedef struct co_git_foreign {
	char id[48];       /* full hex id */
	char short_id[16]; /* the first 10 hex digits */
	char author[256];  /* "Name <email>" */
	char summary[160]; /* first line of the message */
	int64_t time_ms;   /* committer time, Unix ms */
} co_git_foreign;

/*
 * The commits on `branch` (NULL: "main") of the bare repository at the local
 * path `repo` whose committer time is at or after `since_ms` and that
 * cutover did not make, newest first, at most `max` of them.  *out is a
 * malloc'd array of *n entries (free() it; NULL when none).  The walk is by
 * commit time and stops at the first commit older than since_ms, so its cost
 * is that of the recent history only.  An unborn branch has none.
 *
 * Errors: CO_EINVAL if `repo` is a URL (the check needs a local path);
 * CO_EUNAVAIL naming the repository when it cannot be opened or walked;
 * CO_ENOMEM.  *out and *n are written only on success.
 */
int co_git_log_foreign(co_git_foreign **out, size_t *n, const char *repo,
		       const char *branch, int64_t since_ms, size_t max);

#endif
