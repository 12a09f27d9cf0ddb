/* SPDX-License-Identifier: MIT */
/* An idle context uses no measurable CPU: reactors sleep in the kernel.
 * The same measurement with NEXUS_CTX_BUSY_POLL shows that the test can
 * tell the difference. */
#include <sys/resource.h>

#include "unit.h"

static char *scratch;

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rusage_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		       1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
		       1000ull;
}

/* Share of one CPU used by the whole process while sleeping @ms. */
static double measure(unsigned ms, double *by_rusage)
{
	uint64_t w0 = unit_now_ns(), c0 = cpu_ns(), r0 = rusage_ns();
	uint64_t w, c, r;

	unit_sleep_ms(ms);
	w = unit_now_ns() - w0;
	c = cpu_ns() - c0;
	r = rusage_ns() - r0;
	*by_rusage = 100.0 * (double)r / (double)w;
	return 100.0 * (double)c / (double)w;
}

static struct nexus_ctx *ctx_with(uint64_t flags, unsigned poll_us)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = NULL;

	o.reactors = 2;
	o.flags = flags;
	o.poll_us = poll_us;
	o.log_fn = unit_quiet_log;
	EXPECT_OK(nexus_ctx_create(&o, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	return ctx;
}

/* Open devices and do some I/O so that every reactor has armed its
 * ring, then go idle. */
static void open_and_use(struct nexus_ctx *ctx, struct nexus_dev **devs)
{
	const char *specs[3] = { "mem:size=16M", "null", NULL };
	char file[600];
	char *buf = aligned_alloc(4096, 65536);

	snprintf(file, sizeof(file), "file:%s,create=on,size=16M",
		 unit_join(scratch, "idle.img"));
	specs[2] = file;
	memset(buf, 1, 65536);
	for (int i = 0; i < 3; i++) {
		EXPECT_OK(nexus_dev_open(ctx, specs[i], &devs[i]));
		CU_ASSERT_PTR_NOT_NULL_FATAL(devs[i]);
		for (int k = 0; k < 200; k++) {
			EXPECT_EQ_MSG(nexus_dev_pwrite(devs[i], buf, 65536,
						       (uint64_t)k * 65536, 0),
				      65536);
			EXPECT_EQ_MSG(nexus_dev_pread(devs[i], buf, 4096,
						      (uint64_t)k * 4096),
				      4096);
		}
	}
	free(buf);
}

static void test_idle(void)
{
	struct nexus_ctx *ctx;
	struct nexus_dev *devs[3];
	double pct, pct_ru;

	if (unit_slow()) {
		/* under valgrind idle reactors nap instead of sleeping in
		 * io_uring_enter, and CPU time means nothing there */
		printf("SKIP under valgrind: CPU use is not meaningful ");
		return;
	}
	ctx = ctx_with(0, 0);
	open_and_use(ctx, devs);
	unit_sleep_ms(100); /* let the last completions settle */
	pct = measure(2000, &pct_ru);
	printf("idle: %.3f%% CPU (getrusage %.3f%%) ", pct, pct_ru);
	CU_ASSERT(pct < 2.0);
	CU_ASSERT(pct_ru < 2.0);
	/* and still responsive after the idle period */
	{
		char b[512];

		EXPECT_EQ_MSG(nexus_dev_pread(devs[0], b, 512, 0), 512);
		EXPECT_EQ_MSG(nexus_dev_pread(devs[2], b, 512, 0), 512);
	}
	nexus_ctx_destroy(ctx);
}

/* The control: busy polling reactors do burn CPU, so the measurement
 * above would notice a reactor that spins. */
static void test_busy_poll_control(void)
{
	struct nexus_ctx *ctx;
	struct nexus_dev *devs[3];
	double pct, pct_ru;

	if (unit_slow()) {
		printf("SKIP under valgrind ");
		return;
	}
	ctx = ctx_with(NEXUS_CTX_BUSY_POLL, 0);
	open_and_use(ctx, devs);
	pct = measure(500, &pct_ru);
	printf("busy-poll: %.1f%% CPU ", pct);
	/* two spinning reactors: far above the idle limit even on a
	 * loaded machine */
	CU_ASSERT(pct > 5.0);
	nexus_ctx_destroy(ctx);
}

/* Adaptive polling: right after work a reactor polls (CPU is used),
 * once poll_us has passed without work it sleeps (idle again). */
static void test_poll_after_work(void)
{
	struct nexus_ctx *ctx;
	struct nexus_dev *devs[3];
	double busy, idle, ru;
	char b[512];

	if (unit_slow()) {
		printf("SKIP under valgrind ");
		return;
	}
	ctx = ctx_with(0, 100000); /* 100 ms */
	open_and_use(ctx, devs);
	EXPECT_EQ_MSG(nexus_dev_pread(devs[0], b, 512, 0), 512);
	busy = measure(40, &ru);
	unit_sleep_ms(200);
	idle = measure(1000, &ru);
	printf("polling: %.1f%%, then idle %.3f%% CPU ", busy, idle);
	CU_ASSERT(busy > 5.0);
	CU_ASSERT(idle < 2.0);
	nexus_ctx_destroy(ctx);
}

static void test_poll_bounds(void)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = NULL;

	o.poll_us = 100001;
	o.log_fn = unit_quiet_log;
	CU_ASSERT_EQUAL(nexus_ctx_create(&o, &ctx), -EINVAL);
	CU_ASSERT_PTR_NULL(ctx);
	CU_ASSERT_PTR_NOT_NULL(strstr(nexus_last_error(), "poll_us"));
}

static const struct unit_test tests[] = {
	{ "polling after work, then sleeping", test_poll_after_work },
	{ "poll_us above 100000 is refused", test_poll_bounds },
	{ "idle context with open devices uses < 2% CPU", test_idle },
	{ "busy-poll control burns CPU", test_busy_poll_control },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main_scratch("idle", tests, &scratch);
}
