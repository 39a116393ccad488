/*
 * redact.h - secrets never leave the stores (issue 22, point 3).
 *
 * A redaction policy names the fields of a record whose values cutover
 * must not write anywhere but the two stores and the outbox: reports, the
 * divergences and audit tables, shadow mismatches, logs, HTTP answers about
 * runs.  Every writer of a record's values outside the stores goes through
 * this module, so that there is one list and one rule.
 *
 * A policy is a list of entries (cutover.yaml `redact:`):
 *
 *  - a *path* (an entry holding a '.'): dotted keys from the record's root,
 *    "metadata.auth.key"; "$." in front is allowed ("$.owner" names a
 *    top-level field); a segment "*" matches any key.  Arrays on the way
 *    are looked through: "metadata.hooks.secret" covers every element of
 *    the array metadata.hooks.
 *  - a *key-name pattern* (no '.'): a key anywhere inside `metadata` whose
 *    name contains the pattern, case-insensitively ("token" covers
 *    "api_token", "GitHubToken").
 *  - "@defaults": the default patterns, to extend rather than replace them.
 *
 * With no `redact:` key the default patterns apply: token, secret,
 * password, passwd, api_key, apikey, credential, private_key.  `redact: []`
 * redacts nothing (an explicit choice).
 *
 * A redacted field still takes part in comparisons.  Its value is replaced
 * by a marker that carries the verdict of a keyed hash comparison
 * (HMAC-SHA256, OpenSSL; the key is 32 random bytes drawn when the policy
 * is made, held in memory only and never written: a verdict is decided
 * while both values are at hand, so no hash needs to outlive the process):
 *
 *   "[redacted, equal]"    both records hold it, with the same value
 *   "[redacted, differs]"  both hold it with different values, or only
 *                          this record holds it
 *   "[redacted]"           the other record is absent: nothing to compare
 *
 * Redaction is idempotent: a value that already is a marker is kept, with
 * its verdict, so rows redacted when they were written render the same
 * when they are read back and redacted again.
 *
 * Thread safety: a policy is immutable once made; share it freely.
 * Everything returned is owned by the caller.
 */
#ifndef CO_REDACT_H
#define CO_REDACT_H

#include <stddef.h>

typedef struct co_redact co_redact;

#define CO_REDACT_MARK "[redacted]"
#define CO_REDACT_MARK_EQUAL "[redacted, equal]"
#define CO_REDACT_MARK_DIFFERS "[redacted, differs]"

/*
 * Compile `n` entries (see above) into *out (co_redact_free).  entries NULL
 * with n 0 and `defaults` 1: the default list; with `defaults` 0: a policy
 * that redacts nothing.  Errors (messages start "redact: "): CO_EINVAL
 * naming the bad entry (empty, an empty path segment, a control character,
 * an unknown "@" word), CO_EIO when no random key can be drawn, CO_ENOMEM.
 */
int co_redact_new(co_redact **out, const char *const *entries, size_t n, int defaults);

/* The default policy (co_redact_new(out, NULL, 0, 1)). */
int co_redact_default(co_redact **out);

/* NULL is fine. */
void co_redact_free(co_redact *rd);

/* The number of entries the policy holds (for `cutover status`, tests). */
size_t co_redact_count(const co_redact *rd);

/*
 * 1 if `key`, met at the dotted `path` ("metadata.auth.key", array indices
 * left out), is redacted by the policy.
 */
int co_redact_matches(const co_redact *rd, const char *path, const char *key);

/*
 * Redacted copies of two versions of one record, for writing anywhere but
 * a store: *git_out from git_json, *etcd_out from etcd_json (either input
 * may be NULL for an absent record; its output is then NULL).  JSON text
 * that does not parse is replaced by the string "[redacted: not JSON]"
 * rather than passed through.  Output is compact JSON, keys in input
 * order.  CO_ENOMEM; nothing is set on error.
 */
int co_redact_pair(char **git_out, char **etcd_out, const co_redact *rd,
		   const char *git_json, const char *etcd_json);

/* One record alone (markers "[redacted]"): co_redact_pair with no other. */
int co_redact_one(char **out, const co_redact *rd, const char *json);

/*
 * Whether two JSON objects are equal once every field the policy matches
 * is removed from both (shadow.h's ignore rules: the same paths and
 * patterns, used to drop rather than hide).  1 equal, 0 not; NULL or text
 * that is not a JSON object (or cannot be parsed) is compared as text (two
 * NULLs are equal).  Never fails.
 */
int co_redact_equal_without(const co_redact *rd, const char *a_json, const char *b_json);

/* How a field differs between git (old) and etcd (new). */
typedef enum co_field_change {
	CO_FIELD_CHANGED = 0, /* both hold it, values differ */
	CO_FIELD_ADDED,	      /* only etcd holds it */
	CO_FIELD_REMOVED,     /* only git holds it */
	CO_FIELD_REDACTED,    /* a redacted field: see `redacted` */
} co_field_change;

typedef struct co_field_diff {
	char *path; /* "metadata.auth.key", "blocked_by[1]" */
	co_field_change change;
	char *git;	      /* compact JSON of git's value; NULL when absent */
	char *etcd;	      /* compact JSON of etcd's value; NULL when absent */
	const char *redacted; /* CO_FIELD_REDACTED: "equal" or "differs"; else NULL */
} co_field_diff;

typedef struct co_field_diff_list {
	co_field_diff **items;
	size_t n, cap;
} co_field_diff_list;

void co_field_diff_free(co_field_diff *d);
void co_field_diff_list_clear(co_field_diff_list *l);

/*
 * The field-level diff of two versions of a record, appended to *out:
 * every leaf path whose value differs (objects are walked key by key,
 * arrays index by index; a key or element on one side only is ADDED or
 * REMOVED with its whole value), and every redacted field, equal or not,
 * so that a report can say "[redacted, equal]" as well as "differs".
 * Paths come in key order (inputs in canonical form: sorted).  Both
 * inputs are redacted with `rd` first (idempotent), so the values in
 * *out never hold a secret.  A NULL input diffs against an empty object.
 * CO_EINVAL when an input is not a JSON object; CO_ENOMEM.
 */
int co_redact_diff(co_field_diff_list *out, const co_redact *rd, const char *git_json,
		   const char *etcd_json);

#endif
