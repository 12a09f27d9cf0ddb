/* SPDX-License-Identifier: MIT */
/* What the built-in transforms that stack on one device and keep its
 * geometry (throttle, fault) share: passing an I/O down unchanged,
 * taking the child's info, forwarding block status.  Core-private, not
 * part of the ABI; plugins write the same with nexus_io_forward(). */
#ifndef NEXUS_TRANSFORMS_SHIM_H
#define NEXUS_TRANSFORMS_SHIM_H

#include "internal.h" /* NX_HIDDEN; nx_parse_u64(), nx_parse_bool() */

/* Submit @p io unchanged to child 0 and complete it with the child's
 * result: 0, or the negative errno of the submission (then @p io is not
 * completed). */
static inline int nx_shim_pass(struct nexus_io *io)
{
	return nexus_io_forward(io, nexus_dev_child(io->dev, 0));
}

/* In open(): give @p dev the size, block sizes, I/O sizes, operations
 * and flags of child 0; the child's info also goes to @p cin unless it
 * is NULL. */
NX_HIDDEN void nx_shim_inherit(struct nexus_dev *dev,
			       struct nexus_dev_info *cin);

/* A block_status op: the answer of child 0 (for transforms that do not
 * move data around). */
NX_HIDDEN int nx_shim_block_status(struct nexus_dev *dev, uint64_t off,
				   uint64_t len, struct nexus_extent *ext,
				   unsigned max);

#endif
