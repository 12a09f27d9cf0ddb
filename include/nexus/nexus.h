/* SPDX-License-Identifier: MIT */
/**
 * @file nexus.h
 * @brief libnexus embedder API: contexts, devices, I/O, exports, pipelines.
 *
 * libnexus composes the storage data path like a Unix pipeline:
 *
 *     file:/var/lib/vol.img | crypt:key-file=k | nbd:listen=127.0.0.1:10809
 *
 * Conventions that hold for every function in this header:
 *  - Functions return 0 (or a non-negative count) on success and a
 *    negative errno on failure; never -1 with errno.  A message that
 *    names the problem is then available from nexus_last_error() on the
 *    same thread.
 *  - Handles are opaque.  Every `*_free()` / `*_close()` accepts NULL.
 *  - Option structs are size-stamped: set `size` with the matching
 *    `*_INIT` macro; the library reads only the fields `size` covers.
 *  - Async rule: a submit that returns 0 calls its callback exactly once;
 *    a submit that returns a negative errno never calls it.
 *  - Callbacks run on a reactor thread of the context.  They must not
 *    block and must not call the synchronous I/O functions.
 */
#ifndef NEXUS_NEXUS_H
#define NEXUS_NEXUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a declaration as part of the exported, versioned ABI
 *  (lib/libnexus.map); everything else in the library is hidden. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define NEXUS_API __attribute__((visibility("default")))
#else
#define NEXUS_API
#endif

/** Major version of the library API. */
#define NEXUS_VERSION_MAJOR 1
/** Minor version of the library API. */
#define NEXUS_VERSION_MINOR 0

/** @brief A libnexus context: reactor threads, driver registry, logging. */
struct nexus_ctx;
/** @brief An open device: a source, or a transform stacked on devices. */
struct nexus_dev;
/** @brief A running export serving devices over a protocol. */
struct nexus_export;
/** @brief One event of a context's event stream (see "Events"). */
struct nexus_event_info;
/** @brief A built pipeline: a device stack and, optionally, an export. */
struct nexus_pipeline;

/* ------------------------------------------------------------------ */
/** @name Errors and logging */
/**@{*/

/**
 * @brief Detail message for the last failure on the calling thread.
 * @return A NUL-terminated string owned by the library, valid until the
 *         next libnexus call on this thread; "" if no failure was recorded.
 * @par Threading: any thread; the message is per thread.
 */
NEXUS_API const char *nexus_last_error(void);

/** @brief Log levels, most severe first. */
enum nexus_log_level {
	NEXUS_LOG_ERROR = 0, /**< an operation failed */
	NEXUS_LOG_WARN = 1,  /**< something unexpected, handled */
	NEXUS_LOG_INFO = 2,  /**< lifecycle events: open, close, connect */
	NEXUS_LOG_DEBUG = 3, /**< detail for developers */
};

/**
 * @brief Log callback.
 * @param user_data the pointer given in nexus_ctx_opts::log_user_data
 * @param level     one of enum nexus_log_level
 * @param msg       NUL-terminated message without trailing newline
 * @par Threading: called from any thread of the context, possibly
 *      concurrently; must be thread-safe and must not block for long.
 */
typedef void (*nexus_log_fn)(void *user_data, int level, const char *msg);

/**
 * @brief Library version string, e.g. "1.0.0".
 * @return a static string.
 */
NEXUS_API const char *nexus_version(void);

/**@}*/
/* ------------------------------------------------------------------ */
/** @name Contexts */
/**@{*/

/**
 * @brief Options for nexus_ctx_create().  Size-stamped, append-only.
 *
 * Initialise with NEXUS_CTX_OPTS_INIT; zero fields mean "default".
 */
struct nexus_ctx_opts {
	/** sizeof(struct nexus_ctx_opts) as compiled by the caller. */
	size_t size;
	/** Reactor threads; 0 means one per online CPU. */
	unsigned reactors;
	/** Entries of each reactor's io_uring; 0 means 1024. */
	unsigned ring_entries;
	/** Capacity of each reactor's cross-thread submission queue;
	 *  0 means 4096.  Rounded up to a power of two. */
	unsigned queue_capacity;
	/** Log callback; NULL logs warnings and errors to stderr. */
	nexus_log_fn log_fn;
	/** Passed to log_fn. */
	void *log_user_data;
	/** Most verbose level passed to log_fn (enum nexus_log_level).
	 *  With a log_fn it is used as given (0 is NEXUS_LOG_ERROR: errors
	 *  only); with log_fn NULL, 0 means NEXUS_LOG_WARN. */
	int log_level;
	/** Colon-separated plugin directories searched for unknown drivers,
	 *  before $NEXUS_PLUGIN_PATH.  May be NULL. */
	const char *plugin_path;
	/** NEXUS_CTX_* flags. */
	uint64_t flags;
	/** Event callback (see "Events"); NULL: no events are kept. */
	void (*event_fn)(void *user_data, const struct nexus_event_info *ev);
	/** Passed to event_fn and event_free. */
	void *event_user_data;
	/** Runs exactly once with event_user_data when the context is
	 *  destroyed, after the last event_fn call (also when
	 *  nexus_ctx_create() fails after reading the options); may be
	 *  NULL.  Bindings release their reference to the callback here. */
	void (*event_free)(void *user_data);
	/** Adaptive polling: after work, a reactor keeps polling for new
	 *  work this many microseconds before it sleeps (at most 100000),
	 *  so that a client waiting for each reply (one connection, low
	 *  queue depth) finds it awake.  Trades CPU for latency: under such
	 *  a load a polling reactor takes a whole CPU.  At most half the
	 *  CPUs' reactors (at least one) poll at once, and none while the
	 *  context's exports serve more connections than that (the clients
	 *  then need the CPUs); an idle reactor still sleeps.  0 (default): sleep at once, unless $NEXUS_POLL_US
	 *  gives a value. */
	unsigned poll_us;
	/** Payload bytes that all the exports of the context may hold at
	 *  once (requests beyond wait for budget; each export also has its
	 *  own, e.g. nbd:mem-budget=).  0 means 1 GiB; else at least
	 *  32 MiB, the largest request. */
	uint64_t mem_budget;
};

/** Reactors spin instead of sleeping when idle (burns CPU; for
 *  latency-critical deployments only). */
#define NEXUS_CTX_BUSY_POLL (1ULL << 0)

/** Designated initialiser for struct nexus_ctx_opts. */
#define NEXUS_CTX_OPTS_INIT { .size = sizeof(struct nexus_ctx_opts) }

/**
 * @brief Create a context and start its reactor threads.
 * @param opts options, or NULL for defaults
 * @param out  receives the context
 * @return 0, or -EINVAL (bad options), -ENOMEM, or the errno of a failed
 *         io_uring or thread setup (e.g. -ENOSYS, -EPERM).
 * @par Threading: any thread.
 */
NEXUS_API int nexus_ctx_create(const struct nexus_ctx_opts *opts,
			       struct nexus_ctx **out);

/**
 * @brief Stop exports, close devices still open, stop reactors, free.
 *
 * Devices and exports still open are closed (their in-flight I/O is
 * completed first) and a warning is logged for each.  NULL is a no-op.
 * @par Threading: any application thread; never from a callback.
 */
NEXUS_API void nexus_ctx_destroy(struct nexus_ctx *ctx);

/**
 * @brief Number of reactor threads of a context.
 * @return the count (at least 1), or -EINVAL for NULL.
 */
NEXUS_API int nexus_ctx_reactor_count(const struct nexus_ctx *ctx);

/**@}*/
/* ------------------------------------------------------------------ */
/** @name Devices */
/**@{*/

/** @brief I/O operations. */
enum nexus_op {
	NEXUS_OP_READ = 0,	   /**< read into the iovec */
	NEXUS_OP_WRITE = 1,	   /**< write from the iovec */
	NEXUS_OP_FLUSH = 2,	   /**< make completed writes durable */
	NEXUS_OP_TRIM = 3,	   /**< discard a range (reads back unspecified
				    *   data unless the device says zeroes) */
	NEXUS_OP_WRITE_ZEROES = 4, /**< make a range read back as zeroes */
	NEXUS_OP_BLOCK_STATUS = 5, /**< report allocation of a range as
				    *   extents (nexus_io_req::extents) */
	/* Operations are only appended; there is deliberately no
	 * "count": ask nexus_dev_get_op_stats() or nexus_dev_info::ops. */
};

/** Bit of nexus_dev_info::ops for operation @p op. */
#define NEXUS_OP_BIT(op) (1u << (op))

