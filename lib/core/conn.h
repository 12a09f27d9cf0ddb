/* SPDX-License-Identifier: MIT */
/* Server layer internals shared by listen.c, conn.c and slots.c.  The
 * interface for drivers is the "server layer" section of
 * nexus_driver.h. */
#ifndef NEXUS_CORE_CONN_H
#define NEXUS_CORE_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* A group of connections: per-reactor lists (reactor-local), a count
 * and a closed flag under the lock. */
struct nexus_conn_group {
	struct nexus_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned n;		  /* members, incl. those in transit */
	bool closed;		  /* refuses moves in */
	struct nexus_conn **heads; /* per reactor */
};

/* conn.c, for listen.c: a connection for accepted socket @fd, counted
 * in group @g (its list entry is made on the reactor, by
 * nx_conn_start). */
NX_HIDDEN struct nexus_conn *nx_conn_new(struct nexus_listener *l, int fd,
					 bool tcp, size_t rbuf_size,
					 struct nexus_conn_group *g);
/* On the connection's reactor: join its group's list and call
 * @accept (or close at once when the group is closed). */
NX_HIDDEN void nx_conn_start(struct nexus_conn *c, struct nexus_reactor *r,
			     nexus_accept_fn accept, void *ud);
/* Free a connection that never reached its reactor. */
NX_HIDDEN void nx_conn_abandon(struct nexus_conn *c);

/* listen.c, for conn.c: the connection accepted by @l was freed. */
NX_HIDDEN void nx_listener_conn_gone(struct nexus_listener *l);

/* conn.c, for slots.c: run the ready callback soon (deferred to the
 * reactor loop, never from the caller's stack). */
NX_HIDDEN void nx_conn_ready_soon(struct nexus_conn *c);
/* For the budget's waiters: run the ready callback now and drop the
 * reference taken when the wait began (on the connection's reactor). */
NX_HIDDEN void nx_conn_ready_msg(void *conn);

/* slots.c, for conn.c: the slots of a connection, so that a closing
 * connection stops waiting for budget (the wait holds a reference). */
NX_HIDDEN void nx_conn_set_slots(struct nexus_conn *c, struct nexus_slots *s);
NX_HIDDEN void nx_slots_unwait(struct nexus_slots *s);

/* slots.c: the per-context budget's reference (listen.c takes one per
 * listener, so it lives as long as the context serves). */
NX_HIDDEN void nx_ctx_budget_ref(struct nexus_ctx *ctx, int delta);

#endif
