/* SPDX-License-Identifier: MIT */
/* The nbd source against a real NBD server (nbdkit, qemu-nbd, our own
 * export), through the public API only.  The shell wrappers
 * (nbd-client-*.sh) start the server and run one suite:
 *
 *   nbd-client-test SUITE PIPELINE [ARG]
 *
 *   rw        patterns, many I/Os in flight, iovecs, app threads on every
 *             reactor, large I/O, flush/FUA, write-zeroes, trim, bounds
 *   basic     rw without flush, FUA, write-zeroes and trim
 *   bs        block status on a sparse export (64 KiB written at 1 MiB)
 *   ro        a read-only export refuses writes with -EROFS
 *   noexport  opening an export the server does not have fails clearly
 *   errors    server errors become errno: ARG is a trigger file that
 *             makes the server fail writes with ENOSPC, reads with EIO
 *   stall     the server stops answering: io-timeout fails the I/O
 *   kill      ARG is the server's pid: killed with I/O in flight, every
 *             I/O completes with an error, later I/O fails clearly
 *   close     nexus_dev_close with I/O in flight waits for all of it
 *
 * Every suite runs under a watchdog: a hang fails. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nexus/nexus.h>

#include "../bstatus.h"
#include "../submit.h"

static const char *pipeline, *arg;
static struct nexus_ctx *ctx;

/* everything the library logs, to check what it says */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[65536];
static size_t loglen;

static void log_fn(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level <= NEXUS_LOG_WARN)
		fprintf(stderr, "  [log %d] %s\n", level, msg);
	pthread_mutex_lock(&log_lock);
	loglen += (size_t)snprintf(logbuf + loglen, sizeof(logbuf) - loglen,
				   "%s\n", msg);
	if (loglen >= sizeof(logbuf))
		loglen = 0;
	pthread_mutex_unlock(&log_lock);
}

/* events go to the same text, as "event KIND OLD->NEW (REASON)" */
static void event_fn(void *ud, const struct nexus_event_info *e)
{
	char line[512];

	(void)ud;
	snprintf(line, sizeof(line), "event %s %s->%s (%s) error %d: %s",
		 nexus_event_kind_name(e->kind),
		 nexus_dev_state_name(e->old_state),
		 nexus_dev_state_name(e->new_state),
		 nexus_reason_name(e->reason), e->error, e->message);
	log_fn(NULL, NEXUS_LOG_INFO, line);
}

static bool logged(const char *what)
{
	bool found;

	pthread_mutex_lock(&log_lock);
	found = strstr(logbuf, what) != NULL;
	pthread_mutex_unlock(&log_lock);
	return found;
}

#define CHECK_RC(expr, want)                                                \
	do {                                                                \
		long long rc_ = (long long)(expr);                          \
		if (rc_ != (long long)(want))                               \
			fprintf(stderr, "%s:%d: %s = %lld, want %lld (%s)\n", \
				__FILE__, __LINE__, #expr, rc_,             \
				(long long)(want), nexus_last_error());     \
		CU_ASSERT_EQUAL(rc_, (long long)(want));                    \
	} while (0)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void fill(uint8_t *b, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
}

static bool is_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static struct nexus_dev *open_dev(void)
{
	struct nexus_dev *dev = NULL;
	int rc = nexus_dev_open(ctx, pipeline, &dev);

	if (rc)
		fprintf(stderr, "open %s: %d (%s)\n", pipeline, rc,
			nexus_last_error());
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return dev;
}

static struct nexus_dev_info get_info(struct nexus_dev *dev)
{
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;

	CU_ASSERT_EQUAL(nexus_dev_get_info(dev, &in), 0);
	return in;
}

/* ---- async helper: a counter of completions ---- */

struct waiter {
	atomic_int done, errors;
	atomic_int first_error;
};

static void wcb(void *ud, int res)
{
	struct waiter *w = ud;

	if (res < 0) {
		int zero = 0;

		atomic_compare_exchange_strong(&w->first_error, &zero, res);
		atomic_fetch_add(&w->errors, 1);
	}
	atomic_fetch_add(&w->done, 1);
}

