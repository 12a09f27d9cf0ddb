/* SPDX-License-Identifier: MIT */
/* The plugin loader: bad files and bad tables are refused with a clear
 * message and leave the registry unchanged; an older, smaller table
 * loads and works with its tail zero-filled; a newer ABI is refused;
 * plugins are found by name through the context's plugin path and
 * $NEXUS_PLUGIN_PATH; a transform never sees an operation it did not
 * declare, which fails with -EOPNOTSUPP.
 *
 * PLUGIN_DIR (set by the build) holds the test-plugin.c variants. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nexus/nexus.h>
#include <nexus/nexus_driver.h>

#include "check.h"

#ifndef PLUGIN_DIR
#error PLUGIN_DIR must name the directory of the test plugins
#endif

static char tmpdir[256];

static struct nexus_ctx *new_ctx(const char *plugin_path)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;

	o.reactors = 2;
	o.plugin_path = plugin_path;
	return check_ctx(&o);
}

static size_t describe(struct nexus_ctx *ctx, char *buf, size_t len)
{
	int n = nexus_ctx_describe_drivers(ctx, buf, len);

	return n < 0 ? 0 : (size_t)n;
}

/* Loading @p file fails with @p err and a message containing @p what,
 * and the registry is unchanged. */
static void refused(struct nexus_ctx *ctx, const char *file, int err,
		    const char *what)
{
	static char before[16384], after[16384];
	char path[512];
	int rc;

	if (file[0] == '/')
		snprintf(path, sizeof(path), "%s", file);
	else
		snprintf(path, sizeof(path), "%s/%s", PLUGIN_DIR, file);
	describe(ctx, before, sizeof(before));
	rc = nexus_plugin_load(ctx, path);
	CHECK(rc == err, "%s: rc %d (%s), expected %d", file, rc,
	      strerror(-rc), err);
	CHECK(strstr(nexus_last_error(), what) != NULL,
	      "%s: message '%s' lacks '%s'", file, nexus_last_error(), what);
	CHECK(strstr(nexus_last_error(), path) != NULL,
	      "%s: message '%s' does not name the file", file,
	      nexus_last_error());
	describe(ctx, after, sizeof(after));
	CHECK(!strcmp(before, after), "%s: registry changed", file);
	if (getenv("VERBOSE"))
		printf("refused %-22s %s\n", file, nexus_last_error());
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static void test_bad_files(void)
{
	struct nexus_ctx *ctx = new_ctx(NULL);
	char path[512];

	snprintf(path, sizeof(path), "%s/text.so", tmpdir);
	write_file(path, "this is not a plugin\n", 21);
	refused(ctx, path, -ENOEXEC, "not an ELF");
	snprintf(path, sizeof(path), "%s/empty.so", tmpdir);
	write_file(path, "", 0);
	refused(ctx, path, -ENOEXEC, "not an ELF");
	snprintf(path, sizeof(path), "%s/truncated.so", tmpdir);
	write_file(path, "\177ELF\2\1\1\0\0\0\0\0\0\0\0\0\3\0>\0", 20);
	refused(ctx, path, -ENOEXEC, "cannot load");
	snprintf(path, sizeof(path), "%s/dir.so", tmpdir);
	mkdir(path, 0755);
	refused(ctx, path, -EISDIR, "not a regular file");
	snprintf(path, sizeof(path), "%s/missing.so", tmpdir);
	refused(ctx, path, -ENOENT, "No such file");
	/* an ELF object that is not a shared object: the test itself */
	refused(ctx, "/proc/self/exe", -ENOEXEC, "cannot load");

	refused(ctx, "nexus-noentry.so", -ENOEXEC, "no entry point");
	refused(ctx, "nexus-dataentry.so", -ENOEXEC, "not a function");
	refused(ctx, "nexus-empty.so", -EPROTO, "provides no driver");
	refused(ctx, "nexus-newabi.so", -EPROTO, "ABI version 2");
	refused(ctx, "nexus-wrongkind.so", -EPROTO, "unknown kind 7");
	refused(ctx, "nexus-nullname.so", -EPROTO, "NULL name");
	refused(ctx, "nexus-badname.so", -EPROTO, "'bad name' is invalid");
	refused(ctx, "nexus-nosubmit.so", -EPROTO, "lacks submit()");
	refused(ctx, "nexus-noops.so", -EPROTO, "declares no operations");
	refused(ctx, "nexus-badopttype.so", -EPROTO, "unknown type 9");
	refused(ctx, "nexus-dupopt.so", -EPROTO, "option 'x' twice");
	refused(ctx, "nexus-baddefault.so", -EPROTO, "default 'lots'");
	refused(ctx, "nexus-manyopts.so", -EPROTO, "more than 64 options");
	refused(ctx, "nexus-small.so", -EPROTO, "table size 8 is invalid");
	refused(ctx, "nexus-huge.so", -EPROTO, "is invalid");
	refused(ctx, "nexus-unaligned.so", -EPROTO, "is invalid");
	refused(ctx, "nexus-bigset.so", -EPROTO, "does not know");
	refused(ctx, "nexus-dupname.so", -EEXIST,
		"source driver named 'mem' is already registered (built-in)");
	refused(ctx, "nexus-dupself.so", -EEXIST, "'twice'");

	CHECK(nexus_plugin_load(ctx, NULL) == -EINVAL, "NULL path");
	CHECK(nexus_plugin_load(NULL, "x") == -EINVAL, "NULL ctx");
	CHECK(nexus_plugin_load(ctx, "") == -EINVAL, "empty path");
	nexus_ctx_destroy(ctx);
}

static void rw_check(struct nexus_dev *dev, const char *what)
{
	static unsigned char a[65536], b[65536];
	ssize_t n;

	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (unsigned char)(i * 7 + 3);
	n = nexus_dev_pwrite(dev, a, sizeof(a), 4096, 0);
	CHECK(n == (ssize_t)sizeof(a), "%s: write: %zd %s", what, n,
	      nexus_last_error());
	memset(b, 0, sizeof(b));
	n = nexus_dev_pread(dev, b, sizeof(b), 4096);
	CHECK(n == (ssize_t)sizeof(b), "%s: read: %zd %s", what, n,
	      nexus_last_error());
	CHECK(!memcmp(a, b, sizeof(a)), "%s: data differs", what);
	CHECK(nexus_dev_flush(dev) == 0, "%s: flush: %s", what,
	      nexus_last_error());
}

/* An older, smaller table loads; the fields past its size read as zero
 * (its garbage block_status would abort if called). */
static void test_old_table(void)
{
	struct nexus_ctx *ctx = new_ctx(NULL);
	struct nexus_dev *dev = NULL;
	struct nexus_extent ext[4];
	int rc;

	rc = nexus_plugin_load(ctx, PLUGIN_DIR "/nexus-old.so");
	CHECK(rc == 0, "old table refused: %s", nexus_last_error());
	rc = nexus_dev_open(ctx, "oldsrc:size=1M", &dev);
	CHECK(rc == 0, "open oldsrc: %s", nexus_last_error());
	if (dev) {
		rw_check(dev, "oldsrc");
		/* the device claims block status, but the table has no
		 * callback within its size: the core answers itself */
		rc = nexus_dev_block_status(dev, 0, 1 << 20, ext, 4);
		CHECK(rc == 1 && ext[0].length == 1 << 20,
		      "block status: %d", rc);
		nexus_dev_close(dev);
	}
	/* a larger table with the unknown tail zeroed loads too */
	rc = nexus_plugin_load(ctx, PLUGIN_DIR "/nexus-bigzero.so");
	CHECK(rc == 0, "zero-tailed larger table refused: %s",
	      nexus_last_error());
	rc = nexus_dev_open(ctx, "bigzero:size=64K", &dev);
	CHECK(rc == 0, "open bigzero: %s", nexus_last_error());
	nexus_dev_close(rc == 0 ? dev : NULL);
	/* loading the same plugin twice: duplicate names */
	rc = nexus_plugin_load(ctx, PLUGIN_DIR "/nexus-old.so");
	CHECK(rc == -EEXIST && strstr(nexus_last_error(), "nexus-old.so"),
	      "second load: %d %s", rc, nexus_last_error());
	CHECK(nexus_driver_abi_version() == NEXUS_DRIVER_ABI_VERSION,
	      "abi version");
	CHECK(nexus_driver_struct_size() == sizeof(struct nexus_driver),
	      "struct size");
	nexus_ctx_destroy(ctx);
}

/* Undeclared operations never reach a transform. */
static void test_declared_ops(struct nexus_ctx *ctx)
{
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	struct nexus_dev *dev = NULL;
	_Atomic uint32_t *seen;
	_Atomic unsigned *inits, *finis;
	void *h;
	int rc;

	rc = nexus_dev_open(ctx, "tsrc:size=1M | tcount", &dev);
	CHECK(rc == 0, "open tsrc | tcount: %s", nexus_last_error());
	if (rc)
		return;
	h = dlopen(PLUGIN_DIR "/nexus-tsrc.so", RTLD_NOW | RTLD_NOLOAD);
	CHECK(h != NULL, "plugin not loaded by name");
	if (!h) {
		nexus_dev_close(dev);
		return;
	}
	seen = dlsym(h, "tcount_seen_ops");
	inits = dlsym(h, "tcount_reactor_inits");
	finis = dlsym(h, "tcount_reactor_finis");
	CHECK(seen && inits && finis, "test symbols missing");
	CHECK(*inits == 2, "reactor_init ran %u times for 2 reactors",
	      *inits);
	nexus_dev_get_info(dev, &info);
	CHECK(info.ops == (NEXUS_OP_BIT(NEXUS_OP_READ) |
			   NEXUS_OP_BIT(NEXUS_OP_WRITE) |
			   NEXUS_OP_BIT(NEXUS_OP_FLUSH) |
			   NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS)),
	      "advertised ops 0x%x", info.ops);
	CHECK(!strcmp(info.driver, "tcount"), "driver %s", info.driver);
	rw_check(dev, "tcount");
	rc = nexus_dev_trim(dev, 0, 4096, 0);
	CHECK(rc == -EOPNOTSUPP, "trim through tcount: %d", rc);
	CHECK(strstr(nexus_last_error(), "not supported"), "message: %s",
	      nexus_last_error());
	rc = nexus_dev_write_zeroes(dev, 0, 4096, 0);
	CHECK(rc == -EOPNOTSUPP, "write-zeroes through tcount: %d", rc);
	rc = nexus_dev_write_zeroes(dev, 0, 4096, NEXUS_IO_NO_UNMAP);
	CHECK(rc == -EOPNOTSUPP, "write-zeroes(no-unmap): %d", rc);
	CHECK(*seen == (NEXUS_OP_BIT(NEXUS_OP_READ) |
			NEXUS_OP_BIT(NEXUS_OP_WRITE) |
			NEXUS_OP_BIT(NEXUS_OP_FLUSH)),
	      "tcount saw ops 0x%x", *seen);
	nexus_dev_close(dev);
	CHECK(*finis == 2, "reactor_fini ran %u times", *finis);
	/* the same ops on the source alone work */
	rc = nexus_dev_open(ctx, "tsrc:size=1M", &dev);
	CHECK(rc == 0, "open tsrc: %s", nexus_last_error());
	if (rc == 0) {
		CHECK(nexus_dev_trim(dev, 0, 4096, 0) == 0, "trim on tsrc");
		nexus_dev_close(dev);
	}
	dlclose(h);
}

