/* SPDX-License-Identifier: MIT */
/* NBD export: the transmission phase.  Request headers are parsed from
 * the connection's receive buffer; each takes a request slot with its
 * payload buffer (nexus_slot_get: within the connection's limit and the
 * export's and context's budgets, else parsing waits).  A write payload
 * is received straight into its buffer.  Requests run concurrently on
 * the device; a reply (header + data) is queued on the connection as
 * soon as its I/O completes, and the connection sends everything queued
 * in one sendmsg per reactor pass. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tcp.h"
#include "nbd-int.h"

/* Extents asked of the device per BLOCK_STATUS request. */
#define BS_MAX_EXTENTS 256

struct nbd_req {
	struct nbd_tx *t;
	uint8_t *buf;		/* payload buffer, or NULL */
	struct iovec iov;	/* the device's view of buf */
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
	uint32_t datalen;	/* bytes of buf sent after the header */
	uint16_t type;
	uint16_t flags;
	uint16_t hdrlen;
	uint8_t hdr[NBDS_REPLY_HDR_MAX];
};

static void parse(struct nbd_tx *t);

/* ---- completion of the connection ---- */

/* Draining: close once every request is answered. */
static void check_drained(struct nbd_tx *t)
{
	if (t->draining && !nexus_conn_closing(t->c) && !t->rx &&
	    !nexus_slots_busy(t->slots))
		nexus_conn_close(t->c, NULL);
}

/* ---- replies ---- */

static void sent(void *arg, int res)
{
	struct nbd_req *q = arg;
	struct nbd_tx *t = q->t;

	(void)res;
	nexus_slot_put(t->slots, q);
	check_drained(t);
}

static void reply(struct nbd_tx *t, struct nbd_req *q)
{
	struct iovec v[2] = { { q->hdr, q->hdrlen }, { q->buf, q->datalen } };

	if (nexus_conn_send(t->c, v, q->datalen ? 2 : 1, sent, q) < 0) {
		nexus_slot_put(t->slots, q);
		nexus_conn_close(t->c, "send queue full");
	}
}

static void reply_err(struct nbd_tx *t, struct nbd_req *q, uint32_t err,
		      const char *msg)
{
	t->errors++;
	if (t->exp)
		nbd_event(t->ctx, NEXUS_EVENT_CLIENT_ERROR, t->exp, t->name,
			  nexus_conn_peer(t->c), NEXUS_REASON_NONE,
			  nbd_errno_decode(err), msg);
	nexus_slot_drop_buf(t->slots, q);
	q->datalen = 0;
	if (t->tx.structured)
		q->hdrlen = (uint16_t)nbd_error_chunk_encode(
			q->hdr, sizeof(q->hdr), q->cookie, err, msg);
	else
		q->hdrlen = (uint16_t)nbd_simple_reply_encode(q->hdr,
							      q->cookie, err);
	reply(t, q);
}

static void reply_ok(struct nbd_tx *t, struct nbd_req *q)
{
	q->hdrlen = (uint16_t)nbd_simple_reply_encode(q->hdr, q->cookie, 0);
	q->datalen = 0;
	reply(t, q);
}

static void reply_read(struct nbd_tx *t, struct nbd_req *q)
{
	if (t->tx.structured)
		q->hdrlen = (uint16_t)nbd_data_chunk_encode(
			q->hdr, q->cookie, q->offset, q->length);
	else
		q->hdrlen = (uint16_t)nbd_simple_reply_encode(q->hdr,
							      q->cookie, 0);
	q->datalen = q->length;
	reply(t, q);
}

/* The extents the device wrote at the start of buf become NBD
 * descriptors in place (each is read before a descriptor overwrites
 * it: descriptor n is 8 bytes at 8n, extent i 24 bytes at 24i). */
