/* SPDX-License-Identifier: MIT */
/**
 * @file nexus_driver.h
 * @brief libnexus driver ABI: sources, transforms and exports.
 *
 * Built-in drivers and external plugins use this same table.  Rules:
 *  - struct nexus_driver starts with its ABI version and its size; use
 *    NEXUS_DRIVER_HEADER in its initialiser.  Fields are only appended.
 *    The loader copies what the plugin's size covers and zero-fills the
 *    rest; a table declaring a newer ABI is refused.
 *  - A device driver declares in `ops` the operations it handles.  The
 *    core rejects every other operation with -EOPNOTSUPP before it
 *    reaches the driver: a transform never sees, and so never passes
 *    through, an operation it does not understand.
 *  - Everything a driver does on the data path happens on a reactor
 *    thread: submit(), the completions of I/O it started on devices
 *    below, its io_uring events.  Per-reactor state (reactor_init) needs
 *    no locks.
 *  - open/close/export_start/export_stop run on an application thread.
 *
 * The guide for plugin authors is nexus-plugin(7): lifecycle, threading,
 * what a transform does with each operation, and what the ABI promises.
 */
#ifndef NEXUS_NEXUS_DRIVER_H
#define NEXUS_NEXUS_DRIVER_H

#include <stdbool.h>
#include <nexus/nexus.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Current driver ABI version. */
#define NEXUS_DRIVER_ABI_VERSION 1

/** @brief Driver kinds. */
enum nexus_driver_kind {
	NEXUS_DRIVER_SOURCE = 1,    /**< first stage: provides a device */
	NEXUS_DRIVER_TRANSFORM = 2, /**< middle stage: a device on devices */
	NEXUS_DRIVER_EXPORT = 3,    /**< last stage: serves a device */
};

/** @brief Types of driver options. */
enum nexus_opt_type {
	NEXUS_OPT_STRING = 0, /**< any text */
	NEXUS_OPT_BOOL = 1,   /**< on/off, true/false, yes/no, 1/0 */
	NEXUS_OPT_UINT = 2,   /**< unsigned decimal or 0x hex */
	NEXUS_OPT_SIZE = 3,   /**< bytes with optional K/M/G/T suffix */
};

/** Option flag: the option must be given. */
#define NEXUS_OPTF_REQUIRED (1u << 0)
/** Option flag: a value given without "key=" in first position is this
 *  option (e.g. the path of `file:/tmp/a.img`). */
#define NEXUS_OPTF_POSITIONAL (1u << 1)
/**
 * Option flag: the value is a secret (key material, a password, a
 * token) and is never shown.  Wherever libnexus would print it, it prints
 * `***` instead: nexus_pipeline_check() descriptions, device and export
 * names (nexus_dev_info::name, which is the stage text), log messages,
 * error messages about the value, and nexus_dev_control() messages for
 * a setting of the same name.  The driver's own messages must not show
 * it either.  nexus_opts_str() still returns the value.
 *
 * Appended after libnexus 1.0's first two flags: a library that does not
 * know it refuses the driver table (unknown option flags) rather than
 * show the value.
 */
#define NEXUS_OPTF_SECRET (1u << 2)

/**
 * @brief Description of one driver option.
 *
 * The array is read with the stride nexus_driver::option_size, so fields
 * can be appended: a library reads only the fields the driver's stride
 * covers.  The core validates every given value against the type, the
 * bounds and the word list when the pipeline is parsed (nexus-pipe
 * --check, nexus_pipeline_check(), open, export creation, the bindings),
 * before the driver sees it.
 */
struct nexus_option_desc {
	const char *name;	/**< option name; NULL ends the array */
	int type;		/**< enum nexus_opt_type */
	const char *def;	/**< default value text, or NULL */
	const char *help;	/**< one-line help */
	uint32_t flags;		/**< NEXUS_OPTF_* */
	/** UINT and SIZE: smallest accepted value (with max == 0 and
	 *  min == 0: no bounds). */
	uint64_t min;
	/** UINT and SIZE: largest accepted value; 0 with a non-zero min
	 *  means no upper bound. */
	uint64_t max;
	/** STRING: NULL-terminated list of the accepted words, or NULL for
	 *  any text. */
	const char *const *values;
};

/** @brief Parsed options of one stage (opaque). */
struct nexus_opts;

/**
 * @brief Value of a string option.
 * @param opts the options passed to open() or export_start()
 * @param name an option name from the driver's table
 * @return the given value, else the default, else NULL.  Valid until the
 *         callback that received @p opts returns: copy what you keep.
 * @par Threading: the thread running open() / export_start().
 */
NEXUS_API const char *nexus_opts_str(const struct nexus_opts *opts,
				     const char *name);

/**
 * @brief Value of a UINT or SIZE option.
 * @param opts the options passed to open() or export_start()
 * @param name an option name from the driver's table
 * @param out  receives the value (bytes for SIZE: "64K" gives 65536)
 * @return 0, -ENOENT (absent and no default), -EINVAL (not a number:
 *         the message names the option).
 */
NEXUS_API int nexus_opts_u64(const struct nexus_opts *opts, const char *name,
			     uint64_t *out);

/**
 * @brief Value of a BOOL option.
 * @param opts the options passed to open() or export_start()
 * @param name an option name from the driver's table
 * @param out  receives the value
 * @return 0, -ENOENT (absent and no default), -EINVAL.
 */
NEXUS_API int nexus_opts_bool(const struct nexus_opts *opts, const char *name,
			      bool *out);

/**
 * @brief Whether an option was given explicitly in the pipeline text.
 * @param opts the options passed to open() or export_start()
 * @param name an option name
 * @return true if the stage text set it (a default does not count).
 */
NEXUS_API bool nexus_opts_given(const struct nexus_opts *opts,
				const char *name);

