/* SPDX-License-Identifier: MIT */
/* Stage options: validation against the driver's option table (type,
 * bounds, accepted words), typed accessors for drivers, and the checks
 * that drivers' check() functions share (powers of two, multiples).
 * Messages show a value only as redact.c allows. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "redact.h"

static const struct nexus_option_desc *
desc_in(const struct nexus_option_desc *table, const char *name)
{
	for (const struct nexus_option_desc *d = table; d && d->name; d++)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

static const struct nexus_option_desc *find_desc(const struct nexus_opts *o,
						 const char *name)
{
	return desc_in(o->desc, name);
}

bool nx_option_secret(const struct nexus_option_desc *table,
		      const char *name)
{
	const struct nexus_option_desc *d = name ? desc_in(table, name) : NULL;

	return d && (d->flags & NEXUS_OPTF_SECRET);
}

const struct nexus_option_desc *
nx_opts_positional(const struct nexus_option_desc *table)
{
	for (const struct nexus_option_desc *d = table; d && d->name; d++)
		if (d->flags & NEXUS_OPTF_POSITIONAL)
			return d;
	return NULL;
}

const char *nx_opts_shown(const struct nexus_opts *o, const char *name,
			  const char *value)
{
	return nx_value_shown(o && name ? desc_in(o->desc, name) : NULL,
			      value);
}

static const char *given(const struct nexus_opts *o, const char *name)
{
	for (unsigned i = 0; i < o->n; i++)
		if (!strcmp(o->kv[i].key, name))
			return o->kv[i].val;
	return NULL;
}

int nx_parse_u64(const char *s, bool size, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	if (size && *end) {
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		case 'p': case 'P': shift = 50; break;
		default: return -EINVAL;
		}
		end++;
		if (*end == 'i' && end[1] == 'B')
			end += 2;
		else if (*end == 'B')
			end++;
	}
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int nx_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "on", "yes", "true" };
	static const char *const no[] = { "0", "off", "no", "false" };

	for (unsigned i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A bound as the option's type reads it: a size with the largest exact
 * binary suffix (64K, 64T), a number in decimal. */
static void bound_text(const struct nexus_option_desc *d, uint64_t v,
		       char *buf, size_t len)
{
	static const char suffix[] = "KMGTP";
	unsigned s = 0;

	while (d->type == NEXUS_OPT_SIZE && v && !(v & 1023) && s < 5) {
		v >>= 10;
		s++;
	}
	snprintf(buf, len, "%" PRIu64 "%.*s", v, s ? 1 : 0,
		 s ? &suffix[s - 1] : "");
}

void nx_option_bounds_text(const struct nexus_option_desc *d, char *buf,
			   size_t len)
{
	char lo[32], hi[32];

	bound_text(d, d->min, lo, sizeof(lo));
	bound_text(d, d->max, hi, sizeof(hi));
	if (!d->max)
		snprintf(buf, len, "at least %s", lo);
	else if (!d->min)
		snprintf(buf, len, "at most %s", hi);
	else
		snprintf(buf, len, "from %s to %s", lo, hi);
}

static bool in_bounds(const struct nexus_option_desc *d, uint64_t v)
{
	if (!d->min && !d->max)
		return true;
	return v >= d->min && (!d->max || v <= d->max);
}

/* The accepted words of @p d, "a, b or c", into @p buf. */
static void words_text(const struct nexus_option_desc *d, char *buf,
		       size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; d->values[i] && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s%s",
				 !i ? "" : d->values[i + 1] ? ", " : " or ",
				 d->values[i]);

		if (w > 0)
			off += (size_t)w;
	}
}

bool nx_option_word_ok(const struct nexus_option_desc *d, const char *v)
{
	if (!d->values)
		return true;
	for (unsigned i = 0; d->values[i]; i++)
		if (!strcmp(d->values[i], v))
			return true;
	return false;
}

bool nx_option_value_ok(const struct nexus_option_desc *d, const char *v)
{
	uint64_t u;
	bool b;

	switch (d->type) {
	case NEXUS_OPT_BOOL:
		return nx_parse_bool(v, &b) == 0;
	case NEXUS_OPT_UINT:
	case NEXUS_OPT_SIZE:
		return nx_parse_u64(v, d->type == NEXUS_OPT_SIZE, &u) == 0 &&
		       in_bounds(d, u);
	default:
		return nx_option_word_ok(d, v);
	}
}

static int check_value(const struct nexus_option_desc *d, const char *v,
		       const char *where)
{
	const char *shown = nx_value_shown(d, v);
	char want[256];
	uint64_t u;
	bool b;

	switch (d->type) {
	case NEXUS_OPT_BOOL:
		if (nx_parse_bool(v, &b))
			return nexus_error(-EINVAL, "%s: option '%s' must be "
					   "on/off, got '%s'", where, d->name,
					   shown);
		break;
	case NEXUS_OPT_UINT:
	case NEXUS_OPT_SIZE:
		if (nx_parse_u64(v, d->type == NEXUS_OPT_SIZE, &u))
			return nexus_error(-EINVAL, "%s: option '%s' must be "
					   "%s, got '%s'", where, d->name,
					   d->type == NEXUS_OPT_SIZE
						   ? "a size like 4096, 64K or 1G"
						   : "an unsigned number",
					   shown);
		if (!in_bounds(d, u)) {
			nx_option_bounds_text(d, want, sizeof(want));
			return nexus_error(-EINVAL, "%s: option '%s' must be "
					   "%s, got '%s'", where, d->name,
					   want, shown);
		}
		break;
	default:
		if (!nx_option_word_ok(d, v)) {
			words_text(d, want, sizeof(want));
			return nexus_error(-EINVAL, "%s: option '%s' must be "
					   "%s, got '%s'", where, d->name,
					   want, shown);
		}
		break;
	}
	return 0;
}

