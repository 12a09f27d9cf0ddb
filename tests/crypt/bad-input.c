/* SPDX-License-Identifier: MIT */
/* crypt: bad input gets a clear error naming the stage and the option,
 * and no message ever quotes a key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nexus/nexus.h>

static int failures;
static char dir[64];
static struct nexus_ctx *ctx;

/* 64-byte key with distinct halves, and its hex. */
static unsigned char key64[64];
static char hex64[129];
#define SECRET_HEX "00112233445566778899aabbccddeeff"

static void write_file(const char *name, const void *data, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		perror(path);
		exit(99);
	}
}

static void check_msg(const char *what, int rc, int want_rc,
		      const char *const *want)
{
	const char *msg = nexus_last_error();

	if (rc != want_rc) {
		printf("FAIL %s: returned %d (%s), expected %d\n", what, rc,
		       msg, want_rc);
		failures++;
		return;
	}
	for (; *want; want++) {
		if (!strstr(msg, *want)) {
			printf("FAIL %s: message '%s' lacks '%s'\n", what, msg,
			       *want);
			failures++;
			return;
		}
	}
	if (strstr(msg, SECRET_HEX) || strstr(msg, hex64)) {
		printf("FAIL %s: message quotes the key: '%s'\n", what, msg);
		failures++;
		return;
	}
	printf("ok   %s: %s\n", what, msg);
}

/* Open "file:<dir>/<img> | crypt:<opts>" and expect a failure. */
#define BAD(img, opts, want_rc, ...)                                        \
	do {                                                                \
		const char *const w_[] = { __VA_ARGS__, NULL };             \
		char p_[512];                                               \
		struct nexus_dev *d_ = NULL;                                \
		int rc_;                                                    \
		snprintf(p_, sizeof(p_), "file:%s/%s | crypt:%s", dir, img, \
			 opts);                                             \
		rc_ = nexus_dev_open(ctx, p_, &d_);                         \
		if (rc_ == 0)                                               \
			nexus_dev_close(d_);                                \
		check_msg(opts, rc_, want_rc, w_);                          \
	} while (0)

