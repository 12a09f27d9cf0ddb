/* SPDX-License-Identifier: MIT */
/* throttle: IOPS and bytes-per-second limits with a burst, per device.
 *
 * One global token bucket per limit, shared by all reactors, kept as a
 * GCRA "theoretical arrival time" (TAT) in a single atomic word: an I/O
 * of cost c reserves c/rate seconds of the bucket with one CAS and may
 * start once the bucket, burst included, covers it:
 *
 *     tat'  = max(tat, now) + c / rate
 *     ready = tat' - burst / rate          (start now if ready <= now)
 *
 * Why global rather than a share per reactor: the load of a device is
 * often on one reactor only (one NBD connection, one application
 * thread), and a per-reactor share would then cap it at limit/N.  The
 * atomic costs one cache line shared between reactors, only on
 * throttled devices.  Reservations are made in submission order, so
 * the bucket is fair and no large I/O starves behind small ones.
 *
 * An I/O that may not start yet waits in its reactor's FIFO (sorted by
 * ready time, as reservations only grow) and is released by an io_uring
 * timeout on that reactor; nothing spins.  Everything queued is
 * released from the timer handler only, so an armed timer implies
 * queued I/O, which the core counts as in flight: a device never closes
 * under an armed timer.
 *
 * Limits change at run time through nexus_dev_control(): a seqlock
 * publishes them, the buckets restart full, and each reactor re-reserves
 * what it had queued under the old limits (a message posted to it fires
 * its timer now).  IOPS counts every operation; bytes count READ and
 * WRITE data (a TRIM of a terabyte is not a terabyte of traffic). */
#include "config.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <liburing.h>
#include <nexus/nexus_driver.h>

#include "shim.h"

#define NS 1000000000ull
/* Release what is due within this much of the timer (hrtimer slack). */
#define SLACK_NS 20000ull

enum { L_IOPS, L_BPS, L_BURST_IOPS, L_BURST_BYTES, L_COUNT };

static const char *const lim_names[L_COUNT] = {
	"iops", "bps", "burst-iops", "burst-bytes",
};

struct thr_rs;

struct throttle {
	struct nexus_dev *dev;
	pthread_mutex_t lock; /* serialises control() */
	atomic_uint seq;      /* seqlock over lim[]; odd while written */
	_Atomic uint64_t lim[L_COUNT]; /* 0: no limit / default burst */
	_Atomic uint64_t tat[2];       /* ns, CLOCK_MONOTONIC */
	unsigned nreactors;
	struct thr_rs **rs; /* per reactor, for kicks */
};

/* Limits as one reader saw them. */
struct lim {
	uint64_t rate[2];  /* ops/s, bytes/s; 0 = unlimited */
	uint64_t burst[2]; /* ops, bytes */
	unsigned gen;
};

struct thr_io {
	struct thr_io *next;
	struct nexus_io *io;
	uint64_t ready; /* ns */
	unsigned gen;	/* limits generation of the reservation */
};

struct thr_rs {
	struct throttle *t;
	struct nexus_reactor *r;
	struct nexus_cqe_handler timer_ev;
	struct __kernel_timespec ts;  /* armed deadline (absolute) */
	struct __kernel_timespec uts; /* deadline of a timer update */
	struct thr_io *head, *tail;
	uint64_t deadline;
	bool armed;
	unsigned gen;
};

/* CQE of a timeout update: nothing to do.  Static, so that it outlives
 * any device. */
static void ignore_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	(void)ev;
	(void)res;
	(void)flags;
}
static struct nexus_cqe_handler ignore_ev = { ignore_event };

/* A limit of 0 could never pass an I/O: every limit is at least 1 (leave
 * it out for no limit).  Checked when the pipeline is parsed. */
static const struct nexus_option_desc thr_options[] = {
	{ "iops", NEXUS_OPT_UINT, NULL,
	  "operations per second (all operations count)", 0, .min = 1 },
	{ "bps", NEXUS_OPT_SIZE, NULL,
	  "bytes per second of READ and WRITE data (e.g. 100M)", 0,
	  .min = 1 },
	{ "burst-iops", NEXUS_OPT_UINT, NULL,
	  "operations allowed at once after idling (default: iops/10, "
	  "at least 1)", 0, .min = 1 },
	{ "burst-bytes", NEXUS_OPT_SIZE, NULL,
	  "bytes allowed at once after idling (default: bps/10, at least "
	  "1 byte; larger I/O waits for its excess)", 0, .min = 1 },
	{ NULL, 0, NULL, NULL, 0 },
};

