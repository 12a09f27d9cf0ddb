/* SPDX-License-Identifier: MIT */
/* fault: the same seed gives the same faults, after=, count=, ops=,
 * ranges, probability, errno=, delays, switching at run time, pass
 * through when nothing fires, and clear errors for bad options. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "../submit.h"

#define N 2000

static char buf[4096];

/* Read block i (4 KiB) N times; pattern[i] = 1 where it failed. */
static int run_pattern(struct nexus_ctx *ctx, const char *pl, char *pattern)
{
	struct nexus_dev *dev;
	int fails = 0;

	CHECK_RC(nexus_dev_open(ctx, pl, &dev), 0);
	for (int i = 0; i < N; i++) {
		ssize_t rc = nexus_dev_pread(dev, buf, 4096,
					     (uint64_t)(i % 256) * 4096);

		CHECK(rc == 4096 || rc == -EIO);
		pattern[i] = rc < 0;
		fails += rc < 0;
	}
	nexus_dev_close(dev);
	return fails;
}

static void test_seed(struct nexus_ctx *ctx)
{
	static char a[N], b[N], c[N];
	int fa, fb, fc;

	fa = run_pattern(ctx, "mem:size=1M | fault:probability=0.3,seed=42",
			 a);
	fb = run_pattern(ctx, "mem:size=1M | fault:probability=0.3,seed=42",
			 b);
	fc = run_pattern(ctx, "mem:size=1M | fault:probability=0.3,seed=43",
			 c);
	printf("probability=0.3: %d, %d, %d faults of %d\n", fa, fb, fc, N);
	CHECK(!memcmp(a, b, N));     /* same seed: same faults */
	CHECK(memcmp(a, c, N) != 0); /* other seed: other faults */
	CHECK(fa > N * 0.25 && fa < N * 0.35);
	CHECK(fc > N * 0.25 && fc < N * 0.35);
	CHECK(run_pattern(ctx, "mem:size=1M | fault:probability=0", a) == 0);
	CHECK(run_pattern(ctx, "mem:size=1M | fault:probability=25%", a) >
	      N / 5);
	CHECK(run_pattern(ctx, "mem:size=1M | fault", a) == N);
}

static void test_after_count(struct nexus_ctx *ctx)
{
	static char p[N];

	CHECK(run_pattern(ctx, "mem:size=1M | fault:after=10", p) == N - 10);
	for (int i = 0; i < 10; i++)
		CHECK(!p[i]);
	CHECK(p[10] && p[11]);
	CHECK(run_pattern(ctx, "mem:size=1M | fault:after=5,count=3", p) ==
	      3);
	CHECK(!p[4] && p[5] && p[6] && p[7] && !p[8]);
}

static void test_ops_range_errno(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;

	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:ops=write,"
				"errno=ENOSPC", &dev), 0);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), 4096);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), -ENOSPC);
	CHECK_RC(nexus_dev_flush(dev), 0);
	CHECK_RC(nexus_dev_trim(dev, 0, 4096, 0), 0);
	nexus_dev_close(dev);

	/* a quoted list, '+' joins too */
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:ops='flush,trim',"
				"errno=5", &dev), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), 4096);
	CHECK_RC(nexus_dev_flush(dev), -EIO);
	CHECK_RC(nexus_dev_trim(dev, 0, 4096, 0), -EIO);
	CHECK_RC(nexus_dev_write_zeroes(dev, 0, 4096, 0), 0);
	nexus_dev_close(dev);
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:ops=all", &dev), 0);
	CHECK_RC(nexus_dev_write_zeroes(dev, 0, 4096, 0), -EIO);
	CHECK_RC(nexus_dev_control(dev, "ops", "read+write-zeroes"), 0);
	CHECK_RC(nexus_dev_flush(dev), 0);
	CHECK_RC(nexus_dev_write_zeroes(dev, 0, 4096, 0), -EIO);
	nexus_dev_close(dev);

	/* [64K, 128K): I/O that touches it fails, the rest passes */
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:start=64K,end=128K",
				&dev), 0);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 60 * 1024), 4096);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 62 * 1024), -EIO);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 64 * 1024), -EIO);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 124 * 1024), -EIO);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 128 * 1024), 4096);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 512 * 1024, 0), 4096);
	/* the range moves at run time */
	CHECK_RC(nexus_dev_control(dev, "start", "0"), 0);
	CHECK_RC(nexus_dev_control(dev, "end", "4K"), 0);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 64 * 1024), 4096);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), -EIO);
	nexus_dev_close(dev);
}

static void test_delay(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	double t0, t;

	/* delay alone: slow, not failing */
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:delay=50ms", &dev),
		 0);
	memset(buf, 0x5a, sizeof(buf));
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), 4096);
	memset(buf, 0, sizeof(buf));
	t0 = now_s();
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), 4096);
	t = now_s() - t0;
	printf("delay=50ms: read took %.1f ms\n", t * 1e3);
	CHECK(t >= 0.049 && t < 1.0);
	CHECK(buf[0] == 0x5a && buf[4095] == 0x5a);
	/* switched off: immediate */
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "off"), 0);
	t0 = now_s();
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), 4096);
	CHECK(now_s() - t0 < 0.045);
	nexus_dev_close(dev);

	/* delay and error */
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:delay=20ms,"
				"errno=EIO", &dev), 0);
	t0 = now_s();
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), -EIO);
	CHECK(now_s() - t0 >= 0.019);
	nexus_dev_close(dev);

	/* random delays in [5ms, 30ms], the same for the same seed */
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:delay=5ms,"
				"delay-max=30ms,seed=7", &dev), 0);
	double mn = 1, mx = 0;
	for (int i = 0; i < 20; i++) {
		t0 = now_s();
		CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), 4096);
		t = now_s() - t0;
		mn = t < mn ? t : mn;
		mx = t > mx ? t : mx;
	}
	printf("delay=5ms..30ms: min %.1f ms, max %.1f ms\n", mn * 1e3,
	       mx * 1e3);
	CHECK(mn >= 0.0049 && mx > mn + 0.005);
	nexus_dev_close(dev);
}

