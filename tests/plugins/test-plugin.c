/* SPDX-License-Identifier: MIT */
/* Test plugins for the loader, one shared object per VARIANT:
 *
 *   GOOD       (nexus-tsrc.so) source "tsrc" (RAM disk) and transform "tcount" (declares
 *              READ|WRITE|FLUSH only; aborts if it ever sees anything
 *              else; writes through a pool bounce buffer; per-I/O
 *              context and per-reactor state), and export "tprobe"
 *              (reads the device once from a reactor, lists it as a
 *              connection)
 *   OLD        source "oldsrc" with a table of an older, smaller ABI
 *              (struct_size ends before block_status) and garbage past
 *              it, which the loader must never read
 *   BIGZERO    "bigzero": a table from a "newer header", larger than
 *              ours, newer fields left zero (accepted)
 *   BIGSET     "bigset": the same with a newer field set (refused)
 *   NEWABI     "newabi": abi_version = NEXUS_DRIVER_ABI_VERSION + 1
 *   WRONGKIND  "wrongkind": kind 7
 *   NOENTRY    an ELF shared object without the entry point
 *   DATAENTRY  nexus_plugin_entry is a data object, not a function
 *   EMPTY      the entry point returns an empty list
 *   NULLNAME   a driver with a NULL name
 *   BADNAME    a driver named "bad name"
 *   NOSUBMIT   a source without submit()
 *   NOOPS      a transform declaring no operation
 *   BADOPTTYPE an option of type 9
 *   DUPOPT     an option declared twice
 *   BADDEFAULT a SIZE option whose default is "lots"
 *   MANYOPTS   an option table with no terminator in sight
 *   SMALL      struct_size 8
 *   HUGE       struct_size 1 GiB
 *   UNALIGNED  struct_size not a multiple of the table's alignment
 *   DUPNAME    a source named "mem" (a built-in)
 *   DUPSELF    two transforms named "twice"
 *   MISMATCH   file nexus-mismatch.so provides "not-the-file-name"
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nexus/nexus_driver.h>
#include "../submit.h"

#define ALL_OPS                                                             \
	(NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |       \
	 NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |        \
	 NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES))

/* ---- a tiny RAM disk, the source of most variants ---- */

#define UNUSED __attribute__((unused))

struct ram {
	unsigned char *data;
	uint64_t size;
};

UNUSED static const struct nexus_option_desc ram_options[] = {
	{ "size", NEXUS_OPT_SIZE, "1M", "device size", NEXUS_OPTF_POSITIONAL },
	{ NULL, 0, NULL, NULL, 0 },
};

UNUSED static int ram_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	struct ram *r;
	uint64_t size;
	int rc = nexus_opts_u64(opts, "size", &size);

	if (rc)
		return rc;
	if (!size || size % 512 || size > (64u << 20))
		return nexus_error(-EINVAL, "test: bad size");
	r = calloc(1, sizeof(*r));
	if (!r || !(r->data = calloc(1, size))) {
		free(r);
		return nexus_error(-ENOMEM, "test: out of memory");
	}
	r->size = size;
	in->dev_size = size;
	in->logical_block_size = 512;
	in->flags |= NEXUS_DEV_TRIM_ZEROES | NEXUS_DEV_BLOCK_STATUS;
	nexus_dev_set_private(dev, r);
	return 0;
}

UNUSED static void ram_close(struct nexus_dev *dev)
{
	struct ram *r = nexus_dev_private(dev);

	free(r->data);
	free(r);
}

UNUSED static int ram_submit(struct nexus_io *io)
{
	struct ram *r = nexus_dev_private(io->dev);
	unsigned char *p = r->data + io->offset;

	switch (io->op) {
	case NEXUS_OP_READ:
	case NEXUS_OP_WRITE:
		for (int i = 0; i < io->iovcnt; i++) {
			if (io->op == NEXUS_OP_READ)
				memcpy(io->iov[i].iov_base, p,
				       io->iov[i].iov_len);
			else
				memcpy(p, io->iov[i].iov_base,
				       io->iov[i].iov_len);
			p += io->iov[i].iov_len;
		}
		break;
	case NEXUS_OP_TRIM:
	case NEXUS_OP_WRITE_ZEROES:
		memset(p, 0, io->length);
		break;
	default:
		break;
	}
	nexus_io_complete(io, 0);
	return 0;
}

#define RAM_FIELDS                                                          \
	.kind = NEXUS_DRIVER_SOURCE, .ops = ALL_OPS, .options = ram_options, \
	.open = ram_open, .close = ram_close, .submit = ram_submit

