/* SPDX-License-Identifier: MIT */
/* Latency histogram: 4 buckets per power of two of nanoseconds (the
 * bucket of a sample: nx_lat_bucket(), inline in internal.h). */
#include "internal.h"


uint64_t nexus_lat_bucket_floor(unsigned i)
{
	unsigned msb, sub;

	if (i >= NEXUS_LAT_BUCKETS)
		return UINT64_MAX;
	if (i < NX_LAT_SUB)
		return i;
	msb = i / NX_LAT_SUB + 1;
	sub = i % NX_LAT_SUB;
	return ((uint64_t)(NX_LAT_SUB + sub)) << (msb - 2);
}

uint64_t nexus_lat_percentile(const uint64_t *hist, double pct)
{
	uint64_t total = 0, seen = 0, want;

	if (!hist)
		return 0;
	for (unsigned i = 0; i < NEXUS_LAT_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	if (pct < 0)
		pct = 0;
	if (pct > 100)
		pct = 100;
	want = (uint64_t)((double)total * pct / 100.0 + 0.5);
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < NEXUS_LAT_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= want)
			return i + 1 < NEXUS_LAT_BUCKETS
				       ? nexus_lat_bucket_floor(i + 1)
				       : nexus_lat_bucket_floor(i);
	}
	return nexus_lat_bucket_floor(NEXUS_LAT_BUCKETS - 1);
}
