/* SPDX-License-Identifier: MIT */
/* The NVMe/TCP PDU codec (lib/proto/nvme-tcp.c) and CRC32C: known digest
 * vectors, the accelerated CRC against the portable one, round trips of
 * every encoder, and the common-header checks a receiver makes, each
 * with the fatal error status and the field offset the specification's
 * termination request carries. */
#include "unit.h"

#include <nexus/nexus_driver.h>

#include "proto/crc32c.h"
#include "proto/nvme-tcp.h"

static void test_crc_vectors(void)
{
	uint8_t z[32], ff[32], inc[32];

	memset(z, 0, sizeof(z));
	memset(ff, 0xff, sizeof(ff));
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	/* the check value, and the vectors of RFC 3720 appendix B.4 */
	CU_ASSERT_EQUAL(nx_crc32c_digest("123456789", 9), 0xE3069283u);
	CU_ASSERT_EQUAL(nx_crc32c_digest(z, 32), 0x8A9136AAu);
	CU_ASSERT_EQUAL(nx_crc32c_digest(ff, 32), 0x62A8AB43u);
	CU_ASSERT_EQUAL(nx_crc32c_digest(inc, 32), 0x46DD794Eu);
	CU_ASSERT_EQUAL(nx_crc32c_digest("", 0), 0u);
	/* the public face (for plugins), and chaining */
	CU_ASSERT_EQUAL(nexus_crc32c(0, "123456789", 9), 0xE3069283u);
	CU_ASSERT_EQUAL(nexus_crc32c(nexus_crc32c(0, "1234", 4), "56789", 5),
			0xE3069283u);
	CU_ASSERT_EQUAL(nexus_crc32c(0, NULL, 0), 0u);
}

/* The accelerated path (if any) equals the table at every length and
 * alignment, and chaining equals one pass. */
static void test_crc_paths(void)
{
	static uint8_t buf[4096 + 16];
	uint32_t seed = 12345;

	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n < 300; n++)
			CU_ASSERT_EQUAL(nx_crc32c(NX_CRC32C_INIT, buf + off, n),
					nx_crc32c_sw(NX_CRC32C_INIT, buf + off,
						     n));
	CU_ASSERT_EQUAL(nx_crc32c(nx_crc32c(NX_CRC32C_INIT, buf, 1000),
				  buf + 1000, 3096),
			nx_crc32c(NX_CRC32C_INIT, buf, 4096));
}

static const struct nvme_tcp_rx_rules target = {
	.from_host = true, .connected = true, .hdgst = true, .ddgst = false,
	.max_plen = 1 << 20, .data_align = 0,
};

/* check() of a header, expecting @p fes and (when it fails) @p fei. */
static void expect(const struct nvme_tcp_ch *ch,
		   const struct nvme_tcp_rx_rules *r, int fes, uint32_t fei)
{
	uint32_t got = 999;
	int rc = nvme_tcp_ch_check(ch, r, &got);

	CU_ASSERT_EQUAL(rc, fes);
	if (rc != fes || (fes && got != fei))
		printf("\n  type %u flags %#x hlen %u pdo %u plen %u: fes %d "
		       "fei %u (want %d, %u)", ch->type, ch->flags, ch->hlen,
		       ch->pdo, ch->plen, rc, got, fes, fei);
	if (fes)
		CU_ASSERT_EQUAL(got, fei);
}

