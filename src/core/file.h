/*
 * file.h - small private files of the state dir, written whole or not at
 * all: a temp file beside the target (mode 0600), fsynced, renamed over
 * it, and the directory fsynced, so a reader sees the old bytes or the
 * new, never a mix, and a crash keeps one of them.
 */
#ifndef CO_CORE_FILE_H
#define CO_CORE_FILE_H

#include <stddef.h>

/*
 * Replace `path` with the `len` bytes of `data`.  CO_EIO naming the file
 * and the reason (a full disk: ENOSPC), nothing changed then; CO_ENOMEM.
 * Thread-safe (distinct temp names per call).
 */
int co_file_write_atomic(const char *path, const char *data, size_t len);

/*
 * Read `path` whole into *out (NUL-terminated, the caller's to free),
 * *len its size (may be NULL).  CO_ENOTFOUND if it does not exist;
 * CO_ETOOBIG over `max` bytes; CO_EIO.
 */
int co_file_read(char **out, size_t *len, const char *path, size_t max);

#endif
