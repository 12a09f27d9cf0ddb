/* SPDX-License-Identifier: MIT */
/* file: a regular file or a block device through io_uring.
 *
 * READ/WRITE go to the reactor's ring as READ/WRITE (one buffer) or
 * READV/WRITEV; FUA is RWF_DSYNC on the write; FLUSH is fdatasync; TRIM
 * punches a hole; WRITE_ZEROES punches a hole, or with NO_UNMAP zeroes
 * the range in place (ZERO_RANGE, falling back to writing zeroes where
 * the filesystem cannot).  Block status comes from SEEK_DATA/SEEK_HOLE. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>
#include <nexus/nexus_driver.h>

#include "internal.h"

/* The kernel fills read buffers behind valgrind's back: tell memcheck
 * that they are defined, or every consumer of the data is reported. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MARK_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED(p, n)
#endif
#endif
#ifndef MARK_DEFINED
#define MARK_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#define ZERO_BUF (1u << 20)
/* tmpfs/ramfs: largest READ/WRITE done with a plain syscall */
#define INLINE_MAX (128u << 10)

struct file_dev {
	int fd;
	bool direct;
	bool bdev;
	bool inline_rw; /* tmpfs/ramfs: READ/WRITE as plain syscalls */
	uint32_t mem_align;
	void *zeroes; /* ZERO_BUF bytes of zeroes, for the fallback */
};

enum file_step { STEP_MAIN, STEP_ZERO_WRITE, STEP_SYNC };

struct file_io {
	struct nexus_cqe_handler ev;
	struct nexus_io *io;
	uint64_t pos; /* progress of the write-zeroes fallback */
	int step;
};

static const struct nexus_option_desc file_options[] = {
	{ "path", NEXUS_OPT_STRING, NULL, "file or block device",
	  NEXUS_OPTF_REQUIRED | NEXUS_OPTF_POSITIONAL },
	{ "direct", NEXUS_OPT_BOOL, "off", "O_DIRECT: bypass the page cache", 0 },
	{ "readonly", NEXUS_OPT_BOOL, "off", "open read-only", 0 },
	{ "create", NEXUS_OPT_BOOL, "off", "create the file if missing", 0 },
	{ "size", NEXUS_OPT_SIZE, NULL,
	  "with create: grow the file to this size", 0, .min = 1 },
	{ "block-size", NEXUS_OPT_SIZE, NULL,
	  "logical block size, a power of two (default: 512, or "
	  "the device's)", 0, .min = 1, .max = 65536 },
	{ NULL, 0, NULL, NULL, 0 },
};

static int bdev_geometry(int fd, struct nexus_dev_info *in, const char *shown)
{
	uint64_t size;
	int lbs = 512;
	unsigned int pbs = 4096, opt = 0;

	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return nexus_error(-errno, "file: %s: BLKGETSIZE64: %s", shown,
				   strerror(errno));
	if (ioctl(fd, BLKSSZGET, &lbs) < 0 || lbs <= 0)
		lbs = 512;
	if (ioctl(fd, BLKPBSZGET, &pbs) < 0 || !pbs)
		pbs = (unsigned)lbs;
	if (ioctl(fd, BLKIOOPT, &opt) < 0)
		opt = 0;
	in->dev_size = size;
	in->logical_block_size = (uint32_t)lbs;
	in->physical_block_size = pbs;
	in->optimal_io_size = opt;
	return 0;
}

/* @p shown: the path as messages may show it (never key material). */
static int open_fd(const char *path, const char *shown, bool ro, bool direct,
		   bool create)
{
	int flags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	int fd;

	if (direct)
		flags |= O_DIRECT;
	if (create && !ro)
		flags |= O_CREAT;
	fd = open(path, flags, 0644);
	if (fd >= 0)
		return fd;
	fd = -errno;
	switch (-fd) {
	case ENOENT:
		return nexus_error(fd, "file: %s: no such file (create=on "
				   "with size= creates it)", shown);
	case EISDIR:
		return nexus_error(fd, "file: %s is a directory", shown);
	case EACCES:
	case EROFS:
	case EPERM:
		return nexus_error(fd, "file: %s: %s%s", shown, strerror(-fd),
				   ro ? "" : " (readonly=on opens read-only)");
	case EINVAL:
		if (direct)
			return nexus_error(fd, "file: %s: the filesystem does "
					   "not support O_DIRECT", shown);
		/* fall through */
	default:
		return nexus_error(fd, "file: %s: %s", shown, strerror(-fd));
	}
}

