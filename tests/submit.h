/* SPDX-License-Identifier: MIT */
/* nexus_dev_submit() with the fields of a nexus_io_req as arguments, for
 * tests that submit many plain requests (tests of the request struct
 * itself call nexus_dev_submit directly). */
#ifndef NEXUS_TESTS_SUBMIT_H
#define NEXUS_TESTS_SUBMIT_H

#include <nexus/nexus.h>

static inline int test_submit(struct nexus_dev *dev, int op,
			      const struct iovec *iov, int iovcnt,
			      uint64_t offset, uint64_t length,
			      uint32_t flags, nexus_io_cb cb, void *user_data)
{
	struct nexus_io_req req = NEXUS_IO_REQ_INIT;

	req.op = (uint32_t)op;
	req.iov = iov;
	req.iovcnt = iovcnt;
	req.offset = offset;
	req.length = length;
	req.flags = flags;
	req.cb = cb;
	req.user_data = user_data;
	return nexus_dev_submit(dev, &req);
}

#endif
