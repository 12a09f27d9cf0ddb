/* SPDX-License-Identifier: MIT */
/* mirror: the public listing of children and rebuild
 * (nexus_mirror_get_child(), nexus_mirror_get_rebuild()). */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "mirror.h"

/* The mirror at or below @p dev through single-child stages. */
static struct mirror *find(struct nexus_dev *dev, const char *fn)
{
	for (unsigned depth = 0; dev && depth < 4096; depth++) {
		/* the registry keeps a copy of the table: compare an op */
		if (dev->drv->submit == mirror_submit && nexus_dev_private(dev))
			return nexus_dev_private(dev);
		if (nexus_dev_child_count(dev) != 1)
			break;
		dev = nexus_dev_child(dev, 0);
	}
	nexus_error(-ENOENT, "%s: no mirror in this device stack", fn);
	return NULL;
}

int nexus_mirror_get_child(struct nexus_dev *dev, unsigned i,
			   struct nexus_mirror_child *out)
{
	struct nexus_mirror_child c = { .size = sizeof(c) };
	struct mirror *m;
	struct mirror_child *mc;
	unsigned n;
	int slot;

	if (!dev || !out)
		return nexus_error(-EINVAL, "nexus_mirror_get_child: NULL "
				   "argument");
	if (out->size < offsetof(struct nexus_mirror_child, dirty_bytes) +
				sizeof(out->dirty_bytes))
		return nexus_error(-EINVAL, "nexus_mirror_get_child: size not "
				   "set (use NEXUS_MIRROR_CHILD_INIT)");
	if (!(m = find(dev, "nexus_mirror_get_child")))
		return -ENOENT;
	pthread_mutex_lock(&m->lock);
	slot = mirror_slot(m, i);
	n = m->active;
	pthread_mutex_unlock(&m->lock);
	if (slot < 0)
		return nexus_error(-ENOENT, "nexus_mirror_get_child: child %u: "
				   "the mirror has %u", i, n);
	mc = &m->c[slot];
	c.dev = mc->dev;
	c.state = atomic_load(&mc->state);
	c.reason = atomic_load(&mc->reason);
	c.error = atomic_load(&mc->error);
	c.partial_ok = atomic_load(&mc->dirty_valid);
	c.reads = atomic_load(&mc->reads);
	c.writes = atomic_load(&mc->writes);
	c.errors = atomic_load(&mc->errors);
	c.timeouts = atomic_load(&mc->timeouts);
	c.in_flight = atomic_load(&mc->in_flight);
	c.dirty_bytes = mirror_dirty_bytes(m, (unsigned)slot);
	memcpy(out, &c, sizeof(c));
	return (int)n;
}

int nexus_mirror_get_rebuild(struct nexus_dev *dev,
			     struct nexus_mirror_rebuild *out)
{
	struct nexus_copy_progress p = NEXUS_COPY_PROGRESS_INIT;
	struct mirror *m;
	struct nexus_copy *job;

	if (!dev || !out)
		return nexus_error(-EINVAL, "nexus_mirror_get_rebuild: NULL "
				   "argument");
	if (out->size < sizeof(*out) || out->progress.size < sizeof(p))
		return nexus_error(-EINVAL, "nexus_mirror_get_rebuild: size "
				   "not set (use NEXUS_MIRROR_REBUILD_INIT)");
	if (!(m = find(dev, "nexus_mirror_get_rebuild")))
		return -ENOENT;
	pthread_mutex_lock(&m->lock);
	out->child = m->rebuild_child < 0
			     ? -1
			     : (int)mirror_rank(m, (unsigned)m->rebuild_child);
	out->partial = m->rebuild_partial;
	out->completed = m->rebuilds_done;
	out->last_result = m->rebuild_result;
	job = m->rebuild_child >= 0 ? m->job : NULL;
	p = m->last;
	p.size = sizeof(p);
	if (job)
		nexus_copy_get_progress(job, &p);
	pthread_mutex_unlock(&m->lock);
	out->progress = p;
	out->progress.size = sizeof(p);
	out->eta_ms = 0;
	if (job)
		out->eta_ms = !p.rate ? UINT64_MAX
			      : (uint64_t)((double)(p.bytes_total - p.bytes_done) *
					   1000.0 / (double)p.rate);
	return 0;
}
