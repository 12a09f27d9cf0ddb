/* SPDX-License-Identifier: MIT */
/* nbd: serve devices over the Network Block Device protocol
 * (NetworkBlockDevice doc/proto.md, fixed newstyle handshake).
 *
 *     file:/var/lib/vol.img | nbd:listen=127.0.0.1:10809,name=vol
 *
 * This file holds the driver: options, exports and their devices (one
 * NBD export name each), and stop.  Exports on the same address share
 * the core's listener; the handshake (nbd-hs.c) finds a device by name
 * among all of them.  The protocol's pure logic is nbd-proto.c, the
 * transmission phase nbd-tx.c. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h" /* nx_now_ns(), nx_sized_copy_out() */
#include "core/tcp.h"
#include "nbd-int.h"

static const struct nexus_option_desc nbd_options[] = {
	{ "listen", NEXUS_OPT_STRING, NULL,
	  "TCP address HOST:PORT to listen on: every address HOST resolves "
	  "to (localhost: 127.0.0.1 and ::1 where /etc/hosts says both); "
	  "[::1]:PORT for IPv6, :PORT for all; port 0 picks a free port",
	  0, 0, 0, NULL },
	{ "socket", NEXUS_OPT_STRING, NULL, "Unix socket path to listen on",
	  0, 0, 0, NULL },
	{ "name", NEXUS_OPT_STRING, "", "export name (\"\" is the default "
	  "export) of a device added without a name", 0, 0, 0, NULL },
	{ "description", NEXUS_OPT_STRING, NULL,
	  "export description shown to clients", 0, 0, 0, NULL },
	{ "readonly", NEXUS_OPT_BOOL, "off", "refuse writes", 0, 0, 0, NULL },
	{ "handshake-timeout", NEXUS_OPT_UINT, "10",
	  "seconds a client may take to finish the handshake (0: no limit)",
	  0, 0, 86400, NULL },
	{ "max-inflight", NEXUS_OPT_UINT, "128",
	  "requests in flight per connection (1-4096)", 0, 1, 4096, NULL },
	{ "max-connections", NEXUS_OPT_UINT, "256",
	  "connections at once on the address, handshakes included; more "
	  "are closed at once (1-65536)", 0, 1, 65536, NULL },
	{ "mem-budget", NEXUS_OPT_SIZE, "256M",
	  "payload bytes the export's connections may hold at once (at "
	  "least 32M, the largest request); requests beyond wait, and the "
	  "context's budget (1G by default: nexus_ctx_opts.mem_budget, "
	  "nexus-pipe --mem-budget) bounds all exports together",
	  0, 32u << 20, 0, NULL },
	{ "idle-timeout", NEXUS_OPT_UINT, "0",
	  "seconds a connection with nothing in flight may send and receive "
	  "nothing before it is closed (0: no limit)", 0, 0, 31536000, NULL },
	{ "stall-timeout", NEXUS_OPT_UINT, "60",
	  "seconds a client that owes the server reads (replies waiting) or "
	  "a payload may make no progress before it is disconnected (0: no "
	  "limit)", 0, 0, 31536000, NULL },
	{ "stop-grace", NEXUS_OPT_UINT, "5",
	  "seconds clients get on stop to finish what is in flight before "
	  "they are disconnected", 0, 0, 86400, NULL },
	{ "stop-timeout", NEXUS_OPT_UINT, "10",
	  "seconds after which a stop stops waiting for device I/O still in "
	  "flight: it is abandoned (its results are dropped) and the stop "
	  "returns", 0, 1, 86400, NULL },
	{ "congestion", NEXUS_OPT_STRING, "auto",
	  "TCP congestion control of the connections: auto (on loopback, "
	  "cubic or reno instead of a pacing one such as bbr, which caps "
	  "what one connection carries there), system, or an algorithm",
	  0, 0, 0, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, 0, NULL },
};

