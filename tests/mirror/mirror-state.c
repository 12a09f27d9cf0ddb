/* SPDX-License-Identifier: MIT */
/* mirror: the state record (written before the I/O that faulted a child
 * is acknowledged, read back at open, refused when it does not fit) and
 * rebuilds (full, partial with only the dirty regions copied, ordered
 * against concurrent writes, rate limit, pause and resume).
 * Usage: mirror-state [TEST]  (no argument: all). */
#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "mirror-test.h"

static char dir[] = "/tmp/nexus-mirror-state.XXXXXX";
static char buf[256 * 1024], back[256 * 1024];

static const char *path(const char *name)
{
	static char p[4][256];
	static unsigned k;
	char *s = p[k++ % 4];

	snprintf(s, 256, "%s/%s", dir, name);
	return s;
}

static char *slurp(const char *file)
{
	static char text[4096];
	int fd = open(file, O_RDONLY);
	ssize_t n;

	CHECK(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	CHECK(n >= 0);
	text[n] = 0;
	return text;
}

static void spit(const char *file, const char *text)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

/* Open @p text with each '@' replaced by the scratch directory. */
static struct nexus_dev *open_pl(struct nexus_ctx *ctx, const char *text,
				 int want)
{
	char pl[1024];
	size_t n = 0;
	struct nexus_dev *dev = NULL;

	for (const char *t = text; *t && n < sizeof(pl) - 64; t++) {
		if (*t == '@') {
			memcpy(pl + n, dir, strlen(dir));
			n += strlen(dir);
		} else {
			pl[n++] = *t;
		}
	}
	pl[n] = 0;
	CHECK_RC(nexus_dev_open(ctx, pl, &dev), want);
	return dev;
}

/* The children of @p dev hold the same @p size bytes. */
static void same_children(struct nexus_dev *dev, uint64_t size)
{
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		CHECK_RC(nexus_dev_pread(nexus_dev_child(dev, 0), buf,
					 sizeof(buf), off), sizeof(buf));
		CHECK_RC(nexus_dev_pread(nexus_dev_child(dev, 1), back,
					 sizeof(back), off), sizeof(back));
		if (memcmp(buf, back, sizeof(buf))) {
			fprintf(stderr, "children differ in [%llu, +256K)\n",
				(unsigned long long)off);
			exit(1);
		}
	}
}

/* Wait (at most 60 s) for rebuild number @p n to finish. */
static struct nexus_mirror_rebuild wait_rebuild(struct nexus_dev *dev,
						uint64_t n)
{
	struct nexus_mirror_rebuild rb = NEXUS_MIRROR_REBUILD_INIT;

	for (int i = 0; i < 6000; i++) {
		CHECK_RC(nexus_mirror_get_rebuild(dev, &rb), 0);
		if (rb.child < 0 && (rb.completed >= n || rb.last_result))
			break;
		usleep(10000);
	}
	CHECK(rb.child < 0);
	CHECK_RC(rb.last_result, 0);
	CHECK(rb.completed == n);
	return rb;
}

#define AB "( file:@/a,create=on,size=4M ; file:@/b,create=on,size=4M ) | "

