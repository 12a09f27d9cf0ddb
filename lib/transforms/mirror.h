/* SPDX-License-Identifier: MIT */
/* mirror: what its files share.  mirror.c is the driver (options, open,
 * close, control), mirror-io.c the data path, mirror-state.c the child
 * and mirror states with the durable record, mirror-rebuild.c the
 * rebuild (copy engine, range locks, dirty regions), mirror-api.c the
 * public listing.  Core-private. */
#ifndef NEXUS_TRANSFORMS_MIRROR_H
#define NEXUS_TRANSFORMS_MIRROR_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "store.h"

struct mirror_io;
struct mirror_rstate;
struct mirror_wbuf;
struct mirror_chunk;

/* Slots of children: attached children take new slots, detached ones
 * keep theirs (state MIRROR_REMOVED), so up to twice the core's limit. */
#define MIRROR_SLOTS (2 * NX_MAX_CHILDREN)
/* State of a slot whose child was detached. */
#define MIRROR_REMOVED (-1)

enum mirror_read_policy {
	MIRROR_READ_RR = 0,	 /* round robin over in-sync children */
	MIRROR_READ_LEAST = 1,	 /* fewest requests in flight */
	MIRROR_READ_PREFER = 2,	 /* one child while it is in sync */
};

struct mirror_child {
	struct nexus_dev *dev;
	uint64_t size;
	_Atomic int state;	 /* enum nexus_dev_state: ONLINE (in sync),
				  * FAULTED, OFFLINE, REBUILDING */
	_Atomic uint32_t reason; /* enum nexus_reason of the last change */
	_Atomic int error;	 /* errno of the I/O that faulted it */
	_Atomic uint64_t in_flight, reads, writes, errors, timeouts;
	/* Regions written while the child missed writes: one bit per
	 * region of 2^region_shift bytes.  Valid (a partial rebuild may
	 * use it) only while dirty_valid. */
	_Atomic uint64_t *dirty;
	_Atomic bool dirty_valid;
};

/* A write or rebuild chunk holding a byte range (mirror-rebuild.c). */
struct mirror_range {
	struct mirror_range *next;
	uint64_t start, end;
};

struct mirror {
	struct nexus_dev *dev;
	struct nexus_ctx *ctx;
	unsigned n;	 /* slots used; only grows (release store) */
	unsigned active; /* slots not removed (m->lock) */
	struct mirror_child c[MIRROR_SLOTS];
	uint64_t size;
	unsigned region_shift;
	uint64_t nregions;
	_Atomic int read_policy;
	_Atomic unsigned prefer;
	_Atomic uint64_t timeout_ns; /* 0: no I/O timeout */
	_Atomic unsigned rr;

	/* m->lock protects the state record, the waiters and the rebuild
	 * bookkeeping below; the data path takes it only to change a
	 * child's state, to wait for the record, and while a rebuild runs. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* a rebuild's done callback is running (m->lock): it may start the
	 * next queued rebuild, so a close waits for it to return */
	bool in_done;

	/* durable record (mirror-state.c) */
	struct nx_store *store;
	char *recbuf;		    /* NX_STORE_MAX bytes, the record's */
	_Atomic uint64_t gen_want;  /* generation of the current states */
	_Atomic uint64_t gen_need;  /* that of the last child to leave the
				     * in-sync set: writes wait for it */
	uint64_t gen_failed;	    /* generation whose put failed */
	_Atomic uint64_t gen_done;  /* generation known durable */
	int store_err;		    /* error of the last put, or 0 */
	bool clean;		    /* closing: record "clean" */
	bool opened;		    /* open() succeeded */
	struct mirror_io *waiters;  /* writes waiting for gen_done */
	pthread_t store_thread;
	bool store_running, stop;
	_Atomic bool fenced;	    /* nx_store_owned() failed (logged) */