/* The rules between options, checked when the pipeline is parsed:
 * file_open() trusts them. */
static int file_check(const struct nexus_opts *opts)
{
	const char *path = nexus_opts_str(opts, "path");
	bool create = false;
	int rc;

	if (!path || !*path)
		return nexus_error(-EINVAL, "file: path is empty");
	if ((rc = nx_opts_check_pow2(opts, "block-size")) ||
	    (rc = nexus_opts_bool(opts, "create", &create)))
		return rc;
	if (create && !nexus_opts_given(opts, "size"))
		return nexus_error(-EINVAL, "file: create=on needs size=");
	if (!create && nexus_opts_given(opts, "size"))
		return nexus_error(-EINVAL, "file: size= is only used with "
				   "create=on");
	return 0;
}

static int file_open(struct nexus_dev *dev, const struct nexus_opts *opts)
{
	struct nexus_dev_info *in = nexus_dev_info_mut(dev);
	const char *path = nexus_opts_str(opts, "path");
	const char *shown = nx_opts_shown(opts, "path", path);
	bool ro = false, direct = false, create = false;
	uint64_t size = 0, bs = 0;
	struct file_dev *f;
	struct stat st;
	int fd, rc;

	if ((rc = nexus_opts_bool(opts, "readonly", &ro)) ||
	    (rc = nexus_opts_bool(opts, "direct", &direct)) ||
	    (rc = nexus_opts_bool(opts, "create", &create)))
		return rc;
	if (nexus_opts_given(opts, "size") &&
	    (rc = nexus_opts_u64(opts, "size", &size)))
		return rc;
	if (nexus_opts_given(opts, "block-size") &&
	    (rc = nexus_opts_u64(opts, "block-size", &bs)))
		return rc;
	fd = open_fd(path, shown, ro, direct, create);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		rc = nexus_error(-errno, "file: %s: fstat: %s", shown,
				 strerror(errno));
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		rc = bdev_geometry(fd, in, shown);
		if (rc)
			goto fail;
		if (bs && bs < in->logical_block_size) {
			rc = nexus_error(-EINVAL, "file: block-size %llu is "
					 "smaller than the device's %u",
					 (unsigned long long)bs,
					 in->logical_block_size);
			goto fail;
		}
	} else if (S_ISREG(st.st_mode)) {
		if (create && (uint64_t)st.st_size < size) {
			if (ftruncate(fd, (off_t)size) < 0) {
				rc = nexus_error(-errno, "file: %s: cannot grow "
						 "to %llu bytes: %s", shown,
						 (unsigned long long)size,
						 strerror(errno));
				goto fail;
			}
			st.st_size = (off_t)size;
		}
		in->dev_size = (uint64_t)st.st_size;
		in->logical_block_size = st.st_size % 512 ? 1 : 512;
		in->physical_block_size =
			st.st_blksize >= 512 && st.st_blksize <= 65536
				? (uint32_t)st.st_blksize
				: 4096;
		in->flags |= NEXUS_DEV_TRIM_ZEROES | NEXUS_DEV_BLOCK_STATUS;
	} else if (S_ISDIR(st.st_mode)) {
		rc = nexus_error(-EISDIR, "file: %s is a directory", shown);
		goto fail;
	} else {
		rc = nexus_error(-EINVAL, "file: %s is not a regular file or a "
				 "block device", shown);
		goto fail;
	}
	if (bs)
		in->logical_block_size = (uint32_t)bs;
	f = calloc(1, sizeof(*f));
	if (!f) {
		rc = nexus_error(-ENOMEM, "out of memory");
		goto fail;
	}
	/* zeroes for the WRITE_ZEROES fallback */
	f->zeroes = ro ? NULL : aligned_alloc(4096, ZERO_BUF);
	if (!ro && !f->zeroes) {
		free(f);
		rc = nexus_error(-ENOMEM, "out of memory");
		goto fail;
	}
	if (f->zeroes)
		memset(f->zeroes, 0, ZERO_BUF);
	f->fd = fd;
	f->direct = direct;
	f->bdev = S_ISBLK(st.st_mode);
	/* On tmpfs and ramfs a read or write is a memory copy that never
	 * waits for a device, but io_uring hands it to an io-wq worker
	 * thread (these filesystems do not take non-blocking I/O): a thread
	 * hop per I/O that costs several times the copy of a small block.
	 * Small I/O is done inline; large I/O still goes to io-wq, where
	 * the copies of several requests run on other cores. */
	{
		struct statfs sfs;

		if (!direct && S_ISREG(st.st_mode) && fstatfs(fd, &sfs) == 0 &&
		    (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC))
			f->inline_rw = true;
	}
	f->mem_align = 1;
	if (direct) {
		struct statx sx;

		if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
		    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
			if (sx.stx_dio_offset_align > in->logical_block_size)
				in->logical_block_size = sx.stx_dio_offset_align;
			f->mem_align = sx.stx_dio_mem_align;
		} else {
			if (in->logical_block_size < 512)
				in->logical_block_size = 512;
			f->mem_align = 512;
		}
	}
	if (in->dev_size % in->logical_block_size) {
		rc = nexus_error(-EINVAL, "file: %s: size %llu is not a multiple "
				 "of the block size %u", shown,
				 (unsigned long long)in->dev_size,
				 in->logical_block_size);
		free(f->zeroes);
		free(f);
		goto fail;
	}
	if (in->physical_block_size < in->logical_block_size)
		in->physical_block_size = in->logical_block_size;
	if (ro)
		in->flags |= NEXUS_DEV_READ_ONLY;
	in->flags |= NEXUS_DEV_MULTI_CONN;
	nexus_dev_set_private(dev, f);
	return 0;
