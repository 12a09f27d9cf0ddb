/* SPDX-License-Identifier: MIT */
/* Exports: one device served through an export driver. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int nx_export_create(struct nexus_dev *dev, const struct nexus_driver *drv,
		     const struct nexus_opts *opts, const char *spec,
		     struct nexus_export **out)
{
	struct nexus_ctx *ctx = dev->ctx;
	struct nexus_export *exp;
	int rc;

	exp = calloc(1, sizeof(*exp));
	if (!exp || !(exp->spec = strdup(spec ? spec : drv->name))) {
		free(exp);
		return nexus_error(-ENOMEM, "out of memory");
	}
	exp->ctx = ctx;
	exp->drv = drv;
	exp->dev = dev;
	rc = drv->export_start(exp, opts);
	if (rc) {
		if (rc > 0)
			rc = -EIO;
		free(exp->spec);
		free(exp);
		return rc;
	}
	pthread_mutex_lock(&ctx->lock);
	exp->next = ctx->exports;
	ctx->exports = exp;
	pthread_mutex_unlock(&ctx->lock);
	nexus_log(ctx, NEXUS_LOG_INFO, "export %s of %s started", exp->spec,
		  dev->name);
	*out = exp;
	return 0;
}

int nexus_export_start(struct nexus_dev *dev, const char *spec,
		       struct nexus_export **out)
{
	struct nx_stage *st;
	char text[4096];
	int rc;

	nx_clear_error();
	if (!dev || !spec || !out)
		return nexus_error(-EINVAL, "nexus_export_start: NULL argument");
	*out = NULL;
	/* Parse "null | SPEC" so that SPEC resolves as a last stage. */
	if (snprintf(text, sizeof(text), "null | %s", spec) >= (int)sizeof(text))
		return nexus_error(-EINVAL, "export spec is too long");
	rc = nx_pipeline_parse(dev->ctx, text, &st);
	if (rc)
		return rc;
	if (!st->next || st->next->next ||
	    st->next->drv->kind != NEXUS_DRIVER_EXPORT) {
		size_t off = 0;

		/* the parsed stages, not @p spec: secrets are hidden there */
		text[0] = '\0';
		for (struct nx_stage *s = st->next; s; s = s->next) {
			int w = snprintf(off < sizeof(text) ? text + off : NULL,
					 off < sizeof(text) ? sizeof(text) - off
							    : 0,
					 "%s%s", s == st->next ? "" : " | ",
					 s->text);

			if (w > 0)
				off += (size_t)w;
		}
		nx_pipeline_free_stages(st);
		return nexus_error(-EINVAL, "'%s' is not a single export stage",
				   text);
	}
	rc = nx_export_create(dev, st->next->drv, &st->next->opts,
			      st->next->text, out);
	nx_pipeline_free_stages(st);
	return rc;
}

void nexus_export_stop(struct nexus_export *exp)
{
	struct nexus_ctx *ctx;
	bool found = false;

	if (!exp)
		return;
	ctx = exp->ctx;
	if (nexus_reactor_current()) {
		nexus_log(ctx, NEXUS_LOG_ERROR, "nexus_export_stop called from "
			  "a callback: ignored");
		return;
	}
	pthread_mutex_lock(&ctx->lock);
	for (struct nexus_export **p = &ctx->exports; *p; p = &(*p)->next) {
		if (*p == exp) {
			*p = exp->next;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!found) {
		nexus_log(ctx, NEXUS_LOG_ERROR, "nexus_export_stop: not a "
			  "running export (stopped twice?)");
		return;
	}
	exp->drv->export_stop(exp);
	nexus_log(ctx, NEXUS_LOG_INFO, "export %s stopped", exp->spec);
	free(exp->spec);
	free(exp);
}

int nexus_export_conns(struct nexus_export *exp, struct nexus_conn_info *o,
		       unsigned max)
{
	if (!exp || (!o && max))
		return nexus_error(-EINVAL, "nexus_export_conns: NULL argument");
	if (!exp->drv->export_conns)
		return nexus_error(-EOPNOTSUPP, "export driver '%s' cannot list "
				   "connections", exp->drv->name);
	for (unsigned i = 0; i < max; i++)
		if (o[i].size < sizeof(size_t))
			return nexus_error(-EINVAL, "nexus_conn_info.size not "
					   "set (use NEXUS_CONN_INFO_INIT)");
	return exp->drv->export_conns(exp, o, max);
}

struct nexus_dev *nexus_export_dev(const struct nexus_export *exp)
{
	return exp ? exp->dev : NULL;
}

void *nexus_export_private(const struct nexus_export *exp)
{
	return exp ? exp->priv : NULL;
}

void nexus_export_set_private(struct nexus_export *exp, void *p)
{
	if (exp)
		exp->priv = p;
}
