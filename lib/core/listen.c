/* SPDX-License-Identifier: MIT */
/* Listeners: bind, share, accept, drain.
 *
 * A listener is one listening socket.  A TCP host name means every
 * address it resolves to (as nbdkit and qemu-nbd do: `localhost` is
 * 127.0.0.1 and ::1 where /etc/hosts says both), so opening one gives
 * a listener per address.  Within a context, the users of one protocol
 * share the listener of an address (reference counted): `localhost:P`
 * and `127.0.0.1:P` share the 127.0.0.1 socket.
 *
 * Each listener has a multishot accept (one-shot accepts on kernels
 * without it) on a reactor (listeners take the reactors in turn), and
 * every accepted connection goes to the next reactor in turn.  The last
 * close stops accepting, closes the connections still in the
 * listener's group (handshakes), and waits until every connection it
 * accepted is gone before it closes the socket. */
#include "config.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <liburing.h>

#include "conn.h"
#include "util.h"

#define DEFAULT_MAX_CONNS 1024
#define DEFAULT_RBUF (64u << 10)
#define RETRY_MS 100

/* One listening socket, shared by the openers of its address. */
struct nexus_listener {
	struct nexus_listener *next; /* registry (reg_lock) */
	struct nexus_ctx *ctx;
	char *key;		     /* NULL: never shared */
	unsigned refs;		     /* (reg_lock) */
	char proto[16];		     /* for messages: "nbd" */
	char addr[72];
	char *unix_path;
	bool tcp;
	int fd;
	struct nexus_reactor *r;     /* runs the accept */
	struct nexus_cqe_handler accept_ev, cancel_ev, cancel2_ev, retry_ev;
	struct __kernel_timespec retry_ts;
	bool multishot;
	nexus_accept_fn accept;
	void *ud;
	void (*free_ud)(void *);
	atomic_uint max_conns;
	size_t rbuf_size;
	struct nexus_conn_group *g; /* connections not moved elsewhere */
	atomic_uint rr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool armed;		     /* accept or retry outstanding (lock) */
	unsigned cancels;	     /* cancel CQEs outstanding (lock) */
	unsigned nconns;	     /* alive, accepted here (lock) */
	uint64_t refused;	     /* over max_conns (lock) */
	bool closing;		     /* (lock) */
	pthread_mutex_t ulock;	     /* nexus_listener_lock() */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nexus_listener *registry;
/* socket i of a context goes to reactor i mod N */
static atomic_uint next_reactor;

/* ---- accepting (on the listener's reactor) ---- */

static int arm(struct nexus_listener *l);

static void start_msg(void *arg)
{
	struct nexus_conn *c = arg;
	struct nexus_listener *l = nexus_conn_listener(c);

	nx_conn_start(c, nexus_reactor_current(), l->accept, l->ud);
}

static void accepted(struct nexus_listener *l, int fd)
{
	unsigned n = (unsigned)nexus_ctx_reactor_count(l->ctx);
	unsigned max = atomic_load(&l->max_conns);
	struct nexus_reactor *r;
	struct nexus_conn *c;
	bool refuse;

	pthread_mutex_lock(&l->lock);
	refuse = l->closing || l->nconns >= max;
	if (refuse && !l->closing && !(l->refused++ & 1023))
		nexus_log(l->ctx, NEXUS_LOG_WARN, "%s: %s: %u connections (the "
			  "limit): refusing more (%llu so far)", l->proto,
			  l->addr, max, (unsigned long long)l->refused);
	if (!refuse)
		l->nconns++;
	pthread_mutex_unlock(&l->lock);
	if (refuse) {
		close(fd);
		return;
	}
	c = nx_conn_new(l, fd, l->tcp, l->rbuf_size, l->g);
	if (!c) {
		close(fd);
		nx_listener_conn_gone(l);
		return;
	}
	r = nexus_ctx_reactor(l->ctx,
			      atomic_fetch_add(&l->rr, 1) % (n ? n : 1));
	if (r == nexus_reactor_current())
		nx_conn_start(c, r, l->accept, l->ud);
	else if (nexus_reactor_post(r, start_msg, c) < 0)
		nx_conn_abandon(c);
}

static void disarmed(struct nexus_listener *l)
{
	pthread_mutex_lock(&l->lock);
	l->armed = false;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static bool closing(struct nexus_listener *l)
{
	bool v;

	pthread_mutex_lock(&l->lock);
	v = l->closing;
	pthread_mutex_unlock(&l->lock);
	return v;
}

static void retry_event(struct nexus_cqe_handler *ev, int res,
			uint32_t flags)
{
	struct nexus_listener *l = container_of(ev, struct nexus_listener,
						retry_ev);

	(void)res;
	(void)flags;
	if (closing(l) || arm(l) < 0)
		disarmed(l);
}

static void accept_event(struct nexus_cqe_handler *ev, int res,
			 uint32_t flags)
{
	struct nexus_listener *l = container_of(ev, struct nexus_listener,
						accept_ev);
	struct io_uring_sqe *sqe;

	if (res >= 0)
		accepted(l, res);
	if (flags & IORING_CQE_F_MORE)
		return;
	if (closing(l) || res == -ECANCELED) {
		disarmed(l);
		return;
	}
	if (res == -EINVAL && l->multishot) {
		/* a kernel without multishot accept: one at a time */
		l->multishot = false;
		if (arm(l) == 0)
			return;
	} else if (res >= 0 && arm(l) == 0) {
		return;
	}
	/* EMFILE and the like: try again a little later */
	if (res < 0)
		nexus_log(l->ctx, NEXUS_LOG_WARN, "%s: accept on %s: %s",
			  l->proto, l->addr, strerror(-res));
	l->retry_ts.tv_sec = 0;
	l->retry_ts.tv_nsec = RETRY_MS * 1000000ll;
	sqe = nexus_reactor_sqe(l->r, &l->retry_ev);
	if (sqe) {
		io_uring_prep_timeout(sqe, &l->retry_ts, 0, 0);
		return;
	}
	disarmed(l);
}

static int arm(struct nexus_listener *l)
{
	struct io_uring_sqe *sqe = nexus_reactor_sqe(l->r, &l->accept_ev);

	if (!sqe)
		return -EAGAIN;
	if (l->multishot)
		io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL,
					       SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	return 0;
}

static int arm_fn(void *arg)
{
	struct nexus_listener *l = arg;
	int rc = arm(l);

	if (!rc) {
		pthread_mutex_lock(&l->lock);
		l->armed = true;
		pthread_mutex_unlock(&l->lock);
	}
	return rc;
}

static void cancelled(struct nexus_listener *l)
{
	pthread_mutex_lock(&l->lock);
	l->cancels--;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void cancel_event(struct nexus_cqe_handler *ev, int res,
			 uint32_t flags)
{
	(void)res;
	(void)flags;
	cancelled(container_of(ev, struct nexus_listener, cancel_ev));
}

static void cancel2_event(struct nexus_cqe_handler *ev, int res,
			  uint32_t flags)
{
	(void)res;
	(void)flags;
	cancelled(container_of(ev, struct nexus_listener, cancel2_ev));
}

static int cancel_fn(void *arg)
{
	struct nexus_listener *l = arg;
	struct io_uring_sqe *sqe;
	unsigned n = 0;

	/* the accept, or the retry timer standing in for it */
	sqe = nexus_reactor_sqe(l->r, &l->cancel_ev);
	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&l->accept_ev,
				       0);
		n++;
	}
	sqe = nexus_reactor_sqe(l->r, &l->cancel2_ev);
	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&l->retry_ev,
				       0);
		n++;
	}
	pthread_mutex_lock(&l->lock);
	l->cancels += n;
	pthread_mutex_unlock(&l->lock);
	return n == 2 ? 0 : -EAGAIN;
}

