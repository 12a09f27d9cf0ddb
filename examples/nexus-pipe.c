/* nexus-pipe: run a libnexus pipeline from the command line.
 *
 *   nexus-pipe 'file:/var/lib/vol.img | crypt:key-file=k | nbd:listen=127.0.0.1:10809'
 *   nexus-pipe --check 'mem:size=1G | throttle:iops=1000 | nbd:socket=/tmp/s'
 *   nexus-pipe --list
 *
 * Builds the pipeline, prints "listening on ADDRESS" for each address
 * its export listens on (as the export driver logs it) and then "ready"
 * on stdout once it serves, and runs until SIGINT, SIGTERM or SIGHUP; then
 * stops the export, closes the stack and exits 0.  A second signal while
 * it stops exits at once (status 128 + the signal), without waiting for
 * I/O that may never finish.  On a terminal a status line shows each
 * stage's IOPS, MB/s and errors.  With --control, lines "KEY=VALUE" on
 * stdin change settings at run time (nexus_dev_control()): e.g.
 * "throttle.iops=500" or "fault.enable=on"; each gets "ok" or
 * "error: ..." on stdout.  Only the public API is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <nexus/nexus.h>

#define MAX_STAGES 64

static struct {
	bool check, list, control, quiet, status;
	int verbose;
	unsigned reactors, poll_us;
	bool poll_set;
	uint64_t mem_budget;
	double interval;
	const char *pidfile;
	const char *plugins[16];
	unsigned nplugins;
} cfg = { .interval = 1.0 };

/* A stage of the running stack and its counters at the last refresh. */
struct stage {
	struct nexus_dev *dev;
	const char *driver;
	unsigned depth;
	struct nexus_dev_stats last;
};

static struct stage stages[MAX_STAGES];
static unsigned nstages;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nexus-pipe [OPTIONS] 'PIPELINE'\n"
		"       nexus-pipe --check 'PIPELINE'\n"
		"       nexus-pipe --list\n"
		"Run a libnexus pipeline (source | transforms | export) until "
		"SIGINT/SIGTERM.\n\n"
		"  -c, --check          validate the pipeline, print it parsed, "
		"and exit\n"
		"  -l, --list           list every driver with its options, "
		"and exit\n"
		"  -r, --reactors N     reactor threads (default: one per CPU)\n"
		"      --mem-budget SIZE  payload bytes all exports may hold "
		"at once\n"
		"                       (e.g. 512M; default 1G, at least 32M)\n"
		"      --poll-us N      reactors poll N microseconds after "
		"work before\n"
		"                       sleeping: lower latency for one client "
		"at a time,\n"
		"                       for CPU (default 50, or $NEXUS_POLL_US;"
		" 0: off)\n"
		"  -p, --pidfile FILE   write the process id to FILE once "
		"serving\n"
		"  -C, --control        read KEY=VALUE settings from stdin "
		"(e.g. throttle.iops=500)\n"
		"  -s, --status         status line even when stderr is not a "
		"terminal\n"
		"  -q, --quiet          no status line\n"
		"  -i, --interval SEC   status refresh interval (default 1)\n"
		"  -P, --plugin FILE    load a driver plugin (repeatable)\n"
		"  -v, --verbose        log lifecycle events; twice: debug\n"
		"  -h, --help           this help\n\n"
		"Prints \"listening on ADDRESS\" lines, then \"ready\", on "
		"stdout once the pipeline serves.  A second signal while it "
		"stops exits at once.  "
		"Pipeline grammar: nexus-pipeline(7); drivers: --list.\n");
}

/* Addresses the export logged ("... listening on ADDR"): the library
 * has no call that returns them, and port 0 picks a free port. */
static pthread_mutex_t addr_lock = PTHREAD_MUTEX_INITIALIZER;
static char addrs[8][128];
static unsigned naddrs;
static int user_log_level = NEXUS_LOG_WARN;

static void log_cb(void *ud, int level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info",
					     "debug" };
	const char *l = strstr(msg, "listening on ");

	(void)ud;
	if (l && level == NEXUS_LOG_INFO) {
		pthread_mutex_lock(&addr_lock);
		if (naddrs < 8)
			snprintf(addrs[naddrs++], sizeof(addrs[0]), "%s",
				 l + strlen("listening on "));
		pthread_mutex_unlock(&addr_lock);
	}
	if (level > user_log_level)
		return;
	/* keep the status line intact: start on a fresh line */
	fprintf(stderr, "%snexus-pipe: %s: %s\n",
		cfg.status ? "\r\033[K" : "",
		names[level >= 0 && level <= 3 ? level : 0], msg);
}