static int nbd_check(const struct nexus_opts *opts)
{
	const char *lspec = nexus_opts_str(opts, "listen");
	const char *sock = nexus_opts_str(opts, "socket");
	const char *desc = nexus_opts_str(opts, "description");
	uint64_t grace = 5, tmo = 10;
	int rc;

	if (!!lspec == !!sock)
		return nexus_error(-EINVAL, "nbd: give exactly one of listen= "
				   "(HOST:PORT) and socket= (a Unix socket "
				   "path)");
	if (lspec && (rc = nexus_listen_check(lspec)))
		return rc;
	if (desc && strlen(desc) > NBD_MAX_STRING)
		return nexus_error(-EINVAL, "nbd: description is limited to "
				   "%u bytes", NBD_MAX_STRING);
	if ((rc = nexus_opts_u64(opts, "stop-grace", &grace)) ||
	    (rc = nexus_opts_u64(opts, "stop-timeout", &tmo)))
		return rc;
	if (grace > tmo)
		return nexus_error(-EINVAL, "nbd: stop-grace=%llu is longer "
				   "than stop-timeout=%llu",
				   (unsigned long long)grace,
				   (unsigned long long)tmo);
	return nx_tcp_congestion_check("nbd", nexus_opts_str(opts,
							     "congestion"));
}

static uint32_t pow2_floor(uint32_t v)
{
	uint32_t p = 1;

	while (p <= v / 2)
		p *= 2;
	return p;
}

/* The handshake's view of a device: flags and sizes. */
static int describe(struct nbd_dev *d, bool readonly)
{
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nbds_export *e = &d->desc;
	uint16_t f = 0;
	uint32_t max;
	int rc;

	rc = nexus_dev_get_info(d->dev, &in);
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
	e->name = d->name;
	e->description = d->ex->description;
	e->size = in.dev_size;
	e->tflags = f;
	e->min_block = in.logical_block_size ? in.logical_block_size : 1;
	e->pref_block = pow2_floor(in.physical_block_size);
	if (e->pref_block < e->min_block)
		e->pref_block = e->min_block;
	if (e->pref_block < 512)
		e->pref_block = 512;
	max = in.max_io_size < NBDS_MAX_PAYLOAD ? in.max_io_size
						 : NBDS_MAX_PAYLOAD;
	max &= ~(e->min_block - 1);
	if (max < e->pref_block)
		max = e->pref_block;
	e->max_payload = max;
	e->opaque = d;
	return 0;
}

/* ---- exports ---- */

static void *server_new(void *arg)
{
	(void)arg;
	return calloc(1, sizeof(struct nbd_server));
}

static void server_free(void *p)
{
	struct nbd_server *srv = p;

	free(srv->exps);
	free(srv);
}

/* Lock every listener of @ex, in address order (any two exports lock
 * the listeners they share in the same order). */
static void lock_all(struct nbd_export *ex)
{
	for (unsigned i = 0; i < ex->nlst; i++)
		nexus_listener_lock(ex->lst[i]);
}

static void unlock_all(struct nbd_export *ex)
{
	for (unsigned i = ex->nlst; i-- > 0;)
		nexus_listener_unlock(ex->lst[i]);
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a;
	uintptr_t y = (uintptr_t)*(void *const *)b;

	return x < y ? -1 : x > y;
}

static void catalogue_drop(struct nbd_export *ex, unsigned i)
{
	struct nbd_server *srv = nexus_listener_user_data(ex->lst[i]);

	for (unsigned k = 0; k < srv->n; k++) {
		if (srv->exps[k] == ex) {
			srv->exps[k] = srv->exps[--srv->n];
			break;
		}
	}
}

/* Add @ex to (or remove it from) the catalogue of each listener. */
static int catalogue(struct nbd_export *ex, bool add)
{
	for (unsigned i = 0; i < ex->nlst; i++) {
		struct nbd_server *srv = nexus_listener_user_data(ex->lst[i]);

		if (add) {
			if (srv->n == srv->cap) {
				unsigned cap = srv->cap ? 2 * srv->cap : 4;
				void *p = realloc(srv->exps,
						  cap * sizeof(*srv->exps));

				if (!p) {
					while (i--)
						catalogue_drop(ex, i);
					return nexus_error(-ENOMEM,
							   "out of memory");
				}
				srv->exps = p;
				srv->cap = cap;
			}
			srv->exps[srv->n++] = ex;
		} else {
			catalogue_drop(ex, i);
		}
	}
	return 0;
}

