/* SPDX-License-Identifier: MIT */
/* The built-in drivers.  They use the same ops table as plugins. */
#include "internal.h"

const struct nexus_driver *const nx_builtin_drivers[] = {
	&nx_driver_null,
	&nx_driver_mem,
	&nx_driver_file,
	&nx_driver_throttle,
	&nx_driver_fault,
	&nx_driver_crypt,
	&nx_driver_mirror,
	&nx_driver_nbd_export,
	&nx_driver_nbd,
	NULL,
};
