/* SPDX-License-Identifier: MIT */
/* NBD source (client): declarations shared by its files.
 *
 *   nbd.c            the driver: options, open/close, dispatch of I/O to
 *                    connections (one per reactor with connections=N),
 *                    forwarding between reactors, block status extents
 *   nbd-uri.c        strict parser of NBD URIs (NBD doc/uri.md)
 *   nbd-handshake.c  connect and negotiate (blocking, with a deadline)
 *   nbd-conn.c       one connection on its reactor's io_uring: cookie
 *                    table, batched sendmsg, receiving, death, timeout
 *   nbd-conn.h       the connection object (nbd-conn.c, nbd-reply.c)
 *   nbd-reply.c      the reply parser: checks, then data to the caller
 *   nbd-redial.c     connecting again after a connection died
 *
 * Nothing here is part of the ABI; the files are only linked into the
 * library (hidden visibility). */
#ifndef NEXUS_SOURCES_NBD_CLIENT_H
#define NEXUS_SOURCES_NBD_CLIENT_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <liburing.h>
#include <nexus/nexus_driver.h>

#include "proto/nbd.h"

#define nbdc_container_of(p, type, member)                                \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* ---- URIs (nbd-uri.c) ---- */

#define NBDC_URI_MAX_QUERY 8

struct nbdc_uri {
	bool unix_socket;	/* nbd+unix:// */
	char *host;		/* TCP: host name or address (no brackets) */
	char *port;		/* TCP: decimal port, "10809" by default */
	char *socket;		/* unix: path (may start with NUL: abstract) */
	size_t socket_len;	/* bytes of socket (it may contain a NUL) */
	char *export_name;	/* decoded export name, possibly "" */
	unsigned nquery;	/* query parameters other than socket= */
	char *qkey[NBDC_URI_MAX_QUERY];
	char *qval[NBDC_URI_MAX_QUERY];
};

/* Parse @p text; on failure record a message (nexus_error) naming the
 * problem and return -EINVAL (or -ENAMETOOLONG, -ENOMEM). */
int nx_nbdc_uri_parse(const char *text, struct nbdc_uri *u);
void nx_nbdc_uri_free(struct nbdc_uri *u);
/* "host:port" / "[v6]:port" / "unix:PATH", for messages. */
void nx_nbdc_uri_server(const struct nbdc_uri *u, char *buf, size_t len);

/* ---- handshake (nbd-handshake.c) ---- */

struct nbdc_hs {
	/* in */
	const char *export_name;
	const char *server;	/* for messages */
	bool want_structured;
	bool want_meta;
	/* out */
	uint64_t size;
	uint16_t tflags;	/* transmission flags */
	bool have_bs;		/* server sent NBD_INFO_BLOCK_SIZE */
	uint32_t min_bs, pref_bs, max_payload;
	bool structured;	/* structured replies negotiated */
	bool meta;		/* base:allocation selected */
	uint32_t meta_id;
	bool used_go;		/* NBD_OPT_GO (else EXPORT_NAME/oldstyle) */
	bool oldstyle;
};

/* Connect to the server of @p u within @p deadline_ns (CLOCK_MONOTONIC).
 * @return a non-blocking socket, or a negative errno (message set). */
int nx_nbdc_dial(const struct nbdc_uri *u, const char *server,
		 uint64_t deadline_ns);
/* Negotiate on @p fd until the transmission phase.
 * @return 0 or a negative errno (message set). */
int nx_nbdc_handshake(int fd, struct nbdc_hs *hs, uint64_t deadline_ns);
uint64_t nx_nbdc_now_ns(void);

/* ---- requests and connections (nbd-conn.c) ---- */

struct nbdc_conn;
struct nbdc_dev;
struct nbdc_rstate;

/* Longest TRIM / WRITE_ZEROES / BLOCK_STATUS request sent: longer
 * operations are split (a power of two, so aligned to any block size). */
#define NBDC_MAX_PIECE (1u << 31)

/* Request states (flags). */
#define NBDC_R_SENT	(1u << 0) /* request bytes fully sent */
#define NBDC_R_REPLIED	(1u << 1) /* final reply received */
#define NBDC_R_BS_SEEN	(1u << 2) /* a block status chunk arrived */

/* One NBD request.  Lives in the I/O's driver_ctx (per_io_size); never
 * allocated per I/O. */
struct nbdc_req {
	uint8_t hdr[NBD_REQ_LEN]; /* wire header (nbd_req_encode) */
	uint8_t state;		 /* NBDC_R_* */
	bool fua_flush;		 /* FUA emulated: FLUSH after the write */
	uint16_t type;		 /* NBD_CMD_* */
	uint16_t cmd_flags;	 /* NBD_CMD_FLAG_* */
	uint16_t slot;
	struct nbdc_req *next;	 /* send / wait / forward list */
	struct nbdc_conn *conn;	 /* connection it is queued on */
	struct nexus_io *io;	 /* the I/O it carries */
	uint64_t off;		 /* start of the current NBD request */
	uint64_t end;		 /* end of the whole operation */
	uint32_t len;		 /* length of the current NBD request */
	uint32_t done;		 /* READ: bytes of data/holes received */
	int result;		 /* first error of the reply */
	/* BLOCK_STATUS: the part of the caller's range this request
	 * answers, the next byte the server's descriptors cover, and the
	 * extents written to io->extents so far */
	uint64_t bs_lo, bs_hi, bs_pos;
	uint32_t bs_n;
};