/* ---- addresses ---- */

static int split_hostport(const char *spec, char *host, size_t cap,
			  const char **port)
{
	size_t n = strlen(spec);
	char *p;

	if (n >= cap)
		return nexus_error(-EINVAL, "listen address too long");
	memcpy(host, spec, n + 1);
	if (host[0] == '[') {
		p = strchr(host, ']');
		if (!p || p[1] != ':')
			return nexus_error(-EINVAL, "listen=%s: expected "
					   "[IPV6]:PORT", spec);
		*port = spec + (p - host) + 2;
		*p = '\0';
		memmove(host, host + 1, strlen(host + 1) + 1);
	} else {
		p = strrchr(host, ':');
		if (!p)
			return nexus_error(-EINVAL, "listen=%s: expected "
					   "HOST:PORT", spec);
		*port = spec + (p - host) + 1;
		*p = '\0';
	}
	if (!**port || strlen(*port) > 5 ||
	    strspn(*port, "0123456789") != strlen(*port) ||
	    atol(*port) > 65535)
		return nexus_error(-EINVAL, "listen=%s: bad port '%s'", spec,
				   *port);
	return 0;
}

/* A host name of RFC 1123 labels: letters, digits and inner hyphens,
 * 1-63 bytes each, dot-separated (a trailing dot allowed). */
