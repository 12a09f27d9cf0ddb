/* SPDX-License-Identifier: MIT */
/* Bounded lock-free multi-producer single-consumer queue of fixed-size
 * entries (Dmitry Vyukov's bounded queue, one consumer).  Producers are
 * application threads submitting I/O; the consumer is a reactor. */
#ifndef NEXUS_CORE_MPSC_H
#define NEXUS_CORE_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct nx_mpsc_cell {
	atomic_size_t seq;
	/* payload follows, entry_size bytes */
};

struct nx_mpsc {
	_Alignas(64) atomic_size_t tail; /* producers */
	_Alignas(64) size_t head;	 /* consumer */
	size_t mask;
	size_t entry_size;
	size_t cell_size;
	unsigned char *cells;
};

int nx_mpsc_init(struct nx_mpsc *q, size_t capacity, size_t entry_size)
	__attribute__((visibility("hidden")));
void nx_mpsc_destroy(struct nx_mpsc *q) __attribute__((visibility("hidden")));
/* Returns false when full. */
bool nx_mpsc_push(struct nx_mpsc *q, const void *entry)
	__attribute__((visibility("hidden")));
/* Returns false when empty. */
bool nx_mpsc_pop(struct nx_mpsc *q, void *entry)
	__attribute__((visibility("hidden")));
bool nx_mpsc_empty(struct nx_mpsc *q) __attribute__((visibility("hidden")));

#endif
