/* SPDX-License-Identifier: MIT */
/* The copy engine's job: its API, options and checks, its thread and
 * phases (copy, flush, verify), pause, cancel, the rate limit and the
 * progress reports.  The planner (copy-plan.c) makes the jobs, the
 * executor (copy-exec.c) runs them; see copy.h.
 *
 * Rate limit: a token bucket in bytes, refilled at the rate and capped
 * at a tenth of a second's worth (at least one block).  A data job may
 * start while the bucket is not empty and takes its length from it, so
 * the bucket may go below zero by one job: on average the rate holds.
 * Zero jobs (WRITE_ZEROES, TRIM) cost nothing. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"

#define DEFAULT_REQUESTS 16u
#define DEFAULT_BLOCK (256u << 10)
#define DEFAULT_INTERVAL_MS 200u
#define KNOWN_FLAGS                                                        \
	(NEXUS_COPY_VERIFY | NEXUS_COPY_NO_SPARSE | NEXUS_COPY_TARGET_ZERO |  \
	 NEXUS_COPY_NO_FLUSH)

bool nx_copy_stopping(const struct nexus_copy *cp)
{
	return cp->error || cp->mismatch || cp->cancelled;
}

static double bucket_cap(const struct nexus_copy *cp)
{
	double c = (double)cp->rate / 10;

	return c > (double)cp->block ? c : (double)cp->block;
}

static void refill(struct nexus_copy *cp, uint64_t now)
{
	if (cp->rate && now > cp->refill_ns) {
		double cap = bucket_cap(cp);

		cp->tokens += (double)(now - cp->refill_ns) * (double)cp->rate /
			      1e9;
		if (cp->tokens > cap)
			cp->tokens = cap;
	}
	cp->refill_ns = now;
}

bool nx_copy_may_start(struct nexus_copy *cp, const struct nx_copy_job *j)
{
	if (cp->paused)
		return false;
	if (!cp->rate || j->kind == NX_COPY_ZERO)
		return true;
	refill(cp, nx_now_ns());
	if (cp->tokens <= 0)
		return false;
	cp->tokens -= (double)j->len;
	return true;
}

/* Active time of the phase (lock held). */
static uint64_t active_ns(const struct nexus_copy *cp, uint64_t now)
{
	uint64_t end = cp->end_ns ? cp->end_ns : now, p = cp->paused_ns;

	if (cp->pause_start && !cp->end_ns)
		p += now - cp->pause_start;
	return end > cp->t0_ns + p ? end - cp->t0_ns - p : 0;
}

static void fill_progress(const struct nexus_copy *cp,
			  struct nexus_copy_progress *p)
{
	uint64_t t = cp->t0_ns ? active_ns(cp, nx_now_ns()) : 0;

	memset(p, 0, sizeof(*p));
	p->size = sizeof(*p);
	p->phase = cp->phase;
	p->flags = cp->paused ? NEXUS_COPY_PROGRESS_PAUSED : 0;
	p->bytes_done = cp->done_bytes;
	p->bytes_total = cp->total;
	p->data_bytes = cp->data_bytes;
	p->zero_bytes = cp->zero_bytes;
	p->skipped_bytes = cp->skipped_bytes;
	p->elapsed_ns = t;
	p->rate = t ? (uint64_t)((double)cp->done_bytes * 1e9 / (double)t) : 0;
	p->in_flight = cp->inflight;
	p->mismatch_offset = cp->mismatch ? cp->mismatch_off : UINT64_MAX;
	p->error = cp->error;
}

static void report(struct nexus_copy *cp, uint32_t flags)
{
	struct nexus_copy_progress p;

	if (!cp->progress_fn)
		return;
	pthread_mutex_lock(&cp->lock);
	fill_progress(cp, &p);
	pthread_mutex_unlock(&cp->lock);
	p.flags |= flags;
	cp->progress_fn(cp->user_data, &p);
}

