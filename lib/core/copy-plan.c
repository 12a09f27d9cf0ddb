/* SPDX-License-Identifier: MIT */
/* The copy planner: turns the ranges to copy and SRC's block status into
 * jobs, in offset order within each range, on the job's thread.
 *
 * SRC's block status splits a range into data and zero extents
 * (NEXUS_EXTENT_ZERO; a hole that does not read as zeroes is data; a
 * device that cannot tell is one data extent).  A zero extent shrinks to
 * whole aligned blocks (its unaligned edges are copied as data) and is:
 *   - skipped where DST's block status already reports zeroes, or
 *     everywhere with NEXUS_COPY_TARGET_ZERO;
 *   - else zeroed with WRITE_ZEROES (or TRIM that reads back zeroes) in
 *     requests of up to 1 GiB;
 *   - else, or with a lock hook (see nexus_copy_lock_fn), read from SRC
 *     as data in requests of the block size: the executor still zeroes
 *     DST where what it read is all zeroes.
 * A data extent becomes requests of the block size.  The verify phase
 * plans the same extents into reads of both sides. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

void nx_copy_plan_reset(struct nexus_copy *cp, bool verify)
{
	struct nx_copy_plan *p = &cp->plan;

	memset(p, 0, sizeof(*p));
	p->verify = verify;
}

void nx_copy_span(const struct nexus_copy *cp,
		  const struct nexus_copy_range *r, uint64_t *start,
		  uint64_t *end)
{
	uint64_t e = align_up(r->offset + r->length, cp->align);

	*start = r->offset / cp->align * cp->align;
	*end = e < cp->size ? e : cp->size;
}

/* A range from next_range, checked and kept for the verify phase. */
static int fetch_range(struct nexus_copy *cp)
{
	struct nexus_copy_range r = { 0, 0 };
	int rc = cp->next_range(cp->user_data, &r);

	if (rc <= 0) {
		pthread_mutex_lock(&cp->lock);
		if (rc < 0)
			nx_copy_fail(cp, rc, 0, "next_range: %s",
				     strerror(-rc));
		else
			cp->ranges_done = true;
		pthread_mutex_unlock(&cp->lock);
		return rc;
	}
	if (!r.length || r.offset > cp->size || r.length > cp->size - r.offset) {
		pthread_mutex_lock(&cp->lock);
		nx_copy_fail(cp, -EINVAL, r.offset, "next_range: range of %llu "
			     "bytes at %llu is empty or past the end of SRC "
			     "(size %llu)", (unsigned long long)r.length,
			     (unsigned long long)r.offset,
			     (unsigned long long)cp->size);
		pthread_mutex_unlock(&cp->lock);
		return -EINVAL;
	}
	if (cp->nranges == cp->ranges_cap) {
		size_t cap = cp->ranges_cap ? cp->ranges_cap * 2 : 64;
		void *n = realloc(cp->ranges, cap * sizeof(*cp->ranges));

		if (!n) {
			pthread_mutex_lock(&cp->lock);
			nx_copy_fail(cp, -ENOMEM, r.offset, "out of memory "
				     "for the ranges to copy");
			pthread_mutex_unlock(&cp->lock);
			return -ENOMEM;
		}
		cp->ranges = n;
		cp->ranges_cap = cap;
	}
	cp->ranges[cp->nranges++] = r;
	return 1;
}

/* Make [pos, end) the next range; false when none is left. */
static bool next_range(struct nexus_copy *cp, int *err)
{
	struct nx_copy_plan *p = &cp->plan;

	if (p->range == cp->nranges) {
		int rc;

		if (p->verify || !cp->next_range || cp->ranges_done)
			return false;
		rc = fetch_range(cp);
		if (rc <= 0) {
			*err = rc;
			return false;
		}
	}
	nx_copy_span(cp, &cp->ranges[p->range++], &p->pos, &p->end);
	if (cp->next_range && !p->verify) {
		pthread_mutex_lock(&cp->lock);
		cp->total += p->end - p->pos;
		pthread_mutex_unlock(&cp->lock);
	}
	p->next_ext = p->next_ext_n = 0;
	return true;
}

/* Next extent at pos (a data extent of the rest when unknown). */
static void next_extent(struct nexus_copy *cp, uint64_t *len, bool *zero)
{
	struct nx_copy_plan *p = &cp->plan;
	struct nexus_extent *e;
	int n;

	while (p->next_ext < p->next_ext_n) {
		e = &p->ext[p->next_ext];
		if (e->offset + e->length > p->pos)
			goto found;
		p->next_ext++;
	}
	*len = p->end - p->pos;
	*zero = false;
	if (cp->flags & NEXUS_COPY_NO_SPARSE)
		return;
	/* not knowing (-EOPNOTSUPP, ...) is no error: copy as data; a
	 * failing SRC fails the data reads with their own message */
	n = nexus_dev_block_status(cp->src, p->pos, p->end - p->pos, p->ext,
				   NX_COPY_MAX_EXTENTS);
	if (n <= 0)
		return;
	p->next_ext = 0;
	p->next_ext_n = (unsigned)n;
	e = &p->ext[0];
found:
	*len = e->offset + e->length - p->pos;
	if (*len > p->end - p->pos)
		*len = p->end - p->pos;
	*zero = (e->flags & NEXUS_EXTENT_ZERO) != 0;
}

