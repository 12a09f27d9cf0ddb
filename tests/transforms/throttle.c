/* SPDX-License-Identifier: MIT */
/* throttle: measured IOPS and bytes per second against the limits, one
 * limit shared by several reactors, limits changed at run time, no CPU
 * burnt while throttled, and clear errors for bad limits. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "../submit.h"

#define QD 16

struct load;

/* One request slot: its iovec must live until its callback runs. */
struct slot {
	struct load *l;
	struct iovec iov;
};

struct load {
	struct nexus_dev *dev;
	atomic_ullong done;
	atomic_int inflight;
	atomic_bool stop;
	atomic_int errors;
	char *buf;
	struct slot slots[QD];
};

static void resubmit(struct slot *s);

static void cb(void *ud, int res)
{
	struct slot *s = ud;
	struct load *l = s->l;

	if (res < 0) {
		fprintf(stderr, "I/O failed: %s\n", strerror(-res));
		atomic_fetch_add(&l->errors, 1);
	}
	atomic_fetch_add(&l->done, 1);
	if (atomic_load(&l->stop)) {
		atomic_fetch_sub(&l->inflight, 1);
		return;
	}
	resubmit(s);
}

static void resubmit(struct slot *s)
{
	struct load *l = s->l;
	int rc = test_submit(l->dev, NEXUS_OP_READ, &s->iov, 1, 0, 0, 0,
				  cb, s);

	if (rc) {
		fprintf(stderr, "submit failed: %s\n", nexus_last_error());
		atomic_fetch_add(&l->errors, 1);
		atomic_fetch_sub(&l->inflight, 1);
	}
}

static void start(struct load *l, struct nexus_dev *dev, size_t bs)
{
	memset(l, 0, sizeof(*l));
	l->dev = dev;
	l->buf = aligned_alloc(4096, bs);
	CHECK(l->buf);
	atomic_store(&l->inflight, QD);
	for (int i = 0; i < QD; i++) {
		/* reads only: the slots may share one buffer */
		l->slots[i].l = l;
		l->slots[i].iov.iov_base = l->buf;
		l->slots[i].iov.iov_len = bs;
	}
	for (int i = 0; i < QD; i++)
		resubmit(&l->slots[i]);
}

static void stop(struct load *l)
{
	atomic_store(&l->stop, true);
	while (atomic_load(&l->inflight) > 0)
		usleep(1000);
	CHECK(atomic_load(&l->errors) == 0);
	free(l->buf);
}

/* Operations completed in @p secs of load. */
static unsigned long long measure(struct load *l, double secs)
{
	unsigned long long a = atomic_load(&l->done);

	usleep((useconds_t)(secs * 1e6));
	return atomic_load(&l->done) - a;
}

