/* SPDX-License-Identifier: MIT */
/* Exports hold a reference on the devices they serve: closing a served
 * device is refused with a message naming the export, never a
 * use-after-free; devices are added and removed while the export runs. */
#include "unit.h"
#include <nexus/nexus_driver.h>

static char *scratch;

static const char *sock_spec(const char *name)
{
	static char spec[700];

	snprintf(spec, sizeof(spec), "nbd:socket=%s",
		 unit_join(scratch, name));
	return spec;
}

static void test_refuses_to_lose_device(void)
{
	struct nexus_ctx *ctx = unit_ctx(2);
	struct nexus_export *exp = NULL;
	struct nexus_dev *dev = NULL;
	char buf[512];

	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &dev));
	EXPECT_OK(nexus_export_create(ctx, sock_spec("a.sock"), &exp));
	CU_ASSERT_PTR_NOT_NULL_FATAL(exp);
	EXPECT_EQ_MSG(nexus_export_dev_count(exp), 0);
	EXPECT_OK(nexus_export_add_dev(exp, dev, NULL));
	EXPECT_EQ_MSG(nexus_export_dev_count(exp), 1);
	/* the device stays open and usable after the refusal */
	EXPECT_ERR(nexus_dev_close(dev), -EBUSY, "served by export",
		   "nbd:socket=", "nexus_export_remove_dev");
	EXPECT_EQ_MSG(nexus_dev_pread(dev, buf, sizeof(buf), 0), 512);
	EXPECT_ERR(nexus_export_add_dev(exp, dev, NULL), -EEXIST,
		   "serves mem");
	EXPECT_OK(nexus_export_remove_dev(exp, dev));
	EXPECT_EQ_MSG(nexus_export_dev_count(exp), 0);
	EXPECT_ERR(nexus_export_remove_dev(exp, dev), -ENOENT,
		   "does not serve");
	/* added again, then released by the export's destruction */
	EXPECT_OK(nexus_export_add_dev(exp, dev, NULL));
	nexus_export_destroy(exp);
	EXPECT_OK(nexus_dev_close(dev));
	nexus_ctx_destroy(ctx);
}

static void test_misuse(void)
{
	struct nexus_ctx *ctx = unit_ctx(1), *other = unit_ctx(1);
	struct nexus_export_dev_opts o = NEXUS_EXPORT_DEV_OPTS_INIT;
	struct nexus_export *exp = NULL;
	struct nexus_dev *dev = NULL, *odev = NULL;
	char name[NEXUS_ID_MAX + 1];

	EXPECT_OK(nexus_dev_open(ctx, "mem:size=1M", &dev));
	EXPECT_OK(nexus_dev_open(other, "mem:size=1M", &odev));
	EXPECT_OK(nexus_export_create(ctx, sock_spec("m.sock"), &exp));
	CU_ASSERT_PTR_NOT_NULL_FATAL(exp);
	EXPECT_ERR(nexus_export_add_dev(exp, odev, NULL), -EINVAL,
		   "another context");
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	o.name = name;
	EXPECT_ERR(nexus_export_add_dev(exp, dev, &o), -EINVAL, "longer");
	o.name = NULL;
	o.flags = 0x80;
	EXPECT_ERR(nexus_export_add_dev(exp, dev, &o), -EINVAL, "flags");
	o.flags = 0;
	o.size = 0;
	EXPECT_ERR(nexus_export_add_dev(exp, dev, &o), -EINVAL, "size");
	EXPECT_ERR(nexus_export_create(ctx, "mem:size=1M", &exp), -EINVAL,
		   "'mem'");
	EXPECT_ERR(nexus_export_create(ctx, "bogus:x=1", &exp), -ENOENT,
		   "bogus");
	CU_ASSERT_PTR_NULL(exp);
	nexus_ctx_destroy(other); /* closes odev, with a warning */
	/* the context destroys the export before the devices it serves */
	EXPECT_OK(nexus_export_create(ctx, sock_spec("m2.sock"), &exp));
	EXPECT_OK(nexus_export_add_dev(exp, dev, NULL));
	nexus_ctx_destroy(ctx);
}

/* A pipeline with an export holds its device through the export. */
static void test_pipeline_export(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	struct nexus_pipeline *pl = NULL;
	char text[1024];

	snprintf(text, sizeof(text), "mem:size=1M | %s", sock_spec("p.sock"));
	EXPECT_OK(nexus_pipeline_open(ctx, text, &pl));
	CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
	EXPECT_EQ_MSG(nexus_export_dev_count(nexus_pipeline_export(pl)), 1);
	EXPECT_ERR(nexus_dev_close(nexus_pipeline_dev(pl)), -EBUSY,
		   "served by export");
	nexus_pipeline_close(pl);
	nexus_ctx_destroy(ctx);
}

static void test_secrets(void)
{
	struct nexus_ctx *ctx = unit_ctx(1);
	unsigned char got[8], big[NEXUS_SECRET_MAX + 1];

	memset(big, 7, sizeof(big));
	EXPECT_OK(nexus_ctx_secret_set(ctx, "psk.1", "abcd", 4));
	EXPECT_ERR(nexus_ctx_secret_set(ctx, "psk.1", "x", 1), -EEXIST,
		   "exists");
	EXPECT_ERR(nexus_ctx_secret_set(ctx, "big", big, sizeof(big)),
		   -EINVAL, "1 to");
	EXPECT_ERR(nexus_ctx_secret_set(ctx, "", "x", 1), -EINVAL, "names");
	EXPECT_EQ_MSG(nexus_ctx_secret_get(ctx, "psk.1", got, sizeof(got)), 4);
	CU_ASSERT_EQUAL(memcmp(got, "abcd", 4), 0);
	EXPECT_ERR(nexus_ctx_secret_get(ctx, "psk.1", got, 2), -ENOSPC,
		   "4 bytes");
	EXPECT_ERR(nexus_ctx_secret_get(ctx, "none", got, sizeof(got)),
		   -ENOENT, "no secret named 'none'");
	EXPECT_OK(nexus_ctx_secret_set_hex(ctx, "h", " 00ff10 \n"));
	EXPECT_EQ_MSG(nexus_ctx_secret_get(ctx, "h", got, sizeof(got)), 3);
	CU_ASSERT(got[0] == 0 && got[1] == 0xff && got[2] == 0x10);
	/* the hex text is never quoted back */
	EXPECT_ERR(nexus_ctx_secret_set_hex(ctx, "bad", "deadbeefzz"),
		   -EINVAL, "character 9");
	CU_ASSERT_PTR_NULL(strstr(nexus_last_error(), "deadbeef"));
	EXPECT_OK(nexus_ctx_secret_remove(ctx, "psk.1"));
	EXPECT_ERR(nexus_ctx_secret_remove(ctx, "psk.1"), -ENOENT, "psk.1");
	nexus_ctx_destroy(ctx); /* wipes "h" */
}

static const struct unit_test tests[] = {
	{ "an export refuses to lose its device", test_refuses_to_lose_device },
	{ "export misuse", test_misuse },
	{ "a pipeline's export holds its device", test_pipeline_export },
	{ "context secrets", test_secrets },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main_scratch("export", tests, &scratch);
}
