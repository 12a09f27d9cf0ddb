/* SPDX-License-Identifier: MIT */
/* crypt: AES-XTS encryption of the data path, by sector, compatible with
 * dm-crypt's aes-xts-plain64 (cryptsetup plain mode, LUKS payloads).
 *
 * The XTS tweak of a sector is its number as a 64-bit little-endian
 * integer in a 16-byte IV (the "plain64" convention), plus iv-offset.
 * Sector numbers count sector-size units (dm-crypt's iv_large_sectors,
 * what LUKS2 uses); iv-large-sectors=off counts 512-byte units as
 * cryptsetup's plain mode does by default.
 *
 * Data path, all on the reactor of the I/O, with one pair of cipher
 * contexts per reactor and no locks:
 *  - WRITE encrypts the caller's data into a buffer from the reactor's
 *    pool (the caller's buffer is never modified), writes that below,
 *    and returns the buffer when the write completes.
 *  - READ reads below straight into the caller's buffers and decrypts
 *    them in place when the read completes.
 *  - WRITE_ZEROES writes encrypted zeroes, in chunks, so that the range
 *    reads back as zeroes through crypt (a zeroed range below would
 *    decrypt to noise).  It is never fast: FAST_ZERO is refused.
 *  - TRIM is only offered with discard=on (like dm-crypt's
 *    allow_discards: it shows which blocks are unused); trimmed sectors
 *    read back as unspecified data, and the device never claims
 *    TRIM_ZEROES.
 *  - FLUSH passes through.
 *  - BLOCK_STATUS asks below and keeps only HOLE: a range that reads as
 *    zeroes below reads as the decryption of zeroes (noise) here, so
 *    ZERO never survives; a hole below is a range never written through
 *    crypt (or trimmed with discard=on), whose plaintext is unspecified:
 *    HOLE without ZERO says exactly that, and a reader must read it.
 *    A hole that does not start and end on a crypt sector is reported as
 *    data (a sector is allocated if any of it is).
 * Sectors that straddle iovec segments are gathered into a per-reactor
 * bounce buffer, one sector at a time. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <nexus/nexus_driver.h>

#include "internal.h"
#include "crypt.h"
#include "xts.h"

#define MAX_SECTOR 4096
#define WZ_CHUNK (256u << 10) /* bytes of encrypted zeroes per write */
#define WZ_DEPTH 4	      /* such writes in flight per WRITE_ZEROES */

struct crypt_dev {
	struct nexus_dev *child;
	unsigned char *key; /* secure memory, key_len bytes */
	size_t key_len;
	uint32_t sector_size;
	unsigned sector_shift;
	unsigned iv_shift; /* tweak = (sector << iv_shift) + iv_offset */
	uint64_t iv_offset;
	uint32_t wz_chunk;
};

struct crypt_rstate {
	struct nx_xts *xts;
	unsigned char bounce[MAX_SECTOR] __attribute__((aligned(64)));
};

struct crypt_io;

/* One write below: the data of a WRITE, or a chunk of WRITE_ZEROES. */
struct crypt_sub {
	struct crypt_io *cio;
	struct iovec iov;
	size_t buf_len;
};

struct crypt_io {
	struct nexus_io *io;
	uint64_t next;	   /* WRITE_ZEROES: next byte to zero */
	unsigned inflight; /* WRITE_ZEROES: chunks in flight */
	int err;
	struct crypt_sub sub[WZ_DEPTH];
};

