/* SPDX-License-Identifier: MIT */
/* Small helpers used across the library, defined once: big-endian
 * loads and stores (wire formats), container_of, and a growable output
 * buffer; little-endian ones too (NVMe).  Header-only, so that the protocol codecs (lib/proto) and the
 * fuzz harnesses that link them alone need no other object.  Nothing
 * here is part of the ABI. */
#ifndef NEXUS_CORE_UTIL_H
#define NEXUS_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef container_of
/* The structure of type @type whose member @member is at @p. */
#define container_of(p, type, member)                                      \
	((type *)(void *)((char *)(p) - offsetof(type, member)))
#endif

/* ---- big-endian loads and stores (unaligned) ---- */

static inline void nx_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void nx_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void nx_put64(uint8_t *p, uint64_t v)
{
	nx_put32(p, (uint32_t)(v >> 32));
	nx_put32(p + 4, (uint32_t)v);
}

static inline uint16_t nx_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t nx_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t nx_get64(const uint8_t *p)
{
	return ((uint64_t)nx_get32(p) << 32) | nx_get32(p + 4);
}

/* ---- little-endian loads and stores (unaligned; NVMe) ---- */

static inline void nx_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void nx_put_le32(uint8_t *p, uint32_t v)
{
	nx_put_le16(p, (uint16_t)v);
	nx_put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void nx_put_le64(uint8_t *p, uint64_t v)
{
	nx_put_le32(p, (uint32_t)v);
	nx_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t nx_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t nx_get_le32(const uint8_t *p)
{
	return (uint32_t)nx_get_le16(p) | ((uint32_t)nx_get_le16(p + 2) << 16);
}

static inline uint64_t nx_get_le64(const uint8_t *p)
{
	return (uint64_t)nx_get_le32(p) | ((uint64_t)nx_get_le32(p + 4) << 32);
}

/* ---- growable output buffer (malloc) ---- */

/* `failed` is set once it could not grow; what was appended after that
 * is lost, and the user must give up (drop the connection). */
struct nx_out {
	uint8_t *data;
	size_t len, cap;
	bool failed;
};

/* Append @n bytes of @p (nothing once failed). */
static inline void nx_out_put(struct nx_out *o, const void *p, size_t n)
{
	if (o->failed || !n)
		return;
	if (o->cap - o->len < n) {
		size_t cap = o->cap ? o->cap : 256;
		uint8_t *d;

		while (cap - o->len < n) {
			if (cap > SIZE_MAX / 2) {
				o->failed = true;
				return;
			}
			cap *= 2;
		}
		d = realloc(o->data, cap);
		if (!d) {
			o->failed = true;
			return;
		}
		o->data = d;
		o->cap = cap;
	}
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

/* Empty it, keeping its memory. */
static inline void nx_out_reset(struct nx_out *o)
{
	o->len = 0;
}

/* Free its memory; it can be used again. */
static inline void nx_out_free(struct nx_out *o)
{
	free(o->data);
	o->data = NULL;
	o->len = o->cap = 0;
	o->failed = false;
}

#endif
