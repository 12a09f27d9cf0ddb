/* SPDX-License-Identifier: MIT */
/* The file source: bad paths (missing, unreadable, a directory, a
 * character device, a FIFO), create/size, readonly, O_DIRECT (and a
 * misaligned buffer), block status through SEEK_HOLE/SEEK_DATA, TRIM,
 * WRITE_ZEROES with NO_UNMAP (tmpfs falls back to writing zeroes), an
 * odd file size, and a real block device (a loop device) when root. */
#include <fcntl.h>
#include <linux/loop.h>
#include <pwd.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "unit.h"
#include "../submit.h"

static struct nexus_ctx *ctx;
static char *disk;  /* scratch dir in $TMPDIR or /var/tmp */
static char *shm;   /* scratch dir on tmpfs */

static const char *spec(const char *fmt, const char *path)
{
	static char buf[4][700];
	static unsigned n;
	char *b = buf[n++ % 4];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(b, sizeof(buf[0]), fmt, path); /* fmt: test-local literals */
#pragma GCC diagnostic pop
	return b;
}

static void make_file(const char *path, size_t size, int seed)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	char *buf = malloc(size ? size : 1);

	CU_ASSERT_FATAL(fd >= 0);
	unit_fill(buf, size, (uint64_t)seed);
	CU_ASSERT_EQUAL(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
}

/* ---- bad paths ---- */

static void test_missing(void)
{
	struct nexus_dev *d = NULL;
	const char *p = unit_join(disk, "missing.img");

	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s", p), &d), -ENOENT,
		   "missing.img", "no such file", "stage 'file' at column 1");
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,readonly=on", p), &d),
		   -ENOENT, "missing.img");
	/* create=on cannot make a missing directory */
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s/x/y.img,create=on,size=1M",
					    disk), &d),
		   -ENOENT, "y.img");
	/* readonly never creates */
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,create=on,size=1M,"
					    "readonly=on", p), &d),
		   -ENOENT, "missing.img");
	CU_ASSERT_EQUAL(access(p, F_OK), -1);
	EXPECT_ERR(nexus_dev_open(ctx, "file:", &d), -EINVAL, "path is empty");
	EXPECT_ERR(nexus_dev_open(ctx, "file:path=''", &d), -EINVAL,
		   "path is empty");
	CU_ASSERT_PTR_NULL(d);
}

/* Opening a file the caller may not read or write.  Root passes
 * permission checks, so as root the check runs in a child process that
 * has become 'nobody'. */
static int unreadable_cases(const char *path)
{
	struct nexus_ctx *c = NULL;
	struct nexus_dev *d = NULL;
	int bad = 0, rc;

	if (nexus_ctx_create(NULL, &c))
		return 100;
	rc = nexus_dev_open(c, spec("file:%s", path), &d);
	if (rc != -EACCES || !strstr(nexus_last_error(), "Permission denied") ||
	    !strstr(nexus_last_error(), "readonly=on")) {
		fprintf(stderr, "rw: %d %s\n", rc, nexus_last_error());
		bad |= 1;
	}
	rc = nexus_dev_open(c, spec("file:%s,readonly=on", path), &d);
	if (rc != -EACCES || !strstr(nexus_last_error(), "Permission denied")) {
		fprintf(stderr, "ro: %d %s\n", rc, nexus_last_error());
		bad |= 2;
	}
	nexus_ctx_destroy(c);
	return bad;
}

static void test_unreadable(void)
{
	const char *p = unit_join(disk, "secret.img");
	struct passwd *pw;
	pid_t pid;
	int st;

	make_file(p, 65536, 1);
	CU_ASSERT_EQUAL_FATAL(chmod(p, 0), 0);
	if (geteuid() != 0) {
		CU_ASSERT_EQUAL(unreadable_cases(p), 0);
		return;
	}
	pw = getpwnam("nobody");
	if (!pw) {
		printf("SKIP: running as root and no user 'nobody' ");
		return;
	}
	/* nobody must be able to reach the file */
	CU_ASSERT_EQUAL_FATAL(chmod(disk, 0711), 0);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		if (setgid(pw->pw_gid) || setuid(pw->pw_uid))
			_exit(101);
		_exit(unreadable_cases(p));
	}
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 100) {
		printf("SKIP: 'nobody' cannot create a context (io_uring "
		       "restricted?) ");
		return;
	}
	CU_ASSERT(WIFEXITED(st));
	CU_ASSERT_EQUAL(WEXITSTATUS(st), 0);
	chmod(disk, 0700);
}

