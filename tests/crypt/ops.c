/* SPDX-License-Identifier: MIT */
/* crypt: what the stage advertises and how each operation behaves.
 *  - declared ops: READ, WRITE, FLUSH, WRITE_ZEROES; TRIM only with
 *    discard=on; never TRIM_ZEROES or BLOCK_STATUS (block status through
 *    crypt is data, even over a hole); FAST_ZERO refused;
 *  - a read-only device below makes crypt read-only;
 *  - many I/Os in flight on two reactors, with iovecs that cut sectors,
 *    large writes and chunked WRITE_ZEROES, checked against a model;
 *  - two crypt stages stack; one stage alone does not decrypt them;
 *  - a registered key can be unregistered while its device is open. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nexus/nexus.h>
#include "../submit.h"

#define DEV_SIZE (8u << 20)
#define SLOTS 32
#define REGION (DEV_SIZE / SLOTS)
#define OPS_PER_SLOT 40

static int failures;
static char dir[64];
static struct nexus_ctx *ctx;

#define CHECK(cond, ...)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
			printf(__VA_ARGS__);                                \
			printf(" [%s]\n", nexus_last_error());              \
			failures++;                                         \
		}                                                           \
	} while (0)

static unsigned long long rng = 88172645463325252ull;
static unsigned long long rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)rnd();
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static void write_file(const char *name, const void *data, size_t len)
{
	char path[128];
	FILE *f;

	path_of(path, sizeof(path), name);
	f = fopen(path, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f)) {
		perror(path);
		exit(99);
	}
}

static struct nexus_dev *open_dev(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static struct nexus_dev *open_dev(const char *fmt, ...)
{
	char text[512];
	struct nexus_dev *d = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	rc = nexus_dev_open(ctx, text, &d);
	if (rc) {
		printf("FAIL: open '%s': %s\n", text, nexus_last_error());
		exit(1);
	}
	return d;
}

/* ---- many I/Os in flight against a model ---- */

