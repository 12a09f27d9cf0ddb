/* SPDX-License-Identifier: MIT */
/* AES-XTS over runs of sectors.
 *
 * XTS encrypts block j of a sector as C = E1(P ^ T_j) ^ T_j, where
 * T_0 = E2(tweak) and T_j+1 = T_j * alpha in GF(2^128) (IEEE 1619).
 * OpenSSL's XTS cipher does exactly that per call, but a call per sector
 * must first set the tweak with EVP_CipherInit_ex(), and in OpenSSL 3
 * that costs more than encrypting a 512-byte sector.  So:
 *  - sectors of 4096 bytes go through OpenSSL's XTS, one call each (the
 *    set-up is then a small part of the work);
 *  - smaller sectors are done in batches of BATCH bytes: one AES-ECB
 *    call with key 2 makes every sector's T_0, the tweaks of all blocks
 *    are expanded into a table, and one AES-ECB call with key 1 does
 *    the blocks between two XORs with that table.  Same bytes, a third
 *    of the cost per 512-byte sector.
 * The batched path computes T_j as 64-bit halves in host order, so it
 * is used on little-endian hosts only (elsewhere: one call per sector).
 * tests/crypt checks both paths against independent implementations. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "xts.h"

#define BATCH 4096	       /* bytes per batch: with its tweaks, in L1 */
#define BATCH_MAX_SECTOR 2048  /* larger sectors: OpenSSL's XTS per sector */

/* 16 bytes, any alignment, may alias the caller's data */
typedef uint64_t blk_u
	__attribute__((vector_size(16), aligned(1), may_alias));
typedef uint64_t blk __attribute__((vector_size(16), may_alias));

struct nx_xts {
	blk tw[BATCH / 16] __attribute__((aligned(64))); /* batch's tweaks */
	EVP_CIPHER_CTX *xts_enc, *xts_dec; /* per sector */
	EVP_CIPHER_CTX *ecb_enc, *ecb_dec; /* batched: key 1 */
	EVP_CIPHER_CTX *ecb_tweak;	   /* batched: key 2, makes T_0 */
	uint32_t sector_size;
	bool batched;
};

static EVP_CIPHER_CTX *ctx_new(const char *name, const unsigned char *key,
			       int enc)
{
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
	EVP_CIPHER_CTX *x = c ? EVP_CIPHER_CTX_new() : NULL;

	if (x && !EVP_CipherInit_ex(x, c, NULL, key, NULL, enc)) {
		EVP_CIPHER_CTX_free(x);
		x = NULL;
	}
	if (x)
		EVP_CIPHER_CTX_set_padding(x, 0);
	EVP_CIPHER_free(c); /* the context keeps its own reference */
	return x;
}

void nx_xts_free(struct nx_xts *x)
{
	if (!x)
		return;
	EVP_CIPHER_CTX_free(x->xts_enc); /* each wipes its key schedule */
	EVP_CIPHER_CTX_free(x->xts_dec);
	EVP_CIPHER_CTX_free(x->ecb_enc);
	EVP_CIPHER_CTX_free(x->ecb_dec);
	EVP_CIPHER_CTX_free(x->ecb_tweak);
	OPENSSL_cleanse(x->tw, sizeof(x->tw));
	free(x);
}

struct nx_xts *nx_xts_new(const unsigned char *key, size_t key_len,
			  uint32_t sector_size)
{
	bool aes256 = key_len == 64;
	size_t half = key_len / 2;
	struct nx_xts *x;

	if ((key_len != 64 && key_len != 32) || !sector_size ||
	    sector_size % 16 || sector_size > BATCH)
		return NULL;
	if (posix_memalign((void **)&x, 64, sizeof(*x)))
		return NULL;
	memset(x, 0, sizeof(*x));
	x->sector_size = sector_size;
	x->batched = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&
		     sector_size <= BATCH_MAX_SECTOR && BATCH % sector_size == 0;
	if (x->batched) {
		const char *ecb = aes256 ? "AES-256-ECB" : "AES-128-ECB";

		x->ecb_enc = ctx_new(ecb, key, 1);
		x->ecb_dec = ctx_new(ecb, key, 0);
		x->ecb_tweak = ctx_new(ecb, key + half, 1);
		if (!x->ecb_enc || !x->ecb_dec || !x->ecb_tweak) {
			nx_xts_free(x);
			return NULL;
		}
	} else {
		const char *xts = aes256 ? "AES-256-XTS" : "AES-128-XTS";

		x->xts_enc = ctx_new(xts, key, 1);
		x->xts_dec = ctx_new(xts, key, 0);
		if (!x->xts_enc || !x->xts_dec) {
			nx_xts_free(x);
			return NULL;
		}
	}
	return x;
}

