/* SPDX-License-Identifier: MIT */
/* The example plugins, built in tree with the configured flags
 * (sanitizers included) and loaded from EXAMPLES_DIR:
 *   - pattern: every byte matches its formula, through odd iovecs; it
 *     is read-only and declares no TRIM;
 *   - checksum: data written through it reads back; a block changed
 *     behind its back fails with -EIO and a log line; TRIM and
 *     WRITE_ZEROES keep the sums right; it does not advertise what the
 *     device below cannot do; with a sidecar the sums survive a close and
 *     reopen (and are the CRC32C an independent implementation computes),
 *     FUA writes persist them at once, a sidecar of another geometry is
 *     refused. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nexus/nexus.h>

#include "check.h"

#ifndef EXAMPLES_DIR
#error EXAMPLES_DIR must name the directory of the built example plugins
#endif

static char tmp[256];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char errors[8192];

static void log_fn(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level > NEXUS_LOG_WARN)
		return;
	pthread_mutex_lock(&log_lock);
	if (strlen(errors) + strlen(msg) + 2 < sizeof(errors)) {
		strcat(errors, msg);
		strcat(errors, "\n");
	}
	pthread_mutex_unlock(&log_lock);
}

static bool logged(const char *what)
{
	bool r;

	pthread_mutex_lock(&log_lock);
	r = strstr(errors, what) != NULL;
	errors[0] = '\0';
	pthread_mutex_unlock(&log_lock);
	return r;
}

/* bitwise CRC32C, independent of the plugin's */
static uint32_t ref_crc32c(const unsigned char *p, size_t n)
{
	uint32_t c = ~0u;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

static unsigned char pattern_byte(uint64_t pos, uint64_t seed)
{
	return (unsigned char)(((pos & ~7ull) ^ seed) >> (56 - 8 * (pos & 7)));
}

static void test_pattern(struct nexus_ctx *ctx)
{
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	struct nexus_dev *dev = NULL;
	static unsigned char buf[256 * 1024];
	struct iovec iov[3];
	ssize_t n;
	int rc;

	rc = nexus_dev_open(ctx, "pattern:size=4M,seed=0x1234", &dev);
	CHECK(rc == 0, "open pattern: %s", nexus_last_error());
	if (rc)
		return;
	nexus_dev_get_info(dev, &info);
	CHECK(info.dev_size == 4 << 20, "size %llu",
	      (unsigned long long)info.dev_size);
	CHECK(info.flags & NEXUS_DEV_READ_ONLY, "not read-only");
	/* odd iovec lengths, offsets that are not word-aligned in them */
	iov[0].iov_base = buf;
	iov[0].iov_len = 3;
	iov[1].iov_base = buf + 3;
	iov[1].iov_len = 1000;
	iov[2].iov_base = buf + 1003;
	iov[2].iov_len = 2 * 4096 - 1003;
	n = nexus_dev_preadv(dev, iov, 3, 512 * 7);
	CHECK(n == 2 * 4096, "preadv %zd: %s", n, nexus_last_error());
	for (size_t i = 0; i < 2 * 4096; i++)
		if (buf[i] != pattern_byte(512 * 7 + i, 0x1234)) {
			CHECK(0, "byte %zu differs", i);
			break;
		}
	n = nexus_dev_pread(dev, buf, sizeof(buf), (4 << 20) - sizeof(buf));
	CHECK(n == (ssize_t)sizeof(buf), "pread: %s", nexus_last_error());
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != pattern_byte((4 << 20) - sizeof(buf) + i, 0x1234)) {
			CHECK(0, "byte %zu at the end differs", i);
			break;
		}
	CHECK(nexus_dev_pwrite(dev, buf, 512, 0, 0) == -EOPNOTSUPP, "write");
	CHECK(nexus_dev_trim(dev, 0, 512, 0) == -EOPNOTSUPP, "trim");
	CHECK(nexus_dev_flush(dev) == 0, "flush: %s", nexus_last_error());
	nexus_dev_close(dev);

	rc = nexus_dev_open(ctx, "pattern:size=1000", &dev);
	CHECK(rc == -EINVAL && strstr(nexus_last_error(), "multiple"),
	      "bad size: %d %s", rc, nexus_last_error());
	rc = nexus_dev_open(ctx, "pattern", &dev);
	CHECK(rc == -EINVAL && strstr(nexus_last_error(), "size"),
	      "no size: %d %s", rc, nexus_last_error());

	/* checksum over a read-only source without TRIM */
	rc = nexus_dev_open(ctx, "pattern:size=1M | checksum", &dev);
	CHECK(rc == 0, "pattern | checksum: %s", nexus_last_error());
	if (rc == 0) {
		nexus_dev_get_info(dev, &info);
		CHECK(info.flags & NEXUS_DEV_READ_ONLY, "read-only lost");
		CHECK(!(info.ops & NEXUS_OP_BIT(NEXUS_OP_TRIM)),
		      "advertises TRIM the source cannot do");
		CHECK(nexus_dev_trim(dev, 0, 4096, 0) == -EOPNOTSUPP, "trim");
		CHECK(nexus_dev_pwrite(dev, buf, 4096, 0, 0) == -EOPNOTSUPP,
		      "write");
		n = nexus_dev_pread(dev, buf, 65536, 8192);
		CHECK(n == 65536 && buf[0] == pattern_byte(8192, 0),
		      "read: %zd", n);
		nexus_dev_close(dev);
	}
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 31 + (i >> 9));
}

