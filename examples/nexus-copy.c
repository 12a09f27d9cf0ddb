/* nexus-copy: copy one libnexus device onto another.
 *
 *   nexus-copy file:plain.img 'file:enc.img | crypt:key-file=k'
 *   nexus-copy nbd://127.0.0.1:10809 file:copy.img,create=on,size=1G
 *
 * SRC and DST are pipelines without an export (nexus_dev_open()).  DST
 * must be at least as large as SRC; SRC's size is copied.
 *
 * Sparse-aware.  SRC's block status splits the copy into data and zero
 * ranges (NEXUS_EXTENT_ZERO; a hole that does not read as zeroes is
 * data).  Data is read and written REQUESTS at a time (16), BLOCK bytes
 * each (256 KiB: on tmpfs and over NBD it beat 1 MiB in tests/bench);
 * a block read as all zeroes becomes a zero range.  A zero range is
 * never written as zero bytes when it can be avoided:
 *   - skipped where DST's block status already reports zeroes (e.g. a
 *     fresh sparse file), or everywhere with --target-is-zero;
 *   - else WRITE_ZEROES on DST (a file punches a hole: the copy stays
 *     sparse), or TRIM where DST's TRIM reads back zeroes;
 *   - else (DST can do neither) zero bytes are written: correctness
 *     first.
 * --no-sparse copies every byte as data.  At the end DST is flushed.
 * --verify then reads DST back and compares it with SRC (zero ranges
 * of SRC are checked to read as zeroes on DST).
 *
 * On a terminal a progress bar shows the rate and ETA.  Only the public
 * API is used.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
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
#include <nexus/nexus_driver.h> /* nexus_reactor_post */

#define MAX_REQUESTS 256
#define ZERO_CHUNK (1ull << 30) /* largest WRITE_ZEROES/TRIM request */
#define MAX_EXTENTS 64

/* nexus_dev_submit() with the request's fields as arguments. */
static int submit(struct nexus_dev *dev, int op, const struct iovec *iov,
		  int iovcnt, uint64_t off, uint64_t len, uint32_t flags,
		  nexus_io_cb cb, void *ud)
{
	struct nexus_io_req req = NEXUS_IO_REQ_INIT;

	req.op = (uint32_t)op;
	req.iov = iov;
	req.iovcnt = iovcnt;
	req.offset = off;
	req.length = len;
	req.flags = flags;
	req.cb = cb;
	req.user_data = ud;
	return nexus_dev_submit(dev, &req);
}

static struct {
	unsigned requests;
	uint64_t block;
	unsigned reactors;
	bool verify, sparse, target_zero, progress, quiet, flush;
} cfg = { 16, 256 << 10, 0, false, true, false, false, false, true };

enum job_kind { JOB_DATA, JOB_ZERO, JOB_VERIFY_DATA, JOB_VERIFY_ZERO };

struct copy;

struct job {
	enum job_kind kind;
	uint64_t off, len;
};

struct slot {
	struct copy *cp;
	enum job_kind kind;
	uint64_t off, len;
	struct iovec siov, diov; /* SRC and DST buffers */
	atomic_int pending;	 /* verify: two reads */
	int result;
	int failed_op;	   /* for the message */
	uint64_t diff_off; /* verify: first difference */
};

