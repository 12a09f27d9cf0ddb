/* SPDX-License-Identifier: MIT */
/* Live device graphs: the children of a device, attached and detached
 * while I/O runs, and the state of a device.
 *
 * A device's children are an immutable array (struct nx_kids) behind an
 * atomic pointer.  Readers (a transform's submit() on a reactor, through
 * nexus_dev_children() or nexus_dev_child()) load the pointer once and
 * use that array for the rest of their callback.  A change builds a new
 * array, publishes it, and waits for a grace period: a no-op has run on
 * every reactor, so every callback that could have loaded the old
 * pointer has returned (reactors run callbacks to completion).  Old
 * arrays are kept, chained to the new one, until the device is closed:
 * readers on application threads (nexus_dev_child(), a stats walk) have
 * no grace period, and a few bytes per change cost nothing.  After the
 * grace period a detached child receives no new I/O from its former
 * parent; the I/O it already has is waited for
 * (nx_dev_drain()) before it is handed back to the caller as a top-level
 * device.  That is what keeps an I/O in flight on a detached child safe:
 * the child is released only when its last I/O has completed, and it is
 * never freed while the parent's list or a reader still refers to it.
 *
 * Changes to graphs are serialised by one lock (they are rare and run
 * on application threads); the driver's child_attach/child_detach run
 * under it, so a driver sees one change at a time.
 *
 * Device states are a word per device changed by nexus_dev_set_state();
 * the change and its event are made under a lock so that the events of
 * one device are queued in the order its state changed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "event.h"
#include "graph.h"

static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;

static struct nx_kids *kids_new(unsigned n)
{
	struct nx_kids *k = calloc(1, sizeof(*k) + n * sizeof(k->dev[0]));

	if (k)
		k->n = n;
	return k;
}

static struct nx_kids *kids_of(const struct nexus_dev *dev)
{
	return atomic_load_explicit(&((struct nexus_dev *)dev)->kids,
				    memory_order_acquire);
}

int nx_graph_init(struct nexus_dev *dev, struct nexus_dev *const *children,
		  unsigned n)
{
	struct nx_kids *k = kids_new(n);

	if (!k)
		return nexus_error(-ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++)
		k->dev[i] = children[i];
	atomic_init(&dev->kids, k);
	atomic_init(&dev->state, NEXUS_DEV_STATE_ONLINE);
	return 0;
}

static void kids_free(struct nx_kids *k)
{
	while (k) {
		struct nx_kids *older = k->older;

		free(k);
		k = older;
	}
}

void nx_graph_forget(struct nexus_dev *dev)
{
	kids_free(atomic_exchange(&dev->kids, NULL));
}

void nx_graph_destroy_children(struct nexus_dev *dev)
{
	struct nx_kids *k = atomic_exchange(&dev->kids, NULL);

	for (unsigned i = 0; k && i < k->n; i++)
		nx_dev_destroy(k->dev[i]);
	kids_free(k);
}

/* ---- readers ---- */

unsigned nexus_dev_child_count(const struct nexus_dev *dev)
{
	struct nx_kids *k = dev ? kids_of(dev) : NULL;

	return k ? k->n : 0;
}

struct nexus_dev *nexus_dev_child(const struct nexus_dev *dev, unsigned i)
{
	struct nx_kids *k = dev ? kids_of(dev) : NULL;

	return k && i < k->n ? k->dev[i] : NULL;
}

unsigned nexus_dev_children(const struct nexus_dev *dev,
			    struct nexus_dev *const **out)
{
	struct nx_kids *k = dev ? kids_of(dev) : NULL;

	if (out)
		*out = k && k->n ? k->dev : NULL;
	return k ? k->n : 0;
}

/* ---- changes ---- */

static int grace_fn(void *arg)
{
	(void)arg;
	return 0;
}

/* Wait until every reactor of @p ctx went through its loop once. */
static void grace(struct nexus_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->nreactors; i++)
		(void)nexus_reactor_call(&ctx->reactors[i], grace_fn, NULL);
}

/* Whether @p needle is @p top or below it. */
static bool in_subtree(const struct nexus_dev *top,
		       const struct nexus_dev *needle)
{
	struct nx_kids *k;

	if (top == needle)
		return true;
	k = kids_of(top);
	for (unsigned i = 0; k && i < k->n; i++)
		if (in_subtree(k->dev[i], needle))
			return true;
	return false;
}

static unsigned limit(uint32_t v)
{
	return v ? v : 1;
}

static void emit_child(struct nexus_dev *parent, struct nexus_dev *child,
		       uint32_t kind)
{
	struct nexus_event_info ev = {
		.size = sizeof(ev),
		.kind = kind,
		.reason = NEXUS_REASON_USER,
		.dev = parent,
		.child = child,
		.object = parent->name,
		.message = child->name,
		.old_state = nexus_dev_get_state(parent),
		.new_state = nexus_dev_get_state(parent),
	};

	nx_event_emit(parent->ctx, &ev);
}

/* Checks shared by attach and detach: handles, thread, driver. */
static int check_common(struct nexus_dev *parent, struct nexus_dev *child,
			const char *fn)
{
	if (!parent || !child)
		return nexus_error(-EINVAL, "%s: NULL %s", fn,
				   parent ? "child" : "parent");
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "%s(%s): called from a reactor "
				   "thread (an I/O callback): it waits for the "
				   "reactors", fn, parent->name);
	if (parent->ctx != child->ctx)
		return nexus_error(-EINVAL, "%s: %s and %s belong to different "
				   "contexts", fn, parent->name, child->name);
	if (atomic_load(&parent->closing))
		return nexus_error(-ESHUTDOWN, "%s: %s is closing", fn,
				   parent->name);
	return 0;
}

