/* SPDX-License-Identifier: MIT */
/* A server connection, owned by one reactor: everything here runs on
 * that reactor without locks (only group membership takes the group's
 * lock, at start, move and free).
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
 * bytes are all out and starts the next sendmsg at once.
 *
 * Lifetime: references (protocol), io_uring requests in flight and
 * running entry points (depth) keep the connection; once closing and
 * all three are zero, the closed callback runs and it is freed. */
#include "config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "conn.h"
#include "util.h"

/* Entries of one sendmsg at most (the kernel's UIO_MAXIOV). */
#define SEND_MAX_IOV 1024

struct send_ent {
	void (*done)(void *arg, int res);
	void *arg;
	unsigned end; /* index after its last iovec entry */
};

/* What the flush callback has to do. */
enum {
	SOON_SEND = 1u << 0,	/* start a sendmsg */
	SOON_RECV = 1u << 1,	/* offer buffered bytes to recv() */
	SOON_READY = 1u << 2,	/* call ready() */
	SOON_CANCEL = 1u << 3,	/* complete what waits with -ECANCELED */
};

struct nexus_conn {
	struct nexus_reactor *r;
	struct nexus_ctx *ctx;
	struct nexus_listener *lst;
	int fd;
	bool tcp;
	char peer[72];
	const struct nexus_conn_ops *ops;
	void *proto;
	/* lifetime */
	unsigned refs;
	unsigned inflight; /* io_uring requests and a queued flush */
	unsigned depth;	   /* entry points running */
	bool closing;
	bool setup;
	struct nexus_slots *slots; /* waits for budget end at close */
	/* group */
	struct nexus_conn_group *g;
	struct nexus_conn *gprev, *gnext;
	bool listed;
	/* deferred work */
	struct nx_flush flush;
	unsigned soon;
	/* receive */
	struct nexus_cqe_handler recv_ev;
	uint8_t *rbuf;
	size_t rcap, rstart, rend;
	bool paused, recv_armed, recv_rx, eof, eof_told, shut_rd;
	int eof_err;
	uint8_t *rx_buf;
	size_t rx_len, rx_have;
	void (*rx_done)(struct nexus_conn *c, void *arg, int res);
	void *rx_arg;
	/* send */
	struct nexus_cqe_handler send_ev;
	struct msghdr msg;
	struct iovec *iov;
	struct send_ent *ent;
	unsigned iov_cap, iov_n, ent_n;
	unsigned fly_iov; /* entries [0, fly_iov) are in the sendmsg */
	bool send_armed;
	/* timer */
	struct nexus_cqe_handler timer_ev, tdel_ev;
	struct __kernel_timespec ts;
	uint64_t t_ms, t_deadline, t_expiry, last_io;
	unsigned t_flags;
	bool t_armed;
	bool stamping; /* last_io is kept (a timer was set and not cancelled) */
};

static void conn_maybe_free(struct nexus_conn *c);

/* ---- entry points ---- */

static void enter(struct nexus_conn *c)
{
	c->depth++;
}

static void leave(struct nexus_conn *c)
{
	c->depth--;
	conn_maybe_free(c);
}

static void soon(struct nexus_conn *c, unsigned what)
{
	c->soon |= what;
	if (!c->flush.queued) {
		c->inflight++;
		nx_reactor_flush(c->r, &c->flush);
	}
}

/* ---- group lists (reactor-local) ---- */

static void group_unlist(struct nexus_conn *c)
{
	struct nexus_conn **head;

	if (!c->listed)
		return;
	head = &c->g->heads[nexus_reactor_index(c->r)];
	if (c->gprev)
		c->gprev->gnext = c->gnext;
	else
		*head = c->gnext;
	if (c->gnext)
		c->gnext->gprev = c->gprev;
	c->gprev = c->gnext = NULL;
	c->listed = false;
}

static void group_list(struct nexus_conn *c)
{
	struct nexus_conn **head = &c->g->heads[nexus_reactor_index(c->r)];

	c->gprev = NULL;
	c->gnext = *head;
	if (*head)
		(*head)->gprev = c;
	*head = c;
	c->listed = true;
}

