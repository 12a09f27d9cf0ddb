/* SPDX-License-Identifier: MIT */
/* Driver tables as the registry accepts them.
 *
 * A table is normalised on registration: the fields its struct_size
 * covers are copied into a table of the size this library knows, the
 * rest zero-filled, then checked.  A table larger than ours is accepted
 * only when the part we do not know is all zero (the rule of the kernel's
 * extensible structs, copy_struct_from_user): a plugin built against a
 * newer header that uses none of the newer fields works; one that sets
 * a field we would silently ignore is refused.  Option descriptors are
 * read with the driver's stride (option_size) the same way.
 *
 * The checks bound everything a corrupt table could claim, so that it
 * is refused rather than read far out of bounds, and make sure that
 * what the table says about its options holds together: bounds only on
 * numbers, min <= max, words only on strings, and defaults that the
 * option itself accepts. */
#include "config.h"
#include <errno.h>
#include <inttypes.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "registry.h"

#define MAX_TABLE_SIZE 4096u
#define MAX_OPTIONS 64
#define MAX_WORDS 64
#define MAX_PER_IO_SIZE (1u << 20)
#define KNOWN_OPTF                                                          \
	(NEXUS_OPTF_REQUIRED | NEXUS_OPTF_POSITIONAL | NEXUS_OPTF_SECRET)

/* A non-empty string of at most NX_MAX_NAME_LEN letters, digits, '-', '_'
 * and the characters of @p extra. */
static bool valid_word(const char *s, const char *extra)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char c = s[n];

		if (n >= NX_MAX_NAME_LEN)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      strchr(extra, c)))
			return false;
	}
	return n > 0;
}

/* Driver names appear in pipelines and in plugin file names. */
bool nx_registry_valid_name(const char *s)
{
	return valid_word(s, "");
}

/* Option keys as the pipeline parser reads them. */
static bool valid_key(const char *s)
{
	return valid_word(s, "+.");
}

/* The word list of a STRING option: at most MAX_WORDS words a pipeline
 * can spell. */
static int check_words(const struct nexus_driver *d,
		       const struct nexus_option_desc *e, const char *origin)
{
	unsigned n;

	for (n = 0; e->values[n]; n++)
		if (n == MAX_WORDS || !valid_key(e->values[n]))
			return nexus_error(-EPROTO, "%s: driver '%s' option "
					   "'%s': word %u of its list is "
					   "invalid (letters, digits, '-', "
					   "'_', '.', '+'; at most %d words: "
					   "is the list NULL-terminated?)",
					   origin, d->name, e->name, n,
					   MAX_WORDS);
	if (!n)
		return nexus_error(-EPROTO, "%s: driver '%s' option '%s' has "
				   "an empty word list (NULL means any text)",
				   origin, d->name, e->name);
	return 0;
}

/* Option @p e, number @p n of driver @p d's table. */
static int check_option(const struct nexus_driver *d, unsigned n,
			const char *origin)
{
	const struct nexus_option_desc *e = &d->options[n];
	bool number = e->type == NEXUS_OPT_UINT || e->type == NEXUS_OPT_SIZE;
	int rc;

	if (!valid_key(e->name))
		return nexus_error(-EPROTO, "%s: driver '%s' option %u has an "
				   "invalid name (letters, digits, '-', '_', "
				   "'.', '+'; at most %d)", origin, d->name, n,
				   NX_MAX_NAME_LEN);
	if (e->type < NEXUS_OPT_STRING || e->type > NEXUS_OPT_SIZE)
		return nexus_error(-EPROTO, "%s: driver '%s' option '%s' has "
				   "unknown type %d", origin, d->name, e->name,
				   e->type);
	if (e->flags & ~KNOWN_OPTF)
		return nexus_error(-EPROTO, "%s: driver '%s' option '%s' has "
				   "unknown flags 0x%x", origin, d->name,
				   e->name, e->flags & ~KNOWN_OPTF);
	for (unsigned j = 0; j < n; j++)
		if (!strcmp(d->options[j].name, e->name))
			return nexus_error(-EPROTO, "%s: driver '%s' declares "
					   "option '%s' twice", origin,
					   d->name, e->name);
	if (!number && (e->min || e->max))
		return nexus_error(-EPROTO, "%s: driver '%s' option '%s' has "
				   "bounds but is not a uint or a size",
				   origin, d->name, e->name);
	if (e->max && e->min > e->max)
		return nexus_error(-EPROTO, "%s: driver '%s' option '%s' has "
				   "min %" PRIu64 " above max %" PRIu64,
				   origin, d->name, e->name, e->min, e->max);
	if (e->values && e->type != NEXUS_OPT_STRING)
		return nexus_error(-EPROTO, "%s: driver '%s' option '%s' has "
				   "a word list but is not a string", origin,
				   d->name, e->name);
	if (e->values && (rc = check_words(d, e, origin)))
		return rc;
	if (e->def && !nx_option_value_ok(e, e->def))
		return nexus_error(-EPROTO, "%s: driver '%s' option '%s' has "
				   "default '%s', which the option refuses "
				   "(its type, bounds or words)", origin,
				   d->name, e->name, e->def);
	return 0;
}

static int check_options(const struct nexus_driver *d, const char *origin)
{
	const struct nexus_option_desc *o = d->options;
	unsigned n, positional = 0;
	int rc;

	for (n = 0; o && o[n].name; n++) {
		if (n == MAX_OPTIONS)
			return nexus_error(-EPROTO, "%s: driver '%s' has more "
					   "than %d options (is the table "
					   "terminated by a NULL name?)",
					   origin, d->name, MAX_OPTIONS);
		if ((rc = check_option(d, n, origin)))
			return rc;
		if ((o[n].flags & NEXUS_OPTF_POSITIONAL) && ++positional > 1)
			return nexus_error(-EPROTO, "%s: driver '%s' has more "
					   "than one positional option",
					   origin, d->name);
	}
	return 0;
}

static int check_driver(const struct nexus_driver *d, const char *origin)
{
	const char *n = d->name;

	if (!n)
		return nexus_error(-EPROTO, "%s: %s driver has a NULL name",
				   origin, nx_registry_kind_name(d->kind));
	if (!nx_registry_valid_name(n))
		return nexus_error(-EPROTO, "%s: driver name '%.*s' is invalid "
				   "(letters, digits, '-' and '_', at most "
				   "%d)", origin, NX_MAX_NAME_LEN + 1, n,
				   NX_MAX_NAME_LEN);
	switch (d->kind) {
	case NEXUS_DRIVER_SOURCE:
	case NEXUS_DRIVER_TRANSFORM:
		if (!d->open || !d->submit)
			return nexus_error(-EPROTO, "%s: %s driver '%s' lacks "
					   "%s", origin,
					   nx_registry_kind_name(d->kind), n,
					   !d->open ? "open()" : "submit()");
		if (d->ops & ~((1u << NX_OP_MAX) - 1))
			return nexus_error(-EPROTO, "%s: driver '%s' declares "
					   "operations 0x%x unknown to this "
					   "libnexus", origin, n,
					   d->ops & ~((1u << NX_OP_MAX) - 1));
		if (!d->ops)
			return nexus_error(-EPROTO, "%s: %s driver '%s' declares "
					   "no operations (set .ops)", origin,
					   nx_registry_kind_name(d->kind), n);
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
int nx_registry_normalise(const struct nexus_driver *drv, const char *origin,
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
