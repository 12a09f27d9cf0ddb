/* SPDX-License-Identifier: MIT */
/* mirror: children attached and detached while open
 * (nexus_dev_attach_child(), nexus_dev_detach_child()).
 *
 * The data path indexes children by *slot*.  An attached child takes a
 * new slot at the end, out of sync, and its rebuild starts at once (full:
 * it holds nothing of the mirror yet).  A detached child keeps its slot,
 * marked MIRROR_REMOVED, so that no slot number a reactor may hold ever
 * names another device.  Everything the user sees (the record, the
 * listing, `mirror.child.N`) counts the children that are not removed,
 * in slot order: the order of the core's child list, and of the pipeline
 * group when the mirror is opened again with the same children. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>

#include "mirror.h"

int mirror_slot(struct mirror *m, unsigned rank)
{
	unsigned n = mirror_slots(m);

	for (unsigned i = 0; i < n; i++)
		if (atomic_load(&m->c[i].state) != MIRROR_REMOVED && !rank--)
			return (int)i;
	return -1;
}

unsigned mirror_rank(struct mirror *m, unsigned slot)
{
	unsigned r = 0;

	for (unsigned i = 0; i < slot; i++)
		r += atomic_load(&m->c[i].state) != MIRROR_REMOVED;
	return r;
}

/* Can @p child hold this mirror's data with its I/O? */
static int fits(struct mirror *m, const struct nexus_dev_info *ci)
{
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	uint32_t need;

	nexus_dev_get_info(m->dev, &in);
	need = in.ops & ~ci->ops & ~NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS);
	if (ci->dev_size < m->size)
		return nexus_error(-EINVAL, "%s: a new child of %llu bytes is "
				   "smaller than the mirror (%llu)",
				   m->dev->name,
				   (unsigned long long)ci->dev_size,
				   (unsigned long long)m->size);
	if (ci->logical_block_size > in.logical_block_size)
		return nexus_error(-EINVAL, "%s: a new child's block size %u is "
				   "larger than the mirror's %u", m->dev->name,
				   ci->logical_block_size,
				   in.logical_block_size);
	if (need)
		return nexus_error(-EINVAL, "%s: a new child lacks operations "
				   "the mirror offers (mask 0x%x)",
				   m->dev->name, need);
	if ((ci->flags & NEXUS_DEV_READ_ONLY) &&
	    !(in.flags & NEXUS_DEV_READ_ONLY))
		return nexus_error(-EROFS, "%s: a new child is read-only",
				   m->dev->name);
	return 0;
}

int mirror_child_attach(struct nexus_dev *dev, struct nexus_dev *child)
{
	struct mirror *m = nexus_dev_private(dev);
	struct nexus_dev_info ci = NEXUS_DEV_INFO_INIT;
	_Atomic uint64_t *dirty;
	struct mirror_child *c;
	unsigned slot;
	int rc;

	nexus_dev_get_info(child, &ci);
	if ((rc = fits(m, &ci)))
		return rc;
	dirty = calloc((size_t)((m->nregions + 63) / 64) + 1, sizeof(*dirty));
	if (!dirty)
		return nexus_error(-ENOMEM, "out of memory");
	pthread_mutex_lock(&m->lock);
	if (m->n == MIRROR_SLOTS || m->active == NX_MAX_CHILDREN) {
		pthread_mutex_unlock(&m->lock);
		free((void *)dirty);
		return nexus_error(-ENOSPC, "%s: no room for another child",
				   dev->name);
	}
	slot = m->n;
	c = &m->c[slot];
	c->dev = child;
	c->size = ci.dev_size;
	c->dirty = dirty;
	atomic_store(&c->dirty_valid, false);
	atomic_store(&c->reason, NEXUS_REASON_NONE);
	atomic_store(&c->state, NEXUS_DEV_STATE_FAULTED);
	m->active++;
	atomic_fetch_add(&m->gen_want, 1); /* the record gains a child */
	__atomic_store_n(&m->n, slot + 1, __ATOMIC_RELEASE);
	mirror_update_state(m, NEXUS_REASON_USER);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	rc = mirror_wait_durable(m);
	if (rc) {
		/* refused: the child goes back to the caller untouched */
		pthread_mutex_lock(&m->lock);
		atomic_store(&c->state, MIRROR_REMOVED);
		m->active--;
		atomic_fetch_add(&m->gen_want, 1);
		mirror_update_state(m, NEXUS_REASON_USER);
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		return nexus_error(rc, "%s: cannot record the new child: %s",
				   dev->name, nexus_last_error());
	}
	if (mirror_rebuild_start(m, slot))
		nexus_log(m->ctx, NEXUS_LOG_WARN, "%s: new child %s stays out "
			  "of sync: %s; bring it online when the rebuild can "
			  "run", dev->name, child->name, nexus_last_error());
	return 0;
}

int mirror_child_detach(struct nexus_dev *dev, struct nexus_dev *child)
{
	struct mirror *m = nexus_dev_private(dev);
	int slot = -1, old, rc;
	unsigned n = mirror_slots(m);

	for (unsigned i = 0; i < n && slot < 0; i++)
		if (m->c[i].dev == child &&
		    atomic_load(&m->c[i].state) != MIRROR_REMOVED)
			slot = (int)i;
	if (slot < 0)
		return nexus_error(-ENOENT, "%s: not a child of the mirror",
				   dev->name);
	if (mirror_in_sync(m, (unsigned)slot) && mirror_in_sync_count(m) == 1)
		return nexus_error(-EBUSY, "%s: %s is the only child in sync",
				   dev->name, child->name);
	pthread_mutex_lock(&m->lock);
	rc = m->rebuild_child == slot;
	pthread_mutex_unlock(&m->lock);
	if (rc)
		mirror_rebuild_stop(m); /* cancelled: the child is faulted */
	pthread_mutex_lock(&m->lock);
	old = atomic_exchange(&m->c[slot].state, MIRROR_REMOVED);
	m->active--;
	atomic_fetch_add(&m->gen_want, 1); /* the record loses a child */
	mirror_update_state(m, NEXUS_REASON_USER);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	mirror_report(m, slot, old, NEXUS_DEV_STATE_OFFLINE, NEXUS_REASON_USER,
		      0, NULL);
	rc = mirror_wait_durable(m);
	if (rc)
		nexus_log(m->ctx, NEXUS_LOG_ERROR, "%s: %s detached, but the "
			  "state record could not be written: %s", dev->name,
			  child->name, nexus_last_error());
	return 0;
}
