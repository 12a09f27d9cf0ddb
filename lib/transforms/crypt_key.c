/* SPDX-License-Identifier: MIT */
/* crypt: where keys come from, and how they are kept.
 *
 * A key never comes from pipeline text.  It is read from a file of raw
 * bytes (key-file=), from an environment variable holding hex
 * (key-env=), or from a key the application registered on the context
 * (key-name=, nexus_ctx_secret_set()).  Key material lives in secret
 * memory (lib/core/secret.c): locked where the system allows it, kept
 * out of core dumps, wiped before it is freed.  No message ever quotes a
 * key, only its length. */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <nexus/nexus_driver.h>

#include "internal.h"
#include "crypt.h"
#include "secret.h"

void *nx_crypt_secure_alloc(struct nexus_ctx *ctx, size_t len)
{
	return nx_secure_alloc(ctx, len);
}

void nx_crypt_secure_free(void *p, size_t len)
{
	nx_secure_free(p, len);
}

int nx_crypt_halves_equal(const unsigned char *key, size_t len)
{
	return CRYPTO_memcmp(key, key + len / 2, len / 2) == 0;
}

static int read_key_file(struct nexus_ctx *ctx, const char *path,
			 unsigned char *key, size_t len)
{
	unsigned char extra;
	struct stat st;
	size_t got = 0;
	int fd, rc = 0;

	if (!*path)
		return nexus_error(-EINVAL, "crypt: key-file= is empty");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			return nexus_error(rc, "crypt: key-file=%s: no such "
					   "file", path);
		return nexus_error(rc, "crypt: key-file=%s: %s", path,
				   strerror(-rc));
	}
	if (fstat(fd, &st) < 0) {
		rc = nexus_error(-errno, "crypt: key-file=%s: %s", path,
				 strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = nexus_error(-EISDIR, "crypt: key-file=%s is a directory",
				 path);
		goto out;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size != len) {
		rc = nexus_error(-EINVAL, "crypt: key-file=%s has %llu bytes: "
				 "key-size=%zu needs exactly %zu raw bytes",
				 path, (unsigned long long)st.st_size,
				 len * 8, len);
		goto out;
	}
	if (S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO))
		nexus_log(ctx, NEXUS_LOG_WARN, "crypt: key-file=%s is "
			  "readable by other users", path);
	while (got < len) {
		ssize_t r = read(fd, key + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = nexus_error(-errno, "crypt: key-file=%s: %s",
					 path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	/* a pipe or device: it must end right after the key */
	if (got == len && !S_ISREG(st.st_mode)) {
		ssize_t r;

		while ((r = read(fd, &extra, 1)) < 0 && errno == EINTR)
			;
		if (r > 0) {
			OPENSSL_cleanse(&extra, sizeof(extra));
			rc = nexus_error(-EINVAL, "crypt: key-file=%s has more "
					 "than %zu bytes: key-size=%zu needs "
					 "exactly %zu raw bytes", path, len,
					 len * 8, len);
			goto out;
		}
	}
	if (got != len)
		rc = nexus_error(-EINVAL, "crypt: key-file=%s has %zu bytes: "
				 "key-size=%zu needs exactly %zu raw bytes",
				 path, got, len * 8, len);
out:
	close(fd);
	if (rc)
		OPENSSL_cleanse(key, len);
	return rc;
}

static int read_key_name(struct nexus_ctx *ctx, const char *name,
			 unsigned char *key, size_t len)
{
	unsigned char *buf = nx_secure_alloc(ctx, NEXUS_SECRET_MAX);
	int n;

	if (!buf)
		return nexus_error(-ENOMEM, "out of memory");
	n = nexus_ctx_secret_get(ctx, name, buf, NEXUS_SECRET_MAX);
	if (n == -ENOENT)
		n = nexus_error(-ENOENT, "crypt: key-name=%s: no secret of that "
				"name is set on this context "
				"(nexus_ctx_secret_set)", name);
	else if (n >= 0 && (size_t)n != len)
		n = nexus_error(-EINVAL, "crypt: key-name=%s has %d bytes: "
				"key-size=%zu needs %zu", name, n, len * 8,
				len);
	if (n >= 0)
		memcpy(key, buf, len);
	nx_secure_free(buf, NEXUS_SECRET_MAX);
	return n < 0 ? n : 0;
}

int nx_crypt_load_key(struct nexus_ctx *ctx, const struct nexus_opts *opts,
		      unsigned char *key, size_t len)
{
	const char *file = nexus_opts_given(opts, "key-file")
				   ? nexus_opts_str(opts, "key-file") : NULL;
	const char *env = nexus_opts_given(opts, "key-env")
				  ? nexus_opts_str(opts, "key-env") : NULL;
	const char *name = nexus_opts_given(opts, "key-name")
				   ? nexus_opts_str(opts, "key-name") : NULL;
	char what[160];
	const char *val;

	if (!!file + !!env + !!name > 1)
		return nexus_error(-EINVAL, "crypt: give only one of key-file=, "
				   "key-env= and key-name=");
	if (file)
		return read_key_file(ctx, file, key, len);
	if (name)
		return read_key_name(ctx, name, key, len);
	if (!env)
		return nexus_error(-EINVAL, "crypt: no key: give key-file=PATH "
				   "(raw bytes), key-env=VARIABLE (hex) or "
				   "key-name=NAME (nexus_ctx_secret_set)");
	if (!*env)
		return nexus_error(-EINVAL, "crypt: key-env= is empty");
	val = getenv(env);
	if (!val)
		return nexus_error(-ENOENT, "crypt: key-env=%s: no such "
				   "environment variable", env);
	snprintf(what, sizeof(what), "crypt: key-env=%s", env);
	return nx_hex_decode(val, key, len, what);
}

