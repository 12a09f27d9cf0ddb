/* SPDX-License-Identifier: MIT */
/* The per-reactor buffer pool (bufpool.c) and its table of buffers
 * registered with the reactor's io_uring (bufreg.c).  Reactor thread
 * only. */
#ifndef NEXUS_CORE_BUFPOOL_H
#define NEXUS_CORE_BUFPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trim.h"

struct io_uring;
struct nexus_reactor;

/* ---- registered buffers (bufreg.c) ---- */
/* One pool buffer registered at one index of the ring's sparse
 * registered-buffer table; found by address in an open-addressing hash
 * (linear probing, key = page number). */
struct nx_bufreg_slot {
	uintptr_t addr; /* 0: empty */
	size_t len;
	int index;
};

struct nx_bufreg {
	struct nx_bufreg_slot *hash; /* 2 * nslots entries, or NULL: off */
	unsigned hmask;
	unsigned nslots;     /* size of the ring's table */
	unsigned *free_idx;  /* stack of unused table indexes */
	unsigned nfree_idx;
};

/* Set up a sparse table on @p ring; without kernel support (or memory)
 * the table stays off and every lookup says "not registered". */
NX_HIDDEN void nx_bufreg_init(struct nx_bufreg *br, struct io_uring *ring);
NX_HIDDEN void nx_bufreg_fini(struct nx_bufreg *br);
/* Register @p buf; false when it could not be (table full, memlock
 * limit): the buffer is still usable, just not with *_fixed. */
NX_HIDDEN bool nx_bufreg_add(struct nx_bufreg *br, struct io_uring *ring,
			     void *buf, size_t len);
/* Unregister @p buf if it is registered (before it is freed). */
NX_HIDDEN void nx_bufreg_remove(struct nx_bufreg *br, struct io_uring *ring,
				void *buf);
/* The table index of the registered buffer that starts at @p buf and
 * holds @p len bytes, or -1. */
NX_HIDDEN int nx_bufreg_find(const struct nx_bufreg *br, const void *buf,
			     size_t len);

/* ---- the pool (bufpool.c) ---- */
#define NX_BUF_CLASSES 24 /* 4 KiB .. 32 GiB, powers of two */

struct nx_bufpool {
	void *free[NX_BUF_CLASSES]; /* singly linked free lists */
	unsigned nfree[NX_BUF_CLASSES];
	/* fewest buffers on each free list since the last trim: that many
	 * stayed unused for a whole trim period */
	unsigned low[NX_BUF_CLASSES];
	size_t idle_bytes; /* bytes on the free lists */
	struct nx_trim trim;
	struct nx_bufreg reg;
};

NX_HIDDEN void nx_bufpool_init(struct nexus_reactor *r);
NX_HIDDEN void nx_bufpool_destroy(struct nexus_reactor *r);

#endif
