/* SPDX-License-Identifier: MIT */
/* The I/O API: the async rule, the synchronous calls on mem, null and
 * file, FUA, iovecs, bad requests, many submitting threads, calls from
 * callbacks, and a full submission queue. */
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include <nexus/nexus_driver.h>
#include "../submit.h"

#include "unit.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

static char *scratch;

/* ---- completion counting ---- */

struct counter {
	atomic_int calls;
	atomic_int errors;
	atomic_int last;
	atomic_llong bytes;
};

static void count_cb(void *ud, int res)
{
	struct counter *c = ud;

	atomic_store(&c->last, res);
	if (res < 0)
		atomic_fetch_add(&c->errors, 1);
	else
		atomic_fetch_add(&c->bytes, res);
	atomic_fetch_add(&c->calls, 1);
}

/* Wait until *v reaches n (10 s at most; longer under valgrind). */
static bool wait_for(atomic_int *v, int n)
{
	uint64_t end = unit_now_ns() + (unit_slow() ? 120 : 10) * 1000000000ull;

	while (atomic_load(v) < n) {
		if (unit_now_ns() > end)
			return false;
		usleep(200);
	}
	return true;
}

/* ---- devices used below ---- */

static const char *file_spec(const char *name, const char *extra)
{
	static char buf[600];

	snprintf(buf, sizeof(buf), "file:%s,create=on,size=8M%s%s",
		 unit_join(scratch, name), extra ? "," : "",
		 extra ? extra : "");
	return buf;
}

/* ---- the async rule ---- */

static void async_rule_on(struct nexus_ctx *ctx, const char *spec)
{
	struct nexus_dev *dev = unit_open(ctx, spec);
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	struct counter ok = { 0 }, bad = { 0 };
	char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };

	EXPECT_OK(nexus_dev_get_info(dev, &info));
	memset(buf, 0x5a, sizeof(buf));
	/* accepted: exactly one callback, with the byte count */
	EXPECT_OK(test_submit(dev, NEXUS_OP_WRITE, &iov, 1, 0, 0, 0,
				   count_cb, &ok));
	EXPECT_OK(test_submit(dev, NEXUS_OP_READ, &iov, 1, 4096, 0, 0,
				   count_cb, &ok));
	EXPECT_OK(test_submit(dev, NEXUS_OP_FLUSH, NULL, 0, 0, 0, 0,
				   count_cb, &ok));
	EXPECT_OK(test_submit(dev, NEXUS_OP_TRIM, NULL, 0, 8192, 4096, 0,
				   count_cb, &ok));
	EXPECT_OK(test_submit(dev, NEXUS_OP_WRITE_ZEROES, NULL, 0, 8192,
				   4096, 0, count_cb, &ok));
	CU_ASSERT(wait_for(&ok.calls, 5));
	/* refused: no callback, ever */
	EXPECT_ERR(test_submit(dev, NEXUS_OP_READ, &iov, 1,
				    info.dev_size, 0, 0, count_cb, &bad),
		   -EINVAL, "past the end");
	EXPECT_ERR(test_submit(dev, NEXUS_OP_TRIM, NULL, 0, 0, 0, 0,
				    count_cb, &bad),
		   -EINVAL, "zero-length");
	EXPECT_ERR(test_submit(dev, 77, &iov, 1, 0, 0, 0, count_cb, &bad),
		   -EINVAL, "unknown operation 77");
	/* a sync I/O after them goes through the same queue */
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, sizeof(buf), 0), sizeof(buf));
	unit_sleep_ms(20);
	CU_ASSERT_EQUAL(atomic_load(&ok.calls), 5);
	CU_ASSERT_EQUAL(atomic_load(&ok.errors), 0);
	CU_ASSERT_EQUAL(atomic_load(&ok.bytes), 8192);
	CU_ASSERT_EQUAL(atomic_load(&bad.calls), 0);
	nexus_dev_close(dev);
}

static void test_async_rule(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);

	async_rule_on(ctx, "mem:size=8M");
	async_rule_on(ctx, "null:size=8M");
	async_rule_on(ctx, file_spec("rule.img", NULL));
	nexus_ctx_destroy(ctx);
}

/* ---- synchronous calls on each source ---- */

