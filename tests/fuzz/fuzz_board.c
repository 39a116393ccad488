/*
 * fuzz_board.c - the legacy markdown task board (co_board_parse).
 *
 * Whatever the text, what comes out must be importable as it is: every
 * task a valid record (an ID that validates, a status with an owner when
 * claimed, rev 1, blockers that are IDs) whose canonical form parses back
 * to it, no ID twice, and a line number inside the text for every task and
 * every bad row.
 */
#include "fuzz_util.h"

#include "core/error.h"
#include "core/id.h"
#include "core/record.h"
#include "migrate/board.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_task(const co_record *r)
{
	co_record *back = NULL;
	char *json;
	size_t i;

	if (r->kind != CO_KIND_TASK || r->rev != 1 || co_id_validate(r->id) < 0)
		fuzz_fail("board task \"%s\" is not a valid new task", r->id);
	if (r->status == CO_STATUS_CLAIMED && (r->owner == NULL || co_id_validate(r->owner) < 0))
		fuzz_fail("claimed task %s without a valid owner", r->id);
	for (i = 0; i < r->blocked_by.n; i++)
		if (co_id_validate(r->blocked_by.v[i]) < 0)
			fuzz_fail("task %s blocked by \"%s\"", r->id, r->blocked_by.v[i]);
	if ((json = co_record_to_json(r, 0)) == NULL)
		fuzz_fail("task %s does not print", r->id);
	if (co_record_from_json(&back, json, strlen(json)) < 0)
		fuzz_fail("task %s does not parse back (%s): %s", r->id, co_error_last(),
			  json);
	if (!co_record_equal(r, back))
		fuzz_fail("task %s changes in a round trip", r->id);
	co_record_free(back);
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	co_board *b = NULL;
	size_t i, j, lines = 1;

	for (i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (co_board_parse(&b, (const char *)data, size) < 0) {
		if (b != NULL)
			fuzz_fail("*out set on failure");
		co_error_clear();
		return 0;
	}
	for (i = 0; i < b->tasks.n; i++) {
		check_task(b->tasks.items[i]);
		if (b->lines[i] < 1 || b->lines[i] > lines)
			fuzz_fail("task %zu on line %zu of %zu", i, b->lines[i], lines);
		for (j = 0; j < i; j++)
			if (strcmp(b->tasks.items[j]->id, b->tasks.items[i]->id) == 0)
				fuzz_fail("task %s twice", b->tasks.items[i]->id);
	}
	for (i = 0; i < b->n_bad; i++)
		if (b->bad[i].line < 1 || b->bad[i].line > lines || b->bad[i].reason == NULL)
			fuzz_fail("bad row %zu on line %zu of %zu", i, b->bad[i].line, lines);
	co_board_free(b);
	co_error_clear();
	return 0;
}
