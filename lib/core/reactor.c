/* SPDX-License-Identifier: MIT */
/* Reactor threads.  Each owns one io_uring and runs to completion:
 * requests queued by application threads, deferred I/O completions and
 * io_uring CQEs are all handled on it without locks.  An idle reactor
 * blocks in io_uring_enter; application threads wake it with an eventfd
 * only when it announced that it is going to sleep. */
#include "config.h"
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define NX_HAVE_VALGRIND_H 1
#endif
#endif

static __thread struct nexus_reactor *tl_reactor;

/* Valgrind (3.19, Debian 12's) runs io_uring_enter while holding its
 * global lock: a reactor asleep in it would stop every other thread of
 * the program for good.  Under valgrind, idle reactors nap in nanosleep
 * instead; nothing changes otherwise. */
static bool under_valgrind(void)
{
#ifdef NX_HAVE_VALGRIND_H
	if (RUNNING_ON_VALGRIND)
		return true;
#endif
	{
		const char *pre = getenv("LD_PRELOAD");

		return pre && strstr(pre, "vgpreload") != NULL;
	}
}

struct nexus_reactor *nexus_reactor_current(void)
{
	return tl_reactor;
}

unsigned nexus_reactor_index(const struct nexus_reactor *r)
{
	return r ? r->index : 0;
}

struct nexus_ctx *nexus_reactor_ctx(const struct nexus_reactor *r)
{
	return r ? r->ctx : NULL;
}

struct nexus_reactor *nexus_ctx_reactor(struct nexus_ctx *ctx, unsigned i)
{
	if (!ctx || i >= ctx->nreactors)
		return NULL;
	return &ctx->reactors[i];
}

struct io_uring_sqe *nexus_reactor_sqe(struct nexus_reactor *r,
				       struct nexus_cqe_handler *ev)
{
	struct io_uring_sqe *sqe;

	if (!r || r != tl_reactor)
		return NULL;
	sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) {
		/* SQ full: push what we have to the kernel and retry. */
		io_uring_submit(&r->ring);
		r->sqe_pending = 0;
		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			return NULL;
	}
	io_uring_sqe_set_data(sqe, ev);
	r->sqe_pending++;
	return sqe;
}