struct copy {
	struct nexus_ctx *ctx;
	struct nexus_dev *src, *dst;
	struct nexus_dev_info si, di;
	uint64_t size, align, block;
	uint32_t zero_op; /* NEXUS_OP_WRITE_ZEROES, NEXUS_OP_TRIM or ~0 */
	struct slot slots[MAX_REQUESTS];
	unsigned nslots;
	/* Jobs planned by the main thread, taken by finishing slots on the
	 * reactors; idle slots.  Under lock, as are the statistics. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job queue[2 * MAX_REQUESTS];
	unsigned qcap, qhead, qlen;
	struct slot *idle[MAX_REQUESTS];
	unsigned nidle, inflight;
	bool verify;
	/* producer state (main thread only) */
	bool producer_done;
	uint64_t pos;
	struct nexus_extent ext[MAX_EXTENTS];
	unsigned next_ext, next_ext_n;
	uint64_t zero_pos, zero_end; /* zero range being issued */
	uint64_t data_pos, data_end; /* data range being issued */
	/* statistics */
	uint64_t done_bytes, data_bytes, zero_bytes, skipped_bytes;
	uint64_t mismatch_off;
	bool mismatch;
	int error;
	uint64_t error_off; /* of the reported error: the lowest */
	char errmsg[512];
	double t0, last_draw;
	const char *phase;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	unsigned shift = 0;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static void human(char *buf, size_t len, double v)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* ---- completions ---- */

static void slot_done(struct slot *s, int result, int op);

static bool all_zero(const void *p, size_t len)
{
	const unsigned char *c = p;

	/* buffers are 4096-aligned and len a multiple of 8 or small */
	while (len >= 64) {
		const uint64_t *w = (const uint64_t *)(const void *)c;

		if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
			return false;
		c += 64;
		len -= 64;
	}
	while (len--)
		if (*c++)
			return false;
	return true;
}

static void write_cb(void *ud, int res)
{
	slot_done(ud, res, NEXUS_OP_WRITE);
}

static void zero_cb(void *ud, int res)
{
	struct slot *s = ud;

	slot_done(s, res, (int)s->cp->zero_op);
}

/* Data read: write it, or as a zero range if it is all zeroes. */
static void read_cb(void *ud, int res)
{
	struct slot *s = ud;
	struct copy *cp = s->cp;
	int rc;

	if (res < 0) {
		slot_done(s, res, NEXUS_OP_READ);
		return;
	}
	if (cfg.sparse && all_zero(s->siov.iov_base, s->len)) {
		s->kind = JOB_ZERO;
		if (cfg.target_zero) {
			slot_done(s, 0, NEXUS_OP_READ);
			return;
		}
		if (cp->zero_op != UINT32_MAX) {
			rc = submit(cp->dst, (int)cp->zero_op, NULL, 0,
					      s->off, s->len, 0, zero_cb, s);
			if (rc < 0)
				slot_done(s, rc, (int)cp->zero_op);
			return;
		}
	}
	s->siov.iov_len = s->len;
	rc = submit(cp->dst, NEXUS_OP_WRITE, &s->siov, 1, s->off, 0,
			      0, write_cb, s);
	if (rc < 0)
		slot_done(s, rc, NEXUS_OP_WRITE);
}

static void verify_cb(void *ud, int res)
{
	struct slot *s = ud;

	if (res < 0 && s->result >= 0) {
		s->result = res;
		s->failed_op = NEXUS_OP_READ;
	}
	if (atomic_fetch_sub(&s->pending, 1) == 1)
		slot_done(s, 0, NEXUS_OP_READ);
}

/* ---- producer: the next job from SRC's block status ---- */

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* Next extent at cp->pos (a data extent of the rest when unknown). */
static int next_extent(struct copy *cp, uint64_t *len, bool *zero)
{
	struct nexus_extent *e;
	int n;

	while (cp->next_ext < cp->next_ext_n) {
		e = &cp->ext[cp->next_ext];
		if (e->offset + e->length > cp->pos)
			goto found;
		cp->next_ext++;
	}
	if (!cfg.sparse) {
		*len = cp->size - cp->pos;
		*zero = false;
		return 0;
	}
	n = nexus_dev_block_status(cp->src, cp->pos, cp->size - cp->pos,
				   cp->ext, MAX_EXTENTS);
	if (n <= 0) {
		/* not knowing is no error: copy as data */
		*len = cp->size - cp->pos;
		*zero = false;
		return 0;
	}
	cp->next_ext = 0;
	cp->next_ext_n = (unsigned)n;
	e = &cp->ext[0];
found:
	*len = e->offset + e->length - cp->pos;
	*zero = (e->flags & NEXUS_EXTENT_ZERO) != 0;
	return 0;
}

/* Plan the next range: sets [data_pos, data_end) or [zero_pos, zero_end)
 * and advances pos.  Zero ranges shrink to whole aligned blocks; their
 * unaligned edges are copied as data. */
static void plan(struct copy *cp)
{
	uint64_t len, end;
	bool zero;

	next_extent(cp, &len, &zero);
	end = cp->pos + len;
	if (zero) {
		uint64_t zend = end / cp->align * cp->align;

		if (zend > cp->pos) {
			cp->zero_pos = cp->pos;
			cp->zero_end = zend;
			cp->pos = zend;
			return;
		}
	}
	end = align_up(end, cp->align);
	if (end > cp->size)
		end = cp->size;
	cp->data_pos = cp->pos;
	cp->data_end = end;
	cp->pos = end;
}

/* DST already reads as zeroes in [off, off+len)? Returns the length of
 * the known-zero (or not-zero) prefix in *run. */
static bool dst_zero(struct copy *cp, uint64_t off, uint64_t len,
		     uint64_t *run)
{
	struct nexus_extent e;
	int n;

	if (!(cp->di.flags & NEXUS_DEV_BLOCK_STATUS)) {
		*run = len;
		return false;
	}
	n = nexus_dev_block_status(cp->dst, off, len, &e, 1);
	if (n <= 0) {
		*run = len;
		return false;
	}
	*run = e.length < len ? e.length : len;
	/* keep runs aligned; an unaligned remainder is not skipped */
	if (*run < len) {
		*run = *run / cp->align * cp->align;
		if (!*run) {
			*run = cp->align < len ? cp->align : len;
			return false;
		}
	}
	return (e.flags & NEXUS_EXTENT_ZERO) != 0;
}

/* The next copy job; false when none is left.  Main thread. */
static bool next_copy_job(struct copy *cp, struct job *s)
{
	for (;;) {
		if (cp->zero_pos < cp->zero_end) {
			uint64_t len = cp->zero_end - cp->zero_pos, run;

			if (len > ZERO_CHUNK)
				len = ZERO_CHUNK;
			if (cfg.target_zero ||
			    dst_zero(cp, cp->zero_pos, len, &run)) {
				if (cfg.target_zero)
					run = len;
				cp->zero_pos += run;
				pthread_mutex_lock(&cp->lock);
				cp->done_bytes += run;
				cp->skipped_bytes += run;
				cp->zero_bytes += run;
				pthread_mutex_unlock(&cp->lock);
				continue;
			}
			len = run;
			if (cp->zero_op == UINT32_MAX && len > cp->block)
				len = cp->block; /* written as zero bytes */
			s->kind = cp->zero_op == UINT32_MAX ? JOB_DATA : JOB_ZERO;
			s->off = cp->zero_pos;
			s->len = len;
			cp->zero_pos += len;
			return true;
		}
		if (cp->data_pos < cp->data_end) {
			uint64_t len = cp->data_end - cp->data_pos;

			if (len > cp->block)
				len = cp->block;
			s->kind = JOB_DATA;
			s->off = cp->data_pos;
			s->len = len;
			cp->data_pos += len;
			return true;
		}
		if (cp->pos >= cp->size)
			return false;
		plan(cp);
	}
}

static bool next_verify_job(struct copy *cp, struct job *s)
{
	for (;;) {
		if (cp->zero_pos < cp->zero_end || cp->data_pos < cp->data_end) {
			bool zero = cp->zero_pos < cp->zero_end;
			uint64_t *p = zero ? &cp->zero_pos : &cp->data_pos;
			uint64_t e = zero ? cp->zero_end : cp->data_end;
			uint64_t len = e - *p;

			if (len > cp->block)
				len = cp->block;
			s->kind = zero ? JOB_VERIFY_ZERO : JOB_VERIFY_DATA;
			s->off = *p;
			s->len = len;
			*p += len;
			return true;
		}
		if (cp->pos >= cp->size)
			return false;
		plan(cp);
	}
}

static int start_job(struct copy *cp, struct slot *s)
{
	int rc;

	s->result = 0;
	s->siov.iov_len = s->len;
	s->diov.iov_len = s->len;
	switch (s->kind) {
	case JOB_DATA:
		/* over a zero range of a DST that can neither zero nor
		 * trim, this reads SRC's zeroes and writes them */
		return submit(cp->src, NEXUS_OP_READ, &s->siov, 1,
					s->off, 0, 0, read_cb, s);
	case JOB_ZERO:
		return submit(cp->dst, (int)cp->zero_op, NULL, 0,
					s->off, s->len, 0, zero_cb, s);
	case JOB_VERIFY_DATA:
		atomic_store(&s->pending, 2);
		rc = submit(cp->src, NEXUS_OP_READ, &s->siov, 1,
				      s->off, 0, 0, verify_cb, s);
		if (rc < 0)
			return rc;
		rc = submit(cp->dst, NEXUS_OP_READ, &s->diov, 1,
				      s->off, 0, 0, verify_cb, s);
		if (rc < 0) /* the SRC read completes into pending */
			verify_cb(s, rc);
		return 0;
	case JOB_VERIFY_ZERO:
		atomic_store(&s->pending, 1);
		return submit(cp->dst, NEXUS_OP_READ, &s->diov, 1,
					s->off, 0, 0, verify_cb, s);
	}
	return -EINVAL;
}

/* Submit, retrying while a reactor queue is full. */
static int submit_job(struct copy *cp, struct slot *s)
{
	int rc;

	while ((rc = start_job(cp, s)) == -EAGAIN)
		usleep(100);
	return rc;
}

static const char *op_name(int op)
{
	static const char *const n[] = { "read", "write", "flush", "trim",
					 "write-zeroes" };

	return op >= 0 && op < 5 ? n[op] : "I/O";
}

static void draw(struct copy *cp, bool final)
{
	double t = now_s(), el = t - cp->t0, rate, frac;
	char a[32], b[32], r[32], bar[41];
	uint64_t done;
	unsigned fill;

	if (!cfg.progress || (!final && t - cp->last_draw < 0.2))
		return;
	cp->last_draw = t;
	pthread_mutex_lock(&cp->lock);
	done = cp->done_bytes;
	pthread_mutex_unlock(&cp->lock);
	frac = cp->size ? (double)done / (double)cp->size : 1;
	rate = el > 0 ? done / el : 0;
	fill = (unsigned)(frac * 40);
	memset(bar, '#', fill);
	memset(bar + fill, '.', 40 - fill);
	bar[40] = '\0';
	human(a, sizeof(a), (double)done);
	human(b, sizeof(b), (double)cp->size);
	human(r, sizeof(r), rate);
	fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %s/%s %s/s", cp->phase, bar,
		frac * 100, a, b, r);
	if (!final && rate > 0 && frac < 1) {
		double eta = (double)(cp->size - done) / rate;

		fprintf(stderr, " ETA %d:%02d", (int)eta / 60, (int)eta % 60);
	}
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static bool stopping(const struct copy *cp)
{
	return cp->error || cp->mismatch || interrupted;
}

/* Verify: does DST's buffer hold what it should?  Sets diff_off. */
static bool slot_matches(struct slot *s)
{
	const unsigned char *x = s->siov.iov_base, *y = s->diov.iov_base;
	bool data = s->kind == JOB_VERIFY_DATA;

	if (data ? !memcmp(x, y, s->len) : all_zero(y, s->len))
		return true;
	for (uint64_t i = 0; i < s->len; i++) {
		if (y[i] != (data ? x[i] : 0)) {
			s->diff_off = s->off + i;
			break;
		}
	}
	return false;
}

/* Record the first failure (cp->lock held). */
static void fail(struct copy *cp, const struct slot *s)
{
	const char *who = s->failed_op != NEXUS_OP_READ ? "DST"
			  : cp->verify			  ? "SRC or DST"
							  : "SRC";

	cp->error = s->result;
	cp->error_off = s->off;
	snprintf(cp->errmsg, sizeof(cp->errmsg),
		 "%s of %" PRIu64 " bytes at offset %" PRIu64 " on %s: %s",
		 op_name(s->failed_op), s->len, s->off, who,
		 strerror(-s->result));
}

static void take_job(struct copy *cp, struct slot *s)
{
	const struct job *j = &cp->queue[cp->qhead];

	s->kind = j->kind;
	s->off = j->off;
	s->len = j->len;
	cp->qhead = (cp->qhead + 1) % cp->qcap;
	cp->qlen--;
	cp->inflight++;
}

/* A slot finished its job (any thread).  Account it, then give it the
 * next queued job right here: on a reactor the next I/O starts without
 * waking the main thread, which only plans jobs and draws. */
static void slot_done(struct slot *s, int result, int op)
{
	struct copy *cp = s->cp;
	int rc;

	if (result < 0 && s->result >= 0) {
		s->result = result;
		s->failed_op = op;
	}
	for (;;) {
		bool same = s->result < 0 || !cp->verify || slot_matches(s);

		pthread_mutex_lock(&cp->lock);
		cp->inflight--;
		if (s->result < 0) {
			/* slots run on several reactors: of the errors of
			 * the slots in flight, report the lowest offset (jobs
			 * are taken in order, so it is the first one) */
			if (!cp->error || s->off < cp->error_off)
				fail(cp, s);
		} else if (!same) {
			/* jobs are taken in order: the lowest offset of all
			 * finished slots is the first difference */
			if (!cp->mismatch || s->diff_off < cp->mismatch_off)
				cp->mismatch_off = s->diff_off;
			cp->mismatch = true;
		} else {
			if (!cp->verify && s->kind == JOB_ZERO)
				cp->zero_bytes += s->len;
			else if (!cp->verify)
				cp->data_bytes += s->len;
			cp->done_bytes += s->len;
		}
		if (stopping(cp) || !cp->qlen) {
			cp->idle[cp->nidle++] = s;
			pthread_cond_signal(&cp->cond);
			pthread_mutex_unlock(&cp->lock);
			return;
		}
		take_job(cp, s);
		if (cp->qlen <= cp->qcap / 2)
			pthread_cond_signal(&cp->cond); /* plan more */
		pthread_mutex_unlock(&cp->lock);
		rc = submit_job(cp, s);
		if (rc >= 0)
			return;
		s->result = rc;
		s->failed_op = s->kind == JOB_ZERO ? (int)cp->zero_op
						   : NEXUS_OP_READ;
	}
}

static bool next_job(struct copy *cp, struct job *j)
{
	return cp->verify ? next_verify_job(cp, j) : next_copy_job(cp, j);
}

static void slot_start_here(void *arg)
{
	struct slot *s = arg;
	int rc = submit_job(s->cp, s);

	if (rc < 0)
		slot_done(s, rc, s->kind == JOB_ZERO ? (int)s->cp->zero_op
						     : NEXUS_OP_READ);
}

/* Start a slot's job on the reactor its index gives: its later jobs
 * start from its completions on that reactor, so the slots keep every
 * reactor busy (I/O submitted from this thread would all go to one). */
static void start_slot(struct copy *cp, struct slot *s)
{
	int n = nexus_ctx_reactor_count(cp->ctx);
	struct nexus_reactor *r =
		n > 0 ? nexus_ctx_reactor(cp->ctx, (unsigned)(s - cp->slots) %
							   (unsigned)n)
		      : NULL;

	if (!r || nexus_reactor_post(r, slot_start_here, s) < 0)
		slot_start_here(s);
}

/* Run a phase: plan jobs ahead, start idle slots, until all is done. */
static int run(struct copy *cp, bool verify)
{
	struct timespec ts;

	cp->verify = verify;
	cp->pos = 0;
	cp->next_ext = cp->next_ext_n = 0;
	cp->zero_pos = cp->zero_end = cp->data_pos = cp->data_end = 0;
	cp->producer_done = false;
	cp->done_bytes = 0;
	cp->qcap = 2 * cp->nslots < 8 ? 8 : 2 * cp->nslots;
	cp->qhead = cp->qlen = cp->inflight = cp->nidle = 0;
	for (unsigned i = 0; i < cp->nslots; i++)
		cp->idle[cp->nidle++] = &cp->slots[i];
	cp->t0 = now_s();
	cp->last_draw = 0;
	for (;;) {
		/* plan: outside the lock (block status costs syscalls) */
		while (!cp->producer_done) {
			struct job j;
			bool room;

			pthread_mutex_lock(&cp->lock);
			room = !stopping(cp) && cp->qlen < cp->qcap;
			pthread_mutex_unlock(&cp->lock);
			if (!room)
				break;
			if (!next_job(cp, &j)) {
				cp->producer_done = true;
				break;
			}
			pthread_mutex_lock(&cp->lock);
			cp->queue[(cp->qhead + cp->qlen) % cp->qcap] = j;
			cp->qlen++;
			pthread_mutex_unlock(&cp->lock);
		}
		/* start idle slots; later jobs start from completions */
		pthread_mutex_lock(&cp->lock);
		while (cp->nidle && cp->qlen && !stopping(cp)) {
			struct slot *s = cp->idle[--cp->nidle];

			take_job(cp, s);
			pthread_mutex_unlock(&cp->lock);
			start_slot(cp, s);
			pthread_mutex_lock(&cp->lock);
		}
		if (!cp->inflight &&
		    (stopping(cp) || (cp->producer_done && !cp->qlen))) {
			pthread_mutex_unlock(&cp->lock);
			break;
		}
		/* woken when a slot goes idle or the queue runs low */
		if (!(cp->nidle && cp->qlen) &&
		    (cp->producer_done || cp->qlen >= cp->qcap / 2 ||
		     stopping(cp))) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&cp->cond, &cp->lock, &ts);
		}
		pthread_mutex_unlock(&cp->lock);
		draw(cp, false);
	}
	if (interrupted && !cp->error) {
		cp->error = -EINTR;
		snprintf(cp->errmsg, sizeof(cp->errmsg), "interrupted");
	}
	draw(cp, true);
	return cp->error;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nexus-copy [OPTIONS] SRC DST\n"
		"Copy the device SRC onto DST (pipelines without an export, "
		"e.g. 'file:a.img',\n"
		"'file:b.img | crypt:key-file=k', nbd://host:port).  DST must "
		"be at least as large.\n\n"
		"  -n, --requests N     requests in flight (default 16)\n"
		"  -b, --block-size S   bytes per request (default 256K)\n"
		"      --verify         read DST back and compare with SRC\n"
		"      --no-sparse      copy holes and zeroes as data\n"
		"      --target-is-zero DST already reads as zeroes: skip zero "
		"ranges\n"
		"      --no-flush       do not flush DST at the end\n"
		"  -r, --reactors N     reactor threads (default: one per CPU)\n"
		"  -p, --progress       progress bar even when stderr is not a "
		"terminal\n"
		"  -q, --quiet          no progress bar and no summary\n"
		"  -h, --help           this help\n");
}