/* "512M", "1G", "1048576": binary suffixes K, M, G, T. */
static int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	const char *u = *end ? strchr(units, *end) : NULL;
	unsigned shift = u ? 10u * (unsigned)(u - units + 1) : 0;

	if (end == s || *s == '-' || (*end && (!u || end[1])) ||
	    (shift && v > (~0ull >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int make_ctx(struct nexus_ctx **ctx)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;

	o.reactors = cfg.reactors;
	/* a server: poll 50 us after work unless told (see --poll-us) */
	o.poll_us = cfg.poll_set ? cfg.poll_us
				 : getenv("NEXUS_POLL_US") ? 0 : 50;
	o.mem_budget = cfg.mem_budget;
	o.log_fn = log_cb;
	user_log_level = cfg.verbose >= 2   ? NEXUS_LOG_DEBUG
			 : cfg.verbose == 1 ? NEXUS_LOG_INFO
					    : NEXUS_LOG_WARN;
	/* INFO at least: the export's "listening on" messages */
	o.log_level = user_log_level > NEXUS_LOG_INFO ? user_log_level
						      : NEXUS_LOG_INFO;
	if (nexus_ctx_create(&o, ctx) < 0) {
		fprintf(stderr, "nexus-pipe: %s\n", nexus_last_error());
		return -1;
	}
	for (unsigned i = 0; i < cfg.nplugins; i++) {
		if (nexus_plugin_load(*ctx, cfg.plugins[i]) < 0) {
			fprintf(stderr, "nexus-pipe: %s\n", nexus_last_error());
			nexus_ctx_destroy(*ctx);
			return -1;
		}
	}
	return 0;
}

/* Print a description that the library formats into a buffer. */
static int print_text(struct nexus_ctx *ctx, const char *pipeline)
{
	int n = pipeline ? nexus_pipeline_check(ctx, pipeline, NULL, 0)
			 : nexus_ctx_describe_drivers(ctx, NULL, 0);
	char *buf;

	if (n < 0)
		return n;
	buf = malloc((size_t)n + 1);
	if (!buf)
		return -ENOMEM;
	n = pipeline ? nexus_pipeline_check(ctx, pipeline, buf, (size_t)n + 1)
		     : nexus_ctx_describe_drivers(ctx, buf, (size_t)n + 1);
	if (n >= 0)
		fputs(buf, stdout);
	free(buf);
	return n < 0 ? n : 0;
}

static void collect(struct nexus_dev *dev, unsigned depth)
{
	struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;
	struct stage *s;

	if (nstages == MAX_STAGES)
		return;
	s = &stages[nstages++];
	nexus_dev_get_info(dev, &in);
	s->dev = dev;
	s->driver = in.driver;
	s->depth = depth;
	s->last.size = sizeof(s->last);
	nexus_dev_get_stats(dev, &s->last);
	for (unsigned i = 0; i < nexus_dev_child_count(dev); i++)
		collect(nexus_dev_child(dev, i), depth + 1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* " [rebuild of child N: P% of T MB, R MB/s, ETA S s]" of a mirror stage
 * while one runs, into @p buf (empty otherwise). */
static void rebuild_text(struct stage *s, char *buf, size_t cap)
{
	struct nexus_mirror_rebuild rb = NEXUS_MIRROR_REBUILD_INIT;
	const struct nexus_copy_progress *p = &rb.progress;
	char eta[32] = "?";

	buf[0] = 0;
	if (strcmp(s->driver, "mirror") || nexus_mirror_get_rebuild(s->dev, &rb) ||
	    rb.child < 0)
		return;
	if (rb.eta_ms != UINT64_MAX)
		snprintf(eta, sizeof(eta), "%.0f", rb.eta_ms / 1e3);
	snprintf(buf, cap, " [%s rebuild of child %d: %.0f%% of %.1f MB, "
		 "%.1f MB/s, ETA %s s]", rb.partial ? "partial" : "full",
		 rb.child,
		 p->bytes_total ? 100.0 * p->bytes_done / p->bytes_total : 0.0,
		 p->bytes_total / 1e6, p->rate / 1e6, eta);
}

/* One status line: clients, then each stage from the top (a mirror with
 * the progress of its rebuild). */
static void status(struct nexus_pipeline *pl, double dt, bool final)
{
	struct nexus_export *exp = nexus_pipeline_export(pl);
	char line[1024];
	size_t off = 0;

#define ADD(...)                                                            \
	do {                                                                \
		int w_ = snprintf(line + off, sizeof(line) - off, __VA_ARGS__); \
		if (w_ > 0)                                                 \
			off += (size_t)w_ < sizeof(line) - off              \
				       ? (size_t)w_                         \
				       : sizeof(line) - off - 1;            \
	} while (0)
	if (exp) {
		int c = nexus_export_list_conns(exp, NULL, 0);

		if (c >= 0)
			ADD("%d client%s | ", c, c == 1 ? "" : "s");
	}
	for (unsigned i = 0; i < nstages; i++) {
		struct stage *s = &stages[i];
		struct nexus_dev_stats st = NEXUS_DEV_STATS_INIT;
		uint64_t ops, bytes, errs;
		char rb[160];

		nexus_dev_get_stats(s->dev, &st);
		rebuild_text(s, rb, sizeof(rb));
		if (final) {
			ops = st.ops;
			bytes = st.bytes_read + st.bytes_written;
			errs = st.errors;
			ADD("%s%s %llu ops %.1f MB %llu err", i ? " | " : "",
			    s->driver, (unsigned long long)ops, bytes / 1e6,
			    (unsigned long long)errs);
		} else {
			ops = st.ops - s->last.ops;
			bytes = st.bytes_read + st.bytes_written -
				s->last.bytes_read - s->last.bytes_written;
			errs = st.errors;
			ADD("%s%s %.0f IOPS %.1f MB/s %llu err%s", i ? " | " : "",
			    s->driver, ops / dt, bytes / dt / 1e6,
			    (unsigned long long)errs, rb);
		}
		s->last = st;
	}
#undef ADD
	if (final)
		fprintf(stderr, "\r\033[Knexus-pipe: total: %s\n", line);
	else
		fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
}

/* "KEY=VALUE" from stdin -> nexus_dev_control() on the top device. */
static void control_line(struct nexus_dev *dev, char *line)
{
	char *eq;

	line[strcspn(line, "\r\n")] = '\0';
	if (!*line || *line == '#')
		return;
	eq = strchr(line, '=');
	if (!eq) {
		printf("error: expected KEY=VALUE, got '%s'\n", line);
	} else {
		*eq = '\0';
		if (nexus_dev_control(dev, line, eq + 1) < 0)
			printf("error: %s\n", nexus_last_error());
		else
			printf("ok\n");
	}
	fflush(stdout);
}

/* A second stop signal while the first one's stop runs: exit at once.
 * Only async-signal-safe calls. */
static void second_signal(int sig)
{
	static const char msg[] = "\nnexus-pipe: second signal: exiting at "
				  "once, without waiting for the stop\n";

	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do about it */
	}
	if (cfg.pidfile)
		unlink(cfg.pidfile);
	_exit(128 + sig);
}

/* From now on the stop signals run second_signal() on this thread (the
 * reactors keep them blocked). */
static void arm_second_signal(void)
{
	static const int stop[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;
	sigset_t sigs;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = second_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&sigs);
	for (unsigned i = 0; i < 3; i++) {
		sigaction(stop[i], &sa, NULL);
		sigaddset(&sigs, stop[i]);
	}
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
}

static int serve(struct nexus_ctx *ctx, const char *text)
{
	struct nexus_pipeline *pl;
	struct pollfd pfd[2];
	char buf[4096];
	size_t have = 0;
	sigset_t sigs;
	bool in_open = cfg.control;
	double last;
	int sfd, rc = 0;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		perror("nexus-pipe: signalfd");
		return 1;
	}
	if (nexus_pipeline_open(ctx, text, &pl) < 0) {
		fprintf(stderr, "nexus-pipe: %s\n", nexus_last_error());
		close(sfd);
		return 1;
	}
	collect(nexus_pipeline_dev(pl), 0);
	if (cfg.pidfile) {
		FILE *f = fopen(cfg.pidfile, "w");

		if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f)) {
			fprintf(stderr, "nexus-pipe: cannot write %s: %s\n",
				cfg.pidfile, strerror(errno));
			nexus_pipeline_close(pl);
			close(sfd);
			return 1;
		}
	}
	if (!nexus_pipeline_export(pl))
		fprintf(stderr, "nexus-pipe: note: the pipeline has no export "
				"stage; the device stays open until a signal\n");
	pthread_mutex_lock(&addr_lock);
	for (unsigned i = 0; i < naddrs; i++)
		printf("listening on %s\n", addrs[i]);
	pthread_mutex_unlock(&addr_lock);
	printf("ready\n");
	fflush(stdout);

	last = now_s();
	for (;;) {
		int timeout = cfg.status ? (int)(cfg.interval * 1000) : -1;
		int n;

		pfd[0].fd = sfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = in_open ? STDIN_FILENO : -1;
		pfd[1].events = POLLIN;
		n = poll(pfd, 2, timeout);
		if (n < 0 && errno != EINTR) {
			perror("nexus-pipe: poll");
			rc = 1;
			break;
		}
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si) &&
			    cfg.verbose)
				fprintf(stderr, "%snexus-pipe: signal %u: "
					"stopping\n",
					cfg.status ? "\r\033[K" : "",
					si.ssi_signo);
			break;
		}
		if (n > 0 && pfd[1].fd >= 0 && pfd[1].revents) {
			ssize_t r = read(STDIN_FILENO, buf + have,
					 sizeof(buf) - 1 - have);
			char *nl;

			if (r <= 0) {
				in_open = false; /* EOF: keep serving */
			} else {
				have += (size_t)r;
				buf[have] = '\0';
				while ((nl = strchr(buf, '\n'))) {
					*nl = '\0';
					control_line(nexus_pipeline_dev(pl), buf);
					have -= (size_t)(nl + 1 - buf);
					memmove(buf, nl + 1, have + 1);
				}
				if (have == sizeof(buf) - 1) {
					printf("error: line too long\n");
					fflush(stdout);
					have = 0;
				}
			}
		}
		if (cfg.status && now_s() - last >= cfg.interval * 0.95) {
			double t = now_s();

			status(pl, t - last, false);
			last = t;
		}
	}
	arm_second_signal();
	if (cfg.status)
		status(pl, 0, true);
	nexus_pipeline_close(pl);
	if (cfg.pidfile)
		unlink(cfg.pidfile);
	close(sfd);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "check", no_argument, NULL, 'c' },
		{ "list", no_argument, NULL, 'l' },
		{ "reactors", required_argument, NULL, 'r' },
		{ "poll-us", required_argument, NULL, 'U' },
		{ "mem-budget", required_argument, NULL, 'M' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "control", no_argument, NULL, 'C' },
		{ "status", no_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "interval", required_argument, NULL, 'i' },
		{ "plugin", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct nexus_ctx *ctx;
	sigset_t sigs;
	char *end;
	int c, rc;

	while ((c = getopt_long(argc, argv, "clr:p:Csqi:P:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'c': cfg.check = true; break;
		case 'l': cfg.list = true; break;
		case 'C': cfg.control = true; break;
		case 's': cfg.status = true; break;
		case 'q': cfg.quiet = true; break;
		case 'v': cfg.verbose++; break;
		case 'p': cfg.pidfile = optarg; break;
		case 'r':
			cfg.reactors = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !cfg.reactors || cfg.reactors > 1024) {
				fprintf(stderr, "nexus-pipe: --reactors wants "
					"1..1024, got '%s'\n", optarg);
				return 2;
			}
			break;
		case 'U':
			cfg.poll_set = true;
			cfg.poll_us = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !*optarg || cfg.poll_us > 100000) {
				fprintf(stderr, "nexus-pipe: --poll-us wants "
					"0..100000, got '%s'\n", optarg);
				return 2;
			}
			break;
		case 'M':
			if (parse_size(optarg, &cfg.mem_budget) ||
			    cfg.mem_budget < (32u << 20)) {
				fprintf(stderr, "nexus-pipe: --mem-budget wants "
					"a size of at least 32M, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'i':
			cfg.interval = strtod(optarg, &end);
			if (*end || !(cfg.interval >= 0.05 &&
				      cfg.interval <= 3600)) {
				fprintf(stderr, "nexus-pipe: --interval wants "
					"seconds from 0.05 to 3600\n");
				return 2;
			}
			break;
		case 'P':
			if (cfg.nplugins == 16) {
				fprintf(stderr, "nexus-pipe: too many plugins\n");
				return 2;
			}
			cfg.plugins[cfg.nplugins++] = optarg;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg.list ? optind != argc : optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (!cfg.quiet && isatty(STDERR_FILENO))
		cfg.status = true;
	if (cfg.quiet)
		cfg.status = false;
	/* Block the stop signals before any thread exists: the reactors
	 * inherit the mask and the main thread takes them by signalfd. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (make_ctx(&ctx) < 0)
		return 1;
	if (cfg.list || cfg.check) {
		rc = print_text(ctx, cfg.list ? NULL : argv[optind]);
		if (rc < 0)
			fprintf(stderr, "nexus-pipe: %s\n", nexus_last_error());
		nexus_ctx_destroy(ctx);
		return rc < 0 ? 1 : 0;
	}
	rc = serve(ctx, argv[optind]);
	nexus_ctx_destroy(ctx);
	return rc;
}
