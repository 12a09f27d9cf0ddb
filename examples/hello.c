/* hello: the smallest useful libnexus embedding.  Opens a pipeline,
 * writes a block, reads it back, prints the device and its counters.
 *
 *   cc hello.c $(pkg-config --cflags --libs libnexus) -o hello
 *   ./hello 'mem:size=64M'
 */
#include <stdio.h>
#include <string.h>
#include <nexus/nexus.h>

int main(int argc, char **argv)
{
	const char *pipeline = argc > 1 ? argv[1] : "mem:size=64M";
	struct nexus_dev_info info = NEXUS_DEV_INFO_INIT;
	struct nexus_op_stats rd = NEXUS_OP_STATS_INIT, wr = NEXUS_OP_STATS_INIT;
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	char out[4096], in[4096];
	int rc;

	if ((rc = nexus_ctx_create(NULL, &ctx)) < 0) {
		fprintf(stderr, "hello: %s\n", nexus_last_error());
		return 1;
	}
	if ((rc = nexus_dev_open(ctx, pipeline, &dev)) < 0) {
		fprintf(stderr, "hello: %s\n", nexus_last_error());
		nexus_ctx_destroy(ctx);
		return 1;
	}
	nexus_dev_get_info(dev, &info);
	printf("%s: %llu bytes, block size %u\n", info.name,
	       (unsigned long long)info.dev_size, info.logical_block_size);

	memset(out, 0, sizeof(out));
	snprintf(out, sizeof(out), "hello from libnexus %s", nexus_version());
	if (nexus_dev_pwrite(dev, out, sizeof(out), 0, NEXUS_IO_FUA) < 0 ||
	    nexus_dev_pread(dev, in, sizeof(in), 0) < 0) {
		fprintf(stderr, "hello: %s\n", nexus_last_error());
		rc = -1;
	} else {
		printf("read back: \"%s\" (%s)\n", in,
		       memcmp(in, out, sizeof(in)) ? "MISMATCH" : "ok");
		rc = memcmp(in, out, sizeof(in)) ? -1 : 0;
	}
	nexus_dev_get_op_stats(dev, NEXUS_OP_READ, &rd);
	nexus_dev_get_op_stats(dev, NEXUS_OP_WRITE, &wr);
	printf("ops: %llu reads, %llu writes\n", (unsigned long long)rd.ops,
	       (unsigned long long)wr.ops);
	nexus_dev_close(dev);
	nexus_ctx_destroy(ctx);
	return rc ? 1 : 0;
}
