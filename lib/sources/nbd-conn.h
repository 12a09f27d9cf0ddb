/* SPDX-License-Identifier: MIT */
/* NBD source: the connection object, shared by nbd-conn.c (sending,
 * receiving, life cycle) and nbd-reply.c (the reply parser).  Everything
 * here is used on the connection's reactor only. */
#ifndef NEXUS_SOURCES_NBD_CONN_H
#define NEXUS_SOURCES_NBD_CONN_H

#include <string.h>

#include "nbd-client.h"

/* Sizes; the fuzz harness builds with smaller ones (NBDC_SMALL_BUFFERS)
 * to reach the buffer edges more often. */
#define NSLOTS 512u
#define SIOV_MAX 1024
#define DIOV_MAX 64
#ifndef NBDC_SMALL_BUFFERS
#define RBUF_SIZE (256u << 10)
#define DIRECT_MIN (32u << 10)	    /* receive larger data in place */
#define BIG_READ (128u << 10)	    /* with such reads in flight ... */
#define RECV_SMALL (64u << 10)	    /* ... receive at most this into rbuf */
#define MAX_META_CHUNK 65536u	    /* non-data chunks buffered whole */
#else
#define RBUF_SIZE (16u << 10)
#define DIRECT_MIN 2048u
#define BIG_READ 8192u
#define RECV_SMALL 4096u
#define MAX_META_CHUNK 6144u
#endif
_Static_assert(MAX_META_CHUNK + 64 <= RBUF_SIZE / 2,
	       "a whole non-data chunk must fit in the receive buffer");

enum pstate {
	P_HDR,	    /* reply header or chunk header */
	P_DATA_OFF, /* OFFSET_DATA: its offset */
	P_DATA,	    /* read data (simple reply or OFFSET_DATA) */
	P_HOLE,	    /* OFFSET_HOLE payload */
	P_BS_ID,    /* BLOCK_STATUS: context id */
	P_BS_DESC,  /* BLOCK_STATUS: descriptors */
	P_ERR,	    /* error chunk, buffered whole */
};

struct nbdc_conn {
	struct nbdc_dev *d;
	struct nexus_reactor *r;
	unsigned index;
	int fd;
	uint32_t io_timeout_s;
	atomic_bool unusable; /* dead, draining or closing (read anywhere) */
	atomic_int busy;      /* SQEs whose completion is still to come */
	bool dead, draining, closing;
	int err;	      /* why it died: the errno given to conn_fail */
	char why[200];

	/* cookie table */
	struct nbdc_req *slot_req[NSLOTS];
	uint32_t slot_gen[NSLOTS];
	uint16_t free_slots[NSLOTS];
	unsigned nfree, inflight;
	unsigned big_reads; /* READs of BIG_READ bytes or more in flight */
	struct nbdc_req *wait_head, *wait_tail;

	/* sending */
	struct nexus_cqe_handler send_ev, kick_ev;
	bool sending, kick_pending;
	struct nbdc_req *sq_head, *sq_tail;
	unsigned cur_part; /* 0: header, k: payload iovec k-1 */
	size_t cur_off;
	struct msghdr smsg;
	struct iovec siov[SIOV_MAX];

	/* receiving */
	struct nexus_cqe_handler recv_ev;
	bool recving, direct;
	uint8_t *rbuf;
	size_t rstart, rend;
	struct msghdr rmsg;
	struct iovec diov[DIOV_MAX];
	enum pstate ps;
	struct nbdc_req *cur; /* request of the chunk being parsed */
	uint16_t cflags, ctype;
	uint32_t clen;	      /* chunk payload bytes still to parse */
	uint32_t dpos, dleft; /* P_DATA: offset in the request, bytes left */
	bool simple;	      /* P_DATA of a simple reply */

	/* timeout */
	struct nexus_cqe_handler timer_ev;
	bool timer_armed;
	struct __kernel_timespec ts;
	uint64_t last_progress;
};

/* nbd-conn.c */
void nx_nbdc_conn_fail(struct nbdc_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The final reply of @p req arrived with result @p res. */
void nx_nbdc_replied(struct nbdc_conn *c, struct nbdc_req *req, int res);
/* The request a cookie names, or NULL. */
struct nbdc_req *nx_nbdc_lookup(struct nbdc_conn *c, uint64_t cookie);

/* nbd-reply.c */
/* Parse what the receive buffer holds: 0 (wants more bytes), or a
 * negative errno when the connection died. */
int nx_nbdc_parse(struct nbdc_conn *c);
/* The current chunk ended (its data was received in place). */
int nx_nbdc_chunk_end(struct nbdc_conn *c);
/* iovecs for bytes [pos, pos+n) of a READ's buffers. */
int nx_nbdc_iov_slice(const struct nexus_io *io, size_t pos, size_t n,
		      struct iovec *out, int max);

#endif