static void group_leave(struct nexus_conn_group *g)
{
	pthread_mutex_lock(&g->lock);
	g->n--;
	if (!g->n)
		pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* ---- teardown ---- */

static void conn_free(struct nexus_conn *c)
{
	struct nexus_listener *l = c->lst;

	if (c->ops && c->ops->closed)
		c->ops->closed(c, c->proto);
	if (c->g) {
		group_unlist(c);
		group_leave(c->g);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c->iov);
	free(c->ent);
	free(c);
	if (l)
		nx_listener_conn_gone(l);
}

static void conn_maybe_free(struct nexus_conn *c)
{
	if (c->closing && !c->depth && !c->refs && !c->inflight)
		conn_free(c);
}

static void timer_remove(struct nexus_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->t_armed)
		return;
	sqe = nexus_reactor_sqe(c->r, &c->tdel_ev);
	if (!sqe)
		return; /* it fires later; the connection waits for it */
	io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&c->timer_ev,
				     0);
	c->inflight++;
}

void nexus_conn_close(struct nexus_conn *c, const char *why)
{
	if (!c || c->closing)
		return;
	c->closing = true;
	if (why)
		nexus_log(c->ctx, NEXUS_LOG_INFO,
			  "closing connection from %s: %s", c->peer, why);
	/* ends the recv and the sendmsg in flight */
	shutdown(c->fd, SHUT_RDWR);
	c->t_ms = 0;
	timer_remove(c);
	soon(c, SOON_CANCEL);
}

void nexus_conn_shutdown_read(struct nexus_conn *c)
{
	if (c->closing || c->shut_rd)
		return;
	c->shut_rd = true;
	shutdown(c->fd, SHUT_RD);
	if (!c->recv_armed && !c->eof) {
		/* nothing armed to see the end: report it ourselves */
		c->eof = true;
		soon(c, SOON_RECV);
	}
}

/* ---- timer ---- */

static uint64_t timer_due(const struct nexus_conn *c)
{
	if (c->t_flags & NEXUS_CONN_TIMER_IDLE)
		return c->last_io + c->t_ms * 1000000ull;
	return c->t_deadline;
}

static void timer_arm(struct nexus_conn *c, uint64_t due)
{
	uint64_t now = nx_now_ns(), d = due > now ? due - now : 1;
	struct io_uring_sqe *sqe;

	sqe = nexus_reactor_sqe(c->r, &c->timer_ev);
	if (!sqe) {
		nexus_conn_close(c, "io_uring submission queue full");
		return;
	}
	c->ts.tv_sec = (long long)(d / 1000000000ull);
	c->ts.tv_nsec = (long long)(d % 1000000000ull);
	io_uring_prep_timeout(sqe, &c->ts, 0, 0);
	c->t_armed = true;
	c->t_expiry = now + d;
	c->inflight++;
}

void nexus_conn_timer(struct nexus_conn *c, uint64_t ms, unsigned flags)
{
	uint64_t now;

	if (c->closing)
		return;
	now = nx_now_ns();
	if (!c->stamping)
		c->last_io = now; /* not kept up to date meanwhile */
	c->stamping = ms != 0;
	c->t_ms = ms;
	c->t_flags = flags;
	if (!ms)
		return; /* an armed timeout finds nothing to do */
	c->t_deadline = now + ms * 1000000ull;
	if (!c->t_armed)
		timer_arm(c, timer_due(c));
	else if (c->t_expiry > timer_due(c))
		timer_remove(c); /* re-armed when its CQE comes */
}

static void timer_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nexus_conn *c = container_of(ev, struct nexus_conn, timer_ev);
	uint64_t due;

	(void)res;
	(void)flags;
	enter(c);
	c->inflight--;
	c->t_armed = false;
	if (!c->closing && c->t_ms) {
		due = timer_due(c);
		if (nx_now_ns() + 1000000 < due) {
			timer_arm(c, due);
		} else {
			c->t_ms = 0;
			if (c->ops && c->ops->timer)
				c->ops->timer(c, c->proto);
			else
				nexus_conn_close(c, "timed out");
		}
	}
	leave(c);
}

static void tdel_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nexus_conn *c = container_of(ev, struct nexus_conn, tdel_ev);

	(void)res;
	(void)flags;
	enter(c);
	c->inflight--;
	leave(c);
}