/** I/O flag: WRITE / WRITE_ZEROES is durable when it completes. */
#define NEXUS_IO_FUA (1u << 0)
/** I/O flag for WRITE_ZEROES: do not deallocate (keep the range
 *  allocated). */
#define NEXUS_IO_NO_UNMAP (1u << 1)
/** I/O flag for WRITE_ZEROES: fail with -EOPNOTSUPP rather than fall
 *  back to writing zeroes slowly. */
#define NEXUS_IO_FAST_ZERO (1u << 2)

/**
 * @brief What a device is and can do.  Size-stamped, append-only.
 */
struct nexus_dev_info {
	/** sizeof(struct nexus_dev_info) as compiled by the caller. */
	size_t size;
	/** Size in bytes. */
	uint64_t dev_size;
	/** Required alignment of offsets and lengths (bytes, power of 2). */
	uint32_t logical_block_size;
	/** Preferred alignment to avoid read-modify-write. */
	uint32_t physical_block_size;
	/** Optimal I/O size in bytes (0 if unknown). */
	uint32_t optimal_io_size;
	/** Largest READ or WRITE accepted in one request, in bytes. */
	uint32_t max_io_size;
	/** Supported operations: NEXUS_OP_BIT() of enum nexus_op. */
	uint32_t ops;
	/** NEXUS_DEV_* flags. */
	uint32_t flags;
	/** Driver name of the top of the stack, e.g. "file". */
	const char *driver;
	/** Name of the device: the pipeline text that opened it, with the
	 *  values of secret options (NEXUS_OPTF_SECRET) shown as `***`. */
	const char *name;
};

/** Device flag: writes are refused. */
#define NEXUS_DEV_READ_ONLY (1u << 0)
/** Device flag: TRIM'd ranges read back as zeroes. */
#define NEXUS_DEV_TRIM_ZEROES (1u << 1)
/** Device flag: several connections may safely share the device
 *  (a FLUSH on one covers writes completed on all). */
#define NEXUS_DEV_MULTI_CONN (1u << 2)
/** Device flag: nexus_dev_block_status() reports real holes/zeroes. */
#define NEXUS_DEV_BLOCK_STATUS (1u << 3)

/** Designated initialiser for struct nexus_dev_info. */
#define NEXUS_DEV_INFO_INIT { .size = sizeof(struct nexus_dev_info) }

/**
 * @brief Open a device from a pipeline of device stages.
 *
 * The text is a pipeline without an export stage, e.g.
 * `"file:/tmp/a.img,direct=on"` or `"mem:size=1G | fault:..."`.
 * See nexus-pipeline(7) for the grammar.
 * @param ctx      the context
 * @param pipeline pipeline text
 * @param out      receives the device (the top of the stack)
 * @return 0, or -EINVAL (syntax, unknown option: the message names the
 *         stage and column), -ENOENT (unknown driver or missing file),
 *         -EISDIR, -EACCES, or another negative errno from the driver.
 * @par Threading: any application thread; not from a callback.
 */
NEXUS_API int nexus_dev_open(struct nexus_ctx *ctx, const char *pipeline,
			     struct nexus_dev **out);

/**
 * @brief Close a device (and the stack below it that it owns).
 *
 * New submissions fail with -ESHUTDOWN; I/O in flight completes (its
 * callbacks run) before this returns.
 * @return 0 (also for NULL), or -EBUSY when an export still serves the
 *         device (remove it with nexus_export_remove_dev() first: the
 *         message names the export) or it is the child of another
 *         device, -EDEADLK when called from a reactor thread (a
 *         callback).  On error the device stays open and usable.
 * @par Threading: any application thread; not from a callback.
 */
NEXUS_API int nexus_dev_close(struct nexus_dev *dev);

/**
 * @brief Describe a device.
 * @param dev  the device
 * @param info caller's struct with `size` set (NEXUS_DEV_INFO_INIT)
 * @return 0 or -EINVAL.
 * @par Threading: any thread.
 */
NEXUS_API int nexus_dev_get_info(const struct nexus_dev *dev,
				 struct nexus_dev_info *info);

/**
 * @brief I/O completion callback.
 * @param user_data as given to the submit call
 * @param result    bytes transferred for READ/WRITE, the number of
 *                  extents for BLOCK_STATUS, 0 for the other operations,
 *                  or a negative errno
 * @par Threading: runs on a reactor thread; must not block.
 */
typedef void (*nexus_io_cb)(void *user_data, int result);

/** Extent flag: the range is not allocated. */
#define NEXUS_EXTENT_HOLE (1u << 0)
/** Extent flag: the range reads as zeroes. */
#define NEXUS_EXTENT_ZERO (1u << 1)

/** @brief One extent reported by a BLOCK_STATUS operation. */
struct nexus_extent {
	uint64_t offset; /**< start, bytes */
	uint64_t length; /**< length, bytes */
	uint32_t flags;	 /**< NEXUS_EXTENT_* */
};

/**
 * @brief One I/O request for nexus_dev_submit().  Size-stamped,
 *        append-only: initialise with NEXUS_IO_REQ_INIT (fields added
 *        later, such as metadata buffers, range lists or a priority,
 *        then read as zero for older callers).
 *
 * The request itself may be reused or freed as soon as the submit
 * returns; what it points to (iovec array, buffers, extents) must stay
 * valid and untouched until the callback runs.
 */
struct nexus_io_req {
	/** sizeof(struct nexus_io_req) as compiled by the caller. */
	size_t size;
	/** enum nexus_op. */
	uint32_t op;
	/** NEXUS_IO_* flags. */
	uint32_t flags;
	/** READ/WRITE: data buffers; NULL for the other operations. */
	const struct iovec *iov;
	/** Entries of @ref iov (1..IOV_MAX) for READ/WRITE, else 0. */
	int iovcnt;
	/** Byte offset, a multiple of the logical block size (ignored by
	 *  FLUSH). */
	uint64_t offset;
	/** Range length for TRIM, WRITE_ZEROES and BLOCK_STATUS (ignored for
	 *  READ/WRITE, whose length is the iovec total, and FLUSH). */
	uint64_t length;
	/** Completion callback (required). */
	nexus_io_cb cb;
	/** Passed to @ref cb. */
	void *user_data;
	/** BLOCK_STATUS: receives up to @ref max_extents extents,
	 *  contiguous from @ref offset, covering at least one byte and at
	 *  most @ref length bytes.  NULL for the other operations. */
	struct nexus_extent *extents;
	/** BLOCK_STATUS: capacity of @ref extents (at least 1). */
	uint32_t max_extents;
};

/** Designated initialiser for struct nexus_io_req. */
#define NEXUS_IO_REQ_INIT { .size = sizeof(struct nexus_io_req) }

/**
 * @brief Submit one asynchronous I/O.
 *
 * For FLUSH, offset and length are ignored; for TRIM, WRITE_ZEROES and
 * BLOCK_STATUS, @p req->iov must be NULL and @p req->length gives the
 * range; for READ and WRITE the iovec gives the length.
 * @param dev the device
 * @param req the request, `size` set with NEXUS_IO_REQ_INIT
 * @return 0: the callback will be called exactly once.  Negative errno:
 *         it will not be called: -EINVAL (NULL or unstamped request, bad
 *         arguments, zero length, past the end, misaligned, larger than
 *         max_io_size, unknown flags), -EOPNOTSUPP (operation not
 *         supported by the device), -EROFS, -ESHUTDOWN (device closing),
 *         -EAGAIN (the target reactor's queue is full; retry after some
 *         completions).
 * @par Threading: any thread, including callbacks.  From a reactor
 *      thread the I/O starts immediately; from another thread it is
 *      queued to a reactor (the same one for a given thread).
 */
NEXUS_API int nexus_dev_submit(struct nexus_dev *dev,
			       const struct nexus_io_req *req);

/**
 * @brief Synchronous read of exactly @p len bytes.
 * @return @p len, or a negative errno (see nexus_dev_submit());
 *         -EDEADLK when called from a reactor thread.
 * @par Threading: any application thread; not from a callback.
 */
NEXUS_API ssize_t nexus_dev_pread(struct nexus_dev *dev, void *buf,
				  size_t len, uint64_t offset);

/**
 * @brief Synchronous write of exactly @p len bytes.
 * @param dev    the device
 * @param buf    data to write
 * @param len    bytes to write
 * @param offset byte offset, a multiple of the logical block size
 * @param flags  NEXUS_IO_FUA or 0
 * @return @p len or a negative errno.
 * @par Threading: as nexus_dev_pread().
 */
NEXUS_API ssize_t nexus_dev_pwrite(struct nexus_dev *dev, const void *buf,
				   size_t len, uint64_t offset,
				   uint32_t flags);