/** @brief A reactor thread: one io_uring, run to completion. */
struct nexus_reactor;

/**
 * @brief One I/O as a device driver sees it.
 *
 * Allocated by the core from a per-reactor pool; drivers never allocate
 * it.  Fields may only be appended in later ABI versions.
 */
struct nexus_io {
	struct nexus_dev *dev;		/**< device the I/O is for */
	struct nexus_reactor *reactor;	/**< reactor running it */
	void *rstate;			/**< the device's per-reactor state */
	void *driver_ctx;		/**< per_io_size bytes for the driver */
	const struct iovec *iov;	/**< data (READ/WRITE), else NULL */
	int iovcnt;			/**< entries in iov */
	uint32_t op;			/**< enum nexus_op */
	uint32_t flags;			/**< NEXUS_IO_* */
	uint32_t max_extents;		/**< BLOCK_STATUS: capacity of extents */
	uint64_t offset;		/**< byte offset */
	uint64_t length;		/**< bytes (the iovec total for data) */
	/** BLOCK_STATUS: where the driver writes its extents (contiguous
	 *  from offset, at least one byte, at most length bytes); complete
	 *  with the number written as the result. */
	struct nexus_extent *extents;
};

/**
 * @brief Complete an I/O that the driver's submit() accepted.
 * @param io     the I/O
 * @param result 0 on success (the number of extents for BLOCK_STATUS)
 *               or a negative errno
 * @par Threading: the I/O's reactor thread only.  The callback of the
 *      submitter runs later from the reactor loop, never re-entrantly.
 */
NEXUS_API void nexus_io_complete(struct nexus_io *io, int result);

/**
 * @brief io_uring completion handler.  Embed it in a driver structure and
 *        pass it to nexus_reactor_sqe(); @p fn runs on the reactor for each
 *        CQE (several for multishot requests: see IORING_CQE_F_MORE).
 *
 * Its layout is frozen: one function pointer, forever (a CQE's user_data
 * is this struct's address, and drivers embed it, so it can never grow).
 * Use container_of() from @p h to reach the driver's own structure.
 */
struct nexus_cqe_handler {
	/** Handler: @p res is the CQE result, @p cqe_flags its flags. */
	void (*fn)(struct nexus_cqe_handler *h, int res, uint32_t cqe_flags);
};

struct io_uring_sqe;

/**
 * @brief Get an SQE of the reactor's ring whose completion goes to @p ev.
 *
 * Prepare it with liburing's io_uring_prep_*() (user_data is already
 * set; do not change it).  Submission is batched by the reactor loop.
 * @return the SQE, or NULL if the ring cannot take one now.
 * @par Threading: the reactor's own thread only.
 */
NEXUS_API struct io_uring_sqe *nexus_reactor_sqe(struct nexus_reactor *r,
						 struct nexus_cqe_handler *h);

/**
 * @brief The reactor running the calling thread, or NULL.
 */
NEXUS_API struct nexus_reactor *nexus_reactor_current(void);

/**
 * @brief Index of a reactor in its context, 0-based.  Drivers may use it
 *        to index their own per-reactor arrays.
 */
NEXUS_API unsigned nexus_reactor_index(const struct nexus_reactor *r);

/** @brief Context of a reactor. */
NEXUS_API struct nexus_ctx *nexus_reactor_ctx(const struct nexus_reactor *r);

/**
 * @brief Reactor @p i of a context.
 * @return the reactor, or NULL if @p i is out of range.
 */
NEXUS_API struct nexus_reactor *nexus_ctx_reactor(struct nexus_ctx *ctx,
						  unsigned i);

/**
 * @brief Run fn(arg) on a reactor, asynchronously.
 * @return 0 (fn will run exactly once) or -ENOMEM / -ESHUTDOWN.
 * @par Threading: any thread.
 */
NEXUS_API int nexus_reactor_post(struct nexus_reactor *r,
				 void (*fn)(void *arg), void *arg);

/**
 * @brief Run fn(arg) on a reactor and wait for it.
 * @return fn's return value, or -EDEADLK when called from a reactor
 *         thread, -ENOMEM, -ESHUTDOWN.
 * @par Threading: application threads only.
 */
NEXUS_API int nexus_reactor_call(struct nexus_reactor *r,
				 int (*fn)(void *arg), void *arg);

/**
 * @brief Get a buffer from the reactor's pool.
 *
 * 4096-byte aligned (usable for O_DIRECT and registered I/O).  Buffers
 * are recycled; the pool only grows when all are in use.
 * @return the buffer or NULL (length 0 or out of memory).
 * @par Threading: the reactor's own thread only.
 */
NEXUS_API void *nexus_buf_alloc(struct nexus_reactor *r, size_t len);

/**
 * @brief Return a buffer to the pool of the reactor it came from.
 * @param r   the reactor the buffer was allocated on
 * @param buf the buffer (NULL is a no-op)
 * @param len the length given to nexus_buf_alloc()
 * @par Threading: the reactor's own thread only.
 */
NEXUS_API void nexus_buf_free(struct nexus_reactor *r, void *buf, size_t len);

/** @brief Context of a device (for nexus_log()). */
NEXUS_API struct nexus_ctx *nexus_dev_ctx(const struct nexus_dev *dev);

/** @brief Driver-private pointer of a device, as set by
 *         nexus_dev_set_private() (NULL before). */
NEXUS_API void *nexus_dev_private(const struct nexus_dev *dev);

/** @brief Set the driver-private pointer of a device; normally in
 *         open().  The core never touches it; close() frees it. */
NEXUS_API void nexus_dev_set_private(struct nexus_dev *dev, void *priv);

/**
 * @brief The device's info, for its driver to fill in open().
 *
 * Before open() the core sets logical/physical block size to 1 and
 * 4096, max_io_size to 32 MiB and ops to the driver's declared ops; the
 * driver must set dev_size.  After open() the core masks ops with the
 * driver's declared ops.
 */
