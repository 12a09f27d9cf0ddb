/* SPDX-License-Identifier: MIT */
/* Request slots and byte budgets: what bounds a server's memory.
 *
 * A connection has a fixed array of slots (its requests in flight,
 * allocated once) and may hold payload buffers up to a byte limit of
 * its own.  Every payload buffer is also charged to a chain of budgets
 * shared across reactors (an export's, then the context's).  A request
 * that does not fit is not allocated: its connection stops parsing
 * (and so receiving: the client's own socket buffer fills and pushes
 * back), and its ready callback runs when bytes come back.
 *
 * Budgets are lock-free on the fast path (an atomic add that checks the
 * limit); the waiter list is taken only when a take failed or someone
 * waits. */
#include "config.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "internal.h"
#include "util.h"


struct bwait {
	struct bwait *next;
	struct nexus_conn *c;
	struct nexus_reactor *r;
	struct nexus_budget *on; /* the budget it waits on, or NULL */
};

struct nexus_budget {
	struct nexus_budget *parent;
	_Atomic uint64_t used;
	_Atomic uint64_t limit;
	atomic_uint nwait;
	pthread_mutex_t lock;
	struct bwait *waiters;
	/* the per-context registry */
	struct nexus_ctx *ctx;
	struct nexus_budget *next;
	unsigned ctx_refs;
};

struct slot_hdr {
	struct slot_hdr *next;
	void *buf;
	size_t len;
	uint64_t pad; /* the protocol's state is 16-byte aligned */
};

struct nexus_slots {
	struct nexus_conn *c;
	struct nexus_reactor *r;
	struct nexus_budget *b;
	unsigned n, busy;
	size_t stride, slot_size;
	uint64_t conn_bytes, held;
	bool starved; /* a get failed for lack of slots or own bytes */
	struct bwait w;
	struct slot_hdr *free;
	uint8_t *mem;
};

/* ---- budgets ---- */

int nexus_budget_create(struct nexus_budget *parent, uint64_t limit,
			struct nexus_budget **out)
{
	struct nexus_budget *b;

	*out = NULL;
	if (!limit)
		return nexus_error(-EINVAL, "a budget of 0 bytes admits "
				   "nothing");
	b = calloc(1, sizeof(*b));
	if (!b)
		return nexus_error(-ENOMEM, "out of memory");
	b->parent = parent;
	atomic_init(&b->limit, limit);
	pthread_mutex_init(&b->lock, NULL);
	*out = b;
	return 0;
}

