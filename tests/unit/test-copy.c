/* SPDX-License-Identifier: MIT */
/* The copy engine (nexus_copy_*) on real files: a sparse source (holes
 * from truncate and fallocate's punch, written zeroes, data) copied byte
 * for byte with its holes kept; progress reports; a list of ranges and a
 * next_range callback; the lock hook, granted at once and later from
 * another thread; the rate limit and changing it while the job runs;
 * pause and resume; cancel; verify finding a difference; misuse. */
#include <fcntl.h>
#include <linux/falloc.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "unit.h"

#define NX_ARRAY(a) (sizeof(a) / sizeof((a)[0]))

#define MiB (1u << 20)
#define SIZE (16u * MiB)

static struct nexus_ctx *ctx;
static char *dir;

/* What the callbacks of a job saw. */
struct rec {
	pthread_mutex_t lock;
	int reports, finals, done_calls, done_result;
	bool backwards; /* bytes_done went down within a phase */
	int last_phase;
	uint64_t last_done;
	struct nexus_copy_progress final[4]; /* by phase */
	sem_t done;
	/* lock hook */
	int locks, unlocks, unlock_errors, held, max_held;
	bool pending;	/* answer NEXUS_COPY_LOCK_PENDING */
	int lock_error; /* refuse the Nth lock with -EPERM (0: never) */
	struct nexus_copy_chunk *waiting[512];
	unsigned nwaiting;
	/* next_range */
	const struct nexus_copy_range *ranges;
	unsigned nranges, next;
};

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	sem_init(&r->done, 0, 0);
	r->last_phase = -1;
}

static void rec_fini(struct rec *r)
{
	pthread_mutex_destroy(&r->lock);
	sem_destroy(&r->done);
}

static void on_progress(void *ud, const struct nexus_copy_progress *p)
{
	struct rec *r = ud;

	pthread_mutex_lock(&r->lock);
	r->reports++;
	if (p->phase == r->last_phase && p->bytes_done < r->last_done)
		r->backwards = true;
	r->last_phase = p->phase;
	r->last_done = p->bytes_done;
	if (p->flags & NEXUS_COPY_PROGRESS_FINAL) {
		r->finals++;
		if (p->phase >= 0 && p->phase < 4)
			r->final[p->phase] = *p;
	}
	pthread_mutex_unlock(&r->lock);
}

static void on_done(void *ud, int result)
{
	struct rec *r = ud;

	pthread_mutex_lock(&r->lock);
	r->done_calls++;
	r->done_result = result;
	pthread_mutex_unlock(&r->lock);
	sem_post(&r->done);
}

static int lock_cb(void *ud, uint64_t off, uint64_t len,
		   struct nexus_copy_chunk *chunk)
{
	struct rec *r = ud;
	int rc = 0;

