/* SPDX-License-Identifier: MIT */
/* A server connection, owned by one reactor: everything here runs on
 * that reactor without locks (only group membership takes the group's
 * lock, at start, move and free).  This file: lifetime, the timer,
 * creation and accessors; conn-io.c receives and sends; conn-group.c
 * keeps the groups.
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
#include <unistd.h>

#include "conn-int.h"

/* ---- teardown ---- */

static void conn_free(struct nexus_conn *c)
{
	struct nexus_listener *l = c->lst;

	if (c->ops && c->ops->closed)
		c->ops->closed(c, c->proto);
	if (c->g) {
		nx_conn_group_unlist(c);
		nx_conn_group_leave(c->g);
	}
	if (c->setup)
		atomic_fetch_sub(&c->ctx->conns, 1);
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c->iov);
	free(c->ent);
	free(c);
	if (l)
		nx_listener_conn_gone(l);
}

void nx_conn_maybe_free(struct nexus_conn *c)
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

uint64_t nexus_conn_quiet_ms(const struct nexus_conn *c)
{
	uint64_t now = nx_now_ns();

	return now > c->last_io ? (now - c->last_io) / 1000000 : 0;
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
	c->recv_ev.fn = nx_conn_recv_event;
	c->send_ev.fn = nx_conn_send_event;
	c->timer_ev.fn = timer_event;
	c->tdel_ev.fn = tdel_event;
	c->flush.fn = nx_conn_flush_fn;
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

	nx_conn_group_leave(c->g);
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
		nx_conn_group_list(c);
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
	atomic_fetch_add(&c->ctx->conns, 1);
	nx_conn_arm_recv(c);
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
		nx_conn_group_unlist(c);
		nx_conn_group_leave(c->g);
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
	nx_conn_maybe_free(c);
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

