/* SPDX-License-Identifier: MIT */
/* The file state store: the record is the whole content of one file.
 * A put writes PATH.tmp, fsyncs it, renames it over PATH and fsyncs the
 * directory, so that after a crash PATH holds either the old record or
 * the new one, complete, and a put that returned 0 is the one found. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nexus/nexus_driver.h> /* nexus_error() */

#include "store.h"

struct file_store {
	struct nx_store s; /* first: the generic part */
	char *tmp;	   /* PATH.tmp */
	char *dir;	   /* directory of PATH, to fsync */
};

static int file_get(struct nx_store *s, char *buf, size_t cap)
{
	size_t len = 0;
	int fd = open(s->where, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return nexus_error(-errno, "state store %s: %s", s->where,
				   strerror(errno));
	}
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			return nexus_error(-e, "state store %s: read: %s",
					   s->where, strerror(e));
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len == cap)
		return nexus_error(-EFBIG, "state store %s: record larger than "
				   "%zu bytes", s->where, cap - 1);
	return (int)len;
}

static int sync_close(int fd, const char *what, const char *where)
{
	int rc = fsync(fd) ? -errno : 0;

	if (close(fd) && !rc)
		rc = -errno;
	if (rc)
		return nexus_error(rc, "state store %s: fsync %s: %s", where,
				   what, strerror(-rc));
	return 0;
}

static int file_put(struct nx_store *s, const char *buf, size_t len)
{
	struct file_store *f = (struct file_store *)s;
	size_t done = 0;
	int fd, rc;

	fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return nexus_error(-errno, "state store %s: %s", f->tmp,
				   strerror(errno));
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			close(fd);
			unlink(f->tmp);
			return nexus_error(rc, "state store %s: write: %s",
					   f->tmp, strerror(-rc));
		}
		done += (size_t)n;
	}
	rc = sync_close(fd, "record", f->tmp);
	if (!rc && rename(f->tmp, s->where))
		rc = nexus_error(-errno, "state store %s: rename: %s",
				 s->where, strerror(errno));
	if (rc) {
		unlink(f->tmp);
		return rc;
	}
	fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return nexus_error(-errno, "state store %s: %s", f->dir,
				   strerror(errno));
	return sync_close(fd, "directory", f->dir);
}

static void file_close(struct nx_store *s)
{
	struct file_store *f = (struct file_store *)s;

	free(f->tmp);
	free(f->dir);
	free(s->where);
	free(f);
}

static const struct nx_store_ops file_ops = {
	.get = file_get,
	.put = file_put,
	.close = file_close,
};

int nx_store_file_open(const char *path, struct nx_store **out)
{
	struct file_store *f;
	const char *slash;
	size_t n = strlen(path);

	if (!n || path[n - 1] == '/')
		return nexus_error(-EINVAL, "state store: '%s' is not a file "
				   "name", path);
	f = calloc(1, sizeof(*f));
	if (!f)
		return nexus_error(-ENOMEM, "out of memory");
	slash = strrchr(path, '/');
	f->s.ops = &file_ops;
	f->s.where = strdup(path);
	f->tmp = malloc(n + 5);
	f->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
		       : strdup(".");
	if (!f->s.where || !f->tmp || !f->dir) {
		file_close(&f->s);
		return nexus_error(-ENOMEM, "out of memory");
	}
	memcpy(f->tmp, path, n);
	memcpy(f->tmp + n, ".tmp", 5);
	*out = &f->s;
	return 0;
}
