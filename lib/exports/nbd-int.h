/* SPDX-License-Identifier: MIT */
/* NBD export: structures shared by the driver (nbd.c: listeners,
 * exports, start/stop) and the connection data path (nbd-conn.c). */
#ifndef NEXUS_EXPORTS_NBD_INT_H
#define NEXUS_EXPORTS_NBD_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <linux/time_types.h>

#include <nexus/nexus_driver.h>

#include "nbd-proto.h"

#define NBD_HIDDEN __attribute__((visibility("hidden")))

/* Bytes of a connection's receive buffer: a whole option fits. */
#define NBD_RBUF_SIZE (NBDS_MAX_OPTION + (64u << 10))
/* Bytes of payload buffers one connection may hold at once (at least
 * one request is always admitted). */
#define NBD_CONN_BYTES (64u << 20)
/* iovec entries of one reply sendmsg. */
#define NBD_SEND_IOV 128
/* Grace period of a stop before connections are cut, milliseconds. */
#define NBD_STOP_GRACE_MS 5000

struct nbd_conn;
struct nbd_listener;

/* One running export (nexus_export private state). */
struct nbd_export {
	struct nexus_export *exp;
	struct nexus_dev *dev;
	struct nexus_ctx *ctx;
	struct nbd_listener *lst;
	struct nbd_export *next; /* in lst->exports */
	char *name;
	char *description;
	struct nbds_export desc; /* handshake view (points to the above) */
	unsigned max_inflight;	 /* per connection */
	char congestion[16];	 /* congestion= (lib/core/tcp.h) */
	struct nbd_conn **rconns; /* per-reactor connection lists */
	unsigned nconns;	  /* bound connections (nbd_lock) */
	bool detached;		  /* removed from its listener (nbd_lock) */
};

/* A listening socket shared by the exports started on its address. */
struct nbd_listener {
	struct nbd_listener *next; /* global list (nbd_lock) */
	struct nexus_ctx *ctx;
	char *key;		   /* "tcp:ADDR:PORT" / "unix:PATH" */
	char *unix_path;	   /* to unlink at close */
	char addr_text[128];	   /* bound address, for logs */
	int fd;
	struct nexus_reactor *r;   /* reactor running accept */
	struct nexus_cqe_handler accept_ev;
	struct nexus_cqe_handler cancel_ev;
	struct nexus_cqe_handler retry_ev;
	struct __kernel_timespec retry_ts;
	bool accepting;		   /* multishot accept armed (nbd_lock) */
	bool cancel_pending;	   /* cancel/retry CQE outstanding */
	bool closing;		   /* no more connections (nbd_lock) */
	bool tcp;
	unsigned rr;		   /* round-robin reactor choice */
	uint64_t hs_timeout_ms;
	struct nbd_export *exports; /* (nbd_lock) */
	struct nbd_conn **hsconns;  /* per-reactor handshake lists */
	unsigned nconns;	    /* handshake conns incl. in transit */
};

extern pthread_mutex_t nbd_lock NBD_HIDDEN;
extern pthread_cond_t nbd_cond NBD_HIDDEN;

/* nbd-conn.c */
NBD_HIDDEN void nbd_listener_accept_event(struct nexus_cqe_handler *ev, int res,
					  uint32_t flags);
NBD_HIDDEN int nbd_listener_arm(struct nbd_listener *l);
/* On each reactor: stop the export's connections (gracefully, or
 * cutting them), and/or abort the listener's handshakes. */
NBD_HIDDEN void nbd_conns_stop(struct nbd_export *ex, unsigned ridx,
			       bool force);
NBD_HIDDEN void nbd_hsconns_abort(struct nbd_listener *l, unsigned ridx);
NBD_HIDDEN unsigned nbd_conns_info(struct nbd_export *ex, unsigned ridx,
				   struct nexus_conn_info *out, unsigned max,
				   unsigned have);

#endif
