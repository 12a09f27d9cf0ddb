/* SPDX-License-Identifier: MIT */
/* mirror: a device kept on N children (replicas), the driver table.
 *
 *     ( file:/a.img ; file:/b.img ) | mirror:state=/var/lib/vol.state | ...
 *
 * Writes go to every in-sync child and to a child being rebuilt; reads
 * to one in-sync child (round robin, least pending, or a preferred one),
 * retried on another when they fail.  A child that fails or does not
 * answer within timeout-ms is faulted and I/O goes on without it; which
 * children are in sync is kept in a durable record (state=), written
 * before an I/O that faulted a child is acknowledged; in a file, or in
 * etcd (state=etcd://HOST:PORT/PREFIX, store-etcd.c), which also makes
 * one process at a time own the volume.  A child brought
 * back online is rebuilt (mirror-rebuild.c).  doc/mirror.md is the
 * user's guide: options, controls, states, the record, rebuilds. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mirror.h"

#define MIRROR_OPS                                                         \
	(NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |      \
	 NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |      \
	 NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |                             \
	 NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS))

static const char *const policies[] = { "round-robin", "least-pending",
					"prefer", NULL };
static const char *const rebuild_modes[] = { "auto", "manual", NULL };

static const struct nexus_option_desc mirror_options[] = {
	{ "state", NEXUS_OPT_STRING, NULL,
	  "file keeping which children are in sync (crash-safe), or "
	  "etcd://HOST:PORT/PREFIX", 0 },
	{ "state-ttl", NEXUS_OPT_UINT, "10",
	  "with state=etcd://: seconds the volume stays owned after this "
	  "process stops renewing its lease", 0, 2, 3600 },
	{ "source", NEXUS_OPT_UINT, NULL,
	  "child (from 0) whose data is the truth: the others are rebuilt "
	  "from it; needed when there is no state record", 0, 0, 15 },
	{ "assume-clean", NEXUS_OPT_BOOL, "off",
	  "the children are new and identical: all in sync, no rebuild", 0 },
	{ "read-policy", NEXUS_OPT_STRING, "round-robin",
	  "child a read goes to: round-robin, least-pending or prefer", 0,
	  0, 0, policies },
	{ "prefer", NEXUS_OPT_UINT, "0",
	  "with read-policy=prefer: the child reads go to while in sync", 0,
	  0, 15 },
	{ "timeout-ms", NEXUS_OPT_UINT, "30000",
	  "a child that does not answer an I/O in this time is faulted "
	  "(0: wait forever)", 0, 0, 3600000 },
	{ "region-size", NEXUS_OPT_SIZE, "1M",
	  "granularity of the dirty-region map of partial rebuilds (a power "
	  "of two)", 0, 4096, 1ull << 30 },
	{ "rebuild", NEXUS_OPT_STRING, "auto",
	  "auto: rebuild a child out of sync at open right away; manual: "
	  "when told (mirror.child.N=online)", 0, 0, 0, rebuild_modes },
	{ "rate", NEXUS_OPT_SIZE, "0",
	  "rebuild rate limit, bytes per second (0: none)", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static int policy_of(const char *s)
{
	for (int i = 0; policies[i]; i++)
		if (!strcmp(s, policies[i]))
			return i;
	return -1;
}

#define ETCD_SCHEME "etcd://"

static bool is_etcd(const char *state)
{
	return state && !strncmp(state, ETCD_SCHEME, strlen(ETCD_SCHEME));
}

#ifndef HAVE_ETCD
static int no_etcd(const char *state)
{
	return nexus_error(-ENOTSUP, "mirror: state=%s: libnexus was built "
			   "without etcd support (configure --with-etcd, with "
			   "libcurl and json-c)", state);
}
#endif

/* state= and state-ttl=, before anything is opened */
static int check_state(const struct nexus_opts *opts)
{
	const char *state = nexus_opts_str(opts, "state");

	if (!is_etcd(state))
		return nexus_opts_given(opts, "state-ttl")
			       ? nexus_error(-EINVAL, "mirror: state-ttl= is "
					     "for state=" ETCD_SCHEME "... only")
			       : 0;
#ifdef HAVE_ETCD
	return nx_store_etcd_check(state);
#else
	return no_etcd(state);
#endif
}

/* The store `state=` names: "app:NAME" (the application's), an etcd
 * URL, or a file path. */
static int open_store(struct nexus_ctx *ctx, const char *state,
		      const struct nexus_opts *opts, struct nx_store **out)
{
	if (!strncmp(state, "app:", 4))
		return nx_store_app_open(ctx, state + 4, out);
#ifdef HAVE_ETCD
	uint64_t ttl = 0;

	if (is_etcd(state)) {
		nexus_opts_u64(opts, "state-ttl", &ttl);
		return nx_store_etcd_open(state, (unsigned)ttl, out);
	}
#else
	(void)opts;
	if (is_etcd(state))
		return no_etcd(state);
#endif
	return nx_store_file_open(state, out);
}

