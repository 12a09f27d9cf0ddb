/* SPDX-License-Identifier: MIT */
/* Bounded MPSC queue: see mpsc.h. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpsc.h"

static struct nx_mpsc_cell *cell(struct nx_mpsc *q, size_t pos)
{
	return (struct nx_mpsc_cell *)(void *)(q->cells +
					       (pos & q->mask) * q->cell_size);
}

int nx_mpsc_init(struct nx_mpsc *q, size_t capacity, size_t entry_size)
{
	size_t cap = 2;

	while (cap < capacity)
		cap <<= 1;
	q->mask = cap - 1;
	q->entry_size = entry_size;
	q->cell_size = (sizeof(struct nx_mpsc_cell) + entry_size + 63) & ~(size_t)63;
	if (posix_memalign((void **)&q->cells, 64, cap * q->cell_size))
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++)
		atomic_init(&cell(q, i)->seq, i);
	atomic_init(&q->tail, 0);
	q->head = 0;
	return 0;
}

void nx_mpsc_destroy(struct nx_mpsc *q)
{
	free(q->cells);
	q->cells = NULL;
}

bool nx_mpsc_push(struct nx_mpsc *q, const void *entry)
{
	size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);

	for (;;) {
		struct nx_mpsc_cell *c = cell(q, pos);
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)pos;

		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(
				    &q->tail, &pos, pos + 1,
				    memory_order_relaxed, memory_order_relaxed)) {
				memcpy(c + 1, entry, q->entry_size);
				atomic_store_explicit(&c->seq, pos + 1,
						      memory_order_release);
				return true;
			}
		} else if (dif < 0) {
			return false; /* full */
		} else {
			pos = atomic_load_explicit(&q->tail,
						   memory_order_relaxed);
		}
	}
}

bool nx_mpsc_pop(struct nx_mpsc *q, void *entry)
{
	struct nx_mpsc_cell *c = cell(q, q->head);
	size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);

	if (seq != q->head + 1)
		return false;
	memcpy(entry, c + 1, q->entry_size);
	atomic_store_explicit(&c->seq, q->head + q->mask + 1,
			      memory_order_release);
	q->head++;
	return true;
}

bool nx_mpsc_empty(struct nx_mpsc *q)
{
	struct nx_mpsc_cell *c = cell(q, q->head);

	return atomic_load_explicit(&c->seq, memory_order_acquire) != q->head + 1;
}
