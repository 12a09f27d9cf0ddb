/* SPDX-License-Identifier: MIT */
/* Devices: creation through a driver, per-reactor state, close with
 * in-flight I/O drained, info and counters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct rinit {
	struct nexus_dev *dev;
	unsigned idx;
};

static int reactor_init_fn(void *arg)
{
	struct rinit *ri = arg;
	struct nexus_dev *dev = ri->dev;

	return dev->drv->reactor_init(dev, &dev->ctx->reactors[ri->idx],
				      &dev->per_reactor[ri->idx].rstate);
}

static int reactor_fini_fn(void *arg)
{
	struct rinit *ri = arg;
	struct nexus_dev *dev = ri->dev;
	struct nx_dev_reactor *pr = &dev->per_reactor[ri->idx];

	if (dev->drv->reactor_fini)
		dev->drv->reactor_fini(dev, &dev->ctx->reactors[ri->idx],
				       pr->rstate);
	pr->rstate = NULL;
	return 0;
}

static void fini_reactors(struct nexus_dev *dev, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct rinit ri = { dev, i };

		if (dev->drv->reactor_fini)
			nexus_reactor_call(&dev->ctx->reactors[i],
					   reactor_fini_fn, &ri);
	}
}

int nx_dev_create(struct nexus_ctx *ctx, const struct nexus_driver *drv,
		  const char *name, struct nexus_dev **children,
		  unsigned nchildren, const struct nexus_opts *opts,
		  struct nexus_dev **out)
{
	struct nexus_dev *dev;
	unsigned i = 0;
	int rc;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return nexus_error(-ENOMEM, "out of memory");
	dev->per_reactor = calloc(ctx->nreactors, sizeof(*dev->per_reactor));
	dev->name = strdup(name ? name : drv->name);
	if (!dev->per_reactor || !dev->name) {
		free(dev->per_reactor);
		free(dev->name);
		free(dev);
		return nexus_error(-ENOMEM, "out of memory");
	}
	dev->ctx = ctx;
	dev->drv = drv;
	dev->io_size = (sizeof(struct nx_io_impl) + drv->per_io_size + 63) &
		       ~(size_t)63;
	rc = nx_graph_init(dev, children, nchildren);
	if (rc) {
		free(dev->per_reactor);
		free(dev->name);
		free(dev);
		return rc;
	}
	pthread_mutex_init(&dev->close_lock, NULL);
	pthread_cond_init(&dev->close_cond, NULL);
	dev->info.size = sizeof(dev->info);
	dev->info.logical_block_size = 1;
	dev->info.physical_block_size = 4096;
	dev->info.max_io_size = NX_MAX_IO_DEFAULT;
	dev->info.ops = drv->ops;
	dev->info.driver = drv->name;
	dev->info.name = dev->name;

	rc = drv->open(dev, opts);
	if (rc) {
		if (rc > 0)
			rc = -EIO;
		goto fail;
	}
	/* A transform never advertises what it did not declare.  BLOCK_STATUS
	 * is always there: the core answers for drivers that do not handle
	 * it (nx_block_status_fallback), conservatively. */
	dev->info.ops &= drv->ops;
	dev->info.ops |= NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS);
	dev->info.driver = drv->name;
	dev->info.name = dev->name;
	if (!dev->info.logical_block_size ||
	    (dev->info.logical_block_size & (dev->info.logical_block_size - 1))) {
		rc = nexus_error(-EINVAL, "%s: driver reported a logical block "
				 "size of %u (not a power of two)", dev->name,
				 dev->info.logical_block_size);
		goto fail_close;
	}
	if (!dev->info.max_io_size)
		dev->info.max_io_size = NX_MAX_IO_DEFAULT;
	if (drv->reactor_init) {
		for (i = 0; i < ctx->nreactors; i++) {
			struct rinit ri = { dev, i };

			rc = nexus_reactor_call(&ctx->reactors[i],
						reactor_init_fn, &ri);
			if (rc) {
				if (rc > 0)
					rc = -EIO;
				goto fail_reactors;
			}
		}
	}
	dev->reactors_ready = true;
	nexus_log(ctx, NEXUS_LOG_INFO, "opened %s (%s, %llu bytes)", dev->name,
		  drv->name, (unsigned long long)dev->info.dev_size);
	*out = dev;
	return 0;

fail_reactors:
	fini_reactors(dev, i);
fail_close:
	if (drv->close)
		drv->close(dev);
fail:
	nx_graph_forget(dev); /* the children stay the caller's */
	nx_event_forget(ctx, dev); /* open() may have set its state */
	pthread_mutex_destroy(&dev->close_lock);
	pthread_cond_destroy(&dev->close_cond);
	free(dev->per_reactor);
	free(dev->name);
	free(dev);
	return rc;
}

