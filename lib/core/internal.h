/* SPDX-License-Identifier: MIT */
/* Core-private declarations shared by the core and the built-in
 * drivers.  Nothing here is part of the ABI. */
#include "config.h"
#ifndef NEXUS_CORE_INTERNAL_H
#define NEXUS_CORE_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <nexus/nexus.h>
#include <nexus/nexus_driver.h>
#include <liburing.h>

#include "bufpool.h"
#include "clock.h"
#include "event.h"
#include "graph.h"
#include "mpsc.h"
#include "trim.h"

#include "hidden.h"
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define NX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(p, type, member)                                      \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

#define NX_MAX_IO_DEFAULT (32u << 20)
/* Operations this library knows (enum nexus_op); internal, may grow. */
#define NX_OP_MAX (NEXUS_OP_BLOCK_STATUS + 1)
#define NX_MAX_CHILDREN 16 /* children in pipeline text, and max_children */
#define NX_MAX_OPTS 32

/* ---- errors and logging (error.c) ---- */
NX_HIDDEN void nx_clear_error(void);
NX_HIDDEN void nx_log_default(void *ud, int level, const char *msg);

/* ---- reactor (reactor.c) ---- */
struct nx_msg {
	struct nx_msg *next;
	void (*fn)(void *arg);
	void *arg;
};

/* A request queued by an application thread for a reactor. */
struct nx_req {
	struct nexus_dev *dev;
	const struct iovec *iov;
	uint64_t offset;
	uint64_t length;
	nexus_io_cb cb;
	void *user_data;
	int iovcnt;
	uint16_t op;
	uint16_t pad;
	uint32_t flags;
	uint32_t max_extents;
	struct nexus_extent *extents;
};

struct nx_io_impl;

/* A callback run once by the reactor after the completions and events
 * at hand, just before it submits its SQEs: built-in drivers use it to
 * batch (e.g. one sendmsg for all the replies that became ready). */
struct nx_flush {
	struct nx_flush *next;
	void (*fn)(struct nx_flush *f);
	bool queued;
};

struct nexus_reactor {
	struct nexus_ctx *ctx;
	unsigned index;
	pthread_t thread;
	struct io_uring ring;
	int efd;
	uint64_t efd_val;
	struct nexus_cqe_handler efd_ev;
	bool stop;
	bool busy_poll;
	bool nap; /* sleep in nanosleep, not io_uring_enter (valgrind) */
	/* Adaptive polling: after work, keep polling this long before
	 * sleeping (0: sleep at once); last_work is its nx_stamp_ns(). */
	uint32_t spin_ns;
	uint64_t last_work;
	bool spinning; /* holds one of the context's spinner tokens */
	unsigned ring_entries;
	int init_rc;
	sem_t started;
	/* cross-thread */
	struct nx_mpsc reqq;
	pthread_mutex_t msg_lock;
	struct nx_msg *msg_head, *msg_tail;
	atomic_int sleeping;
	atomic_int wake_pending;
	/* reactor-local */
	struct nx_io_impl *done_head, *done_tail; /* deferred completions */
	/* Latency stamps shared along a synchronous call chain (io.c):
	 * the start stamp of the I/O whose submit() is running, the end
	 * stamp of the I/O whose completion callback is running (0: none),
	 * and where an I/O completed by that callback joins done_head. */
	uint64_t submit_stamp, done_stamp;
	struct nx_io_impl **done_nest;
	struct nx_req *stalled;			 /* request awaiting retry */
	struct nx_bufpool bufs;
	struct nx_trimmer trimmer; /* gives idle pool memory back (trim.c) */
	unsigned sqe_pending;
	struct nx_flush *flush_head; /* run before the next submit */
};

NX_HIDDEN int nx_reactor_start(struct nexus_reactor *r, struct nexus_ctx *ctx,
			       unsigned index, const struct nexus_ctx_opts *o);