static const struct nexus_option_desc crypt_options[] = {
	/* secret: `crypt:KEY` puts a key here; it must not be printed */
	{ "cipher", NEXUS_OPT_STRING, "aes-xts-plain64",
	  "cipher, as dm-crypt names it (only aes-xts-plain64)",
	  NEXUS_OPTF_POSITIONAL | NEXUS_OPTF_SECRET },
	{ "key-size", NEXUS_OPT_UINT, "512",
	  "key bits: 512 (AES-256-XTS) or 256 (AES-128-XTS)", 0, .min = 256,
	  .max = 512 },
	{ "key-file", NEXUS_OPT_STRING, NULL,
	  "file holding the raw key (64 or 32 bytes exactly)", 0 },
	{ "key-env", NEXUS_OPT_STRING, NULL,
	  "environment variable holding the key in hex", 0 },
	{ "key-name", NEXUS_OPT_STRING, NULL,
	  "key registered with nexus_crypt_key_register()", 0 },
	{ "key", NEXUS_OPT_STRING, NULL,
	  "refused: pipeline text ends up in logs; use key-file, key-env "
	  "or key-name", NEXUS_OPTF_SECRET },
	{ "sector-size", NEXUS_OPT_SIZE, "512",
	  "encryption sector: 512 or 4096 (the logical block size)", 0,
	  .min = 512, .max = 4096 },
	{ "iv-offset", NEXUS_OPT_UINT, "0",
	  "added to the sector number to form the tweak", 0 },
	{ "iv-large-sectors", NEXUS_OPT_BOOL, "on",
	  "tweak counts sector-size units (off: 512-byte units)", 0 },
	{ "discard", NEXUS_OPT_BOOL, "off",
	  "pass TRIM down (reveals which sectors are unused)", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

/* ---- the cipher ---- */

static inline uint64_t tweak_of(const struct crypt_dev *cd, uint64_t sector)
{
	return (sector << cd->iv_shift) + cd->iv_offset;
}

/* En- or decrypt @len bytes of whole sectors, the first being @sector;
 * in == out is allowed. */
static inline int xts_run(const struct crypt_dev *cd, struct crypt_rstate *rs,
			  bool enc, uint64_t sector, unsigned char *out,
			  const unsigned char *in, size_t len)
{
	return nx_xts_crypt(rs->xts, enc, out, in, len, tweak_of(cd, sector),
			    (uint64_t)1 << cd->iv_shift);
}

/* A position in an iovec array. */
struct iov_cur {
	const struct iovec *iov;
	int i;
	size_t off;
};

/* Pointer to the whole sectors (at most @max bytes) that lie
 * contiguously at the cursor, their length in *@len, advancing past
 * them; NULL when the next sector straddles segments (the cursor is
 * then left unchanged). */
static inline unsigned char *cur_run(struct iov_cur *c, uint32_t ss,
				     uint64_t max, size_t *len)
{
	unsigned char *p;
	size_t n;

	while (c->off == c->iov[c->i].iov_len) {
		c->i++;
		c->off = 0;
	}
	n = c->iov[c->i].iov_len - c->off;
	if (n > max)
		n = (size_t)max;
	n -= n % ss;
	if (!n)
		return NULL;
	p = (unsigned char *)c->iov[c->i].iov_base + c->off;
	c->off += n;
	*len = n;
	return p;
}

/* Copy @len bytes between the iovec at the cursor and @buf, advancing. */
static void cur_copy(struct iov_cur *c, unsigned char *buf, size_t len,
		     bool to_iov)
{
	while (len) {
		size_t n;
		unsigned char *p;

		while (c->off == c->iov[c->i].iov_len) {
			c->i++;
			c->off = 0;
		}
		n = c->iov[c->i].iov_len - c->off;
		if (n > len)
			n = len;
		p = (unsigned char *)c->iov[c->i].iov_base + c->off;
		if (to_iov)
			memcpy(p, buf, n);
		else
			memcpy(buf, p, n);
		buf += n;
		len -= n;
		c->off += n;
	}
}

/* En- or decrypt the I/O's data (io->length bytes): into @out, or in
 * place in the caller's buffers when @out is NULL.  Runs of sectors that
 * are contiguous in those buffers go at once; a sector that straddles
 * segments goes through the bounce buffer. */
static int crypt_iov(const struct crypt_dev *cd, struct crypt_rstate *rs,
		     const struct nexus_io *io, bool enc, unsigned char *out)
{
	struct iov_cur c = { io->iov, 0, 0 };
	uint32_t ss = cd->sector_size;
	uint64_t sector = io->offset >> cd->sector_shift;
	bool bounced = false;
	int rc = 0;

	for (uint64_t pos = 0; pos < io->length && !rc;) {
		size_t n;
		unsigned char *p = cur_run(&c, ss, io->length - pos, &n);

		if (p) {
			rc = xts_run(cd, rs, enc, sector, out ? out + pos : p, p,
				     n);
		} else {
			struct iov_cur start = c;

			n = ss;
			cur_copy(&c, rs->bounce, ss, false);
			rc = xts_run(cd, rs, enc, sector,
				     out ? out + pos : rs->bounce, rs->bounce,
				     ss);
			if (!out)
				cur_copy(&start, rs->bounce, ss, true);
			bounced = true;
		}
		pos += n;
		sector += n >> cd->sector_shift;
	}
	if (bounced) /* plaintext was in the bounce buffer */
		OPENSSL_cleanse(rs->bounce, ss);
	return rc;
}

/* ---- open / close ---- */

static void crypt_free(struct crypt_dev *cd)
{
	if (!cd)
		return;
	nx_crypt_secure_free(cd->key, cd->key_len);
	free(cd);
}

/* Whether a cipher= value names a cipher (so that an error may show it):
 * it starts as dm-crypt's cipher specs do.  Anything else may be a key
 * given as crypt:KEY, and is never shown. */
static bool names_a_cipher(const char *s)
{
	static const char *const fam[] = { "aes", "serpent", "twofish",
					   "camellia", "cast", "blowfish",
					   "des", "sm4", "capi:", NULL };

	if (strlen(s) > 64 || !strchr(s, '-'))
		return false;
	for (unsigned i = 0; fam[i]; i++)
		if (!strncmp(s, fam[i], strlen(fam[i])))
			return true;
	return false;
}

/* Everything about the options that needs no device, checked when the
 * pipeline is parsed (--check included): crypt_open() trusts it. */
static int crypt_check(const struct nexus_opts *opts)
{
	const char *cipher = nexus_opts_str(opts, "cipher");
	uint64_t key_bits, ss;
	int rc;

	if (nexus_opts_given(opts, "key"))
		return nexus_error(-EINVAL, "crypt: option 'key' is refused: "
				   "a key in pipeline text ends up in logs and "
				   "process lists; use key-file=PATH, "
				   "key-env=VARIABLE or key-name=NAME");
	if (!cipher || strcmp(cipher, "aes-xts-plain64")) {
		if (cipher && nx_looks_like_key(cipher))
			return nexus_error(-EINVAL, "crypt: the value without "
					   "a key looks like a key, and keys "
					   "are refused in pipeline text: use "
					   "key-file=, key-env= or key-name=");
		if (cipher && names_a_cipher(cipher) &&
		    !nx_looks_like_key(cipher))
			return nexus_error(-EINVAL, "crypt: cipher '%s' is not "
					   "supported (only aes-xts-plain64)",
					   cipher);
		return nexus_error(-EINVAL, "crypt: cipher=*** is not "
				   "supported (only aes-xts-plain64; the value "
				   "is not shown, as a key given as crypt:KEY "
				   "lands there: keys go in key-file=, key-env= "
				   "or key-name=)");
	}
	if ((rc = nexus_opts_u64(opts, "key-size", &key_bits)) ||
	    (rc = nexus_opts_u64(opts, "sector-size", &ss)))
		return rc;
	if (key_bits != 512 && key_bits != 256)
		return nexus_error(-EINVAL, "crypt: key-size=%llu: use 512 "
				   "(AES-256-XTS) or 256 (AES-128-XTS)",
				   (unsigned long long)key_bits);
	if (ss != 512 && ss != 4096)
		return nexus_error(-EINVAL, "crypt: sector-size=%llu: use 512 "
				   "or 4096", (unsigned long long)ss);
	return nx_crypt_check_key_source(opts);
}

static int crypt_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	struct nexus_dev_info ci = NEXUS_DEV_INFO_INIT;
	struct nexus_ctx *ctx = nexus_dev_ctx(dev);
	uint64_t key_bits, ss, iv_offset;
	bool large = true, discard = false;
	struct crypt_dev *cd;
	const char *src;
	int rc;

	if ((rc = nexus_opts_u64(opts, "key-size", &key_bits)) ||
	    (rc = nexus_opts_u64(opts, "sector-size", &ss)) ||
	    (rc = nexus_opts_u64(opts, "iv-offset", &iv_offset)) ||
	    (rc = nexus_opts_bool(opts, "iv-large-sectors", &large)) ||
	    (rc = nexus_opts_bool(opts, "discard", &discard)))
		return rc;
	nexus_dev_get_info(nexus_dev_child(dev, 0), &ci);
	if (ci.logical_block_size > ss)
		return nexus_error(-EINVAL, "crypt: sector-size=%llu is smaller "
				   "than the logical block size %u of the "
				   "device below ('%s')%s",
				   (unsigned long long)ss,
				   ci.logical_block_size, ci.driver,
				   ci.logical_block_size <= 4096
					   ? ": use sector-size=4096"
					   : " (crypt sectors are 512 or 4096)");
	if (ci.dev_size == 0 || ci.dev_size % ss)
		return nexus_error(-EINVAL, "crypt: the device below ('%s') has "
				   "%llu bytes, not a multiple of "
				   "sector-size=%llu", ci.driver,
				   (unsigned long long)ci.dev_size,
				   (unsigned long long)ss);
	if (!(ci.ops & NEXUS_OP_BIT(NEXUS_OP_READ)))
		return nexus_error(-EINVAL, "crypt: the device below ('%s') "
				   "cannot read", ci.driver);

	cd = calloc(1, sizeof(*cd));
	if (!cd)
		return nexus_error(-ENOMEM, "out of memory");
	cd->child = nexus_dev_child(dev, 0);
	cd->key_len = (size_t)key_bits / 8;
	cd->sector_size = (uint32_t)ss;
	cd->sector_shift = ss == 4096 ? 12 : 9;
	cd->iv_shift = large ? 0 : cd->sector_shift - 9;
	cd->iv_offset = iv_offset;
	cd->key = nx_crypt_secure_alloc(ctx, cd->key_len);
	if (!cd->key) {
		crypt_free(cd);
		return nexus_error(-ENOMEM, "out of memory");
	}
	rc = nx_crypt_load_key(ctx, opts, cd->key, cd->key_len);
	if (rc) {
		crypt_free(cd);
		return rc;
	}
	if (nx_crypt_halves_equal(cd->key, cd->key_len)) {
		crypt_free(cd);
		return nexus_error(-EINVAL, "crypt: the two halves of the key "
				   "are equal (IEEE 1619 forbids it for XTS; "
				   "OpenSSL refuses it)");
	}
	{ /* a trial set-up, so that OpenSSL's refusal is an open error */
		struct nx_xts *x = nx_xts_new(cd->key, cd->key_len,
					      cd->sector_size, true);

		if (!x) {
			crypt_free(cd);
			return nexus_error(-ENOTSUP, "crypt: OpenSSL cannot "
					   "set up %s with this key",
					   key_bits == 512 ? "AES-256-XTS"
							   : "AES-128-XTS");
		}
		nx_xts_free(x);
	}
	cd->wz_chunk = ci.max_io_size < WZ_CHUNK
			       ? ci.max_io_size / cd->sector_size * cd->sector_size
			       : WZ_CHUNK;
	if (!cd->wz_chunk)
		cd->wz_chunk = cd->sector_size;

	in->dev_size = ci.dev_size;
	in->logical_block_size = cd->sector_size;
	in->physical_block_size = ci.physical_block_size > cd->sector_size
					  ? ci.physical_block_size
					  : cd->sector_size;
	in->optimal_io_size = ci.optimal_io_size;
	in->max_io_size = ci.max_io_size / cd->sector_size * cd->sector_size;
	if (!in->max_io_size)
		in->max_io_size = cd->sector_size;
	in->flags = ci.flags & (NEXUS_DEV_READ_ONLY | NEXUS_DEV_MULTI_CONN);
	in->ops = NEXUS_OP_BIT(NEXUS_OP_READ);
	if (ci.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE))
		in->ops |= NEXUS_OP_BIT(NEXUS_OP_WRITE) |
			   NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES);
	if (ci.ops & NEXUS_OP_BIT(NEXUS_OP_FLUSH))
		in->ops |= NEXUS_OP_BIT(NEXUS_OP_FLUSH);
	if (discard && (ci.ops & NEXUS_OP_BIT(NEXUS_OP_TRIM)))
		in->ops |= NEXUS_OP_BIT(NEXUS_OP_TRIM);
	else if (discard)
		nexus_log(ctx, NEXUS_LOG_WARN, "crypt: discard=on, but the "
			  "device below ('%s') has no TRIM", ci.driver);
	nexus_dev_set_private(dev, cd);

	src = nexus_opts_given(opts, "key-file")  ? "key-file"
	      : nexus_opts_given(opts, "key-env") ? "key-env"
						  : "key-name";
	nexus_log(ctx, NEXUS_LOG_INFO, "crypt: aes-xts-plain64, %u-bit key "
		  "from %s, %u-byte sectors, iv-offset %llu%s%s",
		  (unsigned)key_bits, src, cd->sector_size,
		  (unsigned long long)iv_offset,
		  large || ss == 512 ? "" : ", 512-byte IV units",
		  discard ? ", discard" : "");
	return 0;
}

