/* SPDX-License-Identifier: MIT */
/* NBD source: connect to the server and negotiate, synchronously on the
 * application thread that opens the device, with one deadline for the
 * whole of it.  Afterwards the socket belongs to a reactor.
 *
 * Fixed newstyle: STRUCTURED_REPLY, SET_META_CONTEXT base:allocation,
 * then GO asking for NBD_INFO_BLOCK_SIZE.  Servers without GO get
 * EXPORT_NAME; non-fixed newstyle servers get only EXPORT_NAME; an
 * oldstyle server is accepted for the empty export name.  Every reply
 * is checked (magic, option echoed, lengths bounded); the server's error
 * messages are passed on. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "nbd-client.h"
#include "tcp.h"

#define MAX_OPT_REPLY 65536u /* longest option reply payload accepted */
#define META_NAME "base:allocation"

uint64_t nx_nbdc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = nx_nbdc_now_ns();
		struct pollfd pfd = { .fd = fd, .events = events };
		int ms, rc;

		if (now >= deadline)
			return -ETIMEDOUT;
		ms = (int)((deadline - now + 999999) / 1000000);
		rc = poll(&pfd, 1, ms);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- connecting ---- */

static int connect_one(int family, const struct sockaddr *sa, socklen_t len,
		       uint64_t deadline)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int err = 0, one = 1, rc;
	socklen_t elen = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			rc = -errno;
			close(fd);
			return rc;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			rc = -errno;
		if (rc == 0 && err)
			rc = -err;
		if (rc) {
			close(fd);
			return rc;
		}
	}
	if (family != AF_UNIX) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		nx_tcp_congestion(fd, "auto"); /* no pacing on loopback */
	}
	return fd;
}

int nx_nbdc_dial(const struct nbdc_uri *u, const char *server,
		 uint64_t deadline)
{
	struct addrinfo hints, *res = NULL;
	int fd = -ECONNREFUSED, rc;

	if (u->unix_socket) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, u->socket, u->socket_len);
		fd = connect_one(AF_UNIX, (struct sockaddr *)&sun,
				 (socklen_t)(offsetof(struct sockaddr_un,
						      sun_path) +
					     u->socket_len +
					     (u->socket[0] != '\0')),
				 deadline);
		if (fd < 0)
			return nexus_error(fd, "nbd: cannot connect to %s: %s",
					   server, strerror(-fd));
		return fd;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc)
		return nexus_error(-EHOSTUNREACH, "nbd: cannot resolve '%s': %s",
				   u->host, gai_strerror(rc));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen,
				 deadline);
		if (fd >= 0 || fd == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return nexus_error(fd, "nbd: cannot connect to %s: %s%s", server,
				   strerror(-fd),
				   fd == -ETIMEDOUT ? " (timeout=)" : "");
	return fd;
}

/* ---- blocking I/O with the deadline ---- */

struct hs {
	int fd;
	uint64_t deadline;
	struct nbdc_hs *out;
	uint8_t *buf; /* MAX_OPT_REPLY + 1 bytes */
};

static int xfer(struct hs *h, void *p, size_t n, bool wr, const char *what)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = wr ? send(h->fd, b, n, MSG_NOSIGNAL)
			       : recv(h->fd, b, n, 0);

		if (r > 0) {
			b += r;
			n -= (size_t)r;
			continue;
		}
		if (r == 0)
			return nexus_error(-ECONNRESET, "nbd: %s closed the "
					   "connection during the handshake "
					   "(%s)", h->out->server, what);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int rc = wait_fd(h->fd, wr ? POLLOUT : POLLIN,
					 h->deadline);

			if (rc == -ETIMEDOUT)
				return nexus_error(rc, "nbd: %s: handshake timed "
						   "out (%s; see timeout=)",
						   h->out->server, what);
			if (rc)
				return nexus_error(rc, "nbd: %s: poll: %s",
						   h->out->server, strerror(-rc));
			continue;
		}
		return nexus_error(-errno, "nbd: %s: %s during the handshake "
				   "(%s)", h->out->server, strerror(errno),
				   what);
	}
	return 0;
}

