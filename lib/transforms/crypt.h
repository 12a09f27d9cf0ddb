/* SPDX-License-Identifier: MIT */
/* Private to the crypt stage: key material (crypt_key.c) shared with the
 * data path (crypt.c).  Not part of the ABI. */
#ifndef NEXUS_TRANSFORMS_CRYPT_H
#define NEXUS_TRANSFORMS_CRYPT_H

#include <stddef.h>
#include <nexus/nexus_driver.h>

/* Largest key: AES-256-XTS, two 256-bit keys. */
#define NX_CRYPT_MAX_KEY 64

/* Memory for key material: page-aligned, locked in RAM where allowed
 * (a failure to lock is logged at debug level and ignored), excluded
 * from core dumps.  nx_crypt_secure_free() wipes it first. */
void *nx_crypt_secure_alloc(struct nexus_ctx *ctx, size_t len);
void nx_crypt_secure_free(void *p, size_t len);

/* The rule of the key sources, for the parse-time check: exactly one of
 * key-file=, key-env= and key-name=, not empty.  0 or -EINVAL. */
int nx_crypt_check_key_source(const struct nexus_opts *opts);

/* Read the key that the stage's options name (key-file, key-env or
 * key-name; nx_crypt_check_key_source() passed) into @key, which holds @len bytes (the size key-size asks
 * for).  Returns 0 or a negative errno with a message that names the
 * stage and the option, never the key. */
int nx_crypt_load_key(struct nexus_ctx *ctx, const struct nexus_opts *opts,
		      unsigned char *key, size_t len);

/* Whether the two halves of an XTS key are equal (IEEE 1619 forbids). */
int nx_crypt_halves_equal(const unsigned char *key, size_t len);


#endif
