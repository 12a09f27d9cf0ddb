/* nexus-copy: copy one libnexus device onto another.
 *
 *   nexus-copy file:plain.img 'file:enc.img | crypt:key-file=k'
 *   nexus-copy nbd://127.0.0.1:10809 file:copy.img,create=on,size=1G
 *
 * SRC and DST are pipelines without an export (nexus_dev_open()).  DST
 * must be at least as large as SRC; SRC's size is copied.
 *
 * Sparse-aware.  SRC's block status splits the copy into data and zero
 * ranges (NEXUS_EXTENT_ZERO; a hole that does not read as zeroes is
 * data).  Data is read and written REQUESTS at a time (16), BLOCK bytes
 * each (256 KiB: on tmpfs and over NBD it beat 1 MiB in tests/bench);
 * a block read as all zeroes becomes a zero range.  A zero range is
 * never written as zero bytes when it can be avoided:
 *   - skipped where DST's block status already reports zeroes (e.g. a
 *     fresh sparse file), or everywhere with --target-is-zero;
 *   - else WRITE_ZEROES on DST (a file punches a hole: the copy stays
 *     sparse), or TRIM where DST's TRIM reads back zeroes;
 *   - else (DST can do neither) zero bytes are written: correctness
 *     first.
 * --no-sparse copies every byte as data.  At the end DST is flushed.
 * --verify then reads DST back and compares it with SRC (zero ranges
 * of SRC are checked to read as zeroes on DST).
 *
 * The copy is the library's copy engine (nexus_copy_*, nexus.h); this
 * program parses the arguments, draws the progress bar (on a terminal:
 * rate and ETA) and prints the summary.  Only the public API is used.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nexus/nexus.h>

#define MAX_REQUESTS 256

static struct {
	unsigned requests;
	uint64_t block, rate;
	unsigned reactors;
	bool verify, sparse, target_zero, progress, quiet, flush;
} cfg = { 16, 256 << 10, 0, 0, false, true, false, false, false, true };

static volatile sig_atomic_t interrupted;
static sem_t done_sem;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	unsigned shift = 0;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static void human(char *buf, size_t len, double v)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void draw(const struct nexus_copy_progress *p)
{
	static double last_draw;
	bool final = p->flags & NEXUS_COPY_PROGRESS_FINAL;
	const char *phase = p->phase == NEXUS_COPY_PHASE_VERIFY ? "verify"
								: "copy  ";
	double t = now_s(), frac, rate = (double)p->rate;
	char a[32], b[32], r[32], bar[41];
	unsigned fill;

	if (!cfg.progress || (!final && t - last_draw < 0.2))
		return;
	last_draw = t;
	frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total
			      : 1;
	fill = (unsigned)(frac * 40);
	memset(bar, '#', fill);
	memset(bar + fill, '.', 40 - fill);
	bar[40] = '\0';
	human(a, sizeof(a), (double)p->bytes_done);
	human(b, sizeof(b), (double)p->bytes_total);
	human(r, sizeof(r), rate);
	fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %s/%s %s/s", phase, bar,
		frac * 100, a, b, r);
	if (!final && rate > 0 && frac < 1) {
		double eta = (double)(p->bytes_total - p->bytes_done) / rate;

		fprintf(stderr, " ETA %d:%02d", (int)eta / 60, (int)eta % 60);
	}
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

/* The summary of the copy phase, once it (and the flush) succeeded. */
static void summary(const struct nexus_copy_progress *p)
{
	double el = (double)p->elapsed_ns / 1e9;
	char a[32], b[32], c[32], r[32];

	human(a, sizeof(a), (double)p->bytes_total);
	human(b, sizeof(b), (double)p->data_bytes);
	human(c, sizeof(c), (double)p->zero_bytes);
	human(r, sizeof(r), el > 0 ? (double)p->bytes_total / el : 0);
	fprintf(stderr, "nexus-copy: copied %s in %.2f s (%s/s): %s data, %s "
		"zero", a, el, r, b, c);
	if (p->skipped_bytes) {
		human(a, sizeof(a), (double)p->skipped_bytes);
		fprintf(stderr, " (%s already zero on DST)", a);
	}
	fputc('\n', stderr);
}

static void on_progress(void *ud, const struct nexus_copy_progress *p)
{
	(void)ud;
	draw(p);
	if ((p->flags & NEXUS_COPY_PROGRESS_FINAL) &&
	    p->phase == NEXUS_COPY_PHASE_COPY && !p->error && !cfg.quiet)
		summary(p);
}

static void on_done(void *ud, int result)
{
	(void)ud;
	(void)result;
	sem_post(&done_sem);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nexus-copy [OPTIONS] SRC DST\n"
		"Copy the device SRC onto DST (pipelines without an export, "
		"e.g. 'file:a.img',\n"
		"'file:b.img | crypt:key-file=k', nbd://host:port).  DST must "
		"be at least as large.\n\n"
		"  -n, --requests N     requests in flight (default 16)\n"
		"  -b, --block-size S   bytes per request (default 256K)\n"
		"      --verify         read DST back and compare with SRC\n"
		"      --no-sparse      copy holes and zeroes as data\n"
		"      --target-is-zero DST already reads as zeroes: skip zero "
		"ranges\n"
		"      --no-flush       do not flush DST at the end\n"
		"      --rate S         at most S bytes of data per second "
		"(e.g. 100M)\n"
		"  -r, --reactors N     reactor threads (default: one per CPU)\n"
		"  -p, --progress       progress bar even when stderr is not a "
		"terminal\n"
		"  -q, --quiet          no progress bar and no summary\n"
		"  -h, --help           this help\n");
}

