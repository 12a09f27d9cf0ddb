/* SPDX-License-Identifier: MIT */
/* mirror: the data path.
 *
 * An I/O of the mirror becomes one *leg* per child it goes to: a read
 * one leg (another after a failure, on a child not tried yet), a write,
 * TRIM, WRITE_ZEROES or FLUSH one leg per child that receives writes (in
 * sync or being rebuilt).  Legs are allocated apart from the I/O, from a
 * per-reactor free list, because a leg may outlive its I/O: when a child
 * does not answer within timeout-ms, the child is faulted, its leg is
 * detached (its late completion only frees it) and the I/O goes on with
 * the other children.  A read leg reads into a buffer of its own when a
 * timeout is set, so that a late answer never lands in memory that the
 * caller got back long ago, and a write copies its data once for its
 * legs, so that a late leg never reads the caller's buffers.
 *
 * Every I/O with legs in flight sits on its reactor's list in start
 * order; a timer on the reactor (a tenth of the timeout) looks at the
 * oldest ones. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mirror.h"

struct mirror_rstate;

/* A write's data, copied once for all its legs when a timeout is set: a
 * leg detached from its write may still read it after the caller got
 * its buffers (and iovec) back.  Freed by the last leg. */
struct mirror_wbuf {
	struct mirror_wbuf *next; /* free list */
	void *data;
	size_t len;
	unsigned refs;
};

struct mirror_leg {
	struct mirror_leg *next; /* free list */
	struct mirror_io *mio;	 /* NULL once detached */
	struct mirror_rstate *rs;
	unsigned child;
	void *bounce;
	size_t bounce_len;
	struct mirror_wbuf *wb; /* writes: the data, shared */
	struct iovec biov;
};

/* The timer lives apart from the reactor state: a timeout still armed
 * when the device closes frees it when it fires. */
struct mirror_timer {
	struct nexus_cqe_handler ev;
	struct __kernel_timespec ts;
	struct mirror_rstate *rs;
	bool armed, dead;
};

struct mirror_rstate {
	struct mirror *m;
	struct nexus_reactor *r;
	struct mirror_leg *free_legs;
	struct mirror_wbuf *free_wbufs;
	struct mirror_io *thead, *ttail; /* I/Os with legs, oldest first */
	struct mirror_timer *timer;
};

static void read_next(struct mirror_io *mio);

/* ---- timeouts ---- */

static void timer_fn(struct nexus_cqe_handler *ev, int res, uint32_t fl);

static void timer_arm(struct mirror_rstate *rs)
{
	struct mirror_timer *t = rs->timer;
	uint64_t tick = atomic_load(&rs->m->timeout_ns) / 10;
	struct io_uring_sqe *sqe;

	if (t->armed || !tick)
		return;
	if (tick < 1000000)
		tick = 1000000;
	sqe = nexus_reactor_sqe(rs->r, &t->ev);
	if (!sqe)
		return; /* ring full: armed again by the next I/O */
	t->ts.tv_sec = (long long)(tick / 1000000000u);
	t->ts.tv_nsec = (long long)(tick % 1000000000u);
	io_uring_prep_timeout(sqe, &t->ts, 0, 0);
	t->armed = true;
}

static void timed_add(struct mirror_rstate *rs, struct mirror_io *mio)
{
	mio->timed = true;
	mio->tnext = NULL;
	mio->tprev = rs->ttail;
	if (rs->ttail)
		rs->ttail->tnext = mio;
	else
		rs->thead = mio;
	rs->ttail = mio;
	timer_arm(rs);
}

static void timed_del(struct mirror_rstate *rs, struct mirror_io *mio)
{
	if (!mio->timed)
		return;
	mio->timed = false;
	if (mio->tprev)
		mio->tprev->tnext = mio->tnext;
	else
		rs->thead = mio->tnext;
	if (mio->tnext)
		mio->tnext->tprev = mio->tprev;
	else
		rs->ttail = mio->tprev;
}

static void leg_done(struct mirror_io *mio, struct mirror_leg *leg, int res,
		     bool timeout);

/* Detach the legs of I/Os older than the timeout and go on without
 * them, their children faulted. */