NEXUS_API struct nexus_dev_info *nexus_dev_info_mut(struct nexus_dev *dev);

/* nexus_dev_child_count() and nexus_dev_child() (the devices below a
 * transform) are declared in nexus.h: embedders walk stacks too. */

/**
 * @brief The child list of a device, as one consistent snapshot.
 *
 * For transforms whose children can change while open (child_attach,
 * child_detach): load the list once per submit() and use only that
 * snapshot, rather than nexus_dev_child_count() and nexus_dev_child()
 * separately (the list may change between two calls).
 * @param dev the device
 * @param out receives the array of children (NULL when there are none);
 *            may be NULL
 * @return the number of children; 0 for a source or NULL.
 * @par Threading: any thread.  The array stays readable while @p dev is
 *      open.  On a reactor its children stay open until the callback
 *      that read it returns (a detach waits for that); on an application
 *      thread a child in it may be detached meanwhile.
 */
NEXUS_API unsigned nexus_dev_children(const struct nexus_dev *dev,
				      struct nexus_dev *const **out);

/**
 * @brief Set a device's state (enum nexus_dev_state), for its driver.
 *
 * When the state changes, a NEXUS_EVENT_DEV_STATE event carries the old
 * and new state, @p reason and @p msg; setting the current state again
 * does nothing, and so does any change of a device that is closing
 * (NEXUS_DEV_STATE_CLOSING is final: the core sets it when the close
 * begins).  The changes of one device are raised in the order they
 * were made, from whichever threads.
 * @param dev    the device
 * @param state  the new state
 * @param reason enum nexus_reason
 * @param msg    detail for the event (copied), or NULL
 * @return 0, or -EINVAL (NULL device, not a state).
 * @par Threading: any thread, including reactors: it never waits for
 *      the event callback.
 */
NEXUS_API int nexus_dev_set_state(struct nexus_dev *dev, int state,
				  uint32_t reason, const char *msg);

/** @brief One device served by an export (opaque): its device, name and
 *         id, as given to nexus_export_add_dev(). */
struct nexus_export_dev;

/**
 * @brief Device @p i of an export, in the order they were added.
 * @return the entry, or NULL if @p i is out of range.  The entry stays
 *         valid until the driver's export_remove_dev() for it returns.
 * @par Threading: any thread (the list is locked while it is read).
 */
NEXUS_API struct nexus_export_dev *
nexus_export_dev_at(const struct nexus_export *exp, unsigned i);

/**
 * @brief The device of an export served under @p name.
 * @return the entry, or NULL.  Valid as for nexus_export_dev_at().
 * @par Threading: any thread, e.g. a reactor running a handshake.
 */
NEXUS_API struct nexus_export_dev *
nexus_export_find_dev(const struct nexus_export *exp, const char *name);

/**
 * @brief The device of an export entry with id @p id (NSID, LUN).
 * @return the entry, or NULL.  Valid as for nexus_export_dev_at().
 */
NEXUS_API struct nexus_export_dev *
nexus_export_find_dev_id(const struct nexus_export *exp, uint32_t id);

/** @brief The device of an export entry. */
NEXUS_API struct nexus_dev *
nexus_export_dev_device(const struct nexus_export_dev *ed);

/** @brief The name of an export entry (nexus_export_dev_opts::name), or
 *         NULL when none was given (the driver picks its default). */
NEXUS_API const char *nexus_export_dev_name(const struct nexus_export_dev *ed);

/** @brief The id of an export entry (NSID, LUN), from 1. */
NEXUS_API uint32_t nexus_export_dev_id(const struct nexus_export_dev *ed);

/** @brief NEXUS_EXPORT_DEV_* flags of an export entry. */
NEXUS_API uint32_t nexus_export_dev_flags(const struct nexus_export_dev *ed);

/** @brief Driver-private pointer of an export entry (NULL before set). */
NEXUS_API void *nexus_export_dev_private(const struct nexus_export_dev *ed);

/** @brief Set the driver-private pointer of an export entry. */
NEXUS_API void nexus_export_dev_set_private(struct nexus_export_dev *ed,
					    void *p);

/** @brief Context of an export. */
NEXUS_API struct nexus_ctx *nexus_export_ctx(const struct nexus_export *exp);

/** @brief Driver-private pointer of an export. */
NEXUS_API void *nexus_export_private(const struct nexus_export *exp);

/** @brief Set the driver-private pointer of an export. */
NEXUS_API void nexus_export_set_private(struct nexus_export *exp, void *p);

/**
 * @brief Log through the context's log callback (printf format).
 * @param ctx   the context (nexus_dev_ctx(), nexus_reactor_ctx())
 * @param level enum nexus_log_level; more verbose levels than the
 *              context's are dropped cheaply
 * @param fmt   printf format, no trailing newline
 * @par Threading: any thread.  Do not log per I/O at levels above
 *      NEXUS_LOG_DEBUG: the callback may be slow.
 */
NEXUS_API void nexus_log(struct nexus_ctx *ctx, int level, const char *fmt,
			 ...) __attribute__((format(printf, 3, 4)));

/**
 * @brief Record the calling thread's error message (printf format).
 * @param err a negative errno
 * @param fmt printf format of the message, then its arguments
 * @return @p err, so that a driver can write `return nexus_error(...)`.
 */
NEXUS_API int nexus_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/**
 * @brief A driver: the ops table behind a source, transform or export.
 *
 * Size-stamped and append-only.  Initialise with NEXUS_DRIVER_HEADER.
 */
