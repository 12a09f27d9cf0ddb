/* SPDX-License-Identifier: MIT */
/* mirror: rebuild.
 *
 * A child that comes back (or is added) is rebuilt with the copy engine
 * from the mirror itself: the job reads the mirror, whose reads go only
 * to in-sync children, and writes the child.  The child receives every
 * foreground write from the moment it is REBUILDING, so the copy only
 * has to bring over what it missed before, and never overwrite newer
 * data: the job's lock hook holds the chunk's range against foreground
 * writes (a chunk waits for the writes in flight on its range; a write
 * that meets a locked or waiting chunk waits for it).  Writes take
 * these range locks only while a rebuild runs (m->tracking); the writes
 * already in flight without them when a rebuild starts are waited for
 * before its first chunk, so none of them can land on the source after
 * the chunk was read.
 *
 * Partial rebuild: while a child misses writes (offline, faulted), each
 * write marks its regions dirty in the child's map, one bit per
 * region-size bytes; a rebuild of a child whose map is valid copies only
 * the marked regions.  A map stops being valid when the child may have
 * lost writes that the map cannot name (a failed FLUSH, a child out of
 * sync at open): its rebuild is then full, and the log says why. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mirror.h"

struct mirror_chunk {
	struct mirror_chunk *next;
	uint64_t start, end;
	struct nexus_copy_chunk *ck;
	bool granted;
};

/* ---- dirty regions ---- */

int mirror_dirty_alloc(struct mirror *m)
{
	size_t words = (size_t)((m->nregions + 63) / 64);

	for (unsigned i = 0; i < m->n; i++) {
		m->c[i].dirty = calloc(words ? words : 1, sizeof(uint64_t));
		if (!m->c[i].dirty)
			return nexus_error(-ENOMEM, "out of memory");
	}
	return 0;
}

void mirror_dirty_free(struct mirror *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		free((void *)m->c[i].dirty);
		m->c[i].dirty = NULL;
	}
}

bool mirror_dirty_mark(struct mirror *m, unsigned i, uint64_t off,
		       uint64_t len)
{
	uint64_t first, last;
	bool fresh = false;

	if (!len)
		return false;
	first = off >> m->region_shift;
	last = (off + len - 1) >> m->region_shift;
	for (uint64_t r = first; r <= last && r < m->nregions; r++)
		if (!(atomic_fetch_or(&m->c[i].dirty[r / 64],
				      1ull << (r % 64)) &
		      (1ull << (r % 64))))
			fresh = true;
	return fresh;
}

static bool dirty_test(struct mirror *m, unsigned i, uint64_t r)
{
	return atomic_load_explicit(&m->c[i].dirty[r / 64],
				    memory_order_relaxed) &
	       (1ull << (r % 64));
}

uint64_t mirror_dirty_bytes(struct mirror *m, unsigned i)
{
	uint64_t bytes = 0;

	for (uint64_t r = 0; r < m->nregions; r++)
		if (dirty_test(m, i, r)) {
			uint64_t start = r << m->region_shift;
			uint64_t end = start + (1ull << m->region_shift);

			bytes += (end > m->size ? m->size : end) - start;
		}
	return bytes;
}

static void dirty_clear(struct mirror *m, unsigned i)
{
	for (uint64_t w = 0; w < (m->nregions + 63) / 64; w++)
		atomic_store(&m->c[i].dirty[w], 0);
}

/* ---- range locks ---- */

static bool overlaps(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
	return a0 < b1 && b0 < a1;
}

static bool write_overlaps(struct mirror *m, uint64_t s, uint64_t e)
{
	for (struct mirror_io *w = m->writes; w; w = w->next)
		if (overlaps(s, e, w->io->offset, w->io->offset + w->io->length))
			return true;
	return false;
}

static bool chunk_overlaps(struct mirror *m, uint64_t s, uint64_t e)
{
	for (struct mirror_chunk *c = m->chunks; c; c = c->next)
		if (overlaps(s, e, c->start, c->end))
			return true;
	return false;
}

bool mirror_write_admit(struct mirror *m, struct mirror_io *mio)
{
	struct nexus_io *io = mio->io;

	/* Counted first, then the flag read (both seq_cst): a rebuild that
	 * set the flag either sees this count or is seen here. */
	atomic_fetch_add(&m->untracked, 1);
	if (!atomic_load(&m->tracking))
		return true;
	atomic_fetch_sub(&m->untracked, 1);
	mio->tracked = true;
	pthread_mutex_lock(&m->lock);
	if (chunk_overlaps(m, io->offset, io->offset + io->length)) {
		mio->next = m->parked;
		m->parked = mio;
		pthread_mutex_unlock(&m->lock);
		return false;
	}
	mio->next = m->writes;
	m->writes = mio;
	pthread_mutex_unlock(&m->lock);
	return true;
}

