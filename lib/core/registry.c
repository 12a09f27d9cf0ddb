/* SPDX-License-Identifier: MIT */
/* Driver registry: built-ins and plugins, looked up by name and kind.
 *
 * A table is normalised on registration: the fields its struct_size
 * covers are copied into a table of the size this library knows, the
 * rest zero-filled, then checked.  A table larger than ours is accepted
 * only when the part we do not know is all zero (the rule of the kernel's
 * extensible structs, copy_struct_from_user): a plugin built against a
 * newer header that uses none of the newer fields works; one that sets
 * a field we would silently ignore is refused.
 *
 * Plugins are loaded with dlopen().  Everything a bad file can do short
 * of running hostile code is refused with a message: not an ELF object,
 * no entry point, an entry point that is not a function, no drivers, a
 * newer ABI, an invalid table, a duplicate name.  All of a plugin's
 * drivers are checked before any is registered, so a refused plugin
 * leaves the registry as it was. */
#include "config.h"
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

extern const struct nexus_driver *const nx_builtin_drivers[] NX_HIDDEN;

/* Limits on what a table may claim, so that a corrupt one is refused
 * rather than read far out of bounds. */
#define MAX_TABLE_SIZE 4096u
#define MAX_DRIVERS_PER_PLUGIN 64
#define MAX_OPTIONS 64
#define MAX_NAME_LEN 64
#define MAX_PER_IO_SIZE (1u << 20)
#define KNOWN_OPTF                                                          \
	(NEXUS_OPTF_REQUIRED | NEXUS_OPTF_POSITIONAL | NEXUS_OPTF_SECRET)

/* Serialises plugin loading (dlopen + registration) so that two threads
 * looking up the same unknown driver load it once. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/* Why the last by-name plugin lookup of this thread failed, so that the
 * pipeline parser can report it instead of "unknown driver". */
static __thread struct {
	char name[MAX_NAME_LEN + 1];
	int rc;
	char msg[512];
} tl_lookup;

static const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case NEXUS_DRIVER_SOURCE: return "source";
	case NEXUS_DRIVER_TRANSFORM: return "transform";
	case NEXUS_DRIVER_EXPORT: return "export";
	}
	return "unknown";
}

/* A non-empty string of at most MAX_NAME_LEN letters, digits, '-', '_'
 * and the characters of @p extra. */
static bool valid_word(const char *s, const char *extra)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char c = s[n];

		if (n >= MAX_NAME_LEN)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      strchr(extra, c)))
			return false;
	}
	return n > 0;
}

/* Driver names appear in pipelines and in plugin file names. */
static bool valid_name(const char *s)
{
	return valid_word(s, "");
}

/* Option keys as the pipeline parser reads them. */
static bool valid_key(const char *s)
{
	return valid_word(s, "+.");
}

static int check_options(const struct nexus_driver *d, const char *origin)
{
	const struct nexus_option_desc *o = d->options;
	unsigned n, positional = 0;

	for (n = 0; o && o[n].name; n++) {
		const struct nexus_option_desc *e = &o[n];
		uint64_t u;

		if (n == MAX_OPTIONS)
			return nexus_error(-EPROTO, "%s: driver '%s' has more "
					   "than %d options (is the table "
					   "terminated by a NULL name?)",
					   origin, d->name, MAX_OPTIONS);
		if (!valid_key(e->name))
			return nexus_error(-EPROTO, "%s: driver '%s' option %u "
					   "has an invalid name (letters, "
					   "digits, '-', '_', '.', '+'; at "
					   "most %d)", origin, d->name, n,
					   MAX_NAME_LEN);
		if (e->type < NEXUS_OPT_STRING || e->type > NEXUS_OPT_SIZE)
			return nexus_error(-EPROTO, "%s: driver '%s' option "
					   "'%s' has unknown type %d", origin,
					   d->name, e->name, e->type);
		if (e->flags & ~KNOWN_OPTF)
			return nexus_error(-EPROTO, "%s: driver '%s' option "
					   "'%s' has unknown flags 0x%x",
					   origin, d->name, e->name,
					   e->flags & ~KNOWN_OPTF);
		if ((e->flags & NEXUS_OPTF_POSITIONAL) && ++positional > 1)
			return nexus_error(-EPROTO, "%s: driver '%s' has more "
					   "than one positional option",
					   origin, d->name);
		for (unsigned j = 0; j < n; j++)
			if (!strcmp(o[j].name, e->name))
				return nexus_error(-EPROTO, "%s: driver '%s' "
						   "declares option '%s' "
						   "twice", origin, d->name,
						   e->name);
		if (e->def && (e->type == NEXUS_OPT_UINT ||
			       e->type == NEXUS_OPT_SIZE) &&
		    nx_parse_u64(e->def, e->type == NEXUS_OPT_SIZE, &u))
			return nexus_error(-EPROTO, "%s: driver '%s' option "
					   "'%s' has default '%s', not a "
					   "number", origin, d->name, e->name,
					   e->def);
		if (e->def && e->type == NEXUS_OPT_BOOL &&
		    strcmp(e->def, "on") && strcmp(e->def, "off") &&
		    strcmp(e->def, "true") && strcmp(e->def, "false") &&
		    strcmp(e->def, "yes") && strcmp(e->def, "no") &&
		    strcmp(e->def, "1") && strcmp(e->def, "0"))
			return nexus_error(-EPROTO, "%s: driver '%s' option "
					   "'%s' has default '%s', not on/off",
					   origin, d->name, e->name, e->def);
	}
	return 0;
}

