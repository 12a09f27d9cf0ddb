/* SPDX-License-Identifier: MIT */
/* nbd: serve a device over the Network Block Device protocol
 * (NetworkBlockDevice doc/proto.md, fixed newstyle handshake).
 *
 *     file:/var/lib/vol.img | nbd:listen=127.0.0.1:10809,name=vol
 *
 * This file holds the driver: options, listeners and the start/stop of
 * exports.  Exports started on the same address share one listener and
 * are told apart by their names.  The connection data path is in
 * nbd-conn.c, the protocol itself (pure functions) in nbd-proto.c. */
#include "config.h"
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "nbd-int.h"
#include "tcp.h"
#include "internal.h"

pthread_mutex_t nbd_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t nbd_cond = PTHREAD_COND_INITIALIZER;

/* every listener of every context (nbd_lock) */
static struct nbd_listener *listeners;

static const struct nexus_option_desc nbd_options[] = {
	{ "listen", NEXUS_OPT_STRING, NULL,
	  "TCP address HOST:PORT to listen on ([::1]:PORT for IPv6; port 0 "
	  "picks a free port)", 0 },
	{ "socket", NEXUS_OPT_STRING, NULL, "Unix socket path to listen on",
	  0 },
	{ "name", NEXUS_OPT_STRING, "", "export name (\"\" is the default "
	  "export)", 0 },
	{ "description", NEXUS_OPT_STRING, NULL,
	  "export description shown to clients", 0 },
	{ "readonly", NEXUS_OPT_BOOL, "off", "refuse writes", 0 },
	{ "handshake-timeout", NEXUS_OPT_UINT, "10",
	  "seconds a client may take to finish the handshake (0: no limit)",
	  0, .max = 86400 },
	{ "max-inflight", NEXUS_OPT_UINT, "128",
	  "requests in flight per connection (1-4096)", 0, .min = 1,
	  .max = 4096 },
	{ "congestion", NEXUS_OPT_STRING, "auto",
	  "TCP congestion control of the connections: auto (on loopback, "
	  "cubic or reno instead of a pacing one such as bbr, which caps "
	  "what one connection carries there), system, or an algorithm",
	  0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static uint32_t pow2_floor(uint32_t v)
{
	uint32_t p = 1;

	while (p <= v / 2)
		p *= 2;
	return p;
}

/* The handshake's view of the export: flags and sizes from the device. */
static int describe(struct nbd_export *ex, bool readonly)
{
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nbds_export *d = &ex->desc;
	uint16_t f = 0;
	uint32_t max;
	int rc;

	rc = nexus_dev_get_info(ex->dev, &in);
	if (rc)
		return rc;
	if (in.logical_block_size > 65536)
		return nexus_error(-EINVAL, "nbd: the device's logical block "
				   "size %u is larger than NBD allows (64K)",
				   in.logical_block_size);
	if ((in.flags & NEXUS_DEV_READ_ONLY) ||
	    !(in.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE)))
		readonly = true;
	if (readonly)
		f |= NBD_FLAG_READ_ONLY;
	if (in.ops & NEXUS_OP_BIT(NEXUS_OP_FLUSH))
		f |= NBD_FLAG_SEND_FLUSH;
	if (!readonly) {
		f |= NBD_FLAG_SEND_FUA;
		if (in.ops & NEXUS_OP_BIT(NEXUS_OP_TRIM))
			f |= NBD_FLAG_SEND_TRIM;
		if (in.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES))
			f |= NBD_FLAG_SEND_WRITE_ZEROES |
			     NBD_FLAG_SEND_FAST_ZERO;
	}
	if (in.flags & NEXUS_DEV_MULTI_CONN)
		f |= NBD_FLAG_CAN_MULTI_CONN;
	d->name = ex->name;
	d->description = ex->description;
	d->size = in.dev_size;
	d->tflags = f;
	d->min_block = in.logical_block_size ? in.logical_block_size : 1;
	d->pref_block = pow2_floor(in.physical_block_size);
	if (d->pref_block < d->min_block)
		d->pref_block = d->min_block;
	if (d->pref_block < 512)
		d->pref_block = 512;
	max = in.max_io_size < NBDS_MAX_PAYLOAD ? in.max_io_size
						 : NBDS_MAX_PAYLOAD;
	max &= ~(d->min_block - 1);
	if (max < d->pref_block)
		max = d->pref_block;
	d->max_payload = max;
	d->opaque = ex;
	return 0;
}