static void crypt_close(struct nexus_dev *dev)
{
	crypt_free(nexus_dev_private(dev));
}

static int crypt_reactor_init(struct nexus_dev *dev, struct nexus_reactor *r,
			      void **rstate)
{
	struct crypt_dev *cd = nexus_dev_private(dev);
	struct crypt_rstate *rs;

	(void)r;
	if (posix_memalign((void **)&rs, 64, sizeof(*rs)))
		return nexus_error(-ENOMEM, "out of memory");
	memset(rs, 0, sizeof(*rs));
	rs->xts = nx_xts_new(cd->key, cd->key_len, cd->sector_size, true);
	if (!rs->xts) {
		free(rs);
		return nexus_error(-EIO, "crypt: OpenSSL refused the key");
	}
	*rstate = rs;
	return 0;
}

static void crypt_reactor_fini(struct nexus_dev *dev, struct nexus_reactor *r,
			       void *rstate)
{
	struct crypt_rstate *rs = rstate;

	(void)dev;
	(void)r;
	if (!rs)
		return;
	nx_xts_free(rs->xts); /* wipes the key schedules */
	OPENSSL_cleanse(rs->bounce, sizeof(rs->bounce));
	free(rs);
}

/* ---- data path ---- */

static void read_done(void *ud, int res)
{
	struct nexus_io *io = ud;

	if (res >= 0)
		res = crypt_iov(nexus_dev_private(io->dev), io->rstate, io,
				false, NULL);
	nexus_io_complete(io, res < 0 ? res : 0);
}

