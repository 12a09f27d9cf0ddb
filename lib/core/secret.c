/* SPDX-License-Identifier: MIT */
/* Secrets on a context (nexus_ctx_secret_*): encryption keys now, TLS
 * pre-shared keys and CHAP secrets later.  A secret lives in page-aligned
 * memory that is locked where the system allows it and kept out of core
 * dumps; it is wiped before it is freed.  No message quotes a secret or
 * its hex text, only names and lengths. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "secret.h"

#define NAME_MAX_LEN 64

struct nx_secret {
	struct nx_secret *next;
	char name[NAME_MAX_LEN + 1];
	size_t len;
	unsigned char *data; /* nx_secure_alloc'd */
};

static size_t page_round(size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t p = pg > 0 ? (size_t)pg : 4096;

	return (len + p - 1) / p * p;
}

void *nx_secure_alloc(struct nexus_ctx *ctx, size_t len)
{
	size_t n = page_round(len ? len : 1);
	void *p;

	if (posix_memalign(&p, 4096, n))
		return NULL;
	memset(p, 0, n);
#ifdef MADV_DONTDUMP
	(void)madvise(p, n, MADV_DONTDUMP);
#endif
	if (mlock(p, n) < 0 && ctx)
		nexus_log(ctx, NEXUS_LOG_DEBUG, "cannot lock secret memory "
			  "(%s): it may be swapped out", strerror(errno));
	return p;
}