/**
 * @brief Synchronous scatter read.
 * @return bytes read (the iovec total) or a negative errno.
 */
NEXUS_API ssize_t nexus_dev_preadv(struct nexus_dev *dev,
				   const struct iovec *iov, int iovcnt,
				   uint64_t offset);

/**
 * @brief Synchronous gather write.
 * @return bytes written (the iovec total) or a negative errno.
 */
NEXUS_API ssize_t nexus_dev_pwritev(struct nexus_dev *dev,
				    const struct iovec *iov, int iovcnt,
				    uint64_t offset, uint32_t flags);

/**
 * @brief Synchronous flush: completed writes become durable.
 * @return 0 or a negative errno.
 */
NEXUS_API int nexus_dev_flush(struct nexus_dev *dev);

/**
 * @brief Synchronous TRIM (discard) of a range.
 * @return 0 or a negative errno (-EOPNOTSUPP if not supported).
 */
NEXUS_API int nexus_dev_trim(struct nexus_dev *dev, uint64_t offset,
			     uint64_t length, uint32_t flags);

/**
 * @brief Synchronous WRITE_ZEROES of a range.
 * @param dev    the device
 * @param offset start of the range, bytes
 * @param length length of the range, bytes
 * @param flags  NEXUS_IO_FUA, NEXUS_IO_NO_UNMAP, NEXUS_IO_FAST_ZERO
 * @return 0 or a negative errno.
 */
NEXUS_API int nexus_dev_write_zeroes(struct nexus_dev *dev, uint64_t offset,
				     uint64_t length, uint32_t flags);

/**
 * @brief Report allocation status of a range as extents (synchronous
 *        BLOCK_STATUS).
 *
 * Extents are contiguous, start at @p offset and cover at most
 * @p length bytes (at least one byte when the call succeeds).  A device
 * that does not know reports one data extent for the whole range.
 * @param dev    the device
 * @param offset start of the range, bytes
 * @param length length of the range, bytes
 * @param ext    receives up to @p max extents
 * @param max    capacity of @p ext (at least 1)
 * @return number of extents written, or a negative errno.
 * @par Threading: any application thread.
 */
NEXUS_API int nexus_dev_block_status(struct nexus_dev *dev, uint64_t offset,
				     uint64_t length, struct nexus_extent *ext,
				     unsigned max);

/**
 * @brief Number of devices directly below a device in its stack.
 *
 * A source has none; a transform has one (crypt, throttle, fault) or
 * several (mirror).  With nexus_dev_child() this walks a stack, e.g. to
 * show the counters of every stage.
 * @return the count; 0 for a source or NULL.
 * @par Threading: any thread while the device is open.
 */
NEXUS_API unsigned nexus_dev_child_count(const struct nexus_dev *dev);

/**
 * @brief Device @p i directly below a device (owned by it: never close
 *        it yourself).
 * @return the child, or NULL if @p i is out of range or @p dev is NULL.
 * @par Threading: any thread while the device is open.
 */
NEXUS_API struct nexus_dev *nexus_dev_child(const struct nexus_dev *dev,
					    unsigned i);

/**
 * @brief Change a setting of an open device stack at run time.
 *
 * Some drivers take settings while I/O runs: throttle's limits
 * (`"throttle.iops"`, `"throttle.bps"`, ...), fault's switch and
 * parameters (`"fault.enable"` = `"off"`, ...).  Keys and values are
 * those of the driver's pipeline options (see nexus_ctx_describe_drivers()
 * and the driver's documentation).
 *
 * @p key is `[DRIVER.]NAME`.  With a `DRIVER.` prefix the setting goes to
 * the first device of that driver in @p dev's stack, searched depth first
 * from @p dev itself (children in order); without a prefix it goes to
 * @p dev.  To address one of several devices of the same driver (the
 * children of a mirror), walk the stack with nexus_dev_child() and pass
 * that device.
 * @param dev   a device (usually the top of a stack)
 * @param key   setting name, e.g. "throttle.iops"
 * @param value new value as text, e.g. "1000", "64M", "off"
 * @return 0 (the setting applies to I/O submitted from now on), or
 *         -EINVAL (NULL argument or bad value: the message names the
 *         stage, key and value), -ENOENT (no such stage in the stack, or
 *         the driver has no setting of that name), -EOPNOTSUPP (the
 *         driver takes no run-time settings), -ESHUTDOWN (closing).
 *         The library's messages show the value of a setting named like
 *         a secret option of the driver (NEXUS_OPTF_SECRET) as `***`.
 * @par Threading: any thread, including callbacks; not concurrently
 *      with closing the device.
 */
NEXUS_API int nexus_dev_control(struct nexus_dev *dev, const char *key,
				const char *value);

/**@}*/
/* ------------------------------------------------------------------ */
/** @name Statistics */
/**@{*/

/** Number of latency histogram buckets. */
#define NEXUS_LAT_BUCKETS 128

/**
 * @brief Counters of one device.  Size-stamped, append-only.
 *
 * Latency bucket i counts completions whose latency in nanoseconds
 * falls in [nexus_lat_bucket_floor(i), nexus_lat_bucket_floor(i+1)).
 */
struct nexus_dev_stats {
	/** sizeof(struct nexus_dev_stats) as compiled by the caller. */
	size_t size;
	/** Completed operations of every kind (including failed); per
	 *  operation: nexus_dev_get_op_stats(). */
	uint64_t ops;
	/** Failed operations of every kind. */
	uint64_t errors;
	/** Bytes read by successful READs. */
	uint64_t bytes_read;
	/** Bytes written by successful WRITEs. */
	uint64_t bytes_written;
	/** Operations submitted and not yet completed. */
	uint64_t in_flight;
	/**
	 * Latency histogram over all operations: from the start of an
	 * operation on its reactor to the call of its completion callback.
	 * In a stack of devices, an operation started from inside the
	 * layer above's submission takes that operation's start time, and
	 * one completed from inside the completion of the operation below
	 * takes that one's end time, so a sample may be off by the CPU time
	 * of one layer in that call chain (about a microsecond for crypt
	 * with 4 KiB): each end of a stack costs one clock read.
	 */
	uint64_t latency[NEXUS_LAT_BUCKETS];
};

/** Designated initialiser for struct nexus_dev_stats. */
#define NEXUS_DEV_STATS_INIT { .size = sizeof(struct nexus_dev_stats) }

/**
 * @brief Read a device's counters.
 * @return 0 or -EINVAL.
 * @par Threading: any thread; counters are read without stopping I/O,
 *      so they are a near-consistent snapshot.
 */
NEXUS_API int nexus_dev_get_stats(const struct nexus_dev *dev,
				  struct nexus_dev_stats *stats);

/**
 * @brief Counters of one operation of a device.  Size-stamped,
 *        append-only.
 */
struct nexus_op_stats {
	/** sizeof(struct nexus_op_stats) as compiled by the caller. */
	size_t size;
	/** Completed operations (including failed). */
	uint64_t ops;
	/** Failed operations. */
	uint64_t errors;
	/** Bytes of the successful operations: data moved for READ and
	 *  WRITE, range covered for TRIM, WRITE_ZEROES and BLOCK_STATUS, 0
	 *  for FLUSH. */
	uint64_t bytes;
};

/** Designated initialiser for struct nexus_op_stats. */
#define NEXUS_OP_STATS_INIT { .size = sizeof(struct nexus_op_stats) }

/**
 * @brief Read a device's counters of one operation.
 *
 * Works for every operation this library knows, whether or not the
 * device supports it (the counters of an unsupported one stay 0), so
 * that a program can walk the operations 0, 1, 2, ... until -ERANGE.
 * @param dev   the device
 * @param op    enum nexus_op
 * @param stats caller's struct with `size` set (NEXUS_OP_STATS_INIT)
 * @return 0, -EINVAL (NULL or unstamped argument), -ERANGE (an
 *         operation this library does not know).
 * @par Threading: any thread.
 */
NEXUS_API int nexus_dev_get_op_stats(const struct nexus_dev *dev, int op,
				     struct nexus_op_stats *stats);

/**
 * @brief Lower bound in nanoseconds of latency bucket @p i.
 * @return the bound; UINT64_MAX for i >= NEXUS_LAT_BUCKETS.
 */
NEXUS_API uint64_t nexus_lat_bucket_floor(unsigned i);

/**
 * @brief Latency percentile from a histogram.
 * @param hist NEXUS_LAT_BUCKETS counters
 * @param pct  percentile in [0, 100]
 * @return an upper estimate in nanoseconds (0 if the histogram is empty)
 */
NEXUS_API uint64_t nexus_lat_percentile(const uint64_t *hist, double pct);

