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

static int on_simple(struct nbdc_conn *c, const uint8_t *p)
{
	uint32_t err = get32(p + 4);
	struct nbdc_req *req = nx_nbdc_lookup(c, get64(p + 8));

	if (!req)
		return proto(c, "simple reply with an unknown cookie",
			     get64(p + 8));
	if (req->state & NBDC_R_REPLIED)
		return proto(c, "second reply to a request", get64(p + 8));
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

static int on_chunk(struct nbdc_conn *c, const uint8_t *p)
{
	uint16_t flags = get16(p + 4), type = get16(p + 6);
	uint32_t len = get32(p + 16);
	struct nbdc_req *req = nx_nbdc_lookup(c, get64(p + 8));

	if (!req)
		return proto(c, "reply chunk with an unknown cookie",
			     get64(p + 8));
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
		if (!is_read(req) || len < 9)
			return proto(c, "OFFSET_DATA chunk not for a read or "
				     "shorter than 9 bytes", len);
		c->ps = P_DATA_OFF;
		return 0;
	case NBD_REPLY_TYPE_OFFSET_HOLE:
		if (!is_read(req) || len != 12)
			return proto(c, "OFFSET_HOLE chunk not for a read or "
				     "not 12 bytes", len);
		c->ps = P_HOLE;
		return 0;
	case NBD_REPLY_TYPE_BLOCK_STATUS:
		if (req->type != NBD_CMD_BLOCK_STATUS || len < 12 ||
		    (len - 4) % 8)
			return proto(c, "malformed BLOCK_STATUS chunk", len);
		c->ps = P_BS_ID;
		return 0;
	default:
		if (!(type & 0x8000))
			return proto(c, "unknown reply chunk type", type);
		if (len < 6 || len > MAX_META_CHUNK)
			return proto(c, "error chunk length out of range", len);
		c->ps = P_ERR;
		return 0;
	}
}

static int on_error_chunk(struct nbdc_conn *c, const uint8_t *p)
{
	struct nbdc_req *req = c->cur;
	uint32_t err = get32(p), len = c->clen;
	uint16_t mlen = get16(p + 4);
	char msg[256];
	size_t n;

	if (!err)
		return proto(c, "error chunk with error 0", c->ctype);
	if (c->ctype == NBD_REPLY_TYPE_ERROR_OFFSET) {
		if (len < 14 || mlen > len - 14)
			return proto(c, "malformed ERROR_OFFSET chunk", len);
		if (!inside(req, get64(p + 6 + mlen), 1))
			return proto(c, "ERROR_OFFSET outside the request",
				     get64(p + 6 + mlen));
	} else if (mlen > len - 6) {
		return proto(c, "error message longer than its chunk", mlen);
	}
	n = mlen < sizeof(msg) - 1 ? mlen : sizeof(msg) - 1;
	for (size_t i = 0; i < n; i++)
		msg[i] = p[6 + i] >= 0x20 && p[6 + i] < 0x7f ? (char)p[6 + i]
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
		size_t need;
		int rc = 0;

		if (c->dead)
			return -ESHUTDOWN;
		switch (c->ps) {
		case P_HDR:
			if (avail < 4)
				return 0;
			if (get32(p) == NBD_SIMPLE_REPLY_MAGIC) {
				need = sizeof(struct nbd_simple_reply);
				if (avail < need)
					return 0;
				rc = on_simple(c, p);
			} else if (get32(p) == NBD_STRUCTURED_REPLY_MAGIC &&
				   c->d->hs.structured) {
				need = sizeof(struct nbd_structured_reply);
				if (avail < need)
					return 0;
				rc = on_chunk(c, p);
			} else {
				return proto(c, "bad reply magic", get32(p));
			}
			break;
		case P_DATA_OFF: {
			uint64_t off;
			uint32_t dlen = c->clen - 8;

			need = 8;
			if (avail < need)
				return 0;
			off = get64(p);
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

			need = 12;
			if (avail < need)
				return 0;
			off = get64(p);
			hlen = get32(p + 8);
			if (!hlen || !inside(req, off, hlen) ||
			    hlen > req->len - req->done)
				return proto(c, "OFFSET_HOLE outside the read, "
					     "empty or overlapping", off);
			iov_fill(req->io, (size_t)(off - req->off), NULL, hlen);
			req->done += hlen;
			rc = nx_nbdc_chunk_end(c);
			break;
		}
		case P_BS_ID:
			need = 4;
			if (avail < need)
				return 0;
			if (!c->d->hs.meta || get32(p) != c->d->hs.meta_id ||
			    (req->state & NBDC_R_BS_SEEN))
				return proto(c, "block status for an unknown "
					     "or repeated context", get32(p));
			req->state |= NBDC_R_BS_SEEN;
			c->clen -= 4;
			c->ps = P_BS_DESC;
			break;
		case P_BS_DESC:
			need = 8;
			if (avail < need)
				return 0;
			if (!get32(p))
				return proto(c, "block status extent of length 0",
					     0);
			nx_nbdc_bs_add(req, get32(p), get32(p + 4));
			c->clen -= 8;
			if (!c->clen)
				rc = nx_nbdc_chunk_end(c);
			break;
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

