/* SPDX-License-Identifier: MIT */
/* Pool buffers are registered with the reactor's ring, and I/O of the
 * file source through them is right.  Pool memory is given back when
 * idle: after a burst of large buffers from the reactors' pools, or of
 * I/Os in flight at a great depth, the process's resident memory falls
 * back near where it started within a few seconds of idleness; and once
 * it has, the reactors are not woken again (the trim timer is armed
 * only while there is something to give back). */
#include <dirent.h>
#include <stdatomic.h>
#include <sys/utsname.h>

#include <nexus/nexus_driver.h>

#include "unit.h"

/* a trim period (lib/core/trim.h) is 2 s: give it several */
#define WAIT_MS 15000

static char *scratch;

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

/* Sparse registered-buffer tables came with Linux 5.19. */
static bool kernel_has_sparse_buffers(void)
{
	struct utsname u;
	unsigned maj = 0, min = 0;

	if (uname(&u) || sscanf(u.release, "%u.%u", &maj, &min) != 2)
		return false;
	return maj > 5 || (maj == 5 && min >= 19);
}

#define NREG 300

struct reg {
	struct nexus_ctx *ctx;
	void *bufs[NREG];
	int idx[NREG];
	int idx_foreign, idx_too_long, idx_inside;
	struct nexus_dev *dev;
	void *io_buf;
	atomic_int io_res;
	int op;
	uint64_t off;
};

static int reg_alloc_fn(void *arg)
{
	struct reg *g = arg;
	struct nexus_reactor *r = nexus_ctx_reactor(g->ctx, 0);
	static char foreign[8192] __attribute__((aligned(4096)));

	for (unsigned i = 0; i < NREG; i++) {
		g->bufs[i] = nexus_buf_alloc(r, 4096);
		if (!g->bufs[i])
			return -ENOMEM;
		g->idx[i] = nexus_buf_index(r, g->bufs[i], 4096);
	}
	g->idx_foreign = nexus_buf_index(r, foreign, 4096);
	g->idx_too_long = nexus_buf_index(r, g->bufs[0], 8192);
	g->idx_inside = nexus_buf_index(r, (char *)g->bufs[0] + 512, 512);
	for (unsigned i = 0; i < NREG; i++)
		nexus_buf_free(r, g->bufs[i], 4096);
	g->io_buf = nexus_buf_alloc(r, 1 << 20);
	return g->io_buf ? 0 : -ENOMEM;
}

static int reg_free_fn(void *arg)
{
	struct reg *g = arg;

	nexus_buf_free(nexus_ctx_reactor(g->ctx, 0), g->io_buf, 1 << 20);
	return 0;
}

static void reg_cb(void *ud, int res)
{
	struct reg *g = ud;

	atomic_store(&g->io_res, res);
}

/* On the reactor, so that the file source sees a buffer of its pool. */
static int reg_io_fn(void *arg)
{
	struct reg *g = arg;
	struct nexus_io_req req = NEXUS_IO_REQ_INIT;
	static struct iovec iov;

	iov.iov_base = g->io_buf;
	iov.iov_len = 1 << 20;
	req.op = (uint32_t)g->op;
	req.iov = &iov;
	req.iovcnt = 1;
	req.offset = g->off;
	req.cb = reg_cb;
	req.user_data = g;
	return nexus_dev_submit(g->dev, &req);
}

static int reg_io(struct reg *g, int op, uint64_t off)
{
	uint64_t t0 = unit_now_ns();

	g->op = op;
	g->off = off;
	atomic_store(&g->io_res, INT32_MIN);
	EXPECT_OK(nexus_reactor_call(nexus_ctx_reactor(g->ctx, 0), reg_io_fn, g));
	while (atomic_load(&g->io_res) == INT32_MIN &&
	       unit_now_ns() - t0 < 10000000000ull)
		unit_sleep_ms(1);
	return atomic_load(&g->io_res);
}

static void test_registered(void)
{
	struct reg *g = calloc(1, sizeof(*g));
	char spec[600], *a = aligned_alloc(4096, 1 << 20);
	char *b = aligned_alloc(4096, 1 << 20);
	bool seen[16384] = { false };

	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	g->ctx = unit_ctx(1);
	EXPECT_OK(nexus_reactor_call(nexus_ctx_reactor(g->ctx, 0), reg_alloc_fn, g));
	if (kernel_has_sparse_buffers()) {
		for (unsigned i = 0; i < NREG; i++) {
			CU_ASSERT(g->idx[i] >= 0 && g->idx[i] < 16384);
			if (g->idx[i] >= 0 && g->idx[i] < 16384) {
				CU_ASSERT(!seen[g->idx[i]]);
				seen[g->idx[i]] = true;
			}
		}
	}
	CU_ASSERT_EQUAL(g->idx_foreign, -1);
	CU_ASSERT_EQUAL(g->idx_too_long, -1);
	CU_ASSERT_EQUAL(g->idx_inside, -1);
	/* I/O of the file source through a registered buffer, both ways
	 * (the file source uses them with O_DIRECT) */
	snprintf(spec, sizeof(spec), "file:%s,create=on,size=4M,direct=on",
		 unit_join(scratch, "reg.img"));
	if (nexus_dev_open(g->ctx, spec, &g->dev) == -EINVAL) {
		printf("(no O_DIRECT in %s: buffered) ", scratch);
		snprintf(spec, sizeof(spec), "file:%s,create=on,size=4M",
			 unit_join(scratch, "reg.img"));
		g->dev = unit_open(g->ctx, spec);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(g->dev);
	unit_fill(a, 1 << 20, 1);
	EXPECT_EQ_MSG(nexus_dev_pwrite(g->dev, a, 1 << 20, 1 << 20, 0), 1 << 20);
	CU_ASSERT_EQUAL(reg_io(g, NEXUS_OP_READ, 1 << 20), 1 << 20);
	CU_ASSERT(memcmp(g->io_buf, a, 1 << 20) == 0);
	unit_fill(g->io_buf, 1 << 20, 2);
	CU_ASSERT_EQUAL(reg_io(g, NEXUS_OP_WRITE, 2 << 20), 1 << 20);
	EXPECT_EQ_MSG(nexus_dev_pread(g->dev, b, 1 << 20, 2 << 20), 1 << 20);
	CU_ASSERT(memcmp(g->io_buf, b, 1 << 20) == 0);
	EXPECT_OK(nexus_reactor_call(nexus_ctx_reactor(g->ctx, 0), reg_free_fn, g));
	CU_ASSERT_EQUAL(nexus_dev_close(g->dev), 0);
	nexus_ctx_destroy(g->ctx);
	free(a);
	free(b);
	free(g);
}

static const struct unit_test tests[] = {
	{ "pool buffers are registered; file I/O through them", test_registered },
	{ "pool buffers are given back when idle", test_buffers_given_back },
	{ "I/O slabs are given back when idle", test_io_slabs_given_back },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main_scratch("pool", tests, &scratch);
}
