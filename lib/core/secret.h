/* SPDX-License-Identifier: MIT */
/* Secret memory and hex decoding (secret.c), for the core and for the
 * built-in drivers that handle key material. */
#ifndef NEXUS_CORE_SECRET_H
#define NEXUS_CORE_SECRET_H

#include <stddef.h>

#include "hidden.h"

struct nexus_ctx;

/* Page-aligned, zeroed memory, locked where allowed and kept out of core
 * dumps (ctx may be NULL: no log line when it cannot be locked). */
NX_HIDDEN void *nx_secure_alloc(struct nexus_ctx *ctx, size_t len);
/* Wipe, unlock and free what nx_secure_alloc() returned. */
NX_HIDDEN void nx_secure_free(void *p, size_t len);
/* Number of characters of @p s without surrounding white space; *start
 * receives where they begin. */
NX_HIDDEN size_t nx_hex_digits(const char *s, const char **start);
/* Decode hex (white space around it ignored) into exactly @p len bytes.
 * @p what names the source in messages; the text is never quoted. */
NX_HIDDEN int nx_hex_decode(const char *s, unsigned char *out, size_t len,
			    const char *what);

#endif