#if defined(VARIANT_GOOD)
/* ---- tcount: a transform with a declared subset of operations ---- */

/* Inspected by the test through dlsym(). */
_Atomic uint32_t tcount_seen_ops;
_Atomic unsigned tcount_reactor_inits;
_Atomic unsigned tcount_reactor_finis;
_Atomic uint64_t tcount_ios;

#define TC_MAGIC 0x7c0417c0u

struct tc_rstate {
	unsigned reactor;
	uint64_t ios;
};

struct tc_io {
	uint32_t magic;
	struct nexus_io *io;
	void *bounce;
	size_t len;
	struct iovec iov;
};

static int tc_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	struct nexus_dev_info ci = NEXUS_DEV_INFO_INIT;
	int rc;

	(void)opts;
	rc = nexus_dev_get_info(nexus_dev_child(dev, 0), &ci);
	if (rc)
		return rc;
	in->dev_size = ci.dev_size;
	in->logical_block_size = ci.logical_block_size;
	in->flags = ci.flags & NEXUS_DEV_READ_ONLY;
	/* Try to advertise more than declared: the core must mask it. */
	in->ops = ALL_OPS;
	nexus_log(nexus_dev_ctx(dev), NEXUS_LOG_DEBUG, "tcount: open");
	return 0;
}

static int tc_reactor_init(struct nexus_dev *dev, struct nexus_reactor *r,
			   void **rstate)
{
	struct tc_rstate *rs = calloc(1, sizeof(*rs));

	(void)dev;
	if (!rs)
		return -ENOMEM;
	if (nexus_reactor_current() != r)
		abort(); /* must run on its own reactor */
	rs->reactor = nexus_reactor_index(r);
	*rstate = rs;
	atomic_fetch_add(&tcount_reactor_inits, 1);
	return 0;
}

static void tc_reactor_fini(struct nexus_dev *dev, struct nexus_reactor *r,
			    void *rstate)
{
	(void)dev;
	if (nexus_reactor_current() != r)
		abort();
	free(rstate);
	atomic_fetch_add(&tcount_reactor_finis, 1);
}

static void tc_done(void *arg, int res)
{
	struct tc_io *t = arg;
	struct nexus_io *io = t->io;

	if (t->magic != TC_MAGIC || nexus_reactor_current() != io->reactor)
		abort();
	if (t->bounce)
		nexus_buf_free(io->reactor, t->bounce, t->len);
	t->magic = 0;
	nexus_io_complete(io, res < 0 ? res : 0);
}

static int tc_submit(struct nexus_io *io)
{
	struct tc_io *t = io->driver_ctx;
	struct tc_rstate *rs = io->rstate;
	struct nexus_dev *child = nexus_dev_child(io->dev, 0);
	unsigned char *p;
	int rc;

	if (io->op != NEXUS_OP_READ && io->op != NEXUS_OP_WRITE &&
	    io->op != NEXUS_OP_FLUSH)
		abort(); /* the core must never pass an undeclared op */
	if (!t || !rs || rs->reactor != nexus_reactor_index(io->reactor))
		abort();
	atomic_fetch_or(&tcount_seen_ops, NEXUS_OP_BIT(io->op));
	atomic_fetch_add(&tcount_ios, 1);
	rs->ios++;
	if (io->op != NEXUS_OP_WRITE)
		return nexus_io_forward(io, child);
	/* WRITE through a pool buffer, as an encrypting transform would */
	t->magic = TC_MAGIC;
	t->io = io;
	t->len = io->length;
	t->bounce = nexus_buf_alloc(io->reactor, t->len);
	if (!t->bounce)
		return -ENOMEM;
	p = t->bounce;
	for (int i = 0; i < io->iovcnt; i++) {
		memcpy(p, io->iov[i].iov_base, io->iov[i].iov_len);
		p += io->iov[i].iov_len;
	}
	t->iov.iov_base = t->bounce;
	t->iov.iov_len = t->len;
	rc = test_submit(child, NEXUS_OP_WRITE, &t->iov, 1, io->offset, 0,
			      io->flags, tc_done, t);
	if (rc)
		nexus_buf_free(io->reactor, t->bounce, t->len);
	return rc;
}

static const struct nexus_driver tsrc = {
	NEXUS_DRIVER_HEADER,
	.name = "tsrc",
	.summary = "test RAM disk",
	RAM_FIELDS,
};