static void export_free(struct nbd_export *ex)
{
	if (!ex)
		return;
	for (unsigned i = 0; i < ex->nlst; i++)
		nexus_listener_close(ex->lst[i]);
	nexus_budget_destroy(ex->budget);
	pthread_mutex_destroy(&ex->lock);
	free((char *)ex->def_name);
	free(ex->description);
	free(ex);
}

static int read_opts(struct nbd_export *ex, const struct nexus_opts *o)
{
	const char *name = nexus_opts_str(o, "name");
	const char *desc = nexus_opts_str(o, "description");
	const char *cc = nexus_opts_str(o, "congestion");
	uint64_t hs = 10, mi = 128, idle = 0, stall = 60, grace = 5, stop = 10;
	int rc;

	if ((rc = nexus_opts_bool(o, "readonly", &ex->readonly)) ||
	    (rc = nexus_opts_u64(o, "handshake-timeout", &hs)) ||
	    (rc = nexus_opts_u64(o, "max-inflight", &mi)) ||
	    (rc = nexus_opts_u64(o, "idle-timeout", &idle)) ||
	    (rc = nexus_opts_u64(o, "stall-timeout", &stall)) ||
	    (rc = nexus_opts_u64(o, "stop-grace", &grace)) ||
	    (rc = nexus_opts_u64(o, "stop-timeout", &stop)))
		return rc;
	ex->hs_timeout_ms = hs * 1000;
	ex->max_inflight = (unsigned)mi;
	ex->idle_ms = idle * 1000;
	ex->stall_ms = stall * 1000;
	ex->stop_grace_ms = grace * 1000;
	ex->stop_timeout_ms = stop * 1000;
	snprintf(ex->congestion, sizeof(ex->congestion), "%s",
		 cc ? cc : "auto");
	if (!(ex->def_name = strdup(name ? name : "")) ||
	    (desc && !(ex->description = strdup(desc))))
		return nexus_error(-ENOMEM, "out of memory");
	return 0;
}

static int nbd_export_start(struct nexus_export *exp,
			    const struct nexus_opts *opts)
{
	struct nexus_listen_opts lo = NEXUS_LISTEN_OPTS_INIT;
	struct nexus_ctx *ctx = nexus_export_ctx(exp);
	struct nbd_export *ex;
	uint64_t maxc = 256, budget = 256u << 20;
	int rc;

	ex = calloc(1, sizeof(*ex));
	if (!ex)
		return nexus_error(-ENOMEM, "out of memory");
	ex->exp = exp;
	ex->ctx = ctx;
	pthread_mutex_init(&ex->lock, NULL);
	/* the core runs check() at parse time; not every path parses */
	if ((rc = nbd_check(opts)) || (rc = read_opts(ex, opts)) ||
	    (rc = nexus_opts_u64(opts, "max-connections", &maxc)) ||
	    (rc = nexus_opts_u64(opts, "mem-budget", &budget)))
		goto fail;
	lo.protocol = "nbd";
	lo.tcp = nexus_opts_str(opts, "listen");
	lo.unix_path = nexus_opts_str(opts, "socket");
	lo.accept = nbd_accept;
	lo.create_user_data = server_new;
	lo.free_user_data = server_free;
	lo.max_conns = (unsigned)maxc;
	lo.rbuf_size = NBD_RBUF_SIZE;
	rc = nexus_listener_open(ctx, &lo, ex->lst, NEXUS_LISTEN_MAX_ADDRS);
	if (rc < 0)
		goto fail;
	ex->nlst = (unsigned)rc;
	qsort(ex->lst, ex->nlst, sizeof(ex->lst[0]), cmp_ptr);
	rc = nexus_budget_create(nexus_ctx_budget(ctx), budget, &ex->budget);
	if (!rc) {
		lock_all(ex);
		rc = catalogue(ex, true);
		unlock_all(ex);
	}
	if (rc)
		goto fail;
	nexus_export_set_private(exp, ex);
	nbd_event(ctx, NEXUS_EVENT_EXPORT_STARTED, exp,
		  nexus_listener_addr(ex->lst[0]), "", NEXUS_REASON_NONE, 0,
		  "");
	return 0;
fail:
	export_free(ex);
	return rc;
}

