/* SPDX-License-Identifier: MIT */
/* nbd: a remote NBD export as a device (the NBD client).
 *
 *   nbd://HOST[:PORT]/EXPORT
 *   nbd://[::1]:PORT/EXPORT
 *   nbd+unix:///EXPORT?socket=/run/nbd.sock
 *   nbd:nbd://HOST/EXPORT,connections=4,io-timeout=30
 *
 * open() connects and negotiates synchronously (nbd-handshake.c), then
 * each connection is handed to one reactor (nbd-conn.c).  With
 * connections=N (only when the server advertises CAN_MULTI_CONN)
 * connection i belongs to reactor i % reactors, so with one connection
 * per reactor every I/O stays on the reactor that submitted it.  An I/O
 * submitted on a reactor that owns no connection is forwarded to the
 * owner through a lock-free list (one reactor message per burst, not per
 * I/O), and its completion comes back the same way.
 *
 * The device advertises what the server does: READ_ONLY, FLUSH, TRIM,
 * WRITE_ZEROES, MULTI_CONN and block status (base:allocation); FUA is
 * sent as FUA, emulated with a FLUSH after the write, or dropped when
 * the server has no cache to flush.  The block sizes come from
 * NBD_INFO_BLOCK_SIZE.  NEXUS_OP_BLOCK_STATUS is an ordinary request
 * (NBD_CMD_BLOCK_STATUS, its descriptors written straight into the
 * caller's extent array by the reply parser), so it works on reactors:
 * an export serving this device shows the server's holes.
 *
 * A connection that dies sets the device's state (degraded while other
 * connections remain, else faulted) with the reason; io-timeout (60 s
 * by default) fails a connection whose server stopped answering, its
 * requests completing with -ETIMEDOUT, and raises NEXUS_EVENT_IO_TIMEOUT.
 * With reconnect=N a dead connection is established again every N
 * seconds until it is back (nbd-redial.c); by default it stays dead. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "event.h" /* nx_event_emit() */
#include "nbd-client.h"

#define MAX_CONNS 64

struct nbdc_rstate {
	struct nbdc_dev *d;
	struct nexus_reactor *r;
	struct nbdc_conn *own[MAX_CONNS]; /* connections this reactor owns */
	unsigned nown, rr, fwd_rr;
	bool fini; /* reactor_fini ran: no connection may be installed */
	/* requests forwarded to this reactor, and completions returning to
	 * it: lock-free stacks, drained by one posted message per burst */
	_Atomic(struct nbdc_req *) fwd_in;
	atomic_bool fwd_posted;
	_Atomic(struct nbdc_req *) done_in;
	atomic_bool done_posted;
};

