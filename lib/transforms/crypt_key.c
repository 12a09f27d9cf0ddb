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

/* Bytes past the key that a message counts exactly. */
#define MAX_COUNTED ((size_t)1 << 20)

/* Read exactly @p len bytes of key from @p path.  The file is read, not
 * stat()ed: files of /proc, pipes and devices say st_size 0.  @p shown
 * is the path as messages may show it. */
static int read_key_file(struct nexus_ctx *ctx, const char *path,
			 const char *shown, unsigned char *key, size_t len)
{
	unsigned char extra[256];
	size_t extra_bytes = 0;
	struct stat st;
	size_t got = 0;
	ssize_t r;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			return nexus_error(rc, "crypt: key-file=%s: no such "
					   "file", shown);
		return nexus_error(rc, "crypt: key-file=%s: %s", shown,
				   strerror(-rc));
	}
	if (fstat(fd, &st) < 0) {
		rc = nexus_error(-errno, "crypt: key-file=%s: %s", shown,
				 strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = nexus_error(-EISDIR, "crypt: key-file=%s is a directory",
				 shown);
		goto out;
	}
	if (S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO))
		nexus_log(ctx, NEXUS_LOG_WARN, "crypt: key-file=%s is "
			  "readable by other users", shown);
	while (got < len) {
		r = read(fd, key + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = nexus_error(-errno, "crypt: key-file=%s: %s",
					 shown, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	/* it must end right after the key: count what follows, so that the
	 * message gives the file's real length */
	while (got == len && extra_bytes <= MAX_COUNTED) {
		r = read(fd, extra, sizeof(extra));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		extra_bytes += (size_t)r;
	}
	OPENSSL_cleanse(extra, sizeof(extra));
	if (extra_bytes > MAX_COUNTED)
		rc = nexus_error(-EINVAL, "crypt: key-file=%s has more than "
				 "%zu bytes: key-size=%zu needs exactly %zu "
				 "raw bytes", shown, len + MAX_COUNTED,
				 len * 8, len);
	else if (got != len || extra_bytes)
		rc = nexus_error(-EINVAL, "crypt: key-file=%s has %zu bytes: "
				 "key-size=%zu needs exactly %zu raw bytes",
				 shown, got + extra_bytes, len * 8, len);
out:
	close(fd);
	if (rc)
		OPENSSL_cleanse(key, len);
	return rc;
}

static int read_key_name(struct nexus_ctx *ctx, const char *name,
			 const char *shown, unsigned char *key, size_t len)
{
	unsigned char *buf = nx_secure_alloc(ctx, NEXUS_SECRET_MAX);
	int n;

	if (!buf)
		return nexus_error(-ENOMEM, "out of memory");
	n = nexus_ctx_secret_get(ctx, name, buf, NEXUS_SECRET_MAX);
	if (n == -ENOENT)
		n = nexus_error(-ENOENT, "crypt: key-name=%s: no secret of that "
				"name is set on this context "
				"(nexus_ctx_secret_set)", shown);
	else if (n >= 0 && (size_t)n != len)
		n = nexus_error(-EINVAL, "crypt: key-name=%s has %d bytes: "
				"key-size=%zu needs %zu", shown, n, len * 8,
				len);
	if (n >= 0)
		memcpy(key, buf, len);
	nx_secure_free(buf, NEXUS_SECRET_MAX);
	return n < 0 ? n : 0;
}

/* The given value of key source @p name, or NULL. */
static const char *source(const struct nexus_opts *opts, const char *name)
{
	return nexus_opts_given(opts, name) ? nexus_opts_str(opts, name) : NULL;
}

int nx_crypt_check_key_source(const struct nexus_opts *opts)
{
	static const char *const names[] = { "key-file", "key-env",
					     "key-name" };
	unsigned given = 0;

	for (unsigned i = 0; i < 3; i++) {
		const char *v = source(opts, names[i]);

		if (v && !*v)
			return nexus_error(-EINVAL, "crypt: %s= is empty",
					   names[i]);
		given += v != NULL;
	}
	if (given > 1)
		return nexus_error(-EINVAL, "crypt: give only one of key-file=, "
				   "key-env= and key-name=");
	if (!given)
		return nexus_error(-EINVAL, "crypt: no key: give key-file=PATH "
				   "(raw bytes), key-env=VARIABLE (hex) or "
				   "key-name=NAME (nexus_ctx_secret_set)");
	return 0;
}

int nx_crypt_load_key(struct nexus_ctx *ctx, const struct nexus_opts *opts,
		      unsigned char *key, size_t len)
{
	const char *file = source(opts, "key-file");
	const char *env = source(opts, "key-env");
	const char *name = source(opts, "key-name");
	char what[160];
	const char *val, *shown;

	if (file)
		return read_key_file(ctx, file,
				     nx_opts_shown(opts, "key-file", file), key,
				     len);
	if (name)
		return read_key_name(ctx, name,
				     nx_opts_shown(opts, "key-name", name), key,
				     len);
	shown = nx_opts_shown(opts, "key-env", env);
	val = getenv(env);
	if (!val)
		return nexus_error(-ENOENT, "crypt: key-env=%s: no such "
				   "environment variable", shown);
	snprintf(what, sizeof(what), "crypt: key-env=%s", shown);
	return nx_hex_decode(val, key, len, what);
}

