/* SPDX-License-Identifier: MIT */
/* fault: deterministic, seedable fault injection for tests.
 *
 * An operation is *eligible* when the stage is enabled, its type is in
 * ops= and it touches the byte range [start, end) (FLUSH has no range:
 * it is eligible whenever ops= lists it).  Eligible operations are
 * numbered 1, 2, 3, ... in submission order; the first after= of them
 * pass.  From then on, operation n faults when
 *
 *     hash(seed, n) < probability        (probability=1: always)
 *
 * until count= faults have fired.  A fault waits delay= (or a random
 * time in [delay, delay-max], also from hash(seed, n)) on an io_uring
 * timeout of the reactor, then fails with errno=, or with errno=none
 * goes on to the device below.  Everything else passes through
 * untouched.  Because the decision is a pure function of (seed, n), a
 * program that submits in a fixed order sees the same faults on every
 * run.
 *
 * Every option is also a run-time setting (nexus_dev_control(),
 * "fault.enable" = "off", ...).  Setting after=, count= or seed=
 * restarts the numbering, so "after=100" means "after 100 more". */
#include "config.h"
#include <errno.h>
#include <math.h> /* isfinite */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <liburing.h>
#include <nexus/nexus_driver.h>

#include "shim.h"

#define FAULT_NOPS (NEXUS_OP_WRITE_ZEROES + 1) /* the data operations */
#define ALL_OPS ((1u << FAULT_NOPS) - 1)

struct fault {
	_Atomic bool enabled;
	_Atomic uint32_t ops;	    /* NEXUS_OP_BIT()s */
	_Atomic int err;	    /* positive errno, 0: delay only */
	_Atomic uint64_t threshold; /* probability * 2^64; see fires() */
	_Atomic bool always;	    /* probability 1 */
	_Atomic uint64_t after, count, start, end;
	_Atomic uint64_t delay, delay_max; /* ns */
	_Atomic uint64_t seed;
	_Atomic uint64_t seen;	/* eligible operations numbered so far */
	_Atomic uint64_t fired; /* faults fired */
	uint64_t dev_size;
};

struct fault_io {
	struct nexus_cqe_handler ev;
	struct __kernel_timespec ts;
	struct nexus_io *io;
	int err;
};