static const struct nexus_option_desc nbd_options[] = {
	{ "uri", NEXUS_OPT_STRING, NULL,
	  "nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH",
	  NEXUS_OPTF_REQUIRED | NEXUS_OPTF_POSITIONAL },
	{ "connections", NEXUS_OPT_UINT, "1",
	  "connections to the server (needs CAN_MULTI_CONN for more than "
	  "one); 0: one per reactor when the server allows it", 0 },
	{ "timeout", NEXUS_OPT_UINT, "30",
	  "seconds allowed to connect and negotiate", 0 },
	{ "io-timeout", NEXUS_OPT_UINT, "60",
	  "seconds without any reply, with requests in flight, before the "
	  "connection is declared dead and its requests fail with ETIMEDOUT "
	  "(0: wait forever)", 0 },
	{ "reconnect", NEXUS_OPT_UINT, "0",
	  "seconds between attempts to connect again when a connection "
	  "died (0: never; the device stays faulted)", 0 },
	{ "structured-replies", NEXUS_OPT_BOOL, "on",
	  "negotiate structured replies", 0 },
	{ "block-status", NEXUS_OPT_BOOL, "on",
	  "negotiate base:allocation for block status", 0 },
	{ "readonly", NEXUS_OPT_BOOL, "off", "refuse writes", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

/* ---- options: given in the stage or as URI query parameters ---- */

static const char *query(const struct nbdc_uri *u, const char *name)
{
	for (unsigned i = 0; i < u->nquery; i++)
		if (!strcmp(u->qkey[i], name))
			return u->qval[i];
	return NULL;
}

static int check_query(const struct nexus_opts *opts, const struct nbdc_uri *u)
{
	for (unsigned i = 0; i < u->nquery; i++) {
		const struct nexus_option_desc *o = nbd_options + 1;

		while (o->name && strcmp(o->name, u->qkey[i]))
			o++;
		if (!o->name)
			return nexus_error(-EINVAL, "nbd: unknown URI query "
					   "parameter '%s' (known: socket, "
					   "connections, timeout, io-timeout, "
					   "reconnect, structured-replies, "
					   "block-status, readonly)", u->qkey[i]);
		if (nexus_opts_given(opts, o->name))
			return nexus_error(-EINVAL, "nbd: '%s' is given both "
					   "as an option and in the URI",
					   o->name);
	}
	return 0;
}

static int opt_uint(const struct nexus_opts *opts, const struct nbdc_uri *u,
		    const char *name, uint64_t max, uint64_t *out)
{
	const char *q = query(u, name);
	int rc;

	if (q) {
		char *end;

		errno = 0;
		*out = strtoull(q, &end, 10);
		if (!*q || *end || errno || *q == '-')
			return nexus_error(-EINVAL, "nbd: %s=%s is not a number",
					   name, q);
	} else if ((rc = nexus_opts_u64(opts, name, out))) {
		return rc;
	}
	if (*out > max)
		return nexus_error(-EINVAL, "nbd: %s=%llu is above %llu", name,
				   (unsigned long long)*out,
				   (unsigned long long)max);
	return 0;
}

static int opt_bool(const struct nexus_opts *opts, const struct nbdc_uri *u,
		    const char *name, bool *out)
{
	const char *q = query(u, name);

	if (!q)
		return nexus_opts_bool(opts, name, out);
	if (!strcasecmp(q, "on") || !strcasecmp(q, "yes") ||
	    !strcasecmp(q, "true") || !strcmp(q, "1"))
		*out = true;
	else if (!strcasecmp(q, "off") || !strcasecmp(q, "no") ||
		 !strcasecmp(q, "false") || !strcmp(q, "0"))
		*out = false;
	else
		return nexus_error(-EINVAL, "nbd: %s=%s is not on/off", name, q);
	return 0;
}

/* ---- open / close ---- */

static void free_dev(struct nbdc_dev *d)
{
	nx_nbdc_redial_stop(d);
	for (unsigned i = 0; i < d->nconns; i++)
		nx_nbdc_conn_free(d->conns[i]);
	nx_nbdc_uri_free(&d->uri);
	for (unsigned i = 0; d->rs && i < d->nreactors; i++)
		free(d->rs[i]);
	free(d->rs);
	free(d->conns);
	free(d->export_name);
	free(d);
}

int nx_nbdc_connect(struct nbdc_dev *d, unsigned i, uint64_t deadline,
		    bool first, struct nbdc_conn **out)
{
	struct nbdc_hs hs;
	struct nbdc_conn_opts co = { .index = i,
				     .io_timeout_s = d->io_timeout_s };
	int fd, rc;

	memset(&hs, 0, sizeof(hs));
	hs.export_name = d->export_name;
	hs.server = d->server;
	hs.want_structured = d->want_sr;
	hs.want_meta = d->want_meta;
	fd = nx_nbdc_dial(&d->uri, d->server, deadline);
	if (fd < 0)
		return fd;
	rc = nx_nbdc_handshake(fd, &hs, deadline);
	if (rc) {
		close(fd);
		return rc;
	}
	if (first) {
		d->hs = hs;
	} else if (hs.size != d->hs.size || hs.tflags != d->hs.tflags ||
		   hs.structured != d->hs.structured || hs.meta != d->hs.meta ||
		   hs.meta_id != d->hs.meta_id || hs.min_bs != d->hs.min_bs) {
		close(fd);
		return nexus_error(-EPROTO, "nbd: %s: connection %u sees a "
				   "different export than the first (size, "
				   "flags or block sizes)", d->server, i);
	}
	*out = nx_nbdc_conn_new(d, fd, &co);
	if (!*out) {
		close(fd);
		return nexus_error(-ENOMEM, "out of memory");
	}
	return 0;
}

/* Connection @p i at open. */
static int connect_conn(struct nbdc_dev *d, unsigned i, uint64_t deadline)
{
	struct nbdc_conn *c;
	int rc = nx_nbdc_connect(d, i, deadline, i == 0, &c);

	if (rc)
		return rc;
	d->conns[i] = c;
	d->nconns = i + 1;
	return 0;
}

static void fill_info(struct nbdc_dev *d, struct nexus_dev_info *in, bool ro)
{
	const struct nbdc_hs *hs = &d->hs;
	uint16_t f = hs->tflags;
	uint32_t lbs;

	if (hs->have_bs)
		lbs = hs->min_bs;
	else
		lbs = hs->size % 512 ? 1 : 512;
	d->bs_align = lbs;
	in->logical_block_size = lbs;
	in->dev_size = hs->size - hs->size % lbs;
	if (in->dev_size != hs->size)
		nexus_log(d->ctx, NEXUS_LOG_WARN, "nbd: %s: export size %llu "
			  "is not a multiple of the block size %u: the last "
			  "%llu bytes are not used", d->server,
			  (unsigned long long)hs->size, lbs,
			  (unsigned long long)(hs->size - in->dev_size));
	in->physical_block_size = hs->have_bs ? hs->pref_bs : 4096;
	if (in->physical_block_size < lbs)
		in->physical_block_size = lbs;
	in->optimal_io_size = hs->have_bs ? hs->pref_bs : 0;
	in->max_io_size = 32u << 20;
	if (hs->have_bs && hs->max_payload < in->max_io_size)
		in->max_io_size = hs->max_payload;
	/* block status is always answered: data, unless the server
	 * negotiated base:allocation (then NEXUS_DEV_BLOCK_STATUS) */
	in->ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
		  NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS);
	if (f & NBD_FLAG_SEND_FLUSH)
		in->ops |= NEXUS_OP_BIT(NEXUS_OP_FLUSH);
	if (f & NBD_FLAG_SEND_TRIM)
		in->ops |= NEXUS_OP_BIT(NEXUS_OP_TRIM);
	if (f & NBD_FLAG_SEND_WRITE_ZEROES)
		in->ops |= NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES);
	in->flags = 0;
	if ((f & NBD_FLAG_READ_ONLY) || ro)
		in->flags |= NEXUS_DEV_READ_ONLY;
	if (f & NBD_FLAG_CAN_MULTI_CONN)
		in->flags |= NEXUS_DEV_MULTI_CONN;
	if (hs->meta)
		in->flags |= NEXUS_DEV_BLOCK_STATUS;
}