NX_HIDDEN void nx_reactor_stop(struct nexus_reactor *r);
NX_HIDDEN void nx_reactor_wake(struct nexus_reactor *r);
NX_HIDDEN int nx_reactor_enqueue(struct nexus_reactor *r,
				 const struct nx_req *req);
NX_HIDDEN struct nexus_reactor *nx_reactor_for_thread(struct nexus_ctx *ctx);
/* Queue f (if not queued) to run before the reactor's next submit.
 * Reactor thread only. */
NX_HIDDEN void nx_reactor_flush(struct nexus_reactor *r, struct nx_flush *f);

/* ---- context (ctx.c) ---- */
struct nx_driver_entry {
	struct nx_driver_entry *next;
	struct nexus_driver drv; /* normalised copy (full current size) */
	void *dl;		 /* dlopen handle of a plugin, or NULL */
	char *origin;		 /* plugin file name, NULL for built-ins */
	struct nexus_option_desc *options; /* drv.options, our layout */
};

struct nexus_ctx {
	unsigned nreactors;
	struct nexus_reactor *reactors;
	nexus_log_fn log_fn;
	void *log_ud;
	int log_level;
	char *plugin_path;
	uint64_t flags;
	pthread_mutex_t lock; /* protects the lists below */
	struct nx_driver_entry *drivers;
	struct nexus_dev *devs;	      /* top-level open devices */
	struct nexus_export *exports; /* running exports */
	struct nexus_pipeline *pipelines;
	struct nx_secret *secrets; /* (secret_lock) */
	pthread_mutex_t secret_lock;
	struct nx_app_store *stores; /* application state stores (lock) */
	atomic_uint rr; /* round-robin reactor choice for app threads */
	/* reactors polling after work now, and how many may at once */
	atomic_uint spinners;
	unsigned max_spinners;
	/* server connections set up and not yet freed (conn.c): polling
	 * pays only while they are few enough for the spare CPUs */
	atomic_uint conns;
	uint64_t mem_budget; /* nexus_ctx_opts.mem_budget, or its default */
	struct nx_events *events; /* event stream, NULL without event_fn */
};

/* ---- driver registry (registry.c) ---- */
NX_HIDDEN int nx_registry_init(struct nexus_ctx *ctx);
NX_HIDDEN void nx_registry_fini(struct nexus_ctx *ctx);
NX_HIDDEN int nx_registry_add(struct nexus_ctx *ctx,
			      const struct nexus_driver *drv, void *dl,
			      const char *origin);
NX_HIDDEN const struct nexus_driver *
nx_registry_find(struct nexus_ctx *ctx, const char *name, uint32_t kind);
NX_HIDDEN const struct nexus_driver *
nx_registry_lookup(struct nexus_ctx *ctx, const char *name, uint32_t kind);
/* The error for a driver nx_registry_lookup() did not find: why its
 * plugin was refused, or "unknown driver".  Returns a negative errno. */
NX_HIDDEN int nx_registry_unknown(struct nexus_ctx *ctx, const char *name,
				  const char *where);

/* ---- options (opts.c) ---- */
struct nx_opt_kv {
	char *key;
	char *val;
	/* where the value stands in the stage text (pipeline.c) */
	size_t vstart, vend;
};
struct nexus_opts {
	const struct nexus_option_desc *desc;
	unsigned n;
	struct nx_opt_kv kv[NX_MAX_OPTS];
	const char *stage; /* for messages */
};
NX_HIDDEN int nx_opts_validate(const struct nexus_opts *opts,
			       const char *where);
/* NX_SECRET_SHOWN, nx_looks_like_key(), nx_value_shown() */
#include "redact.h"
/* Whether option @p name of a driver's option table is a secret. */
NX_HIDDEN bool nx_option_secret(const struct nexus_option_desc *table,
				const char *name);
/* The positional option of a table, or NULL. */
NX_HIDDEN const struct nexus_option_desc *
nx_opts_positional(const struct nexus_option_desc *table);
/* @p value of option @p name as messages may show it (redact.c):
 * NX_SECRET_SHOWN for an unknown or secret option or a value that looks
 * like key material, else @p value itself. */
