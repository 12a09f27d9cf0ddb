/* SPDX-License-Identifier: MIT */
/* Plugin of pipe-bounds.sh (nexus-tbounds.so): source "tbounds", zeroes,
 * whose options carry bounds and a word list and whose check() has a
 * rule between two options -- the core must apply them at parse time to
 * a plugin exactly as to a built-in driver.  Built with -DBAD_MINMAX,
 * -DBAD_DEFAULT, -DBAD_WORDS or -DBAD_BOUNDS_TYPE it declares a table
 * that the registry must refuse. */
#include <errno.h>
#include <string.h>

#include <nexus/nexus_driver.h>

static const char *const speeds[] __attribute__((unused)) = { "fast", "slow", NULL };
#ifdef BAD_WORDS
static const char *const no_words[] = { NULL };
#endif

static const struct nexus_option_desc tb_options[] = {
	{ "size", NEXUS_OPT_SIZE, "1M", "device size", NEXUS_OPTF_POSITIONAL,
	  .min = 4096, .max = 1u << 30 },
#if defined(BAD_MINMAX)
	{ "depth", NEXUS_OPT_UINT, "2", "queue depth", 0, .min = 8, .max = 1 },
#elif defined(BAD_DEFAULT)
	{ "depth", NEXUS_OPT_UINT, "9", "queue depth", 0, .min = 1, .max = 8 },
#elif defined(BAD_BOUNDS_TYPE)
	{ "depth", NEXUS_OPT_STRING, "2", "queue depth", 0, .min = 1 },
#else
	{ "depth", NEXUS_OPT_UINT, "2", "queue depth", 0, .min = 1, .max = 8 },
#endif
#ifdef BAD_WORDS
	{ "speed", NEXUS_OPT_STRING, NULL, "fast or slow", 0,
	  .values = no_words },
#else
	{ "speed", NEXUS_OPT_STRING, "fast", "fast or slow", 0,
	  .values = speeds },
#endif
	{ NULL, 0, NULL, NULL, 0 },
};

/* slow goes with a depth of 1 only */
static int tb_check(const struct nexus_opts *opts)
{
	const char *speed = nexus_opts_str(opts, "speed");
	uint64_t depth;
	int rc = nexus_opts_u64(opts, "depth", &depth);

	if (rc)
		return rc;
	if (speed && !strcmp(speed, "slow") && depth != 1)
		return nexus_error(-EINVAL, "tbounds: speed=slow needs depth=1");
	return 0;
}

static int tb_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	uint64_t size;
	int rc = nexus_opts_u64(opts, "size", &size);

	if (rc)
		return rc;
	nexus_dev_info_mut(dev)->dev_size = size;
	nexus_dev_info_mut(dev)->flags |= NEXUS_DEV_READ_ONLY;
	return 0;
}

static void tb_close(struct nexus_dev *dev)
{
	(void)dev;
}

static int tb_submit(struct nexus_io *io)
{
	for (int i = 0; i < io->iovcnt; i++)
		memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
	nexus_io_complete(io, 0);
	return 0;
}

static const struct nexus_driver tb_driver = {
	NEXUS_DRIVER_HEADER,
	.name = "tbounds",
	.summary = "zeroes; options with bounds, words and a check (test)",
	.kind = NEXUS_DRIVER_SOURCE,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ),
	.options = tb_options,
	.check = tb_check,
	.open = tb_open,
	.close = tb_close,
	.submit = tb_submit,
};

static const struct nexus_driver *const drivers[] = { &tb_driver, NULL };
NEXUS_REGISTER_PLUGIN(drivers)
