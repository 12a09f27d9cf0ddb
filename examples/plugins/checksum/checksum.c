/* SPDX-License-Identifier: MIT */
/* checksum: an example libnexus transform plugin.
 *
 * Keeps a CRC32C of every block written through it and verifies it on
 * every read: a block that changed behind its back (bit rot, a buggy
 * layer below, someone writing the image directly) fails the read with
 * -EIO and an error in the log, instead of returning wrong data.
 *
 *   'file:vol.img | checksum'                     sums in memory only
 *   '(file:vol.img ; file:vol.sums) | checksum'   sums kept in a sidecar
 *
 * The sums live in memory (8 bytes per block).  With a second device
 * below (the sidecar) they also persist there: loaded at open, written
 * back at FLUSH, on FUA writes and at close, so that a later run still
 * detects corruption.  A block never written through checksum has no
 * sum and is read unverified.
 *
 * It shows what a transform does with each operation it declares:
 *   READ          read from below into the caller's buffers; verify;
 *                 retry a mismatching read twice (a write racing with
 *                 the read), then fail with -EIO
 *   WRITE         write below; on success record the new sums (FUA: and
 *                 persist them before completing)
 *   TRIM          trim below; the sums become "zeroes" when the device
 *                 below reads trimmed ranges as zeroes, else unknown
 *   WRITE_ZEROES  zero below; the sums become "zeroes"
 *   FLUSH         persist dirty sums to the sidecar, flush it, then
 *                 flush the data device
 * and it declares no other: a future operation is refused by the core
 * rather than passed through with its sums left stale.
 *
 * Limits of an example: a FLUSH that finds nothing dirty while another
 * FLUSH is still writing sums back completes without waiting for it (the
 * data itself is flushed); sums are 0.2% of the data, all in memory.
 *
 * Per-I/O context (struct cks_io) carries each I/O's state machine; the
 * per-reactor state counts verifications without locks; buffers for the
 * sidecar come from the reactor's pool.  Built out of tree against an
 * installed libnexus with only <nexus/nexus_driver.h> and libc.
 */
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nexus/nexus_driver.h>

#define ENTRY_VALID (1ull << 32) /* a sum entry: valid bit | CRC32C */
#define MAX_RETRIES 2
#define PERSIST_MAX (1u << 20) /* bytes of sums per sidecar write */
#define SIDECAR_MAGIC "NXCKSUM1"
#define SIDECAR_VERSION 1

/* nexus_dev_submit() with the request's fields as arguments. */
static int submit(struct nexus_dev *dev, int op, const struct iovec *iov,
		  int iovcnt, uint64_t off, uint64_t len, uint32_t flags,
		  nexus_io_cb cb, void *ud)
{
	struct nexus_io_req req = NEXUS_IO_REQ_INIT;

	req.op = (uint32_t)op;
	req.iov = iov;
	req.iovcnt = iovcnt;
	req.offset = off;
	req.length = len;
	req.flags = flags;
	req.cb = cb;
	req.user_data = ud;
	return nexus_dev_submit(dev, &req);
}

/* ---- device state ---- */

struct cks {
	struct nexus_dev *data, *side; /* side: the sidecar, or NULL */
	char *name;
	uint32_t bs, shift;
	uint64_t nblocks;
	_Atomic uint64_t *sums; /* per block: ENTRY_VALID | crc, or 0 */
	uint32_t zero_crc;	/* CRC32C of a block of zeroes */
	bool verify, trim_zeroes, data_flush, side_flush;
	/* sidecar layout: a header chunk, then the sums, chunk-aligned */
	uint32_t chunk;		  /* sidecar write unit, bytes */
	uint64_t nchunks;	  /* chunks of sums */
	_Atomic uint64_t *dirty;  /* a bit per chunk not yet persisted */
	/* totals, added by each reactor when the device closes */
	_Atomic uint64_t verified, unverified, mismatches, retries;
};

