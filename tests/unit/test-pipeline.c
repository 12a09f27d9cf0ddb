/* SPDX-License-Identifier: MIT */
/* The pipeline language: valid forms and their normalised description
 * (nexus_pipeline_check), and errors that name the stage and column. */
#include "unit.h"

static struct nexus_ctx *ctx;

/* nexus_pipeline_check() succeeds and describes @text as @want. */
static void check_ok(const char *text, const char *want, int line)
{
	char buf[2048];
	int rc = nexus_pipeline_check(ctx, text, buf, sizeof(buf));
	bool ok = rc >= 0 && strcmp(buf, want) == 0 && rc == (int)strlen(want);

	if (!ok)
		fprintf(stderr, "\nline %d: check(\"%s\") = %d %s\n got: %s"
			"want: %s", line, text, rc,
			rc < 0 ? nexus_last_error() : "", rc < 0 ? "\n" : buf,
			want);
	CU_assertImplementation(ok, (unsigned)line, "pipeline check output",
				__FILE__, "", CU_FALSE);
}
#define CHECK_OK(text, want) check_ok(text, want, __LINE__)

/* nexus_pipeline_check() and nexus_dev_open() both fail with @err and a
 * message holding every substring. */
#define CHECK_BAD(text, err, ...)                                           \
	do {                                                                \
		struct nexus_dev *d_ = NULL;                                \
		char b_[256];                                               \
		EXPECT_ERR(nexus_pipeline_check(ctx, text, b_, sizeof(b_)), \
			   err, __VA_ARGS__);                               \
		EXPECT_ERR(nexus_dev_open(ctx, text, &d_), err,             \
			   __VA_ARGS__);                                    \
		CU_ASSERT_PTR_NULL(d_);                                     \
	} while (0)

static void test_valid_forms(void)
{
	CHECK_OK("mem:size=1M", "source mem size=1M\n");
	/* the positional value is the driver's positional option */
	CHECK_OK("mem:1M", "source mem size=1M\n");
	CHECK_OK("null", "source null\n");
	CHECK_OK("mem:1M,block-size=4096", "source mem size=1M,block-size=4096\n");
	/* white space around every separator, and around '=' */
	CHECK_OK("  mem :  1M  ,\tblock-size = 4096  ",
		 "source mem size=1M,block-size=4096\n");
	CHECK_OK("null:1M|fault", "source null size=1M\ntransform fault\n");
	CHECK_OK("null:1M   |   fault  :  enable = off  ",
		 "source null size=1M\ntransform fault enable=off\n");
	/* quotes keep separators and spaces; the description quotes them
	 * back so that it parses to the same values */
	CHECK_OK("file:'/tmp/a b,c|d;e(f).img'",
		 "source file path='/tmp/a b,c|d;e(f).img'\n");
	CHECK_OK("file:\"/tmp/it's.img\"", "source file path=\"/tmp/it's.img\"\n");
	CHECK_OK("file:path='  x  '", "source file path='  x  '\n");
	CHECK_OK("file:/tmp/plain.img,readonly=on,direct=off",
		 "source file path=/tmp/plain.img,readonly=on,direct=off\n");
	/* an unquoted value may hold spaces inside; its ends are trimmed */
	CHECK_OK("file: /tmp/with space.img ,readonly=yes",
		 "source file path=/tmp/with space.img,readonly=yes\n");
	/* sizes and booleans in every accepted spelling */
	CHECK_OK("mem:size=64KiB", "source mem size=64KiB\n");
	CHECK_OK("mem:size=0x100000", "source mem size=0x100000\n");
	CHECK_OK("file:x,direct=TRUE,readonly=0",
		 "source file path=x,direct=TRUE,readonly=0\n");
	/* stacks of transforms, and an export last */
	CHECK_OK("mem:1G | fault:ops=write | throttle:iops=100",
		 "source mem size=1G\ntransform fault ops=write\n"
		 "transform throttle iops=100\n");
	CHECK_OK("null | nbd:listen=127.0.0.1:0",
		 "source null\nexport nbd listen=127.0.0.1:0\n");
	/* groups: '( pipeline ; pipeline ... )' feeding a transform */
	CHECK_OK("(mem:1M) | fault",
		 "group of 1:\n  - pipeline 1:\n    source mem size=1M\n"
		 "transform fault\n");
	CHECK_OK(" ( mem:1M | fault ) | throttle:iops=5 ",
		 "group of 1:\n  - pipeline 1:\n    source mem size=1M\n"
		 "    transform fault\ntransform throttle iops=5\n");
	CHECK_OK("((null:1M)|fault)|fault",
		 "group of 1:\n  - pipeline 1:\n    group of 1:\n"
		 "      - pipeline 1:\n        source null size=1M\n"
		 "    transform fault\ntransform fault\n");
}

