/* SPDX-License-Identifier: MIT */
/* NBD source: one connection, driven by the io_uring of the reactor that
 * owns it.  Everything here runs on that reactor, without locks.
 *
 * Requests get a slot of the cookie table (cookie = generation << 16 |
 * slot), so replies are matched in any order and a cookie the server
 * makes up, repeats or keeps using after the final chunk is caught.
 * Requests beyond the table wait in a list.
 *
 * Sending: one SENDMSG in flight per connection (concurrent sends could
 * interleave on the stream).  A batch gathers the headers and write
 * payloads of every queued request, up to IOV_MAX pieces; a cursor
 * (request, piece, offset) advances by what the kernel took, so a short
 * send simply continues.  The first request of a burst arms a NOP whose
 * completion starts the send: requests submitted in the same reactor
 * turn leave in one sendmsg.
 *
 * Receiving: one RECV into a 256 KiB buffer takes many replies at once;
 * read data is copied from it into the caller's iovec, and a large
 * remainder is received straight into the caller's buffers (RECVMSG,
 * MSG_WAITALL).  Every length, offset and cookie from the server is
 * checked before a byte is written to a caller's buffer; anything
 * inconsistent is a protocol error and ends the connection.
 *
 * A dead connection fails its requests with -EIO once no SQE refers to
 * their buffers any more (shutdown() makes those SQEs complete). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nbd-conn.h"

static void start_send(struct nbdc_conn *c);
static void start_recv(struct nbdc_conn *c);

int nx_nbdc_errno(uint32_t e)
{
	return nbd_errno_decode(e); /* the codec, lib/proto/nbd.c */
}

void nx_nbdc_req_encode(struct nbdc_req *req, uint64_t cookie)
{
	const struct nbd_req_hdr h = { .flags = req->cmd_flags,
				       .type = req->type,
				       .cookie = cookie,
				       .offset = req->off,
				       .length = req->len };

	nbd_req_encode(req->hdr, &h);
}

/* ---- SQE bookkeeping ---- */

static struct io_uring_sqe *get_sqe(struct nbdc_conn *c, struct nexus_cqe_handler *ev)
{
	struct io_uring_sqe *sqe = nexus_reactor_sqe(c->r, ev);

	if (sqe)
		atomic_fetch_add_explicit(&c->busy, 1, memory_order_relaxed);
	return sqe;
}

static void put_sqe(struct nbdc_conn *c)
{
	atomic_fetch_sub_explicit(&c->busy, 1, memory_order_release);
}

static void noop_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	(void)ev;
	(void)res;
	(void)flags;
}

static struct nexus_cqe_handler noop_ev = { noop_event };

/* ---- slots and completion ---- */

static void arm_timer(struct nbdc_conn *c);

static void assign_slot(struct nbdc_conn *c, struct nbdc_req *req)
{
	uint16_t s = c->free_slots[--c->nfree];
	uint32_t gen = ++c->slot_gen[s];

	c->slot_req[s] = req;
	req->slot = s;
	req->state = 0;
	req->done = 0;
	req->result = 0;
	req->next = NULL;
	nx_nbdc_req_encode(req, (uint64_t)gen << 16 | s);
	if (!c->inflight++)
		c->last_progress = nx_nbdc_now_ns();
	if (req->type == NBD_CMD_READ && req->len >= BIG_READ)
		c->big_reads++;
	if (c->sq_tail)
		c->sq_tail->next = req;
	else
		c->sq_head = req;
	c->sq_tail = req;
	arm_timer(c);
}

struct nbdc_req *nx_nbdc_lookup(struct nbdc_conn *c, uint64_t cookie)
{
	uint64_t s = cookie & 0xffff, gen = cookie >> 16;

	if (s >= NSLOTS || gen > UINT32_MAX || !c->slot_req[s] ||
	    c->slot_gen[s] != gen)
		return NULL;
	return c->slot_req[s];
}

