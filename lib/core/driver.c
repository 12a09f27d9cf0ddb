/* SPDX-License-Identifier: MIT */
/* Small services for driver authors that are not tied to one core
 * object: ABI queries and forwarding an I/O to a device below. */
#include <errno.h>

#include "internal.h"

uint32_t nexus_driver_abi_version(void)
{
	return NEXUS_DRIVER_ABI_VERSION;
}

uint32_t nexus_driver_struct_size(void)
{
	return (uint32_t)sizeof(struct nexus_driver);
}

static void forward_done(void *user_data, int result)
{
	struct nexus_io *io = user_data;

	/* READ/WRITE complete with a byte count; the driver's result is 0.
	 * BLOCK_STATUS completes with the number of extents. */
	if (result > 0 && io->op != NEXUS_OP_BLOCK_STATUS)
		result = 0;
	nexus_io_complete(io, result);
}

int nexus_io_forward(struct nexus_io *io, struct nexus_dev *child)
{
	struct nexus_io_req req;

	if (!io || !child)
		return nexus_error(-EINVAL, "nexus_io_forward: NULL argument");
	req = nx_io_req_of(io, forward_done, io);
	return nexus_dev_submit(child, &req);
}