uint64_t nx_dev_inflight(const struct nexus_dev *dev)
{
	uint64_t sub = 0, done = 0;

	for (unsigned i = 0; i < dev->ctx->nreactors; i++) {
		const struct nx_dev_counters *c = &dev->per_reactor[i].c;

		sub += __atomic_load_n(&c->submitted, __ATOMIC_ACQUIRE);
		done += __atomic_load_n(&c->completed, __ATOMIC_ACQUIRE);
	}
	return sub - done;
}

void nx_dev_drain(struct nexus_dev *dev)
{
	atomic_store(&dev->close_waiting, 1);
	pthread_mutex_lock(&dev->close_lock);
	while (atomic_load(&dev->queued) || nx_dev_inflight(dev)) {
		struct timespec ts;

		/* The timed wait covers the window between a completion's
		 * check of close_waiting and our sleep. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&dev->close_cond, &dev->close_lock, &ts);
	}
	pthread_mutex_unlock(&dev->close_lock);
	/* a device drained by a detach goes on: completions need not wake
	 * anyone any more */
	atomic_store(&dev->close_waiting, 0);
}

static int pool_free_fn(void *arg)
{
	struct rinit *ri = arg;

	nx_dev_pool_free(&ri->dev->ctx->reactors[ri->idx],
			 &ri->dev->per_reactor[ri->idx]);
	return 0;
}

/* Close a device and, recursively, the children it owns. */
void nx_dev_destroy(struct nexus_dev *dev)
{
	if (!dev)
		return;
	nexus_dev_set_state(dev, NEXUS_DEV_STATE_CLOSING, NEXUS_REASON_USER,
			    NULL);
	atomic_store(&dev->closing, true);
	nx_dev_drain(dev);
	if (dev->reactors_ready)
		fini_reactors(dev, dev->ctx->nreactors);
	if (dev->drv->close)
		dev->drv->close(dev);
	for (unsigned i = 0; i < dev->ctx->nreactors; i++) {
		struct rinit ri = { dev, i };

		/* pools are reactor-owned: free them there */
		nexus_reactor_call(&dev->ctx->reactors[i], pool_free_fn, &ri);
	}
	nx_graph_destroy_children(dev);
	nx_event_forget(dev->ctx, dev); /* no event names it once freed */
	nexus_log(dev->ctx, NEXUS_LOG_INFO, "closed %s", dev->name);
	pthread_mutex_destroy(&dev->close_lock);
	pthread_cond_destroy(&dev->close_cond);
	free(dev->per_reactor);
	free(dev->name);
	free(dev);
}

void nx_dev_set_top(struct nexus_dev *dev)
{
	struct nexus_ctx *ctx = dev->ctx;

	pthread_mutex_lock(&ctx->lock);
	dev->top = true;
	dev->next = ctx->devs;
	ctx->devs = dev;
	pthread_mutex_unlock(&ctx->lock);
}

int nx_dev_unlink_top(struct nexus_dev *dev, const char *fn)
{
	struct nexus_ctx *ctx = dev->ctx;
	const char *by = NULL;
	bool found = false;

	pthread_mutex_lock(&ctx->lock);
	if (dev->export_refs) {
		for (struct nexus_export *e = ctx->exports; e && !by;
		     e = e->next) {
			pthread_mutex_lock(&e->lock);
			for (struct nexus_export_dev *ed = e->devs; ed;
			     ed = ed->next)
				if (ed->dev == dev)
					by = e->spec;
			pthread_mutex_unlock(&e->lock);
		}
		pthread_mutex_unlock(&ctx->lock);
		return nexus_error(-EBUSY, "%s: %s is served by export %s: "
				   "remove it from the export first "
				   "(nexus_export_remove_dev)", fn, dev->name,
				   by ? by : "(being created)");
	}
	for (struct nexus_dev **p = &ctx->devs; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			dev->top = false;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!found)
		return nexus_error(-EBUSY, "%s: %s is not an open top-level "
				   "device (owned by a pipeline or another "
				   "device, or closed)", fn, dev->name);
	return 0;
}

int nexus_dev_close(struct nexus_dev *dev)
{
	int rc;

	if (!dev)
		return 0;
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "nexus_dev_close(%s) from a "
				   "callback would deadlock", dev->name);
	rc = nx_dev_unlink_top(dev, "nexus_dev_close");
	if (rc)
		return rc;
	nx_dev_destroy(dev);
	return 0;
}

int nexus_dev_get_info(const struct nexus_dev *dev, struct nexus_dev_info *info)
{

	if (!dev || !info)
		return nexus_error(-EINVAL, "nexus_dev_get_info: NULL argument");
	if (info->size < sizeof(size_t))
		return nexus_error(-EINVAL, "nexus_dev_get_info: info->size not "
					    "set (use NEXUS_DEV_INFO_INIT)");
	nx_sized_copy_out(info, &dev->info, sizeof(dev->info));
	return 0;
}

