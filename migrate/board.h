/*
 * board.h - parse a legacy markdown task board into task records (DESIGN §6).
 *
 * The legacy board is a GitHub-flavoured markdown file whose task table has a
 * header row naming its columns: an ID column ("ID", "Task ID", or "Task"
 * when there is no separate ID column) and "Status" are required; "Owner"
 * (or "Claimed by", "Assignee"), "Blocked by" (or "Depends on",
 * "Dependencies") and a title ("Title", "Name", "Description", "Summary",
 * or "Task" next to an ID column) are optional.  Columns may come in any
 * order; other columns are kept in the record's metadata under their
 * lower-cased header.  Other tables (a status legend, metrics) and prose
 * around the task table are ignored.  Several task tables (one per phase)
 * are all read.
 *
 * Statuses: AVAILABLE, BLOCKED, IN PROGRESS (claimed, needs an owner),
 * DONE (complete), with bold, italics, code spans and emoji around them
 * ignored; also COMPLETE(D), CLAIMED and FAILED.  A cell holding only one of
 * the board's emoji (🔵 🔴 🟡 ✅ ❌) maps too.
 *
 * The parser is a pure function: no I/O, no clock.  Timestamps of the
 * records it returns are 0 and rev is 1; the importer sets them.
 */
#ifndef CO_BOARD_H
#define CO_BOARD_H

#include "../src/core/record.h"

#include <stddef.h>

/* A row that could not be mapped: its 1-based line and why. */
typedef struct co_board_bad_row {
	size_t line;
	char *reason;
} co_board_bad_row;

typedef struct co_board {
	co_record_list tasks; /* in board order */
	size_t *lines;        /* lines[i]: line of tasks.items[i] */
	co_board_bad_row *bad;
	size_t n_bad;
	size_t n_tables; /* task tables found */
} co_board;

/*
 * Parse `len` bytes of markdown.  Every row of every task table becomes a
 * task in out->tasks or an entry in out->bad (line and reason: unknown
 * status, invalid ID, duplicate ID, IN PROGRESS without an owner, invalid
 * owner or blocker ID).  Bad rows are not an error here: the caller decides.
 * Errors: CO_EINVAL when the text holds no task table at all, CO_ENOMEM.
 * *out is owned by the caller (co_board_free).  Thread-safe (no state).
 */
int co_board_parse(co_board **out, const char *text, size_t len);

/* Free a parsed board; NULL is fine. */
void co_board_free(co_board *b);

#endif