static void corrupt(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char b = 0;

	if (fd < 0 || pread(fd, &b, 1, off) != 1) {
		perror(path);
		exit(1);
	}
	b ^= 0x40;
	if (pwrite(fd, &b, 1, off) != 1) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static void test_checksum_memory(struct nexus_ctx *ctx)
{
	static unsigned char a[128 * 1024], b[sizeof(a)];
	char path[300], pl[400];
	struct nexus_dev *dev = NULL;
	struct iovec iov[2];
	ssize_t n;
	int rc;

	snprintf(path, sizeof(path), "%s/data.img", tmp);
	snprintf(pl, sizeof(pl), "file:%s,create=on,size=4M | checksum", path);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == 0, "open %s: %s", pl, nexus_last_error());
	if (rc)
		return;
	fill(a, sizeof(a), 1);
	/* a block split across two iovec entries */
	iov[0].iov_base = a;
	iov[0].iov_len = 4096 + 100;
	iov[1].iov_base = a + 4096 + 100;
	iov[1].iov_len = sizeof(a) - 4096 - 100;
	n = nexus_dev_pwritev(dev, iov, 2, 1 << 20, 0);
	CHECK(n == (ssize_t)sizeof(a), "write: %s", nexus_last_error());
	n = nexus_dev_pread(dev, b, sizeof(b), 1 << 20);
	CHECK(n == (ssize_t)sizeof(b) && !memcmp(a, b, sizeof(a)),
	      "read back: %zd %s", n, nexus_last_error());
	/* never written: unverified, reads */
	n = nexus_dev_pread(dev, b, 4096, 0);
	CHECK(n == 4096, "unwritten block: %s", nexus_last_error());
	CHECK(nexus_dev_flush(dev) == 0, "flush: %s", nexus_last_error());

	/* change one byte of block 260 behind its back */
	corrupt(path, (1 << 20) + 4 * 4096 + 123);
	n = nexus_dev_pread(dev, b, sizeof(b), 1 << 20);
	CHECK(n == -EIO, "corrupted read: %zd", n);
	CHECK(logged("block 260"), "no log line naming block 260");
	n = nexus_dev_pread(dev, b, 4096, (1 << 20) + 3 * 4096);
	CHECK(n == 4096, "neighbour block: %zd", n);
	/* rewriting the block through checksum makes it good again */
	n = nexus_dev_pwrite(dev, a + 4 * 4096, 4096, (1 << 20) + 4 * 4096, 0);
	CHECK(n == 4096, "rewrite: %s", nexus_last_error());
	n = nexus_dev_pread(dev, b, sizeof(b), 1 << 20);
	CHECK(n == (ssize_t)sizeof(b) && !memcmp(a, b, sizeof(a)),
	      "after rewrite: %zd", n);
	/* zeroing and trimming record zero blocks */
	CHECK(nexus_dev_write_zeroes(dev, 1 << 20, 8192, 0) == 0,
	      "write zeroes: %s", nexus_last_error());
	CHECK(nexus_dev_trim(dev, (1 << 20) + 8192, 8192, 0) == 0,
	      "trim: %s", nexus_last_error());
	n = nexus_dev_pread(dev, b, 16384, 1 << 20);
	CHECK(n == 16384, "read zeroed: %zd %s", n, nexus_last_error());
	CHECK(!logged("checksum"), "errors logged for zeroed blocks");
	/* misaligned for checksum's 4K blocks */
	n = nexus_dev_pread(dev, b, 512, 0);
	CHECK(n == -EINVAL, "512-byte read: %zd", n);
	nexus_dev_close(dev);

	snprintf(pl, sizeof(pl), "file:%s | checksum:block-size=3000", path);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == -EINVAL && strstr(nexus_last_error(), "power of two"),
	      "block-size 3000: %d %s", rc, nexus_last_error());
}

