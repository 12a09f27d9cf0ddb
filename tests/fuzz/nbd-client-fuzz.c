/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the NBD source (client) as a malicious server
 * sees it: the reply path (lib/sources/nbd-conn.c + nbd-reply.c) and
 * the handshake (nbd-handshake.c).
 *
 * Replies: a connection object is driven without io_uring.  The harness
 * plays the reactor: it keeps the SQEs the connection prepares, completes
 * sends (sometimes short), and completes receives with the next piece of
 * the fuzz input copied into the buffer the SQE names (the receive buffer
 * or, for large reads, the caller's iovec).  A few requests are in flight
 * (reads into buffers with guard bytes on both sides, writes, flushes,
 * trims, block status).  Checked: guards intact (and ASan), every request
 * completed exactly once, reads that succeed were fully covered, block
 * status extents only for a block status request, nothing left in
 * flight at the end.
 *
 * Input byte 0: bit 0 structured replies, bit 1 base:allocation, bits
 * 2-4 number of requests - 1, bits 5-7 how the stream is cut.  Then 4
 * bytes per request (type, length, iovec count), then the server's
 * bytes.  Byte 0 == 0xff: the rest is a handshake from the server.
 * Built with NBDC_SMALL_BUFFERS: a 16 KiB receive buffer and small
 * thresholds, so that compaction, in-place receives and the large-read
 * mode are reached with small inputs.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address -DNBDC_SMALL_BUFFERS \
 *       -I include -I lib -I lib/sources \
 *       tests/fuzz/nbd-client-fuzz.c lib/sources/nbd-conn.c \
 *       lib/sources/nbd-reply.c lib/sources/nbd-handshake.c lib/proto/nbd.c */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-conn.h"

#define MAXREQ 8
#define GUARD 32
#define MAXLEN 20000

/* ---- what the rest of libnexus would provide ---- */

struct pend {
	struct nexus_cqe_handler *ev;
	struct io_uring_sqe sqe;
	bool used;
};

static struct pend pend[16];

struct io_uring_sqe *nexus_reactor_sqe(struct nexus_reactor *r,
				       struct nexus_cqe_handler *ev)
{
	(void)r;
	for (int i = 0; i < 16; i++) {
		if (!pend[i].used) {
			memset(&pend[i].sqe, 0, sizeof(pend[i].sqe));
			pend[i].used = true;
			pend[i].ev = ev;
			return &pend[i].sqe;
		}
	}
	abort(); /* the connection never has that many SQEs */
}

void nexus_log(struct nexus_ctx *ctx, int level, const char *fmt, ...)
{
	(void)ctx;
	(void)level;
	(void)fmt;
}

int nexus_error(int err, const char *fmt, ...)
{
	(void)fmt;
	return err;
}

struct fz_req {
	struct nbdc_req req;
	struct nexus_io io;
	struct nexus_extent ext[4];
	struct iovec iov[3];
	uint8_t *buf; /* GUARD + len + GUARD */
	uint32_t len;
	int completions, result;
};

static struct fz_req reqs[MAXREQ];
static unsigned nreq;

void nx_nbdc_req_complete(struct nbdc_dev *d, struct nbdc_req *req, int res)
{
	(void)d;
	for (unsigned i = 0; i < nreq; i++) {
		if (&reqs[i].req == req) {
			reqs[i].completions++;
			reqs[i].result = res;
			return;
		}
	}
	abort(); /* a request that was never queued */
}

void nx_nbdc_conn_died(struct nbdc_dev *d, unsigned index, int err,
		       const char *why)
{
	(void)d;
	(void)index;
	(void)err;
	(void)why;
}

void nx_nbdc_bs_add(struct nbdc_req *req, uint32_t len, uint32_t flags)
{
	bool ok = false;

	(void)flags;
	assert(len);
	for (unsigned i = 0; i < nreq; i++)
		if (req == &reqs[i].req && req->type == NBD_CMD_BLOCK_STATUS)
			ok = true;
	assert(ok);
	req->bs_n++;
}

/* ---- replies ---- */

static uint32_t rng;

static uint32_t cut(uint32_t max)
{
	rng = rng * 1103515245u + 12345u;
	if (!(rng & 0x30000))
		return max; /* often: everything at once */
	return 1 + (rng >> 8) % (max < 97 ? max : 97);
}

static void check_guards(void)
{
	for (unsigned i = 0; i < nreq; i++) {
		struct fz_req *f = &reqs[i];

		if (!f->buf)
			continue;
		for (int k = 0; k < GUARD; k++) {
			assert(f->buf[k] == 0xa5);
			assert(f->buf[GUARD + f->len + k] == 0xa5);
		}
	}
}

static void setup_req(struct fz_req *f, const uint8_t *p, uint64_t off)
{
	static const uint16_t types[] = { NBD_CMD_READ, NBD_CMD_READ,
					  NBD_CMD_WRITE, NBD_CMD_FLUSH,
					  NBD_CMD_TRIM, NBD_CMD_BLOCK_STATUS };
	uint32_t len = 1 + ((uint32_t)p[1] << 8 | p[2]) % MAXLEN;
	int iovcnt = 1 + p[3] % 3;

	memset(f, 0, sizeof(*f));
	f->req.type = types[p[0] % 6];
	f->req.off = off;
	f->req.fua_flush = p[0] & 0x80;
	if (f->req.type == NBD_CMD_FLUSH) {
		f->req.off = 0;
		len = 0;
	}
	f->req.len = len;
	f->req.end = f->req.off + len;
	f->len = len;
	if (f->req.type == NBD_CMD_READ || f->req.type == NBD_CMD_WRITE) {
		uint32_t a = len / 3, b = len - 2 * (len / 3);

		f->buf = malloc(GUARD + len + GUARD);
		memset(f->buf, 0xa5, GUARD + len + GUARD);
		if (iovcnt == 1) {
			f->iov[0] = (struct iovec){ f->buf + GUARD, len };
		} else {
			/* uneven pieces, one of them possibly empty */
			f->iov[0] = (struct iovec){ f->buf + GUARD, a };
			f->iov[1] = (struct iovec){ f->buf + GUARD + a, b };
			f->iov[2] = (struct iovec){ f->buf + GUARD + a + b,
						    len - a - b };
			iovcnt = 3;
		}
		f->io.iov = f->iov;
		f->io.iovcnt = iovcnt;
		f->io.offset = off;
		f->io.length = len;
		f->io.op = f->req.type == NBD_CMD_READ ? NEXUS_OP_READ
						       : NEXUS_OP_WRITE;
		f->req.io = &f->io;
	} else if (f->req.type == NBD_CMD_BLOCK_STATUS) {
		f->io.op = NEXUS_OP_BLOCK_STATUS;
		f->io.offset = off;
		f->io.length = len;
		f->io.extents = f->ext;
		f->io.max_extents = 4;
		f->req.io = &f->io;
		f->req.bs_lo = f->req.bs_pos = off;
		f->req.bs_hi = off + len;
	} else {
		f->req.io = &f->io;
	}
}

/* Complete one pending SQE as the kernel would.  Returns false when
 * nothing is pending. */
static bool step(struct nbdc_conn *c, const uint8_t **in, size_t *left)
{
	for (int i = 0; i < 16; i++) {
		struct pend *p = &pend[i];
		struct nexus_cqe_handler *ev = p->ev;
		int res = 0;

		if (!p->used)
			continue;
		p->used = false;
		if (ev == &c->send_ev) {
			size_t total = 0;

			for (size_t k = 0; k < c->smsg.msg_iovlen; k++)
				total += c->siov[k].iov_len;
			res = (int)cut((uint32_t)total);
		} else if (ev == &c->recv_ev) {
			uint8_t *dst = (uint8_t *)(uintptr_t)p->sqe.addr;
			size_t room = p->sqe.len, n;

			if (p->sqe.opcode == IORING_OP_RECVMSG) {
				const struct msghdr *m = (void *)(uintptr_t)p->sqe.addr;

				assert(m == &c->rmsg && m->msg_iovlen >= 1);
				dst = m->msg_iov[0].iov_base;
				room = m->msg_iov[0].iov_len;
			}
			n = room < *left ? room : *left;
			if (n)
				n = cut((uint32_t)n);
			memcpy(dst, *in, n);
			*in += n;
			*left -= n;
			res = (int)n; /* 0: end of the stream */
		}
		ev->fn(ev, res, 0);
		check_guards();
		return true;
	}
	return false;
}

static void replies(const uint8_t *d, size_t n)
{
	static struct nbdc_dev dev;
	struct nbdc_conn_opts o = { 0, 0 };
	struct nbdc_conn *c;
	unsigned want;

	if (n < 1)
		return;
	memset(&dev, 0, sizeof(dev));
	snprintf(dev.server, sizeof(dev.server), "fuzz");
	dev.hs.structured = d[0] & 1;
	dev.hs.meta = d[0] & 2;
	dev.hs.meta_id = 1;
	dev.bs_align = 1;
	want = 1 + ((d[0] >> 2) & 7);
	rng = d[0] >> 5;
	d++;
	n--;
	c = nx_nbdc_conn_new(&dev, -1, &o);
	assert(c);
	nx_nbdc_conn_start(c, (struct nexus_reactor *)&dev);
	nreq = 0;
	while (nreq < want && n >= 4) {
		setup_req(&reqs[nreq], d, (uint64_t)nreq * 65536);
		nreq++;
		nx_nbdc_conn_queue(c, &reqs[nreq - 1].req);
		d += 4;
		n -= 4;
	}
	for (int guard = 0; guard < 1000000 && step(c, &d, &n); guard++)
		;
	for (int i = 0; i < 16; i++)
		assert(!pend[i].used);
	/* the stream ended: everything completed exactly once */
	for (unsigned i = 0; i < nreq; i++) {
		struct fz_req *f = &reqs[i];

		assert(f->completions == 1);
		if (f->req.type == NBD_CMD_BLOCK_STATUS && f->result == 0)
			assert(f->req.bs_n > 0);
		free(f->buf);
	}
	nx_nbdc_conn_free(c); /* fd -1: close() fails harmlessly */
}

/* ---- handshake ---- */

static void handshake(const uint8_t *d, size_t n)
{
	struct nbdc_hs hs;
	int sv[2];

	if (n > 100000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv))
		return;
	if (n && write(sv[1], d, n) != (ssize_t)n) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	shutdown(sv[1], SHUT_WR);
	memset(&hs, 0, sizeof(hs));
	hs.export_name = n && (d[0] & 1) ? "disk" : "";
	hs.server = "fuzz";
	hs.want_structured = true;
	hs.want_meta = true;
	if (nx_nbdc_handshake(sv[0], &hs, nx_nbdc_now_ns() + 2000000000ull) == 0) {
		/* what a successful handshake reports is consistent */
		if (hs.have_bs) {
			assert(hs.min_bs && !(hs.min_bs & (hs.min_bs - 1)) &&
			       hs.min_bs <= 65536);
			assert(hs.pref_bs >= hs.min_bs);
			assert(hs.max_payload >= hs.min_bs &&
			       hs.max_payload % hs.min_bs == 0);
		}
		assert(!hs.meta || hs.structured);
	}
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (n && d[0] == 0xff)
		handshake(d + 1, n - 1);
	else
		replies(d, n);
	return 0;
}