static const struct nexus_option_desc fault_options[] = {
	{ "enable", NEXUS_OPT_BOOL, "on",
	  "inject faults (switch at run time with nexus_dev_control)", 0 },
	{ "ops", NEXUS_OPT_STRING, "read,write",
	  "operations that may fault: read, write, flush, trim, "
	  "write-zeroes or all, joined by '+' (ops=read+write)", 0 },
	{ "errno", NEXUS_OPT_STRING, NULL,
	  "error of a fault: EIO, ENOSPC, ... or a number; none: delay "
	  "only (default: EIO, or none when delay= is given)", 0 },
	{ "probability", NEXUS_OPT_STRING, "1",
	  "chance that an eligible operation faults, 0..1", 0 },
	{ "after", NEXUS_OPT_UINT, "0",
	  "eligible operations that pass before faults start", 0 },
	{ "count", NEXUS_OPT_UINT, "0",
	  "stop after this many faults (0: no limit)", 0 },
	{ "start", NEXUS_OPT_SIZE, "0",
	  "first byte of the range where operations may fault", 0 },
	{ "end", NEXUS_OPT_SIZE, NULL,
	  "end (exclusive) of that range (default: the device size)", 0 },
	{ "delay", NEXUS_OPT_STRING, "0",
	  "delay of a fault, e.g. 500us, 10ms, 1s", 0 },
	{ "delay-max", NEXUS_OPT_STRING, NULL,
	  "random delay: uniform in [delay, delay-max]", 0 },
	{ "seed", NEXUS_OPT_UINT, "0",
	  "seed of the pseudo-random choices (same seed, same faults)", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static const char *const op_names[FAULT_NOPS] = {
	"read", "write", "flush", "trim", "write-zeroes",
};

static const struct {
	const char *name;
	int err;
} errnos[] = {
	{ "EIO", EIO },		  { "ENOSPC", ENOSPC },
	{ "EROFS", EROFS },	  { "ENOMEM", ENOMEM },
	{ "EAGAIN", EAGAIN },	  { "ETIMEDOUT", ETIMEDOUT },
	{ "ECONNRESET", ECONNRESET }, { "ENOTCONN", ENOTCONN },
	{ "ENXIO", ENXIO },	  { "ENODEV", ENODEV },
	{ "EPERM", EPERM },	  { "EACCES", EACCES },
	{ "EINVAL", EINVAL },	  { "EBUSY", EBUSY },
	{ "EOPNOTSUPP", EOPNOTSUPP }, { "ESHUTDOWN", ESHUTDOWN },
	{ "EPIPE", EPIPE },	  { "ECANCELED", ECANCELED },
	{ "EBADMSG", EBADMSG },	  { "EILSEQ", EILSEQ },
	{ "ENODATA", ENODATA },	  { "EDQUOT", EDQUOT },
};

/* SplitMix64: a good 64-bit mix of (seed, n). */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t hash(uint64_t seed, uint64_t n, uint64_t salt)
{
	return mix(mix(seed ^ salt) + n);
}

/* ---- parsing, shared by open() and control() ---- */

static int parse_ops(const char *s, uint32_t *out)
{
	uint32_t m = 0;

	while (*s) {
		size_t n = strcspn(s, ",+/ ");
		bool ok = false;

		/* in a pipeline ',' ends the option: quote the list, or
		 * join with '+' (ops=read+write) */
		if (n == 3 && !strncasecmp(s, "all", 3)) {
			m |= ALL_OPS;
			ok = true;
		}
		for (unsigned o = 0; o < FAULT_NOPS && !ok; o++)
			if (strlen(op_names[o]) == n &&
			    !strncasecmp(s, op_names[o], n)) {
				m |= NEXUS_OP_BIT(o);
				ok = true;
			}
		if (!ok)
			return -EINVAL;
		s += n;
		if (*s)
			s++;
	}
	if (!m)
		return -EINVAL;
	*out = m;
	return 0;
}

static int parse_errno(const char *s, int *out)
{
	char *end;
	long v;

	if (!strcasecmp(s, "none")) {
		*out = 0;
		return 0;
	}
	for (unsigned i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (!strcasecmp(s, errnos[i].name)) {
			*out = errnos[i].err;
			return 0;
		}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 4095)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* "1", "0.25", "25%": returns the threshold of hash() < p * 2^64. */
static int parse_probability(const char *s, uint64_t *thr, bool *always)
{
	char *end;
	double p;

	errno = 0;
	p = strtod(s, &end);
	if (errno || end == s || !isfinite(p))
		return -EINVAL;
	if (*end == '%') {
		p /= 100;
		end++;
	}
	if (*end || p < 0 || p > 1)
		return -EINVAL;
	*always = p >= 1;
	*thr = p >= 1 ? UINT64_MAX : (uint64_t)(p * 18446744073709551616.0);
	return 0;
}

/* "250", "250ns", "10us", "5ms", "2s": nanoseconds. */
static int parse_duration(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = { { "", 1 },	  { "ns", 1 },
		      { "us", 1000 },	  { "ms", 1000000 },
		      { "s", 1000000000 } };
	unsigned long long v;
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].unit)) {
			if (v > UINT64_MAX / units[i].mul / 4)
				return -ERANGE;
			*out = v * units[i].mul;
			return 0;
		}
	return -EINVAL;
}

static int bad(const char *key, const char *value, const char *want)
{
	return nexus_error(-EINVAL, "fault: %s=%s: expected %s", key,
			   nx_looks_like_key(value) ? NX_SECRET_SHOWN : value,
			   want);
}

static void restart(struct fault *f)
{
	atomic_store(&f->seen, 0);
	atomic_store(&f->fired, 0);
}

