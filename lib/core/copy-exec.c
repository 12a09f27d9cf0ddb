/* SPDX-License-Identifier: MIT */
/* The copy executor: slots run the planned jobs on the reactors.
 *
 * A slot is one request in flight with its buffers.  Its first job is
 * posted to the reactor its index gives, so the slots spread over every
 * reactor; from then on a slot that finishes a job accounts it and
 * takes the next queued job itself, on that reactor, without waking the
 * job's thread.  A slot goes idle (and wakes the job's thread) when the
 * queue is empty, the job stops, pauses, or the rate limit says wait.
 *
 * A data job reads SRC and writes DST, or zeroes DST where what it read
 * is all zeroes (sparse copies); a zero job zeroes DST; a verify job
 * reads both sides (or DST only, for a zero range) and compares.  With a
 * lock hook every job runs between the hook's lock and unlock. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy.h"

static void slot_done(struct nx_copy_slot *s, int result, int op);

static const char *op_name(int op)
{
	static const char *const n[] = { "read", "write", "flush", "trim",
					 "write-zeroes" };

	if (op == NX_COPY_OP_LOCK)
		return "lock";
	return op >= 0 && op < 5 ? n[op] : "I/O";
}

/* The one place that submits I/O for the engine. */
static int submit(struct nexus_dev *dev, int op, struct iovec *iov,
		  uint64_t off, uint64_t len, nexus_io_cb cb, void *ud)
{
	struct nexus_io_req req = NEXUS_IO_REQ_INIT;

	req.op = (uint32_t)op;
	req.iov = iov;
	req.iovcnt = iov ? 1 : 0;
	req.offset = off;
	req.length = len;
	req.cb = cb;
	req.user_data = ud;
	return nexus_dev_submit(dev, &req);
}

static bool all_zero(const void *p, size_t len)
{
	const unsigned char *c = p;

	/* buffers are 4096-aligned */
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
	struct nx_copy_slot *s = ud;

	slot_done(s, res, (int)s->cp->zero_op);
}

/* Data read: write it, or zero DST if it is all zeroes. */
static void read_cb(void *ud, int res)
{
	struct nx_copy_slot *s = ud;
	struct nexus_copy *cp = s->cp;
	struct nx_copy_job *j = &s->job;
	int rc;

	if (res < 0) {
		slot_done(s, res, NEXUS_OP_READ);
		return;
	}
	if (!(cp->flags & NEXUS_COPY_NO_SPARSE) &&
	    all_zero(s->siov.iov_base, j->len)) {
		j->kind = NX_COPY_ZERO;
		if (cp->flags & NEXUS_COPY_TARGET_ZERO) {
			slot_done(s, 0, NEXUS_OP_READ);
			return;
		}
		if (cp->zero_op != NX_COPY_NO_ZERO_OP) {
			rc = submit(cp->dst, (int)cp->zero_op, NULL, j->off,
				    j->len, zero_cb, s);
			if (rc < 0)
				slot_done(s, rc, (int)cp->zero_op);
			return;
		}
		j->kind = NX_COPY_DATA; /* written as zero bytes */
	}
	rc = submit(cp->dst, NEXUS_OP_WRITE, &s->siov, j->off, 0, write_cb, s);
	if (rc < 0)
		slot_done(s, rc, NEXUS_OP_WRITE);
}

static void verify_cb(void *ud, int res)
{
	struct nx_copy_slot *s = ud;

	if (res < 0 && s->result >= 0) {
		s->result = res;
		s->failed_op = NEXUS_OP_READ;
	}
	if (atomic_fetch_sub(&s->pending, 1) == 1)
		slot_done(s, 0, NEXUS_OP_READ);
}

/* The job's I/O (after its lock, if any).  A negative return: nothing
 * of the job is in flight, *op is the operation that failed. */