static void sync_ops_on(struct nexus_ctx *ctx, const char *spec, bool keeps,
			bool direct)
{
	struct nexus_dev *dev = unit_open(ctx, spec);
	size_t len = 64 * 1024;
	unsigned char *w = aligned_alloc(4096, len), *r = aligned_alloc(4096, len);
	size_t a = direct ? 512 : 100, b = direct ? 3072 : 3000;
	struct iovec wv[3], rv[2];

	unit_fill(w, len, 1);
	memset(r, 0xee, len);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, w, len, 1 << 20, 0), len);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, r, len, 1 << 20), len);
	CU_ASSERT(keeps ? memcmp(w, r, len) == 0 : unit_is_zero(r, len));
	/* FUA write, flush */
	unit_fill(w, len, 2);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, w, len, 2 << 20, NEXUS_IO_FUA),
		      len);
	EXPECT_OK(nexus_dev_flush(dev));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, r, len, 2 << 20), len);
	CU_ASSERT(keeps ? memcmp(w, r, len) == 0 : unit_is_zero(r, len));
	/* gather write of odd pieces, scatter read of other pieces */
	unit_fill(w, 4096, 3);
	wv[0] = (struct iovec){ w, a };
	wv[1] = (struct iovec){ w + a, 2048 - a };
	wv[2] = (struct iovec){ w + 2048, 2048 };
	rv[0] = (struct iovec){ r, b };
	rv[1] = (struct iovec){ r + b, 4096 - b };
	memset(r, 0xee, len);
	EXPECT_EQ_MSG(nexus_dev_pwritev(dev, wv, 3, 3 << 20, 0), 4096);
	EXPECT_EQ_MSG(nexus_dev_preadv(dev, rv, 2, 3 << 20), 4096);
	CU_ASSERT(keeps ? memcmp(w, r, 4096) == 0 : unit_is_zero(r, 4096));
	/* trim and write-zeroes read back as zeroes (TRIM_ZEROES devices) */
	unit_fill(w, len, 4);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, w, len, 4 << 20, 0), len);
	EXPECT_OK(nexus_dev_trim(dev, 4 << 20, 32768, 0));
	EXPECT_OK(nexus_dev_write_zeroes(dev, (4 << 20) + 32768, 16384, 0));
	EXPECT_OK(nexus_dev_write_zeroes(dev, (4 << 20) + 49152, 16384,
					 NEXUS_IO_NO_UNMAP | NEXUS_IO_FUA));
	memset(r, 0xee, len);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, r, len, 4 << 20), len);
	CU_ASSERT(unit_is_zero(r, len));
	free(w);
	free(r);
	nexus_dev_close(dev);
}

static void test_sync_ops(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);

	sync_ops_on(ctx, "mem:size=8M", true, false);
	sync_ops_on(ctx, "null:8M", false, false);
	sync_ops_on(ctx, file_spec("sync.img", NULL), true, false);
	sync_ops_on(ctx, file_spec("sync-direct.img", "direct=on"), true, true);
	nexus_ctx_destroy(ctx);
}

/* Many iovec entries, each its own piece of the data. */
static void test_iovec_many(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	const char *specs[] = { "mem:size=8M", file_spec("iov.img", NULL) };
	enum { N = 256 };
	static struct iovec wv[N], rv[N];
	unsigned char *w = malloc(N * 512), *r = malloc(N * 512);

	for (unsigned s = 0; s < 2; s++) {
		struct nexus_dev *dev = unit_open(ctx, specs[s]);

		unit_fill(w, N * 512, 10 + s);
		memset(r, 0, N * 512);
		/* written backwards: entry i holds block N-1-i */
		for (unsigned i = 0; i < N; i++) {
			wv[i] = (struct iovec){ w + (N - 1 - i) * 512, 512 };
			rv[i] = (struct iovec){ r + i * 512, 512 };
		}
		EXPECT_EQ_MSG(nexus_dev_pwritev(dev, wv, N, 8192, 0), N * 512);
		EXPECT_EQ_MSG(nexus_dev_preadv(dev, rv, N, 8192), N * 512);
		for (unsigned i = 0; i < N; i++)
			if (memcmp(r + i * 512, w + (N - 1 - i) * 512, 512)) {
				CU_FAIL("iovec entry read back wrong");
				break;
			}
		/* zero-length entries in the middle are fine */
		wv[1].iov_len = 0;
		EXPECT_EQ_MSG(nexus_dev_pwritev(dev, wv, 2, 0, 0), 512);
		nexus_dev_close(dev);
	}
	free(w);
	free(r);
	nexus_ctx_destroy(ctx);
}

