/* SPDX-License-Identifier: MIT */
/* NEXUS_OP_BLOCK_STATUS submitted on a reactor (as an export does) or
 * from the calling thread, and waited for; for the tests of block status
 * of several areas. */
#ifndef NEXUS_TESTS_BSTATUS_H
#define NEXUS_TESTS_BSTATUS_H

#include <semaphore.h>
#include <stdbool.h>
#include <nexus/nexus_driver.h>

struct test_bs {
	struct nexus_io_req req;
	struct nexus_dev *dev;
	int submit_rc, result;
	sem_t done;
};

static inline void test_bs_cb(void *ud, int res)
{
	struct test_bs *b = ud;

	b->result = res;
	sem_post(&b->done);
}

static inline int test_bs_submit(void *p)
{
	struct test_bs *b = p;

	b->submit_rc = nexus_dev_submit(b->dev, &b->req);
	return 0;
}

/* BLOCK_STATUS of [off, off+len) into e[max], submitted on reactor @p r
 * (NULL: from this thread).  Returns the result (extents, or a negative
 * errno) or the error of the submission. */
static inline int test_block_status(struct nexus_reactor *r,
				    struct nexus_dev *dev, uint64_t off,
				    uint64_t len, struct nexus_extent *e,
				    unsigned max)
{
	struct test_bs b = { .req = NEXUS_IO_REQ_INIT, .dev = dev };
	int rc;

	b.req.op = NEXUS_OP_BLOCK_STATUS;
	b.req.offset = off;
	b.req.length = len;
	b.req.extents = e;
	b.req.max_extents = max;
	b.req.cb = test_bs_cb;
	b.req.user_data = &b;
	sem_init(&b.done, 0, 0);
	if (!r)
		test_bs_submit(&b);
	else if ((rc = nexus_reactor_call(r, test_bs_submit, &b)))
		b.submit_rc = rc;
	if (b.submit_rc == 0)
		while (sem_wait(&b.done) < 0)
			;
	sem_destroy(&b.done);
	return b.submit_rc ? b.submit_rc : b.result;
}

/* The same extents, field by field (the structs have padding). */
static inline bool test_extents_equal(const struct nexus_extent *a,
				      const struct nexus_extent *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i].offset != b[i].offset || a[i].length != b[i].length ||
		    a[i].flags != b[i].flags)
			return false;
	return true;
}

#endif
