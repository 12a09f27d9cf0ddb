/* SPDX-License-Identifier: MIT */
/* NBD server protocol logic without I/O: see nbd-proto.h.  Every length
 * read from the client is checked against the bytes actually present
 * before it is used; nothing here allocates more than the replies it
 * writes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "nbd-proto.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* ---- handshake ---- */

HIDDEN void nbds_hs_init(struct nbds_hs *hs)
{
	memset(hs, 0, sizeof(*hs));
	hs->state = NBDS_HS_CFLAGS;
}

HIDDEN void nbds_greeting(uint8_t out[NBDS_GREETING_LEN])
{
	nbd_greeting_encode(out, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

/* One option reply: header and @n bytes of data. */
static void reply(struct nx_out *o, uint32_t opt, uint32_t type,
		  const void *data, size_t n)
{
	uint8_t h[NBD_OPT_REPLY_LEN];

	nbd_opt_reply_encode(h, opt, type, (uint32_t)n);
	nx_out_put(o, h, sizeof(h));
	nx_out_put(o, data, n);
}

/* An error reply with a message for the user. */
static void reply_err(struct nx_out *o, uint32_t opt, uint32_t type,
		      const char *msg)
{
	reply(o, opt, type, msg, strlen(msg));
}

static uint16_t export_flags(const struct nbds_hs *hs,
			     const struct nbds_export *e)
{
	uint16_t f = e->tflags | NBD_FLAG_HAS_FLAGS;

	if (hs->structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

static void info_reply(struct nx_out *o, uint32_t opt, uint16_t type,
		       const void *data, size_t n)
{
	uint8_t h[NBD_OPT_REPLY_LEN + NBD_INFO_TYPE_LEN];

	nbd_opt_reply_encode(h, opt, NBD_REP_INFO, (uint32_t)(n + 2));
	nbd_info_type_encode(h + NBD_OPT_REPLY_LEN, type);
	nx_out_put(o, h, sizeof(h));
	nx_out_put(o, data, n);
}

static size_t strnlen_max(const char *s)
{
	return s ? strnlen(s, NBD_MAX_STRING) : 0;
}

/* The export chosen by GO / EXPORT_NAME. */
static void choose(struct nbds_hs *hs, const struct nbds_export *e,
		   const char *name, size_t len)
{
	hs->chosen = *e;
	hs->tflags = export_flags(hs, e);
	hs->block_status = hs->structured && hs->meta_valid &&
			   hs->meta_export_len == len &&
			   !memcmp(hs->meta_export, name, len);
	hs->state = NBDS_HS_FINISHED;
}

/* NBD_OPT_INFO and NBD_OPT_GO. */
static int opt_info_go(struct nbds_hs *hs, const struct nbds_catalog *cat,
		       uint32_t opt, const uint8_t *d, uint32_t len,
		       struct nx_out *o)
{
	bool want_name = false, want_desc = false;
	struct nbds_export e;
	struct nbd_named_opt io;
	uint32_t namelen;
	const char *name;
	uint8_t buf[NBD_INFO_BLOCK_SIZE_LEN]; /* the longest INFO sent */
	size_t dlen;

	if (!nbd_info_opt_decode(d, len, &io))
		goto invalid;
	namelen = io.name_len;
	if (namelen > NBD_MAX_STRING) {
		reply_err(o, opt, NBD_REP_ERR_TOO_BIG, "export name too long");
		return NBDS_HS_MORE;
	}
	name = (const char *)io.name;
	for (uint32_t i = 0; i < io.n; i++) {
		uint16_t t = nbd_info_opt_req(&io, i);

		if (t == NBD_INFO_NAME)
			want_name = true;
		else if (t == NBD_INFO_DESCRIPTION)
			want_desc = true;
	}
	if (!cat->find(cat->ud, name, namelen, &e)) {
		reply_err(o, opt, NBD_REP_ERR_UNKNOWN, "unknown export name");
		return NBDS_HS_MORE;
	}
	reply(o, opt, NBD_REP_INFO, buf,
	      nbd_info_export_encode(buf, e.size, export_flags(hs, &e)));
	if (want_name)
		info_reply(o, opt, NBD_INFO_NAME, e.name, strnlen_max(e.name));
	dlen = strnlen_max(e.description);
	if (want_desc && dlen)
		info_reply(o, opt, NBD_INFO_DESCRIPTION, e.description, dlen);
	/* Always sent: the server enforces these constraints. */
	reply(o, opt, NBD_REP_INFO, buf,
	      nbd_info_block_size_encode(buf, e.min_block, e.pref_block,
					 e.max_payload));
	reply(o, opt, NBD_REP_ACK, NULL, 0);
	if (opt == NBD_OPT_GO) {
		choose(hs, &e, name, namelen);
		return NBDS_HS_GO;
	}
	return NBDS_HS_MORE;
invalid:
	reply_err(o, opt, NBD_REP_ERR_INVALID, "malformed NBD_OPT_INFO/GO");
	return NBDS_HS_MORE;
}

static bool query_is(const uint8_t *q, uint32_t n, const char *s)
{
	return n == strlen(s) && !memcmp(q, s, n);
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT. */
static int opt_meta(struct nbds_hs *hs, const struct nbds_catalog *cat,
		    uint32_t opt, const uint8_t *d, uint32_t len,
		    struct nx_out *o)
{
	static const char ctx_name[] = "base:allocation";
	bool set = opt == NBD_OPT_SET_META_CONTEXT;
	bool found = false;
	struct nbds_export e;
	struct nbd_named_opt m;
	uint8_t rep[4 + sizeof(ctx_name) - 1];

	if (set)
		hs->meta_valid = false; /* replaced, even on failure */
	if (set && !hs->structured) {
		reply_err(o, opt, NBD_REP_ERR_INVALID,
			  "structured replies must be negotiated first");
		return NBDS_HS_MORE;
	}
	/* validate the whole request before replying */
	if (!nbd_meta_opt_decode(d, len, &m))
		goto invalid;
	if (m.name_len > NBD_MAX_STRING) {
		reply_err(o, opt, NBD_REP_ERR_TOO_BIG, "export name too long");
		return NBDS_HS_MORE;
	}
	if (!cat->find(cat->ud, (const char *)m.name, m.name_len, &e)) {
		reply_err(o, opt, NBD_REP_ERR_UNKNOWN, "unknown export name");
		return NBDS_HS_MORE;
	}
	if (m.n == 0) {
		/* LIST: everything; SET: select nothing */
		found = !set;
	} else {
		const uint8_t *next = m.items;

		for (uint32_t i = 0; i < m.n; i++) {
			uint32_t ql;
			const uint8_t *q = nbd_meta_opt_query(&next, &ql);

			if (query_is(q, ql, ctx_name) ||
			    (!set && query_is(q, ql, "base:")))
				found = true;
		}
	}
	if (found) {
		reply(o, opt, NBD_REP_META_CONTEXT, rep,
		      nbd_meta_reply_encode(rep, set ? NBDS_META_ALLOCATION_ID
						     : 0,
					    ctx_name, sizeof(ctx_name) - 1));
		if (set) {
			hs->meta_valid = true;
			hs->meta_export_len = m.name_len;
			memcpy(hs->meta_export, m.name, m.name_len);
		}
	}
	reply(o, opt, NBD_REP_ACK, NULL, 0);
	return NBDS_HS_MORE;
invalid:
	reply_err(o, opt, NBD_REP_ERR_INVALID, "malformed meta context option");
	return NBDS_HS_MORE;
}

static int opt_list(const struct nbds_catalog *cat, uint32_t len,
		    struct nx_out *o)
{
	struct nbds_export e;

	if (len) {
		reply_err(o, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
			  "NBD_OPT_LIST takes no data");
		return NBDS_HS_MORE;
	}
	for (unsigned i = 0; cat->get(cat->ud, i, &e); i++) {
		size_t nl = strnlen_max(e.name), dl = strnlen_max(e.description);
		uint8_t h[NBD_OPT_REPLY_LEN + 4];

		nbd_opt_reply_encode(h, NBD_OPT_LIST, NBD_REP_SERVER,
				     (uint32_t)(4 + nl + dl));
		nx_put32(h + NBD_OPT_REPLY_LEN, (uint32_t)nl);
		nx_out_put(o, h, sizeof(h));
		nx_out_put(o, e.name, nl);
		nx_out_put(o, e.description, dl);
	}
	reply(o, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
	return NBDS_HS_MORE;
}

static int opt_export_name(struct nbds_hs *hs, const struct nbds_catalog *cat,
			   const uint8_t *d, uint32_t len, struct nx_out *o)
{
	static const uint8_t zeroes[NBD_ZEROES_LEN];
	struct nbds_export e;
	uint8_t buf[NBD_EXPORT_INFO_LEN];

	if (len > NBD_MAX_STRING || !cat->find(cat->ud, (const char *)d, len,
						&e)) {
		/* no way to report an error: hard disconnect */
		hs->why = "NBD_OPT_EXPORT_NAME of an unknown export";
		hs->state = NBDS_HS_FINISHED;
		return NBDS_HS_CLOSE;
	}
	choose(hs, &e, (const char *)d, len);
	nbd_export_info_encode(buf, e.size, hs->tflags);
	nx_out_put(o, buf, sizeof(buf));
	if (!(hs->cflags & NBD_FLAG_C_NO_ZEROES))
		nx_out_put(o, zeroes, sizeof(zeroes));
	return NBDS_HS_GO;
}

/* One complete option with its data. */
static int option(struct nbds_hs *hs, const struct nbds_catalog *cat,
		  uint32_t opt, const uint8_t *d, uint32_t len,
		  struct nx_out *o)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(hs, cat, d, len, o);
	case NBD_OPT_ABORT:
		reply(o, opt, NBD_REP_ACK, NULL, 0);
		hs->why = "client sent NBD_OPT_ABORT";
		hs->state = NBDS_HS_FINISHED;
		return NBDS_HS_CLOSE;
	case NBD_OPT_LIST:
		return opt_list(cat, len, o);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(hs, cat, opt, d, len, o);
	case NBD_OPT_STRUCTURED_REPLY:
		if (len) {
			reply_err(o, opt, NBD_REP_ERR_INVALID,
				  "NBD_OPT_STRUCTURED_REPLY takes no data");
			return NBDS_HS_MORE;
		}
		hs->structured = true;
		reply(o, opt, NBD_REP_ACK, NULL, 0);
		return NBDS_HS_MORE;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta(hs, cat, opt, d, len, o);
	default:
		reply_err(o, opt, NBD_REP_ERR_UNSUP, "option not supported");
		return NBDS_HS_MORE;
	}
}

HIDDEN int nbds_hs_feed(struct nbds_hs *hs, const struct nbds_catalog *cat,
			const uint8_t *in, size_t len, size_t *used,
			struct nx_out *out)
{
	size_t pos = 0;
	int rc = NBDS_HS_MORE;

	while (rc == NBDS_HS_MORE && !out->failed) {
		size_t avail = len - pos;
		const uint8_t *p = in + pos;
		uint32_t opt, olen;

		if (hs->state == NBDS_HS_FINISHED) {
			rc = NBDS_HS_CLOSE;
			if (!hs->why)
				hs->why = "handshake already finished";
			break;
		}
		if (hs->state == NBDS_HS_CFLAGS) {
			if (avail < NBD_CFLAGS_LEN)
				break;
			hs->cflags = nbd_cflags_decode(p);
			pos += NBD_CFLAGS_LEN;
			if (hs->cflags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE |
						     NBD_FLAG_C_NO_ZEROES)) {
				hs->why = "unknown client flags";
				hs->state = NBDS_HS_FINISHED;
				rc = NBDS_HS_CLOSE;
				break;
			}
			hs->state = NBDS_HS_OPTION;
			continue;
		}
		if (hs->state == NBDS_HS_SKIP) {
			size_t n = avail < hs->skip ? avail : (size_t)hs->skip;

			pos += n;
			hs->skip -= n;
			if (hs->skip)
				break;
			hs->state = NBDS_HS_OPTION;
			if (hs->skip_opt == NBD_OPT_EXPORT_NAME) {
				hs->why = "oversized NBD_OPT_EXPORT_NAME";
				hs->state = NBDS_HS_FINISHED;
				rc = NBDS_HS_CLOSE;
				break;
			}
			reply_err(out, hs->skip_opt, NBD_REP_ERR_TOO_BIG,
				  "option too long");
			continue;
		}
		/* NBDS_HS_OPTION */
		if (avail < NBD_OPT_LEN)
			break;
		if (!nbd_opt_decode(p, &opt, &olen)) {
			hs->why = "bad option magic";
			hs->state = NBDS_HS_FINISHED;
			rc = NBDS_HS_CLOSE;
			break;
		}
		if (olen > NBDS_MAX_OPTION) {
			pos += 16;
			hs->options++;
			hs->skip = olen;
			hs->skip_opt = opt;
			hs->state = NBDS_HS_SKIP;
			continue;
		}
		if (avail - 16 < olen)
			break;
		pos += 16 + (size_t)olen;
		hs->options++;
		rc = option(hs, cat, opt, p + 16, olen, out);
	}
	if (out->failed) {
		hs->why = "out of memory";
		hs->state = NBDS_HS_FINISHED;
		rc = NBDS_HS_CLOSE;
	}
	*used = pos;
	return rc;
}

/* ---- transmission ---- */

#define ALL_CMD_FLAGS                                                      \
	(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF |       \
	 NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO)

HIDDEN int nbds_req_check(const struct nbds_tx *tx, const struct nbd_req_hdr *r,
			  uint32_t *err, uint32_t *payload, const char **why)
{
	uint32_t allowed = 0;
	bool writes = false, ranged = true;

	*payload = 0;
	*err = 0;
	*why = NULL;
	if (r->type == NBD_CMD_WRITE) {
		if (r->length > NBDS_MAX_PAYLOAD) {
			*why = "write payload larger than 32 MiB";
			return NBDS_REQ_FATAL;
		}
		*payload = r->length;
	}
	if (tx->tflags & NBD_FLAG_SEND_FUA)
		allowed |= NBD_CMD_FLAG_FUA;
	switch (r->type) {
	case NBD_CMD_DISC:
		return NBDS_REQ_DISC;
	case NBD_CMD_READ:
		if (tx->structured)
			allowed |= NBD_CMD_FLAG_DF;
		break;
	case NBD_CMD_WRITE:
		writes = true;
		break;
	case NBD_CMD_FLUSH:
		if (!(tx->tflags & NBD_FLAG_SEND_FLUSH))
			goto unsupported;
		ranged = false;
		break;
	case NBD_CMD_TRIM:
		if (!(tx->tflags & NBD_FLAG_SEND_TRIM) &&
		    !(tx->tflags & NBD_FLAG_READ_ONLY))
			goto unsupported;
		writes = true;
		break;
	case NBD_CMD_WRITE_ZEROES:
		if (!(tx->tflags & NBD_FLAG_SEND_WRITE_ZEROES) &&
		    !(tx->tflags & NBD_FLAG_READ_ONLY))
			goto unsupported;
		allowed |= NBD_CMD_FLAG_NO_HOLE;
		if (tx->tflags & NBD_FLAG_SEND_FAST_ZERO)
			allowed |= NBD_CMD_FLAG_FAST_ZERO;
		writes = true;
		break;
	case NBD_CMD_BLOCK_STATUS:
		if (!tx->structured || !tx->block_status) {
			*why = "block status without a negotiated meta context";
			*err = NBD_EINVAL;
			return NBDS_REQ_ERROR;
		}
		allowed |= NBD_CMD_FLAG_REQ_ONE;
		break;
	default:
		*why = "unknown command";
		*err = NBD_EINVAL;
		return NBDS_REQ_ERROR;
	}
	/* read-only first: EPERM even where the flags are also wrong */
	if (writes && (tx->tflags & NBD_FLAG_READ_ONLY)) {
		*why = "write to a read-only export";
		*err = NBD_EPERM;
		return NBDS_REQ_ERROR;
	}
	if (r->flags & ~allowed) {
		*why = "command flag not valid here";
		*err = NBD_EINVAL;
		return NBDS_REQ_ERROR;
	}
	if (!ranged)
		return NBDS_REQ_OK;
	if (r->length == 0) {
		*why = "zero length";
		*err = NBD_EINVAL;
		return NBDS_REQ_ERROR;
	}
	if (r->offset > tx->size || r->length > tx->size - r->offset) {
		*why = "request past the end of the export";
		*err = (r->type == NBD_CMD_WRITE ||
			r->type == NBD_CMD_WRITE_ZEROES) ? NBD_ENOSPC
							 : NBD_EINVAL;
		return NBDS_REQ_ERROR;
	}
	if ((r->offset | r->length) & (tx->min_block - 1)) {
		*why = "request not aligned to the minimum block size";
		*err = NBD_EINVAL;
		return NBDS_REQ_ERROR;
	}
	if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) &&
	    r->length > tx->max_payload) {
		*why = "request larger than the maximum payload";
		*err = tx->structured && r->type == NBD_CMD_READ ? NBD_EOVERFLOW
								 : NBD_EINVAL;
		return NBDS_REQ_ERROR;
	}
	return NBDS_REQ_OK;
unsupported:
	*why = "command not supported by this export";
	*err = NBD_EINVAL;
	return NBDS_REQ_ERROR;
}