static int nbd_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_ctx *ctx = nexus_dev_ctx(dev);
	struct nbdc_uri u;
	struct nbdc_dev *d;
	uint64_t nconn, timeout, io_timeout, reconnect, deadline;
	bool sr, meta, ro;
	int rc, nr = nexus_ctx_reactor_count(ctx);

	rc = nx_nbdc_uri_parse(nexus_opts_str(opts, "uri"), &u);
	if (rc)
		return rc;
	if ((rc = check_query(opts, &u)) ||
	    (rc = opt_uint(opts, &u, "connections", MAX_CONNS, &nconn)) ||
	    (rc = opt_uint(opts, &u, "timeout", 86400, &timeout)) ||
	    (rc = opt_uint(opts, &u, "io-timeout", 86400, &io_timeout)) ||
	    (rc = opt_uint(opts, &u, "reconnect", 3600, &reconnect)) ||
	    (rc = opt_bool(opts, &u, "structured-replies", &sr)) ||
	    (rc = opt_bool(opts, &u, "block-status", &meta)) ||
	    (rc = opt_bool(opts, &u, "readonly", &ro))) {
		nx_nbdc_uri_free(&u);
		return rc;
	}
	if (!timeout) {
		nx_nbdc_uri_free(&u);
		return nexus_error(-EINVAL, "nbd: timeout must be at least 1 "
				   "second");
	}
	d = calloc(1, sizeof(*d));
	if (d) {
		d->nreactors = nr > 0 ? (unsigned)nr : 1;
		d->rs = calloc(d->nreactors, sizeof(*d->rs));
		d->conns = calloc(MAX_CONNS, sizeof(*d->conns));
		d->export_name = strdup(u.export_name);
	}
	if (!d || !d->rs || !d->conns || !d->export_name) {
		if (d)
			free_dev(d);
		nx_nbdc_uri_free(&u);
		return nexus_error(-ENOMEM, "out of memory");
	}
	d->ctx = ctx;
	d->dev = dev;
	d->uri = u; /* kept for reconnecting; freed with d */
	d->want_sr = sr;
	d->want_meta = meta;
	d->timeout_s = (uint32_t)timeout;
	d->io_timeout_s = (uint32_t)io_timeout;
	d->reconnect_s = (uint32_t)reconnect;
	nx_nbdc_uri_server(&u, d->server, sizeof(d->server));
	deadline = nx_nbdc_now_ns() + timeout * 1000000000ull;
	rc = connect_conn(d, 0, deadline);
	if (rc == 0 && nconn != 1) {
		bool mc = d->hs.tflags & NBD_FLAG_CAN_MULTI_CONN;

		if (nconn == 0)
			nconn = mc ? d->nreactors : 1;
		if (nconn > 1 && !mc) {
			nexus_log(ctx, NEXUS_LOG_WARN, "nbd: %s does not "
				  "advertise CAN_MULTI_CONN: using 1 connection "
				  "instead of %llu", d->server,
				  (unsigned long long)nconn);
			nconn = 1;
		}
		for (unsigned i = 1; rc == 0 && i < nconn; i++)
			rc = connect_conn(d, i, deadline);
	}
	if (rc == 0 && d->reconnect_s)
		rc = nx_nbdc_redial_start(d);
	if (rc) {
		free_dev(d);
		return rc;
	}
	fill_info(d, nexus_dev_info_mut(dev), ro);
	nexus_log(ctx, NEXUS_LOG_INFO, "nbd: %s export '%s': %llu bytes, "
		  "flags 0x%x, %s%s%s, %u connection(s)", d->server,
		  d->export_name, (unsigned long long)d->hs.size, d->hs.tflags,
		  d->hs.used_go ? "GO" : d->hs.oldstyle ? "oldstyle"
							: "EXPORT_NAME",
		  d->hs.structured ? ", structured replies" : "",
		  d->hs.meta ? ", base:allocation" : "", d->nconns);
	nexus_dev_set_private(dev, d);
	return 0;
}

