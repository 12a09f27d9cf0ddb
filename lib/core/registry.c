/* SPDX-License-Identifier: MIT */
/* Driver registry: built-ins and plugins, looked up by name and kind.
 * A table is normalised on registration: the fields its struct_size
 * covers are copied, the rest zero-filled, then checked. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

extern const struct nexus_driver *const nx_builtin_drivers[] NX_HIDDEN;

static const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case NEXUS_DRIVER_SOURCE: return "source";
	case NEXUS_DRIVER_TRANSFORM: return "transform";
	case NEXUS_DRIVER_EXPORT: return "export";
	}
	return "unknown";
}

static int check_driver(const struct nexus_driver *d, const char *origin)
{
	const char *n = d->name ? d->name : "(unnamed)";

	if (!d->name || !*d->name || strpbrk(d->name, " \t:|,=()[];"))
		return nexus_error(-EPROTO, "%s: driver has no valid name",
				   origin);
	switch (d->kind) {
	case NEXUS_DRIVER_SOURCE:
	case NEXUS_DRIVER_TRANSFORM:
		if (!d->open || !d->submit)
			return nexus_error(-EPROTO, "%s: %s driver '%s' lacks "
					   "open or submit", origin,
					   kind_name(d->kind), n);
		if (d->ops & ~((1u << NEXUS_OP_COUNT) - 1))
			return nexus_error(-EPROTO, "%s: driver '%s' declares "
					   "unknown operations 0x%x", origin,
					   n, d->ops);
		if (d->per_io_size > (1u << 20))
			return nexus_error(-EPROTO, "%s: driver '%s' asks %u "
					   "bytes of per-I/O context", origin,
					   n, d->per_io_size);
		if (d->max_children > NX_MAX_CHILDREN ||
		    d->min_children > NX_MAX_CHILDREN ||
		    (d->max_children && d->min_children > d->max_children))
			return nexus_error(-EPROTO, "%s: driver '%s' has bad "
					   "child counts", origin, n);
		break;
	case NEXUS_DRIVER_EXPORT:
		if (!d->export_start || !d->export_stop)
			return nexus_error(-EPROTO, "%s: export driver '%s' "
					   "lacks export_start/stop", origin, n);
		break;
	default:
		return nexus_error(-EPROTO, "%s: driver '%s' has unknown kind "
				   "%u", origin, n, d->kind);
	}
	for (const struct nexus_option_desc *o = d->options; o && o->name; o++)
		if (o->type < NEXUS_OPT_STRING || o->type > NEXUS_OPT_SIZE)
			return nexus_error(-EPROTO, "%s: driver '%s' option "
					   "'%s' has unknown type %d", origin,
					   n, o->name, o->type);
	return 0;
}

int nx_registry_add(struct nexus_ctx *ctx, const struct nexus_driver *drv,
		    void *dl, const char *origin)
{
	struct nx_driver_entry *e;
	size_t n;
	int rc;

	if (!drv)
		return nexus_error(-EPROTO, "%s: NULL driver table", origin);
	if (drv->abi_version == 0 || drv->abi_version > NEXUS_DRIVER_ABI_VERSION)
		return nexus_error(-EPROTO, "%s: driver built for ABI version "
				   "%u; this libnexus supports up to %u",
				   origin, drv->abi_version,
				   NEXUS_DRIVER_ABI_VERSION);
	if (drv->struct_size < offsetof(struct nexus_driver, open))
		return nexus_error(-EPROTO, "%s: driver table size %u is too "
				   "small", origin, drv->struct_size);
	e = calloc(1, sizeof(*e));
	if (!e)
		return nexus_error(-ENOMEM, "out of memory");
	n = drv->struct_size < sizeof(e->drv) ? drv->struct_size : sizeof(e->drv);
	memcpy(&e->drv, drv, n);
	e->dl = dl;
	rc = check_driver(&e->drv, origin);
	if (rc == 0 && nx_registry_find(ctx, e->drv.name, e->drv.kind))
		rc = nexus_error(-EEXIST, "%s: a %s driver named '%s' is "
				 "already registered", origin,
				 kind_name(e->drv.kind), e->drv.name);
	if (rc) {
		free(e);
		return rc;
	}
	pthread_mutex_lock(&ctx->lock);
	e->next = ctx->drivers;
	ctx->drivers = e;
	pthread_mutex_unlock(&ctx->lock);
	return 0;
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

	while (e) {
		struct nx_driver_entry *next = e->next;

		if (e->dl)
			dlclose(e->dl);
		free(e);
		e = next;
	}
	ctx->drivers = NULL;
}

const struct nexus_driver *nx_registry_find(struct nexus_ctx *ctx,
					    const char *name, uint32_t kind)
{
	const struct nexus_driver *d = NULL;

	pthread_mutex_lock(&ctx->lock);
	for (struct nx_driver_entry *e = ctx->drivers; e; e = e->next) {
		if ((!kind || e->drv.kind == kind) && !strcmp(e->drv.name, name)) {
			d = &e->drv;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	return d;
}

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int nexus_plugin_load(struct nexus_ctx *ctx, const char *path)
{
	const struct nexus_driver *const *(*entry)(void);
	const struct nexus_driver *const *list;
	void *dl;
	int rc = 0, n = 0;

	if (!ctx || !path)
		return nexus_error(-EINVAL, "nexus_plugin_load: NULL argument");
	if (!is_file(path))
		return nexus_error(-ENOENT, "plugin %s: no such file", path);
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		return nexus_error(-ENOEXEC, "plugin %s: cannot load: %s", path,
				   dlerror());
	*(void **)&entry = dlsym(dl, NEXUS_PLUGIN_ENTRY);
	if (!entry) {
		dlclose(dl);
		return nexus_error(-ENOEXEC, "plugin %s: no entry point '%s' "
				   "(not a libnexus plugin)", path,
				   NEXUS_PLUGIN_ENTRY);
	}
	list = entry();
	if (!list || !list[0]) {
		dlclose(dl);
		return nexus_error(-EPROTO, "plugin %s: provides no driver",
				   path);
	}
	for (; list[n]; n++) {
		if (n >= 64) {
			rc = nexus_error(-EPROTO, "plugin %s: more than 64 "
					 "drivers (unterminated list?)", path);
			break;
		}
		rc = nx_registry_add(ctx, list[n], NULL, path);
		if (rc)
			break;
	}
	if (rc) {
		/* unregister what this plugin added */
		pthread_mutex_lock(&ctx->lock);
		for (int i = 0; i < n; i++) {
			struct nx_driver_entry *e = ctx->drivers;

			ctx->drivers = e->next;
			free(e);
		}
		pthread_mutex_unlock(&ctx->lock);
		dlclose(dl);
		return rc;
	}
	/* the first entry of this plugin owns the handle */
	ctx->drivers->dl = dl;
	nexus_log(ctx, NEXUS_LOG_INFO, "loaded plugin %s (%d drivers)", path,
		  n);
	return 0;
}

