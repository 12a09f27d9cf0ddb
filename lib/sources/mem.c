/* SPDX-License-Identifier: MIT */
/* mem: a sparse RAM disk.  The data lives in one private anonymous
 * mapping reserved with MAP_NORESERVE: pages never written cost no
 * memory and read as zeroes; TRIM and WRITE_ZEROES give whole pages back
 * to the kernel with MADV_DONTNEED.  A bitmap of 64 KiB chunks that may
 * hold data answers block status. */
#include "config.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <nexus/nexus_driver.h>

#include "internal.h"

#define CHUNK_SHIFT 16

struct mem_dev {
	unsigned char *base;
	uint64_t size;
	size_t page;
	_Atomic uint64_t *bitmap; /* 1 = chunk may hold data */
	uint64_t nchunks;
};

/* size and block-size are checked when the pipeline is parsed (bounds
 * here, nx_opts_check_geometry() for the rest): open() trusts them. */
static const struct nexus_option_desc mem_options[] = {
	{ "size", NEXUS_OPT_SIZE, NULL,
	  "device size (e.g. 1G), a multiple of block-size",
	  NEXUS_OPTF_REQUIRED | NEXUS_OPTF_POSITIONAL, .min = 1,
	  .max = 1ull << 46 },
	{ "block-size", NEXUS_OPT_SIZE, "512",
	  "logical block size, a power of two", 0, .min = 1,
	  .max = 65536 },
	{ NULL, 0, NULL, NULL, 0 },
};

static int mem_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	struct mem_dev *m;
	uint64_t size, bs;
	int rc;

	if ((rc = nexus_opts_u64(opts, "size", &size)) ||
	    (rc = nexus_opts_u64(opts, "block-size", &bs)))
		return rc;
	m = calloc(1, sizeof(*m));
	if (!m)
		return nexus_error(-ENOMEM, "out of memory");
	m->size = size;
	m->page = (size_t)sysconf(_SC_PAGESIZE);
	m->nchunks = (size + (1u << CHUNK_SHIFT) - 1) >> CHUNK_SHIFT;
	m->bitmap = calloc((m->nchunks + 63) / 64, sizeof(uint64_t));
	m->base = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->base == MAP_FAILED || !m->bitmap) {
		rc = m->base == MAP_FAILED ? -errno : -ENOMEM;
		if (m->base != MAP_FAILED)
			munmap(m->base, size);
		free((void *)m->bitmap);
		free(m);
		return nexus_error(rc, "mem: cannot reserve %llu bytes: %s",
				   (unsigned long long)size, strerror(-rc));
	}
	in->dev_size = size;
	in->logical_block_size = (uint32_t)bs;
	in->physical_block_size = 4096;
	in->flags |= NEXUS_DEV_TRIM_ZEROES | NEXUS_DEV_MULTI_CONN |
		     NEXUS_DEV_BLOCK_STATUS;
	nexus_dev_set_private(dev, m);
	return 0;
}

static void mem_close(struct nexus_dev *dev)
{
	struct mem_dev *m = nexus_dev_private(dev);

	munmap(m->base, m->size);
	free((void *)m->bitmap);
	free(m);
}

static void mark(struct mem_dev *m, uint64_t off, uint64_t len, bool data)
{
	const uint64_t cmask = (1u << CHUNK_SHIFT) - 1;
	uint64_t first, end;

	if (data) {
		first = off >> CHUNK_SHIFT;
		end = ((off + len - 1) >> CHUNK_SHIFT) + 1;
	} else { /* only chunks wholly inside the range become empty */
		first = (off + cmask) >> CHUNK_SHIFT;
		end = off + len == m->size ? m->nchunks
					   : (off + len) >> CHUNK_SHIFT;
	}
	for (uint64_t c = first; c < end; c++) {
		uint64_t bit = 1ull << (c & 63);

		if (data) {
			if (!(atomic_load_explicit(&m->bitmap[c >> 6],
						   memory_order_relaxed) & bit))
				atomic_fetch_or(&m->bitmap[c >> 6], bit);
		} else {
			atomic_fetch_and(&m->bitmap[c >> 6], ~bit);
		}
	}
}

