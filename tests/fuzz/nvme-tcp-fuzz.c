/* SPDX-License-Identifier: MIT */
/* libFuzzer harness of the NVMe/TCP PDU codec: the input is a receiver's
 * state (first byte) and a stream of PDUs.  Each common header goes
 * through nvme_tcp_ch_check() as a receiver would; an accepted one must
 * keep the invariants the receiver then relies on (its header, digests
 * and data add up to plen exactly, within the limit), and its
 * type-specific header, digest and data are read only within the
 * bytes the input holds.  Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/crc32c.h"
#include "proto/nvme-tcp.h"

#define REQUIRE(c)                                                         \
	do {                                                               \
		if (!(c))                                                  \
			abort();                                           \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nvme_tcp_rx_rules r;
	size_t off = 1;

	if (!size)
		return 0;
	r.from_host = data[0] & 1;
	r.connected = data[0] & 2;
	r.hdgst = data[0] & 4;
	r.ddgst = data[0] & 8;
	r.data_align = (data[0] & 16) ? 32 : 0;
	r.max_plen = (data[0] & 32) ? 8192 : 1 << 20;
	while (size - off >= NVME_TCP_CH_LEN) {
		struct nvme_tcp_ch ch;
		uint32_t fei = 0, total, dlen, dd;
		int fes;

		nvme_tcp_ch_decode(data + off, &ch);
		fes = nvme_tcp_ch_check(&ch, &r, &fei);
		if (fes) {
			uint8_t term[NVME_TCP_TERM_MAX_PLEN];
			size_t n;

			REQUIRE(fei < ch.hlen || fei < NVME_TCP_CH_LEN);
			n = nvme_tcp_term_encode(term, NVME_TCP_C2H_TERM,
						 (uint16_t)fes, fei, data + off,
						 size - off);
			REQUIRE(n <= sizeof(term));
			return 0; /* the connection ends */
		}
		total = nvme_tcp_hdr_total(&ch);
		dlen = nvme_tcp_data_len(&ch);
		dd = (ch.flags & NVME_TCP_F_DDGST) && ch.pdo ? 4 : 0;
		REQUIRE(total >= ch.hlen && total <= ch.plen);
		if (ch.pdo)
			REQUIRE((uint64_t)ch.pdo + dlen + dd == ch.plen &&
				dlen > 0 && ch.plen <= r.max_plen);
		else if (ch.type == NVME_TCP_H2C_TERM ||
			 ch.type == NVME_TCP_C2H_TERM)
			REQUIRE(ch.hlen + dlen == ch.plen &&
				ch.plen <= NVME_TCP_TERM_MAX_PLEN);
		else
			REQUIRE(dlen == 0 && total == ch.plen);
		if (size - off < ch.plen)
			return 0; /* a receiver waits for the rest */
		if (total > ch.hlen)
			(void)nvme_tcp_hdgst_ok(data + off, ch.hlen);
		if (ch.type == NVME_TCP_ICREQ || ch.type == NVME_TCP_ICRESP) {
			struct nvme_tcp_ic ic;

			nvme_tcp_ic_decode(data + off, &ic);
			r.connected = true;
		} else if (ch.hlen == NVME_TCP_DATA_HLEN &&
			   ch.type != NVME_TCP_RSP && ch.type != NVME_TCP_H2C_TERM &&
			   ch.type != NVME_TCP_C2H_TERM) {
			struct nvme_tcp_data d;

			nvme_tcp_data_decode(data + off, &d);
		}
		if (dlen)
			(void)nx_crc32c_digest(data + off + (ch.pdo ? ch.pdo
								   : ch.hlen),
					       dlen);
		off += ch.plen;
	}
	return 0;
}