struct nexus_driver {
	/** NEXUS_DRIVER_ABI_VERSION the driver was built against. */
	uint32_t abi_version;
	/** sizeof(struct nexus_driver) the driver was built against. */
	uint32_t struct_size;
	/** Name used in pipelines ("file", "crypt", "nbd"). */
	const char *name;
	/** One-line description. */
	const char *summary;
	/** enum nexus_driver_kind. */
	uint32_t kind;
	/** Device drivers: NEXUS_OP_BIT()s of the operations handled. */
	uint32_t ops;
	/** Device drivers: bytes of per-I/O context (nexus_io::driver_ctx). */
	uint32_t per_io_size;
	/** Transforms: minimum number of child devices (0 means 1). */
	uint32_t min_children;
	/** Transforms: maximum number of child devices (0 means 1). */
	uint32_t max_children;
	/** Options, terminated by an entry with a NULL name; may be NULL. */
	const struct nexus_option_desc *options;
	/** sizeof(struct nexus_option_desc) the driver was built against:
	 *  the stride of @ref options (stamped by NEXUS_DRIVER_HEADER). */
	uint32_t option_size;
	/**
	 * Optional: check rules between options (e.g. a key size that needs
	 * a given cipher) beyond the per-option type, bounds and words the
	 * core checks.  Runs when the pipeline is parsed, before open() or
	 * export_start(), also for nexus_pipeline_check(): it must not open
	 * files or sockets.
	 * @return 0 or a negative errno with a message (nexus_error()) that
	 *         names the options and does not quote secret values.
	 */
	int (*check)(const struct nexus_opts *opts);

	/**
	 * Device drivers: open.  Children (transforms) are already open.
	 * Fill nexus_dev_info_mut(); set private state.
	 * @return 0 or a negative errno (set a message with nexus_error()).
	 */
	int (*open)(struct nexus_dev *dev, const struct nexus_opts *opts);
	/** Device drivers: release everything open() made.  No I/O is in
	 *  flight.  Children are closed by the core afterwards. */
	void (*close)(struct nexus_dev *dev);
	/**
	 * Optional, device drivers: create per-reactor state.  Runs on
	 * reactor @p r, once per reactor, after open() succeeded and
	 * before any I/O.  What is stored in @p *rstate is given to every
	 * I/O on that reactor as nexus_io::rstate; only that reactor
	 * touches it, so it needs no locks.
	 * @return 0 or a negative errno (the device then fails to open:
	 *         reactor_fini runs on the reactors already initialised,
	 *         then close()).
	 */
	int (*reactor_init)(struct nexus_dev *dev, struct nexus_reactor *r,
			    void **rstate);
	/** Optional, device drivers: free per-reactor state.  Runs on
	 *  reactor @p r after the last I/O, before close(). */
	void (*reactor_fini)(struct nexus_dev *dev, struct nexus_reactor *r,
			     void *rstate);
	/**
	 * Device drivers: start an I/O (already validated: supported op,
	 * in range, aligned, device not read-only for writes).
	 * @return 0 and later call nexus_io_complete() exactly once, or a
	 *         negative errno without calling it.
	 */
	int (*submit)(struct nexus_io *io);
	/** Optional: allocation status, as nexus_dev_block_status(); the
	 *  core calls it only when the driver set NEXUS_DEV_BLOCK_STATUS in
	 *  its info, with a range already checked.  Runs on the calling
	 *  thread, which may be a reactor (an export): do not block. */
	int (*block_status)(struct nexus_dev *dev, uint64_t offset,
			    uint64_t length, struct nexus_extent *ext,
			    unsigned max);

	/** Export drivers: start serving (listen); devices come later with
	 *  export_add_dev(). */
	int (*export_start)(struct nexus_export *exp,
			    const struct nexus_opts *opts);
	/** Export drivers: stop; finish or fail requests in flight, close
	 *  connections, free private state.  The devices are removed
	 *  (export_remove_dev) before this runs. */
	void (*export_stop)(struct nexus_export *exp);
	/** Optional, export drivers: list connections, as
	 *  nexus_export_list_conns(). */
	int (*export_conns)(struct nexus_export *exp,
			    struct nexus_conn_info *out, unsigned max);
	/**
	 * Optional, device drivers: apply a run-time setting, as
	 * nexus_dev_control() (@p key without the driver prefix).
	 * @return 0, -ENOENT for an unknown key, -EINVAL for a bad value
	 *         (set a message naming the key and value with
	 *         nexus_error()).
	 * @par Threading: any thread, application or reactor; the driver
	 *      synchronises with its own data path (atomics, or messages
	 *      posted to its reactors with nexus_reactor_post()).
	 */
	int (*control)(struct nexus_dev *dev, const char *key,
		       const char *value);
	/**
	 * Export drivers: serve a new device (already in the export's list,
	 * so nexus_export_find_dev() finds it once this returns 0).
	 * @return 0, or a negative errno with a message (e.g. -EEXIST for a
	 *         name the driver's default makes a duplicate); the core then
	 *         drops the entry.
	 * @par Threading: an application thread.
	 */
	int (*export_add_dev)(struct nexus_export *exp,
			      struct nexus_export_dev *ed);
	/**
	 * Export drivers: stop serving a device.  nexus_export_find_dev()
	 * no longer returns it when this runs; it returns once no
	 * connection or request uses the device any more.
	 * @par Threading: an application thread.
	 */
	void (*export_remove_dev)(struct nexus_export *exp,
				  struct nexus_export_dev *ed);
	/**
	 * Optional, transforms: accept a new child while open
	 * (nexus_dev_attach_child()).  Check that @p child fits (size, block
	 * size, operations) and prepare for it; @p child is open and may be
	 * used at once, but appears in the list (nexus_dev_children()) only
	 * when this returns 0.  A driver without it cannot attach.
	 * @return 0, or a negative errno with a message (nexus_error()).
	 * @par Threading: an application thread; one graph change at a time.
	 */
	int (*child_attach)(struct nexus_dev *dev, struct nexus_dev *child);
	/**
	 * Optional, transforms: let a child go (nexus_dev_detach_child()).
	 * Stop starting I/O on @p child from state of your own (a copy of
	 * the pointer, a rebuild); or refuse.  Afterwards the core removes
	 * it from the list, waits until no reactor can still be in a
	 * callback that read the old list, then for the I/O in flight on
	 * @p child: completions of I/O started before may still arrive
	 * until then.  A driver without it cannot detach.
	 * @return 0, or a negative errno with a message (-EBUSY: the child
	 *         is needed, e.g. the only replica in sync).
	 * @par Threading: an application thread; one graph change at a time.
	 */
	int (*child_detach)(struct nexus_dev *dev, struct nexus_dev *child);
};

