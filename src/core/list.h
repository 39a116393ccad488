/*
 * list.h - the one way our owning pointer lists are emptied.
 *
 * Every list type of the core (co_record_list, co_outbox_list, the audit
 * and run lists) is { T **items; size_t n, cap; } and owns its items.
 */
#ifndef CO_CORE_LIST_H
#define CO_CORE_LIST_H

#include <stdlib.h>
#include <string.h>

/*
 * Free every item of list `l` with `item_free`, then the array, and leave
 * the list empty and reusable.  `l` may be NULL.  A statement.
 */
#define CO_LIST_CLEAR(l, item_free)                                                      \
	do {                                                                             \
		if ((l) == NULL)                                                         \
			break;                                                           \
		for (size_t i_ = 0; i_ < (l)->n; i_++)                                   \
			item_free((l)->items[i_]);                                       \
		free((l)->items);                                                        \
		memset((l), 0, sizeof(*(l)));                                            \
	} while (0)

#endif