static bool host_name_ok(const char *h)
{
	size_t label = 0;

	for (const char *p = h; *p; p++) {
		if (*p == '.') {
			if (!label || p[-1] == '-')
				return false;
			label = 0;
		} else if (isalnum((unsigned char)*p) ||
			   (*p == '-' && label)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return strlen(h) < 254 && (label == 0 || h[strlen(h) - 1] != '-');
}

int nexus_listen_check(const char *spec)
{
	unsigned char bin[sizeof(struct in6_addr)];
	const char *port = "";
	char host[256];
	int rc;

	if (!spec || !*spec)
		return nexus_error(-EINVAL, "listen address is empty: expected "
				   "HOST:PORT");
	rc = split_hostport(spec, host, sizeof(host), &port);
	if (rc || !*host)
		return rc;
	if (spec[0] == '[' || strchr(host, ':')) {
		if (inet_pton(AF_INET6, host, bin) != 1)
			return nexus_error(-EINVAL, "listen=%s: '%s' is not an "
					   "IPv6 address", spec, host);
		return 0;
	}
	if (strspn(host, "0123456789.") == strlen(host)) {
		if (inet_pton(AF_INET, host, bin) != 1)
			return nexus_error(-EINVAL, "listen=%s: '%s' is not an "
					   "IPv4 address", spec, host);
		return 0;
	}
	if (!host_name_ok(host))
		return nexus_error(-EINVAL, "listen=%s: '%s' is not a host "
				   "name", spec, host);
	return 0;
}

struct addr {
	struct sockaddr_storage sa;
	socklen_t len;
	char text[72]; /* "127.0.0.1:P", "[::1]:P" */
};

static void addr_text(struct addr *a)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo((struct sockaddr *)&a->sa, a->len, host, sizeof(host),
			serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(a->text, sizeof(a->text), "?");
		return;
	}
	snprintf(a->text, sizeof(a->text),
		 a->sa.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host,
		 serv);
}

/* Every distinct IPv4 and IPv6 address of @spec, in the resolver's
 * order. */
static int resolve(const char *spec, struct addr *out, unsigned max,
		   unsigned *n)
{
	struct addrinfo hints, *res = NULL;
	const char *port = "";
	char host[256];
	int rc;

	*n = 0;
	rc = split_hostport(spec, host, sizeof(host), &port);
	if (rc)
		return rc;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (rc)
		return nexus_error(-EINVAL, "listen=%s: %s", spec,
				   gai_strerror(rc));
	for (struct addrinfo *ai = res; ai && *n < max; ai = ai->ai_next) {
		struct addr *a = &out[*n];
		bool dup = false;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(a->sa))
			continue;
		memcpy(&a->sa, ai->ai_addr, ai->ai_addrlen);
		a->len = ai->ai_addrlen;
		addr_text(a);
		for (unsigned i = 0; i < *n; i++)
			dup |= !strcmp(out[i].text, a->text);
		if (!dup)
			(*n)++;
	}
	freeaddrinfo(res);
	if (!*n)
		return nexus_error(-EADDRNOTAVAIL, "listen=%s: no IPv4 or "
				   "IPv6 address", spec);
	return 0;
}