/* ---- listeners ---- */

static int set_addr_text(struct nbd_listener *l)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV))
		return -EINVAL;
	snprintf(l->addr_text, sizeof(l->addr_text),
		 ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
	return 0;
}

/* Resolve listen=HOST:PORT.  *key is the normalised address, or NULL
 * for port 0 (a new listener each time: nothing to share). */
static int resolve_tcp(const char *spec, struct addrinfo **res, char **key)
{
	struct addrinfo hints;
	char host[256], *port, nhost[NI_MAXHOST];
	const char *h;
	size_t n;
	int rc;

	*res = NULL;
	*key = NULL;
	if (strlen(spec) >= sizeof(host))
		return nexus_error(-EINVAL, "nbd: listen address too long");
	strcpy(host, spec);
	if (host[0] == '[') {
		char *e = strchr(host, ']');

		if (!e || e[1] != ':')
			return nexus_error(-EINVAL, "nbd: listen=%s: expected "
					   "[IPV6]:PORT", spec);
		*e = '\0';
		h = host + 1;
		port = e + 2;
	} else {
		port = strrchr(host, ':');
		if (!port)
			return nexus_error(-EINVAL, "nbd: listen=%s: expected "
					   "HOST:PORT", spec);
		*port++ = '\0';
		h = host;
	}
	if (!*port || strlen(port) > 5 ||
	    strspn(port, "0123456789") != strlen(port) || atol(port) > 65535)
		return nexus_error(-EINVAL, "nbd: listen=%s: bad port '%s'",
				   spec, port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(*h ? h : NULL, port, &hints, res);
	if (rc)
		return nexus_error(-EINVAL, "nbd: listen=%s: %s", spec,
				   gai_strerror(rc));
	if (atol(port) == 0)
		return 0;
	if (getnameinfo((*res)->ai_addr, (*res)->ai_addrlen, nhost,
			sizeof(nhost), NULL, 0, NI_NUMERICHOST))
		return 0;
	n = strlen(nhost) + strlen(port) + 8;
	*key = malloc(n);
	if (*key)
		snprintf(*key, n, (*res)->ai_family == AF_INET6 ? "tcp:[%s]:%s"
								: "tcp:%s:%s",
			 nhost, port);
	return 0;
}

static int listen_tcp(struct nbd_listener *l, const char *spec,
		      struct addrinfo *res)
{
	int rc = -EADDRNOTAVAIL, fd = -1, one = 1;

	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0)
			break;
		rc = -errno;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		return nexus_error(rc, "nbd: cannot listen on %s: %s", spec,
				   strerror(-rc));
	l->fd = fd;
	l->tcp = true;
	rc = set_addr_text(l);
	if (rc)
		return nexus_error(rc, "nbd: %s: getsockname failed", spec);
	return 0;
}

static int listen_unix(struct nbd_listener *l, const char *path)
{
	struct sockaddr_un sa;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return nexus_error(-EINVAL, "nbd: socket path '%s' is empty "
				   "or longer than %zu bytes", path,
				   sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nexus_error(-errno, "nbd: socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		close(fd);
		return nexus_error(rc, "nbd: cannot listen on %s: %s%s", path,
				   strerror(-rc),
				   rc == -EADDRINUSE ? " (remove a stale "
						       "socket first)" : "");
	}
	l->fd = fd;
	l->unix_path = strdup(path);
	snprintf(l->addr_text, sizeof(l->addr_text), "unix:%s", path);
	return 0;
}

static int arm_fn(void *arg)
{
	struct nbd_listener *l = arg;
	int rc = nbd_listener_arm(l);

	if (rc == 0)
		l->accepting = true;
	return rc;
}

static void cancel_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nbd_listener *l = (struct nbd_listener *)(void *)
		((char *)ev - offsetof(struct nbd_listener, cancel_ev));

	(void)res;
	(void)flags;
	pthread_mutex_lock(&nbd_lock);
	l->cancel_pending = false;
	pthread_cond_broadcast(&nbd_cond);
	pthread_mutex_unlock(&nbd_lock);
}

static int cancel_fn(void *arg)
{
	struct nbd_listener *l = arg;
	struct io_uring_sqe *sqe;

	l->cancel_ev.fn = cancel_event;
	sqe = nexus_reactor_sqe(l->r, &l->cancel_ev);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&l->accept_ev, 0);
	pthread_mutex_lock(&nbd_lock);
	l->cancel_pending = true;
	pthread_mutex_unlock(&nbd_lock);
	return 0;
}

