/* SPDX-License-Identifier: MIT */
/* What messages may show of an option's value (redact.c). */
#ifndef NEXUS_CORE_REDACT_H
#define NEXUS_CORE_REDACT_H

#include <stdbool.h>
#include <nexus/nexus_driver.h>

#include "hidden.h"

/* What is printed in place of a value that may not be shown. */
#define NX_SECRET_SHOWN "***"

/* Whether @p s holds something that looks like key material: a long run
 * of hex digits or of random-looking base64.  NULL: false. */
NX_HIDDEN bool nx_looks_like_key(const char *s);

/* @p v, the value of the option described by @p d (NULL: an option the
 * driver does not know), as a message may show it: @p v itself, or
 * NX_SECRET_SHOWN when the option is unknown or secret or the value
 * looks like key material. */
NX_HIDDEN const char *nx_value_shown(const struct nexus_option_desc *d,
				     const char *v);

#endif