static int open_dev(struct nexus_ctx *ctx, const char *text,
		    struct nexus_dev **dev, struct nexus_dev_info *in,
		    const char *what)
{
	if (nexus_dev_open(ctx, text, dev) < 0) {
		fprintf(stderr, "nexus-copy: %s: %s\n", what,
			nexus_last_error());
		return -1;
	}
	in->size = sizeof(*in);
	nexus_dev_get_info(*dev, in);
	return 0;
}

static int setup(struct copy *cp)
{
	uint64_t maxio;

	cp->size = cp->si.dev_size;
	if (cp->di.dev_size < cp->size) {
		fprintf(stderr, "nexus-copy: DST is smaller than SRC: %" PRIu64
			" < %" PRIu64 " bytes\n", cp->di.dev_size, cp->size);
		return -1;
	}
	if (cp->di.flags & NEXUS_DEV_READ_ONLY ||
	    !(cp->di.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE))) {
		fprintf(stderr, "nexus-copy: DST is read-only\n");
		return -1;
	}
	if (!(cp->si.ops & NEXUS_OP_BIT(NEXUS_OP_READ))) {
		fprintf(stderr, "nexus-copy: SRC cannot be read\n");
		return -1;
	}
	cp->align = cp->si.logical_block_size > cp->di.logical_block_size
			    ? cp->si.logical_block_size
			    : cp->di.logical_block_size;
	if (cp->align < 512)
		cp->align = 512;
	if (cp->size % cp->align) {
		/* a short device: only its own block size is required */
		cp->align = cp->si.logical_block_size > cp->di.logical_block_size
				    ? cp->si.logical_block_size
				    : cp->di.logical_block_size;
		if (cp->size % cp->align) {
			fprintf(stderr, "nexus-copy: SRC size %" PRIu64 " is "
				"not a multiple of DST's block size %u\n",
				cp->size, cp->di.logical_block_size);
			return -1;
		}
	}
	if (cp->di.dev_size > cp->size && !cfg.quiet)
		fprintf(stderr, "nexus-copy: note: DST is larger than SRC; "
			"its last %" PRIu64 " bytes are left as they are\n",
			cp->di.dev_size - cp->size);
	maxio = cp->si.max_io_size < cp->di.max_io_size ? cp->si.max_io_size
							: cp->di.max_io_size;
	cp->block = cfg.block < maxio ? cfg.block : maxio;
	cp->block = cp->block / cp->align * cp->align;
	if (!cp->block)
		cp->block = cp->align;
	if (cp->di.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES))
		cp->zero_op = NEXUS_OP_WRITE_ZEROES;
	else if ((cp->di.ops & NEXUS_OP_BIT(NEXUS_OP_TRIM)) &&
		 (cp->di.flags & NEXUS_DEV_TRIM_ZEROES))
		cp->zero_op = NEXUS_OP_TRIM;
	else
		cp->zero_op = UINT32_MAX;
	cp->nslots = cfg.requests;
	for (unsigned i = 0; i < cp->nslots; i++) {
		struct slot *s = &cp->slots[i];

		s->cp = cp;
		s->siov.iov_base = aligned_alloc(4096, align_up(cp->block, 4096));
		s->diov.iov_base = cfg.verify ? aligned_alloc(4096,
							      align_up(cp->block,
								       4096))
					      : NULL;
		if (!s->siov.iov_base || (cfg.verify && !s->diov.iov_base)) {
			fprintf(stderr, "nexus-copy: out of memory\n");
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_VERIFY = 256, O_NOSPARSE, O_TZERO, O_NOFLUSH };
	static const struct option lo[] = {
		{ "requests", required_argument, NULL, 'n' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "verify", no_argument, NULL, O_VERIFY },
		{ "no-sparse", no_argument, NULL, O_NOSPARSE },
		{ "target-is-zero", no_argument, NULL, O_TZERO },
		{ "no-flush", no_argument, NULL, O_NOFLUSH },
		{ "reactors", required_argument, NULL, 'r' },
		{ "progress", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	static struct copy cp;
	struct nexus_ctx *ctx;
	bool want_progress = false;
	char a[32], b[32], c[32], r[32];
	uint64_t v;
	char *end;
	double el;
	int opt, rc = 1;

	while ((opt = getopt_long(argc, argv, "n:b:r:pqh", lo, NULL)) != -1) {
		switch (opt) {
		case 'n':
			v = strtoull(optarg, &end, 10);
			if (*end || !v || v > MAX_REQUESTS) {
				fprintf(stderr, "nexus-copy: --requests wants "
					"1..%d\n", MAX_REQUESTS);
				return 2;
			}
			cfg.requests = (unsigned)v;
			break;
		case 'b':
			if (parse_size(optarg, &v) || v < 512 ||
			    v > (64u << 20)) {
				fprintf(stderr, "nexus-copy: --block-size "
					"wants 512 to 64M\n");
				return 2;
			}
			cfg.block = v;
			break;
		case 'r':
			v = strtoull(optarg, &end, 10);
			if (*end || !v || v > 1024) {
				fprintf(stderr, "nexus-copy: --reactors wants "
					"1..1024\n");
				return 2;
			}
			cfg.reactors = (unsigned)v;
			break;
		case O_VERIFY: cfg.verify = true; break;
		case O_NOSPARSE: cfg.sparse = false; break;
		case O_TZERO: cfg.target_zero = true; break;
		case O_NOFLUSH: cfg.flush = false; break;
		case 'p': want_progress = true; break;
		case 'q': cfg.quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 2) {
		usage(stderr);
		return 2;
	}
	cfg.progress = !cfg.quiet && (want_progress || isatty(STDERR_FILENO));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	o.reactors = cfg.reactors;
	if (nexus_ctx_create(&o, &ctx) < 0) {
		fprintf(stderr, "nexus-copy: %s\n", nexus_last_error());
		return 1;
	}
	cp.ctx = ctx;
	pthread_mutex_init(&cp.lock, NULL);
	pthread_cond_init(&cp.cond, NULL);
	if (open_dev(ctx, argv[optind], &cp.src, &cp.si, "SRC") < 0)
		goto out;
	if (open_dev(ctx, argv[optind + 1], &cp.dst, &cp.di, "DST") < 0)
		goto out;
	if (setup(&cp) < 0)
		goto out;

	cp.phase = "copy  ";
	if (run(&cp, false) < 0) {
		fprintf(stderr, "nexus-copy: %s\n", cp.errmsg);
		goto out;
	}
	el = now_s() - cp.t0;
	if (cfg.flush && (cp.di.ops & NEXUS_OP_BIT(NEXUS_OP_FLUSH)) &&
	    nexus_dev_flush(cp.dst) < 0) {
		fprintf(stderr, "nexus-copy: flush of DST: %s\n",
			nexus_last_error());
		goto out;
	}
	if (!cfg.quiet) {
		human(a, sizeof(a), (double)cp.size);
		human(b, sizeof(b), (double)cp.data_bytes);
		human(c, sizeof(c), (double)cp.zero_bytes);
		human(r, sizeof(r), el > 0 ? cp.size / el : 0);
		fprintf(stderr, "nexus-copy: copied %s in %.2f s (%s/s): %s "
			"data, %s zero", a, el, r, b, c);
		if (cp.skipped_bytes) {
			human(a, sizeof(a), (double)cp.skipped_bytes);
			fprintf(stderr, " (%s already zero on DST)", a);
		}
		fputc('\n', stderr);
	}
	if (cfg.verify) {
		cp.phase = "verify";
		if (run(&cp, true) < 0) {
			fprintf(stderr, "nexus-copy: verify: %s\n", cp.errmsg);
			goto out;
		}
		if (cp.mismatch) {
			fprintf(stderr, "nexus-copy: verify: DST differs from "
				"SRC at offset %" PRIu64 "\n", cp.mismatch_off);
			goto out;
		}
		if (!cfg.quiet)
			fprintf(stderr, "nexus-copy: verify: DST matches SRC\n");
	}
	rc = 0;
out:
	for (unsigned i = 0; i < cp.nslots; i++) {
		free(cp.slots[i].siov.iov_base);
		free(cp.slots[i].diov.iov_base);
	}
	nexus_dev_close(cp.dst);
	nexus_dev_close(cp.src);
	nexus_ctx_destroy(ctx);
	return rc;
}