static void test_record(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	char *rec;

	/* no record and nothing says which child is right */
	open_pl(ctx, AB "mirror:state=@/rec", -EINVAL);
	CHECK(strstr(nexus_last_error(), "source="));
	dev = open_pl(ctx, AB "mirror:state=@/rec,assume-clean=on", 0);
	rec = slurp(path("rec"));
	printf("%s", rec);
	CHECK(strstr(rec, "child 0 in-sync") && strstr(rec, "child 1 in-sync"));
	/* the record says child 1 is out before the control returns */
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), 0);
	CHECK(strstr(slurp(path("rec")), "child 1 out-of-sync"));
	CHECK_RC(nexus_dev_close(dev), 0);
	/* reopened: only child 0 is a source */
	dev = open_pl(ctx, AB "mirror:state=@/rec,rebuild=manual", 0);
	CHECK(child(dev, 0).state == NEXUS_DEV_STATE_ONLINE);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_FAULTED);
	/* what it missed is in the record: nothing */
	CHECK(child(dev, 1).partial_ok && child(dev, 1).dirty_bytes == 0);
	CHECK_RC(nexus_dev_get_state(dev), NEXUS_DEV_STATE_DEGRADED);
	for (int i = 0; i < 20; i++)
		CHECK_RC(nexus_dev_pread(dev, back, 4096, 0), 4096);
	CHECK(child(dev, 1).reads == 0);
	CHECK_RC(nexus_dev_close(dev), 0);
	/* records that do not fit */
	spit(path("rec"), "hello\n");
	open_pl(ctx, AB "mirror:state=@/rec", -EINVAL);
	CHECK(strstr(nexus_last_error(), "not a mirror state record"));
	spit(path("rec"), "nexus-mirror-state 1\ngeneration 3\nchildren 3\n"
			  "child 0 in-sync x\nchild 1 in-sync y\n"
			  "child 2 in-sync z\n");
	open_pl(ctx, AB "mirror:state=@/rec", -EINVAL);
	CHECK(strstr(nexus_last_error(), "3 children"));
	spit(path("rec"), "nexus-mirror-state 1\ngeneration 3\nchildren 2\n"
			  "child 0 out-of-sync x\nchild 1 out-of-sync y\n");
	open_pl(ctx, AB "mirror:state=@/rec", -EIO);
	/* source= overrides a record */
	dev = open_pl(ctx, AB "mirror:state=@/rec,source=1,rebuild=manual",
		      0);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_ONLINE);
	CHECK(child(dev, 0).state == NEXUS_DEV_STATE_FAULTED);
	CHECK_RC(nexus_dev_close(dev), 0);
	CHECK(strstr(slurp(path("rec")), "child 1 in-sync"));
	CHECK(strstr(slurp(path("rec")), "generation 5"));
	CHECK(strstr(slurp(path("rec")), "\nclean\n")); /* closed */
	/* not closed cleanly (a crash): the children in sync may differ
	 * where writes were in flight; the first is the truth */
	spit(path("rec"), "nexus-mirror-state 1\ngeneration 3\nchildren 2\n"
			  "child 0 in-sync x\nchild 1 in-sync y\n");
	dev = open_pl(ctx, AB "mirror:state=@/rec,rebuild=manual", 0);
	CHECK(child(dev, 0).state == NEXUS_DEV_STATE_ONLINE);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_FAULTED);
	CHECK(!child(dev, 1).partial_ok);
	CHECK(!strstr(slurp(path("rec")), "clean")); /* open: not clean */
	CHECK_RC(nexus_dev_close(dev), 0);
	/* a state file in a directory that does not exist */
	open_pl(ctx, AB "mirror:state=@/no/such/dir/rec,assume-clean=on",
		-ENOENT);
}

/* The write that faults a child is acknowledged only once the record
 * says so. */
static void test_fault_recorded(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;

	dev = open_pl(ctx, "( file:@/a,create=on,size=4M | fault:enable=off ;"
		      " file:@/b,create=on,size=4M ) | mirror:state=@/rec2,"
		      "assume-clean=on,rebuild=manual", 0);
	CHECK(strstr(slurp(path("rec2")), "child 0 in-sync"));
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	fill(buf, 4096, 9);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), 4096);
	CHECK(strstr(slurp(path("rec2")), "child 0 out-of-sync"));
	CHECK(strstr(slurp(path("rec2")), "child 1 in-sync"));
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* The record cannot be written: the write that faulted a child fails
 * instead of being acknowledged, and so do the writes that skip it;
 * once the store works again, writes are acknowledged again. */
