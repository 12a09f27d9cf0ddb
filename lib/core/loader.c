/* SPDX-License-Identifier: MIT */
/* The plugin loader: plugins loaded with dlopen(), by file name
 * (nexus_plugin_load) or found by driver name along the plugin path
 * when a pipeline names a driver that is not registered.
 *
 * Everything a bad file can do short of running hostile code is refused
 * with a message: not an ELF object, no entry point, an entry point that
 * is not a function, no drivers, a newer ABI, an invalid table, a
 * duplicate name.  All of a plugin's drivers are checked before any is
 * registered, so a refused plugin leaves the registry as it was. */
#include "config.h"
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "registry.h"

#define MAX_DRIVERS_PER_PLUGIN 64

/* Serialises plugin loading (dlopen + registration) so that two threads
 * looking up the same unknown driver load it once. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/* Why the last by-name plugin lookup of this thread failed, so that the
 * pipeline parser can report it instead of "unknown driver". */
static __thread struct {
	char name[NX_MAX_NAME_LEN + 1];
	int rc;
	char msg[512];
} tl_lookup;

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
		rc = nx_registry_normalise(list[n], origin, &e);
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
		rc = nx_registry_insert_all(ctx, head, origin);
	}
	if (rc) {
		nx_registry_free_list(head);
		dlclose(dl);
		return rc;
	}
	for (int i = 0; i < n; i++)
		nexus_log(ctx, NEXUS_LOG_INFO, "plugin %s: %s driver '%s' "
			  "(driver ABI %u, table of %u bytes)", path,
			  nx_registry_kind_name(list[i]->kind), list[i]->name,
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

	if (d || !name || !nx_registry_valid_name(name))
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
