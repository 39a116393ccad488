/*
 * cutover/cutover.h - the cutover C API in one include.
 *
 * Link with libcutover (pkg-config --cflags --libs cutover, or CMake
 * find_package(cutover) and the target cutover::cutover).  Start with
 * cutover/router.h; examples/claim.c is a whole program.  Only names that
 * start with cutover_ / CUTOVER_ are the API; everything else in the
 * library is private and may change.
 */
#ifndef CUTOVER_CUTOVER_H
#define CUTOVER_CUTOVER_H

#include "cutover/error.h"
#include "cutover/export.h"
#include "cutover/record.h"
#include "cutover/router.h"
#include "cutover/store.h"
#include "cutover/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library running ("0.1.0"), which may differ from
 * CUTOVER_VERSION_STRING, the one compiled against.  Static. */
CUTOVER_API const char *cutover_version(void);

#ifdef __cplusplus
}
#endif

#endif