NX_HIDDEN const char *nx_opts_shown(const struct nexus_opts *opts,
				    const char *name, const char *value);
/* Whether @p v is a word of @p d's list (true when it has none). */
NX_HIDDEN bool nx_option_word_ok(const struct nexus_option_desc *d,
				 const char *v);
/* The bounds of @p d as text: "at least 1", "from 512 to 4K", ... */
NX_HIDDEN void nx_option_bounds_text(const struct nexus_option_desc *d,
				     char *buf, size_t len);
/* Whether @p v is valid for @p d: its type, bounds and words. */
NX_HIDDEN bool nx_option_value_ok(const struct nexus_option_desc *d,
				  const char *v);
/* For drivers' check(): the value of option @p name (given or default,
 * if any) is a power of two / a multiple of option @p unit's value.
 * 0, or -EINVAL with a message naming the stage and the options. */
NX_HIDDEN int nx_opts_check_pow2(const struct nexus_opts *opts,
				 const char *name);
NX_HIDDEN int nx_opts_check_multiple(const struct nexus_opts *opts,
				     const char *name, const char *unit);
/* check() of a device with options "size" and "block-size": the block
 * size a power of two, the size a multiple of it (mem, null). */
NX_HIDDEN int nx_opts_check_geometry(const struct nexus_opts *opts);
NX_HIDDEN void nx_opts_free(struct nexus_opts *opts);
/* unsigned decimal or 0x hex; with @p size also a K, M, G, T or P suffix
 * (optionally followed by iB or B): 0, -EINVAL, or -ERANGE */
NX_HIDDEN int nx_parse_u64(const char *s, bool size, uint64_t *out);
/* on/off, yes/no, true/false, 1/0, any case: 0, or -EINVAL */
NX_HIDDEN int nx_parse_bool(const char *s, bool *out);

/* ---- devices and I/O (dev.c, io.c) ---- */
struct nx_io_impl {
	struct nx_io_impl *next; /* free list / deferred list */
	nexus_io_cb cb;
	void *user_data;
	uint64_t start_ns; /* nx_stamp_ns() */
	uint64_t end_ns;   /* set by nexus_io_complete() when shared, or 0 */
	int result;
	uint32_t pool_owner; /* reactor index */
	struct nexus_io io;  /* public part; driver ctx follows */
};

struct nx_dev_counters {
	_Alignas(64) uint64_t ops[NX_OP_MAX];
	uint64_t errors[NX_OP_MAX];
	uint64_t bytes[NX_OP_MAX];
	uint64_t bytes_read, bytes_written;
	uint64_t submitted, completed;
	uint64_t latency[NEXUS_LAT_BUCKETS];
};

struct nx_dev_reactor {
	struct nx_io_impl *free_ios;
	void **slabs;
	unsigned nslabs, slab_cap;
	void *rstate;
	struct nx_dev_counters c;
	/* giving slabs back when idle (io.c, slab_trim) */
	struct nx_trim trim;
	struct nexus_dev *dev;
	uint64_t trim_seen; /* c.submitted at the last trim */
};

struct nexus_dev {
	struct nexus_ctx *ctx;
	const struct nexus_driver *drv;
	struct nexus_dev_info info;
	char *name;
	void *priv;
	struct nx_kids *_Atomic kids; /* children (graph.c: swapped, RCU) */
	struct nexus_dev *next; /* ctx->devs list (top-level only) */
	bool top;		/* in ctx->devs */
	atomic_bool closing;
	bool reactors_ready;
	size_t io_size; /* sizeof(nx_io_impl) + per_io_size, rounded */
	struct nx_dev_reactor *per_reactor;
	pthread_mutex_t close_lock;
	pthread_cond_t close_cond;
	atomic_int close_waiting;
	atomic_uint_fast64_t queued; /* queued by app threads, not started */
	unsigned export_refs; /* exports serving it (ctx->lock) */
	atomic_int state;     /* enum nexus_dev_state */
};

