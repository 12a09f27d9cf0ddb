/* SPDX-License-Identifier: MIT */
/* Live device graphs (graph.c): the child list of a device, swapped as
 * a whole (read-copy-update) when a child is attached or detached, and
 * the device's state.  Core-private. */
#ifndef NEXUS_CORE_GRAPH_H
#define NEXUS_CORE_GRAPH_H

#include <nexus/nexus.h>

#include "hidden.h"

struct nexus_dev;

/* An immutable child list.  A new one replaces it on every change; the
 * old one is freed once every reactor went through its loop (no
 * submit() that read it can still be running). */
struct nx_kids {
	unsigned n;
	struct nexus_dev *dev[];
};

/* Give @p dev its first child list (nx_dev_create(), before open()).
 * The children become owned by @p dev only when nx_graph_adopt() runs.
 * Returns 0 or -ENOMEM (message set). */
NX_HIDDEN int nx_graph_init(struct nexus_dev *dev,
			    struct nexus_dev *const *children, unsigned n);
/* The device opened: its children are its own from now on. */
NX_HIDDEN void nx_graph_adopt(struct nexus_dev *dev);
/* Free the child list without touching the children (failed open). */
NX_HIDDEN void nx_graph_forget(struct nexus_dev *dev);
/* Close the children (nx_dev_destroy()) and free the list: the device
 * itself is drained and closed. */
NX_HIDDEN void nx_graph_destroy_children(struct nexus_dev *dev);

#endif
