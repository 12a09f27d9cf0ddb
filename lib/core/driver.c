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
	/* READ/WRITE complete with a byte count; the driver's result is 0 */
	nexus_io_complete(user_data, result < 0 ? result : 0);
}

int nexus_io_forward(struct nexus_io *io, struct nexus_dev *child)
{
	if (!io || !child)
		return nexus_error(-EINVAL, "nexus_io_forward: NULL argument");
	return nexus_dev_submit(child, (int)io->op, io->iov, io->iovcnt,
				io->offset, io->length, io->flags,
				forward_done, io);
}
