/* SPDX-License-Identifier: MIT */
/* NX_HIDDEN: for the library's internal functions and variables, which
 * stay out of the ABI (the version script exports only nexus_*). */
#ifndef NEXUS_CORE_HIDDEN_H
#define NEXUS_CORE_HIDDEN_H

#define NX_HIDDEN __attribute__((visibility("hidden")))

#endif