struct slot {
	unsigned idx;
	int op;
	uint64_t off;
	size_t len;
	unsigned char *buf;
	struct iovec iov[64];
	int iovcnt;
	int result;
	bool done;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned char *model;

static void io_cb(void *ud, int res)
{
	struct slot *s = ud;

	pthread_mutex_lock(&mu);
	s->result = res;
	s->done = true;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}

static int cut(struct slot *s)
{
	size_t left = s->len;
	unsigned char *p = s->buf;
	int n = 0;

	while (left) {
		size_t l = n == 63 ? left : 1 + (size_t)(rnd() % 2000);

		if (l > left)
			l = left;
		s->iov[n].iov_base = p;
		s->iov[n].iov_len = l;
		p += l;
		left -= l;
		n++;
	}
	return n;
}

static void start(struct nexus_dev *dev, struct slot *s, unsigned ss,
		  unsigned char *copy)
{
	unsigned r = (unsigned)(rnd() % 10);
	size_t sectors = REGION / ss;
	uint64_t first = rnd() % sectors, n = 1 + rnd() % (sectors - first);
	int rc;

	s->off = (uint64_t)s->idx * REGION + first * ss;
	s->len = (size_t)n * ss;
	s->done = false;
	s->op = r < 5 ? NEXUS_OP_READ : r < 9 ? NEXUS_OP_WRITE
					      : NEXUS_OP_WRITE_ZEROES;
	if (s->op == NEXUS_OP_WRITE_ZEROES) {
		rc = test_submit(dev, s->op, NULL, 0, s->off, s->len, 0,
				      io_cb, s);
	} else {
		if (s->op == NEXUS_OP_WRITE) {
			fill(s->buf, s->len);
			memcpy(copy, s->buf, s->len);
		}
		else
			memset(s->buf, 0x5a, s->len);
		s->iovcnt = cut(s);
		rc = test_submit(dev, s->op, s->iov, s->iovcnt, s->off, 0,
				      0, io_cb, s);
	}
	if (rc) {
		CHECK(0, "submit op %d at %llu: %d", s->op,
		      (unsigned long long)s->off, rc);
		s->done = true;
		s->result = rc;
	}
}

/* Check a finished slot against the model and update the model. */
static void finish(struct slot *s, unsigned char *copy)
{
	if (s->result < 0) {
		CHECK(0, "op %d at %llu len %zu failed: %d", s->op,
		      (unsigned long long)s->off, s->len, s->result);
		return;
	}
	switch (s->op) {
	case NEXUS_OP_READ:
		CHECK(!memcmp(s->buf, model + s->off, s->len),
		      "read at %llu len %zu: wrong data",
		      (unsigned long long)s->off, s->len);
		break;
	case NEXUS_OP_WRITE:
		CHECK(!memcmp(s->buf, copy, s->len),
		      "write at %llu modified the caller's buffer",
		      (unsigned long long)s->off);
		memcpy(model + s->off, s->buf, s->len);
		break;
	default:
		memset(model + s->off, 0, s->len);
	}
}

static void stress(struct nexus_dev *dev, unsigned ss)
{
	static struct slot slots[SLOTS];
	static unsigned char copies[SLOTS][REGION];
	unsigned left = SLOTS * OPS_PER_SLOT, active = 0;
	unsigned started[SLOTS] = { 0 };
	unsigned char *buf;

	model = calloc(1, DEV_SIZE);
	buf = malloc(DEV_SIZE);
	/* start from a known state: everything written */
	fill(model, DEV_SIZE);
	CHECK(nexus_dev_pwrite(dev, model, DEV_SIZE, 0, 0) == DEV_SIZE,
	      "initial write");
	for (unsigned i = 0; i < SLOTS; i++) {
		slots[i].idx = i;
		slots[i].buf = malloc(REGION);
		start(dev, &slots[i], ss, copies[i]);
		started[i] = 1;
		active++;
		left--;
	}
	while (active) {
		pthread_mutex_lock(&mu);
		for (;;) {
			unsigned i;

			for (i = 0; i < SLOTS; i++)
				if (slots[i].done && started[i])
					break;
			if (i < SLOTS) {
				slots[i].done = false;
				pthread_mutex_unlock(&mu);
				finish(&slots[i], copies[i]);
				active--;
				started[i] = 0;
				if (left) {
					start(dev, &slots[i], ss, copies[i]);
					started[i] = 1;
					active++;
					left--;
				}
				pthread_mutex_lock(&mu);
				if (!active)
					break;
				continue;
			}
			pthread_cond_wait(&cv, &mu);
		}
		pthread_mutex_unlock(&mu);
	}
	CHECK(nexus_dev_pread(dev, buf, DEV_SIZE, 0) == DEV_SIZE, "final read");
	CHECK(!memcmp(buf, model, DEV_SIZE), "final contents differ from the "
	      "model");
	/* one large write and one large WRITE_ZEROES */
	fill(model, 4u << 20);
	CHECK(nexus_dev_pwrite(dev, model, 4u << 20, 1u << 20, 0) == 4u << 20,
	      "4 MiB write");
	CHECK(nexus_dev_pread(dev, buf, 4u << 20, 1u << 20) == 4u << 20,
	      "4 MiB read");
	CHECK(!memcmp(buf, model, 4u << 20), "4 MiB write reads back wrong");
	CHECK(nexus_dev_write_zeroes(dev, ss, DEV_SIZE - 2 * ss, NEXUS_IO_FUA)
		      == 0, "write-zeroes of the whole device");
	CHECK(nexus_dev_pread(dev, buf, DEV_SIZE, 0) == DEV_SIZE, "read");
	for (size_t i = ss; i < DEV_SIZE - ss; i++)
		if (buf[i]) {
			CHECK(0, "byte %zu is not zero after write-zeroes", i);
			break;
		}
	for (unsigned i = 0; i < SLOTS; i++)
		free(slots[i].buf);
	free(buf);
	free(model);
}

int main(void)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	const uint32_t base = NEXUS_OP_BIT(NEXUS_OP_READ) |
			      NEXUS_OP_BIT(NEXUS_OP_WRITE) |
			      NEXUS_OP_BIT(NEXUS_OP_FLUSH) |
			      NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
			      NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS);
	unsigned char key[64], key2[64], *a, *b;
	struct nexus_extent ext[8];
	struct nexus_dev *dev;
	char img[128], path[128];
	int n;

	umask(077);
	snprintf(dir, sizeof(dir), "%s/crypt-ops.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return 99;
	fill(key, 64);
	fill(key2, 64);
	write_file("k", key, 64);
	write_file("k2", key2, 64);
	path_of(img, sizeof(img), "img");
	o.reactors = 2;
	o.log_level = NEXUS_LOG_ERROR;
	if (nexus_ctx_create(&o, &ctx))
		return 99;
	a = malloc(1 << 20);
	b = malloc(1 << 20);

	/* advertised operations and flags over a sparse file */
	{
		FILE *f = fopen(img, "wb");

		if (!f || ftruncate(fileno(f), 16 << 20) || fclose(f))
			return 99;
	}
	dev = open_dev("file:%s | crypt:key-file=%s/k", img, dir);
	nexus_dev_get_info(dev, &info);
	CHECK(info.ops == base, "ops 0x%x, expected 0x%x", info.ops, base);
	CHECK(!(info.flags & (NEXUS_DEV_TRIM_ZEROES | NEXUS_DEV_BLOCK_STATUS)),
	      "flags 0x%x claim trim-zeroes or block status", info.flags);
	CHECK(info.logical_block_size == 512 && info.dev_size == 16 << 20,
	      "lbs %u size %llu", info.logical_block_size,
	      (unsigned long long)info.dev_size);
	CHECK(nexus_dev_trim(dev, 0, 4096, 0) == -EOPNOTSUPP,
	      "TRIM without discard=on is refused");
	CHECK(nexus_dev_write_zeroes(dev, 0, 4096, NEXUS_IO_FAST_ZERO) ==
		      -EOPNOTSUPP, "FAST_ZERO is refused");
	CHECK(nexus_dev_flush(dev) == 0, "flush");
	/* the hole below stays a hole, never a zero range: it decrypts to
	 * noise (doc/crypt.md) */
	n = nexus_dev_block_status(dev, 0, 16 << 20, ext, 8);
	CHECK(n == 1 && ext[0].flags == NEXUS_EXTENT_HOLE &&
	      ext[0].length == 16 << 20,
	      "block status through crypt: %d extents, flags 0x%x", n,
	      n > 0 ? ext[0].flags : 0);
	nexus_dev_close(dev);
	dev = open_dev("file:%s", img);
	n = nexus_dev_block_status(dev, 0, 16 << 20, ext, 8);
	CHECK(n >= 1 && (ext[0].flags & NEXUS_EXTENT_HOLE),
	      "the file below reports a hole (or this test proves nothing)");
	nexus_dev_close(dev);

	/* discard=on: TRIM passes down; trimmed data is unspecified */
	dev = open_dev("file:%s | crypt:key-file=%s/k,discard=on,"
		       "sector-size=4096", img, dir);
	nexus_dev_get_info(dev, &info);
	CHECK(info.ops == (base | NEXUS_OP_BIT(NEXUS_OP_TRIM)),
	      "discard=on: ops 0x%x", info.ops);
	CHECK(!(info.flags & NEXUS_DEV_TRIM_ZEROES), "claims trim-zeroes");
	CHECK(info.logical_block_size == 4096, "lbs %u",
	      info.logical_block_size);
	fill(a, 65536);
	CHECK(nexus_dev_pwrite(dev, a, 65536, 0, 0) == 65536, "write");
	CHECK(nexus_dev_trim(dev, 0, 65536, 0) == 0, "trim");
	CHECK(nexus_dev_pread(dev, b, 65536, 0) == 65536, "read after trim");
	CHECK(nexus_dev_pread(dev, b, 512, 0) == -EINVAL,
	      "a 512-byte read of a 4096-sector device is refused");
	nexus_dev_close(dev);

	/* read-only below: read-only above */
	dev = open_dev("file:%s,readonly=on | crypt:key-file=%s/k", img, dir);
	nexus_dev_get_info(dev, &info);
	CHECK(info.flags & NEXUS_DEV_READ_ONLY, "not read-only");
	CHECK(nexus_dev_pwrite(dev, a, 4096, 0, 0) == -EROFS, "write refused");
	CHECK(nexus_dev_pread(dev, b, 4096, 0) == 4096, "read");
	nexus_dev_close(dev);

	/* many I/Os in flight, two reactors, cut iovecs */
	dev = open_dev("mem:size=%u | crypt:key-file=%s/k", DEV_SIZE, dir);
	stress(dev, 512);
	nexus_dev_close(dev);
	dev = open_dev("file:%s | crypt:key-file=%s/k,sector-size=4096,"
		       "key-size=512", img, dir);
	stress(dev, 4096);
	nexus_dev_close(dev);

	/* two stages stack; one alone does not decrypt */
	dev = open_dev("file:%s | crypt:key-file=%s/k | crypt:key-file=%s/k2",
		       img, dir, dir);
	fill(a, 1 << 20);
	CHECK(nexus_dev_pwrite(dev, a, 1 << 20, 0, 0) == 1 << 20, "write");
	CHECK(nexus_dev_pread(dev, b, 1 << 20, 0) == 1 << 20, "read");
	CHECK(!memcmp(a, b, 1 << 20), "two crypt stages: wrong data");
	nexus_dev_close(dev);
	dev = open_dev("file:%s | crypt:key-file=%s/k", img, dir);
	CHECK(nexus_dev_pread(dev, b, 1 << 20, 0) == 1 << 20, "read");
	CHECK(memcmp(a, b, 4096), "one stage of two decrypted everything");
	nexus_dev_close(dev);

	/* a registered key, unregistered while in use */
	CHECK(nexus_ctx_secret_set(ctx, "vol", key, 64) == 0, "register");
	dev = open_dev("file:%s | crypt:key-name=vol", img);
	CHECK(nexus_ctx_secret_remove(ctx, "vol") == 0, "unregister");
	CHECK(nexus_dev_pwrite(dev, a, 65536, 0, 0) == 65536, "write");
	nexus_dev_close(dev);
	dev = open_dev("file:%s | crypt:key-file=%s/k", img, dir);
	CHECK(nexus_dev_pread(dev, b, 65536, 0) == 65536, "read");
	CHECK(!memcmp(a, b, 65536), "key-name and key-file disagree");
	nexus_dev_close(dev);
	/* left registered: nexus_ctx_destroy wipes it (ASan sees a leak if
	 * not) */
	CHECK(nexus_ctx_secret_set(ctx, "left", key, 64) == 0, "register");

	nexus_ctx_destroy(ctx);
	free(a);
	free(b);
	unlink(img);
	path_of(path, sizeof(path), "k");
	unlink(path);
	path_of(path, sizeof(path), "k2");
	unlink(path);
	rmdir(dir);
	if (failures)
		printf("%d failure(s)\n", failures);
	else
		printf("all passed\n");
	return failures ? 1 : 0;
}