/* Search the context's plugin path, then $NEXUS_PLUGIN_PATH, for
 * nexus-NAME.so and load it. */
static int load_by_name(struct nexus_ctx *ctx, const char *name)
{
	const char *paths[2] = { ctx->plugin_path, getenv("NEXUS_PLUGIN_PATH") };

	for (unsigned p = 0; p < 2; p++) {
		const char *s = paths[p];

		while (s && *s) {
			const char *end = strchr(s, ':');
			size_t len = end ? (size_t)(end - s) : strlen(s);
			char file[PATH_MAX];

			if (len && snprintf(file, sizeof(file), "%.*s/nexus-%s.so",
					    (int)len, s, name) < (int)sizeof(file) &&
			    is_file(file))
				return nexus_plugin_load(ctx, file);
			s = end ? end + 1 : NULL;
		}
	}
	return -ENOENT;
}

const struct nexus_driver *nx_registry_lookup(struct nexus_ctx *ctx,
					      const char *name, uint32_t kind)
{
	const struct nexus_driver *d = nx_registry_find(ctx, name, kind);

	if (d)
		return d;
	if (!strpbrk(name, "/.") && load_by_name(ctx, name) == 0)
		d = nx_registry_find(ctx, name, kind);
	return d;
}

static const char *type_name(int t)
{
	static const char *const names[] = { "string", "bool", "uint", "size" };

	return t >= 0 && t <= NEXUS_OPT_SIZE ? names[t] : "?";
}

int nexus_ctx_describe_drivers(struct nexus_ctx *ctx, char *buf, size_t len)
{
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
			OUT("%s %s%s\n    %s\n", kind_name(k), d->name,
			    e->dl ? " (plugin)" : "",
			    d->summary ? d->summary : "");
			for (const struct nexus_option_desc *o = d->options;
			     o && o->name; o++)
				OUT("    %-14s %-6s %s%s%s%s%s\n", o->name,
				    type_name(o->type), o->help ? o->help : "",
				    o->def ? " [default: " : "",
				    o->def ? o->def : "", o->def ? "]" : "",
				    (o->flags & NEXUS_OPTF_REQUIRED)
					    ? " (required)"
					    : "");
		}
	}
	pthread_mutex_unlock(&ctx->lock);
#undef OUT
	if (off > INT_MAX)
		return nexus_error(-EOVERFLOW, "driver description too long");
	return (int)off;
}