static int open_dev(struct nexus_ctx *ctx, const char *text,
		    struct nexus_dev **dev, const char *what)
{
	if (nexus_dev_open(ctx, text, dev) < 0) {
		fprintf(stderr, "nexus-copy: %s: %s\n", what,
			nexus_last_error());
		return -1;
	}
	return 0;
}

/* Run the job until it is done; a signal cancels it. */
static int run(struct nexus_copy *job)
{
	int rc = nexus_copy_start(job, on_done, NULL);

	if (rc < 0)
		return rc;
	for (;;) {
		struct timespec ts;

		if (interrupted)
			nexus_copy_cancel(job);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1; /* a signal just before the wait */
		if (sem_timedwait(&done_sem, &ts) == 0)
			break;
	}
	return nexus_copy_wait(job);
}

int main(int argc, char **argv)
{
	enum { O_VERIFY = 256, O_NOSPARSE, O_TZERO, O_NOFLUSH, O_RATE };
	static const struct option lo[] = {
		{ "requests", required_argument, NULL, 'n' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "verify", no_argument, NULL, O_VERIFY },
		{ "no-sparse", no_argument, NULL, O_NOSPARSE },
		{ "target-is-zero", no_argument, NULL, O_TZERO },
		{ "no-flush", no_argument, NULL, O_NOFLUSH },
		{ "rate", required_argument, NULL, O_RATE },
		{ "reactors", required_argument, NULL, 'r' },
		{ "progress", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_copy_opts co = NEXUS_COPY_OPTS_INIT;
	struct nexus_dev_info si = NEXUS_DEV_INFO_INIT, di = NEXUS_DEV_INFO_INIT;
	struct nexus_dev *src = NULL, *dst = NULL;
	struct nexus_copy *job = NULL;
	struct sigaction sa;
	struct nexus_ctx *ctx;
	bool want_progress = false;
	uint64_t v;
	char *end;
	int opt, rc = 1;

	while ((opt = getopt_long(argc, argv, "n:b:r:pqh", lo, NULL)) != -1) {
		switch (opt) {
		case 'n':
			v = strtoull(optarg, &end, 10);
			if (*end || !v || v > MAX_REQUESTS) {
				fprintf(stderr, "nexus-copy: --requests wants "
					"1..%d\n", MAX_REQUESTS);
				return 2;
			}
			cfg.requests = (unsigned)v;
			break;
		case 'b':
			if (parse_size(optarg, &v) || v < 512 ||
			    v > (64u << 20)) {
				fprintf(stderr, "nexus-copy: --block-size "
					"wants 512 to 64M\n");
				return 2;
			}
			cfg.block = v;
			break;
		case 'r':
			v = strtoull(optarg, &end, 10);
			if (*end || !v || v > 1024) {
				fprintf(stderr, "nexus-copy: --reactors wants "
					"1..1024\n");
				return 2;
			}
			cfg.reactors = (unsigned)v;
			break;
		case O_RATE:
			if (parse_size(optarg, &v) || !v) {
				fprintf(stderr, "nexus-copy: --rate wants bytes "
					"per second, e.g. 100M\n");
				return 2;
			}
			cfg.rate = v;
			break;
		case O_VERIFY: cfg.verify = true; break;
		case O_NOSPARSE: cfg.sparse = false; break;
		case O_TZERO: cfg.target_zero = true; break;
		case O_NOFLUSH: cfg.flush = false; break;
		case 'p': want_progress = true; break;
		case 'q': cfg.quiet = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 2) {
		usage(stderr);
		return 2;
	}
	cfg.progress = !cfg.quiet && (want_progress || isatty(STDERR_FILENO));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sem_init(&done_sem, 0, 0);

	o.reactors = cfg.reactors;
	if (nexus_ctx_create(&o, &ctx) < 0) {
		fprintf(stderr, "nexus-copy: %s\n", nexus_last_error());
		return 1;
	}
	if (open_dev(ctx, argv[optind], &src, "SRC") < 0 ||
	    open_dev(ctx, argv[optind + 1], &dst, "DST") < 0)
		goto out;
	co.requests = cfg.requests;
	co.block_size = (uint32_t)cfg.block;
	co.flags = (cfg.verify ? NEXUS_COPY_VERIFY : 0) |
		   (cfg.sparse ? 0 : NEXUS_COPY_NO_SPARSE) |
		   (cfg.target_zero ? NEXUS_COPY_TARGET_ZERO : 0) |
		   (cfg.flush ? 0 : NEXUS_COPY_NO_FLUSH);
	co.rate_limit = cfg.rate;
	co.progress_fn = on_progress;
	if (nexus_copy_create(src, dst, &co, &job) < 0) {
		fprintf(stderr, "nexus-copy: %s\n", nexus_last_error());
		goto out;
	}
	nexus_dev_get_info(src, &si);
	nexus_dev_get_info(dst, &di);
	if (di.dev_size > si.dev_size && !cfg.quiet)
		fprintf(stderr, "nexus-copy: note: DST is larger than SRC; "
			"its last %" PRIu64 " bytes are left as they are\n",
			di.dev_size - si.dev_size);
	if (run(job) < 0) {
		if (interrupted)
			fprintf(stderr, "nexus-copy: interrupted\n");
		else
			fprintf(stderr, "nexus-copy: %s\n", nexus_last_error());
		goto out;
	}
	if (cfg.verify && !cfg.quiet)
		fprintf(stderr, "nexus-copy: verify: DST matches SRC\n");
	rc = 0;
out:
	nexus_copy_destroy(job);
	nexus_dev_close(dst);
	nexus_dev_close(src);
	nexus_ctx_destroy(ctx);
	return rc;
}
