/* SPDX-License-Identifier: MIT */
/* NBD wire format (NetworkBlockDevice doc/proto.md), shared by the NBD
 * export (server) and the NBD source (client).  All integers on the wire
 * are big-endian.  Every structure is encoded and decoded by the codec
 * functions below, and only there. */
#ifndef NEXUS_PROTO_NBD_H
#define NEXUS_PROTO_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* handshake */
#define NBD_MAGIC		0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_IHAVEOPT		0x49484156454f5054ull /* "IHAVEOPT" */
#define NBD_REP_MAGIC		0x0003e889045565a9ull
#define NBD_OLD_MAGIC		0x00420281861253ull

/* handshake flags (server) */
#define NBD_FLAG_FIXED_NEWSTYLE	(1u << 0)
#define NBD_FLAG_NO_ZEROES	(1u << 1)
/* client flags */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES	(1u << 1)

/* transmission flags */
#define NBD_FLAG_HAS_FLAGS	(1u << 0)
#define NBD_FLAG_READ_ONLY	(1u << 1)
#define NBD_FLAG_SEND_FLUSH	(1u << 2)
#define NBD_FLAG_SEND_FUA	(1u << 3)
#define NBD_FLAG_ROTATIONAL	(1u << 4)
#define NBD_FLAG_SEND_TRIM	(1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF	(1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN	(1u << 8)
#define NBD_FLAG_SEND_RESIZE	(1u << 9)
#define NBD_FLAG_SEND_CACHE	(1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO	(1u << 11)

/* options */
#define NBD_OPT_EXPORT_NAME	1
#define NBD_OPT_ABORT		2
#define NBD_OPT_LIST		3
#define NBD_OPT_STARTTLS	5
#define NBD_OPT_INFO		6
#define NBD_OPT_GO		7
#define NBD_OPT_STRUCTURED_REPLY 8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT 10

/* option replies */
#define NBD_REP_ACK		1
#define NBD_REP_SERVER		2
#define NBD_REP_INFO		3
#define NBD_REP_META_CONTEXT	4
#define NBD_REP_FLAG_ERROR	(1u << 31)
#define NBD_REP_ERR_UNSUP	(NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY	(NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_INVALID	(NBD_REP_FLAG_ERROR | 3)
#define NBD_REP_ERR_PLATFORM	(NBD_REP_FLAG_ERROR | 4)
#define NBD_REP_ERR_TLS_REQD	(NBD_REP_FLAG_ERROR | 5)
#define NBD_REP_ERR_UNKNOWN	(NBD_REP_FLAG_ERROR | 6)
#define NBD_REP_ERR_SHUTDOWN	(NBD_REP_FLAG_ERROR | 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR | 8)
#define NBD_REP_ERR_TOO_BIG	(NBD_REP_FLAG_ERROR | 9)

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT		0
#define NBD_INFO_NAME		1
#define NBD_INFO_DESCRIPTION	2
#define NBD_INFO_BLOCK_SIZE	3

/* transmission */
#define NBD_REQUEST_MAGIC	0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC	0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

#define NBD_CMD_READ		0
#define NBD_CMD_WRITE		1
#define NBD_CMD_DISC		2
#define NBD_CMD_FLUSH		3
#define NBD_CMD_TRIM		4
#define NBD_CMD_CACHE		5
#define NBD_CMD_WRITE_ZEROES	6
#define NBD_CMD_BLOCK_STATUS	7
#define NBD_CMD_RESIZE		8

#define NBD_CMD_FLAG_FUA	(1u << 0)
#define NBD_CMD_FLAG_NO_HOLE	(1u << 1)
#define NBD_CMD_FLAG_DF		(1u << 2)
#define NBD_CMD_FLAG_REQ_ONE	(1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO	(1u << 4)

/* structured reply */
#define NBD_REPLY_FLAG_DONE	(1u << 0)
#define NBD_REPLY_TYPE_NONE	0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR	((1u << 15) | 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1u << 15) | 2)

/* base:allocation flags */
#define NBD_STATE_HOLE		(1u << 0)
#define NBD_STATE_ZERO		(1u << 1)

