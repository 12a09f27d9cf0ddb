/* SPDX-License-Identifier: MIT */
/* NBD source: connecting again (reconnect=N seconds).
 *
 * A connection that dies (the server went away, io-timeout) fails its
 * requests at once, as without reconnecting; then this thread tries
 * every N seconds to connect and negotiate again, blocking, off the
 * reactors.  The new connection must see the same export (size, flags,
 * block sizes); it takes the dead one's place on the same reactor
 * (nx_nbdc_replace), and the device's state follows (online again when
 * every connection is back).  I/O submitted meanwhile fails with
 * -ENOTCONN, as it would without reconnecting: nothing waits.  Closing
 * the device stops the thread; an attempt in progress ends within the
 * handshake timeout (timeout=, at most 10 s here). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "nbd-client.h"

#define ATTEMPT_MAX_S 10

struct nbdc_redial {
	struct nbdc_dev *d;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t pending; /* connection indexes to re-establish (bits) */
	bool stop;
};

/* Wait @p s seconds, or less when stopped; true if stopped. */
static bool nap(struct nbdc_redial *rd, unsigned s)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += s;
	pthread_mutex_lock(&rd->lock);
	while (!rd->stop &&
	       pthread_cond_timedwait(&rd->cond, &rd->lock, &ts) != ETIMEDOUT)
		;
	stop = rd->stop;
	pthread_mutex_unlock(&rd->lock);
	return stop;
}

/* One attempt for connection @p i: 0 when it is back. */
static int attempt(struct nbdc_dev *d, unsigned i)
{
	unsigned s = d->timeout_s < ATTEMPT_MAX_S ? d->timeout_s
						  : ATTEMPT_MAX_S;
	struct nbdc_conn *c;
	int rc = nx_nbdc_connect(d, i, nx_nbdc_now_ns() + s * 1000000000ull,
				 false, &c);

	if (rc)
		return rc;
	return nx_nbdc_replace(d, i, c);
}

static void *redial_main(void *arg)
{
	struct nbdc_redial *rd = arg;
	struct nbdc_dev *d = rd->d;

	for (;;) {
		uint64_t want;

		pthread_mutex_lock(&rd->lock);
		while (!rd->stop && !rd->pending)
			pthread_cond_wait(&rd->cond, &rd->lock);
		want = rd->pending;
		pthread_mutex_unlock(&rd->lock);
		if (nap(rd, d->reconnect_s))
			break;
		for (unsigned i = 0; i < 64; i++) {
			int rc;

			if (!(want & (1ull << i)))
				continue;
			rc = attempt(d, i);
			if (rc == -ESHUTDOWN)
				return NULL;
			if (rc) {
				nexus_log(d->ctx, NEXUS_LOG_WARN, "nbd: %s: "
					  "connection %u: reconnecting failed "
					  "(%s); again in %u s", d->server, i,
					  nexus_last_error(), d->reconnect_s);
				continue;
			}
			pthread_mutex_lock(&rd->lock);
			rd->pending &= ~(1ull << i);
			pthread_mutex_unlock(&rd->lock);
			nexus_log(d->ctx, NEXUS_LOG_INFO, "nbd: %s: connection "
				  "%u: reconnected", d->server, i);
			nx_nbdc_state_update(d, "reconnected");
		}
	}
	return NULL;
}

int nx_nbdc_redial_start(struct nbdc_dev *d)
{
	struct nbdc_redial *rd = calloc(1, sizeof(*rd));
	int rc;

	if (!rd)
		return nexus_error(-ENOMEM, "out of memory");
	rd->d = d;
	pthread_mutex_init(&rd->lock, NULL);
	pthread_cond_init(&rd->cond, NULL);
	rc = -pthread_create(&rd->thread, NULL, redial_main, rd);
	if (rc) {
		pthread_mutex_destroy(&rd->lock);
		pthread_cond_destroy(&rd->cond);
		free(rd);
		return nexus_error(rc, "nbd: cannot start the reconnecting "
				   "thread");
	}
	d->redial = rd;
	return 0;
}

void nx_nbdc_redial_request(struct nbdc_dev *d, unsigned index)
{
	struct nbdc_redial *rd = d->redial;

	if (!rd || index >= 64)
		return;
	pthread_mutex_lock(&rd->lock);
	rd->pending |= 1ull << index;
	pthread_cond_signal(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
}

void nx_nbdc_redial_stop(struct nbdc_dev *d)
{
	struct nbdc_redial *rd = d->redial;

	if (!rd)
		return;
	pthread_mutex_lock(&rd->lock);
	rd->stop = true;
	pthread_cond_signal(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
	pthread_join(rd->thread, NULL);
	pthread_mutex_destroy(&rd->lock);
	pthread_cond_destroy(&rd->cond);
	free(rd);
	d->redial = NULL;
}