static const struct nexus_driver tcount = {
	NEXUS_DRIVER_HEADER,
	.name = "tcount",
	.summary = "test transform: READ, WRITE and FLUSH only",
	.kind = NEXUS_DRIVER_TRANSFORM,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH),
	.per_io_size = sizeof(struct tc_io),
	.open = tc_open,
	.reactor_init = tc_reactor_init,
	.reactor_fini = tc_reactor_fini,
	.submit = tc_submit,
};

/* ---- tprobe: an export that reads the device once from a reactor ---- */

struct probe {
	struct nexus_export *exp;
	struct nexus_dev *dev;
	uint64_t expect;
	unsigned char buf[4096];
	struct iovec iov;
	_Atomic int done;
	int result;
	uint64_t requests;
};

static const struct nexus_option_desc probe_options[] = {
	{ "expect", NEXUS_OPT_UINT, NULL, "value of the first byte",
	  NEXUS_OPTF_REQUIRED },
	{ NULL, 0, NULL, NULL, 0 },
};

static void probe_done(void *arg, int res)
{
	struct probe *p = arg;

	p->result = res;
	p->requests++;
	atomic_store(&p->done, 1);
}

static void probe_start_read(void *arg)
{
	struct probe *p = arg;
	int rc;

	p->iov.iov_base = p->buf;
	p->iov.iov_len = sizeof(p->buf);
	rc = test_submit(p->dev, NEXUS_OP_READ, &p->iov, 1, 0, 0, 0,
			 probe_done, p);
	if (rc)
		probe_done(p, rc);
}

static int probe_start(struct nexus_export *exp, const struct nexus_opts *o)
{
	struct probe *p;
	uint64_t expect;
	int rc = nexus_opts_u64(o, "expect", &expect);

	if (rc)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->exp = exp;
	p->expect = expect;
	nexus_export_set_private(exp, p);
	return 0;
}

/* The device is read once synchronously (an application thread), then
 * once from reactor 0 (the data path). */
static int probe_add(struct nexus_export *exp, struct nexus_export_dev *ed)
{
	struct probe *p = nexus_export_private(exp);
	unsigned char b[512];
	ssize_t n;

	if (p->dev)
		return nexus_error(-EOPNOTSUPP, "tprobe serves one device");
	n = nexus_dev_pread(nexus_export_dev_device(ed), b, sizeof(b), 0);
	if (n < 0)
		return (int)n;
	if (b[0] != p->expect)
		return nexus_error(-EIO, "tprobe: first byte is %u, not %llu",
				   b[0], (unsigned long long)p->expect);
	p->dev = nexus_export_dev_device(ed);
	return nexus_reactor_post(nexus_ctx_reactor(nexus_export_ctx(exp), 0),
				  probe_start_read, p);
}

static int probe_noop(void *arg)
{
	(void)arg;
	return 0;
}

static void probe_remove(struct nexus_export *exp, struct nexus_export_dev *ed)
{
	struct probe *p = nexus_export_private(exp);
	struct nexus_reactor *r = nexus_ctx_reactor(nexus_export_ctx(exp), 0);

	(void)ed;
	/* the read is in flight on reactor 0: wait for it there */
	for (int i = 0; i < 100000 && !atomic_load(&p->done); i++)
		nexus_reactor_call(r, probe_noop, NULL);
	p->dev = NULL;
}

static void probe_stop(struct nexus_export *exp)
{
	free(nexus_export_private(exp));
}

static int probe_conns(struct nexus_export *exp, struct nexus_conn_info *out,
		       unsigned max)
{
	struct probe *p = nexus_export_private(exp);

	if (max) {
		strcpy(out[0].peer, "probe");
		out[0].requests = atomic_load(&p->done) ? p->requests : 0;
		out[0].errors = p->result < 0;
		out[0].bytes_read = p->result > 0 ? (uint64_t)p->result : 0;
	}
	return 1;
}

static const struct nexus_driver tprobe = {
	NEXUS_DRIVER_HEADER,
	.name = "tprobe",
	.summary = "test export: reads the device once",
	.kind = NEXUS_DRIVER_EXPORT,
	.options = probe_options,
	.export_start = probe_start,
	.export_stop = probe_stop,
	.export_conns = probe_conns,
	.export_add_dev = probe_add,
	.export_remove_dev = probe_remove,
};

static const struct nexus_driver *const drivers[] = { &tsrc, &tcount, &tprobe,
						      NULL };

#elif defined(VARIANT_OLD)
static int boom(void)
{
	abort();
}

/* Built "against an older header": the table ends before block_status.
 * What follows in memory is garbage the loader must not read. */