/* ---- bad requests: negative errno + message, never a callback ---- */

static void test_bad_requests(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct nexus_dev *dev = unit_open(ctx, "mem:size=1M");
	struct nexus_dev *ro;
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	struct counter c = { 0 };
	size_t huge;
	char *big, buf[1024] = { 0 };
	struct iovec iov[2];
	static struct iovec many[IOV_MAX + 1];

	EXPECT_OK(nexus_dev_get_info(dev, &info));
	CU_ASSERT_EQUAL(info.logical_block_size, 512);
	/* past the end */
	EXPECT_ERR(nexus_dev_pread(dev, buf, 512, 1 << 20), -EINVAL,
		   "past the end", "size 1048576");
	EXPECT_ERR(nexus_dev_pread(dev, buf, 1024, (1 << 20) - 512), -EINVAL,
		   "past the end");
	EXPECT_ERR(nexus_dev_pwrite(dev, buf, 512, UINT64_MAX - 511, 0),
		   -EINVAL, "past the end");
	EXPECT_ERR(nexus_dev_trim(dev, 512, UINT64_MAX, 0), -EINVAL,
		   "past the end");
	EXPECT_ERR(nexus_dev_write_zeroes(dev, 1 << 20, 512, 0), -EINVAL,
		   "past the end");
	/* zero length */
	EXPECT_ERR(nexus_dev_pread(dev, buf, 0, 0), -EINVAL, "zero-length");
	EXPECT_ERR(nexus_dev_pwrite(dev, buf, 0, 0, 0), -EINVAL,
		   "zero-length");
	EXPECT_ERR(nexus_dev_trim(dev, 0, 0, 0), -EINVAL, "zero-length");
	EXPECT_ERR(nexus_dev_write_zeroes(dev, 0, 0, 0), -EINVAL,
		   "zero-length");
	/* misaligned offset or length */
	EXPECT_ERR(nexus_dev_pread(dev, buf, 512, 100), -EINVAL, "aligned",
		   "512");
	EXPECT_ERR(nexus_dev_pwrite(dev, buf, 100, 0, 0), -EINVAL, "aligned");
	EXPECT_ERR(nexus_dev_trim(dev, 1, 512, 0), -EINVAL, "aligned");
	/* bad iovecs */
	EXPECT_ERR(nexus_dev_preadv(dev, iov, 0, 0), -EINVAL, "iovec");
	EXPECT_ERR(nexus_dev_preadv(dev, iov, -1, 0), -EINVAL, "iovec");
	for (unsigned i = 0; i <= IOV_MAX; i++)
		many[i] = (struct iovec){ buf, 0 };
	many[0].iov_len = 512;
	EXPECT_ERR(nexus_dev_preadv(dev, many, IOV_MAX + 1, 0), -EINVAL,
		   "iovec");
	EXPECT_EQ_MSG(nexus_dev_preadv(dev, many, IOV_MAX, 0), 512);
	/* lengths that wrap around 2^64 to a small total */
	iov[0] = (struct iovec){ buf, SIZE_MAX };
	iov[1] = (struct iovec){ buf, 513 };
	EXPECT_ERR(nexus_dev_preadv(dev, iov, 2, 0), -EINVAL, "max_io_size");
	iov[0] = (struct iovec){ buf, 512 };
	iov[1] = (struct iovec){ NULL, 512 };
	EXPECT_ERR(nexus_dev_pwritev(dev, iov, 2, 0, 0), -EINVAL, "NULL",
		   "entry 1");
	/* unknown operations */
	iov[0] = (struct iovec){ buf, 512 };
	EXPECT_ERR(test_submit(dev, NEXUS_OP_BLOCK_STATUS + 1, iov, 1, 0, 512, 0,
				    count_cb, &c),
		   -EINVAL, "unknown operation");
	EXPECT_ERR(test_submit(dev, -1, iov, 1, 0, 512, 0, count_cb, &c),
		   -EINVAL, "unknown operation -1");
	EXPECT_ERR(test_submit(dev, INT_MAX, iov, 1, 0, 512, 0, count_cb,
				    &c),
		   -EINVAL, "unknown operation");
	/* flags this library does not know are refused, not ignored */
	EXPECT_ERR(test_submit(dev, NEXUS_OP_WRITE, iov, 1, 0, 512,
				    1u << 31, count_cb, &c),
		   -EINVAL, "flags");
	EXPECT_ERR(nexus_dev_pwrite(dev, buf, 512, 0, 1u << 7), -EINVAL,
		   "flags");
	nexus_dev_close(dev);

	/* larger than max_io_size, on a device big enough */
	dev = unit_open(ctx, "mem:size=1G");
	EXPECT_OK(nexus_dev_get_info(dev, &info));
	huge = (size_t)info.max_io_size + 512;
	big = calloc(1, huge);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	EXPECT_ERR(nexus_dev_pread(dev, big, huge, 0), -EINVAL, "max_io_size");
	EXPECT_ERR(nexus_dev_pwrite(dev, big, huge, 0, 0), -EINVAL,
		   "max_io_size");
	EXPECT_EQ_MSG(nexus_dev_pread(dev, big, info.max_io_size, 0),
		      info.max_io_size);
	/* TRIM and WRITE_ZEROES are not limited by max_io_size */
	EXPECT_OK(nexus_dev_trim(dev, 0, 1ull << 30, 0));
	EXPECT_OK(nexus_dev_write_zeroes(dev, 0, 1ull << 30, 0));
	free(big);
	nexus_dev_close(dev);

	/* writes on a read-only device */
	dev = unit_open(ctx, file_spec("ro.img", NULL));
	nexus_dev_close(dev);
	{
		char spec[600];

		snprintf(spec, sizeof(spec), "file:%s,readonly=on",
			 unit_join(scratch, "ro.img"));
		ro = unit_open(ctx, spec);
	}
	EXPECT_OK(nexus_dev_get_info(ro, &info));
	CU_ASSERT(info.flags & NEXUS_DEV_READ_ONLY);
	EXPECT_ERR(nexus_dev_pwrite(ro, buf, 512, 0, 0), -EROFS, "read-only");
	EXPECT_ERR(nexus_dev_trim(ro, 0, 512, 0), -EROFS, "read-only");
	EXPECT_ERR(nexus_dev_write_zeroes(ro, 0, 512, 0), -EROFS,
		   "read-only");
	EXPECT_EQ_MSG(nexus_dev_pread(ro, buf, 512, 0), 512);
	EXPECT_OK(nexus_dev_flush(ro));
	nexus_dev_close(ro);

	unit_sleep_ms(10);
	CU_ASSERT_EQUAL(atomic_load(&c.calls), 0);
	nexus_ctx_destroy(ctx);
}

