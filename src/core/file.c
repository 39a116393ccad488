/*
 * file.c - whole-file writes and reads for the state dir (file.h).
 */
#include "file.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, error = 0;

	if (copy == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		if (fsync(fd) < 0 && errno != EINVAL)
			error =
			    co_error_set(CO_EIO, "fsync %s: %s", copy, strerror(errno));
		close(fd);
	}
	free(copy);
	return error;
}

int co_file_write_atomic(const char *path, const char *data, size_t len)
{
	static atomic_uint counter;
	size_t tmplen = strlen(path) + 64;
	char *tmp = malloc(tmplen);
	int fd, error = 0;

	if (tmp == NULL)
		return co_error_set(CO_ENOMEM, "out of memory");
	snprintf(tmp, tmplen, "%s.tmp.%ld.%u", path, (long)getpid(),
		 atomic_fetch_add(&counter, 1));
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		free(tmp);
		return error;
	}
	if (fchmod(fd, 0600) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		close(fd);
		goto fail;
	}
	if (close(fd) < 0) {
		error = co_error_set(CO_EIO, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		error = co_error_set(CO_EIO, "%s: rename to %s: %s", tmp, path,
				     strerror(errno));
		goto fail;
	}
	free(tmp);
	return fsync_dir(path);
fail:
	unlink(tmp);
	free(tmp);
	return error;
}

int co_file_read(char **out, size_t *len, const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	if (f == NULL) {
		if (errno == ENOENT)
			return co_error_set(CO_ENOTFOUND, "%s: no such file", path);
		return co_error_set(CO_EIO, "%s: %s", path, strerror(errno));
	}
	for (;;) {
		size_t r;

		if (n + 4096 + 1 > cap) {
			char *p;

			cap = cap ? cap * 2 : 8192;
			if ((p = realloc(buf, cap)) == NULL) {
				free(buf);
				fclose(f);
				return co_error_set(CO_ENOMEM, "out of memory");
			}
			buf = p;
		}
		r = fread(buf + n, 1, 4096, f);
		n += r;
		if (n > max) {
			free(buf);
			fclose(f);
			return co_error_set(CO_ETOOBIG, "%s: larger than %zu bytes", path,
					    max);
		}
		if (r < 4096)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return co_error_set(CO_EIO, "%s: read error", path);
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}