static void test_by_name(void)
{
	char buf[8192];
	struct nexus_ctx *ctx;
	struct nexus_dev *dev = NULL;
	int rc;

	/* nothing in the path: a clear "unknown driver" */
	unsetenv("NEXUS_PLUGIN_PATH");
	ctx = new_ctx(NULL);
	rc = nexus_dev_open(ctx, "tsrc:size=1M", &dev);
	CHECK(rc == -ENOENT && strstr(nexus_last_error(), "nexus-tsrc.so"),
	      "unknown driver: %d %s", rc, nexus_last_error());
	nexus_ctx_destroy(ctx);

	/* the context's plugin path (an empty and a missing entry first) */
	ctx = new_ctx("::/nonexistent:" PLUGIN_DIR);
	test_declared_ops(ctx);
	rc = nexus_ctx_describe_drivers(ctx, buf, sizeof(buf));
	CHECK(rc > 0 && strstr(buf, "source tsrc (plugin ") &&
		      strstr(buf, "transform tcount (plugin "),
	      "describe: %s", buf);
	/* an export plugin */
	{
		struct nexus_pipeline *pl = NULL;
		struct nexus_conn_info ci = NEXUS_CONN_INFO_INIT;

		rc = nexus_pipeline_open(ctx, "tsrc:64K | tcount | tprobe:expect=0",
					 &pl);
		CHECK(rc == 0, "tsrc | tcount | tprobe: %s", nexus_last_error());
		if (rc == 0) {
			for (int i = 0; i < 1000; i++) {
				rc = nexus_export_list_conns(nexus_pipeline_export(pl),
							&ci, 1);
				if (rc != 1 || ci.requests)
					break;
				usleep(1000);
			}
			CHECK(rc == 1 && !strcmp(ci.peer, "probe") &&
				      ci.requests == 1 && ci.errors == 0,
			      "conns %d peer %s requests %llu", rc, ci.peer,
			      (unsigned long long)ci.requests);
			nexus_pipeline_close(pl);
		}
		rc = nexus_pipeline_open(ctx, "tsrc:64K | tprobe:expect=7", &pl);
		CHECK(rc == -EIO && strstr(nexus_last_error(), "not 7"),
		      "tprobe expect=7: %d %s", rc, nexus_last_error());
		rc = nexus_pipeline_open(ctx, "tsrc:64K | tprobe", &pl);
		CHECK(rc == -EINVAL && strstr(nexus_last_error(), "expect"),
		      "tprobe without expect: %d %s", rc, nexus_last_error());
		rc = nexus_dev_open(ctx, "tprobe:expect=0", &dev);
		CHECK(rc == -EINVAL && strstr(nexus_last_error(), "cannot be used"),
		      "export first: %d %s", rc, nexus_last_error());
	}
	/* a source cannot be used as a transform */
	rc = nexus_dev_open(ctx, "mem:size=1M | tsrc", &dev);
	CHECK(rc == -EINVAL && strstr(nexus_last_error(), "cannot be used"),
	      "source as transform: %d %s", rc, nexus_last_error());
	/* refused plugins found by name report why */
	rc = nexus_dev_open(ctx, "newabi:size=1M", &dev);
	CHECK(rc == -EPROTO && strstr(nexus_last_error(), "ABI version 2") &&
		      strstr(nexus_last_error(), "column 1"),
	      "newabi by name: %d %s", rc, nexus_last_error());
	rc = nexus_dev_open(ctx, "mem:size=1M | wrongkind", &dev);
	CHECK(rc == -EPROTO && strstr(nexus_last_error(), "kind 7"),
	      "wrongkind by name: %d %s", rc, nexus_last_error());
	rc = nexus_dev_open(ctx, "noentry", &dev);
	CHECK(rc == -ENOEXEC && strstr(nexus_last_error(), "entry point"),
	      "noentry by name: %d %s", rc, nexus_last_error());
	rc = nexus_dev_open(ctx, "mismatch", &dev);
	CHECK(rc == -ENOENT && strstr(nexus_last_error(), "no driver named"),
	      "mismatch by name: %d %s", rc, nexus_last_error());
	/* names that could escape the directory are not looked up */
	rc = nexus_dev_open(ctx, "../nexus-tsrc", &dev);
	CHECK(rc < 0, "path in a driver name accepted");
	nexus_ctx_destroy(ctx);

	/* $NEXUS_PLUGIN_PATH */
	setenv("NEXUS_PLUGIN_PATH", "/nonexistent:" PLUGIN_DIR, 1);
	ctx = new_ctx(NULL);
	rc = nexus_dev_open(ctx, "tsrc:2M", &dev);
	CHECK(rc == 0, "tsrc via NEXUS_PLUGIN_PATH: %s", nexus_last_error());
	if (rc == 0) {
		rw_check(dev, "tsrc");
		nexus_dev_close(dev);
	}
	nexus_ctx_destroy(ctx);
	unsetenv("NEXUS_PLUGIN_PATH");
}

/* Threads looking up the same plugin concurrently load it once. */
struct race {
	struct nexus_ctx *ctx;
	int rc;
	char msg[256];
};

static void *race_fn(void *arg)
{
	struct race *r = arg;
	struct nexus_dev *dev = NULL;

	r->rc = nexus_dev_open(r->ctx, "tsrc:64K | tcount", &dev);
	snprintf(r->msg, sizeof(r->msg), "%s", nexus_last_error());
	nexus_dev_close(dev);
	return NULL;
}

static void test_concurrent(void)
{
	struct nexus_ctx *ctx = new_ctx(PLUGIN_DIR);
	struct race r[4];
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		r[i].ctx = ctx;
		pthread_create(&t[i], NULL, race_fn, &r[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].rc == 0, "thread %d: %s", i, r[i].msg);
	}
	nexus_ctx_destroy(ctx);
}

int main(void)
{
	check_scratch(tmpdir, sizeof(tmpdir), "loader");
	test_bad_files();
	test_old_table();
	test_by_name();
	test_concurrent();
	check_rmtree(tmpdir);
	return check_status("plugin loader");
}