static void test_check(void)
{
	struct nvme_tcp_rx_rules pre = target;
	struct nvme_tcp_ch cmd = { NVME_TCP_CMD, NVME_TCP_F_HDGST,
				   NVME_TCP_CMD_HLEN, 0, 76 };
	struct nvme_tcp_ch c;

	pre.connected = false;
	/* a command without in-capsule data, header digest on */
	expect(&cmd, &target, 0, 0);
	CU_ASSERT_EQUAL(nvme_tcp_hdr_total(&cmd), 76);
	CU_ASSERT_EQUAL(nvme_tcp_data_len(&cmd), 0);
	/* with 4 KiB of in-capsule data */
	c = cmd;
	c.pdo = 76;
	c.plen = 76 + 4096;
	expect(&c, &target, 0, 0);
	CU_ASSERT_EQUAL(nvme_tcp_data_len(&c), 4096);
	/* bad fields, each with its offset */
	c = cmd;
	c.type = 0x08;
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 0); /* unknown type */
	c.type = NVME_TCP_RSP;
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 0); /* wrong direction */
	c = cmd;
	c.hlen = 64;
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 2);
	c = cmd;
	c.flags = 0; /* digest negotiated but missing */
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 1);
	c = cmd;
	c.plen = 75;
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 4);
	c = cmd;
	c.pdo = 40; /* data inside the header */
	c.plen = 200;
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 3);
	c = cmd;
	c.pdo = 76;
	c.plen = 76; /* data offset but no data */
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 4);
	c.plen = (1 << 20) + 1;
	expect(&c, &target, NVME_TCP_FES_DATA_LIMIT, 4);
	c = cmd;
	c.flags |= NVME_TCP_F_DDGST; /* a data digest on no data */
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 1);
	c.flags |= NVME_TCP_F_DATA_SUCCESS;
	/* sequence: a command before the connection, an ICReq after */
	expect(&cmd, &pre, NVME_TCP_FES_SEQUENCE, 0);
	c = (struct nvme_tcp_ch){ NVME_TCP_ICREQ, 0, 128, 0, 128 };
	expect(&c, &pre, 0, 0);
	expect(&c, &target, NVME_TCP_FES_SEQUENCE, 0);
	c.plen = 129;
	expect(&c, &pre, NVME_TCP_FES_INVALID_HDR, 4);
	c.plen = 128;
	c.flags = NVME_TCP_F_HDGST; /* IC PDUs are never digested */
	expect(&c, &pre, NVME_TCP_FES_INVALID_HDR, 1);
	/* H2CData must carry data, aligned as asked */
	c = (struct nvme_tcp_ch){ NVME_TCP_H2C_DATA,
				  NVME_TCP_F_HDGST | NVME_TCP_F_DATA_LAST,
				  NVME_TCP_DATA_HLEN, 0, 28 };
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 3);
	c.pdo = 28;
	c.plen = 28 + 512;
	expect(&c, &target, 0, 0);
	{
		struct nvme_tcp_rx_rules al = target;

		al.data_align = 32;
		expect(&c, &al, NVME_TCP_FES_INVALID_HDR, 3);
		c.pdo = 32;
		c.plen = 32 + 512;
		expect(&c, &al, 0, 0);
	}
	/* a termination request carries the offending header, bounded */
	c = (struct nvme_tcp_ch){ NVME_TCP_H2C_TERM, 0, 24, 0, 24 + 72 };
	expect(&c, &target, 0, 0);
	expect(&c, &pre, 0, 0);
	CU_ASSERT_EQUAL(nvme_tcp_data_len(&c), 72);
	c.plen = 153;
	expect(&c, &target, NVME_TCP_FES_INVALID_HDR, 4);
}

static void test_round_trips(void)
{
	uint8_t p[NVME_TCP_TERM_MAX_PLEN + 8], hdr[200];
	struct nvme_tcp_ic ic = { 0, 3, NVME_TCP_DGST_HDR, 131072 }, ic2;
	struct nvme_tcp_data d = { 0x1234, 0xbeef, 8192, 4096 }, d2;
	struct nvme_tcp_ch ch, ch2 = { NVME_TCP_R2T, 0, 24, 0, 24 };
	size_t n;

	nvme_tcp_ic_encode(p, NVME_TCP_ICRESP, &ic);
	nvme_tcp_ch_decode(p, &ch);
	CU_ASSERT(ch.type == NVME_TCP_ICRESP && ch.hlen == 128 &&
		  ch.plen == 128 && ch.pdo == 0);
	nvme_tcp_ic_decode(p, &ic2);
	CU_ASSERT(!memcmp(&ic, &ic2, sizeof(ic)));
	CU_ASSERT(p[14] == 0x02 && p[15] == 0x00); /* 131072, little-endian */

	nvme_tcp_data_encode(p, &ch2, &d);
	nvme_tcp_data_decode(p, &d2);
	CU_ASSERT(!memcmp(&d, &d2, sizeof(d)));
	CU_ASSERT(p[8] == 0x34 && p[9] == 0x12);

	memset(hdr, 0xab, sizeof(hdr));
	n = nvme_tcp_term_encode(p, NVME_TCP_C2H_TERM,
				 NVME_TCP_FES_HDGST, 72, hdr, sizeof(hdr));
	CU_ASSERT_EQUAL(n, NVME_TCP_TERM_MAX_PLEN);
	nvme_tcp_ch_decode(p, &ch);
	CU_ASSERT(ch.type == NVME_TCP_C2H_TERM && ch.plen == n);
	CU_ASSERT(p[8] == NVME_TCP_FES_HDGST && p[10] == 72);
	CU_ASSERT(p[NVME_TCP_TERM_HLEN] == 0xab && p[n - 1] == 0xab);

	/* header digest: right, then one bit off */
	nvme_tcp_data_encode(p, &ch2, &d);
	{
		uint32_t g = nvme_tcp_hdgst(p, 24);

		p[24] = (uint8_t)g;
		p[25] = (uint8_t)(g >> 8);
		p[26] = (uint8_t)(g >> 16);
		p[27] = (uint8_t)(g >> 24);
	}
	CU_ASSERT(nvme_tcp_hdgst_ok(p, 24));
	p[12] ^= 1;
	CU_ASSERT(!nvme_tcp_hdgst_ok(p, 24));
}

static const struct unit_test tests[] = {
	{ "CRC32C known vectors", test_crc_vectors },
	{ "CRC32C accelerated == portable", test_crc_paths },
	{ "common header checks (FES, FEI)", test_check },
	{ "encoders and decoders round trip", test_round_trips },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main("nvme-tcp", tests);
}