static void nbd_export_stop(struct nexus_export *exp)
{
	struct nbd_export *ex = nexus_export_private(exp);

	if (!ex)
		return;
	lock_all(ex);
	catalogue(ex, false);
	unlock_all(ex);
	nbd_event(ex->ctx, NEXUS_EVENT_EXPORT_STOPPED, exp,
		  nexus_listener_addr(ex->lst[0]), "", NEXUS_REASON_USER, 0,
		  "");
	/* the devices were removed (and drained) already: what is left
	 * are handshakes, which the listener's last close cuts */
	export_free(ex);
	nexus_export_set_private(exp, NULL);
}

/* ---- devices ---- */

/* Whether a device on one of @ex's addresses has @name (all locked). */
static bool name_taken(struct nbd_export *ex, const char *name)
{
	for (unsigned i = 0; i < ex->nlst; i++) {
		struct nbd_server *srv = nexus_listener_user_data(ex->lst[i]);

		for (unsigned k = 0; k < srv->n; k++)
			for (struct nbd_dev *d = srv->exps[k]->devs; d;
			     d = d->next)
				if (!strcmp(d->name, name))
					return true;
	}
	return false;
}

static void dev_free(struct nbd_dev *d)
{
	nexus_conn_group_destroy(d->g);
	free(d->name);
	free(d);
}

static int nbd_export_add_dev(struct nexus_export *exp,
			      struct nexus_export_dev *ed)
{
	struct nbd_export *ex = nexus_export_private(exp);
	const char *name = nexus_export_dev_name(ed);
	struct nbd_dev *d;
	int rc;

	if (!name)
		name = ex->def_name;
	if (strlen(name) > NBD_MAX_STRING)
		return nexus_error(-EINVAL, "nbd: export names are limited to "
				   "%u bytes", NBD_MAX_STRING);
	d = calloc(1, sizeof(*d));
	if (!d || !(d->name = strdup(name))) {
		free(d);
		return nexus_error(-ENOMEM, "out of memory");
	}
	d->ex = ex;
	d->ed = ed;
	d->dev = nexus_export_dev_device(ed);
	rc = describe(d, ex->readonly || (nexus_export_dev_flags(ed) &
					  NEXUS_EXPORT_DEV_READ_ONLY));
	if (!rc)
		rc = nexus_conn_group_create(ex->ctx, &d->g);
	if (rc) {
		dev_free(d);
		return rc;
	}
	lock_all(ex);
	if (name_taken(ex, name)) {
		unlock_all(ex);
		dev_free(d);
		return nexus_error(-EEXIST, "nbd: an export named '%s' is "
				   "already served on %s", name,
				   nexus_listener_addr(ex->lst[0]));
	}
	d->next = ex->devs;
	ex->devs = d;
	unlock_all(ex);
	nexus_export_dev_set_private(ed, d);
	for (unsigned i = 0; i < ex->nlst; i++)
		nexus_log(ex->ctx, NEXUS_LOG_INFO, "nbd: export '%s' (%llu "
			  "bytes%s) on %s", d->name,
			  (unsigned long long)d->desc.size,
			  (d->desc.tflags & NBD_FLAG_READ_ONLY) ? ", read-only"
								 : "",
			  nexus_listener_addr(ex->lst[i]));
	return 0;
}

static void stop_graceful(struct nexus_conn *c, void *arg)
{
	(void)arg;
	nbd_tx_stop(c, false);
}

static void stop_force(struct nexus_conn *c, void *arg)
{
	(void)arg;
	nbd_tx_stop(c, true);
}

static void orphan(struct nexus_conn *c, void *arg)
{
	(void)arg;
	nbd_tx_orphan(c);
}

/* Drain the connections of @d within the export's deadlines: finish
 * (grace), cut, then abandon the device I/O still in flight. */
