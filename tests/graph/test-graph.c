/* SPDX-License-Identifier: MIT */
/* Live device graphs: children attached and detached while writers
 * verify every block through the stack; a detached child with I/O in
 * flight; and every misuse refused with a message.  The transform is the
 * "tee" test plugin (tests/graph/tee-plugin.c). */
#include "../unit/unit.h"

#include <stdatomic.h>
#include <nexus/nexus_driver.h>

#ifndef PLUGIN_DIR
#error PLUGIN_DIR must name the directory of the tee plugin
#endif

#define BS 4096u
#define NBLK 1024u
#define NWRITERS 4

static atomic_uint attached_ev, detached_ev;

/* The last child event, as delivered (the event thread writes it). */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint32_t kind, reason;
	uint64_t seq;
	struct nexus_dev *dev, *child;
	char object[128], message[128];
} last;

static void count_fn(void *ud, const struct nexus_event_info *e)
{
	(void)ud;
	if (e->kind == NEXUS_EVENT_CHILD_ATTACHED)
		atomic_fetch_add(&attached_ev, 1);
	else if (e->kind == NEXUS_EVENT_CHILD_DETACHED)
		atomic_fetch_add(&detached_ev, 1);
	else
		return;
	pthread_mutex_lock(&last_lock);
	if (e->seq <= last.seq) /* in order, never twice */
		last.kind = 0;
	else
		last.kind = e->kind;
	last.seq = e->seq;
	last.reason = e->reason;
	last.dev = e->dev;
	last.child = e->child;
	snprintf(last.object, sizeof(last.object), "%s", e->object);
	snprintf(last.message, sizeof(last.message), "%s", e->message);
	pthread_mutex_unlock(&last_lock);
}

/* Wait for the child event number @p n (of both kinds) and check it. */
static void expect_child_event(unsigned n, uint32_t kind,
			       struct nexus_dev *parent,
			       struct nexus_dev *child, const char *pname,
			       const char *cname)
{
	for (int i = 0; i < 500 && atomic_load(&attached_ev) +
					   atomic_load(&detached_ev) < n; i++)
		unit_sleep_ms(2);
	pthread_mutex_lock(&last_lock);
	CU_ASSERT_EQUAL(atomic_load(&attached_ev) + atomic_load(&detached_ev),
			n);
	CU_ASSERT_EQUAL(last.kind, kind);
	CU_ASSERT_EQUAL(last.reason, NEXUS_REASON_USER);
	CU_ASSERT_PTR_EQUAL(last.dev, parent);
	CU_ASSERT_PTR_EQUAL(last.child, child);
	CU_ASSERT_STRING_EQUAL(last.object, pname);
	CU_ASSERT_STRING_EQUAL(last.message, cname);
	pthread_mutex_unlock(&last_lock);
}