/**@}*/
/* ------------------------------------------------------------------ */
/** @name Secrets
 *
 * A secret (an encryption key, a TLS pre-shared key, a CHAP secret) never
 * appears in pipeline text: pipeline text ends up in logs and process
 * listings.  An application registers it on the context under a name,
 * and a stage refers to it by name (`crypt:key-name=NAME`).  Secrets are
 * kept in locked memory where the system allows it, wiped when removed
 * or when the context is destroyed, and never logged or quoted in
 * messages.  A stage copies what it needs when it opens: removing a
 * secret does not affect devices already open. */
/**@{*/

/** Longest secret accepted, in bytes. */
#define NEXUS_SECRET_MAX 1024

/**
 * @brief Register a secret under a name.
 * @param ctx  the context
 * @param name 1 to 64 characters of [A-Za-z0-9._-]
 * @param data the secret's bytes; copied
 * @param len  length of @p data, 1..NEXUS_SECRET_MAX
 * @return 0, or -EINVAL (NULL argument, bad name, bad length), -EEXIST
 *         (a secret of that name exists: remove it first), -ENOMEM.
 * @par Threading: any thread.
 */
NEXUS_API int nexus_ctx_secret_set(struct nexus_ctx *ctx, const char *name,
				   const void *data, size_t len);

/**
 * @brief Register a secret given as hex digits, as nexus_ctx_secret_set().
 * @param ctx  the context
 * @param name the secret's name
 * @param hex  an even number of hex digits (surrounding white space
 *             ignored)
 * @return as nexus_ctx_secret_set(); -EINVAL also for text that is not
 *         hex (the message never quotes it).
 * @par Threading: any thread.
 */
NEXUS_API int nexus_ctx_secret_set_hex(struct nexus_ctx *ctx,
				       const char *name, const char *hex);

/**
 * @brief Wipe and forget a secret.
 * @param ctx  the context
 * @param name its name
 * @return 0, or -EINVAL (NULL argument), -ENOENT (no secret of that
 *         name).
 * @par Threading: any thread.
 */
NEXUS_API int nexus_ctx_secret_remove(struct nexus_ctx *ctx,
				      const char *name);

/**@}*/
/* ------------------------------------------------------------------ */
/** @name Events
 *
 * A context reports what happens to its devices, exports and connections
 * as a stream of events to the callback set in nexus_ctx_opts::event_fn.
 * Events are delivered on one thread of the context, one at a time, in
 * the order they happened: the events of one object arrive in order and
 * each exactly once.  Delivery is asynchronous (the code that raised an
 * event never waits for the callback), from a bounded queue: when the
 * callback falls so far behind that the queue is full, further events
 * are counted and dropped and a NEXUS_EVENT_LOST event says how many. */
/**@{*/

/** @brief Kinds of events. */
enum nexus_event_kind {
	NEXUS_EVENT_DEV_STATE = 1,	/**< a device changed state
					 *   (old_state -> new_state, reason) */
	NEXUS_EVENT_CHILD_ATTACHED = 2, /**< a child was attached to dev
					 *   (child) */
	NEXUS_EVENT_CHILD_DETACHED = 3, /**< a child was detached from dev */
	NEXUS_EVENT_EXPORT_STARTED = 4, /**< an export serves clients */
	NEXUS_EVENT_EXPORT_STOPPED = 5, /**< an export stopped */
	NEXUS_EVENT_EXPORT_DEV_ADDED = 6,   /**< an export serves dev */
	NEXUS_EVENT_EXPORT_DEV_REMOVED = 7, /**< an export stopped serving dev */
	NEXUS_EVENT_CONN_OPENED = 8,	/**< a client connected (peer) */
	NEXUS_EVENT_CONN_CLOSED = 9,	/**< a client connection ended (peer,
					 *   reason, error) */
	NEXUS_EVENT_CLIENT_ERROR = 10,	/**< a client was sent an error
					 *   (error, message) */
	NEXUS_EVENT_IO_TIMEOUT = 11,	/**< an I/O of dev timed out */
	NEXUS_EVENT_COPY_DONE = 12,	/**< a copy job finished (error) */
	NEXUS_EVENT_LOST = 13,		/**< events were dropped: count in
					 *   nexus_event_info::count */
	/* Kinds are only appended: ignore kinds you do not know. */
};

/** @brief States of a device (nexus_event_info::old_state, new_state,
 *         nexus_dev_get_state()). */
enum nexus_dev_state {
	NEXUS_DEV_STATE_ONLINE = 0,   /**< serving I/O normally */
	NEXUS_DEV_STATE_DEGRADED = 1, /**< serving I/O, with reduced
				       *   redundancy (a mirror lost a child) */
	NEXUS_DEV_STATE_FAULTED = 2,  /**< failing I/O */
	NEXUS_DEV_STATE_OFFLINE = 3,  /**< taken out of service on purpose */
	NEXUS_DEV_STATE_REBUILDING = 4, /**< being brought back in sync */
	NEXUS_DEV_STATE_CLOSING = 5,  /**< being closed */
};

/** @brief Why something happened (nexus_event_info::reason). */
enum nexus_reason {
	NEXUS_REASON_NONE = 0,	       /**< no particular reason */
	NEXUS_REASON_IO_ERROR = 1,     /**< an I/O failed */
	NEXUS_REASON_TIMEOUT = 2,      /**< something did not answer in time */
	NEXUS_REASON_CANT_OPEN = 3,    /**< a device could not be opened */
	NEXUS_REASON_NO_SPACE = 4,     /**< a device ran out of space */
	NEXUS_REASON_USER = 5,	       /**< asked for through the API */
	NEXUS_REASON_REBUILD_FAILED = 6, /**< a rebuild did not complete */
	NEXUS_REASON_PEER_CLOSED = 7,  /**< the other end closed */
	NEXUS_REASON_PROTOCOL = 8,     /**< the peer broke the protocol */
	NEXUS_REASON_LIMIT = 9,	       /**< a configured limit was reached
					*   (connections, memory, idle time) */
	NEXUS_REASON_SHUTDOWN = 10,    /**< the owner is stopping */
	/* Reasons are only appended. */
};

/**
 * @brief One event.  Size-stamped, append-only: read `size` before a
 *        field added in a later version.
 *
 * The struct and every string it points to are valid only during the
 * callback: copy what you keep.  Handles (dev, child, exp) may be used
 * during the callback only for nexus_dev_get_info() and the like; the
 * object may be gone afterwards.  A handle whose object was closed
 * after the event was raised and before it is delivered reads as NULL
 * (the object name stays); closing an object waits for a delivery in
 * progress that names it, unless the callback closes it itself.
 */
struct nexus_event_info {
	/** sizeof(struct nexus_event_info) as the library filled it. */
	size_t size;
	/** enum nexus_event_kind. */
	uint32_t kind;
	/** enum nexus_reason. */
	uint32_t reason;
	/** Sequence number in the context, from 1, without gaps except
	 *  where events were lost. */
	uint64_t seq;
	/** Wall-clock time of the event, nanoseconds since the epoch. */
	uint64_t time_ns;
	/** The device concerned, or NULL. */
	struct nexus_dev *dev;
	/** The child device (CHILD_ATTACHED/DETACHED), or NULL. */
	struct nexus_dev *child;
	/** The export concerned, or NULL. */
	struct nexus_export *exp;
	/** Name of the object concerned (device name, export spec), or "". */
	const char *object;
	/** DEV_STATE: enum nexus_dev_state before the change. */
	int old_state;
	/** DEV_STATE: enum nexus_dev_state after the change. */
	int new_state;
	/** A negative errno where the event is about an error, else 0. */
	int error;
	/** Peer address of a connection, or "". */
	const char *peer;
	/** Human-readable detail, or "". */
	const char *message;
	/** LOST: number of events dropped; else 0. */
	uint64_t count;
};

/**
 * @brief Event callback type of nexus_ctx_opts::event_fn.
 * @param user_data nexus_ctx_opts::event_user_data
 * @param ev        the event (valid during the call)
 * @par Threading: runs on the context's event thread, never concurrently
 *      with itself.  It may call any libnexus function that an
 *      application thread may call, except nexus_ctx_destroy() on its
 *      own context; a slow callback delays later events, never I/O.
 */
typedef void (*nexus_event_fn)(void *user_data,
			       const struct nexus_event_info *ev);

/**
 * @brief Name of an event kind ("dev-state", "conn-opened", ...).
 * @return a static string; "unknown" for a kind this library does not
 *         know.
 */
NEXUS_API const char *nexus_event_kind_name(uint32_t kind);