static void timer_fn(struct nexus_cqe_handler *ev, int res, uint32_t fl)
{
	struct mirror_timer *t = container_of(ev, struct mirror_timer, ev);
	struct mirror_rstate *rs = t->rs;
	uint64_t limit, now = nx_now_ns();

	(void)res;
	(void)fl;
	t->armed = false;
	if (t->dead) {
		free(t);
		return;
	}
	limit = atomic_load(&rs->m->timeout_ns);
	while (limit && rs->thead && rs->thead->start_ns + limit <= now) {
		struct mirror_io *mio = rs->thead;

		timed_del(rs, mio);
		for (unsigned c = 0; c < mirror_slots(rs->m) && mio; c++) {
			struct mirror_leg *leg = mio->legs[c];
			bool last = mio->io->op == NEXUS_OP_READ ||
				    mio->pending == 1;

			if (!leg)
				continue;
			leg->mio = NULL;
			mio->legs[c] = NULL;
			atomic_fetch_add(&rs->m->c[c].timeouts, 1);
			/* completes mio, or restarts a read elsewhere */
			leg_done(mio, leg, -ETIMEDOUT, true);
			if (last)
				mio = NULL;
		}
	}
	if (rs->thead)
		timer_arm(rs);
}

/* ---- legs ---- */

static struct mirror_leg *leg_get(struct mirror_rstate *rs)
{
	struct mirror_leg *leg = rs->free_legs;

	if (leg)
		rs->free_legs = leg->next;
	else
		leg = malloc(sizeof(*leg));
	if (leg)
		memset(leg, 0, sizeof(*leg));
	return leg;
}

static struct mirror_wbuf *wbuf_get(struct mirror_rstate *rs,
				     const struct nexus_io *io)
{
	struct mirror_wbuf *w = rs->free_wbufs;
	char *p;

	if (w)
		rs->free_wbufs = w->next;
	else if (!(w = malloc(sizeof(*w))))
		return NULL;
	w->data = nexus_buf_alloc(rs->r, io->length);
	if (!w->data) {
		w->next = rs->free_wbufs;
		rs->free_wbufs = w;
		return NULL;
	}
	p = w->data;
	for (int i = 0; i < io->iovcnt; i++) {
		memcpy(p, io->iov[i].iov_base, io->iov[i].iov_len);
		p += io->iov[i].iov_len;
	}
	w->len = io->length;
	w->refs = 1;
	return w;
}

static void wbuf_put(struct mirror_rstate *rs, struct mirror_wbuf *w)
{
	if (--w->refs)
		return;
	nexus_buf_free(rs->r, w->data, w->len);
	w->next = rs->free_wbufs;
	rs->free_wbufs = w;
}

static void leg_put(struct mirror_leg *leg)
{
	struct mirror_rstate *rs = leg->rs;
	struct mirror_child *c = &rs->m->c[leg->child];

	if (leg->bounce)
		nexus_buf_free(rs->r, leg->bounce, leg->bounce_len);
	if (leg->wb)
		wbuf_put(rs, leg->wb);
	leg->next = rs->free_legs;
	rs->free_legs = leg;
	/* last: close() waits for this to reach 0 before it frees rs */
	atomic_fetch_sub_explicit(&c->in_flight, 1, memory_order_release);
}

static void copy_out(const struct iovec *iov, int iovcnt, const char *src)
{
	for (int i = 0; i < iovcnt; i++) {
		memcpy(iov[i].iov_base, src, iov[i].iov_len);
		src += iov[i].iov_len;
	}
}

static void leg_cb(void *ud, int res)
{
	struct mirror_leg *leg = ud;

	if (leg->mio) {
		leg->mio->legs[leg->child] = NULL;
		leg_done(leg->mio, leg, res, false);
	}
	leg_put(leg);
}

/* Start a leg of @p mio on child @p c; false (and @p *err) when it could
 * not be submitted. */
