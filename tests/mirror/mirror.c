/* SPDX-License-Identifier: MIT */
/* mirror: the data path over real children (mem, file), fault handling,
 * timeouts, the controls and the listing.  Each test_* is one behaviour.
 * Usage: mirror [TEST]  (no argument: all). */
#include <pthread.h>
#include <unistd.h>

#include "mirror-test.h"

static char buf[256 * 1024], back[256 * 1024];

/* Child @p i of the mirror reads @p len bytes at @p off equal to @p want. */
static void child_has(struct nexus_dev *m, unsigned i, uint64_t off,
		      const char *want, size_t len)
{
	CHECK_RC(nexus_dev_pread(nexus_dev_child(m, i), back, len, off),
		 (long long)len);
	CHECK(!memcmp(back, want, len));
}

static void test_open(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;

	/* children that may differ, nothing says which is right */
	CHECK_RC(nexus_dev_open(ctx, "( mem:size=1M ; mem:size=1M ) | mirror",
				&dev), -EINVAL);
	CHECK(strstr(nexus_last_error(), "source="));
	CHECK_RC(nexus_dev_open(ctx, "( mem:size=1M ; mem:size=1M ) | "
				"mirror:source=2", &dev), -EINVAL);
	CHECK_RC(nexus_dev_open(ctx, "( mem:size=1M ; mem:size=1M ) | "
				"mirror:region-size=12K,assume-clean=on", &dev),
		 -EINVAL);
	CHECK_RC(nexus_dev_open(ctx, "( mem:size=1M ; mem:size=1M ) | "
				"mirror:read-policy=random,assume-clean=on",
				&dev), -EINVAL);
	/* smallest child's size; one child needs nothing */
	CHECK_RC(nexus_dev_open(ctx, "( mem:size=3M ; mem:size=2M ; "
				"mem:size=4M ) | mirror:assume-clean=on", &dev),
		 0);
	CHECK_RC(nexus_dev_get_info(dev, &in), 0);
	CHECK(in.dev_size == 2 * MB);
	CHECK_RC(nexus_dev_get_state(dev), NEXUS_DEV_STATE_ONLINE);
	CHECK_RC(nexus_mirror_get_child(dev, 2, &(struct nexus_mirror_child)
					NEXUS_MIRROR_CHILD_INIT), 3);
	CHECK_RC(nexus_mirror_get_child(dev, 3, &(struct nexus_mirror_child)
					NEXUS_MIRROR_CHILD_INIT), -ENOENT);
	CHECK_RC(nexus_dev_close(dev), 0);
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M | mirror", &dev), 0);
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* Writes, WRITE_ZEROES, TRIM and FLUSH reach every child; reads are
 * spread as the policy says. */
static void test_fanout(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct nexus_mirror_child a, b;
	static char zero[64 * 1024];

	CHECK_RC(nexus_dev_open(ctx, "( mem:size=8M ; file:create=on,size=8M,"
				"path=/dev/shm/nexus-mirror-test.img ) | "
				"mirror:assume-clean=on", &dev), 0);
	unlink("/dev/shm/nexus-mirror-test.img");
	fill(buf, sizeof(buf), 1);
	CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf), MB, 0), sizeof(buf));
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, NEXUS_IO_FUA), 4096);
	child_has(dev, 0, MB, buf, sizeof(buf));
	child_has(dev, 1, MB, buf, sizeof(buf));
	CHECK_RC(nexus_dev_write_zeroes(dev, MB, sizeof(zero), 0), 0);
	child_has(dev, 0, MB, zero, sizeof(zero));
	child_has(dev, 1, MB, zero, sizeof(zero));
	CHECK_RC(nexus_dev_trim(dev, MB + sizeof(zero), 4096, 0), 0);
	CHECK_RC(nexus_dev_flush(dev), 0);
	a = child(dev, 0);
	b = child(dev, 1);
	CHECK(a.writes == 5 && b.writes == 5);
	/* round robin */
	for (int i = 0; i < 100; i++)
		CHECK_RC(nexus_dev_pread(dev, back, 4096, MB), 4096);
	a = child(dev, 0);
	b = child(dev, 1);
	printf("round robin: %llu / %llu reads\n", (unsigned long long)a.reads,
	       (unsigned long long)b.reads);
	CHECK(a.reads == 50 && b.reads == 50);
	/* prefer one */
	CHECK_RC(nexus_dev_control(dev, "mirror.prefer", "1"), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.read-policy", "prefer"), 0);
	for (int i = 0; i < 100; i++)
		CHECK_RC(nexus_dev_pread(dev, back, 4096, MB), 4096);
	CHECK(child(dev, 0).reads == 50 && child(dev, 1).reads == 150);
	/* least pending: one at a time, so any child; all reads served */
	CHECK_RC(nexus_dev_control(dev, "mirror.read-policy", "least-pending"),
		 0);
	for (int i = 0; i < 100; i++)
		CHECK_RC(nexus_dev_pread(dev, back, 4096, MB), 4096);
	CHECK(child(dev, 0).reads + child(dev, 1).reads == 300);
	CHECK_RC(nexus_dev_control(dev, "mirror.read-policy", "bogus"),
		 -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "mirror.prefer", "2"), -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "mirror.nothing", "1"), -ENOENT);
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* A child that fails a write is faulted, the write succeeds; a failed
 * read is retried on the other child; the last in-sync child is never
 * faulted: its failures fail the I/O. */
