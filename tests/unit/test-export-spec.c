/* SPDX-License-Identifier: MIT */
/* An export spec is parsed as one stage on its own (nx_stage_parse()):
 * errors name columns of the spec itself, not of a pipeline wrapped
 * around it, and say when the spec is not a single export stage.
 * Expected to fail (XFAIL_TESTS) until lib/core/export.c parses the spec
 * with nx_stage_parse() instead of the text "null | SPEC", whose
 * columns are 7 too far. */
#include "unit.h"

static struct nexus_ctx *ctx;

static void test_columns(void)
{
	struct nexus_export *e = NULL;

	/* the second ',' is column 24 of the spec */
	EXPECT_ERR(nexus_export_create(ctx, "nbd:listen=127.0.0.1:0,,x", &e),
		   -EINVAL, "column 24", "stage 1");
	EXPECT_ERR(nexus_export_create(ctx, "  nbd:socket=/tmp/x,bogus=1", &e),
		   -EINVAL, "stage 'nbd' at column 3", "unknown option 'bogus'");
	EXPECT_ERR(nexus_export_create(ctx, "nbd:listen=127.0.0.1:0,"
				       "max-inflight=0", &e),
		   -EINVAL, "column 1", "max-inflight");
	CU_ASSERT_PTR_NULL(e);
}

static void test_not_one_export(void)
{
	struct nexus_export *e = NULL;

	EXPECT_ERR(nexus_export_create(ctx, "null", &e), -EINVAL,
		   "'null' is not an export driver", "column 1");
	EXPECT_ERR(nexus_export_create(ctx, "nbd:socket=/tmp/x | fault", &e),
		   -EINVAL, "column 19", "single stage");
	EXPECT_ERR(nexus_export_create(ctx, "(null) | nbd:socket=/tmp/x", &e),
		   -EINVAL, "column 1", "single stage");
	CU_ASSERT_PTR_NULL(e);
}

static const struct unit_test tests[] = {
	{ "errors name columns of the spec", test_columns },
	{ "a spec is one export stage", test_not_one_export },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	ctx = unit_ctx(1);
	rc = unit_main("export-spec", tests);
	nexus_ctx_destroy(ctx);
	return rc;
}
