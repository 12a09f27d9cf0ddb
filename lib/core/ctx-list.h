/* SPDX-License-Identifier: MIT */
/* The objects an application closes itself -- top-level devices,
 * exports, pipelines -- sit on a list of their context (ctx-list.c). */
#ifndef NEXUS_CORE_CTX_LIST_H
#define NEXUS_CORE_CTX_LIST_H

#include <stddef.h>

#include "hidden.h"

struct nexus_ctx;

/*
 * The start of every close/stop/destroy call of such an object: refuse
 * the call on a reactor thread (from a callback: the teardown waits for
 * the reactors), then take @p obj off the context's list.
 *
 * @param ctx       the object's context (its lock guards the list)
 * @param head      address of the list head, e.g. &ctx->pipelines
 * @param obj       the object
 * @param next_off  offsetof() its "next" pointer (NX_CTX_UNLINK does it)
 * @param what      the call, for the message ("nexus_pipeline_close")
 * @param not_there why an object may be missing from the list, for the
 *                  message ("closed twice?")
 * @return 0 (unlinked: the caller tears the object down), -EDEADLK on a
 *         reactor thread, -EINVAL when @p obj is not on the list; with a
 *         message for nexus_last_error() and a log line at ERROR level.
 */
NX_HIDDEN int nx_ctx_unlink(struct nexus_ctx *ctx, void *head, void *obj,
			    size_t next_off, const char *what,
			    const char *not_there);

/* nx_ctx_unlink() with the offset of @p obj's member @p next. */
#define NX_CTX_UNLINK(ctx, head, obj, next, what, not_there)               \
	nx_ctx_unlink((ctx), (head), (obj),                                 \
		      offsetof(__typeof__(*(obj)), next), (what), (not_there))

#endif