struct nbdc_conn_opts {
	unsigned index;
	uint32_t io_timeout_s;	/* 0: none */
};

/* Create a connection object for socket @p fd (taking it).  Runs on an
 * application thread; nothing is submitted until nx_nbdc_conn_start(). */
struct nbdc_conn *nx_nbdc_conn_new(struct nbdc_dev *d, int fd,
				   const struct nbdc_conn_opts *o);
/* Start receiving; on the owning reactor @p r. */
int nx_nbdc_conn_start(struct nbdc_conn *c, struct nexus_reactor *r);
/* Soft disconnect (NBD_CMD_DISC) and stop; on the owning reactor, with
 * nothing in flight. */
void nx_nbdc_conn_stop(struct nbdc_conn *c);
/* Wait until the reactor has seen the last completion of @p c, then
 * free it.  Application thread. */
void nx_nbdc_conn_free(struct nbdc_conn *c);
/* Queue a request; on the owning reactor.  The request completes
 * through nx_nbdc_req_complete() exactly once. */
void nx_nbdc_conn_queue(struct nbdc_conn *c, struct nbdc_req *req);
/* Whether new requests may be queued (any thread; a hint). */
bool nx_nbdc_conn_usable(const struct nbdc_conn *c);
struct nexus_reactor *nx_nbdc_conn_reactor(const struct nbdc_conn *c);
/* Why the connection is unusable ("" if it is usable). */
const char *nx_nbdc_conn_why(const struct nbdc_conn *c);
/* Fill the wire header of @p req from its type/flags/off/len and a
 * cookie. */
void nx_nbdc_req_encode(struct nbdc_req *req, uint64_t cookie);

/* ---- the device (nbd.c), used by nbd-conn.c ---- */

struct nbdc_redial;

struct nbdc_dev {
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	char server[300];	/* "host:port" for messages */
	char *export_name;
	/* replaced by a reconnection on its owner's reactor, read anywhere */
	_Atomic(struct nbdc_conn *) *conns;
	unsigned nconns;
	/* how to connect again (nbd-redial.c) */
	struct nbdc_uri uri;
	bool want_sr, want_meta;
	uint32_t timeout_s, io_timeout_s, reconnect_s;
	struct nbdc_redial *redial; /* NULL: reconnect=0 */
	struct nbdc_rstate **rs; /* per reactor, set by reactor_init */
	unsigned nreactors;
	struct nbdc_hs hs;	 /* what the first handshake found */
	uint32_t bs_align;	 /* block status request alignment */
};

/* Deliver the result of a request: complete its I/O on the reactor that
 * submitted it (for BLOCK_STATUS, 0 becomes the number of extents). */
void nx_nbdc_req_complete(struct nbdc_dev *d, struct nbdc_req *req, int res);
/* Add a block status descriptor of the reply to the request's extents
 * (conn reactor). */
void nx_nbdc_bs_add(struct nbdc_req *req, uint32_t len, uint32_t flags);

/* A connection died (not closed by us) with @p err: the device's state
 * and events follow (degraded / faulted, io-timeout), and a reconnection
 * is asked for.  Its reactor. */
void nx_nbdc_conn_died(struct nbdc_dev *d, unsigned index, int err,
		       const char *why);
/* Connect and negotiate connection @p index (blocking, until
 * @p deadline); @p first sets d->hs, any other must find the same
 * export.  Returns 0 with *out, or a negative errno (message set). */
int nx_nbdc_connect(struct nbdc_dev *d, unsigned index, uint64_t deadline,
		    bool first, struct nbdc_conn **out);
/* Put @p c in the place of connection @p index on its owner reactor and
 * start it, once no reactor can still be using the dead one; then free
 * the dead one.  Application thread.  0, or -ESHUTDOWN (the device is
 * closing: @p c is freed). */
int nx_nbdc_replace(struct nbdc_dev *d, unsigned index, struct nbdc_conn *c);
/* Set the device's state from its connections after a reconnection. */
void nx_nbdc_state_update(struct nbdc_dev *d, const char *why);

/* ---- reconnecting (nbd-redial.c) ---- */

/* Start the thread that re-establishes dead connections every
 * d->reconnect_s seconds; 0 or a negative errno. */
int nx_nbdc_redial_start(struct nbdc_dev *d);
/* Ask for connection @p index to be re-established (any thread). */
void nx_nbdc_redial_request(struct nbdc_dev *d, unsigned index);
/* Stop the thread (waits for an attempt in progress).  NULL is fine. */
void nx_nbdc_redial_stop(struct nbdc_dev *d);

/* Map an NBD wire error to a negative errno. */
int nx_nbdc_errno(uint32_t nbd_err);

#endif