static void deadline(struct timespec *ts, uint64_t ns)
{
	uint64_t t = nx_now_ns() + ns;

	ts->tv_sec = (time_t)(t / 1000000000u);
	ts->tv_nsec = (long)(t % 1000000000u);
}

/* Until the job's thread has something to do: wait for a slot to go
 * idle, the queue to run low, a control call, the rate limit's next
 * tokens or the next report (lock held). */
static void wait_work(struct nexus_copy *cp, uint64_t report_at)
{
	uint64_t now = nx_now_ns(), ns;
	struct timespec ts;

	if (!cp->producer_done && !nx_copy_stopping(cp) &&
	    cp->qlen < cp->qcap / 2)
		return; /* plan more */
	ns = report_at > now ? report_at - now : 0;
	if (cp->nidle && cp->qlen && !cp->paused && !nx_copy_stopping(cp)) {
		/* held back by the rate limit */
		uint64_t t;

		refill(cp, now);
		t = cp->tokens > 0 ? 0
				   : (uint64_t)((1 - cp->tokens) * 1e9 /
						(double)(cp->rate ? cp->rate
								  : 1));
		if (t < ns)
			ns = t;
	}
	if (!ns)
		return;
	deadline(&ts, ns);
	pthread_cond_timedwait(&cp->cond, &cp->lock, &ts);
}