/* Apply one setting; open() and control() share it. */
static int set_one(struct fault *f, const char *key, const char *v)
{
	uint64_t u, thr;
	uint32_t ops;
	bool always, on;
	int e;

	if (!strcmp(key, "enable")) {
		if (nx_parse_bool(v, &on))
			return bad(key, v, "on or off");
		atomic_store(&f->enabled, on);
	} else if (!strcmp(key, "ops")) {
		if (parse_ops(v, &ops))
			return bad(key, v, "read, write, flush, trim, "
				   "write-zeroes or all, joined by '+'");
		atomic_store(&f->ops, ops);
	} else if (!strcmp(key, "errno")) {
		if (parse_errno(v, &e))
			return bad(key, v, "an errno name like EIO or ENOSPC, "
				   "a number 1..4095, or none");
		atomic_store(&f->err, e);
	} else if (!strcmp(key, "probability")) {
		if (parse_probability(v, &thr, &always))
			return bad(key, v, "a number from 0 to 1, or a "
				   "percentage");
		atomic_store(&f->threshold, thr);
		atomic_store(&f->always, always);
	} else if (!strcmp(key, "after") || !strcmp(key, "count") ||
		   !strcmp(key, "seed")) {
		if (nx_parse_u64(v, false, &u))
			return bad(key, v, "an unsigned number");
		atomic_store(!strcmp(key, "after")   ? &f->after
			     : !strcmp(key, "count") ? &f->count
						     : &f->seed,
			     u);
		restart(f);
	} else if (!strcmp(key, "start") || !strcmp(key, "end")) {
		if (nx_parse_u64(v, true, &u))
			return bad(key, v, "a byte offset like 4096 or 1G");
		atomic_store(!strcmp(key, "start") ? &f->start : &f->end, u);
	} else if (!strcmp(key, "delay") || !strcmp(key, "delay-max")) {
		if (parse_duration(v, &u))
			return bad(key, v, "a duration like 250us, 10ms or 1s");
		atomic_store(!strcmp(key, "delay") ? &f->delay : &f->delay_max,
			     u);
	} else if (!strcmp(key, "reset")) {
		restart(f);
	} else {
		return nexus_error(-ENOENT, "fault: no setting '%s'", key);
	}
	return 0;
}

/* ---- data path ---- */

/* After the delay: fail, or go on to the device below. */
static void delay_event(struct nexus_cqe_handler *ev, int res, uint32_t flags)
{
	struct fault_io *fi = (struct fault_io *)(void *)ev;
	int rc;

	(void)res;
	(void)flags;
	if (fi->err) {
		nexus_io_complete(fi->io, -fi->err);
		return;
	}
	rc = nx_shim_pass(fi->io);
	if (rc < 0)
		nexus_io_complete(fi->io, rc);
}

/* Decide whether operation @p io faults; fill the delay. */
static bool fires(struct fault *f, const struct nexus_io *io, uint64_t *delay)
{
	uint64_t n, seed, count, d, dmax;

	if (!atomic_load_explicit(&f->enabled, memory_order_relaxed) ||
	    !(atomic_load_explicit(&f->ops, memory_order_relaxed) &
	      NEXUS_OP_BIT(io->op)))
		return false;
	if (io->op != NEXUS_OP_FLUSH) {
		uint64_t s = atomic_load_explicit(&f->start,
						  memory_order_relaxed);
		uint64_t e = atomic_load_explicit(&f->end, memory_order_relaxed);

		if (io->offset >= e || io->offset + io->length <= s)
			return false;
	}
	n = atomic_fetch_add(&f->seen, 1) + 1;
	if (n <= atomic_load_explicit(&f->after, memory_order_relaxed))
		return false;
	seed = atomic_load_explicit(&f->seed, memory_order_relaxed);
	if (!atomic_load_explicit(&f->always, memory_order_relaxed) &&
	    hash(seed, n, 0x70726f62) >=
		    atomic_load_explicit(&f->threshold, memory_order_relaxed))
		return false;
	count = atomic_load_explicit(&f->count, memory_order_relaxed);
	if (count && atomic_fetch_add(&f->fired, 1) >= count)
		return false;
	if (!count)
		atomic_fetch_add_explicit(&f->fired, 1, memory_order_relaxed);
	d = atomic_load_explicit(&f->delay, memory_order_relaxed);
	dmax = atomic_load_explicit(&f->delay_max, memory_order_relaxed);
	if (dmax > d)
		d += hash(seed, n, 0x64656c61) % (dmax - d + 1);
	*delay = d;
	return true;
}

