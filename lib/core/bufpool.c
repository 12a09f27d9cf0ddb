/* SPDX-License-Identifier: MIT */
/* Per-reactor pool of page-aligned buffers in power-of-two classes.
 * Buffers are recycled through free lists; the pool grows only when
 * every buffer of a class is in use, so the steady state allocates
 * nothing.  Only the owning reactor thread touches its pool. */
#include <stdlib.h>

#include "internal.h"

#define MIN_SHIFT 12 /* 4 KiB */

static int size_class(size_t len)
{
	unsigned shift = MIN_SHIFT;

	while (((size_t)1 << shift) < len)
		shift++;
	if (shift - MIN_SHIFT >= NX_ARRAY_SIZE(((struct nx_bufpool *)0)->free))
		return -1;
	return (int)(shift - MIN_SHIFT);
}

void *nexus_buf_alloc(struct nexus_reactor *r, size_t len)
{
	int cls;
	void *p;

	if (!r || !len || (cls = size_class(len)) < 0)
		return NULL;
	p = r->bufs.free[cls];
	if (p) {
		r->bufs.free[cls] = *(void **)p;
		return p;
	}
	if (posix_memalign(&p, 4096, (size_t)1 << (cls + MIN_SHIFT)))
		return NULL;
	return p;
}

void nexus_buf_free(struct nexus_reactor *r, void *buf, size_t len)
{
	int cls;

	if (!r || !buf)
		return;
	cls = size_class(len);
	if (cls < 0) {
		free(buf);
		return;
	}
	*(void **)buf = r->bufs.free[cls];
	r->bufs.free[cls] = buf;
}

void nx_bufpool_destroy(struct nx_bufpool *bp)
{
	for (unsigned i = 0; i < NX_ARRAY_SIZE(bp->free); i++) {
		void *p = bp->free[i];

		while (p) {
			void *next = *(void **)p;

			free(p);
			p = next;
		}
		bp->free[i] = NULL;
	}
}
