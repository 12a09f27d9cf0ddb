/* SPDX-License-Identifier: MIT */
/* The context's event stream: every event once, in order, with its
 * fields copied; LOST when the callback falls behind; event_free exactly
 * once (also when creating the context fails); what a callback may not
 * do is refused with a message. */
#include "../unit/unit.h"

#include <semaphore.h>
#include <nexus/nexus_driver.h>

#define MAX_EV 8192

struct rec {
	uint32_t kind, reason;
	uint64_t seq, count;
	int old_state, new_state, error;
	struct nexus_dev *dev, *child;
	char object[256], message[256];
};

struct sink {
	pthread_mutex_t lock;
	struct rec ev[MAX_EV];
	unsigned n;
	int frees;
	bool after_free;  /* an event arrived after event_free */
	bool sized;	  /* every event had size >= ours */
	sem_t *gate;	  /* if set: the first event waits on it */
	struct nexus_ctx *ctx; /* destroy attempted from the callback */
	int destroy_tried;
	char destroy_msg[256];
};

static void sink_fn(void *ud, const struct nexus_event_info *e)
{
	struct sink *s = ud;
	struct rec *r;

	if (s->gate) {
		sem_t *g = s->gate;

		s->gate = NULL;
		sem_wait(g);
	}
	if (s->ctx && !s->destroy_tried) {
		s->destroy_tried = 1;
		nexus_ctx_destroy(s->ctx); /* refused: our own context */
		snprintf(s->destroy_msg, sizeof(s->destroy_msg), "%s",
			 nexus_last_error());
	}
	pthread_mutex_lock(&s->lock);
	if (s->frees)
		s->after_free = true;
	if (e->size < sizeof(*e))
		s->sized = false;
	if (s->n < MAX_EV) {
		r = &s->ev[s->n++];
		r->kind = e->kind;
		r->reason = e->reason;
		r->seq = e->seq;
		r->count = e->count;
		r->old_state = e->old_state;
		r->new_state = e->new_state;
		r->error = e->error;
		r->dev = e->dev;
		r->child = e->child;
		snprintf(r->object, sizeof(r->object), "%s", e->object);
		snprintf(r->message, sizeof(r->message), "%s", e->message);
	}
	pthread_mutex_unlock(&s->lock);
}

static void sink_free(void *ud)
{
	struct sink *s = ud;

	pthread_mutex_lock(&s->lock);
	s->frees++;
	pthread_mutex_unlock(&s->lock);
}

static struct sink *sink_new(void)
{
	struct sink *s = calloc(1, sizeof(*s));

	pthread_mutex_init(&s->lock, NULL);
	s->sized = true;
	return s;
}

static struct nexus_ctx *ctx_events(struct sink *s, unsigned reactors)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = NULL;

	o.reactors = reactors;
	o.log_fn = unit_quiet_log;
	o.event_fn = sink_fn;
	o.event_user_data = s;
	o.event_free = sink_free;
	EXPECT_OK(nexus_ctx_create(&o, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	return ctx;
}

/* Sequence numbers from 1 without gaps (LOST included). */
static void check_seq(const struct sink *s)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->ev[i].seq != i + 1) {
			fprintf(stderr, "\nevent %u has seq %llu\n", i,
				(unsigned long long)s->ev[i].seq);
			CU_FAIL("sequence numbers have a gap");
			return;
		}
}

