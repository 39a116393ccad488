/*
 * record_write.h - the compact canonical JSON of a record, written straight
 * into one buffer (record_write.c), for co_record_to_json().
 */
#ifndef CO_RECORD_WRITE_H
#define CO_RECORD_WRITE_H

#include "record.h"

/*
 * The compact canonical form of r, byte for byte what cJSON would print
 * for it (record.c's printer), into *out (malloc'd, the caller's).
 * 0 on success; 1 when r holds something this writer leaves to cJSON (a
 * rev or time outside the ranges it formats itself: *out untouched);
 * CO_ENOMEM.
 */
int co_record__write_compact(char **out, const co_record *r);

#endif
