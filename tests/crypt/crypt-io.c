/* SPDX-License-Identifier: MIT */
/* crypt-io: drive one pipeline from the tests of the crypt stage.
 *
 *   crypt-io [-K NAME:KEYFILE] [-S SEED] [-g MAXSEG] [-c CHUNK] PIPELINE CMD...
 *     write OFFSET INFILE     write INFILE at OFFSET
 *     read OFFSET LEN OUTFILE read LEN bytes at OFFSET into OUTFILE
 *     zero OFFSET LEN         WRITE_ZEROES
 *     info                    print size, block sizes, ops and flags
 *     serve                   PIPELINE ends with an export: run it, print
 *                             "serving" and wait for SIGTERM or SIGINT
 *
 * READ and WRITE go in requests of CHUNK bytes (default 64K), each with
 * its buffer cut into iovec segments of random lengths from 1 to MAXSEG
 * bytes (default 0: one segment), so that sectors straddle segments.
 * After each write the caller's buffer is compared with a copy: the
 * crypt stage must never modify it.  -K registers the raw key in
 * KEYFILE under NAME with nexus_ctx_secret_set() first. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nexus/nexus.h>

static unsigned long long seed = 1;
static size_t maxseg, chunk = 64 << 10;

static unsigned long long rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

static int die(const char *what, long long rc)
{
	fprintf(stderr, "crypt-io: %s: %s (%lld)\n", what, nexus_last_error(),
		rc);
	return 1;
}

/* Cut buf[0..len) into random segments. */
static int cut(unsigned char *buf, size_t len, struct iovec *iov, int max)
{
	int n = 0;

	while (len) {
		size_t l = len;

		if (maxseg && n < max - 1) {
			l = 1 + (size_t)(rnd() % maxseg);
			if (l > len)
				l = len;
		}
		iov[n].iov_base = buf;
		iov[n].iov_len = l;
		n++;
		buf += l;
		len -= l;
	}
	return n;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) &&
	    fread(b, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

static int do_write(struct nexus_dev *dev, unsigned long long off,
		    const char *path)
{
	static struct iovec iov[1024];
	unsigned char *data, *copy;
	size_t len, pos;

	data = slurp(path, &len);
	if (!data) {
		perror(path);
		return 1;
	}
	copy = malloc(len + 1);
	memcpy(copy, data, len);
	for (pos = 0; pos < len; pos += chunk) {
		size_t l = len - pos < chunk ? len - pos : chunk;
		int n = cut(data + pos, l, iov, 1024);
		ssize_t r = nexus_dev_pwritev(dev, iov, n, off + pos, 0);

		if (r != (ssize_t)l)
			return die("write", r);
		if (memcmp(data + pos, copy + pos, l)) {
			fprintf(stderr, "crypt-io: the caller's buffer changed "
					"during a write at %llu\n",
				off + pos);
			return 1;
		}
	}
	free(copy);
	free(data);
	return 0;
}

static int do_read(struct nexus_dev *dev, unsigned long long off, size_t len,
		   const char *path)
{
	static struct iovec iov[1024];
	unsigned char *data = malloc(len + 1);
	FILE *f;

	memset(data, 0xa5, len);
	for (size_t pos = 0; pos < len; pos += chunk) {
		size_t l = len - pos < chunk ? len - pos : chunk;
		int n = cut(data + pos, l, iov, 1024);
		ssize_t r = nexus_dev_preadv(dev, iov, n, off + pos);

		if (r != (ssize_t)l)
			return die("read", r);
	}
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		perror(path);
		return 1;
	}
	free(data);
	return 0;
}

static int register_key(struct nexus_ctx *ctx, char *spec)
{
	char *colon = strchr(spec, ':');
	unsigned char *key;
	size_t len;
	int rc;

	if (!colon) {
		fprintf(stderr, "crypt-io: -K NAME:KEYFILE\n");
		return 1;
	}
	*colon = '\0';
	key = slurp(colon + 1, &len);
	if (!key) {
		perror(colon + 1);
		return 1;
	}
	rc = nexus_ctx_secret_set(ctx, spec, key, len);
	memset(key, 0, len);
	free(key);
	return rc ? die("nexus_ctx_secret_set", rc) : 0;
}

int main(int argc, char **argv)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	char *keyspec = NULL;
	int rc = 2, i = 1;

	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "-K"))
			keyspec = argv[i + 1];
		else if (!strcmp(argv[i], "-S"))
			seed = strtoull(argv[i + 1], NULL, 0) | 1;
		else if (!strcmp(argv[i], "-g"))
			maxseg = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "-c"))
			chunk = strtoull(argv[i + 1], NULL, 0);
		else
			break;
	}
	if (argc - i < 2 || !chunk) {
		fprintf(stderr, "usage: crypt-io [-K NAME:KEYFILE] [-S SEED] "
				"[-g MAXSEG] [-c CHUNK] PIPELINE "
				"write OFF FILE | read OFF LEN FILE | "
				"zero OFF LEN | info | serve\n");
		return 2;
	}
	o.reactors = 2;
	if (nexus_ctx_create(&o, &ctx))
		return die("nexus_ctx_create", -1);
	if (keyspec && register_key(ctx, keyspec)) {
		nexus_ctx_destroy(ctx);
		return 1;
	}
	if (!strcmp(argv[i + 1], "serve") && argc - i == 2) {
		struct nexus_pipeline *pl;
		sigset_t set;
		int sig;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		rc = nexus_pipeline_open(ctx, argv[i], &pl);
		if (rc) {
			fprintf(stderr, "%s\n", nexus_last_error());
			nexus_ctx_destroy(ctx);
			return 1;
		}
		printf("serving\n");
		fflush(stdout);
		sigwait(&set, &sig);
		nexus_pipeline_close(pl);
		nexus_ctx_destroy(ctx);
		return 0;
	}
	rc = nexus_dev_open(ctx, argv[i], &dev);
	if (rc) {
		/* the message alone on stderr: tests match it */
		fprintf(stderr, "%s\n", nexus_last_error());
		nexus_ctx_destroy(ctx);
		return 1;
	}
	nexus_dev_get_info(dev, &info);
	if (!strcmp(argv[i + 1], "write") && argc - i == 4)
		rc = do_write(dev, strtoull(argv[i + 2], NULL, 0), argv[i + 3]);
	else if (!strcmp(argv[i + 1], "read") && argc - i == 5)
		rc = do_read(dev, strtoull(argv[i + 2], NULL, 0),
			     strtoull(argv[i + 3], NULL, 0), argv[i + 4]);
	else if (!strcmp(argv[i + 1], "zero") && argc - i == 4) {
		int r = nexus_dev_write_zeroes(dev,
					       strtoull(argv[i + 2], NULL, 0),
					       strtoull(argv[i + 3], NULL, 0), 0);
		rc = r ? die("write-zeroes", r) : 0;
	} else if (!strcmp(argv[i + 1], "info") && argc - i == 2) {
		printf("size=%llu lbs=%u pbs=%u max=%u ops=0x%x flags=0x%x\n",
		       (unsigned long long)info.dev_size,
		       info.logical_block_size, info.physical_block_size,
		       info.max_io_size, info.ops, info.flags);
		rc = 0;
	} else {
		fprintf(stderr, "crypt-io: bad command\n");
		rc = 2;
	}
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
	return rc;
}