static void test_not_a_file(void)
{
	struct nexus_dev *d = NULL;
	const char *fifo = unit_join(disk, "fifo");

	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s", disk), &d), -EISDIR,
		   "is a directory", disk);
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,readonly=on", disk), &d),
		   -EISDIR, "is a directory");
	EXPECT_ERR(nexus_dev_open(ctx, "file:/dev/null", &d), -EINVAL,
		   "/dev/null", "not a regular file or a block device");
	EXPECT_ERR(nexus_dev_open(ctx, "file:/dev/zero,readonly=on", &d),
		   -EINVAL, "not a regular file");
	CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s", fifo), &d), -EINVAL,
		   "not a regular file");
	/* a path under /proc that is not a regular file */
	EXPECT_ERR(nexus_dev_open(ctx, "file:/proc/self/fd,readonly=on", &d),
		   -EISDIR, "is a directory");
	/* bad option combinations */
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,create=on",
					    unit_join(disk, "c.img")), &d),
		   -EINVAL, "create=on needs size=");
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,size=1M",
					    unit_join(disk, "c.img")), &d),
		   -EINVAL, "size= is only used with create=on");
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,create=on,size=1M,"
					    "block-size=3000",
					    unit_join(disk, "c.img")), &d),
		   -EINVAL, "block-size=3000", "power of two");
	CU_ASSERT_PTR_NULL(d);
}

/* ---- create, readonly, sizes ---- */

static void test_create(void)
{
	const char *p = unit_join(disk, "new.img");
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nexus_dev *dev;
	struct stat st;
	char buf[4096];

	dev = unit_open(ctx, spec("file:%s,create=on,size=3M", p));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.dev_size, 3u << 20);
	CU_ASSERT_EQUAL(in.logical_block_size, 512);
	CU_ASSERT(in.flags & NEXUS_DEV_TRIM_ZEROES);
	CU_ASSERT(in.flags & NEXUS_DEV_BLOCK_STATUS);
	CU_ASSERT_STRING_EQUAL(in.driver, "file");
	unit_fill(buf, sizeof(buf), 3);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 4096, (3u << 20) - 4096, 0),
		      4096);
	nexus_dev_close(dev);
	CU_ASSERT_EQUAL(stat(p, &st), 0);
	CU_ASSERT_EQUAL(st.st_size, 3u << 20);
	/* again with create=on: an existing file keeps its data and a
	 * larger size; a smaller one grows */
	dev = unit_open(ctx, spec("file:%s,create=on,size=1M", p));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.dev_size, 3u << 20);
	nexus_dev_close(dev);
	dev = unit_open(ctx, spec("file:%s,create=on,size=5M", p));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.dev_size, 5u << 20);
	{
		char rb[4096];

		EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 4096, (3u << 20) - 4096),
			      4096);
		CU_ASSERT_EQUAL(memcmp(rb, buf, 4096), 0);
	}
	nexus_dev_close(dev);
	/* explicit block size */
	dev = unit_open(ctx, spec("file:%s,block-size=4096", p));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.logical_block_size, 4096);
	EXPECT_ERR(nexus_dev_pread(dev, buf, 512, 0), -EINVAL, "aligned");
	nexus_dev_close(dev);
	/* size suffixes */
	dev = unit_open(ctx, spec("file:%s,create=on,size=64KiB",
			   unit_join(disk, "small.img")));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.dev_size, 65536);
	nexus_dev_close(dev);
}

