/* SPDX-License-Identifier: MIT */
/* Shared by the mirror test programs: data patterns, the listing of a
 * child, and running one named test or all. */
#ifndef NEXUS_TESTS_MIRROR_TEST_H
#define NEXUS_TESTS_MIRROR_TEST_H

#include "../transforms/check.h"

#define MB (1024 * 1024)

/* A pattern of @p n bytes from @p seed (the same at the same offset). */
static inline void fill(char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)(seed * 131 + i * 7 + (i >> 9));
}

/* Child @p i of the mirror in @p dev's stack, as listed. */
static inline struct nexus_mirror_child child(struct nexus_dev *dev,
					      unsigned i)
{
	struct nexus_mirror_child c = NEXUS_MIRROR_CHILD_INIT;

	CHECK(nexus_mirror_get_child(dev, i, &c) > 0);
	return c;
}

/* One test of a program: a name for the command line, a function. */
struct mirror_test {
	const char *name;
	void (*fn)(struct nexus_ctx *);
};

/* Run the test named argv[1], or all; each gets @p ctx.  Returns the
 * exit status. */
static inline int run_tests(const struct mirror_test *t, size_t n,
			    struct nexus_ctx *ctx, int argc, char **argv)
{
	int ran = 0;

	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], t[i].name))
			continue;
		printf("--- %s\n", t[i].name);
		t[i].fn(ctx);
		ran++;
	}
	nexus_ctx_destroy(ctx);
	CHECK(ran > 0);
	return 0;
}

#endif