/* Run a phase: plan jobs ahead, start idle slots, report, until done. */
static int run_phase(struct nexus_copy *cp, int phase)
{
	uint64_t interval = (uint64_t)cp->interval_ms * 1000000u, report_at;

	nx_copy_plan_reset(cp, phase == NEXUS_COPY_PHASE_VERIFY);
	pthread_mutex_lock(&cp->lock);
	cp->phase = phase;
	cp->producer_done = false;
	cp->done_bytes = 0;
	cp->qhead = cp->qlen = cp->inflight = cp->nidle = 0;
	for (unsigned i = 0; i < cp->nslots; i++)
		cp->idle[cp->nidle++] = &cp->slots[i];
	cp->t0_ns = cp->refill_ns = nx_now_ns();
	cp->paused_ns = cp->end_ns = 0;
	cp->pause_start = cp->paused ? cp->t0_ns : 0;
	pthread_mutex_unlock(&cp->lock);
	report_at = cp->t0_ns + interval;
	for (;;) {
		/* plan outside the lock: block status costs syscalls */
		while (!cp->producer_done) {
			struct nx_copy_job j;
			bool room;
			int err;

			pthread_mutex_lock(&cp->lock);
			room = !nx_copy_stopping(cp) && cp->qlen < cp->qcap;
			pthread_mutex_unlock(&cp->lock);
			if (!room)
				break;
			if (!nx_copy_plan_next(cp, &j, &err)) {
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
		while (cp->nidle && cp->qlen && !nx_copy_stopping(cp) &&
		       nx_copy_may_start(cp, &cp->queue[cp->qhead])) {
			struct nx_copy_slot *s = cp->idle[--cp->nidle];

			nx_copy_take(cp, s);
			pthread_mutex_unlock(&cp->lock);
			nx_copy_slot_start(cp, s);
			pthread_mutex_lock(&cp->lock);
		}
		if (!cp->inflight && (nx_copy_stopping(cp) ||
				      (cp->producer_done && !cp->qlen))) {
			cp->end_ns = nx_now_ns();
			if (cp->pause_start)
				cp->paused_ns += cp->end_ns - cp->pause_start;
			pthread_mutex_unlock(&cp->lock);
			break;
		}
		wait_work(cp, report_at);
		pthread_mutex_unlock(&cp->lock);
		if (nx_now_ns() >= report_at) {
			report(cp, 0);
			report_at = nx_now_ns() + interval;
		}
	}
	pthread_mutex_lock(&cp->lock);
	if (!cp->error && cp->cancelled)
		nx_copy_fail(cp, -ECANCELED, 0, "cancelled");
	else if (!cp->error && cp->mismatch)
		nx_copy_fail(cp, -EILSEQ, cp->mismatch_off,
			     "verify: DST differs from SRC at offset %llu",
			     (unsigned long long)cp->mismatch_off);
	pthread_mutex_unlock(&cp->lock);
	return cp->error;
}

static void destroy_now(struct nexus_copy *cp);

static void *job_main(void *arg)
{
	struct nexus_copy *cp = arg;
	int rc = run_phase(cp, NEXUS_COPY_PHASE_COPY);

	if (!rc && !(cp->flags & NEXUS_COPY_NO_FLUSH) &&
	    (cp->di.ops & NEXUS_OP_BIT(NEXUS_OP_FLUSH))) {
		rc = nexus_dev_flush(cp->dst);
		if (rc < 0) {
			pthread_mutex_lock(&cp->lock);
			nx_copy_fail(cp, rc, 0, "flush of DST: %s",
				     nexus_last_error());
			pthread_mutex_unlock(&cp->lock);
		}
	}
	report(cp, NEXUS_COPY_PROGRESS_FINAL);
	if (!rc && (cp->flags & NEXUS_COPY_VERIFY)) {
		rc = run_phase(cp, NEXUS_COPY_PHASE_VERIFY);
		report(cp, NEXUS_COPY_PROGRESS_FINAL);
	}
	pthread_mutex_lock(&cp->lock);
	cp->phase = NEXUS_COPY_PHASE_DONE;
	cp->finished = true;
	cp->result = rc;
	pthread_mutex_unlock(&cp->lock);
	if (rc < 0)
		nexus_error(rc, "%s", cp->errmsg);
	cp->in_done = true;
	cp->done_fn(cp->done_ud, rc);
	cp->in_done = false;
	if (cp->destroy_in_done) {
		/* nexus_copy_destroy() from the done callback: nobody joins */
		pthread_detach(cp->thread);
		destroy_now(cp);
		return NULL;
	}
	pthread_mutex_lock(&cp->lock);
	cp->cb_returned = true;
	pthread_cond_broadcast(&cp->cond);
	pthread_mutex_unlock(&cp->lock);
	return NULL;
}

/* ---- creation: options and checks ---- */

static int check_opts(const struct nexus_copy_opts *o)
{
	if (o->requests > NX_COPY_MAX_REQUESTS)
		return nexus_error(-EINVAL, "copy: requests wants 1..%u, got "
				   "%u", NX_COPY_MAX_REQUESTS, o->requests);
	if (o->block_size && (o->block_size < 512 ||
			      o->block_size > (64u << 20)))
		return nexus_error(-EINVAL, "copy: block_size wants 512 to "
				   "64 MiB, got %u", o->block_size);
	if (o->flags & ~(uint32_t)KNOWN_FLAGS)
		return nexus_error(-EINVAL, "copy: unknown flags 0x%x",
				   o->flags & ~(uint32_t)KNOWN_FLAGS);
	if (o->nranges && !o->ranges)
		return nexus_error(-EINVAL, "copy: nranges without ranges");
	if (o->ranges && o->next_range)
		return nexus_error(-EINVAL, "copy: both ranges and next_range");
	if (!o->lock_fn != !o->unlock_fn)
		return nexus_error(-EINVAL, "copy: lock_fn and unlock_fn go "
				   "together");
	return 0;
}

static uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

/* Sizes, block sizes and what the devices can do. */
static int check_devs(struct nexus_copy *cp)
{
	const struct nexus_dev_info *si = &cp->si, *di = &cp->di;
	uint32_t lbs = max_u32(si->logical_block_size, di->logical_block_size);

	cp->size = si->dev_size;
	if (di->dev_size < cp->size)
		return nexus_error(-ENOSPC, "DST is smaller than SRC: %llu < "
				   "%llu bytes",
				   (unsigned long long)di->dev_size,
				   (unsigned long long)cp->size);
	if ((di->flags & NEXUS_DEV_READ_ONLY) ||
	    !(di->ops & NEXUS_OP_BIT(NEXUS_OP_WRITE)))
		return nexus_error(-EROFS, "DST is read-only");
	if (!(si->ops & NEXUS_OP_BIT(NEXUS_OP_READ)))
		return nexus_error(-EOPNOTSUPP, "SRC cannot be read");
	cp->align = max_u32(lbs, 512);
	if (cp->size % cp->align) {
		/* a short device: only its own block size is required */
		cp->align = lbs;
		if (cp->size % cp->align)
			return nexus_error(-EINVAL, "SRC size %llu is not a "
					   "multiple of DST's block size %u",
					   (unsigned long long)cp->size,
					   di->logical_block_size);
	}
	if (di->ops & NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES))
		cp->zero_op = NEXUS_OP_WRITE_ZEROES;
	else if ((di->ops & NEXUS_OP_BIT(NEXUS_OP_TRIM)) &&
		 (di->flags & NEXUS_DEV_TRIM_ZEROES))
		cp->zero_op = NEXUS_OP_TRIM;
	else
		cp->zero_op = NX_COPY_NO_ZERO_OP;
	return 0;
}

/* The ranges to copy: a copy of the given ones, or the whole SRC. */
static int set_ranges(struct nexus_copy *cp, const struct nexus_copy_opts *o)
{
	size_t n = o->ranges ? o->nranges : (!o->next_range && cp->size);
	uint64_t s, e;

	cp->ranges = n ? calloc(n, sizeof(*cp->ranges)) : NULL;
	if (n && !cp->ranges)
		return nexus_error(-ENOMEM, "copy: out of memory");
	cp->nranges = cp->ranges_cap = n;
	if (!o->ranges) {
		if (n)
			cp->ranges[0] = (struct nexus_copy_range){ 0, cp->size };
	} else {
		memcpy(cp->ranges, o->ranges, n * sizeof(*cp->ranges));
	}
	for (size_t i = 0; i < n; i++) {
		const struct nexus_copy_range *r = &cp->ranges[i];

		if (!r->length || r->offset > cp->size ||
		    r->length > cp->size - r->offset)
			return nexus_error(-EINVAL, "copy: range %zu (%llu "
					   "bytes at %llu) is empty or past "
					   "the end of SRC (size %llu)", i,
					   (unsigned long long)r->length,
					   (unsigned long long)r->offset,
					   (unsigned long long)cp->size);
		nx_copy_span(cp, r, &s, &e);
		cp->total += e - s;
	}
	return 0;
}

static void job_free(struct nexus_copy *cp)
{
	nx_copy_slots_free(cp);
	free(cp->ranges);
	pthread_cond_destroy(&cp->cond);
	pthread_mutex_destroy(&cp->lock);
	free(cp);
}

int nexus_copy_create(struct nexus_dev *src, struct nexus_dev *dst,
		      const struct nexus_copy_opts *opts,
		      struct nexus_copy **out)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	pthread_condattr_t ca;
	struct nexus_copy *cp;
	uint64_t maxio;
	int rc;

	if (out)
		*out = NULL;
	if (!src || !dst || !out)
		return nexus_error(-EINVAL, "nexus_copy_create: NULL argument");
	if (src == dst)
		return nexus_error(-EINVAL, "nexus_copy_create: SRC and DST "
				   "are the same device");
	if (src->ctx != dst->ctx)
		return nexus_error(-EINVAL, "nexus_copy_create: SRC and DST "
				   "belong to different contexts");
	if (opts) {
		if (opts->size < sizeof(size_t))
			return nexus_error(-EINVAL, "nexus_copy_create: opts "
					   "size %zu (use NEXUS_COPY_OPTS_INIT)",
					   opts->size);
		memcpy(&o, opts, opts->size < sizeof(o) ? opts->size
							: sizeof(o));
	}
	rc = check_opts(&o);
	if (rc)
		return rc;
	cp = calloc(1, sizeof(*cp));
	if (!cp)
		return nexus_error(-ENOMEM, "copy: out of memory");
	pthread_mutex_init(&cp->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cp->cond, &ca);
	pthread_condattr_destroy(&ca);
	cp->ctx = src->ctx;
	cp->src = src;
	cp->dst = dst;
	cp->si = src->info;
	cp->di = dst->info;
	cp->flags = o.flags;
	cp->rate = o.rate_limit;
	cp->interval_ms = o.progress_interval_ms ? o.progress_interval_ms
						 : DEFAULT_INTERVAL_MS;
	cp->next_range = o.next_range;
	cp->progress_fn = o.progress_fn;
	cp->lock_fn = o.lock_fn;
	cp->unlock_fn = o.unlock_fn;
	cp->user_data = o.user_data;
	rc = check_devs(cp);
	if (!rc)
		rc = set_ranges(cp, &o);
	if (rc)
		goto fail;
	maxio = cp->si.max_io_size < cp->di.max_io_size ? cp->si.max_io_size
							: cp->di.max_io_size;
	cp->block = o.block_size ? o.block_size : DEFAULT_BLOCK;
	if (maxio && cp->block > maxio)
		cp->block = maxio;
	cp->block = cp->block / cp->align * cp->align;
	if (!cp->block)
		cp->block = cp->align;
	rc = nx_copy_slots_alloc(cp, o.requests ? o.requests
						: DEFAULT_REQUESTS);
	if (rc)
		goto fail;
	cp->tokens = (double)cp->block;
	cp->user_free = o.user_free;
	*out = cp;
	return 0;
fail:
	job_free(cp);
	return rc;
}