void nx_secure_free(void *p, size_t len)
{
	size_t n;

	if (!p)
		return;
	n = page_round(len ? len : 1);
	explicit_bzero(p, n);
	(void)munlock(p, n);
#ifdef MADV_DODUMP
	(void)madvise(p, n, MADV_DODUMP);
#endif
	free(p);
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

size_t nx_hex_digits(const char *s, const char **start)
{
	size_t n;

	while (*s && isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	*start = s;
	return n;
}

int nx_hex_decode(const char *s, unsigned char *out, size_t len,
		  const char *what)
{
	const char *p;
	size_t n = nx_hex_digits(s, &p), i;

	for (i = 0; i < n; i++)
		if (hexval((unsigned char)p[i]) < 0)
			return nexus_error(-EINVAL, "%s: character %zu is not "
					   "a hex digit", what, i + 1);
	if (n != len * 2)
		return nexus_error(-EINVAL, "%s has %zu hex digits: it needs "
				   "exactly %zu", what, n, len * 2);
	for (i = 0; i < len; i++)
		out[i] = (unsigned char)(hexval((unsigned char)p[2 * i]) << 4 |
					 hexval((unsigned char)p[2 * i + 1]));
	return 0;
}

static bool valid_name(const char *name)
{
	size_t n = 0;

	for (; name[n]; n++)
		if (!isalnum((unsigned char)name[n]) && name[n] != '.' &&
		    name[n] != '_' && name[n] != '-')
			return false;
	return n >= 1 && n <= NAME_MAX_LEN;
}

/* With ctx->secret_lock held. */
static struct nx_secret **find(struct nexus_ctx *ctx, const char *name)
{
	struct nx_secret **p;

	for (p = &ctx->secrets; *p; p = &(*p)->next)
		if (!strcmp((*p)->name, name))
			return p;
	return NULL;
}

int nexus_ctx_secret_set(struct nexus_ctx *ctx, const char *name,
			 const void *data, size_t len)
{
	struct nx_secret *s;
	int rc = 0;

	nx_clear_error();
	if (!ctx || !name || !data)
		return nexus_error(-EINVAL, "nexus_ctx_secret_set: NULL "
				   "argument");
	if (!valid_name(name))
		return nexus_error(-EINVAL, "nexus_ctx_secret_set: secret names "
				   "are 1 to %d characters of [A-Za-z0-9._-]",
				   NAME_MAX_LEN);
	if (len < 1 || len > NEXUS_SECRET_MAX)
		return nexus_error(-EINVAL, "nexus_ctx_secret_set: secret '%s' "
				   "has %zu bytes: 1 to %d are accepted", name,
				   len, NEXUS_SECRET_MAX);
	s = calloc(1, sizeof(*s));
	if (!s || !(s->data = nx_secure_alloc(ctx, len))) {
		free(s);
		return nexus_error(-ENOMEM, "out of memory");
	}
	strcpy(s->name, name);
	s->len = len;
	memcpy(s->data, data, len);
	pthread_mutex_lock(&ctx->secret_lock);
	if (find(ctx, name)) {
		rc = nexus_error(-EEXIST, "nexus_ctx_secret_set: a secret "
				 "named '%s' exists (remove it first)", name);
	} else {
		s->next = ctx->secrets;
		ctx->secrets = s;
	}
	pthread_mutex_unlock(&ctx->secret_lock);
	if (rc) {
		nx_secure_free(s->data, len);
		free(s);
		return rc;
	}
	nexus_log(ctx, NEXUS_LOG_DEBUG, "secret '%s' (%zu bytes) set", name,
		  len);
	return 0;
}

int nexus_ctx_secret_set_hex(struct nexus_ctx *ctx, const char *name,
			     const char *hex)
{
	unsigned char *buf;
	const char *p;
	size_t digits;
	int rc;

	nx_clear_error();
	if (!ctx || !name || !hex)
		return nexus_error(-EINVAL, "nexus_ctx_secret_set_hex: NULL "
				   "argument");
	digits = nx_hex_digits(hex, &p);
	if (!digits || digits % 2 || digits / 2 > NEXUS_SECRET_MAX)
		return nexus_error(-EINVAL, "nexus_ctx_secret_set_hex: secret "
				   "'%s' has %zu hex digits: an even number "
				   "from 2 to %d is needed", name, digits,
				   2 * NEXUS_SECRET_MAX);
	buf = nx_secure_alloc(ctx, digits / 2);
	if (!buf)
		return nexus_error(-ENOMEM, "out of memory");
	rc = nx_hex_decode(hex, buf, digits / 2, "nexus_ctx_secret_set_hex");
	if (rc == 0)
		rc = nexus_ctx_secret_set(ctx, name, buf, digits / 2);
	nx_secure_free(buf, digits / 2);
	return rc;
}

int nexus_ctx_secret_remove(struct nexus_ctx *ctx, const char *name)
{
	struct nx_secret **p, *s = NULL;

	nx_clear_error();
	if (!ctx || !name)
		return nexus_error(-EINVAL, "nexus_ctx_secret_remove: NULL "
				   "argument");
	pthread_mutex_lock(&ctx->secret_lock);
	p = find(ctx, name);
	if (p) {
		s = *p;
		*p = s->next;
	}
	pthread_mutex_unlock(&ctx->secret_lock);
	if (!s)
		return nexus_error(-ENOENT, "nexus_ctx_secret_remove: no secret "
				   "named '%s'", name);
	nx_secure_free(s->data, s->len);
	free(s);
	return 0;
}

int nexus_ctx_secret_get(struct nexus_ctx *ctx, const char *name, void *buf,
			 size_t cap)
{
	struct nx_secret **p;
	int rc;

	if (!ctx || !name || !buf)
		return nexus_error(-EINVAL, "nexus_ctx_secret_get: NULL "
				   "argument");
	pthread_mutex_lock(&ctx->secret_lock);
	p = find(ctx, name);
	if (!p) {
		rc = nexus_error(-ENOENT, "no secret named '%s' is set on this "
				 "context (nexus_ctx_secret_set)", name);
	} else if ((*p)->len > cap) {
		rc = nexus_error(-ENOSPC, "secret '%s' has %zu bytes, more than "
				 "the %zu expected", name, (*p)->len, cap);
	} else {
		memcpy(buf, (*p)->data, (*p)->len);
		rc = (int)(*p)->len;
	}
	pthread_mutex_unlock(&ctx->secret_lock);
	return rc;
}

void nx_secrets_forget(struct nexus_ctx *ctx)
{
	struct nx_secret *s;

	pthread_mutex_lock(&ctx->secret_lock);
	s = ctx->secrets;
	ctx->secrets = NULL;
	pthread_mutex_unlock(&ctx->secret_lock);
	while (s) {
		struct nx_secret *next = s->next;

		nx_secure_free(s->data, s->len);
		free(s);
		s = next;
	}
}
