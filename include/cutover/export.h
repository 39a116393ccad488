/*
 * cutover/export.h - the visibility macro of the cutover C API.
 *
 * CUTOVER_API marks each public function.  libcutover.so is built with a
 * version script that exports the cutover_ names alone (symbol version
 * CUTOVER_0); the macro also gives them default visibility when a program
 * compiles everything with -fvisibility=hidden.
 */
#ifndef CUTOVER_EXPORT_H
#define CUTOVER_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define CUTOVER_API __attribute__((visibility("default")))
#else
#define CUTOVER_API
#endif

#endif
