/* SPDX-License-Identifier: MIT */
/* The mem source: sparse (a 64 GiB device costs nothing), unwritten
 * blocks read as zeroes, TRIM / WRITE_ZEROES read back as zeroes and
 * give memory back, block status reports holes and data. */
#include "unit.h"

static struct nexus_ctx *ctx;

/* The "huge" device: 64 GiB, or 16 GiB under valgrind, which cannot
 * map 64 GiB at once. */
static uint64_t big_size(void)
{
	return (unit_slow() ? 16ull : 64ull) << 30;
}

static const char *big_spec(void)
{
	return unit_slow() ? "mem:size=16G" : "mem:size=64G";
}

/* Resident set size of the process in bytes. */
static uint64_t rss(void)
{
	unsigned long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void test_info(void)
{
	struct nexus_dev *dev = unit_open(ctx, big_spec());
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	uint32_t all = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
		       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
		       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
		       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS);

	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.dev_size, big_size());
	CU_ASSERT_EQUAL(in.logical_block_size, 512);
	CU_ASSERT(in.physical_block_size >= in.logical_block_size);
	CU_ASSERT(in.max_io_size >= 1u << 20);
	CU_ASSERT_EQUAL(in.ops, all);
	CU_ASSERT(in.flags & NEXUS_DEV_TRIM_ZEROES);
	CU_ASSERT(in.flags & NEXUS_DEV_BLOCK_STATUS);
	CU_ASSERT_FALSE(in.flags & NEXUS_DEV_READ_ONLY);
	CU_ASSERT_STRING_EQUAL(in.driver, "mem");
	CU_ASSERT_STRING_EQUAL(in.name, big_spec());
	nexus_dev_close(dev);

	dev = unit_open(ctx, "mem:1M,block-size=4096");
	EXPECT_OK(nexus_dev_get_info(dev, &in));
	CU_ASSERT_EQUAL(in.logical_block_size, 4096);
	{
		char b[4096] = { 0 };

		EXPECT_ERR(nexus_dev_pread(dev, b, 512, 0), -EINVAL, "aligned",
			   "4096");
		EXPECT_EQ_MSG(nexus_dev_pread(dev, b, 4096, 4096), 4096);
	}
	nexus_dev_close(dev);
}

static void test_bad_options(void)
{
	struct nexus_dev *d = NULL;

	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=0", &d), -EINVAL,
		   "option 'size'", "got '0'");
	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=1000", &d), -EINVAL,
		   "multiple of block-size");
	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=1M,block-size=3000", &d),
		   -EINVAL, "block-size=3000", "power of two");
	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=1M,block-size=0", &d),
		   -EINVAL, "option 'block-size'", "got '0'");
	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=1M,block-size=128K", &d),
		   -EINVAL, "block-size");
	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=65T", &d), -EINVAL, "64T");
	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=16E", &d), -EINVAL, "size");
	CU_ASSERT_PTR_NULL(d);
}

/* A 64 GiB device and a few scattered writes cost a few pages. */
static void test_sparse(void)
{
	uint64_t before, opened, written;
	struct nexus_dev *dev;
	char buf[4096], rb[4096];
	uint64_t size = big_size();

	before = rss();
	dev = unit_open(ctx, big_spec());
	opened = rss();
	unit_fill(buf, sizeof(buf), 5);
	for (int i = 0; i < 16; i++)
		EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, sizeof(buf),
					       (size / 16) * (uint64_t)i, 0),
			      sizeof(buf));
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, sizeof(buf),
				       size - sizeof(buf), 0),
		      sizeof(buf));
	written = rss();
	printf("RSS +%llu KiB open, +%llu KiB after writes ",
	       (unsigned long long)(opened > before ? opened - before : 0) >> 10,
	       (unsigned long long)(written > before ? written - before : 0) >> 10);
	/* a few MiB for the chunk bitmap and the I/O pools, not gigabytes */
	CU_ASSERT(opened < before + (8u << 20));
	CU_ASSERT(written < before + (16u << 20));
	/* the data is there; the rest reads as zeroes */
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, sizeof(rb), size / 16 * 3),
		      sizeof(rb));
	CU_ASSERT_EQUAL(memcmp(rb, buf, sizeof(rb)), 0);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, sizeof(rb), size - 4096),
		      sizeof(rb));
	CU_ASSERT_EQUAL(memcmp(rb, buf, sizeof(rb)), 0);
	for (uint64_t off = 4096; off < size; off += size / 7 + 4096) {
		memset(rb, 0xee, sizeof(rb));
		EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, sizeof(rb), off & ~4095ull),
			      sizeof(rb));
		CU_ASSERT(unit_is_zero(rb, sizeof(rb)));
	}
	/* reading unwritten data does not allocate it either */
	CU_ASSERT(rss() < before + (16u << 20));
	nexus_dev_close(dev);
}

