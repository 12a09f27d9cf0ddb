/* SPDX-License-Identifier: MIT */
/* The reactor's trim timer (see trim.h). */
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "internal.h"

static void arm(struct nexus_reactor *r)
{
	struct nx_trimmer *tm = &r->trimmer;
	struct io_uring_sqe *sqe;

	if (tm->armed || r->stop)
		return;
	sqe = nexus_reactor_sqe(r, &tm->ev);
	if (!sqe)
		return; /* SQ full: armed by the next nx_trim_add() */
	tm->ts.tv_sec = NX_TRIM_PERIOD_MS / 1000;
	tm->ts.tv_nsec = (NX_TRIM_PERIOD_MS % 1000) * 1000000L;
	io_uring_prep_timeout(sqe, &tm->ts, 0, 0);
	tm->armed = true;
}

static void fired(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct nexus_reactor *r = container_of(ev, struct nexus_reactor,
					       trimmer.ev);
	struct nx_trim **pp = &r->trimmer.head;
	bool freed = false;

	(void)res;
	(void)flags;
	r->trimmer.armed = false;
	while (*pp) {
		struct nx_trim *t = *pp;

		if (t->fn(t, r, &freed)) {
			pp = &t->next;
		} else {
			*pp = t->next;
			t->next = NULL;
			t->queued = false;
		}
	}
#ifdef __GLIBC__
	/* what free() kept in the malloc arenas goes back as well */
	if (freed)
		malloc_trim(0);
#endif
	if (r->trimmer.head)
		arm(r);
}

void nx_trim_add(struct nexus_reactor *r, struct nx_trim *t)
{
	r->trimmer.ev.fn = fired;
	if (!t->queued) {
		t->queued = true;
		t->next = r->trimmer.head;
		r->trimmer.head = t;
	}
	arm(r);
}

void nx_trim_remove(struct nexus_reactor *r, struct nx_trim *t)
{
	struct nx_trim **pp = &r->trimmer.head;

	if (!t->queued)
		return;
	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp)
		*pp = t->next;
	t->next = NULL;
	t->queued = false;
}
