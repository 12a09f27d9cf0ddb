/* SPDX-License-Identifier: MIT */
/* Listeners: bind, share, accept, drain.
 *
 * A listener is one or more listening sockets: a TCP host name means
 * every address it resolves to (as nbdkit and qemu-nbd do: `localhost`
 * is 127.0.0.1 and ::1 where /etc/hosts says both), a Unix socket is
 * one.  Within a context, users of one protocol that open the same
 * addresses share the listener (reference counted); the registry is
 * per context.
 *
 * Each socket has a multishot accept (one-shot accepts on kernels
 * without it) on a reactor of its own (socket i on reactor i mod N),
 * and every accepted connection goes to the next reactor in turn.  The
 * last close stops accepting, closes the connections still in the
 * listener's group (handshakes), and waits until every connection it
 * accepted is gone before it closes the sockets. */
#include "config.h"
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

#define MAX_ADDRS 8
#define DEFAULT_MAX_CONNS 1024
#define DEFAULT_RBUF (64u << 10)
#define RETRY_MS 100

struct lsock {
	struct nexus_listener *l;
	int fd;
	struct nexus_reactor *r;
	struct nexus_cqe_handler accept_ev, cancel_ev, cancel2_ev, retry_ev;
	struct __kernel_timespec retry_ts;
	bool armed;	     /* accept or retry outstanding (l->lock) */
	unsigned cancels;    /* cancel CQEs outstanding (l->lock) */
	bool multishot;
	char addr[72];
};

struct nexus_listener {
	struct nexus_listener *next; /* registry (reg_lock) */
	struct nexus_ctx *ctx;
	char *key;		     /* NULL: never shared */
	unsigned refs;		     /* (reg_lock) */
	char *unix_path;
	bool tcp;
	unsigned nsock;
	struct lsock sock[MAX_ADDRS];
	nexus_accept_fn accept;
	void *ud;
	void (*free_ud)(void *);
	atomic_uint max_conns;
	size_t rbuf_size;
	struct nexus_conn_group *g; /* connections not moved elsewhere */
	atomic_uint rr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned nconns;	     /* alive, accepted here (lock) */
	uint64_t refused;	     /* over max_conns (lock) */
	bool closing;		     /* (lock) */
	pthread_mutex_t ulock;	     /* nexus_listener_lock() */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nexus_listener *registry;

/* ---- accepting (on the socket's reactor) ---- */

static int arm(struct lsock *s);

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
		nexus_log(l->ctx, NEXUS_LOG_WARN, "%s: %u connections (the "
			  "limit): refusing more (%llu so far)",
			  l->sock[0].addr, max,
			  (unsigned long long)l->refused);
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
	r = nexus_ctx_reactor(l->ctx, atomic_fetch_add(&l->rr, 1) % (n ? n : 1));
	if (r == nexus_reactor_current())
		nx_conn_start(c, r, l->accept, l->ud);
	else if (nexus_reactor_post(r, start_msg, c) < 0)
		nx_conn_abandon(c);
}

static void disarmed(struct lsock *s)
{
	pthread_mutex_lock(&s->l->lock);
	s->armed = false;
	pthread_cond_broadcast(&s->l->cond);
	pthread_mutex_unlock(&s->l->lock);
}

static bool closing(struct nexus_listener *l)
{
	bool v;

	pthread_mutex_lock(&l->lock);
	v = l->closing;
	pthread_mutex_unlock(&l->lock);
	return v;
}

static void retry_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct lsock *s = container_of(ev, struct lsock, retry_ev);

	(void)res;
	(void)flags;
	if (closing(s->l) || arm(s) < 0)
		disarmed(s);
}

static void accept_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct lsock *s = container_of(ev, struct lsock, accept_ev);
	struct io_uring_sqe *sqe;

	if (res >= 0)
		accepted(s->l, res);
	if (flags & IORING_CQE_F_MORE)
		return;
	if (closing(s->l) || res == -ECANCELED) {
		disarmed(s);
		return;
	}
	if (res == -EINVAL && s->multishot) {
		/* a kernel without multishot accept: one at a time */
		s->multishot = false;
		if (arm(s) == 0)
			return;
	} else if (res >= 0 && arm(s) == 0) {
		return;
	}
	/* EMFILE and the like: try again a little later */
	if (res < 0)
		nexus_log(s->l->ctx, NEXUS_LOG_WARN, "accept on %s: %s",
			  s->addr, strerror(-res));
	s->retry_ts.tv_sec = 0;
	s->retry_ts.tv_nsec = RETRY_MS * 1000000ll;
	sqe = nexus_reactor_sqe(s->r, &s->retry_ev);
	if (sqe) {
		io_uring_prep_timeout(sqe, &s->retry_ts, 0, 0);
		return;
	}
	disarmed(s);
}