static void test_check_buffer(void)
{
	const char *text = "mem:1M | fault";
	const char *want = "source mem size=1M\ntransform fault\n";
	char small[8];
	int n;

	/* like snprintf: the full length, a truncated NUL-terminated copy */
	n = nexus_pipeline_check(ctx, text, NULL, 0);
	CU_ASSERT_EQUAL(n, (int)strlen(want));
	memset(small, 'x', sizeof(small));
	CU_ASSERT_EQUAL(nexus_pipeline_check(ctx, text, small, sizeof(small)), n);
	CU_ASSERT_EQUAL(small[sizeof(small) - 1], '\0');
	CU_ASSERT_EQUAL(strncmp(small, want, sizeof(small) - 1), 0);
	CU_ASSERT_EQUAL(nexus_pipeline_check(ctx, text, small, 1), n);
	CU_ASSERT_EQUAL(small[0], '\0');
	/* check opens nothing: a missing file is fine */
	CU_ASSERT(nexus_pipeline_check(ctx, "file:/nonexistent/x.img", NULL,
				       0) > 0);
}

static void test_syntax_errors(void)
{
	/* every message names the column (1-based) and the stage */
	CHECK_BAD("", -EINVAL, "column 1", "stage 1", "empty stage");
	CHECK_BAD("   ", -EINVAL, "column 4", "empty stage");
	CHECK_BAD("mem:size=1M |", -EINVAL, "column 14", "stage 2",
		  "empty stage");
	CHECK_BAD("mem:size=1M || null", -EINVAL, "column 14", "stage 2");
	CHECK_BAD("| mem:1M", -EINVAL, "column 1", "expected a driver name");
	CHECK_BAD("mem:size=1M )", -EINVAL, "column 13", "unbalanced ')'");
	CHECK_BAD("mem:1M ; null", -EINVAL, "column 8", "';' outside a group");
	CHECK_BAD("file:'/tmp/x", -EINVAL, "column 13", "unterminated");
	CHECK_BAD("file:\"/tmp/x", -EINVAL, "unterminated quoted value");
	CHECK_BAD("file:'/tmp/x' junk", -EINVAL, "column 15");
	CHECK_BAD("mem:1M,2M", -EINVAL, "column 8", "expected key=value");
	CHECK_BAD("mem:size=1M,,block-size=512", -EINVAL, "column 13",
		  "expected key=value");
	CHECK_BAD("@mem:1M", -EINVAL, "column 1", "expected a driver name");
	CHECK_BAD("mem:1M | \x01", -EINVAL, "column 10", "stage 2");
	CHECK_BAD("(mem:1M ; null:1M", -EINVAL, "column 18",
		  "expected ';' or ')'");
	CHECK_BAD("(mem:1M ; null:1M", -EINVAL, "in a group");
	CHECK_BAD("mem:1M | (null:1M)", -EINVAL, "column 10", "stage 2",
		  "may only start a pipeline");
	CHECK_BAD("()", -EINVAL, "column 2", "expected a driver name");
	CHECK_BAD("(((((((((((mem:1M)))))))))))|fault", -EINVAL,
		  "nested too deeply");
}