static bool wait_for(struct waiter *w, int n, unsigned ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;

	while (atomic_load(&w->done) < n) {
		if (now_ns() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* ---- rw ---- */

static void t_info(void)
{
	struct nexus_dev *dev = open_dev();
	struct nexus_dev_info in = get_info(dev);

	printf("\n  %s: size %llu lbs %u pbs %u max_io %u ops 0x%x flags 0x%x ",
	       pipeline, (unsigned long long)in.dev_size,
	       in.logical_block_size, in.physical_block_size, in.max_io_size,
	       in.ops, in.flags);
	CU_ASSERT(in.dev_size >= (16u << 20));
	CU_ASSERT_STRING_EQUAL(in.driver, "nbd");
	CU_ASSERT(in.ops & NEXUS_OP_BIT(NEXUS_OP_READ));
	CU_ASSERT(in.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE));
	CU_ASSERT(in.max_io_size >= (1u << 20));
	nexus_dev_close(dev);
}

static void t_patterns(void)
{
	struct nexus_dev *dev = open_dev();
	struct nexus_dev_info in = get_info(dev);
	static const uint64_t offs[] = { 0, 4096, 3 << 20, 12345 * 512 };
	static const size_t lens[] = { 4096, 512 * 7, 1 << 20, 4 << 20 };
	uint8_t *w = malloc(4 << 20), *r = malloc(4 << 20);

	for (unsigned i = 0; i < 4; i++) {
		size_t len = lens[i];
		uint64_t off = offs[i];

		if (len % in.logical_block_size || len > in.max_io_size)
			continue;
		fill(w, len, i + 1);
		memset(r, 0xee, len);
		CHECK_RC(nexus_dev_pwrite(dev, w, len, off, 0), len);
		CHECK_RC(nexus_dev_pread(dev, r, len, off), len);
		CU_ASSERT(memcmp(w, r, len) == 0);
	}
	/* the last block of the device */
	fill(w, 4096, 99);
	CHECK_RC(nexus_dev_pwrite(dev, w, 4096, in.dev_size - 4096, 0), 4096);
	CHECK_RC(nexus_dev_pread(dev, r, 4096, in.dev_size - 4096), 4096);
	CU_ASSERT(memcmp(w, r, 4096) == 0);
	free(w);
	free(r);
	nexus_dev_close(dev);
}

/* More I/Os in flight than the connection has cookies. */
static void t_many_inflight(void)
{
	enum { N = 700, BS = 4096 };
	struct nexus_dev *dev = open_dev();
	uint8_t *w = malloc((size_t)N * BS), *r = malloc((size_t)N * BS);
	struct iovec *iov = calloc(N, sizeof(*iov));
	struct waiter wt = { 0 }, rd = { 0 };
	int rc;

	fill(w, (size_t)N * BS, 7);
	for (int i = 0; i < N; i++) {
		iov[i].iov_base = w + (size_t)i * BS;
		iov[i].iov_len = BS;
		/* scattered offsets: the server may answer in any order */
		rc = test_submit(dev, NEXUS_OP_WRITE, &iov[i], 1,
				      (uint64_t)((i * 37) % N) * BS, 0, 0, wcb,
				      &wt);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc)
			atomic_fetch_add(&wt.done, 1);
	}
	CU_ASSERT_FATAL(wait_for(&wt, N, 30000));
	CU_ASSERT_EQUAL(atomic_load(&wt.errors), 0);
	memset(r, 0, (size_t)N * BS);
	for (int i = 0; i < N; i++) {
		iov[i].iov_base = r + (size_t)i * BS;
		rc = test_submit(dev, NEXUS_OP_READ, &iov[i], 1,
				      (uint64_t)((i * 37) % N) * BS, 0, 0, wcb,
				      &rd);
		CU_ASSERT_EQUAL(rc, 0);
		if (rc)
			atomic_fetch_add(&rd.done, 1);
	}
	CU_ASSERT_FATAL(wait_for(&rd, N, 30000));
	CU_ASSERT_EQUAL(atomic_load(&rd.errors), 0);
	CU_ASSERT(memcmp(w, r, (size_t)N * BS) == 0);
	free(iov);
	free(w);
	free(r);
	nexus_dev_close(dev);
}

static void t_iovec(void)
{
	struct nexus_dev *dev = open_dev();
	uint8_t w[16384], r[16384 + 2];
	struct iovec wv[3] = { { w, 1000 }, { w + 1000, 7192 }, { w + 8192, 8192 } };
	/* read back split differently, with an empty entry in the middle */
	struct iovec rv[4] = { { r, 1 }, { r + 1, 0 }, { r + 1, 12287 },
			       { r + 12288, 4096 } };

	fill(w, sizeof(w), 3);
	memset(r, 0x5a, sizeof(r));
	CHECK_RC(nexus_dev_pwritev(dev, wv, 3, 1 << 20, 0), 16384);
	CHECK_RC(nexus_dev_preadv(dev, rv, 4, 1 << 20), 16384);
	CU_ASSERT(memcmp(w, r, 16384) == 0);
	CU_ASSERT(r[16384] == 0x5a && r[16385] == 0x5a);
	nexus_dev_close(dev);
}

struct thr {
	struct nexus_dev *dev;
	int id;
	int fails;
};

static void *thread_rw(void *p)
{
	struct thr *t = p;
	uint8_t w[8192], r[8192];

	for (int i = 0; i < 50; i++) {
		uint64_t off = (8u << 20) + ((uint64_t)t->id * 64 + i) * 8192;

		fill(w, sizeof(w), (uint64_t)t->id * 1000 + i);
		if (nexus_dev_pwrite(t->dev, w, sizeof(w), off, 0) != 8192 ||
		    nexus_dev_pread(t->dev, r, sizeof(r), off) != 8192 ||
		    memcmp(w, r, sizeof(w)))
			t->fails++;
	}
	return NULL;
}

/* Application threads land on different reactors: I/O is forwarded to
 * the connection's reactor when it owns none. */
static void t_threads(void)
{
	struct nexus_dev *dev = open_dev();
	pthread_t th[4];
	struct thr t[4];

	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){ dev, i, 0 };
		pthread_create(&th[i], NULL, thread_rw, &t[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(t[i].fails, 0);
	}
	nexus_dev_close(dev);
}

static void t_flush_fua(void)
{
	struct nexus_dev *dev = open_dev();
	struct nexus_dev_info in = get_info(dev);
	uint8_t w[4096], r[4096];

	fill(w, sizeof(w), 11);
	CHECK_RC(nexus_dev_pwrite(dev, w, 4096, 65536, NEXUS_IO_FUA), 4096);
	CHECK_RC(nexus_dev_pread(dev, r, 4096, 65536), 4096);
	CU_ASSERT(memcmp(w, r, 4096) == 0);
	if (in.ops & NEXUS_OP_BIT(NEXUS_OP_FLUSH))
		CHECK_RC(nexus_dev_flush(dev), 0);
	else
		CHECK_RC(nexus_dev_flush(dev), -EOPNOTSUPP);
	nexus_dev_close(dev);
}

static void t_zero_trim(void)
{
	struct nexus_dev *dev = open_dev();
	struct nexus_dev_info in = get_info(dev);
	uint8_t *w = malloc(1 << 20), *r = malloc(1 << 20);
	uint64_t off = 2 << 20;
	int rc;

	if (in.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES)) {
		static const uint32_t fl[] = { 0, NEXUS_IO_NO_UNMAP,
					       NEXUS_IO_FUA };

		for (unsigned i = 0; i < 3; i++) {
			fill(w, 1 << 20, 20 + i);
			CHECK_RC(nexus_dev_pwrite(dev, w, 1 << 20, off, 0),
				 1 << 20);
			CHECK_RC(nexus_dev_write_zeroes(dev, off + 4096,
							65536, fl[i]), 0);
			CHECK_RC(nexus_dev_pread(dev, r, 1 << 20, off), 1 << 20);
			CU_ASSERT(memcmp(r, w, 4096) == 0);
			CU_ASSERT(is_zero(r + 4096, 65536));
			CU_ASSERT(memcmp(r + 4096 + 65536, w + 4096 + 65536,
					 (1 << 20) - 4096 - 65536) == 0);
		}
		rc = nexus_dev_write_zeroes(dev, off, 65536,
					    NEXUS_IO_FAST_ZERO);
		CU_ASSERT(rc == 0 || rc == -EOPNOTSUPP);
	} else {
		CHECK_RC(nexus_dev_write_zeroes(dev, off, 65536, 0),
			 -EOPNOTSUPP);
	}
	if (in.ops & NEXUS_OP_BIT(NEXUS_OP_TRIM))
		CHECK_RC(nexus_dev_trim(dev, off, 1 << 20, 0), 0);
	else
		CHECK_RC(nexus_dev_trim(dev, off, 1 << 20, 0), -EOPNOTSUPP);
	free(w);
	free(r);
	nexus_dev_close(dev);
}

