/* SPDX-License-Identifier: MIT */
/* What messages and descriptions may show of an option's value.
 *
 * A value is shown only when its option is known to the driver, is not
 * flagged NEXUS_OPTF_SECRET, and the value does not look like key
 * material; otherwise NX_SECRET_SHOWN stands in its place.  Everything
 * that prints a value goes through here: nexus_pipeline_check()
 * descriptions, the stage text that names a device or an export, the
 * core's option errors and the built-in drivers' messages.
 *
 * "Looks like key material" (nx_looks_like_key) is a heuristic that errs
 * on the side of hiding:
 *  - a run of 16 or more hexadecimal digits (64 bits) with a letter in
 *    it or after "0x" (a long decimal number is not a key), or
 *  - a run of 16 or more base64 characters (A-Z a-z 0-9 + / and '='
 *    padding) in which the class (upper case, lower case, digit) of
 *    adjacent letters and digits changes at least once every two
 *    characters, as it does in random base64 and seldom does in words,
 *    CamelCase names, paths and numbers. */
#include <stdbool.h>
#include <string.h>

#include "redact.h"

#define MIN_RUN 16

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

static int class_of(char c)
{
	if (c >= 'A' && c <= 'Z')
		return 1;
	if (c >= 'a' && c <= 'z')
		return 2;
	if (c >= '0' && c <= '9')
		return 3;
	return 0;
}

/* A base64 run [s, s+n) that mixes character classes like random data. */
static bool random_b64(const char *s, size_t n)
{
	size_t changes = 0;

	for (size_t i = 1; i < n; i++)
		if (class_of(s[i]) && class_of(s[i - 1]) &&
		    class_of(s[i]) != class_of(s[i - 1]))
			changes++;
	return changes * 2 >= n;
}

bool nx_looks_like_key(const char *s)
{
	size_t hex = 0;
	bool letter = false;

	if (!s)
		return false;
	for (size_t i = 0; s[i]; i++) {
		hex = is_hex(s[i]) ? hex + 1 : 0;
		/* a letter in the run, or the run follows "0x" */
		if (hex == 1)
			letter = i >= 2 && s[i - 1] == 'x' && s[i - 2] == '0';
		letter = hex && (letter || class_of(s[i]) != 3);
		if (hex >= MIN_RUN && letter)
			return true;
	}
	for (size_t i = 0; s[i];) {
		size_t n = 0;

		while (is_b64(s[i + n]))
			n++;
		if (n >= MIN_RUN && random_b64(s + i, n))
			return true;
		i += n ? n : 1;
	}
	return false;
}

const char *nx_value_shown(const struct nexus_option_desc *d, const char *v)
{
	if (!v)
		return v;
	if (!d || (d->flags & NEXUS_OPTF_SECRET) || nx_looks_like_key(v))
		return NX_SECRET_SHOWN;
	return v;
}