static int send_opt(struct hs *h, uint32_t opt, const void *data, uint32_t len)
{
	uint8_t o[NBD_OPT_LEN];
	int rc;

	nbd_opt_encode(o, opt, len);
	rc = xfer(h, o, sizeof(o), true, "sending an option");
	if (rc == 0 && len)
		rc = xfer(h, (void *)data, len, true, "sending an option");
	return rc;
}

/* Send option @p opt with the export name (32-bit length, bytes), then
 * @p tail, as its data: how SET_META_CONTEXT and GO begin. */
static int send_opt_named(struct hs *h, uint32_t opt, const uint8_t *tail,
			  uint32_t tlen)
{
	const char *name = h->out->export_name;
	uint32_t nlen = (uint32_t)strlen(name), dlen = 4 + nlen + tlen;
	uint8_t *d = malloc(dlen);
	int rc;

	if (!d)
		return nexus_error(-ENOMEM, "out of memory");
	memcpy(d + nbd_str32_encode(d, name, nlen), tail, tlen);
	rc = send_opt(h, opt, d, dlen);
	free(d);
	return rc;
}

/* Read one option reply into h->buf.  Returns 0 with *type and *len. */
static int read_reply(struct hs *h, uint32_t opt, uint32_t *type,
		      uint32_t *len)
{
	uint8_t hdr[NBD_OPT_REPLY_LEN];
	uint32_t ropt;
	int rc = xfer(h, hdr, sizeof(hdr), false, "reading an option reply");

	if (rc)
		return rc;
	if (!nbd_opt_reply_decode(hdr, &ropt, type, len))
		return nexus_error(-EPROTO, "nbd: %s: protocol error: bad "
				   "option reply magic 0x%016llx",
				   h->out->server,
				   (unsigned long long)nx_get64(hdr));
	if (ropt != opt)
		return nexus_error(-EPROTO, "nbd: %s: protocol error: reply to "
				   "option %u while option %u was sent",
				   h->out->server, ropt, opt);
	if (*len > MAX_OPT_REPLY)
		return nexus_error(-EPROTO, "nbd: %s: protocol error: option "
				   "reply of %u bytes (limit %u)",
				   h->out->server, *len, MAX_OPT_REPLY);
	rc = xfer(h, h->buf, *len, false, "reading an option reply");
	h->buf[*len] = '\0';
	return rc;
}

/* The server's error message, made printable, for our message. */
static const char *server_says(struct hs *h, uint32_t len)
{
	static __thread char msg[300];
	size_t n = len < sizeof(msg) - 20 ? len : sizeof(msg) - 20;

	if (!len)
		return "";
	memcpy(msg, " (server says: ", 15);
	for (size_t i = 0; i < n; i++)
		msg[15 + i] = h->buf[i] >= 0x20 && h->buf[i] < 0x7f
				      ? (char)h->buf[i] : '?';
	memcpy(msg + 15 + n, ")", 2);
	return msg;
}

static int opt_error(struct hs *h, const char *opt, uint32_t type,
		     uint32_t len)
{
	const char *srv = h->out->server, *says = server_says(h, len);
	const char *exp = h->out->export_name;

	switch (type) {
	case NBD_REP_ERR_UNKNOWN:
		return nexus_error(-ENOENT, "nbd: %s has no export named '%s'%s",
				   srv, exp, says);
	case NBD_REP_ERR_POLICY:
		return nexus_error(-EACCES, "nbd: %s refused %s for export "
				   "'%s' by policy%s", srv, opt, exp, says);
	case NBD_REP_ERR_TLS_REQD:
		return nexus_error(-EPROTONOSUPPORT, "nbd: %s requires TLS, "
				   "which this client does not support%s",
				   srv, says);
	case NBD_REP_ERR_SHUTDOWN:
		return nexus_error(-ESHUTDOWN, "nbd: %s is shutting down%s",
				   srv, says);
	case NBD_REP_ERR_INVALID:
		return nexus_error(-EINVAL, "nbd: %s says %s for export '%s' "
				   "is invalid%s", srv, opt, exp, says);
	case NBD_REP_ERR_TOO_BIG:
		return nexus_error(-E2BIG, "nbd: %s: %s is too big%s", srv,
				   opt, says);
	case NBD_REP_ERR_PLATFORM:
	case NBD_REP_ERR_UNSUP:
		return nexus_error(-EOPNOTSUPP, "nbd: %s does not support %s%s",
				   srv, opt, says);
	default:
		return nexus_error(-EPROTO, "nbd: %s: %s failed with error "
				   "reply 0x%x%s", srv, opt, type, says);
	}
}

