/* nexus-bench: drive any pipeline with a synthetic workload, like SPDK's
 * bdevperf.  One job per reactor keeps QD I/Os in flight; each
 * completion resubmits from the reactor thread, so the measurement is
 * the library's data path, not thread hand-offs.
 *
 * Latency: one I/O in LAT_SAMPLE is timed (clock_gettime twice costs as
 * much as a tenth of a fast stack's I/O); the percentiles come from
 * those samples, millions in a run, and the average from Little's law
 * (I/Os in flight x run time / I/Os), which holds for a closed loop.
 *
 *   nexus-bench -w randread -b 4k -q 32 -t 10 -r 1 'file:/dev/shm/a.img'
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nexus/nexus.h>
#include <nexus/nexus_driver.h>

/* log-linear latency histogram: 32 sub-buckets per power of two */
#define SUBB 32
#define NB (64 * SUBB)
/* one I/O in LAT_SAMPLE (a power of two) is timed */
#define LAT_SAMPLE 8

enum wl { RANDREAD, RANDWRITE, READ, WRITE, RANDRW, RW };
static const char *const wl_names[] = { "randread", "randwrite", "read",
					"write", "randrw", "rw" };

struct job;
struct slot {
	struct job *job;
	struct iovec iov;
	uint64_t start; /* 0: not timed */
	int op;
};

struct job {
	struct nexus_dev *dev;
	struct nexus_reactor *reactor;
	struct slot *slots;
	uint64_t region_off, region_len, cursor;
	uint64_t rng;
	uint64_t ios, bytes, errors;
	uint64_t submitted;
	uint64_t hist[NB]; /* of the timed I/Os */
	int first_error;
	atomic_int inflight;
};

static struct {
	enum wl wl;
	unsigned bs, qd, reactors, mix, seconds;
	uint64_t span;
	bool json;
	const char *pipeline;
} cfg = { RANDREAD, 4096, 32, 1, 70, 5, 0, false, NULL };