static void expect_between(const char *what, double v, double lo, double hi)
{
	printf("%-40s %10.0f  (want %.0f..%.0f)\n", what, v, lo, hi);
	fflush(stdout);
	if (v < lo || v > hi) {
		fprintf(stderr, "%s: %.0f is outside %.0f..%.0f\n", what, v,
			lo, hi);
		exit(1);
	}
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void test_iops(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct load l;
	double c0, c1, t0;
	unsigned long long n;

	CHECK_RC(nexus_dev_open(ctx, "mem:size=16M | throttle:iops=500",
				&dev), 0);
	t0 = now_s();
	c0 = cpu_s();
	start(&l, dev, 4096);
	n = measure(&l, 2.0);
	c1 = cpu_s();
	stop(&l);
	/* 500/s for 2 s plus the default burst of 50 */
	expect_between("iops=500, 2 s: operations", (double)n, 900, 1150);
	/* queued I/O waits on an io_uring timeout: the process must be
	 * nearly idle while throttled */
	printf("%-40s %10.2f  (want < 0.5 of %.2f s)\n", "CPU seconds",
	       c1 - c0, now_s() - t0);
	CHECK(c1 - c0 < 0.5 * (now_s() - t0));
	nexus_dev_close(dev);
}

static void test_bps(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct load l;
	unsigned long long n;

	CHECK_RC(nexus_dev_open(ctx, "mem:size=16M | throttle:bps=4M,"
				"burst-bytes=256K", &dev), 0);
	start(&l, dev, 65536);
	n = measure(&l, 2.0);
	stop(&l);
	/* 4 MiB/s of 64 KiB reads for 2 s = 128 reads, + 4 of burst */
	expect_between("bps=4M, 64K reads, 2 s: operations", (double)n, 110,
		       150);
	nexus_dev_close(dev);
}

/* Two application threads land on two reactors: the limit is global. */
struct thread_arg {
	struct nexus_dev *dev;
	unsigned long long n;
};

static void *load_thread(void *p)
{
	struct thread_arg *a = p;
	struct load l;

	start(&l, a->dev, 4096);
	a->n = measure(&l, 2.0);
	stop(&l);
	return NULL;
}

static void test_shared(void)
{
	struct nexus_ctx *ctx = test_ctx(2);
	struct thread_arg a[2];
	pthread_t th[2];
	struct nexus_dev *dev;

	CHECK_RC(nexus_dev_open(ctx, "mem:size=16M | throttle:iops=400,"
				"burst-iops=1", &dev), 0);
	for (int i = 0; i < 2; i++) {
		a[i].dev = dev;
		CHECK(pthread_create(&th[i], NULL, load_thread, &a[i]) == 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	expect_between("iops=400 over 2 reactors, 2 s: ops",
		       (double)(a[0].n + a[1].n), 700, 880);
	/* reservations are FIFO across reactors: both threads progress */
	CHECK(a[0].n > 200 && a[1].n > 200);
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

/* Change a limit of the running load, let the queued I/O adapt for
 * 100 ms, then expect lo..hi operations in @p secs. */
static void retune(struct load *l, const char *key, const char *value,
		   double secs, const char *what, double lo, double hi)
{
	int rc = nexus_dev_control(l->dev, key, value);

	if (rc) {
		fprintf(stderr, "%s: nexus_dev_control(%s, %s) returned %d "
			"(last error: %s)\n", what, key, value, rc,
			nexus_last_error());
		exit(1);
	}
	usleep(100000);
	expect_between(what, (double)measure(l, secs), lo, hi);
}

static void test_runtime(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct load l;
	unsigned long long n;

	/* a stage above the throttle: the key's prefix finds it below */
	CHECK_RC(nexus_dev_open(ctx, "mem:size=16M | throttle:iops=100,"
				"burst-iops=1 | fault:enable=off", &dev), 0);
	start(&l, dev, 4096);
	n = measure(&l, 1.0);
	expect_between("iops=100, 1 s", (double)n, 80, 125);
	/* raising the limit applies at once, also to queued I/O */
	retune(&l, "throttle.iops", "1000", 1.0, "then iops=1000, 1 s",
	       850, 1150);
	retune(&l, "throttle.iops", "200", 1.0, "then iops=200, 1 s",
	       160, 240);
	/* 400 KiB/s of 4 KiB = 100/s: now the tighter limit */
	retune(&l, "throttle.bps", "400K", 1.0, "then also bps=400K, 1 s",
	       80, 125);
	CHECK_RC(nexus_dev_control(dev, "throttle.iops", "unlimited"), 0);
	retune(&l, "throttle.bps", "unlimited", 0.5, "then unlimited, 0.5 s",
	       2000, 1e12);
	/* a limit of 1/s with I/O queued, then raised: the queue must not
	 * keep waiting for the old, slow reservations */
	CHECK_RC(nexus_dev_control(dev, "throttle.iops", "1"), 0);
	usleep(300000);
	retune(&l, "throttle.iops", "2000", 0.5, "1/s then 2000/s, 0.5 s",
	       800, 1300);
	stop(&l);

	/* bad run-time values are refused, the old limit stays */
	CHECK_RC(nexus_dev_control(dev, "throttle.iops", "0"), -EINVAL);
	CHECK(strstr(nexus_last_error(), "iops"));
	CHECK_RC(nexus_dev_control(dev, "throttle.iops", "-3"), -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "throttle.iops", "fast"), -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "throttle.bps", "10Q"), -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "throttle.speed", "10"), -ENOENT);
	CHECK_RC(nexus_dev_control(dev, "mirror.iops", "10"), -ENOENT);
	CHECK_RC(nexus_dev_control(dev, "mem.size", "10"), -EOPNOTSUPP);
	CHECK_RC(nexus_dev_control(dev, "throttle.iops", NULL), -EINVAL);
	CHECK_RC(nexus_dev_control(NULL, "throttle.iops", "1"), -EINVAL);
	nexus_dev_close(dev);
}

static void test_bad_options(struct nexus_ctx *ctx)
{
	static const char *const bad[] = {
		"mem:size=1M | throttle",
		"mem:size=1M | throttle:iops=0",
		"mem:size=1M | throttle:iops=-1",
		"mem:size=1M | throttle:iops=lots",
		"mem:size=1M | throttle:bps=0",
		"mem:size=1M | throttle:bps=1X",
		"mem:size=1M | throttle:iops=10,burst-iops=0",
		"mem:size=1M | throttle:bps=1M,burst-iops=5",
		"mem:size=1M | throttle:iops=1,speed=3",
	};

	expect_refused(ctx, bad, sizeof(bad) / sizeof(bad[0]), "throttle");
}

/* Everything passes through: data, all five operations, block status. */
static void test_passthrough(struct nexus_ctx *ctx)
{
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nexus_extent ext[4];
	char w[4096], r[4096];
	struct nexus_dev *dev;

	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M,block-size=4096 | "
				"throttle:iops=100000", &dev), 0);
	CHECK_RC(nexus_dev_get_info(dev, &in), 0);
	CHECK(in.dev_size == 1 << 20 && in.logical_block_size == 4096);
	CHECK(in.ops == 0x3f);
	memset(w, 0xa5, sizeof(w));
	CHECK_RC(nexus_dev_pwrite(dev, w, sizeof(w), 8192, 0), 4096);
	CHECK_RC(nexus_dev_pread(dev, r, sizeof(r), 8192), 4096);
	CHECK(!memcmp(w, r, sizeof(r)));
	CHECK_RC(nexus_dev_flush(dev), 0);
	/* mem tracks 64 KiB chunks: data, then a hole */
	CHECK_RC(nexus_dev_block_status(dev, 0, 1 << 20, ext, 4), 2);
	CHECK(!ext[0].flags && (ext[1].flags & NEXUS_EXTENT_HOLE));
	CHECK_RC(nexus_dev_write_zeroes(dev, 8192, 4096, 0), 0);
	CHECK_RC(nexus_dev_trim(dev, 0, 65536, 0), 0);
	CHECK_RC(nexus_dev_pread(dev, r, sizeof(r), 8192), 4096);
	CHECK(r[0] == 0 && r[4095] == 0);
	nexus_dev_close(dev);
}

int main(void)
{
	struct nexus_ctx *ctx = test_ctx(1);

	test_passthrough(ctx);
	test_bad_options(ctx);
	test_iops(ctx);
	test_bps(ctx);
	test_runtime(ctx);
	nexus_ctx_destroy(ctx);
	test_shared();
	puts("ok");
	return 0;
}