/* errors on the wire */
#define NBD_EPERM	1
#define NBD_EIO		5
#define NBD_ENOMEM	12
#define NBD_EINVAL	22
#define NBD_ENOSPC	28
#define NBD_EOVERFLOW	75
#define NBD_ENOTSUP	95
#define NBD_ESHUTDOWN	108

#define NBD_MAX_STRING	4096 /* export names, descriptions */

/* ---- codec: encode and decode the wire formats (lib/proto/nbd.c) ----
 *
 * Used by both sides: the export (lib/exports) and the source
 * (lib/sources/nbd*).  Pure functions on byte buffers: no I/O, no
 * allocation, no libnexus core, so the fuzz harnesses link this file
 * alone.  Decoders never read past the length they document; every
 * value they return comes from the peer and is untrusted. */

#define NBD_PROTO_HIDDEN __attribute__((visibility("hidden")))

/* Bytes of each fixed header. */
#define NBD_GREETING_LEN	18 /* NBDMAGIC, IHAVEOPT, handshake flags */
#define NBD_REQ_LEN		28 /* transmission request */
#define NBD_REPLY_MAGIC_LEN	4  /* what nbd_reply_hdr_len reads */
#define NBD_SIMPLE_REPLY_LEN	16
#define NBD_CHUNK_LEN		20 /* structured reply chunk header */
#define NBD_OPT_LEN		16 /* client option header */
#define NBD_OPT_REPLY_LEN	20 /* server option reply header */
/* Header of an OFFSET_DATA chunk, including its offset. */
#define NBD_DATA_CHUNK_LEN	(NBD_CHUNK_LEN + 8)
/* Header of a BLOCK_STATUS chunk, including the context id. */
#define NBD_BS_CHUNK_LEN	(NBD_CHUNK_LEN + 4)
/* Bytes of one block status descriptor (length, flags). */
#define NBD_BS_DESC_LEN		8

/* A transmission request, host byte order. */
struct nbd_req_hdr {
	uint16_t flags;	 /* NBD_CMD_FLAG_* */
	uint16_t type;	 /* NBD_CMD_* */
	uint64_t cookie;
	uint64_t offset;
	uint32_t length;
};

/* A reply header (simple or structured chunk), host byte order. */
struct nbd_reply_hdr {
	bool structured;
	uint16_t flags;	 /* chunk: NBD_REPLY_FLAG_* */
	uint16_t type;	 /* chunk: NBD_REPLY_TYPE_* */
	uint32_t error;	 /* simple: NBD error, 0 for success */
	uint64_t cookie;
	uint32_t length; /* chunk: payload bytes that follow */
};

/* Request header: encode to / decode from NBD_REQ_LEN bytes.  Decoding
 * returns false on a bad magic (the fields are filled anyway). */
NBD_PROTO_HIDDEN void nbd_req_encode(uint8_t *p, const struct nbd_req_hdr *r);
NBD_PROTO_HIDDEN bool nbd_req_decode(const uint8_t *p, struct nbd_req_hdr *r);

/* Length of the reply header that starts with the NBD_REPLY_MAGIC_LEN
 * (4) bytes at @p:
 * NBD_SIMPLE_REPLY_LEN or NBD_CHUNK_LEN, or 0 for a bad magic. */
NBD_PROTO_HIDDEN size_t nbd_reply_hdr_len(const uint8_t *p);
/* Decode a reply header of nbd_reply_hdr_len(p) bytes (non-zero). */
NBD_PROTO_HIDDEN void nbd_reply_decode(const uint8_t *p,
				       struct nbd_reply_hdr *h);
/* Reply encoders; each returns the bytes written. */
NBD_PROTO_HIDDEN size_t nbd_simple_reply_encode(uint8_t *p, uint64_t cookie,
						uint32_t err);
NBD_PROTO_HIDDEN size_t nbd_chunk_encode(uint8_t *p, uint16_t flags,
					 uint16_t type, uint64_t cookie,
					 uint32_t len);
