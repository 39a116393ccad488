/*
 * scanned.c - see scanned.h.
 */
#include "harness/scanned.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

int co_test_scanned_add(co_test_scanned *c, const co_scan_item *it)
{
	if (c->n == CO_TEST_SCANNED_MAX || it->len >= sizeof(c->raw[0]))
		return CO_ETOOBIG;
	c->kind[c->n] = it->kind;
	snprintf(c->id[c->n], sizeof(c->id[0]), "%s", it->id);
	if (it->len > 0)
		memcpy(c->raw[c->n], it->raw, it->len);
	c->raw[c->n][it->len] = '\0';
	snprintf(c->ver[c->n], sizeof(c->ver[0]), "%s", it->version);
	c->n++;
	return 0;
}
