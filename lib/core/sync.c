/* SPDX-License-Identifier: MIT */
/* Synchronous I/O: a thin wait on top of nexus_dev_submit().  The waiter
 * sleeps on a futex word that the completion callback sets. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct waiter {
	atomic_int done;
	int result;
	char msg[256]; /* the reactor's message for a failure */
};

static void wake_cb(void *ud, int result)
{
	struct waiter *w = ud;

	/* A request that fails as the reactor starts it (e.g. an O_DIRECT
	 * buffer the driver refuses) left the driver's message on this
	 * reactor thread; carry it to the waiting thread.  Completion
	 * failures find it empty (io.c clears it). */
	if (result < 0)
		snprintf(w->msg, sizeof(w->msg), "%s", nexus_last_error());
	w->result = result;
	atomic_store_explicit(&w->done, 1, memory_order_release);
	syscall(SYS_futex, &w->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static int sync_req(struct nexus_dev *dev, struct nexus_io_req *req)
{
	struct waiter w = { .result = 0, .msg = "" };
	int rc;

	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "synchronous I/O from a reactor "
					     "thread (a callback) would "
					     "deadlock; use nexus_dev_submit");
	atomic_init(&w.done, 0);
	req->cb = wake_cb;
	req->user_data = &w;
	for (;;) {
		rc = nexus_dev_submit(dev, req);
		if (rc != -EAGAIN)
			break;
		usleep(100); /* queue full: back off briefly */
	}
	if (rc)
		return rc;
	while (!atomic_load_explicit(&w.done, memory_order_acquire))
		syscall(SYS_futex, &w.done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL,
			0);
	if (w.result < 0 && w.msg[0])
		nexus_error(w.result, "%s", w.msg);
	else if (w.result < 0)
		nexus_error(w.result, "%s: %s", dev->name, strerror(-w.result));
	return w.result;
}

static int sync_io(struct nexus_dev *dev, int op, const struct iovec *iov,
		   int iovcnt, uint64_t offset, uint64_t length,
		   uint32_t flags)
{
	struct nexus_io_req req = nx_io_req(op, iov, iovcnt, offset, length,
					    flags, NULL, NULL);

	return sync_req(dev, &req);
}

int nx_sync_block_status(struct nexus_dev *dev, uint64_t offset,
			 uint64_t length, struct nexus_extent *ext,
			 unsigned max)
{
	struct nexus_io_req req = NEXUS_IO_REQ_INIT;

	req.op = NEXUS_OP_BLOCK_STATUS;
	req.offset = offset;
	req.length = length;
	req.extents = ext;
	req.max_extents = max;
	return sync_req(dev, &req);
}

ssize_t nexus_dev_preadv(struct nexus_dev *dev, const struct iovec *iov,
			 int iovcnt, uint64_t offset)
{
	return sync_io(dev, NEXUS_OP_READ, iov, iovcnt, offset, 0, 0);
}

ssize_t nexus_dev_pwritev(struct nexus_dev *dev, const struct iovec *iov,
			  int iovcnt, uint64_t offset, uint32_t flags)
{
	return sync_io(dev, NEXUS_OP_WRITE, iov, iovcnt, offset, 0, flags);
}

ssize_t nexus_dev_pread(struct nexus_dev *dev, void *buf, size_t len,
			uint64_t offset)
{
	struct iovec iov = { buf, len };

	return nexus_dev_preadv(dev, &iov, 1, offset);
}

ssize_t nexus_dev_pwrite(struct nexus_dev *dev, const void *buf, size_t len,
			 uint64_t offset, uint32_t flags)
{
	struct iovec iov = { (void *)(uintptr_t)buf, len };

	return nexus_dev_pwritev(dev, &iov, 1, offset, flags);
}

int nexus_dev_flush(struct nexus_dev *dev)
{
	return sync_io(dev, NEXUS_OP_FLUSH, NULL, 0, 0, 0, 0);
}

int nexus_dev_trim(struct nexus_dev *dev, uint64_t offset, uint64_t length,
		   uint32_t flags)
{
	return sync_io(dev, NEXUS_OP_TRIM, NULL, 0, offset, length, flags);
}

int nexus_dev_write_zeroes(struct nexus_dev *dev, uint64_t offset,
			   uint64_t length, uint32_t flags)
{
	return sync_io(dev, NEXUS_OP_WRITE_ZEROES, NULL, 0, offset, length,
		       flags);
}
