/* SPDX-License-Identifier: MIT */
/* Resolution of parsed stages: each stage's driver, found by its place
 * (a source first, transforms in the middle, an export last), and its
 * options checked once for every caller -- nexus_pipeline_check(),
 * nexus_dev_open(), nexus_pipeline_open(), an export's spec, the
 * bindings: the option table (unknown, twice, required, types, bounds,
 * accepted words), then the driver's own check() of the rules between
 * options.  Nothing is opened.  The values that may not be shown are
 * hidden in the stage text, which names the device or export. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pipeline.h"
#include "redact.h"
#include "registry.h"

void nx_stage_where(const struct nx_stage *st, char *buf, size_t len)
{
	snprintf(buf, len, "pipeline: stage '%s' at column %u",
		 st->driver ? st->driver : "(group)", st->column);
}

int nx_stage_error(const struct nx_stage *st, int rc)
{
	char w[128], msg[512];

	nx_stage_where(st, w, sizeof(w));
	snprintf(msg, sizeof(msg), "%s", nexus_last_error());
	if (!msg[0])
		snprintf(msg, sizeof(msg), "%s", strerror(-rc));
	return nexus_error(rc, "%s: %s", w, msg);
}

/* Replace the values that may not be shown (redact.c) in the stage text
 * with NX_SECRET_SHOWN.  Options are in text order. */
static int hide_values(struct nx_stage *st)
{
	size_t n = strlen(st->text), len = 0, from = 0;
	char *t = NULL;

	for (unsigned i = 0; i < st->opts.n; i++) {
		const struct nx_opt_kv *kv = &st->opts.kv[i];

		if (nx_opts_shown(&st->opts, kv->key, kv->val) == kv->val)
			continue;
		if (!t && !(t = malloc(n + 1 + st->opts.n *
					       sizeof(NX_SECRET_SHOWN))))
			return nexus_error(-ENOMEM, "out of memory");
		memcpy(t + len, st->text + from, kv->vstart - from);
		len += kv->vstart - from;
		memcpy(t + len, NX_SECRET_SHOWN, sizeof(NX_SECRET_SHOWN) - 1);
		len += sizeof(NX_SECRET_SHOWN) - 1;
		from = kv->vend;
	}
	if (!t)
		return 0;
	memcpy(t + len, st->text + from, n - from + 1);
	free(st->text);
	st->text = t;
	return 0;
}

/* The value given without a key becomes the driver's positional option. */
static int name_positional(struct nx_stage *st, const char *w)
{
	for (unsigned i = 0; i < st->opts.n; i++) {
		const struct nexus_option_desc *d;

		if (st->opts.kv[i].key[0])
			continue;
		d = nx_opts_positional(st->drv->options);
		if (!d)
			return nexus_error(-EINVAL, "%s: '%s' takes no value "
					   "without a key (got '%s')", w,
					   st->driver,
					   nx_looks_like_key(st->opts.kv[i].val)
						   ? NX_SECRET_SHOWN
						   : st->opts.kv[i].val);
		free(st->opts.kv[i].key);
		st->opts.kv[i].key = strdup(d->name);
		if (!st->opts.kv[i].key)
			return nexus_error(-ENOMEM, "out of memory");
	}
	return 0;
}

static const char *article(uint32_t kind)
{
	return kind == NEXUS_DRIVER_EXPORT ? "an" : "a";
}

/* Find @p st's driver among @p nkinds kinds, in order; check its options.
 * @p alone: a stage parsed on its own (an export spec), not in a
 * pipeline. */