NX_HIDDEN int nx_dev_create(struct nexus_ctx *ctx,
			    const struct nexus_driver *drv, const char *name,
			    struct nexus_dev **children, unsigned nchildren,
			    const struct nexus_opts *opts,
			    struct nexus_dev **out);
NX_HIDDEN void nx_dev_destroy(struct nexus_dev *dev);
NX_HIDDEN void nx_dev_set_top(struct nexus_dev *dev);
/* Take a top-level device off the context's list, for a new owner
 * (graph.c): 0, or -EBUSY (served by an export, or not top-level: owned
 * by a pipeline or another device) with a message naming @p fn. */
NX_HIDDEN int nx_dev_unlink_top(struct nexus_dev *dev, const char *fn);
/* Wait until nothing is queued for or in flight on the device. */
NX_HIDDEN void nx_dev_drain(struct nexus_dev *dev);
NX_HIDDEN uint64_t nx_dev_inflight(const struct nexus_dev *dev);
NX_HIDDEN int nx_io_start(struct nexus_reactor *r, const struct nx_req *req);
NX_HIDDEN int nx_io_start_queued(struct nexus_reactor *r,
				 const struct nx_req *req);
NX_HIDDEN void nx_io_run_deferred(struct nexus_reactor *r);
NX_HIDDEN int nx_io_validate(struct nexus_dev *dev, const struct nx_req *req);
NX_HIDDEN void nx_dev_pool_free(struct nexus_reactor *r,
			       struct nx_dev_reactor *pr);
/* BLOCK_STATUS for a driver that does not handle the operation: its
 * synchronous block_status() if it has one, else one data extent.
 * Returns the number of extents or a negative errno. */
/* BLOCK_STATUS submitted and waited for (sync.c). */
NX_HIDDEN int nx_sync_block_status(struct nexus_dev *dev, uint64_t offset,
				   uint64_t length, struct nexus_extent *ext,
				   unsigned max);
NX_HIDDEN int nx_block_status_fallback(struct nexus_dev *dev,
				       const struct nexus_io *io);

/* A request from its fields (READ, WRITE, FLUSH, TRIM, WRITE_ZEROES). */
static inline struct nexus_io_req nx_io_req(int op, const struct iovec *iov,
					    int iovcnt, uint64_t offset,
					    uint64_t length, uint32_t flags,
					    nexus_io_cb cb, void *user_data)
{
	struct nexus_io_req req = NEXUS_IO_REQ_INIT;

	req.op = (uint32_t)op;
	req.iov = iov;
	req.iovcnt = iovcnt;
	req.offset = offset;
	req.length = length;
	req.flags = flags;
	req.cb = cb;
	req.user_data = user_data;
	return req;
}

/* nexus_dev_submit() with the fields of a nexus_io_req as arguments,
 * for the built-in drivers. */
static inline int nx_submit(struct nexus_dev *dev, int op,
			    const struct iovec *iov, int iovcnt,
			    uint64_t offset, uint64_t length, uint32_t flags,
			    nexus_io_cb cb, void *user_data)
{
	struct nexus_io_req req = nx_io_req(op, iov, iovcnt, offset, length,
					    flags, cb, user_data);

	return nexus_dev_submit(dev, &req);
}

/* Copy a library struct @p src of @p ours bytes out to a caller's
 * size-stamped struct @p dst: the fields its `size` covers, the rest of
 * it zeroed, its `size` kept. */
static inline void nx_sized_copy_out(void *dst, const void *src, size_t ours)
{
	size_t size = *(const size_t *)dst, n = size < ours ? size : ours;

	memcpy((char *)dst + sizeof(size_t),
	       (const char *)src + sizeof(size_t), n - sizeof(size_t));
	if (size > ours)
		memset((char *)dst + ours, 0, size - ours);
}

