/*
 * fuzz_record.c - records as they come from outside: etcd values, git task
 * files (cutover's and legacy clients', which co_record_from_json reads
 * alike) and the git layout rebuilt from an etcd value (git_form.h).
 *
 * Besides surviving any input, it checks the promises that make two stores
 * comparable byte for byte:
 *   - a record that parses has a canonical form, compact and pretty, each
 *     of which parses back to an equal record with the same canonical form;
 *   - co_git_form_build() of the compact form gives exactly the pretty form
 *     (a divergence here would make reconcile re-read every record);
 *   - co_git_form_build() of any input changes only whitespace;
 *   - the compact form, written straight into a buffer (record_write.c),
 *     is byte for byte cJSON's compact print of the pretty form's tree.
 */
#include "fuzz_util.h"

#include "core/error.h"
#include "core/record.h"
#include "reconcile/git_form.h"

#include <cjson/cJSON.h>
#include <stdint.h>

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* a and b hold the same bytes once all whitespace is dropped. */
static int same_but_whitespace(const char *a, size_t na, const char *b, size_t nb)
{
	size_t i = 0, j = 0;

	for (;;) {
		while (i < na && is_ws(a[i]))
			i++;
		while (j < nb && is_ws(b[j]))
			j++;
		if (i == na || j == nb)
			return i == na && j == nb;
		if (a[i++] != b[j++])
			return 0;
	}
}

static void check_round_trip(const co_record *r, co_git_form *gf)
{
	char *compact = co_record_to_json(r, 0), *pretty = co_record_to_json(r, 1);
	co_record *again = NULL;
	char *again_compact;
	int pass;

	if (compact == NULL || pretty == NULL)
		fuzz_fail("co_record_to_json failed on a parsed record");
	for (pass = 0; pass < 2; pass++) {
		const char *text = pass ? pretty : compact;

		if (co_record_from_json(&again, text, strlen(text)) < 0)
			fuzz_fail("canonical form does not parse back (%s): %s",
				  co_error_last(), text);
		again_compact = co_record_to_json(again, 0);
		if (again_compact == NULL || strcmp(again_compact, compact) != 0)
			fuzz_fail("canonical form is not a fixed point:\n%s\n%s", compact,
				  again_compact ? again_compact : "(null)");
		if (!co_record_equal(r, again))
			fuzz_fail("record parsed back is not equal: %s", compact);
		free(again_compact);
		co_record_free(again);
		again = NULL;
	}
	{
		cJSON *tree = cJSON_Parse(pretty);
		char *theirs = tree ? cJSON_PrintUnformatted(tree) : NULL;

		if (theirs == NULL || strcmp(theirs, compact) != 0)
			fuzz_fail("compact form is not cJSON's:\n%s\n%s", compact,
				  theirs ? theirs : "(null)");
		free(theirs);
		cJSON_Delete(tree);
	}
	if (co_git_form_build(gf, compact, strlen(compact)) != 0)
		fuzz_fail("git form refused a canonical value: %s", compact);
	if (gf->len != strlen(pretty) || memcmp(gf->buf, pretty, gf->len) != 0)
		fuzz_fail("git form differs from the git file:\n%s\n---\n%.*s", pretty,
			  (int)gf->len, gf->buf);
	free(compact);
	free(pretty);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	co_git_form gf = {0};
	co_record *r = NULL;
	int rc;

	if (co_record_from_json(&r, json, size) == 0) {
		check_round_trip(r, &gf);
		co_record_free(r);
	}
	co_error_clear();

	rc = co_git_form_build(&gf, json, size);
	if (rc < 0)
		fuzz_fail("co_git_form_build: %d", rc);
	if (rc == 0 && !same_but_whitespace(json, size, gf.buf, gf.len))
		fuzz_fail("git form changed more than whitespace");
	co_git_form_clear(&gf);
	return 0;
}