/* TRIM and WRITE_ZEROES: zeroes, partial blocks, and memory given back. */
static void test_trim_zeroes(void)
{
	struct nexus_dev *dev = unit_open(ctx, "mem:size=256M");
	size_t big = 32u << 20;
	char *buf = malloc(big), *rb = malloc(big);
	uint64_t full, trimmed;

	unit_fill(buf, big, 9);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, big, 0, 0), big);
	full = rss();
	/* sub-page ranges: 512 bytes inside a page, across a page edge */
	EXPECT_OK(nexus_dev_trim(dev, 1024, 512, 0));
	EXPECT_OK(nexus_dev_write_zeroes(dev, 4096 - 512, 1024, 0));
	EXPECT_OK(nexus_dev_write_zeroes(dev, 65536, 512,
					 NEXUS_IO_NO_UNMAP | NEXUS_IO_FUA));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 131072, 0), 131072);
	CU_ASSERT(unit_is_zero(rb + 1024, 512));
	CU_ASSERT(unit_is_zero(rb + 4096 - 512, 1024));
	CU_ASSERT(unit_is_zero(rb + 65536, 512));
	/* bytes around them are untouched */
	CU_ASSERT_EQUAL(memcmp(rb, buf, 1024), 0);
	CU_ASSERT_EQUAL(memcmp(rb + 1536, buf + 1536, 4096 - 512 - 1536), 0);
	CU_ASSERT_EQUAL(memcmp(rb + 4096 + 512, buf + 4096 + 512,
			       65536 - 4096 - 512), 0);
	CU_ASSERT_EQUAL(memcmp(rb + 65536 + 512, buf + 65536 + 512,
			       65536 - 512), 0);
	/* a large TRIM gives the memory back */
	EXPECT_OK(nexus_dev_trim(dev, 1 << 20, big - (1 << 20), 0));
	trimmed = rss();
	printf("RSS %llu MiB written, %llu MiB after trim ",
	       (unsigned long long)full >> 20, (unsigned long long)trimmed >> 20);
	CU_ASSERT(trimmed + (24u << 20) < full);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, big, 0), big);
	CU_ASSERT(unit_is_zero(rb + (1 << 20), big - (1 << 20)));
	CU_ASSERT_EQUAL(memcmp(rb + 131072, buf + 131072, (1 << 20) - 131072),
			0);
	/* writes after a trim land normally */
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 8192, 2 << 20, 0), 8192);
	EXPECT_EQ_MSG(nexus_dev_pread(dev, rb, 8192, 2 << 20), 8192);
	CU_ASSERT_EQUAL(memcmp(rb, buf, 8192), 0);
	free(buf);
	free(rb);
	nexus_dev_close(dev);
}

/* Extents are contiguous, start at the offset and stay in the range. */
static bool extents_sane(const struct nexus_extent *e, int n, uint64_t off,
			 uint64_t len)
{
	uint64_t pos = off;

	if (n < 1)
		return false;
	for (int i = 0; i < n; i++) {
		if (e[i].offset != pos || !e[i].length)
			return false;
		if (i && e[i].flags == e[i - 1].flags)
			return false; /* neighbours with equal flags merge */
		pos += e[i].length;
	}
	return pos <= off + len;
}

#define HOLE (NEXUS_EXTENT_HOLE | NEXUS_EXTENT_ZERO)
#define K64 65536ull

