/* SPDX-License-Identifier: MIT */
/* The per-reactor buffer pool (bufpool.c).  Reactor thread only. */
#ifndef NEXUS_CORE_BUFPOOL_H
#define NEXUS_CORE_BUFPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trim.h"

struct nexus_reactor;

#define NX_BUF_CLASSES 24 /* 4 KiB .. 32 GiB, powers of two */

struct nx_bufpool {
	void *free[NX_BUF_CLASSES]; /* singly linked free lists */
	unsigned nfree[NX_BUF_CLASSES];
	/* fewest buffers on each free list since the last trim: that many
	 * stayed unused for a whole trim period */
	unsigned low[NX_BUF_CLASSES];
	size_t idle_bytes; /* bytes on the free lists */
	struct nx_trim trim;
};

NX_HIDDEN void nx_bufpool_init(struct nexus_reactor *r);
NX_HIDDEN void nx_bufpool_destroy(struct nexus_reactor *r);

#endif
