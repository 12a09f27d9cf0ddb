/* SPDX-License-Identifier: MIT */
/* The connection object, private to conn.c (lifetime, timer, creation
 * and accessors), conn-io.c (receive and send) and conn-group.c
 * (groups).  See conn.c for how a connection lives and dies. */
#ifndef NEXUS_CORE_CONN_INT_H
#define NEXUS_CORE_CONN_INT_H

#include <sys/socket.h>
#include <sys/uio.h>

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

/* conn.c: free the connection once closing and nothing holds it. */
NX_HIDDEN void nx_conn_maybe_free(struct nexus_conn *c);

/* ---- entry points ---- */

static inline void enter(struct nexus_conn *c)
{
	c->depth++;
}

static inline void leave(struct nexus_conn *c)
{
	c->depth--;
	nx_conn_maybe_free(c);
}

static inline void soon(struct nexus_conn *c, unsigned what)
{
	c->soon |= what;
	if (!c->flush.queued) {
		c->inflight++;
		nx_reactor_flush(c->r, &c->flush);
	}
}

/* A byte went in or out (kept while a timer is set).  The same clock
 * as the deadlines: CLOCK_MONOTONIC_COARSE was tried, and its base is
 * not the same as CLOCK_MONOTONIC's everywhere (a sandboxed kernel). */
static inline void progress(struct nexus_conn *c)
{
	if (c->stamping)
		c->last_io = nx_now_ns();
}

/* conn-io.c: the completion handlers and the deferred work, set up by
 * nx_conn_new(); arm the first receive once set up. */
NX_HIDDEN void nx_conn_recv_event(struct nexus_cqe_handler *ev, int res,
				  uint32_t flags);
NX_HIDDEN void nx_conn_send_event(struct nexus_cqe_handler *ev, int res,
				  uint32_t flags);
NX_HIDDEN void nx_conn_flush_fn(struct nx_flush *f);
NX_HIDDEN void nx_conn_arm_recv(struct nexus_conn *c);

/* conn-group.c: the group's reactor-local list, and leaving its count. */
NX_HIDDEN void nx_conn_group_list(struct nexus_conn *c);
NX_HIDDEN void nx_conn_group_unlist(struct nexus_conn *c);
NX_HIDDEN void nx_conn_group_leave(struct nexus_conn_group *g);

#endif
