/* SPDX-License-Identifier: MIT */
/* Live device graphs (graph.c): the child list of a device, swapped as
 * a whole (read-copy-update) when a child is attached or detached, and
 * the device's state.  Core-private. */
#ifndef NEXUS_CORE_GRAPH_H
#define NEXUS_CORE_GRAPH_H

#include <nexus/nexus.h>

#include "hidden.h"

struct nexus_dev;

/* An immutable child list.  A new one replaces it on every change and
 * keeps the lists it replaced (older), freed with the device: a reader
 * on any thread may still hold one (application threads have no grace
 * period), and changes are rare. */
struct nx_kids {
	struct nx_kids *older;
	unsigned n;
	struct nexus_dev *dev[];
};

/* Give @p dev its first child list (nx_dev_create(), before open()); the
 * device owns them once it opened.  Returns 0 or -ENOMEM (message set). */
NX_HIDDEN int nx_graph_init(struct nexus_dev *dev,
			    struct nexus_dev *const *children, unsigned n);
/* Free the child list without touching the children (failed open). */
NX_HIDDEN void nx_graph_forget(struct nexus_dev *dev);
/* Close the children (nx_dev_destroy()) and free the list: the device
 * itself is drained and closed. */
NX_HIDDEN void nx_graph_destroy_children(struct nexus_dev *dev);

#endif