/* The request that passes @p io on unchanged (operation, flags, data,
 * range, extents), completing to cb(ud, result): nexus_io_forward(), and
 * transforms that pass an operation down with a callback of their own. */
static inline struct nexus_io_req nx_io_req_of(const struct nexus_io *io,
					       nexus_io_cb cb, void *ud)
{
	struct nexus_io_req req = NEXUS_IO_REQ_INIT;

	req.op = io->op;
	req.flags = io->flags;
	req.iov = io->iov;
	req.iovcnt = io->iovcnt;
	req.offset = io->offset;
	req.length = io->length;
	req.cb = cb;
	req.user_data = ud;
	req.extents = io->extents;
	req.max_extents = io->max_extents;
	return req;
}

/* ---- stats (stats.c) ---- */
#define NX_LAT_SUB 4 /* latency buckets per octave of nanoseconds */
/* The latency bucket of @p ns (inline: it runs for every I/O). */
static inline unsigned nx_lat_bucket(uint64_t ns)
{
	unsigned msb, sub, b;

	if (ns < NX_LAT_SUB)
		return (unsigned)ns;
	msb = 63u - (unsigned)__builtin_clzll(ns);
	sub = (unsigned)(ns >> (msb - 2)) & (NX_LAT_SUB - 1);
	b = (msb - 1) * NX_LAT_SUB + sub;
	return b < NEXUS_LAT_BUCKETS ? b : NEXUS_LAT_BUCKETS - 1;
}
/* Single-writer counter update, readable from other threads. */
static inline void nx_count(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n,
			 __ATOMIC_RELAXED);
}

/* ---- exports and pipelines (export.c, pipeline.c) ---- */
struct nexus_export_dev {
	struct nexus_export *exp;
	struct nexus_dev *dev;
	char *name; /* NULL: the driver's default */
	uint32_t id, flags;
	void *priv;
	struct nexus_export_dev *next; /* exp->devs, in the order added */
};

struct nexus_export {
	struct nexus_ctx *ctx;
	const struct nexus_driver *drv;
	void *priv;
	struct nexus_export *next; /* ctx->exports (ctx->lock) */
	char *spec;
	struct nexus_opts opts;	   /* kept for the export's lifetime */
	pthread_mutex_t lock;	   /* protects devs */
	struct nexus_export_dev *devs;
	pthread_mutex_t add_lock;  /* serialises add/remove/destroy */
	bool destroying;
};

/* The options an export was created with (valid until it is destroyed):
 * built-in export drivers read them when a device is added. */
NX_HIDDEN const struct nexus_opts *nx_export_opts(const struct nexus_export *e);
/* Copy parsed options (deep); 0 or -ENOMEM. */
NX_HIDDEN int nx_opts_copy(struct nexus_opts *dst, const struct nexus_opts *src);

/* Parsed stages, nx_pipeline_parse(), nx_stage_parse() (pipeline.h). */
#include "pipeline.h"
NX_HIDDEN int nx_export_create(struct nexus_ctx *ctx,
			       const struct nexus_driver *drv,
			       const struct nexus_opts *opts, const char *spec,
			       struct nexus_export **out);

/* ---- built-in drivers ---- */
extern const struct nexus_driver nx_driver_null NX_HIDDEN;
extern const struct nexus_driver nx_driver_mem NX_HIDDEN;
extern const struct nexus_driver nx_driver_file NX_HIDDEN;
extern const struct nexus_driver nx_driver_throttle NX_HIDDEN;
extern const struct nexus_driver nx_driver_fault NX_HIDDEN;
extern const struct nexus_driver nx_driver_crypt NX_HIDDEN;
extern const struct nexus_driver nx_driver_mirror NX_HIDDEN;
/* ---- secrets (secret.c) ---- */
struct nx_secret;
NX_HIDDEN void nx_secrets_forget(struct nexus_ctx *ctx);
extern const struct nexus_driver nx_driver_nbd_export NX_HIDDEN;
extern const struct nexus_driver nx_driver_nbd NX_HIDDEN;

#endif
