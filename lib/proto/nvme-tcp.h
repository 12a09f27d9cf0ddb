/* SPDX-License-Identifier: MIT */
/* NVMe/TCP transport PDUs (NVMe over Fabrics, TCP transport binding),
 * defined once for the target and the host.  Integers on the wire are
 * little-endian.  This header gives the PDU types, flags and lengths, a
 * decoded form of each PDU-specific header, encoders and decoders
 * working on byte buffers (never past the lengths given), and the
 * checks a receiver makes on a common header before it trusts its
 * lengths.  NVMe structures themselves (SQE, CQE, Identify, Connect
 * data) come from libnvme's <nvme/types.h>.  Not part of the ABI. */
#ifndef NEXUS_PROTO_NVME_TCP_H
#define NEXUS_PROTO_NVME_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NVME_TCP_PROTO_HIDDEN __attribute__((visibility("hidden")))

/* PDU types */
enum nvme_tcp_pdu_type {
	NVME_TCP_ICREQ = 0x00,
	NVME_TCP_ICRESP = 0x01,
	NVME_TCP_H2C_TERM = 0x02,
	NVME_TCP_C2H_TERM = 0x03,
	NVME_TCP_CMD = 0x04,	  /* CapsuleCmd */
	NVME_TCP_RSP = 0x05,	  /* CapsuleResp */
	NVME_TCP_H2C_DATA = 0x06,
	NVME_TCP_C2H_DATA = 0x07,
	NVME_TCP_R2T = 0x09,
};

/* common header flags */
#define NVME_TCP_F_HDGST 0x01	     /* a header digest follows the header */
#define NVME_TCP_F_DDGST 0x02	     /* a data digest follows the data */
#define NVME_TCP_F_DATA_LAST 0x04    /* H2CData/C2HData: last of the command */
#define NVME_TCP_F_DATA_SUCCESS 0x08 /* C2HData: no CapsuleResp follows */

/* ICReq/ICResp digest bits */
#define NVME_TCP_DGST_HDR 0x01
#define NVME_TCP_DGST_DATA 0x02

/* Fatal error status of a termination request */
enum nvme_tcp_fes {
	NVME_TCP_FES_INVALID_HDR = 0x01,   /* invalid PDU header field */
	NVME_TCP_FES_SEQUENCE = 0x02,	   /* PDU sequence error */
	NVME_TCP_FES_HDGST = 0x03,	   /* header digest error */
	NVME_TCP_FES_DATA_RANGE = 0x04,	   /* data transfer out of range */
	NVME_TCP_FES_DATA_LIMIT = 0x05,	   /* R2T / data transfer limit */
	NVME_TCP_FES_UNSUPPORTED = 0x06,   /* unsupported parameter */
};

/* Lengths, bytes */
#define NVME_TCP_CH_LEN 8	/* common header */
#define NVME_TCP_IC_HLEN 128	/* ICReq, ICResp */
#define NVME_TCP_TERM_HLEN 24	/* H2CTermReq, C2HTermReq */
#define NVME_TCP_CMD_HLEN 72	/* CapsuleCmd: common header + 64-byte SQE */
#define NVME_TCP_RSP_HLEN 24	/* CapsuleResp: common header + 16-byte CQE */
#define NVME_TCP_DATA_HLEN 24	/* H2CData, C2HData, R2T */
#define NVME_TCP_DIGEST_LEN 4
#define NVME_TCP_TERM_MAX_PLEN 152 /* a termination request with the
				     * offending header (at most 128 bytes) */
#define NVME_TCP_MIN_MAXH2CDATA 4096

/* The common header, decoded. */
struct nvme_tcp_ch {
	uint8_t type;
	uint8_t flags;
	uint8_t hlen; /* header length, digest excluded */
	uint8_t pdo;  /* offset of the data in the PDU (0: no data) */
	uint32_t plen; /* whole PDU: header, digests, padding, data */
};

/* ICReq (from the host) and ICResp (from the controller). */
struct nvme_tcp_ic {
	uint16_t pfv;	     /* PDU format version: 0 */
	uint8_t pda;	     /* ICReq: HPDA; ICResp: CPDA (alignment / 4 - 1) */
	uint8_t dgst;	     /* NVME_TCP_DGST_* */
	uint32_t maxr2t_or_h2c; /* ICReq: MAXR2T (0's based); ICResp:
				 * MAXH2CDATA (bytes, at least 4096) */
};