static int arm(struct lsock *s)
{
	struct io_uring_sqe *sqe = nexus_reactor_sqe(s->r, &s->accept_ev);

	if (!sqe)
		return -EAGAIN;
	if (s->multishot)
		io_uring_prep_multishot_accept(sqe, s->fd, NULL, NULL,
					       SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, s->fd, NULL, NULL, SOCK_CLOEXEC);
	return 0;
}

static int arm_fn(void *arg)
{
	struct lsock *s = arg;
	int rc = arm(s);

	if (!rc) {
		pthread_mutex_lock(&s->l->lock);
		s->armed = true;
		pthread_mutex_unlock(&s->l->lock);
	}
	return rc;
}

static void cancelled(struct lsock *s)
{
	pthread_mutex_lock(&s->l->lock);
	s->cancels--;
	pthread_cond_broadcast(&s->l->cond);
	pthread_mutex_unlock(&s->l->lock);
}

static void cancel_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	(void)res;
	(void)flags;
	cancelled(container_of(ev, struct lsock, cancel_ev));
}

static void cancel2_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	(void)res;
	(void)flags;
	cancelled(container_of(ev, struct lsock, cancel2_ev));
}

static int cancel_fn(void *arg)
{
	struct lsock *s = arg;
	struct io_uring_sqe *sqe;
	unsigned n = 0;

	/* the accept, or the retry timer standing in for it */
	sqe = nexus_reactor_sqe(s->r, &s->cancel_ev);
	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&s->accept_ev,
				       0);
		n++;
	}
	sqe = nexus_reactor_sqe(s->r, &s->cancel2_ev);
	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&s->retry_ev,
				       0);
		n++;
	}
	pthread_mutex_lock(&s->l->lock);
	s->cancels += n;
	pthread_mutex_unlock(&s->l->lock);
	return n == 2 ? 0 : -EAGAIN;
}

/* ---- binding ---- */

static void set_addr_text(struct lsock *s)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(s->addr, sizeof(s->addr), "?");
		return;
	}
	snprintf(s->addr, sizeof(s->addr),
		 ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

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
		*p = '\0';
		memmove(host, host + 1, strlen(host + 1) + 1);
		*port = spec + (p - host) + 2;
	} else {
		p = strrchr(host, ':');
		if (!p)
			return nexus_error(-EINVAL, "listen=%s: expected "
					   "HOST:PORT", spec);
		*p = '\0';
		*port = spec + (p - host) + 1;
	}
	if (!**port || strlen(*port) > 5 ||
	    strspn(*port, "0123456789") != strlen(*port) ||
	    atol(*port) > 65535)
		return nexus_error(-EINVAL, "listen=%s: bad port '%s'", spec,
				   *port);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Resolve @spec: up to MAX_ADDRS distinct addresses (sockaddr copies in
 * @sa), and the sharing key (NULL for port 0). */
static int resolve(const char *proto, const char *spec,
		   struct sockaddr_storage *sa, socklen_t *salen,
		   unsigned *n, char **key)
{
	char host[256], num[MAX_ADDRS][NI_MAXHOST], *sorted[MAX_ADDRS];
	struct addrinfo hints, *res = NULL;
	const char *port = "";
	size_t klen;
	int rc;

	*n = 0;
	*key = NULL;
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
	for (struct addrinfo *ai = res; ai && *n < MAX_ADDRS;
	     ai = ai->ai_next) {
		bool dup = false;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(*sa))
			continue;
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, num[*n],
				sizeof(num[0]), NULL, 0, NI_NUMERICHOST))
			continue;
		for (unsigned i = 0; i < *n; i++)
			dup |= !strcmp(num[i], num[*n]);
		if (dup)
			continue;
		memcpy(&sa[*n], ai->ai_addr, ai->ai_addrlen);
		salen[*n] = ai->ai_addrlen;
		sorted[*n] = num[*n];
		(*n)++;
	}
	freeaddrinfo(res);
	if (!*n)
		return nexus_error(-EADDRNOTAVAIL, "listen=%s: no IPv4 or "
				   "IPv6 address", spec);
	if (atol(port) == 0)
		return 0;
	/* the key does not depend on the resolver's order */
	qsort(sorted, *n, sizeof(*sorted), cmp_str);
	klen = strlen(proto) + strlen(port) + 16;
	for (unsigned i = 0; i < *n; i++)
		klen += strlen(sorted[i]) + 1;
	*key = malloc(klen);
	if (!*key)
		return nexus_error(-ENOMEM, "out of memory");
	snprintf(*key, klen, "%s|tcp|%s", proto, port);
	for (unsigned i = 0; i < *n; i++) {
		strcat(*key, "|");
		strcat(*key, sorted[i]);
	}
	return 0;
}