static void drain(struct nbd_export *ex, struct nbd_dev *d)
{
	uint64_t t0 = nx_now_ns(), spent;
	unsigned left;

	nexus_conn_group_close(d->g);
	nexus_conn_group_foreach(d->g, stop_graceful, NULL);
	if (nexus_conn_group_wait(d->g, ex->stop_grace_ms ? ex->stop_grace_ms
							  : 1) == 0)
		return;
	nexus_log(ex->ctx, NEXUS_LOG_WARN, "nbd: export '%s': clients still "
		  "busy after %llu ms, disconnecting them", d->name,
		  (unsigned long long)ex->stop_grace_ms);
	nexus_conn_group_foreach(d->g, stop_force, NULL);
	spent = (nx_now_ns() - t0) / 1000000;
	if (spent < ex->stop_timeout_ms &&
	    nexus_conn_group_wait(d->g, ex->stop_timeout_ms - spent) == 0)
		return;
	left = nexus_conn_group_count(d->g);
	nexus_log(ex->ctx, NEXUS_LOG_WARN, "nbd: export '%s': device I/O of "
		  "%u connection(s) still in flight after %llu ms "
		  "(stop-timeout): abandoned, its results are dropped",
		  d->name, left, (unsigned long long)ex->stop_timeout_ms);
	nexus_conn_group_foreach(d->g, orphan, NULL);
	nexus_conn_group_wait(d->g, 0);
}

static void nbd_export_remove_dev(struct nexus_export *exp,
				  struct nexus_export_dev *ed)
{
	struct nbd_export *ex = nexus_export_private(exp);
	struct nbd_dev *d = nexus_export_dev_private(ed);

	if (!d)
		return;
	pthread_mutex_lock(&ex->lock);
	/* no handshake finds it from now on */
	lock_all(ex);
	for (struct nbd_dev **p = &ex->devs; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	unlock_all(ex);
	drain(ex, d);
	nexus_export_dev_set_private(ed, NULL);
	dev_free(d);
	pthread_mutex_unlock(&ex->lock);
}

/* ---- listing ---- */

struct conns_arg {
	struct nexus_conn_info *out;
	unsigned max, have;
};

static void conn_info(struct nexus_conn *c, void *p)
{
	struct conns_arg *a = p;
	struct nexus_conn_info ci, *o;

	if (a->have >= a->max) {
		a->have++;
		return;
	}
	memset(&ci, 0, sizeof(ci));
	ci.size = sizeof(ci);
	ci.reactor = nexus_reactor_index(nexus_conn_reactor(c));
	nbd_tx_info(c, &ci);
	/* the caller's array: its elements are `size` bytes apart */
	o = (void *)((char *)a->out + (size_t)a->have * a->out->size);
	nx_sized_copy_out(o, &ci, sizeof(ci));
	a->have++;
}

static int nbd_export_conns(struct nexus_export *exp,
			    struct nexus_conn_info *out, unsigned max)
{
	struct nbd_export *ex = nexus_export_private(exp);
	struct conns_arg a = { out, max, 0 };
	int rc = 0;

	/* a removal waits for the walk (and the walk for a removal) */
	pthread_mutex_lock(&ex->lock);
	for (unsigned i = 0; !rc; i++) {
		struct nexus_export_dev *ed = nexus_export_dev_at(exp, i);
		struct nbd_dev *d;

		if (!ed)
			break;
		d = nexus_export_dev_private(ed);
		if (d)
			rc = nexus_conn_group_foreach(d->g, conn_info, &a);
	}
	pthread_mutex_unlock(&ex->lock);
	return rc < 0 ? rc : (int)a.have;
}

const struct nexus_driver nx_driver_nbd_export = {
	NEXUS_DRIVER_HEADER,
	.name = "nbd",
	.summary = "serve devices over NBD, one export name each (fixed "
		   "newstyle, structured replies, base:allocation)",
	.kind = NEXUS_DRIVER_EXPORT,
	.options = nbd_options,
	.check = nbd_check,
	.export_start = nbd_export_start,
	.export_stop = nbd_export_stop,
	.export_conns = nbd_export_conns,
	.export_add_dev = nbd_export_add_dev,
	.export_remove_dev = nbd_export_remove_dev,
};
