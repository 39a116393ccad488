/*
 * git_form.h - the bytes git holds for a record, rebuilt from the compact
 * JSON etcd holds, without parsing it.
 *
 * cutover writes one record twice: to etcd as co_record_to_json(r, 0)
 * (cJSON_PrintUnformatted) and to git as co_record_to_json(r, 1)
 * (cJSON_Print, then "\n").  The two texts differ only in the whitespace
 * between tokens, and cJSON_Print's whitespace follows from the structure
 * alone:
 *
 *   - an object is "{\n", then each member on its own line, indented with
 *     one tab per open object or array, as "key":<TAB>value, members
 *     separated by ",\n", then "\n", one tab less, "}";
 *   - an empty object is "{\n", one tab less than its members would have,
 *     "}" ("{\n}" at the top, "{\n\t}" as a member of the top object);
 *   - an array stays on one line: "[a, b, c]", "[]" when empty (its
 *     elements still count one level for the indentation of an object
 *     inside it);
 *   - strings, numbers, true, false and null are the same bytes in both
 *     (cJSON escapes and prints them alike whether formatted or not).
 *
 * So co_git_form_build() reads JSON text token by token, drops whatever
 * whitespace lies between tokens and lays the tokens out as above: for the
 * compact canonical value of a record it gives exactly the bytes of its git
 * file.  Hash those as git does (co_git_blob_id) and compare with the blob
 * id in git's tree: equal ids mean byte-identical files, with no blob read.
 *
 * Every byte other than whitespace between tokens is copied as it is, in
 * order: whatever the input, the output differs from it only in that
 * whitespace (the whitespace co_snapshot_text_hash() skips).  So an equal
 * blob id never says more than the text hash would have said from the git
 * file itself; a value that is not compact canonical JSON (keys in another
 * order, other escapes) simply gets another id, and the caller falls back
 * to reading the file.  Nothing here decides equality.
 *
 * What it checks: the token structure of JSON (brackets matched, members
 * as key, colon, value, commas between), strings terminated, scalars made
 * of the bytes of numbers and literals, nesting at most
 * CO_GIT_FORM_DEPTH_MAX (cJSON's own limit).  It does not check that
 * numbers, literals, escapes or UTF-8 are valid: they are copied.
 *
 * A co_git_form is a reusable output buffer, used by one thread at a time.
 */
#ifndef CO_RECONCILE_GIT_FORM_H
#define CO_RECONCILE_GIT_FORM_H

#include <stddef.h>

/* Deepest nesting laid out (cJSON_Print's CJSON_NESTING_LIMIT). */
#define CO_GIT_FORM_DEPTH_MAX 1000

typedef struct co_git_form {
	char *buf;  /* the git file text, NUL-terminated after a build */
	size_t len; /* of buf, without the NUL */
	size_t cap;
} co_git_form;

/* Zero-initialise (same as `co_git_form f = {0}`). */
void co_git_form_init(co_git_form *f);

/* Free the buffer and reset to empty.  NULL is fine. */
void co_git_form_clear(co_git_form *f);

/*
 * Lay out `len` bytes of JSON text as cJSON_Print would, followed by "\n"
 * (the form of a record's git file), into f->buf / f->len, reusing f's
 * buffer.  Returns 0 with the form built; 1 when the text is not JSON as
 * described above (f->len is then unspecified; no error is set: it is an
 * expected outcome, not a failure); CO_ENOMEM.
 */
int co_git_form_build(co_git_form *f, const char *json, size_t len);

#endif
