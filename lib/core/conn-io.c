/* SPDX-License-Identifier: MIT */
/* A connection's receive and send paths (see conn.c for the rest).
 *
 * Receive: one recv at a time into the receive buffer, offered to the
 * protocol's recv callback; or, for a payload, straight into the
 * protocol's buffer (nexus_conn_recv_into) with MSG_WAITALL.  Paused
 * receiving arms nothing: the socket's own buffer pushes back on the
 * client.
 *
 * Send: nexus_conn_send() copies the iovec entries into the
 * connection's queue; everything queued while the reactor handles the
 * completions at hand goes out in one sendmsg (nx_reactor_flush runs
 * just before the reactor submits).  While a sendmsg is in flight new
 * entries queue behind it; its completion completes the senders whose
 * bytes are all out and starts the next sendmsg at once. */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "conn-int.h"

/* ---- receive ---- */

void nx_conn_arm_recv(struct nexus_conn *c)
{
	struct io_uring_sqe *sqe;
	void *p;
	size_t len;
	int fl = 0;

	if (c->recv_armed || c->closing || c->eof)
		return;
	if (c->rx_buf) {
		p = c->rx_buf + c->rx_have;
		len = c->rx_len - c->rx_have;
		fl = MSG_WAITALL;
	} else {
		if (c->paused || !c->setup)
			return;
		if (c->rstart == c->rend) {
			c->rstart = c->rend = 0;
		} else if (c->rstart) {
			memmove(c->rbuf, c->rbuf + c->rstart,
				c->rend - c->rstart);
			c->rend -= c->rstart;
			c->rstart = 0;
		}
		p = c->rbuf + c->rend;
		len = c->rcap - c->rend;
		if (!len) {
			nexus_conn_close(c, "receive buffer full");
			return;
		}
	}
	sqe = nexus_reactor_sqe(c->r, &c->recv_ev);
	if (!sqe) {
		nexus_conn_close(c, "io_uring submission queue full");
		return;
	}
	io_uring_prep_recv(sqe, c->fd, p, len, fl);
	c->recv_rx = c->rx_buf != NULL;
	c->recv_armed = true;
	c->inflight++;
}

/* Offer what is buffered to the protocol, report the end of the
 * stream, or receive more. */
static void deliver(struct nexus_conn *c)
{
	if (c->closing || !c->setup || c->rx_buf)
		return;
	if (!c->paused && c->rend > c->rstart)
		c->ops->recv(c, c->proto);
	if (c->closing || c->rx_buf || c->paused)
		goto out;
	if (c->eof) {
		if (c->eof_told)
			return;
		c->eof_told = true;
		if (c->ops->eof)
			c->ops->eof(c, c->proto, c->eof_err);
		else
			nexus_conn_close(c, NULL);
		return;
	}
out:
	nx_conn_arm_recv(c);
}

void nx_conn_recv_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nexus_conn *c = container_of(ev, struct nexus_conn, recv_ev);

	(void)flags;
	enter(c);
	c->inflight--;
	c->recv_armed = false;
	if (c->closing)
		goto out;
	if (res <= 0) {
		c->eof = true;
		c->eof_err = res == -ECONNRESET ? 0 : res;
		if (c->rx_buf) {
			void (*done)(struct nexus_conn *, void *, int) =
				c->rx_done;

			c->rx_buf = NULL;
			done(c, c->rx_arg, res < 0 ? res : -ECONNRESET);
		}
		deliver(c);
		goto out;
	}
	progress(c);
	if (c->recv_rx) {
		c->rx_have += (size_t)res;
	} else {
		c->rend += (size_t)res;
		if (c->rx_buf) {
			/* armed before the payload was asked for: its bytes
			 * went to the receive buffer */
			size_t n = c->rend - c->rstart;

			if (n > c->rx_len - c->rx_have)
				n = c->rx_len - c->rx_have;
			memcpy(c->rx_buf + c->rx_have, c->rbuf + c->rstart, n);
			c->rstart += n;
			c->rx_have += n;
		}
	}
	if (c->rx_buf && c->rx_have == c->rx_len) {
		c->rx_buf = NULL;
		c->rx_done(c, c->rx_arg, 0);
	}
	if (c->rx_buf)
		nx_conn_arm_recv(c);
	else
		deliver(c);
out:
	leave(c);
}

const uint8_t *nexus_conn_rdata(struct nexus_conn *c, size_t *len)
{
	*len = c->rend - c->rstart;
	return c->rbuf + c->rstart;
}

void nexus_conn_consume(struct nexus_conn *c, size_t n)
{
	if (n > c->rend - c->rstart)
		n = c->rend - c->rstart;
	c->rstart += n;
}

int nexus_conn_recv_into(struct nexus_conn *c, void *buf, size_t len,
			 void (*done)(struct nexus_conn *c, void *arg, int res),
			 void *arg)
{
	size_t n = c->rend - c->rstart;

	if (c->rx_buf)
		return -EBUSY;
	if (c->closing)
		return -ESHUTDOWN;
	if (n > len)
		n = len;
	memcpy(buf, c->rbuf + c->rstart, n);
	c->rstart += n;
	if (n == len)
		return 1;
	if (c->eof)
		return -ECONNRESET;
	c->rx_buf = buf;
	c->rx_len = len;
	c->rx_have = n;
	c->rx_done = done;
	c->rx_arg = arg;
	/* a recv into the receive buffer may be armed already: its bytes
	 * are taken as payload first (recv_event) */
	nx_conn_arm_recv(c);
	return 0;
}

