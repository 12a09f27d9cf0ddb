/* SPDX-License-Identifier: MIT */
/* Plugin of pipe-secret.sh (nexus-tsecret.so): source "tsecret", a
 * read-only device of zeroes whose options token= (positional) and pin=
 * are secrets (NEXUS_OPTF_SECRET), with a run-time setting "pin" that
 * takes digits only and leaves the message about a bad value to the
 * core. */
#include <errno.h>
#include <string.h>

#include <nexus/nexus_driver.h>

static const struct nexus_option_desc ts_options[] = {
	{ "token", NEXUS_OPT_STRING, NULL, "a secret token",
	  NEXUS_OPTF_POSITIONAL | NEXUS_OPTF_SECRET },
	{ "pin", NEXUS_OPT_UINT, "0", "a secret number", NEXUS_OPTF_SECRET },
	{ "size", NEXUS_OPT_SIZE, "1M", "device size", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static int ts_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	uint64_t size, pin;
	int rc;

	if ((rc = nexus_opts_u64(opts, "size", &size)) ||
	    (rc = nexus_opts_u64(opts, "pin", &pin)))
		return rc;
	in->dev_size = size;
	in->flags |= NEXUS_DEV_READ_ONLY;
	return 0;
}

static void ts_close(struct nexus_dev *dev)
{
	(void)dev;
}

static int ts_submit(struct nexus_io *io)
{
	for (int i = 0; i < io->iovcnt; i++)
		memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
	nexus_io_complete(io, 0);
	return 0;
}

static int ts_control(struct nexus_dev *dev, const char *key,
		      const char *value)
{
	(void)dev;
	if (strcmp(key, "pin"))
		return nexus_error(-ENOENT, "tsecret: no setting '%s'", key);
	if (!*value || strspn(value, "0123456789") != strlen(value))
		return -EINVAL;
	return 0;
}

static const struct nexus_driver ts_driver = {
	NEXUS_DRIVER_HEADER,
	.name = "tsecret",
	.summary = "zeroes; token= and pin= are secrets (test plugin)",
	.kind = NEXUS_DRIVER_SOURCE,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ),
	.options = ts_options,
	.open = ts_open,
	.close = ts_close,
	.submit = ts_submit,
	.control = ts_control,
};

static const struct nexus_driver *const drivers[] = { &ts_driver, NULL };
NEXUS_REGISTER_PLUGIN(drivers)