static void set_port(struct sockaddr_storage *sa, unsigned port)
{
	if (sa->ss_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

static unsigned get_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	return ss.ss_family == AF_INET
		       ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
		       : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int bind_one(struct sockaddr_storage *sa, socklen_t len)
{
	int fd, one = 1, rc;

	fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] and 0.0.0.0 are two sockets side by side */
	if (sa->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)sa, len) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int listen_tcp(struct nexus_listener *l, const char *spec,
		      struct sockaddr_storage *sa, socklen_t *salen,
		      unsigned n)
{
	unsigned port = 0;
	int fd, err = 0;

	for (unsigned i = 0; i < n; i++) {
		if (port)
			set_port(&sa[i], port);
		fd = bind_one(&sa[i], salen[i]);
		if (fd < 0) {
			/* a family this host cannot use (::1 without IPv6)
			 * is left out when another address works */
			if (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT) {
				err = err ? err : fd;
				continue;
			}
			return nexus_error(fd, "cannot listen on %s: %s",
					   spec, strerror(-fd));
		}
		if (!port)
			port = get_port(fd);
		l->sock[l->nsock].fd = fd;
		set_addr_text(&l->sock[l->nsock]);
		l->nsock++;
	}
	if (!l->nsock)
		return nexus_error(err, "cannot listen on %s: %s", spec,
				   strerror(-err));
	if (err)
		nexus_log(l->ctx, NEXUS_LOG_WARN, "listen=%s: an address of "
			  "it is not usable here (%s): left out", spec,
			  strerror(-err));
	l->tcp = true;
	return 0;
}

static int listen_unix(struct nexus_listener *l, const char *path)
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
	l->unix_path = strdup(path);
	if (!l->unix_path) {
		close(fd);
		unlink(path);
		return nexus_error(-ENOMEM, "out of memory");
	}
	l->sock[0].fd = fd;
	snprintf(l->sock[0].addr, sizeof(l->sock[0].addr), "unix:%.60s",
		 path);
	l->nsock = 1;
	return 0;
}

/* ---- lifetime ---- */

