/* SPDX-License-Identifier: MIT */
/* mirror: child and mirror states, and the durable record of which
 * children are in sync.
 *
 * Every change that takes a child out of the in-sync set, or brings one
 * in, bumps the record's generation.  A thread of the mirror writes the
 * record (store.h) whenever its generation is behind; a write, TRIM or
 * WRITE_ZEROES is acknowledged only once the record is at least as new
 * as the states it was completed under.  So a write that faulted a
 * child, or that skipped a faulted or offline child, is never
 * acknowledged while the record on disk still calls that child in sync:
 * after a crash, the record never names a child that lacks an
 * acknowledged write.  A child joining the set (rebuilt) makes no write
 * wait: a record that still calls it out of sync only costs a rebuild.  When the record cannot be written, the writes
 * that wait for it fail (-EIO or the store's error) instead of being
 * acknowledged, and the thread retries every second. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "mirror.h"

#define RECORD_MAGIC "nexus-mirror-state 1"

unsigned mirror_in_sync_count(struct mirror *m)
{
	unsigned k = 0;

	for (unsigned i = 0; i < m->n; i++)
		k += mirror_in_sync(m, i);
	return k;
}

void mirror_report(struct mirror *m, int child, int old_state, int new_state,
		   uint32_t reason, int error, const char *note)
{
	struct nexus_event_info ev = { .size = sizeof(ev) };
	char msg[320];

	if (child < 0) {
		snprintf(msg, sizeof(msg), "%u of %u children in sync",
			 mirror_in_sync_count(m), m->active);
		/* raises the mirror's DEV_STATE event */
		nexus_dev_set_state(m->dev, new_state, reason, msg);
		nexus_log(m->ctx, NEXUS_LOG_INFO, "%s: %s -> %s (%s)",
			  m->dev->name, nexus_dev_state_name(old_state),
			  nexus_dev_state_name(new_state), msg);
		return;
	}
	snprintf(msg, sizeof(msg), "child %u: %s -> %s (%s%s%s)%s%s",
		 mirror_rank(m, (unsigned)child),
		 nexus_dev_state_name(old_state),
		 nexus_dev_state_name(new_state), nexus_reason_name(reason),
		 error ? ": " : "", error ? strerror(-error) : "",
		 note ? ": " : "", note ? note : "");
	/* a child's state in the mirror: dev is the mirror, child the
	 * child (its own device state is its driver's) */
	ev.kind = NEXUS_EVENT_DEV_STATE;
	ev.reason = reason;
	ev.dev = m->dev;
	ev.child = m->c[child].dev;
	ev.object = m->c[child].dev->name;
	ev.old_state = old_state;
	ev.new_state = new_state;
	ev.error = error;
	ev.message = msg;
	nx_event_emit(m->ctx, &ev);
	nexus_log(m->ctx, new_state == NEXUS_DEV_STATE_FAULTED
				  ? NEXUS_LOG_WARN
				  : NEXUS_LOG_INFO,
		  "%s: %s %s", m->dev->name, m->c[child].dev->name, msg);
}

void mirror_update_state(struct mirror *m, uint32_t reason)
{
	unsigned k = mirror_in_sync_count(m);
	int want = k == m->active ? NEXUS_DEV_STATE_ONLINE
		   : k	     ? NEXUS_DEV_STATE_DEGRADED
			     : NEXUS_DEV_STATE_FAULTED;
	int old = nexus_dev_get_state(m->dev);

	if (old != want)
		mirror_report(m, -1, old, want, reason, 0, NULL);
}