static int resolve_stage(struct nexus_ctx *ctx, struct nx_stage *st,
			 const uint32_t *kinds, unsigned nkinds, bool alone)
{
	char w[128];
	int rc;

	nx_stage_where(st, w, sizeof(w));
	st->drv = NULL;
	for (unsigned k = 0; k < nkinds && !st->drv; k++)
		st->drv = nx_registry_lookup(ctx, st->driver, kinds[k]);
	if (!st->drv) {
		const struct nexus_driver *other =
			nx_registry_find(ctx, st->driver, 0);

		if (other && alone)
			return nexus_error(-EINVAL, "%s: '%s' is not %s %s "
					   "driver (it is %s %s)", w,
					   st->driver, article(kinds[0]),
					   nx_registry_kind_name(kinds[0]),
					   article(other->kind),
					   nx_registry_kind_name(other->kind));
		if (other)
			return nexus_error(-EINVAL, "%s: '%s' cannot be used "
					   "here (a source comes first, "
					   "transforms in the middle, an "
					   "export last)", w, st->driver);
		return nx_registry_unknown(ctx, st->driver, w);
	}
	if ((rc = name_positional(st, w)))
		return rc;
	st->opts.desc = st->drv->options;
	st->opts.stage = st->driver;
	if ((rc = nx_opts_validate(&st->opts, w)))
		return rc;
	if (st->drv->check && (rc = st->drv->check(&st->opts)))
		return nx_stage_error(st, rc > 0 ? -EINVAL : rc);
	return hide_values(st);
}

/* Devices a transform takes below it. */
static int count_below(const struct nx_stage *st, unsigned nbelow)
{
	const struct nexus_driver *d = st->drv;
	char w[128];

	nx_stage_where(st, w, sizeof(w));
	if (d->kind == NEXUS_DRIVER_TRANSFORM) {
		unsigned mn = d->min_children ? d->min_children : 1;
		unsigned mx = d->max_children ? d->max_children : 1;

		if (nbelow < mn || nbelow > mx)
			return nexus_error(-EINVAL, "%s: takes %u to %u devices "
					   "below it, got %u", w, mn, mx,
					   nbelow);
	} else if (d->kind == NEXUS_DRIVER_EXPORT && nbelow != 1) {
		return nexus_error(-EINVAL, "%s: an export serves one device; "
				   "a group must feed a transform such as "
				   "mirror", w);
	}
	return 0;
}

static int resolve(struct nexus_ctx *ctx, struct nx_stage *head)
{
	static const uint32_t source[] = { NEXUS_DRIVER_SOURCE };
	static const uint32_t middle[] = { NEXUS_DRIVER_TRANSFORM };
	static const uint32_t last[] = { NEXUS_DRIVER_EXPORT,
					 NEXUS_DRIVER_TRANSFORM };
	unsigned nbelow = 0; /* devices feeding the current stage */
	int rc;

	for (struct nx_stage *st = head; st; st = st->next) {
		if (!st->driver) { /* group */
			for (unsigned g = 0; g < st->ngroups; g++)
				if ((rc = resolve(ctx, st->groups[g])))
					return rc;
			if (!st->next)
				return nexus_error(-EINVAL, "pipeline: the group "
						   "at column %u must feed a "
						   "transform such as mirror",
						   st->column);
			nbelow = st->ngroups;
			continue;
		}
		rc = st == head	 ? resolve_stage(ctx, st, source, 1, false)
		     : st->next ? resolve_stage(ctx, st, middle, 1, false)
				: resolve_stage(ctx, st, last, 2, false);
		if (rc == 0 && st != head)
			rc = count_below(st, nbelow);
		if (rc)
			return rc;
		nbelow = 1;
	}
	return 0;
}

int nx_pipeline_parse(struct nexus_ctx *ctx, const char *text,
		      struct nx_stage **out)
{
	int rc = nx_grammar_pipeline(text, out);

	if (rc == 0)
		rc = resolve(ctx, *out);
	if (rc) {
		nx_pipeline_free_stages(*out);
		*out = NULL;
	}
	return rc;
}

int nx_stage_parse(struct nexus_ctx *ctx, const char *text, uint32_t kind,
		   struct nx_stage **out)
{
	int rc = nx_grammar_stage(text, out);

	if (rc == 0)
		rc = resolve_stage(ctx, *out, &kind, 1, true);
	if (rc) {
		nx_pipeline_free_stages(*out);
		*out = NULL;
	}
	return rc;
}
