/* SPDX-License-Identifier: MIT */
/* Giving idle memory back.  A reactor keeps one io_uring timeout armed
 * while some pool of it holds memory above its floor; every period it
 * asks each such pool to free what stayed unused.  When no pool has
 * anything left to give back the timer is not re-armed, so an idle
 * reactor sleeps without wake-ups.  Reactor thread only. */
#ifndef NEXUS_CORE_TRIM_H
#define NEXUS_CORE_TRIM_H

#include <stdbool.h>
#include <liburing.h>
#include <nexus/nexus_driver.h>

#include "hidden.h"

struct nexus_reactor;

/* How long a pool's spare memory must stay unused before it is freed. */
#define NX_TRIM_PERIOD_MS 2000

struct nx_trim {
	struct nx_trim *next;
	/* Free what stayed unused since the last call (setting *freed if
	 * anything was).  Returns true while there is more that may be
	 * freed later (keep calling). */
	bool (*fn)(struct nx_trim *t, struct nexus_reactor *r, bool *freed);
	bool queued;
};

/* The reactor's side: the queued pools and the timer. */
struct nx_trimmer {
	struct nx_trim *head;
	struct nexus_cqe_handler ev;
	struct __kernel_timespec ts;
	bool armed;
};

/* Have t->fn called every period until it returns false (no-op if t
 * is already queued).  Arms the reactor's timer if needed. */
NX_HIDDEN void nx_trim_add(struct nexus_reactor *r, struct nx_trim *t);
/* Stop calling t->fn (before the memory behind t goes away). */
NX_HIDDEN void nx_trim_remove(struct nexus_reactor *r, struct nx_trim *t);

#endif
