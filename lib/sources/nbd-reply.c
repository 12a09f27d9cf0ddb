/* SPDX-License-Identifier: MIT */
/* NBD source: the reply parser of a connection.  It reads simple replies
 * and structured reply chunks from the receive buffer and writes read
 * data into the caller's iovec -- only after checking that the cookie is
 * one in flight, that the chunk type fits the request, that every offset
 * and length lies inside the request and that chunks do not add up to
 * more than it.  Anything else is a protocol error: the connection is
 * dropped (nx_nbdc_conn_fail) and its requests fail with -EIO.  Error
 * chunks end only their request; oversized non-data chunks are refused
 * rather than buffered. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "nbd-conn.h"

/* Copy into / zero the caller's buffers at byte @p pos of a READ. */
static void iov_fill(const struct nexus_io *io, size_t pos, const uint8_t *src,
		     size_t n)
{
	for (int i = 0; i < io->iovcnt && n; i++) {
		size_t l = io->iov[i].iov_len, k;

		if (pos >= l) {
			pos -= l;
			continue;
		}
		k = l - pos < n ? l - pos : n;
		if (src) {
			memcpy((uint8_t *)io->iov[i].iov_base + pos, src, k);
			src += k;
		} else {
			memset((uint8_t *)io->iov[i].iov_base + pos, 0, k);
		}
		n -= k;
		pos = 0;
	}
}

int nx_nbdc_iov_slice(const struct nexus_io *io, size_t pos, size_t n,
		     struct iovec *out, int max)
{
	int cnt = 0;

	for (int i = 0; i < io->iovcnt && n && cnt < max; i++) {
		size_t l = io->iov[i].iov_len, k;

		if (pos >= l) {
			pos -= l;
			continue;
		}
		k = l - pos < n ? l - pos : n;
		out[cnt].iov_base = (uint8_t *)io->iov[i].iov_base + pos;
		out[cnt].iov_len = k;
		cnt++;
		n -= k;
		pos = 0;
	}
	return cnt;
}

static bool is_read(const struct nbdc_req *r)
{
	return r->type == NBD_CMD_READ;
}

/* A chunk ended: a final one completes the reply. */
int nx_nbdc_chunk_end(struct nbdc_conn *c)
{
	struct nbdc_req *req = c->cur;
	int res = 0;

	c->ps = P_HDR;
	c->cur = NULL;
	if (!(c->cflags & NBD_REPLY_FLAG_DONE))
		return 0;
	if (req->result) {
		res = req->result;
	} else if (is_read(req) && req->done != req->len) {
		nexus_log(c->d->ctx, NEXUS_LOG_ERROR, "nbd: %s: read reply "
			  "covered %u of %u bytes", c->d->server, req->done,
			  req->len);
		res = -EIO;
	} else if (req->type == NBD_CMD_BLOCK_STATUS &&
		   !(req->state & NBDC_R_BS_SEEN)) {
		nexus_log(c->d->ctx, NEXUS_LOG_ERROR, "nbd: %s: block status "
			  "reply without extents", c->d->server);
		res = -EIO;
	}
	nx_nbdc_replied(c, req, res);
	return 0;
}

static int proto(struct nbdc_conn *c, const char *what, unsigned long long v)
{
	nx_nbdc_conn_fail(c, -EPROTO, "protocol error: %s (%llu); disconnected", what,
		  v);
	return -EPROTO;
}

/* Is [off, off+len) inside the current request? */
static bool inside(const struct nbdc_req *req, uint64_t off, uint64_t len)
{
	return off >= req->off && len <= req->len &&
	       off - req->off <= req->len - len;
}

static int on_simple(struct nbdc_conn *c, const struct nbd_reply_hdr *h)
{
	uint32_t err = h->error;
	struct nbdc_req *req = nx_nbdc_lookup(c, h->cookie);

	if (!req)
		return proto(c, "simple reply with an unknown cookie",
			     h->cookie);
	if (req->state & NBDC_R_REPLIED)
		return proto(c, "second reply to a request", h->cookie);
	if (req->type == NBD_CMD_READ && c->d->hs.structured)
		return proto(c, "simple reply to a read after structured "
			     "replies were negotiated", err);
	if (req->type == NBD_CMD_BLOCK_STATUS && !err)
		return proto(c, "simple reply to block status", 0);
	if (req->type == NBD_CMD_READ && !err) {
		c->cur = req;
		c->simple = true;
		c->cflags = NBD_REPLY_FLAG_DONE;
		c->dpos = 0;
		c->dleft = req->len;
		c->ps = P_DATA;
		return 0;
	}
	nx_nbdc_replied(c, req, err ? nx_nbdc_errno(err) : 0);
	return 0;
}