static unsigned port_of(const struct sockaddr_storage *sa)
{
	return sa->ss_family == AF_INET
		       ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
		       : ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

static void set_port(struct addr *a, unsigned port)
{
	if (a->sa.ss_family == AF_INET)
		((struct sockaddr_in *)&a->sa)->sin_port =
			htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&a->sa)->sin6_port =
			htons((uint16_t)port);
	addr_text(a);
}

static int bind_tcp(struct addr *a)
{
	int fd, one = 1, rc;

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] and 0.0.0.0 are two sockets side by side */
	if (a->sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a->sa, a->len) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!port_of(&a->sa)) {
		a->len = sizeof(a->sa);
		if (getsockname(fd, (struct sockaddr *)&a->sa, &a->len) == 0)
			addr_text(a);
	}
	return fd;
}

static int bind_unix(const char *path)
{
	struct sockaddr_un sa;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return nexus_error(-EINVAL, "socket path '%s' is empty or "
				   "longer than %zu bytes", path,
				   sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nexus_error(-errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		close(fd);
		return nexus_error(rc, "cannot listen on %s: %s%s", path,
				   strerror(-rc),
				   rc == -EADDRINUSE ? " (remove a stale "
						       "socket first)" : "");
	}
	return fd;
}

/* ---- lifetime ---- */

static void listener_free(struct nexus_listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	if (l->unix_path) {
		unlink(l->unix_path);
		free(l->unix_path);
	}
	if (l->free_ud && l->ud)
		l->free_ud(l->ud);
	nexus_conn_group_destroy(l->g);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->ulock);
	free(l->key);
	free(l);
}

static void close_conn(struct nexus_conn *c, void *arg)
{
	nexus_conn_close(c, arg);
}

/* Stop accepting, drain, free.  Application thread. */
static void listener_stop(struct nexus_listener *l)
{
	pthread_mutex_lock(&l->lock);
	l->closing = true;
	pthread_mutex_unlock(&l->lock);
	nexus_reactor_call(l->r, cancel_fn, l);
	pthread_mutex_lock(&l->lock);
	while (l->armed || l->cancels)
		pthread_cond_wait(&l->cond, &l->lock);
	pthread_mutex_unlock(&l->lock);
	/* connections still in the handshake */
	nexus_conn_group_close(l->g);
	nexus_conn_group_foreach(l->g, close_conn, "listener closed");
	pthread_mutex_lock(&l->lock);
	while (l->nconns)
		pthread_cond_wait(&l->cond, &l->lock);
	pthread_mutex_unlock(&l->lock);
	nexus_log(l->ctx, NEXUS_LOG_INFO, "%s: stopped listening on %s",
		  l->proto, l->addr);
	nx_ctx_budget_ref(l->ctx, -1);
	listener_free(l);
}