static void t_bounds(void)
{
	struct nexus_dev *dev = open_dev();
	struct nexus_dev_info in = get_info(dev);
	uint8_t b[8192];

	CHECK_RC(nexus_dev_pread(dev, b, 8192, in.dev_size - 4096), -EINVAL);
	CHECK_RC(nexus_dev_pwrite(dev, b, 4096, in.dev_size, 0), -EINVAL);
	/* the device still works */
	CHECK_RC(nexus_dev_pread(dev, b, 4096, 0), 4096);
	nexus_dev_close(dev);
}

/* ---- bs ---- */

static uint32_t flags_at(const struct nexus_extent *e, int n, uint64_t off)
{
	for (int i = 0; i < n; i++)
		if (off >= e[i].offset && off < e[i].offset + e[i].length)
			return e[i].flags;
	return 0xff;
}

static void t_block_status(void)
{
	struct nexus_dev *dev = open_dev();
	struct nexus_dev_info in = get_info(dev);
	struct nexus_extent e[64];
	uint8_t w[65536];
	uint64_t sum = 0;
	int n;

	CU_ASSERT(in.flags & NEXUS_DEV_BLOCK_STATUS);
	fill(w, sizeof(w), 5);
	CHECK_RC(nexus_dev_pwrite(dev, w, sizeof(w), 1 << 20, 0), 65536);
	n = nexus_dev_block_status(dev, 0, 4 << 20, e, 64);
	CU_ASSERT_FATAL(n >= 3);
	for (int i = 0; i < n; i++) {
		printf("\n    [%llu, +%llu) flags %u", (unsigned long long)e[i].offset,
		       (unsigned long long)e[i].length, e[i].flags);
		CU_ASSERT_EQUAL(e[i].offset, sum);
		sum += e[i].length;
	}
	CU_ASSERT(sum <= (4u << 20));
	CU_ASSERT_EQUAL(flags_at(e, n, 0),
			NEXUS_EXTENT_HOLE | NEXUS_EXTENT_ZERO);
	CU_ASSERT_EQUAL(flags_at(e, n, (1 << 20) + 100) & NEXUS_EXTENT_HOLE, 0);
	CU_ASSERT(flags_at(e, n, 3 << 20) & NEXUS_EXTENT_ZERO ||
		  sum <= (3u << 20));
	/* the same on every reactor (it used to be refused there) */
	for (int r = 0; r < nexus_ctx_reactor_count(ctx); r++) {
		struct nexus_extent o[64];

		CU_ASSERT_EQUAL(test_block_status(nexus_ctx_reactor(ctx, r), dev,
						  0, 4 << 20, o, 64), n);
		CU_ASSERT(test_extents_equal(o, e, n));
	}
	/* one extent only, from an offset inside the data */
	n = nexus_dev_block_status(dev, (1 << 20) + 4096, 1 << 20, e, 1);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(e[0].offset, (1 << 20) + 4096);
	CU_ASSERT(e[0].length <= (1u << 20));
	CU_ASSERT_EQUAL(e[0].flags & NEXUS_EXTENT_HOLE, 0);
	nexus_dev_close(dev);
}