static uint64_t sidecar_entry(const char *path, uint64_t block)
{
	unsigned char e[8];
	uint64_t v = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || pread(fd, e, 8, 4096 + 8 * block) != 8) {
		perror(path);
		exit(1);
	}
	close(fd);
	for (int i = 7; i >= 0; i--)
		v = v << 8 | e[i];
	return v;
}

static void test_checksum_sidecar(struct nexus_ctx *ctx)
{
	static unsigned char a[64 * 1024], b[sizeof(a)];
	char data[300], sums[300], pl[800];
	struct nexus_dev *dev = NULL;
	uint64_t e;
	ssize_t n;
	int rc;

	CHECK(ref_crc32c((const unsigned char *)"123456789", 9) == 0xe3069283,
	      "reference CRC32C");
	snprintf(data, sizeof(data), "%s/side-data.img", tmp);
	snprintf(sums, sizeof(sums), "%s/side.sums", tmp);
	/* 8 MiB / 4 KiB = 2048 sums = 16 KiB, plus a 4 KiB header */
	snprintf(pl, sizeof(pl), "(file:%s,create=on,size=8M ; "
		 "file:%s,create=on,size=20K) | checksum", data, sums);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == 0, "open %s: %s", pl, nexus_last_error());
	if (rc)
		return;
	fill(a, sizeof(a), 7);
	n = nexus_dev_pwrite(dev, a, sizeof(a), 6 << 20, 0);
	CHECK(n == (ssize_t)sizeof(a), "write: %s", nexus_last_error());
	CHECK(sidecar_entry(sums, (6 << 20) / 4096) == 0,
	      "sum persisted before a flush");
	CHECK(nexus_dev_flush(dev) == 0, "flush: %s", nexus_last_error());
	e = sidecar_entry(sums, (6 << 20) / 4096 + 1);
	CHECK(e == ((1ull << 32) | ref_crc32c(a + 4096, 4096)),
	      "sidecar entry %llx", (unsigned long long)e);
	/* FUA: persisted without a flush */
	n = nexus_dev_pwrite(dev, a, 4096, 0, NEXUS_IO_FUA);
	CHECK(n == 4096, "FUA write: %s", nexus_last_error());
	e = sidecar_entry(sums, 0);
	CHECK(e == ((1ull << 32) | ref_crc32c(a, 4096)),
	      "FUA entry %llx", (unsigned long long)e);
	/* written without flush: saved at close */
	n = nexus_dev_pwrite(dev, a, 8192, 4 << 20, 0);
	CHECK(n == 8192, "write: %s", nexus_last_error());
	nexus_dev_close(dev);
	e = sidecar_entry(sums, (4 << 20) / 4096);
	CHECK(e == ((1ull << 32) | ref_crc32c(a, 4096)),
	      "entry saved at close %llx", (unsigned long long)e);

	/* another run detects what happened in between */
	corrupt(data, (6 << 20) + 5 * 4096);
	snprintf(pl, sizeof(pl), "(file:%s ; file:%s) | checksum", data, sums);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == 0, "reopen: %s", nexus_last_error());
	if (rc == 0) {
		n = nexus_dev_pread(dev, b, sizeof(b), 6 << 20);
		CHECK(n == -EIO, "corrupted read after reopen: %zd", n);
		CHECK(logged("recorded"), "no mismatch logged");
		n = nexus_dev_pread(dev, b, 4096, 4 << 20);
		CHECK(n == 4096 && !memcmp(a, b, 4096), "good block: %zd", n);
		nexus_dev_close(dev);
	}
	/* verify=off reads anything */
	snprintf(pl, sizeof(pl), "(file:%s ; file:%s) | checksum:verify=off",
		 data, sums);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == 0, "verify=off: %s", nexus_last_error());
	if (rc == 0) {
		n = nexus_dev_pread(dev, b, sizeof(b), 6 << 20);
		CHECK(n == (ssize_t)sizeof(b), "verify=off read: %zd", n);
		nexus_dev_close(dev);
	}
	/* a sidecar of another geometry, a sidecar too small */
	snprintf(pl, sizeof(pl), "(file:%s ; file:%s) | checksum:block-size=8K",
		 data, sums);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == -EINVAL && strstr(nexus_last_error(), "made for"),
	      "other geometry: %d %s", rc, nexus_last_error());
	snprintf(pl, sizeof(pl), "(file:%s ; mem:size=8K) | checksum", data);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == -ENOSPC && strstr(nexus_last_error(), "needs"),
	      "small sidecar: %d %s", rc, nexus_last_error());
	snprintf(pl, sizeof(pl), "(file:%s ; mem:8K ; mem:8K) | checksum",
		 data);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == -EINVAL, "three children: %d %s", rc, nexus_last_error());
}