static void test_block_status(void)
{
	struct nexus_dev *dev = unit_open(ctx, "mem:size=1G");
	struct nexus_extent e[16];
	char buf[4096];
	int n;

	/* fresh: one hole */
	n = nexus_dev_block_status(dev, 0, 1ull << 30, e, 16);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT(extents_sane(e, n, 0, 1ull << 30));
	CU_ASSERT_EQUAL(e[0].flags, HOLE);
	CU_ASSERT_EQUAL(e[0].length, 1ull << 30);

	/* 4 KiB of data at 128 KiB: data in its 64 KiB chunk */
	memset(buf, 1, sizeof(buf));
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 4096, 2 * K64, 0), 4096);
	n = nexus_dev_block_status(dev, 0, 1 << 20, e, 16);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT(extents_sane(e, n, 0, 1 << 20));
	CU_ASSERT_EQUAL(e[0].flags, HOLE);
	CU_ASSERT_EQUAL(e[0].length, 2 * K64);
	CU_ASSERT_EQUAL(e[1].flags, 0);
	CU_ASSERT(e[1].offset <= 2 * K64 && e[1].offset + e[1].length >=
		  2 * K64 + 4096);
	CU_ASSERT_EQUAL(e[2].flags, HOLE);
	CU_ASSERT_EQUAL(e[2].offset + e[2].length, 1 << 20);

	/* a range starting and ending inside chunks */
	n = nexus_dev_block_status(dev, 2 * K64 + 512, 4096, e, 16);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(e[0].offset, 2 * K64 + 512);
	CU_ASSERT_EQUAL(e[0].length, 4096);
	CU_ASSERT_EQUAL(e[0].flags, 0);

	/* max=1: the first extent only */
	n = nexus_dev_block_status(dev, 0, 1 << 20, e, 1);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(e[0].offset, 0);
	CU_ASSERT_EQUAL(e[0].length, 2 * K64);

	/* trimming part of the chunk keeps it data (it may hold data) */
	EXPECT_OK(nexus_dev_trim(dev, 2 * K64, 4096, 0));
	n = nexus_dev_block_status(dev, 2 * K64, K64, e, 16);
	CU_ASSERT_EQUAL(n, 1);
	/* trimming the whole chunk makes it a hole again */
	EXPECT_OK(nexus_dev_trim(dev, 2 * K64, K64, 0));
	n = nexus_dev_block_status(dev, 0, 1 << 20, e, 16);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(e[0].flags, HOLE);
	/* write-zeroes too */
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 4096, 5 * K64, 0), 4096);
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 4096, 7 * K64, 0), 4096);
	n = nexus_dev_block_status(dev, 0, 1 << 20, e, 16);
	CU_ASSERT_EQUAL(n, 5);
	CU_ASSERT(extents_sane(e, n, 0, 1 << 20));
	EXPECT_OK(nexus_dev_write_zeroes(dev, 4 * K64, 4 * K64, 0));
	n = nexus_dev_block_status(dev, 0, 1 << 20, e, 16);
	CU_ASSERT_EQUAL(n, 1);
	/* the last chunk of the device */
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 512, (1ull << 30) - 512, 0),
		      512);
	n = nexus_dev_block_status(dev, (1ull << 30) - 2 * K64, 2 * K64, e, 16);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(e[1].flags, 0);
	CU_ASSERT_EQUAL(e[1].offset + e[1].length, 1ull << 30);
	/* bad ranges */
	EXPECT_ERR(nexus_dev_block_status(dev, 0, 0, e, 16), -EINVAL,
		   "past the end");
	EXPECT_ERR(nexus_dev_block_status(dev, 1ull << 30, 512, e, 16),
		   -EINVAL, "past the end");
	EXPECT_ERR(nexus_dev_block_status(dev, 512, UINT64_MAX, e, 16),
		   -EINVAL, "past the end");
	nexus_dev_close(dev);
}

/* A device of an odd size: the last chunk is partial. */
static void test_odd_size(void)
{
	struct nexus_dev *dev = unit_open(ctx, "mem:size=100K");
	struct nexus_extent e[4];
	char buf[2048];
	int n;

	memset(buf, 2, sizeof(buf));
	EXPECT_EQ_MSG(nexus_dev_pwrite(dev, buf, 2048, 100 * 1024 - 2048, 0),
		      2048);
	EXPECT_OK(nexus_dev_trim(dev, 65536, 100 * 1024 - 65536, 0));
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, 2048, 100 * 1024 - 2048), 2048);
	CU_ASSERT(unit_is_zero(buf, 2048));
	n = nexus_dev_block_status(dev, 0, 100 * 1024, e, 4);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(e[0].length, 100 * 1024);
	CU_ASSERT_EQUAL(e[0].flags, HOLE);
	nexus_dev_close(dev);
}

static const struct unit_test tests[] = {
	{ "info", test_info },
	{ "bad options", test_bad_options },
	{ "sparse: 64 GiB costs nothing", test_sparse },
	{ "trim and write-zeroes", test_trim_zeroes },
	{ "block status", test_block_status },
	{ "odd size", test_odd_size },
	{ NULL, NULL },
};

int main(void)
{
	int rc;

	ctx = unit_ctx(2);
	rc = unit_main("mem", tests);
	nexus_ctx_destroy(ctx);
	return rc;
}
