/* SPDX-License-Identifier: MIT */
/* NBD wire codec shared by the export and the source: see nbd.h. */
#include <errno.h>
#include <string.h>

#include "core/util.h"
#include "proto/nbd.h"

void nbd_req_encode(uint8_t *p, const struct nbd_req_hdr *r)
{
	nx_put32(p, NBD_REQUEST_MAGIC);
	nx_put16(p + 4, r->flags);
	nx_put16(p + 6, r->type);
	nx_put64(p + 8, r->cookie);
	nx_put64(p + 16, r->offset);
	nx_put32(p + 24, r->length);
}

bool nbd_req_decode(const uint8_t *p, struct nbd_req_hdr *r)
{
	r->flags = nx_get16(p + 4);
	r->type = nx_get16(p + 6);
	r->cookie = nx_get64(p + 8);
	r->offset = nx_get64(p + 16);
	r->length = nx_get32(p + 24);
	return nx_get32(p) == NBD_REQUEST_MAGIC;
}

size_t nbd_reply_hdr_len(const uint8_t *p)
{
	switch (nx_get32(p)) {
	case NBD_SIMPLE_REPLY_MAGIC:
		return NBD_SIMPLE_REPLY_LEN;
	case NBD_STRUCTURED_REPLY_MAGIC:
		return NBD_CHUNK_LEN;
	default:
		return 0;
	}
}

void nbd_reply_decode(const uint8_t *p, struct nbd_reply_hdr *h)
{
	memset(h, 0, sizeof(*h));
	if (nx_get32(p) == NBD_SIMPLE_REPLY_MAGIC) {
		h->error = nx_get32(p + 4);
		h->cookie = nx_get64(p + 8);
		return;
	}
	h->structured = true;
	h->flags = nx_get16(p + 4);
	h->type = nx_get16(p + 6);
	h->cookie = nx_get64(p + 8);
	h->length = nx_get32(p + 16);
}

size_t nbd_simple_reply_encode(uint8_t *p, uint64_t cookie, uint32_t err)
{
	nx_put32(p, NBD_SIMPLE_REPLY_MAGIC);
	nx_put32(p + 4, err);
	nx_put64(p + 8, cookie);
	return NBD_SIMPLE_REPLY_LEN;
}

size_t nbd_chunk_encode(uint8_t *p, uint16_t flags, uint16_t type,
			uint64_t cookie, uint32_t len)
{
	nx_put32(p, NBD_STRUCTURED_REPLY_MAGIC);
	nx_put16(p + 4, flags);
	nx_put16(p + 6, type);
	nx_put64(p + 8, cookie);
	nx_put32(p + 16, len);
	return NBD_CHUNK_LEN;
}

size_t nbd_data_chunk_encode(uint8_t *p, uint64_t cookie, uint64_t offset,
			     uint32_t len)
{
	nbd_chunk_encode(p, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
			 cookie, len + 8);
	nx_put64(p + NBD_CHUNK_LEN, offset);
	return NBD_DATA_CHUNK_LEN;
}

size_t nbd_error_chunk_encode(uint8_t *p, size_t cap, uint64_t cookie,
			      uint32_t err, const char *msg)
{
	size_t ml = msg ? strlen(msg) : 0;

	if (ml > cap - NBD_CHUNK_LEN - NBD_ERR_CHUNK_MIN)
		ml = cap - NBD_CHUNK_LEN - NBD_ERR_CHUNK_MIN;
	if (ml > UINT16_MAX)
		ml = UINT16_MAX;
	nbd_chunk_encode(p, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, cookie,
			 (uint32_t)(NBD_ERR_CHUNK_MIN + ml));
	nx_put32(p + NBD_CHUNK_LEN, err ? err : NBD_EIO);
	nx_put16(p + NBD_CHUNK_LEN + 4, (uint16_t)ml);
	if (ml)
		memcpy(p + NBD_CHUNK_LEN + NBD_ERR_CHUNK_MIN, msg, ml);
	return NBD_CHUNK_LEN + NBD_ERR_CHUNK_MIN + ml;
}

size_t nbd_bs_chunk_encode(uint8_t *p, uint64_t cookie, uint32_t ctx_id,
			   uint32_t n)
{
	nbd_chunk_encode(p, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
			 cookie, 4 + NBD_BS_DESC_LEN * n);
	nx_put32(p + NBD_CHUNK_LEN, ctx_id);
	return NBD_BS_CHUNK_LEN;
}

void nbd_bs_desc_encode(uint8_t *p, uint32_t len, uint32_t flags)
{
	nx_put32(p, len);
	nx_put32(p + 4, flags);
}