/* Wake a reactor that is (about to be) asleep in io_uring_enter. */
void nx_reactor_wake(struct nexus_reactor *r)
{
	uint64_t one = 1;

	/* Order the producer's queue store before its read of `sleeping`
	 * (the reactor stores `sleeping` before re-reading the queue). */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load(&r->sleeping))
		return;
	if (atomic_exchange(&r->wake_pending, 1))
		return;
	while (write(r->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

int nx_reactor_enqueue(struct nexus_reactor *r, const struct nx_req *req)
{
	if (!nx_mpsc_push(&r->reqq, req))
		return nexus_error(-EAGAIN,
				   "reactor %u submission queue is full "
				   "(queue_capacity); retry after completions",
				   r->index);
	nx_reactor_wake(r);
	return 0;
}

struct nexus_reactor *nx_reactor_for_thread(struct nexus_ctx *ctx)
{
	static __thread struct nexus_ctx *tl_ctx;
	static __thread unsigned tl_idx;

	if (tl_ctx != ctx) {
		tl_ctx = ctx;
		tl_idx = atomic_fetch_add(&ctx->rr, 1);
	}
	return &ctx->reactors[tl_idx % ctx->nreactors];
}

int nexus_reactor_post(struct nexus_reactor *r, void (*fn)(void *), void *arg)
{
	struct nx_msg *m;

	if (!r || !fn)
		return nexus_error(-EINVAL, "nexus_reactor_post: NULL argument");
	m = malloc(sizeof(*m));
	if (!m)
		return nexus_error(-ENOMEM, "out of memory");
	m->next = NULL;
	m->fn = fn;
	m->arg = arg;
	pthread_mutex_lock(&r->msg_lock);
	if (r->msg_tail)
		r->msg_tail->next = m;
	else
		__atomic_store_n(&r->msg_head, m, __ATOMIC_SEQ_CST);
	r->msg_tail = m;
	pthread_mutex_unlock(&r->msg_lock);
	atomic_thread_fence(memory_order_seq_cst);
	nx_reactor_wake(r);
	return 0;
}

struct call_wait {
	int (*fn)(void *);
	void *arg;
	int ret;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void call_trampoline(void *p)
{
	struct call_wait *w = p;
	int ret = w->fn(w->arg);

	pthread_mutex_lock(&w->lock);
	w->ret = ret;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int nexus_reactor_call(struct nexus_reactor *r, int (*fn)(void *), void *arg)
{
	struct call_wait w = { .fn = fn, .arg = arg };
	int rc;

	if (!r || !fn)
		return nexus_error(-EINVAL, "nexus_reactor_call: NULL argument");
	if (tl_reactor)
		return nexus_error(-EDEADLK, "nexus_reactor_call from a "
					     "reactor thread would deadlock");
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	rc = nexus_reactor_post(r, call_trampoline, &w);
	if (rc == 0) {
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		rc = w.ret;
	}
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return rc;
}

void nx_reactor_flush(struct nexus_reactor *r, struct nx_flush *f)
{
	if (f->queued)
		return;
	f->queued = true;
	f->next = r->flush_head;
	r->flush_head = f;
}

static void run_flush(struct nexus_reactor *r)
{
	while (r->flush_head) {
		struct nx_flush *f = r->flush_head;

		r->flush_head = NULL;
		while (f) {
			struct nx_flush *next = f->next;

			f->queued = false;
			f->fn(f);
			f = next;
		}
	}
}

static bool run_messages(struct nexus_reactor *r)
{
	struct nx_msg *m;

	if (!__atomic_load_n(&r->msg_head, __ATOMIC_RELAXED))
		return false;
	pthread_mutex_lock(&r->msg_lock);
	m = r->msg_head;
	__atomic_store_n(&r->msg_head, NULL, __ATOMIC_RELAXED);
	r->msg_tail = NULL;
	pthread_mutex_unlock(&r->msg_lock);
	while (m) {
		struct nx_msg *next = m->next;

		m->fn(m->arg);
		free(m);
		m = next;
	}
	return true;
}

/* Start requests queued by application threads.  A request that cannot
 * start for lack of memory stays stalled and is retried. */
static bool run_requests(struct nexus_reactor *r)
{
	struct nx_req req;
	unsigned n = 0;

	if (r->stalled) {
		if (nx_io_start_queued(r, r->stalled) == -ENOMEM)
			return true;
		free(r->stalled);
		r->stalled = NULL;
	}
	while (n < 256 && nx_mpsc_pop(&r->reqq, &req)) {
		n++;
		if (nx_io_start_queued(r, &req) == -ENOMEM) {
			r->stalled = malloc(sizeof(req));
			if (r->stalled)
				*r->stalled = req;
			break;
		}
	}
	return n > 0;
}

static void efd_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nexus_reactor *r = container_of(ev, struct nexus_reactor, efd_ev);
	struct io_uring_sqe *sqe;

	(void)res;
	(void)flags;
	atomic_store(&r->wake_pending, 0);
	if (r->stop)
		return;
	sqe = nexus_reactor_sqe(r, &r->efd_ev);
	if (sqe)
		io_uring_prep_read(sqe, r->efd, &r->efd_val, sizeof(r->efd_val),
				   0);
}

static void reap(struct nexus_reactor *r)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&r->ring, head, cqe) {
		struct nexus_cqe_handler *ev = io_uring_cqe_get_data(cqe);

		n++;
		if (ev)
			ev->fn(ev, cqe->res, cqe->flags);
	}
	io_uring_cq_advance(&r->ring, n);
}

/* Ring set-ups, best first; the first one the kernel takes is used.
 *  - SINGLE_ISSUER (6.0): only this thread submits, so the kernel
 *    skips its submission locking.
 *  - COOP_TASKRUN + TASKRUN_FLAG (5.19): no IPI for task work, and a
 *    flag in the SQ ring that says completions are waiting (so that a
 *    busy-polling reactor knows when to enter the kernel).
 * DEFER_TASKRUN (6.1) was measured and left out: no win beyond the
 * noise on the file source, either way by 10% from case to case
 * (doc/uring.md). */
static const unsigned ring_setups[] = {
	IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
		IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER,
	0,
};

/* The ring is created on the reactor thread: with SINGLE_ISSUER the
 * kernel binds it to the creating task. */
static int ring_init(struct nexus_reactor *r)
{
	struct io_uring_params p;
	int rc = -EINVAL;

	for (unsigned i = 0; i < NX_ARRAY_SIZE(ring_setups); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = ring_setups[i];
		rc = io_uring_queue_init_params(r->ring_entries, &r->ring, &p);
		if (rc != -EINVAL) /* EINVAL: flags this kernel lacks */
			break;
	}
	return rc;
}

/* A polite pause in a polling loop (for the sibling hyperthread). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Adaptive polling (spin_ns; off by default): within spin_ns of the
 * last work the reactor keeps polling instead of sleeping, so that a
 * client's next request finds it awake and the client's CPU pays no
 * wake-up.  At most ctx->max_spinners reactors poll at once (half the
 * CPUs), and none while the context serves more connections than that:
 * then the clients need the CPUs more than one of them needs a quick
 * answer (four fio jobs on 2 cores lost 12% to a polling reactor), and
 * several connections keep a reactor busy anyway.  An idle reactor
 * still sleeps. */
static bool spin_window(struct nexus_reactor *r, bool ready)
{
	struct nexus_ctx *ctx = r->ctx;
	uint64_t now;

	if (!r->spin_ns)
		return false;
	now = nx_stamp_ns();
	if (ready) {
		r->last_work = now;
		return false;
	}
	if (now - r->last_work >= r->spin_ns ||
	    atomic_load_explicit(&ctx->conns, memory_order_relaxed) >
		    ctx->max_spinners)
		return false;
	if (!r->spinning) {
		if (atomic_fetch_add(&ctx->spinners, 1) >= ctx->max_spinners) {
			atomic_fetch_sub(&ctx->spinners, 1);
			return false;
		}
		r->spinning = true;
	}
	return true;
}

/* Going to sleep: give the spinner token back. */
static void spin_stop(struct nexus_reactor *r)
{
	if (r->spinning) {
		atomic_fetch_sub(&r->ctx->spinners, 1);
		r->spinning = false;
	}
}

static void *reactor_main(void *arg)
{
	struct nexus_reactor *r = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	{
		/* "nexus-r0".. in top, perf and /proc/PID/task/TID/comm */
		char name[16];

		snprintf(name, sizeof(name), "nexus-r%u", r->index);
		pthread_setname_np(pthread_self(), name);
	}
	r->init_rc = ring_init(r);
	sem_post(&r->started);
	if (r->init_rc)
		return NULL;
	tl_reactor = r;
	efd_event(&r->efd_ev, 0, 0);
	while (!r->stop) {
		bool work = run_messages(r);

		work |= run_requests(r);
		if (r->done_head) {
			nx_io_run_deferred(r);
			work = true;
		}
		bool ready = work || io_uring_cq_ready(&r->ring);
		bool poll = r->busy_poll || spin_window(r, ready);

		if (ready || poll) {
			run_flush(r);
			/* io_uring_submit() also enters the kernel when
			 * completions wait as task work (IORING_SQ_TASKRUN):
			 * without it a polling reactor saw them only after
			 * the next timer tick. */
			if (r->sqe_pending || poll) {
				io_uring_submit(&r->ring);
				r->sqe_pending = 0;
			}
			reap(r);
			if (!ready)
				cpu_relax();
			continue;
		}
		run_flush(r);
		spin_stop(r);
		/* Going to sleep: announce it, then re-check the queues so
		 * that a producer either sees `sleeping` or we see its work. */
		atomic_store(&r->sleeping, 1);
		if (!nx_mpsc_empty(&r->reqq) ||
		    __atomic_load_n(&r->msg_head, __ATOMIC_SEQ_CST) || r->done_head) {
			atomic_store(&r->sleeping, 0);
			continue;
		}
		if (unlikely(r->nap)) {
			struct timespec ts = { 0, 200 * 1000 };

			io_uring_submit(&r->ring);
			if (!io_uring_cq_ready(&r->ring))
				nanosleep(&ts, NULL);
		} else {
			io_uring_submit_and_wait(&r->ring, 1);
		}
		r->sqe_pending = 0;
		atomic_store(&r->sleeping, 0);
		reap(r);
	}
	/* drain messages posted during stop (they may free memory) */
	run_messages(r);
	tl_reactor = NULL;
	return NULL;
}

/* nexus_ctx_opts.poll_us, else $NEXUS_POLL_US (a bad value: 0). */
static uint32_t poll_us_of(const struct nexus_ctx_opts *o)
{
	const char *e = getenv("NEXUS_POLL_US");
	char *end;
	unsigned long v;

	if (o->poll_us || !e)
		return o->poll_us;
	v = strtoul(e, &end, 10);
	return *e && !*end && v <= 100000 ? (uint32_t)v : 0;
}

int nx_reactor_start(struct nexus_reactor *r, struct nexus_ctx *ctx,
		     unsigned index, const struct nexus_ctx_opts *o)
{
	unsigned entries = o->ring_entries ? o->ring_entries : 1024;
	unsigned qcap = o->queue_capacity ? o->queue_capacity : 4096;
	int rc;

	memset(r, 0, sizeof(*r));
	r->ctx = ctx;
	r->index = index;
	r->busy_poll = (o->flags & NEXUS_CTX_BUSY_POLL) != 0;
	r->nap = under_valgrind();
	r->spin_ns = r->nap ? 0 : poll_us_of(o) * 1000u;
	r->efd_ev.fn = efd_event;
	nx_bufpool_init(r);
	pthread_mutex_init(&r->msg_lock, NULL);
	rc = nx_mpsc_init(&r->reqq, qcap, sizeof(struct nx_req));
	if (rc)
		return nexus_error(rc, "out of memory for the reactor queue");
	r->efd = eventfd(0, EFD_CLOEXEC);
	if (r->efd < 0) {
		rc = -errno;
		nx_mpsc_destroy(&r->reqq);
		return nexus_error(rc, "eventfd: %s", strerror(-rc));
	}
	r->ring_entries = entries;
	sem_init(&r->started, 0, 0);
	rc = pthread_create(&r->thread, NULL, reactor_main, r);
	if (rc) {
		rc = -rc;
		nexus_error(rc, "pthread_create: %s", strerror(-rc));
	} else {
		sem_wait(&r->started);
		rc = r->init_rc;
		if (rc) {
			pthread_join(r->thread, NULL);
			nexus_error(rc, "io_uring_queue_init(%u entries): %s",
				    entries, strerror(-rc));
		}
	}
	sem_destroy(&r->started);
	if (rc) {
		close(r->efd);
		nx_mpsc_destroy(&r->reqq);
		pthread_mutex_destroy(&r->msg_lock);
	}
	return rc;
}

static void stop_msg(void *arg)
{
	struct nexus_reactor *r = arg;

	r->stop = true;
}

void nx_reactor_stop(struct nexus_reactor *r)
{
	nexus_reactor_post(r, stop_msg, r);
	pthread_join(r->thread, NULL);
	io_uring_queue_exit(&r->ring);
	close(r->efd);
	nx_mpsc_destroy(&r->reqq);
	free(r->stalled);
	nx_bufpool_destroy(r);
	pthread_mutex_destroy(&r->msg_lock);
}