static struct nexus_ctx *tee_ctx(unsigned reactors)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = NULL;

	o.reactors = reactors;
	o.log_fn = unit_quiet_log;
	o.event_fn = count_fn;
	EXPECT_OK(nexus_ctx_create(&o, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	EXPECT_OK(nexus_plugin_load(ctx, PLUGIN_DIR "/nexus-tee.so"));
	pthread_mutex_lock(&last_lock);
	last.seq = 0; /* a new context numbers from 1 */
	pthread_mutex_unlock(&last_lock);
	return ctx;
}

/* ---- writers that verify what they wrote ---- */

struct writer {
	pthread_t thread;
	struct nexus_dev *dev;
	unsigned id;
	atomic_uint started, done; /* passes */
	atomic_bool stop;
	unsigned bad;		   /* blocks read back wrong */
	int err;		   /* first I/O error */
	uint64_t seed[NBLK];	   /* what each owned block holds */
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned char *buf = malloc(BS), *back = malloc(BS);

	for (unsigned pass = 1; !atomic_load(&w->stop); pass++) {
		atomic_store(&w->started, pass);
		for (unsigned b = w->id; b < NBLK; b += NWRITERS) {
			uint64_t seed = (uint64_t)pass << 32 | b;
			ssize_t n;

			unit_fill(buf, BS, seed);
			n = nexus_dev_pwrite(w->dev, buf, BS, (uint64_t)b * BS, 0);
			if (n == BS)
				n = nexus_dev_pread(w->dev, back, BS,
						    (uint64_t)b * BS);
			if (n != BS) {
				if (!w->err)
					w->err = (int)n;
				continue;
			}
			w->seed[b] = seed;
			if (memcmp(buf, back, BS))
				w->bad++;
		}
		atomic_store(&w->done, pass);
	}
	free(buf);
	free(back);
	return NULL;
}

/* Wait until every writer finished a pass that started after now. */
static void wait_full_pass(struct writer *w)
{
	unsigned want[NWRITERS];

	for (unsigned t = 0; t < NWRITERS; t++)
		want[t] = atomic_load(&w[t].started) + 1;
	for (unsigned t = 0; t < NWRITERS; t++)
		while (atomic_load(&w[t].done) < want[t])
			unit_sleep_ms(1);
}

/* Every block of @p dev holds what its writer wrote last. */
static unsigned count_wrong(struct nexus_dev *dev, struct writer *w)
{
	unsigned char *buf = malloc(BS), *want = malloc(BS);
	unsigned wrong = 0;

	for (unsigned b = 0; b < NBLK; b++) {
		unit_fill(want, BS, w[b % NWRITERS].seed[b]);
		if (nexus_dev_pread(dev, buf, BS, (uint64_t)b * BS) != BS ||
		    memcmp(buf, want, BS))
			wrong++;
	}
	free(buf);
	free(want);
	return wrong;
}

static void test_swap_under_writers(void)
{
	struct nexus_ctx *ctx = tee_ctx(2);
	struct nexus_dev *tee = unit_open(ctx, "mem:size=4M | tee");
	struct nexus_dev *old = nexus_dev_child(tee, 0), *extra;
	struct writer *w = calloc(NWRITERS, sizeof(*w));
	unsigned rounds = unit_scale(6, 3);
	unsigned a0 = atomic_load(&attached_ev), d0 = atomic_load(&detached_ev);

	for (unsigned t = 0; t < NWRITERS; t++) {
		w[t].dev = tee;
		w[t].id = t;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&w[t].thread, NULL,
						     writer_main, &w[t]), 0);
	}
	wait_full_pass(w);
	for (unsigned i = 0; i < rounds; i++) {
		/* odd rounds: a child that is slow, so that the swap happens
		 * with I/O in flight on it */
		struct nexus_dev *nw = unit_open(ctx, i % 2 ?
			"mem:size=4M | fault:delay=200us,ops=write" :
			"mem:size=4M");

		EXPECT_OK(nexus_dev_attach_child(tee, nw));
		CU_ASSERT_EQUAL(nexus_dev_child_count(tee), 2);
		/* attached and detached again at once, I/O running */
		extra = unit_open(ctx, "mem:size=4M");
		EXPECT_OK(nexus_dev_attach_child(tee, extra));
		CU_ASSERT_EQUAL(nexus_dev_child_count(tee), 3);
		EXPECT_OK(nexus_dev_detach_child(tee, extra));
		EXPECT_OK(nexus_dev_close(extra));
		/* once everything was rewritten, the old child can go */
		wait_full_pass(w);
		EXPECT_OK(nexus_dev_detach_child(tee, old));
		CU_ASSERT_EQUAL(nexus_dev_child_count(tee), 1);
		CU_ASSERT_PTR_EQUAL(nexus_dev_child(tee, 0), nw);
		EXPECT_OK(nexus_dev_close(old));
		old = nw;
		wait_full_pass(w);
	}
	for (unsigned t = 0; t < NWRITERS; t++) {
		atomic_store(&w[t].stop, true);
		pthread_join(w[t].thread, NULL);
		CU_ASSERT_EQUAL(w[t].err, 0);
		CU_ASSERT_EQUAL(w[t].bad, 0);
	}
	CU_ASSERT_EQUAL(count_wrong(tee, w), 0);
	/* and the surviving child holds it all by itself */
	CU_ASSERT_EQUAL(count_wrong(nexus_dev_child(tee, 0), w), 0);
	EXPECT_OK(nexus_dev_close(tee));
	nexus_ctx_destroy(ctx);
	CU_ASSERT_EQUAL(atomic_load(&attached_ev) - a0, 2 * rounds);
	CU_ASSERT_EQUAL(atomic_load(&detached_ev) - d0, 2 * rounds);
	free(w);
}

/* ---- a detached child with I/O in flight ---- */

struct pending {
	atomic_int left, bad;
};

static void write_done(void *ud, int res)
{
	struct pending *p = ud;

	if (res != (int)BS)
		atomic_fetch_add(&p->bad, 1);
	atomic_fetch_sub(&p->left, 1);
}