static void test_store_fails(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	char tmp[300];
	double t0;

	dev = open_pl(ctx, "( file:@/g,create=on,size=4M | fault:enable=off ;"
		      " file:@/h,create=on,size=4M ) | mirror:state=@/rec6,"
		      "assume-clean=on,rebuild=manual", 0);
	/* a directory where the next record is written: every put fails,
	 * for root too */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path("rec6"));
	CHECK(mkdir(tmp, 0700) == 0);
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	fill(buf, 4096, 11);
	CHECK(nexus_dev_pwrite(dev, buf, 4096, 0, 0) < 0);
	CHECK(child(dev, 0).state == NEXUS_DEV_STATE_FAULTED);
	CHECK(strstr(slurp(path("rec6")), "child 0 in-sync"));
	CHECK(nexus_dev_pwrite(dev, buf, 4096, 8192, 0) < 0);
	CHECK(nexus_dev_control(dev, "mirror.child.1", "offline") < 0);
	CHECK(rmdir(tmp) == 0);
	t0 = now_s();
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 8192, 0), 4096);
	printf("store back: a write waited %.2f s for the record\n",
	       now_s() - t0);
	CHECK(now_s() - t0 < 3);
	CHECK(strstr(slurp(path("rec6")), "child 0 out-of-sync"));
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* The dirty regions are in the record before the writes that dirtied
 * them are acknowledged: reopened (as after a crash), the rebuild is
 * partial and copies only them. */
static void test_persisted_map(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct nexus_mirror_rebuild rb;
	char *rec;

	dev = open_pl(ctx, "( file:@/i,create=on,size=16M ; file:@/j,create=on,"
		      "size=16M ) | mirror:state=@/rec7,assume-clean=on", 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), 0);
	fill(buf, 4096, 12);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 2 * MB, 0), 4096);
	rec = slurp(path("rec7"));
	printf("%s", rec);
	CHECK(strstr(rec, "dirty 1 region 20 2-3\n"));
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 3 * MB, 0), 4096);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 9 * MB + 4096, 0), 4096);
	CHECK(strstr(slurp(path("rec7")), "dirty 1 region 20 2-4,9-10\n"));
	CHECK_RC(nexus_dev_close(dev), 0);
	dev = open_pl(ctx, "( file:@/i ; file:@/j ) | mirror:state=@/rec7,"
		      "rebuild=manual", 0);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_FAULTED);
	CHECK(child(dev, 1).partial_ok);
	CHECK(child(dev, 1).dirty_bytes == 3 * MB);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "online"), 0);
	rb = wait_rebuild(dev, 1);
	CHECK(rb.partial && rb.progress.bytes_total == 3 * MB);
	CHECK(!strstr(slurp(path("rec7")), "dirty"));
	same_children(dev, 16 * MB);
	CHECK_RC(nexus_dev_close(dev), 0);
	/* a map of another region size does not apply: full rebuild */
	dev = open_pl(ctx, "( file:@/i ; file:@/j ) | mirror:state=@/rec7", 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, 0, 0), 4096);
	CHECK_RC(nexus_dev_close(dev), 0);
	dev = open_pl(ctx, "( file:@/i ; file:@/j ) | mirror:state=@/rec7,"
		      "region-size=64K,rebuild=manual", 0);
	CHECK(!child(dev, 1).partial_ok);
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* Full rebuild from the source child at open (rebuild=auto). */
static void test_full(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct nexus_mirror_rebuild rb;

	dev = open_pl(ctx, "file:@/c,create=on,size=8M", 0);
	for (uint64_t off = 0; off < 8 * MB; off += sizeof(buf)) {
		fill(buf, sizeof(buf), (unsigned)(off >> 18));
		CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf), off, 0),
			 sizeof(buf));
	}
	CHECK_RC(nexus_dev_close(dev), 0);
	dev = open_pl(ctx, "( file:@/c ; file:@/d,create=on,size=8M ) | "
		      "mirror:source=0,state=@/rec3", 0);
	rb = wait_rebuild(dev, 1);
	printf("full rebuild: %llu of %llu bytes, %llu data\n",
	       (unsigned long long)rb.progress.bytes_done,
	       (unsigned long long)rb.progress.bytes_total,
	       (unsigned long long)rb.progress.data_bytes);
	CHECK(!rb.partial);
	CHECK(rb.progress.bytes_total == 8 * MB);
	CHECK(rb.progress.data_bytes == 8 * MB);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_ONLINE);
	CHECK_RC(nexus_dev_get_state(dev), NEXUS_DEV_STATE_ONLINE);
	CHECK(strstr(slurp(path("rec3")), "child 1 in-sync"));
	same_children(dev, 8 * MB);
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* Partial rebuild: only the regions written while the child was
 * offline are copied. */