static int on_chunk(struct nbdc_conn *c, const struct nbd_reply_hdr *h)
{
	uint16_t flags = h->flags, type = h->type;
	uint32_t len = h->length;
	struct nbdc_req *req = nx_nbdc_lookup(c, h->cookie);

	if (!req)
		return proto(c, "reply chunk with an unknown cookie",
			     h->cookie);
	if (req->state & NBDC_R_REPLIED)
		return proto(c, "reply chunk after the final one", type);
	c->cur = req;
	c->cflags = flags;
	c->ctype = type;
	c->clen = len;
	c->simple = false;
	switch (type) {
	case NBD_REPLY_TYPE_NONE:
		if (len || !(flags & NBD_REPLY_FLAG_DONE))
			return proto(c, "NONE chunk with a payload or not "
				     "final", len);
		return nx_nbdc_chunk_end(c);
	case NBD_REPLY_TYPE_OFFSET_DATA:
		if (!is_read(req) || len < NBD_DATA_OFF_LEN + 1)
			return proto(c, "OFFSET_DATA chunk not for a read or "
				     "shorter than 9 bytes", len);
		c->ps = P_DATA_OFF;
		return 0;
	case NBD_REPLY_TYPE_OFFSET_HOLE:
		if (!is_read(req) || len != NBD_HOLE_LEN)
			return proto(c, "OFFSET_HOLE chunk not for a read or "
				     "not 12 bytes", len);
		c->ps = P_HOLE;
		return 0;
	case NBD_REPLY_TYPE_BLOCK_STATUS:
		if (req->type != NBD_CMD_BLOCK_STATUS ||
		    len < NBD_BS_CTX_LEN + NBD_BS_DESC_LEN ||
		    (len - NBD_BS_CTX_LEN) % NBD_BS_DESC_LEN)
			return proto(c, "malformed BLOCK_STATUS chunk", len);
		c->ps = P_BS_ID;
		return 0;
	default:
		if (!(type & 0x8000))
			return proto(c, "unknown reply chunk type", type);
		if (len < NBD_ERR_CHUNK_MIN || len > MAX_META_CHUNK)
			return proto(c, "error chunk length out of range", len);
		c->ps = P_ERR;
		return 0;
	}
}

static int on_error_chunk(struct nbdc_conn *c, const uint8_t *p)
{
	struct nbdc_req *req = c->cur;
	struct nbd_chunk_err e;
	uint32_t err, len = c->clen;
	bool ok = nbd_chunk_err_decode(p, len, c->ctype, &e);
	char msg[256];
	size_t n;

	/* on_chunk let only chunks of NBD_ERR_CHUNK_MIN bytes or more here,
	 * so error and msg_len are filled even when !ok */
	err = e.error;
	if (!err)
		return proto(c, "error chunk with error 0", c->ctype);
	if (c->ctype == NBD_REPLY_TYPE_ERROR_OFFSET) {
		if (!ok)
			return proto(c, "malformed ERROR_OFFSET chunk", len);
		if (!inside(req, e.offset, 1))
			return proto(c, "ERROR_OFFSET outside the request",
				     e.offset);
	} else if (!ok) {
		return proto(c, "error message longer than its chunk",
			     e.msg_len);
	}
	n = e.msg_len < sizeof(msg) - 1 ? e.msg_len : sizeof(msg) - 1;
	for (size_t i = 0; i < n; i++)
		msg[i] = e.msg[i] >= 0x20 && e.msg[i] < 0x7f ? (char)e.msg[i]
							      : '?';
	msg[n] = '\0';
	nexus_log(c->d->ctx, NEXUS_LOG_DEBUG, "nbd: %s: request failed: %s%s%s",
		  c->d->server, strerror(-nx_nbdc_errno(err)), n ? ": " : "",
		  msg);
	if (!req->result)
		req->result = nx_nbdc_errno(err);
	if (req->result == -ESHUTDOWN) {
		c->draining = true;
		atomic_store(&c->unusable, true);
	}
	return nx_nbdc_chunk_end(c);
}