/* ---- ro ---- */

static void t_readonly(void)
{
	struct nexus_dev *dev = open_dev();
	struct nexus_dev_info in = get_info(dev);
	uint8_t b[4096];

	CU_ASSERT(in.flags & NEXUS_DEV_READ_ONLY);
	CHECK_RC(nexus_dev_pread(dev, b, 4096, 0), 4096);
	CHECK_RC(nexus_dev_pwrite(dev, b, 4096, 0, 0), -EROFS);
	CU_ASSERT(strstr(nexus_last_error(), "read-only") != NULL);
	if (in.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES))
		CHECK_RC(nexus_dev_write_zeroes(dev, 0, 4096, 0), -EROFS);
	nexus_dev_close(dev);
}

/* ---- noexport ---- */

static void t_noexport(void)
{
	struct nexus_dev *dev = NULL;
	int rc = nexus_dev_open(ctx, pipeline, &dev);

	printf("\n  -> %d: %s ", rc, nexus_last_error());
	CU_ASSERT_EQUAL(rc, -ENOENT);
	CU_ASSERT(strstr(nexus_last_error(), "no-such-export") != NULL);
	CU_ASSERT_PTR_NULL(dev);
}

/* ---- errors ---- */

static void t_server_errors(void)
{
	struct nexus_dev *dev = open_dev();
	uint8_t b[4096];
	FILE *f;

	fill(b, sizeof(b), 1);
	CHECK_RC(nexus_dev_pwrite(dev, b, 4096, 0, 0), 4096);
	f = fopen(arg, "w");
	CU_ASSERT_FATAL(f != NULL);
	fclose(f);
	CHECK_RC(nexus_dev_pwrite(dev, b, 4096, 0, 0), -ENOSPC);
	CHECK_RC(nexus_dev_pread(dev, b, 4096, 0), -EIO);
	unlink(arg);
	/* errors are per request: the connection goes on */
	CHECK_RC(nexus_dev_pwrite(dev, b, 4096, 4096, 0), 4096);
	CHECK_RC(nexus_dev_pread(dev, b, 4096, 0), 4096);
	nexus_dev_close(dev);
}