void nbd_bs_desc_decode(const uint8_t *p, uint32_t *len, uint32_t *flags)
{
	*len = nx_get32(p);
	*flags = nx_get32(p + 4);
}

void nbd_greeting_encode(uint8_t *p, uint16_t hflags)
{
	nx_put64(p, NBD_MAGIC);
	nx_put64(p + 8, NBD_IHAVEOPT);
	nx_put16(p + 16, hflags);
}

void nbd_opt_encode(uint8_t *p, uint32_t opt, uint32_t len)
{
	nx_put64(p, NBD_IHAVEOPT);
	nx_put32(p + 8, opt);
	nx_put32(p + 12, len);
}

bool nbd_opt_decode(const uint8_t *p, uint32_t *opt, uint32_t *len)
{
	*opt = nx_get32(p + 8);
	*len = nx_get32(p + 12);
	return nx_get64(p) == NBD_IHAVEOPT;
}

void nbd_opt_reply_encode(uint8_t *p, uint32_t opt, uint32_t type,
			  uint32_t len)
{
	nx_put64(p, NBD_REP_MAGIC);
	nx_put32(p + 8, opt);
	nx_put32(p + 12, type);
	nx_put32(p + 16, len);
}

bool nbd_opt_reply_decode(const uint8_t *p, uint32_t *opt, uint32_t *type,
			  uint32_t *len)
{
	*opt = nx_get32(p + 8);
	*type = nx_get32(p + 12);
	*len = nx_get32(p + 16);
	return nx_get64(p) == NBD_REP_MAGIC;
}

bool nbd_greeting_magics_decode(const uint8_t *p, uint64_t *magic,
				uint64_t *style)
{
	*magic = nx_get64(p);
	*style = nx_get64(p + 8);
	return *magic == NBD_MAGIC;
}

uint16_t nbd_greeting_flags_decode(const uint8_t *p)
{
	return nx_get16(p + NBD_GREETING_MAGICS_LEN);
}

void nbd_cflags_encode(uint8_t *p, uint32_t cflags)
{
	nx_put32(p, cflags);
}

uint32_t nbd_cflags_decode(const uint8_t *p)
{
	return nx_get32(p);
}

void nbd_export_info_encode(uint8_t *p, uint64_t size, uint16_t tflags)
{
	nx_put64(p, size);
	nx_put16(p + 8, tflags);
}

void nbd_export_info_decode(const uint8_t *p, uint64_t *size,
			    uint16_t *tflags)
{
	*size = nx_get64(p);
	*tflags = nx_get16(p + 8);
}

void nbd_oldstyle_decode(const uint8_t *p, uint64_t *size, uint32_t *flags)
{
	*size = nx_get64(p);
	*flags = nx_get32(p + 8);
}

size_t nbd_str32_encode(uint8_t *p, const void *s, uint32_t len)
{
	nx_put32(p, len);
	if (len)
		memcpy(p + 4, s, len);
	return 4 + (size_t)len;
}

size_t nbd_info_reqs_encode(uint8_t *p, const uint16_t *types, uint16_t n)
{
	nx_put16(p, n);
	for (uint16_t i = 0; i < n; i++)
		nx_put16(p + 2 + 2 * (size_t)i, types[i]);
	return 2 + 2 * (size_t)n;
}

size_t nbd_meta_queries_encode(uint8_t *p, const char *const *q, uint32_t n)
{
	size_t pos = 4;

	nx_put32(p, n);
	for (uint32_t i = 0; i < n; i++)
		pos += nbd_str32_encode(p + pos, q[i], (uint32_t)strlen(q[i]));
	return pos;
}

/* A string with a 32-bit length among the @avail bytes at @p: false if
 * they do not hold it whole. */
static bool str32_decode(const uint8_t *p, uint32_t avail,
			 const uint8_t **s, uint32_t *len)
{
	if (avail < 4)
		return false;
	*len = nx_get32(p);
	*s = p + 4;
	return *len <= avail - 4;
}

bool nbd_info_opt_decode(const uint8_t *p, uint32_t len,
			 struct nbd_named_opt *o)
{
	uint32_t pos;

	if (len < 6 || !str32_decode(p, len - 2, &o->name, &o->name_len))
		return false;
	pos = 4 + o->name_len;
	o->n = nx_get16(p + pos);
	o->items = p + pos + 2;
	return (uint64_t)pos + 2 + 2ull * o->n == len;
}

uint16_t nbd_info_opt_req(const struct nbd_named_opt *o, uint32_t i)
{
	return nx_get16(o->items + 2 * (size_t)i);
}

bool nbd_meta_opt_decode(const uint8_t *p, uint32_t len,
			 struct nbd_named_opt *m)
{
	uint32_t pos, ql;
	const uint8_t *q;

