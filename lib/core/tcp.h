/* SPDX-License-Identifier: MIT */
/* TCP socket settings shared by the network drivers (exports and
 * remote sources).  Nothing here is part of the ABI. */
#ifndef NEXUS_CORE_TCP_H
#define NEXUS_CORE_TCP_H

#include <stdbool.h>

#include "hidden.h"

/* Whether the connected socket @fd talks to this host through loopback
 * (127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104). */
NX_HIDDEN bool nx_tcp_is_loopback(int fd);

/* Check a congestion= option value: "auto", "system", or the name of an
 * algorithm this process may set.  Returns 0, or -EINVAL with a message
 * naming @stage. */
NX_HIDDEN int nx_tcp_congestion_check(const char *stage,
				      const char *algo);

/* Apply a checked congestion= value to the connected TCP socket @fd:
 *  - "system": leave the kernel's default;
 *  - "auto": on a loopback connection, an algorithm that does not pace
 *    (cubic, else reno, which every kernel has and every user may
 *    set); elsewhere the kernel's default.  Pacing (bbr) protects a
 *    bottleneck queue that loopback does not have, and its timers cap
 *    one stream at less than half of what loopback carries;
 *  - a name: that algorithm.
 * Best effort: a failure leaves the kernel's default. */
NX_HIDDEN void nx_tcp_congestion(int fd, const char *algo);

#endif
