/* SPDX-License-Identifier: MIT */
/* Application state stores (nexus_ctx_store_add): an embedder's
 * callbacks behind the same ops table as the file store, for mirrors
 * given `state=app:NAME`.  The registry is a list on the context under
 * ctx->lock; a store is used by one mirror at a time, and it is released
 * (its release callback) when it is removed or the context destroyed.
 * What the callbacks return is checked like any untrusted input: a
 * length larger than the buffer is an error, never a read past it. */
#include "config.h"
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "store.h"

#define STORE_NAME_MAX 64

struct nx_app_store {
	struct nx_app_store *next;
	char name[STORE_NAME_MAX + 1];
	struct nexus_state_store cb;
	bool in_use;
};

/* An open handle: the generic part, and the entry it uses. */
struct app_handle {
	struct nx_store s;
	struct nexus_ctx *ctx;
	struct nx_app_store *e;
};

static bool name_ok(const char *n)
{
	size_t len = strlen(n);

	return len && len <= STORE_NAME_MAX &&
	       strspn(n, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == len;
}

/* ctx->lock held */
static struct nx_app_store **find(struct nexus_ctx *ctx, const char *name)
{
	struct nx_app_store **p = &ctx->stores;

	while (*p && strcmp((*p)->name, name))
		p = &(*p)->next;
	return p;
}

int nexus_ctx_store_add(struct nexus_ctx *ctx, const char *name,
			const struct nexus_state_store *store)
{
	struct nx_app_store *e;
	size_t n;

	if (!ctx || !name || !store)
		return nexus_error(-EINVAL, "nexus_ctx_store_add: NULL "
				   "argument");
	if (!name_ok(name))
		return nexus_error(-EINVAL, "state store name '%.*s': 1 to %d "
				   "letters, digits, '-', '_' or '.'",
				   STORE_NAME_MAX, name, STORE_NAME_MAX);
	if (store->size < offsetof(struct nexus_state_store, release) ||
	    !store->get || !store->put)
		return nexus_error(-EINVAL, "state store %s: get and put are "
				   "required (and size set)", name);
	e = calloc(1, sizeof(*e));
	if (!e)
		return nexus_error(-ENOMEM, "out of memory");
	snprintf(e->name, sizeof(e->name), "%s", name);
	n = store->size < sizeof(e->cb) ? store->size : sizeof(e->cb);
	memcpy(&e->cb, store, n); /* fields the caller lacks stay zero */
	pthread_mutex_lock(&ctx->lock);
	if (*find(ctx, name)) {
		pthread_mutex_unlock(&ctx->lock);
		free(e);
		return nexus_error(-EEXIST, "state store %s exists", name);
	}
	e->next = ctx->stores;
	ctx->stores = e;
	pthread_mutex_unlock(&ctx->lock);
	return 0;
}

static void release(struct nx_app_store *e)
{
	if (e->cb.release)
		e->cb.release(e->cb.user_data);
	free(e);
}

int nexus_ctx_store_remove(struct nexus_ctx *ctx, const char *name)
{
	struct nx_app_store **p, *e;

	if (!ctx || !name)
		return nexus_error(-EINVAL, "nexus_ctx_store_remove: NULL "
				   "argument");
	pthread_mutex_lock(&ctx->lock);
	p = find(ctx, name);
	e = *p;
	if (e && !e->in_use)
		*p = e->next;
	pthread_mutex_unlock(&ctx->lock);
	if (!e)
		return nexus_error(-ENOENT, "no state store %s", name);
	if (e->in_use)
		return nexus_error(-EBUSY, "state store %s is used by an open "
				   "mirror: close it first", name);
	release(e);
	return 0;
}

void nx_store_app_fini(struct nexus_ctx *ctx)
{
	while (ctx->stores) {
		struct nx_app_store *e = ctx->stores;

		ctx->stores = e->next;
		release(e);
	}
}

static int app_get(struct nx_store *s, char *buf, size_t cap)
{
	struct app_handle *h = (struct app_handle *)s;
	int rc = h->e->cb.get(h->e->cb.user_data, buf, cap);

	if (rc < 0)
		return nexus_error(rc < -4095 ? -EIO : rc, "state store %s: "
				   "get: %s", s->where,
				   strerror(rc < -4095 ? EIO : -rc));
	if ((size_t)rc >= cap)
		return nexus_error(-EFBIG, "state store %s: get returned %d "
				   "bytes for a buffer of %zu", s->where, rc,
				   cap);
	return rc;
}

static int app_put(struct nx_store *s, const char *buf, size_t len)
{
	struct app_handle *h = (struct app_handle *)s;
	int rc = h->e->cb.put(h->e->cb.user_data, buf, len);

	if (rc > 0)
		rc = -EIO; /* not a documented result: not durable */
	if (rc < 0)
		return nexus_error(rc < -4095 ? -EIO : rc, "state store %s: "
				   "put: %s", s->where,
				   strerror(rc < -4095 ? EIO : -rc));
	return 0;
}

static void app_close(struct nx_store *s)
{
	struct app_handle *h = (struct app_handle *)s;

	pthread_mutex_lock(&h->ctx->lock);
	h->e->in_use = false;
	pthread_mutex_unlock(&h->ctx->lock);
	free(s->where);
	free(h);
}

static const struct nx_store_ops app_ops = {
	.get = app_get,
	.put = app_put,
	.close = app_close,
};

int nx_store_app_open(struct nexus_ctx *ctx, const char *name,
		      struct nx_store **out)
{
	struct app_handle *h = calloc(1, sizeof(*h));
	struct nx_app_store *e;
	int rc = 0;

	if (!h || !(h->s.where = malloc(strlen(name) + 5))) {
		free(h);
		return nexus_error(-ENOMEM, "out of memory");
	}
	sprintf(h->s.where, "app:%s", name);
	pthread_mutex_lock(&ctx->lock);
	e = *find(ctx, name);
	if (!e)
		rc = -ENOENT;
	else if (e->in_use)
		rc = -EBUSY;
	else
		e->in_use = true;
	pthread_mutex_unlock(&ctx->lock);
	if (rc) {
		free(h->s.where);
		free(h);
		return nexus_error(rc, rc == -ENOENT
				   ? "state=app:%s: no such state store "
				     "(nexus_ctx_store_add)"
				   : "state=app:%s: the store is used by "
				     "another mirror", name);
	}
	h->s.ops = &app_ops;
	h->ctx = ctx;
	h->e = e;
	*out = &h->s;
	return 0;
}
