/* SPDX-License-Identifier: MIT */
/* State store: one small durable record per store (a mirror's in-sync
 * set), read at open and replaced atomically.  A backend is an ops table,
 * so the file store (store-file.c) and the later etcd and embedder stores
 * are used the same way.  Core-private, not part of the ABI. */
#ifndef NEXUS_CORE_STORE_H
#define NEXUS_CORE_STORE_H

#include <stddef.h>
#include <string.h>

#include "hidden.h"

/* Largest record a store keeps, bytes. */
#define NX_STORE_MAX 65536

struct nx_store;
struct nexus_ctx;

struct nx_store_ops {
	/* Read the record into buf (cap bytes): its length, 0 when there
	 * is none yet, or a negative errno with a message. */
	int (*get)(struct nx_store *s, char *buf, size_t cap);
	/* Replace the record durably: 0 only once it would survive a crash
	 * (or a negative errno with a message; the old record then stays). */
	int (*put)(struct nx_store *s, const char *buf, size_t len);
	void (*close)(struct nx_store *s);
};

struct nx_store {
	const struct nx_store_ops *ops;
	char *where; /* for messages: the path, the key */
};

/* A store in the file @p path (its directory must exist).  0 or a
 * negative errno with a message. */
NX_HIDDEN int nx_store_file_open(const char *path, struct nx_store **out);

/* The application store registered as @p name on @p ctx
 * (nexus_ctx_store_add), used by one opener at a time.  0 or a negative
 * errno with a message (-ENOENT: none of that name; -EBUSY: in use). */
NX_HIDDEN int nx_store_app_open(struct nexus_ctx *ctx, const char *name,
				struct nx_store **out);

/* The store a `state=` value names: "app:NAME" (nx_store_app_open), else
 * a file path. */
static inline int nx_store_open(struct nexus_ctx *ctx, const char *spec,
				struct nx_store **out)
{
	if (!strncmp(spec, "app:", 4))
		return nx_store_app_open(ctx, spec + 4, out);
	return nx_store_file_open(spec, out);
}

/* Context teardown: release every application store (none is in use any
 * more: the devices are closed). */
NX_HIDDEN void nx_store_app_fini(struct nexus_ctx *ctx);

/* The record (see nx_store_ops.get). */
static inline int nx_store_get(struct nx_store *s, char *buf, size_t cap)
{
	return s->ops->get(s, buf, cap);
}

/* Replace the record (see nx_store_ops.put). */
static inline int nx_store_put(struct nx_store *s, const char *buf,
			       size_t len)
{
	return s->ops->put(s, buf, len);
}

/* Close a store; NULL is a no-op. */
static inline void nx_store_close(struct nx_store *s)
{
	if (s)
		s->ops->close(s);
}

#endif
