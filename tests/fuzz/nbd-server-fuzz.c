/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the NBD server's protocol logic
 * (lib/exports/nbd-proto.c): the handshake state machine and the
 * transmission request checks, driven as the connection code drives
 * them — bytes arrive in arbitrary pieces into a bounded receive
 * buffer; write payloads are skipped as the verdict says.  Every reply
 * the server would send is parsed back and checked for well-formedness.
 *
 * Input: byte 0 picks the mode and the chunking, the rest is what the
 * client sends.  Mode bit 0 set: skip the handshake, the next 3 bytes
 * pick the negotiated state, then requests.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address -I include -I lib \
 *       tests/fuzz/nbd-server-fuzz.c lib/exports/nbd-proto.c */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exports/nbd-proto.h"

#define RBUF (NBDS_MAX_OPTION + 16 + 4096)

static const char *const names[] = { "", "vol", "a-much-longer-export-name" };

static struct nbds_export ex[3];

static void setup(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	for (int i = 0; i < 3; i++) {
		ex[i].name = names[i];
		ex[i].description = i == 1 ? "described" : NULL;
		ex[i].size = (uint64_t)(i + 1) << 20;
		ex[i].tflags = NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
			       NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
			       NBD_FLAG_SEND_FAST_ZERO;
		if (i == 2)
			ex[i].tflags = NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH;
		ex[i].min_block = i == 1 ? 512 : 1;
		ex[i].pref_block = 4096;
		ex[i].max_payload = 1u << 20;
		ex[i].opaque = &ex[i];
	}
}

static bool cat_find(void *ud, const char *name, size_t len,
		     struct nbds_export *out)
{
	(void)ud;
	for (int i = 0; i < 3; i++) {
		if (strlen(names[i]) == len && !memcmp(names[i], name, len)) {
			*out = ex[i];
			return true;
		}
	}
	return false;
}

static bool cat_get(void *ud, unsigned i, struct nbds_export *out)
{
	(void)ud;
	if (i >= 3)
		return false;
	*out = ex[i];
	return true;
}

/* The option replies the server produced must be well-formed. */
static void check_option_replies(const struct nx_out *o, size_t from,
				 bool go_tail)
{
	size_t p = from;

	while (p < o->len) {
		uint32_t len;

		if (go_tail && o->len - p == 10)
			return; /* NBD_OPT_EXPORT_NAME: size + flags */
		if (go_tail && o->len - p == 134)
			return; /* ... with the 124 zeroes */
		assert(o->len - p >= 20);
		assert(nx_get64(o->data + p) == NBD_REP_MAGIC);
		len = nx_get32(o->data + p + 16);
		assert(o->len - p - 20 >= len);
		if (nx_get32(o->data + p + 12) == NBD_REP_INFO) {
			uint16_t t = nx_get16(o->data + p + 20);

			assert(len >= 2);
			if (t == NBD_INFO_EXPORT)
				assert(len == 12);
			if (t == NBD_INFO_BLOCK_SIZE)
				assert(len == 14);
		}
		p += 20 + len;
	}
}