/**
 * @brief Name of a device state ("online", "degraded", ...).
 * @return a static string; "unknown" for other values.
 */
NEXUS_API const char *nexus_dev_state_name(int state);

/**
 * @brief Name of a reason ("io-error", "timeout", ...).
 * @return a static string; "unknown" for other values.
 */
NEXUS_API const char *nexus_reason_name(uint32_t reason);

/**
 * @brief Current state of a device.
 * @return an enum nexus_dev_state, or -EINVAL for NULL.
 * @par Threading: any thread.
 */
NEXUS_API int nexus_dev_get_state(const struct nexus_dev *dev);

/**@}*/
/* ------------------------------------------------------------------ */
/** @name Live device graphs
 *
 * The children of a transform that supports it (a mirror's replicas) can
 * be attached and detached while I/O runs.  A change is atomic for the
 * data path: an I/O the parent starts sees the old list or the new one,
 * never a mix.  A detached child receives no new I/O from its parent,
 * and detaching waits for the I/O the parent already started on it, so
 * nothing in flight is lost or touches a device that is gone.
 * nexus_dev_child() and nexus_dev_child_count() then describe the list
 * as it is at the time of the call. */
/**@{*/

/**
 * @brief Attach an open device as a new child of a running transform.
 *
 * @p child must be a top-level device of the same context (opened with
 * nexus_dev_open(), not served by an export, not part of another stack).
 * On success its ownership passes to @p parent: it is closed with the
 * parent, and nexus_dev_close() refuses it (-EBUSY) until it is
 * detached.  The parent's driver decides what the new child gets (a
 * mirror starts a rebuild); NEXUS_EVENT_CHILD_ATTACHED is raised.
 * @param parent a transform whose driver supports attaching
 * @param child  the device to attach (last in the child list)
 * @return 0, or -EINVAL (NULL argument, other context, @p parent is
 *         @p child or below it), -EOPNOTSUPP (the parent's driver cannot
 *         attach while open), -ENOSPC (the driver's max_children is
 *         reached), -EBUSY (@p child is not the caller's to give: served
 *         by an export or owned by a stack), -ESHUTDOWN (@p parent is
 *         closing), -EDEADLK (called from a reactor thread), -ENOMEM, or
 *         the driver's refusal (e.g. -EINVAL for a child too small).  On
 *         error @p child stays the caller's, open and unchanged.
 * @par Threading: any application thread, including the event callback;
 *      not from an I/O callback (it waits for every reactor); not
 *      concurrently with closing @p parent.
 */
NEXUS_API int nexus_dev_attach_child(struct nexus_dev *parent,
				     struct nexus_dev *child);

/**
 * @brief Detach a child from a running transform and give it back.
 *
 * Once it returns 0, @p parent no longer sends I/O to @p child, and the
 * I/O it sent before has completed.  @p child is a top-level device of
 * the caller again: close it with nexus_dev_close() or attach it
 * elsewhere.  NEXUS_EVENT_CHILD_DETACHED is raised.
 * @param parent a transform whose driver supports detaching
 * @param child  one of its children
 * @return 0, or -EINVAL (NULL argument, other context), -ENOENT (not a
 *         child of @p parent), -EOPNOTSUPP (the driver cannot detach
 *         while open), -EBUSY (the last child, or one of the driver's
 *         min_children; or the driver refuses, e.g. the only replica in
 *         sync), -ESHUTDOWN (@p parent is closing), -EDEADLK (called
 *         from a reactor thread), -ENOMEM.  On error nothing changed.
 * @par Threading: as nexus_dev_attach_child().
 */
NEXUS_API int nexus_dev_detach_child(struct nexus_dev *parent,
				     struct nexus_dev *child);

/**@}*/
/* ------------------------------------------------------------------ */
/** @name Exports and pipelines */
/**@{*/

/** Longest identifier of the protocols libnexus speaks, with its NUL:
 *  an NVMe Qualified Name or an iSCSI Qualified Name has at most 223
 *  bytes.  Export names, host names and peers are sized with it. */
#define NEXUS_ID_MAX 224

/**
 * @brief Create an export: start serving a protocol, with no device yet.
 *
 * Clients can connect at once; devices are added (and removed) while it
 * runs with nexus_export_add_dev().  An NBD export serves each device
 * under its own export name, an NVMe-oF subsystem each as a namespace,
 * an iSCSI target each as a LUN.
 * @param ctx  the context
 * @param spec export stage text, e.g. "nbd:listen=127.0.0.1:10809"
 * @param out  receives the export
 * @return 0, or -EINVAL (NULL argument, bad spec: the message names the
 *         option and column), -ENOENT (unknown export driver),
 *         -EADDRINUSE, or another negative errno from the driver.
 * @par Threading: any application thread; not from a callback.
 */
NEXUS_API int nexus_export_create(struct nexus_ctx *ctx, const char *spec,
				  struct nexus_export **out);

/**
 * @brief Options of one device of an export.  Size-stamped, append-only.
 */
struct nexus_export_dev_opts {
	/** sizeof(struct nexus_export_dev_opts) as compiled by the caller. */
	size_t size;
	/** Name under which clients select the device (NBD export name,
	 *  iSCSI LUN name), at most NEXUS_ID_MAX - 1 bytes; NULL: the
	 *  export driver's default (for NBD the spec's `name=`, else ""). */
	const char *name;
	/** Number of the device in the export (NVMe namespace ID, iSCSI
	 *  LUN); 0: the lowest free one. */
	uint32_t id;
	/** NEXUS_EXPORT_DEV_* flags. */
	uint32_t flags;
};

/** Export device flag: serve the device read-only. */
#define NEXUS_EXPORT_DEV_READ_ONLY (1u << 0)

/** Designated initialiser for struct nexus_export_dev_opts. */
#define NEXUS_EXPORT_DEV_OPTS_INIT \
	{ .size = sizeof(struct nexus_export_dev_opts) }

/**
 * @brief Serve a device on an export.
 *
 * The export holds a reference on the device: nexus_dev_close() of it
 * fails with -EBUSY until it is removed again.
 * @param exp  the export
 * @param dev  an open device of the export's context
 * @param opts options, or NULL for defaults
 * @return 0, or -EINVAL (NULL argument, device of another context, name
 *         too long), -EEXIST (the name or id is taken on this export, or
 *         the device is served by it already), -EOPNOTSUPP (the driver
 *         serves one device and has one), -ESHUTDOWN (the export is
 *         being destroyed), or another negative errno from the driver.
 * @par Threading: any application thread; not from a callback.
 */
NEXUS_API int nexus_export_add_dev(struct nexus_export *exp,
				   struct nexus_dev *dev,
				   const struct nexus_export_dev_opts *opts);

/**
 * @brief Stop serving a device on an export and drop its reference.
 *
 * Connections using the device are drained and closed by the driver
 * (for NBD, the connections that selected it; for NVMe-oF the namespace
 * disappears and hosts are notified); other devices keep being served.
 * @return 0, or -EINVAL (NULL argument), -ENOENT (not served by this
 *         export).
 * @par Threading: any application thread; not from a callback.
 */
NEXUS_API int nexus_export_remove_dev(struct nexus_export *exp,
				      struct nexus_dev *dev);

/**
 * @brief Number of devices an export serves.
 * @return the count, or -EINVAL for NULL.
 * @par Threading: any thread.
 */
NEXUS_API int nexus_export_dev_count(const struct nexus_export *exp);

/**
 * @brief Stop an export: refuse new clients, finish or fail requests in
 *        flight, close connections, release its devices (they stay
 *        open) and free it.  NULL is a no-op.
 * @par Threading: any application thread; not from a callback (it is
 *      then refused with a logged error and a leak rather than a
 *      deadlock).
 */
NEXUS_API void nexus_export_destroy(struct nexus_export *exp);

/**
 * @brief Build a pipeline: its device stack and, if its last stage is an
 *        export, start the export.
 * @return 0 or a negative errno, as nexus_dev_open().
 * @par Threading: any application thread.
 */
NEXUS_API int nexus_pipeline_open(struct nexus_ctx *ctx, const char *text,
				  struct nexus_pipeline **out);

/**
 * @brief The device at the top of a pipeline's stack (owned by it).
 * @return the device, or NULL for a NULL pipeline.
 */
NEXUS_API struct nexus_dev *nexus_pipeline_dev(struct nexus_pipeline *pl);

/**
 * @brief The pipeline's export, or NULL if it has none.
 */
NEXUS_API struct nexus_export *
nexus_pipeline_export(struct nexus_pipeline *pl);

/**
 * @brief Stop the export (if any) and close the device stack.  NULL is a
 *        no-op.
 */
