/* SPDX-License-Identifier: MIT */
/* Closing with I/O in flight: nexus_dev_close() returns only after every
 * accepted I/O's callback ran, and none runs after it; submissions
 * during the close fail with -ESHUTDOWN; nexus_ctx_destroy() closes what is
 * still open (valgrind/ASan check that nothing leaks). */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include <nexus/nexus_driver.h>
#include "../submit.h"

#include "unit.h"

static char *scratch;

struct track {
	struct nexus_dev *dev;
	atomic_int calls;	/* callbacks run */
	atomic_int accepted;	/* submits that returned 0 */
	atomic_int late;	/* callbacks after close returned */
	atomic_int errors;	/* callbacks with a negative result */
	atomic_int shutdown;	/* resubmits refused with -ESHUTDOWN */
	atomic_int bad;		/* anything else unexpected */
	atomic_bool closing;	/* close has been called */
	atomic_bool closed;	/* close has returned */
	struct iovec iov;
	_Alignas(4096) char buf[4096]; /* O_DIRECT-aligned */
};

static struct track *track_new(void)
{
	struct track *t = aligned_alloc(4096, sizeof(*t));

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	memset(t, 0, sizeof(*t));
	t->iov = (struct iovec){ t->buf, sizeof(t->buf) };
	return t;
}

static void track_cb(void *ud, int res)
{
	struct track *t = ud;

	if (atomic_load(&t->closed))
		atomic_fetch_add(&t->late, 1);
	if (res < 0)
		atomic_fetch_add(&t->errors, 1);
	/* try to add more work while the device closes */
	if (atomic_load(&t->closing)) {
		int rc = test_submit(t->dev, NEXUS_OP_READ, &t->iov, 1, 0,
					  0, 0, track_cb, t);

		if (rc == 0)
			atomic_fetch_add(&t->accepted, 1);
		else if (rc == -ESHUTDOWN)
			atomic_fetch_add(&t->shutdown, 1);
		else
			atomic_fetch_add(&t->bad, 1);
	}
	atomic_fetch_add(&t->calls, 1);
}

/* Submit n async I/Os (retrying a full queue), then close at once. */
static void close_in_flight(struct nexus_ctx *ctx, const char *spec,
			    unsigned n)
{
	struct track *t = track_new();
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	int rc;

	rc = nexus_dev_open(ctx, spec, &t->dev);
	if (rc)
		fprintf(stderr, "open %s: %s\n", spec, nexus_last_error());
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	EXPECT_OK(nexus_dev_get_info(t->dev, &info));
	t->iov = (struct iovec){ t->buf, sizeof(t->buf) };
	memset(t->buf, 7, sizeof(t->buf));
	for (unsigned i = 0; i < n; i++) {
		int op = i % 3 == 0 ? NEXUS_OP_WRITE : NEXUS_OP_READ;
		uint64_t off = (uint64_t)(i % 512) * 4096 % info.dev_size;

		if (i % 97 == 0)
			op = NEXUS_OP_FLUSH;
		while ((rc = test_submit(t->dev, op, &t->iov, 1, off, 0, 0,
					      track_cb, t)) == -EAGAIN)
			;
		CU_ASSERT_EQUAL(rc, 0);
		if (rc)
			break;
		atomic_fetch_add(&t->accepted, 1);
	}
	atomic_store(&t->closing, true);
	nexus_dev_close(t->dev);
	atomic_store(&t->closed, true);
	/* every accepted I/O, including those submitted by callbacks
	 * during the close, has had its callback */
	CU_ASSERT_EQUAL(atomic_load(&t->calls), atomic_load(&t->accepted));
	unit_sleep_ms(50);
	CU_ASSERT_EQUAL(atomic_load(&t->calls), atomic_load(&t->accepted));
	CU_ASSERT_EQUAL(atomic_load(&t->late), 0);
	CU_ASSERT_EQUAL(atomic_load(&t->errors), 0);
	CU_ASSERT_EQUAL(atomic_load(&t->bad), 0);
	free(t);
}

static void test_close_in_flight(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);
	char spec[600];
	unsigned n = unit_scale(3000, 10);

	for (int round = 0; round < 3; round++) {
		close_in_flight(ctx, "mem:size=4M", n);
		close_in_flight(ctx, "null:size=4M", n);
		snprintf(spec, sizeof(spec), "file:%s,create=on,size=4M",
			 unit_join(scratch, "close.img"));
		close_in_flight(ctx, spec, n);
		snprintf(spec, sizeof(spec), "file:%s,direct=on",
			 unit_join(scratch, "close.img"));
		close_in_flight(ctx, spec, n);
	}
	nexus_ctx_destroy(ctx);
}

/* ---- -ESHUTDOWN while a close waits for queued I/O ---- */

static void hold(void *arg)
{
	sem_t *s = arg;

	while (sem_wait(s) < 0 && errno == EINTR)
		;
}

struct closer {
	struct nexus_dev *dev;
	atomic_bool done;
};

static void *closer_fn(void *arg)
{
	struct closer *c = arg;

	nexus_dev_close(c->dev);
	atomic_store(&c->done, true);
	return NULL;
}