static void test_semantic_errors(void)
{
	/* unknown driver: -ENOENT, naming it, its stage and column */
	CHECK_BAD("nosuch:1", -ENOENT, "unknown driver 'nosuch'",
		  "column 1");
	CHECK_BAD("mem:size=1M | bogus:x=1", -ENOENT, "stage 'bogus'",
		  "column 15", "unknown driver 'bogus'");
	CHECK_BAD("bogus://host/x", -ENOENT, "unknown driver 'bogus'");
	/* a driver in the wrong place */
	CHECK_BAD("mem:1M | mem:1M", -EINVAL, "stage 'mem' at column 10",
		  "cannot be used here");
	CHECK_BAD("fault | mem:1M", -EINVAL, "stage 'fault' at column 1",
		  "cannot be used here");
	/* unknown, duplicate, missing options */
	CHECK_BAD("null:1M,bogus=3", -EINVAL, "stage 'null' at column 1",
		  "unknown option 'bogus'");
	CHECK_BAD("mem:1M |  fault:nope=1", -EINVAL,
		  "stage 'fault' at column 11", "unknown option 'nope'");
	CHECK_BAD("mem:size=1M,size=2M", -EINVAL, "option 'size' given twice");
	CHECK_BAD("mem:1M,size=2M", -EINVAL, "option 'size' given twice");
	CHECK_BAD("mem", -EINVAL, "stage 'mem' at column 1",
		  "option 'size' is required");
	CHECK_BAD("mem:block-size=512", -EINVAL, "option 'size' is required");
	CHECK_BAD("fault:1 | null", -EINVAL, "cannot be used here");
	CHECK_BAD("null:1M | fault:x", -EINVAL, "stage 'fault'",
		  "takes no value without a key", "'x'");
	/* bad value types */
	CHECK_BAD("mem:size=abc", -EINVAL, "option 'size' must be a size",
		  "'abc'");
	CHECK_BAD("mem:size=-1", -EINVAL, "option 'size'", "'-1'");
	CHECK_BAD("mem:size=1X", -EINVAL, "option 'size'", "'1X'");
	CHECK_BAD("mem:size=99999999999999999999", -EINVAL, "option 'size'");
	CHECK_BAD("mem:size=99999999999T", -EINVAL, "option 'size'");
	CHECK_BAD("mem:size=", -EINVAL, "option 'size'", "''");
	CHECK_BAD("mem:=1M", -EINVAL, "option 'size'", "'=1M'");
	CHECK_BAD("file:x,direct=maybe", -EINVAL, "option 'direct' must be "
		  "on/off", "'maybe'");
	CHECK_BAD("mem:1M | fault:enable=2", -EINVAL, "stage 'fault' at "
		  "column 10", "option 'enable'", "'2'");
	CHECK_BAD("mem:1M | throttle:iops=1.5", -EINVAL, "option 'iops'",
		  "unsigned number");
	/* values out of the driver's bounds or words, found at parse
	 * time: check and open say the same */
	CHECK_BAD("mem:size=0", -EINVAL, "stage 'mem' at column 1", "size");
	CHECK_BAD("mem:1000", -EINVAL, "multiple of block-size");
	CHECK_BAD("null:1M,block-size=3", -EINVAL, "stage 'null'",
		  "block-size", "power of two");
	CHECK_BAD("mem:1M | throttle:iops=0", -EINVAL, "stage 'throttle' at "
		  "column 10", "iops", "at least 1");
	CHECK_BAD("mem:1M | throttle:burst-iops=5", -EINVAL, "iops=");
	CHECK_BAD("mem:1M | fault:probability=2", -EINVAL, "stage 'fault'",
		  "probability");
	CHECK_BAD("mem:1M | fault:errno=EBOGUS", -EINVAL, "errno");
	CHECK_BAD("mem:1M | fault:errno=0", -EINVAL, "errno", "1..4095");
	CHECK_BAD("mem:1M | crypt:sector-size=513,key-env=K", -EINVAL,
		  "stage 'crypt'", "sector-size", "513");
	CHECK_BAD("mem:1M | crypt:key-size=384,key-env=K", -EINVAL,
		  "key-size", "384");
	CHECK_BAD("mem:1M | nbd:listen=127.0.0.1:0,max-inflight=0", -EINVAL,
		  "stage 'nbd'", "max-inflight");
	/* how many devices a stage gets */
	CHECK_BAD("(mem:1M ; null:1M) | fault", -EINVAL,
		  "stage 'fault' at column 22", "got 2");
	CHECK_BAD("(mem:1M ; null:1M)", -EINVAL, "column 1",
		  "must feed a transform");
	CHECK_BAD("(mem:1M ; null:1M) | nbd:listen=127.0.0.1:0", -EINVAL,
		  "stage 'nbd'", "a group must feed a transform");
}