void nexus_conn_recv_pause(struct nexus_conn *c, bool pause)
{
	if (c->paused == pause)
		return;
	c->paused = pause;
	if (!pause && !c->closing)
		soon(c, SOON_RECV);
}

/* ---- send ---- */

static void issue_send(struct nexus_conn *c)
{
	struct io_uring_sqe *sqe;
	unsigned n = c->iov_n < SEND_MAX_IOV ? c->iov_n : SEND_MAX_IOV;

	sqe = nexus_reactor_sqe(c->r, &c->send_ev);
	if (!sqe) {
		nexus_conn_close(c, "io_uring submission queue full");
		return;
	}
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = n;
	io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL | MSG_WAITALL);
	c->fly_iov = n;
	c->send_armed = true;
	c->inflight++;
}

int nexus_conn_send(struct nexus_conn *c, const struct iovec *iov, unsigned n,
		    void (*done)(void *arg, int res), void *arg)
{
	struct send_ent *e;

	if (c->closing)
		return -ESHUTDOWN;
	if (!n || c->iov_n + n > c->iov_cap || c->ent_n >= c->iov_cap)
		return -ENOBUFS;
	memcpy(c->iov + c->iov_n, iov, n * sizeof(*iov));
	c->iov_n += n;
	e = &c->ent[c->ent_n++];
	e->done = done;
	e->arg = arg;
	e->end = c->iov_n;
	if (!c->send_armed)
		soon(c, SOON_SEND);
	return 0;
}

/* Complete the senders whose bytes are all out: iovec entries
 * [0, upto).  Their callbacks may queue more sends: the queue is
 * compacted before any of them runs. */
static void send_retire(struct nexus_conn *c, unsigned upto)
{
	struct send_ent done[64];
	unsigned k = 0;

	while (k < c->ent_n && c->ent[k].end <= upto)
		k++;
	memmove(c->iov, c->iov + upto, (c->iov_n - upto) * sizeof(*c->iov));
	c->iov_n -= upto;
	for (unsigned i = k; i < c->ent_n; i++)
		c->ent[i].end -= upto;
	while (k) {
		unsigned m = k < 64 ? k : 64;

		memcpy(done, c->ent, m * sizeof(*done));
		memmove(c->ent, c->ent + m, (c->ent_n - m) * sizeof(*c->ent));
		c->ent_n -= m;
		k -= m;
		for (unsigned i = 0; i < m; i++)
			done[i].done(done[i].arg, 0);
	}
}

void nx_conn_send_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nexus_conn *c = container_of(ev, struct nexus_conn, send_ev);
	size_t left;
	unsigned i = 0;

	(void)flags;
	enter(c);
	c->inflight--;
	c->send_armed = false;
	if (res < 0 || c->closing) {
		nexus_conn_close(c, res < 0 && res != -EPIPE &&
					    res != -ECONNRESET
				    ? "send error" : NULL);
		soon(c, SOON_CANCEL); /* what this sendmsg carried, too */
		goto out;
	}
	progress(c);
	left = (size_t)res;
	while (i < c->fly_iov && left >= c->iov[i].iov_len)
		left -= c->iov[i++].iov_len;
	if (i < c->fly_iov) {
		/* short send: the rest of this entry goes next */
		c->iov[i].iov_base = (uint8_t *)c->iov[i].iov_base + left;
		c->iov[i].iov_len -= left;
	}
	c->fly_iov = 0;
	/* Senders' callbacks may queue sends: those wait for the flush,
	 * which sends them with whatever else this loop produces. */
	send_retire(c, i);
	if (!c->closing && c->iov_n)
		soon(c, SOON_SEND);
out:
	leave(c);
}

/* Complete everything that waits, on a closing connection. */
static void cancel_all(struct nexus_conn *c)
{
	if (c->slots)
		nx_slots_unwait(c->slots);
	if (c->rx_buf) {
		c->rx_buf = NULL;
		c->rx_done(c, c->rx_arg, -ECANCELED);
	}
	if (c->send_armed)
		return; /* its completion comes back here */
	while (c->ent_n) {
		struct send_ent e = c->ent[0];

		memmove(c->ent, c->ent + 1, (c->ent_n - 1) * sizeof(*c->ent));
		c->ent_n--;
		e.done(e.arg, -ECANCELED);
	}
	c->iov_n = 0;
}

void nx_conn_flush_fn(struct nx_flush *f)
{
	struct nexus_conn *c = container_of(f, struct nexus_conn, flush);
	unsigned what = c->soon;

	enter(c);
	c->inflight--;
	c->soon = 0;
	if (c->closing) {
		cancel_all(c);
	} else {
		if ((what & SOON_SEND) && !c->send_armed && c->iov_n)
			issue_send(c);
		if (what & SOON_READY && c->ops->ready)
			c->ops->ready(c, c->proto);
		if (what & SOON_RECV)
			deliver(c);
	}
	leave(c);
}