/* ---- many application threads submitting at once ---- */

struct worker {
	struct nexus_dev *dev;
	unsigned id, n;
	unsigned char *data;
	struct counter c;
	int bad;
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	const size_t bs = 512;
	uint64_t base = (uint64_t)w->id * w->n * bs;
	unsigned char rb[512];
	struct iovec *iov = calloc(w->n, sizeof(*iov));
	int submitted = 0;

	unit_fill(w->data, (size_t)w->n * bs, 100 + w->id);
	/* async writes, at most 64 in flight */
	for (unsigned i = 0; i < w->n; i++) {
		int rc;

		while (submitted - atomic_load(&w->c.calls) >= 64)
			usleep(50);
		iov[i] = (struct iovec){ w->data + i * bs, bs };
		do {
			rc = test_submit(w->dev, NEXUS_OP_WRITE, &iov[i], 1,
					      base + i * bs, 0, 0, count_cb,
					      &w->c);
			if (rc == -EAGAIN)
				usleep(50);
		} while (rc == -EAGAIN);
		if (rc) {
			w->bad++;
			break;
		}
		submitted++;
	}
	if (!wait_for(&w->c.calls, submitted))
		w->bad++;
	if (atomic_load(&w->c.errors))
		w->bad++;
	/* sync reads, verified */
	for (unsigned i = 0; i < w->n && !w->bad; i++) {
		if (nexus_dev_pread(w->dev, rb, bs, base + i * bs) != (ssize_t)bs ||
		    memcmp(rb, w->data + i * bs, bs))
			w->bad++;
	}
	free(iov);
	return NULL;
}

