/* SPDX-License-Identifier: MIT */
/* Private to the crypt stage: AES-XTS (IEEE 1619) over runs of whole
 * sectors, with OpenSSL.  Not part of the ABI.
 *
 * One struct nx_xts belongs to one reactor (its cipher contexts are not
 * thread-safe). */
#ifndef NEXUS_TRANSFORMS_XTS_H
#define NEXUS_TRANSFORMS_XTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nx_xts;

/* Set up AES-XTS with @key (64 bytes: AES-256-XTS, or 32: AES-128-XTS)
 * for sectors of @sector_size bytes (a multiple of 16, at most 1 MiB).
 * @direct: call the provider's cipher functions directly where it
 * offers them (false: always through EVP; for tests).  Returns NULL
 * when OpenSSL refuses the key or memory runs out. */
struct nx_xts *nx_xts_new(const unsigned char *key, size_t key_len,
			  uint32_t sector_size, bool direct);

/* Whether @x calls the provider directly (not through EVP). */
bool nx_xts_direct(const struct nx_xts *x);

/* Free it; OpenSSL wipes the key schedules and the scratch is wiped. */
void nx_xts_free(struct nx_xts *x);

/* En- (@enc) or decrypt @len bytes (whole sectors) from @in to @out
 * (which may be the same buffer).  The first sector's tweak is @tweak,
 * each next sector's @step more.  Returns 0 or -EIO. */
int nx_xts_crypt(struct nx_xts *x, bool enc, unsigned char *out,
		 const unsigned char *in, size_t len, uint64_t tweak,
		 uint64_t step);

#endif