/* ---- control ---- */

static bool on_job_thread(const struct nexus_copy *cp)
{
	return cp->started && pthread_equal(pthread_self(), cp->thread);
}

int nexus_copy_start(struct nexus_copy *cp, nexus_copy_done_fn done,
		     void *user_data)
{
	sigset_t all, old;
	int rc;

	if (!cp || !done)
		return nexus_error(-EINVAL, "nexus_copy_start: NULL argument");
	pthread_mutex_lock(&cp->lock);
	if (cp->started) {
		pthread_mutex_unlock(&cp->lock);
		return nexus_error(-EALREADY, "nexus_copy_start: the job was "
				   "started before (a job runs once)");
	}
	cp->done_fn = done;
	cp->done_ud = user_data;
	/* the job's thread takes no signals: they go to the application's */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = -pthread_create(&cp->thread, NULL, job_main, cp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_mutex_unlock(&cp->lock);
		return nexus_error(rc, "nexus_copy_start: pthread_create: %s",
				   strerror(-rc));
	}
	cp->started = true;
	pthread_mutex_unlock(&cp->lock);
	return 0;
}

static int check_waiter(const struct nexus_copy *cp, const char *fn)
{
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "%s from a reactor thread would "
				   "deadlock", fn);
	if (on_job_thread(cp))
		return nexus_error(-EDEADLK, "%s from a callback of the job "
				   "would deadlock", fn);
	return 0;
}

