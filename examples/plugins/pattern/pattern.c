/* SPDX-License-Identifier: MIT */
/* pattern: an example libnexus source plugin.
 *
 * A read-only device whose content is computed, not stored: the 8-byte
 * word at every multiple-of-8 byte offset O holds O XOR seed, big-endian.
 * Any byte can be checked without a reference copy:
 *
 *   byte at P = ((P & ~7) ^ seed) >> (56 - 8 * (P & 7)) & 0xff
 *
 *   nexus-pipe 'pattern:size=64M | nbd:listen=127.0.0.1:10809'
 *
 * Built out of tree against an installed libnexus (see the Makefile):
 * it includes only <nexus/nexus_driver.h> and libc.  It shows the
 * smallest complete source: an options table, open/close, submit with
 * completion, per-reactor state, logging, and block status.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nexus/nexus_driver.h>

struct pattern {
	uint64_t size;
	uint64_t seed;
	char *name; /* for log messages */
};

/* Per-reactor counters: only their reactor writes them, so no locks or
 * atomics; they are reported when the device closes. */
struct pattern_rstate {
	uint64_t reads, bytes;
};

static const struct nexus_option_desc pattern_options[] = {
	{ "size", NEXUS_OPT_SIZE, NULL, "device size (e.g. 64M)",
	  NEXUS_OPTF_REQUIRED | NEXUS_OPTF_POSITIONAL },
	{ "seed", NEXUS_OPT_UINT, "0", "XORed into every 8-byte word", 0 },
	{ "block-size", NEXUS_OPT_SIZE, "512", "logical block size", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static int pattern_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	struct nexus_dev_info self = NEXUS_DEV_INFO_INIT;
	struct pattern *p;
	uint64_t size, seed, bs;
	int rc;

	/* The core validated the option syntax against the table; the
	 * values are the driver's to check. */
	if ((rc = nexus_opts_u64(opts, "size", &size)) ||
	    (rc = nexus_opts_u64(opts, "seed", &seed)) ||
	    (rc = nexus_opts_u64(opts, "block-size", &bs)))
		return rc;
	if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
		return nexus_error(-EINVAL, "pattern: block-size %llu is not a "
				   "power of two from 512 to 64K",
				   (unsigned long long)bs);
	if (!size || size % bs)
		return nexus_error(-EINVAL, "pattern: size %llu is not a "
				   "positive multiple of block-size %llu",
				   (unsigned long long)size,
				   (unsigned long long)bs);
	p = calloc(1, sizeof(*p));
	if (!p)
		return nexus_error(-ENOMEM, "pattern: out of memory");
	nexus_dev_get_info(dev, &self);
	p->name = strdup(self.name ? self.name : "pattern");
	if (!p->name) {
		free(p);
		return nexus_error(-ENOMEM, "pattern: out of memory");
	}
	p->size = size;
	p->seed = seed;
	in->dev_size = size;
	in->logical_block_size = (uint32_t)bs;
	in->physical_block_size = bs > 4096 ? (uint32_t)bs : 4096;
	/* No WRITE in .ops: the core refuses writes (-EOPNOTSUPP) before
	 * submit(); READ_ONLY tells exports and transforms above.  Every
	 * connection sees the same data: safe to share. */
	in->flags |= NEXUS_DEV_READ_ONLY | NEXUS_DEV_MULTI_CONN |
		     NEXUS_DEV_BLOCK_STATUS;
	nexus_dev_set_private(dev, p);
	return 0;
}

static void pattern_close(struct nexus_dev *dev)
{
	struct pattern *p = nexus_dev_private(dev);

	free(p->name);
	free(p);
}

static int pattern_reactor_init(struct nexus_dev *dev,
				struct nexus_reactor *r, void **rstate)
{
	(void)dev;
	(void)r;
	*rstate = calloc(1, sizeof(struct pattern_rstate));
	return *rstate ? 0 : -ENOMEM;
}

static void pattern_reactor_fini(struct nexus_dev *dev,
				 struct nexus_reactor *r, void *rstate)
{
	struct pattern *p = nexus_dev_private(dev);
	struct pattern_rstate *rs = rstate;

	if (rs->reads)
		nexus_log(nexus_dev_ctx(dev), NEXUS_LOG_DEBUG,
			  "pattern: %s: reactor %u served %llu reads, %llu "
			  "bytes", p->name, nexus_reactor_index(r),
			  (unsigned long long)rs->reads,
			  (unsigned long long)rs->bytes);
	free(rs);
}

/* Fill buf with the pattern bytes of [pos, pos + len). */
static void fill(unsigned char *buf, uint64_t pos, size_t len, uint64_t seed)
{
	/* leading bytes up to a word boundary */
	while (len && (pos & 7)) {
		*buf++ = (unsigned char)(((pos & ~7ull) ^ seed) >>
					 (56 - 8 * (pos & 7)));
		pos++;
		len--;
	}
	for (; len >= 8; len -= 8, pos += 8, buf += 8) {
		uint64_t v = pos ^ seed;

		for (int i = 0; i < 8; i++)
			buf[i] = (unsigned char)(v >> (56 - 8 * i));
	}
	for (unsigned i = 0; i < len; i++)
		buf[i] = (unsigned char)(((pos & ~7ull) ^ seed) >> (56 - 8 * i));
}

static int pattern_submit(struct nexus_io *io)
{
	struct pattern *p = nexus_dev_private(io->dev);
	struct pattern_rstate *rs = io->rstate;
	uint64_t pos = io->offset;

	switch (io->op) {
	case NEXUS_OP_READ:
		for (int i = 0; i < io->iovcnt; i++) {
			fill(io->iov[i].iov_base, pos, io->iov[i].iov_len,
			     p->seed);
			pos += io->iov[i].iov_len;
		}
		rs->reads++;
		rs->bytes += io->length;
		break;
	case NEXUS_OP_FLUSH:
		break; /* nothing is ever dirty */
	default:
		/* not reached: the core only passes declared operations */
		return -EOPNOTSUPP;
	}
	/* Completing inside submit() is allowed: the core runs the
	 * submitter's callback later, from the reactor loop. */
	nexus_io_complete(io, 0);
	return 0;
}

static int pattern_block_status(struct nexus_dev *dev, uint64_t offset,
				uint64_t length, struct nexus_extent *ext,
				unsigned max)
{
	(void)dev;
	(void)max;
	/* no holes: one data extent covering the range */
	ext[0].offset = offset;
	ext[0].length = length;
	ext[0].flags = 0;
	return 1;
}

static const struct nexus_driver pattern_driver = {
	NEXUS_DRIVER_HEADER,
	.name = "pattern",
	.summary = "read-only device holding a computable pattern "
		   "(example plugin)",
	.kind = NEXUS_DRIVER_SOURCE,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_FLUSH),
	.options = pattern_options,
	.open = pattern_open,
	.close = pattern_close,
	.reactor_init = pattern_reactor_init,
	.reactor_fini = pattern_reactor_fini,
	.submit = pattern_submit,
	.block_status = pattern_block_status,
};

static const struct nexus_driver *const pattern_drivers[] = {
	&pattern_driver,
	NULL,
};

NEXUS_REGISTER_PLUGIN(pattern_drivers)