static void nbd_close(struct nexus_dev *dev)
{
	free_dev(nexus_dev_private(dev));
}

static int nbd_reactor_init(struct nexus_dev *dev, struct nexus_reactor *r,
			    void **rstate)
{
	struct nbdc_dev *d = nexus_dev_private(dev);
	unsigned idx = nexus_reactor_index(r);
	struct nbdc_rstate *rs = calloc(1, sizeof(*rs));
	int rc;

	if (!rs || idx >= d->nreactors) {
		free(rs);
		return nexus_error(-ENOMEM, "out of memory");
	}
	rs->d = d;
	rs->r = r;
	atomic_init(&rs->fwd_in, NULL);
	atomic_init(&rs->done_in, NULL);
	atomic_init(&rs->fwd_posted, false);
	atomic_init(&rs->done_posted, false);
	d->rs[idx] = rs;
	*rstate = rs;
	for (unsigned i = idx; i < d->nconns; i += d->nreactors) {
		rs->own[rs->nown++] = d->conns[i];
		rc = nx_nbdc_conn_start(d->conns[i], r);
		if (rc)
			return rc;
	}
	return 0;
}

static void nbd_reactor_fini(struct nexus_dev *dev, struct nexus_reactor *r,
			     void *rstate)
{
	struct nbdc_rstate *rs = rstate;

	(void)dev;
	(void)r;
	/* no I/O is in flight; rs itself is freed by close() */
	rs->fini = true;
	for (unsigned i = 0; i < rs->nown; i++)
		nx_nbdc_conn_stop(rs->own[i]);
}

/* ---- block status (on the reactors, like any request) ---- */

void nx_nbdc_bs_add(struct nbdc_req *req, uint32_t len, uint32_t nflags)
{
	uint64_t start = req->bs_pos, end = req->bs_pos + len;
	struct nexus_io *io = req->io;
	struct nexus_extent *last = req->bs_n ? &io->extents[req->bs_n - 1]
					      : NULL;
	uint32_t flags = 0;

	req->bs_pos = end;
	if (start < req->bs_lo)
		start = req->bs_lo;
	if (end > req->bs_hi)
		end = req->bs_hi;
	if (start >= end)
		return;
	if (nflags & NBD_STATE_HOLE)
		flags |= NEXUS_EXTENT_HOLE;
	if (nflags & NBD_STATE_ZERO)
		flags |= NEXUS_EXTENT_ZERO;
	if (last && last->flags == flags &&
	    last->offset + last->length == start) {
		last->length += end - start;
		return;
	}
	if (req->bs_n == io->max_extents)
		return;
	io->extents[req->bs_n++] =
		(struct nexus_extent){ start, end - start, flags };
}

