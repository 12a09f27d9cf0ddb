/* SPDX-License-Identifier: MIT */
/* The copy engine's private parts, shared by its three files:
 *   copy.c       the job: API, options, its thread, phases, pause,
 *                cancel, rate limit, progress;
 *   copy-plan.c  the planner: ranges and block status become jobs
 *                (data, zero, verify), in order;
 *   copy-exec.c  the executor: slots run jobs on the reactors, chain
 *                the next job from their completions, compare.
 *
 * Threads.  The job's thread plans jobs into a queue and starts idle
 * slots; a slot that finishes a job on a reactor takes the next queued
 * job right there, so I/O keeps flowing without waking the job's thread
 * (which only plans, paces and reports).  Everything shared between the
 * two sides is under nexus_copy::lock. */
#ifndef NEXUS_CORE_COPY_H
#define NEXUS_CORE_COPY_H

#include "internal.h"

#define NX_COPY_MAX_REQUESTS 256u
#define NX_COPY_ZERO_CHUNK (1ull << 30) /* largest WRITE_ZEROES/TRIM */
#define NX_COPY_MAX_EXTENTS 64u
#define NX_COPY_NO_ZERO_OP UINT32_MAX
#define NX_COPY_OP_LOCK 0x100 /* failed_op: the lock hook refused */

enum nx_copy_kind {
	NX_COPY_DATA,	     /* read SRC, write DST (or zero it) */
	NX_COPY_ZERO,	     /* zero DST */
	NX_COPY_VERIFY_DATA, /* read both, compare */
	NX_COPY_VERIFY_ZERO, /* read DST, check zeroes */
};

struct nx_copy_job {
	uint8_t kind; /* enum nx_copy_kind */
	uint64_t off, len;
};

struct nexus_copy;

/* One request in flight (the chunk a lock hook sees). */
struct nx_copy_slot {
	struct nexus_copy *cp;
	struct nx_copy_job job;
	struct iovec siov, diov; /* SRC and DST buffers */
	atomic_int pending;	 /* verify: reads outstanding */
	int result;
	int failed_op;	   /* for the message */
	bool locked;	   /* the lock hook granted this chunk */
	uint64_t diff_off; /* verify: first difference */
};

/* Planner state: the job's thread only. */
struct nx_copy_plan {
	bool verify;
	size_t range;	   /* next entry of cp->ranges */
	uint64_t pos, end; /* the range being planned */
	struct nexus_extent ext[NX_COPY_MAX_EXTENTS];
	unsigned next_ext, next_ext_n;
	uint64_t zero_pos, zero_end; /* zero range being issued */
	uint64_t data_pos, data_end; /* data range being issued */
};

struct nexus_copy {
	struct nexus_ctx *ctx;
	struct nexus_dev *src, *dst;
	struct nexus_dev_info si, di;
	uint64_t size, align, block;
	uint32_t zero_op; /* NEXUS_OP_WRITE_ZEROES, _TRIM, NO_ZERO_OP */
	uint32_t flags;	  /* NEXUS_COPY_* */
	unsigned interval_ms;
	nexus_copy_next_fn next_range;
	nexus_copy_progress_fn progress_fn;
	nexus_copy_lock_fn lock_fn;
	nexus_copy_unlock_fn unlock_fn;
	void *user_data;
	void (*user_free)(void *user_data);
	/* the ranges: given, or those next_range returned so far */
	struct nexus_copy_range *ranges;
	size_t nranges, ranges_cap;
	bool whole;	  /* no ranges given: the whole source */
	bool ranges_done; /* next_range returned 0 */
	struct nx_copy_plan plan;
	struct nx_copy_slot *slots;
	unsigned nslots;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* to the job's thread; and to waiters */
	/* under lock: the queue of planned jobs, idle slots */
	struct nx_copy_job *queue;
	unsigned qcap, qhead, qlen;
	struct nx_copy_slot **idle;
	unsigned nidle, inflight;
	bool producer_done;
	/* under lock: control */
	int phase; /* enum nexus_copy_phase */
	bool started, finished, cb_returned;
	bool paused, cancelled;
	uint64_t rate;	      /* bytes/s, 0: none */
	double tokens;	      /* rate limit bucket, bytes (may go < 0) */
	uint64_t refill_ns;   /* tokens last refilled */
	uint64_t t0_ns;	      /* phase start */
	uint64_t paused_ns;   /* time paused in this phase */
	uint64_t pause_start; /* when paused, else 0 */
	uint64_t end_ns;      /* phase end, or 0 */
	/* under lock: figures */
	uint64_t total, done_bytes, data_bytes, zero_bytes, skipped_bytes;
	uint64_t mismatch_off;
	bool mismatch;
	int error;
	uint64_t error_off; /* of the reported error: the lowest */
	char errmsg[512];
	int result;
	pthread_t thread;
	bool in_done;	      /* the job's thread runs done_fn */
	bool destroy_in_done; /* done_fn destroyed the job */
	nexus_copy_done_fn done_fn;
	void *done_ud;
};

/* copy.c */
/* Whether the job stops starting requests (lock held). */
NX_HIDDEN bool nx_copy_stopping(const struct nexus_copy *cp);
/* Whether a slot may start a job now: not paused, within the rate
 * limit; a job that may takes its tokens (lock held). */
NX_HIDDEN bool nx_copy_may_start(struct nexus_copy *cp,
				 const struct nx_copy_job *j);

/* copy-plan.c: where range r starts and ends once widened to the block
 * size and clipped to SRC */
NX_HIDDEN void nx_copy_span(const struct nexus_copy *cp,
			    const struct nexus_copy_range *r, uint64_t *start,
			    uint64_t *end);
/* the next job of the phase; false when none is left.
 * Returns a negative errno in *err when next_range failed. */
NX_HIDDEN void nx_copy_plan_reset(struct nexus_copy *cp, bool verify);
NX_HIDDEN bool nx_copy_plan_next(struct nexus_copy *cp, struct nx_copy_job *j,
				 int *err);

/* copy-exec.c */
NX_HIDDEN int nx_copy_slots_alloc(struct nexus_copy *cp, unsigned n);
NX_HIDDEN void nx_copy_slots_free(struct nexus_copy *cp);
/* Take the queue's next job into s (lock held). */
NX_HIDDEN void nx_copy_take(struct nexus_copy *cp, struct nx_copy_slot *s);
/* Start s's job on the reactor its index gives (lock not held). */
NX_HIDDEN void nx_copy_slot_start(struct nexus_copy *cp,
				  struct nx_copy_slot *s);
/* Record a failure with its message (lock held). */
NX_HIDDEN void nx_copy_fail(struct nexus_copy *cp, int err, uint64_t off,
			    const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