/* OFFSET_DATA chunk header with DONE, with its offset: @len data bytes
 * follow (NBD_DATA_CHUNK_LEN bytes written). */
NBD_PROTO_HIDDEN size_t nbd_data_chunk_encode(uint8_t *p, uint64_t cookie,
					      uint64_t offset, uint32_t len);
/* ERROR chunk with DONE and @msg (cut so that all fits in @cap bytes;
 * @cap >= NBD_CHUNK_LEN + 6). */
NBD_PROTO_HIDDEN size_t nbd_error_chunk_encode(uint8_t *p, size_t cap,
					       uint64_t cookie, uint32_t err,
					       const char *msg);
/* BLOCK_STATUS chunk header with DONE and @ctx_id: @n descriptors
 * follow (NBD_BS_CHUNK_LEN bytes written). */
NBD_PROTO_HIDDEN size_t nbd_bs_chunk_encode(uint8_t *p, uint64_t cookie,
					    uint32_t ctx_id, uint32_t n);
/* One block status descriptor (NBD_BS_DESC_LEN bytes). */
NBD_PROTO_HIDDEN void nbd_bs_desc_encode(uint8_t *p, uint32_t len,
					 uint32_t flags);
NBD_PROTO_HIDDEN void nbd_bs_desc_decode(const uint8_t *p, uint32_t *len,
					 uint32_t *flags);

/* Handshake. */
NBD_PROTO_HIDDEN void nbd_greeting_encode(uint8_t *p, uint16_t hflags);
/* Client option header (NBD_OPT_LEN bytes); decode returns false on a
 * bad magic. */
NBD_PROTO_HIDDEN void nbd_opt_encode(uint8_t *p, uint32_t opt, uint32_t len);
NBD_PROTO_HIDDEN bool nbd_opt_decode(const uint8_t *p, uint32_t *opt,
				     uint32_t *len);
/* Server option reply header (NBD_OPT_REPLY_LEN bytes); decode returns
 * false on a bad magic. */
NBD_PROTO_HIDDEN void nbd_opt_reply_encode(uint8_t *p, uint32_t opt,
					   uint32_t type, uint32_t len);
NBD_PROTO_HIDDEN bool nbd_opt_reply_decode(const uint8_t *p, uint32_t *opt,
					   uint32_t *type, uint32_t *len);

/* Greeting as the client reads it: the first NBD_GREETING_MAGICS_LEN
 * bytes hold the server magic and the style magic (NBD_IHAVEOPT for
 * newstyle, NBD_OLD_MAGIC for oldstyle); returns true when the server
 * magic is NBD_MAGIC, with both in *magic and *style.  A newstyle
 * greeting goes on with the 16-bit handshake flags: the flags decoder
 * reads bytes 16-17 of a greeting of NBD_GREETING_LEN bytes. */
#define NBD_GREETING_MAGICS_LEN	16
NBD_PROTO_HIDDEN bool nbd_greeting_magics_decode(const uint8_t *p,
						 uint64_t *magic,
						 uint64_t *style);
NBD_PROTO_HIDDEN uint16_t nbd_greeting_flags_decode(const uint8_t *p);
/* Client flags, the client's answer to the greeting (NBD_CFLAGS_LEN
 * bytes). */
#define NBD_CFLAGS_LEN		4
NBD_PROTO_HIDDEN void nbd_cflags_encode(uint8_t *p, uint32_t cflags);
NBD_PROTO_HIDDEN uint32_t nbd_cflags_decode(const uint8_t *p);

/* Export size and transmission flags (NBD_EXPORT_INFO_LEN bytes): the
 * reply to NBD_OPT_EXPORT_NAME (followed by 124 zeroes unless
 * NBD_FLAG_C_NO_ZEROES) and the body of NBD_INFO_EXPORT. */
#define NBD_EXPORT_INFO_LEN	10
#define NBD_ZEROES_LEN		124
NBD_PROTO_HIDDEN void nbd_export_info_encode(uint8_t *p, uint64_t size,
					     uint16_t tflags);
NBD_PROTO_HIDDEN void nbd_export_info_decode(const uint8_t *p, uint64_t *size,
					     uint16_t *tflags);
