/*
 * flags_private.h - helpers shared by the files of flags/ only.
 */
#ifndef CO_FLAGS_PRIVATE_H
#define CO_FLAGS_PRIVATE_H

#include <stddef.h>
#include <sys/stat.h>

#include "flags/flags.h"
#include "flags/watcher.h"

/*
 * Read the whole file at `path` (at most CO_FLAGS_FILE_MAX bytes) into a
 * malloc'd NUL-terminated buffer *out of *out_len bytes; *out_st (if not
 * NULL) gets the fstat() of the file read, so that the caller knows which
 * version it read.  CO_ENOTFOUND if it does not exist, CO_EIO, CO_ETOOBIG,
 * CO_ENOMEM.
 */
int co_flags__read(char **out, size_t *out_len, struct stat *out_st, const char *path);

/*
 * 0 if `mode` is a mode and `etcd_percent` within 0..100, else CO_EINVAL
 * naming the bad value.
 */
int co_flags__check_setting(co_mode mode, int etcd_percent);

/*
 * co_flags_watcher_open without inotify: the stat() poll alone, as on a
 * system without inotify.  For tests of the fallback.
 */
int co_flags__watcher_open_polling(co_flags_watcher **out, const char *path);

#endif
