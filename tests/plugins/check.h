/* SPDX-License-Identifier: MIT */
/* Shared by the plugin test programs (test-loader, test-examples):
 * CHECK() reports a failed condition and goes on, a scratch directory
 * removed at the end, a context whose creation skips the test (77)
 * where io_uring is not allowed, and the exit status. */
#ifndef NEXUS_TESTS_PLUGINS_CHECK_H
#define NEXUS_TESTS_PLUGINS_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <nexus/nexus.h>

static int failures;

/* CHECK(cond, printf-format, ...): on failure print where, the
 * condition and the message, and count it. */
#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__,       \
				__LINE__, #cond);                           \
			fprintf(stderr, __VA_ARGS__);                       \
			fprintf(stderr, "\n");                              \
			failures++;                                         \
		}                                                           \
	} while (0)

/* A new directory $TMPDIR/nexus-NAME-XXXXXX (/tmp without $TMPDIR) in
 * @p dir; exits 1 when it cannot be made. */
static inline void check_scratch(char *dir, size_t len, const char *name)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, len, "%s/nexus-%s-XXXXXX", t ? t : "/tmp", name);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
}

/* Remove the scratch directory and everything in it. */
static inline void check_rmtree(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* A context with options @p o; exits 77 (skip) where io_uring is not
 * available or not allowed, 1 on any other failure. */
static inline struct nexus_ctx *check_ctx(const struct nexus_ctx_opts *o)
{
	struct nexus_ctx *ctx = NULL;
	int rc = nexus_ctx_create(o, &ctx);

	if (rc) {
		fprintf(stderr, "nexus_ctx_create: %s\n", nexus_last_error());
		exit(rc == -ENOSYS || rc == -EPERM ? 77 : 1);
	}
	return ctx;
}

/* The exit status: 0 and "WHAT: all checks passed" when every CHECK
 * held, 1 and the number of failures otherwise. */
static inline int check_status(const char *what)
{
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	else
		printf("%s: all checks passed\n", what);
	return failures ? 1 : 0;
}

#endif