/** Stamps the ABI version and table size in a driver initialiser:
 *  `static const struct nexus_driver d = { NEXUS_DRIVER_HEADER, ... };` */
#define NEXUS_DRIVER_HEADER                                                 \
	.abi_version = NEXUS_DRIVER_ABI_VERSION,                            \
	.struct_size = (uint32_t)sizeof(struct nexus_driver),               \
	.option_size = (uint32_t)sizeof(struct nexus_option_desc)

/** Name of the entry point a plugin exports. */
#define NEXUS_PLUGIN_ENTRY "nexus_plugin_entry"

/**
 * @brief Make a shared object a libnexus plugin providing the
 *        NULL-terminated array of driver tables @p drivers.
 *
 * Defines the exported function nexus_plugin_entry() returning
 * @p drivers.  Use it once per plugin, at file scope:
 *
 *     static const struct nexus_driver *const drivers[] = { &a, NULL };
 *     NEXUS_REGISTER_PLUGIN(drivers)
 *
 * The loader calls the entry point once per nexus_plugin_load(), with
 * no lock held; the tables must stay valid while the plugin is loaded.
 */
#define NEXUS_REGISTER_PLUGIN(drivers)                                      \
	NEXUS_API const struct nexus_driver *const *nexus_plugin_entry(void); \
	const struct nexus_driver *const *nexus_plugin_entry(void)          \
	{                                                                   \
		return (drivers);                                           \
	}

/* ---- appended in libnexus 1.0: ABI queries and transform helpers ---- */

/**
 * @brief Driver ABI version of the running libnexus.
 *
 * Tables declaring a higher nexus_driver::abi_version are refused.  A
 * plugin built against a newer header can compare it with
 * NEXUS_DRIVER_ABI_VERSION before it hands out its tables.
 * @return NEXUS_DRIVER_ABI_VERSION as the library was built.
 * @par Threading: any thread.
 */
NEXUS_API uint32_t nexus_driver_abi_version(void);

/**
 * @brief sizeof(struct nexus_driver) as the running libnexus knows it.
 *
 * A table with a larger struct_size is accepted only if every byte past
 * this size is zero: a plugin built against a newer header must leave
 * newer fields zero when this returns less than their offset (it can
 * build its table at run time in its entry point).
 * @return the size in bytes.
 * @par Threading: any thread.
 */
NEXUS_API uint32_t nexus_driver_struct_size(void);

/**
 * @brief Copy a context secret (nexus_ctx_secret_set()) for a driver.
 * @param ctx  the context
 * @param name the secret's name
 * @param buf  receives the secret's bytes
 * @param cap  capacity of @p buf
 * @return the secret's length, or -EINVAL (NULL argument), -ENOENT (no
 *         such secret), -ENOSPC (@p cap too small; nothing copied).
 *         Wipe @p buf when done with it.
 * @par Threading: any thread.
 */
NEXUS_API int nexus_ctx_secret_get(struct nexus_ctx *ctx, const char *name,
				   void *buf, size_t cap);

/**
 * @brief Forward an I/O unchanged to a device below, then complete it.
 *
 * Submits the same operation, iovec, offset, length and flags to
 * @p child and calls nexus_io_complete(@p io, result) when it
 * completes.  For transforms, for the operations they declare and
 * whose data they do not change (typically FLUSH).  Calling it is the
 * transform's decision: the core never forwards on its own.
 * @param io    an I/O the driver's submit() received
 * @param child the device to forward to (usually nexus_dev_child())
 * @return 0 (the I/O will be completed) or the negative errno of the
 *         child's submission; then @p io is not completed, and submit()
 *         may return the error as its own.
 * @par Threading: the I/O's reactor thread.
 */
NEXUS_API int nexus_io_forward(struct nexus_io *io, struct nexus_dev *child);

/**
 * @brief CRC32C (Castagnoli), with the CPU's crc32 instruction where it
 *        has one: the checksum of NVMe/TCP and iSCSI digests and of
 *        block checksums.
 * @param crc the CRC of what came before, or 0 to start
 * @param buf @p len bytes
 * @param len may be 0
 * @return the CRC32C of everything so far: nexus_crc32c(0, "123456789",
 *         9) is 0xE3069283, and nexus_crc32c(nexus_crc32c(0, a, n), b, m)
 *         is the CRC of a followed by b.
 * @par Threading: any thread.
 */
NEXUS_API uint32_t nexus_crc32c(uint32_t crc, const void *buf, size_t len);

/* ==== server layer: listeners, connections, request slots ==========
 * (lib/core/listen.c, conn.c, slots.c; section owned by workstream
 * "server")
 *
 * What every export needs below its protocol, written once:
 *  - a listener is one socket: TCP (a host name gives one listener per
 *    address it resolves to) or Unix; the exports of one protocol share
 *    the listener of an address within a context; it hands each
 *    accepted connection to a reactor (round robin) and closes its
 *    socket when the last user closes it;
 *  - a connection is owned by one reactor: receive buffer, receiving
 *    straight into a caller's buffer, batched sendmsg that owns the
 *    iovecs it was given until they are sent, one timer, a reference
 *    count, and a close that waits for everything in flight;
 *  - a group of connections (an export's) can be walked on its reactors
 *    and waited for with a deadline;
 *  - request slots take payload buffers from the reactor's pool within a
 *    per-connection limit and a chain of byte budgets (export, context):
 *    a request that does not fit waits, nothing is allocated for it.
 *
 * Threading: a connection's functions run on its reactor only (in its
 * callbacks, or in code those callbacks started); listener, group and
 * budget functions marked so may run on any thread.
 */

