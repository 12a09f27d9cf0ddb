/* SPDX-License-Identifier: MIT */
/* The pool buffers registered with a reactor's io_uring.  The ring gets
 * a sparse table of NSLOTS entries at start-up; a pool buffer takes an
 * entry when it is first allocated and gives it back before it is
 * freed, so the kernel pins each buffer once instead of mapping its
 * pages on every I/O (io_uring_prep_read_fixed/write_fixed).  Lookups
 * by address run for every such I/O: an open-addressing hash keyed by
 * the buffer's page number. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "internal.h"

#define NSLOTS 1024u
/* the kernel refuses larger buffers (1 GiB); pinning a huge one for a
 * rare request is not worth it */
#define REG_MAX ((size_t)32 << 20)

static unsigned home(const struct nx_bufreg *br, uintptr_t addr)
{
	uint64_t k = (uint64_t)(addr >> 12) * 0x9e3779b97f4a7c15ull;

	return (unsigned)(k >> 32) & br->hmask;
}

void nx_bufreg_init(struct nx_bufreg *br, struct io_uring *ring)
{
	unsigned cap = NSLOTS * 2;

	memset(br, 0, sizeof(*br));
#ifdef NX_NO_FIXED_BUFS /* for measuring without them */
	(void)ring;
	(void)cap;
	return;
#else
	br->hash = calloc(cap, sizeof(*br->hash));
	br->free_idx = malloc(NSLOTS * sizeof(*br->free_idx));
	if (!br->hash || !br->free_idx ||
	    io_uring_register_buffers_sparse(ring, NSLOTS) < 0) {
		nx_bufreg_fini(br);
		return;
	}
	br->hmask = cap - 1;
	br->nslots = NSLOTS;
	for (unsigned i = 0; i < NSLOTS; i++)
		br->free_idx[i] = NSLOTS - 1 - i;
	br->nfree_idx = NSLOTS;
#endif
}

void nx_bufreg_fini(struct nx_bufreg *br)
{
	/* the ring's table goes with the ring */
	free(br->hash);
	free(br->free_idx);
	memset(br, 0, sizeof(*br));
}

static int update(struct io_uring *ring, unsigned idx, void *buf, size_t len)
{
	struct iovec iov = { buf, len };
	__u64 tag = 0;

	return io_uring_register_buffers_update_tag(ring, idx, &iov, &tag, 1);
}

bool nx_bufreg_add(struct nx_bufreg *br, struct io_uring *ring, void *buf,
		   size_t len)
{
	unsigned idx, h;

	if (!br->hash || !br->nfree_idx || len > REG_MAX)
		return false;
	idx = br->free_idx[br->nfree_idx - 1];
	/* fails past RLIMIT_MEMLOCK for an unprivileged process */
	if (update(ring, idx, buf, len) < 0)
		return false;
	br->nfree_idx--;
	for (h = home(br, (uintptr_t)buf); br->hash[h].addr;
	     h = (h + 1) & br->hmask)
		;
	br->hash[h] = (struct nx_bufreg_slot){ (uintptr_t)buf, len, (int)idx };
	return true;
}

static int slot_of(const struct nx_bufreg *br, uintptr_t addr)
{
	if (!br->hash)
		return -1;
	for (unsigned h = home(br, addr); br->hash[h].addr;
	     h = (h + 1) & br->hmask)
		if (br->hash[h].addr == addr)
			return (int)h;
	return -1;
}

int nx_bufreg_find(const struct nx_bufreg *br, const void *buf, size_t len)
{
	int h = slot_of(br, (uintptr_t)buf);

	if (h < 0 || len > br->hash[h].len)
		return -1;
	return br->hash[h].index;
}

void nx_bufreg_remove(struct nx_bufreg *br, struct io_uring *ring, void *buf)
{
	int pos = slot_of(br, (uintptr_t)buf);
	unsigned i, j;

	if (pos < 0)
		return;
	update(ring, (unsigned)br->hash[pos].index, NULL, 0);
	br->free_idx[br->nfree_idx++] = (unsigned)br->hash[pos].index;
	/* backward-shift deletion keeps every probe chain unbroken */
	i = j = (unsigned)pos;
	for (;;) {
		unsigned k;

		j = (j + 1) & br->hmask;
		if (!br->hash[j].addr)
			break;
		k = home(br, br->hash[j].addr);
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue; /* its home lies after the hole: stays */
		br->hash[i] = br->hash[j];
		i = j;
	}
	br->hash[i].addr = 0;
}
