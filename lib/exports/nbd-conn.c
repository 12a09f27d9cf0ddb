/* SPDX-License-Identifier: MIT */
/* NBD export: the connection data path.  Everything here runs on the
 * reactor that owns the connection, through its io_uring: accept (on the
 * listener's reactor), then recv, send/sendmsg, timeouts and the device
 * I/O of each request, run to completion without locks (nbd_lock is only
 * taken during the handshake and at connect/disconnect).
 *
 * Transmission: one recv at a time fills a receive buffer with request
 * headers; each header takes a request slot (per connection, allocated
 * once) and a payload buffer from the reactor's pool.  A write payload
 * that is not already in the receive buffer is received straight into
 * its pool buffer.  Requests run concurrently on the device and their
 * replies go out as they complete, batched: a reply queues, and once the
 * reactor has handled the completions at hand (nx_reactor_flush) one
 * sendmsg takes every queued reply, each as two entries (header, data)
 * of its iovec; while it is in flight, further replies wait for the
 * next one. */
#include "config.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <liburing.h>

#include "internal.h" /* nx_reactor_flush() */
#include "tcp.h"
#include "nbd-int.h"

/* Extents asked of the device per BLOCK_STATUS request. */
#define BS_MAX_EXTENTS 256

struct nbd_slot {
	struct nbd_slot *next;	/* free list / send queue */
	struct nbd_conn *c;
	void *buf;		/* pool buffer, or NULL */
	size_t bufcap;		/* length given to nexus_buf_alloc */
	struct iovec iov;
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
	uint16_t type;
	uint16_t flags;
	uint32_t datalen;	/* bytes of buf sent after the header */
	uint16_t hdrlen;
	uint8_t hdr[NBDS_REPLY_HDR_MAX];
};

enum { PHASE_HS = 0, PHASE_TX = 1 };

struct nbd_conn {
	struct nbd_conn *prev, *next;
	struct nbd_conn **list;		/* list head it is on */
	struct nbd_listener *lst;	/* during the handshake */
	struct nbd_export *ex;		/* once bound to an export */
	struct nexus_reactor *r;
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	int fd;
	int phase;
	char peer[64];
	struct nexus_cqe_handler recv_ev, send_ev, timer_ev, tdel_ev;
	struct nx_flush flush;	/* sends the queued replies */
	unsigned ops;		/* io_uring requests in flight */
	unsigned inflight;	/* device I/Os in flight */
	bool closing;		/* being torn down */
	bool draining;		/* no more requests: finish, then close */
	bool stopping;		/* export stopping: ESHUTDOWN */
	bool timer_armed;
	bool recv_armed;
	bool send_armed;
	bool paused;		/* out of slots/bytes: parsing waits */
	/* receive */
	uint8_t *rbuf;
	uint32_t rstart, rend;
	struct nbd_slot *rx;	/* write payload being received directly */
	uint32_t rx_have;
	uint64_t skip;		/* payload bytes to discard */
	/* handshake */
	struct nbds_hs *hs;
	struct nbds_out hout;
	size_t hout_sent;
	int hs_next;
	struct __kernel_timespec ts;
	/* transmission */
	struct nbds_tx tx;
	struct nbd_slot *slots;
	struct nbd_slot *free_slots;
	unsigned nslots;
	size_t held;		/* bytes of payload buffers held */
	struct nbd_slot *sq_head, *sq_tail; /* replies waiting to be sent */
	struct msghdr msg;
	unsigned sidx, scnt;
	struct iovec siov[NBD_SEND_IOV];
	struct nbd_slot *sown[NBD_SEND_IOV]; /* slot whose last entry it is */
	/* counters */
	uint64_t requests, errors, bytes_read, bytes_written;
};

static void conn_close(struct nbd_conn *c, const char *why);
static void tx_process(struct nbd_conn *c);
static void hs_process(struct nbd_conn *c);

/* ---- lists (reactor-local) ---- */