static void test_fault(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct nexus_mirror_child a;

	CHECK_RC(nexus_dev_open(ctx, "( mem:size=4M | fault:enable=off ; "
				"mem:size=4M ) | mirror:assume-clean=on", &dev),
		 0);
	fill(buf, 65536, 2);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 65536, 0, 0), 65536);
	a = child(dev, 0);
	CHECK(a.state == NEXUS_DEV_STATE_FAULTED);
	CHECK(a.reason == NEXUS_REASON_IO_ERROR && a.error == -EIO);
	CHECK(a.dirty_bytes == MB && a.partial_ok);
	CHECK_RC(nexus_dev_get_state(dev), NEXUS_DEV_STATE_DEGRADED);
	child_has(dev, 1, 0, buf, 65536);
	/* reads now only from child 1 */
	for (int i = 0; i < 10; i++)
		CHECK_RC(nexus_dev_pread(dev, back, 65536, 0), 65536);
	CHECK(!memcmp(back, buf, 65536));
	CHECK(child(dev, 0).reads == 0 && child(dev, 1).reads == 10);
	/* the last in-sync child refuses to be taken out */
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), -EBUSY);
	CHECK_RC(nexus_dev_close(dev), 0);

	/* reads: the failing child is faulted, the read served by the other */
	CHECK_RC(nexus_dev_open(ctx, "( mem:size=4M | fault:enable=off,ops=read"
				" ; mem:size=4M ) | mirror:assume-clean=on,"
				"read-policy=prefer,prefer=0", &dev), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 65536, 0, 0), 65536);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	memset(back, 0, 65536);
	CHECK_RC(nexus_dev_pread(dev, back, 65536, 0), 65536);
	CHECK(!memcmp(back, buf, 65536));
	a = child(dev, 0);
	CHECK(a.state == NEXUS_DEV_STATE_FAULTED && a.errors == 1);
	CHECK(child(dev, 1).reads == 1);
	CHECK_RC(nexus_dev_close(dev), 0);

	/* the only child in sync fails: the I/O fails, the child stays */
	CHECK_RC(nexus_dev_open(ctx, "mem:size=4M | fault:enable=off | mirror",
				&dev), 0);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), -EIO);
	CHECK_RC(nexus_dev_pread(dev, back, 4096, 0), -EIO);
	CHECK(child(dev, 0).state == NEXUS_DEV_STATE_ONLINE);
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* A child that stops answering is faulted within the timeout and the
 * I/O goes on with the other. */
