/* SPDX-License-Identifier: MIT */
/* The context's event stream.
 *
 * nx_event_emit() may run on any thread, reactors included, so it never
 * waits for the application: it copies the event and its strings into
 * one allocation, and under a short lock gives it the next sequence
 * number and appends it to a FIFO.  One delivery thread per context
 * takes events off the FIFO and calls event_fn with no lock held, one at
 * a time, so every event is delivered once and in sequence order (and
 * so the events of one object in the order they were raised).
 *
 * The FIFO is bounded (NX_EVENT_QUEUE_MAX).  An event that finds it full
 * is dropped and counted; the next event accepted carries that count,
 * and the delivery thread first delivers a NEXUS_EVENT_LOST with it (its
 * sequence number was taken when the count was folded in, so sequence
 * numbers stay gap-free and ordered).  Drops still pending when the
 * context is destroyed are reported by a last LOST event.
 *
 * event_free runs exactly once: after the last delivery when the
 * context is destroyed, or when nexus_ctx_create() fails after reading
 * the options. */
#include "config.h" /* before the system headers: pthread_setname_np */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct nx_event_entry {
	struct nx_event_entry *next;
	uint64_t lost;	    /* events dropped just before this one */
	uint64_t lost_seq;  /* sequence number of their LOST event */
	struct nexus_event_info info;
	char strings[];	    /* object, peer, message */
};

struct nx_events {
	struct nexus_ctx *ctx;
	nexus_event_fn fn;
	void *ud;
	void (*free_fn)(void *ud);
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;	 /* new events, or stop */
	pthread_cond_t done_cond; /* a delivery ended (nx_event_forget) */
	/* under lock */
	struct nx_event_entry *head, *tail;
	struct nx_event_entry *current; /* being delivered, or NULL */
	unsigned queued;
	uint64_t next_seq; /* sequence number of the next event, from 1 */
	uint64_t dropped;  /* dropped since the last accepted event */
	bool stop;
};

static __thread const struct nx_events *tl_delivering;

/* ---- delivery ---- */

static void deliver(struct nx_events *ev, const struct nexus_event_info *in)
{
	tl_delivering = ev;
	ev->fn(ev->ud, in);
	tl_delivering = NULL;
}

static void deliver_lost(struct nx_events *ev, uint64_t seq, uint64_t n)
{
	struct nexus_event_info in = {
		.size = sizeof(in),
		.kind = NEXUS_EVENT_LOST,
		.seq = seq,
		.object = "",
		.peer = "",
		.message = "the event callback fell behind; events were "
			   "dropped",
		.count = n,
	};
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	in.time_ns = (uint64_t)ts.tv_sec * 1000000000ull +
		     (uint64_t)ts.tv_nsec;
	deliver(ev, &in);
}

static void *event_thread(void *arg)
{
	struct nx_events *ev = arg;

	pthread_mutex_lock(&ev->lock);
	for (;;) {
		struct nx_event_entry *e = ev->head;

		if (!e) {
			if (ev->dropped && ev->stop) {
				uint64_t n = ev->dropped, seq = ev->next_seq++;

				ev->dropped = 0;
				pthread_mutex_unlock(&ev->lock);
				deliver_lost(ev, seq, n);
				pthread_mutex_lock(&ev->lock);
				continue;
			}
			if (ev->stop)
				break;
			pthread_cond_wait(&ev->cond, &ev->lock);
			continue;
		}
		ev->head = e->next;
		if (!ev->head)
			ev->tail = NULL;
		ev->queued--;
		ev->current = e;
		pthread_mutex_unlock(&ev->lock);
		if (e->lost)
			deliver_lost(ev, e->lost_seq, e->lost);
		deliver(ev, &e->info);
		pthread_mutex_lock(&ev->lock);
		ev->current = NULL;
		pthread_cond_broadcast(&ev->done_cond);
		free(e);
	}
	pthread_mutex_unlock(&ev->lock);
	return NULL;
}

int nx_events_start(struct nexus_ctx *ctx, const struct nexus_ctx_opts *o,
		    struct nx_events **out)
{
	struct nx_events *ev;
	int rc;

	*out = NULL;
	if (!o->event_fn && !o->event_free)
		return 0;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return nexus_error(-ENOMEM, "out of memory");
	ev->ctx = ctx;
	ev->fn = o->event_fn;
	ev->ud = o->event_user_data;
	ev->free_fn = o->event_free;
	ev->next_seq = 1;
	pthread_mutex_init(&ev->lock, NULL);
	pthread_cond_init(&ev->cond, NULL);
	pthread_cond_init(&ev->done_cond, NULL);
	*out = ev;
	if (!ev->fn) /* only event_free: it runs at destroy, nothing else */
		return 0;
	rc = -pthread_create(&ev->thread, NULL, event_thread, ev);
	if (rc) {
		*out = NULL;
		pthread_mutex_destroy(&ev->lock);
		pthread_cond_destroy(&ev->cond);
		pthread_cond_destroy(&ev->done_cond);
		free(ev);
		return nexus_error(rc, "cannot start the event thread: %s",
				   strerror(-rc));
	}
	pthread_setname_np(ev->thread, "nexus-events");
	return 0;
}