static void list_add(struct nbd_conn **head, struct nbd_conn *c)
{
	c->list = head;
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static void list_del(struct nbd_conn *c)
{
	if (!c->list)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		*c->list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->list = NULL;
	c->prev = c->next = NULL;
}

/* ---- teardown ---- */

static void slot_release_buf(struct nbd_conn *c, struct nbd_slot *s)
{
	if (s->buf) {
		nexus_buf_free(c->r, s->buf, s->bufcap);
		c->held -= s->bufcap;
		s->buf = NULL;
		s->bufcap = 0;
	}
}

static void slot_put(struct nbd_conn *c, struct nbd_slot *s)
{
	slot_release_buf(c, s);
	s->next = c->free_slots;
	c->free_slots = s;
}

/* Free the connection once nothing refers to it any more.  Only called
 * at the end of an entry point (event handler, completion, message):
 * everything else may still use the connection after conn_close(). */
static void maybe_free(struct nbd_conn *c)
{
	struct nbd_listener *l = c->lst;
	struct nbd_export *ex = c->ex;

	if (!c->closing || c->ops || c->inflight)
		return;
	if (c->fd >= 0)
		close(c->fd);
	for (unsigned i = 0; i < c->nslots; i++)
		slot_release_buf(c, &c->slots[i]);
	list_del(c);
	pthread_mutex_lock(&nbd_lock);
	if (ex) {
		ex->nconns--;
		if (!ex->nconns)
			pthread_cond_broadcast(&nbd_cond);
	} else if (l) {
		l->nconns--;
		if (!l->nconns)
			pthread_cond_broadcast(&nbd_cond);
	}
	pthread_mutex_unlock(&nbd_lock);
	free(c->slots);
	free(c->rbuf);
	free(c->hs);
	nbds_out_free(&c->hout);
	free(c);
}

/* Remove the handshake timer if it is armed; the removal's CQE counts
 * in c->ops like the timer's. */
static void timer_cancel(struct nbd_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->timer_armed)
		return;
	sqe = nexus_reactor_sqe(c->r, &c->tdel_ev);
	if (sqe) {
		io_uring_prep_timeout_remove(sqe,
					     (uint64_t)(uintptr_t)&c->timer_ev,
					     0);
		c->ops++;
	}
}

static void conn_close(struct nbd_conn *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = true;
	if (why)
		nexus_log(c->ctx, NEXUS_LOG_INFO, "nbd: closing connection "
			  "from %s: %s", c->peer, why);
	/* ends the recv and send in flight */
	shutdown(c->fd, SHUT_RDWR);
	timer_cancel(c);
	/* freed by the event handler that called us, at its end */
}

/* The connection is draining: close it once all is answered. */
static void check_drained(struct nbd_conn *c)
{
	if (c->draining && !c->closing && !c->inflight && !c->sq_head &&
	    !c->send_armed && !c->rx)
		conn_close(c, NULL);
}

/* ---- io_uring plumbing ---- */

static void arm_recv(struct nbd_conn *c)
{
	struct io_uring_sqe *sqe;
	void *p;
	size_t len;
	int flags = 0;

	if (c->recv_armed || c->closing)
		return;
	if (c->rx) {
		p = (uint8_t *)c->rx->buf + c->rx_have;
		len = c->rx->length - c->rx_have;
		flags = MSG_WAITALL;
	} else {
		if (c->rstart == c->rend) {
			c->rstart = c->rend = 0;
		} else if (c->rstart) {
			memmove(c->rbuf, c->rbuf + c->rstart,
				c->rend - c->rstart);
			c->rend -= c->rstart;
			c->rstart = 0;
		}
		p = c->rbuf + c->rend;
		len = NBD_RBUF_SIZE - c->rend;
		if (!len) {
			conn_close(c, "receive buffer full");
			return;
		}
	}
	sqe = nexus_reactor_sqe(c->r, &c->recv_ev);
	if (!sqe) {
		conn_close(c, "io_uring submission queue full");
		return;
	}
	io_uring_prep_recv(sqe, c->fd, p, len, flags);
	c->recv_armed = true;
	c->ops++;
}

static void issue_send(struct nbd_conn *c)
{
	struct io_uring_sqe *sqe = nexus_reactor_sqe(c->r, &c->send_ev);

	if (!sqe) {
		conn_close(c, "io_uring submission queue full");
		return;
	}
	if (c->phase == PHASE_HS) {
		io_uring_prep_send(sqe, c->fd, c->hout.data + c->hout_sent,
				   c->hout.len - c->hout_sent, MSG_NOSIGNAL);
	} else {
		c->msg.msg_iov = c->siov + c->sidx;
		c->msg.msg_iovlen = c->scnt - c->sidx;
		io_uring_prep_sendmsg(sqe, c->fd, &c->msg,
				      MSG_NOSIGNAL | MSG_WAITALL);
	}
	c->send_armed = true;
	c->ops++;
}