struct nexus_listener;
struct nexus_conn;
struct nexus_conn_group;
struct nexus_budget;
struct nexus_slots;

/** Most listeners one nexus_listener_open() gives (addresses of a
 *  host name that are used). */
#define NEXUS_LISTEN_MAX_ADDRS 8

/**
 * @brief Called on the reactor that will own a newly accepted
 *        connection; it must call nexus_conn_setup() (or
 *        nexus_conn_close()) before it returns.
 * @param c         the connection (in the listener's group)
 * @param user_data nexus_listener_user_data() of its listener
 */
typedef void (*nexus_accept_fn)(struct nexus_conn *c, void *user_data);

/** @brief Options of nexus_listener_open() (size-stamped). */
struct nexus_listen_opts {
	size_t size;		/**< sizeof(struct nexus_listen_opts) */
	/** Listeners are shared only by users of the same protocol
	 *  ("nbd"); required. */
	const char *protocol;
	/** HOST:PORT, [IPV6]:PORT or :PORT (every local address).  A host
	 *  name means every address it resolves to: one listener each (an
	 *  address this host cannot bind, such as ::1 without IPv6, is left
	 *  out with a warning when another one works).  Port 0 picks a free
	 *  port, the same for every address (never shared). */
	const char *tcp;
	/** Path of a Unix socket (instead of @c tcp). */
	const char *unix_path;
	/** What accepted connections are given to (of the opener that
	 *  created the listener). */
	nexus_accept_fn accept;
	/** Optional: make the user data of a new listener (for @c accept
	 *  and nexus_listener_user_data(), e.g. the catalogue of what the
	 *  sharers of the address serve) from @c arg.  NULL: -ENOMEM. */
	void *(*create_user_data)(void *arg);
	/** Run once on the user data when the listener is destroyed. */
	void (*free_user_data)(void *user_data);
	/** For @c create_user_data. */
	void *arg;
	/** Connections alive at once, handshakes included; one accepted
	 *  beyond it is closed at once.  0: 1024.  A sharer with a larger
	 *  value raises it. */
	unsigned max_conns;
	/** Bytes of each connection's receive buffer; 0: 64 KiB. */
	size_t rbuf_size;
};

/** Initialiser of struct nexus_listen_opts. */
#define NEXUS_LISTEN_OPTS_INIT { .size = sizeof(struct nexus_listen_opts) }

/**
 * @brief Check a TCP listen address without resolving it, for a driver's
 *        parse-time check: "HOST:PORT", "[IPV6]:PORT" or ":PORT", with a
 *        port of 0-65535, and a host that is a valid IPv4 or IPv6 literal
 *        or a syntactically valid host name.
 * @param spec the address (e.g. a listen= option value)
 * @return 0, or -EINVAL with a message naming the problem (NULL or an
 *         empty string included).
 * @par Threading: any thread.
 */
NEXUS_API int nexus_listen_check(const char *spec);

/**
 * @brief Listen on every address of @p o, sharing the context's
 *        listener where an address has one for the same protocol.
 * @param ctx  the context
 * @param o    options; @c protocol, @c accept and one of @c tcp and
 *             @c unix_path are required
 * @param out  receives the listeners (one reference each)
 * @param max  capacity of @p out (NEXUS_LISTEN_MAX_ADDRS is enough)
 * @return the number of listeners (>= 1), or a negative errno: -EINVAL
 *         (bad address), -EADDRINUSE, -EADDRNOTAVAIL, -ENOMEM...; then
 *         none is open.  A shared listener keeps the accept function
 *         and user data of the opener that created it.
 * @par Threading: any thread but a reactor.
 */
NEXUS_API int nexus_listener_open(struct nexus_ctx *ctx,
				  const struct nexus_listen_opts *o,
				  struct nexus_listener **out, unsigned max);

/**
 * @brief Drop a reference.  The last one stops accepting (waits for the
 *        accepts in flight to end), closes the connections still in the
 *        listener's group, waits until every connection it accepted is
 *        freed, closes the sockets and removes a Unix socket file.
 * @param l the listener, or NULL (no-op)
 * @return 0.
 * @par Threading: any thread but a reactor.
 */
NEXUS_API int nexus_listener_close(struct nexus_listener *l);

/** @brief User data of the listener (create_user_data()'s result of the
 *         opener that created it).  Any thread. */
NEXUS_API void *nexus_listener_user_data(const struct nexus_listener *l);

/**
 * @brief The bound address: "127.0.0.1:10809", "[::1]:10809" or
 *        "unix:PATH".  Any thread; valid while the listener is open.
 */
NEXUS_API const char *nexus_listener_addr(const struct nexus_listener *l);

/**
 * @brief The listener's lock, for the state its sharers keep in
 *        user_data (an export catalogue).  Not recursive; hold it
 *        briefly, never across a call that waits for a reactor.
 */
NEXUS_API void nexus_listener_lock(struct nexus_listener *l);
/** @brief Release nexus_listener_lock(). */
NEXUS_API void nexus_listener_unlock(struct nexus_listener *l);

