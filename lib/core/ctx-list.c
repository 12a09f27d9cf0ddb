/* SPDX-License-Identifier: MIT */
/* Unlinking an object from its context's list at close: one rule for
 * devices, exports and pipelines (see ctx-list.h).  The lists are
 * singly linked through a "next" pointer at a known offset; the
 * pointers are read and written with memcpy so that one function serves
 * every object type without breaking the aliasing rules. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "internal.h"
#include "ctx-list.h"

int nx_ctx_unlink(struct nexus_ctx *ctx, void *head, void *obj,
		  size_t next_off, const char *what, const char *not_there)
{
	char *slot = head, *cur;
	bool found = false;
	int rc;

	if (nexus_reactor_current()) {
		rc = nexus_error(-EDEADLK, "%s called from a callback (a "
				 "reactor thread): refused; call it from an "
				 "application thread", what);
		nexus_log(ctx, NEXUS_LOG_ERROR, "%s", nexus_last_error());
		return rc;
	}
	pthread_mutex_lock(&ctx->lock);
	for (;;) {
		memcpy(&cur, slot, sizeof(void *));
		if (!cur)
			break;
		if (cur == obj) {
			memcpy(slot, cur + next_off, sizeof(void *));
			found = true;
			break;
		}
		slot = cur + next_off;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (found)
		return 0;
	rc = nexus_error(-EINVAL, "%s: not open on its context (%s)", what,
			 not_there);
	nexus_log(ctx, NEXUS_LOG_ERROR, "%s", nexus_last_error());
	return rc;
}