/* Plan the next extent into [data_pos, data_end) or [zero_pos, zero_end)
 * and advance pos.  Zero extents shrink to whole aligned blocks. */
static void plan_extent(struct nexus_copy *cp)
{
	struct nx_copy_plan *p = &cp->plan;
	uint64_t len, end;
	bool zero;

	next_extent(cp, &len, &zero);
	end = p->pos + len;
	if (zero) {
		uint64_t zend = end / cp->align * cp->align;

		if (zend > p->pos) {
			p->zero_pos = p->pos;
			p->zero_end = zend;
			p->pos = zend;
			return;
		}
	}
	end = align_up(end, cp->align);
	if (end > p->end)
		end = p->end;
	p->data_pos = p->pos;
	p->data_end = end;
	p->pos = end;
}

/* Does DST already read as zeroes at [off, off+len)?  *run receives the
 * length of the known-zero (or not known-zero) prefix, aligned. */
static bool dst_zero(struct nexus_copy *cp, uint64_t off, uint64_t len,
		     uint64_t *run)
{
	struct nexus_extent e;
	int n;

	*run = len;
	if (cp->flags & NEXUS_COPY_TARGET_ZERO)
		return true;
	if (!(cp->di.flags & NEXUS_DEV_BLOCK_STATUS))
		return false;
	n = nexus_dev_block_status(cp->dst, off, len, &e, 1);
	if (n <= 0)
		return false;
	if (e.length < len) {
		*run = e.length / cp->align * cp->align;
		if (!*run) {
			*run = cp->align < len ? cp->align : len;
			return false;
		}
	}
	return (e.flags & NEXUS_EXTENT_ZERO) != 0;
}

/* Issue from [*pos, end) a job of at most max bytes. */
static void issue(struct nx_copy_job *j, int kind, uint64_t *pos,
		  uint64_t end, uint64_t max)
{
	uint64_t len = end - *pos;

	j->kind = (uint8_t)kind;
	j->off = *pos;
	j->len = len < max ? len : max;
	*pos += j->len;
}

static bool next_copy_job(struct nexus_copy *cp, struct nx_copy_job *j)
{
	struct nx_copy_plan *p = &cp->plan;
	/* zero ranges read as data: DST cannot zero, or under a lock */
	bool read_zero = cp->zero_op == NX_COPY_NO_ZERO_OP || cp->lock_fn;
	uint64_t run;

	if (p->zero_pos < p->zero_end) {
		uint64_t len = p->zero_end - p->zero_pos;

		if (len > NX_COPY_ZERO_CHUNK)
			len = NX_COPY_ZERO_CHUNK;
		if (dst_zero(cp, p->zero_pos, len, &run)) {
			p->zero_pos += run;
			pthread_mutex_lock(&cp->lock);
			cp->done_bytes += run;
			cp->skipped_bytes += run;
			cp->zero_bytes += run;
			pthread_mutex_unlock(&cp->lock);
			return false;
		}
		if (read_zero)
			issue(j, NX_COPY_DATA, &p->zero_pos, p->zero_pos + run,
			      cp->block);
		else
			issue(j, NX_COPY_ZERO, &p->zero_pos, p->zero_pos + run,
			      run);
		return true;
	}
	issue(j, NX_COPY_DATA, &p->data_pos, p->data_end, cp->block);
	return true;
}

bool nx_copy_plan_next(struct nexus_copy *cp, struct nx_copy_job *j,
		       int *err)
{
	struct nx_copy_plan *p = &cp->plan;

	*err = 0;
	for (;;) {
		bool zero = p->zero_pos < p->zero_end;

		if (zero || p->data_pos < p->data_end) {
			if (!p->verify) {
				if (next_copy_job(cp, j))
					return true;
				continue; /* skipped */
			}
			if (zero)
				issue(j, NX_COPY_VERIFY_ZERO, &p->zero_pos,
				      p->zero_end, cp->block);
			else
				issue(j, NX_COPY_VERIFY_DATA, &p->data_pos,
				      p->data_end, cp->block);
			return true;
		}
		if (p->pos >= p->end && !next_range(cp, err))
			return false;
		plan_extent(cp);
	}
}