static int start_io(struct nx_copy_slot *s, int *op)
{
	struct nexus_copy *cp = s->cp;
	struct nx_copy_job *j = &s->job;
	int rc;

	s->siov.iov_len = j->len;
	s->diov.iov_len = j->len;
	*op = NEXUS_OP_READ;
	switch (j->kind) {
	case NX_COPY_DATA:
		return submit(cp->src, NEXUS_OP_READ, &s->siov, j->off, 0,
			      read_cb, s);
	case NX_COPY_ZERO:
		*op = (int)cp->zero_op;
		return submit(cp->dst, (int)cp->zero_op, NULL, j->off, j->len,
			      zero_cb, s);
	case NX_COPY_VERIFY_DATA:
		atomic_store(&s->pending, 2);
		rc = submit(cp->src, NEXUS_OP_READ, &s->siov, j->off, 0,
			    verify_cb, s);
		if (rc < 0)
			return rc;
		rc = submit(cp->dst, NEXUS_OP_READ, &s->diov, j->off, 0,
			    verify_cb, s);
		if (rc < 0) /* the SRC read completes into pending */
			verify_cb(s, rc);
		return 0;
	case NX_COPY_VERIFY_ZERO:
		atomic_store(&s->pending, 1);
		return submit(cp->dst, NEXUS_OP_READ, &s->diov, j->off, 0,
			      verify_cb, s);
	}
	return -EINVAL;
}

/* start_io, retrying while a reactor's queue is full (off a reactor). */
static int start_io_retry(struct nx_copy_slot *s, int *op)
{
	int rc;

	while ((rc = start_io(s, op)) == -EAGAIN)
		usleep(100);
	return rc;
}

/* Lock (if hooked), then start the job's I/O.  0: under way (or its
 * lock pending); negative: nothing in flight, *op what failed. */
static int start_job(struct nx_copy_slot *s, int *op)
{
	struct nexus_copy *cp = s->cp;
	int rc;

	s->result = 0;
	s->locked = false;
	if (cp->lock_fn) {
		rc = cp->lock_fn(cp->user_data, s->job.off, s->job.len,
				 (struct nexus_copy_chunk *)s);
		if (rc == NEXUS_COPY_LOCK_PENDING)
			return 0;
		if (rc < 0) {
			*op = NX_COPY_OP_LOCK;
			return rc;
		}
		s->locked = true;
	}
	return start_io_retry(s, op);
}

void nexus_copy_chunk_locked(struct nexus_copy_chunk *chunk, int result)
{
	struct nx_copy_slot *s = (struct nx_copy_slot *)chunk;
	int op = NX_COPY_OP_LOCK, rc = result;

	if (!s)
		return;
	if (rc >= 0) {
		s->locked = true;
		rc = start_io_retry(s, &op);
	}
	if (rc < 0)
		slot_done(s, rc, op);
}

/* Verify: does DST's buffer hold what it should?  Sets diff_off. */
static bool slot_matches(struct nx_copy_slot *s)
{
	const unsigned char *x = s->siov.iov_base, *y = s->diov.iov_base;
	bool data = s->job.kind == NX_COPY_VERIFY_DATA;
	uint64_t len = s->job.len;

	if (data ? !memcmp(x, y, len) : all_zero(y, len))
		return true;
	for (uint64_t i = 0; i < len; i++) {
		if (y[i] != (data ? x[i] : 0)) {
			s->diff_off = s->job.off + i;
			break;
		}
	}
	return false;
}

void nx_copy_fail(struct nexus_copy *cp, int err, uint64_t off,
		  const char *fmt, ...)
{
	va_list ap;

	/* slots run on several reactors: of the errors of the slots in
	 * flight report the lowest offset (jobs are taken in order, so it
	 * is the first one) */
	if (cp->error && off >= cp->error_off)
		return;
	cp->error = err;
	cp->error_off = off;
	va_start(ap, fmt);
	vsnprintf(cp->errmsg, sizeof(cp->errmsg), fmt, ap);
	va_end(ap);
}

static void fail_slot(struct nexus_copy *cp, const struct nx_copy_slot *s)
{
	bool verify = cp->phase == NEXUS_COPY_PHASE_VERIFY;
	const char *who = s->failed_op == NX_COPY_OP_LOCK ? "the range"
			  : s->failed_op != NEXUS_OP_READ  ? "DST"
			  : verify			   ? "SRC or DST"
							   : "SRC";

	nx_copy_fail(cp, s->result, s->job.off,
		     "%s%s of %llu bytes at offset %llu on %s: %s",
		     verify ? "verify: " : "", op_name(s->failed_op),
		     (unsigned long long)s->job.len,
		     (unsigned long long)s->job.off, who,
		     strerror(-s->result));
}

void nx_copy_take(struct nexus_copy *cp, struct nx_copy_slot *s)
{
	s->job = cp->queue[cp->qhead];
	cp->qhead = (cp->qhead + 1) % cp->qcap;
	cp->qlen--;
	cp->inflight++;
}