static void transmission(const struct nbds_tx *tx, const uint8_t *d,
			 size_t n)
{
	uint8_t hdr[NBDS_REPLY_HDR_MAX];
	size_t pos = 0;

	while (n - pos >= NBD_REQ_LEN) {
		struct nbd_req_hdr r;
		uint32_t err, payload;
		const char *why;
		int v;

		if (!nbd_req_decode(d + pos, &r))
			return; /* the connection is dropped */
		pos += NBD_REQ_LEN;
		v = nbds_req_check(tx, &r, &err, &payload, &why);
		switch (v) {
		case NBDS_REQ_FATAL:
			assert(why);
			return;
		case NBDS_REQ_DISC:
			return;
		case NBDS_REQ_ERROR:
			assert(err && why);
			if (tx->structured) {
				size_t l = nbd_error_chunk_encode(hdr, sizeof(hdr),
							    r.cookie, err, why);

				assert(l <= sizeof(hdr));
				assert(nx_get32(hdr + 16) == l - 20);
			} else {
				nbd_simple_reply_encode(hdr, r.cookie, err);
			}
			break;
		case NBDS_REQ_OK:
			/* what the server may now rely on */
			assert(r.type != NBD_CMD_WRITE || payload == r.length);
			if (r.type != NBD_CMD_FLUSH) {
				assert(r.length && r.offset <= tx->size &&
				       r.length <= tx->size - r.offset);
				assert(!((r.offset | r.length) &
					 (tx->min_block - 1)));
			}
			if (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE)
				assert(r.length <= tx->max_payload);
			if (r.type != NBD_CMD_READ &&
			    r.type != NBD_CMD_FLUSH &&
			    r.type != NBD_CMD_BLOCK_STATUS)
				assert(!(tx->tflags & NBD_FLAG_READ_ONLY));
			if (r.type == NBD_CMD_BLOCK_STATUS)
				assert(tx->block_status && tx->structured);
			if (r.type == NBD_CMD_READ && tx->structured)
				nbd_data_chunk_encode(hdr, r.cookie, r.offset,
						r.length);
			else if (r.type == NBD_CMD_BLOCK_STATUS)
				nbd_bs_chunk_encode(hdr, r.cookie, 1, 1);
			else
				nbd_simple_reply_encode(hdr, r.cookie, 0);
			break;
		default:
			abort();
		}
		/* the payload follows the header; skip what is there */
		if (payload > n - pos)
			return;
		pos += payload;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t rbuf[RBUF];
	struct nbds_catalog cat = { cat_find, cat_get, NULL };
	struct nx_out out = { 0 };
	struct nbds_hs *hs;
	size_t rlen = 0, rstart = 0, pos = 1, chunk;
	uint8_t mode;
	int rc = NBDS_HS_MORE;

	setup();
	if (size < 1)
		return 0;
	mode = data[0];
	if (mode & 1) {
		struct nbds_tx tx;
		const struct nbds_export *e;

		if (size < 4)
			return 0;
		e = &ex[data[1] % 3];
		tx.size = e->size;
		tx.tflags = e->tflags | NBD_FLAG_HAS_FLAGS;
		tx.min_block = e->min_block;
		tx.max_payload = e->max_payload;
		tx.structured = data[2] & 1;
		tx.block_status = tx.structured && (data[2] & 2);
		(void)data[3];
		transmission(&tx, data + 4, size - 4);
		return 0;
	}
	hs = malloc(sizeof(*hs));
	if (!hs)
		return 0;
	nbds_hs_init(hs);
	/* pieces of 1..7 bytes, of a power of two up to 64K, or whatever
	 * fits */
	chunk = (mode >> 1) & 7;
	if (!chunk)
		chunk = (mode >> 4) ? (size_t)1 << (mode >> 4) : RBUF;
	/* rbuf[rstart..rlen) holds unprocessed input, compacted only when
	 * the next piece would not fit (as the connection code does) */
	while (rc == NBDS_HS_MORE) {
		size_t n = size - pos, used = 0, before = out.len;

		if (n > chunk)
			n = chunk;
		if (n > RBUF - rlen && rstart) {
			memmove(rbuf, rbuf + rstart, rlen - rstart);
			rlen -= rstart;
			rstart = 0;
		}
		if (n > RBUF - rlen)
			n = RBUF - rlen;
		memcpy(rbuf + rlen, data + pos, n);
		rlen += n;
		pos += n;
		rc = nbds_hs_feed(hs, &cat, rbuf + rstart, rlen - rstart, &used,
				  &out);
		assert(used <= rlen - rstart);
		check_option_replies(&out, before, rc == NBDS_HS_GO);
		rstart += used;
		if (rc == NBDS_HS_MORE && !n && !used)
			break; /* input exhausted */
		/* the buffer never fills with an unprocessable option */
		assert(rlen - rstart < RBUF);
		nx_out_reset(&out);
	}
	if (rc == NBDS_HS_CLOSE)
		assert(hs->why);
	if (rc == NBDS_HS_GO) {
		struct nbds_tx tx = {
			.size = hs->chosen.size,
			.tflags = hs->tflags,
			.min_block = hs->chosen.min_block,
			.max_payload = hs->chosen.max_payload,
			.structured = hs->structured,
			.block_status = hs->block_status,
		};
		uint8_t *rest;
		size_t n = rlen - rstart + (size - pos);

		assert(hs->chosen.opaque >= (void *)&ex[0] &&
		       hs->chosen.opaque <= (void *)&ex[2]);
		assert(!hs->block_status || hs->structured);
		rest = malloc(n ? n : 1);
		if (rest) {
			memcpy(rest, rbuf + rstart, rlen - rstart);
			memcpy(rest + rlen - rstart, data + pos, size - pos);
			transmission(&tx, rest, n);
			free(rest);
		}
	}
	nx_out_free(&out);
	free(hs);
	return 0;
}
