/* SPDX-License-Identifier: MIT */
/* Shared helpers of the CUnit programs in tests/unit: a runner (with a
 * scratch directory when the tests want one) that prints CUnit's
 * summary and turns failures into the exit status, a watchdog so that a
 * hang fails instead of blocking `make check`, assertions on a negative
 * errno together with the message of nexus_last_error(), and opening a
 * device that must open. */
#ifndef NEXUS_TESTS_UNIT_H
#define NEXUS_TESTS_UNIT_H

#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#include <sys/stat.h>

#include <nexus/nexus.h>

#define UNUSED __attribute__((unused))

struct unit_test {
	const char *name;
	void (*fn)(void);
};

/* True when run by `make check-valgrind`: loops are scaled down. */
static UNUSED bool unit_slow(void)
{
	const char *s = getenv("NEXUS_TEST_SLOW");

	return s && *s && strcmp(s, "0") != 0;
}

/* n, or n / div when running under valgrind (at least 1). */
static UNUSED unsigned unit_scale(unsigned n, unsigned div)
{
	if (!unit_slow())
		return n;
	return n / div ? n / div : 1;
}

static UNUSED uint64_t unit_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static UNUSED void unit_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Check that rc == want and that the thread's last error message
 * contains each of the NULL-terminated substrings.  Reports the call,
 * the value and the message on failure. */
static UNUSED bool unit_check_err(long long rc, long long want,
				  const char *expr, const char *file,
				  int line, ...)
{
	const char *msg = nexus_last_error();
	bool ok = rc == want && msg != NULL;
	va_list ap;
	const char *sub;

	va_start(ap, line);
	while (ok && (sub = va_arg(ap, const char *)) != NULL)
		if (!strstr(msg, sub))
			ok = false;
	va_end(ap);
	if (!ok)
		fprintf(stderr, "\n%s:%d: %s returned %lld (want %lld), "
			"message: \"%s\"\n", file, line, expr, rc, want,
			msg ? msg : "(null)");
	return ok;
}

/* EXPECT_ERR(call, -EINVAL, "substring", ...): the call fails with that
 * errno and a message naming the problem. */
#define EXPECT_ERR(call, err, ...)                                          \
	CU_assertImplementation(unit_check_err((long long)(call), (err),    \
					       #call, __FILE__, __LINE__,   \
					       __VA_ARGS__, (char *)NULL),  \
				__LINE__, #call " fails with " #err,        \
				__FILE__, "", CU_FALSE)

/* EXPECT_OK(call): returns 0 (or the given count); prints the message
 * otherwise. */
#define EXPECT_EQ_MSG(call, want)                                           \
	CU_assertImplementation(unit_check_err((long long)(call),           \
					       (long long)(want), #call,    \
					       __FILE__, __LINE__,          \
					       (char *)NULL),               \
				__LINE__, #call " == " #want, __FILE__, "",  \
				CU_FALSE)
#define EXPECT_OK(call) EXPECT_EQ_MSG(call, 0)

/* A context with quiet logging (errors only) unless a test wants more. */
static UNUSED void unit_quiet_log(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level <= NEXUS_LOG_ERROR && getenv("NEXUS_TEST_VERBOSE"))
		fprintf(stderr, "libnexus: %s\n", msg);
}

static UNUSED struct nexus_ctx *unit_ctx(unsigned reactors)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = NULL;
	int rc;

	o.reactors = reactors;
	o.log_fn = unit_quiet_log;
	o.log_level = NEXUS_LOG_ERROR;
	rc = nexus_ctx_create(&o, &ctx);
	if (rc) {
		fprintf(stderr, "nexus_ctx_create: %d %s\n", rc,
			nexus_last_error());
		CU_FAIL_FATAL("cannot create a context");
	}
	return ctx;
}

/* What a context logged: the messages, one a line, a count per level
 * and the user data the callback was given.  Initialise with
 * UNIT_LOG_INIT; unit_ctx_log() makes a context that logs into it. */
struct unit_log {
	pthread_mutex_t lock;
	char text[16384];
	int count[NEXUS_LOG_DEBUG + 1];
	void *ud_seen;
};
#define UNIT_LOG_INIT { .lock = PTHREAD_MUTEX_INITIALIZER }

