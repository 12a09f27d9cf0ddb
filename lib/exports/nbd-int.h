/* SPDX-License-Identifier: MIT */
/* NBD export: what the driver (nbd.c: options, exports, devices, stop),
 * the handshake (nbd-hs.c) and the transmission phase (nbd-tx.c)
 * share.  Sockets, connections, buffers and budgets are the core's
 * server layer (nexus_driver.h); these files hold the protocol only. */
#ifndef NEXUS_EXPORTS_NBD_INT_H
#define NEXUS_EXPORTS_NBD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <nexus/nexus_driver.h>

#include "core/event.h"
#include "core/hidden.h"
#include "nbd-proto.h"

/* Receive buffer: a whole option (16 + NBDS_MAX_OPTION) fits. */
#define NBD_RBUF_SIZE (NBDS_MAX_OPTION + (16u << 10))
/* Payload bytes one connection may hold at once (one request is always
 * admitted when the budgets allow). */
#define NBD_CONN_BYTES (64u << 20)

/* The exports sharing one listener (address): the handshake's
 * catalogue (listener lock). */
struct nbd_server {
	struct nbd_export **exps;
	unsigned n, cap;
};

/* One running export. */
struct nbd_export {
	struct nexus_export *exp;
	struct nexus_ctx *ctx;
	/* its listeners, in address order (the order they are locked
	 * in); each one's user data is its nbd_server */
	struct nexus_listener *lst[NEXUS_LISTEN_MAX_ADDRS];
	unsigned nlst;
	struct nbd_dev *devs;	   /* (every listener's lock) */
	struct nexus_budget *budget;
	pthread_mutex_t lock;	   /* device removal vs listing */
	/* options */
	const char *def_name;	   /* name= (owned) */
	char *description;
	bool readonly;
	unsigned max_inflight;
	char congestion[16];
	uint64_t hs_timeout_ms, idle_ms, stall_ms, stop_grace_ms,
		stop_timeout_ms;
};

/* One device of an export, served under its name. */
struct nbd_dev {
	struct nbd_dev *next;	   /* in ex->devs (listener lock) */
	struct nbd_export *ex;
	struct nexus_export_dev *ed;
	struct nexus_dev *dev;
	char *name;
	struct nbds_export desc;   /* the handshake's view */
	struct nexus_conn_group *g; /* connections that selected it */
};

/* A connection's protocol state, from the greeting to the close. */
struct nbd_tx {
	struct nexus_conn *c;
	struct nexus_listener *lst;
	struct nbd_server *srv;
	/* handshake */
	struct nbds_hs *hs;
	struct nx_out hout;
	bool hs_sending;
	unsigned send_slots;	/* replies the send queue holds */
	int hs_next;		/* NBDS_HS_* after the output is sent */
	/* transmission */
	bool tx_phase;
	struct nbd_dev *d;	/* NULL once orphaned */
	struct nexus_dev *dev;
	struct nbds_tx tx;
	struct nexus_slots *slots;
	struct nbd_req *rx;	/* write whose payload is being received */
	unsigned dev_inflight;	/* device I/Os */
	uint64_t skip;		/* payload bytes to discard */
	bool paused;		/* waiting for a slot or budget */
	bool draining;		/* no more requests: finish, then close */
	bool stopping;		/* export stopping: ESHUTDOWN */
	uint64_t idle_ms, stall_ms;
	char name[NEXUS_ID_MAX];
	struct nexus_export *exp; /* for events, while bound */
	struct nexus_ctx *ctx;
	uint32_t reason;	/* enum nexus_reason of the close */
	uint64_t requests, errors, bytes_read, bytes_written;
};

/* Emit an event of the export (any thread, reactors included). */
static inline void nbd_event(struct nexus_ctx *ctx, uint32_t kind,
			     struct nexus_export *exp, const char *object,
			     const char *peer, uint32_t reason, int error,
			     const char *message)
{
	struct nexus_event_info ev = { .size = sizeof(ev) };

	ev.kind = kind;
	ev.exp = exp;
	ev.object = object;
	ev.peer = peer;
	ev.reason = reason;
	ev.error = error;
	ev.message = message;
	nx_event_emit(ctx, &ev);
}

/* nbd-hs.c: the accept callback (the listener's user data is the
 * nbd_server); the handshake then hands over to nbd_tx_start(). */
NX_HIDDEN void nbd_accept(struct nexus_conn *c, void *srv);

/* nbd-tx.c */
/* The handshake chose @d (connection moved into d->g): serve it. */
NX_HIDDEN void nbd_tx_start(struct nbd_tx *t, struct nbd_dev *d,
			    const struct nbds_hs *hs);
/* Stop, on the connection's reactor: answer what was received with
 * ESHUTDOWN and finish what is in flight (graceful), or close now. */
NX_HIDDEN void nbd_tx_stop(struct nexus_conn *c, bool force);
/* The deadline passed with device I/O still in flight: detach the
 * connection from its export (what completes later is dropped). */
NX_HIDDEN void nbd_tx_orphan(struct nexus_conn *c);
/* Counters of one connection, for nexus_export_list_conns(). */
NX_HIDDEN void nbd_tx_info(struct nexus_conn *c, struct nexus_conn_info *ci);
/* The connection callbacks of both phases (nbd-tx.c). */
extern const struct nexus_conn_ops nbd_conn_ops NX_HIDDEN;
/* nbd-hs.c, called by those callbacks during the handshake. */
NX_HIDDEN void nbd_hs_recv(struct nbd_tx *t);

#endif