static void kick(struct nbdc_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->sending || c->kick_pending || !c->sq_head || c->dead)
		return;
	sqe = get_sqe(c, &c->kick_ev);
	if (!sqe) {
		nx_nbdc_conn_fail(c, -EIO, "io_uring submission queue full");
		return;
	}
	io_uring_prep_nop(sqe);
	c->kick_pending = true;
}

void nx_nbdc_conn_queue(struct nbdc_conn *c, struct nbdc_req *req)
{
	req->conn = c;
	if (c->dead || c->draining || c->closing) {
		nx_nbdc_req_complete(c->d, req,
				     c->draining ? -ESHUTDOWN : -ENOTCONN);
		return;
	}
	if (!c->nfree) {
		req->next = NULL;
		if (c->wait_tail)
			c->wait_tail->next = req;
		else
			c->wait_head = req;
		c->wait_tail = req;
		return;
	}
	assign_slot(c, req);
	kick(c);
}

static void send_disc(struct nbdc_conn *c)
{
	struct nbdc_req disc;

	memset(&disc, 0, sizeof(disc));
	disc.type = NBD_CMD_DISC;
	nx_nbdc_req_encode(&disc, 0);
	/* best effort; nothing else is being sent */
	(void)!send(c->fd, disc.hdr, NBD_REQ_LEN, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* The server said ESHUTDOWN: disconnect softly once nothing is left. */
static void maybe_end_drain(struct nbdc_conn *c)
{
	if (!c->draining || c->dead || c->inflight || c->wait_head)
		return;
	send_disc(c);
	nx_nbdc_conn_fail(c, -ESHUTDOWN, "the server is shutting down (ESHUTDOWN); "
		  "disconnected");
}

/* Both the final reply arrived and the request left: release its slot,
 * continue a multi-step operation or deliver the result. */
static void finish(struct nbdc_conn *c, struct nbdc_req *req)
{
	int res = req->result;

	c->slot_req[req->slot] = NULL;
	c->free_slots[c->nfree++] = req->slot;
	c->inflight--;
	if (req->type == NBD_CMD_READ && req->len >= BIG_READ)
		c->big_reads--;
	if (res == 0 && req->off + req->len < req->end) {
		/* TRIM / WRITE_ZEROES longer than one request: next piece */
		uint64_t left = req->end - req->off - req->len;

		req->off += req->len;
		req->len = (uint32_t)(left < NBDC_MAX_PIECE ? left
							    : NBDC_MAX_PIECE);
		nx_nbdc_conn_queue(c, req);
	} else if (res == 0 && req->fua_flush) {
		/* FUA without server support: FLUSH after the write */
		req->fua_flush = false;
		req->type = NBD_CMD_FLUSH;
		req->cmd_flags = 0;
		req->off = req->end = 0;
		req->len = 0;
		nx_nbdc_conn_queue(c, req);
	} else {
		nx_nbdc_req_complete(c->d, req, res);
	}
	while (c->nfree && c->wait_head) {
		struct nbdc_req *w = c->wait_head;

		c->wait_head = w->next;
		if (!c->wait_head)
			c->wait_tail = NULL;
		assign_slot(c, w);
	}
	kick(c);
	maybe_end_drain(c);
}

void nx_nbdc_replied(struct nbdc_conn *c, struct nbdc_req *req, int res)
{
	req->state |= NBDC_R_REPLIED;
	if (res && !req->result)
		req->result = res;
	if (res == -ESHUTDOWN) {
		c->draining = true;
		atomic_store(&c->unusable, true);
	}
	if (req->state & NBDC_R_SENT)
		finish(c, req);
}

/* Fail every request once no SQE refers to their memory: with
 * -ETIMEDOUT when the server stopped answering (io-timeout), else -EIO. */
static void reap_dead(struct nbdc_conn *c)
{
	int res = c->err == -ETIMEDOUT ? -ETIMEDOUT : -EIO;

	if (!c->dead || c->sending || c->recving || c->kick_pending)
		return;
	c->cur = NULL;
	c->sq_head = c->sq_tail = NULL;
	for (unsigned s = 0; s < NSLOTS; s++) {
		struct nbdc_req *req = c->slot_req[s];

		if (!req)
			continue;
		c->slot_req[s] = NULL;
		c->free_slots[c->nfree++] = (uint16_t)s;
		c->inflight--;
		if (req->type == NBD_CMD_READ && req->len >= BIG_READ)
			c->big_reads--;
		nx_nbdc_req_complete(c->d, req, res);
	}
	while (c->wait_head) {
		struct nbdc_req *w = c->wait_head;

		c->wait_head = w->next;
		nx_nbdc_req_complete(c->d, w, res);
	}
	c->wait_tail = NULL;
}

void nx_nbdc_conn_fail(struct nbdc_conn *c, int err, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	c->dead = true;
	c->err = err;
	atomic_store(&c->unusable, true);
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	if (!c->closing) {
		nexus_log(c->d->ctx, err == -ESHUTDOWN ? NEXUS_LOG_WARN
						       : NEXUS_LOG_ERROR,
			  "nbd: %s: connection %u: %s", c->d->server, c->index,
			  c->why);
		nx_nbdc_conn_died(c->d, c->index, err, c->why);
	}
	shutdown(c->fd, SHUT_RDWR);
	reap_dead(c);
}

/* ---- sending ---- */

static unsigned nparts(const struct nbdc_req *req)
{
	return req->type == NBD_CMD_WRITE ? 1u + (unsigned)req->io->iovcnt : 1u;
}

static void part(const struct nbdc_req *req, unsigned k, uint8_t **base,
		 size_t *len)
{
	if (k == 0) {
		*base = (uint8_t *)req->hdr;
		*len = NBD_REQ_LEN;
	} else {
		*base = req->io->iov[k - 1].iov_base;
		*len = req->io->iov[k - 1].iov_len;
	}
}

static void send_event(struct nexus_cqe_handler *ev, int res, uint32_t flags);

static void start_send(struct nbdc_conn *c)
{
	struct nbdc_req *req = c->sq_head;
	unsigned k = c->cur_part, n = 0;
	size_t off = c->cur_off;
	struct io_uring_sqe *sqe;

	if (c->sending || !req || c->dead)
		return;
	while (req && n < SIOV_MAX) {
		unsigned np = nparts(req);

		for (; k < np && n < SIOV_MAX; k++, off = 0) {
			uint8_t *b;
			size_t l;

			part(req, k, &b, &l);
			if (l > off) {
				c->siov[n].iov_base = b + off;
				c->siov[n].iov_len = l - off;
				n++;
			}
		}
		if (k < np)
			break;
		req = req->next;
		k = 0;
	}
	if (n == 0) {
		/* only empty pieces left: account them as sent */
		send_event(&c->send_ev, 0, 0);
		return;
	}
	sqe = get_sqe(c, &c->send_ev);
	if (!sqe) {
		nx_nbdc_conn_fail(c, -EIO, "io_uring submission queue full");
		return;
	}
	memset(&c->smsg, 0, sizeof(c->smsg));
	c->smsg.msg_iov = c->siov;
	c->smsg.msg_iovlen = n;
	io_uring_prep_sendmsg(sqe, c->fd, &c->smsg, MSG_NOSIGNAL);
	c->sending = true;
}

/* Advance the send cursor by @p n bytes; requests fully sent leave. */
static void advance_send(struct nbdc_conn *c, size_t n)
{
	while (c->sq_head) {
		struct nbdc_req *req = c->sq_head;
		uint8_t *b;
		size_t l;

		part(req, c->cur_part, &b, &l);
		if (l - c->cur_off > n) {
			c->cur_off += n;
			return;
		}
		n -= l - c->cur_off;
		c->cur_off = 0;
		if (++c->cur_part < nparts(req))
			continue;
		c->cur_part = 0;
		c->sq_head = req->next;
		if (!c->sq_head)
			c->sq_tail = NULL;
		req->next = NULL;
		req->state |= NBDC_R_SENT;
		if (req->state & NBDC_R_REPLIED)
			finish(c, req);
	}
}

static void send_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nbdc_conn *c = nbdc_container_of(ev, struct nbdc_conn, send_ev);
	bool was_sending = c->sending;

	(void)flags;
	if (was_sending)
		put_sqe(c);
	c->sending = false;
	if (c->dead) {
		reap_dead(c);
		return;
	}
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		nx_nbdc_conn_fail(c, res, "send failed: %s", strerror(-res));
		return;
	}
	if (res == 0 && was_sending) {
		nx_nbdc_conn_fail(c, -EIO, "send made no progress");
		return;
	}
	if (res > 0)
		advance_send(c, (size_t)res);
	else if (!was_sending)
		advance_send(c, 0);
	start_send(c);
}