static void pass_done(void *ud, int res)
{
	nexus_io_complete(ud, res < 0 ? res : 0);
}

static void write_done(void *ud, int res)
{
	struct crypt_sub *s = ud;
	struct nexus_io *io = s->cio->io;

	nexus_buf_free(io->reactor, s->iov.iov_base, s->buf_len);
	nexus_io_complete(io, res < 0 ? res : 0);
}

static int submit_write(struct crypt_dev *cd, struct crypt_io *cio)
{
	struct nexus_io *io = cio->io;
	struct crypt_sub *s = &cio->sub[0];
	unsigned char *buf;
	int rc;

	buf = nexus_buf_alloc(io->reactor, (size_t)io->length);
	if (!buf)
		return nexus_error(-ENOMEM, "crypt: out of memory for a "
				   "%llu-byte write",
				   (unsigned long long)io->length);
	s->cio = cio;
	s->iov.iov_base = buf;
	s->iov.iov_len = (size_t)io->length;
	s->buf_len = (size_t)io->length;
	rc = crypt_iov(cd, io->rstate, io, true, buf);
	if (rc == 0)
		rc = nx_submit(cd->child, NEXUS_OP_WRITE, &s->iov, 1,
				      io->offset, 0, io->flags & NEXUS_IO_FUA,
				      write_done, s);
	if (rc < 0)
		nexus_buf_free(io->reactor, buf, s->buf_len);
	return rc;
}