/* Send queued replies: as many as fit in one sendmsg. */
static void start_send(struct nbd_conn *c)
{
	unsigned n = 0;

	if (c->send_armed || c->closing)
		return;
	while (c->sq_head && n + 2 <= NBD_SEND_IOV) {
		struct nbd_slot *s = c->sq_head;

		c->sq_head = s->next;
		if (!c->sq_head)
			c->sq_tail = NULL;
		c->siov[n].iov_base = s->hdr;
		c->siov[n].iov_len = s->hdrlen;
		c->sown[n++] = NULL;
		if (s->datalen) {
			c->siov[n].iov_base = s->buf;
			c->siov[n].iov_len = s->datalen;
			c->sown[n++] = NULL;
		}
		c->sown[n - 1] = s;
	}
	if (!n)
		return;
	c->sidx = 0;
	c->scnt = n;
	issue_send(c);
}

static void flush_fn(struct nx_flush *f)
{
	struct nbd_conn *c = container_of(f, struct nbd_conn, flush);

	c->ops--;
	start_send(c);
	maybe_free(c);
}

/* Send the queued replies once the completions at hand are handled. */
static void kick_send(struct nbd_conn *c)
{
	if (c->send_armed || c->flush.queued || !c->sq_head || c->closing)
		return;
	c->ops++; /* the connection stays until flush_fn ran */
	nx_reactor_flush(c->r, &c->flush);
}

static void enqueue(struct nbd_conn *c, struct nbd_slot *s)
{
	s->next = NULL;
	if (c->sq_tail)
		c->sq_tail->next = s;
	else
		c->sq_head = s;
	c->sq_tail = s;
	kick_send(c);
}

/* Parsing stopped for lack of slots or buffer space: resume it. */
static void maybe_resume(struct nbd_conn *c)
{
	if (c->paused && c->free_slots && !c->closing) {
		c->paused = false;
		tx_process(c);
	}
}

/* ---- replies ---- */

static void reply_ok(struct nbd_conn *c, struct nbd_slot *s)
{
	s->hdrlen = (uint16_t)nbds_simple_reply(s->hdr, s->cookie, 0);
	s->datalen = 0;
	enqueue(c, s);
}

static void reply_err(struct nbd_conn *c, struct nbd_slot *s, uint32_t err,
		      const char *msg)
{
	c->errors++;
	slot_release_buf(c, s);
	s->datalen = 0;
	if (c->tx.structured)
		s->hdrlen = (uint16_t)nbds_error_chunk(s->hdr, sizeof(s->hdr),
						       s->cookie, err, msg);
	else
		s->hdrlen = (uint16_t)nbds_simple_reply(s->hdr, s->cookie,
							err);
	enqueue(c, s);
}

static void reply_read(struct nbd_conn *c, struct nbd_slot *s)
{
	if (c->tx.structured)
		s->hdrlen = (uint16_t)nbds_data_chunk(s->hdr, s->cookie,
						      s->offset, s->length);
	else
		s->hdrlen = (uint16_t)nbds_simple_reply(s->hdr, s->cookie, 0);
	s->datalen = s->length;
	enqueue(c, s);
}

/* ---- device I/O ---- */

static void dev_done(void *ud, int res)
{
	struct nbd_slot *s = ud;
	struct nbd_conn *c = s->c;

	c->inflight--;
	if (c->closing) {
		slot_put(c, s);
		maybe_free(c);
		return;
	}
	if (res < 0) {
		reply_err(c, s, nbds_errno(res), strerror(-res));
	} else if (s->type == NBD_CMD_READ) {
		c->bytes_read += s->length;
		reply_read(c, s);
	} else {
		if (s->type == NBD_CMD_WRITE) {
			c->bytes_written += s->length;
			slot_release_buf(c, s);
		}
		reply_ok(c, s);
	}
	check_drained(c);
	maybe_free(c);
}

static void submit(struct nbd_conn *c, struct nbd_slot *s, int op,
		   uint32_t flags)
{
	const struct iovec *iov = NULL;
	int rc;

	if (op == NEXUS_OP_READ || op == NEXUS_OP_WRITE) {
		s->iov.iov_base = s->buf;
		s->iov.iov_len = s->length;
		iov = &s->iov;
	}
	rc = nx_submit(c->dev, op, iov, iov ? 1 : 0, s->offset,
			      s->length, flags, dev_done, s);
	if (rc < 0) {
		reply_err(c, s, nbds_errno(rc), strerror(-rc));
		return;
	}
	c->inflight++;
}