static void test_partial(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct nexus_mirror_rebuild rb;
	static const uint64_t at[] = { 0, 10 * MB + 5, 41 * MB - 512 };

	CHECK_RC(nexus_dev_open(ctx, "( mem:size=64M ; mem:size=64M ) | "
				"mirror:assume-clean=on,region-size=1M", &dev),
		 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), 0);
	for (unsigned i = 0; i < 3; i++) {
		fill(buf, 4096, i + 20);
		CHECK_RC(nexus_dev_pwrite(dev, buf, 4096, at[i] & ~511ull, 0),
			 4096);
	}
	fill(buf, sizeof(buf), 30); /* 1.25 MiB across regions 20..21 */
	for (unsigned k = 0; k < 5; k++)
		CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf),
					  20 * MB + 512 * 1024 + k * sizeof(buf),
					  0), sizeof(buf));
	printf("dirty: %llu bytes\n",
	       (unsigned long long)child(dev, 1).dirty_bytes);
	/* regions 0, 10, 20, 21, 40, 41 (the write at 41M-512 crosses) */
	CHECK(child(dev, 1).dirty_bytes == 6 * MB);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "online"), 0);
	rb = wait_rebuild(dev, 1);
	printf("partial rebuild: %llu bytes (%llu data, %llu zero)\n",
	       (unsigned long long)rb.progress.bytes_done,
	       (unsigned long long)rb.progress.data_bytes,
	       (unsigned long long)rb.progress.zero_bytes);
	CHECK(rb.partial);
	CHECK(rb.progress.bytes_total == 6 * MB);
	CHECK(rb.progress.bytes_done == 6 * MB);
	CHECK(child(dev, 1).dirty_bytes == 0);
	same_children(dev, 64 * MB);
	CHECK_RC(nexus_dev_close(dev), 0);
}

struct writer {
	struct nexus_dev *dev;
	uint64_t base, span;
	atomic_bool stop;
	unsigned n;
};

/* Random writes of 4 KiB .. 64 KiB in [base, base + span). */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	static _Thread_local char wb[65536];
	uint64_t x = w->base + 1;

	for (unsigned i = 0; i < 100000 && !atomic_load(&w->stop); i++) {
		uint64_t len, off;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		len = 4096u << ((x >> 20) % 5);
		off = w->base + ((x >> 33) % ((w->span - len) / 4096)) * 4096;
		fill(wb, len, (unsigned)x);
		CHECK_RC(nexus_dev_pwrite(w->dev, wb, len, off, 0),
			 (long long)len);
		w->n++;
	}
	return NULL;
}

/* A full rebuild while two threads write: the rebuild never puts older
 * data over a newer write (the children end identical); rate limit,
 * pause and resume at run time. */