static void threads_on(struct nexus_ctx *ctx, const char *spec)
{
	enum { T = 8 };
	struct worker w[T];
	pthread_t th[T];
	unsigned n = unit_scale(10000, 50);
	struct nexus_dev *dev = unit_open(ctx, spec);
	struct nexus_dev_stats st = NEXUS_DEV_STATS_INIT;

	for (unsigned i = 0; i < T; i++) {
		w[i] = (struct worker){ .dev = dev, .id = i, .n = n };
		w[i].data = malloc((size_t)n * 512);
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, worker_fn,
						     &w[i]), 0);
	}
	for (unsigned i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(w[i].bad, 0);
		CU_ASSERT_EQUAL(atomic_load(&w[i].c.calls), (int)n);
		free(w[i].data);
	}
	/* a completion is counted just after its callback returns */
	for (int i = 0; i < 1000; i++) {
		EXPECT_OK(nexus_dev_get_stats(dev, &st));
		if (!st.in_flight)
			break;
		usleep(1000);
	}
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_WRITE).ops, (uint64_t)T * n);
	CU_ASSERT_EQUAL(unit_op(dev, NEXUS_OP_READ).ops, (uint64_t)T * n);
	CU_ASSERT_EQUAL(st.bytes_written, (uint64_t)T * n * 512);
	CU_ASSERT_EQUAL(st.in_flight, 0);
	nexus_dev_close(dev);
}

static void test_many_threads(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);

	threads_on(ctx, "mem:size=64M");
	{
		char spec[600];

		snprintf(spec, sizeof(spec), "file:%s,create=on,size=64M",
			 unit_join(scratch, "threads.img"));
		threads_on(ctx, spec);
	}
	nexus_ctx_destroy(ctx);
}

/* ---- calls made from a callback (a reactor thread) ---- */

struct in_cb {
	struct nexus_dev *dev;
	char buf[512];
	ssize_t pread_rc;
	int flush_rc;
	char msg[256];
	int submit_rc;
	bool on_reactor;
	struct counter inner;
	atomic_int done;
};

static void in_cb_fn(void *ud, int res)
{
	struct in_cb *s = ud;
	struct iovec iov = { s->buf, sizeof(s->buf) };

	(void)res;
	s->on_reactor = nexus_reactor_current() != NULL;
	s->pread_rc = nexus_dev_pread(s->dev, s->buf, sizeof(s->buf), 0);
	snprintf(s->msg, sizeof(s->msg), "%s", nexus_last_error());
	s->flush_rc = nexus_dev_flush(s->dev);
	/* closing from a callback is refused (logged), not a deadlock */
	nexus_dev_close(s->dev);
	/* async submission from a callback is fine */
	s->submit_rc = test_submit(s->dev, NEXUS_OP_READ, &iov, 1, 512, 0,
					0, count_cb, &s->inner);
	atomic_store(&s->done, 1);
}

/* A chain: each completion submits the next read from the callback. */
struct chain {
	struct nexus_dev *dev;
	char buf[512];
	struct iovec iov;
	int left;
	atomic_int finished;
	int err;
};

static void chain_cb(void *ud, int res)
{
	struct chain *c = ud;
	int rc;

	if (res != 512)
		c->err++;
	if (--c->left == 0) {
		atomic_store(&c->finished, 1);
		return;
	}
	rc = test_submit(c->dev, NEXUS_OP_READ, &c->iov, 1,
			      (uint64_t)(c->left % 64) * 512, 0, 0, chain_cb, c);
	if (rc) {
		c->err++;
		atomic_store(&c->finished, 1);
	}
}