/* ---- stall ---- */

static void t_stall(void)
{
	struct nexus_dev *dev = open_dev();
	uint8_t b[4096];
	uint64_t t0 = now_ns(), ms;

	/* the server delays reads far beyond io-timeout */
	CU_ASSERT_EQUAL(nexus_dev_get_state(dev), NEXUS_DEV_STATE_ONLINE);
	CHECK_RC(nexus_dev_pread(dev, b, 4096, 0), -ETIMEDOUT);
	ms = (now_ns() - t0) / 1000000;
	printf("\n  failed after %llu ms ", (unsigned long long)ms);
	CU_ASSERT(ms >= 900 && ms < 10000);
	CHECK_RC(nexus_dev_pread(dev, b, 4096, 0), -ENOTCONN);
	CU_ASSERT(logged("io-timeout"));
	/* the event stream said so, and the device is faulted */
	CU_ASSERT_EQUAL(nexus_dev_get_state(dev), NEXUS_DEV_STATE_FAULTED);
	for (int i = 0; i < 200 && !logged("event dev-state"); i++)
		usleep(10000);
	CU_ASSERT(logged("event io-timeout online->online (timeout) "
			 "error -110"));
	CU_ASSERT(logged("event dev-state online->faulted (timeout)"));
	nexus_dev_close(dev);
}

/* ---- kill ---- */

struct loop {
	struct nexus_dev *dev;
	atomic_int inflight, errors, ok;
	atomic_bool stop;
	uint8_t buf[64][4096];
	struct iovec iov[64];
};

static void loop_cb(void *ud, int res);

static void loop_submit(struct loop *l, int i)
{
	int rc = test_submit(l->dev, i % 2 ? NEXUS_OP_READ : NEXUS_OP_WRITE,
				  &l->iov[i], 1, (uint64_t)i * 4096, 0, 0,
				  loop_cb, l);

	if (rc) {
		atomic_fetch_add(&l->errors, 1);
		atomic_fetch_sub(&l->inflight, 1);
	}
}

static void loop_cb(void *ud, int res)
{
	struct loop *l = ud;

	if (res < 0)
		atomic_fetch_add(&l->errors, 1);
	else
		atomic_fetch_add(&l->ok, 1);
	atomic_fetch_sub(&l->inflight, 1);
}

static void t_kill(void)
{
	struct loop *l = calloc(1, sizeof(*l));
	pid_t pid = (pid_t)atoi(arg);
	uint64_t t0, end;
	uint8_t b[4096];
	bool killed = false;

	l->dev = open_dev();
	for (int i = 0; i < 64; i++)
		l->iov[i] = (struct iovec){ l->buf[i], 4096 };
	t0 = now_ns();
	end = t0 + 20000000000ull;
	/* keep 64 I/Os in flight; kill the server in the middle (after
	 * some successes, or a second on a slow machine) */
	while (now_ns() < end) {
		for (int i = 0; i < 64 && atomic_load(&l->inflight) < 64; i++) {
			atomic_fetch_add(&l->inflight, 1);
			loop_submit(l, i);
		}
		if (!killed && (atomic_load(&l->ok) > 2000 ||
				now_ns() - t0 > 1000000000ull)) {
			CU_ASSERT_EQUAL(kill(pid, SIGKILL), 0);
			killed = true;
		}
		if (killed && atomic_load(&l->errors) > 0)
			break;
		sleep_ms(1);
	}
	CU_ASSERT(killed);
	/* every I/O completes */
	end = now_ns() + 10000000000ull;
	while (atomic_load(&l->inflight) > 0 && now_ns() < end)
		sleep_ms(1);
	CU_ASSERT_EQUAL(atomic_load(&l->inflight), 0);
	CU_ASSERT(atomic_load(&l->errors) > 0);
	printf("\n  ok %d errors %d ", atomic_load(&l->ok),
	       atomic_load(&l->errors));
	/* later I/O fails at once and says why */
	CHECK_RC(nexus_dev_pread(l->dev, b, 4096, 0), -ENOTCONN);
	CU_ASSERT(logged("closed the connection") ||
		  logged("Connection reset"));
	nexus_dev_close(l->dev);
	free(l);
}