/* H2CData, C2HData and R2T: the transfer of one command's data. */
struct nvme_tcp_data {
	uint16_t cccid; /* the command's identifier */
	uint16_t ttag;	/* H2CData, R2T: the transfer tag (C2HData: 0) */
	uint32_t offset; /* of the data within the command's buffer */
	uint32_t length; /* of the data in this PDU (R2T: requested) */
};

/* The receiver's state that a common header is checked against. */
struct nvme_tcp_rx_rules {
	bool from_host;	 /* the peer is a host (we are the controller) */
	bool connected;	 /* ICReq/ICResp exchanged */
	bool hdgst;	 /* header digests negotiated */
	bool ddgst;	 /* data digests negotiated */
	uint32_t max_plen; /* largest PDU accepted */
	uint8_t data_align; /* the data alignment we asked for (pda+1)*4; 0:
			     * none */
};

/* Decode the common header at @p p (NVME_TCP_CH_LEN bytes). */
NVME_TCP_PROTO_HIDDEN void nvme_tcp_ch_decode(const uint8_t *p,
					      struct nvme_tcp_ch *ch);
/* Encode a common header at @p p (NVME_TCP_CH_LEN bytes). */
NVME_TCP_PROTO_HIDDEN void nvme_tcp_ch_encode(uint8_t *p,
					      const struct nvme_tcp_ch *ch);

/* Check a received common header before anything else of the PDU is
 * read: a type the peer may send in this state, the header length of
 * that type, digest flags that match what was negotiated, a data
 * offset and a PDU length consistent with the header, the digests and
 * @p r->max_plen.  Returns 0, or the fatal error status to terminate the
 * connection with (enum nvme_tcp_fes), with @p fei set to the byte
 * offset of the offending field in the header (the FEI of the
 * termination request). */
NVME_TCP_PROTO_HIDDEN int nvme_tcp_ch_check(const struct nvme_tcp_ch *ch,
					    const struct nvme_tcp_rx_rules *r,
					    uint32_t *fei);

/* Bytes of header with its digest, and of data with its digest, of a
 * checked header (nvme_tcp_ch_check returned 0). */
NVME_TCP_PROTO_HIDDEN uint32_t nvme_tcp_hdr_total(const struct nvme_tcp_ch *ch);
NVME_TCP_PROTO_HIDDEN uint32_t nvme_tcp_data_len(const struct nvme_tcp_ch *ch);

/* ICReq / ICResp: a whole PDU of NVME_TCP_IC_HLEN bytes at @p p. */
NVME_TCP_PROTO_HIDDEN void nvme_tcp_ic_encode(uint8_t *p, uint8_t type,
					      const struct nvme_tcp_ic *ic);
NVME_TCP_PROTO_HIDDEN void nvme_tcp_ic_decode(const uint8_t *p,
					      struct nvme_tcp_ic *ic);

/* H2CData / C2HData / R2T header (NVME_TCP_DATA_HLEN bytes) at @p p,
 * the common header included. */
NVME_TCP_PROTO_HIDDEN void nvme_tcp_data_encode(uint8_t *p,
						const struct nvme_tcp_ch *ch,
						const struct nvme_tcp_data *d);
NVME_TCP_PROTO_HIDDEN void nvme_tcp_data_decode(const uint8_t *p,
						struct nvme_tcp_data *d);

/* A termination request (@p type: H2C_TERM or C2H_TERM) into @p p
 * (room for NVME_TCP_TERM_MAX_PLEN bytes), carrying the first bytes of
 * the offending header @p hdr (@p hdr_len, at most 128 are kept).
 * Returns the PDU's length. */
NVME_TCP_PROTO_HIDDEN size_t nvme_tcp_term_encode(uint8_t *p, uint8_t type,
						  uint16_t fes, uint32_t fei,
						  const uint8_t *hdr,
						  size_t hdr_len);

/* The header digest of a header of @p hlen bytes at @p p: the CRC32C
 * stored (little-endian) in the 4 bytes after the header. */
NVME_TCP_PROTO_HIDDEN uint32_t nvme_tcp_hdgst(const uint8_t *p, size_t hlen);
/* Whether the header digest after a header of @p hlen bytes at @p p is
 * right. */
NVME_TCP_PROTO_HIDDEN bool nvme_tcp_hdgst_ok(const uint8_t *p, size_t hlen);

#endif