static void test_shutdown_during_close(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct track *t = track_new();
	struct closer c = { 0 };
	pthread_t th;
	sem_t sem;
	int rc = 0, tries = 0;

	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &t->dev));
	CU_ASSERT_PTR_NOT_NULL_FATAL(t->dev);
	t->iov = (struct iovec){ t->buf, sizeof(t->buf) };
	sem_init(&sem, 0, 0);
	/* hold the only reactor: submitted I/O stays queued */
	EXPECT_OK(nexus_reactor_post(nexus_ctx_reactor(ctx, 0), hold, &sem));
	for (int i = 0; i < 10; i++) {
		EXPECT_OK(test_submit(t->dev, NEXUS_OP_READ, &t->iov, 1, 0,
					   0, 0, track_cb, t));
		atomic_fetch_add(&t->accepted, 1);
	}
	c.dev = t->dev;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, closer_fn, &c), 0);
	/* the close cannot finish while its I/O is queued; once it has
	 * started, new submissions are refused */
	while (tries++ < 100000) {
		rc = test_submit(t->dev, NEXUS_OP_READ, &t->iov, 1, 0, 0,
				      0, track_cb, t);
		if (rc)
			break;
		atomic_fetch_add(&t->accepted, 1);
		usleep(100);
	}
	EXPECT_ERR(rc, -ESHUTDOWN, "closing");
	unit_sleep_ms(20);
	CU_ASSERT_FALSE(atomic_load(&c.done));
	CU_ASSERT_EQUAL(atomic_load(&t->calls), 0);
	sem_post(&sem);
	pthread_join(th, NULL);
	CU_ASSERT(atomic_load(&c.done));
	CU_ASSERT_EQUAL(atomic_load(&t->calls), atomic_load(&t->accepted));
	CU_ASSERT_EQUAL(atomic_load(&t->errors), 0);
	sem_destroy(&sem);
	free(t);
	nexus_ctx_destroy(ctx);
}

/* ---- nexus_ctx_destroy() with devices and pipelines still open ---- */

static void test_ctx_free_open(void)
{
	struct unit_log lb = UNIT_LOG_INIT;
	struct nexus_ctx *ctx;
	struct nexus_pipeline *pl[2] = { NULL, NULL };
	struct track *t[5];
	char spec[600];
	unsigned n = unit_scale(1000, 10);
	int rc;

	ctx = unit_ctx_log(2, NEXUS_LOG_WARN, &lb);
	snprintf(spec, sizeof(spec), "file:%s,create=on,size=4M",
		 unit_join(scratch, "free.img"));
	for (int i = 0; i < 5; i++) {
		t[i] = track_new();
	}
	EXPECT_OK(nexus_dev_open(ctx, "mem:size=4M", &t[0]->dev));
	EXPECT_OK(nexus_dev_open(ctx, "null", &t[1]->dev));
	EXPECT_OK(nexus_dev_open(ctx, spec, &t[2]->dev));
	EXPECT_OK(nexus_pipeline_open(ctx, "mem:size=2M", &pl[0]));
	EXPECT_OK(nexus_pipeline_open(ctx, "null:size=2M", &pl[1]));
	t[3]->dev = nexus_pipeline_dev(pl[0]);
	t[4]->dev = nexus_pipeline_dev(pl[1]);
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_PTR_NOT_NULL_FATAL(t[i]->dev);
		/* a pipeline's device is owned by the pipeline */
		if (i >= 3) {
			EXPECT_ERR(nexus_dev_close(t[i]->dev), -EBUSY,
				   "not an open top-level");
		}
	}
	for (unsigned k = 0; k < n; k++) {
		for (int i = 0; i < 5; i++) {
			while ((rc = test_submit(t[i]->dev, NEXUS_OP_READ,
						      &t[i]->iov, 1,
						      (k % 256) * 4096, 0, 0,
						      track_cb, t[i])) == -EAGAIN)
				;
			CU_ASSERT_EQUAL(rc, 0);
			if (rc == 0)
				atomic_fetch_add(&t[i]->accepted, 1);
		}
	}
	nexus_ctx_destroy(ctx);
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL(atomic_load(&t[i]->calls),
				atomic_load(&t[i]->accepted));
		CU_ASSERT_EQUAL(atomic_load(&t[i]->errors), 0);
		free(t[i]);
	}
	/* one warning per thing left open, naming it */
	CU_ASSERT(lb.count[NEXUS_LOG_WARN] >= 5);
	CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "pipeline still open"));
	CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "'mem:size=4M' still open"));
	CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "free.img"));
}

/* A context freed right after creation, and with idle devices. */
static void test_ctx_free_idle(void)
{
	unsigned n = unit_scale(20, 5);

	for (unsigned i = 0; i < n; i++) {
		struct nexus_ctx *ctx = unit_ctx(1 + i % 3);
		struct nexus_dev *d;
		struct nexus_pipeline *pl;

		if (i % 2) {
			EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &d));
			EXPECT_OK(nexus_dev_open(ctx, "null", &d));
			EXPECT_OK(nexus_pipeline_open(ctx, "mem:1M", &pl));
		}
		nexus_ctx_destroy(ctx);
	}
}

static const struct unit_test tests[] = {
	{ "close with I/O in flight", test_close_in_flight },
	{ "-ESHUTDOWN while closing", test_shutdown_during_close },
	{ "ctx_free with devices and pipelines open", test_ctx_free_open },
	{ "ctx_free of idle contexts", test_ctx_free_idle },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main_scratch("close", tests, &scratch);
}