static int check_driver(const struct nexus_driver *d, const char *origin)
{
	const char *n = d->name;

	if (!n)
		return nexus_error(-EPROTO, "%s: %s driver has a NULL name",
				   origin, kind_name(d->kind));
	if (!valid_name(n))
		return nexus_error(-EPROTO, "%s: driver name '%.*s' is invalid "
				   "(letters, digits, '-' and '_', at most "
				   "%d)", origin, MAX_NAME_LEN + 1, n,
				   MAX_NAME_LEN);
	switch (d->kind) {
	case NEXUS_DRIVER_SOURCE:
	case NEXUS_DRIVER_TRANSFORM:
		if (!d->open || !d->submit)
			return nexus_error(-EPROTO, "%s: %s driver '%s' lacks "
					   "%s", origin, kind_name(d->kind), n,
					   !d->open ? "open()" : "submit()");
		if (d->ops & ~((1u << NX_OP_MAX) - 1))
			return nexus_error(-EPROTO, "%s: driver '%s' declares "
					   "operations 0x%x unknown to this "
					   "libnexus", origin, n,
					   d->ops & ~((1u << NX_OP_MAX) - 1));
		if (!d->ops)
			return nexus_error(-EPROTO, "%s: %s driver '%s' declares "
					   "no operations (set .ops)", origin,
					   kind_name(d->kind), n);
		if (d->per_io_size > MAX_PER_IO_SIZE)
			return nexus_error(-EPROTO, "%s: driver '%s' asks %u "
					   "bytes of per-I/O context (at most "
					   "%u)", origin, n, d->per_io_size,
					   MAX_PER_IO_SIZE);
		if (d->kind == NEXUS_DRIVER_TRANSFORM &&
		    (d->max_children > NX_MAX_CHILDREN ||
		     d->min_children > NX_MAX_CHILDREN ||
		     (d->min_children ? d->min_children : 1) >
			     (d->max_children ? d->max_children : 1)))
			return nexus_error(-EPROTO, "%s: driver '%s' has bad "
					   "child counts (min %u, max %u; at "
					   "most %d)", origin, n,
					   d->min_children, d->max_children,
					   NX_MAX_CHILDREN);
		break;
	case NEXUS_DRIVER_EXPORT:
		if (!d->export_start || !d->export_stop)
			return nexus_error(-EPROTO, "%s: export driver '%s' "
					   "lacks %s", origin, n,
					   !d->export_start ? "export_start()"
							    : "export_stop()");
		break;
	default:
		return nexus_error(-EPROTO, "%s: driver '%s' has unknown kind "
				   "%u (1 source, 2 transform, 3 export)",
				   origin, n, d->kind);
	}
	return check_options(d, origin);
}

/* Copy the driver's option descriptors, read with the driver's stride
 * (nexus_driver::option_size), into an array of our own layout, the
 * fields the driver did not know zero. */
static int normalise_options(struct nx_driver_entry *e, const char *origin)
{
	const size_t ours = sizeof(struct nexus_option_desc);
	const size_t oldest = offsetof(struct nexus_option_desc, min);
	const char *base = (const char *)e->drv.options;
	size_t stride = e->drv.option_size;
	unsigned n;

	e->options = NULL;
	if (!base)
		return 0;
	/* 0: a table that predates the stride, with the first layout */
	if (!stride)
		stride = oldest;
	if (stride < oldest || stride > 4096 ||
	    stride % alignof(struct nexus_option_desc))
		return nexus_error(-EPROTO, "%s: driver '%s': option "
				   "descriptor size %zu is invalid (use "
				   "NEXUS_DRIVER_HEADER)", origin,
				   e->drv.name ? e->drv.name : "?", stride);
	for (n = 0; n <= MAX_OPTIONS; n++)
		if (!((const struct nexus_option_desc *)(const void *)
			      (base + n * stride))->name)
			break;
	/* more than MAX_OPTIONS: check_options() reports it */
	e->options = calloc(n + 1, ours);
	if (!e->options)
		return nexus_error(-ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++)
		memcpy(&e->options[i], base + i * stride,
		       stride < ours ? stride : ours);
	e->drv.options = e->options;
	e->drv.option_size = (uint32_t)ours;
	return 0;
}

