/* SPDX-License-Identifier: MIT */
/* Clocks of the core.  Nothing here is part of the ABI.
 *
 * nx_now_ns()   CLOCK_MONOTONIC: timers, deadlines, rates (throttle).
 * nx_stamp_ns() a cheap clock for latency stamps: nanoseconds on a
 *               monotonic time line, meant only for differences (the
 *               latency histograms).  It reads the TSC where the kernel
 *               itself trusts it (see clock.c), at about half the cost
 *               of clock_gettime() through the vDSO, and is
 *               clock_gettime(CLOCK_MONOTONIC) elsewhere. */
#ifndef NEXUS_CORE_CLOCK_H
#define NEXUS_CORE_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "hidden.h"

static inline uint64_t nx_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What nx_stamp_ns() reads (nx_clock.mode). */
enum nx_clock_mode {
	NX_CLOCK_UNSET = 0,	  /* not looked at yet */
	NX_CLOCK_CALIBRATING = 1, /* TSC usable, rate not measured yet */
	NX_CLOCK_TSC = 2,
	NX_CLOCK_MONOTONIC = 3,
};

/* The TSC time line: ns = ns0 + ((tsc - tsc0) * mult) >> 32.  Written
 * once before mode is set to NX_CLOCK_TSC (release), read after it is
 * seen (acquire). */
struct nx_clock {
	_Atomic int mode;
	uint64_t tsc0, ns0, mult;
};
extern struct nx_clock nx_clock NX_HIDDEN;

/* Every stamp until the TSC is calibrated, and always without one. */
NX_HIDDEN uint64_t nx_stamp_slow(void);
/* Name of what nx_stamp_ns() reads now: "tsc", "monotonic" or
 * "calibrating" (for tests and logs). */
NX_HIDDEN const char *nx_clock_source(void);

#if defined(__x86_64__)
static inline uint64_t nx_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t nx_stamp_ns(void)
{
	if (__builtin_expect(atomic_load_explicit(&nx_clock.mode,
						  memory_order_acquire) ==
				     NX_CLOCK_TSC,
			     1)) {
		uint64_t d = nx_rdtsc() - nx_clock.tsc0;

		return nx_clock.ns0 +
		       (uint64_t)(((unsigned __int128)d * nx_clock.mult) >> 32);
	}
	return nx_stamp_slow();
}
#else
static inline uint64_t nx_stamp_ns(void)
{
	return nx_now_ns();
}
#endif

#endif