void mirror_write_done(struct mirror *m, struct mirror_io *mio)
{
	struct mirror_chunk *grant[64];
	unsigned ng = 0;

	if (!mio->tracked) {
		atomic_fetch_sub(&m->untracked, 1);
		return;
	}
	mio->tracked = false;
	pthread_mutex_lock(&m->lock);
	for (struct mirror_io **pp = &m->writes; *pp; pp = &(*pp)->next)
		if (*pp == mio) {
			*pp = mio->next;
			break;
		}
	for (struct mirror_chunk *c = m->chunks; c && ng < 64; c = c->next)
		if (!c->granted && !write_overlaps(m, c->start, c->end)) {
			c->granted = true;
			grant[ng++] = c;
		}
	pthread_mutex_unlock(&m->lock);
	/* a granted chunk stays on m->chunks until its unlock */
	for (unsigned i = 0; i < ng; i++)
		nexus_copy_chunk_locked(grant[i]->ck, 0);
}

static int lock_fn(void *ud, uint64_t off, uint64_t len,
		   struct nexus_copy_chunk *ck)
{
	struct mirror *m = ud;
	struct mirror_chunk *c = malloc(sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	c->start = off;
	c->end = off + len;
	c->ck = ck;
	pthread_mutex_lock(&m->lock);
	c->granted = !write_overlaps(m, c->start, c->end);
	c->next = m->chunks;
	m->chunks = c;
	rc = c->granted ? 0 : NEXUS_COPY_LOCK_PENDING;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static void restart_fn(void *arg)
{
	mirror_write_start(arg);
}

static void unlock_fn(void *ud, uint64_t off, uint64_t len, int result)
{
	struct mirror *m = ud;
	struct mirror_io *go = NULL;

	(void)result;
	pthread_mutex_lock(&m->lock);
	for (struct mirror_chunk **pp = &m->chunks; *pp; pp = &(*pp)->next) {
		struct mirror_chunk *c = *pp;

		if (c->granted && c->start == off && c->end == off + len) {
			*pp = c->next;
			free(c);
			break;
		}
	}
	/* parked writes that no longer meet a chunk become tracked writes */
	for (struct mirror_io **pp = &m->parked; *pp;) {
		struct mirror_io *w = *pp;

		if (chunk_overlaps(m, w->io->offset,
				   w->io->offset + w->io->length)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->next = m->writes;
		m->writes = w;
		/* remember it in a second list: go */
		w->tnext = go;
		go = w;
	}
	pthread_mutex_unlock(&m->lock);
	while (go) {
		struct mirror_io *w = go;

		go = w->tnext;
		w->tnext = NULL;
		if (nexus_reactor_post(w->io->reactor, restart_fn, w) < 0)
			nexus_log(m->ctx, NEXUS_LOG_ERROR, "%s: cannot restart "
				  "a write: out of memory", m->dev->name);
	}
}

/* ---- the job ---- */

/* The ranges of the job, one at a time: before the first, wait for the
 * untracked writes; then the whole device (full) or each run of dirty
 * regions (partial). */
static int next_fn(void *ud, struct nexus_copy_range *range)
{
	struct mirror *m = ud;
	unsigned i = (unsigned)m->rebuild_child;
	uint64_t r, end;

	if (m->rebuild_next == 0) {
		/* a rebuild started by open() waits for the mirror's
		 * reactors; every rebuild for the untracked writes, which
		 * finish or time out (bounded: 60 s) */
		for (unsigned t = 0;
		     atomic_load(&m->ready) < m->nrstates ||
		     atomic_load(&m->untracked);
		     t++) {
			if (t == 600000 || atomic_load(&m->closing))
				return nexus_error(-ETIMEDOUT, "%s: writes in "
						   "flight did not finish",
						   m->dev->name);
			nanosleep(&(struct timespec){ 0, 100000 }, NULL);
		}
	}
	if (!m->rebuild_partial) {
		if (m->rebuild_next)
			return 0;
		m->rebuild_next = m->nregions;
		range->offset = 0;
		range->length = m->size;
		return m->size ? 1 : 0;
	}
	for (r = m->rebuild_next; r < m->nregions && !dirty_test(m, i, r); r++)
		;
	if (r >= m->nregions) {
		m->rebuild_next = m->nregions;
		return 0;
	}
	for (end = r + 1; end < m->nregions && dirty_test(m, i, end); end++)
		;
	m->rebuild_next = end;
	range->offset = r << m->region_shift;
	range->length = (end << m->region_shift) - range->offset;
	if (range->offset + range->length > m->size)
		range->length = m->size - range->offset;
	return 1;
}

/* The next queued child whose turn it is (job thread, after a rebuild). */
static void start_queued(struct mirror *m)
{
	for (unsigned tries = 0; tries < MIRROR_SLOTS; tries++) {
		int next = -1, s;

		pthread_mutex_lock(&m->lock);
		if (!atomic_load(&m->closing) && m->rebuild_queue)
			next = __builtin_ctz(m->rebuild_queue);
		if (next >= 0)
			m->rebuild_queue &= ~(1u << next);
		pthread_mutex_unlock(&m->lock);
		if (next < 0)
			return;
		s = atomic_load(&m->c[next].state);
		if (s != NEXUS_DEV_STATE_FAULTED && s != NEXUS_DEV_STATE_OFFLINE)
			continue; /* back some other way, or detached */
		if (!mirror_rebuild_start(m, (unsigned)next))
			return;
		nexus_log(m->ctx, NEXUS_LOG_WARN, "%s: queued rebuild not "
			  "started: %s", m->dev->name, nexus_last_error());
	}
}

static void done_fn(void *ud, int result)
{
	struct mirror *m = ud;
	unsigned i = (unsigned)m->rebuild_child;
	struct nexus_copy_progress p = NEXUS_COPY_PROGRESS_INIT;
	bool ok;

	nexus_copy_get_progress(m->job, &p);
	pthread_mutex_lock(&m->lock);
	m->in_done = true;
	atomic_store(&m->tracking, false);
	ok = !result && atomic_load(&m->c[i].state) ==
				NEXUS_DEV_STATE_REBUILDING;
	m->last = p;
	m->rebuild_result = ok ? 0 : result ? result : -ECANCELED;
	if (ok) {
		m->rebuilds_done++;
		dirty_clear(m, i); /* every write since went to it */
		atomic_store(&m->c[i].dirty_valid, true);
	}
	pthread_mutex_unlock(&m->lock);
	nexus_log(m->ctx, ok ? NEXUS_LOG_INFO : NEXUS_LOG_WARN,
		  "%s: %s rebuild of child %u %s: %llu bytes copied, %llu "
		  "zeroed, in %.3f s", m->dev->name,
		  m->rebuild_partial ? "partial" : "full", i,
		  ok ? "done" : "failed",
		  (unsigned long long)p.data_bytes,
		  (unsigned long long)p.zero_bytes, (double)p.elapsed_ns / 1e9);
	if (ok)
		mirror_set_child(m, i, NEXUS_DEV_STATE_ONLINE,
				 NEXUS_REASON_NONE, 0, true, NULL);
	else if (atomic_load(&m->c[i].state) == NEXUS_DEV_STATE_REBUILDING)
		mirror_set_child(m, i, NEXUS_DEV_STATE_FAULTED,
				 NEXUS_REASON_REBUILD_FAILED, m->rebuild_result,
				 true, NULL);
	/* finished means recorded: the child is in sync in the record too */
	if (mirror_wait_durable(m))
		nexus_log(m->ctx, NEXUS_LOG_ERROR, "%s: cannot record the "
			  "end of the rebuild: %s", m->dev->name,
			  nexus_last_error());
	pthread_mutex_lock(&m->lock);
	m->rebuild_child = -1;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	start_queued(m);
	pthread_mutex_lock(&m->lock);
	m->in_done = false;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

void mirror_rebuild_stop(struct mirror *m)
{
	/* at close, until no job is left: a rebuild finishing meanwhile may
	 * be starting a queued one (its done callback drops m->job before it
	 * sets the next), so wait for that callback to return first; a job
	 * started by it sees m->closing when it ends and starts no other */
	for (;;) {
		struct nexus_copy *job;

		pthread_mutex_lock(&m->lock);
		while (atomic_load(&m->closing) && m->in_done)
			pthread_cond_wait(&m->cond, &m->lock);
		job = m->job;
		m->job = NULL;
		if (atomic_load(&m->closing))
			m->rebuild_queue = 0;
		pthread_mutex_unlock(&m->lock);
		if (!job)
			break;
		nexus_copy_destroy(job); /* cancels and waits */
		if (!atomic_load(&m->closing))
			break; /* a detach: queued rebuilds go on */
	}
}

int mirror_rebuild_start(struct mirror *m, unsigned i)
{
	struct nexus_copy_opts o = NEXUS_COPY_OPTS_INIT;
	struct nexus_copy *job, *old;
	int s = atomic_load(&m->c[i].state), rc;
	char note[160];
	bool partial;

	if (s == NEXUS_DEV_STATE_ONLINE || s == NEXUS_DEV_STATE_REBUILDING)
		return 0;
	if (s == MIRROR_REMOVED)
		return nexus_error(-ENOENT, "%s: that child was detached",
				   m->dev->name);
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "%s: a rebuild starts from an "
				   "application thread", m->dev->name);
	if (atomic_load(&m->c[i].in_flight))
		return nexus_error(-EBUSY, "%s: child %u still has %llu "
				   "requests in flight (timed out): try again "
				   "when they are back", m->dev->name, i,
				   (unsigned long long)atomic_load(
					   &m->c[i].in_flight));
	pthread_mutex_lock(&m->lock);
	if (m->rebuild_child >= 0) {
		if (m->rebuild_child != (int)i)
			m->rebuild_queue |= 1u << i;
		pthread_mutex_unlock(&m->lock);
		nexus_log(m->ctx, NEXUS_LOG_INFO, "%s: child %u waits for the "
			  "rebuild of child %u", m->dev->name,
			  mirror_rank(m, i),
			  mirror_rank(m, (unsigned)m->rebuild_child));
		return 0;
	}
	m->rebuild_child = (int)i;
	m->rebuild_queue &= ~(1u << i);
	old = m->job; /* the previous, finished one */
	m->job = NULL;
	pthread_mutex_unlock(&m->lock);
	nexus_copy_destroy(old); /* deferred when we run in its callback */
	partial = atomic_load(&m->c[i].dirty_valid);
	if (partial)
		snprintf(note, sizeof(note), "partial rebuild of %llu bytes",
			 (unsigned long long)mirror_dirty_bytes(m, i));
	else
		snprintf(note, sizeof(note), "full rebuild: no dirty-region "
			 "map covers what it missed (out of sync at open, "
			 "newly attached, or a failed flush)");
	m->rebuild_partial = partial;
	m->rebuild_next = 0;
	o.rate_limit = atomic_load(&m->rate);
	o.next_range = next_fn;
	o.lock_fn = lock_fn;
	o.unlock_fn = unlock_fn;
	o.user_data = m;
	rc = nexus_copy_create(m->dev, m->c[i].dev, &o, &job);
	if (!rc) {
		/* from here the child gets every write, under range locks */
		mirror_set_child(m, i, NEXUS_DEV_STATE_REBUILDING,
				 NEXUS_REASON_USER, 0, true, note);
		atomic_store(&m->tracking, true);
		pthread_mutex_lock(&m->lock);
		m->job = job;
		pthread_mutex_unlock(&m->lock);
		rc = nexus_copy_start(job, done_fn, m);
		if (rc) {
			atomic_store(&m->tracking, false);
			mirror_set_child(m, i, NEXUS_DEV_STATE_FAULTED,
					 NEXUS_REASON_REBUILD_FAILED, rc, true, NULL);
		}
	}
	if (rc) {
		pthread_mutex_lock(&m->lock);
		m->rebuild_child = -1;
		pthread_mutex_unlock(&m->lock);
	}
	return rc;
}

int mirror_rebuild_control(struct mirror *m, const char *what)
{
	struct nexus_copy *job;
	int child;

	pthread_mutex_lock(&m->lock);
	job = m->job;
	child = m->rebuild_child;
	pthread_mutex_unlock(&m->lock);
	if (!job || child < 0)
		return nexus_error(-ENOENT, "%s: no rebuild is running",
				   m->dev->name);
	if (!strcmp(what, "pause"))
		return nexus_copy_pause(job);
	if (!strcmp(what, "resume"))
		return nexus_copy_resume(job);
	if (!strcmp(what, "cancel"))
		return nexus_copy_cancel(job);
	return nexus_error(-EINVAL, "%s: rebuild=%s: expected pause, resume "
			   "or cancel", m->dev->name, what);
}