static bool leg_start(struct mirror_io *mio, unsigned c, int *err)
{
	struct nexus_io *io = mio->io;
	struct mirror_rstate *rs = io->rstate;
	struct mirror *m = rs->m;
	struct mirror_leg *leg = leg_get(rs);
	const struct iovec *iov = io->iov;
	int iovcnt = io->iovcnt, rc;

	if (!leg) {
		*err = -ENOMEM;
		return false;
	}
	leg->rs = rs;
	leg->child = c;
	if (io->op == NEXUS_OP_READ && atomic_load(&m->timeout_ns)) {
		leg->bounce = nexus_buf_alloc(rs->r, io->length);
		if (!leg->bounce) {
			leg->next = rs->free_legs;
			rs->free_legs = leg;
			*err = -ENOMEM;
			return false;
		}
		leg->bounce_len = io->length;
		leg->biov.iov_base = leg->bounce;
		leg->biov.iov_len = io->length;
		iov = &leg->biov;
		iovcnt = 1;
	}
	if (mio->wb) {
		leg->wb = mio->wb;
		leg->wb->refs++;
		leg->biov.iov_base = leg->wb->data;
		leg->biov.iov_len = leg->wb->len;
		iov = &leg->biov;
		iovcnt = 1;
	}
	leg->mio = mio;
	mio->legs[c] = leg;
	atomic_fetch_add(&m->c[c].in_flight, 1);
	atomic_fetch_add_explicit(io->op == NEXUS_OP_READ ? &m->c[c].reads
							   : &m->c[c].writes,
				  1, memory_order_relaxed);
	rc = nx_submit(m->c[c].dev, (int)io->op, iov, iovcnt, io->offset,
		       io->length, io->flags, leg_cb, leg);
	if (rc < 0) {
		mio->legs[c] = NULL;
		leg_put(leg);
		*err = rc;
		return false;
	}
	return true;
}

/* ---- completion of the mirror's I/O ---- */

static void finish(struct mirror_io *mio, int result)
{
	struct nexus_io *io = mio->io;
	struct mirror_rstate *rs = io->rstate;
	struct mirror *m = rs->m;

	timed_del(rs, mio);
	if (io->op == NEXUS_OP_READ || io->op == NEXUS_OP_BLOCK_STATUS) {
		nexus_io_complete(io, result);
		return;
	}
	if (io->op != NEXUS_OP_FLUSH)
		mirror_write_done(m, mio);
	mirror_complete_durable(m, mio, result);
}

static bool ranged(const struct nexus_io *io)
{
	return io->op == NEXUS_OP_WRITE || io->op == NEXUS_OP_TRIM ||
	       io->op == NEXUS_OP_WRITE_ZEROES;
}

/* All legs of a write are done: it succeeded if a child that is in sync
 * *now* has it (one in sync when the leg started may have been faulted
 * meanwhile, and the only one left in sync may be the one that failed). */
static void write_finish(struct mirror_io *mio)
{
	struct mirror *m = ((struct mirror_rstate *)mio->io->rstate)->m;
	bool ok = false;

	for (unsigned c = 0; c < MIRROR_SLOTS && !ok; c++)
		ok = (mio->ok_mask & (1u << c)) && mirror_in_sync(m, c);
	finish(mio, ok ? 0 : mio->err ? mio->err : -EIO);
}

/* A leg finished (or timed out) with @p res. */
static void leg_done(struct mirror_io *mio, struct mirror_leg *leg, int res,
		     bool timeout)
{
	struct nexus_io *io = mio->io;
	struct mirror *m = leg->rs->m;
	unsigned c = leg->child;

	if (res < 0) {
		atomic_fetch_add_explicit(&m->c[c].errors, 1,
					  memory_order_relaxed);
		/* before the fault: the record written for it holds them */
		if (ranged(io) &&
		    mirror_dirty_mark(m, c, io->offset, io->length) && m->store)
			mirror_record_needed(m);
		else if (io->op == NEXUS_OP_FLUSH)
			atomic_store(&m->c[c].dirty_valid, false);
		mirror_fault_child(m, c, res, timeout);
	}
	if (io->op == NEXUS_OP_READ) {
		mio->pending = 0;
		if (res >= 0) {
			if (leg->bounce)
				copy_out(io->iov, io->iovcnt, leg->bounce);
			finish(mio, 0);
			return;
		}
		mio->err = res;
		read_next(mio); /* another child, or the error */
		return;
	}
	if (res >= 0)
		mio->ok_mask |= 1u << c;
	else if (!mio->err)
		mio->err = res;
	if (--mio->pending == 0)
		write_finish(mio);
}