/* Copy a driver's table into a new entry, normalised to our size. */
static int normalise(const struct nexus_driver *drv, const char *origin,
		     struct nx_driver_entry **out)
{
	const size_t ours = sizeof(struct nexus_driver);
	struct nx_driver_entry *e;
	uint32_t size;
	int rc;

	*out = NULL;
	if (!drv)
		return nexus_error(-EPROTO, "%s: NULL driver table", origin);
	if (drv->abi_version == 0)
		return nexus_error(-EPROTO, "%s: driver table has ABI version 0 "
				   "(not initialised with NEXUS_DRIVER_HEADER?)",
				   origin);
	if (drv->abi_version > NEXUS_DRIVER_ABI_VERSION)
		return nexus_error(-EPROTO, "%s: driver built for driver ABI "
				   "version %u; this libnexus %s supports "
				   "version %u: upgrade libnexus or rebuild "
				   "the plugin against this one", origin,
				   drv->abi_version, PACKAGE_VERSION,
				   NEXUS_DRIVER_ABI_VERSION);
	size = drv->struct_size;
	if (size < offsetof(struct nexus_driver, open) ||
	    size > MAX_TABLE_SIZE ||
	    size % alignof(struct nexus_driver))
		return nexus_error(-EPROTO, "%s: driver table size %u is "
				   "invalid (a table is %zu to %u bytes, a "
				   "multiple of %zu: use NEXUS_DRIVER_HEADER)",
				   origin, size,
				   offsetof(struct nexus_driver, open),
				   MAX_TABLE_SIZE,
				   alignof(struct nexus_driver));
	if (size > ours) {
		const unsigned char *tail = (const unsigned char *)drv + ours;

		for (size_t i = 0; i < size - ours; i++)
			if (tail[i])
				return nexus_error(
					-EPROTO, "%s: driver table of %u bytes "
					"sets a field at offset %zu that this "
					"libnexus %s (table of %zu bytes) does "
					"not know: the plugin needs a newer "
					"libnexus", origin, size,
					ours + i, PACKAGE_VERSION, ours);
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return nexus_error(-ENOMEM, "out of memory");
	memcpy(&e->drv, drv, size < ours ? size : ours);
	e->drv.struct_size = (uint32_t)ours;
	rc = normalise_options(e, origin);
	if (rc == 0)
		rc = check_driver(&e->drv, origin);
	if (rc) {
		free(e->options);
		free(e);
		return rc;
	}
	*out = e;
	return 0;
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
static int insert_all(struct nexus_ctx *ctx, struct nx_driver_entry *list,
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
					 kind_name(e->drv.kind), e->drv.name,
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

static void free_list(struct nx_driver_entry *e)
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
	int rc = normalise(drv, origin, &e);

	if (rc)
		return rc;
	e->dl = dl;
	rc = insert_all(ctx, e, origin);
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

/* Plugins are normally built without linking libnexus: their nexus_*
 * references resolve against the copy the process already has.  When
 * that copy was itself loaded with RTLD_LOCAL (Python's ctypes, another
 * plugin system), make its symbols global first. */
static void promote_self(void)
{
	Dl_info self;

	/* The reference taken here is kept on purpose: libnexus stays
	 * loaded while plugins may refer to it. */
	if (dladdr((void *)nexus_plugin_load, &self) && self.dli_fname)
		(void)dlopen(self.dli_fname,
			     RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
}

static void promote_once(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, promote_self);
}

/* A clear message for files dlopen() would describe poorly. */
static int check_elf(const char *path)
{
	unsigned char h[EI_NIDENT + 4];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return nexus_error(-errno, "plugin %s: cannot open: %s", path,
				   strerror(errno));
	n = read(fd, h, sizeof(h));
	close(fd);
	if (n < (ssize_t)sizeof(h) || memcmp(h, ELFMAG, SELFMAG))
		return nexus_error(-ENOEXEC, "plugin %s: not an ELF shared "
				   "object (bad magic)", path);
	if (h[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32))
		return nexus_error(-ENOEXEC, "plugin %s: ELF class %u does not "
				   "match this process (%zu-bit)", path,
				   h[EI_CLASS], sizeof(void *) * 8);
	return 0;
}

/* The entry point must be a function defined by the plugin itself, not
 * by a library it depends on. */
static int check_entry(void *dl, void *sym, const char *path)
{
	struct link_map *lm = NULL;
	const ElfW(Sym) *es = NULL;
	Dl_info info;

	if (!dladdr1(sym, &info, (void **)&es, RTLD_DL_SYMENT) || !es)
		return 0; /* cannot tell: trust dlsym */
	if (ELF64_ST_TYPE(es->st_info) != STT_FUNC &&
	    ELF64_ST_TYPE(es->st_info) != STT_GNU_IFUNC)
		return nexus_error(-ENOEXEC, "plugin %s: '%s' is not a "
				   "function (use NEXUS_REGISTER_PLUGIN)", path,
				   NEXUS_PLUGIN_ENTRY);
	if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) == 0 && lm &&
	    (void *)lm->l_addr != info.dli_fbase)
		return nexus_error(-ENOEXEC, "plugin %s: '%s' comes from %s, a "
				   "library it depends on, not from the "
				   "plugin", path, NEXUS_PLUGIN_ENTRY,
				   info.dli_fname ? info.dli_fname : "?");
	return 0;
}

static int load_locked(struct nexus_ctx *ctx, const char *path)
{
	const struct nexus_driver *const *(*entry)(void);
	const struct nexus_driver *const *list;
	struct nx_driver_entry *head = NULL, **tail = &head;
	char origin[PATH_MAX + 16];
	struct stat st;
	void *dl, *sym;
	int rc, n;

	if (stat(path, &st))
		return nexus_error(-errno, "plugin %s: %s", path,
				   strerror(errno));
	if (!S_ISREG(st.st_mode))
		return nexus_error(S_ISDIR(st.st_mode) ? -EISDIR : -ENOEXEC,
				   "plugin %s: not a regular file", path);
	rc = check_elf(path);
	if (rc)
		return rc;
	promote_once();
	dlerror();
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		const char *why = dlerror();

		return nexus_error(-ENOEXEC, "plugin %s: cannot load: %s", path,
				   why ? why : "unknown dlopen error");
	}
	dlerror();
	sym = dlsym(dl, NEXUS_PLUGIN_ENTRY);
	if (!sym) {
		dlclose(dl);
		return nexus_error(-ENOEXEC, "plugin %s: no entry point '%s' "
				   "(not a libnexus plugin: use "
				   "NEXUS_REGISTER_PLUGIN)", path,
				   NEXUS_PLUGIN_ENTRY);
	}
	rc = check_entry(dl, sym, path);
	if (rc) {
		dlclose(dl);
		return rc;
	}
	*(void **)&entry = sym;
	list = entry();
	if (!list || !list[0]) {
		dlclose(dl);
		return nexus_error(-EPROTO, "plugin %s: provides no driver",
				   path);
	}
	snprintf(origin, sizeof(origin), "plugin %s", path);
	for (n = 0; list[n]; n++) {
		struct nx_driver_entry *e;

		if (n == MAX_DRIVERS_PER_PLUGIN) {
			rc = nexus_error(-EPROTO, "plugin %s: more than %d "
					 "drivers (is the list terminated by "
					 "NULL?)", path, MAX_DRIVERS_PER_PLUGIN);
			break;
		}
		rc = normalise(list[n], origin, &e);
		if (rc)
			break;
		*tail = e;
		tail = &e->next;
		e->origin = strdup(path);
		if (!e->origin) {
			rc = nexus_error(-ENOMEM, "out of memory");
			break;
		}
	}
	if (rc == 0) {
		head->dl = dl; /* the first entry owns the handle */
		rc = insert_all(ctx, head, origin);
	}
	if (rc) {
		free_list(head);
		dlclose(dl);
		return rc;
	}
	for (int i = 0; i < n; i++)
		nexus_log(ctx, NEXUS_LOG_INFO, "plugin %s: %s driver '%s' "
			  "(driver ABI %u, table of %u bytes)", path,
			  kind_name(list[i]->kind), list[i]->name,
			  list[i]->abi_version, list[i]->struct_size);
	return 0;
}

