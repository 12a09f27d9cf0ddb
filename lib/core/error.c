/* SPDX-License-Identifier: MIT */
/* Per-thread error messages and logging. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static __thread char tl_error[512];

const char *nexus_last_error(void)
{
	return tl_error;
}

void nx_clear_error(void)
{
	tl_error[0] = '\0';
}

int nexus_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tl_error, sizeof(tl_error), fmt, ap);
	va_end(ap);
	return err;
}

void nx_log_default(void *ud, int level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info",
					     "debug" };

	(void)ud;
	if (level < 0 || level > NEXUS_LOG_DEBUG)
		level = NEXUS_LOG_ERROR;
	fprintf(stderr, "libnexus: %s: %s\n", names[level], msg);
}

void nexus_log(struct nexus_ctx *ctx, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!ctx || level > ctx->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ctx->log_fn(ctx->log_ud, level, buf);
}

const char *nexus_version(void)
{
	return PACKAGE_VERSION;
}
