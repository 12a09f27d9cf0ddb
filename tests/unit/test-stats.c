/* SPDX-License-Identifier: MIT */
/* Device counters and the latency histogram after known I/O, and the
 * histogram helpers nexus_lat_bucket_floor() / nexus_lat_percentile(). */
#include <fcntl.h>
#include <semaphore.h>
#include <stdatomic.h>

#include <nexus/nexus_driver.h>
#include "../submit.h"

#include "unit.h"

static char *scratch;

static uint64_t sum(const uint64_t *v, unsigned n)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < n; i++)
		s += v[i];
	return s;
}

/* Stats once the last completion has been counted. */
static void settled_stats(struct nexus_dev *dev, struct nexus_dev_stats *st)
{
	for (int i = 0; i < 1000; i++) {
		st->size = sizeof(*st);
		EXPECT_OK(nexus_dev_get_stats(dev, st));
		if (!st->in_flight)
			return;
		usleep(1000);
	}
}

static void test_counters(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);
	struct nexus_dev *dev, *other;
	struct nexus_dev_stats st = NEXUS_DEV_STATS_INIT;
	char buf[8192] = { 0 };

	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &dev));
	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &other));
	CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
	settled_stats(dev, &st);
	CU_ASSERT_EQUAL(st.ops, 0);
	CU_ASSERT_EQUAL(sum(st.latency, NEXUS_LAT_BUCKETS), 0);

	for (int i = 0; i < 10; i++)
		EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 4096, i * 4096), 4096);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 8192, i * 8192, 0),
			      8192);
	EXPECT_OK(nexus_dev_flush(dev));
	EXPECT_OK(nexus_dev_flush(dev));
	for (int i = 0; i < 3; i++)
		EXPECT_OK(nexus_dev_trim(dev, i * 4096, 4096, 0));
	EXPECT_OK(nexus_dev_write_zeroes(dev, 0, 65536, 0));
	/* refused requests are not operations of the device */
	EXPECT_ERR(nexus_dev_pread(dev, buf, 512, 1 << 20), -EINVAL,
		   "past the end");
	EXPECT_ERR(nexus_dev_pread(dev, buf, 100, 0), -EINVAL, "aligned");

	settled_stats(dev, &st);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_READ).ops, 10);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_WRITE).ops, 5);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_FLUSH).ops, 2);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_TRIM).ops, 3);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_WRITE_ZEROES).ops, 1);
	CU_ASSERT_EQUAL(st.errors, 0);
	CU_ASSERT_EQUAL(st.bytes_read, 10 * 4096);
	CU_ASSERT_EQUAL(st.bytes_written, 5 * 8192);
	CU_ASSERT_EQUAL(st.in_flight, 0);
	/* one latency sample per operation */
	CU_ASSERT_EQUAL(sum(st.latency, NEXUS_LAT_BUCKETS), 21);
	{
		uint64_t p50 = nexus_lat_percentile(st.latency, 50);
		uint64_t p100 = nexus_lat_percentile(st.latency, 100);

		CU_ASSERT(p50 > 0);
		CU_ASSERT(p50 <= p100);
		CU_ASSERT(p100 < 10ull * 1000000000ull); /* < 10 s */
	}
	/* counters are per device */
	settled_stats(other, &st);
	CU_ASSERT_EQUAL(st.ops, 0);
	CU_ASSERT_EQUAL(st.bytes_read + st.bytes_written, 0);
	nexus_dev_close(dev);
	nexus_dev_close(other);
	nexus_ctx_destroy(ctx);
}