static void wz_done(void *ud, int res);

/* Start the next chunk of encrypted zeroes in slot @s. */
static int wz_start(struct crypt_dev *cd, struct crypt_io *cio,
		    struct crypt_sub *s)
{
	struct nexus_io *io = cio->io;
	struct crypt_rstate *rs = io->rstate;
	uint64_t end = io->offset + io->length, left = end - cio->next;
	size_t len = left < cd->wz_chunk ? (size_t)left : cd->wz_chunk;
	uint64_t sector = cio->next >> cd->sector_shift;
	unsigned char *buf;
	int rc;

	buf = nexus_buf_alloc(io->reactor, len);
	if (!buf)
		return nexus_error(-ENOMEM, "crypt: out of memory for "
				   "write-zeroes");
	memset(buf, 0, len);
	rc = xts_run(cd, rs, true, sector, buf, buf, len);
	s->cio = cio;
	s->iov.iov_base = buf;
	s->iov.iov_len = len;
	s->buf_len = len;
	if (rc == 0)
		rc = nx_submit(cd->child, NEXUS_OP_WRITE, &s->iov, 1,
				      cio->next, 0, io->flags & NEXUS_IO_FUA,
				      wz_done, s);
	if (rc < 0) {
		nexus_buf_free(io->reactor, buf, len);
		return rc;
	}
	cio->next += len;
	cio->inflight++;
	return 0;
}