static void kick_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nbdc_conn *c = nbdc_container_of(ev, struct nbdc_conn, kick_ev);

	(void)res;
	(void)flags;
	put_sqe(c);
	c->kick_pending = false;
	if (c->dead) {
		reap_dead(c);
		return;
	}
	start_send(c);
}

/* ---- receiving ---- */

static void recv_event(struct nexus_cqe_handler *ev, int res, uint32_t flags);

static void start_recv(struct nbdc_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recving || c->dead)
		return;
	if (c->rstart == c->rend) {
		c->rstart = c->rend = 0;
	} else if (c->rstart && RBUF_SIZE - c->rend < 16384) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	sqe = get_sqe(c, &c->recv_ev);
	if (!sqe) {
		nx_nbdc_conn_fail(c, -EIO, "io_uring submission queue full");
		return;
	}
	c->direct = c->ps == P_DATA && c->rstart == c->rend &&
		    c->dleft >= DIRECT_MIN;
	if (c->direct) {
		/* the rest of the data straight into the caller's buffers */
		memset(&c->rmsg, 0, sizeof(c->rmsg));
		c->rmsg.msg_iov = c->diov;
		c->rmsg.msg_iovlen = (size_t)nx_nbdc_iov_slice(c->cur->io, c->dpos,
						       c->dleft, c->diov,
						       DIOV_MAX);
		io_uring_prep_recvmsg(sqe, c->fd, &c->rmsg, MSG_WAITALL);
	} else {
		/* While large reads are in flight, take little into the
		 * buffer: most of their data is then received in place
		 * instead of copied. */
		size_t room = RBUF_SIZE - c->rend;

		if (c->big_reads && room > RECV_SMALL)
			room = RECV_SMALL;
		io_uring_prep_recv(sqe, c->fd, c->rbuf + c->rend,
				   (unsigned)room, 0);
	}
	c->recving = true;
}