static void test_timeout(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct nexus_mirror_child a;
	double t0, dt;

	CHECK_RC(nexus_dev_open(ctx, "( mem:size=4M | fault:enable=off,"
				"delay=3s,ops=read+write ; mem:size=4M ) | "
				"mirror:assume-clean=on,timeout-ms=300,"
				"read-policy=prefer,prefer=0", &dev), 0);
	fill(buf, 8192, 3);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 8192, 0, 0), 8192);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	t0 = now_s();
	CHECK_RC(nexus_dev_pread(dev, back, 8192, 0), 8192);
	dt = now_s() - t0;
	printf("read with a hung child: %.3f s\n", dt);
	CHECK(!memcmp(back, buf, 8192));
	CHECK(dt >= 0.29 && dt < 0.6);
	a = child(dev, 0);
	CHECK(a.state == NEXUS_DEV_STATE_FAULTED);
	CHECK(a.reason == NEXUS_REASON_TIMEOUT && a.timeouts == 1);
	CHECK(a.in_flight == 1); /* still out on the hung child */
	/* it cannot come back while that request is out */
	CHECK_RC(nexus_dev_control(dev, "mirror.child.0", "online"), -EBUSY);
	/* writes go on at full speed without it */
	t0 = now_s();
	for (int i = 0; i < 50; i++)
		CHECK_RC(nexus_dev_pwrite(dev, buf, 8192, 8192, 0), 8192);
	CHECK(now_s() - t0 < 0.5);
	CHECK_RC(nexus_dev_close(dev), 0); /* waits for the hung leg */

	/* a write whose one child hangs completes after the timeout */
	CHECK_RC(nexus_dev_open(ctx, "( mem:size=4M ; mem:size=4M | fault:"
				"enable=off,delay=2s ) | mirror:assume-clean=on,"
				"timeout-ms=200", &dev), 0);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	t0 = now_s();
	CHECK_RC(nexus_dev_pwrite(dev, buf, 8192, 0, 0), 8192);
	dt = now_s() - t0;
	printf("write with a hung child: %.3f s\n", dt);
	CHECK(dt >= 0.19 && dt < 0.5);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_FAULTED);
	CHECK(child(dev, 1).reason == NEXUS_REASON_TIMEOUT);
	/* the caller has its buffer back: the late leg must not read it */
	memset(buf, 0x5a, 8192);
	for (int i = 0; i < 500 && child(dev, 1).in_flight; i++)
		usleep(10000);
	CHECK(child(dev, 1).in_flight == 0);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "off"), 0);
	fill(buf, 8192, 3);
	CHECK_RC(nexus_dev_pread(nexus_dev_child(dev, 1), back, 8192, 0), 8192);
	CHECK(!memcmp(back, buf, 8192)); /* what was written, not 0x5a */
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* Offline and fault by the user; bad controls. */
static void test_control(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;

	CHECK_RC(nexus_dev_open(ctx, "( mem:size=4M ; mem:size=4M ; mem:size=4M"
				" ) | mirror:assume-clean=on,rebuild=manual",
				&dev), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), 0);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_OFFLINE);
	CHECK(child(dev, 1).reason == NEXUS_REASON_USER);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.2", "fault"), 0);
	CHECK(child(dev, 2).state == NEXUS_DEV_STATE_FAULTED);
	CHECK_RC(nexus_dev_get_state(dev), NEXUS_DEV_STATE_DEGRADED);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.0", "offline"), -EBUSY);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.3", "offline"), -ENOENT);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.x", "offline"), -ENOENT);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "sideways"),
		 -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "mirror.rebuild", "pause"), -ENOENT);
	CHECK_RC(nexus_dev_control(dev, "mirror.rate", "fast"), -EINVAL);
	CHECK_RC(nexus_dev_control(dev, "mirror.rate", "10M"), 0);
	/* writes while out: reads still right, dirty map grows */
	fill(buf, 4096, 4);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 3 * MB, 0), 4096);
	CHECK(child(dev, 1).dirty_bytes == MB);
	CHECK(child(dev, 0).dirty_bytes == 0);
	CHECK_RC(nexus_dev_close(dev), 0);
	CHECK_RC(nexus_mirror_get_child(NULL, 0, &(struct nexus_mirror_child)
					NEXUS_MIRROR_CHILD_INIT), -EINVAL);
	CHECK_RC(nexus_dev_open(ctx, "mem:size=1M", &dev), 0);
	CHECK_RC(nexus_mirror_get_child(dev, 0, &(struct nexus_mirror_child)
					NEXUS_MIRROR_CHILD_INIT), -ENOENT);
	CHECK_RC(nexus_dev_close(dev), 0);
}