static void listener_free(struct nbd_listener *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->unix_path) {
		unlink(l->unix_path);
		free(l->unix_path);
	}
	free(l->hsconns);
	free(l->key);
	free(l);
}

static struct nbd_listener *find_listener(struct nexus_ctx *ctx,
					  const char *key)
{
	if (!key)
		return NULL;
	for (struct nbd_listener *l = listeners; l; l = l->next)
		if (l->ctx == ctx && l->key && !strcmp(l->key, key) &&
		    !l->closing)
			return l;
	return NULL;
}

/* Wait (nbd_lock held) until cond(arg) or the deadline (ms from now;
 * 0 = forever).  Returns false on timeout. */
static bool wait_until(bool (*cond)(void *), void *arg, unsigned ms)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	while (!cond(arg)) {
		if (!ms) {
			pthread_cond_wait(&nbd_cond, &nbd_lock);
		} else if (pthread_cond_timedwait(&nbd_cond, &nbd_lock, &dl) ==
			   ETIMEDOUT) {
			return cond(arg);
		}
	}
	return true;
}

static bool accept_done(void *arg)
{
	struct nbd_listener *l = arg;

	return !l->accepting && !l->cancel_pending;
}

/* ---- exports ---- */

struct stop_arg {
	struct nbd_export *ex;
	struct nbd_listener *closing; /* the listener closes too */
	unsigned ridx;
	bool force;
};

static int stop_fn(void *arg)
{
	struct stop_arg *a = arg;

	nbd_conns_stop(a->ex, a->ridx, a->force);
	if (a->closing)
		nbd_hsconns_abort(a->closing, a->ridx);
	return 0;
}

struct drained_arg {
	struct nbd_export *ex;
	struct nbd_listener *l;
};

static bool drained(void *arg)
{
	struct drained_arg *d = arg;

	return !d->ex->nconns && (!d->l || !d->l->nconns);
}

static void stop_conns(struct nbd_export *ex, struct nbd_listener *closing,
		       bool force)
{
	unsigned n = (unsigned)nexus_ctx_reactor_count(ex->ctx);

	for (unsigned i = 0; i < n; i++) {
		struct stop_arg a = { ex, closing, i, force };

		nexus_reactor_call(nexus_ctx_reactor(ex->ctx, i), stop_fn, &a);
	}
}

static void export_free(struct nbd_export *ex)
{
	if (!ex)
		return;
	free(ex->rconns);
	free(ex->name);
	free(ex->description);
	free(ex);
}

/* Until the NBD export serves several names on one export: stop serving
 * the one device (the listener goes when its last export goes). */
static void nbd_export_remove_dev(struct nexus_export *exp,
				  struct nexus_export_dev *ed)
{
	struct nbd_export *ex = nexus_export_private(exp);
	struct nbd_listener *l = ex->lst, *closing = NULL;
	struct drained_arg d = { ex, NULL };
	bool done;

	pthread_mutex_lock(&nbd_lock);
	for (struct nbd_export **p = &l->exports; *p; p = &(*p)->next) {
		if (*p == ex) {
			*p = ex->next;
			break;
		}
	}
	ex->detached = true;
	if (!l->exports) {
		closing = l;
		l->closing = true;
		for (struct nbd_listener **p = &listeners; *p; p = &(*p)->next) {
			if (*p == l) {
				*p = l->next;
				break;
			}
		}
	}
	pthread_mutex_unlock(&nbd_lock);
	if (closing) {
		/* stop accepting first: no connection arrives after this */
		nexus_reactor_call(l->r, cancel_fn, l);
		pthread_mutex_lock(&nbd_lock);
		wait_until(accept_done, l, 0);
		pthread_mutex_unlock(&nbd_lock);
		d.l = l;
	}
	stop_conns(ex, closing, false);
	pthread_mutex_lock(&nbd_lock);
	done = wait_until(drained, &d, NBD_STOP_GRACE_MS);
	pthread_mutex_unlock(&nbd_lock);
	if (!done) {
		nexus_log(ex->ctx, NEXUS_LOG_WARN, "nbd: export '%s': clients "
			  "still busy after %u ms, disconnecting them",
			  ex->name, NBD_STOP_GRACE_MS);
		stop_conns(ex, closing, true);
		pthread_mutex_lock(&nbd_lock);
		wait_until(drained, &d, 0);
		pthread_mutex_unlock(&nbd_lock);
	}
	if (closing) {
		nexus_log(ex->ctx, NEXUS_LOG_INFO, "nbd: stopped listening on "
			  "%s", l->addr_text);
		listener_free(l);
	}
	(void)ed;
	export_free(ex);
	nexus_export_set_private(exp, NULL);
}

