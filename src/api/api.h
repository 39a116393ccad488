/*
 * api.h - private to src/api/: what the public wrappers of libcutover
 * share.  Nothing here is installed.
 */
#ifndef CO_API_H
#define CO_API_H

#include "core/record.h"

typedef struct cutover_record_list cutover_record_list;

/* Move the records of *l into a new public list *out (l is left empty).
 * CO_ENOMEM (l is cleared). */
int co_api_list_wrap(cutover_record_list **out, co_record_list *l);

/* The public code for an internal one (CO_ERETRY never escapes). */
int co_api_code(int error);

#endif