static inline void le64_put(unsigned char *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* One call of OpenSSL's XTS per sector. */
static int per_sector(struct nx_xts *x, bool enc, unsigned char *out,
		      const unsigned char *in, size_t len, uint64_t tweak,
		      uint64_t step)
{
	EVP_CIPHER_CTX *c = enc ? x->xts_enc : x->xts_dec;
	uint32_t ss = x->sector_size;
	unsigned char iv[16] = { 0 };
	int ol;

	for (size_t pos = 0; pos < len; pos += ss, tweak += step) {
		le64_put(iv, tweak);
		/* enc, not -1: spares OpenSSL 3 a parameter lookup */
		if (!EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, enc) ||
		    !EVP_CipherUpdate(c, out + pos, &ol, in + pos, (int)ss) ||
		    ol != (int)ss)
			return -EIO;
	}
	return 0;
}

/* Fill @t with the tweaks of the @nb blocks of a sector whose T_0 is
 * (@lo, @hi).  The first eight by doubling (shift left, fold the bit
 * that falls off back in as x^7 + x^2 + x + 1 = 0x87); the others as
 * T_j = T_j-8 * x^8, independent of each other so they pipeline: the
 * byte that falls off, h, folds back in as the carry-less product
 * h * 0x87 = h ^ h<<1 ^ h<<2 ^ h<<7 (15 bits: no further reduction). */
static inline void expand(blk *t, size_t nb, uint64_t lo, uint64_t hi)
{
	uint64_t *w = (uint64_t *)t;

	for (size_t j = 0; j < 8; j++) {
		uint64_t carry = hi >> 63;

		w[2 * j] = lo;
		w[2 * j + 1] = hi;
		hi = hi << 1 | lo >> 63;
		lo = lo << 1 ^ (0x87 & -carry);
	}
	for (size_t j = 8; j < nb; j++) {
		uint64_t l = w[2 * j - 16], h = w[2 * j - 15];
		uint64_t b = h >> 56;

		w[2 * j] = l << 8 ^ b ^ b << 1 ^ b << 2 ^ b << 7;
		w[2 * j + 1] = h << 8 | l >> 56;
	}
}

/* Whole batches: ECB with key 2 for the T_0s, ECB with key 1 between two
 * XORs with the tweak table. */
static int batched(struct nx_xts *x, bool enc, unsigned char *out,
		   const unsigned char *in, size_t len, uint64_t tweak,
		   uint64_t step)
{
	uint32_t ss = x->sector_size;
	size_t nb = ss / 16;
	uint64_t t0[2 * (BATCH / 16)];
	int ol;

	for (size_t done = 0; done < len;) {
		size_t chunk = len - done < BATCH ? len - done : BATCH;
		size_t ns = chunk / ss, n = chunk / 16;
		const blk_u *src = (const blk_u *)(in + done);
		blk_u *dst = (blk_u *)(out + done);

		for (size_t s = 0; s < ns; s++, tweak += step) {
			t0[2 * s] = tweak; /* little-endian host */
			t0[2 * s + 1] = 0;
		}
		if (!EVP_EncryptUpdate(x->ecb_tweak, (unsigned char *)t0, &ol,
				       (unsigned char *)t0, (int)(16 * ns)) ||
		    ol != (int)(16 * ns))
			return -EIO;
		for (size_t s = 0; s < ns; s++)
			expand(x->tw + s * nb, nb, t0[2 * s], t0[2 * s + 1]);
		for (size_t i = 0; i < n; i++)
			dst[i] = src[i] ^ x->tw[i];
		if (!EVP_CipherUpdate(enc ? x->ecb_enc : x->ecb_dec,
				      out + done, &ol, out + done, (int)chunk) ||
		    ol != (int)chunk)
			return -EIO;
		for (size_t i = 0; i < n; i++)
			dst[i] ^= x->tw[i];
		done += chunk;
	}
	return 0;
}

int nx_xts_crypt(struct nx_xts *x, bool enc, unsigned char *out,
		 const unsigned char *in, size_t len, uint64_t tweak,
		 uint64_t step)
{
	if (len % x->sector_size)
		return -EIO;
	if (x->batched)
		return batched(x, enc, out, in, len, tweak, step);
	return per_sector(x, enc, out, in, len, tweak, step);
}