static atomic_bool stop_flag;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static unsigned bucket(uint64_t v)
{
	unsigned msb, b;

	if (v < SUBB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	b = (msb - 4) * SUBB + (unsigned)((v >> (msb - 5)) & (SUBB - 1));
	return b < NB ? b : NB - 1;
}

static uint64_t bucket_value(unsigned b)
{
	unsigned msb;

	if (b < SUBB)
		return b;
	msb = b / SUBB + 4;
	return ((uint64_t)(SUBB + b % SUBB)) << (msb - 5);
}

static void submit_one(struct slot *s);

static void done_cb(void *ud, int res)
{
	struct slot *s = ud;
	struct job *j = s->job;

	if (res < 0) {
		if (!j->errors)
			j->first_error = res;
		j->errors++;
	} else {
		j->ios++;
		j->bytes += s->iov.iov_len;
		if (s->start)
			j->hist[bucket(now_ns() - s->start)]++;
	}
	if (atomic_load_explicit(&stop_flag, memory_order_relaxed) ||
	    j->errors > 1000) {
		atomic_fetch_sub(&j->inflight, 1);
		return;
	}
	submit_one(s);
}

static void submit_one(struct slot *s)
{
	struct job *j = s->job;
	uint64_t blocks = j->region_len / cfg.bs, off;
	bool rnd = cfg.wl == RANDREAD || cfg.wl == RANDWRITE || cfg.wl == RANDRW;
	int rc;

	if (rnd) {
		off = (xorshift(&j->rng) % blocks) * cfg.bs;
	} else {
		off = j->cursor;
		j->cursor += cfg.bs;
		if (j->cursor + cfg.bs > j->region_len)
			j->cursor = 0;
	}
	switch (cfg.wl) {
	case RANDREAD: case READ: s->op = NEXUS_OP_READ; break;
	case RANDWRITE: case WRITE: s->op = NEXUS_OP_WRITE; break;
	default:
		s->op = xorshift(&j->rng) % 100 < cfg.mix ? NEXUS_OP_READ
							  : NEXUS_OP_WRITE;
	}
	s->start = (j->submitted++ & (LAT_SAMPLE - 1)) ? 0 : now_ns();
	{
		struct nexus_io_req req = NEXUS_IO_REQ_INIT;

		req.op = (uint32_t)s->op;
		req.iov = &s->iov;
		req.iovcnt = 1;
		req.offset = j->region_off + off;
		req.cb = done_cb;
		req.user_data = s;
		rc = nexus_dev_submit(j->dev, &req);
	}
	if (rc < 0) {
		if (!j->errors)
			j->first_error = rc;
		j->errors++;
		atomic_fetch_sub(&j->inflight, 1);
	}
}

static void start_job(void *arg)
{
	struct job *j = arg;

	for (unsigned i = 0; i < cfg.qd; i++)
		submit_one(&j->slots[i]);
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_flag, true);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nexus-bench [options] PIPELINE\n"
		"  -w, --workload W   randread|randwrite|read|write|randrw|rw "
		"(randread)\n"
		"  -b, --bs SIZE      block size (4k)\n"
		"  -q, --qd N         queue depth per reactor (32)\n"
		"  -t, --time SEC     duration in seconds (5)\n"
		"  -r, --reactors N   reactor threads, one job each (1)\n"
		"  -M, --mix PCT      reads in %% for randrw/rw (70)\n"
		"  -s, --span SIZE    limit I/O to the first SIZE bytes\n"
		"  -j, --json         print one JSON object\n"
		"  -h, --help\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v = strtod(s, &end);
	uint64_t mul = 1;

	if (end == s || v < 0)
		return -1;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	}
	if (*end)
		return -1;
	*out = (uint64_t)(v * (double)mul);
	return 0;
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "workload", 1, NULL, 'w' }, { "bs", 1, NULL, 'b' },
		{ "qd", 1, NULL, 'q' },	      { "time", 1, NULL, 't' },
		{ "reactors", 1, NULL, 'r' }, { "mix", 1, NULL, 'M' },
		{ "span", 1, NULL, 's' },     { "json", 0, NULL, 'j' },
		{ "help", 0, NULL, 'h' },     { NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "w:b:q:t:r:M:s:jh", lo, NULL)) != -1) {
		switch (c) {
		case 'w':
			for (v = 0; v < 6 && strcmp(optarg, wl_names[v]); v++)
				;
			if (v == 6) {
				fprintf(stderr, "nexus-bench: unknown workload "
						"'%s'\n", optarg);
				return -1;
			}
			cfg.wl = (enum wl)v;
			break;
		case 'b':
			if (parse_size(optarg, &v) || !v || v > (64u << 20))
				goto bad;
			cfg.bs = (unsigned)v;
			break;
		case 'q':
			cfg.qd = (unsigned)atoi(optarg);
			if (!cfg.qd || cfg.qd > 4096)
				goto bad;
			break;
		case 't':
			cfg.seconds = (unsigned)atoi(optarg);
			if (!cfg.seconds)
				goto bad;
			break;
		case 'r':
			cfg.reactors = (unsigned)atoi(optarg);
			if (!cfg.reactors || cfg.reactors > 256)
				goto bad;
			break;
		case 'M':
			cfg.mix = (unsigned)atoi(optarg);
			if (cfg.mix > 100)
				goto bad;
			break;
		case 's':
			if (parse_size(optarg, &cfg.span))
				goto bad;
			break;
		case 'j':
			cfg.json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return -1;
	}
	cfg.pipeline = argv[optind];
	return 0;
bad:
	fprintf(stderr, "nexus-bench: bad value '%s' for -%c\n", optarg, c);
	return -1;
}