/* Oldstyle header after the magics: size, 32-bit flags, 124 zeroes
 * (NBD_OLDSTYLE_LEN bytes; the decoder reads the first 12). */
#define NBD_OLDSTYLE_LEN	(8 + 4 + NBD_ZEROES_LEN)
NBD_PROTO_HIDDEN void nbd_oldstyle_decode(const uint8_t *p, uint64_t *size,
					  uint32_t *flags);

/* Option data of NBD_OPT_INFO/GO, SET/LIST_META_CONTEXT: a string with
 * a 32-bit length (the export name, each meta context query).  Writes
 * 4 + @len bytes and returns that. */
NBD_PROTO_HIDDEN size_t nbd_str32_encode(uint8_t *p, const void *s,
					 uint32_t len);
/* The information requests that end NBD_OPT_INFO/GO data: a 16-bit
 * count and @n 16-bit NBD_INFO_* types.  Writes and returns 2 + 2 @n. */
NBD_PROTO_HIDDEN size_t nbd_info_reqs_encode(uint8_t *p,
					     const uint16_t *types,
					     uint16_t n);
/* The queries that end SET/LIST_META_CONTEXT data: a 32-bit count and
 * @n nbd_str32_encode strings.  Writes NBD_META_QUERIES_LEN(@n, total
 * bytes of the names) bytes and returns that. */
#define NBD_META_QUERIES_LEN(n, names) (4 + 4 * (size_t)(n) + (names))
NBD_PROTO_HIDDEN size_t nbd_meta_queries_encode(uint8_t *p,
						const char *const *q,
						uint32_t n);

/* The data of the options that name an export, then list items, as
 * the server reads it: NBD_OPT_INFO/GO (a 16-bit count of 16-bit
 * NBD_INFO_* requests) and SET/LIST_META_CONTEXT (a 32-bit count of
 * queries, strings with a 32-bit length). */
struct nbd_named_opt {
	const uint8_t *name;  /* name_len bytes inside the data */
	uint32_t name_len;
	uint32_t n;	      /* requests or queries */
	const uint8_t *items; /* nbd_info_opt_req, nbd_meta_opt_query */
};
/* Decode the @len bytes at @p of NBD_OPT_INFO/GO, or of a META_CONTEXT
 * option (every query checked); both read nothing past @len and return
 * false unless the bytes hold exactly a name and its n items. */
NBD_PROTO_HIDDEN bool nbd_info_opt_decode(const uint8_t *p, uint32_t len,
					  struct nbd_named_opt *o);
NBD_PROTO_HIDDEN bool nbd_meta_opt_decode(const uint8_t *p, uint32_t len,
					  struct nbd_named_opt *m);
/* Request @i (< o->n) of a decoded NBD_OPT_INFO/GO: an NBD_INFO_*. */
NBD_PROTO_HIDDEN uint16_t nbd_info_opt_req(const struct nbd_named_opt *o,
					   uint32_t i);
/* The query at *@q of a list nbd_meta_opt_decode accepted (start with
 * m->items, at most m->n times): returns its bytes, sets *@qlen and
 * moves *@q to the next query. */
NBD_PROTO_HIDDEN const uint8_t *nbd_meta_opt_query(const uint8_t **q,
						   uint32_t *qlen);

/* NBD_REP_INFO payloads: a 16-bit NBD_INFO_* type, then its body.  The
 * type decoder needs NBD_INFO_TYPE_LEN bytes; an INFO_EXPORT payload is
 * NBD_INFO_EXPORT_LEN bytes, an INFO_BLOCK_SIZE one (minimum, preferred
 * block size, maximum payload) NBD_INFO_BLOCK_SIZE_LEN bytes: encoders
 * write and return exactly that, decoders read exactly that (the caller
 * checks the payload length first). */
