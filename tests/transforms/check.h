/* SPDX-License-Identifier: MIT */
/* Tiny assertion helpers for the transform tests: print where and why,
 * exit 1.  Exit 77 means "skipped".  Also: a context, and bad options
 * that a stage must refuse. */
#ifndef NEXUS_TESTS_CHECK_H
#define NEXUS_TESTS_CHECK_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <nexus/nexus.h>

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: CHECK failed: %s (last "   \
				"error: %s)\n", __FILE__, __LINE__, #cond, \
				nexus_last_error());                       \
			exit(1);                                           \
		}                                                          \
	} while (0)

#define CHECK_RC(expr, want)                                               \
	do {                                                               \
		long long rc_ = (long long)(expr);                         \
		if (rc_ != (long long)(want)) {                            \
			fprintf(stderr, "%s:%d: %s returned %lld, want "   \
				"%lld (last error: %s)\n", __FILE__,       \
				__LINE__, #expr, rc_, (long long)(want),   \
				nexus_last_error());                       \
			exit(1);                                           \
		}                                                          \
	} while (0)

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline struct nexus_ctx *test_ctx(unsigned reactors)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx;
	int rc;

	o.reactors = reactors;
	rc = nexus_ctx_create(&o, &ctx);
	if (rc) {
		fprintf(stderr, "nexus_ctx_create: %s\n", nexus_last_error());
		exit(rc == -ENOSYS || rc == -EPERM ? 77 : 1);
	}
	return ctx;
}

/* Each of the @p n pipelines in @p bad fails to open with -EINVAL and
 * a message that names @p stage. */
static inline void expect_refused(struct nexus_ctx *ctx,
				  const char *const *bad, size_t n,
				  const char *stage)
{
	struct nexus_dev *dev;

	for (size_t i = 0; i < n; i++) {
		int rc = nexus_dev_open(ctx, bad[i], &dev);

		printf("%-45s -> %d: %s\n", bad[i], rc, nexus_last_error());
		CHECK(rc == -EINVAL);
		CHECK(strstr(nexus_last_error(), stage));
	}
}

#endif