int nexus_dev_get_stats(const struct nexus_dev *dev, struct nexus_dev_stats *st)
{
	struct nexus_dev_stats s;

	if (!dev || !st)
		return nexus_error(-EINVAL, "nexus_dev_get_stats: NULL argument");
	if (st->size < sizeof(size_t))
		return nexus_error(-EINVAL, "nexus_dev_get_stats: stats->size not "
					    "set (use NEXUS_DEV_STATS_INIT)");
	memset(&s, 0, sizeof(s));
	s.size = st->size;
	for (unsigned i = 0; i < dev->ctx->nreactors; i++) {
		const struct nx_dev_counters *c = &dev->per_reactor[i].c;

		for (unsigned o = 0; o < NX_OP_MAX; o++) {
			s.ops += __atomic_load_n(&c->ops[o], __ATOMIC_RELAXED);
			s.errors +=
				__atomic_load_n(&c->errors[o], __ATOMIC_RELAXED);
		}
		s.bytes_read += __atomic_load_n(&c->bytes_read, __ATOMIC_RELAXED);
		s.bytes_written +=
			__atomic_load_n(&c->bytes_written, __ATOMIC_RELAXED);
		for (unsigned b = 0; b < NEXUS_LAT_BUCKETS; b++)
			s.latency[b] +=
				__atomic_load_n(&c->latency[b], __ATOMIC_RELAXED);
	}
	/* queued by application threads and not yet started counts too
	 * (read first: a request moving from the queue to the reactor may
	 * briefly be counted twice, never missed) */
	s.in_flight = atomic_load(&dev->queued);
	s.in_flight += nx_dev_inflight(dev);
	nx_sized_copy_out(st, &s, sizeof(s));
	return 0;
}

int nexus_dev_get_op_stats(const struct nexus_dev *dev, int op,
			   struct nexus_op_stats *st)
{
	struct nexus_op_stats s;

	if (!dev || !st)
		return nexus_error(-EINVAL, "nexus_dev_get_op_stats: NULL "
				   "argument");
	if (st->size < sizeof(size_t))
		return nexus_error(-EINVAL, "nexus_dev_get_op_stats: "
				   "stats->size not set (use "
				   "NEXUS_OP_STATS_INIT)");
	if (op < 0 || op >= NX_OP_MAX)
		return nexus_error(-ERANGE, "nexus_dev_get_op_stats: unknown "
				   "operation %d", op);
	memset(&s, 0, sizeof(s));
	s.size = st->size;
	for (unsigned i = 0; i < dev->ctx->nreactors; i++) {
		const struct nx_dev_counters *c = &dev->per_reactor[i].c;

		s.ops += __atomic_load_n(&c->ops[op], __ATOMIC_RELAXED);
		s.errors += __atomic_load_n(&c->errors[op], __ATOMIC_RELAXED);
		s.bytes += __atomic_load_n(&c->bytes[op], __ATOMIC_RELAXED);
	}
	nx_sized_copy_out(st, &s, sizeof(s));
	return 0;
}

struct nexus_ctx *nexus_dev_ctx(const struct nexus_dev *dev)
{
	return dev ? dev->ctx : NULL;
}

void *nexus_dev_private(const struct nexus_dev *dev)
{
	return dev ? dev->priv : NULL;
}

void nexus_dev_set_private(struct nexus_dev *dev, void *priv)
{
	if (dev)
		dev->priv = priv;
}

struct nexus_dev_info *nexus_dev_info_mut(struct nexus_dev *dev)
{
	return dev ? &dev->info : NULL;
}

int nx_block_status_fallback(struct nexus_dev *dev, const struct nexus_io *io)
{
	if (dev->drv->block_status && (dev->info.flags & NEXUS_DEV_BLOCK_STATUS))
		return dev->drv->block_status(dev, io->offset, io->length,
					      io->extents, io->max_extents);
	io->extents[0].offset = io->offset;
	io->extents[0].length = io->length;
	io->extents[0].flags = 0;
	return 1;
}

int nexus_dev_block_status(struct nexus_dev *dev, uint64_t offset,
			   uint64_t length, struct nexus_extent *ext,
			   unsigned max)
{
	uint64_t size;

	if (!dev || !ext || !max)
		return nexus_error(-EINVAL, "nexus_dev_block_status: NULL "
					    "argument or max of 0");
	size = dev->info.dev_size;
	if (!length || offset > size || length > size - offset)
		return nexus_error(-EINVAL, "%s: block status of %llu bytes at "
				   "%llu is empty or past the end (size %llu)",
				   dev->name, (unsigned long long)length,
				   (unsigned long long)offset,
				   (unsigned long long)size);
	if (atomic_load(&dev->closing))
		return nexus_error(-ESHUTDOWN, "%s: device is closing",
				   dev->name);
	if (!nexus_reactor_current() &&
	    (dev->drv->ops & NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS)))
		return nx_sync_block_status(dev, offset, length, ext, max);
	if (dev->drv->block_status && (dev->info.flags & NEXUS_DEV_BLOCK_STATUS))
		return dev->drv->block_status(dev, offset, length, ext, max);
	ext[0].offset = offset;
	ext[0].length = length;
	ext[0].flags = 0;
	return 1;
}
