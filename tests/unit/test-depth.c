/* SPDX-License-Identifier: MIT */
/* The depth limit of a device stack: I/O goes down one call per stage
 * on the reactor's stack, so a pipeline deeper than NEXUS_MAX_DEPTH
 * stages is refused with a clear error (never a stack overflow), the
 * same way by nexus_pipeline_check(), nexus_dev_open() and
 * nexus_pipeline_open(); a pipeline of exactly that depth opens and
 * does I/O. */
#include "unit.h"

#define MAX_DEPTH 64 /* nexus-pipeline(7), DEPTH */

static struct nexus_ctx *ctx;

/* "null:1M" then @p transforms "| fault:enable=off" stages, after an
 * optional prefix and with an optional suffix. */
static char *stack_text(const char *prefix, unsigned transforms,
			const char *suffix)
{
	size_t cap = strlen(prefix) + strlen(suffix) + 32 +
		     (size_t)transforms * 20;
	char *t = malloc(cap);
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	n = (size_t)snprintf(t, cap, "%snull:1M", prefix);
	for (unsigned i = 0; i < transforms; i++)
		n += (size_t)snprintf(t + n, cap - n, " | fault:enable=off");
	snprintf(t + n, cap - n, "%s", suffix);
	return t;
}

/* All three entry points refuse @p text with the depth error. */
static void refused(const char *text, int line)
{
	struct nexus_pipeline *pl = NULL;
	struct nexus_dev *d = NULL;
	char depth[32];

	snprintf(depth, sizeof(depth), "at most %d", MAX_DEPTH);
	if (!unit_check_err(nexus_pipeline_check(ctx, text, NULL, 0), -E2BIG,
			    "check", __FILE__, line, "stages deep", depth,
			    (char *)NULL) ||
	    !unit_check_err(nexus_dev_open(ctx, text, &d), -E2BIG, "open",
			    __FILE__, line, "stages deep", depth,
			    (char *)NULL) ||
	    !unit_check_err(nexus_pipeline_open(ctx, text, &pl), -E2BIG,
			    "pipeline_open", __FILE__, line, "stages deep",
			    depth, (char *)NULL))
		CU_FAIL("a pipeline deeper than the limit was not refused");
	CU_ASSERT_PTR_NULL(d);
	CU_ASSERT_PTR_NULL(pl);
}

static void test_deep_refused(void)
{
	char *t;

	/* the report: 40,000 stages crashed the reactor */
	t = stack_text("", 40000, "");
	refused(t, __LINE__);
	free(t);
	/* one past the limit */
	t = stack_text("", MAX_DEPTH, "");
	refused(t, __LINE__);
	free(t);
	/* inside a group, the group's stages count too */
	t = stack_text("(", MAX_DEPTH - 1, ") | fault");
	refused(t, __LINE__);
	free(t);
	/* the message names the column where the limit was passed */
	t = stack_text("", MAX_DEPTH, "");
	EXPECT_ERR(nexus_pipeline_check(ctx, t, NULL, 0), -E2BIG, "column",
		   "stage 65");
	free(t);
}

static void test_limit_works(void)
{
	char buf[4096], *t;
	struct nexus_dev *d = NULL;

	/* exactly the limit: a source and 63 transforms */
	t = stack_text("", MAX_DEPTH - 1, "");
	CU_ASSERT(nexus_pipeline_check(ctx, t, NULL, 0) > 0);
	EXPECT_OK(nexus_dev_open(ctx, t, &d));
	if (d) {
		EXPECT_EQ_MSG(nexus_dev_pread(d, buf, sizeof(buf), 0),
			      (long long)sizeof(buf));
		EXPECT_EQ_MSG(nexus_dev_pwrite(d, buf, sizeof(buf), 4096, 0),
			      (long long)sizeof(buf));
		nexus_dev_close(d);
	}
	free(t);
	/* a group: its depth is that of its deepest pipeline */
	t = stack_text("(", MAX_DEPTH - 2, ") | fault");
	CU_ASSERT(nexus_pipeline_check(ctx, t, NULL, 0) > 0);
	free(t);
}

static const struct unit_test tests[] = {
	{ "deeper than the limit: refused", test_deep_refused },
	{ "at the limit: opens and does I/O", test_limit_works },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	ctx = unit_ctx(1);
	rc = unit_main("depth", tests);
	nexus_ctx_destroy(ctx);
	return rc;
}
