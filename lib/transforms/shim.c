/* SPDX-License-Identifier: MIT */
/* Helpers of the one-child transforms that keep the child's geometry
 * (see shim.h). */
#include "shim.h"

void nx_shim_inherit(struct nexus_dev *dev, struct nexus_dev_info *cin)
{
	struct nexus_dev_info ci = NEXUS_DEV_INFO_INIT;
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);

	nexus_dev_get_info(nexus_dev_child(dev, 0), &ci);
	in->dev_size = ci.dev_size;
	in->logical_block_size = ci.logical_block_size;
	in->physical_block_size = ci.physical_block_size;
	in->optimal_io_size = ci.optimal_io_size;
	in->max_io_size = ci.max_io_size;
	in->ops = ci.ops;
	in->flags = ci.flags;
	if (cin)
		*cin = ci;
}

int nx_shim_block_status(struct nexus_dev *dev, uint64_t off, uint64_t len,
			 struct nexus_extent *ext, unsigned max)
{
	return nexus_dev_block_status(nexus_dev_child(dev, 0), off, len, ext,
				      max);
}
