/*
 * scanned.h - what a test's co_store_scan() callback saw, item by item.
 */
#ifndef CO_TEST_SCANNED_H
#define CO_TEST_SCANNED_H

#include "store/store.h"

#include <stddef.h>

#define CO_TEST_SCANNED_MAX 16

typedef struct co_test_scanned {
	co_store *writer; /* for the test's callback: writes at the first item */
	size_t n;
	co_kind kind[CO_TEST_SCANNED_MAX];
	char id[CO_TEST_SCANNED_MAX][32];
	char raw[CO_TEST_SCANNED_MAX][512]; /* NUL-terminated; "" without data */
	char ver[CO_TEST_SCANNED_MAX][CO_VERSION_MAX];
	int rc; /* a write in the callback that failed */
} co_test_scanned;

/* Copy `it` into the next slot and count it.  CO_ETOOBIG when the slots or
 * a slot's buffer are too small (the scan then stops with it). */
int co_test_scanned_add(co_test_scanned *c, const co_scan_item *it);

#endif