	/* rebuild (mirror-rebuild.c) */
	_Atomic bool tracking;	       /* writes take range locks */
	_Atomic uint64_t untracked;    /* writes in flight without */
	struct mirror_io *writes;      /* tracked writes in flight */
	struct mirror_io *parked;      /* writes waiting for a chunk */
	struct mirror_chunk *chunks;   /* locked or waiting chunks */
	struct nexus_copy *job;
	int rebuild_child;	       /* -1: none */
	uint32_t rebuild_queue;	       /* slots waiting for their turn */
	bool rebuild_partial;
	uint64_t rebuild_next;	       /* partial: next region to look at */
	_Atomic uint64_t rate;	       /* rebuild rate limit, bytes/s */
	bool auto_rebuild;
	uint64_t rebuilds_done;	       /* finished successfully */
	int rebuild_result;	       /* of the last finished rebuild */
	struct nexus_copy_progress last; /* final progress of the last */

	struct mirror_rstate **rstates; /* by reactor index */
	unsigned nrstates;
	_Atomic unsigned ready;	 /* reactors initialised */
	_Atomic bool closing;
};

/* Per-I/O context of the mirror device (nexus_io::driver_ctx). */
struct mirror_leg;
struct mirror_io {
	struct nexus_io *io;
	struct mirror_io *tnext, *tprev; /* reactor's timeout list */
	struct mirror_io *next;		 /* m->writes / parked / waiters */
	uint64_t start_ns;
	uint64_t gen;	   /* record generation it waits for */
	unsigned pending;  /* legs outstanding */
	uint32_t ok_mask;  /* writes: slots whose leg succeeded */
	int err;
	uint32_t tried;	   /* reads: slots tried */
	bool timed, tracked, failed_child;
	bool predispatch;  /* waits for the record before its legs start */
	uint32_t targets;  /* writes: slots the legs go to */
	struct mirror_leg *legs[MIRROR_SLOTS];
	struct mirror_wbuf *wb; /* while the legs start (mirror-io.c) */
};

/* Slots in use, for the data path (an attach may add one). */
static inline unsigned mirror_slots(struct mirror *m)
{
	return __atomic_load_n(&m->n, __ATOMIC_ACQUIRE);
}

/* ---- mirror-graph.c ---- */
/* Slot of the child at @p rank among those not removed (the order of
 * the core's child list, of the record and of the listing), or -1. */
NX_HIDDEN int mirror_slot(struct mirror *m, unsigned rank);
/* Rank of slot @p slot (see mirror_slot()). */
NX_HIDDEN unsigned mirror_rank(struct mirror *m, unsigned slot);
NX_HIDDEN int mirror_child_attach(struct nexus_dev *dev,
				  struct nexus_dev *child);
NX_HIDDEN int mirror_child_detach(struct nexus_dev *dev,
				  struct nexus_dev *child);

/* ---- mirror-state.c ---- */
/* Child @p i is in sync (a read source) now. */
static inline bool mirror_in_sync(struct mirror *m, unsigned i)
{
	return atomic_load_explicit(&m->c[i].state, memory_order_acquire) ==
	       NEXUS_DEV_STATE_ONLINE;
}
/* Child @p i receives writes (in sync or being rebuilt). */
static inline bool mirror_writable(struct mirror *m, unsigned i)
{
	int s = atomic_load_explicit(&m->c[i].state, memory_order_acquire);

	return s == NEXUS_DEV_STATE_ONLINE || s == NEXUS_DEV_STATE_REBUILDING;
}
NX_HIDDEN unsigned mirror_in_sync_count(struct mirror *m);
/* The mirror's own state from its children's, with an event when it
 * changes (m->lock held). */
NX_HIDDEN void mirror_update_state(struct mirror *m, uint32_t reason);
/* Change child @p i's state (m->lock held by the caller when @p locked).
 * Leaving or joining the in-sync set bumps the record's generation.
 * Refuses (false) to take the last in-sync child out unless @p force.
 * @p note (or NULL) is added to the event's message. */
NX_HIDDEN bool mirror_set_child(struct mirror *m, unsigned i, int state,
				uint32_t reason, int error, bool force,
				const char *note);
/* A child's I/O failed with @p err: fault it (reason from the errno,
 * timeouts from @p timeout); false if it is the last in-sync child. */
NX_HIDDEN bool mirror_fault_child(struct mirror *m, unsigned i, int err,
				  bool timeout);
/* Writes completing from now on wait for a new record (a region became
 * dirty).  Any thread. */
NX_HIDDEN void mirror_record_needed(struct mirror *m);
/* Start the record's thread and write the first record. */
NX_HIDDEN int mirror_state_start(struct mirror *m);
/* Stop the record's thread; with @p clean, after recording that the
 * mirror was closed cleanly (no I/O in flight, in-sync children equal). */