/* ---- close ---- */

static void t_close_inflight(void)
{
	enum { N = 256 };
	struct nexus_dev *dev = open_dev();
	struct waiter w = { 0 };
	static uint8_t buf[N][4096];
	static struct iovec iov[N];
	int submitted = 0;

	for (int i = 0; i < N; i++) {
		iov[i] = (struct iovec){ buf[i], 4096 };
		if (test_submit(dev, i % 3 ? NEXUS_OP_READ : NEXUS_OP_WRITE,
				     &iov[i], 1, (uint64_t)i * 4096, 0, 0, wcb,
				     &w) == 0)
			submitted++;
	}
	CU_ASSERT_EQUAL(submitted, N);
	nexus_dev_close(dev);
	/* close returned: every callback has run, successfully */
	CU_ASSERT_EQUAL(atomic_load(&w.done), submitted);
	CU_ASSERT_EQUAL(atomic_load(&w.errors), 0);
}

/* ---- main ---- */

struct suite {
	const char *name;
	struct {
		const char *name;
		CU_TestFunc fn;
	} tests[10];
};

static const struct suite suites[] = {
	{ "rw", { { "info", t_info }, { "patterns", t_patterns },
		  { "many in flight", t_many_inflight }, { "iovec", t_iovec },
		  { "threads", t_threads }, { "flush and FUA", t_flush_fua },
		  { "write zeroes and trim", t_zero_trim },
		  { "bounds", t_bounds } } },
	{ "basic", { { "info", t_info }, { "patterns", t_patterns },
		     { "many in flight", t_many_inflight },
		     { "iovec", t_iovec }, { "threads", t_threads },
		     { "bounds", t_bounds } } },
	{ "bs", { { "block status", t_block_status } } },
	{ "ro", { { "read-only", t_readonly } } },
	{ "noexport", { { "unknown export", t_noexport } } },
	{ "errors", { { "server errors", t_server_errors } } },
	{ "stall", { { "io-timeout", t_stall } } },
	{ "kill", { { "server killed", t_kill } } },
	{ "close", { { "close in flight", t_close_inflight } } },
};

int main(int argc, char **argv)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	const struct suite *s = NULL;
	CU_pSuite cs;
	unsigned fails;

	if (argc < 3) {
		fprintf(stderr, "usage: %s SUITE PIPELINE [ARG]\n", argv[0]);
		return 2;
	}
	for (unsigned i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		if (!strcmp(suites[i].name, argv[1]))
			s = &suites[i];
	if (!s) {
		fprintf(stderr, "unknown suite %s\n", argv[1]);
		return 2;
	}
	pipeline = argv[2];
	arg = argc > 3 ? argv[3] : "";
	alarm(120); /* watchdog: a hang is a failure */
	o.reactors = 2;
	o.log_fn = log_fn;
	o.log_level = NEXUS_LOG_INFO;
	o.event_fn = event_fn;
	if (nexus_ctx_create(&o, &ctx)) {
		fprintf(stderr, "nexus_ctx_create: %s\n", nexus_last_error());
		return 1;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	cs = CU_add_suite(argv[1], NULL, NULL);
	for (unsigned i = 0; i < 10 && s->tests[i].name; i++)
		CU_add_test(cs, s->tests[i].name, s->tests[i].fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	printf("suite %s on %s\n", argv[1], pipeline);
	CU_basic_run_tests();
	fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	nexus_ctx_destroy(ctx);
	return fails ? 1 : 0;
}
