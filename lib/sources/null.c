/* SPDX-License-Identifier: MIT */
/* null: discards writes, reads zeroes.  For benchmarks: it measures the
 * library's own per-I/O cost. */
#include "config.h"
#include <errno.h>
#include <string.h>

#include <nexus/nexus_driver.h>

#include "internal.h"

/* Checked when the pipeline is parsed (bounds here,
 * nx_opts_check_geometry() for the rest): open() trusts them. */
static const struct nexus_option_desc null_options[] = {
	{ "size", NEXUS_OPT_SIZE, "1T",
	  "device size, a multiple of block-size", NEXUS_OPTF_POSITIONAL,
	  .min = 1 },
	{ "block-size", NEXUS_OPT_SIZE, "512",
	  "logical block size, a power of two", 0, .min = 1,
	  .max = 65536 },
	{ NULL, 0, NULL, NULL, 0 },
};

static int null_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	uint64_t size, bs;
	int rc;

	if ((rc = nexus_opts_u64(opts, "size", &size)) ||
	    (rc = nexus_opts_u64(opts, "block-size", &bs)))
		return rc;
	in->dev_size = size;
	in->logical_block_size = (uint32_t)bs;
	in->physical_block_size = bs > 4096 ? (uint32_t)bs : 4096;
	in->flags |= NEXUS_DEV_TRIM_ZEROES | NEXUS_DEV_MULTI_CONN |
		     NEXUS_DEV_BLOCK_STATUS;
	return 0;
}

static int null_submit(struct nexus_io *io)
{
	if (io->op == NEXUS_OP_BLOCK_STATUS) {
		/* nothing is stored: one hole that reads as zeroes */
		io->extents[0] = (struct nexus_extent){
			io->offset, io->length,
			NEXUS_EXTENT_HOLE | NEXUS_EXTENT_ZERO };
		nexus_io_complete(io, 1);
		return 0;
	}
	if (io->op == NEXUS_OP_READ)
		for (int i = 0; i < io->iovcnt; i++)
			memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
	nexus_io_complete(io, 0);
	return 0;
}

const struct nexus_driver nx_driver_null = {
	NEXUS_DRIVER_HEADER,
	.name = "null",
	.summary = "discards writes and reads zeroes (for benchmarks)",
	.kind = NEXUS_DRIVER_SOURCE,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
	       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS),
	.options = null_options,
	.check = nx_opts_check_geometry,
	.open = null_open,
	.submit = null_submit,
};