void nx_listener_conn_gone(struct nexus_listener *l)
{
	pthread_mutex_lock(&l->lock);
	l->nconns--;
	if (!l->nconns)
		pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

/* A new listener on socket @fd (taken), accepting. */
static int listener_new(struct nexus_ctx *ctx,
			const struct nexus_listen_opts *o, int fd, bool tcp,
			const char *text, char *key,
			struct nexus_listener **out)
{
	unsigned nr = (unsigned)nexus_ctx_reactor_count(ctx);
	struct nexus_listener *l;
	int rc;

	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		free(key);
		return nexus_error(-ENOMEM, "out of memory");
	}
	l->ctx = ctx;
	l->key = key;
	l->refs = 1;
	l->fd = fd;
	l->tcp = tcp;
	snprintf(l->proto, sizeof(l->proto), "%s", o->protocol);
	snprintf(l->addr, sizeof(l->addr), "%s", text);
	l->accept = o->accept;
	atomic_init(&l->max_conns, o->max_conns);
	l->rbuf_size = o->rbuf_size;
	l->multishot = true;
	l->accept_ev.fn = accept_event;
	l->cancel_ev.fn = cancel_event;
	l->cancel2_ev.fn = cancel2_event;
	l->retry_ev.fn = retry_event;
	l->r = nexus_ctx_reactor(ctx, atomic_fetch_add(&next_reactor, 1) %
					      (nr ? nr : 1));
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	pthread_mutex_init(&l->ulock, NULL);
	if (!tcp && !(l->unix_path = strdup(o->unix_path))) {
		unlink(o->unix_path);
		listener_free(l);
		return nexus_error(-ENOMEM, "out of memory");
	}
	rc = nexus_conn_group_create(ctx, &l->g);
	if (!rc && o->create_user_data &&
	    !(l->ud = o->create_user_data(o->arg)))
		rc = nexus_error(-ENOMEM, "out of memory");
	if (rc) {
		listener_free(l);
		return rc;
	}
	l->free_ud = o->free_user_data;
	nx_ctx_budget_ref(ctx, 1);
	rc = nexus_reactor_call(l->r, arm_fn, l);
	if (rc) {
		listener_stop(l);
		return nexus_error(rc < 0 ? rc : -EIO, "cannot start "
				   "accepting connections");
	}
	if (key) {
		pthread_mutex_lock(&reg_lock);
		l->next = registry;
		registry = l;
		pthread_mutex_unlock(&reg_lock);
	}
	nexus_log(ctx, NEXUS_LOG_INFO, "%s: listening on %s", l->proto,
		  l->addr);
	*out = l;
	return 0;
}

/* The context's listener with @key, with one more reference. */
static struct nexus_listener *share(struct nexus_ctx *ctx, const char *key,
				    unsigned max_conns)
{
	struct nexus_listener *e;

	if (!key)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	for (e = registry; e; e = e->next)
		if (e->ctx == ctx && !strcmp(e->key, key))
			break;
	if (e) {
		e->refs++;
		if (atomic_load(&e->max_conns) < max_conns)
			atomic_store(&e->max_conns, max_conns);
	}
	pthread_mutex_unlock(&reg_lock);
	return e;
}

static char *make_key(const char *proto, const char *kind,
		      const char *addr)
{
	size_t n = strlen(proto) + strlen(kind) + strlen(addr) + 3;
	char *k = malloc(n);

	if (k)
		snprintf(k, n, "%s|%s|%s", proto, kind, addr);
	return k;
}

static int open_unix(struct nexus_ctx *ctx, const struct nexus_listen_opts *o,
		     struct nexus_listener **out)
{
	char *key = make_key(o->protocol, "unix", o->unix_path);
	char text[80];
	int fd;

	if (!key)
		return nexus_error(-ENOMEM, "out of memory");
	if ((*out = share(ctx, key, o->max_conns)) != NULL) {
		free(key);
		return 1;
	}
	fd = bind_unix(o->unix_path);
	if (fd < 0) {
		free(key);
		return fd;
	}
	snprintf(text, sizeof(text), "unix:%.70s", o->unix_path);
	fd = listener_new(ctx, o, fd, false, text, key, out);
	return fd ? fd : 1;
}

static int open_tcp(struct nexus_ctx *ctx, const struct nexus_listen_opts *o,
		    struct nexus_listener **out, unsigned max)
{
	struct addr a[NEXUS_LISTEN_MAX_ADDRS];
	unsigned na, n = 0, port = 0;
	int rc, skipped = 0;

