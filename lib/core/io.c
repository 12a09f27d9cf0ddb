/* SPDX-License-Identifier: MIT */
/* The asynchronous I/O path: validation, per-reactor I/O pools,
 * submission to the driver, deferred completion and counters.
 *
 * Latency stamps.  Every I/O of every device is timed, from its start
 * to the call of its completion callback, for the device's histogram.
 * In a stack of devices the I/Os of the layers nest: a transform's
 * submit() starts the I/O below, and that I/O's completion callback
 * completes the transform's.  Along such a synchronous chain on a
 * reactor the stamps are shared instead of read again:
 *  - an I/O started from inside another's submit() takes that I/O's
 *    start stamp, so its latency also counts the CPU time the layer
 *    above spent before starting it (crypt: encrypting a write);
 *  - an I/O completed from inside another's completion callback takes
 *    that I/O's end stamp, and is finished right after that callback
 *    returns (before the completions queued earlier), so its latency
 *    misses the CPU time its own layer spent in the callback before
 *    completing it (crypt: decrypting a read).
 * Either way the error of a sample is at most the CPU time of one layer
 * in that chain (a microsecond or so for crypt with 4 KiB), and one
 * clock read serves the whole stack at each end.  I/Os started from a
 * completion callback, or from the reactor's loop, read the clock. */
#include <errno.h>
#include <limits.h>
#ifndef IOV_MAX
#define IOV_MAX 1024
#endif
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SLAB_IOS 64

static void wake_closer(struct nexus_dev *dev);

static const char *const op_names[NX_OP_MAX] = {
	"read", "write", "flush", "trim", "write-zeroes", "block-status",
};

static void slab_fill(struct nexus_dev *dev, struct nx_dev_reactor *pr,
		      char *slab, unsigned ridx)
{
	for (unsigned i = 0; i < SLAB_IOS; i++) {
		struct nx_io_impl *n = (void *)(slab + i * dev->io_size);

		n->pool_owner = ridx;
		n->io.driver_ctx = dev->drv->per_io_size ? (void *)(n + 1) : NULL;
		n->next = pr->free_ios;
		pr->free_ios = n;
	}
}

/* ---- giving slabs back (trim.h) ----
 * A device's I/O pool on a reactor keeps its first slab.  The others
 * are freed once a whole trim period passed in which no I/O of the
 * device started on that reactor and none is in flight there. */
static bool slab_trim(struct nx_trim *t, struct nexus_reactor *r, bool *freed)
{
	struct nx_dev_reactor *pr = container_of(t, struct nx_dev_reactor, trim);
	uint64_t started = __atomic_load_n(&pr->c.submitted, __ATOMIC_RELAXED);
	unsigned nfree = 0;

	if (started != pr->trim_seen) {
		pr->trim_seen = started; /* in use: look again next period */
		return true;
	}
	for (struct nx_io_impl *io = pr->free_ios; io; io = io->next)
		nfree++;
	if (nfree != pr->nslabs * SLAB_IOS)
		return true; /* some still in flight */
	for (unsigned i = 1; i < pr->nslabs; i++)
		free(pr->slabs[i]);
	pr->nslabs = 1;
	pr->free_ios = NULL;
	slab_fill(pr->dev, pr, pr->slabs[0], r->index);
	*freed = true;
	return false;
}

static void slab_trim_start(struct nexus_dev *dev, struct nx_dev_reactor *pr,
			    struct nexus_reactor *r)
{
	pr->dev = dev;
	pr->trim.fn = slab_trim;
	pr->trim_seen = __atomic_load_n(&pr->c.submitted, __ATOMIC_RELAXED);
	nx_trim_add(r, &pr->trim);
}

static struct nx_io_impl *pool_get(struct nexus_dev *dev,
				   struct nx_dev_reactor *pr, unsigned ridx)
{
	struct nx_io_impl *io = pr->free_ios;
	char *slab;

	if (likely(io)) {
		pr->free_ios = io->next;
		return io;
	}
	/* Grow by a slab: only when more I/Os are in flight than ever. */
	if (pr->nslabs == pr->slab_cap) {
		unsigned cap = pr->slab_cap ? pr->slab_cap * 2 : 8;
		void **s = realloc(pr->slabs, cap * sizeof(*s));

		if (!s)
			return NULL;
		pr->slabs = s;
		pr->slab_cap = cap;
	}
	if (posix_memalign((void **)&slab, 64, dev->io_size * SLAB_IOS))
		return NULL;
	pr->slabs[pr->nslabs++] = slab;
	slab_fill(dev, pr, slab, ridx);
	if (pr->nslabs > 1)
		slab_trim_start(dev, pr, &dev->ctx->reactors[ridx]);
	io = pr->free_ios;
	pr->free_ios = io->next;
	return io;
}