static void block_status(struct nbd_conn *c, struct nbd_slot *s)
{
	struct nexus_extent ext[BS_MAX_EXTENTS];
	bool one = s->flags & NBD_CMD_FLAG_REQ_ONE;
	uint32_t n = 0;
	uint8_t *d;
	int rc;

	rc = nexus_dev_block_status(c->dev, s->offset, s->length, ext,
				    one ? 1 : BS_MAX_EXTENTS);
	if (rc == -EINVAL || rc == -ESHUTDOWN) {
		reply_err(c, s, nbds_errno(rc), "block status failed");
		return;
	}
	if (rc <= 0) {
		/* The device cannot tell from here (a source whose block
		 * status is synchronous over the network refuses to block a
		 * reactor): report data, as the protocol allows. */
		ext[0].offset = s->offset;
		ext[0].length = s->length;
		ext[0].flags = 0;
		rc = 1;
	}
	s->bufcap = (size_t)rc * 8;
	s->buf = nexus_buf_alloc(c->r, s->bufcap);
	if (!s->buf) {
		s->bufcap = 0;
		reply_err(c, s, NBD_ENOMEM, "out of memory");
		return;
	}
	c->held += s->bufcap;
	d = s->buf;
	for (int i = 0; i < rc; i++) {
		uint32_t f = 0;
		uint64_t len = ext[i].length;

		if (ext[i].flags & NEXUS_EXTENT_HOLE)
			f |= NBD_STATE_HOLE;
		if (ext[i].flags & NEXUS_EXTENT_ZERO)
			f |= NBD_STATE_ZERO;
		if (len > UINT32_MAX)
			len = UINT32_MAX & ~(uint64_t)(c->tx.min_block - 1);
		if (!len)
			break;
		if (n && nbds_get32(d + 8 * (n - 1) + 4) == f) {
			uint64_t sum = nbds_get32(d + 8 * (n - 1)) + len;

			if (sum <= UINT32_MAX) {
				nbds_put32(d + 8 * (n - 1), (uint32_t)sum);
				continue;
			}
		}
		nbds_put32(d + 8 * n, (uint32_t)len);
		nbds_put32(d + 8 * n + 4, f);
		n++;
	}
	s->hdrlen = (uint16_t)nbds_bs_chunk(s->hdr, s->cookie,
					    NBDS_META_ALLOCATION_ID, n);
	s->datalen = 8 * n;
	enqueue(c, s);
}

static void submit_write(struct nbd_conn *c, struct nbd_slot *s)
{
	submit(c, s, NEXUS_OP_WRITE,
	       (s->flags & NBD_CMD_FLAG_FUA) ? NEXUS_IO_FUA : 0);
}

/* Start a valid request.  A write may leave its payload to be received
 * directly (c->rx). */
static void dispatch(struct nbd_conn *c, struct nbd_slot *s)
{
	uint32_t fl = 0, n;

	if (s->flags & NBD_CMD_FLAG_FUA)
		fl |= NEXUS_IO_FUA;
	switch (s->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		s->bufcap = s->length;
		s->buf = nexus_buf_alloc(c->r, s->bufcap);
		if (!s->buf) {
			s->bufcap = 0;
			if (s->type == NBD_CMD_WRITE)
				c->skip = s->length;
			reply_err(c, s, NBD_ENOMEM, "out of memory");
			return;
		}
		c->held += s->bufcap;
		if (s->type == NBD_CMD_READ) {
			submit(c, s, NEXUS_OP_READ, 0);
			return;
		}
		n = c->rend - c->rstart;
		if (n > s->length)
			n = s->length;
		memcpy(s->buf, c->rbuf + c->rstart, n);
		c->rstart += n;
		if (n < s->length) {
			c->rx = s;
			c->rx_have = n;
			return;
		}
		submit_write(c, s);
		return;
	case NBD_CMD_FLUSH:
		submit(c, s, NEXUS_OP_FLUSH, 0);
		return;
	case NBD_CMD_TRIM:
		submit(c, s, NEXUS_OP_TRIM, fl);
		return;
	case NBD_CMD_WRITE_ZEROES:
		if (s->flags & NBD_CMD_FLAG_NO_HOLE)
			fl |= NEXUS_IO_NO_UNMAP;
		if (s->flags & NBD_CMD_FLAG_FAST_ZERO)
			fl |= NEXUS_IO_FAST_ZERO;
		submit(c, s, NEXUS_OP_WRITE_ZEROES, fl);
		return;
	case NBD_CMD_BLOCK_STATUS:
		block_status(c, s);
		return;
	default: /* nbds_req_check() let nothing else through */
		reply_err(c, s, NBD_EINVAL, "unknown command");
		return;
	}
}

