/* SPDX-License-Identifier: MIT */
/* CRC32C: a byte-wise table (built once) and, on x86-64 with SSE4.2, the
 * crc32 instruction eight bytes at a time.  The choice is made at the
 * first call and kept. */
#include "config.h"
#include <pthread.h>
#include <string.h>

#include <nexus/nexus_driver.h>

#include "crc32c.h"

#define POLY 0x82F63B78u /* Castagnoli, reflected */

static uint32_t table[256];
static uint32_t (*impl)(uint32_t, const void *, size_t);
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[i] = c;
	}
}

uint32_t nx_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	pthread_once(&once, table_init);
	while (n--)
		crc = table[(crc ^ *b++) & 0xFF] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t hw(uint32_t crc,
							const void *p,
							size_t n)
{
	const uint8_t *b = p;
	uint64_t c;

	for (; n && ((uintptr_t)b & 7); n--)
		crc = __builtin_ia32_crc32qi(crc, *b++);
	c = crc;
	for (; n >= 8; n -= 8, b += 8) {
		uint64_t v;

		memcpy(&v, b, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	for (; n; n--)
		crc = __builtin_ia32_crc32qi(crc, *b++);
	return crc;
}
#endif

static void choose(void)
{
	impl = nx_crc32c_sw;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		impl = hw;
#endif
}

uint32_t nexus_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return ~nx_crc32c(~crc, buf, len);
}

uint32_t nx_crc32c(uint32_t crc, const void *p, size_t n)
{
	static pthread_once_t chosen = PTHREAD_ONCE_INIT;

	pthread_once(&chosen, choose);
	return impl(crc, p, n);
}