static void test_readonly(void)
{
	const char *p = unit_join(disk, "ro.img");
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nexus_dev *dev;
	char buf[4096], want[4096];

	make_file(p, 1 << 20, 4);
	unit_fill(want, sizeof(want), 4);
	dev = unit_open(ctx, spec("file:%s,readonly=on", p));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT(in.flags & NEXUS_DEV_READ_ONLY);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 4096, 0), 4096);
	CU_ASSERT_EQUAL(memcmp(buf, want, 4096), 0);
	EXPECT_ERR(nexus_dev_pwrite(dev, buf, 4096, 0, 0), -EROFS,
		   "read-only");
	EXPECT_ERR(nexus_dev_pwrite(dev, buf, 4096, 0, NEXUS_IO_FUA), -EROFS,
		   "read-only");
	EXPECT_ERR(nexus_dev_trim(dev, 0, 4096, 0), -EROFS, "read-only");
	EXPECT_ERR(nexus_dev_write_zeroes(dev, 0, 4096, 0), -EROFS,
		   "read-only");
	EXPECT_OK(nexus_dev_flush(dev));
	nexus_dev_close(dev);
	/* a read-only file (mode 0444) opens with readonly=on */
	CU_ASSERT_EQUAL(chmod(p, 0444), 0);
	dev = unit_open(ctx, spec("file:%s,readonly=on", p));
	nexus_dev_close(dev);
}

/* A file whose size is not a multiple of 512: byte-granular I/O. */
static void test_odd_size(void)
{
	const char *p = unit_join(disk, "odd.img");
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nexus_dev *dev, *d = NULL;
	char buf[1000], want[1000];

	make_file(p, 1000, 5);
	unit_fill(want, sizeof(want), 5);
	dev = unit_open(ctx, spec("file:%s", p));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.dev_size, 1000);
	CU_ASSERT_EQUAL(in.logical_block_size, 1);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 1000, 0), 1000);
	CU_ASSERT_EQUAL(memcmp(buf, want, 1000), 0);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 1, 999), 1);
	CU_ASSERT_EQUAL(buf[0], want[999]);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, "xyz", 3, 997, 0), 3);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 7, 993), 7);
	CU_ASSERT_EQUAL(memcmp(buf + 4, "xyz", 3), 0);
	EXPECT_ERR(nexus_dev_pread(dev, buf, 2, 999), -EINVAL, "past the end");
	EXPECT_ERR(nexus_dev_pread(dev, buf, 1, 1000), -EINVAL,
		   "past the end");
	EXPECT_OK(nexus_dev_write_zeroes(dev, 10, 7, 0));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 30, 0), 30);
	CU_ASSERT(unit_is_zero(buf + 10, 7));
	CU_ASSERT_EQUAL(memcmp(buf, want, 10), 0);
	CU_ASSERT_EQUAL(memcmp(buf + 17, want + 17, 13), 0);
	nexus_dev_close(dev);
	/* O_DIRECT cannot address the last partial block */
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,direct=on", p), &d),
		   -EINVAL, "not a multiple of the block size");
	/* nor can an explicit block size */
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,block-size=512", p), &d),
		   -EINVAL, "not a multiple");
	/* an empty file is a device of size 0: every I/O is past the end */
	make_file(unit_join(disk, "empty.img"), 0, 0);
	dev = unit_open(ctx, spec("file:%s", unit_join(disk, "empty.img")));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.dev_size, 0);
	EXPECT_ERR(nexus_dev_pread(dev, buf, 1, 0), -EINVAL, "past the end");
	EXPECT_OK(nexus_dev_flush(dev));
	nexus_dev_close(dev);
}

/* ---- O_DIRECT ---- */

struct cb_count {
	atomic_int calls;
	atomic_int result;
};

static void count_cb(void *ud, int res)
{
	struct cb_count *c = ud;

	atomic_store(&c->result, res);
	atomic_fetch_add(&c->calls, 1);
}

