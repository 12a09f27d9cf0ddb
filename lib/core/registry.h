/* SPDX-License-Identifier: MIT */
/* The driver registry inside the core: the registry itself
 * (registry.c), the checks and normalisation of driver tables
 * (registry-check.c) and the plugin loader (loader.c). */
#ifndef NEXUS_CORE_REGISTRY_H
#define NEXUS_CORE_REGISTRY_H

#include "internal.h"

/* Longest driver name or option key. */
#define NX_MAX_NAME_LEN 64

/* "source", "transform", "export" or "unknown". */
NX_HIDDEN const char *nx_registry_kind_name(uint32_t kind);
/* A driver name: 1 to NX_MAX_NAME_LEN letters, digits, '-' and '_'. */
NX_HIDDEN bool nx_registry_valid_name(const char *s);
/* Copy a driver's table into a new entry of this library's layout (its
 * option descriptors too), zero-filling what the driver's sizes do not
 * cover, and check it: 0 or -EPROTO / -ENOMEM with a message naming
 * @p origin. */
NX_HIDDEN int nx_registry_normalise(const struct nexus_driver *drv,
				    const char *origin,
				    struct nx_driver_entry **out);
/* Register a list of normalised entries as one unit: all or none
 * (-EEXIST for a name already registered with the same kind). */
NX_HIDDEN int nx_registry_insert_all(struct nexus_ctx *ctx,
				     struct nx_driver_entry *list,
				     const char *origin);
/* Free a list of entries that was not registered. */
NX_HIDDEN void nx_registry_free_list(struct nx_driver_entry *e);

#endif