int main(int argc, char **argv)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	struct job *jobs;
	uint64_t t0, t1, ios = 0, bytes = 0, errors = 0, timed = 0;
	static uint64_t hist[NB];
	double secs, lat_avg_us, pct[3] = { 50, 99, 99.9 };
	uint64_t pv[3] = { 0, 0, 0 };
	int first_error = 0;

	if (parse_args(argc, argv))
		return 2;
	o.reactors = cfg.reactors;
	if (nexus_ctx_create(&o, &ctx) < 0 ||
	    nexus_dev_open(ctx, cfg.pipeline, &dev) < 0) {
		fprintf(stderr, "nexus-bench: %s\n", nexus_last_error());
		return 1;
	}
	nexus_dev_get_info(dev, &info);
	if (cfg.span == 0 || cfg.span > info.dev_size)
		cfg.span = info.dev_size;
	if (cfg.bs % info.logical_block_size ||
	    cfg.span / cfg.reactors < cfg.bs) {
		fprintf(stderr, "nexus-bench: block size %u does not fit the "
				"device (block size %u, size %llu)\n",
			cfg.bs, info.logical_block_size,
			(unsigned long long)cfg.span);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	jobs = calloc(cfg.reactors, sizeof(*jobs));
	for (unsigned r = 0; r < cfg.reactors; r++) {
		struct job *j = &jobs[r];
		uint64_t slice = cfg.span / cfg.reactors / cfg.bs * cfg.bs;

		j->dev = dev;
		j->reactor = nexus_ctx_reactor(ctx, r);
		j->region_off = slice * r;
		j->region_len = slice;
		j->rng = 0x9e3779b97f4a7c15ull * (r + 1);
		j->slots = calloc(cfg.qd, sizeof(*j->slots));
		for (unsigned i = 0; i < cfg.qd; i++) {
			struct slot *s = &j->slots[i];
			unsigned char *buf = aligned_alloc(4096, (cfg.bs + 4095) & ~4095u);

			for (unsigned k = 0; k < cfg.bs; k++)
				buf[k] = (unsigned char)xorshift(&j->rng);
			s->job = j;
			s->iov.iov_base = buf;
			s->iov.iov_len = cfg.bs;
		}
		atomic_init(&j->inflight, (int)cfg.qd);
	}
	t0 = now_ns();
	for (unsigned r = 0; r < cfg.reactors; r++)
		nexus_reactor_post(jobs[r].reactor, start_job, &jobs[r]);
	while (!atomic_load(&stop_flag) &&
	       now_ns() - t0 < (uint64_t)cfg.seconds * 1000000000ull)
		usleep(10000);
	atomic_store(&stop_flag, true);
	for (unsigned r = 0; r < cfg.reactors; r++)
		while (atomic_load(&jobs[r].inflight) > 0)
			usleep(1000);
	t1 = now_ns();
	for (unsigned r = 0; r < cfg.reactors; r++) {
		struct job *j = &jobs[r];

		ios += j->ios;
		bytes += j->bytes;
		errors += j->errors;
		if (!first_error)
			first_error = j->first_error;
		for (unsigned b = 0; b < NB; b++) {
			hist[b] += j->hist[b];
			timed += j->hist[b];
		}
	}
	for (unsigned p = 0; p < 3; p++) {
		uint64_t want = (uint64_t)ceil((double)timed * pct[p] / 100.0),
			 seen = 0;

		for (unsigned b = 0; b < NB && timed; b++) {
			seen += hist[b];
			if (seen >= want) {
				pv[p] = bucket_value(b + 1);
				break;
			}
		}
	}
	secs = (double)(t1 - t0) / 1e9;
	/* Little's law: qd I/Os in flight per reactor over the run */
	lat_avg_us = ios ? (double)cfg.qd * cfg.reactors * secs / (double)ios * 1e6
			 : 0.0;
	if (cfg.json)
		printf("{\"pipeline\":\"%s\",\"workload\":\"%s\",\"bs\":%u,"
		       "\"qd\":%u,\"reactors\":%u,\"seconds\":%.3f,"
		       "\"ios\":%llu,\"iops\":%.0f,\"mbps\":%.1f,"
		       "\"lat_avg_us\":%.2f,\"lat_p50_us\":%.2f,"
		       "\"lat_p99_us\":%.2f,\"lat_p999_us\":%.2f,"
		       "\"errors\":%llu}\n",
		       cfg.pipeline, wl_names[cfg.wl], cfg.bs, cfg.qd,
		       cfg.reactors, secs, (unsigned long long)ios,
		       (double)ios / secs, (double)bytes / secs / 1e6,
		       lat_avg_us,
		       (double)pv[0] / 1e3, (double)pv[1] / 1e3,
		       (double)pv[2] / 1e3, (unsigned long long)errors);
	else
		printf("%s %s bs=%u qd=%u reactors=%u: %.0f IOPS, %.1f MB/s, "
		       "lat avg %.1f us p50 %.1f p99 %.1f p99.9 %.1f, "
		       "errors %llu\n",
		       cfg.pipeline, wl_names[cfg.wl], cfg.bs, cfg.qd,
		       cfg.reactors, (double)ios / secs,
		       (double)bytes / secs / 1e6,
		       lat_avg_us,
		       (double)pv[0] / 1e3, (double)pv[1] / 1e3,
		       (double)pv[2] / 1e3, (unsigned long long)errors);
	if (errors)
		fprintf(stderr, "nexus-bench: %llu errors, first: %s\n",
			(unsigned long long)errors, strerror(-first_error));
	for (unsigned r = 0; r < cfg.reactors; r++) {
		for (unsigned i = 0; i < cfg.qd; i++)
			free(jobs[r].slots[i].iov.iov_base);
		free(jobs[r].slots);
	}
	free(jobs);
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
	return errors ? 1 : 0;
}