/* The result of a BLOCK_STATUS whose reply arrived: its extent count
 * (one data extent when the server described nothing of the range). */
static int bs_result(struct nbdc_req *req)
{
	struct nexus_io *io = req->io;

	if (req->bs_n == 0) {
		io->extents[0] = (struct nexus_extent){ req->bs_lo,
							req->bs_hi - req->bs_lo,
							0 };
		req->bs_n = 1;
	}
	return (int)req->bs_n;
}

/* Prepare @p req for NBD_CMD_BLOCK_STATUS of io's range, aligned to the
 * server's block size and cut at NBDC_MAX_PIECE (the result then covers
 * less than asked, as the operation allows).  Returns 1 when there is
 * nothing to ask (no base:allocation): the I/O is answered already. */
static int bs_prepare(struct nbdc_dev *d, struct nbdc_req *req)
{
	struct nexus_io *io = req->io;
	uint64_t a = d->bs_align, off = io->offset, len = io->length;
	uint64_t aoff = off - off % a, aend = (off + len + a - 1) / a * a;

	if (!d->hs.meta) {
		io->extents[0] = (struct nexus_extent){ off, len, 0 };
		nexus_io_complete(io, 1);
		return 1;
	}
	if (aend - aoff > NBDC_MAX_PIECE)
		aend = aoff + NBDC_MAX_PIECE;
	req->type = NBD_CMD_BLOCK_STATUS;
	req->off = aoff;
	req->len = (uint32_t)(aend - aoff);
	req->end = aend;
	req->bs_lo = off;
	req->bs_hi = aend < off + len ? aend : off + len;
	req->bs_pos = aoff;
	req->bs_n = 0;
	return 0;
}

/* ---- state and events ---- */

static uint32_t reason_of(int err)
{
	switch (err) {
	case -ETIMEDOUT: return NEXUS_REASON_TIMEOUT;
	case -ECONNRESET: return NEXUS_REASON_PEER_CLOSED;
	case -EPROTO: return NEXUS_REASON_PROTOCOL;
	case -ESHUTDOWN: return NEXUS_REASON_SHUTDOWN;
	default: return NEXUS_REASON_IO_ERROR;
	}
}

void nx_nbdc_conn_died(struct nbdc_dev *d, unsigned index, int err,
		       const char *why)
{
	unsigned alive = 0;
	char msg[400];

	for (unsigned i = 0; i < d->nconns; i++)
		alive += nx_nbdc_conn_usable(d->conns[i]);
	snprintf(msg, sizeof(msg), "%s: %s%s", d->server, why,
		 alive ? "" : "; no connection left");
	if (err == -ETIMEDOUT) {
		struct nexus_event_info ev = {
			.size = sizeof(ev),
			.kind = NEXUS_EVENT_IO_TIMEOUT,
			.reason = NEXUS_REASON_TIMEOUT,
			.dev = d->dev,
			.object = nexus_dev_info_mut(d->dev)->name,
			.error = -ETIMEDOUT,
			.old_state = nexus_dev_get_state(d->dev),
			.new_state = nexus_dev_get_state(d->dev),
			.peer = d->server,
			.message = msg,
		};

		nx_event_emit(d->ctx, &ev);
	}
	nexus_dev_set_state(d->dev, alive ? NEXUS_DEV_STATE_DEGRADED
					  : NEXUS_DEV_STATE_FAULTED,
			    reason_of(err), msg);
	if (d->redial)
		nx_nbdc_redial_request(d, index);
}

void nx_nbdc_state_update(struct nbdc_dev *d, const char *why)
{
	unsigned alive = 0;

	for (unsigned i = 0; i < d->nconns; i++)
		alive += nx_nbdc_conn_usable(d->conns[i]);
	nexus_dev_set_state(d->dev, alive == d->nconns ? NEXUS_DEV_STATE_ONLINE
			    : alive ? NEXUS_DEV_STATE_DEGRADED
				    : NEXUS_DEV_STATE_FAULTED,
			    NEXUS_REASON_NONE, why);
}

struct install {
	struct nbdc_dev *d;
	unsigned index;
	struct nbdc_conn *c;
};