	(void)off;
	(void)len;
	pthread_mutex_lock(&r->lock);
	r->locks++;
	if (r->lock_error && r->locks == r->lock_error) {
		rc = -EPERM;
	} else {
		r->held++;
		if (r->held > r->max_held)
			r->max_held = r->held;
		if (r->pending && r->nwaiting < NX_ARRAY(r->waiting)) {
			r->waiting[r->nwaiting++] = chunk;
			rc = NEXUS_COPY_LOCK_PENDING;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static void unlock_cb(void *ud, uint64_t off, uint64_t len, int result)
{
	struct rec *r = ud;

	(void)off;
	(void)len;
	pthread_mutex_lock(&r->lock);
	r->unlocks++;
	r->held--;
	if (result)
		r->unlock_errors++;
	pthread_mutex_unlock(&r->lock);
}

static int next_cb(void *ud, struct nexus_copy_range *range)
{
	struct rec *r = ud;

	if (r->next == r->nranges)
		return 0;
	*range = r->ranges[r->next++];
	return 1;
}

/* ---- files ---- */

static const char *path(const char *name)
{
	return unit_join(dir, name);
}

static const char *fspec(const char *name)
{
	static char b[4][600];
	static unsigned n;
	char *s = b[n++ % 4];

	snprintf(s, sizeof(b[0]), "file:%s", path(name));
	return s;
}

static void put(int fd, uint64_t off, size_t len, int seed)
{
	char *buf = malloc(len);

	if (seed < 0)
		memset(buf, 0, len);
	else
		unit_fill(buf, len, (uint64_t)seed);
	CU_ASSERT_EQUAL(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	free(buf);
}

/* SRC: holes (truncate; a punched hole), data, written zeroes. */
static void make_src(const char *name)
{
	int fd = open(path(name), O_CREAT | O_TRUNC | O_RDWR, 0644);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(ftruncate(fd, SIZE), 0);
	put(fd, 1 * MiB, 512 << 10, 1);
	put(fd, 5 * MiB + 4096, 8192, 2);
	put(fd, 8 * MiB, MiB, -1); /* written zeroes */
	put(fd, 10 * MiB, 2 * MiB, 3);
	/* a hole in the middle of data */
	CU_ASSERT_EQUAL(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  10 * MiB + 512 * 1024, 512 * 1024), 0);
	put(fd, SIZE - 65536, 65536, 4);
	close(fd);
}

/* A file of SIZE bytes: sparse (byte < 0) or filled with byte. */
static void make_dst(const char *name, int byte)
{
	int fd = open(path(name), O_CREAT | O_TRUNC | O_RDWR, 0644);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(ftruncate(fd, SIZE), 0);
	if (byte >= 0) {
		char *buf = malloc(MiB);

		memset(buf, byte, MiB);
		for (unsigned i = 0; i < SIZE / MiB; i++)
			CU_ASSERT_EQUAL(pwrite(fd, buf, MiB, (off_t)i * MiB),
					MiB);
		free(buf);
	}
	close(fd);
}

static uint64_t allocated(const char *name)
{
	struct stat st;

	CU_ASSERT_EQUAL(stat(path(name), &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* The first offset of [off, off+len) where a and b differ, or -1. */
static long long differ(const char *a, const char *b, uint64_t off,
			uint64_t len)
{
	int fa = open(path(a), O_RDONLY), fb = open(path(b), O_RDONLY);
	char *x = malloc(MiB), *y = malloc(MiB);
	long long at = -1;

	CU_ASSERT_FATAL(fa >= 0 && fb >= 0);
	while (len && at < 0) {
		size_t n = len < MiB ? len : MiB;

		CU_ASSERT_EQUAL(pread(fa, x, n, (off_t)off), (ssize_t)n);
		CU_ASSERT_EQUAL(pread(fb, y, n, (off_t)off), (ssize_t)n);
		for (size_t i = 0; i < n; i++)
			if (x[i] != y[i]) {
				at = (long long)(off + i);
				break;
			}
		off += n;
		len -= n;
	}
	close(fa);
	close(fb);
	free(x);
	free(y);
	return at;
}

/* Whether [off, off+len) of a file holds only @p byte. */
static bool holds(const char *name, uint64_t off, uint64_t len, int byte)
{
	int fd = open(path(name), O_RDONLY);
	unsigned char *x = malloc(MiB);
	bool ok = true;

	while (len && ok) {
		size_t n = len < MiB ? len : MiB;

		CU_ASSERT_EQUAL(pread(fd, x, n, (off_t)off), (ssize_t)n);
		for (size_t i = 0; i < n; i++)
			ok = ok && x[i] == byte;
		off += n;
		len -= n;
	}
	close(fd);
	free(x);
	return ok;
}

/* ---- running a job ---- */

struct pair {
	struct nexus_dev *src, *dst;
};

static struct pair open_pair(const char *s, const char *d)
{
	struct pair p = { unit_open(ctx, fspec(s)), unit_open(ctx, fspec(d)) };

	return p;
}

static void close_pair(struct pair *p)
{
	nexus_dev_close(p->dst);
	nexus_dev_close(p->src);
}

static struct nexus_copy *make_job(struct pair *p, struct nexus_copy_opts *o,
				   struct rec *r)
{
	struct nexus_copy *job = NULL;
	int rc;

	o->progress_fn = on_progress;
	o->user_data = r;
	rc = nexus_copy_create(p->src, p->dst, o, &job);
	if (rc)
		fprintf(stderr, "\nnexus_copy_create: %d %s\n", rc,
			nexus_last_error());
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return job;
}

/* Create, start, wait, destroy; the result, which the done callback got
 * exactly once. */
static int run(struct pair *p, struct nexus_copy_opts *o, struct rec *r)
{
	struct nexus_copy *job = make_job(p, o, r);
	int rc;

	EXPECT_OK(nexus_copy_start(job, on_done, r));
	rc = nexus_copy_wait(job);
	CU_ASSERT_EQUAL(nexus_copy_destroy(job), 0);
	CU_ASSERT_EQUAL(r->done_calls, 1);
	CU_ASSERT_EQUAL(r->done_result, rc);
	CU_ASSERT_FALSE(r->backwards);
	return rc;
}

/* ---- tests ---- */

static void test_sparse(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	const struct nexus_copy_progress *c, *v;
	struct rec r;
	struct pair p;
	uint64_t data = 512 * 1024 + 8192 + 3 * 512 * 1024 + 65536;

	make_src("s.img");
	make_dst("d.img", -1);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	o.flags = NEXUS_COPY_VERIFY;
	o.progress_interval_ms = 1;
	EXPECT_OK(run(&p, &o, &r));
	close_pair(&p);
	CU_ASSERT_EQUAL(differ("s.img", "d.img", 0, SIZE), -1);
	/* holes and written zeroes stay holes: data plus a block per extent */
	CU_ASSERT(allocated("d.img") <= data + 64 * 1024);
	CU_ASSERT_EQUAL(r.finals, 2);
	c = &r.final[NEXUS_COPY_PHASE_COPY];
	v = &r.final[NEXUS_COPY_PHASE_VERIFY];
	CU_ASSERT_EQUAL(c->bytes_total, SIZE);
	CU_ASSERT_EQUAL(c->bytes_done, SIZE);
	CU_ASSERT_EQUAL(c->data_bytes + c->zero_bytes, SIZE);
	CU_ASSERT(c->data_bytes >= data);
	CU_ASSERT(c->data_bytes <= data + 2 * MiB); /* zero blocks read */
	CU_ASSERT(c->skipped_bytes > 0 && c->skipped_bytes <= c->zero_bytes);
	CU_ASSERT(c->rate > 0 && c->elapsed_ns > 0);
	CU_ASSERT_EQUAL(c->error, 0);
	CU_ASSERT_EQUAL(c->in_flight, 0);
	CU_ASSERT_EQUAL(v->bytes_done, SIZE);
	CU_ASSERT_EQUAL(v->mismatch_offset, UINT64_MAX);
	rec_fini(&r);

	/* onto a DST full of 0xAA: zero ranges are zeroed, and punched */
	make_dst("d.img", 0xAA);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	o.flags = 0;
	EXPECT_OK(run(&p, &o, &r));
	close_pair(&p);
	CU_ASSERT_EQUAL(differ("s.img", "d.img", 0, SIZE), -1);
	CU_ASSERT(allocated("d.img") <= data + 64 * 1024);
	CU_ASSERT_EQUAL(r.final[NEXUS_COPY_PHASE_COPY].skipped_bytes, 0);
	rec_fini(&r);

	/* NO_SPARSE: every byte written */
	make_dst("d.img", -1);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	o.flags = NEXUS_COPY_NO_SPARSE;
	o.requests = 3;
	o.block_size = 65536;
	EXPECT_OK(run(&p, &o, &r));
	close_pair(&p);
	CU_ASSERT_EQUAL(differ("s.img", "d.img", 0, SIZE), -1);
	CU_ASSERT(allocated("d.img") >= SIZE);
	CU_ASSERT_EQUAL(r.final[NEXUS_COPY_PHASE_COPY].data_bytes, SIZE);
	rec_fini(&r);
}

static const struct nexus_copy_range some[] = {
	{ 1 * MiB + 65536, 65536 }, /* inside data */
	{ 4 * MiB, 2 * MiB },	    /* a hole, then data */
	{ 8 * MiB, MiB },	    /* written zeroes */
	{ SIZE - 4096, 4096 },	    /* the end */
	{ 12 * MiB, 1000 },	    /* unaligned: widened to 1024 */
};

/* Only the ranges changed, and hold SRC's bytes. */
static void check_ranges(void)
{
	uint64_t pos = 0;
	struct nexus_copy_range sorted[] = {
		{ 1 * MiB + 65536, 65536 }, { 4 * MiB, 2 * MiB },
		{ 8 * MiB, MiB }, { 12 * MiB, 1024 }, { SIZE - 4096, 4096 },
	};

	for (unsigned i = 0; i < NX_ARRAY(sorted); i++) {
		CU_ASSERT(holds("d.img", pos, sorted[i].offset - pos, 0xAA));
		CU_ASSERT_EQUAL(differ("s.img", "d.img", sorted[i].offset,
				       sorted[i].length), -1);
		pos = sorted[i].offset + sorted[i].length;
	}
	CU_ASSERT(holds("d.img", pos, SIZE - pos, 0xAA));
}

static void test_ranges(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	uint64_t total = 65536 + 2 * MiB + MiB + 4096 + 1024;
	struct rec r;
	struct pair p;

	make_src("s.img");
	make_dst("d.img", 0xAA);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	o.ranges = some;
	o.nranges = NX_ARRAY(some);
	o.flags = NEXUS_COPY_VERIFY;
	EXPECT_OK(run(&p, &o, &r));
	close_pair(&p);
	check_ranges();
	CU_ASSERT_EQUAL(r.final[NEXUS_COPY_PHASE_COPY].bytes_total, total);
	CU_ASSERT_EQUAL(r.final[NEXUS_COPY_PHASE_COPY].bytes_done, total);
	CU_ASSERT_EQUAL(r.final[NEXUS_COPY_PHASE_VERIFY].bytes_done, total);
	rec_fini(&r);

	/* the same from a next_range callback */
	make_dst("d.img", 0xAA);
	rec_init(&r);
	r.ranges = some;
	r.nranges = NX_ARRAY(some);
	p = open_pair("s.img", "d.img");
	o = (struct nexus_copy_opts)NEXUS_COPY_OPTS_INIT;
	o.next_range = next_cb;
	o.flags = NEXUS_COPY_VERIFY;
	EXPECT_OK(run(&p, &o, &r));
	close_pair(&p);
	check_ranges();
	CU_ASSERT_EQUAL(r.next, NX_ARRAY(some));
	CU_ASSERT_EQUAL(r.final[NEXUS_COPY_PHASE_COPY].bytes_total, total);
	CU_ASSERT_EQUAL(r.final[NEXUS_COPY_PHASE_VERIFY].bytes_done, total);
	rec_fini(&r);
}

/* Grants the pending locks from another thread, in batches. */
static void *granter(void *arg)
{
	struct rec *r = arg;

	for (;;) {
		struct nexus_copy_chunk *c[512];
		unsigned n;
		int done;

		pthread_mutex_lock(&r->lock);
		n = r->nwaiting;
		memcpy(c, r->waiting, n * sizeof(c[0]));
		r->nwaiting = 0;
		done = r->done_calls;
		pthread_mutex_unlock(&r->lock);
		for (unsigned i = 0; i < n; i++)
			nexus_copy_chunk_locked(c[i], 0);
		if (done)
			return NULL;
		unit_sleep_ms(1);
	}
}

static void test_lock(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	struct rec r;
	struct pair p;
	pthread_t t;

	make_src("s.img");
	/* granted at once; 0xAA everywhere: zero ranges must be zeroed */
	make_dst("d.img", 0xAA);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	o.lock_fn = lock_cb;
	o.unlock_fn = unlock_cb;
	o.flags = NEXUS_COPY_VERIFY;
	o.requests = 8;
	EXPECT_OK(run(&p, &o, &r));
	close_pair(&p);
	CU_ASSERT_EQUAL(differ("s.img", "d.img", 0, SIZE), -1);
	CU_ASSERT(r.locks > 0);
	CU_ASSERT_EQUAL(r.locks, r.unlocks);
	CU_ASSERT_EQUAL(r.held, 0);
	CU_ASSERT(r.max_held <= 8);
	CU_ASSERT_EQUAL(r.unlock_errors, 0);
	rec_fini(&r);

	/* granted later, from another thread */
	make_dst("d.img", 0xAA);
	rec_init(&r);
	r.pending = true;
	p = open_pair("s.img", "d.img");
	pthread_create(&t, NULL, granter, &r);
	EXPECT_OK(run(&p, &o, &r));
	pthread_join(t, NULL);
	close_pair(&p);
	CU_ASSERT_EQUAL(differ("s.img", "d.img", 0, SIZE), -1);
	CU_ASSERT_EQUAL(r.locks, r.unlocks);
	CU_ASSERT_EQUAL(r.held, 0);
	rec_fini(&r);

	/* a refused lock fails the job with its errno, without unlock */
	make_dst("d.img", -1);
	rec_init(&r);
	r.lock_error = 3;
	p = open_pair("s.img", "d.img");
	EXPECT_ERR(run(&p, &o, &r), -EPERM, "lock of", "Operation not "
		   "permitted");
	close_pair(&p);
	CU_ASSERT_EQUAL(r.locks - 1, r.unlocks);
	CU_ASSERT_EQUAL(r.held, 0);
	rec_fini(&r);
}

static double secs(uint64_t t0)
{
	return (double)(unit_now_ns() - t0) / 1e9;
}

static void test_rate(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	uint64_t t0, rate = 2 * MiB;
	struct nexus_copy *job;
	struct rec r;
	struct pair p;
	double el;

	/* 2 MiB of data (--no-sparse of the first 2 MiB) at 2 MiB/s: about
	 * a second (the bucket starts with a block and holds 0.2 MiB) */
	struct nexus_copy_range first = { 0, 2 * MiB };

	make_src("s.img");
	make_dst("d.img", -1);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	o.flags = NEXUS_COPY_NO_SPARSE;
	o.rate_limit = rate;
	o.block_size = 65536;
	o.ranges = &first;
	o.nranges = 1;
	t0 = unit_now_ns();
	EXPECT_OK(run(&p, &o, &r));
	el = secs(t0);
	printf(" [2 MiB at 2 MiB/s: %.2f s] ", el);
	CU_ASSERT(el >= 0.7);
	CU_ASSERT(el < 10);
	rec_fini(&r);

	/* 8 MiB at 256 KiB/s would take 32 s: lifted after 0.3 s */
	rec_init(&r);
	o.rate_limit = 256 * 1024;
	first.length = 8 * MiB;
	job = make_job(&p, &o, &r);
	t0 = unit_now_ns();
	EXPECT_OK(nexus_copy_start(job, on_done, &r));
	unit_sleep_ms(300);
	EXPECT_OK(nexus_copy_set_rate(job, 0));
	EXPECT_OK(nexus_copy_wait(job));
	el = secs(t0);
	printf(" [lifted: %.2f s] ", el);
	CU_ASSERT(el < 10);
	CU_ASSERT_EQUAL(nexus_copy_destroy(job), 0);
	close_pair(&p);
	CU_ASSERT_EQUAL(differ("s.img", "d.img", 0, 8 * MiB), -1);
	rec_fini(&r);
}

static uint64_t done_now(struct nexus_copy *job)
{
	struct nexus_copy_progress pr = NEXUS_COPY_PROGRESS_INIT;

	EXPECT_OK(nexus_copy_get_progress(job, &pr));
	return pr.bytes_done;
}

static void test_pause(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	struct nexus_copy_progress pr = NEXUS_COPY_PROGRESS_INIT;
	struct nexus_copy *job;
	struct rec r;
	struct pair p;
	uint64_t a, b;

	make_src("s.img");
	make_dst("d.img", -1);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	o.flags = NEXUS_COPY_NO_SPARSE | NEXUS_COPY_VERIFY;
	o.rate_limit = 8 * MiB; /* two seconds of copy */
	o.block_size = 65536;
	job = make_job(&p, &o, &r);
	EXPECT_OK(nexus_copy_start(job, on_done, &r));
	unit_sleep_ms(200);
	EXPECT_OK(nexus_copy_pause(job));
	unit_sleep_ms(100); /* requests in flight complete */
	a = done_now(job);
	unit_sleep_ms(400);
	b = done_now(job);
	EXPECT_OK(nexus_copy_get_progress(job, &pr));
	CU_ASSERT(pr.flags & NEXUS_COPY_PROGRESS_PAUSED);
	CU_ASSERT_EQUAL(pr.in_flight, 0);
	CU_ASSERT_EQUAL(pr.phase, NEXUS_COPY_PHASE_COPY);
	CU_ASSERT_EQUAL(a, b);
	CU_ASSERT(a > 0 && a < SIZE);
	CU_ASSERT_EQUAL(r.done_calls, 0);
	EXPECT_OK(nexus_copy_pause(job)); /* twice is fine */
	EXPECT_OK(nexus_copy_resume(job));
	EXPECT_OK(nexus_copy_set_rate(job, 0));
	EXPECT_OK(nexus_copy_wait(job));
	CU_ASSERT_EQUAL(nexus_copy_destroy(job), 0);
	close_pair(&p);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_EQUAL(differ("s.img", "d.img", 0, SIZE), -1);
	/* the pause is not part of the copy's active time */
	CU_ASSERT(r.final[NEXUS_COPY_PHASE_COPY].elapsed_ns < 3000000000ull);
	rec_fini(&r);
}

static void test_cancel(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	struct nexus_copy_progress pr = NEXUS_COPY_PROGRESS_INIT;
	struct nexus_copy *job;
	struct rec r;
	struct pair p;

	make_src("s.img");
	make_dst("d.img", -1);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	o.flags = NEXUS_COPY_NO_SPARSE;
	o.rate_limit = 4 * MiB;
	o.block_size = 65536;
	job = make_job(&p, &o, &r);
	EXPECT_OK(nexus_copy_start(job, on_done, &r));
	unit_sleep_ms(200);
	EXPECT_OK(nexus_copy_cancel(job));
	EXPECT_ERR(nexus_copy_wait(job), -ECANCELED, "cancelled");
	EXPECT_OK(nexus_copy_get_progress(job, &pr));
	CU_ASSERT_EQUAL(pr.phase, NEXUS_COPY_PHASE_DONE);
	CU_ASSERT_EQUAL(pr.in_flight, 0);
	CU_ASSERT(pr.bytes_done < SIZE);
	CU_ASSERT_EQUAL(pr.error, -ECANCELED);
	EXPECT_OK(nexus_copy_cancel(job)); /* after the end: no-op */
	CU_ASSERT_EQUAL(nexus_copy_destroy(job), 0);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_EQUAL(r.done_result, -ECANCELED);
	rec_fini(&r);

	/* cancelled before it starts; destroyed while it runs */
	rec_init(&r);
	job = make_job(&p, &o, &r);
	EXPECT_OK(nexus_copy_cancel(job));
	EXPECT_OK(nexus_copy_start(job, on_done, &r));
	EXPECT_ERR(nexus_copy_wait(job), -ECANCELED, "cancelled");
	CU_ASSERT_EQUAL(nexus_copy_destroy(job), 0);
	job = make_job(&p, &o, &r);
	EXPECT_OK(nexus_copy_start(job, on_done, &r));
	unit_sleep_ms(50);
	CU_ASSERT_EQUAL(nexus_copy_destroy(job), 0);
	CU_ASSERT_EQUAL(r.done_calls, 2);
	CU_ASSERT_EQUAL(r.done_result, -ECANCELED);
	close_pair(&p);
	rec_fini(&r);
}

static void test_verify_mismatch(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	struct rec r;
	struct pair p;

	make_src("s.img");
	make_dst("d.img", 0xFF);
	rec_init(&r);
	p = open_pair("s.img", "d.img");
	/* a lie: DST is not zero, so SRC's first hole differs at 0 */
	o.flags = NEXUS_COPY_VERIFY | NEXUS_COPY_TARGET_ZERO;
	EXPECT_ERR(run(&p, &o, &r), -EILSEQ, "DST differs from SRC at offset "
		   "0");
	close_pair(&p);
	CU_ASSERT_EQUAL(r.final[NEXUS_COPY_PHASE_VERIFY].mismatch_offset, 0);
	rec_fini(&r);
}

static int free_calls;

static void count_free(void *ud)
{
	(void)ud;
	free_calls++;
}

/* A job that destroys itself from its done callback. */
struct self {
	struct nexus_copy *job;
	int destroy_rc;
	sem_t done;
};

static void self_done(void *ud, int result)
{
	struct self *s = ud;

	(void)result;
	s->destroy_rc = nexus_copy_destroy(s->job);
	sem_post(&s->done);
}

static void test_self_destroy(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	struct self st = { NULL, 1, { { 0 } } };
	struct pair p;
	int before = free_calls;

	make_src("s.img");
	make_dst("d.img", -1);
	sem_init(&st.done, 0, 0);
	p = open_pair("s.img", "d.img");
	o.user_free = count_free;
	EXPECT_OK(nexus_copy_create(p.src, p.dst, &o, &st.job));
	EXPECT_OK(nexus_copy_start(st.job, self_done, &st));
	sem_wait(&st.done);
	CU_ASSERT_EQUAL(st.destroy_rc, 0);
	for (int i = 0; i < 500 && free_calls == before; i++)
		unit_sleep_ms(2); /* freed once the callback returned */
	CU_ASSERT_EQUAL(free_calls, before + 1);
	close_pair(&p);
	sem_destroy(&st.done);
	CU_ASSERT_EQUAL(differ("s.img", "d.img", 0, SIZE), -1);
}

static void test_misuse(void)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	struct nexus_copy_range bad = { SIZE - 512, 1024 };
	struct nexus_copy_progress pr = NEXUS_COPY_PROGRESS_INIT;
	struct nexus_copy *job = NULL;
	struct nexus_dev *small, *ro;
	struct rec r;
	struct pair p;
	int fd, before;

	make_src("s.img");
	make_dst("d.img", -1);
	fd = open(path("small.img"), O_CREAT | O_TRUNC | O_RDWR, 0644);
	CU_ASSERT_EQUAL(ftruncate(fd, SIZE / 2), 0);
	close(fd);
	p = open_pair("s.img", "d.img");
	small = unit_open(ctx, fspec("small.img"));
	{
		char s[600];

		snprintf(s, sizeof(s), "file:%s,readonly=on", path("d.img"));
		ro = unit_open(ctx, s);
	}
	EXPECT_ERR(nexus_copy_create(NULL, p.dst, NULL, &job), -EINVAL, "NULL");
	EXPECT_ERR(nexus_copy_create(p.src, p.dst, NULL, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_copy_create(p.src, p.src, NULL, &job), -EINVAL,
		   "same device");
	EXPECT_ERR(nexus_copy_create(p.src, small, NULL, &job), -ENOSPC,
		   "DST is smaller than SRC");
	EXPECT_ERR(nexus_copy_create(p.src, ro, NULL, &job), -EROFS,
		   "read-only");
	o.requests = 257;
	EXPECT_ERR(nexus_copy_create(p.src, p.dst, &o, &job), -EINVAL,
		   "requests");
	o.requests = 0;
	o.block_size = 100;
	EXPECT_ERR(nexus_copy_create(p.src, p.dst, &o, &job), -EINVAL,
		   "block_size");
	o.block_size = 0;
	o.flags = 1u << 20;
	EXPECT_ERR(nexus_copy_create(p.src, p.dst, &o, &job), -EINVAL,
		   "unknown flags");
	o.flags = 0;
	o.ranges = &bad;
	o.nranges = 1;
	EXPECT_ERR(nexus_copy_create(p.src, p.dst, &o, &job), -EINVAL,
		   "past the end");
	o.next_range = next_cb;
	EXPECT_ERR(nexus_copy_create(p.src, p.dst, &o, &job), -EINVAL,
		   "both ranges and next_range");
	o.ranges = NULL;
	o.nranges = 0;
	o.next_range = NULL;
	o.lock_fn = lock_cb;
	EXPECT_ERR(nexus_copy_create(p.src, p.dst, &o, &job), -EINVAL,
		   "lock_fn and unlock_fn");
	o.lock_fn = NULL;
	o.size = 0;
	EXPECT_ERR(nexus_copy_create(p.src, p.dst, &o, &job), -EINVAL,
		   "NEXUS_COPY_OPTS_INIT");
	CU_ASSERT_PTR_NULL(job);

	EXPECT_ERR(nexus_copy_start(NULL, on_done, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_copy_wait(NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_copy_pause(NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_copy_resume(NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_copy_cancel(NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_copy_set_rate(NULL, 1), -EINVAL, "NULL");
	EXPECT_ERR(nexus_copy_get_progress(NULL, &pr), -EINVAL, "NULL");
	CU_ASSERT_EQUAL(nexus_copy_destroy(NULL), 0);
	nexus_copy_chunk_locked(NULL, 0);

	/* a job runs once; wait needs a start; user_free runs once */
	rec_init(&r);
	o = (struct nexus_copy_opts)NEXUS_COPY_OPTS_INIT;
	o.user_free = count_free;
	job = make_job(&p, &o, &r);
	EXPECT_ERR(nexus_copy_wait(job), -EINVAL, "not started");
	EXPECT_ERR(nexus_copy_start(job, NULL, NULL), -EINVAL, "NULL");
	pr.size = 4;
	EXPECT_ERR(nexus_copy_get_progress(job, &pr), -EINVAL, "size");
	pr.size = sizeof(pr);
	EXPECT_OK(nexus_copy_get_progress(job, &pr));
	CU_ASSERT_EQUAL(pr.phase, NEXUS_COPY_PHASE_IDLE);
	CU_ASSERT_EQUAL(pr.bytes_total, SIZE);
	EXPECT_OK(nexus_copy_start(job, on_done, &r));
	EXPECT_ERR(nexus_copy_start(job, on_done, &r), -EALREADY, "once");
	EXPECT_OK(nexus_copy_wait(job));
	EXPECT_OK(nexus_copy_wait(job)); /* again: the same result */
	before = free_calls;
	CU_ASSERT_EQUAL(nexus_copy_destroy(job), 0);
	CU_ASSERT_EQUAL(free_calls, before + 1);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	rec_fini(&r);
	nexus_dev_close(ro);
	nexus_dev_close(small);
	close_pair(&p);
}

static const struct unit_test tests[] = {
	{ "sparse file, byte for byte, progress", test_sparse },
	{ "ranges and next_range", test_ranges },
	{ "lock hook: at once, later, refused", test_lock },
	{ "rate limit, changed while running", test_rate },
	{ "pause and resume", test_pause },
	{ "cancel", test_cancel },
	{ "verify finds a difference", test_verify_mismatch },
	{ "destroy from the done callback", test_self_destroy },
	{ "misuse", test_misuse },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	dir = unit_mkdtemp(NULL);
	if (!dir)
		return 99;
	ctx = unit_ctx(2);
	rc = unit_main("copy", tests);
	nexus_ctx_destroy(ctx);
	unit_rmtree(dir);
	return rc;
}