static int nbd_export_start(struct nexus_export *exp,
			    const struct nexus_opts *opts)
{
	(void)exp;
	(void)opts;
	return 0;
}

static void nbd_export_stop(struct nexus_export *exp)
{
	(void)exp;
}

static int nbd_export_add_dev(struct nexus_export *exp,
			      struct nexus_export_dev *ed)
{
	const struct nexus_opts *opts = nx_export_opts(exp);
	struct nexus_dev *dev = nexus_export_dev_device(ed);
	struct nexus_ctx *ctx = nexus_dev_ctx(dev);
	const char *lspec = nexus_opts_str(opts, "listen");
	const char *sock = nexus_opts_str(opts, "socket");
	const char *name = nexus_opts_str(opts, "name");
	const char *desc = nexus_opts_str(opts, "description");
	const char *cc = nexus_opts_str(opts, "congestion");
	unsigned nr = (unsigned)nexus_ctx_reactor_count(ctx);
	struct nbd_listener *l = NULL, *nl = NULL;
	struct addrinfo *res = NULL;
	struct nbd_export *ex;
	uint64_t tmo = 10, maxinf = 128;
	bool ro = false;
	char *key = NULL;
	int rc;

	if ((rc = nexus_opts_bool(opts, "readonly", &ro)) ||
	    (rc = nexus_opts_u64(opts, "handshake-timeout", &tmo)) ||
	    (rc = nexus_opts_u64(opts, "max-inflight", &maxinf)))
		return rc;
	if (!!lspec == !!sock)
		return nexus_error(-EINVAL, "nbd: give exactly one of listen= "
				   "(HOST:PORT) and socket= (a Unix socket "
				   "path)");
	if (nexus_export_private(exp))
		return nexus_error(-EOPNOTSUPP, "nbd: this export serves one "
				   "device; create another export on the same "
				   "address for another name");
	if (nexus_export_dev_name(ed))
		name = nexus_export_dev_name(ed);
	if (nexus_export_dev_flags(ed) & NEXUS_EXPORT_DEV_READ_ONLY)
		ro = true;
	if (!name)
		name = "";
	if (strlen(name) > NBD_MAX_STRING ||
	    (desc && strlen(desc) > NBD_MAX_STRING))
		return nexus_error(-EINVAL, "nbd: name and description are "
				   "limited to %u bytes", NBD_MAX_STRING);
	if (maxinf < 1 || maxinf > 4096)
		return nexus_error(-EINVAL, "nbd: max-inflight=%llu is not in "
				   "1-4096", (unsigned long long)maxinf);
	if (tmo > 86400)
		return nexus_error(-EINVAL, "nbd: handshake-timeout=%llu is "
				   "more than a day", (unsigned long long)tmo);
	rc = nx_tcp_congestion_check("nbd", cc);
	if (rc)
		return rc;
	ex = calloc(1, sizeof(*ex));
	if (!ex || !(ex->name = strdup(name)) ||
	    (desc && !(ex->description = strdup(desc))) ||
	    !(ex->rconns = calloc(nr, sizeof(*ex->rconns)))) {
		export_free(ex);
		return nexus_error(-ENOMEM, "out of memory");
	}
	ex->exp = exp;
	ex->dev = dev;
	ex->ctx = ctx;
	ex->max_inflight = (unsigned)maxinf;
	snprintf(ex->congestion, sizeof(ex->congestion), "%s",
		 cc ? cc : "auto");
	rc = describe(ex, ro);
	if (rc) {
		export_free(ex);
		return rc;
	}

