/*
 * fuzz_tmpfile.h - one scratch file per harness process, for parsers that
 * read a path (co_config_load, co_flags_load): each input is written over
 * it.  In /dev/shm when there is one, so that a run does not wear a disk.
 */
#ifndef CO_FUZZ_TMPFILE_H
#define CO_FUZZ_TMPFILE_H

#include "fuzz_util.h"

#include <fcntl.h>
#include <unistd.h>

/* A fresh scratch file named in path (at least 64 bytes), ending in `ext`. */
static inline void fuzz_tmpfile_make(char *path, size_t len, const char *ext)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	int fd;

	snprintf(path, len, "%s/cutover-fuzz-XXXXXX%s", dir, ext);
	if ((fd = mkstemps(path, (int)strlen(ext))) < 0)
		fuzz_fail("mkstemps %s", path);
	close(fd);
}

/* Replace the file's content with the input. */
static inline void fuzz_tmpfile_write(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	const char *p = data;

	if (fd < 0)
		fuzz_fail("open %s", path);
	while (size > 0) {
		ssize_t n = write(fd, p, size);

		if (n <= 0)
			fuzz_fail("write %s", path);
		p += n;
		size -= (size_t)n;
	}
	close(fd);
}

#endif