NX_HIDDEN void mirror_state_stop(struct mirror *m, bool clean);
/* Complete @p mio's I/O with @p result once the record is durable (at
 * once without a store, or when it already is).  Reactor thread. */
NX_HIDDEN void mirror_complete_durable(struct mirror *m,
				       struct mirror_io *mio, int result);
/* Start @p mio's legs (mirror_write_dispatch()) once the record holds
 * the regions it just dirtied; a store error fails it instead
 * (mirror_write_abort()).  Reactor thread. */
NX_HIDDEN void mirror_dispatch_durable(struct mirror *m,
				       struct mirror_io *mio);
/* Whether the mirror may still write its children: 0, or the store's
 * error once this process may have lost the volume (logged once).  Any
 * thread. */
NX_HIDDEN int mirror_owned(struct mirror *m);
/* Wait until the record holds the current states; 0 or the store's
 * error.  Application threads (control). */
NX_HIDDEN int mirror_wait_durable(struct mirror *m);
/* Decide the children's states at open: the record, source=,
 * assume-clean=.  0 or a negative errno with a message. */
NX_HIDDEN int mirror_state_load(struct mirror *m, int source, bool clean);

/* ---- mirror-rebuild.c ---- */
NX_HIDDEN int mirror_dirty_alloc(struct mirror *m);
NX_HIDDEN void mirror_dirty_free(struct mirror *m);
/* Mark [off, off+len) dirty for child @p i; true if a region was not
 * dirty before (the record must then hold it: mirror_record_needed()). */
NX_HIDDEN bool mirror_dirty_mark(struct mirror *m, unsigned i, uint64_t off,
				 uint64_t len);
/* Bytes marked dirty for child @p i. */
NX_HIDDEN uint64_t mirror_dirty_bytes(struct mirror *m, unsigned i);
/* Start rebuilding child @p i (offline or faulted): partial when its
 * dirty map is valid, else full; while another rebuild runs, queue it
 * (it starts when that one finished).  0, -EBUSY (the child still has
 * I/O in flight), or another negative errno. */
NX_HIDDEN int mirror_rebuild_start(struct mirror *m, unsigned i);
/* Cancel and wait for the rebuild, if any, and forget the queued ones
 * (at close: m->closing set first). */
NX_HIDDEN void mirror_rebuild_stop(struct mirror *m);
NX_HIDDEN int mirror_rebuild_control(struct mirror *m, const char *what);
/* A write (or TRIM, WRITE_ZEROES) is about to start: false when it
 * waits for a rebuild chunk (it is then restarted with
 * mirror_write_start() later).  mirror_write_done() when its legs are
 * done. */
NX_HIDDEN bool mirror_write_admit(struct mirror *m, struct mirror_io *mio);
NX_HIDDEN void mirror_write_done(struct mirror *m, struct mirror_io *mio);

/* ---- mirror-io.c ---- */
NX_HIDDEN int mirror_submit(struct nexus_io *io);
/* Send a write admitted by mirror_write_admit() to its children. */
NX_HIDDEN void mirror_write_start(struct mirror_io *mio);
/* Start the legs of a write to mio->targets. */
NX_HIDDEN void mirror_write_dispatch(struct mirror_io *mio);
/* Fail a write that no child got (its record could not be written). */
NX_HIDDEN void mirror_write_abort(struct mirror_io *mio, int err);
NX_HIDDEN int mirror_reactor_init(struct nexus_dev *dev,
				  struct nexus_reactor *r, void **rstate);
NX_HIDDEN void mirror_reactor_fini(struct nexus_dev *dev,
				   struct nexus_reactor *r, void *rstate);
/* After the last I/O: wait (at most @p wait_ms) until no leg is out,
 * then free the reactor states; false (nothing freed) if legs are still
 * out, their children hung. */
NX_HIDDEN bool mirror_rstates_free(struct mirror *m, unsigned wait_ms);

/* Log a state change and raise its event; @p note (or NULL) is added
 * to the message. */
NX_HIDDEN void mirror_report(struct mirror *m, int child, int old_state,
			     int new_state, uint32_t reason, int error,
			     const char *note);

#endif