static void direct_on(const char *dir)
{
	const char *p = unit_join(dir, "direct.img");
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nexus_dev *dev, *d = NULL;
	unsigned char *buf = aligned_alloc(4096, 1 << 20);
	unsigned char *rb = aligned_alloc(4096, 1 << 20);
	struct cb_count c = { 0 };
	struct iovec iov;
	int rc;

	rc = nexus_dev_open(ctx, spec("file:%s,create=on,size=8M,direct=on", p),
			    &d);
	if (rc == -EINVAL && strstr(nexus_last_error(), "O_DIRECT")) {
		printf("SKIP: %s has no O_DIRECT ", dir);
		free(buf);
		free(rb);
		return;
	}
	EXPECT_OK(rc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	dev = d;
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT(in.logical_block_size >= 512);
	unit_fill(buf, 1 << 20, 6);
	memset(rb, 0, 1 << 20);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 1 << 20, 1 << 20, 0), 1 << 20);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 1 << 20, 1 << 20), 1 << 20);
	CU_ASSERT_EQUAL(memcmp(buf, rb, 1 << 20), 0);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 4096, 0, NEXUS_IO_FUA), 4096);
	/* misaligned offset and length: refused by the core */
	EXPECT_ERR(nexus_dev_pread(dev, rb, 4096, in.logical_block_size / 2),
		   -EINVAL, "aligned");
	EXPECT_ERR(nexus_dev_pread(dev, rb, 100, 0), -EINVAL, "aligned");
	/* a misaligned buffer: refused by the driver, with its message */
	EXPECT_ERR(nexus_dev_pread(dev, rb + 1, 4096, 0), -EINVAL, "O_DIRECT",
		   "aligned");
	EXPECT_ERR(nexus_dev_pwrite(dev, buf + 3, 4096, 0, 0), -EINVAL,
		   "O_DIRECT", "aligned");
	/* the same asynchronously: accepted, then one failed callback */
	iov = (struct iovec){ rb + 1, 4096 };
	EXPECT_OK(test_submit(dev, NEXUS_OP_READ, &iov, 1, 0, 0, 0,
				   count_cb, &c));
	for (int i = 0; i < 10000 && atomic_load(&c.calls) < 1; i++)
		usleep(1000);
	unit_sleep_ms(10);
	CU_ASSERT_EQUAL(atomic_load(&c.calls), 1);
	CU_ASSERT_EQUAL(atomic_load(&c.result), -EINVAL);
	/* the device still works */
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 4096, 0), 4096);
	CU_ASSERT_EQUAL(memcmp(buf, rb, 4096), 0);
	EXPECT_OK(nexus_dev_flush(dev));
	nexus_dev_close(dev);
	free(buf);
	free(rb);
}

static void test_direct(void)
{
	direct_on(disk);
	direct_on(shm);
}

/* ---- TRIM, WRITE_ZEROES, block status ---- */

#define HOLE (NEXUS_EXTENT_HOLE | NEXUS_EXTENT_ZERO)

/* Flags of the extent covering @off (of a status from @from). */
static int flags_at(struct nexus_dev *dev, uint64_t from, uint64_t len,
		    uint64_t off)
{
	struct nexus_extent e[64];
	int n = nexus_dev_block_status(dev, from, len, e, 64);
	uint64_t pos = from;

	if (n < 1)
		return -1;
	for (int i = 0; i < n; i++) {
		if (e[i].offset != pos || !e[i].length)
			return -2; /* not contiguous */
		if (off >= e[i].offset && off < e[i].offset + e[i].length)
			return (int)e[i].flags;
		pos += e[i].length;
	}
	return -3;
}

