/* SPDX-License-Identifier: MIT */
/* "tee": a test transform with a live child list, for the graph tests.
 *
 * Writes, write-zeroes and flushes go to every child in the list at the
 * moment they are submitted; reads and block status go to the first
 * child (the oldest).  Children can be attached and detached while I/O
 * runs: the driver keeps no copy of the list, it reads the core's
 * snapshot with nexus_dev_children() in each submit(), which stays valid
 * for that callback.  Nothing here copies data onto a new child: a test
 * that wants to drop the oldest child rewrites the device first.  (That
 * is what a mirror's rebuild is for; this is not a mirror.) */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <nexus/nexus_driver.h>

struct tee_io {
	struct nexus_io *io;
	atomic_uint pending;
	atomic_int err;
};

static int tee_check_child(struct nexus_dev *dev, struct nexus_dev *child)
{
	struct nexus_dev_info pi = NEXUS_DEV_INFO_INIT, ci = NEXUS_DEV_INFO_INIT;

	nexus_dev_get_info(dev, &pi);
	nexus_dev_get_info(child, &ci);
	if (ci.dev_size < pi.dev_size)
		return nexus_error(-EINVAL, "tee: %s has %llu bytes, fewer than "
				   "%llu", ci.name,
				   (unsigned long long)ci.dev_size,
				   (unsigned long long)pi.dev_size);
	if (ci.logical_block_size > pi.logical_block_size)
		return nexus_error(-EINVAL, "tee: %s needs blocks of %u bytes",
				   ci.name, ci.logical_block_size);
	if ((ci.ops & pi.ops) != pi.ops)
		return nexus_error(-EINVAL, "tee: %s lacks operations", ci.name);
	return 0;
}

static int tee_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info ci = NEXUS_DEV_INFO_INIT;
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);

	(void)opts;
	nexus_dev_get_info(nexus_dev_child(dev, 0), &ci);
	in->dev_size = ci.dev_size;
	in->logical_block_size = ci.logical_block_size;
	in->physical_block_size = ci.physical_block_size;
	in->max_io_size = ci.max_io_size;
	in->ops &= ci.ops;
	for (unsigned i = 1; i < nexus_dev_child_count(dev); i++) {
		int rc = tee_check_child(dev, nexus_dev_child(dev, i));

		if (rc)
			return rc;
	}
	return 0;
}

static void tee_done(void *ud, int res)
{
	struct tee_io *t = ud;
	int zero = 0;

	if (res < 0)
		atomic_compare_exchange_strong(&t->err, &zero, res);
	if (atomic_fetch_sub(&t->pending, 1) == 1)
		nexus_io_complete(t->io, atomic_load(&t->err));
}

static int tee_submit(struct nexus_io *io)
{
	struct nexus_dev *const *kids;
	unsigned n = nexus_dev_children(io->dev, &kids), started = 0;
	struct tee_io *t = io->driver_ctx;
	int rc = 0;

	if (io->op == NEXUS_OP_READ || io->op == NEXUS_OP_BLOCK_STATUS)
		return nexus_io_forward(io, kids[0]);
	t->io = io;
	atomic_store(&t->pending, n + 1); /* +1 until every child has it */
	atomic_store(&t->err, 0);
	for (unsigned i = 0; i < n; i++) {
		struct nexus_io_req r = NEXUS_IO_REQ_INIT;

		r.op = io->op;
		r.flags = io->flags;
		r.iov = io->iov;
		r.iovcnt = io->iovcnt;
		r.offset = io->offset;
		r.length = io->length;
		r.cb = tee_done;
		r.user_data = t;
		rc = nexus_dev_submit(kids[i], &r);
		if (rc) {
			tee_done(t, rc); /* counts it as done, with its error */
			continue;
		}
		started++;
	}
	if (!started) /* nothing will complete it: refuse instead */
		return rc;
	tee_done(t, 0);
	return 0;
}

static int tee_child_attach(struct nexus_dev *dev, struct nexus_dev *child)
{
	return tee_check_child(dev, child);
}

static int tee_child_detach(struct nexus_dev *dev, struct nexus_dev *child)
{
	(void)dev;
	(void)child;
	return 0; /* nothing of ours refers to it: the core's swap is enough */
}

static const struct nexus_driver tee = {
	NEXUS_DRIVER_HEADER,
	.name = "tee",
	.summary = "test transform: writes to every child, reads from the first",
	.kind = NEXUS_DRIVER_TRANSFORM,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
	       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS),
	.per_io_size = sizeof(struct tee_io),
	.min_children = 1,
	.max_children = 8,
	.open = tee_open,
	.submit = tee_submit,
	.child_attach = tee_child_attach,
	.child_detach = tee_child_detach,
};

static const struct nexus_driver *const drivers[] = { &tee, NULL };
NEXUS_REGISTER_PLUGIN(drivers)