/* Asynchronous I/O in flight through delayed faults when the device
 * closes: close waits for them. */
static int async_done;
static void async_cb(void *ud, int res)
{
	(void)ud;
	if (res == 4096)
		__atomic_add_fetch(&async_done, 1, __ATOMIC_SEQ_CST);
}

static void test_close_inflight(struct nexus_ctx *ctx)
{
	static char bufs[8][4096];
	struct iovec iov[8];
	struct nexus_dev *dev;

	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:delay=30ms", &dev),
		 0);
	for (int i = 0; i < 8; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = 4096;
		CHECK_RC(test_submit(dev, NEXUS_OP_READ, &iov[i], 1, 0, 0,
					  0, async_cb, NULL), 0);
	}
	nexus_dev_close(dev);
	CHECK(__atomic_load_n(&async_done, __ATOMIC_SEQ_CST) == 8);
}

static void test_runtime(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;

	/* as a mirror test would: start healthy, kill, revive */
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | fault:enable=off | "
				"throttle:iops=1000000", &dev), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), 4096);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), -EIO);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), -EIO);
	CHECK_RC(nexus_dev_control(dev, "fault.errno", "ECONNRESET"), 0);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), -ECONNRESET);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "off"), 0);
	CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), 4096);
	/* "fail after 3 more writes" */
	CHECK_RC(nexus_dev_control(dev, "fault.after", "3"), 0);
	CHECK_RC(nexus_dev_control(dev, "fault.ops", "write"), 0);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_RC(nexus_dev_pread(dev, buf, 4096, 0), 4096);
		CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), 4096);
	}
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), -ECONNRESET);
	/* bad settings */
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "maybe"), -EINVAL);
	CHECK(strstr(nexus_last_error(), "enable"));
	CHECK_RC(nexus_dev_control(dev, "fault.probability", "1.5"), -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "fault.errno", "EWHAT"), -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "fault.delay", "10 parsecs"),
		 -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "fault.ops", "read+bogus"), -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "fault.colour", "red"), -ENOENT);
	CHECK_RC(nexus_dev_control(dev, "fault.", "x"), -EINVAL);
	/* the last good settings still hold */
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), -ECONNRESET);
	nexus_dev_close(dev);
}

static void test_bad_options(struct nexus_ctx *ctx)
{
	static const char *const bad[] = {
		"mem:size=1M | fault:probability=2",
		"mem:size=1M | fault:probability=-0.1",
		"mem:size=1M | fault:probability=half",
		"mem:size=1M | fault:errno=EWHATEVER",
		"mem:size=1M | fault:errno=-5",
		"mem:size=1M | fault:ops=read+fly",
		"mem:size=1M | fault:ops=",
		"mem:size=1M | fault:start=128K,end=64K",
		"mem:size=1M | fault:start=2M",
		"mem:size=1M | fault:delay=fast",
		"mem:size=1M | fault:delay=10ms,delay-max=5ms",
		"mem:size=1M | fault:after=-1",
		"mem:size=1M | fault:enable=perhaps",
		"mem:size=1M | fault:colour=red",
	};

	expect_refused(ctx, bad, sizeof(bad) / sizeof(bad[0]), "fault");
}

static void test_passthrough(struct nexus_ctx *ctx)
{
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nexus_extent ext[4];
	char w[8192], r[8192];
	struct nexus_dev *dev;

	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M,block-size=4096 | "
				"fault:start=512K", &dev), 0);
	CHECK_RC(nexus_dev_get_info(dev, &in), 0);
	CHECK(in.dev_size == 1 << 20 && in.logical_block_size == 4096);
	CHECK(in.ops == 0x3f && (in.flags & NEXUS_DEV_BLOCK_STATUS));
	memset(w, 0x3c, sizeof(w));
	CHECK_RC(nexus_dev_pwrite(dev, w, sizeof(w), 4096, NEXUS_IO_FUA),
		 8192);
	CHECK_RC(nexus_dev_pread(dev, r, sizeof(r), 4096), 8192);
	CHECK(!memcmp(w, r, sizeof(r)));
	CHECK_RC(nexus_dev_block_status(dev, 0, 1 << 20, ext, 4), 2);
	CHECK_RC(nexus_dev_write_zeroes(dev, 4096, 4096, 0), 0);
	CHECK_RC(nexus_dev_trim(dev, 8192, 4096, 0), 0);
	CHECK_RC(nexus_dev_flush(dev), 0);
	CHECK_RC(nexus_dev_pread(dev, r, sizeof(r), 4096), 8192);
	CHECK(r[0] == 0 && r[8191] == 0);
	nexus_dev_close(dev);
}

int main(void)
{
	struct nexus_ctx *ctx = test_ctx(2);

	test_passthrough(ctx);
	test_bad_options(ctx);
	test_seed(ctx);
	test_after_count(ctx);
	test_ops_range_errno(ctx);
	test_delay(ctx);
	test_close_inflight(ctx);
	test_runtime(ctx);
	nexus_ctx_destroy(ctx);
	puts("ok");
	return 0;
}
