/* SPDX-License-Identifier: MIT */
/* swap-serve: serve `mem | tee` over NBD while its children change, for
 * tests/graph/swap-fio.sh.
 *
 *   swap-serve PLUGIN_DIR SOCKET
 *
 * A thread attaches and detaches extra children all the time (plain mem,
 * and mem behind a fault delay, so that detaches find I/O in flight),
 * while the client's I/O runs.  Commands on standard input:
 *   swap   replace the original child: copy it onto a new mem device,
 *          attach that, detach and close the original (the client is
 *          idle meanwhile: this is no rebuild); prints "swapped"
 * At end of input: stops, prints "churn ATTACHED DETACHED FAILED" and
 * exits 0 (1 if anything failed). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nexus/nexus_driver.h>

#define SIZE_SPEC "mem:size=64M"
#define SIZE (64u << 20)

static struct nexus_ctx *ctx;
static struct nexus_dev *tee;
static atomic_bool stop;
static atomic_uint attached, detached, failed;

static void fail(const char *what)
{
	fprintf(stderr, "swap-serve: %s: %s\n", what, nexus_last_error());
	atomic_fetch_add(&failed, 1);
}

static void *churn(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !atomic_load(&stop); i++) {
		struct nexus_dev *x = NULL;

		if (nexus_dev_open(ctx, i % 2 ? SIZE_SPEC " | fault:delay=2ms"
					      : SIZE_SPEC, &x)) {
			fail("open");
			break;
		}
		if (nexus_dev_attach_child(tee, x)) {
			fail("attach");
			nexus_dev_close(x);
			break;
		}
		atomic_fetch_add(&attached, 1);
		usleep(20000);
		if (nexus_dev_detach_child(tee, x))
			fail("detach");
		else
			atomic_fetch_add(&detached, 1);
		if (nexus_dev_close(x))
			fail("close");
	}
	return NULL;
}

/* Copy the original child onto a new device and put that in its place. */
static int swap(void)
{
	struct nexus_dev *old = nexus_dev_child(tee, 0), *nw = NULL;
	size_t chunk = 1u << 20;
	char *buf = malloc(chunk);
	int rc = nexus_dev_open(ctx, SIZE_SPEC, &nw);

	for (uint64_t off = 0; rc == 0 && off < SIZE; off += chunk) {
		ssize_t n = nexus_dev_pread(old, buf, chunk, off);

		if (n == (ssize_t)chunk)
			n = nexus_dev_pwrite(nw, buf, chunk, off, 0);
		if (n != (ssize_t)chunk)
			rc = n < 0 ? (int)n : -EIO;
	}
	free(buf);
	if (rc == 0)
		rc = nexus_dev_attach_child(tee, nw);
	if (rc == 0)
		rc = nexus_dev_detach_child(tee, old);
	if (rc == 0)
		rc = nexus_dev_close(old);
	return rc;
}

int main(int argc, char **argv)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct nexus_export *exp = NULL;
	char path[4096], spec[4200], line[64];
	pthread_t th;

	if (argc != 3) {
		fprintf(stderr, "usage: swap-serve PLUGIN_DIR SOCKET\n");
		return 2;
	}
	o.reactors = 2;
	snprintf(path, sizeof(path), "%s/nexus-tee.so", argv[1]);
	snprintf(spec, sizeof(spec), "nbd:socket=%s", argv[2]);
	if (nexus_ctx_create(&o, &ctx) || nexus_plugin_load(ctx, path) ||
	    nexus_dev_open(ctx, SIZE_SPEC " | tee", &tee) ||
	    nexus_export_create(ctx, spec, &exp) ||
	    nexus_export_add_dev(exp, tee, NULL)) {
		fprintf(stderr, "swap-serve: %s\n", nexus_last_error());
		return 1;
	}
	pthread_create(&th, NULL, churn, NULL);
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		if (strcmp(line, "swap\n"))
			continue;
		if (swap())
			fail("swap");
		printf("swapped\n");
		fflush(stdout);
	}
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	nexus_export_destroy(exp);
	if (nexus_dev_close(tee))
		fail("close");
	nexus_ctx_destroy(ctx);
	printf("churn %u %u %u\n", atomic_load(&attached),
	       atomic_load(&detached), atomic_load(&failed));
	return atomic_load(&failed) ? 1 : 0;
}