/* ---- transmission ---- */

static void tx_process(struct nbd_conn *c)
{
	while (!c->closing && !c->rx) {
		uint32_t avail = c->rend - c->rstart, err, payload;
		struct nbds_req r;
		struct nbd_slot *s;
		const char *why;
		size_t need;
		int v;

		if (c->skip) {
			uint32_t n = avail < c->skip ? avail : (uint32_t)c->skip;

			c->rstart += n;
			c->skip -= n;
			if (c->skip)
				break;
			continue;
		}
		if (c->draining && !c->stopping)
			break;
		if (avail < NBDS_REQ_LEN)
			break;
		if (!nbds_req_decode(c->rbuf + c->rstart, &r)) {
			conn_close(c, "bad request magic");
			return;
		}
		v = nbds_req_check(&c->tx, &r, &err, &payload, &why);
		if (v == NBDS_REQ_FATAL) {
			conn_close(c, why);
			return;
		}
		if (v == NBDS_REQ_DISC) {
			c->rstart += NBDS_REQ_LEN;
			c->draining = true;
			break;
		}
		need = v == NBDS_REQ_OK && (r.type == NBD_CMD_READ ||
					    r.type == NBD_CMD_WRITE)
			       ? r.length : 0;
		if (!c->free_slots ||
		    (need && c->held && c->held + need > NBD_CONN_BYTES)) {
			c->paused = true;
			break;
		}
		c->rstart += NBDS_REQ_LEN;
		s = c->free_slots;
		c->free_slots = s->next;
		s->type = r.type;
		s->flags = r.flags;
		s->cookie = r.cookie;
		s->offset = r.offset;
		s->length = r.length;
		s->buf = NULL;
		s->bufcap = 0;
		c->requests++;
		if (c->stopping && v == NBDS_REQ_OK) {
			v = NBDS_REQ_ERROR;
			err = NBD_ESHUTDOWN;
			why = "server is shutting down";
		}
		if (v == NBDS_REQ_ERROR) {
			c->skip = payload;
			reply_err(c, s, err, why);
			continue;
		}
		dispatch(c, s);
	}
	if (!c->closing && !c->paused && !c->draining)
		arm_recv(c);
	check_drained(c);
}

static void recv_handle(struct nbd_conn *c, int res)
{
	c->ops--;
	c->recv_armed = false;
	if (c->closing)
		return;
	if (res <= 0) {
		if (c->phase == PHASE_HS) {
			conn_close(c, res ? "receive error during handshake"
					  : "client disconnected during "
					    "handshake");
		} else if (c->rx) {
			conn_close(c, "client disconnected in the middle of "
				      "a write payload");
		} else if (res < 0 && res != -ECONNRESET) {
			conn_close(c, "receive error");
		} else {
			/* end of requests: answer what is in flight */
			c->draining = true;
			tx_process(c);
		}
		return;
	}
	if (c->phase == PHASE_HS) {
		c->rend += (uint32_t)res;
		hs_process(c);
		return;
	}
	if (c->rx) {
		struct nbd_slot *s = c->rx;

		c->rx_have += (uint32_t)res;
		if (c->rx_have < s->length) {
			arm_recv(c);
			return;
		}
		c->rx = NULL;
		submit_write(c, s);
	} else {
		c->rend += (uint32_t)res;
	}
	tx_process(c);
}

static void send_handle(struct nbd_conn *c, int res)
{
	size_t left;

	c->ops--;
	if (c->phase == PHASE_HS) {
		c->send_armed = false;
		if (c->closing)
			return;
		if (res <= 0) {
			conn_close(c, "send error during handshake");
			return;
		}
		c->hout_sent += (size_t)res;
		if (c->hout_sent < c->hout.len) {
			issue_send(c);
			return;
		}
		nbds_out_reset(&c->hout);
		c->hout_sent = 0;
		hs_process(c);
		return;
	}
	if (res < 0 || c->closing) {
		/* the slots of this send go back; the rest at free */
		for (unsigned i = c->sidx; i < c->scnt; i++)
			if (c->sown[i])
				slot_put(c, c->sown[i]);
		c->sidx = c->scnt = 0;
		c->send_armed = false;
		conn_close(c, "send error (client gone)");
		return;
	}
	left = (size_t)res;
	while (c->sidx < c->scnt && left >= c->siov[c->sidx].iov_len) {
		left -= c->siov[c->sidx].iov_len;
		if (c->sown[c->sidx])
			slot_put(c, c->sown[c->sidx]);
		c->sidx++;
	}
	if (c->sidx < c->scnt) {
		/* short send: go on from where it stopped */
		c->siov[c->sidx].iov_base =
			(uint8_t *)c->siov[c->sidx].iov_base + left;
		c->siov[c->sidx].iov_len -= left;
		issue_send(c);
		return;
	}
	c->send_armed = false;
	kick_send(c);
	maybe_resume(c);
	check_drained(c);
}