/* Writes and reads from several threads, so several reactors, at once. */
struct worker {
	struct nexus_dev *dev;
	unsigned id;
	int bad;
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	unsigned char a[16384], b[sizeof(a)];

	for (unsigned round = 0; round < 200; round++) {
		uint64_t off = ((uint64_t)w->id * 64 + round % 64) * sizeof(a);

		fill(a, sizeof(a), w->id * 1000 + round);
		if (nexus_dev_pwrite(w->dev, a, sizeof(a), off, 0) !=
			    (ssize_t)sizeof(a) ||
		    nexus_dev_pread(w->dev, b, sizeof(b), off) !=
			    (ssize_t)sizeof(b) ||
		    memcmp(a, b, sizeof(a)))
			w->bad++;
		if (round % 50 == 49 && nexus_dev_flush(w->dev))
			w->bad++;
	}
	return NULL;
}

static void test_checksum_threads(struct nexus_ctx *ctx)
{
	char pl[800];
	struct nexus_dev *dev = NULL;
	struct worker w[4];
	pthread_t t[4];
	int rc;

	snprintf(pl, sizeof(pl), "(file:%s/mt.img,create=on,size=8M ; "
		 "mem:size=64K) | checksum", tmp);
	rc = nexus_dev_open(ctx, pl, &dev);
	CHECK(rc == 0, "open: %s", nexus_last_error());
	if (rc)
		return;
	for (unsigned i = 0; i < 4; i++) {
		w[i].dev = dev;
		w[i].id = i;
		w[i].bad = 0;
		pthread_create(&t[i], NULL, worker_fn, &w[i]);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].bad == 0, "worker %u: %d failures", i, w[i].bad);
	}
	nexus_dev_close(dev);
}

int main(void)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx;

	o.reactors = 2;
	o.plugin_path = EXAMPLES_DIR;
	o.log_fn = log_fn;
	o.log_level = NEXUS_LOG_WARN;
	ctx = check_ctx(&o);
	check_scratch(tmp, sizeof(tmp), "examples");
	test_pattern(ctx);
	test_checksum_memory(ctx);
	test_checksum_sidecar(ctx);
	test_checksum_threads(ctx);
	nexus_ctx_destroy(ctx);
	check_rmtree(tmp);
	return check_status("example plugins");
}
