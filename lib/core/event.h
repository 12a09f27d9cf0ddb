/* SPDX-License-Identifier: MIT */
/* The context's event stream (event.c): a bounded FIFO of copied
 * events, drained by one delivery thread per context that calls the
 * application's nexus_ctx_opts::event_fn.  Core-private. */
#ifndef NEXUS_CORE_EVENT_H
#define NEXUS_CORE_EVENT_H

#include <stdbool.h>
#include <nexus/nexus.h>

#include "hidden.h"

struct nexus_ctx;
struct nx_events;

/* Events queued and not yet delivered, at most; beyond it events are
 * counted, dropped and reported by one NEXUS_EVENT_LOST. */
#define NX_EVENT_QUEUE_MAX 4096u
/* Longest string copied into an event (longer ones are cut). */
#define NX_EVENT_STR_MAX 4096u

/* Read the event fields of @p o (already normalised to the library's
 * size) and, when event_fn is set, start the delivery thread.  Returns
 * 0, -ENOMEM or the errno of pthread_create, message set; *out is NULL
 * when neither event_fn nor event_free was given.  On failure event_free has not run:
 * the caller runs it (nexus_ctx_create() promises it runs once). */
NX_HIDDEN int nx_events_start(struct nexus_ctx *ctx,
			      const struct nexus_ctx_opts *o,
			      struct nx_events **out);

/* Deliver what is queued, stop the thread, run event_free once, free.
 * NULL is a no-op.  Not from the event thread. */
NX_HIDDEN void nx_events_stop(struct nx_events *ev);

/* Whether events are delivered at all (cheap: callers may skip building
 * a message when not). */
NX_HIDDEN bool nx_event_enabled(const struct nx_events *ev);

/* Whether the calling thread is @p ev's delivery thread (a call made
 * from inside event_fn). */
NX_HIDDEN bool nx_event_on_thread(const struct nx_events *ev);

/* Queue a copy of @p info (its strings too; NULL strings read as "").
 * seq and time_ns are assigned here; size, and the fields past what
 * info->size covers, are taken as zero.  Any thread, reactors
 * included: it takes a short lock and allocates once, never waits for
 * the callback.  Events emitted by one thread are delivered in the
 * order emitted; a full queue drops and counts. */
NX_HIDDEN void nx_event_emit(struct nexus_ctx *ctx,
			     const struct nexus_event_info *info);

/* @p obj (a device or an export) is about to be freed: events still
 * queued that name it get NULL there instead (their names stay), and a
 * delivery in progress that names it is waited for, unless the caller
 * is that delivery's callback.  Any thread but a reactor. */
NX_HIDDEN void nx_event_forget(struct nexus_ctx *ctx, const void *obj);

#endif