NEXUS_API void nexus_pipeline_close(struct nexus_pipeline *pl);

/**
 * @brief Parse and validate pipeline text without opening anything, and
 *        describe it.
 * @param ctx  context whose driver registry is used
 * @param text pipeline text
 * @param buf  receives a normalised, human-readable description (may be
 *             NULL when @p len is 0); the values of secret options
 *             (NEXUS_OPTF_SECRET) are shown as `***`
 * @param len  size of @p buf
 * @return length of the full description (like snprintf), or a negative
 *         errno with a message naming the stage and column.
 */
NEXUS_API int nexus_pipeline_check(struct nexus_ctx *ctx, const char *text,
				   char *buf, size_t len);

/**
 * @brief Counters of one client connection of an export.
 *        Size-stamped, append-only.
 */
struct nexus_conn_info {
	/** sizeof(struct nexus_conn_info) as compiled by the caller. */
	size_t size;
	/** Peer address, e.g. "127.0.0.1:50312" or "unix". */
	char peer[NEXUS_ID_MAX];
	/** Name of the device the client selected (NBD export name). */
	char export_name[NEXUS_ID_MAX];
	/** Host identity the client gave (NVMe host NQN, iSCSI initiator
	 *  IQN); "" where the protocol has none (NBD). */
	char host_id[NEXUS_ID_MAX];
	/** Reactor serving the connection. */
	unsigned reactor;
	/** Requests completed. */
	uint64_t requests;
	/** Requests that failed. */
	uint64_t errors;
	/** Bytes sent to the client as read data. */
	uint64_t bytes_read;
	/** Bytes received from the client as write data. */
	uint64_t bytes_written;
};

/** Designated initialiser for struct nexus_conn_info. */
#define NEXUS_CONN_INFO_INIT { .size = sizeof(struct nexus_conn_info) }

/**
 * @brief List an export's current connections.
 * @param exp  the export
 * @param out  array of @p max entries, each with `size` set
 * @param max  capacity of @p out
 * @return the number of connections (may exceed @p max: only @p max are
 *         written), or a negative errno (-EOPNOTSUPP if the export's
 *         driver cannot list connections).
 * @par Threading: any application thread.
 */
NEXUS_API int nexus_export_list_conns(struct nexus_export *exp,
				      struct nexus_conn_info *out,
				      unsigned max);

/**
 * @brief Load a driver plugin (a shared object) into a context.
 * @param ctx  the context
 * @param path file name of the plugin
 * @return 0, or -ENOENT, -ENOEXEC (not a loadable object / no entry
 *         point), -EPROTO (built for a newer driver ABI or invalid
 *         table), -EEXIST (a driver of that name and kind exists).
 * @par Threading: any application thread.
 */
NEXUS_API int nexus_plugin_load(struct nexus_ctx *ctx, const char *path);

/**
 * @brief Describe every driver of a context (built-in and loaded):
 *        kind, name, summary and options with type, default and help.
 * @param ctx the context
 * @param buf receives the text (may be NULL when @p len is 0)
 * @param len size of @p buf
 * @return length of the full text (like snprintf) or a negative errno.
 */
NEXUS_API int nexus_ctx_describe_drivers(struct nexus_ctx *ctx, char *buf,
					 size_t len);

/**@}*/

/* ------------------------------------------------------------------ */
/** @name Copy engine
 *
 * Copies a device, or a list of its ranges, onto another device with
 * many requests in flight across the context's reactors.  Sparse-aware:
 * the source's block status splits the copy into data and zero ranges,
 * and a zero range is zeroed on the destination with WRITE_ZEROES (or
 * TRIM where it reads back zeroes), or skipped where the destination
 * already reads as zeroes, instead of being written as zero bytes.  A
 * job can be paused, resumed, cancelled and rate-limited while it runs,
 * reports its progress, and can verify the copy by reading both sides
 * back.  nexus-copy(1) is a thin program on top of it; a mirror's
 * rebuild copies the dirty ranges of a replica with it, sequencing each
 * chunk against foreground writes with the lock hook.
 *
 * A job: nexus_copy_create(), nexus_copy_start() (its done callback is
 * called exactly once), optionally nexus_copy_wait(), and
 * nexus_copy_destroy().  Both devices must stay open until the job is
 * destroyed. */
/**@{*/

/** @brief A copy job (opaque). */
struct nexus_copy;
/** @brief A chunk of a copy job waiting for its range lock (opaque). */
struct nexus_copy_chunk;

/** @brief A byte range of the source, copied to the same offset. */
struct nexus_copy_range {
	uint64_t offset; /**< start, bytes */
	uint64_t length; /**< length, bytes */
};

/** Copy flag: after the copy (and the flush), read both devices back and
 *  compare; zero ranges of the source are checked to read as zeroes on
 *  the destination.  A difference fails the job with -EILSEQ. */
#define NEXUS_COPY_VERIFY (1u << 0)
/** Copy flag: copy every byte as data (no block status, no zero
 *  detection). */
#define NEXUS_COPY_NO_SPARSE (1u << 1)
/** Copy flag: the caller promises the destination already reads as
 *  zeroes: zero ranges are skipped without looking. */
#define NEXUS_COPY_TARGET_ZERO (1u << 2)
/** Copy flag: do not flush the destination after the copy. */
#define NEXUS_COPY_NO_FLUSH (1u << 3)

/** @brief Phases of a copy job, in order. */
enum nexus_copy_phase {
	NEXUS_COPY_PHASE_IDLE = 0,   /**< created, not started */
	NEXUS_COPY_PHASE_COPY = 1,   /**< copying */
	NEXUS_COPY_PHASE_VERIFY = 2, /**< reading both sides back */
	NEXUS_COPY_PHASE_DONE = 3,   /**< finished (successfully or not) */
};

/** Progress flag: the last report of its phase (the phase's figures are
 *  final; for the copy phase, the flush is done). */
#define NEXUS_COPY_PROGRESS_FINAL (1u << 0)
/** Progress flag: the job is paused. */
#define NEXUS_COPY_PROGRESS_PAUSED (1u << 1)

/**
 * @brief Progress of a copy job.  Size-stamped, append-only.
 */
struct nexus_copy_progress {
	/** sizeof(struct nexus_copy_progress) as compiled by the caller. */
	size_t size;
	/** enum nexus_copy_phase. */
	int phase;
	/** NEXUS_COPY_PROGRESS_* flags. */
	uint32_t flags;
	/** Bytes of the current phase done (copied, zeroed, skipped or
	 *  verified). */
	uint64_t bytes_done;
	/** Bytes the phase covers: the source's size, or the sum of the
	 *  ranges; with nexus_copy_opts::next_range, the sum of the ranges
	 *  returned so far until the last one is known. */
	uint64_t bytes_total;
	/** Copy phase: bytes read from the source and written as data. */
	uint64_t data_bytes;
	/** Copy phase: bytes of zero ranges (zeroed or skipped). */
	uint64_t zero_bytes;
	/** Copy phase: bytes of zero ranges skipped because the destination
	 *  already read as zeroes (part of zero_bytes). */
	uint64_t skipped_bytes;
	/** Average rate of the phase, bytes per second of active (not
	 *  paused) time. */
	uint64_t rate;
	/** Active time of the phase, nanoseconds (pauses excluded; the
	 *  flush after the copy excluded). */
	uint64_t elapsed_ns;
	/** Requests in flight. */
	unsigned in_flight;
	/** Verify: the first offset where the destination differs, or
	 *  UINT64_MAX. */
	uint64_t mismatch_offset;
	/** The job's error so far (what the done callback will get), or 0:
	 *  in the final report of the copy phase, 0 means that the copy
	 *  and the flush succeeded. */
	int error;
};

/** Designated initialiser for struct nexus_copy_progress. */
#define NEXUS_COPY_PROGRESS_INIT                                           \
	{ .size = sizeof(struct nexus_copy_progress) }

/**
 * @brief Progress callback.
 * @param user_data nexus_copy_opts::user_data
 * @param p         the job's progress (valid during the call)
 * @par Threading: runs on the job's own thread (not a reactor), never
 *      concurrently with itself; may call nexus_copy_pause(),
 *      nexus_copy_resume(), nexus_copy_cancel(), nexus_copy_set_rate()
 *      and nexus_copy_get_progress(), not nexus_copy_wait() or
 *      nexus_copy_destroy().
 */
typedef void (*nexus_copy_progress_fn)(void *user_data,
				       const struct nexus_copy_progress *p);