static int unexpected(struct hs *h, const char *opt, uint32_t type)
{
	return nexus_error(-EPROTO, "nbd: %s: protocol error: unexpected reply "
			   "type 0x%x to %s", h->out->server, type, opt);
}

/* NBD_OPT_STRUCTURED_REPLY.  A refusal just means simple replies. */
static int opt_structured(struct hs *h)
{
	uint32_t type, len;
	int rc;

	rc = send_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	if (rc == 0)
		rc = read_reply(h, NBD_OPT_STRUCTURED_REPLY, &type, &len);
	if (rc)
		return rc;
	if (type == NBD_REP_ACK) {
		h->out->structured = true;
		return 0;
	}
	if (type == NBD_REP_ERR_SHUTDOWN)
		return opt_error(h, "STRUCTURED_REPLY", type, len);
	if (type & NBD_REP_FLAG_ERROR)
		return 0;
	return unexpected(h, "STRUCTURED_REPLY", type);
}

/* NBD_OPT_SET_META_CONTEXT base:allocation. */
static int opt_meta(struct hs *h)
{
	static const char *const query[] = { META_NAME };
	const uint32_t qlen = sizeof(META_NAME) - 1;
	uint8_t q[NBD_META_QUERIES_LEN(1, sizeof(META_NAME) - 1)];
	uint32_t type, len, id, nlen;
	const uint8_t *name;
	int rc;

	nbd_meta_queries_encode(q, query, 1);
	rc = send_opt_named(h, NBD_OPT_SET_META_CONTEXT, q, sizeof(q));
	while (rc == 0) {
		rc = read_reply(h, NBD_OPT_SET_META_CONTEXT, &type, &len);
		if (rc)
			return rc;
		if (type == NBD_REP_ACK)
			return 0;
		if (type == NBD_REP_META_CONTEXT) {
			if (!nbd_meta_reply_decode(h->buf, len, &id, &name,
						   &nlen))
				return nexus_error(-EPROTO, "nbd: %s: protocol "
						   "error: META_CONTEXT reply of "
						   "%u bytes", h->out->server,
						   len);
			if (nlen == qlen && !memcmp(name, META_NAME, qlen)) {
				h->out->meta = true;
				h->out->meta_id = id;
			}
			continue;
		}
		if (type == NBD_REP_ERR_SHUTDOWN)
			return opt_error(h, "SET_META_CONTEXT", type, len);
		if (type & NBD_REP_FLAG_ERROR) {
			h->out->meta = false; /* no block status: fine */
			return 0;
		}
		return unexpected(h, "SET_META_CONTEXT", type);
	}
	return rc;
}

static int check_bs(struct hs *h, uint32_t min, uint32_t pref, uint32_t max)
{
	struct nbdc_hs *o = h->out;

	if (!min || (min & (min - 1)) || min > 65536)
		return nexus_error(-EPROTO, "nbd: %s: protocol error: minimum "
				   "block size %u is not a power of two up to "
				   "64 KiB", o->server, min);
	if (max < min)
		return nexus_error(-EPROTO, "nbd: %s: protocol error: maximum "
				   "payload %u is below the minimum block size "
				   "%u", o->server, max, min);
	if (!pref || (pref & (pref - 1)) || pref < min)
		pref = min > 4096 ? min : 4096;
	o->have_bs = true;
	o->min_bs = min;
	o->pref_bs = pref;
	o->max_payload = max - max % min;
	return 0;
}