static int fault_submit(struct nexus_io *io)
{
	struct fault *f = nexus_dev_private(io->dev);
	struct fault_io *fi = io->driver_ctx;
	struct io_uring_sqe *sqe;
	uint64_t delay;

	if (!fires(f, io, &delay))
		return nx_shim_pass(io);
	fi->io = io;
	fi->err = atomic_load_explicit(&f->err, memory_order_relaxed);
	if (delay) {
		fi->ev.fn = delay_event;
		sqe = nexus_reactor_sqe(io->reactor, &fi->ev);
		if (sqe) {
			fi->ts.tv_sec = (long long)(delay / 1000000000u);
			fi->ts.tv_nsec = (long long)(delay % 1000000000u);
			io_uring_prep_timeout(sqe, &fi->ts, 0, 0);
			return 0;
		}
		/* ring full: fault without the delay */
	}
	if (fi->err) {
		nexus_io_complete(io, -fi->err);
		return 0;
	}
	return nx_shim_pass(io);
}

/* ---- control path ---- */

/* Apply the options to @p f, on a device of @p dev_size bytes (the
 * default of end=), with the rules between them.  The parse-time check
 * runs it on a scratch struct with no device yet (dev_size UINT64_MAX);
 * open() runs it again for real. */
static int configure(struct fault *f, const struct nexus_opts *opts,
		     uint64_t dev_size)
{
	int rc = 0;

	f->dev_size = dev_size;
	atomic_store(&f->end, dev_size);
	atomic_store(&f->err, EIO);
	for (const struct nexus_option_desc *d = fault_options; d->name; d++) {
		const char *v = nexus_opts_str(opts, d->name);

		if (v && (rc = set_one(f, d->name, v)))
			return rc;
	}
	if (!nexus_opts_given(opts, "errno") &&
	    (nexus_opts_given(opts, "delay") ||
	     nexus_opts_given(opts, "delay-max")))
		atomic_store(&f->err, 0);
	if (atomic_load(&f->start) >= atomic_load(&f->end))
		return nexus_error(-EINVAL, "fault: start=%llu is not below "
				   "end=%llu",
				   (unsigned long long)atomic_load(&f->start),
				   (unsigned long long)atomic_load(&f->end));
	if (nexus_opts_given(opts, "delay-max") &&
	    atomic_load(&f->delay_max) < atomic_load(&f->delay))
		return nexus_error(-EINVAL, "fault: delay-max= is below delay=");
	return 0;
}

static int fault_check(const struct nexus_opts *opts)
{
	struct fault scratch;

	memset(&scratch, 0, sizeof(scratch));
	return configure(&scratch, opts, UINT64_MAX);
}

static int fault_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info cin = NEXUS_DEV_INFO_INIT;
	struct fault *f;
	int rc;

	nx_shim_inherit(dev, &cin);
	f = calloc(1, sizeof(*f));
	if (!f)
		return nexus_error(-ENOMEM, "out of memory");
	rc = configure(f, opts, cin.dev_size);
	if (rc) {
		free(f);
		return rc;
	}
	nexus_dev_set_private(dev, f);
	return 0;
}

static void fault_close(struct nexus_dev *dev)
{
	free(nexus_dev_private(dev));
}

static int fault_control(struct nexus_dev *dev, const char *key,
			 const char *value)
{
	return set_one(nexus_dev_private(dev), key, value);
}

const struct nexus_driver nx_driver_fault = {
	NEXUS_DRIVER_HEADER,
	.name = "fault",
	.summary = "deterministic, seedable fault injection: errors and "
		   "delays by operation, offset range, probability, count",
	.kind = NEXUS_DRIVER_TRANSFORM,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
	       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS),
	.per_io_size = sizeof(struct fault_io),
	.options = fault_options,
	.check = fault_check,
	.open = fault_open,
	.close = fault_close,
	.submit = fault_submit,
	/* until every reactor caller submits BLOCK_STATUS (the export) */
	.block_status = nx_shim_block_status,
	.control = fault_control,
};