/* Errors of the driver when the stage opens name the stage too. */
static void test_open_errors(void)
{
	struct nexus_dev *d = NULL;

	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=1000", &d), -EINVAL,
		   "stage 'mem' at column 1", "multiple of block-size");
	EXPECT_ERR(nexus_dev_open(ctx, "null:1M | fault:errno=EBOGUS", &d),
		   -EINVAL, "stage 'fault' at column 11");
	EXPECT_ERR(nexus_dev_open(ctx, "  file:/nonexistent/x.img", &d),
		   -ENOENT, "stage 'file' at column 3", "/nonexistent/x.img");
	/* an export cannot be opened as a device */
	EXPECT_ERR(nexus_dev_open(ctx, "null | nbd:listen=127.0.0.1:0", &d),
		   -EINVAL, "export", "nexus_pipeline_open");
	CU_ASSERT_PTR_NULL(d);
}

/* Odd input never crashes: long text, many stages, many options. */
static void test_stress_input(void)
{
	size_t cap = 1 << 16;
	char *t = malloc(cap);
	struct nexus_dev *d = NULL;
	size_t n;
	int rc;

	/* 2000 stages: deeper than a stack may be (test-depth.c) */
	n = (size_t)snprintf(t, cap, "null:1M");
	for (int i = 0; i < 2000 && n + 16 < cap; i++)
		n += (size_t)snprintf(t + n, cap - n, " | fault:enable=off");
	EXPECT_ERR(nexus_pipeline_check(ctx, t, NULL, 0), -E2BIG,
		   "stages deep");
	rc = nexus_dev_open(ctx, t, &d);
	CU_ASSERT_EQUAL(rc, -E2BIG);
	CU_ASSERT_PTR_NULL(d);
	/* too many options */
	n = (size_t)snprintf(t, cap, "null:1M");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(t + n, cap - n, ",block-size=512");
	EXPECT_ERR(nexus_pipeline_check(ctx, t, NULL, 0), -EINVAL,
		   "too many options");
	/* a very long value */
	memset(t, 'a', cap - 1);
	memcpy(t, "file:", 5);
	t[cap - 1] = '\0';
	CU_ASSERT(nexus_pipeline_check(ctx, t, NULL, 0) > 0);
	EXPECT_ERR(nexus_dev_open(ctx, t, &d), -ENAMETOOLONG, "file");
	/* every byte value after a driver name */
	for (int c = 1; c < 256; c++) {
		char s[32];

		snprintf(s, sizeof(s), "mem:1M%c", c);
		(void)nexus_pipeline_check(ctx, s, NULL, 0);
		snprintf(s, sizeof(s), "%cnull", c);
		(void)nexus_pipeline_check(ctx, s, NULL, 0);
	}
	free(t);
}

static const struct unit_test tests[] = {
	{ "valid forms and their description", test_valid_forms },
	{ "check output buffer", test_check_buffer },
	{ "syntax errors: stage and column", test_syntax_errors },
	{ "unknown drivers, options, values", test_semantic_errors },
	{ "driver errors at open name the stage", test_open_errors },
	{ "long and odd input", test_stress_input },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	ctx = unit_ctx(1);
	rc = unit_main("pipeline", tests);
	nexus_ctx_destroy(ctx);
	return rc;
}
