/* SPDX-License-Identifier: MIT */
/* Pool memory is given back when idle: after a burst of large buffers
 * from the reactors' pools, or of I/Os in flight at a great depth, the
 * process's resident memory falls back near where it started within a
 * few seconds of idleness; and once it has, the reactors are not woken
 * again (the trim timer is armed only while there is something to give
 * back). */
#include <dirent.h>
#include <stdatomic.h>

#include <nexus/nexus_driver.h>

#include "unit.h"

/* Under AddressSanitizer freed heap memory stays with the sanitizer's
 * allocator (its quarantine, then its own free lists), so RSS cannot
 * tell whether the pools gave it back: there the trims still run and
 * are checked for memory errors, and only the RSS limit is not. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_MEANINGFUL false
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL true
#endif

/* Under valgrind (`make check-valgrind`) neither figure means anything:
 * memcheck's allocator keeps freed blocks, and its scheduler hands the
 * one big lock from thread to thread, switching even idle threads
 * thousands of times a second.  There the trims still run and are
 * checked for memory errors; the RSS and wake-up limits are not. */
static bool measurable(void)
{
	return RSS_MEANINGFUL && !unit_slow();
}

/* a trim period (lib/core/trim.h) is 2 s: give it several */
#define WAIT_MS 15000

static uint64_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Wait until RSS is below @p limit; the milliseconds it took, or -1. */
static long wait_rss_below(uint64_t limit)
{
	uint64_t t0 = unit_now_ns();

	while (rss_bytes() >= limit) {
		if (unit_now_ns() - t0 > (uint64_t)WAIT_MS * 1000000)
			return -1;
		unit_sleep_ms(100);
	}
	return (long)((unit_now_ns() - t0) / 1000000);
}

/* Context switches of the reactor threads ("nexus-r<N>"); *n counts
 * the threads seen. */
static uint64_t reactor_switches(unsigned *n)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	uint64_t sum = 0;

	*n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[300], line[256];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(line, sizeof(line), f) ||
		    strncmp(line, "nexus-r", 7) != 0) {
			fclose(f);
			continue;
		}
		fclose(f);
		(*n)++;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status",
			 e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned long long v;

			if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
			    sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
				sum += v;
		}
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* After a trim, an idle reactor sleeps: no wake-up over 2.5 periods.
 * (A timer re-armed for ever would wake each reactor twice.) */
static void check_no_wakeups(void)
{
	unsigned n0, n1;
	uint64_t s0, s1;

	unit_sleep_ms(2500); /* let a last pending timer run out */
	s0 = reactor_switches(&n0);
	unit_sleep_ms(5000);
	s1 = reactor_switches(&n1);
	printf("reactor wake-ups while idle: %llu ",
	       (unsigned long long)(s1 - s0));
	CU_ASSERT_EQUAL(n0, 2);
	CU_ASSERT_EQUAL(n1, 2);
	if (!unit_slow())
		CU_ASSERT(s1 - s0 <= 1);
	printf("(RSS then %llu MB) ", (unsigned long long)(rss_bytes() >> 20));
}

struct burst {
	struct nexus_ctx *ctx;
	unsigned reactor, count;
	size_t len;
};

/* On the reactor: take count buffers, write to all of them, give them
 * all back to the pool. */
static int burst_fn(void *arg)
{
	struct burst *b = arg;
	struct nexus_reactor *r = nexus_ctx_reactor(b->ctx, b->reactor);
	void **bufs = calloc(b->count, sizeof(*bufs));
	int rc = 0;

	if (!bufs)
		return -ENOMEM;
	for (unsigned i = 0; i < b->count; i++) {
		bufs[i] = nexus_buf_alloc(r, b->len);
		if (!bufs[i]) {
			rc = -ENOMEM;
			break;
		}
		memset(bufs[i], 0x5a, b->len);
	}
	for (unsigned i = 0; i < b->count; i++)
		nexus_buf_free(r, bufs[i], b->len);
	free(bufs);
	return rc;
}