bool mirror_set_child(struct mirror *m, unsigned i, int state,
		      uint32_t reason, int error, bool force, const char *note)
{
	struct mirror_child *c = &m->c[i];
	int old;

	pthread_mutex_lock(&m->lock);
	old = atomic_load(&c->state);
	if (old == state) {
		pthread_mutex_unlock(&m->lock);
		return true;
	}
	if (old == NEXUS_DEV_STATE_ONLINE && !force &&
	    mirror_in_sync_count(m) == 1) {
		pthread_mutex_unlock(&m->lock);
		return false;
	}
	/* both before the state (seq_cst): a write that sees the child out
	 * sees the generation it must wait for */
	if (old == NEXUS_DEV_STATE_ONLINE)
		atomic_store(&m->gen_need, atomic_fetch_add(&m->gen_want, 1) + 1);
	else if (state == NEXUS_DEV_STATE_ONLINE)
		atomic_fetch_add(&m->gen_want, 1); /* joining: no one waits */
	atomic_store(&c->reason, reason);
	atomic_store(&c->error, error);
	atomic_store(&c->state, state);
	if ((int)i == m->rebuild_child && m->job &&
	    state != NEXUS_DEV_STATE_REBUILDING &&
	    state != NEXUS_DEV_STATE_ONLINE)
		nexus_copy_cancel(m->job);
	mirror_update_state(m, reason);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	mirror_report(m, (int)i, old, state, reason, error, note);
	return true;
}

