/* SPDX-License-Identifier: MIT */
/* Per-reactor pool of page-aligned buffers in power-of-two classes.
 * Buffers are recycled through free lists; the pool grows only when
 * every buffer of a class is in use, so the steady state allocates
 * nothing.  Spare buffers that stay unused for a trim period (trim.h)
 * are freed, largest first, down to FLOOR bytes, so that a burst (a
 * client's 32 MiB requests) does not hold memory for good.  Only the
 * owning reactor thread touches its pool. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define MIN_SHIFT 12 /* 4 KiB */
/* spare bytes a reactor keeps however long they stay unused */
#define FLOOR ((size_t)2 << 20)
/* classes from here on are mapped on their own, so that freeing them
 * gives the memory back to the system at once */
#define MMAP_MIN ((size_t)128 << 10)

static int size_class(size_t len)
{
	unsigned shift = MIN_SHIFT;

	while (((size_t)1 << shift) < len)
		shift++;
	if (shift - MIN_SHIFT >= NX_BUF_CLASSES)
		return -1;
	return (int)(shift - MIN_SHIFT);
}

static size_t class_size(int cls)
{
	return (size_t)1 << (cls + MIN_SHIFT);
}

static void *mem_get(size_t size)
{
	void *p;

	if (size >= MMAP_MIN) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	return posix_memalign(&p, 4096, size) ? NULL : p;
}

static void mem_put(void *p, size_t size)
{
	if (size >= MMAP_MIN)
		munmap(p, size);
	else
		free(p);
}

void *nexus_buf_alloc(struct nexus_reactor *r, size_t len)
{
	struct nx_bufpool *bp;
	int cls;
	void *p;

	if (!r || !len || (cls = size_class(len)) < 0)
		return NULL;
	bp = &r->bufs;
	p = bp->free[cls];
	if (p) {
		bp->free[cls] = *(void **)p;
		bp->idle_bytes -= class_size(cls);
		if (--bp->nfree[cls] < bp->low[cls])
			bp->low[cls] = bp->nfree[cls];
		return p;
	}
	return mem_get(class_size(cls));
}

void nexus_buf_free(struct nexus_reactor *r, void *buf, size_t len)
{
	struct nx_bufpool *bp;
	int cls;

	if (!r || !buf)
		return;
	cls = size_class(len);
	if (cls < 0)
		return; /* not from nexus_buf_alloc(), which refused it */
	bp = &r->bufs;
	*(void **)buf = bp->free[cls];
	bp->free[cls] = buf;
	bp->nfree[cls]++;
	bp->idle_bytes += class_size(cls);
	if (bp->idle_bytes > FLOOR && !bp->trim.queued) {
		/* a new trim period starts: what stays free until its end
		 * is given back */
		for (int i = 0; i < NX_BUF_CLASSES; i++)
			bp->low[i] = bp->nfree[i];
		nx_trim_add(r, &bp->trim);
	}
}

static bool pool_trim(struct nx_trim *t, struct nexus_reactor *r, bool *freed)
{
	struct nx_bufpool *bp = container_of(t, struct nx_bufpool, trim);

	(void)r;
	for (int cls = NX_BUF_CLASSES - 1; cls >= 0; cls--) {
		size_t size = class_size(cls);

		while (bp->low[cls] && bp->idle_bytes > FLOOR) {
			void *p = bp->free[cls];

			bp->free[cls] = *(void **)p;
			bp->nfree[cls]--;
			bp->low[cls]--;
			bp->idle_bytes -= size;
			mem_put(p, size);
			*freed = true;
		}
		bp->low[cls] = bp->nfree[cls];
	}
	return bp->idle_bytes > FLOOR;
}

void nx_bufpool_init(struct nexus_reactor *r)
{
	memset(&r->bufs, 0, sizeof(r->bufs));
	r->bufs.trim.fn = pool_trim;
}

/* After the reactor thread ended. */
void nx_bufpool_destroy(struct nexus_reactor *r)
{
	struct nx_bufpool *bp = &r->bufs;

	for (int cls = 0; cls < NX_BUF_CLASSES; cls++) {
		while (bp->free[cls]) {
			void *p = bp->free[cls];

			bp->free[cls] = *(void **)p;
			mem_put(p, class_size(cls));
		}
		bp->nfree[cls] = 0;
	}
	bp->idle_bytes = 0;
}