/** @brief A connection's callbacks (size-stamped). */
struct nexus_conn_ops {
	size_t size; /**< sizeof(struct nexus_conn_ops) */
	/** Bytes are waiting in the receive buffer (nexus_conn_rdata()):
	 *  consume what can be used.  Not called while receiving is paused
	 *  or a nexus_conn_recv_into() is pending. */
	void (*recv)(struct nexus_conn *c, void *proto);
	/** The peer ended its side (@p err 0) or receiving failed (@p err
	 *  < 0); what is buffered was offered to @c recv first.  Optional:
	 *  by default the connection closes. */
	void (*eof)(struct nexus_conn *c, void *proto, int err);
	/** The timer of nexus_conn_timer() expired.  Optional: by default
	 *  the connection closes. */
	void (*timer)(struct nexus_conn *c, void *proto);
	/** Something the connection waited for (budget bytes, a slot) was
	 *  given back: try again.  Optional. */
	void (*ready)(struct nexus_conn *c, void *proto);
	/** Last call: the connection is closed, nothing is in flight and no
	 *  reference is left; free @p proto.  Optional. */
	void (*closed)(struct nexus_conn *c, void *proto);
};

/**
 * @brief Give an accepted connection its protocol and start receiving.
 * @param c         the connection (in the accept callback)
 * @param ops       callbacks; must stay valid for the connection's life
 * @param proto     passed to every callback
 * @param send_iovs iovec entries that may wait to be sent at once
 *                  (nexus_conn_send() beyond returns -ENOBUFS)
 * @return 0 or -ENOMEM (then close the connection).
 */
NEXUS_API int nexus_conn_setup(struct nexus_conn *c,
			       const struct nexus_conn_ops *ops, void *proto,
			       unsigned send_iovs);

/** @brief The bytes received and not yet consumed; *len their count. */
NEXUS_API const uint8_t *nexus_conn_rdata(struct nexus_conn *c, size_t *len);
/** @brief Consume @p n of the bytes nexus_conn_rdata() gave. */
NEXUS_API void nexus_conn_consume(struct nexus_conn *c, size_t n);

/**
 * @brief Receive the next @p len bytes into @p buf (a write payload
 *        into the pool buffer the device then writes: no copy beyond
 *        what the receive buffer already held).
 * @param c    the connection
 * @param buf  where the bytes go
 * @param len  how many
 * @param done called once @p len bytes are in @p buf (@p res 0), or the
 *             connection failed (@p res < 0); never before this returns
 * @param arg  for @p done
 * @return 1 (all of it was buffered already: @p done is not called), 0
 *         (pending: @p done will be called), -EBUSY (one is already
 *         pending), -ESHUTDOWN (closing), -ECONNRESET (the peer ended
 *         its side before all of it came).
 */
NEXUS_API int nexus_conn_recv_into(struct nexus_conn *c, void *buf,
				   size_t len,
				   void (*done)(struct nexus_conn *c, void *arg,
						int res),
				   void *arg);

/**
 * @brief Stop (@p pause true) or resume receiving: back pressure while
 *        requests wait for slots or budget.  Resuming offers what is
 *        buffered to the recv callback again (later, not from here).
 */
NEXUS_API void nexus_conn_recv_pause(struct nexus_conn *c, bool pause);

/**
 * @brief Queue bytes to send.  The entries are copied; the memory they
 *        point to must stay until @p done runs.  Everything queued while
 *        the reactor handles the completions at hand goes out in one
 *        sendmsg.
 * @param c    the connection
 * @param iov  what to send (the entries are copied)
 * @param n    entries of @p iov
 * @param done called once all of it was sent (@p res 0) or the
 *             connection failed or closed (@p res < 0); never before
 *             this returns
 * @param arg  for @p done
 * @return 0, -ENOBUFS (more than send_iovs entries waiting), -ESHUTDOWN
 *         (closing: @p done is not called).
 */
NEXUS_API int nexus_conn_send(struct nexus_conn *c, const struct iovec *iov,
			      unsigned n, void (*done)(void *arg, int res),
			      void *arg);

/** Timer mode: expire @p ms after the last byte received or sent. */
#define NEXUS_CONN_TIMER_IDLE 1u

/**
 * @brief Set the connection's one timer: the timer callback runs @p ms
 *        from now (or, with NEXUS_CONN_TIMER_IDLE, once @p ms pass with
 *        no byte received or sent).  @p ms 0 cancels it.
 */
NEXUS_API void nexus_conn_timer(struct nexus_conn *c, uint64_t ms,
				unsigned flags);

/** @brief Take a reference (e.g. for each device I/O in flight). */
NEXUS_API void nexus_conn_get(struct nexus_conn *c);
/** @brief Drop a reference; do not use @p c after it. */
NEXUS_API void nexus_conn_put(struct nexus_conn *c);

/**
 * @brief Close: shut the socket down, end what is in flight (pending
 *        sends and receive complete with -ECANCELED), then, once no
 *        reference is left, call the closed callback and free.
 *        Idempotent.
 * @param c   the connection
 * @param why logged at INFO with the peer, or NULL (quiet)
 */
NEXUS_API void nexus_conn_close(struct nexus_conn *c, const char *why);
/** @brief Stop receiving for good (a graceful stop): eof runs soon. */
NEXUS_API void nexus_conn_shutdown_read(struct nexus_conn *c);
/**
 * @brief Leave the connection's group and its listener's count: for a
 *        closing connection that still waits for device I/O past its
 *        owner's deadline, so that the owner (export, listener) can go
 *        away.  The connection frees itself when that I/O completes;
 *        the protocol must drop its own pointers to the owner.
 */
NEXUS_API void nexus_conn_detach(struct nexus_conn *c);
/** @brief The @p proto given to nexus_conn_setup(), or NULL before. */
NEXUS_API void *nexus_conn_proto(const struct nexus_conn *c);
/**
 * @brief Milliseconds since the connection last received or sent a
 *        byte (kept while a timer is set: see nexus_conn_timer()).
 */
