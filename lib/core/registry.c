/* SPDX-License-Identifier: MIT */
/* Driver registry: the drivers of a context, built-ins and plugins,
 * looked up by name and kind, and their description for
 * nexus_ctx_describe_drivers().  Tables are checked and normalised by
 * registry-check.c; plugins are loaded by loader.c. */
#include "config.h"
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "registry.h"

extern const struct nexus_driver *const nx_builtin_drivers[] NX_HIDDEN;

const char *nx_registry_kind_name(uint32_t kind)
{
	switch (kind) {
	case NEXUS_DRIVER_SOURCE: return "source";
	case NEXUS_DRIVER_TRANSFORM: return "transform";
	case NEXUS_DRIVER_EXPORT: return "export";
	}
	return "unknown";
}

static struct nx_driver_entry *find_locked(struct nexus_ctx *ctx,
					   const char *name, uint32_t kind)
{
	for (struct nx_driver_entry *e = ctx->drivers; e; e = e->next)
		if ((!kind || e->drv.kind == kind) && !strcmp(e->drv.name, name))
			return e;
	return NULL;
}

/* Register a list of normalised entries as one unit: all or none. */
int nx_registry_insert_all(struct nexus_ctx *ctx, struct nx_driver_entry *list,
		      const char *origin)
{
	struct nx_driver_entry *last = NULL;
	int rc = 0;

	pthread_mutex_lock(&ctx->lock);
	for (struct nx_driver_entry *e = list; e; e = e->next) {
		struct nx_driver_entry *dup = find_locked(ctx, e->drv.name,
							  e->drv.kind);

		for (struct nx_driver_entry *p = list; !dup && p != e;
		     p = p->next)
			if (p->drv.kind == e->drv.kind &&
			    !strcmp(p->drv.name, e->drv.name))
				dup = p;
		if (dup) {
			rc = nexus_error(-EEXIST, "%s: a %s driver named '%s' "
					 "is already registered (%s)", origin,
					 nx_registry_kind_name(e->drv.kind),
					 e->drv.name,
					 dup->origin ? dup->origin : "built-in");
			break;
		}
		last = e;
	}
	if (rc == 0 && last) {
		last->next = ctx->drivers;
		ctx->drivers = list;
	}
	pthread_mutex_unlock(&ctx->lock);
	return rc;
}

void nx_registry_free_list(struct nx_driver_entry *e)
{
	while (e) {
		struct nx_driver_entry *next = e->next;

		free(e->origin);
		free(e->options);
		free(e);
		e = next;
	}
}

int nx_registry_add(struct nexus_ctx *ctx, const struct nexus_driver *drv,
		    void *dl, const char *origin)
{
	struct nx_driver_entry *e;
	int rc = nx_registry_normalise(drv, origin, &e);

	if (rc)
		return rc;
	e->dl = dl;
	rc = nx_registry_insert_all(ctx, e, origin);
	if (rc)
		free(e);
	return rc;
}

int nx_registry_init(struct nexus_ctx *ctx)
{
	for (unsigned i = 0; nx_builtin_drivers[i]; i++) {
		int rc = nx_registry_add(ctx, nx_builtin_drivers[i], NULL,
					 "built-in");
		if (rc)
			return rc;
	}
	return 0;
}

void nx_registry_fini(struct nexus_ctx *ctx)
{
	struct nx_driver_entry *e = ctx->drivers;

	/* Entries point into plugin memory: free them all, then unload. */
	ctx->drivers = NULL;
	while (e) {
		struct nx_driver_entry *next = e->next;

		if (e->dl)
			dlclose(e->dl);
		free(e->origin);
		free(e->options);
		free(e);
		e = next;
	}
}

const struct nexus_driver *nx_registry_find(struct nexus_ctx *ctx,
					    const char *name, uint32_t kind)
{
	struct nx_driver_entry *e;

	if (!name)
		return NULL;
	pthread_mutex_lock(&ctx->lock);
	e = find_locked(ctx, name, kind);
	pthread_mutex_unlock(&ctx->lock);
	return e ? &e->drv : NULL;
}

static const char *type_name(int t)
{
	static const char *const names[] = { "string", "bool", "uint", "size" };

	return t >= 0 && t <= NEXUS_OPT_SIZE ? names[t] : "?";
}

/* " (from 1 to 4096)", " (at least 1)", " (one of a|b)" or "". */
static void limits_text(const struct nexus_option_desc *o, char *buf,
			size_t len)
{
	size_t off;

	buf[0] = '\0';
	if (o->min || o->max) {
		buf[0] = ' ';
		buf[1] = '(';
		nx_option_bounds_text(o, buf + 2, len - 3);
		strcat(buf, ")");
	}
	if (!o->values)
		return;
	off = (size_t)snprintf(buf, len, " (one of ");
	for (unsigned i = 0; o->values[i] && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
					i ? "|" : "", o->values[i]);
	if (off < len)
		snprintf(buf + off, len - off, ")");
}

int nexus_ctx_describe_drivers(struct nexus_ctx *ctx, char *buf, size_t len)
{
	char lim[256];
	size_t off = 0;

	if (!ctx || (!buf && len))
		return nexus_error(-EINVAL, "nexus_ctx_describe_drivers: NULL "
					    "argument");
#define OUT(...)                                                            \
	do {                                                                \
		int w_ = snprintf(off < len ? buf + off : NULL,             \
				  off < len ? len - off : 0, __VA_ARGS__);  \
		if (w_ > 0)                                                 \
			off += (size_t)w_;                                  \
	} while (0)
	pthread_mutex_lock(&ctx->lock);
	for (uint32_t k = NEXUS_DRIVER_SOURCE; k <= NEXUS_DRIVER_EXPORT; k++) {
		for (struct nx_driver_entry *e = ctx->drivers; e; e = e->next) {
			const struct nexus_driver *d = &e->drv;

			if (d->kind != k)
				continue;
			OUT("%s %s%s%s%s\n    %s\n", nx_registry_kind_name(k),
			    d->name,
			    e->origin ? " (plugin " : "",
			    e->origin ? e->origin : "",
			    e->origin ? ")" : "",
			    d->summary ? d->summary : "");
			for (const struct nexus_option_desc *o = d->options;
			     o && o->name; o++) {
				limits_text(o, lim, sizeof(lim));
				OUT("    %-14s %-6s %s%s%s%s%s%s%s\n", o->name,
				    type_name(o->type), o->help ? o->help : "",
				    lim,
				    o->def ? " [default: " : "",
				    o->def ? o->def : "", o->def ? "]" : "",
				    (o->flags & NEXUS_OPTF_REQUIRED)
					    ? " (required)"
					    : "",
				    (o->flags & NEXUS_OPTF_SECRET)
					    ? " (secret: shown as "
					      NX_SECRET_SHOWN ")"
					    : "");
			}
		}
	}
	pthread_mutex_unlock(&ctx->lock);
#undef OUT
	if (off > INT_MAX)
		return nexus_error(-EOVERFLOW, "driver description too long");
	return (int)off;
}
