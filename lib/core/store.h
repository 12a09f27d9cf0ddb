/* SPDX-License-Identifier: MIT */
/* State store: one small durable record per store (a mirror's in-sync
 * set), read at open and replaced atomically.  A backend is an ops table,
 * so the file store (store-file.c), the etcd store (store-etcd.c) and
 * the later embedder stores are used the same way.  Core-private, not part of the ABI. */
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
	/* Optional (NULL: always 0): 0 while this process may still write
	 * the volume the store guards, or a negative errno with a message
	 * once it may have lost it (the etcd store's lease may have
	 * expired).  Asked before every write of the data path: cheap,
	 * any thread. */
	int (*owned)(struct nx_store *s);
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

/* Context teardown: release every application store (none is in use any
 * more: the devices are closed). */
NX_HIDDEN void nx_store_app_fini(struct nexus_ctx *ctx);
/* Lease of the etcd store's ownership when none is given, seconds. */
#define NX_STORE_ETCD_TTL 10

/* The etcd store (store-etcd.c, built with HAVE_ETCD): @p url is
 * "etcd://HOST:PORT/PREFIX", the record is the key PREFIX/state, and the
 * store owns the volume through PREFIX/owner, attached to a lease of
 * @p ttl seconds (0: NX_STORE_ETCD_TTL) kept alive until close.  -EBUSY
 * when another process owns it; a put fails with -ESTALE once ownership
 * is lost, with -EIO when etcd does not answer; owned() fails once the
 * lease was not renewed in time.  0 or a negative errno with a
 * message. */
NX_HIDDEN int nx_store_etcd_open(const char *url, unsigned ttl,
				 struct nx_store **out);

/* Whether @p url is a valid etcd store URL: 0 or -EINVAL with a message
 * (no connection is made). */
NX_HIDDEN int nx_store_etcd_check(const char *url);

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

/* Whether this process still owns the volume (see nx_store_ops.owned). */
static inline int nx_store_owned(struct nx_store *s)
{
	return s->ops->owned ? s->ops->owned(s) : 0;
}

/* Close a store; NULL is a no-op. */
static inline void nx_store_close(struct nx_store *s)
{
	if (s)
		s->ops->close(s);
}

#endif