/* The socket's event handlers, entry points: handle the CQE, then free
 * the connection if that dropped the last reference to it. */
#define SOCK_EVENT(fn, member, handle)                                  \
	static void fn(struct nexus_cqe_handler *ev, int res, uint32_t flags) \
	{                                                               \
		struct nbd_conn *c =                                    \
			container_of(ev, struct nbd_conn, member);      \
		(void)flags;                                            \
		handle(c, res);                                         \
		maybe_free(c);                                          \
	}
SOCK_EVENT(recv_event, recv_ev, recv_handle)
SOCK_EVENT(send_event, send_ev, send_handle)
#undef SOCK_EVENT

/* ---- handshake ---- */

static bool cat_find(void *ud, const char *name, size_t len,
		     struct nbds_export *out)
{
	struct nbd_listener *l = ud;

	for (struct nbd_export *e = l->exports; e; e = e->next) {
		if (strlen(e->name) == len && !memcmp(e->name, name, len)) {
			*out = e->desc;
			return true;
		}
	}
	return false;
}

static bool cat_get(void *ud, unsigned i, struct nbds_export *out)
{
	struct nbd_listener *l = ud;

	for (struct nbd_export *e = l->exports; e; e = e->next, i--) {
		if (!i) {
			*out = e->desc;
			return true;
		}
	}
	return false;
}

static void timer_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nbd_conn *c = container_of(ev, struct nbd_conn, timer_ev);

	(void)flags;
	c->ops--;
	c->timer_armed = false;
	if (res == -ETIME && c->phase == PHASE_HS && !c->closing)
		conn_close(c, "handshake timed out");
	maybe_free(c);
}

static void tdel_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nbd_conn *c = container_of(ev, struct nbd_conn, tdel_ev);

	(void)res;
	(void)flags;
	c->ops--;
	maybe_free(c);
}

static void enter_tx(struct nbd_conn *c)
{
	struct nbd_export *ex = c->ex;
	struct nbds_hs *hs = c->hs;

	c->phase = PHASE_TX;
	c->dev = ex->dev;
	nx_tcp_congestion(c->fd, ex->congestion);
	c->tx.size = hs->chosen.size;
	c->tx.tflags = hs->tflags;
	c->tx.min_block = hs->chosen.min_block;
	c->tx.max_payload = hs->chosen.max_payload;
	c->tx.structured = hs->structured;
	c->tx.block_status = hs->block_status;
	free(c->hs);
	c->hs = NULL;
	nbds_out_free(&c->hout);
	timer_cancel(c);
	c->nslots = ex->max_inflight;
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	if (!c->slots) {
		c->nslots = 0;
		conn_close(c, "out of memory");
		return;
	}
	for (unsigned i = c->nslots; i-- > 0;) {
		c->slots[i].c = c;
		c->slots[i].next = c->free_slots;
		c->free_slots = &c->slots[i];
	}
	nexus_log(c->ctx, NEXUS_LOG_DEBUG, "nbd: %s connected to export '%s'",
		  c->peer, ex->name);
	tx_process(c);
}