static int mirror_check(const struct nexus_opts *opts)
{
	uint64_t r;
	int rc = check_state(opts);

	if (rc)
		return rc;

	if (!nexus_opts_u64(opts, "region-size", &r) && (r & (r - 1)))
		return nexus_error(-EINVAL, "mirror: region-size=%llu is not a "
				   "power of two", (unsigned long long)r);
	if (nexus_opts_given(opts, "source") &&
	    nexus_opts_given(opts, "assume-clean"))
		return nexus_error(-EINVAL, "mirror: source= and assume-clean= "
				   "exclude each other");
	return 0;
}

/* The mirror's geometry from its children's: the smallest size, the
 * largest block sizes, the operations and flags all of them have. */
static void inherit(struct nexus_dev *dev, struct mirror *m)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	uint32_t ops = MIRROR_OPS, all_flags = UINT32_MAX, any_flags = 0;

	in->dev_size = UINT64_MAX;
	in->logical_block_size = 1;
	in->physical_block_size = 1;
	in->optimal_io_size = 0;
	in->max_io_size = UINT32_MAX;
	for (unsigned i = 0; i < m->n; i++) {
		struct nexus_dev_info ci = NEXUS_DEV_INFO_INIT;

		nexus_dev_get_info(m->c[i].dev, &ci);
		m->c[i].size = ci.dev_size;
		if (ci.dev_size < in->dev_size)
			in->dev_size = ci.dev_size;
		if (ci.logical_block_size > in->logical_block_size)
			in->logical_block_size = ci.logical_block_size;
		if (ci.physical_block_size > in->physical_block_size)
			in->physical_block_size = ci.physical_block_size;
		if (ci.optimal_io_size > in->optimal_io_size)
			in->optimal_io_size = ci.optimal_io_size;
		if (ci.max_io_size && ci.max_io_size < in->max_io_size)
			in->max_io_size = ci.max_io_size;
		ops &= ci.ops | NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS);
		all_flags &= ci.flags;
		any_flags |= ci.flags;
	}
	in->ops = ops;
	in->flags = (all_flags & (NEXUS_DEV_TRIM_ZEROES | NEXUS_DEV_MULTI_CONN |
				  NEXUS_DEV_BLOCK_STATUS)) |
		    (any_flags & NEXUS_DEV_READ_ONLY);
	m->size = in->dev_size;
}

static void mirror_free(struct mirror *m)
{
	nx_store_close(m->store);
	free(m->recbuf);
	mirror_dirty_free(m);
	free(m->rstates);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}

static void mirror_close(struct nexus_dev *dev)
{
	struct mirror *m = nexus_dev_private(dev);

	if (!m)
		return;
	atomic_store(&m->closing, true);
	mirror_rebuild_stop(m);
	/* open() failing leaves the record as it was */
	mirror_state_stop(m, m->opened);
	/* legs of timed-out I/O may still be out on hung children */
	if (!mirror_rstates_free(m, 10000)) {
		nexus_log(m->ctx, NEXUS_LOG_ERROR, "%s: a child still has "
			  "requests out 10 s after close: keeping the "
			  "mirror's memory for them", dev->name);
		return;
	}
	mirror_free(m);
}

static int mirror_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct mirror *m = calloc(1, sizeof(*m));
	const char *path = nexus_opts_str(opts, "state");
	uint64_t u, region;
	int source = -1, rc;
	bool clean = false;

	if (!m)
		return nexus_error(-ENOMEM, "out of memory");
	m->dev = dev;
	m->ctx = nexus_dev_ctx(dev);
	m->n = m->active = nexus_dev_child_count(dev);
	m->rebuild_child = -1;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	for (unsigned i = 0; i < m->n; i++)
		m->c[i].dev = nexus_dev_child(dev, i);
	inherit(dev, m);
	m->nrstates = (unsigned)nexus_ctx_reactor_count(m->ctx);
	m->rstates = calloc(m->nrstates, sizeof(*m->rstates));
	nexus_opts_u64(opts, "region-size", &region);
	m->region_shift = (unsigned)__builtin_ctzll(region);
	m->nregions = (m->size + region - 1) >> m->region_shift;
	atomic_store(&m->read_policy,
		     policy_of(nexus_opts_str(opts, "read-policy")));
	nexus_opts_u64(opts, "prefer", &u);
	atomic_store(&m->prefer, (unsigned)u);
	nexus_opts_u64(opts, "timeout-ms", &u);
	atomic_store(&m->timeout_ns, u * 1000000);
	nexus_opts_u64(opts, "rate", &u);
	atomic_store(&m->rate, u);
	m->auto_rebuild = !strcmp(nexus_opts_str(opts, "rebuild"), "auto");
	if (!nexus_opts_u64(opts, "source", &u))
		source = (int)u;
	nexus_opts_bool(opts, "assume-clean", &clean);
	nexus_dev_set_private(dev, m);
	rc = m->rstates ? 0 : nexus_error(-ENOMEM, "out of memory");
	if (!rc && atomic_load(&m->prefer) >= m->n)
		rc = nexus_error(-EINVAL, "mirror: prefer=%u: there are %u "
				 "children", atomic_load(&m->prefer), m->n);
	if (!rc && path)
		rc = open_store(m->ctx, path, opts, &m->store);
	if (!rc)
		rc = mirror_dirty_alloc(m);
	if (!rc)
		rc = mirror_state_load(m, source, clean);
	if (!rc)
		rc = mirror_state_start(m);
	/* one at a time: the first starts, the others queue */
	for (unsigned i = 0; !rc && m->auto_rebuild && i < m->n; i++)
		if (!mirror_in_sync(m, i))
			rc = mirror_rebuild_start(m, i);
	if (rc) {
		mirror_close(dev);
		nexus_dev_set_private(dev, NULL);
	}
	else
		m->opened = true;
	return rc;
}