fail:
	close(fd);
	return rc;
}

static void file_close(struct nexus_dev *dev)
{
	struct file_dev *f = nexus_dev_private(dev);

	close(f->fd);
	free(f->zeroes);
	free(f);
}

static void file_event(struct nexus_cqe_handler *ev, int res, uint32_t flags);

static struct io_uring_sqe *get_sqe(struct file_io *fio)
{
	struct io_uring_sqe *sqe = nexus_reactor_sqe(fio->io->reactor,
						     &fio->ev);

	return sqe;
}

/* Write the next piece of zeroes (fallback for WRITE_ZEROES). */
static int zero_write_next(struct file_dev *f, struct file_io *fio)
{
	struct nexus_io *io = fio->io;
	uint64_t left = io->offset + io->length - fio->pos;
	struct io_uring_sqe *sqe = get_sqe(fio);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_write(sqe, f->fd, f->zeroes,
			    (unsigned)(left < ZERO_BUF ? left : ZERO_BUF),
			    fio->pos);
	fio->step = STEP_ZERO_WRITE;
	return 0;
}

static int start_sync(struct file_dev *f, struct file_io *fio)
{
	struct io_uring_sqe *sqe = get_sqe(fio);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
	fio->step = STEP_SYNC;
	return 0;
}

static int short_transfer(struct file_dev *f, struct nexus_io *io, uint64_t done)
{
	/* Rare: finish the rest synchronously with an adjusted iovec. */
	while (done < io->length) {
		struct iovec *iov = malloc(sizeof(*iov) * (size_t)io->iovcnt);
		uint64_t skip = done;
		int n = 0;
		ssize_t r;

		if (!iov)
			return -ENOMEM;
		for (int i = 0; i < io->iovcnt; i++) {
			if (skip >= io->iov[i].iov_len) {
				skip -= io->iov[i].iov_len;
				continue;
			}
			iov[n].iov_base = (char *)io->iov[i].iov_base + skip;
			iov[n].iov_len = io->iov[i].iov_len - skip;
			skip = 0;
			n++;
		}
		r = io->op == NEXUS_OP_READ
			    ? preadv(f->fd, iov, n, (off_t)(io->offset + done))
			    : pwritev2(f->fd, iov, n, (off_t)(io->offset + done),
				       (io->flags & NEXUS_IO_FUA) ? RWF_DSYNC : 0);
		free(iov);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO; /* end of file: the file shrank */
		done += (uint64_t)r;
	}
	return 0;
}