static void hs_process(struct nbd_conn *c)
{
	struct nbds_catalog cat = { cat_find, cat_get, c->lst };
	struct nbd_export *ex;
	size_t used = 0;
	int rc;

	if (c->closing || c->send_armed)
		return;
	if (c->hs_next != NBDS_HS_MORE) {
		/* the replies of the final option are out */
		if (c->hs_next == NBDS_HS_GO)
			enter_tx(c);
		else
			conn_close(c, c->hs->why);
		return;
	}
	pthread_mutex_lock(&nbd_lock);
	rc = nbds_hs_feed(c->hs, &cat, c->rbuf + c->rstart,
			  c->rend - c->rstart, &used, &c->hout);
	c->rstart += (uint32_t)used;
	if (rc == NBDS_HS_GO) {
		/* bind to the export while it cannot go away */
		ex = c->hs->chosen.opaque;
		ex->nconns++;
		c->lst->nconns--;
		if (!c->lst->nconns)
			pthread_cond_broadcast(&nbd_cond);
		c->lst = NULL;
		c->ex = ex;
		c->ctx = ex->ctx;
		list_del(c);
		list_add(&ex->rconns[nexus_reactor_index(c->r)], c);
	}
	pthread_mutex_unlock(&nbd_lock);
	c->hs_next = rc;
	if (c->hout.len) {
		issue_send(c);
		return;
	}
	if (rc == NBDS_HS_MORE)
		arm_recv(c);
	else
		hs_process(c);
}

static void conn_start_(struct nbd_conn *c)
{
	struct nbd_listener *l = c->lst;
	uint8_t greeting[NBDS_GREETING_LEN];
	struct io_uring_sqe *sqe;
	bool closing;

	c->r = nexus_reactor_current();
	pthread_mutex_lock(&nbd_lock);
	closing = l->closing;
	if (!closing)
		list_add(&l->hsconns[nexus_reactor_index(c->r)], c);
	pthread_mutex_unlock(&nbd_lock);
	c->rbuf = malloc(NBD_RBUF_SIZE);
	c->hs = malloc(sizeof(*c->hs));
	if (closing || !c->rbuf || !c->hs) {
		c->closing = true;
		return;
	}
	nbds_hs_init(c->hs);
	nbds_greeting(greeting);
	nbds_out_put(&c->hout, greeting, sizeof(greeting));
	if (c->hout.failed) {
		conn_close(c, "out of memory");
		return;
	}
	if (l->hs_timeout_ms) {
		c->ts.tv_sec = (long long)(l->hs_timeout_ms / 1000);
		c->ts.tv_nsec = (long long)(l->hs_timeout_ms % 1000) * 1000000;
		sqe = nexus_reactor_sqe(c->r, &c->timer_ev);
		if (sqe) {
			io_uring_prep_timeout(sqe, &c->ts, 0, 0);
			c->timer_armed = true;
			c->ops++;
		}
	}
	c->hs_next = NBDS_HS_MORE;
	issue_send(c);
}

/* Runs on the connection's reactor. */
static void conn_start(void *arg)
{
	struct nbd_conn *c = arg;

	conn_start_(c);
	maybe_free(c);
}

static void peer_name(struct nbd_conn *c, bool tcp)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	unsigned port = 0;
	const void *a = NULL;

	snprintf(c->peer, sizeof(c->peer), "unix");
	if (!tcp || getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		a = &in->sin_addr;
		port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		a = &in6->sin6_addr;
		port = ntohs(in6->sin6_port);
	}
	if (a && inet_ntop(ss.ss_family, a, host, sizeof(host)))
		snprintf(c->peer, sizeof(c->peer),
			 ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
			 port);
}

/* A new client on listener l (on the listener's reactor). */
static void new_conn(struct nbd_listener *l, int fd)
{
	unsigned n = (unsigned)nexus_ctx_reactor_count(l->ctx);
	struct nexus_reactor *r;
	struct nbd_conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	pthread_mutex_lock(&nbd_lock);
	if (l->closing || !c) {
		pthread_mutex_unlock(&nbd_lock);
		free(c);
		close(fd);
		return;
	}
	l->nconns++;
	pthread_mutex_unlock(&nbd_lock);
	c->fd = fd;
	c->lst = l;
	c->ctx = l->ctx;
	c->recv_ev.fn = recv_event;
	c->send_ev.fn = send_event;
	c->timer_ev.fn = timer_event;
	c->tdel_ev.fn = tdel_event;
	c->flush.fn = flush_fn;
	if (l->tcp)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer_name(c, l->tcp);
	nexus_log(l->ctx, NEXUS_LOG_DEBUG, "nbd: connection from %s on %s",
		  c->peer, l->addr_text);
	r = nexus_ctx_reactor(l->ctx, l->rr++ % (n ? n : 1));
	if (r == l->r) {
		conn_start(c);
	} else if (nexus_reactor_post(r, conn_start, c) < 0) {
		c->closing = true;
		maybe_free(c);
	}
}