/* Parse one NBD_REP_INFO of GO. */
static int go_info(struct hs *h, uint32_t len, bool *have_export)
{
	struct nbdc_hs *o = h->out;
	uint32_t min, pref, max;

	if (len < NBD_INFO_TYPE_LEN)
		return nexus_error(-EPROTO, "nbd: %s: protocol error: INFO "
				   "reply of %u bytes", o->server, len);
	switch (nbd_info_type_decode(h->buf)) {
	case NBD_INFO_EXPORT:
		if (len != NBD_INFO_EXPORT_LEN)
			return nexus_error(-EPROTO, "nbd: %s: protocol error: "
					   "INFO_EXPORT of %u bytes (not %u)",
					   o->server, len, NBD_INFO_EXPORT_LEN);
		nbd_info_export_decode(h->buf, &o->size, &o->tflags);
		*have_export = true;
		return 0;
	case NBD_INFO_BLOCK_SIZE:
		if (len != NBD_INFO_BLOCK_SIZE_LEN)
			return nexus_error(-EPROTO, "nbd: %s: protocol error: "
					   "INFO_BLOCK_SIZE of %u bytes (not "
					   "%u)", o->server, len,
					   NBD_INFO_BLOCK_SIZE_LEN);
		nbd_info_block_size_decode(h->buf, &min, &pref, &max);
		return check_bs(h, min, pref, max);
	default:
		return 0; /* name, description, unknown: ignored */
	}
}

/* NBD_OPT_GO.  Returns 1 if the server does not know GO. */
static int opt_go(struct hs *h)
{
	static const uint16_t want[] = { NBD_INFO_BLOCK_SIZE };
	uint8_t q[2 + sizeof(want)]; /* count, types */
	uint32_t type, len;
	bool have_export = false;
	int rc;

	nbd_info_reqs_encode(q, want, sizeof(want) / sizeof(want[0]));
	rc = send_opt_named(h, NBD_OPT_GO, q, sizeof(q));
	while (rc == 0) {
		rc = read_reply(h, NBD_OPT_GO, &type, &len);
		if (rc)
			return rc;
		if (type == NBD_REP_INFO) {
			rc = go_info(h, len, &have_export);
			continue;
		}
		if (type == NBD_REP_ACK) {
			if (!have_export)
				return nexus_error(-EPROTO, "nbd: %s: protocol "
						   "error: GO acknowledged "
						   "without INFO_EXPORT",
						   h->out->server);
			h->out->used_go = true;
			return 0;
		}
		if (type == NBD_REP_ERR_UNSUP)
			return 1;
		if (type & NBD_REP_FLAG_ERROR)
			return opt_error(h, "GO", type, len);
		return unexpected(h, "GO", type);
	}
	return rc;
}

/* NBD_OPT_EXPORT_NAME: the server answers with the export or hangs up. */
static int opt_export_name(struct hs *h, bool no_zeroes)
{
	const char *name = h->out->export_name;
	uint8_t r[NBD_EXPORT_INFO_LEN + NBD_ZEROES_LEN];
	size_t n = no_zeroes ? NBD_EXPORT_INFO_LEN : sizeof(r);
	int rc;

	rc = send_opt(h, NBD_OPT_EXPORT_NAME, name, (uint32_t)strlen(name));
	if (rc)
		return rc;
	rc = xfer(h, r, n, false, "reading the reply to EXPORT_NAME");
	if (rc == -ECONNRESET)
		return nexus_error(-ENOENT, "nbd: %s closed the connection on "
				   "NBD_OPT_EXPORT_NAME: it has no export "
				   "named '%s' (or refused it)",
				   h->out->server, name);
	if (rc)
		return rc;
	nbd_export_info_decode(r, &h->out->size, &h->out->tflags);
	return 0;
}