static void test_from_callback(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);
	struct nexus_dev *dev = unit_open(ctx, "mem:size=1M");
	struct in_cb s = { .dev = dev };
	struct chain ch = { .dev = dev, .left = 1000 };
	struct counter c = { 0 };

	EXPECT_OK(test_submit(dev, NEXUS_OP_FLUSH, NULL, 0, 0, 0, 0,
				   in_cb_fn, &s));
	CU_ASSERT(wait_for(&s.done, 1));
	CU_ASSERT(s.on_reactor);
	CU_ASSERT_EQUAL(s.pread_rc, -EDEADLK);
	CU_ASSERT_PTR_NOT_NULL(strstr(s.msg, "deadlock"));
	CU_ASSERT_EQUAL(s.flush_rc, -EDEADLK);
	CU_ASSERT_EQUAL(s.submit_rc, 0);
	CU_ASSERT(wait_for(&s.inner.calls, 1));
	CU_ASSERT_EQUAL(atomic_load(&s.inner.last), 512);
	/* the device survived the refused close */
	EXPECT_EQ_MSG(nexus_dev_pread(dev, s.buf, 512, 0), 512);

	ch.iov = (struct iovec){ ch.buf, sizeof(ch.buf) };
	EXPECT_OK(test_submit(dev, NEXUS_OP_READ, &ch.iov, 1, 0, 0, 0,
				   chain_cb, &ch));
	CU_ASSERT(wait_for(&ch.finished, 1));
	CU_ASSERT_EQUAL(ch.left, 0);
	CU_ASSERT_EQUAL(ch.err, 0);
	(void)c;
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

/* ---- a full submission queue ---- */

static void block_reactor(void *arg)
{
	sem_t *s = arg;

	while (sem_wait(s) < 0 && errno == EINTR)
		;
}

struct flood {
	struct counter c;
	int accepted, eagain;
};

static void test_queue_full(void)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = NULL;
	struct nexus_dev *dev;
	struct counter c = { 0 }, never = { 0 };
	char buf[512] = { 0 };
	struct iovec iov = { buf, sizeof(buf) };
	struct flood f = { 0 };
	unsigned n = unit_scale(20000, 20);
	sem_t sem;

	o.reactors = 1;
	o.queue_capacity = 2;
	o.log_fn = unit_quiet_log;
	EXPECT_OK(nexus_ctx_create(&o, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	dev = unit_open(ctx, "mem:size=1M");

	/* hold the reactor so that nothing leaves the queue */
	sem_init(&sem, 0, 0);
	EXPECT_OK(nexus_reactor_post(nexus_ctx_reactor(ctx, 0), block_reactor,
				     &sem));
	EXPECT_OK(test_submit(dev, NEXUS_OP_READ, &iov, 1, 0, 0, 0,
				   count_cb, &c));
	EXPECT_OK(test_submit(dev, NEXUS_OP_READ, &iov, 1, 512, 0, 0,
				   count_cb, &c));
	EXPECT_ERR(test_submit(dev, NEXUS_OP_READ, &iov, 1, 1024, 0, 0,
				    count_cb, &never),
		   -EAGAIN, "queue", "full");
	sem_post(&sem);
	CU_ASSERT(wait_for(&c.calls, 2));

	/* a flood through the tiny queue: retry on -EAGAIN, all complete */
	for (unsigned i = 0; i < n; i++) {
		int rc;

		while ((rc = test_submit(dev, NEXUS_OP_READ, &iov, 1,
					      (i % 2048) * 512, 0, 0, count_cb,
					      &f.c)) == -EAGAIN)
			f.eagain++;
		CU_ASSERT_EQUAL(rc, 0);
		if (rc)
			break;
		f.accepted++;
	}
	CU_ASSERT(wait_for(&f.c.calls, f.accepted));
	CU_ASSERT_EQUAL(f.accepted, (int)n);
	/* synchronous calls retry by themselves */
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 512, 0, 0), 512);
	unit_sleep_ms(10);
	CU_ASSERT_EQUAL(atomic_load(&never.calls), 0);
	CU_ASSERT_EQUAL(atomic_load(&f.c.calls), f.accepted);
	nexus_dev_close(dev);
	sem_destroy(&sem);
	nexus_ctx_destroy(ctx);
}

static const struct unit_test tests[] = {
	{ "async rule: one callback or none", test_async_rule },
	{ "sync calls on mem, null, file", test_sync_ops },
	{ "iovec of 256 entries", test_iovec_many },
	{ "bad requests", test_bad_requests },
	{ "8 threads submitting at once", test_many_threads },
	{ "calls from a callback", test_from_callback },
	{ "full submission queue: -EAGAIN", test_queue_full },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main_scratch("io", tests, &scratch);
}