/**
 * @brief "Next range" callback: the ranges to copy, one at a time, in
 *        any order (a mirror's dirty regions).
 * @param user_data nexus_copy_opts::user_data
 * @param range     receives the next range (within the source, non-empty;
 *                  widened to the devices' block size)
 * @return 1 (a range was stored), 0 (no more ranges), or a negative
 *         errno (the job fails with it).
 * @par Threading: the job's own thread; may block.  Called during the
 *      copy phase only (the verify phase replays the ranges it got).
 */
typedef int (*nexus_copy_next_fn)(void *user_data,
				  struct nexus_copy_range *range);

/** Return value of a nexus_copy_lock_fn: the lock will be granted later
 *  with nexus_copy_chunk_locked(). */
#define NEXUS_COPY_LOCK_PENDING 1

/**
 * @brief Lock hook: called before a chunk's I/O (read the source, write
 *        or zero the destination; in the verify phase, read both), so
 *        that a mirror can hold foreground writes to that range off (or
 *        wait for those in flight) while the chunk is copied.
 *
 * With a lock hook, a zero range is read from the source under the lock
 * (and zeroed on the destination if it still reads as zeroes), so that
 * no decision taken before the lock is acted on after it.
 * @param user_data nexus_copy_opts::user_data
 * @param offset    start of the chunk, bytes
 * @param length    length of the chunk (at most the job's block size)
 * @param chunk     the chunk, for nexus_copy_chunk_locked()
 * @return 0 (locked: the chunk proceeds now), NEXUS_COPY_LOCK_PENDING
 *         (call nexus_copy_chunk_locked(@p chunk, ...) exactly once,
 *         later, from any thread), or a negative errno (the job fails
 *         with it; the unlock hook is not called for this chunk).
 * @par Threading: any thread of the context (usually a reactor); must
 *      not block.
 */
typedef int (*nexus_copy_lock_fn)(void *user_data, uint64_t offset,
				  uint64_t length,
				  struct nexus_copy_chunk *chunk);

/**
 * @brief Unlock hook: a chunk whose lock was granted is done.
 * @param user_data nexus_copy_opts::user_data
 * @param offset    start of the chunk, as given to the lock hook
 * @param length    length of the chunk, as given to the lock hook
 * @param result    0, or the chunk's negative errno
 * @par Threading: any thread of the context (usually a reactor); must
 *      not block.
 */
typedef void (*nexus_copy_unlock_fn)(void *user_data, uint64_t offset,
				     uint64_t length, int result);

/**
 * @brief Completion callback of a copy job.
 * @param user_data as given to nexus_copy_start()
 * @param result    0, or a negative errno: -ECANCELED (cancelled),
 *                  -EILSEQ (verify found a difference: see
 *                  nexus_copy_progress::mismatch_offset), or the error of
 *                  the failed I/O.  nexus_last_error() on this thread
 *                  names the operation, offset and side.
 * @par Threading: runs once on the job's own thread, after every request
 *      of the job finished; as nexus_copy_progress_fn for what it may
 *      call, and it may also nexus_copy_destroy() the job.
 */
typedef void (*nexus_copy_done_fn)(void *user_data, int result);

/**
 * @brief Options of a copy job.  Size-stamped, append-only.
 *
 * Initialise with NEXUS_COPY_OPTS_INIT; zero fields mean "default".
 */
struct nexus_copy_opts {
	/** sizeof(struct nexus_copy_opts) as compiled by the caller. */
	size_t size;
	/** Requests in flight, 1 to 256; 0 means 16. */
	unsigned requests;
	/** Bytes per request, 512 to 64 MiB; 0 means 256 KiB.  Lowered to
	 *  what both devices accept, in multiples of their block size. */
	uint32_t block_size;
	/** NEXUS_COPY_* flags. */
	uint32_t flags;
	/** Rate limit: bytes of data copied (or verified) per second; zero
	 *  ranges zeroed or skipped do not count.  0 means none.  Changed
	 *  at run time with nexus_copy_set_rate(). */
	uint64_t rate_limit;
	/** Ranges to copy instead of the whole source (copied by
	 *  nexus_copy_create(); each within the source, widened to the
	 *  devices' block size); NULL for the whole source. */
	const struct nexus_copy_range *ranges;
	/** Entries of @ref ranges. */
	size_t nranges;
	/** Ranges from a callback instead (exclusive with @ref ranges). */
	nexus_copy_next_fn next_range;
	/** Progress callback, or NULL. */
	nexus_copy_progress_fn progress_fn;
	/** Milliseconds between progress reports; 0 means 200.  The last
	 *  report of each phase has NEXUS_COPY_PROGRESS_FINAL. */
	unsigned progress_interval_ms;
	/** Lock hook, or NULL (requires @ref unlock_fn). */
	nexus_copy_lock_fn lock_fn;
	/** Unlock hook, or NULL (requires @ref lock_fn). */
	nexus_copy_unlock_fn unlock_fn;
	/** Passed to next_range, progress_fn, lock_fn and unlock_fn. */
	void *user_data;
	/** Run exactly once with @ref user_data by nexus_copy_destroy() of a
	 *  job that nexus_copy_create() made, or NULL. */
	void (*user_free)(void *user_data);
};

/** Designated initialiser for struct nexus_copy_opts. */
#define NEXUS_COPY_OPTS_INIT { .size = sizeof(struct nexus_copy_opts) }

/**
 * @brief Create a copy job from @p src to @p dst (not started).
 *
 * Checks what can be checked before any I/O: the destination is at
 * least as large as the source, writable, the source readable, the
 * sizes and ranges fit the block sizes.  Allocates the job's buffers.
 * @param src  device to read
 * @param dst  device to write (another device of the same context)
 * @param opts options, or NULL for defaults
 * @param out  receives the job
 * @return 0, or -EINVAL (NULL argument, the same device twice, devices
 *         of different contexts, bad option, a range outside the
 *         source, both ranges and next_range, only one of the lock
 *         hooks), -ENOSPC (the destination is smaller than the source),
 *         -EROFS (the destination is read-only), -EOPNOTSUPP (the
 *         source cannot be read), -ENOMEM.
 * @par Threading: any thread.
 */
NEXUS_API int nexus_copy_create(struct nexus_dev *src, struct nexus_dev *dst,
				const struct nexus_copy_opts *opts,
				struct nexus_copy **out);

/**
 * @brief Start a job: copy, flush, verify (as its flags say), then call
 *        @p done.
 * @param job       the job
 * @param done      completion callback (required)
 * @param user_data passed to @p done
 * @return 0: @p done will be called exactly once.  Negative errno: it
 *         will not be: -EINVAL (NULL argument), -EALREADY (the job was
 *         started before: a job runs once), or the error of creating the
 *         job's thread.
 * @par Threading: any thread.
 */
NEXUS_API int nexus_copy_start(struct nexus_copy *job, nexus_copy_done_fn done,
			       void *user_data);

/**
 * @brief Wait until a started job has finished and its done callback has
 *        returned.
 * @return the job's result (as given to the done callback; its message
 *         is then available from nexus_last_error() on this thread), or
 *         -EINVAL (NULL, or the job was never started), -EDEADLK (called
 *         from a reactor or from the job's own callbacks).
 * @par Threading: any application thread.
 */
NEXUS_API int nexus_copy_wait(struct nexus_copy *job);

/**
 * @brief Pause a job: no request is started until nexus_copy_resume();
 *        requests in flight complete.
 * @return 0 (also when already paused or finished), -EINVAL (NULL).
 * @par Threading: any thread, including the job's callbacks.
 */
NEXUS_API int nexus_copy_pause(struct nexus_copy *job);

/**
 * @brief Resume a paused job.
 * @return 0 (also when not paused), -EINVAL (NULL).
 * @par Threading: any thread, including the job's callbacks.
 */
NEXUS_API int nexus_copy_resume(struct nexus_copy *job);

/**
 * @brief Cancel a job: no new request starts, those in flight complete,
 *        then the done callback gets -ECANCELED.  The destination is
 *        left partly copied.
 * @return 0 (also when the job has finished, or was not started: it
 *         then finishes with -ECANCELED as soon as it starts), -EINVAL
 *         (NULL).
 * @par Threading: any thread, including the job's callbacks.
 */
NEXUS_API int nexus_copy_cancel(struct nexus_copy *job);

/**
 * @brief Change the rate limit of a job, also while it runs.
 * @param job            the job
 * @param bytes_per_sec  new limit (see nexus_copy_opts::rate_limit);
 *                       0 removes it
 * @return 0, -EINVAL (NULL).
 * @par Threading: any thread, including the job's callbacks.
 */
NEXUS_API int nexus_copy_set_rate(struct nexus_copy *job,
				  uint64_t bytes_per_sec);

