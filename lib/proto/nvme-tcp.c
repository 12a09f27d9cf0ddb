/* SPDX-License-Identifier: MIT */
/* NVMe/TCP PDU encoding, decoding and common-header checks (see
 * nvme-tcp.h).  Everything works on byte buffers of the lengths the
 * header says; nothing here allocates or keeps state. */
#include "config.h"
#include <string.h>

#include "core/util.h"
#include "crc32c.h"
#include "nvme-tcp.h"

/* Byte offsets of the common header's fields (the FEI of a termination
 * request names one). */
enum { CH_TYPE = 0, CH_FLAGS = 1, CH_HLEN = 2, CH_PDO = 3, CH_PLEN = 4 };

void nvme_tcp_ch_decode(const uint8_t *p, struct nvme_tcp_ch *ch)
{
	ch->type = p[CH_TYPE];
	ch->flags = p[CH_FLAGS];
	ch->hlen = p[CH_HLEN];
	ch->pdo = p[CH_PDO];
	ch->plen = nx_get_le32(p + CH_PLEN);
}

void nvme_tcp_ch_encode(uint8_t *p, const struct nvme_tcp_ch *ch)
{
	p[CH_TYPE] = ch->type;
	p[CH_FLAGS] = ch->flags;
	p[CH_HLEN] = ch->hlen;
	p[CH_PDO] = ch->pdo;
	nx_put_le32(p + CH_PLEN, ch->plen);
}

/* What a PDU type is: its header length, who sends it, whether it is
 * digested and whether it may carry data at pdo. */
struct kind {
	uint8_t hlen;
	bool by_host;
	bool digests; /* header and data digests apply */
	bool data;    /* data at pdo: may (CMD) or must (H2C/C2H data) */
	bool needs_data;
	bool ic;      /* ICReq/ICResp: only before the connection is up */
	bool term;    /* termination request: data follows the header */
};

static const struct kind *kind_of(uint8_t type)
{
	static const struct kind k[] = {
		[NVME_TCP_ICREQ] = { .hlen = NVME_TCP_IC_HLEN, .by_host = true,
				     .ic = true },
		[NVME_TCP_ICRESP] = { .hlen = NVME_TCP_IC_HLEN, .ic = true },
		[NVME_TCP_H2C_TERM] = { .hlen = NVME_TCP_TERM_HLEN,
					.by_host = true, .term = true },
		[NVME_TCP_C2H_TERM] = { .hlen = NVME_TCP_TERM_HLEN,
					.term = true },
		[NVME_TCP_CMD] = { .hlen = NVME_TCP_CMD_HLEN, .by_host = true,
				   .digests = true, .data = true },
		[NVME_TCP_RSP] = { .hlen = NVME_TCP_RSP_HLEN, .digests = true },
		[NVME_TCP_H2C_DATA] = { .hlen = NVME_TCP_DATA_HLEN,
					.by_host = true, .digests = true,
					.data = true, .needs_data = true },
		[NVME_TCP_C2H_DATA] = { .hlen = NVME_TCP_DATA_HLEN,
					.digests = true, .data = true,
					.needs_data = true },
		[NVME_TCP_R2T] = { .hlen = NVME_TCP_DATA_HLEN, .digests = true },
	};

	if (type >= sizeof(k) / sizeof(k[0]) || !k[type].hlen)
		return NULL;
	return &k[type];
}

static int bad(uint32_t *fei, uint32_t at, int fes)
{
	*fei = at;
	return fes;
}

uint32_t nvme_tcp_hdr_total(const struct nvme_tcp_ch *ch)
{
	const struct kind *k = kind_of(ch->type);
	bool hd = k && k->digests && (ch->flags & NVME_TCP_F_HDGST);

	return ch->hlen + (hd ? NVME_TCP_DIGEST_LEN : 0);
}

uint32_t nvme_tcp_data_len(const struct nvme_tcp_ch *ch)
{
	const struct kind *k = kind_of(ch->type);
	uint32_t dd = (ch->flags & NVME_TCP_F_DDGST) ? NVME_TCP_DIGEST_LEN : 0;

	if (!k)
		return 0;
	if (k->term)
		return ch->plen - ch->hlen;
	if (!k->data || !ch->pdo)
		return 0;
	return ch->plen - ch->pdo - dd;
}