/* Account a finished job (lock held). */
static void account(struct nexus_copy *cp, struct nx_copy_slot *s,
		    bool same)
{
	if (s->result < 0) {
		fail_slot(cp, s);
	} else if (!same) {
		if (!cp->mismatch || s->diff_off < cp->mismatch_off)
			cp->mismatch_off = s->diff_off;
		cp->mismatch = true;
	} else {
		if (s->job.kind == NX_COPY_ZERO)
			cp->zero_bytes += s->job.len;
		else if (s->job.kind == NX_COPY_DATA)
			cp->data_bytes += s->job.len;
		cp->done_bytes += s->job.len;
	}
}

/* A slot finished its job (any thread): unlock, account, then start the
 * next queued job right here. */
static void slot_done(struct nx_copy_slot *s, int result, int op)
{
	struct nexus_copy *cp = s->cp;
	int rc;

	for (;;) {
		bool verify = s->job.kind == NX_COPY_VERIFY_DATA ||
			      s->job.kind == NX_COPY_VERIFY_ZERO;
		bool same;

		if (result < 0 && s->result >= 0) {
			s->result = result;
			s->failed_op = op;
		}
		if (s->locked) {
			s->locked = false;
			cp->unlock_fn(cp->user_data, s->job.off, s->job.len,
				      s->result < 0 ? s->result : 0);
		}
		same = s->result < 0 || !verify || slot_matches(s);
		pthread_mutex_lock(&cp->lock);
		cp->inflight--;
		account(cp, s, same);
		if (nx_copy_stopping(cp) || !cp->qlen ||
		    !nx_copy_may_start(cp, &cp->queue[cp->qhead])) {
			cp->idle[cp->nidle++] = s;
			pthread_cond_broadcast(&cp->cond);
			pthread_mutex_unlock(&cp->lock);
			return;
		}
		nx_copy_take(cp, s);
		if (cp->qlen <= cp->qcap / 2)
			pthread_cond_broadcast(&cp->cond); /* plan more */
		pthread_mutex_unlock(&cp->lock);
		rc = start_job(s, &op);
		if (rc >= 0)
			return;
		result = rc;
	}
}

static void slot_start_here(void *arg)
{
	struct nx_copy_slot *s = arg;
	int op, rc = start_job(s, &op);

	if (rc < 0)
		slot_done(s, rc, op);
}

void nx_copy_slot_start(struct nexus_copy *cp, struct nx_copy_slot *s)
{
	int n = nexus_ctx_reactor_count(cp->ctx);
	struct nexus_reactor *r =
		n > 0 ? nexus_ctx_reactor(cp->ctx, (unsigned)(s - cp->slots) %
							   (unsigned)n)
		      : NULL;

	if (!r || nexus_reactor_post(r, slot_start_here, s) < 0)
		slot_start_here(s);
}

int nx_copy_slots_alloc(struct nexus_copy *cp, unsigned n)
{
	size_t len = (cp->block + 4095) / 4096 * 4096;
	bool verify = cp->flags & NEXUS_COPY_VERIFY;

	cp->slots = calloc(n, sizeof(*cp->slots));
	cp->idle = calloc(n, sizeof(*cp->idle));
	cp->qcap = 2 * n < 8 ? 8 : 2 * n;
	cp->queue = calloc(cp->qcap, sizeof(*cp->queue));
	if (!cp->slots || !cp->idle || !cp->queue)
		return nexus_error(-ENOMEM, "copy: out of memory");
	cp->nslots = n;
	for (unsigned i = 0; i < n; i++) {
		struct nx_copy_slot *s = &cp->slots[i];

		s->cp = cp;
		s->siov.iov_base = aligned_alloc(4096, len);
		s->diov.iov_base = verify ? aligned_alloc(4096, len) : NULL;
		if (!s->siov.iov_base || (verify && !s->diov.iov_base))
			return nexus_error(-ENOMEM, "copy: out of memory for "
					   "%u buffers of %zu bytes", n, len);
	}
	return 0;
}

void nx_copy_slots_free(struct nexus_copy *cp)
{
	for (unsigned i = 0; cp->slots && i < cp->nslots; i++) {
		free(cp->slots[i].siov.iov_base);
		free(cp->slots[i].diov.iov_base);
	}
	free(cp->slots);
	free(cp->idle);
	free(cp->queue);
}