static void read_limits(struct throttle *t, struct lim *l)
{
	uint64_t v[L_COUNT];
	unsigned s;

	for (;;) {
		s = atomic_load_explicit(&t->seq, memory_order_acquire);
		if (s & 1)
			continue; /* a writer is mid-update: a few stores */
		for (unsigned i = 0; i < L_COUNT; i++)
			v[i] = atomic_load_explicit(&t->lim[i],
						    memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&t->seq, memory_order_relaxed) == s)
			break;
	}
	for (unsigned d = 0; d < 2; d++) {
		l->rate[d] = v[L_IOPS + d];
		l->burst[d] = v[L_BURST_IOPS + d];
		if (!l->burst[d])
			l->burst[d] = l->rate[d] / 10 ? l->rate[d] / 10 : 1;
	}
	l->gen = s;
}

/* Reserve @p cost in bucket @p d; return the time the I/O may start. */
static uint64_t reserve(struct throttle *t, const struct lim *l, unsigned d,
			uint64_t cost, uint64_t now)
{
	uint64_t inc, tol, old, next;

	if (!l->rate[d] || !cost)
		return 0;
	inc = (uint64_t)((unsigned __int128)cost * NS / l->rate[d]);
	tol = (uint64_t)((unsigned __int128)l->burst[d] * NS / l->rate[d]);
	old = atomic_load_explicit(&t->tat[d], memory_order_relaxed);
	do {
		next = (old > now ? old : now) + inc;
	} while (!atomic_compare_exchange_weak_explicit(
		&t->tat[d], &old, next, memory_order_relaxed,
		memory_order_relaxed));
	return next > tol ? next - tol : 0;
}

static uint64_t reserve_io(struct throttle *t, const struct lim *l,
			   const struct nexus_io *io, uint64_t now)
{
	uint64_t bytes = io->op == NEXUS_OP_READ || io->op == NEXUS_OP_WRITE
				 ? io->length
				 : 0;
	uint64_t a = reserve(t, l, 0, 1, now);
	uint64_t b = reserve(t, l, 1, bytes, now);

	return a > b ? a : b;
}

static void set_ts(struct __kernel_timespec *ts, uint64_t t)
{
	ts->tv_sec = (long long)(t / NS);
	ts->tv_nsec = (long long)(t % NS);
}

static void release_all(struct thr_rs *rs);

/* Make the timer fire at @p when (arm it, or move it earlier). */
static void arm(struct thr_rs *rs, uint64_t when)
{
	struct io_uring_sqe *sqe;

	if (rs->armed) {
		if (when >= rs->deadline)
			return;
		sqe = nexus_reactor_sqe(rs->r, &ignore_ev);
		if (!sqe)
			return; /* it fires later: late, never lost */
		set_ts(&rs->uts, when);
		io_uring_prep_timeout_update(sqe, &rs->uts,
					     (uint64_t)(uintptr_t)&rs->timer_ev,
					     IORING_TIMEOUT_ABS);
		rs->deadline = when;
		return;
	}
	sqe = nexus_reactor_sqe(rs->r, &rs->timer_ev);
	if (!sqe) {
		/* The ring cannot take a timer: let the queue go rather than
		 * hold it with nothing to release it. */
		nexus_log(nexus_dev_ctx(rs->t->dev), NEXUS_LOG_WARN,
			  "throttle: io_uring full, releasing queued I/O early");
		release_all(rs);
		return;
	}
	set_ts(&rs->ts, when);
	io_uring_prep_timeout(sqe, &rs->ts, 0, IORING_TIMEOUT_ABS);
	rs->armed = true;
	rs->deadline = when;
}

static void start_queued(struct thr_io *ti)
{
	int rc = nx_shim_pass(ti->io);

	if (rc < 0)
		nexus_io_complete(ti->io, rc);
}

static void release_all(struct thr_rs *rs)
{
	while (rs->head) {
		struct thr_io *ti = rs->head;

		rs->head = ti->next;
		start_queued(ti);
	}
	rs->tail = NULL;
}