static void reply_bs(struct nbd_tx *t, struct nbd_req *q, int n)
{
	const struct nexus_extent *ext = (const void *)q->buf;
	uint32_t nd = 0, prevf = 0, prevl = 0;

	for (int i = 0; i < n; i++) {
		uint64_t len = ext[i].length;
		uint32_t f = 0;

		if (ext[i].flags & NEXUS_EXTENT_HOLE)
			f |= NBD_STATE_HOLE;
		if (ext[i].flags & NEXUS_EXTENT_ZERO)
			f |= NBD_STATE_ZERO;
		if (len > UINT32_MAX)
			len = UINT32_MAX & ~(uint64_t)(t->tx.min_block - 1);
		if (!len)
			break;
		if (nd && prevf == f && (uint64_t)prevl + len <= UINT32_MAX) {
			prevl += (uint32_t)len;
			nbd_bs_desc_encode(q->buf + NBD_BS_DESC_LEN * (nd - 1),
					   prevl, f);
			continue;
		}
		nbd_bs_desc_encode(q->buf + NBD_BS_DESC_LEN * nd, (uint32_t)len,
				   f);
		prevf = f;
		prevl = (uint32_t)len;
		nd++;
	}
	q->hdrlen = (uint16_t)nbd_bs_chunk_encode(q->hdr, q->cookie,
						  NBDS_META_ALLOCATION_ID, nd);
	q->datalen = NBD_BS_DESC_LEN * nd;
	reply(t, q);
}

/* ---- device I/O ---- */

static void dev_done(void *ud, int res)
{
	struct nbd_req *q = ud;
	struct nbd_tx *t = q->t;
	struct nexus_conn *c = t->c;

	t->dev_inflight--;
	if (q->type == NBD_CMD_BLOCK_STATUS && res <= 0 && res != -EINVAL &&
	    res != -ESHUTDOWN) {
		/* The device cannot tell from here (a source whose block
		 * status is synchronous over the network refuses to block a
		 * reactor): report data, as the protocol allows. */
		struct nexus_extent *e = (void *)q->buf;

		e->offset = q->offset;
		e->length = q->length;
		e->flags = 0;
		res = 1;
	}
	if (nexus_conn_closing(c)) {
		nexus_slot_put(t->slots, q);
	} else if (res < 0) {
		reply_err(t, q, nbd_errno_encode(res), strerror(-res));
	} else if (q->type == NBD_CMD_READ) {
		t->bytes_read += q->length;
		reply_read(t, q);
	} else if (q->type == NBD_CMD_BLOCK_STATUS) {
		reply_bs(t, q, res);
	} else {
		if (q->type == NBD_CMD_WRITE)
			t->bytes_written += q->length;
		nexus_slot_drop_buf(t->slots, q);
		reply_ok(t, q);
	}
	nexus_conn_put(c); /* may free t */
}

static void submit(struct nbd_tx *t, struct nbd_req *q, uint32_t op,
		   uint32_t flags)
{
	struct nexus_io_req r = NEXUS_IO_REQ_INIT;
	int rc;

	r.op = op;
	r.flags = flags;
	r.offset = q->offset;
	r.length = q->length;
	r.cb = dev_done;
	r.user_data = q;
	if (op == NEXUS_OP_READ || op == NEXUS_OP_WRITE) {
		q->iov.iov_base = q->buf;
		q->iov.iov_len = q->length;
		r.iov = &q->iov;
		r.iovcnt = 1;
	} else if (op == NEXUS_OP_BLOCK_STATUS) {
		r.extents = (struct nexus_extent *)(void *)q->buf;
		r.max_extents = (q->flags & NBD_CMD_FLAG_REQ_ONE)
					? 1 : BS_MAX_EXTENTS;
	}
	rc = nexus_dev_submit(t->dev, &r);
	if (rc < 0) {
		reply_err(t, q, nbd_errno_encode(rc), strerror(-rc));
		return;
	}
	t->dev_inflight++;
	nexus_conn_get(t->c);
}

static void submit_write(struct nbd_tx *t, struct nbd_req *q)
{
	submit(t, q, NEXUS_OP_WRITE,
	       (q->flags & NBD_CMD_FLAG_FUA) ? NEXUS_IO_FUA : 0);
}

