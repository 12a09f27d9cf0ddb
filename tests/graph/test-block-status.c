/* SPDX-License-Identifier: MIT */
/* NEXUS_OP_BLOCK_STATUS as an operation: the same extents whether it is
 * submitted on a reactor (as an export does), from an application
 * thread, or waited for with nexus_dev_block_status(); for mem, null
 * and a sparse file, through fault and throttle unchanged, and through
 * crypt with holes kept and zeroes dropped (zeroes below decrypt to
 * noise). */
#include "../unit/unit.h"

#include <fcntl.h>

#include "../bstatus.h"

#define MAXE 16

static char *dir;

/* Extents of [off, off+len) asked three ways, which must agree; the
 * count, with the extents in @p e. */
static int extents(struct nexus_dev *dev, uint64_t off, uint64_t len,
		   unsigned max, struct nexus_extent *e)
{
	struct nexus_ctx *ctx = nexus_dev_ctx(dev);
	struct nexus_extent other[MAXE];
	int n = nexus_dev_block_status(dev, off, len, e, max);
	uint64_t pos = off;

	CU_ASSERT_FATAL(n >= 1 && n <= (int)max);
	for (int i = 0; i < n; i++) { /* contiguous from off, within len */
		CU_ASSERT_EQUAL(e[i].offset, pos);
		CU_ASSERT(e[i].length > 0);
		pos += e[i].length;
	}
	CU_ASSERT(pos <= off + len);
	/* on a reactor, and from this thread asynchronously */
	CU_ASSERT_EQUAL(test_block_status(nexus_ctx_reactor(ctx, 0), dev, off,
					  len, other, max), n);
	CU_ASSERT(test_extents_equal(other, e, n));
	memset(other, 0, sizeof(other));
	CU_ASSERT_EQUAL(test_block_status(NULL, dev, off, len, other, max), n);
	CU_ASSERT(test_extents_equal(other, e, n));
	return n;
}

static uint32_t flags_at(const struct nexus_extent *e, int n, uint64_t off)
{
	for (int i = 0; i < n; i++)
		if (off >= e[i].offset && off < e[i].offset + e[i].length)
			return e[i].flags;
	return 0xff;
}

#define HZ (NEXUS_EXTENT_HOLE | NEXUS_EXTENT_ZERO)

static void write_at(struct nexus_dev *dev, uint64_t off, size_t len)
{
	void *b = malloc(len);

	unit_fill(b, len, off);
	CU_ASSERT_EQUAL(nexus_dev_pwrite(dev, b, len, off, 0), (ssize_t)len);
	free(b);
}

/* 64 KiB of data at 1 MiB, the rest never written. */
static void check_sparse(struct nexus_dev *dev, uint32_t hole_flags)
{
	struct nexus_extent e[MAXE];
	int n = extents(dev, 0, 4 << 20, MAXE, e);

	CU_ASSERT_EQUAL(flags_at(e, n, 0), hole_flags);
	CU_ASSERT_EQUAL(flags_at(e, n, (1 << 20) + 100), 0);
	CU_ASSERT_EQUAL(flags_at(e, n, 3 << 20), hole_flags);
	/* one extent: from inside the data, covering at least a byte */
	n = extents(dev, (1 << 20) + 4096, 1 << 20, 1, e);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(e[0].flags, 0);
}

static void test_sources(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);
	struct nexus_dev *mem = unit_open(ctx, "mem:size=4M");
	struct nexus_dev *nul = unit_open(ctx, "null:size=4M");
	struct nexus_extent e[MAXE];
	char spec[600];
	struct nexus_dev *file;
	int fd;

	write_at(mem, 1 << 20, 65536);
	check_sparse(mem, HZ);
	CU_ASSERT_EQUAL(extents(nul, 4096, 8192, MAXE, e), 1);
	CU_ASSERT_EQUAL(e[0].flags, HZ);
	CU_ASSERT_EQUAL(e[0].length, 8192);
	fd = open(unit_join(dir, "sparse.img"), O_CREAT | O_RDWR, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(ftruncate(fd, 4 << 20), 0);
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s", unit_join(dir, "sparse.img"));
	file = unit_open(ctx, spec);
	write_at(file, 1 << 20, 65536);
	check_sparse(file, HZ);
	EXPECT_OK(nexus_dev_close(file));
	EXPECT_OK(nexus_dev_close(nul));
	EXPECT_OK(nexus_dev_close(mem));
	nexus_ctx_destroy(ctx);
}

