/* SPDX-License-Identifier: MIT */
/* mirror: an application state store (nexus_ctx_store_add, state=app:N).
 * The record lives in the application's memory: it is written before the
 * write that faulted a child is acknowledged, read back at open, and a
 * failing put fails the writes that wait for it.  Misuse (unknown store,
 * a store in use, bad names, a get that overflows) is an error with a
 * message; release runs exactly once.
 * Usage: mirror-app-store [TEST]  (no argument: all). */
#include "mirror-test.h"

/* The application's store: one record in memory. */
struct rec {
	char data[NEXUS_STORE_MAX_RECORD + 1];
	size_t len;
	int fail_put;	  /* put returns this when non-zero */
	int lie_get;	  /* get returns this length when non-zero */
	unsigned puts, releases;
};

static int rec_get(void *ud, void *buf, size_t cap)
{
	struct rec *r = ud;

	if (r->lie_get)
		return r->lie_get;
	if (r->len >= cap)
		return -EFBIG;
	memcpy(buf, r->data, r->len);
	return (int)r->len;
}

static int rec_put(void *ud, const void *buf, size_t len)
{
	struct rec *r = ud;

	if (r->fail_put)
		return r->fail_put;
	if (len > NEXUS_STORE_MAX_RECORD)
		return -EFBIG;
	memcpy(r->data, buf, len);
	r->data[len] = 0;
	r->len = len;
	r->puts++;
	return 0;
}

static void rec_release(void *ud)
{
	((struct rec *)ud)->releases++;
}

static void add(struct nexus_ctx *ctx, const char *name, struct rec *r)
{
	struct nexus_state_store s = NEXUS_STATE_STORE_INIT;

	s.get = rec_get;
	s.put = rec_put;
	s.release = rec_release;
	s.user_data = r;
	CHECK_RC(nexus_ctx_store_add(ctx, name, &s), 0);
}

#define PL "( mem:4M | fault:enable=off ; mem:4M ) | mirror:state=app:"

static void test_record(struct nexus_ctx *ctx)
{
	static struct rec r;
	struct nexus_dev *dev, *dev2 = NULL;
	char buf[4096];

	add(ctx, "vol1", &r);
	CHECK_RC(nexus_dev_open(ctx, PL "vol1", &dev), -EINVAL); /* empty */
	CHECK(strstr(nexus_last_error(), "state record is empty"));
	CHECK_RC(nexus_dev_open(ctx, PL "vol1,assume-clean=on", &dev), 0);
	CHECK(r.puts >= 1 && strstr(r.data, "child 0 in-sync"));
	/* one mirror at a time */
	CHECK_RC(nexus_dev_open(ctx, PL "vol1,assume-clean=on", &dev2), -EBUSY);
	CHECK(strstr(nexus_last_error(), "used by another mirror"));
	CHECK_RC(nexus_ctx_store_remove(ctx, "vol1"), -EBUSY);
	/* the fault is in the record before the write is acknowledged */
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	fill(buf, sizeof(buf), 3);
	CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf), 0, 0), sizeof(buf));
	CHECK(strstr(r.data, "child 0 out-of-sync"));
	CHECK(strstr(r.data, "child 1 in-sync"));
	CHECK_RC(nexus_dev_close(dev), 0);
	/* reopened from the record: child 1 is the one in sync */
	CHECK_RC(nexus_dev_open(ctx, PL "vol1,rebuild=manual", &dev), 0);
	CHECK(child(dev, 0).state == NEXUS_DEV_STATE_FAULTED);
	CHECK(child(dev, 1).state == NEXUS_DEV_STATE_ONLINE);
	CHECK_RC(nexus_dev_close(dev), 0);
	CHECK(r.releases == 0);
	CHECK_RC(nexus_ctx_store_remove(ctx, "vol1"), 0);
	CHECK(r.releases == 1);
	CHECK_RC(nexus_ctx_store_remove(ctx, "vol1"), -ENOENT);
	CHECK_RC(nexus_dev_open(ctx, PL "vol1,assume-clean=on", &dev), -ENOENT);
	CHECK(strstr(nexus_last_error(), "no such state store"));
}

/* A write whose fault cannot be recorded is not acknowledged. */
static void test_put_fails(struct nexus_ctx *ctx)
{
	static struct rec r;
	struct nexus_dev *dev;
	char buf[4096];

	add(ctx, "vol2", &r);
	CHECK_RC(nexus_dev_open(ctx, PL "vol2,assume-clean=on", &dev), 0);
	r.fail_put = -EIO;
	CHECK_RC(nexus_dev_control(dev, "fault.enable", "on"), 0);
	fill(buf, sizeof(buf), 4);
	CHECK(nexus_dev_pwrite(dev, buf, sizeof(buf), 0, 0) < 0);
	CHECK(strstr(r.data, "child 0 in-sync")); /* still the old record */
	r.fail_put = 0;
	CHECK_RC(nexus_dev_pwrite(dev, buf, sizeof(buf), 0, 0), sizeof(buf));
	CHECK(strstr(r.data, "child 0 out-of-sync"));
	CHECK_RC(nexus_dev_close(dev), 0);
	CHECK_RC(nexus_ctx_store_remove(ctx, "vol2"), 0);
}

/* Misuse and untrusted results. */
static void test_misuse(struct nexus_ctx *ctx)
{
	static struct rec r, r2;
	struct nexus_state_store s = NEXUS_STATE_STORE_INIT;
	struct nexus_dev *dev = NULL;

	CHECK_RC(nexus_ctx_store_add(NULL, "x", &s), -EINVAL);
	CHECK_RC(nexus_ctx_store_add(ctx, "x", &s), -EINVAL); /* no get/put */
	s.get = rec_get;
	s.put = rec_put;
	CHECK_RC(nexus_ctx_store_add(ctx, "bad name", &s), -EINVAL);
	CHECK_RC(nexus_ctx_store_add(ctx, "", &s), -EINVAL);
	CHECK_RC(nexus_ctx_store_remove(ctx, NULL), -EINVAL);
	add(ctx, "vol3", &r);
	CHECK_RC(nexus_ctx_store_add(ctx, "vol3", &s), -EEXIST);
	/* a get claiming more bytes than the buffer holds */
	r.lie_get = NEXUS_STORE_MAX_RECORD + 100;
	CHECK(nexus_dev_open(ctx, PL "vol3", &dev) < 0);
	CHECK(strstr(nexus_last_error(), "app:vol3"));
	r.lie_get = -EACCES;
	CHECK_RC(nexus_dev_open(ctx, PL "vol3", &dev), -EACCES);
	/* left registered: the context's destroy releases it */
	add(ctx, "vol4", &r2);
}

static const struct mirror_test tests[] = {
	{ "record", test_record },
	{ "put-fails", test_put_fails },
	{ "misuse", test_misuse },
};

int main(int argc, char **argv)
{
	static struct rec last;
	struct nexus_ctx *ctx = test_ctx(2);
	int rc;

	/* a store left registered is released by nexus_ctx_destroy() */
	add(ctx, "left", &last);
	rc = run_tests(tests, sizeof(tests) / sizeof(tests[0]), ctx, argc,
		       argv);
	CHECK(last.releases == 1);
	return rc;
}