static void test_concurrent(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;
	struct nexus_mirror_rebuild rb = NEXUS_MIRROR_REBUILD_INIT;
	struct writer w[2];
	pthread_t th[2];
	uint64_t done0;
	double t0 = now_s(), dt;

	dev = open_pl(ctx, "( file:@/e,create=on,size=32M ; file:@/f,"
		      "create=on,size=32M ) | mirror:assume-clean=on,"
		      "rebuild=manual,state=@/rec4", 0);
	fill(buf, sizeof(buf), 77);
	for (uint64_t off = 0; off < 32 * MB; off += sizeof(buf))
		CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf), off, 0),
			 sizeof(buf));
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.rate", "16M"), 0);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct writer){ dev, (uint64_t)i * 16 * MB, 16 * MB,
					false, 0 };
		CHECK(!pthread_create(&th[i], NULL, writer_main, &w[i]));
	}
	usleep(200000); /* writes while offline: every region dirty */
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "online"), 0);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_REBUILDING);
	for (int i = 0; i < 500 && rb.progress.bytes_done < 4 * MB; i++) {
		usleep(10000);
		CHECK_RC(nexus_mirror_get_rebuild(dev, &rb), 0);
	}
	printf("rebuild started: %llu bytes after %.2f s, eta %llu ms\n",
	       (unsigned long long)rb.progress.bytes_done, now_s() - t0,
	       (unsigned long long)rb.eta_ms);
	/* 32 MiB at 16 MiB/s: about 2 s in all */
	CHECK(rb.eta_ms > 500 && rb.eta_ms < 4000);
	CHECK(rb.progress.bytes_done >= 4 * MB);
	CHECK_RC(nexus_dev_control(dev, "mirror.rebuild", "pause"), 0);
	usleep(100000);
	CHECK_RC(nexus_mirror_get_rebuild(dev, &rb), 0);
	done0 = rb.progress.bytes_done;
	usleep(300000);
	CHECK_RC(nexus_mirror_get_rebuild(dev, &rb), 0);
	printf("paused at %llu, then %llu bytes\n",
	       (unsigned long long)done0,
	       (unsigned long long)rb.progress.bytes_done);
	CHECK(rb.progress.bytes_done == done0);
	CHECK(done0 < 32 * MB);
	CHECK_RC(nexus_dev_control(dev, "mirror.rebuild", "resume"), 0);
	rb = wait_rebuild(dev, 1);
	dt = now_s() - t0;
	for (int i = 0; i < 2; i++) {
		atomic_store(&w[i].stop, true);
		pthread_join(th[i], NULL);
	}
	printf("rebuild of %llu dirty bytes at 16M/s with %u + %u writes: "
	       "%.2f s, rate %.1f MB/s\n",
	       (unsigned long long)rb.progress.bytes_total, w[0].n, w[1].n,
	       dt, (double)rb.progress.rate / 1e6);
	CHECK(rb.progress.rate < 16 * MB * 1.15);
	CHECK(w[0].n > 10 && w[1].n > 10);
	same_children(dev, 32 * MB);
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* Children @p a and @p b (listing order) hold the same @p size bytes. */
static void same_pair(struct nexus_dev *dev, unsigned a, unsigned b,
		      uint64_t size)
{
	struct nexus_dev *da = child(dev, a).dev, *db = child(dev, b).dev;

	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		CHECK_RC(nexus_dev_pread(da, buf, sizeof(buf), off),
			 sizeof(buf));
		CHECK_RC(nexus_dev_pread(db, back, sizeof(back), off),
			 sizeof(back));
		CHECK(!memcmp(buf, back, sizeof(buf)));
	}
}

/* A child attached while open is rebuilt fully and joins the record; a
 * detached one leaves it; the only child in sync stays. */