int nexus_plugin_load(struct nexus_ctx *ctx, const char *path)
{
	int rc;

	nx_clear_error();
	if (!ctx || !path || !*path)
		return nexus_error(-EINVAL, "nexus_plugin_load: NULL or empty "
					    "argument");
	pthread_mutex_lock(&load_lock);
	rc = load_locked(ctx, path);
	pthread_mutex_unlock(&load_lock);
	return rc;
}

static void record_failure(const char *name, int rc, const char *msg)
{
	snprintf(tl_lookup.name, sizeof(tl_lookup.name), "%s", name);
	tl_lookup.rc = rc;
	snprintf(tl_lookup.msg, sizeof(tl_lookup.msg), "%s", msg);
}

/* Search the context's plugin path, then $NEXUS_PLUGIN_PATH, then the
 * installed plugin directory for nexus-NAME.so and load the first one
 * found.  Returns 0 when a plugin was loaded, -ENOENT when none was
 * found, or why the one found was refused.  Called with load_lock. */
static int load_by_name(struct nexus_ctx *ctx, const char *name)
{
	const char *paths[3] = {
		ctx->plugin_path,
		secure_getenv("NEXUS_PLUGIN_PATH"),
#ifdef NX_PLUGINDIR
		NX_PLUGINDIR,
#else
		NULL,
#endif
	};

	for (unsigned p = 0; p < NX_ARRAY_SIZE(paths); p++) {
		const char *s = paths[p];

		while (s && *s) {
			const char *end = strchr(s, ':');
			size_t len = end ? (size_t)(end - s) : strlen(s);
			char file[PATH_MAX];
			struct stat st;
			int n = snprintf(file, sizeof(file), "%.*s/nexus-%s.so",
					 (int)len, s, name);

			s = end ? end + 1 : NULL;
			if (!len || n < 0 || n >= (int)sizeof(file) ||
			    stat(file, &st))
				continue;
			return load_locked(ctx, file);
		}
	}
	return -ENOENT;
}