static UNUSED void unit_log_cb(void *ud, int level, const char *msg)
{
	struct unit_log *lb = ud;
	size_t n;

	pthread_mutex_lock(&lb->lock);
	lb->ud_seen = ud;
	if (level >= 0 && level <= NEXUS_LOG_DEBUG)
		lb->count[level]++;
	n = strlen(lb->text);
	snprintf(lb->text + n, sizeof(lb->text) - n, "%s\n", msg);
	pthread_mutex_unlock(&lb->lock);
}

/* A context of @p reactors whose messages up to @p level go to @p lb;
 * ends the test (fatal assertion) when it cannot be made. */
static UNUSED struct nexus_ctx *unit_ctx_log(unsigned reactors, int level,
					     struct unit_log *lb)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = NULL;

	o.reactors = reactors;
	o.log_fn = unit_log_cb;
	o.log_user_data = lb;
	o.log_level = level;
	EXPECT_OK(nexus_ctx_create(&o, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	return ctx;
}

/* Open a device that must open: prints the pipeline, the errno and
 * nexus_last_error() otherwise, and ends the test (fatal assertion). */
static UNUSED struct nexus_dev *unit_open(struct nexus_ctx *ctx,
					  const char *spec)
{
	struct nexus_dev *dev = NULL;
	int rc = nexus_dev_open(ctx, spec, &dev);

	if (rc)
		fprintf(stderr, "\nopen %s: %d %s\n", spec, rc,
			nexus_last_error());
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return dev;
}

/* Fill a buffer with a pattern derived from a seed. */
static UNUSED void unit_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

static UNUSED bool unit_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* A scratch directory under @p base (NULL: $TMPDIR or /var/tmp),
 * removed with everything in it by unit_rmtree(). */
static UNUSED int unit_rm_cb(const char *path, const struct stat *sb,
			     int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static UNUSED void unit_rmtree(const char *dir)
{
	if (dir && *dir)
		nftw(dir, unit_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static UNUSED char *unit_mkdtemp(const char *base)
{
	static char dirs[4][256];
	static unsigned n;
	char *d = dirs[n++ % 4];

	if (!base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/var/tmp";
	snprintf(d, sizeof(dirs[0]), "%s/nexus-unit-XXXXXX", base);
	if (!mkdtemp(d)) {
		fprintf(stderr, "mkdtemp %s: %s\n", d, strerror(errno));
		return NULL;
	}
	return d;
}

/* "DIR/NAME" in a static rotating buffer. */
static UNUSED const char *unit_join(const char *dir, const char *name)
{
	static char bufs[8][512];
	static unsigned n;
	char *b = bufs[n++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

/* Run the tests of one suite and print CUnit's summary.  Exit status:
 * 0 when every assertion passed, 1 otherwise.  A watchdog (alarm) turns
 * a hang into a failure. */
static UNUSED int unit_main(const char *suite, const struct unit_test *tests)
{
	CU_pSuite s;
	unsigned failed;

	alarm(unit_slow() ? 1800 : 300);
	setvbuf(stdout, NULL, _IONBF, 0);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	s = CU_add_suite(suite, NULL, NULL);
	if (!s)
		return 99;
	for (const struct unit_test *t = tests; t->name; t++)
		if (!CU_add_test(s, t->name, t->fn))
			return 99;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	printf("\n");
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

/* unit_main() with a scratch directory: *dir names a new directory
 * under $TMPDIR (or /var/tmp) while the tests run, removed with
 * everything in it afterwards.  99 when it cannot be made. */
static UNUSED int unit_main_scratch(const char *suite,
				    const struct unit_test *tests, char **dir)
{
	int rc;

	*dir = unit_mkdtemp(NULL);
	if (!*dir)
		return 99;
	rc = unit_main(suite, tests);
	unit_rmtree(*dir);
	*dir = NULL;
	return rc;
}

/* The counters of one operation of a device (nexus_dev_get_op_stats). */
static inline struct nexus_op_stats unit_op(struct nexus_dev *dev, int op)
{
	struct nexus_op_stats st = NEXUS_OP_STATS_INIT;

	CU_ASSERT_EQUAL(nexus_dev_get_op_stats(dev, op, &st), 0);
	return st;
}

#endif