struct cks_rstate {
	uint64_t verified, unverified, mismatches, retries;
};

enum step { STEP_DATA, STEP_PERSIST, STEP_SIDE_FLUSH, STEP_DATA_FLUSH };

/* Per-I/O context: nexus_io::driver_ctx, per_io_size bytes. */
struct cks_io {
	struct nexus_io *io;
	enum step step;
	int retries;
	uint64_t next_chunk;	 /* persist: where the scan continues */
	uint64_t c0, c1;	 /* persist: chunks being written */
	void *buf;		 /* persist: pool buffer */
	size_t buflen;
	struct iovec iov;
};

static const struct nexus_option_desc cks_options[] = {
	{ "block-size", NEXUS_OPT_SIZE, "4096",
	  "bytes covered by one checksum (a power of two, 512 to 64K)", 0 },
	{ "verify", NEXUS_OPT_BOOL, "on",
	  "verify reads (off: only record sums, e.g. to fill a sidecar)", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static uint32_t block_crc(const unsigned char *p, size_t n)
{
	return nexus_crc32c(0, p, n);
}

static void mark_dirty(struct cks *c, uint64_t first, uint64_t end)
{
	uint64_t per_chunk = c->chunk / 8;

	if (!c->side || first >= end)
		return;
	for (uint64_t k = first / per_chunk; k <= (end - 1) / per_chunk; k++)
		atomic_fetch_or_explicit(&c->dirty[k / 64], 1ull << (k % 64),
					 memory_order_release);
}

static void set_range(struct cks *c, uint64_t off, uint64_t len,
		      uint64_t entry)
{
	uint64_t first = off >> c->shift, end = (off + len) >> c->shift;

	for (uint64_t b = first; b < end; b++)
		atomic_store_explicit(&c->sums[b], entry, memory_order_relaxed);
	mark_dirty(c, first, end);
}

/* Sum each block of the I/O's buffers; record (WRITE) or check (READ).
 * Returns the first mismatching block, or UINT64_MAX. */
static uint64_t sum_blocks(struct cks *c, struct nexus_io *io, bool record,
			   struct cks_rstate *rs, uint32_t *got, uint32_t *want)
{
	uint64_t first = io->offset >> c->shift;
	uint64_t end = (io->offset + io->length) >> c->shift;
	int seg = 0;
	size_t segoff = 0;

	for (uint64_t b = first; b < end; b++) {
		uint32_t crc = 0;
		size_t need = c->bs;

		while (need && seg < io->iovcnt) {
			size_t n = io->iov[seg].iov_len - segoff;

			if (n > need)
				n = need;
			crc = nexus_crc32c(crc,
					   (const unsigned char *)io->iov[seg].iov_base +
						   segoff,
					   n);
			segoff += n;
			need -= n;
			if (segoff == io->iov[seg].iov_len) {
				seg++;
				segoff = 0;
			}
		}
		if (record) {
			atomic_store_explicit(&c->sums[b], ENTRY_VALID | crc,
					      memory_order_relaxed);
		} else {
			uint64_t e = atomic_load_explicit(&c->sums[b],
							  memory_order_relaxed);

			if (!(e & ENTRY_VALID)) {
				rs->unverified++;
			} else if ((uint32_t)e != crc) {
				*got = crc;
				*want = (uint32_t)e;
				return b;
			} else {
				rs->verified++;
			}
		}
	}
	if (record)
		mark_dirty(c, first, end);
	return UINT64_MAX;
}

/* ---- persisting the sums to the sidecar ---- */

static void side_done(void *arg, int res);

/* Write the next run of dirty chunks, or, when none is left, flush the
 * sidecar.  Returns 0 (a request is in flight), 1 (nothing to do) or a
 * negative errno. */
static int persist_next(struct cks *c, struct cks_io *t)
{
	struct nexus_io *io = t->io;
	uint64_t k = t->next_chunk, e, max = PERSIST_MAX / c->chunk;
	unsigned char *p;
	int rc;

again:
	for (; k < c->nchunks; k++) {
		if (!(k % 64) && !atomic_load_explicit(&c->dirty[k / 64],
							memory_order_acquire)) {
			k += 63;
			continue;
		}
		if (atomic_load_explicit(&c->dirty[k / 64],
					 memory_order_acquire) &
		    (1ull << (k % 64)))
			break;
	}
	if (k >= c->nchunks) {
		if (!c->side_flush)
			return 1;
		t->step = STEP_SIDE_FLUSH;
		return submit(c->side, NEXUS_OP_FLUSH, NULL, 0, 0, 0,
					0, side_done, t);
	}
	for (e = k; e < c->nchunks && e - k < max; e++) {
		uint64_t bit = 1ull << (e % 64);

		/* clear first: an update after this is dirty again */
		if (!(atomic_fetch_and_explicit(&c->dirty[e / 64], ~bit,
						memory_order_acq_rel) & bit))
			break;
	}
	if (e == k) { /* another flush took it meanwhile */
		k++;
		goto again;
	}
	t->c0 = k;
	t->c1 = e;
	t->next_chunk = e;
	t->buflen = (size_t)(e - k) * c->chunk;
	t->buf = nexus_buf_alloc(io->reactor, t->buflen);
	if (!t->buf) {
		mark_dirty(c, k * (c->chunk / 8), e * (c->chunk / 8));
		return -ENOMEM;
	}
	p = t->buf;
	for (uint64_t i = 0; i < t->buflen / 8; i++) {
		uint64_t b = k * (c->chunk / 8) + i;
		uint64_t v = b < c->nblocks
				     ? atomic_load_explicit(&c->sums[b],
							    memory_order_relaxed)
				     : 0;

		v = htole64(v);
		memcpy(p + 8 * i, &v, 8);
	}
	t->iov.iov_base = t->buf;
	t->iov.iov_len = t->buflen;
	t->step = STEP_PERSIST;
	rc = submit(c->side, NEXUS_OP_WRITE, &t->iov, 1,
			      (uint64_t)c->chunk * (1 + k), 0, 0, side_done, t);
	if (rc) {
		nexus_buf_free(io->reactor, t->buf, t->buflen);
		t->buf = NULL;
		mark_dirty(c, k * (c->chunk / 8), e * (c->chunk / 8));
	}
	return rc;
}

static void data_done(void *arg, int res);

/* The persist steps are done: finish the I/O (a FLUSH also flushes the
 * data device). */
static void persisted(struct cks *c, struct cks_io *t)
{
	struct nexus_io *io = t->io;
	int rc;

	if (io->op == NEXUS_OP_FLUSH && c->data_flush) {
		t->step = STEP_DATA_FLUSH;
		rc = submit(c->data, NEXUS_OP_FLUSH, NULL, 0, 0, 0, 0,
				      data_done, t);
		if (rc)
			nexus_io_complete(io, rc);
		return;
	}
	nexus_io_complete(io, 0);
}

static void persist_continue(struct cks *c, struct cks_io *t)
{
	int rc = persist_next(c, t);

	if (rc == 1)
		persisted(c, t);
	else if (rc < 0)
		nexus_io_complete(t->io, rc);
}

static void side_done(void *arg, int res)
{
	struct cks_io *t = arg;
	struct nexus_io *io = t->io;
	struct cks *c = nexus_dev_private(io->dev);

	if (t->buf) {
		nexus_buf_free(io->reactor, t->buf, t->buflen);
		t->buf = NULL;
	}
	if (res < 0) {
		if (t->step == STEP_PERSIST) /* try again at the next flush */
			mark_dirty(c, t->c0 * (c->chunk / 8),
				   t->c1 * (c->chunk / 8));
		nexus_io_complete(io, res);
		return;
	}
	if (t->step == STEP_SIDE_FLUSH)
		persisted(c, t);
	else
		persist_continue(c, t);
}

/* ---- the data path ---- */

static int submit_data(struct cks *c, struct cks_io *t)
{
	struct nexus_io *io = t->io;

	t->step = STEP_DATA;
	return submit(c->data, (int)io->op, io->iov, io->iovcnt,
				io->offset, io->length, io->flags, data_done, t);
}

static void data_done(void *arg, int res)
{
	struct cks_io *t = arg;
	struct nexus_io *io = t->io;
	struct cks *c = nexus_dev_private(io->dev);
	struct cks_rstate *rs = io->rstate;
	uint32_t got = 0, want = 0;
	uint64_t bad;
	int rc;

	if (t->step == STEP_DATA_FLUSH) {
		nexus_io_complete(io, res < 0 ? res : 0);
		return;
	}
	if (res < 0) {
		/* a failed write or zeroing may have changed some blocks */
		if (io->op != NEXUS_OP_READ)
			set_range(c, io->offset, io->length, 0);
		nexus_io_complete(io, res);
		return;
	}
	switch (io->op) {
	case NEXUS_OP_READ:
		if (!c->verify)
			break;
		bad = sum_blocks(c, io, false, rs, &got, &want);
		if (bad == UINT64_MAX)
			break;
		if (t->retries < MAX_RETRIES) {
			/* maybe a write of that block was completing on
			 * another reactor: read it again */
			t->retries++;
			rs->retries++;
			rc = submit_data(c, t);
			if (rc)
				nexus_io_complete(io, rc);
			return;
		}
		rs->mismatches++;
		nexus_log(nexus_dev_ctx(io->dev), NEXUS_LOG_ERROR,
			  "checksum: %s: block %llu (byte %llu): CRC32C %08x, "
			  "recorded %08x: data corrupted below", c->name,
			  (unsigned long long)bad,
			  (unsigned long long)(bad << c->shift), got, want);
		nexus_io_complete(io, -EIO);
		return;
	case NEXUS_OP_WRITE:
		sum_blocks(c, io, true, rs, &got, &want);
		break;
	case NEXUS_OP_WRITE_ZEROES:
		set_range(c, io->offset, io->length, ENTRY_VALID | c->zero_crc);
		break;
	case NEXUS_OP_TRIM:
		set_range(c, io->offset, io->length,
			  c->trim_zeroes ? ENTRY_VALID | c->zero_crc : 0);
		break;
	}
	if (c->side && (io->flags & NEXUS_IO_FUA) &&
	    (io->op == NEXUS_OP_WRITE || io->op == NEXUS_OP_WRITE_ZEROES)) {
		t->next_chunk = 0;
		persist_continue(c, t);
		return;
	}
	nexus_io_complete(io, 0);
}

static int cks_submit(struct nexus_io *io)
{
	struct cks *c = nexus_dev_private(io->dev);
	struct cks_io *t = io->driver_ctx;
	int rc;

	t->io = io;
	t->retries = 0;
	t->buf = NULL;
	t->next_chunk = 0;
	switch (io->op) {
	case NEXUS_OP_READ:
	case NEXUS_OP_WRITE:
	case NEXUS_OP_TRIM:
	case NEXUS_OP_WRITE_ZEROES:
		return submit_data(c, t);
	case NEXUS_OP_FLUSH:
		if (!c->side)
			return nexus_io_forward(io, c->data);
		rc = persist_next(c, t);
		if (rc == 1) { /* nothing dirty, no sidecar flush */
			persisted(c, t);
			rc = 0;
		}
		return rc;
	}
	return -EOPNOTSUPP; /* not reached: the core checks declared ops */
}

/* ---- open and close ---- */

static int side_io(struct cks *c, int op, void *buf, size_t len,
		   uint64_t off)
{
	ssize_t n = op == NEXUS_OP_READ
			    ? nexus_dev_pread(c->side, buf, len, off)
			    : nexus_dev_pwrite(c->side, buf, len, off, 0);

	return n < 0 ? (int)n : 0;
}

/* Check or create the sidecar's header, then load the sums. */
static int load_sidecar(struct cks *c, uint32_t max_io)
{
	unsigned char *buf;
	size_t len = (size_t)c->chunk;
	uint64_t sums_bytes = c->nchunks * c->chunk;
	uint32_t v32;
	uint64_t v64;
	bool fresh = true;
	int rc;

	if (max_io < PERSIST_MAX)
		len = max_io > c->chunk ? max_io / c->chunk * c->chunk : c->chunk;
	else
		len = PERSIST_MAX;
	buf = aligned_alloc(4096, len < 4096 ? 4096 : len);
	if (!buf)
		return nexus_error(-ENOMEM, "checksum: out of memory");
	rc = side_io(c, NEXUS_OP_READ, buf, c->chunk, 0);
	if (rc)
		goto out;
	for (uint32_t i = 0; i < c->chunk; i++)
		if (buf[i])
			fresh = false;
	if (fresh) { /* a new sidecar: stamp it */
		memcpy(buf, SIDECAR_MAGIC, 8);
		v32 = htole32(SIDECAR_VERSION);
		memcpy(buf + 8, &v32, 4);
		v32 = htole32(c->bs);
		memcpy(buf + 12, &v32, 4);
		v64 = htole64(c->nblocks);
		memcpy(buf + 16, &v64, 8);
		rc = side_io(c, NEXUS_OP_WRITE, buf, c->chunk, 0);
		if (rc == 0 && c->side_flush)
			rc = nexus_dev_flush(c->side);
		goto out;
	}
	memcpy(&v32, buf + 12, 4);
	memcpy(&v64, buf + 16, 8);
	if (memcmp(buf, SIDECAR_MAGIC, 8)) {
		rc = nexus_error(-EINVAL, "checksum: the sidecar is neither "
				 "empty nor a checksum sidecar");
		goto out;
	}
	if (le32toh(v32) != c->bs || le64toh(v64) != c->nblocks) {
		rc = nexus_error(-EINVAL, "checksum: the sidecar was made for "
				 "%llu blocks of %u bytes, not %llu of %u",
				 (unsigned long long)le64toh(v64),
				 le32toh(v32),
				 (unsigned long long)c->nblocks, c->bs);
		goto out;
	}
	for (uint64_t off = 0; off < sums_bytes; off += len) {
		size_t n = sums_bytes - off < len ? (size_t)(sums_bytes - off)
						  : len;

		rc = side_io(c, NEXUS_OP_READ, buf, n, c->chunk + off);
		if (rc)
			goto out;
		for (size_t i = 0; i < n / 8; i++) {
			uint64_t b = off / 8 + i;

			if (b >= c->nblocks)
				break;
			memcpy(&v64, buf + 8 * i, 8);
			atomic_store_explicit(&c->sums[b], le64toh(v64),
					      memory_order_relaxed);
		}
	}
out:
	free(buf);
	return rc;
}

static void cks_free(struct cks *c)
{
	free((void *)c->sums);
	free((void *)c->dirty);
	free(c->name);
	free(c);
}

static int cks_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	struct nexus_dev_info di = NEXUS_DEV_INFO_INIT;
	struct nexus_dev_info si = NEXUS_DEV_INFO_INIT;
	struct nexus_dev_info self = NEXUS_DEV_INFO_INIT;
	unsigned char *zero;
	struct cks *c;
	uint64_t bs;
	bool verify;
	int rc;

	if ((rc = nexus_opts_u64(opts, "block-size", &bs)) ||
	    (rc = nexus_opts_bool(opts, "verify", &verify)))
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return nexus_error(-ENOMEM, "checksum: out of memory");
	nexus_dev_get_info(dev, &self);
	c->name = strdup(self.name ? self.name : "checksum");
	c->data = nexus_dev_child(dev, 0);
	c->side = nexus_dev_child(dev, 1);
	c->verify = verify;
	rc = nexus_dev_get_info(c->data, &di);
	if (rc == 0 && c->side)
		rc = nexus_dev_get_info(c->side, &si);
	if (rc || !c->name)
		goto fail_nomem;
	if (bs < 512 || bs > 65536 || (bs & (bs - 1)) ||
	    bs < di.logical_block_size) {
		rc = nexus_error(-EINVAL, "checksum: block-size %llu must be a "
				 "power of two from 512 to 64K, at least the "
				 "block size below (%u)",
				 (unsigned long long)bs, di.logical_block_size);
		goto fail;
	}
	if (di.dev_size % bs || !di.dev_size) {
		rc = nexus_error(-EINVAL, "checksum: the device below (%llu "
				 "bytes) is not a multiple of block-size %llu",
				 (unsigned long long)di.dev_size,
				 (unsigned long long)bs);
		goto fail;
	}
	c->bs = (uint32_t)bs;
	c->shift = (uint32_t)__builtin_ctzll(bs);
	c->nblocks = di.dev_size / bs;
	c->trim_zeroes = di.flags & NEXUS_DEV_TRIM_ZEROES;
	c->data_flush = di.ops & NEXUS_OP_BIT(NEXUS_OP_FLUSH);
	c->sums = calloc(c->nblocks, sizeof(*c->sums));
	zero = calloc(1, bs);
	if (!c->sums || !zero) {
		free(zero);
		goto fail_nomem;
	}
	c->zero_crc = block_crc(zero, bs);
	free(zero);

	if (c->side) {
		if ((si.flags & NEXUS_DEV_READ_ONLY) &&
		    !(di.flags & NEXUS_DEV_READ_ONLY)) {
			rc = nexus_error(-EROFS, "checksum: the sidecar is "
					 "read-only but the data is not");
			goto fail;
		}
		c->chunk = si.logical_block_size > 4096 ? si.logical_block_size
							: 4096;
		c->nchunks = (c->nblocks * 8 + c->chunk - 1) / c->chunk;
		if (si.dev_size < c->chunk * (1 + c->nchunks)) {
			rc = nexus_error(-ENOSPC, "checksum: the sidecar has "
					 "%llu bytes; it needs %llu",
					 (unsigned long long)si.dev_size,
					 (unsigned long long)(c->chunk *
							      (1 + c->nchunks)));
			goto fail;
		}
		c->side_flush = si.ops & NEXUS_OP_BIT(NEXUS_OP_FLUSH);
		c->dirty = calloc((c->nchunks + 63) / 64, sizeof(*c->dirty));
		if (!c->dirty)
			goto fail_nomem;
		rc = load_sidecar(c, si.max_io_size);
		if (rc)
			goto fail;
	}

	in->dev_size = di.dev_size;
	in->logical_block_size = c->bs;
	in->physical_block_size = di.physical_block_size > c->bs
					  ? di.physical_block_size
					  : c->bs;
	in->optimal_io_size = di.optimal_io_size;
	in->max_io_size = di.max_io_size / c->bs * c->bs;
	if (!in->max_io_size)
		in->max_io_size = c->bs;
	/* Never advertise what the device below cannot do.  FLUSH is ours
	 * to do when there is a sidecar. */
	in->ops &= di.ops | (c->side ? NEXUS_OP_BIT(NEXUS_OP_FLUSH) : 0);
	in->flags = di.flags & (NEXUS_DEV_READ_ONLY | NEXUS_DEV_TRIM_ZEROES |
				NEXUS_DEV_MULTI_CONN | NEXUS_DEV_BLOCK_STATUS);
	nexus_dev_set_private(dev, c);
	nexus_log(nexus_dev_ctx(dev), NEXUS_LOG_INFO,
		  "checksum: %s: %llu blocks of %u bytes, sums %s", c->name,
		  (unsigned long long)c->nblocks, c->bs,
		  c->side ? "in memory and in the sidecar" : "in memory");
	return 0;

fail_nomem:
	rc = rc ? rc : nexus_error(-ENOMEM, "checksum: out of memory");
fail:
	cks_free(c);
	return rc;
}

static void cks_close(struct nexus_dev *dev)
{
	struct cks *c = nexus_dev_private(dev);
	unsigned char *buf = NULL;
	bool dirty = false;

	/* No I/O is in flight: write back what no FLUSH persisted. */
	for (uint64_t w = 0; c->side && w < (c->nchunks + 63) / 64; w++)
		if (atomic_load(&c->dirty[w]))
			dirty = true;
	if (dirty && !(buf = aligned_alloc(4096, c->chunk)))
		dirty = false;
	for (uint64_t k = 0; dirty && k < c->nchunks; k++) {
		if (!(atomic_load(&c->dirty[k / 64]) & (1ull << (k % 64))))
			continue;
		for (uint32_t i = 0; i < c->chunk / 8; i++) {
			uint64_t b = k * (c->chunk / 8) + i;
			uint64_t v = htole64(b < c->nblocks ? c->sums[b] : 0);

			memcpy(buf + 8 * i, &v, 8);
		}
		if (side_io(c, NEXUS_OP_WRITE, buf, c->chunk,
			    (uint64_t)c->chunk * (1 + k)))
			nexus_log(nexus_dev_ctx(dev), NEXUS_LOG_ERROR,
				  "checksum: %s: cannot save sums: %s",
				  c->name, nexus_last_error());
	}
	if (dirty) {
		free(buf);
		if (c->side_flush)
			nexus_dev_flush(c->side);
	}
	nexus_log(nexus_dev_ctx(dev), NEXUS_LOG_INFO,
		  "checksum: %s: %llu blocks verified, %llu unverified, %llu "
		  "mismatches, %llu re-reads", c->name,
		  (unsigned long long)c->verified,
		  (unsigned long long)c->unverified,
		  (unsigned long long)c->mismatches,
		  (unsigned long long)c->retries);
	cks_free(c);
}

static int cks_reactor_init(struct nexus_dev *dev, struct nexus_reactor *r,
			    void **rstate)
{
	(void)dev;
	(void)r;
	*rstate = calloc(1, sizeof(struct cks_rstate));
	return *rstate ? 0 : -ENOMEM;
}

static void cks_reactor_fini(struct nexus_dev *dev, struct nexus_reactor *r,
			     void *rstate)
{
	struct cks *c = nexus_dev_private(dev);
	struct cks_rstate *rs = rstate;

	(void)r;
	atomic_fetch_add(&c->verified, rs->verified);
	atomic_fetch_add(&c->unverified, rs->unverified);
	atomic_fetch_add(&c->mismatches, rs->mismatches);
	atomic_fetch_add(&c->retries, rs->retries);
	free(rs);
}

static int cks_block_status(struct nexus_dev *dev, uint64_t offset,
			    uint64_t length, struct nexus_extent *ext,
			    unsigned max)
{
	struct cks *c = nexus_dev_private(dev);

	return nexus_dev_block_status(c->data, offset, length, ext, max);
}

static const struct nexus_driver checksum_driver = {
	NEXUS_DRIVER_HEADER,
	.name = "checksum",
	.summary = "CRC32C of every block, verified on read; optional "
		   "sidecar device (example plugin)",
	.kind = NEXUS_DRIVER_TRANSFORM,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES),
	.per_io_size = sizeof(struct cks_io),
	.min_children = 1,
	.max_children = 2,
	.options = cks_options,
	.open = cks_open,
	.close = cks_close,
	.reactor_init = cks_reactor_init,
	.reactor_fini = cks_reactor_fini,
	.submit = cks_submit,
	.block_status = cks_block_status,
};

static const struct nexus_driver *const checksum_drivers[] = {
	&checksum_driver,
	NULL,
};

NEXUS_REGISTER_PLUGIN(checksum_drivers)
