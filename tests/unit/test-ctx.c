/* SPDX-License-Identifier: MIT */
/* Contexts: creation options (size-stamped), reactor count, logging,
 * NULL handles everywhere, per-thread error messages. */
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>

#include <nexus/nexus_driver.h>
#include "../submit.h"

#include "unit.h"

static void test_defaults(void)
{
	struct nexus_ctx *ctx = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	EXPECT_OK(nexus_ctx_create(NULL, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL(nexus_ctx_reactor_count(ctx), ncpu > 0 ? ncpu : 1);
	nexus_ctx_destroy(ctx);
	CU_ASSERT_STRING_NOT_EQUAL(nexus_version(), "");
	CU_ASSERT_EQUAL(atoi(nexus_version()), NEXUS_VERSION_MAJOR);
}

static void test_reactor_count(void)
{
	for (unsigned n = 1; n <= 4; n++) {
		struct nexus_ctx *ctx = unit_ctx(n);

		CU_ASSERT_EQUAL(nexus_ctx_reactor_count(ctx), (int)n);
		for (unsigned i = 0; i < n; i++) {
			struct nexus_reactor *r = nexus_ctx_reactor(ctx, i);

			CU_ASSERT_PTR_NOT_NULL(r);
			CU_ASSERT_EQUAL(nexus_reactor_index(r), i);
			CU_ASSERT_PTR_EQUAL(nexus_reactor_ctx(r), ctx);
		}
		CU_ASSERT_PTR_NULL(nexus_ctx_reactor(ctx, n));
		/* an application thread is not a reactor */
		CU_ASSERT_PTR_NULL(nexus_reactor_current());
		nexus_ctx_destroy(ctx);
	}
}

static void test_bad_opts(void)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_ctx *ctx = (struct nexus_ctx *)&o;

	o.size = 0;
	EXPECT_ERR(nexus_ctx_create(&o, &ctx), -EINVAL, "size",
		   "NEXUS_CTX_OPTS_INIT");
	CU_ASSERT_PTR_NULL(ctx); /* *out is cleared on failure */
	o.size = 3;
	EXPECT_ERR(nexus_ctx_create(&o, &ctx), -EINVAL, "size");
	o.size = (size_t)1 << 40; /* garbage, e.g. uninitialised */
	EXPECT_ERR(nexus_ctx_create(&o, &ctx), -EINVAL, "size");
	o.size = sizeof(o);
	o.reactors = 100000;
	EXPECT_ERR(nexus_ctx_create(&o, &ctx), -EINVAL, "reactors");
	o.reactors = 1;
	o.ring_entries = 1u << 30;
	EXPECT_ERR(nexus_ctx_create(&o, &ctx), -EINVAL, "ring_entries");
	o.ring_entries = 0;
	o.log_level = 42;
	EXPECT_ERR(nexus_ctx_create(&o, &ctx), -EINVAL, "log_level");
	o.log_level = -1;
	EXPECT_ERR(nexus_ctx_create(&o, &ctx), -EINVAL, "log_level");
	o.log_level = 0;
	o.mem_budget = 16u << 20; /* below the largest request */
	EXPECT_ERR(nexus_ctx_create(&o, &ctx), -EINVAL, "mem_budget");
	CU_ASSERT_PTR_NULL(ctx);
	o.mem_budget = 32u << 20; /* the smallest allowed */
	EXPECT_OK(nexus_ctx_create(&o, &ctx));
	{
		struct nexus_budget *b = nexus_ctx_budget(ctx);

		CU_ASSERT_PTR_NOT_NULL_FATAL(b);
		CU_ASSERT_EQUAL(nexus_budget_used(b), 0);
	}
	nexus_ctx_destroy(ctx);
	ctx = NULL;
	EXPECT_ERR(nexus_ctx_create(&o, NULL), -EINVAL, "NULL");
}

/* An application built against an older, smaller nexus_ctx_opts: only
 * the fields its size covers are read, whatever follows in memory. */
static void test_old_caller(void)
{
	union {
		struct nexus_ctx_opts o;
		unsigned char raw[sizeof(struct nexus_ctx_opts) + 64];
	} u;
	struct nexus_ctx *ctx = NULL;

	memset(&u, 0xff, sizeof(u)); /* ring_entries, log_fn... garbage */
	u.o.size = offsetof(struct nexus_ctx_opts, ring_entries);
	u.o.reactors = 3;
	EXPECT_OK(nexus_ctx_create(&u.o, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL(nexus_ctx_reactor_count(ctx), 3);
	nexus_ctx_destroy(ctx);

	/* only `size`: everything default */
	memset(&u, 0xff, sizeof(u));
	u.o.size = sizeof(size_t);
	EXPECT_OK(nexus_ctx_create(&u.o, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	nexus_ctx_destroy(ctx);

	/* a newer caller: a larger struct whose extra fields are zero */
	memset(&u, 0, sizeof(u));
	u.o.size = sizeof(u);
	u.o.reactors = 2;
	EXPECT_OK(nexus_ctx_create(&u.o, &ctx));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL(nexus_ctx_reactor_count(ctx), 2);
	nexus_ctx_destroy(ctx);
}

static void test_log_levels(void)
{
	struct unit_log lb = UNIT_LOG_INIT;
	struct nexus_ctx *ctx;
	struct nexus_dev *dev = NULL;

	ctx = unit_ctx_log(1, NEXUS_LOG_INFO, &lb);
	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &dev));
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
	CU_ASSERT_PTR_EQUAL(lb.ud_seen, &lb);
	CU_ASSERT(lb.count[NEXUS_LOG_INFO] >= 2); /* opened, closed */
	CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "opened mem"));
	CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "closed mem"));
	CU_ASSERT_EQUAL(lb.count[NEXUS_LOG_DEBUG], 0);
	CU_ASSERT_PTR_NULL(strchr(lb.text, '\r'));

	/* ERROR only: nothing is logged for a clean open/close */
	memset(&lb.count, 0, sizeof(lb.count));
	lb.text[0] = '\0';
	ctx = unit_ctx_log(1, NEXUS_LOG_ERROR, &lb);
	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &dev));
	nexus_dev_close(dev);
	CU_ASSERT_EQUAL(lb.count[NEXUS_LOG_ERROR], 0);
	nexus_ctx_destroy(ctx);
	CU_ASSERT_EQUAL(lb.count[NEXUS_LOG_INFO], 0);
	CU_ASSERT_EQUAL(lb.count[NEXUS_LOG_WARN], 0);
}