int nexus_dev_attach_child(struct nexus_dev *parent, struct nexus_dev *child)
{
	struct nx_kids *old, *k;
	int rc = check_common(parent, child, "nexus_dev_attach_child");

	if (rc)
		return rc;
	pthread_mutex_lock(&graph_lock);
	old = kids_of(parent);
	if (parent->drv->kind != NEXUS_DRIVER_TRANSFORM ||
	    !parent->drv->child_attach) {
		rc = nexus_error(-EOPNOTSUPP, "nexus_dev_attach_child: driver "
				 "'%s' of %s cannot attach children while "
				 "open", parent->drv->name, parent->name);
		goto out;
	}
	if (in_subtree(child, parent)) {
		rc = nexus_error(-EINVAL, "nexus_dev_attach_child: %s is %s "
				 "or below it: that would make a loop",
				 parent->name, child->name);
		goto out;
	}
	if (old->n >= limit(parent->drv->max_children)) {
		rc = nexus_error(-ENOSPC, "nexus_dev_attach_child: %s has %u "
				 "children, the most driver '%s' takes",
				 parent->name, old->n, parent->drv->name);
		goto out;
	}
	/* ownership passes only from the application: a top-level device
	 * that nothing else serves */
	rc = nx_dev_unlink_top(child, "nexus_dev_attach_child");
	if (rc)
		goto out;
	k = kids_new(old->n + 1);
	if (!k) {
		nx_dev_set_top(child);
		rc = nexus_error(-ENOMEM, "out of memory");
		goto out;
	}
	memcpy(k->dev, old->dev, old->n * sizeof(k->dev[0]));
	k->dev[old->n] = child;
	k->older = old;
	rc = parent->drv->child_attach(parent, child);
	if (rc) {
		if (rc > 0)
			rc = -EIO;
		free(k);
		nx_dev_set_top(child);
		goto out;
	}
	atomic_store_explicit(&parent->kids, k, memory_order_release);
	grace(parent->ctx);
	nexus_log(parent->ctx, NEXUS_LOG_INFO, "attached %s to %s",
		  child->name, parent->name);
	emit_child(parent, child, NEXUS_EVENT_CHILD_ATTACHED);
out:
	pthread_mutex_unlock(&graph_lock);
	return rc;
}

int nexus_dev_detach_child(struct nexus_dev *parent, struct nexus_dev *child)
{
	struct nx_kids *old, *k;
	unsigned at = 0, j = 0;
	int rc = check_common(parent, child, "nexus_dev_detach_child");

	if (rc)
		return rc;
	pthread_mutex_lock(&graph_lock);
	old = kids_of(parent);
	while (at < old->n && old->dev[at] != child)
		at++;
	if (at == old->n) {
		rc = nexus_error(-ENOENT, "nexus_dev_detach_child: %s is not a "
				 "child of %s", child->name, parent->name);
		goto out;
	}
	if (!parent->drv->child_detach) {
		rc = nexus_error(-EOPNOTSUPP, "nexus_dev_detach_child: driver "
				 "'%s' of %s cannot detach children while "
				 "open", parent->drv->name, parent->name);
		goto out;
	}
	if (old->n <= 1 || old->n <= limit(parent->drv->min_children)) {
		rc = nexus_error(-EBUSY, "nexus_dev_detach_child: %s is %s "
				 "child of %s, which needs at least %u",
				 child->name, old->n <= 1 ? "the last"
							  : "a required",
				 parent->name, limit(parent->drv->min_children));
		goto out;
	}
	k = kids_new(old->n - 1);
	if (!k) {
		rc = nexus_error(-ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < old->n; i++)
		if (i != at)
			k->dev[j++] = old->dev[i];
	k->older = old;
	rc = parent->drv->child_detach(parent, child);
	if (rc) {
		if (rc > 0)
			rc = -EIO;
		free(k);
		goto out;
	}
	atomic_store_explicit(&parent->kids, k, memory_order_release);
	grace(parent->ctx);
	/* Nothing can find the child now (not top-level, in no list): the
	 * wait for what the parent submitted to it needs no lock. */
	pthread_mutex_unlock(&graph_lock);
	nx_dev_drain(child);
	nx_dev_set_top(child);
	nexus_log(parent->ctx, NEXUS_LOG_INFO, "detached %s from %s",
		  child->name, parent->name);
	emit_child(parent, child, NEXUS_EVENT_CHILD_DETACHED);
	return 0;
out:
	pthread_mutex_unlock(&graph_lock);
	return rc;
}

/* ---- device state (read with nexus_dev_get_state(), names.c) ---- */

int nexus_dev_set_state(struct nexus_dev *dev, int state, uint32_t reason,
			const char *msg)
{
	int old;

	if (!dev)
		return nexus_error(-EINVAL, "nexus_dev_set_state: NULL device");
	if (state < NEXUS_DEV_STATE_ONLINE || state > NEXUS_DEV_STATE_CLOSING)
		return nexus_error(-EINVAL, "nexus_dev_set_state(%s): %d is not "
				   "a device state", dev->name, state);
	pthread_mutex_lock(&state_lock);
	old = atomic_load(&dev->state);
	if (old != state && old != NEXUS_DEV_STATE_CLOSING) {
		struct nexus_event_info ev = {
			.size = sizeof(ev),
			.kind = NEXUS_EVENT_DEV_STATE,
			.reason = reason,
			.dev = dev,
			.object = dev->name,
			.old_state = old,
			.new_state = state,
			.message = msg,
		};

		atomic_store(&dev->state, state);
		nx_event_emit(dev->ctx, &ev);
	}
	pthread_mutex_unlock(&state_lock);
	return 0;
}