/* ---- reads ---- */

static int pick_reader(struct mirror *m, uint32_t tried)
{
	int policy = atomic_load_explicit(&m->read_policy,
					  memory_order_relaxed);
	unsigned n = mirror_slots(m), start, best = n;
	uint64_t least = UINT64_MAX;

	if (policy == MIRROR_READ_PREFER) {
		unsigned p = atomic_load_explicit(&m->prefer,
						  memory_order_relaxed);

		if (p < n && !(tried & (1u << p)) && mirror_in_sync(m, p))
			return (int)p;
	}
	start = atomic_fetch_add_explicit(&m->rr, 1, memory_order_relaxed);
	for (unsigned k = 0; k < n; k++) {
		unsigned c = (start + k) % n;
		uint64_t f;

		if ((tried & (1u << c)) || !mirror_in_sync(m, c))
			continue;
		if (policy != MIRROR_READ_LEAST)
			return (int)c;
		f = atomic_load_explicit(&m->c[c].in_flight,
					 memory_order_relaxed);
		if (f < least) {
			least = f;
			best = c;
		}
	}
	return best < n ? (int)best : -1;
}

/* Read from an in-sync child not tried yet; with none left, fail with
 * the last error. */
static void read_next(struct mirror_io *mio)
{
	struct mirror *m = ((struct mirror_rstate *)mio->io->rstate)->m;
	int c, err;

	if (atomic_load_explicit(&m->timeout_ns, memory_order_relaxed) &&
	    !mio->timed) {
		mio->start_ns = nx_now_ns();
		timed_add(mio->io->rstate, mio);
	}
	for (unsigned tries = 0; tries < MIRROR_SLOTS; tries++) {
		c = pick_reader(m, mio->tried);
		if (c < 0)
			break;
		mio->tried |= 1u << c;
		mio->pending = 1;
		if (leg_start(mio, (unsigned)c, &err))
			return;
		mio->pending = 0;
		mio->err = err;
	}
	finish(mio, mio->err ? mio->err : -EIO);
}

/* ---- writes, TRIM, WRITE_ZEROES, FLUSH ---- */

void mirror_write_start(struct mirror_io *mio)
{
	struct nexus_io *io = mio->io;
	struct mirror *m = ((struct mirror_rstate *)io->rstate)->m;
	unsigned n = mirror_slots(m);
	bool fresh = false;

	if (atomic_load_explicit(&m->timeout_ns, memory_order_relaxed)) {
		mio->start_ns = nx_now_ns();
		timed_add(io->rstate, mio);
	}
	mio->targets = 0;
	for (unsigned c = 0; c < n; c++) {
		if (mirror_writable(m, c))
			mio->targets |= 1u << c;
		else if (ranged(io) &&
			 atomic_load(&m->c[c].state) != MIRROR_REMOVED)
			fresh |= mirror_dirty_mark(m, c, io->offset, io->length);
	}
	/* a region newly dirty is in the record before any child gets the
	 * write: after a crash the record names every region where the
	 * children may differ (not only those of acknowledged writes) */
	if (fresh && m->store)
		mirror_dispatch_durable(m, mio);
	else
		mirror_write_dispatch(mio);
}

void mirror_write_dispatch(struct mirror_io *mio)
{
	struct nexus_io *io = mio->io;
	struct mirror_rstate *rs = io->rstate;
	struct mirror_wbuf *wb = NULL;
	int err = ranged(io) ? mirror_owned(rs->m) : 0;

	/* a process that may have lost the volume (its lease) changes no
	 * data any more: the new owner's children are not ours (a FLUSH
	 * changes nothing) */
	if (err) {
		mirror_write_abort(mio, err);
		return;
	}
	if (io->op == NEXUS_OP_WRITE &&
	    atomic_load_explicit(&rs->m->timeout_ns, memory_order_relaxed) &&
	    !(wb = wbuf_get(rs, io))) {
		mirror_write_abort(mio, -ENOMEM);
		return;
	}
	mio->wb = wb;
	/* one extra count while the legs are started: none can finish the
	 * I/O before the last is out */
	mio->pending = 1;
	for (unsigned c = 0; c < MIRROR_SLOTS; c++) {
		if (!(mio->targets & (1u << c)))
			continue;
		mio->pending++;
		if (!leg_start(mio, c, &err)) {
			struct mirror_leg fake = { .rs = io->rstate,
						   .child = c };

			leg_done(mio, &fake, err, false);
		}
	}
	mio->wb = NULL;
	if (wb)
		wbuf_put(rs, wb); /* the legs hold theirs */
	if (--mio->pending == 0)
		write_finish(mio);
}