static void wz_done(void *ud, int res)
{
	struct crypt_sub *s = ud;
	struct crypt_io *cio = s->cio;
	struct nexus_io *io = cio->io;
	struct crypt_dev *cd = nexus_dev_private(io->dev);

	nexus_buf_free(io->reactor, s->iov.iov_base, s->buf_len);
	cio->inflight--;
	if (res < 0 && !cio->err)
		cio->err = res;
	if (!cio->err && cio->next < io->offset + io->length) {
		int rc = wz_start(cd, cio, s);

		if (rc < 0)
			cio->err = rc;
	}
	if (!cio->inflight)
		nexus_io_complete(io, cio->err);
}

static int submit_write_zeroes(struct crypt_dev *cd, struct crypt_io *cio)
{
	struct nexus_io *io = cio->io;
	int rc = 0;

	if (io->flags & NEXUS_IO_FAST_ZERO)
		return nexus_error(-EOPNOTSUPP, "crypt: write-zeroes cannot be "
				   "fast: it writes encrypted zeroes");
	cio->next = io->offset;
	cio->inflight = 0;
	cio->err = 0;
	for (unsigned i = 0; i < WZ_DEPTH && cio->next < io->offset + io->length;
	     i++) {
		rc = wz_start(cd, cio, &cio->sub[i]);
		if (rc < 0)
			break;
	}
	if (!cio->inflight)
		return rc; /* nothing started: fail synchronously */
	if (rc < 0) /* some started: finish them, then fail */
		cio->err = rc;
	return 0;
}

/* BLOCK_STATUS came back from below: see the top of the file. */
static void bs_done(void *ud, int res)
{
	struct nexus_io *io = ud;
	struct crypt_dev *cd = nexus_dev_private(io->dev);
	uint64_t mask = cd->sector_size - 1;
	struct nexus_extent *e = io->extents;
	int n = 0;

	for (int i = 0; i < res; i++) {
		uint32_t f = e[i].flags & NEXUS_EXTENT_HOLE;

		if ((e[i].offset | e[i].length) & mask)
			f = 0;
		if (n && e[n - 1].flags == f) {
			e[n - 1].length += e[i].length;
			continue;
		}
		e[n] = e[i];
		e[n++].flags = f;
	}
	nexus_io_complete(io, res < 0 ? res : n);
}

static int crypt_submit(struct nexus_io *io)
{
	struct crypt_dev *cd = nexus_dev_private(io->dev);
	struct crypt_io *cio = io->driver_ctx;

	cio->io = io;
	switch (io->op) {
	case NEXUS_OP_READ:
		return nx_submit(cd->child, NEXUS_OP_READ, io->iov,
					io->iovcnt, io->offset, 0, 0,
					read_done, io);
	case NEXUS_OP_WRITE:
		return submit_write(cd, cio);
	case NEXUS_OP_WRITE_ZEROES:
		return submit_write_zeroes(cd, cio);
	case NEXUS_OP_FLUSH:
		return nx_submit(cd->child, NEXUS_OP_FLUSH, NULL, 0, 0,
					0, 0, pass_done, io);
	case NEXUS_OP_TRIM:
		return nx_submit(cd->child, NEXUS_OP_TRIM, NULL, 0,
					io->offset, io->length,
					io->flags & NEXUS_IO_FUA, pass_done,
					io);
	case NEXUS_OP_BLOCK_STATUS: {
		struct nexus_io_req r = nx_io_req_of(io, bs_done, io);

		return nexus_dev_submit(cd->child, &r);
	}
	default:
		return -EOPNOTSUPP;
	}
}

const struct nexus_driver nx_driver_crypt = {
	NEXUS_DRIVER_HEADER,
	.name = "crypt",
	.summary = "AES-XTS encryption by sector (dm-crypt aes-xts-plain64)",
	.kind = NEXUS_DRIVER_TRANSFORM,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
	       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS),
	.per_io_size = sizeof(struct crypt_io),
	.min_children = 1,
	.max_children = 1,
	.options = crypt_options,
	.check = crypt_check,
	.open = crypt_open,
	.close = crypt_close,
	.reactor_init = crypt_reactor_init,
	.reactor_fini = crypt_reactor_fini,
	.submit = crypt_submit,
};