static void holes_on(const char *dir)
{
	const char *p = unit_join(dir, "sparse.img");
	uint64_t M = 1 << 20;
	struct nexus_dev *dev;
	char *buf = malloc(M), *rb = malloc(M);
	int rc;

	unlink(p);
	dev = unit_open(ctx, spec("file:%s,create=on,size=8M", p));
	unit_fill(buf, M, 7);
	/* a new sparse file is one hole */
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, 0), HOLE);
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, 8 * M - 1), HOLE);
	/* 64 KiB of data at 1 MiB */
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 65536, M, 0), 65536);
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, 0), HOLE);
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, M), 0);
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, M + 65535), 0);
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, 2 * M), HOLE);
	CU_ASSERT_EQUAL(flags_at(dev, M + 4096, 4096, M + 4096), 0);
	{
		struct nexus_extent e[3];

		rc = nexus_dev_block_status(dev, 0, 8 * M, e, 3);
		CU_ASSERT_EQUAL(rc, 3);
		CU_ASSERT_EQUAL(e[0].offset, 0);
		CU_ASSERT_EQUAL(e[0].length, M);
		CU_ASSERT_EQUAL(e[1].offset, M);
		CU_ASSERT_EQUAL(e[1].length, 65536);
		CU_ASSERT_EQUAL(e[2].offset + e[2].length, 8 * M);
		/* max=1 */
		rc = nexus_dev_block_status(dev, 0, 8 * M, e, 1);
		CU_ASSERT_EQUAL(rc, 1);
		CU_ASSERT_EQUAL(e[0].length, M);
	}
	/* TRIM punches a hole that reads back as zeroes */
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, M, 4 * M, 0), M);
	EXPECT_OK(nexus_dev_trim(dev, 4 * M, M / 2, 0));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, M, 4 * M), M);
	CU_ASSERT(unit_is_zero(rb, M / 2));
	CU_ASSERT_EQUAL(memcmp(rb + M / 2, buf + M / 2, M / 2), 0);
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, 4 * M), HOLE);
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, 4 * M + M / 2), 0);
	/* WRITE_ZEROES (unmap allowed): zeroes, and a hole */
	EXPECT_OK(nexus_dev_write_zeroes(dev, 4 * M + M / 2, 65536, 0));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 65536, 4 * M + M / 2), 65536);
	CU_ASSERT(unit_is_zero(rb, 65536));
	CU_ASSERT_EQUAL(flags_at(dev, 0, 8 * M, 4 * M + M / 2), HOLE);
	/* WRITE_ZEROES with NO_UNMAP: zeroes, and the range stays
	 * allocated (tmpfs has no ZERO_RANGE: the driver writes zeroes) */
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, M, 6 * M, 0), M);
	EXPECT_OK(nexus_dev_write_zeroes(dev, 6 * M, M, NEXUS_IO_NO_UNMAP));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, M, 6 * M), M);
	CU_ASSERT(unit_is_zero(rb, M));
	EXPECT_OK(nexus_dev_write_zeroes(dev, 7 * M, M / 2,
					 NEXUS_IO_NO_UNMAP | NEXUS_IO_FUA));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, M / 2, 7 * M), M / 2);
	CU_ASSERT(unit_is_zero(rb, M / 2));
	/* FAST_ZERO: zero fast or fail with -EOPNOTSUPP, never slowly */
	rc = nexus_dev_write_zeroes(dev, 6 * M, M,
				    NEXUS_IO_NO_UNMAP | NEXUS_IO_FAST_ZERO);
	CU_ASSERT(rc == 0 || rc == -EOPNOTSUPP);
	if (!strcmp(dir, shm))
		CU_ASSERT_EQUAL(rc, -EOPNOTSUPP); /* tmpfs cannot */
	nexus_dev_close(dev);
	free(buf);
	free(rb);
}

static void test_holes_ext(void)
{
	holes_on(disk);
}

static void test_holes_tmpfs(void)
{
	holes_on(shm);
}

/* ---- a block device: a loop device over a scratch file ---- */

static int loop_attach(const char *file, unsigned block_size, char *dev,
		       size_t len)
{
	struct loop_config cfg;
	int ctl, fd, lfd = -1, n;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	fd = open(file, O_RDWR | O_CLOEXEC);
	for (int tries = 0; fd >= 0 && tries < 20; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			break;
		snprintf(dev, len, "/dev/loop%d", n);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd < 0)
			break;
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (unsigned)fd;
		cfg.block_size = block_size;
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
			break;
		close(lfd); /* taken meanwhile: try the next free one */
		lfd = -1;
	}
	if (fd >= 0)
		close(fd);
	close(ctl);
	return lfd;
}