int main(void)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	unsigned char eq[64], big[64 * 1024 + 512];
	char path[128], opts[256];
	int rc;

	umask(077);
	snprintf(dir, sizeof(dir), "%s/crypt-bad.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	for (int i = 0; i < 64; i++)
		key64[i] = (unsigned char)(i * 37 + 11);
	for (int i = 0; i < 64; i++)
		sprintf(hex64 + 2 * i, "%02x", key64[i]);
	memcpy(eq, key64, 32);
	memcpy(eq + 32, key64, 32);
	memset(big, 0, sizeof(big));
	write_file("k64", key64, 64);
	write_file("k63", key64, 63);
	write_file("k32", key64, 32);
	write_file("keq", eq, 64);
	write_file("img", big, 64 * 1024);
	write_file("odd", big, sizeof(big)); /* 512-aligned, not 4096 */
	o.reactors = 1;
	o.log_level = NEXUS_LOG_ERROR;
	if (nexus_ctx_create(&o, &ctx)) {
		printf("nexus_ctx_create: %s\n", nexus_last_error());
		return 99;
	}

	/* key sources */
	snprintf(opts, sizeof(opts), "key-file=%s/k63", dir);
	BAD("img", opts, -EINVAL, "stage 'crypt'", "key-file=", "has 63 bytes",
	    "key-size=512", "exactly 64");
	snprintf(opts, sizeof(opts), "key-size=256,key-file=%s/k64", dir);
	BAD("img", opts, -EINVAL, "key-file=", "has 64 bytes", "exactly 32");
	snprintf(opts, sizeof(opts), "key-file=%s/missing", dir);
	BAD("img", opts, -ENOENT, "stage 'crypt'", "key-file=", "no such file");
	snprintf(opts, sizeof(opts), "key-file=%s", dir);
	BAD("img", opts, -EISDIR, "key-file=", "directory");
	snprintf(opts, sizeof(opts), "key-file=%s/keq", dir);
	BAD("img", opts, -EINVAL, "stage 'crypt'", "halves", "equal");
	setenv("CRYPT_BAD_SHORT", SECRET_HEX, 1);
	BAD("img", "key-env=CRYPT_BAD_SHORT", -EINVAL, "key-env=CRYPT_BAD_SHORT",
	    "has 32 hex digits", "needs exactly 128");
	setenv("CRYPT_BAD_NOTHEX", SECRET_HEX "zz", 1);
	BAD("img", "key-env=CRYPT_BAD_NOTHEX", -EINVAL, "key-env=CRYPT_BAD_NOTHEX",
	    "not a hex digit");
	unsetenv("CRYPT_BAD_UNSET");
	BAD("img", "key-env=CRYPT_BAD_UNSET", -ENOENT, "key-env=CRYPT_BAD_UNSET",
	    "no such environment variable");
	BAD("img", "key-name=nope", -ENOENT, "key-name=nope", "no secret");
	BAD("img", "sector-size=4096", -EINVAL, "stage 'crypt'", "no key",
	    "key-file");
	snprintf(opts, sizeof(opts), "key-file=%s/k64,key-env=X", dir);
	BAD("img", opts, -EINVAL, "only one of");
	/* a key in the pipeline text */
	BAD("img", "key=" SECRET_HEX SECRET_HEX, -EINVAL, "stage 'crypt'",
	    "'key' is refused", "key-file");
	BAD("img", SECRET_HEX SECRET_HEX, -EINVAL, "stage 'crypt'",
	    "looks like a key");
	/* geometry and options */
	snprintf(opts, sizeof(opts), "sector-size=1024,key-file=%s/k64", dir);
	BAD("img", opts, -EINVAL, "stage 'crypt'", "sector-size=1024",
	    "512 or 4096");
	snprintf(opts, sizeof(opts), "sector-size=4096,key-file=%s/k64", dir);
	BAD("odd", opts, -EINVAL, "stage 'crypt'", "66048 bytes",
	    "not a multiple of sector-size=4096");
	snprintf(opts, sizeof(opts), "key-size=384,key-file=%s/k64", dir);
	BAD("img", opts, -EINVAL, "stage 'crypt'", "key-size=384");
	snprintf(opts, sizeof(opts), "cipher=aes-cbc-essiv:sha256,key-file=%s/k64",
		 dir);
	BAD("img", opts, -EINVAL, "stage 'crypt'", "aes-cbc-essiv",
	    "not supported");
	snprintf(opts, sizeof(opts), "colour=blue,key-file=%s/k64", dir);
	BAD("img", opts, -EINVAL, "stage 'crypt'", "unknown option 'colour'");
	snprintf(opts, sizeof(opts), "iv-offset=-1,key-file=%s/k64", dir);
	BAD("img", opts, -EINVAL, "stage 'crypt'", "iv-offset");
	{
		/* the device below has a larger logical block size */
		const char *const w[] = { "stage 'crypt'", "sector-size=512",
					  "logical block size 4096", NULL };
		struct nexus_dev *d = NULL;
		char p[256];

		snprintf(p, sizeof(p), "mem:size=1M,block-size=4096 | "
			 "crypt:sector-size=512,key-file=%s/k64", dir);
		rc = nexus_dev_open(ctx, p, &d);
		if (rc == 0)
			nexus_dev_close(d);
		check_msg("sector smaller than the block size below", rc,
			  -EINVAL, w);
	}

	/* the API: keys are context secrets */
	{
		const char *const len_w[] = { "0 bytes", NULL };
		const char *const eq_w[] = { "halves", NULL };
		const char *const name_w[] = { "secret names", NULL };
		const char *const dup_w[] = { "exists", NULL };
		const char *const none_w[] = { "no secret named", NULL };
		const char *const hex_w[] = { "hex digit", NULL };
		const char *const hexlen_w[] = { "hex digits", NULL };
		const char *const null_w[] = { "NULL", NULL };
		const char *const ok_w[] = { NULL };
		char bad[129];

		check_msg("set 0 bytes",
			  nexus_ctx_secret_set(ctx, "a", key64, 0), -EINVAL,
			  len_w);
		check_msg("set bad name",
			  nexus_ctx_secret_set(ctx, "a b", key64, 64),
			  -EINVAL, name_w);
		check_msg("set NULL",
			  nexus_ctx_secret_set(ctx, "a", NULL, 64), -EINVAL,
			  null_w);
		check_msg("set", nexus_ctx_secret_set(ctx, "a", key64, 64), 0,
			  ok_w);
		check_msg("set twice",
			  nexus_ctx_secret_set(ctx, "a", key64, 64), -EEXIST,
			  dup_w);
		check_msg("remove unknown",
			  nexus_ctx_secret_remove(ctx, "b"), -ENOENT, none_w);
		memcpy(bad, hex64, sizeof(bad));
		bad[7] = 'x';
		check_msg("set_hex not hex",
			  nexus_ctx_secret_set_hex(ctx, "h", bad), -EINVAL,
			  hex_w);
		check_msg("set_hex odd",
			  nexus_ctx_secret_set_hex(ctx, "h", "abc"), -EINVAL,
			  hexlen_w);
		check_msg("set 32 bytes",
			  nexus_ctx_secret_set(ctx, "k32", key64, 32), 0, ok_w);
		BAD("img", "key-name=k32", -EINVAL, "key-name=k32", "32 bytes",
		    "key-size=512");
		BAD("img", "key-name=k32,key-size=256,sector-size=4096", 0,
		    "");
		check_msg("set 33 bytes",
			  nexus_ctx_secret_set(ctx, "k33", key64, 33), 0, ok_w);
		BAD("img", "key-name=k33", -EINVAL, "key-name=k33", "33 bytes");
		check_msg("set equal halves",
			  nexus_ctx_secret_set(ctx, "eq", eq, 64), 0, ok_w);
		{
			struct nexus_dev *d = NULL;
			char p[600];

			snprintf(p, sizeof(p), "file:%s/img | crypt:key-name=eq",
				 dir);
			rc = nexus_dev_open(ctx, p, &d);
			if (rc == 0)
				nexus_dev_close(d);
			check_msg("key with equal halves", rc, -EINVAL, eq_w);
		}
		check_msg("remove", nexus_ctx_secret_remove(ctx, "a"), 0, ok_w);
		BAD("img", "key-name=a", -ENOENT, "key-name=a");
	}

	nexus_ctx_destroy(ctx);
	for (const char *const *n = (const char *const[]){ "k64", "k63", "k32",
							   "keq", "img", "odd",
							   NULL };
	     *n; n++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *n);
		unlink(path);
	}
	rmdir(dir);
	if (failures)
		printf("%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