/* Zero a range: memset the partial pages, drop the whole ones. */
static void zero_range(struct mem_dev *m, uint64_t off, uint64_t len)
{
	uint64_t a = (off + m->page - 1) & ~(uint64_t)(m->page - 1);
	uint64_t b = (off + len) & ~(uint64_t)(m->page - 1);

	if (a >= b) {
		memset(m->base + off, 0, len);
		return;
	}
	memset(m->base + off, 0, a - off);
	madvise(m->base + a, b - a, MADV_DONTNEED);
	memset(m->base + b, 0, off + len - b);
}

/* NEXUS_OP_BLOCK_STATUS: the extents, at least one (below). */
static int mem_block_status(struct nexus_dev *dev, uint64_t off, uint64_t len,
			    struct nexus_extent *ext, unsigned max);

static int mem_submit(struct nexus_io *io)
{
	struct mem_dev *m = nexus_dev_private(io->dev);
	unsigned char *p = m->base + io->offset;

	switch (io->op) {
	case NEXUS_OP_READ:
		for (int i = 0; i < io->iovcnt; i++) {
			memcpy(io->iov[i].iov_base, p, io->iov[i].iov_len);
			p += io->iov[i].iov_len;
		}
		break;
	case NEXUS_OP_WRITE:
		mark(m, io->offset, io->length, true);
		for (int i = 0; i < io->iovcnt; i++) {
			memcpy(p, io->iov[i].iov_base, io->iov[i].iov_len);
			p += io->iov[i].iov_len;
		}
		break;
	case NEXUS_OP_TRIM:
	case NEXUS_OP_WRITE_ZEROES:
		zero_range(m, io->offset, io->length);
		mark(m, io->offset, io->length, false);
		break;
	case NEXUS_OP_BLOCK_STATUS:
		nexus_io_complete(io, mem_block_status(io->dev, io->offset,
						       io->length, io->extents,
						       io->max_extents));
		return 0;
	default: /* FLUSH: RAM has nothing to make durable */
		break;
	}
	nexus_io_complete(io, 0);
	return 0;
}

static int mem_block_status(struct nexus_dev *dev, uint64_t off, uint64_t len,
			    struct nexus_extent *ext, unsigned max)
{
	struct mem_dev *m = nexus_dev_private(dev);
	uint64_t end = off + len;
	unsigned n = 0;

	while (off < end) {
		uint64_t c = off >> CHUNK_SHIFT;
		bool data = atomic_load_explicit(&m->bitmap[c >> 6],
						 memory_order_relaxed) &
			    (1ull << (c & 63));
		uint64_t next = (c + 1) << CHUNK_SHIFT;
		uint32_t flags = data ? 0 : NEXUS_EXTENT_HOLE | NEXUS_EXTENT_ZERO;

		if (next > end)
			next = end;
		if (n && ext[n - 1].flags == flags) {
			ext[n - 1].length += next - off;
		} else if (n == max) {
			break; /* full: the last extent is as long as it gets */
		} else {
			ext[n].offset = off;
			ext[n].length = next - off;
			ext[n].flags = flags;
			n++;
		}
		off = next;
	}
	return (int)n;
}

const struct nexus_driver nx_driver_mem = {
	NEXUS_DRIVER_HEADER,
	.name = "mem",
	.summary = "sparse RAM disk: untouched blocks use no memory and read "
		   "as zeroes",
	.kind = NEXUS_DRIVER_SOURCE,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
	       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS),
	.options = mem_options,
	.check = nx_opts_check_geometry,
	.open = mem_open,
	.close = mem_close,
	.submit = mem_submit,
	/* until every reactor caller submits BLOCK_STATUS (the export) */
	.block_status = mem_block_status,
};