void nexus_budget_destroy(struct nexus_budget *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void nexus_budget_set_limit(struct nexus_budget *b, uint64_t limit)
{
	if (b && limit)
		atomic_store(&b->limit, limit);
}

uint64_t nexus_budget_used(const struct nexus_budget *b)
{
	return b ? atomic_load(&((struct nexus_budget *)b)->used) : 0;
}

static bool level_take(struct nexus_budget *b, uint64_t n)
{
	uint64_t u = atomic_load_explicit(&b->used, memory_order_relaxed);

	do {
		if (u + n > atomic_load_explicit(&b->limit,
						 memory_order_relaxed))
			return false;
	} while (!atomic_compare_exchange_weak(&b->used, &u, u + n));
	return true;
}

static void wake(struct nexus_budget *b)
{
	struct bwait *w;

	pthread_mutex_lock(&b->lock);
	w = b->waiters;
	b->waiters = NULL;
	atomic_store(&b->nwait, 0);
	for (struct bwait *i = w; i; i = i->next)
		i->on = NULL;
	pthread_mutex_unlock(&b->lock);
	while (w) {
		struct bwait *next = w->next;

		/* the waiter's reference travels with the message */
		if (nexus_reactor_post(w->r, nx_conn_ready_msg, w->c) < 0)
			nexus_log(nexus_reactor_ctx(w->r), NEXUS_LOG_ERROR,
				  "cannot wake a connection waiting for "
				  "memory budget");
		w = next;
	}
}

static void give(struct nexus_budget *b, uint64_t n)
{
	for (; b; b = b->parent) {
		atomic_fetch_sub(&b->used, n);
		if (atomic_load(&b->nwait))
			wake(b);
	}
}

/* Take @n bytes from @b and its parents; on failure nothing is taken
 * and the budget that refused is returned. */
static struct nexus_budget *take(struct nexus_budget *b, uint64_t n)
{
	for (struct nexus_budget *l = b; l; l = l->parent) {
		if (!level_take(l, n)) {
			for (struct nexus_budget *u = b; u != l; u = u->parent)
				atomic_fetch_sub(&u->used, n);
			/* what others gave back meanwhile is noticed by
			 * the caller's re-check after it queued */
			return l;
		}
	}
	return NULL;
}

/* Queue @w on @l, then try once more: bytes given back between the
 * failed take and the queueing would otherwise wake nobody. */
static bool wait_or_take(struct nexus_slots *s, struct nexus_budget *l,
			 uint64_t n)
{
	struct bwait *w = &s->w;

	if (!w->on) {
		nexus_conn_get(s->c); /* the wake-up message's reference */
		pthread_mutex_lock(&l->lock);
		w->on = l;
		w->next = l->waiters;
		l->waiters = w;
		atomic_fetch_add(&l->nwait, 1);
		pthread_mutex_unlock(&l->lock);
	}
	return take(s->b, n) == NULL;
}

/* Leave the waiter list (the slots or their connection go away). */
static void unwait(struct nexus_slots *s)
{
	struct bwait *w = &s->w;
	struct nexus_budget *l;
	bool was = false;

	for (;;) {
		l = w->on;
		if (!l)
			break;
		pthread_mutex_lock(&l->lock);
		if (w->on == l) {
			for (struct bwait **p = &l->waiters; *p;
			     p = &(*p)->next) {
				if (*p == w) {
					*p = w->next;
					atomic_fetch_sub(&l->nwait, 1);
					break;
				}
			}
			w->on = NULL;
			was = true;
		}
		pthread_mutex_unlock(&l->lock);
		if (was)
			break;
	}
	if (was)
		nexus_conn_put(s->c);
}

/* ---- the per-context budget ---- */

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nexus_budget *ctx_budgets;

struct nexus_budget *nexus_ctx_budget(struct nexus_ctx *ctx)
{
	struct nexus_budget *b;

	if (!ctx)
		return NULL;
	pthread_mutex_lock(&ctx_lock);
	for (b = ctx_budgets; b; b = b->next)
		if (b->ctx == ctx)
			break;
	if (!b && nexus_budget_create(NULL, ctx->mem_budget, &b) == 0) {
		b->ctx = ctx;
		b->next = ctx_budgets;
		ctx_budgets = b;
	}
	pthread_mutex_unlock(&ctx_lock);
	return b;
}

void nx_ctx_budget_ref(struct nexus_ctx *ctx, int delta)
{
	struct nexus_budget *b = nexus_ctx_budget(ctx), **p;

	if (!b)
		return;
	pthread_mutex_lock(&ctx_lock);
	b->ctx_refs += (unsigned)delta;
	if (!b->ctx_refs) {
		for (p = &ctx_budgets; *p; p = &(*p)->next) {
			if (*p == b) {
				*p = b->next;
				break;
			}
		}
		nexus_budget_destroy(b);
	}
	pthread_mutex_unlock(&ctx_lock);
}

/* ---- slots ---- */

struct nexus_slots *nexus_slots_create(struct nexus_conn *c, unsigned n,
				       size_t slot_size, uint64_t conn_bytes,
				       struct nexus_budget *budget)
{
	struct nexus_slots *s;

	if (!c || !n)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->stride = sizeof(struct slot_hdr) + ((slot_size + 15) & ~(size_t)15);
	s->mem = calloc(n, s->stride);
	if (!s->mem) {
		free(s);
		return NULL;
	}
	s->c = c;
	s->r = nexus_conn_reactor(c);
	s->b = budget;
	s->n = n;
	s->slot_size = slot_size;
	s->conn_bytes = conn_bytes;
	s->w.c = c;
	s->w.r = s->r;
	nx_conn_set_slots(c, s);
	for (unsigned i = n; i-- > 0;) {
		struct slot_hdr *h = (void *)(s->mem + (size_t)i * s->stride);

		h->next = s->free;
		s->free = h;
	}
	return s;
}

void nexus_slots_destroy(struct nexus_slots *s)
{
	if (!s)
		return;
	unwait(s);
	nx_conn_set_slots(s->c, NULL);
	for (unsigned i = 0; i < s->n; i++) {
		struct slot_hdr *h = (void *)(s->mem + (size_t)i * s->stride);

		if (h->buf)
			nexus_slot_drop_buf(s, h + 1);
	}
	free(s->mem);
	free(s);
}

void *nexus_slot_get(struct nexus_slots *s, size_t bytes, void **buf)
{
	struct nexus_budget *l;
	struct slot_hdr *h = s->free;

	*buf = NULL;
	if (!h || (bytes && s->held && s->held + bytes > s->conn_bytes)) {
		s->starved = true;
		return NULL;
	}
	if (bytes && s->b && (l = take(s->b, bytes)) != NULL &&
	    !wait_or_take(s, l, bytes))
		return NULL;
	s->free = h->next;
	s->busy++;
	h->next = NULL;
	h->buf = NULL;
	h->len = 0;
	memset(h + 1, 0, s->slot_size);
	if (bytes) {
		h->buf = nexus_buf_alloc(s->r, bytes);
		if (!h->buf) {
			if (s->b)
				give(s->b, bytes);
		} else {
			h->len = bytes;
			s->held += bytes;
		}
	}
	*buf = h->buf;
	return h + 1;
}

void nexus_slot_drop_buf(struct nexus_slots *s, void *slot)
{
	struct slot_hdr *h = (struct slot_hdr *)slot - 1;

	if (!h->buf)
		return;
	nexus_buf_free(s->r, h->buf, h->len);
	s->held -= h->len;
	if (s->b)
		give(s->b, h->len);
	h->buf = NULL;
	h->len = 0;
	if (s->starved) {
		s->starved = false;
		nx_conn_ready_soon(s->c);
	}
}

void nexus_slot_put(struct nexus_slots *s, void *slot)
{
	struct slot_hdr *h = (struct slot_hdr *)slot - 1;

	nexus_slot_drop_buf(s, slot);
	h->next = s->free;
	s->free = h;
	s->busy--;
	if (s->starved) {
		s->starved = false;
		nx_conn_ready_soon(s->c);
	}
}

void nx_slots_unwait(struct nexus_slots *s)
{
	unwait(s);
}

void nexus_slots_detach_budget(struct nexus_slots *s)
{
	unwait(s);
	if (s->b && s->held)
		give(s->b, s->held);
	s->b = NULL;
}

unsigned nexus_slots_busy(const struct nexus_slots *s)
{
	return s ? s->busy : 0;
}