/* On the owner reactor of connection @p index: swap in the new one. */
static int install_fn(void *arg)
{
	struct install *in = arg;
	struct nbdc_dev *d = in->d;
	struct nexus_reactor *r = nexus_reactor_current();
	struct nbdc_rstate *rs = d->rs[nexus_reactor_index(r)];
	struct nbdc_conn *old = d->conns[in->index];

	if (!rs || rs->fini)
		return -ESHUTDOWN;
	for (unsigned k = 0; k < rs->nown; k++)
		if (rs->own[k] == old)
			rs->own[k] = in->c;
	d->conns[in->index] = in->c;
	/* its timer is still armed: cancel it, so that it can be freed */
	nx_nbdc_conn_stop(old);
	in->c = old; /* freed by the caller once no reactor can use it */
	return nx_nbdc_conn_start(d->conns[in->index], r) ? -EIO : 0;
}

static int noop_fn(void *arg)
{
	(void)arg;
	return 0;
}

int nx_nbdc_replace(struct nbdc_dev *d, unsigned index, struct nbdc_conn *c)
{
	struct install in = { d, index, c };
	struct nexus_reactor *owner =
		nexus_ctx_reactor(d->ctx, index % d->nreactors);
	int rc = nexus_reactor_call(owner, install_fn, &in);

	if (in.c == c) { /* not installed */
		nx_nbdc_conn_free(c);
		return rc ? rc : -ESHUTDOWN;
	}
	/* a reactor that picked the old connection just before the swap is
	 * done with it once it went through its loop */
	for (unsigned i = 0; i < d->nreactors; i++)
		(void)nexus_reactor_call(nexus_ctx_reactor(d->ctx, i), noop_fn,
					 NULL);
	nx_nbdc_conn_free(in.c);
	return rc;
}

/* ---- crossing reactors ---- */

static void push(_Atomic(struct nbdc_req *) *head, struct nbdc_req *req)
{
	struct nbdc_req *old = atomic_load(head);

	do
		req->next = old;
	while (!atomic_compare_exchange_weak(head, &old, req));
}

/* Take everything, oldest first. */
static struct nbdc_req *take(_Atomic(struct nbdc_req *) *head)
{
	struct nbdc_req *l = atomic_exchange(head, NULL), *rev = NULL;

	while (l) {
		struct nbdc_req *next = l->next;

		l->next = rev;
		rev = l;
		l = next;
	}
	return rev;
}

static void fwd_drain(void *arg)
{
	struct nbdc_rstate *rs = arg;

	atomic_store(&rs->fwd_posted, false);
	for (struct nbdc_req *req = take(&rs->fwd_in), *next; req; req = next) {
		next = req->next;
		nx_nbdc_conn_queue(req->conn, req);
	}
}

static void done_drain(void *arg)
{
	struct nbdc_rstate *rs = arg;

	atomic_store(&rs->done_posted, false);
	for (struct nbdc_req *req = take(&rs->done_in), *next; req; req = next) {
		next = req->next;
		nexus_io_complete(req->io, req->result);
	}
}

static void post_once(struct nbdc_dev *d, struct nexus_reactor *r,
		      atomic_bool *posted, void (*fn)(void *), void *arg)
{
	if (atomic_exchange(posted, true))
		return;
	if (nexus_reactor_post(r, fn, arg)) {
		atomic_store(posted, false);
		nexus_log(d->ctx, NEXUS_LOG_ERROR, "nbd: %s: cannot pass I/O "
			  "to reactor %u: %s", d->server,
			  nexus_reactor_index(r), nexus_last_error());
	}
}

void nx_nbdc_req_complete(struct nbdc_dev *d, struct nbdc_req *req, int res)
{
	struct nexus_io *io = req->io;
	struct nbdc_rstate *rs;

	if (res == 0 && req->type == NBD_CMD_BLOCK_STATUS)
		res = bs_result(req);
	if (io->reactor == nexus_reactor_current()) {
		nexus_io_complete(io, res);
		return;
	}
	rs = io->rstate;
	req->result = res;
	push(&rs->done_in, req);
	post_once(d, io->reactor, &rs->done_posted, done_drain, rs);
}

/* A usable connection: one of this reactor's, else any. */
static struct nbdc_conn *pick(struct nbdc_dev *d, struct nbdc_rstate *rs)
{
	for (unsigned i = 0; rs && i < rs->nown; i++) {
		struct nbdc_conn *c = rs->own[rs->rr++ % rs->nown];

		if (nx_nbdc_conn_usable(c))
			return c;
	}
	for (unsigned i = 0; i < d->nconns; i++) {
		struct nbdc_conn *c = d->conns[(rs ? rs->fwd_rr++ : i) %
					       d->nconns];

		if (nx_nbdc_conn_usable(c))
			return c;
	}
	return NULL;
}