static void test_transforms(void)
{
	static const char *const stacks[] = {
		"mem:size=4M | fault:enable=off",
		"mem:size=4M | fault:ops=read,errno=EIO",
		"mem:size=4M | throttle:iops=50",
		"mem:size=4M | fault:enable=off | throttle:bps=1M",
	};
	struct nexus_ctx *ctx = unit_ctx(2);

	for (unsigned i = 0; i < sizeof(stacks) / sizeof(stacks[0]); i++) {
		struct nexus_dev *dev = unit_open(ctx, stacks[i]);

		write_at(dev, 1 << 20, 65536);
		check_sparse(dev, HZ);
		EXPECT_OK(nexus_dev_close(dev));
	}
	nexus_ctx_destroy(ctx);
}

static void test_crypt(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);
	unsigned char key[64];
	struct nexus_extent e[MAXE];
	struct nexus_dev *dev;
	int n;

	unit_fill(key, sizeof(key), 77);
	EXPECT_OK(nexus_ctx_secret_set(ctx, "k", key, sizeof(key)));
	dev = unit_open(ctx, "mem:size=4M | crypt:key-name=k");
	write_at(dev, 1 << 20, 65536);
	/* holes stay holes, but never zero: they decrypt to noise */
	check_sparse(dev, NEXUS_EXTENT_HOLE);
	n = extents(dev, 0, 4 << 20, MAXE, e);
	for (int i = 0; i < n; i++)
		CU_ASSERT_EQUAL(e[i].flags & NEXUS_EXTENT_ZERO, 0);
	{
		unsigned char b[4096];

		/* and indeed: a hole read through crypt is not zeroes */
		CU_ASSERT_EQUAL(nexus_dev_pread(dev, b, sizeof(b), 0), 4096);
		CU_ASSERT_FALSE(unit_is_zero(b, sizeof(b)));
	}
	EXPECT_OK(nexus_dev_close(dev));
	/* with 4 KiB sectors too: an untouched device is one hole */
	dev = unit_open(ctx, "mem:size=4M | crypt:key-name=k,sector-size=4096");
	n = extents(dev, 0, 4 << 20, MAXE, e);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(e[0].flags, NEXUS_EXTENT_HOLE);
	EXPECT_OK(nexus_dev_close(dev));
	nexus_ctx_destroy(ctx);
}

static void test_misuse(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct nexus_dev *dev = unit_open(ctx, "mem:size=1M");
	struct nexus_io_req r = NEXUS_IO_REQ_INIT;
	struct nexus_extent e[2];

	r.op = NEXUS_OP_BLOCK_STATUS;
	r.offset = 0;
	r.length = 4096;
	r.cb = test_bs_cb;
	EXPECT_ERR(nexus_dev_submit(dev, &r), -EINVAL, "extent");
	r.extents = e;
	r.max_extents = 2;
	r.length = 2 << 20;
	EXPECT_ERR(nexus_dev_submit(dev, &r), -EINVAL, "past the end");
	EXPECT_ERR(nexus_dev_block_status(dev, 0, 0, e, 2), -EINVAL, "empty");
	EXPECT_OK(nexus_dev_close(dev));
	nexus_ctx_destroy(ctx);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "mem, null, sparse file", test_sources },
		{ "through fault and throttle", test_transforms },
		{ "through crypt: holes, never zeroes", test_crypt },
		{ "misuse", test_misuse },
		{ NULL, NULL },
	};

	return unit_main_scratch("block-status", tests, &dir);
}