int nexus_copy_wait(struct nexus_copy *cp)
{
	int rc;

	if (!cp)
		return nexus_error(-EINVAL, "nexus_copy_wait: NULL job");
	rc = check_waiter(cp, "nexus_copy_wait");
	if (rc)
		return rc;
	pthread_mutex_lock(&cp->lock);
	if (!cp->started) {
		pthread_mutex_unlock(&cp->lock);
		return nexus_error(-EINVAL, "nexus_copy_wait: the job was not "
				   "started");
	}
	while (!cp->cb_returned)
		pthread_cond_wait(&cp->cond, &cp->lock);
	rc = cp->result;
	pthread_mutex_unlock(&cp->lock);
	if (rc < 0)
		nexus_error(rc, "%s", cp->errmsg);
	return rc;
}

/* Change the job's control state under its lock and wake its thread. */
static int control(struct nexus_copy *cp, const char *fn,
		   void (*change)(struct nexus_copy *cp, uint64_t now,
				  uint64_t arg),
		   uint64_t arg)
{
	if (!cp)
		return nexus_error(-EINVAL, "%s: NULL job", fn);
	pthread_mutex_lock(&cp->lock);
	change(cp, nx_now_ns(), arg);
	pthread_cond_broadcast(&cp->cond);
	pthread_mutex_unlock(&cp->lock);
	return 0;
}

