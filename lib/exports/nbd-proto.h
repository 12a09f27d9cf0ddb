/* SPDX-License-Identifier: MIT */
/* The NBD server's protocol logic as pure functions: the fixed newstyle
 * handshake as a state machine fed with bytes, the validation of
 * transmission requests, and the encoding of replies.  No sockets and
 * no libnexus core: the export driver (nbd.c, nbd-conn.c) does the I/O,
 * and the fuzz harness (tests/fuzz) links this file alone. */
#ifndef NEXUS_EXPORTS_NBD_PROTO_H
#define NEXUS_EXPORTS_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/nbd.h"

/* Largest option data the handshake buffers; a longer option is
 * discarded as it arrives and answered with NBD_REP_ERR_TOO_BIG. */
#define NBDS_MAX_OPTION (64u << 10)
/* Hard limit of a request payload (the spec's DoS threshold, 2^25). */
#define NBDS_MAX_PAYLOAD (32u << 20)
/* Bytes of the server's greeting. */
#define NBDS_GREETING_LEN 18
/* Bytes of a request header. */
#define NBDS_REQ_LEN 28
/* Context id the server gives base:allocation. */
#define NBDS_META_ALLOCATION_ID 1
/* Room for the reply header the server builds for one request: a
 * structured error chunk with a short message. */
#define NBDS_REPLY_HDR_MAX 96

/* What the handshake knows about one export. */
struct nbds_export {
	const char *name;	 /* NUL-terminated */
	const char *description; /* NULL or "" if none */
	uint64_t size;
	uint16_t tflags;	 /* NBD_FLAG_*; SEND_DF is added when
				  * structured replies are negotiated */
	uint32_t min_block;	 /* power of two, 1..64K */
	uint32_t pref_block;	 /* power of two >= max(min_block, 512) */
	uint32_t max_payload;	 /* >= pref_block */
	void *opaque;		 /* for the caller */
};

/* The exports a listener serves. */
struct nbds_catalog {
	/* Look up an export by name (@len bytes, not NUL-terminated). */
	bool (*find)(void *ud, const char *name, size_t len,
		     struct nbds_export *out);
	/* Export number @i, for NBD_OPT_LIST; false past the last. */
	bool (*get)(void *ud, unsigned i, struct nbds_export *out);
	void *ud;
};

/* Growable output buffer (malloc).  `failed` is set when it could not
 * grow; the connection must then be dropped. */
struct nbds_out {
	uint8_t *data;
	size_t len, cap;
	bool failed;
};

void nbds_out_put(struct nbds_out *o, const void *p, size_t n);
void nbds_out_reset(struct nbds_out *o);
void nbds_out_free(struct nbds_out *o);

enum nbds_hs_state {
	NBDS_HS_CFLAGS = 0, /* waiting for the client flags */
	NBDS_HS_OPTION,	    /* waiting for an option */
	NBDS_HS_SKIP,	    /* discarding an oversized option */
	NBDS_HS_FINISHED,   /* transmission, or closed */
};

/* Result of nbds_hs_feed(). */
enum nbds_hs_result {
	NBDS_HS_MORE = 0,  /* send the output (if any), then feed more input */
	NBDS_HS_GO = 1,	   /* send the output, then enter transmission */
	NBDS_HS_CLOSE = 2, /* send the output, then close */
};

struct nbds_hs {
	int state;
	uint32_t cflags;
	bool structured;	/* NBD_OPT_STRUCTURED_REPLY acknowledged */
	bool meta_valid;	/* base:allocation selected ... */
	uint32_t meta_export_len; /* ... for this export name */
	char meta_export[NBD_MAX_STRING];
	uint64_t skip;		/* bytes of an oversized option left */
	uint32_t skip_opt;	/* its option number */
	unsigned options;	/* options received */
	/* valid after NBDS_HS_GO */
	struct nbds_export chosen;
	bool block_status;	/* base:allocation applies to `chosen` */
	uint16_t tflags;	/* transmission flags sent */
	/* after NBDS_HS_CLOSE: why (static string) */
	const char *why;
};

/* Start a handshake. */
void nbds_hs_init(struct nbds_hs *hs);

/* The server's greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
void nbds_greeting(uint8_t out[NBDS_GREETING_LEN]);

/*
 * Feed the handshake with client bytes in[0..len).  Consumes what it can
 * (*used), appends replies to @out and says what to do next.  Needs at
 * most 16 + NBDS_MAX_OPTION bytes of input at a time to make progress:
 * the caller's buffer must hold that much.  Never reads past @len.
 * The catalog is only called during this function.
 */
int nbds_hs_feed(struct nbds_hs *hs, const struct nbds_catalog *cat,
		 const uint8_t *in, size_t len, size_t *used,
		 struct nbds_out *out);

/* ---- transmission ---- */

struct nbds_req {
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
};

/* What transmission requests are checked against. */
struct nbds_tx {
	uint64_t size;
	uint16_t tflags;
	uint32_t min_block;
	uint32_t max_payload;
	bool structured;
	bool block_status;
};

enum nbds_verdict {
	NBDS_REQ_OK = 0,    /* serve it */
	NBDS_REQ_ERROR = 1, /* reply with *err (after discarding *payload) */
	NBDS_REQ_DISC = 2,  /* NBD_CMD_DISC: finish in-flight, close */
	NBDS_REQ_FATAL = 3, /* protocol violation: drop the connection */
};

/* Decode a 28-byte request header.  Returns false on a bad magic. */
bool nbds_req_decode(const uint8_t *p, struct nbds_req *r);

/*
 * Check a request.  *payload receives the number of payload bytes that
 * follow the header (NBD_CMD_WRITE) and must be received (OK) or
 * discarded (ERROR); *err the NBD error for NBDS_REQ_ERROR.
 */
int nbds_req_check(const struct nbds_tx *tx, const struct nbds_req *r,
		   uint32_t *err, uint32_t *payload, const char **why);

/* NBD error code for a negative errno. */
uint32_t nbds_errno(int err);

/* Reply encoders; each returns the bytes written. */
size_t nbds_simple_reply(uint8_t *p, uint64_t cookie, uint32_t err);
/* Header of an NBD_REPLY_TYPE_OFFSET_DATA chunk with DONE set, including
 * its offset: @len data bytes follow. */
size_t nbds_data_chunk(uint8_t *p, uint64_t cookie, uint64_t offset,
		       uint32_t len);
/* NBD_REPLY_TYPE_ERROR chunk with DONE; @msg is cut to fit @cap. */
size_t nbds_error_chunk(uint8_t *p, size_t cap, uint64_t cookie,
			uint32_t err, const char *msg);
/* Header of an NBD_REPLY_TYPE_BLOCK_STATUS chunk with DONE, including
 * the context id: @n descriptors (8 bytes each) follow. */
size_t nbds_bs_chunk(uint8_t *p, uint64_t cookie, uint32_t ctx_id,
		     uint32_t n);

/* Big-endian helpers. */
static inline void nbds_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void nbds_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void nbds_put64(uint8_t *p, uint64_t v)
{
	nbds_put32(p, (uint32_t)(v >> 32));
	nbds_put32(p + 4, (uint32_t)v);
}
static inline uint16_t nbds_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t nbds_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t nbds_get64(const uint8_t *p)
{
	return ((uint64_t)nbds_get32(p) << 32) | nbds_get32(p + 4);
}

#endif