/* Failed operations are counted as operations and as errors. */
static void test_error_counters(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	const char *path = unit_join(scratch, "shrink.img");
	struct nexus_dev_stats st = NEXUS_DEV_STATS_INIT;
	struct nexus_dev *dev;
	char spec[600], buf[4096];

	snprintf(spec, sizeof(spec), "file:%s,create=on,size=1M", path);
	EXPECT_OK(nexus_dev_open(ctx, spec, &dev));
	CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
	memset(buf, 3, sizeof(buf));
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 4096, 0, 0), 4096);
	/* the file shrinks under the device: reads past the new end fail */
	CU_ASSERT_EQUAL_FATAL(truncate(path, 65536), 0);
	EXPECT_ERR(nexus_dev_pread(dev, buf, 4096, 512 * 1024), -EIO, "");
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 4096, 0), 4096);
	settled_stats(dev, &st);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_READ).ops, 2);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_READ).errors, 1);
	CU_ASSERT_EQUAL(st.bytes_read, 4096); /* only the successful one */
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_WRITE).ops, 1);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_WRITE).errors, 0);
	CU_ASSERT_EQUAL(sum(st.latency, NEXUS_LAT_BUCKETS), 3);
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

/* in_flight counts I/O accepted and not yet completed, queued ones
 * included. */
static void hold(void *arg)
{
	sem_t *s = arg;

	while (sem_wait(s) < 0 && errno == EINTR)
		;
}

static void done_cb(void *ud, int res)
{
	(void)res;
	atomic_fetch_add((atomic_int *)ud, 1);
}

static void test_in_flight(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct nexus_dev_stats st = NEXUS_DEV_STATS_INIT;
	struct nexus_dev *dev;
	char buf[512];
	struct iovec iov = { buf, sizeof(buf) };
	atomic_int done = 0;
	sem_t sem;

	EXPECT_OK(nexus_dev_open(ctx, "null", &dev));
	CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
	sem_init(&sem, 0, 0);
	EXPECT_OK(nexus_reactor_post(nexus_ctx_reactor(ctx, 0), hold, &sem));
	for (int i = 0; i < 3; i++)
		EXPECT_OK(test_submit(dev, NEXUS_OP_READ, &iov, 1, 0, 0, 0,
					   done_cb, &done));
	EXPECT_OK(nexus_dev_get_stats(dev, &st));
	CU_ASSERT_EQUAL(st.in_flight, 3);
	sem_post(&sem);
	while (atomic_load(&done) < 3)
		usleep(100);
	settled_stats(dev, &st);
	CU_ASSERT_EQUAL(st.in_flight, 0);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_READ).ops, 3);
	sem_destroy(&sem);
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

static void test_bucket_floors(void)
{
	uint64_t prev = 0;

	CU_ASSERT_EQUAL(nexus_lat_bucket_floor(0), 0);
	for (unsigned i = 1; i < NEXUS_LAT_BUCKETS; i++) {
		uint64_t f = nexus_lat_bucket_floor(i);

		if (f <= prev) {
			fprintf(stderr, "floor(%u) = %llu <= floor(%u)\n", i,
				(unsigned long long)f, i - 1);
			CU_FAIL("bucket floors must increase");
			break;
		}
		/* buckets are at most 25% wide above the first few */
		if (i > 8 && (f - prev) * 4 > prev) {
			CU_FAIL("bucket wider than a quarter octave");
			break;
		}
		prev = f;
	}
	/* the histogram reaches beyond a second */
	CU_ASSERT(nexus_lat_bucket_floor(NEXUS_LAT_BUCKETS - 1) >
		  1000000000ull);
	CU_ASSERT_EQUAL(nexus_lat_bucket_floor(NEXUS_LAT_BUCKETS), UINT64_MAX);
	CU_ASSERT_EQUAL(nexus_lat_bucket_floor(UINT32_MAX), UINT64_MAX);
}