void mirror_record_needed(struct mirror *m)
{
	pthread_mutex_lock(&m->lock);
	atomic_store(&m->gen_need, atomic_fetch_add(&m->gen_want, 1) + 1);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

bool mirror_fault_child(struct mirror *m, unsigned i, int err, bool timeout)
{
	uint32_t reason = timeout	    ? NEXUS_REASON_TIMEOUT
			  : err == -ENOSPC ? NEXUS_REASON_NO_SPACE
					   : NEXUS_REASON_IO_ERROR;

	if (!mirror_writable(m, i))
		return true; /* already out */
	return mirror_set_child(m, i, NEXUS_DEV_STATE_FAULTED, reason, err,
				false, NULL);
}

/* ---- the record ---- */

/* "dirty RANK R1-R2,R3,...\n": the runs of dirty regions of slot @p i,
 * appended at @p len.  A map too large for the record is left out (a
 * child without a dirty line is rebuilt fully after a restart). */
static size_t encode_dirty(struct mirror *m, unsigned i, unsigned rank,
			   char *buf, size_t len, size_t cap)
{
	size_t start = len;
	uint64_t r = 0, end;
	bool first = true;

	len += (size_t)snprintf(buf + len, cap - len, "dirty %u region %u ",
				rank, m->region_shift);
	while (len < cap) {
		while (r < m->nregions &&
		       !(atomic_load(&m->c[i].dirty[r / 64]) & (1ull << (r % 64))))
			r = (r % 64 == 0 && !atomic_load(&m->c[i].dirty[r / 64]))
				    ? r + 64 /* a clean word at once */
				    : r + 1;
		if (r >= m->nregions)
			break;
		for (end = r + 1; end < m->nregions &&
				  (atomic_load(&m->c[i].dirty[end / 64]) &
				   (1ull << (end % 64)));
		     end++)
			;
		len += (size_t)snprintf(buf + len, cap - len, "%s%llu-%llu",
					first ? "" : ",", (unsigned long long)r,
					(unsigned long long)end);
		first = false;
		r = end;
	}
	if (first && len < cap)
		len += (size_t)snprintf(buf + len, cap - len, "none");
	if (len + 1 >= cap) {
		buf[start] = 0; /* does not fit: no line */
		return start;
	}
	buf[len++] = '\n';
	return len;
}

static size_t encode(struct mirror *m, uint64_t gen, char *buf, size_t cap)
{
	size_t len = (size_t)snprintf(buf, cap,
				      RECORD_MAGIC "\ngeneration %llu\n"
				      "children %u\n",
				      (unsigned long long)gen, m->active);

	for (unsigned r = 0, i; r < m->active && len < cap; r++) {
		i = (unsigned)mirror_slot(m, r);
		len += (size_t)snprintf(buf + len, cap - len, "child %u %s %s\n",
					r, mirror_in_sync(m, i) ? "in-sync"
								: "out-of-sync",
					m->c[i].dev->name);
	}
	for (unsigned r = 0, i; r < m->active && len < cap; r++) {
		i = (unsigned)mirror_slot(m, r);
		if (!mirror_in_sync(m, i) && atomic_load(&m->c[i].dirty_valid))
			len = encode_dirty(m, i, r, buf, len, cap);
	}
	if (m->clean && len < cap)
		len += (size_t)snprintf(buf + len, cap - len, "clean\n");
	return len < cap ? len : cap;
}

/* "dirty RANK region SHIFT RUNS": set the bits of child RANK; true when
 * the map applies (same region size, well formed). */
static bool decode_dirty(struct mirror *m, const char *line, unsigned *rank)
{
	unsigned shift;
	int at = 0;
	const char *p;

	if (sscanf(line, "dirty %u region %u %n", rank, &shift, &at) != 2 ||
	    !at || *rank >= m->n || shift != m->region_shift)
		return false;
	p = line + at;
	if (!strcmp(p, "none"))
		return true;
	while (*p) {
		char *e;
		unsigned long long a = strtoull(p, &e, 10), b;

		if (e == p || *e != '-')
			return false;
		p = e + 1;
		b = strtoull(p, &e, 10);
		if (e == p || a >= b || b > m->nregions || (*e && *e != ','))
			return false;
		for (uint64_t r = a; r < b; r++)
			atomic_fetch_or(&m->c[*rank].dirty[r / 64],
					1ull << (r % 64));
		p = *e ? e + 1 : e;
	}
	return true;
}

/* Parse a record: the in-sync children as a mask, those whose dirty map
 * it holds as another, its generation. */
static int decode(struct mirror *m, char *buf, uint32_t *mask,
		  uint32_t *maps, uint64_t *gen, bool *clean)
{
	const char *where = m->store->where;
	unsigned long long g;
	unsigned n, i, seen = 0;
	char word[16];
	char *line, *save = NULL;

	line = strtok_r(buf, "\n", &save);
	if (!line || strcmp(line, RECORD_MAGIC))
		return nexus_error(-EINVAL, "mirror: %s is not a mirror state "
				   "record", where);
	line = strtok_r(NULL, "\n", &save);
	if (!line || sscanf(line, "generation %llu", &g) != 1)
		return nexus_error(-EINVAL, "mirror: %s: no generation", where);
	line = strtok_r(NULL, "\n", &save);
	if (!line || sscanf(line, "children %u", &n) != 1)
		return nexus_error(-EINVAL, "mirror: %s: no children", where);
	if (n != m->n)
		return nexus_error(-EINVAL, "mirror: %s records %u children, "
				   "the pipeline has %u: give source=N to "
				   "start over from child N", where, n, m->n);
	*mask = *maps = 0;
	*clean = false;
	while ((line = strtok_r(NULL, "\n", &save))) {
		if (!strcmp(line, "clean")) {
			*clean = true;
			continue;
		}
		if (!strncmp(line, "dirty ", 6)) {
			if (decode_dirty(m, line, &i))
				*maps |= 1u << i;
			continue; /* a map that does not apply: full rebuild */
		}
		if (sscanf(line, "child %u %15s", &i, word) != 2 || i >= n)
			return nexus_error(-EINVAL, "mirror: %s: bad line '%s'",
					   where, line);
		seen |= 1u << i;
		if (!strcmp(word, "in-sync"))
			*mask |= 1u << i;
		else if (strcmp(word, "out-of-sync"))
			return nexus_error(-EINVAL, "mirror: %s: bad line '%s'",
					   where, line);
	}
	if (seen != (n == 32 ? UINT32_MAX : (1u << n) - 1))
		return nexus_error(-EINVAL, "mirror: %s lacks a child", where);
	*gen = g;
	return 0;
}

int mirror_state_load(struct mirror *m, int source, bool clean)
{
	uint32_t mask = 0, maps = 0, all = (1u << m->n) - 1;
	uint64_t gen = 0;
	bool have = false, was_clean = false;
	int rc;

	if (m->store) {
		char *buf = malloc(NX_STORE_MAX);

		if (!buf)
			return nexus_error(-ENOMEM, "out of memory");
		rc = nx_store_get(m->store, buf, NX_STORE_MAX);
		if (rc > 0) {
			buf[rc] = 0;
			rc = decode(m, buf, &mask, &maps, &gen, &was_clean);
			have = rc == 0;
		}
		free(buf);
		if (rc < 0 && source < 0)
			return rc;
	}
	if (source >= 0) {
		if ((unsigned)source >= m->n)
			return nexus_error(-EINVAL, "mirror: source=%d: there "
					   "are %u children", source, m->n);
		mask = 1u << source;
	} else if (clean) {
		mask = all;
	} else if (have) {
		if (!mask)
			return nexus_error(-EIO, "mirror: %s names no child in "
					   "sync: give source=N to pick one",
					   m->store->where);
		if (!was_clean && (mask & (mask - 1))) {
			/* not closed: where writes were in flight the children
			 * in sync may differ; one of them is the truth */
			nexus_log(m->ctx, NEXUS_LOG_WARN, "mirror: %s: the "
				  "mirror was not closed cleanly: child %d is "
				  "the source, the other in-sync children are "
				  "rebuilt fully", m->store->where,
				  __builtin_ctz(mask));
			mask &= ~(mask - 1);
		}
	} else if (m->n == 1) {
		mask = all;
	} else {
		return nexus_error(-EINVAL, "mirror: the children may differ "
				   "and %s: give source=N (the child to copy "
				   "to the others) or, for new identical "
				   "children, assume-clean=on",
				   m->store ? "the state record is empty"
					    : "there is no state= record");
	}
	if (source >= 0 || clean)
		maps = 0; /* the record is overruled: so are its maps */
	for (unsigned i = 0; i < m->n; i++) {
		bool in = mask & (1u << i), map = maps & (1u << i);

		atomic_store(&m->c[i].state, in ? NEXUS_DEV_STATE_ONLINE
						: NEXUS_DEV_STATE_FAULTED);
		/* a child out of sync at open missed writes nobody saw,
		 * unless the record kept the map of what it missed */
		atomic_store(&m->c[i].dirty_valid, in || map);
		if (in || !map)
			for (uint64_t w = 0; w < (m->nregions + 63) / 64; w++)
				atomic_store(&m->c[i].dirty[w], 0);
	}
	atomic_store(&m->gen_want, gen + 1);
	atomic_store(&m->gen_done, gen);
	if (mask != all)
		nexus_dev_set_state(m->dev, NEXUS_DEV_STATE_DEGRADED,
				    NEXUS_REASON_NONE,
				    "children out of sync at open");
	return 0;
}

/* ---- the record's thread ---- */

static void complete_fn(void *arg)
{
	struct mirror_io *mio = arg;

	if (mio->predispatch && !mio->err) {
		mio->predispatch = false;
		mirror_write_dispatch(mio);
		return;
	}
	if (mio->predispatch)
		mirror_write_abort(mio, mio->err);
	else
		nexus_io_complete(mio->io, mio->err);
}

/* Give the waiters up to generation @p gen back to their reactors with
 * their result, or with @p err (m->lock held; dropped meanwhile). */
static void release(struct mirror *m, uint64_t gen, int err)
{
	struct mirror_io **pp = &m->waiters, *done = NULL;

	while (*pp) {
		struct mirror_io *w = *pp;

		if (w->gen <= gen) {
			*pp = w->next;
			w->next = done;
			done = w;
		} else {
			pp = &w->next;
		}
	}
	pthread_mutex_unlock(&m->lock);
	while (done) {
		struct mirror_io *w = done;

		done = w->next;
		if (err)
			w->err = err;
		for (int t = 0; nexus_reactor_post(w->io->reactor, complete_fn,
						   w) < 0; t++) {
			if (t == 1000) {
				nexus_log(m->ctx, NEXUS_LOG_ERROR, "%s: cannot "
					  "complete an I/O: out of memory",
					  m->dev->name);
				break;
			}
			nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		}
	}
	pthread_mutex_lock(&m->lock);
}

/* Encode the current states (m->lock held, or no other thread yet)
 * into m->recbuf; its length, or 0 when it does not fit. */
static size_t encode_now(struct mirror *m, uint64_t gen)
{
	size_t len = encode(m, gen, m->recbuf, NX_STORE_MAX);

	return len < NX_STORE_MAX ? len : 0;
}

static int put_encoded(struct mirror *m, size_t len)
{
	if (!len)
		return nexus_error(-EFBIG, "%s: the state record is larger "
				   "than %d bytes", m->dev->name, NX_STORE_MAX);
	return nx_store_put(m->store, m->recbuf, len);
}

static void *store_main(void *arg)
{
	struct mirror *m = arg;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		uint64_t g = atomic_load(&m->gen_want);
		size_t len;
		int rc;

		if (atomic_load(&m->gen_done) >= g) {
			if (m->stop)
				break;
			pthread_cond_wait(&m->cond, &m->lock);
			continue;
		}
		len = encode_now(m, g); /* the states under the lock */
		pthread_mutex_unlock(&m->lock);
		rc = put_encoded(m, len);
		pthread_mutex_lock(&m->lock);
		if (!rc) {
			atomic_store(&m->gen_done, g);
			m->store_err = 0;
			release(m, g, 0);
		} else {
			struct timespec ts;

			nexus_log(m->ctx, NEXUS_LOG_ERROR, "%s: cannot record "
				  "the children's states: %s", m->dev->name,
				  nexus_last_error());
			m->store_err = rc;
			m->gen_failed = g;
			release(m, g, rc);
			if (m->stop)
				break;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&m->cond, &m->lock, &ts);
		}
		pthread_cond_broadcast(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int mirror_state_start(struct mirror *m)
{
	uint64_t g = atomic_load(&m->gen_want);
	int rc;

	if (!m->store)
		return 0;
	m->recbuf = malloc(NX_STORE_MAX);
	if (!m->recbuf)
		return nexus_error(-ENOMEM, "out of memory");
	rc = put_encoded(m, encode_now(m, g));
	if (rc)
		return rc;
	atomic_store(&m->gen_done, g);
	rc = pthread_create(&m->store_thread, NULL, store_main, m);
	if (rc)
		return nexus_error(-rc, "mirror: cannot start a thread: %s",
				   strerror(rc));
	m->store_running = true;
	return 0;
}

void mirror_state_stop(struct mirror *m, bool clean)
{
	if (!m->store_running)
		return;
	if (clean) {
		/* no I/O is in flight: the children in sync are identical */
		pthread_mutex_lock(&m->lock);
		m->clean = true;
		atomic_fetch_add(&m->gen_want, 1);
		pthread_mutex_unlock(&m->lock);
		if (mirror_wait_durable(m))
			nexus_log(m->ctx, NEXUS_LOG_ERROR, "%s: cannot record "
				  "a clean close: %s", m->dev->name,
				  nexus_last_error());
	}
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->store_thread, NULL);
	m->store_running = false;
}

void mirror_complete_durable(struct mirror *m, struct mirror_io *mio,
			     int result)
{
	uint64_t g;

	if (!m->store || atomic_load(&m->gen_done) >= atomic_load(&m->gen_need)) {
		nexus_io_complete(mio->io, result);
		return;
	}
	pthread_mutex_lock(&m->lock);
	g = atomic_load(&m->gen_need);
	if (atomic_load(&m->gen_done) >= g) {
		pthread_mutex_unlock(&m->lock);
		nexus_io_complete(mio->io, result);
		return;
	}
	mio->gen = g;
	mio->err = result;
	mio->next = m->waiters;
	m->waiters = mio;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

void mirror_dispatch_durable(struct mirror *m, struct mirror_io *mio)
{
	uint64_t g;

	pthread_mutex_lock(&m->lock);
	/* a new generation: the record must hold what was just marked */
	g = atomic_fetch_add(&m->gen_want, 1) + 1;
	atomic_store(&m->gen_need, g);
	mio->gen = g;
	mio->err = 0;
	mio->predispatch = true;
	mio->next = m->waiters;
	m->waiters = mio;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

int mirror_owned(struct mirror *m)
{
	int rc = m->store ? nx_store_owned(m->store) : 0;

	if (rc && !atomic_exchange(&m->fenced, true))
		nexus_log(m->ctx, NEXUS_LOG_ERROR, "%s: no write reaches the "
			  "children from now on: %s", m->dev->name,
			  nexus_last_error());
	return rc;
}

int mirror_wait_durable(struct mirror *m)
{
	uint64_t g;
	int rc = 0;

	if (!m->store)
		return 0;
	pthread_mutex_lock(&m->lock);
	g = atomic_load(&m->gen_want);
	pthread_cond_broadcast(&m->cond);
	while (atomic_load(&m->gen_done) < g && m->gen_failed < g)
		pthread_cond_wait(&m->cond, &m->lock);
	if (atomic_load(&m->gen_done) < g)
		rc = m->store_err;
	pthread_mutex_unlock(&m->lock);
	return rc;
}