/* Parse what the buffer holds.  Returns 0 (wants more bytes) or -EPROTO
 * (the connection is dead). */
int nx_nbdc_parse(struct nbdc_conn *c)
{
	for (;;) {
		size_t avail = c->rend - c->rstart;
		const uint8_t *p = c->rbuf + c->rstart;
		struct nbdc_req *req = c->cur;
		struct nbd_reply_hdr hdr;
		size_t need;
		int rc = 0;

		if (c->dead)
			return -ESHUTDOWN;
		switch (c->ps) {
		case P_HDR:
			if (avail < NBD_REPLY_MAGIC_LEN)
				return 0;
			need = nbd_reply_hdr_len(p);
			if (!need || (need == NBD_CHUNK_LEN &&
				      !c->d->hs.structured))
				return proto(c, "bad reply magic",
					     nx_get32(p));
			if (avail < need)
				return 0;
			nbd_reply_decode(p, &hdr);
			rc = hdr.structured ? on_chunk(c, &hdr)
					    : on_simple(c, &hdr);
			break;
		case P_DATA_OFF: {
			uint64_t off;
			uint32_t dlen = c->clen - NBD_DATA_OFF_LEN;

			need = NBD_DATA_OFF_LEN;
			if (avail < need)
				return 0;
			off = nbd_data_off_decode(p);
			if (!inside(req, off, dlen) || dlen > req->len - req->done)
				return proto(c, "OFFSET_DATA outside the read "
					     "or overlapping", off);
			c->dpos = (uint32_t)(off - req->off);
			c->dleft = dlen;
			c->ps = P_DATA;
			break;
		}
		case P_DATA:
			need = avail < c->dleft ? avail : c->dleft;
			if (need == 0 && c->dleft)
				return 0;
			iov_fill(req->io, c->dpos, p, need);
			c->dpos += (uint32_t)need;
			c->dleft -= (uint32_t)need;
			req->done += (uint32_t)need;
			if (c->dleft == 0)
				rc = nx_nbdc_chunk_end(c);
			break;
		case P_HOLE: {
			uint64_t off;
			uint32_t hlen;

			need = NBD_HOLE_LEN;
			if (avail < need)
				return 0;
			nbd_hole_decode(p, &off, &hlen);
			if (!hlen || !inside(req, off, hlen) ||
			    hlen > req->len - req->done)
				return proto(c, "OFFSET_HOLE outside the read, "
					     "empty or overlapping", off);
			iov_fill(req->io, (size_t)(off - req->off), NULL, hlen);
			req->done += hlen;
			rc = nx_nbdc_chunk_end(c);
			break;
		}
		case P_BS_ID: {
			uint32_t id;

			need = NBD_BS_CTX_LEN;
			if (avail < need)
				return 0;
			id = nbd_bs_ctx_decode(p);
			if (!c->d->hs.meta || id != c->d->hs.meta_id ||
			    (req->state & NBDC_R_BS_SEEN))
				return proto(c, "block status for an unknown "
					     "or repeated context", id);
			req->state |= NBDC_R_BS_SEEN;
			c->clen -= NBD_BS_CTX_LEN;
			c->ps = P_BS_DESC;
			break;
		}
		case P_BS_DESC: {
			uint32_t elen, eflags;

			need = NBD_BS_DESC_LEN;
			if (avail < need)
				return 0;
			nbd_bs_desc_decode(p, &elen, &eflags);
			if (!elen)
				return proto(c, "block status extent of length 0",
					     0);
			nx_nbdc_bs_add(req, elen, eflags);
			c->clen -= NBD_BS_DESC_LEN;
			if (!c->clen)
				rc = nx_nbdc_chunk_end(c);
			break;
		}
		case P_ERR:
			need = c->clen;
			if (avail < need)
				return 0;
			rc = on_error_chunk(c, p);
			break;
		default:
			return proto(c, "parser state", c->ps);
		}
		if (rc)
			return rc;
		c->rstart += need;
	}
}