/* The payload of t->rx arrived (or the connection failed). */
static void payload_done(struct nexus_conn *c, void *arg, int res)
{
	struct nbd_req *q = arg;
	struct nbd_tx *t = q->t;

	t->rx = NULL;
	if (res < 0) {
		nexus_slot_put(t->slots, q);
		if (!t->stopping)
			nexus_conn_close(c, "client disconnected in the "
					    "middle of a write payload");
		check_drained(t);
		return;
	}
	submit_write(t, q);
}

static void dispatch(struct nbd_tx *t, struct nbd_req *q)
{
	uint32_t fl = (q->flags & NBD_CMD_FLAG_FUA) ? NEXUS_IO_FUA : 0;
	int rc;

	switch (q->type) {
	case NBD_CMD_READ:
		submit(t, q, NEXUS_OP_READ, 0);
		return;
	case NBD_CMD_WRITE:
		rc = nexus_conn_recv_into(t->c, q->buf, q->length,
					  payload_done, q);
		if (rc == 1)
			submit_write(t, q);
		else if (rc == 0)
			t->rx = q;
		else
			payload_done(t->c, q, rc);
		return;
	case NBD_CMD_FLUSH:
		submit(t, q, NEXUS_OP_FLUSH, 0);
		return;
	case NBD_CMD_TRIM:
		submit(t, q, NEXUS_OP_TRIM, fl);
		return;
	case NBD_CMD_WRITE_ZEROES:
		if (q->flags & NBD_CMD_FLAG_NO_HOLE)
			fl |= NEXUS_IO_NO_UNMAP;
		if (q->flags & NBD_CMD_FLAG_FAST_ZERO)
			fl |= NEXUS_IO_FAST_ZERO;
		submit(t, q, NEXUS_OP_WRITE_ZEROES, fl);
		return;
	case NBD_CMD_BLOCK_STATUS:
		submit(t, q, NEXUS_OP_BLOCK_STATUS, 0);
		return;
	default: /* nbds_req_check() lets nothing else through */
		reply_err(t, q, NBD_EINVAL, "unknown command");
		return;
	}
}

/* Payload bytes a request needs from the pool. */
static size_t need_bytes(const struct nbd_req_hdr *r, int verdict)
{
	if (verdict != NBDS_REQ_OK)
		return 0;
	if (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE)
		return r->length;
	if (r->type == NBD_CMD_BLOCK_STATUS)
		return BS_MAX_EXTENTS * sizeof(struct nexus_extent);
	return 0;
}

/* ---- requests ---- */

static void parse(struct nbd_tx *t)
{
	struct nexus_conn *c = t->c;

	while (!nexus_conn_closing(c) && !t->rx) {
		struct nbd_req_hdr r;
		struct nbd_req *q;
		const uint8_t *p;
		const char *why;
		uint32_t err, payload;
		size_t avail;
		void *buf;
		int v;

		p = nexus_conn_rdata(c, &avail);
		if (t->skip) {
			size_t n = avail < t->skip ? avail : (size_t)t->skip;

			nexus_conn_consume(c, n);
			t->skip -= n;
			if (t->skip)
				break;
			continue;
		}
		if (t->draining && !t->stopping)
			break;
		if (avail < NBD_REQ_LEN)
			break;
		if (!nbd_req_decode(p, &r)) {
			t->reason = NEXUS_REASON_PROTOCOL;
			nexus_conn_close(c, "bad request magic");
			return;
		}
		v = nbds_req_check(&t->tx, &r, &err, &payload, &why);
		if (v == NBDS_REQ_FATAL) {
			t->reason = NEXUS_REASON_PROTOCOL;
			nexus_conn_close(c, why);
			return;
		}
		if (v == NBDS_REQ_DISC) {
			nexus_conn_consume(c, NBD_REQ_LEN);
			if (!t->stopping)
				t->reason = NEXUS_REASON_PEER_CLOSED;
			t->draining = true;
			nexus_conn_recv_pause(c, true);
			break;
		}
		q = nexus_slot_get(t->slots, need_bytes(&r, v), &buf);
		if (!q) {
			/* out of slots or budget: the ready callback
			 * resumes; meanwhile the client's socket fills */
			t->paused = true;
			nexus_conn_recv_pause(c, true);
			break;
		}
		nexus_conn_consume(c, NBD_REQ_LEN);
		q->t = t;
		q->buf = buf;
		q->type = r.type;
		q->flags = r.flags;
		q->cookie = r.cookie;
		q->offset = r.offset;
		q->length = r.length;
		t->requests++;
		if (t->stopping && v == NBDS_REQ_OK) {
			v = NBDS_REQ_ERROR;
			err = NBD_ESHUTDOWN;
			why = "server is shutting down";
			payload = r.type == NBD_CMD_WRITE ? r.length : 0;
		}
		if (v == NBDS_REQ_ERROR) {
			t->skip = payload;
			reply_err(t, q, err, why);
			continue;
		}
		if (need_bytes(&r, v) && !buf) {
			if (r.type == NBD_CMD_WRITE)
				t->skip = r.length;
			reply_err(t, q, NBD_ENOMEM, "out of memory");
			continue;
		}
		dispatch(t, q);
	}
	check_drained(t);
}