void nx_dev_pool_free(struct nexus_reactor *r, struct nx_dev_reactor *pr)
{
	nx_trim_remove(r, &pr->trim);
	for (unsigned i = 0; i < pr->nslabs; i++)
		free(pr->slabs[i]);
	free(pr->slabs);
	pr->slabs = NULL;
	pr->nslabs = pr->slab_cap = 0;
	pr->free_ios = NULL;
}

int nx_io_validate(struct nexus_dev *dev, const struct nx_req *req)
{
	const struct nexus_dev_info *in = &dev->info;
	uint64_t len = req->length, mask = in->logical_block_size - 1;
	int op = req->op;

	if (unlikely(op < 0 || op >= NX_OP_MAX))
		return nexus_error(-EINVAL, "%s: unknown operation %d",
				   dev->name, op);
	if (unlikely(req->flags & ~(uint32_t)(NEXUS_IO_FUA | NEXUS_IO_NO_UNMAP |
					      NEXUS_IO_FAST_ZERO)))
		return nexus_error(-EINVAL, "%s: unknown I/O flags 0x%x",
				   dev->name, req->flags);
	if (unlikely(!req->cb))
		return nexus_error(-EINVAL, "%s: %s without a callback",
				   dev->name, op_names[op]);
	if (unlikely(!(in->ops & NEXUS_OP_BIT(op))))
		return nexus_error(-EOPNOTSUPP, "%s: %s is not supported by "
				   "driver '%s'", dev->name, op_names[op],
				   dev->drv->name);
	if (unlikely(atomic_load_explicit(&dev->closing,
					  memory_order_relaxed)))
		return nexus_error(-ESHUTDOWN, "%s: device is closing",
				   dev->name);
	if (op == NEXUS_OP_FLUSH)
		return 0;
	if (op == NEXUS_OP_BLOCK_STATUS) {
		if (unlikely(!req->extents || !req->max_extents))
			return nexus_error(-EINVAL, "%s: block-status needs an "
					   "extent array and max_extents > 0",
					   dev->name);
	} else if (unlikely(op != NEXUS_OP_READ &&
			    (in->flags & NEXUS_DEV_READ_ONLY)))
		return nexus_error(-EROFS, "%s: %s on a read-only device",
				   dev->name, op_names[op]);
	if (op == NEXUS_OP_READ || op == NEXUS_OP_WRITE) {
		if (unlikely(!req->iov || req->iovcnt <= 0 ||
			     req->iovcnt > IOV_MAX))
			return nexus_error(-EINVAL, "%s: %s needs 1..%d iovec "
					   "entries, got %d", dev->name,
					   op_names[op], IOV_MAX, req->iovcnt);
		if (unlikely(len > in->max_io_size))
			return nexus_error(-EINVAL, "%s: %s of %llu bytes "
					   "exceeds max_io_size %u", dev->name,
					   op_names[op],
					   (unsigned long long)len,
					   in->max_io_size);
	}
	if (unlikely(len == 0))
		return nexus_error(-EINVAL, "%s: zero-length %s", dev->name,
				   op_names[op]);
	if (unlikely(req->offset > in->dev_size ||
		     len > in->dev_size - req->offset))
		return nexus_error(-EINVAL, "%s: %s of %llu bytes at offset "
				   "%llu is past the end (size %llu)",
				   dev->name, op_names[op],
				   (unsigned long long)len,
				   (unsigned long long)req->offset,
				   (unsigned long long)in->dev_size);
	if (unlikely(((req->offset | len) & mask) && op != NEXUS_OP_BLOCK_STATUS))
		return nexus_error(-EINVAL, "%s: %s at offset %llu length "
				   "%llu is not aligned to the logical block "
				   "size %u", dev->name, op_names[op],
				   (unsigned long long)req->offset,
				   (unsigned long long)len,
				   in->logical_block_size);
	return 0;
}

/* Start a validated request on reactor r.  Returns 0, -ENOMEM (nothing
 * started; the caller may retry) or the driver's synchronous error. */