/* Every entry point given NULL handles: -EINVAL (or NULL / a no-op)
 * and a message, never a crash. */
static void test_null_handles(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct nexus_dev *dev = NULL;
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	struct nexus_dev_stats st = NEXUS_DEV_STATS_INIT;
	struct nexus_extent ext[4];
	struct nexus_export *exp = NULL;
	struct nexus_pipeline *pl = NULL;
	struct nexus_conn_info ci = NEXUS_CONN_INFO_INIT;
	char buf[512];
	struct iovec iov = { buf, sizeof(buf) };

	/* frees and closes of NULL are no-ops */
	nexus_ctx_destroy(NULL);
	nexus_dev_close(NULL);
	nexus_export_destroy(NULL);
	nexus_pipeline_close(NULL);

	EXPECT_ERR(nexus_ctx_reactor_count(NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_open(NULL, "mem:1M", &dev), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_open(ctx, NULL, &dev), -EINVAL, "NULL");
	CU_ASSERT_PTR_NULL(dev);
	EXPECT_ERR(nexus_dev_open(ctx, "mem:1M", NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_get_info(NULL, &info), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_get_stats(NULL, &st), -EINVAL, "NULL");
	EXPECT_ERR(test_submit(NULL, NEXUS_OP_READ, &iov, 1, 0, 0, 0,
				    NULL, NULL),
		   -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_pread(NULL, buf, sizeof(buf), 0), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_pwrite(NULL, buf, sizeof(buf), 0, 0), -EINVAL,
		   "NULL");
	EXPECT_ERR(nexus_dev_preadv(NULL, &iov, 1, 0), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_pwritev(NULL, &iov, 1, 0, 0), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_flush(NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_trim(NULL, 0, 512, 0), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_write_zeroes(NULL, 0, 512, 0), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_block_status(NULL, 0, 512, ext, 4), -EINVAL,
		   "NULL");
	EXPECT_ERR(nexus_export_create(NULL, "nbd:x", &exp), -EINVAL, "NULL");
	EXPECT_ERR(nexus_export_add_dev(NULL, NULL, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_export_remove_dev(NULL, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_export_dev_count(NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_get_op_stats(NULL, 0, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_ctx_secret_set(NULL, "k", "x", 1), -EINVAL, "NULL");
	EXPECT_ERR(nexus_ctx_secret_remove(ctx, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_pipeline_open(NULL, "mem:1M", &pl), -EINVAL, "NULL");
	EXPECT_ERR(nexus_pipeline_open(ctx, NULL, &pl), -EINVAL, "NULL");
	EXPECT_ERR(nexus_pipeline_open(ctx, "mem:1M", NULL), -EINVAL, "NULL");
	CU_ASSERT_PTR_NULL(pl);
	CU_ASSERT_PTR_NULL(nexus_pipeline_dev(NULL));
	CU_ASSERT_PTR_NULL(nexus_pipeline_export(NULL));
	EXPECT_ERR(nexus_pipeline_check(NULL, "mem:1M", buf, sizeof(buf)),
		   -EINVAL, "NULL");
	EXPECT_ERR(nexus_pipeline_check(ctx, NULL, buf, sizeof(buf)), -EINVAL,
		   "NULL");
	EXPECT_ERR(nexus_pipeline_check(ctx, "mem:1M", NULL, 10), -EINVAL,
		   "NULL");
	EXPECT_ERR(nexus_export_list_conns(NULL, &ci, 1), -EINVAL, "NULL");
	EXPECT_ERR(nexus_plugin_load(NULL, "/x.so"), -EINVAL, "NULL");
	EXPECT_ERR(nexus_plugin_load(ctx, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_ctx_describe_drivers(NULL, buf, sizeof(buf)), -EINVAL,
		   "NULL");
	CU_ASSERT_EQUAL(nexus_lat_percentile(NULL, 50), 0);

	/* the driver-side accessors tolerate NULL too */
	CU_ASSERT_PTR_NULL(nexus_dev_ctx(NULL));
	CU_ASSERT_PTR_NULL(nexus_dev_private(NULL));
	CU_ASSERT_PTR_NULL(nexus_dev_info_mut(NULL));
	CU_ASSERT_PTR_NULL(nexus_dev_child(NULL, 0));
	CU_ASSERT_EQUAL(nexus_dev_child_count(NULL), 0);
	CU_ASSERT_PTR_NULL(nexus_ctx_reactor(NULL, 0));
	CU_ASSERT_PTR_NULL(nexus_export_dev_at(NULL, 0));
	CU_ASSERT_PTR_NULL(nexus_export_find_dev(NULL, ""));
	CU_ASSERT_PTR_NULL(nexus_export_dev_device(NULL));
	CU_ASSERT_PTR_NULL(nexus_export_ctx(NULL));
	EXPECT_ERR(nexus_reactor_post(NULL, NULL, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_reactor_call(NULL, NULL, NULL), -EINVAL, "NULL");

	/* NULL arguments next to a valid device */
	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &dev));
	CU_ASSERT_PTR_NOT_NULL_FATAL(dev);
	EXPECT_ERR(nexus_dev_get_info(dev, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_get_stats(dev, NULL), -EINVAL, "NULL");
	EXPECT_ERR(nexus_dev_block_status(dev, 0, 512, NULL, 4), -EINVAL,
		   "NULL");
	EXPECT_ERR(nexus_dev_block_status(dev, 0, 512, ext, 0), -EINVAL,
		   "max");
	EXPECT_ERR(test_submit(dev, NEXUS_OP_READ, &iov, 1, 0, 0, 0, NULL,
				    NULL),
		   -EINVAL, "callback");
	EXPECT_ERR(test_submit(dev, NEXUS_OP_READ, NULL, 1, 0, 0, 0, NULL,
				    NULL),
		   -EINVAL, "callback");
	EXPECT_ERR(nexus_dev_preadv(dev, NULL, 1, 0), -EINVAL, "iovec");
	EXPECT_ERR(nexus_dev_pread(dev, NULL, sizeof(buf), 0), -EINVAL,
		   "NULL");
	EXPECT_ERR(nexus_dev_pwrite(dev, NULL, sizeof(buf), 0, 0), -EINVAL,
		   "NULL");
	info.size = 0;
	EXPECT_ERR(nexus_dev_get_info(dev, &info), -EINVAL, "NEXUS_DEV_INFO_INIT");
	st.size = 0;
	EXPECT_ERR(nexus_dev_get_stats(dev, &st), -EINVAL, "NEXUS_DEV_STATS_INIT");
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

/* Size-stamped output structs: an old caller's smaller struct is
 * written only as far as its size; a newer caller's tail is zeroed. */
static void test_info_sizes(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct nexus_dev *dev = NULL;
	union {
		struct nexus_dev_info i;
		unsigned char raw[sizeof(struct nexus_dev_info) + 32];
	} u;
	union {
		struct nexus_dev_stats s;
		unsigned char raw[sizeof(struct nexus_dev_stats) + 32];
	} v;

	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &dev));
	CU_ASSERT_PTR_NOT_NULL_FATAL(dev);

	memset(&u, 0xab, sizeof(u));
	u.i.size = offsetof(struct nexus_dev_info, logical_block_size);
	EXPECT_OK(nexus_dev_get_info(dev, &u.i));
	CU_ASSERT_EQUAL(u.i.dev_size, 1u << 20);
	CU_ASSERT_EQUAL(u.i.logical_block_size, 0xabababab);
	CU_ASSERT_EQUAL(u.i.size, offsetof(struct nexus_dev_info,
					   logical_block_size));

	memset(&u, 0xab, sizeof(u));
	u.i.size = sizeof(u);
	EXPECT_OK(nexus_dev_get_info(dev, &u.i));
	CU_ASSERT_EQUAL(u.i.dev_size, 1u << 20);
	CU_ASSERT_EQUAL(u.i.logical_block_size, 512);
	CU_ASSERT_STRING_EQUAL(u.i.driver, "mem");
	CU_ASSERT(unit_is_zero(u.raw + sizeof(u.i), 32));

	memset(&v, 0xab, sizeof(v));
	v.s.size = offsetof(struct nexus_dev_stats, errors);
	EXPECT_OK(nexus_dev_get_stats(dev, &v.s));
	CU_ASSERT_EQUAL(v.s.ops, 0);
	CU_ASSERT_EQUAL(v.s.errors, 0xababababababababull);
	CU_ASSERT_EQUAL(v.s.size, offsetof(struct nexus_dev_stats, errors));

	memset(&v, 0xab, sizeof(v));
	v.s.size = sizeof(v);
	EXPECT_OK(nexus_dev_get_stats(dev, &v.s));
	CU_ASSERT(unit_is_zero(v.raw + sizeof(v.s), 32));
	CU_ASSERT_EQUAL(v.s.size, sizeof(v));

	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

/* nexus_last_error() is per thread. */
struct err_thread {
	struct nexus_ctx *ctx;
	pthread_barrier_t *bar;
	char before[256], after[256];
	int rc;
};

static void *err_thread_fn(void *arg)
{
	struct err_thread *t = arg;
	struct nexus_dev *dev;

	snprintf(t->before, sizeof(t->before), "%s", nexus_last_error());
	t->rc = nexus_dev_open(t->ctx, "nosuchdriver:1", &dev);
	pthread_barrier_wait(t->bar); /* main fails differently now */
	pthread_barrier_wait(t->bar);
	snprintf(t->after, sizeof(t->after), "%s", nexus_last_error());
	return NULL;
}

static void test_last_error_per_thread(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	pthread_barrier_t bar;
	struct err_thread t = { .ctx = ctx, .bar = &bar };
	struct nexus_dev *dev;
	pthread_t th;

	pthread_barrier_init(&bar, NULL, 2);
	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=banana", &dev), -EINVAL,
		   "banana");
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, err_thread_fn, &t), 0);
	pthread_barrier_wait(&bar);
	/* the other thread's failure did not change ours */
	CU_ASSERT_PTR_NOT_NULL(strstr(nexus_last_error(), "banana"));
	EXPECT_ERR(nexus_dev_open(ctx, "mem:size=1M,size=2M", &dev), -EINVAL,
		   "twice");
	pthread_barrier_wait(&bar);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&bar);
	CU_ASSERT_STRING_EQUAL(t.before, ""); /* a new thread has none */
	CU_ASSERT_EQUAL(t.rc, -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.after, "nosuchdriver"));
	CU_ASSERT_PTR_NULL(strstr(t.after, "twice"));
	/* a successful open clears the message */
	EXPECT_OK(nexus_dev_open(ctx, "null", &dev));
	CU_ASSERT_STRING_EQUAL(nexus_last_error(), "");
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
}

static void test_describe_drivers(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	char small[16];
	char *buf;
	int n;

	n = nexus_ctx_describe_drivers(ctx, NULL, 0);
	CU_ASSERT_FATAL(n > 0);
	buf = malloc((size_t)n + 1);
	CU_ASSERT_EQUAL(nexus_ctx_describe_drivers(ctx, buf, (size_t)n + 1), n);
	CU_ASSERT_EQUAL(strlen(buf), (size_t)n);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "source mem"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "source null"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "source file"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "direct"));
	/* truncation: NUL-terminated, same total returned */
	memset(small, 'x', sizeof(small));
	CU_ASSERT_EQUAL(nexus_ctx_describe_drivers(ctx, small, sizeof(small)),
			n);
	CU_ASSERT_EQUAL(small[sizeof(small) - 1], '\0');
	CU_ASSERT_EQUAL(strncmp(small, buf, sizeof(small) - 1), 0);
	free(buf);
	nexus_ctx_destroy(ctx);
}

static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void test_many_contexts(void)
{
	/* create/free in a loop: no thread, fd or memory is left behind */
	unsigned n = unit_scale(50, 10);
	int fds_before = 0, fds_after = 0;

	for (int fd = 0; fd < 1024; fd++)
		fds_before += fd_is_open(fd);
	for (unsigned i = 0; i < n; i++) {
		struct nexus_ctx *ctx = unit_ctx(2);
		struct nexus_dev *dev = NULL;

		EXPECT_OK(nexus_dev_open(ctx, "mem:size=64K", &dev));
		nexus_ctx_destroy(ctx); /* closes the device */
	}
	for (int fd = 0; fd < 1024; fd++)
		fds_after += fd_is_open(fd);
	CU_ASSERT_EQUAL(fds_before, fds_after);
}

static const struct unit_test tests[] = {
	{ "defaults and version", test_defaults },
	{ "reactor count", test_reactor_count },
	{ "bad options", test_bad_opts },
	{ "older and newer nexus_ctx_opts", test_old_caller },
	{ "log callback and levels", test_log_levels },
	{ "NULL handles", test_null_handles },
	{ "size-stamped info and stats", test_info_sizes },
	{ "nexus_last_error per thread", test_last_error_per_thread },
	{ "describe drivers", test_describe_drivers },
	{ "many contexts: no fd leak", test_many_contexts },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main("ctx", tests);
}