/* A byte went in or out (kept while a timer is set).  The same clock
 * as the deadlines: CLOCK_MONOTONIC_COARSE was tried, and its base is
 * not the same as CLOCK_MONOTONIC's everywhere (a sandboxed kernel). */
static void progress(struct nexus_conn *c)
{
	if (c->stamping)
		c->last_io = nx_now_ns();
}

uint64_t nexus_conn_quiet_ms(const struct nexus_conn *c)
{
	uint64_t now = nx_now_ns();

	return now > c->last_io ? (now - c->last_io) / 1000000 : 0;
}

/* ---- receive ---- */

static void arm_recv(struct nexus_conn *c)
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
	arm_recv(c);
}

static void recv_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
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
		arm_recv(c);
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
	arm_recv(c);
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

static void send_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
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

static void flush_fn(struct nx_flush *f)
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

/* ---- creation, setup, accessors ---- */

static void peer_name(struct nexus_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	unsigned port = 0;
	const void *a = NULL;

	snprintf(c->peer, sizeof(c->peer), "unix");
	if (!c->tcp || getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0)
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

struct nexus_conn *nx_conn_new(struct nexus_listener *l, int fd, bool tcp,
			       size_t rbuf_size, struct nexus_conn_group *g)
{
	struct nexus_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return NULL;
	c->rbuf = malloc(rbuf_size);
	if (!c->rbuf) {
		free(c);
		return NULL;
	}
	c->rcap = rbuf_size;
	c->lst = l;
	c->fd = fd;
	c->tcp = tcp;
	c->g = g;
	c->ctx = g->ctx;
	c->recv_ev.fn = recv_event;
	c->send_ev.fn = send_event;
	c->timer_ev.fn = timer_event;
	c->tdel_ev.fn = tdel_event;
	c->flush.fn = flush_fn;
	if (tcp)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer_name(c);
	pthread_mutex_lock(&g->lock);
	g->n++;
	pthread_mutex_unlock(&g->lock);
	return c;
}

void nx_conn_abandon(struct nexus_conn *c)
{
	struct nexus_listener *l = c->lst;

	group_leave(c->g);
	close(c->fd);
	free(c->rbuf);
	free(c);
	nx_listener_conn_gone(l);
}

void nx_conn_start(struct nexus_conn *c, struct nexus_reactor *r,
		   nexus_accept_fn accept, void *ud)
{
	bool closed;

	c->r = r;
	c->last_io = nx_now_ns();
	enter(c);
	pthread_mutex_lock(&c->g->lock);
	closed = c->g->closed;
	pthread_mutex_unlock(&c->g->lock);
	if (closed) {
		c->closing = true;
	} else {
		group_list(c);
		accept(c, ud);
		if (!c->setup)
			nexus_conn_close(c, "not taken by the protocol");
	}
	leave(c);
}

int nexus_conn_setup(struct nexus_conn *c, const struct nexus_conn_ops *ops,
		     void *proto, unsigned send_iovs)
{
	if (!c || !ops || !ops->recv || ops->size < sizeof(size_t) ||
	    !send_iovs)
		return nexus_error(-EINVAL, "nexus_conn_setup: bad arguments");
	c->iov = calloc(send_iovs, sizeof(*c->iov));
	c->ent = calloc(send_iovs, sizeof(*c->ent));
	if (!c->iov || !c->ent) {
		free(c->iov);
		free(c->ent);
		c->iov = NULL;
		c->ent = NULL;
		return nexus_error(-ENOMEM, "out of memory");
	}
	c->iov_cap = send_iovs;
	c->ops = ops;
	c->proto = proto;
	c->setup = true;
	arm_recv(c);
	return 0;
}

void nx_conn_set_slots(struct nexus_conn *c, struct nexus_slots *s)
{
	c->slots = s;
}

void nx_conn_ready_soon(struct nexus_conn *c)
{
	if (!c->closing)
		soon(c, SOON_READY);
}

void nx_conn_ready_msg(void *arg)
{
	struct nexus_conn *c = arg;

	enter(c);
	if (!c->closing && c->ops->ready)
		c->ops->ready(c, c->proto);
	c->refs--;
	leave(c);
}

void nexus_conn_detach(struct nexus_conn *c)
{
	if (c->g) {
		group_unlist(c);
		group_leave(c->g);
		c->g = NULL;
	}
	if (c->lst) {
		nx_listener_conn_gone(c->lst);
		c->lst = NULL;
	}
}

void *nexus_conn_proto(const struct nexus_conn *c)
{
	return c ? c->proto : NULL;
}

void nexus_conn_get(struct nexus_conn *c)
{
	c->refs++;
}

void nexus_conn_put(struct nexus_conn *c)
{
	c->refs--;
	conn_maybe_free(c);
}

bool nexus_conn_closing(const struct nexus_conn *c)
{
	return !c || c->closing;
}

const char *nexus_conn_peer(const struct nexus_conn *c)
{
	return c ? c->peer : "";
}

struct nexus_reactor *nexus_conn_reactor(const struct nexus_conn *c)
{
	return c ? c->r : NULL;
}

int nexus_conn_fd(const struct nexus_conn *c)
{
	return c ? c->fd : -1;
}

struct nexus_listener *nexus_conn_listener(const struct nexus_conn *c)
{
	return c ? c->lst : NULL;
}

/* ---- groups ---- */

int nexus_conn_group_create(struct nexus_ctx *ctx,
			    struct nexus_conn_group **out)
{
	unsigned n = (unsigned)nexus_ctx_reactor_count(ctx);
	struct nexus_conn_group *g;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g || !(g->heads = calloc(n ? n : 1, sizeof(*g->heads)))) {
		free(g);
		return nexus_error(-ENOMEM, "out of memory");
	}
	g->ctx = ctx;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	*out = g;
	return 0;
}