/* "child.N" = online | offline | fault */
static int control_child(struct mirror *m, const char *num, const char *v)
{
	char *end;
	unsigned long rank = strtoul(num, &end, 10);
	int rc, i;

	pthread_mutex_lock(&m->lock);
	i = *num && !*end && rank < MIRROR_SLOTS ? mirror_slot(m, (unsigned)rank)
						 : -1;
	pthread_mutex_unlock(&m->lock);
	if (i < 0)
		return nexus_error(-ENOENT, "%s: no child '%s' (0..%u)",
				   m->dev->name, num, m->active - 1);
	if (!strcmp(v, "online"))
		return mirror_rebuild_start(m, (unsigned)i);
	if (strcmp(v, "offline") && strcmp(v, "fault"))
		return nexus_error(-EINVAL, "%s: child.%lu=%s: expected "
				   "online, offline or fault", m->dev->name,
				   rank, v);
	if (!mirror_set_child(m, (unsigned)i,
			      !strcmp(v, "offline") ? NEXUS_DEV_STATE_OFFLINE
						    : NEXUS_DEV_STATE_FAULTED,
			      NEXUS_REASON_USER, 0, false, NULL))
		return nexus_error(-EBUSY, "%s: child %lu is the last one in "
				   "sync", m->dev->name, rank);
	rc = mirror_wait_durable(m);
	return rc ? nexus_error(rc, "%s: child %lu is %s, but the state "
				"record could not be written", m->dev->name,
				rank, v)
		  : 0;
}

static int mirror_control(struct nexus_dev *dev, const char *key,
			  const char *value)
{
	struct mirror *m = nexus_dev_private(dev);
	uint64_t u;
	int p;

	if (!strncmp(key, "child.", 6))
		return control_child(m, key + 6, value);
	if (!strcmp(key, "rebuild"))
		return mirror_rebuild_control(m, value);
	if (!strcmp(key, "rate")) {
		if (nx_parse_u64(value, true, &u))
			return nexus_error(-EINVAL, "%s: rate=%s: expected "
					   "bytes per second like 50M",
					   dev->name, value);
		atomic_store(&m->rate, u);
		pthread_mutex_lock(&m->lock);
		if (m->job)
			nexus_copy_set_rate(m->job, u);
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	if (!strcmp(key, "read-policy")) {
		if ((p = policy_of(value)) < 0)
			return nexus_error(-EINVAL, "%s: read-policy=%s: "
					   "expected round-robin, "
					   "least-pending or prefer",
					   dev->name, value);
		atomic_store(&m->read_policy, p);
		return 0;
	}
	if (!strcmp(key, "prefer") || !strcmp(key, "timeout-ms")) {
		bool pref = !strcmp(key, "prefer");

		int slot = -1;

		if (!nx_parse_u64(value, false, &u) && pref &&
		    u < MIRROR_SLOTS) {
			pthread_mutex_lock(&m->lock);
			slot = mirror_slot(m, (unsigned)u);
			pthread_mutex_unlock(&m->lock);
		}
		if (nx_parse_u64(value, false, &u) ||
		    (pref ? slot < 0 : u > 3600000))
			return nexus_error(-EINVAL, "%s: %s=%s: out of range",
					   dev->name, key, value);
		if (pref)
			atomic_store(&m->prefer, (unsigned)slot);
		else
			atomic_store(&m->timeout_ns, u * 1000000);
		return 0;
	}
	return nexus_error(-ENOENT, "%s: no setting '%s' (child.N, rebuild, "
			   "rate, read-policy, prefer, timeout-ms)", dev->name,
			   key);
}

const struct nexus_driver nx_driver_mirror = {
	NEXUS_DRIVER_HEADER,
	.name = "mirror",
	.summary = "keep a device on 2..16 children (replicas): fail over, "
		   "rebuild fully or partially, crash-safe state record",
	.kind = NEXUS_DRIVER_TRANSFORM,
	.ops = MIRROR_OPS,
	.per_io_size = sizeof(struct mirror_io),
	.min_children = 1,
	.max_children = NX_MAX_CHILDREN,
	.options = mirror_options,
	.check = mirror_check,
	.open = mirror_open,
	.close = mirror_close,
	.reactor_init = mirror_reactor_init,
	.reactor_fini = mirror_reactor_fini,
	.submit = mirror_submit,
	.control = mirror_control,
	.child_attach = mirror_child_attach,
	.child_detach = mirror_child_detach,
};