static void recv_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nbdc_conn *c = nbdc_container_of(ev, struct nbdc_conn, recv_ev);

	(void)flags;
	put_sqe(c);
	c->recving = false;
	if (c->dead) {
		reap_dead(c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		start_recv(c);
		return;
	}
	if (res <= 0) {
		if (c->closing)
			nx_nbdc_conn_fail(c, -ESHUTDOWN, "closed");
		else if (res == 0)
			nx_nbdc_conn_fail(c, -ECONNRESET, "the server closed the "
				  "connection");
		else
			nx_nbdc_conn_fail(c, res, "receive failed: %s", strerror(-res));
		return;
	}
	c->last_progress = nx_nbdc_now_ns();
	if (c->direct) {
		struct nbdc_req *req = c->cur;
		uint32_t n = (uint32_t)res;

		if (n > c->dleft) /* cannot happen: the iovec is that long */
			n = c->dleft;
		c->dpos += n;
		c->dleft -= n;
		req->done += n;
		if (c->dleft == 0 && nx_nbdc_chunk_end(c))
			return;
	} else {
		c->rend += (size_t)res;
	}
	if (nx_nbdc_parse(c))
		return;
	start_recv(c);
}

/* ---- timeout ---- */

static void timer_event(struct nexus_cqe_handler *ev, int res, uint32_t flags);

static void set_timer(struct nbdc_conn *c, uint64_t ns)
{
	struct io_uring_sqe *sqe = get_sqe(c, &c->timer_ev);

	if (!sqe)
		return; /* retried at the next request */
	c->ts.tv_sec = (long long)(ns / 1000000000ull);
	c->ts.tv_nsec = (long long)(ns % 1000000000ull);
	io_uring_prep_timeout(sqe, &c->ts, 0, 0);
	c->timer_armed = true;
}