NEXUS_API uint64_t nexus_conn_quiet_ms(const struct nexus_conn *c);
/** @brief Whether nexus_conn_close() was called. */
NEXUS_API bool nexus_conn_closing(const struct nexus_conn *c);
/** @brief The peer: "1.2.3.4:5678", "[::1]:5678" or "unix". */
NEXUS_API const char *nexus_conn_peer(const struct nexus_conn *c);
/** @brief The reactor owning the connection. */
NEXUS_API struct nexus_reactor *nexus_conn_reactor(const struct nexus_conn *c);
/** @brief The socket (for setsockopt); owned by the connection. */
NEXUS_API int nexus_conn_fd(const struct nexus_conn *c);
/** @brief The listener that accepted it. */
NEXUS_API struct nexus_listener *nexus_conn_listener(const struct nexus_conn *c);

/**
 * @brief Create a group of connections (an export's).
 * @return 0 or -ENOMEM.  Any thread.
 */
NEXUS_API int nexus_conn_group_create(struct nexus_ctx *ctx,
				      struct nexus_conn_group **out);
/** @brief Free an empty group (NULL: no-op).  Any thread. */
NEXUS_API void nexus_conn_group_destroy(struct nexus_conn_group *g);

/**
 * @brief Move @p c (on its reactor) out of its group into @p g.
 * @return 0, or -ESHUTDOWN when @p g is closed (nexus_conn_group_close):
 *         @p c stays where it was.
 */
NEXUS_API int nexus_conn_group_move(struct nexus_conn *c,
				    struct nexus_conn_group *g);
/** @brief Connections in the group now.  Any thread. */
NEXUS_API unsigned nexus_conn_group_count(struct nexus_conn_group *g);
/**
 * @brief Refuse further moves into @p g (nexus_conn_group_move gives
 *        -ESHUTDOWN from now on).  Any thread.
 */
NEXUS_API void nexus_conn_group_close(struct nexus_conn_group *g);
/**
 * @brief Run @p fn on each connection of @p g, on the connection's
 *        reactor, and wait for all of it.  @p fn may close the
 *        connection.  Any thread but a reactor.
 */
NEXUS_API int nexus_conn_group_foreach(struct nexus_conn_group *g,
				       void (*fn)(struct nexus_conn *c,
						  void *arg),
				       void *arg);
/**
 * @brief Wait until the group is empty, at most @p ms (0: no limit).
 * @return 0, or -ETIMEDOUT.  Any thread but a reactor.
 */
NEXUS_API int nexus_conn_group_wait(struct nexus_conn_group *g, uint64_t ms);

/**
 * @brief Create a byte budget; taking from it takes from @p parent too.
 * @param parent a budget outliving this one, or NULL
 * @param limit  bytes that may be taken at once (>= the largest single
 *               take, or that take can never succeed)
 * @param out    receives the budget
 * @return 0, -EINVAL (limit 0), -ENOMEM.  Any thread.
 */
NEXUS_API int nexus_budget_create(struct nexus_budget *parent,
				  uint64_t limit, struct nexus_budget **out);
/** @brief Free a budget nothing is taken from (NULL: no-op). */
NEXUS_API void nexus_budget_destroy(struct nexus_budget *b);
/**
 * @brief The context's budget shared by all its exports (created on
 *        first use, 1 GiB unless nexus_budget_set_limit() changed it,
 *        freed with the last listener of the context).  Any thread.
 * @return the budget, or NULL (out of memory).
 */
NEXUS_API struct nexus_budget *nexus_ctx_budget(struct nexus_ctx *ctx);
/** @brief Change the limit (a lower one applies to later takes). */
NEXUS_API void nexus_budget_set_limit(struct nexus_budget *b, uint64_t limit);
/** @brief Bytes taken now (for statistics and tests).  Any thread. */
NEXUS_API uint64_t nexus_budget_used(const struct nexus_budget *b);

/**
 * @brief Create a connection's request slots.
 * @param c          the connection (on its reactor)
 * @param n          slots (requests in flight at once), >= 1
 * @param slot_size  bytes of the protocol's state per slot (zeroed)
 * @param conn_bytes payload bytes the connection may hold at once (one
 *                   request is always admitted if the budget allows)
 * @param budget     budget charged for payload buffers, or NULL
 * @return the slots, or NULL (out of memory).
 */
NEXUS_API struct nexus_slots *nexus_slots_create(struct nexus_conn *c,
						 unsigned n, size_t slot_size,
						 uint64_t conn_bytes,
						 struct nexus_budget *budget);
/** @brief Free the slots (every slot must have been put back). */
NEXUS_API void nexus_slots_destroy(struct nexus_slots *s);
/**
 * @brief Take a slot with a payload buffer of @p bytes (0: none).
 * @param s     the connection's slots
 * @param bytes payload bytes
 * @param buf receives the buffer (or NULL for 0 bytes)
 * @return the slot's state, or NULL: no slot free, the connection's
 *         bytes or the budget exhausted.  The connection's ready
 *         callback runs once something was given back.
 */
NEXUS_API void *nexus_slot_get(struct nexus_slots *s, size_t bytes,
			       void **buf);
/** @brief Give back the payload buffer of @p slot early (the slot stays). */
NEXUS_API void nexus_slot_drop_buf(struct nexus_slots *s, void *slot);
/** @brief Give back a slot and its buffer. */
NEXUS_API void nexus_slot_put(struct nexus_slots *s, void *slot);
/**
 * @brief Give back to the budget what the slots hold and stop charging
 *        it (a connection abandoned past a deadline: its budget owner
 *        goes away).
 */
NEXUS_API void nexus_slots_detach_budget(struct nexus_slots *s);
/** @brief Slots taken now. */
NEXUS_API unsigned nexus_slots_busy(const struct nexus_slots *s);

/* ==== end of the server layer section ==== */

#ifdef __cplusplus
}
#endif

#endif /* NEXUS_NEXUS_DRIVER_H */