static void test_block_device(void)
{
	const char *p = unit_join(disk, "loop.img");
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct nexus_extent e[4];
	struct nexus_dev *dev, *d = NULL;
	char path[64];
	char *buf = aligned_alloc(4096, 65536), *rb = aligned_alloc(4096, 65536);
	int lfd;

	make_file(p, 16 << 20, 8);
	lfd = loop_attach(p, 4096, path, sizeof(path));
	if (lfd < 0) {
		printf("SKIP: no loop device (%s) ", strerror(-lfd));
		free(buf);
		free(rb);
		return;
	}
	dev = unit_open(ctx, spec("file:%s", path));
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	/* geometry from the device's ioctls */
	CU_ASSERT_EQUAL(in.dev_size, 16u << 20);
	CU_ASSERT_EQUAL(in.logical_block_size, 4096);
	CU_ASSERT(in.physical_block_size >= 4096);
	unit_fill(buf, 65536, 9);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 65536, 1 << 20, 0), 65536);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 65536, 1 << 20), 65536);
	CU_ASSERT_EQUAL(memcmp(buf, rb, 65536), 0);
	EXPECT_ERR(nexus_dev_pread(dev, rb, 512, 0), -EINVAL, "aligned",
		   "4096");
	EXPECT_OK(nexus_dev_flush(dev));
	EXPECT_OK(nexus_dev_write_zeroes(dev, 1 << 20, 8192, 0));
	EXPECT_OK(nexus_dev_write_zeroes(dev, (1 << 20) + 8192, 8192,
					 NEXUS_IO_NO_UNMAP));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 65536, 1 << 20), 65536);
	CU_ASSERT(unit_is_zero(rb, 16384));
	CU_ASSERT_EQUAL(memcmp(buf + 16384, rb + 16384, 65536 - 16384), 0);
	/* no allocation information: one data extent */
	CU_ASSERT_EQUAL(nexus_dev_block_status(dev, 0, 1 << 20, e, 4), 1);
	CU_ASSERT_EQUAL(e[0].flags, 0);
	CU_ASSERT_EQUAL(e[0].length, 1 << 20);
	nexus_dev_close(dev);
	/* a block size below the device's is refused */
	EXPECT_ERR(nexus_dev_open(ctx, spec("file:%s,block-size=512", path),
				  &d),
		   -EINVAL, "smaller than the device's");
	/* O_DIRECT on the device */
	dev = unit_open(ctx, spec("file:%s,direct=on", path));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 65536, 1 << 20), 65536);
	EXPECT_ERR(nexus_dev_pread(dev, rb + 1, 4096, 0), -EINVAL,
		   "O_DIRECT");
	nexus_dev_close(dev);
	ioctl(lfd, LOOP_CLR_FD, 0);
	close(lfd);
	free(buf);
	free(rb);
}

static const struct unit_test tests[] = {
	{ "missing file", test_missing },
	{ "unreadable file", test_unreadable },
	{ "directory, char device, FIFO", test_not_a_file },
	{ "create=on,size=", test_create },
	{ "readonly=on", test_readonly },
	{ "size not a multiple of 512", test_odd_size },
	{ "direct=on", test_direct },
	{ "holes, trim, write-zeroes (TMPDIR)", test_holes_ext },
	{ "holes, trim, write-zeroes (tmpfs)", test_holes_tmpfs },
	{ "block device", test_block_device },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	disk = unit_mkdtemp(NULL);
	shm = unit_mkdtemp("/dev/shm");
	if (!disk || !shm)
		return 99;
	ctx = unit_ctx(2);
	rc = unit_main("file", tests);
	nexus_ctx_destroy(ctx);
	unit_rmtree(disk);
	unit_rmtree(shm);
	return rc;
}