	rc = resolve(o->tcp, a, max < NEXUS_LISTEN_MAX_ADDRS
					? max : NEXUS_LISTEN_MAX_ADDRS, &na);
	if (rc)
		return rc;
	for (unsigned i = 0; i < na; i++) {
		bool pick = !port_of(&a[i].sa);
		char *key = NULL;
		int fd;

		if (pick && port)
			set_port(&a[i], port); /* one port for all */
		if (!pick) {
			key = make_key(o->protocol, "tcp", a[i].text);
			if (!key) {
				rc = nexus_error(-ENOMEM, "out of memory");
				goto fail;
			}
			if ((out[n] = share(ctx, key, o->max_conns))) {
				free(key);
				n++;
				continue;
			}
		}
		fd = bind_tcp(&a[i]);
		if (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT) {
			/* a family this host cannot use (::1 without
			 * IPv6) is left out when another address works */
			free(key);
			skipped = fd;
			nexus_log(ctx, NEXUS_LOG_WARN, "%s: listen=%s: %s is "
				  "not usable here (%s): left out",
				  o->protocol, o->tcp, a[i].text,
				  strerror(-fd));
			continue;
		}
		if (fd < 0) {
			free(key);
			rc = nexus_error(fd, "cannot listen on %s (%s): %s",
					 a[i].text, o->tcp, strerror(-fd));
			goto fail;
		}
		if (pick)
			port = port_of(&a[i].sa);
		rc = listener_new(ctx, o, fd, true, a[i].text, key, &out[n]);
		if (rc)
			goto fail;
		n++;
	}
	if (!n)
		return nexus_error(skipped, "cannot listen on %s: %s", o->tcp,
				   strerror(-skipped));
	return (int)n;
fail:
	while (n)
		nexus_listener_close(out[--n]);
	return rc;
}

int nexus_listener_open(struct nexus_ctx *ctx,
			const struct nexus_listen_opts *uo,
			struct nexus_listener **out, unsigned max)
{
	struct nexus_listen_opts o = NEXUS_LISTEN_OPTS_INIT;
	int rc;

	if (!ctx || !uo || !out || !max || uo->size < sizeof(size_t))
		return nexus_error(-EINVAL, "nexus_listener_open: NULL "
				   "argument");
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "nexus_listener_open from a "
				   "reactor thread would deadlock");
	memcpy(&o, uo, uo->size < sizeof(o) ? uo->size : sizeof(o));
	o.size = sizeof(o);
	if (!o.protocol || !o.accept || !!o.tcp == !!o.unix_path)
		return nexus_error(-EINVAL, "nexus_listener_open: give a "
				   "protocol, an accept function, and one of "
				   "tcp and unix_path");
	if (!o.max_conns)
		o.max_conns = DEFAULT_MAX_CONNS;
	if (!o.rbuf_size)
		o.rbuf_size = DEFAULT_RBUF;
	if (o.unix_path) {
		rc = open_unix(ctx, &o, out);
		return rc < 0 ? rc : 1;
	}
	return open_tcp(ctx, &o, out, max);
}

int nexus_listener_close(struct nexus_listener *l)
{
	bool last;

	if (!l)
		return 0;
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "nexus_listener_close from a "
				   "reactor thread would deadlock");
	pthread_mutex_lock(&reg_lock);
	last = !--l->refs;
	if (last && l->key) {
		for (struct nexus_listener **p = &registry; *p;
		     p = &(*p)->next) {
			if (*p == l) {
				*p = l->next;
				break;
			}
		}
	}
	pthread_mutex_unlock(&reg_lock);
	if (last)
		listener_stop(l);
	return 0;
}

void *nexus_listener_user_data(const struct nexus_listener *l)
{
	return l ? l->ud : NULL;
}

const char *nexus_listener_addr(const struct nexus_listener *l)
{
	return l ? l->addr : NULL;
}

void nexus_listener_lock(struct nexus_listener *l)
{
	pthread_mutex_lock(&l->ulock);
}

void nexus_listener_unlock(struct nexus_listener *l)
{
	pthread_mutex_unlock(&l->ulock);
}