int nx_io_start(struct nexus_reactor *r, const struct nx_req *req)
{
	struct nexus_dev *dev = req->dev;
	struct nx_dev_reactor *pr = &dev->per_reactor[r->index];
	struct nx_io_impl *impl = pool_get(dev, pr, r->index);
	uint64_t saved_start, saved_end;
	struct nexus_io *io;
	int rc;

	if (unlikely(!impl))
		return nexus_error(-ENOMEM, "%s: out of memory for I/O",
				   dev->name);
	impl->cb = req->cb;
	impl->user_data = req->user_data;
	impl->result = 0;
	impl->start_ns = r->submit_stamp ? r->submit_stamp : nx_stamp_ns();
	io = &impl->io;
	io->dev = dev;
	io->reactor = r;
	io->rstate = pr->rstate;
	io->iov = req->iov;
	io->iovcnt = req->iovcnt;
	io->op = req->op;
	io->flags = req->flags;
	io->max_extents = req->max_extents;
	io->offset = req->offset;
	io->length = req->length;
	io->extents = req->extents;
	nx_count(&pr->c.submitted, 1);
	/* The I/Os this submit() starts share its start stamp; what it
	 * completes has no end stamp yet (it completes later than this). */
	saved_start = r->submit_stamp;
	saved_end = r->done_stamp;
	r->submit_stamp = impl->start_ns;
	r->done_stamp = 0;
	if (unlikely(req->op == NEXUS_OP_BLOCK_STATUS &&
		     !(dev->drv->ops & NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS)))) {
		/* A driver that does not handle it: the core answers. */
		nexus_io_complete(io, nx_block_status_fallback(dev, io));
		rc = 0;
	} else {
		rc = dev->drv->submit(io);
	}
	r->submit_stamp = saved_start;
	r->done_stamp = saved_end;
	if (unlikely(rc < 0)) {
		nx_count(&pr->c.submitted, (uint64_t)-1);
		impl->next = pr->free_ios;
		pr->free_ios = impl;
	}
	return rc;
}

/* Total length of an iovec, saturated at UINT64_MAX (so that entries
 * whose lengths wrap around are refused as too large, not read as a
 * small request).  *null_at receives the index of an entry with a NULL
 * buffer and a non-zero length, or -1. */
static uint64_t iov_total(const struct iovec *iov, int n, int *null_at)
{
	uint64_t t = 0;

	*null_at = -1;
	for (int i = 0; i < n; i++) {
		if (unlikely(!iov[i].iov_base && iov[i].iov_len && *null_at < 0))
			*null_at = i;
		if (unlikely(iov[i].iov_len > UINT64_MAX - t))
			t = UINT64_MAX;
		else
			t += iov[i].iov_len;
	}
	return t;
}

int nexus_dev_submit(struct nexus_dev *dev, const struct nexus_io_req *ureq)
{
	struct nexus_reactor *r;
	struct nx_req req;
	int op, rc;

	if (unlikely(!dev || !ureq))
		return nexus_error(-EINVAL, "nexus_dev_submit: NULL %s",
				   dev ? "request" : "device");
	if (unlikely(ureq->size < offsetof(struct nexus_io_req, extents)))
		return nexus_error(-EINVAL, "%s: nexus_io_req.size not set (use "
				   "NEXUS_IO_REQ_INIT)", dev->name);
	op = (int)ureq->op;
	req.dev = dev;
	req.op = (uint16_t)op;
	req.pad = 0;
	req.iov = NULL;
	req.iovcnt = 0;
	req.offset = ureq->offset;
	req.length = ureq->length;
	req.flags = ureq->flags;
	req.cb = ureq->cb;
	req.user_data = ureq->user_data;
	req.extents = NULL;
	req.max_extents = 0;
	if (op == NEXUS_OP_READ || op == NEXUS_OP_WRITE) {
		req.iov = ureq->iov;
		req.iovcnt = ureq->iovcnt;
		req.length = 0;
		if (req.iov && req.iovcnt > 0 && req.iovcnt <= IOV_MAX) {
			int null_at;

			req.length = iov_total(req.iov, req.iovcnt, &null_at);
			if (unlikely(null_at >= 0))
				return nexus_error(-EINVAL, "%s: %s: iovec entry "
						   "%d has a NULL buffer",
						   dev->name, op_names[op],
						   null_at);
		}
	} else if (op == NEXUS_OP_FLUSH) {
		req.offset = req.length = 0;
	} else if (op == NEXUS_OP_BLOCK_STATUS) {
		if (ureq->size >= offsetof(struct nexus_io_req, max_extents) +
					  sizeof(ureq->max_extents)) {
			req.extents = ureq->extents;
			req.max_extents = ureq->max_extents;
		}
	} else if (op < 0 || op >= NX_OP_MAX) {
		return nexus_error(-EINVAL, "%s: unknown operation %d",
				   dev->name, op);
	}
	rc = nx_io_validate(dev, &req);
	if (unlikely(rc))
		return rc;
	r = nexus_reactor_current();
	if (likely(r && r->ctx == dev->ctx)) {
		rc = nx_io_start(r, &req);
		return rc > 0 ? 0 : rc;
	}
	atomic_fetch_add(&dev->queued, 1);
	/* Checked again now that `queued` counts us: a close that set
	 * `closing` after our first check either sees queued > 0 and waits,
	 * or we see `closing` here (both seq_cst), so nothing is enqueued
	 * for a device being freed. */
	if (unlikely(atomic_load(&dev->closing))) {
		rc = nexus_error(-ESHUTDOWN, "%s: device is closing", dev->name);
		atomic_fetch_sub(&dev->queued, 1);
		return rc;
	}
	rc = nx_reactor_enqueue(nx_reactor_for_thread(dev->ctx), &req);
	if (rc)
		atomic_fetch_sub(&dev->queued, 1);
	return rc;
}