#define NBD_INFO_TYPE_LEN	2
#define NBD_INFO_EXPORT_LEN	(NBD_INFO_TYPE_LEN + NBD_EXPORT_INFO_LEN)
#define NBD_INFO_BLOCK_SIZE_LEN	(NBD_INFO_TYPE_LEN + 12)
NBD_PROTO_HIDDEN void nbd_info_type_encode(uint8_t *p, uint16_t type);
NBD_PROTO_HIDDEN uint16_t nbd_info_type_decode(const uint8_t *p);
NBD_PROTO_HIDDEN size_t nbd_info_export_encode(uint8_t *p, uint64_t size,
					       uint16_t tflags);
NBD_PROTO_HIDDEN void nbd_info_export_decode(const uint8_t *p, uint64_t *size,
					     uint16_t *tflags);
NBD_PROTO_HIDDEN size_t nbd_info_block_size_encode(uint8_t *p, uint32_t min,
						   uint32_t pref,
						   uint32_t max);
NBD_PROTO_HIDDEN void nbd_info_block_size_decode(const uint8_t *p,
						 uint32_t *min, uint32_t *pref,
						 uint32_t *max);

/* NBD_REP_META_CONTEXT payload: the 32-bit context id, then the name
 * (NBD_META_REPLY_MIN + name bytes).  The encoder writes 4 + @nlen
 * bytes and returns that; the decoder reads @len bytes at most and
 * returns false when they are fewer than NBD_META_REPLY_MIN, else the
 * id and the name (*name points into @p, *nlen bytes). */
#define NBD_META_REPLY_MIN	5
NBD_PROTO_HIDDEN size_t nbd_meta_reply_encode(uint8_t *p, uint32_t id,
					      const char *name, uint32_t nlen);
NBD_PROTO_HIDDEN bool nbd_meta_reply_decode(const uint8_t *p, uint32_t len,
					    uint32_t *id, const uint8_t **name,
					    uint32_t *nlen);

/* Structured reply chunk payloads, as the client reads them after the
 * chunk header. */
/* OFFSET_DATA: the 64-bit offset (NBD_DATA_OFF_LEN bytes) before the
 * data. */
#define NBD_DATA_OFF_LEN	8
NBD_PROTO_HIDDEN uint64_t nbd_data_off_decode(const uint8_t *p);
/* OFFSET_HOLE: offset and 32-bit length (NBD_HOLE_LEN bytes). */
#define NBD_HOLE_LEN		12
NBD_PROTO_HIDDEN void nbd_hole_decode(const uint8_t *p, uint64_t *off,
				      uint32_t *len);
/* BLOCK_STATUS: the 32-bit metadata context id (NBD_BS_CTX_LEN bytes)
 * before the descriptors. */
#define NBD_BS_CTX_LEN		4
NBD_PROTO_HIDDEN uint32_t nbd_bs_ctx_decode(const uint8_t *p);
/* An error chunk (NBD_REPLY_TYPE_ERROR, _ERROR_OFFSET or any other
 * error type): 32-bit error, 16-bit message length, message, and for
 * ERROR_OFFSET the 64-bit offset. */
#define NBD_ERR_CHUNK_MIN	6  /* error, message length */
#define NBD_ERR_OFFSET_MIN	14 /* error, message length, offset */
struct nbd_chunk_err {
	uint32_t error;	    /* NBD error */
	uint16_t msg_len;
	const uint8_t *msg; /* msg_len bytes inside the payload */
	uint64_t offset;    /* ERROR_OFFSET only */
};
/* Decode the @len payload bytes at @p of an error chunk of type @type;
 * reads nothing past them.  Returns false when @len is below
 * NBD_ERR_CHUNK_MIN (nothing filled) or the message (and offset) do not
 * fit in it (error and msg_len filled, msg and offset not). */
NBD_PROTO_HIDDEN bool nbd_chunk_err_decode(const uint8_t *p, uint32_t len,
					   uint16_t type,
					   struct nbd_chunk_err *e);

/* Errors: a negative (or positive) errno to the NBD error sent for it,
 * and an NBD error received to a negative errno (unknown ones become
 * -EINVAL, as the protocol asks). */
NBD_PROTO_HIDDEN uint32_t nbd_errno_encode(int err);
NBD_PROTO_HIDDEN int nbd_errno_decode(uint32_t nbd_err);

#endif