void nx_events_stop(struct nx_events *ev)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->stop = true;
	pthread_cond_signal(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
	if (ev->fn)
		pthread_join(ev->thread, NULL);
	if (ev->free_fn)
		ev->free_fn(ev->ud);
	pthread_mutex_destroy(&ev->lock);
	pthread_cond_destroy(&ev->cond);
	pthread_cond_destroy(&ev->done_cond);
	free(ev);
}

static bool refers_to(const struct nexus_event_info *in, const void *obj)
{
	return in->dev == obj || in->child == obj || (const void *)in->exp == obj;
}

void nx_event_forget(struct nexus_ctx *ctx, const void *obj)
{
	struct nx_events *ev = ctx ? ctx->events : NULL;

	if (!nx_event_enabled(ev) || !obj)
		return;
	pthread_mutex_lock(&ev->lock);
	for (struct nx_event_entry *e = ev->head; e; e = e->next) {
		if (e->info.dev == obj)
			e->info.dev = NULL;
		if (e->info.child == obj)
			e->info.child = NULL;
		if ((const void *)e->info.exp == obj)
			e->info.exp = NULL;
	}
	/* the callback may be using it right now: let it finish (unless
	 * the callback itself is freeing it) */
	while (ev->current && refers_to(&ev->current->info, obj) &&
	       !nx_event_on_thread(ev))
		pthread_cond_wait(&ev->done_cond, &ev->lock);
	pthread_mutex_unlock(&ev->lock);
}

bool nx_event_enabled(const struct nx_events *ev)
{
	return ev && ev->fn;
}

bool nx_event_on_thread(const struct nx_events *ev)
{
	return ev && tl_delivering == ev;
}

/* ---- emitting ---- */

static size_t str_len(const char *s)
{
	return s ? strnlen(s, NX_EVENT_STR_MAX) : 0;
}

/* Copy @p s (cut to @p n bytes) to *@p pos and return the copy. */
static const char *put_str(char **pos, const char *s, size_t n)
{
	char *d = *pos;

	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	*pos = d + n + 1;
	return d;
}

void nx_event_emit(struct nexus_ctx *ctx, const struct nexus_event_info *in)
{
	struct nx_events *ev = ctx ? ctx->events : NULL;
	struct nx_event_entry *e;
	size_t lo, lp, lm, have;
	struct timespec ts;
	char *pos;

	if (!nx_event_enabled(ev) || !in || in->size < sizeof(size_t))
		return;
	have = in->size < sizeof(*in) ? in->size : sizeof(*in);
	/* cheap refusal first: no allocation when the queue is full */
	pthread_mutex_lock(&ev->lock);
	if (ev->queued >= NX_EVENT_QUEUE_MAX || ev->stop) {
		ev->dropped += !ev->stop;
		pthread_mutex_unlock(&ev->lock);
		return;
	}
	pthread_mutex_unlock(&ev->lock);
	lo = lp = lm = 0;
	if (have >= offsetof(struct nexus_event_info, object) + sizeof(char *))
		lo = str_len(in->object);
	if (have >= offsetof(struct nexus_event_info, peer) + sizeof(char *))
		lp = str_len(in->peer);
	if (have >= offsetof(struct nexus_event_info, message) + sizeof(char *))
		lm = str_len(in->message);
	e = malloc(sizeof(*e) + lo + lp + lm + 3);
	if (!e) {
		pthread_mutex_lock(&ev->lock);
		ev->dropped++;
		pthread_mutex_unlock(&ev->lock);
		return;
	}
	memset(&e->info, 0, sizeof(e->info));
	memcpy(&e->info, in, have);
	e->info.size = sizeof(e->info);
	pos = e->strings;
	e->info.object = put_str(&pos, lo ? in->object : "", lo);
	e->info.peer = put_str(&pos, lp ? in->peer : "", lp);
	e->info.message = put_str(&pos, lm ? in->message : "", lm);
	if (e->info.kind != NEXUS_EVENT_LOST)
		e->info.count = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	e->info.time_ns = (uint64_t)ts.tv_sec * 1000000000ull +
			  (uint64_t)ts.tv_nsec;
	e->next = NULL;
	pthread_mutex_lock(&ev->lock);
	if (ev->queued >= NX_EVENT_QUEUE_MAX || ev->stop) {
		ev->dropped += !ev->stop;
		pthread_mutex_unlock(&ev->lock);
		free(e);
		return;
	}
	e->lost = ev->dropped;
	e->lost_seq = e->lost ? ev->next_seq++ : 0;
	ev->dropped = 0;
	e->info.seq = ev->next_seq++;
	if (ev->tail)
		ev->tail->next = e;
	else
		ev->head = e;
	ev->tail = e;
	ev->queued++;
	pthread_cond_signal(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
}