static void file_event(struct nexus_cqe_handler *ev, int res, uint32_t cflags)
{
	struct file_io *fio = (struct file_io *)ev;
	struct nexus_io *io = fio->io;
	struct file_dev *f = nexus_dev_private(io->dev);
	int rc = 0;

	(void)cflags;
	switch (fio->step) {
	case STEP_MAIN:
		if (io->op == NEXUS_OP_READ && res > 0) {
			uint64_t left = (uint64_t)res;

			for (int i = 0; i < io->iovcnt && left; i++) {
				size_t n = io->iov[i].iov_len < left
						   ? io->iov[i].iov_len
						   : (size_t)left;

				MARK_DEFINED(io->iov[i].iov_base, n);
				left -= n;
			}
		}
		if (io->op == NEXUS_OP_READ || io->op == NEXUS_OP_WRITE) {
			if (res >= 0 && (uint64_t)res < io->length)
				res = short_transfer(f, io, (uint64_t)res);
			break;
		}
		if (io->op == NEXUS_OP_WRITE_ZEROES && res == -EOPNOTSUPP &&
		    !(io->flags & NEXUS_IO_FAST_ZERO)) {
			/* the filesystem cannot zero in place: write zeroes */
			fio->pos = io->offset;
			rc = zero_write_next(f, fio);
			if (rc == 0)
				return;
			res = rc;
			break;
		}
		if (res == 0 && io->op == NEXUS_OP_WRITE_ZEROES &&
		    (io->flags & NEXUS_IO_FUA)) {
			rc = start_sync(f, fio);
			if (rc == 0)
				return;
			res = rc;
		}
		break;
	case STEP_ZERO_WRITE:
		if (res > 0) {
			fio->pos += (uint64_t)res;
			if (fio->pos < io->offset + io->length) {
				rc = zero_write_next(f, fio);
				if (rc == 0)
					return;
				res = rc;
				break;
			}
			res = 0;
			if (io->flags & NEXUS_IO_FUA) {
				rc = start_sync(f, fio);
				if (rc == 0)
					return;
				res = rc;
			}
		} else if (res == 0) {
			res = -EIO;
		}
		break;
	case STEP_SYNC:
		break;
	}
	nexus_io_complete(io, res < 0 ? res : 0);
}

static int check_direct_buffers(struct file_dev *f, struct nexus_io *io)
{
	uint32_t lbs = nexus_dev_info_mut(io->dev)->logical_block_size;

	for (int i = 0; i < io->iovcnt; i++)
		if (((uintptr_t)io->iov[i].iov_base & (f->mem_align - 1)) ||
		    (io->iov[i].iov_len & (lbs - 1)))
			return nexus_error(-EINVAL, "file: O_DIRECT buffer %d "
					   "(%p, %zu bytes) is not aligned to "
					   "%u bytes of memory and %u of "
					   "length", i, io->iov[i].iov_base,
					   io->iov[i].iov_len, f->mem_align,
					   lbs);
	return 0;
}

/* READ/WRITE with preadv/pwritev on the reactor thread (tmpfs). */
static int inline_rw(struct file_dev *f, struct nexus_io *io)
{
	ssize_t r;

	if (io->op == NEXUS_OP_READ) {
		r = io->iovcnt == 1
			    ? pread(f->fd, io->iov[0].iov_base, io->iov[0].iov_len,
				    (off_t)io->offset)
			    : preadv(f->fd, io->iov, io->iovcnt,
				     (off_t)io->offset);
	} else {
		r = pwritev2(f->fd, io->iov, io->iovcnt, (off_t)io->offset,
			     (io->flags & NEXUS_IO_FUA) ? RWF_DSYNC : 0);
	}
	if (r < 0)
		r = errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (r >= 0 && (uint64_t)r < io->length)
		r = short_transfer(f, io, (uint64_t)r);
	else if (r > 0)
		r = 0;
	if (r == 0 && io->op == NEXUS_OP_READ)
		for (int i = 0; i < io->iovcnt; i++)
			MARK_DEFINED(io->iov[i].iov_base, io->iov[i].iov_len);
	return (int)r;
}

/* NEXUS_OP_BLOCK_STATUS, on the reactor: lseek(SEEK_DATA/SEEK_HOLE)
 * answers from the file system's extent tree without I/O (below). */
static int file_block_status(struct nexus_dev *dev, uint64_t off, uint64_t len,
			     struct nexus_extent *ext, unsigned max);