static void test_percentile(void)
{
	uint64_t h[NEXUS_LAT_BUCKETS];
	unsigned a = 40, b = 60;

	memset(h, 0, sizeof(h));
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 50), 0); /* empty */
	/* 90 samples in bucket a, 10 in bucket b */
	h[a] = 90;
	h[b] = 10;
	/* an upper estimate: the top of the bucket holding the rank */
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 0), nexus_lat_bucket_floor(a + 1));
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 50), nexus_lat_bucket_floor(a + 1));
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 90), nexus_lat_bucket_floor(a + 1));
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 91), nexus_lat_bucket_floor(b + 1));
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 99.9), nexus_lat_bucket_floor(b + 1));
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 100), nexus_lat_bucket_floor(b + 1));
	/* out-of-range percentiles are clamped */
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, -5), nexus_lat_bucket_floor(a + 1));
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 1000), nexus_lat_bucket_floor(b + 1));
	/* percentiles never decrease */
	{
		uint64_t prev = 0;

		for (double p = 0; p <= 100; p += 0.5) {
			uint64_t v = nexus_lat_percentile(h, p);

			CU_ASSERT(v >= prev);
			prev = v;
		}
	}
	/* the last bucket has no upper floor: its own is returned */
	memset(h, 0, sizeof(h));
	h[NEXUS_LAT_BUCKETS - 1] = 1;
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 50),
			nexus_lat_bucket_floor(NEXUS_LAT_BUCKETS - 1));
	/* a single sample in bucket 0 */
	memset(h, 0, sizeof(h));
	h[0] = 1;
	CU_ASSERT_EQUAL(nexus_lat_percentile(h, 99), nexus_lat_bucket_floor(1));
}

/* Latencies land in the right buckets: a delayed device's I/O shows up
 * at or above its delay. */
static void test_latency_placement(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct nexus_dev_stats st = NEXUS_DEV_STATS_INIT;
	struct nexus_dev *dev;
	char buf[4096];
	uint64_t t0, wall, p100;

	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &dev));
	CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
	t0 = unit_now_ns();
	for (int i = 0; i < 100; i++)
		EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 4096, 0), 4096);
	wall = unit_now_ns() - t0;
	settled_stats(dev, &st);
	p100 = nexus_lat_percentile(st.latency, 100);
	/* no single I/O took longer than all 100 together */
	CU_ASSERT(nexus_lat_percentile(st.latency, 50) <= p100);
	CU_ASSERT(nexus_lat_percentile(st.latency, 1) <= wall);
	CU_ASSERT_EQUAL(sum(st.latency, NEXUS_LAT_BUCKETS), 100);
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

/* In a stack, stamps are shared along synchronous call chains only
 * (lib/core/io.c): fault delays each read by 2 ms on a timer, which
 * must show in fault's histogram and not in that of mem below it. */
static void test_latency_stacked(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct nexus_dev_stats top = NEXUS_DEV_STATS_INIT;
	struct nexus_dev_stats below = NEXUS_DEV_STATS_INIT;
	struct nexus_dev *dev;
	char buf[4096];

	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M | fault:delay=2ms,ops=read",
				 &dev));
	CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 4096, 0), 4096);
	settled_stats(dev, &top);
	settled_stats(nexus_dev_child(dev, 0), &below);
	CU_ASSERT_EQUAL(sum(top.latency, NEXUS_LAT_BUCKETS), 5);
	CU_ASSERT_EQUAL(sum(below.latency, NEXUS_LAT_BUCKETS), 5);
	/* percentiles are bucket bounds: within 19%; the median below, so
	 * that one preemption of the reactor on a loaded machine does not
	 * fail the test */
	CU_ASSERT(nexus_lat_percentile(top.latency, 1) >= 1600000);
	CU_ASSERT(nexus_lat_percentile(below.latency, 50) < 1000000);
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

static const struct unit_test tests[] = {
	{ "counters after known I/O", test_counters },
	{ "failed operations counted", test_error_counters },
	{ "in_flight includes queued I/O", test_in_flight },
	{ "latency bucket floors", test_bucket_floors },
	{ "nexus_lat_percentile", test_percentile },
	{ "latency samples", test_latency_placement },
	{ "latency of stacked devices", test_latency_stacked },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main_scratch("stats", tests, &scratch);
}