/**
 * @brief Read a job's progress.
 * @param job the job
 * @param p   caller's struct with `size` set (NEXUS_COPY_PROGRESS_INIT)
 * @return 0, -EINVAL (NULL argument or a `size` too small).
 * @par Threading: any thread, including the job's callbacks.
 */
NEXUS_API int nexus_copy_get_progress(struct nexus_copy *job,
				      struct nexus_copy_progress *p);

/**
 * @brief Grant (or refuse) the lock of a chunk for which the lock hook
 *        returned NEXUS_COPY_LOCK_PENDING.
 * @param chunk  the chunk given to the lock hook
 * @param result 0 (locked: the chunk proceeds), or a negative errno (the
 *               job fails with it; no unlock hook for this chunk)
 * @par Threading: any thread, including reactors; exactly once per
 *      pending chunk.
 */
NEXUS_API void nexus_copy_chunk_locked(struct nexus_copy_chunk *chunk,
				       int result);

/**
 * @brief Destroy a job: a running job is cancelled and waited for first.
 *        Runs nexus_copy_opts::user_free.  NULL is a no-op.
 *
 * From the job's done callback it is allowed (a job that cleans up after
 * itself, e.g. a rebuild): the job is freed when the callback returns,
 * so nobody may be in nexus_copy_wait() on it.
 * @return 0, or -EDEADLK (called from a reactor, or from the job's
 *         progress, range or lock callbacks: nothing is done).
 * @par Threading: any application thread; the job's done callback.
 */
NEXUS_API int nexus_copy_destroy(struct nexus_copy *job);

/**@}*/

/* ------------------------------------------------------------------ */
/** @name Mirror
 *
 * The `mirror` transform keeps a device on several children (replicas):
 * `( file:/a.img ; file:/b.img ) | mirror:state=/var/lib/vol.state`.
 * Its children are changed with nexus_dev_control() on the mirror (or
 * any device above it): `"mirror.child.N"` = `"offline"`, `"fault"` or
 * `"online"` (which starts a rebuild), `"mirror.rate"` = bytes per
 * second of rebuild, `"mirror.rebuild"` = `"pause"`, `"resume"`,
 * `"cancel"`.  The calls below list the children and the rebuild.
 * doc/mirror.md is the guide. */
/**@{*/

/** @brief One child of a mirror.  Size-stamped, append-only. */
struct nexus_mirror_child {
	/** sizeof(struct nexus_mirror_child) as compiled by the caller. */
	size_t size;
	/** The child's device (valid while the mirror is open). */
	struct nexus_dev *dev;
	/** enum nexus_dev_state: ONLINE (in sync, a read source), FAULTED,
	 *  OFFLINE or REBUILDING. */
	int state;
	/** enum nexus_reason of the last state change. */
	uint32_t reason;
	/** Negative errno of the I/O that faulted it, or 0. */
	int error;
	/** Whether a rebuild of this child would be partial (its
	 *  dirty-region map covers everything it missed). */
	int partial_ok;
	/** Reads sent to the child. */
	uint64_t reads;
	/** Writes, TRIMs, WRITE_ZEROES and FLUSHes sent to the child. */
	uint64_t writes;
	/** Requests of the child that failed. */
	uint64_t errors;
	/** Requests of the child that did not answer in time. */
	uint64_t timeouts;
	/** Requests in flight on the child. */
	uint64_t in_flight;
	/** Bytes of the regions marked dirty (missed writes). */
	uint64_t dirty_bytes;
};

/** Designated initialiser for struct nexus_mirror_child. */
#define NEXUS_MIRROR_CHILD_INIT { .size = sizeof(struct nexus_mirror_child) }

/**
 * @brief Describe child @p i of the mirror in @p dev's stack.
 * @param dev a mirror, or a device stacked on one (the first mirror
 *            going down through single-child stages is used)
 * @param i   child index, from 0 (the order of the pipeline group)
 * @param out caller's struct with `size` set (NEXUS_MIRROR_CHILD_INIT)
 * @return the number of children, or -EINVAL (NULL, `size` too small),
 *         -ENOENT (no mirror in the stack, or @p i out of range).
 * @par Threading: any thread while the device is open.
 */
NEXUS_API int nexus_mirror_get_child(struct nexus_dev *dev, unsigned i,
				     struct nexus_mirror_child *out);

/** @brief The rebuild of a mirror.  Size-stamped, append-only. */
struct nexus_mirror_rebuild {
	/** sizeof(struct nexus_mirror_rebuild) as compiled by the caller. */
	size_t size;
	/** Child being rebuilt, or -1 when none is. */
	int child;
	/** Whether the current (or last) rebuild is partial (dirty regions
	 *  only) rather than full. */
	int partial;
	/** Rebuilds finished successfully since open. */
	uint64_t completed;
	/** Result of the last finished rebuild: 0 or a negative errno. */
	int last_result;
	/** The copy's progress: of the running rebuild, else the final one
	 *  of the last (bytes_done, bytes_total, data_bytes, rate, ...). */
	struct nexus_copy_progress progress;
	/** Running rebuild: estimated milliseconds left at its average
	 *  rate (UINT64_MAX while unknown); else 0. */
	uint64_t eta_ms;
};

/** Designated initialiser for struct nexus_mirror_rebuild. */
#define NEXUS_MIRROR_REBUILD_INIT                                          \
	{ .size = sizeof(struct nexus_mirror_rebuild),                     \
	  .progress = NEXUS_COPY_PROGRESS_INIT }

/**
 * @brief The rebuild of the mirror in @p dev's stack.
 * @param dev a mirror, or a device stacked on one
 * @param out caller's struct with `size` and `progress.size` set
 *            (NEXUS_MIRROR_REBUILD_INIT)
 * @return 0, -EINVAL (NULL, a `size` too small), -ENOENT (no mirror).
 * @par Threading: any application thread while the device is open.
 */
NEXUS_API int nexus_mirror_get_rebuild(struct nexus_dev *dev,
				       struct nexus_mirror_rebuild *out);

/**
 * @brief A state store supplied by the application (size-stamped): where
 *        a mirror given `state=app:NAME` keeps its record of which
 *        children are in sync, instead of a file or etcd.
 *
 * The record is opaque bytes (at most NEXUS_STORE_MAX_RECORD) that the
 * store keeps as one value.  Both callbacks run on a thread of the
 * library that may block (never a reactor), one call at a time per
 * store; they may not close the mirror or the context.
 */
struct nexus_state_store {
	/** sizeof(struct nexus_state_store) as compiled by the caller. */
	size_t size;
	/** Read the record into @p buf (@p cap bytes): return its length,
	 *  0 when there is none yet, or a negative errno (the mirror then
	 *  fails to open, with a message naming the store). */
	int (*get)(void *user_data, void *buf, size_t cap);
	/** Replace the record with @p len bytes @b durably: return 0 only
	 *  once the new record would be the one found after a crash, else a
	 *  negative errno (the old record must then still be there).  Writes
	 *  that wait for the record fail instead of being acknowledged while
	 *  put fails, and the mirror retries every second. */
	int (*put)(void *user_data, const void *buf, size_t len);
	/** Runs once when the store is removed (or its context destroyed)
	 *  and no mirror uses it any more; may be NULL. */
	void (*release)(void *user_data);
	/** Passed to the callbacks. */
	void *user_data;
};

/** Designated initialiser for struct nexus_state_store. */
#define NEXUS_STATE_STORE_INIT { .size = sizeof(struct nexus_state_store) }

/** Largest record a state store must keep, bytes. */
#define NEXUS_STORE_MAX_RECORD 65535

/**
 * @brief Register an application state store under @p name, for mirrors
 *        opened with `state=app:NAME`.  One mirror uses a store at a time.
 * @param ctx   the context
 * @param name  1 to 64 bytes of letters, digits, '-', '_' and '.'
 * @param store the callbacks (get and put required); copied
 * @return 0, or -EINVAL (NULL, a bad name, missing callbacks, a `size`
 *         too small), -EEXIST (a store of that name exists), -ENOMEM.
 * @par Threading: any application thread.
 */
NEXUS_API int nexus_ctx_store_add(struct nexus_ctx *ctx, const char *name,
				  const struct nexus_state_store *store);

/**
 * @brief Unregister a state store; its release callback runs now.
 * @return 0, or -EINVAL (NULL), -ENOENT (no store of that name), -EBUSY
 *         (an open mirror uses it: close the mirror first).
 * @par Threading: any application thread.
 */
NEXUS_API int nexus_ctx_store_remove(struct nexus_ctx *ctx, const char *name);

/**@}*/

#ifdef __cplusplus
}
#endif

#endif /* NEXUS_NEXUS_H */