static int file_submit(struct nexus_io *io)
{
	struct file_dev *f = nexus_dev_private(io->dev);
	struct file_io *fio = io->driver_ctx;
	struct io_uring_sqe *sqe;
	int mode;

	fio->ev.fn = file_event;
	fio->io = io;
	fio->step = STEP_MAIN;
	if (io->op == NEXUS_OP_BLOCK_STATUS) {
		nexus_io_complete(io, file_block_status(io->dev, io->offset,
							io->length,
							io->extents,
							io->max_extents));
		return 0;
	}
	if (f->inline_rw && io->length <= INLINE_MAX &&
	    (io->op == NEXUS_OP_READ || io->op == NEXUS_OP_WRITE)) {
		nexus_io_complete(io, inline_rw(f, io));
		return 0;
	}
	if (f->direct && (io->op == NEXUS_OP_READ || io->op == NEXUS_OP_WRITE)) {
		int rc = check_direct_buffers(f, io);

		if (rc)
			return rc;
	}
	sqe = get_sqe(fio);
	if (!sqe)
		return nexus_error(-EAGAIN, "file: io_uring submission queue "
					    "full");
	switch (io->op) {
	case NEXUS_OP_READ:
		if (io->iovcnt == 1)
			io_uring_prep_read(sqe, f->fd, io->iov[0].iov_base,
					   (unsigned)io->iov[0].iov_len,
					   io->offset);
		else
			io_uring_prep_readv(sqe, f->fd, io->iov,
					    (unsigned)io->iovcnt, io->offset);
		break;
	case NEXUS_OP_WRITE:
		if (io->iovcnt == 1)
			io_uring_prep_write(sqe, f->fd, io->iov[0].iov_base,
					    (unsigned)io->iov[0].iov_len,
					    io->offset);
		else
			io_uring_prep_writev(sqe, f->fd, io->iov,
					     (unsigned)io->iovcnt, io->offset);
		if (io->flags & NEXUS_IO_FUA)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case NEXUS_OP_FLUSH:
		io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
		break;
	case NEXUS_OP_TRIM:
		io_uring_prep_fallocate(sqe, f->fd,
					FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					io->offset, io->length);
		break;
	case NEXUS_OP_WRITE_ZEROES:
		mode = (io->flags & NEXUS_IO_NO_UNMAP)
			       ? FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
			       : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		io_uring_prep_fallocate(sqe, f->fd, mode, io->offset,
					io->length);
		break;
	}
	return 0;
}

static int file_block_status(struct nexus_dev *dev, uint64_t off, uint64_t len,
			     struct nexus_extent *ext, unsigned max)
{
	struct file_dev *f = nexus_dev_private(dev);
	uint64_t end = off + len;
	unsigned n = 0;

	while (off < end && n < max) {
		off_t data = lseek(f->fd, (off_t)off, SEEK_DATA);
		uint64_t next;
		uint32_t flags;

		if (data < 0 && errno == ENXIO) {
			data = (off_t)end; /* a hole up to the end of file */
		} else if (data < 0) {
			if (n)
				break;
			ext[0] = (struct nexus_extent){ off, len, 0 };
			return 1; /* cannot tell: all data */
		}
		if ((uint64_t)data > off) {
			next = (uint64_t)data < end ? (uint64_t)data : end;
			flags = NEXUS_EXTENT_HOLE | NEXUS_EXTENT_ZERO;
		} else {
			off_t hole = lseek(f->fd, (off_t)off, SEEK_HOLE);

			next = hole < 0 || (uint64_t)hole > end ? end
								: (uint64_t)hole;
			flags = 0;
		}
		if (next <= off)
			next = end;
		ext[n++] = (struct nexus_extent){ off, next - off, flags };
		off = next;
	}
	return (int)n;
}

const struct nexus_driver nx_driver_file = {
	NEXUS_DRIVER_HEADER,
	.name = "file",
	.summary = "regular file or block device through io_uring",
	.kind = NEXUS_DRIVER_SOURCE,
	.ops = NEXUS_OP_BIT(NEXUS_OP_READ) | NEXUS_OP_BIT(NEXUS_OP_WRITE) |
	       NEXUS_OP_BIT(NEXUS_OP_FLUSH) | NEXUS_OP_BIT(NEXUS_OP_TRIM) |
	       NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES) |
	       NEXUS_OP_BIT(NEXUS_OP_BLOCK_STATUS),
	.per_io_size = sizeof(struct file_io),
	.options = file_options,
	.check = file_check,
	.open = file_open,
	.close = file_close,
	.submit = file_submit,
	/* until every reactor caller submits BLOCK_STATUS (the export) */
	.block_status = file_block_status,
};
