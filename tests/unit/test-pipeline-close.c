/* SPDX-License-Identifier: MIT */
/* nexus_pipeline_close() from a callback (a reactor thread) is refused
 * with -EDEADLK's message for nexus_last_error() and a log line, and
 * leaves the pipeline open and working; from the application it closes.
 * (The one refuse-then-unlink step of lib/core/ctx-list.c.) */
#include <semaphore.h>
#include <sys/uio.h>

#include "unit.h"
#include "../submit.h"

static struct {
	struct nexus_pipeline *pl;
	char msg[512];
	sem_t done;
} cb;

static void close_from_callback(void *ud, int result)
{
	(void)ud;
	(void)result;
	nexus_pipeline_close(cb.pl); /* must be refused: a reactor thread */
	snprintf(cb.msg, sizeof(cb.msg), "%s", nexus_last_error());
	sem_post(&cb.done);
}

static void test_close_from_callback(void)
{
	struct unit_log lb = UNIT_LOG_INIT;
	struct nexus_ctx *ctx = unit_ctx_log(1, NEXUS_LOG_ERROR, &lb);
	char buf[512];
	struct iovec iov = { buf, sizeof(buf) };

	sem_init(&cb.done, 0, 0);
	EXPECT_OK(nexus_pipeline_open(ctx, "mem:1M | fault:enable=off", &cb.pl));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cb.pl);
	EXPECT_OK(test_submit(nexus_pipeline_dev(cb.pl), NEXUS_OP_READ, &iov,
			      1, 0, sizeof(buf), 0, close_from_callback, NULL));
	sem_wait(&cb.done);
	CU_ASSERT_PTR_NOT_NULL(strstr(cb.msg, "nexus_pipeline_close called "
					      "from a callback"));
	CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "nexus_pipeline_close called "
					       "from a callback"));
	/* still open: its device works, and the application closes it */
	EXPECT_EQ_MSG(nexus_dev_pread(nexus_pipeline_dev(cb.pl), buf,
				      sizeof(buf), 0), (long long)sizeof(buf));
	nexus_pipeline_close(cb.pl);
	nexus_ctx_destroy(ctx);
	sem_destroy(&cb.done);
}

static const struct unit_test tests[] = {
	{ "close from a callback is refused", test_close_from_callback },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main("pipeline-close", tests);
}