static void retry_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nbd_listener *l = container_of(ev, struct nbd_listener,
					      retry_ev);
	bool closing;

	(void)res;
	(void)flags;
	pthread_mutex_lock(&nbd_lock);
	closing = l->closing;
	pthread_mutex_unlock(&nbd_lock);
	if (closing || nbd_listener_arm(l) < 0) {
		pthread_mutex_lock(&nbd_lock);
		l->accepting = false;
		pthread_cond_broadcast(&nbd_cond);
		pthread_mutex_unlock(&nbd_lock);
	}
}

void nbd_listener_accept_event(struct nexus_cqe_handler *ev, int res,
			       uint32_t flags)
{
	struct nbd_listener *l = container_of(ev, struct nbd_listener,
					      accept_ev);
	struct io_uring_sqe *sqe;
	bool closing;

	if (res >= 0)
		new_conn(l, res);
	if (flags & IORING_CQE_F_MORE)
		return;
	pthread_mutex_lock(&nbd_lock);
	closing = l->closing;
	pthread_mutex_unlock(&nbd_lock);
	if (!closing) {
		if (res >= 0 && nbd_listener_arm(l) == 0)
			return;
		/* EMFILE and the like: try again a little later */
		if (res < 0)
			nexus_log(l->ctx, NEXUS_LOG_WARN, "nbd: accept on %s: "
				  "%s", l->addr_text, strerror(-res));
		l->retry_ev.fn = retry_event;
		l->retry_ts.tv_sec = 0;
		l->retry_ts.tv_nsec = 100 * 1000 * 1000;
		sqe = nexus_reactor_sqe(l->r, &l->retry_ev);
		if (sqe) {
			io_uring_prep_timeout(sqe, &l->retry_ts, 0, 0);
			return;
		}
	}
	pthread_mutex_lock(&nbd_lock);
	l->accepting = false;
	pthread_cond_broadcast(&nbd_cond);
	pthread_mutex_unlock(&nbd_lock);
}

int nbd_listener_arm(struct nbd_listener *l)
{
	struct io_uring_sqe *sqe = nexus_reactor_sqe(l->r, &l->accept_ev);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	return 0;
}

/* ---- stop and listing (run on reactor ridx) ---- */

void nbd_conns_stop(struct nbd_export *ex, unsigned ridx, bool force)
{
	struct nbd_conn *c = ex->rconns[ridx], *next;

	for (; c; c = next) {
		next = c->next;
		if (force || c->phase == PHASE_HS) {
			conn_close(c, force ? "export stopped" : NULL);
		} else if (!c->stopping) {
			/* no new requests: the pending recv ends, what is
			 * already received is answered with ESHUTDOWN, then
			 * we close */
			c->stopping = true;
			shutdown(c->fd, SHUT_RD);
			if (!c->recv_armed) {
				c->draining = true;
				tx_process(c);
			}
		}
		maybe_free(c);
	}
}

void nbd_hsconns_abort(struct nbd_listener *l, unsigned ridx)
{
	struct nbd_conn *c = l->hsconns[ridx], *next;

	for (; c; c = next) {
		next = c->next;
		conn_close(c, "listener closed");
		maybe_free(c);
	}
}

unsigned nbd_conns_info(struct nbd_export *ex, unsigned ridx,
			struct nexus_conn_info *out, unsigned max,
			unsigned have)
{
	size_t stride = max ? out->size : 0;
	unsigned n = 0;

	for (struct nbd_conn *c = ex->rconns[ridx]; c; c = c->next, n++) {
		struct nexus_conn_info ci;
		struct nexus_conn_info *o;
		size_t sz;

		if (have + n >= max)
			continue;
		/* the caller's array: its elements are `size` bytes apart */
		o = (void *)((char *)out + (size_t)(have + n) * stride);
		memset(&ci, 0, sizeof(ci));
		ci.size = sizeof(ci);
		snprintf(ci.peer, sizeof(ci.peer), "%s", c->peer);
		snprintf(ci.export_name, sizeof(ci.export_name), "%s",
			 ex->name);
		ci.reactor = ridx;
		ci.requests = c->requests;
		ci.errors = c->errors;
		ci.bytes_read = c->bytes_read;
		ci.bytes_written = c->bytes_written;
		sz = stride;
		if (sz > sizeof(ci)) {
			memset((char *)o + sizeof(ci), 0, sz - sizeof(ci));
			sz = sizeof(ci);
		}
		memcpy((char *)o + sizeof(size_t),
		       (char *)&ci + sizeof(size_t), sz - sizeof(size_t));
	}
	return n;
}