static void do_pause(struct nexus_copy *cp, uint64_t now, uint64_t arg)
{
	(void)arg;
	if (!cp->paused) {
		cp->paused = true;
		cp->pause_start = now;
	}
}

static void do_resume(struct nexus_copy *cp, uint64_t now, uint64_t arg)
{
	(void)arg;
	if (cp->paused) {
		cp->paused = false;
		if (cp->pause_start && cp->t0_ns && !cp->end_ns)
			cp->paused_ns += now - cp->pause_start;
		cp->pause_start = 0;
	}
}

static void do_cancel(struct nexus_copy *cp, uint64_t now, uint64_t arg)
{
	(void)now;
	(void)arg;
	cp->cancelled = true;
}

static void do_set_rate(struct nexus_copy *cp, uint64_t now, uint64_t arg)
{
	refill(cp, now); /* what the old rate earned */
	cp->rate = arg;
	if (cp->tokens > bucket_cap(cp))
		cp->tokens = bucket_cap(cp);
}

int nexus_copy_pause(struct nexus_copy *cp)
{
	return control(cp, "nexus_copy_pause", do_pause, 0);
}

int nexus_copy_resume(struct nexus_copy *cp)
{
	return control(cp, "nexus_copy_resume", do_resume, 0);
}

int nexus_copy_cancel(struct nexus_copy *cp)
{
	return control(cp, "nexus_copy_cancel", do_cancel, 0);
}

int nexus_copy_set_rate(struct nexus_copy *cp, uint64_t bytes_per_sec)
{
	return control(cp, "nexus_copy_set_rate", do_set_rate, bytes_per_sec);
}

int nexus_copy_get_progress(struct nexus_copy *cp,
			    struct nexus_copy_progress *p)
{
	struct nexus_copy_progress full;
	size_t n;

	if (!cp || !p)
		return nexus_error(-EINVAL, "nexus_copy_get_progress: NULL "
				   "argument");
	if (p->size < offsetof(struct nexus_copy_progress, bytes_done))
		return nexus_error(-EINVAL, "nexus_copy_get_progress: size "
				   "%zu (use NEXUS_COPY_PROGRESS_INIT)",
				   p->size);
	pthread_mutex_lock(&cp->lock);
	fill_progress(cp, &full);
	pthread_mutex_unlock(&cp->lock);
	n = p->size < sizeof(full) ? p->size : sizeof(full);
	full.size = p->size;
	memcpy(p, &full, n);
	return 0;
}

static void destroy_now(struct nexus_copy *cp)
{
	if (cp->user_free)
		cp->user_free(cp->user_data);
	job_free(cp);
}

int nexus_copy_destroy(struct nexus_copy *cp)
{
	int rc;

	if (!cp)
		return 0;
	if (on_job_thread(cp) && cp->in_done) {
		cp->destroy_in_done = true; /* once the callback returns */
		return 0;
	}
	rc = check_waiter(cp, "nexus_copy_destroy");
	if (rc)
		return rc;
	if (cp->started) {
		nexus_copy_cancel(cp); /* no-op once finished */
		pthread_join(cp->thread, NULL);
	}
	destroy_now(cp);
	return 0;
}