struct seen {
	pthread_mutex_t lock;
	int child_faulted, mirror_degraded, child_online, mirror_online;
	int partial_said;
};

static void on_event(void *ud, const struct nexus_event_info *ev)
{
	struct seen *s = ud;

	if (ev->kind != NEXUS_EVENT_DEV_STATE)
		return;
	pthread_mutex_lock(&s->lock);
	if (ev->child && ev->new_state == NEXUS_DEV_STATE_FAULTED &&
	    ev->reason == NEXUS_REASON_IO_ERROR && ev->error == -EIO)
		s->child_faulted++;
	if (ev->child && ev->new_state == NEXUS_DEV_STATE_REBUILDING &&
	    strstr(ev->message, "partial rebuild of 1048576 bytes"))
		s->partial_said++;
	if (ev->child && ev->new_state == NEXUS_DEV_STATE_ONLINE &&
	    ev->old_state == NEXUS_DEV_STATE_REBUILDING)
		s->child_online++;
	if (!ev->child && ev->new_state == NEXUS_DEV_STATE_DEGRADED)
		s->mirror_degraded++;
	if (!ev->child && ev->new_state == NEXUS_DEV_STATE_ONLINE &&
	    ev->old_state == NEXUS_DEV_STATE_DEGRADED)
		s->mirror_online++;
	pthread_mutex_unlock(&s->lock);
}

/* A fault and a rebuild raise the child's and the mirror's DEV_STATE
 * events, each once; the rebuild's says it is partial and its size. */
static void test_events(struct nexus_ctx *unused)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	static struct seen s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0 };
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	struct nexus_mirror_rebuild rb = NEXUS_MIRROR_REBUILD_INIT;

	(void)unused;
	o.reactors = 1;
	o.event_fn = on_event;
	o.event_user_data = &s;
	CHECK_RC(nexus_ctx_create(&o, &ctx), 0);
	CHECK_RC(nexus_dev_open(ctx, "( mem:size=4M | fault:enable=off ; "
				"mem:size=4M ) | mirror:assume-clean=on", &dev),
		 0);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), 4096);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "off"), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.0", "online"), 0);
	for (int i = 0; i < 1000; i++) {
		CHECK_RC(nexus_mirror_get_rebuild(dev, &rb), 0);
		if (rb.completed)
			break;
		usleep(10000);
	}
	CHECK(rb.completed == 1);
	CHECK_RC(nexus_dev_close(dev), 0);
	nexus_ctx_destroy(ctx); /* delivers what is queued */
	printf("events: child faulted %d, degraded %d, child online %d, "
	       "mirror online %d\n", s.child_faulted, s.mirror_degraded,
	       s.child_online, s.mirror_online);
	CHECK(s.child_faulted == 1 && s.mirror_degraded == 1);
	CHECK(s.child_online == 1 && s.mirror_online == 1);
	CHECK(s.partial_said == 1); /* the event says which rebuild, why */
}

static const struct mirror_test tests[] = {
	{ "open", test_open },	     { "fanout", test_fanout },
	{ "fault", test_fault },     { "timeout", test_timeout },
	{ "control", test_control }, { "events", test_events },
};

int main(int argc, char **argv)
{
	return run_tests(tests, sizeof(tests) / sizeof(tests[0]), test_ctx(2),
			 argc, argv);
}
