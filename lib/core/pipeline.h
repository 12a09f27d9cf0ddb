/* SPDX-License-Identifier: MIT */
/* The pipeline language inside the core: parsed stages (the grammar,
 * pipeline-parse.c), their drivers and checked options (resolution,
 * pipeline-resolve.c), the device stack built from them (pipeline.c)
 * and their description (pipeline-check.c). */
#ifndef NEXUS_CORE_PIPELINE_H
#define NEXUS_CORE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include <nexus/nexus_driver.h>

#include "hidden.h"
#include "internal.h"

/* Stages from a source to the end of a pipeline, at most (groups count
 * their deepest pipeline): I/O goes down the stack one call per stage
 * on the reactor's stack.  nexus-pipeline(7), DEPTH. */
#define NX_MAX_DEPTH 64
/* Levels of groups '( ... ; ... )' inside each other, at most. */
#define NX_MAX_GROUP_NESTING 8

/* A parsed stage. */
struct nx_stage {
	char *driver;	 /* NULL for a group */
	unsigned column; /* 1-based, in the text given to the parser */
	struct nexus_opts opts;
	struct nx_stage *groups[NX_MAX_CHILDREN]; /* children pipelines */
	unsigned ngroups;
	struct nx_stage *next; /* next stage in this pipeline */
	const struct nexus_driver *drv; /* set by resolution */
	char *text; /* the stage text, secret values hidden once resolved */
};

/* ---- grammar (pipeline-parse.c): syntax only, no driver known ---- */

/* Parse a whole pipeline.  Errors (-EINVAL, -E2BIG for a stack deeper
 * than NX_MAX_DEPTH, -ENOMEM) name the column and the stage. */
NX_HIDDEN int nx_grammar_pipeline(const char *text, struct nx_stage **out);
/* Parse exactly one stage (no '|', no group): an export spec. */
NX_HIDDEN int nx_grammar_stage(const char *text, struct nx_stage **out);
/* Free a list of stages and their groups; NULL is a no-op. */
NX_HIDDEN void nx_pipeline_free_stages(struct nx_stage *s);

/* ---- resolution (pipeline-resolve.c) ---- */

/* Parse and resolve a pipeline: each stage's driver found by its place,
 * its options validated (types, bounds, words, the driver's check()),
 * devices per stage counted, secret values hidden in the stage text.
 * Opens nothing.  On error *out is NULL. */
NX_HIDDEN int nx_pipeline_parse(struct nexus_ctx *ctx, const char *text,
				struct nx_stage **out);
/* Parse and resolve one stage of driver kind @p kind (an export spec
 * given to an export call): errors name columns of @p text itself.
 * Free the result with nx_pipeline_free_stages(). */
NX_HIDDEN int nx_stage_parse(struct nexus_ctx *ctx, const char *text,
			     uint32_t kind, struct nx_stage **out);
/* "pipeline: stage 'DRIVER' at column C", for messages. */
NX_HIDDEN void nx_stage_where(const struct nx_stage *st, char *buf,
			      size_t len);
/* Prefix the calling thread's last error with nx_stage_where(); returns
 * @p rc. */
NX_HIDDEN int nx_stage_error(const struct nx_stage *st, int rc);

#endif