static void listener_free(struct nexus_listener *l)
{
	for (unsigned i = 0; i < l->nsock; i++)
		close(l->sock[i].fd);
	if (l->unix_path) {
		unlink(l->unix_path);
		free(l->unix_path);
	}
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
	bool busy;

	pthread_mutex_lock(&l->lock);
	l->closing = true;
	pthread_mutex_unlock(&l->lock);
	for (unsigned i = 0; i < l->nsock; i++)
		nexus_reactor_call(l->sock[i].r, cancel_fn, &l->sock[i]);
	pthread_mutex_lock(&l->lock);
	do {
		busy = false;
		for (unsigned i = 0; i < l->nsock; i++)
			busy |= l->sock[i].armed || l->sock[i].cancels;
		if (busy)
			pthread_cond_wait(&l->cond, &l->lock);
	} while (busy);
	pthread_mutex_unlock(&l->lock);
	/* connections still in the handshake */
	nexus_conn_group_close(l->g);
	nexus_conn_group_foreach(l->g, close_conn, "listener closed");
	pthread_mutex_lock(&l->lock);
	while (l->nconns)
		pthread_cond_wait(&l->cond, &l->lock);
	pthread_mutex_unlock(&l->lock);
	for (unsigned i = 0; i < l->nsock; i++)
		nexus_log(l->ctx, NEXUS_LOG_INFO, "stopped listening on %s",
			  l->sock[i].addr);
	if (l->free_ud)
		l->free_ud(l->ud);
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

int nexus_listener_open(struct nexus_ctx *ctx,
			const struct nexus_listen_opts *uo,
			struct nexus_listener **out)
{
	struct nexus_listen_opts o = NEXUS_LISTEN_OPTS_INIT;
	struct sockaddr_storage sa[MAX_ADDRS];
	socklen_t salen[MAX_ADDRS];
	unsigned naddr = 0, nr;
	struct nexus_listener *l, *e;
	char *key = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (!ctx || !uo || !out || uo->size < sizeof(size_t))
		return nexus_error(-EINVAL, "nexus_listener_open: NULL "
				   "argument");
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
	if (o.tcp) {
		rc = resolve(o.protocol, o.tcp, sa, salen, &naddr, &key);
		if (rc)
			return rc;
	} else {
		size_t n = strlen(o.protocol) + strlen(o.unix_path) + 8;

		key = malloc(n);
		if (!key)
			return nexus_error(-ENOMEM, "out of memory");
		snprintf(key, n, "%s|unix|%s", o.protocol, o.unix_path);
	}
	/* share */
	pthread_mutex_lock(&reg_lock);
	for (e = registry; key && e; e = e->next) {
		if (e->ctx == ctx && e->key && !strcmp(e->key, key)) {
			e->refs++;
			if (atomic_load(&e->max_conns) < o.max_conns)
				atomic_store(&e->max_conns, o.max_conns);
			pthread_mutex_unlock(&reg_lock);
			free(key);
			*out = e;
			return 1;
		}
	}
	pthread_mutex_unlock(&reg_lock);

	l = calloc(1, sizeof(*l));
	if (!l) {
		free(key);
		return nexus_error(-ENOMEM, "out of memory");
	}
	l->ctx = ctx;
	l->key = key;
	l->refs = 1;
	l->accept = o.accept;
	l->ud = o.user_data;
	l->free_ud = o.free_user_data;
	atomic_init(&l->max_conns, o.max_conns);
	l->rbuf_size = o.rbuf_size;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	pthread_mutex_init(&l->ulock, NULL);
	rc = nexus_conn_group_create(ctx, &l->g);
	if (!rc)
		rc = o.tcp ? listen_tcp(l, o.tcp, sa, salen, naddr)
			   : listen_unix(l, o.unix_path);
	if (rc) {
		l->free_ud = NULL;
		listener_free(l);
		return rc;
	}
	nr = (unsigned)nexus_ctx_reactor_count(ctx);
	for (unsigned i = 0; i < l->nsock; i++) {
		struct lsock *s = &l->sock[i];

		s->l = l;
		s->r = nexus_ctx_reactor(ctx, i % (nr ? nr : 1));
		s->multishot = true;
		s->accept_ev.fn = accept_event;
		s->cancel_ev.fn = cancel_event;
		s->cancel2_ev.fn = cancel2_event;
		s->retry_ev.fn = retry_event;
	}
	nx_ctx_budget_ref(ctx, 1);
	for (unsigned i = 0; i < l->nsock; i++) {
		rc = nexus_reactor_call(l->sock[i].r, arm_fn, &l->sock[i]);
		if (rc) {
			l->free_ud = NULL;
			listener_stop(l);
			return nexus_error(rc < 0 ? rc : -EIO, "cannot start "
					   "accepting connections");
		}
	}
	/* another opener may have raced us to the same key: then both
	 * serve (one binds first; the other failed with EADDRINUSE above,
	 * except for SO_REUSEPORT, which is not set) */
	pthread_mutex_lock(&reg_lock);
	l->next = registry;
	registry = l;
	pthread_mutex_unlock(&reg_lock);
	for (unsigned i = 0; i < l->nsock; i++)
		nexus_log(ctx, NEXUS_LOG_INFO, "listening on %s",
			  l->sock[i].addr);
	*out = l;
	return 0;
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
	if (last) {
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

unsigned nexus_listener_addr_count(const struct nexus_listener *l)
{
	return l ? l->nsock : 0;
}

const char *nexus_listener_addr(const struct nexus_listener *l, unsigned i)
{
	return l && i < l->nsock ? l->sock[i].addr : NULL;
}

void nexus_listener_lock(struct nexus_listener *l)
{
	pthread_mutex_lock(&l->ulock);
}

void nexus_listener_unlock(struct nexus_listener *l)
{
	pthread_mutex_unlock(&l->ulock);
}