void nexus_conn_group_destroy(struct nexus_conn_group *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
	free(g->heads);
	free(g);
}

int nexus_conn_group_move(struct nexus_conn *c, struct nexus_conn_group *g)
{
	pthread_mutex_lock(&g->lock);
	if (g->closed) {
		pthread_mutex_unlock(&g->lock);
		return -ESHUTDOWN;
	}
	g->n++;
	pthread_mutex_unlock(&g->lock);
	group_unlist(c);
	group_leave(c->g);
	c->g = g;
	group_list(c);
	return 0;
}

unsigned nexus_conn_group_count(struct nexus_conn_group *g)
{
	unsigned n;

	pthread_mutex_lock(&g->lock);
	n = g->n;
	pthread_mutex_unlock(&g->lock);
	return n;
}

void nexus_conn_group_close(struct nexus_conn_group *g)
{
	pthread_mutex_lock(&g->lock);
	g->closed = true;
	pthread_mutex_unlock(&g->lock);
}

struct foreach_arg {
	struct nexus_conn_group *g;
	unsigned ridx;
	void (*fn)(struct nexus_conn *c, void *arg);
	void *arg;
};

static int foreach_fn(void *p)
{
	struct foreach_arg *a = p;
	struct nexus_conn *c = a->g->heads[a->ridx], *next;

	/* hold the next one: fn may free the current one */
	if (c)
		c->depth++;
	for (; c; c = next) {
		next = c->gnext;
		if (next)
			next->depth++;
		a->fn(c, a->arg);
		leave(c);
	}
	return 0;
}

int nexus_conn_group_foreach(struct nexus_conn_group *g,
			     void (*fn)(struct nexus_conn *c, void *arg),
			     void *arg)
{
	unsigned n = (unsigned)nexus_ctx_reactor_count(g->ctx);

	for (unsigned i = 0; i < n; i++) {
		struct foreach_arg a = { g, i, fn, arg };
		int rc = nexus_reactor_call(nexus_ctx_reactor(g->ctx, i),
					    foreach_fn, &a);

		if (rc < 0)
			return rc;
	}
	return 0;
}

int nexus_conn_group_wait(struct nexus_conn_group *g, uint64_t ms)
{
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)(ms / 1000);
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->lock);
	while (g->n && !rc) {
		if (!ms)
			pthread_cond_wait(&g->cond, &g->lock);
		else if (pthread_cond_timedwait(&g->cond, &g->lock, &dl) ==
			 ETIMEDOUT)
			rc = g->n ? -ETIMEDOUT : 0;
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}