/* The limits changed since the queue was reserved: reserve it again, in
 * order, under the new ones. */
static void rereserve(struct thr_rs *rs, const struct lim *l, uint64_t now)
{
	for (struct thr_io *ti = rs->head; ti; ti = ti->next) {
		ti->ready = reserve_io(rs->t, l, ti->io, now);
		ti->gen = l->gen;
	}
	rs->gen = l->gen;
}

static void timer_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct thr_rs *rs = container_of(ev, struct thr_rs, timer_ev);
	struct lim l;
	uint64_t now;

	(void)res; /* -ETIME, or -ECANCELED at ring exit */
	(void)flags;
	rs->armed = false;
	read_limits(rs->t, &l);
	now = nx_now_ns();
	if (l.gen != rs->gen)
		rereserve(rs, &l, now);
	while (rs->head && rs->head->ready <= now + SLACK_NS) {
		struct thr_io *ti = rs->head;

		rs->head = ti->next;
		if (!rs->head)
			rs->tail = NULL;
		start_queued(ti);
	}
	if (rs->head)
		arm(rs, rs->head->ready);
}

static int thr_submit(struct nexus_io *io)
{
	struct thr_rs *rs = io->rstate;
	struct thr_io *ti = io->driver_ctx;
	uint64_t now = nx_now_ns();
	struct lim l;

	if (io->op == NEXUS_OP_BLOCK_STATUS) /* no data: not limited */
		return nx_shim_pass(io);
	read_limits(rs->t, &l);
	if (l.gen != rs->gen)
		rereserve(rs, &l, now);
	ti->io = io;
	ti->next = NULL;
	ti->gen = l.gen;
	ti->ready = reserve_io(rs->t, &l, io, now);
	if (!rs->head && ti->ready <= now)
		return nx_shim_pass(io);
	if (rs->tail)
		rs->tail->next = ti;
	else
		rs->head = ti;
	rs->tail = ti;
	arm(rs, rs->head->ready);
	return 0;
}

/* Posted by control(): fire the timer now so that queued I/O is
 * re-reserved under the new limits. */
static void kick(void *arg)
{
	struct thr_rs *rs = arg;

	if (rs->armed)
		arm(rs, nx_now_ns());
}

static int thr_reactor_init(struct nexus_dev *dev, struct nexus_reactor *r,
			    void **rstate)
{
	struct throttle *t = nexus_dev_private(dev);
	struct thr_rs *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return nexus_error(-ENOMEM, "out of memory");
	rs->t = t;
	rs->r = r;
	rs->timer_ev.fn = timer_event;
	rs->gen = atomic_load(&t->seq);
	pthread_mutex_lock(&t->lock);
	if (nexus_reactor_index(r) < t->nreactors)
		t->rs[nexus_reactor_index(r)] = rs;
	pthread_mutex_unlock(&t->lock);
	*rstate = rs;
	return 0;
}

static void thr_reactor_fini(struct nexus_dev *dev, struct nexus_reactor *r,
			     void *rstate)
{
	struct throttle *t = nexus_dev_private(dev);

	pthread_mutex_lock(&t->lock);
	if (nexus_reactor_index(r) < t->nreactors)
		t->rs[nexus_reactor_index(r)] = NULL;
	pthread_mutex_unlock(&t->lock);
	free(rstate);
}

/* Parse a runtime value: a number (size suffixes for byte limits) or
 * "unlimited"/"off" (0). */
static int parse_limit(const char *s, bool size, uint64_t *out)
{
	if (!strcasecmp(s, "unlimited") || !strcasecmp(s, "off")) {
		*out = 0;
		return 0;
	}
	return nx_parse_u64(s, size, out);
}

/* Publish new limits (t->lock held). */
static void publish(struct throttle *t, const uint64_t *v)
{
	atomic_fetch_add_explicit(&t->seq, 1, memory_order_acq_rel);
	atomic_thread_fence(memory_order_release);
	for (unsigned i = 0; i < L_COUNT; i++)
		atomic_store_explicit(&t->lim[i], v[i], memory_order_relaxed);
	/* buckets restart full under the new limits */
	atomic_store_explicit(&t->tat[0], 0, memory_order_relaxed);
	atomic_store_explicit(&t->tat[1], 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->seq, 1, memory_order_release);
}