int nx_opts_validate(const struct nexus_opts *o, const char *where)
{
	for (unsigned i = 0; i < o->n; i++) {
		const struct nexus_option_desc *d = find_desc(o, o->kv[i].key);
		int rc;

		if (!d)
			return nexus_error(-EINVAL, "%s: unknown option '%s'",
					   where,
					   nx_looks_like_key(o->kv[i].key)
						   ? NX_SECRET_SHOWN
						   : o->kv[i].key);
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(o->kv[j].key, o->kv[i].key))
				return nexus_error(-EINVAL, "%s: option '%s' "
						   "given twice", where,
						   o->kv[i].key);
		rc = check_value(d, o->kv[i].val, where);
		if (rc)
			return rc;
	}
	for (const struct nexus_option_desc *d = o->desc; d && d->name; d++)
		if ((d->flags & NEXUS_OPTF_REQUIRED) && !given(o, d->name))
			return nexus_error(-EINVAL, "%s: option '%s' is "
					   "required (%s)", where, d->name,
					   d->help ? d->help : "");
	return 0;
}

void nx_opts_free(struct nexus_opts *o)
{
	for (unsigned i = 0; i < o->n; i++) {
		free(o->kv[i].key);
		free(o->kv[i].val);
	}
	o->n = 0;
}

int nx_opts_copy(struct nexus_opts *dst, const struct nexus_opts *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->desc = src->desc;
	dst->stage = NULL; /* the owner points it at its own copy */
	for (unsigned i = 0; i < src->n; i++) {
		struct nx_opt_kv *d = &dst->kv[i];

		*d = src->kv[i];
		d->key = strdup(src->kv[i].key);
		d->val = src->kv[i].val ? strdup(src->kv[i].val) : NULL;
		dst->n = i + 1;
		if (!d->key || (src->kv[i].val && !d->val)) {
			nx_opts_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

const char *nexus_opts_str(const struct nexus_opts *o, const char *name)
{
	const struct nexus_option_desc *d;
	const char *v;

	if (!o || !name)
		return NULL;
	v = given(o, name);
	if (v)
		return v;
	d = find_desc(o, name);
	return d ? d->def : NULL;
}

bool nexus_opts_given(const struct nexus_opts *o, const char *name)
{
	return o && name && given(o, name) != NULL;
}

int nexus_opts_u64(const struct nexus_opts *o, const char *name, uint64_t *out)
{
	const struct nexus_option_desc *d = o ? find_desc(o, name) : NULL;
	const char *v = nexus_opts_str(o, name);

	if (!v)
		return -ENOENT;
	if (nx_parse_u64(v, !d || d->type != NEXUS_OPT_UINT, out))
		return nexus_error(-EINVAL, "%s: option '%s': '%s' is not a "
				   "number", o->stage ? o->stage : "stage",
				   name, nx_opts_shown(o, name, v));
	return 0;
}

int nexus_opts_bool(const struct nexus_opts *o, const char *name, bool *out)
{
	const char *v = nexus_opts_str(o, name);

	if (!v)
		return -ENOENT;
	if (nx_parse_bool(v, out))
		return nexus_error(-EINVAL, "%s: option '%s': '%s' is not "
				   "on/off", o->stage ? o->stage : "stage",
				   name, nx_opts_shown(o, name, v));
	return 0;
}

/* ---- shared by drivers' check() ---- */

/* The value of UINT/SIZE option @p name (given or default) into *@p v:
 * 0, or -ENOENT when it has neither.  The core validated it already. */
static int value_of(const struct nexus_opts *o, const char *name,
		    uint64_t *v)
{
	const char *s = nexus_opts_str(o, name);
	const struct nexus_option_desc *d = find_desc(o, name);

	if (!s || !d)
		return -ENOENT;
	return nx_parse_u64(s, d->type == NEXUS_OPT_SIZE, v) ? -EINVAL : 0;
}

int nx_opts_check_pow2(const struct nexus_opts *o, const char *name)
{
	uint64_t v;

	if (value_of(o, name, &v))
		return 0;
	if (v & (v - 1) || !v)
		return nexus_error(-EINVAL, "%s: %s=%" PRIu64 " is not a power "
				   "of two", o->stage ? o->stage : "stage",
				   name, v);
	return 0;
}

int nx_opts_check_multiple(const struct nexus_opts *o, const char *name,
			   const char *unit)
{
	uint64_t v, u;

	if (value_of(o, name, &v) || value_of(o, unit, &u) || !u)
		return 0;
	if (v % u)
		return nexus_error(-EINVAL, "%s: %s=%" PRIu64 " is not a "
				   "multiple of %s=%" PRIu64,
				   o->stage ? o->stage : "stage", name, v,
				   unit, u);
	return 0;
}

int nx_opts_check_geometry(const struct nexus_opts *o)
{
	int rc = nx_opts_check_pow2(o, "block-size");

	return rc ? rc : nx_opts_check_multiple(o, "size", "block-size");
}