const struct nexus_driver *nx_registry_lookup(struct nexus_ctx *ctx,
					      const char *name, uint32_t kind)
{
	const struct nexus_driver *d = nx_registry_find(ctx, name, kind);
	int rc;

	if (d || !name || !valid_name(name))
		return d;
	pthread_mutex_lock(&load_lock);
	/* Loaded meanwhile by another thread, or provides another kind. */
	if (nx_registry_find(ctx, name, 0)) {
		pthread_mutex_unlock(&load_lock);
		return nx_registry_find(ctx, name, kind);
	}
	tl_lookup.rc = 0;
	rc = load_by_name(ctx, name);
	pthread_mutex_unlock(&load_lock);
	if (rc == 0) {
		d = nx_registry_find(ctx, name, kind);
		if (!nx_registry_find(ctx, name, 0)) {
			char msg[256];

			snprintf(msg, sizeof(msg), "plugin nexus-%s.so was "
				 "loaded but provides no driver named '%s'",
				 name, name);
			record_failure(name, -ENOENT, msg);
		}
	} else if (rc != -ENOENT) {
		record_failure(name, rc, nexus_last_error());
	}
	return d;
}

int nx_registry_unknown(struct nexus_ctx *ctx, const char *name,
			const char *where)
{
	if (name && tl_lookup.rc && !strcmp(tl_lookup.name, name)) {
		char msg[sizeof(tl_lookup.msg)];
		int rc = tl_lookup.rc;

		memcpy(msg, tl_lookup.msg, sizeof(msg));
		tl_lookup.rc = 0;
		tl_lookup.name[0] = '\0';
		return nexus_error(rc, "%s: %s", where, msg);
	}
	return nexus_error(-ENOENT, "%s: unknown driver '%s' (not built in, "
			   "and no plugin nexus-%s.so in the context's "
			   "plugin path%s, $NEXUS_PLUGIN_PATH%s%s)", where,
			   name ? name : "", name ? name : "",
			   ctx->plugin_path ? "" : " (unset)",
#ifdef NX_PLUGINDIR
			   " or ", NX_PLUGINDIR
#else
			   "", ""
#endif
	);
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
			OUT("%s %s%s%s%s\n    %s\n", kind_name(k), d->name,
			    e->origin ? " (plugin " : "",
			    e->origin ? e->origin : "",
			    e->origin ? ")" : "",
			    d->summary ? d->summary : "");
			for (const struct nexus_option_desc *o = d->options;
			     o && o->name; o++)
				OUT("    %-14s %-6s %s%s%s%s%s%s\n", o->name,
				    type_name(o->type), o->help ? o->help : "",
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
	pthread_mutex_unlock(&ctx->lock);
#undef OUT
	if (off > INT_MAX)
		return nexus_error(-EOVERFLOW, "driver description too long");
	return (int)off;
}
