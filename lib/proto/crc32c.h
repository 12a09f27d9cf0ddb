/* SPDX-License-Identifier: MIT */
/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the digest of
 * NVMe/TCP headers and data (and of iSCSI).  With the SSE4.2 crc32
 * instruction where the CPU has it (checked once, at the first call), a
 * table otherwise.  Not part of the ABI. */
#ifndef NEXUS_PROTO_CRC32C_H
#define NEXUS_PROTO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC32C over @p n bytes at @p p.  @p crc is the running
 * register: start with NX_CRC32C_INIT and finish with nx_crc32c_final();
 * nx_crc32c_final(nx_crc32c(NX_CRC32C_INIT, "123456789", 9)) is
 * 0xE3069283. */
#define NX_CRC32C_INIT 0xFFFFFFFFu
__attribute__((visibility("hidden"))) uint32_t nx_crc32c(uint32_t crc,
							 const void *p,
							 size_t n);

static inline uint32_t nx_crc32c_final(uint32_t crc)
{
	return crc ^ 0xFFFFFFFFu;
}

/* The digest of one buffer (init, update, final). */
static inline uint32_t nx_crc32c_digest(const void *p, size_t n)
{
	return nx_crc32c_final(nx_crc32c(NX_CRC32C_INIT, p, n));
}

/* The portable (table) version, whatever the CPU: for tests comparing it
 * with the accelerated one. */
__attribute__((visibility("hidden"))) uint32_t nx_crc32c_sw(uint32_t crc,
							    const void *p,
							    size_t n);

#endif