/* ---- timeouts ---- */

static uint64_t min_nz(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* Idle: nothing in flight and nothing received or sent for idle_ms.
 * Stalled: replies or a payload wait on the client, which neither reads
 * nor sends for stall_ms (it pins its buffers and budget meanwhile). */
static void tx_timer(struct nbd_tx *t)
{
	struct nexus_conn *c = t->c;
	unsigned busy = nexus_slots_busy(t->slots);
	uint64_t quiet = nexus_conn_quiet_ms(c), next;
	bool on_client = busy > t->dev_inflight || t->rx;

	if (on_client && t->stall_ms) {
		if (quiet >= t->stall_ms) {
			t->reason = NEXUS_REASON_LIMIT;
			nexus_conn_close(c, "the client stopped reading "
					    "(stall-timeout)");
			return;
		}
		next = t->stall_ms - quiet;
	} else if (!busy && t->idle_ms) {
		if (quiet >= t->idle_ms) {
			t->reason = NEXUS_REASON_LIMIT;
			nexus_conn_close(c, "idle (idle-timeout)");
			return;
		}
		next = t->idle_ms - quiet;
	} else {
		next = min_nz(t->idle_ms, t->stall_ms);
	}
	nexus_conn_timer(c, next, 0);
}

/* ---- connection callbacks (both phases) ---- */

static void on_recv(struct nexus_conn *c, void *proto)
{
	struct nbd_tx *t = proto;

	(void)c;
	if (t->tx_phase)
		parse(t);
	else
		nbd_hs_recv(t);
}

static void on_eof(struct nexus_conn *c, void *proto, int err)
{
	struct nbd_tx *t = proto;

	if (!t->tx_phase) {
		nexus_conn_close(c, err ? "receive error during handshake"
					: "client disconnected during "
					  "handshake");
		return;
	}
	if (err && !t->stopping) {
		nexus_conn_close(c, "receive error");
		return;
	}
	/* end of requests: answer what is in flight, then close */
	if (!t->stopping)
		t->reason = NEXUS_REASON_PEER_CLOSED;
	t->draining = true;
	check_drained(t);
}

static void on_timer(struct nexus_conn *c, void *proto)
{
	struct nbd_tx *t = proto;

	if (!t->tx_phase)
		nexus_conn_close(c, "handshake timed out");
	else
		tx_timer(t);
}

static void on_ready(struct nexus_conn *c, void *proto)
{
	struct nbd_tx *t = proto;

	if (t->paused) {
		t->paused = false;
		nexus_conn_recv_pause(c, false);
	}
}

static void on_closed(struct nexus_conn *c, void *proto)
{
	struct nbd_tx *t = proto;

	if (t->exp)
		nbd_event(t->ctx, NEXUS_EVENT_CONN_CLOSED, t->exp, t->name,
			  nexus_conn_peer(c), t->reason, 0, "");
	nexus_slots_destroy(t->slots);
	free(t->hs);
	nx_out_free(&t->hout);
	free(t);
}

const struct nexus_conn_ops nbd_conn_ops = {
	.size = sizeof(struct nexus_conn_ops),
	.recv = on_recv,
	.eof = on_eof,
	.timer = on_timer,
	.ready = on_ready,
	.closed = on_closed,
};

/* ---- phase changes, stop, listing ---- */

void nbd_tx_start(struct nbd_tx *t, struct nbd_dev *d,
		  const struct nbds_hs *hs)
{
	struct nbd_export *ex = d->ex;
	unsigned n = ex->max_inflight;

	if (n > t->send_slots)
		n = t->send_slots;
	t->d = d;
	t->dev = d->dev;
	t->tx.size = hs->chosen.size;
	t->tx.tflags = hs->tflags;
	t->tx.min_block = hs->chosen.min_block;
	t->tx.max_payload = hs->chosen.max_payload;
	t->tx.structured = hs->structured;
	t->tx.block_status = hs->block_status;
	t->idle_ms = ex->idle_ms;
	t->stall_ms = ex->stall_ms;
	snprintf(t->name, sizeof(t->name), "%s", d->name);
	nx_tcp_congestion(nexus_conn_fd(t->c), ex->congestion);
	t->slots = nexus_slots_create(t->c, n, sizeof(struct nbd_req),
				      NBD_CONN_BYTES, ex->budget);
	if (!t->slots) {
		nexus_conn_close(t->c, "out of memory");
		return;
	}
	t->tx_phase = true;
	nexus_conn_timer(t->c, min_nz(t->idle_ms, t->stall_ms), 0);
	t->exp = ex->exp;
	t->ctx = ex->ctx;
	t->reason = NEXUS_REASON_NONE;
	nexus_log(ex->ctx, NEXUS_LOG_DEBUG, "nbd: %s connected to export "
		  "'%s'", nexus_conn_peer(t->c), d->name);
	nbd_event(t->ctx, NEXUS_EVENT_CONN_OPENED, t->exp, t->name,
		  nexus_conn_peer(t->c), NEXUS_REASON_NONE, 0, "");
	nexus_conn_recv_pause(t->c, false);
}

void nbd_tx_stop(struct nexus_conn *c, bool force)
{
	struct nbd_tx *t = nexus_conn_proto(c);

	if (force || !t || !t->tx_phase) {
		if (t)
			t->reason = NEXUS_REASON_SHUTDOWN;
		nexus_conn_close(c, force ? "export stopped" : NULL);
		return;
	}
	if (t->stopping)
		return;
	/* no new requests: what was received is answered with ESHUTDOWN,
	 * what is in flight finishes, then the connection closes */
	t->stopping = true;
	t->reason = NEXUS_REASON_SHUTDOWN;
	nexus_conn_shutdown_read(c);
	check_drained(t);
}

void nbd_tx_orphan(struct nexus_conn *c)
{
	struct nbd_tx *t = nexus_conn_proto(c);

	nexus_conn_close(c, NULL);
	if (t) {
		/* its close is reported now: the export goes away */
		if (t->exp)
			nbd_event(t->ctx, NEXUS_EVENT_CONN_CLOSED, t->exp,
				  t->name, nexus_conn_peer(c),
				  NEXUS_REASON_TIMEOUT, -ECANCELED,
				  "device I/O abandoned at stop-timeout");
		t->exp = NULL;
		t->d = NULL;
		t->lst = NULL;
		t->srv = NULL;
		if (t->slots)
			nexus_slots_detach_budget(t->slots);
	}
	nexus_conn_detach(c);
}

void nbd_tx_info(struct nexus_conn *c, struct nexus_conn_info *ci)
{
	struct nbd_tx *t = nexus_conn_proto(c);

	snprintf(ci->peer, sizeof(ci->peer), "%s", nexus_conn_peer(c));
	if (!t)
		return;
	snprintf(ci->export_name, sizeof(ci->export_name), "%s", t->name);
	ci->requests = t->requests;
	ci->errors = t->errors;
	ci->bytes_read = t->bytes_read;
	ci->bytes_written = t->bytes_written;
}
