/* SPDX-License-Identifier: MIT */
/* crypt: where keys come from, and how they are kept.
 *
 * A key never comes from pipeline text.  It is read from a file of raw
 * bytes (key-file=), from an environment variable holding hex
 * (key-env=), or from a key the application registered on the context
 * (key-name=, nexus_crypt_key_register()).  Key material lives in
 * page-aligned memory that is locked where the system allows it and
 * kept out of core dumps; it is wiped with OPENSSL_cleanse before it is
 * freed.  No message ever quotes a key, only its length. */
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

#define NAME_MAX_LEN 64

struct reg_key {
	struct reg_key *next;
	struct nexus_ctx *ctx;
	char name[NAME_MAX_LEN + 1];
	size_t len;
	unsigned char *key; /* nx_crypt_secure_alloc'd */
};

static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reg_key *keys;

static size_t page_round(size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t p = pg > 0 ? (size_t)pg : 4096;

	return (len + p - 1) / p * p;
}

void *nx_crypt_secure_alloc(struct nexus_ctx *ctx, size_t len)
{
	size_t n = page_round(len ? len : 1);
	void *p;

	if (posix_memalign(&p, 4096, n))
		return NULL;
	memset(p, 0, n);
#ifdef MADV_DONTDUMP
	(void)madvise(p, n, MADV_DONTDUMP);
#endif
	if (mlock(p, n) < 0)
		nexus_log(ctx, NEXUS_LOG_DEBUG, "crypt: cannot lock key memory "
			  "(%s): it may be swapped out", strerror(errno));
	return p;
}

void nx_crypt_secure_free(void *p, size_t len)
{
	size_t n;

	if (!p)
		return;
	n = page_round(len ? len : 1);
	OPENSSL_cleanse(p, n);
	(void)munlock(p, n);
#ifdef MADV_DODUMP
	(void)madvise(p, n, MADV_DODUMP);
#endif
	free(p);
}