static int not_connected(struct nbdc_dev *d)
{
	return nexus_error(-ENOTCONN, "nbd: %s: not connected (%s)", d->server,
			   d->nconns ? nx_nbdc_conn_why(d->conns[0]) : "");
}

static void queue_on(struct nbdc_dev *d, struct nbdc_conn *c,
		     struct nbdc_req *req)
{
	struct nexus_reactor *owner = nx_nbdc_conn_reactor(c);
	struct nbdc_rstate *rs;

	if (owner == nexus_reactor_current()) {
		nx_nbdc_conn_queue(c, req);
		return;
	}
	rs = d->rs[nexus_reactor_index(owner)];
	req->conn = c;
	push(&rs->fwd_in, req);
	post_once(d, owner, &rs->fwd_posted, fwd_drain, rs);
}

/* ---- I/O ---- */

static int nbd_submit(struct nexus_io *io)
{
	struct nbdc_rstate *rs = io->rstate;
	struct nbdc_dev *d = rs->d;
	struct nbdc_req *req = io->driver_ctx;
	uint16_t f = d->hs.tflags;
	struct nbdc_conn *c;

	req->io = io;
	req->next = NULL;
	req->fua_flush = false;
	req->cmd_flags = 0;
	req->off = io->offset;
	req->end = io->offset + io->length;
	req->len = (uint32_t)io->length;
	switch (io->op) {
	case NEXUS_OP_READ:
		req->type = NBD_CMD_READ;
		break;
	case NEXUS_OP_WRITE:
		req->type = NBD_CMD_WRITE;
		break;
	case NEXUS_OP_FLUSH:
		req->type = NBD_CMD_FLUSH;
		req->off = req->end = 0;
		req->len = 0;
		break;
	case NEXUS_OP_TRIM:
	case NEXUS_OP_WRITE_ZEROES:
		req->type = io->op == NEXUS_OP_TRIM ? NBD_CMD_TRIM
						    : NBD_CMD_WRITE_ZEROES;
		req->len = (uint32_t)(io->length < NBDC_MAX_PIECE ? io->length
							     : NBDC_MAX_PIECE);
		if (io->op == NEXUS_OP_TRIM)
			break;
		if (io->flags & NEXUS_IO_NO_UNMAP)
			req->cmd_flags |= NBD_CMD_FLAG_NO_HOLE;
		if (io->flags & NEXUS_IO_FAST_ZERO) {
			if (!(f & NBD_FLAG_SEND_FAST_ZERO))
				return nexus_error(-EOPNOTSUPP, "nbd: %s cannot "
						   "tell whether zeroing is "
						   "fast (no FAST_ZERO)",
						   d->server);
			req->cmd_flags |= NBD_CMD_FLAG_FAST_ZERO;
		}
		break;
	case NEXUS_OP_BLOCK_STATUS:
		if (bs_prepare(d, req))
			return 0;
		break;
	default:
		return nexus_error(-EOPNOTSUPP, "nbd: operation %u", io->op);
	}
	if ((io->flags & NEXUS_IO_FUA) && (io->op == NEXUS_OP_WRITE ||
					   io->op == NEXUS_OP_TRIM ||
					   io->op == NEXUS_OP_WRITE_ZEROES)) {
		if (f & NBD_FLAG_SEND_FUA)
			req->cmd_flags |= NBD_CMD_FLAG_FUA;
		else if (f & NBD_FLAG_SEND_FLUSH)
			req->fua_flush = true;
		/* else: the server has no cache; the write is durable */
	}
	c = pick(d, rs);
	if (!c)
		return not_connected(d);
	queue_on(d, c, req);
	return 0;
}

const struct nexus_driver nx_driver_nbd = {
	NEXUS_DRIVER_HEADER,
	.name = "nbd",
	.summary = "NBD client: a remote export (nbd://HOST:PORT/EXPORT, "
		   "nbd+unix:///EXPORT?socket=PATH)",
	.kind = NEXUS_DRIVER_SOURCE,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
	       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS),
	.per_io_size = sizeof(struct nbdc_req),
	.options = nbd_options,
	.open = nbd_open,
	.close = nbd_close,
	.reactor_init = nbd_reactor_init,
	.reactor_fini = nbd_reactor_fini,
	.submit = nbd_submit,
};
