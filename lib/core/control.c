/* SPDX-License-Identifier: MIT */
/* Run-time settings of a device stack: nexus_dev_control() finds the
 * stage a key names and hands the setting to its driver's control(). */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* Depth first, the device itself first, children in order. */
static struct nexus_dev *find_stage(struct nexus_dev *dev, const char *drv,
				    size_t n)
{
	if (strlen(dev->drv->name) == n && !strncmp(dev->drv->name, drv, n))
		return dev;
	for (unsigned c = 0; c < nexus_dev_child_count(dev); c++) {
		struct nexus_dev *d = find_stage(nexus_dev_child(dev, c), drv, n);

		if (d)
			return d;
	}
	return NULL;
}

int nexus_dev_control(struct nexus_dev *dev, const char *key,
		      const char *value)
{
	struct nexus_dev *target = dev;
	const char *name = key, *dot, *shown;
	int rc;

	nx_clear_error();
	if (!dev || !key || !value)
		return nexus_error(-EINVAL, "nexus_dev_control: NULL argument");
	dot = strchr(key, '.');
	if (dot) {
		target = find_stage(dev, key, (size_t)(dot - key));
		if (!target)
			return nexus_error(-ENOENT, "%s: no '%.*s' stage in "
					   "this device stack", dev->name,
					   (int)(dot - key), key);
		name = dot + 1;
	}
	if (!*name)
		return nexus_error(-EINVAL, "nexus_dev_control: empty setting "
					    "name in '%s'", key);
	if (atomic_load(&target->closing))
		return nexus_error(-ESHUTDOWN, "%s: device is closing",
				   target->name);
	if (!target->drv->control)
		return nexus_error(-EOPNOTSUPP, "%s: driver '%s' takes no "
				   "run-time settings", target->name,
				   target->drv->name);
	rc = target->drv->control(target, name, value);
	if (rc > 0)
		rc = -EIO;
	shown = nx_option_secret(target->drv->options, name) ||
			nx_looks_like_key(value)
		? NX_SECRET_SHOWN
		: value;
	if (rc == 0)
		nexus_log(dev->ctx, NEXUS_LOG_INFO, "%s: %s=%s", target->name,
			  name, shown);
	else if (!*nexus_last_error())
		nexus_error(rc, "%s: cannot set %s=%s: %s", target->name, name,
			    shown, strerror(-rc));
	return rc;
}