	if (len < 8 || !str32_decode(p, len - 4, &m->name, &m->name_len))
		return false;
	pos = 4 + m->name_len;
	m->n = nx_get32(p + pos);
	pos += 4;
	m->items = p + pos;
	for (uint32_t i = 0; i < m->n; i++) {
		if (!str32_decode(p + pos, len - pos, &q, &ql))
			return false;
		pos += 4 + ql;
	}
	return pos == len;
}

const uint8_t *nbd_meta_opt_query(const uint8_t **q, uint32_t *qlen)
{
	const uint8_t *s = *q + 4;

	*qlen = nx_get32(*q);
	*q = s + *qlen;
	return s;
}

void nbd_info_type_encode(uint8_t *p, uint16_t type)
{
	nx_put16(p, type);
}

uint16_t nbd_info_type_decode(const uint8_t *p)
{
	return nx_get16(p);
}

size_t nbd_info_export_encode(uint8_t *p, uint64_t size, uint16_t tflags)
{
	nbd_info_type_encode(p, NBD_INFO_EXPORT);
	nbd_export_info_encode(p + NBD_INFO_TYPE_LEN, size, tflags);
	return NBD_INFO_EXPORT_LEN;
}

void nbd_info_export_decode(const uint8_t *p, uint64_t *size,
			    uint16_t *tflags)
{
	nbd_export_info_decode(p + NBD_INFO_TYPE_LEN, size, tflags);
}

size_t nbd_info_block_size_encode(uint8_t *p, uint32_t min, uint32_t pref,
				  uint32_t max)
{
	nbd_info_type_encode(p, NBD_INFO_BLOCK_SIZE);
	nx_put32(p + 2, min);
	nx_put32(p + 6, pref);
	nx_put32(p + 10, max);
	return NBD_INFO_BLOCK_SIZE_LEN;
}

void nbd_info_block_size_decode(const uint8_t *p, uint32_t *min,
				uint32_t *pref, uint32_t *max)
{
	*min = nx_get32(p + 2);
	*pref = nx_get32(p + 6);
	*max = nx_get32(p + 10);
}

size_t nbd_meta_reply_encode(uint8_t *p, uint32_t id, const char *name,
			     uint32_t nlen)
{
	nx_put32(p, id);
	memcpy(p + 4, name, nlen);
	return 4 + (size_t)nlen;
}

bool nbd_meta_reply_decode(const uint8_t *p, uint32_t len, uint32_t *id,
			   const uint8_t **name, uint32_t *nlen)
{
	if (len < NBD_META_REPLY_MIN)
		return false;
	*id = nx_get32(p);
	*name = p + 4;
	*nlen = len - 4;
	return true;
}

uint64_t nbd_data_off_decode(const uint8_t *p)
{
	return nx_get64(p);
}

void nbd_hole_decode(const uint8_t *p, uint64_t *off, uint32_t *len)
{
	*off = nx_get64(p);
	*len = nx_get32(p + 8);
}

uint32_t nbd_bs_ctx_decode(const uint8_t *p)
{
	return nx_get32(p);
}

bool nbd_chunk_err_decode(const uint8_t *p, uint32_t len, uint16_t type,
			  struct nbd_chunk_err *e)
{
	if (len < NBD_ERR_CHUNK_MIN)
		return false;
	e->error = nx_get32(p);
	e->msg_len = nx_get16(p + 4);
	if (type == NBD_REPLY_TYPE_ERROR_OFFSET) {
		if (len < NBD_ERR_OFFSET_MIN ||
		    e->msg_len > len - NBD_ERR_OFFSET_MIN)
			return false;
		e->offset = nx_get64(p + NBD_ERR_CHUNK_MIN + e->msg_len);
	} else if (e->msg_len > len - NBD_ERR_CHUNK_MIN) {
		return false;
	}
	e->msg = p + NBD_ERR_CHUNK_MIN;
	return true;
}

uint32_t nbd_errno_encode(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
	case EACCES:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case EOPNOTSUPP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

int nbd_errno_decode(uint32_t e)
{
	switch (e) {
	case NBD_EPERM: return -EPERM;
	case NBD_EIO: return -EIO;
	case NBD_ENOMEM: return -ENOMEM;
	case NBD_EINVAL: return -EINVAL;
	case NBD_ENOSPC: return -ENOSPC;
	case NBD_EOVERFLOW: return -EOVERFLOW;
	case NBD_ENOTSUP: return -EOPNOTSUPP;
	case NBD_ESHUTDOWN: return -ESHUTDOWN;
	default: return -EINVAL;
	}
}
