/* SPDX-License-Identifier: MIT */
/* Pipelines: the device stack built from resolved stages (each device
 * opened on the ones below it, an export last), and the pipeline object
 * that owns the stack and its export.  The text is parsed and checked
 * by pipeline-parse.c and pipeline-resolve.c before anything opens. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ctx-list.h"
#include "pipeline.h"

struct nexus_pipeline {
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	struct nexus_export *exp;
	struct nexus_pipeline *next;
};

/* Open the device stack of a stage list (stopping before an export).
 * Resolution already checked the driver of every stage and how many
 * devices each transform takes. */
static int build(struct nexus_ctx *ctx, struct nx_stage *head,
		 struct nexus_dev **out, struct nx_stage **export_stage)
{
	struct nexus_dev *below[NX_MAX_CHILDREN];
	unsigned nbelow = 0;
	struct nexus_dev *dev = NULL;
	int rc;

	*export_stage = NULL;
	for (struct nx_stage *st = head; st; st = st->next) {
		if (!st->driver) {
			for (unsigned g = 0; g < st->ngroups; g++) {
				struct nx_stage *ex;

				rc = build(ctx, st->groups[g], &below[nbelow], &ex);
				if (rc == 0 && ex) {
					nx_dev_destroy(below[nbelow]);
					rc = nexus_error(-EINVAL, "%s at column "
							 "%u: an export can "
							 "only end the whole "
							 "pipeline", ex->driver,
							 ex->column);
				}
				if (rc)
					goto fail;
				nbelow++;
			}
			continue;
		}
		if (st->drv->kind == NEXUS_DRIVER_EXPORT) {
			*export_stage = st;
			break;
		}
		rc = nx_dev_create(ctx, st->drv, st->text, below, nbelow,
				   &st->opts, &dev);
		if (rc) {
			rc = nx_stage_error(st, rc);
			goto fail;
		}
		below[0] = dev;
		nbelow = 1;
	}
	*out = below[0];
	return 0;
fail:
	while (nbelow)
		nx_dev_destroy(below[--nbelow]);
	return rc;
}

int nexus_dev_open(struct nexus_ctx *ctx, const char *text,
		   struct nexus_dev **out)
{
	struct nx_stage *stages, *ex;
	struct nexus_dev *dev;
	int rc;

	nx_clear_error();
	if (!ctx || !out)
		return nexus_error(-EINVAL, "nexus_dev_open: NULL argument");
	*out = NULL;
	rc = nx_pipeline_parse(ctx, text, &stages);
	if (rc)
		return rc;
	rc = build(ctx, stages, &dev, &ex);
	if (rc == 0 && ex) {
		nx_dev_destroy(dev);
		rc = nexus_error(-EINVAL, "pipeline: stage '%s' at column %u "
				 "is an export; use nexus_pipeline_open() or "
				 "nexus_export_create()", ex->driver, ex->column);
	}
	nx_pipeline_free_stages(stages);
	if (rc)
		return rc;
	nx_dev_set_top(dev);
	*out = dev;
	return 0;
}

int nexus_pipeline_open(struct nexus_ctx *ctx, const char *text,
			struct nexus_pipeline **out)
{
	struct nx_stage *stages, *ex;
	struct nexus_pipeline *pl;
	int rc;

	nx_clear_error();
	if (!ctx || !out)
		return nexus_error(-EINVAL, "nexus_pipeline_open: NULL argument");
	*out = NULL;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return nexus_error(-ENOMEM, "out of memory");
	pl->ctx = ctx;
	rc = nx_pipeline_parse(ctx, text, &stages);
	if (rc)
		goto fail;
	rc = build(ctx, stages, &pl->dev, &ex);
	if (rc == 0 && ex) {
		rc = nx_export_create(ctx, ex->drv, &ex->opts, ex->text,
				      &pl->exp);
		if (rc == 0) {
			rc = nexus_export_add_dev(pl->exp, pl->dev, NULL);
			if (rc) {
				nexus_export_destroy(pl->exp);
				pl->exp = NULL;
			}
		}
		if (rc) {
			rc = nx_stage_error(ex, rc);
			nx_dev_destroy(pl->dev);
		}
	}
	nx_pipeline_free_stages(stages);
	if (rc)
		goto fail;
	pthread_mutex_lock(&ctx->lock);
	pl->next = ctx->pipelines;
	ctx->pipelines = pl;
	pthread_mutex_unlock(&ctx->lock);
	*out = pl;
	return 0;
fail:
	free(pl);
	return rc;
}

struct nexus_dev *nexus_pipeline_dev(struct nexus_pipeline *pl)
{
	return pl ? pl->dev : NULL;
}

struct nexus_export *nexus_pipeline_export(struct nexus_pipeline *pl)
{
	return pl ? pl->exp : NULL;
}

void nexus_pipeline_close(struct nexus_pipeline *pl)
{
	if (!pl || NX_CTX_UNLINK(pl->ctx, &pl->ctx->pipelines, pl, next,
				 "nexus_pipeline_close", "closed twice?"))
		return;
	nexus_export_destroy(pl->exp);
	nx_dev_destroy(pl->dev);
	free(pl);
}