static void test_attach(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev, *x, *small, *first;
	struct nexus_mirror_rebuild rb;

	dev = open_pl(ctx, "( mem:size=8M ; mem:size=8M ) | mirror:"
		      "assume-clean=on,state=@/rec5", 0);
	for (uint64_t off = 0; off < 8 * MB; off += sizeof(buf)) {
		fill(buf, sizeof(buf), (unsigned)(off >> 18) + 40);
		CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf), off, 0),
			 sizeof(buf));
	}
	CHECK_RC(nexus_dev_open(ctx, "mem:size=4M", &small), 0);
	CHECK_RC(nexus_dev_attach_child(dev, small), -EINVAL);
	CHECK(strstr(nexus_last_error(), "smaller"));
	CHECK_RC(nexus_dev_close(small), 0);
	CHECK_RC(nexus_dev_open(ctx, "mem:size=16M", &x), 0);
	CHECK_RC(nexus_dev_attach_child(dev, x), 0);
	CHECK(nexus_mirror_get_child(dev, 2, &(struct nexus_mirror_child)
				     NEXUS_MIRROR_CHILD_INIT) == 3);
	CHECK(child(dev, 2).dev == x);
	rb = wait_rebuild(dev, 1);
	CHECK(!rb.partial && rb.progress.bytes_total == 8 * MB);
	CHECK(child(dev, 2).state == NEXUS_DEV_STATE_ONLINE);
	CHECK(strstr(slurp(path("rec5")), "children 3\n"));
	CHECK(strstr(slurp(path("rec5")), "child 2 in-sync mem:size=16M"));
	same_pair(dev, 0, 2, 8 * MB);
	/* detach the first: the others move up */
	first = child(dev, 0).dev;
	CHECK_RC(nexus_dev_detach_child(dev, first), 0);
	CHECK(nexus_mirror_get_child(dev, 0, &(struct nexus_mirror_child)
				     NEXUS_MIRROR_CHILD_INIT) == 2);
	CHECK(child(dev, 1).dev == x);
	CHECK(strstr(slurp(path("rec5")), "children 2\n"));
	CHECK(strstr(slurp(path("rec5")), "child 1 in-sync mem:size=16M"));
	CHECK_RC(nexus_dev_get_state(dev), NEXUS_DEV_STATE_ONLINE);
	CHECK_RC(nexus_dev_close(first), 0);
	for (int i = 0; i < 20; i++) {
		fill(buf, 65536, 40);
		CHECK_RC(nexus_dev_pread(dev, back, 65536, 0), 65536);
		CHECK(!memcmp(back, buf, 65536));
	}
	/* the only child in sync cannot go */
	CHECK_RC(nexus_dev_control(dev, "mirror.child.0", "offline"), 0);
	CHECK_RC(nexus_dev_detach_child(dev, x), -EBUSY);
	CHECK_RC(nexus_dev_close(dev), 0);
}

/* Two children brought online at once: the second waits for the first
 * rebuild, then is rebuilt too. */
static void test_queue(struct nexus_ctx *ctx)
{
	struct nexus_dev *dev;

	CHECK_RC(nexus_dev_open(ctx, "( mem:size=16M ; mem:size=16M ; "
				"mem:size=16M ) | mirror:assume-clean=on,"
				"rate=32M", &dev), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.2", "offline"), 0);
	for (uint64_t off = 0; off < 16 * MB; off += sizeof(buf)) {
		fill(buf, sizeof(buf), (unsigned)(off >> 18) + 60);
		CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf), off, 0),
			 sizeof(buf));
	}
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "online"), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.2", "online"), 0);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_REBUILDING);
	CHECK(child(dev, 2).state == NEXUS_DEV_STATE_OFFLINE); /* waits */
	wait_rebuild(dev, 2);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_ONLINE);
	CHECK(child(dev, 2).state == NEXUS_DEV_STATE_ONLINE);
	same_pair(dev, 0, 1, 16 * MB);
	same_pair(dev, 0, 2, 16 * MB);
	/* closing with a rebuild running and one queued */
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "offline"), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.2", "offline"), 0);
	CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf), 0, 0), sizeof(buf));
	CHECK_RC(nexus_dev_control(dev, "mirror.rate", "64K"), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.1", "online"), 0);
	CHECK_RC(nexus_dev_control(dev, "mirror.child.2", "online"), 0);
	CHECK_RC(nexus_dev_close(dev), 0);
}

static const struct mirror_test tests[] = {
	{ "record", test_record },   { "fault-recorded", test_fault_recorded },
	{ "full", test_full },	     { "partial", test_partial },
	{ "concurrent", test_concurrent }, { "attach", test_attach },
	{ "queue", test_queue },     { "store-fails", test_store_fails },
	{ "persisted-map", test_persisted_map },
};

static void cleanup(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
	CHECK(mkdtemp(dir));
	atexit(cleanup);
	return run_tests(tests, sizeof(tests) / sizeof(tests[0]), test_ctx(2),
			 argc, argv);
}