void mirror_write_abort(struct mirror_io *mio, int err)
{
	struct nexus_io *io = mio->io;

	/* no child got it: nothing to wait for */
	timed_del(io->rstate, mio);
	mirror_write_done(((struct mirror_rstate *)io->rstate)->m, mio);
	nexus_io_complete(io, err);
}

int mirror_submit(struct nexus_io *io)
{
	struct mirror_rstate *rs = io->rstate;
	struct mirror *m = rs->m;
	struct mirror_io *mio = io->driver_ctx;

	memset(mio, 0, sizeof(*mio));
	mio->io = io;
	if (io->op == NEXUS_OP_BLOCK_STATUS) {
		int c = pick_reader(m, 0);

		return c < 0 ? -EIO : nexus_io_forward(io, m->c[c].dev);
	}
	if (io->op == NEXUS_OP_READ) {
		read_next(mio);
		return 0;
	}
	if (io->op == NEXUS_OP_FLUSH || mirror_write_admit(m, mio))
		mirror_write_start(mio);
	return 0;
}

/* ---- per-reactor state ---- */

int mirror_reactor_init(struct nexus_dev *dev, struct nexus_reactor *r,
			void **rstate)
{
	struct mirror *m = nexus_dev_private(dev);
	struct mirror_rstate *rs = calloc(1, sizeof(*rs));
	struct mirror_timer *t = calloc(1, sizeof(*t));

	if (!rs || !t) {
		free(rs);
		free(t);
		return nexus_error(-ENOMEM, "out of memory");
	}
	t->ev.fn = timer_fn;
	t->rs = rs;
	rs->m = m;
	rs->r = r;
	rs->timer = t;
	m->rstates[nexus_reactor_index(r)] = rs;
	*rstate = rs;
	atomic_fetch_add(&m->ready, 1);
	return 0;
}

static void noop_fn(struct nexus_cqe_handler *ev, int res, uint32_t fl)
{
	(void)ev;
	(void)res;
	(void)fl;
}

static struct nexus_cqe_handler noop_ev = { noop_fn };

/* The legs still out (timed out, their children hung) come back to
 * rs->free_legs later: mirror_rstates_free() frees rs after that. */
void mirror_reactor_fini(struct nexus_dev *dev, struct nexus_reactor *r,
			 void *rstate)
{
	struct mirror_rstate *rs = rstate;
	struct mirror_timer *t = rs->timer;

	(void)dev;
	if (t->armed) {
		struct io_uring_sqe *sqe = nexus_reactor_sqe(r, &noop_ev);

		t->dead = true; /* freed when it fires */
		if (sqe)
			io_uring_prep_timeout_remove(sqe,
						     (uint64_t)(uintptr_t)&t->ev,
						     0);
	} else {
		free(t);
	}
	rs->timer = NULL;
}

bool mirror_rstates_free(struct mirror *m, unsigned wait_ms)
{
	for (unsigned c = 0; c < m->n; c++)
		for (unsigned t = 0; atomic_load(&m->c[c].in_flight); t++) {
			if (t >= wait_ms)
				return false;
			usleep(1000);
		}
	for (unsigned i = 0; i < m->nrstates; i++) {
		struct mirror_rstate *rs = m->rstates[i];

		if (!rs)
			continue;
		while (rs->free_legs) {
			struct mirror_leg *leg = rs->free_legs;

			rs->free_legs = leg->next;
			free(leg);
		}
		while (rs->free_wbufs) {
			struct mirror_wbuf *w = rs->free_wbufs;

			rs->free_wbufs = w->next;
			free(w);
		}
		free(rs);
		m->rstates[i] = NULL;
	}
	return true;
}