static void test_detach_in_flight(void)
{
	struct nexus_ctx *ctx = tee_ctx(2);
	struct nexus_dev *tee = unit_open(ctx, "mem:size=1M | tee");
	struct nexus_dev *slow = unit_open(ctx, "mem:size=1M | "
					   "fault:delay=100ms,ops=write");
	unsigned char *buf = malloc(BS * 64);
	struct iovec iov[64];
	struct pending p;
	uint64_t t0, dt;

	atomic_init(&p.left, 64);
	atomic_init(&p.bad, 0);
	{
		unsigned n0 = atomic_load(&attached_ev) +
			      atomic_load(&detached_ev);

		EXPECT_OK(nexus_dev_attach_child(tee, slow));
		expect_child_event(n0 + 1, NEXUS_EVENT_CHILD_ATTACHED, tee,
				   slow, "tee", "fault:delay=100ms,ops=write");
	}
	for (unsigned i = 0; i < 64; i++) {
		struct nexus_io_req r = NEXUS_IO_REQ_INIT;

		unit_fill(buf + i * BS, BS, i);
		iov[i].iov_base = buf + i * BS;
		iov[i].iov_len = BS;
		r.op = NEXUS_OP_WRITE;
		r.iov = &iov[i];
		r.iovcnt = 1;
		r.offset = (uint64_t)i * BS;
		r.cb = write_done;
		r.user_data = &p;
		EXPECT_OK(nexus_dev_submit(tee, &r));
	}
	unit_sleep_ms(20); /* the writes have reached the slow child */
	t0 = unit_now_ns();
	EXPECT_OK(nexus_dev_detach_child(tee, slow));
	dt = unit_now_ns() - t0;
	expect_child_event(atomic_load(&attached_ev) * 2,
			   NEXUS_EVENT_CHILD_DETACHED, tee, slow, "tee",
			   "fault:delay=100ms,ops=write");
	/* detach waited for the child's I/O: by now every write is done
	 * (or about to call back: the tee completes after the child) */
	CU_ASSERT(dt >= 30 * 1000000ull);
	while (atomic_load(&p.left))
		unit_sleep_ms(1);
	CU_ASSERT_EQUAL(atomic_load(&p.bad), 0);
	/* the detached child is the caller's again, with the data */
	{
		unsigned char *back = malloc(BS * 64);

		CU_ASSERT_EQUAL(nexus_dev_pread(slow, back, BS * 64, 0),
				(ssize_t)BS * 64);
		CU_ASSERT_EQUAL(memcmp(back, buf, BS * 64), 0);
		free(back);
	}
	EXPECT_OK(nexus_dev_close(slow));
	EXPECT_OK(nexus_dev_close(tee));
	nexus_ctx_destroy(ctx);
	free(buf);
}

/* ---- misuse ---- */

struct from_reactor {
	struct nexus_dev *parent, *child;
	int rc;
	char msg[256];
};

static int attach_on_reactor(void *arg)
{
	struct from_reactor *f = arg;

	f->rc = nexus_dev_attach_child(f->parent, f->child);
	snprintf(f->msg, sizeof(f->msg), "%s", nexus_last_error());
	return 0;
}

static void test_misuse(void)
{
	struct nexus_ctx *ctx = tee_ctx(1);
	struct nexus_dev *tee = unit_open(ctx, "mem:size=1M | tee");
	struct nexus_dev *only = nexus_dev_child(tee, 0);
	struct nexus_dev *fault = unit_open(ctx, "mem:size=1M | fault");
	struct nexus_dev *m = unit_open(ctx, "mem:size=1M");
	struct nexus_dev *small = unit_open(ctx, "mem:size=64K");
	struct nexus_dev *kids[8];
	struct from_reactor f = { tee, m, 0, "" };

	EXPECT_ERR(nexus_dev_attach_child(NULL, m), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_attach_child(tee, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_detach_child(NULL, m), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_detach_child(tee, only), -EBUSY, "last");
	EXPECT_ERR(nexus_dev_detach_child(tee, m), -ENOENT, "not a child");
	EXPECT_ERR(nexus_dev_attach_child(fault, m), -EOPNOTSUPP, "fault");
	EXPECT_ERR(nexus_dev_attach_child(m, small), -EOPNOTSUPP, "mem");
	EXPECT_ERR(nexus_dev_detach_child(fault, nexus_dev_child(fault, 0)),
		   -EOPNOTSUPP, "fault");
	EXPECT_ERR(nexus_dev_attach_child(tee, tee), -EINVAL, "loop");
	/* a device another stack owns is not the caller's to give */
	EXPECT_ERR(nexus_dev_attach_child(tee, nexus_dev_child(fault, 0)),
		   -EBUSY, "");
	/* the driver refuses a child too small; it stays the caller's */
	EXPECT_ERR(nexus_dev_attach_child(tee, small), -EINVAL, "fewer");
	EXPECT_OK(nexus_dev_close(small));
	/* not from a reactor (attach waits for them) */
	CU_ASSERT_EQUAL(nexus_reactor_call(nexus_ctx_reactor(ctx, 0),
					   attach_on_reactor, &f), 0);
	CU_ASSERT_EQUAL(f.rc, -EDEADLK);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.msg, "reactor"));
	/* at most max_children (8) */
	for (unsigned i = 0; i < 7; i++) {
		kids[i] = unit_open(ctx, "mem:size=1M");
		EXPECT_OK(nexus_dev_attach_child(tee, kids[i]));
	}
	EXPECT_ERR(nexus_dev_attach_child(tee, m), -ENOSPC, "8");
	/* an attached child belongs to its parent */
	EXPECT_ERR(nexus_dev_close(kids[0]), -EBUSY, "");
	for (unsigned i = 0; i < 7; i++) {
		EXPECT_OK(nexus_dev_detach_child(tee, kids[i]));
		EXPECT_OK(nexus_dev_close(kids[i]));
	}
	CU_ASSERT_EQUAL(nexus_dev_child_count(tee), 1);
	EXPECT_OK(nexus_dev_close(m));
	EXPECT_OK(nexus_dev_close(fault));
	EXPECT_OK(nexus_dev_close(tee));
	nexus_ctx_destroy(ctx);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "swap children under verifying writers",
		  test_swap_under_writers },
		{ "detach with I/O in flight on the child",
		  test_detach_in_flight },
		{ "misuse is refused with a message", test_misuse },
		{ NULL, NULL },
	};

	return unit_main("graph", tests);
}