static int oldstyle(struct hs *h)
{
	uint8_t r[NBD_OLDSTYLE_LEN];
	uint32_t flags;
	int rc;

	if (*h->out->export_name)
		return nexus_error(-ENOENT, "nbd: %s uses oldstyle negotiation, "
				   "which has no export names (use an empty "
				   "name instead of '%s')", h->out->server,
				   h->out->export_name);
	rc = xfer(h, r, sizeof(r), false, "reading the oldstyle header");
	if (rc)
		return rc;
	nbd_oldstyle_decode(r, &h->out->size, &flags);
	h->out->tflags = (uint16_t)flags;
	h->out->oldstyle = true;
	return 0;
}

/* Give up negotiating politely (NBD_OPT_ABORT), without waiting. */
static void abort_soft(struct hs *h)
{
	uint8_t o[NBD_OPT_LEN];

	nbd_opt_encode(o, NBD_OPT_ABORT, 0);
	(void)!send(h->fd, o, sizeof(o), MSG_NOSIGNAL | MSG_DONTWAIT);
}

int nx_nbdc_handshake(int fd, struct nbdc_hs *o, uint64_t deadline)
{
	struct hs h = { .fd = fd, .deadline = deadline, .out = o };
	uint8_t greet[NBD_GREETING_LEN], cf[NBD_CFLAGS_LEN];
	uint64_t magic, style;
	uint16_t hflags;
	uint32_t cflags = 0;
	int rc;

	o->structured = o->meta = o->used_go = o->oldstyle = o->have_bs = false;
	h.buf = malloc(MAX_OPT_REPLY + 1);
	if (!h.buf)
		return nexus_error(-ENOMEM, "out of memory");
	rc = xfer(&h, greet, NBD_GREETING_MAGICS_LEN, false,
		  "reading the greeting");
	if (rc)
		goto out;
	if (!nbd_greeting_magics_decode(greet, &magic, &style)) {
		rc = nexus_error(-EPROTO, "nbd: %s is not an NBD server (bad "
				 "magic 0x%016llx)", o->server,
				 (unsigned long long)magic);
		goto out;
	}
	if (style == NBD_OLD_MAGIC) {
		rc = oldstyle(&h);
		goto out;
	}
	if (style != NBD_IHAVEOPT) {
		rc = nexus_error(-EPROTO, "nbd: %s: protocol error: unknown "
				 "handshake magic 0x%016llx", o->server,
				 (unsigned long long)style);
		goto out;
	}
	rc = xfer(&h, greet + NBD_GREETING_MAGICS_LEN,
		  NBD_GREETING_LEN - NBD_GREETING_MAGICS_LEN, false,
		  "reading the handshake flags");
	if (rc)
		goto out;
	hflags = nbd_greeting_flags_decode(greet);
	if (hflags & NBD_FLAG_FIXED_NEWSTYLE)
		cflags |= NBD_FLAG_C_FIXED_NEWSTYLE;
	if (hflags & NBD_FLAG_NO_ZEROES)
		cflags |= NBD_FLAG_C_NO_ZEROES;
	nbd_cflags_encode(cf, cflags);
	rc = xfer(&h, cf, sizeof(cf), true, "sending the client flags");
	if (rc)
		goto out;
	if (hflags & NBD_FLAG_FIXED_NEWSTYLE) {
		if ((o->want_structured && (rc = opt_structured(&h))) ||
		    (o->structured && o->want_meta && (rc = opt_meta(&h))) ||
		    (rc = opt_go(&h)) < 0) {
			abort_soft(&h);
			goto out;
		}
		if (rc == 0)
			goto out;
	}
	rc = opt_export_name(&h, (cflags & NBD_FLAG_C_NO_ZEROES) != 0);
out:
	free(h.buf);
	if (rc == 0 && !(o->tflags & NBD_FLAG_HAS_FLAGS))
		o->tflags = 0;
	if (rc == 0 && !o->structured)
		o->meta = false;
	return rc;
}
