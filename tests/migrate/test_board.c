/*
 * test_board.c - the legacy task-board parser (migrate/board.c), pure logic.
 *
 * Boards come from tests/migrate/boards/ (the seeds' format with a legend
 * table, prose and a fenced code block around it; reordered and missing
 * columns; bad rows) and from strings for the small cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/record.h"
#include "migrate/board.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_board *parse_file(const char *name)
{
	char path[512], *buf;
	co_board *b = NULL;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/tests/migrate/boards/%s", CUTOVER_SOURCE_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	assert_int_equal(co_board_parse(&b, buf, (size_t)n), 0);
	free(buf);
	return b;
}

static co_board *parse_str(const char *s)
{
	co_board *b = NULL;

	assert_int_equal(co_board_parse(&b, s, strlen(s)), 0);
	return b;
}

static const co_record *task(const co_board *b, const char *id)
{
	size_t i;

	for (i = 0; i < b->tasks.n; i++)
		if (strcmp(b->tasks.items[i]->id, id) == 0)
			return b->tasks.items[i];
	fail_msg("task %s not parsed", id);
	return NULL;
}

static void seeds_format_maps_every_status_and_skips_legend_and_code(void **state)
{
	co_board *b = parse_file("seeds.md");
	const co_record *r;

	(void)state;
	assert_int_equal(b->n_bad, 0);
	assert_int_equal(b->n_tables, 1);
	assert_int_equal(b->tasks.n, 5);
	r = task(b, "P0.1.1");
	assert_int_equal(r->status, CO_STATUS_COMPLETE);
	assert_null(r->owner);
	assert_non_null(strstr(r->metadata, "\"owner\":\"swarm-core\""));
	assert_non_null(strstr(r->metadata, "\"title\":\"Event bus interface\""));
	r = task(b, "P0.1.2");
	assert_int_equal(r->status, CO_STATUS_CLAIMED);
	assert_string_equal(r->owner, "swarm-sip");
	assert_int_equal(r->blocked_by.n, 1);
	assert_string_equal(r->blocked_by.v[0], "P0.1.1");
	/* the escaped pipe is a pipe inside the title */
	assert_non_null(strstr(r->metadata, "etcd adapter | with leases"));
	r = task(b, "P0.2.1");
	assert_int_equal(r->status, CO_STATUS_BLOCKED);
	assert_int_equal(r->blocked_by.n, 2);
	assert_string_equal(r->blocked_by.v[1], "P0.1.3");
	assert_int_equal(task(b, "P0.2.2")->status, CO_STATUS_AVAILABLE); /* bold + emoji */
	assert_int_equal(task(b, "P0.1.3")->rev, 1);
	assert_int_equal(b->lines[0], 16);
	co_board_free(b);
}

static void reordered_columns_without_owner_and_leading_pipes_parse(void **state)
{
	co_board *b = parse_file("reordered.md");
	const co_record *r;

	(void)state;
	assert_int_equal(b->n_bad, 0);
	assert_int_equal(b->tasks.n, 2);
	r = task(b, "T-1");
	assert_int_equal(r->status, CO_STATUS_AVAILABLE);
	assert_int_equal(r->blocked_by.n, 0);
	assert_non_null(strstr(r->metadata, "first | task"));
	r = task(b, "T-2");
	assert_int_equal(r->status, CO_STATUS_BLOCKED);
	assert_int_equal(r->blocked_by.n, 1);
	assert_string_equal(r->blocked_by.v[0], "T-1");
	co_board_free(b);
}

static void bad_rows_are_listed_with_line_and_reason(void **state)
{
	co_board *b = parse_file("bad.md");

	(void)state;
	assert_int_equal(b->tasks.n, 2); /* A1 and A4 */
	assert_int_equal(b->n_bad, 4);
	assert_int_equal(b->bad[0].line, 4);
	assert_non_null(strstr(b->bad[0].reason, "unknown status"));
	assert_non_null(strstr(b->bad[0].reason, "REVIEW"));
	assert_int_equal(b->bad[1].line, 5);
	assert_non_null(strstr(b->bad[1].reason, "invalid task ID"));
	assert_int_equal(b->bad[2].line, 6);
	assert_non_null(strstr(b->bad[2].reason, "without an owner"));
	assert_int_equal(b->bad[3].line, 7);
	assert_non_null(strstr(b->bad[3].reason, "duplicate"));
	co_board_free(b);
}

static void text_without_task_table_is_invalid(void **state)
{
	const char *s = "| Status | Meaning |\n|---|---|\n| DONE | finished |\n";
	co_board *b = NULL;

	(void)state;
	assert_int_equal(co_board_parse(&b, s, strlen(s)), CO_EINVAL);
	assert_null(b);
	assert_non_null(strstr(co_error_last(), "no task table"));
}

static void emoji_only_status_and_id_column_next_to_task_title(void **state)
{
	co_board *b = parse_str("| ID | Task | State | Assignee |\n"
				"|:--|:--|:--:|--|\n"
				"| `X.1` | build it | ✅ | |\n"
				"| X.2 | claim it | in-progress | **@swarm-b** |\n"
				"\n"
				"| X.3 | not a row of the table | DONE | |\n");
	const co_record *r;

	(void)state;
	assert_int_equal(b->n_bad, 0);
	assert_int_equal(b->tasks.n, 2);
	r = task(b, "X.1");
	assert_int_equal(r->status, CO_STATUS_COMPLETE);
	assert_non_null(strstr(r->metadata, "\"title\":\"build it\""));
	r = task(b, "X.2");
	assert_int_equal(r->status, CO_STATUS_CLAIMED);
	assert_string_equal(r->owner, "swarm-b");
	co_board_free(b);
}

static void crlf_lines_and_missing_trailing_cells_are_tolerated(void **state)
{
	co_board *b = parse_str("| Task | Status | Owner |\r\n|---|---|---|\r\n| Y.1 | AVAILABLE\r\n");

	(void)state;
	assert_int_equal(b->n_bad, 0);
	assert_int_equal(b->tasks.n, 1);
	assert_int_equal(task(b, "Y.1")->status, CO_STATUS_AVAILABLE);
	co_board_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seeds_format_maps_every_status_and_skips_legend_and_code),
		cmocka_unit_test(reordered_columns_without_owner_and_leading_pipes_parse),
		cmocka_unit_test(bad_rows_are_listed_with_line_and_reason),
		cmocka_unit_test(text_without_task_table_is_invalid),
		cmocka_unit_test(emoji_only_status_and_id_column_next_to_task_title),
		cmocka_unit_test(crlf_lines_and_missing_trailing_cells_are_tolerated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