static void arm_timer(struct nbdc_conn *c)
{
	if (!c->io_timeout_s || c->timer_armed || c->dead)
		return;
	set_timer(c, (uint64_t)c->io_timeout_s * 1000000000ull);
}

static void timer_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nbdc_conn *c = nbdc_container_of(ev, struct nbdc_conn, timer_ev);
	uint64_t limit = (uint64_t)c->io_timeout_s * 1000000000ull, idle;

	(void)res;
	(void)flags;
	put_sqe(c);
	c->timer_armed = false;
	if (c->dead || c->closing || !c->inflight)
		return;
	idle = nx_nbdc_now_ns() - c->last_progress;
	if (idle >= limit) {
		nx_nbdc_conn_fail(c, -ETIMEDOUT, "no reply for %u s with %u requests "
			  "in flight (io-timeout)", c->io_timeout_s,
			  c->inflight);
		return;
	}
	set_timer(c, limit - idle);
}

/* ---- life cycle ---- */

struct nbdc_conn *nx_nbdc_conn_new(struct nbdc_dev *d, int fd,
				   const struct nbdc_conn_opts *o)
{
	struct nbdc_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->rbuf = malloc(RBUF_SIZE);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	c->d = d;
	c->fd = fd;
	c->index = o->index;
	c->io_timeout_s = o->io_timeout_s;
	c->send_ev.fn = send_event;
	c->kick_ev.fn = kick_event;
	c->recv_ev.fn = recv_event;
	c->timer_ev.fn = timer_event;
	for (unsigned s = 0; s < NSLOTS; s++)
		c->free_slots[s] = (uint16_t)(NSLOTS - 1 - s);
	c->nfree = NSLOTS;
	atomic_init(&c->busy, 0);
	atomic_init(&c->unusable, true); /* until started */
	snprintf(c->why, sizeof(c->why), "not started");
	return c;
}

int nx_nbdc_conn_start(struct nbdc_conn *c, struct nexus_reactor *r)
{
	c->r = r;
	c->why[0] = '\0';
	atomic_store(&c->unusable, false);
	start_recv(c);
	if (c->dead)
		return nexus_error(-EIO, "nbd: %s: %s", c->d->server, c->why);
	return 0;
}

void nx_nbdc_conn_stop(struct nbdc_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->r)
		return;
	c->closing = true;
	atomic_store(&c->unusable, true);
	if (!c->dead)
		send_disc(c);
	if (c->timer_armed && (sqe = nexus_reactor_sqe(c->r, &noop_ev)))
		io_uring_prep_timeout_remove(sqe,
					     (uint64_t)(uintptr_t)&c->timer_ev,
					     0);
	nx_nbdc_conn_fail(c, -ESHUTDOWN, "closed");
}

void nx_nbdc_conn_free(struct nbdc_conn *c)
{
	if (!c)
		return;
	/* The reactor still has to see the completions of the SQEs that
	 * point into *c (shutdown() makes them complete promptly). */
	for (unsigned i = 0; atomic_load_explicit(&c->busy,
						  memory_order_acquire); i++) {
		struct timespec ts = { 0, 1000000 };

		if (i == 30000) {
			nexus_log(c->d->ctx, NEXUS_LOG_ERROR, "nbd: %s: "
				  "connection %u: I/O did not finish in 30 s; "
				  "leaking it", c->d->server, c->index);
			return;
		}
		nanosleep(&ts, NULL);
	}
	close(c->fd);
	free(c->rbuf);
	free(c);
}

bool nx_nbdc_conn_usable(const struct nbdc_conn *c)
{
	return !atomic_load_explicit(&c->unusable, memory_order_relaxed);
}

struct nexus_reactor *nx_nbdc_conn_reactor(const struct nbdc_conn *c)
{
	return c->r;
}

const char *nx_nbdc_conn_why(const struct nbdc_conn *c)
{
	return c->draining && !c->dead ? "the server is shutting down"
				       : c->why;
}