static int thr_control(struct nexus_dev *dev, const char *key,
		       const char *value)
{
	struct throttle *t = nexus_dev_private(dev);
	uint64_t v[L_COUNT], x;
	int k = -1;

	for (int i = 0; i < L_COUNT; i++)
		if (!strcmp(key, lim_names[i]))
			k = i;
	if (k < 0)
		return nexus_error(-ENOENT, "throttle: no setting '%s' (iops, "
				   "bps, burst-iops, burst-bytes)", key);
	if (parse_limit(value, k == L_BPS || k == L_BURST_BYTES, &x) ||
	    (!x && strcasecmp(value, "unlimited") && strcasecmp(value, "off")))
		return nexus_error(-EINVAL, "throttle: %s=%s: give a positive "
				   "%s, or 'unlimited'", key,
				   nx_looks_like_key(value) ? NX_SECRET_SHOWN
							    : value,
				   k == L_BPS || k == L_BURST_BYTES
					   ? "size like 4096, 64K or 1G"
					   : "number");
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < L_COUNT; i++)
		v[i] = atomic_load(&t->lim[i]);
	v[k] = x;
	publish(t, v);
	for (unsigned i = 0; i < t->nreactors; i++)
		if (t->rs[i])
			nexus_reactor_post(nexus_ctx_reactor(nexus_dev_ctx(dev),
							     i),
					   kick, t->rs[i]);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* A limit given, else 0 (none). */
static int get_limit(const struct nexus_opts *opts, const char *name,
		     uint64_t *out)
{
	int rc = nexus_opts_u64(opts, name, out);

	if (rc == -ENOENT) {
		*out = 0;
		return 0;
	}
	return rc;
}

/* The rules between limits, checked when the pipeline is parsed:
 * thr_open() trusts them. */
static int thr_check(const struct nexus_opts *opts)
{
	if (!nexus_opts_given(opts, "iops") && !nexus_opts_given(opts, "bps"))
		return nexus_error(-EINVAL, "throttle: give iops= and/or bps=");
	if (nexus_opts_given(opts, "burst-iops") &&
	    !nexus_opts_given(opts, "iops"))
		return nexus_error(-EINVAL, "throttle: burst-iops= needs iops=");
	if (nexus_opts_given(opts, "burst-bytes") &&
	    !nexus_opts_given(opts, "bps"))
		return nexus_error(-EINVAL, "throttle: burst-bytes= needs bps=");
	return 0;
}

static int thr_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	uint64_t v[L_COUNT];
	struct throttle *t;
	int rc, n;

	for (unsigned i = 0; i < L_COUNT; i++)
		if ((rc = get_limit(opts, lim_names[i], &v[i])))
			return rc;
	n = nexus_ctx_reactor_count(nexus_dev_ctx(dev));
	t = calloc(1, sizeof(*t));
	if (!t || n <= 0 || !(t->rs = calloc((size_t)n, sizeof(*t->rs)))) {
		free(t);
		return nexus_error(-ENOMEM, "out of memory");
	}
	t->dev = dev;
	t->nreactors = (unsigned)n;
	pthread_mutex_init(&t->lock, NULL);
	for (unsigned i = 0; i < L_COUNT; i++)
		atomic_init(&t->lim[i], v[i]);
	nx_shim_inherit(dev, NULL);
	nexus_dev_set_private(dev, t);
	return 0;
}

static void thr_close(struct nexus_dev *dev)
{
	struct throttle *t = nexus_dev_private(dev);

	pthread_mutex_destroy(&t->lock);
	free(t->rs);
	free(t);
}

const struct nexus_driver nx_driver_throttle = {
	NEXUS_DRIVER_HEADER,
	.name = "throttle",
	.summary = "limit IOPS and bytes per second (token bucket with "
		   "burst, shared by all reactors; changeable at run time)",
	.kind = NEXUS_DRIVER_TRANSFORM,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
	       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS),
	.per_io_size = sizeof(struct thr_io),
	.options = thr_options,
	.check = thr_check,
	.open = thr_open,
	.close = thr_close,
	.reactor_init = thr_reactor_init,
	.reactor_fini = thr_reactor_fini,
	.submit = thr_submit,
	/* until every reactor caller submits BLOCK_STATUS (the export) */
	.block_status = nx_shim_block_status,
	.control = thr_control,
};
