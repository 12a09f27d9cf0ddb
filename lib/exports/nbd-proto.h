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

#include "core/util.h"
#include "proto/nbd.h"

/* Largest option data the handshake buffers; a longer option is
 * discarded as it arrives and answered with NBD_REP_ERR_TOO_BIG. */
#define NBDS_MAX_OPTION (64u << 10)
/* Hard limit of a request payload (the spec's DoS threshold, 2^25). */
#define NBDS_MAX_PAYLOAD (32u << 20)
/* Bytes of the server's greeting. */
#define NBDS_GREETING_LEN NBD_GREETING_LEN
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
		 struct nx_out *out);

/* ---- transmission ---- */

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

/*
 * Check a request.  *payload receives the number of payload bytes that
 * follow the header (NBD_CMD_WRITE) and must be received (OK) or
 * discarded (ERROR); *err the NBD error for NBDS_REQ_ERROR.
 */
int nbds_req_check(const struct nbds_tx *tx, const struct nbd_req_hdr *r,
		   uint32_t *err, uint32_t *payload, const char **why);

#endif