	/* a new listener, unless the address already has one */
	nl = calloc(1, sizeof(*nl));
	if (!nl || !(nl->hsconns = calloc(nr, sizeof(*nl->hsconns)))) {
		free(nl);
		export_free(ex);
		return nexus_error(-ENOMEM, "out of memory");
	}
	nl->fd = -1;
	nl->ctx = ctx;
	nl->hs_timeout_ms = tmo * 1000;
	nl->accept_ev.fn = nbd_listener_accept_event;
	if (sock) {
		size_t n = strlen(sock) + 6;

		key = malloc(n);
		if (key)
			snprintf(key, n, "unix:%s", sock);
	} else {
		rc = resolve_tcp(lspec, &res, &key);
		if (rc) {
			listener_free(nl);
			export_free(ex);
			return rc;
		}
	}
	pthread_mutex_lock(&nbd_lock);
	l = find_listener(ctx, key);
	if (l) {
		free(key);
		if (res)
			freeaddrinfo(res);
		goto attach; /* with nbd_lock held */
	}
	pthread_mutex_unlock(&nbd_lock);
	if (sock) {
		rc = listen_unix(nl, sock);
	} else {
		rc = listen_tcp(nl, lspec, res);
		freeaddrinfo(res);
	}
	if (rc) {
		free(key);
		listener_free(nl);
		export_free(ex);
		return rc;
	}
	nl->key = key;
	nl->r = nexus_ctx_reactor(ctx, 0);
	pthread_mutex_lock(&nbd_lock);
	l = nl;
	nl = NULL;
	l->next = listeners;
	listeners = l;
	l->exports = ex;
	ex->lst = l;
	pthread_mutex_unlock(&nbd_lock);
	rc = nexus_reactor_call(l->r, arm_fn, l);
	if (rc) {
		pthread_mutex_lock(&nbd_lock);
		for (struct nbd_listener **p = &listeners; *p; p = &(*p)->next) {
			if (*p == l) {
				*p = l->next;
				break;
			}
		}
		pthread_mutex_unlock(&nbd_lock);
		listener_free(l);
		export_free(ex);
		return nexus_error(rc < 0 ? rc : -EIO, "nbd: cannot start "
				   "accepting connections");
	}
	nexus_log(ctx, NEXUS_LOG_INFO, "nbd: listening on %s", l->addr_text);
	goto done;

attach: /* nbd_lock held, l is an existing listener */
	for (struct nbd_export *e = l->exports; e; e = e->next) {
		if (!strcmp(e->name, ex->name)) {
			pthread_mutex_unlock(&nbd_lock);
			listener_free(nl);
			export_free(ex);
			return nexus_error(-EEXIST, "nbd: %s already serves an "
					   "export named '%s'", l->addr_text,
					   name);
		}
	}
	ex->lst = l;
	ex->next = l->exports;
	l->exports = ex;
	pthread_mutex_unlock(&nbd_lock);
	listener_free(nl);
done:
	nexus_export_set_private(exp, ex);
	nexus_log(ctx, NEXUS_LOG_INFO, "nbd: export '%s' (%llu bytes%s) on %s",
		  ex->name, (unsigned long long)ex->desc.size,
		  (ex->desc.tflags & NBD_FLAG_READ_ONLY) ? ", read-only" : "",
		  l->addr_text);
	return 0;
}

struct conns_arg {
	struct nbd_export *ex;
	struct nexus_conn_info *out;
	unsigned max, have, ridx;
};

static int conns_fn(void *arg)
{
	struct conns_arg *a = arg;

	a->have += nbd_conns_info(a->ex, a->ridx, a->out, a->max, a->have);
	return 0;
}

static int nbd_export_conns(struct nexus_export *exp,
			    struct nexus_conn_info *out, unsigned max)
{
	struct nbd_export *ex = nexus_export_private(exp);
	struct conns_arg a = { ex, out, max, 0, 0 };
	unsigned n = (unsigned)nexus_ctx_reactor_count(ex->ctx);

	for (a.ridx = 0; a.ridx < n; a.ridx++) {
		int rc = nexus_reactor_call(nexus_ctx_reactor(ex->ctx, a.ridx),
					    conns_fn, &a);

		if (rc < 0)
			return rc;
	}
	return (int)a.have;
}

const struct nexus_driver nx_driver_nbd_export = {
	NEXUS_DRIVER_HEADER,
	.name = "nbd",
	.summary = "serve the device over NBD (fixed newstyle, structured "
		   "replies, base:allocation)",
	.kind = NEXUS_DRIVER_EXPORT,
	.options = nbd_options,
	.export_start = nbd_export_start,
	.export_stop = nbd_export_stop,
	.export_conns = nbd_export_conns,
	.export_add_dev = nbd_export_add_dev,
	.export_remove_dev = nbd_export_remove_dev,
};
