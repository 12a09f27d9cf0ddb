/* SPDX-License-Identifier: MIT */
/* The latency-stamp clock (clock.h): the TSC where it is reliable,
 * clock_gettime(CLOCK_MONOTONIC) elsewhere.
 *
 * Every I/O is stamped when it starts and when it finishes, at every
 * stacked layer, for the per-device latency histograms.  Through the
 * vDSO clock_gettime() costs 15-20 ns, which for `null | crypt` at 4 KiB
 * was over a tenth of the CPU time; rdtsc costs less than half of that.
 *
 * The TSC is used only when it ticks at a constant rate in every power
 * state (cpuinfo flags constant_tsc and nonstop_tsc) and the kernel
 * itself keeps time with it (current clocksource "tsc"): the kernel
 * drops that clocksource when it finds the TSCs of the CPUs out of step,
 * so a stamp taken on one CPU compares with one taken on another.
 *
 * Its rate is measured against CLOCK_MONOTONIC without delaying
 * anything: the first stamp records a (TSC, CLOCK_MONOTONIC) pair, stamps
 * are read with clock_gettime() for the next CAL_NS, and the first stamp
 * after that records a second pair and switches to the TSC.  Over 20 ms,
 * with each pair read within a few hundred nanoseconds, the rate is
 * right to about 1e-5; both time lines meet at the switch, so an I/O
 * stamped across it is measured as well as any other. */
#include "config.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

#define CAL_NS (20 * 1000 * 1000ull) /* calibration interval */

struct nx_clock nx_clock;

#if defined(__x86_64__)
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t cal_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t cal_tsc, cal_ns; /* first pair, under cal_lock */

/* Whether /proc/cpuinfo's first "flags" line has every word of @want. */
static bool cpu_flags(const char *const *want, unsigned n)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[4096];
	bool ok = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		ok = true;
		for (unsigned i = 0; i < n && ok; i++) {
			size_t len = strlen(want[i]);
			const char *p = line;

			ok = false;
			while ((p = strstr(p, want[i]))) {
				if (p[-1] == ' ' &&
				    (p[len] == ' ' || p[len] == '\n' || !p[len])) {
					ok = true;
					break;
				}
				p += len;
			}
		}
		break;
	}
	fclose(f);
	return ok;
}

static bool kernel_uses_tsc(void)
{
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
			"current_clocksource", "re");
	char cs[32] = "";
	bool ok;

	if (!f)
		return false;
	ok = fgets(cs, sizeof(cs), f) && !strcmp(cs, "tsc\n");
	fclose(f);
	return ok;
}

/* A (TSC, CLOCK_MONOTONIC) pair: of three tries, the one whose clock
 * read took the least time (the least likely to be interrupted). */
static void pair(uint64_t *tsc, uint64_t *ns)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 3; i++) {
		uint64_t t0 = nx_rdtsc(), n = nx_now_ns(), t1 = nx_rdtsc();

		if (t1 - t0 < best) {
			best = t1 - t0;
			*tsc = t0 + (t1 - t0) / 2;
			*ns = n;
		}
	}
}

static void clock_init(void)
{
	static const char *const flags[] = { "constant_tsc", "nonstop_tsc" };
	int mode = NX_CLOCK_MONOTONIC;

	if (cpu_flags(flags, 2) && kernel_uses_tsc()) {
		pair(&cal_tsc, &cal_ns);
		mode = NX_CLOCK_CALIBRATING;
	}
	atomic_store_explicit(&nx_clock.mode, mode, memory_order_release);
}

/* Past CAL_NS since the first pair: measure the rate, switch to the
 * TSC.  One thread does it; the others read clock_gettime() meanwhile. */
static void calibrate(uint64_t now)
{
	uint64_t tsc, ns;

	if (now - cal_ns < CAL_NS || pthread_mutex_trylock(&cal_lock))
		return;
	if (atomic_load(&nx_clock.mode) == NX_CLOCK_CALIBRATING) {
		pair(&tsc, &ns);
		if (tsc > cal_tsc && ns > cal_ns) {
			nx_clock.mult = (uint64_t)(((unsigned __int128)(ns - cal_ns)
						    << 32) / (tsc - cal_tsc));
			nx_clock.tsc0 = tsc;
			nx_clock.ns0 = ns;
			atomic_store_explicit(&nx_clock.mode, NX_CLOCK_TSC,
					      memory_order_release);
		} else { /* the TSC went backwards: do not use it */
			atomic_store(&nx_clock.mode, NX_CLOCK_MONOTONIC);
		}
	}
	pthread_mutex_unlock(&cal_lock);
}

uint64_t nx_stamp_slow(void)
{
	uint64_t now;

	pthread_once(&once, clock_init);
	switch (atomic_load_explicit(&nx_clock.mode, memory_order_acquire)) {
	case NX_CLOCK_TSC: /* switched by another thread meanwhile */
		return nx_stamp_ns();
	case NX_CLOCK_CALIBRATING:
		now = nx_now_ns();
		calibrate(now);
		return now;
	default:
		return nx_now_ns();
	}
}
#else
uint64_t nx_stamp_slow(void)
{
	atomic_store(&nx_clock.mode, NX_CLOCK_MONOTONIC);
	return nx_now_ns();
}
#endif

const char *nx_clock_source(void)
{
	switch (atomic_load(&nx_clock.mode)) {
	case NX_CLOCK_TSC:
		return "tsc";
	case NX_CLOCK_CALIBRATING:
		return "calibrating";
	case NX_CLOCK_MONOTONIC:
		return "monotonic";
	default:
		return "unset";
	}
}
