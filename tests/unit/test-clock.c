/* SPDX-License-Identifier: MIT */
/* The latency-stamp clock (lib/core/clock.c, private: compiled in): it
 * picks the TSC exactly where the kernel keeps time with it, never goes
 * backwards (also across its switch from clock_gettime to the TSC), and
 * measures intervals as CLOCK_MONOTONIC does. */
#include "unit.h"
#include "clock.h"

/* Whether the TSC should be picked: the same facts clock.c reads, found
 * here with other tools. */
static bool tsc_expected(void)
{
#if defined(__x86_64__)
	FILE *f = popen("grep -m1 '^flags' /proc/cpuinfo | grep -qw constant_tsc"
			" && grep -m1 '^flags' /proc/cpuinfo | grep -qw nonstop_tsc"
			" && grep -qx tsc /sys/devices/system/clocksource/"
			"clocksource0/current_clocksource", "r");

	return f && pclose(f) == 0;
#else
	return false;
#endif
}

/* Stamp for @ms milliseconds; fails on any stamp below the one before. */
static uint64_t stamp_for(unsigned ms)
{
	uint64_t end = unit_now_ns() + ms * 1000000ull, prev = nx_stamp_ns();
	uint64_t n = 0, back = 0;

	while (unit_now_ns() < end) {
		uint64_t s = nx_stamp_ns();

		if (s < prev)
			back++;
		prev = s;
		n++;
	}
	CU_ASSERT_EQUAL(back, 0);
	return n;
}

static void test_source(void)
{
	const char *want = tsc_expected() ? "tsc" : "monotonic";

	/* the calibration takes 20 ms of use */
	CU_ASSERT(stamp_for(60) > 0);
	CU_ASSERT_STRING_EQUAL(nx_clock_source(), want);
}

static void *stamper(void *arg)
{
	(void)arg;
	stamp_for(40);
	return NULL;
}

static void test_monotonic_threads(void)
{
	pthread_t t[3];

	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, stamper, NULL),
				      0);
	stamper(NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
}

/* Intervals of 1 to 50 ms agree with CLOCK_MONOTONIC to 0.2% + 20 us.
 * Each stamp is read between two monotonic readings, so a preemption
 * between the readings (a loaded machine) widens the bracket the stamp
 * interval is checked against instead of failing the test. */
static void test_intervals(void)
{
	static const unsigned ms[] = { 1, 5, 50 };

	stamp_for(30); /* past the calibration */
	for (unsigned i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		uint64_t m0a = unit_now_ns(), s0 = nx_stamp_ns(),
			 m0b = unit_now_ns(), m1a, s1, m1b, lo, hi, tol, d;

		unit_sleep_ms(ms[i]);
		m1a = unit_now_ns();
		s1 = nx_stamp_ns();
		m1b = unit_now_ns();
		lo = m1a - m0b; /* the true interval is within [lo, hi] */
		hi = m1b - m0a;
		tol = hi / 500 + 20000;
		d = s1 - s0;
		if (d + tol < lo || d > hi + tol)
			fprintf(stderr, "%u ms: stamps %llu ns, monotonic "
				"%llu-%llu ns\n", ms[i], (unsigned long long)d,
				(unsigned long long)lo, (unsigned long long)hi);
		CU_ASSERT(d + tol >= lo && d <= hi + tol);
	}
}

static const struct unit_test tests[] = {
	/* first: these threads stamp through the calibration */
	{ "never backwards, several threads", test_monotonic_threads },
	{ "the TSC exactly where the kernel trusts it", test_source },
	{ "intervals as CLOCK_MONOTONIC", test_intervals },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main("clock", tests);
}