static const struct nexus_driver oldsrc = {
	.abi_version = 1,
	.struct_size = offsetof(struct nexus_driver, block_status),
	.name = "oldsrc",
	.summary = "test source with an older, smaller table",
	RAM_FIELDS,
	.block_status = (void *)boom,
	.export_start = (void *)boom,
	.export_stop = (void *)boom,
	.export_conns = (void *)boom,
};
static const struct nexus_driver *const drivers[] = { &oldsrc, NULL };

#elif defined(VARIANT_BIGZERO) || defined(VARIANT_BIGSET)
/* A table "from a newer header": two fields this libnexus lacks. */
struct newer_driver {
	struct nexus_driver base;
	void *future_callback;
	uint64_t future_flags;
};
static const struct newer_driver big = {
	.base = {
		.abi_version = NEXUS_DRIVER_ABI_VERSION,
		.struct_size = sizeof(struct newer_driver),
#ifdef VARIANT_BIGZERO
		.name = "bigzero",
#else
		.name = "bigset",
#endif
		RAM_FIELDS,
	},
#ifdef VARIANT_BIGSET
	.future_flags = 1,
#endif
};
static const struct nexus_driver *const drivers[] = { &big.base, NULL };

#elif defined(VARIANT_NOENTRY)
int not_a_plugin(void);
int not_a_plugin(void)
{
	return 42;
}

#elif defined(VARIANT_DATAENTRY)
/* exported data named like the entry point */
const void *nexus_plugin_entry[4] = { 0 };

#elif defined(VARIANT_EMPTY)
static const struct nexus_driver *const drivers[] = { NULL };

#else
/* ---- one invalid table per variant ---- */
#if defined(VARIANT_BADOPTTYPE)
static const struct nexus_option_desc opts[] = {
	{ "x", 9, NULL, "bad type", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};
#elif defined(VARIANT_DUPOPT)
static const struct nexus_option_desc opts[] = {
	{ "x", NEXUS_OPT_STRING, NULL, "first", 0 },
	{ "x", NEXUS_OPT_STRING, NULL, "second", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};
#elif defined(VARIANT_BADDEFAULT)
static const struct nexus_option_desc opts[] = {
	{ "x", NEXUS_OPT_SIZE, "lots", "bad default", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};
#elif defined(VARIANT_MANYOPTS)
#define O(n) { "o" #n, NEXUS_OPT_STRING, NULL, "", 0 }
#define O10(n) O(n##0), O(n##1), O(n##2), O(n##3), O(n##4), O(n##5), \
	O(n##6), O(n##7), O(n##8), O(n##9)
static const struct nexus_option_desc opts[] = {
	O10(1), O10(2), O10(3), O10(4), O10(5), O10(6), O10(7),
	{ NULL, 0, NULL, NULL, 0 },
};
#else
#define opts ram_options
#endif

UNUSED static const struct nexus_driver bad = {
	NEXUS_DRIVER_HEADER,
	.name = "bad",
	RAM_FIELDS,
	.options = opts,
#if defined(VARIANT_NEWABI)
	.abi_version = NEXUS_DRIVER_ABI_VERSION + 1,
#elif defined(VARIANT_WRONGKIND)
	.kind = 7,
#elif defined(VARIANT_NULLNAME)
	.name = NULL,
#elif defined(VARIANT_BADNAME)
	.name = "bad name",
#elif defined(VARIANT_NOSUBMIT)
	.submit = NULL,
#elif defined(VARIANT_NOOPS)
	.kind = NEXUS_DRIVER_TRANSFORM,
	.ops = 0,
#elif defined(VARIANT_SMALL)
	.struct_size = 8,
#elif defined(VARIANT_HUGE)
	.struct_size = 1u << 30,
#elif defined(VARIANT_UNALIGNED)
	.struct_size = offsetof(struct nexus_driver, block_status) + 4,
#elif defined(VARIANT_DUPNAME)
	.name = "mem",
#elif defined(VARIANT_MISMATCH)
	.name = "not-the-file-name",
#endif
};
#if defined(VARIANT_DUPSELF)
static const struct nexus_driver twice = {
	NEXUS_DRIVER_HEADER,
	.name = "twice",
	RAM_FIELDS,
	.kind = NEXUS_DRIVER_TRANSFORM,
};
static const struct nexus_driver *const drivers[] = { &twice, &twice, NULL };
#else
static const struct nexus_driver *const drivers[] = { &bad, NULL };
#endif
#endif

#if !defined(VARIANT_NOENTRY) && !defined(VARIANT_DATAENTRY)
NEXUS_REGISTER_PLUGIN(drivers)
#endif