int nx_crypt_halves_equal(const unsigned char *key, size_t len)
{
	return CRYPTO_memcmp(key, key + len / 2, len / 2) == 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode hex (white space around it ignored) into exactly @len bytes.
 * @what names the source in messages; the text is never quoted. */
static int parse_hex(const char *s, unsigned char *out, size_t len,
		     const char *what)
{
	size_t n, i;

	while (*s && isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	for (i = 0; i < n; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return nexus_error(-EINVAL, "%s: character %zu is not "
					   "a hex digit (the key must be "
					   "%zu hex digits)", what, i + 1,
					   len * 2);
	if (n != len * 2)
		return nexus_error(-EINVAL, "%s has %zu hex digits: key-size=%zu "
				   "needs exactly %zu", what, n, len * 8,
				   len * 2);
	for (i = 0; i < len; i++)
		out[i] = (unsigned char)(hexval((unsigned char)s[2 * i]) << 4 |
					 hexval((unsigned char)s[2 * i + 1]));
	return 0;
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

static int valid_name(const char *name)
{
	size_t n = 0;

	for (; name[n]; n++)
		if (!isalnum((unsigned char)name[n]) && name[n] != '.' &&
		    name[n] != '_' && name[n] != '-')
			return 0;
	return n >= 1 && n <= NAME_MAX_LEN;
}

/* With keys_lock held. */
static struct reg_key **find_key(struct nexus_ctx *ctx, const char *name)
{
	struct reg_key **p;

	for (p = &keys; *p; p = &(*p)->next)
		if ((*p)->ctx == ctx && !strcmp((*p)->name, name))
			return p;
	return NULL;
}

static int read_key_name(struct nexus_ctx *ctx, const char *name,
			 unsigned char *key, size_t len)
{
	struct reg_key **p;
	int rc = 0;

	pthread_mutex_lock(&keys_lock);
	p = find_key(ctx, name);
	if (!p)
		rc = nexus_error(-ENOENT, "crypt: key-name=%s: no key of that "
				 "name is registered on this context "
				 "(nexus_crypt_key_register)", name);
	else if ((*p)->len != len)
		rc = nexus_error(-EINVAL, "crypt: key-name=%s is a %zu-bit key: "
				 "key-size=%zu needs %zu bytes", name,
				 (*p)->len * 8, len * 8, len);
	else
		memcpy(key, (*p)->key, len);
	pthread_mutex_unlock(&keys_lock);
	return rc;
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
				   "key-name=NAME (nexus_crypt_key_register)");
	if (!*env)
		return nexus_error(-EINVAL, "crypt: key-env= is empty");
	val = getenv(env);
	if (!val)
		return nexus_error(-ENOENT, "crypt: key-env=%s: no such "
				   "environment variable", env);
	snprintf(what, sizeof(what), "crypt: key-env=%s", env);
	return parse_hex(val, key, len, what);
}

int nexus_crypt_key_register(struct nexus_ctx *ctx, const char *name,
			     const void *key, size_t len)
{
	struct reg_key *k;
	int rc = 0;

	nx_clear_error();

	if (!ctx || !name || !key)
		return nexus_error(-EINVAL, "nexus_crypt_key_register: NULL "
				   "argument");
	if (!valid_name(name))
		return nexus_error(-EINVAL, "nexus_crypt_key_register: key "
				   "names are 1 to %d characters of "
				   "[A-Za-z0-9._-]", NAME_MAX_LEN);
	if (len != 32 && len != 64)
		return nexus_error(-EINVAL, "nexus_crypt_key_register: key "
				   "'%s' has %zu bytes: AES-XTS keys have 64 "
				   "(AES-256) or 32 (AES-128)", name, len);
	if (nx_crypt_halves_equal(key, len))
		return nexus_error(-EINVAL, "nexus_crypt_key_register: the two "
				   "halves of key '%s' are equal (IEEE 1619 "
				   "forbids it for XTS)", name);
	k = calloc(1, sizeof(*k));
	if (!k || !(k->key = nx_crypt_secure_alloc(ctx, len))) {
		free(k);
		return nexus_error(-ENOMEM, "out of memory");
	}
	k->ctx = ctx;
	strcpy(k->name, name);
	k->len = len;
	memcpy(k->key, key, len);
	pthread_mutex_lock(&keys_lock);
	if (find_key(ctx, name)) {
		rc = nexus_error(-EEXIST, "nexus_crypt_key_register: a key "
				 "named '%s' is already registered", name);
	} else {
		k->next = keys;
		keys = k;
	}
	pthread_mutex_unlock(&keys_lock);
	if (rc) {
		nx_crypt_secure_free(k->key, len);
		free(k);
		return rc;
	}
	nexus_log(ctx, NEXUS_LOG_DEBUG, "crypt: registered %zu-bit key '%s'",
		  len * 8, name);
	return 0;
}

int nexus_crypt_key_register_hex(struct nexus_ctx *ctx, const char *name,
				 const char *hex)
{
	unsigned char *buf;
	size_t digits = 0;
	int rc;

	nx_clear_error();

	if (!ctx || !name || !hex)
		return nexus_error(-EINVAL, "nexus_crypt_key_register_hex: NULL "
				   "argument");
	for (const char *s = hex; *s; s++)
		digits += !isspace((unsigned char)*s);
	if (digits != 64 && digits != 128)
		return nexus_error(-EINVAL, "nexus_crypt_key_register_hex: key "
				   "'%s' has %zu characters: AES-XTS keys are "
				   "128 (AES-256) or 64 (AES-128) hex digits",
				   name, digits);
	buf = nx_crypt_secure_alloc(ctx, NX_CRYPT_MAX_KEY);
	if (!buf)
		return nexus_error(-ENOMEM, "out of memory");
	rc = parse_hex(hex, buf, digits / 2, "nexus_crypt_key_register_hex");
	if (rc == 0)
		rc = nexus_crypt_key_register(ctx, name, buf, digits / 2);
	nx_crypt_secure_free(buf, NX_CRYPT_MAX_KEY);
	return rc;
}

int nexus_crypt_key_unregister(struct nexus_ctx *ctx, const char *name)
{
	struct reg_key **p, *k = NULL;

	nx_clear_error();

	if (!ctx || !name)
		return nexus_error(-EINVAL, "nexus_crypt_key_unregister: NULL "
				   "argument");
	pthread_mutex_lock(&keys_lock);
	p = find_key(ctx, name);
	if (p) {
		k = *p;
		*p = k->next;
	}
	pthread_mutex_unlock(&keys_lock);
	if (!k)
		return nexus_error(-ENOENT, "nexus_crypt_key_unregister: no key "
				   "named '%s'", name);
	nx_crypt_secure_free(k->key, k->len);
	free(k);
	return 0;
}

void nx_crypt_keys_forget(struct nexus_ctx *ctx)
{
	struct reg_key *mine = NULL, **p;

	pthread_mutex_lock(&keys_lock);
	for (p = &keys; *p;) {
		struct reg_key *k = *p;

		if (k->ctx == ctx) {
			*p = k->next;
			k->next = mine;
			mine = k;
		} else {
			p = &k->next;
		}
	}
	pthread_mutex_unlock(&keys_lock);
	while (mine) {
		struct reg_key *next = mine->next;

		nx_crypt_secure_free(mine->key, mine->len);
		free(mine);
		mine = next;
	}
}