static void test_state_events(void)
{
	struct sink *s = sink_new();
	struct nexus_ctx *ctx = ctx_events(s, 2);
	struct nexus_dev *a = unit_open(ctx, "mem:size=1M");
	struct nexus_dev *b = unit_open(ctx, "null:size=1M");
	static const int seq_a[] = { NEXUS_DEV_STATE_DEGRADED,
				     NEXUS_DEV_STATE_FAULTED,
				     NEXUS_DEV_STATE_ONLINE };
	unsigned na = 0, nb = 0;

	CU_ASSERT_EQUAL(nexus_dev_get_state(a), NEXUS_DEV_STATE_ONLINE);
	for (unsigned i = 0; i < 3; i++) {
		EXPECT_OK(nexus_dev_set_state(a, seq_a[i],
					      NEXUS_REASON_IO_ERROR, "why a"));
		EXPECT_OK(nexus_dev_set_state(b, NEXUS_DEV_STATE_OFFLINE,
					      NEXUS_REASON_USER, "why b"));
	}
	/* the same state again is no change: no event */
	EXPECT_OK(nexus_dev_set_state(a, NEXUS_DEV_STATE_ONLINE, 0, NULL));
	CU_ASSERT_EQUAL(nexus_dev_get_state(a), NEXUS_DEV_STATE_ONLINE);
	CU_ASSERT_EQUAL(nexus_dev_get_state(b), NEXUS_DEV_STATE_OFFLINE);
	EXPECT_ERR(nexus_dev_set_state(a, 99, 0, NULL), -EINVAL, "99");
	EXPECT_ERR(nexus_dev_set_state(NULL, 0, 0, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_get_state(NULL), -EINVAL, "NULL");
	EXPECT_OK(nexus_dev_close(a));
	EXPECT_OK(nexus_dev_close(b));
	nexus_ctx_destroy(ctx);
	/* delivered before event_free ran, which ran once */
	CU_ASSERT_EQUAL(s->frees, 1);
	CU_ASSERT_FALSE(s->after_free);
	CU_ASSERT_TRUE(s->sized);
	check_seq(s);
	for (unsigned i = 0; i < s->n; i++) {
		const struct rec *r = &s->ev[i];

		if (r->kind != NEXUS_EVENT_DEV_STATE)
			continue;
		/* by name: a handle reads NULL once its device is closed */
		if (!strcmp(r->object, "mem:size=1M") &&
		    r->new_state != NEXUS_DEV_STATE_CLOSING) {
			CU_ASSERT_FATAL(na < 3);
			CU_ASSERT_EQUAL(r->new_state, seq_a[na]);
			CU_ASSERT_EQUAL(r->old_state, na ? seq_a[na - 1]
							 : NEXUS_DEV_STATE_ONLINE);
			CU_ASSERT_EQUAL(r->reason, NEXUS_REASON_IO_ERROR);
			CU_ASSERT_STRING_EQUAL(r->message, "why a");
			CU_ASSERT_STRING_EQUAL(r->object, "mem:size=1M");
			na++;
		} else if (!strcmp(r->object, "null:size=1M") &&
			   r->new_state != NEXUS_DEV_STATE_CLOSING) {
			CU_ASSERT_EQUAL(r->new_state, NEXUS_DEV_STATE_OFFLINE);
			CU_ASSERT_EQUAL(r->old_state, NEXUS_DEV_STATE_ONLINE);
			CU_ASSERT_STRING_EQUAL(r->message, "why b");
			nb++;
		}
	}
	CU_ASSERT_EQUAL(na, 3);
	CU_ASSERT_EQUAL(nb, 1);
	free(s);
}

/* Events raised on the reactors (the data path's threads) arrive like
 * the others: in order per device, each once. */
struct flip {
	struct nexus_dev *dev;
	int rounds;
};

static int flip_on_reactor(void *arg)
{
	struct flip *f = arg;

	for (int i = 0; i < f->rounds; i++)
		nexus_dev_set_state(f->dev, i % 2 ? NEXUS_DEV_STATE_ONLINE
						  : NEXUS_DEV_STATE_DEGRADED,
				    NEXUS_REASON_NONE, NULL);
	return 0;
}

static void flip_post(void *arg)
{
	flip_on_reactor(arg);
}

static void test_reactor_events(void)
{
	struct sink *s = sink_new();
	struct nexus_ctx *ctx = ctx_events(s, 2);
	struct nexus_dev *d[2];
	struct flip f[2];
	unsigned n[2] = { 0, 0 };
	int last[2] = { NEXUS_DEV_STATE_ONLINE, NEXUS_DEV_STATE_ONLINE };

	d[0] = unit_open(ctx, "mem:size=64K");
	d[1] = unit_open(ctx, "mem:size=128K");
	for (int i = 0; i < 2; i++) {
		f[i].dev = d[i];
		f[i].rounds = 1000;
		CU_ASSERT_EQUAL(nexus_reactor_post(nexus_ctx_reactor(ctx, i),
						   flip_post, &f[i]), 0);
	}
	/* wait for both reactors to finish (a call after the posts) */
	for (int i = 0; i < 2; i++)
		nexus_reactor_call(nexus_ctx_reactor(ctx, i), flip_on_reactor,
				   &(struct flip){ d[i], 0 });
	for (int i = 0; i < 2; i++)
		EXPECT_OK(nexus_dev_close(d[i]));
	nexus_ctx_destroy(ctx);
	check_seq(s);
	for (unsigned i = 0; i < s->n; i++) {
		const struct rec *r = &s->ev[i];
		int k = !strcmp(r->object, "mem:size=64K")    ? 0
			: !strcmp(r->object, "mem:size=128K") ? 1
							      : -1;

		if (r->kind != NEXUS_EVENT_DEV_STATE || k < 0 ||
		    r->new_state == NEXUS_DEV_STATE_CLOSING)
			continue;
		/* each change starts where the previous one ended */
		CU_ASSERT_EQUAL(r->old_state, last[k]);
		last[k] = r->new_state;
		n[k]++;
	}
	CU_ASSERT_EQUAL(n[0], 1000);
	CU_ASSERT_EQUAL(n[1], 1000);
	CU_ASSERT_EQUAL(s->frees, 1);
	free(s);
}

/* A callback that stalls: later events are dropped, counted, and
 * reported by one LOST event in their place. */
static void test_lost(void)
{
	struct sink *s = sink_new();
	sem_t gate;
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	unsigned total = 3 * 4096, states = 0, lost_events = 0;
	uint64_t lost = 0;

	sem_init(&gate, 0, 0);
	s->gate = &gate;
	ctx = ctx_events(s, 1);
	dev = unit_open(ctx, "mem:size=64K");
	for (unsigned i = 0; i < total; i++)
		nexus_dev_set_state(dev, i % 2 ? NEXUS_DEV_STATE_ONLINE
					       : NEXUS_DEV_STATE_DEGRADED,
				    NEXUS_REASON_NONE, NULL);
	sem_post(&gate);
	/* once the queue drained, one more: it comes right after the LOST
	 * that reports the drops before it */
	for (int i = 0; i < 2000; i++) {
		unsigned n;

		pthread_mutex_lock(&s->lock);
		n = s->n;
		pthread_mutex_unlock(&s->lock);
		if (n > 4096)
			break;
		unit_sleep_ms(5);
	}
	nexus_dev_set_state(dev, NEXUS_DEV_STATE_FAULTED, NEXUS_REASON_NONE,
			    "last");
	EXPECT_OK(nexus_dev_close(dev));
	nexus_ctx_destroy(ctx);
	check_seq(s);
	for (unsigned i = 0; i < s->n; i++) {
		const struct rec *r = &s->ev[i];

		if (r->kind == NEXUS_EVENT_LOST) {
			lost += r->count;
			lost_events++;
			CU_ASSERT(r->count > 0);
		} else if (r->kind == NEXUS_EVENT_DEV_STATE &&
			   r->new_state != NEXUS_DEV_STATE_CLOSING &&
			   strcmp(r->message, "last")) {
			states++;
		}
	}
	/* everything raised is either delivered or counted as lost */
	CU_ASSERT(lost_events >= 1);
	CU_ASSERT_EQUAL(states + lost, total);
	CU_ASSERT(lost > 0);
	/* the event raised after the drops comes after every LOST */
	{
		unsigned last_lost = 0, last_one = 0;

		for (unsigned i = 0; i < s->n; i++) {
			if (s->ev[i].kind == NEXUS_EVENT_LOST)
				last_lost = i;
			if (!strcmp(s->ev[i].message, "last"))
				last_one = i;
		}
		CU_ASSERT(last_lost > 0);
		CU_ASSERT_EQUAL(last_one, last_lost + 1);
	}
	sem_destroy(&gate);
	free(s);
}

/* event_free runs once even when the context cannot be made; without
 * event_fn nothing is delivered, and event_free still runs once. */
static void test_free_once(void)
{
	struct sink *s = sink_new();
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = NULL;

	o.event_fn = sink_fn;
	o.event_user_data = s;
	o.event_free = sink_free;
	o.reactors = 5000; /* refused */
	CU_ASSERT(nexus_ctx_create(&o, &ctx) < 0);
	CU_ASSERT_PTR_NULL(ctx);
	CU_ASSERT_EQUAL(s->frees, 1);
	o.reactors = 1;
	o.event_fn = NULL;
	EXPECT_OK(nexus_ctx_create(&o, &ctx));
	nexus_ctx_destroy(ctx);
	CU_ASSERT_EQUAL(s->frees, 2);
	CU_ASSERT_EQUAL(s->n, 0);
	free(s);
}

/* A callback must not destroy its own context: refused with a message,
 * and the context goes on working. */
static void test_destroy_from_callback(void)
{
	struct sink *s = sink_new();
	struct nexus_ctx *ctx = ctx_events(s, 1);
	struct nexus_dev *dev = unit_open(ctx, "mem:size=64K");

	s->ctx = ctx;
	EXPECT_OK(nexus_dev_set_state(dev, NEXUS_DEV_STATE_OFFLINE,
				      NEXUS_REASON_USER, NULL));
	for (int i = 0; i < 200 && !s->n; i++)
		unit_sleep_ms(10);
	CU_ASSERT_EQUAL(s->destroy_tried, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(s->destroy_msg, "event callback"));
	CU_ASSERT_EQUAL(nexus_dev_get_state(dev), NEXUS_DEV_STATE_OFFLINE);
	EXPECT_OK(nexus_dev_close(dev));
	nexus_ctx_destroy(ctx);
	CU_ASSERT_EQUAL(s->frees, 1);
	free(s);
}

/* A device closed while events that name it wait in the queue: they
 * arrive with dev NULL and the name kept, never a dangling handle. */
static void test_closed_before_delivery(void)
{
	struct sink *s = sink_new();
	sem_t gate;
	struct nexus_ctx *ctx;
	struct nexus_dev *hold, *gone;
	unsigned named = 0;

	sem_init(&gate, 0, 0);
	ctx = ctx_events(s, 1);
	hold = unit_open(ctx, "mem:size=64K");
	gone = unit_open(ctx, "null:size=64K");
	s->gate = &gate; /* the next event waits: it names hold */
	EXPECT_OK(nexus_dev_set_state(hold, NEXUS_DEV_STATE_OFFLINE,
				      NEXUS_REASON_USER, NULL));
	for (int i = 0; i < 3; i++)
		EXPECT_OK(nexus_dev_set_state(gone, i % 2 ?
					      NEXUS_DEV_STATE_ONLINE :
					      NEXUS_DEV_STATE_FAULTED,
					      NEXUS_REASON_IO_ERROR, "x"));
	EXPECT_OK(nexus_dev_close(gone)); /* does not wait for the gate */
	sem_post(&gate);
	EXPECT_OK(nexus_dev_close(hold));
	nexus_ctx_destroy(ctx);
	check_seq(s);
	for (unsigned i = 0; i < s->n; i++) {
		if (strcmp(s->ev[i].object, "null:size=64K"))
			continue;
		named++;
		CU_ASSERT_PTR_NULL(s->ev[i].dev);
	}
	CU_ASSERT_EQUAL(named, 4); /* three changes and closing */
	sem_destroy(&gate);
	free(s);
}

static void test_names(void)
{
	CU_ASSERT_STRING_EQUAL(nexus_event_kind_name(NEXUS_EVENT_DEV_STATE),
			       "dev-state");
	CU_ASSERT_STRING_EQUAL(nexus_event_kind_name(NEXUS_EVENT_LOST), "lost");
	CU_ASSERT_STRING_EQUAL(nexus_event_kind_name(0), "unknown");
	CU_ASSERT_STRING_EQUAL(nexus_event_kind_name(1000), "unknown");
	CU_ASSERT_STRING_EQUAL(nexus_dev_state_name(NEXUS_DEV_STATE_FAULTED),
			       "faulted");
	CU_ASSERT_STRING_EQUAL(nexus_dev_state_name(-1), "unknown");
	CU_ASSERT_STRING_EQUAL(nexus_reason_name(NEXUS_REASON_TIMEOUT),
			       "timeout");
	CU_ASSERT_STRING_EQUAL(nexus_reason_name(4096), "unknown");
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "state changes: once, in order per device", test_state_events },
		{ "events raised on reactors", test_reactor_events },
		{ "a stalled callback: LOST with the count", test_lost },
		{ "event_free exactly once", test_free_once },
		{ "destroy from the event callback is refused",
		  test_destroy_from_callback },
		{ "a device closed before its events are delivered",
		  test_closed_before_delivery },
		{ "names of kinds, states, reasons", test_names },
		{ NULL, NULL },
	};

	return unit_main("events", tests);
}