static void test_buffers_given_back(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);
	/* large buffers on one reactor (mapped on their own), many
	 * medium ones on the other (from malloc) */
	struct burst big = { ctx, 0, 48, (size_t)4 << 20 };
	struct burst mid = { ctx, 1, 800, (size_t)64 << 10 };
	uint64_t before, peak;
	long ms;

	unit_sleep_ms(200);
	before = rss_bytes();
	EXPECT_OK(nexus_reactor_call(nexus_ctx_reactor(ctx, 0), burst_fn, &big));
	EXPECT_OK(nexus_reactor_call(nexus_ctx_reactor(ctx, 1), burst_fn, &mid));
	peak = rss_bytes();
	/* the burst did take the memory (else the test proves nothing) */
	CU_ASSERT_FATAL(peak > before + (200u << 20));
	ms = wait_rss_below(before + (peak - before) / 4);
	printf("RSS %llu -> %llu -> %llu MB in %ld ms ",
	       (unsigned long long)(before >> 20),
	       (unsigned long long)(peak >> 20),
	       (unsigned long long)(rss_bytes() >> 20), ms);
	if (measurable())
		CU_ASSERT(ms >= 0);
	check_no_wakeups();
	/* the pools still work after giving memory back */
	EXPECT_OK(nexus_reactor_call(nexus_ctx_reactor(ctx, 0), burst_fn, &big));
	nexus_ctx_destroy(ctx);
}

struct deep {
	struct nexus_dev *dev;
	unsigned count;
	atomic_uint done, bad;
	char buf[4096];
};

static void deep_cb(void *ud, int res)
{
	struct deep *d = ud;

	if (res != 4096)
		atomic_fetch_add(&d->bad, 1);
	atomic_fetch_add(&d->done, 1);
}

/* On the reactor: start count reads at once; none completes before
 * this returns, so all of them are in flight together. */
static int deep_fn(void *arg)
{
	struct deep *d = arg;

	for (unsigned i = 0; i < d->count; i++) {
		struct nexus_io_req req = NEXUS_IO_REQ_INIT;
		struct iovec iov = { d->buf, sizeof(d->buf) };
		int rc;

		req.op = NEXUS_OP_READ;
		req.iov = &iov;
		req.iovcnt = 1;
		req.offset = (uint64_t)(i % 1024) * 4096;
		req.cb = deep_cb;
		req.user_data = d;
		rc = nexus_dev_submit(d->dev, &req);
		if (rc)
			return rc;
	}
	return 0;
}

static void test_io_slabs_given_back(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);
	struct deep *d = calloc(1, sizeof(*d));
	uint64_t before, peak, t0;
	long ms;

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	d->dev = unit_open(ctx, "null:size=1G");
	d->count = 400000;
	unit_sleep_ms(200);
	before = rss_bytes();
	EXPECT_OK(nexus_reactor_call(nexus_ctx_reactor(ctx, 0), deep_fn, d));
	t0 = unit_now_ns();
	while (atomic_load(&d->done) < d->count &&
	       unit_now_ns() - t0 < 10000000000ull)
		unit_sleep_ms(10);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&d->done), d->count);
	CU_ASSERT_EQUAL(atomic_load(&d->bad), 0);
	peak = rss_bytes();
	CU_ASSERT_FATAL(peak > before + (40u << 20));
	ms = wait_rss_below(before + (peak - before) / 4);
	printf("RSS %llu -> %llu -> %llu MB in %ld ms ",
	       (unsigned long long)(before >> 20),
	       (unsigned long long)(peak >> 20),
	       (unsigned long long)(rss_bytes() >> 20), ms);
	if (measurable())
		CU_ASSERT(ms >= 0);
	check_no_wakeups();
	/* and the device still works at depth afterwards */
	atomic_store(&d->done, 0);
	d->count = 1000;
	EXPECT_OK(nexus_reactor_call(nexus_ctx_reactor(ctx, 0), deep_fn, d));
	t0 = unit_now_ns();
	while (atomic_load(&d->done) < d->count &&
	       unit_now_ns() - t0 < 10000000000ull)
		unit_sleep_ms(10);
	CU_ASSERT_EQUAL(atomic_load(&d->done), d->count);
	CU_ASSERT_EQUAL(atomic_load(&d->bad), 0);
	CU_ASSERT_EQUAL(nexus_dev_close(d->dev), 0);
	nexus_ctx_destroy(ctx);
	free(d);
}

static const struct unit_test tests[] = {
	{ "pool buffers are given back when idle", test_buffers_given_back },
	{ "I/O slabs are given back when idle", test_io_slabs_given_back },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main("pool", tests);
}