int nvme_tcp_ch_check(const struct nvme_tcp_ch *ch,
		      const struct nvme_tcp_rx_rules *r, uint32_t *fei)
{
	const struct kind *k = kind_of(ch->type);
	uint32_t total, dd;

	if (!k || k->by_host != r->from_host)
		return bad(fei, CH_TYPE, NVME_TCP_FES_INVALID_HDR);
	if (k->ic == r->connected && !k->term)
		return bad(fei, CH_TYPE, NVME_TCP_FES_SEQUENCE);
	if (ch->hlen != k->hlen)
		return bad(fei, CH_HLEN, NVME_TCP_FES_INVALID_HDR);
	if (!k->digests) {
		/* IC and termination PDUs are never digested */
		if (ch->flags & (NVME_TCP_F_HDGST | NVME_TCP_F_DDGST) ||
		    ch->pdo)
			return bad(fei, ch->pdo ? CH_PDO : CH_FLAGS,
				   NVME_TCP_FES_INVALID_HDR);
		if (k->ic ? ch->plen != k->hlen
			  : ch->plen < k->hlen ||
				    ch->plen > NVME_TCP_TERM_MAX_PLEN)
			return bad(fei, CH_PLEN, NVME_TCP_FES_INVALID_HDR);
		return 0;
	}
	if (!!(ch->flags & NVME_TCP_F_HDGST) != r->hdgst)
		return bad(fei, CH_FLAGS, NVME_TCP_FES_INVALID_HDR);
	if ((ch->flags & NVME_TCP_F_DATA_SUCCESS) &&
	    ch->type != NVME_TCP_C2H_DATA)
		return bad(fei, CH_FLAGS, NVME_TCP_FES_INVALID_HDR);
	total = nvme_tcp_hdr_total(ch);
	if (!ch->pdo) {
		/* no data: nothing may follow the header */
		if (k->needs_data || (ch->flags & NVME_TCP_F_DDGST))
			return bad(fei, k->needs_data ? CH_PDO : CH_FLAGS,
				   NVME_TCP_FES_INVALID_HDR);
		if (ch->plen != total)
			return bad(fei, CH_PLEN, NVME_TCP_FES_INVALID_HDR);
		return 0;
	}
	if (!k->data || ch->pdo < total ||
	    (r->data_align && ch->pdo % r->data_align))
		return bad(fei, CH_PDO, NVME_TCP_FES_INVALID_HDR);
	if (!!(ch->flags & NVME_TCP_F_DDGST) != r->ddgst)
		return bad(fei, CH_FLAGS, NVME_TCP_FES_INVALID_HDR);
	dd = r->ddgst ? NVME_TCP_DIGEST_LEN : 0;
	if (ch->plen <= (uint32_t)ch->pdo + dd)
		return bad(fei, CH_PLEN, NVME_TCP_FES_INVALID_HDR);
	if (ch->plen > r->max_plen)
		return bad(fei, CH_PLEN, NVME_TCP_FES_DATA_LIMIT);
	return 0;
}

void nvme_tcp_ic_encode(uint8_t *p, uint8_t type, const struct nvme_tcp_ic *ic)
{
	struct nvme_tcp_ch ch = { .type = type, .hlen = NVME_TCP_IC_HLEN,
				  .plen = NVME_TCP_IC_HLEN };

	memset(p, 0, NVME_TCP_IC_HLEN);
	nvme_tcp_ch_encode(p, &ch);
	nx_put_le16(p + 8, ic->pfv);
	p[10] = ic->pda;
	p[11] = ic->dgst;
	nx_put_le32(p + 12, ic->maxr2t_or_h2c);
}

void nvme_tcp_ic_decode(const uint8_t *p, struct nvme_tcp_ic *ic)
{
	ic->pfv = nx_get_le16(p + 8);
	ic->pda = p[10];
	ic->dgst = p[11];
	ic->maxr2t_or_h2c = nx_get_le32(p + 12);
}

void nvme_tcp_data_encode(uint8_t *p, const struct nvme_tcp_ch *ch,
			  const struct nvme_tcp_data *d)
{
	memset(p, 0, NVME_TCP_DATA_HLEN);
	nvme_tcp_ch_encode(p, ch);
	nx_put_le16(p + 8, d->cccid);
	nx_put_le16(p + 10, d->ttag);
	nx_put_le32(p + 12, d->offset);
	nx_put_le32(p + 16, d->length);
}

void nvme_tcp_data_decode(const uint8_t *p, struct nvme_tcp_data *d)
{
	d->cccid = nx_get_le16(p + 8);
	d->ttag = nx_get_le16(p + 10);
	d->offset = nx_get_le32(p + 12);
	d->length = nx_get_le32(p + 16);
}

size_t nvme_tcp_term_encode(uint8_t *p, uint8_t type, uint16_t fes,
			    uint32_t fei, const uint8_t *hdr, size_t hdr_len)
{
	size_t keep = hdr_len < NVME_TCP_TERM_MAX_PLEN - NVME_TCP_TERM_HLEN
			      ? hdr_len
			      : NVME_TCP_TERM_MAX_PLEN - NVME_TCP_TERM_HLEN;
	struct nvme_tcp_ch ch = { .type = type, .hlen = NVME_TCP_TERM_HLEN,
				  .plen = (uint32_t)(NVME_TCP_TERM_HLEN + keep) };

	memset(p, 0, NVME_TCP_TERM_HLEN);
	nvme_tcp_ch_encode(p, &ch);
	nx_put_le16(p + 8, fes);
	nx_put_le32(p + 10, fei);
	if (keep)
		memcpy(p + NVME_TCP_TERM_HLEN, hdr, keep);
	return NVME_TCP_TERM_HLEN + keep;
}

uint32_t nvme_tcp_hdgst(const uint8_t *p, size_t hlen)
{
	return nx_crc32c_digest(p, hlen);
}

bool nvme_tcp_hdgst_ok(const uint8_t *p, size_t hlen)
{
	return nx_get_le32(p + hlen) == nvme_tcp_hdgst(p, hlen);
}