static void wake_closer(struct nexus_dev *dev)
{
	if (unlikely(atomic_load_explicit(&dev->close_waiting,
					  memory_order_acquire))) {
		pthread_mutex_lock(&dev->close_lock);
		pthread_cond_broadcast(&dev->close_cond);
		pthread_mutex_unlock(&dev->close_lock);
	}
}

/* Start a request an application thread queued.  Its submitter was told
 * 0, so a failure here is reported through the callback.  Returns
 * -ENOMEM (nothing done, retry later) or 0. */
int nx_io_start_queued(struct nexus_reactor *r, const struct nx_req *req)
{
	struct nexus_dev *dev = req->dev;
	int rc = nx_io_start(r, req);

	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		req->cb(req->user_data, rc);
	atomic_fetch_sub(&dev->queued, 1);
	wake_closer(dev);
	return 0;
}

void nexus_io_complete(struct nexus_io *io, int result)
{
	struct nx_io_impl *impl = container_of(io, struct nx_io_impl, io);
	struct nexus_reactor *r = io->reactor;

	impl->result = result;
	impl->end_ns = r->done_stamp;
	if (r->done_stamp) {
		/* From a completion callback: finished next, in the order
		 * that callback completes them (see the top of this file). */
		impl->next = *r->done_nest;
		*r->done_nest = impl;
		r->done_nest = &impl->next;
		if (!impl->next)
			r->done_tail = impl;
		return;
	}
	impl->next = NULL;
	if (r->done_tail)
		r->done_tail->next = impl;
	else
		r->done_head = impl;
	r->done_tail = impl;
}

static void finish(struct nexus_reactor *r, struct nx_io_impl *impl)
{
	struct nexus_io *io = &impl->io;
	struct nexus_dev *dev = io->dev;
	struct nx_dev_reactor *pr = &dev->per_reactor[impl->pool_owner];
	struct nx_dev_counters *c = &pr->c;
	uint64_t end = impl->end_ns ? impl->end_ns : nx_stamp_ns();
	/* 0, not 2^64, if the CPUs' clocks disagree by a few ns */
	uint64_t lat = end > impl->start_ns ? end - impl->start_ns : 0;
	int res = impl->result;
	nexus_io_cb cb = impl->cb;
	void *ud = impl->user_data;

	nx_count(&c->ops[io->op], 1);
	nx_count(&c->latency[nx_lat_bucket(lat)], 1);
	if (res < 0) {
		nx_count(&c->errors[io->op], 1);
		/* no stale message reaches the callback (see sync.c) */
		nx_clear_error();
	} else if (io->op == NEXUS_OP_READ) {
		nx_count(&c->bytes_read, io->length);
		nx_count(&c->bytes[io->op], io->length);
		res = (int)(io->length > INT_MAX ? INT_MAX : io->length);
	} else if (io->op == NEXUS_OP_WRITE) {
		nx_count(&c->bytes_written, io->length);
		nx_count(&c->bytes[io->op], io->length);
		res = (int)(io->length > INT_MAX ? INT_MAX : io->length);
	} else if (io->op == NEXUS_OP_BLOCK_STATUS) {
		/* res extents, as the driver reported them */
		if (unlikely(res == 0 || (uint32_t)res > io->max_extents)) {
			res = -EIO;
			nx_count(&c->errors[io->op], 1);
		} else {
			nx_count(&c->bytes[io->op], io->length);
		}
	} else {
		nx_count(&c->bytes[io->op], io->length);
		res = 0;
	}
	impl->next = pr->free_ios;
	pr->free_ios = impl;
	/* I/Os the callback completes take this end stamp */
	r->done_stamp = end;
	r->done_nest = &r->done_head;
	cb(ud, res);
	r->done_stamp = 0;
	/* counted after the callback so that close() waits for it */
	nx_count(&c->completed, 1);
	wake_closer(dev);
}

/* Finish the deferred completions, first in first out, except that
 * those a completion callback completes go first (see nexus_io_complete). */
void nx_io_run_deferred(struct nexus_reactor *r)
{
	struct nx_io_impl *impl;

	while ((impl = r->done_head)) {
		r->done_head = impl->next;
		if (!r->done_head)
			r->done_tail = NULL;
		finish(r, impl);
	}
}
